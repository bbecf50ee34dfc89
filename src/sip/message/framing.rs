//! Stream framing for SIP over TCP/TLS (RFC 3261 §18.3).

/// What starts the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// This many bytes of CRLF keepalive (RFC 5626 §3.5.1) to skip.
    Keepalive(usize),
    /// A complete message of this many bytes.
    Message(usize),
}

/// Why a stream cannot be framed; the connection should be answered
/// (513 / 400 where possible) and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header section exceeds the limit without ending.
    #[error("Message too large")]
    HeadersTooLarge,
    /// Headers plus Content-Length exceed the limit.
    #[error("Message too large")]
    MessageTooLarge,
    /// No Content-Length, which is mandatory over streams.
    #[error("Missing Content-Length")]
    MissingContentLength,
    /// Content-Length not a number.
    #[error("Bad Content-Length")]
    BadContentLength,
}

/// Finds the first frame in `buf`: leading keepalive CRLFs, or the total
/// length of the first complete message (headers + Content-Length).
/// `Ok(None)` means more bytes are needed.
pub fn frame_length(buf: &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
    let _ = (buf, max);
    todo!()
}

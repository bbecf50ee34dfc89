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
    let keepalive = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if keepalive > 0 {
        return Ok(Some(Frame::Keepalive(keepalive)));
    }
    // Never look past `max`: a header section that long is an error anyway.
    let window = buf.get(..buf.len().min(max)).unwrap_or(buf);
    let mut pos = 0;
    let mut content_length: Option<u64> = None;
    let headers_end = loop {
        let Some(nl) = window
            .get(pos..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
        else {
            if buf.len() >= max {
                return Err(FrameError::HeadersTooLarge);
            }
            return Ok(None);
        };
        let nl = pos + nl;
        let line = window.get(pos..nl).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break nl + 1;
        }
        // Skip the start line and folded continuations.
        if pos > 0 && !matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(colon) = memchr::memchr(b':', line) {
                let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
                if name.eq_ignore_ascii_case(b"Content-Length") || name.eq_ignore_ascii_case(b"l") {
                    let value = line.get(colon + 1..).unwrap_or_default();
                    let n = super::parse_digits(value).ok_or(FrameError::BadContentLength)?;
                    if content_length.is_some_and(|c| c != n) {
                        return Err(FrameError::BadContentLength);
                    }
                    content_length = Some(n);
                }
            }
        }
        pos = nl + 1;
    };
    let content_length = content_length.ok_or(FrameError::MissingContentLength)?;
    let total = (headers_end as u64).saturating_add(content_length);
    if total > max as u64 {
        return Err(FrameError::MessageTooLarge);
    }
    let total = total as usize;
    Ok((buf.len() >= total).then_some(Frame::Message(total)))
}

#[cfg(test)]
mod tests {
    use super::super::Message;
    use super::*;
    use bytes::Bytes;

    const MAX: usize = 65536;

    fn msg(cseq: u32, body: &str) -> String {
        format!(
            "MESSAGE sip:a@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{cseq}\r\n\
             Call-ID: c\r\nCSeq: {cseq} MESSAGE\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// Splits a stream into frames the way a connection reader would.
    fn drain(stream: &[u8]) -> Result<(Vec<Vec<u8>>, usize), FrameError> {
        let mut frames = Vec::new();
        let mut pos = 0;
        let mut keepalive = 0;
        while let Some(frame) = frame_length(&stream[pos..], MAX)? {
            match frame {
                Frame::Keepalive(n) => {
                    keepalive += n;
                    pos += n;
                }
                Frame::Message(n) => {
                    frames.push(stream[pos..pos + n].to_vec());
                    pos += n;
                }
            }
        }
        Ok((frames, keepalive))
    }

    #[test]
    fn several_messages_and_keepalives() {
        let stream = format!(
            "\r\n\r\n{}{}\r\n{}",
            msg(1, "hello"),
            msg(2, ""),
            msg(3, "x\r\n\r\ny")
        );
        let (frames, keepalive) = drain(stream.as_bytes()).unwrap();
        assert_eq!(keepalive, 6);
        assert_eq!(frames.len(), 3);
        for (i, f) in frames.iter().enumerate() {
            let m = Message::parse(Bytes::from(f.clone())).unwrap();
            assert_eq!(m.cseq().unwrap().seq, i as u32 + 1);
        }
        assert_eq!(&frames[2][frames[2].len() - 6..], b"x\r\n\r\ny");
    }

    #[test]
    fn split_at_every_byte() {
        let whole = msg(7, "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n");
        let bytes = whole.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(frame_length(&bytes[..cut], MAX), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            frame_length(bytes, MAX),
            Ok(Some(Frame::Message(bytes.len())))
        );
        let mut more = bytes.to_vec();
        more.extend_from_slice(b"INVITE");
        assert_eq!(
            frame_length(&more, MAX),
            Ok(Some(Frame::Message(bytes.len())))
        );
    }

    #[test]
    fn compact_content_length_and_bare_lf() {
        let m = b"OPTIONS sip:h SIP/2.0\nl: 3\nCall-ID: x\n\nabcdef";
        assert_eq!(frame_length(m, MAX), Ok(Some(Frame::Message(m.len() - 3))));
    }

    #[test]
    fn missing_or_bad_content_length() {
        let m = b"OPTIONS sip:h SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(frame_length(m, MAX), Err(FrameError::MissingContentLength));
        let m = b"OPTIONS sip:h SIP/2.0\r\nContent-Length: abc\r\n\r\n";
        assert_eq!(frame_length(m, MAX), Err(FrameError::BadContentLength));
        let m = b"OPTIONS sip:h SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert_eq!(frame_length(m, MAX), Err(FrameError::BadContentLength));
    }

    #[test]
    fn oversize() {
        let m = msg(1, "");
        let small = m.len() - 1;
        assert_eq!(
            frame_length(m.as_bytes(), small),
            Err(FrameError::HeadersTooLarge)
        );
        let big = "OPTIONS sip:h SIP/2.0\r\nContent-Length: 70000\r\n\r\n";
        assert_eq!(
            frame_length(big.as_bytes(), MAX),
            Err(FrameError::MessageTooLarge)
        );
        let endless = format!("OPTIONS sip:h SIP/2.0\r\nX: {}", "a".repeat(MAX));
        assert_eq!(
            frame_length(endless.as_bytes(), MAX),
            Err(FrameError::HeadersTooLarge)
        );
        // Under the limit and incomplete: wait for more.
        assert_eq!(frame_length(&endless.as_bytes()[..1000], MAX), Ok(None));
        assert_eq!(frame_length(b"", MAX), Ok(None));
    }
}

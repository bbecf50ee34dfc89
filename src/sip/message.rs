//! SIP message parser and serialiser (RFC 3261 §7, §20, §25), zero-copy over
//! [`bytes::Bytes`].
//!
//! A [`Message`] keeps the received buffer and `u32` spans for the start
//! line, each header and the body; typed accessors parse values on demand.
//! Parsing is one pass with `memchr` and at most one allocation (the header
//! table). Limits are explicit ([`ParseLimits`]).
//!
//! Hand-written rather than rsip 0.4: rsip cannot parse compact header forms,
//! IPv6 in URIs and Via, `tel:` URIs, folded header lines or unknown methods,
//! and it ignores Content-Length (so no TCP framing).

mod builder;
mod framing;
mod header;
mod typed;

#[cfg(test)]
mod tests;

pub use builder::{RequestBuilder, ResponseBuilder};
pub use framing::{frame_length, Frame, FrameError};
pub use header::HeaderName;
pub use typed::{CSeq, Contact, NameAddr, Rport, Transport, Via};

use bytes::Bytes;
use std::fmt;

/// Default maximum number of header lines in one message.
pub const MAX_HEADERS: usize = 128;
/// Default maximum length of one (unfolded) header line, bytes.
pub const MAX_LINE_LEN: usize = 8 * 1024;
/// Default maximum size of a whole message, bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// Parser limits; embeddable as a config section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParseLimits {
    /// Maximum header lines per message (default [`MAX_HEADERS`]).
    pub max_headers: usize,
    /// Maximum length of one header line in bytes (default [`MAX_LINE_LEN`]).
    pub max_line_len: usize,
    /// Maximum message size in bytes (default [`MAX_MESSAGE_LEN`]).
    pub max_message_len: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_headers: MAX_HEADERS,
            max_line_len: MAX_LINE_LEN,
            max_message_len: MAX_MESSAGE_LEN,
        }
    }
}

impl ParseLimits {
    /// Checks the settings; each problem names its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_headers == 0 || self.max_headers > 4096 {
            problems.push("max_headers must be in 1..=4096".to_string());
        }
        if self.max_line_len < 256 {
            problems.push("max_line_len must be at least 256".to_string());
        }
        // Spans are u32; keep far below that.
        if self.max_message_len < 1024 || self.max_message_len > 16 * 1024 * 1024 {
            problems.push("max_message_len must be in 1024..=16777216".to_string());
        }
        problems
    }
}

/// Why a message was rejected. `Display` gives a reason phrase usable in the
/// 400 (or 513) response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("Empty message")]
    Empty,
    /// Over the message size limit (answer 513).
    #[error("Message too large")]
    MessageTooLarge,
    /// A header line over the line length limit.
    #[error("Header line too long")]
    HeaderLineTooLong,
    /// More header lines than the limit.
    #[error("Too many headers")]
    TooManyHeaders,
    /// Request-Line or Status-Line malformed.
    #[error("Malformed start line")]
    MalformedStartLine,
    /// Version other than SIP/2.0.
    #[error("Unsupported SIP version")]
    UnsupportedVersion,
    /// A header line without a colon or with an invalid name.
    #[error("Malformed header")]
    MalformedHeader,
    /// No empty line ends the header section.
    #[error("Incomplete headers")]
    IncompleteHeaders,
    /// Start line or headers are not valid UTF-8.
    #[error("Headers not UTF-8")]
    NotUtf8,
    /// Content-Length not a number, repeated with different values, or too big.
    #[error("Bad Content-Length")]
    BadContentLength,
    /// Content-Length larger than the bytes received.
    #[error("Truncated body")]
    TruncatedBody,
    /// Request without Call-ID.
    #[error("Missing Call-ID")]
    MissingCallId,
    /// Request without From.
    #[error("Missing From")]
    MissingFrom,
    /// Request without To.
    #[error("Missing To")]
    MissingTo,
    /// Request without CSeq.
    #[error("Missing CSeq")]
    MissingCSeq,
    /// Request without Via.
    #[error("Missing Via")]
    MissingVia,
    /// CSeq malformed.
    #[error("Bad CSeq")]
    BadCSeq,
    /// CSeq method differs from the request method.
    #[error("CSeq method mismatch")]
    CSeqMethodMismatch,
    /// Top Via malformed.
    #[error("Bad Via")]
    BadVia,
    /// From malformed.
    #[error("Bad From")]
    BadFrom,
    /// To malformed.
    #[error("Bad To")]
    BadTo,
    /// Max-Forwards not a number in 0..=255.
    #[error("Bad Max-Forwards")]
    BadMaxForwards,
    /// Request-URI malformed.
    #[error("Bad Request-URI")]
    BadRequestUri,
}

impl ParseError {
    /// The reason phrase for the error response.
    pub fn reason_phrase(&self) -> &'static str {
        todo!()
    }

    /// The status code to answer with (400, or 513 for oversize).
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::MessageTooLarge => 513,
            _ => 400,
        }
    }
}

/// Why a header value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header is absent.
    #[error("Missing {0}")]
    Missing(HeaderName),
    /// The header value is malformed.
    #[error("Bad {0}")]
    Malformed(HeaderName),
}

/// SIP method (RFC 3261 §7.1 and extensions). Methods are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE (RFC 3261)
    Invite,
    /// ACK (RFC 3261)
    Ack,
    /// BYE (RFC 3261)
    Bye,
    /// CANCEL (RFC 3261)
    Cancel,
    /// OPTIONS (RFC 3261)
    Options,
    /// REGISTER (RFC 3261)
    Register,
    /// INFO (RFC 6086)
    Info,
    /// REFER (RFC 3515)
    Refer,
    /// NOTIFY (RFC 6665)
    Notify,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// MESSAGE (RFC 3428)
    Message,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other token; the bytes are the method name.
    Extension(Bytes),
}

impl Method {
    /// Parses a method token, copying an extension name.
    pub fn from_token(token: &[u8]) -> Option<Method> {
        let _ = token;
        todo!()
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        todo!()
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A byte range in the message buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// One header line as stored.
#[derive(Debug, Clone, Copy)]
struct HeaderEntry {
    name: HeaderName,
    name_span: Span,
    value_span: Span,
}

/// One header as seen by [`Message::iter_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Known name (compact forms mapped), or [`HeaderName::Other`].
    pub name: HeaderName,
    /// The name as written.
    pub raw_name: &'a str,
    /// The value, trimmed; folding already turned into spaces.
    pub value: &'a str,
}

#[derive(Debug, Clone)]
enum StartLine {
    Request { method: Method, uri: Span },
    Response { status: u16, reason: Span },
}

/// A parsed SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Bytes,
    start: StartLine,
    start_span: Span,
    headers: Vec<HeaderEntry>,
    body: Span,
}

impl Message {
    /// Parses one whole datagram with default limits (RFC 3261 §7, §18.3:
    /// the body is Content-Length bytes when given, else the rest).
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        Self::parse_with(buf, &ParseLimits::default())
    }

    /// Parses with explicit limits.
    pub fn parse_with(buf: Bytes, limits: &ParseLimits) -> Result<Message, ParseError> {
        let _ = (buf, limits);
        todo!()
    }

    /// Checks the headers every request must carry (RFC 3261 §8.1.1):
    /// To, From, CSeq (method matching), Call-ID, Via; Max-Forwards
    /// is checked when present but its absence is tolerated.
    pub fn validate_request(&self) -> Result<(), ParseError> {
        todo!()
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// True for responses.
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// Method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Request-URI of a request; empty for responses.
    pub fn request_uri(&self) -> &str {
        todo!()
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        todo!()
    }

    /// The start line without its line ending.
    pub fn start_line(&self) -> &str {
        todo!()
    }

    /// First header line with this name.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        let _ = name;
        todo!()
    }

    /// All header lines with this name, in order.
    pub fn headers(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        let _ = name;
        std::iter::empty()
    }

    /// First header by name as written (case-insensitive, compact forms
    /// understood), for headers without a [`HeaderName`] variant.
    pub fn header_named(&self, name: &str) -> Option<&str> {
        let _ = name;
        todo!()
    }

    /// All values of a comma-separated list header (Via, Contact, Route,
    /// Record-Route, Allow, Supported ...), across lines, split at commas
    /// outside quotes and `<...>`. Not for headers whose values may contain
    /// bare commas (Date, WWW-Authenticate).
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        let _ = name;
        std::iter::empty()
    }

    /// All headers in order.
    pub fn iter_headers(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        std::iter::empty()
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        todo!()
    }

    /// The body as a zero-copy slice of the buffer.
    pub fn body_bytes(&self) -> Bytes {
        todo!()
    }

    /// The whole message buffer (as parsed; folded lines turned into spaces).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The whole message buffer, shared.
    pub fn to_bytes(&self) -> Bytes {
        self.buf.clone()
    }

    /// Top Via (RFC 3261 §20.42).
    pub fn via(&self) -> Result<Via<'_>, HeaderError> {
        todo!()
    }

    /// All Via values in order, across lines and comma lists.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, HeaderError>> + '_ {
        std::iter::empty()
    }

    /// From (RFC 3261 §20.20).
    pub fn from(&self) -> Result<NameAddr<'_>, HeaderError> {
        todo!()
    }

    /// To (RFC 3261 §20.39).
    pub fn to(&self) -> Result<NameAddr<'_>, HeaderError> {
        todo!()
    }

    /// Call-ID (RFC 3261 §20.8).
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        todo!()
    }

    /// CSeq (RFC 3261 §20.16).
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        todo!()
    }

    /// First Contact (RFC 3261 §20.10).
    pub fn contact(&self) -> Result<Option<Contact<'_>>, HeaderError> {
        todo!()
    }

    /// All Contact values.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, HeaderError>> + '_ {
        std::iter::empty()
    }

    /// Max-Forwards (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        todo!()
    }

    /// Content-Length (RFC 3261 §20.14).
    pub fn content_length(&self) -> Result<Option<u32>, HeaderError> {
        todo!()
    }

    /// Content-Type (RFC 3261 §20.15), as written.
    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }

    /// Route values in order (RFC 3261 §20.34).
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        std::iter::empty()
    }

    /// Record-Route values in order (RFC 3261 §20.30).
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        std::iter::empty()
    }

    /// Refer-To (RFC 3515 §2.1).
    pub fn refer_to(&self) -> Result<Option<NameAddr<'_>>, HeaderError> {
        todo!()
    }

    /// Expires (RFC 3261 §20.19), seconds.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        todo!()
    }
}

impl fmt::Display for Message {
    /// The message as text (body lossily), for debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.buf))
    }
}

//! SIP message parser and serialiser (RFC 3261 §7, §20, §25), zero-copy over
//! [`bytes::Bytes`].
//!
//! A [`Message`] keeps the received buffer and `u32` spans for the start
//! line, each header and the body; typed accessors parse values on demand
//! and borrow from the buffer. Parsing is one pass with `memchr` and one
//! allocation (the header table); only a message with folded header lines
//! is copied once more, its folds turned into spaces so values read as LWS.
//! Limits are explicit ([`ParseLimits`]).
//!
//! The parser is liberal where RFC 3261 allows it (any header-name case,
//! compact forms, LWS around the colon, folding, bare LF line ends, leading
//! CRLFs, extension methods and headers) and rejects with a
//! [`ParseError`] whose `Display` is the reason phrase of the 400.
//! Mandatory-header checks are separate ([`Message::validate_request`]) so
//! a 400 can still be addressed using the Via of a flawed request.
//!
//! Streams (TCP/TLS) are cut into messages with [`frame_length`]; responses
//! and requests are written with [`ResponseBuilder`] and [`RequestBuilder`].
//!
//! ```
//! use bytes::Bytes;
//! use dialgate::sip::message::{Message, ResponseBuilder};
//!
//! let datagram = Bytes::from_static(
//!     b"OPTIONS sip:gw@example.com SIP/2.0\r\n\
//!       v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport\r\n\
//!       f: <sip:a@example.com>;tag=1\r\nt: <sip:gw@example.com>\r\n\
//!       i: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
//! );
//! let request = Message::parse(datagram)?;
//! let reply = match request.validate_request() {
//!     Ok(()) => ResponseBuilder::for_request(&request, 200, "OK").to_tag("t1"),
//!     Err(e) => ResponseBuilder::for_request(&request, e.status_code(), e.reason_phrase()),
//! }
//! .header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO")
//! .build();
//! assert!(reply.starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1"));
//! # Ok::<(), dialgate::sip::message::ParseError>(())
//! ```
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
        match self {
            ParseError::Empty => "Empty message",
            ParseError::MessageTooLarge => "Message too large",
            ParseError::HeaderLineTooLong => "Header line too long",
            ParseError::TooManyHeaders => "Too many headers",
            ParseError::MalformedStartLine => "Malformed start line",
            ParseError::UnsupportedVersion => "Unsupported SIP version",
            ParseError::MalformedHeader => "Malformed header",
            ParseError::IncompleteHeaders => "Incomplete headers",
            ParseError::NotUtf8 => "Headers not UTF-8",
            ParseError::BadContentLength => "Bad Content-Length",
            ParseError::TruncatedBody => "Truncated body",
            ParseError::MissingCallId => "Missing Call-ID",
            ParseError::MissingFrom => "Missing From",
            ParseError::MissingTo => "Missing To",
            ParseError::MissingCSeq => "Missing CSeq",
            ParseError::MissingVia => "Missing Via",
            ParseError::BadCSeq => "Bad CSeq",
            ParseError::CSeqMethodMismatch => "CSeq method mismatch",
            ParseError::BadVia => "Bad Via",
            ParseError::BadFrom => "Bad From",
            ParseError::BadTo => "Bad To",
            ParseError::BadMaxForwards => "Bad Max-Forwards",
            ParseError::BadRequestUri => "Bad Request-URI",
        }
    }

    /// Every variant, for exhaustive tests.
    #[cfg(test)]
    pub(crate) const ALL: &'static [ParseError] = &[
        ParseError::Empty,
        ParseError::MessageTooLarge,
        ParseError::HeaderLineTooLong,
        ParseError::TooManyHeaders,
        ParseError::MalformedStartLine,
        ParseError::UnsupportedVersion,
        ParseError::MalformedHeader,
        ParseError::IncompleteHeaders,
        ParseError::NotUtf8,
        ParseError::BadContentLength,
        ParseError::TruncatedBody,
        ParseError::MissingCallId,
        ParseError::MissingFrom,
        ParseError::MissingTo,
        ParseError::MissingCSeq,
        ParseError::MissingVia,
        ParseError::BadCSeq,
        ParseError::CSeqMethodMismatch,
        ParseError::BadVia,
        ParseError::BadFrom,
        ParseError::BadTo,
        ParseError::BadMaxForwards,
        ParseError::BadRequestUri,
    ];

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
        Self::known(token)
            .or_else(|| is_token(token).then(|| Method::Extension(Bytes::copy_from_slice(token))))
    }

    /// Parses a method token inside `buf` without copying.
    fn from_shared(buf: &Bytes, span: Span) -> Option<Method> {
        let token = buf.get(span.range())?;
        Self::known(token)
            .or_else(|| is_token(token).then(|| Method::Extension(buf.slice(span.range()))))
    }

    fn known(token: &[u8]) -> Option<Method> {
        Some(match token {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"NOTIFY" => Method::Notify,
            b"SUBSCRIBE" => Method::Subscribe,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => return None,
        })
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            // Extension tokens are ASCII when parsed; a hand-built one may not be.
            Method::Extension(b) => std::str::from_utf8(b).unwrap_or(""),
        }
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

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Callers guarantee the buffer is under u32::MAX bytes.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    fn is_empty(self) -> bool {
        self.start >= self.end
    }
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
        if buf.len() > limits.max_message_len || buf.len() >= u32::MAX as usize {
            return Err(ParseError::MessageTooLarge);
        }
        let bytes: &[u8] = &buf;
        // Leading CRLFs are keepalives or stray line ends (§7.5: ignore them).
        let first = bytes
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let (start_end, mut pos) =
            next_line(bytes, first, limits.max_line_len)?.ok_or(ParseError::IncompleteHeaders)?;
        let start_span = Span::new(first, start_end);

        // Sized once for typical messages (a header line averages well over
        // 24 bytes), capped by the limit.
        let guess = (bytes.len() / 24).clamp(8, limits.max_headers.max(8));
        let mut headers: Vec<HeaderEntry> = Vec::with_capacity(guess);
        let mut folded = false;
        let body_start = loop {
            let Some((end, next)) = next_line(bytes, pos, limits.max_line_len)? else {
                if pos >= bytes.len() {
                    // Liberal: the last header line ended the datagram.
                    break bytes.len();
                }
                return Err(ParseError::IncompleteHeaders);
            };
            let line = bytes.get(pos..end).unwrap_or_default();
            match line.first() {
                None => break next,
                Some(b' ' | b'\t') => {
                    // Folded continuation (§7.3.1): extends the previous value.
                    let last = headers.last_mut().ok_or(ParseError::MalformedHeader)?;
                    let (vstart, vend) = trim_span(bytes, pos, end);
                    if vstart < vend {
                        if last.value_span.is_empty() {
                            last.value_span.start = vstart as u32;
                        }
                        last.value_span.end = vend as u32;
                        folded = true;
                    }
                    if (last.value_span.end - last.name_span.start) as usize > limits.max_line_len {
                        return Err(ParseError::HeaderLineTooLong);
                    }
                }
                Some(_) => {
                    if headers.len() >= limits.max_headers {
                        return Err(ParseError::TooManyHeaders);
                    }
                    let colon = memchr::memchr(b':', line).ok_or(ParseError::MalformedHeader)?;
                    let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
                    // A known name matched exactly, so only others need the
                    // token check.
                    let header_name = HeaderName::parse(name);
                    if header_name == HeaderName::Other && !is_token(name) {
                        return Err(ParseError::MalformedHeader);
                    }
                    let (nstart, nend) = (pos, pos + name.len());
                    let (vstart, vend) = trim_span(bytes, pos + colon + 1, end);
                    headers.push(HeaderEntry {
                        name: header_name,
                        name_span: Span::new(nstart, nend),
                        value_span: Span::new(vstart, vend.max(vstart)),
                    });
                }
            }
            pos = next;
        };

        let head = bytes.get(first..body_start).unwrap_or_default();
        // One UTF-8 check so that accessors can hand out &str.
        if std::str::from_utf8(head).is_err() {
            return Err(ParseError::NotUtf8);
        }

        let body_len = bytes.len() - body_start;
        let mut content_length = None;
        for h in headers
            .iter()
            .filter(|h| h.name == HeaderName::ContentLength)
        {
            let v = parse_digits(bytes.get(h.value_span.range()).unwrap_or_default())
                .filter(|&n| n <= limits.max_message_len as u64)
                .ok_or(ParseError::BadContentLength)?;
            if content_length.is_some_and(|c| c != v) {
                return Err(ParseError::BadContentLength);
            }
            content_length = Some(v);
        }
        let body = match content_length {
            Some(n) if n as usize > body_len => return Err(ParseError::TruncatedBody),
            // Bytes after Content-Length are ignored (§18.3).
            Some(n) => Span::new(body_start, body_start + n as usize),
            None => Span::new(body_start, bytes.len()),
        };

        let buf = if folded {
            unfold(&buf, first, body_start)
        } else {
            buf
        };
        let start = parse_start_line(&buf, start_span)?;
        Ok(Message {
            buf,
            start,
            start_span,
            headers,
            body,
        })
    }

    /// Checks the headers every request must carry (RFC 3261 §8.1.1):
    /// To, From, CSeq (method matching), Call-ID, Via; Max-Forwards
    /// is checked when present but its absence is tolerated, and the
    /// Request-URI must parse. On a response the same headers are checked,
    /// without the method and URI checks.
    pub fn validate_request(&self) -> Result<(), ParseError> {
        match self.via() {
            Ok(_) => {}
            Err(HeaderError::Missing(_)) => return Err(ParseError::MissingVia),
            Err(HeaderError::Malformed(_)) => return Err(ParseError::BadVia),
        }
        match self.from() {
            Ok(_) => {}
            Err(HeaderError::Missing(_)) => return Err(ParseError::MissingFrom),
            Err(HeaderError::Malformed(_)) => return Err(ParseError::BadFrom),
        }
        match self.to() {
            Ok(_) => {}
            Err(HeaderError::Missing(_)) => return Err(ParseError::MissingTo),
            Err(HeaderError::Malformed(_)) => return Err(ParseError::BadTo),
        }
        if self.call_id().is_err() {
            return Err(ParseError::MissingCallId);
        }
        let cseq = match self.cseq() {
            Ok(c) => c,
            Err(HeaderError::Missing(_)) => return Err(ParseError::MissingCSeq),
            Err(HeaderError::Malformed(_)) => return Err(ParseError::BadCSeq),
        };
        if let Some(method) = self.method() {
            // §8.1.1.5: the CSeq method matches the request, ACK and CANCEL included.
            if cseq.method != *method {
                return Err(ParseError::CSeqMethodMismatch);
            }
            if crate::sip::uri::Uri::parse(self.request_uri()).is_err() {
                return Err(ParseError::BadRequestUri);
            }
        }
        // Liberal: a missing Max-Forwards is tolerated, a malformed one is not.
        if self.max_forwards().is_err() {
            return Err(ParseError::BadMaxForwards);
        }
        Ok(())
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
        match self.start {
            StartLine::Request { uri, .. } => self.str_at(uri),
            StartLine::Response { .. } => "",
        }
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
        match self.start {
            StartLine::Response { reason, .. } => Some(self.str_at(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// The start line without its line ending.
    pub fn start_line(&self) -> &str {
        self.str_at(self.start_span)
    }

    /// Text of a span inside the validated header section.
    fn str_at(&self, span: Span) -> &str {
        self.buf
            .get(span.range())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The span of a sub-slice of the buffer.
    fn span_of(&self, s: &str) -> Option<Span> {
        let start = (s.as_ptr() as usize).checked_sub(self.buf.as_ptr() as usize)?;
        let end = start
            .checked_add(s.len())
            .filter(|&e| e <= self.buf.len())?;
        Some(Span::new(start, end))
    }

    /// First header line with this name.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.str_at(h.value_span))
    }

    /// All header lines with this name, in order.
    pub fn headers(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.str_at(h.value_span))
    }

    /// First header by name as written (case-insensitive, compact forms
    /// understood), for headers without a [`HeaderName`] variant.
    pub fn header_named(&self, name: &str) -> Option<&str> {
        match HeaderName::parse(name.as_bytes()) {
            HeaderName::Other => self
                .iter_headers()
                .find(|h| h.name == HeaderName::Other && h.raw_name.eq_ignore_ascii_case(name))
                .map(|h| h.value),
            known => self.header(known),
        }
    }

    /// All values of a comma-separated list header (Via, Contact, Route,
    /// Record-Route, Allow, Supported ...), across lines, split at commas
    /// outside quotes and `<...>`. Not for headers whose values may contain
    /// bare commas (Date, WWW-Authenticate).
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers(name).flat_map(split_list)
    }

    /// All headers in order.
    pub fn iter_headers(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        self.headers.iter().map(|h| Header {
            name: h.name,
            raw_name: self.str_at(h.name_span),
            value: self.str_at(h.value_span),
        })
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body.range()).unwrap_or_default()
    }

    /// The body as a zero-copy slice of the buffer.
    pub fn body_bytes(&self) -> Bytes {
        if self.buf.get(self.body.range()).is_some() {
            self.buf.slice(self.body.range())
        } else {
            Bytes::new()
        }
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
        let line = self
            .header(HeaderName::Via)
            .ok_or(HeaderError::Missing(HeaderName::Via))?;
        // The first value of the first line; an empty first item is malformed.
        let first = line.get(..list_item_end(line).unwrap_or(line.len()));
        Via::parse(first.unwrap_or(line))
    }

    /// All Via values in order, across lines and comma lists.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, HeaderError>> + '_ {
        self.header_values(HeaderName::Via).map(Via::parse)
    }

    /// From (RFC 3261 §20.20).
    pub fn from(&self) -> Result<NameAddr<'_>, HeaderError> {
        self.name_addr(HeaderName::From)
    }

    /// To (RFC 3261 §20.39).
    pub fn to(&self) -> Result<NameAddr<'_>, HeaderError> {
        self.name_addr(HeaderName::To)
    }

    fn name_addr(&self, name: HeaderName) -> Result<NameAddr<'_>, HeaderError> {
        let value = self.header(name).ok_or(HeaderError::Missing(name))?;
        NameAddr::parse_as(value, name)
    }

    /// Call-ID (RFC 3261 §20.8).
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let value = self
            .header(HeaderName::CallId)
            .ok_or(HeaderError::Missing(HeaderName::CallId))?;
        if value.is_empty() || value.bytes().any(|b| b == b' ' || b == b'\t') {
            return Err(HeaderError::Malformed(HeaderName::CallId));
        }
        Ok(value)
    }

    /// CSeq (RFC 3261 §20.16).
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        let bad = HeaderError::Malformed(HeaderName::CSeq);
        let value = self
            .header(HeaderName::CSeq)
            .ok_or(HeaderError::Missing(HeaderName::CSeq))?;
        let (seq, method) = value.split_once([' ', '\t']).ok_or(bad)?;
        let seq = parse_digits(seq.as_bytes())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(bad)?;
        let method = self
            .span_of(method.trim_ascii_start())
            .and_then(|span| Method::from_shared(&self.buf, span))
            .ok_or(bad)?;
        Ok(CSeq { seq, method })
    }

    /// First Contact (RFC 3261 §20.10).
    pub fn contact(&self) -> Result<Option<Contact<'_>>, HeaderError> {
        self.contacts().next().transpose()
    }

    /// All Contact values.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, HeaderError>> + '_ {
        self.header_values(HeaderName::Contact).map(Contact::parse)
    }

    /// Max-Forwards (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        self.number(HeaderName::MaxForwards)?
            .map(|n| u8::try_from(n).map_err(|_| HeaderError::Malformed(HeaderName::MaxForwards)))
            .transpose()
    }

    /// Content-Length (RFC 3261 §20.14).
    pub fn content_length(&self) -> Result<Option<u32>, HeaderError> {
        self.number(HeaderName::ContentLength)?
            .map(|n| {
                u32::try_from(n).map_err(|_| HeaderError::Malformed(HeaderName::ContentLength))
            })
            .transpose()
    }

    fn number(&self, name: HeaderName) -> Result<Option<u64>, HeaderError> {
        self.header(name)
            .map(|v| parse_digits(v.as_bytes()).ok_or(HeaderError::Malformed(name)))
            .transpose()
    }

    /// Content-Type (RFC 3261 §20.15), as written.
    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }

    /// Route values in order (RFC 3261 §20.34).
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        self.header_values(HeaderName::Route)
            .map(|v| NameAddr::parse_as(v, HeaderName::Route))
    }

    /// Record-Route values in order (RFC 3261 §20.30).
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        self.header_values(HeaderName::RecordRoute)
            .map(|v| NameAddr::parse_as(v, HeaderName::RecordRoute))
    }

    /// Refer-To (RFC 3515 §2.1).
    pub fn refer_to(&self) -> Result<Option<NameAddr<'_>>, HeaderError> {
        self.header(HeaderName::ReferTo)
            .map(|v| NameAddr::parse_as(v, HeaderName::ReferTo))
            .transpose()
    }

    /// Expires (RFC 3261 §20.19), seconds; values beyond 2^32-1 are clamped.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        Ok(self
            .number(HeaderName::Expires)?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

impl fmt::Display for Message {
    /// The message as text (body lossily), for debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.buf))
    }
}

/// The next line from `pos`: (content end without CR, start of the next
/// line), or `None` when no LF follows. Bare LF endings are accepted.
fn next_line(
    bytes: &[u8],
    pos: usize,
    max_line_len: usize,
) -> Result<Option<(usize, usize)>, ParseError> {
    let rest = bytes.get(pos..).unwrap_or_default();
    // CR and LF in one scan: a CR must be followed by LF, because a bare CR
    // would let a value smuggle a line break into anything that copies it
    // (responses copy Via, From, To ...).
    let Some(i) = memchr::memchr2(b'\r', b'\n', rest) else {
        if rest.len() > max_line_len {
            return Err(ParseError::HeaderLineTooLong);
        }
        return Ok(None);
    };
    let (end, next) = match (rest.get(i), rest.get(i + 1)) {
        (Some(b'\n'), _) => (i, i + 1),
        (Some(b'\r'), Some(b'\n')) => (i, i + 2),
        // CR at the very end: the LF has not arrived.
        (Some(b'\r'), None) => return Ok(None),
        _ => return Err(ParseError::MalformedHeader),
    };
    if end > max_line_len {
        return Err(ParseError::HeaderLineTooLong);
    }
    Ok(Some((pos + end, pos + next)))
}

/// `[start, end)` without surrounding spaces and tabs.
fn trim_span(bytes: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && matches!(bytes.get(start), Some(b' ' | b'\t')) {
        start += 1;
    }
    while end > start && matches!(bytes.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    (start, end)
}

/// Copies the buffer once, turning each folding line break in the header
/// section into spaces so spans stay valid and values read as LWS (§7.3.1).
fn unfold(buf: &Bytes, start: usize, end: usize) -> Bytes {
    let mut copy = bytes::BytesMut::from(&buf[..]);
    let end = end.min(copy.len());
    for i in start..end {
        if copy.get(i) == Some(&b'\n') && matches!(copy.get(i + 1), Some(b' ' | b'\t')) {
            copy[i] = b' ';
            if i > 0 && copy.get(i - 1) == Some(&b'\r') {
                copy[i - 1] = b' ';
            }
        }
    }
    copy.freeze()
}

/// Request-Line (§7.1) or Status-Line (§7.2).
fn parse_start_line(buf: &Bytes, span: Span) -> Result<StartLine, ParseError> {
    let line = buf.get(span.range()).unwrap_or_default();
    let base = span.start as usize;
    let is_sip_version = |v: &[u8]| v.eq_ignore_ascii_case(b"SIP/2.0");
    let looks_like_version = |v: &[u8]| v.len() >= 4 && v[..4].eq_ignore_ascii_case(b"SIP/");
    let mut parts = line
        .split(|&b| b == b' ')
        .scan(0usize, |offset, part| {
            let start = *offset;
            *offset += part.len() + 1;
            Some((start, part))
        })
        .filter(|(_, p)| !p.is_empty());
    let (_, first) = parts.next().ok_or(ParseError::MalformedStartLine)?;
    if looks_like_version(first) {
        if !is_sip_version(first) {
            return Err(ParseError::UnsupportedVersion);
        }
        let (code_at, code) = parts.next().ok_or(ParseError::MalformedStartLine)?;
        let status = match code {
            [a @ b'1'..=b'6', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ParseError::MalformedStartLine),
        };
        let (rstart, rend) = trim_span(buf, base + code_at + 3, base + line.len());
        return Ok(StartLine::Response {
            status,
            reason: Span::new(rstart, rend),
        });
    }
    let method = Method::from_shared(buf, Span::new(base, base + first.len()))
        .ok_or(ParseError::MalformedStartLine)?;
    let (uri_at, uri) = parts.next().ok_or(ParseError::MalformedStartLine)?;
    let (_, version) = parts.next().ok_or(ParseError::MalformedStartLine)?;
    if parts.next().is_some() || uri.contains(&b'\t') {
        return Err(ParseError::MalformedStartLine);
    }
    if !is_sip_version(version) {
        return Err(if looks_like_version(version) {
            ParseError::UnsupportedVersion
        } else {
            ParseError::MalformedStartLine
        });
    }
    Ok(StartLine::Request {
        method,
        uri: Span::new(base + uri_at, base + uri_at + uri.len()),
    })
}

/// RFC 3261 §25.1 token, non-empty.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| typed::is_token_char(b))
}

/// Decimal digits (trimmed), at most 10 of them.
pub(crate) fn parse_digits(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Splits a header value at commas outside quoted strings and `<...>`
/// (RFC 3261 §7.3.1), trimming items and skipping empty ones.
fn split_list(value: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = Some(value);
    std::iter::from_fn(move || loop {
        let s = rest?;
        let item = match list_item_end(s) {
            Some(i) => {
                rest = s.get(i + 1..);
                s.get(..i).unwrap_or("")
            }
            None => {
                rest = None;
                s
            }
        };
        let item = item.trim_ascii();
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Position of the first comma outside quoted strings and `<...>`.
fn list_item_end(s: &str) -> Option<usize> {
    // Fast path: most values hold no quote or bracket before their comma.
    let first = memchr::memchr3(b',', b'"', b'<', s.as_bytes())?;
    if s.as_bytes().get(first) == Some(&b',') {
        return Some(first);
    }
    let mut quoted = false;
    let mut escaped = false;
    let mut angle = false;
    for (i, b) in s.bytes().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'<' => angle = true,
            b'>' => angle = false,
            b',' if !angle => return Some(i),
            _ => {}
        }
    }
    None
}

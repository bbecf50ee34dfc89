//! Typed views of header values, parsed on demand from the message buffer.

use super::{HeaderError, HeaderName, Method};
use crate::sip::uri::{find_byte, split_byte, Host, Params, Uri, UriError};
use std::fmt;

/// Via transport (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// UDP
    Udp,
    /// TCP
    Tcp,
    /// TLS
    Tls,
    /// SCTP
    Sctp,
    /// WS (RFC 7118)
    Ws,
    /// WSS (RFC 7118)
    Wss,
    /// Anything else, as written.
    Other(&'a str),
}

impl fmt::Display for Transport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        })
    }
}

/// The `rport` Via parameter (RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rport {
    /// Not present.
    #[default]
    Absent,
    /// Present without value: the client asks for it to be filled in.
    Requested,
    /// Present with the port the server saw.
    Value(u16),
}

/// One Via value (RFC 3261 §20.42, RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport from `SIP/2.0/<transport>`.
    pub transport: Transport<'a>,
    /// sent-by host (IPv6 without brackets).
    pub host: Host<'a>,
    /// sent-by port.
    pub port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<&'a str>,
    /// `received` parameter.
    pub received: Option<&'a str>,
    /// `rport` parameter.
    pub rport: Rport,
    /// `maddr` parameter.
    pub maddr: Option<&'a str>,
    /// `ttl` parameter.
    pub ttl: Option<u8>,
    /// All parameters, including the ones above.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value (not a comma list).
    pub fn parse(value: &'a str) -> Result<Via<'a>, HeaderError> {
        Self::parse_inner(value).ok_or(HeaderError::Malformed(HeaderName::Via))
    }

    fn parse_inner(value: &'a str) -> Option<Via<'a>> {
        // sent-protocol = "SIP" SLASH "2.0" SLASH transport, LWS allowed around slashes.
        let (name, rest) = split_byte(value.trim_ascii(), b'/')?;
        let (version, rest) = split_byte(rest, b'/')?;
        if !name.trim_ascii().eq_ignore_ascii_case("SIP") || version.trim_ascii() != "2.0" {
            return None;
        }
        let rest = rest.trim_ascii_start();
        let t_end = rest
            .bytes()
            .position(|b| !is_token_char(b))
            .unwrap_or(rest.len());
        let (transport, rest) = rest.split_at(t_end);
        if transport.is_empty() {
            return None;
        }
        let transport = Transport::parse(transport);
        let (sent_by, params) = match find_byte(rest, b';') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let sent_by = sent_by.trim_ascii();
        // The sent-by must be separated from the transport by whitespace.
        if sent_by.is_empty() || !rest.starts_with([' ', '\t']) {
            return None;
        }
        let (host, port) = Host::parse_with_port(sent_by).ok()?;
        let mut via = Via {
            transport,
            host,
            port,
            branch: None,
            received: None,
            rport: Rport::Absent,
            maddr: None,
            ttl: None,
            params: Params::new(params),
        };
        for (name, val) in via.params.iter() {
            if name.eq_ignore_ascii_case("branch") {
                // An empty branch is as good as none; the transaction layer decides.
                via.branch = val.filter(|v| !v.is_empty());
            } else if name.eq_ignore_ascii_case("received") {
                via.received = val;
            } else if name.eq_ignore_ascii_case("rport") {
                via.rport = match val {
                    None | Some("") => Rport::Requested,
                    Some(v) => Rport::Value(v.parse().ok()?),
                };
            } else if name.eq_ignore_ascii_case("maddr") {
                via.maddr = val;
            } else if name.eq_ignore_ascii_case("ttl") {
                via.ttl = Some(val?.parse().ok()?);
            }
        }
        Some(via)
    }

    /// True when the branch carries the RFC 3261 magic cookie `z9hG4bK`
    /// (§8.1.1.7), so it can key transactions.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

/// A name-addr or addr-spec with header parameters (From, To, Contact,
/// Route, Refer-To; RFC 3261 §20.10, §25.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name without quotes (escapes kept as written).
    pub display_name: Option<&'a str>,
    /// The URI text (without `<>`).
    pub uri: &'a str,
    /// `tag` parameter.
    pub tag: Option<&'a str>,
    /// Header parameters (after `>` or, for addr-spec, after the URI).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value. Per §20.10, parameters after an addr-spec without
    /// `<>` belong to the header, not the URI.
    pub fn parse(value: &'a str) -> Result<NameAddr<'a>, HeaderError> {
        Self::parse_as(value, HeaderName::Other)
    }

    /// Parses, naming `header` in the error.
    pub(crate) fn parse_as(
        value: &'a str,
        header: HeaderName,
    ) -> Result<NameAddr<'a>, HeaderError> {
        Self::parse_inner(value).ok_or(HeaderError::Malformed(header))
    }

    fn parse_inner(value: &'a str) -> Option<NameAddr<'a>> {
        let s = value.trim_ascii();
        let (display_name, uri, params) = if let Some(quoted) = s.strip_prefix('"') {
            let close = closing_quote(quoted)?;
            let display = &quoted[..close];
            let rest = quoted[close + 1..].trim_ascii_start();
            let (uri, params) = bracketed(rest)?;
            (Some(display), uri, params)
        } else if let Some(lt) = find_byte(s, b'<') {
            let display = s[..lt].trim_ascii();
            let (uri, params) = bracketed(&s[lt..])?;
            ((!display.is_empty()).then_some(display), uri, params)
        } else {
            // addr-spec: the URI cannot contain `;` unbracketed, so the first
            // `;` starts the header parameters (§20.10).
            match find_byte(s, b';') {
                Some(i) => (None, s[..i].trim_ascii_end(), &s[i..]),
                None => (None, s, ""),
            }
        };
        if uri.is_empty()
            || find_byte(uri, b':').is_none()
            || uri.bytes().any(|b| b == b' ' || b == b'\t')
        {
            return None;
        }
        let params = Params::new(params);
        let tag = match params.get("tag") {
            Some("") => return None,
            t => t,
        };
        Some(NameAddr {
            display_name,
            uri,
            tag,
            params,
        })
    }

    /// Parses [`Self::uri`].
    pub fn parsed_uri(&self) -> Result<Uri<'a>, UriError> {
        Uri::parse(self.uri)
    }
}

/// A Contact value (RFC 3261 §20.10): an address or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER removal).
    Star,
    /// An address.
    Addr(NameAddr<'a>),
}

/// CSeq (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (32 bits, §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl<'a> Contact<'a> {
    /// Parses one Contact value.
    pub fn parse(value: &'a str) -> Result<Contact<'a>, HeaderError> {
        if value.trim_ascii() == "*" {
            Ok(Contact::Star)
        } else {
            NameAddr::parse_as(value, HeaderName::Contact).map(Contact::Addr)
        }
    }

    /// The address, unless `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }
}

impl<'a> Transport<'a> {
    /// Maps a transport token, case-insensitively.
    pub fn parse(s: &'a str) -> Transport<'a> {
        if s.eq_ignore_ascii_case("UDP") {
            Transport::Udp
        } else if s.eq_ignore_ascii_case("TCP") {
            Transport::Tcp
        } else if s.eq_ignore_ascii_case("TLS") {
            Transport::Tls
        } else if s.eq_ignore_ascii_case("SCTP") {
            Transport::Sctp
        } else if s.eq_ignore_ascii_case("WS") {
            Transport::Ws
        } else if s.eq_ignore_ascii_case("WSS") {
            Transport::Wss
        } else {
            Transport::Other(s)
        }
    }

    /// True for transports with message framing by Content-Length (§18.3).
    pub fn is_stream(&self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
}

/// `<uri>params` → (uri, params).
fn bracketed(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    let gt = find_byte(inner, b'>')?;
    let params = inner[gt + 1..].trim_ascii_start();
    if !(params.is_empty() || params.starts_with(';')) {
        return None;
    }
    Some((inner[..gt].trim_ascii(), params))
}

/// Index of the closing `"` of a quoted string whose opening quote is gone.
fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    loop {
        let i = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes.get(i) == Some(&b'"') {
            return Some(i);
        }
        // Skip the escaped character (§25.1 quoted-pair).
        from = i + 2;
    }
}

/// RFC 3261 §25.1 token characters, as a table: this runs on every byte
/// of every header name.
const TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

/// RFC 3261 §25.1 token character.
pub(crate) fn is_token_char(b: u8) -> bool {
    TOKEN_CHARS[usize::from(b)]
}

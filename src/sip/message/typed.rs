//! Typed views of header values, parsed on demand from the message buffer.

use super::{HeaderError, HeaderName, Method};
use crate::sip::uri::{Host, Params, Uri, UriError};
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
        let _ = value;
        todo!()
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
        let _ = value;
        todo!()
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

#[allow(dead_code)]
fn unused(_: HeaderName) {}

//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), borrowed from
//! the message buffer, and the dialled-number normalisation used to match
//! dial-in numbers.
//!
//! Hand-written because rsip 0.4 rejects `tel:` URIs and IPv6 hosts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a URI could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme:` prefix.
    #[error("URI without scheme")]
    MissingScheme,
    /// The host part is empty or malformed (including unbalanced `[`).
    #[error("Bad URI host")]
    BadHost,
    /// The port is not a number in 0..=65535.
    #[error("Bad URI port")]
    BadPort,
    /// The user part is empty or the number of a `tel:` URI is empty.
    #[error("Bad URI user")]
    BadUser,
}

/// URI scheme. Schemes are case-insensitive (RFC 3261 §19.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other scheme, kept opaque.
    Other(&'a str),
}

/// A host: domain name, IPv4 address or IPv6 reference (brackets removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name as written.
    Domain(&'a str),
    /// A dotted IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written in brackets in URIs and Via).
    Ipv6(Ipv6Addr),
}

/// A parsed URI borrowing from its source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The scheme.
    pub scheme: Scheme<'a>,
    /// Everything after `scheme:`, unparsed.
    pub rest: &'a str,
    /// User part (sip/sips) or the number of a tel URI. For sip users it may
    /// carry `;`-parameters of a telephone-subscriber (`+1425;phone-context=x`).
    pub user: Option<&'a str>,
    /// Password (deprecated by RFC 3261 §19.1.1 but still parsed).
    pub password: Option<&'a str>,
    /// Host; `None` for tel and opaque URIs.
    pub host: Option<Host<'a>>,
    /// Port when given.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`), or the tel parameters.
    pub params: Params<'a>,
    /// Header part after `?`, unparsed (`?` not included).
    pub headers: Option<&'a str>,
}

/// A `;name=value;flag` parameter list, iterated on demand. Names compare
/// case-insensitively; quoted values may contain `;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// Wraps a raw list, with or without the leading `;`.
    pub fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The raw text as given.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Iterates `(name, value)` pairs; flag parameters have no value.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }

    /// Value of parameter `name`; flags give `Some("")`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.unwrap_or(""))
    }

    /// True when parameter `name` is present (flag or valued).
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}

impl<'a> Host<'a> {
    /// Parses a host, IPv6 references in brackets.
    pub fn parse(s: &'a str) -> Result<Host<'a>, UriError> {
        let _ = s;
        todo!()
    }

    /// The IP address when the host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Domain(_) => None,
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
        }
    }
}

impl fmt::Display for Host<'_> {
    /// Writes the host as it appears in a URI or Via (IPv6 in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

impl<'a> Uri<'a> {
    /// Parses `sip:`, `sips:`, `tel:`; other schemes are kept opaque.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let _ = s;
        todo!()
    }

    /// Parameters carried inside the user part (`;phone-context=...`).
    pub fn user_params(&self) -> Params<'a> {
        todo!()
    }
}

/// Digits of a dialled number for matching dial-in numbers: the user part of a
/// sip/sips URI or the number of a tel URI, without leading `+`, visual
/// separators (`-.() `, also `%`-escaped) and parameters. `None` when
/// anything but digits and separators remains (e.g. `sip:conference@host`).
pub fn normalize_dialed_number(uri: &Uri<'_>) -> Option<String> {
    let _ = uri;
    todo!()
}

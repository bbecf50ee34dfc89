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
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = find_unquoted(self.rest, b';').unwrap_or(self.rest.len());
            let (item, rest) = self.rest.split_at(end);
            self.rest = rest.get(1..).unwrap_or("");
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            return Some(match split_byte(item, b'=') {
                Some((n, v)) => (n.trim_ascii_end(), Some(v.trim_ascii_start())),
                None => (item, None),
            });
        }
    }
}

impl<'a> Host<'a> {
    /// Parses a host, IPv6 references in brackets.
    pub fn parse(s: &'a str) -> Result<Host<'a>, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::BadHost)?;
            return inner.parse().map(Host::Ipv6).map_err(|_| UriError::BadHost);
        }
        if s.is_empty() {
            return Err(UriError::BadHost);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            if let Ok(ip) = s.parse() {
                return Ok(Host::Ipv4(ip));
            }
        }
        // Hostnames: letters, digits, `-`, `.`; `_` tolerated (seen in the wild).
        if s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            Ok(Host::Domain(s))
        } else {
            Err(UriError::BadHost)
        }
    }

    /// Parses `host[:port]` (IPv6 in brackets).
    pub fn parse_with_port(s: &'a str) -> Result<(Host<'a>, Option<u16>), UriError> {
        let s = s.trim_ascii();
        let (host, port) = if s.starts_with('[') {
            let close = find_byte(s, b']').ok_or(UriError::BadHost)?;
            let (h, rest) = s.split_at(close + 1);
            match rest.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if rest.trim_ascii().is_empty() => (h, None),
                None => return Err(UriError::BadHost),
            }
        } else {
            match split_byte(s, b':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let host = Host::parse(host.trim_ascii_end())?;
        let port = match port {
            Some(p) => Some(parse_port(p.trim_ascii())?),
            None => None,
        };
        Ok((host, port))
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
        let (scheme, rest) = s.split_once(':').ok_or(UriError::MissingScheme)?;
        let valid_scheme = scheme
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(UriError::MissingScheme);
        }
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme)
        };
        let mut uri = Uri {
            scheme,
            rest,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::default(),
            headers: None,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(rest)?,
            Scheme::Tel => {
                let (number, params) = match rest.find(';') {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                if number.is_empty() {
                    return Err(UriError::BadUser);
                }
                uri.user = Some(number);
                uri.params = Params::new(params);
            }
            Scheme::Other(_) => {}
        }
        Ok(uri)
    }

    /// RFC 3261 §19.1.1: `user[:password]@host[:port][;params][?headers]`.
    fn parse_sip(&mut self, rest: &'a str) -> Result<(), UriError> {
        // The user part may legally hold `;`, `?` and `/`; headers (`?a=b`)
        // may hold `@`. Take the first `@` unless a header part precedes it.
        let at = rest.find('@').filter(|&at| {
            let before = &rest[..at];
            !before.find('?').is_some_and(|q| before[q..].contains('='))
        });
        let hostpart = match at {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(UriError::BadUser);
                }
                self.user = Some(user);
                self.password = password;
                &rest[at + 1..]
            }
            None => rest,
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (hostpart, None),
        };
        // `;` cannot occur in a host or port, IPv6 included.
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => hostpart.split_at(i),
            None => (hostpart, ""),
        };
        let (host, port) = Host::parse_with_port(hostport)?;
        self.host = Some(host);
        self.port = port;
        self.params = Params::new(params);
        self.headers = headers;
        Ok(())
    }

    /// Parameters carried inside the user part (`;phone-context=...`); for a
    /// tel URI its parameters.
    pub fn user_params(&self) -> Params<'a> {
        match self.scheme {
            Scheme::Sip | Scheme::Sips => self
                .user
                .and_then(|u| u.find(';').map(|i| Params::new(&u[i..])))
                .unwrap_or_default(),
            Scheme::Tel => self.params,
            Scheme::Other(_) => Params::default(),
        }
    }

    /// The `transport` URI parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport")
    }

    /// True with the loose-routing flag `lr` (RFC 3261 §19.1.1).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains("lr")
    }
}

/// Digits of a dialled number for matching dial-in numbers: the user part of a
/// sip/sips URI or the number of a tel URI, without leading `+`, visual
/// separators (`-.() `, also `%`-escaped) and parameters. `None` when
/// anything but digits and separators remains (e.g. `sip:conference@host`).
pub fn normalize_dialed_number(uri: &Uri<'_>) -> Option<String> {
    let number = match uri.scheme {
        Scheme::Sip | Scheme::Sips | Scheme::Tel => uri.user?,
        Scheme::Other(_) => return None,
    };
    // Parameters (`;phone-context=`, `;isub=`, `;ext=`) are not part of the number.
    let number = number.split(';').next().unwrap_or("");
    let bytes = number.as_bytes();
    let mut digits = String::with_capacity(bytes.len());
    let mut i = 0;
    let mut first = true;
    while i < bytes.len() {
        let mut b = bytes[i];
        i += 1;
        if b == b'%' {
            let hi = bytes.get(i).copied().and_then(hex_value)?;
            let lo = bytes.get(i + 1).copied().and_then(hex_value)?;
            b = hi << 4 | lo;
            i += 2;
        }
        match b {
            b'0'..=b'9' => digits.push(char::from(b)),
            b'+' if first => {}
            b'-' | b'.' | b'(' | b')' | b' ' => {}
            _ => return None,
        }
        first = false;
    }
    if digits.is_empty() {
        None
    } else {
        Some(digits)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_port(s: &str) -> Result<u16, UriError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::BadPort);
    }
    s.parse().map_err(|_| UriError::BadPort)
}

/// Position of an ASCII byte; a plain loop beats `str::find` on the short
/// strings of header values. ASCII positions are always char boundaries.
pub(crate) fn find_byte(s: &str, needle: u8) -> Option<usize> {
    s.as_bytes().iter().position(|&b| b == needle)
}

/// `str::split_once` for an ASCII byte, via [`find_byte`].
pub(crate) fn split_byte(s: &str, needle: u8) -> Option<(&str, &str)> {
    let i = find_byte(s, needle)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Position of the first `needle` outside a quoted string.
pub(crate) fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    loop {
        let i = from + memchr::memchr2(needle, b'"', bytes.get(from..)?)?;
        if bytes.get(i) == Some(&needle) {
            return Some(i);
        }
        // Skip the quoted string, honouring `\x` escapes.
        let mut j = i + 1;
        loop {
            match bytes.get(j)? {
                b'\\' => j += 2,
                b'"' => break,
                _ => j += 1,
            }
        }
        from = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        normalize_dialed_number(&Uri::parse(s).unwrap())
    }

    #[test]
    fn sip_uri_parts() {
        let u =
            Uri::parse("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Some(Host::Domain("example.com")));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_loose_route());
        assert_eq!(u.headers, Some("subject=hi"));
    }

    #[test]
    fn sips_ipv6() {
        let u = Uri::parse("sips:14255550100@[2001:db8::1]:5061;transport=tls").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.host, Some(Host::Ipv6("2001:db8::1".parse().unwrap())));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.params.get("transport"), Some("tls"));
        assert_eq!(u.host.unwrap().to_string(), "[2001:db8::1]");
    }

    #[test]
    fn host_only_and_ipv4() {
        let u = Uri::parse("SIP:192.0.2.4").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, None);
        assert_eq!(u.host, Some(Host::Ipv4("192.0.2.4".parse().unwrap())));
        assert_eq!(u.port, None);
        let u = Uri::parse("sip:[::1]").unwrap();
        assert_eq!(u.host.and_then(|h| h.ip()), Some("::1".parse().unwrap()));
    }

    #[test]
    fn tel_uri() {
        let u = Uri::parse("tel:5550100;phone-context=+1425").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("5550100"));
        assert_eq!(u.params.get("phone-context"), Some("+1425"));
        assert_eq!(u.host, None);
    }

    #[test]
    fn user_params_inside_user() {
        let u = Uri::parse("sip:+1425;phone-context=example.com@gw;user=phone").unwrap();
        assert_eq!(u.user, Some("+1425;phone-context=example.com"));
        assert_eq!(u.user_params().get("phone-context"), Some("example.com"));
        assert_eq!(u.params.get("user"), Some("phone"));
    }

    #[test]
    fn opaque_scheme() {
        let u = Uri::parse("urn:service:sos").unwrap();
        assert_eq!(u.scheme, Scheme::Other("urn"));
        assert_eq!(u.rest, "service:sos");
        assert_eq!(normalize_dialed_number(&u), None);
    }

    #[test]
    fn bad_uris() {
        assert_eq!(Uri::parse("nocolon"), Err(UriError::MissingScheme));
        assert_eq!(Uri::parse(":x"), Err(UriError::MissingScheme));
        assert_eq!(Uri::parse("sip:"), Err(UriError::BadHost));
        assert_eq!(Uri::parse("sip:@h"), Err(UriError::BadUser));
        assert_eq!(Uri::parse("sip:a@h:99999"), Err(UriError::BadPort));
        assert_eq!(Uri::parse("sip:a@h:"), Err(UriError::BadPort));
        assert_eq!(Uri::parse("sip:a@[::1"), Err(UriError::BadHost));
        assert_eq!(Uri::parse("sip:a@ho st"), Err(UriError::BadHost));
        assert_eq!(Uri::parse("tel:"), Err(UriError::BadUser));
    }

    #[test]
    fn header_part_with_at_sign() {
        let u = Uri::parse("sip:host.example?to=a@b").unwrap();
        assert_eq!(u.user, None);
        assert_eq!(u.host, Some(Host::Domain("host.example")));
        assert_eq!(u.headers, Some("to=a@b"));
    }

    #[test]
    fn params_iteration() {
        let p = Params::new(";a=1; b ;c = \"x;y\";;d");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(
            v,
            vec![
                ("a", Some("1")),
                ("b", None),
                ("c", Some("\"x;y\"")),
                ("d", None)
            ]
        );
        assert_eq!(p.get("B"), Some(""));
        assert!(p.contains("d"));
        assert!(!p.contains("e"));
        assert!(Params::new(";;").is_empty());
    }

    #[test]
    fn dialed_numbers() {
        let want = Some("14255550100".to_string());
        assert_eq!(norm("sip:+1-425-555-0100@gw;user=phone"), want);
        assert_eq!(norm("tel:+1.425.555.0100"), want);
        assert_eq!(
            norm("sips:14255550100@[2001:db8::1]:5061;transport=tls"),
            want
        );
        assert_eq!(norm("sip:%2B14255550100@h"), want);
        assert_eq!(norm("sip:%2b1%2d425%2D555%200100@h"), want);
        assert_eq!(norm("sip:+1(425)555-0100@h"), want);
        assert_eq!(
            norm("tel:5550100;phone-context=+1425"),
            Some("5550100".to_string())
        );
        assert_eq!(
            norm("sip:5550100;phone-context=+1425@gw;user=phone"),
            Some("5550100".to_string())
        );
        assert_eq!(norm("sip:conference@host"), None);
        assert_eq!(norm("sip:host"), None);
        assert_eq!(norm("sip:1+2@h"), None);
        assert_eq!(norm("sip:+@h"), None);
        assert_eq!(norm("sip:%2@h"), None);
        assert_eq!(norm("sip:%zz1@h"), None);
        assert_eq!(norm("tel:+1-800-FLOWERS"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_text_never_panics(s in "\\PC{0,80}", t in "(sip|sips|tel):[-+.;=@:%0-9a-zA-Z\\[\\]?]{0,40}") {
            for input in [s.as_str(), t.as_str()] {
                if let Ok(u) = Uri::parse(input) {
                    let _ = (normalize_dialed_number(&u), u.user_params().iter().count());
                    let _ = (u.transport(), u.is_loose_route(), u.host.map(|h| h.to_string()));
                }
            }
        }
    }
}

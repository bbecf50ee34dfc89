//! Transaction keys: how a message finds its transaction
//! (RFC 3261 §17.1.3 for client transactions, §17.2.3 for server ones).
//!
//! The user-agent core extracts the few header values from the parsed
//! message and builds a key here; this layer never sees the parser. A key
//! owns its text in one allocation: a tag byte, length-prefixed fields and
//! the method last, so two different field lists never collide.

use std::fmt::Write as _;

/// The RFC 3261 magic cookie that starts every compliant branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Why a key could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The Via branch does not start with `z9hG4bK`, so RFC 3261 matching
    /// does not apply (use the RFC 2543 key instead).
    #[error("Via branch lacks the z9hG4bK magic cookie")]
    NoMagicCookie,
    /// The CSeq method is empty.
    #[error("empty method")]
    EmptyMethod,
    /// The key text would exceed 4 GiB.
    #[error("transaction key too long")]
    TooLong,
}

/// Header values of an incoming request, as extracted by the user-agent
/// core, from which a server transaction key is built (RFC 3261 §17.2.3).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestKeyParts<'a> {
    /// CSeq method (the request method).
    pub method: &'a str,
    /// `branch` parameter of the top Via, if present.
    pub branch: Option<&'a str>,
    /// sent-by of the top Via (`host[:port]`). Supply the port explicitly
    /// (the transport default when absent) so `host` and `host:5060` match.
    pub sent_by: &'a str,
    /// Request-URI as text (RFC 2543 fallback only).
    pub request_uri: &'a str,
    /// To tag, if any (RFC 2543 fallback only).
    pub to_tag: Option<&'a str>,
    /// From tag, if any (RFC 2543 fallback only).
    pub from_tag: Option<&'a str>,
    /// Call-ID (RFC 2543 fallback only).
    pub call_id: &'a str,
    /// CSeq number (RFC 2543 fallback only).
    pub cseq: u32,
    /// The whole top Via header value (RFC 2543 fallback only).
    pub top_via: &'a str,
}

/// Identifies a server transaction (RFC 3261 §17.2.3).
///
/// * RFC 3261 variant: top Via branch + sent-by + method, where an ACK maps
///   to INVITE (so the ACK for a non-2xx response finds its INVITE
///   transaction) and CANCEL keeps its own method (its own transaction).
/// * RFC 2543 variant (branch without the magic cookie): Request-URI,
///   From tag, Call-ID, CSeq number, top Via and method (ACK mapped to
///   INVITE). The To tag is part of the key except for INVITE, ACK and
///   CANCEL: an ACK carries the To tag of our response while the INVITE it
///   acknowledges had none, and a CANCEL copies the INVITE's To.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTransactionKey {
    repr: Box<str>,
    method_at: u32,
}

/// Identifies a client transaction: top Via branch + CSeq method of the
/// response (RFC 3261 §17.1.3). The branch is the one the gateway generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTransactionKey {
    repr: Box<str>,
    method_at: u32,
}

const TAG_RFC3261: char = '3';
const TAG_RFC2543: char = '2';

fn push_field(out: &mut String, field: &str) {
    // Length prefix keeps the encoding unambiguous whatever the field holds.
    let _ = write!(out, "{}:", field.len());
    out.push_str(field);
}

/// Appends the method, mapping ACK to INVITE when asked.
fn finish(mut out: String, method: &str, ack_is_invite: bool) -> Result<(Box<str>, u32), KeyError> {
    if method.is_empty() {
        return Err(KeyError::EmptyMethod);
    }
    let method_at = u32::try_from(out.len()).map_err(|_| KeyError::TooLong)?;
    let method = if ack_is_invite && method == "ACK" {
        "INVITE"
    } else {
        method
    };
    out.push_str(method);
    u32::try_from(out.len()).map_err(|_| KeyError::TooLong)?;
    Ok((out.into_boxed_str(), method_at))
}

impl ServerTransactionKey {
    /// Builds the key for an incoming request: RFC 3261 matching when the
    /// branch carries the magic cookie, the RFC 2543 fallback otherwise.
    /// ACK maps to INVITE.
    pub fn from_request(parts: &RequestKeyParts<'_>) -> Result<Self, KeyError> {
        match parts.branch {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => {
                Self::rfc3261(branch, parts.sent_by, parts.method)
            }
            _ => Self::rfc2543(parts),
        }
    }

    /// RFC 3261 key (§17.2.3): branch, sent-by (host compared without
    /// regard to ASCII case) and method, ACK mapped to INVITE.
    pub fn rfc3261(branch: &str, sent_by: &str, method: &str) -> Result<Self, KeyError> {
        if !branch.starts_with(MAGIC_COOKIE) {
            return Err(KeyError::NoMagicCookie);
        }
        let mut out = String::with_capacity(branch.len() + sent_by.len() + method.len() + 12);
        out.push(TAG_RFC3261);
        push_field(&mut out, branch);
        push_field(&mut out, &sent_by.to_ascii_lowercase());
        let (repr, method_at) = finish(out, method, true)?;
        Ok(Self { repr, method_at })
    }

    /// RFC 2543 fallback key (§17.2.3, last paragraphs); ACK mapped to INVITE.
    pub fn rfc2543(parts: &RequestKeyParts<'_>) -> Result<Self, KeyError> {
        let mut out = String::with_capacity(
            parts.request_uri.len() + parts.call_id.len() + parts.top_via.len() + 64,
        );
        out.push(TAG_RFC2543);
        push_field(&mut out, parts.request_uri);
        push_field(&mut out, parts.from_tag.unwrap_or(""));
        push_field(&mut out, parts.call_id);
        let _ = write!(out, "{};", parts.cseq);
        push_field(&mut out, parts.top_via);
        let to_tag = match parts.method {
            "INVITE" | "ACK" | "CANCEL" => "",
            _ => parts.to_tag.unwrap_or(""),
        };
        push_field(&mut out, to_tag);
        let (repr, method_at) = finish(out, parts.method, true)?;
        Ok(Self { repr, method_at })
    }

    /// The method part of the key (INVITE for an ACK).
    pub fn method(&self) -> &str {
        self.repr.get(self.method_at as usize..).unwrap_or("")
    }

    /// Whether this key uses RFC 3261 (magic cookie) matching.
    pub fn is_rfc3261(&self) -> bool {
        self.repr.starts_with(TAG_RFC3261)
    }

    /// For a CANCEL key, the key of the INVITE transaction it targets
    /// (RFC 3261 §9.2: same fields, method INVITE). `None` for other methods.
    pub fn cancelled_invite(&self) -> Option<Self> {
        if self.method() != "CANCEL" {
            return None;
        }
        let head = self.repr.get(..self.method_at as usize)?;
        let mut out = String::with_capacity(head.len() + 6);
        out.push_str(head);
        out.push_str("INVITE");
        Some(Self {
            repr: out.into_boxed_str(),
            method_at: self.method_at,
        })
    }
}

impl ClientTransactionKey {
    /// Key from the branch the gateway put in the top Via and the CSeq
    /// method (of the request when creating, of the response when matching).
    pub fn new(branch: &str, method: &str) -> Result<Self, KeyError> {
        let mut out = String::with_capacity(branch.len() + method.len() + 8);
        push_field(&mut out, branch);
        let (repr, method_at) = finish(out, method, false)?;
        Ok(Self { repr, method_at })
    }

    /// The CSeq method part of the key.
    pub fn method(&self) -> &str {
        self.repr.get(self.method_at as usize..).unwrap_or("")
    }

    /// The Via branch part of the key.
    pub fn branch(&self) -> &str {
        self.repr
            .split_once(':')
            .and_then(|(len, rest)| rest.get(..len.parse::<usize>().ok()?))
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(method: &'a str, branch: Option<&'a str>) -> RequestKeyParts<'a> {
        RequestKeyParts {
            method,
            branch,
            sent_by: "Trunk.example.net:5060",
            request_uri: "sip:+4930123@gw.example.com",
            to_tag: None,
            from_tag: Some("abc"),
            call_id: "call-1@trunk",
            cseq: 7,
            top_via: "SIP/2.0/UDP trunk.example.net:5060",
        }
    }

    #[test]
    fn ack_matches_invite_cancel_does_not() {
        let b = Some("z9hG4bK776asdhds");
        let invite = ServerTransactionKey::from_request(&parts("INVITE", b)).unwrap();
        let ack = ServerTransactionKey::from_request(&parts("ACK", b)).unwrap();
        let cancel = ServerTransactionKey::from_request(&parts("CANCEL", b)).unwrap();
        assert!(invite.is_rfc3261());
        assert_eq!(invite, ack);
        assert_eq!(ack.method(), "INVITE");
        assert_ne!(invite, cancel);
        assert_eq!(cancel.method(), "CANCEL");
        assert_eq!(cancel.cancelled_invite(), Some(invite.clone()));
        assert_eq!(invite.cancelled_invite(), None);
    }

    #[test]
    fn branch_and_sent_by_distinguish() {
        let a = ServerTransactionKey::rfc3261("z9hG4bK1", "a.example:5060", "INVITE").unwrap();
        let b = ServerTransactionKey::rfc3261("z9hG4bK2", "a.example:5060", "INVITE").unwrap();
        let c = ServerTransactionKey::rfc3261("z9hG4bK1", "b.example:5060", "INVITE").unwrap();
        let d = ServerTransactionKey::rfc3261("z9hG4bK1", "A.EXAMPLE:5060", "INVITE").unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, d);
        let bye = ServerTransactionKey::rfc3261("z9hG4bK1", "a.example:5060", "BYE").unwrap();
        assert_ne!(a, bye);
        assert_eq!(
            ServerTransactionKey::rfc3261("1234", "a:1", "INVITE"),
            Err(KeyError::NoMagicCookie)
        );
        assert_eq!(
            ServerTransactionKey::rfc3261("z9hG4bK1", "a:1", ""),
            Err(KeyError::EmptyMethod)
        );
    }

    #[test]
    fn length_prefix_prevents_field_confusion() {
        let a = ServerTransactionKey::rfc3261("z9hG4bKab", "c:1", "BYE").unwrap();
        let b = ServerTransactionKey::rfc3261("z9hG4bKa", "bc:1", "BYE").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn rfc2543_fallback() {
        let invite = ServerTransactionKey::from_request(&parts("INVITE", None)).unwrap();
        assert!(!invite.is_rfc3261());
        // The ACK carries our To tag; it still matches the INVITE.
        let mut ack_parts = parts("ACK", Some("oldstyle1"));
        ack_parts.to_tag = Some("gw-tag");
        let ack = ServerTransactionKey::from_request(&ack_parts).unwrap();
        assert_eq!(invite, ack);
        let cancel = ServerTransactionKey::from_request(&parts("CANCEL", None)).unwrap();
        assert_ne!(invite, cancel);
        assert_eq!(cancel.cancelled_invite(), Some(invite.clone()));
        // Another CSeq is another transaction.
        let mut other = parts("INVITE", None);
        other.cseq = 8;
        assert_ne!(ServerTransactionKey::from_request(&other).unwrap(), invite);
        // Non-INVITE requests include the To tag.
        let mut bye1 = parts("BYE", None);
        bye1.to_tag = Some("x");
        let mut bye2 = parts("BYE", None);
        bye2.to_tag = Some("y");
        assert_ne!(
            ServerTransactionKey::from_request(&bye1).unwrap(),
            ServerTransactionKey::from_request(&bye2).unwrap()
        );
        // An RFC 3261 key never equals an RFC 2543 key.
        assert_ne!(
            ServerTransactionKey::from_request(&parts("INVITE", Some("z9hG4bK1"))).unwrap(),
            invite
        );
    }

    #[test]
    fn client_keys() {
        let bye = ClientTransactionKey::new("z9hG4bKgw1", "BYE").unwrap();
        let cancel = ClientTransactionKey::new("z9hG4bKgw1", "CANCEL").unwrap();
        assert_ne!(bye, cancel);
        assert_eq!(bye, ClientTransactionKey::new("z9hG4bKgw1", "BYE").unwrap());
        assert_eq!(bye.method(), "BYE");
        assert_eq!(bye.branch(), "z9hG4bKgw1");
        assert!(ClientTransactionKey::new("z9hG4bKgw1", "").is_err());
    }
}

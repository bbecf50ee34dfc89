//! Header names (RFC 3261 §20) and their compact forms (§7.3.3).

use std::fmt;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $canon:literal ),* $(,)?) => {
        /// A known header name; compact forms map to their full header.
        /// Unknown names are [`HeaderName::Other`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// Any header not listed above.
            Other,
        }

        impl HeaderName {
            /// Canonical spelling; empty for [`HeaderName::Other`].
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// Every known name, for exhaustive tests.
            #[cfg(test)]
            pub(crate) const ALL: &'static [HeaderName] = &[ $( HeaderName::$variant, )* ];

        }
    };
}

header_names! {
    /// Accept
    Accept => "Accept",
    /// Accept-Encoding
    AcceptEncoding => "Accept-Encoding",
    /// Accept-Language
    AcceptLanguage => "Accept-Language",
    /// Alert-Info
    AlertInfo => "Alert-Info",
    /// Allow
    Allow => "Allow",
    /// Allow-Events (compact `u`)
    AllowEvents => "Allow-Events",
    /// Authorization
    Authorization => "Authorization",
    /// Call-ID (compact `i`)
    CallId => "Call-ID",
    /// Call-Info
    CallInfo => "Call-Info",
    /// Contact (compact `m`)
    Contact => "Contact",
    /// Content-Disposition
    ContentDisposition => "Content-Disposition",
    /// Content-Encoding (compact `e`)
    ContentEncoding => "Content-Encoding",
    /// Content-Language
    ContentLanguage => "Content-Language",
    /// Content-Length (compact `l`)
    ContentLength => "Content-Length",
    /// Content-Type (compact `c`)
    ContentType => "Content-Type",
    /// CSeq
    CSeq => "CSeq",
    /// Date
    Date => "Date",
    /// Error-Info
    ErrorInfo => "Error-Info",
    /// Event (compact `o`)
    Event => "Event",
    /// Expires
    Expires => "Expires",
    /// From (compact `f`)
    From => "From",
    /// In-Reply-To
    InReplyTo => "In-Reply-To",
    /// Max-Forwards
    MaxForwards => "Max-Forwards",
    /// MIME-Version
    MimeVersion => "MIME-Version",
    /// Min-Expires
    MinExpires => "Min-Expires",
    /// Min-SE (RFC 4028)
    MinSe => "Min-SE",
    /// Organization
    Organization => "Organization",
    /// P-Asserted-Identity (RFC 3325)
    PAssertedIdentity => "P-Asserted-Identity",
    /// P-Preferred-Identity (RFC 3325)
    PPreferredIdentity => "P-Preferred-Identity",
    /// Priority
    Priority => "Priority",
    /// Privacy (RFC 3323)
    Privacy => "Privacy",
    /// Proxy-Authenticate
    ProxyAuthenticate => "Proxy-Authenticate",
    /// Proxy-Authorization
    ProxyAuthorization => "Proxy-Authorization",
    /// Proxy-Require
    ProxyRequire => "Proxy-Require",
    /// RAck (RFC 3262)
    RAck => "RAck",
    /// Reason (RFC 3326)
    Reason => "Reason",
    /// Record-Route
    RecordRoute => "Record-Route",
    /// Referred-By (RFC 3892, compact `b`)
    ReferredBy => "Referred-By",
    /// Refer-To (RFC 3515, compact `r`)
    ReferTo => "Refer-To",
    /// Replaces (RFC 3891)
    Replaces => "Replaces",
    /// Reply-To
    ReplyTo => "Reply-To",
    /// Require
    Require => "Require",
    /// Retry-After
    RetryAfter => "Retry-After",
    /// Route
    Route => "Route",
    /// RSeq (RFC 3262)
    RSeq => "RSeq",
    /// Server
    Server => "Server",
    /// Session-Expires (RFC 4028, compact `x`)
    SessionExpires => "Session-Expires",
    /// Subject (compact `s`)
    Subject => "Subject",
    /// Subscription-State (RFC 6665)
    SubscriptionState => "Subscription-State",
    /// Supported (compact `k`)
    Supported => "Supported",
    /// Timestamp
    Timestamp => "Timestamp",
    /// To (compact `t`)
    To => "To",
    /// Unsupported
    Unsupported => "Unsupported",
    /// User-Agent
    UserAgent => "User-Agent",
    /// Via (compact `v`)
    Via => "Via",
    /// Warning
    Warning => "Warning",
    /// WWW-Authenticate
    WwwAuthenticate => "WWW-Authenticate",
}

impl HeaderName {
    /// Full-name lookup: dispatch on length and first letter, then one or
    /// two case-insensitive compares (this runs for every header line).
    fn from_full(name: &[u8]) -> HeaderName {
        let Some(first) = name.first() else {
            return HeaderName::Other;
        };
        match (name.len(), first.to_ascii_lowercase()) {
            (2, b't') => {
                if eq_lower(name, b"to") {
                    HeaderName::To
                } else {
                    HeaderName::Other
                }
            }
            (3, b'v') => {
                if eq_lower(name, b"via") {
                    HeaderName::Via
                } else {
                    HeaderName::Other
                }
            }
            (4, b'c') => {
                if eq_lower(name, b"cseq") {
                    HeaderName::CSeq
                } else {
                    HeaderName::Other
                }
            }
            (4, b'd') => {
                if eq_lower(name, b"date") {
                    HeaderName::Date
                } else {
                    HeaderName::Other
                }
            }
            (4, b'f') => {
                if eq_lower(name, b"from") {
                    HeaderName::From
                } else {
                    HeaderName::Other
                }
            }
            (4, b'r') => {
                if eq_lower(name, b"rack") {
                    HeaderName::RAck
                } else if eq_lower(name, b"rseq") {
                    HeaderName::RSeq
                } else {
                    HeaderName::Other
                }
            }
            (5, b'a') => {
                if eq_lower(name, b"allow") {
                    HeaderName::Allow
                } else {
                    HeaderName::Other
                }
            }
            (5, b'e') => {
                if eq_lower(name, b"event") {
                    HeaderName::Event
                } else {
                    HeaderName::Other
                }
            }
            (5, b'r') => {
                if eq_lower(name, b"route") {
                    HeaderName::Route
                } else {
                    HeaderName::Other
                }
            }
            (6, b'a') => {
                if eq_lower(name, b"accept") {
                    HeaderName::Accept
                } else {
                    HeaderName::Other
                }
            }
            (6, b'm') => {
                if eq_lower(name, b"min-se") {
                    HeaderName::MinSe
                } else {
                    HeaderName::Other
                }
            }
            (6, b'r') => {
                if eq_lower(name, b"reason") {
                    HeaderName::Reason
                } else {
                    HeaderName::Other
                }
            }
            (6, b's') => {
                if eq_lower(name, b"server") {
                    HeaderName::Server
                } else {
                    HeaderName::Other
                }
            }
            (7, b'c') => {
                if eq_lower(name, b"call-id") {
                    HeaderName::CallId
                } else if eq_lower(name, b"contact") {
                    HeaderName::Contact
                } else {
                    HeaderName::Other
                }
            }
            (7, b'e') => {
                if eq_lower(name, b"expires") {
                    HeaderName::Expires
                } else {
                    HeaderName::Other
                }
            }
            (7, b'p') => {
                if eq_lower(name, b"privacy") {
                    HeaderName::Privacy
                } else {
                    HeaderName::Other
                }
            }
            (7, b'r') => {
                if eq_lower(name, b"require") {
                    HeaderName::Require
                } else {
                    HeaderName::Other
                }
            }
            (7, b's') => {
                if eq_lower(name, b"subject") {
                    HeaderName::Subject
                } else {
                    HeaderName::Other
                }
            }
            (7, b'w') => {
                if eq_lower(name, b"warning") {
                    HeaderName::Warning
                } else {
                    HeaderName::Other
                }
            }
            (8, b'p') => {
                if eq_lower(name, b"priority") {
                    HeaderName::Priority
                } else {
                    HeaderName::Other
                }
            }
            (8, b'r') => {
                if eq_lower(name, b"refer-to") {
                    HeaderName::ReferTo
                } else if eq_lower(name, b"replaces") {
                    HeaderName::Replaces
                } else if eq_lower(name, b"reply-to") {
                    HeaderName::ReplyTo
                } else {
                    HeaderName::Other
                }
            }
            (9, b'c') => {
                if eq_lower(name, b"call-info") {
                    HeaderName::CallInfo
                } else {
                    HeaderName::Other
                }
            }
            (9, b's') => {
                if eq_lower(name, b"supported") {
                    HeaderName::Supported
                } else {
                    HeaderName::Other
                }
            }
            (9, b't') => {
                if eq_lower(name, b"timestamp") {
                    HeaderName::Timestamp
                } else {
                    HeaderName::Other
                }
            }
            (10, b'a') => {
                if eq_lower(name, b"alert-info") {
                    HeaderName::AlertInfo
                } else {
                    HeaderName::Other
                }
            }
            (10, b'e') => {
                if eq_lower(name, b"error-info") {
                    HeaderName::ErrorInfo
                } else {
                    HeaderName::Other
                }
            }
            (10, b'u') => {
                if eq_lower(name, b"user-agent") {
                    HeaderName::UserAgent
                } else {
                    HeaderName::Other
                }
            }
            (11, b'i') => {
                if eq_lower(name, b"in-reply-to") {
                    HeaderName::InReplyTo
                } else {
                    HeaderName::Other
                }
            }
            (11, b'm') => {
                if eq_lower(name, b"min-expires") {
                    HeaderName::MinExpires
                } else {
                    HeaderName::Other
                }
            }
            (11, b'r') => {
                if eq_lower(name, b"referred-by") {
                    HeaderName::ReferredBy
                } else if eq_lower(name, b"retry-after") {
                    HeaderName::RetryAfter
                } else {
                    HeaderName::Other
                }
            }
            (11, b'u') => {
                if eq_lower(name, b"unsupported") {
                    HeaderName::Unsupported
                } else {
                    HeaderName::Other
                }
            }
            (12, b'a') => {
                if eq_lower(name, b"allow-events") {
                    HeaderName::AllowEvents
                } else {
                    HeaderName::Other
                }
            }
            (12, b'c') => {
                if eq_lower(name, b"content-type") {
                    HeaderName::ContentType
                } else {
                    HeaderName::Other
                }
            }
            (12, b'm') => {
                if eq_lower(name, b"max-forwards") {
                    HeaderName::MaxForwards
                } else if eq_lower(name, b"mime-version") {
                    HeaderName::MimeVersion
                } else {
                    HeaderName::Other
                }
            }
            (12, b'o') => {
                if eq_lower(name, b"organization") {
                    HeaderName::Organization
                } else {
                    HeaderName::Other
                }
            }
            (12, b'r') => {
                if eq_lower(name, b"record-route") {
                    HeaderName::RecordRoute
                } else {
                    HeaderName::Other
                }
            }
            (13, b'a') => {
                if eq_lower(name, b"authorization") {
                    HeaderName::Authorization
                } else {
                    HeaderName::Other
                }
            }
            (13, b'p') => {
                if eq_lower(name, b"proxy-require") {
                    HeaderName::ProxyRequire
                } else {
                    HeaderName::Other
                }
            }
            (14, b'c') => {
                if eq_lower(name, b"content-length") {
                    HeaderName::ContentLength
                } else {
                    HeaderName::Other
                }
            }
            (15, b'a') => {
                if eq_lower(name, b"accept-encoding") {
                    HeaderName::AcceptEncoding
                } else if eq_lower(name, b"accept-language") {
                    HeaderName::AcceptLanguage
                } else {
                    HeaderName::Other
                }
            }
            (15, b's') => {
                if eq_lower(name, b"session-expires") {
                    HeaderName::SessionExpires
                } else {
                    HeaderName::Other
                }
            }
            (16, b'c') => {
                if eq_lower(name, b"content-encoding") {
                    HeaderName::ContentEncoding
                } else if eq_lower(name, b"content-language") {
                    HeaderName::ContentLanguage
                } else {
                    HeaderName::Other
                }
            }
            (16, b'w') => {
                if eq_lower(name, b"www-authenticate") {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::Other
                }
            }
            (18, b'p') => {
                if eq_lower(name, b"proxy-authenticate") {
                    HeaderName::ProxyAuthenticate
                } else {
                    HeaderName::Other
                }
            }
            (18, b's') => {
                if eq_lower(name, b"subscription-state") {
                    HeaderName::SubscriptionState
                } else {
                    HeaderName::Other
                }
            }
            (19, b'c') => {
                if eq_lower(name, b"content-disposition") {
                    HeaderName::ContentDisposition
                } else {
                    HeaderName::Other
                }
            }
            (19, b'p') => {
                if eq_lower(name, b"p-asserted-identity") {
                    HeaderName::PAssertedIdentity
                } else if eq_lower(name, b"proxy-authorization") {
                    HeaderName::ProxyAuthorization
                } else {
                    HeaderName::Other
                }
            }
            (20, b'p') => {
                if eq_lower(name, b"p-preferred-identity") {
                    HeaderName::PPreferredIdentity
                } else {
                    HeaderName::Other
                }
            }
            _ => HeaderName::Other,
        }
    }

    /// Maps a header name as written (any case, compact forms) to its variant.
    pub fn parse(name: &[u8]) -> HeaderName {
        if let [c] = name {
            return Self::compact(c.to_ascii_lowercase());
        }
        Self::from_full(name)
    }

    /// Compact forms (RFC 3261 §7.3.3, RFC 3515, RFC 3892, RFC 4028, RFC 6665).
    fn compact(c: u8) -> HeaderName {
        match c {
            b'i' => HeaderName::CallId,
            b'm' => HeaderName::Contact,
            b'e' => HeaderName::ContentEncoding,
            b'l' => HeaderName::ContentLength,
            b'c' => HeaderName::ContentType,
            b'f' => HeaderName::From,
            b's' => HeaderName::Subject,
            b'k' => HeaderName::Supported,
            b't' => HeaderName::To,
            b'v' => HeaderName::Via,
            b'r' => HeaderName::ReferTo,
            b'b' => HeaderName::ReferredBy,
            b'o' => HeaderName::Event,
            b'u' => HeaderName::AllowEvents,
            b'x' => HeaderName::SessionExpires,
            _ => HeaderName::Other,
        }
    }
}

/// Exact case-insensitive compare against a constant of lower-case letters
/// and `-`, cheaper than `eq_ignore_ascii_case`: `x | 0x20` lower-cases a
/// letter, and among bytes from `-` (0x2d) up only the letters themselves
/// and `-` map onto those characters.
fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .all(|(&a, &b)| a | 0x20 == b && a >= b'-')
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("header"),
            other => f.write_str(other.as_str()),
        }
    }
}

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
                if name.eq_ignore_ascii_case(b"To") {
                    HeaderName::To
                } else {
                    HeaderName::Other
                }
            }
            (3, b'v') => {
                if name.eq_ignore_ascii_case(b"Via") {
                    HeaderName::Via
                } else {
                    HeaderName::Other
                }
            }
            (4, b'c') => {
                if name.eq_ignore_ascii_case(b"CSeq") {
                    HeaderName::CSeq
                } else {
                    HeaderName::Other
                }
            }
            (4, b'd') => {
                if name.eq_ignore_ascii_case(b"Date") {
                    HeaderName::Date
                } else {
                    HeaderName::Other
                }
            }
            (4, b'f') => {
                if name.eq_ignore_ascii_case(b"From") {
                    HeaderName::From
                } else {
                    HeaderName::Other
                }
            }
            (4, b'r') => {
                if name.eq_ignore_ascii_case(b"RAck") {
                    HeaderName::RAck
                } else if name.eq_ignore_ascii_case(b"RSeq") {
                    HeaderName::RSeq
                } else {
                    HeaderName::Other
                }
            }
            (5, b'a') => {
                if name.eq_ignore_ascii_case(b"Allow") {
                    HeaderName::Allow
                } else {
                    HeaderName::Other
                }
            }
            (5, b'e') => {
                if name.eq_ignore_ascii_case(b"Event") {
                    HeaderName::Event
                } else {
                    HeaderName::Other
                }
            }
            (5, b'r') => {
                if name.eq_ignore_ascii_case(b"Route") {
                    HeaderName::Route
                } else {
                    HeaderName::Other
                }
            }
            (6, b'a') => {
                if name.eq_ignore_ascii_case(b"Accept") {
                    HeaderName::Accept
                } else {
                    HeaderName::Other
                }
            }
            (6, b'm') => {
                if name.eq_ignore_ascii_case(b"Min-SE") {
                    HeaderName::MinSe
                } else {
                    HeaderName::Other
                }
            }
            (6, b'r') => {
                if name.eq_ignore_ascii_case(b"Reason") {
                    HeaderName::Reason
                } else {
                    HeaderName::Other
                }
            }
            (6, b's') => {
                if name.eq_ignore_ascii_case(b"Server") {
                    HeaderName::Server
                } else {
                    HeaderName::Other
                }
            }
            (7, b'c') => {
                if name.eq_ignore_ascii_case(b"Call-ID") {
                    HeaderName::CallId
                } else if name.eq_ignore_ascii_case(b"Contact") {
                    HeaderName::Contact
                } else {
                    HeaderName::Other
                }
            }
            (7, b'e') => {
                if name.eq_ignore_ascii_case(b"Expires") {
                    HeaderName::Expires
                } else {
                    HeaderName::Other
                }
            }
            (7, b'p') => {
                if name.eq_ignore_ascii_case(b"Privacy") {
                    HeaderName::Privacy
                } else {
                    HeaderName::Other
                }
            }
            (7, b'r') => {
                if name.eq_ignore_ascii_case(b"Require") {
                    HeaderName::Require
                } else {
                    HeaderName::Other
                }
            }
            (7, b's') => {
                if name.eq_ignore_ascii_case(b"Subject") {
                    HeaderName::Subject
                } else {
                    HeaderName::Other
                }
            }
            (7, b'w') => {
                if name.eq_ignore_ascii_case(b"Warning") {
                    HeaderName::Warning
                } else {
                    HeaderName::Other
                }
            }
            (8, b'p') => {
                if name.eq_ignore_ascii_case(b"Priority") {
                    HeaderName::Priority
                } else {
                    HeaderName::Other
                }
            }
            (8, b'r') => {
                if name.eq_ignore_ascii_case(b"Refer-To") {
                    HeaderName::ReferTo
                } else if name.eq_ignore_ascii_case(b"Replaces") {
                    HeaderName::Replaces
                } else if name.eq_ignore_ascii_case(b"Reply-To") {
                    HeaderName::ReplyTo
                } else {
                    HeaderName::Other
                }
            }
            (9, b'c') => {
                if name.eq_ignore_ascii_case(b"Call-Info") {
                    HeaderName::CallInfo
                } else {
                    HeaderName::Other
                }
            }
            (9, b's') => {
                if name.eq_ignore_ascii_case(b"Supported") {
                    HeaderName::Supported
                } else {
                    HeaderName::Other
                }
            }
            (9, b't') => {
                if name.eq_ignore_ascii_case(b"Timestamp") {
                    HeaderName::Timestamp
                } else {
                    HeaderName::Other
                }
            }
            (10, b'a') => {
                if name.eq_ignore_ascii_case(b"Alert-Info") {
                    HeaderName::AlertInfo
                } else {
                    HeaderName::Other
                }
            }
            (10, b'e') => {
                if name.eq_ignore_ascii_case(b"Error-Info") {
                    HeaderName::ErrorInfo
                } else {
                    HeaderName::Other
                }
            }
            (10, b'u') => {
                if name.eq_ignore_ascii_case(b"User-Agent") {
                    HeaderName::UserAgent
                } else {
                    HeaderName::Other
                }
            }
            (11, b'i') => {
                if name.eq_ignore_ascii_case(b"In-Reply-To") {
                    HeaderName::InReplyTo
                } else {
                    HeaderName::Other
                }
            }
            (11, b'm') => {
                if name.eq_ignore_ascii_case(b"Min-Expires") {
                    HeaderName::MinExpires
                } else {
                    HeaderName::Other
                }
            }
            (11, b'r') => {
                if name.eq_ignore_ascii_case(b"Referred-By") {
                    HeaderName::ReferredBy
                } else if name.eq_ignore_ascii_case(b"Retry-After") {
                    HeaderName::RetryAfter
                } else {
                    HeaderName::Other
                }
            }
            (11, b'u') => {
                if name.eq_ignore_ascii_case(b"Unsupported") {
                    HeaderName::Unsupported
                } else {
                    HeaderName::Other
                }
            }
            (12, b'a') => {
                if name.eq_ignore_ascii_case(b"Allow-Events") {
                    HeaderName::AllowEvents
                } else {
                    HeaderName::Other
                }
            }
            (12, b'c') => {
                if name.eq_ignore_ascii_case(b"Content-Type") {
                    HeaderName::ContentType
                } else {
                    HeaderName::Other
                }
            }
            (12, b'm') => {
                if name.eq_ignore_ascii_case(b"Max-Forwards") {
                    HeaderName::MaxForwards
                } else if name.eq_ignore_ascii_case(b"MIME-Version") {
                    HeaderName::MimeVersion
                } else {
                    HeaderName::Other
                }
            }
            (12, b'o') => {
                if name.eq_ignore_ascii_case(b"Organization") {
                    HeaderName::Organization
                } else {
                    HeaderName::Other
                }
            }
            (12, b'r') => {
                if name.eq_ignore_ascii_case(b"Record-Route") {
                    HeaderName::RecordRoute
                } else {
                    HeaderName::Other
                }
            }
            (13, b'a') => {
                if name.eq_ignore_ascii_case(b"Authorization") {
                    HeaderName::Authorization
                } else {
                    HeaderName::Other
                }
            }
            (13, b'p') => {
                if name.eq_ignore_ascii_case(b"Proxy-Require") {
                    HeaderName::ProxyRequire
                } else {
                    HeaderName::Other
                }
            }
            (14, b'c') => {
                if name.eq_ignore_ascii_case(b"Content-Length") {
                    HeaderName::ContentLength
                } else {
                    HeaderName::Other
                }
            }
            (15, b'a') => {
                if name.eq_ignore_ascii_case(b"Accept-Encoding") {
                    HeaderName::AcceptEncoding
                } else if name.eq_ignore_ascii_case(b"Accept-Language") {
                    HeaderName::AcceptLanguage
                } else {
                    HeaderName::Other
                }
            }
            (15, b's') => {
                if name.eq_ignore_ascii_case(b"Session-Expires") {
                    HeaderName::SessionExpires
                } else {
                    HeaderName::Other
                }
            }
            (16, b'c') => {
                if name.eq_ignore_ascii_case(b"Content-Encoding") {
                    HeaderName::ContentEncoding
                } else if name.eq_ignore_ascii_case(b"Content-Language") {
                    HeaderName::ContentLanguage
                } else {
                    HeaderName::Other
                }
            }
            (16, b'w') => {
                if name.eq_ignore_ascii_case(b"WWW-Authenticate") {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::Other
                }
            }
            (18, b'p') => {
                if name.eq_ignore_ascii_case(b"Proxy-Authenticate") {
                    HeaderName::ProxyAuthenticate
                } else {
                    HeaderName::Other
                }
            }
            (18, b's') => {
                if name.eq_ignore_ascii_case(b"Subscription-State") {
                    HeaderName::SubscriptionState
                } else {
                    HeaderName::Other
                }
            }
            (19, b'c') => {
                if name.eq_ignore_ascii_case(b"Content-Disposition") {
                    HeaderName::ContentDisposition
                } else {
                    HeaderName::Other
                }
            }
            (19, b'p') => {
                if name.eq_ignore_ascii_case(b"P-Asserted-Identity") {
                    HeaderName::PAssertedIdentity
                } else if name.eq_ignore_ascii_case(b"Proxy-Authorization") {
                    HeaderName::ProxyAuthorization
                } else {
                    HeaderName::Other
                }
            }
            (20, b'p') => {
                if name.eq_ignore_ascii_case(b"P-Preferred-Identity") {
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

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("header"),
            other => f.write_str(other.as_str()),
        }
    }
}

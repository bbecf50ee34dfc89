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

            /// Full-name lookup, case-insensitive.
            fn from_full(lower: &[u8]) -> HeaderName {
                $(
                    if lower.len() == $canon.len() && lower.eq_ignore_ascii_case($canon.as_bytes()) {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other
            }
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
    /// Maps a header name as written (any case, compact forms) to its variant.
    pub fn parse(name: &[u8]) -> HeaderName {
        if let [c] = name {
            return Self::compact(c.to_ascii_lowercase());
        }
        // Fast path for the headers of every call, then the full table.
        match name.len() {
            2 if name.eq_ignore_ascii_case(b"To") => HeaderName::To,
            3 if name.eq_ignore_ascii_case(b"Via") => HeaderName::Via,
            4 if name.eq_ignore_ascii_case(b"From") => HeaderName::From,
            4 if name.eq_ignore_ascii_case(b"CSeq") => HeaderName::CSeq,
            7 if name.eq_ignore_ascii_case(b"Call-ID") => HeaderName::CallId,
            7 if name.eq_ignore_ascii_case(b"Contact") => HeaderName::Contact,
            12 if name.eq_ignore_ascii_case(b"Max-Forwards") => HeaderName::MaxForwards,
            14 if name.eq_ignore_ascii_case(b"Content-Length") => HeaderName::ContentLength,
            _ => Self::from_full(name),
        }
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

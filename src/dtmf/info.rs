//! DTMF carried in SIP INFO requests (RFC 6086 INFO, with the bodies phones
//! actually send).
//!
//! Two body formats are in use:
//! - `application/dtmf-relay`: `key=value` lines, e.g.
//!   `Signal=5\r\nDuration=160\r\n`. Keys are matched case-insensitively,
//!   LF-only line ends and spaces around `=` are tolerated, unknown keys are
//!   ignored. `Signal` is the key (`0`–`9`, `*`, `#`, `A`–`D`, or the event
//!   codes `10`–`15` some phones send for `*`, `#`, `A`–`D`); `Duration` is in
//!   milliseconds.
//! - `application/dtmf`: the body is just the key, e.g. `5`.
//!
//! A body that does not parse yields an [`InfoDtmfError`]: the SIP layer
//! answers 400 Bad Request and no digit is emitted.

use super::Digit;
use thiserror::Error;

/// Bodies longer than this are refused without looking inside: a DTMF body
/// is a few dozen bytes.
pub const MAX_BODY_LEN: usize = 1024;

/// How much of an offending value an error quotes.
const QUOTE_LEN: usize = 24;

/// Why an INFO body carries no usable digit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InfoDtmfError {
    /// The Content-Type is neither `application/dtmf-relay` nor `application/dtmf`.
    #[error("content type {0:?} is not a DTMF INFO type")]
    UnsupportedContentType(String),
    /// The body is empty or only whitespace.
    #[error("empty DTMF body")]
    EmptyBody,
    /// The body exceeds [`MAX_BODY_LEN`].
    #[error("DTMF body of {0} bytes exceeds {MAX_BODY_LEN}")]
    BodyTooLarge(usize),
    /// The body is not UTF-8 text.
    #[error("DTMF body is not UTF-8 text")]
    NotText,
    /// A `dtmf-relay` line has no `=`.
    #[error("dtmf-relay line {line} has no '=': {text:?}")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// The start of the line, escaped.
        text: String,
    },
    /// A `dtmf-relay` body has no `Signal` line.
    #[error("dtmf-relay body has no Signal")]
    MissingSignal,
    /// A key appears twice.
    #[error("dtmf-relay body repeats {0}")]
    DuplicateKey(&'static str),
    /// The signal is not a DTMF key.
    #[error("signal {0:?} is not a DTMF key")]
    InvalidSignal(String),
    /// The duration is not a whole number of milliseconds that fits 32 bits.
    #[error("duration {0:?} is not a number of milliseconds")]
    InvalidDuration(String),
}

/// A digit from an INFO body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoDtmf {
    /// The key pressed.
    pub digit: Digit,
    /// Key press duration in milliseconds, when the body says.
    pub duration_ms: Option<u32>,
}

/// The two body formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoDtmfType {
    /// `application/dtmf-relay`
    DtmfRelay,
    /// `application/dtmf`
    Dtmf,
}

/// Classifies a Content-Type header value: `Some` for a DTMF INFO type.
/// Case-insensitive; parameters (`;charset=...`) and surrounding spaces are
/// ignored.
pub fn dtmf_info_type(content_type: &str) -> Option<InfoDtmfType> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/dtmf-relay") {
        Some(InfoDtmfType::DtmfRelay)
    } else if media.eq_ignore_ascii_case("application/dtmf") {
        Some(InfoDtmfType::Dtmf)
    } else {
        None
    }
}

/// Whether a Content-Type header value is one of the DTMF INFO types.
pub fn is_dtmf_info_content_type(content_type: &str) -> bool {
    dtmf_info_type(content_type).is_some()
}

/// Parses the body of a SIP INFO request given its Content-Type.
pub fn parse_info_body(content_type: &str, body: &[u8]) -> Result<InfoDtmf, InfoDtmfError> {
    let Some(kind) = dtmf_info_type(content_type) else {
        return Err(InfoDtmfError::UnsupportedContentType(quote(content_type)));
    };
    if body.len() > MAX_BODY_LEN {
        return Err(InfoDtmfError::BodyTooLarge(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| InfoDtmfError::NotText)?;
    if text.trim().is_empty() {
        return Err(InfoDtmfError::EmptyBody);
    }
    match kind {
        InfoDtmfType::DtmfRelay => parse_dtmf_relay(text),
        // Some phones label a dtmf-relay body as application/dtmf.
        InfoDtmfType::Dtmf if text.contains('=') => parse_dtmf_relay(text),
        InfoDtmfType::Dtmf => Ok(InfoDtmf {
            digit: parse_signal(text.trim())?,
            duration_ms: None,
        }),
    }
}

fn parse_dtmf_relay(text: &str) -> Result<InfoDtmf, InfoDtmfError> {
    let mut digit = None;
    let mut duration_ms = None;
    for (i, raw) in text.lines().enumerate() {
        // `lines` strips "\n" and "\r\n"; a stray "\r" (CR-only senders) is
        // treated as a line break too.
        for line in raw.split('\r') {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(InfoDtmfError::MalformedLine {
                    line: i + 1,
                    text: quote(line),
                });
            };
            let key = key.trim();
            let value = value.trim();
            if key.eq_ignore_ascii_case("signal") {
                if digit.is_some() {
                    return Err(InfoDtmfError::DuplicateKey("Signal"));
                }
                digit = Some(parse_signal(value)?);
            } else if key.eq_ignore_ascii_case("duration") {
                if duration_ms.is_some() {
                    return Err(InfoDtmfError::DuplicateKey("Duration"));
                }
                duration_ms = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| InfoDtmfError::InvalidDuration(quote(value)))?,
                );
            }
            // Other keys (e.g. some vendors' "Volume") carry nothing we need.
        }
    }
    Ok(InfoDtmf {
        digit: digit.ok_or(InfoDtmfError::MissingSignal)?,
        duration_ms,
    })
}

/// A key as written in INFO bodies: one of `0-9*#A-D` (any case), or the
/// RFC 4733 event codes `10`–`15`.
fn parse_signal(value: &str) -> Result<Digit, InfoDtmfError> {
    let mut chars = value.chars();
    let parsed = match (chars.next(), chars.next()) {
        (Some(c), None) => Digit::from_char(c),
        _ => value
            .parse::<u8>()
            .ok()
            .filter(|code| (10..=15).contains(code))
            .and_then(Digit::from_event_code),
    };
    parsed.ok_or_else(|| InfoDtmfError::InvalidSignal(quote(value)))
}

/// A short, escaped copy of untrusted text for error messages and logs.
fn quote(s: &str) -> String {
    s.chars()
        .take(QUOTE_LEN)
        .flat_map(char::escape_default)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "application/dtmf-relay";

    fn relay(body: &str) -> Result<InfoDtmf, InfoDtmfError> {
        parse_info_body(RELAY, body.as_bytes())
    }

    #[test]
    fn content_types() {
        assert!(is_dtmf_info_content_type("application/dtmf-relay"));
        assert!(is_dtmf_info_content_type("Application/DTMF-Relay"));
        assert!(is_dtmf_info_content_type(
            " application/dtmf ; charset=utf-8"
        ));
        assert!(is_dtmf_info_content_type("APPLICATION/DTMF"));
        assert!(!is_dtmf_info_content_type("application/sdp"));
        assert!(!is_dtmf_info_content_type("application/dtmf-relayx"));
        assert!(!is_dtmf_info_content_type(""));
        assert_eq!(
            dtmf_info_type("application/dtmf-relay;x=y"),
            Some(InfoDtmfType::DtmfRelay)
        );
    }

    #[test]
    fn dtmf_relay_canonical() {
        assert_eq!(
            relay("Signal=5\r\nDuration=160\r\n"),
            Ok(InfoDtmf {
                digit: Digit::D5,
                duration_ms: Some(160)
            })
        );
    }

    #[test]
    fn dtmf_relay_variants() {
        let cases: &[(&str, Digit, Option<u32>)] = &[
            ("Signal=5\nDuration=160\n", Digit::D5, Some(160)),
            ("signal = 7 \r\n duration= 250", Digit::D7, Some(250)),
            ("SIGNAL=*\r\n", Digit::Star, None),
            ("Signal=#\r\nDuration=100", Digit::Pound, Some(100)),
            ("Signal=A", Digit::A, None),
            ("Signal=d", Digit::D, None),
            ("Signal=10\r\nDuration=80", Digit::Star, Some(80)),
            ("Signal=11", Digit::Pound, None),
            ("Signal=12", Digit::A, None),
            ("Signal=15", Digit::D, None),
            ("Signal=0", Digit::D0, None),
            ("\r\n\r\nSignal=9\r\n\r\n", Digit::D9, None),
            ("Duration=160\r\nSignal=3", Digit::D3, Some(160)),
            ("Signal=4\rDuration=90\r", Digit::D4, Some(90)),
            ("Signal=1\r\nVolume=10\r\nDuration=0", Digit::D1, Some(0)),
        ];
        for (body, digit, duration_ms) in cases {
            assert_eq!(
                relay(body),
                Ok(InfoDtmf {
                    digit: *digit,
                    duration_ms: *duration_ms
                }),
                "{body:?}"
            );
        }
    }

    #[test]
    fn plain_dtmf_body() {
        for d in Digit::ALL {
            let body = format!("{}\r\n", d.as_char());
            assert_eq!(
                parse_info_body("application/dtmf", body.as_bytes()),
                Ok(InfoDtmf {
                    digit: d,
                    duration_ms: None
                })
            );
        }
        assert_eq!(
            parse_info_body("application/dtmf", b"11").unwrap().digit,
            Digit::Pound
        );
        // A dtmf-relay body under the wrong label still works.
        assert_eq!(
            parse_info_body("application/dtmf", b"Signal=8\r\nDuration=100")
                .unwrap()
                .digit,
            Digit::D8
        );
    }

    #[test]
    fn malformed_bodies_have_descriptive_errors() {
        use InfoDtmfError::*;
        assert_eq!(relay(""), Err(EmptyBody));
        assert_eq!(relay(" \r\n"), Err(EmptyBody));
        assert_eq!(relay("Duration=160"), Err(MissingSignal));
        assert_eq!(relay("Signal=E"), Err(InvalidSignal("E".into())));
        assert_eq!(relay("Signal="), Err(InvalidSignal("".into())));
        assert_eq!(relay("Signal=16"), Err(InvalidSignal("16".into())));
        assert_eq!(relay("Signal=55"), Err(InvalidSignal("55".into())));
        assert_eq!(
            relay("Signal=5\r\nDuration=abc"),
            Err(InvalidDuration("abc".into()))
        );
        assert_eq!(
            relay("Signal=5\r\nDuration=-1"),
            Err(InvalidDuration("-1".into()))
        );
        assert_eq!(
            relay("Signal=5\r\nDuration=99999999999"),
            Err(InvalidDuration("99999999999".into()))
        );
        assert_eq!(relay("Signal=5\r\nSignal=6"), Err(DuplicateKey("Signal")));
        assert_eq!(
            relay("Signal=5\r\ngarbage"),
            Err(MalformedLine {
                line: 2,
                text: "garbage".into()
            })
        );
        assert_eq!(parse_info_body(RELAY, &[0xff, 0xfe]), Err(NotText));
        assert_eq!(
            parse_info_body(RELAY, &vec![b'a'; MAX_BODY_LEN + 1]),
            Err(BodyTooLarge(MAX_BODY_LEN + 1))
        );
        assert_eq!(
            parse_info_body("application/dtmf", b"55"),
            Err(InvalidSignal("55".into()))
        );
        assert!(matches!(
            parse_info_body("text/plain", b"Signal=5"),
            Err(UnsupportedContentType(_))
        ));
        // Error text is bounded and escaped: safe to log.
        let long = format!("Signal={}\u{1b}[31m", "9".repeat(200));
        let err = relay(&long).unwrap_err().to_string();
        assert!(err.len() < 80, "{err}");
        assert!(!err.contains('\u{1b}'));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), ct in "[a-zA-Z/;= -]{0,30}") {
                let _ = parse_info_body(&ct, &body);
                let _ = parse_info_body(RELAY, &body);
                let _ = parse_info_body("application/dtmf", &body);
            }

            #[test]
            fn text_bodies_never_panic(body in "\\PC{0,80}") {
                let _ = parse_info_body(RELAY, body.as_bytes());
            }
        }
    }
}

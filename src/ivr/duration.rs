//! Durations as written in the configuration file: an integer followed by a
//! unit, e.g. `"10s"`, `"500ms"`, `"2m"`, `"1h"`.
//!
//! Accepted units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`. A unit is
//! mandatory, so `"10"` is an error rather than a silent guess between
//! seconds and milliseconds. Fractions (`"1.5s"`) are refused: write `"1500ms"`.
//!
//! The [`serde`] submodule lets settings structs keep
//! [`Duration`] fields while the TOML shows readable strings:
//!
//! ```
//! use std::time::Duration;
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Timers {
//!     #[serde(with = "dialgate::ivr::duration::serde")]
//!     timeout: Duration,
//! }
//! let t: Timers = toml::from_str("timeout = \"1500ms\"").unwrap();
//! assert_eq!(t.timeout, Duration::from_millis(1500));
//! ```

use std::time::Duration;

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    #[error("empty duration")]
    Empty,
    #[error("duration {0:?} has no number (write e.g. \"10s\")")]
    NoNumber(String),
    #[error("duration {0:?} has no unit (use ns, us, ms, s, m or h)")]
    NoUnit(String),
    #[error("duration {input:?} has an unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses `"<integer><unit>"`; surrounding whitespace and whitespace between
/// number and unit are allowed (`" 10 s "`).
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ParseDurationError::Empty);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(ParseDurationError::NoNumber(input.to_owned()));
    }
    let unit = unit.trim_start();
    if unit.is_empty() {
        return Err(ParseDurationError::NoUnit(input.to_owned()));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| ParseDurationError::Overflow(input.to_owned()))?;
    let overflow = || ParseDurationError::Overflow(input.to_owned());
    let duration = match unit {
        "ns" => Duration::from_nanos(value),
        "us" | "µs" => Duration::from_micros(value),
        "ms" => Duration::from_millis(value),
        "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value.checked_mul(60).ok_or_else(overflow)?),
        "h" => Duration::from_secs(value.checked_mul(3600).ok_or_else(overflow)?),
        other => {
            return Err(ParseDurationError::UnknownUnit {
                input: input.to_owned(),
                unit: other.to_owned(),
            })
        }
    };
    Ok(duration)
}

/// Writes `d` in the largest unit that represents it exactly, so that
/// [`parse_duration`] gives back the same value (`90s` stays `"90s"`,
/// `120s` becomes `"2m"`, `0` becomes `"0s"`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    for (size, unit) in UNITS {
        if nanos % size == 0 {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}

/// `#[serde(with = "dialgate::ivr::duration::serde")]` for [`Duration`] fields.
pub mod serde {
    use std::time::Duration;

    /// Serialises as a string such as `"10s"` (see [`super::format_duration`]).
    pub fn serialize<S: ::serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Deserialises a string such as `"500ms"` (see [`super::parse_duration`]).
    pub fn deserialize<'de, D: ::serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl ::serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"10s\", \"500ms\", \"2m\" or \"1h\"")
            }
            fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                super::parse_duration(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn tolerates_whitespace() {
        assert_eq!(parse_duration(" 10 s "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("\t3m\n"), Ok(Duration::from_secs(180)));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(parse_duration(""), Err(ParseDurationError::Empty));
        assert_eq!(parse_duration("   "), Err(ParseDurationError::Empty));
        assert!(matches!(
            parse_duration("10"),
            Err(ParseDurationError::NoUnit(_))
        ));
        assert!(matches!(
            parse_duration("s"),
            Err(ParseDurationError::NoNumber(_))
        ));
        assert!(matches!(
            parse_duration("-5s"),
            Err(ParseDurationError::NoNumber(_))
        ));
        assert!(matches!(
            parse_duration("1.5s"),
            Err(ParseDurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("10 sec"),
            Err(ParseDurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("10S"),
            Err(ParseDurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999s"),
            Err(ParseDurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("18446744073709551615h"),
            Err(ParseDurationError::Overflow(_))
        ));
    }

    #[test]
    fn error_messages_name_the_input() {
        let e = parse_duration("10x").unwrap_err().to_string();
        assert!(e.contains("10x") && e.contains("\"x\""), "{e}");
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_micros(3)), "3us");
        assert_eq!(
            format_duration(Duration::from_nanos(1_000_001)),
            "1000001ns"
        );
    }

    #[test]
    fn format_then_parse_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(300),
            Duration::from_secs(61),
            Duration::from_secs(900),
            Duration::from_secs(86_400),
            Duration::new(5, 7),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn serde_helper_reads_and_writes_strings() {
        #[derive(::serde::Deserialize, ::serde::Serialize, Debug, PartialEq)]
        struct T {
            #[serde(with = "super::serde")]
            t: Duration,
        }
        let t: T = toml::from_str("t = \"2m\"").unwrap();
        assert_eq!(t.t, Duration::from_secs(120));
        assert_eq!(toml::to_string(&t).unwrap().trim(), "t = \"2m\"");
        let err = toml::from_str::<T>("t = \"2 fortnights\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
        assert!(toml::from_str::<T>("t = 10").is_err());
    }
}

//! Timer settings for the transaction layer (RFC 3261 §17.1.1.1, §17.1.2.1,
//! Table 4 in Appendix A).
//!
//! Embedded in the top-level configuration as the `[sip.timers]` section:
//!
//! ```toml
//! [sip.timers]
//! t1 = "500ms"
//! t2 = "4s"
//! t4 = "5s"
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Key prefix used in validation messages.
const KEY_PREFIX: &str = "sip.timers";

/// Default T1, the round-trip time estimate (RFC 3261 §17.1.1.1).
pub const DEFAULT_T1: Duration = Duration::from_millis(500);
/// Default T2, the retransmission interval cap for non-INVITE requests and
/// INVITE responses (RFC 3261 §17.1.2.2).
pub const DEFAULT_T2: Duration = Duration::from_secs(4);
/// Default T4, the time a message may stay in the network (RFC 3261 §17.1.2.2).
pub const DEFAULT_T4: Duration = Duration::from_secs(5);
/// Upper bound accepted for T2 and T4: beyond it a peer would wait for
/// minutes on a lost packet.
const MAX_T2_T4: Duration = Duration::from_secs(600);

/// Timer D for unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2).
pub const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// SIP timer base values. Every transaction timer (A to M) is derived from
/// these (RFC 3261 Appendix A, RFC 6026 §8.11).
///
/// Durations are written as strings with a unit: `"500ms"`, `"4s"`, `"1m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimerSettings {
    /// RTT estimate; base for Timers A, B, E, F, G, H, J, L, M.
    #[serde(with = "duration_text")]
    pub t1: Duration,
    /// Maximum retransmission interval.
    #[serde(with = "duration_text")]
    pub t2: Duration,
    /// Maximum lifetime of a message in the network; Timers I and K.
    #[serde(with = "duration_text")]
    pub t4: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        Self {
            t1: DEFAULT_T1,
            t2: DEFAULT_T2,
            t4: DEFAULT_T4,
        }
    }
}

impl TimerSettings {
    /// Checks the values; each problem names its configuration key.
    /// An empty vector means the settings are usable.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.t1.is_zero() {
            problems.push(format!("{KEY_PREFIX}.t1: must be greater than 0"));
        }
        if self.t1 > Duration::from_secs(60) {
            problems.push(format!("{KEY_PREFIX}.t1: must be at most 60s"));
        }
        if self.t2 < self.t1 {
            problems.push(format!(
                "{KEY_PREFIX}.t2: must be at least t1 ({})",
                format_duration(self.t1)
            ));
        }
        if self.t2 > MAX_T2_T4 {
            problems.push(format!("{KEY_PREFIX}.t2: must be at most 10m"));
        }
        if self.t4.is_zero() {
            problems.push(format!("{KEY_PREFIX}.t4: must be greater than 0"));
        }
        if self.t4 > MAX_T2_T4 {
            problems.push(format!("{KEY_PREFIX}.t4: must be at most 10m"));
        }
        problems
    }

    /// The values the machines run with: T1 at least 1 ms and T2 at least
    /// T1, so even unvalidated settings cannot make a retransmission timer
    /// re-arm for the instant it fired (a busy loop).
    pub(crate) fn effective(self) -> Self {
        let t1 = self.t1.max(Duration::from_millis(1));
        Self {
            t1,
            t2: self.t2.max(t1),
            t4: self.t4,
        }
    }

    /// 64·T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Formats a duration the way the configuration writes it: whole hours,
/// minutes or seconds when exact, else milliseconds.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms != 0 && ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms != 0 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses `"<integer><unit>"` with unit `ms`, `s`, `m` or `h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} needs a unit (ms, s, m, h)"))?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!("duration {text:?} must start with a number"));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("duration {text:?} is out of range"))?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("duration {text:?} has unknown unit {other:?}")),
    };
    value
        .checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {text:?} is out of range"))
}

/// serde adapter for durations written as text.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_rfc_3261() {
        let s = TimerSettings::default();
        assert_eq!(s.t1, Duration::from_millis(500));
        assert_eq!(s.t2, Duration::from_secs(4));
        assert_eq!(s.t4, Duration::from_secs(5));
        assert_eq!(s.t1_x64(), Duration::from_secs(32));
        assert!(s.validate().is_empty());
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 0ms "), Ok(Duration::ZERO));
        assert!(parse_duration("500").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0u64, 1, 150, 500, 1000, 4000, 60_000, 90_000, 3_600_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn toml_section_with_defaults_and_unknown_keys() {
        let s: TimerSettings = toml::from_str("t1 = \"200ms\"").unwrap();
        assert_eq!(s.t1, Duration::from_millis(200));
        assert_eq!(s.t2, DEFAULT_T2);
        assert!(toml::from_str::<TimerSettings>("t3 = \"1s\"").is_err());
        assert!(toml::from_str::<TimerSettings>("t1 = \"fast\"").is_err());
        let text = toml::to_string(&TimerSettings::default()).unwrap();
        assert!(text.contains("t1 = \"500ms\""), "{text}");
        assert_eq!(
            toml::from_str::<TimerSettings>(&text).unwrap(),
            TimerSettings::default()
        );
    }

    #[test]
    fn validate_names_keys() {
        let s = TimerSettings {
            t1: Duration::ZERO,
            t2: Duration::from_secs(4),
            t4: Duration::ZERO,
        };
        let p = s.validate();
        assert!(p.iter().any(|m| m.starts_with("sip.timers.t1")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("sip.timers.t4")), "{p:?}");
        let s = TimerSettings {
            t1: Duration::from_secs(2),
            t2: Duration::from_secs(1),
            ..TimerSettings::default()
        };
        let p = s.validate();
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("sip.timers.t2"), "{p:?}");
        let s = TimerSettings {
            t1: Duration::from_secs(61),
            t2: Duration::from_secs(601),
            t4: Duration::from_secs(601),
        };
        assert_eq!(s.validate().len(), 3, "{:?}", s.validate());
    }
}

//! The auto attendant: call flow, digit collection and guessing defence.
//!
//! - [`collector`]: keypad rules for one conference-ID entry (`#`, `*`,
//!   auto submit, first-digit and inter-digit timeouts);
//! - [`flow`]: [`CallFlow`], the per-call state machine (prompts, barge-in,
//!   lookups, attempts, goodbye);
//! - [`guard`]: [`GuessingGuard`], the gateway-wide defence against callers
//!   guessing conference IDs;
//! - [`duration`]: `"10s"`-style durations for configuration files.
//!
//! All of it is sans-IO: inputs carry `now`, outputs are values.

pub mod collector;
pub mod duration;
pub mod flow;
pub mod guard;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::directory::{MAX_ID_LEN, MIN_ID_LEN};

pub use collector::{CollectorSettings, DigitCollector};
pub use duration::parse_duration;
pub use flow::{Action, CallEnd, CallFlow, EntryFailure, FlowState, HangupReason};
pub use guard::{CallVerdict, CallerIdentity, GuardRefusal, GuardSettings, GuessingGuard};

/// Longest timer any attendant state machine sets: durations from
/// unvalidated settings are clamped to it so a deadline never overflows.
pub const MAX_TIMER: Duration = Duration::from_secs(366 * 24 * 3600);

/// `now + after`, with `after` clamped to [`MAX_TIMER`]; never panics
/// (falls back to `now` on the impossible overflow).
pub(crate) fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after.min(MAX_TIMER)).unwrap_or(now)
}

/// Settings of the auto attendant (`[ivr]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvrSettings {
    /// Digits in a conference ID (5..=10).
    pub id_length: usize,
    /// Submit as soon as `id_length` digits are keyed, without `#`.
    pub auto_submit_at_length: bool,
    /// Wait for the first digit after a prompt ends.
    #[serde(with = "duration::serde")]
    pub first_digit_timeout: Duration,
    /// Wait for each following digit.
    #[serde(with = "duration::serde")]
    pub inter_digit_timeout: Duration,
    /// Wrong or empty entries allowed per call before goodbye.
    pub max_attempts: u32,
    /// Every refusal is announced this long after the entry was submitted,
    /// whatever the reason and however fast the directory answered.
    #[serde(with = "duration::serde")]
    pub refusal_delay: Duration,
    /// Longest wait for a directory answer before giving up on the call.
    #[serde(with = "duration::serde")]
    pub lookup_timeout: Duration,
    /// Longest time a call may spend in the attendant.
    #[serde(with = "duration::serde")]
    pub max_ivr_duration: Duration,
    /// The guessing defence (`[ivr.guard]`).
    pub guard: GuardSettings,
}

impl Default for IvrSettings {
    fn default() -> Self {
        IvrSettings {
            id_length: 7,
            auto_submit_at_length: true,
            first_digit_timeout: Duration::from_secs(10),
            inter_digit_timeout: Duration::from_secs(5),
            max_attempts: 3,
            refusal_delay: Duration::from_millis(300),
            lookup_timeout: Duration::from_secs(2),
            max_ivr_duration: Duration::from_secs(120),
            guard: GuardSettings::default(),
        }
    }
}

impl IvrSettings {
    /// Every problem with these settings, each naming its key
    /// (`"ivr.max_attempts must be …"`). Empty when usable.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&self.id_length) {
            errors.push(format!(
                "ivr.id_length must be {MIN_ID_LEN}..={MAX_ID_LEN} (got {})",
                self.id_length
            ));
        }
        let secs = Duration::from_secs;
        for (key, value, min, max) in [
            (
                "first_digit_timeout",
                self.first_digit_timeout,
                secs(1),
                secs(120),
            ),
            (
                "inter_digit_timeout",
                self.inter_digit_timeout,
                secs(1),
                secs(60),
            ),
            (
                "lookup_timeout",
                self.lookup_timeout,
                Duration::from_millis(10),
                secs(60),
            ),
            (
                "max_ivr_duration",
                self.max_ivr_duration,
                secs(10),
                secs(3600),
            ),
        ] {
            if value < min || value > max {
                errors.push(format!(
                    "ivr.{key} must be {} to {} (got {})",
                    duration::format_duration(min),
                    duration::format_duration(max),
                    duration::format_duration(value)
                ));
            }
        }
        if self.refusal_delay > secs(10) {
            errors.push(format!(
                "ivr.refusal_delay must be at most 10s (got {})",
                duration::format_duration(self.refusal_delay)
            ));
        }
        if !(1..=20).contains(&self.max_attempts) {
            errors.push(format!(
                "ivr.max_attempts must be 1..=20 (got {})",
                self.max_attempts
            ));
        }
        if self.max_ivr_duration <= self.first_digit_timeout {
            errors.push(
                "ivr.max_ivr_duration must be longer than ivr.first_digit_timeout".to_owned(),
            );
        }
        errors.extend(self.guard.validate("ivr.guard"));
        errors
    }

    /// The keypad part of these settings.
    pub fn collector(&self) -> CollectorSettings {
        CollectorSettings {
            id_length: self.id_length,
            auto_submit_at_length: self.auto_submit_at_length,
            first_digit_timeout: self.first_digit_timeout,
            inter_digit_timeout: self.inter_digit_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let s = IvrSettings::default();
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        assert_eq!(s.id_length, 7);
        assert!(s.auto_submit_at_length);
        assert_eq!(s.first_digit_timeout, Duration::from_secs(10));
        assert_eq!(s.inter_digit_timeout, Duration::from_secs(5));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.guard.identity_max_failures, 10);
        assert_eq!(s.guard.window, Duration::from_secs(600));
        assert_eq!(s.guard.cooldown, Duration::from_secs(900));
    }

    #[test]
    fn empty_section_gives_defaults() {
        let s: IvrSettings = toml::from_str("").unwrap();
        assert_eq!(s, IvrSettings::default());
    }

    #[test]
    fn reads_a_full_section() {
        let s: IvrSettings = toml::from_str(
            r#"
            id_length = 9
            auto_submit_at_length = false
            first_digit_timeout = "8s"
            inter_digit_timeout = "3500ms"
            max_attempts = 5
            refusal_delay = "0s"
            lookup_timeout = "1s"
            max_ivr_duration = "3m"
            [guard]
            enabled = true
            identity_max_failures = 4
            window = "1h"
            cooldown = "30m"
            max_tracked = 500
            "#,
        )
        .unwrap();
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        assert_eq!(s.id_length, 9);
        assert!(!s.auto_submit_at_length);
        assert_eq!(s.inter_digit_timeout, Duration::from_millis(3500));
        assert_eq!(s.max_ivr_duration, Duration::from_secs(180));
        assert_eq!(s.refusal_delay, Duration::ZERO);
        assert_eq!(s.guard.identity_max_failures, 4);
        assert_eq!(s.guard.address_max_failures, 10);
        assert_eq!(s.guard.window, Duration::from_secs(3600));
        assert_eq!(s.guard.max_tracked, 500);
    }

    #[test]
    fn serialises_back_to_the_same_settings() {
        let s = IvrSettings::default();
        let text = toml::to_string(&s).unwrap();
        assert!(text.contains("first_digit_timeout = \"10s\""), "{text}");
        assert!(text.contains("max_ivr_duration = \"2m\""), "{text}");
        let back: IvrSettings = toml::from_str(&text).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        assert!(toml::from_str::<IvrSettings>("id_lenght = 7").is_err());
        assert!(toml::from_str::<IvrSettings>("[guard]\nwindw = \"1m\"").is_err());
        let err = toml::from_str::<IvrSettings>("first_digit_timeout = \"10\"").unwrap_err();
        assert!(err.to_string().contains("no unit"), "{err}");
    }

    #[test]
    fn validate_names_every_bad_key() {
        let s = IvrSettings {
            id_length: 4,
            first_digit_timeout: Duration::from_millis(100),
            inter_digit_timeout: Duration::from_secs(600),
            max_attempts: 0,
            refusal_delay: Duration::from_secs(11),
            lookup_timeout: Duration::ZERO,
            max_ivr_duration: Duration::from_secs(5),
            guard: GuardSettings {
                identity_max_failures: 0,
                address_max_failures: 5000,
                window: Duration::ZERO,
                cooldown: Duration::ZERO,
                max_tracked: 0,
                global_alarm_per_minute: 0,
                alarm_interval: Duration::ZERO,
                ..GuardSettings::default()
            },
            ..IvrSettings::default()
        };
        let errors = s.validate().join("\n");
        for key in [
            "ivr.id_length",
            "ivr.first_digit_timeout",
            "ivr.inter_digit_timeout",
            "ivr.max_attempts",
            "ivr.refusal_delay",
            "ivr.lookup_timeout",
            "ivr.max_ivr_duration",
            "ivr.guard.identity_max_failures",
            "ivr.guard.address_max_failures",
            "ivr.guard.window",
            "ivr.guard.cooldown",
            "ivr.guard.max_tracked",
            "ivr.guard.global_alarm_per_minute",
            "ivr.guard.alarm_interval",
        ] {
            assert!(errors.contains(key), "{key} missing from:\n{errors}");
        }
    }

    #[test]
    fn id_length_bounds() {
        for (len, ok) in [(4, false), (5, true), (10, true), (11, false)] {
            let s = IvrSettings {
                id_length: len,
                ..IvrSettings::default()
            };
            assert_eq!(s.validate().is_empty(), ok, "id_length {len}");
        }
    }

    #[test]
    fn unvalidated_huge_durations_do_not_panic() {
        let huge = Duration::MAX;
        let s = IvrSettings {
            first_digit_timeout: huge,
            inter_digit_timeout: huge,
            refusal_delay: huge,
            lookup_timeout: huge,
            max_ivr_duration: huge,
            guard: GuardSettings {
                cooldown: huge,
                window: huge,
                ..GuardSettings::default()
            },
            ..IvrSettings::default()
        };
        assert!(!s.validate().is_empty());
        let t0 = Instant::now();
        let mut flow = CallFlow::new(&s, None);
        flow.start(t0);
        flow.prompt_finished(crate::media::PromptId::Welcome, t0);
        flow.handle_digit(crate::dtmf::Digit::Pound, crate::dtmf::DtmfSource::Info, t0);
        flow.handle_timeout(t0 + Duration::from_secs(1));
        assert!(flow.poll_timeout().is_some());
        let mut guard = GuessingGuard::new(s.guard.clone());
        for _ in 0..20 {
            let _ = guard.record_failure(
                &CallerIdentity::Anonymous,
                std::net::IpAddr::from([192, 0, 2, 1]),
                false,
                t0,
            );
        }
        assert!(matches!(
            guard.check_call(
                &CallerIdentity::Anonymous,
                std::net::IpAddr::from([192, 0, 2, 1]),
                false,
                t0
            ),
            CallVerdict::Refuse { .. }
        ));
    }
}

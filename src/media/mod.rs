//! Media: G.711 codecs, RTP sessions, prompts and the shared playback pacer.

pub mod g711;
pub mod pacer;
pub mod ports;
pub mod prompts;
pub mod rtcp;
pub mod rtp;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The prompts the auto attendant plays. Each language directory holds one
/// WAV file per prompt, named by [`PromptId::file_stem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PromptId {
    /// "Welcome. Please enter your conference ID, followed by the pound key."
    Welcome,
    /// "That conference ID is not valid. Please try again."
    NotValid,
    /// "We didn't receive your conference ID."
    Timeout,
    /// "Thank you. You're joining the meeting now."
    Joining,
    /// "Sorry, we couldn't find that meeting. Goodbye."
    Goodbye,
    /// Played when the meeting bridge can't be reached.
    BridgeUnavailable,
    /// Played to a caller refused early by the guessing defence.
    TooManyAttempts,
}

impl PromptId {
    /// Every prompt, in a stable order.
    pub const ALL: [PromptId; 7] = [
        PromptId::Welcome,
        PromptId::NotValid,
        PromptId::Timeout,
        PromptId::Joining,
        PromptId::Goodbye,
        PromptId::BridgeUnavailable,
        PromptId::TooManyAttempts,
    ];

    /// File name without extension inside a language's prompt directory.
    pub fn file_stem(self) -> &'static str {
        match self {
            PromptId::Welcome => "welcome",
            PromptId::NotValid => "not-valid",
            PromptId::Timeout => "timeout",
            PromptId::Joining => "joining",
            PromptId::Goodbye => "goodbye",
            PromptId::BridgeUnavailable => "bridge-unavailable",
            PromptId::TooManyAttempts => "too-many-attempts",
        }
    }
}

/// Settings of the media layer: the `[media]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Directory holding one sub-directory of prompt WAVs per language.
    pub prompt_dir: PathBuf,
    /// Language used when a call asks for none, or for one not installed.
    pub default_language: String,
    /// No RTP for this long ends the call with BYE. Written as "30s",
    /// "500ms", "2m" or an integer number of milliseconds.
    #[serde(with = "duration_text")]
    pub media_timeout: Duration,
    /// Payload type offered for RFC 4733 telephone-event (96–127).
    pub telephone_event_pt: u8,
    /// Send RTP to the address the far end sends from (RFC 4961), not the
    /// SDP address, once its first valid packet arrives.
    pub symmetric_rtp: bool,
    /// Silence between queued prompts.
    #[serde(with = "duration_text")]
    pub prompt_gap: Duration,
    /// Nice value for the pacer thread (-20..=19, 0 = unchanged). Negative
    /// values keep prompt timing steady on a busy host; needs CAP_SYS_NICE.
    pub pacer_nice: i32,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            prompt_dir: PathBuf::from("prompts"),
            default_language: "en".to_owned(),
            media_timeout: rtp::DEFAULT_MEDIA_TIMEOUT,
            telephone_event_pt: rtp::DEFAULT_EVENT_PT,
            symmetric_rtp: true,
            prompt_gap: Duration::from_millis(300),
            pacer_nice: 0,
        }
    }
}

impl MediaSettings {
    /// Every problem with these settings, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.prompt_dir.as_os_str().is_empty() {
            errors.push("media.prompt_dir: must not be empty".to_owned());
        }
        if !prompts::is_valid_language(&self.default_language) {
            errors.push(format!(
                "media.default_language: {:?} is not a language tag (letters, digits, '-' or '_', 1-35 characters)",
                self.default_language
            ));
        }
        if self.media_timeout < Duration::from_secs(1)
            || self.media_timeout > Duration::from_secs(3600)
        {
            errors.push(format!(
                "media.media_timeout: {:?} is outside 1s..=1h",
                self.media_timeout
            ));
        }
        if !(96..=127).contains(&self.telephone_event_pt) {
            errors.push(format!(
                "media.telephone_event_pt: {} is not a dynamic payload type (96-127)",
                self.telephone_event_pt
            ));
        }
        if !(-20..=19).contains(&self.pacer_nice) {
            errors.push(format!(
                "media.pacer_nice: {} is outside -20..=19",
                self.pacer_nice
            ));
        }
        if self.prompt_gap > Duration::from_secs(10) {
            errors.push(format!(
                "media.prompt_gap: {:?} is longer than 10s",
                self.prompt_gap
            ));
        }
        errors
    }

    /// The receiver settings these media settings imply for a call.
    pub fn receiver_config(&self, audio_pt: u8, event_pt: Option<u8>) -> rtp::ReceiverConfig {
        rtp::ReceiverConfig {
            audio_pt,
            event_pt,
            media_timeout: self.media_timeout,
            symmetric: self.symmetric_rtp,
        }
    }
}

/// Durations written as text ("30s", "250ms", "2m", "1h") or integer
/// milliseconds. Private to the media settings on purpose: small and strict.
mod duration_text {
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn parse(text: &str) -> Option<Duration> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let ms_per = match unit {
            // A bare number is milliseconds, as in the integer form.
            "" | "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        n.checked_mul(ms_per).map(Duration::from_millis)
    }

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let ms = d.as_millis();
        if ms % 1000 == 0 {
            s.serialize_str(&format!("{}s", ms / 1000))
        } else {
            s.serialize_str(&format!("{ms}ms"))
        }
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration such as \"30s\", \"500ms\", \"2m\" or integer milliseconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_millis)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_text_parses_units_and_rejects_junk() {
        use duration_text::parse;
        assert_eq!(parse("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("1500"), Some(Duration::from_millis(1500)));
        for bad in [
            "",
            "s",
            "-1s",
            "1.5s",
            "10 days",
            "99999999999999999999s",
            "5x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let d = MediaSettings::default();
        assert!(d.validate().is_empty(), "{:?}", d.validate());
        let text = toml::to_string(&d).unwrap();
        assert!(text.contains("media_timeout = \"30s\""), "{text}");
        let back: MediaSettings = toml::from_str(&text).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn reads_toml_and_names_bad_keys() {
        let s: MediaSettings =
            toml::from_str("media_timeout = 45000\nprompt_gap = \"0ms\"").unwrap();
        assert_eq!(s.media_timeout, Duration::from_secs(45));
        assert_eq!(s.prompt_gap, Duration::ZERO);
        assert!(toml::from_str::<MediaSettings>("media_timeout = \"soon\"").is_err());
        assert!(toml::from_str::<MediaSettings>("no_such_key = 1").is_err());
        let bad = MediaSettings {
            prompt_dir: PathBuf::new(),
            default_language: "../etc".into(),
            media_timeout: Duration::ZERO,
            telephone_event_pt: 8,
            symmetric_rtp: true,
            prompt_gap: Duration::from_secs(60),
            pacer_nice: -21,
        };
        let errs = bad.validate();
        assert_eq!(errs.len(), 6, "{errs:?}");
        for (e, key) in errs.iter().zip([
            "media.prompt_dir",
            "media.default_language",
            "media.media_timeout",
            "media.telephone_event_pt",
            "media.pacer_nice",
            "media.prompt_gap",
        ]) {
            assert!(e.starts_with(key), "{e}");
        }
    }
}

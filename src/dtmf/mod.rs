//! DTMF digit detection for the three ways phones send key presses:
//! RFC 4733 telephone-events, SIP INFO bodies and in-band tones.
//!
//! Every detector is a sans-IO state machine: packets or samples in,
//! [`DigitEvent`]s out.
//!
//! ```text
//! rfc4733   RFC 4733 telephone-event payload codec and receiver
//! info      SIP INFO bodies (application/dtmf-relay, application/dtmf)
//! inband    Goertzel tone receiver for 8 kHz linear audio (ITU-T Q.24)
//! dedupe    one key press sent by two methods counts once
//! ```

pub mod dedupe;
pub mod inband;
pub mod info;
pub mod rfc4733;

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// DTMF settings (`[dtmf]`), grouping the detectors' own sections.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DtmfSettings {
    /// Which methods are listened to (default `auto`).
    pub mode: DtmfMode,
    /// `[dtmf.inband]`: the in-band tone receiver.
    pub inband: inband::InBandSettings,
    /// `[dtmf.dedupe]`: merging one key press sent by two methods.
    pub dedupe: dedupe::DedupeSettings,
}

impl DtmfSettings {
    /// Problems with the settings, each naming its key; empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = self.inband.validate();
        problems.extend(self.dedupe.validate());
        problems
    }
}

/// Which DTMF methods a call listens to. SIP INFO digits are accepted in
/// every mode: they cost nothing and a phone that sends them means them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// RFC 4733 telephone-events when the SDP negotiated them, else in-band
    /// tones (a phone that offers telephone-event removes the tones from
    /// the audio, RFC 4733 §2.6; one that does not leaves them in).
    #[default]
    Auto,
    /// RFC 4733 telephone-events only (plus INFO).
    Rfc4733,
    /// SIP INFO only: nothing is detected in the RTP stream.
    Info,
    /// In-band tones only (plus INFO), even when telephone-event was negotiated.
    Inband,
}

impl DtmfMode {
    /// Whether RFC 4733 events are used, given whether they were negotiated.
    pub fn uses_rfc4733(self, negotiated: bool) -> bool {
        negotiated && matches!(self, DtmfMode::Auto | DtmfMode::Rfc4733)
    }

    /// Whether the in-band detector runs, given whether telephone-event was negotiated.
    pub fn uses_inband(self, telephone_event_negotiated: bool) -> bool {
        match self {
            DtmfMode::Auto => !telephone_event_negotiated,
            DtmfMode::Inband => true,
            DtmfMode::Rfc4733 | DtmfMode::Info => false,
        }
    }
}

/// A DTMF key (RFC 4733 §3.2 event codes 0–15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Digit {
    D0,
    D1,
    D2,
    D3,
    D4,
    D5,
    D6,
    D7,
    D8,
    D9,
    Star,
    Pound,
    A,
    B,
    C,
    D,
}

impl Digit {
    /// All sixteen keys in RFC 4733 event-code order.
    pub const ALL: [Digit; 16] = [
        Digit::D0,
        Digit::D1,
        Digit::D2,
        Digit::D3,
        Digit::D4,
        Digit::D5,
        Digit::D6,
        Digit::D7,
        Digit::D8,
        Digit::D9,
        Digit::Star,
        Digit::Pound,
        Digit::A,
        Digit::B,
        Digit::C,
        Digit::D,
    ];

    /// The digit for an RFC 4733 §3.2 event code (0–9, 10 = `*`, 11 = `#`, 12–15 = A–D).
    pub fn from_event_code(code: u8) -> Option<Digit> {
        Digit::ALL.get(usize::from(code)).copied()
    }

    /// The RFC 4733 §3.2 event code of this digit.
    pub fn event_code(self) -> u8 {
        self as u8
    }

    /// Parses a key as written in dial strings and INFO bodies (`0-9`, `*`, `#`, `A-D`, any case).
    pub fn from_char(c: char) -> Option<Digit> {
        match c {
            '0'..='9' => Digit::from_event_code(c as u8 - b'0'),
            '*' => Some(Digit::Star),
            '#' => Some(Digit::Pound),
            'A'..='D' => Digit::from_event_code(c as u8 - b'A' + 12),
            'a'..='d' => Digit::from_event_code(c as u8 - b'a' + 12),
            _ => None,
        }
    }

    /// The key as a character.
    pub fn as_char(self) -> char {
        b"0123456789*#ABCD"[self as usize] as char
    }

    /// The numeric value for `0`–`9`, `None` for the other keys.
    pub fn decimal(self) -> Option<u8> {
        let c = self as u8;
        (c < 10).then_some(c)
    }
}

impl std::fmt::Display for Digit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// How a digit reached the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event in the RTP stream.
    Rfc4733,
    /// SIP INFO with `application/dtmf-relay` or `application/dtmf`.
    Info,
    /// Tones in the audio, found by the in-band detector.
    InBand,
}

/// A key press found by one of the detectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigitEvent {
    /// The key.
    pub digit: Digit,
    /// Which method carried it.
    pub source: DtmfSource,
    /// When the detector recognised it (the `now` passed with the input that completed it).
    pub at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_round_trip() {
        for d in Digit::ALL {
            assert_eq!(Digit::from_event_code(d.event_code()), Some(d));
            assert_eq!(Digit::from_char(d.as_char()), Some(d));
        }
        assert_eq!(Digit::from_event_code(16), None);
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(Digit::from_char('b'), Some(Digit::B));
        assert_eq!(Digit::D7.decimal(), Some(7));
        assert_eq!(Digit::Pound.decimal(), None);
    }

    #[test]
    fn settings_from_toml() {
        let s: DtmfSettings =
            toml::from_str("[inband]\nmin_level_dbm0 = -40.0\n[dedupe]\nwindow_ms = 80\n").unwrap();
        assert_eq!(s.dedupe.window_ms, 80);
        assert!(!s.inband.extended_keys);
        assert!(s.validate().is_empty());
        assert!(toml::from_str::<DtmfSettings>("[inband]\nbogus = 1\n").is_err());
        let bad: DtmfSettings = toml::from_str("[dedupe]\nwindow_ms = 9000\n").unwrap();
        assert_eq!(bad.validate().len(), 1);
    }

    #[test]
    fn mode_from_toml_and_method_choice() {
        let s: DtmfSettings = toml::from_str("mode = \"inband\"\n").unwrap();
        assert_eq!(s.mode, DtmfMode::Inband);
        assert_eq!(DtmfSettings::default().mode, DtmfMode::Auto);
        assert!(toml::from_str::<DtmfSettings>("mode = \"tones\"\n").is_err());
        assert!(DtmfMode::Auto.uses_rfc4733(true));
        assert!(!DtmfMode::Auto.uses_inband(true));
        assert!(DtmfMode::Auto.uses_inband(false));
        assert!(!DtmfMode::Info.uses_rfc4733(true));
        assert!(!DtmfMode::Info.uses_inband(false));
        assert!(DtmfMode::Inband.uses_inband(true));
        assert!(!DtmfMode::Rfc4733.uses_rfc4733(false));
    }
}

//! One key press, one digit: phones that send a press both as an RFC 4733
//! telephone-event and as audible tones (or also as SIP INFO) would otherwise
//! be heard twice.
//!
//! Rule: a digit is dropped when the same key arrived from a *different*
//! source within the window and that earlier digit has not already absorbed a
//! copy from this source. Digits from the same source are always kept (two
//! quick presses of one key are two digits).

use super::{DigitEvent, DtmfSource};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default window within which a second copy of a key from another source is
/// dropped. In-band detection lags the telephone-event start by about 30–40 ms;
/// phones cannot dial the same key twice within 100 ms (Q.24 requires 40 ms
/// tone and 40 ms pause, and real dialling is slower).
pub const DEFAULT_WINDOW_MS: u64 = 100;

/// How many accepted digits are remembered: enough to pair copies when one
/// method lags another by a press or two.
const HISTORY: usize = 4;

/// Settings of the deduplicator (`[dtmf.dedupe]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupeSettings {
    /// Window in milliseconds (default 100).
    pub window_ms: u64,
}

impl Default for DedupeSettings {
    fn default() -> Self {
        DedupeSettings {
            window_ms: DEFAULT_WINDOW_MS,
        }
    }
}

impl DedupeSettings {
    /// Problems with the settings, each naming its key; empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.window_ms > 1000 {
            problems.push(format!(
                "dtmf.dedupe.window_ms = {} is above 1000: genuine repeated key presses would be dropped",
                self.window_ms
            ));
        }
        problems
    }
}

#[derive(Clone, Copy, Debug)]
struct Accepted {
    event: DigitEvent,
    /// Sources whose copy of this press was already dropped.
    absorbed: [bool; 3],
}

fn source_index(source: DtmfSource) -> usize {
    match source {
        DtmfSource::Rfc4733 => 0,
        DtmfSource::Info => 1,
        DtmfSource::InBand => 2,
    }
}

/// Merges the digit streams of one call's detectors (sans-IO, no allocation).
#[derive(Clone, Debug)]
pub struct DigitDeduplicator {
    window: Duration,
    history: [Option<Accepted>; HISTORY],
    next_slot: usize,
}

impl Default for DigitDeduplicator {
    fn default() -> Self {
        Self::new(Duration::from_millis(DEFAULT_WINDOW_MS))
    }
}

impl DigitDeduplicator {
    /// A deduplicator with the given window.
    pub fn new(window: Duration) -> Self {
        DigitDeduplicator {
            window,
            history: [None; HISTORY],
            next_slot: 0,
        }
    }

    /// A deduplicator from settings.
    pub fn from_settings(settings: &DedupeSettings) -> Self {
        Self::new(Duration::from_millis(settings.window_ms))
    }

    /// Offers a detected digit; returns it if it is a new key press, `None`
    /// if it is another method's copy of a press already passed on.
    /// `event.at` is the time used; events should be offered in arrival order.
    pub fn offer(&mut self, event: DigitEvent) -> Option<DigitEvent> {
        let me = source_index(event.source);
        let window = self.window;
        let copy_of = self.history.iter_mut().flatten().find(|a| {
            a.event.digit == event.digit
                && a.event.source != event.source
                && !a.absorbed.get(me).copied().unwrap_or(true)
                && abs_diff(a.event.at, event.at) <= window
        });
        if let Some(original) = copy_of {
            if let Some(flag) = original.absorbed.get_mut(me) {
                *flag = true;
            }
            return None;
        }
        if let Some(slot) = self.history.get_mut(self.next_slot) {
            *slot = Some(Accepted {
                event,
                absorbed: [false; 3],
            });
        }
        self.next_slot = (self.next_slot + 1) % HISTORY;
        Some(event)
    }

    /// Forgets everything (new collection round).
    pub fn reset(&mut self) {
        self.history = [None; HISTORY];
        self.next_slot = 0;
    }
}

fn abs_diff(a: std::time::Instant, b: std::time::Instant) -> Duration {
    a.saturating_duration_since(b)
        .max(b.saturating_duration_since(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::Digit;
    use std::time::Instant;

    fn ev(digit: Digit, source: DtmfSource, t0: Instant, ms: u64) -> DigitEvent {
        DigitEvent {
            digit,
            source,
            at: t0 + Duration::from_millis(ms),
        }
    }

    fn run(events: &[DigitEvent]) -> Vec<(Digit, DtmfSource)> {
        let mut d = DigitDeduplicator::default();
        events
            .iter()
            .filter_map(|e| d.offer(*e))
            .map(|e| (e.digit, e.source))
            .collect()
    }

    use DtmfSource::*;

    #[test]
    fn same_press_by_two_methods_counts_once() {
        let t0 = Instant::now();
        let got = run(&[
            ev(Digit::D4, Rfc4733, t0, 0),
            ev(Digit::D4, InBand, t0, 35),
            ev(Digit::D7, InBand, t0, 200),
            ev(Digit::D7, Rfc4733, t0, 230),
        ]);
        assert_eq!(got, vec![(Digit::D4, Rfc4733), (Digit::D7, InBand)]);
    }

    #[test]
    fn same_source_is_always_kept() {
        let t0 = Instant::now();
        let got = run(&[
            ev(Digit::D5, Rfc4733, t0, 0),
            ev(Digit::D5, Rfc4733, t0, 10),
            ev(Digit::D5, InBand, t0, 20),
            ev(Digit::D5, InBand, t0, 40),
        ]);
        // Two genuine presses, each with its in-band copy.
        assert_eq!(got, vec![(Digit::D5, Rfc4733), (Digit::D5, Rfc4733)]);
    }

    #[test]
    fn repeated_key_by_two_methods_stays_two_presses() {
        let t0 = Instant::now();
        let got = run(&[
            ev(Digit::D5, Rfc4733, t0, 0),
            ev(Digit::D5, InBand, t0, 35),
            ev(Digit::D5, Rfc4733, t0, 90),
            ev(Digit::D5, InBand, t0, 125),
        ]);
        assert_eq!(got, vec![(Digit::D5, Rfc4733), (Digit::D5, Rfc4733)]);
    }

    #[test]
    fn copies_outside_the_window_or_of_other_keys_are_kept() {
        let t0 = Instant::now();
        let got = run(&[
            ev(Digit::D1, Rfc4733, t0, 0),
            ev(Digit::D1, Info, t0, 150),
            ev(Digit::D2, InBand, t0, 160),
        ]);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn lagging_method_is_paired_with_the_right_press() {
        let t0 = Instant::now();
        // In-band lags by more than one fast press.
        let got = run(&[
            ev(Digit::D1, Rfc4733, t0, 0),
            ev(Digit::D2, Rfc4733, t0, 60),
            ev(Digit::D1, InBand, t0, 70),
            ev(Digit::D2, InBand, t0, 130),
        ]);
        assert_eq!(got, vec![(Digit::D1, Rfc4733), (Digit::D2, Rfc4733)]);
    }

    #[test]
    fn three_methods_count_once() {
        let t0 = Instant::now();
        let got = run(&[
            ev(Digit::Pound, Info, t0, 0),
            ev(Digit::Pound, Rfc4733, t0, 5),
            ev(Digit::Pound, InBand, t0, 40),
        ]);
        assert_eq!(got, vec![(Digit::Pound, Info)]);
    }

    #[test]
    fn settings() {
        assert!(DedupeSettings::default().validate().is_empty());
        let bad = DedupeSettings { window_ms: 5000 };
        assert!(bad.validate()[0].contains("dtmf.dedupe.window_ms"));
        let d = DigitDeduplicator::from_settings(&DedupeSettings::default());
        assert_eq!(d.window, Duration::from_millis(100));
    }
}

//! Conference-ID digit collection: the keypad rules of the auto attendant.
//!
//! - `0`–`9` accumulate into the entry;
//! - `#` submits the entry;
//! - `*` clears the entry so the caller can start again;
//! - `A`–`D` (RFC 4733 §3.2 events 12–15, rare on phones) are ignored;
//! - optionally the entry is submitted on its own once it has as many digits
//!   as a conference ID;
//! - a first-digit timeout runs while the caller has keyed nothing, an
//!   inter-digit timeout once they have started.
//!
//! The collector is sans-IO: it never reads the clock, the caller passes
//! `now` and asks [`DigitCollector::poll_timeout`] when to call back.

use std::time::{Duration, Instant};

use crate::directory::ConferenceId;
use crate::dtmf::Digit;

use super::deadline;

/// Digits an [`Entry`] keeps. Longer entries are still counted (so they can
/// be refused as too long) but their extra digits are not stored: a caller
/// holding a key down cannot grow memory.
pub const ENTRY_CAPACITY: usize = 16;

/// The digits a caller keyed for one attempt. `Copy`, no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    digits: [u8; ENTRY_CAPACITY],
    keyed: u16,
}

impl Entry {
    /// An empty entry.
    pub const EMPTY: Entry = Entry {
        digits: [0; ENTRY_CAPACITY],
        keyed: 0,
    };

    /// Builds an entry from digit values (test and tooling helper); values
    /// above 9 are kept as they are and make the entry malformed.
    pub fn from_digits(digits: &[u8]) -> Entry {
        let mut e = Entry::EMPTY;
        for &d in digits {
            e.push(d);
        }
        e
    }

    fn push(&mut self, value: u8) {
        if let Some(slot) = self.digits.get_mut(usize::from(self.keyed)) {
            *slot = value;
        }
        self.keyed = self.keyed.saturating_add(1);
    }

    /// How many digits the caller keyed (may exceed what is stored).
    pub fn keyed(&self) -> usize {
        usize::from(self.keyed)
    }

    /// True when no digit was keyed.
    pub fn is_empty(&self) -> bool {
        self.keyed == 0
    }

    /// The stored digit values (at most [`ENTRY_CAPACITY`]).
    pub fn digits(&self) -> &[u8] {
        let n = usize::from(self.keyed).min(ENTRY_CAPACITY);
        self.digits.get(..n).unwrap_or(&[])
    }

    /// The conference ID this entry spells, if it has exactly `id_length`
    /// digits. Too short, too long or empty entries give `None`: they are
    /// refused, never truncated or padded.
    pub fn conference_id(&self, id_length: usize) -> Option<ConferenceId> {
        if self.keyed() != id_length {
            return None;
        }
        ConferenceId::from_digits(self.digits())
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keyed digits are a secret of sorts (a conference ID): show the
        // length only, never the digits.
        write!(f, "Entry({} digits)", self.keyed)
    }
}

/// The keypad settings of a collector (taken from [`super::IvrSettings`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectorSettings {
    /// Digits in a conference ID.
    pub id_length: usize,
    /// Submit as soon as `id_length` digits are keyed, without waiting for `#`.
    pub auto_submit_at_length: bool,
    /// How long to wait for the first digit after the prompt ends.
    pub first_digit_timeout: Duration,
    /// How long to wait for each following digit.
    pub inter_digit_timeout: Duration,
}

impl Default for CollectorSettings {
    fn default() -> Self {
        CollectorSettings {
            id_length: 7,
            auto_submit_at_length: true,
            first_digit_timeout: Duration::from_secs(10),
            inter_digit_timeout: Duration::from_secs(5),
        }
    }
}

/// What one key press did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOutcome {
    /// The key was not used: `A`–`D`, or the collector is closed.
    Ignored,
    /// A digit was added to the entry.
    Digit,
    /// `*`: the entry was cleared and starts again.
    Cleared,
    /// The entry was submitted (`#`, or auto submit at length). The
    /// collector is closed until [`DigitCollector::open`] is called again.
    Submitted(Entry),
}

impl KeyOutcome {
    /// True when the caller pressed a key the collector acted on; used for
    /// barge-in (any used key stops the prompt).
    pub fn is_used(&self) -> bool {
        !matches!(self, KeyOutcome::Ignored)
    }
}

/// What a timeout did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectTimeout {
    /// The first-digit timeout ran out: the caller keyed nothing.
    NoDigits,
    /// The inter-digit timeout ran out with a partial entry.
    Partial(Entry),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    FirstDigit(Instant),
    InterDigit(Instant),
}

impl Timer {
    fn at(self) -> Instant {
        match self {
            Timer::FirstDigit(t) | Timer::InterDigit(t) => t,
        }
    }
}

/// Collects one conference-ID entry at a time.
///
/// Lifecycle: [`open`](Self::open) (digits accepted, no timer yet, e.g.
/// while a prompt plays and the caller may barge in) →
/// [`arm`](Self::arm) when the prompt ends (first-digit timer) →
/// key presses and timeouts → [`KeyOutcome::Submitted`] or a
/// [`CollectTimeout`], which close the collector.
#[derive(Clone, Debug)]
pub struct DigitCollector {
    settings: CollectorSettings,
    entry: Entry,
    open: bool,
    timer: Option<Timer>,
}

impl DigitCollector {
    /// A closed collector.
    pub fn new(settings: CollectorSettings) -> Self {
        DigitCollector {
            settings,
            entry: Entry::EMPTY,
            open: false,
            timer: None,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &CollectorSettings {
        &self.settings
    }

    /// Starts a new, empty entry. Digits are accepted from now on, but no
    /// timer runs until [`arm`](Self::arm): a caller is not timed out while
    /// still listening to a prompt.
    pub fn open(&mut self) {
        self.entry = Entry::EMPTY;
        self.open = true;
        self.timer = None;
    }

    /// Starts the first-digit timer if the caller has keyed nothing and no
    /// timer runs yet (after a digit the inter-digit timer already runs).
    /// Opens the collector if it was closed.
    pub fn arm(&mut self, now: Instant) {
        if !self.open {
            self.open();
        }
        if self.timer.is_none() {
            self.timer = Some(if self.entry.is_empty() {
                Timer::FirstDigit(deadline(now, self.settings.first_digit_timeout))
            } else {
                Timer::InterDigit(deadline(now, self.settings.inter_digit_timeout))
            });
        }
    }

    /// Stops collecting: keys are ignored and no timer runs.
    pub fn close(&mut self) {
        self.open = false;
        self.timer = None;
        self.entry = Entry::EMPTY;
    }

    /// True while keys are accepted.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Digits keyed so far in the current entry.
    pub fn keyed(&self) -> usize {
        self.entry.keyed()
    }

    /// Handles one key press at `now`.
    pub fn handle_digit(&mut self, digit: Digit, now: Instant) -> KeyOutcome {
        if !self.open {
            return KeyOutcome::Ignored;
        }
        match digit {
            Digit::A | Digit::B | Digit::C | Digit::D => KeyOutcome::Ignored,
            Digit::Star => {
                self.entry = Entry::EMPTY;
                // The caller is actively keying: give them the full first-digit time again.
                self.timer = Some(Timer::FirstDigit(deadline(
                    now,
                    self.settings.first_digit_timeout,
                )));
                KeyOutcome::Cleared
            }
            Digit::Pound => self.submit(),
            _ => {
                let Some(value) = digit.decimal() else {
                    return KeyOutcome::Ignored;
                };
                self.entry.push(value);
                if self.settings.auto_submit_at_length
                    && self.entry.keyed() == self.settings.id_length
                {
                    return self.submit();
                }
                self.timer = Some(Timer::InterDigit(deadline(
                    now,
                    self.settings.inter_digit_timeout,
                )));
                KeyOutcome::Digit
            }
        }
    }

    fn submit(&mut self) -> KeyOutcome {
        let entry = self.entry;
        self.close();
        KeyOutcome::Submitted(entry)
    }

    /// The deadline of the running timer, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.map(Timer::at)
    }

    /// Fires the running timer if it is due at `now`; closes the collector
    /// when it does.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<CollectTimeout> {
        let timer = self.timer?;
        if now < timer.at() {
            return None;
        }
        let outcome = match timer {
            Timer::FirstDigit(_) if self.entry.is_empty() => CollectTimeout::NoDigits,
            _ => CollectTimeout::Partial(self.entry),
        };
        self.close();
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<Digit> {
        s.chars().map(|c| Digit::from_char(c).unwrap()).collect()
    }

    fn collector(auto: bool) -> DigitCollector {
        DigitCollector::new(CollectorSettings {
            auto_submit_at_length: auto,
            ..CollectorSettings::default()
        })
    }

    fn feed(c: &mut DigitCollector, s: &str, now: Instant) -> Vec<KeyOutcome> {
        keys(s)
            .into_iter()
            .map(|d| c.handle_digit(d, now))
            .collect()
    }

    fn submitted(o: &KeyOutcome) -> Entry {
        match o {
            KeyOutcome::Submitted(e) => *e,
            other => panic!("not submitted: {other:?}"),
        }
    }

    #[test]
    fn pound_submits() {
        let t0 = Instant::now();
        let mut c = collector(false);
        c.open();
        let out = feed(&mut c, "1234567#", t0);
        assert!(out[..7].iter().all(|o| *o == KeyOutcome::Digit));
        let e = submitted(&out[7]);
        assert_eq!(e.digits(), &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            e.conference_id(7),
            Some(ConferenceId::parse("1234567", 7).unwrap())
        );
        assert!(!c.is_open());
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.handle_digit(Digit::D1, t0), KeyOutcome::Ignored);
    }

    #[test]
    fn auto_submit_at_length() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.open();
        let out = feed(&mut c, "0012345", t0);
        let e = submitted(&out[6]);
        assert_eq!(e.conference_id(7).unwrap().to_string(), "0012345");
    }

    #[test]
    fn auto_submit_off_lets_the_entry_grow_and_refuses_it() {
        let t0 = Instant::now();
        let mut c = collector(false);
        c.open();
        let out = feed(&mut c, "12345678#", t0);
        let e = submitted(&out[8]);
        assert_eq!(e.keyed(), 8);
        assert_eq!(
            e.conference_id(7),
            None,
            "too long is refused, not truncated"
        );
    }

    #[test]
    fn short_and_empty_entries_are_not_ids() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.open();
        let e = submitted(&feed(&mut c, "123#", t0)[3]);
        assert_eq!(e.conference_id(7), None);
        c.open();
        let e = submitted(&c.handle_digit(Digit::Pound, t0));
        assert!(e.is_empty());
        assert_eq!(e.conference_id(7), None);
    }

    #[test]
    fn star_clears_and_restarts() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.open();
        feed(&mut c, "999", t0);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(c.handle_digit(Digit::Star, t1), KeyOutcome::Cleared);
        assert_eq!(c.keyed(), 0);
        assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(10)));
        let out = feed(&mut c, "7654321", t1);
        assert_eq!(submitted(&out[6]).digits(), &[7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn letters_are_ignored() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.open();
        let out = feed(&mut c, "12AB34CD567", t0);
        assert_eq!(out[2], KeyOutcome::Ignored);
        assert!(!out[2].is_used());
        assert_eq!(submitted(&out[10]).digits(), &[1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn no_timer_until_armed() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.open();
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.handle_timeout(t0 + Duration::from_secs(3600)), None);
        c.arm(t0);
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        // Arming again does not push the deadline back.
        c.arm(t0 + Duration::from_secs(4));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn first_digit_timeout() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.arm(t0);
        assert!(c.is_open());
        assert_eq!(c.handle_timeout(t0 + Duration::from_millis(9_999)), None);
        assert_eq!(
            c.handle_timeout(t0 + Duration::from_secs(10)),
            Some(CollectTimeout::NoDigits)
        );
        assert!(!c.is_open());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn inter_digit_timeout_runs_from_each_digit() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.arm(t0);
        c.handle_digit(Digit::D4, t0 + Duration::from_secs(1));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(6)));
        c.handle_digit(Digit::D2, t0 + Duration::from_secs(5));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(c.handle_timeout(t0 + Duration::from_secs(9)), None);
        match c.handle_timeout(t0 + Duration::from_secs(10)) {
            Some(CollectTimeout::Partial(e)) => assert_eq!(e.digits(), &[4, 2]),
            other => panic!("{other:?}"),
        }
        assert!(!c.is_open());
    }

    #[test]
    fn digit_during_prompt_starts_inter_digit_timer() {
        let t0 = Instant::now();
        let mut c = collector(true);
        c.open();
        c.handle_digit(Digit::D1, t0);
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        // The prompt-end arm() keeps the running inter-digit timer.
        c.arm(t0 + Duration::from_secs(1));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn very_long_entries_are_bounded() {
        let t0 = Instant::now();
        let mut c = collector(false);
        c.open();
        for _ in 0..100_000 {
            c.handle_digit(Digit::D9, t0);
        }
        let e = submitted(&c.handle_digit(Digit::Pound, t0));
        assert_eq!(e.keyed(), 65_535);
        assert_eq!(e.digits().len(), ENTRY_CAPACITY);
        assert_eq!(e.conference_id(7), None);
    }

    #[test]
    fn entry_debug_hides_digits() {
        let e = Entry::from_digits(&[1, 2, 3]);
        assert_eq!(format!("{e:?}"), "Entry(3 digits)");
        assert_eq!(Entry::from_digits(&[1, 2, 3, 4, 12]).conference_id(5), None);
    }
}

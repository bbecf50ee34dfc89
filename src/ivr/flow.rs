//! The auto attendant call flow: greet the caller, collect a conference ID,
//! ask the directory, then route the caller to the meeting or let them try
//! again, and say goodbye after too many wrong or empty entries.
//!
//! ```text
//!  start ──► Welcome (digits barge in) ──► collect ──► submit
//!                ▲                           │            │
//!                │ Timeout prompt ◄── no digits           ├─ malformed ─┐
//!                │                                        └─ LookUp ────┤
//!                │                                                       ▼
//!                └──── NotValid (digits barge in) ◄── Refused ◄─ (refusal delay)
//!                                                         Active ─► Joining ─► Route
//!  max_attempts failures, time limit ─► Goodbye ─► Hangup
//! ```
//!
//! [`CallFlow`] is sans-IO: the shell feeds it the call's events with `now`
//! and carries out the [`Action`]s it returns from [`CallFlow::poll_action`],
//! sleeping until [`CallFlow::poll_timeout`] in between. After each input,
//! drain `poll_action` until it returns `None`.
//!
//! # Keys and timers
//! Keypad rules are those of [`DigitCollector`]. Digits may be keyed while
//! the welcome, not-valid and timeout prompts play; the first key used
//! (`0`–`9`, `*`, `#`) stops the prompt ([`Action::StopPrompt`]). Timers
//! for digits start only when a prompt ends or the caller barges in, so a
//! caller is never timed out while listening, and never left waiting in
//! silence without one. When the inter-digit timeout runs out with digits
//! keyed, they are submitted as if `#` had been pressed: a complete ID
//! gets through, a partial one is refused like any wrong entry. An empty
//! first-digit timeout plays the timeout prompt, then the welcome again.
//! Wrong, malformed and empty entries all count against `max_attempts`.
//! Whatever happens, the call leaves the attendant by `max_ivr_duration`
//! (goodbye, then hang-up; farewells are cut after [`FAREWELL_LIMIT`]).
//!
//! # Refusals sound alike
//! Unknown, reset and expired IDs, and entries that are not a well-formed ID
//! at all, are refused with the same prompt after the same delay: the
//! refusal is held until [`IvrSettings::refusal_delay`] after the entry was
//! submitted, so neither the prompt nor the lookup latency tells a caller
//! why an ID was refused. Valid IDs are not held: the joining prompt
//! already tells the caller the ID is good, so delaying it would hide
//! nothing and only slow honest callers down.
//!
//! The failure itself is reported ([`Action::EntryFailed`]) as soon as it is
//! known, before the delay, so a caller who hangs up during the delay is
//! still counted by the guessing defence.
//!
//! # Guessing defence
//! The shell asks [`GuessingGuard::check_call`](super::guard::GuessingGuard::check_call)
//! before creating the flow and passes a refusal to [`CallFlow::new`]; it
//! feeds [`Action::EntryFailed`] reports with [`EntryFailure::is_guess`] to
//! [`GuessingGuard::record_failure`](super::guard::GuessingGuard::record_failure).
//!
//! # Media layer contract
//! [`CallFlow::prompt_finished`] is reported for a prompt that played to its
//! end, not for one stopped by [`Action::StopPrompt`]; reports for a prompt
//! that is not playing are ignored.

use std::time::{Duration, Instant};

use crate::directory::{ConferenceId, Lookup, Refusal, Route};
use crate::dtmf::{Digit, DtmfSource};
use crate::media::PromptId;

use super::collector::{CollectTimeout, DigitCollector, Entry, KeyOutcome};
use super::guard::GuardRefusal;
use super::{deadline, IvrSettings};

/// Longest a farewell prompt may take before the call is hung up anyway,
/// should the media layer never report its end.
pub const FAREWELL_LIMIT: Duration = Duration::from_secs(30);

/// Why the attendant hangs up on the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HangupReason {
    /// `max_attempts` wrong or empty entries.
    TooManyAttempts,
    /// Refused at the start by the guessing defence.
    Guard(GuardRefusal),
    /// The call reached `max_ivr_duration` in the attendant.
    TimeLimit,
    /// The directory did not answer a lookup within `lookup_timeout`.
    LookupTimeout,
    /// The shell reported that the bridge could not take the call.
    BridgeUnavailable,
}

/// Why an entry failed (for logs, metrics and the guessing defence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryFailure {
    /// A well-formed ID the directory refused.
    Refused(Refusal),
    /// Digits that are not an ID of the configured length (too short, too
    /// long, or `#` alone); never looked up, refused like an unknown ID.
    Malformed {
        /// Digits keyed.
        keyed: usize,
    },
    /// No digit before the first-digit timeout.
    Empty,
}

impl EntryFailure {
    /// True for failures that may be guesses (refused or malformed IDs);
    /// the shell passes these to the guessing defence. Empty entries are
    /// silence, not guesses.
    pub fn is_guess(self) -> bool {
        !matches!(self, EntryFailure::Empty)
    }
}

/// What the shell must do for the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start playing a prompt (replacing nothing: the previous one ended or was stopped).
    PlayPrompt(PromptId),
    /// Stop the playing prompt at once (the caller barged in).
    StopPrompt,
    /// Look the ID up and report the answer with [`CallFlow::handle_lookup`].
    LookUp(ConferenceId),
    /// Hand the call to the bridge; the attendant is done with it.
    Route(Route),
    /// Hang up (send BYE); the attendant is done with the call.
    Hangup(HangupReason),
    /// An entry failed; `attempt` is the number of failed entries so far
    /// in this call. Report only: count it, log it, feed the guard when
    /// [`EntryFailure::is_guess`].
    EntryFailed { failure: EntryFailure, attempt: u32 },
}

/// How a call left the attendant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallEnd {
    /// The caller hung up.
    CallerHungUp,
    /// The attendant hung up.
    HungUp(HangupReason),
}

/// The flow's state, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Not started.
    Idle,
    /// A prompt plays while digits are collected (barge-in allowed).
    Prompting(PromptId),
    /// Waiting for digits, with a timer running.
    Collecting { keyed: usize },
    /// An entry was submitted; waiting for the directory or the refusal delay.
    Checking,
    /// The joining prompt plays.
    Joining,
    /// Handed to the bridge.
    Routed,
    /// A farewell prompt plays before hanging up.
    Farewell(HangupReason),
    /// Over.
    Ended(CallEnd),
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    /// Waiting for the directory's answer until `deadline`.
    Lookup { deadline: Instant },
    /// Refused; tell the caller at `at`.
    Refuse { at: Instant },
}

#[derive(Clone, Debug)]
enum Phase {
    Idle,
    /// Collecting digits; `reprompt` plays after the current prompt if the
    /// caller has not started keying.
    Collecting {
        reprompt: Option<PromptId>,
    },
    Checking {
        submitted_at: Instant,
        pending: Pending,
    },
    Joining {
        route: Route,
    },
    Farewell {
        reason: HangupReason,
        deadline: Instant,
    },
    Routed,
    Ended(CallEnd),
}

#[derive(Clone, Copy, Debug)]
struct Timing {
    id_length: usize,
    max_attempts: u32,
    refusal_delay: Duration,
    lookup_timeout: Duration,
    max_ivr_duration: Duration,
}

/// The auto attendant for one call. See the [module docs](self).
///
/// ```
/// use std::time::{Duration, Instant};
/// use dialgate::directory::{Lookup, Refusal};
/// use dialgate::dtmf::{Digit, DtmfSource};
/// use dialgate::ivr::{Action, CallFlow, IvrSettings};
/// use dialgate::media::PromptId;
///
/// let t0 = Instant::now();
/// let mut flow = CallFlow::new(&IvrSettings::default(), None);
/// flow.start(t0);
/// assert_eq!(flow.poll_action(), Some(Action::PlayPrompt(PromptId::Welcome)));
///
/// // The caller keys an ID over the welcome prompt.
/// let now = t0 + Duration::from_secs(2);
/// for key in "7654321".chars().filter_map(Digit::from_char) {
///     flow.handle_digit(key, DtmfSource::Rfc4733, now);
/// }
/// // The shell drains the actions after every input.
/// let mut heard = Vec::new();
/// while let Some(action) = flow.poll_action() {
///     match action {
///         Action::LookUp(_id) => {
///             // directory.lookup(id, SystemTime::now())
///             flow.handle_lookup(Lookup::Refused(Refusal::Unknown), now)
///         }
///         other => heard.push(other),
///     }
/// }
/// assert_eq!(heard[0], Action::StopPrompt);
/// assert!(matches!(heard[1], Action::EntryFailed { attempt: 1, .. }));
/// // The refusal is announced after the refusal delay.
/// let wake = flow.poll_timeout().unwrap();
/// assert_eq!(wake, now + Duration::from_millis(300));
/// flow.handle_timeout(wake);
/// assert_eq!(flow.poll_action(), Some(Action::PlayPrompt(PromptId::NotValid)));
/// ```
#[derive(Clone, Debug)]
pub struct CallFlow {
    timing: Timing,
    collector: DigitCollector,
    early_refusal: Option<GuardRefusal>,
    phase: Phase,
    /// The prompt asked for and not yet finished or stopped.
    playing: Option<PromptId>,
    failed: u32,
    /// The call must leave the attendant by then.
    time_limit: Option<Instant>,
    actions: std::collections::VecDeque<Action>,
}

impl CallFlow {
    /// A flow for a newly answered call. `early_refusal` comes from
    /// [`super::guard::GuessingGuard::check_call`]: such a caller hears the
    /// too-many-attempts prompt and is hung up on.
    pub fn new(settings: &IvrSettings, early_refusal: Option<GuardRefusal>) -> Self {
        CallFlow {
            timing: Timing {
                id_length: settings.id_length,
                max_attempts: settings.max_attempts,
                refusal_delay: settings.refusal_delay,
                lookup_timeout: settings.lookup_timeout,
                max_ivr_duration: settings.max_ivr_duration,
            },
            collector: DigitCollector::new(settings.collector()),
            early_refusal,
            phase: Phase::Idle,
            playing: None,
            failed: 0,
            time_limit: None,
            actions: std::collections::VecDeque::with_capacity(4),
        }
    }

    /// The call was answered: greet the caller (or refuse them early).
    pub fn start(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Idle) {
            return;
        }
        self.time_limit = Some(deadline(now, self.timing.max_ivr_duration));
        if let Some(refusal) = self.early_refusal {
            self.farewell(PromptId::TooManyAttempts, HangupReason::Guard(refusal), now);
            return;
        }
        self.collector.open();
        self.play(PromptId::Welcome);
        self.phase = Phase::Collecting { reprompt: None };
    }

    /// A key press from any DTMF source (the DTMF layer has already merged
    /// duplicates; all sources are treated alike here).
    pub fn handle_digit(&mut self, digit: Digit, _source: DtmfSource, now: Instant) {
        let Phase::Collecting { reprompt } = &mut self.phase else {
            return;
        };
        let outcome = self.collector.handle_digit(digit, now);
        if !outcome.is_used() {
            return;
        }
        // Barge-in: the first key the caller presses stops the prompt and
        // cancels any re-prompt queued behind it.
        *reprompt = None;
        self.stop_prompt();
        if let KeyOutcome::Submitted(entry) = outcome {
            self.submit(entry, now);
        }
    }

    /// The media layer finished playing `prompt`.
    pub fn prompt_finished(&mut self, prompt: PromptId, now: Instant) {
        if self.playing != Some(prompt) {
            return;
        }
        self.playing = None;
        match &mut self.phase {
            Phase::Collecting { reprompt } => match reprompt.take() {
                Some(next) if self.collector.keyed() == 0 => self.play(next),
                _ => self.collector.arm(now),
            },
            Phase::Joining { .. } => {
                if let Phase::Joining { route } = std::mem::replace(&mut self.phase, Phase::Routed)
                {
                    self.time_limit = None;
                    self.actions.push_back(Action::Route(route));
                }
            }
            Phase::Farewell { reason, .. } => {
                let reason = *reason;
                self.hang_up(reason);
            }
            Phase::Idle | Phase::Checking { .. } | Phase::Routed | Phase::Ended(_) => {}
        }
    }

    /// The directory's answer to the last [`Action::LookUp`].
    pub fn handle_lookup(&mut self, lookup: Lookup, now: Instant) {
        let Phase::Checking {
            submitted_at,
            pending: Pending::Lookup { .. },
        } = self.phase
        else {
            return;
        };
        match lookup {
            Lookup::Active(route) => {
                self.phase = Phase::Joining { route };
                self.play(PromptId::Joining);
            }
            Lookup::Refused(refusal) => {
                self.report_failure(EntryFailure::Refused(refusal));
                self.phase = Phase::Checking {
                    submitted_at,
                    pending: Pending::Refuse {
                        at: deadline(submitted_at, self.timing.refusal_delay),
                    },
                };
                self.refuse_if_due(now);
            }
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Idle | Phase::Routed | Phase::Ended(_)) {
            return;
        }
        if self.time_limit.is_some_and(|limit| now >= limit) {
            self.time_limit = None;
            match self.phase {
                Phase::Farewell { reason, .. } => self.hang_up(reason),
                _ => self.farewell(PromptId::Goodbye, HangupReason::TimeLimit, now),
            }
            return;
        }
        match self.phase {
            Phase::Collecting { .. } => match self.collector.handle_timeout(now) {
                Some(CollectTimeout::NoDigits) => {
                    self.report_failure(EntryFailure::Empty);
                    self.try_again(PromptId::Timeout, Some(PromptId::Welcome), now);
                }
                Some(CollectTimeout::Partial(entry)) => {
                    // The caller stopped keying without `#`: take what they
                    // keyed as their entry (a complete ID gets through).
                    self.stop_prompt();
                    self.submit(entry, now);
                }
                None => {}
            },
            Phase::Checking {
                pending: Pending::Lookup { deadline },
                ..
            } if now >= deadline => {
                self.farewell(
                    PromptId::BridgeUnavailable,
                    HangupReason::LookupTimeout,
                    now,
                );
            }
            Phase::Checking { .. } => self.refuse_if_due(now),
            Phase::Farewell { reason, deadline } if now >= deadline => self.hang_up(reason),
            _ => {}
        }
    }

    /// The caller hung up: everything stops, no further actions or timers.
    pub fn hangup(&mut self, _now: Instant) {
        if matches!(self.phase, Phase::Ended(_)) {
            return;
        }
        self.phase = Phase::Ended(CallEnd::CallerHungUp);
        self.collector.close();
        self.playing = None;
        self.time_limit = None;
        self.actions.clear();
    }

    /// After [`Action::Route`]: the bridge could not take the call. The
    /// caller hears the bridge-unavailable prompt and is hung up on.
    pub fn bridge_failed(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Routed) {
            self.farewell(
                PromptId::BridgeUnavailable,
                HangupReason::BridgeUnavailable,
                now,
            );
        }
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None`
    /// when no timer runs (not started, routed, or ended).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase_timer = match self.phase {
            Phase::Idle | Phase::Routed | Phase::Ended(_) => return None,
            Phase::Collecting { .. } => self.collector.poll_timeout(),
            Phase::Checking {
                pending: Pending::Lookup { deadline },
                ..
            } => Some(deadline),
            Phase::Checking {
                pending: Pending::Refuse { at },
                ..
            } => Some(at),
            Phase::Joining { .. } => None,
            Phase::Farewell { deadline, .. } => Some(deadline),
        };
        match (phase_timer, self.time_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The current state, for logs and metrics.
    pub fn state(&self) -> FlowState {
        match &self.phase {
            Phase::Idle => FlowState::Idle,
            Phase::Collecting { .. } => match self.playing {
                Some(prompt) => FlowState::Prompting(prompt),
                None => FlowState::Collecting {
                    keyed: self.collector.keyed(),
                },
            },
            Phase::Checking { .. } => FlowState::Checking,
            Phase::Joining { .. } => FlowState::Joining,
            Phase::Farewell { reason, .. } => FlowState::Farewell(*reason),
            Phase::Routed => FlowState::Routed,
            Phase::Ended(end) => FlowState::Ended(*end),
        }
    }

    /// Failed entries (wrong, malformed or empty) so far in this call.
    pub fn failed_attempts(&self) -> u32 {
        self.failed
    }

    /// True once the attendant is done with the call (routed or ended).
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Routed | Phase::Ended(_))
    }

    fn play(&mut self, prompt: PromptId) {
        self.playing = Some(prompt);
        self.actions.push_back(Action::PlayPrompt(prompt));
    }

    fn stop_prompt(&mut self) {
        if self.playing.take().is_some() {
            self.actions.push_back(Action::StopPrompt);
        }
    }

    fn farewell(&mut self, prompt: PromptId, reason: HangupReason, now: Instant) {
        self.collector.close();
        self.stop_prompt();
        self.play(prompt);
        self.phase = Phase::Farewell {
            reason,
            deadline: deadline(now, FAREWELL_LIMIT),
        };
    }

    fn hang_up(&mut self, reason: HangupReason) {
        // A forced hang-up (time limit, silent media layer) may cut a prompt.
        self.stop_prompt();
        self.time_limit = None;
        self.collector.close();
        self.phase = Phase::Ended(CallEnd::HungUp(reason));
        self.actions.push_back(Action::Hangup(reason));
    }

    fn submit(&mut self, entry: Entry, now: Instant) {
        self.collector.close();
        match entry.conference_id(self.timing.id_length) {
            Some(id) => {
                self.actions.push_back(Action::LookUp(id));
                self.phase = Phase::Checking {
                    submitted_at: now,
                    pending: Pending::Lookup {
                        deadline: deadline(now, self.timing.lookup_timeout),
                    },
                };
            }
            None => {
                self.report_failure(EntryFailure::Malformed {
                    keyed: entry.keyed(),
                });
                self.phase = Phase::Checking {
                    submitted_at: now,
                    pending: Pending::Refuse {
                        at: deadline(now, self.timing.refusal_delay),
                    },
                };
                self.refuse_if_due(now);
            }
        }
    }

    fn report_failure(&mut self, failure: EntryFailure) {
        self.failed = self.failed.saturating_add(1);
        self.actions.push_back(Action::EntryFailed {
            failure,
            attempt: self.failed,
        });
    }

    fn refuse_if_due(&mut self, now: Instant) {
        if let Phase::Checking {
            pending: Pending::Refuse { at },
            ..
        } = self.phase
        {
            if now >= at {
                self.try_again(PromptId::NotValid, None, now);
            }
        }
    }

    /// After a failed entry: goodbye if that was the last attempt, else
    /// play `prompt` (then `reprompt`) while collecting a new entry.
    fn try_again(&mut self, prompt: PromptId, reprompt: Option<PromptId>, now: Instant) {
        if self.failed >= self.timing.max_attempts {
            self.farewell(PromptId::Goodbye, HangupReason::TooManyAttempts, now);
            return;
        }
        self.stop_prompt();
        self.collector.open();
        self.play(prompt);
        self.phase = Phase::Collecting { reprompt };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::guard::GuardRefusal;
    use std::collections::HashMap;
    use std::sync::Arc;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    fn prompt_len(p: PromptId) -> Duration {
        match p {
            PromptId::Welcome => 5 * S,
            PromptId::NotValid => 3 * S,
            PromptId::Timeout => 2 * S,
            PromptId::Joining => 2 * S,
            PromptId::Goodbye => 3 * S,
            PromptId::BridgeUnavailable => 3 * S,
            PromptId::TooManyAttempts => 4 * S,
        }
    }

    fn id(s: &str) -> ConferenceId {
        ConferenceId::parse(s, s.len()).unwrap()
    }

    fn route() -> crate::directory::Route {
        crate::directory::Route {
            organizer: Arc::from("amos.marble@contoso.com"),
            meeting: Arc::from("static"),
        }
    }

    /// A simulated call: media layer with prompt lengths, a directory with
    /// a fixed latency, and a log of every action with its time offset.
    struct Sim {
        flow: CallFlow,
        t0: Instant,
        now: Instant,
        prompt_end: Option<(PromptId, Instant)>,
        /// When false, the media layer never reports prompt ends.
        media_reports: bool,
        directory: HashMap<ConferenceId, Lookup>,
        /// `None`: the directory never answers.
        latency: Option<Duration>,
        pending_lookup: Option<(Instant, Lookup)>,
        log: Vec<(Duration, Action)>,
    }

    impl Sim {
        fn with(settings: IvrSettings, early: Option<GuardRefusal>) -> Sim {
            let t0 = Instant::now();
            let mut directory = HashMap::new();
            directory.insert(id("1234567"), Lookup::Active(route()));
            directory.insert(id("7000001"), Lookup::Refused(Refusal::Reset));
            directory.insert(id("7000002"), Lookup::Refused(Refusal::Expired));
            Sim {
                flow: CallFlow::new(&settings, early),
                t0,
                now: t0,
                prompt_end: None,
                media_reports: true,
                directory,
                latency: Some(Duration::ZERO),
                pending_lookup: None,
                log: Vec::new(),
            }
        }

        fn new() -> Sim {
            Sim::with(IvrSettings::default(), None)
        }

        fn start(mut self) -> Sim {
            self.flow.start(self.now);
            self.drain();
            self
        }

        fn at(&self) -> Duration {
            self.now - self.t0
        }

        fn drain(&mut self) {
            while let Some(a) = self.flow.poll_action() {
                match &a {
                    Action::PlayPrompt(p) => {
                        assert!(
                            self.prompt_end.is_none(),
                            "overlapping prompts: {:?}",
                            self.log
                        );
                        self.prompt_end = Some((*p, self.now + prompt_len(*p)));
                    }
                    Action::StopPrompt => {
                        assert!(
                            self.prompt_end.take().is_some(),
                            "stop with nothing playing"
                        );
                    }
                    Action::LookUp(id) => {
                        let answer = self
                            .directory
                            .get(id)
                            .cloned()
                            .unwrap_or(Lookup::Refused(Refusal::Unknown));
                        if let Some(lat) = self.latency {
                            self.pending_lookup = Some((self.now + lat, answer));
                        }
                    }
                    Action::Route(_) | Action::Hangup(_) => {
                        assert!(self.prompt_end.is_none(), "left while a prompt plays");
                    }
                    Action::EntryFailed { .. } => {}
                }
                self.log.push((self.at(), a));
                // A zero-latency directory answers before the next action.
                if let Some((at, _)) = &self.pending_lookup {
                    if *at <= self.now {
                        let (_, answer) = self.pending_lookup.take().unwrap();
                        self.flow.handle_lookup(answer, self.now);
                    }
                }
            }
        }

        /// Runs every event due up to `until`, then sets the clock there.
        fn run_until(&mut self, until: Instant) {
            loop {
                let prompt = self
                    .prompt_end
                    .filter(|_| self.media_reports)
                    .map(|(_, t)| t);
                let lookup = self.pending_lookup.as_ref().map(|(t, _)| *t);
                let timer = self.flow.poll_timeout();
                let next = [prompt, lookup, timer].into_iter().flatten().min();
                let Some(next) = next.filter(|&t| t <= until) else {
                    break;
                };
                assert!(next >= self.now, "deadline in the past");
                self.now = next;
                if prompt == Some(next) {
                    let (p, _) = self.prompt_end.take().unwrap();
                    self.flow.prompt_finished(p, next);
                } else if lookup == Some(next) {
                    let (_, answer) = self.pending_lookup.take().unwrap();
                    self.flow.handle_lookup(answer, next);
                } else {
                    self.flow.handle_timeout(next);
                }
                self.drain();
            }
            self.now = until;
        }

        fn run_for(&mut self, d: Duration) {
            self.run_until(self.now + d);
        }

        /// Runs until the flow is done (or a generous bound).
        fn run_out(&mut self) {
            self.run_for(3600 * S);
        }

        fn key(&mut self, keys: &str) {
            for c in keys.chars() {
                self.flow
                    .handle_digit(Digit::from_char(c).unwrap(), DtmfSource::Rfc4733, self.now);
                self.drain();
            }
        }

        /// Keys with `gap` between keys (running due events in between).
        fn key_slowly(&mut self, keys: &str, gap: Duration) {
            for c in keys.chars() {
                self.key(&c.to_string());
                self.run_for(gap);
            }
        }

        fn actions(&self) -> Vec<Action> {
            self.log.iter().map(|(_, a)| a.clone()).collect()
        }

        /// What the caller hears and when: prompts, stops, hang-up, route.
        fn audible(&self) -> Vec<(Duration, Action)> {
            self.log
                .iter()
                .filter(|(_, a)| !matches!(a, Action::EntryFailed { .. } | Action::LookUp(_)))
                .cloned()
                .collect()
        }

        fn assert_quiet(&mut self) {
            assert_eq!(self.flow.poll_action(), None);
            assert_eq!(self.flow.poll_timeout(), None);
        }
    }

    use Action::*;
    use PromptId::*;

    fn failed(failure: EntryFailure, attempt: u32) -> Action {
        EntryFailed { failure, attempt }
    }

    #[test]
    fn valid_id_first_try() {
        let mut sim = Sim::new().start();
        assert_eq!(sim.flow.state(), FlowState::Prompting(Welcome));
        sim.run_for(5 * S);
        assert_eq!(sim.flow.state(), FlowState::Collecting { keyed: 0 });
        sim.key("1234567");
        sim.run_out();
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (5 * S, LookUp(id("1234567"))),
                (5 * S, PlayPrompt(Joining)),
                (7 * S, Route(route())),
            ]
        );
        assert_eq!(sim.flow.state(), FlowState::Routed);
        assert!(sim.flow.is_done());
        assert_eq!(sim.flow.failed_attempts(), 0);
        sim.assert_quiet();
    }

    #[test]
    fn pound_submits_when_auto_submit_is_off() {
        let settings = IvrSettings {
            auto_submit_at_length: false,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_for(5 * S);
        sim.key("1234567");
        assert_eq!(sim.flow.state(), FlowState::Collecting { keyed: 7 });
        assert!(!sim.actions().iter().any(|a| matches!(a, LookUp(_))));
        sim.run_for(S);
        sim.key("#");
        sim.run_out();
        assert_eq!(
            sim.actions(),
            vec![
                PlayPrompt(Welcome),
                LookUp(id("1234567")),
                PlayPrompt(Joining),
                Route(route())
            ]
        );
    }

    #[test]
    fn too_long_entry_is_refused_not_truncated() {
        let settings = IvrSettings {
            auto_submit_at_length: false,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_for(5 * S);
        sim.key("12345678#");
        sim.run_for(10 * MS);
        assert_eq!(
            sim.actions(),
            vec![
                PlayPrompt(Welcome),
                failed(EntryFailure::Malformed { keyed: 8 }, 1)
            ]
        );
        sim.run_for(S);
        assert_eq!(
            sim.log.last().unwrap(),
            &(5 * S + 300 * MS, PlayPrompt(NotValid))
        );
    }

    #[test]
    fn auto_submit_does_not_need_pound_and_ignores_a_late_one() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("1234567#");
        sim.run_out();
        assert_eq!(sim.flow.state(), FlowState::Routed);
        assert_eq!(sim.flow.failed_attempts(), 0);
    }

    #[test]
    fn star_clears_the_entry() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("999*");
        assert_eq!(sim.flow.state(), FlowState::Collecting { keyed: 0 });
        // After `*` the caller gets the full first-digit time again.
        assert_eq!(sim.flow.poll_timeout(), Some(sim.now + 10 * S));
        sim.key("1234567");
        sim.run_out();
        assert_eq!(sim.flow.state(), FlowState::Routed);
        assert!(sim.actions().contains(&LookUp(id("1234567"))));
    }

    #[test]
    fn first_digit_stops_the_prompt_at_once() {
        let mut sim = Sim::new().start();
        sim.run_for(1200 * MS);
        sim.key("1");
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (1200 * MS, StopPrompt)
            ]
        );
        assert_eq!(sim.flow.state(), FlowState::Collecting { keyed: 1 });
        // The inter-digit timer runs from that digit.
        assert_eq!(sim.flow.poll_timeout(), Some(sim.now + 5 * S));
        // A late end report for the stopped prompt changes nothing.
        sim.flow.prompt_finished(Welcome, sim.now);
        assert_eq!(sim.flow.poll_action(), None);
        sim.key("234567");
        sim.run_out();
        assert_eq!(sim.flow.state(), FlowState::Routed);
        // Only one StopPrompt: later digits do not stop anything.
        assert_eq!(
            sim.actions().iter().filter(|a| **a == StopPrompt).count(),
            1
        );
    }

    #[test]
    fn pound_and_star_barge_in_but_letters_do_not() {
        let mut sim = Sim::new().start();
        sim.run_for(S);
        sim.key("A");
        assert_eq!(sim.flow.state(), FlowState::Prompting(Welcome));
        sim.key("*");
        assert_eq!(sim.actions(), vec![PlayPrompt(Welcome), StopPrompt]);
        assert_eq!(sim.flow.state(), FlowState::Collecting { keyed: 0 });
        assert_eq!(sim.flow.poll_timeout(), Some(sim.now + 10 * S));

        let mut sim = Sim::new().start();
        sim.run_for(S);
        sim.key("#");
        assert_eq!(
            sim.actions(),
            vec![
                PlayPrompt(Welcome),
                StopPrompt,
                failed(EntryFailure::Malformed { keyed: 0 }, 1)
            ]
        );
    }

    #[test]
    fn no_timeout_while_the_welcome_plays() {
        let settings = IvrSettings {
            first_digit_timeout: 2 * S,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        // Only the call's time limit runs while the 5 s welcome plays.
        assert_eq!(sim.flow.poll_timeout(), Some(sim.t0 + 120 * S));
        sim.run_for(5 * S);
        assert_eq!(sim.flow.poll_timeout(), Some(sim.t0 + 7 * S));
    }

    #[test]
    fn first_digit_timeout_plays_timeout_then_reprompts() {
        let mut sim = Sim::new().start();
        sim.run_for(22 * S);
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (15 * S, failed(EntryFailure::Empty, 1)),
                (15 * S, PlayPrompt(Timeout)),
                (17 * S, PlayPrompt(Welcome)),
            ]
        );
        // The welcome ends at 22 s; the first-digit timer is armed again.
        assert_eq!(sim.flow.state(), FlowState::Collecting { keyed: 0 });
        assert_eq!(sim.flow.poll_timeout(), Some(sim.t0 + 32 * S));
        sim.key("1234567");
        sim.run_out();
        assert_eq!(sim.flow.state(), FlowState::Routed);
        assert_eq!(sim.flow.failed_attempts(), 1);
    }

    #[test]
    fn barge_in_during_timeout_prompt_cancels_the_reprompt() {
        let mut sim = Sim::new().start();
        sim.run_for(16 * S);
        sim.key("1");
        sim.run_for(S);
        assert_eq!(
            sim.actions(),
            vec![
                PlayPrompt(Welcome),
                failed(EntryFailure::Empty, 1),
                PlayPrompt(Timeout),
                StopPrompt
            ]
        );
    }

    #[test]
    fn inter_digit_timeout_submits_a_partial_entry() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("123");
        sim.run_for(6 * S);
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (10 * S, failed(EntryFailure::Malformed { keyed: 3 }, 1)),
                (10 * S + 300 * MS, PlayPrompt(NotValid)),
            ]
        );
    }

    #[test]
    fn inter_digit_timeout_lets_a_complete_id_through_without_pound() {
        let settings = IvrSettings {
            auto_submit_at_length: false,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_for(5 * S);
        sim.key_slowly("1234567", S);
        sim.run_out();
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                // Last digit at 11 s, inter-digit timeout 5 s later.
                (16 * S, LookUp(id("1234567"))),
                (16 * S, PlayPrompt(Joining)),
                (18 * S, Route(route())),
            ]
        );
    }

    #[test]
    fn wrong_id_then_right_one() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("7654321");
        sim.run_for(4 * S);
        sim.key("1234567");
        sim.run_out();
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (5 * S, LookUp(id("7654321"))),
                (5 * S, failed(EntryFailure::Refused(Refusal::Unknown), 1)),
                (5 * S + 300 * MS, PlayPrompt(NotValid)),
                (9 * S, LookUp(id("1234567"))),
                (9 * S, PlayPrompt(Joining)),
                (11 * S, Route(route())),
            ]
        );
        assert_eq!(sim.flow.failed_attempts(), 1);
    }

    #[test]
    fn digits_during_not_valid_barge_in() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("7654321");
        sim.run_for(S);
        assert_eq!(sim.flow.state(), FlowState::Prompting(NotValid));
        sim.key("1");
        assert_eq!(sim.log.last().unwrap().1, StopPrompt);
        sim.key("234567");
        sim.run_out();
        assert_eq!(sim.flow.state(), FlowState::Routed);
    }

    #[test]
    fn three_wrong_ids_say_goodbye_and_hang_up() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        for _ in 0..3 {
            sim.key("7654321");
            sim.run_for(4 * S);
        }
        sim.run_out();
        let unknown = EntryFailure::Refused(Refusal::Unknown);
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (5 * S, LookUp(id("7654321"))),
                (5 * S, failed(unknown, 1)),
                (5 * S + 300 * MS, PlayPrompt(NotValid)),
                (9 * S, LookUp(id("7654321"))),
                (9 * S, failed(unknown, 2)),
                (9 * S + 300 * MS, PlayPrompt(NotValid)),
                (13 * S, LookUp(id("7654321"))),
                (13 * S, failed(unknown, 3)),
                (13 * S + 300 * MS, PlayPrompt(Goodbye)),
                (16 * S + 300 * MS, Hangup(HangupReason::TooManyAttempts)),
            ]
        );
        assert_eq!(
            sim.flow.state(),
            FlowState::Ended(CallEnd::HungUp(HangupReason::TooManyAttempts))
        );
        sim.assert_quiet();
        // Nothing more happens, whatever comes in.
        sim.key("1234567");
        sim.flow.handle_timeout(sim.now + 3600 * S);
        sim.flow.prompt_finished(Goodbye, sim.now);
        sim.assert_quiet();
    }

    #[test]
    fn timeouts_and_wrong_entries_share_the_attempt_budget() {
        let mut sim = Sim::new().start();
        // 1: silence through the welcome and the first-digit timeout.
        sim.run_for(15 * S);
        // 2: a wrong ID keyed while the re-prompt plays.
        sim.run_for(3 * S);
        sim.key("0000000");
        // 3: silence again.
        sim.run_out();
        assert_eq!(
            sim.audible(),
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (15 * S, PlayPrompt(Timeout)),
                (17 * S, PlayPrompt(Welcome)),
                (18 * S, StopPrompt),
                (18 * S + 300 * MS, PlayPrompt(NotValid)),
                (31 * S + 300 * MS, PlayPrompt(Goodbye)),
                (34 * S + 300 * MS, Hangup(HangupReason::TooManyAttempts)),
            ]
        );
        let failures: Vec<_> = sim
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                EntryFailed { failure, attempt } => Some((failure, attempt)),
                _ => None,
            })
            .collect();
        assert_eq!(
            failures,
            vec![
                (EntryFailure::Empty, 1),
                (EntryFailure::Refused(Refusal::Unknown), 2),
                (EntryFailure::Empty, 3)
            ]
        );
        sim.assert_quiet();
    }

    #[test]
    fn max_attempts_of_one() {
        let settings = IvrSettings {
            max_attempts: 1,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_out();
        assert_eq!(
            sim.audible(),
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (15 * S, PlayPrompt(Goodbye)),
                (18 * S, Hangup(HangupReason::TooManyAttempts)),
            ]
        );
    }

    /// Runs one wrong entry with the given directory answer and latency.
    fn refusal_run(keys: &str, answer: Option<Lookup>, latency: Duration) -> Sim {
        let mut sim = Sim::new();
        if let Some(answer) = answer {
            sim.directory.insert(id("7777777"), answer);
        }
        sim.latency = Some(latency);
        let mut sim = sim.start();
        sim.run_for(2 * S);
        sim.key(keys);
        sim.run_for(30 * S);
        sim
    }

    fn normalised(sim: &Sim) -> Vec<(Duration, Action)> {
        sim.log
            .iter()
            .map(|(t, a)| match a {
                EntryFailed {
                    failure: EntryFailure::Refused(_),
                    attempt,
                } => (
                    *t,
                    failed(EntryFailure::Refused(Refusal::Unknown), *attempt),
                ),
                other => (*t, other.clone()),
            })
            .collect()
    }

    #[test]
    fn unknown_reset_and_expired_are_indistinguishable() {
        let unknown = refusal_run("7777777", None, Duration::ZERO);
        let reset = refusal_run(
            "7777777",
            Some(Lookup::Refused(Refusal::Reset)),
            Duration::ZERO,
        );
        let expired = refusal_run(
            "7777777",
            Some(Lookup::Refused(Refusal::Expired)),
            Duration::ZERO,
        );
        assert_eq!(normalised(&unknown), normalised(&reset));
        assert_eq!(normalised(&unknown), normalised(&expired));
        // Only the report carries the reason.
        assert!(reset
            .actions()
            .contains(&failed(EntryFailure::Refused(Refusal::Reset), 1)));
        assert!(expired
            .actions()
            .contains(&failed(EntryFailure::Refused(Refusal::Expired), 1)));
        // The refusal is heard the same time after submission, whatever
        // the directory latency (below the refusal delay).
        let slow_reset = refusal_run("7777777", Some(Lookup::Refused(Refusal::Reset)), 250 * MS);
        assert_eq!(unknown.audible(), slow_reset.audible());
        // Malformed entries (never looked up) sound the same as well.
        let short = refusal_run("77777#", None, Duration::ZERO);
        assert_eq!(unknown.audible(), short.audible());
        assert_eq!(
            unknown.audible(),
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (2 * S, StopPrompt),
                (2 * S + 300 * MS, PlayPrompt(NotValid)),
                (15 * S + 300 * MS, PlayPrompt(Timeout)),
                (17 * S + 300 * MS, PlayPrompt(Welcome)),
            ]
        );
    }

    #[test]
    fn failure_is_reported_before_the_refusal_delay() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("7654321");
        assert_eq!(
            sim.actions().last(),
            Some(&failed(EntryFailure::Refused(Refusal::Unknown), 1))
        );
        assert_eq!(sim.flow.state(), FlowState::Checking);
        assert_eq!(sim.flow.poll_timeout(), Some(sim.now + 300 * MS));
        // Hanging up during the delay: the failure was already reported.
        sim.flow.hangup(sim.now + 100 * MS);
        sim.assert_quiet();
        assert_eq!(sim.flow.state(), FlowState::Ended(CallEnd::CallerHungUp));
    }

    #[test]
    fn zero_refusal_delay_refuses_at_once() {
        let settings = IvrSettings {
            refusal_delay: Duration::ZERO,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_for(5 * S);
        sim.key("7654321");
        assert_eq!(sim.log.last().unwrap(), &(5 * S, PlayPrompt(NotValid)));
    }

    #[test]
    fn a_slow_refusal_is_not_held_further() {
        let mut sim = Sim::new();
        sim.latency = Some(S);
        let mut sim = sim.start();
        sim.run_for(5 * S);
        sim.key("7654321");
        sim.run_for(2 * S);
        assert_eq!(sim.log.last().unwrap(), &(6 * S, PlayPrompt(NotValid)));
    }

    #[test]
    fn hang_up_mid_prompt_leaves_nothing_running() {
        let mut sim = Sim::new().start();
        sim.run_for(2 * S);
        sim.flow.hangup(sim.now);
        sim.assert_quiet();
        assert_eq!(sim.flow.state(), FlowState::Ended(CallEnd::CallerHungUp));
        sim.key("1234567");
        sim.flow.prompt_finished(Welcome, sim.now);
        sim.flow.handle_lookup(Lookup::Active(route()), sim.now);
        sim.flow.handle_timeout(sim.now + 3600 * S);
        sim.flow.start(sim.now);
        sim.flow.hangup(sim.now);
        sim.assert_quiet();
    }

    #[test]
    fn hang_up_mid_lookup_leaves_nothing_running() {
        let mut sim = Sim::new();
        sim.latency = Some(S);
        let mut sim = sim.start();
        sim.run_for(5 * S);
        sim.key("1234567");
        assert_eq!(sim.flow.state(), FlowState::Checking);
        sim.flow.hangup(sim.now + 500 * MS);
        sim.assert_quiet();
        sim.flow.handle_lookup(Lookup::Active(route()), sim.now + S);
        sim.assert_quiet();
    }

    #[test]
    fn hang_up_with_actions_pending_drops_them() {
        let mut flow = CallFlow::new(&IvrSettings::default(), None);
        let t0 = Instant::now();
        flow.start(t0);
        flow.hangup(t0);
        assert_eq!(flow.poll_action(), None);
        assert_eq!(flow.poll_timeout(), None);
    }

    #[test]
    fn hang_up_while_joining_does_not_route() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("1234567");
        assert_eq!(sim.flow.state(), FlowState::Joining);
        sim.flow.hangup(sim.now + S);
        sim.flow.prompt_finished(Joining, sim.now + 2 * S);
        sim.assert_quiet();
    }

    #[test]
    fn early_refusal_plays_too_many_attempts_and_hangs_up() {
        let refusal = GuardRefusal::AddressLocked;
        let mut sim = Sim::with(IvrSettings::default(), Some(refusal)).start();
        assert_eq!(
            sim.flow.state(),
            FlowState::Farewell(HangupReason::Guard(refusal))
        );
        sim.key("1234567");
        sim.run_out();
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(TooManyAttempts)),
                (4 * S, Hangup(HangupReason::Guard(refusal))),
            ]
        );
        sim.assert_quiet();
    }

    #[test]
    fn time_limit_says_goodbye() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        // A caller who keeps starting over never fails an attempt.
        for _ in 0..20 {
            sim.key("12*");
            sim.run_for(9 * S);
        }
        sim.run_out();
        let audible = sim.audible();
        assert_eq!(
            &audible[audible.len() - 2..],
            &[
                (120 * S, PlayPrompt(Goodbye)),
                (123 * S, Hangup(HangupReason::TimeLimit)),
            ]
        );
        assert_eq!(sim.flow.failed_attempts(), 0);
        sim.assert_quiet();
    }

    #[test]
    fn time_limit_stops_a_playing_prompt_first() {
        let settings = IvrSettings {
            max_ivr_duration: 10 * S,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_for(5 * S);
        sim.key("7654321");
        sim.run_for(4 * S);
        sim.key("7654321");
        sim.run_out();
        assert_eq!(
            sim.audible(),
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (5 * S + 300 * MS, PlayPrompt(NotValid)),
                (9 * S + 300 * MS, PlayPrompt(NotValid)),
                (10 * S, StopPrompt),
                (10 * S, PlayPrompt(Goodbye)),
                (13 * S, Hangup(HangupReason::TimeLimit)),
            ]
        );
    }

    #[test]
    fn silent_media_layer_still_ends_the_call() {
        let mut sim = Sim::new();
        sim.media_reports = false;
        let mut sim = sim.start();
        sim.run_out();
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (120 * S, StopPrompt),
                (120 * S, PlayPrompt(Goodbye)),
                (150 * S, StopPrompt),
                (150 * S, Hangup(HangupReason::TimeLimit)),
            ]
        );
    }

    #[test]
    fn farewell_is_cut_at_the_time_limit() {
        let mut sim = Sim::new();
        sim.media_reports = false;
        sim.latency = Some(Duration::ZERO);
        let mut sim = sim.start();
        sim.run_for(110 * S);
        for _ in 0..3 {
            sim.key("7654321");
            sim.run_for(S);
        }
        // Goodbye started at 112.3 s; the limit hangs up at 120 s.
        sim.run_out();
        assert_eq!(
            sim.log.last().unwrap(),
            &(120 * S, Hangup(HangupReason::TooManyAttempts))
        );
        sim.assert_quiet();
    }

    #[test]
    fn lookup_timeout_gives_up_politely() {
        let mut sim = Sim::new();
        sim.latency = None;
        let mut sim = sim.start();
        sim.run_for(5 * S);
        sim.key("1234567");
        sim.run_out();
        assert_eq!(
            sim.log,
            vec![
                (Duration::ZERO, PlayPrompt(Welcome)),
                (5 * S, LookUp(id("1234567"))),
                (7 * S, PlayPrompt(BridgeUnavailable)),
                (10 * S, Hangup(HangupReason::LookupTimeout)),
            ]
        );
        // A late answer is ignored.
        sim.flow.handle_lookup(Lookup::Active(route()), sim.now);
        sim.assert_quiet();
    }

    #[test]
    fn bridge_failure_after_route() {
        let mut sim = Sim::new().start();
        sim.run_for(5 * S);
        sim.key("1234567");
        sim.run_out();
        assert_eq!(sim.flow.state(), FlowState::Routed);
        sim.flow.bridge_failed(sim.now);
        sim.drain();
        sim.run_out();
        assert_eq!(
            &sim.audible()[3..],
            &[
                (3605 * S, PlayPrompt(BridgeUnavailable)),
                (3608 * S, Hangup(HangupReason::BridgeUnavailable)),
            ]
        );
    }

    #[test]
    fn inputs_out_of_order_are_ignored() {
        let t0 = Instant::now();
        let mut flow = CallFlow::new(&IvrSettings::default(), None);
        // Before start.
        flow.handle_digit(Digit::D1, DtmfSource::Info, t0);
        flow.prompt_finished(Welcome, t0);
        flow.handle_lookup(Lookup::Refused(Refusal::Unknown), t0);
        flow.handle_timeout(t0);
        flow.bridge_failed(t0);
        assert_eq!(flow.state(), FlowState::Idle);
        assert_eq!(flow.poll_action(), None);
        assert_eq!(flow.poll_timeout(), None);
        flow.start(t0);
        assert_eq!(flow.poll_action(), Some(PlayPrompt(Welcome)));
        // A second start, a wrong prompt end and an unasked lookup do nothing.
        flow.start(t0);
        flow.prompt_finished(Goodbye, t0);
        flow.handle_lookup(Lookup::Active(route()), t0);
        flow.bridge_failed(t0);
        assert_eq!(flow.poll_action(), None);
        assert_eq!(flow.state(), FlowState::Prompting(Welcome));
        // Digits while checking or joining are ignored.
        flow.handle_digit(Digit::D1, DtmfSource::Info, t0);
        for d in "234567".chars() {
            flow.handle_digit(Digit::from_char(d).unwrap(), DtmfSource::InBand, t0);
        }
        assert_eq!(flow.state(), FlowState::Checking);
        flow.handle_digit(Digit::Pound, DtmfSource::InBand, t0);
        flow.handle_lookup(Lookup::Active(route()), t0);
        flow.handle_digit(Digit::Star, DtmfSource::InBand, t0);
        assert_eq!(flow.state(), FlowState::Joining);
        let actions: Vec<_> = std::iter::from_fn(|| flow.poll_action()).collect();
        assert_eq!(
            actions,
            vec![StopPrompt, LookUp(id("1234567")), PlayPrompt(Joining)]
        );
    }

    #[test]
    fn other_id_lengths() {
        let settings = IvrSettings {
            id_length: 10,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_for(5 * S);
        sim.key("0000000042");
        assert!(sim.actions().contains(&LookUp(id("0000000042"))));
        // A seven-digit ID is malformed under a ten-digit plan.
        let settings = IvrSettings {
            id_length: 10,
            ..IvrSettings::default()
        };
        let mut sim = Sim::with(settings, None).start();
        sim.run_for(5 * S);
        sim.key("1234567#");
        assert!(sim
            .actions()
            .contains(&failed(EntryFailure::Malformed { keyed: 7 }, 1)));
    }

    #[test]
    fn is_guess_excludes_silence() {
        assert!(EntryFailure::Refused(Refusal::Reset).is_guess());
        assert!(EntryFailure::Malformed { keyed: 3 }.is_guess());
        assert!(!EntryFailure::Empty.is_guess());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Input {
            Key(Digit),
            Wait(u64),
            HangUp,
        }

        fn input() -> impl Strategy<Value = Input> {
            prop_oneof![
                8 => (0usize..16).prop_map(|i| Input::Key(Digit::ALL[i])),
                4 => (0u64..12_000).prop_map(Input::Wait),
                1 => Just(Input::HangUp),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// Whatever the caller does, the flow never panics, never
            /// leaves a caller waiting for digits without a timer, and
            /// always ends (routed or hung up) in bounded time.
            #[test]
            fn every_call_ends(
                inputs in proptest::collection::vec(input(), 0..60),
                auto in any::<bool>(),
                media_reports in any::<bool>(),
                latency_ms in proptest::option::of(0u64..3000),
            ) {
                let settings = IvrSettings {
                    auto_submit_at_length: auto,
                    ..IvrSettings::default()
                };
                let mut sim = Sim::with(settings, None);
                sim.media_reports = media_reports;
                sim.latency = latency_ms.map(Duration::from_millis);
                let mut sim = sim.start();
                let mut hung_up = false;
                for i in inputs {
                    match i {
                        Input::Key(d) => {
                            sim.flow.handle_digit(d, DtmfSource::Rfc4733, sim.now);
                            sim.drain();
                        }
                        Input::Wait(ms) => sim.run_for(Duration::from_millis(ms)),
                        Input::HangUp => {
                            sim.flow.hangup(sim.now);
                            hung_up = true;
                            sim.assert_quiet();
                        }
                    }
                    if let FlowState::Collecting { .. } = sim.flow.state() {
                        prop_assert!(sim.flow.poll_timeout().is_some(), "silence");
                    }
                    if hung_up {
                        sim.assert_quiet();
                    }
                }
                sim.run_for(200 * S + 3600 * S);
                prop_assert!(sim.flow.is_done(), "not done: {:?}", sim.flow.state());
                prop_assert_eq!(sim.flow.poll_timeout(), None);
                prop_assert!(sim.flow.failed_attempts() <= 3);
                let last_exit = sim.log.iter().rev().find(|(_, a)| matches!(a, Route(_) | Hangup(_)));
                if let Some((t, _)) = last_exit {
                    if !matches!(sim.flow.state(), FlowState::Ended(CallEnd::HungUp(HangupReason::BridgeUnavailable))) {
                        prop_assert!(*t <= 120 * S + FAREWELL_LIMIT);
                    }
                }
            }
        }
    }
}

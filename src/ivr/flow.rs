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
use super::IvrSettings;

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
        self.time_limit = Some(now + self.timing.max_ivr_duration);
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
                        at: submitted_at + self.timing.refusal_delay,
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
            deadline: now + FAREWELL_LIMIT,
        };
    }

    fn hang_up(&mut self, reason: HangupReason) {
        self.playing = None;
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
                        deadline: now + self.timing.lookup_timeout,
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
                        at: now + self.timing.refusal_delay,
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

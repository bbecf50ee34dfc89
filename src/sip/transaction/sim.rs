//! Test harness: a simulated clock that jumps to the next deadline.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Transaction, TransactionEvent};

/// What a machine did while simulated time ran, as offsets from `t0`.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    pub transmits: Vec<(Duration, Bytes)>,
    pub events: Vec<(Duration, TransactionEvent)>,
    /// When the machine reached Terminated, if it did.
    pub terminated_at: Option<Duration>,
}

impl Trace {
    /// Offsets of the transmits, in seconds.
    pub fn transmit_times(&self) -> Vec<f64> {
        self.transmits
            .iter()
            .map(|(t, _)| t.as_secs_f64())
            .collect()
    }
}

/// Drains every output of `tx` at `at` into `trace`.
pub(crate) fn drain<T: Transaction>(tx: &mut T, t0: Instant, at: Instant, trace: &mut Trace) {
    let offset = at.saturating_duration_since(t0);
    while let Some(bytes) = tx.poll_transmit() {
        trace.transmits.push((offset, bytes));
    }
    while let Some(event) = tx.poll_event() {
        trace.events.push((offset, event));
    }
    if tx.is_terminated() && trace.terminated_at.is_none() {
        trace.terminated_at = Some(offset);
    }
}

/// Advances to each next deadline up to `t0 + until`, firing timers and
/// recording outputs. Returns the trace and the simulated time reached
/// (the last deadline fired, or `from` if none).
pub(crate) fn run_until<T: Transaction>(
    tx: &mut T,
    t0: Instant,
    from: Instant,
    until: Duration,
) -> (Trace, Instant) {
    let mut trace = Trace::default();
    let mut now = from;
    drain(tx, t0, now, &mut trace);
    while let Some(deadline) = tx.poll_timeout() {
        if deadline > t0 + until {
            break;
        }
        assert!(deadline >= now, "deadline went backwards");
        now = deadline;
        tx.handle_timeout(now);
        drain(tx, t0, now, &mut trace);
    }
    (trace, now)
}

/// Drains the transmits of `tx` now.
pub(crate) fn transmits<T: Transaction>(tx: &mut T) -> Vec<Bytes> {
    std::iter::from_fn(|| tx.poll_transmit()).collect()
}

/// Drains the events of `tx` now.
pub(crate) fn events<T: Transaction>(tx: &mut T) -> Vec<TransactionEvent> {
    std::iter::from_fn(|| tx.poll_event()).collect()
}

/// Seconds as a `Duration`.
pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Expected retransmission offsets: first after `t1`, doubling, capped at
/// `cap` when given, strictly before `end`, starting from `start`.
pub(crate) fn backoff(start: f64, t1: f64, cap: Option<f64>, end: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut interval = t1;
    let mut at = start + interval;
    while at < end {
        out.push(at);
        interval *= 2.0;
        if let Some(cap) = cap {
            interval = interval.min(cap);
        }
        at += interval;
    }
    out
}

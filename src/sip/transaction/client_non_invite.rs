//! Non-INVITE client transaction (RFC 3261 §17.1.2): BYE today; REFER,
//! NOTIFY, INFO and CANCEL use it too.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerId, TimerTable};
use super::{
    check_status, transaction_surface, Outbox, Reliability, TimerSettings, TransactionError,
    TransactionEvent,
};

/// States of the non-INVITE client transaction (RFC 3261 Figure 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonInviteClientState {
    /// Request sent; retransmitting (Timer E) with back-off.
    Trying,
    /// A provisional response arrived; retransmitting every T2.
    Proceeding,
    /// A final response arrived; absorbing retransmissions until Timer K.
    Completed,
    /// Finished; the transaction can be dropped.
    Terminated,
}

/// Timers of the non-INVITE client transaction; timeouts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonInviteClientTimer {
    /// Timer F (64·T1): transaction timeout.
    F,
    /// Timer K (T4; 0 reliable): absorb response retransmissions.
    K,
    /// Timer E (T1 doubling to T2, T2 in Proceeding; unreliable only).
    E,
}

impl TimerId for NonInviteClientTimer {
    const ALL: &'static [Self] = &[Self::F, Self::K, Self::E];
    fn index(self) -> usize {
        self as usize
    }
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub struct NonInviteClientTransaction {
    state: NonInviteClientState,
    settings: TimerSettings,
    reliability: Reliability,
    timers: TimerTable<NonInviteClientTimer, 3>,
    out: Outbox,
    request: Bytes,
    interval: Duration,
}

impl NonInviteClientTransaction {
    /// Creates the transaction and queues the request for sending; starts
    /// Timer E (unreliable) and Timer F.
    pub fn new(
        request: Bytes,
        now: Instant,
        settings: TimerSettings,
        reliability: Reliability,
    ) -> Self {
        let mut tx = Self {
            state: NonInviteClientState::Trying,
            settings,
            reliability,
            timers: TimerTable::default(),
            out: Outbox::default(),
            request: request.clone(),
            interval: settings.t1,
        };
        tx.out.send(request);
        if reliability == Reliability::Unreliable {
            tx.timers.set(NonInviteClientTimer::E, now + settings.t1);
        }
        tx.timers
            .set(NonInviteClientTimer::F, now + settings.t1_x64());
        tx
    }

    /// Current state.
    pub fn state(&self) -> NonInviteClientState {
        self.state
    }

    /// Transport reliability given at creation.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// The serialised request this transaction sends.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// A response matching this transaction arrived (§17.1.2.2).
    pub fn on_response(&mut self, status: u16, now: Instant) -> Result<(), TransactionError> {
        check_status(status)?;
        match self.state {
            NonInviteClientState::Trying | NonInviteClientState::Proceeding if status < 200 => {
                self.state = NonInviteClientState::Proceeding;
                self.out.emit(TransactionEvent::Provisional(status));
            }
            NonInviteClientState::Trying | NonInviteClientState::Proceeding => {
                self.timers.stop_all();
                self.state = NonInviteClientState::Completed;
                self.out.emit(TransactionEvent::Final(status));
                match self.reliability {
                    Reliability::Reliable => self.terminate(),
                    Reliability::Unreliable => self
                        .timers
                        .set(NonInviteClientTimer::K, now + self.settings.t4),
                }
            }
            // Retransmitted responses are absorbed.
            NonInviteClientState::Completed | NonInviteClientState::Terminated => {}
        }
        Ok(())
    }

    /// The transport failed to send the request (§17.1.2.2).
    pub fn on_transport_error(&mut self, _now: Instant) {
        if self.state != NonInviteClientState::Terminated {
            self.out.emit(TransactionEvent::TransportError);
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = NonInviteClientState::Terminated;
        self.timers.stop_all();
    }

    fn fire(&mut self, timer: NonInviteClientTimer, now: Instant) {
        match (timer, self.state) {
            (NonInviteClientTimer::E, NonInviteClientState::Trying) => {
                self.out.send(self.request.clone());
                self.interval = self.interval.saturating_mul(2).min(self.settings.t2);
                self.timers
                    .set(NonInviteClientTimer::E, now + self.interval);
            }
            (NonInviteClientTimer::E, NonInviteClientState::Proceeding) => {
                self.out.send(self.request.clone());
                self.interval = self.settings.t2;
                self.timers
                    .set(NonInviteClientTimer::E, now + self.interval);
            }
            (
                NonInviteClientTimer::F,
                NonInviteClientState::Trying | NonInviteClientState::Proceeding,
            ) => {
                self.out.emit(TransactionEvent::Timeout);
                self.terminate();
            }
            (NonInviteClientTimer::K, NonInviteClientState::Completed) => self.terminate(),
            _ => {}
        }
    }
}

transaction_surface!(NonInviteClientTransaction, NonInviteClientState::Terminated);

//! INVITE client transaction (RFC 3261 §17.1.1) with the Accepted state of
//! RFC 6026 §7.2.
//!
//! The ACK for a non-2xx final response belongs to this transaction
//! (§17.1.1.3), but messages are opaque here, so the TU builds it: on a
//! 300–699 response the machine emits [`TransactionEvent::Final`] then
//! [`TransactionEvent::AckNeeded`]; the TU answers at once with
//! [`InviteClientTransaction::send_ack`]. The machine sends it and re-sends
//! it for every retransmission of the final response. The ACK for a 2xx is
//! the TU's (§13.2.2.4): every 2xx is reported as `Final` while Accepted.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerId, TimerTable};
use super::{
    check_status, transaction_surface, Outbox, Reliability, TimerSettings, TransactionError,
    TransactionEvent, TIMER_D_UNRELIABLE,
};

/// States of the INVITE client transaction (RFC 3261 Figure 5, RFC 6026 Figure 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteClientState {
    /// INVITE sent; retransmitting (Timer A) until a response or Timer B.
    Calling,
    /// A provisional response arrived; waiting for the final one.
    Proceeding,
    /// A 300–699 response arrived and was ACKed; absorbing retransmissions.
    Completed,
    /// A 2xx arrived (RFC 6026): further 2xx go to the TU until Timer M.
    Accepted,
    /// Finished; the transaction can be dropped.
    Terminated,
}

impl InviteClientState {
    fn name(self) -> &'static str {
        match self {
            Self::Calling => "Calling",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// Timers of the INVITE client transaction; timeouts listed first so they
/// win a tie with a retransmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteClientTimer {
    /// Timer B (64·T1): INVITE transaction timeout in Calling.
    B,
    /// Timer D (32 s; 0 reliable): absorb final response retransmissions.
    D,
    /// Timer M (64·T1, RFC 6026): end of the Accepted state.
    M,
    /// Timer A (T1, doubling; unreliable only): INVITE retransmission.
    A,
}

impl TimerId for InviteClientTimer {
    const ALL: &'static [Self] = &[Self::B, Self::D, Self::M, Self::A];
    fn index(self) -> usize {
        self as usize
    }
}

/// An INVITE client transaction. See the module documentation.
#[derive(Debug)]
pub struct InviteClientTransaction {
    state: InviteClientState,
    settings: TimerSettings,
    reliability: Reliability,
    timers: TimerTable<InviteClientTimer, 4>,
    out: Outbox,
    request: Bytes,
    ack: Option<Bytes>,
    /// A non-2xx final response arrived and the TU has not supplied the ACK.
    awaiting_ack: bool,
    interval: Duration,
}

impl InviteClientTransaction {
    /// Creates the transaction and queues the INVITE for sending; starts
    /// Timer A (unreliable) and Timer B.
    pub fn new(
        request: Bytes,
        now: Instant,
        settings: TimerSettings,
        reliability: Reliability,
    ) -> Self {
        let mut tx = Self {
            state: InviteClientState::Calling,
            settings,
            reliability,
            timers: TimerTable::default(),
            out: Outbox::default(),
            request: request.clone(),
            ack: None,
            awaiting_ack: false,
            interval: settings.t1,
        };
        tx.out.send(request);
        if reliability == Reliability::Unreliable {
            tx.timers.set(InviteClientTimer::A, now + settings.t1);
        }
        tx.timers.set(InviteClientTimer::B, now + settings.t1_x64());
        tx
    }

    /// Current state.
    pub fn state(&self) -> InviteClientState {
        self.state
    }

    /// Transport reliability given at creation.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// The serialised INVITE this transaction sends.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// A response matching this transaction arrived (§17.1.1.2).
    pub fn on_response(&mut self, status: u16, now: Instant) -> Result<(), TransactionError> {
        check_status(status)?;
        match (self.state, status) {
            (InviteClientState::Calling | InviteClientState::Proceeding, 100..=199) => {
                self.state = InviteClientState::Proceeding;
                // Retransmission stops; Timer B only applies to Calling.
                self.timers.stop(InviteClientTimer::A);
                self.timers.stop(InviteClientTimer::B);
                self.out.emit(TransactionEvent::Provisional(status));
            }
            (InviteClientState::Calling | InviteClientState::Proceeding, 200..=299) => {
                self.timers.stop_all();
                self.state = InviteClientState::Accepted;
                self.timers
                    .set(InviteClientTimer::M, now + self.settings.t1_x64());
                self.out.emit(TransactionEvent::Final(status));
            }
            (InviteClientState::Calling | InviteClientState::Proceeding, _) => {
                self.timers.stop_all();
                self.state = InviteClientState::Completed;
                self.awaiting_ack = true;
                let timer_d = match self.reliability {
                    Reliability::Reliable => Duration::ZERO,
                    Reliability::Unreliable => TIMER_D_UNRELIABLE,
                };
                self.timers.set(InviteClientTimer::D, now + timer_d);
                self.out.emit(TransactionEvent::Final(status));
                self.out.emit(TransactionEvent::AckNeeded(status));
            }
            (InviteClientState::Completed, 300..=699) => {
                // Retransmitted final response: the ACK was lost (§17.1.1.2).
                if let Some(ack) = self.ack.clone() {
                    self.out.send(ack);
                }
            }
            (InviteClientState::Accepted, 200..=299) => {
                self.out.emit(TransactionEvent::Final(status));
            }
            // Late provisionals, or responses after the end: absorbed.
            _ => {}
        }
        Ok(())
    }

    /// The TU supplies the ACK for the non-2xx final response, built from
    /// that response (§17.1.1.3). Allowed once after `AckNeeded`, even if
    /// Timer D (zero on reliable transports) already ended the transaction.
    pub fn send_ack(&mut self, ack: Bytes, _now: Instant) -> Result<(), TransactionError> {
        if !self.awaiting_ack {
            return Err(TransactionError::InvalidState {
                action: "send_ack",
                state: self.state.name(),
            });
        }
        self.awaiting_ack = false;
        self.ack = Some(ack.clone());
        self.out.send(ack);
        Ok(())
    }

    /// The transport failed to send the INVITE or ACK (§17.1.1.2).
    pub fn on_transport_error(&mut self, _now: Instant) {
        if self.state != InviteClientState::Terminated {
            self.out.emit(TransactionEvent::TransportError);
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
        self.timers.stop_all();
    }

    fn fire(&mut self, timer: InviteClientTimer, now: Instant) {
        match (timer, self.state) {
            (InviteClientTimer::A, InviteClientState::Calling) => {
                self.out.send(self.request.clone());
                // Timer A doubles without a cap (§17.1.1.2); Timer B bounds it.
                self.interval = self.interval.saturating_mul(2);
                self.timers.set(InviteClientTimer::A, now + self.interval);
            }
            (InviteClientTimer::B, InviteClientState::Calling) => {
                self.out.emit(TransactionEvent::Timeout);
                self.terminate();
            }
            (InviteClientTimer::D, InviteClientState::Completed)
            | (InviteClientTimer::M, InviteClientState::Accepted) => self.terminate(),
            _ => {}
        }
    }
}

transaction_surface!(InviteClientTransaction, InviteClientState::Terminated);

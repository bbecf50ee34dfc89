//! INVITE server transaction (RFC 3261 §17.2.1) with the Accepted state of
//! RFC 6026 §7.1.
//!
//! This machine also owns the 2xx retransmission that RFC 3261 §13.3.1.4
//! gives the UAS core: in Accepted it retransmits the 2xx (T1 doubling up
//! to T2) until [`InviteServerTransaction::on_ack`] is called, and reports
//! [`TransactionEvent::NoAck`] when Timer L (64·T1) ends Accepted without
//! an ACK. The 2xx is retransmitted on reliable transports too: the ACK is
//! end to end and a proxy further along may use UDP.
//!
//! The TU must send `100 Trying` itself right after creating the
//! transaction (§17.2.1 asks for it within 200 ms unless the TU answers
//! sooner): `send_response(100, trying_bytes, now)`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerId, TimerTable};
use super::{
    check_status, transaction_surface, Outbox, Reliability, TimerSettings, TransactionError,
    TransactionEvent,
};

/// States of the INVITE server transaction (RFC 3261 Figure 7, RFC 6026 Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteServerState {
    /// INVITE received; provisional responses may be sent.
    Proceeding,
    /// A 300–699 response was sent; waiting for the ACK.
    Completed,
    /// ACK received for the non-2xx response; absorbing ACK retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026): retransmitting it until the ACK arrives.
    Accepted,
    /// Finished; the transaction can be dropped.
    Terminated,
}

impl InviteServerState {
    fn name(self) -> &'static str {
        match self {
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// Timers of the INVITE server transaction. Listed timeouts first, so a
/// timeout wins a tie with a retransmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteServerTimer {
    /// Timer H (64·T1): wait for the ACK of a non-2xx response.
    H,
    /// Timer I (T4; 0 reliable): absorb ACK retransmissions in Confirmed.
    I,
    /// Timer L (64·T1, RFC 6026): end of the Accepted state.
    L,
    /// Timer G (T1 doubling to T2; unreliable only): non-2xx retransmission.
    G,
    /// 2xx retransmission in Accepted (RFC 3261 §13.3.1.4): T1 doubling to T2.
    Retransmit2xx,
}

impl TimerId for InviteServerTimer {
    const ALL: &'static [Self] = &[Self::H, Self::I, Self::L, Self::G, Self::Retransmit2xx];
    fn index(self) -> usize {
        self as usize
    }
}

/// An INVITE server transaction. See the module documentation.
#[derive(Debug)]
pub struct InviteServerTransaction {
    state: InviteServerState,
    settings: TimerSettings,
    reliability: Reliability,
    timers: TimerTable<InviteServerTimer, 5>,
    out: Outbox,
    /// The last response passed down; replayed on request retransmissions.
    last_response: Option<Bytes>,
    /// Current interval of Timer G or of the 2xx retransmission.
    interval: Duration,
    ack_received: bool,
}

impl InviteServerTransaction {
    /// Creates the transaction for an INVITE that matched no transaction.
    pub fn new(_now: Instant, settings: TimerSettings, reliability: Reliability) -> Self {
        Self {
            state: InviteServerState::Proceeding,
            settings,
            reliability,
            timers: TimerTable::default(),
            out: Outbox::default(),
            last_response: None,
            interval: settings.t1,
            ack_received: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> InviteServerState {
        self.state
    }

    /// Transport reliability given at creation.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// Whether the ACK for the final response has been seen.
    pub fn ack_received(&self) -> bool {
        self.ack_received
    }

    /// The TU sends a response (serialised). 1xx keeps Proceeding; 2xx
    /// enters Accepted; 300–699 enters Completed. In Accepted further 2xx
    /// responses are passed on (RFC 6026 §7.1) and become the one
    /// retransmitted.
    pub fn send_response(
        &mut self,
        status: u16,
        response: Bytes,
        now: Instant,
    ) -> Result<(), TransactionError> {
        check_status(status)?;
        match (self.state, status) {
            (InviteServerState::Proceeding, 100..=199) => {
                self.transmit(response);
            }
            (InviteServerState::Proceeding, 200..=299) => {
                self.transmit(response);
                self.enter_accepted(now);
            }
            (InviteServerState::Proceeding, _) => {
                self.transmit(response);
                self.enter_completed(now);
            }
            (InviteServerState::Accepted, 200..=299) => {
                self.transmit(response);
            }
            (state, _) => {
                return Err(TransactionError::InvalidState {
                    action: "send_response",
                    state: state.name(),
                })
            }
        }
        Ok(())
    }

    /// A retransmission of the INVITE arrived: replay the last response
    /// (§17.2.1). In Accepted the 2xx is replayed until the ACK arrives (a
    /// retransmitted INVITE means the caller has not seen it); in Confirmed
    /// and Terminated the request is absorbed.
    pub fn on_request_retransmission(&mut self, _now: Instant) {
        let replay = match self.state {
            InviteServerState::Proceeding | InviteServerState::Completed => true,
            InviteServerState::Accepted => !self.ack_received,
            InviteServerState::Confirmed | InviteServerState::Terminated => false,
        };
        if replay {
            if let Some(last) = self.last_response.clone() {
                self.out.send(last);
            }
        }
    }

    /// An ACK for this INVITE arrived. For a non-2xx response the ACK
    /// matches the transaction key; for a 2xx it is a new transaction the
    /// TU routes through the dialog and then reports here.
    /// Completed → Confirmed (Timer I; Terminated at once on reliable
    /// transports). In Accepted the 2xx retransmission stops; Timer L still
    /// ends the state, absorbing late INVITE retransmissions.
    pub fn on_ack(&mut self, now: Instant) {
        match self.state {
            InviteServerState::Completed => {
                self.ack_received = true;
                self.timers.stop(InviteServerTimer::G);
                self.timers.stop(InviteServerTimer::H);
                self.state = InviteServerState::Confirmed;
                match self.reliability {
                    Reliability::Reliable => self.terminate(),
                    Reliability::Unreliable => self
                        .timers
                        .set(InviteServerTimer::I, now + self.settings.t4),
                }
            }
            InviteServerState::Accepted => {
                self.ack_received = true;
                self.timers.stop(InviteServerTimer::Retransmit2xx);
            }
            _ => {}
        }
    }

    /// The transport could not deliver a response (§17.2.4): the TU is
    /// told and the transaction ends.
    pub fn on_transport_error(&mut self, _now: Instant) {
        if self.state != InviteServerState::Terminated {
            self.out.emit(TransactionEvent::TransportError);
            self.terminate();
        }
    }

    fn transmit(&mut self, response: Bytes) {
        self.last_response = Some(response.clone());
        self.out.send(response);
    }

    fn enter_accepted(&mut self, now: Instant) {
        self.state = InviteServerState::Accepted;
        self.interval = self.settings.t1;
        self.timers
            .set(InviteServerTimer::Retransmit2xx, now + self.interval);
        self.timers
            .set(InviteServerTimer::L, now + self.settings.t1_x64());
    }

    fn enter_completed(&mut self, now: Instant) {
        self.state = InviteServerState::Completed;
        if self.reliability == Reliability::Unreliable {
            self.interval = self.settings.t1;
            self.timers.set(InviteServerTimer::G, now + self.interval);
        }
        self.timers
            .set(InviteServerTimer::H, now + self.settings.t1_x64());
    }

    fn terminate(&mut self) {
        self.state = InviteServerState::Terminated;
        self.timers.stop_all();
    }

    /// Doubles the retransmission interval, capped at T2 (§17.2.1).
    fn back_off(&mut self) -> Duration {
        self.interval = self.interval.saturating_mul(2).min(self.settings.t2);
        self.interval
    }

    fn fire(&mut self, timer: InviteServerTimer, now: Instant) {
        match (timer, self.state) {
            (InviteServerTimer::G, InviteServerState::Completed)
            | (InviteServerTimer::Retransmit2xx, InviteServerState::Accepted) => {
                if let Some(last) = self.last_response.clone() {
                    self.out.send(last);
                }
                let next = self.back_off();
                self.timers.set(timer, now + next);
            }
            (InviteServerTimer::H, InviteServerState::Completed) => {
                self.out.emit(TransactionEvent::AckTimeout);
                self.terminate();
            }
            (InviteServerTimer::I, InviteServerState::Confirmed) => self.terminate(),
            (InviteServerTimer::L, InviteServerState::Accepted) => {
                if !self.ack_received {
                    self.out.emit(TransactionEvent::NoAck);
                }
                self.terminate();
            }
            // A timer left over from an earlier state has no effect.
            _ => {}
        }
    }
}

transaction_surface!(InviteServerTransaction, InviteServerState::Terminated);

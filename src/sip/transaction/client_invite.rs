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
        let settings = settings.effective();
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
            tx.timers.set_after(InviteClientTimer::A, now, settings.t1);
        }
        tx.timers
            .set_after(InviteClientTimer::B, now, settings.t1_x64());
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
                    .set_after(InviteClientTimer::M, now, self.settings.t1_x64());
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
                self.timers.set_after(InviteClientTimer::D, now, timer_d);
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
                self.timers
                    .set_after(InviteClientTimer::A, now, self.interval);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::sim::{backoff, events, run_until, secs, transmits};

    const INVITE: &[u8] = b"INVITE sip:room@bridge SIP/2.0\r\n\r\n";
    const ACK: &[u8] = b"ACK sip:room@bridge SIP/2.0\r\n\r\n";

    fn invite(t0: Instant, reliability: Reliability) -> InviteClientTransaction {
        InviteClientTransaction::new(
            Bytes::from_static(INVITE),
            t0,
            TimerSettings::default(),
            reliability,
        )
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b() {
        let t0 = Instant::now();
        let mut tx = invite(t0, Reliability::Unreliable);
        let (trace, _) = run_until(&mut tx, t0, t0, secs(100.0));
        let mut expected = vec![0.0];
        expected.extend(backoff(0.0, 0.5, None, 32.0));
        assert_eq!(expected, vec![0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]);
        assert_eq!(trace.transmit_times(), expected);
        assert_eq!(trace.events, vec![(secs(32.0), TransactionEvent::Timeout)]);
        assert_eq!(trace.terminated_at, Some(secs(32.0)));
    }

    #[test]
    fn non_2xx_final_is_acked_and_the_ack_replayed() {
        let t0 = Instant::now();
        let mut tx = invite(t0, Reliability::Unreliable);
        transmits(&mut tx);
        tx.on_response(180, t0 + secs(0.2)).unwrap();
        assert_eq!(tx.state(), InviteClientState::Proceeding);
        assert_eq!(events(&mut tx), vec![TransactionEvent::Provisional(180)]);
        // Proceeding: no retransmission, no Timer B.
        assert_eq!(tx.poll_timeout(), None);
        tx.on_response(486, t0 + secs(5.0)).unwrap();
        assert_eq!(tx.state(), InviteClientState::Completed);
        assert_eq!(
            events(&mut tx),
            vec![
                TransactionEvent::Final(486),
                TransactionEvent::AckNeeded(486)
            ]
        );
        tx.send_ack(Bytes::from_static(ACK), t0 + secs(5.0))
            .unwrap();
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(ACK)]);
        assert!(tx
            .send_ack(Bytes::from_static(ACK), t0 + secs(5.0))
            .is_err());
        // The ACK was lost: the 486 comes again, the ACK goes again, the
        // TU hears nothing new.
        tx.on_response(486, t0 + secs(5.5)).unwrap();
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(ACK)]);
        assert!(events(&mut tx).is_empty());
        // Timer D = 32 s.
        let (trace, _) = run_until(&mut tx, t0, t0 + secs(5.5), secs(100.0));
        assert_eq!(trace.terminated_at, Some(secs(37.0)));
    }

    #[test]
    fn ok_enters_accepted_and_reports_every_2xx_until_timer_m() {
        let t0 = Instant::now();
        let mut tx = invite(t0, Reliability::Unreliable);
        let (trace, _) = run_until(&mut tx, t0, t0, secs(1.0));
        assert_eq!(trace.transmit_times(), vec![0.0, 0.5]);
        tx.on_response(200, t0 + secs(1.0)).unwrap();
        assert_eq!(tx.state(), InviteClientState::Accepted);
        assert_eq!(events(&mut tx), vec![TransactionEvent::Final(200)]);
        // 2xx retransmission (or a fork): passed up for the TU's ACK.
        tx.on_response(200, t0 + secs(1.5)).unwrap();
        assert_eq!(events(&mut tx), vec![TransactionEvent::Final(200)]);
        tx.on_response(180, t0 + secs(1.6)).unwrap();
        assert!(events(&mut tx).is_empty());
        let (trace, _) = run_until(&mut tx, t0, t0 + secs(1.6), secs(100.0));
        assert!(trace.transmits.is_empty(), "no INVITE after the 2xx");
        assert_eq!(trace.terminated_at, Some(secs(33.0)));
    }

    #[test]
    fn reliable_transport_no_timer_a_and_zero_timer_d() {
        let t0 = Instant::now();
        let mut tx = invite(t0, Reliability::Reliable);
        assert_eq!(transmits(&mut tx).len(), 1);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
        tx.on_response(603, t0 + secs(1.0)).unwrap();
        // Timer D is zero: due now. The ACK is still accepted even if the
        // driver fires the timer first.
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(1.0)));
        tx.handle_timeout(t0 + secs(1.0));
        assert!(tx.is_terminated());
        assert_eq!(
            events(&mut tx),
            vec![
                TransactionEvent::Final(603),
                TransactionEvent::AckNeeded(603)
            ]
        );
        tx.send_ack(Bytes::from_static(ACK), t0 + secs(1.0))
            .unwrap();
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(ACK)]);
    }

    #[test]
    fn send_ack_refused_without_non_2xx() {
        let t0 = Instant::now();
        let mut tx = invite(t0, Reliability::Unreliable);
        assert_eq!(
            tx.send_ack(Bytes::from_static(ACK), t0),
            Err(TransactionError::InvalidState {
                action: "send_ack",
                state: "Calling"
            })
        );
        tx.on_response(200, t0).unwrap();
        assert!(tx.send_ack(Bytes::from_static(ACK), t0).is_err());
        tx.on_transport_error(t0);
        assert!(events(&mut tx).contains(&TransactionEvent::TransportError));
        assert_eq!(tx.request().as_ref(), INVITE);
    }
}

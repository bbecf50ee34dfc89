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

/// What a CANCEL does to the INVITE it targets (RFC 3261 §9.2). A CANCEL
/// matching no INVITE transaction is answered 481 by the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelOutcome {
    /// No final response yet: answer the CANCEL 200 and the INVITE 487.
    RequestTerminated,
    /// A final response was already sent (for a 2xx the call is up):
    /// answer the CANCEL 200, the INVITE and the call are unaffected.
    AlreadyAnswered,
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
        let settings = settings.effective();
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

    /// Whether a final response (2xx or 300–699) has been sent.
    pub fn final_response_sent(&self) -> bool {
        self.state != InviteServerState::Proceeding
    }

    /// How the TU answers a CANCEL that matched this INVITE (RFC 3261 §9.2).
    /// The CANCEL always gets 200 from its own non-INVITE transaction; only
    /// an INVITE still unanswered is ended with 487.
    pub fn cancel_outcome(&self) -> CancelOutcome {
        if self.final_response_sent() {
            CancelOutcome::AlreadyAnswered
        } else {
            CancelOutcome::RequestTerminated
        }
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
                    Reliability::Unreliable => {
                        self.timers
                            .set_after(InviteServerTimer::I, now, self.settings.t4)
                    }
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
    /// told and the transaction ends. In Accepted the TU is told but the
    /// state stays (the call exists; the TU decides whether to send BYE),
    /// as RFC 6026 §7.1 lets only Timer L end Accepted.
    pub fn on_transport_error(&mut self, _now: Instant) {
        match self.state {
            InviteServerState::Terminated => {}
            InviteServerState::Accepted => self.out.emit(TransactionEvent::TransportError),
            _ => {
                self.out.emit(TransactionEvent::TransportError);
                self.terminate();
            }
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
            .set_after(InviteServerTimer::Retransmit2xx, now, self.interval);
        self.timers
            .set_after(InviteServerTimer::L, now, self.settings.t1_x64());
    }

    fn enter_completed(&mut self, now: Instant) {
        self.state = InviteServerState::Completed;
        if self.reliability == Reliability::Unreliable {
            self.interval = self.settings.t1;
            self.timers
                .set_after(InviteServerTimer::G, now, self.interval);
        }
        self.timers
            .set_after(InviteServerTimer::H, now, self.settings.t1_x64());
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
                self.timers.set_after(timer, now, next);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::sim::{backoff, events, run_until, secs, transmits};

    const TRYING: &[u8] = b"SIP/2.0 100 Trying\r\n\r\n";
    const RINGING: &[u8] = b"SIP/2.0 180 Ringing\r\n\r\n";
    const OK: &[u8] = b"SIP/2.0 200 OK\r\n\r\n";
    const BUSY: &[u8] = b"SIP/2.0 486 Busy Here\r\n\r\n";

    fn udp(t0: Instant) -> InviteServerTransaction {
        InviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Unreliable)
    }

    fn answered(t0: Instant) -> InviteServerTransaction {
        let mut tx = udp(t0);
        tx.send_response(100, Bytes::from_static(TRYING), t0)
            .unwrap();
        tx.send_response(200, Bytes::from_static(OK), t0).unwrap();
        assert_eq!(
            transmits(&mut tx),
            vec![Bytes::from_static(TRYING), Bytes::from_static(OK)]
        );
        assert_eq!(tx.state(), InviteServerState::Accepted);
        tx
    }

    #[test]
    fn ok_retransmitted_with_backoff_until_ack() {
        let t0 = Instant::now();
        let mut tx = answered(t0);
        let (trace, now) = run_until(&mut tx, t0, t0, secs(10.0));
        assert_eq!(trace.transmit_times(), vec![0.5, 1.5, 3.5, 7.5]);
        assert!(trace.transmits.iter().all(|(_, b)| b.as_ref() == OK));
        assert!(trace.events.is_empty());

        let ack_at = t0 + secs(9.0);
        assert!(ack_at >= now);
        tx.on_ack(ack_at);
        assert!(tx.ack_received());
        assert_eq!(tx.state(), InviteServerState::Accepted);
        // A late INVITE retransmission is absorbed once the ACK is in.
        tx.on_request_retransmission(ack_at);
        let (trace, _) = run_until(&mut tx, t0, ack_at, secs(100.0));
        assert!(trace.transmits.is_empty());
        assert!(trace.events.is_empty(), "{:?}", trace.events);
        // Timer L ends Accepted 64·T1 after the 2xx.
        assert_eq!(trace.terminated_at, Some(secs(32.0)));
        assert!(tx.is_terminated());
    }

    #[test]
    fn lost_ack_reports_no_ack_at_64_t1() {
        let t0 = Instant::now();
        let mut tx = answered(t0);
        let (trace, _) = run_until(&mut tx, t0, t0, secs(100.0));
        assert_eq!(
            trace.transmit_times(),
            backoff(0.0, 0.5, Some(4.0), 32.0),
            "T1, 2T1, 4T1, then every T2"
        );
        assert_eq!(trace.transmit_times().len(), 10);
        assert_eq!(trace.events, vec![(secs(32.0), TransactionEvent::NoAck)]);
        assert_eq!(trace.terminated_at, Some(secs(32.0)));
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn retransmitted_invite_replays_last_response() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        // Nothing sent yet: nothing to replay.
        tx.on_request_retransmission(t0);
        assert!(transmits(&mut tx).is_empty());
        tx.send_response(100, Bytes::from_static(TRYING), t0)
            .unwrap();
        tx.send_response(180, Bytes::from_static(RINGING), t0)
            .unwrap();
        transmits(&mut tx);
        tx.on_request_retransmission(t0 + secs(0.2));
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(RINGING)]);
        tx.send_response(200, Bytes::from_static(OK), t0 + secs(1.0))
            .unwrap();
        transmits(&mut tx);
        tx.on_request_retransmission(t0 + secs(1.1));
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(OK)]);
        assert!(events(&mut tx).is_empty());
        // The TU may pass another 2xx in Accepted; nothing else.
        assert!(tx
            .send_response(200, Bytes::from_static(OK), t0 + secs(1.2))
            .is_ok());
        assert_eq!(
            tx.send_response(486, Bytes::from_static(BUSY), t0 + secs(1.2)),
            Err(TransactionError::InvalidState {
                action: "send_response",
                state: "Accepted"
            })
        );
        assert_eq!(
            tx.send_response(99, Bytes::new(), t0),
            Err(TransactionError::InvalidStatus(99))
        );
    }

    #[test]
    fn busy_completed_confirmed_terminated() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.send_response(486, Bytes::from_static(BUSY), t0).unwrap();
        assert_eq!(tx.state(), InviteServerState::Completed);
        assert_eq!(transmits(&mut tx).len(), 1);
        let (trace, _) = run_until(&mut tx, t0, t0, secs(5.0));
        // Timer G: T1 doubling up to T2.
        assert_eq!(trace.transmit_times(), vec![0.5, 1.5, 3.5]);
        // A retransmitted INVITE replays the 486 in Completed.
        tx.on_request_retransmission(t0 + secs(5.0));
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(BUSY)]);
        tx.on_ack(t0 + secs(5.0));
        assert_eq!(tx.state(), InviteServerState::Confirmed);
        // Confirmed absorbs INVITE and ACK retransmissions.
        tx.on_request_retransmission(t0 + secs(6.0));
        tx.on_ack(t0 + secs(6.0));
        let (trace, _) = run_until(&mut tx, t0, t0 + secs(6.0), secs(100.0));
        assert!(trace.transmits.is_empty());
        assert!(trace.events.is_empty());
        // Timer I = T4 after the ACK.
        assert_eq!(trace.terminated_at, Some(secs(10.0)));
    }

    #[test]
    fn request_terminated_without_ack_times_out_with_timer_h() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.send_response(100, Bytes::from_static(TRYING), t0)
            .unwrap();
        let t487 = t0 + secs(3.0);
        tx.send_response(487, Bytes::from_static(b"SIP/2.0 487\r\n\r\n"), t487)
            .unwrap();
        let (trace, _) = run_until(&mut tx, t0, t0, secs(100.0));
        assert_eq!(trace.transmit_times().first(), Some(&0.0));
        assert_eq!(
            trace.transmit_times()[2..].to_vec(),
            backoff(3.0, 0.5, Some(4.0), 35.0)
        );
        assert_eq!(
            trace.events,
            vec![(secs(35.0), TransactionEvent::AckTimeout)]
        );
        assert_eq!(trace.terminated_at, Some(secs(35.0)));
    }

    #[test]
    fn reliable_transport_has_no_timer_g_and_no_timer_i() {
        let t0 = Instant::now();
        let mut tx =
            InviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Reliable);
        tx.send_response(486, Bytes::from_static(BUSY), t0).unwrap();
        let (trace, _) = run_until(&mut tx, t0, t0, secs(10.0));
        assert_eq!(trace.transmit_times(), vec![0.0]);
        // Timer H still guards the ACK.
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
        tx.on_ack(t0 + secs(1.0));
        // Timer I is zero: Confirmed ends at once.
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn reliable_transport_still_retransmits_2xx_end_to_end() {
        // RFC 3261 §13.3.1.4 makes no exception for reliable transports.
        let t0 = Instant::now();
        let mut tx =
            InviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Reliable);
        tx.send_response(200, Bytes::from_static(OK), t0).unwrap();
        let (trace, _) = run_until(&mut tx, t0, t0, secs(2.0));
        assert_eq!(trace.transmit_times(), vec![0.0, 0.5, 1.5]);
        tx.on_ack(t0 + secs(2.0));
        let (trace, _) = run_until(&mut tx, t0, t0 + secs(2.0), secs(100.0));
        assert!(trace.transmits.is_empty());
        assert_eq!(trace.terminated_at, Some(secs(32.0)));
    }

    #[test]
    fn transport_error_terminates_except_in_accepted() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.send_response(486, Bytes::from_static(BUSY), t0).unwrap();
        tx.on_transport_error(t0 + secs(0.1));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TransactionEvent::TransportError]);
        tx.on_transport_error(t0 + secs(0.2));
        assert!(events(&mut tx).is_empty());
        assert!(tx
            .send_response(200, Bytes::from_static(OK), t0 + secs(0.3))
            .is_err());

        let mut tx = answered(t0);
        tx.on_transport_error(t0 + secs(0.1));
        assert_eq!(events(&mut tx), vec![TransactionEvent::TransportError]);
        assert_eq!(tx.state(), InviteServerState::Accepted);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(0.5)));
    }

    #[test]
    fn custom_timers_are_honoured() {
        let t0 = Instant::now();
        let settings = TimerSettings {
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(300),
            t4: Duration::from_secs(1),
        };
        let mut tx = InviteServerTransaction::new(t0, settings, Reliability::Unreliable);
        tx.send_response(200, Bytes::from_static(OK), t0).unwrap();
        let (trace, _) = run_until(&mut tx, t0, t0, secs(100.0));
        assert_eq!(
            trace.transmits.len(),
            1 + backoff(0.0, 0.1, Some(0.3), 6.4).len()
        );
        assert_eq!(trace.events, vec![(secs(6.4), TransactionEvent::NoAck)]);
    }
}

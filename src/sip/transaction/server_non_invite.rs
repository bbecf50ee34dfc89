//! Non-INVITE server transaction (RFC 3261 §17.2.2): BYE, CANCEL, INFO,
//! OPTIONS, NOTIFY and the rest.

use std::time::Instant;

use bytes::Bytes;

use super::timer::{TimerId, TimerTable};
use super::{
    check_status, transaction_surface, Outbox, Reliability, TimerSettings, TransactionError,
    TransactionEvent,
};

/// States of the non-INVITE server transaction (RFC 3261 Figure 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonInviteServerState {
    /// Request received, nothing sent yet; retransmissions are absorbed.
    Trying,
    /// A provisional response was sent; retransmissions replay it.
    Proceeding,
    /// A final response was sent; retransmissions replay it until Timer J.
    Completed,
    /// Finished; the transaction can be dropped.
    Terminated,
}

impl NonInviteServerState {
    fn name(self) -> &'static str {
        match self {
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Terminated => "Terminated",
        }
    }
}

/// Timers of the non-INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonInviteServerTimer {
    /// Timer J (64·T1; 0 reliable): absorb request retransmissions in Completed.
    J,
}

impl TimerId for NonInviteServerTimer {
    const ALL: &'static [Self] = &[Self::J];
    fn index(self) -> usize {
        self as usize
    }
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub struct NonInviteServerTransaction {
    state: NonInviteServerState,
    settings: TimerSettings,
    reliability: Reliability,
    timers: TimerTable<NonInviteServerTimer, 1>,
    out: Outbox,
    last_response: Option<Bytes>,
}

impl NonInviteServerTransaction {
    /// Creates the transaction for a request that matched no transaction.
    pub fn new(_now: Instant, settings: TimerSettings, reliability: Reliability) -> Self {
        let settings = settings.effective();
        Self {
            state: NonInviteServerState::Trying,
            settings,
            reliability,
            timers: TimerTable::default(),
            out: Outbox::default(),
            last_response: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> NonInviteServerState {
        self.state
    }

    /// Transport reliability given at creation.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// The TU sends a response (serialised): 1xx → Proceeding, 200–699 →
    /// Completed with Timer J (Terminated at once on reliable transports).
    pub fn send_response(
        &mut self,
        status: u16,
        response: Bytes,
        now: Instant,
    ) -> Result<(), TransactionError> {
        check_status(status)?;
        match self.state {
            NonInviteServerState::Trying | NonInviteServerState::Proceeding => {
                self.last_response = Some(response.clone());
                self.out.send(response);
                if status < 200 {
                    self.state = NonInviteServerState::Proceeding;
                } else {
                    self.state = NonInviteServerState::Completed;
                    match self.reliability {
                        Reliability::Reliable => self.terminate(),
                        Reliability::Unreliable => self.timers.set_after(
                            NonInviteServerTimer::J,
                            now,
                            self.settings.t1_x64(),
                        ),
                    }
                }
                Ok(())
            }
            state => Err(TransactionError::InvalidState {
                action: "send_response",
                state: state.name(),
            }),
        }
    }

    /// A retransmission of the request arrived: absorbed in Trying, the
    /// last response replayed in Proceeding and Completed.
    pub fn on_request_retransmission(&mut self, _now: Instant) {
        if matches!(
            self.state,
            NonInviteServerState::Proceeding | NonInviteServerState::Completed
        ) {
            if let Some(last) = self.last_response.clone() {
                self.out.send(last);
            }
        }
    }

    /// The transport could not deliver a response (§17.2.4).
    pub fn on_transport_error(&mut self, _now: Instant) {
        if self.state != NonInviteServerState::Terminated {
            self.out.emit(TransactionEvent::TransportError);
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = NonInviteServerState::Terminated;
        self.timers.stop_all();
    }

    fn fire(&mut self, timer: NonInviteServerTimer, _now: Instant) {
        let NonInviteServerTimer::J = timer;
        if self.state == NonInviteServerState::Completed {
            self.terminate();
        }
    }
}

transaction_surface!(NonInviteServerTransaction, NonInviteServerState::Terminated);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::sim::{events, run_until, secs, transmits};

    const OK: &[u8] = b"SIP/2.0 200 OK\r\n\r\n";
    const TRYING: &[u8] = b"SIP/2.0 100 Trying\r\n\r\n";

    #[test]
    fn absorbs_retransmissions_and_ends_with_timer_j() {
        let t0 = Instant::now();
        let mut tx =
            NonInviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Unreliable);
        assert_eq!(tx.state(), NonInviteServerState::Trying);
        // Trying: nothing to replay.
        tx.on_request_retransmission(t0 + secs(0.5));
        assert!(transmits(&mut tx).is_empty());
        tx.send_response(100, Bytes::from_static(TRYING), t0 + secs(0.6))
            .unwrap();
        assert_eq!(tx.state(), NonInviteServerState::Proceeding);
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(TRYING)]);
        tx.on_request_retransmission(t0 + secs(1.0));
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(TRYING)]);
        tx.send_response(200, Bytes::from_static(OK), t0 + secs(2.0))
            .unwrap();
        assert_eq!(tx.state(), NonInviteServerState::Completed);
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(OK)]);
        for i in 0..3 {
            tx.on_request_retransmission(t0 + secs(3.0 + f64::from(i)));
            assert_eq!(transmits(&mut tx), vec![Bytes::from_static(OK)]);
        }
        assert!(tx
            .send_response(200, Bytes::from_static(OK), t0 + secs(6.0))
            .is_err());
        let (trace, _) = run_until(&mut tx, t0, t0 + secs(6.0), secs(100.0));
        assert!(trace.transmits.is_empty());
        assert!(trace.events.is_empty());
        // Timer J = 64·T1 after the final response.
        assert_eq!(trace.terminated_at, Some(secs(34.0)));
        tx.on_request_retransmission(t0 + secs(40.0));
        assert!(transmits(&mut tx).is_empty());
    }

    #[test]
    fn reliable_transport_terminates_on_final_response() {
        let t0 = Instant::now();
        let mut tx =
            NonInviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Reliable);
        tx.send_response(200, Bytes::from_static(OK), t0).unwrap();
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(transmits(&mut tx), vec![Bytes::from_static(OK)]);
    }

    #[test]
    fn transport_error_is_reported() {
        let t0 = Instant::now();
        let mut tx =
            NonInviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Unreliable);
        tx.send_response(200, Bytes::from_static(OK), t0).unwrap();
        tx.on_transport_error(t0);
        assert_eq!(events(&mut tx), vec![TransactionEvent::TransportError]);
        assert!(tx.is_terminated());
        assert_eq!(
            tx.send_response(700, Bytes::new(), t0),
            Err(TransactionError::InvalidStatus(700))
        );
    }
}

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
        let settings = settings.effective();
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
            tx.timers
                .set_after(NonInviteClientTimer::E, now, settings.t1);
        }
        tx.timers
            .set_after(NonInviteClientTimer::F, now, settings.t1_x64());
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
                    Reliability::Unreliable => {
                        self.timers
                            .set_after(NonInviteClientTimer::K, now, self.settings.t4)
                    }
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
                    .set_after(NonInviteClientTimer::E, now, self.interval);
            }
            (NonInviteClientTimer::E, NonInviteClientState::Proceeding) => {
                self.out.send(self.request.clone());
                self.interval = self.settings.t2;
                self.timers
                    .set_after(NonInviteClientTimer::E, now, self.interval);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::sim::{backoff, events, run_until, secs, transmits};

    const BYE: &[u8] = b"BYE sip:caller@trunk SIP/2.0\r\n\r\n";

    fn bye(t0: Instant, reliability: Reliability) -> NonInviteClientTransaction {
        NonInviteClientTransaction::new(
            Bytes::from_static(BYE),
            t0,
            TimerSettings::default(),
            reliability,
        )
    }

    #[test]
    fn bye_retransmits_e_to_t2_then_times_out_with_f() {
        let t0 = Instant::now();
        let mut tx = bye(t0, Reliability::Unreliable);
        let (trace, _) = run_until(&mut tx, t0, t0, secs(100.0));
        let mut expected = vec![0.0];
        expected.extend(backoff(0.0, 0.5, Some(4.0), 32.0));
        assert_eq!(trace.transmit_times(), expected);
        assert_eq!(
            trace.transmit_times()[..6].to_vec(),
            vec![0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
        );
        assert!(trace.transmits.iter().all(|(_, b)| b.as_ref() == BYE));
        assert_eq!(trace.events, vec![(secs(32.0), TransactionEvent::Timeout)]);
        assert_eq!(trace.terminated_at, Some(secs(32.0)));
    }

    #[test]
    fn response_stops_retransmission_then_timer_k() {
        let t0 = Instant::now();
        let mut tx = bye(t0, Reliability::Unreliable);
        let (trace, _) = run_until(&mut tx, t0, t0, secs(2.0));
        assert_eq!(trace.transmit_times(), vec![0.0, 0.5, 1.5]);
        tx.on_response(200, t0 + secs(2.0)).unwrap();
        assert_eq!(tx.state(), NonInviteClientState::Completed);
        assert_eq!(events(&mut tx), vec![TransactionEvent::Final(200)]);
        // Retransmitted 200s are absorbed.
        tx.on_response(200, t0 + secs(3.0)).unwrap();
        assert!(events(&mut tx).is_empty());
        let (trace, _) = run_until(&mut tx, t0, t0 + secs(3.0), secs(100.0));
        assert!(trace.transmits.is_empty());
        assert!(trace.events.is_empty());
        // Timer K = T4.
        assert_eq!(trace.terminated_at, Some(secs(7.0)));
    }

    #[test]
    fn provisional_switches_e_to_t2() {
        let t0 = Instant::now();
        let mut tx = bye(t0, Reliability::Unreliable);
        let (_, _) = run_until(&mut tx, t0, t0, secs(0.9));
        tx.on_response(100, t0 + secs(1.0)).unwrap();
        assert_eq!(tx.state(), NonInviteClientState::Proceeding);
        assert_eq!(events(&mut tx), vec![TransactionEvent::Provisional(100)]);
        let (trace, _) = run_until(&mut tx, t0, t0 + secs(1.0), secs(10.0));
        // Armed at 1.5 while Trying, then every T2.
        assert_eq!(trace.transmit_times(), vec![1.5, 5.5, 9.5]);
        tx.on_response(481, t0 + secs(10.0)).unwrap();
        assert_eq!(events(&mut tx), vec![TransactionEvent::Final(481)]);
    }

    #[test]
    fn reliable_transport_no_e_and_no_k() {
        let t0 = Instant::now();
        let mut tx = bye(t0, Reliability::Reliable);
        assert_eq!(transmits(&mut tx).len(), 1);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
        tx.on_response(200, t0 + secs(0.1)).unwrap();
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);

        let mut lost = bye(t0, Reliability::Reliable);
        let (trace, _) = run_until(&mut lost, t0, t0, secs(100.0));
        assert_eq!(trace.transmit_times(), vec![0.0]);
        assert_eq!(trace.events, vec![(secs(32.0), TransactionEvent::Timeout)]);
    }

    #[test]
    fn transport_error_and_bad_status() {
        let t0 = Instant::now();
        let mut tx = bye(t0, Reliability::Unreliable);
        assert_eq!(
            tx.on_response(42, t0),
            Err(TransactionError::InvalidStatus(42))
        );
        assert_eq!(tx.state(), NonInviteClientState::Trying);
        tx.on_transport_error(t0);
        assert_eq!(events(&mut tx), vec![TransactionEvent::TransportError]);
        assert!(tx.is_terminated());
        assert_eq!(tx.request().as_ref(), BYE);
    }
}

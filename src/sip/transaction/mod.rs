//! SIP transactions (RFC 3261 §17, RFC 6026) as sans-IO state machines.
//!
//! Messages stay opaque here: the user-agent core parses, serialises and
//! hands each machine the serialised bytes plus the few facts it needs (a
//! status code, "this is a retransmission", "this is the ACK"). Every
//! machine has the same surface, driven with an injected clock:
//!
//! * inputs: `on_*(…, now)` methods and [`Transaction::handle_timeout`];
//! * outputs: [`Transaction::poll_transmit`] (bytes to send on the
//!   transaction's transport flow), [`Transaction::poll_event`] (news for
//!   the transaction user) and [`Transaction::poll_timeout`] (when to call
//!   `handle_timeout` next).
//!
//! | machine | RFC | timers |
//! |---|---|---|
//! | [`InviteServerTransaction`] | §17.2.1, RFC 6026 §7.1 (Accepted) | G, H, I, L, 2xx retransmit |
//! | [`NonInviteServerTransaction`] | §17.2.2 | J |
//! | [`InviteClientTransaction`] | §17.1.1, RFC 6026 §7.2 (Accepted) | A, B, D, M |
//! | [`NonInviteClientTransaction`] | §17.1.2 | E, F, K |
//!
//! [`ServerTransactionKey`] and [`ClientTransactionKey`] implement the
//! matching rules of §17.2.3 and §17.1.3; [`TransactionTable`] holds many
//! transactions and finds the next deadline among them without scanning.
//!
//! # Routing an incoming request (done by the user-agent core)
//!
//! 1. Build the [`ServerTransactionKey`] (`from_request`; ACK maps to INVITE).
//! 2. Found: a retransmission, call `on_request_retransmission(now)` (or
//!    `on_ack(now)` for an ACK) and drain; nothing new is created.
//! 3. Not found, ACK: the ACK for a 2xx (new branch); route it to the
//!    dialog, which calls [`InviteServerTransaction::on_ack`] on the INVITE
//!    transaction it remembers.
//! 4. Not found, anything else: create the server transaction, insert it,
//!    hand the request to the TU. For an INVITE the TU sends 100 Trying at
//!    once.
//! 5. CANCEL: it has its own non-INVITE transaction. Look up
//!    [`ServerTransactionKey::cancelled_invite`]: none → 481; else
//!    [`InviteServerTransaction::cancel_outcome`] tells whether the INVITE
//!    still gets 487 or, already answered (e.g. Accepted after a 200), the
//!    CANCEL is answered 200 and has no effect on the call.
//!
//! # Example: answering an INVITE over UDP
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use dialgate::sip::transaction::*;
//!
//! let t0 = Instant::now(); // the shell's clock; cores never read it
//! let mut table: TransactionTable<ServerTransactionKey, ServerTransaction> =
//!     TransactionTable::new();
//! let key = ServerTransactionKey::rfc3261("z9hG4bK74bf9", "trunk.example.net:5060", "INVITE")?;
//!
//! let mut invite = InviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Unreliable);
//! invite.send_response(100, Bytes::from_static(b"SIP/2.0 100 Trying\r\n\r\n"), t0)?;
//! invite.send_response(200, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"), t0)?;
//! while let Some(bytes) = invite.poll_transmit() { /* socket.send_to(&bytes, peer) */ }
//! table.insert(key.clone(), ServerTransaction::Invite(invite)).ok();
//!
//! // Driver loop: sleep until the next deadline, then expire.
//! let next = table.poll_timeout().expect("2xx retransmission armed");
//! assert_eq!(next, t0 + Duration::from_millis(500));
//! for expired in table.expire(next) {
//!     assert_eq!(expired.transmits.len(), 1); // the 200 again
//! }
//!
//! // The ACK for the 2xx reached the dialog, which reports it here.
//! if let Some(mut tx) = table.get_mut(&key) {
//!     if let Some(invite) = tx.as_invite_mut() {
//!         invite.on_ack(t0 + Duration::from_millis(700));
//!     }
//! }
//! // Only Timer L remains: Accepted ends 64·T1 after the 200.
//! assert_eq!(table.poll_timeout(), Some(t0 + Duration::from_secs(32)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client_invite;
mod client_non_invite;
mod key;
#[cfg(test)]
mod proptests;
mod server_invite;
mod server_non_invite;
mod settings;
#[cfg(test)]
mod sim;
mod table;
mod timer;

use std::time::Instant;

use bytes::Bytes;

pub use client_invite::{InviteClientState, InviteClientTimer, InviteClientTransaction};
pub use client_non_invite::{
    NonInviteClientState, NonInviteClientTimer, NonInviteClientTransaction,
};
pub use key::{
    ClientTransactionKey, KeyError, RequestKeyParts, ServerTransactionKey, MAGIC_COOKIE,
};
pub use server_invite::{
    CancelOutcome, InviteServerState, InviteServerTimer, InviteServerTransaction,
};
pub use server_non_invite::{
    NonInviteServerState, NonInviteServerTimer, NonInviteServerTransaction,
};
pub use settings::{TimerSettings, DEFAULT_T1, DEFAULT_T2, DEFAULT_T4, TIMER_D_UNRELIABLE};
pub use table::{Expired, TransactionTable, TxMut};
pub use timer::{TimerId, TimerTable};

/// Transport reliability of the flow a transaction runs over. Reliable
/// transports (TCP, TLS) need no retransmissions and set Timers D, I, J and
/// K to zero (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: the transaction retransmits.
    Unreliable,
    /// TCP/TLS: the transport retransmits.
    Reliable,
}

impl Reliability {
    /// Whether the transport is reliable.
    pub fn is_reliable(self) -> bool {
        self == Reliability::Reliable
    }
}

/// News for the transaction user (the user-agent core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionEvent {
    /// Client: a 1xx response arrived (each one is reported).
    Provisional(u16),
    /// Client: a final response arrived. For INVITE, every 2xx received in
    /// the Accepted state is reported too (retransmissions and forks): the
    /// TU answers each with its ACK (RFC 3261 §13.2.2.4, RFC 6026 §7.2).
    Final(u16),
    /// INVITE client: a non-2xx final response arrived and the transaction
    /// needs the ACK (§17.1.1.3). The TU builds it from the response and
    /// calls [`InviteClientTransaction::send_ack`] at once.
    AckNeeded(u16),
    /// Client: Timer B or F fired without a final response; treat as 408.
    Timeout,
    /// The TU reported a transport failure; the transaction is terminated
    /// (except an INVITE server transaction in Accepted, which stays until
    /// Timer L and leaves the call's fate to the TU).
    TransportError,
    /// INVITE server: Timer H fired, no ACK for the non-2xx final response.
    AckTimeout,
    /// INVITE server: 64·T1 passed in Accepted without an ACK for the 2xx;
    /// the TU should end the call with BYE (RFC 3261 §13.3.1.4).
    NoAck,
}

/// Why an input was refused. Refusals never change the machine's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// The status code is outside 100..=699.
    #[error("status code {0} not allowed here")]
    InvalidStatus(u16),
    /// The input is not allowed in the current state.
    #[error("{action} not allowed in state {state}")]
    InvalidState {
        /// What was attempted.
        action: &'static str,
        /// The state the machine was in.
        state: &'static str,
    },
}

/// The common surface of every transaction machine (str0m-style poll API).
pub trait Transaction {
    /// Fires every timer due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// Next message to send on the transaction's flow.
    fn poll_transmit(&mut self) -> Option<Bytes>;
    /// Next event for the transaction user.
    fn poll_event(&mut self) -> Option<TransactionEvent>;
    /// When `handle_timeout` must be called next; `None` when no timer runs.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the machine reached Terminated (it can be dropped once its
    /// outputs are drained).
    fn is_terminated(&self) -> bool;
}

/// Outputs queued by a machine: bytes to send and events for the TU.
/// Queues are allocated lazily and usually hold one item.
#[derive(Debug, Default, Clone)]
struct Outbox {
    transmits: std::collections::VecDeque<Bytes>,
    events: std::collections::VecDeque<TransactionEvent>,
}

impl Outbox {
    fn send(&mut self, bytes: Bytes) {
        self.transmits.push_back(bytes);
    }
    fn emit(&mut self, event: TransactionEvent) {
        self.events.push_back(event);
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }
    fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }
}

/// Checks that `status` is a SIP status code (RFC 3261 §7.2).
fn check_status(status: u16) -> Result<(), TransactionError> {
    if (100..=699).contains(&status) {
        Ok(())
    } else {
        Err(TransactionError::InvalidStatus(status))
    }
}

/// Generates the inherent poll methods and the [`Transaction`] impl for a
/// machine with fields `out: Outbox`, `timers: TimerTable` and a
/// `fire(timer, now)` method.
macro_rules! transaction_surface {
    ($machine:ty, $terminated:path) => {
        impl $machine {
            /// Fires every timer due at `now`.
            pub fn handle_timeout(&mut self, now: std::time::Instant) {
                // Re-armed timers always lie after `now` (intervals are at
                // least 1 ms), so this ends; the bound is a second fence.
                for _ in 0..64 {
                    let Some(timer) = self.timers.pop_expired(now) else {
                        break;
                    };
                    self.fire(timer, now);
                }
            }
            /// Next message to send on the transaction's flow.
            pub fn poll_transmit(&mut self) -> Option<bytes::Bytes> {
                self.out.poll_transmit()
            }
            /// Next event for the transaction user.
            pub fn poll_event(&mut self) -> Option<$crate::sip::transaction::TransactionEvent> {
                self.out.poll_event()
            }
            /// When `handle_timeout` must be called next.
            pub fn poll_timeout(&self) -> Option<std::time::Instant> {
                self.timers.next_deadline()
            }
            /// Whether the machine reached Terminated.
            pub fn is_terminated(&self) -> bool {
                self.state == $terminated
            }
        }

        impl $crate::sip::transaction::Transaction for $machine {
            fn handle_timeout(&mut self, now: std::time::Instant) {
                <$machine>::handle_timeout(self, now)
            }
            fn poll_transmit(&mut self) -> Option<bytes::Bytes> {
                <$machine>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<$crate::sip::transaction::TransactionEvent> {
                <$machine>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<std::time::Instant> {
                <$machine>::poll_timeout(self)
            }
            fn is_terminated(&self) -> bool {
                <$machine>::is_terminated(self)
            }
        }
    };
}
use transaction_surface;

/// A server transaction of either kind, for one table keyed by
/// [`ServerTransactionKey`].
#[derive(Debug)]
pub enum ServerTransaction {
    /// INVITE server transaction.
    Invite(InviteServerTransaction),
    /// Any other method.
    NonInvite(NonInviteServerTransaction),
}

/// A client transaction of either kind, for one table keyed by
/// [`ClientTransactionKey`].
#[derive(Debug)]
pub enum ClientTransaction {
    /// INVITE client transaction.
    Invite(InviteClientTransaction),
    /// Any other method.
    NonInvite(NonInviteClientTransaction),
}

impl ServerTransaction {
    /// A retransmission of the request arrived: replay the last response.
    pub fn on_request_retransmission(&mut self, now: Instant) {
        match self {
            Self::Invite(t) => t.on_request_retransmission(now),
            Self::NonInvite(t) => t.on_request_retransmission(now),
        }
    }

    /// The TU sends a response (serialised).
    pub fn send_response(
        &mut self,
        status: u16,
        response: Bytes,
        now: Instant,
    ) -> Result<(), TransactionError> {
        match self {
            Self::Invite(t) => t.send_response(status, response, now),
            Self::NonInvite(t) => t.send_response(status, response, now),
        }
    }

    /// The transport failed to deliver a response.
    pub fn on_transport_error(&mut self, now: Instant) {
        match self {
            Self::Invite(t) => t.on_transport_error(now),
            Self::NonInvite(t) => t.on_transport_error(now),
        }
    }

    /// The INVITE transaction, if this is one.
    pub fn as_invite_mut(&mut self) -> Option<&mut InviteServerTransaction> {
        match self {
            Self::Invite(t) => Some(t),
            Self::NonInvite(_) => None,
        }
    }

    /// The INVITE transaction, if this is one.
    pub fn as_invite(&self) -> Option<&InviteServerTransaction> {
        match self {
            Self::Invite(t) => Some(t),
            Self::NonInvite(_) => None,
        }
    }
}

impl ClientTransaction {
    /// A response matching this transaction arrived.
    pub fn on_response(&mut self, status: u16, now: Instant) -> Result<(), TransactionError> {
        match self {
            Self::Invite(t) => t.on_response(status, now),
            Self::NonInvite(t) => t.on_response(status, now),
        }
    }

    /// The transport failed to send the request.
    pub fn on_transport_error(&mut self, now: Instant) {
        match self {
            Self::Invite(t) => t.on_transport_error(now),
            Self::NonInvite(t) => t.on_transport_error(now),
        }
    }

    /// The INVITE transaction, if this is one (for `send_ack`).
    pub fn as_invite_mut(&mut self) -> Option<&mut InviteClientTransaction> {
        match self {
            Self::Invite(t) => Some(t),
            Self::NonInvite(_) => None,
        }
    }
}

macro_rules! either_surface {
    ($either:ty) => {
        impl Transaction for $either {
            fn handle_timeout(&mut self, now: Instant) {
                match self {
                    Self::Invite(t) => t.handle_timeout(now),
                    Self::NonInvite(t) => t.handle_timeout(now),
                }
            }
            fn poll_transmit(&mut self) -> Option<Bytes> {
                match self {
                    Self::Invite(t) => t.poll_transmit(),
                    Self::NonInvite(t) => t.poll_transmit(),
                }
            }
            fn poll_event(&mut self) -> Option<TransactionEvent> {
                match self {
                    Self::Invite(t) => t.poll_event(),
                    Self::NonInvite(t) => t.poll_event(),
                }
            }
            fn poll_timeout(&self) -> Option<Instant> {
                match self {
                    Self::Invite(t) => t.poll_timeout(),
                    Self::NonInvite(t) => t.poll_timeout(),
                }
            }
            fn is_terminated(&self) -> bool {
                match self {
                    Self::Invite(t) => t.is_terminated(),
                    Self::NonInvite(t) => t.is_terminated(),
                }
            }
        }
    };
}
either_surface!(ServerTransaction);
either_surface!(ClientTransaction);

#[cfg(test)]
mod tests {
    use super::sim::{secs, transmits};
    use super::*;

    const INVITE_BRANCH: &str = "z9hG4bKcaller1";
    const SENT_BY: &str = "trunk.example.net:5060";

    fn key(method: &str) -> ServerTransactionKey {
        ServerTransactionKey::rfc3261(INVITE_BRANCH, SENT_BY, method).unwrap()
    }

    fn drain(tx: &mut ServerTransaction) -> Vec<Bytes> {
        std::iter::from_fn(|| Transaction::poll_transmit(tx)).collect()
    }

    /// The routing steps of the module documentation, as the UA core does them.
    fn on_invite(
        table: &mut TransactionTable<ServerTransactionKey, ServerTransaction>,
        now: Instant,
    ) -> Vec<Bytes> {
        let k = key("INVITE");
        if let Some(mut tx) = table.get_mut(&k) {
            tx.on_request_retransmission(now);
            return drain(&mut tx);
        }
        let mut invite =
            InviteServerTransaction::new(now, TimerSettings::default(), Reliability::Unreliable);
        invite
            .send_response(100, Bytes::from_static(b"100"), now)
            .unwrap();
        let out = transmits(&mut invite);
        table.insert(k, ServerTransaction::Invite(invite)).unwrap();
        out
    }

    #[test]
    fn retransmitted_invite_creates_nothing_new() {
        let t0 = Instant::now();
        let mut table = TransactionTable::new();
        assert_eq!(on_invite(&mut table, t0), vec![Bytes::from_static(b"100")]);
        assert_eq!(
            on_invite(&mut table, t0 + secs(0.5)),
            vec![Bytes::from_static(b"100")]
        );
        assert_eq!(table.len(), 1);
        // A second insert under the same key is refused.
        let dup =
            InviteServerTransaction::new(t0, TimerSettings::default(), Reliability::Unreliable);
        assert!(table
            .insert(key("INVITE"), ServerTransaction::Invite(dup))
            .is_err());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn ack_for_non_2xx_finds_the_invite_transaction() {
        let t0 = Instant::now();
        let mut table = TransactionTable::new();
        on_invite(&mut table, t0);
        {
            let mut tx = table.get_mut(&key("INVITE")).unwrap();
            let ServerTransaction::Invite(invite) = &mut *tx else {
                panic!("INVITE expected")
            };
            invite
                .send_response(486, Bytes::from_static(b"486"), t0 + secs(1.0))
                .unwrap();
            drain(&mut tx);
        }
        // The ACK has the same branch; its key maps to INVITE.
        let ack_key = key("ACK");
        let mut tx = table.get_mut(&ack_key).unwrap();
        let ServerTransaction::Invite(invite) = &mut *tx else {
            panic!("INVITE expected")
        };
        invite.on_ack(t0 + secs(1.2));
        assert_eq!(invite.state(), InviteServerState::Confirmed);
    }

    #[test]
    fn cancel_after_200_is_answered_and_leaves_the_call_alone() {
        let t0 = Instant::now();
        let mut table = TransactionTable::new();
        on_invite(&mut table, t0);
        // The call is answered.
        {
            let mut tx = table.get_mut(&key("INVITE")).unwrap();
            let ServerTransaction::Invite(invite) = &mut *tx else {
                panic!("INVITE expected")
            };
            invite
                .send_response(200, Bytes::from_static(b"200-invite"), t0 + secs(2.0))
                .unwrap();
            assert_eq!(drain(&mut tx), vec![Bytes::from_static(b"200-invite")]);
        }
        // The CANCEL crossed the 200 on the wire.
        let cancel_at = t0 + secs(2.1);
        let cancel_key = key("CANCEL");
        assert!(
            table.get(&cancel_key).is_none(),
            "CANCEL has its own transaction"
        );
        let invite_key = cancel_key.cancelled_invite().unwrap();
        let outcome = match table.get(&invite_key) {
            Some(tx) => tx.as_invite().map(InviteServerTransaction::cancel_outcome),
            None => None,
        };
        assert_eq!(outcome, Some(CancelOutcome::AlreadyAnswered));
        let mut cancel = NonInviteServerTransaction::new(
            cancel_at,
            TimerSettings::default(),
            Reliability::Unreliable,
        );
        cancel
            .send_response(200, Bytes::from_static(b"200-cancel"), cancel_at)
            .unwrap();
        assert_eq!(
            transmits(&mut cancel),
            vec![Bytes::from_static(b"200-cancel")]
        );
        table
            .insert(cancel_key.clone(), ServerTransaction::NonInvite(cancel))
            .unwrap();
        assert_eq!(table.len(), 2);

        // No 487: the INVITE stays Accepted and keeps retransmitting its 200.
        let mut sent = Vec::new();
        while let Some(deadline) = table.poll_timeout() {
            if deadline > t0 + secs(5.0) {
                break;
            }
            for expired in table.expire(deadline) {
                assert_eq!(expired.key, invite_key);
                sent.extend(expired.transmits);
            }
        }
        assert!(!sent.is_empty());
        assert!(sent.iter().all(|b| b.as_ref() == b"200-invite"));
        match table.get(&invite_key) {
            Some(ServerTransaction::Invite(invite)) => {
                assert_eq!(invite.state(), InviteServerState::Accepted)
            }
            other => panic!("INVITE transaction missing: {other:?}"),
        }
        // A CANCEL retransmission replays the 200 for the CANCEL only.
        let mut tx = table.get_mut(&cancel_key).unwrap();
        tx.on_request_retransmission(t0 + secs(5.0));
        assert_eq!(drain(&mut tx), vec![Bytes::from_static(b"200-cancel")]);
    }

    #[test]
    fn cancel_before_answer_ends_the_invite_with_487() {
        let t0 = Instant::now();
        let mut table = TransactionTable::new();
        on_invite(&mut table, t0);
        let invite_key = key("CANCEL").cancelled_invite().unwrap();
        let mut tx = table.get_mut(&invite_key).unwrap();
        let ServerTransaction::Invite(invite) = &mut *tx else {
            panic!("INVITE expected")
        };
        assert_eq!(invite.cancel_outcome(), CancelOutcome::RequestTerminated);
        invite
            .send_response(487, Bytes::from_static(b"487"), t0 + secs(1.0))
            .unwrap();
        assert_eq!(invite.state(), InviteServerState::Completed);
    }
}

//! Property tests: arbitrary input sequences never panic, time never runs
//! backwards, and a terminated machine has no timer and emits nothing new.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(u16),
    Fire,
    Respond(u16),
    Retransmission,
    Ack,
    TransportError,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u16..5000).prop_map(Op::Advance),
        Just(Op::Fire),
        prop_oneof![0u16..1000, 100u16..200, 200u16..300, 300u16..700].prop_map(Op::Respond),
        Just(Op::Retransmission),
        Just(Op::Ack),
        Just(Op::TransportError),
    ]
}

/// Applies `ops` to `tx` through `input`, checking the invariants.
fn check<T: Transaction>(
    mut tx: T,
    t0: Instant,
    ops: &[Op],
    mut input: impl FnMut(&mut T, &Op, Instant),
) {
    let mut now = t0;
    let mut was_terminated = false;
    for op in ops {
        match op {
            Op::Advance(ms) => now += Duration::from_millis(u64::from(*ms)),
            Op::Fire => {
                if let Some(deadline) = tx.poll_timeout() {
                    now = now.max(deadline);
                }
                tx.handle_timeout(now);
                // Every due timer fired; the next one lies ahead.
                assert!(tx.poll_timeout().is_none_or(|d| d > now));
            }
            other => input(&mut tx, other, now),
        }
        let events: Vec<_> = std::iter::from_fn(|| tx.poll_event()).collect();
        if was_terminated {
            assert!(events.is_empty(), "event after Terminated: {events:?}");
        }
        while tx.poll_transmit().is_some() {}
        if tx.is_terminated() {
            assert_eq!(tx.poll_timeout(), None);
            was_terminated = true;
        }
        assert_eq!(tx.is_terminated(), was_terminated, "left Terminated");
    }
    // Left alone, the timers run out: retransmissions are bounded by the
    // timeouts that accompany them.
    let mut steps = 0;
    while let Some(deadline) = tx.poll_timeout() {
        now = now.max(deadline);
        tx.handle_timeout(now);
        steps += 1;
        assert!(steps < 1000, "timers never settle");
    }
}

fn reliability(reliable: bool) -> Reliability {
    if reliable {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

proptest! {
    #[test]
    fn invite_server_never_panics(reliable: bool, ops in prop::collection::vec(op(), 0..40)) {
        let t0 = Instant::now();
        let tx = InviteServerTransaction::new(t0, TimerSettings::default(), reliability(reliable));
        check(tx, t0, &ops, |tx, op, now| match op {
            Op::Respond(s) => { let _ = tx.send_response(*s, Bytes::from_static(b"r"), now); }
            Op::Retransmission => tx.on_request_retransmission(now),
            Op::Ack => tx.on_ack(now),
            Op::TransportError => tx.on_transport_error(now),
            _ => {}
        });
    }

    #[test]
    fn non_invite_server_never_panics(reliable: bool, ops in prop::collection::vec(op(), 0..40)) {
        let t0 = Instant::now();
        let tx = NonInviteServerTransaction::new(t0, TimerSettings::default(), reliability(reliable));
        check(tx, t0, &ops, |tx, op, now| match op {
            Op::Respond(s) => { let _ = tx.send_response(*s, Bytes::from_static(b"r"), now); }
            Op::Retransmission => tx.on_request_retransmission(now),
            Op::TransportError => tx.on_transport_error(now),
            _ => {}
        });
    }

    #[test]
    fn invite_client_never_panics(reliable: bool, ops in prop::collection::vec(op(), 0..40)) {
        let t0 = Instant::now();
        let tx = InviteClientTransaction::new(
            Bytes::from_static(b"INVITE"), t0, TimerSettings::default(), reliability(reliable));
        check(tx, t0, &ops, |tx, op, now| match op {
            Op::Respond(s) => { let _ = tx.on_response(*s, now); }
            Op::Ack => { let _ = tx.send_ack(Bytes::from_static(b"ACK"), now); }
            Op::TransportError => tx.on_transport_error(now),
            _ => {}
        });
    }

    #[test]
    fn non_invite_client_never_panics(reliable: bool, ops in prop::collection::vec(op(), 0..40)) {
        let t0 = Instant::now();
        let tx = NonInviteClientTransaction::new(
            Bytes::from_static(b"BYE"), t0, TimerSettings::default(), reliability(reliable));
        check(tx, t0, &ops, |tx, op, now| match op {
            Op::Respond(s) => { let _ = tx.on_response(*s, now); }
            Op::TransportError => tx.on_transport_error(now),
            _ => {}
        });
    }

    #[test]
    fn absurd_settings_never_panic(t1: u64, t2: u64, t4: u64, ops in prop::collection::vec(op(), 0..20)) {
        // Unvalidated settings (values up to u64::MAX ms) must not overflow the clock.
        let settings = TimerSettings {
            t1: Duration::from_millis(t1),
            t2: Duration::from_millis(t2),
            t4: Duration::from_millis(t4),
        };
        let t0 = Instant::now();
        let tx = InviteServerTransaction::new(t0, settings, Reliability::Unreliable);
        check(tx, t0, &ops, |tx, op, now| match op {
            Op::Respond(s) => { let _ = tx.send_response(*s, Bytes::from_static(b"r"), now); }
            Op::Retransmission => tx.on_request_retransmission(now),
            Op::Ack => tx.on_ack(now),
            _ => {}
        });
        let tx = InviteClientTransaction::new(Bytes::new(), t0, settings, Reliability::Unreliable);
        check(tx, t0, &ops, |tx, op, now| if let Op::Respond(s) = op { let _ = tx.on_response(*s, now); });
        let tx = NonInviteClientTransaction::new(Bytes::new(), t0, settings, Reliability::Unreliable);
        check(tx, t0, &ops, |tx, op, now| if let Op::Respond(s) = op { let _ = tx.on_response(*s, now); });
        let mut tx = NonInviteServerTransaction::new(t0, settings, Reliability::Unreliable);
        let _ = tx.send_response(200, Bytes::new(), t0);
        prop_assert!(tx.poll_timeout().is_none_or(|d| d >= t0));
    }

    #[test]
    fn duration_parser_never_panics(text in ".{0,24}") {
        let _ = settings::parse_duration(&text);
    }

    #[test]
    fn keys_never_panic_and_ack_always_matches_invite(
        branch in ".{0,40}", sent_by in ".{0,40}", uri in ".{0,40}", cseq: u32,
    ) {
        let parts = |method| RequestKeyParts {
            method,
            branch: Some(&branch),
            sent_by: &sent_by,
            request_uri: &uri,
            to_tag: None,
            from_tag: Some("f"),
            call_id: "c",
            cseq,
            top_via: &sent_by,
        };
        let invite = ServerTransactionKey::from_request(&parts("INVITE")).unwrap();
        let ack = ServerTransactionKey::from_request(&parts("ACK")).unwrap();
        let cancel = ServerTransactionKey::from_request(&parts("CANCEL")).unwrap();
        prop_assert_eq!(&invite, &ack);
        prop_assert_ne!(&invite, &cancel);
        prop_assert_eq!(cancel.cancelled_invite(), Some(invite));
        let client = ClientTransactionKey::new(&branch, "BYE").unwrap();
        prop_assert_eq!(client.branch(), branch.as_str());
    }
}

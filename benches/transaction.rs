//! Transaction table costs: lookup among 10,000 live transactions, and the
//! full create → answer → ACK → terminate → remove cycle.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use dialgate::sip::transaction::{
    InviteServerTransaction, NonInviteClientTransaction, Reliability, ServerTransaction,
    ServerTransactionKey, TimerSettings, Transaction, TransactionTable,
};

const LIVE: usize = 10_000;

fn key(i: usize) -> ServerTransactionKey {
    ServerTransactionKey::rfc3261(
        &format!("z9hG4bK{i:016x}.caller"),
        "trunk-7.carrier.example.net:5060",
        "INVITE",
    )
    .expect("valid key")
}

fn filled(t0: Instant) -> TransactionTable<ServerTransactionKey, ServerTransaction> {
    let mut table = TransactionTable::with_capacity(LIVE);
    for i in 0..LIVE {
        let mut tx = InviteServerTransaction::new(
            t0 + Duration::from_micros(i as u64),
            TimerSettings::default(),
            Reliability::Unreliable,
        );
        tx.send_response(100, Bytes::from_static(b"SIP/2.0 100 Trying"), t0)
            .expect("100");
        while tx.poll_transmit().is_some() {}
        if table.insert(key(i), ServerTransaction::Invite(tx)).is_err() {
            unreachable!("keys are distinct");
        }
    }
    table
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let settings = TimerSettings::default();

    let mut table = filled(t0);
    let keys: Vec<_> = (0..LIVE).map(key).collect();
    let mut i = 0;
    c.bench_function("lookup among 10k (hit)", |b| {
        b.iter(|| {
            i = (i + 7919) % LIVE;
            black_box(table.get(&keys[i]).is_some())
        })
    });
    // Baseline: the bare hash map from key to slot, same access pattern.
    let bare: std::collections::HashMap<ServerTransactionKey, u32> =
        keys.iter().cloned().zip(0u32..).collect();
    c.bench_function("baseline HashMap lookup among 10k (hit)", |b| {
        b.iter(|| {
            i = (i + 7919) % LIVE;
            black_box(bare.get(&keys[i]).copied())
        })
    });
    let miss = key(LIVE + 1);
    c.bench_function("lookup among 10k (miss)", |b| {
        b.iter(|| black_box(table.get(black_box(&miss)).is_none()))
    });
    c.bench_function("key build (RFC 3261)", |b| {
        b.iter(|| {
            black_box(
                ServerTransactionKey::rfc3261(
                    black_box("z9hG4bK00000000deadbeef.caller"),
                    black_box("trunk-7.carrier.example.net:5060"),
                    black_box("ACK"),
                )
                .is_ok(),
            )
        })
    });

    let ok = Bytes::from_static(b"SIP/2.0 200 OK");
    let mut n = LIVE + 10;
    c.bench_function("INVITE tx create+answer+ACK+terminate among 10k", |b| {
        b.iter(|| {
            n += 1;
            let k = key(n);
            let mut tx = InviteServerTransaction::new(t0, settings, Reliability::Reliable);
            tx.send_response(200, ok.clone(), t0).expect("200");
            while tx.poll_transmit().is_some() {}
            if table
                .insert(k.clone(), ServerTransaction::Invite(tx))
                .is_err()
            {
                unreachable!("fresh key");
            }
            if let Some(mut guard) = table.get_mut(&k) {
                if let ServerTransaction::Invite(tx) = &mut *guard {
                    tx.on_ack(t0 + Duration::from_millis(40));
                }
            }
            black_box(table.remove(&k).is_some())
        })
    });

    c.bench_function("BYE client tx create+200+drain", |b| {
        let request = Bytes::from_static(b"BYE sip:caller@trunk SIP/2.0");
        b.iter(|| {
            let mut tx = NonInviteClientTransaction::new(
                request.clone(),
                t0,
                settings,
                Reliability::Unreliable,
            );
            while tx.poll_transmit().is_some() {}
            tx.on_response(200, t0 + Duration::from_millis(30))
                .expect("200");
            black_box(tx.poll_event())
        })
    });

    c.bench_function("next deadline over 10k", |b| {
        b.iter(|| black_box(table.poll_timeout()))
    });

    // Expiring the timers of all 10k at once (their 2xx retransmission):
    // measured per full sweep on a fresh table each time.
    c.bench_function("expire 10k due transactions", |b| {
        b.iter_batched(
            || {
                let mut t = filled(t0);
                for k in &keys {
                    if let Some(mut g) = t.get_mut(k) {
                        if let ServerTransaction::Invite(tx) = &mut *g {
                            let _ = tx.send_response(200, ok.clone(), t0);
                            while tx.poll_transmit().is_some() {}
                        }
                    }
                }
                t
            },
            |mut t| {
                let mut sent = 0usize;
                t.expire_with(t0 + Duration::from_secs(1), |_, tx| {
                    while tx.poll_transmit().is_some() {
                        sent += 1;
                    }
                });
                black_box(sent)
            },
            criterion::BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

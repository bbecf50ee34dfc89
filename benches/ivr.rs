//! Auto attendant costs: a whole call through the flow state machine, and
//! the guessing defence under a flood of fresh identities.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use dialgate::directory::{Lookup, Route};
use dialgate::dtmf::{Digit, DtmfSource};
use dialgate::ivr::guard::{CallerIdentity, GuardSettings, GuessingGuard};
use dialgate::ivr::{Action, CallFlow, IvrSettings};
use dialgate::media::PromptId;

fn flow(c: &mut Criterion) {
    let settings = IvrSettings::default();
    let route = Route {
        organizer: Arc::from("amos.marble@contoso.com"),
        meeting: Arc::from("static"),
    };
    let keys: Vec<Digit> = "1234567".chars().filter_map(Digit::from_char).collect();
    let t0 = Instant::now();
    c.bench_function("ivr/flow_valid_call", |b| {
        b.iter(|| {
            let mut flow = CallFlow::new(&settings, None);
            flow.start(t0);
            let mut now = t0 + Duration::from_secs(5);
            flow.prompt_finished(PromptId::Welcome, now);
            for &k in &keys {
                now += Duration::from_millis(300);
                flow.handle_digit(k, DtmfSource::Rfc4733, now);
            }
            while let Some(a) = flow.poll_action() {
                if let Action::LookUp(_) = a {
                    flow.handle_lookup(Lookup::Active(route.clone()), now);
                }
            }
            flow.prompt_finished(PromptId::Joining, now + Duration::from_secs(2));
            black_box(flow.poll_action())
        })
    });
}

fn guard(c: &mut Criterion) {
    let trunk = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    let t0 = Instant::now();
    let mut g = GuessingGuard::new(GuardSettings::default());
    let names: Vec<String> = (0..100_000).map(|i| format!("+49301{i:06}")).collect();
    // Fill the identity table to its cap with active records.
    for (i, n) in names.iter().take(10_000).enumerate() {
        let _ = g.record_failure(
            &CallerIdentity::User(n),
            trunk,
            true,
            t0 + Duration::from_millis(i as u64),
        );
    }
    let mut i = 10_000usize;
    c.bench_function("ivr/guard_record_flood_at_cap", |b| {
        b.iter(|| {
            i += 1;
            let n = &names[i % names.len()];
            let now = t0 + Duration::from_millis(i as u64);
            black_box(g.record_failure(&CallerIdentity::User(n), trunk, true, now))
        })
    });
    let now = t0 + Duration::from_secs(60);
    c.bench_function("ivr/guard_check_call", |b| {
        b.iter(|| {
            black_box(g.check_call(
                &CallerIdentity::User(black_box("+4930123456")),
                trunk,
                true,
                now,
            ))
        })
    });
}

criterion_group!(benches, flow, guard);
criterion_main!(benches);

//! Per-packet cost of the call path: one received RTP datagram through a
//! [`CallSession`] (receiver, latching, DTMF detection, attendant), for
//! audio with the in-band detector running (a phone without
//! telephone-event), audio without it, and RFC 4733 event packets.
//!
//! Before measuring, a counting allocator checks that steady-state packets
//! allocate nothing. (The event packets carry a new key press every 16
//! packets; after seven keys the attendant waits for the directory and
//! ignores further keys, so the measured loop is mostly detection.)
//!
//! Measured on the shared 2-core VM: ~0.9 µs per audio packet with the
//! in-band detector, ~25 ns without it, ~43 ns per telephone-event packet.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dialgate::call::{CallSession, MediaParams};
use dialgate::dtmf::DtmfSettings;
use dialgate::ivr::IvrSettings;
use dialgate::media::g711::Law;
use dialgate::media::MediaSettings;

/// Counts allocations so the bench can show a packet makes none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn session(event_pt: Option<u8>, now: Instant) -> CallSession {
    let params = MediaParams {
        law: Law::Mu,
        audio_pt: 0,
        event_pt,
        remote: Some("127.0.0.1:30000".parse().unwrap()),
    };
    let mut s = CallSession::new(
        &IvrSettings::default(),
        &DtmfSettings::default(),
        &MediaSettings::default(),
        params,
        None,
        now,
    );
    s.start(now);
    while s.poll_action().is_some() {}
    s
}

/// Rewrites sequence number and timestamp in place.
fn stamp(packet: &mut [u8], seq: u16, ts: u32) {
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
    packet[4..8].copy_from_slice(&ts.to_be_bytes());
}

fn audio_packet() -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
    // Speech-like µ-law bytes (not a DTMF tone).
    p.extend((0..160u32).map(|i| (i.wrapping_mul(37) % 200) as u8 + 20));
    p
}

fn event_packet() -> Vec<u8> {
    vec![
        0x80, 101, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 5, 10, 0, 160,
    ]
}

fn bench(c: &mut Criterion) {
    let from: SocketAddr = "127.0.0.1:30000".parse().unwrap();
    let mut group = c.benchmark_group("call_session");
    group.throughput(Throughput::Elements(1));
    for (name, event_pt, mut packet) in [
        ("audio_inband", None, audio_packet()),
        ("audio_rfc4733_mode", Some(101), audio_packet()),
        ("telephone_event", Some(101), event_packet()),
    ] {
        let t0 = Instant::now();
        let mut s = session(event_pt, t0);
        let mut seq = 0u16;
        let mut now = t0;
        let mut step = |s: &mut CallSession, packet: &mut Vec<u8>| {
            seq = seq.wrapping_add(1);
            now += Duration::from_millis(20);
            // Events: a new press every 16 packets, like a keypad.
            stamp(packet, seq, u32::from(seq / 16) * 1600);
            s.handle_rtp(black_box(packet), from, now);
            while s.poll_action().is_some() {}
        };
        for _ in 0..200 {
            step(&mut s, &mut packet);
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..1000 {
            step(&mut s, &mut packet);
        }
        let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(allocated, 0, "{name}: allocations in 1000 packets");
        println!("{name}: {allocated} allocations in 1000 steady-state packets");
        group.bench_function(name, |b| b.iter(|| step(&mut s, &mut packet)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

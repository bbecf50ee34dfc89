//! Embedded bridge costs: one 20 ms pacer tick of a room, input included
//! (one G.711 packet per participant through its jitter buffer), mixing
//! and the encoded outputs, for rooms of 4, 10 and 50; and one tick of a
//! whole gateway holding 2,000 participants in rooms of 4 to 10.
//!
//! Budget: a tick must finish within 20 ms per core, so participants per
//! core in real time = 20 ms / (tick time / participants).
//!
//! `gateway_tick_with_pacer` adds what the pacer thread does with the mix
//! under its lock: each frame handed to the caller's live stream and one
//! RTP packet per caller built into the tick's batch (sending excluded).
//! Measured on a loaded 2-core VM: 2,000 callers 1.62–1.75 ms per tick
//! mixed alone, 2.45–2.64 ms with the pacer's part (about 1.3 µs per
//! caller, 13% of the 20 ms tick), no allocation either way.
//!
//! Before measuring, a counting allocator checks that steady-state ticks
//! allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dialgate::bridge::{BridgeSettings, Conferences, ParticipantId, Room, FRAME_SAMPLES};
use dialgate::media::g711::Law;

/// Counts allocations so the bench can show a tick makes none.
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

/// Frames in each participant's looped recording.
const LOOP: usize = 50;

/// `LOOP` frames of a sine at `amplitude` plus a little noise, in `law`.
fn recording(freq: f64, amplitude: f64, seed: u32, law: Law) -> Vec<[u8; FRAME_SAMPLES]> {
    let mut noise = seed.wrapping_mul(2_654_435_761) | 1;
    let pcm: Vec<i16> = (0..LOOP * FRAME_SAMPLES)
        .map(|n| {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let hiss = f64::from((noise >> 24) as u8) - 128.0;
            let phase = 2.0 * std::f64::consts::PI * freq * n as f64 / 8000.0;
            (amplitude * phase.sin() + hiss * 0.25).round() as i16
        })
        .collect();
    pcm.chunks(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [0; FRAME_SAMPLES];
            law.encode(c, &mut f);
            f
        })
        .collect()
}

/// Who talks in a bench room.
#[derive(Clone, Copy)]
enum Talk {
    /// One talker, everyone else sends line noise (the common case).
    One,
    /// Everyone talks at once (the worst case: every frame above the
    /// speaker threshold, top-N selection busy).
    All,
}

struct Caller {
    id: ParticipantId,
    frames: Vec<[u8; FRAME_SAMPLES]>,
}

/// Callers for a room of `size`, every third one on PCMA.
fn callers(
    size: usize,
    talk: Talk,
    mut join: impl FnMut(Law) -> ParticipantId,
    first: u32,
) -> Vec<Caller> {
    (0..size)
        .map(|i| {
            let law = if i % 3 == 2 { Law::A } else { Law::Mu };
            let loud = matches!(talk, Talk::All) || i == 0;
            let amplitude = if loud { 6000.0 } else { 0.0 };
            Caller {
                id: join(law),
                frames: recording(300.0 + 37.0 * i as f64, amplitude, first + i as u32, law),
            }
        })
        .collect()
}

/// Feeds every caller one packet at tick `k`.
fn feed(
    push: &mut impl FnMut(ParticipantId, u32, &[u8], Instant),
    callers: &[Caller],
    k: u32,
    t0: Instant,
) {
    let now = t0 + Duration::from_millis(20 * u64::from(k));
    let ts = k.wrapping_mul(FRAME_SAMPLES as u32);
    for c in callers {
        if let Some(f) = c.frames.get(k as usize % LOOP) {
            push(c.id, ts, f, now);
        }
    }
}

fn room_with(size: usize, talk: Talk) -> (Room, Vec<Caller>) {
    let settings = BridgeSettings {
        max_room_size: 100,
        ..BridgeSettings::default()
    };
    let mut room = Room::new(&settings);
    let callers = callers(
        size,
        talk,
        |law| room.join(law).unwrap_or_else(|e| panic!("{e}")),
        0,
    );
    (room, callers)
}

fn check_no_allocation_per_tick() {
    let (mut room, callers) = room_with(10, Talk::All);
    let t0 = Instant::now();
    let mut k = 0u32;
    let tick = |room: &mut Room, k: &mut u32| {
        feed(
            &mut |id, ts, f, now| {
                let _ = room.push_audio(id, ts, f, now);
            },
            &callers,
            *k,
            t0,
        );
        room.mix_tick(|id, frame| {
            black_box((id, frame));
        });
        *k += 1;
    };
    // Let the join tones finish and the jitter buffers fill.
    for _ in 0..20 {
        tick(&mut room, &mut k);
    }
    while room.poll_event().is_some() {}
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        tick(&mut room, &mut k);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!("bridge: allocations in 1000 ticks of a 10-participant room: {allocations}");
    assert_eq!(allocations, 0, "a mixer tick allocated");
}

fn room_tick(c: &mut Criterion) {
    check_no_allocation_per_tick();
    let mut group = c.benchmark_group("bridge/room_tick");
    for talk in [Talk::One, Talk::All] {
        let label = match talk {
            Talk::One => "one_talker",
            Talk::All => "all_talking",
        };
        for size in [4usize, 10, 50] {
            let (mut room, callers) = room_with(size, talk);
            let t0 = Instant::now();
            let mut k = 0u32;
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new(label, size), &size, |b, _| {
                b.iter(|| {
                    feed(
                        &mut |id, ts, f, now| {
                            black_box(room.push_audio(id, ts, f, now).ok());
                        },
                        &callers,
                        k,
                        t0,
                    );
                    room.mix_tick(|id, frame| {
                        black_box((id, frame));
                    });
                    k = k.wrapping_add(1);
                })
            });
        }
    }
    group.finish();
}

/// 2,000 callers in rooms of 4 to 10 (sizes 4, 5, … 10 in turn), one
/// talker per room: a whole gateway's tick on one core.
fn gateway_tick(c: &mut Criterion) {
    let mut conferences = Conferences::new(BridgeSettings::default());
    let mut all = Vec::new();
    let mut meeting = 0u32;
    while all.len() < 2000 {
        let size = (4 + meeting as usize % 7).min(2000 - all.len());
        let key: Arc<str> = Arc::from(format!("meeting-{meeting}"));
        let joined = callers(
            size,
            Talk::One,
            |law| {
                conferences
                    .join(&key, law)
                    .unwrap_or_else(|e| panic!("{e}"))
            },
            all.len() as u32,
        );
        all.extend(joined);
        meeting += 1;
    }
    while conferences.poll_event().is_some() {}
    let t0 = Instant::now();
    let mut k = 0u32;
    let mut group = c.benchmark_group("bridge/gateway_tick");
    group.throughput(Throughput::Elements(all.len() as u64));
    group.bench_function("2000_in_rooms_of_4_to_10", |b| {
        b.iter(|| {
            feed(
                &mut |id, ts, f, now| {
                    black_box(conferences.push_audio(id, ts, f, now).ok());
                },
                &all,
                k,
                t0,
            );
            conferences.tick(|id, frame| {
                black_box((id, frame));
            });
            k = k.wrapping_add(1);
        })
    });
    group.finish();
}

/// The 2,000-caller gateway of [`gateway_tick`] as the pacer thread runs
/// it: received audio into the jitter buffers, every room mixed, each
/// frame fed to its caller's live stream, and the tick's packets built.
fn gateway_tick_with_pacer(c: &mut Criterion) {
    use dialgate::media::pacer::{Pacer, PacketBatch, StreamId, TICK};
    use dialgate::media::rtp::RtpSender;
    use std::collections::HashMap;

    let t0 = Instant::now();
    let mut conferences = Conferences::new(BridgeSettings::default());
    let mut pacer: Pacer<()> = Pacer::new(t0);
    let mut seats: HashMap<ParticipantId, StreamId> = HashMap::new();
    let dest = "127.0.0.1:40000".parse().expect("address");
    let mut all = Vec::new();
    let mut meeting = 0u32;
    while all.len() < 2000 {
        let size = (4 + meeting as usize % 7).min(2000 - all.len());
        let key: Arc<str> = Arc::from(format!("meeting-{meeting}"));
        let joined = callers(
            size,
            Talk::One,
            |law| {
                let pt = if law == Law::Mu { 0 } else { 8 };
                let sender = RtpSender::new(pt, 101).unwrap_or_else(|e| panic!("{e}"));
                let stream = pacer.add_stream(sender, law, dest, ());
                let _ = pacer.set_live(stream, true);
                let id = conferences
                    .join(&key, law)
                    .unwrap_or_else(|e| panic!("{e}"));
                seats.insert(id, stream);
                id
            },
            all.len() as u32,
        );
        all.extend(joined);
        meeting += 1;
    }
    while conferences.poll_event().is_some() {}
    let mut batch = PacketBatch::with_capacity(all.len());
    let mut k = 0u32;
    let mut tick = |k: &mut u32| {
        feed(
            &mut |id, ts, f, now| {
                black_box(conferences.push_audio(id, ts, f, now).ok());
            },
            &all,
            *k,
            t0,
        );
        conferences.tick(|id, frame| {
            if let Some(stream) = seats.get(&id) {
                let _ = pacer.feed_live(*stream, frame);
            }
        });
        // Exactly on each deadline, as the pacer thread ticks.
        let out = pacer.tick(t0 + TICK * *k, &mut batch);
        black_box(out);
        *k = k.wrapping_add(1);
    };
    for _ in 0..20 {
        tick(&mut k);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        tick(&mut k);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!("bridge+pacer: allocations in 100 ticks of 2000 callers: {allocations}");
    assert_eq!(allocations, 0, "a mix-and-pace tick allocated");
    let mut group = c.benchmark_group("bridge/gateway_tick_with_pacer");
    group.throughput(Throughput::Elements(all.len() as u64));
    group.bench_function("2000_in_rooms_of_4_to_10", |b| b.iter(|| tick(&mut k)));
    group.finish();
}

criterion_group!(benches, room_tick, gateway_tick, gateway_tick_with_pacer);
criterion_main!(benches);

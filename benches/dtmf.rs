//! DTMF detector throughput.
//!
//! `inband/*` processes one second of 8 kHz audio in 20 ms frames: the time
//! per iteration is the CPU cost of one channel-second, so one core sustains
//! `1 s / time` concurrent channels (target: ≥ 5 000, i.e. ≤ 200 µs).
//! `rfc4733/packet` is the cost of one telephone-event packet.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dialgate::dtmf::inband::{digit_frequencies, InBandDetector};
use dialgate::dtmf::info::parse_info_body;
use dialgate::dtmf::rfc4733::{TelephoneEvent, TelephoneEventReceiver};
use dialgate::dtmf::Digit;
use dialgate::media::g711::{ulaw_decode, ulaw_encode};
use std::hint::black_box;
use std::time::Instant;

const FRAME: usize = 160;

/// One second of μ-law-decoded audio: ten 50 ms key presses with 50 ms gaps.
fn dtmf_second() -> Vec<i16> {
    let mut x = Vec::with_capacity(8000);
    for (i, d) in Digit::ALL.iter().take(10).enumerate() {
        let (r, c) = digit_frequencies(*d);
        for n in 0..800 {
            let t = n as f32 / 8000.0;
            let v = if n < 400 {
                7000.0
                    * ((2.0 * std::f32::consts::PI * r * t).sin()
                        + (2.0 * std::f32::consts::PI * c * t + i as f32).sin())
            } else {
                0.0
            };
            x.push(ulaw_decode(ulaw_encode(v as i16)));
        }
    }
    x
}

/// One second of recorded synthetic speech.
fn speech_second() -> Vec<i16> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dtmf/speech-en-us-digits.wav"
    );
    match hound::WavReader::open(path) {
        Ok(mut r) => r
            .samples::<i16>()
            .skip(8000)
            .take(8000)
            .map(|s| s.unwrap_or(0))
            .collect(),
        Err(_) => vec![0; 8000],
    }
}

fn inband(c: &mut Criterion) {
    let mut g = c.benchmark_group("inband");
    g.throughput(Throughput::Elements(8000));
    for (name, audio) in [
        ("dtmf_1s", dtmf_second()),
        ("speech_1s", speech_second()),
        ("silence_1s", vec![0i16; 8000]),
    ] {
        let mut det = InBandDetector::default();
        let now = Instant::now();
        g.bench_function(name, |b| {
            b.iter(|| {
                for frame in audio.chunks(FRAME) {
                    det.handle_samples(black_box(frame), now);
                    while let Some(d) = det.poll_digit() {
                        black_box(d);
                    }
                }
            })
        });
    }
    g.finish();
}

fn rfc4733(c: &mut Criterion) {
    // A realistic stream: presses of 6 packets each (start, 2 updates, 3 ends).
    let mut packets = Vec::new();
    let mut seq = 0u16;
    for i in 0..100u32 {
        let ts = i.wrapping_mul(2000);
        for (k, (end, dur)) in [
            (false, 400),
            (false, 800),
            (false, 1200),
            (true, 1600),
            (true, 1600),
            (true, 1600),
        ]
        .iter()
        .enumerate()
        {
            let mut buf = [0u8; 4];
            let _ =
                TelephoneEvent::dtmf(Digit::ALL[(i % 16) as usize], *end, 10, *dur).write(&mut buf);
            packets.push((seq, ts, k == 0, buf));
            seq = seq.wrapping_add(1);
        }
    }
    let mut g = c.benchmark_group("rfc4733");
    g.throughput(Throughput::Elements(packets.len() as u64));
    let now = Instant::now();
    g.bench_function("packet_x600", |b| {
        b.iter(|| {
            let mut rx = TelephoneEventReceiver::new();
            for (seq, ts, m, p) in &packets {
                black_box(rx.handle_packet(*seq, *ts, *m, black_box(p), now));
            }
        })
    });
    g.finish();

    c.bench_function("info/parse_dtmf_relay", |b| {
        b.iter(|| {
            parse_info_body(
                black_box("application/dtmf-relay"),
                black_box(b"Signal=5\r\nDuration=160\r\n"),
            )
        })
    });
}

criterion_group!(benches, inband, rfc4733);
criterion_main!(benches);

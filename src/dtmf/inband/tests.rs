//! The receiver test-tape suite (ITU-T Q.24 / ETSI ES 201 235-3 style) on
//! generated audio through a G.711 round trip, plus talk-off on synthetic
//! speech and music and on recorded synthetic speech in `tests/data/dtmf/`.

use super::*;
use crate::media::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode, Law};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f64::consts::PI;
use std::time::Duration;

const FS: f64 = 8000.0;

/// Peak amplitude of a sine at `dbm0` (0 dBm0 ≈ 22 706, 3.17 dB below full scale).
fn amp(dbm0: f64) -> f64 {
    22_706.0 * 10f64.powf(dbm0 / 20.0)
}

fn samples_for(ms: f64) -> usize {
    (ms * FS / 1000.0).round() as usize
}

/// A signal under construction, as f64 samples at 8 kHz.
#[derive(Default)]
struct Tape {
    x: Vec<f64>,
    /// Varies the starting phase of successive tones deterministically.
    phase_seed: f64,
}

impl Tape {
    fn silence(&mut self, ms: f64) -> &mut Self {
        self.x.extend(std::iter::repeat_n(0.0, samples_for(ms)));
        self
    }

    fn silence_samples(&mut self, n: usize) -> &mut Self {
        self.x.extend(std::iter::repeat_n(0.0, n));
        self
    }

    fn dual(
        &mut self,
        f_low: f64,
        f_high: f64,
        dbm0_low: f64,
        dbm0_high: f64,
        ms: f64,
    ) -> &mut Self {
        self.dual_samples(f_low, f_high, dbm0_low, dbm0_high, samples_for(ms))
    }

    fn dual_samples(
        &mut self,
        f_low: f64,
        f_high: f64,
        dbm0_low: f64,
        dbm0_high: f64,
        n: usize,
    ) -> &mut Self {
        self.phase_seed += 1.0;
        let (p1, p2) = (self.phase_seed * 2.1, self.phase_seed * 0.7);
        let (a1, a2) = (amp(dbm0_low), amp(dbm0_high));
        for i in 0..n {
            let t = i as f64 / FS;
            self.x.push(
                a1 * (2.0 * PI * f_low * t + p1).sin() + a2 * (2.0 * PI * f_high * t + p2).sin(),
            );
        }
        self
    }

    fn key(&mut self, d: Digit, dbm0: f64, ms: f64) -> &mut Self {
        let (r, c) = digit_frequencies(d);
        self.dual(f64::from(r), f64::from(c), dbm0, dbm0, ms)
    }

    /// Adds white Gaussian noise of the given power (mean square), seeded.
    fn noise(&mut self, power: f64, seed: u64) -> &mut Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let sigma = power.sqrt();
        for s in &mut self.x {
            // Box–Muller.
            let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            let u2: f64 = rng.random();
            *s += sigma * (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos();
        }
        self
    }
}

/// Saturates to 16 bits and, if asked, passes through a G.711 encode/decode.
fn codec(x: &[f64], law: Option<Law>) -> Vec<i16> {
    x.iter()
        .map(|&v| {
            let s = v.round().clamp(-32768.0, 32767.0) as i16;
            match law {
                Some(Law::Mu) => ulaw_decode(ulaw_encode(s)),
                Some(Law::A) => alaw_decode(alaw_encode(s)),
                None => s,
            }
        })
        .collect()
}

fn detect_with(samples: &[i16], chunk: usize, settings: &InBandSettings) -> Vec<Digit> {
    let mut det = InBandDetector::new(settings);
    let t0 = Instant::now();
    let mut out = Vec::new();
    for (i, c) in samples.chunks(chunk.max(1)).enumerate() {
        det.handle_samples(c, t0 + Duration::from_millis(i as u64));
        while let Some(e) = det.poll_digit() {
            assert_eq!(e.source, DtmfSource::InBand);
            out.push(e.digit);
        }
    }
    // Trailing silence flushes the last block and releases any held digit.
    det.handle_samples(&[0; 4 * WINDOW_LEN], t0);
    while let Some(e) = det.poll_digit() {
        out.push(e.digit);
    }
    out
}

/// The Q.24 suite covers all sixteen keys, so A–D are switched on.
fn all_keys() -> InBandSettings {
    InBandSettings {
        extended_keys: true,
        ..InBandSettings::default()
    }
}

fn detect(samples: &[i16]) -> Vec<Digit> {
    detect_with(samples, 160, &all_keys())
}

fn key_string(d: &[Digit]) -> String {
    d.iter().map(|d| d.as_char()).collect()
}

#[test]
fn all_keys_ten_times_at_50_on_50_off() {
    for law in [Law::Mu, Law::A] {
        let mut tape = Tape::default();
        let mut expected = Vec::new();
        tape.silence(30.0);
        for _ in 0..10 {
            for d in Digit::ALL {
                tape.key(d, -10.0, 50.0).silence(50.0);
                expected.push(d);
            }
        }
        let got = detect(&codec(&tape.x, Some(law)));
        assert_eq!(key_string(&got), key_string(&expected), "{law:?}");
    }
}

#[test]
fn chunk_size_does_not_matter() {
    let mut tape = Tape::default();
    for d in Digit::ALL {
        tape.key(d, -12.0, 45.0).silence(45.0);
    }
    let s = codec(&tape.x, Some(Law::Mu));
    let reference = detect_with(&s, 160, &all_keys());
    assert_eq!(reference, Digit::ALL.to_vec());
    for chunk in [1, 7, 80, 102, 103, 333, 4096] {
        assert_eq!(
            detect_with(&s, chunk, &all_keys()),
            reference,
            "chunk {chunk}"
        );
    }
}

#[test]
fn g711_input_matches_linear_input() {
    let mut tape = Tape::default();
    for d in [Digit::D3, Digit::Pound, Digit::D0] {
        tape.key(d, -8.0, 60.0).silence(60.0);
    }
    for law in [Law::Mu, Law::A] {
        let lin: Vec<i16> = tape.x.iter().map(|v| v.round() as i16).collect();
        let mut coded = vec![0u8; lin.len()];
        law.encode(&lin, &mut coded);
        let mut det = InBandDetector::new(&all_keys());
        let t0 = Instant::now();
        let mut got = Vec::new();
        for c in coded.chunks(160) {
            det.handle_g711(law, c, t0);
            while let Some(e) = det.poll_digit() {
                got.push(e.digit);
            }
        }
        assert_eq!(got, vec![Digit::D3, Digit::Pound, Digit::D0], "{law:?}");
    }
}

/// Every key press with one tone moved off nominal by `dev` (a fraction),
/// the other tone nominal. Returns the number of presses detected.
fn presses_detected_with_offset(
    freq_index: usize,
    dev_rel: f64,
    dev_abs: f64,
    law: Law,
) -> (usize, usize) {
    let mut hits = 0;
    let mut total = 0;
    for other in 0..4 {
        let (mut r, mut c) = if freq_index < 4 {
            (
                f64::from(ROW_FREQS[freq_index]),
                f64::from(COL_FREQS[other]),
            )
        } else {
            (
                f64::from(ROW_FREQS[other]),
                f64::from(COL_FREQS[freq_index - 4]),
            )
        };
        let moved = if freq_index < 4 { &mut r } else { &mut c };
        *moved = *moved * (1.0 + dev_rel) + dev_abs;
        let mut tape = Tape::default();
        tape.silence(20.0)
            .dual(r, c, -10.0, -10.0, 80.0)
            .silence(80.0);
        total += 1;
        hits += detect(&codec(&tape.x, Some(law))).len();
    }
    (hits, total)
}

#[test]
fn frequency_deviation_within_1_5_percent_plus_2_hz_is_detected() {
    for k in 0..8 {
        for sign in [-1.0, 1.0] {
            let (hits, total) = presses_detected_with_offset(k, sign * 0.015, sign * 2.0, Law::Mu);
            assert_eq!(hits, total, "tone {k} deviation {sign}·(1.5 % + 2 Hz)");
        }
    }
}

#[test]
fn frequency_deviation_of_3_5_percent_is_rejected() {
    for k in 0..8 {
        for sign in [-1.0, 1.0] {
            // Further off, a tone nears the next row or column.
            for dev in [0.035, 0.045] {
                let (hits, _) = presses_detected_with_offset(k, sign * dev, 0.0, Law::Mu);
                assert_eq!(hits, 0, "tone {k} deviation {}", sign * dev);
            }
        }
    }
}

#[test]
fn twist_limits_are_accepted() {
    // Low group 8 dB louder, then high group 4 dB louder; at a normal and a
    // low overall level; both laws.
    for (law, base) in [(Law::Mu, -6.0), (Law::A, -20.0)] {
        for (dl, dh) in [(0.0, -8.0), (-4.0, 0.0)] {
            let mut tape = Tape::default();
            for d in Digit::ALL {
                let (r, c) = digit_frequencies(d);
                tape.dual(f64::from(r), f64::from(c), base + dl, base + dh, 60.0)
                    .silence(60.0);
            }
            let got = detect(&codec(&tape.x, Some(law)));
            assert_eq!(got, Digit::ALL.to_vec(), "{law:?} low {dl} high {dh}");
        }
    }
}

#[test]
fn excessive_twist_is_rejected() {
    for (dl, dh) in [(0.0, -16.0), (-12.0, 0.0)] {
        let mut tape = Tape::default();
        for d in Digit::ALL {
            let (r, c) = digit_frequencies(d);
            tape.dual(f64::from(r), f64::from(c), -6.0 + dl, -6.0 + dh, 60.0)
                .silence(60.0);
        }
        assert!(
            detect(&codec(&tape.x, Some(Law::Mu))).is_empty(),
            "low {dl} high {dh}"
        );
    }
}

#[test]
fn dynamic_range_0_to_minus_35_dbm0_per_tone() {
    for law in [Law::Mu, Law::A] {
        for level in [0.0, -5.0, -10.0, -15.0, -20.0, -25.0, -30.0, -33.0, -35.0] {
            let mut tape = Tape::default();
            for d in Digit::ALL {
                tape.key(d, level, 50.0).silence(50.0);
            }
            let got = detect(&codec(&tape.x, Some(law)));
            assert_eq!(got, Digit::ALL.to_vec(), "{law:?} at {level} dBm0");
        }
    }
}

#[test]
fn tones_below_the_minimum_level_are_ignored() {
    let mut tape = Tape::default();
    for d in Digit::ALL {
        tape.key(d, -48.0, 80.0).silence(50.0);
    }
    assert!(detect(&codec(&tape.x, Some(Law::Mu))).is_empty());
}

#[test]
fn tone_of_20_ms_is_never_detected() {
    for level in [0.0, -10.0, -30.0] {
        for offset in (0..WINDOW_LEN).step_by(3) {
            for d in [Digit::D1, Digit::D5, Digit::D9, Digit::D] {
                let mut tape = Tape::default();
                tape.silence_samples(200 + offset)
                    .key(d, level, 20.0)
                    .silence(60.0);
                let got = detect(&codec(&tape.x, Some(Law::Mu)));
                assert!(
                    got.is_empty(),
                    "{d} at {level} dBm0, offset {offset}: {got:?}"
                );
            }
        }
    }
}

#[test]
fn tone_of_40_ms_is_always_detected() {
    for level in [0.0, -10.0, -30.0, -35.0] {
        for offset in (0..WINDOW_LEN).step_by(3) {
            for d in [Digit::D2, Digit::D6, Digit::Star, Digit::A] {
                let mut tape = Tape::default();
                tape.silence_samples(200 + offset)
                    .key(d, level, 40.0)
                    .silence(60.0);
                let got = detect(&codec(&tape.x, Some(Law::Mu)));
                assert_eq!(got, vec![d], "{d} at {level} dBm0, offset {offset}");
            }
        }
    }
}

#[test]
fn duration_limits_hold_at_the_frequency_tolerance_edges() {
    // 20 ms never, 40 ms always, with one tone off by ±(1.5 % + 2 Hz).
    for k in 0..8 {
        for sign in [-1.0, 1.0] {
            for level in [0.0, -35.0] {
                for offset in (0..WINDOW_LEN).step_by(9) {
                    let mut r = f64::from(ROW_FREQS[k % 4]);
                    let mut c = f64::from(COL_FREQS[(k + 1) % 4]);
                    let moved = if k < 4 {
                        &mut r
                    } else {
                        c = f64::from(COL_FREQS[k - 4]);
                        &mut c
                    };
                    *moved = *moved * (1.0 + sign * 0.015) + sign * 2.0;
                    for (ms, want) in [(20.0, 0), (40.0, 1)] {
                        let mut tape = Tape::default();
                        tape.silence_samples(200 + offset)
                            .dual(r, c, level, level, ms)
                            .silence(60.0);
                        let got = detect(&codec(&tape.x, Some(Law::Mu)));
                        assert_eq!(
                            got.len(),
                            want,
                            "{r:.1}+{c:.1} Hz {ms} ms {level} dBm0 offset {offset}"
                        );
                    }
                }
            }
        }
    }
}

/// One key, tone–gap–tone, the gap `gap` samples long.
fn tone_gap_tone(d: Digit, level: f64, offset: usize, gap: usize) -> Vec<i16> {
    let (r, c) = digit_frequencies(d);
    let (r, c) = (f64::from(r), f64::from(c));
    let mut tape = Tape::default();
    tape.silence_samples(150 + offset)
        .dual(r, c, level, level, 60.0)
        .silence_samples(gap)
        .dual(r, c, level, level, 60.0)
        .silence(60.0);
    codec(&tape.x, Some(Law::Mu))
}

#[test]
fn gap_of_20_ms_does_not_split_a_digit() {
    for level in [0.0, -10.0, -30.0] {
        for offset in (0..WINDOW_LEN).step_by(3) {
            for d in [Digit::D0, Digit::D7, Digit::Pound] {
                let got = detect(&tone_gap_tone(d, level, offset, samples_for(20.0)));
                assert_eq!(got, vec![d], "{d} at {level} dBm0, offset {offset}");
            }
        }
    }
}

#[test]
fn gap_of_40_ms_splits_digits() {
    for level in [0.0, -10.0, -30.0] {
        for offset in (0..WINDOW_LEN).step_by(3) {
            for d in [Digit::D0, Digit::D7, Digit::Pound] {
                let got = detect(&tone_gap_tone(d, level, offset, samples_for(40.0)));
                assert_eq!(got, vec![d, d], "{d} at {level} dBm0, offset {offset}");
            }
        }
    }
}

#[test]
fn white_noise_at_15_db_snr() {
    for (seed, level) in [(1u64, -10.0), (2, -20.0), (3, -30.0)] {
        let mut tape = Tape::default();
        let mut expected = Vec::new();
        tape.silence(40.0);
        for _ in 0..3 {
            for d in Digit::ALL {
                tape.key(d, level, 50.0).silence(50.0);
                expected.push(d);
            }
        }
        // SNR relative to the power of the two tones together.
        let signal_power = amp(level).powi(2); // 2 × A²/2
        tape.noise(signal_power / 10f64.powf(1.5), seed);
        for law in [Law::Mu, Law::A] {
            let got = detect(&codec(&tape.x, Some(law)));
            assert_eq!(
                key_string(&got),
                key_string(&expected),
                "{level} dBm0 seed {seed} {law:?}"
            );
        }
    }
}

#[test]
fn noise_alone_gives_nothing() {
    let mut tape = Tape::default();
    tape.silence(10_000.0).noise(amp(-20.0).powi(2), 9);
    assert!(detect(&codec(&tape.x, Some(Law::Mu))).is_empty());
}

#[test]
fn key_change_without_pause_gives_both_keys() {
    let mut tape = Tape::default();
    tape.key(Digit::D1, -10.0, 80.0)
        .key(Digit::D9, -10.0, 80.0)
        .silence(60.0);
    assert_eq!(
        detect(&codec(&tape.x, Some(Law::Mu))),
        vec![Digit::D1, Digit::D9]
    );
}

#[test]
fn long_press_is_one_digit_and_reported_early() {
    let mut tape = Tape::default();
    tape.silence(20.0)
        .key(Digit::D8, -10.0, 2000.0)
        .silence(100.0);
    let s = codec(&tape.x, Some(Law::Mu));
    let mut det = InBandDetector::default();
    let t0 = Instant::now();
    let mut first_at = None;
    let mut count = 0;
    // 10 ms frames; count frames until the digit pops out.
    for (i, c) in s.chunks(80).enumerate() {
        det.handle_samples(c, t0 + Duration::from_millis(10 * i as u64));
        if i == 10 {
            assert_eq!(det.held_digit(), Some(Digit::D8));
        }
        while let Some(e) = det.poll_digit() {
            count += 1;
            first_at.get_or_insert(e.at);
        }
    }
    assert_eq!(count, 1);
    // Tone starts at 20 ms; reported in the frame ending at 60 ms at the latest.
    let latency = first_at.unwrap() - t0;
    assert!(latency <= Duration::from_millis(50), "{latency:?}");
    assert_eq!(det.held_digit(), None);
    assert_eq!(det.stats().digits, 1);
}

#[test]
fn reset_drops_state() {
    let mut tape = Tape::default();
    tape.key(Digit::D4, -10.0, 60.0);
    let s = codec(&tape.x, None);
    let mut det = InBandDetector::default();
    let t0 = Instant::now();
    det.handle_samples(&s, t0);
    assert!(det.held_digit().is_some());
    det.reset();
    assert_eq!(det.held_digit(), None);
    assert_eq!(det.poll_digit(), None);
}

#[test]
fn keys_a_to_d_only_when_enabled() {
    let mut tape = Tape::default();
    for d in Digit::ALL {
        tape.key(d, -10.0, 60.0).silence(60.0);
    }
    let s = codec(&tape.x, Some(Law::Mu));
    let default = detect_with(&s, 160, &InBandSettings::default());
    assert_eq!(key_string(&default), "0123456789*#");
    assert_eq!(detect_with(&s, 160, &all_keys()), Digit::ALL.to_vec());
}

#[test]
fn settings_defaults_and_validation() {
    let s = InBandSettings::default();
    assert!(s.validate().is_empty());
    let bad = InBandSettings {
        enabled: true,
        min_level_dbm0: -20.0,
        max_low_louder_db: 4.0,
        max_high_louder_db: 2.0,
        extended_keys: false,
    };
    let problems = bad.validate();
    assert_eq!(problems.len(), 3);
    assert!(problems[0].contains("dtmf.inband.min_level_dbm0"));
}

#[test]
fn digit_frequencies_cover_the_keypad() {
    assert_eq!(digit_frequencies(Digit::D1), (697.0, 1209.0));
    assert_eq!(digit_frequencies(Digit::D0), (941.0, 1336.0));
    assert_eq!(digit_frequencies(Digit::Pound), (941.0, 1477.0));
    assert_eq!(digit_frequencies(Digit::D), (941.0, 1633.0));
}

// ---------------------------------------------------------------- talk-off

/// Asserts that a signal yields no digit at several gains, with and without
/// G.711, and in particular no run of 7 digits (a complete conference ID).
fn assert_no_talk_off(name: &str, x: &[f64]) {
    for gain_db in [0.0, -10.0, -20.0] {
        let g = 10f64.powf(gain_db / 20.0);
        let scaled: Vec<f64> = x.iter().map(|v| v * g).collect();
        for law in [None, Some(Law::Mu), Some(Law::A)] {
            let got = detect(&codec(&scaled, law));
            assert!(got.len() < 7, "{name}: a complete false ID {got:?}");
            assert!(
                got.is_empty(),
                "{name} at {gain_db} dB {law:?}: false digits {}",
                key_string(&got)
            );
        }
    }
}

/// Vowel formants (F1, F2, F3), Hz.
const VOWELS: [(f64, f64, f64); 8] = [
    (730.0, 1090.0, 2440.0),
    (270.0, 2290.0, 3010.0),
    (300.0, 870.0, 2240.0),
    (530.0, 1840.0, 2480.0),
    (570.0, 840.0, 2410.0),
    (660.0, 1720.0, 2410.0),
    (490.0, 1350.0, 1690.0),
    (640.0, 1190.0, 2390.0),
];

/// Speech-like signal: a harmonic series on a gliding pitch (80–300 Hz)
/// shaped by moving formants, in syllables with rising/falling loudness.
fn synthetic_speech(seconds: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = (seconds * FS) as usize;
    let mut out = Vec::with_capacity(n);
    let mut phase = 0.0f64;
    let mut i = 0;
    while i < n {
        let syl_len = rng.random_range(1200..2400); // 150–300 ms
        let (f0_start, f0_end) = (rng.random_range(80.0..300.0), rng.random_range(80.0..300.0));
        let (a, b) = (
            VOWELS[rng.random_range(0..VOWELS.len())],
            VOWELS[rng.random_range(0..VOWELS.len())],
        );
        let pause = rng.random_range(0..800);
        for j in 0..syl_len {
            if i >= n {
                break;
            }
            let u = j as f64 / syl_len as f64;
            let f0 = f0_start + (f0_end - f0_start) * u;
            let formants = [
                a.0 + (b.0 - a.0) * u,
                a.1 + (b.1 - a.1) * u,
                a.2 + (b.2 - a.2) * u,
            ];
            phase += 2.0 * PI * f0 / FS;
            let mut s = 0.0;
            let mut h = 1.0;
            while h * f0 < 3600.0 {
                let f = h * f0;
                // Formant resonances (half-power half-width 60 Hz) on a
                // glottal source falling 6 dB per octave.
                let env: f64 = formants
                    .iter()
                    .zip([1.0, 0.6, 0.3])
                    .map(|(fc, w)| w / (1.0 + ((f - fc) / 60.0).powi(2)))
                    .sum();
                s += (0.15 + env) / h * (h * phase).sin();
                h += 1.0;
            }
            let loud = (PI * u).sin();
            out.push(12000.0 * loud * s);
            i += 1;
        }
        for _ in 0..pause {
            if out.len() < n {
                out.push(0.0);
            }
        }
        i = out.len();
    }
    out
}

#[test]
fn talk_off_synthetic_speech() {
    for seed in 0..6 {
        assert_no_talk_off(
            &format!("synthetic speech {seed}"),
            &synthetic_speech(8.0, seed),
        );
    }
}

/// Piano-like note: harmonics with 1/h amplitude, slightly stretched, each
/// decaying faster the higher it is.
fn add_note(out: &mut [f64], start: usize, len: usize, midi: f64, level: f64) {
    let f0 = 440.0 * 2f64.powf((midi - 69.0) / 12.0);
    for (k, s) in out.iter_mut().skip(start).take(len).enumerate() {
        let t = k as f64 / FS;
        let mut v = 0.0;
        for h in 1..=8 {
            let h = f64::from(h);
            let f = f0 * h * (1.0 + 0.0004 * h * h);
            if f > 3800.0 {
                break;
            }
            v += (1.0 / h) * (-t * (1.5 + h)).exp() * (2.0 * PI * f * t).sin();
        }
        *s += level * v;
    }
}

#[test]
fn talk_off_music_chords() {
    // C – G – Am – F – Dm – E7 – Bb – F#dim, voiced across octaves 3–6,
    // plus a running melody.
    let chords: [&[f64]; 8] = [
        &[48.0, 60.0, 64.0, 67.0, 72.0],
        &[43.0, 59.0, 62.0, 67.0, 74.0],
        &[45.0, 57.0, 60.0, 64.0, 76.0],
        &[41.0, 57.0, 60.0, 65.0, 77.0],
        &[50.0, 62.0, 65.0, 69.0, 81.0],
        &[52.0, 62.0, 64.0, 68.0, 83.0],
        &[46.0, 58.0, 62.0, 65.0, 82.0],
        &[54.0, 66.0, 69.0, 72.0, 78.0],
    ];
    let beat = samples_for(500.0);
    let mut out = vec![0.0; beat * (chords.len() * 2 + 1)];
    let melody = [
        72.0, 74.0, 76.0, 77.0, 79.0, 81.0, 83.0, 84.0, 86.0, 88.0, 89.0, 91.0,
    ];
    for rep in 0..2 {
        for (i, chord) in chords.iter().enumerate() {
            let start = (rep * chords.len() + i) * beat;
            for &m in chord.iter() {
                add_note(&mut out, start, beat * 2, m, 3000.0);
            }
            for (j, &m) in melody.iter().enumerate().skip(i % 4).step_by(4) {
                add_note(&mut out, start + j % 4 * beat / 4, beat / 2, m, 2500.0);
            }
        }
    }
    assert_no_talk_off("piano chords", &out);
}

#[test]
fn talk_off_sweeps() {
    let mut out = Vec::new();
    // Single sine sweeping 200–3400 Hz up and down over 2 s, at two rates.
    for secs in [2.0, 0.5] {
        let n = (secs * FS) as usize;
        let mut ph = 0.0f64;
        for i in 0..n {
            let u = i as f64 / n as f64;
            let f = 200.0 + 3200.0 * (PI * u).sin();
            ph += 2.0 * PI * f / FS;
            out.push(15000.0 * ph.sin());
        }
    }
    // Two tones sweeping together 500–1100 Hz (the lower one) in a fixed
    // ratio no key has (DTMF pairs span ratios 1.28–2.34), slowly.
    for ratio in [1.12, 2.6] {
        let n = (3.0 * FS) as usize;
        let (mut p1, mut p2) = (0.0f64, 0.0f64);
        for i in 0..n {
            let f1 = 500.0 + 600.0 * i as f64 / n as f64;
            p1 += 2.0 * PI * f1 / FS;
            p2 += 2.0 * PI * f1 * ratio / FS;
            out.push(9000.0 * (p1.sin() + p2.sin()));
        }
    }
    // Two tones sweeping fast in opposite directions across both groups
    // (3 kHz/s): they cross key pairs but never stay on one for 25 ms.
    let n = (0.4 * FS) as usize;
    for _ in 0..3 {
        let (mut p1, mut p2) = (0.0f64, 0.0f64);
        for i in 0..n {
            let u = i as f64 / n as f64;
            let f1 = 500.0 + 1200.0 * u;
            let f2 = 1900.0 - 1200.0 * u;
            p1 += 2.0 * PI * f1 / FS;
            p2 += 2.0 * PI * f2 / FS;
            out.push(9000.0 * (p1.sin() + p2.sin()));
        }
    }
    assert_no_talk_off("sweeps", &out);
}

/// The recorded synthetic speech (espeak-ng, mostly digits read aloud).
const SPEECH_FILES: [&str; 6] = [
    "speech-en-us-digits.wav",
    "speech-en-female-digits.wav",
    "speech-en-gb-sentences.wav",
    "speech-de-digits.wav",
    "speech-fr-female-digits.wav",
    "speech-en-low-pitch-digits.wav",
];

fn read_wav(name: &str) -> Vec<f64> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dtmf")
        .join(name);
    let mut reader = hound::WavReader::open(&path).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16),
        "{name}"
    );
    reader
        .samples::<i16>()
        .map(|s| f64::from(s.unwrap()))
        .collect()
}

#[test]
fn talk_off_recorded_speech() {
    let mut all = Vec::new();
    for name in SPEECH_FILES {
        let x = read_wav(name);
        assert!(x.len() > 4 * 8000, "{name} is a few seconds long");
        assert_no_talk_off(name, &x);
        all.extend(x);
    }
    // Also as one continuous stream, louder (clipping included).
    let loud: Vec<f64> = all.iter().map(|v| v * 2.0).collect();
    assert!(detect(&codec(&loud, Some(Law::Mu))).is_empty());
}

#[test]
fn digits_are_found_over_speech() {
    // Speech at -20 dB under digits at -10 dBm0 per tone: the digits win.
    let speech = read_wav("speech-en-us-digits.wav");
    let mut tape = Tape::default();
    let keys = [
        Digit::D4,
        Digit::D7,
        Digit::D1,
        Digit::D2,
        Digit::D9,
        Digit::D8,
        Digit::D3,
    ];
    tape.silence(300.0);
    for d in keys {
        tape.key(d, -10.0, 70.0).silence(250.0);
    }
    let g = amp(-30.0) / 32768.0;
    for (s, v) in tape.x.iter_mut().zip(speech.iter()) {
        *s += v * g;
    }
    assert_eq!(detect(&codec(&tape.x, Some(Law::Mu))), keys.to_vec());
}

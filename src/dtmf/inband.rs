//! In-band DTMF receiver for 8 kHz linear audio, built to the ITU-T Q.24 /
//! ETSI ES 201 235-3 receiver limits.
//!
//! # Design
//! Audio is cut into blocks of [`BLOCK_LEN`] samples (12.75 ms). Per block:
//! - Goertzel filters on the eight DTMF frequencies, the second harmonics of
//!   the four high-group tones, and the total energy;
//! - the strongest low-group (row) and high-group (column) tones must each be
//!   above the minimum level, within the twist limits, and together hold most
//!   of the block's energy (speech and music spread theirs);
//! - the column tone's second harmonic must be weak (voices and instruments
//!   have harmonics, DTMF generators do not);
//! - both tones' frequencies are measured from the phase advance between two
//!   Hann-windowed sub-windows of the block, and must lie within
//!   2.5 % + 1 Hz of nominal: between the Q.24 "must accept" ±(1.5 % + 2 Hz)
//!   and "must reject" ±3.5 %, which a 102-point filter's bandwidth alone
//!   cannot separate.
//!
//! A digit is reported after [`BLOCKS_TO_DETECT`] consecutive blocks that
//! pass every test (≥ 25.5 ms of tone: any 40 ms tone has two whole blocks, a
//! 20 ms tone never has two blocks that are ≥ 65 % tone). It is released after
//! [`BLOCKS_TO_RELEASE`] consecutive blocks without it (any 40 ms pause
//! yields three, a 20 ms pause at most two); a held digit only needs the
//! energy tests, so a brief dropout or a block straddling a gap edge does
//! not split it. A new digit can only start once the previous one is
//! released.
//!
//! No allocation on the sample path; one detector per call direction.

use super::{Digit, DigitEvent, DtmfSource};
use crate::media::g711::Law;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::f32::consts::PI;
use std::sync::OnceLock;
use std::time::Instant;

/// Sample rate the detector expects.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples per analysis block (12.75 ms).
pub const BLOCK_LEN: usize = 102;
/// Consecutive fully valid blocks before a digit is reported.
pub const BLOCKS_TO_DETECT: u8 = 2;
/// Consecutive blocks without the held digit before it is released.
pub const BLOCKS_TO_RELEASE: u8 = 3;

/// Low-group (row) frequencies, Hz.
pub const ROW_FREQS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) frequencies, Hz.
pub const COL_FREQS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// Keypad layout: `KEYPAD[row][col]`.
const KEYPAD: [[Digit; 4]; 4] = [
    [Digit::D1, Digit::D2, Digit::D3, Digit::A],
    [Digit::D4, Digit::D5, Digit::D6, Digit::B],
    [Digit::D7, Digit::D8, Digit::D9, Digit::C],
    [Digit::Star, Digit::D0, Digit::Pound, Digit::D],
];

/// The (row, column) frequencies of a key.
pub fn digit_frequencies(digit: Digit) -> (f32, f32) {
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, d) in row.iter().enumerate() {
            if *d == digit {
                return (ROW_FREQS[r], COL_FREQS[c]);
            }
        }
    }
    // Every digit is on the keypad; this line is never reached.
    (ROW_FREQS[0], COL_FREQS[0])
}

/// Goertzel filters: 4 rows, 4 columns, their second harmonics (4 columns
/// then 4 rows).
const FILTERS: usize = 16;
const HARMONIC_BASE: usize = 8;

/// Power of a 0 dBm0 sine (G.711: 3.17 dB below a full-scale sine, peak ≈ 22 706).
const DBM0_REF_POWER: f32 = 22_706.0 * 22_706.0 / 2.0;

/// Row + column power (as measured) must be at least this share of the
/// block's power for a held digit to continue. For a tone filling part of a
/// block the share is the filled part (times up to 1.7 dB filter loss for a
/// tone at the tolerance edge): a 20 ms pause (160 samples) leaves at most
/// two blocks under 72 % tone (share ≥ 0.6), a 40 ms pause at least three
/// blocks, one of them at most 43 % tone.
const HOLD_TONE_SHARE: f32 = 0.5;

/// Share (after undoing the filter loss of an off-centre tone) needed for a
/// block to count towards a new digit.
const DETECT_TONE_SHARE: f32 = 0.85;

/// A block counting towards a new digit must hold steady tones: each tone's
/// power in the two sub-windows within this ratio (±1.5 dB). A block only
/// partly filled with tone fails unless ≥ 81 % filled, so two such blocks
/// need more than the 160 samples of a 20 ms tone; any 40 ms tone has two
/// blocks full of tone.
const MAX_SUBWINDOW_RATIO: f32 = 1.41;

/// A tone's second harmonic must be this far (power ratio) below it (-12 dB).
const MAX_HARMONIC_RATIO: f32 = 0.063;

/// A row tone's second harmonic (1394–1882 Hz) is only checked when no
/// column tone is this close to it, as the column would leak into its filter.
const ROW_HARMONIC_CLEARANCE_HZ: f32 = 150.0;

/// Frequency offsets beyond this are not trusted for the level correction.
const MAX_CORRECTED_OFFSET_HZ: f32 = 45.0;

/// Frequency acceptance: |deviation| ≤ 2.5 % of nominal + 1 Hz.
const FREQ_TOL_REL: f32 = 0.025;
const FREQ_TOL_ABS: f32 = 1.0;

/// Sub-window length and hop for the frequency measurement; the two windows
/// cover the block. A 38-sample hop measures offsets up to ±105 Hz
/// unambiguously, beyond the passband of the block filters.
const SUB_LEN: usize = 64;
const SUB_HOP: usize = BLOCK_LEN - SUB_LEN;

/// Settings of the in-band receiver (`[dtmf.inband]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InBandSettings {
    /// Run the in-band detector at all (default true).
    pub enabled: bool,
    /// Weakest tone accepted, dBm0 per tone (default -42; Q.24 needs -35
    /// accepted, ETSI ES 201 235-3 allows rejecting below -45).
    pub min_level_dbm0: f32,
    /// How much louder the low-group tone may be than the high-group one, dB
    /// (default 10: Q.24 needs 8 plus a 2 dB measurement allowance).
    pub max_low_louder_db: f32,
    /// How much louder the high-group tone may be than the low-group one, dB
    /// (default 6: Q.24 needs 4 plus a 2 dB measurement allowance).
    pub max_high_louder_db: f32,
}

impl Default for InBandSettings {
    fn default() -> Self {
        InBandSettings {
            enabled: true,
            min_level_dbm0: -42.0,
            max_low_louder_db: 10.0,
            max_high_louder_db: 6.0,
        }
    }
}

impl InBandSettings {
    /// Problems with the settings, each naming its key; empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(-55.0..=-35.0).contains(&self.min_level_dbm0) {
            problems.push(format!(
                "dtmf.inband.min_level_dbm0 = {} must be between -55 and -35",
                self.min_level_dbm0
            ));
        }
        if !(8.0..=16.0).contains(&self.max_low_louder_db) {
            problems.push(format!(
                "dtmf.inband.max_low_louder_db = {} must be between 8 and 16",
                self.max_low_louder_db
            ));
        }
        if !(4.0..=12.0).contains(&self.max_high_louder_db) {
            problems.push(format!(
                "dtmf.inband.max_high_louder_db = {} must be between 4 and 12",
                self.max_high_louder_db
            ));
        }
        problems
    }
}

/// Tables shared by all detectors, computed once.
struct Tables {
    /// Goertzel coefficients 2·cos(ω).
    coef: [f32; FILTERS],
    /// Hann-windowed cos/sin of the 8 DTMF frequencies over a sub-window.
    sub_cos: [[f32; SUB_LEN]; 8],
    sub_sin: [[f32; SUB_LEN]; 8],
    /// cos/sin of the expected phase advance over one hop.
    hop_rot: [(f32, f32); 8],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let fs = SAMPLE_RATE as f32;
        let mut freqs = [0f32; FILTERS];
        for (i, f) in ROW_FREQS.iter().chain(COL_FREQS.iter()).enumerate() {
            freqs[i] = *f;
        }
        for (i, f) in COL_FREQS.iter().chain(ROW_FREQS.iter()).enumerate() {
            freqs[HARMONIC_BASE + i] = 2.0 * f;
        }
        let mut t = Tables {
            coef: [0.0; FILTERS],
            sub_cos: [[0.0; SUB_LEN]; 8],
            sub_sin: [[0.0; SUB_LEN]; 8],
            hop_rot: [(0.0, 0.0); 8],
        };
        for (c, f) in t.coef.iter_mut().zip(freqs) {
            *c = 2.0 * (2.0 * PI * f / fs).cos();
        }
        let tones = freqs
            .iter()
            .zip(t.sub_cos.iter_mut().zip(&mut t.sub_sin))
            .zip(&mut t.hop_rot);
        for ((f, (cos, sin)), rot) in tones {
            // f64 for the phase so the tables are exact to f32 precision.
            let w = 2.0 * std::f64::consts::PI * f64::from(*f) / f64::from(SAMPLE_RATE);
            for (n, (c, s)) in cos.iter_mut().zip(sin.iter_mut()).enumerate() {
                let hann = (std::f64::consts::PI * (n as f64 + 0.5) / SUB_LEN as f64)
                    .sin()
                    .powi(2);
                *c = (hann * (w * n as f64).cos()) as f32;
                *s = (hann * (w * n as f64).sin()) as f32;
            }
            let hop = w * SUB_HOP as f64;
            *rot = (hop.cos() as f32, hop.sin() as f32);
        }
        t
    })
}

/// Per-block measurements, exposed for diagnostics and tuning.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockAnalysis {
    /// Estimated power of each row tone, in the units of `total_power`.
    pub row_power: [f32; 4],
    /// Estimated power of each column tone.
    pub col_power: [f32; 4],
    /// Estimated power at each column tone's second harmonic.
    pub col_harmonic_power: [f32; 4],
    /// Estimated power at each row tone's second harmonic.
    pub row_harmonic_power: [f32; 4],
    /// Mean power of the block (mean square sample value).
    pub total_power: f32,
}

/// What one block says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing DTMF-like.
    None,
    /// Passes the energy tests only: enough to hold a digit already detected.
    Holds(Digit),
    /// Passes every test: counts towards detecting a new digit.
    Valid(Digit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No digit held; `candidate` has been valid for `hits` blocks in a row.
    Idle { candidate: Option<Digit>, hits: u8 },
    /// `digit` was reported and is still sounding (missing for `misses` blocks).
    /// A different digit valid meanwhile is tracked as `next`.
    Held {
        digit: Digit,
        misses: u8,
        next: Option<Digit>,
        next_hits: u8,
    },
}

/// Counters for monitoring; they never affect detection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InBandStats {
    /// Blocks analysed.
    pub blocks: u64,
    /// Blocks that passed every test.
    pub valid_blocks: u64,
    /// Digits reported.
    pub digits: u64,
}

/// In-band DTMF receiver for one 8 kHz audio stream (sans-IO).
///
/// Feed linear samples with [`handle_samples`](Self::handle_samples) (or
/// G.711 payloads with [`handle_g711`](Self::handle_g711)) in any chunk size,
/// then drain [`poll_digit`](Self::poll_digit). Digits come out in order,
/// about 26–38 ms after the tone starts, each once per key press.
#[derive(Clone, Debug)]
pub struct InBandDetector {
    block: [f32; BLOCK_LEN],
    fill: usize,
    min_power: f32,
    max_low_over_high: f32,
    max_high_over_low: f32,
    state: State,
    out: VecDeque<DigitEvent>,
    stats: InBandStats,
}

impl Default for InBandDetector {
    fn default() -> Self {
        Self::new(&InBandSettings::default())
    }
}

fn db_to_power_ratio(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

impl InBandDetector {
    /// A detector with the given settings (the `enabled` flag is for the
    /// caller: a constructed detector always runs).
    pub fn new(settings: &InBandSettings) -> Self {
        // Warm the shared tables here rather than on the first block.
        let _ = tables();
        InBandDetector {
            block: [0.0; BLOCK_LEN],
            fill: 0,
            min_power: DBM0_REF_POWER * db_to_power_ratio(settings.min_level_dbm0),
            max_low_over_high: db_to_power_ratio(settings.max_low_louder_db),
            max_high_over_low: db_to_power_ratio(settings.max_high_louder_db),
            state: State::Idle {
                candidate: None,
                hits: 0,
            },
            out: VecDeque::with_capacity(4),
            stats: InBandStats::default(),
        }
    }

    /// Feeds 16-bit linear samples at 8 kHz. `now` is stamped on any digit
    /// completed by these samples.
    pub fn handle_samples(&mut self, samples: &[i16], now: Instant) {
        self.feed(samples, now, f32::from);
    }

    /// Feeds a G.711 payload (decoded on the fly, no buffer needed).
    pub fn handle_g711(&mut self, law: Law, payload: &[u8], now: Instant) {
        match law {
            Law::Mu => self.feed(payload, now, |b| {
                f32::from(crate::media::g711::ulaw_decode(b))
            }),
            Law::A => self.feed(payload, now, |b| {
                f32::from(crate::media::g711::alaw_decode(b))
            }),
        }
    }

    /// The next detected digit, oldest first.
    pub fn poll_digit(&mut self) -> Option<DigitEvent> {
        self.out.pop_front()
    }

    /// The digit currently sounding, if one was reported and not yet released.
    pub fn held_digit(&self) -> Option<Digit> {
        match self.state {
            State::Held { digit, .. } => Some(digit),
            State::Idle { .. } => None,
        }
    }

    /// Monitoring counters.
    pub fn stats(&self) -> InBandStats {
        self.stats
    }

    /// Drops buffered audio, state and undrained digits (e.g. on a stream change).
    pub fn reset(&mut self) {
        self.fill = 0;
        self.state = State::Idle {
            candidate: None,
            hits: 0,
        };
        self.out.clear();
    }

    fn feed<T: Copy>(&mut self, input: &[T], now: Instant, to_f32: impl Fn(T) -> f32) {
        let mut rest = input;
        while !rest.is_empty() {
            let take = (BLOCK_LEN - self.fill).min(rest.len());
            let (head, tail) = rest.split_at(take);
            if let Some(dst) = self.block.get_mut(self.fill..self.fill + take) {
                for (d, s) in dst.iter_mut().zip(head) {
                    *d = to_f32(*s);
                }
            }
            self.fill += take;
            rest = tail;
            if self.fill >= BLOCK_LEN {
                self.fill = 0;
                let verdict = self.classify_block();
                self.advance(verdict, now);
            }
        }
    }

    /// Goertzel energies and total power of the current block.
    fn analyse(&self) -> BlockAnalysis {
        let t = tables();
        let coef = t.coef;
        let mut s1 = [0f32; FILTERS];
        let mut s2 = [0f32; FILTERS];
        let mut energy = 0f32;
        for &x in &self.block {
            energy += x * x;
            // Fixed-size lanes: the compiler turns this into vector code.
            for k in 0..FILTERS {
                let s0 = x + coef[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        // |X|² from the Goertzel state, scaled to the power of a sine (A²/2).
        let scale = 2.0 / (BLOCK_LEN * BLOCK_LEN) as f32;
        let mut p = [0f32; FILTERS];
        for k in 0..FILTERS {
            p[k] = (s1[k] * s1[k] + s2[k] * s2[k] - coef[k] * s1[k] * s2[k]) * scale;
        }
        BlockAnalysis {
            row_power: [p[0], p[1], p[2], p[3]],
            col_power: [p[4], p[5], p[6], p[7]],
            col_harmonic_power: [p[8], p[9], p[10], p[11]],
            row_harmonic_power: [p[12], p[13], p[14], p[15]],
            total_power: energy / BLOCK_LEN as f32,
        }
    }

    fn classify_block(&mut self) -> Verdict {
        self.stats.blocks += 1;
        let a = self.analyse();
        let (row, pr) = strongest(&a.row_power);
        let (col, pc) = strongest(&a.col_power);
        let share = (pr + pc) / a.total_power.max(f32::MIN_POSITIVE);
        // Cheap gate: most blocks of speech, music and silence stop here.
        if pr < 0.5 * self.min_power || pc < 0.5 * self.min_power || share < HOLD_TONE_SHARE {
            return Verdict::None;
        }
        let (f_row, f_col) = (ROW_FREQS[row], COL_FREQS[col]);
        let m_row = self.measure_tone(row);
        let m_col = self.measure_tone(4 + col);
        let freq_ok = m_row.offset_hz.abs() <= FREQ_TOL_REL * f_row + FREQ_TOL_ABS
            && m_col.offset_hz.abs() <= FREQ_TOL_REL * f_col + FREQ_TOL_ABS;
        // For a tone within tolerance, undo the block filter's loss off its
        // centre frequency, so it measures like a nominal one.
        let (pr, pc) = if freq_ok {
            (
                pr / filter_gain(m_row.offset_hz),
                pc / filter_gain(m_col.offset_hz),
            )
        } else {
            (pr, pc)
        };
        let energy_ok = pr >= self.min_power
            && pc >= self.min_power
            && pr <= pc * self.max_low_over_high
            && pc <= pr * self.max_high_over_low;
        if !energy_ok {
            return Verdict::None;
        }
        let digit = KEYPAD[row][col];
        let corrected_share = (pr + pc) / a.total_power.max(f32::MIN_POSITIVE);
        let col_harmonic_ok = a.col_harmonic_power[col] <= pc * MAX_HARMONIC_RATIO;
        let row_harmonic_ok = (2.0 * f_row - f_col).abs() < ROW_HARMONIC_CLEARANCE_HZ
            || a.row_harmonic_power[row] <= pr * MAX_HARMONIC_RATIO;
        if freq_ok
            && m_row.steady
            && m_col.steady
            && corrected_share >= DETECT_TONE_SHARE
            && col_harmonic_ok
            && row_harmonic_ok
        {
            self.stats.valid_blocks += 1;
            Verdict::Valid(digit)
        } else {
            Verdict::Holds(digit)
        }
    }

    /// Measures tone `k` (0–7) in two Hann-windowed sub-windows: how far it
    /// is off nominal (from the phase advance between them) and whether its
    /// level is steady across the block.
    fn measure_tone(&self, k: usize) -> ToneMeasure {
        let t = tables();
        let (Some(cos), Some(sin), Some(&(rc, rs))) =
            (t.sub_cos.get(k), t.sub_sin.get(k), t.hop_rot.get(k))
        else {
            return ToneMeasure {
                offset_hz: f32::INFINITY,
                steady: false,
            };
        };
        let (mut ar, mut ai, mut br, mut bi) = (0f32, 0f32, 0f32, 0f32);
        let first = self.block.iter().take(SUB_LEN);
        let second = self.block.iter().skip(SUB_HOP);
        for (((xa, xb), c), s) in first.zip(second).zip(cos).zip(sin) {
            ar += xa * c;
            ai -= xa * s;
            br += xb * c;
            bi -= xb * s;
        }
        let pa = ar * ar + ai * ai;
        let pb = br * br + bi * bi;
        let steady = pa <= pb * MAX_SUBWINDOW_RATIO && pb <= pa * MAX_SUBWINDOW_RATIO;
        // z = Xb · conj(Xa): its angle is the phase advance over one hop.
        let zr = br * ar + bi * ai;
        let zi = bi * ar - br * ai;
        // Remove the advance a tone exactly on nominal would have.
        let ur = zr * rc + zi * rs;
        let ui = zi * rc - zr * rs;
        ToneMeasure {
            offset_hz: ui.atan2(ur) * SAMPLE_RATE as f32 / (2.0 * PI * SUB_HOP as f32),
            steady,
        }
    }

    fn advance(&mut self, verdict: Verdict, now: Instant) {
        self.state = match self.state {
            State::Idle { candidate, hits } => match verdict {
                Verdict::Valid(d) => {
                    let hits = if candidate == Some(d) { hits + 1 } else { 1 };
                    if hits >= BLOCKS_TO_DETECT {
                        self.emit(d, now);
                        State::Held {
                            digit: d,
                            misses: 0,
                            next: None,
                            next_hits: 0,
                        }
                    } else {
                        State::Idle {
                            candidate: Some(d),
                            hits,
                        }
                    }
                }
                Verdict::Holds(_) | Verdict::None => State::Idle {
                    candidate: None,
                    hits: 0,
                },
            },
            State::Held {
                digit,
                misses,
                next,
                next_hits,
            } => {
                let present =
                    matches!(verdict, Verdict::Valid(d) | Verdict::Holds(d) if d == digit);
                if present {
                    State::Held {
                        digit,
                        misses: 0,
                        next: None,
                        next_hits: 0,
                    }
                } else {
                    let (next, next_hits) = match verdict {
                        Verdict::Valid(d) if next == Some(d) => (next, next_hits.saturating_add(1)),
                        Verdict::Valid(d) => (Some(d), 1),
                        _ => (None, 0),
                    };
                    let misses = misses + 1;
                    if misses < BLOCKS_TO_RELEASE {
                        State::Held {
                            digit,
                            misses,
                            next,
                            next_hits,
                        }
                    } else {
                        // Released. A different key that has already been
                        // valid long enough (no pause between keys) is
                        // reported now.
                        match next {
                            Some(d) if next_hits >= BLOCKS_TO_DETECT => {
                                self.emit(d, now);
                                State::Held {
                                    digit: d,
                                    misses: 0,
                                    next: None,
                                    next_hits: 0,
                                }
                            }
                            _ => State::Idle {
                                candidate: next,
                                hits: next_hits,
                            },
                        }
                    }
                }
            }
        };
    }

    fn emit(&mut self, digit: Digit, now: Instant) {
        self.stats.digits += 1;
        self.out.push_back(DigitEvent {
            digit,
            source: DtmfSource::InBand,
            at: now,
        });
    }
}

/// What the sub-window analysis says about one tone.
#[derive(Clone, Copy, Debug)]
struct ToneMeasure {
    /// Measured minus nominal frequency.
    offset_hz: f32,
    /// Same level (±1.5 dB) in both sub-windows.
    steady: bool,
}

/// Power gain of a [`BLOCK_LEN`]-point Goertzel filter for a tone `offset_hz`
/// from its centre: sinc² of the offset in bins.
fn filter_gain(offset_hz: f32) -> f32 {
    let x =
        PI * offset_hz.abs().min(MAX_CORRECTED_OFFSET_HZ) * BLOCK_LEN as f32 / SAMPLE_RATE as f32;
    if x < 1e-4 {
        1.0
    } else {
        (x.sin() / x).powi(2)
    }
}

/// Index and value of the largest of four powers.
fn strongest(p: &[f32; 4]) -> (usize, f32) {
    let mut best = (0, p[0]);
    for (i, &v) in p.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

#[cfg(test)]
mod tests;

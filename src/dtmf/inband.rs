//! In-band DTMF receiver for 8 kHz linear audio, built to the ITU-T Q.24 /
//! ETSI ES 201 235-3 receiver limits.
//!
//! # Design
//! The analysis window is [`WINDOW_LEN`] samples (12.75 ms) and advances by
//! [`HOP_LEN`] (half a window, 6.4 ms). Goertzel filters run once per sample
//! over each half window; a window's complex filter outputs are the sum of
//! its two halves', so the overlap costs nothing. Per window:
//! - Goertzel filters on the eight DTMF frequencies and their second
//!   harmonics, and the total energy;
//! - the strongest low-group (row) and high-group (column) tones must each be
//!   above the minimum level, within the twist limits, and together hold most
//!   of the window's energy (speech and music spread theirs);
//! - the second harmonics must be weak (voices and instruments have
//!   harmonics, DTMF generators do not);
//! - both tones' frequencies are measured from the phase advance between two
//!   Hann-windowed sub-windows, and must lie within 2.5 % + 1 Hz of nominal:
//!   between the Q.24 "must accept" ±(1.5 % + 2 Hz) and "must reject" ±3.5 %,
//!   which a 102-point filter's bandwidth alone cannot separate;
//! - the tones must be steady: same level in both sub-windows, and the same
//!   measured frequencies as in the previous window (a voice or instrument
//!   matching a key glides; a keypad's oscillator does not).
//!
//! A digit is reported after [`WINDOWS_TO_DETECT`] consecutive windows that
//! pass every test (32 ms of tone). Any 40 ms tone contains four whole
//! windows; four consecutive windows span 255 samples, so a 20 ms tone (160
//! samples) fills at most 53 % of one of them, far below the share needed.
//! The digit is released after [`WINDOWS_TO_RELEASE`] consecutive windows
//! less than about half tone: a 40 ms pause makes at least six, a 20 ms pause
//! at most four. A held digit only needs the energy tests, so a window
//! straddling a short dropout does not split it. A new digit can only start
//! once the previous one is released.
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
/// Samples per analysis window (12.75 ms).
pub const WINDOW_LEN: usize = 102;
/// Samples between the starts of successive windows (6.4 ms).
pub const HOP_LEN: usize = WINDOW_LEN / 2;
/// Consecutive fully valid windows before a digit is reported.
pub const WINDOWS_TO_DETECT: u8 = 4;
/// Consecutive windows without the held digit before it is released.
pub const WINDOWS_TO_RELEASE: u8 = 5;

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
/// window's power for a held digit to continue. For a tone filling part of a
/// window the share is about the filled part (times up to 1.7 dB filter loss
/// for a tone at the tolerance edge): windows with more than ~40 samples of
/// pause fail, which a 20 ms pause causes in at most four consecutive windows
/// and a 40 ms pause in at least six.
const HOLD_TONE_SHARE: f32 = 0.5;

/// Share (after undoing the filter loss of an off-centre tone) needed for a
/// window to count towards a new digit. Clean tones measure 0.95–1; clipped
/// 0 dBm0 pairs and 15 dB SNR noise lower that a little.
const DETECT_TONE_SHARE: f32 = 0.8;

/// A window counting towards a new digit must hold steady tones: each tone's
/// power in the two sub-windows within this ratio (±3 dB).
const MAX_SUBWINDOW_RATIO: f32 = 2.0;

/// A tone's second harmonic must be this far (power ratio) below it (-12 dB).
const MAX_HARMONIC_RATIO: f32 = 0.063;

/// A row tone's second harmonic (1394–1882 Hz) is only checked when no
/// column tone is this close to it, as the column would leak into its filter.
const ROW_HARMONIC_CLEARANCE_HZ: f32 = 150.0;

/// The level correction for an off-centre tone covers offsets up to the
/// Q.24 must-accept tolerance, ±(1.5 % + 2 Hz), and no further: a larger
/// correction would mostly inflate the share of speech that happens to
/// straddle a key frequency.
const CORRECTED_OFFSET_REL: f32 = 0.015;
const CORRECTED_OFFSET_ABS: f32 = 2.0;

/// Before correction, the two tones must already hold this share of the
/// window (a tone at the tolerance edge loses up to 1.7 dB in the filter).
const DETECT_RAW_TONE_SHARE: f32 = 0.7;

/// Frequency acceptance: |deviation| ≤ 2.5 % of nominal + 1 Hz.
const FREQ_TOL_REL: f32 = 0.025;
const FREQ_TOL_ABS: f32 = 1.0;

/// Sub-window length and hop for the frequency measurement; the two
/// sub-windows cover the window. A 38-sample hop measures offsets up to
/// ±105 Hz unambiguously, beyond the passband of the window filters.
const SUB_LEN: usize = 64;
const SUB_HOP: usize = WINDOW_LEN - SUB_LEN;

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
    /// Also detect the fourth-column keys A–D (default false). Telephones
    /// have no such keys and the auto attendant has no use for them, while
    /// the 1633 Hz column is where voices most often imitate a key.
    pub extended_keys: bool,
}

impl Default for InBandSettings {
    fn default() -> Self {
        InBandSettings {
            enabled: true,
            min_level_dbm0: -42.0,
            max_low_louder_db: 10.0,
            max_high_louder_db: 6.0,
            extended_keys: false,
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
    /// cos(ω) and sin(ω), to turn the Goertzel state into a complex output.
    cos_w: [f32; FILTERS],
    sin_w: [f32; FILTERS],
    /// e^{-jω·HOP_LEN}: aligns the second half's output with the first's.
    half_rot: [(f32, f32); FILTERS],
    /// Hann-windowed cos/sin of the 8 DTMF frequencies over a sub-window.
    sub_cos: [[f32; SUB_LEN]; 8],
    sub_sin: [[f32; SUB_LEN]; 8],
    /// cos/sin of the expected phase advance over one hop.
    hop_rot: [(f32, f32); 8],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut freqs = [0f32; FILTERS];
        for (i, f) in ROW_FREQS.iter().chain(COL_FREQS.iter()).enumerate() {
            freqs[i] = *f;
        }
        for (i, f) in COL_FREQS.iter().chain(ROW_FREQS.iter()).enumerate() {
            freqs[HARMONIC_BASE + i] = 2.0 * f;
        }
        let mut t = Tables {
            coef: [0.0; FILTERS],
            cos_w: [0.0; FILTERS],
            sin_w: [0.0; FILTERS],
            half_rot: [(0.0, 0.0); FILTERS],
            sub_cos: [[0.0; SUB_LEN]; 8],
            sub_sin: [[0.0; SUB_LEN]; 8],
            hop_rot: [(0.0, 0.0); 8],
        };
        for (k, f) in freqs.iter().enumerate() {
            let w = 2.0 * std::f64::consts::PI * f64::from(*f) / f64::from(SAMPLE_RATE);
            t.coef[k] = (2.0 * w.cos()) as f32;
            t.cos_w[k] = w.cos() as f32;
            t.sin_w[k] = w.sin() as f32;
            let h = w * HOP_LEN as f64;
            t.half_rot[k] = (h.cos() as f32, -h.sin() as f32);
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

/// Per-window measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct WindowAnalysis {
    /// Estimated power of each row tone, in the units of `total_power`.
    row_power: [f32; 4],
    /// Estimated power of each column tone.
    col_power: [f32; 4],
    /// Estimated power at each column tone's second harmonic.
    col_harmonic_power: [f32; 4],
    /// Estimated power at each row tone's second harmonic.
    row_harmonic_power: [f32; 4],
    /// Mean power of the window (mean square sample value).
    total_power: f32,
}

/// What one window says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    /// Nothing DTMF-like.
    None,
    /// Passes the energy tests only: enough to hold a digit already detected.
    Holds(Digit),
    /// Passes every test: counts towards detecting a new digit.
    Valid {
        digit: Digit,
        /// Measured row and column offsets from nominal, Hz.
        offsets: [f32; 2],
    },
}

/// A run of consecutive valid windows for one key.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    digit: Digit,
    /// Offsets measured in the run's first window.
    first: [f32; 2],
    /// Offsets measured in the run's last window.
    offsets: [f32; 2],
    windows: u8,
}

/// Frequencies of a real key press are crystal-steady; a voice or an
/// instrument that happens to match a key drifts.
/// Consecutive valid windows must agree to within this many Hz plus
/// [`STEADY_REL`] of nominal.
const STEADY_ABS_HZ: f32 = 300.0;
const STEADY_REL: f32 = 0.005;

impl Run {
    /// The run after one more window.
    fn extend(run: Option<Run>, verdict: Verdict) -> Option<Run> {
        let Verdict::Valid { digit, offsets } = verdict else {
            return None;
        };
        match run {
            Some(r) if r.digit == digit && r.steady_with(offsets) => Some(Run {
                offsets,
                windows: r.windows.saturating_add(1),
                ..r
            }),
            _ => Some(Run {
                digit,
                first: offsets,
                offsets,
                windows: 1,
            }),
        }
    }

    /// Whether a window's offsets agree with both the run's last window and
    /// its first (a slow glide passes the first test, not the second).
    fn steady_with(&self, offsets: [f32; 2]) -> bool {
        let (row, col) = digit_frequencies(self.digit);
        let close = |a: [f32; 2]| {
            (a[0] - offsets[0]).abs() <= STEADY_ABS_HZ + STEADY_REL * row
                && (a[1] - offsets[1]).abs() <= STEADY_ABS_HZ + STEADY_REL * col
        };
        close(self.offsets) && close(self.first)
    }

    fn complete(run: Option<Run>) -> Option<Digit> {
        run.filter(|r| r.windows >= WINDOWS_TO_DETECT)
            .map(|r| r.digit)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// No digit held; `run` counts the valid windows so far.
    Idle { run: Option<Run> },
    /// `digit` was reported and is still sounding (missing for `misses`
    /// windows). A different key valid meanwhile is tracked as `next`.
    Held {
        digit: Digit,
        misses: u8,
        next: Option<Run>,
    },
}

/// Counters for monitoring; they never affect detection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InBandStats {
    /// Windows analysed.
    pub windows: u64,
    /// Windows that passed every test.
    pub valid_windows: u64,
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
    /// The current window: previous half, then the half being filled.
    window: [f32; WINDOW_LEN],
    /// Samples in the half being filled.
    fill: usize,
    /// Goertzel state over the half being filled.
    s1: [f32; FILTERS],
    s2: [f32; FILTERS],
    energy: f32,
    /// Complex filter outputs and energy of the previous half, once there is one.
    prev_half: Option<HalfOutput>,
    min_power: f32,
    extended_keys: bool,
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
        // Warm the shared tables here rather than on the first window.
        let _ = tables();
        InBandDetector {
            window: [0.0; WINDOW_LEN],
            fill: 0,
            s1: [0.0; FILTERS],
            s2: [0.0; FILTERS],
            energy: 0.0,
            prev_half: None,
            min_power: DBM0_REF_POWER * db_to_power_ratio(settings.min_level_dbm0),
            extended_keys: settings.extended_keys,
            max_low_over_high: db_to_power_ratio(settings.max_low_louder_db),
            max_high_over_low: db_to_power_ratio(settings.max_high_louder_db),
            state: State::Idle { run: None },
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
        self.s1 = [0.0; FILTERS];
        self.s2 = [0.0; FILTERS];
        self.energy = 0.0;
        self.prev_half = None;
        self.state = State::Idle { run: None };
        self.out.clear();
    }

    fn feed<T: Copy>(&mut self, input: &[T], now: Instant, to_f32: impl Fn(T) -> f32) {
        let coef = tables().coef;
        let mut rest = input;
        while !rest.is_empty() {
            let take = (HOP_LEN - self.fill).min(rest.len());
            let (head, tail) = rest.split_at(take);
            let start = HOP_LEN + self.fill;
            // Locals so the filter loop stays in registers and vectorises.
            let (mut s1, mut s2, mut energy) = (self.s1, self.s2, self.energy);
            if let Some(dst) = self.window.get_mut(start..start + take) {
                for (d, raw) in dst.iter_mut().zip(head) {
                    let x = to_f32(*raw);
                    *d = x;
                    energy += x * x;
                    for k in 0..FILTERS {
                        let s0 = x + coef[k] * s1[k] - s2[k];
                        s2[k] = s1[k];
                        s1[k] = s0;
                    }
                }
            }
            (self.s1, self.s2, self.energy) = (s1, s2, energy);
            self.fill += take;
            rest = tail;
            if self.fill >= HOP_LEN {
                self.finish_half(now);
            }
        }
    }

    /// Closes the half being filled: analyses the window it completes, then
    /// makes it the first half of the next window.
    fn finish_half(&mut self, now: Instant) {
        let t = tables();
        let mut half = HalfOutput {
            re: [0.0; FILTERS],
            im: [0.0; FILTERS],
            energy: self.energy,
        };
        for k in 0..FILTERS {
            // y = s1 − e^{−jω}·s2 is the half's DFT times a fixed phase factor.
            half.re[k] = self.s1[k] - t.cos_w[k] * self.s2[k];
            half.im[k] = t.sin_w[k] * self.s2[k];
        }
        if let Some(prev) = self.prev_half {
            let a = analyse_window(&prev, &half);
            let verdict = self.classify(&a);
            self.advance(verdict, now);
        }
        self.prev_half = Some(half);
        self.window.copy_within(HOP_LEN.., 0);
        self.s1 = [0.0; FILTERS];
        self.s2 = [0.0; FILTERS];
        self.energy = 0.0;
        self.fill = 0;
    }

    fn classify(&mut self, a: &WindowAnalysis) -> Verdict {
        self.stats.windows += 1;
        let (row, pr) = strongest(&a.row_power);
        let (col, pc) = strongest(&a.col_power);
        let share = (pr + pc) / a.total_power.max(f32::MIN_POSITIVE);
        // Cheap gate: most windows of speech, music and silence stop here.
        if pr < 0.5 * self.min_power || pc < 0.5 * self.min_power || share < HOLD_TONE_SHARE {
            return Verdict::None;
        }
        let (f_row, f_col) = (ROW_FREQS[row], COL_FREQS[col]);
        let m_row = self.measure_tone(row);
        let m_col = self.measure_tone(4 + col);
        let freq_ok = m_row.offset_hz.abs() <= FREQ_TOL_REL * f_row + FREQ_TOL_ABS
            && m_col.offset_hz.abs() <= FREQ_TOL_REL * f_col + FREQ_TOL_ABS;
        // For a tone within tolerance, undo the window filter's loss off its
        // centre frequency, so it measures like a nominal one.
        let (pr, pc) = if freq_ok {
            (
                pr / filter_gain(m_row.offset_hz, f_row),
                pc / filter_gain(m_col.offset_hz, f_col),
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
        if !self.extended_keys && col == 3 {
            return Verdict::None;
        }
        let corrected_share = (pr + pc) / a.total_power.max(f32::MIN_POSITIVE);
        let col_harmonic_ok = a.col_harmonic_power[col] <= pc * MAX_HARMONIC_RATIO;
        let row_harmonic_ok = (2.0 * f_row - f_col).abs() < ROW_HARMONIC_CLEARANCE_HZ
            || a.row_harmonic_power[row] <= pr * MAX_HARMONIC_RATIO;
        if freq_ok
            && m_row.steady
            && m_col.steady
            && corrected_share >= DETECT_TONE_SHARE
            && share >= DETECT_RAW_TONE_SHARE
            && col_harmonic_ok
            && row_harmonic_ok
        {
            self.stats.valid_windows += 1;
            Verdict::Valid {
                digit,
                offsets: [m_row.offset_hz, m_col.offset_hz],
            }
        } else {
            Verdict::Holds(digit)
        }
    }

    /// Measures tone `k` (0–7) in two Hann-windowed sub-windows: how far it
    /// is off nominal (from the phase advance between them) and whether its
    /// level is steady across the window.
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
        let first = self.window.iter().take(SUB_LEN);
        let second = self.window.iter().skip(SUB_HOP);
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
            State::Idle { run } => {
                let run = Run::extend(run, verdict);
                match Run::complete(run) {
                    Some(d) => self.start_digit(d, now),
                    None => State::Idle { run },
                }
            }
            State::Held {
                digit,
                misses,
                next,
            } => {
                let present = match verdict {
                    Verdict::Valid { digit: d, .. } | Verdict::Holds(d) => d == digit,
                    Verdict::None => false,
                };
                if present {
                    State::Held {
                        digit,
                        misses: 0,
                        next: None,
                    }
                } else {
                    let next = Run::extend(next, verdict);
                    let misses = misses + 1;
                    if misses < WINDOWS_TO_RELEASE {
                        State::Held {
                            digit,
                            misses,
                            next,
                        }
                    } else {
                        // Released. A different key already valid long
                        // enough (no pause between keys) is reported now.
                        match Run::complete(next) {
                            Some(d) => self.start_digit(d, now),
                            None => State::Idle { run: next },
                        }
                    }
                }
            }
        };
    }

    fn start_digit(&mut self, digit: Digit, now: Instant) -> State {
        self.emit(digit, now);
        State::Held {
            digit,
            misses: 0,
            next: None,
        }
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

/// Complex Goertzel outputs of one half window.
#[derive(Clone, Copy, Debug)]
struct HalfOutput {
    re: [f32; FILTERS],
    im: [f32; FILTERS],
    energy: f32,
}

/// Tone powers of the window made of halves `a` then `b`:
/// X = Y_a + e^{−jω·HOP_LEN}·Y_b, scaled to the power of a sine (A²/2).
fn analyse_window(a: &HalfOutput, b: &HalfOutput) -> WindowAnalysis {
    let t = tables();
    let scale = 2.0 / (WINDOW_LEN * WINDOW_LEN) as f32;
    let mut p = [0f32; FILTERS];
    for (k, out) in p.iter_mut().enumerate() {
        let (c, s) = t.half_rot[k];
        let re = a.re[k] + b.re[k] * c - b.im[k] * s;
        let im = a.im[k] + b.re[k] * s + b.im[k] * c;
        *out = (re * re + im * im) * scale;
    }
    WindowAnalysis {
        row_power: [p[0], p[1], p[2], p[3]],
        col_power: [p[4], p[5], p[6], p[7]],
        col_harmonic_power: [p[8], p[9], p[10], p[11]],
        row_harmonic_power: [p[12], p[13], p[14], p[15]],
        total_power: (a.energy + b.energy) / WINDOW_LEN as f32,
    }
}

/// What the sub-window analysis says about one tone.
#[derive(Clone, Copy, Debug)]
struct ToneMeasure {
    /// Measured minus nominal frequency.
    offset_hz: f32,
    /// Same level (±3 dB) in both sub-windows.
    steady: bool,
}

/// Power gain of a [`WINDOW_LEN`]-point Goertzel filter for a tone `offset_hz`
/// from its centre: sinc² of the offset in bins.
fn filter_gain(offset_hz: f32, nominal: f32) -> f32 {
    let limit = CORRECTED_OFFSET_REL * nominal + CORRECTED_OFFSET_ABS;
    let x = PI * offset_hz.abs().min(limit) * WINDOW_LEN as f32 / SAMPLE_RATE as f32;
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

//! Join and leave tones of the embedded bridge.
//!
//! Join: one 440 Hz tone of 200 ms. Leave: 660 Hz then 440 Hz, 100 ms each
//! (descending). About −18 dBov, with 5 ms ramps so they do not click.
//! The waveforms are computed once per process and shared by every room.

use std::sync::OnceLock;

use super::jitter::FRAME_SAMPLES;

const RATE: f64 = 8000.0;
const AMPLITUDE: f64 = 4000.0;
const RAMP: usize = 40;

/// A tone the bridge plays to a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Someone joined.
    Join,
    /// Someone left.
    Leave,
}

impl Tone {
    /// The tone's linear samples at 8 kHz; the length is a whole number of
    /// 20 ms frames.
    pub fn samples(self) -> &'static [i16] {
        static JOIN: OnceLock<Box<[i16]>> = OnceLock::new();
        static LEAVE: OnceLock<Box<[i16]>> = OnceLock::new();
        match self {
            Tone::Join => JOIN.get_or_init(|| render(&[(440.0, 10)])),
            Tone::Leave => LEAVE.get_or_init(|| render(&[(660.0, 5), (440.0, 5)])),
        }
    }
}

/// Concatenates `(frequency, frames)` segments, each ramped in and out.
fn render(segments: &[(f64, usize)]) -> Box<[i16]> {
    let mut out = Vec::new();
    for &(freq, frames) in segments {
        let n = frames * FRAME_SAMPLES;
        out.extend((0..n).map(|i| {
            let edge = i.min(n - 1 - i);
            let gain = if edge < RAMP {
                edge as f64 / RAMP as f64
            } else {
                1.0
            };
            let phase = 2.0 * std::f64::consts::PI * freq * i as f64 / RATE;
            (AMPLITUDE * gain * phase.sin()).round() as i16
        }));
    }
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tones_are_whole_frames_and_quiet_at_the_edges() {
        for t in [Tone::Join, Tone::Leave] {
            let s = t.samples();
            assert_eq!(s.len(), 10 * FRAME_SAMPLES);
            assert_eq!(s[0], 0);
            assert!(s.last().unwrap().abs() < 200);
            assert!(s.iter().map(|x| x.abs()).max().unwrap() <= 4000);
        }
    }
}

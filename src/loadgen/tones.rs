//! G.711 µ-law DTMF tones for in-band digit sending (ITU-T Q.23 pairs).
//!
//! Each key's 80 ms tone is precomputed once as four 20 ms frames, so the
//! send path only copies bytes.

use crate::dtmf::inband::digit_frequencies;
use crate::dtmf::Digit;
use crate::media::g711::ulaw_encode;
use crate::media::rtp::FRAME_BYTES;

/// Frames in one tone burst (80 ms at 20 ms per frame).
pub const TONE_FRAMES: usize = 4;
/// Peak amplitude of each of the two sines (16-bit linear), about
/// -9 dBm0 per tone: well inside Q.24's accepted level range.
const AMPLITUDE: f32 = 7000.0;
/// µ-law code of silence.
pub const ULAW_SILENCE: u8 = 0xFF;

/// µ-law frames of every key's tone.
#[derive(Clone, Debug)]
pub struct ToneTable {
    frames: Vec<[[u8; FRAME_BYTES]; TONE_FRAMES]>,
}

impl Default for ToneTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneTable {
    /// Synthesises the sixteen keys.
    pub fn new() -> Self {
        let frames = Digit::ALL
            .iter()
            .map(|&d| {
                let (low, high) = digit_frequencies(d);
                let mut out = [[ULAW_SILENCE; FRAME_BYTES]; TONE_FRAMES];
                for (f, frame) in out.iter_mut().enumerate() {
                    for (i, byte) in frame.iter_mut().enumerate() {
                        let n = (f * FRAME_BYTES + i) as f32;
                        let t = n / 8000.0;
                        let s = AMPLITUDE * (2.0 * std::f32::consts::PI * low * t).sin()
                            + AMPLITUDE * (2.0 * std::f32::consts::PI * high * t).sin();
                        *byte = ulaw_encode(s as i16);
                    }
                }
                out
            })
            .collect();
        ToneTable { frames }
    }

    /// Frame `index` (0..4) of a key's tone; silence past the end.
    pub fn frame(&self, digit: Digit, index: usize) -> &[u8; FRAME_BYTES] {
        static SILENCE: [u8; FRAME_BYTES] = [ULAW_SILENCE; FRAME_BYTES];
        self.frames
            .get(digit.event_code() as usize)
            .and_then(|f| f.get(index))
            .unwrap_or(&SILENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::inband::{InBandDetector, InBandSettings};
    use crate::media::g711::Law;
    use std::time::{Duration, Instant};

    #[test]
    fn detector_hears_every_key() {
        let table = ToneTable::new();
        let t0 = Instant::now();
        for &d in &Digit::ALL {
            let settings = InBandSettings {
                extended_keys: true,
                ..InBandSettings::default()
            };
            let mut det = InBandDetector::new(&settings);
            let mut t = t0;
            let silence = [ULAW_SILENCE; FRAME_BYTES];
            for i in 0..TONE_FRAMES {
                det.handle_g711(Law::Mu, table.frame(d, i), t);
                t += Duration::from_millis(20);
            }
            for _ in 0..TONE_FRAMES {
                det.handle_g711(Law::Mu, &silence, t);
                t += Duration::from_millis(20);
            }
            let got = det.poll_digit().map(|e| e.digit);
            assert_eq!(got, Some(d));
        }
    }
}

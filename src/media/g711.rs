//! ITU-T G.711 μ-law and A-law companding.
//!
//! Written by hand: the algorithm is a few lines, and 256-entry decode
//! tables plus a branch-light encoder beat a dependency on the hot path.

/// Decode table for μ-law, built at compile time.
static ULAW_DECODE: [i16; 256] = build_ulaw_table();
/// Decode table for A-law, built at compile time.
static ALAW_DECODE: [i16; 256] = build_alaw_table();

const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
}

/// Decodes one μ-law byte to 16-bit linear PCM.
#[inline]
pub fn ulaw_decode(u: u8) -> i16 {
    ULAW_DECODE[usize::from(u)]
}

/// Decodes one A-law byte to 16-bit linear PCM.
#[inline]
pub fn alaw_decode(a: u8) -> i16 {
    ALAW_DECODE[usize::from(a)]
}

/// Encodes one 16-bit linear PCM sample as μ-law (G.711 §2, bias 0x84, clip 32635).
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let s = i32::from(sample);
    let (sign, mag) = if s < 0 { (0x80u8, -s) } else { (0u8, s) };
    let mag = mag.min(CLIP) + BIAS;
    // Position of the highest set bit above bit 7 gives the segment.
    let exponent = (31 - (mag as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = ((mag >> (exponent + 3)) & 0x0f) as u8;
    !(sign | ((exponent as u8) << 4) | mantissa)
}

/// Encodes one 16-bit linear PCM sample as A-law (G.711 §3).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (sign, mag) = if s >= 0 { (0x80u8, s) } else { (0u8, -s - 1) };
    let mag = mag.min(0x7fff);
    let byte = if mag < 256 {
        (mag >> 4) as u8
    } else {
        let exponent = (31 - (mag as u32).leading_zeros() as i32 - 7).clamp(1, 7);
        let mantissa = ((mag >> (exponent + 3)) & 0x0f) as u8;
        ((exponent as u8) << 4) | mantissa
    };
    (sign | byte) ^ 0x55
}

/// The G.711 variant negotiated for a stream (RFC 3551 static payload types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// PCMU, payload type 0.
    Mu,
    /// PCMA, payload type 8.
    A,
}

impl Law {
    /// RTP static payload type (RFC 3551 §6).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    /// Encodes `pcm` into `out` (same length).
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        match self {
            Law::Mu => pcm.iter().zip(out).for_each(|(s, o)| *o = ulaw_encode(*s)),
            Law::A => pcm.iter().zip(out).for_each(|(s, o)| *o = alaw_encode(*s)),
        }
    }

    /// Decodes `coded` into `out` (same length).
    pub fn decode(self, coded: &[u8], out: &mut [i16]) {
        match self {
            Law::Mu => coded
                .iter()
                .zip(out)
                .for_each(|(c, o)| *o = ulaw_decode(*c)),
            Law::A => coded
                .iter()
                .zip(out)
                .for_each(|(c, o)| *o = alaw_decode(*c)),
        }
    }

    /// The code for digital silence.
    pub fn silence(self) -> u8 {
        match self {
            Law::Mu => 0xff,
            Law::A => 0xd5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            let u = ulaw_decode(c);
            // 0x7f and 0xff both decode to zero (positive/negative zero).
            let back = ulaw_encode(u);
            assert_eq!(ulaw_decode(back), u, "ulaw code {c:#x}");
            let a = alaw_decode(c);
            assert_eq!(alaw_encode(a), c, "alaw code {c:#x}");
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn encode_is_monotonic_and_close() {
        for s in (-32000i32..32000).step_by(7) {
            let s = s as i16;
            let err_u = (i32::from(ulaw_decode(ulaw_encode(s))) - i32::from(s)).abs();
            let err_a = (i32::from(alaw_decode(alaw_encode(s))) - i32::from(s)).abs();
            // Quantisation step is at most 1/16 of the segment: < 3.2% of magnitude + small floor.
            let bound = i32::from(s).abs() / 16 + 16;
            assert!(err_u <= bound, "ulaw {s}: err {err_u}");
            assert!(err_a <= bound, "alaw {s}: err {err_a}");
        }
    }
}

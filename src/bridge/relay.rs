//! Sans-IO RTP relay between the two legs of a relayed bridge call: the
//! caller's leg and the gateway's call to an external meeting bridge.
//!
//! The shell receives a packet on one leg's socket, hands it to
//! [`Relay::forward`] with a buffer, and sends what comes back on the other
//! leg's socket. Nothing is allocated per packet.
//!
//! Both legs carry the same G.711 law (the offer to the bridge names only
//! the caller's codec), so payloads pass unchanged (RFC 3550 §7.1: a
//! translator that does not change the payload may keep SSRC, sequence
//! number and timestamp). What is rewritten, and why:
//! - the payload type, where the legs numbered audio or telephone-event
//!   (RFC 4733) differently;
//! - SSRC, sequence number and timestamp, only once a leg's source changes
//!   its SSRC (a re-INVITE to another media server, a transfer behind the
//!   bridge): the far side then keeps seeing one continuous stream, with
//!   the marker bit set on the first packet after the change.
//!
//! Packets of other payload types (comfort noise, codecs not negotiated)
//! and packets that are not RTP version 2 are dropped and counted.

use thiserror::Error;

use crate::media::rtp::Ssrc;
use crate::sip::sdp::{Codec, Negotiated};

/// Fixed RTP header length (RFC 3550 §5.1).
const HEADER: usize = 12;

/// Samples per 20 ms packet at 8 kHz, the timestamp step assumed across a
/// source change.
const STEP_SAMPLES: u32 = 160;

/// The payload numbers one leg negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegPayloads {
    /// The G.711 law.
    pub codec: Codec,
    /// Its payload type on this leg.
    pub audio_pt: u8,
    /// telephone-event payload type on this leg, when negotiated.
    pub event_pt: Option<u8>,
}

impl LegPayloads {
    /// Takes the numbers from a leg's offer/answer result.
    pub fn from_negotiated(n: &Negotiated) -> Self {
        LegPayloads {
            codec: n.codec,
            audio_pt: n.payload_type,
            event_pt: n.telephone_event.as_ref().map(|t| t.payload_type),
        }
    }
}

/// One of the two legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// The caller's leg.
    Caller,
    /// The leg to the meeting bridge.
    Bridge,
}

/// Why the relay cannot be set up.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RelaySetupError {
    /// The legs use different G.711 laws; the relay does not transcode.
    #[error("the legs negotiated different codecs ({0:?} and {1:?})")]
    CodecMismatch(Codec, Codec),
}

/// Why a packet was not forwarded.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RelayDrop {
    /// Shorter than its header, or not RTP version 2.
    #[error("not an RTP packet")]
    NotRtp,
    /// A payload type the other leg did not negotiate (or CN).
    #[error("payload type {0} not relayed")]
    PayloadType(u8),
    /// A late packet of a source that was replaced.
    #[error("packet from a replaced source")]
    StaleSource,
    /// The caller's buffer is smaller than the packet.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Packets forwarded.
    pub forwarded: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Source (SSRC) changes absorbed by rewriting.
    pub source_changes: u64,
}

/// The rewrite state of one direction.
#[derive(Clone, Debug)]
struct Direction {
    from: LegPayloads,
    to: LegPayloads,
    /// The SSRC currently received.
    source: Option<u32>,
    /// The SSRC replaced by `source`, whose late packets are dropped.
    previous: Option<u32>,
    /// Outgoing SSRC: the first source's.
    out_ssrc: u32,
    /// Added (wrapping) to the received sequence number / timestamp.
    seq_offset: u16,
    ts_offset: u32,
    /// Last sequence number / timestamp sent, to continue across a change.
    last_seq: u16,
    last_ts: u32,
    /// Set the marker on the next packet (first after a source change).
    mark_next: bool,
    stats: DirectionStats,
}

impl Direction {
    fn new(from: LegPayloads, to: LegPayloads) -> Self {
        Direction {
            from,
            to,
            source: None,
            previous: None,
            out_ssrc: 0,
            seq_offset: 0,
            ts_offset: 0,
            last_seq: 0,
            last_ts: 0,
            mark_next: false,
            stats: DirectionStats::default(),
        }
    }

    fn forward(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, RelayDrop> {
        let result = self.rewrite(packet, out);
        match result {
            Ok(_) => self.stats.forwarded += 1,
            Err(_) => self.stats.dropped += 1,
        }
        result
    }

    #[inline]
    fn rewrite(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, RelayDrop> {
        let Some(head) = packet.first_chunk::<HEADER>() else {
            return Err(RelayDrop::NotRtp);
        };
        if head[0] >> 6 != 2 {
            return Err(RelayDrop::NotRtp);
        }
        let csrc_len = usize::from(head[0] & 0x0f) * 4;
        if packet.len() < HEADER + csrc_len {
            return Err(RelayDrop::NotRtp);
        }
        let marker = head[1] & 0x80;
        let pt = head[1] & 0x7f;
        let out_pt = if pt == self.from.audio_pt {
            self.to.audio_pt
        } else if Some(pt) == self.from.event_pt {
            self.to.event_pt.ok_or(RelayDrop::PayloadType(pt))?
        } else {
            return Err(RelayDrop::PayloadType(pt));
        };
        let seq = u16::from_be_bytes([head[2], head[3]]);
        let ts = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let ssrc = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        match self.source {
            None => {
                self.source = Some(ssrc);
                self.out_ssrc = ssrc;
            }
            Some(s) if s == ssrc => {}
            Some(_) if self.previous == Some(ssrc) => return Err(RelayDrop::StaleSource),
            Some(s) => {
                // A new source: continue the outgoing stream where it was.
                self.previous = Some(s);
                self.source = Some(ssrc);
                self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_offset = self.last_ts.wrapping_add(STEP_SAMPLES).wrapping_sub(ts);
                self.mark_next = true;
                self.stats.source_changes += 1;
            }
        }
        let Some(dst) = out.get_mut(..packet.len()) else {
            return Err(RelayDrop::BufferTooSmall);
        };
        dst.copy_from_slice(packet);
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        let marker = if self.mark_next { 0x80 } else { marker };
        self.mark_next = false;
        if let Some(h) = dst.first_chunk_mut::<HEADER>() {
            h[1] = marker | out_pt;
            h[2..4].copy_from_slice(&out_seq.to_be_bytes());
            h[4..8].copy_from_slice(&out_ts.to_be_bytes());
            h[8..12].copy_from_slice(&self.out_ssrc.to_be_bytes());
        }
        // Sequence numbers only move forward for continuation; a
        // reordered packet must not pull the base back.
        if self.stats.forwarded == 0 || seq_newer(out_seq, self.last_seq) {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
        }
        Ok(packet.len())
    }
}

/// RFC 3550 Appendix A.1 style comparison with wrap-around.
#[inline]
fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// The relay of one bridge call. See the module documentation.
#[derive(Clone, Debug)]
pub struct Relay {
    to_bridge: Direction,
    to_caller: Direction,
}

impl Relay {
    /// Sets up the relay from the payload numbers of both legs.
    pub fn new(caller: LegPayloads, bridge: LegPayloads) -> Result<Self, RelaySetupError> {
        if caller.codec != bridge.codec {
            return Err(RelaySetupError::CodecMismatch(caller.codec, bridge.codec));
        }
        Ok(Relay {
            to_bridge: Direction::new(caller, bridge),
            to_caller: Direction::new(bridge, caller),
        })
    }

    /// A leg renegotiated (re-INVITE): new payload numbers for it. The
    /// codec must stay the one the other leg uses.
    pub fn renegotiate(&mut self, leg: Leg, payloads: LegPayloads) -> Result<(), RelaySetupError> {
        let other = match leg {
            Leg::Caller => self.to_caller.to,
            Leg::Bridge => self.to_bridge.to,
        };
        if payloads.codec != other.codec {
            return Err(RelaySetupError::CodecMismatch(payloads.codec, other.codec));
        }
        match leg {
            Leg::Caller => {
                self.to_bridge.from = payloads;
                self.to_caller.to = payloads;
            }
            Leg::Bridge => {
                self.to_caller.from = payloads;
                self.to_bridge.to = payloads;
            }
        }
        Ok(())
    }

    /// A packet received on leg `from`: writes the packet to send on the
    /// other leg into `out` and returns its length.
    #[inline]
    pub fn forward(
        &mut self,
        from: Leg,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RelayDrop> {
        match from {
            Leg::Caller => self.to_bridge.forward(packet, out),
            Leg::Bridge => self.to_caller.forward(packet, out),
        }
    }

    /// Counters of the packets received on leg `from`.
    pub fn stats(&self, from: Leg) -> DirectionStats {
        match from {
            Leg::Caller => self.to_bridge.stats,
            Leg::Bridge => self.to_caller.stats,
        }
    }

    /// The SSRC the other leg sees for packets received on `from`, once
    /// one arrived.
    pub fn outgoing_ssrc(&self, from: Leg) -> Option<Ssrc> {
        let d = match from {
            Leg::Caller => &self.to_bridge,
            Leg::Bridge => &self.to_caller,
        };
        d.source.map(|_| Ssrc(d.out_ssrc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn fields(p: &[u8]) -> (u8, bool, u16, u32, u32) {
        (
            p[1] & 0x7f,
            p[1] & 0x80 != 0,
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        )
    }

    fn legs(caller_event: Option<u8>, bridge_event: Option<u8>) -> Relay {
        Relay::new(
            LegPayloads {
                codec: Codec::Pcmu,
                audio_pt: 0,
                event_pt: caller_event,
            },
            LegPayloads {
                codec: Codec::Pcmu,
                audio_pt: 0,
                event_pt: bridge_event,
            },
        )
        .unwrap()
    }

    #[test]
    fn audio_passes_unchanged() {
        let mut r = legs(Some(101), Some(101));
        let mut out = [0u8; 1500];
        let p = pkt(0, true, 7, 1000, 0xabcd, &[0xff; 160]);
        let n = r.forward(Leg::Caller, &p, &mut out).unwrap();
        assert_eq!(&out[..n], &p[..]);
        let p = pkt(0, false, 9, 2000, 0x1234, &[0x55; 160]);
        let n = r.forward(Leg::Bridge, &p, &mut out).unwrap();
        assert_eq!(&out[..n], &p[..]);
        assert_eq!(r.stats(Leg::Caller).forwarded, 1);
        assert_eq!(r.outgoing_ssrc(Leg::Bridge), Some(Ssrc(0x1234)));
    }

    #[test]
    fn telephone_event_payload_type_is_renumbered_both_ways() {
        let mut r = legs(Some(101), Some(96));
        let mut out = [0u8; 64];
        let ev = pkt(101, true, 1, 160, 5, &[1, 0x8a, 0, 160]);
        let n = r.forward(Leg::Caller, &ev, &mut out).unwrap();
        assert_eq!(fields(&out[..n]), (96, true, 1, 160, 5));
        assert_eq!(&out[12..n], &[1, 0x8a, 0, 160]);
        let ev = pkt(96, false, 3, 480, 6, &[2, 0x0a, 0, 80]);
        let n = r.forward(Leg::Bridge, &ev, &mut out).unwrap();
        assert_eq!(fields(&out[..n]).0, 101);
    }

    #[test]
    fn events_the_other_leg_lacks_and_other_types_are_dropped() {
        let mut r = legs(Some(101), None);
        let mut out = [0u8; 64];
        let ev = pkt(101, false, 1, 0, 5, &[1, 0, 0, 0]);
        assert_eq!(
            r.forward(Leg::Caller, &ev, &mut out),
            Err(RelayDrop::PayloadType(101))
        );
        let cn = pkt(13, false, 1, 0, 5, &[40]);
        assert_eq!(
            r.forward(Leg::Caller, &cn, &mut out),
            Err(RelayDrop::PayloadType(13))
        );
        assert_eq!(
            r.forward(Leg::Caller, &[0x80, 0], &mut out),
            Err(RelayDrop::NotRtp)
        );
        assert_eq!(
            r.forward(Leg::Caller, &[0u8; 20], &mut out),
            Err(RelayDrop::NotRtp)
        );
        let mut csrc = pkt(0, false, 1, 0, 5, &[]);
        csrc[0] = 0x83; // three CSRCs announced, none present
        assert_eq!(
            r.forward(Leg::Caller, &csrc, &mut out),
            Err(RelayDrop::NotRtp)
        );
        let big = pkt(0, false, 1, 0, 5, &[0; 100]);
        assert_eq!(
            r.forward(Leg::Caller, &big, &mut out),
            Err(RelayDrop::BufferTooSmall)
        );
        assert_eq!(r.stats(Leg::Caller).dropped, 6);
    }

    #[test]
    fn source_change_keeps_one_outgoing_stream() {
        let mut r = legs(None, None);
        let mut out = [0u8; 64];
        for i in 0..3u16 {
            let p = pkt(
                0,
                false,
                100 + i,
                8000 + u32::from(i) * 160,
                0xaaaa,
                &[0; 4],
            );
            r.forward(Leg::Bridge, &p, &mut out).unwrap();
        }
        // The bridge moves the call to another media server.
        let p = pkt(0, false, 60000, 123, 0xbbbb, &[0; 4]);
        let n = r.forward(Leg::Bridge, &p, &mut out).unwrap();
        assert_eq!(fields(&out[..n]), (0, true, 103, 8000 + 3 * 160, 0xaaaa));
        let p = pkt(0, false, 60001, 283, 0xbbbb, &[0; 4]);
        let n = r.forward(Leg::Bridge, &p, &mut out).unwrap();
        assert_eq!(fields(&out[..n]), (0, false, 104, 8000 + 4 * 160, 0xaaaa));
        // A late packet of the old source is not mixed in.
        let late = pkt(0, false, 102, 8320, 0xaaaa, &[0; 4]);
        assert_eq!(
            r.forward(Leg::Bridge, &late, &mut out),
            Err(RelayDrop::StaleSource)
        );
        assert_eq!(r.stats(Leg::Bridge).source_changes, 1);
    }

    #[test]
    fn sequence_wraps_across_a_source_change() {
        let mut r = legs(None, None);
        let mut out = [0u8; 64];
        let p = pkt(0, false, 0xffff, u32::MAX - 10, 1, &[]);
        r.forward(Leg::Caller, &p, &mut out).unwrap();
        let p = pkt(0, false, 5, 0, 2, &[]);
        let n = r.forward(Leg::Caller, &p, &mut out).unwrap();
        assert_eq!(fields(&out[..n]), (0, true, 0, 149, 1));
    }

    #[test]
    fn codecs_must_match() {
        let pcmu = LegPayloads {
            codec: Codec::Pcmu,
            audio_pt: 0,
            event_pt: None,
        };
        let pcma = LegPayloads {
            codec: Codec::Pcma,
            audio_pt: 8,
            event_pt: None,
        };
        assert!(Relay::new(pcmu, pcma).is_err());
        let mut r = Relay::new(pcmu, pcmu).unwrap();
        assert!(r.renegotiate(Leg::Bridge, pcma).is_err());
        let moved = LegPayloads {
            audio_pt: 0,
            event_pt: Some(100),
            ..pcmu
        };
        r.renegotiate(Leg::Bridge, moved).unwrap();
        let mut out = [0u8; 32];
        let p = pkt(100, false, 1, 1, 1, &[0; 4]);
        // The caller leg has no telephone-event: dropped.
        assert_eq!(
            r.forward(Leg::Bridge, &p, &mut out),
            Err(RelayDrop::PayloadType(100))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut r = legs(Some(101), Some(96));
        let mut out = [0u8; 256];
        let mut x = 0x1234_5678u32;
        for len in 0..300 {
            let mut p = vec![0u8; len % 200];
            for b in &mut p {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            if let Some(first) = p.first_mut() {
                *first = 0x80 | (*first & 0x3f);
            }
            let _ = r.forward(Leg::Caller, &p, &mut out);
            let _ = r.forward(Leg::Bridge, &p, &mut out);
        }
    }
}

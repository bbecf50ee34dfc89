//! A small fixed-delay playout buffer for one participant's G.711 stream.
//!
//! Packets are placed by RTP timestamp (RFC 3550 §5.1: 8 kHz clock for
//! PCMU/PCMA, RFC 3551 §4.5.14) into a ring of decoded samples, so any
//! packetisation (10, 20, 30 ms …) works and reordering inside the window
//! costs nothing. The pacer pulls one 20 ms frame per tick, a fixed
//! `delay` behind the first packet of a talk spurt.
//!
//! Kept simple on purpose: no adaptive delay. The stream is re-anchored
//! (delay reset, ring cleared) when
//! - the first packet arrives, or the first after 500 ms without packets
//!   (a new talk spurt, hold/resume, an SSRC change: cheap and timely);
//! - a packet lands beyond the window ahead (sender clock faster, or a
//!   timestamp jump forward);
//! - three packets in a row arrive too late (sender clock slower, or a
//!   timestamp jump back).
//!
//! A missing 10 ms block repeats the previous block at half level, twice at
//! most, then plays silence.

use std::time::{Duration, Instant};

use crate::media::g711::Law;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Largest `delay_frames` the buffer accepts.
pub const MAX_DELAY_FRAMES: u8 = 4;
/// Largest payload taken in one packet: 60 ms.
pub const MAX_PAYLOAD: usize = 480;

/// Loss and reordering are tracked in 10 ms blocks: the smallest common
/// G.711 packet.
const BLOCK: usize = 80;
/// Ring of 160 ms: the largest delay (80 ms) plus the window ahead (80 ms).
const RING: usize = 1280;
const BLOCKS: usize = RING / BLOCK;
/// How far past the playout delay a packet may reach before the stream is
/// re-anchored.
const AHEAD: usize = 4 * FRAME_SAMPLES;
const LATE_RESYNC: u32 = 3;
const IDLE_RESYNC: Duration = Duration::from_millis(500);
const MAX_CONCEAL_BLOCKS: u8 = 2;

// The validity mask holds one bit per block.
const _: () = assert!(BLOCKS <= 16);
const _: () = assert!(RING % FRAME_SAMPLES == 0);
const _: () = assert!(MAX_DELAY_FRAMES as usize * FRAME_SAMPLES + AHEAD <= RING);
const _: () = assert!(MAX_PAYLOAD <= AHEAD);

/// What became of one received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Stored for playout.
    Buffered,
    /// Stored after the stream was re-anchored on it.
    Resynced,
    /// Its time has already been played; dropped.
    Late,
    /// Its audio is already buffered; dropped.
    Duplicate,
    /// Empty or longer than [`MAX_PAYLOAD`]; dropped.
    Unusable,
    /// The participant is not heard (muted or on hold); dropped.
    Ignored,
}

/// Counters of one participant's stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets stored for playout.
    pub buffered: u64,
    /// Packets dropped as late.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicate: u64,
    /// Packets dropped as empty or too long.
    pub unusable: u64,
    /// Times the stream was re-anchored after it had started.
    pub resyncs: u64,
    /// 10 ms blocks due for playout that had not arrived.
    pub missing_blocks: u64,
}

/// One participant's playout buffer. Allocates once, at creation.
#[derive(Debug)]
pub struct PlayoutBuffer {
    law: Law,
    delay: u32,
    ring: Box<[i16; RING]>,
    /// The block played last, repeated to cover a loss.
    last_block: [i16; BLOCK],
    /// Bit `b` set: block `b` of the ring holds received audio.
    valid: u16,
    /// RTP timestamp of the next sample to play.
    play_ts: u32,
    /// Ring index of `play_ts`; always a multiple of [`FRAME_SAMPLES`].
    play_slot: usize,
    anchored: bool,
    last_arrival: Option<Instant>,
    late_run: u32,
    conceal_run: u8,
    stats: JitterStats,
}

impl PlayoutBuffer {
    /// A buffer decoding `law` and playing `delay_frames` (clamped to
    /// 1..=[`MAX_DELAY_FRAMES`]) 20 ms frames behind arrival.
    pub fn new(law: Law, delay_frames: u8) -> Self {
        let delay_frames = delay_frames.clamp(1, MAX_DELAY_FRAMES);
        PlayoutBuffer {
            law,
            delay: u32::from(delay_frames) * FRAME_SAMPLES as u32,
            ring: Box::new([0; RING]),
            last_block: [0; BLOCK],
            valid: 0,
            play_ts: 0,
            play_slot: 0,
            anchored: false,
            last_arrival: None,
            late_run: 0,
            conceal_run: MAX_CONCEAL_BLOCKS,
            stats: JitterStats::default(),
        }
    }

    /// The law payloads are decoded with.
    pub fn law(&self) -> Law {
        self.law
    }

    /// Decode later payloads with `law` (after a re-negotiation).
    pub fn set_law(&mut self, law: Law) {
        self.law = law;
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Forget the stream: the next packet starts it afresh.
    pub fn reset(&mut self) {
        self.clear();
        self.anchored = false;
        self.last_arrival = None;
        self.late_run = 0;
    }

    fn clear(&mut self) {
        self.ring.fill(0);
        self.last_block = [0; BLOCK];
        self.valid = 0;
        self.play_slot = 0;
        self.conceal_run = MAX_CONCEAL_BLOCKS;
    }

    fn anchor(&mut self, rtp_timestamp: u32) {
        if self.anchored {
            self.stats.resyncs += 1;
        }
        self.clear();
        self.anchored = true;
        self.late_run = 0;
        self.play_ts = rtp_timestamp.wrapping_sub(self.delay);
    }

    /// Stores one packet's G.711 `payload`, whose first sample has
    /// `rtp_timestamp`, received at `now`.
    pub fn push(&mut self, rtp_timestamp: u32, payload: &[u8], now: Instant) -> Arrival {
        let len = payload.len();
        if len == 0 || len > MAX_PAYLOAD {
            self.stats.unusable += 1;
            return Arrival::Unusable;
        }
        let idle = self
            .last_arrival
            .is_none_or(|t| now.saturating_duration_since(t) >= IDLE_RESYNC);
        self.last_arrival = Some(now);
        let mut arrival = Arrival::Buffered;
        if !self.anchored || idle {
            if self.anchored {
                arrival = Arrival::Resynced;
            }
            self.anchor(rtp_timestamp);
        }
        // Signed distance ahead of the playout point; negative is late.
        let ahead = rtp_timestamp.wrapping_sub(self.play_ts) as i32;
        if ahead < 0 {
            self.late_run += 1;
            if self.late_run < LATE_RESYNC {
                self.stats.late += 1;
                return Arrival::Late;
            }
            self.anchor(rtp_timestamp);
            arrival = Arrival::Resynced;
        } else if ahead as usize + len > self.delay as usize + AHEAD {
            self.anchor(rtp_timestamp);
            arrival = Arrival::Resynced;
        }
        self.late_run = 0;
        let ahead = rtp_timestamp.wrapping_sub(self.play_ts) as usize;
        let start = (self.play_slot + ahead) % RING;
        if self.valid & (1 << (start / BLOCK)) != 0 {
            self.stats.duplicate += 1;
            return Arrival::Duplicate;
        }
        // At most two contiguous runs: up to the ring's end, then from 0.
        let first = len.min(RING - start);
        let (head, tail) = payload.split_at(first);
        self.law.decode(head, &mut self.ring[start..start + first]);
        self.law.decode(tail, &mut self.ring[..tail.len()]);
        for i in (0..len).step_by(BLOCK).chain([len - 1]) {
            self.valid |= 1 << (((start + i) % RING) / BLOCK);
        }
        self.stats.buffered += 1;
        arrival
    }

    /// Plays the next 20 ms into `frame`. Returns false when there is
    /// nothing to hear (no stream yet, or only silence after a gap); then
    /// `frame` holds silence.
    pub fn playout(&mut self, frame: &mut [i16; FRAME_SAMPLES]) -> bool {
        if !self.anchored {
            frame.fill(0);
            return false;
        }
        let mut audible = false;
        for (half, this) in frame.chunks_exact_mut(BLOCK).enumerate() {
            let slot = self.play_slot + half * BLOCK;
            let bit = 1u16 << (slot / BLOCK);
            if self.valid & bit != 0 {
                let stored = &mut self.ring[slot..slot + BLOCK];
                this.copy_from_slice(stored);
                stored.fill(0);
                self.valid &= !bit;
                self.conceal_run = 0;
                audible = true;
            } else {
                self.stats.missing_blocks += 1;
                if self.conceal_run < MAX_CONCEAL_BLOCKS {
                    this.iter_mut()
                        .zip(&self.last_block)
                        .for_each(|(o, p)| *o = *p / 2);
                    self.conceal_run += 1;
                    audible = true;
                } else {
                    this.fill(0);
                }
            }
            self.last_block.copy_from_slice(this);
        }
        self.play_ts = self.play_ts.wrapping_add(FRAME_SAMPLES as u32);
        self.play_slot = (self.play_slot + FRAME_SAMPLES) % RING;
        audible
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::ulaw_encode;

    /// A μ-law frame whose samples all decode near `level`.
    fn frame(level: i16) -> [u8; FRAME_SAMPLES] {
        [ulaw_encode(level); FRAME_SAMPLES]
    }

    fn level_of(f: &[i16; FRAME_SAMPLES]) -> i16 {
        f[FRAME_SAMPLES / 2]
    }

    fn play(buf: &mut PlayoutBuffer) -> (bool, i16, i16) {
        let mut f = [0; FRAME_SAMPLES];
        let audible = buf.playout(&mut f);
        (audible, f[0], level_of(&f))
    }

    #[test]
    fn plays_in_order_after_the_delay() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::Mu, 2);
        let mut heard = Vec::new();
        for k in 0..6u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            assert_eq!(
                b.push(1000 + k * 160, &frame(1000 * (k as i16 + 1)), now),
                Arrival::Buffered
            );
            heard.push(play(&mut b));
        }
        // Two frames of delay, then 1000, 2000, 3000, 4000 (μ-law rounded).
        assert!(!heard[0].0 && !heard[1].0);
        let levels: Vec<i16> = heard[2..].iter().map(|h| h.2 / 100).collect();
        assert_eq!(levels, [9, 19, 30, 40]);
    }

    #[test]
    fn reordered_frames_play_in_timestamp_order() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::Mu, 2);
        b.push(0, &frame(1000), t0);
        b.push(320, &frame(3000), t0);
        b.push(160, &frame(2000), t0);
        let levels: Vec<i16> = (0..5).map(|_| play(&mut b).2 / 100).collect();
        assert_eq!(levels, [0, 0, 9, 19, 30]);
    }

    #[test]
    fn duplicates_and_late_frames_are_dropped() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::Mu, 1);
        assert_eq!(b.push(0, &frame(1000), t0), Arrival::Buffered);
        assert_eq!(b.push(0, &frame(5000), t0), Arrival::Duplicate);
        play(&mut b);
        assert_eq!(play(&mut b).2 / 100, 9);
        // Timestamp 0 has been played: a retransmission is late.
        assert_eq!(b.push(0, &frame(5000), t0), Arrival::Late);
        assert_eq!(b.push(160, &frame(2000), t0), Arrival::Buffered);
        assert_eq!(play(&mut b).2 / 100, 19);
        let s = b.stats();
        assert_eq!((s.buffered, s.duplicate, s.late), (2, 1, 1));
    }

    #[test]
    fn a_gap_repeats_the_last_block_briefly_then_goes_silent() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::Mu, 1);
        b.push(0, &frame(4000), t0);
        play(&mut b);
        let (audible, _, level) = play(&mut b);
        assert!(audible);
        assert_eq!(level / 100, 40);
        // Nothing for 160..: two concealed blocks at half level each step.
        let (audible, first, second) = play(&mut b);
        assert!(audible);
        assert_eq!((first, second), (level / 2, level / 4));
        let (audible, first, second) = play(&mut b);
        assert!(!audible);
        assert_eq!((first, second), (0, 0));
        assert_eq!(b.stats().missing_blocks, 2 + 2 + 2);
    }

    #[test]
    fn ten_and_thirty_ms_packets_fill_the_same_frames() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::Mu, 2);
        b.push(0, &frame(1000)[..80], t0);
        b.push(80, &frame(1000)[..80], t0);
        b.push(160, &[ulaw_encode(2000); 240], t0);
        let mut f = [0; FRAME_SAMPLES];
        b.playout(&mut f);
        b.playout(&mut f);
        assert!(b.playout(&mut f));
        assert!(f.iter().all(|s| s / 100 == 9));
        assert!(b.playout(&mut f));
        assert!(f.iter().all(|s| s / 100 == 19));
        assert!(b.playout(&mut f));
        assert!(f[..80].iter().all(|s| s / 100 == 19));
    }

    #[test]
    fn timestamp_jumps_and_silence_re_anchor() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::Mu, 1);
        assert_eq!(b.push(5000, &frame(1000), t0), Arrival::Buffered);
        // Far ahead: a new stream, re-anchored on the spot.
        assert_eq!(
            b.push(900_000, &frame(2000), t0 + Duration::from_millis(20)),
            Arrival::Resynced
        );
        play(&mut b);
        assert_eq!(play(&mut b).2 / 100, 19);
        // Far behind: dropped twice, then taken as the new stream.
        let now = t0 + Duration::from_millis(40);
        assert_eq!(b.push(10, &frame(3000), now), Arrival::Late);
        assert_eq!(b.push(170, &frame(3000), now), Arrival::Late);
        assert_eq!(b.push(330, &frame(3000), now), Arrival::Resynced);
        // After a second of silence the next packet starts afresh, even
        // if its timestamp was played long ago.
        let later = now + Duration::from_secs(1);
        assert_eq!(b.push(330, &frame(3000), later), Arrival::Resynced);
        assert_eq!(b.stats().resyncs, 3);
    }

    #[test]
    fn timestamps_wrap_around() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::Mu, 1);
        let start = u32::MAX - 200;
        for k in 0..4u32 {
            let ts = start.wrapping_add(k * 160);
            assert_eq!(b.push(ts, &frame(1000), t0), Arrival::Buffered, "{k}");
        }
        play(&mut b);
        for _ in 0..4 {
            assert_eq!(play(&mut b).2 / 100, 9);
        }
    }

    #[test]
    fn bad_payloads_never_panic() {
        let t0 = Instant::now();
        let mut b = PlayoutBuffer::new(Law::A, 4);
        assert_eq!(b.push(0, &[], t0), Arrival::Unusable);
        assert_eq!(b.push(0, &[0; MAX_PAYLOAD + 1], t0), Arrival::Unusable);
        for ts in [0, 1, 79, 1279, 1280, u32::MAX, 1 << 31] {
            for len in [1, 79, 80, 81, 479, 480] {
                b.push(ts, &vec![0x55; len], t0);
                let mut f = [0; FRAME_SAMPLES];
                b.playout(&mut f);
            }
        }
    }
}

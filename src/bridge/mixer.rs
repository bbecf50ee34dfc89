//! One conference room of the embedded bridge: N−1 mixing of G.711 callers.
//!
//! Every participant hears the mix of the others but not themselves. Once
//! per 20 ms pacer tick, [`Room::mix_tick`]:
//! 1. pulls one frame from each heard participant's [`PlayoutBuffer`] and
//!    updates a smoothed level (instant attack, release of 10 dB in ~350 ms, so the
//!    choice of speakers does not flicker between syllables);
//! 2. picks the speakers: in a room with more heard participants than
//!    `active_speakers`, the `active_speakers` loudest whose level reaches
//!    `speaker_threshold_dbov` (last tick's speakers rank 3 dB higher, so
//!    near-equal talkers do not swap every frame); otherwise everyone not
//!    silent. Capping the talkers bounds the background noise summed into
//!    every ear in a big room;
//! 3. sums speakers and tones once, in `i32`;
//! 4. gives everyone who contributed nothing (not a speaker, hears every
//!    tone) the same mix, encoded once per law and shared; a speaker, or a
//!    joiner who must not hear their own join tone, gets the total minus
//!    their own part, encoded for them alone.
//!
//! Sums are soft-clipped to 16 bits (linear to 75 % of full scale, then
//! compressed towards full scale), so loud talkers together saturate rather
//! than wrap around.
//!
//! No allocation per tick: frames, sums, shared and per-participant output
//! buffers live in the room and its participants and are reused; speakers
//! and tones are held in fixed arrays. Allocation happens only on join
//! (participant slot, jitter ring) and for events.
//!
//! PCMU and PCMA (ITU-T G.711, RFC 3551 §4.5.14) can share a room: input is
//! decoded to linear, each output encoded to the listener's law.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::media::g711::{alaw_encode, ulaw_encode, Law};

use super::jitter::{Arrival, JitterStats, PlayoutBuffer};
use super::settings::{BridgeSettings, MAX_ACTIVE_SPEAKERS};
use super::tones::Tone;

pub use super::jitter::FRAME_SAMPLES;

/// One encoded 20 ms G.711 frame.
pub type Frame = [u8; FRAME_SAMPLES];

/// Tones that can sound at once; one more replaces the oldest.
const MAX_TONES: usize = 4;
/// Below this mean square (RMS 10, about −70 dBov: A-law idle noise) a
/// frame counts as silence even in a small room.
const SILENCE_MEAN_SQUARE: i64 = 100;
/// Soft clipping starts at 75 % of full scale.
const KNEE: i32 = 24_576;

/// A participant's handle, unique in the process (rooms never reuse one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(u64);

impl ParticipantId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ParticipantId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number behind the handle, for logs and maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "participant {}", self.0)
    }
}

/// A join refused because the room holds `max` participants already.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the room is full ({max} participants)")]
pub struct RoomFull {
    /// The room's size limit.
    pub max: usize,
}

/// A handle that is not (or no longer) in the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not in the room")]
pub struct UnknownParticipant(pub ParticipantId);

/// What happened in a room, for the call layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomEvent {
    /// A participant was added.
    ParticipantJoined(ParticipantId),
    /// A participant was removed.
    ParticipantLeft(ParticipantId),
    /// The last participant left.
    RoomEmpty,
}

#[derive(Debug)]
struct Participant {
    id: ParticipantId,
    law: Law,
    /// Order of joining; decides which tones this participant hears.
    join_seq: u64,
    receiving: bool,
    sending: bool,
    jitter: PlayoutBuffer,
    /// This tick's decoded input.
    frame: [i16; FRAME_SAMPLES],
    has_frame: bool,
    /// Smoothed mean square of the input.
    level: i64,
    /// `level`, doubled (+3 dB) for a speaker of the last tick: hysteresis,
    /// so near-equal talkers do not swap slots every frame.
    rank: i64,
    speaking: bool,
    /// This participant's own output when it differs from the shared mix.
    out: Frame,
}

#[derive(Clone, Copy, Debug)]
struct ActiveTone {
    samples: &'static [i16],
    pos: usize,
    /// Heard by participants with a smaller `join_seq`: those present
    /// before the event, never the joiner.
    seq: u64,
}

impl ActiveTone {
    fn frame(&self) -> Option<&'static [i16]> {
        self.samples.get(self.pos..self.pos + FRAME_SAMPLES)
    }
}

/// One conference: participants, their playout buffers, and the mixer.
#[derive(Debug)]
pub struct Room {
    max_size: usize,
    join_tone: bool,
    leave_tone: bool,
    active_speakers: usize,
    threshold: i64,
    jitter_frames: u8,
    participants: Vec<Participant>,
    index: HashMap<ParticipantId, usize>,
    next_seq: u64,
    tones: [Option<ActiveTone>; MAX_TONES],
    total: [i32; FRAME_SAMPLES],
    scratch: [i32; FRAME_SAMPLES],
    shared: [Frame; 2],
    speakers: [usize; MAX_ACTIVE_SPEAKERS],
    speaker_count: usize,
    events: VecDeque<RoomEvent>,
}

fn law_slot(law: Law) -> usize {
    match law {
        Law::Mu => 0,
        Law::A => 1,
    }
}

/// Mean square of a frame.
fn energy(frame: &[i16; FRAME_SAMPLES]) -> i64 {
    let sum: i64 = frame
        .iter()
        .map(|&s| i64::from(i32::from(s) * i32::from(s)))
        .sum();
    sum / FRAME_SAMPLES as i64
}

/// Maps a sum to 16 bits without wrapping: linear up to [`KNEE`], then
/// `knee + a·r/(a + r)` above it, which approaches full scale smoothly.
#[inline]
fn soft_clip(x: i32) -> i16 {
    if (-KNEE..=KNEE).contains(&x) {
        return x as i16;
    }
    let room = i64::from(i16::MAX as i32 - KNEE);
    let over = i64::from(x.unsigned_abs()) - i64::from(KNEE);
    let y = i64::from(KNEE) + over * room / (over + room);
    let y = y.min(i64::from(i16::MAX)) as i16;
    if x < 0 {
        -y
    } else {
        y
    }
}

fn encode(law: Law, mix: &[i32; FRAME_SAMPLES], out: &mut Frame) {
    match law {
        Law::Mu => mix
            .iter()
            .zip(out.iter_mut())
            .for_each(|(&s, o)| *o = ulaw_encode(soft_clip(s))),
        Law::A => mix
            .iter()
            .zip(out.iter_mut())
            .for_each(|(&s, o)| *o = alaw_encode(soft_clip(s))),
    }
}

impl Room {
    /// An empty room configured by `settings` (expected validated; out of
    /// range values are clamped).
    pub fn new(settings: &BridgeSettings) -> Self {
        let dbov = f64::from(settings.speaker_threshold_dbov).clamp(-120.0, 0.0);
        let full = f64::from(i16::MAX);
        let threshold = (full * full * 10f64.powf(dbov / 10.0)) as i64;
        Room {
            max_size: settings.max_room_size.max(1),
            join_tone: settings.join_tone,
            leave_tone: settings.leave_tone,
            active_speakers: settings.active_speakers.clamp(1, MAX_ACTIVE_SPEAKERS),
            threshold,
            jitter_frames: settings.jitter_frames,
            participants: Vec::new(),
            index: HashMap::new(),
            next_seq: 0,
            tones: [None; MAX_TONES],
            total: [0; FRAME_SAMPLES],
            scratch: [0; FRAME_SAMPLES],
            shared: [[0; FRAME_SAMPLES]; 2],
            speakers: [0; MAX_ACTIVE_SPEAKERS],
            speaker_count: 0,
            events: VecDeque::new(),
        }
    }

    /// Participants in the room.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// True when nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Whether `id` is in the room.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.index.contains_key(&id)
    }

    /// The room's size limit.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    fn get(&self, id: ParticipantId) -> Result<&Participant, UnknownParticipant> {
        self.index
            .get(&id)
            .and_then(|&i| self.participants.get(i))
            .ok_or(UnknownParticipant(id))
    }

    fn get_mut(&mut self, id: ParticipantId) -> Result<&mut Participant, UnknownParticipant> {
        self.index
            .get(&id)
            .and_then(|&i| self.participants.get_mut(i))
            .ok_or(UnknownParticipant(id))
    }

    /// Adds a caller whose RTP uses `law`. The others hear the join tone.
    pub fn join(&mut self, law: Law) -> Result<ParticipantId, RoomFull> {
        if self.participants.len() >= self.max_size {
            return Err(RoomFull { max: self.max_size });
        }
        let id = ParticipantId::next();
        let join_seq = self.next_seq;
        self.next_seq += 1;
        self.index.insert(id, self.participants.len());
        self.participants.push(Participant {
            id,
            law,
            join_seq,
            receiving: true,
            sending: true,
            jitter: PlayoutBuffer::new(law, self.jitter_frames),
            frame: [0; FRAME_SAMPLES],
            has_frame: false,
            level: 0,
            rank: 0,
            speaking: false,
            out: [law.silence(); FRAME_SAMPLES],
        });
        if self.join_tone {
            self.start_tone(Tone::Join, join_seq);
        }
        self.events.push_back(RoomEvent::ParticipantJoined(id));
        Ok(id)
    }

    /// Removes a participant; the others hear the leave tone. Queues
    /// [`RoomEvent::RoomEmpty`] when it was the last.
    pub fn leave(&mut self, id: ParticipantId) -> Result<(), UnknownParticipant> {
        let i = self.index.remove(&id).ok_or(UnknownParticipant(id))?;
        if i >= self.participants.len() {
            return Err(UnknownParticipant(id));
        }
        self.participants.swap_remove(i);
        if let Some(moved) = self.participants.get(i) {
            self.index.insert(moved.id, i);
        }
        self.events.push_back(RoomEvent::ParticipantLeft(id));
        if self.participants.is_empty() {
            self.tones = [None; MAX_TONES];
            self.events.push_back(RoomEvent::RoomEmpty);
        } else if self.leave_tone {
            self.start_tone(Tone::Leave, self.next_seq);
        }
        Ok(())
    }

    fn start_tone(&mut self, tone: Tone, seq: u64) {
        let new = ActiveTone {
            samples: tone.samples(),
            pos: 0,
            seq,
        };
        // A free slot, else the tone furthest along.
        let slot = self.tones.iter().position(Option::is_none).or_else(|| {
            (0..MAX_TONES).max_by_key(|&i| self.tones.get(i).copied().flatten().map(|t| t.pos))
        });
        if let Some(s) = slot.and_then(|s| self.tones.get_mut(s)) {
            *s = Some(new);
        }
    }

    /// Whether the room hears `id` (false while muted or on hold).
    pub fn set_receiving(&mut self, id: ParticipantId, on: bool) -> Result<(), UnknownParticipant> {
        let p = self.get_mut(id)?;
        if p.receiving && !on {
            p.jitter.reset();
            p.level = 0;
        }
        p.receiving = on;
        Ok(())
    }

    /// Whether `id` is given output by [`Room::mix_tick`] (false while the
    /// call sends nothing, e.g. on hold with `a=inactive`).
    pub fn set_sending(&mut self, id: ParticipantId, on: bool) -> Result<(), UnknownParticipant> {
        self.get_mut(id)?.sending = on;
        Ok(())
    }

    /// Changes the law of `id`'s input and output (after a re-offer).
    pub fn set_law(&mut self, id: ParticipantId, law: Law) -> Result<(), UnknownParticipant> {
        let p = self.get_mut(id)?;
        p.law = law;
        p.jitter.set_law(law);
        Ok(())
    }

    /// The law of `id`.
    pub fn law(&self, id: ParticipantId) -> Result<Law, UnknownParticipant> {
        Ok(self.get(id)?.law)
    }

    /// Jitter buffer counters of `id`.
    pub fn stats(&self, id: ParticipantId) -> Result<JitterStats, UnknownParticipant> {
        Ok(self.get(id)?.jitter.stats())
    }

    /// The participants mixed as speakers in the last tick, loudest first.
    pub fn speakers(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.speakers
            .iter()
            .take(self.speaker_count)
            .filter_map(|&i| self.participants.get(i).map(|p| p.id))
    }

    /// Whether `id` was mixed as a speaker in the last tick.
    pub fn is_speaking(&self, id: ParticipantId) -> Result<bool, UnknownParticipant> {
        Ok(self.get(id)?.speaking)
    }

    /// Hands one received RTP payload of `id` to its playout buffer:
    /// `rtp_timestamp` is the RTP header's timestamp (RFC 3550 §5.1),
    /// `payload` G.711 in the participant's law, `now` the arrival time.
    pub fn push_audio(
        &mut self,
        id: ParticipantId,
        rtp_timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<Arrival, UnknownParticipant> {
        let p = self.get_mut(id)?;
        if !p.receiving {
            return Ok(Arrival::Ignored);
        }
        Ok(p.jitter.push(rtp_timestamp, payload, now))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// Mixes one 20 ms tick and hands every sending participant its frame,
    /// encoded in its law. Participants who hear the same mix are handed
    /// the same buffer.
    pub fn mix_tick(&mut self, mut out: impl FnMut(ParticipantId, &Frame)) {
        let Room {
            active_speakers,
            threshold,
            participants,
            tones,
            total,
            scratch,
            shared,
            speakers,
            speaker_count,
            ..
        } = self;

        // 1. Input: one frame each, and levels.
        let mut heard = 0usize;
        for p in participants.iter_mut() {
            let was_speaking = std::mem::take(&mut p.speaking);
            if !p.receiving {
                p.has_frame = false;
                continue;
            }
            heard += 1;
            p.has_frame = p.jitter.playout(&mut p.frame);
            let e = if p.has_frame { energy(&p.frame) } else { 0 };
            p.level = e.max(p.level - p.level / 8);
            p.rank = if was_speaking {
                p.level.saturating_mul(2)
            } else {
                p.level
            };
        }

        // 2. Speakers: the loudest `active_speakers`, kept sorted.
        let gate = if heard > *active_speakers {
            (*threshold).max(SILENCE_MEAN_SQUARE)
        } else {
            SILENCE_MEAN_SQUARE
        };
        let cap = (*active_speakers).min(MAX_ACTIVE_SPEAKERS);
        let mut count = 0usize;
        for (i, p) in participants.iter().enumerate() {
            if !p.has_frame || p.level < gate {
                continue;
            }
            // Insertion into a short descending list: `cap` is at most 8.
            let mut k = 0;
            while k < count
                && speakers
                    .get(k)
                    .and_then(|&s| participants.get(s))
                    .is_some_and(|s| s.rank >= p.rank)
            {
                k += 1;
            }
            if k >= cap {
                continue;
            }
            let end = count.min(cap - 1);
            if let Some(window) = speakers.get_mut(k..=end) {
                window.rotate_right(1);
                if let Some(first) = window.first_mut() {
                    *first = i;
                }
            }
            count = (count + 1).min(cap);
        }
        *speaker_count = count;

        // 3. The full sum, once.
        total.fill(0);
        for &s in speakers.iter().take(count) {
            if let Some(p) = participants.get_mut(s) {
                p.speaking = true;
                total
                    .iter_mut()
                    .zip(&p.frame)
                    .for_each(|(t, &x)| *t += i32::from(x));
            }
        }
        let mut first_tone_seq = u64::MAX;
        for t in tones.iter().flatten() {
            if let Some(samples) = t.frame() {
                total
                    .iter_mut()
                    .zip(samples)
                    .for_each(|(a, &x)| *a += i32::from(x));
                first_tone_seq = first_tone_seq.min(t.seq);
            }
        }

        // 4. Output: shared mix for pure listeners, own mix for the rest.
        let mut shared_ready = [false; 2];
        for p in participants.iter_mut() {
            if !p.sending {
                continue;
            }
            let misses_tone = p.join_seq >= first_tone_seq;
            if !p.speaking && !misses_tone {
                let slot = law_slot(p.law);
                if let (Some(ready), Some(frame)) =
                    (shared_ready.get_mut(slot), shared.get_mut(slot))
                {
                    if !*ready {
                        encode(p.law, total, frame);
                        *ready = true;
                    }
                    out(p.id, frame);
                }
                continue;
            }
            scratch.copy_from_slice(&total[..]);
            if p.speaking {
                scratch
                    .iter_mut()
                    .zip(&p.frame)
                    .for_each(|(a, &x)| *a -= i32::from(x));
            }
            for t in tones.iter().flatten().filter(|t| p.join_seq >= t.seq) {
                if let Some(samples) = t.frame() {
                    scratch
                        .iter_mut()
                        .zip(samples)
                        .for_each(|(a, &x)| *a -= i32::from(x));
                }
            }
            encode(p.law, scratch, &mut p.out);
            out(p.id, &p.out);
        }

        // 5. Tones move on; finished ones go.
        for slot in tones.iter_mut() {
            if let Some(t) = slot {
                t.pos += FRAME_SAMPLES;
                if t.frame().is_none() {
                    *slot = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::media::g711::{alaw_decode, ulaw_decode};

    const RATE: f64 = 8000.0;

    /// `frames` frames of a continuous sine, encoded in `law`.
    fn sine(freq: f64, amplitude: f64, frames: usize, law: Law) -> Vec<Frame> {
        let pcm: Vec<i16> = (0..frames * FRAME_SAMPLES)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * freq * n as f64 / RATE;
                (amplitude * phase.sin()).round() as i16
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

    fn decode(law: Law, frame: &Frame) -> impl Iterator<Item = i16> + '_ {
        frame.iter().map(move |&c| match law {
            Law::Mu => ulaw_decode(c),
            Law::A => alaw_decode(c),
        })
    }

    /// Amplitude of the `freq` component of `x` (Goertzel).
    fn amplitude(x: &[i16], freq: f64) -> f64 {
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / RATE).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        2.0 * power.max(0.0).sqrt() / x.len() as f64
    }

    /// Drives a room on a fake clock: every tick, each sender pushes its
    /// next frame, then the room mixes; outputs are decoded per listener.
    struct Drive {
        t0: Instant,
        tick: u32,
        heard: HashMap<ParticipantId, Vec<i16>>,
    }

    impl Drive {
        fn new() -> Self {
            Drive {
                t0: Instant::now(),
                tick: 0,
                heard: HashMap::new(),
            }
        }

        fn now(&self) -> Instant {
            self.t0 + Duration::from_millis(20 * u64::from(self.tick))
        }

        fn run(&mut self, room: &mut Room, senders: &[(ParticipantId, &[Frame])], ticks: usize) {
            for _ in 0..ticks {
                let now = self.now();
                for (id, frames) in senders {
                    if let Some(f) = frames.get(self.tick as usize % frames.len()) {
                        let ts = 7_000 + self.tick * FRAME_SAMPLES as u32;
                        room.push_audio(*id, ts, f, now).unwrap();
                    }
                }
                self.mix(room);
            }
        }

        fn mix(&mut self, room: &mut Room) {
            let laws: HashMap<ParticipantId, Law> =
                room.participants.iter().map(|p| (p.id, p.law)).collect();
            let heard = &mut self.heard;
            room.mix_tick(|id, frame| {
                heard
                    .entry(id)
                    .or_default()
                    .extend(decode(laws[&id], frame));
            });
            self.tick += 1;
        }

        /// The last `frames` frames `id` heard.
        fn tail(&self, id: ParticipantId, frames: usize) -> &[i16] {
            let h = &self.heard[&id];
            &h[h.len() - frames * FRAME_SAMPLES..]
        }

        fn clear(&mut self) {
            self.heard.clear();
        }
    }

    fn settings() -> BridgeSettings {
        BridgeSettings {
            join_tone: false,
            leave_tone: false,
            ..BridgeSettings::default()
        }
    }

    #[test]
    fn two_callers_hear_each_other_but_not_themselves() {
        let mut room = Room::new(&settings());
        let a = room.join(Law::Mu).unwrap();
        let b = room.join(Law::Mu).unwrap();
        let tone = sine(1000.0, 8000.0, 50, Law::Mu);
        let mut d = Drive::new();
        d.run(&mut room, &[(a, &tone)], 30);
        let at_b = amplitude(d.tail(b, 20), 1000.0);
        let at_a = amplitude(d.tail(a, 20), 1000.0);
        assert!((7500.0..8500.0).contains(&at_b), "B hears {at_b}");
        assert!(at_a < 20.0, "A hears itself at {at_a}");
        assert!(room.is_speaking(a).unwrap());
        assert!(!room.is_speaking(b).unwrap());
    }

    #[test]
    fn three_callers_each_hear_the_other_two() {
        let mut room = Room::new(&settings());
        let ids: Vec<_> = (0..3).map(|_| room.join(Law::Mu).unwrap()).collect();
        // No third-order products of two of them lands on the third.
        let freqs = [600.0, 1000.0, 1700.0];
        let tones: Vec<_> = freqs
            .iter()
            .map(|&f| sine(f, 6000.0, 50, Law::Mu))
            .collect();
        let senders: Vec<_> = ids.iter().zip(&tones).map(|(&i, t)| (i, &t[..])).collect();
        let mut d = Drive::new();
        d.run(&mut room, &senders, 30);
        for (me, &id) in ids.iter().enumerate() {
            let heard = d.tail(id, 20);
            for (other, &f) in freqs.iter().enumerate() {
                let amp = amplitude(heard, f);
                if other == me {
                    assert!(amp < 60.0, "{me} hears itself at {amp}");
                } else {
                    assert!(amp > 5500.0, "{me} hears {other} at only {amp}");
                }
            }
        }
    }

    #[test]
    fn pcmu_and_pcma_callers_share_a_room() {
        let mut room = Room::new(&settings());
        let a = room.join(Law::Mu).unwrap();
        let b = room.join(Law::A).unwrap();
        let c = room.join(Law::A).unwrap();
        let from_a = sine(1000.0, 8000.0, 50, Law::Mu);
        let from_b = sine(1500.0, 8000.0, 50, Law::A);
        let mut d = Drive::new();
        d.run(&mut room, &[(a, &from_a), (b, &from_b)], 30);
        assert!(amplitude(d.tail(b, 20), 1000.0) > 7500.0);
        assert!(amplitude(d.tail(a, 20), 1500.0) > 7500.0);
        assert!(amplitude(d.tail(b, 20), 1500.0) < 60.0);
        assert!(amplitude(d.tail(a, 20), 1000.0) < 60.0);
        let at_c = d.tail(c, 20);
        assert!(amplitude(at_c, 1000.0) > 7500.0 && amplitude(at_c, 1500.0) > 7500.0);
    }

    #[test]
    fn loud_callers_together_saturate_without_wrapping() {
        let mut room = Room::new(&settings());
        let a = room.join(Law::Mu).unwrap();
        let b = room.join(Law::Mu).unwrap();
        let c = room.join(Law::A).unwrap();
        // In phase and near full scale: the sum is about twice full scale.
        let loud = sine(1000.0, 30000.0, 50, Law::Mu);
        let mut d = Drive::new();
        d.run(&mut room, &[(a, &loud), (b, &loud)], 30);
        let heard = d.tail(c, 20);
        // 1 kHz is 8 samples a cycle and frames hold whole cycles, so the
        // delayed output keeps the input's phase.
        for (n, &s) in heard.iter().enumerate() {
            let expected = (2.0 * std::f64::consts::PI * (n % 8) as f64 / 8.0).sin();
            if expected.abs() > 0.5 {
                assert_eq!(s.signum(), expected.signum() as i16, "sample {n}: {s}");
                assert!(s.unsigned_abs() > 24_000, "sample {n}: {s}");
            }
        }
        assert!(heard.iter().all(|&s| s > -32_768));
    }

    #[test]
    fn soft_clip_is_monotonic_and_bounded() {
        let mut last = i16::MIN;
        for x in (-300_000..300_000).step_by(97) {
            let y = soft_clip(x);
            assert!(y >= last, "{x}");
            last = y;
        }
        assert_eq!(soft_clip(1000), 1000);
        assert_eq!(soft_clip(-KNEE), -KNEE as i16);
        assert!(soft_clip(i32::MAX) > 32_000);
        assert!(soft_clip(i32::MIN) >= -i16::MAX);
    }

    #[test]
    fn reordered_duplicated_and_late_packets_still_give_clean_audio() {
        let mut room = Room::new(&settings());
        let a = room.join(Law::Mu).unwrap();
        let b = room.join(Law::Mu).unwrap();
        let tone = sine(1000.0, 8000.0, 40, Law::Mu);
        let mut d = Drive::new();
        let ts = |k: usize| 99_000u32.wrapping_add((k * FRAME_SAMPLES) as u32);
        // Pairs arrive swapped, every fourth frame twice, and one frame
        // arrives again long after it was played.
        for k in (0..40).step_by(2) {
            let now = d.now();
            room.push_audio(a, ts(k + 1), &tone[k + 1], now).unwrap();
            room.push_audio(a, ts(k), &tone[k], now).unwrap();
            if k % 4 == 0 {
                let again = room.push_audio(a, ts(k), &tone[k], now).unwrap();
                assert_eq!(again, Arrival::Duplicate);
            }
            if k == 20 {
                let late = room.push_audio(a, ts(2), &tone[2], now).unwrap();
                assert_eq!(late, Arrival::Late);
            }
            d.mix(&mut room);
            d.mix(&mut room);
        }
        // From the third frame on, B hears an unbroken tone.
        let heard = &d.heard[&b][3 * FRAME_SAMPLES..];
        for frame in heard.chunks(FRAME_SAMPLES) {
            let amp = amplitude(frame, 1000.0);
            assert!((7500.0..8500.0).contains(&amp), "{amp}");
        }
        let s = room.stats(a).unwrap();
        assert_eq!((s.buffered, s.duplicate, s.late, s.resyncs), (40, 10, 1, 0));
    }

    #[test]
    fn muted_callers_contribute_nothing() {
        let mut room = Room::new(&settings());
        let a = room.join(Law::Mu).unwrap();
        let b = room.join(Law::Mu).unwrap();
        room.set_receiving(a, false).unwrap();
        let tone = sine(1000.0, 8000.0, 10, Law::Mu);
        let mut d = Drive::new();
        assert_eq!(
            room.push_audio(a, 0, &tone[0], d.now()).unwrap(),
            Arrival::Ignored
        );
        d.run(&mut room, &[(a, &tone)], 10);
        assert!(d.heard[&b].iter().all(|&s| s == 0));
        room.set_receiving(a, true).unwrap();
        d.run(&mut room, &[(a, &tone)], 10);
        assert!(amplitude(d.tail(b, 5), 1000.0) > 7500.0);
        // A call that sends nothing is handed nothing.
        room.set_sending(b, false).unwrap();
        d.clear();
        d.run(&mut room, &[(a, &tone)], 2);
        assert!(!d.heard.contains_key(&b));
    }

    #[test]
    fn big_rooms_mix_only_the_loudest_speakers() {
        let mut room = Room::new(&BridgeSettings {
            active_speakers: 3,
            ..settings()
        });
        let talkers: Vec<_> = (0..5).map(|_| room.join(Law::Mu).unwrap()).collect();
        let listener = room.join(Law::Mu).unwrap();
        let freqs = [400.0, 800.0, 1200.0, 1600.0, 2000.0];
        let levels = [1000.0, 8000.0, 2000.0, 6000.0, 4000.0];
        let tones: Vec<_> = freqs
            .iter()
            .zip(levels)
            .map(|(&f, l)| sine(f, l, 50, Law::Mu))
            .collect();
        let senders: Vec<_> = talkers
            .iter()
            .zip(&tones)
            .map(|(&i, t)| (i, &t[..]))
            .collect();
        let mut d = Drive::new();
        d.run(&mut room, &senders, 30);
        let heard = d.tail(listener, 20);
        let mixed: Vec<bool> = freqs.iter().map(|&f| amplitude(heard, f) > 100.0).collect();
        assert_eq!(mixed, [false, true, false, true, true]);
        let speaking: Vec<bool> = talkers
            .iter()
            .map(|&t| room.is_speaking(t).unwrap())
            .collect();
        assert_eq!(speaking, mixed);
        // In a room this big, noise under −50 dBov is not mixed, once the
        // level of the louder speech before it has decayed.
        let noise = sine(3000.0, 50.0, 50, Law::Mu);
        let mut d = Drive::new();
        d.run(&mut room, &[(talkers[0], &noise)], 60);
        assert!(amplitude(d.tail(listener, 20), 3000.0) < 5.0);
    }

    #[test]
    fn a_much_louder_talker_takes_a_slot_at_once() {
        let mut room = Room::new(&BridgeSettings {
            active_speakers: 2,
            ..settings()
        });
        let ids: Vec<_> = (0..4).map(|_| room.join(Law::Mu).unwrap()).collect();
        let soft = sine(500.0, 2000.0, 50, Law::Mu);
        let softer = sine(700.0, 1500.0, 50, Law::Mu);
        let loud = sine(900.0, 12000.0, 50, Law::Mu);
        let mut d = Drive::new();
        d.run(&mut room, &[(ids[0], &soft), (ids[1], &softer)], 10);
        assert_eq!(room.speakers().collect::<Vec<_>>(), [ids[0], ids[1]]);
        // Level is instant on attack: the loud talker is in from its first
        // frame (after the playout delay), the softer one is out.
        let senders = [
            (ids[0], &soft[..]),
            (ids[1], &softer[..]),
            (ids[2], &loud[..]),
        ];
        d.run(&mut room, &senders, 3);
        assert_eq!(room.speakers().collect::<Vec<_>>(), [ids[2], ids[0]]);
        assert!(!room.is_speaking(ids[1]).unwrap());
    }

    #[test]
    fn listeners_with_the_same_law_share_one_encoded_frame() {
        let mut room = Room::new(&settings());
        let talker = room.join(Law::Mu).unwrap();
        let mu: Vec<_> = (0..3).map(|_| room.join(Law::Mu).unwrap()).collect();
        let a: Vec<_> = (0..3).map(|_| room.join(Law::A).unwrap()).collect();
        let tone = sine(1000.0, 8000.0, 10, Law::Mu);
        let t0 = Instant::now();
        for k in 0..4u32 {
            room.push_audio(talker, k * 160, &tone[k as usize], t0)
                .unwrap();
        }
        // Two ticks of playout delay, then the talker is heard.
        room.mix_tick(|_, _| {});
        room.mix_tick(|_, _| {});
        for _ in 0..3 {
            let mut at: HashMap<ParticipantId, usize> = HashMap::new();
            room.mix_tick(|id, frame| {
                at.insert(id, frame.as_ptr() as usize);
            });
            assert_eq!(at.len(), 7);
            assert!(mu.iter().all(|i| at[i] == at[&mu[0]]));
            assert!(a.iter().all(|i| at[i] == at[&a[0]]));
            assert_ne!(at[&mu[0]], at[&a[0]]);
            assert_ne!(at[&talker], at[&mu[0]]);
        }
    }

    #[test]
    fn others_hear_join_and_leave_tones() {
        let mut room = Room::new(&BridgeSettings::default());
        let a = room.join(Law::Mu).unwrap();
        let b = room.join(Law::A).unwrap();
        let mut d = Drive::new();
        // A hears B's join tone; B does not hear its own.
        d.run(&mut room, &[], 10);
        assert!(amplitude(&d.heard[&a], 440.0) > 3000.0);
        assert!(amplitude(&d.heard[&b], 440.0) < 20.0);
        d.run(&mut room, &[], 2);
        assert!(d.tail(a, 2).iter().all(|&s| s == 0), "tone over");
        let c = room.join(Law::Mu).unwrap();
        d.clear();
        d.run(&mut room, &[], 10);
        for id in [a, b] {
            assert!(amplitude(&d.heard[&id], 440.0) > 3000.0);
        }
        assert!(amplitude(&d.heard[&c], 440.0) < 20.0);
        // C leaves: A and B hear 660 Hz, then 440 Hz.
        room.leave(c).unwrap();
        d.clear();
        d.run(&mut room, &[], 10);
        for id in [a, b] {
            let h = &d.heard[&id];
            let (high, low) = h.split_at(5 * FRAME_SAMPLES);
            assert!(amplitude(high, 660.0) > 3000.0 && amplitude(high, 440.0) < 300.0);
            assert!(amplitude(low, 440.0) > 3000.0 && amplitude(low, 660.0) < 300.0);
        }
        // Someone joining during a tone does not hear the rest of it.
        room.leave(b).unwrap();
        let e = room.join(Law::Mu).unwrap();
        d.clear();
        d.run(&mut room, &[], 10);
        assert!(d.heard[&e].iter().all(|&s| s == 0));
        assert!(amplitude(&d.heard[&a], 660.0) > 1000.0);
    }

    #[test]
    fn a_full_room_refuses_the_next_caller() {
        let mut room = Room::new(&BridgeSettings {
            max_room_size: 2,
            ..settings()
        });
        let a = room.join(Law::Mu).unwrap();
        room.join(Law::A).unwrap();
        assert_eq!(room.join(Law::Mu), Err(RoomFull { max: 2 }));
        room.leave(a).unwrap();
        assert!(room.join(Law::Mu).is_ok());
    }

    #[test]
    fn events_follow_joins_and_leaves() {
        let mut room = Room::new(&settings());
        let a = room.join(Law::Mu).unwrap();
        let b = room.join(Law::Mu).unwrap();
        room.leave(a).unwrap();
        assert_eq!(room.leave(a), Err(UnknownParticipant(a)));
        room.leave(b).unwrap();
        let events: Vec<_> = std::iter::from_fn(|| room.poll_event()).collect();
        assert_eq!(
            events,
            [
                RoomEvent::ParticipantJoined(a),
                RoomEvent::ParticipantJoined(b),
                RoomEvent::ParticipantLeft(a),
                RoomEvent::ParticipantLeft(b),
                RoomEvent::RoomEmpty,
            ]
        );
        assert!(room.is_empty());
        let t0 = Instant::now();
        assert_eq!(
            room.push_audio(a, 0, &[0xff; 160], t0),
            Err(UnknownParticipant(a))
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Join(bool),
        Leave(usize),
        Push(usize, u32, Vec<u8>),
        Mute(usize, bool),
        Tick,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            any::<bool>().prop_map(Op::Join),
            (0..8usize).prop_map(Op::Leave),
            (
                0..8usize,
                any::<u32>(),
                proptest::collection::vec(any::<u8>(), 0..600)
            )
                .prop_map(|(i, ts, p)| Op::Push(i, ts, p)),
            (0..8usize, any::<bool>()).prop_map(|(i, on)| Op::Mute(i, on)),
            Just(Op::Tick),
        ]
    }

    proptest::proptest! {
        /// Whatever arrives in whatever order, nothing panics and every
        /// sending participant gets exactly one frame per tick.
        #[test]
        fn any_sequence_of_calls_is_safe(ops in proptest::collection::vec(op(), 1..120)) {
            let mut room = Room::new(&BridgeSettings {
                max_room_size: 6,
                active_speakers: 2,
                ..BridgeSettings::default()
            });
            let mut ids: Vec<ParticipantId> = Vec::new();
            let t0 = Instant::now();
            let mut ms = 0u64;
            for op in ops {
                ms += 7;
                let now = t0 + Duration::from_millis(ms);
                match op {
                    Op::Join(pcma) => {
                        let law = if pcma { Law::A } else { Law::Mu };
                        match room.join(law) {
                            Ok(id) => ids.push(id),
                            Err(RoomFull { max }) => proptest::prop_assert_eq!(ids.len(), max),
                        }
                    }
                    Op::Leave(i) => {
                        if i < ids.len() {
                            let id = ids.swap_remove(i);
                            proptest::prop_assert!(room.leave(id).is_ok());
                        }
                    }
                    Op::Push(i, ts, payload) => {
                        if let Some(&id) = ids.get(i) {
                            proptest::prop_assert!(room.push_audio(id, ts, &payload, now).is_ok());
                        }
                    }
                    Op::Mute(i, on) => {
                        if let Some(&id) = ids.get(i) {
                            proptest::prop_assert!(room.set_receiving(id, on).is_ok());
                        }
                    }
                    Op::Tick => {
                        let mut seen = Vec::new();
                        room.mix_tick(|id, _| seen.push(id));
                        seen.sort();
                        let mut expected = ids.clone();
                        expected.sort();
                        proptest::prop_assert_eq!(seen, expected);
                    }
                }
                proptest::prop_assert_eq!(room.len(), ids.len());
            }
        }
    }

    #[test]
    fn rooms_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<Room>();
        send::<crate::bridge::Conferences>();
    }

    #[test]
    fn handles_survive_swap_removal() {
        let mut room = Room::new(&settings());
        let ids: Vec<_> = (0..5).map(|_| room.join(Law::Mu).unwrap()).collect();
        room.leave(ids[1]).unwrap();
        room.leave(ids[0]).unwrap();
        for &id in &ids[2..] {
            assert!(room.contains(id));
            room.set_law(id, Law::A).unwrap();
            assert_eq!(room.law(id), Ok(Law::A));
        }
        assert_eq!(room.len(), 3);
    }
}

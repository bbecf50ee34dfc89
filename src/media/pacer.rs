//! The shared playback pacer: one 20 ms clock for every call that is
//! listening to a prompt, instead of a timer per call.
//!
//! [`Pacer`] is the sans-IO core. It holds the streams (a slab with a free
//! list, addressed by generation-checked [`StreamId`]s), each playing a queue
//! of prompts and silences; every tick it writes one RTP packet per stream
//! into a preallocated [`PacketBatch`], with the destination address, and
//! reports finished or stopped playbacks through [`Pacer::poll_event`].
//!
//! Ticks follow an absolute schedule, `start + k·20 ms`, so rounding and
//! scheduling delays never accumulate into drift. A late tick sends *one*
//! frame per stream and counts the ticks it missed (advancing each stream's
//! RTP clock by the missed time) instead of bursting several frames per
//! stream: a burst would arrive at the far end as a clump its jitter buffer
//! may drop, while a timestamp gap is played as a short silence.
//!
//! A stream can also be *live* ([`Pacer::set_live`]): with nothing queued
//! it sends the frame fed to it for this tick ([`Pacer::feed_live`]), the
//! caller's conference mix, instead of silence.
//!
//! [`PacerShell`] is the I/O side: a dedicated thread that sleeps to the
//! next deadline, mixes the embedded conferences into the live streams,
//! ticks the core under a short lock and sends the batch.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::g711::Law;
use super::prompts::{Frame, Frames, Prompt};
use super::rtp::{RtpSender, FRAME_BYTES, MAX_PACKET_LEN, SAMPLES_PER_FRAME};

/// The packetisation interval: 20 ms, the G.711 default (RFC 3551 §4.5).
pub const TICK: Duration = Duration::from_millis(20);
const TICK_NANOS: u128 = 20_000_000;

static SILENCE_MU: Frame = [0xff; FRAME_BYTES];
static SILENCE_A: Frame = [0xd5; FRAME_BYTES];

fn silence(law: Law) -> &'static Frame {
    match law {
        Law::Mu => &SILENCE_MU,
        Law::A => &SILENCE_A,
    }
}

/// Handle of one stream in the pacer. Stale handles (of a removed stream
/// whose slot was reused) are refused, thanks to the generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    index: u32,
    generation: u32,
}

/// Identifies one queued playback (a prompt or a silence) in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaybackId(pub u64);

/// What the pacer reports back to the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacerEvent {
    /// The playback's last frame was sent.
    Finished {
        /// The stream.
        stream: StreamId,
        /// The playback.
        playback: PlaybackId,
    },
    /// The playback was cut short by [`Pacer::stop`] (barge-in) or never started.
    Stopped {
        /// The stream.
        stream: StreamId,
        /// The playback.
        playback: PlaybackId,
    },
}

/// Errors of pacer operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacerError {
    /// The stream was removed (or never existed).
    #[error("no such pacer stream")]
    NoSuchStream,
}

/// Counters of the pacer core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacerStats {
    /// Ticks performed.
    pub ticks: u64,
    /// Ticks skipped because the pacer ran late.
    pub missed_ticks: u64,
    /// Packets written into batches.
    pub packets: u64,
}

/// What one call to [`Pacer::tick`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Packets written into the batch.
    pub packets: usize,
    /// Ticks skipped before this one (0 when on time).
    pub missed: u64,
}

#[derive(Debug)]
enum Item {
    Prompt {
        id: PlaybackId,
        frames: Frames,
        pos: usize,
    },
    Silence {
        id: PlaybackId,
        remaining: u64,
    },
}

impl Item {
    fn id(&self) -> PlaybackId {
        match self {
            Item::Prompt { id, .. } | Item::Silence { id, .. } => *id,
        }
    }
}

#[derive(Debug)]
struct Stream<R> {
    sender: RtpSender,
    law: Law,
    dest: SocketAddr,
    route: R,
    /// The route's socket is `connect()`ed to `dest`.
    connected: bool,
    queue: VecDeque<Item>,
    /// Live mode: with nothing queued, the stream sends the frame fed by
    /// [`Pacer::feed_live`] for this tick instead of silence.
    live: bool,
    /// This tick's live frame, kept inline so feeding it never allocates.
    live_frame: Frame,
    /// `live_frame` was fed since the last packet; a tick without a fresh
    /// frame (the mixer did not send to this caller) sends silence.
    live_fresh: bool,
}

#[derive(Debug)]
struct Slot<R> {
    generation: u32,
    stream: Option<Stream<R>>,
}

/// One packet in a [`PacketBatch`].
#[derive(Clone, Debug)]
pub struct BatchEntry<R> {
    /// The stream that produced it.
    pub stream: StreamId,
    /// Where to send it.
    pub dest: SocketAddr,
    /// The stream's route (for the shell: its socket).
    pub route: R,
    /// The route's socket is connected to `dest`: send without an address.
    pub connected: bool,
    len: usize,
}

/// The packets of one tick: fixed-size slots in one buffer, reused from
/// tick to tick, so sending never allocates per packet (the buffer only grows
/// when the number of streams does).
#[derive(Debug)]
pub struct PacketBatch<R> {
    data: Vec<u8>,
    entries: Vec<BatchEntry<R>>,
}

impl<R> Default for PacketBatch<R> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<R> PacketBatch<R> {
    /// A batch with room for `streams` packets before it needs to grow.
    pub fn with_capacity(streams: usize) -> Self {
        PacketBatch {
            data: vec![0; streams * MAX_PACKET_LEN],
            entries: Vec::with_capacity(streams),
        }
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no packets.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops all packets, keeping the storage.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The packets with their entries.
    pub fn iter(&self) -> impl Iterator<Item = (&BatchEntry<R>, &[u8])> {
        self.entries.iter().enumerate().map(|(i, e)| {
            let start = i * MAX_PACKET_LEN;
            (e, self.data.get(start..start + e.len).unwrap_or(&[]))
        })
    }

    /// The `i`-th packet.
    pub fn get(&self, i: usize) -> Option<(&BatchEntry<R>, &[u8])> {
        let e = self.entries.get(i)?;
        let start = i * MAX_PACKET_LEN;
        Some((e, self.data.get(start..start + e.len)?))
    }

    fn reserve(&mut self, streams: usize) {
        let need = streams * MAX_PACKET_LEN;
        if self.data.len() < need {
            self.data.resize(need, 0);
        }
        self.entries
            .reserve(streams.saturating_sub(self.entries.len()));
    }
}

/// The sans-IO pacer core. `R` is a per-stream route copied into each
/// batch entry (the shell uses the call's socket; tests use `()`).
#[derive(Debug)]
pub struct Pacer<R> {
    start: Instant,
    /// Index of the next tick: its deadline is `start + next_tick · TICK`.
    next_tick: u64,
    slots: Vec<Slot<R>>,
    free: Vec<u32>,
    live: usize,
    events: VecDeque<PacerEvent>,
    next_playback: u64,
    stats: PacerStats,
}

impl<R: Clone> Pacer<R> {
    /// A pacer whose first tick is due at `start`.
    pub fn new(start: Instant) -> Self {
        Pacer {
            start,
            next_tick: 0,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            events: VecDeque::new(),
            next_playback: 0,
            stats: PacerStats::default(),
        }
    }

    /// Adds a stream that plays silence until something is queued. The
    /// pacer owns `sender` until [`Pacer::remove_stream`] hands it back, so
    /// the call's sequence numbers and timestamps continue seamlessly.
    pub fn add_stream(
        &mut self,
        sender: RtpSender,
        law: Law,
        dest: SocketAddr,
        route: R,
    ) -> StreamId {
        let stream = Stream {
            sender,
            law,
            dest,
            route,
            connected: false,
            queue: VecDeque::new(),
            live: false,
            live_frame: *silence(law),
            live_fresh: false,
        };
        self.live += 1;
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.stream = Some(stream);
                return StreamId {
                    index,
                    generation: slot.generation,
                };
            }
        }
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 0,
            stream: Some(stream),
        });
        StreamId {
            index,
            generation: 0,
        }
    }

    /// Removes a stream, returning its RTP sender and route. Queued
    /// playbacks are dropped without events: the caller is leaving.
    pub fn remove_stream(&mut self, id: StreamId) -> Option<(RtpSender, R)> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let stream = slot.stream.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.live -= 1;
        Some((stream.sender, stream.route))
    }

    fn stream_mut(&mut self, id: StreamId) -> Result<&mut Stream<R>, PacerError> {
        match self.slots.get_mut(id.index as usize) {
            Some(slot) if slot.generation == id.generation => {
                slot.stream.as_mut().ok_or(PacerError::NoSuchStream)
            }
            _ => Err(PacerError::NoSuchStream),
        }
    }

    fn stream(&self, id: StreamId) -> Option<&Stream<R>> {
        match self.slots.get(id.index as usize) {
            Some(slot) if slot.generation == id.generation => slot.stream.as_ref(),
            _ => None,
        }
    }

    fn next_id(&mut self) -> PlaybackId {
        self.next_playback += 1;
        PlaybackId(self.next_playback)
    }

    /// Queues a prompt in the stream's law.
    pub fn play_prompt(&mut self, id: StreamId, prompt: &Prompt) -> Result<PlaybackId, PacerError> {
        let law = self.stream_mut(id)?.law;
        self.play_frames(id, prompt.frames(law).clone())
    }

    /// Queues pre-encoded frames (already in the stream's law).
    pub fn play_frames(&mut self, id: StreamId, frames: Frames) -> Result<PlaybackId, PacerError> {
        let playback = self.next_id();
        let stream = self.stream_mut(id)?;
        stream.queue.push_back(Item::Prompt {
            id: playback,
            frames,
            pos: 0,
        });
        Ok(playback)
    }

    /// Queues a silence of `duration` (rounded up to whole 20 ms frames),
    /// reported as finished like a prompt: a pause between prompts.
    pub fn play_silence(
        &mut self,
        id: StreamId,
        duration: Duration,
    ) -> Result<PlaybackId, PacerError> {
        let frames = duration.as_nanos().div_ceil(TICK_NANOS) as u64;
        let playback = self.next_id();
        let stream = self.stream_mut(id)?;
        stream.queue.push_back(Item::Silence {
            id: playback,
            remaining: frames,
        });
        Ok(playback)
    }

    /// Barge-in: drops everything queued on the stream at once, reporting
    /// each as [`PacerEvent::Stopped`]. The stream carries on with silence.
    /// Returns how many playbacks were stopped.
    pub fn stop(&mut self, id: StreamId) -> Result<usize, PacerError> {
        let stream = self.stream_mut(id)?;
        let stopped: Vec<PlaybackId> = stream.queue.drain(..).map(|i| i.id()).collect();
        let n = stopped.len();
        self.events
            .extend(stopped.into_iter().map(|playback| PacerEvent::Stopped {
                stream: id,
                playback,
            }));
        Ok(n)
    }

    /// Changes where the stream's packets go (symmetric RTP latched,
    /// re-INVITE). Clears the connected mark: the socket's peer is now stale.
    pub fn set_destination(&mut self, id: StreamId, dest: SocketAddr) -> Result<(), PacerError> {
        let stream = self.stream_mut(id)?;
        if stream.dest != dest {
            stream.dest = dest;
            stream.connected = false;
        }
        Ok(())
    }

    /// Declares that the stream's socket has been `connect()`ed to its
    /// current destination (sensible once symmetric RTP has latched: the
    /// kernel then also drops strays). Its packets are then sent with
    /// `send(2)`, which reuses the socket's cached route instead of a route
    /// lookup per packet (measured ~18% cheaper on loopback).
    pub fn set_connected(&mut self, id: StreamId, connected: bool) -> Result<(), PacerError> {
        self.stream_mut(id)?.connected = connected;
        Ok(())
    }

    /// Switches the stream to (or from) live mode: when nothing is queued,
    /// each tick sends the frame given to [`Pacer::feed_live`] just before
    /// it (a conference mix), or silence if none was. Queued prompts still
    /// play first, so an apology or goodbye is heard over the live source.
    pub fn set_live(&mut self, id: StreamId, live: bool) -> Result<(), PacerError> {
        let stream = self.stream_mut(id)?;
        stream.live = live;
        stream.live_fresh = false;
        Ok(())
    }

    /// True when the stream is in live mode.
    pub fn is_live(&self, id: StreamId) -> bool {
        self.stream(id).is_some_and(|s| s.live)
    }

    /// Hands the stream its live frame (already in the stream's law) for
    /// the next tick. Copied into the stream's own buffer: no allocation.
    /// Ignored when the stream is not live.
    pub fn feed_live(&mut self, id: StreamId, frame: &Frame) -> Result<(), PacerError> {
        let stream = self.stream_mut(id)?;
        if stream.live {
            stream.live_frame = *frame;
            stream.live_fresh = true;
        }
        Ok(())
    }

    /// True while a prompt or silence is queued on the stream.
    pub fn is_playing(&self, id: StreamId) -> bool {
        self.stream(id).is_some_and(|s| !s.queue.is_empty())
    }

    /// The stream's route.
    pub fn route(&self, id: StreamId) -> Option<&R> {
        self.stream(id).map(|s| &s.route)
    }

    /// The stream's RTP sender (read-only; for SR counts, SSRC).
    pub fn sender(&self, id: StreamId) -> Option<&RtpSender> {
        self.stream(id).map(|s| &s.sender)
    }

    /// Number of streams.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no stream is attached.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Counters.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// The deadline of the next tick.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline(self.next_tick)
    }

    fn deadline(&self, k: u64) -> Instant {
        // k · 20 ms computed in nanoseconds from the fixed start: no
        // accumulated rounding, hence no drift. u64 nanoseconds last 584 years.
        self.start + Duration::from_nanos(k.saturating_mul(TICK_NANOS as u64))
    }

    /// The next reported event, if any.
    pub fn poll_event(&mut self) -> Option<PacerEvent> {
        self.events.pop_front()
    }

    /// Runs the tick due at `now`, if any: one packet per stream into `out`
    /// (cleared first). Before the deadline it does nothing. When late by
    /// whole ticks it still sends one packet per stream, counts the missed
    /// ticks and advances every stream's RTP clock by them.
    pub fn tick(&mut self, now: Instant, out: &mut PacketBatch<R>) -> TickOutcome {
        out.clear();
        if now < self.poll_timeout() {
            return TickOutcome::default();
        }
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let due = u64::try_from(elapsed / TICK_NANOS).unwrap_or(u64::MAX);
        let missed = due.saturating_sub(self.next_tick);
        self.next_tick = due.saturating_add(1);
        self.stats.ticks += 1;
        self.stats.missed_ticks += missed;
        let skipped_samples =
            u32::try_from(missed.saturating_mul(u64::from(SAMPLES_PER_FRAME))).unwrap_or(u32::MAX);

        out.reserve(self.live);
        let mut n = 0usize;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(stream) = slot.stream.as_mut() else {
                continue;
            };
            let id = StreamId {
                index: index as u32,
                generation: slot.generation,
            };
            if skipped_samples > 0 {
                stream.sender.advance_clock(skipped_samples);
            }
            let start = n * MAX_PACKET_LEN;
            let Some(buf) = out.data.get_mut(start..start + MAX_PACKET_LEN) else {
                break;
            };
            // The slot is MAX_PACKET_LEN long and the payload one frame, so
            // building cannot fail; if it did, only this packet is skipped.
            if let Some(len) = play_one(stream, id, buf, &mut self.events) {
                out.entries.push(BatchEntry {
                    stream: id,
                    dest: stream.dest,
                    route: stream.route.clone(),
                    connected: stream.connected,
                    len,
                });
                n += 1;
            }
        }
        self.stats.packets += n as u64;
        TickOutcome { packets: n, missed }
    }
}

/// Writes the stream's next packet into `buf`, reporting playbacks that
/// finish. Returns the packet length.
fn play_one<R>(
    stream: &mut Stream<R>,
    id: StreamId,
    buf: &mut [u8],
    events: &mut VecDeque<PacerEvent>,
) -> Option<usize> {
    // Zero-length items (an empty prompt, a zero silence) finish at once
    // and must not cost a frame.
    while let Some(front) = stream.queue.front() {
        let empty = match front {
            Item::Prompt { frames, pos, .. } => *pos >= frames.len(),
            Item::Silence { remaining, .. } => *remaining == 0,
        };
        if !empty {
            break;
        }
        if let Some(item) = stream.queue.pop_front() {
            events.push_back(PacerEvent::Finished {
                stream: id,
                playback: item.id(),
            });
        }
    }
    let law = stream.law;
    // A live frame is used at most once: a stale mix must never repeat.
    let fresh = std::mem::replace(&mut stream.live_fresh, false);
    let (len, finished) = match stream.queue.front_mut() {
        None if stream.live && fresh => (
            stream.sender.build_audio(&stream.live_frame, buf).ok(),
            false,
        ),
        None => (stream.sender.build_audio(silence(law), buf).ok(), false),
        Some(Item::Prompt { frames, pos, .. }) => {
            let frame = frames.get(*pos).unwrap_or(silence(law));
            *pos += 1;
            let finished = *pos >= frames.len();
            (stream.sender.build_audio(frame, buf).ok(), finished)
        }
        Some(Item::Silence { remaining, .. }) => {
            *remaining = remaining.saturating_sub(1);
            let finished = *remaining == 0;
            (stream.sender.build_audio(silence(law), buf).ok(), finished)
        }
    };
    if finished {
        if let Some(item) = stream.queue.pop_front() {
            events.push_back(PacerEvent::Finished {
                stream: id,
                playback: item.id(),
            });
        }
    }
    len
}

#[cfg(unix)]
pub use shell::{BatchSender, BridgeJoinError, PacerHandle, PacerShell, ShellStats};

/// The I/O shell around [`Pacer`].
///
/// # Why a dedicated thread
/// tokio's timer wheel has 1 ms granularity and a tick with thousands of
/// streams is a few milliseconds of CPU that should not sit on a runtime
/// worker; an OS thread sleeping to an absolute deadline wakes within tens of
/// microseconds and never delays other tasks. Calls talk to it through a
/// [`PacerHandle`] (a `std::sync::Mutex`, held only for queue edits and for
/// building one tick's packets, never across I/O) and receive events on a
/// tokio channel.
///
/// # How packets are sent: one syscall per packet, `sendmmsg` where it helps
/// Every call has its own RTP port, and its RTP must leave from that port:
/// symmetric RTP (RFC 4961) peers and NATs only accept media from the port
/// the SDP advertised. `sendmmsg(2)` batches many datagrams on *one* socket,
/// so with a socket per call a batch has one packet per socket, and a
/// shared sending socket cannot forge another socket's source port
/// (IP_PKTINFO sets the source address, not the port). So the shell groups
/// consecutive packets that go out on the same socket and uses `sendmmsg`
/// for each run of two or more (streams that share a socket, e.g. a
/// multiplexed media port), and a plain non-blocking `send_to` otherwise,
/// or `send` when the call marked its socket connected
/// ([`Pacer::set_connected`]). With one socket per call that is one syscall
/// per packet.
///
/// Measured on loopback (`benches/media.rs`, a loaded 2-core VM): `send_to`
/// 6.7–7.8 µs per packet, `send` on a connected socket 5.4–6.3 µs,
/// `sendmmsg` of 1,000 packets on one socket 5.6–6.4 µs per packet. The
/// kernel's UDP path, not the syscall entry, dominates, so io_uring (one
/// submission for sends on many sockets) would save little of it, for a new
/// dependency and a kernel feature often disabled in containers. It is the
/// next step if the syscall share grows (on real NICs, where loopback's
/// receive-side work is not charged to the sender). Capacity therefore
/// scales by running one [`PacerShell`] per core and spreading calls over
/// them.
///
/// A full socket buffer (`EAGAIN`) drops the packet and counts it: a pacer
/// must never block.
#[cfg(unix)]
mod shell {
    use std::collections::HashMap;
    use std::io;
    use std::net::SocketAddr;
    use std::os::fd::{AsFd, AsRawFd};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use tokio::sync::mpsc;

    use super::{Pacer, PacerError, PacerEvent, PacerStats, PacketBatch, PlaybackId, StreamId};
    use crate::bridge::jitter::MAX_PAYLOAD;
    use crate::bridge::{BridgeSettings, ConferenceEvent, Conferences, ParticipantId, RoomFull};
    use crate::media::g711::Law;
    use crate::media::prompts::Prompt;
    use crate::media::rtp::RtpSender;

    struct Inner<S> {
        pacer: Pacer<Arc<S>>,
        listeners: HashMap<StreamId, mpsc::UnboundedSender<PacerEvent>>,
        /// The embedded conferences. They live under the pacer's lock and
        /// are mixed by the pacer thread right before it builds the tick's
        /// packets: one clock for mixing and sending, so every mix frame
        /// goes out in the very tick it was made, and the mixer needs no
        /// lock or thread of its own.
        bridge: Conferences,
        /// Which pacer stream carries each participant's mix.
        seats: HashMap<ParticipantId, StreamId>,
        /// Audio the call tasks received from joined callers, drained into
        /// the jitter buffers at each tick.
        heard: std::sync::mpsc::Receiver<Heard>,
    }

    /// How many received packets may wait for the next tick, across all
    /// callers. Each joined caller sends one per 20 ms, so this covers a
    /// thousand callers with a full tick of slack; beyond it packets are
    /// dropped (counted) rather than blocking a call task.
    const HEARD_QUEUE: usize = 2048;

    /// One received audio payload of a joined caller, copied into a fixed
    /// buffer so the bounded queue (allocated once) never allocates per
    /// packet.
    struct Heard {
        participant: ParticipantId,
        timestamp: u32,
        arrived: Instant,
        len: usize,
        payload: [u8; MAX_PAYLOAD],
    }

    /// Why a call could not join the embedded bridge.
    #[derive(Debug, thiserror::Error, PartialEq, Eq)]
    pub enum BridgeJoinError {
        /// The meeting's room is at `bridge.max_room_size`.
        #[error(transparent)]
        RoomFull(#[from] RoomFull),
        /// The call's pacer stream is gone.
        #[error(transparent)]
        Stream(#[from] PacerError),
    }

    struct Shared<S> {
        inner: Mutex<Inner<S>>,
        /// The sending side of [`Inner::heard`]: call tasks queue audio
        /// without taking the pacer's lock.
        heard: std::sync::mpsc::SyncSender<Heard>,
        heard_dropped: AtomicU64,
        stop: AtomicBool,
        sent: AtomicU64,
        dropped: AtomicU64,
        late_wakeups: AtomicU64,
        send_nanos: AtomicU64,
    }

    impl<S> Shared<S> {
        fn lock(&self) -> MutexGuard<'_, Inner<S>> {
            // A panic while holding the lock leaves plain data behind; the
            // pacer state is still usable, so poisoning is ignored.
            self.inner.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// Counters of the shell.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ShellStats {
        /// Core counters (ticks, missed ticks, packets built).
        pub pacer: PacerStats,
        /// Datagrams handed to the kernel.
        pub sent: u64,
        /// Datagrams dropped (socket buffer full or send error).
        pub dropped: u64,
        /// Wake-ups more than 2 ms after the deadline.
        pub late_wakeups: u64,
        /// Time spent in send syscalls (divide by `sent` for the cost per packet).
        pub send_time: Duration,
        /// Embedded conference rooms open.
        pub bridge_rooms: usize,
        /// Callers in the embedded conferences.
        pub bridge_participants: usize,
        /// Received audio dropped because the queue to the mixer was full.
        pub bridge_audio_dropped: u64,
    }

    /// The running pacer thread. Dropping it stops the thread.
    pub struct PacerShell<S: AsFd + Send + Sync + 'static> {
        shared: Arc<Shared<S>>,
        thread: Option<JoinHandle<()>>,
    }

    /// A cheap, cloneable handle for calls: add streams, queue prompts,
    /// barge in, remove.
    pub struct PacerHandle<S> {
        shared: Arc<Shared<S>>,
    }

    impl<S> Clone for PacerHandle<S> {
        fn clone(&self) -> Self {
            PacerHandle {
                shared: self.shared.clone(),
            }
        }
    }

    impl<S: AsFd + Send + Sync + 'static> PacerShell<S> {
        /// Starts the pacer thread at normal priority; the first tick is due now.
        pub fn spawn() -> io::Result<Self> {
            Self::spawn_with_nice(0)
        }

        /// Starts the pacer thread and sets its nice value (-20..=19; 0
        /// leaves it alone). A raised priority (negative nice) lets the
        /// pacer win the CPU against batch work on a busy host; it cannot
        /// help when the pacer itself needs more than one core's time.
        /// Raising it needs CAP_SYS_NICE; failure is logged and the pacer
        /// runs at normal priority.
        pub fn spawn_with_nice(nice: i32) -> io::Result<Self> {
            Self::spawn_with_bridge(nice, BridgeSettings::default())
        }

        /// Starts the pacer thread (see [`PacerShell::spawn_with_nice`])
        /// with embedded conferences following `bridge`.
        pub fn spawn_with_bridge(nice: i32, bridge: BridgeSettings) -> io::Result<Self> {
            let (heard_tx, heard_rx) = std::sync::mpsc::sync_channel(HEARD_QUEUE);
            let shared = Arc::new(Shared {
                inner: Mutex::new(Inner {
                    pacer: Pacer::new(Instant::now()),
                    listeners: HashMap::new(),
                    bridge: Conferences::new(bridge),
                    seats: HashMap::new(),
                    heard: heard_rx,
                }),
                heard: heard_tx,
                heard_dropped: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                sent: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                late_wakeups: AtomicU64::new(0),
                send_nanos: AtomicU64::new(0),
            });
            let thread_shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name("dialgate-pacer".into())
                .spawn(move || {
                    if nice != 0 {
                        if let Err(e) = set_thread_nice(nice) {
                            tracing::warn!(nice, error = %e, "pacer: cannot change thread priority");
                        }
                    }
                    run(&thread_shared)
                })?;
            Ok(PacerShell {
                shared,
                thread: Some(thread),
            })
        }

        /// A handle for calls.
        pub fn handle(&self) -> PacerHandle<S> {
            PacerHandle {
                shared: self.shared.clone(),
            }
        }

        /// Stops the thread and waits for it (at most one tick).
        pub fn shutdown(mut self) {
            self.stop_thread();
        }

        fn stop_thread(&mut self) {
            self.shared.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                // A panicked pacer thread has nothing left to clean up.
                let _ = t.join();
            }
        }
    }

    impl<S: AsFd + Send + Sync + 'static> Drop for PacerShell<S> {
        fn drop(&mut self) {
            self.stop_thread();
        }
    }

    impl<S> PacerHandle<S> {
        /// Attaches a call's RTP stream: packets leave from `socket` (the
        /// call's own RTP port) towards `dest`. Events for this stream arrive
        /// on the returned receiver.
        pub fn add_stream(
            &self,
            sender: RtpSender,
            law: Law,
            dest: SocketAddr,
            socket: Arc<S>,
        ) -> (StreamId, mpsc::UnboundedReceiver<PacerEvent>) {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut inner = self.shared.lock();
            let id = inner.pacer.add_stream(sender, law, dest, socket);
            inner.listeners.insert(id, tx);
            (id, rx)
        }

        /// Detaches a stream, handing back its RTP sender.
        pub fn remove_stream(&self, id: StreamId) -> Option<RtpSender> {
            let mut inner = self.shared.lock();
            inner.listeners.remove(&id);
            inner.pacer.remove_stream(id).map(|(sender, _)| sender)
        }

        /// Queues a prompt.
        pub fn play(&self, id: StreamId, prompt: &Prompt) -> Result<PlaybackId, PacerError> {
            self.shared.lock().pacer.play_prompt(id, prompt)
        }

        /// Queues a silence.
        pub fn play_silence(
            &self,
            id: StreamId,
            duration: Duration,
        ) -> Result<PlaybackId, PacerError> {
            self.shared.lock().pacer.play_silence(id, duration)
        }

        /// Barge-in: stops everything queued; `Stopped` events follow.
        pub fn stop(&self, id: StreamId) -> Result<usize, PacerError> {
            let mut inner = self.shared.lock();
            let n = inner.pacer.stop(id)?;
            deliver_events(&mut inner);
            Ok(n)
        }

        /// Changes the destination (symmetric RTP latched, re-INVITE).
        pub fn set_destination(&self, id: StreamId, dest: SocketAddr) -> Result<(), PacerError> {
            self.shared.lock().pacer.set_destination(id, dest)
        }

        /// See [`Pacer::set_connected`].
        pub fn set_connected(&self, id: StreamId, connected: bool) -> Result<(), PacerError> {
            self.shared.lock().pacer.set_connected(id, connected)
        }

        /// Number of streams.
        pub fn len(&self) -> usize {
            self.shared.lock().pacer.len()
        }

        /// Puts the call whose mix `stream` carries into `meeting`'s
        /// embedded conference and switches the stream to the live mix.
        /// Refused when the room is full or the stream is gone.
        pub fn join_bridge(
            &self,
            stream: StreamId,
            meeting: &Arc<str>,
            law: Law,
        ) -> Result<ParticipantId, BridgeJoinError> {
            let mut inner = self.shared.lock();
            // Checked first so a refused join leaves no seat behind.
            inner.pacer.set_live(stream, true)?;
            match inner.bridge.join(meeting, law) {
                Ok(participant) => {
                    inner.seats.insert(participant, stream);
                    Ok(participant)
                }
                Err(full) => {
                    let _ = inner.pacer.set_live(stream, false);
                    Err(full.into())
                }
            }
        }

        /// Takes a participant out of its conference (its room closes with
        /// the last one); its stream, if still there, goes back to silence.
        /// Audio of it still queued is dropped at the next tick.
        pub fn leave_bridge(&self, participant: ParticipantId) {
            let mut inner = self.shared.lock();
            let _ = inner.bridge.leave(participant);
            if let Some(stream) = inner.seats.remove(&participant) {
                let _ = inner.pacer.set_live(stream, false);
            }
        }

        /// The participant's mix now goes out on `stream` in `law` (the
        /// call replaced its stream after a codec change).
        pub fn move_participant(
            &self,
            participant: ParticipantId,
            stream: StreamId,
            law: Law,
        ) -> Result<(), PacerError> {
            let mut inner = self.shared.lock();
            inner.pacer.set_live(stream, true)?;
            let _ = inner.bridge.set_law(participant, law);
            inner.seats.insert(participant, stream);
            Ok(())
        }

        /// Hold (RFC 3264 §8.4) from the caller's side: the caller is
        /// neither mixed into the room (music on hold stays out) nor sent
        /// the mix until taken off hold.
        pub fn set_bridge_hold(&self, participant: ParticipantId, on_hold: bool) {
            let mut inner = self.shared.lock();
            let _ = inner.bridge.set_receiving(participant, !on_hold);
            let _ = inner.bridge.set_sending(participant, !on_hold);
        }

        /// Queues one received audio payload of a joined caller for the
        /// mixer, without taking the pacer's lock. Returns false when it
        /// was dropped (queue full, or longer than a jitter buffer takes).
        pub fn bridge_audio(
            &self,
            participant: ParticipantId,
            timestamp: u32,
            payload: &[u8],
            arrived: Instant,
        ) -> bool {
            let mut heard = Heard {
                participant,
                timestamp,
                arrived,
                len: payload.len(),
                payload: [0; MAX_PAYLOAD],
            };
            let queued = match heard.payload.get_mut(..payload.len()) {
                Some(buf) => {
                    buf.copy_from_slice(payload);
                    self.shared.heard.try_send(heard).is_ok()
                }
                None => false,
            };
            if !queued {
                self.shared.heard_dropped.fetch_add(1, Ordering::Relaxed);
            }
            queued
        }

        /// True when no stream is attached.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Counters.
        pub fn stats(&self) -> ShellStats {
            let inner = self.shared.lock();
            ShellStats {
                pacer: inner.pacer.stats(),
                bridge_rooms: inner.bridge.room_count(),
                bridge_participants: inner.bridge.participant_count(),
                bridge_audio_dropped: self.shared.heard_dropped.load(Ordering::Relaxed),
                sent: self.shared.sent.load(Ordering::Relaxed),
                dropped: self.shared.dropped.load(Ordering::Relaxed),
                late_wakeups: self.shared.late_wakeups.load(Ordering::Relaxed),
                send_time: Duration::from_nanos(self.shared.send_nanos.load(Ordering::Relaxed)),
            }
        }
    }

    fn deliver_events<S>(inner: &mut Inner<S>) {
        while let Some(ev) = inner.pacer.poll_event() {
            let stream = match ev {
                PacerEvent::Finished { stream, .. } | PacerEvent::Stopped { stream, .. } => stream,
            };
            if let Some(tx) = inner.listeners.get(&stream) {
                // The call may have gone away; its removal follows shortly.
                let _ = tx.send(ev);
            }
        }
    }

    /// One mixer tick, right before the pacer builds its packets: feeds the
    /// audio received since the last tick (in arrival order, with its
    /// arrival time) to the jitter buffers, mixes every room and hands each
    /// participant's frame to its stream.
    fn mix<S>(inner: &mut Inner<S>) {
        let Inner {
            pacer,
            bridge,
            seats,
            heard,
            ..
        } = inner;
        // Bounded so producers that never pause cannot hold the tick here.
        for _ in 0..HEARD_QUEUE {
            let Ok(h) = heard.try_recv() else { break };
            let payload = h.payload.get(..h.len).unwrap_or(&[]);
            // Audio of a caller who already left is simply dropped.
            let _ = bridge.push_audio(h.participant, h.timestamp, payload, h.arrived);
        }
        if bridge.participant_count() > 0 {
            bridge.tick(|participant, frame| {
                if let Some(stream) = seats.get(&participant) {
                    let _ = pacer.feed_live(*stream, frame);
                }
            });
        }
        while let Some(event) = bridge.poll_event() {
            match event {
                ConferenceEvent::Joined {
                    meeting,
                    participant,
                } => tracing::debug!(%meeting, %participant, "conference: joined"),
                ConferenceEvent::Left {
                    meeting,
                    participant,
                } => tracing::debug!(%meeting, %participant, "conference: left"),
                ConferenceEvent::RoomClosed { meeting } => {
                    tracing::debug!(%meeting, "conference: room closed")
                }
            }
        }
    }

    fn run<S: AsFd>(shared: &Shared<S>) {
        let mut batch: PacketBatch<Arc<S>> = PacketBatch::default();
        let mut sender = BatchSender::default();
        while !shared.stop.load(Ordering::Relaxed) {
            let deadline = shared.lock().pacer.poll_timeout();
            let now = Instant::now();
            if now < deadline {
                std::thread::sleep(deadline - now);
                continue;
            }
            if now.saturating_duration_since(deadline) > Duration::from_millis(2) {
                shared.late_wakeups.fetch_add(1, Ordering::Relaxed);
            }
            {
                let mut inner = shared.lock();
                mix(&mut inner);
                inner.pacer.tick(now, &mut batch);
                deliver_events(&mut inner);
            }
            let started = Instant::now();
            let (sent, dropped) = sender.send(&batch);
            let busy = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            shared.send_nanos.fetch_add(busy, Ordering::Relaxed);
            // Release the sockets' Arcs now, not a tick later.
            batch.clear();
            shared.sent.fetch_add(sent, Ordering::Relaxed);
            shared.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Sends a batch: `sendmmsg` for runs on one socket (Linux), otherwise
    /// one non-blocking `send_to` per packet. Scratch space is reused.
    #[derive(Debug, Default)]
    pub struct BatchSender {
        #[cfg(target_os = "linux")]
        addrs: Vec<socket2::SockAddr>,
    }

    impl BatchSender {
        /// Sends every packet of `batch` from its stream's socket to its
        /// destination. Returns (sent, dropped).
        pub fn send<S: AsFd>(&mut self, batch: &PacketBatch<Arc<S>>) -> (u64, u64) {
            let (mut sent, mut dropped) = (0u64, 0u64);
            let mut i = 0;
            while i < batch.len() {
                let Some((first, _)) = batch.get(i) else {
                    break;
                };
                let fd = first.route.as_fd().as_raw_fd();
                let mut end = i + 1;
                while batch
                    .get(end)
                    .is_some_and(|(e, _)| e.route.as_fd().as_raw_fd() == fd)
                {
                    end += 1;
                }
                let run = end - i;
                #[cfg(target_os = "linux")]
                if run > 1 {
                    let n = self.send_run(batch, i, end);
                    sent += n as u64;
                    dropped += (run - n) as u64;
                    i = end;
                    continue;
                }
                for j in i..end {
                    if let Some((e, pkt)) = batch.get(j) {
                        let sock = socket2::SockRef::from(e.route.as_ref());
                        let r = if e.connected {
                            sock.send(pkt)
                        } else {
                            sock.send_to(pkt, &e.dest.into())
                        };
                        match r {
                            Ok(_) => sent += 1,
                            Err(_) => dropped += 1,
                        }
                    }
                }
                i = end;
            }
            (sent, dropped)
        }

        /// Sends entries `from..to` (all on one socket) with `sendmmsg`,
        /// returning how many went out. The header arrays are allocated per
        /// run (not per packet): they hold raw pointers into this batch and
        /// must not outlive it.
        #[cfg(target_os = "linux")]
        fn send_run<S: AsFd>(
            &mut self,
            batch: &PacketBatch<Arc<S>>,
            from: usize,
            to: usize,
        ) -> usize {
            self.addrs.clear();
            let mut iovs: Vec<libc::iovec> = Vec::with_capacity(to - from);
            let Some((first, _)) = batch.get(from) else {
                return 0;
            };
            for j in from..to {
                if let Some((e, pkt)) = batch.get(j) {
                    self.addrs.push(e.dest.into());
                    iovs.push(libc::iovec {
                        iov_base: pkt.as_ptr() as *mut libc::c_void,
                        iov_len: pkt.len(),
                    });
                }
            }
            let mut msgs: Vec<libc::mmsghdr> = iovs
                .iter_mut()
                .zip(&self.addrs)
                .map(|(iov, addr)| {
                    let mut h = empty_msghdr();
                    h.msg_name = addr.as_ptr() as *mut libc::c_void;
                    h.msg_namelen = addr.len();
                    h.msg_iov = iov as *mut libc::iovec;
                    h.msg_iovlen = 1;
                    libc::mmsghdr {
                        msg_hdr: h,
                        msg_len: 0,
                    }
                })
                .collect();
            let fd = first.route.as_fd();
            let mut done = 0;
            while done < msgs.len() {
                match sendmmsg(fd.as_raw_fd(), &mut msgs[done..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => done += n,
                }
            }
            done
        }
    }

    /// An empty `msghdr`, field by field so no `unsafe` zeroing is needed
    /// (glibc layout; a musl build would need its padding fields too).
    #[cfg(target_os = "linux")]
    fn empty_msghdr() -> libc::msghdr {
        libc::msghdr {
            msg_name: std::ptr::null_mut(),
            msg_namelen: 0,
            msg_iov: std::ptr::null_mut(),
            msg_iovlen: 0,
            msg_control: std::ptr::null_mut(),
            msg_controllen: 0,
            msg_flags: 0,
        }
    }

    /// Sets the calling thread's nice value (on Linux, `setpriority` with a
    /// thread id applies to that thread only).
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn set_thread_nice(nice: i32) -> io::Result<()> {
        // SAFETY: gettid has no preconditions; setpriority only reads its
        // integer arguments.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice.clamp(-20, 19))
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn set_thread_nice(_nice: i32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "thread priority is set on Linux only",
        ))
    }

    /// `sendmmsg(2)` with `MSG_DONTWAIT`: returns how many messages were sent.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn sendmmsg(fd: std::os::fd::RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
        let len = u32::try_from(msgs.len()).unwrap_or(u32::MAX).min(1024);
        // SAFETY: `msgs` is a live, exclusively borrowed slice of at least
        // `len` initialised mmsghdr values; each points to a sockaddr and an
        // iovec owned by the caller that outlive this call, and each iovec
        // points into the batch buffer, borrowed for the whole call. The
        // kernel only writes `msg_len` fields inside `msgs`. `fd` is an open
        // socket borrowed by the caller for the duration of the call.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), len, libc::MSG_DONTWAIT) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::Ssrc;
    use rtp_rs::RtpReader;
    use std::sync::Arc;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 9], port))
    }

    fn sender(ssrc: u32) -> RtpSender {
        RtpSender::with_initial(0, 101, Ssrc(ssrc), 100, 1000).unwrap()
    }

    fn prompt(frames: usize, fill: u8) -> Frames {
        (0..frames)
            .map(|i| [fill.wrapping_add(i as u8); FRAME_BYTES])
            .collect()
    }

    /// (ssrc, seq, timestamp, marker, first payload byte) of every packet.
    fn decode(batch: &PacketBatch<u16>) -> Vec<(u32, u16, u32, bool, u8, u16)> {
        batch
            .iter()
            .map(|(e, p)| {
                let r = RtpReader::new(p).unwrap();
                assert_eq!(r.payload().len(), FRAME_BYTES);
                (
                    r.ssrc(),
                    u16::from(r.sequence_number()),
                    r.timestamp(),
                    r.mark(),
                    r.payload()[0],
                    e.route,
                )
            })
            .collect()
    }

    fn events(p: &mut Pacer<u16>) -> Vec<PacerEvent> {
        std::iter::from_fn(|| p.poll_event()).collect()
    }

    #[test]
    fn nothing_before_the_deadline_then_one_packet_per_stream() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        p.add_stream(sender(1), Law::Mu, addr(1), 1);
        p.add_stream(sender(2), Law::A, addr(2), 2);
        assert_eq!(p.poll_timeout(), t0);
        assert_eq!(p.tick(t0, &mut b).packets, 2);
        assert_eq!(p.poll_timeout(), t0 + TICK);
        assert_eq!(p.tick(t0 + Duration::from_millis(19), &mut b).packets, 0);
        assert!(b.is_empty());
        let out = p.tick(t0 + TICK, &mut b);
        assert_eq!(
            out,
            TickOutcome {
                packets: 2,
                missed: 0
            }
        );
        let got = decode(&b);
        // Idle streams send encoded silence in their own law.
        assert_eq!(got[0], (1, 101, 1160, false, 0xff, 1));
        assert_eq!(got[1], (2, 101, 1160, false, 0xd5, 2));
        let dests: Vec<_> = b.iter().map(|(e, _)| e.dest).collect();
        assert_eq!(dests, [addr(1), addr(2)]);
    }

    #[test]
    fn no_drift_over_ten_thousand_ticks() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        let id = p.add_stream(sender(1), Law::Mu, addr(1), 0);
        for k in 0..10_000u64 {
            let deadline = p.poll_timeout();
            assert_eq!(deadline, t0 + Duration::from_millis(20 * k));
            // Wake up a little late each time, by a varying amount under a tick.
            let late = Duration::from_micros((k * 7919) % 19_000);
            let out = p.tick(deadline + late, &mut b);
            assert_eq!(
                out,
                TickOutcome {
                    packets: 1,
                    missed: 0
                }
            );
        }
        assert_eq!(p.poll_timeout(), t0 + Duration::from_secs(200));
        let s = p.sender(id).unwrap();
        assert_eq!(s.next_timestamp(), 1000 + 10_000 * 160);
        assert_eq!(s.next_sequence(), 100u16.wrapping_add(10_000));
        assert_eq!(
            p.stats(),
            PacerStats {
                ticks: 10_000,
                missed_ticks: 0,
                packets: 10_000
            }
        );
    }

    #[test]
    fn late_tick_catches_up_without_bunching() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        let id = p.add_stream(sender(1), Law::Mu, addr(1), 0);
        p.play_frames(id, prompt(10, 0)).unwrap();
        p.tick(t0, &mut b);
        // 110 ms late: ticks 1..=5 are missed, tick 6 (at 120 ms) is not yet due.
        let out = p.tick(t0 + Duration::from_millis(110), &mut b);
        assert_eq!(
            out,
            TickOutcome {
                packets: 1,
                missed: 4
            }
        );
        let got = decode(&b);
        // One frame only: the prompt continues where it was, the RTP clock
        // carries the lost time (20 ms sent + 4 missed ticks).
        assert_eq!((got[0].1, got[0].2, got[0].4), (101, 1000 + 5 * 160, 1));
        assert_eq!(p.poll_timeout(), t0 + Duration::from_millis(120));
        let out = p.tick(t0 + Duration::from_millis(120), &mut b);
        assert_eq!(out.missed, 0);
        assert_eq!(decode(&b)[0].2, 1000 + 6 * 160);
        assert_eq!(p.stats().missed_ticks, 4);
    }

    #[test]
    fn prompt_plays_in_order_then_reports_finished_then_silence() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        let id = p.add_stream(sender(1), Law::Mu, addr(1), 0);
        let first = p.play_frames(id, prompt(3, 10)).unwrap();
        let gap = p.play_silence(id, Duration::from_millis(30)).unwrap();
        let second = p.play_frames(id, prompt(1, 50)).unwrap();
        assert!(p.is_playing(id));
        let mut payloads = Vec::new();
        let mut seen = Vec::new();
        for k in 0..8 {
            p.tick(t0 + TICK * k, &mut b);
            payloads.push(decode(&b)[0].4);
            seen.push(events(&mut p));
        }
        assert_eq!(payloads, [10, 11, 12, 0xff, 0xff, 50, 0xff, 0xff]);
        let fin = |playback| {
            vec![PacerEvent::Finished {
                stream: id,
                playback,
            }]
        };
        assert_eq!(seen[2], fin(first));
        // 30 ms of silence rounds up to two frames.
        assert_eq!(seen[4], fin(gap));
        assert_eq!(seen[5], fin(second));
        assert!(seen[6].is_empty() && seen[0].is_empty());
        assert!(!p.is_playing(id));
    }

    #[test]
    fn empty_playbacks_finish_without_costing_a_frame() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        let id = p.add_stream(sender(1), Law::Mu, addr(1), 0);
        let e1 = p.play_frames(id, prompt(0, 0)).unwrap();
        let e2 = p.play_silence(id, Duration::ZERO).unwrap();
        let real = p.play_frames(id, prompt(1, 7)).unwrap();
        p.tick(t0, &mut b);
        assert_eq!(decode(&b)[0].4, 7);
        let ids: Vec<_> = events(&mut p)
            .into_iter()
            .map(|e| match e {
                PacerEvent::Finished { playback, .. } => playback,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [e1, e2, real]);
    }

    #[test]
    fn barge_in_stops_at_once_and_reports_each_playback() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        let id = p.add_stream(sender(1), Law::A, addr(1), 0);
        let a = p.play_frames(id, prompt(50, 10)).unwrap();
        let c = p.play_frames(id, prompt(50, 100)).unwrap();
        p.tick(t0, &mut b);
        p.tick(t0 + TICK, &mut b);
        assert_eq!(decode(&b)[0].4, 11);
        assert_eq!(p.stop(id), Ok(2));
        assert_eq!(
            events(&mut p),
            [
                PacerEvent::Stopped {
                    stream: id,
                    playback: a
                },
                PacerEvent::Stopped {
                    stream: id,
                    playback: c
                }
            ]
        );
        p.tick(t0 + TICK * 2, &mut b);
        let got = decode(&b);
        assert_eq!(got[0].4, 0xd5, "silence right after barge-in");
        assert_eq!(got[0].1, 102, "the stream keeps its sequence");
        assert_eq!(p.stop(id), Ok(0));
    }

    #[test]
    fn removal_frees_the_slot_and_refuses_stale_handles() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        let a = p.add_stream(sender(1), Law::Mu, addr(1), 1);
        let c = p.add_stream(sender(2), Law::Mu, addr(2), 2);
        p.play_frames(a, prompt(5, 0)).unwrap();
        p.tick(t0, &mut b);
        let (s, route) = p.remove_stream(a).unwrap();
        assert_eq!((s.ssrc(), route, s.next_sequence()), (Ssrc(1), 1, 101));
        assert_eq!(p.len(), 1);
        assert!(p.remove_stream(a).is_none());
        assert_eq!(p.play_silence(a, TICK), Err(PacerError::NoSuchStream));
        assert_eq!(p.stop(a), Err(PacerError::NoSuchStream));
        assert_eq!(p.set_destination(a, addr(9)), Err(PacerError::NoSuchStream));
        // The slot is reused with a new generation.
        let d = p.add_stream(sender(3), Law::Mu, addr(3), 3);
        assert_ne!(a, d);
        assert!(p.route(a).is_none());
        assert_eq!(p.route(d), Some(&3));
        p.tick(t0 + TICK, &mut b);
        let mut ssrcs: Vec<_> = decode(&b).iter().map(|g| g.0).collect();
        ssrcs.sort();
        assert_eq!(ssrcs, [2, 3]);
        assert!(events(&mut p).is_empty(), "removal reports nothing");
        p.set_destination(c, addr(7)).unwrap();
        p.tick(t0 + TICK * 2, &mut b);
        assert!(b.iter().any(|(e, _)| e.dest == addr(7)));
    }

    #[test]
    fn many_streams_share_one_batch_buffer() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::with_capacity(8);
        for i in 0..1000u32 {
            p.add_stream(sender(i), Law::Mu, addr(1), 0);
        }
        assert_eq!(p.tick(t0, &mut b).packets, 1000);
        let cap = b.data.capacity();
        assert_eq!(p.tick(t0 + TICK, &mut b).packets, 1000);
        assert_eq!(b.data.capacity(), cap, "no growth once sized");
        assert_eq!(b.get(999).map(|(_, pkt)| pkt.len()), Some(MAX_PACKET_LEN));
        assert!(b.get(1000).is_none());
    }

    #[test]
    fn a_live_stream_sends_each_fed_frame_once_and_prompts_first() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut b = PacketBatch::default();
        let id = p.add_stream(sender(1), Law::Mu, addr(1), 0);
        let other = p.add_stream(sender(2), Law::Mu, addr(2), 0);
        // Not live: a fed frame is ignored.
        p.feed_live(id, &[9; FRAME_BYTES]).unwrap();
        p.tick(t0, &mut b);
        assert_eq!(decode(&b)[0].4, 0xff);
        p.set_live(id, true).unwrap();
        assert!(p.is_live(id) && !p.is_live(other));
        let mut heard = Vec::new();
        for k in 1..5u32 {
            // The mixer feeds only on some ticks; a tick without a fresh
            // frame is silence, never a repeat.
            if k != 3 {
                p.feed_live(id, &[k as u8; FRAME_BYTES]).unwrap();
            }
            p.tick(t0 + TICK * k, &mut b);
            heard.push(decode(&b).iter().find(|g| g.0 == 1).unwrap().4);
            assert_eq!(decode(&b).iter().find(|g| g.0 == 2).unwrap().4, 0xff);
        }
        assert_eq!(heard, [1, 2, 0xff, 4]);
        // A queued prompt plays over the live source, then the mix resumes.
        let apology = p.play_frames(id, prompt(1, 50)).unwrap();
        p.feed_live(id, &[7; FRAME_BYTES]).unwrap();
        p.tick(t0 + TICK * 5, &mut b);
        assert_eq!(decode(&b)[0].4, 50);
        assert_eq!(
            events(&mut p),
            [PacerEvent::Finished {
                stream: id,
                playback: apology
            }]
        );
        p.feed_live(id, &[8; FRAME_BYTES]).unwrap();
        p.tick(t0 + TICK * 6, &mut b);
        assert_eq!(decode(&b)[0].4, 8);
        p.set_live(id, false).unwrap();
        p.feed_live(id, &[6; FRAME_BYTES]).unwrap();
        p.tick(t0 + TICK * 7, &mut b);
        assert_eq!(decode(&b)[0].4, 0xff);
        p.remove_stream(id).unwrap();
        assert_eq!(p.set_live(id, true), Err(PacerError::NoSuchStream));
        assert_eq!(
            p.feed_live(id, &[0; FRAME_BYTES]),
            Err(PacerError::NoSuchStream)
        );
    }

    proptest::proptest! {
        /// Any sequence of operations keeps the invariants: one packet per
        /// stream per tick, consecutive sequence numbers per stream, each
        /// playback reported exactly once (finished or stopped).
        #[test]
        fn random_operations_keep_invariants(ops in proptest::collection::vec((0u8..6, 0u16..40), 1..300)) {
            let t0 = Instant::now();
            let mut p: Pacer<u16> = Pacer::new(t0);
            let mut b = PacketBatch::default();
            let mut ids: Vec<StreamId> = Vec::new();
            let mut now = t0;
            let mut last_seq: std::collections::HashMap<u32, u16> = Default::default();
            // Playbacks queued and not yet reported, with their stream.
            let mut queued: std::collections::HashMap<PlaybackId, StreamId> = Default::default();
            let mut next_ssrc = 0u32;
            for (op, arg) in ops {
                let pick = |ids: &Vec<StreamId>| ids.get(usize::from(arg) % ids.len().max(1)).copied();
                match op {
                    0 => {
                        next_ssrc += 1;
                        ids.push(p.add_stream(sender(next_ssrc), Law::Mu, addr(1), 0));
                    }
                    1 => if let Some(id) = pick(&ids) {
                        ids.retain(|i| *i != id);
                        let (s, _) = p.remove_stream(id).unwrap();
                        last_seq.remove(&s.ssrc().0);
                        // Removal drops queued playbacks without events.
                        queued.retain(|_, st| *st != id);
                    },
                    2 => if let Some(id) = pick(&ids) {
                        queued.insert(p.play_frames(id, prompt(usize::from(arg % 5), 1)).unwrap(), id);
                    },
                    3 => if let Some(id) = pick(&ids) {
                        queued.insert(p.play_silence(id, Duration::from_millis(u64::from(arg) * 7)).unwrap(), id);
                    },
                    4 => if let Some(id) = pick(&ids) { p.stop(id).unwrap(); },
                    _ => {
                        now += Duration::from_millis(u64::from(arg) * 3);
                        let out = p.tick(now, &mut b);
                        proptest::prop_assert!(out.packets == 0 || out.packets == p.len());
                        for (_, pkt) in b.iter() {
                            let r = RtpReader::new(pkt).unwrap();
                            let seq = u16::from(r.sequence_number());
                            if let Some(prev) = last_seq.insert(r.ssrc(), seq) {
                                proptest::prop_assert_eq!(seq, prev.wrapping_add(1));
                            }
                        }
                    }
                }
                while let Some(ev) = p.poll_event() {
                    let (PacerEvent::Finished { playback, stream } | PacerEvent::Stopped { playback, stream }) = ev;
                    proptest::prop_assert_eq!(queued.remove(&playback), Some(stream), "unknown or reported twice");
                }
            }
            proptest::prop_assert_eq!(p.len(), ids.len());
            // Whatever is still unreported is still queued somewhere.
            for st in queued.values() {
                proptest::prop_assert!(p.is_playing(*st));
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn shell_sends_over_loopback_and_reports_events() {
        use std::net::UdpSocket;
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        tx.set_nonblocking(true).unwrap();
        let shell = PacerShell::spawn().unwrap();
        let h = shell.handle();
        let (id, mut events) =
            h.add_stream(sender(77), Law::Mu, rx.local_addr().unwrap(), tx.clone());
        let frames: Vec<i16> = vec![1000; 320];
        let pr = Prompt::from_pcm(&frames);
        let playback = h.play(id, &pr).unwrap();
        let mut buf = [0u8; 1500];
        let mut seqs = Vec::new();
        for _ in 0..4 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(
                from,
                tx.local_addr().unwrap(),
                "sent from the call's own port"
            );
            let r = RtpReader::new(&buf[..n]).unwrap();
            assert_eq!(r.ssrc(), 77);
            seqs.push(u16::from(r.sequence_number()));
        }
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "{seqs:?}"
        );
        // The 40 ms prompt finishes; blocking_recv waits for the event.
        assert_eq!(
            events.blocking_recv(),
            Some(PacerEvent::Finished {
                stream: id,
                playback
            })
        );
        let back = h.remove_stream(id).unwrap();
        assert_eq!(back.ssrc(), Ssrc(77));
        assert!(h.is_empty());
        // Built before they were sent (the sent counter may lag the socket).
        assert!(h.stats().pacer.packets >= 4);
        shell.shutdown();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn shell_accepts_the_calls_tokio_sockets() {
        let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let shell = PacerShell::spawn().unwrap();
        let h = shell.handle();
        let (id, mut events) =
            h.add_stream(sender(5), Law::A, rx.local_addr().unwrap(), tx.clone());
        let mut buf = [0u8; 1500];
        let (n, from) = rx.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, tx.local_addr().unwrap());
        assert_eq!(RtpReader::new(&buf[..n]).unwrap().payload()[0], 0xd5);
        // Long enough that no tick can finish it before the barge-in.
        let playback = h.play_silence(id, Duration::from_secs(60)).unwrap();
        assert_eq!(h.stop(id), Ok(1));
        assert_eq!(
            events.recv().await,
            Some(PacerEvent::Stopped {
                stream: id,
                playback
            })
        );
        assert!(h.remove_stream(id).is_some());
        drop(shell);
    }

    #[cfg(unix)]
    #[test]
    fn shell_mixes_joined_callers_onto_their_own_streams() {
        use crate::bridge::{BridgeSettings, RoomFull};
        use std::net::UdpSocket;
        let listener = || {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            tx.set_nonblocking(true).unwrap();
            (rx, tx)
        };
        let (rx_a, tx_a) = listener();
        let (rx_b, tx_b) = listener();
        let (_, tx_c) = listener();
        let shell = PacerShell::spawn_with_bridge(
            0,
            BridgeSettings {
                max_room_size: 2,
                join_tone: false,
                leave_tone: false,
                ..BridgeSettings::default()
            },
        )
        .unwrap();
        let h = shell.handle();
        let (a, _ea) = h.add_stream(sender(1), Law::Mu, rx_a.local_addr().unwrap(), tx_a);
        let (b, _eb) = h.add_stream(sender(2), Law::A, rx_b.local_addr().unwrap(), tx_b);
        let (c, _ec) = h.add_stream(sender(3), Law::Mu, addr(9), tx_c);
        let meeting: Arc<str> = Arc::from("meeting");
        let pa = h.join_bridge(a, &meeting, Law::Mu).unwrap();
        let _pb = h.join_bridge(b, &meeting, Law::A).unwrap();
        assert_eq!(
            h.join_bridge(c, &meeting, Law::Mu),
            Err(BridgeJoinError::RoomFull(RoomFull { max: 2 }))
        );
        h.remove_stream(c).unwrap();
        assert_eq!(
            h.join_bridge(c, &Arc::from("other"), Law::Mu),
            Err(BridgeJoinError::Stream(PacerError::NoSuchStream))
        );
        let stats = h.stats();
        assert_eq!((stats.bridge_rooms, stats.bridge_participants), (1, 2));

        // A talks (one packet per packet B receives); B, an A-law caller,
        // hears it on its own stream, A hears nothing of itself.
        let loud = [crate::media::g711::ulaw_encode(8000); 160];
        let mut buf = [0u8; 1500];
        let mut b_peak = 0i32;
        for k in 0..50u32 {
            assert!(h.bridge_audio(pa, k * 160, &loud, Instant::now()));
            let n = rx_b.recv(&mut buf).unwrap();
            let r = RtpReader::new(&buf[..n]).unwrap();
            assert_eq!(r.ssrc(), 2);
            let mut pcm = [0i16; 160];
            Law::A.decode(r.payload(), &mut pcm);
            b_peak = b_peak.max(pcm.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0));
        }
        assert!(b_peak > 7000, "B heard {b_peak}");
        for _ in 0..20 {
            let n = rx_a.recv(&mut buf).unwrap();
            let r = RtpReader::new(&buf[..n]).unwrap();
            assert!(r.payload().iter().all(|b| *b == 0xff || *b == 0x7f));
        }
        // Too long for a jitter buffer: dropped and counted.
        assert!(!h.bridge_audio(pa, 0, &[0xff; 481], Instant::now()));
        assert_eq!(h.stats().bridge_audio_dropped, 1);
        h.set_bridge_hold(pa, true);
        h.leave_bridge(pa);
        h.leave_bridge(pa);
        let stats = h.stats();
        assert_eq!((stats.bridge_rooms, stats.bridge_participants), (1, 1));
        shell.shutdown();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn streams_sharing_a_socket_go_out_with_sendmmsg() {
        use std::net::UdpSocket;
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        tx.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        for i in 0..5 {
            p.add_stream(sender(i), Law::Mu, rx.local_addr().unwrap(), tx.clone());
        }
        let mut b = PacketBatch::default();
        p.tick(t0, &mut b);
        let (sent, dropped) = shell::BatchSender::default().send(&b);
        assert_eq!((sent, dropped), (5, 0));
        // A connected socket is sent to without an address.
        let own = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        own.connect(rx.local_addr().unwrap()).unwrap();
        let id = p.add_stream(sender(5), Law::Mu, rx.local_addr().unwrap(), own);
        p.set_connected(id, true).unwrap();
        p.tick(t0 + TICK, &mut b);
        assert!(b.iter().any(|(e, _)| e.connected));
        assert_eq!(shell::BatchSender::default().send(&b), (6, 0));
        p.set_destination(id, addr(1)).unwrap();
        p.tick(t0 + TICK * 2, &mut b);
        assert!(
            b.iter().all(|(e, _)| !e.connected),
            "a new destination clears it"
        );
        let mut buf = [0u8; 1500];
        let mut ssrcs: Vec<u32> = (0..11)
            .map(|_| {
                let n = rx.recv(&mut buf).unwrap();
                RtpReader::new(&buf[..n]).unwrap().ssrc()
            })
            .collect();
        ssrcs.sort();
        ssrcs.dedup();
        assert_eq!(ssrcs, [0, 1, 2, 3, 4, 5]);
    }
}

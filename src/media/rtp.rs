//! RTP sessions (RFC 3550), sans-IO.
//!
//! [`RtpSender`] numbers and stamps the packets of one outgoing stream and
//! writes them into a caller-provided buffer; [`RtpReceiver`] validates and
//! classifies incoming datagrams, latches the far end's address for symmetric
//! RTP (RFC 4961) and tracks the media timeout. Neither reads the clock or
//! touches a socket: `now` is passed in, bytes go in and out as slices.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

use super::rtcp;

/// Samples per 20 ms frame at the 8 kHz G.711 clock rate (RFC 3551 §4.5.14).
pub const SAMPLES_PER_FRAME: u32 = 160;
/// Bytes of a G.711 20 ms payload (one byte per sample).
pub const FRAME_BYTES: usize = 160;
/// RTP fixed header length (RFC 3550 §5.1) without CSRCs or extensions.
pub const HEADER_LEN: usize = 12;
/// Largest packet this layer builds: a header plus one 20 ms G.711 frame.
pub const MAX_PACKET_LEN: usize = HEADER_LEN + FRAME_BYTES;
/// The usual dynamic payload type for telephone-event when the SDP offers none.
pub const DEFAULT_EVENT_PT: u8 = 101;
/// Default media timeout: no RTP for this long ends the call.
pub const DEFAULT_MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

/// Synchronisation source identifier (RFC 3550 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// Errors from building RTP packets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    /// The output buffer cannot hold the packet.
    #[error("RTP output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the packet needs.
        need: usize,
        /// Bytes the buffer offers.
        have: usize,
    },
    /// A payload type outside 0..=127 (RFC 3550 §5.1: seven bits).
    #[error("RTP payload type {0} is out of range 0..=127")]
    PayloadType(u8),
}

/// The outgoing half of an RTP session for one 8 kHz stream.
///
/// SSRC, initial sequence number and initial timestamp are random
/// (RFC 3550 §5.1, §8). The timestamp is a media clock: it advances by the
/// number of samples sent *and* by samples not sent ([`RtpSender::skip_samples`]),
/// so the far end sees real elapsed time across silence and missed frames.
#[derive(Clone, Debug)]
pub struct RtpSender {
    ssrc: Ssrc,
    audio_pt: u8,
    event_pt: u8,
    seq: u16,
    /// Timestamp the next audio frame will carry.
    next_ts: u32,
    /// Set at stream start and after a gap: marks the first packet of a talkspurt.
    marker_pending: bool,
    /// Start timestamp of the telephone event being sent, if any.
    event_start: Option<u32>,
    packets_sent: u64,
    octets_sent: u64,
}

impl RtpSender {
    /// A sender with random SSRC, sequence number and timestamp.
    ///
    /// `audio_pt` is the negotiated G.711 payload type (0 PCMU, 8 PCMA),
    /// `event_pt` the negotiated telephone-event type (RFC 4733 §7.1.1).
    pub fn new(audio_pt: u8, event_pt: u8) -> Result<Self, RtpError> {
        Self::with_initial(
            audio_pt,
            event_pt,
            Ssrc(rand::random()),
            rand::random(),
            rand::random(),
        )
    }

    /// A sender with chosen initial values (tests, or continuing a stream).
    pub fn with_initial(
        audio_pt: u8,
        event_pt: u8,
        ssrc: Ssrc,
        seq: u16,
        timestamp: u32,
    ) -> Result<Self, RtpError> {
        for pt in [audio_pt, event_pt] {
            if pt > 127 {
                return Err(RtpError::PayloadType(pt));
            }
        }
        Ok(RtpSender {
            ssrc,
            audio_pt,
            event_pt,
            seq,
            next_ts: timestamp,
            marker_pending: true,
            event_start: None,
            packets_sent: 0,
            octets_sent: 0,
        })
    }

    /// This stream's SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.seq
    }

    /// The timestamp the next audio frame will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_ts
    }

    /// The audio payload type.
    pub fn audio_pt(&self) -> u8 {
        self.audio_pt
    }

    /// Packets and payload octets sent so far (for an RTCP SR, RFC 3550 §6.4.1).
    pub fn counts(&self) -> (u64, u64) {
        (self.packets_sent, self.octets_sent)
    }

    /// Advances the media clock by `samples` without sending (silence
    /// suppression, a missed pacer tick) and marks the next audio packet as
    /// the start of a talkspurt (RFC 3551 §4.1).
    pub fn skip_samples(&mut self, samples: u32) {
        if samples > 0 {
            self.next_ts = self.next_ts.wrapping_add(samples);
            self.marker_pending = true;
        }
    }

    /// Advances the media clock by `samples` without marking a new talkspurt:
    /// used when frames were lost locally but the stream continues.
    pub fn advance_clock(&mut self, samples: u32) {
        self.next_ts = self.next_ts.wrapping_add(samples);
    }

    /// Marks the next audio packet as the first of a talkspurt.
    pub fn start_talkspurt(&mut self) {
        self.marker_pending = true;
    }

    /// Writes one audio packet carrying `payload` (G.711: one byte per
    /// sample) into `out`, returning its length. The media clock then advances
    /// by `payload.len()` samples. Ends any telephone event in progress.
    pub fn build_audio(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        let marker = self.marker_pending;
        let len = self.build(self.audio_pt, marker, self.next_ts, payload, out)?;
        self.marker_pending = false;
        self.event_start = None;
        // G.711 at 8 kHz: one octet per sample. Payloads are at most a few
        // hundred bytes, so the cast cannot truncate.
        self.next_ts = self.next_ts.wrapping_add(payload.len() as u32);
        Ok(len)
    }

    /// Writes one RFC 4733 telephone-event packet (§2.3) with the given
    /// 4-byte payload (event, E/R/volume, duration) into `out`.
    ///
    /// The first call after audio (or after [`RtpSender::end_event`]) starts
    /// a new event: it takes the current media clock as the event timestamp
    /// and sets the marker bit (§2.5.1.1). Later calls reuse that timestamp
    /// (updates and the repeated end packets). The media clock is not moved:
    /// call [`RtpSender::advance_clock`] for the time the event occupies.
    pub fn build_event(&mut self, payload: [u8; 4], out: &mut [u8]) -> Result<usize, RtpError> {
        let (start, marker) = match self.event_start {
            Some(ts) => (ts, false),
            None => (self.next_ts, true),
        };
        let len = self.build(self.event_pt, marker, start, &payload, out)?;
        self.event_start = Some(start);
        Ok(len)
    }

    /// Ends the current telephone event: the next event packet starts a new one.
    pub fn end_event(&mut self) {
        self.event_start = None;
    }

    fn build(
        &mut self,
        pt: u8,
        marker: bool,
        ts: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let need = HEADER_LEN + payload.len();
        if out.len() < need {
            return Err(RtpError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        let len = RtpPacketBuilder::new()
            .payload_type(pt)
            .marked(marker)
            .sequence(Seq::from(self.seq))
            .timestamp(ts)
            .ssrc(self.ssrc.0)
            .payload(payload)
            .build_into(out)
            .map_err(|_| RtpError::BufferTooSmall {
                need,
                have: out.len(),
            })?;
        self.seq = self.seq.wrapping_add(1);
        self.packets_sent += 1;
        self.octets_sent += payload.len() as u64;
        Ok(len)
    }
}

/// What the receiver needs from the SDP negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// The negotiated audio payload type (0 PCMU or 8 PCMA).
    pub audio_pt: u8,
    /// The negotiated telephone-event payload type, if any (RFC 4733 §7.1.1).
    pub event_pt: Option<u8>,
    /// No valid RTP for this long means the far end is gone.
    pub media_timeout: Duration,
    /// Latch to the first valid source (RFC 4961 symmetric RTP, "comedia").
    pub symmetric: bool,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            audio_pt: 0,
            event_pt: Some(DEFAULT_EVENT_PT),
            media_timeout: DEFAULT_MEDIA_TIMEOUT,
            symmetric: true,
        }
    }
}

/// Why a datagram was not passed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Not parseable as RTP (short, wrong version, bad padding or lengths).
    Malformed,
    /// Valid RTP from an address other than the latched source.
    WrongSource,
    /// A payload type that was not negotiated.
    UnknownPayloadType(u8),
    /// Telephone-event payload shorter than the 4 bytes of RFC 4733 §2.3.
    ShortEvent,
}

/// A header summary of an accepted RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Sender's SSRC.
    pub ssrc: Ssrc,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
}

/// The outcome of [`RtpReceiver::handle_datagram`].
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// G.711 audio of the negotiated payload type.
    Audio {
        /// Header fields.
        header: RtpHeader,
        /// The coded samples (padding removed).
        payload: &'a [u8],
    },
    /// An RFC 4733 telephone-event packet; `payload` is at least 4 bytes.
    Event {
        /// Header fields.
        header: RtpHeader,
        /// The event payload (first 4 bytes are the event block).
        payload: &'a [u8],
    },
    /// An RTCP compound packet multiplexed on the RTP port (RFC 5761 §4).
    Rtcp(rtcp::RtcpSummary),
    /// Dropped; counted in [`ReceiverStats::ignored`] or `malformed`.
    Ignored(IgnoreReason),
}

/// Receive counters (RFC 3550 §6.4.1 / appendix A.3 style).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Valid RTP packets accepted (audio and events).
    pub received: u64,
    /// Packets expected but not received, from sequence gaps (wrap-aware).
    pub lost: u64,
    /// Valid packets dropped: wrong source or unknown payload type.
    pub ignored: u64,
    /// Datagrams that were neither valid RTP nor RTCP.
    pub malformed: u64,
    /// RTCP packets seen on the RTP port.
    pub rtcp: u64,
    /// Sequence restarts (SSRC change or a jump too large to be loss).
    pub restarts: u64,
}

/// Largest forward gap still counted as loss; beyond it the stream is
/// treated as restarted (RFC 3550 appendix A.1, MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;
/// Largest backward step still treated as reordering (MAX_MISORDER).
const MAX_MISORDER: u16 = 100;

/// Sequence tracking for one SSRC (RFC 3550 appendix A.1, simplified).
#[derive(Clone, Copy, Debug)]
struct SeqTracker {
    ssrc: Ssrc,
    base: u64,
    /// Extended highest sequence number seen (cycles << 16 | seq).
    max_ext: u64,
    /// Packets accepted since `base`.
    received: u64,
    /// Loss already folded into the totals from earlier sequence epochs.
    lost_before: u64,
}

impl SeqTracker {
    fn new(ssrc: Ssrc, seq: u16, lost_before: u64) -> Self {
        // Start one cycle up so a reordered packet just below the first one
        // cannot make the extended number underflow.
        let ext = (1u64 << 16) | u64::from(seq);
        SeqTracker {
            ssrc,
            base: ext,
            max_ext: ext,
            received: 1,
            lost_before,
        }
    }

    fn lost(&self) -> u64 {
        let expected = self.max_ext - self.base + 1;
        self.lost_before + expected.saturating_sub(self.received)
    }

    /// Returns false when the packet restarts the sequence.
    fn update(&mut self, seq: u16) -> bool {
        let max_seq = self.max_ext as u16;
        let delta = seq.wrapping_sub(max_seq);
        if delta == 0 {
            // Duplicate: not new, not lost.
            return true;
        }
        if delta < MAX_DROPOUT {
            let cycles = self.max_ext & !0xffff;
            let wrapped = seq < max_seq;
            let cycles = if wrapped { cycles + (1 << 16) } else { cycles };
            self.max_ext = cycles | u64::from(seq);
            self.received += 1;
            true
        } else if delta > u16::MAX - MAX_MISORDER {
            // Late (reordered) packet: fills a gap that was counted as lost.
            self.received += 1;
            true
        } else {
            false
        }
    }
}

/// The incoming half of an RTP session.
#[derive(Clone, Debug)]
pub struct RtpReceiver {
    config: ReceiverConfig,
    /// Where the SDP said to send.
    sdp_remote: Option<SocketAddr>,
    /// The source latched from the first valid packet (symmetric RTP).
    latched: Option<SocketAddr>,
    /// Set when `remote()` changed and the sender has not been told yet.
    remote_changed: bool,
    last_packet: Instant,
    seq: Option<SeqTracker>,
    stats: ReceiverStats,
}

impl RtpReceiver {
    /// A receiver for a fresh session. `now` starts the media-timeout clock,
    /// so a call that never receives RTP also times out.
    pub fn new(config: ReceiverConfig, sdp_remote: Option<SocketAddr>, now: Instant) -> Self {
        RtpReceiver {
            config,
            sdp_remote,
            latched: None,
            remote_changed: false,
            last_packet: now,
            seq: None,
            stats: ReceiverStats::default(),
        }
    }

    /// Updates the negotiated payload types and SDP address (re-INVITE).
    pub fn renegotiate(
        &mut self,
        audio_pt: u8,
        event_pt: Option<u8>,
        sdp_remote: Option<SocketAddr>,
    ) {
        self.config.audio_pt = audio_pt;
        self.config.event_pt = event_pt;
        if sdp_remote != self.sdp_remote {
            // A new SDP address may mean the far end moved: latch afresh.
            self.latched = None;
            self.sdp_remote = sdp_remote;
            self.remote_changed = true;
        }
    }

    /// Where our RTP should go: the latched source if symmetric RTP has
    /// latched, else the SDP `c=`/`m=` address (RFC 4961 §4).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.latched.or(self.sdp_remote)
    }

    /// Returns the new [`RtpReceiver::remote`] once after it changed (first
    /// latch, or a re-INVITE's new address): the call then points its sender
    /// (e.g. `Pacer::set_destination`) there.
    pub fn take_remote_change(&mut self) -> Option<SocketAddr> {
        if std::mem::take(&mut self.remote_changed) {
            self.remote()
        } else {
            None
        }
    }

    /// The latched source address, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Counters so far.
    pub fn stats(&self) -> ReceiverStats {
        let mut s = self.stats;
        s.lost = self.seq.map_or(s.lost, |t| t.lost());
        s
    }

    /// The SSRC of the current incoming stream, if any packet was accepted.
    pub fn remote_ssrc(&self) -> Option<Ssrc> {
        self.seq.map(|t| t.ssrc)
    }

    /// The instant at which the media timeout fires unless RTP arrives.
    pub fn poll_timeout(&self) -> Instant {
        self.last_packet + self.config.media_timeout
    }

    /// True once no valid RTP has arrived for the media timeout: the call
    /// should be ended with BYE.
    pub fn is_timed_out(&self, now: Instant) -> bool {
        now >= self.poll_timeout()
    }

    /// Handles one datagram received on the session's port.
    ///
    /// RTCP multiplexed on the same port (RFC 5761 §4: second byte 192–223)
    /// is recognised and summarised; it refreshes the media timeout only if
    /// it comes from the latched source (the SDP address without symmetric
    /// RTP), and never latches. Never panics on any input.
    pub fn handle_datagram<'a>(
        &mut self,
        data: &'a [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Received<'a> {
        if rtcp::is_rtcp(data) {
            return match rtcp::summarize(data) {
                Ok(summary) => {
                    self.stats.rtcp += 1;
                    // RTCP from the far end we talk to proves it is alive
                    // (e.g. a caller who put us on hold sends only RTCP).
                    let known = if self.config.symmetric {
                        self.latched
                    } else {
                        self.sdp_remote
                    };
                    if known == Some(from) {
                        self.last_packet = now;
                    }
                    Received::Rtcp(summary)
                }
                Err(_) => {
                    self.stats.malformed += 1;
                    Received::Ignored(IgnoreReason::Malformed)
                }
            };
        }
        let Ok(reader) = RtpReader::new(data) else {
            self.stats.malformed += 1;
            return Received::Ignored(IgnoreReason::Malformed);
        };
        if self.config.symmetric {
            match self.latched {
                Some(src) if src != from => {
                    self.stats.ignored += 1;
                    return Received::Ignored(IgnoreReason::WrongSource);
                }
                _ => {}
            }
        }
        let pt = reader.payload_type();
        let payload = reader.payload();
        let is_audio = pt == self.config.audio_pt;
        let is_event = self.config.event_pt == Some(pt);
        if !is_audio && !is_event {
            self.stats.ignored += 1;
            return Received::Ignored(IgnoreReason::UnknownPayloadType(pt));
        }
        if is_event && payload.len() < 4 {
            self.stats.ignored += 1;
            return Received::Ignored(IgnoreReason::ShortEvent);
        }
        // Accepted: latch, refresh the timeout, track sequence numbers.
        if self.config.symmetric && self.latched.is_none() {
            self.latched = Some(from);
            self.remote_changed = self.sdp_remote != Some(from);
        }
        self.last_packet = now;
        let header = RtpHeader {
            ssrc: Ssrc(reader.ssrc()),
            seq: u16::from(reader.sequence_number()),
            timestamp: reader.timestamp(),
            marker: reader.mark(),
            payload_type: pt,
        };
        self.track(header.ssrc, header.seq);
        self.stats.received += 1;
        if is_audio {
            Received::Audio { header, payload }
        } else {
            Received::Event { header, payload }
        }
    }

    fn track(&mut self, ssrc: Ssrc, seq: u16) {
        match &mut self.seq {
            Some(t) if t.ssrc == ssrc => {
                if !t.update(seq) {
                    let lost = t.lost();
                    *t = SeqTracker::new(ssrc, seq, lost);
                    self.stats.restarts += 1;
                }
            }
            Some(t) => {
                let lost = t.lost();
                *t = SeqTracker::new(ssrc, seq, lost);
                self.stats.restarts += 1;
            }
            None => self.seq = Some(SeqTracker::new(ssrc, seq, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn sender(seq: u16, ts: u32) -> RtpSender {
        RtpSender::with_initial(0, 101, Ssrc(0x1234_5678), seq, ts).unwrap()
    }

    #[test]
    fn random_initial_values_differ_between_streams() {
        let a = RtpSender::new(0, 101).unwrap();
        let b = RtpSender::new(0, 101).unwrap();
        // 96 random bits: a collision on all three is practically impossible.
        assert!(
            a.ssrc() != b.ssrc()
                || a.next_sequence() != b.next_sequence()
                || a.next_timestamp() != b.next_timestamp()
        );
    }

    #[test]
    fn rejects_out_of_range_payload_types() {
        assert_eq!(
            RtpSender::new(128, 101).unwrap_err(),
            RtpError::PayloadType(128)
        );
        assert_eq!(
            RtpSender::new(0, 200).unwrap_err(),
            RtpError::PayloadType(200)
        );
    }

    #[test]
    fn sequence_and_timestamp_advance_per_frame_and_wrap() {
        let mut s = sender(u16::MAX - 1, u32::MAX - 159);
        let mut buf = [0u8; MAX_PACKET_LEN];
        let frame = [0xffu8; FRAME_BYTES];
        let mut seen = Vec::new();
        for _ in 0..4 {
            let n = s.build_audio(&frame, &mut buf).unwrap();
            assert_eq!(n, MAX_PACKET_LEN);
            let r = RtpReader::new(&buf[..n]).unwrap();
            seen.push((u16::from(r.sequence_number()), r.timestamp(), r.mark()));
            assert_eq!(r.ssrc(), 0x1234_5678);
            assert_eq!(r.payload(), &frame[..]);
        }
        assert_eq!(
            seen,
            vec![
                (u16::MAX - 1, u32::MAX - 159, true),
                (u16::MAX, 0, false),
                (0, 160, false),
                (1, 320, false),
            ]
        );
        assert_eq!(s.counts(), (4, 640));
    }

    #[test]
    fn timestamp_advances_across_silence_and_marks_new_talkspurt() {
        let mut s = sender(10, 1000);
        let mut buf = [0u8; MAX_PACKET_LEN];
        let frame = [0xffu8; FRAME_BYTES];
        s.build_audio(&frame, &mut buf).unwrap();
        // Three 20 ms frames not sent.
        s.skip_samples(3 * SAMPLES_PER_FRAME);
        let n = s.build_audio(&frame, &mut buf).unwrap();
        let r = RtpReader::new(&buf[..n]).unwrap();
        assert_eq!(
            u16::from(r.sequence_number()),
            11,
            "no sequence gap for silence"
        );
        assert_eq!(r.timestamp(), 1000 + 4 * 160);
        assert!(r.mark());
        // advance_clock keeps the talkspurt going.
        s.advance_clock(160);
        let n = s.build_audio(&frame, &mut buf).unwrap();
        let r = RtpReader::new(&buf[..n]).unwrap();
        assert_eq!(r.timestamp(), 1000 + 6 * 160);
        assert!(!r.mark());
    }

    #[test]
    fn telephone_event_packets_share_start_timestamp_and_mark_first() {
        let mut s = sender(5, 8000);
        let mut buf = [0u8; MAX_PACKET_LEN];
        s.build_audio(&[0xff; FRAME_BYTES], &mut buf).unwrap();
        let mut got = Vec::new();
        for d in [160u16, 320, 480] {
            let p = [5, 0x0a, (d >> 8) as u8, d as u8];
            let n = s.build_event(p, &mut buf).unwrap();
            s.advance_clock(160);
            let r = RtpReader::new(&buf[..n]).unwrap();
            assert_eq!(r.payload_type(), 101);
            assert_eq!(r.ssrc(), 0x1234_5678);
            assert_eq!(r.payload(), &p[..]);
            got.push((u16::from(r.sequence_number()), r.timestamp(), r.mark()));
        }
        assert_eq!(
            got,
            vec![(6, 8160, true), (7, 8160, false), (8, 8160, false)]
        );
        s.end_event();
        let n = s.build_event([6, 0, 0, 160], &mut buf).unwrap();
        let r = RtpReader::new(&buf[..n]).unwrap();
        assert!(r.mark());
        assert_eq!(r.timestamp(), 8160 + 3 * 160);
    }

    #[test]
    fn too_small_buffer_is_an_error_and_changes_nothing() {
        let mut s = sender(1, 1);
        let mut buf = [0u8; 20];
        assert_eq!(
            s.build_audio(&[0; FRAME_BYTES], &mut buf),
            Err(RtpError::BufferTooSmall {
                need: 172,
                have: 20
            })
        );
        assert_eq!(s.next_sequence(), 1);
        assert_eq!(s.next_timestamp(), 1);
    }

    fn packet(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        RtpPacketBuilder::new()
            .payload_type(pt)
            .sequence(Seq::from(seq))
            .ssrc(ssrc)
            .timestamp(u32::from(seq) * 160)
            .payload(payload)
            .build()
            .unwrap()
    }

    fn receiver(now: Instant) -> RtpReceiver {
        RtpReceiver::new(ReceiverConfig::default(), Some(addr(4000)), now)
    }

    #[test]
    fn classifies_audio_events_and_unknown_types() {
        let now = Instant::now();
        let mut r = receiver(now);
        let a = packet(0, 1, 7, &[1, 2, 3]);
        match r.handle_datagram(&a, addr(4000), now) {
            Received::Audio { header, payload } => {
                assert_eq!(payload, &[1, 2, 3]);
                assert_eq!(header.seq, 1);
                assert_eq!(header.ssrc, Ssrc(7));
            }
            other => panic!("{other:?}"),
        }
        let e = packet(101, 2, 7, &[1, 0x80, 0, 160]);
        assert!(matches!(
            r.handle_datagram(&e, addr(4000), now),
            Received::Event { .. }
        ));
        let short = packet(101, 3, 7, &[1, 0x80]);
        assert_eq!(
            r.handle_datagram(&short, addr(4000), now),
            Received::Ignored(IgnoreReason::ShortEvent)
        );
        let pcma = packet(8, 4, 7, &[0xd5]);
        assert_eq!(
            r.handle_datagram(&pcma, addr(4000), now),
            Received::Ignored(IgnoreReason::UnknownPayloadType(8))
        );
        assert_eq!(
            r.handle_datagram(&[0x80, 0], addr(4000), now),
            Received::Ignored(IgnoreReason::Malformed)
        );
        let mut v1 = a.clone();
        v1[0] = 0x40;
        assert_eq!(
            r.handle_datagram(&v1, addr(4000), now),
            Received::Ignored(IgnoreReason::Malformed)
        );
        let st = r.stats();
        assert_eq!((st.received, st.ignored, st.malformed), (2, 2, 2));
    }

    #[test]
    fn padding_is_removed_and_bad_padding_rejected() {
        let now = Instant::now();
        let mut r = receiver(now);
        let mut p = packet(0, 1, 7, &[9, 9, 0, 0, 3]);
        p[0] |= 0x20;
        match r.handle_datagram(&p, addr(4000), now) {
            Received::Audio { payload, .. } => assert_eq!(payload, &[9, 9]),
            other => panic!("{other:?}"),
        }
        let mut bad = packet(0, 2, 7, &[9, 200]);
        bad[0] |= 0x20;
        assert_eq!(
            r.handle_datagram(&bad, addr(4000), now),
            Received::Ignored(IgnoreReason::Malformed)
        );
    }

    #[test]
    fn symmetric_rtp_latches_first_valid_source() {
        let now = Instant::now();
        let mut r = receiver(now);
        assert_eq!(r.remote(), Some(addr(4000)));
        // Garbage and unknown types from elsewhere do not latch.
        r.handle_datagram(&[1, 2, 3], addr(9), now);
        r.handle_datagram(&packet(96, 1, 7, &[0]), addr(9), now);
        assert_eq!(r.latched(), None);
        // The NATed far end: first valid packet latches.
        let nat = addr(31000);
        assert_eq!(r.take_remote_change(), None);
        assert!(matches!(
            r.handle_datagram(&packet(0, 1, 7, &[0]), nat, now),
            Received::Audio { .. }
        ));
        assert_eq!(r.remote(), Some(nat));
        assert_eq!(r.take_remote_change(), Some(nat));
        assert_eq!(r.take_remote_change(), None, "reported once");
        assert_eq!(
            r.handle_datagram(&packet(0, 2, 7, &[0]), addr(4000), now),
            Received::Ignored(IgnoreReason::WrongSource)
        );
        assert!(matches!(
            r.handle_datagram(&packet(0, 3, 7, &[0]), nat, now),
            Received::Audio { .. }
        ));
        // A re-INVITE with a new address latches afresh.
        r.renegotiate(0, Some(101), Some(addr(5000)));
        assert_eq!(r.remote(), Some(addr(5000)));
        assert!(matches!(
            r.handle_datagram(&packet(0, 4, 7, &[0]), addr(5002), now),
            Received::Audio { .. }
        ));
        assert_eq!(r.remote(), Some(addr(5002)));
        assert_eq!(r.take_remote_change(), Some(addr(5002)));
    }

    #[test]
    fn without_symmetric_rtp_any_source_is_accepted_and_sdp_address_used() {
        let now = Instant::now();
        let cfg = ReceiverConfig {
            symmetric: false,
            ..ReceiverConfig::default()
        };
        let mut r = RtpReceiver::new(cfg, Some(addr(4000)), now);
        r.handle_datagram(&packet(0, 1, 7, &[0]), addr(1), now);
        assert!(matches!(
            r.handle_datagram(&packet(0, 2, 7, &[0]), addr(2), now),
            Received::Audio { .. }
        ));
        assert_eq!(r.remote(), Some(addr(4000)));
    }

    #[test]
    fn media_timeout_follows_last_valid_packet() {
        let t0 = Instant::now();
        let mut r = receiver(t0);
        assert_eq!(r.poll_timeout(), t0 + Duration::from_secs(30));
        assert!(!r.is_timed_out(t0 + Duration::from_secs(29)));
        let t1 = t0 + Duration::from_secs(20);
        r.handle_datagram(&packet(0, 1, 7, &[0]), addr(4000), t1);
        // Garbage and wrong-source packets do not refresh it.
        r.handle_datagram(&[0; 40], addr(4000), t1 + Duration::from_secs(10));
        r.handle_datagram(
            &packet(0, 2, 7, &[0]),
            addr(1),
            t1 + Duration::from_secs(10),
        );
        assert_eq!(r.poll_timeout(), t1 + Duration::from_secs(30));
        assert!(!r.is_timed_out(t1 + Duration::from_millis(29_999)));
        assert!(r.is_timed_out(t1 + Duration::from_secs(30)));
    }

    #[test]
    fn configurable_timeout() {
        let t0 = Instant::now();
        let cfg = ReceiverConfig {
            media_timeout: Duration::from_secs(5),
            ..ReceiverConfig::default()
        };
        let r = RtpReceiver::new(cfg, None, t0);
        assert!(r.is_timed_out(t0 + Duration::from_secs(5)));
        assert_eq!(r.remote(), None);
    }

    #[test]
    fn loss_counts_gaps_across_wrap_and_forgives_reordering() {
        let now = Instant::now();
        let mut r = receiver(now);
        let from = addr(4000);
        for seq in [65530u16, 65531, 65533, 65535, 0, 3] {
            r.handle_datagram(&packet(0, seq, 7, &[0]), from, now);
        }
        // Missing: 65532, 65534, 1, 2.
        assert_eq!(r.stats().lost, 4);
        // 65534 arrives late; a duplicate changes nothing.
        r.handle_datagram(&packet(0, 65534, 7, &[0]), from, now);
        r.handle_datagram(&packet(0, 3, 7, &[0]), from, now);
        assert_eq!(r.stats().lost, 3);
        assert_eq!(r.stats().received, 8);
    }

    #[test]
    fn ssrc_change_or_huge_jump_restarts_tracking_keeping_loss() {
        let now = Instant::now();
        let mut r = receiver(now);
        let from = addr(4000);
        for seq in [1u16, 3] {
            r.handle_datagram(&packet(0, seq, 7, &[0]), from, now);
        }
        assert_eq!(r.stats().lost, 1);
        r.handle_datagram(&packet(0, 40000, 8, &[0]), from, now);
        r.handle_datagram(&packet(0, 40001, 8, &[0]), from, now);
        assert_eq!(r.stats().lost, 1);
        r.handle_datagram(&packet(0, 10, 8, &[0]), from, now);
        let st = r.stats();
        assert_eq!((st.lost, st.restarts), (1, 2));
        assert_eq!(r.remote_ssrc(), Some(Ssrc(8)));
    }

    #[test]
    fn rtcp_on_the_rtp_port_is_recognised() {
        let now = Instant::now();
        let mut r = receiver(now);
        let mut buf = [0u8; 64];
        let n = rtcp::build_receiver_report(Ssrc(42), &mut buf).unwrap();
        match r.handle_datagram(&buf[..n], addr(4000), now) {
            Received::Rtcp(s) => assert_eq!(s.sender_ssrc, Some(Ssrc(42))),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.stats().rtcp, 1);
        assert_eq!(r.latched(), None, "RTCP does not latch");
        // Once latched, RTCP from that source keeps the session alive;
        // from anywhere else it does not.
        r.handle_datagram(&packet(0, 1, 7, &[0]), addr(4000), now);
        let later = now + Duration::from_secs(25);
        r.handle_datagram(&buf[..n], addr(4001), later);
        assert_eq!(r.poll_timeout(), now + Duration::from_secs(30));
        r.handle_datagram(&buf[..n], addr(4000), later);
        assert_eq!(r.poll_timeout(), later + Duration::from_secs(30));
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let now = Instant::now();
            let mut r = receiver(now);
            let _ = r.handle_datagram(&data, addr(4000), now);
            let _ = r.stats();
        }

        #[test]
        fn arbitrary_rtp_like_datagrams_never_panic(
            first in 0x80u8..0xc0, second in any::<u8>(),
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let now = Instant::now();
            let mut r = receiver(now);
            let mut data = vec![first, second];
            data.extend_from_slice(&rest);
            let _ = r.handle_datagram(&data, addr(4000), now);
            let _ = r.handle_datagram(&data, addr(4001), now);
        }

        #[test]
        fn any_sequence_of_seqs_keeps_counters_sane(seqs in proptest::collection::vec(any::<u16>(), 1..200)) {
            let now = Instant::now();
            let mut r = receiver(now);
            for s in &seqs {
                r.handle_datagram(&packet(0, *s, 7, &[0]), addr(4000), now);
            }
            let st = r.stats();
            prop_assert_eq!(st.received, seqs.len() as u64);
        }
    }
}

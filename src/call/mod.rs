//! The live call path: one [`CallSession`] per answered call joins the RTP
//! receiver, the DTMF detectors and the auto attendant ([`CallFlow`]), and
//! [`shell`] runs each session in a tokio task next to the SIP driver.
//!
//! ```text
//!  RTP datagram ─► RtpReceiver ─┬─ audio ─► InBandDetector ─┐
//!  (latching, media timeout)    └─ event ─► TelephoneEvent ─┼─► DigitDeduplicator ─► CallFlow
//!  SIP INFO digit ──────────────────────────────────────────┘        │
//!  pacer Finished/Stopped ─► playback id → PromptId ─────────────────┤
//!  directory answer ─────────────────────────────────────────────────┤
//!                                                                    ▼
//!              CallAction: Play / Stop / SetDestination / LookUp / Route / HangUp
//! ```
//!
//! Once the caller is routed, received audio no longer goes to the DTMF
//! detectors: [`CallSession::handle_rtp_media`] hands it back as
//! [`RoutedAudio`] for the meeting's conference.
//!
//! [`CallSession`] is sans-IO like the parts it joins: every input carries
//! `now`, outputs are drained with [`CallSession::poll_action`], and the
//! shell sleeps until [`CallSession::poll_timeout`]. Per packet it does not
//! allocate.
//!
//! # Which DTMF methods are heard
//! [`DtmfMode`]: in `auto`, RFC 4733 telephone-events when the SDP
//! negotiated them, else in-band tones; INFO digits are always accepted.
//! A key press that arrives by two methods counts once
//! ([`DigitDeduplicator`]).
//!
//! # Prompts
//! The session asks for a prompt with [`CallAction::Play`]; the shell queues
//! it on the pacer and reports the pacer's playback id with
//! [`CallSession::prompt_queued`]. Only a [`PromptEvent::Finished`] of the
//! playback currently mapped reaches [`CallFlow::prompt_finished`]: a prompt
//! stopped by barge-in, or a late report of an older playback, does not.

pub mod shell;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::directory::{ConferenceId, Lookup, Route};
use crate::dtmf::dedupe::DigitDeduplicator;
use crate::dtmf::inband::InBandDetector;
use crate::dtmf::rfc4733::TelephoneEventReceiver;
use crate::dtmf::{Digit, DigitEvent, DtmfMode, DtmfSettings, DtmfSource};
use crate::ivr::{Action, CallFlow, EntryFailure, GuardRefusal, HangupReason, IvrSettings};
use crate::media::g711::Law;
use crate::media::pacer::PlaybackId;
use crate::media::rtp::{Received, ReceiverStats, RtpReceiver, Ssrc};
use crate::media::{MediaSettings, PromptId};
use crate::sip::sdp::{Codec, Negotiated};

/// The negotiated media a session needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaParams {
    /// The G.711 law of the audio.
    pub law: Law,
    /// Its payload type.
    pub audio_pt: u8,
    /// The telephone-event payload type, when negotiated (RFC 4733 §7.1.1).
    pub event_pt: Option<u8>,
    /// Where the SDP says to send RTP; `None` on hold.
    pub remote: Option<SocketAddr>,
}

impl MediaParams {
    /// Takes the parameters from an offer/answer result.
    pub fn from_negotiated(n: &Negotiated) -> MediaParams {
        MediaParams {
            law: match n.codec {
                Codec::Pcmu => Law::Mu,
                Codec::Pcma => Law::A,
            },
            audio_pt: n.payload_type,
            event_pt: n.telephone_event.as_ref().map(|t| t.payload_type),
            remote: n.remote_rtp,
        }
    }
}

/// Why the gateway hangs up on the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangUpReason {
    /// The attendant is done with the caller (too many attempts, guard,
    /// time limit, lookup timeout, bridge unavailable).
    Attendant(HangupReason),
    /// No RTP (nor RTCP) from the caller for the media timeout.
    MediaTimeout,
}

impl std::fmt::Display for HangUpReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HangUpReason::Attendant(HangupReason::TooManyAttempts) => {
                f.write_str("too many attempts")
            }
            HangUpReason::Attendant(HangupReason::Guard(GuardRefusal::IdentityLocked)) => {
                f.write_str("caller identity locked out")
            }
            HangUpReason::Attendant(HangupReason::Guard(GuardRefusal::AddressLocked)) => {
                f.write_str("source address locked out")
            }
            HangUpReason::Attendant(HangupReason::TimeLimit) => f.write_str("attendant time limit"),
            HangUpReason::Attendant(HangupReason::LookupTimeout) => {
                f.write_str("directory lookup timed out")
            }
            HangUpReason::Attendant(HangupReason::BridgeUnavailable) => {
                f.write_str("bridge unavailable")
            }
            HangUpReason::MediaTimeout => f.write_str("media timeout"),
        }
    }
}

/// What the shell must do for the call, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Queue this prompt on the call's pacer stream, then report the
    /// playback id with [`CallSession::prompt_queued`].
    Play {
        /// The prompt, in the call's language.
        prompt: PromptId,
    },
    /// Barge-in: stop whatever the pacer plays on the call's stream.
    Stop,
    /// A re-INVITE changed the codec: replace the call's pacer stream with
    /// one sending this law and payload type to
    /// [`CallSession::destination`] (queued prompts go with the old
    /// stream; a [`CallAction::Play`] of the interrupted prompt follows).
    ChangeCodec {
        /// The new G.711 law.
        law: Law,
        /// Its payload type.
        audio_pt: u8,
        /// The telephone-event payload type, if negotiated.
        event_pt: Option<u8>,
    },
    /// Point the call's outgoing RTP here (symmetric RTP latched, RFC 4961,
    /// or a re-INVITE moved the far end).
    SetDestination(SocketAddr),
    /// Ask the directory; answer with [`CallSession::handle_lookup`].
    LookUp(ConferenceId),
    /// The caller keyed a valid ID and heard the joining prompt: hand the
    /// call to the bridge.
    Route(Route),
    /// A failed entry, for the guessing defence (record it when
    /// [`EntryFailure::is_guess`]) and metrics.
    EntryFailed {
        /// Why it failed.
        failure: EntryFailure,
        /// Failed entries so far in this call.
        attempt: u32,
    },
    /// Hang up (BYE). Nothing follows.
    HangUp(HangUpReason),
}

/// A routed caller's audio for the meeting: one RTP packet's G.711
/// payload, borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutedAudio<'a> {
    /// The packet's RTP timestamp (8 kHz clock).
    pub timestamp: u32,
    /// The coded samples, in the call's law.
    pub payload: &'a [u8],
}

/// A pacer report about one playback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptEvent {
    /// Its last frame was sent.
    Finished(PlaybackId),
    /// It was stopped (barge-in) or dropped.
    Stopped(PlaybackId),
}

/// Counters of one call, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// RTP receive counters.
    pub rtp: ReceiverStats,
    /// Digits passed to the attendant, per method.
    pub digits_rfc4733: u64,
    /// Digits from SIP INFO.
    pub digits_info: u64,
    /// Digits from in-band tones.
    pub digits_inband: u64,
    /// Digits dropped as another method's copy of a press already counted.
    pub duplicates: u64,
    /// Telephone-event packets ignored because the mode does not use them.
    pub events_ignored: u64,
}

/// One answered call on its way through the attendant (sans-IO).
pub struct CallSession {
    flow: CallFlow,
    receiver: RtpReceiver,
    law: Law,
    audio_pt: u8,
    mode: DtmfMode,
    use_rfc4733: bool,
    events: TelephoneEventReceiver,
    event_ssrc: Option<Ssrc>,
    /// Present when in-band tones are listened to.
    inband: Option<InBandDetector>,
    inband_settings: crate::dtmf::inband::InBandSettings,
    dedupe: DigitDeduplicator,
    /// The prompt asked for and not yet mapped to a playback.
    requested: Option<PromptId>,
    /// The playback the pacer is playing for the attendant.
    playing: Option<(PlaybackId, PromptId)>,
    actions: VecDeque<CallAction>,
    ended: bool,
    stats: SessionStats,
    media_timeout: std::time::Duration,
    /// Last valid RTCP from the far end's address on the RTCP port: a
    /// caller who holds the call may send only RTCP (RFC 3550 §6).
    last_rtcp: Option<Instant>,
}

impl CallSession {
    /// A session for a newly answered call. `early_refusal` is the
    /// guessing defence's verdict ([`crate::ivr::GuessingGuard::check_call`]).
    /// Call [`start`](Self::start) next.
    pub fn new(
        ivr: &IvrSettings,
        dtmf: &DtmfSettings,
        media: &MediaSettings,
        params: MediaParams,
        early_refusal: Option<GuardRefusal>,
        now: Instant,
    ) -> CallSession {
        let receiver = RtpReceiver::new(
            media.receiver_config(params.audio_pt, params.event_pt),
            params.remote,
            now,
        );
        let mut session = CallSession {
            flow: CallFlow::new(ivr, early_refusal),
            receiver,
            law: params.law,
            audio_pt: params.audio_pt,
            mode: dtmf.mode,
            use_rfc4733: false,
            events: TelephoneEventReceiver::new(),
            event_ssrc: None,
            inband: None,
            inband_settings: dtmf.inband.clone(),
            dedupe: DigitDeduplicator::from_settings(&dtmf.dedupe),
            requested: None,
            playing: None,
            actions: VecDeque::with_capacity(8),
            ended: false,
            stats: SessionStats::default(),
            media_timeout: media.media_timeout,
            last_rtcp: None,
        };
        session.choose_methods(params.event_pt.is_some());
        session
    }

    fn choose_methods(&mut self, event_negotiated: bool) {
        self.use_rfc4733 = self.mode.uses_rfc4733(event_negotiated);
        let inband = self.inband_settings.enabled && self.mode.uses_inband(event_negotiated);
        match (inband, self.inband.is_some()) {
            (true, false) => self.inband = Some(InBandDetector::new(&self.inband_settings)),
            (false, true) => self.inband = None,
            _ => {}
        }
    }

    /// The call is answered and media flows: the welcome prompt (or the
    /// guard's refusal) starts.
    pub fn start(&mut self, now: Instant) {
        self.flow.start(now);
        self.drain_flow();
    }

    /// Where outgoing RTP goes now (latched source, else the SDP address).
    pub fn destination(&self) -> Option<SocketAddr> {
        self.receiver.remote()
    }

    /// The audio law of the call.
    pub fn law(&self) -> Law {
        self.law
    }

    /// Whether in-band tones are listened to.
    pub fn listens_inband(&self) -> bool {
        self.inband.is_some()
    }

    /// Whether RFC 4733 events are used.
    pub fn listens_rfc4733(&self) -> bool {
        self.use_rfc4733
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            rtp: self.receiver.stats(),
            ..self.stats
        }
    }

    /// True once the call is over for the session (hung up either way).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The attendant's state, for logs.
    pub fn flow_state(&self) -> crate::ivr::FlowState {
        self.flow.state()
    }

    /// True once the attendant has routed the caller (after
    /// [`CallAction::Route`]) and the call goes on.
    pub fn is_routed(&self) -> bool {
        !self.ended && self.flow.state() == crate::ivr::FlowState::Routed
    }

    /// One datagram from the call's RTP port.
    pub fn handle_rtp(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let _ = self.handle_rtp_media(data, from, now);
    }

    /// One datagram from the call's RTP port, like
    /// [`handle_rtp`](Self::handle_rtp), handing back the caller's audio
    /// once the call is routed: from then on it is meant for the meeting,
    /// not for the DTMF detectors. The receiver still checks, latches and
    /// times the media as before.
    pub fn handle_rtp_media<'a>(
        &mut self,
        data: &'a [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<RoutedAudio<'a>> {
        if self.ended {
            return None;
        }
        let routed = self.is_routed();
        let mut audio = None;
        match self.receiver.handle_datagram(data, from, now) {
            Received::Audio { header, payload } if routed => {
                audio = Some(RoutedAudio {
                    timestamp: header.timestamp,
                    payload,
                });
            }
            Received::Audio { payload, .. } => {
                if let Some(det) = self.inband.as_mut() {
                    det.handle_g711(self.law, payload, now);
                }
            }
            Received::Event { header, payload } => {
                if self.use_rfc4733 {
                    if self.event_ssrc != Some(header.ssrc) {
                        // A new stream: its timestamps say nothing about the old one's.
                        self.events.reset();
                        self.event_ssrc = Some(header.ssrc);
                    }
                    if let Some(ev) = self.events.handle_packet(
                        header.seq,
                        header.timestamp,
                        header.marker,
                        payload,
                        now,
                    ) {
                        self.offer_digit(ev, now);
                    }
                } else {
                    self.stats.events_ignored += 1;
                }
            }
            Received::Rtcp(_) | Received::Ignored(_) => {}
        }
        while let Some(ev) = self.inband.as_mut().and_then(InBandDetector::poll_digit) {
            self.offer_digit(ev, now);
        }
        if let Some(dest) = self.receiver.take_remote_change() {
            self.actions.push_back(CallAction::SetDestination(dest));
        }
        self.drain_flow();
        audio
    }

    /// One datagram from the call's RTCP port (RFC 3550 §11: RTP port + 1).
    /// Valid RTCP from the far end's address keeps the call from the media
    /// timeout, as RTP does.
    pub fn handle_rtcp(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        if self.ended || !crate::media::rtcp::is_rtcp(data) {
            return;
        }
        let known = self.receiver.remote().map(|r| r.ip());
        if known == Some(from.ip()) && crate::media::rtcp::summarize(data).is_ok() {
            self.last_rtcp = Some(now);
        }
    }

    /// When the media timeout fires unless RTP or RTCP arrives.
    fn media_deadline(&self) -> Instant {
        let rtp = self.receiver.poll_timeout();
        match self.last_rtcp {
            Some(t) => rtp.max(t + self.media_timeout),
            None => rtp,
        }
    }

    /// A digit from a well-formed DTMF INFO body (RFC 6086).
    pub fn handle_info_digit(&mut self, digit: Digit, now: Instant) {
        if self.ended {
            return;
        }
        let ev = DigitEvent {
            digit,
            source: DtmfSource::Info,
            at: now,
        };
        self.offer_digit(ev, now);
        self.drain_flow();
    }

    fn offer_digit(&mut self, ev: DigitEvent, now: Instant) {
        let Some(ev) = self.dedupe.offer(ev) else {
            self.stats.duplicates += 1;
            return;
        };
        match ev.source {
            DtmfSource::Rfc4733 => self.stats.digits_rfc4733 += 1,
            DtmfSource::Info => self.stats.digits_info += 1,
            DtmfSource::InBand => self.stats.digits_inband += 1,
        }
        tracing::debug!(source = ?ev.source, "digit");
        self.flow.handle_digit(ev.digit, ev.source, now);
    }

    /// The shell queued the prompt of the last [`CallAction::Play`] as `playback`.
    pub fn prompt_queued(&mut self, prompt: PromptId, playback: PlaybackId) {
        if self.requested == Some(prompt) {
            self.requested = None;
            self.playing = Some((playback, prompt));
        }
    }

    /// The pacer reported on a playback.
    pub fn prompt_event(&mut self, event: PromptEvent, now: Instant) {
        if self.ended {
            return;
        }
        match event {
            PromptEvent::Finished(id) => {
                if let Some((playing, prompt)) = self.playing {
                    if playing == id {
                        self.playing = None;
                        self.flow.prompt_finished(prompt, now);
                    }
                }
            }
            PromptEvent::Stopped(id) => {
                if self.playing.is_some_and(|(p, _)| p == id) {
                    self.playing = None;
                }
            }
        }
        self.drain_flow();
    }

    /// The directory's answer to the last [`CallAction::LookUp`].
    pub fn handle_lookup(&mut self, lookup: Lookup, now: Instant) {
        if self.ended {
            return;
        }
        self.flow.handle_lookup(lookup, now);
        self.drain_flow();
    }

    /// A re-INVITE or UPDATE changed the media: new payload types or far
    /// end. A new codec replaces the pacer stream and restarts the prompt
    /// that was playing, so the attendant never waits on a prompt that
    /// will not finish.
    pub fn media_changed(&mut self, params: MediaParams) {
        if self.ended {
            return;
        }
        self.receiver
            .renegotiate(params.audio_pt, params.event_pt, params.remote);
        self.choose_methods(params.event_pt.is_some());
        let remote_change = self.receiver.take_remote_change();
        if params.law != self.law || params.audio_pt != self.audio_pt {
            self.law = params.law;
            self.audio_pt = params.audio_pt;
            if let Some(det) = self.inband.as_mut() {
                det.reset();
            }
            self.actions.push_back(CallAction::ChangeCodec {
                law: params.law,
                audio_pt: params.audio_pt,
                event_pt: params.event_pt,
            });
            let interrupted = self.playing.take().map(|(_, p)| p).or(self.requested);
            if let Some(prompt) = interrupted {
                self.requested = Some(prompt);
                self.actions.push_back(CallAction::Play { prompt });
            }
        } else if let Some(dest) = remote_change {
            self.actions.push_back(CallAction::SetDestination(dest));
        }
    }

    /// Fires every timer due at `now`: the attendant's and the media timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if now >= self.media_deadline() {
            self.flow.hangup(now);
            self.finish(HangUpReason::MediaTimeout);
            return;
        }
        if self.flow.poll_timeout().is_some_and(|t| t <= now) {
            self.flow.handle_timeout(now);
        }
        self.drain_flow();
    }

    /// The caller hung up (BYE, CANCEL, transport loss): everything stops,
    /// no further actions or timers.
    pub fn caller_hung_up(&mut self, now: Instant) {
        self.flow.hangup(now);
        self.actions.clear();
        self.requested = None;
        self.playing = None;
        self.ended = true;
    }

    /// After [`CallAction::Route`]: the bridge could not take the call.
    pub fn bridge_failed(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        self.flow.bridge_failed(now);
        self.drain_flow();
    }

    /// The next action, in order.
    pub fn poll_action(&mut self) -> Option<CallAction> {
        self.actions.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None`
    /// once the call has ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let media = self.media_deadline();
        Some(match self.flow.poll_timeout() {
            Some(t) => t.min(media),
            None => media,
        })
    }

    fn finish(&mut self, reason: HangUpReason) {
        if self.playing.take().is_some() || self.requested.take().is_some() {
            self.actions.push_back(CallAction::Stop);
        }
        self.actions.push_back(CallAction::HangUp(reason));
        self.ended = true;
    }

    fn drain_flow(&mut self) {
        while let Some(action) = self.flow.poll_action() {
            match action {
                Action::PlayPrompt(prompt) => {
                    self.requested = Some(prompt);
                    self.actions.push_back(CallAction::Play { prompt });
                }
                Action::StopPrompt => {
                    self.requested = None;
                    self.playing = None;
                    self.actions.push_back(CallAction::Stop);
                }
                Action::LookUp(id) => self.actions.push_back(CallAction::LookUp(id)),
                Action::Route(route) => self.actions.push_back(CallAction::Route(route)),
                Action::EntryFailed { failure, attempt } => self
                    .actions
                    .push_back(CallAction::EntryFailed { failure, attempt }),
                Action::Hangup(reason) => {
                    self.finish(HangUpReason::Attendant(reason));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

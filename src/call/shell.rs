//! The tokio shell of the call path: one task per answered call around its
//! [`CallSession`], all sharing one pacer thread, one prompt library, one
//! directory and one guessing defence.
//!
//! The SIP driver owns a [`CallPath`] and tells it what the user agent
//! core reports ([`CallPath::call_started`], [`CallPath::info`],
//! [`CallPath::media_changed`], [`CallPath::bridge_failed`],
//! [`CallPath::call_ended`]); what the path wants of the core (hang up,
//! transfer to an external bridge) comes back as [`CoreRequest`]s on the
//! channel returned by [`CallPath::new`].
//!
//! Each call task owns the call's RTP and RTCP sockets, feeds received
//! datagrams to the session, carries out its actions (prompts on the
//! pacer, directory lookups, guard reports) and sleeps until the session's
//! next deadline. The guard sits behind a std `Mutex`: it is only held for
//! a few hash-map operations and never across an `.await`.
//!
//! # The embedded bridge
//! On [`CallAction::Route`] the task puts the call into its meeting's
//! conference ([`PacerHandle::join_bridge`]): the conferences live in the
//! pacer thread, which mixes every room right before each 20 ms tick and
//! sends each caller's mix on the call's own pacer stream, so mixing and
//! sending share one clock and no frame waits a tick. From then on the
//! caller's audio, still checked by the session's RTP receiver (latching,
//! media timeout), is queued for the mixer ([`PacerHandle::bridge_audio`])
//! instead of reaching the DTMF detectors. A full room plays the
//! bridge-unavailable prompt and hangs up; the call leaves its room when
//! it ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{CallAction, CallSession, MediaParams, PromptEvent};
use crate::bridge::profiles::{BridgeMode, BridgeProfile, RouteContext};
use crate::bridge::relay::{Leg, LegPayloads};
use crate::bridge::ParticipantId;
use crate::directory::{ConferenceId, DirectoryLookup, Lookup, Refusal, Route};
use crate::dtmf::{Digit, DtmfSettings};
use crate::ivr::{CallVerdict, CallerIdentity, GuessingGuard, IvrSettings};
use crate::media::pacer::{BridgeJoinError, PacerEvent, PacerHandle, PacerShell, StreamId};
use crate::media::prompts::PromptLibrary;
use crate::media::rtp::{RtpSender, DEFAULT_EVENT_PT};
use crate::media::{MediaSettings, PromptId};
use crate::sip::sdp::Negotiated;
use crate::sip::ua::{CallKey, CallerInfo};

/// The settings the call path uses, taken from the daemon configuration.
#[derive(Clone, Debug, Default)]
pub struct CallPathSettings {
    /// `[media]`: prompts, media timeout, symmetric RTP.
    pub media: MediaSettings,
    /// `[dtmf]`: which methods, detector settings.
    pub dtmf: DtmfSettings,
    /// `[ivr]`: the attendant and its guessing defence.
    pub ivr: IvrSettings,
    /// `[bridge]`: which bridge profile each dial-in number routes to.
    pub bridge: crate::bridge::BridgeSettings,
    /// The dial-in numbers, for their bridge profile names and DTMF modes.
    pub dial_in_numbers: Vec<crate::config::DialInNumber>,
    /// The trunks, for their DTMF modes.
    pub trunks: Vec<crate::config::Trunk>,
}

impl CallPathSettings {
    /// The call path's sections of the configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        CallPathSettings {
            media: config.media.clone(),
            dtmf: config.dtmf.clone(),
            ivr: config.ivr.clone(),
            bridge: config.bridge.clone(),
            dial_in_numbers: config.dial_in_numbers.clone(),
            trunks: config.trunks.clone(),
        }
    }
}

/// What the call path is given from outside the configuration.
#[derive(Clone)]
pub struct Services {
    /// The conference-ID directory asked on every entry.
    pub directory: Arc<dyn DirectoryLookup>,
}

impl Services {
    /// Services with an empty directory: every ID is refused as unknown.
    pub fn empty() -> Services {
        Services {
            directory: Arc::new(StaticDirectory::default()),
        }
    }
}

impl Default for Services {
    fn default() -> Self {
        Services::empty()
    }
}

/// A fixed in-memory directory (tests, labs): the answer for each listed
/// ID, `Refused(Unknown)` for the rest. Read-only after construction, so
/// lookups take no lock.
#[derive(Clone, Debug, Default)]
pub struct StaticDirectory {
    entries: HashMap<ConferenceId, Lookup>,
}

impl StaticDirectory {
    /// A directory answering `lookup` for `id`.
    pub fn with(mut self, id: ConferenceId, lookup: Lookup) -> Self {
        self.entries.insert(id, lookup);
        self
    }
}

impl DirectoryLookup for StaticDirectory {
    fn lookup(&self, id: ConferenceId, _now: SystemTime) -> Lookup {
        self.entries
            .get(&id)
            .cloned()
            .unwrap_or(Lookup::Refused(Refusal::Unknown))
    }
}

/// A call's RTP and RTCP sockets, bound when its port pair was allocated.
#[derive(Debug)]
pub struct RtpSockets {
    /// The RTP socket (even port).
    pub rtp: UdpSocket,
    /// The RTCP socket (odd port).
    pub rtcp: UdpSocket,
}

/// What the call path asks of the user agent core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreRequest {
    /// Hang the call up.
    HangUp(CallKey),
    /// Transfer the caller to an external bridge with REFER
    /// ([`crate::sip::ua::UserAgent::refer`]); a failure comes back as
    /// [`CallPath::bridge_failed`].
    Transfer {
        /// The call.
        call: CallKey,
        /// The Refer-To URI.
        refer_to: String,
        /// How long the transfer may take.
        timeout: Duration,
    },
    /// Place the call to a b2bua bridge for this caller
    /// ([`crate::sip::ua::UserAgent::place_call`]); the driver answers
    /// with [`CallPath::bridge_call_placed`] or [`CallPath::bridge_failed`].
    PlaceCall {
        /// The caller's call.
        call: CallKey,
        /// The call to place.
        request: Box<crate::sip::ua::OutboundCall>,
    },
}

/// What the driver tells a call task.
#[derive(Debug)]
enum ToCall {
    InfoDigit(Digit),
    /// The new media, and whether the caller put the call on hold.
    MediaChanged(MediaParams, bool),
    BridgeFailed,
    /// The bridge leg was placed; its RTP sockets.
    BridgeLeg(CallKey, Box<RtpSockets>),
    /// The bridge answered: relay from now on.
    BridgeAnswered(Box<Negotiated>),
    /// The bridge leg ended: hang the caller up.
    BridgeEnded,
}

struct RunningCall {
    tx: mpsc::UnboundedSender<ToCall>,
    task: JoinHandle<()>,
}

/// Everything calls share, cheap to hand to each task.
struct Shared {
    settings: CallPathSettings,
    prompts: PromptLibrary,
    directory: Arc<dyn DirectoryLookup>,
    guard: Mutex<GuessingGuard>,
    pacer: PacerHandle<UdpSocket>,
    hang_ups: mpsc::UnboundedSender<CoreRequest>,
    counters: PathCounters,
}

#[derive(Default)]
struct PathCounters {
    routed: AtomicU64,
    entries_failed: AtomicU64,
    early_refusals: AtomicU64,
    bridge_refused: AtomicU64,
}

/// Counters of the call path since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallPathStats {
    /// Callers who keyed a valid ID and were routed.
    pub routed: u64,
    /// Failed entries (wrong, malformed or empty).
    pub entries_failed: u64,
    /// Callers refused at the start by the guessing defence.
    pub early_refusals: u64,
    /// Routed callers the embedded bridge could not take (room full).
    pub bridge_refused: u64,
    /// Embedded conference rooms open now.
    pub bridge_rooms: usize,
    /// Callers in embedded conferences now.
    pub bridge_participants: usize,
}

/// The call path of a running server: starts and stops the call tasks.
pub struct CallPath {
    shared: Arc<Shared>,
    calls: HashMap<CallKey, RunningCall>,
    /// Bridge legs (calls we placed) → the caller they serve.
    legs: HashMap<CallKey, CallKey>,
    /// Keeps the pacer thread alive; dropped last.
    _pacer: PacerShell<UdpSocket>,
}

impl CallPath {
    /// Loads the prompts (a missing or unusable prompt file is an error
    /// naming it) and starts the pacer thread. Calls to hang up arrive on
    /// the returned receiver.
    pub fn new(
        settings: CallPathSettings,
        services: Services,
    ) -> anyhow::Result<(CallPath, mpsc::UnboundedReceiver<CoreRequest>)> {
        let prompts = PromptLibrary::load(&settings.media).with_context(|| {
            format!(
                "loading prompts from {}",
                settings.media.prompt_dir.display()
            )
        })?;
        let pacer =
            PacerShell::spawn_with_bridge(settings.media.pacer_nice, settings.bridge.clone())
                .context("starting the pacer thread")?;
        let (hang_ups, hang_up_rx) = mpsc::unbounded_channel();
        let guard = Mutex::new(GuessingGuard::new(settings.ivr.guard.clone()));
        let shared = Arc::new(Shared {
            settings,
            prompts,
            directory: services.directory,
            guard,
            pacer: pacer.handle(),
            hang_ups,
            counters: PathCounters::default(),
        });
        Ok((
            CallPath {
                shared,
                calls: HashMap::new(),
                legs: HashMap::new(),
                _pacer: pacer,
            },
            hang_up_rx,
        ))
    }

    /// Logs a warning for each language asked for (by a dial-in number)
    /// that has no prompt set: its callers hear the default language.
    pub fn check_languages<'a>(&self, languages: impl IntoIterator<Item = &'a str>) {
        for language in languages {
            if !self.shared.prompts.languages().any(|l| l == language) {
                tracing::warn!(
                    language,
                    default = self.shared.settings.media.default_language,
                    "no prompts for this dial-in number's language; the default language is played"
                );
            }
        }
    }

    /// Calls with a running task.
    pub fn active(&self) -> usize {
        self.calls.len()
    }

    /// Counters since start.
    pub fn stats(&self) -> CallPathStats {
        self.probe().stats()
    }

    /// Streams attached to the pacer (one per call with a destination).
    pub fn pacer_streams(&self) -> usize {
        self.probe().pacer_streams()
    }

    /// A handle that reads the live counters from anywhere.
    pub fn probe(&self) -> CallPathProbe {
        CallPathProbe(self.shared.clone())
    }

    /// A call is answered and confirmed: asks the guessing defence, then
    /// starts the call's task on its sockets. Without sockets (the port's
    /// binding was lost) the call is hung up at once. `dialed` (the dial-in
    /// number's digits) picks the bridge profile.
    #[allow(clippy::too_many_arguments)]
    pub fn call_started(
        &mut self,
        call: CallKey,
        call_id: &str,
        dialed: &str,
        language: &str,
        media: &Negotiated,
        caller: &CallerInfo,
        sockets: Option<RtpSockets>,
    ) {
        let Some(sockets) = sockets else {
            tracing::warn!(%call_id, "no RTP socket for the call, hanging up");
            let _ = self.shared.hang_ups.send(CoreRequest::HangUp(call));
            return;
        };
        let now = Instant::now();
        let verdict = {
            let identity = identity(caller);
            lock(&self.shared.guard).check_call(&identity, caller.source, caller.is_trunk, now)
        };
        let early_refusal = match verdict {
            CallVerdict::Admit => None,
            CallVerdict::Refuse { reason, .. } => {
                tracing::info!(%call_id, ?reason, "caller refused by the guessing defence");
                self.shared
                    .counters
                    .early_refusals
                    .fetch_add(1, Ordering::Relaxed);
                Some(reason)
            }
        };
        let params = MediaParams::from_negotiated(media);
        let s = &self.shared.settings;
        let number = s
            .dial_in_numbers
            .iter()
            .find(|n| n.digits().as_deref() == Some(dialed));
        // The dial-in number's DTMF mode, else the trunk's, else `dtmf.mode`.
        let mode = number
            .and_then(|n| n.dtmf_mode)
            .or_else(|| {
                s.trunks
                    .iter()
                    .find(|t| t.contains(caller.source))
                    .and_then(|t| t.dtmf_mode)
            })
            .unwrap_or(s.dtmf.mode);
        let dtmf = DtmfSettings {
            mode,
            ..s.dtmf.clone()
        };
        let session = CallSession::new(&s.ivr, &dtmf, &s.media, params, early_refusal, now);
        let (tx, rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("ivr", %call_id);
        let profile_name = number.and_then(|n| n.bridge.as_deref());
        let profile = s.bridge.profile_for(profile_name);
        let task = CallTask {
            key: call,
            dialed: dialed.to_owned(),
            profile,
            conference_id: None,
            caller_media: media.clone(),
            bridge: None,
            session,
            shared: self.shared.clone(),
            language: language.to_owned(),
            caller: caller.clone(),
            rtp: Arc::new(sockets.rtp),
            rtcp: sockets.rtcp,
            audio_pt: params.audio_pt,
            event_pt: params.event_pt,
            stream: None,
            pending_play: None,
            participant: None,
            pending_route: None,
            on_hold: media.on_hold,
            hung_up: false,
            span,
        };
        let handle = tokio::spawn(task.run(rx, now));
        self.calls.insert(call, RunningCall { tx, task: handle });
    }

    /// An INFO in a call: a DTMF body's digit goes to the call's task
    /// (malformed bodies were answered 400 by the core and are skipped).
    pub fn info(&mut self, call: CallKey, content_type: Option<&str>, body: &[u8]) {
        let Some(ct) = content_type else { return };
        if !crate::dtmf::info::is_dtmf_info_content_type(ct) {
            return;
        }
        let Ok(info) = crate::dtmf::info::parse_info_body(ct, body) else {
            return;
        };
        if let Some(c) = self.calls.get(&call) {
            let _ = c.tx.send(ToCall::InfoDigit(info.digit));
        }
    }

    /// The external bridge could not take the call (REFER refused, the
    /// transfer failed, the bridge call could not be placed): the caller
    /// hears the apology and is hung up on.
    pub fn bridge_failed(&mut self, call: CallKey) {
        if let Some(c) = self.calls.get(&call) {
            let _ = c.tx.send(ToCall::BridgeFailed);
        }
    }

    /// The call to a b2bua bridge for `caller` was placed as `bridge` on
    /// these RTP sockets. Without sockets it is hung up and the caller
    /// apologised to.
    pub fn bridge_call_placed(
        &mut self,
        caller: CallKey,
        bridge: CallKey,
        sockets: Option<RtpSockets>,
    ) {
        let (Some(c), Some(sockets)) = (self.calls.get(&caller), sockets) else {
            let _ = self.shared.hang_ups.send(CoreRequest::HangUp(bridge));
            self.bridge_failed(caller);
            return;
        };
        self.legs.insert(bridge, caller);
        let _ = c.tx.send(ToCall::BridgeLeg(bridge, Box::new(sockets)));
    }

    /// A bridge leg was answered.
    pub fn outbound_answered(&mut self, bridge: CallKey, media: &Negotiated) {
        if let Some(c) = self.legs.get(&bridge).and_then(|k| self.calls.get(k)) {
            let _ = c.tx.send(ToCall::BridgeAnswered(Box::new(media.clone())));
        }
    }

    /// A bridge leg was not answered: its caller hears the apology.
    pub fn outbound_failed(&mut self, bridge: CallKey) {
        if let Some(caller) = self.legs.remove(&bridge) {
            self.bridge_failed(caller);
        }
    }

    /// A re-INVITE or UPDATE changed the call's media.
    pub fn media_changed(&mut self, call: CallKey, media: &Negotiated) {
        if let Some(c) = self.calls.get(&call) {
            let params = MediaParams::from_negotiated(media);
            let _ = c.tx.send(ToCall::MediaChanged(params, media.on_hold));
        }
    }

    /// The call ended (either side): its task stops, its pacer stream goes
    /// and its sockets close.
    pub fn call_ended(&mut self, call: CallKey) {
        if let Some(caller) = self.legs.remove(&call) {
            // A BYE on either leg ends both.
            if let Some(c) = self.calls.get(&caller) {
                let _ = c.tx.send(ToCall::BridgeEnded);
            }
            return;
        }
        // Dropping the sender ends the task's loop; it removes its stream
        // and hangs up its bridge leg.
        self.calls.remove(&call);
    }

    /// Waits for every call task to finish (after their calls ended).
    pub async fn join_all(&mut self) {
        for (_, c) in self.calls.drain() {
            drop(c.tx);
            let _ = c.task.await;
        }
    }
}

/// Reads the call path's live counters (for the server's stats).
#[derive(Clone)]
pub struct CallPathProbe(Arc<Shared>);

impl CallPathProbe {
    /// Counters since start.
    pub fn stats(&self) -> CallPathStats {
        let c = &self.0.counters;
        let pacer = self.0.pacer.stats();
        CallPathStats {
            routed: c.routed.load(Ordering::Relaxed),
            entries_failed: c.entries_failed.load(Ordering::Relaxed),
            early_refusals: c.early_refusals.load(Ordering::Relaxed),
            bridge_refused: c.bridge_refused.load(Ordering::Relaxed),
            bridge_rooms: pacer.bridge_rooms,
            bridge_participants: pacer.bridge_participants,
        }
    }

    /// Streams attached to the pacer.
    pub fn pacer_streams(&self) -> usize {
        self.0.pacer.len()
    }
}

impl std::fmt::Debug for CallPathProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallPathProbe").finish_non_exhaustive()
    }
}

fn lock(guard: &Mutex<GuessingGuard>) -> std::sync::MutexGuard<'_, GuessingGuard> {
    // The guard's tables stay consistent between operations; a poisoned
    // lock (a panic elsewhere) leaves them usable.
    guard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn identity(caller: &CallerInfo) -> CallerIdentity<'_> {
    CallerIdentity::derive(caller.asserted_user.as_deref(), caller.from_user.as_deref())
}

struct CallTask {
    key: CallKey,
    /// The dial-in number's digits.
    dialed: String,
    /// Where routed callers go; `None`: the number names an unknown
    /// profile (refused by config validation).
    profile: Option<BridgeProfile>,
    /// The conference ID last looked up.
    conference_id: Option<ConferenceId>,
    /// The caller's negotiated media (the bridge offer repeats its codec).
    caller_media: Negotiated,
    /// The leg to a b2bua bridge, once placed.
    bridge: Option<BridgeLeg>,
    session: CallSession,
    shared: Arc<Shared>,
    language: String,
    caller: CallerInfo,
    rtp: Arc<UdpSocket>,
    rtcp: UdpSocket,
    audio_pt: u8,
    event_pt: Option<u8>,
    /// The pacer stream, once there is somewhere to send.
    stream: Option<StreamId>,
    /// A prompt asked for before there was a destination.
    pending_play: Option<PromptId>,
    /// The call's seat in its meeting's embedded conference.
    participant: Option<ParticipantId>,
    /// A route that arrived before there was a stream to send the mix on.
    pending_route: Option<Route>,
    /// The caller holds the call (RFC 3264 §8.4).
    on_hold: bool,
    hung_up: bool,
    span: tracing::Span,
}

/// The call task's leg to a b2bua bridge.
struct BridgeLeg {
    key: CallKey,
    rtp: UdpSocket,
    _rtcp: UdpSocket,
    /// Set once the bridge answered.
    relay: Option<(crate::bridge::Relay, SocketAddr)>,
}

async fn recv_bridge(
    leg: &Option<BridgeLeg>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match leg {
        Some(l) => l.rtp.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl CallTask {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ToCall>, now: Instant) {
        let mut pacer_events: Option<mpsc::UnboundedReceiver<PacerEvent>> = None;
        if let Some(dest) = self.session.destination() {
            pacer_events = self.attach(dest);
        }
        self.session.start(now);
        let mut rtp_buf = [0u8; 2048];
        let mut rtcp_buf = [0u8; 1500];
        let mut bridge_buf = [0u8; 2048];
        let mut relay_out = [0u8; 2048];
        loop {
            self.carry_out(&mut pacer_events);
            let relaying = self.bridge.as_ref().is_some_and(|b| b.relay.is_some());
            // While relaying, the bridge leg's own signalling ends the call.
            let deadline = if relaying {
                None
            } else {
                self.session.poll_timeout()
            };
            tokio::select! {
                received = self.rtp.recv_from(&mut rtp_buf) => match received {
                    Ok((n, from)) => {
                        let data = rtp_buf.get(..n).unwrap_or(&[]);
                        match self.bridge.as_mut() {
                            Some(BridgeLeg { rtp, relay: Some((relay, dest)), .. }) => {
                                if let Ok(m) = relay.forward(Leg::Caller, data, &mut relay_out) {
                                    let _ = rtp.try_send_to(relay_out.get(..m).unwrap_or(&[]), *dest);
                                }
                            }
                            _ => {
                                let now = Instant::now();
                                let audio = self.session.handle_rtp_media(data, from, now);
                                if let (Some(audio), Some(participant)) = (audio, self.participant) {
                                    // Dropped (counted) if the mixer's queue is full:
                                    // a lost packet, never a stalled call.
                                    self.shared.pacer.bridge_audio(
                                        participant,
                                        audio.timestamp,
                                        audio.payload,
                                        now,
                                    );
                                }
                            }
                        }
                    }
                    // An ICMP error reported on the socket: nothing to read.
                    Err(_) => tokio::task::yield_now().await,
                },
                received = recv_bridge(&self.bridge, &mut bridge_buf) => match received {
                    Ok((n, _)) => {
                        let to_caller = self.session.destination();
                        if let (Some(BridgeLeg { relay: Some((relay, _)), .. }), Some(dest)) =
                            (self.bridge.as_mut(), to_caller)
                        {
                            let data = bridge_buf.get(..n).unwrap_or(&[]);
                            if let Ok(m) = relay.forward(Leg::Bridge, data, &mut relay_out) {
                                let _ = self.rtp.try_send_to(relay_out.get(..m).unwrap_or(&[]), dest);
                            }
                        }
                    }
                    Err(_) => tokio::task::yield_now().await,
                },
                received = self.rtcp.recv_from(&mut rtcp_buf) => match received {
                    Ok((n, from)) => {
                        let data = rtcp_buf.get(..n).unwrap_or(&[]);
                        self.session.handle_rtcp(data, from, Instant::now());
                    }
                    Err(_) => tokio::task::yield_now().await,
                },
                Some(event) = recv_pacer(&mut pacer_events) => {
                    let event = match event {
                        PacerEvent::Finished { playback, .. } => PromptEvent::Finished(playback),
                        PacerEvent::Stopped { playback, .. } => PromptEvent::Stopped(playback),
                    };
                    self.session.prompt_event(event, Instant::now());
                }
                message = rx.recv() => match message {
                    Some(ToCall::InfoDigit(digit)) => {
                        self.session.handle_info_digit(digit, Instant::now());
                    }
                    Some(ToCall::MediaChanged(params, on_hold)) => {
                        self.session.media_changed(params);
                        self.set_hold(on_hold);
                    }
                    Some(ToCall::BridgeFailed) => {
                        tracing::info!(parent: &self.span, "external bridge failed");
                        self.bridge = None;
                        self.session.bridge_failed(Instant::now());
                    }
                    Some(ToCall::BridgeLeg(key, sockets)) => {
                        let RtpSockets { rtp, rtcp } = *sockets;
                        self.bridge = Some(BridgeLeg { key, rtp, _rtcp: rtcp, relay: None });
                    }
                    Some(ToCall::BridgeAnswered(media)) => self.bridge_answered(&media),
                    Some(ToCall::BridgeEnded) => {
                        tracing::info!(parent: &self.span, "bridge leg ended");
                        self.bridge = None;
                        self.hang_up();
                    }
                    None => {
                        self.session.caller_hung_up(Instant::now());
                        break;
                    }
                },
                _ = sleep_until(deadline) => {
                    self.session.handle_timeout(Instant::now());
                }
            }
        }
        self.leave_bridge();
        if let Some(stream) = self.stream.take() {
            self.shared.pacer.remove_stream(stream);
        }
        if let Some(leg) = self.bridge.take() {
            // The caller is gone: end the bridge leg too (CANCEL or BYE).
            let _ = self.shared.hang_ups.send(CoreRequest::HangUp(leg.key));
        }
        let stats = self.session.stats();
        tracing::debug!(parent: &self.span, ?stats, "call task ended");
    }

    /// Adds the call's stream to the pacer, sending to `dest`.
    fn attach(&mut self, dest: SocketAddr) -> Option<mpsc::UnboundedReceiver<PacerEvent>> {
        let sender = match RtpSender::new(self.audio_pt, self.event_pt.unwrap_or(DEFAULT_EVENT_PT))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(parent: &self.span, error = %e, "cannot send RTP, hanging up");
                self.hang_up();
                return None;
            }
        };
        let (id, events) =
            self.shared
                .pacer
                .add_stream(sender, self.session.law(), dest, self.rtp.clone());
        self.stream = Some(id);
        Some(events)
    }

    /// Puts the call into its meeting's conference, switching its stream
    /// to the mix; a full room gets the bridge-unavailable prompt and a
    /// hang-up from the session.
    fn join_bridge(&mut self, route: Route) {
        let Some(stream) = self.stream else {
            self.pending_route = Some(route);
            return;
        };
        let law = self.session.law();
        match self.shared.pacer.join_bridge(stream, &route.meeting, law) {
            Ok(participant) => {
                tracing::info!(parent: &self.span, meeting = %route.meeting, %participant, "caller joined the conference");
                self.participant = Some(participant);
                if self.on_hold {
                    self.shared.pacer.set_bridge_hold(participant, true);
                }
            }
            Err(e) => {
                tracing::info!(parent: &self.span, meeting = %route.meeting, error = %e, "conference refused the caller");
                if matches!(e, BridgeJoinError::RoomFull(_)) {
                    self.shared
                        .counters
                        .bridge_refused
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.session.bridge_failed(Instant::now());
            }
        }
    }

    fn leave_bridge(&mut self) {
        self.pending_route = None;
        if let Some(participant) = self.participant.take() {
            self.shared.pacer.leave_bridge(participant);
        }
    }

    fn set_hold(&mut self, on_hold: bool) {
        if std::mem::replace(&mut self.on_hold, on_hold) == on_hold {
            return;
        }
        tracing::debug!(parent: &self.span, on_hold, "hold changed");
        if let Some(participant) = self.participant {
            self.shared.pacer.set_bridge_hold(participant, on_hold);
        }
    }

    /// After the call got a (new) stream: a joined caller's mix moves to
    /// it; a route that waited for it joins now.
    fn stream_attached(&mut self) {
        let Some(stream) = self.stream else { return };
        if let Some(participant) = self.participant {
            let law = self.session.law();
            if let Err(e) = self.shared.pacer.move_participant(participant, stream, law) {
                tracing::debug!(parent: &self.span, error = %e, "mix not moved");
            }
        } else if let Some(route) = self.pending_route.take() {
            self.join_bridge(route);
        }
    }

    fn hang_up(&mut self) {
        if !std::mem::replace(&mut self.hung_up, true) {
            let _ = self.shared.hang_ups.send(CoreRequest::HangUp(self.key));
        }
    }

    /// The bridge answered: prompts stop, RTP is relayed between the legs.
    fn bridge_answered(&mut self, media: &Negotiated) {
        let caller = LegPayloads::from_negotiated(&self.caller_media);
        let bridge = LegPayloads::from_negotiated(media);
        let relay = match (crate::bridge::Relay::new(caller, bridge), media.remote_rtp) {
            (Ok(r), Some(dest)) => (r, dest),
            (Err(e), _) => {
                tracing::warn!(parent: &self.span, error = %e, "bridge media not relayable");
                self.session.bridge_failed(Instant::now());
                return;
            }
            (_, None) => {
                tracing::warn!(parent: &self.span, "bridge answered without an RTP address");
                self.session.bridge_failed(Instant::now());
                return;
            }
        };
        let Some(leg) = self.bridge.as_mut() else {
            return;
        };
        leg.relay = Some(relay);
        self.pending_play = None;
        if let Some(stream) = self.stream.take() {
            self.shared.pacer.remove_stream(stream);
        }
        tracing::info!(parent: &self.span, "bridge answered, relaying media");
    }

    /// Hands a routed caller to the bridge of the number's profile.
    fn route(&mut self, route: &Route) {
        let Some(profile) = &self.profile else {
            tracing::warn!(parent: &self.span, "no bridge profile for the number");
            self.session.bridge_failed(Instant::now());
            return;
        };
        match profile.mode {
            BridgeMode::Embedded => self.join_bridge(route.clone()),
            BridgeMode::Refer | BridgeMode::B2bua => {
                let ctx = RouteContext {
                    conference_id: self
                        .conference_id
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    meeting_id: route.meeting.to_string(),
                    organizer: route.organizer.to_string(),
                    dialed_number: self.dialed.clone(),
                };
                let request = if profile.mode == BridgeMode::Refer {
                    profile
                        .refer_target(&ctx)
                        .map(|refer_to| CoreRequest::Transfer {
                            call: self.key,
                            refer_to,
                            timeout: profile.transfer_timeout,
                        })
                } else {
                    profile.b2bua_call(&ctx, &self.caller_media).map(|request| {
                        CoreRequest::PlaceCall {
                            call: self.key,
                            request: Box::new(request),
                        }
                    })
                };
                match request {
                    Ok(request) => {
                        let _ = self.shared.hang_ups.send(request);
                    }
                    Err(e) => {
                        tracing::warn!(parent: &self.span, error = %e, "bridge URI not usable");
                        self.session.bridge_failed(Instant::now());
                    }
                }
            }
        }
    }

    fn play(&mut self, prompt: PromptId) {
        let Some(stream) = self.stream else {
            self.pending_play = Some(prompt);
            return;
        };
        let audio = self.shared.prompts.prompt(Some(&self.language), prompt);
        match self.shared.pacer.play(stream, audio) {
            Ok(playback) => self.session.prompt_queued(prompt, playback),
            Err(e) => tracing::debug!(parent: &self.span, error = %e, "prompt not queued"),
        }
    }

    fn carry_out(&mut self, pacer_events: &mut Option<mpsc::UnboundedReceiver<PacerEvent>>) {
        while let Some(action) = self.session.poll_action() {
            match action {
                CallAction::Play { prompt } => {
                    tracing::debug!(parent: &self.span, ?prompt, "prompt");
                    self.play(prompt);
                }
                CallAction::Stop => {
                    self.pending_play = None;
                    if let Some(stream) = self.stream {
                        let _ = self.shared.pacer.stop(stream);
                    }
                }
                CallAction::ChangeCodec {
                    law: _,
                    audio_pt,
                    event_pt,
                } => {
                    tracing::debug!(parent: &self.span, audio_pt, "codec changed");
                    if let Some(stream) = self.stream.take() {
                        // Dropped without events: the session replays
                        // the interrupted prompt on the new stream.
                        self.shared.pacer.remove_stream(stream);
                    }
                    *pacer_events = None;
                    self.audio_pt = audio_pt;
                    self.event_pt = event_pt;
                    if let Some(dest) = self.session.destination() {
                        *pacer_events = self.attach(dest);
                        self.stream_attached();
                    }
                }
                CallAction::SetDestination(dest) => match self.stream {
                    Some(stream) => {
                        let _ = self.shared.pacer.set_destination(stream, dest);
                    }
                    None => {
                        *pacer_events = self.attach(dest);
                        if let Some(prompt) = self.pending_play.take() {
                            self.play(prompt);
                        }
                        self.stream_attached();
                    }
                },
                CallAction::LookUp(id) => {
                    self.conference_id = Some(id);
                    let answer = self.shared.directory.lookup(id, SystemTime::now());
                    if let Lookup::Refused(reason) = &answer {
                        tracing::info!(parent: &self.span, ?reason, "conference ID refused");
                    }
                    self.session.handle_lookup(answer, Instant::now());
                }
                CallAction::Route(route) => {
                    // The joining prompt has played: into the meeting's
                    // embedded conference.
                    tracing::info!(parent: &self.span, meeting = %route.meeting, "caller routed");
                    self.shared.counters.routed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(parent: &self.span, organizer = %route.organizer, "route");
                    self.route(&route);
                }
                CallAction::EntryFailed { failure, attempt } => {
                    tracing::info!(parent: &self.span, ?failure, attempt, "entry failed");
                    self.shared
                        .counters
                        .entries_failed
                        .fetch_add(1, Ordering::Relaxed);
                    if failure.is_guess() {
                        self.record_guess();
                    }
                }
                CallAction::HangUp(reason) => {
                    tracing::info!(parent: &self.span, %reason, "hanging up");
                    // Out of the room at once, not when the BYE completes.
                    self.leave_bridge();
                    self.hang_up();
                }
            }
        }
    }

    fn record_guess(&self) {
        let identity = identity(&self.caller);
        let recorded = lock(&self.shared.guard).record_failure(
            &identity,
            self.caller.source,
            self.caller.is_trunk,
            Instant::now(),
        );
        if recorded.identity_locked || recorded.address_locked {
            tracing::info!(
                parent: &self.span,
                identity = recorded.identity_locked,
                address = recorded.address_locked,
                "caller locked out by the guessing defence"
            );
        }
        if let Some(alarm) = recorded.alarm {
            tracing::warn!(
                failures_last_minute = alarm.failures_last_minute,
                threshold = alarm.threshold,
                "conference-ID guessing alarm: failed entries across all callers above the alarm level"
            );
        }
    }
}

async fn recv_pacer(
    events: &mut Option<mpsc::UnboundedReceiver<PacerEvent>>,
) -> Option<PacerEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

//! The caller side of full calls, sans-IO: many concurrent calls, each an
//! INVITE client transaction (RFC 3261 §17.1.1), a dialog, an RTP stream
//! both ways and the conference-ID digits.
//!
//! The shell feeds received datagrams ([`CallEngine::handle_sip`],
//! [`CallEngine::handle_rtp`]) and expired deadlines
//! ([`CallEngine::handle_timeout`]), each with `now`; it starts calls with
//! [`CallEngine::start_call`], drains [`CallEngine::poll_transmit`] and
//! sleeps until [`CallEngine::poll_timeout`].
//!
//! All calls share one SIP and one RTP socket; RTP from the gateway is
//! routed to its call by source address (the gateway's per-call port from
//! the SDP answer), so thousands of calls need no socket each.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::dtmf::rfc4733::TelephoneEvent;
use crate::dtmf::Digit;
use crate::media::rtp::{
    Received, ReceiverConfig, RtpReceiver, RtpSender, FRAME_BYTES, MAX_PACKET_LEN,
    SAMPLES_PER_FRAME,
};
use crate::sip::message::{HeaderName, Message, Method, RequestBuilder, ResponseBuilder};
use crate::sip::sdp::{self, Codec, LocalMedia, SessionDescription};
use crate::sip::transaction::{
    InviteClientTransaction, NonInviteClientTransaction, Reliability, TimerSettings,
    TransactionEvent,
};

use super::histogram::Histogram;
use super::tones::{ToneTable, TONE_FRAMES, ULAW_SILENCE};

/// RTP packet interval (RFC 3551 §4.5: 20 ms G.711 frames).
pub const PTIME: Duration = Duration::from_millis(20);
/// Payload type offered for telephone-event.
const EVENT_PT: u8 = 101;
/// How late an RTP tick may run before the stream skips ahead instead of
/// sending a burst.
const MAX_TICK_LAG: Duration = Duration::from_millis(100);

/// How the conference ID is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// RFC 4733 telephone-events: 80 ms updates then three end packets.
    Rfc4733,
    /// G.711 tones in the audio, 80 ms on, 80 ms off.
    Inband,
    /// SIP INFO with `application/dtmf-relay` (one request per key).
    Info,
}

/// The result a call must reach to count as a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Answered and held; no digits are sent.
    Answered,
    /// After the digits the call stays up (the caller is in the meeting).
    Joined,
    /// After the digits the gateway hangs up (BYE).
    Refused,
    /// After the digits the gateway transfers the call (REFER).
    Transferred,
}

/// Settings of a run of full calls.
#[derive(Clone, Debug)]
pub struct CallSettings {
    /// The gateway's SIP address.
    pub target: SocketAddr,
    /// Our SIP socket's address (Via, Contact).
    pub local_sip: SocketAddr,
    /// Our RTP socket's address (SDP).
    pub local_rtp: SocketAddr,
    /// User part of the Request-URI (the dial-in number).
    pub dialed: String,
    /// User part of From.
    pub caller: String,
    /// What counts as success.
    pub expect: Expect,
    /// How digits are sent.
    pub dtmf: DtmfMode,
    /// The keys to send (conference ID and terminator).
    pub digits: Vec<Digit>,
    /// How long the call stays up once it reached its outcome.
    pub hold: Duration,
    /// How long to wait for the first prompt packet before the digits.
    pub prompt_wait: Duration,
    /// Pause between the first prompt packet and the first digit.
    pub digit_delay: Duration,
    /// After the digits: how long the call must stay up to count as
    /// joined, and the longest wait for BYE or REFER.
    pub outcome_wait: Duration,
    /// SIP timers for our client transactions.
    pub timers: TimerSettings,
    /// Distinguishes runs (and worker threads) in Call-IDs.
    pub run_id: u64,
}

/// Counters and latencies of a run; mergeable across workers.
#[derive(Clone, Debug, Default)]
pub struct CallStats {
    /// Calls started.
    pub attempted: u64,
    /// Calls that reached the expected outcome and ended cleanly.
    pub succeeded: u64,
    /// Failed calls by reason.
    pub failed: BTreeMap<String, u64>,
    /// INVITE sent → 200 received.
    pub setup: Histogram,
    /// Last digit sent → BYE or REFER from the gateway.
    pub digits_to_outcome: Histogram,
    /// |inter-arrival − 20 ms| of the received stream.
    pub jitter: Histogram,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received (audio and events).
    pub rtp_received: u64,
    /// RTP packets lost (sequence gaps), RFC 3550 §6.4.1.
    pub rtp_lost: u64,
    /// 20 ms send ticks skipped because the generator ran more than
    /// 100 ms late (it was overloaded; the media clock still advances).
    pub rtp_ticks_skipped: u64,
    /// Answered calls that received at least one RTP packet.
    pub calls_with_media: u64,
    /// Answered calls.
    pub answered: u64,
    /// Most calls in progress at once.
    pub peak_concurrent: u64,
    /// SIP messages matching no call.
    pub stray: u64,
}

impl CallStats {
    /// Adds another worker's figures.
    pub fn merge(&mut self, o: &CallStats) {
        self.attempted += o.attempted;
        self.succeeded += o.succeeded;
        for (k, v) in &o.failed {
            *self.failed.entry(k.clone()).or_default() += v;
        }
        self.setup.merge(&o.setup);
        self.digits_to_outcome.merge(&o.digits_to_outcome);
        self.jitter.merge(&o.jitter);
        self.rtp_sent += o.rtp_sent;
        self.rtp_received += o.rtp_received;
        self.rtp_lost += o.rtp_lost;
        self.rtp_ticks_skipped += o.rtp_ticks_skipped;
        self.calls_with_media += o.calls_with_media;
        self.answered += o.answered;
        self.peak_concurrent += o.peak_concurrent;
        self.stray += o.stray;
    }

    /// Total failed calls.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// Which socket a datagram leaves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    /// The SIP socket.
    Sip,
    /// The RTP socket.
    Rtp,
}

/// A datagram to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// The socket to send from.
    pub socket: Socket,
    /// Destination.
    pub to: SocketAddr,
    /// The bytes.
    pub data: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// INVITE sent, no 2xx yet.
    Inviting,
    /// Answered, waiting for the first prompt packet.
    AwaitPrompt,
    /// Sending the digits.
    Digits,
    /// Digits sent, waiting for BYE/REFER or for the joined wait to pass.
    AwaitOutcome,
    /// Outcome reached; holding until the hold time passes.
    Holding,
    /// Our BYE is on its way.
    Hanging,
}

struct Nict {
    seq: u32,
    method: Method,
    tx: NonInviteClientTransaction,
}

struct Call {
    gen: u32,
    phase: Phase,
    call_id: String,
    local_tag: String,
    cseq: u32,
    started: Instant,
    invite: Option<InviteClientTransaction>,
    invite_head: InviteHead,
    ack: Option<Bytes>,
    remote_tag: Option<String>,
    remote_target: String,
    nicts: Vec<Nict>,
    rtp_tx: Option<RtpSender>,
    rtp_rx: Option<RtpReceiver>,
    remote_rtp: Option<SocketAddr>,
    next_tick: Option<Instant>,
    last_rx: Option<Instant>,
    media_seen: bool,
    digit_index: usize,
    digit_tick: usize,
    digits_done: Option<Instant>,
    phase_deadline: Option<Instant>,
    scheduled: Option<Instant>,
    failure: Option<String>,
    outcome_ok: bool,
}

/// The INVITE's header values an ACK for a non-2xx reuses (§17.1.1.3).
struct InviteHead {
    via: String,
    from: String,
    to: String,
}

/// Many concurrent calls from one SIP and one RTP socket.
pub struct CallEngine {
    settings: CallSettings,
    tones: Arc<ToneTable>,
    calls: Vec<Option<Call>>,
    free: Vec<usize>,
    active: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    rtp_routes: HashMap<SocketAddr, (usize, u32)>,
    out: VecDeque<Transmit>,
    rtp_buf: BytesMut,
    offer: String,
    next_gen: u32,
    stats: CallStats,
}

impl CallEngine {
    /// An engine with no calls.
    pub fn new(settings: CallSettings, tones: Arc<ToneTable>) -> Self {
        let mut local = LocalMedia::new(
            settings.local_rtp.ip(),
            settings.local_rtp.port(),
            settings.run_id,
        );
        local.codecs = vec![Codec::Pcmu];
        // A phone that sends tones in the audio does not offer
        // telephone-event; a gateway may then (rightly, RFC 4733 §2.6)
        // ignore tones from one that does.
        local.telephone_event_pt = (settings.dtmf != DtmfMode::Inband).then_some(EVENT_PT);
        let offer = sdp::build_offer(&local).to_string();
        CallEngine {
            settings,
            tones,
            calls: Vec::new(),
            free: Vec::new(),
            active: 0,
            timers: BinaryHeap::new(),
            rtp_routes: HashMap::new(),
            out: VecDeque::new(),
            rtp_buf: BytesMut::with_capacity(64 * 1024),
            offer,
            next_gen: 0,
            stats: CallStats::default(),
        }
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.active
    }

    /// The figures so far.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Ends every call still in progress as failed with `reason` (the run's
    /// time cap), and returns the figures.
    pub fn finish(mut self, reason: &str) -> CallStats {
        for i in 0..self.calls.len() {
            if let Some(call) = self.calls.get_mut(i).and_then(Option::as_mut) {
                if call.failure.is_none() {
                    call.failure = Some(reason.to_string());
                }
                self.end_call(i);
            }
        }
        self.stats
    }

    /// Starts one call: sends the INVITE with our SDP offer.
    pub fn start_call(&mut self, now: Instant) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.calls.push(None);
                self.calls.len() - 1
            }
        };
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let s = &self.settings;
        let call_id = format!("{:x}-{slot}-{gen}@dialgate-load", s.run_id);
        let local_tag = format!("{:x}", rand::random::<u64>());
        let branch = format!("z9hG4bK{:x}", rand::random::<u64>());
        let sent_by = s.local_sip.to_string();
        let via = format!("SIP/2.0/UDP {sent_by};branch={branch};rport");
        let from = format!("<sip:{}@{}>;tag={local_tag}", s.caller, s.local_sip.ip());
        let to = format!("<sip:{}@{}>", s.dialed, s.target);
        let request_uri = format!("sip:{}@{}", s.dialed, s.target);
        let invite = RequestBuilder::new(Method::Invite, &request_uri)
            .via("UDP", &sent_by, &branch)
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", format_args!("<sip:load@{sent_by}>"))
            .header(
                "Allow",
                "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER, NOTIFY",
            )
            .body("application/sdp", self.offer.as_bytes())
            .build();
        let tx = InviteClientTransaction::new(invite, now, s.timers, Reliability::Unreliable);
        let call = Call {
            gen,
            phase: Phase::Inviting,
            call_id,
            local_tag,
            cseq: 1,
            started: now,
            invite: Some(tx),
            invite_head: InviteHead { via, from, to },
            ack: None,
            remote_tag: None,
            remote_target: request_uri,
            nicts: Vec::new(),
            rtp_tx: None,
            rtp_rx: None,
            remote_rtp: None,
            next_tick: None,
            last_rx: None,
            media_seen: false,
            digit_index: 0,
            digit_tick: 0,
            digits_done: None,
            phase_deadline: None,
            scheduled: None,
            failure: None,
            outcome_ok: false,
        };
        if let Some(entry) = self.calls.get_mut(slot) {
            *entry = Some(call);
        }
        self.active += 1;
        self.stats.attempted += 1;
        self.stats.peak_concurrent = self.stats.peak_concurrent.max(self.active as u64);
        self.drain_invite(slot, None, now);
        self.after_input(slot, now);
    }

    /// The earliest deadline of any call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Runs every call whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, slot, gen))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if call.gen != gen || call.scheduled != Some(t) {
                continue; // superseded entry
            }
            call.scheduled = None;
            self.on_timeout(slot, now);
            self.after_input(slot, now);
        }
    }

    /// A datagram arrived on the SIP socket.
    pub fn handle_sip(&mut self, data: &[u8], now: Instant) {
        let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
            self.stats.stray += 1;
            return;
        };
        let Some(slot) = msg.call_id().ok().and_then(|id| self.slot_of(id)) else {
            self.stats.stray += 1;
            return;
        };
        if msg.is_response() {
            self.on_response(slot, &msg, now);
        } else {
            self.on_request(slot, &msg, now);
        }
        self.after_input(slot, now);
    }

    /// A datagram arrived on the RTP socket.
    pub fn handle_rtp(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let Some(&(slot, gen)) = self.rtp_routes.get(&from) else {
            return;
        };
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if call.gen != gen {
            return;
        }
        let Some(rx) = call.rtp_rx.as_mut() else {
            return;
        };
        match rx.handle_datagram(data, from, now) {
            Received::Audio { .. } | Received::Event { .. } => {
                if let Some(last) = call.last_rx {
                    let delta = now.saturating_duration_since(last);
                    let dev = delta.abs_diff(PTIME);
                    self.stats.jitter.record(dev);
                }
                call.last_rx = Some(now);
                if !call.media_seen {
                    call.media_seen = true;
                    if call.phase == Phase::AwaitPrompt {
                        call.phase_deadline = Some(now + self.settings.digit_delay);
                        self.after_input(slot, now);
                    }
                }
            }
            Received::Rtcp(_) | Received::Ignored(_) => {}
        }
    }

    fn slot_of(&self, call_id: &str) -> Option<usize> {
        // "<run>-<slot>-<gen>@dialgate-load"
        let local = call_id.split('@').next()?;
        let mut parts = local.split('-');
        let run = u64::from_str_radix(parts.next()?, 16).ok()?;
        let slot: usize = parts.next()?.parse().ok()?;
        let gen: u32 = parts.next()?.parse().ok()?;
        if run != self.settings.run_id {
            return None;
        }
        let call = self.calls.get(slot)?.as_ref()?;
        (call.gen == gen).then_some(slot)
    }

    fn on_response(&mut self, slot: usize, msg: &Message, now: Instant) {
        let (Some(status), Ok(cseq)) = (msg.status(), msg.cseq()) else {
            return;
        };
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if cseq.method == Method::Invite {
            if let Some(tx) = call.invite.as_mut() {
                let _ = tx.on_response(status, now);
            }
            self.drain_invite(slot, Some(msg), now);
        } else if let Some(n) = call
            .nicts
            .iter_mut()
            .find(|n| n.seq == cseq.seq && n.method == cseq.method)
        {
            let _ = n.tx.on_response(status, now);
            self.drain_nicts(slot, now);
        }
    }

    fn on_request(&mut self, slot: usize, msg: &Message, now: Instant) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let target = self.settings.target;
        let reply = |status: u16, reason: &str| Transmit {
            socket: Socket::Sip,
            to: target,
            data: ResponseBuilder::for_request(msg, status, reason).build(),
        };
        match method {
            Method::Bye => {
                self.out.push_back(reply(200, "OK"));
                self.on_remote_bye(slot, now);
            }
            Method::Refer => {
                self.out.push_back(reply(202, "Accepted"));
                self.on_refer(slot, now);
            }
            Method::Invite => {
                // A re-INVITE: answer with our unchanged offer as the answer.
                let contact = format!("<sip:load@{}>", self.settings.local_sip);
                let tag = self
                    .calls
                    .get(slot)
                    .and_then(Option::as_ref)
                    .map(|c| c.local_tag.clone())
                    .unwrap_or_default();
                let data = ResponseBuilder::for_request(msg, 200, "OK")
                    .to_tag(&tag)
                    .header("Contact", contact)
                    .body("application/sdp", self.offer.as_bytes())
                    .build();
                self.out.push_back(Transmit {
                    socket: Socket::Sip,
                    to: target,
                    data,
                });
            }
            Method::Ack => {}
            _ => self.out.push_back(reply(200, "OK")),
        }
    }

    fn on_remote_bye(&mut self, slot: usize, now: Instant) {
        let expect = self.settings.expect;
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if call.phase == Phase::Hanging {
            // Both hung up at once: our BYE's fate no longer matters.
            self.end_call(slot);
            return;
        }
        if expect == Expect::Refused && call.phase == Phase::AwaitOutcome {
            if let Some(done) = call.digits_done {
                self.stats
                    .digits_to_outcome
                    .record(now.saturating_duration_since(done));
            }
            call.outcome_ok = true;
        } else if call.failure.is_none() {
            call.failure = Some(match call.phase {
                Phase::AwaitOutcome => "outcome_refused".to_string(),
                _ => "unexpected_bye".to_string(),
            });
        }
        self.end_call(slot);
    }

    fn on_refer(&mut self, slot: usize, now: Instant) {
        let expect = self.settings.expect;
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if call.phase == Phase::Hanging || call.outcome_ok {
            return;
        }
        if expect == Expect::Transferred && call.phase == Phase::AwaitOutcome {
            if let Some(done) = call.digits_done {
                self.stats
                    .digits_to_outcome
                    .record(now.saturating_duration_since(done));
            }
            call.outcome_ok = true;
            call.phase = Phase::Holding;
            call.phase_deadline = Some(now);
        } else {
            if call.failure.is_none() {
                call.failure = Some(match call.phase {
                    Phase::AwaitOutcome => "outcome_transferred".to_string(),
                    _ => "unexpected_refer".to_string(),
                });
            }
            self.send_bye(slot, now);
        }
    }

    fn drain_invite(&mut self, slot: usize, response: Option<&Message>, now: Instant) {
        loop {
            let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let Some(tx) = call.invite.as_mut() else {
                return;
            };
            if let Some(bytes) = tx.poll_transmit() {
                self.out.push_back(Transmit {
                    socket: Socket::Sip,
                    to: self.settings.target,
                    data: bytes,
                });
                continue;
            }
            let Some(event) = tx.poll_event() else {
                if tx.is_terminated() {
                    call.invite = None;
                }
                return;
            };
            match event {
                TransactionEvent::Final(status) if (200..300).contains(&status) => {
                    if let Some(msg) = response {
                        self.on_answer(slot, msg, now);
                    }
                }
                TransactionEvent::AckNeeded(status) => {
                    if let Some(msg) = response {
                        let ack = self.non_2xx_ack(slot, msg);
                        if let Some(tx) = self
                            .calls
                            .get_mut(slot)
                            .and_then(Option::as_mut)
                            .and_then(|c| c.invite.as_mut())
                        {
                            let _ = tx.send_ack(ack, now);
                            while let Some(bytes) = tx.poll_transmit() {
                                self.out.push_back(Transmit {
                                    socket: Socket::Sip,
                                    to: self.settings.target,
                                    data: bytes,
                                });
                            }
                        }
                    }
                    self.fail(slot, format!("invite_{status}"));
                }
                TransactionEvent::Timeout => self.fail(slot, "invite_timeout".into()),
                TransactionEvent::TransportError => self.fail(slot, "transport".into()),
                _ => {}
            }
        }
    }

    /// Records a failure and ends the call at once (nothing to hang up).
    /// A 4xx retransmitted after this finds no call and is counted stray.
    fn fail(&mut self, slot: usize, reason: String) {
        if let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) {
            if call.failure.is_none() {
                call.failure = Some(reason);
            }
            self.end_call(slot);
        }
    }

    fn non_2xx_ack(&self, slot: usize, response: &Message) -> Bytes {
        let Some(call) = self.calls.get(slot).and_then(Option::as_ref) else {
            return Bytes::new();
        };
        let to = response
            .header(HeaderName::To)
            .unwrap_or(&call.invite_head.to);
        let request_uri = format!("sip:{}@{}", self.settings.dialed, self.settings.target);
        RequestBuilder::new(Method::Ack, &request_uri)
            .header("Via", &call.invite_head.via)
            .header("From", &call.invite_head.from)
            .header("To", to)
            .header("Call-ID", &call.call_id)
            .header("CSeq", "1 ACK")
            .build()
    }

    /// The first (or a retransmitted) 2xx: ACK it; on the first, set up
    /// the dialog and the media.
    fn on_answer(&mut self, slot: usize, msg: &Message, now: Instant) {
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if let Some(ack) = &call.ack {
            // A retransmitted 2xx: our ACK was lost (§13.2.2.4).
            self.out.push_back(Transmit {
                socket: Socket::Sip,
                to: self.settings.target,
                data: ack.clone(),
            });
            return;
        }
        self.stats.answered += 1;
        self.stats
            .setup
            .record(now.saturating_duration_since(call.started));
        call.remote_tag = msg.to().ok().and_then(|t| t.tag.map(str::to_string));
        if let Some(uri) = msg
            .contact()
            .ok()
            .flatten()
            .and_then(|c| c.addr().map(|a| a.uri.to_string()))
        {
            call.remote_target = uri;
        }
        let ack = self.in_dialog_request(slot, Method::Ack, None);
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        call.ack = Some(ack.clone());
        self.out.push_back(Transmit {
            socket: Socket::Sip,
            to: self.settings.target,
            data: ack,
        });
        // Media: where the gateway wants our RTP, and its event PT.
        let answer = SessionDescription::parse(msg.body()).ok();
        let offer = SessionDescription::parse(self.offer.as_bytes()).ok();
        let negotiated = match (offer, answer) {
            (Some(o), Some(a)) => sdp::accept_answer(&o, &a).ok(),
            _ => None,
        };
        let Some(neg) = negotiated else {
            call.failure = Some("bad_sdp_answer".into());
            self.send_bye(slot, now);
            return;
        };
        let event_pt = neg
            .telephone_event
            .as_ref()
            .map_or(EVENT_PT, |t| t.payload_type);
        call.rtp_tx = RtpSender::new(neg.payload_type, event_pt).ok();
        let rx_config = ReceiverConfig {
            audio_pt: neg.payload_type,
            event_pt: Some(event_pt),
            media_timeout: Duration::from_secs(3600),
            symmetric: false,
        };
        call.rtp_rx = Some(RtpReceiver::new(rx_config, neg.remote_rtp, now));
        call.remote_rtp = neg.remote_rtp;
        if let Some(remote) = neg.remote_rtp {
            self.rtp_routes.insert(remote, (slot, call.gen));
        }
        call.next_tick = Some(now);
        if self.settings.expect == Expect::Answered {
            call.phase = Phase::Holding;
            call.outcome_ok = true;
            call.phase_deadline = Some(now + self.settings.hold);
        } else {
            call.phase = Phase::AwaitPrompt;
            call.phase_deadline = Some(now + self.settings.prompt_wait);
        }
    }

    /// Builds an in-dialog request (§12.2.1.1). ACK reuses the INVITE's
    /// CSeq number; everything else takes the next one.
    fn in_dialog_request(
        &mut self,
        slot: usize,
        method: Method,
        body: Option<(&str, &[u8])>,
    ) -> Bytes {
        let s = &self.settings;
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return Bytes::new();
        };
        let seq = if method == Method::Ack {
            1
        } else {
            call.cseq += 1;
            call.cseq
        };
        let branch = format!("z9hG4bK{:x}", rand::random::<u64>());
        let sent_by = s.local_sip.to_string();
        let mut to = format!("<sip:{}@{}>", s.dialed, s.target);
        if let Some(tag) = &call.remote_tag {
            let _ = write!(to, ";tag={tag}");
        }
        let mut b = RequestBuilder::new(method.clone(), &call.remote_target)
            .via("UDP", &sent_by, &branch)
            .header("From", &call.invite_head.from)
            .header("To", to)
            .header("Call-ID", &call.call_id)
            .header("CSeq", format_args!("{seq} {method}"));
        if let Some((ct, bytes)) = body {
            b = b.body(ct, bytes);
        }
        b.build()
    }

    fn send_nict(
        &mut self,
        slot: usize,
        method: Method,
        body: Option<(&str, &[u8])>,
        now: Instant,
    ) {
        let bytes = self.in_dialog_request(slot, method.clone(), body);
        let timers = self.settings.timers;
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let tx = NonInviteClientTransaction::new(bytes, now, timers, Reliability::Unreliable);
        call.nicts.push(Nict {
            seq: call.cseq,
            method,
            tx,
        });
        self.drain_nicts(slot, now);
    }

    fn send_bye(&mut self, slot: usize, now: Instant) {
        if let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) {
            if call.phase == Phase::Hanging {
                return;
            }
            call.phase = Phase::Hanging;
            call.next_tick = None;
            call.phase_deadline = None;
        }
        self.send_nict(slot, Method::Bye, None, now);
    }

    fn drain_nicts(&mut self, slot: usize, _now: Instant) {
        let target = self.settings.target;
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut bye_result: Option<Result<(), String>> = None;
        let mut info_failed: Option<String> = None;
        for n in &mut call.nicts {
            while let Some(bytes) = n.tx.poll_transmit() {
                self.out.push_back(Transmit {
                    socket: Socket::Sip,
                    to: target,
                    data: bytes,
                });
            }
            while let Some(event) = n.tx.poll_event() {
                let result = match event {
                    TransactionEvent::Final(s) if (200..300).contains(&s) => Ok(()),
                    TransactionEvent::Final(s) => Err(format!("{}_{s}", n.method)),
                    TransactionEvent::Timeout => Err(format!("{}_timeout", n.method)),
                    TransactionEvent::TransportError => Err("transport".to_string()),
                    _ => continue,
                };
                if n.method == Method::Bye {
                    bye_result = Some(result);
                } else if let Err(e) = result {
                    info_failed = Some(e);
                }
            }
        }
        call.nicts.retain(|n| !n.tx.is_terminated());
        if let Some(e) = info_failed {
            if call.failure.is_none() {
                call.failure = Some(e.to_lowercase());
            }
        }
        match bye_result {
            Some(Ok(())) => self.end_call(slot),
            Some(Err(e)) => {
                if call.failure.is_none() {
                    call.failure = Some(e.to_lowercase());
                }
                self.end_call(slot);
            }
            None => {}
        }
    }

    fn on_timeout(&mut self, slot: usize, now: Instant) {
        // Transactions first.
        if let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) {
            if let Some(tx) = call.invite.as_mut() {
                if tx.poll_timeout().is_some_and(|t| t <= now) {
                    tx.handle_timeout(now);
                }
            }
            for n in &mut call.nicts {
                if n.tx.poll_timeout().is_some_and(|t| t <= now) {
                    n.tx.handle_timeout(now);
                }
            }
        }
        self.drain_invite(slot, None, now);
        self.drain_nicts(slot, now);
        // RTP ticks.
        while let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) {
            match call.next_tick {
                Some(t) if t <= now => {
                    if now.saturating_duration_since(t) > MAX_TICK_LAG {
                        // Far behind (an overloaded generator): skip, do not burst.
                        let missed = (now.saturating_duration_since(t).as_millis() / 20) as u32;
                        if let Some(tx) = call.rtp_tx.as_mut() {
                            tx.skip_samples(missed * SAMPLES_PER_FRAME);
                        }
                        call.next_tick = Some(t + PTIME * missed);
                        self.stats.rtp_ticks_skipped += u64::from(missed);
                        continue;
                    }
                    call.next_tick = Some(t + PTIME);
                    self.rtp_tick(slot, now);
                }
                _ => break,
            }
        }
        // Phase deadline.
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if call.phase_deadline.is_none_or(|t| t > now) {
            return;
        }
        call.phase_deadline = None;
        match call.phase {
            Phase::AwaitPrompt => {
                if call.media_seen {
                    call.phase = Phase::Digits;
                    call.digit_index = 0;
                    call.digit_tick = 0;
                } else {
                    call.failure = Some("no_prompt_rtp".into());
                    self.send_bye(slot, now);
                }
            }
            Phase::AwaitOutcome => {
                if self.settings.expect == Expect::Joined {
                    call.outcome_ok = true;
                    call.phase = Phase::Holding;
                    call.phase_deadline = Some(now + self.settings.hold);
                } else {
                    call.failure = Some(if call.media_seen {
                        "no_outcome".into()
                    } else {
                        "no_outcome_no_rtp".into()
                    });
                    self.send_bye(slot, now);
                }
            }
            Phase::Holding => self.send_bye(slot, now),
            Phase::Inviting | Phase::Digits | Phase::Hanging => {}
        }
    }

    /// One 20 ms media tick: an audio frame, a tone frame, event packets,
    /// or an INFO, depending on the phase and the DTMF mode.
    fn rtp_tick(&mut self, slot: usize, now: Instant) {
        let mode = self.settings.dtmf;
        let n_digits = self.settings.digits.len();
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (Some(tx), Some(to)) = (call.rtp_tx.as_mut(), call.remote_rtp) else {
            return;
        };
        // Each key takes 8 ticks: 4 on (80 ms), 4 off.
        let mut info_digit = None;
        let mut packets: [Option<Payload>; 3] = [None, None, None];
        if call.phase == Phase::Digits && call.digit_index < n_digits {
            let digit = self
                .settings
                .digits
                .get(call.digit_index)
                .copied()
                .unwrap_or(Digit::Pound);
            let tick = call.digit_tick;
            match mode {
                DtmfMode::Rfc4733 => {
                    if tick < TONE_FRAMES {
                        let duration = (SAMPLES_PER_FRAME as usize * (tick + 1)) as u16;
                        packets[0] = Some(Payload::Event(TelephoneEvent::dtmf(
                            digit, false, 10, duration,
                        )));
                    } else if tick == TONE_FRAMES {
                        let duration = (SAMPLES_PER_FRAME as usize * TONE_FRAMES) as u16;
                        let end = TelephoneEvent::dtmf(digit, true, 10, duration);
                        packets = [
                            Some(Payload::Event(end)),
                            Some(Payload::Event(end)),
                            Some(Payload::Event(end)),
                        ];
                    } else {
                        packets[0] = Some(Payload::Silence);
                    }
                }
                DtmfMode::Inband => {
                    packets[0] = Some(if tick < TONE_FRAMES {
                        Payload::Tone(digit, tick)
                    } else {
                        Payload::Silence
                    });
                }
                DtmfMode::Info => {
                    if tick == 0 {
                        info_digit = Some(digit);
                    }
                    packets[0] = Some(Payload::Silence);
                }
            }
            // The tick on which the key is complete at the far end: the
            // INFO, the last tone frame, or the end packets.
            let complete_tick = match mode {
                DtmfMode::Info => 0,
                DtmfMode::Inband => TONE_FRAMES - 1,
                DtmfMode::Rfc4733 => TONE_FRAMES,
            };
            if tick == complete_tick && call.digit_index + 1 == n_digits {
                // The last key: from here on the outcome may come; the
                // remaining off-time is sent as plain silence.
                call.digits_done = Some(now);
                call.phase = Phase::AwaitOutcome;
                call.phase_deadline = Some(now + self.settings.outcome_wait);
            }
            call.digit_tick += 1;
            if call.digit_tick >= 2 * TONE_FRAMES {
                call.digit_tick = 0;
                call.digit_index += 1;
            }
        } else {
            packets[0] = Some(Payload::Silence);
        }
        let mut frame = [0u8; MAX_PACKET_LEN];
        let mut sent_event = false;
        for p in packets.iter().flatten() {
            let len = match p {
                Payload::Silence => tx.build_audio(&[ULAW_SILENCE; FRAME_BYTES], &mut frame),
                Payload::Tone(d, i) => tx.build_audio(self.tones.frame(*d, *i), &mut frame),
                Payload::Event(ev) => {
                    sent_event = true;
                    let mut four = [0u8; 4];
                    let _ = ev.write(&mut four);
                    tx.build_event(four, &mut frame)
                }
            };
            if let Ok(len) = len {
                self.rtp_buf.reserve(len);
                self.rtp_buf
                    .extend_from_slice(frame.get(..len).unwrap_or_default());
                let data = self.rtp_buf.split_to(len).freeze();
                self.out.push_back(Transmit {
                    socket: Socket::Rtp,
                    to,
                    data,
                });
                self.stats.rtp_sent += 1;
            }
        }
        if sent_event {
            if let Some(Payload::Event(ev)) = packets[0] {
                if ev.end {
                    // The event occupied 80 ms of media time (RFC 4733 §2.5.1.3).
                    tx.end_event();
                    tx.advance_clock(u32::from(ev.duration));
                }
            }
        }
        if let Some(digit) = info_digit {
            let body = format!("Signal={}\r\nDuration=80\r\n", digit.as_char());
            self.send_nict(
                slot,
                Method::Info,
                Some(("application/dtmf-relay", body.as_bytes())),
                now,
            );
        }
    }

    /// Ends a call: counts it, frees its slot and its RTP route.
    fn end_call(&mut self, slot: usize) {
        let Some(call) = self.calls.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.active = self.active.saturating_sub(1);
        if let Some(remote) = call.remote_rtp {
            if self
                .rtp_routes
                .get(&remote)
                .is_some_and(|(s, g)| *s == slot && *g == call.gen)
            {
                self.rtp_routes.remove(&remote);
            }
        }
        if let Some(rx) = &call.rtp_rx {
            let st = rx.stats();
            self.stats.rtp_received += st.received;
            self.stats.rtp_lost += st.lost;
        }
        if call.media_seen {
            self.stats.calls_with_media += 1;
        }
        match call.failure {
            Some(reason) => *self.stats.failed.entry(reason).or_default() += 1,
            None if call.outcome_ok => self.stats.succeeded += 1,
            None => *self.stats.failed.entry("ended_early".into()).or_default() += 1,
        }
    }

    /// Re-arms the call's single heap entry at its earliest deadline.
    fn after_input(&mut self, slot: usize, _now: Instant) {
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut next = call.phase_deadline;
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        take(call.next_tick);
        take(call.invite.as_ref().and_then(|t| t.poll_timeout()));
        for n in &call.nicts {
            take(n.tx.poll_timeout());
        }
        if let Some(t) = next {
            if call.scheduled != Some(t) {
                call.scheduled = Some(t);
                self.timers.push(Reverse((t, slot, call.gen)));
            }
        } else {
            call.scheduled = None;
        }
    }
}

#[derive(Clone, Copy)]
enum Payload {
    Silence,
    Tone(Digit, usize),
    Event(TelephoneEvent),
}

/// Parses a keypad string (`0-9 * # A-D`).
pub fn parse_digits(s: &str) -> Option<Vec<Digit>> {
    s.chars().map(Digit::from_char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::inband::{InBandDetector, InBandSettings};
    use crate::dtmf::info::parse_info_body;
    use crate::dtmf::rfc4733::parse_event;
    use crate::media::g711::Law;
    use rtp_rs::RtpReader;

    const GW_RTP: &str = "127.0.0.1:30000";

    fn settings(expect: Expect, dtmf: DtmfMode) -> CallSettings {
        CallSettings {
            target: "127.0.0.1:5060".parse().unwrap(),
            local_sip: "127.0.0.1:40000".parse().unwrap(),
            local_rtp: "127.0.0.1:40002".parse().unwrap(),
            dialed: "15550100".into(),
            caller: "15557000".into(),
            expect,
            dtmf,
            digits: parse_digits("1234567#").unwrap(),
            hold: Duration::from_secs(1),
            prompt_wait: Duration::from_secs(2),
            digit_delay: Duration::from_millis(300),
            outcome_wait: Duration::from_secs(2),
            timers: TimerSettings::default(),
            run_id: 0xabc,
        }
    }

    /// What the simulated gateway does once it has all the digits.
    #[derive(Clone, Copy, PartialEq)]
    enum Answer {
        Stay,
        Bye,
        Refer,
    }

    /// A gateway that answers, plays a prompt, collects digits the way
    /// dialgate's detectors do, and then reaches `answer`.
    struct FakeGateway {
        answer: Answer,
        invite: Option<Message>,
        prompt: RtpSender,
        next_prompt: Option<Instant>,
        digits: String,
        inband: InBandDetector,
        last_event_ts: Option<u32>,
        acked: bool,
        outcome_sent: bool,
        bye_received: bool,
    }

    impl FakeGateway {
        fn new(answer: Answer) -> Self {
            FakeGateway {
                answer,
                invite: None,
                prompt: RtpSender::new(0, 101).unwrap(),
                next_prompt: None,
                digits: String::new(),
                inband: InBandDetector::new(&InBandSettings::default()),
                last_event_ts: None,
                acked: false,
                outcome_sent: false,
                bye_received: false,
            }
        }

        fn reply(&self, req: &Message, status: u16) -> Bytes {
            ResponseBuilder::for_request(req, status, "OK")
                .to_tag("gw")
                .build()
        }

        fn on_sip(&mut self, data: Bytes, engine: &mut CallEngine, now: Instant) {
            let msg = Message::parse(data).unwrap();
            if msg.is_response() {
                return;
            }
            match msg.method().unwrap() {
                Method::Invite => {
                    let sdp = String::from(
                        "v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                         m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
                    );
                    engine.handle_sip(&self.reply(&msg, 100), now);
                    let ok = ResponseBuilder::for_request(&msg, 200, "OK")
                        .to_tag("gw")
                        .header("Contact", "<sip:15550100@127.0.0.1:5060>")
                        .body("application/sdp", sdp.as_bytes())
                        .build();
                    engine.handle_sip(&ok, now);
                    self.invite = Some(msg);
                }
                Method::Ack => {
                    self.acked = true;
                    self.next_prompt = Some(now);
                }
                Method::Info => {
                    let body = parse_info_body(msg.content_type().unwrap(), msg.body()).unwrap();
                    self.digits.push(body.digit.as_char());
                    engine.handle_sip(&self.reply(&msg, 200), now);
                }
                Method::Bye => {
                    self.bye_received = true;
                    self.next_prompt = None;
                    engine.handle_sip(&self.reply(&msg, 200), now);
                }
                other => panic!("unexpected {other}"),
            }
        }

        fn on_rtp(&mut self, data: &[u8], now: Instant) {
            let pkt = RtpReader::new(data).unwrap();
            match pkt.payload_type() {
                0 => self.inband.handle_g711(Law::Mu, pkt.payload(), now),
                101 => {
                    let ev = parse_event(pkt.payload()).unwrap();
                    if ev.end && self.last_event_ts != Some(pkt.timestamp()) {
                        self.last_event_ts = Some(pkt.timestamp());
                        self.digits.push(ev.digit().unwrap().as_char());
                    }
                }
                pt => panic!("unexpected PT {pt}"),
            }
            while let Some(d) = self.inband.poll_digit() {
                self.digits.push(d.digit.as_char());
            }
        }

        /// In-dialog request from the gateway (BYE or REFER).
        fn request(&self, method: Method) -> Bytes {
            let inv = self.invite.as_ref().unwrap();
            let mut b = RequestBuilder::new(method.clone(), "sip:load@127.0.0.1:40000")
                .via("UDP", "127.0.0.1:5060", "z9hG4bKgw1")
                .header(
                    "From",
                    format_args!("{};tag=gw", inv.header(HeaderName::To).unwrap()),
                )
                .header("To", inv.header(HeaderName::From).unwrap())
                .header("Call-ID", inv.call_id().unwrap())
                .header("CSeq", format_args!("1 {method}"));
            if method == Method::Refer {
                b = b.header("Refer-To", "<sip:bridge@127.0.0.1>");
            }
            b.build()
        }

        fn tick(&mut self, engine: &mut CallEngine, now: Instant) {
            if let Some(t) = self.next_prompt {
                if t <= now {
                    let mut buf = [0u8; MAX_PACKET_LEN];
                    let len = self.prompt.build_audio(&[0x7f; 160], &mut buf).unwrap();
                    engine.handle_rtp(&buf[..len], GW_RTP.parse().unwrap(), now);
                    self.next_prompt = Some(t + PTIME);
                }
            }
            if self.digits.len() == 8 && !self.outcome_sent {
                self.outcome_sent = true;
                match self.answer {
                    Answer::Stay => {}
                    Answer::Bye => {
                        self.next_prompt = None;
                        engine.handle_sip(&self.request(Method::Bye), now);
                    }
                    Answer::Refer => engine.handle_sip(&self.request(Method::Refer), now),
                }
            }
        }
    }

    /// Runs one call against the fake gateway on a fake clock.
    fn run(expect: Expect, dtmf: DtmfMode, answer: Answer) -> (CallStats, FakeGateway) {
        let t0 = Instant::now();
        let mut engine = CallEngine::new(settings(expect, dtmf), Arc::new(ToneTable::new()));
        let mut gw = FakeGateway::new(answer);
        let mut now = t0;
        engine.start_call(now);
        for _ in 0..100_000 {
            while let Some(t) = engine.poll_transmit() {
                match t.socket {
                    Socket::Sip => gw.on_sip(t.data, &mut engine, now),
                    Socket::Rtp => gw.on_rtp(&t.data, now),
                }
            }
            gw.tick(&mut engine, now);
            if engine.active() == 0 && engine.poll_transmit().is_none() {
                break;
            }
            let mut next = engine.poll_timeout().unwrap_or(now + PTIME);
            if let Some(p) = gw.next_prompt {
                next = next.min(p);
            }
            now = next.max(now);
            engine.handle_timeout(now);
        }
        assert_eq!(engine.active(), 0, "call still running");
        (engine.finish("unfinished"), gw)
    }

    #[test]
    fn answered_call_holds_and_hangs_up() {
        let (s, gw) = run(Expect::Answered, DtmfMode::Rfc4733, Answer::Stay);
        assert_eq!((s.attempted, s.succeeded), (1, 1), "{:?}", s.failed);
        assert!(gw.acked && gw.bye_received);
        assert_eq!(gw.digits, "", "no digits when only answering");
        // One second of hold at 20 ms, give or take the first tick.
        assert!((49..=52).contains(&s.rtp_sent), "{}", s.rtp_sent);
        assert!(s.rtp_received >= 49);
        assert_eq!(s.rtp_lost, 0);
        assert_eq!(s.setup.count(), 1);
    }

    #[test]
    fn rfc4733_digits_then_refused() {
        let (s, gw) = run(Expect::Refused, DtmfMode::Rfc4733, Answer::Bye);
        assert_eq!(gw.digits, "1234567#");
        assert_eq!(s.succeeded, 1, "{:?}", s.failed);
        assert_eq!(s.digits_to_outcome.count(), 1);
        assert!(!gw.bye_received, "the gateway hung up, we must not");
    }

    #[test]
    fn inband_digits_then_joined() {
        let (s, gw) = run(Expect::Joined, DtmfMode::Inband, Answer::Stay);
        assert_eq!(gw.digits, "1234567#");
        assert_eq!(s.succeeded, 1, "{:?}", s.failed);
        assert!(gw.bye_received);
        assert_eq!(s.calls_with_media, 1);
    }

    #[test]
    fn info_digits_then_transferred() {
        let (s, gw) = run(Expect::Transferred, DtmfMode::Info, Answer::Refer);
        assert_eq!(gw.digits, "1234567#");
        assert_eq!(s.succeeded, 1, "{:?}", s.failed);
        assert!(gw.bye_received, "after REFER the caller hangs up");
    }

    #[test]
    fn wrong_outcome_is_a_failure() {
        let (s, _) = run(Expect::Joined, DtmfMode::Rfc4733, Answer::Bye);
        assert_eq!(s.failed.get("outcome_refused"), Some(&1));
        let (s, _) = run(Expect::Refused, DtmfMode::Rfc4733, Answer::Stay);
        assert_eq!(s.failed.get("no_outcome"), Some(&1));
    }

    #[test]
    fn rejected_invite_is_acked_and_counted() {
        let t0 = Instant::now();
        let mut engine = CallEngine::new(
            settings(Expect::Answered, DtmfMode::Rfc4733),
            Arc::new(ToneTable::new()),
        );
        engine.start_call(t0);
        let invite = engine.poll_transmit().unwrap();
        let msg = Message::parse(invite.data).unwrap();
        let resp = ResponseBuilder::for_request(&msg, 404, "Not Found")
            .to_tag("x")
            .build();
        engine.handle_sip(&resp, t0);
        let ack = Message::parse(engine.poll_transmit().unwrap().data).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.to().unwrap().tag, Some("x"));
        assert_eq!(engine.active(), 0);
        assert_eq!(engine.stats().failed.get("invite_404"), Some(&1));
    }

    #[test]
    fn unanswered_invite_times_out_after_64_t1() {
        let t0 = Instant::now();
        let mut engine = CallEngine::new(
            settings(Expect::Answered, DtmfMode::Rfc4733),
            Arc::new(ToneTable::new()),
        );
        engine.start_call(t0);
        let mut sent = 0;
        while engine.active() > 0 {
            while engine.poll_transmit().is_some() {
                sent += 1;
            }
            let next = engine.poll_timeout().unwrap();
            engine.handle_timeout(next);
        }
        assert_eq!(engine.stats().failed.get("invite_timeout"), Some(&1));
        assert_eq!(sent, 7, "INVITE plus six Timer A retransmissions");
    }

    #[test]
    fn garbage_and_foreign_messages_are_stray() {
        let mut engine = CallEngine::new(
            settings(Expect::Answered, DtmfMode::Rfc4733),
            Arc::new(ToneTable::new()),
        );
        let now = Instant::now();
        engine.handle_sip(b"\xff\xfe", now);
        engine.handle_sip(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nCall-ID: 1-2-3@dialgate-load\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nContent-Length: 0\r\n\r\n",
            now,
        );
        engine.handle_rtp(b"\x80", "127.0.0.1:1".parse().unwrap(), now);
        assert_eq!(engine.stats().stray, 2);
    }
}

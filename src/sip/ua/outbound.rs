//! Calls the gateway places to an external meeting bridge (RFC 3261 §13.2,
//! UAC side): the INVITE with our SDP offer, its client transaction, the
//! ACK of a 2xx built here (§13.2.2.4), the ACK of a non-2xx built from
//! the response (§17.1.1.3), CANCEL (§9.1) on an answer timeout or when
//! the caller hangs up first.
//!
//! Targets are sent to directly: the URI's host must be an IP literal or
//! `localhost` (no DNS in the core), over UDP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::call::{Call, CallState};
use super::respond::{self, contact_ip, format_host_port};
use super::{
    CallKey, CallerInfo, EndReason, Flow, InviteClientTx, Purpose, TxId, UaEvent, UserAgent, Wake,
    ALLOW,
};
use crate::media::ports::RtpPort;
use crate::sip::dialog::{Dialog, DialogId};
use crate::sip::message::{HeaderName, Message, Method, RequestBuilder};
use crate::sip::sdp::{self, Codec, LocalMedia, SessionDescription};
use crate::sip::transaction::{ClientTransactionKey, InviteClientTransaction, TransactionEvent};
use crate::sip::transport::Transport;
use crate::sip::uri::{Host, Scheme, Uri};

/// What [`UserAgent::place_call`] needs to call a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundCall {
    /// Request-URI and To of the INVITE, e.g. `sip:123456@192.0.2.50:5060`
    /// (already rendered from the profile's template).
    pub target: String,
    /// Extra headers (name, value), e.g. `X-Conference-ID`. Names and values
    /// must be free of CR/LF (profiles validate and render them so).
    pub headers: Vec<(String, String)>,
    /// User part of our From URI (e.g. the dialed number).
    pub from_user: String,
    /// Codecs to offer: the caller's negotiated one only, so that the relay
    /// never transcodes.
    pub codecs: Vec<Codec>,
    /// telephone-event payload type to offer; `None`: don't.
    pub telephone_event_pt: Option<u8>,
    /// How long the bridge may take to answer; then CANCEL.
    pub answer_timeout: Duration,
    /// Local SIP address to send from; `None`: the UDP address requests
    /// last arrived on.
    pub local: Option<SocketAddr>,
}

/// A call placed: its key and the RTP port our offer names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedCall {
    /// The call.
    pub call: CallKey,
    /// Our RTP port pair for this leg.
    pub rtp: RtpPort,
}

/// Why a call could not be placed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PlaceCallError {
    /// The target is not a SIP URI.
    #[error("target {0:?} is not a SIP URI")]
    BadUri(String),
    /// The target's host needs DNS, which the core does not do.
    #[error("target host {0:?} is neither an IP address nor localhost")]
    NeedsDns(String),
    /// Only UDP is supported for calls we place.
    #[error("only UDP targets are supported")]
    UnsupportedTransport,
    /// No local UDP address is known yet to send from.
    #[error("no local SIP address to send from")]
    NoLocalAddress,
    /// No RTP port pair is free.
    #[error("no RTP port free")]
    NoRtpPort,
    /// The call limit is reached.
    #[error("call limit reached")]
    TooManyCalls,
    /// Shutdown has begun.
    #[error("shutting down")]
    ShuttingDown,
    /// A header name or value is unusable.
    #[error("header {0:?} is not usable")]
    BadHeader(String),
}

/// Why a call we placed did not get answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundFailure {
    /// The bridge answered with this final status (≥300).
    Status(u16),
    /// No answer within the answer timeout (CANCEL sent).
    NoAnswer,
    /// No response at all (Timer B, §17.1.1.2).
    Timeout,
    /// The transport failed.
    TransportError,
    /// We cancelled ([`UserAgent::cancel_call`], hang-up or shutdown).
    Cancelled,
    /// A 2xx whose SDP answer is unusable (ACK and BYE sent).
    BadAnswer,
}

/// UAC state of a call we placed.
pub(super) struct Outbound {
    pub(super) branch: String,
    pub(super) cseq: u32,
    pub(super) offer: SessionDescription,
    /// Request-URI of the INVITE (CANCEL and non-2xx ACK reuse it).
    pub(super) target: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) answer_deadline: Option<Instant>,
    /// After CANCEL: give up on the INVITE if no final response by then.
    pub(super) give_up_at: Option<Instant>,
    pub(super) provisional_seen: bool,
    /// CANCEL wanted but no provisional response yet (§9.1).
    pub(super) cancel_pending: bool,
    pub(super) cancel_sent: bool,
    /// A failure already reported with `OutboundFailed`.
    pub(super) failed: bool,
    /// Our ACK of the 2xx, re-sent for each 2xx retransmission.
    pub(super) ack: Option<Bytes>,
}

impl UserAgent {
    /// Places a call to a meeting bridge (RFC 3261 §13.2.1): allocates an
    /// RTP port, sends the INVITE with our offer. Then expect
    /// [`UaEvent::OutboundAnswered`] or [`UaEvent::OutboundFailed`]; once
    /// answered, the call ends like any other (BYE either way,
    /// [`UaEvent::CallEnded`]).
    pub fn place_call(
        &mut self,
        request: &OutboundCall,
        now: Instant,
    ) -> Result<PlacedCall, PlaceCallError> {
        if self.shutdown.is_some() {
            return Err(PlaceCallError::ShuttingDown);
        }
        if self.calls.len() >= self.settings.max_calls {
            return Err(PlaceCallError::TooManyCalls);
        }
        let remote = target_address(&request.target)?;
        let local = request
            .local
            .or(self.udp_local)
            .ok_or(PlaceCallError::NoLocalAddress)?;
        for (name, value) in &request.headers {
            let bad = |s: &str| s.chars().any(char::is_control);
            if name.is_empty() || bad(name) || bad(value) || name.contains(':') {
                return Err(PlaceCallError::BadHeader(name.clone()));
            }
        }
        let rtp = self.ports.allocate().ok_or(PlaceCallError::NoRtpPort)?;
        let flow = Flow {
            transport: Transport::Udp,
            local,
            remote,
            conn: None,
        };
        let media_ip = self.media_address(local, None);
        let mut local_media = LocalMedia::new(media_ip, rtp.rtp(), rand::random::<u32>().into());
        if !request.codecs.is_empty() {
            local_media.codecs = request.codecs.clone();
        }
        local_media.telephone_event_pt = request.telephone_event_pt;
        let offer = sdp::build_offer(&local_media);
        let offer_text = offer.to_string();

        let key = CallKey(self.next_id());
        let tx_id = self.next_id();
        let contact_host = format_host_port(contact_ip(&self.settings, local, None), local.port());
        let user = if request.from_user.is_empty() {
            "dialgate"
        } else {
            request.from_user.as_str()
        };
        let local_uri = format!("sip:{user}@{contact_host}");
        let contact = format!("<{local_uri}>");
        let tag = format!("{:016x}", rand::random::<u64>());
        let call_id = format!("{:016x}{:08x}@dialgate", rand::random::<u64>(), key.0);
        let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
        let cseq = 1;
        let from = format!("<{local_uri}>;tag={tag}");
        let to = format!("<{}>", request.target);
        let sent_by = respond::sent_by(&self.settings, flow);
        let mut b = RequestBuilder::new(Method::Invite, &request.target)
            .via("UDP", &sent_by, &branch)
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &call_id)
            .header("CSeq", format_args!("{cseq} INVITE"))
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .header("Supported", "")
            .header("User-Agent", &self.settings.user_agent);
        for (name, value) in &request.headers {
            b = b.header(name, value);
        }
        let bytes = b.body("application/sdp", offer_text.as_bytes()).build();
        let invite = match Message::parse(bytes.clone()) {
            Ok(m) => m,
            Err(_) => {
                self.ports.release(rtp);
                return Err(PlaceCallError::BadUri(request.target.clone()));
            }
        };
        let Ok(tx_key) = ClientTransactionKey::new(&branch, "INVITE") else {
            self.ports.release(rtp);
            return Err(PlaceCallError::BadUri(request.target.clone()));
        };
        let span = tracing::info_span!("call", call_id = %call_id, outbound = true);
        tracing::info!(parent: &span, rtp_port = rtp.rtp(), %remote, "calling the meeting bridge");
        let answer_deadline = now + request.answer_timeout;
        let dialog = Dialog {
            id: DialogId {
                call_id,
                local_tag: tag,
                remote_tag: String::new(),
            },
            local_uri,
            remote_uri: request.target.clone(),
            remote_target: request.target.clone(),
            route_set: Vec::new(),
            local_cseq: cseq,
            remote_cseq: 0,
        };
        self.calls.insert(
            key,
            Call {
                state: CallState::Calling,
                dialog,
                invite,
                invite_tx: tx_id,
                invite_id: (String::new(), String::new(), 0),
                awaiting_ack: None,
                rtp,
                local_media,
                pending_offer: None,
                local_sdp: offer_text,
                media: None,
                dialed: request.from_user.clone(),
                language: String::new(),
                flow,
                contact,
                answer_at: None,
                hang_up_at: None,
                started: false,
                end_reason: None,
                span,
                caller: CallerInfo {
                    asserted_user: None,
                    from_user: None,
                    source: remote.ip(),
                    is_trunk: false,
                },
                outbound: Some(Box::new(Outbound {
                    branch,
                    cseq,
                    offer,
                    target: request.target.clone(),
                    from,
                    to,
                    answer_deadline: Some(answer_deadline),
                    give_up_at: None,
                    provisional_seen: false,
                    cancel_pending: false,
                    cancel_sent: false,
                    failed: false,
                    ack: None,
                })),
                transfer: None,
            },
        );
        self.schedule_call(key, answer_deadline);
        let tx = InviteClientTransaction::new(bytes, now, self.settings.timers, flow.reliability());
        self.client_keys.insert(tx_key.clone(), tx_id);
        self.invite_client_txs.insert(
            tx_id,
            InviteClientTx {
                tx,
                key: tx_key,
                flow,
                call: key,
                scheduled: None,
            },
        );
        self.drive_invite_client_tx(tx_id, None, now);
        Ok(PlacedCall { call: key, rtp })
    }

    /// Abandons a call we placed that is not answered yet (the caller hung
    /// up first): CANCEL (§9.1), then [`UaEvent::OutboundFailed`] with
    /// [`OutboundFailure::Cancelled`]. An answered call gets BYE, like
    /// [`UserAgent::hang_up`].
    pub fn cancel_call(&mut self, call: CallKey, now: Instant) {
        self.hang_up(call, now);
    }

    /// Sends CANCEL for a call still in Calling (once a provisional
    /// response arrived, §9.1) and reports the failure once.
    pub(super) fn cancel_outbound(&mut self, call: CallKey, why: OutboundFailure, now: Instant) {
        let Some(o) = self.calls.get_mut(&call).and_then(|c| c.outbound.as_mut()) else {
            return;
        };
        o.answer_deadline = None;
        if !o.cancel_sent {
            if o.provisional_seen {
                self.send_cancel(call, now);
            } else {
                o.cancel_pending = true;
            }
        }
        self.report_failure(call, why);
    }

    /// The answer timeout fired.
    pub(super) fn answer_timeout(&mut self, call: CallKey, now: Instant) {
        if let Some(c) = self.calls.get(&call) {
            if c.state == CallState::Calling {
                tracing::info!(parent: &c.span, "the bridge did not answer in time");
                self.cancel_outbound(call, OutboundFailure::NoAnswer, now);
            }
        }
    }

    /// No final response 64·T1 after our CANCEL: consider the INVITE
    /// cancelled and drop it (§9.1).
    pub(super) fn give_up_invite(&mut self, call: CallKey) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Calling {
            return;
        }
        let tx = c.invite_tx;
        if let Some(ctx) = self.invite_client_txs.remove(&tx) {
            self.client_keys.remove(&ctx.key);
        }
        self.finish_call(call, EndReason::Cancelled);
    }

    fn report_failure(&mut self, call: CallKey, failure: OutboundFailure) {
        let Some(o) = self.calls.get_mut(&call).and_then(|c| c.outbound.as_mut()) else {
            return;
        };
        if !o.failed {
            o.failed = true;
            self.events
                .push_back(UaEvent::OutboundFailed { call, failure });
        }
    }

    /// CANCEL (§9.1): same Request-URI, Call-ID, From, To, CSeq number and
    /// Via branch as the INVITE.
    fn send_cancel(&mut self, call: CallKey, now: Instant) {
        let t1 = self.settings.timers.t1;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let flow = c.flow;
        let span = c.span.clone();
        let call_id = c.dialog.id.call_id.clone();
        let Some(o) = c.outbound.as_mut() else {
            return;
        };
        o.cancel_sent = true;
        o.cancel_pending = false;
        let give_up = now + t1.saturating_mul(64);
        o.give_up_at = Some(give_up);
        let sent_by = respond::sent_by(&self.settings, flow);
        let bytes = RequestBuilder::new(Method::Cancel, &o.target)
            .via("UDP", &sent_by, &o.branch)
            .header("From", &o.from)
            .header("To", &o.to)
            .header("Call-ID", &call_id)
            .header("CSeq", format_args!("{} CANCEL", o.cseq))
            .header("User-Agent", &self.settings.user_agent)
            .build();
        tracing::info!(parent: &span, "sending CANCEL");
        let Ok(key) = ClientTransactionKey::new(&o.branch, "CANCEL") else {
            return;
        };
        self.schedule_call(call, give_up);
        self.start_client_tx(bytes, key, flow, call, Purpose::Cancel, now);
    }

    /// Drains an INVITE client transaction and handles its events; `msg`
    /// is the response that caused them, if any.
    pub(super) fn drive_invite_client_tx(&mut self, id: TxId, msg: Option<&Message>, now: Instant) {
        let mut events = Vec::new();
        let Some(ctx) = self.invite_client_txs.get_mut(&id) else {
            return;
        };
        while let Some(bytes) = ctx.tx.poll_transmit() {
            self.transmits.push_back(ctx.flow.transmit(bytes));
        }
        while let Some(ev) = ctx.tx.poll_event() {
            events.push(ev);
        }
        let call = ctx.call;
        let deadline = ctx.tx.poll_timeout();
        if ctx.tx.is_terminated() {
            // An ACK may still be wanted (Timer D zero on reliable
            // transports): it is sent by `non_2xx` below directly.
            self.client_keys.remove(&ctx.key);
            self.invite_client_txs.remove(&id);
        } else if deadline.is_some() && deadline != ctx.scheduled {
            ctx.scheduled = deadline;
            if let Some(d) = deadline {
                self.timers
                    .push(std::cmp::Reverse((d, Wake::InviteClient(id))));
            }
        }
        for ev in events {
            match ev {
                TransactionEvent::Provisional(_) => self.provisional(call, now),
                TransactionEvent::Final(status) if (200..300).contains(&status) => {
                    if let Some(m) = msg {
                        self.answered(call, m, now);
                    }
                }
                TransactionEvent::Final(_) => {}
                TransactionEvent::AckNeeded(status) => {
                    if let Some(m) = msg {
                        self.ack_non_2xx(id, call, m, now);
                    }
                    if let Some(c) = self.calls.get(&call) {
                        tracing::info!(parent: &c.span, status, "the bridge refused the call");
                    }
                    self.report_failure(call, OutboundFailure::Status(status));
                    self.finish_call(call, EndReason::Cancelled);
                }
                TransactionEvent::Timeout => {
                    self.report_failure(call, OutboundFailure::Timeout);
                    self.finish_call(call, EndReason::Cancelled);
                }
                TransactionEvent::TransportError => {
                    self.report_failure(call, OutboundFailure::TransportError);
                    self.finish_call(call, EndReason::TransportError);
                }
                _ => {}
            }
        }
    }

    fn provisional(&mut self, call: CallKey, now: Instant) {
        let Some(o) = self.calls.get_mut(&call).and_then(|c| c.outbound.as_mut()) else {
            return;
        };
        o.provisional_seen = true;
        if o.cancel_pending {
            self.send_cancel(call, now);
        }
    }

    /// The ACK of a non-2xx (§17.1.1.3): the INVITE's Request-URI, Call-ID,
    /// From, CSeq number and Via; the response's To (with its tag).
    fn ack_non_2xx(&mut self, id: TxId, call: CallKey, response: &Message, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(o) = c.outbound.as_ref() else {
            return;
        };
        let to = response.header(HeaderName::To).unwrap_or(&o.to);
        let sent_by = respond::sent_by(&self.settings, c.flow);
        let bytes = RequestBuilder::new(Method::Ack, &o.target)
            .via("UDP", &sent_by, &o.branch)
            .header("From", &o.from)
            .header("To", to)
            .header("Call-ID", &c.dialog.id.call_id)
            .header("CSeq", format_args!("{} ACK", o.cseq))
            .header("User-Agent", &self.settings.user_agent)
            .build();
        let flow = c.flow;
        match self.invite_client_txs.get_mut(&id) {
            Some(ctx) => {
                if let Err(e) = ctx.tx.send_ack(bytes, now) {
                    tracing::debug!(error = %e, "ACK refused by its transaction");
                }
                while let Some(b) = ctx.tx.poll_transmit() {
                    self.transmits.push_back(ctx.flow.transmit(b));
                }
            }
            // Already terminated (reliable transport): send it once.
            None => self.transmits.push_back(flow.transmit(bytes)),
        }
    }

    /// A 2xx to our INVITE (§13.2.2.4): the dialog, the ACK, the answer.
    /// A 2xx after we gave up (CANCEL raced it) is ACKed and ended with BYE.
    fn answered(&mut self, call: CallKey, response: &Message, now: Instant) {
        let ua = self.settings.user_agent.clone();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Calling {
            // A retransmitted 2xx: our ACK was lost (§13.2.2.4).
            let flow = c.request_flow();
            if let Some(ack) = c.outbound.as_ref().and_then(|o| o.ack.clone()) {
                self.transmits.push_back(flow.transmit(ack));
            }
            return;
        }
        let local_uri = c.dialog.local_uri.clone();
        let local_tag = c.dialog.id.local_tag.clone();
        let Some(o) = c.outbound.as_mut() else {
            return;
        };
        o.answer_deadline = None;
        o.give_up_at = None;
        let dialog = match Dialog::new_uac(o.cseq, &local_uri, &local_tag, response) {
            Ok(d) => d,
            Err(e) => {
                // Without To tag or Contact no dialog can be formed;
                // nothing can be ACKed or ended properly. Give up.
                tracing::info!(error = %e, "unusable 2xx from the bridge");
                self.report_failure(call, OutboundFailure::BadAnswer);
                self.finish_call(call, EndReason::BadAck);
                return;
            }
        };
        let cseq = o.cseq;
        let failed = o.failed;
        let media = SessionDescription::parse(response.body())
            .ok()
            .and_then(|a| sdp::accept_answer(&o.offer, &a).ok());
        c.dialog = dialog;
        self.dialogs.insert(c.dialog.id.clone(), call);
        let flow = c.request_flow();
        let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
        let sent_by = respond::sent_by(&self.settings, flow);
        let ack = c
            .dialog
            .build_ack(cseq, flow.transport.via_token(), &sent_by, &branch, &ua);
        if let Some(o) = c.outbound.as_mut() {
            o.ack = Some(ack.clone());
        }
        self.transmits.push_back(flow.transmit(ack));
        c.state = CallState::Confirmed;
        match media {
            Some(m) if !failed => {
                c.media = Some(m.clone());
                c.started = true;
                let limit = now + self.settings.max_call_duration;
                c.hang_up_at = Some(limit);
                tracing::info!(parent: &c.span, "the bridge answered");
                self.counters.calls_answered += 1;
                self.events.push_back(UaEvent::OutboundAnswered {
                    call,
                    media: Box::new(m),
                });
                self.schedule_call(call, limit);
            }
            Some(_) => {
                tracing::info!(parent: &c.span, "the bridge answered after we gave up");
                self.end_call_locally(call, EndReason::Cancelled, now);
            }
            None => {
                tracing::info!(parent: &c.span, "the bridge's answer has no usable SDP");
                self.report_failure(call, OutboundFailure::BadAnswer);
                self.end_call_locally(call, EndReason::BadAck, now);
            }
        }
    }
}

/// Where the INVITE goes: the URI's IP literal (or localhost) and port.
fn target_address(target: &str) -> Result<SocketAddr, PlaceCallError> {
    let uri = Uri::parse(target).map_err(|_| PlaceCallError::BadUri(target.to_string()))?;
    if !matches!(uri.scheme, Scheme::Sip) {
        return Err(PlaceCallError::BadUri(target.to_string()));
    }
    if uri
        .params
        .get("transport")
        .is_some_and(|t| !t.eq_ignore_ascii_case("udp"))
    {
        return Err(PlaceCallError::UnsupportedTransport);
    }
    let port = uri.port.unwrap_or(5060);
    let ip = match uri.host.as_ref() {
        Some(h) => match h.ip() {
            Some(ip) => ip,
            None => match h {
                Host::Domain(n) if n.eq_ignore_ascii_case("localhost") => {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                }
                Host::Domain(n) => return Err(PlaceCallError::NeedsDns(n.to_string())),
                _ => return Err(PlaceCallError::BadUri(target.to_string())),
            },
        },
        None => return Err(PlaceCallError::BadUri(target.to_string())),
    };
    Ok(SocketAddr::new(ip, port))
}

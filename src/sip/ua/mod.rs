//! The sans-IO SIP user agent core of the gateway (RFC 3261 §8.2, §12–§16).
//!
//! The shell feeds it every received message ([`UserAgent::handle_datagram`])
//! and every expired deadline ([`UserAgent::handle_timeout`]), each with
//! `now`; it drains [`UserAgent::poll_transmit`] and
//! [`UserAgent::poll_event`], and sleeps until [`UserAgent::poll_timeout`].
//! No sockets, no clock reads.
//!
//! Every incoming message is routed in one place ([`UserAgent::handle_datagram`]):
//!
//! 1. a response goes to our client transaction (a BYE we sent), or is
//!    dropped as stray;
//! 2. a request matching a server transaction is a retransmission (the
//!    transaction replays its last response) or the ACK of a non-2xx;
//! 3. an ACK for a 2xx, and any request with a To tag, goes to its dialog
//!    (481 when there is none);
//! 4. anything else creates a server transaction: INVITE (a new call),
//!    OPTIONS, CANCEL, or 405 for methods we do not serve.
//!
//! Malformed requests whose Via can be read get 400 with a reason phrase
//! naming the problem; anything else unreadable is dropped and counted.

mod call;
mod outbound;
mod refer;
mod respond;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::{DialInNumber, Trunk};
use crate::media::ports::{PortAllocator, RtpPort};
use crate::sip::dialog::DialogId;
use crate::sip::message::{HeaderName, Message, Method};
use crate::sip::sdp::Negotiated;
use crate::sip::transaction::{
    ClientTransactionKey, InviteClientTransaction, NonInviteClientTransaction, Reliability,
    RequestKeyParts, ServerTransaction, ServerTransactionKey, TimerSettings, Transaction,
    TransactionEvent,
};
use crate::sip::transport::{ConnId, Transmit, Transport};

use call::{Call, CallState};
pub use outbound::{OutboundCall, OutboundFailure, PlaceCallError, PlacedCall};
pub use refer::{ReferError, TransferFailure};

/// Methods the gateway serves (Allow, §20.5). NOTIFY only in a dialog we
/// sent REFER in (RFC 3515 §2.4.4).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY";
/// Bodies the gateway accepts (Accept, §20.1).
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";

/// Default for [`UaSettings::max_call_duration`]: four hours.
pub const DEFAULT_MAX_CALL_DURATION: Duration = Duration::from_secs(4 * 3600);

/// After the shutdown BYEs, how long their answers are awaited before the
/// remaining calls are dropped and the process may exit.
pub const SHUTDOWN_BYE_WAIT: Duration = Duration::from_secs(4);

/// Identifies a call inside one [`UserAgent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

impl std::fmt::Display for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteBye,
    /// We hung up (see [`UserAgent::hang_up`]).
    LocalHangUp,
    /// The caller cancelled before the answer.
    Cancelled,
    /// No ACK for our 2xx within 64·T1 (§13.3.1.4).
    NoAck,
    /// The ACK carried no usable answer to our offer.
    BadAck,
    /// The shutdown grace period ran out.
    Shutdown,
    /// The transport failed.
    TransportError,
    /// The call reached the longest call duration allowed.
    MaxDuration,
    /// The caller was transferred to the meeting bridge (RFC 3515) and
    /// our leg ended.
    Transferred,
}

/// News for the media layer and the call flow above the core.
#[derive(Clone, Debug)]
pub enum UaEvent {
    /// A call is answered and confirmed: media may flow.
    CallStarted {
        /// The call.
        call: CallKey,
        /// Its Call-ID.
        call_id: String,
        /// The dial-in number (normalised digits).
        dialed: String,
        /// Prompt language of that number.
        language: String,
        /// Our RTP port pair.
        rtp: RtpPort,
        /// The negotiated media.
        media: Box<Negotiated>,
        /// Who is calling, for the guessing defence.
        caller: Box<CallerInfo>,
    },
    /// A re-INVITE or UPDATE changed the media (hold, resume, codec).
    MediaChanged {
        /// The call.
        call: CallKey,
        /// The new media.
        media: Box<Negotiated>,
    },
    /// An INFO arrived in a call (RFC 6086), e.g. a DTMF digit.
    Info {
        /// The call.
        call: CallKey,
        /// Its Content-Type.
        content_type: Option<String>,
        /// Its body.
        body: Bytes,
    },
    /// A call we placed ([`UserAgent::place_call`]) was answered and its
    /// ACK sent: media may flow on the port returned by `place_call`.
    OutboundAnswered {
        /// The call.
        call: CallKey,
        /// The negotiated media.
        media: Box<Negotiated>,
    },
    /// A call we placed was not answered; its RTP port is released. No
    /// `CallEnded` follows.
    OutboundFailed {
        /// The call.
        call: CallKey,
        /// Why.
        failure: OutboundFailure,
    },
    /// A NOTIFY reported the progress of our REFER (RFC 3515 §2.4.5), a
    /// provisional status.
    TransferProgress {
        /// The call.
        call: CallKey,
        /// Status code of the sipfrag status line.
        status: u16,
    },
    /// The transfer target answered (NOTIFY with a 2xx sipfrag); a BYE for
    /// our leg is on its way and `CallEnded` follows.
    TransferSucceeded {
        /// The call.
        call: CallKey,
    },
    /// The transfer failed; the call stays up (play the apology, hang up).
    TransferFailed {
        /// The call.
        call: CallKey,
        /// Why.
        failure: TransferFailure,
    },
    /// A call that was started has ended; its RTP port is released.
    CallEnded {
        /// The call.
        call: CallKey,
        /// Its Call-ID.
        call_id: String,
        /// Why.
        reason: EndReason,
    },
}

/// Who placed a call, as the guessing defence needs it
/// ([`crate::ivr::CallerIdentity::derive`]). Caller numbers are personal
/// data: keep them out of logs above debug level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerInfo {
    /// User part of P-Asserted-Identity (RFC 3325), taken only from a
    /// configured trunk (the trust domain of RFC 3325 §2.3).
    pub asserted_user: Option<String>,
    /// User part of the From URI.
    pub from_user: Option<String>,
    /// Source address of the INVITE.
    pub source: IpAddr,
    /// The source is a configured trunk.
    pub is_trunk: bool,
}

/// Message counters of the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages handed to the core.
    pub received: u64,
    /// Requests among them.
    pub requests: u64,
    /// Responses among them.
    pub responses: u64,
    /// Messages that could not be parsed and could not be answered.
    pub malformed_dropped: u64,
    /// Malformed requests answered with 400 (or 513).
    pub malformed_answered: u64,
    /// Request retransmissions absorbed by a transaction.
    pub retransmissions: u64,
    /// Responses and ACKs matching nothing.
    pub stray: u64,
    /// Responses sent by class: index 1 is 1xx ... index 6 is 6xx.
    pub responses_sent: [u64; 7],
    /// Calls answered.
    pub calls_answered: u64,
    /// Calls ended (after being answered).
    pub calls_ended: u64,
}

/// Settings of the user agent core.
#[derive(Clone, Debug)]
pub struct UaSettings {
    /// Address for Contact and Via; `None`: the local socket address.
    pub advertised_address: Option<IpAddr>,
    /// Address for SDP `c=`; `None`: the RTP bind address if specific,
    /// else the SIP address.
    pub rtp_advertised_address: Option<IpAddr>,
    /// Address RTP sockets bind to.
    pub rtp_bind_address: IpAddr,
    /// Concurrent calls before INVITEs get 503.
    pub max_calls: usize,
    /// Retry-After seconds with 503.
    pub retry_after: u32,
    /// Accept INVITEs from any source address.
    pub allow_any_source: bool,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// Transaction timers.
    pub timers: TimerSettings,
    /// Dial-in numbers.
    pub dial_in_numbers: Vec<DialInNumber>,
    /// Trunks allowed to send INVITEs.
    pub trunks: Vec<Trunk>,
    /// Largest message accepted.
    pub max_message_size: usize,
    /// How long a call rings (180) before it is answered; zero answers at
    /// once. Gives callers a window to CANCEL.
    pub answer_delay: Duration,
    /// Longest call; then we hang up. A safety net against calls whose
    /// caller vanished without BYE.
    pub max_call_duration: Duration,
}

impl Default for UaSettings {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::embedded())
    }
}

impl UaSettings {
    /// Derives the core's settings from the daemon configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let sip = &config.sip;
        Self {
            advertised_address: sip.advertised_address,
            rtp_advertised_address: config.rtp.advertised_address,
            rtp_bind_address: config.rtp.bind_address,
            max_calls: sip.max_calls,
            retry_after: sip.retry_after,
            allow_any_source: sip.allow_any_source,
            user_agent: sip.user_agent.clone(),
            timers: TimerSettings {
                t1: sip.timers.t1,
                t2: sip.timers.t2,
                t4: sip.timers.t4,
            },
            dial_in_numbers: config.dial_in_numbers.clone(),
            trunks: config.trunks.clone(),
            max_message_size: sip.max_message_size,
            answer_delay: Duration::ZERO,
            max_call_duration: DEFAULT_MAX_CALL_DURATION,
        }
    }
}

/// Where a message came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flow {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    conn: Option<ConnId>,
}

impl Flow {
    fn transmit(&self, bytes: Bytes) -> Transmit {
        Transmit {
            transport: self.transport,
            local: self.local,
            remote: self.remote,
            conn: self.conn,
            bytes,
        }
    }

    fn reliability(&self) -> Reliability {
        if self.transport.is_reliable() {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        }
    }
}

type TxId = u64;

/// What a deadline in the timer heap belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    Server(TxId),
    Client(TxId),
    InviteClient(TxId),
    Call(CallKey),
}

/// What a non-INVITE client transaction was sent for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Bye,
    Refer,
    Cancel,
}

struct ServerTx {
    tx: ServerTransaction,
    key: Option<ServerTransactionKey>,
    flow: Flow,
    call: Option<CallKey>,
    scheduled: Option<Instant>,
}

struct ClientTx {
    tx: NonInviteClientTransaction,
    key: ClientTransactionKey,
    flow: Flow,
    call: CallKey,
    purpose: Purpose,
    scheduled: Option<Instant>,
}

/// The INVITE of a call we placed.
struct InviteClientTx {
    tx: InviteClientTransaction,
    key: ClientTransactionKey,
    flow: Flow,
    call: CallKey,
    scheduled: Option<Instant>,
}

/// The user agent core. See the module documentation.
pub struct UserAgent {
    settings: UaSettings,
    /// Dial-in numbers by their digits.
    numbers: Vec<(String, DialInNumber)>,
    ports: Box<dyn PortAllocator>,
    server_txs: HashMap<TxId, ServerTx>,
    server_keys: HashMap<ServerTransactionKey, TxId>,
    client_txs: HashMap<TxId, ClientTx>,
    client_keys: HashMap<ClientTransactionKey, TxId>,
    invite_client_txs: HashMap<TxId, InviteClientTx>,
    calls: HashMap<CallKey, Call>,
    /// The local UDP address messages last arrived on: where calls we
    /// place are sent from unless told otherwise.
    udp_local: Option<SocketAddr>,
    dialogs: HashMap<DialogId, CallKey>,
    /// Calls by the INVITE's (Call-ID, From tag, CSeq), to spot the same
    /// INVITE arriving over another path (§8.2.2.2).
    invites: HashMap<(String, String, u32), CallKey>,
    next_id: u64,
    timers: BinaryHeap<Reverse<(Instant, Wake)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UaEvent>,
    counters: Counters,
    shutdown: Option<Instant>,
    shutdown_byes_sent: bool,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("calls", &self.calls.len())
            .field("server_txs", &self.server_txs.len())
            .field("client_txs", &self.client_txs.len())
            .field("invite_client_txs", &self.invite_client_txs.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl UserAgent {
    /// Creates the core; RTP ports come from `ports`.
    pub fn new(settings: UaSettings, ports: Box<dyn PortAllocator>) -> Self {
        let numbers = settings
            .dial_in_numbers
            .iter()
            .filter_map(|n| n.digits().map(|d| (d, n.clone())))
            .collect();
        Self {
            settings,
            numbers,
            ports,
            server_txs: HashMap::new(),
            server_keys: HashMap::new(),
            client_txs: HashMap::new(),
            client_keys: HashMap::new(),
            invite_client_txs: HashMap::new(),
            calls: HashMap::new(),
            udp_local: None,
            dialogs: HashMap::new(),
            invites: HashMap::new(),
            next_id: 1,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            shutdown: None,
            shutdown_byes_sent: false,
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Calls in progress (ringing, answered or being torn down).
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// RTP port pairs free now.
    pub fn rtp_ports_available(&self) -> usize {
        self.ports.available()
    }

    /// RTP port pairs in the range.
    pub fn rtp_ports_capacity(&self) -> usize {
        self.ports.capacity()
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the layers above.
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    /// When [`UserAgent::handle_timeout`] must be called next. May be
    /// early (a stale deadline); a spurious call is harmless.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((t, _))| *t);
        let grace = match self.shutdown {
            Some(deadline) if !self.shutdown_byes_sent => Some(deadline),
            Some(deadline) if !self.calls.is_empty() => Some(deadline + SHUTDOWN_BYE_WAIT),
            _ => None,
        };
        match (heap, grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Begins a graceful shutdown: from now on INVITE and OPTIONS get 503;
    /// calls in progress continue until they end or `grace` passes, then
    /// get a BYE. [`UserAgent::is_drained`] tells when all are gone.
    pub fn begin_shutdown(&mut self, now: Instant, grace: Duration) {
        if self.shutdown.is_none() {
            self.shutdown = Some(now + grace);
            tracing::info!(calls = self.calls.len(), "SIP shutdown begun");
        }
        if grace.is_zero() {
            self.handle_timeout(now);
        }
    }

    /// True once shutdown has begun and no call is left.
    pub fn is_drained(&self) -> bool {
        self.shutdown.is_some() && self.calls.is_empty()
    }

    /// Ends a call from our side: BYE when answered, 480 when still ringing.
    pub fn hang_up(&mut self, call: CallKey, now: Instant) {
        self.end_call_locally(call, EndReason::LocalHangUp, now);
    }

    /// Fires everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.shutdown {
            if !self.shutdown_byes_sent && deadline <= now {
                self.shutdown_byes_sent = true;
                let keys: Vec<CallKey> = self.calls.keys().copied().collect();
                if !keys.is_empty() {
                    tracing::info!(calls = keys.len(), "shutdown grace over, hanging up");
                }
                for key in keys {
                    self.end_call_locally(key, EndReason::Shutdown, now);
                }
            } else if self.shutdown_byes_sent && deadline + SHUTDOWN_BYE_WAIT <= now {
                // Callers that vanished never answer the BYE; waiting for
                // Timer F (64·T1) would only hold up the exit.
                let keys: Vec<CallKey> = self.calls.keys().copied().collect();
                if !keys.is_empty() {
                    tracing::info!(
                        calls = keys.len(),
                        "BYE not answered in time, dropping calls"
                    );
                }
                for key in keys {
                    self.finish_call(key, EndReason::Shutdown);
                }
            }
        }
        while let Some(Reverse((at, wake))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match wake {
                Wake::Server(id) => {
                    let Some(stx) = self.server_txs.get_mut(&id) else {
                        continue;
                    };
                    if stx.scheduled != Some(at) {
                        continue;
                    }
                    stx.scheduled = None;
                    stx.tx.handle_timeout(now);
                    self.drive_server_tx(id, now);
                }
                Wake::Client(id) => {
                    let Some(ctx) = self.client_txs.get_mut(&id) else {
                        continue;
                    };
                    if ctx.scheduled != Some(at) {
                        continue;
                    }
                    ctx.scheduled = None;
                    ctx.tx.handle_timeout(now);
                    self.drive_client_tx(id, now);
                }
                Wake::InviteClient(id) => {
                    let Some(ctx) = self.invite_client_txs.get_mut(&id) else {
                        continue;
                    };
                    if ctx.scheduled != Some(at) {
                        continue;
                    }
                    ctx.scheduled = None;
                    ctx.tx.handle_timeout(now);
                    self.drive_invite_client_tx(id, None, now);
                }
                Wake::Call(key) => {
                    let Some(c) = self.calls.get(&key) else {
                        continue;
                    };
                    if c.outbound
                        .as_ref()
                        .is_some_and(|o| o.answer_deadline == Some(at))
                    {
                        self.answer_timeout(key, now);
                    } else if c
                        .outbound
                        .as_ref()
                        .is_some_and(|o| o.give_up_at == Some(at))
                    {
                        self.give_up_invite(key);
                    } else if c.transfer.as_ref().is_some_and(|t| t.deadline == at) {
                        self.transfer_timeout(key);
                    } else if c.answer_at == Some(at) {
                        self.answer_call(key, now);
                    } else if c.hang_up_at == Some(at) {
                        tracing::info!(parent: &c.span, "longest call duration reached");
                        self.end_call_locally(key, EndReason::MaxDuration, now);
                    }
                }
            }
        }
    }

    /// Whether a call still uses this TCP connection (so an idle
    /// connection must stay open).
    pub fn connection_in_use(&self, conn: ConnId) -> bool {
        self.calls.values().any(|c| c.flow.conn == Some(conn))
    }

    /// A TCP connection closed: transactions and calls on it can no
    /// longer send; calls keep going and are ended by their timers or
    /// the caller's BYE on a new connection.
    pub fn handle_connection_closed(&mut self, conn: ConnId) {
        tracing::debug!(conn = conn.0, "SIP connection closed");
    }

    /// A TCP peer sent more than the message ceiling without a whole
    /// message: answer 513 when its Via can be read (§18.3, §21.5.14).
    pub fn handle_oversized(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        conn: ConnId,
        head: Bytes,
        _now: Instant,
    ) {
        self.counters.received += 1;
        let flow = Flow {
            transport: Transport::Tcp,
            local,
            remote,
            conn: Some(conn),
        };
        self.answer_unparseable(&head, flow, 513, "Message Too Large");
    }

    /// Handles one received SIP message (a datagram or one framed TCP
    /// message). This is the one place every message is routed.
    pub fn handle_datagram(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        conn: Option<ConnId>,
        bytes: Bytes,
        now: Instant,
    ) {
        self.counters.received += 1;
        if transport == Transport::Udp {
            self.udp_local = Some(local);
        }
        let flow = Flow {
            transport,
            local,
            remote,
            conn,
        };
        if bytes.len() > self.settings.max_message_size {
            self.answer_unparseable(&bytes, flow, 513, "Message Too Large");
            return;
        }
        let msg = match Message::parse(bytes.clone()) {
            Ok(m) => m,
            Err(e) => {
                let reason = e.to_string();
                self.answer_unparseable(&bytes, flow, e.status_code(), &reason);
                return;
            }
        };
        if msg.is_response() {
            self.counters.responses += 1;
            self.route_response(msg, now);
        } else {
            self.counters.requests += 1;
            self.route_request(msg, flow, now);
        }
    }

    fn route_response(&mut self, msg: Message, now: Instant) {
        let key = match (msg.via(), msg.cseq()) {
            (Ok(via), Ok(cseq)) => via
                .branch
                .and_then(|b| ClientTransactionKey::new(b, cseq.method.as_str()).ok()),
            _ => None,
        };
        let id = key.and_then(|k| self.client_keys.get(&k).copied());
        let (Some(id), Some(status)) = (id, msg.status()) else {
            self.counters.stray += 1;
            tracing::debug!("stray response dropped");
            return;
        };
        if let Some(ctx) = self.invite_client_txs.get_mut(&id) {
            if let Err(e) = ctx.tx.on_response(status, now) {
                tracing::debug!(error = %e, "response refused by its transaction");
            }
            self.drive_invite_client_tx(id, Some(&msg), now);
            return;
        }
        if let Some(ctx) = self.client_txs.get_mut(&id) {
            if let Err(e) = ctx.tx.on_response(status, now) {
                tracing::debug!(error = %e, "response refused by its transaction");
            }
        }
        self.drive_client_tx(id, now);
    }

    fn route_request(&mut self, msg: Message, flow: Flow, now: Instant) {
        if let Err(e) = msg.validate_request() {
            let reason = e.to_string();
            self.answer_malformed(&msg, flow, 400, &reason);
            return;
        }
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let via = match msg.via() {
            Ok(v) => v,
            Err(e) => {
                let reason = e.to_string();
                self.answer_malformed(&msg, flow, 400, &reason);
                return;
            }
        };
        let key = server_key(&msg, &via);

        // 1. An existing server transaction: a retransmission, or the ACK
        //    of a non-2xx final response (§17.2.1, §17.2.3).
        if let Some(id) = key.as_ref().and_then(|k| self.server_keys.get(k).copied()) {
            if method == Method::Ack {
                if self.ack_for_transaction(id, &msg, now) {
                    return;
                }
            } else {
                self.counters.retransmissions += 1;
                if let Some(stx) = self.server_txs.get_mut(&id) {
                    match &mut stx.tx {
                        ServerTransaction::Invite(t) => t.on_request_retransmission(now),
                        ServerTransaction::NonInvite(t) => t.on_request_retransmission(now),
                    }
                }
                self.drive_server_tx(id, now);
                return;
            }
        }

        // 2. ACK for a 2xx: its own transaction, routed by the dialog
        //    (§13.3.1.4, §17.1.1.3). An ACK is never answered.
        if method == Method::Ack {
            self.ack_in_dialog(&msg, now);
            return;
        }

        // 3. A new server transaction.
        let request = respond::stamp_via(&msg, &via, flow);
        let reply_flow = respond::response_flow(&via, flow);
        let id = self.new_server_tx(key.clone(), &method, reply_flow, now);

        if msg.max_forwards().ok().flatten() == Some(0) {
            self.respond(id, &request, 483, "Too Many Hops", None, now);
            return;
        }
        let to_tag = msg.to().ok().and_then(|t| t.tag.map(str::to_string));
        if let (Some(to_tag), false) = (to_tag, method == Method::Cancel) {
            let call = self.dialog_of(&msg, &to_tag);
            match call {
                Some(call) => self.in_dialog_request(call, id, &method, request, now),
                None => self.respond(
                    id,
                    &request,
                    481,
                    "Call/Transaction Does Not Exist",
                    None,
                    now,
                ),
            }
            return;
        }
        match method {
            Method::Invite => self.new_invite(id, request, flow, now),
            Method::Options => self.answer_options(id, &request, now),
            Method::Cancel => self.cancel(id, key, &request, now),
            Method::Bye | Method::Info | Method::Update | Method::Prack => self.respond(
                id,
                &request,
                481,
                "Call/Transaction Does Not Exist",
                None,
                now,
            ),
            _ => self.method_not_allowed(id, &request, now),
        }
    }

    /// An ACK matched a server transaction. Returns false when it is
    /// really the ACK of a 2xx that reused the INVITE's branch, to be
    /// routed by the dialog.
    fn ack_for_transaction(&mut self, id: TxId, msg: &Message, now: Instant) -> bool {
        let Some(stx) = self.server_txs.get_mut(&id) else {
            return false;
        };
        match &mut stx.tx {
            ServerTransaction::Invite(t)
                if t.state() == crate::sip::transaction::InviteServerState::Completed =>
            {
                t.on_ack(now);
                self.drive_server_tx(id, now);
                true
            }
            ServerTransaction::Invite(_) => {
                self.ack_in_dialog(msg, now);
                true
            }
            ServerTransaction::NonInvite(_) => false,
        }
    }

    fn dialog_of(&self, msg: &Message, to_tag: &str) -> Option<CallKey> {
        let call_id = msg.call_id().ok()?;
        let from_tag = msg.from().ok()?.tag?;
        let id = DialogId {
            call_id: call_id.to_string(),
            local_tag: to_tag.to_string(),
            remote_tag: from_tag.to_string(),
        };
        self.dialogs.get(&id).copied()
    }

    fn new_server_tx(
        &mut self,
        key: Option<ServerTransactionKey>,
        method: &Method,
        flow: Flow,
        now: Instant,
    ) -> TxId {
        let id = self.next_id();
        let tx = if *method == Method::Invite {
            ServerTransaction::Invite(crate::sip::transaction::InviteServerTransaction::new(
                now,
                self.settings.timers,
                flow.reliability(),
            ))
        } else {
            ServerTransaction::NonInvite(crate::sip::transaction::NonInviteServerTransaction::new(
                now,
                self.settings.timers,
                flow.reliability(),
            ))
        };
        if let Some(k) = &key {
            self.server_keys.insert(k.clone(), id);
        }
        self.server_txs.insert(
            id,
            ServerTx {
                tx,
                key,
                flow,
                call: None,
                scheduled: None,
            },
        );
        id
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Drains a server transaction's outputs, handles its events,
    /// reschedules it and drops it once terminated.
    fn drive_server_tx(&mut self, id: TxId, now: Instant) {
        let mut events = Vec::new();
        let Some(stx) = self.server_txs.get_mut(&id) else {
            return;
        };
        while let Some(bytes) = stx.tx.poll_transmit() {
            self.transmits.push_back(stx.flow.transmit(bytes));
        }
        while let Some(ev) = stx.tx.poll_event() {
            events.push(ev);
        }
        let call = stx.call;
        let deadline = stx.tx.poll_timeout();
        if stx.tx.is_terminated() {
            if let Some(k) = stx.key.take() {
                self.server_keys.remove(&k);
            }
            self.server_txs.remove(&id);
        } else if deadline.is_some() && deadline != stx.scheduled {
            stx.scheduled = deadline;
            if let Some(d) = deadline {
                self.timers.push(Reverse((d, Wake::Server(id))));
            }
        }
        for ev in events {
            match ev {
                TransactionEvent::NoAck => {
                    if let Some(call) = call {
                        self.no_ack(call, id, now);
                    }
                }
                TransactionEvent::TransportError => {
                    if let Some(call) = call {
                        self.finish_call(call, EndReason::TransportError);
                    }
                }
                _ => {}
            }
        }
    }

    fn drive_client_tx(&mut self, id: TxId, now: Instant) {
        let mut events = Vec::new();
        let Some(ctx) = self.client_txs.get_mut(&id) else {
            return;
        };
        while let Some(bytes) = ctx.tx.poll_transmit() {
            self.transmits.push_back(ctx.flow.transmit(bytes));
        }
        while let Some(ev) = ctx.tx.poll_event() {
            events.push(ev);
        }
        let call = ctx.call;
        let purpose = ctx.purpose;
        let deadline = ctx.tx.poll_timeout();
        if ctx.tx.is_terminated() {
            self.client_keys.remove(&ctx.key);
            self.client_txs.remove(&id);
        } else if deadline.is_some() && deadline != ctx.scheduled {
            ctx.scheduled = deadline;
            if let Some(d) = deadline {
                self.timers.push(Reverse((d, Wake::Client(id))));
            }
        }
        if purpose == Purpose::Refer {
            for ev in events {
                self.refer_event(call, ev, now);
            }
            return;
        }
        if purpose == Purpose::Cancel {
            // The INVITE's final response (487) ends the call; a lost
            // CANCEL is covered by the give-up deadline (§9.1).
            return;
        }
        for ev in events {
            match ev {
                TransactionEvent::Final(_)
                | TransactionEvent::Timeout
                | TransactionEvent::TransportError => {
                    // Our BYE is answered (any final ends the dialog,
                    // §15.1.1) or timed out: the call is over.
                    if let Some(c) = self.calls.get(&call) {
                        let reason = c.end_reason.unwrap_or(EndReason::LocalHangUp);
                        self.finish_call(call, reason);
                    }
                }
                _ => {}
            }
        }
    }

    /// Sends a response on a server transaction. `to_tag` is added when
    /// the request's To has none.
    fn respond(
        &mut self,
        id: TxId,
        request: &Message,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
        now: Instant,
    ) {
        let bytes = respond::simple(request, status, reason, to_tag, &self.settings, |b| b);
        self.send_on_tx(id, status, bytes, now);
    }

    fn send_on_tx(&mut self, id: TxId, status: u16, bytes: Bytes, now: Instant) {
        let Some(stx) = self.server_txs.get_mut(&id) else {
            return;
        };
        let result = match &mut stx.tx {
            ServerTransaction::Invite(t) => t.send_response(status, bytes, now),
            ServerTransaction::NonInvite(t) => t.send_response(status, bytes, now),
        };
        match result {
            Ok(()) => {
                if let Some(slot) = self
                    .counters
                    .responses_sent
                    .get_mut(usize::from(status / 100))
                {
                    *slot += 1;
                }
            }
            Err(e) => tracing::debug!(error = %e, status, "response refused by its transaction"),
        }
        self.drive_server_tx(id, now);
    }

    fn answer_options(&mut self, id: TxId, request: &Message, now: Instant) {
        if self.shutdown.is_some() {
            self.service_unavailable(id, request, now);
            return;
        }
        let bytes = respond::simple(request, 200, "OK", None, &self.settings, |b| {
            b.header("Allow", ALLOW)
                .header("Accept", ACCEPT)
                .header("Supported", "")
        });
        self.send_on_tx(id, 200, bytes, now);
    }

    fn method_not_allowed(&mut self, id: TxId, request: &Message, now: Instant) {
        let bytes = respond::simple(
            request,
            405,
            "Method Not Allowed",
            None,
            &self.settings,
            |b| b.header("Allow", ALLOW),
        );
        self.send_on_tx(id, 405, bytes, now);
    }

    fn service_unavailable(&mut self, id: TxId, request: &Message, now: Instant) {
        let retry = self.settings.retry_after;
        let bytes = respond::simple(
            request,
            503,
            "Service Unavailable",
            None,
            &self.settings,
            |b| b.header("Retry-After", retry),
        );
        self.send_on_tx(id, 503, bytes, now);
    }

    /// CANCEL (§9.2): 200 and 487 to the INVITE while it has no final
    /// response; 200 and no effect after; 481 when nothing matches.
    fn cancel(
        &mut self,
        id: TxId,
        key: Option<ServerTransactionKey>,
        request: &Message,
        now: Instant,
    ) {
        let invite = key
            .and_then(|k| k.cancelled_invite())
            .and_then(|k| self.server_keys.get(&k).copied());
        let Some(invite) = invite else {
            self.respond(
                id,
                request,
                481,
                "Call/Transaction Does Not Exist",
                None,
                now,
            );
            return;
        };
        self.respond(id, request, 200, "OK", None, now);
        let call = self.server_txs.get(&invite).and_then(|s| s.call);
        let Some(call) = call else {
            return;
        };
        let ringing = self
            .calls
            .get(&call)
            .is_some_and(|c| c.state == CallState::Ringing && c.invite_tx == invite);
        if ringing {
            self.reject_invite(call, 487, "Request Terminated", now);
            self.finish_call(call, EndReason::Cancelled);
        }
    }

    /// Sends a final non-2xx to a ringing call's INVITE.
    fn reject_invite(&mut self, call: CallKey, status: u16, reason: &str, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let invite_tx = c.invite_tx;
        let tag = c.dialog.id.local_tag.clone();
        let bytes = respond::simple(&c.invite, status, reason, Some(&tag), &self.settings, |b| b);
        self.send_on_tx(invite_tx, status, bytes, now);
    }

    /// Sends BYE for an answered call, or a final error to a ringing one.
    fn end_call_locally(&mut self, call: CallKey, reason: EndReason, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match c.state {
            CallState::Ringing => {
                let (status, phrase) = if reason == EndReason::Shutdown {
                    (503, "Service Unavailable")
                } else {
                    (480, "Temporarily Unavailable")
                };
                self.reject_invite(call, status, phrase, now);
                self.finish_call(call, reason);
            }
            CallState::Answered | CallState::Confirmed => {
                c.state = CallState::Ending;
                c.end_reason = Some(reason);
                self.send_bye(call, now);
            }
            CallState::Calling => self.cancel_outbound(call, OutboundFailure::Cancelled, now),
            CallState::Ending => {}
        }
    }

    fn send_bye(&mut self, call: CallKey, now: Instant) {
        if let Some(c) = self.calls.get_mut(&call) {
            // Whatever a transfer still waits for no longer matters.
            c.transfer = None;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let flow = c.request_flow();
        let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
        let sent_by = respond::sent_by(&self.settings, flow);
        let bytes = c.dialog.build_request(
            Method::Bye,
            flow.transport.via_token(),
            &sent_by,
            &branch,
            &self.settings.user_agent,
        );
        tracing::info!(parent: &c.span, "sending BYE");
        let Ok(key) = ClientTransactionKey::new(&branch, "BYE") else {
            return;
        };
        self.start_client_tx(bytes, key, flow, call, Purpose::Bye, now);
    }

    /// Starts a non-INVITE client transaction for a request of `call`.
    fn start_client_tx(
        &mut self,
        bytes: Bytes,
        key: ClientTransactionKey,
        flow: Flow,
        call: CallKey,
        purpose: Purpose,
        now: Instant,
    ) {
        let id = self.next_id();
        let tx =
            NonInviteClientTransaction::new(bytes, now, self.settings.timers, flow.reliability());
        self.client_keys.insert(key.clone(), id);
        self.client_txs.insert(
            id,
            ClientTx {
                tx,
                key,
                flow,
                call,
                purpose,
                scheduled: None,
            },
        );
        self.drive_client_tx(id, now);
    }

    /// No ACK for a 2xx within 64·T1: end the call with BYE (§13.3.1.4).
    fn no_ack(&mut self, call: CallKey, tx: TxId, now: Instant) {
        let waiting = self
            .calls
            .get(&call)
            .is_some_and(|c| c.awaiting_ack == Some(tx));
        if waiting {
            if let Some(c) = self.calls.get(&call) {
                tracing::info!(parent: &c.span, "no ACK for our 2xx");
            }
            self.end_call_locally(call, EndReason::NoAck, now);
        }
    }

    /// Removes a call: releases its port, forgets its dialog, reports it.
    fn finish_call(&mut self, call: CallKey, reason: EndReason) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        self.dialogs.remove(&c.dialog.id);
        self.invites.remove(&c.invite_id);
        self.ports.release(c.rtp);
        tracing::info!(parent: &c.span, ?reason, "call ended");
        if c.started {
            self.counters.calls_ended += 1;
            self.events.push_back(UaEvent::CallEnded {
                call,
                call_id: c.dialog.id.call_id.clone(),
                reason,
            });
        }
    }

    /// The address our SDP advertises for RTP.
    fn media_address(&self, local: SocketAddr, request_uri_host: Option<IpAddr>) -> IpAddr {
        if let Some(a) = self.settings.rtp_advertised_address {
            return a;
        }
        if !self.settings.rtp_bind_address.is_unspecified() {
            return self.settings.rtp_bind_address;
        }
        respond::contact_ip(&self.settings, local, request_uri_host)
    }

    fn schedule_call(&mut self, call: CallKey, at: Instant) {
        self.timers.push(Reverse((at, Wake::Call(call))));
    }
}

/// Builds the server transaction key of a request (§17.2.3).
fn server_key(msg: &Message, via: &crate::sip::message::Via<'_>) -> Option<ServerTransactionKey> {
    let cseq = msg.cseq().ok()?;
    // sent-by with the default port made explicit, so `host` and
    // `host:5060` match (§17.2.3).
    let sent_by = format!("{}:{}", via.host, via.port.unwrap_or(5060));
    let to = msg.to().ok();
    let from = msg.from().ok();
    let top_via = msg.header_values(HeaderName::Via).next().unwrap_or("");
    let parts = RequestKeyParts {
        method: cseq.method.as_str(),
        branch: via.branch,
        sent_by: &sent_by,
        request_uri: msg.request_uri(),
        to_tag: to.and_then(|t| t.tag),
        from_tag: from.and_then(|f| f.tag),
        call_id: msg.call_id().unwrap_or(""),
        cseq: cseq.seq,
        top_via,
    };
    ServerTransactionKey::from_request(&parts).ok()
}

/// Picks the IP our Contact/Via advertise.
fn fallback_ip(local: SocketAddr) -> IpAddr {
    if local.is_ipv4() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    }
}

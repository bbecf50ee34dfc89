//! Calls: the INVITE that creates one (RFC 3261 §13.3), its dialog
//! (§12), offer/answer (RFC 3264) and the requests inside it (§14, §15,
//! RFC 6086 INFO, RFC 3311 UPDATE).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::respond::{self, contact_ip, format_host_port};
use super::{CallKey, CallerInfo, EndReason, Flow, TxId, UaEvent, UserAgent, ACCEPT, ALLOW};
use crate::media::ports::RtpPort;
use crate::sip::dialog::Dialog;
use crate::sip::message::{HeaderName, Message, Method};
use crate::sip::sdp::{self, LocalMedia, Negotiated, SessionDescription};
use crate::sip::transport::Transport;
use crate::sip::uri::Uri;

/// Where a call is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CallState {
    /// A call we placed: INVITE sent, no 2xx yet (CANCEL possible).
    Calling,
    /// INVITE received, 180 sent, not answered yet (CANCEL possible).
    Ringing,
    /// 200 sent, waiting for the ACK.
    Answered,
    /// ACK received.
    Confirmed,
    /// Our BYE is on its way.
    Ending,
}

pub(super) struct Call {
    pub(super) state: CallState,
    pub(super) dialog: Dialog,
    /// The INVITE (Via stamped), for the responses to it.
    pub(super) invite: Message,
    pub(super) invite_tx: TxId,
    /// (Call-ID, From tag, CSeq) of the INVITE.
    pub(super) invite_id: (String, String, u32),
    /// The INVITE or re-INVITE whose 2xx waits for an ACK.
    pub(super) awaiting_ack: Option<TxId>,
    pub(super) rtp: RtpPort,
    pub(super) local_media: LocalMedia,
    /// Our offer when the INVITE came without one (answer in the ACK).
    pub(super) pending_offer: Option<SessionDescription>,
    /// Our answer or offer for the pending 2xx.
    pub(super) local_sdp: String,
    pub(super) media: Option<Negotiated>,
    pub(super) dialed: String,
    pub(super) language: String,
    /// Flow the INVITE came on; in-dialog requests we send use it.
    pub(super) flow: Flow,
    pub(super) contact: String,
    pub(super) answer_at: Option<Instant>,
    /// When the longest call duration is reached.
    pub(super) hang_up_at: Option<Instant>,
    pub(super) started: bool,
    pub(super) end_reason: Option<EndReason>,
    pub(super) span: tracing::Span,
    pub(super) caller: CallerInfo,
    /// Set for a call we placed.
    pub(super) outbound: Option<Box<super::outbound::Outbound>>,
    /// A REFER of ours in progress.
    pub(super) transfer: Option<super::refer::Transfer>,
}

impl Call {
    /// Where our in-dialog requests go: the next hop's address when it is
    /// an IP literal, else the address the INVITE came from. Over TCP the
    /// INVITE's connection is used while it lasts; the shell connects to
    /// that address when it is gone.
    pub(super) fn request_flow(&self) -> Flow {
        let hop = Uri::parse(self.dialog.next_hop_uri()).ok().and_then(|u| {
            let ip = u.host.as_ref().and_then(|h| h.ip())?;
            Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
        });
        Flow {
            remote: hop.unwrap_or(self.flow.remote),
            ..self.flow
        }
    }
}

/// Masks a caller number for logs above debug level: keeps the last two
/// digits.
fn mask(user: &str) -> String {
    let n = user.chars().count();
    user.chars()
        .enumerate()
        .map(|(i, c)| {
            if i + 2 < n && c.is_ascii_alphanumeric() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

impl UserAgent {
    /// A new INVITE (§13.3.1): 100 Trying, the admission checks, then a
    /// call that rings or is answered at once.
    pub(super) fn new_invite(&mut self, id: TxId, request: Message, source: Flow, now: Instant) {
        self.respond(id, &request, 100, "Trying", None, now);
        if self.is_merged(&request) {
            // The same INVITE over another path: answered once (§8.2.2.2).
            self.respond(id, &request, 482, "Loop Detected", None, now);
            return;
        }
        if self.shutdown.is_some() {
            self.service_unavailable(id, &request, now);
            return;
        }
        if !self.settings.allow_any_source
            && !self
                .settings
                .trunks
                .iter()
                .any(|t| t.contains(source.remote.ip()))
        {
            tracing::info!(source = %source.remote.ip(), "INVITE from a source outside every trunk");
            self.respond(id, &request, 403, "Forbidden", None, now);
            return;
        }
        if let Some(required) = request.header(HeaderName::Require) {
            // We support no extensions (§8.2.2.3).
            let required = required.to_string();
            let bytes =
                respond::simple(&request, 420, "Bad Extension", None, &self.settings, |b| {
                    b.header("Unsupported", &required)
                });
            self.send_on_tx(id, 420, bytes, now);
            return;
        }
        let uri = Uri::parse(request.request_uri()).ok();
        let request_uri_host = uri
            .as_ref()
            .and_then(|u| u.host.as_ref())
            .and_then(|h| h.ip());
        let digits = uri
            .as_ref()
            .and_then(crate::sip::uri::normalize_dialed_number);
        let number = digits
            .as_ref()
            .and_then(|d| self.numbers.iter().find(|(n, _)| n == d))
            .map(|(d, n)| (d.clone(), n.language.clone()));
        let Some((dialed, language)) = number else {
            tracing::info!(
                uri = request.request_uri(),
                "INVITE for a number that is not configured"
            );
            self.respond(id, &request, 404, "Not Found", None, now);
            return;
        };
        if self.calls.len() >= self.settings.max_calls {
            tracing::warn!(
                calls = self.calls.len(),
                "call limit reached, INVITE refused"
            );
            self.service_unavailable(id, &request, now);
            return;
        }
        let offer = match self.read_offer(&request) {
            Ok(o) => o,
            Err((status, reason)) => {
                let bytes = respond::simple(&request, status, reason, None, &self.settings, |b| {
                    if status == 415 {
                        b.header("Accept", "application/sdp")
                    } else {
                        b
                    }
                });
                self.send_on_tx(id, status, bytes, now);
                return;
            }
        };
        let Some(rtp) = self.ports.allocate() else {
            tracing::warn!("no RTP port free, INVITE refused");
            self.service_unavailable(id, &request, now);
            return;
        };
        let media_ip = self.media_address(source.local, request_uri_host);
        let mut local_media = LocalMedia::new(media_ip, rtp.rtp(), rand::random::<u32>().into());
        let (media, pending_offer, local_sdp) = match &offer {
            Some(offer) => match sdp::answer_offer(offer, &local_media) {
                Ok(n) => {
                    let text = n.local_sdp.to_string();
                    (Some(n), None, text)
                }
                Err(e) => {
                    self.ports.release(rtp);
                    tracing::info!(error = %e, "no common media, INVITE refused");
                    let bytes = respond::simple(
                        &request,
                        488,
                        "Not Acceptable Here",
                        None,
                        &self.settings,
                        |b| b.header("Warning", "304 dialgate \"Incompatible media format\""),
                    );
                    self.send_on_tx(id, 488, bytes, now);
                    return;
                }
            },
            None => {
                let o = sdp::build_offer(&local_media);
                let text = o.to_string();
                (None, Some(o), text)
            }
        };
        local_media.session_version = local_media.session_version.max(1);
        let tag = format!("{:016x}", rand::random::<u64>());
        let dialog = match Dialog::new_uas(&request, &tag) {
            Ok(d) => d,
            Err(e) => {
                self.ports.release(rtp);
                let reason = e.to_string();
                self.respond(id, &request, 400, &reason, None, now);
                return;
            }
        };
        let key = CallKey(self.next_id());
        let call_id = dialog.id.call_id.clone();
        let span = tracing::info_span!("call", call_id = %call_id, dialed = %dialed);
        let caller = request
            .from()
            .ok()
            .and_then(|f| Uri::parse(f.uri).ok())
            .and_then(|u| u.user.map(str::to_string))
            .unwrap_or_default();
        tracing::info!(parent: &span, caller = %mask(&caller), rtp_port = rtp.rtp(), "incoming call");
        let caller_info = self.caller_info(&request, caller.clone(), source.remote.ip());
        tracing::debug!(parent: &span, caller = %caller, "caller number");
        let contact_host = format_host_port(
            contact_ip(&self.settings, source.local, request_uri_host),
            source.local.port(),
        );
        let contact = match source.transport {
            Transport::Udp => format!("<sip:{dialed}@{contact_host}>"),
            Transport::Tcp => format!("<sip:{dialed}@{contact_host};transport=tcp>"),
        };
        if let Some(stx) = self.server_txs.get_mut(&id) {
            stx.call = Some(key);
        }
        self.dialogs.insert(dialog.id.clone(), key);
        let invite_id = (
            dialog.id.call_id.clone(),
            dialog.id.remote_tag.clone(),
            dialog.remote_cseq,
        );
        self.invites.insert(invite_id.clone(), key);
        let answer_at = if self.settings.answer_delay.is_zero() {
            None
        } else {
            Some(now + self.settings.answer_delay)
        };
        self.calls.insert(
            key,
            Call {
                state: CallState::Ringing,
                dialog,
                invite: request,
                invite_tx: id,
                invite_id,
                awaiting_ack: None,
                rtp,
                local_media,
                pending_offer,
                local_sdp,
                media,
                dialed,
                language,
                flow: source,
                contact,
                answer_at,
                hang_up_at: None,
                started: false,
                end_reason: None,
                span,
                caller: caller_info,
                outbound: None,
                transfer: None,
            },
        );
        match answer_at {
            None => self.answer_call(key, now),
            Some(at) => {
                if let Some(c) = self.calls.get(&key) {
                    let tag = c.dialog.id.local_tag.clone();
                    let contact = c.contact.clone();
                    let bytes = respond::simple(
                        &c.invite,
                        180,
                        "Ringing",
                        Some(&tag),
                        &self.settings,
                        |b| b.header("Contact", &contact),
                    );
                    self.send_on_tx(id, 180, bytes, now);
                }
                self.schedule_call(key, at);
            }
        }
    }

    /// Who is calling: P-Asserted-Identity only from a trunk, From user,
    /// source address.
    fn caller_info(&self, request: &Message, from_user: String, source: IpAddr) -> CallerInfo {
        let is_trunk = self.settings.trunks.iter().any(|t| t.contains(source));
        let asserted_user = if is_trunk {
            request
                .header(HeaderName::PAssertedIdentity)
                .and_then(|v| crate::sip::message::NameAddr::parse(v).ok())
                .and_then(|n| Uri::parse(n.uri).ok())
                .and_then(|u| u.user.map(str::to_string))
        } else {
            None
        };
        CallerInfo {
            asserted_user,
            from_user: (!from_user.is_empty()).then_some(from_user),
            source,
            is_trunk,
        }
    }

    /// Whether an INVITE without To tag matches a call created by another
    /// transaction with the same Call-ID, From tag and CSeq (§8.2.2.2).
    fn is_merged(&self, request: &Message) -> bool {
        let (Ok(call_id), Ok(from), Ok(cseq)) = (request.call_id(), request.from(), request.cseq())
        else {
            return false;
        };
        let Some(tag) = from.tag else {
            return false;
        };
        self.invites
            .contains_key(&(call_id.to_string(), tag.to_string(), cseq.seq))
    }

    /// The SDP offer of an INVITE, `None` when it has no body.
    fn read_offer(
        &self,
        request: &Message,
    ) -> Result<Option<SessionDescription>, (u16, &'static str)> {
        let body = request.body();
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(None);
        }
        let is_sdp = request.content_type().is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/sdp")
        });
        if !is_sdp {
            return Err((415, "Unsupported Media Type"));
        }
        SessionDescription::parse(body)
            .map(Some)
            .map_err(|_| (400, "Malformed SDP"))
    }

    /// Answers a ringing call: 200 with our SDP (§13.3.1.4).
    pub(super) fn answer_call(&mut self, key: CallKey, now: Instant) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        if c.state != CallState::Ringing {
            return;
        }
        c.state = CallState::Answered;
        c.answer_at = None;
        let limit = now + self.settings.max_call_duration;
        c.hang_up_at = Some(limit);
        c.awaiting_ack = Some(c.invite_tx);
        let id = c.invite_tx;
        let bytes = ok_with_sdp(
            &c.invite,
            &c.dialog.id.local_tag,
            &c.contact,
            &c.local_sdp,
            &self.settings,
        );
        tracing::info!(parent: &c.span, "call answered");
        self.counters.calls_answered += 1;
        self.send_on_tx(id, 200, bytes, now);
        self.schedule_call(key, limit);
    }

    /// The ACK of a 2xx (§13.3.1.4): confirms the call, stops the 2xx
    /// retransmissions, and takes the answer when we made the offer.
    pub(super) fn ack_in_dialog(&mut self, msg: &Message, now: Instant) {
        let to_tag = msg.to().ok().and_then(|t| t.tag.map(str::to_string));
        let call = to_tag.and_then(|t| self.dialog_of(msg, &t));
        let Some(key) = call else {
            self.counters.stray += 1;
            return;
        };
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(tx) = c.awaiting_ack.take() else {
            // A retransmitted ACK: nothing to do.
            return;
        };
        if let Some(crate::sip::transaction::ServerTransaction::Invite(t)) =
            self.server_txs.get_mut(&tx).map(|s| &mut s.tx)
        {
            t.on_ack(now);
        }
        self.drive_server_tx(tx, now);
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(offer) = c.pending_offer.take() {
            let answer = SessionDescription::parse(msg.body()).ok();
            match answer.map(|a| sdp::accept_answer(&offer, &a)) {
                Some(Ok(n)) => c.media = Some(n),
                _ => {
                    tracing::info!(parent: &c.span, "ACK without a usable SDP answer");
                    if c.state == CallState::Answered {
                        c.state = CallState::Confirmed;
                    }
                    self.end_call_locally(key, EndReason::BadAck, now);
                    return;
                }
            }
            if c.started {
                if let Some(m) = c.media.clone() {
                    self.events.push_back(UaEvent::MediaChanged {
                        call: key,
                        media: Box::new(m),
                    });
                }
            }
        }
        if c.state == CallState::Answered {
            c.state = CallState::Confirmed;
        }
        if !c.started {
            if let Some(media) = c.media.clone() {
                c.started = true;
                tracing::debug!(parent: &c.span, "call confirmed");
                self.events.push_back(UaEvent::CallStarted {
                    call: key,
                    call_id: c.dialog.id.call_id.clone(),
                    dialed: c.dialed.clone(),
                    language: c.language.clone(),
                    rtp: c.rtp,
                    media: Box::new(media),
                    caller: Box::new(c.caller.clone()),
                });
            }
        }
    }

    /// A request inside a dialog (§12.2.2).
    pub(super) fn in_dialog_request(
        &mut self,
        key: CallKey,
        id: TxId,
        method: &Method,
        request: Message,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let seq = request.cseq().map(|c| c.seq).unwrap_or(0);
        if let Err(e) = c.dialog.check_remote_cseq(method, seq) {
            tracing::debug!(parent: &c.span, error = %e, "request out of order");
            self.respond(id, &request, 500, "CSeq Out of Order", None, now);
            return;
        }
        match method {
            Method::Bye => {
                tracing::info!(parent: &c.span, "caller hung up");
                self.respond(id, &request, 200, "OK", None, now);
                if let Some(c) = self.calls.get(&key) {
                    if c.state == CallState::Ringing {
                        // A BYE before the answer ends the early dialog;
                        // the INVITE gets 487 (§15.1.2).
                        self.reject_invite(key, 487, "Request Terminated", now);
                    }
                }
                self.finish_call(key, EndReason::RemoteBye);
            }
            Method::Invite | Method::Update => self.offer_in_dialog(key, id, method, request, now),
            Method::Info => {
                // A DTMF body that does not parse gets 400 and no digit
                // (RFC 6086 §4.2.2 leaves bodies to the package; phones
                // resend nothing, but the fault is visible in traces).
                let content_type = request.content_type().unwrap_or("");
                if crate::dtmf::info::is_dtmf_info_content_type(content_type) {
                    if let Err(e) = crate::dtmf::info::parse_info_body(content_type, request.body())
                    {
                        tracing::debug!(parent: &c.span, error = %e, "malformed DTMF INFO");
                        self.respond(id, &request, 400, "Malformed DTMF Body", None, now);
                        return;
                    }
                }
                self.respond(id, &request, 200, "OK", None, now);
                self.events.push_back(UaEvent::Info {
                    call: key,
                    content_type: request.content_type().map(str::to_string),
                    body: request.body_bytes(),
                });
            }
            Method::Notify => self.notify_in_dialog(key, id, request, now),
            Method::Options => {
                let bytes = respond::simple(&request, 200, "OK", None, &self.settings, |b| {
                    b.header("Allow", ALLOW)
                        .header("Accept", ACCEPT)
                        .header("Supported", "")
                });
                self.send_on_tx(id, 200, bytes, now);
            }
            _ => self.method_not_allowed(id, &request, now),
        }
    }

    /// A re-INVITE or UPDATE (RFC 3264 §8, RFC 3311): answer a new offer
    /// with a new SDP version, or offer ourselves when it has none.
    fn offer_in_dialog(
        &mut self,
        key: CallKey,
        id: TxId,
        method: &Method,
        request: Message,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        if c.state == CallState::Ringing
            || c.state == CallState::Calling
            || c.state == CallState::Ending
            || c.awaiting_ack.is_some()
            || c.pending_offer.is_some()
        {
            // An offer/answer exchange is still open (§14.2, RFC 3311 §5.2).
            let status = if c.state != CallState::Confirmed && c.state != CallState::Answered {
                (500, "Server Internal Error")
            } else {
                (491, "Request Pending")
            };
            let bytes = respond::simple(&request, status.0, status.1, None, &self.settings, |b| {
                if status.0 == 500 {
                    b.header("Retry-After", 1)
                } else {
                    b
                }
            });
            self.send_on_tx(id, status.0, bytes, now);
            return;
        }
        let offer = match self.read_offer(&request) {
            Ok(o) => o,
            Err((status, reason)) => {
                self.respond(id, &request, status, reason, None, now);
                return;
            }
        };
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        c.dialog.refresh_target(&request);
        let is_invite = *method == Method::Invite;
        let mut media = c.local_media.clone();
        media.bump_version();
        let sdp_text = match &offer {
            Some(offer) => match sdp::answer_offer(offer, &media) {
                Ok(n) => {
                    c.local_media = media;
                    let text = n.local_sdp.to_string();
                    c.media = Some(n.clone());
                    if c.started {
                        self.events.push_back(UaEvent::MediaChanged {
                            call: key,
                            media: Box::new(n),
                        });
                    }
                    Some(text)
                }
                Err(e) => {
                    tracing::info!(parent: &c.span, error = %e, "re-offer refused");
                    let bytes = respond::simple(
                        &request,
                        488,
                        "Not Acceptable Here",
                        None,
                        &self.settings,
                        |b| b.header("Warning", "304 dialgate \"Incompatible media format\""),
                    );
                    self.send_on_tx(id, 488, bytes, now);
                    return;
                }
            },
            None if is_invite => {
                let o = sdp::build_offer(&media);
                c.local_media = media;
                let text = o.to_string();
                c.pending_offer = Some(o);
                Some(text)
            }
            None => None,
        };
        let tag = c.dialog.id.local_tag.clone();
        let contact = c.contact.clone();
        if is_invite {
            c.awaiting_ack = Some(id);
            if let Some(stx) = self.server_txs.get_mut(&id) {
                stx.call = Some(key);
            }
        }
        let bytes = match &sdp_text {
            Some(text) => ok_with_sdp(&request, &tag, &contact, text, &self.settings),
            None => respond::simple(&request, 200, "OK", None, &self.settings, |b| {
                b.header("Contact", &contact).header("Allow", ALLOW)
            }),
        };
        self.send_on_tx(id, 200, bytes, now);
    }
}

/// 200 OK to an INVITE or UPDATE with our SDP, Contact, Allow, Supported
/// and the Record-Route of the request (§12.1.1).
fn ok_with_sdp(
    request: &Message,
    tag: &str,
    contact: &str,
    sdp: &str,
    settings: &super::UaSettings,
) -> bytes::Bytes {
    let record_routes: Vec<&str> = request.header_values(HeaderName::RecordRoute).collect();
    respond::simple(request, 200, "OK", Some(tag), settings, |mut b| {
        for rr in record_routes {
            b = b.header("Record-Route", rr);
        }
        b.header("Contact", contact)
            .header("Allow", ALLOW)
            .header("Supported", "")
            .body("application/sdp", sdp.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn caller_numbers_are_masked() {
        assert_eq!(mask("14255550123"), "*********23");
        assert_eq!(mask("+1"), "+1");
        assert_eq!(mask(""), "");
    }
}

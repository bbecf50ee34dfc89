//! Blind transfer of a caller to a meeting bridge (RFC 3515): REFER in
//! the caller's dialog, the implicit `refer` subscription's NOTIFYs with
//! `message/sipfrag` bodies (RFC 3420) reporting the progress, and our
//! BYE once the transfer succeeded.
//!
//! The outcome must arrive within the transfer timeout, watched here with
//! the injected clock.

use std::time::{Duration, Instant};

use thiserror::Error;

use super::call::CallState;
use super::respond;
use super::{CallKey, EndReason, Purpose, TxId, UaEvent, UserAgent};
use crate::sip::message::{HeaderName, Message, Method};
use crate::sip::transaction::{ClientTransactionKey, TransactionEvent};

/// Why a REFER could not be sent.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReferError {
    /// No such call.
    #[error("no such call")]
    NoSuchCall,
    /// The call is not confirmed (ringing, or ending).
    #[error("the call is not established")]
    NotEstablished,
    /// A transfer of this call is already in progress.
    #[error("a transfer is already in progress")]
    InProgress,
    /// The Refer-To target holds characters that cannot go in a header.
    #[error("unusable Refer-To target")]
    BadTarget,
}

/// Why a transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferFailure {
    /// The caller's side refused the REFER with this status.
    Refused(u16),
    /// The REFER got no response (Timer F) or the transport failed.
    NoResponse,
    /// A NOTIFY reported this final status (≥300) of the transfer.
    Status(u16),
    /// The subscription ended without a final status.
    SubscriptionEnded,
    /// No final status within the transfer timeout.
    Timeout,
}

/// A transfer in progress.
#[derive(Clone, Debug)]
pub(super) struct Transfer {
    pub(super) deadline: Instant,
    /// The REFER was accepted (2xx).
    pub(super) accepted: bool,
}

/// The status code of a sipfrag body's status line (RFC 3420,
/// RFC 3515 §2.4.5): `SIP/2.0 200 OK`.
pub(super) fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let line = body.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim();
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..700).contains(c))
}

impl UserAgent {
    /// Transfers the caller of `call` to `refer_to` (a SIP URI) with REFER
    /// (RFC 3515 §2.4.1), adding `Referred-By` when given (RFC 3892). Then
    /// expect [`UaEvent::TransferProgress`], and one of
    /// [`UaEvent::TransferSucceeded`] (our BYE follows) or
    /// [`UaEvent::TransferFailed`] within `timeout`.
    pub fn refer(
        &mut self,
        call: CallKey,
        refer_to: &str,
        referred_by: Option<&str>,
        timeout: Duration,
        now: Instant,
    ) -> Result<(), ReferError> {
        let bad = |s: &str| s.is_empty() || s.chars().any(|c| c.is_control() || c == '>');
        if bad(refer_to) || referred_by.is_some_and(bad) {
            return Err(ReferError::BadTarget);
        }
        let ua = self.settings.user_agent.clone();
        let c = self.calls.get_mut(&call).ok_or(ReferError::NoSuchCall)?;
        if !matches!(c.state, CallState::Confirmed) {
            return Err(ReferError::NotEstablished);
        }
        if c.transfer.is_some() {
            return Err(ReferError::InProgress);
        }
        let flow = c.request_flow();
        let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
        let sent_by = respond::sent_by(&self.settings, flow);
        let contact = c.contact.clone();
        let bytes = c.dialog.build_request_with(
            Method::Refer,
            flow.transport.via_token(),
            &sent_by,
            &branch,
            &ua,
            |b| {
                let b = b
                    .header("Refer-To", format_args!("<{refer_to}>"))
                    .header("Contact", &contact);
                match referred_by {
                    Some(r) => b.header("Referred-By", format_args!("<{r}>")),
                    None => b,
                }
            },
        );
        tracing::info!(parent: &c.span, "transferring the caller with REFER");
        let deadline = now + timeout;
        c.transfer = Some(Transfer {
            deadline,
            accepted: false,
        });
        let Ok(key) = ClientTransactionKey::new(&branch, "REFER") else {
            return Err(ReferError::BadTarget);
        };
        self.schedule_call(call, deadline);
        self.start_client_tx(bytes, key, flow, call, Purpose::Refer, now);
        Ok(())
    }

    /// The REFER's transaction reported (RFC 3515 §2.4.2).
    pub(super) fn refer_event(&mut self, call: CallKey, ev: TransactionEvent, _now: Instant) {
        let Some(t) = self.calls.get_mut(&call).and_then(|c| c.transfer.as_mut()) else {
            return;
        };
        match ev {
            TransactionEvent::Final(s) if (200..300).contains(&s) => t.accepted = true,
            TransactionEvent::Final(s) => self.transfer_failed(call, TransferFailure::Refused(s)),
            TransactionEvent::Timeout | TransactionEvent::TransportError => {
                self.transfer_failed(call, TransferFailure::NoResponse)
            }
            _ => {}
        }
    }

    /// The transfer timeout fired.
    pub(super) fn transfer_timeout(&mut self, call: CallKey) {
        if let Some(c) = self.calls.get(&call) {
            tracing::info!(parent: &c.span, "transfer outcome not reported in time");
        }
        self.transfer_failed(call, TransferFailure::Timeout);
    }

    fn transfer_failed(&mut self, call: CallKey, failure: TransferFailure) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.transfer.take().is_some() {
            tracing::info!(parent: &c.span, ?failure, "transfer failed");
            self.events
                .push_back(UaEvent::TransferFailed { call, failure });
        }
    }

    /// A NOTIFY in a call's dialog (RFC 3515 §2.4.4, RFC 6665 §4.1.3):
    /// 200, then the sipfrag status decides.
    pub(super) fn notify_in_dialog(
        &mut self,
        call: CallKey,
        id: TxId,
        request: Message,
        now: Instant,
    ) {
        let event = request
            .header(HeaderName::Event)
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if !event.eq_ignore_ascii_case("refer") {
            self.respond(id, &request, 489, "Bad Event", None, now);
            return;
        }
        self.respond(id, &request, 200, "OK", None, now);
        let terminated = request
            .header(HeaderName::SubscriptionState)
            .is_some_and(|s| {
                s.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("terminated")
            });
        let status = sipfrag_status(request.body());
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.transfer.is_none() {
            // A late NOTIFY after the outcome: acknowledged, nothing more.
            return;
        }
        match status {
            Some(s @ 100..=199) => {
                self.events
                    .push_back(UaEvent::TransferProgress { call, status: s });
                if terminated {
                    self.transfer_failed(call, TransferFailure::SubscriptionEnded);
                }
            }
            Some(200..=299) => {
                c.transfer = None;
                tracing::info!(parent: &c.span, "transfer succeeded");
                self.events.push_back(UaEvent::TransferSucceeded { call });
                self.end_call_locally(call, EndReason::Transferred, now);
            }
            Some(s) => self.transfer_failed(call, TransferFailure::Status(s)),
            None if terminated => self.transfer_failed(call, TransferFailure::SubscriptionEnded),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sipfrag_status;

    #[test]
    fn sipfrag_status_lines() {
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying\r\n"), Some(100));
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some(200));
        assert_eq!(
            sipfrag_status(b"SIP/2.0 503 Service Unavailable\r\nX: y\r\n"),
            Some(503)
        );
        assert_eq!(sipfrag_status(b"SIP/2.0 99 x"), None);
        assert_eq!(sipfrag_status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(sipfrag_status(b""), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
    }
}

//! Dialogs (RFC 3261 §12) as seen by the gateway: the UAS of a caller's
//! INVITE, or the UAC of a call it places to a meeting bridge.

use bytes::Bytes;
use thiserror::Error;

use crate::sip::message::{HeaderError, Message, Method, RequestBuilder};

/// Identifies a dialog (§12): Call-ID, local tag, remote tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (the To tag of the INVITE's responses).
    pub local_tag: String,
    /// The caller's tag (the From tag).
    pub remote_tag: String,
}

/// Why a dialog could not be created from a request.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DialogError {
    /// A header needed for the dialog state is missing or malformed.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The From header has no tag (required by §8.1.1.3).
    #[error("Missing From tag")]
    MissingFromTag,
    /// The 2xx to our INVITE has no To tag (§12.1.2).
    #[error("Missing To tag")]
    MissingToTag,
    /// The INVITE has no usable Contact (§8.1.1.8).
    #[error("Missing Contact")]
    MissingContact,
}

/// A request's CSeq was lower than the last one seen (§12.2.2): answer 500.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("CSeq {got} lower than {last}")]
pub struct CSeqOutOfOrder {
    /// The CSeq received.
    pub got: u32,
    /// The highest CSeq seen before.
    pub last: u32,
}

/// UAS-side dialog state (§12.1.1).
#[derive(Clone, Debug)]
pub struct Dialog {
    /// The dialog id.
    pub id: DialogId,
    /// Our URI (the To URI of the INVITE).
    pub local_uri: String,
    /// The caller's URI (the From URI).
    pub remote_uri: String,
    /// Where in-dialog requests go: the caller's Contact URI.
    pub remote_target: String,
    /// Record-Route values of the INVITE, in order (§12.1.1: the UAS keeps
    /// them as received).
    pub route_set: Vec<String>,
    /// Last CSeq we used; our first request uses one more.
    pub local_cseq: u32,
    /// Highest CSeq received from the caller.
    pub remote_cseq: u32,
}

impl Dialog {
    /// Builds the dialog state from an INVITE we answer with `local_tag`
    /// (§12.1.1).
    pub fn new_uas(invite: &Message, local_tag: &str) -> Result<Dialog, DialogError> {
        let from = invite.from()?;
        let to = invite.to()?;
        let call_id = invite.call_id()?;
        let cseq = invite.cseq()?;
        let remote_tag = from.tag.ok_or(DialogError::MissingFromTag)?;
        let remote_target = match invite.contact()? {
            Some(crate::sip::message::Contact::Addr(a)) => a.uri.to_string(),
            _ => return Err(DialogError::MissingContact),
        };
        let mut route_set = Vec::new();
        for rr in invite.record_routes() {
            let rr = rr?;
            route_set.push(format_name_addr(rr.uri, rr.params.as_str()));
        }
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: remote_tag.to_string(),
            },
            local_uri: to.uri.to_string(),
            remote_uri: from.uri.to_string(),
            remote_target,
            route_set,
            local_cseq: 0,
            remote_cseq: cseq.seq,
        })
    }

    /// Builds the dialog state of a call we placed from its 2xx (§12.1.2):
    /// the remote target is the 2xx's Contact, the route set its
    /// Record-Route in reverse, the remote tag its To tag.
    pub fn new_uac(
        invite_cseq: u32,
        local_uri: &str,
        local_tag: &str,
        response: &Message,
    ) -> Result<Dialog, DialogError> {
        let to = response.to()?;
        let call_id = response.call_id()?;
        let remote_tag = to.tag.ok_or(DialogError::MissingToTag)?;
        let remote_target = match response.contact()? {
            Some(crate::sip::message::Contact::Addr(a)) => a.uri.to_string(),
            _ => return Err(DialogError::MissingContact),
        };
        let mut route_set = Vec::new();
        for rr in response.record_routes() {
            let rr = rr?;
            route_set.push(format_name_addr(rr.uri, rr.params.as_str()));
        }
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: remote_tag.to_string(),
            },
            local_uri: local_uri.to_string(),
            remote_uri: to.uri.to_string(),
            remote_target,
            route_set,
            local_cseq: invite_cseq,
            remote_cseq: 0,
        })
    }

    /// Checks and records the CSeq of an in-dialog request (§12.2.2). ACK
    /// and CANCEL carry the CSeq of the request they belong to and are not
    /// checked.
    pub fn check_remote_cseq(&mut self, method: &Method, seq: u32) -> Result<(), CSeqOutOfOrder> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if seq < self.remote_cseq {
            return Err(CSeqOutOfOrder {
                got: seq,
                last: self.remote_cseq,
            });
        }
        self.remote_cseq = seq;
        Ok(())
    }

    /// Updates the remote target from a target refresh request's Contact
    /// (§12.2.2, re-INVITE and UPDATE).
    pub fn refresh_target(&mut self, request: &Message) {
        if let Ok(Some(crate::sip::message::Contact::Addr(a))) = request.contact() {
            self.remote_target = a.uri.to_string();
        }
    }

    /// Builds an in-dialog request (§12.2.1.1): Request-URI is the remote
    /// target (loose routing), Route carries the route set, From/To carry
    /// our and their tags, CSeq is one more than the last we used.
    pub fn build_request(
        &mut self,
        method: Method,
        via_transport: &str,
        sent_by: &str,
        branch: &str,
        user_agent: &str,
    ) -> Bytes {
        self.build_request_with(method, via_transport, sent_by, branch, user_agent, |b| b)
    }

    /// [`Dialog::build_request`] with more headers or a body added by
    /// `extra` (e.g. Refer-To and Contact of a REFER, RFC 3515 §2.4.1).
    pub fn build_request_with<'a>(
        &mut self,
        method: Method,
        via_transport: &str,
        sent_by: &str,
        branch: &str,
        user_agent: &str,
        extra: impl FnOnce(RequestBuilder<'a>) -> RequestBuilder<'a>,
    ) -> Bytes {
        self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
        let seq = self.local_cseq;
        self.request_with_cseq(
            method,
            seq,
            via_transport,
            sent_by,
            branch,
            user_agent,
            extra,
        )
    }

    /// The ACK of a 2xx to our INVITE (§13.2.2.4): like any in-dialog
    /// request, but with the INVITE's CSeq number.
    pub fn build_ack(
        &self,
        invite_cseq: u32,
        via_transport: &str,
        sent_by: &str,
        branch: &str,
        user_agent: &str,
    ) -> Bytes {
        self.request_with_cseq(
            Method::Ack,
            invite_cseq,
            via_transport,
            sent_by,
            branch,
            user_agent,
            |b| b,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn request_with_cseq<'a>(
        &self,
        method: Method,
        seq: u32,
        via_transport: &str,
        sent_by: &str,
        branch: &str,
        user_agent: &str,
        extra: impl FnOnce(RequestBuilder<'a>) -> RequestBuilder<'a>,
    ) -> Bytes {
        let cseq = format!("{} {}", seq, method);
        let mut builder =
            RequestBuilder::new(method, &self.remote_target).via(via_transport, sent_by, branch);
        for route in &self.route_set {
            builder = builder.header("Route", route);
        }
        let builder = builder
            .header(
                "From",
                format_args!("<{}>;tag={}", self.local_uri, self.id.local_tag),
            )
            .header(
                "To",
                format_args!("<{}>;tag={}", self.remote_uri, self.id.remote_tag),
            )
            .header("Call-ID", &self.id.call_id)
            .header("CSeq", cseq)
            .header("User-Agent", user_agent);
        extra(builder).build()
    }

    /// The URI the next hop of an in-dialog request is taken from: the
    /// first route, else the remote target (§12.2.1.1, §8.1.2).
    pub fn next_hop_uri(&self) -> &str {
        match self.route_set.first() {
            Some(r) => r
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or(r),
            None => &self.remote_target,
        }
    }
}

fn format_name_addr(uri: &str, params: &str) -> String {
    let params = params.trim();
    if params.is_empty() {
        format!("<{uri}>")
    } else if params.starts_with(';') {
        format!("<{uri}>{params}")
    } else {
        format!("<{uri}>;{params}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn invite() -> Message {
        let text = "INVITE sip:15550100@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-1\r\n\
Record-Route: <sip:proxy1.example.net;lr>, <sip:proxy2.example.net;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"Caller\" <sip:+14255550123@carrier.example.net>;tag=abc\r\n\
To: <sip:15550100@192.0.2.1>\r\n\
Call-ID: dlg-1@carrier\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:caller@192.0.2.20:5060>\r\n\
Content-Length: 0\r\n\r\n";
        Message::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn uas_dialog_takes_tags_route_set_and_target_from_the_invite() {
        let d = Dialog::new_uas(&invite(), "local1").unwrap();
        assert_eq!(d.id.call_id, "dlg-1@carrier");
        assert_eq!(d.id.local_tag, "local1");
        assert_eq!(d.id.remote_tag, "abc");
        assert_eq!(d.remote_target, "sip:caller@192.0.2.20:5060");
        assert_eq!(d.route_set.len(), 2);
        assert!(d.route_set[0].contains("proxy1"));
        assert_eq!(d.next_hop_uri(), "sip:proxy1.example.net;lr");
        assert_eq!(d.remote_cseq, 7);
    }

    #[test]
    fn lower_cseq_is_refused_but_ack_and_cancel_are_not_checked() {
        let mut d = Dialog::new_uas(&invite(), "l").unwrap();
        assert!(d.check_remote_cseq(&Method::Bye, 8).is_ok());
        assert_eq!(
            d.check_remote_cseq(&Method::Info, 6),
            Err(CSeqOutOfOrder { got: 6, last: 8 })
        );
        assert!(d.check_remote_cseq(&Method::Ack, 7).is_ok());
        assert!(d.check_remote_cseq(&Method::Cancel, 1).is_ok());
    }

    #[test]
    fn requests_carry_route_set_tags_and_rising_cseq() {
        let mut d = Dialog::new_uas(&invite(), "local1").unwrap();
        let bye = d.build_request(
            Method::Bye,
            "UDP",
            "192.0.2.1:5060",
            "z9hG4bK-x",
            "dialgate",
        );
        let bye = Message::parse(bye).unwrap();
        assert_eq!(bye.request_uri(), "sip:caller@192.0.2.20:5060");
        assert_eq!(bye.routes().count(), 2);
        assert_eq!(bye.from().unwrap().tag, Some("local1"));
        assert_eq!(bye.to().unwrap().tag, Some("abc"));
        assert_eq!(bye.cseq().unwrap().seq, 1);
        let again = d.build_request(
            Method::Bye,
            "UDP",
            "192.0.2.1:5060",
            "z9hG4bK-y",
            "dialgate",
        );
        assert_eq!(Message::parse(again).unwrap().cseq().unwrap().seq, 2);
    }

    #[test]
    fn a_missing_from_tag_or_contact_is_an_error() {
        let text = String::from_utf8(invite().as_bytes().to_vec()).unwrap();
        let no_tag = text.replace(";tag=abc", "");
        let m = Message::parse(Bytes::from(no_tag)).unwrap();
        assert_eq!(
            Dialog::new_uas(&m, "l").unwrap_err(),
            DialogError::MissingFromTag
        );
        let no_contact = text.replace("Contact: <sip:caller@192.0.2.20:5060>\r\n", "");
        let m = Message::parse(Bytes::from(no_contact)).unwrap();
        assert_eq!(
            Dialog::new_uas(&m, "l").unwrap_err(),
            DialogError::MissingContact
        );
    }
}

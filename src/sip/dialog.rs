//! Dialogs (RFC 3261 §12) as seen by the gateway, which is always the UAS
//! of the INVITE that creates them.

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
        self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
        let cseq = format!("{} {}", self.local_cseq, method);
        let mut builder =
            RequestBuilder::new(method, &self.remote_target).via(via_transport, sent_by, branch);
        for route in &self.route_set {
            builder = builder.header("Route", route);
        }
        builder
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
            .header("User-Agent", user_agent)
            .build()
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

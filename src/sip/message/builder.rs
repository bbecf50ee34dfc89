//! Serialisers for responses and requests (RFC 3261 §7, §8.2.6).

use super::{HeaderName, Message, Method};
use bytes::Bytes;
use std::fmt;

/// Builds a response to a request: copies Via (in order), From, To,
/// Call-ID and CSeq (RFC 3261 §8.2.6.2), optionally adds a To tag.
#[derive(Debug)]
pub struct ResponseBuilder<'a> {
    request: &'a Message,
    status: u16,
    reason: &'a str,
    to_tag: Option<&'a str>,
    extra: Vec<u8>,
    body: Option<(&'a str, &'a [u8])>,
}

impl<'a> ResponseBuilder<'a> {
    /// Starts a response with this status and reason phrase.
    pub fn for_request(request: &'a Message, status: u16, reason: &'a str) -> Self {
        ResponseBuilder {
            request,
            status,
            reason,
            to_tag: None,
            extra: Vec::new(),
            body: None,
        }
    }

    /// Adds a To tag (§8.2.6.2) when the request's To has none.
    pub fn to_tag(mut self, tag: &'a str) -> Self {
        self.to_tag = Some(tag);
        self
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: impl fmt::Display) -> Self {
        let _ = (name, value, &mut self.extra);
        todo!()
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Writes the response; Content-Length is always written.
    pub fn build(self) -> Bytes {
        let _ = (self.request, self.status, self.reason, HeaderName::Via);
        todo!()
    }
}

/// Builds a request.
#[derive(Debug)]
pub struct RequestBuilder<'a> {
    method: Method,
    head: Vec<u8>,
    max_forwards: u8,
    body: Option<(&'a str, &'a [u8])>,
}

impl<'a> RequestBuilder<'a> {
    /// Starts a request line `METHOD uri SIP/2.0`.
    pub fn new(method: Method, request_uri: &str) -> Self {
        let _ = request_uri;
        RequestBuilder {
            method,
            head: Vec::new(),
            max_forwards: 70,
            body: None,
        }
    }

    /// Adds `Via: SIP/2.0/<transport> <sent_by>;branch=<branch>;rport`.
    pub fn via(self, transport: &str, sent_by: &str, branch: &str) -> Self {
        let _ = (transport, sent_by, branch);
        todo!()
    }

    /// Sets Max-Forwards (default 70).
    pub fn max_forwards(mut self, hops: u8) -> Self {
        self.max_forwards = hops;
        self
    }

    /// Adds a header line.
    pub fn header(self, name: &str, value: impl fmt::Display) -> Self {
        let _ = (name, value);
        todo!()
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Writes the request; Max-Forwards and Content-Length are always written.
    pub fn build(self) -> Bytes {
        let _ = self.method;
        todo!()
    }
}

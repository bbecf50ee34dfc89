//! Serialisers for responses and requests (RFC 3261 §7, §8.2.6).
//!
//! Both builders size the output once and write it into one `BytesMut`.
//! Line breaks inside supplied names and values are replaced by spaces so a
//! value cannot inject header lines.

use super::{list_item_end, HeaderName, Message, Method, Rport, Via};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

/// Builds a response to a request: copies Via (in order), From, To,
/// Call-ID and CSeq (RFC 3261 §8.2.6.2), optionally adds a To tag.
#[derive(Debug)]
pub struct ResponseBuilder<'a> {
    request: &'a Message,
    status: u16,
    reason: &'a str,
    to_tag: Option<&'a str>,
    source: Option<SocketAddr>,
    extra: String,
    body: Option<(&'a str, &'a [u8])>,
}

/// Headers copied from the request into every response (§8.2.6.2).
const COPIED: [HeaderName; 5] = [
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
];

impl<'a> ResponseBuilder<'a> {
    /// Starts a response with this status and reason phrase.
    pub fn for_request(request: &'a Message, status: u16, reason: &'a str) -> Self {
        ResponseBuilder {
            request,
            status,
            reason,
            to_tag: None,
            source: None,
            extra: String::new(),
            body: None,
        }
    }

    /// Adds a To tag (§8.2.6.2) when the request's To has none.
    pub fn to_tag(mut self, tag: &'a str) -> Self {
        self.to_tag = Some(tag);
        self
    }

    /// Records where the request came from, so the top Via gets
    /// `received` (RFC 3261 §18.2.1: when the sent-by differs from the
    /// source address) and a requested `rport` gets its value (RFC 3581 §4,
    /// which then always adds `received`). Without it the Via is copied as is.
    pub fn received_from(mut self, source: SocketAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: impl fmt::Display) -> Self {
        push_header(&mut self.extra, name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Only add a tag when the To has none (and parses at all).
    fn effective_to_tag(&self) -> Option<&'a str> {
        self.to_tag
            .filter(|_| self.request.to().is_ok_and(|to| to.tag.is_none()))
    }

    fn copied(&self) -> impl Iterator<Item = (HeaderName, &'a [u8])> + 'a {
        let request = self.request;
        request
            .headers
            .iter()
            .filter(|h| COPIED.contains(&h.name))
            .map(move |h| {
                let value = request.buf.get(h.value_span.range()).unwrap_or_default();
                (h.name, value)
            })
    }

    /// Upper bound of the encoded size, so `build` allocates once.
    fn size_hint(&self, to_tag: Option<&str>) -> usize {
        let mut len = 8 + 5 + 1 + self.reason.len() + 2; // "SIP/2.0 " status " " reason CRLF
        for (name, value) in self.copied() {
            len += name.as_str().len() + 2 + value.len() + 2;
        }
        len += to_tag.map_or(0, |t| 5 + t.len());
        // ";received=" + an IPv6 address + ";rport=" + a port.
        len += self.source.map_or(0, |_| 10 + 39 + 7 + 5);
        len += self.extra.len();
        len += self.body.map_or(0, |(ct, b)| 16 + ct.len() + b.len());
        len + 16 + 20 + 4
    }

    /// Writes the response; Content-Length is always written.
    pub fn build(self) -> Bytes {
        let to_tag = self.effective_to_tag();
        let mut out = BytesMut::with_capacity(self.size_hint(to_tag));
        out.put_slice(b"SIP/2.0 ");
        put_decimal(&mut out, u64::from(self.status));
        out.put_u8(b' ');
        put_sanitised(&mut out, self.reason);
        out.put_slice(b"\r\n");
        let mut top_via = true;
        for (name, value) in self.copied() {
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            match self.source {
                Some(source) if name == HeaderName::Via && top_via => {
                    put_top_via(&mut out, value, source);
                }
                _ => out.put_slice(value),
            }
            top_via &= name != HeaderName::Via;
            if name == HeaderName::To {
                if let Some(tag) = to_tag {
                    out.put_slice(b";tag=");
                    put_sanitised(&mut out, tag);
                }
            }
            out.put_slice(b"\r\n");
        }
        out.put_slice(self.extra.as_bytes());
        finish(&mut out, self.body);
        out.freeze()
    }
}

/// Builds a request.
#[derive(Debug)]
pub struct RequestBuilder<'a> {
    head: String,
    max_forwards: u8,
    body: Option<(&'a str, &'a [u8])>,
}

impl<'a> RequestBuilder<'a> {
    /// Starts a request line `METHOD uri SIP/2.0`.
    pub fn new(method: Method, request_uri: &str) -> Self {
        let mut head = String::with_capacity(512);
        head.push_str(method.as_str());
        head.push(' ');
        push_sanitised(&mut head, request_uri);
        head.push_str(" SIP/2.0\r\n");
        RequestBuilder {
            head,
            max_forwards: 70,
            body: None,
        }
    }

    /// Adds `Via: SIP/2.0/<transport> <sent_by>;branch=<branch>;rport`
    /// (RFC 3261 §8.1.1.7, RFC 3581).
    pub fn via(mut self, transport: &str, sent_by: &str, branch: &str) -> Self {
        push_header(
            &mut self.head,
            "Via",
            format_args!("SIP/2.0/{transport} {sent_by};branch={branch};rport"),
        );
        self
    }

    /// Sets Max-Forwards (default 70).
    pub fn max_forwards(mut self, hops: u8) -> Self {
        self.max_forwards = hops;
        self
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: impl fmt::Display) -> Self {
        push_header(&mut self.head, name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Writes the request; Max-Forwards and Content-Length are always written.
    pub fn build(self) -> Bytes {
        let body_len = self.body.map_or(0, |(ct, b)| 16 + ct.len() + b.len());
        let mut out = BytesMut::with_capacity(self.head.len() + 20 + 40 + body_len);
        out.put_slice(self.head.as_bytes());
        out.put_slice(b"Max-Forwards: ");
        put_decimal(&mut out, u64::from(self.max_forwards));
        out.put_slice(b"\r\n");
        finish(&mut out, self.body);
        out.freeze()
    }
}

/// Writes the first Via line with `received`/`rport` filled in (RFC 3261
/// §18.2.1, RFC 3581 §4); a Via that does not parse is copied unchanged.
fn put_top_via(out: &mut BytesMut, line: &[u8], source: SocketAddr) {
    let Ok(line) = std::str::from_utf8(line) else {
        out.put_slice(line);
        return;
    };
    let end = list_item_end(line).unwrap_or(line.len());
    let (first, rest) = line.split_at(end);
    let Ok(via) = Via::parse(first) else {
        out.put_slice(line.as_bytes());
        return;
    };
    let params_at = first.find(';').unwrap_or(first.len());
    out.put_slice(first[..params_at].trim_ascii_end().as_bytes());
    for (name, value) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        out.put_u8(b';');
        out.put_slice(name.as_bytes());
        if let Some(v) = value {
            out.put_u8(b'=');
            out.put_slice(v.as_bytes());
        }
    }
    let rport = via.rport != Rport::Absent;
    if rport || via.host.ip() != Some(source.ip()) {
        // `received` carries a bare address, IPv6 included (§20.42 grammar).
        let mut ip = String::with_capacity(39);
        let _ = write!(ip, "{}", source.ip());
        out.put_slice(b";received=");
        out.put_slice(ip.as_bytes());
    }
    if rport {
        out.put_slice(b";rport=");
        put_decimal(out, u64::from(source.port()));
    }
    out.put_slice(rest.as_bytes());
}

/// Content-Type (with a body), Content-Length, blank line, body.
fn finish(out: &mut BytesMut, body: Option<(&str, &[u8])>) {
    let bytes = body.map_or(&[][..], |(_, b)| b);
    if let Some((content_type, _)) = body {
        out.put_slice(b"Content-Type: ");
        put_sanitised(out, content_type);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Length: ");
    put_decimal(out, bytes.len() as u64);
    out.put_slice(b"\r\n\r\n");
    out.put_slice(bytes);
}

fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

fn put_sanitised(out: &mut BytesMut, s: &str) {
    for chunk in s.split(['\r', '\n']).enumerate() {
        if chunk.0 > 0 {
            out.put_u8(b' ');
        }
        out.put_slice(chunk.1.as_bytes());
    }
}

fn push_sanitised(out: &mut String, s: &str) {
    out.extend(
        s.chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
    );
}

/// Appends `name: value\r\n`, blanking any line break in name or value.
fn push_header(out: &mut String, name: &str, value: impl fmt::Display) {
    push_sanitised(out, name);
    out.push_str(": ");
    let start = out.len();
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
    if out[start..].contains(['\r', '\n']) {
        let cleaned: String = out[start..]
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        out.truncate(start);
        out.push_str(&cleaned);
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::tests::INVITE;
    use super::*;

    #[test]
    fn response_copies_headers_and_adds_tag() {
        let req = Message::parse(Bytes::from_static(INVITE.as_bytes())).unwrap();
        let sdp = b"v=0\r\n";
        let out = ResponseBuilder::for_request(&req, 200, "OK")
            .to_tag("as83kd")
            .header("Contact", "<sip:gw@192.0.2.1>")
            .header("Allow", format_args!("{}, {}", "INVITE", "BYE"))
            .body("application/sdp", sdp)
            .build();
        let resp = Message::parse(out.clone()).unwrap();
        assert_eq!(resp.status(), Some(200));
        assert_eq!(resp.reason(), Some("OK"));
        let vias: Vec<_> = resp.headers(HeaderName::Via).collect();
        let req_vias: Vec<_> = req.headers(HeaderName::Via).collect();
        assert_eq!(vias, req_vias);
        assert_eq!(resp.from().unwrap(), req.from().unwrap());
        assert_eq!(resp.to().unwrap().tag, Some("as83kd"));
        assert_eq!(resp.to().unwrap().uri, req.to().unwrap().uri);
        assert_eq!(resp.call_id(), req.call_id());
        assert_eq!(resp.cseq(), req.cseq());
        assert_eq!(resp.header(HeaderName::Allow), Some("INVITE, BYE"));
        assert_eq!(resp.content_type(), Some("application/sdp"));
        assert_eq!(resp.content_length().unwrap(), Some(5));
        assert_eq!(resp.body(), sdp);
        // No header from the request beyond the copied ones.
        assert!(resp.header(HeaderName::MaxForwards).is_none());
        let again = ResponseBuilder::for_request(&req, 200, "OK")
            .to_tag("as83kd")
            .header("Contact", "<sip:gw@192.0.2.1>")
            .header("Allow", format_args!("{}, {}", "INVITE", "BYE"))
            .body("application/sdp", sdp);
        assert!(again.size_hint(again.effective_to_tag()) >= out.len());
    }

    #[test]
    fn response_keeps_existing_to_tag() {
        let req = Message::parse(Bytes::from_static(
            b"BYE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
              From: <sip:b@h>;tag=f\r\nTo: <sip:a@h>;tag=t\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n",
        ))
        .unwrap();
        let out = ResponseBuilder::for_request(&req, 200, "OK")
            .to_tag("other")
            .build();
        let resp = Message::parse(out).unwrap();
        assert_eq!(resp.to().unwrap().tag, Some("t"));
        assert_eq!(resp.content_length().unwrap(), Some(0));
        assert!(resp.body().is_empty());
    }

    #[test]
    fn response_to_compact_request_uses_full_names() {
        let req = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
              f: <sip:b@h>;tag=f\r\nt: <sip:a@h>\r\ni: c\r\nCSeq: 2 OPTIONS\r\n\r\n",
        ))
        .unwrap();
        let out = ResponseBuilder::for_request(&req, 400, "Bad CSeq").build();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Bad CSeq\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"));
        assert!(text.contains("\r\nCall-ID: c\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn header_injection_is_blanked() {
        let req = Message::parse(Bytes::from_static(INVITE.as_bytes())).unwrap();
        let out = ResponseBuilder::for_request(&req, 486, "Busy\r\nX: y")
            .header("Warning", "399 gw \"a\r\nInjected: 1\"")
            .build();
        let resp = Message::parse(out).unwrap();
        assert!(resp.header_named("Injected").is_none());
        assert!(resp.header_named("X").is_none());
        assert_eq!(resp.reason(), Some("Busy  X: y"));
    }

    #[test]
    fn received_and_rport() {
        let req = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@h SIP/2.0\r\n\
              Via: SIP/2.0/UDP pc.example.com:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p;branch=z9hG4bK0\r\n\
              Via: SIP/2.0/UDP q;branch=z9hG4bKq\r\n\
              f: <sip:b@h>;tag=f\r\nt: <sip:a@h>\r\ni: c\r\nCSeq: 2 OPTIONS\r\n\r\n",
        ))
        .unwrap();
        let out = ResponseBuilder::for_request(&req, 200, "OK")
            .received_from("203.0.113.9:40123".parse().unwrap())
            .build();
        let resp = Message::parse(out).unwrap();
        let vias: Vec<_> = resp.vias().collect::<Result<_, _>>().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0].branch, Some("z9hG4bK1"));
        assert_eq!(vias[0].received, Some("203.0.113.9"));
        assert_eq!(vias[0].rport, Rport::Value(40123));
        assert_eq!(vias[0].port, Some(5060));
        assert_eq!(vias[1].branch, Some("z9hG4bK0"));
        assert_eq!(vias[1].received, None);
        assert_eq!(vias[2].received, None);

        // Same address, no rport: nothing to add (§18.2.1).
        let req = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1\r\n\r\n",
        ))
        .unwrap();
        let same = ResponseBuilder::for_request(&req, 200, "OK")
            .received_from("[2001:db8::1]:5060".parse().unwrap())
            .build();
        let resp = Message::parse(same).unwrap();
        assert_eq!(resp.header(HeaderName::Via), req.header(HeaderName::Via));
        let other = ResponseBuilder::for_request(&req, 200, "OK")
            .received_from("[2001:db8::2]:5062".parse().unwrap())
            .build();
        let resp = Message::parse(other).unwrap();
        assert_eq!(resp.via().unwrap().received, Some("2001:db8::2"));
        assert_eq!(resp.via().unwrap().rport, Rport::Absent);
    }

    #[test]
    fn request_builder() {
        let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
        let out = RequestBuilder::new(Method::Invite, "sip:bridge@example.com")
            .via("UDP", "192.0.2.1:5060", "z9hG4bKabc")
            .header("From", "<sip:gw@example.com>;tag=1")
            .header("To", "<sip:bridge@example.com>")
            .header("Call-ID", "xyz")
            .header("CSeq", format_args!("{} {}", 1, Method::Invite))
            .max_forwards(69)
            .body("application/sdp", sdp)
            .build();
        let m = Message::parse(out).unwrap();
        m.validate_request().unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.request_uri(), "sip:bridge@example.com");
        assert_eq!(m.via().unwrap().branch, Some("z9hG4bKabc"));
        assert_eq!(m.via().unwrap().rport, super::super::Rport::Requested);
        assert_eq!(m.max_forwards().unwrap(), Some(69));
        assert_eq!(m.body(), sdp);
        let bye = RequestBuilder::new(Method::Bye, "sip:a@h").build();
        assert!(bye.ends_with(b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));
    }

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 65535, u64::MAX] {
            let mut b = BytesMut::new();
            put_decimal(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }
}

//! A small SIP test client for the black-box tests: raw text over UDP or
//! TCP, a forgiving reader for what comes back, and builders for the
//! requests a caller sends. Written for the tests, independent of the
//! daemon's own parser.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long any receive waits before the test fails.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// A received SIP message, split into start line, headers and body.
#[derive(Clone, Debug)]
pub struct SipMsg {
    pub raw: String,
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn compact(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        _ => name,
    }
}

impl SipMsg {
    pub fn parse(raw: &str) -> SipMsg {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (compact(n.trim()).to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        SipMsg {
            raw: raw.to_string(),
            start,
            headers,
            body: body.to_string(),
        }
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        let rest = self.start.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> &str {
        self.start.get(12..).unwrap_or("")
    }

    /// Method of a request.
    pub fn method(&self) -> Option<&str> {
        if self.start.starts_with("SIP/") {
            None
        } else {
            self.start.split(' ').next()
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// CSeq method.
    pub fn cseq_method(&self) -> &str {
        self.header("cseq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
    }

    /// The tag parameter of To.
    pub fn to_tag(&self) -> Option<String> {
        tag_of(self.header("to")?)
    }
}

fn tag_of(v: &str) -> Option<String> {
    v.split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("tag="))
        .map(str::to_string)
}

enum Link {
    Udp(UdpSocket),
    Tcp { stream: TcpStream, buf: Vec<u8> },
}

/// A SIP peer for the tests.
pub struct SipClient {
    link: Link,
    pub server: SocketAddr,
    pub local: SocketAddr,
}

impl SipClient {
    pub async fn udp(server: SocketAddr) -> SipClient {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        SipClient {
            link: Link::Udp(socket),
            server,
            local,
        }
    }

    pub async fn udp6(server: SocketAddr) -> SipClient {
        let socket = UdpSocket::bind("[::1]:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        SipClient {
            link: Link::Udp(socket),
            server,
            local,
        }
    }

    /// Wraps an accepted connection (the server connected to us).
    pub fn from_stream(stream: TcpStream) -> SipClient {
        let local = stream.local_addr().unwrap();
        let server = stream.peer_addr().unwrap();
        SipClient {
            link: Link::Tcp {
                stream,
                buf: Vec::new(),
            },
            server,
            local,
        }
    }

    pub async fn tcp(server: SocketAddr) -> SipClient {
        let stream = TcpStream::connect(server).await.unwrap();
        let local = stream.local_addr().unwrap();
        SipClient {
            link: Link::Tcp {
                stream,
                buf: Vec::new(),
            },
            server,
            local,
        }
    }

    pub fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp { .. } => "TCP",
        }
    }

    /// Sends raw bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Udp(s) => {
                s.send_to(bytes, self.server).await.unwrap();
            }
            Link::Tcp { stream, .. } => stream.write_all(bytes).await.unwrap(),
        }
    }

    /// Sends a message written with `\n` line ends (turned into CRLF).
    pub async fn send(&mut self, text: &str) {
        let wire = crlf(text);
        self.send_raw(wire.as_bytes()).await;
    }

    /// Receives the next message, or `None` after `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<SipMsg> {
        tokio::time::timeout(wait, self.recv_inner())
            .await
            .ok()
            .flatten()
    }

    /// Receives the next message; fails the test after [`RECV_TIMEOUT`].
    pub async fn recv(&mut self) -> SipMsg {
        self.recv_within(RECV_TIMEOUT)
            .await
            .expect("no SIP message within the receive timeout")
    }

    /// Receives until a response with a final status (>= 200) to `method`
    /// arrives, skipping provisional responses and retransmissions of
    /// other responses.
    pub async fn final_response(&mut self, method: &str) -> SipMsg {
        loop {
            let m = self.recv().await;
            if m.status().is_some_and(|s| s >= 200) && m.cseq_method() == method {
                return m;
            }
        }
    }

    /// Receives until a request with this method arrives.
    pub async fn request(&mut self, method: &str) -> SipMsg {
        loop {
            let m = self.recv().await;
            if m.method() == Some(method) {
                return m;
            }
        }
    }

    async fn recv_inner(&mut self) -> Option<SipMsg> {
        match &mut self.link {
            Link::Udp(s) => {
                let mut buf = vec![0u8; 65536];
                let (n, _) = s.recv_from(&mut buf).await.ok()?;
                Some(SipMsg::parse(&String::from_utf8_lossy(&buf[..n])))
            }
            Link::Tcp { stream, buf } => loop {
                if let Some(len) = frame(buf) {
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    return Some(SipMsg::parse(&String::from_utf8_lossy(&msg)));
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            },
        }
    }

    /// True when the server closed the TCP connection (reads end).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let Link::Tcp { stream, .. } = &mut self.link else {
            return false;
        };
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn frame(buf: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(buf);
    let end = text.find("\r\n\r\n")? + 4;
    let len = text[..end]
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l")
        })
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= end + len).then_some(end + len)
}

pub fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// An SDP offer with PCMU, PCMA and telephone-event.
pub fn offer_sdp(rtp_port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    )
}

/// One call's identifiers and the requests a caller sends in it.
pub struct CallBuilder {
    pub call_id: String,
    pub from_tag: String,
    pub number: String,
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub transport: &'static str,
    pub invite_branch: String,
    pub cseq: u32,
    /// Address put in Contact (defaults to the client's own).
    pub contact: SocketAddr,
    next_branch: u32,
}

impl CallBuilder {
    pub fn new(client: &SipClient, number: &str) -> CallBuilder {
        let unique = format!("{}-{}", client.local.port(), rand_suffix());
        CallBuilder {
            call_id: format!("call-{unique}@test"),
            from_tag: format!("ft{unique}"),
            number: number.to_string(),
            local: client.local,
            server: client.server,
            transport: client.transport(),
            invite_branch: format!("z9hG4bK-inv-{unique}"),
            cseq: 1,
            contact: client.local,
            next_branch: 0,
        }
    }

    pub fn branch(&mut self) -> String {
        self.next_branch += 1;
        format!("z9hG4bK-{}-{}", self.from_tag, self.next_branch)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport, self.local
        )
    }

    pub fn invite(&self, sdp: Option<&str>) -> String {
        let body = sdp.unwrap_or("");
        let ctype = if sdp.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        format!(
            "INVITE sip:{num}@{srv} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: \"Test Caller\" <sip:14255550123@{loc}>;tag={ft}\r\nTo: <sip:{num}@{srv}>\r\n\
             Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{contact};transport={tl}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            num = self.number,
            srv = self.server,
            via = self.via(&self.invite_branch),
            loc = self.local,
            ft = self.from_tag,
            cid = self.call_id,
            tl = self.transport.to_ascii_lowercase(),
            contact = self.contact,
            len = body.len(),
        )
    }

    pub fn cancel(&self) -> String {
        format!(
            "CANCEL sip:{num}@{srv} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: \"Test Caller\" <sip:14255550123@{loc}>;tag={ft}\r\nTo: <sip:{num}@{srv}>\r\n\
             Call-ID: {cid}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
            num = self.number,
            srv = self.server,
            via = self.via(&self.invite_branch),
            loc = self.local,
            ft = self.from_tag,
            cid = self.call_id,
        )
    }

    /// ACK for a non-2xx final response: same branch as the INVITE (§17.1.1.3).
    pub fn ack_non_2xx(&self, to_tag: &str) -> String {
        format!(
            "ACK sip:{num}@{srv} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: \"Test Caller\" <sip:14255550123@{loc}>;tag={ft}\r\nTo: <sip:{num}@{srv}>;tag={to_tag}\r\n\
             Call-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            num = self.number,
            srv = self.server,
            via = self.via(&self.invite_branch),
            loc = self.local,
            ft = self.from_tag,
            cid = self.call_id,
        )
    }

    /// A request inside the dialog (ACK for 2xx uses CSeq 1, others count up).
    pub fn in_dialog(&mut self, method: &str, to_tag: &str, body: Option<&str>) -> String {
        let branch = self.branch();
        let cseq = if method == "ACK" {
            1
        } else {
            self.cseq += 1;
            self.cseq
        };
        let body_text = body.unwrap_or("");
        let ctype = if body.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        format!(
            "{method} sip:{num}@{srv} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: \"Test Caller\" <sip:14255550123@{loc}>;tag={ft}\r\nTo: <sip:{num}@{srv}>;tag={to_tag}\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@{contact};transport={tl}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body_text}",
            num = self.number,
            srv = self.server,
            via = self.via(&branch),
            loc = self.local,
            ft = self.from_tag,
            cid = self.call_id,
            tl = self.transport.to_ascii_lowercase(),
            contact = self.contact,
            len = body_text.len(),
        )
    }
}

/// OPTIONS out of dialog.
pub fn options(client: &SipClient, max_forwards: u8) -> String {
    let unique = rand_suffix();
    format!(
        "OPTIONS sip:{srv} SIP/2.0\r\nVia: SIP/2.0/{t} {loc};branch=z9hG4bK-opt{unique};rport\r\n\
         Max-Forwards: {max_forwards}\r\nFrom: <sip:probe@{loc}>;tag=o{unique}\r\nTo: <sip:{srv}>\r\n\
         Call-ID: opt-{unique}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        srv = client.server,
        t = client.transport(),
        loc = client.local,
    )
}

/// Answers a request from the server (e.g. its BYE) with 200 OK.
pub fn ok_for(request: &SipMsg) -> String {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for name in ["via", "from", "to", "call-id", "cseq"] {
        for v in request.headers_named(name) {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{}x{n}", std::process::id())
}

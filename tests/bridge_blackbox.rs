//! Black-box tests of the embedded bridge: a real server on loopback
//! ephemeral ports with a small directory; callers dial in, key their
//! conference ID by RFC 4733 events and then talk to each other through
//! the gateway alone. What each caller hears is checked with a Goertzel
//! filter on its decoded audio.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dialgate::call::shell::{Services, StaticDirectory};
use dialgate::config::{Config, ListenSpec, Transport};
use dialgate::directory::{ConferenceId, Lookup, Refusal, Route};
use dialgate::server::{Server, ServerHandle, ServerStats};
use tokio::net::UdpSocket;

const NUMBER: &str = "14255550100";
const MEETING_ID: &str = "1234567";
const OTHER_MEETING_ID: &str = "2345678";
const RESET_ID: &str = "7000001";

/// Each server gets its own RTP range so parallel tests do not compete
/// (the attendant's black-box tests use 52000 and up).
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

fn config() -> Config {
    let mut c = Config::embedded();
    c.sip.listen = vec![ListenSpec {
        transport: Transport::Udp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let base = 58_000 + NEXT_RANGE.fetch_add(1, Ordering::Relaxed) * 100;
    c.rtp.port_min = base;
    c.rtp.port_max = base + 49;
    c.sip.shutdown_grace = Duration::from_millis(500);
    c.media.prompt_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts").into();
    // Listeners send no audio while they wait for the others.
    c.media.media_timeout = Duration::from_secs(120);
    c.ivr.max_attempts = 1;
    c.ivr.refusal_delay = Duration::ZERO;
    c.ivr.first_digit_timeout = Duration::from_secs(5);
    c.ivr.inter_digit_timeout = Duration::from_secs(2);
    c
}

fn id(s: &str) -> ConferenceId {
    ConferenceId::parse(s, s.len()).unwrap()
}

async fn start(config: Config) -> ServerHandle {
    let meeting = |organizer: &str, meeting: &str| {
        Lookup::Active(Route {
            organizer: Arc::from(organizer),
            meeting: Arc::from(meeting),
        })
    };
    let directory = StaticDirectory::default()
        .with(
            id(MEETING_ID),
            meeting("amos.marble@contoso.com", "amos.marble@contoso.com"),
        )
        .with(
            id(OTHER_MEETING_ID),
            meeting("nora.lane@contoso.com", "nora.lane@contoso.com"),
        )
        .with(id(RESET_ID), Lookup::Refused(Refusal::Reset));
    let services = Services {
        directory: Arc::new(directory),
    };
    Server::start_with_services(&config, services)
        .await
        .unwrap()
}

/// Waits (generously) until the server's stats satisfy `ok`.
async fn wait_for(h: &ServerHandle, ok: impl Fn(&ServerStats) -> bool) -> bool {
    for _ in 0..600 {
        if ok(&h.stats()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn is_idle(s: &ServerStats) -> bool {
    s.active_calls == 0
        && s.call_tasks == 0
        && s.pacer_streams == 0
        && s.rtp_ports_available == s.rtp_ports_capacity
        && s.call_path.bridge_rooms == 0
        && s.call_path.bridge_participants == 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    fn pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(byte),
            Codec::Pcma => alaw_decode(byte),
        }
    }
}

/// An SDP offer with one G.711 law and telephone-event.
fn offer(rtp_port: u16, codec: Codec) -> String {
    let (pt, name) = match codec {
        Codec::Pcmu => (0, "PCMU"),
        Codec::Pcma => (8, "PCMA"),
    };
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    )
}

/// The RTP address in an SDP answer.
fn answer_rtp(sdp: &str) -> SocketAddr {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap()
        .trim();
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    format!("{ip}:{port}").parse().unwrap()
}

/// A caller in an answered call, with its own RTP socket.
struct Caller {
    sip: SipClient,
    call: CallBuilder,
    tag: String,
    rtp: Arc<UdpSocket>,
    gateway_rtp: SocketAddr,
    codec: Codec,
    seq: u16,
    ts: u32,
}

impl Caller {
    async fn dial(h: &ServerHandle, codec: Codec) -> Caller {
        let mut sip = SipClient::udp(h.local_addr(Transport::Udp).unwrap()).await;
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        let call = CallBuilder::new(&sip, NUMBER);
        sip.send(&call.invite(Some(&offer(port, codec)))).await;
        let ok = sip.final_response("INVITE").await;
        assert_eq!(ok.status(), Some(200), "{}", ok.raw);
        let tag = ok.to_tag().unwrap();
        let gateway_rtp = answer_rtp(&ok.body);
        let mut caller = Caller {
            sip,
            call,
            tag,
            rtp: Arc::new(rtp),
            gateway_rtp,
            codec,
            seq: 100,
            ts: 8000,
        };
        let ack = caller.call.in_dialog("ACK", &caller.tag, None);
        caller.sip.send(&ack).await;
        caller
    }

    /// Receives `n` audio packets and decodes them to linear samples.
    async fn hear(&self, n: usize) -> Vec<i16> {
        hear(&self.rtp, self.gateway_rtp, self.codec, n).await
    }

    /// Listens for `n` packets in a task of its own.
    fn hear_in_background(&self, n: usize) -> tokio::task::JoinHandle<Vec<i16>> {
        let (rtp, gateway, codec) = (self.rtp.clone(), self.gateway_rtp, self.codec);
        tokio::spawn(async move { hear(&rtp, gateway, codec, n).await })
    }

    /// Throws away what the gateway sent so far (prompts, join tones).
    fn forget_heard(&self) {
        let mut buf = [0u8; 2048];
        while self.rtp.try_recv_from(&mut buf).is_ok() {}
    }

    fn packet(&mut self, pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    async fn send_rtp(&mut self, pt: u8, marker: bool, payload: &[u8]) {
        let p = self.packet(pt, marker, payload);
        self.rtp.send_to(&p, self.gateway_rtp).await.unwrap();
    }

    /// Keys by RFC 4733: a start packet and three end packets per key.
    async fn key_rfc4733(&mut self, keys: &str) {
        for c in keys.chars() {
            let code = match c {
                '*' => 10,
                '#' => 11,
                d => d.to_digit(10).unwrap() as u8,
            };
            self.ts = self.ts.wrapping_add(1600);
            self.send_rtp(101, true, &[code, 10, 0, 160]).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            for _ in 0..3 {
                self.send_rtp(101, false, &[code, 0x80 | 10, 3, 32]).await;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Sends `frames` 20 ms PCMU packets of a 1 kHz tone, paced.
    async fn talk(&mut self, frames: usize) {
        let mut next = tokio::time::Instant::now();
        for f in 0..frames {
            let mut payload = [0u8; 160];
            for (i, b) in payload.iter_mut().enumerate() {
                let t = (f * 160 + i) as f64 / 8000.0;
                let x = 8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin();
                *b = ulaw_encode(x as i16);
            }
            self.ts = self.ts.wrapping_add(160);
            self.send_rtp(0, false, &payload).await;
            next += Duration::from_millis(20);
            tokio::time::sleep_until(next).await;
        }
    }

    /// Re-INVITEs with the same media, put on hold (`a=sendonly`, RFC 3264
    /// §8.4) or taken off it; ACKs the 200.
    async fn reinvite(&mut self, hold: bool) {
        let port = self.rtp.local_addr().unwrap().port();
        let mut sdp = offer(port, self.codec).replace("o=- 1 1", "o=- 1 2");
        if hold {
            sdp.push_str("a=sendonly\r\n");
        }
        let invite = self.call.in_dialog("INVITE", &self.tag, Some(&sdp));
        let cseq = self.call.cseq;
        self.sip.send(&invite).await;
        let ok = self.sip.final_response("INVITE").await;
        assert_eq!(ok.status(), Some(200), "{}", ok.raw);
        // The ACK of a 2xx carries the INVITE's CSeq number (RFC 3261 §13.2.2.4).
        let ack = self
            .call
            .in_dialog("ACK", &self.tag, None)
            .replace("CSeq: 1 ACK", &format!("CSeq: {cseq} ACK"));
        self.sip.send(&ack).await;
    }

    /// Waits up to `wait` for the gateway's BYE and answers it 200.
    async fn bye_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(m) = self.sip.recv_within(left).await else {
                return false;
            };
            if m.method() == Some("BYE") {
                self.sip.send(&ok_for(&m)).await;
                return true;
            }
        }
    }

    async fn hang_up(&mut self) {
        let bye = self.call.in_dialog("BYE", &self.tag, None);
        self.sip.send(&bye).await;
        assert_eq!(self.sip.final_response("BYE").await.status(), Some(200));
    }
}

/// Receives `n` audio packets from `gateway` and decodes them to linear
/// samples.
async fn hear(rtp: &UdpSocket, gateway: SocketAddr, codec: Codec, n: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(n * 160);
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < n {
        let (len, from) = tokio::time::timeout(RECV_TIMEOUT, rtp.recv_from(&mut buf))
            .await
            .expect("no RTP from the gateway")
            .unwrap();
        assert_eq!(from, gateway, "RTP comes from the answered port");
        assert!(len >= 12);
        if buf[1] & 0x7f != codec.pt() {
            continue;
        }
        out.extend(buf[12..len].iter().map(|b| codec.decode(*b)));
        got += 1;
    }
    out
}

/// G.711 µ-law encoding (ITU-T G.711), written out for the test.
fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = (s + BIAS).min(0x7fff);
    let exponent = (0..8).rev().find(|e| s & (0x80 << e) != 0).unwrap_or(0);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// G.711 µ-law decoding.
fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// G.711 A-law decoding.
fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// The amplitude of the `freq` component of `samples` (8 kHz), by a
/// Goertzel filter over the whole block.
fn goertzel_amplitude(samples: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len() as f64
}

/// The 1 kHz amplitude heard in 100 ms blocks, from the 1 s mark on
/// (past the jitter buffer's delay and any tone still playing).
fn tone_levels(heard: &[i16]) -> Vec<f64> {
    heard
        .chunks_exact(800)
        .skip(10)
        .map(|block| goertzel_amplitude(block, 1000.0))
        .collect()
}

#[test]
fn the_goertzel_check_tells_a_tone_from_silence() {
    let tone: Vec<i16> = (0..8000)
        .map(|i| {
            ulaw_decode(ulaw_encode(
                (8000.0 * (i as f64 * std::f64::consts::FRAC_PI_4).sin()) as i16,
            ))
        })
        .collect();
    let level = goertzel_amplitude(&tone, 1000.0);
    assert!((7000.0..9000.0).contains(&level), "{level}");
    assert!(goertzel_amplitude(&vec![0; 8000], 1000.0) < 1.0);
    assert_eq!(alaw_decode(0xd5), 8);
    assert_eq!(ulaw_decode(0xff), 0);
}

/// Dials, keys `conference_id` and waits until the caller is in a room.
async fn join(h: &ServerHandle, codec: Codec, conference_id: &str) -> Caller {
    let before = h.stats().call_path.bridge_participants;
    let mut caller = Caller::dial(h, codec).await;
    caller.hear(5).await;
    caller.key_rfc4733(&format!("{conference_id}#")).await;
    assert!(
        wait_for(h, |s| s.call_path.bridge_participants == before + 1).await,
        "{conference_id}: not in a conference: {:?}",
        h.stats()
    );
    caller
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_one_meeting_hear_each_other_and_no_one_else() {
    let h = start(config()).await;
    let mut alice = join(&h, Codec::Pcmu, MEETING_ID).await;
    // Bob speaks A-law: the bridge transcodes.
    let mut bob = join(&h, Codec::Pcma, MEETING_ID).await;
    let mut carol = join(&h, Codec::Pcmu, OTHER_MEETING_ID).await;
    let stats = h.stats();
    assert_eq!(stats.call_path.bridge_rooms, 2, "{stats:?}");
    assert_eq!(stats.call_path.routed, 3);

    // A caller with a reset ID is refused and never joins.
    let mut dave = Caller::dial(&h, Codec::Pcmu).await;
    dave.hear(5).await;
    dave.key_rfc4733(&format!("{RESET_ID}#")).await;
    assert!(
        dave.bye_within(Duration::from_secs(20)).await,
        "the reset ID got no goodbye"
    );
    let stats = h.stats();
    assert_eq!(stats.call_path.routed, 3, "{stats:?}");
    assert_eq!(stats.call_path.entries_failed, 1);
    assert_eq!(stats.call_path.bridge_participants, 3);

    // Nobody left the call: no BYE for the joined callers.
    for caller in [&mut alice, &mut bob, &mut carol] {
        assert!(!caller.bye_within(Duration::from_millis(200)).await);
        caller.forget_heard();
    }

    // Alice talks for 3 s; everyone listens meanwhile.
    let (a, b, c) = (
        alice.hear_in_background(125),
        bob.hear_in_background(125),
        carol.hear_in_background(125),
    );
    alice.talk(150).await;
    let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());

    let (a, b, c) = (tone_levels(&a), tone_levels(&b), tone_levels(&c));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&b) > 2000.0, "Bob does not hear Alice's tone: {b:.0?}");
    assert!(
        a.iter().all(|l| *l < 100.0),
        "Alice hears her own tone: {a:.0?}"
    );
    assert!(
        c.iter().all(|l| *l < 100.0),
        "Carol hears another meeting: {c:.0?}"
    );

    for caller in [&mut alice, &mut bob, &mut carol] {
        caller.hang_up().await;
    }
    assert!(wait_for(&h, is_idle).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_over_the_room_size_is_refused_and_hung_up_on() {
    let mut c = config();
    c.bridge.max_room_size = 2;
    let h = start(c).await;
    let mut first = join(&h, Codec::Pcmu, MEETING_ID).await;
    let mut second = join(&h, Codec::Pcma, MEETING_ID).await;
    let mut third = Caller::dial(&h, Codec::Pcmu).await;
    third.hear(5).await;
    third.key_rfc4733(&format!("{MEETING_ID}#")).await;
    assert!(
        third.bye_within(Duration::from_secs(20)).await,
        "the caller over the limit was not hung up on"
    );
    let stats = h.stats();
    assert_eq!(stats.call_path.routed, 3, "{stats:?}");
    assert_eq!(stats.call_path.bridge_refused, 1);
    assert_eq!(stats.call_path.bridge_participants, 2);
    // The two in the room are not disturbed; when one leaves there is
    // space again, and the room goes with the last caller.
    first.hang_up().await;
    assert!(wait_for(&h, |s| s.call_path.bridge_participants == 1).await);
    assert!(!second.bye_within(Duration::from_millis(200)).await);
    let mut again = join(&h, Codec::Pcmu, MEETING_ID).await;
    assert_eq!(h.stats().call_path.bridge_rooms, 1);
    second.hang_up().await;
    again.hang_up().await;
    assert!(wait_for(&h, is_idle).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_on_hold_is_not_mixed_into_the_room() {
    let h = start(config()).await;
    let mut alice = join(&h, Codec::Pcmu, MEETING_ID).await;
    let mut bob = join(&h, Codec::Pcmu, MEETING_ID).await;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;

    // On hold, Alice's audio (music on hold, say) stays out of the room.
    alice.reinvite(true).await;
    bob.forget_heard();
    let heard = bob.hear_in_background(100);
    alice.talk(110).await;
    let held = tone_levels(&heard.await.unwrap());
    assert!(
        held.iter().all(|l| *l < 100.0),
        "Bob hears a held caller: {held:.0?}"
    );

    // Back from hold, she is heard again.
    alice.reinvite(false).await;
    bob.forget_heard();
    let heard = bob.hear_in_background(100);
    alice.talk(110).await;
    let back = tone_levels(&heard.await.unwrap());
    assert!(
        mean(&back) > 2000.0,
        "Bob does not hear Alice after hold: {back:.0?}"
    );

    alice.hang_up().await;
    bob.hang_up().await;
    assert!(wait_for(&h, is_idle).await, "{:?}", h.stats());
}

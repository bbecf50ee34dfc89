//! Black-box tests of the live call path: a real server on loopback
//! ephemeral ports with a small directory, callers that dial in, listen to
//! the prompts over RTP and key conference IDs by RFC 4733 events, SIP
//! INFO or in-band tones.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dialgate::call::shell::{Services, StaticDirectory};
use dialgate::config::{Config, ListenSpec, Transport};
use dialgate::directory::{ConferenceId, Lookup, Refusal, Route};
use dialgate::server::{Server, ServerHandle, ServerStats};
use tokio::net::UdpSocket;

const NUMBER: &str = "14255550100";
const ACTIVE_ID: &str = "1234567";
const RESET_ID: &str = "7000001";
const UNKNOWN_ID: &str = "7654321";

/// Each server gets its own RTP range so parallel tests do not compete.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

fn config(max_attempts: u32) -> Config {
    let mut c = Config::embedded();
    c.sip.listen = vec![ListenSpec {
        transport: Transport::Udp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let base = 52_000 + NEXT_RANGE.fetch_add(1, Ordering::Relaxed) * 100;
    c.rtp.port_min = base;
    c.rtp.port_max = base + 49;
    c.sip.shutdown_grace = Duration::from_millis(500);
    c.media.prompt_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts").into();
    c.ivr.max_attempts = max_attempts;
    c.ivr.refusal_delay = Duration::ZERO;
    c.ivr.first_digit_timeout = Duration::from_secs(5);
    c.ivr.inter_digit_timeout = Duration::from_secs(2);
    c
}

fn id(s: &str) -> ConferenceId {
    ConferenceId::parse(s, s.len()).unwrap()
}

async fn start(max_attempts: u32) -> ServerHandle {
    start_config(config(max_attempts)).await
}

async fn start_config(config: Config) -> ServerHandle {
    let directory = StaticDirectory::default()
        .with(
            id(ACTIVE_ID),
            Lookup::Active(Route {
                organizer: Arc::from("amos.marble@contoso.com"),
                meeting: Arc::from("static"),
            }),
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
    for _ in 0..200 {
        if ok(&h.stats()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn is_idle(h: &ServerHandle) -> impl Fn(&ServerStats) -> bool + '_ {
    move |s| {
        s.active_calls == 0
            && s.call_tasks == 0
            && s.pacer_streams == 0
            && s.rtp_ports_available == s.rtp_ports_capacity
            && h.local_addr(Transport::Udp).is_some()
    }
}

/// An SDP offer with PCMU only, with or without telephone-event.
fn offer(rtp_port: u16, telephone_event: bool) -> String {
    let (pts, te) = if telephone_event {
        (
            "0 101",
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        )
    } else {
        ("0", "")
    };
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP {pts}\r\na=rtpmap:0 PCMU/8000\r\n{te}"
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
    rtp: UdpSocket,
    gateway_rtp: SocketAddr,
    seq: u16,
    ts: u32,
}

impl Caller {
    async fn dial(h: &ServerHandle, telephone_event: bool) -> Caller {
        let mut sip = SipClient::udp(h.local_addr(Transport::Udp).unwrap()).await;
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        let call = CallBuilder::new(&sip, NUMBER);
        sip.send(&call.invite(Some(&offer(port, telephone_event))))
            .await;
        let ok = sip.final_response("INVITE").await;
        assert_eq!(ok.status(), Some(200), "{}", ok.raw);
        let tag = ok.to_tag().unwrap();
        let gateway_rtp = answer_rtp(&ok.body);
        let mut caller = Caller {
            sip,
            call,
            tag,
            rtp,
            gateway_rtp,
            seq: 100,
            ts: 8000,
        };
        let ack = caller.call.in_dialog("ACK", &caller.tag, None);
        caller.sip.send(&ack).await;
        caller
    }

    /// Receives `n` RTP packets: (arrival, payload type, payload).
    async fn listen(&self, n: usize) -> Vec<(Instant, u8, Vec<u8>)> {
        let mut out = Vec::with_capacity(n);
        let mut buf = [0u8; 2048];
        while out.len() < n {
            let (len, from) = tokio::time::timeout(RECV_TIMEOUT, self.rtp.recv_from(&mut buf))
                .await
                .expect("no RTP from the gateway")
                .unwrap();
            assert_eq!(from, self.gateway_rtp, "RTP comes from the answered port");
            assert!(len >= 12);
            out.push((Instant::now(), buf[1] & 0x7f, buf[12..len].to_vec()));
        }
        out
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

    /// Keys by SIP INFO (application/dtmf-relay); each gets 200.
    async fn key_info(&mut self, keys: &str) {
        for c in keys.chars() {
            let body = format!("Signal={c}\r\nDuration=160\r\n");
            let status = self.info("application/dtmf-relay", &body).await;
            assert_eq!(status, 200);
        }
    }

    async fn info(&mut self, content_type: &str, body: &str) -> u16 {
        let text = self
            .call
            .in_dialog("INFO", &self.tag, Some(body))
            .replace("application/sdp", content_type);
        self.sip.send(&text).await;
        self.sip.final_response("INFO").await.status().unwrap()
    }

    /// Keys as in-band tones: PCMU frames, 80 ms of tone, 80 ms of silence.
    async fn key_inband(&mut self, keys: &str) {
        for c in keys.chars() {
            for frame in tone_frames(c, 4)
                .into_iter()
                .chain(std::iter::repeat_n([0xffu8; 160], 4))
            {
                self.ts = self.ts.wrapping_add(160);
                self.send_rtp(0, false, &frame).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
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

/// µ-law frames of a key's two tones at about -10 dBm0 each.
fn tone_frames(key: char, frames: usize) -> Vec<[u8; 160]> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 3] = [1209.0, 1336.0, 1477.0];
    let (r, c) = match key {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        other => panic!("no key {other}"),
    };
    let amp = 22_706.0 * 10f64.powf(-10.0 / 20.0);
    let w = 2.0 * std::f64::consts::PI / 8000.0;
    (0..frames)
        .map(|f| {
            let mut frame = [0u8; 160];
            for (i, b) in frame.iter_mut().enumerate() {
                let t = (f * 160 + i) as f64;
                let x = amp * (w * ROWS[r] * t).sin() + amp * (w * COLS[c] * t).sin();
                *b = ulaw(x as i16);
            }
            frame
        })
        .collect()
}

/// G.711 µ-law encoding (ITU-T G.711), written out for the test.
fn ulaw(sample: i16) -> u8 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_prompt_is_paced_audio() {
    let h = start(3).await;
    let mut caller = Caller::dial(&h, true).await;
    let packets = caller.listen(100).await;
    assert!(packets.iter().all(|(_, pt, p)| *pt == 0 && p.len() == 160));
    let voiced = packets
        .iter()
        .filter(|(_, _, p)| p.iter().any(|b| *b != 0xff && *b != 0x7f))
        .count();
    assert!(voiced > 20, "the welcome prompt is not silence ({voiced})");
    // Paced, not a burst: about 20 ms apart on average (loose bounds).
    let span = packets[99].0 - packets[0].0;
    let average = span / 99;
    assert!(
        average > Duration::from_millis(10) && average < Duration::from_millis(60),
        "average spacing {average:?}"
    );
    caller.hang_up().await;
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

async fn joins(h: &ServerHandle, caller: &mut Caller) {
    assert!(
        wait_for(h, |s| s.call_path.routed == 1).await,
        "caller was not routed: {:?}",
        h.stats()
    );
    assert!(
        !caller.bye_within(Duration::from_secs(3)).await,
        "a joined caller stays connected"
    );
    assert_eq!(h.stats().active_calls, 1);
    assert_eq!(h.stats().call_path.entries_failed, 0);
    caller.hang_up().await;
    assert!(wait_for(h, is_idle(h)).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_id_joins_the_meeting() {
    let h = start(1).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    caller.key_rfc4733(ACTIVE_ID).await;
    joins(&h, &mut caller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_id_joins_the_meeting_and_bad_bodies_get_400() {
    let h = start(1).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    assert_eq!(
        caller.info("application/dtmf-relay", "Signal=Q\r\n").await,
        400
    );
    caller.key_info(ACTIVE_ID).await;
    joins(&h, &mut caller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_in_numbers_dtmf_mode_overrides_the_global_one() {
    let mut c = config(1);
    for n in &mut c.dial_in_numbers {
        n.dtmf_mode = Some(dialgate::dtmf::DtmfMode::Info);
    }
    let h = start_config(c).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    // Telephone-events are not listened to on this number: a wrong ID sent
    // that way is no entry at all (`joins` checks no entry failed).
    caller.key_rfc4733(UNKNOWN_ID).await;
    caller.key_info(ACTIVE_ID).await;
    joins(&h, &mut caller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_id_joins_the_meeting() {
    let h = start(1).await;
    let mut caller = Caller::dial(&h, false).await;
    caller.listen(10).await;
    caller.key_inband(ACTIVE_ID).await;
    joins(&h, &mut caller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_ids_are_told_goodbye_and_hung_up_on() {
    let h = start(3).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    for attempt in 1..=3 {
        caller.key_rfc4733(UNKNOWN_ID).await;
        assert!(
            wait_for(&h, |s| s.call_path.entries_failed == attempt).await,
            "attempt {attempt}: {:?}",
            h.stats()
        );
    }
    assert!(
        caller.bye_within(Duration::from_secs(15)).await,
        "no BYE after the last attempt"
    );
    assert_eq!(h.stats().call_path.routed, 0);
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_id_is_refused_like_an_unknown_one() {
    let h = start(1).await;
    for wrong in [RESET_ID, UNKNOWN_ID] {
        let mut caller = Caller::dial(&h, true).await;
        caller.listen(10).await;
        caller.key_rfc4733(wrong).await;
        assert!(
            caller.bye_within(Duration::from_secs(15)).await,
            "{wrong}: no goodbye"
        );
        assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
    }
    let stats = h.stats();
    assert_eq!(stats.call_path.entries_failed, 2);
    assert_eq!(stats.call_path.routed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hanging_up_mid_prompt_is_cleaned_up() {
    let h = start(3).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(5).await;
    assert!(wait_for(&h, |s| s.call_tasks == 1 && s.pacer_streams == 1).await);
    caller.hang_up().await;
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
    // The port pair is free again: a new call gets media as before.
    let mut again = Caller::dial(&h, true).await;
    again.listen(5).await;
    again.hang_up().await;
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

#[tokio::test]
async fn a_missing_prompt_directory_is_a_start_up_error() {
    let mut c = config(3);
    c.media.prompt_dir = "/nonexistent/dialgate-prompts".into();
    let err = Server::start_with_services(&c, Services::empty())
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("/nonexistent/dialgate-prompts"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_guessed_too_often_is_refused_at_once() {
    let mut c = config(1);
    c.ivr.guard.identity_max_failures = 1;
    let h = start_config(c).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    caller.key_rfc4733(UNKNOWN_ID).await;
    assert!(caller.bye_within(Duration::from_secs(15)).await);
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
    // The same caller again: the too-many-attempts prompt, then BYE,
    // without being asked for an ID.
    let mut again = Caller::dial(&h, true).await;
    let heard = again.listen(10).await;
    assert!(heard.iter().all(|(_, pt, _)| *pt == 0));
    assert!(again.bye_within(Duration::from_secs(15)).await);
    assert_eq!(h.stats().call_path.early_refusals, 1);
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_sends_no_media_is_hung_up_on() {
    let mut c = config(3);
    c.media.media_timeout = Duration::from_secs(1);
    let h = start_config(c).await;
    let mut caller = Caller::dial(&h, true).await;
    // The gateway plays to the caller, who sends nothing back.
    assert!(caller.bye_within(Duration::from_secs(10)).await);
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_follows_the_address_the_caller_sends_from() {
    let h = start(3).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(3).await;
    // The caller's media really comes from another port (NAT): the
    // gateway latches to it (symmetric RTP, RFC 4961) and sends there.
    let moved = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = caller.packet(0, true, &[0xff; 160]);
    moved.send_to(&p, caller.gateway_rtp).await.unwrap();
    let mut buf = [0u8; 2048];
    let (len, from) = tokio::time::timeout(RECV_TIMEOUT, moved.recv_from(&mut buf))
        .await
        .expect("no RTP at the latched address")
        .unwrap();
    assert_eq!(from, caller.gateway_rtp);
    assert_eq!(len, 172);
    caller.hang_up().await;
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

/// A server whose numbers route to an external bridge by REFER.
async fn start_refer() -> ServerHandle {
    let mut c = config(1);
    c.bridge.profiles = vec![toml::from_str(
        "name = \"ext\"\nmode = \"refer\"\nuri = \"sip:{conference_id}@192.0.2.50\"\ntransfer_timeout = \"5s\"",
    )
    .unwrap()];
    c.bridge.default_profile = Some("ext".into());
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    start_config(c).await
}

/// Waits for the gateway's REFER after the caller keyed a valid ID.
async fn referred(caller: &mut Caller) -> common::SipMsg {
    caller.key_info(ACTIVE_ID).await;
    let refer = caller.sip.request("REFER").await;
    assert_eq!(
        refer.header("Refer-To"),
        Some("<sip:1234567@192.0.2.50>"),
        "{}",
        refer.raw
    );
    refer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_profile_transfers_the_caller_and_hangs_up() {
    let h = start_refer().await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    let refer = referred(&mut caller).await;
    caller
        .sip
        .send(&ok_for(&refer).replace("200 OK", "202 Accepted"))
        .await;
    let frag = "SIP/2.0 200 OK\r\n";
    let notify = caller
        .call
        .in_dialog("NOTIFY", &caller.tag, Some(frag))
        .replace(
            "Content-Type: application/sdp",
            "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag;version=2.0",
        );
    caller.sip.send(&notify).await;
    assert_eq!(
        caller.sip.final_response("NOTIFY").await.status(),
        Some(200)
    );
    assert!(
        caller.bye_within(Duration::from_secs(5)).await,
        "no BYE after the transfer"
    );
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_refer_plays_the_apology_and_hangs_up() {
    let h = start_refer().await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    let refer = referred(&mut caller).await;
    caller
        .sip
        .send(&ok_for(&refer).replace("200 OK", "403 Forbidden"))
        .await;
    assert!(
        caller.bye_within(Duration::from_secs(15)).await,
        "no BYE after the refused transfer"
    );
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

/// A meeting bridge on loopback for b2bua profiles: SIP and RTP sockets.
struct FakeBridge {
    sip: UdpSocket,
    rtp: UdpSocket,
}

impl FakeBridge {
    async fn recv_sip(&self) -> (common::SipMsg, SocketAddr) {
        let mut buf = vec![0u8; 8192];
        let (n, from) = tokio::time::timeout(RECV_TIMEOUT, self.sip.recv_from(&mut buf))
            .await
            .expect("nothing reached the bridge")
            .unwrap();
        (
            common::SipMsg::parse(std::str::from_utf8(&buf[..n]).unwrap()),
            from,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2bua_profile_relays_media_and_a_bridge_bye_ends_both_legs() {
    let bridge = FakeBridge {
        sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    };
    let bridge_sip = bridge.sip.local_addr().unwrap();
    let mut c = config(1);
    c.bridge.profiles = vec![toml::from_str(&format!(
        "name = \"ext\"\nmode = \"b2bua\"\nuri = \"sip:{{conference_id}}@{bridge_sip}\"\n\
         headers = {{ X-Conference-ID = \"{{conference_id}}\" }}"
    ))
    .unwrap()];
    c.bridge.default_profile = Some("ext".into());
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let h = start_config(c).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    caller.key_info(ACTIVE_ID).await;

    // The gateway calls the bridge, offering the caller's codec only.
    let (invite, gw) = bridge.recv_sip().await;
    assert_eq!(invite.method(), Some("INVITE"), "{}", invite.raw);
    assert_eq!(invite.header("X-Conference-ID"), Some("1234567"));
    assert!(invite.body.contains("RTP/AVP 0 101\r\n"), "{}", invite.body);
    let gw_rtp = answer_rtp(&invite.body);
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
        bridge.rtp.local_addr().unwrap().port()
    );
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["via", "from", "call-id", "cseq"] {
        for v in invite.headers_named(name) {
            ok.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    ok.push_str(&format!(
        "to: {};tag=br1\r\nContact: <sip:bridge@{bridge_sip}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        invite.header("to").unwrap(),
        sdp.len()
    ));
    bridge.sip.send_to(ok.as_bytes(), gw).await.unwrap();
    let (ack, _) = bridge.recv_sip().await;
    assert_eq!(ack.method(), Some("ACK"), "{}", ack.raw);

    // Caller → bridge: relayed unchanged.
    let mut buf = [0u8; 2048];
    let mut relayed = false;
    for _ in 0..20 {
        caller.send_rtp(0, false, &[0x11; 160]).await;
        if let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(200), bridge.rtp.recv_from(&mut buf)).await
        {
            assert_eq!(from, gw_rtp);
            assert_eq!(&buf[12..n], &[0x11; 160]);
            relayed = true;
            break;
        }
    }
    assert!(relayed, "no caller RTP reached the bridge");

    // Bridge → caller: telephone-event renumbered 96 → 101.
    let mut event = vec![0x80, 96, 0, 1, 0, 0, 0, 160, 0x0b, 0x1d, 0x9e, 0x00];
    event.extend_from_slice(&[5, 10, 0, 160]);
    let mut seen = false;
    for _ in 0..20 {
        bridge.rtp.send_to(&event, gw_rtp).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Ok((n, _))) =
            tokio::time::timeout_at(deadline, caller.rtp.recv_from(&mut buf)).await
        {
            if n == 16 && buf[8..12] == [0x0b, 0x1d, 0x9e, 0x00] {
                assert_eq!(buf[1] & 0x7f, 101);
                seen = true;
                break;
            }
        }
        if seen {
            break;
        }
    }
    assert!(seen, "no bridge RTP reached the caller");

    // The bridge hangs up: both legs end.
    let from = invite.header("from").unwrap();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {bridge_sip};branch=z9hG4bK-bb1\r\n\
         Max-Forwards: 70\r\nFrom: {to};tag=br1\r\nTo: {from}\r\nCall-ID: {cid}\r\n\
         CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = invite
            .header("contact")
            .unwrap()
            .trim_matches(|c| c == '<' || c == '>'),
        to = invite.header("to").unwrap(),
        cid = invite.header("call-id").unwrap(),
    );
    bridge.sip.send_to(bye.as_bytes(), gw).await.unwrap();
    let (ok, _) = bridge.recv_sip().await;
    assert_eq!(ok.status(), Some(200), "{}", ok.raw);
    assert!(
        caller.bye_within(Duration::from_secs(5)).await,
        "the caller's leg was not ended"
    );
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2bua_bridge_refusing_the_call_gets_the_apology_and_bye() {
    let bridge = FakeBridge {
        sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    };
    let bridge_sip = bridge.sip.local_addr().unwrap();
    let mut c = config(1);
    c.bridge.profiles = vec![toml::from_str(&format!(
        "name = \"ext\"\nmode = \"b2bua\"\nuri = \"sip:{{conference_id}}@{bridge_sip}\""
    ))
    .unwrap()];
    c.bridge.default_profile = Some("ext".into());
    let h = start_config(c).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    caller.key_info(ACTIVE_ID).await;
    let (invite, gw) = bridge.recv_sip().await;
    let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
    for name in ["via", "from", "call-id", "cseq"] {
        for v in invite.headers_named(name) {
            busy.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    busy.push_str(&format!(
        "to: {};tag=br2\r\nContent-Length: 0\r\n\r\n",
        invite.header("to").unwrap()
    ));
    bridge.sip.send_to(busy.as_bytes(), gw).await.unwrap();
    let (ack, _) = bridge.recv_sip().await;
    assert_eq!(ack.method(), Some("ACK"), "{}", ack.raw);
    assert!(
        caller.bye_within(Duration::from_secs(15)).await,
        "no BYE after the refused bridge call"
    );
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hanging_up_while_the_bridge_rings_cancels_the_bridge_call() {
    let bridge = FakeBridge {
        sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    };
    let bridge_sip = bridge.sip.local_addr().unwrap();
    let mut c = config(1);
    c.bridge.profiles = vec![toml::from_str(&format!(
        "name = \"ext\"\nmode = \"b2bua\"\nuri = \"sip:{{conference_id}}@{bridge_sip}\""
    ))
    .unwrap()];
    c.bridge.default_profile = Some("ext".into());
    let h = start_config(c).await;
    let mut caller = Caller::dial(&h, true).await;
    caller.listen(10).await;
    caller.key_info(ACTIVE_ID).await;
    let (invite, gw) = bridge.recv_sip().await;
    let response = |status: &str| {
        let mut r = format!("SIP/2.0 {status}\r\n");
        for name in ["via", "from", "call-id", "cseq"] {
            for v in invite.headers_named(name) {
                r.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        r.push_str(&format!(
            "to: {};tag=br3\r\nContent-Length: 0\r\n\r\n",
            invite.header("to").unwrap()
        ));
        r
    };
    bridge
        .sip
        .send_to(response("180 Ringing").as_bytes(), gw)
        .await
        .unwrap();
    caller.hang_up().await;
    let (cancel, _) = bridge.recv_sip().await;
    assert_eq!(cancel.method(), Some("CANCEL"), "{}", cancel.raw);
    assert_eq!(cancel.header("call-id"), invite.header("call-id"));
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["via", "from", "to", "call-id", "cseq"] {
        for v in cancel.headers_named(name) {
            ok.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    bridge.sip.send_to(ok.as_bytes(), gw).await.unwrap();
    bridge
        .sip
        .send_to(response("487 Request Terminated").as_bytes(), gw)
        .await
        .unwrap();
    let (ack, _) = bridge.recv_sip().await;
    assert_eq!(ack.method(), Some("ACK"), "{}", ack.raw);
    assert!(wait_for(&h, is_idle(&h)).await, "{:?}", h.stats());
    drop(bridge.rtp);
}

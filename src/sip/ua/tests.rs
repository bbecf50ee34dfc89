//! Unit tests of the user agent core, driven by a fake clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::config::{Cidr, DialInNumber, Trunk};
use crate::media::ports::RtpPortPool;
use crate::sip::message::{HeaderName, Message};

const LOCAL: &str = "127.0.0.1:5060";
const PEER: &str = "127.0.0.1:5070";

fn settings() -> UaSettings {
    UaSettings {
        dial_in_numbers: vec![DialInNumber {
            dtmf_mode: None,
            number: "+1 555 0100".into(),
            language: "en".into(),
            label: "toll".into(),
            bridge: None,
        }],
        trunks: vec![Trunk {
            dtmf_mode: None,
            name: "loopback".into(),
            sources: vec![Cidr {
                network: "127.0.0.0".parse().unwrap(),
                prefix: 8,
            }],
        }],
        allow_any_source: false,
        rtp_bind_address: "127.0.0.1".parse().unwrap(),
        ..UaSettings::default()
    }
}

struct Harness {
    ua: UserAgent,
    now: Instant,
    start: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with(settings())
    }

    fn with(settings: UaSettings) -> Self {
        let pool = RtpPortPool::new(20000, 20019).unwrap();
        let now = Instant::now();
        Self {
            ua: UserAgent::new(settings, Box::new(pool)),
            now,
            start: now,
        }
    }

    fn send_from(&mut self, remote: &str, text: &str) {
        self.ua.handle_datagram(
            Transport::Udp,
            LOCAL.parse().unwrap(),
            remote.parse().unwrap(),
            None,
            Bytes::from(text.replace('\n', "\r\n").replace("\r\r\n", "\r\n")),
            self.now,
        );
    }

    fn send(&mut self, text: &str) {
        self.send_from(PEER, text);
    }

    /// Everything the core wants to send, parsed.
    fn sent(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut out = Vec::new();
        while let Some(t) = self.ua.poll_transmit() {
            out.push((t.remote, Message::parse(t.bytes).unwrap()));
        }
        out
    }

    fn statuses(&mut self) -> Vec<u16> {
        self.sent()
            .into_iter()
            .filter_map(|(_, m)| m.status())
            .collect()
    }

    fn events(&mut self) -> Vec<UaEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.ua.poll_event() {
            out.push(e);
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(t) = self.ua.poll_timeout() {
            if t > target {
                break;
            }
            self.now = t.max(self.now);
            self.ua.handle_timeout(self.now);
        }
        self.now = target;
        self.ua.handle_timeout(self.now);
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn pool_full(&self) -> bool {
        self.ua.rtp_ports_available() == self.ua.rtp_ports_capacity()
    }

    /// Sends an INVITE, returns the final response.
    fn call(&mut self, call_id: &str) -> Message {
        self.send(&invite(
            call_id,
            &format!("z9hG4bK-{call_id}"),
            1,
            Some(OFFER),
        ));
        let sent = self.sent();
        let (_, last) = sent.last().cloned().unwrap();
        assert_eq!(sent.first().unwrap().1.status(), Some(100));
        last
    }
}

const OFFER: &str = "v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 30000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
";

fn with_body(head: String, body: Option<&str>) -> String {
    match body {
        Some(b) => {
            let b = b.replace('\n', "\r\n");
            format!(
                "{head}Content-Type: application/sdp\nContent-Length: {}\n\n{b}",
                b.len()
            )
        }
        None => format!("{head}Content-Length: 0\n\n"),
    }
}

fn invite(call_id: &str, branch: &str, cseq: u32, sdp: Option<&str>) -> String {
    invite_to("sip:+1-555-0100@127.0.0.1", call_id, branch, cseq, sdp)
}

fn invite_to(ruri: &str, call_id: &str, branch: &str, cseq: u32, sdp: Option<&str>) -> String {
    with_body(
        format!(
            "INVITE {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}
Max-Forwards: 70
From: \"Caller\" <sip:14255550123@127.0.0.1>;tag=caller1
To: <sip:15550100@127.0.0.1>
Call-ID: {call_id}
CSeq: {cseq} INVITE
Contact: <sip:caller@127.0.0.1:5070>
"
        ),
        sdp,
    )
}

fn in_dialog(
    method: &str,
    call_id: &str,
    to_tag: &str,
    branch: &str,
    cseq: u32,
    body: Option<&str>,
) -> String {
    with_body(
        format!(
            "{method} sip:15550100@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}
Max-Forwards: 70
From: \"Caller\" <sip:14255550123@127.0.0.1>;tag=caller1
To: <sip:15550100@127.0.0.1>;tag={to_tag}
Call-ID: {call_id}
CSeq: {cseq} {method}
Contact: <sip:caller@127.0.0.1:5070>
"
        ),
        body,
    )
}

fn ack(call_id: &str, to_tag: &str, branch: &str, cseq: u32, body: Option<&str>) -> String {
    in_dialog("ACK", call_id, to_tag, branch, cseq, body)
}

fn to_tag(m: &Message) -> String {
    m.to().unwrap().tag.unwrap().to_string()
}

fn options(branch: &str, max_forwards: u8) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}
Max-Forwards: {max_forwards}
From: <sip:probe@127.0.0.1>;tag=p1
To: <sip:127.0.0.1>
Call-ID: options-{branch}
CSeq: 1 OPTIONS
Content-Length: 0

"
    )
}

/// A full call: INVITE, answer, ACK. Returns our To tag.
fn established(h: &mut Harness, call_id: &str) -> String {
    let ok = h.call(call_id);
    assert_eq!(ok.status(), Some(200));
    let tag = to_tag(&ok);
    h.send(&ack(call_id, &tag, "z9hG4bK-ack1", 1, None));
    assert!(h.sent().is_empty(), "an ACK is never answered");
    tag
}

#[test]
fn options_gets_200_with_allow_and_accept() {
    let mut h = Harness::new();
    h.send(&options("z9hG4bK-o1", 70));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let (to, m) = &sent[0];
    assert_eq!(*to, PEER.parse().unwrap());
    assert_eq!(m.status(), Some(200));
    assert!(m.header(HeaderName::Allow).unwrap().contains("INVITE"));
    assert!(m
        .header(HeaderName::Accept)
        .unwrap()
        .contains("application/sdp"));
}

#[test]
fn max_forwards_zero_gets_483() {
    let mut h = Harness::new();
    h.send(&options("z9hG4bK-o2", 0));
    assert_eq!(h.statuses(), vec![483]);
}

#[test]
fn invite_is_answered_with_sdp_and_call_runs_to_bye() {
    let mut h = Harness::new();
    let ok = h.call("call-1");
    assert_eq!(ok.status(), Some(200));
    let tag = to_tag(&ok);
    assert!(!tag.is_empty());
    assert!(ok.contact().unwrap().is_some());
    assert!(ok.header(HeaderName::Allow).unwrap().contains("BYE"));
    let sdp = crate::sip::sdp::SessionDescription::parse(ok.body()).unwrap();
    let audio = &sdp.media[0];
    assert!((20000..20020).contains(&audio.port));
    // The caller preferred PCMA; its telephone-event PT is kept.
    assert_eq!(audio.payload_types().next(), Some(8));
    assert!(audio.payload_types().any(|pt| pt == 101));
    assert_eq!(h.ua.active_calls(), 1);

    h.send(&ack("call-1", &tag, "z9hG4bK-ack1", 1, None));
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [UaEvent::CallStarted { dialed, .. }] if dialed == "15550100")
    );

    h.send(&in_dialog("BYE", "call-1", &tag, "z9hG4bK-bye1", 2, None));
    assert_eq!(h.statuses(), vec![200]);
    assert!(matches!(
        h.events().as_slice(),
        [UaEvent::CallEnded {
            reason: EndReason::RemoteBye,
            ..
        }]
    ));
    assert_eq!(h.ua.active_calls(), 0);
    assert!(h.pool_full());
}

#[test]
fn retransmitted_invite_gets_the_same_answer_and_no_second_call() {
    let mut h = Harness::new();
    let ok = h.call("call-rx");
    h.send(&invite("call-rx", "z9hG4bK-call-rx", 1, Some(OFFER)));
    let again = h.sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.status(), Some(200));
    assert_eq!(to_tag(&again[0].1), to_tag(&ok));
    assert_eq!(h.ua.active_calls(), 1);
    assert_eq!(h.ua.counters().retransmissions, 1);
}

#[test]
fn two_hundred_is_retransmitted_until_the_ack() {
    let mut h = Harness::new();
    let ok = h.call("call-2xx");
    let tag = to_tag(&ok);
    h.advance(Duration::from_millis(500));
    assert_eq!(h.statuses(), vec![200]);
    h.advance(Duration::from_millis(1000));
    assert_eq!(h.statuses(), vec![200]);
    h.send(&ack("call-2xx", &tag, "z9hG4bK-ack1", 1, None));
    h.advance(Duration::from_secs(10));
    assert!(h.statuses().is_empty());
    assert_eq!(h.ua.active_calls(), 1);
}

#[test]
fn lost_ack_ends_the_call_with_bye() {
    let mut h = Harness::new();
    h.call("call-noack");
    let mut bye = None;
    for _ in 0..200 {
        h.advance(Duration::from_secs(1));
        if let Some((to, m)) = h
            .sent()
            .into_iter()
            .find(|(_, m)| m.method() == Some(&Method::Bye))
        {
            bye = Some((to, m));
            break;
        }
    }
    let (to, bye) = bye.expect("a BYE after 64*T1 without ACK");
    assert!(h.elapsed() >= Duration::from_secs(32));
    assert_eq!(to, "127.0.0.1:5070".parse().unwrap());
    // Answer the BYE: the call is gone and its port is free.
    let via = bye.header(HeaderName::Via).unwrap().to_string();
    let resp = format!(
        "SIP/2.0 200 OK\nVia: {via}\nFrom: {}\nTo: {}\nCall-ID: call-noack\nCSeq: {}\nContent-Length: 0\n\n",
        bye.header(HeaderName::From).unwrap(),
        bye.header(HeaderName::To).unwrap(),
        bye.header(HeaderName::CSeq).unwrap()
    );
    h.send(&resp);
    assert_eq!(h.ua.active_calls(), 0);
    assert!(h.pool_full());
}

#[test]
fn bye_without_answer_times_out_and_still_frees_the_call() {
    let mut h = Harness::new();
    let tag = established(&mut h, "call-timeout");
    let key = match h.events().first() {
        Some(UaEvent::CallStarted { call, .. }) => *call,
        other => panic!("{other:?}"),
    };
    let _ = tag;
    h.ua.hang_up(key, h.now);
    assert!(h
        .sent()
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    h.advance(Duration::from_secs(40));
    assert_eq!(h.ua.active_calls(), 0);
    assert!(h.pool_full());
    assert!(matches!(
        h.events().as_slice(),
        [UaEvent::CallEnded {
            reason: EndReason::LocalHangUp,
            ..
        }]
    ));
}

#[test]
fn cancel_before_answer_gets_200_and_487() {
    let mut s = settings();
    s.answer_delay = Duration::from_secs(5);
    let mut h = Harness::with(s);
    h.send(&invite("call-cancel", "z9hG4bK-inv1", 1, Some(OFFER)));
    assert_eq!(h.statuses(), vec![100, 180]);
    let cancel = "CANCEL sip:+1-555-0100@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-inv1
Max-Forwards: 70
From: \"Caller\" <sip:14255550123@127.0.0.1>;tag=caller1
To: <sip:15550100@127.0.0.1>
Call-ID: call-cancel
CSeq: 1 CANCEL
Content-Length: 0

";
    h.send(cancel);
    let sent = h.sent();
    let got: Vec<(u16, String)> = sent
        .iter()
        .map(|(_, m)| (m.status().unwrap(), m.cseq().unwrap().method.to_string()))
        .collect();
    assert_eq!(got, vec![(200, "CANCEL".into()), (487, "INVITE".into())]);
    assert_eq!(h.ua.active_calls(), 0);
    assert!(h.pool_full());
    // The ACK for the 487 is absorbed by the transaction.
    let tag = to_tag(&sent[1].1);
    h.send(&ack("call-cancel", &tag, "z9hG4bK-inv1", 1, None));
    assert!(h.sent().is_empty());
    // The answer timer fires into nothing.
    h.advance(Duration::from_secs(10));
    assert!(h.statuses().is_empty());
}

#[test]
fn cancel_after_answer_has_no_effect() {
    let mut h = Harness::new();
    established(&mut h, "call-late-cancel");
    let cancel = "CANCEL sip:+1-555-0100@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-call-late-cancel
Max-Forwards: 70
From: \"Caller\" <sip:14255550123@127.0.0.1>;tag=caller1
To: <sip:15550100@127.0.0.1>
Call-ID: call-late-cancel
CSeq: 1 CANCEL
Content-Length: 0

";
    h.send(cancel);
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(h.ua.active_calls(), 1);
}

#[test]
fn cancel_matching_nothing_gets_481() {
    let mut h = Harness::new();
    let cancel = "CANCEL sip:+1-555-0100@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-nothing
Max-Forwards: 70
From: <sip:a@127.0.0.1>;tag=x
To: <sip:15550100@127.0.0.1>
Call-ID: nothing
CSeq: 1 CANCEL
Content-Length: 0

";
    h.send(cancel);
    assert_eq!(h.statuses(), vec![481]);
}

#[test]
fn bye_crossing_is_fine() {
    let mut h = Harness::new();
    let tag = established(&mut h, "call-cross");
    let key = match h.events().first() {
        Some(UaEvent::CallStarted { call, .. }) => *call,
        other => panic!("{other:?}"),
    };
    h.ua.hang_up(key, h.now);
    assert!(h
        .sent()
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    h.send(&in_dialog(
        "BYE",
        "call-cross",
        &tag,
        "z9hG4bK-bye-cross",
        2,
        None,
    ));
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(h.ua.active_calls(), 0);
    assert!(h.pool_full());
    h.advance(Duration::from_secs(60));
    assert_eq!(h.ua.active_calls(), 0);
}

#[test]
fn reinvite_hold_and_resume_with_new_version_and_491_when_pending() {
    let mut h = Harness::new();
    let tag = established(&mut h, "call-hold");
    h.events();
    let hold = OFFER
        .replace("o=- 1 1", "o=- 1 2")
        .replace("a=fmtp:101 0-16\n", "a=fmtp:101 0-16\na=sendonly\n");
    h.send(&in_dialog(
        "INVITE",
        "call-hold",
        &tag,
        "z9hG4bK-re1",
        2,
        Some(&hold),
    ));
    let sent = h.sent();
    let ok = &sent.last().unwrap().1;
    assert_eq!(ok.status(), Some(200));
    let answer = crate::sip::sdp::SessionDescription::parse(ok.body()).unwrap();
    assert_eq!(
        answer.direction_for(0),
        crate::sip::sdp::Direction::RecvOnly
    );
    let first_version = answer.origin.session_version;
    assert!(matches!(
        h.events().as_slice(),
        [UaEvent::MediaChanged { .. }]
    ));

    // Another re-INVITE before the ACK of the first: 491.
    h.send(&in_dialog(
        "INVITE",
        "call-hold",
        &tag,
        "z9hG4bK-re2",
        3,
        Some(OFFER),
    ));
    assert_eq!(h.statuses().last(), Some(&491));

    h.send(&ack("call-hold", &tag, "z9hG4bK-reack1", 2, None));
    let resume = OFFER.replace("o=- 1 1", "o=- 1 3");
    h.send(&in_dialog(
        "INVITE",
        "call-hold",
        &tag,
        "z9hG4bK-re3",
        4,
        Some(&resume),
    ));
    let sent = h.sent();
    let ok = &sent.last().unwrap().1;
    assert_eq!(ok.status(), Some(200));
    let answer = crate::sip::sdp::SessionDescription::parse(ok.body()).unwrap();
    assert_eq!(
        answer.direction_for(0),
        crate::sip::sdp::Direction::SendRecv
    );
    assert!(answer.origin.session_version > first_version);
}

#[test]
fn lower_cseq_in_dialog_gets_500() {
    let mut h = Harness::new();
    let tag = established(&mut h, "call-cseq");
    h.send(&in_dialog("INFO", "call-cseq", &tag, "z9hG4bK-i1", 5, None));
    assert_eq!(h.statuses(), vec![200]);
    h.send(&in_dialog("INFO", "call-cseq", &tag, "z9hG4bK-i2", 4, None));
    assert_eq!(h.statuses(), vec![500]);
}

#[test]
fn requests_for_unknown_dialogs_get_481() {
    let mut h = Harness::new();
    h.send(&in_dialog("BYE", "nope", "nosuchtag", "z9hG4bK-b", 2, None));
    assert_eq!(h.statuses(), vec![481]);
    h.send(&in_dialog(
        "INFO",
        "nope",
        "nosuchtag",
        "z9hG4bK-c",
        3,
        None,
    ));
    assert_eq!(h.statuses(), vec![481]);
}

#[test]
fn unsupported_methods_get_405_with_allow() {
    let mut h = Harness::new();
    let text = options("z9hG4bK-reg", 70)
        .replace("OPTIONS sip:", "REGISTER sip:")
        .replace("1 OPTIONS", "1 REGISTER");
    h.send(&text);
    let sent = h.sent();
    assert_eq!(sent[0].1.status(), Some(405));
    assert!(sent[0].1.header(HeaderName::Allow).is_some());
    let text = options("z9hG4bK-foo", 70)
        .replace("OPTIONS sip:", "FROBNICATE sip:")
        .replace("1 OPTIONS", "1 FROBNICATE");
    h.send(&text);
    assert_eq!(h.statuses(), vec![405]);
}

#[test]
fn foreign_source_gets_403() {
    let mut h = Harness::new();
    h.send_from(
        "10.1.2.3:5060",
        &invite("call-403", "z9hG4bK-f", 1, Some(OFFER)),
    );
    assert_eq!(h.statuses(), vec![100, 403]);
    assert!(h.pool_full());
}

#[test]
fn unknown_number_gets_404() {
    let mut h = Harness::new();
    h.send(&invite_to(
        "sip:999@127.0.0.1",
        "call-404",
        "z9hG4bK-n",
        1,
        Some(OFFER),
    ));
    assert_eq!(h.statuses(), vec![100, 404]);
    h.send(&invite_to(
        "tel:+1-555-0100",
        "call-tel",
        "z9hG4bK-t",
        1,
        Some(OFFER),
    ));
    assert_eq!(h.statuses(), vec![100, 200]);
}

#[test]
fn no_common_codec_gets_488() {
    let mut h = Harness::new();
    let g729 = "v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 30000 RTP/AVP 18
a=rtpmap:18 G729/8000
";
    h.send(&invite("call-488", "z9hG4bK-g", 1, Some(g729)));
    assert_eq!(h.statuses(), vec![100, 488]);
    assert!(h.pool_full());
    assert_eq!(h.ua.active_calls(), 0);
}

#[test]
fn calls_beyond_the_limit_get_503_with_retry_after() {
    let mut s = settings();
    s.max_calls = 1;
    let mut h = Harness::with(s);
    established(&mut h, "call-a");
    h.send(&invite("call-b", "z9hG4bK-b", 1, Some(OFFER)));
    let sent = h.sent();
    let last = &sent.last().unwrap().1;
    assert_eq!(last.status(), Some(503));
    assert!(last.header(HeaderName::RetryAfter).is_some());
}

#[test]
fn shutdown_refuses_new_calls_and_byes_the_rest_after_grace() {
    let mut h = Harness::new();
    established(&mut h, "call-sd");
    h.ua.begin_shutdown(h.now, Duration::from_secs(30));
    assert!(!h.ua.is_drained());
    h.send(&invite("call-new", "z9hG4bK-new", 1, Some(OFFER)));
    assert_eq!(h.statuses(), vec![100, 503]);
    h.send(&options("z9hG4bK-o", 70));
    assert_eq!(h.statuses(), vec![503]);
    h.advance(Duration::from_secs(29));
    // (The 503 is retransmitted until its ACK; no BYE yet.)
    assert!(!h
        .sent()
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    h.advance(Duration::from_secs(2));
    let bye = h
        .sent()
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Bye));
    assert!(bye.is_some());
    h.advance(Duration::from_secs(40));
    assert!(h.ua.is_drained());
    assert!(h.pool_full());
}

#[test]
fn shutdown_does_not_wait_for_timer_f_when_the_caller_is_gone() {
    let mut h = Harness::new();
    established(&mut h, "call-gone");
    h.ua.begin_shutdown(h.now, Duration::from_secs(1));
    h.advance(Duration::from_secs(2));
    assert!(h
        .sent()
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    // Nobody answers the BYE.
    assert!(!h.ua.is_drained());
    h.advance(SHUTDOWN_BYE_WAIT);
    assert!(h.ua.is_drained());
    assert!(h.pool_full());
    assert!(h.events().iter().any(|e| matches!(
        e,
        UaEvent::CallEnded {
            reason: EndReason::Shutdown,
            ..
        }
    )));
}

#[test]
fn shutdown_with_no_calls_is_drained_at_once() {
    let mut h = Harness::new();
    h.ua.begin_shutdown(h.now, Duration::from_secs(30));
    assert!(h.ua.is_drained());
}

#[test]
fn invite_without_sdp_gets_an_offer_and_the_ack_answers() {
    let mut h = Harness::new();
    h.send(&invite("call-late", "z9hG4bK-l", 1, None));
    let sent = h.sent();
    let ok = &sent.last().unwrap().1;
    assert_eq!(ok.status(), Some(200));
    assert!(!ok.body().is_empty());
    let tag = to_tag(ok);
    let answer = "v=0
o=- 5 5 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 30002 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
";
    h.send(&ack("call-late", &tag, "z9hG4bK-la", 1, Some(answer)));
    assert!(h.sent().is_empty());
    assert!(matches!(
        h.events().as_slice(),
        [UaEvent::CallStarted { .. }]
    ));
}

#[test]
fn ack_without_answer_to_our_offer_ends_the_call() {
    let mut h = Harness::new();
    h.send(&invite("call-late2", "z9hG4bK-l2", 1, None));
    let sent = h.sent();
    let tag = to_tag(&sent.last().unwrap().1);
    h.send(&ack("call-late2", &tag, "z9hG4bK-la2", 1, None));
    assert!(h
        .sent()
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
}

#[test]
fn malformed_requests_get_400_or_are_dropped() {
    let mut h = Harness::new();
    // No Call-ID: parsable, Via readable → 400 naming the problem.
    let text = options("z9hG4bK-m", 70).replace("Call-ID: options-z9hG4bK-m\n", "");
    h.send(&text);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.status(), Some(400));
    assert!(sent[0].1.reason().unwrap().contains("Call-ID"));
    // Garbage: dropped and counted.
    h.send("\u{1}\u{2}garbage\n\n");
    h.send("");
    assert!(h.sent().is_empty());
    assert!(h.ua.counters().malformed_dropped >= 1);
    // Still answering.
    h.send(&options("z9hG4bK-after", 70));
    assert_eq!(h.statuses(), vec![200]);
}

#[test]
fn responses_follow_rport_and_get_received() {
    let mut h = Harness::new();
    let text = options("z9hG4bK-r", 70).replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-r",
        "Via: SIP/2.0/UDP 192.0.2.7:5999;branch=z9hG4bK-r;rport",
    );
    h.send_from("127.0.0.1:40000", &text);
    let sent = h.sent();
    let (to, m) = &sent[0];
    assert_eq!(*to, "127.0.0.1:40000".parse().unwrap());
    let via = m.via().unwrap();
    assert_eq!(via.received, Some("127.0.0.1"));
    assert_eq!(via.rport, crate::sip::message::Rport::Value(40000));
    // Without rport the sent-by port is used.
    let text = options("z9hG4bK-r2", 70).replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-r2",
        "Via: SIP/2.0/UDP 192.0.2.7:5999;branch=z9hG4bK-r2",
    );
    h.send_from("127.0.0.1:40000", &text);
    let sent = h.sent();
    assert_eq!(sent[0].0, "127.0.0.1:5999".parse().unwrap());
}

#[test]
fn tcp_responses_go_back_on_the_connection() {
    let mut h = Harness::new();
    let text = options("z9hG4bK-t", 70)
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace('\n', "\r\n");
    h.ua.handle_datagram(
        Transport::Tcp,
        LOCAL.parse().unwrap(),
        "127.0.0.1:41000".parse().unwrap(),
        Some(ConnId(7)),
        Bytes::from(text),
        h.now,
    );
    let t = h.ua.poll_transmit().unwrap();
    assert_eq!(t.transport, Transport::Tcp);
    assert_eq!(t.conn, Some(ConnId(7)));
}

#[test]
fn port_pool_is_full_again_after_many_calls_on_every_path() {
    let mut s = settings();
    s.answer_delay = Duration::ZERO;
    let mut h = Harness::with(s);
    for i in 0..30 {
        let id = format!("many-{i}");
        match i % 3 {
            0 => {
                let tag = established(&mut h, &id);
                h.send(&in_dialog(
                    "BYE",
                    &id,
                    &tag,
                    &format!("z9hG4bK-b{i}"),
                    2,
                    None,
                ));
            }
            1 => {
                // Lost ACK.
                h.call(&id);
                h.advance(Duration::from_secs(40));
                // BYE gets no answer either: Timer F.
                h.advance(Duration::from_secs(40));
            }
            _ => {
                established(&mut h, &id);
                h.ua.begin_shutdown(h.now, Duration::ZERO);
                h.advance(Duration::from_secs(40));
                h.ua = UserAgent::new(
                    settings(),
                    Box::new(RtpPortPool::new(20000, 20019).unwrap()),
                );
            }
        }
        h.sent();
        h.events();
        assert_eq!(h.ua.active_calls(), 0, "iteration {i}");
        assert!(h.pool_full(), "iteration {i}");
    }
}

#[test]
fn calls_are_hung_up_at_the_longest_duration() {
    let mut s = settings();
    s.max_call_duration = Duration::from_secs(3600);
    let mut h = Harness::with(s);
    established(&mut h, "call-long");
    h.advance(Duration::from_secs(3599));
    assert!(!h
        .sent()
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    h.advance(Duration::from_secs(2));
    assert!(h
        .sent()
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    h.advance(Duration::from_secs(40));
    assert_eq!(h.ua.active_calls(), 0);
    assert!(h.pool_full());
}

#[test]
fn info_in_a_call_is_answered_and_reported() {
    let mut h = Harness::new();
    let tag = established(&mut h, "call-info");
    h.events();
    let body = "Signal=5\nDuration=160\n";
    let text = in_dialog("INFO", "call-info", &tag, "z9hG4bK-info", 2, Some(body))
        .replace("application/sdp", "application/dtmf-relay");
    h.send(&text);
    assert_eq!(h.statuses(), vec![200]);
    match h.events().as_slice() {
        [UaEvent::Info {
            content_type, body, ..
        }] => {
            assert_eq!(content_type.as_deref(), Some("application/dtmf-relay"));
            assert!(String::from_utf8_lossy(body).contains("Signal=5"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn in_dialog_options_and_unknown_methods() {
    let mut h = Harness::new();
    let tag = established(&mut h, "call-opt");
    h.send(&in_dialog(
        "OPTIONS",
        "call-opt",
        &tag,
        "z9hG4bK-o",
        2,
        None,
    ));
    let sent = h.sent();
    assert_eq!(sent[0].1.status(), Some(200));
    assert!(sent[0].1.header(HeaderName::Allow).is_some());
    h.send(&in_dialog("REFER", "call-opt", &tag, "z9hG4bK-r", 3, None));
    let sent = h.sent();
    assert_eq!(sent[0].1.status(), Some(405));
    assert!(sent[0].1.header(HeaderName::Allow).is_some());
}

#[test]
fn tcp_connection_in_use_while_a_call_runs_on_it() {
    let mut h = Harness::new();
    let text = invite("call-tcp", "z9hG4bK-tcp", 1, Some(OFFER))
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace('\n', "\r\n")
        .replace("\r\r\n", "\r\n");
    h.ua.handle_datagram(
        Transport::Tcp,
        LOCAL.parse().unwrap(),
        "127.0.0.1:41000".parse().unwrap(),
        Some(ConnId(9)),
        Bytes::from(text),
        h.now,
    );
    assert!(h.ua.connection_in_use(ConnId(9)));
    assert!(!h.ua.connection_in_use(ConnId(10)));
}

#[test]
fn the_same_invite_over_another_path_gets_482() {
    let mut h = Harness::new();
    h.call("call-merged");
    h.send(&invite("call-merged", "z9hG4bK-other-path", 1, Some(OFFER)));
    assert_eq!(h.statuses(), vec![100, 482]);
    assert_eq!(h.ua.active_calls(), 1);
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn full_invite() -> String {
        invite("call-fuzz", "z9hG4bK-fuzz", 1, Some(OFFER))
            .replace('\n', "\r\n")
            .replace("\r\r\n", "\r\n")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic the core, and it keeps answering.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut h = Harness::new();
            h.ua.handle_datagram(
                Transport::Udp,
                LOCAL.parse().unwrap(),
                PEER.parse().unwrap(),
                None,
                Bytes::from(bytes),
                h.now,
            );
            while h.ua.poll_transmit().is_some() {}
            h.send(&options("z9hG4bK-alive", 70));
            prop_assert_eq!(h.statuses(), vec![200]);
        }

        /// A valid INVITE with bytes flipped, cut or inserted never panics
        /// the core, never leaks a port, and the core keeps answering.
        #[test]
        fn mutated_invites_never_panic_or_leak(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = full_invite().into_bytes();
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => { bytes.remove(i); }
                    _ => bytes.insert(i, byte),
                }
            }
            if cut.index(4) == 0 && !bytes.is_empty() {
                let n = cut.index(bytes.len());
                bytes.truncate(n);
            }
            let mut h = Harness::new();
            h.ua.handle_datagram(
                Transport::Udp,
                LOCAL.parse().unwrap(),
                PEER.parse().unwrap(),
                None,
                Bytes::from(bytes),
                h.now,
            );
            while h.ua.poll_transmit().is_some() {}
            // Whatever happened, time passing ends every call and frees
            // every port (no ACK ever comes, BYEs are never answered).
            h.advance(Duration::from_secs(120));
            h.sent();
            prop_assert_eq!(h.ua.active_calls(), 0);
            prop_assert!(h.pool_full());
            h.send(&options("z9hG4bK-alive", 70));
            prop_assert_eq!(h.statuses(), vec![200]);
        }
    }
}

#[test]
fn malformed_dtmf_info_gets_400_and_no_digit() {
    let mut h = Harness::new();
    let tag = established(&mut h, "call-badinfo");
    h.events();
    let text = in_dialog(
        "INFO",
        "call-badinfo",
        &tag,
        "z9hG4bK-binfo",
        2,
        Some("Signal=Z\n"),
    )
    .replace("application/sdp", "application/dtmf-relay");
    h.send(&text);
    assert_eq!(h.statuses(), vec![400]);
    assert!(h.events().is_empty());
    // A well-formed one after it still gets through.
    let text = in_dialog("INFO", "call-badinfo", &tag, "z9hG4bK-binfo2", 3, Some("7"))
        .replace("application/sdp", "application/dtmf");
    h.send(&text);
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(h.events().len(), 1);
}

#[test]
fn call_started_names_the_caller() {
    let mut h = Harness::new();
    let ok = h.call("call-who");
    let tag = to_tag(&ok);
    h.send(&ack("call-who", &tag, "z9hG4bK-ackw", 1, None));
    match h.events().as_slice() {
        [UaEvent::CallStarted { caller, .. }] => {
            assert_eq!(caller.from_user.as_deref(), Some("14255550123"));
            assert_eq!(caller.asserted_user, None);
            assert!(caller.is_trunk, "127.0.0.1 is in the loopback trunk");
            assert_eq!(caller.source, "127.0.0.1".parse::<IpAddr>().unwrap());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn asserted_identity_from_a_trunk_is_taken() {
    let mut h = Harness::new();
    let text = invite("call-pai", "z9hG4bK-call-pai", 1, Some(OFFER)).replace(
        "Max-Forwards: 70",
        "Max-Forwards: 70\nP-Asserted-Identity: \"A\" <sip:+14255550999@trunk.example>",
    );
    h.send(&text);
    let ok = h
        .sent()
        .into_iter()
        .map(|(_, m)| m)
        .find(|m| m.status() == Some(200))
        .unwrap();
    h.send(&ack("call-pai", &to_tag(&ok), "z9hG4bK-ackp", 1, None));
    match h.events().as_slice() {
        [UaEvent::CallStarted { caller, .. }] => {
            assert_eq!(caller.asserted_user.as_deref(), Some("+14255550999"));
        }
        other => panic!("{other:?}"),
    }
}

mod bridge;

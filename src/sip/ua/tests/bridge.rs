//! External bridges: REFER transfers (RFC 3515) and calls placed to a
//! bridge (UAC), driven by a fake clock.

use super::*;
use crate::sip::sdp::Codec;

const BRIDGE: &str = "127.0.0.1:5080";

const ANSWER: &str = "v=0
o=- 2 2 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000
";

/// A response to `req` as its peer would send it.
fn response_to(
    req: &Message,
    status: u16,
    reason: &str,
    tag: Option<&str>,
    body: Option<&str>,
) -> String {
    let mut head = format!("SIP/2.0 {status} {reason}\n");
    for v in req.header_values(HeaderName::Via) {
        head.push_str(&format!("Via: {v}\n"));
    }
    head.push_str(&format!(
        "From: {}\n",
        req.header(HeaderName::From).unwrap()
    ));
    let to = req.header(HeaderName::To).unwrap();
    match tag {
        Some(t) if !to.contains("tag=") => head.push_str(&format!("To: {to};tag={t}\n")),
        _ => head.push_str(&format!("To: {to}\n")),
    }
    head.push_str(&format!("Call-ID: {}\n", req.call_id().unwrap()));
    head.push_str(&format!(
        "CSeq: {}\n",
        req.header(HeaderName::CSeq).unwrap()
    ));
    if (200..300).contains(&status) && req.method() == Some(&Method::Invite) {
        head.push_str("Contact: <sip:room@127.0.0.1:5080>\n");
    }
    with_body(head, body)
}

fn notify(call_id: &str, tag: &str, cseq: u32, frag: &str, state: &str) -> String {
    format!(
        "NOTIFY sip:15550100@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-n{cseq}
Max-Forwards: 70
From: \"Caller\" <sip:14255550123@127.0.0.1>;tag=caller1
To: <sip:15550100@127.0.0.1>;tag={tag}
Call-ID: {call_id}
CSeq: {cseq} NOTIFY
Contact: <sip:caller@127.0.0.1:5070>
Event: refer
Subscription-State: {state}
Content-Type: message/sipfrag;version=2.0
Content-Length: {}

{frag}",
        frag.len()
    )
}

/// An established inbound call and its key.
fn started(h: &mut Harness, call_id: &str) -> (CallKey, String) {
    let tag = established(h, call_id);
    let key = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            UaEvent::CallStarted { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    (key, tag)
}

/// REFERs the call and returns the REFER sent.
fn refer(h: &mut Harness, key: CallKey) -> Message {
    h.ua.refer(
        key,
        "sip:123456@192.0.2.50",
        Some("sip:15550100@127.0.0.1"),
        Duration::from_secs(30),
        h.now,
    )
    .unwrap();
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let (to, m) = sent.into_iter().next().unwrap();
    assert_eq!(to, PEER.parse::<SocketAddr>().unwrap());
    assert_eq!(m.method(), Some(&Method::Refer));
    assert_eq!(
        m.header(HeaderName::ReferTo),
        Some("<sip:123456@192.0.2.50>")
    );
    assert_eq!(m.header(HeaderName::CSeq), Some("1 REFER"));
    assert!(m.header(HeaderName::Contact).is_some());
    assert!(m.header_named("Referred-By").is_some());
    m
}

#[test]
fn refer_accepted_then_notify_100_and_200_succeeds_and_byes() {
    let mut h = Harness::new();
    let (key, tag) = started(&mut h, "xfer-1");
    let r = refer(&mut h, key);
    h.send(&response_to(&r, 202, "Accepted", None, None));
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty());

    h.send(&notify(
        "xfer-1",
        &tag,
        2,
        "SIP/2.0 100 Trying\r\n",
        "active;expires=60",
    ));
    assert_eq!(h.statuses(), vec![200]);
    assert!(matches!(
        h.events()[..],
        [UaEvent::TransferProgress { call, status: 100 }] if call == key
    ));

    h.send(&notify(
        "xfer-1",
        &tag,
        3,
        "SIP/2.0 200 OK\r\n",
        "terminated;reason=noresource",
    ));
    let sent = h.sent();
    assert_eq!(sent[0].1.status(), Some(200));
    let bye = &sent[1].1;
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(bye.header(HeaderName::CSeq), Some("2 BYE"));
    assert!(matches!(h.events()[..], [UaEvent::TransferSucceeded { call }] if call == key));
    h.send(&response_to(bye, 200, "OK", None, None));
    assert!(matches!(
        h.events()[..],
        [UaEvent::CallEnded {
            reason: EndReason::Transferred,
            ..
        }]
    ));
    assert!(h.pool_full());
}

#[test]
fn refused_refer_fails_and_keeps_the_call() {
    let mut h = Harness::new();
    let (key, _) = started(&mut h, "xfer-2");
    let r = refer(&mut h, key);
    h.send(&response_to(&r, 403, "Forbidden", None, None));
    assert!(matches!(
        h.events()[..],
        [UaEvent::TransferFailed { call, failure: TransferFailure::Refused(403) }] if call == key
    ));
    assert!(
        h.sent().is_empty(),
        "no BYE: the call path plays the apology first"
    );
    assert_eq!(h.ua.active_calls(), 1);
    // Another attempt is allowed, with the next CSeq.
    h.ua.refer(key, "sip:1@127.0.0.1", None, Duration::from_secs(30), h.now)
        .unwrap();
    let sent = h.sent();
    assert_eq!(sent[0].1.header(HeaderName::CSeq), Some("2 REFER"));
}

#[test]
fn notify_with_a_failure_status_fails_the_transfer() {
    let mut h = Harness::new();
    let (key, tag) = started(&mut h, "xfer-3");
    let r = refer(&mut h, key);
    h.send(&response_to(&r, 202, "Accepted", None, None));
    h.send(&notify(
        "xfer-3",
        &tag,
        2,
        "SIP/2.0 503 Service Unavailable\r\n",
        "terminated",
    ));
    assert_eq!(h.statuses(), vec![200]);
    assert!(matches!(
        h.events()[..],
        [UaEvent::TransferFailed {
            failure: TransferFailure::Status(503),
            ..
        }]
    ));
    // A late NOTIFY is still answered.
    h.send(&notify(
        "xfer-3",
        &tag,
        3,
        "SIP/2.0 200 OK\r\n",
        "terminated",
    ));
    assert_eq!(h.statuses(), vec![200]);
    assert!(h.events().is_empty());
}

#[test]
fn no_final_notify_times_out() {
    let mut h = Harness::new();
    let (key, tag) = started(&mut h, "xfer-4");
    let r = refer(&mut h, key);
    h.send(&response_to(&r, 202, "Accepted", None, None));
    h.send(&notify(
        "xfer-4",
        &tag,
        2,
        "SIP/2.0 100 Trying\r\n",
        "active",
    ));
    h.sent();
    h.events();
    h.advance(Duration::from_secs(29));
    assert!(h.events().is_empty());
    h.advance(Duration::from_secs(1));
    assert!(matches!(
        h.events()[..],
        [UaEvent::TransferFailed {
            failure: TransferFailure::Timeout,
            ..
        }]
    ));
    assert_eq!(h.ua.active_calls(), 1);
}

#[test]
fn unanswered_refer_fails_by_timer_f_or_the_timeout() {
    let mut h = Harness::new();
    let (key, _) = started(&mut h, "xfer-5");
    refer(&mut h, key);
    h.advance(Duration::from_secs(40));
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(events[0], UaEvent::TransferFailed { .. }));
}

#[test]
fn refer_needs_an_established_call() {
    let mut h = Harness::new();
    assert_eq!(
        h.ua.refer(
            CallKey(999),
            "sip:a@127.0.0.1",
            None,
            Duration::from_secs(1),
            h.now
        ),
        Err(ReferError::NoSuchCall)
    );
    let (key, _) = started(&mut h, "xfer-6");
    assert_eq!(
        h.ua.refer(key, "sip:a@b>\r\nX: y", None, Duration::from_secs(1), h.now),
        Err(ReferError::BadTarget)
    );
    refer(&mut h, key);
    assert_eq!(
        h.ua.refer(key, "sip:a@127.0.0.1", None, Duration::from_secs(1), h.now),
        Err(ReferError::InProgress)
    );
}

fn outbound() -> OutboundCall {
    OutboundCall {
        target: format!("sip:123456@{BRIDGE}"),
        headers: vec![("X-Conference-ID".into(), "123456".into())],
        from_user: "15550100".into(),
        codecs: vec![Codec::Pcmu],
        telephone_event_pt: Some(101),
        answer_timeout: Duration::from_secs(10),
        local: Some(LOCAL.parse().unwrap()),
    }
}

/// Places a call and returns it with the INVITE sent.
fn place(h: &mut Harness) -> (PlacedCall, Message) {
    let placed = h.ua.place_call(&outbound(), h.now).unwrap();
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let (to, invite) = sent.into_iter().next().unwrap();
    assert_eq!(to, BRIDGE.parse::<SocketAddr>().unwrap());
    assert_eq!(invite.method(), Some(&Method::Invite));
    assert_eq!(invite.request_uri(), "sip:123456@127.0.0.1:5080");
    assert_eq!(invite.header_named("X-Conference-ID"), Some("123456"));
    let body = std::str::from_utf8(invite.body()).unwrap();
    assert!(body.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{body}");
    assert!(!body.contains("PCMA"));
    assert_eq!(placed.rtp.rtp(), 20000);
    (placed, invite)
}

#[test]
fn placed_call_answered_is_acked_and_ends_on_the_bridges_bye() {
    let mut h = Harness::new();
    let (placed, invite) = place(&mut h);
    h.send_from(
        BRIDGE,
        &response_to(&invite, 180, "Ringing", Some("br1"), None),
    );
    h.send_from(
        BRIDGE,
        &response_to(&invite, 200, "OK", Some("br1"), Some(ANSWER)),
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let (to, ack) = &sent[0];
    assert_eq!(*to, BRIDGE.parse::<SocketAddr>().unwrap());
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri(), "sip:room@127.0.0.1:5080");
    assert_eq!(ack.header(HeaderName::CSeq), Some("1 ACK"));
    assert_eq!(ack.to().unwrap().tag, Some("br1"));
    assert_ne!(ack.via().unwrap().branch, invite.via().unwrap().branch);
    let events = h.events();
    let [UaEvent::OutboundAnswered { call, media }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(*call, placed.call);
    assert_eq!(media.payload_type, 0);
    assert_eq!(media.telephone_event.as_ref().unwrap().payload_type, 96);
    assert_eq!(media.remote_rtp, Some("127.0.0.1:40000".parse().unwrap()));

    // A retransmitted 2xx gets the same ACK again.
    h.send_from(
        BRIDGE,
        &response_to(&invite, 200, "OK", Some("br1"), Some(ANSWER)),
    );
    let again = h.sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.as_bytes(), ack.as_bytes());

    let from = invite.from().unwrap();
    let bye = format!(
        "BYE sip:15550100@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-bb1
Max-Forwards: 70
From: <sip:123456@127.0.0.1:5080>;tag=br1
To: <{}>;tag={}
Call-ID: {}
CSeq: 1 BYE
Content-Length: 0

",
        from.uri,
        from.tag.unwrap(),
        invite.call_id().unwrap()
    );
    h.send_from(BRIDGE, &bye);
    assert_eq!(h.statuses(), vec![200]);
    assert!(matches!(
        h.events()[..],
        [UaEvent::CallEnded { call, reason: EndReason::RemoteBye, .. }] if call == placed.call
    ));
    assert!(h.pool_full());
}

#[test]
fn placed_call_hung_up_by_us_gets_bye() {
    let mut h = Harness::new();
    let (placed, invite) = place(&mut h);
    h.send_from(
        BRIDGE,
        &response_to(&invite, 200, "OK", Some("br2"), Some(ANSWER)),
    );
    h.sent();
    h.events();
    h.ua.hang_up(placed.call, h.now);
    let sent = h.sent();
    let bye = &sent[0].1;
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(bye.header(HeaderName::CSeq), Some("2 BYE"));
    h.send_from(BRIDGE, &response_to(bye, 200, "OK", None, None));
    assert!(matches!(
        h.events()[..],
        [UaEvent::CallEnded {
            reason: EndReason::LocalHangUp,
            ..
        }]
    ));
    assert!(h.pool_full());
}

#[test]
fn busy_bridge_fails_the_call_and_gets_its_ack() {
    let mut h = Harness::new();
    let (placed, invite) = place(&mut h);
    h.send_from(
        BRIDGE,
        &response_to(&invite, 486, "Busy Here", Some("br3"), None),
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let ack = &sent[0].1;
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri(), invite.request_uri());
    assert_eq!(ack.via().unwrap().branch, invite.via().unwrap().branch);
    assert_eq!(ack.to().unwrap().tag, Some("br3"));
    assert!(matches!(
        h.events()[..],
        [UaEvent::OutboundFailed { call, failure: OutboundFailure::Status(486) }] if call == placed.call
    ));
    assert!(h.pool_full());
    assert_eq!(h.ua.active_calls(), 0);
}

#[test]
fn no_answer_in_time_cancels_and_fails() {
    let mut h = Harness::new();
    let (placed, invite) = place(&mut h);
    h.send_from(BRIDGE, &response_to(&invite, 100, "Trying", None, None));
    h.advance(Duration::from_secs(9));
    assert!(h.events().is_empty());
    h.advance(Duration::from_secs(1));
    let sent: Vec<Message> = h.sent().into_iter().map(|(_, m)| m).collect();
    let cancel = sent
        .iter()
        .find(|m| m.method() == Some(&Method::Cancel))
        .expect("CANCEL sent");
    assert_eq!(cancel.request_uri(), invite.request_uri());
    assert_eq!(cancel.via().unwrap().branch, invite.via().unwrap().branch);
    assert_eq!(cancel.header(HeaderName::CSeq), Some("1 CANCEL"));
    assert!(matches!(
        h.events()[..],
        [UaEvent::OutboundFailed { call, failure: OutboundFailure::NoAnswer }] if call == placed.call
    ));
    h.send_from(BRIDGE, &response_to(cancel, 200, "OK", Some("br4"), None));
    h.send_from(
        BRIDGE,
        &response_to(&invite, 487, "Request Terminated", Some("br4"), None),
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.method(), Some(&Method::Ack));
    assert!(h.events().is_empty(), "the failure is reported once");
    assert!(h.pool_full());
}

#[test]
fn caller_hanging_up_first_cancels_the_bridge_call() {
    let mut h = Harness::new();
    let (placed, invite) = place(&mut h);
    h.send_from(
        BRIDGE,
        &response_to(&invite, 180, "Ringing", Some("br5"), None),
    );
    h.ua.cancel_call(placed.call, h.now);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.method(), Some(&Method::Cancel));
    assert!(matches!(
        h.events()[..],
        [UaEvent::OutboundFailed {
            failure: OutboundFailure::Cancelled,
            ..
        }]
    ));
    // The bridge answered anyway (the 200 crossed our CANCEL): ACK, BYE.
    h.send_from(
        BRIDGE,
        &response_to(&invite, 200, "OK", Some("br5"), Some(ANSWER)),
    );
    let methods: Vec<Method> = h
        .sent()
        .into_iter()
        .filter_map(|(_, m)| m.method().cloned())
        .collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert!(h.events().is_empty());
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let mut h = Harness::new();
    let (_, invite) = place(&mut h);
    h.advance(Duration::from_secs(10));
    let sent = h.sent();
    assert!(
        sent.iter()
            .all(|(_, m)| m.method() == Some(&Method::Invite)),
        "no CANCEL before a provisional response (§9.1)"
    );
    assert!(matches!(
        h.events()[..],
        [UaEvent::OutboundFailed {
            failure: OutboundFailure::NoAnswer,
            ..
        }]
    ));
    h.send_from(BRIDGE, &response_to(&invite, 100, "Trying", None, None));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.method(), Some(&Method::Cancel));
    // No final response ever: given up after 64·T1.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.ua.active_calls(), 0);
    assert!(h.pool_full());
}

#[test]
fn silent_bridge_times_out_by_timer_b() {
    let mut h = Harness::new();
    let mut call = outbound();
    call.answer_timeout = Duration::from_secs(60);
    let placed = h.ua.place_call(&call, h.now).unwrap();
    h.advance(Duration::from_secs(33));
    assert!(matches!(
        h.events()[..],
        [UaEvent::OutboundFailed { call, failure: OutboundFailure::Timeout }] if call == placed.call
    ));
    assert!(h.pool_full());
}

#[test]
fn targets_need_no_dns() {
    let mut h = Harness::new();
    let mut call = outbound();
    call.target = "sip:123@bridge.example.net".into();
    assert_eq!(
        h.ua.place_call(&call, h.now),
        Err(PlaceCallError::NeedsDns("bridge.example.net".into()))
    );
    call.target = "sip:123@localhost:5090".into();
    assert!(h.ua.place_call(&call, h.now).is_ok());
    let (to, _) = h.sent().into_iter().next().unwrap();
    assert_eq!(to, "127.0.0.1:5090".parse::<SocketAddr>().unwrap());
    call.target = "sip:123@127.0.0.1;transport=tcp".into();
    assert_eq!(
        h.ua.place_call(&call, h.now),
        Err(PlaceCallError::UnsupportedTransport)
    );
    call.target = "sip:123@127.0.0.1".into();
    call.headers = vec![("X-Evil".into(), "a\r\nVia: x".into())];
    assert!(matches!(
        h.ua.place_call(&call, h.now),
        Err(PlaceCallError::BadHeader(_))
    ));
    call.headers.clear();
    call.local = None;
    assert_eq!(
        h.ua.place_call(&call, h.now),
        Err(PlaceCallError::NoLocalAddress)
    );
}

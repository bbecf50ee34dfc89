//! Black-box tests of the SIP front end: a real server on loopback
//! ephemeral ports, driven by a small SIP test client.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use common::*;
use dialgate::config::{Cidr, Config, DialInNumber, ListenSpec, Transport, Trunk};
use dialgate::server::{Server, ServerHandle, ServerSettings};

/// Each server gets its own RTP range so parallel tests do not compete.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

fn config() -> Config {
    let mut c = Config::embedded();
    c.sip.listen = vec![
        ListenSpec {
            transport: Transport::Udp,
            addr: "127.0.0.1:0".parse().unwrap(),
        },
        ListenSpec {
            transport: Transport::Tcp,
            addr: "127.0.0.1:0".parse().unwrap(),
        },
    ];
    c.dial_in_numbers.push(DialInNumber {
        dtmf_mode: None,
        number: "+1 555 0100".into(),
        language: "en".into(),
        label: "toll".into(),
        bridge: None,
    });
    let base = 40_000 + NEXT_RANGE.fetch_add(1, Ordering::Relaxed) * 200;
    c.rtp.port_min = base;
    c.rtp.port_max = base + 99;
    c.sip.shutdown_grace = Duration::from_millis(500);
    c
}

async fn start_with(settings: ServerSettings) -> ServerHandle {
    Server::start_with(settings).await.unwrap()
}

async fn start() -> ServerHandle {
    start_with(ServerSettings::from_config(&config())).await
}

fn udp_addr(h: &ServerHandle) -> std::net::SocketAddr {
    h.local_addr(Transport::Udp).unwrap()
}

fn tcp_addr(h: &ServerHandle) -> std::net::SocketAddr {
    h.local_addr(Transport::Tcp).unwrap()
}

/// Waits (generously) until the server's stats satisfy `ok`.
async fn wait_for(h: &ServerHandle, ok: impl Fn(&dialgate::server::ServerStats) -> bool) -> bool {
    for _ in 0..100 {
        if ok(&h.stats()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// INVITE/100/200/ACK/BYE/200 on one client. Returns the 200's SDP.
async fn full_call(client: &mut SipClient) -> String {
    let mut call = CallBuilder::new(client, "15550100");
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    let trying = client.recv().await;
    assert_eq!(trying.status(), Some(100), "{}", trying.raw);
    let ok = client.final_response("INVITE").await;
    assert_eq!(ok.status(), Some(200), "{}", ok.raw);
    let tag = ok.to_tag().expect("200 carries a To tag");
    assert!(ok.header("contact").is_some());
    assert_eq!(ok.header("content-type"), Some("application/sdp"));
    client.send(&call.in_dialog("ACK", &tag, None)).await;
    client.send(&call.in_dialog("BYE", &tag, None)).await;
    let bye_ok = client.final_response("BYE").await;
    assert_eq!(bye_ok.status(), Some(200));
    ok.body
}

#[tokio::test]
async fn options_over_udp_and_tcp() {
    let h = start().await;
    for mut client in [
        SipClient::udp(udp_addr(&h)).await,
        SipClient::tcp(tcp_addr(&h)).await,
    ] {
        client.send(&options(&client, 70)).await;
        let r = client.recv().await;
        assert_eq!(r.status(), Some(200), "{}", r.raw);
        assert!(r.header("allow").unwrap().contains("INVITE"));
    }
    h.shutdown();
    h.join().await.unwrap();
}

#[tokio::test]
async fn invite_to_unknown_number_gets_404() {
    let h = start().await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let call = CallBuilder::new(&client, "999");
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    let r = client.final_response("INVITE").await;
    assert_eq!(r.status(), Some(404));
    client
        .send(&call.ack_non_2xx(&r.to_tag().unwrap_or_default()))
        .await;
}

#[tokio::test]
async fn invite_from_foreign_source_gets_403() {
    let mut c = config();
    c.trunks = vec![Trunk {
        dtmf_mode: None,
        name: "carrier".into(),
        sources: vec![Cidr {
            network: "10.0.0.0".parse().unwrap(),
            prefix: 8,
        }],
    }];
    let h = start_with(ServerSettings::from_config(&c)).await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let call = CallBuilder::new(&client, "15550100");
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    let r = client.final_response("INVITE").await;
    assert_eq!(r.status(), Some(403));
}

#[tokio::test]
async fn full_call_over_udp() {
    let h = start().await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let sdp = full_call(&mut client).await;
    assert!(sdp.contains("m=audio "), "{sdp}");
    assert!(sdp.contains("telephone-event/8000"), "{sdp}");
    assert!(
        wait_for(&h, |s| s.active_calls == 0
            && s.rtp_ports_available == s.rtp_ports_capacity)
        .await
    );
    assert_eq!(h.stats().counters.calls_answered, 1);
}

#[tokio::test]
async fn full_call_over_tcp() {
    let h = start().await;
    let mut client = SipClient::tcp(tcp_addr(&h)).await;
    full_call(&mut client).await;
    assert!(
        wait_for(&h, |s| s.active_calls == 0
            && s.rtp_ports_available == s.rtp_ports_capacity)
        .await
    );
}

#[tokio::test]
async fn retransmitted_invite_makes_one_call() {
    let h = start().await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let mut call = CallBuilder::new(&client, "15550100");
    let invite = call.invite(Some(&offer_sdp(30_000)));
    client.send(&invite).await;
    let first = client.final_response("INVITE").await;
    client.send(&invite).await;
    let second = client.final_response("INVITE").await;
    assert_eq!(first.status(), Some(200));
    assert_eq!(second.status(), Some(200));
    assert_eq!(first.to_tag(), second.to_tag());
    assert!(wait_for(&h, |s| s.active_calls == 1).await);
    let tag = first.to_tag().unwrap();
    client.send(&call.in_dialog("ACK", &tag, None)).await;
    client.send(&call.in_dialog("BYE", &tag, None)).await;
    assert_eq!(client.final_response("BYE").await.status(), Some(200));
}

#[tokio::test]
async fn cancel_before_answer_gets_487() {
    let mut settings = ServerSettings::from_config(&config());
    settings.ua.answer_delay = Duration::from_secs(30);
    let h = start_with(settings).await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let call = CallBuilder::new(&client, "15550100");
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    // 100 then 180.
    loop {
        let m = client.recv().await;
        if m.status() == Some(180) {
            break;
        }
    }
    client.send(&call.cancel()).await;
    let mut got_cancel_ok = false;
    let mut got_487 = None;
    while !(got_cancel_ok && got_487.is_some()) {
        let m = client.recv().await;
        match (m.status(), m.cseq_method()) {
            (Some(200), "CANCEL") => got_cancel_ok = true,
            (Some(487), "INVITE") => got_487 = Some(m),
            _ => {}
        }
    }
    let tag = got_487.unwrap().to_tag().unwrap();
    client.send(&call.ack_non_2xx(&tag)).await;
    assert!(
        wait_for(&h, |s| s.active_calls == 0
            && s.rtp_ports_available == s.rtp_ports_capacity)
        .await
    );
}

#[tokio::test]
async fn no_common_codec_gets_488() {
    let h = start().await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let call = CallBuilder::new(&client, "15550100");
    let g729 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    client.send(&call.invite(Some(g729))).await;
    let r = client.final_response("INVITE").await;
    assert_eq!(r.status(), Some(488));
    client
        .send(&call.ack_non_2xx(&r.to_tag().unwrap_or_default()))
        .await;
    assert!(wait_for(&h, |s| s.rtp_ports_available == s.rtp_ports_capacity).await);
}

#[tokio::test]
async fn malformed_messages_are_answered_or_dropped_and_the_daemon_keeps_working() {
    let h = start().await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    // Garbage: dropped.
    client.send_raw(b"\x00\x01\x02 not sip at all").await;
    client.send_raw(b"").await;
    client.send_raw(&[0xff; 3000]).await;
    // A request without Call-ID: 400 naming it.
    let text = options(&client, 70);
    let no_call_id: String = text
        .split("\r\n")
        .filter(|l| !l.starts_with("Call-ID"))
        .collect::<Vec<_>>()
        .join("\r\n");
    client.send(&no_call_id).await;
    let r = client.recv().await;
    assert_eq!(r.status(), Some(400), "{}", r.raw);
    assert!(r.reason().contains("Call-ID"), "{}", r.reason());
    // A bad Content-Length.
    let bad_len = options(&client, 70).replace("Content-Length: 0", "Content-Length: banana");
    client.send(&bad_len).await;
    if let Some(r) = client.recv_within(Duration::from_secs(2)).await {
        assert_eq!(r.status(), Some(400), "{}", r.raw);
    }
    // Still answering.
    client.send(&options(&client, 70)).await;
    assert_eq!(client.recv().await.status(), Some(200));
    assert!(h.stats().counters.malformed_dropped >= 1);
    // And over TCP: an oversized message gets 513 and the connection closes.
    let mut tcp = SipClient::tcp(tcp_addr(&h)).await;
    let huge = format!(
        "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP {};branch=z9hG4bK-big\r\nX-Pad: {}\r\n",
        tcp.local,
        "a".repeat(70_000)
    );
    tcp.send_raw(huge.as_bytes()).await;
    let r = tcp.recv().await;
    assert_eq!(r.status(), Some(513), "{}", r.start);
    assert!(tcp.closed_within(Duration::from_secs(5)).await);
    let mut client = SipClient::udp(udp_addr(&h)).await;
    client.send(&options(&client, 70)).await;
    assert_eq!(client.recv().await.status(), Some(200));
}

#[tokio::test]
async fn tcp_framing_handles_split_and_joined_messages() {
    let h = start().await;
    let mut tcp = SipClient::tcp(tcp_addr(&h)).await;
    // Two messages in one write.
    let two = format!("{}{}", options(&tcp, 70), options(&tcp, 70));
    tcp.send_raw(two.as_bytes()).await;
    assert_eq!(tcp.recv().await.status(), Some(200));
    assert_eq!(tcp.recv().await.status(), Some(200));
    // One message across many writes, with keep-alive CRLFs first.
    tcp.send_raw(b"\r\n\r\n").await;
    let one = options(&tcp, 70);
    for chunk in one.as_bytes().chunks(7) {
        tcp.send_raw(chunk).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(tcp.recv().await.status(), Some(200));
}

#[tokio::test]
async fn max_forwards_zero_gets_483() {
    let h = start().await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    client.send(&options(&client, 0)).await;
    assert_eq!(client.recv().await.status(), Some(483));
}

#[tokio::test]
async fn port_pool_is_full_again_after_many_calls() {
    let h = start().await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let udp = udp_addr(&h);
        let tcp = tcp_addr(&h);
        tasks.push(tokio::spawn(async move {
            let mut client = if i % 2 == 0 {
                SipClient::udp(udp).await
            } else {
                SipClient::tcp(tcp).await
            };
            for _ in 0..10 {
                full_call(&mut client).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        wait_for(&h, |s| s.active_calls == 0
            && s.rtp_ports_available == s.rtp_ports_capacity)
        .await
    );
    assert_eq!(h.stats().counters.calls_answered, 40);
}

#[tokio::test]
async fn shutdown_refuses_new_calls_then_byes_running_ones_and_stops() {
    let h = start().await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let mut call = CallBuilder::new(&client, "15550100");
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    let ok = client.final_response("INVITE").await;
    let tag = ok.to_tag().unwrap();
    client.send(&call.in_dialog("ACK", &tag, None)).await;
    assert!(wait_for(&h, |s| s.active_calls == 1).await);

    h.shutdown();
    // New calls get 503 (the shutdown may take a moment to be seen).
    let mut refused = false;
    for _ in 0..50 {
        let mut other = SipClient::udp(udp_addr(&h)).await;
        other.send(&options(&other, 70)).await;
        if other.recv().await.status() == Some(503) {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused);
    // After the grace period the running call gets a BYE.
    let bye = client.request("BYE").await;
    client.send(&ok_for(&bye)).await;
    tokio::time::timeout(Duration::from_secs(10), h.join())
        .await
        .expect("server stops after draining")
        .unwrap();
}

#[tokio::test]
async fn full_call_over_ipv6_when_available() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let mut c = config();
    c.sip.listen = vec![
        ListenSpec {
            transport: Transport::Udp,
            addr: "[::1]:0".parse().unwrap(),
        },
        ListenSpec {
            transport: Transport::Tcp,
            addr: "[::1]:0".parse().unwrap(),
        },
    ];
    c.rtp.bind_address = "::1".parse().unwrap();
    let h = start_with(ServerSettings::from_config(&c)).await;
    let mut client = SipClient::udp6(udp_addr(&h)).await;
    let sdp = full_call(&mut client).await;
    assert!(sdp.contains("IN IP6 ::1"), "{sdp}");
    let mut client = SipClient::tcp(tcp_addr(&h)).await;
    full_call(&mut client).await;
    assert!(
        wait_for(&h, |s| s.active_calls == 0
            && s.rtp_ports_available == s.rtp_ports_capacity)
        .await
    );
}

#[tokio::test]
async fn our_bye_opens_a_new_tcp_connection_when_the_callers_is_gone() {
    let h = start().await;
    // The caller's Contact is a listener of its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = SipClient::tcp(tcp_addr(&h)).await;
    let mut call = CallBuilder::new(&client, "15550100");
    call.contact = listener.local_addr().unwrap();
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    let ok = client.final_response("INVITE").await;
    let tag = ok.to_tag().unwrap();
    client.send(&call.in_dialog("ACK", &tag, None)).await;
    assert!(wait_for(&h, |s| s.active_calls == 1).await);
    drop(client);

    // Shutdown: after the grace period the call gets a BYE, over a new
    // connection to the Contact address.
    h.shutdown();
    let (stream, _) = tokio::time::timeout(RECV_TIMEOUT, listener.accept())
        .await
        .expect("the server connects for its BYE")
        .unwrap();
    let mut back = SipClient::from_stream(stream);
    let bye = back.request("BYE").await;
    assert_eq!(bye.to_tag().as_deref(), Some(call.from_tag.as_str()));
    back.send(&ok_for(&bye)).await;
    tokio::time::timeout(Duration::from_secs(10), h.join())
        .await
        .expect("server stops after draining")
        .unwrap();
}

#[tokio::test]
async fn lost_ack_ends_the_call_with_bye() {
    // Short timers so 64·T1 passes quickly; nothing here asserts a duration.
    let mut c = config();
    c.sip.timers.t1 = Duration::from_millis(10);
    c.sip.timers.t2 = Duration::from_millis(40);
    c.sip.timers.t4 = Duration::from_millis(50);
    let h = start_with(ServerSettings::from_config(&c)).await;
    let mut client = SipClient::udp(udp_addr(&h)).await;
    let call = CallBuilder::new(&client, "15550100");
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    // The 200 is retransmitted while no ACK comes, then a BYE follows.
    let mut oks = 0;
    let bye = loop {
        let m = client.recv().await;
        if m.status() == Some(200) {
            oks += 1;
        }
        if m.method() == Some("BYE") {
            break m;
        }
    };
    assert!(oks >= 2, "the 2xx is retransmitted until the ACK");
    client.send(&ok_for(&bye)).await;
    assert!(
        wait_for(&h, |s| s.active_calls == 0
            && s.rtp_ports_available == s.rtp_ports_capacity)
        .await
    );
}

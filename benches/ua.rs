//! User agent core costs: a whole call (INVITE → 100/200, ACK, BYE → 200)
//! and an OPTIONS ping, through parse, routing, transactions, dialog and
//! SDP offer/answer, with a fake clock and no sockets.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use dialgate::config::{Config, DialInNumber};
use dialgate::media::ports::RtpPortPool;
use dialgate::sip::transport::Transport;
use dialgate::sip::ua::{UaSettings, UserAgent};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

fn request(method: &str, n: u64, to_tag: Option<&str>, cseq: u32, body: &str) -> Bytes {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    Bytes::from(format!(
        "{method} sip:+15550100@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK{n:x}{method};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:+14255550123@192.0.2.20>;tag=f{n}\r\n\
To: <sip:+15550100@192.0.2.1>{to_tag}\r\nCall-ID: {n}@192.0.2.20\r\nCSeq: {cseq} {method}\r\n\
Contact: <sip:caller@192.0.2.20:5060>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn ua() -> UserAgent {
    let mut config = Config::embedded();
    config.sip.allow_any_source = true;
    config.dial_in_numbers.push(DialInNumber {
        dtmf_mode: None,
        number: "+1 555 0100".into(),
        language: "en".into(),
        label: "toll".into(),
        bridge: None,
    });
    UserAgent::new(
        UaSettings::from_config(&config),
        Box::new(RtpPortPool::new(20000, 29999).expect("range")),
    )
}

fn bench(c: &mut Criterion) {
    let local = "192.0.2.1:5060".parse().expect("addr");
    let remote = "192.0.2.20:5060".parse().expect("addr");
    c.bench_function("ua_full_call", |b| {
        let mut ua = ua();
        let mut now = Instant::now();
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            now += Duration::from_millis(1);
            ua.handle_datagram(
                Transport::Udp,
                local,
                remote,
                None,
                request("INVITE", n, None, 1, SDP),
                now,
            );
            let mut tag = String::new();
            while let Some(t) = ua.poll_transmit() {
                if t.bytes.starts_with(b"SIP/2.0 200") {
                    let text = String::from_utf8_lossy(&t.bytes);
                    if let Some(i) = text.find(";tag=") {
                        tag = text[i + 5..]
                            .chars()
                            .take_while(|c| c.is_ascii_hexdigit())
                            .collect();
                    }
                }
            }
            ua.handle_datagram(
                Transport::Udp,
                local,
                remote,
                None,
                request("ACK", n, Some(&tag), 1, ""),
                now,
            );
            ua.handle_datagram(
                Transport::Udp,
                local,
                remote,
                None,
                request("BYE", n, Some(&tag), 2, ""),
                now,
            );
            while let Some(t) = ua.poll_transmit() {
                black_box(t);
            }
            while let Some(e) = ua.poll_event() {
                black_box(e);
            }
            // Let finished transactions expire now and then.
            if n % 1000 == 0 {
                now += Duration::from_secs(40);
                ua.handle_timeout(now);
            }
        });
    });
    c.bench_function("ua_options", |b| {
        let mut ua = ua();
        let now = Instant::now();
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            ua.handle_datagram(
                Transport::Udp,
                local,
                remote,
                None,
                request("OPTIONS", n, None, 1, ""),
                now,
            );
            while let Some(t) = ua.poll_transmit() {
                black_box(t);
            }
            if n % 1000 == 0 {
                ua.handle_timeout(now + Duration::from_secs(40));
            }
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

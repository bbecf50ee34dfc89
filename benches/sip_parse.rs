//! SIP message parse/serialise cost on a typical trunk INVITE with SDP,
//! side by side with rsip 0.4 on the same bytes.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dialgate::sip::message::{Message, ResponseBuilder};
use std::hint::black_box;

const SDP: &str = "v=0\r\n\
o=carrier 2890844526 2890844526 IN IP4 203.0.113.5\r\n\
s=-\r\n\
c=IN IP4 203.0.113.5\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:+14255550100@gw.dialgate.example.com:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-524287-1---7f3a2b9c1d;rport\r\n\
Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-88af31c2;received=198.51.100.20\r\n\
Max-Forwards: 69\r\n\
From: \"Alice Caller\" <sip:+12065550123@carrier.example.net;user=phone>;tag=8f2c1a77\r\n\
To: \"Dial-in\" <sip:+14255550100@gw.dialgate.example.com;user=phone>\r\n\
Call-ID: 6a1e4b2c9d8f7e3a@203.0.113.5\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+12065550123@203.0.113.5:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: CarrierSBC/4.2\r\n\
P-Asserted-Identity: \"Alice Caller\" <sip:+12065550123@carrier.example.net;user=phone>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n\
{SDP}",
        SDP.len()
    )
}

fn bench(c: &mut Criterion) {
    let text = invite();
    let bytes = Bytes::from(text.clone());
    let mut group = c.benchmark_group("sip_invite");
    group.throughput(Throughput::Bytes(bytes.len() as u64));

    group.bench_function("dialgate_parse", |b| {
        b.iter(|| Message::parse(black_box(bytes.clone())).map(|m| m.header_count()))
    });
    group.bench_function("dialgate_parse_typed", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(bytes.clone())).ok()?;
            let via = m.via().ok()?;
            let from = m.from().ok()?;
            let to = m.to().ok()?;
            let cseq = m.cseq().ok()?;
            let call_id = m.call_id().ok()?;
            Some((
                via.branch.map(str::len),
                from.tag,
                to.uri.len(),
                cseq.seq,
                call_id.len(),
            ))
            .map(|t| black_box(t).3)
        })
    });
    group.bench_function("dialgate_parse_validate", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(bytes.clone())).ok()?;
            m.validate_request().ok()
        })
    });
    let request = Message::parse(bytes.clone()).expect("bench INVITE parses");
    let answer = SDP.replace("carrier", "dialgate");
    group.bench_function("dialgate_build_200_with_sdp", |b| {
        b.iter(|| {
            ResponseBuilder::for_request(black_box(&request), 200, "OK")
                .to_tag("a8b3c4d5")
                .header("Contact", "<sip:gw@192.0.2.1:5060>")
                .body("application/sdp", answer.as_bytes())
                .build()
        })
    });
    group.bench_function("rsip_parse", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(text.as_bytes())).is_ok())
    });
    group.bench_function("rsip_parse_typed", |b| {
        use rsip::prelude::*;
        b.iter(|| {
            let rsip::SipMessage::Request(r) =
                rsip::SipMessage::try_from(black_box(text.as_bytes())).ok()?
            else {
                return None;
            };
            let via = r.via_header().ok()?.typed().ok()?;
            let from = r.from_header().ok()?.typed().ok()?;
            let to = r.to_header().ok()?.typed().ok()?;
            let cseq = r.cseq_header().ok()?.typed().ok()?;
            let call_id = r.call_id_header().ok()?.value().len();
            Some((
                via.branch().is_some(),
                from.tag().is_some(),
                to.uri.to_string().len(),
                cseq.seq,
                call_id,
            ))
            .map(|t| black_box(t).3)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

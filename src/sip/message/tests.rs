//! Unit tests for the message parser and serialiser.

use super::*;
use crate::sip::uri::Host;

pub(crate) const INVITE: &str = "INVITE sip:+14255550100@gw.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKnashds8;received=198.51.100.2\r\n\
Max-Forwards: 70\r\n\
From: \"Alice, A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: <sip:+14255550100@gw.example.com;user=phone>\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn parse(s: &str) -> Result<Message, ParseError> {
    Message::parse(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn parses_invite() {
    let m = parse(INVITE).unwrap();
    assert!(m.is_request());
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(
        m.request_uri(),
        "sip:+14255550100@gw.example.com;user=phone"
    );
    assert_eq!(m.status(), None);
    assert_eq!(m.header_count(), 10);
    assert_eq!(
        m.call_id().unwrap(),
        "a84b4c76e66710@pc33.atlanta.example.com"
    );
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 314159,
            method: Method::Invite
        }
    );
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.content_length().unwrap(), Some(4));
    assert_eq!(m.content_type(), Some("application/sdp"));
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(&m.body_bytes()[..], b"v=0\n");
    let from = m.from().unwrap();
    assert_eq!(from.display_name, Some("Alice, A."));
    assert_eq!(from.uri, "sip:alice@atlanta.example.com");
    assert_eq!(from.tag, Some("1928301774"));
    let to = m.to().unwrap();
    assert_eq!(to.display_name, None);
    assert_eq!(to.tag, None);
    assert_eq!(to.uri, "sip:+14255550100@gw.example.com;user=phone");
    let via = m.via().unwrap();
    assert_eq!(via.transport, Transport::Udp);
    assert_eq!(via.host, Host::Ipv4("192.0.2.10".parse().unwrap()));
    assert_eq!(via.port, Some(5060));
    assert_eq!(via.branch, Some("z9hG4bK776asdhds"));
    assert_eq!(via.rport, Rport::Requested);
    assert!(via.has_rfc3261_branch());
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].received, Some("198.51.100.2"));
    assert_eq!(vias[1].port, None);
    match m.contact().unwrap() {
        Some(Contact::Addr(a)) => assert_eq!(a.uri, "sip:alice@192.0.2.10:5060"),
        other => panic!("{other:?}"),
    }
    m.validate_request().unwrap();
    assert_eq!(m.as_bytes(), INVITE.as_bytes());
    assert_eq!(m.to_string(), INVITE);
}

#[test]
fn parses_response() {
    let m = parse(
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=x\r\n\
         From: <sip:a@h>;tag=y\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert!(m.is_response());
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.reason(), Some("Ringing"));
    assert_eq!(m.request_uri(), "");
    assert_eq!(m.method(), None);
    assert_eq!(m.start_line(), "SIP/2.0 180 Ringing");
    assert_eq!(m.to().unwrap().tag, Some("x"));
    assert!(m.body().is_empty());
}

#[test]
fn response_with_empty_reason() {
    let m = parse("SIP/2.0 200\r\nCall-ID: c\r\n\r\n").unwrap();
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.reason(), Some(""));
    let m = parse("SIP/2.0 200 Very  OK indeed \r\n\r\n").unwrap();
    assert_eq!(m.reason(), Some("Very  OK indeed"));
}

#[test]
fn compact_forms_and_case() {
    let m = parse(
        "BYE sip:b@h SIP/2.0\r\nv: SIP/2.0/TCP h:5070;branch=z9hG4bKa\r\nf: <sip:a@h>;tag=1\r\n\
         T: sip:b@h\r\ni: abc\r\ncseq: 2 BYE\r\nM: <sip:a@h>\r\nl: 0\r\nc: text/plain\r\n\
         k: timer\r\ns: hi\r\ne: gzip\r\nr: <sip:c@h>\r\no: refer\r\nu: talk\r\nx: 1800\r\n\
         b: <sip:d@h>\r\nMAX-FORWARDS: 5\r\n\r\n",
    )
    .unwrap();
    m.validate_request().unwrap();
    assert_eq!(m.via().unwrap().transport, Transport::Tcp);
    assert_eq!(m.from().unwrap().tag, Some("1"));
    assert_eq!(m.to().unwrap().uri, "sip:b@h");
    assert_eq!(m.call_id().unwrap(), "abc");
    assert_eq!(m.content_length().unwrap(), Some(0));
    assert_eq!(m.content_type(), Some("text/plain"));
    assert_eq!(m.header(HeaderName::Supported), Some("timer"));
    assert_eq!(m.header(HeaderName::Subject), Some("hi"));
    assert_eq!(m.header(HeaderName::ContentEncoding), Some("gzip"));
    assert_eq!(m.refer_to().unwrap().unwrap().uri, "sip:c@h");
    assert_eq!(m.header(HeaderName::Event), Some("refer"));
    assert_eq!(m.header(HeaderName::AllowEvents), Some("talk"));
    assert_eq!(m.header(HeaderName::SessionExpires), Some("1800"));
    assert_eq!(m.header(HeaderName::ReferredBy), Some("<sip:d@h>"));
    assert_eq!(m.max_forwards().unwrap(), Some(5));
    assert_eq!(m.header_named("call-id"), Some("abc"));
    assert_eq!(m.header_named("I"), Some("abc"));
}

#[test]
fn lws_around_colon_and_folding() {
    let m = parse(
        "OPTIONS sip:h SIP/2.0\r\nVia  :\tSIP / 2.0 / UDP h ;branch=z9hG4bKx\r\n\
         Subject: first\r\n  second\r\n\tthird\r\nTo:\r\n <sip:h>\r\nFrom: <sip:a@h>;tag=1\r\n\
         Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
    )
    .unwrap();
    m.validate_request().unwrap();
    assert_eq!(m.via().unwrap().branch, Some("z9hG4bKx"));
    let subject = m.header(HeaderName::Subject).unwrap();
    assert_eq!(
        subject.split_whitespace().collect::<Vec<_>>(),
        ["first", "second", "third"]
    );
    assert!(!subject.contains('\n'));
    assert_eq!(m.to().unwrap().uri, "sip:h");
}

#[test]
fn bare_lf_and_leading_crlf() {
    let m = parse(
        "\r\n\r\nOPTIONS sip:h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\nTo: <sip:h>\n\
         From: <sip:a@h>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\n\nbody",
    )
    .unwrap();
    m.validate_request().unwrap();
    assert_eq!(m.start_line(), "OPTIONS sip:h SIP/2.0");
    assert_eq!(m.body(), b"body");
}

#[test]
fn unknown_method_and_headers() {
    let m = parse(
        "FOOBAR sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:h>\r\n\
         From: <sip:a@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 FOOBAR\r\nX-Custom: yes\r\n\r\n",
    )
    .unwrap();
    m.validate_request().unwrap();
    assert_eq!(m.method().unwrap().as_str(), "FOOBAR");
    assert!(matches!(m.method(), Some(Method::Extension(_))));
    assert_eq!(m.header_named("x-custom"), Some("yes"));
    let h: Vec<_> = m
        .iter_headers()
        .filter(|h| h.name == HeaderName::Other)
        .collect();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].raw_name, "X-Custom");
}

#[test]
fn methods_are_case_sensitive() {
    let m = parse("invite sip:h SIP/2.0\r\nCSeq: 1 invite\r\n\r\n").unwrap();
    assert_eq!(m.method().unwrap().as_str(), "invite");
    assert_ne!(m.method(), Some(&Method::Invite));
    assert_eq!(Method::from_token(b"INVITE"), Some(Method::Invite));
    assert_eq!(Method::from_token(b"BAD METHOD"), None);
    assert_eq!(Method::from_token(b""), None);
}

#[test]
fn multi_value_headers_and_quoted_commas() {
    let m = parse(
        "INVITE sip:h SIP/2.0\r\n\
         Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP [2001:db8::1]:5062;branch=z9hG4bK2\r\n\
         Via: SIP/2.0/UDP c;branch=z9hG4bK3\r\n\
         Contact: \"Bob, Jr\" <sip:bob@h;x=a,b>, <sip:bob@other>;q=0.5\r\n\
         Route: <sip:p1@h;lr>,<sip:p2@h;lr>\r\n\
         Record-Route: <sip:rr@h;lr>\r\n\r\n",
    )
    .unwrap();
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].host, Host::Ipv6("2001:db8::1".parse().unwrap()));
    assert_eq!(vias[1].port, Some(5062));
    assert_eq!(vias[2].branch, Some("z9hG4bK3"));
    let contacts: Vec<_> = m.contacts().collect::<Result<_, _>>().unwrap();
    assert_eq!(contacts.len(), 2);
    let first = contacts[0].addr().unwrap();
    assert_eq!(first.display_name, Some("Bob, Jr"));
    assert_eq!(first.uri, "sip:bob@h;x=a,b");
    assert_eq!(contacts[1].addr().unwrap().params.get("q"), Some("0.5"));
    let routes: Vec<_> = m.routes().collect::<Result<_, _>>().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[1].uri, "sip:p2@h;lr");
    assert_eq!(m.record_routes().count(), 1);
    assert_eq!(m.header_values(HeaderName::Via).count(), 3);
    assert_eq!(m.headers(HeaderName::Via).count(), 2);
}

#[test]
fn contact_star_and_addr_spec_params() {
    let m = parse(
        "REGISTER sip:h SIP/2.0\r\nContact: *\r\nTo: sip:a@h;tag=xyz;foo\r\nExpires: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(m.contact().unwrap(), Some(Contact::Star));
    let to = m.to().unwrap();
    // §20.10: the params after an addr-spec belong to the header.
    assert_eq!(to.uri, "sip:a@h");
    assert_eq!(to.tag, Some("xyz"));
    assert!(to.params.contains("foo"));
    assert_eq!(m.expires().unwrap(), Some(0));
}

#[test]
fn ipv6_request_uri_and_via() {
    let m = parse(
        "INVITE sip:14255550100@[2001:db8::5]:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8::9];branch=z9hG4bKv6;rport=5061;received=2001:db8::10\r\n\
         To: <sip:14255550100@[2001:db8::5]>\r\nFrom: <sip:a@[::1]>;tag=1\r\nCall-ID: v6\r\n\
         CSeq: 9 INVITE\r\n\r\n",
    )
    .unwrap();
    m.validate_request().unwrap();
    let via = m.via().unwrap();
    assert_eq!(via.host.ip(), Some("2001:db8::9".parse().unwrap()));
    assert_eq!(via.port, None);
    assert_eq!(via.rport, Rport::Value(5061));
    assert_eq!(via.received, Some("2001:db8::10"));
    let uri = crate::sip::uri::Uri::parse(m.request_uri()).unwrap();
    assert_eq!(uri.port, Some(5060));
}

#[test]
fn tel_request_uri() {
    let m = parse(
        "INVITE tel:+1-425-555-0100 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKt\r\n\
         To: <tel:+1-425-555-0100>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: t\r\nCSeq: 1 INVITE\r\n\r\n",
    )
    .unwrap();
    m.validate_request().unwrap();
    let uri = crate::sip::uri::Uri::parse(m.request_uri()).unwrap();
    assert_eq!(
        crate::sip::uri::normalize_dialed_number(&uri).as_deref(),
        Some("14255550100")
    );
}

#[test]
fn validate_request_reasons() {
    let base = [
        "Via: SIP/2.0/UDP h;branch=z9hG4bKx",
        "From: <sip:a@h>;tag=1",
        "To: <sip:b@h>",
        "Call-ID: x",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
    ];
    let build = |skip: usize, replace: Option<&str>| {
        let mut s = String::from("INVITE sip:b@h SIP/2.0\r\n");
        for (i, h) in base.iter().enumerate() {
            if i == skip {
                if let Some(r) = replace {
                    s.push_str(r);
                    s.push_str("\r\n");
                }
            } else {
                s.push_str(h);
                s.push_str("\r\n");
            }
        }
        s.push_str("\r\n");
        parse(&s).unwrap().validate_request()
    };
    assert_eq!(build(99, None), Ok(()));
    assert_eq!(build(0, None), Err(ParseError::MissingVia));
    assert_eq!(build(1, None), Err(ParseError::MissingFrom));
    assert_eq!(build(2, None), Err(ParseError::MissingTo));
    assert_eq!(build(3, None), Err(ParseError::MissingCallId));
    assert_eq!(build(4, None), Err(ParseError::MissingCSeq));
    assert_eq!(build(5, None), Ok(()), "missing Max-Forwards is tolerated");
    assert_eq!(
        build(0, Some("Via: SIP/3.0/UDP h")),
        Err(ParseError::BadVia)
    );
    assert_eq!(build(0, Some("Via: SIP/2.0/UDP")), Err(ParseError::BadVia));
    assert_eq!(build(1, Some("From: nonsense")), Err(ParseError::BadFrom));
    assert_eq!(build(2, Some("To: <sip:b@h")), Err(ParseError::BadTo));
    assert_eq!(build(4, Some("CSeq: x INVITE")), Err(ParseError::BadCSeq));
    assert_eq!(build(4, Some("CSeq: 1")), Err(ParseError::BadCSeq));
    assert_eq!(
        build(4, Some("CSeq: 99999999999 INVITE")),
        Err(ParseError::BadCSeq)
    );
    assert_eq!(build(4, Some("CSeq: 1 INVITE x")), Err(ParseError::BadCSeq));
    assert_eq!(
        build(4, Some("CSeq: 1 BYE")),
        Err(ParseError::CSeqMethodMismatch)
    );
    assert_eq!(
        build(5, Some("Max-Forwards: 256")),
        Err(ParseError::BadMaxForwards)
    );
    assert_eq!(
        build(5, Some("Max-Forwards: -1")),
        Err(ParseError::BadMaxForwards)
    );
    assert_eq!(ParseError::MissingCallId.to_string(), "Missing Call-ID");
}

#[test]
fn bad_request_uri() {
    let m = parse(
        "INVITE nonsense SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:h>\r\n\
         From: <sip:a@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
    )
    .unwrap();
    assert_eq!(m.validate_request(), Err(ParseError::BadRequestUri));
}

#[test]
fn start_line_errors() {
    assert_eq!(parse("").unwrap_err(), ParseError::Empty);
    assert_eq!(parse("\r\n\r\n").unwrap_err(), ParseError::Empty);
    assert_eq!(
        parse("INVITE sip:h SIP/2.0").unwrap_err(),
        ParseError::IncompleteHeaders
    );
    assert_eq!(
        parse("INVITE sip:h\r\n\r\n").unwrap_err(),
        ParseError::MalformedStartLine
    );
    assert_eq!(
        parse("INVITE sip:h SIP/3.0\r\n\r\n").unwrap_err(),
        ParseError::UnsupportedVersion
    );
    assert_eq!(
        parse("SIP/1.0 200 OK\r\n\r\n").unwrap_err(),
        ParseError::UnsupportedVersion
    );
    assert_eq!(
        parse("INVITE sip:h HTTP/1.1\r\n\r\n").unwrap_err(),
        ParseError::MalformedStartLine
    );
    assert_eq!(
        parse("SIP/2.0 2000 OK\r\n\r\n").unwrap_err(),
        ParseError::MalformedStartLine
    );
    assert_eq!(
        parse("SIP/2.0 099 OK\r\n\r\n").unwrap_err(),
        ParseError::MalformedStartLine
    );
    assert_eq!(
        parse("SIP/2.0\r\n\r\n").unwrap_err(),
        ParseError::MalformedStartLine
    );
    assert_eq!(
        parse("IN<VITE sip:h SIP/2.0\r\n\r\n").unwrap_err(),
        ParseError::MalformedStartLine
    );
    assert_eq!(
        parse("INVITE sip:h SIP/2.0 x\r\n\r\n").unwrap_err(),
        ParseError::MalformedStartLine
    );
}

#[test]
fn header_errors() {
    let p = |h: &str| parse(&format!("OPTIONS sip:h SIP/2.0\r\n{h}\r\n\r\n"));
    assert_eq!(p("NoColon").unwrap_err(), ParseError::MalformedHeader);
    assert_eq!(p(": empty name").unwrap_err(), ParseError::MalformedHeader);
    assert_eq!(p("Bad Name: x").unwrap_err(), ParseError::MalformedHeader);
    assert_eq!(p("X: a\rb").unwrap_err(), ParseError::MalformedHeader);
    assert_eq!(
        parse("OPTIONS sip:h SIP/2.0\r\n continuation first\r\n\r\n").unwrap_err(),
        ParseError::MalformedHeader
    );
    assert!(p("X-Empty:").unwrap().header_named("x-empty") == Some(""));
}

#[test]
fn content_length_handling() {
    let head = "MESSAGE sip:h SIP/2.0\r\nCall-ID: x\r\n";
    let m = parse(&format!("{head}Content-Length: 3\r\n\r\nabcdef")).unwrap();
    assert_eq!(m.body(), b"abc", "extra bytes ignored");
    let m = parse(&format!("{head}\r\nabcdef")).unwrap();
    assert_eq!(
        m.body(),
        b"abcdef",
        "no Content-Length over UDP: rest is body"
    );
    assert_eq!(
        parse(&format!("{head}Content-Length: 10\r\n\r\nabc")).unwrap_err(),
        ParseError::TruncatedBody
    );
    assert_eq!(
        parse(&format!("{head}Content-Length: x\r\n\r\n")).unwrap_err(),
        ParseError::BadContentLength
    );
    assert_eq!(
        parse(&format!("{head}Content-Length: -1\r\n\r\n")).unwrap_err(),
        ParseError::BadContentLength
    );
    assert_eq!(
        parse(&format!("{head}Content-Length: 99999999999999\r\n\r\n")).unwrap_err(),
        ParseError::BadContentLength
    );
    assert_eq!(
        parse(&format!("{head}Content-Length: 1\r\nl: 2\r\n\r\nab")).unwrap_err(),
        ParseError::BadContentLength
    );
    let m = parse(&format!("{head}Content-Length: 2\r\nl: 2\r\n\r\nab")).unwrap();
    assert_eq!(m.body(), b"ab");
    // Headers ending at the end of the datagram without the blank line.
    let m = parse(head).unwrap();
    assert!(m.body().is_empty());
}

#[test]
fn limits() {
    let big = format!(
        "OPTIONS sip:h SIP/2.0\r\nX: {}\r\n\r\n",
        "a".repeat(MAX_LINE_LEN + 1)
    );
    assert_eq!(parse(&big).unwrap_err(), ParseError::HeaderLineTooLong);
    let folded = format!(
        "OPTIONS sip:h SIP/2.0\r\nX: {}\r\n {}\r\n\r\n",
        "a".repeat(MAX_LINE_LEN / 2),
        "b".repeat(MAX_LINE_LEN / 2)
    );
    assert_eq!(parse(&folded).unwrap_err(), ParseError::HeaderLineTooLong);
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    let msg = format!("OPTIONS sip:h SIP/2.0\r\n{many}\r\n");
    assert_eq!(parse(&msg).unwrap_err(), ParseError::TooManyHeaders);
    let huge = format!(
        "OPTIONS sip:h SIP/2.0\r\n\r\n{}",
        "x".repeat(MAX_MESSAGE_LEN)
    );
    assert_eq!(parse(&huge).unwrap_err(), ParseError::MessageTooLarge);
    let limits = ParseLimits {
        max_headers: 2,
        ..ParseLimits::default()
    };
    let three = "OPTIONS sip:h SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        Message::parse_with(Bytes::from_static(three.as_bytes()), &limits).unwrap_err(),
        ParseError::TooManyHeaders
    );
    assert!(ParseLimits::default().validate().is_empty());
    assert_eq!(
        ParseLimits {
            max_headers: 0,
            max_line_len: 1,
            max_message_len: 1
        }
        .validate()
        .len(),
        3
    );
}

#[test]
fn non_utf8_is_an_error() {
    let mut raw = b"OPTIONS sip:h SIP/2.0\r\nX: ".to_vec();
    raw.extend_from_slice(&[0xff, 0xfe]);
    raw.extend_from_slice(b"\r\n\r\n\xff\xff");
    assert_eq!(
        Message::parse(Bytes::from(raw)).unwrap_err(),
        ParseError::NotUtf8
    );
    // A binary body is fine.
    let mut raw = b"OPTIONS sip:h SIP/2.0\r\nl: 2\r\n\r\n".to_vec();
    raw.extend_from_slice(&[0xff, 0x00]);
    assert_eq!(
        Message::parse(Bytes::from(raw)).unwrap().body(),
        &[0xff, 0x00]
    );
}

#[test]
fn utf8_display_name() {
    let m =
        parse("OPTIONS sip:h SIP/2.0\r\nFrom: \"Zoë \\\"Z\\\"\" <sip:z@h>;tag=9\r\n\r\n").unwrap();
    assert_eq!(m.from().unwrap().display_name, Some("Zoë \\\"Z\\\""));
}

#[test]
fn token_display_name() {
    let m =
        parse("OPTIONS sip:h SIP/2.0\r\nFrom: Alice Smith <sip:a@h> ; tag = 9\r\n\r\n").unwrap();
    let from = m.from().unwrap();
    assert_eq!(from.display_name, Some("Alice Smith"));
    assert_eq!(from.tag, Some("9"));
}

#[test]
fn reason_phrases_match_display() {
    for e in ParseError::ALL {
        assert_eq!(e.reason_phrase(), e.to_string());
        assert!(matches!(e.status_code(), 400 | 513));
    }
}

#[test]
fn header_names() {
    assert_eq!(HeaderName::parse(b"via"), HeaderName::Via);
    assert_eq!(
        HeaderName::parse(b"P-ASSERTED-IDENTITY"),
        HeaderName::PAssertedIdentity
    );
    assert_eq!(
        HeaderName::parse(b"www-authenticate"),
        HeaderName::WwwAuthenticate
    );
    assert_eq!(HeaderName::parse(b"X-Foo"), HeaderName::Other);
    assert_eq!(HeaderName::parse(b"q"), HeaderName::Other);
    assert_eq!(HeaderName::parse(b""), HeaderName::Other);
    assert_eq!(HeaderName::parse(b"Call\rID"), HeaderName::Other);
    assert_eq!(HeaderName::parse(b"\x16ia"), HeaderName::Other);
    assert_eq!(HeaderName::parse(b"Via_"), HeaderName::Other);
    assert_eq!(HeaderName::CallId.to_string(), "Call-ID");
    assert_eq!(
        HeaderError::Missing(HeaderName::CallId).to_string(),
        "Missing Call-ID"
    );
}

/// Calls every accessor; used by the property tests to prove nothing panics.
fn exercise(m: &Message) {
    let _ = m.validate_request();
    let _ = (
        m.method(),
        m.request_uri(),
        m.status(),
        m.reason(),
        m.start_line(),
    );
    let _ = (
        m.via(),
        m.from(),
        m.to(),
        m.call_id(),
        m.cseq(),
        m.contact(),
    );
    let _ = (
        m.max_forwards(),
        m.content_length(),
        m.content_type(),
        m.refer_to(),
    );
    let _ = (m.expires(), m.body(), m.body_bytes(), m.to_string());
    for v in m.vias().flatten() {
        let _ = (v.has_rfc3261_branch(), v.host.ip(), v.params.iter().count());
    }
    for c in m.contacts().flatten() {
        if let Some(a) = c.addr() {
            let _ = a
                .parsed_uri()
                .map(|u| crate::sip::uri::normalize_dialed_number(&u));
        }
    }
    let _ = m.routes().count() + m.record_routes().count();
    for h in m.iter_headers() {
        let _ = m.header_values(h.name).count();
        let _ = m.header_named(h.raw_name);
    }
    let _ = crate::sip::uri::Uri::parse(m.request_uri());
    if m.is_request() {
        let out = ResponseBuilder::for_request(m, 400, "Bad Request")
            .to_tag("x")
            .received_from("[2001:db8::1]:5062".parse().unwrap())
            .build();
        // Whatever we parsed, our response to it must parse too.
        Message::parse(out).unwrap();
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let interesting = prop::sample::select(vec![
            b':', b';', b',', b'"', b'<', b'>', b'\r', b'\n', b' ', b'\t', b'[', b']', b'@', b'0',
            b'9', b'a', b'=', b'/', b'\\', 0xff, 0xc3, 0x00,
        ]);
        let edit = (any::<prop::sample::Index>(), 0u8..3, interesting);
        prop::collection::vec(edit, 1..12).prop_map(|edits| {
            let mut m = INVITE.as_bytes().to_vec();
            for (at, kind, byte) in edits {
                let i = at.index(m.len() + 1);
                match kind {
                    0 => m.insert(i, byte),
                    1 if i < m.len() => {
                        m.remove(i);
                    }
                    _ if i < m.len() => m[i] = byte,
                    _ => {}
                }
            }
            m
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok(m) = Message::parse(Bytes::from(data.clone())) {
                exercise(&m);
            }
            if let Ok(Some(Frame::Message(n) | Frame::Keepalive(n))) = frame_length(&data, 1000) {
                prop_assert!(n <= data.len() && n <= 1000);
            }
        }

        #[test]
        fn mutated_messages_never_panic(data in mutated()) {
            if let Ok(m) = Message::parse(Bytes::from(data.clone())) {
                exercise(&m);
            }
            if let Ok(Some(Frame::Message(n))) = frame_length(&data, MAX_MESSAGE_LEN) {
                prop_assert!(n <= data.len());
            }
        }

        #[test]
        fn arbitrary_header_values_never_panic(value in "[ -~\t]{0,200}") {
            let text = format!(
                "INVITE sip:a@h SIP/2.0\r\nVia: {value}\r\nFrom: {value}\r\nTo: {value}\r\n\
                 Contact: {value}\r\nRoute: {value}\r\nCSeq: {value}\r\nCall-ID: {value}\r\n\
                 Max-Forwards: {value}\r\nExpires: {value}\r\nRefer-To: {value}\r\n\r\n"
            );
            if let Ok(m) = Message::parse(Bytes::from(text)) {
                exercise(&m);
            }
            let _ = crate::sip::uri::Uri::parse(&value)
                .map(|u| crate::sip::uri::normalize_dialed_number(&u));
        }

        #[test]
        fn framing_any_split(cut in 0usize..400, extra in 0usize..3) {
            let msg = format!(
                "MESSAGE sip:a@h SIP/2.0\r\nCall-ID: c\r\nl: 5\r\n\r\nhello{}",
                "\r\n".repeat(extra)
            );
            let total = msg.len() - 2 * extra;
            let got = frame_length(&msg.as_bytes()[..cut.min(msg.len())], MAX_MESSAGE_LEN);
            if cut >= total {
                prop_assert_eq!(got, Ok(Some(Frame::Message(total))));
            } else {
                prop_assert_eq!(got, Ok(None));
            }
        }
    }
}

/// Differential test against rsip 0.4 on messages it can parse (long header
/// names, no IPv6, no tel:, no folding).
mod differential {
    use super::*;
    use proptest::prelude::*;
    use rsip::prelude::*;

    fn compare(text: &str) {
        let ours = Message::parse(Bytes::copy_from_slice(text.as_bytes())).unwrap();
        ours.validate_request().unwrap();
        let theirs = rsip::Request::try_from(text.as_bytes()).unwrap();
        assert_eq!(ours.method().unwrap().as_str(), theirs.method().to_string());
        assert_eq!(ours.request_uri(), theirs.uri().to_string());
        assert_eq!(
            ours.call_id().unwrap(),
            theirs.call_id_header().unwrap().value()
        );
        let cseq = ours.cseq().unwrap();
        let their_cseq = theirs.cseq_header().unwrap();
        assert_eq!(cseq.seq, their_cseq.seq().unwrap());
        assert_eq!(
            cseq.method.as_str(),
            their_cseq.method().unwrap().to_string()
        );
        assert_eq!(ours.header_count(), theirs.headers.iter().count());
        assert_eq!(ours.body(), &theirs.body()[..]);
    }

    #[test]
    fn reference_invite() {
        compare(INVITE);
    }

    fn request() -> impl Strategy<Value = String> {
        let method = prop::sample::select(vec![
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "REGISTER",
            "INFO",
            "REFER",
            "NOTIFY",
            "SUBSCRIBE",
            "UPDATE",
            "PRACK",
            "MESSAGE",
            "PUBLISH",
        ]);
        let user = "[a-z][a-z0-9]{0,8}";
        let host = "[a-z]{1,8}\\.(com|net|example)";
        let extra = prop::collection::vec(("X-[A-Za-z]{1,8}", "[a-zA-Z0-9 ]{1,20}"), 0..6);
        (
            method,
            user,
            host,
            1u32..100_000,
            "[a-zA-Z0-9]{4,20}",
            extra,
            "[a-z0-9=\n]{0,40}",
        )
            .prop_map(|(method, user, host, seq, call_id, extra, body)| {
                let mut s = format!(
                    "{method} sip:{user}@{host} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {host}:5060;branch=z9hG4bK{call_id}\r\n\
                     Max-Forwards: 70\r\n\
                     From: \"{user}\" <sip:{user}@{host}>;tag={seq}\r\n\
                     To: <sip:{user}@{host}>\r\n\
                     Call-ID: {call_id}@{host}\r\n\
                     CSeq: {seq} {method}\r\n"
                );
                for (name, value) in extra {
                    s.push_str(&format!("{name}: {}\r\n", value.trim()));
                }
                s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn agrees_with_rsip(text in request()) {
            compare(&text);
        }
    }
}

#[test]
fn every_header_name_round_trips() {
    for &name in HeaderName::ALL {
        assert_eq!(HeaderName::parse(name.as_str().as_bytes()), name);
        let upper = name.as_str().to_ascii_uppercase();
        assert_eq!(HeaderName::parse(upper.as_bytes()), name);
        let lower = name.as_str().to_ascii_lowercase();
        assert_eq!(HeaderName::parse(lower.as_bytes()), name);
    }
}

//! Single-transaction requests for the signalling ceiling, sans-IO:
//! OPTIONS (expect 200) or INVITE to an unknown number (expect 404, then
//! ACK it as RFC 3261 §17.1.1.3 asks).
//!
//! No retransmissions: a request without a final response within the
//! timeout counts as a timeout, so overload shows as loss instead of
//! being hidden by retries. Requests in flight live in a ring indexed by
//! sequence number; since requests leave in sequence order, the oldest
//! is always at the ring's tail and expiry is O(1) per request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::message::{HeaderName, Message, Method, RequestBuilder};

use super::histogram::Histogram;

/// The request each transaction sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatelessMode {
    /// OPTIONS, answered 200.
    Options,
    /// INVITE to a number the gateway does not serve, answered 404.
    Invite404,
}

impl StatelessMode {
    fn expected_status(self) -> u16 {
        match self {
            StatelessMode::Options => 200,
            StatelessMode::Invite404 => 404,
        }
    }
}

/// Counters of a stateless run; mergeable across workers.
#[derive(Clone, Debug, Default)]
pub struct StatelessStats {
    /// Requests sent.
    pub sent: u64,
    /// Requests answered with the expected final status.
    pub answered: u64,
    /// Requests answered with another final status, by status.
    pub failed: BTreeMap<u16, u64>,
    /// Requests without a final response within the timeout.
    pub timeouts: u64,
    /// Request sent → final response.
    pub latency: Histogram,
    /// Responses matching no request in flight (late, duplicate, foreign).
    pub stray: u64,
    /// Datagrams the kernel refused to queue (send buffer full).
    pub send_errors: u64,
}

impl StatelessStats {
    /// Adds another worker's figures.
    pub fn merge(&mut self, o: &StatelessStats) {
        self.sent += o.sent;
        self.answered += o.answered;
        for (k, v) in &o.failed {
            *self.failed.entry(*k).or_default() += v;
        }
        self.timeouts += o.timeouts;
        self.latency.merge(&o.latency);
        self.stray += o.stray;
        self.send_errors += o.send_errors;
    }

    /// Requests that got a wrong answer or none.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum::<u64>() + self.timeouts
    }
}

#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    sent: Instant,
    pending: bool,
}

/// Builds requests, matches responses, expires the unanswered.
pub struct StatelessEngine {
    mode: StatelessMode,
    target: SocketAddr,
    request_uri: String,
    sdp: String,
    run_id: u64,
    timeout: Duration,
    max_in_flight: usize,
    ring: Vec<Option<Slot>>,
    mask: u64,
    next_seq: u64,
    tail: u64,
    in_flight: usize,
    stats: StatelessStats,
}

impl StatelessEngine {
    /// `dialed` is the Request-URI user part for INVITEs (an unknown number).
    pub fn new(
        mode: StatelessMode,
        target: SocketAddr,
        dialed: &str,
        run_id: u64,
        timeout: Duration,
        max_in_flight: usize,
    ) -> Self {
        let capacity = (max_in_flight.max(1) * 2).next_power_of_two();
        let request_uri = match mode {
            StatelessMode::Options => format!("sip:{target}"),
            StatelessMode::Invite404 => format!("sip:{dialed}@{target}"),
        };
        let ip = target.ip();
        let sdp = format!(
            "v=0\r\no=load 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
        );
        StatelessEngine {
            mode,
            target,
            request_uri,
            sdp,
            run_id,
            timeout,
            max_in_flight: max_in_flight.max(1),
            ring: vec![None; capacity],
            mask: capacity as u64 - 1,
            next_seq: 0,
            tail: 0,
            in_flight: 0,
            stats: StatelessStats::default(),
        }
    }

    /// Requests awaiting a final response.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The figures so far.
    pub fn stats(&self) -> &StatelessStats {
        &self.stats
    }

    /// Takes the figures.
    pub fn into_stats(self) -> StatelessStats {
        self.stats
    }

    /// Counts a datagram the socket refused.
    pub fn send_failed(&mut self) {
        self.stats.send_errors += 1;
    }

    /// The next request, sent from `local`; `None` when the in-flight
    /// limit is reached.
    pub fn next_request(&mut self, local: SocketAddr, now: Instant) -> Option<Bytes> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        let seq = self.next_seq;
        let index = (seq & self.mask) as usize;
        if self
            .ring
            .get(index)
            .is_some_and(|s| s.is_some_and(|s| s.pending))
        {
            return None;
        }
        let bytes = self.build(seq, local);
        if let Some(slot) = self.ring.get_mut(index) {
            *slot = Some(Slot {
                seq,
                sent: now,
                pending: true,
            });
        }
        self.next_seq += 1;
        self.in_flight += 1;
        self.stats.sent += 1;
        Some(bytes)
    }

    fn build(&self, seq: u64, local: SocketAddr) -> Bytes {
        let sent_by = local.to_string();
        let branch = format!("z9hG4bK{:x}.{seq:x}", self.run_id);
        let call_id = format!("{:x}.{seq:x}@dialgate-load", self.run_id);
        let from = format!("<sip:load@{}>;tag={seq:x}", local.ip());
        match self.mode {
            StatelessMode::Options => RequestBuilder::new(Method::Options, &self.request_uri)
                .via("UDP", &sent_by, &branch)
                .header("From", from)
                .header("To", format_args!("<sip:{}>", self.target))
                .header("Call-ID", call_id)
                .header("CSeq", "1 OPTIONS")
                .header("Accept", "application/sdp")
                .build(),
            StatelessMode::Invite404 => RequestBuilder::new(Method::Invite, &self.request_uri)
                .via("UDP", &sent_by, &branch)
                .header("From", from)
                .header("To", format_args!("<{}>", self.request_uri))
                .header("Call-ID", call_id)
                .header("CSeq", "1 INVITE")
                .header("Contact", format_args!("<sip:load@{sent_by}>"))
                .body("application/sdp", self.sdp.as_bytes())
                .build(),
        }
    }

    /// A datagram arrived on the socket bound to `local`. Returns the ACK
    /// to send for a final response to an INVITE.
    pub fn handle_response(
        &mut self,
        data: &[u8],
        local: SocketAddr,
        now: Instant,
    ) -> Option<Bytes> {
        let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
            self.stats.stray += 1;
            return None;
        };
        let Some(status) = msg.status() else {
            self.stats.stray += 1;
            return None;
        };
        if status < 200 {
            return None;
        }
        let Some(seq) = msg.call_id().ok().and_then(|id| self.seq_of(id)) else {
            self.stats.stray += 1;
            return None;
        };
        let ack = if self.mode == StatelessMode::Invite404 {
            Some(self.build_ack(seq, local, &msg))
        } else {
            None
        };
        let index = (seq & self.mask) as usize;
        let Some(Some(slot_now)) = self.ring.get_mut(index) else {
            self.stats.stray += 1;
            return ack;
        };
        if slot_now.seq != seq || !slot_now.pending {
            self.stats.stray += 1;
            return ack;
        }
        slot_now.pending = false;
        self.in_flight -= 1;
        self.stats
            .latency
            .record(now.saturating_duration_since(slot_now.sent));
        if status == self.mode.expected_status() {
            self.stats.answered += 1;
        } else {
            *self.stats.failed.entry(status).or_default() += 1;
        }
        ack
    }

    fn seq_of(&self, call_id: &str) -> Option<u64> {
        let local = call_id.strip_suffix("@dialgate-load")?;
        let (run, seq) = local.split_once('.')?;
        if u64::from_str_radix(run, 16).ok()? != self.run_id {
            return None;
        }
        u64::from_str_radix(seq, 16).ok()
    }

    /// ACK for a non-2xx final response (§17.1.1.3): the INVITE's Via,
    /// From, Call-ID and Request-URI; the response's To (with its tag).
    fn build_ack(&self, seq: u64, local: SocketAddr, response: &Message) -> Bytes {
        let sent_by = local.to_string();
        let branch = format!("z9hG4bK{:x}.{seq:x}", self.run_id);
        let call_id = format!("{:x}.{seq:x}@dialgate-load", self.run_id);
        let from = format!("<sip:load@{}>;tag={seq:x}", local.ip());
        let to = response
            .header(HeaderName::To)
            .map(str::to_string)
            .unwrap_or_else(|| format!("<{}>", self.request_uri));
        RequestBuilder::new(Method::Ack, &self.request_uri)
            .via("UDP", &sent_by, &branch)
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", "1 ACK")
            .build()
    }

    /// Counts requests older than the timeout as timed out.
    pub fn expire(&mut self, now: Instant) {
        while self.tail < self.next_seq {
            let index = (self.tail & self.mask) as usize;
            match self.ring.get_mut(index) {
                Some(Some(slot)) if slot.seq == self.tail && slot.pending => {
                    if now.saturating_duration_since(slot.sent) < self.timeout {
                        return;
                    }
                    slot.pending = false;
                    self.in_flight -= 1;
                    self.stats.timeouts += 1;
                }
                _ => {}
            }
            self.tail += 1;
        }
    }

    /// When the oldest request in flight times out.
    pub fn next_expiry(&self) -> Option<Instant> {
        let index = (self.tail & self.mask) as usize;
        match self.ring.get(index) {
            Some(Some(slot)) if slot.pending && slot.seq == self.tail => {
                Some(slot.sent + self.timeout)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::ResponseBuilder;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn answer(req: &Bytes, status: u16) -> Bytes {
        let msg = Message::parse(req.clone()).unwrap();
        ResponseBuilder::for_request(&msg, status, "X")
            .to_tag("gw1")
            .build()
    }

    #[test]
    fn options_answered_and_timed_out() {
        let t0 = Instant::now();
        let local = addr("127.0.0.1:40000");
        let mut e = StatelessEngine::new(
            StatelessMode::Options,
            addr("127.0.0.1:5060"),
            "0",
            7,
            Duration::from_secs(1),
            2,
        );
        let a = e.next_request(local, t0).unwrap();
        let b = e.next_request(local, t0).unwrap();
        assert!(e.next_request(local, t0).is_none(), "in-flight limit");
        let later = t0 + Duration::from_millis(3);
        assert!(e.handle_response(&answer(&a, 200), local, later).is_none());
        assert_eq!(e.stats().answered, 1);
        assert_eq!(e.stats().latency.max_us(), 3000);
        // A duplicate is stray.
        e.handle_response(&answer(&a, 200), local, later);
        assert_eq!(e.stats().stray, 1);
        e.expire(t0 + Duration::from_secs(2));
        assert_eq!(e.stats().timeouts, 1);
        assert_eq!(e.in_flight(), 0);
        // Too late for b.
        e.handle_response(&answer(&b, 200), local, t0 + Duration::from_secs(3));
        assert_eq!(e.stats().stray, 2);
        assert_eq!(e.stats().failed_total(), 1);
    }

    #[test]
    fn invite_404_is_acked_with_the_response_to_tag() {
        let t0 = Instant::now();
        let local = addr("127.0.0.1:40000");
        let mut e = StatelessEngine::new(
            StatelessMode::Invite404,
            addr("127.0.0.1:5060"),
            "999",
            7,
            Duration::from_secs(1),
            10,
        );
        let inv = e.next_request(local, t0).unwrap();
        let parsed = Message::parse(inv.clone()).unwrap();
        assert_eq!(parsed.method(), Some(&Method::Invite));
        assert_eq!(parsed.request_uri(), "sip:999@127.0.0.1:5060");
        let ack = e.handle_response(&answer(&inv, 404), local, t0).unwrap();
        let ack = Message::parse(ack).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.to().unwrap().tag, Some("gw1"));
        assert_eq!(ack.via().unwrap().branch, parsed.via().unwrap().branch);
        assert_eq!(e.stats().answered, 1);
    }

    #[test]
    fn wrong_status_counts_as_failure_and_garbage_as_stray() {
        let t0 = Instant::now();
        let local = addr("127.0.0.1:40000");
        let mut e = StatelessEngine::new(
            StatelessMode::Options,
            addr("127.0.0.1:5060"),
            "0",
            1,
            Duration::from_secs(1),
            10,
        );
        let a = e.next_request(local, t0).unwrap();
        e.handle_response(&answer(&a, 503), local, t0);
        e.handle_response(b"\x00garbage", local, t0);
        assert_eq!(e.stats().failed.get(&503), Some(&1));
        assert_eq!(e.stats().stray, 1);
    }
}

//! RFC 4733 telephone-events: the 4-byte payload codec (§2.3) and a receiver
//! that turns a stream of event packets into one digit per key press (§2.5.2).
//!
//! A sender reports one key press as many packets sharing one RTP timestamp
//! (the event's start): a start packet with the marker bit, updates with a
//! growing duration, and (usually three) redundant end packets with the E
//! bit. The receiver keys presses by that timestamp, so retransmissions,
//! duplicates, reordering and lost start packets all collapse to one digit,
//! reported on the first packet seen of a new press.

use super::{Digit, DigitEvent, DtmfSource};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Length of one event report (RFC 4733 §2.3).
pub const EVENT_PAYLOAD_LEN: usize = 4;

/// Largest value of the 6-bit volume field (RFC 4733 §2.3.4: 0 to -63 dBm0).
pub const MAX_VOLUME: u8 = 63;

/// Errors of the telephone-event payload codec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rfc4733Error {
    /// The payload is shorter than the 4 bytes of an event report.
    #[error("telephone-event payload is {len} bytes, need {EVENT_PAYLOAD_LEN}")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The output buffer cannot hold an event report.
    #[error("buffer of {len} bytes cannot hold a {EVENT_PAYLOAD_LEN}-byte telephone-event")]
    BufferTooSmall {
        /// Bytes available.
        len: usize,
    },
    /// The volume does not fit the 6-bit field.
    #[error("telephone-event volume {volume} exceeds {MAX_VOLUME}")]
    VolumeOutOfRange {
        /// The rejected volume.
        volume: u8,
    },
}

/// One event report of the RFC 4733 §2.3 payload.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// Event code (§2.3.1); 0–15 are the DTMF keys (§3.2), other codes are
    /// other telephony events.
    pub event: u8,
    /// E bit: this report ends the event (§2.3.2).
    pub end: bool,
    /// Power level of the tone as a positive number of -dBm0, 0–63 (§2.3.4).
    pub volume: u8,
    /// Duration so far in RTP timestamp units, counted from the event's
    /// RTP timestamp (§2.3.5).
    pub duration: u16,
}

impl TelephoneEvent {
    /// A report for a DTMF key.
    pub fn dtmf(digit: Digit, end: bool, volume: u8, duration: u16) -> Self {
        TelephoneEvent {
            event: digit.event_code(),
            end,
            volume,
            duration,
        }
    }

    /// The DTMF key this report is about, `None` for non-DTMF event codes.
    pub fn digit(&self) -> Option<Digit> {
        Digit::from_event_code(self.event)
    }

    /// Writes the 4-byte report into the start of `out` (the R bit is sent
    /// as zero, §2.3.3) and returns the number of bytes written.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, Rfc4733Error> {
        if self.volume > MAX_VOLUME {
            return Err(Rfc4733Error::VolumeOutOfRange {
                volume: self.volume,
            });
        }
        let len = out.len();
        let Some(dst) = out.get_mut(..EVENT_PAYLOAD_LEN) else {
            return Err(Rfc4733Error::BufferTooSmall { len });
        };
        let [d0, d1] = self.duration.to_be_bytes();
        dst.copy_from_slice(&[self.event, (u8::from(self.end) << 7) | self.volume, d0, d1]);
        Ok(EVENT_PAYLOAD_LEN)
    }
}

/// Parses the first event report of a telephone-event payload (RFC 4733 §2.3).
///
/// Bytes after the first four are ignored: a payload carries one event
/// report, and some senders pad. The R bit is ignored (§2.3.3).
pub fn parse_event(payload: &[u8]) -> Result<TelephoneEvent, Rfc4733Error> {
    let Some(&[event, flags, d0, d1]) = payload.first_chunk::<EVENT_PAYLOAD_LEN>() else {
        return Err(Rfc4733Error::TooShort { len: payload.len() });
    };
    Ok(TelephoneEvent {
        event,
        end: flags & 0x80 != 0,
        volume: flags & 0x3f,
        duration: u16::from_be_bytes([d0, d1]),
    })
}

/// How many distinct event timestamps the receiver remembers. A late or
/// repeated packet of any of the last few presses is recognised by exact
/// timestamp; older ones fall to the stale rule.
const REMEMBERED_EVENTS: usize = 8;

/// Without any event packet for this long, sequence numbers can no longer
/// tell a late packet from a restarted stream (audio packets advance the
/// shared sequence space in between), so the stale rule is not applied.
const STALE_HORIZON: Duration = Duration::from_secs(2);

/// Slack when matching a long-event segment to its predecessor, in RTP
/// timestamp units (one 50 ms update interval at 8 kHz).
const SEGMENT_SLACK: u32 = 400;

#[derive(Clone, Copy, Debug)]
struct SeenEvent {
    timestamp: u32,
    code: u8,
    ended: bool,
    /// Largest duration reported so far.
    duration: u16,
}

/// Counters for monitoring; they never affect detection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Packets offered.
    pub packets: u64,
    /// Digits emitted.
    pub digits: u64,
    /// Payloads that did not parse.
    pub malformed: u64,
    /// Events with a non-DTMF code (> 15).
    pub non_dtmf: u64,
    /// Late packets of presses already superseded by a newer one.
    pub stale: u64,
}

/// Receiver of RFC 4733 telephone-events for one RTP stream (RFC 4733 §2.5.2).
///
/// Feed every packet whose payload type is the negotiated telephone-event
/// type to [`handle_packet`](Self::handle_packet); it returns a
/// [`DigitEvent`] on the first packet seen of each new key press and `None`
/// otherwise. Presses are keyed by RTP timestamp, which makes the result
/// independent of loss (of any packets but all of them), duplication,
/// reordering within a press, press length, and sequence or timestamp
/// wrap-around. A press whose every packet arrives after a packet of a newer
/// press is dropped rather than reported out of order.
///
/// Call [`reset`](Self::reset) when the stream's SSRC changes.
#[derive(Debug, Clone)]
pub struct TelephoneEventReceiver {
    /// Ring of recently seen presses, by timestamp.
    recent: [Option<SeenEvent>; REMEMBERED_EVENTS],
    next_slot: usize,
    /// Timestamp of the newest press (RTP timestamp order).
    newest_timestamp: Option<u32>,
    /// Highest sequence number seen (serial order).
    highest_seq: Option<u16>,
    last_packet_at: Option<Instant>,
    stats: ReceiverStats,
}

impl Default for TelephoneEventReceiver {
    fn default() -> Self {
        Self::new()
    }
}

/// `a` is after `b` in RFC 3550 serial-number order on 32 bits.
fn timestamp_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `a` is after `b` in RFC 3550 serial-number order on 16 bits.
fn seq_after(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

impl TelephoneEventReceiver {
    /// A receiver that has seen nothing yet.
    pub fn new() -> Self {
        TelephoneEventReceiver {
            recent: [None; REMEMBERED_EVENTS],
            next_slot: 0,
            newest_timestamp: None,
            highest_seq: None,
            last_packet_at: None,
            stats: ReceiverStats::default(),
        }
    }

    /// Forgets all presses (new SSRC or re-negotiated stream).
    pub fn reset(&mut self) {
        let stats = self.stats;
        *self = Self::new();
        self.stats = stats;
    }

    /// Monitoring counters.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Handles one telephone-event RTP packet: its sequence number, RTP
    /// timestamp, marker bit and payload. Returns the digit when this packet
    /// is the first one seen of a new DTMF key press.
    ///
    /// Malformed payloads and non-DTMF events are ignored (counted in
    /// [`stats`](Self::stats)).
    pub fn handle_packet(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now: Instant,
    ) -> Option<DigitEvent> {
        self.stats.packets += 1;
        let Ok(report) = parse_event(payload) else {
            self.stats.malformed += 1;
            return None;
        };
        let Some(digit) = report.digit() else {
            self.stats.non_dtmf += 1;
            return None;
        };

        let recently_active = self
            .last_packet_at
            .is_some_and(|t| now.saturating_duration_since(t) < STALE_HORIZON);
        let seq_is_old = self.highest_seq.is_some_and(|h| !seq_after(seq, h));
        if self.highest_seq.is_none() || !seq_is_old {
            self.highest_seq = Some(seq);
        }
        self.last_packet_at = Some(now);

        // A packet of a press already seen: only its state is updated.
        if let Some(seen) = self.find_mut(timestamp) {
            seen.ended |= report.end;
            seen.duration = seen.duration.max(report.duration);
            return None;
        }

        if let Some(newest) = self.newest_timestamp {
            // An unseen press older than the newest one, arriving with an old
            // sequence number: all of its earlier packets were lost or are
            // late. Reporting it now would put digits out of order.
            if timestamp_after(newest, timestamp) && seq_is_old && recently_active {
                self.stats.stale += 1;
                return None;
            }
        }

        let continues_long_event = !marker && self.is_next_segment(timestamp, report.event);
        self.remember(SeenEvent {
            timestamp,
            code: report.event,
            ended: report.end,
            duration: report.duration,
        });
        if self
            .newest_timestamp
            .is_none_or(|n| timestamp_after(timestamp, n))
            || !recently_active
        {
            self.newest_timestamp = Some(timestamp);
        }
        if continues_long_event {
            return None;
        }
        self.stats.digits += 1;
        Some(DigitEvent {
            digit,
            source: DtmfSource::Rfc4733,
            at: now,
        })
    }

    fn find_mut(&mut self, timestamp: u32) -> Option<&mut SeenEvent> {
        self.recent
            .iter_mut()
            .flatten()
            .find(|e| e.timestamp == timestamp)
    }

    /// RFC 4733 §2.5.1.3: an event longer than the 16-bit duration field is
    /// sent as segments, each with a new timestamp (the previous one plus its
    /// duration) and without the marker bit. Such a segment continues the
    /// newest press instead of starting a new one.
    fn is_next_segment(&self, timestamp: u32, code: u8) -> bool {
        let Some(newest) = self.newest_timestamp else {
            return false;
        };
        let Some(prev) = self.recent.iter().flatten().find(|e| e.timestamp == newest) else {
            return false;
        };
        let gap = timestamp.wrapping_sub(prev.timestamp);
        prev.code == code
            && !prev.ended
            && timestamp_after(timestamp, prev.timestamp)
            && gap <= u32::from(prev.duration) + SEGMENT_SLACK
    }

    fn remember(&mut self, event: SeenEvent) {
        if let Some(slot) = self.recent.get_mut(self.next_slot) {
            *slot = Some(event);
        }
        self.next_slot = (self.next_slot + 1) % REMEMBERED_EVENTS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the packets a phone sends for one press: start (marker), updates
    /// every 400 ticks, and three end packets, with consecutive sequence numbers.
    fn press(
        digit: Digit,
        first_seq: u16,
        timestamp: u32,
        updates: u16,
    ) -> Vec<(u16, u32, bool, [u8; 4])> {
        let mut out = Vec::new();
        let mut seq = first_seq;
        let mut push = |marker: bool, end: bool, duration: u16| {
            let mut buf = [0u8; 4];
            TelephoneEvent::dtmf(digit, end, 10, duration)
                .write(&mut buf)
                .unwrap();
            out.push((seq, timestamp, marker, buf));
            seq = seq.wrapping_add(1);
        };
        push(true, false, 400);
        for i in 0..updates {
            push(false, false, 800 + 400 * i);
        }
        let end = 800 + 400 * updates;
        for _ in 0..3 {
            push(false, true, end);
        }
        out
    }

    fn feed(
        rx: &mut TelephoneEventReceiver,
        packets: &[(u16, u32, bool, [u8; 4])],
        t0: Instant,
    ) -> Vec<Digit> {
        packets
            .iter()
            .enumerate()
            .filter_map(|(i, (seq, ts, m, p))| {
                rx.handle_packet(*seq, *ts, *m, p, t0 + Duration::from_millis(20 * i as u64))
            })
            .map(|e| {
                assert_eq!(e.source, DtmfSource::Rfc4733);
                e.digit
            })
            .collect()
    }

    #[test]
    fn payload_round_trip_and_bit_layout() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 63,
            duration: 0x1234,
        };
        let mut buf = [0u8; 6];
        assert_eq!(ev.write(&mut buf), Ok(4));
        assert_eq!(&buf[..4], &[11, 0x80 | 63, 0x12, 0x34]);
        assert_eq!(parse_event(&buf), Ok(ev));
        assert_eq!(ev.digit(), Some(Digit::Pound));
        // The reserved bit is ignored on receipt.
        assert_eq!(
            parse_event(&[5, 0x40 | 7, 0, 160]).unwrap(),
            TelephoneEvent {
                event: 5,
                end: false,
                volume: 7,
                duration: 160
            }
        );
    }

    #[test]
    fn codec_errors() {
        assert_eq!(
            parse_event(&[1, 2, 3]),
            Err(Rfc4733Error::TooShort { len: 3 })
        );
        assert_eq!(parse_event(&[]), Err(Rfc4733Error::TooShort { len: 0 }));
        let ev = TelephoneEvent::dtmf(Digit::D1, false, 10, 0);
        assert_eq!(
            ev.write(&mut [0u8; 3]),
            Err(Rfc4733Error::BufferTooSmall { len: 3 })
        );
        let loud = TelephoneEvent { volume: 64, ..ev };
        assert_eq!(
            loud.write(&mut [0u8; 4]),
            Err(Rfc4733Error::VolumeOutOfRange { volume: 64 })
        );
        assert_eq!(parse_event(&[16, 0, 0, 0]).unwrap().digit(), None);
    }

    #[test]
    fn one_press_is_one_digit_despite_redundant_end_packets() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let pkts = press(Digit::D5, 100, 8000, 4);
        // Emitted on the very first packet, not at the end.
        let first = rx
            .handle_packet(pkts[0].0, pkts[0].1, pkts[0].2, &pkts[0].3, t0)
            .unwrap();
        assert_eq!(first.digit, Digit::D5);
        assert_eq!(first.at, t0);
        assert!(feed(&mut rx, &pkts[1..], t0).is_empty());
        assert_eq!(rx.stats().digits, 1);
    }

    #[test]
    fn every_key_maps_to_its_digit() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let mut got = Vec::new();
        for (i, d) in Digit::ALL.iter().enumerate() {
            let i = i as u32;
            got.extend(feed(
                &mut rx,
                &press(*d, (i * 10) as u16, 1000 + i * 2000, 2),
                t0,
            ));
        }
        assert_eq!(got, Digit::ALL.to_vec());
    }

    #[test]
    fn same_key_twice_is_two_digits() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let mut pkts = press(Digit::D7, 1, 16000, 2);
        pkts.extend(press(Digit::D7, 8, 18000, 2));
        assert_eq!(feed(&mut rx, &pkts, t0), vec![Digit::D7, Digit::D7]);
    }

    #[test]
    fn duplicated_packets_count_once() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let mut pkts = Vec::new();
        for p in press(Digit::D3, 10, 3200, 3)
            .into_iter()
            .chain(press(Digit::D4, 17, 6400, 3))
        {
            pkts.push(p);
            pkts.push(p);
        }
        assert_eq!(feed(&mut rx, &pkts, t0), vec![Digit::D3, Digit::D4]);
    }

    #[test]
    fn lost_start_is_recovered_from_update_or_end() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        // Start lost: first seen is an update.
        let a = press(Digit::D1, 10, 1000, 3);
        // Everything but the last end packet lost.
        let b = press(Digit::D2, 20, 5000, 3);
        let mut pkts: Vec<_> = a[1..].to_vec();
        pkts.push(*b.last().unwrap());
        assert_eq!(feed(&mut rx, &pkts, t0), vec![Digit::D1, Digit::D2]);
    }

    #[test]
    fn reordering_within_and_across_presses() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let a = press(Digit::D8, 500, 40_000, 3);
        let b = press(Digit::D9, 507, 42_000, 3);
        // a's updates arrive before its start; a's end packets arrive after
        // b has started.
        let pkts = vec![
            a[2], a[1], a[0], a[3], b[0], a[4], a[6], b[2], a[5], b[1], b[3], b[5], b[4], b[6],
        ];
        assert_eq!(feed(&mut rx, &pkts, t0), vec![Digit::D8, Digit::D9]);
    }

    #[test]
    fn press_whose_packets_all_arrive_late_is_not_reported_out_of_order() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let a = press(Digit::D1, 100, 10_000, 1);
        let b = press(Digit::D2, 105, 12_000, 1);
        let mut pkts = b.clone();
        pkts.extend(a);
        assert_eq!(feed(&mut rx, &pkts, t0), vec![Digit::D2]);
        assert_eq!(rx.stats().stale, 5);
    }

    #[test]
    fn long_press_with_many_updates_and_segments() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let mut pkts = Vec::new();
        let mut seq = 1000u16;
        let ts = 80_000u32;
        let mut p = |seq: &mut u16, ts: u32, m: bool, end: bool, dur: u16| {
            let mut buf = [0u8; 4];
            TelephoneEvent::dtmf(Digit::Star, end, 5, dur)
                .write(&mut buf)
                .unwrap();
            pkts.push((*seq, ts, m, buf));
            *seq = seq.wrapping_add(1);
        };
        // 0xFFFF ticks at 8 kHz is ~8.2 s: updates every 400 ticks, then a
        // second segment (RFC 4733 §2.5.1.3) without marker.
        p(&mut seq, ts, true, false, 400);
        let mut d = 800u32;
        while d < 0xFFFF {
            p(&mut seq, ts, false, false, d as u16);
            d += 400;
        }
        p(&mut seq, ts, false, false, 0xFFFF);
        let ts2 = ts + 0xFFFF;
        for d in (400..4000).step_by(400) {
            p(&mut seq, ts2, false, false, d as u16);
        }
        for _ in 0..3 {
            p(&mut seq, ts2, false, true, 4000);
        }
        assert!(pkts.len() > 160);
        assert_eq!(feed(&mut rx, &pkts, t0), vec![Digit::Star]);
        // A real new press afterwards still counts.
        let next = press(Digit::Star, seq, ts2 + 8000, 2);
        assert_eq!(feed(&mut rx, &next, t0), vec![Digit::Star]);
    }

    #[test]
    fn timestamp_and_sequence_wrap_around() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let mut pkts = press(Digit::D4, 65_533, u32::MAX - 1000, 3);
        pkts.extend(press(Digit::D5, 4, 1000, 3)); // timestamp wrapped
        pkts.extend(press(Digit::D6, 11, 3000, 3));
        assert!(pkts.iter().any(|p| p.0 == 0)); // sequence wrapped too
                                                // Duplicate a late end packet of the pre-wrap press after the wrap.
        let late = pkts[3];
        pkts.push(late);
        assert_eq!(
            feed(&mut rx, &pkts, t0),
            vec![Digit::D4, Digit::D5, Digit::D6]
        );
    }

    #[test]
    fn stream_restart_with_lower_timestamp_counts() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let mut pkts = press(Digit::D1, 100, 900_000, 1);
        // Timestamp jumps backwards but the sequence moves on: a sender restart.
        pkts.extend(press(Digit::D2, 105, 20_000, 1));
        assert_eq!(feed(&mut rx, &pkts, t0), vec![Digit::D1, Digit::D2]);
    }

    #[test]
    fn after_a_long_silence_an_unknown_older_timestamp_is_new() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        assert!(rx
            .handle_packet(100, 500_000, true, &[1, 10, 0, 160], t0)
            .is_some());
        // Minutes of audio later the sequence space may have wrapped past
        // half; only the clock tells this is not a late packet.
        let later = t0 + Duration::from_secs(600);
        let ev = rx.handle_packet(90, 400_000, true, &[2, 10, 0, 160], later);
        assert_eq!(ev.map(|e| e.digit), Some(Digit::D2));
    }

    #[test]
    fn malformed_and_non_dtmf_payloads_are_ignored() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        assert_eq!(rx.handle_packet(1, 100, true, &[], t0), None);
        assert_eq!(rx.handle_packet(2, 100, true, &[5, 0, 1], t0), None);
        assert_eq!(rx.handle_packet(3, 200, true, &[16, 0, 1, 0], t0), None);
        assert_eq!(
            rx.handle_packet(4, 300, true, &[255, 0xff, 0xff, 0xff], t0),
            None
        );
        let s = rx.stats();
        assert_eq!((s.malformed, s.non_dtmf, s.digits), (2, 2, 0));
        // The receiver still works afterwards.
        assert!(rx.handle_packet(5, 400, true, &[0, 10, 0, 0], t0).is_some());
    }

    #[test]
    fn reset_forgets_presses() {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        assert!(rx.handle_packet(1, 100, true, &[3, 10, 0, 0], t0).is_some());
        rx.reset();
        assert!(rx.handle_packet(1, 100, true, &[3, 10, 0, 0], t0).is_some());
        assert_eq!(rx.stats().digits, 2);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_packets_never_panic(
                packets in proptest::collection::vec(
                    (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..8)),
                    0..64,
                )
            ) {
                let mut rx = TelephoneEventReceiver::new();
                let t0 = Instant::now();
                for (i, (seq, ts, m, p)) in packets.iter().enumerate() {
                    let _ = rx.handle_packet(*seq, *ts, *m, p, t0 + Duration::from_millis(i as u64));
                }
            }

            #[test]
            fn any_shuffle_and_duplication_of_one_press_is_one_digit(
                order in Just((0usize..10).collect::<Vec<_>>()).prop_shuffle(),
                dups in proptest::collection::vec(0usize..10, 0..6),
                base_ts in any::<u32>(),
                base_seq in any::<u16>(),
            ) {
                let pkts = press(Digit::D0, base_seq, base_ts, 6);
                let mut fed: Vec<_> = order.iter().map(|&i| pkts[i]).collect();
                fed.extend(dups.iter().map(|&i| pkts[i]));
                let mut rx = TelephoneEventReceiver::new();
                let t0 = Instant::now();
                prop_assert_eq!(feed(&mut rx, &fed, t0), vec![Digit::D0]);
            }
        }
    }
}

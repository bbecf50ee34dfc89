//! Minimal RTCP (RFC 3550 §6): recognise it on a multiplexed port, read the
//! headers of SR, RR and BYE safely, and build an empty RR or a BYE.
//!
//! dialgate does not need RTCP for anything but liveness and good manners,
//! so report blocks are counted, not interpreted.

use super::rtp::Ssrc;

/// RTCP packet type: sender report (RFC 3550 §6.4.1).
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report (§6.4.2).
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description (§6.5).
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye (§6.6).
pub const PT_BYE: u8 = 203;
/// RTCP packet type: application-defined (§6.7).
pub const PT_APP: u8 = 204;

/// Errors from reading or building RTCP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtcpError {
    /// Shorter than the 4-byte common header, or a length field pointing past the end.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version other than 2.
    #[error("RTCP version {0} is not 2")]
    Version(u8),
    /// A packet type outside the RTCP range.
    #[error("RTCP packet type {0} is not an RTCP type")]
    PacketType(u8),
    /// Output buffer too small.
    #[error("RTCP output buffer too small: need {0} bytes")]
    BufferTooSmall(usize),
}

/// True when a datagram on an rtcp-mux port is RTCP rather than RTP:
/// RFC 5761 §4 reserves second-byte values 192–223 (RTP payload types 64–95
/// with the marker bit) for RTCP.
pub fn is_rtcp(data: &[u8]) -> bool {
    matches!(data.get(1), Some(192..=223)) && data.len() >= 4
}

/// One RTCP packet inside a compound packet, headers only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender report.
    SenderReport {
        /// Sender's SSRC.
        ssrc: Ssrc,
        /// NTP timestamp (64-bit, §4).
        ntp: u64,
        /// RTP timestamp matching `ntp`.
        rtp_timestamp: u32,
        /// Sender's packet count.
        packets: u32,
        /// Sender's octet count.
        octets: u32,
        /// Number of report blocks.
        reports: u8,
    },
    /// Receiver report.
    ReceiverReport {
        /// Reporter's SSRC.
        ssrc: Ssrc,
        /// Number of report blocks.
        reports: u8,
    },
    /// Goodbye; `first` is the first SSRC leaving, `count` how many.
    Bye {
        /// First SSRC in the packet, if any.
        first: Option<Ssrc>,
        /// Source count.
        count: u8,
    },
    /// Any other RTCP type (SDES, APP, feedback, XR): skipped.
    Other {
        /// Its packet type.
        packet_type: u8,
    },
}

/// Iterator over the packets of a compound RTCP datagram (§6.1). Stops at
/// the first malformed packet, yielding the error once.
#[derive(Clone, Debug)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Reads a compound RTCP datagram packet by packet without allocating.
pub fn packets(data: &[u8]) -> RtcpIter<'_> {
    RtcpIter {
        rest: data,
        failed: false,
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.read_one();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl<'a> RtcpIter<'a> {
    fn read_one(&mut self) -> Result<RtcpPacket, RtcpError> {
        let b = self.rest;
        let (&first, &pt) = match (b.first(), b.get(1)) {
            (Some(f), Some(p)) => (f, p),
            _ => return Err(RtcpError::Truncated),
        };
        let version = first >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        if !(192..=223).contains(&pt) {
            return Err(RtcpError::PacketType(pt));
        }
        let words = match b.get(2..4) {
            Some(w) => usize::from(u16::from_be_bytes([w[0], w[1]])),
            None => return Err(RtcpError::Truncated),
        };
        let len = (words + 1) * 4;
        let pkt = b.get(..len).ok_or(RtcpError::Truncated)?;
        self.rest = b.get(len..).unwrap_or(&[]);
        let count = first & 0x1f;
        let ssrc = || be32(pkt, 4).map(Ssrc).ok_or(RtcpError::Truncated);
        Ok(match pt {
            PT_SR => {
                let hi = be32(pkt, 8).ok_or(RtcpError::Truncated)?;
                let lo = be32(pkt, 12).ok_or(RtcpError::Truncated)?;
                RtcpPacket::SenderReport {
                    ssrc: ssrc()?,
                    ntp: (u64::from(hi) << 32) | u64::from(lo),
                    rtp_timestamp: be32(pkt, 16).ok_or(RtcpError::Truncated)?,
                    packets: be32(pkt, 20).ok_or(RtcpError::Truncated)?,
                    octets: be32(pkt, 24).ok_or(RtcpError::Truncated)?,
                    reports: count,
                }
            }
            PT_RR => RtcpPacket::ReceiverReport {
                ssrc: ssrc()?,
                reports: count,
            },
            PT_BYE => RtcpPacket::Bye {
                first: if count > 0 { Some(ssrc()?) } else { None },
                count,
            },
            other => RtcpPacket::Other { packet_type: other },
        })
    }
}

/// What a receiver wants to know about one RTCP datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcpSummary {
    /// SSRC of the first SR or RR (the reporter).
    pub sender_ssrc: Option<Ssrc>,
    /// The far end said BYE (RFC 3550 §6.6).
    pub bye: bool,
    /// Packets in the compound datagram.
    pub packets: u8,
}

/// Reads a compound RTCP datagram into a [`RtcpSummary`]; an error if any
/// packet in it is malformed.
pub fn summarize(data: &[u8]) -> Result<RtcpSummary, RtcpError> {
    let mut s = RtcpSummary::default();
    for p in packets(data) {
        match p? {
            RtcpPacket::SenderReport { ssrc, .. } | RtcpPacket::ReceiverReport { ssrc, .. } => {
                s.sender_ssrc.get_or_insert(ssrc);
            }
            RtcpPacket::Bye { .. } => s.bye = true,
            RtcpPacket::Other { .. } => {}
        }
        s.packets = s.packets.saturating_add(1);
    }
    if s.packets == 0 {
        return Err(RtcpError::Truncated);
    }
    Ok(s)
}

/// Writes an empty receiver report (RFC 3550 §6.4.2, RC = 0), 8 bytes.
/// Enough to keep NAT bindings and strict peers content during prompts.
pub fn build_receiver_report(ssrc: Ssrc, out: &mut [u8]) -> Result<usize, RtcpError> {
    let pkt = out.get_mut(..8).ok_or(RtcpError::BufferTooSmall(8))?;
    pkt[..4].copy_from_slice(&[0x80, PT_RR, 0, 1]);
    pkt[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    Ok(8)
}

/// Writes a BYE for one SSRC (RFC 3550 §6.6), 8 bytes.
pub fn build_bye(ssrc: Ssrc, out: &mut [u8]) -> Result<usize, RtcpError> {
    let pkt = out.get_mut(..8).ok_or(RtcpError::BufferTooSmall(8))?;
    pkt[..4].copy_from_slice(&[0x81, PT_BYE, 0, 1]);
    pkt[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    Ok(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sr(ssrc: u32) -> Vec<u8> {
        let mut v = vec![0x80, PT_SR, 0, 6];
        for w in [ssrc, 1, 2, 3, 4, 5] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v
    }

    #[test]
    fn recognises_rtcp_range_only() {
        assert!(is_rtcp(&[0x80, 200, 0, 1]));
        assert!(is_rtcp(&[0x80, 192, 0, 0]));
        assert!(!is_rtcp(&[0x80, 0, 0, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 101, 0, 0]));
        assert!(!is_rtcp(&[0x80, 200]));
        assert!(!is_rtcp(&[]));
    }

    #[test]
    fn reads_compound_sr_sdes_bye() {
        let mut d = sr(77);
        d.extend_from_slice(&[0x81, PT_SDES, 0, 1, 0, 0, 0, 77]);
        let mut bye = [0u8; 8];
        build_bye(Ssrc(77), &mut bye).unwrap();
        d.extend_from_slice(&bye);
        let all: Vec<_> = packets(&d).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            all[0],
            RtcpPacket::SenderReport {
                ssrc: Ssrc(77),
                ntp: (1 << 32) | 2,
                rtp_timestamp: 3,
                packets: 4,
                octets: 5,
                reports: 0
            }
        );
        assert_eq!(
            all[1],
            RtcpPacket::Other {
                packet_type: PT_SDES
            }
        );
        assert_eq!(
            all[2],
            RtcpPacket::Bye {
                first: Some(Ssrc(77)),
                count: 1
            }
        );
        let s = summarize(&d).unwrap();
        assert_eq!(
            s,
            RtcpSummary {
                sender_ssrc: Some(Ssrc(77)),
                bye: true,
                packets: 3
            }
        );
    }

    #[test]
    fn receiver_report_round_trips() {
        let mut b = [0u8; 8];
        assert_eq!(
            build_receiver_report(Ssrc(9), &mut b[..4]),
            Err(RtcpError::BufferTooSmall(8))
        );
        let n = build_receiver_report(Ssrc(9), &mut b).unwrap();
        assert_eq!(
            packets(&b[..n]).next(),
            Some(Ok(RtcpPacket::ReceiverReport {
                ssrc: Ssrc(9),
                reports: 0
            }))
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(summarize(&[]), Err(RtcpError::Truncated));
        assert_eq!(
            summarize(&[0x80, PT_RR, 0, 5, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
        assert_eq!(
            summarize(&[0x40, PT_RR, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Version(1))
        );
        // SR whose length claims only the SSRC.
        assert_eq!(
            summarize(&[0x80, PT_SR, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
        let mut d = sr(1);
        d.extend_from_slice(&[0x80, 5, 0, 0]);
        assert_eq!(summarize(&d), Err(RtcpError::PacketType(5)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = is_rtcp(&data);
            let _ = summarize(&data);
            for p in packets(&data).take(64) { let _ = p; }
        }
    }
}

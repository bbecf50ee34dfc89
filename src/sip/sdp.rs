//! SDP (RFC 4566) for the gateway's audio calls, and the offer/answer rules
//! (RFC 3264) that pick a G.711 codec and RFC 4733 telephone-events.
//!
//! Only what a dial-in gateway needs is modelled; unknown lines are kept as
//! attributes or ignored, never rejected. Values are owned: SDP is small and
//! lives with the dialog.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Why an SDP body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not UTF-8.
    #[error("SDP not UTF-8")]
    NotUtf8,
    /// A line is not `<letter>=<value>`.
    #[error("SDP line {0} malformed")]
    MalformedLine(usize),
    /// `v=` is not 0 or not first.
    #[error("SDP version must be 0")]
    BadVersion,
    /// `o=` malformed or missing.
    #[error("Bad SDP origin")]
    BadOrigin,
    /// `c=` malformed.
    #[error("Bad SDP connection")]
    BadConnection,
    /// `m=` malformed.
    #[error("Bad SDP media line")]
    BadMedia,
    /// An attribute with a payload type or port is malformed.
    #[error("Bad SDP attribute {0}")]
    BadAttribute(String),
    /// Too many lines or media sections.
    #[error("SDP too large")]
    TooLarge,
}

/// Why offer/answer failed; answer the INVITE with 488.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No usable audio m-line (absent or all rejected).
    #[error("No audio stream")]
    NoAudio,
    /// No common codec among PCMU/PCMA.
    #[error("No common codec")]
    NoCommonCodec,
    /// No connection address for the audio stream.
    #[error("No connection address")]
    NoConnection,
    /// The answer does not match our offer (m-line count, unknown codec).
    #[error("Answer does not match offer")]
    AnswerMismatch,
}

/// Address type of `o=` and `c=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    /// IP4
    Ip4,
    /// IP6
    Ip6,
}

/// `o=` line (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; bumped on every change (RFC 3264 §8).
    pub session_version: u64,
    /// Address type.
    pub addr_type: AddrType,
    /// Address as written.
    pub address: String,
}

/// `c=` line (RFC 4566 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Address type.
    pub addr_type: AddrType,
    /// Address as written (a TTL/count suffix is dropped).
    pub address: String,
}

impl Connection {
    /// The address as an IP, if it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// True for the RFC 2543 hold address `0.0.0.0` (RFC 3264 §8.4).
    pub fn is_hold(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// Media direction attribute (RFC 4566 §6, RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// The direction to answer with (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// `a=rtpmap` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// Clock rate, Hz.
    pub clock_rate: u32,
    /// Channels when given.
    pub channels: Option<u16>,
}

/// `a=fmtp` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub payload_type: u8,
    /// Format parameters as written.
    pub params: String,
}

/// `a=rtcp` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpAttr {
    /// RTCP port.
    pub port: u16,
    /// RTCP address when given.
    pub connection: Option<Connection>,
}

/// One `m=` section (RFC 4566 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video` ...).
    pub media: String,
    /// Port; 0 means rejected/disabled.
    pub port: u16,
    /// Port count (`<port>/<count>`).
    pub port_count: Option<u16>,
    /// Transport protocol (`RTP/AVP` ...).
    pub protocol: String,
    /// Format list as written (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime`, ms.
    pub ptime: Option<u32>,
    /// `a=maxptime`, ms.
    pub maxptime: Option<u32>,
    /// Direction attribute if present.
    pub direction: Option<Direction>,
    /// `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
    /// `a=rtcp` (RFC 3605).
    pub rtcp: Option<RtcpAttr>,
    /// Other attributes `(name, value)`.
    pub attributes: Vec<(String, Option<String>)>,
}

impl MediaDescription {
    /// Payload types of the format list that are numbers, in offer order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// rtpmap for a payload type, if given.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// fmtp for a payload type, if given.
    pub fn fmtp(&self, pt: u8) -> Option<&Fmtp> {
        self.fmtps.iter().find(|m| m.payload_type == pt)
    }
}

/// A session description (RFC 4566 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`
    pub origin: Origin,
    /// `s=`
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
}

/// Maximum SDP lines accepted.
pub const MAX_SDP_LINES: usize = 512;
/// Maximum media sections accepted.
pub const MAX_MEDIA: usize = 16;

impl SessionDescription {
    /// Parses an SDP body (CRLF or LF line endings).
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let _ = body;
        todo!()
    }

    /// Connection for a media section: media-level, else session-level.
    pub fn connection_for(&self, media_index: usize) -> Option<&Connection> {
        self.media
            .get(media_index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }

    /// Effective direction of a media section (media, session, sendrecv).
    pub fn direction_for(&self, media_index: usize) -> Direction {
        self.media
            .get(media_index)
            .and_then(|m| m.direction)
            .or(self.direction)
            .unwrap_or_default()
    }
}

impl fmt::Display for SessionDescription {
    /// Serialises with CRLF line endings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
    }
}

/// The G.711 codecs the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Codec {
    /// G.711 µ-law, static PT 0.
    Pcmu,
    /// G.711 A-law, static PT 8.
    Pcma,
}

impl Codec {
    /// Static payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// Encoding name.
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Our side of the media session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address.
    pub ip: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version; call [`LocalMedia::bump_version`] before each
    /// new offer/answer in the same session (re-INVITE).
    pub session_version: u64,
    /// Codecs we accept, in our preference order (used for our offers).
    pub codecs: Vec<Codec>,
    /// Payload type for telephone-event in our offers (None: don't offer).
    pub telephone_event_pt: Option<u8>,
    /// Packet time, ms.
    pub ptime: u32,
    /// Whether we offer/accept RTP/RTCP multiplexing.
    pub rtcp_mux: bool,
}

impl LocalMedia {
    /// Defaults: PCMU, PCMA, telephone-event 101, ptime 20, no rtcp-mux.
    pub fn new(ip: IpAddr, port: u16, session_id: u64) -> LocalMedia {
        LocalMedia {
            ip,
            port,
            session_id,
            session_version: session_id,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event_pt: Some(101),
            ptime: 20,
            rtcp_mux: false,
        }
    }

    /// Increments the session version (RFC 3264 §8: a changed SDP in the
    /// same session carries a higher version).
    pub fn bump_version(&mut self) {
        self.session_version = self.session_version.wrapping_add(1);
    }
}

/// The telephone-event format agreed (RFC 4733).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Payload type (the offerer's number).
    pub payload_type: u8,
    /// fmtp as offered (`0-16` ...).
    pub fmtp: Option<String>,
}

/// Result of an offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Chosen codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// Telephone-event when both sides have it.
    pub telephone_event: Option<TelephoneEvent>,
    /// Where to send RTP; `None` when on hold (`c=0.0.0.0`) or the peer will not receive.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP (rtcp-mux: same as RTP; else `a=rtcp` or RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP/RTCP multiplexing agreed.
    pub rtcp_mux: bool,
    /// Our direction.
    pub direction: Direction,
    /// The peer put us on hold (sendonly/inactive/`c=0.0.0.0`).
    pub on_hold: bool,
    /// The peer's ptime, if given.
    pub ptime: Option<u32>,
    /// Index of the audio m-line used.
    pub media_index: usize,
    /// The SDP we sent in this exchange (our answer, or our offer).
    pub local_sdp: SessionDescription,
}

/// Answers an offer (RFC 3264 §6): first of the offer's PCMU/PCMA we accept,
/// its telephone-event PT if any, direction per §6.1, other m-lines and
/// port-0 m-lines answered with port 0. [`NegotiationError`] → 488.
pub fn answer_offer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    let _ = (offer, local);
    todo!()
}

/// Builds our offer (for an INVITE without SDP: it goes in the 200).
pub fn build_offer(local: &LocalMedia) -> SessionDescription {
    let _ = local;
    todo!()
}

/// Takes the answer to our offer (RFC 3264 §7; e.g. SDP in the ACK).
pub fn accept_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    let _ = (offer, answer);
    todo!()
}

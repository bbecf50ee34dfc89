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

impl RtpMap {
    /// A mono 8 kHz mapping, as G.711 and telephone-event use.
    pub fn at_8khz(payload_type: u8, encoding: &str) -> RtpMap {
        RtpMap {
            payload_type,
            encoding: encoding.to_string(),
            clock_rate: 8000,
            channels: None,
        }
    }
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
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut origin = None;
        let mut sd = SessionDescription {
            origin: Origin {
                username: String::new(),
                session_id: 0,
                session_version: 0,
                addr_type: AddrType::Ip4,
                address: String::new(),
            },
            session_name: String::new(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        for (index, line) in text.lines().enumerate() {
            if index >= MAX_SDP_LINES {
                return Err(SdpError::TooLarge);
            }
            let line = line.trim_end();
            if line.is_empty() {
                continue; // Liberal: stray blank lines.
            }
            let (kind, value) = match line.as_bytes() {
                [k, b'=', ..] => (*k, line.get(2..).unwrap_or("")),
                _ => return Err(SdpError::MalformedLine(index + 1)),
            };
            match kind {
                b'v' if value.trim() != "0" => return Err(SdpError::BadVersion),
                b'o' => origin = Some(parse_origin(value).ok_or(SdpError::BadOrigin)?),
                b's' => sd.session_name = value.to_string(),
                b'c' => {
                    let c = parse_connection(value).ok_or(SdpError::BadConnection)?;
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(c),
                        None => sd.connection = Some(c),
                    }
                }
                b'm' => {
                    if sd.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooLarge);
                    }
                    sd.media.push(parse_media(value).ok_or(SdpError::BadMedia)?);
                }
                b'a' => {
                    let (name, val) = match value.split_once(':') {
                        Some((n, v)) => (n, Some(v)),
                        None => (value, None),
                    };
                    match sd.media.last_mut() {
                        Some(m) => parse_media_attribute(m, name, val)?,
                        None => {
                            if let Some(d) = parse_direction(name) {
                                sd.direction = Some(d);
                            }
                        }
                    }
                }
                // t=, b=, k=, i=, u=, e=, p=, r=, z=: not needed by the gateway.
                _ => {}
            }
        }
        sd.origin = origin.ok_or(SdpError::BadOrigin)?;
        Ok(sd)
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
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} IN {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.addr_type,
            o.address,
            if self.session_name.is_empty() {
                "-"
            } else {
                &self.session_name
            }
        )?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        f.write_str("t=0 0\r\n")?;
        if let Some(d) = self.direction {
            write!(f, "a={}\r\n", d.as_str())?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.protocol)?;
            for fmt in &m.formats {
                write!(f, " {fmt}")?;
            }
            f.write_str("\r\n")?;
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            for r in &m.rtpmaps {
                write!(
                    f,
                    "a=rtpmap:{} {}/{}",
                    r.payload_type, r.encoding, r.clock_rate
                )?;
                if let Some(ch) = r.channels {
                    write!(f, "/{ch}")?;
                }
                f.write_str("\r\n")?;
            }
            for p in &m.fmtps {
                write!(f, "a=fmtp:{} {}\r\n", p.payload_type, p.params)?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            if let Some(p) = m.maxptime {
                write!(f, "a=maxptime:{p}\r\n")?;
            }
            if let Some(r) = &m.rtcp {
                write!(f, "a=rtcp:{}", r.port)?;
                if let Some(c) = &r.connection {
                    write!(f, " {c}")?;
                }
                f.write_str("\r\n")?;
            }
            if m.rtcp_mux {
                f.write_str("a=rtcp-mux\r\n")?;
            }
            if let Some(d) = m.direction {
                write!(f, "a={}\r\n", d.as_str())?;
            }
            for (name, value) in &m.attributes {
                match value {
                    Some(v) => write!(f, "a={name}:{v}\r\n")?,
                    None => write!(f, "a={name}\r\n")?,
                }
            }
        }
        Ok(())
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
    let mut answer = local_session(local);
    let mut chosen: Option<(usize, Codec, u8, Option<TelephoneEvent>)> = None;
    let mut saw_audio = false;
    for (index, m) in offer.media.iter().enumerate() {
        let usable = chosen.is_none()
            && m.media.eq_ignore_ascii_case("audio")
            && m.port != 0
            && is_plain_rtp(&m.protocol);
        if usable {
            saw_audio = true;
            let codec = m.payload_types().find_map(|pt| {
                codec_for(m, pt)
                    .filter(|c| local.codecs.contains(c))
                    .map(|c| (c, pt))
            });
            if let Some((codec, pt)) = codec {
                let te = local.telephone_event_pt.and_then(|_| telephone_event(m));
                chosen = Some((index, codec, pt, te));
                continue;
            }
        }
        // §6: a rejected or unsupported stream is answered with port 0.
        answer.media.push(MediaDescription {
            port: 0,
            port_count: None,
            connection: None,
            ..empty_media(&m.media, &m.protocol, m.formats.clone())
        });
    }
    let Some((index, codec, payload_type, telephone_event)) = chosen else {
        return Err(if saw_audio {
            NegotiationError::NoCommonCodec
        } else {
            NegotiationError::NoAudio
        });
    };
    let m = offer.media.get(index).ok_or(NegotiationError::NoAudio)?;
    let remote = remote_endpoint(offer, index)?;
    let rtcp_mux = m.rtcp_mux && local.rtcp_mux;
    let offered = remote.direction(offer, index);
    let direction = offered.answer();

    let mut formats = vec![payload_type.to_string()];
    let mut rtpmaps = vec![RtpMap::at_8khz(payload_type, codec.encoding())];
    let mut fmtps = Vec::new();
    if let Some(te) = &telephone_event {
        formats.push(te.payload_type.to_string());
        rtpmaps.push(RtpMap::at_8khz(te.payload_type, "telephone-event"));
        fmtps.push(Fmtp {
            payload_type: te.payload_type,
            params: te.fmtp.clone().unwrap_or_else(|| "0-16".to_string()),
        });
    }
    let ours = MediaDescription {
        port: local.port,
        rtpmaps,
        fmtps,
        ptime: Some(local.ptime),
        direction: Some(direction),
        rtcp_mux,
        ..empty_media("audio", &m.protocol, formats)
    };
    answer.media.insert(index.min(answer.media.len()), ours);

    Ok(Negotiated {
        codec,
        payload_type,
        telephone_event,
        remote_rtp: remote.rtp.filter(|_| receives(offered)),
        remote_rtcp: if rtcp_mux { remote.rtp } else { remote.rtcp },
        rtcp_mux,
        direction,
        on_hold: !receives(offered),
        ptime: m.ptime,
        media_index: index,
        local_sdp: answer,
    })
}

/// Builds our offer (for an INVITE without SDP: it goes in the 200).
pub fn build_offer(local: &LocalMedia) -> SessionDescription {
    let mut sd = local_session(local);
    let mut formats: Vec<String> = Vec::new();
    let mut rtpmaps = Vec::new();
    for codec in &local.codecs {
        formats.push(codec.payload_type().to_string());
        rtpmaps.push(RtpMap::at_8khz(codec.payload_type(), codec.encoding()));
    }
    let mut fmtps = Vec::new();
    if let Some(pt) = local.telephone_event_pt {
        formats.push(pt.to_string());
        rtpmaps.push(RtpMap::at_8khz(pt, "telephone-event"));
        fmtps.push(Fmtp {
            payload_type: pt,
            params: "0-16".to_string(),
        });
    }
    sd.media.push(MediaDescription {
        port: local.port,
        rtpmaps,
        fmtps,
        ptime: Some(local.ptime),
        direction: Some(Direction::SendRecv),
        rtcp_mux: local.rtcp_mux,
        ..empty_media("audio", "RTP/AVP", formats)
    });
    sd
}

/// Takes the answer to our offer (RFC 3264 §7; e.g. SDP in the ACK).
pub fn accept_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    if offer.media.len() != answer.media.len() {
        return Err(NegotiationError::AnswerMismatch);
    }
    let index = offer
        .media
        .iter()
        .position(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
        .ok_or(NegotiationError::NoAudio)?;
    let (ours, theirs) = match (offer.media.get(index), answer.media.get(index)) {
        (Some(o), Some(a)) => (o, a),
        _ => return Err(NegotiationError::AnswerMismatch),
    };
    if theirs.port == 0 {
        return Err(NegotiationError::NoAudio);
    }
    let offered: Vec<Codec> = ours
        .payload_types()
        .filter_map(|pt| codec_for(ours, pt))
        .collect();
    let (codec, payload_type) = theirs
        .payload_types()
        .find_map(|pt| {
            codec_for(theirs, pt)
                .filter(|c| offered.contains(c))
                .map(|c| (c, pt))
        })
        .ok_or(NegotiationError::NoCommonCodec)?;
    let telephone_event = telephone_event(ours).and_then(|_| telephone_event(theirs));
    let remote = remote_endpoint(answer, index)?;
    let rtcp_mux = ours.rtcp_mux && theirs.rtcp_mux;
    let answered = remote.direction(answer, index);
    let our_direction = offer.direction_for(index);
    let direction = intersect(our_direction, answered.answer());
    Ok(Negotiated {
        codec,
        payload_type,
        telephone_event,
        remote_rtp: remote.rtp.filter(|_| receives(answered)),
        remote_rtcp: if rtcp_mux { remote.rtp } else { remote.rtcp },
        rtcp_mux,
        direction,
        on_hold: !receives(answered),
        ptime: theirs.ptime,
        media_index: index,
        local_sdp: offer.clone(),
    })
}

/// Where the peer's media is, from its SDP.
struct RemoteEndpoint {
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    hold_address: bool,
}

impl RemoteEndpoint {
    /// The peer's direction for a media section; a `sendrecv` stream at the
    /// RFC 2543 hold address (c=0.0.0.0) means the peer will not receive.
    fn direction(&self, sd: &SessionDescription, index: usize) -> Direction {
        match sd.direction_for(index) {
            Direction::SendRecv if self.hold_address => Direction::SendOnly,
            d => d,
        }
    }
}

fn remote_endpoint(
    sd: &SessionDescription,
    index: usize,
) -> Result<RemoteEndpoint, NegotiationError> {
    let m = sd.media.get(index).ok_or(NegotiationError::NoAudio)?;
    let conn = sd
        .connection_for(index)
        .ok_or(NegotiationError::NoConnection)?;
    let ip = conn.ip().ok_or(NegotiationError::NoConnection)?;
    if ip.is_unspecified() {
        return Ok(RemoteEndpoint {
            rtp: None,
            rtcp: None,
            hold_address: true,
        });
    }
    let rtcp = match &m.rtcp {
        Some(r) => {
            let rtcp_ip = r.connection.as_ref().and_then(Connection::ip).unwrap_or(ip);
            Some(SocketAddr::new(rtcp_ip, r.port))
        }
        None => m.port.checked_add(1).map(|p| SocketAddr::new(ip, p)),
    };
    Ok(RemoteEndpoint {
        rtp: Some(SocketAddr::new(ip, m.port)),
        rtcp,
        hold_address: false,
    })
}

/// True when a side with this direction receives media.
fn receives(d: Direction) -> bool {
    matches!(d, Direction::SendRecv | Direction::RecvOnly)
}

/// The direction allowed by both `a` and `b`.
fn intersect(a: Direction, b: Direction) -> Direction {
    let send = matches!(a, Direction::SendRecv | Direction::SendOnly)
        && matches!(b, Direction::SendRecv | Direction::SendOnly);
    let recv = receives(a) && receives(b);
    match (send, recv) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// The codec a payload type stands for, by rtpmap or static assignment.
fn codec_for(m: &MediaDescription, pt: u8) -> Option<Codec> {
    match m.rtpmap(pt) {
        Some(map) => {
            let mono = map.channels.is_none_or(|c| c == 1);
            if map.clock_rate != 8000 || !mono {
                None
            } else if map.encoding.eq_ignore_ascii_case("PCMU") {
                Some(Codec::Pcmu)
            } else if map.encoding.eq_ignore_ascii_case("PCMA") {
                Some(Codec::Pcma)
            } else {
                None
            }
        }
        None => match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        },
    }
}

/// The offer's telephone-event/8000 format (RFC 4733 §7.1.1), if listed.
fn telephone_event(m: &MediaDescription) -> Option<TelephoneEvent> {
    m.payload_types().find_map(|pt| {
        let map = m.rtpmap(pt)?;
        (map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == 8000).then(
            || TelephoneEvent {
                payload_type: pt,
                fmtp: m.fmtp(pt).map(|f| f.params.clone()),
            },
        )
    })
}

/// RTP without SRTP/DTLS: the only profiles the gateway speaks.
fn is_plain_rtp(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("RTP/AVP") || protocol.eq_ignore_ascii_case("RTP/AVPF")
}

/// Session-level lines for our SDP.
fn local_session(local: &LocalMedia) -> SessionDescription {
    let addr_type = match local.ip {
        IpAddr::V4(_) => AddrType::Ip4,
        IpAddr::V6(_) => AddrType::Ip6,
    };
    SessionDescription {
        origin: Origin {
            username: "dialgate".to_string(),
            session_id: local.session_id,
            session_version: local.session_version,
            addr_type,
            address: local.ip.to_string(),
        },
        session_name: "dialgate".to_string(),
        connection: Some(Connection {
            addr_type,
            address: local.ip.to_string(),
        }),
        direction: None,
        media: Vec::new(),
    }
}

fn empty_media(media: &str, protocol: &str, formats: Vec<String>) -> MediaDescription {
    MediaDescription {
        media: media.to_string(),
        port: 0,
        port_count: None,
        protocol: protocol.to_string(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        maxptime: None,
        direction: None,
        rtcp_mux: false,
        rtcp: None,
        attributes: Vec::new(),
    }
}

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        })
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.addr_type, self.address)
    }
}

fn parse_addr_type(s: &str) -> Option<AddrType> {
    if s.eq_ignore_ascii_case("IP4") {
        Some(AddrType::Ip4)
    } else if s.eq_ignore_ascii_case("IP6") {
        Some(AddrType::Ip6)
    } else {
        None
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`
fn parse_origin(value: &str) -> Option<Origin> {
    let mut it = value.split_ascii_whitespace();
    let username = it.next()?.to_string();
    let session_id = it.next()?.parse().ok()?;
    let session_version = it.next()?.parse().ok()?;
    if !it.next()?.eq_ignore_ascii_case("IN") {
        return None;
    }
    let addr_type = parse_addr_type(it.next()?)?;
    let address = it.next()?.to_string();
    Some(Origin {
        username,
        session_id,
        session_version,
        addr_type,
        address,
    })
}

/// `c=IN <addrtype> <address>[/ttl[/count]]`
fn parse_connection(value: &str) -> Option<Connection> {
    let mut it = value.split_ascii_whitespace();
    if !it.next()?.eq_ignore_ascii_case("IN") {
        return None;
    }
    let addr_type = parse_addr_type(it.next()?)?;
    let address = it.next()?.split('/').next()?.to_string();
    if address.is_empty() || it.next().is_some() {
        return None;
    }
    Some(Connection { addr_type, address })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut it = value.split_ascii_whitespace();
    let media = it.next()?;
    let port = it.next()?;
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
        None => (port.parse().ok()?, None),
    };
    let protocol = it.next()?;
    let formats: Vec<String> = it.map(str::to_string).collect();
    if formats.is_empty() {
        return None;
    }
    let mut m = empty_media(media, protocol, formats);
    m.port = port;
    m.port_count = port_count;
    Some(m)
}

fn parse_direction(name: &str) -> Option<Direction> {
    match name {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

/// Leading payload type of `rtpmap`/`fmtp` values: `<pt> <rest>`.
fn split_pt(value: &str) -> Option<(u8, &str)> {
    let (pt, rest) = value.trim_start().split_once([' ', '\t'])?;
    Some((pt.parse().ok()?, rest.trim()))
}

fn parse_media_attribute(
    m: &mut MediaDescription,
    name: &str,
    value: Option<&str>,
) -> Result<(), SdpError> {
    let bad = || SdpError::BadAttribute(name.to_string());
    if let Some(d) = parse_direction(name) {
        m.direction = Some(d);
        return Ok(());
    }
    match (name, value) {
        ("rtpmap", Some(v)) => {
            let (payload_type, rest) = split_pt(v).ok_or_else(bad)?;
            let mut parts = rest.split('/');
            let encoding = parts.next().filter(|e| !e.is_empty()).ok_or_else(bad)?;
            let clock_rate = parts
                .next()
                .and_then(|r| r.trim().parse().ok())
                .ok_or_else(bad)?;
            let channels = match parts.next() {
                Some(c) => Some(c.trim().parse().map_err(|_| bad())?),
                None => None,
            };
            m.rtpmaps.push(RtpMap {
                payload_type,
                encoding: encoding.to_string(),
                clock_rate,
                channels,
            });
        }
        ("fmtp", Some(v)) => {
            let (payload_type, params) = split_pt(v).ok_or_else(bad)?;
            m.fmtps.push(Fmtp {
                payload_type,
                params: params.to_string(),
            });
        }
        // Liberal: some send "20.0"; an unreadable ptime is ignored.
        ("ptime", Some(v)) => m.ptime = leading_u32(v),
        ("maxptime", Some(v)) => m.maxptime = leading_u32(v),
        ("rtcp-mux", _) => m.rtcp_mux = true,
        ("rtcp", Some(v)) => {
            let v = v.trim();
            let (port, addr) = match v.split_once([' ', '\t']) {
                Some((p, a)) => (p, Some(a)),
                None => (v, None),
            };
            let port = port.parse().map_err(|_| bad())?;
            let connection = match addr {
                Some(a) => Some(parse_connection(a).ok_or_else(bad)?),
                None => None,
            };
            m.rtcp = Some(RtcpAttr { port, connection });
        }
        _ => m
            .attributes
            .push((name.to_string(), value.map(str::to_string))),
    }
    Ok(())
}

fn leading_u32(v: &str) -> Option<u32> {
    let v = v.trim();
    let digits = v.split('.').next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    pub(crate) const OFFER: &str = "v=0\r\n\
o=carrier 2890844526 2890844527 IN IP4 203.0.113.5\r\n\
s=-\r\n\
c=IN IP4 203.0.113.5\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 8 0 18 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

    fn local() -> LocalMedia {
        LocalMedia::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000, 77)
    }

    fn sdp(s: &str) -> SessionDescription {
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn parses_offer() {
        let sd = sdp(OFFER);
        assert_eq!(sd.origin.username, "carrier");
        assert_eq!(sd.origin.session_version, 2890844527);
        assert_eq!(sd.connection.as_ref().unwrap().address, "203.0.113.5");
        let m = &sd.media[0];
        assert_eq!(m.port, 49170);
        assert_eq!(m.payload_types().collect::<Vec<_>>(), [8, 0, 18, 101]);
        assert_eq!(m.rtpmap(101).unwrap().encoding, "telephone-event");
        assert_eq!(m.fmtp(18).unwrap().params, "annexb=no");
        assert_eq!(m.ptime, Some(20));
        assert_eq!(m.direction, Some(Direction::SendRecv));
    }

    #[test]
    fn round_trip() {
        let sd = sdp(OFFER);
        let again = sdp(&sd.to_string());
        assert_eq!(sd, again);
    }

    #[test]
    fn answers_with_callers_preferred_codec() {
        let n = answer_offer(&sdp(OFFER), &local()).unwrap();
        assert_eq!(n.codec, Codec::Pcma, "PCMA comes first in the offer");
        assert_eq!(n.payload_type, 8);
        let te = n.telephone_event.clone().unwrap();
        assert_eq!(te.payload_type, 101);
        assert_eq!(te.fmtp.as_deref(), Some("0-15"));
        assert_eq!(n.remote_rtp, Some("203.0.113.5:49170".parse().unwrap()));
        assert_eq!(n.remote_rtcp, Some("203.0.113.5:49171".parse().unwrap()));
        assert_eq!(n.direction, Direction::SendRecv);
        assert!(!n.on_hold);
        let text = n.local_sdp.to_string();
        assert!(text.starts_with("v=0\r\no=dialgate 77 77 IN IP4 192.0.2.1\r\ns=dialgate\r\n"));
        assert!(text.contains("c=IN IP4 192.0.2.1\r\nt=0 0\r\n"));
        assert!(text.contains("m=audio 40000 RTP/AVP 8 101\r\n"));
        assert!(text.contains("a=rtpmap:8 PCMA/8000\r\n"));
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"));
        assert!(text.contains("a=ptime:20\r\n"));
        assert!(text.contains("a=sendrecv\r\n"));
        // Our answer parses and is accepted as an answer to the offer.
        let back = accept_answer(&sdp(OFFER), &sdp(&text)).unwrap();
        assert_eq!(back.codec, Codec::Pcma);
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                     t=0 0\r\nm=audio 5004 RTP/AVP 0 8\r\n";
        let n = answer_offer(&sdp(offer), &local()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.telephone_event, None);
        let mut only_pcma = local();
        only_pcma.codecs = vec![Codec::Pcma];
        assert_eq!(
            answer_offer(&sdp(offer), &only_pcma).unwrap().codec,
            Codec::Pcma
        );
    }

    #[test]
    fn dynamic_pt_for_g711_is_honoured() {
        let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                     m=audio 5004 RTP/AVP 96 0\r\na=rtpmap:96 PCMA/8000\r\n";
        let n = answer_offer(&sdp(offer), &local()).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 96));
    }

    #[test]
    fn no_common_codec() {
        let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                     m=audio 5004 RTP/AVP 18 9\r\na=rtpmap:18 G729/8000\r\n";
        assert_eq!(
            answer_offer(&sdp(offer), &local()),
            Err(NegotiationError::NoCommonCodec)
        );
        let video_only = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\n\
                          c=IN IP4 198.51.100.7\r\nm=video 5006 RTP/AVP 96\r\n";
        assert_eq!(
            answer_offer(&sdp(video_only), &local()),
            Err(NegotiationError::NoAudio)
        );
        let srtp = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\n\
                    c=IN IP4 198.51.100.7\r\nm=audio 5006 RTP/SAVP 0\r\n";
        assert_eq!(
            answer_offer(&sdp(srtp), &local()),
            Err(NegotiationError::NoAudio)
        );
        let no_conn = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nm=audio 5006 RTP/AVP 0\r\n";
        assert_eq!(
            answer_offer(&sdp(no_conn), &local()),
            Err(NegotiationError::NoConnection)
        );
    }

    #[test]
    fn other_and_disabled_streams_get_port_zero() {
        let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                     m=audio 0 RTP/AVP 0\r\n\
                     m=video 5006 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                     m=audio 5004 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\na=rtcp:6000\r\n\
                     m=audio 5008 RTP/AVP 0\r\n";
        let n = answer_offer(&sdp(offer), &local()).unwrap();
        assert_eq!(n.media_index, 2);
        assert_eq!(n.remote_rtp, Some("[2001:db8::7]:5004".parse().unwrap()));
        assert_eq!(n.remote_rtcp, Some("[2001:db8::7]:6000".parse().unwrap()));
        let ports: Vec<_> = n.local_sdp.media.iter().map(|m| m.port).collect();
        assert_eq!(ports, [0, 0, 40000, 0]);
        assert_eq!(n.local_sdp.media[1].media, "video");
        // The answer re-parses (port-0 lines keep a format list).
        sdp(&n.local_sdp.to_string());
    }

    #[test]
    fn directions_and_hold() {
        let with = |attr: &str, addr: &str| {
            let offer = format!(
                "v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\n\
                 m=audio 5004 RTP/AVP 0\r\n{attr}"
            );
            answer_offer(&sdp(&offer), &local()).unwrap()
        };
        let n = with("a=sendonly\r\n", "198.51.100.7");
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(n.on_hold);
        assert_eq!(n.remote_rtp, None);
        let n = with("a=inactive\r\n", "198.51.100.7");
        assert_eq!(n.direction, Direction::Inactive);
        let n = with("a=recvonly\r\n", "198.51.100.7");
        assert_eq!(n.direction, Direction::SendOnly);
        assert!(!n.on_hold);
        assert!(n.remote_rtp.is_some());
        let n = with("", "0.0.0.0");
        assert!(n.on_hold, "RFC 2543 hold");
        assert_eq!(n.direction, Direction::RecvOnly);
        assert_eq!(n.remote_rtp, None);
        // Session-level direction applies to the media.
        let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                     a=sendonly\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(
            answer_offer(&sdp(offer), &local()).unwrap().direction,
            Direction::RecvOnly
        );
    }

    #[test]
    fn rtcp_mux() {
        let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                     m=audio 5004 RTP/AVP 0\r\na=rtcp-mux\r\n";
        let n = answer_offer(&sdp(offer), &local()).unwrap();
        assert!(!n.rtcp_mux, "not enabled locally");
        let mut l = local();
        l.rtcp_mux = true;
        let n = answer_offer(&sdp(offer), &l).unwrap();
        assert!(n.rtcp_mux);
        assert_eq!(n.remote_rtcp, n.remote_rtp);
        assert!(n.local_sdp.to_string().contains("a=rtcp-mux\r\n"));
    }

    #[test]
    fn offer_then_answer_in_ack() {
        let mut l = local();
        let offer = build_offer(&l);
        let text = offer.to_string();
        assert!(text.contains("m=audio 40000 RTP/AVP 0 8 101\r\n"));
        assert!(text.contains("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"));
        assert!(text.contains("a=fmtp:101 0-16\r\n"));
        let answer = "v=0\r\no=- 5 5 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                      m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let n = accept_answer(&offer, &sdp(answer)).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.telephone_event.as_ref().unwrap().payload_type, 101);
        assert_eq!(n.remote_rtp, Some("198.51.100.7:6000".parse().unwrap()));
        assert_eq!(n.local_sdp, offer);
        let rejected = "v=0\r\no=- 5 5 IN IP4 198.51.100.7\r\ns=-\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(
            accept_answer(&offer, &sdp(rejected)),
            Err(NegotiationError::NoAudio)
        );
        let two = format!("{answer}m=video 0 RTP/AVP 96\r\n");
        assert_eq!(
            accept_answer(&offer, &sdp(&two)),
            Err(NegotiationError::AnswerMismatch)
        );
        let g729 = "v=0\r\no=- 5 5 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
                    m=audio 6000 RTP/AVP 18\r\n";
        assert_eq!(
            accept_answer(&offer, &sdp(g729)),
            Err(NegotiationError::NoCommonCodec)
        );
        // Re-INVITE in the same session: the version goes up.
        l.bump_version();
        assert_eq!(
            build_offer(&l).origin.session_version,
            offer.origin.session_version + 1
        );
    }

    #[test]
    fn ipv6_local() {
        let l = LocalMedia::new("2001:db8::1".parse().unwrap(), 4000, 1);
        let text = build_offer(&l).to_string();
        assert!(text.contains("o=dialgate 1 1 IN IP6 2001:db8::1\r\n"));
        assert!(text.contains("c=IN IP6 2001:db8::1\r\n"));
    }

    #[test]
    fn parse_errors() {
        let e = |s: &str| SessionDescription::parse(s.as_bytes()).unwrap_err();
        assert_eq!(e("v=1\r\n"), SdpError::BadVersion);
        assert_eq!(e("v=0\r\ns=x\r\n"), SdpError::BadOrigin);
        assert_eq!(e("v=0\r\no=- x 1 IN IP4 h\r\n"), SdpError::BadOrigin);
        assert_eq!(e("v=0\r\nbogus\r\n"), SdpError::MalformedLine(2));
        assert_eq!(
            e("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IPX h\r\n"),
            SdpError::BadConnection
        );
        assert_eq!(
            e("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n"),
            SdpError::BadMedia
        );
        assert_eq!(
            e("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP\r\n"),
            SdpError::BadMedia
        );
        assert_eq!(
            e("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n"),
            SdpError::BadAttribute("rtpmap".into())
        );
        assert_eq!(
            SessionDescription::parse(b"\xff").unwrap_err(),
            SdpError::NotUtf8
        );
        let many = "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1);
        assert_eq!(
            e(&format!("v=0\r\no=- 1 1 IN IP4 h\r\n{many}")),
            SdpError::TooLarge
        );
    }

    #[test]
    fn liberal_parsing() {
        let sd = sdp(
            "v=0\no=- 1 1 IN IP4 h\n\ns=-\nm=audio 5004/2 RTP/AVP 0\na=ptime:20.0\n\
                      a=rtpmap:0 PCMU/8000/1\na=x-custom:1\na=rtcp:5005 IN IP4 10.0.0.1\n",
        );
        let m = &sd.media[0];
        assert_eq!(m.port_count, Some(2));
        assert_eq!(m.ptime, Some(20));
        assert_eq!(m.rtpmap(0).unwrap().channels, Some(1));
        assert_eq!(
            m.attributes,
            [("x-custom".to_string(), Some("1".to_string()))]
        );
        assert_eq!(m.rtcp.as_ref().unwrap().port, 5005);
    }
}

#[cfg(test)]
mod props {
    use super::tests::OFFER;
    use super::*;
    use proptest::prelude::*;

    fn sdp_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("v=0".to_string()),
            "o=[a-z-]{1,5} [0-9]{1,21} [0-9]{1,21} IN IP[46x] [0-9a-f.:]{0,20}",
            "c=IN IP[46] [0-9.:a-f]{0,20}(/[0-9]{1,3})?",
            "m=(audio|video|text) [0-9]{1,6}(/[0-9])? RTP/(AVP|SAVP|AVPF)( [0-9]{1,3}){0,5}",
            "a=rtpmap:[0-9]{1,4} (PCMU|PCMA|telephone-event|G729)/[0-9]{1,6}(/[0-9])?",
            "a=fmtp:[0-9]{1,4} [0-9-,]{0,10}",
            "a=(sendrecv|sendonly|recvonly|inactive|rtcp-mux)",
            "a=rtcp:[0-9]{1,6}( IN IP4 [0-9.]{1,15})?",
            "a=ptime:[0-9.]{0,6}",
            "[a-z]=[ -~]{0,30}",
            "[ -~]{0,30}",
        ]
    }

    fn exercise(sd: &SessionDescription) {
        let local = LocalMedia::new("192.0.2.1".parse().unwrap(), 4000, 1);
        let _ = answer_offer(sd, &local)
            .map(|n| SessionDescription::parse(n.local_sdp.to_string().as_bytes()).unwrap());
        let _ = accept_answer(&build_offer(&local), sd);
        let _ = accept_answer(sd, sd);
        let _ = sd.to_string();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn sdp_like_input_never_panics(lines in prop::collection::vec(sdp_line(), 0..20)) {
            let text = lines.join("\r\n");
            if let Ok(sd) = SessionDescription::parse(text.as_bytes()) {
                exercise(&sd);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(sd) = SessionDescription::parse(&data) {
                exercise(&sd);
            }
        }

        #[test]
        fn mutated_offer_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let mut data = OFFER.as_bytes().to_vec();
            let i = at.index(data.len());
            data[i] = byte;
            data.truncate(cut.index(data.len() + 1));
            if let Ok(sd) = SessionDescription::parse(&data) {
                exercise(&sd);
            }
        }
    }
}

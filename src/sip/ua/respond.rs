//! Building responses and choosing where they go (RFC 3261 §8.2.6,
//! §18.2.2; RFC 3581).

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use super::{fallback_ip, Flow, UaSettings, UserAgent};
use crate::sip::message::{HeaderName, Message, ResponseBuilder, Rport, Via};
use crate::sip::transport::Transport;

/// Builds a response with the headers every response of ours carries;
/// `extra` adds more.
pub(super) fn simple<'a>(
    request: &'a Message,
    status: u16,
    reason: &'a str,
    to_tag: Option<&'a str>,
    settings: &'a UaSettings,
    extra: impl FnOnce(ResponseBuilder<'a>) -> ResponseBuilder<'a>,
) -> Bytes {
    let mut b = ResponseBuilder::for_request(request, status, reason);
    if let Some(tag) = to_tag {
        b = b.to_tag(tag);
    }
    b = b.header("Server", &settings.user_agent);
    extra(b).build()
}

/// The request with its top Via stamped with `received` (when the sent-by
/// host differs from the source address, §18.2.1) and `rport` (when asked
/// for, RFC 3581 §4), so every response copies the stamped Via. Falls back
/// to the request unchanged if the Via cannot be located.
pub(super) fn stamp_via(msg: &Message, via: &Via<'_>, flow: Flow) -> Message {
    let source = flow.remote.ip();
    let need_received = via.host.ip() != Some(source);
    let need_rport = via.rport == Rport::Requested;
    if !need_received && !need_rport {
        return msg.clone();
    }
    let Some(value) = msg.header_values(HeaderName::Via).next() else {
        return msg.clone();
    };
    let buf = msg.as_bytes();
    let base = buf.as_ptr() as usize;
    let start = (value.as_ptr() as usize).wrapping_sub(base);
    let end = start.wrapping_add(value.len());
    if start > buf.len() || end > buf.len() || start > end {
        return msg.clone();
    }
    let mut parts = value.split(';');
    let head = parts.next().unwrap_or(value).trim_end();
    let mut new_value = String::with_capacity(value.len() + 48);
    new_value.push_str(head);
    for p in parts {
        let name = p.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        new_value.push(';');
        new_value.push_str(p.trim());
    }
    if need_received {
        new_value.push_str(";received=");
        new_value.push_str(&source.to_string());
    }
    if need_rport {
        new_value.push_str(";rport=");
        new_value.push_str(&flow.remote.port().to_string());
    } else if via.rport != Rport::Absent {
        if let Rport::Value(p) = via.rport {
            new_value.push_str(&format!(";rport={p}"));
        }
    }
    let (Some(before), Some(after)) = (buf.get(..start), buf.get(end..)) else {
        return msg.clone();
    };
    let mut out = BytesMut::with_capacity(buf.len() + 48);
    out.put_slice(before);
    out.put_slice(new_value.as_bytes());
    out.put_slice(after);
    Message::parse(out.freeze()).unwrap_or_else(|_| msg.clone())
}

/// Where responses to a request go (§18.2.2, RFC 3581 §4): over the same
/// connection for TCP; for UDP to the source address, at the source port
/// when `rport` was asked for, else at the sent-by port (default 5060).
pub(super) fn response_flow(via: &Via<'_>, flow: Flow) -> Flow {
    match flow.transport {
        Transport::Tcp => flow,
        Transport::Udp => {
            let port = if via.rport == Rport::Requested {
                flow.remote.port()
            } else {
                via.port.unwrap_or(5060)
            };
            Flow {
                remote: SocketAddr::new(flow.remote.ip(), port),
                ..flow
            }
        }
    }
}

/// Our IP for Contact and Via: the advertised address, else the socket's
/// own address, else the Request-URI host (what the peer used to reach
/// us), else loopback.
pub(super) fn contact_ip(
    settings: &UaSettings,
    local: SocketAddr,
    request_uri_host: Option<IpAddr>,
) -> IpAddr {
    if let Some(a) = settings.advertised_address {
        return a;
    }
    if !local.ip().is_unspecified() {
        return local.ip();
    }
    request_uri_host.unwrap_or_else(|| fallback_ip(local))
}

/// `host:port` for Via sent-by and Contact.
pub(super) fn sent_by(settings: &UaSettings, flow: Flow) -> String {
    format_host_port(contact_ip(settings, flow.local, None), flow.local.port())
}

/// Formats an address for a URI or Via (IPv6 in brackets).
pub(super) fn format_host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

impl UserAgent {
    /// A parsed request failed validation: 400 (the reason names the
    /// problem) when the Via can be read, else drop.
    pub(super) fn answer_malformed(
        &mut self,
        msg: &Message,
        flow: Flow,
        status: u16,
        reason: &str,
    ) {
        let Ok(via) = msg.via() else {
            self.counters.malformed_dropped += 1;
            tracing::debug!(remote = %flow.remote, reason, "malformed request without Via dropped");
            return;
        };
        let dest = response_flow(&via, flow);
        let bytes = simple(msg, status, reason, None, &self.settings, |b| b);
        self.counters.malformed_answered += 1;
        if let Some(slot) = self
            .counters
            .responses_sent
            .get_mut(usize::from(status / 100))
        {
            *slot += 1;
        }
        tracing::debug!(remote = %flow.remote, reason, "malformed request answered");
        self.transmits.push_back(dest.transmit(bytes));
    }

    /// A message that did not parse: if it looks like a request and a Via
    /// line can be read, answer statelessly with the headers we can copy;
    /// otherwise drop and count it.
    pub(super) fn answer_unparseable(&mut self, raw: &[u8], flow: Flow, status: u16, reason: &str) {
        match raw_error_response(raw, status, reason) {
            Some((bytes, via_port, rport)) => {
                let dest = match flow.transport {
                    Transport::Tcp => flow,
                    Transport::Udp => Flow {
                        remote: SocketAddr::new(
                            flow.remote.ip(),
                            if rport {
                                flow.remote.port()
                            } else {
                                via_port.unwrap_or(5060)
                            },
                        ),
                        ..flow
                    },
                };
                self.counters.malformed_answered += 1;
                if let Some(slot) = self
                    .counters
                    .responses_sent
                    .get_mut(usize::from(status / 100))
                {
                    *slot += 1;
                }
                tracing::debug!(remote = %flow.remote, reason, "unparseable request answered");
                self.transmits.push_back(dest.transmit(bytes));
            }
            None => {
                self.counters.malformed_dropped += 1;
                tracing::debug!(remote = %flow.remote, reason, "unparseable message dropped");
            }
        }
    }
}

/// Builds an error response from raw bytes that did not parse: copies the
/// Via, From, To, Call-ID and CSeq lines found in the header section.
/// Returns the response, the top Via's port and whether it asked for
/// rport; `None` unless the start line looks like a request and a Via line
/// is present.
fn raw_error_response(raw: &[u8], status: u16, reason: &str) -> Option<(Bytes, Option<u16>, bool)> {
    let head_end = memchr::memmem::find(raw, b"\r\n\r\n").unwrap_or(raw.len());
    let head = raw.get(..head_end)?;
    let mut lines = head.split(|b| *b == b'\n');
    let start = lines.next()?;
    if start.starts_with(b"SIP/") || start.is_empty() {
        return None;
    }
    let mut out = BytesMut::with_capacity(512);
    let reason: String = reason
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    out.put_slice(format!("SIP/2.0 {status} {reason}\r\n").as_bytes());
    let mut via_info = None;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let keep = ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
        if !keep || text.chars().any(|c| c.is_control() && c != '\t') {
            continue;
        }
        if via_info.is_none()
            && (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v"))
        {
            let first = value.split(',').next().unwrap_or("").trim();
            let via = Via::parse(first).ok()?;
            via_info = Some((via.port, via.rport == Rport::Requested));
        }
        out.put_slice(line);
        out.put_slice(b"\r\n");
    }
    let (port, rport) = via_info?;
    out.put_slice(b"Content-Length: 0\r\n\r\n");
    Some((out.freeze(), port, rport))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_error_response_needs_a_request_with_via() {
        assert!(
            raw_error_response(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\n\r\n", 400, "x").is_none()
        );
        assert!(raw_error_response(b"INVITE sip:a SIP/2.0\r\nFrom: a\r\n\r\n", 400, "x").is_none());
        assert!(raw_error_response(b"", 400, "x").is_none());
        assert!(raw_error_response(b"\xff\xfe", 400, "x").is_none());
    }
}

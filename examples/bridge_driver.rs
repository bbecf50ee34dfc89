//! A small driver of the user agent core for the SIPp bridge scenarios in
//! `tests/interop/` (run by `tests/interop/bridge.sh`):
//!
//! - `bridge_driver refer LISTEN REFER_TO`: answers one call to
//!   15550100 on LISTEN, transfers it to REFER_TO with REFER and exits 0
//!   once the transfer succeeded and the call ended;
//! - `bridge_driver b2bua LISTEN BRIDGE_URI [hold_ms]`: places a call to
//!   BRIDGE_URI, hangs up `hold_ms` after the answer (default: waits for the
//!   bridge's BYE), exits 0 when the call ended normally.
//!
//! Exits 1 on any failure, 2 on a usage error; gives up after 30 s.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dialgate::config::{Config, DialInNumber};
use dialgate::media::ports::RtpPortPool;
use dialgate::sip::sdp::Codec;
use dialgate::sip::transport::Transport;
use dialgate::sip::ua::{OutboundCall, UaEvent, UaSettings, UserAgent};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(listen), Some(target)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: bridge_driver refer|b2bua LISTEN TARGET [hold_ms]");
        std::process::exit(2);
    };
    let hold = args
        .get(4)
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_millis);
    match run(mode, listen, target, hold) {
        Ok(()) => println!("ok"),
        Err(e) => {
            eprintln!("failed: {e}");
            std::process::exit(1);
        }
    }
}

fn run(mode: &str, listen: &str, target: &str, hold: Option<Duration>) -> Result<(), String> {
    let local: SocketAddr = listen.parse().map_err(|e| format!("{listen}: {e}"))?;
    let socket = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    let mut config = Config::embedded();
    config.sip.allow_any_source = true;
    config.dial_in_numbers.push(DialInNumber {
        dtmf_mode: None,
        number: "15550100".into(),
        language: "en".into(),
        label: "test".into(),
        bridge: None,
    });
    let pool = RtpPortPool::new(42000, 42019).map_err(|e| e.to_string())?;
    let mut ua = UserAgent::new(UaSettings::from_config(&config), Box::new(pool));
    let start = Instant::now();
    let give_up = start + Duration::from_secs(30);
    if mode == "b2bua" {
        let call = OutboundCall {
            target: target.to_string(),
            headers: vec![("X-Conference-ID".into(), "123456".into())],
            from_user: "15550100".into(),
            codecs: vec![Codec::Pcmu],
            telephone_event_pt: Some(101),
            answer_timeout: Duration::from_secs(10),
            local: Some(local),
        };
        ua.place_call(&call, start).map_err(|e| e.to_string())?;
    } else if mode != "refer" {
        return Err(format!("unknown mode {mode}"));
    }
    let mut hang_up_at = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        if now > give_up {
            return Err("timed out".into());
        }
        ua.handle_timeout(now);
        if let Some((at, call)) = hang_up_at {
            if now >= at {
                ua.hang_up(call, now);
                hang_up_at = None;
            }
        }
        while let Some(t) = ua.poll_transmit() {
            socket
                .send_to(&t.bytes, t.remote)
                .map_err(|e| e.to_string())?;
        }
        while let Some(event) = ua.poll_event() {
            println!("{event:?}");
            match event {
                UaEvent::CallStarted { call, .. } if mode == "refer" => ua
                    .refer(call, target, None, Duration::from_secs(10), now)
                    .map_err(|e| e.to_string())?,
                UaEvent::OutboundAnswered { call, .. } => {
                    if let Some(h) = hold {
                        hang_up_at = Some((now + h, call));
                    }
                }
                UaEvent::OutboundFailed { failure, .. } => {
                    return Err(format!("bridge call failed: {failure:?}"))
                }
                UaEvent::TransferFailed { failure, .. } => {
                    return Err(format!("transfer failed: {failure:?}"))
                }
                UaEvent::CallEnded { .. } => {
                    // Let the last responses go out.
                    while let Some(t) = ua.poll_transmit() {
                        socket
                            .send_to(&t.bytes, t.remote)
                            .map_err(|e| e.to_string())?;
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        while let Some(t) = ua.poll_transmit() {
            socket
                .send_to(&t.bytes, t.remote)
                .map_err(|e| e.to_string())?;
        }
        let wait = ua
            .poll_timeout()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let bytes = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
            ua.handle_datagram(Transport::Udp, local, from, None, bytes, Instant::now());
        }
    }
}

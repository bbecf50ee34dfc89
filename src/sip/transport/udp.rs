//! The UDP listener: one task per bound socket (§18.1.1, §18.2.1).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Inbound, Transport};

/// Largest datagram we accept; anything larger is truncated by the OS and
/// then fails to parse.
const MAX_DATAGRAM: usize = 65_535;

/// Requested socket receive buffer, bytes.
const RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Binds a UDP socket for SIP.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        // Keep IPv4 and IPv6 listeners independent, as configured.
        socket.set_only_v6(true)?;
    }
    // A larger receive buffer rides out bursts (a trunk failing over
    // sends many INVITEs at once); best effort, the OS may cap it.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let std_socket: std::net::UdpSocket = socket.into();
    Ok(Arc::new(UdpSocket::from_std(std_socket)?))
}

/// Reads datagrams until the driver goes away. Each datagram is copied
/// once into its own `Bytes`, which the parser then slices without copying.
pub async fn receive_loop(socket: Arc<UdpSocket>, to_driver: mpsc::Sender<Inbound>) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "UDP socket has no local address");
            return;
        }
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, remote) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable and similar surface here on some
                // systems; they concern one peer, not the listener.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        let msg = Inbound::Message {
            transport: Transport::Udp,
            local,
            remote,
            conn: None,
            bytes: Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()),
        };
        // Under overload drop datagrams rather than queue without bound:
        // UDP senders retransmit.
        match to_driver.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("SIP driver queue full, UDP message dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

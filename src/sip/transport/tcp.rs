//! The TCP listener and per-connection tasks (RFC 3261 §18.3).
//!
//! A reader task frames the byte stream with Content-Length: several
//! messages may arrive in one read and one message may span many reads.
//! A writer task drains the connection's outgoing queue. The number of
//! connections is capped by a semaphore, and a connection that sends
//! nothing for the idle timeout is closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::{ConnId, Inbound, Transport};

/// Limits for the TCP transport.
#[derive(Clone, Debug)]
pub struct TcpLimits {
    /// Largest message accepted; a longer unframed prefix is answered 513
    /// and the connection closed.
    pub max_message_size: usize,
    /// Most connections open at once; further accepts wait.
    pub max_connections: usize,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_message_size: 65_536,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Binds a TCP listener for SIP.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let std_listener: std::net::TcpListener = socket.into();
    TcpListener::from_std(std_listener)
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until the driver goes away.
pub async fn accept_loop(
    listener: TcpListener,
    to_driver: mpsc::Sender<Inbound>,
    limits: TcpLimits,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "TCP listener has no local address");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = match permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "TCP accept error");
                    // Out of descriptors and the like: back off briefly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = to_driver.closed() => return,
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
        let to_driver = to_driver.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            serve_connection(stream, local, remote, conn, to_driver, limits, None).await;
            drop(permit);
        });
    }
}

/// Opens a connection to `remote` to send `first` (a request whose
/// original connection is gone, §18.1.1), then serves it like an accepted
/// one so the response comes back.
pub async fn connect_and_serve(
    remote: SocketAddr,
    first: Bytes,
    to_driver: mpsc::Sender<Inbound>,
    limits: TcpLimits,
) {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await;
    let stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TCP connect failed, message dropped");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TCP connect timed out, message dropped");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    serve_connection(stream, local, remote, conn, to_driver, limits, Some(first)).await;
}

/// How long an outgoing TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

async fn serve_connection(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    conn: ConnId,
    to_driver: mpsc::Sender<Inbound>,
    limits: TcpLimits,
    first: Option<Bytes>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    if to_driver
        .send(Inbound::Connected {
            conn,
            remote,
            writer: tx,
        })
        .await
        .is_err()
    {
        return;
    }
    let write_task = tokio::spawn(async move {
        if let Some(first) = first {
            if writer.write_all(&first).await.is_err() {
                return;
            }
        }
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let mut buf = BytesMut::with_capacity(4096);
    'read: loop {
        let read = tokio::time::timeout(limits.idle_timeout, reader.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                // Idle: close unless a call still needs the connection
                // (our BYE would have no other way to the caller).
                let (close, answer) = tokio::sync::oneshot::channel();
                if to_driver.send(Inbound::Idle { conn, close }).await.is_err() {
                    break;
                }
                match answer.await {
                    Ok(false) => continue,
                    _ => break,
                }
            }
        }
        loop {
            match frame(&buf, limits.max_message_size) {
                Frame::Skip(n) => {
                    let _ = buf.split_to(n);
                }
                Frame::Whole(n) => {
                    let bytes = buf.split_to(n).freeze();
                    let msg = Inbound::Message {
                        transport: Transport::Tcp,
                        local,
                        remote,
                        conn: Some(conn),
                        bytes,
                    };
                    if to_driver.send(msg).await.is_err() {
                        break 'read;
                    }
                }
                Frame::Invalid => {
                    // Headers ended but no usable Content-Length: hand the
                    // rest over so the core can answer 400, then close,
                    // since the stream cannot be resynchronised.
                    let bytes = buf.split().freeze();
                    let _ = to_driver
                        .send(Inbound::Message {
                            transport: Transport::Tcp,
                            local,
                            remote,
                            conn: Some(conn),
                            bytes,
                        })
                        .await;
                    break 'read;
                }
                Frame::TooLarge => {
                    let head_len = buf.len().min(limits.max_message_size);
                    let head = buf.split_to(head_len).freeze();
                    let _ = to_driver
                        .send(Inbound::Oversized {
                            local,
                            remote,
                            conn,
                            head,
                        })
                        .await;
                    break 'read;
                }
                Frame::Incomplete => {
                    if buf.len() > limits.max_message_size {
                        let head = buf.split_to(limits.max_message_size).freeze();
                        let _ = to_driver
                            .send(Inbound::Oversized {
                                local,
                                remote,
                                conn,
                                head,
                            })
                            .await;
                        break 'read;
                    }
                    break;
                }
            }
        }
    }
    // Tell the driver; it drops its writer handle, which ends the writer
    // task once any queued answer (such as a 513) has been written.
    let _ = to_driver.send(Inbound::Closed { conn }).await;
    let _ = write_task.await;
}

/// What the front of a TCP receive buffer holds.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// Not yet a whole message.
    Incomplete,
    /// A whole message of this many bytes.
    Whole(usize),
    /// This many bytes of CRLF keep-alive to discard (RFC 5626 §3.5.1).
    Skip(usize),
    /// Over the size ceiling: answer 513 and close.
    TooLarge,
    /// The headers end but the length cannot be determined: 400 and close.
    Invalid,
}

fn frame(buf: &[u8], max: usize) -> Frame {
    use crate::sip::message::{frame_length, Frame as F, FrameError};
    match frame_length(buf, max) {
        Ok(Some(F::Keepalive(n))) => Frame::Skip(n.max(1)),
        Ok(Some(F::Message(n))) => Frame::Whole(n),
        Ok(None) => Frame::Incomplete,
        Err(FrameError::HeadersTooLarge | FrameError::MessageTooLarge) => Frame::TooLarge,
        Err(_) => Frame::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_crlf_is_skipped() {
        assert_eq!(frame(b"\r\n\r\nOPTIONS", 65536), Frame::Skip(4));
    }

    #[test]
    fn frames_by_content_length() {
        let two = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nabcBYE";
        assert_eq!(frame(two, 65536), Frame::Whole(two.len() - 3));
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 3\r\n", 65536),
            Frame::Incomplete
        );
    }
}

//! UDP and TCP transport shells (RFC 3261 §18).
//!
//! The shells only move bytes: each received datagram or framed TCP
//! message becomes an [`Inbound`] for the user agent core, and every
//! [`Transmit`] the core produces is written to the socket or connection
//! it names. Framing of the TCP byte stream follows §18.3 (Content-Length).

pub mod tcp;
pub mod udp;

use std::net::SocketAddr;

use bytes::Bytes;

pub use crate::config::Transport;

/// Identifies one accepted TCP connection for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What a transport hands to the driver.
#[derive(Debug)]
pub enum Inbound {
    /// One whole SIP message (a datagram, or one framed TCP message).
    Message {
        /// Transport it came over.
        transport: Transport,
        /// Our address it arrived at.
        local: SocketAddr,
        /// The peer's address.
        remote: SocketAddr,
        /// The connection, for TCP.
        conn: Option<ConnId>,
        /// The raw message.
        bytes: Bytes,
    },
    /// A TCP peer sent more than the message size ceiling without a whole
    /// message; `head` is what was buffered. The connection is closed after
    /// any answer (§18.3 leaves no way to resynchronise the stream).
    Oversized {
        /// Our address.
        local: SocketAddr,
        /// The peer's address.
        remote: SocketAddr,
        /// The connection.
        conn: ConnId,
        /// The buffered start of the stream.
        head: Bytes,
    },
    /// A TCP connection was accepted; `writer` takes bytes to send on it.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer's address.
        remote: SocketAddr,
        /// Queue of outgoing bytes; dropping it closes the connection.
        writer: tokio::sync::mpsc::Sender<Bytes>,
    },
    /// A TCP connection sent nothing for the idle timeout. The driver
    /// answers `true` to close it, `false` when calls still use it.
    Idle {
        /// The connection.
        conn: ConnId,
        /// Where the answer goes.
        close: tokio::sync::oneshot::Sender<bool>,
    },
    /// A TCP connection ended.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

/// One message for the transports to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Transport to use.
    pub transport: Transport,
    /// Our address to send from (selects the UDP socket).
    pub local: SocketAddr,
    /// Where to send.
    pub remote: SocketAddr,
    /// For TCP, the connection to write to.
    pub conn: Option<ConnId>,
    /// The serialised message.
    pub bytes: Bytes,
}

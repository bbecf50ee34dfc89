//! Load generation for capacity tests of a SIP dial-in gateway (the
//! `dialgate-load` tool).
//!
//! ```text
//! calls       sans-IO engine of many full calls: INVITE/ACK/BYE through
//!             the RFC 3261 §17.1 client transactions, SDP offer/answer,
//!             20 ms RTP both ways, conference-ID digits (RFC 4733,
//!             in-band tones, SIP INFO) and the IVR outcome
//! stateless   sans-IO engine of single transactions (OPTIONS → 200,
//!             INVITE to an unknown number → 404 + ACK) for the ceiling
//! histogram   fixed-size log-linear latency histogram
//! tones       precomputed G.711 DTMF tone frames
//! run         the socket shells: worker threads, tight non-blocking loops
//! ```
//!
//! The engines take `now` with every input and never touch a socket, so
//! they are tested with a fake clock; the shells only move datagrams.

pub mod calls;
pub mod histogram;
pub mod run;
pub mod stateless;
pub mod tones;

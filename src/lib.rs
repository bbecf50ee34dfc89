//! dialgate: a telephony dial-in gateway.
//!
//! Callers reach a dial-in number over a SIP trunk, an auto attendant asks
//! for the meeting's conference ID, the digits are collected (RFC 4733,
//! SIP INFO or in-band tones), the conference-ID directory decides, and a
//! valid caller is routed into the meeting bridge.
//!
//! # Layout
//! ```text
//! config        typed configuration, validation, defaults
//! sip/          SIP message parser/serialiser, URIs, SDP, transactions
//!               (RFC 3261 §17), dialogs, the sans-IO user agent core
//!               and the UDP/TCP transport shells
//! media/        G.711, RTP sessions, prompts, the shared pacer, RTP port pool
//! dtmf/         digit detectors: RFC 4733, SIP INFO bodies, in-band tones
//! ivr/          the auto attendant call flow, digit collection, guessing defence
//! call/         the live call path: a sans-IO session per call joining RTP,
//!               DTMF detectors and the attendant; its tokio shell (a task
//!               per call, the shared pacer, directory and guard)
//! directory/    ConferenceId, the lock-free index, durable store, service rules
//! bridge/       the embedded conference mixer (N-1 mixing, tones, jitter buffers)
//! admin/        HTTP admin API and its CLI client
//! notify/       email notices to organizers and their durable outbox
//! daemon        the whole daemon: directory, notices, admin API and SIP
//!               front end started and stopped together
//! server        the SIP server shell: listeners, the driver loop around the
//!               user agent core, per-call RTP sockets handed to the call
//!               path, graceful shutdown
//! ```
//!
//! Every protocol core is sans-IO: input in, actions out, `now` passed in.
//! The tokio shells only move bytes and sleep until the next deadline.
#![deny(unsafe_code)]

pub mod admin;
pub mod bridge;
pub mod call;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod dtmf;
pub mod ivr;
pub mod loadgen;
pub mod media;
pub mod notify;
pub mod server;
pub mod sip;

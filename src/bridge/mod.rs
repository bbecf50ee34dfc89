//! The meeting bridge: the embedded conference mixer and routing to external bridges.
//!
//! The embedded bridge gives every meeting a built-in audio conference:
//! - [`settings`]: [`BridgeSettings`] (`[bridge]`);
//! - [`jitter`]: [`PlayoutBuffer`], each participant's small reorder and
//!   playout buffer;
//! - [`mixer`]: [`Room`], N−1 mixing of PCMU and PCMA callers on the shared
//!   20 ms pacer tick, with join and leave tones;
//! - [`tones`]: the join and leave tones;
//! - [`conferences`]: [`Conferences`], meeting ID → room, size limit, rooms
//!   created on first join and removed on last leave.
//!
//! All of it is sans-IO: RTP payloads and `now` in, encoded frames and
//! events out.
//!
//! External meeting bridges:
//! - [`profiles`]: [`BridgeProfile`] (`[[bridge.profiles]]`, chosen per
//!   dial-in number): embedded, `refer` (blind transfer, RFC 3515, via
//!   [`crate::sip::ua::UserAgent::refer`]) or `b2bua` (a second call via
//!   [`crate::sip::ua::UserAgent::place_call`]), with URI and header
//!   templates filled per call by [`profiles::render`];
//! - [`relay`]: [`Relay`], the allocation-free RTP relay between the
//!   caller's leg and the bridge leg of a `b2bua` call.
//!
//! # Wiring into the call path
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use dialgate::bridge::{BridgeSettings, ConferenceEvent, Conferences};
//! use dialgate::media::g711::Law;
//!
//! let settings = BridgeSettings::default();
//! assert!(settings.validate().is_empty());
//! let mut bridge = Conferences::new(settings);
//! let meeting: Arc<str> = Arc::from("3141592");
//!
//! // Both callers entered the same conference ID.
//! let alice = bridge.join(&meeting, Law::Mu).expect("room has space");
//! let bob = bridge.join(&meeting, Law::A).expect("room has space");
//!
//! // On each received RTP packet: its timestamp and G.711 payload.
//! let t0 = Instant::now();
//! bridge.push_audio(alice, 1234, &[0xff; 160], t0).unwrap();
//!
//! // On each 20 ms pacer tick: send each frame in an RTP packet to its call.
//! let mut sent = 0;
//! bridge.tick(|_participant, payload| {
//!     assert_eq!(payload.len(), 160);
//!     sent += 1;
//! });
//! assert_eq!(sent, 2);
//!
//! // Hang-ups; the room goes with the last caller.
//! bridge.leave(alice).unwrap();
//! bridge.leave(bob).unwrap();
//! let closed = std::iter::from_fn(|| bridge.poll_event())
//!     .any(|e| matches!(e, ConferenceEvent::RoomClosed { .. }));
//! assert!(closed);
//! ```

pub mod conferences;
pub mod jitter;
pub mod mixer;
pub mod profiles;
pub mod relay;
pub mod settings;
pub mod tones;

pub use conferences::{ConferenceEvent, Conferences};
pub use jitter::{Arrival, JitterStats, PlayoutBuffer, FRAME_SAMPLES};
pub use mixer::{Frame, ParticipantId, Room, RoomEvent, RoomFull, UnknownParticipant};
pub use profiles::{BridgeMode, BridgeProfile, RouteContext};
pub use relay::{Leg, LegPayloads, Relay, RelayDrop};
pub use settings::BridgeSettings;

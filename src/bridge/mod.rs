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

pub mod conferences;
pub mod jitter;
pub mod mixer;
pub mod settings;
pub mod tones;

pub use conferences::{ConferenceEvent, Conferences};
pub use jitter::{Arrival, JitterStats, PlayoutBuffer, FRAME_SAMPLES};
pub use mixer::{Frame, ParticipantId, Room, RoomEvent, RoomFull, UnknownParticipant};
pub use settings::BridgeSettings;

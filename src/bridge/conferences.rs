//! Every embedded conference of the gateway: meeting ID → [`Room`].
//!
//! A room is created by the first caller who joins a meeting and removed
//! when the last one leaves. Participant handles are unique across rooms,
//! so the call layer keys its calls by [`ParticipantId`] alone.
//!
//! Single owner, no locks: the pacer task that ticks the rooms also feeds
//! them. To use more cores, shard meetings over several `Conferences` (by
//! a hash of the meeting ID) and give each its own pacer task.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::media::g711::Law;

use super::jitter::{Arrival, JitterStats};
use super::mixer::{Frame, ParticipantId, Room, RoomEvent, RoomFull, UnknownParticipant};
use super::settings::BridgeSettings;

/// What happened across the conferences, for the call layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConferenceEvent {
    /// `participant` joined `meeting`'s room.
    Joined {
        /// The meeting.
        meeting: Arc<str>,
        /// The new participant.
        participant: ParticipantId,
    },
    /// `participant` left `meeting`'s room.
    Left {
        /// The meeting.
        meeting: Arc<str>,
        /// The participant gone.
        participant: ParticipantId,
    },
    /// The last participant left and the room was removed.
    RoomClosed {
        /// The meeting.
        meeting: Arc<str>,
    },
}

/// The registry of embedded conference rooms.
#[derive(Debug)]
pub struct Conferences {
    settings: BridgeSettings,
    rooms: HashMap<Arc<str>, Room>,
    seats: HashMap<ParticipantId, Arc<str>>,
    events: VecDeque<ConferenceEvent>,
}

impl Conferences {
    /// No rooms yet; every room will follow `settings`.
    pub fn new(settings: BridgeSettings) -> Self {
        Conferences {
            settings,
            rooms: HashMap::new(),
            seats: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// The settings rooms are made with.
    pub fn settings(&self) -> &BridgeSettings {
        &self.settings
    }

    /// Puts a caller speaking `law` into `meeting`'s room, creating it if
    /// needed. Refused with [`RoomFull`] at `bridge.max_room_size`: the call
    /// layer then plays a prompt and hangs up.
    pub fn join(&mut self, meeting: &Arc<str>, law: Law) -> Result<ParticipantId, RoomFull> {
        let settings = &self.settings;
        let room = self
            .rooms
            .entry(Arc::clone(meeting))
            .or_insert_with(|| Room::new(settings));
        // A room always takes its first caller (its size is at least 1),
        // so a refused join never leaves an empty room behind.
        let id = room.join(law)?;
        self.seats.insert(id, Arc::clone(meeting));
        self.drain(meeting);
        Ok(id)
    }

    /// Takes `id` out of its room; the room is removed if it was the last.
    pub fn leave(&mut self, id: ParticipantId) -> Result<(), UnknownParticipant> {
        let meeting = self.seats.remove(&id).ok_or(UnknownParticipant(id))?;
        let room = self.rooms.get_mut(&meeting).ok_or(UnknownParticipant(id))?;
        room.leave(id)?;
        self.drain(&meeting);
        Ok(())
    }

    /// Moves a room's events into ours, removing the room once empty.
    fn drain(&mut self, meeting: &Arc<str>) {
        let Some(room) = self.rooms.get_mut(meeting) else {
            return;
        };
        let mut closed = false;
        while let Some(event) = room.poll_event() {
            let meeting = Arc::clone(meeting);
            self.events.push_back(match event {
                RoomEvent::ParticipantJoined(participant) => ConferenceEvent::Joined {
                    meeting,
                    participant,
                },
                RoomEvent::ParticipantLeft(participant) => ConferenceEvent::Left {
                    meeting,
                    participant,
                },
                RoomEvent::RoomEmpty => {
                    closed = true;
                    ConferenceEvent::RoomClosed { meeting }
                }
            });
        }
        if closed {
            self.rooms.remove(meeting);
        }
    }

    fn room_of(&mut self, id: ParticipantId) -> Result<&mut Room, UnknownParticipant> {
        self.seats
            .get(&id)
            .and_then(|m| self.rooms.get_mut(m))
            .ok_or(UnknownParticipant(id))
    }

    /// Hands one RTP payload of `id` to its room (see [`Room::push_audio`]).
    pub fn push_audio(
        &mut self,
        id: ParticipantId,
        rtp_timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<Arrival, UnknownParticipant> {
        self.room_of(id)?
            .push_audio(id, rtp_timestamp, payload, now)
    }

    /// Mutes or unmutes `id` towards its room (see [`Room::set_receiving`]).
    pub fn set_receiving(&mut self, id: ParticipantId, on: bool) -> Result<(), UnknownParticipant> {
        self.room_of(id)?.set_receiving(id, on)
    }

    /// Starts or stops output to `id` (see [`Room::set_sending`]).
    pub fn set_sending(&mut self, id: ParticipantId, on: bool) -> Result<(), UnknownParticipant> {
        self.room_of(id)?.set_sending(id, on)
    }

    /// Changes `id`'s law (see [`Room::set_law`]).
    pub fn set_law(&mut self, id: ParticipantId, law: Law) -> Result<(), UnknownParticipant> {
        self.room_of(id)?.set_law(id, law)
    }

    /// Jitter buffer counters of `id`.
    pub fn stats(&self, id: ParticipantId) -> Result<JitterStats, UnknownParticipant> {
        self.seats
            .get(&id)
            .and_then(|m| self.rooms.get(m))
            .ok_or(UnknownParticipant(id))?
            .stats(id)
    }

    /// Mixes one 20 ms tick in every room; `out` receives each sending
    /// participant's encoded frame.
    pub fn tick(&mut self, mut out: impl FnMut(ParticipantId, &Frame)) {
        for room in self.rooms.values_mut() {
            room.mix_tick(&mut out);
        }
    }

    /// The meeting `id` is in.
    pub fn meeting_of(&self, id: ParticipantId) -> Option<&Arc<str>> {
        self.seats.get(&id)
    }

    /// `meeting`'s room, if anyone is in it.
    pub fn room(&self, meeting: &str) -> Option<&Room> {
        self.rooms.get(meeting)
    }

    /// Rooms open.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Participants across all rooms.
    pub fn participant_count(&self) -> usize {
        self.seats.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ConferenceEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::media::g711::ulaw_encode;

    fn meeting(id: &str) -> Arc<str> {
        Arc::from(id)
    }

    #[test]
    fn two_callers_of_one_meeting_meet_in_one_room() {
        let mut c = Conferences::new(BridgeSettings::default());
        let m = meeting("meeting-1");
        let a = c.join(&m, Law::Mu).unwrap();
        let b = c.join(&m, Law::A).unwrap();
        let other = c.join(&meeting("meeting-2"), Law::Mu).unwrap();
        assert_eq!(c.room_count(), 2);
        assert_eq!(c.participant_count(), 3);
        assert_eq!(c.room("meeting-1").map(Room::len), Some(2));
        assert_eq!(c.meeting_of(b), Some(&m));

        // A talks; B hears it, the caller of the other meeting does not.
        let t0 = Instant::now();
        let loud = [ulaw_encode(8000); 160];
        let mut peak: HashMap<ParticipantId, i32> = HashMap::new();
        for k in 0..6u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            c.push_audio(a, k * 160, &loud, now).unwrap();
            c.tick(|id, frame| {
                let law = if id == b { Law::A } else { Law::Mu };
                let mut pcm = [0i16; 160];
                law.decode(frame, &mut pcm);
                let max = pcm.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
                let e = peak.entry(id).or_default();
                *e = (*e).max(max);
            });
        }
        assert!(peak[&b] > 7000, "{peak:?}");
        assert!(peak[&other] == 0 || peak[&other] < 10, "{peak:?}");
        assert_eq!(c.stats(a).unwrap().buffered, 6);
    }

    #[test]
    fn the_caller_over_the_limit_is_refused() {
        let mut c = Conferences::new(BridgeSettings {
            max_room_size: 2,
            ..BridgeSettings::default()
        });
        let m = meeting("full");
        c.join(&m, Law::Mu).unwrap();
        c.join(&m, Law::Mu).unwrap();
        assert_eq!(c.join(&m, Law::A), Err(RoomFull { max: 2 }));
        assert_eq!(c.participant_count(), 2);
        // Other meetings are not affected.
        assert!(c.join(&meeting("other"), Law::Mu).is_ok());
    }

    #[test]
    fn the_room_goes_when_the_last_caller_leaves() {
        let mut c = Conferences::new(BridgeSettings::default());
        let m = meeting("m");
        let a = c.join(&m, Law::Mu).unwrap();
        let b = c.join(&m, Law::Mu).unwrap();
        c.leave(a).unwrap();
        assert_eq!(c.room_count(), 1);
        c.leave(b).unwrap();
        assert_eq!(c.room_count(), 0);
        assert_eq!(c.leave(b), Err(UnknownParticipant(b)));
        assert_eq!(
            c.push_audio(a, 0, &[0xff; 160], Instant::now()),
            Err(UnknownParticipant(a))
        );
        let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        assert_eq!(
            events,
            [
                ConferenceEvent::Joined {
                    meeting: m.clone(),
                    participant: a
                },
                ConferenceEvent::Joined {
                    meeting: m.clone(),
                    participant: b
                },
                ConferenceEvent::Left {
                    meeting: m.clone(),
                    participant: a
                },
                ConferenceEvent::Left {
                    meeting: m.clone(),
                    participant: b
                },
                ConferenceEvent::RoomClosed { meeting: m.clone() },
            ]
        );
        // The meeting can start again with a fresh room.
        let again = c.join(&m, Law::A).unwrap();
        assert_ne!(again, a);
        assert_eq!(c.room("m").map(Room::len), Some(1));
    }

    #[test]
    fn mute_and_hold_go_to_the_right_room() {
        let mut c = Conferences::new(BridgeSettings::default());
        let a = c.join(&meeting("m"), Law::Mu).unwrap();
        c.set_receiving(a, false).unwrap();
        assert_eq!(
            c.push_audio(a, 0, &[0; 160], Instant::now()),
            Ok(Arrival::Ignored)
        );
        c.set_sending(a, false).unwrap();
        c.set_law(a, Law::A).unwrap();
        let mut frames = 0;
        c.tick(|_, _| frames += 1);
        assert_eq!(frames, 0);
    }
}

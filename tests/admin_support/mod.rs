//! Test support for the admin API and CLI: an in-memory directory that
//! follows the service rules, and the real API server on 127.0.0.1:0.
#![allow(dead_code)]

use dialgate::admin::{AdminState, DialInNumberView};
use dialgate::directory::service::{
    BoxFuture, DirectoryError, DirectoryService, IdMode, IdState, Meeting, NewMeeting,
    NewOrganizer, Organizer, Page, ResetOutcome,
};
use dialgate::directory::{ConferenceId, DirectoryLookup, Lookup, Refusal, Route};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

pub const ID_LEN: usize = 7;

#[derive(Clone, Debug)]
enum Slot {
    Active {
        organizer: String,
        meeting: String,
        since: SystemTime,
        expires_at: Option<SystemTime>,
    },
    /// Reset or deleted: quarantined for good in this fake.
    Tombstone { organizer: String, at: SystemTime },
}

#[derive(Default)]
struct State {
    organizers: BTreeMap<String, Organizer>,
    meetings: BTreeMap<String, Meeting>,
    ids: HashMap<ConferenceId, Slot>,
    next_seed: u64,
    next_meeting: u64,
}

/// An in-memory [`DirectoryService`]: organizer ids unique, IDs unique,
/// a replaced ID is tombstoned (quarantined forever), meetings only for
/// dynamic organizers.
#[derive(Default)]
pub struct FakeDirectory {
    state: Mutex<State>,
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<'static, T> {
    Box::pin(async move { v })
}

impl State {
    fn fresh_id(&mut self) -> ConferenceId {
        loop {
            self.next_seed = (self.next_seed * 7_919 + 1_234_567) % 10_000_000;
            let id = ConferenceId::from_value(self.next_seed, ID_LEN).unwrap();
            if !self.ids.contains_key(&id) {
                return id;
            }
        }
    }

    fn claimable(&self, id: ConferenceId, by: &str) -> Result<(), DirectoryError> {
        match self.ids.get(&id) {
            None => Ok(()),
            Some(Slot::Active { organizer, .. }) if organizer == by => Ok(()),
            Some(Slot::Active { .. }) => Err(DirectoryError::InUse(id)),
            Some(Slot::Tombstone { .. }) => Err(DirectoryError::Quarantined(id)),
        }
    }

    fn tombstone(&mut self, id: ConferenceId, organizer: &str) {
        self.ids.insert(
            id,
            Slot::Tombstone {
                organizer: organizer.to_owned(),
                at: SystemTime::now(),
            },
        );
    }

    fn organizer_mut(&mut self, id: &str) -> Result<&mut Organizer, DirectoryError> {
        self.organizers
            .get_mut(id)
            .ok_or_else(|| DirectoryError::NotFound {
                what: "organizer",
                id: id.to_owned(),
            })
    }

    fn activate(&mut self, id: ConferenceId, organizer: &str) {
        self.ids.insert(
            id,
            Slot::Active {
                organizer: organizer.to_owned(),
                meeting: format!("{organizer}/static"),
                since: SystemTime::now(),
                expires_at: None,
            },
        );
    }
}

impl FakeDirectory {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn organizer_count(&self) -> usize {
        self.with(|s| s.organizers.len())
    }

    /// The stored leader PIN (tests check it never leaves the API).
    pub fn pin_of(&self, id: &str) -> Option<String> {
        self.with(|s| s.organizers.get(id).and_then(|o| o.leader_pin.clone()))
    }
}

impl DirectoryLookup for FakeDirectory {
    fn lookup(&self, id: ConferenceId, now: SystemTime) -> Lookup {
        self.with(|s| match s.ids.get(&id) {
            None => Lookup::Refused(Refusal::Unknown),
            Some(Slot::Tombstone { .. }) => Lookup::Refused(Refusal::Reset),
            Some(Slot::Active {
                expires_at: Some(e),
                ..
            }) if *e <= now => Lookup::Refused(Refusal::Expired),
            Some(Slot::Active {
                organizer, meeting, ..
            }) => Lookup::Active(Route {
                organizer: organizer.as_str().into(),
                meeting: meeting.as_str().into(),
            }),
        })
    }
}

impl DirectoryService for FakeDirectory {
    fn id_length(&self) -> usize {
        ID_LEN
    }

    fn create_organizer(
        &self,
        new: NewOrganizer,
    ) -> BoxFuture<'_, Result<Organizer, DirectoryError>> {
        ready(self.with(|s| {
            if s.organizers.contains_key(&new.id) {
                return Err(DirectoryError::AlreadyExists {
                    what: "organizer",
                    id: new.id,
                });
            }
            let mode = new.mode.unwrap_or_default();
            let conference_id = match (mode, new.conference_id) {
                (IdMode::Dynamic, Some(_)) => {
                    return Err(DirectoryError::WrongMode(new.id, IdMode::Dynamic))
                }
                (IdMode::Dynamic, None) => None,
                (IdMode::Static, Some(id)) => {
                    s.claimable(id, &new.id)?;
                    Some(id)
                }
                (IdMode::Static, None) => Some(s.fresh_id()),
            };
            if let Some(id) = conference_id {
                s.activate(id, &new.id);
            }
            let now = SystemTime::now();
            let org = Organizer {
                id: new.id.clone(),
                display_name: new.display_name,
                email: new.email,
                leader_pin: new.leader_pin,
                mode,
                conference_id,
                created_at: now,
                updated_at: now,
            };
            s.organizers.insert(new.id, org.clone());
            Ok(org)
        }))
    }

    fn organizer(&self, id: String) -> BoxFuture<'_, Result<Organizer, DirectoryError>> {
        ready(self.with(|s| s.organizer_mut(&id).map(|o| o.clone())))
    }

    fn list_organizers(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page<Organizer>, DirectoryError>> {
        ready(self.with(|s| {
            let mut items: Vec<Organizer> = match &after {
                Some(a) => s
                    .organizers
                    .range::<String, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                    .map(|(_, o)| o.clone())
                    .take(limit + 1)
                    .collect(),
                None => s.organizers.values().take(limit + 1).cloned().collect(),
            };
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|o| o.id.clone())
            } else {
                None
            };
            Ok(Page { items, next })
        }))
    }

    fn delete_organizer(&self, id: String) -> BoxFuture<'_, Result<(), DirectoryError>> {
        ready(self.with(|s| {
            let org = s.organizer_mut(&id)?.clone();
            if let Some(cid) = org.conference_id {
                s.tombstone(cid, &id);
            }
            let meetings: Vec<Meeting> = s
                .meetings
                .values()
                .filter(|m| m.organizer == id)
                .cloned()
                .collect();
            for m in meetings {
                s.tombstone(m.conference_id, &id);
                s.meetings.remove(&m.id);
            }
            s.organizers.remove(&id);
            Ok(())
        }))
    }

    fn set_conference_id(
        &self,
        organizer: String,
        id: ConferenceId,
    ) -> BoxFuture<'_, Result<Organizer, DirectoryError>> {
        ready(self.with(|s| {
            let org = s.organizer_mut(&organizer)?.clone();
            if org.mode == IdMode::Dynamic {
                return Err(DirectoryError::WrongMode(organizer, IdMode::Dynamic));
            }
            if org.conference_id == Some(id) {
                return Ok(org);
            }
            s.claimable(id, &organizer)?;
            if let Some(old) = org.conference_id {
                s.tombstone(old, &organizer);
            }
            s.activate(id, &organizer);
            let o = s.organizer_mut(&organizer)?;
            o.conference_id = Some(id);
            o.updated_at = SystemTime::now();
            Ok(o.clone())
        }))
    }

    fn reset_conference_id(
        &self,
        organizer: String,
    ) -> BoxFuture<'_, Result<ResetOutcome, DirectoryError>> {
        ready(self.with(|s| {
            let org = s.organizer_mut(&organizer)?.clone();
            let (IdMode::Static, Some(previous)) = (org.mode, org.conference_id) else {
                return Err(DirectoryError::WrongMode(organizer, org.mode));
            };
            let current = s.fresh_id();
            s.tombstone(previous, &organizer);
            s.activate(current, &organizer);
            let o = s.organizer_mut(&organizer)?;
            o.conference_id = Some(current);
            o.updated_at = SystemTime::now();
            Ok(ResetOutcome {
                organizer: o.clone(),
                previous,
                current,
            })
        }))
    }

    fn create_meeting(&self, new: NewMeeting) -> BoxFuture<'_, Result<Meeting, DirectoryError>> {
        ready(self.with(|s| {
            let org = s.organizer_mut(&new.organizer)?.clone();
            if org.mode != IdMode::Dynamic {
                return Err(DirectoryError::WrongMode(org.id, org.mode));
            }
            let conference_id = s.fresh_id();
            s.next_meeting += 1;
            let id = format!("m{}", s.next_meeting);
            let now = SystemTime::now();
            s.ids.insert(
                conference_id,
                Slot::Active {
                    organizer: org.id.clone(),
                    meeting: id.clone(),
                    since: now,
                    expires_at: new.expires_at,
                },
            );
            let m = Meeting {
                id: id.clone(),
                organizer: org.id,
                conference_id,
                expires_at: new.expires_at,
                created_at: now,
            };
            s.meetings.insert(id, m.clone());
            Ok(m)
        }))
    }

    fn meeting(&self, id: String) -> BoxFuture<'_, Result<Meeting, DirectoryError>> {
        ready(self.with(|s| {
            s.meetings
                .get(&id)
                .cloned()
                .ok_or(DirectoryError::NotFound {
                    what: "meeting",
                    id,
                })
        }))
    }

    fn delete_meeting(&self, id: String) -> BoxFuture<'_, Result<(), DirectoryError>> {
        ready(self.with(|s| {
            let m = s.meetings.remove(&id).ok_or(DirectoryError::NotFound {
                what: "meeting",
                id,
            })?;
            s.tombstone(m.conference_id, &m.organizer);
            Ok(())
        }))
    }

    fn conference_id_status(
        &self,
        id: ConferenceId,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<IdState, DirectoryError>> {
        ready(self.with(|s| {
            Ok(match s.ids.get(&id) {
                None => IdState::Unknown,
                Some(Slot::Tombstone { organizer, at }) => IdState::Reset {
                    organizer: organizer.clone(),
                    at: *at,
                    quarantined_until: None,
                },
                Some(Slot::Active {
                    organizer,
                    meeting,
                    expires_at: Some(e),
                    ..
                }) if *e <= now => IdState::Expired {
                    organizer: organizer.clone(),
                    meeting: meeting.clone(),
                    at: *e,
                },
                Some(Slot::Active {
                    organizer,
                    meeting,
                    since,
                    ..
                }) => IdState::Active {
                    organizer: organizer.clone(),
                    meeting: meeting.clone(),
                    since: *since,
                },
            })
        }))
    }
}

pub fn dial_in_numbers() -> Vec<DialInNumberView> {
    vec![
        DialInNumberView {
            number: "+44 20 7946 0000".into(),
            label: "London".into(),
            language: "en-GB".into(),
        },
        DialInNumberView {
            number: "+1 425 555 0100".into(),
            label: "Redmond".into(),
            language: "en-US".into(),
        },
    ]
}

/// The real admin API server on 127.0.0.1:0, on its own runtime thread;
/// stopped (gracefully) on drop.
pub struct TestServer {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// `make_state` runs on the server's runtime (a notifier needs one).
    pub fn start(make_state: impl FnOnce() -> AdminState + Send + 'static) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let state = make_state();
                dialgate::admin::serve(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            url: format!("http://{addr}"),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A plain HTTP client that returns every status as a value.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

//! The operator-facing directory service: organizers, meetings, set, reset
//! and status. Backends (the embedded durable store today, a shared store
//! for several nodes later) implement [`DirectoryService`]; the admin API
//! and the call path only see this trait and [`DirectoryLookup`].
//!
//! Every mutating call resolves only once the change is durable: an
//! acknowledged change survives a crash.

use super::{ConferenceId, ConferenceIdError, DirectoryLookup};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

/// A boxed future, so the trait stays object-safe (`Arc<dyn DirectoryService>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How an organizer's meetings get conference IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdMode {
    /// One conference ID for all the organizer's meetings.
    #[default]
    Static,
    /// Each scheduled meeting gets its own ID, optionally expiring.
    Dynamic,
}

/// An organizer enabled for audio conferencing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organizer {
    /// Stable identifier, e.g. `amos.marble@contoso.com`.
    pub id: String,
    pub display_name: String,
    pub email: String,
    /// Leader PIN; never sent in conference-info emails.
    pub leader_pin: Option<String>,
    pub mode: IdMode,
    /// The static conference ID (present in `Static` mode).
    pub conference_id: Option<ConferenceId>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// A request to create an organizer.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NewOrganizer {
    pub id: String,
    pub display_name: String,
    pub email: String,
    pub leader_pin: Option<String>,
    /// `None`: the configured default mode.
    pub mode: Option<IdMode>,
    /// `None`: assign one (static mode). Refused if in use or quarantined.
    pub conference_id: Option<ConferenceId>,
}

/// A scheduled meeting with its own (dynamic) conference ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    pub id: String,
    pub organizer: String,
    pub conference_id: ConferenceId,
    /// After this instant the ID is refused as expired.
    pub expires_at: Option<SystemTime>,
    pub created_at: SystemTime,
}

/// A request to create a meeting with a dynamic ID.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NewMeeting {
    pub organizer: String,
    /// Meeting end; the ID stays valid for the configured grace period after it.
    pub expires_at: Option<SystemTime>,
}

/// The result of a reset: the organizer as it is now and both IDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetOutcome {
    pub organizer: Organizer,
    pub previous: ConferenceId,
    pub current: ConferenceId,
}

/// What an operator sees for one conference ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IdState {
    Active {
        organizer: String,
        meeting: String,
        since: SystemTime,
    },
    Reset {
        organizer: String,
        at: SystemTime,
        /// When the quarantine ends; `None`: never reissued.
        quarantined_until: Option<SystemTime>,
    },
    Expired {
        organizer: String,
        meeting: String,
        at: SystemTime,
    },
    Unknown,
}

/// One page of a listing, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("conference ID {0} is in use")]
    InUse(ConferenceId),
    #[error("conference ID {0} is quarantined after a reset")]
    Quarantined(ConferenceId),
    #[error(transparent)]
    InvalidId(#[from] ConferenceIdError),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("organizer {0:?} uses {1:?} conference IDs")]
    WrongMode(String, IdMode),
    #[error("no free conference ID left in the configured space")]
    Exhausted,
    #[error("storage failure: {0}")]
    Storage(String),
}

/// Operator operations on the directory. Mutations resolve only once durable.
pub trait DirectoryService: DirectoryLookup {
    /// Digits in a conference ID for this directory.
    fn id_length(&self) -> usize;
    fn create_organizer(
        &self,
        new: NewOrganizer,
    ) -> BoxFuture<'_, Result<Organizer, DirectoryError>>;
    fn organizer(&self, id: String) -> BoxFuture<'_, Result<Organizer, DirectoryError>>;
    /// Organizers ordered by id, starting after `after`.
    fn list_organizers(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page<Organizer>, DirectoryError>>;
    /// Removes the organizer; its IDs are tombstoned like a reset.
    fn delete_organizer(&self, id: String) -> BoxFuture<'_, Result<(), DirectoryError>>;
    /// Gives the organizer a chosen static ID; the previous one is tombstoned.
    fn set_conference_id(
        &self,
        organizer: String,
        id: ConferenceId,
    ) -> BoxFuture<'_, Result<Organizer, DirectoryError>>;
    /// Issues a new unpredictable static ID; the previous one is tombstoned.
    fn reset_conference_id(
        &self,
        organizer: String,
    ) -> BoxFuture<'_, Result<ResetOutcome, DirectoryError>>;
    fn create_meeting(&self, new: NewMeeting) -> BoxFuture<'_, Result<Meeting, DirectoryError>>;
    fn meeting(&self, id: String) -> BoxFuture<'_, Result<Meeting, DirectoryError>>;
    /// Removes the meeting; its ID is tombstoned.
    fn delete_meeting(&self, id: String) -> BoxFuture<'_, Result<(), DirectoryError>>;
    fn conference_id_status(
        &self,
        id: ConferenceId,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<IdState, DirectoryError>>;
}

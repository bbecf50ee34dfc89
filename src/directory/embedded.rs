//! The embedded directory: in-memory state, the lock-free index for the
//! call path, and a durable journal on local disk. No external server.
//!
//! # How a change becomes durable
//! An operator call validates and decides under the model lock (an async
//! mutex, so no tokio worker blocks on it), appends the decided deltas to
//! the in-memory model and hands the encoded journal frame to the commit
//! thread, then awaits a oneshot. The commit thread takes every frame that
//! is waiting, writes them with one `write`, runs one `fdatasync` for all
//! of them (group commit), publishes the changes to the lookup index and
//! only then answers the waiters. So when a reset resolves, the old ID is
//! already refused by every lookup, and it survives `kill -9`.
//!
//! Decisions made but not yet durable are remembered in a small "pending"
//! overlay, so two concurrent calls can never hand out the same ID.
//!
//! If a write or fsync fails the directory stops accepting changes (the
//! in-memory model may then be ahead of the disk); lookups keep answering
//! from the durable state and a restart reloads from disk.
//!
//! # Compaction
//! When the journal grows past `compact_journal_bytes`, the commit thread
//! starts `journal.<gen+1>`, serialises the state into `snapshot.<gen+1>`
//! (temporary file, fsync, rename, fsync of the directory) and then removes
//! the older files. A crash at any point leaves either the old snapshot and
//! both journals or the new snapshot and the new journal.

use super::index::{from_unix_ms, unix_ms, BuildIdHasher, IdIndex, Slot};
use super::journal::{self, Delta, MeetingRec, OrgRec, SnapshotWriter};
use super::service::{
    BoxFuture, DirectoryError, DirectoryService, IdMode, IdState, Meeting, NewMeeting,
    NewOrganizer, Organizer, Page, ResetOutcome,
};
use super::{
    ConferenceId, ConferenceIdError, DirectoryLookup, DirectorySettings, IdSource, Lookup,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::io::{self, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// A wall clock for operator changes (tests pass a fake one).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Options beyond the settings, mostly for tests.
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// Clock for timestamps, quarantine and expiry decisions; default `SystemTime::now`.
    pub clock: Option<Clock>,
    /// Seed for a reproducible ID generator. Never set in production: IDs
    /// must come from the OS CSPRNG to be unguessable.
    pub id_seed: Option<u64>,
}

/// Why the directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid directory settings: {}", .0.join("; "))]
    Settings(Vec<String>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the store holds {stored}-digit conference IDs, directory.id_length is {configured}")]
    IdLength { stored: usize, configured: usize },
}

/// A torn or corrupt journal tail found (and cut off) at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatedTail {
    pub path: PathBuf,
    /// Bytes kept (whole, valid frames).
    pub kept: u64,
    /// Bytes dropped.
    pub dropped: u64,
    pub reason: String,
}

/// Counters of the commit thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions made durable since open.
    pub transactions: u64,
    /// Journal fsyncs since open.
    pub fsyncs: u64,
}

/// What start-up found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Generation of the snapshot loaded, if any.
    pub snapshot_generation: Option<u64>,
    /// Records read from the snapshot.
    pub snapshot_records: u64,
    /// Transactions replayed from journals.
    pub journal_records: u64,
    /// Tails cut off (logged as warnings).
    pub truncated: Vec<TruncatedTail>,
    pub organizers: usize,
    pub meetings: usize,
    /// Entries in the lookup index (active IDs and tombstones).
    pub ids: usize,
    pub elapsed: Duration,
}

/// Settings resolved to values.
#[derive(Clone, Copy, Debug)]
struct Resolved {
    id_len: usize,
    default_mode: IdMode,
    /// `None`: forever.
    quarantine_ms: Option<u64>,
    grace_ms: u64,
    compact_bytes: u64,
}

/// How a decided-but-maybe-not-yet-durable change uses an ID.
#[derive(Clone, Copy, Debug)]
enum PendingUse {
    Active,
    Tombstone { until_ms: u64 },
}

/// The operator-side state, guarded by an async mutex.
struct Model {
    organizers: BTreeMap<Arc<str>, OrgRec>,
    meetings: HashMap<Arc<str>, MeetingRec>,
    /// (organizer, meeting) pairs, to find an organizer's meetings.
    meetings_by_org: BTreeSet<(Arc<str>, Arc<str>)>,
    /// ID uses decided by transactions with the given sequence.
    pending: HashMap<ConferenceId, (u64, PendingUse), BuildIdHasher>,
    /// Size of `pending` that triggers pruning.
    prune_at: usize,
    next_seq: u64,
    rng: IdSource,
}

impl Model {
    /// Applies a delta taken by value (recovery: no copies).
    fn apply_owned(&mut self, d: Delta) {
        match d {
            Delta::PutOrganizer(o) => {
                self.organizers.insert(o.id.clone(), o);
            }
            Delta::PutMeeting(m) => {
                self.meetings_by_org
                    .insert((m.organizer.clone(), m.id.clone()));
                self.meetings.insert(m.id.clone(), m);
            }
            other => self.apply(&other),
        }
    }

    fn apply(&mut self, d: &Delta) {
        match d {
            Delta::PutOrganizer(o) => {
                self.organizers.insert(o.id.clone(), o.clone());
            }
            Delta::DelOrganizer(id) => {
                self.organizers.remove(&**id);
            }
            Delta::PutMeeting(m) => {
                self.meetings_by_org
                    .insert((m.organizer.clone(), m.id.clone()));
                self.meetings.insert(m.id.clone(), m.clone());
            }
            Delta::DelMeeting(id) => {
                if let Some(m) = self.meetings.remove(&**id) {
                    self.meetings_by_org.remove(&(m.organizer, m.id));
                }
            }
            Delta::Tombstone { .. } => {}
        }
    }

    fn note_pending(&mut self, seq: u64, d: &Delta) {
        match d {
            Delta::PutOrganizer(o) if o.mode == IdMode::Static => {
                if let Some(id) = o.conference_id {
                    self.pending.insert(id, (seq, PendingUse::Active));
                }
            }
            Delta::PutMeeting(m) => {
                self.pending
                    .insert(m.conference_id, (seq, PendingUse::Active));
            }
            Delta::Tombstone {
                id,
                quarantined_until_ms,
                ..
            } => {
                self.pending.insert(
                    *id,
                    (
                        seq,
                        PendingUse::Tombstone {
                            until_ms: *quarantined_until_ms,
                        },
                    ),
                );
            }
            _ => {}
        }
    }
}

/// Publishes a durable delta to the lookup index.
fn apply_index(index: &IdIndex, d: &Delta, grace_ms: u64) {
    if let Some((id, slot)) = slot_of(d, grace_ms) {
        index.put(id, slot);
    }
}

/// The index entry a delta creates, if any.
fn slot_of(d: &Delta, grace_ms: u64) -> Option<(ConferenceId, Slot)> {
    match d {
        Delta::PutOrganizer(o) => match (o.mode, o.conference_id) {
            (IdMode::Static, Some(id)) => Some((
                id,
                Slot::Active {
                    // The static meeting is named after its organizer: both
                    // share one allocation.
                    route: super::Route {
                        organizer: o.id.clone(),
                        meeting: o.id.clone(),
                    },
                    since_ms: o.id_since_ms,
                    expires_ms: u64::MAX,
                },
            )),
            _ => None,
        },
        Delta::PutMeeting(m) => Some((
            m.conference_id,
            Slot::Active {
                route: super::Route {
                    organizer: m.organizer.clone(),
                    meeting: m.id.clone(),
                },
                since_ms: m.created_ms,
                expires_ms: m
                    .expires_ms
                    .map_or(u64::MAX, |e| e.saturating_add(grace_ms)),
            },
        )),
        Delta::Tombstone {
            id,
            organizer,
            at_ms,
            quarantined_until_ms,
        } => Some((
            *id,
            Slot::Tombstone {
                organizer: organizer.clone(),
                at_ms: *at_ms,
                quarantined_until_ms: *quarantined_until_ms,
            },
        )),
        Delta::DelOrganizer(_) | Delta::DelMeeting(_) => None,
    }
}

/// Resolves once a submitted transaction is durable (or failed).
type Durable = oneshot::Receiver<Result<(), DirectoryError>>;

/// A transaction on its way to disk.
struct Commit {
    seq: u64,
    frame: Vec<u8>,
    deltas: Vec<Delta>,
    ack: oneshot::Sender<Result<(), DirectoryError>>,
}

/// State shared with the commit thread.
struct Shared {
    index: IdIndex,
    model: tokio::sync::Mutex<Model>,
    /// Set once a write failed: no more changes are accepted.
    failed: OnceLock<String>,
    /// Highest sequence published to the index.
    applied_seq: AtomicU64,
    /// Transactions made durable since open.
    transactions: AtomicU64,
    /// Journal fsyncs since open (transactions / fsyncs = group size).
    fsyncs: AtomicU64,
    settings: Resolved,
    dir: PathBuf,
}

impl Shared {
    fn check_usable(&self) -> Result<(), DirectoryError> {
        match self.failed.get() {
            Some(why) => Err(DirectoryError::Storage(format!(
                "the directory store failed ({why}); restart to recover"
            ))),
            None => Ok(()),
        }
    }

    /// Is `id` free to hand out at `now_ms` (neither active nor quarantined,
    /// counting decisions not yet durable)?
    fn availability(
        &self,
        model: &Model,
        id: ConferenceId,
        now_ms: u64,
    ) -> Result<(), DirectoryError> {
        let in_use = match model.pending.get(&id) {
            Some((_, PendingUse::Active)) => Some(None),
            Some((_, PendingUse::Tombstone { until_ms })) => Some(Some(*until_ms)),
            None => match self.index.get(id) {
                None => None,
                Some(Slot::Active { .. }) => Some(None),
                Some(Slot::Tombstone {
                    quarantined_until_ms,
                    ..
                }) => Some(Some(quarantined_until_ms)),
            },
        };
        match in_use {
            None => Ok(()),
            Some(None) => Err(DirectoryError::InUse(id)),
            Some(Some(until)) if until > now_ms => Err(DirectoryError::Quarantined(id)),
            Some(Some(_)) => Ok(()),
        }
    }

    fn generate(&self, model: &mut Model, now_ms: u64) -> Result<ConferenceId, DirectoryError> {
        let len = self.settings.id_len;
        let Model { pending, rng, .. } = model;
        super::ids::generate_free(rng, len, |id| match pending.get(&id) {
            Some((_, PendingUse::Active)) => false,
            Some((_, PendingUse::Tombstone { until_ms })) => *until_ms <= now_ms,
            None => self.index.is_free_at(id, now_ms),
        })
        .ok_or(DirectoryError::Exhausted)
    }

    fn quarantine_until(&self, now_ms: u64) -> u64 {
        self.settings
            .quarantine_ms
            .map_or(u64::MAX, |q| now_ms.saturating_add(q).min(u64::MAX - 1))
    }
}

/// The journal file currently appended to.
struct JournalFile {
    file: File,
    generation: u64,
    len: u64,
}

/// The embedded, durable conference-ID directory. Implements
/// [`DirectoryLookup`] (call path, lock-free) and [`DirectoryService`]
/// (operators; every change resolves once durable).
///
/// The service futures must be polled inside a tokio runtime.
pub struct EmbeddedDirectory {
    shared: Arc<Shared>,
    /// Sends to the commit thread; taken on close. Locked only briefly,
    /// always after the model lock.
    tx: Mutex<Option<mpsc::Sender<Commit>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    clock: Clock,
    report: RecoveryReport,
}

impl std::fmt::Debug for EmbeddedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedDirectory")
            .field("dir", &self.shared.dir)
            .field("ids", &self.shared.index.len())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("journal.{generation}"))
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot.{generation}"))
}

/// Creates `journal.<generation>` with its header, durably.
fn create_journal(dir: &Path, generation: u64) -> io::Result<JournalFile> {
    let path = journal_path(dir, generation);
    let mut file = FsOpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    file.write_all(journal::JOURNAL_MAGIC)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(JournalFile {
        file,
        generation,
        len: journal::JOURNAL_MAGIC.len() as u64,
    })
}

/// The files of a data directory.
#[derive(Default)]
struct DirListing {
    journals: Vec<u64>,
    snapshots: Vec<u64>,
}

fn list_dir(dir: &Path) -> Result<DirListing, OpenError> {
    let mut listing = DirListing::default();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            // An interrupted snapshot: never renamed, so never part of the state.
            let _ = fs::remove_file(entry.path());
        } else if let Some(g) = name.strip_prefix("journal.") {
            if let Ok(g) = g.parse() {
                listing.journals.push(g);
            }
        } else if let Some(g) = name.strip_prefix("snapshot.") {
            if let Ok(g) = g.parse() {
                listing.snapshots.push(g);
            }
        }
    }
    listing.journals.sort_unstable();
    listing.snapshots.sort_unstable();
    Ok(listing)
}

fn read_file(path: &Path) -> Result<Vec<u8>, OpenError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    Ok(bytes)
}

/// Longest accepted organizer or meeting identifier.
const MAX_NAME: usize = 320;
/// Organizers per journal frame in [`EmbeddedDirectory::import_organizers`].
const IMPORT_CHUNK: usize = 8192;
/// Smallest size of the pending overlay that triggers pruning.
const PENDING_PRUNE_MIN: usize = 4096;
/// Transactions written in one group commit at most.
const MAX_BATCH: usize = 4096;

fn check_text(field: &'static str, s: &str, required: bool) -> Result<(), DirectoryError> {
    let invalid = |reason: &str| DirectoryError::Invalid {
        field,
        reason: reason.to_owned(),
    };
    if required && s.trim().is_empty() {
        return Err(invalid("must not be empty"));
    }
    if s.len() > MAX_NAME {
        return Err(invalid("is longer than 320 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    Ok(())
}

fn check_new_organizer(new: &NewOrganizer) -> Result<(), DirectoryError> {
    check_text("id", &new.id, true)?;
    if new.id.chars().any(char::is_whitespace) {
        return Err(DirectoryError::Invalid {
            field: "id",
            reason: "contains whitespace".into(),
        });
    }
    check_text("display_name", &new.display_name, false)?;
    check_text("email", &new.email, false)?;
    if !new.email.is_empty()
        && (!new.email.contains('@') || new.email.contains(char::is_whitespace))
    {
        return Err(DirectoryError::Invalid {
            field: "email",
            reason: "is not an e-mail address".into(),
        });
    }
    if let Some(pin) = &new.leader_pin {
        if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DirectoryError::Invalid {
                field: "leader_pin",
                reason: "must be 4 to 12 digits".into(),
            });
        }
    }
    Ok(())
}

fn to_organizer(o: &OrgRec) -> Organizer {
    Organizer {
        id: o.id.to_string(),
        display_name: o.display_name.clone(),
        email: o.email.clone(),
        leader_pin: o.leader_pin.clone(),
        mode: o.mode,
        conference_id: o.conference_id,
        created_at: from_unix_ms(o.created_ms),
        updated_at: from_unix_ms(o.updated_ms),
    }
}

fn to_meeting(m: &MeetingRec) -> Meeting {
    Meeting {
        id: m.id.to_string(),
        organizer: m.organizer.to_string(),
        conference_id: m.conference_id,
        expires_at: m.expires_ms.map(from_unix_ms),
        created_at: from_unix_ms(m.created_ms),
    }
}

fn not_found(what: &'static str, id: &str) -> DirectoryError {
    DirectoryError::NotFound {
        what,
        id: id.to_owned(),
    }
}

impl EmbeddedDirectory {
    /// Opens (or creates) the directory stored in `data_dir`, replaying the
    /// newest snapshot and the journals after it. `settings.data_dir` is
    /// not used: the caller decides the path.
    pub fn open(
        data_dir: impl AsRef<Path>,
        settings: &DirectorySettings,
    ) -> Result<Arc<Self>, OpenError> {
        Self::open_with(data_dir, settings, OpenOptions::default())
    }

    /// [`EmbeddedDirectory::open`] with a clock and ID generator of choice.
    pub fn open_with(
        data_dir: impl AsRef<Path>,
        settings: &DirectorySettings,
        options: OpenOptions,
    ) -> Result<Arc<Self>, OpenError> {
        let started = Instant::now();
        let problems = settings.validate();
        if !problems.is_empty() {
            return Err(OpenError::Settings(problems));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let resolved = Resolved {
            id_len: settings.id_length,
            default_mode: settings.default_mode,
            quarantine_ms: settings.quarantine_period().ok().flatten().map(ms),
            grace_ms: settings.dynamic_grace_period().map(ms).unwrap_or(0),
            compact_bytes: settings.compact_journal_bytes,
        };
        let dir = data_dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let listing = list_dir(&dir)?;
        let mut report = RecoveryReport::default();

        let mut model = Model {
            organizers: BTreeMap::new(),
            meetings: HashMap::new(),
            meetings_by_org: BTreeSet::new(),
            pending: HashMap::with_hasher(BuildIdHasher),
            prune_at: PENDING_PRUNE_MIN,
            next_seq: 1,
            rng: options.id_seed.map_or(IdSource::Os, IdSource::seeded),
        };
        let mut last_seq = 0u64;
        let mut index = None;

        // The newest snapshot; older ones are leftovers of an interrupted clean-up.
        let start_gen = if let Some(&g) = listing.snapshots.last() {
            let path = snapshot_path(&dir, g);
            let bytes = read_file(&path)?;
            let header = journal::check_snapshot(&bytes).map_err(|e| OpenError::Corrupt {
                path: path.clone(),
                reason: e.0,
            })?;
            if header.id_len != resolved.id_len {
                return Err(OpenError::IdLength {
                    stored: header.id_len,
                    configured: resolved.id_len,
                });
            }
            let idx =
                load_snapshot(&bytes, &header, &mut model, resolved.grace_ms).map_err(|e| {
                    OpenError::Corrupt {
                        path: path.clone(),
                        reason: e.0,
                    }
                })?;
            index = Some(idx);
            last_seq = header.last_seq;
            report.snapshot_generation = Some(g);
            report.snapshot_records = header.count;
            g
        } else {
            match listing.journals.first() {
                None | Some(0) => 0,
                Some(&g) => {
                    return Err(OpenError::Corrupt {
                        path: journal_path(&dir, g),
                        reason: "journals before this one and no snapshot: data is missing".into(),
                    })
                }
            }
        };
        let index = index.unwrap_or_else(|| IdIndex::with_capacity(1024));

        let journals: Vec<u64> = listing
            .journals
            .iter()
            .copied()
            .filter(|&g| g >= start_gen)
            .collect();
        for (i, &g) in journals.iter().enumerate() {
            if g != start_gen + i as u64 {
                return Err(OpenError::Corrupt {
                    path: journal_path(&dir, g),
                    reason: format!("journal generation {} is missing", start_gen + i as u64),
                });
            }
        }
        let mut current = None;
        for (i, &g) in journals.iter().enumerate() {
            let path = journal_path(&dir, g);
            let bytes = read_file(&path)?;
            let mut stored_len = None;
            let scan = journal::scan_journal(&bytes, last_seq, |_, deltas| {
                for d in deltas {
                    if let Some(id) = d.conference_id() {
                        if id.len() != resolved.id_len {
                            stored_len = Some(id.len());
                        }
                    }
                    apply_index(&index, &d, resolved.grace_ms);
                    model.apply_owned(d);
                }
            });
            if let Some(stored) = stored_len {
                return Err(OpenError::IdLength {
                    stored,
                    configured: resolved.id_len,
                });
            }
            report.journal_records += scan.records;
            if let Some(s) = scan.last_seq {
                last_seq = s;
            }
            let is_last = i + 1 == journals.len();
            if let Some(problem) = &scan.problem {
                if !is_last {
                    // Older journals were fsynced whole before the next one
                    // was started: damage there is not a torn write.
                    return Err(OpenError::Corrupt {
                        path,
                        reason: problem.clone(),
                    });
                }
                tracing::warn!(
                    path = %path.display(),
                    kept = scan.valid_len,
                    dropped = bytes.len() as u64 - scan.valid_len,
                    "directory journal: torn or corrupt tail cut off: {problem}"
                );
                report.truncated.push(TruncatedTail {
                    path: path.clone(),
                    kept: scan.valid_len,
                    dropped: bytes.len() as u64 - scan.valid_len,
                    reason: problem.clone(),
                });
            }
            if is_last {
                if scan.valid_len < journal::JOURNAL_MAGIC.len() as u64 {
                    current = Some(create_journal(&dir, g).map_err(io_err(&path))?);
                } else {
                    let file = FsOpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(&path))?;
                    if scan.problem.is_some() {
                        file.set_len(scan.valid_len).map_err(io_err(&path))?;
                        file.sync_all().map_err(io_err(&path))?;
                    }
                    current = Some(JournalFile {
                        file,
                        generation: g,
                        len: scan.valid_len,
                    });
                }
            }
        }
        let mut current = match current {
            Some(c) => c,
            None => create_journal(&dir, start_gen).map_err(io_err(&dir))?,
        };
        use std::io::Seek;
        current
            .file
            .seek(io::SeekFrom::Start(current.len))
            .map_err(io_err(&dir))?;
        // Leftovers from an interrupted clean-up after a snapshot.
        remove_older(&dir, start_gen);
        model.next_seq = last_seq + 1;

        report.organizers = model.organizers.len();
        report.meetings = model.meetings.len();
        report.ids = index.len();
        report.elapsed = started.elapsed();
        tracing::info!(
            organizers = report.organizers,
            meetings = report.meetings,
            ids = report.ids,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "directory loaded"
        );

        let shared = Arc::new(Shared {
            index,
            model: tokio::sync::Mutex::new(model),
            failed: OnceLock::new(),
            applied_seq: AtomicU64::new(last_seq),
            transactions: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            settings: resolved,
            dir,
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("directory-commit".into())
            .spawn(move || {
                CommitThread {
                    shared: writer_shared,
                    journal: current,
                    last_seq,
                    snapshotter: None,
                }
                .run(rx)
            })
            .map_err(io_err(&shared.dir))?;
        Ok(Arc::new(EmbeddedDirectory {
            shared,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            clock: options.clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
            report,
        }))
    }

    /// What start-up found (records loaded, tails cut off, time taken).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Durable transactions and journal fsyncs since open (for metrics:
    /// their ratio is the average group-commit size).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            transactions: self.shared.transactions.load(Ordering::Relaxed),
            fsyncs: self.shared.fsyncs.load(Ordering::Relaxed),
        }
    }

    /// Number of entries in the lookup index (active IDs and tombstones).
    pub fn id_count(&self) -> usize {
        self.shared.index.len()
    }

    /// Stops the commit thread after it has written what it was given.
    /// Acknowledged changes are durable already, so this is only needed for
    /// a tidy exit; afterwards every change fails with a storage error.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn now_ms(&self) -> u64 {
        unix_ms((self.clock)())
    }

    /// Hands a transaction to the commit thread and applies it to the model.
    /// Must be called with the model lock held (that is what orders the journal).
    fn submit(&self, model: &mut Model, deltas: Vec<Delta>) -> Result<Durable, DirectoryError> {
        self.shared.check_usable()?;
        let seq = model.next_seq;
        let mut frame = Vec::with_capacity(128);
        journal::encode_frame(&mut frame, seq, &deltas);
        for d in &deltas {
            model.apply(d);
            model.note_pending(seq, d);
        }
        let (ack, rx) = oneshot::channel();
        let sent = match self.tx.lock() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| {
                tx.send(Commit {
                    seq,
                    frame,
                    deltas,
                    ack,
                })
                .is_ok()
            }),
            Err(_) => false,
        };
        if !sent {
            // The model now holds a change that will never be written.
            let _ = self.shared.failed.set("commit thread stopped".into());
            return Err(DirectoryError::Storage("the directory is closed".into()));
        }
        model.next_seq += 1;
        // Entries already published to the index are redundant; drop them
        // now and then (amortised: a bulk import keeps many in flight).
        if model.pending.len() > model.prune_at {
            let applied = self.shared.applied_seq.load(Ordering::Acquire);
            model.pending.retain(|_, (s, _)| *s > applied);
            model.prune_at = (2 * model.pending.len()).max(PENDING_PRUNE_MIN);
        }
        Ok(rx)
    }

    async fn durable(rx: Durable) -> Result<(), DirectoryError> {
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(DirectoryError::Storage("commit thread stopped".into())),
        }
    }

    fn check_len(&self, id: ConferenceId) -> Result<(), DirectoryError> {
        if id.len() != self.shared.settings.id_len {
            return Err(DirectoryError::InvalidId(ConferenceIdError::WrongLength {
                expected: self.shared.settings.id_len,
                actual: id.len(),
            }));
        }
        Ok(())
    }

    fn tombstone(&self, id: ConferenceId, organizer: &Arc<str>, now_ms: u64) -> Delta {
        Delta::Tombstone {
            id,
            organizer: organizer.clone(),
            at_ms: now_ms,
            quarantined_until_ms: self.shared.quarantine_until(now_ms),
        }
    }

    /// Decides a new organizer (model lock held).
    fn decide_organizer(
        &self,
        model: &mut Model,
        new: NewOrganizer,
        now_ms: u64,
    ) -> Result<OrgRec, DirectoryError> {
        check_new_organizer(&new)?;
        if model.organizers.contains_key(new.id.as_str()) {
            return Err(DirectoryError::AlreadyExists {
                what: "organizer",
                id: new.id,
            });
        }
        let mode = new.mode.unwrap_or(self.shared.settings.default_mode);
        let conference_id = match (mode, new.conference_id) {
            (IdMode::Static, Some(id)) => {
                self.check_len(id)?;
                self.shared.availability(model, id, now_ms)?;
                Some(id)
            }
            (IdMode::Static, None) => Some(self.shared.generate(model, now_ms)?),
            (IdMode::Dynamic, Some(_)) => {
                return Err(DirectoryError::Invalid {
                    field: "conference_id",
                    reason: "dynamic organizers get an ID per meeting".into(),
                })
            }
            (IdMode::Dynamic, None) => None,
        };
        Ok(OrgRec {
            id: Arc::from(new.id),
            display_name: new.display_name,
            email: new.email,
            leader_pin: new.leader_pin,
            mode,
            conference_id,
            created_ms: now_ms,
            updated_ms: now_ms,
            id_since_ms: now_ms,
        })
    }

    /// Creates many organizers, a few thousand per journal transaction (each
    /// transaction is all-or-nothing; the whole import is not). Validates
    /// everything before writing anything. For migrations and benchmarks.
    pub async fn import_organizers(
        &self,
        organizers: Vec<NewOrganizer>,
    ) -> Result<usize, DirectoryError> {
        let total = organizers.len();
        let mut waits = Vec::new();
        {
            let mut model = self.shared.model.lock().await;
            let now_ms = self.now_ms();
            let mut seen = std::collections::HashSet::new();
            let mut chosen = std::collections::HashSet::with_hasher(BuildIdHasher);
            for new in &organizers {
                check_new_organizer(new)?;
                if model.organizers.contains_key(new.id.as_str()) || !seen.insert(new.id.as_str()) {
                    return Err(DirectoryError::AlreadyExists {
                        what: "organizer",
                        id: new.id.clone(),
                    });
                }
                if let Some(id) = new.conference_id {
                    self.check_len(id)?;
                    self.shared.availability(&model, id, now_ms)?;
                    if !chosen.insert(id) {
                        return Err(DirectoryError::InUse(id));
                    }
                }
            }
            drop((seen, chosen));
            let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
            let mut iter = organizers.into_iter().peekable();
            while let Some(new) = iter.next() {
                let rec = self.decide_organizer(&mut model, new, now_ms)?;
                // Reserve the ID at once so the rest of the chunk sees it.
                if let Some(id) = rec.conference_id {
                    let seq = model.next_seq;
                    model.pending.insert(id, (seq, PendingUse::Active));
                }
                chunk.push(Delta::PutOrganizer(rec));
                if chunk.len() == IMPORT_CHUNK || iter.peek().is_none() {
                    let deltas = std::mem::replace(&mut chunk, Vec::with_capacity(IMPORT_CHUNK));
                    waits.push(self.submit(&mut model, deltas)?);
                }
            }
        }
        for rx in waits {
            Self::durable(rx).await?;
        }
        Ok(total)
    }

    /// Deletes dynamic meetings whose ID expired (meeting end plus grace at
    /// or before `now`), tombstoning their IDs as `delete_meeting` does, so
    /// expired IDs stop occupying the ID space once their quarantine ends.
    /// The daemon calls this periodically; returns how many were retired.
    /// Afterwards their IDs answer `Refused(Reset)` instead of `Expired`.
    pub async fn retire_expired_meetings(&self, now: SystemTime) -> Result<usize, DirectoryError> {
        let now_ms = unix_ms(now);
        let (rx, count) = {
            let mut model = self.shared.model.lock().await;
            self.shared.check_usable()?;
            let grace = self.shared.settings.grace_ms;
            let at_ms = self.now_ms();
            let mut deltas = Vec::new();
            for m in model.meetings.values() {
                if m.expires_ms
                    .is_some_and(|e| e.saturating_add(grace) <= now_ms)
                {
                    deltas.push(self.tombstone(m.conference_id, &m.organizer, at_ms));
                    deltas.push(Delta::DelMeeting(m.id.clone()));
                }
            }
            if deltas.is_empty() {
                return Ok(0);
            }
            let count = deltas.len() / 2;
            (self.submit(&mut model, deltas)?, count)
        };
        Self::durable(rx).await?;
        Ok(count)
    }

    async fn create_organizer_impl(&self, new: NewOrganizer) -> Result<Organizer, DirectoryError> {
        let (rec, rx) = {
            let mut model = self.shared.model.lock().await;
            self.shared.check_usable()?;
            let now_ms = self.now_ms();
            let rec = self.decide_organizer(&mut model, new, now_ms)?;
            let rx = self.submit(&mut model, vec![Delta::PutOrganizer(rec.clone())])?;
            (rec, rx)
        };
        Self::durable(rx).await?;
        Ok(to_organizer(&rec))
    }

    async fn organizer_impl(&self, id: String) -> Result<Organizer, DirectoryError> {
        let model = self.shared.model.lock().await;
        model
            .organizers
            .get(id.as_str())
            .map(to_organizer)
            .ok_or_else(|| not_found("organizer", &id))
    }

    async fn list_organizers_impl(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<Organizer>, DirectoryError> {
        if limit == 0 {
            return Err(DirectoryError::Invalid {
                field: "limit",
                reason: "must be at least 1".into(),
            });
        }
        let model = self.shared.model.lock().await;
        let lower = match &after {
            Some(a) => Bound::Excluded(a.as_str()),
            None => Bound::Unbounded,
        };
        let mut range = model
            .organizers
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(_, o)| o);
        let items: Vec<Organizer> = range.by_ref().take(limit).map(to_organizer).collect();
        let next = if range.next().is_some() {
            items.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn delete_organizer_impl(&self, id: String) -> Result<(), DirectoryError> {
        let rx = {
            let mut model = self.shared.model.lock().await;
            self.shared.check_usable()?;
            let now_ms = self.now_ms();
            let org = model
                .organizers
                .get(id.as_str())
                .ok_or_else(|| not_found("organizer", &id))?;
            let org_id = org.id.clone();
            let mut deltas = Vec::new();
            if let (IdMode::Static, Some(cid)) = (org.mode, org.conference_id) {
                deltas.push(self.tombstone(cid, &org_id, now_ms));
            }
            let lower = (org_id.clone(), Arc::<str>::from(""));
            for (_, meeting) in model
                .meetings_by_org
                .range(lower..)
                .take_while(|(o, _)| *o == org_id)
            {
                if let Some(m) = model.meetings.get(meeting) {
                    deltas.push(self.tombstone(m.conference_id, &org_id, now_ms));
                    deltas.push(Delta::DelMeeting(m.id.clone()));
                }
            }
            deltas.push(Delta::DelOrganizer(org_id));
            self.submit(&mut model, deltas)?
        };
        Self::durable(rx).await
    }

    /// Replaces a static organizer's ID with `new_id` (model lock held).
    fn replace_static_id(
        &self,
        model: &mut Model,
        organizer: &str,
        new_id: Option<ConferenceId>,
    ) -> Result<(OrgRec, ConferenceId, ConferenceId, Durable), DirectoryError> {
        self.shared.check_usable()?;
        let now_ms = self.now_ms();
        let org = model
            .organizers
            .get(organizer)
            .ok_or_else(|| not_found("organizer", organizer))?;
        if org.mode != IdMode::Static {
            return Err(DirectoryError::WrongMode(organizer.to_owned(), org.mode));
        }
        let Some(previous) = org.conference_id else {
            return Err(DirectoryError::Invalid {
                field: "organizer",
                reason: "has no static conference ID".into(),
            });
        };
        let mut rec = org.clone();
        let current = match new_id {
            Some(id) => {
                self.check_len(id)?;
                self.shared.availability(model, id, now_ms)?;
                id
            }
            None => self.shared.generate(model, now_ms)?,
        };
        rec.conference_id = Some(current);
        rec.updated_ms = now_ms;
        rec.id_since_ms = now_ms;
        let deltas = vec![
            self.tombstone(previous, &rec.id, now_ms),
            Delta::PutOrganizer(rec.clone()),
        ];
        let rx = self.submit(model, deltas)?;
        Ok((rec, previous, current, rx))
    }

    async fn set_conference_id_impl(
        &self,
        organizer: String,
        id: ConferenceId,
    ) -> Result<Organizer, DirectoryError> {
        let (rec, _, _, rx) = {
            let mut model = self.shared.model.lock().await;
            self.replace_static_id(&mut model, &organizer, Some(id))?
        };
        Self::durable(rx).await?;
        Ok(to_organizer(&rec))
    }

    async fn reset_conference_id_impl(
        &self,
        organizer: String,
    ) -> Result<ResetOutcome, DirectoryError> {
        let (rec, previous, current, rx) = {
            let mut model = self.shared.model.lock().await;
            self.replace_static_id(&mut model, &organizer, None)?
        };
        Self::durable(rx).await?;
        Ok(ResetOutcome {
            organizer: to_organizer(&rec),
            previous,
            current,
        })
    }

    async fn create_meeting_impl(&self, new: NewMeeting) -> Result<Meeting, DirectoryError> {
        let (rec, rx) = {
            let mut model = self.shared.model.lock().await;
            self.shared.check_usable()?;
            let now_ms = self.now_ms();
            let org = model
                .organizers
                .get(new.organizer.as_str())
                .ok_or_else(|| not_found("organizer", &new.organizer))?;
            if org.mode != IdMode::Dynamic {
                return Err(DirectoryError::WrongMode(new.organizer, org.mode));
            }
            let org_id = org.id.clone();
            let expires_ms = new.expires_at.map(unix_ms);
            if let Some(e) = expires_ms {
                if e.saturating_add(self.shared.settings.grace_ms) <= now_ms {
                    return Err(DirectoryError::Invalid {
                        field: "expires_at",
                        reason: "is already past (grace period included)".into(),
                    });
                }
            }
            let conference_id = self.shared.generate(&mut model, now_ms)?;
            let meeting_id: Arc<str> = loop {
                let candidate = format!("m{:016x}", model.rng.next_u64());
                if !model.meetings.contains_key(candidate.as_str()) {
                    break Arc::from(candidate);
                }
            };
            let rec = MeetingRec {
                id: meeting_id,
                organizer: org_id,
                conference_id,
                expires_ms,
                created_ms: now_ms,
            };
            let rx = self.submit(&mut model, vec![Delta::PutMeeting(rec.clone())])?;
            (rec, rx)
        };
        Self::durable(rx).await?;
        Ok(to_meeting(&rec))
    }

    async fn meeting_impl(&self, id: String) -> Result<Meeting, DirectoryError> {
        let model = self.shared.model.lock().await;
        model
            .meetings
            .get(id.as_str())
            .map(to_meeting)
            .ok_or_else(|| not_found("meeting", &id))
    }

    async fn delete_meeting_impl(&self, id: String) -> Result<(), DirectoryError> {
        let rx = {
            let mut model = self.shared.model.lock().await;
            self.shared.check_usable()?;
            let now_ms = self.now_ms();
            let m = model
                .meetings
                .get(id.as_str())
                .ok_or_else(|| not_found("meeting", &id))?;
            let deltas = vec![
                self.tombstone(m.conference_id, &m.organizer, now_ms),
                Delta::DelMeeting(m.id.clone()),
            ];
            self.submit(&mut model, deltas)?
        };
        Self::durable(rx).await
    }

    fn status(&self, id: ConferenceId, now: SystemTime) -> Result<IdState, DirectoryError> {
        self.check_len(id)?;
        let now_ms = unix_ms(now);
        Ok(match self.shared.index.get(id) {
            None => IdState::Unknown,
            Some(Slot::Active {
                route,
                since_ms,
                expires_ms,
            }) => {
                if expires_ms != u64::MAX && now_ms >= expires_ms {
                    IdState::Expired {
                        organizer: route.organizer.to_string(),
                        meeting: route.meeting.to_string(),
                        at: from_unix_ms(expires_ms),
                    }
                } else {
                    IdState::Active {
                        organizer: route.organizer.to_string(),
                        meeting: route.meeting.to_string(),
                        since: from_unix_ms(since_ms),
                    }
                }
            }
            Some(Slot::Tombstone {
                organizer,
                at_ms,
                quarantined_until_ms,
            }) => IdState::Reset {
                organizer: organizer.to_string(),
                at: from_unix_ms(at_ms),
                quarantined_until: (quarantined_until_ms != u64::MAX)
                    .then(|| from_unix_ms(quarantined_until_ms)),
            },
        })
    }
}

impl Drop for EmbeddedDirectory {
    fn drop(&mut self) {
        self.close();
    }
}

/// Index entries handed to an index-building thread at a time.
const LOAD_BATCH: usize = 16 * 1024;
/// Threads filling the index at start-up.
const LOAD_THREADS: usize = 2;

/// Builds the model and the index from a checked snapshot.
///
/// Start-up with millions of IDs is bound by filling the index (a cache
/// miss per entry), so this thread decodes and builds the model while two
/// other threads fill the index from batches it hands them.
fn load_snapshot(
    bytes: &[u8],
    header: &journal::SnapshotHeader,
    model: &mut Model,
    grace_ms: u64,
) -> Result<IdIndex, journal::DecodeError> {
    let capacity = usize::try_from(header.count)
        .unwrap_or(0)
        .saturating_add(1024)
        .min(1 << 31);
    let index = IdIndex::with_capacity(capacity);
    let mut organizers = Vec::with_capacity(capacity);
    std::thread::scope(|s| {
        let index = &index;
        let mut senders = Vec::new();
        for _ in 0..LOAD_THREADS {
            let (tx, rx) = mpsc::sync_channel::<Vec<(ConferenceId, Slot)>>(4);
            s.spawn(move || {
                for batch in rx {
                    for (id, slot) in batch {
                        index.insert_new(id, slot);
                    }
                }
            });
            senders.push(tx);
        }
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        let mut batches = 0usize;
        let decoded = journal::read_snapshot_deltas(bytes, header, |d| {
            if let Some(entry) = slot_of(&d, grace_ms) {
                batch.push(entry);
                if batch.len() == LOAD_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(LOAD_BATCH));
                    if let Some(tx) = senders.get(batches % senders.len()) {
                        let _ = tx.send(full);
                    }
                    batches += 1;
                }
            }
            match d {
                // Snapshots list organizers in order: collected, then built in bulk.
                Delta::PutOrganizer(o) => organizers.push((o.id.clone(), o)),
                other => model.apply_owned(other),
            }
        });
        if let Some(tx) = senders.first() {
            let _ = tx.send(batch);
        }
        drop(senders);
        // Overlaps with the index threads still draining their queues.
        model.organizers = std::mem::take(&mut organizers).into_iter().collect();
        decoded
    })?;
    Ok(index)
}

/// Removes journals and snapshots older than `generation` (best effort).
fn remove_older(dir: &Path, generation: u64) {
    let Ok(listing) = list_dir(dir) else { return };
    let mut removed = false;
    for g in listing.journals.into_iter().filter(|&g| g < generation) {
        removed |= fs::remove_file(journal_path(dir, g)).is_ok();
    }
    for g in listing.snapshots.into_iter().filter(|&g| g < generation) {
        removed |= fs::remove_file(snapshot_path(dir, g)).is_ok();
    }
    if removed {
        let _ = sync_dir(dir);
    }
}

/// The commit thread: group commit, index publication, compaction.
struct CommitThread {
    shared: Arc<Shared>,
    journal: JournalFile,
    last_seq: u64,
    /// The thread writing the latest snapshot, if one is being written.
    snapshotter: Option<JoinHandle<()>>,
}

impl CommitThread {
    fn run(mut self, rx: mpsc::Receiver<Commit>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.commit(batch);
            let snapshot_busy = self.snapshotter.as_ref().is_some_and(|h| !h.is_finished());
            if self.journal.len >= self.shared.settings.compact_bytes
                && self.shared.failed.get().is_none()
                && !snapshot_busy
            {
                self.compact(&rx);
            }
        }
        if let Some(h) = self.snapshotter.take() {
            let _ = h.join();
        }
    }

    /// Writes a batch with one fsync, publishes it, then acknowledges it.
    fn commit(&mut self, batch: Vec<Commit>) {
        if let Some(why) = self.shared.failed.get() {
            for c in batch {
                let _ = c.ack.send(Err(DirectoryError::Storage(why.clone())));
            }
            return;
        }
        let total: usize = batch.iter().map(|c| c.frame.len()).sum();
        let mut buf = Vec::with_capacity(total);
        for c in &batch {
            buf.extend_from_slice(&c.frame);
        }
        let written = self
            .journal
            .file
            .write_all(&buf)
            .and_then(|()| self.journal.file.sync_data());
        if let Err(e) = written {
            let why = format!("journal write failed: {e}");
            tracing::error!("directory: {why}; no further changes accepted");
            let _ = self.shared.failed.set(why.clone());
            for c in batch {
                let _ = c.ack.send(Err(DirectoryError::Storage(why.clone())));
            }
            return;
        }
        self.journal.len += buf.len() as u64;
        let grace = self.shared.settings.grace_ms;
        for c in &batch {
            for d in &c.deltas {
                apply_index(&self.shared.index, d, grace);
            }
            self.last_seq = c.seq;
        }
        self.shared
            .applied_seq
            .store(self.last_seq, Ordering::Release);
        self.shared
            .transactions
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        for c in batch {
            let _ = c.ack.send(Ok(()));
        }
    }

    /// Starts a new journal generation and writes a snapshot of the state
    /// at its start.
    fn compact(&mut self, rx: &mpsc::Receiver<Commit>) {
        let started = Instant::now();
        let shared = self.shared.clone();
        let dir = shared.dir.clone();
        let model = shared.model.blocking_lock();
        // Transactions are submitted under the model lock: with it held,
        // the queue can only shrink. Write what is queued so that the model
        // equals the durable state.
        loop {
            let batch: Vec<Commit> = rx.try_iter().take(MAX_BATCH).collect();
            if batch.is_empty() {
                break;
            }
            self.commit(batch);
        }
        if self.shared.failed.get().is_some() {
            return;
        }
        let generation = self.journal.generation + 1;
        let next = match create_journal(&dir, generation) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!("directory: cannot start journal {generation}: {e}");
                return;
            }
        };
        let bytes = serialize(
            &model,
            &self.shared.index,
            self.shared.settings.id_len,
            generation,
            self.last_seq,
        );
        self.journal = next;
        drop(model);
        let serialised = started.elapsed();
        // Writing hundreds of megabytes must not hold up commits: a thread
        // of its own writes the file while commits go to the new journal.
        let spawned = std::thread::Builder::new()
            .name("directory-snapshot".into())
            .spawn(move || write_snapshot(&dir, generation, &bytes, started, serialised));
        match spawned {
            Ok(h) => {
                if let Some(old) = self.snapshotter.replace(h) {
                    let _ = old.join();
                }
            }
            Err(e) => tracing::warn!("directory: snapshot {generation} not started: {e}"),
        }
    }
}

/// Writes `snapshot.<generation>` atomically (temporary file, fsync,
/// rename, fsync of the directory), then removes older generations.
fn write_snapshot(
    dir: &Path,
    generation: u64,
    bytes: &[u8],
    started: Instant,
    serialised: Duration,
) {
    let path = snapshot_path(dir, generation);
    let tmp = dir.join(format!("snapshot.{generation}.tmp"));
    let written = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    match written {
        Ok(()) => {
            remove_older(dir, generation);
            tracing::info!(
                generation,
                bytes = bytes.len(),
                serialised_ms = serialised.as_millis() as u64,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "directory snapshot written"
            );
        }
        Err(e) => {
            // The previous snapshot and both journals still hold everything.
            let _ = fs::remove_file(&tmp);
            tracing::warn!("directory: snapshot {generation} not written: {e}");
        }
    }
}

/// Serialises the state (model lock held, nothing pending).
fn serialize(
    model: &Model,
    index: &IdIndex,
    id_len: usize,
    generation: u64,
    last_seq: u64,
) -> Vec<u8> {
    let estimate = model.organizers.len() * 64 + model.meetings.len() * 64 + 1024;
    let mut w = SnapshotWriter::new(id_len, generation, last_seq, estimate);
    for o in model.organizers.values() {
        w.org(o);
    }
    for m in model.meetings.values() {
        w.meeting(m);
    }
    index.for_each(|id, slot| {
        if let Slot::Tombstone {
            organizer,
            at_ms,
            quarantined_until_ms,
        } = slot
        {
            w.tombstone(id, organizer, *at_ms, *quarantined_until_ms);
        }
    });
    w.finish()
}

impl DirectoryLookup for EmbeddedDirectory {
    fn lookup(&self, id: ConferenceId, now: SystemTime) -> Lookup {
        self.shared.index.lookup(id, now)
    }
}

impl DirectoryService for EmbeddedDirectory {
    fn id_length(&self) -> usize {
        self.shared.settings.id_len
    }
    fn create_organizer(
        &self,
        new: NewOrganizer,
    ) -> BoxFuture<'_, Result<Organizer, DirectoryError>> {
        Box::pin(self.create_organizer_impl(new))
    }
    fn organizer(&self, id: String) -> BoxFuture<'_, Result<Organizer, DirectoryError>> {
        Box::pin(self.organizer_impl(id))
    }
    fn list_organizers(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page<Organizer>, DirectoryError>> {
        Box::pin(self.list_organizers_impl(after, limit))
    }
    fn delete_organizer(&self, id: String) -> BoxFuture<'_, Result<(), DirectoryError>> {
        Box::pin(self.delete_organizer_impl(id))
    }
    fn set_conference_id(
        &self,
        organizer: String,
        id: ConferenceId,
    ) -> BoxFuture<'_, Result<Organizer, DirectoryError>> {
        Box::pin(self.set_conference_id_impl(organizer, id))
    }
    fn reset_conference_id(
        &self,
        organizer: String,
    ) -> BoxFuture<'_, Result<ResetOutcome, DirectoryError>> {
        Box::pin(self.reset_conference_id_impl(organizer))
    }
    fn create_meeting(&self, new: NewMeeting) -> BoxFuture<'_, Result<Meeting, DirectoryError>> {
        Box::pin(self.create_meeting_impl(new))
    }
    fn meeting(&self, id: String) -> BoxFuture<'_, Result<Meeting, DirectoryError>> {
        Box::pin(self.meeting_impl(id))
    }
    fn delete_meeting(&self, id: String) -> BoxFuture<'_, Result<(), DirectoryError>> {
        Box::pin(self.delete_meeting_impl(id))
    }
    fn conference_id_status(
        &self,
        id: ConferenceId,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<IdState, DirectoryError>> {
        Box::pin(std::future::ready(self.status(id, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Refusal;
    use std::sync::atomic::AtomicU64;

    const T0: u64 = 1_800_000_000_000;

    struct Fixture {
        dir: tempfile::TempDir,
        now: Arc<AtomicU64>,
        settings: DirectorySettings,
        d: Arc<EmbeddedDirectory>,
    }

    impl Fixture {
        fn new(settings: DirectorySettings) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let now = Arc::new(AtomicU64::new(T0));
            let d = open(dir.path(), &settings, &now);
            Fixture {
                dir,
                now,
                settings,
                d,
            }
        }
        fn reopen(&mut self) {
            self.d.close();
            self.d = open(self.dir.path(), &self.settings, &self.now);
        }
        fn advance(&self, d: Duration) {
            self.now.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
        fn now(&self) -> SystemTime {
            from_unix_ms(self.now.load(Ordering::SeqCst))
        }
        fn lookup(&self, id: ConferenceId) -> Lookup {
            self.d.lookup(id, self.now())
        }
        async fn org(&self, id: &str) -> Organizer {
            self.d.create_organizer(new_org(id)).await.unwrap()
        }
    }

    fn open(
        dir: &Path,
        settings: &DirectorySettings,
        now: &Arc<AtomicU64>,
    ) -> Arc<EmbeddedDirectory> {
        let now = now.clone();
        EmbeddedDirectory::open_with(
            dir,
            settings,
            OpenOptions {
                clock: Some(Arc::new(move || from_unix_ms(now.load(Ordering::SeqCst)))),
                id_seed: Some(42),
            },
        )
        .unwrap()
    }

    fn new_org(id: &str) -> NewOrganizer {
        NewOrganizer {
            id: id.into(),
            display_name: "Amos Marble".into(),
            email: format!("{id}@contoso.com"),
            leader_pin: Some("4321".into()),
            ..NewOrganizer::default()
        }
    }

    fn cid(s: &str) -> ConferenceId {
        ConferenceId::parse(s, s.len()).unwrap()
    }

    fn active(org: &str, meeting: &str) -> Lookup {
        Lookup::Active(crate::directory::Route {
            organizer: Arc::from(org),
            meeting: Arc::from(meeting),
        })
    }

    #[tokio::test]
    async fn static_organizer_gets_an_id_on_creation() {
        let f = Fixture::new(DirectorySettings::default());
        let o = f.org("amos").await;
        assert_eq!(o.mode, IdMode::Static);
        let id = o.conference_id.unwrap();
        assert_eq!(id.len(), 7);
        assert_eq!(f.lookup(id), active("amos", "amos"));
        assert_eq!(f.d.organizer("amos".into()).await.unwrap(), o);
        assert_eq!(o.created_at, from_unix_ms(T0));
        assert!(matches!(
            f.d.conference_id_status(id, f.now()).await.unwrap(),
            IdState::Active { ref organizer, .. } if organizer == "amos"
        ));
    }

    #[tokio::test]
    async fn default_mode_comes_from_settings() {
        let f = Fixture::new(DirectorySettings {
            default_mode: IdMode::Dynamic,
            ..DirectorySettings::default()
        });
        let o = f.org("amos").await;
        assert_eq!(o.mode, IdMode::Dynamic);
        assert_eq!(o.conference_id, None);
        let mut n = new_org("beth");
        n.mode = Some(IdMode::Static);
        assert!(f
            .d
            .create_organizer(n)
            .await
            .unwrap()
            .conference_id
            .is_some());
    }

    #[tokio::test]
    async fn create_validates_precisely() {
        let f = Fixture::new(DirectorySettings::default());
        f.org("amos").await;
        assert!(matches!(
            f.d.create_organizer(new_org("amos")).await,
            Err(DirectoryError::AlreadyExists {
                what: "organizer",
                ..
            })
        ));
        for (n, field) in [
            (
                NewOrganizer {
                    id: " ".into(),
                    ..new_org("x")
                },
                "id",
            ),
            (
                NewOrganizer {
                    id: "a b".into(),
                    ..new_org("x")
                },
                "id",
            ),
            (
                NewOrganizer {
                    email: "nope".into(),
                    ..new_org("x")
                },
                "email",
            ),
            (
                NewOrganizer {
                    leader_pin: Some("12a4".into()),
                    ..new_org("x")
                },
                "leader_pin",
            ),
            (
                NewOrganizer {
                    display_name: "a\u{7}".into(),
                    ..new_org("x")
                },
                "display_name",
            ),
            (
                NewOrganizer {
                    mode: Some(IdMode::Dynamic),
                    conference_id: Some(cid("1234567")),
                    ..new_org("x")
                },
                "conference_id",
            ),
        ] {
            match f.d.create_organizer(n).await {
                Err(DirectoryError::Invalid { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let n = NewOrganizer {
            conference_id: Some(cid("123456")),
            ..new_org("x")
        };
        assert!(matches!(
            f.d.create_organizer(n).await,
            Err(DirectoryError::InvalidId(ConferenceIdError::WrongLength {
                expected: 7,
                actual: 6
            }))
        ));
    }

    #[tokio::test]
    async fn set_takes_a_free_id_and_tombstones_the_old_one() {
        let f = Fixture::new(DirectorySettings::default());
        let old = f.org("amos").await.conference_id.unwrap();
        let o =
            f.d.set_conference_id("amos".into(), cid("0012345"))
                .await
                .unwrap();
        assert_eq!(o.conference_id, Some(cid("0012345")));
        assert_eq!(f.lookup(cid("0012345")), active("amos", "amos"));
        assert_eq!(f.lookup(old), Lookup::Refused(Refusal::Reset));
        // Leading zeros are significant: 012345 is another (6-digit) ID.
        assert!(matches!(
            f.d.set_conference_id("amos".into(), cid("012345")).await,
            Err(DirectoryError::InvalidId(
                ConferenceIdError::WrongLength { .. }
            ))
        ));
    }

    #[tokio::test]
    async fn set_is_refused_when_in_use_or_quarantined() {
        let f = Fixture::new(DirectorySettings::default());
        let amos = f.org("amos").await.conference_id.unwrap();
        let beth = f.org("beth").await.conference_id.unwrap();
        assert!(matches!(
            f.d.set_conference_id("beth".into(), amos).await,
            Err(DirectoryError::InUse(id)) if id == amos
        ));
        // Its own current ID is in use too.
        assert!(matches!(
            f.d.set_conference_id("beth".into(), beth).await,
            Err(DirectoryError::InUse(_))
        ));
        f.d.reset_conference_id("amos".into()).await.unwrap();
        assert!(matches!(
            f.d.set_conference_id("beth".into(), amos).await,
            Err(DirectoryError::Quarantined(id)) if id == amos
        ));
        // Even the previous owner cannot take it back.
        assert!(matches!(
            f.d.set_conference_id("amos".into(), amos).await,
            Err(DirectoryError::Quarantined(_))
        ));
        assert!(matches!(
            f.d.set_conference_id("nobody".into(), cid("7777777")).await,
            Err(DirectoryError::NotFound {
                what: "organizer",
                ..
            })
        ));
        // Refused calls changed nothing.
        assert_eq!(f.lookup(beth), active("beth", "beth"));
    }

    #[tokio::test]
    async fn reset_issues_a_new_id_and_refuses_the_old() {
        let f = Fixture::new(DirectorySettings::default());
        let old = f.org("amos").await.conference_id.unwrap();
        let r = f.d.reset_conference_id("amos".into()).await.unwrap();
        assert_eq!(r.previous, old);
        assert_ne!(r.current, old);
        assert_eq!(r.organizer.conference_id, Some(r.current));
        assert_eq!(f.lookup(old), Lookup::Refused(Refusal::Reset));
        assert_eq!(f.lookup(r.current), active("amos", "amos"));
        assert_eq!(
            f.d.conference_id_status(old, f.now()).await.unwrap(),
            IdState::Reset {
                organizer: "amos".into(),
                at: from_unix_ms(T0),
                quarantined_until: None
            }
        );
    }

    #[tokio::test]
    async fn finite_quarantine_ends() {
        let f = Fixture::new(DirectorySettings {
            quarantine: "1h".into(),
            ..DirectorySettings::default()
        });
        let old = f.org("amos").await.conference_id.unwrap();
        f.org("beth").await;
        f.d.reset_conference_id("amos".into()).await.unwrap();
        assert!(matches!(
            f.d.conference_id_status(old, f.now()).await.unwrap(),
            IdState::Reset { quarantined_until: Some(t), .. } if t == from_unix_ms(T0 + 3_600_000)
        ));
        f.advance(Duration::from_secs(3599));
        assert!(matches!(
            f.d.set_conference_id("beth".into(), old).await,
            Err(DirectoryError::Quarantined(_))
        ));
        // Still refused as reset until someone gets it.
        f.advance(Duration::from_secs(1));
        assert_eq!(f.lookup(old), Lookup::Refused(Refusal::Reset));
        f.d.set_conference_id("beth".into(), old).await.unwrap();
        assert_eq!(f.lookup(old), active("beth", "beth"));
    }

    #[tokio::test]
    async fn dynamic_meetings_get_their_own_expiring_ids() {
        let f = Fixture::new(DirectorySettings {
            dynamic_grace: "10m".into(),
            ..DirectorySettings::default()
        });
        let mut n = new_org("amos");
        n.mode = Some(IdMode::Dynamic);
        f.d.create_organizer(n).await.unwrap();
        f.org("beth").await;
        let end = f.now() + Duration::from_secs(3600);
        let m1 =
            f.d.create_meeting(NewMeeting {
                organizer: "amos".into(),
                expires_at: Some(end),
            })
            .await
            .unwrap();
        let m2 =
            f.d.create_meeting(NewMeeting {
                organizer: "amos".into(),
                expires_at: None,
            })
            .await
            .unwrap();
        assert_ne!(m1.conference_id, m2.conference_id);
        assert_ne!(m1.id, m2.id);
        assert_eq!(f.d.meeting(m1.id.clone()).await.unwrap(), m1);
        assert_eq!(f.lookup(m1.conference_id), active("amos", &m1.id));
        let at = |secs: u64| from_unix_ms(T0 + secs * 1000);
        assert_eq!(
            f.d.lookup(m1.conference_id, at(3600 + 599)),
            active("amos", &m1.id)
        );
        assert_eq!(
            f.d.lookup(m1.conference_id, at(3600 + 600)),
            Lookup::Refused(Refusal::Expired)
        );
        assert!(matches!(
            f.d.conference_id_status(m1.conference_id, at(4200)).await.unwrap(),
            IdState::Expired { at: t, .. } if t == from_unix_ms(T0 + 4_200_000)
        ));
        assert_eq!(
            f.d.lookup(m2.conference_id, at(10_000_000)),
            active("amos", &m2.id)
        );
        assert!(matches!(
            f.d.create_meeting(NewMeeting {
                organizer: "beth".into(),
                expires_at: None
            })
            .await,
            Err(DirectoryError::WrongMode(_, IdMode::Static))
        ));
        assert!(matches!(
            f.d.reset_conference_id("amos".into()).await,
            Err(DirectoryError::WrongMode(_, IdMode::Dynamic))
        ));
        let past = f.now() - Duration::from_secs(601);
        assert!(matches!(
            f.d.create_meeting(NewMeeting {
                organizer: "amos".into(),
                expires_at: Some(past)
            })
            .await,
            Err(DirectoryError::Invalid {
                field: "expires_at",
                ..
            })
        ));
        assert!(matches!(
            f.d.create_meeting(NewMeeting {
                organizer: "zed".into(),
                expires_at: None
            })
            .await,
            Err(DirectoryError::NotFound {
                what: "organizer",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn expired_meetings_are_retired() {
        let f = Fixture::new(DirectorySettings {
            dynamic_grace: "10m".into(),
            ..DirectorySettings::default()
        });
        let mut n = new_org("amos");
        n.mode = Some(IdMode::Dynamic);
        f.d.create_organizer(n).await.unwrap();
        let soon =
            f.d.create_meeting(NewMeeting {
                organizer: "amos".into(),
                expires_at: Some(f.now() + Duration::from_secs(60)),
            })
            .await
            .unwrap();
        let open_ended =
            f.d.create_meeting(NewMeeting {
                organizer: "amos".into(),
                expires_at: None,
            })
            .await
            .unwrap();
        let before_grace = f.now() + Duration::from_secs(60 + 599);
        assert_eq!(f.d.retire_expired_meetings(before_grace).await.unwrap(), 0);
        let after_grace = f.now() + Duration::from_secs(60 + 600);
        assert_eq!(f.d.retire_expired_meetings(after_grace).await.unwrap(), 1);
        assert!(f.d.meeting(soon.id.clone()).await.is_err());
        assert_eq!(
            f.lookup(soon.conference_id),
            Lookup::Refused(Refusal::Reset)
        );
        assert_eq!(
            f.d.meeting(open_ended.id.clone()).await.unwrap(),
            open_ended
        );
    }

    #[tokio::test]
    async fn deletes_tombstone_ids() {
        let f = Fixture::new(DirectorySettings::default());
        let mut n = new_org("dyn");
        n.mode = Some(IdMode::Dynamic);
        f.d.create_organizer(n).await.unwrap();
        let m1 =
            f.d.create_meeting(NewMeeting {
                organizer: "dyn".into(),
                expires_at: None,
            })
            .await
            .unwrap();
        let m2 =
            f.d.create_meeting(NewMeeting {
                organizer: "dyn".into(),
                expires_at: None,
            })
            .await
            .unwrap();
        let amos = f.org("amos").await.conference_id.unwrap();
        f.org("beth").await;

        f.d.delete_meeting(m1.id.clone()).await.unwrap();
        assert_eq!(f.lookup(m1.conference_id), Lookup::Refused(Refusal::Reset));
        assert!(matches!(
            f.d.meeting(m1.id.clone()).await,
            Err(DirectoryError::NotFound {
                what: "meeting",
                ..
            })
        ));
        assert!(matches!(
            f.d.delete_meeting(m1.id.clone()).await,
            Err(DirectoryError::NotFound { .. })
        ));

        f.d.delete_organizer("dyn".into()).await.unwrap();
        assert_eq!(f.lookup(m2.conference_id), Lookup::Refused(Refusal::Reset));
        assert!(f.d.meeting(m2.id.clone()).await.is_err());
        f.d.delete_organizer("amos".into()).await.unwrap();
        assert_eq!(f.lookup(amos), Lookup::Refused(Refusal::Reset));
        assert!(matches!(
            f.d.organizer("amos".into()).await,
            Err(DirectoryError::NotFound { .. })
        ));
        for id in [amos, m1.conference_id, m2.conference_id] {
            assert!(matches!(
                f.d.set_conference_id("beth".into(), id).await,
                Err(DirectoryError::Quarantined(_))
            ));
        }
        // The organizer name is free again.
        f.org("amos").await;
    }

    #[tokio::test]
    async fn import_validates_first_and_survives_reopen() {
        let mut f = Fixture::new(DirectorySettings::default());
        let taken = f.org("amos").await.conference_id.unwrap();
        let batch = |n: usize| -> Vec<NewOrganizer> {
            (0..n).map(|i| new_org(&format!("imp{i:05}"))).collect()
        };
        let mut dup = batch(3);
        dup[2].id = "imp00000".into();
        assert!(matches!(
            f.d.import_organizers(dup).await,
            Err(DirectoryError::AlreadyExists { .. })
        ));
        let mut clash = batch(3);
        clash[1].conference_id = Some(taken);
        assert!(matches!(
            f.d.import_organizers(clash).await,
            Err(DirectoryError::InUse(_))
        ));
        let mut twice = batch(3);
        twice[0].conference_id = Some(cid("5555555"));
        twice[2].conference_id = Some(cid("5555555"));
        assert!(matches!(
            f.d.import_organizers(twice).await,
            Err(DirectoryError::InUse(_))
        ));
        // Nothing of the refused imports was written.
        assert_eq!(f.d.list_organizers(None, 100).await.unwrap().items.len(), 1);

        let n = 20_000; // more than one journal transaction
        assert_eq!(f.d.import_organizers(batch(n)).await.unwrap(), n);
        let ids: std::collections::HashSet<_> =
            f.d.list_organizers(None, n + 1)
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| o.conference_id.unwrap())
                .collect();
        assert_eq!(ids.len(), n + 1);
        f.reopen();
        assert_eq!(
            f.d.list_organizers(None, n + 10).await.unwrap().items.len(),
            n + 1
        );
        assert_eq!(f.lookup(taken), active("amos", "amos"));
    }

    #[tokio::test]
    async fn listing_pages_in_order() {
        let f = Fixture::new(DirectorySettings::default());
        for name in ["c", "a", "e", "b", "d"] {
            f.org(name).await;
        }
        let p1 = f.d.list_organizers(None, 2).await.unwrap();
        let names = |p: &Page<Organizer>| p.items.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
        assert_eq!(names(&p1), ["a", "b"]);
        let p2 = f.d.list_organizers(p1.next.clone(), 2).await.unwrap();
        assert_eq!(names(&p2), ["c", "d"]);
        let p3 = f.d.list_organizers(p2.next.clone(), 2).await.unwrap();
        assert_eq!(names(&p3), ["e"]);
        assert_eq!(p3.next, None);
        assert!(matches!(
            f.d.list_organizers(None, 0).await,
            Err(DirectoryError::Invalid { field: "limit", .. })
        ));
    }

    #[tokio::test]
    async fn status_of_unknown_and_malformed_ids() {
        let f = Fixture::new(DirectorySettings::default());
        assert_eq!(
            f.d.conference_id_status(cid("0000000"), f.now())
                .await
                .unwrap(),
            IdState::Unknown
        );
        assert_eq!(f.lookup(cid("0000000")), Lookup::Refused(Refusal::Unknown));
        assert!(matches!(
            f.d.conference_id_status(cid("00000000"), f.now()).await,
            Err(DirectoryError::InvalidId(_))
        ));
        assert_eq!(f.d.id_length(), 7);
    }

    /// Everything a directory holds, for comparing before and after a restart.
    async fn state(
        d: &EmbeddedDirectory,
        ids: &[ConferenceId],
        now: SystemTime,
    ) -> (Vec<Organizer>, Vec<Lookup>) {
        let orgs = d.list_organizers(None, 1_000_000).await.unwrap().items;
        (orgs, ids.iter().map(|&id| d.lookup(id, now)).collect())
    }

    #[tokio::test]
    async fn state_survives_reopen_and_compaction() {
        let mut f = Fixture::new(DirectorySettings {
            compact_journal_bytes: 4096,
            quarantine: "30d".into(),
            ..DirectorySettings::default()
        });
        let mut ids = Vec::new();
        for i in 0..200 {
            let o = f.org(&format!("org{i:03}")).await;
            ids.push(o.conference_id.unwrap());
            if i % 3 == 0 {
                ids.push(f.d.reset_conference_id(o.id.clone()).await.unwrap().current);
            }
            if i % 7 == 0 {
                f.d.delete_organizer(o.id.clone()).await.unwrap();
            }
        }
        let mut n = new_org("dyn");
        n.mode = Some(IdMode::Dynamic);
        f.d.create_organizer(n).await.unwrap();
        let m =
            f.d.create_meeting(NewMeeting {
                organizer: "dyn".into(),
                expires_at: Some(f.now() + Duration::from_secs(60)),
            })
            .await
            .unwrap();
        ids.push(m.conference_id);
        let before = state(&f.d, &ids, f.now()).await;
        let status_before = f.d.conference_id_status(ids[0], f.now()).await.unwrap();
        f.reopen();
        let report = f.d.recovery_report().clone();
        assert!(report.snapshot_generation.is_some(), "{report:?}");
        assert!(report.truncated.is_empty());
        assert_eq!(state(&f.d, &ids, f.now()).await, before);
        assert_eq!(
            f.d.conference_id_status(ids[0], f.now()).await.unwrap(),
            status_before
        );
        assert_eq!(f.d.meeting(m.id.clone()).await.unwrap(), m);
        // Only the newest generation is left on disk.
        let listing = list_dir(f.dir.path()).unwrap();
        assert_eq!(listing.snapshots.len(), 1);
        assert_eq!(listing.journals.len(), 1);
        // New IDs after the restart still avoid everything taken.
        let again = f.org("late").await.conference_id.unwrap();
        assert!(!ids.contains(&again));
    }

    fn journal_file(dir: &Path) -> PathBuf {
        let l = list_dir(dir).unwrap();
        journal_path(dir, *l.journals.last().unwrap())
    }

    #[tokio::test]
    async fn garbage_after_the_journal_is_cut_off_and_logged() {
        let mut f = Fixture::new(DirectorySettings::default());
        let a = f.org("amos").await;
        let path = journal_file(f.dir.path());
        let good_len = fs::metadata(&path).unwrap().len();
        f.d.close();
        let mut file = FsOpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"\x20\x00\x00\x00garbage that is no frame")
            .unwrap();
        drop(file);
        f.reopen();
        let r = f.d.recovery_report();
        assert_eq!(r.truncated.len(), 1);
        assert_eq!(r.truncated[0].kept, good_len);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(f.d.organizer("amos".into()).await.unwrap(), a);
        // And the journal keeps working after the cut.
        f.org("beth").await;
        f.reopen();
        assert!(f.d.recovery_report().truncated.is_empty());
        assert!(f.d.organizer("beth".into()).await.is_ok());
    }

    #[tokio::test]
    async fn torn_and_corrupt_records_are_never_loaded() {
        let mut f = Fixture::new(DirectorySettings::default());
        f.org("amos").await;
        let path = journal_file(f.dir.path());
        let after_first = fs::metadata(&path).unwrap().len();
        f.org("beth").await;
        let full = fs::read(&path).unwrap();
        f.d.close();

        // Torn: the second record cut short.
        fs::write(&path, &full[..full.len() - 3]).unwrap();
        f.reopen();
        assert_eq!(f.d.recovery_report().truncated[0].kept, after_first);
        assert!(f.d.organizer("amos".into()).await.is_ok());
        assert!(f.d.organizer("beth".into()).await.is_err());
        f.d.close();

        // Corrupt: one bit flipped inside the second record.
        let mut bad = full.clone();
        bad[after_first as usize + 20] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        f.reopen();
        assert_eq!(f.d.recovery_report().truncated.len(), 1);
        assert!(f.d.organizer("beth".into()).await.is_err());
        assert!(f.d.organizer("amos".into()).await.is_ok());
    }

    #[tokio::test]
    async fn other_id_length_is_refused_at_open() {
        let f = Fixture::new(DirectorySettings::default());
        f.org("amos").await;
        f.d.close();
        let nine = DirectorySettings {
            id_length: 9,
            ..DirectorySettings::default()
        };
        let r = EmbeddedDirectory::open(f.dir.path(), &nine);
        assert!(
            matches!(
                r,
                Err(OpenError::IdLength {
                    stored: 7,
                    configured: 9
                })
            ),
            "{r:?}"
        );
        let bad = DirectorySettings {
            id_length: 3,
            ..DirectorySettings::default()
        };
        assert!(matches!(
            EmbeddedDirectory::open(f.dir.path(), &bad),
            Err(OpenError::Settings(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_share_fsyncs_and_never_share_ids() {
        let f = Fixture::new(DirectorySettings {
            id_length: 5,
            ..DirectorySettings::default()
        });
        let mut tasks = Vec::new();
        for i in 0..64 {
            let d = f.d.clone();
            tasks.push(tokio::spawn(async move {
                let name = format!("org{i}");
                let o = d.create_organizer(new_org(&name)).await.unwrap();
                let mut ids = vec![o.conference_id.unwrap()];
                for _ in 0..5 {
                    ids.push(d.reset_conference_id(name.clone()).await.unwrap().current);
                }
                ids
            }));
        }
        let mut all = std::collections::HashSet::new();
        for t in tasks {
            for id in t.await.unwrap() {
                assert!(all.insert(id), "{id} handed out twice");
            }
        }
        assert_eq!(all.len(), 64 * 6);
    }

    /// Many readers look up while resets run. A reader first notes how many
    /// resets have been acknowledged, then looks up an old ID of each: by
    /// then each of those resets has resolved, so its old ID must already be
    /// refused everywhere.
    #[test]
    fn no_reader_sees_an_old_id_after_its_reset_resolved() {
        use std::sync::atomic::AtomicBool;
        use std::sync::RwLock;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let f = Fixture::new(DirectorySettings::default());
        let orgs = 8;
        for i in 0..orgs {
            rt.block_on(f.org(&format!("org{i}")));
        }
        // Acknowledged old IDs, append-only; the length is published with Release.
        let acked: Arc<RwLock<Vec<ConferenceId>>> = Arc::default();
        let acked_len = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(AtomicU64::new(0));
        let checks = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..3)
            .map(|r| {
                let (d, acked, acked_len, stop, violations, checks) = (
                    f.d.clone(),
                    acked.clone(),
                    acked_len.clone(),
                    stop.clone(),
                    violations.clone(),
                    checks.clone(),
                );
                std::thread::spawn(move || {
                    let mut k = r as usize;
                    let now = from_unix_ms(T0);
                    while !stop.load(Ordering::Acquire) {
                        let n = acked_len.load(Ordering::Acquire) as usize;
                        if n == 0 {
                            std::thread::yield_now();
                            continue;
                        }
                        k = k
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        // Mostly the freshest ones: those are the racy ones.
                        let pick = if k % 2 == 0 { n - 1 } else { (k >> 33) % n };
                        let id = acked.read().unwrap()[pick];
                        if matches!(d.lookup(id, now), Lookup::Active(_)) {
                            violations.fetch_add(1, Ordering::Relaxed);
                        }
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for round in 0..300 {
            let name = format!("org{}", round % orgs);
            let r = rt.block_on(f.d.reset_conference_id(name)).unwrap();
            let mut v = acked.write().unwrap();
            v.push(r.previous);
            acked_len.store(v.len() as u64, Ordering::Release);
        }
        stop.store(true, Ordering::Release);
        for r in readers {
            r.join().unwrap();
        }
        assert!(checks.load(Ordering::Relaxed) > 0);
        assert_eq!(violations.load(Ordering::Relaxed), 0);
    }
}

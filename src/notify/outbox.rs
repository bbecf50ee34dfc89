//! The durable outbox: one JSON file per notice, replaced atomically
//! (write temp file, fsync, rename, fsync directory) on every change, so a
//! crash leaves either the old or the new record, never half of one.
//!
//! One file per notice rather than an append journal because notices are
//! few (operator actions), each changes a handful of times, and finished
//! ones are pruned by deleting their file: no compaction needed.

use super::message::NewNotice;
use super::NotifyError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a notice stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// Waiting for its (next) delivery attempt.
    Pending,
    /// Accepted by the relay (250 after DATA).
    Delivered,
    /// Given up: a permanent SMTP rejection or too many attempts.
    Failed,
}

/// A notice and its delivery history, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Time-ordered identifier; also the file name.
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: SystemTime,
    pub status: NoticeStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// When the next attempt is due (pending notices only).
    pub next_attempt: Option<SystemTime>,
    /// When it was delivered or given up.
    pub finished_at: Option<SystemTime>,
}

/// Exponential backoff between delivery attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Delay after the `attempts`-th failed attempt: initial, 2×, 4×, … capped at max.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.initial
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// The outcome of one delivery attempt, as the outbox records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Worth retrying (connection refused, timeout, 4xx).
    Transient(String),
    /// Retrying cannot help (5xx on the recipient, malformed notice).
    Permanent(String),
}

/// Durable store of notices; cheap to share behind an `Arc`.
///
/// Methods block on file I/O (fsync): call them from a blocking context
/// (`spawn_blocking`), as [`super::Notifier`] does.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    keep_finished: usize,
    /// A std mutex: no `.await` happens while it is held.
    entries: Mutex<BTreeMap<String, Notice>>,
}

const SUFFIX: &str = ".json";
const TEMP_SUFFIX: &str = ".json.tmp";

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir` and loads every notice
    /// in it. Leftover temp files from an interrupted write are removed;
    /// an unreadable record is renamed to `*.corrupt` and skipped, so one
    /// bad file cannot keep the daemon from starting.
    pub fn open(dir: impl Into<PathBuf>, keep_finished: usize) -> Result<Self, NotifyError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let mut entries = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.ends_with(TEMP_SUFFIX) {
                fs::remove_file(&path)?;
                continue;
            }
            let Some(id) = name.strip_suffix(SUFFIX) else {
                continue;
            };
            match load(&path) {
                Ok(notice) if notice.id == id && valid_id(id) => {
                    entries.insert(notice.id.clone(), notice);
                }
                Ok(_) => quarantine(&path, "id does not match file name"),
                Err(reason) => quarantine(&path, &reason),
            }
        }
        Ok(Outbox {
            dir,
            keep_finished,
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Notice>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every change is a single insert/remove), so poisoning is ignored.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a new pending notice, due now; returns once it is durable.
    pub fn enqueue(&self, new: NewNotice, now: SystemTime) -> Result<String, NotifyError> {
        let notice = Notice {
            id: new_id(now),
            to: new.to,
            subject: new.subject,
            body: new.body,
            created_at: now,
            status: NoticeStatus::Pending,
            attempts: 0,
            last_error: None,
            next_attempt: Some(now),
            finished_at: None,
        };
        self.persist(&notice)?;
        let id = notice.id.clone();
        self.lock().insert(id.clone(), notice);
        Ok(id)
    }

    /// Pending notices due at `now`, oldest first.
    pub fn due(&self, now: SystemTime) -> Vec<Notice> {
        self.lock()
            .values()
            .filter(|n| {
                n.status == NoticeStatus::Pending && n.next_attempt.is_none_or(|t| t <= now)
            })
            .cloned()
            .collect()
    }

    /// The earliest time a pending notice is due, if any.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.lock()
            .values()
            .filter(|n| n.status == NoticeStatus::Pending)
            .map(|n| n.next_attempt.unwrap_or(UNIX_EPOCH))
            .min()
    }

    /// One notice by id.
    pub fn get(&self, id: &str) -> Option<Notice> {
        self.lock().get(id).cloned()
    }

    /// Up to `limit` notices, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Notice> {
        self.lock().values().rev().take(limit).cloned().collect()
    }

    /// Records the outcome of an attempt on notice `id` and schedules the
    /// next one (or finishes the notice). Durable before it returns.
    pub fn record(
        &self,
        id: &str,
        outcome: Attempt,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Option<Notice>, NotifyError> {
        let Some(mut notice) = self.get(id) else {
            return Ok(None);
        };
        notice.attempts = notice.attempts.saturating_add(1);
        match outcome {
            Attempt::Delivered => {
                notice.status = NoticeStatus::Delivered;
                notice.next_attempt = None;
                notice.finished_at = Some(now);
            }
            Attempt::Transient(err) if notice.attempts < policy.max_attempts => {
                notice.last_error = Some(err);
                notice.next_attempt = Some(now + policy.delay_after(notice.attempts));
            }
            Attempt::Transient(err) | Attempt::Permanent(err) => {
                notice.last_error = Some(err);
                notice.status = NoticeStatus::Failed;
                notice.next_attempt = None;
                notice.finished_at = Some(now);
            }
        }
        // Memory first: if the disk write fails, this process still will not
        // resend a delivered notice in a tight loop; after a restart the
        // older record may resend it once (delivery is at least once).
        self.lock().insert(notice.id.clone(), notice.clone());
        self.persist(&notice)?;
        if notice.status != NoticeStatus::Pending {
            self.prune()?;
        }
        Ok(Some(notice))
    }

    /// Drops the oldest finished notices beyond `keep_finished`.
    fn prune(&self) -> Result<(), NotifyError> {
        let doomed: Vec<String> = {
            let entries = self.lock();
            let finished: Vec<&String> = entries
                .iter()
                .filter(|(_, n)| n.status != NoticeStatus::Pending)
                .map(|(id, _)| id)
                .collect();
            let excess = finished.len().saturating_sub(self.keep_finished);
            finished.into_iter().take(excess).cloned().collect()
        };
        for id in doomed {
            match fs::remove_file(self.path(&id)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.lock().remove(&id);
        }
        Ok(())
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{SUFFIX}"))
    }

    /// Atomic replace: temp file, fsync, rename over, fsync the directory
    /// (so the rename itself survives a power cut).
    fn persist(&self, notice: &Notice) -> Result<(), NotifyError> {
        let json =
            serde_json::to_vec_pretty(notice).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = self.dir.join(format!("{}{TEMP_SUFFIX}", notice.id));
        {
            let mut options = OpenOptions::new();
            options.write(true).create(true).truncate(true);
            // Notices hold names and addresses: owner-only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.path(&notice.id))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

fn load(path: &Path) -> Result<Notice, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn quarantine(path: &Path, reason: &str) {
    tracing::warn!(file = %path.display(), reason, "unreadable outbox entry set aside");
    let mut target = path.as_os_str().to_owned();
    target.push(".corrupt");
    if let Err(e) = fs::rename(path, &target) {
        tracing::warn!(file = %path.display(), error = %e, "could not set outbox entry aside");
    }
}

/// `<unix millis, 13 digits>-<random>`: sorts by creation time, unique
/// without coordination.
fn new_id(now: SystemTime) -> String {
    let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{millis:013}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(to: &str) -> NewNotice {
        NewNotice {
            to: to.into(),
            subject: "Your conference ID".into(),
            body: "Hello".into(),
        }
    }

    const POLICY: RetryPolicy = RetryPolicy {
        initial: Duration::from_secs(30),
        max: Duration::from_secs(3600),
        max_attempts: 3,
    };

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(POLICY.delay_after(1), Duration::from_secs(30));
        assert_eq!(POLICY.delay_after(2), Duration::from_secs(60));
        assert_eq!(POLICY.delay_after(7), Duration::from_secs(1920));
        assert_eq!(POLICY.delay_after(8), Duration::from_secs(3600));
        assert_eq!(POLICY.delay_after(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn enqueue_is_durable_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_764_081_000);
        let id = {
            let outbox = Outbox::open(dir.path(), 10).unwrap();
            outbox.enqueue(notice("a@contoso.com"), now).unwrap()
        };
        let outbox = Outbox::open(dir.path(), 10).unwrap();
        let n = outbox.get(&id).unwrap();
        assert_eq!(n.status, NoticeStatus::Pending);
        assert_eq!(n.to, "a@contoso.com");
        assert_eq!(outbox.due(now).len(), 1);
        assert_eq!(outbox.next_due(), Some(now));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::metadata(dir.path().join(format!("{id}.json"))).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn transient_failures_back_off_then_give_up() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 10).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let id = outbox.enqueue(notice("a@contoso.com"), t0).unwrap();
        let n = outbox
            .record(&id, Attempt::Transient("refused".into()), t0, &POLICY)
            .unwrap()
            .unwrap();
        assert_eq!(n.status, NoticeStatus::Pending);
        assert_eq!(n.next_attempt, Some(t0 + Duration::from_secs(30)));
        assert!(outbox.due(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(outbox.due(t0 + Duration::from_secs(30)).len(), 1);
        outbox
            .record(&id, Attempt::Transient("refused".into()), t0, &POLICY)
            .unwrap();
        let n = outbox
            .record(&id, Attempt::Transient("timeout".into()), t0, &POLICY)
            .unwrap()
            .unwrap();
        assert_eq!(n.status, NoticeStatus::Failed);
        assert_eq!(n.attempts, 3);
        assert_eq!(n.last_error.as_deref(), Some("timeout"));
        assert!(outbox.next_due().is_none());
    }

    #[test]
    fn finished_notices_are_pruned_and_corrupt_files_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 1).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let a = outbox.enqueue(notice("a@contoso.com"), t0).unwrap();
        let b = outbox
            .enqueue(notice("b@contoso.com"), t0 + Duration::from_secs(1))
            .unwrap();
        outbox.record(&a, Attempt::Delivered, t0, &POLICY).unwrap();
        outbox
            .record(
                &b,
                Attempt::Permanent("550 no such user".into()),
                t0,
                &POLICY,
            )
            .unwrap();
        assert!(outbox.get(&a).is_none(), "oldest finished pruned");
        assert_eq!(outbox.get(&b).unwrap().status, NoticeStatus::Failed);
        fs::write(dir.path().join("junk.json"), b"{not json").unwrap();
        fs::write(dir.path().join("x.json.tmp"), b"half").unwrap();
        let reopened = Outbox::open(dir.path(), 1).unwrap();
        assert_eq!(reopened.recent(10).len(), 1);
        assert!(dir.path().join("junk.json.corrupt").exists());
        assert!(!dir.path().join("x.json.tmp").exists());
    }
}

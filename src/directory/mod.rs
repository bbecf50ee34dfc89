//! The conference-ID directory: which conference ID brings a caller into
//! which meeting, and which IDs must be refused (unknown, reset, expired).
//!
//! The call path only ever asks [`DirectoryLookup::lookup`]; operators
//! change the directory through the service layer (admin API / CLI).
//!
//! # Using it
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dialgate::directory::{DirectoryLookup, DirectorySettings, EmbeddedDirectory};
//! use dialgate::directory::service::{DirectoryService, NewOrganizer};
//! use std::sync::Arc;
//!
//! let settings = DirectorySettings::default();
//! let directory = EmbeddedDirectory::open(&settings.data_dir, &settings)?;
//! let admin: Arc<dyn DirectoryService> = directory.clone();
//! let call_path: Arc<dyn DirectoryLookup> = directory.clone();
//! let amos = admin
//!     .create_organizer(NewOrganizer { id: "amos.marble@contoso.com".into(), ..Default::default() })
//!     .await?;
//! let answer = call_path.lookup(amos.conference_id.unwrap(), std::time::SystemTime::now());
//! # let _ = answer;
//! directory.close(); // optional: acknowledged changes are durable already
//! # Ok(()) }
//! ```
//!
//! Layout: `index` (the lock-free lookup table), `journal` (on-disk
//! formats), `embedded` (the durable store and the service rules), `ids`
//! (unpredictable ID generation).

pub mod embedded;
mod ids;
mod index;
mod journal;
pub mod service;

pub use embedded::{
    Clock, CommitStats, EmbeddedDirectory, OpenError, OpenOptions, RecoveryReport, TruncatedTail,
};
pub use ids::{draw_uniform, generate_free, IdSource};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A validated conference ID: digits only, of the length configured for
/// the bridge (5 to 10 digits; leading zeros are significant).
///
/// Stored as the numeric value plus the length, so it is `Copy`, hashes
/// cheaply and needs no allocation on the call path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceId {
    value: u64,
    len: u8,
}

/// Shortest conference-ID length the gateway accepts in config.
pub const MIN_ID_LEN: usize = 5;
/// Longest conference-ID length the gateway accepts in config.
pub const MAX_ID_LEN: usize = 10;

/// Why a string is not a conference ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConferenceIdError {
    #[error("a conference ID has {expected} digits, this one has {actual}")]
    WrongLength { expected: usize, actual: usize },
    #[error("a conference ID is digits only (found {found:?})")]
    NotDigits { found: char },
    #[error("conference ID length {0} is outside {MIN_ID_LEN}..={MAX_ID_LEN}")]
    UnsupportedLength(usize),
}

impl ConferenceId {
    /// Parses `s` as an ID of exactly `len` digits.
    pub fn parse(s: &str, len: usize) -> Result<Self, ConferenceIdError> {
        if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&len) {
            return Err(ConferenceIdError::UnsupportedLength(len));
        }
        if let Some(found) = s.chars().find(|c| !c.is_ascii_digit()) {
            return Err(ConferenceIdError::NotDigits { found });
        }
        if s.len() != len {
            return Err(ConferenceIdError::WrongLength {
                expected: len,
                actual: s.len(),
            });
        }
        let value = s
            .bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        Ok(ConferenceId {
            value,
            len: len as u8,
        })
    }

    /// Builds an ID from digit values (0–9) as keyed in by a caller.
    /// Returns `None` when a value is not a decimal digit or the length is unsupported.
    pub fn from_digits(digits: &[u8]) -> Option<Self> {
        if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&digits.len()) {
            return None;
        }
        let mut value = 0u64;
        for &d in digits {
            if d > 9 {
                return None;
            }
            value = value * 10 + u64::from(d);
        }
        Some(ConferenceId {
            value,
            len: digits.len() as u8,
        })
    }

    /// Builds an ID from its numeric value and length; `None` if it does not fit.
    pub fn from_value(value: u64, len: usize) -> Option<Self> {
        if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&len) || value >= 10u64.pow(len as u32) {
            return None;
        }
        Some(ConferenceId {
            value,
            len: len as u8,
        })
    }

    /// The numeric value (leading zeros are carried by [`ConferenceId::len`]).
    pub fn value(self) -> u64 {
        self.value
    }

    /// Number of digits.
    pub fn len(self) -> usize {
        usize::from(self.len)
    }

    /// Never true: an ID has at least [`MIN_ID_LEN`] digits.
    pub fn is_empty(self) -> bool {
        false
    }
}

impl std::fmt::Display for ConferenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:0width$}", self.value, width = usize::from(self.len))
    }
}

/// Serialised as its digit string (leading zeros kept).
impl serde::Serialize for ConferenceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Deserialised from a digit string; the length is taken from the string.
impl<'de> serde::Deserialize<'de> for ConferenceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ConferenceId::parse(&s, s.len()).map_err(serde::de::Error::custom)
    }
}

/// Where an active conference ID routes a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The organizer who owns the ID (e.g. `amos.marble@contoso.com`).
    pub organizer: Arc<str>,
    /// The meeting to join: the organizer's static meeting or a scheduled one.
    pub meeting: Arc<str>,
}

/// Why a conference ID does not route anywhere. Callers hear the same
/// prompt for all of them; the reason goes to logs and metrics only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Never issued. (IDs of deleted organizers and meetings are
    /// tombstoned and answer [`Refusal::Reset`].)
    Unknown,
    /// Replaced by a reset (tombstoned).
    Reset,
    /// A dynamic ID past its expiry.
    Expired,
}

/// The answer to a lookup on the call path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Active(Route),
    Refused(Refusal),
}

/// The call path's view of the directory. Implementations must answer
/// without blocking and without taking a lock a writer could hold.
pub trait DirectoryLookup: Send + Sync + 'static {
    /// Looks `id` up as of wall-clock time `now` (expiry is wall-clock based).
    fn lookup(&self, id: ConferenceId, now: std::time::SystemTime) -> Lookup;
}

/// Settings of the `[directory]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectorySettings {
    /// Digits in a conference ID (`MIN_ID_LEN..=MAX_ID_LEN`). Default 7.
    pub id_length: usize,
    /// ID mode of new organizers when the request does not say. Default `static`.
    pub default_mode: service::IdMode,
    /// Where the embedded store keeps its journal and snapshots. Default `data/directory`.
    pub data_dir: PathBuf,
    /// How long a tombstoned ID (reset or deleted) stays out of circulation:
    /// a duration such as `"90d"`, or `"forever"` (the default: never reissued).
    pub quarantine: String,
    /// How long a dynamic meeting's ID keeps working after the meeting's end. Default `"1h"`.
    pub dynamic_grace: String,
    /// Journal size in bytes after which a snapshot is written and the journal
    /// starts afresh. Default 64 MiB.
    pub compact_journal_bytes: u64,
}

/// Default of `directory.id_length`.
pub const DEFAULT_ID_LEN: usize = 7;
/// Default of `directory.compact_journal_bytes`.
pub const DEFAULT_COMPACT_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest accepted `directory.compact_journal_bytes`.
pub const MIN_COMPACT_JOURNAL_BYTES: u64 = 4096;

impl Default for DirectorySettings {
    fn default() -> Self {
        DirectorySettings {
            id_length: DEFAULT_ID_LEN,
            default_mode: service::IdMode::Static,
            data_dir: PathBuf::from("data/directory"),
            quarantine: "forever".to_owned(),
            dynamic_grace: "1h".to_owned(),
            compact_journal_bytes: DEFAULT_COMPACT_JOURNAL_BYTES,
        }
    }
}

impl DirectorySettings {
    /// Every problem with these settings, each naming its key (`directory.<key>`).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&self.id_length) {
            problems.push(format!(
                "directory.id_length: {} is outside {MIN_ID_LEN}..={MAX_ID_LEN}",
                self.id_length
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("directory.data_dir: must not be empty".to_owned());
        }
        if let Err(e) = self.quarantine_period() {
            problems.push(format!("directory.quarantine: {e}"));
        }
        if let Err(e) = self.dynamic_grace_period() {
            problems.push(format!("directory.dynamic_grace: {e}"));
        }
        if self.compact_journal_bytes < MIN_COMPACT_JOURNAL_BYTES {
            problems.push(format!(
                "directory.compact_journal_bytes: {} is below the minimum {MIN_COMPACT_JOURNAL_BYTES}",
                self.compact_journal_bytes
            ));
        }
        problems
    }

    /// The quarantine as a duration; `None` means forever.
    pub fn quarantine_period(&self) -> Result<Option<Duration>, String> {
        if self.quarantine.trim() == "forever" {
            Ok(None)
        } else {
            parse_duration(&self.quarantine).map(Some)
        }
    }

    /// The grace period of dynamic IDs after the meeting's end.
    pub fn dynamic_grace_period(&self) -> Result<Duration, String> {
        parse_duration(&self.dynamic_grace)
    }
}

/// Parses `"500ms"`, `"10s"`, `"15m"`, `"1h"`, `"30d"` (one integer and one unit).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!("{s:?} does not start with a number"));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{number:?} is too large"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m, h or d)")),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_significant() {
        let a = ConferenceId::parse("0012345", 7).unwrap();
        let b = ConferenceId::parse("012345", 6).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string(), "0012345");
        assert_eq!(ConferenceId::from_digits(&[0, 0, 1, 2, 3, 4, 5]), Some(a));
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(matches!(
            ConferenceId::parse("12a4567", 7),
            Err(ConferenceIdError::NotDigits { found: 'a' })
        ));
        assert!(matches!(
            ConferenceId::parse("123456", 7),
            Err(ConferenceIdError::WrongLength { .. })
        ));
        assert!(ConferenceId::parse("1234", 4).is_err());
        assert!(ConferenceId::from_value(10_000_000, 7).is_none());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
        for bad in [
            "",
            "10",
            "s",
            "1.5h",
            "-1s",
            "10w",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn settings_defaults_and_validation() {
        let d = DirectorySettings::default();
        assert!(d.validate().is_empty());
        assert_eq!(d.id_length, 7);
        assert_eq!(d.quarantine_period(), Ok(None));
        assert_eq!(d.dynamic_grace_period(), Ok(Duration::from_secs(3600)));
        let bad = DirectorySettings {
            id_length: 4,
            quarantine: "soon".into(),
            dynamic_grace: "1x".into(),
            compact_journal_bytes: 1,
            data_dir: PathBuf::new(),
            ..DirectorySettings::default()
        };
        let problems = bad.validate();
        assert_eq!(problems.len(), 5, "{problems:?}");
        for key in [
            "id_length",
            "quarantine",
            "dynamic_grace",
            "compact_journal_bytes",
            "data_dir",
        ] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("directory.{key}:"))),
                "{key} not named in {problems:?}"
            );
        }
    }

    #[test]
    fn settings_from_toml() {
        let s: DirectorySettings =
            toml::from_str("id_length = 9\ndefault_mode = \"dynamic\"\nquarantine = \"30d\"")
                .unwrap();
        assert_eq!(s.id_length, 9);
        assert_eq!(s.default_mode, service::IdMode::Dynamic);
        assert_eq!(
            s.quarantine_period(),
            Ok(Some(Duration::from_secs(30 * 86400)))
        );
        assert!(toml::from_str::<DirectorySettings>("bogus = 1").is_err());
    }
}

//! The conference-ID directory: which conference ID brings a caller into
//! which meeting, and which IDs must be refused (unknown, reset, expired).
//!
//! The call path only ever asks [`DirectoryLookup::lookup`]; operators
//! change the directory through the service layer (admin API / CLI).

pub mod service;

use std::sync::Arc;

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
    /// Never issued (or deleted).
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
}

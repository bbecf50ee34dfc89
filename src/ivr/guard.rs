//! Guessing defence: callers who key many wrong conference IDs are refused
//! for a while, and a burst of failures across all callers raises an alarm.
//!
//! Failures are counted per calling identity (the P-Asserted-Identity user,
//! else the From user, as derived by the SIP shell; all anonymous callers
//! share one group) and per source address, but only for addresses that are
//! not configured trunks: a trunk carries many honest callers, so its address
//! is never locked out.
//!
//! Memory is bounded: identities are stored as keyed 64-bit hashes (an
//! attacker's long From users cost nothing), each table holds at most
//! `max_tracked` keys, and each key at most `max_failures` timestamps.
//! When a table is full, stale keys are purged first, then the least
//! recently active unlocked key is evicted.
//!
//! Sans-IO: every call takes `now`; the guard never reads the clock.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Settings of the guessing defence (`[ivr.guard]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSettings {
    /// Master switch; when false nobody is ever refused early and no alarm fires.
    pub enabled: bool,
    /// Failed entries within `window` that lock out a calling identity.
    pub identity_max_failures: u32,
    /// Failed entries within `window` that lock out a (non-trunk) source address.
    pub address_max_failures: u32,
    /// Length of the sliding window failures are counted over.
    #[serde(with = "super::duration::serde")]
    pub window: Duration,
    /// How long a locked-out identity or address is refused.
    #[serde(with = "super::duration::serde")]
    pub cooldown: Duration,
    /// Most identities (and, separately, addresses) tracked at once.
    pub max_tracked: usize,
    /// Failed lookups per minute, across all callers, that raise the global alarm.
    pub global_alarm_per_minute: u32,
    /// Least time between two global alarms.
    #[serde(with = "super::duration::serde")]
    pub alarm_interval: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            enabled: true,
            identity_max_failures: 10,
            address_max_failures: 10,
            window: Duration::from_secs(10 * 60),
            cooldown: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
            global_alarm_per_minute: 60,
            alarm_interval: Duration::from_secs(5 * 60),
        }
    }
}

impl GuardSettings {
    /// Problems with these settings, each naming its key under `prefix`
    /// (e.g. `"ivr.guard"`). Empty when the settings are usable.
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, value) in [
            ("identity_max_failures", self.identity_max_failures),
            ("address_max_failures", self.address_max_failures),
        ] {
            if !(1..=1000).contains(&value) {
                errors.push(format!("{prefix}.{key} must be 1..=1000 (got {value})"));
            }
        }
        if self.window.is_zero() || self.window > Duration::from_secs(24 * 3600) {
            errors.push(format!(
                "{prefix}.window must be more than 0 and at most 24h"
            ));
        }
        if self.cooldown.is_zero() || self.cooldown > Duration::from_secs(7 * 24 * 3600) {
            errors.push(format!(
                "{prefix}.cooldown must be more than 0 and at most 7 days"
            ));
        }
        if !(1..=10_000_000).contains(&self.max_tracked) {
            errors.push(format!(
                "{prefix}.max_tracked must be 1..=10000000 (got {})",
                self.max_tracked
            ));
        }
        if self.global_alarm_per_minute == 0 {
            errors.push(format!(
                "{prefix}.global_alarm_per_minute must be at least 1"
            ));
        }
        if self.alarm_interval.is_zero() {
            errors.push(format!("{prefix}.alarm_interval must be more than 0"));
        }
        errors
    }
}

/// Who is calling, as far as the guessing defence is concerned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallerIdentity<'a> {
    /// The user part of P-Asserted-Identity, else of From.
    User(&'a str),
    /// No usable identity: all such callers count as one.
    Anonymous,
}

impl<'a> CallerIdentity<'a> {
    /// Derives the identity from the P-Asserted-Identity and From user parts.
    /// Missing, empty and `anonymous` users (any case, RFC 3323 §4.1.1.3)
    /// make the caller anonymous.
    pub fn derive(asserted_user: Option<&'a str>, from_user: Option<&'a str>) -> Self {
        let usable = |u: Option<&'a str>| {
            u.map(str::trim)
                .filter(|u| !u.is_empty() && !u.eq_ignore_ascii_case("anonymous"))
        };
        match usable(asserted_user).or_else(|| usable(from_user)) {
            Some(user) => CallerIdentity::User(user),
            None => CallerIdentity::Anonymous,
        }
    }
}

/// Why a call is refused before the attendant asks for an ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardRefusal {
    /// The calling identity (or the anonymous group) is locked out.
    IdentityLocked,
    /// The (non-trunk) source address is locked out.
    AddressLocked,
}

/// The answer of [`GuessingGuard::check_call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallVerdict {
    /// Let the caller in to the attendant.
    Admit,
    /// Refuse early (play the too-many-attempts prompt, hang up) until `until`.
    Refuse {
        reason: GuardRefusal,
        until: Instant,
    },
}

/// Raised when failed lookups across all callers reach
/// [`GuardSettings::global_alarm_per_minute`]; at most once per
/// [`GuardSettings::alarm_interval`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalAlarm {
    /// Failures counted in the last minute.
    pub failures_last_minute: u32,
    /// The configured alarm level.
    pub threshold: u32,
}

/// What [`GuessingGuard::record_failure`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct FailureRecorded {
    /// The identity was locked out by this failure.
    pub identity_locked: bool,
    /// The source address was locked out by this failure.
    pub address_locked: bool,
    /// The global failure rate crossed its alarm level.
    pub alarm: Option<GlobalAlarm>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IdentityKey {
    User(u64),
    Anonymous,
}

#[derive(Debug, Default)]
struct Record {
    /// Failure times within the window, oldest first, at most `max_failures`.
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    last_activity: Option<Instant>,
}

impl Record {
    fn locked_at(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|&until| now < until)
    }

    /// True when the record carries no information any more.
    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        self.locked_at(now).is_none()
            && self
                .failures
                .back()
                .is_none_or(|&last| now.saturating_duration_since(last) >= window)
    }
}

/// One table of failure records (identities or addresses).
#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Record>,
    max_failures: u32,
}

impl<K: Copy + Eq + Hash> Table<K> {
    fn new(max_failures: u32) -> Self {
        Table {
            records: HashMap::new(),
            max_failures,
        }
    }

    fn locked(&self, key: &K, now: Instant) -> Option<Instant> {
        self.records.get(key).and_then(|r| r.locked_at(now))
    }

    /// Counts a failure; returns true when it locks the key.
    fn record(&mut self, key: K, now: Instant, settings: &GuardSettings) -> bool {
        if !self.records.contains_key(&key) && self.records.len() >= settings.max_tracked {
            self.make_room(now, settings);
        }
        let record = self.records.entry(key).or_default();
        record.last_activity = Some(now);
        if record.locked_at(now).is_some() {
            // Still failing while locked (a call admitted before the lock):
            // the cool-down starts again.
            record.locked_until = Some(now + settings.cooldown);
            return false;
        }
        record.locked_until = None;
        while record
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= settings.window)
        {
            record.failures.pop_front();
        }
        record.failures.push_back(now);
        if record.failures.len() >= self.max_failures as usize {
            record.failures.clear();
            record.locked_until = Some(now + settings.cooldown);
            return true;
        }
        false
    }

    /// Frees at least one slot: drops stale records, else evicts the least
    /// recently active unlocked record, else the lock that ends first.
    fn make_room(&mut self, now: Instant, settings: &GuardSettings) {
        self.purge(now, settings.window);
        if self.records.len() < settings.max_tracked {
            return;
        }
        let victim = self
            .records
            .iter()
            .filter(|(_, r)| r.locked_at(now).is_none())
            .min_by_key(|(_, r)| r.last_activity)
            .or_else(|| self.records.iter().min_by_key(|(_, r)| r.locked_until))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.records.remove(&k);
        }
    }

    fn purge(&mut self, now: Instant, window: Duration) {
        self.records.retain(|_, r| !r.is_stale(now, window));
    }
}

/// Counts failed lookups across all callers over the last minute in
/// one-second buckets.
#[derive(Debug)]
struct GlobalRate {
    epoch: Option<Instant>,
    /// (second number since epoch, failures in that second).
    buckets: [(u64, u32); 60],
    last_alarm: Option<Instant>,
}

impl GlobalRate {
    fn new() -> Self {
        GlobalRate {
            epoch: None,
            buckets: [(u64::MAX, 0); 60],
            last_alarm: None,
        }
    }

    fn second(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_secs()
    }

    fn record(&mut self, now: Instant) {
        let sec = self.second(now);
        let slot = &mut self.buckets[(sec % 60) as usize];
        if slot.0 == sec {
            slot.1 = slot.1.saturating_add(1);
        } else {
            *slot = (sec, 1);
        }
    }

    fn last_minute(&mut self, now: Instant) -> u32 {
        let sec = self.second(now);
        self.buckets
            .iter()
            .filter(|(s, _)| *s != u64::MAX && *s <= sec && sec - *s < 60)
            .fold(0u32, |acc, (_, n)| acc.saturating_add(*n))
    }
}

/// The guessing defence. One per gateway, shared by all calls (the shell
/// wraps it in a mutex; every operation is short and never blocks).
#[derive(Debug)]
pub struct GuessingGuard {
    settings: GuardSettings,
    hasher: std::collections::hash_map::RandomState,
    identities: Table<IdentityKey>,
    addresses: Table<IpAddr>,
    global: GlobalRate,
}

impl GuessingGuard {
    /// A guard with no history.
    pub fn new(settings: GuardSettings) -> Self {
        GuessingGuard {
            identities: Table::new(settings.identity_max_failures.max(1)),
            addresses: Table::new(settings.address_max_failures.max(1)),
            settings,
            // A per-process random key: an attacker cannot aim many From
            // users at one hash value without knowing it.
            hasher: std::collections::hash_map::RandomState::new(),
            global: GlobalRate::new(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    fn identity_key(&self, identity: &CallerIdentity<'_>) -> IdentityKey {
        match identity {
            CallerIdentity::User(user) => IdentityKey::User(self.hasher.hash_one(user)),
            CallerIdentity::Anonymous => IdentityKey::Anonymous,
        }
    }

    /// Decides whether a new call may reach the attendant.
    /// `is_trunk`: the source address is a configured trunk, whose address
    /// is never refused (its callers are still judged by identity).
    pub fn check_call(
        &self,
        identity: &CallerIdentity<'_>,
        source: IpAddr,
        is_trunk: bool,
        now: Instant,
    ) -> CallVerdict {
        if !self.settings.enabled {
            return CallVerdict::Admit;
        }
        if let Some(until) = self.identities.locked(&self.identity_key(identity), now) {
            return CallVerdict::Refuse {
                reason: GuardRefusal::IdentityLocked,
                until,
            };
        }
        if !is_trunk {
            if let Some(until) = self.addresses.locked(&source, now) {
                return CallVerdict::Refuse {
                    reason: GuardRefusal::AddressLocked,
                    until,
                };
            }
        }
        CallVerdict::Admit
    }

    /// Counts one failed entry (a refused or malformed conference ID; see
    /// [`super::flow::EntryFailure::is_guess`]) by this caller.
    pub fn record_failure(
        &mut self,
        identity: &CallerIdentity<'_>,
        source: IpAddr,
        is_trunk: bool,
        now: Instant,
    ) -> FailureRecorded {
        let mut out = FailureRecorded::default();
        if !self.settings.enabled {
            return out;
        }
        let key = self.identity_key(identity);
        out.identity_locked = self.identities.record(key, now, &self.settings);
        if !is_trunk {
            out.address_locked = self.addresses.record(source, now, &self.settings);
        }
        self.global.record(now);
        let rate = self.global.last_minute(now);
        let due = self
            .global
            .last_alarm
            .is_none_or(|last| now.saturating_duration_since(last) >= self.settings.alarm_interval);
        if rate >= self.settings.global_alarm_per_minute && due {
            self.global.last_alarm = Some(now);
            out.alarm = Some(GlobalAlarm {
                failures_last_minute: rate,
                threshold: self.settings.global_alarm_per_minute,
            });
        }
        out
    }

    /// Failed lookups across all callers in the minute before `now` (for metrics).
    pub fn failures_last_minute(&mut self, now: Instant) -> u32 {
        self.global.last_minute(now)
    }

    /// Drops records that carry no information any more (no failure within
    /// the window, no running lock). Call now and then (e.g. every minute);
    /// the tables also purge themselves when full.
    pub fn purge(&mut self, now: Instant) {
        self.identities.purge(now, self.settings.window);
        self.addresses.purge(now, self.settings.window);
    }

    /// Identities currently tracked.
    pub fn tracked_identities(&self) -> usize {
        self.identities.records.len()
    }

    /// Source addresses currently tracked.
    pub fn tracked_addresses(&self) -> usize {
        self.addresses.records.len()
    }
}

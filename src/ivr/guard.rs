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
//! recently active eighth of the unlocked keys is evicted. (A caller who
//! rotates From users over a trunk defeats per-identity counting anyway;
//! the global alarm is the defence against that.)
//!
//! Sans-IO: every call takes `now`; the guard never reads the clock.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::deadline;

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
            record.locked_until = Some(deadline(now, settings.cooldown));
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
            record.locked_until = Some(deadline(now, settings.cooldown));
            return true;
        }
        false
    }

    /// Frees at least one slot: drops stale records, else evicts the least
    /// recently active unlocked record, else the lock that ends first.
    /// Frees room for new keys: drops stale records; if none were stale,
    /// evicts the least recently active eighth of the table (locked
    /// records last), so that under a flood the O(n) scan runs once per
    /// `max_tracked / 8` new keys instead of once per key.
    fn make_room(&mut self, now: Instant, settings: &GuardSettings) {
        self.purge(now, settings.window);
        if self.records.len() < settings.max_tracked {
            return;
        }
        let batch = (settings.max_tracked / 8).max(1);
        // Sort key: unlocked before locked, then oldest activity first
        // (locked ones: the lock that ends first).
        let mut order: Vec<((bool, Option<Instant>), K)> = self
            .records
            .iter()
            .map(|(k, r)| match r.locked_at(now) {
                None => ((false, r.last_activity), *k),
                Some(until) => ((true, Some(until)), *k),
            })
            .collect();
        if batch < order.len() {
            order.select_nth_unstable_by_key(batch, |(rank, _)| *rank);
            order.truncate(batch);
        }
        for (_, k) in order {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const MIN: Duration = Duration::from_secs(60);
    const S: Duration = Duration::from_secs(1);

    const PHONE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    const TRUNK: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));

    fn guard() -> GuessingGuard {
        GuessingGuard::new(GuardSettings::default())
    }

    fn alice() -> CallerIdentity<'static> {
        CallerIdentity::User("+4930123456")
    }

    fn fail_n(
        g: &mut GuessingGuard,
        who: &CallerIdentity<'_>,
        src: IpAddr,
        trunk: bool,
        n: u32,
        start: Instant,
        gap: Duration,
    ) -> Vec<FailureRecorded> {
        (0..n)
            .map(|i| g.record_failure(who, src, trunk, start + gap * i))
            .collect()
    }

    #[test]
    fn identity_locks_at_the_threshold() {
        let t0 = Instant::now();
        let mut g = guard();
        let out = fail_n(&mut g, &alice(), TRUNK, true, 9, t0, S);
        assert!(out.iter().all(|o| !o.identity_locked && !o.address_locked));
        assert_eq!(
            g.check_call(&alice(), TRUNK, true, t0 + 9 * S),
            CallVerdict::Admit
        );
        let tenth = g.record_failure(&alice(), TRUNK, true, t0 + 9 * S);
        assert!(tenth.identity_locked);
        assert!(!tenth.address_locked, "trunk address is never locked");
        assert_eq!(
            g.check_call(&alice(), TRUNK, true, t0 + 10 * S),
            CallVerdict::Refuse {
                reason: GuardRefusal::IdentityLocked,
                until: t0 + 9 * S + 15 * MIN
            }
        );
        // Another caller over the same trunk is not affected.
        let bob = CallerIdentity::User("+4930999999");
        assert_eq!(
            g.check_call(&bob, TRUNK, true, t0 + 10 * S),
            CallVerdict::Admit
        );
    }

    #[test]
    fn sliding_window_forgets_old_failures() {
        let t0 = Instant::now();
        let mut g = guard();
        // Nine failures, then a pause longer than the window.
        fail_n(&mut g, &alice(), TRUNK, true, 9, t0, S);
        let later = t0 + 8 * S + 10 * MIN;
        let out = g.record_failure(&alice(), TRUNK, true, later);
        assert!(!out.identity_locked);
        // Failures spread one per 70 s: at most nine fall inside ten minutes.
        let mut g = guard();
        let out = fail_n(&mut g, &alice(), TRUNK, true, 30, t0, 70 * S);
        assert!(out.iter().all(|o| !o.identity_locked));
        // One per 60 s: the tenth lands 9 minutes after the first.
        let mut g = guard();
        let out = fail_n(&mut g, &alice(), TRUNK, true, 10, t0, MIN);
        assert!(out[9].identity_locked);
    }

    #[test]
    fn cooldown_expires() {
        let t0 = Instant::now();
        let mut g = guard();
        fail_n(&mut g, &alice(), PHONE, false, 10, t0, S);
        let locked_at = t0 + 9 * S;
        assert!(matches!(
            g.check_call(&alice(), PHONE, false, locked_at + 15 * MIN - S),
            CallVerdict::Refuse { .. }
        ));
        assert_eq!(
            g.check_call(&alice(), PHONE, false, locked_at + 15 * MIN),
            CallVerdict::Admit
        );
        // After the cool-down the count starts from zero.
        let after = locked_at + 15 * MIN;
        let out = fail_n(&mut g, &alice(), PHONE, false, 9, after, S);
        assert!(out.iter().all(|o| !o.identity_locked && !o.address_locked));
    }

    #[test]
    fn failing_while_locked_restarts_the_cooldown() {
        let t0 = Instant::now();
        let mut g = guard();
        fail_n(&mut g, &alice(), TRUNK, true, 10, t0, S);
        let t = t0 + 10 * MIN;
        let out = g.record_failure(&alice(), TRUNK, true, t);
        assert!(!out.identity_locked, "already locked: not a new lock");
        assert_eq!(
            g.check_call(&alice(), TRUNK, true, t + 14 * MIN),
            CallVerdict::Refuse {
                reason: GuardRefusal::IdentityLocked,
                until: t + 15 * MIN
            }
        );
    }

    #[test]
    fn address_locks_for_direct_callers() {
        let t0 = Instant::now();
        let mut g = guard();
        // Ten different identities from one non-trunk address.
        let users: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
        let mut locked = false;
        for (i, u) in users.iter().enumerate() {
            let out = g.record_failure(&CallerIdentity::User(u), PHONE, false, t0 + S * i as u32);
            locked |= out.address_locked;
            assert!(!out.identity_locked);
        }
        assert!(locked);
        let fresh = CallerIdentity::User("someone-new");
        assert_eq!(
            g.check_call(&fresh, PHONE, false, t0 + MIN),
            CallVerdict::Refuse {
                reason: GuardRefusal::AddressLocked,
                until: t0 + 9 * S + 15 * MIN
            }
        );
        // Another address is fine.
        let other = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            g.check_call(&fresh, other, false, t0 + MIN),
            CallVerdict::Admit
        );
    }

    #[test]
    fn trunk_address_is_never_locked() {
        let t0 = Instant::now();
        let mut g = guard();
        for i in 0..500u32 {
            let user = format!("guess{i}");
            let out = g.record_failure(&CallerIdentity::User(&user), TRUNK, true, t0 + S * i);
            assert!(!out.address_locked);
        }
        assert_eq!(g.tracked_addresses(), 0);
        let fresh = CallerIdentity::User("honest");
        assert_eq!(
            g.check_call(&fresh, TRUNK, true, t0 + 600 * S),
            CallVerdict::Admit
        );
        // Even if the same address once failed as a non-trunk source, a
        // call flagged as trunk is not refused by address.
        let mut g = guard();
        fail_n(&mut g, &CallerIdentity::Anonymous, TRUNK, false, 10, t0, S);
        assert!(matches!(
            g.check_call(&fresh, TRUNK, false, t0 + MIN),
            CallVerdict::Refuse {
                reason: GuardRefusal::AddressLocked,
                ..
            }
        ));
        assert_eq!(
            g.check_call(&fresh, TRUNK, true, t0 + MIN),
            CallVerdict::Admit
        );
    }

    #[test]
    fn anonymous_callers_are_one_group() {
        let t0 = Instant::now();
        let mut g = guard();
        for (i, (pai, from)) in [
            (None, None),
            (None, Some("anonymous")),
            (Some("Anonymous"), None),
            (Some(""), Some("  ")),
            (None, Some("ANONYMOUS")),
        ]
        .into_iter()
        .cycle()
        .take(10)
        .enumerate()
        {
            let who = CallerIdentity::derive(pai, from);
            assert_eq!(who, CallerIdentity::Anonymous);
            let _ = g.record_failure(&who, TRUNK, true, t0 + S * i as u32);
        }
        assert!(matches!(
            g.check_call(&CallerIdentity::Anonymous, TRUNK, true, t0 + MIN),
            CallVerdict::Refuse {
                reason: GuardRefusal::IdentityLocked,
                ..
            }
        ));
        assert_eq!(
            g.check_call(&alice(), TRUNK, true, t0 + MIN),
            CallVerdict::Admit
        );
    }

    #[test]
    fn identity_prefers_asserted_identity() {
        assert_eq!(
            CallerIdentity::derive(Some("+4930111"), Some("spoofed")),
            CallerIdentity::User("+4930111")
        );
        assert_eq!(
            CallerIdentity::derive(Some("anonymous"), Some("+4930222")),
            CallerIdentity::User("+4930222")
        );
        assert_eq!(
            CallerIdentity::derive(None, Some(" 100 ")),
            CallerIdentity::User("100")
        );
    }

    #[test]
    fn global_alarm_fires_once_per_interval() {
        let t0 = Instant::now();
        let settings = GuardSettings {
            global_alarm_per_minute: 20,
            alarm_interval: 5 * MIN,
            ..GuardSettings::default()
        };
        let mut g = GuessingGuard::new(settings);
        let mut alarms = Vec::new();
        // 200 failures, one every 500 ms, from many identities over a trunk.
        for i in 0..200u32 {
            let user = format!("u{i}");
            let t = t0 + Duration::from_millis(500) * i;
            if let Some(a) = g
                .record_failure(&CallerIdentity::User(&user), TRUNK, true, t)
                .alarm
            {
                alarms.push((t - t0, a));
            }
        }
        // The 20th failure (at 9.5 s) crosses the level; the next alarm
        // may come 5 minutes later at the earliest, after the burst ended.
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].0, Duration::from_millis(9_500));
        assert_eq!(
            alarms[0].1,
            GlobalAlarm {
                failures_last_minute: 20,
                threshold: 20
            }
        );
        // One-second buckets: at 100 s the minute covers seconds 41..=100,
        // two failures in each of 41..=99.
        assert_eq!(g.failures_last_minute(t0 + 100 * S), 118);
        // A second burst after the interval raises a second alarm.
        let t1 = t0 + 10 * MIN;
        assert_eq!(g.failures_last_minute(t1), 0);
        let mut second = None;
        for i in 0..20u32 {
            let user = format!("v{i}");
            second = second.or(g
                .record_failure(&CallerIdentity::User(&user), TRUNK, true, t1 + S * i)
                .alarm);
        }
        assert_eq!(second.map(|a| a.failures_last_minute), Some(20));
    }

    #[test]
    fn slow_failures_never_alarm() {
        let t0 = Instant::now();
        let settings = GuardSettings {
            global_alarm_per_minute: 10,
            ..GuardSettings::default()
        };
        let mut g = GuessingGuard::new(settings);
        for i in 0..1000u32 {
            let user = format!("u{i}");
            let out = g.record_failure(&CallerIdentity::User(&user), TRUNK, true, t0 + 7 * S * i);
            assert_eq!(out.alarm, None, "at failure {i}");
        }
    }

    #[test]
    fn memory_is_capped() {
        let t0 = Instant::now();
        let settings = GuardSettings {
            max_tracked: 100,
            ..GuardSettings::default()
        };
        let mut g = GuessingGuard::new(settings);
        // A flood of random From users over a trunk and from many addresses.
        for i in 0..10_000u32 {
            let user = format!("random-{i}-{}", "x".repeat(200));
            let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let _ = g.record_failure(&CallerIdentity::User(&user), src, false, t0 + S / 100 * i);
            assert!(g.tracked_identities() <= 100);
            assert!(g.tracked_addresses() <= 100);
        }
        // Full tables evict an eighth at a time.
        assert!(g.tracked_identities() > 100 - 100 / 8);
    }

    #[test]
    fn eviction_spares_locked_callers() {
        let t0 = Instant::now();
        let settings = GuardSettings {
            max_tracked: 10,
            ..GuardSettings::default()
        };
        let mut g = GuessingGuard::new(settings);
        fail_n(&mut g, &alice(), TRUNK, true, 10, t0, S);
        // Flood with fresh identities, each failing once.
        for i in 0..1000u32 {
            let user = format!("flood{i}");
            let _ = g.record_failure(
                &CallerIdentity::User(&user),
                TRUNK,
                true,
                t0 + MIN + S * i / 10,
            );
        }
        assert!(matches!(
            g.check_call(&alice(), TRUNK, true, t0 + 3 * MIN),
            CallVerdict::Refuse { .. }
        ));
    }

    #[test]
    fn purge_drops_stale_records() {
        let t0 = Instant::now();
        let mut g = guard();
        let _ = g.record_failure(&CallerIdentity::User("a"), PHONE, false, t0);
        fail_n(&mut g, &CallerIdentity::User("b"), TRUNK, true, 10, t0, S);
        assert_eq!(g.tracked_identities(), 2);
        g.purge(t0 + 10 * MIN);
        // "a" has nothing in the window any more; "b" is still locked.
        assert_eq!(g.tracked_identities(), 1);
        assert_eq!(g.tracked_addresses(), 0);
        g.purge(t0 + 9 * S + 15 * MIN);
        assert_eq!(g.tracked_identities(), 0);
    }

    #[test]
    fn disabled_guard_does_nothing() {
        let t0 = Instant::now();
        let mut g = GuessingGuard::new(GuardSettings {
            enabled: false,
            global_alarm_per_minute: 1,
            ..GuardSettings::default()
        });
        let out = fail_n(&mut g, &alice(), PHONE, false, 100, t0, Duration::ZERO);
        assert!(out.iter().all(|o| *o == FailureRecorded::default()));
        assert_eq!(g.check_call(&alice(), PHONE, false, t0), CallVerdict::Admit);
        assert_eq!(g.tracked_identities(), 0);
    }

    #[test]
    fn settings_validate_with_prefix() {
        assert!(GuardSettings::default().validate("ivr.guard").is_empty());
        let bad = GuardSettings {
            max_tracked: 0,
            ..GuardSettings::default()
        };
        assert_eq!(bad.validate("x.guard").len(), 1);
        assert!(bad.validate("x.guard")[0].starts_with("x.guard.max_tracked"));
    }
}

//! A table of live transactions with a shared deadline queue.
//!
//! Transactions live in a slab (slot + generation) indexed by key through a
//! hash map. Deadlines go into one binary heap of `(deadline, slot,
//! generation)`; an entry is valid only while the transaction still wants
//! exactly that deadline, so changed or stopped timers leave stale entries
//! that are skipped when popped (lazy invalidation) and purged when they
//! outnumber the live ones. Finding the next deadline is O(1) amortised and
//! expiring a due transaction O(log n): nothing scans all transactions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use bytes::Bytes;

use super::{Transaction, TransactionEvent};

/// Outputs of one transaction whose timer fired, from [`TransactionTable::expire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<K> {
    /// Key of the transaction.
    pub key: K,
    /// Messages to send on the transaction's flow, in order.
    pub transmits: Vec<Bytes>,
    /// Events for the transaction user, in order.
    pub events: Vec<TransactionEvent>,
    /// Whether it reached Terminated (it has been removed from the table).
    pub terminated: bool,
}

#[derive(Debug)]
struct Entry<K, T> {
    key: K,
    tx: T,
    /// The deadline this entry holds a valid heap entry for.
    scheduled: Option<Instant>,
}

#[derive(Debug)]
struct Slot<K, T> {
    generation: u32,
    entry: Option<Entry<K, T>>,
}

type HeapItem = Reverse<(Instant, u32, u32)>;

/// Many transactions of one kind, by key, with their deadlines merged.
#[derive(Debug)]
pub struct TransactionTable<K, T> {
    slots: Vec<Slot<K, T>>,
    free: Vec<u32>,
    index: HashMap<K, u32>,
    heap: BinaryHeap<HeapItem>,
    /// Slots seen terminated through [`TxMut`]; removed by `expire` or
    /// [`TransactionTable::reap_terminated`].
    reap: Vec<(u32, u32)>,
}

impl<K, T> Default for TransactionTable<K, T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            heap: BinaryHeap::new(),
            reap: Vec::new(),
        }
    }
}

/// Records `entry`'s current deadline in the heap if it changed.
fn reschedule<K, T: Transaction>(
    entry: &mut Entry<K, T>,
    heap: &mut BinaryHeap<HeapItem>,
    slot: u32,
    generation: u32,
) {
    let deadline = entry.tx.poll_timeout();
    if deadline != entry.scheduled {
        entry.scheduled = deadline;
        if let Some(d) = deadline {
            heap.push(Reverse((d, slot, generation)));
        }
    }
}

impl<K: Hash + Eq + Clone, T: Transaction> TransactionTable<K, T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table with room for `capacity` transactions.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            index: HashMap::with_capacity(capacity),
            heap: BinaryHeap::with_capacity(capacity),
            reap: Vec::new(),
        }
    }

    /// Number of transactions held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether a transaction has this key.
    pub fn contains_key(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    /// Adds a transaction (drain its first outputs, such as a client's
    /// request, before or through [`Self::get_mut`]). Refused (the transaction is handed back) when
    /// the key is already present: the request is then a retransmission
    /// and belongs to the existing transaction.
    #[allow(clippy::result_large_err)]
    pub fn insert(&mut self, key: K, tx: T) -> Result<(), T> {
        if self.index.contains_key(&key) {
            return Err(tx);
        }
        let (slot, generation) = match self.free.pop() {
            Some(slot) => match self.slots.get(slot as usize) {
                Some(s) => (slot, s.generation),
                None => return Err(tx),
            },
            None => {
                let Ok(slot) = u32::try_from(self.slots.len()) else {
                    return Err(tx);
                };
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                (slot, 0)
            }
        };
        let mut entry = Entry {
            key: key.clone(),
            tx,
            scheduled: None,
        };
        reschedule(&mut entry, &mut self.heap, slot, generation);
        if entry.tx.is_terminated() {
            self.reap.push((slot, generation));
        }
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.entry = Some(entry);
        }
        self.index.insert(key, slot);
        Ok(())
    }

    /// The transaction with this key.
    pub fn get(&self, key: &K) -> Option<&T> {
        let slot = *self.index.get(key)?;
        self.slots.get(slot as usize)?.entry.as_ref().map(|e| &e.tx)
    }

    /// Mutable access; when the guard drops, the transaction's deadline is
    /// re-read and, if it terminated, it is queued for removal. Drain its
    /// transmits and events before dropping the guard. A transaction that
    /// terminated this way stays findable (absorbing retransmissions) until
    /// the next [`Self::expire`] or [`Self::reap_terminated`].
    pub fn get_mut(&mut self, key: &K) -> Option<TxMut<'_, K, T>> {
        let slot = *self.index.get(key)?;
        let s = self.slots.get_mut(slot as usize)?;
        let generation = s.generation;
        let entry = s.entry.as_mut()?;
        Some(TxMut {
            entry,
            heap: &mut self.heap,
            reap: &mut self.reap,
            slot,
            generation,
        })
    }

    /// Removes and returns the transaction with this key.
    pub fn remove(&mut self, key: &K) -> Option<T> {
        let slot = self.index.remove(key)?;
        self.take_slot(slot).map(|e| e.tx)
    }

    fn take_slot(&mut self, slot: u32) -> Option<Entry<K, T>> {
        let s = self.slots.get_mut(slot as usize)?;
        let entry = s.entry.take()?;
        // A new generation invalidates every heap entry of the old occupant.
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        Some(entry)
    }

    /// Removes the transactions that terminated while borrowed through
    /// [`TxMut`]; returns how many.
    pub fn reap_terminated(&mut self) -> usize {
        let mut removed = 0;
        while let Some((slot, generation)) = self.reap.pop() {
            let Some(s) = self.slots.get(slot as usize) else {
                continue;
            };
            let dead = s.generation == generation
                && s.entry.as_ref().is_some_and(|e| e.tx.is_terminated());
            if dead {
                if let Some(entry) = self.take_slot(slot) {
                    self.index.remove(&entry.key);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// The earliest deadline over all transactions.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, slot, generation))) = self.heap.peek() {
            if self.is_current(deadline, slot, generation) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    fn is_current(&self, deadline: Instant, slot: u32, generation: u32) -> bool {
        self.slots.get(slot as usize).is_some_and(|s| {
            s.generation == generation
                && s.entry
                    .as_ref()
                    .is_some_and(|e| e.scheduled == Some(deadline))
        })
    }

    /// Fires the timers of every transaction due at `now`: calls
    /// `handle_timeout(now)` then `on_expired(key, tx)` so the caller can
    /// drain the outputs; transactions that terminated are removed after
    /// the callback. Also removes those queued by [`TxMut`]. Returns how
    /// many transactions were handled.
    pub fn expire_with(&mut self, now: Instant, mut on_expired: impl FnMut(&K, &mut T)) -> usize {
        self.reap_terminated();
        let mut handled = 0;
        while let Some(&Reverse((deadline, slot, generation))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if !self.is_current(deadline, slot, generation) {
                continue;
            }
            let Some(entry) = self
                .slots
                .get_mut(slot as usize)
                .and_then(|s| s.entry.as_mut())
            else {
                continue;
            };
            entry.scheduled = None;
            entry.tx.handle_timeout(now);
            on_expired(&entry.key, &mut entry.tx);
            handled += 1;
            if entry.tx.is_terminated() {
                if let Some(entry) = self.take_slot(slot) {
                    self.index.remove(&entry.key);
                }
            } else {
                reschedule(entry, &mut self.heap, slot, generation);
            }
        }
        self.compact();
        handled
    }

    /// Like [`Self::expire_with`], collecting each transaction's outputs.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired<K>> {
        let mut expired = Vec::new();
        self.expire_with(now, |key, tx| {
            let mut transmits = Vec::new();
            while let Some(bytes) = tx.poll_transmit() {
                transmits.push(bytes);
            }
            let mut events = Vec::new();
            while let Some(event) = tx.poll_event() {
                events.push(event);
            }
            expired.push(Expired {
                key: key.clone(),
                transmits,
                events,
                terminated: tx.is_terminated(),
            });
        });
        expired
    }

    /// Rebuilds the heap when stale entries outnumber live ones, bounding
    /// its memory.
    fn compact(&mut self) {
        if self.heap.len() <= 2 * self.index.len() + 1024 {
            return;
        }
        let mut items = Vec::with_capacity(self.index.len());
        for (slot, s) in self.slots.iter().enumerate() {
            let Ok(slot) = u32::try_from(slot) else { break };
            if let Some(d) = s.entry.as_ref().and_then(|e| e.scheduled) {
                items.push(Reverse((d, slot, s.generation)));
            }
        }
        self.heap = BinaryHeap::from(items);
    }
}

/// Mutable access to a transaction in a [`TransactionTable`]; re-reads its
/// deadline when dropped.
pub struct TxMut<'a, K, T: Transaction> {
    entry: &'a mut Entry<K, T>,
    heap: &'a mut BinaryHeap<HeapItem>,
    reap: &'a mut Vec<(u32, u32)>,
    slot: u32,
    generation: u32,
}

impl<K, T: Transaction> TxMut<'_, K, T> {
    /// Key of the transaction.
    pub fn key(&self) -> &K {
        &self.entry.key
    }
}

impl<K, T: Transaction> Deref for TxMut<'_, K, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.entry.tx
    }
}

impl<K, T: Transaction> DerefMut for TxMut<'_, K, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.entry.tx
    }
}

impl<K, T: Transaction> Drop for TxMut<'_, K, T> {
    fn drop(&mut self) {
        reschedule(self.entry, self.heap, self.slot, self.generation);
        if self.entry.tx.is_terminated() {
            self.reap.push((self.slot, self.generation));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::sim::secs;
    use crate::sip::transaction::{
        ClientTransactionKey, NonInviteClientTransaction, Reliability, TimerSettings,
    };
    use std::time::Duration;

    type Table = TransactionTable<ClientTransactionKey, NonInviteClientTransaction>;

    fn bye_key(i: usize) -> ClientTransactionKey {
        ClientTransactionKey::new(&format!("z9hG4bKgw{i}"), "BYE").unwrap()
    }

    fn bye(now: Instant, reliability: Reliability) -> NonInviteClientTransaction {
        NonInviteClientTransaction::new(
            Bytes::from_static(b"BYE"),
            now,
            TimerSettings::default(),
            reliability,
        )
    }

    /// Drives the table to each next deadline until `end`, collecting
    /// (time, key index, event) and checking time never goes backwards.
    fn run(
        table: &mut Table,
        t0: Instant,
        end: Duration,
    ) -> Vec<(Instant, ClientTransactionKey, TransactionEvent)> {
        let mut seen = Vec::new();
        let mut last = t0;
        while let Some(deadline) = table.poll_timeout() {
            if deadline > t0 + end {
                break;
            }
            assert!(deadline >= last, "deadlines out of order");
            last = deadline;
            for expired in table.expire(deadline) {
                for event in expired.events {
                    seen.push((deadline, expired.key.clone(), event));
                }
            }
        }
        seen
    }

    #[test]
    fn thousands_of_transactions_time_out_in_deadline_order() {
        let t0 = Instant::now();
        let mut table = Table::with_capacity(5000);
        // Created 7 ms apart, in a shuffled order of keys.
        let n = 5000;
        for i in 0..n {
            let k = (i * 7919) % n;
            let created = t0 + Duration::from_millis(7 * k as u64);
            let reliability = if k % 2 == 0 {
                Reliability::Unreliable
            } else {
                Reliability::Reliable
            };
            table.insert(bye_key(k), bye(created, reliability)).unwrap();
        }
        assert_eq!(table.len(), n);
        // Every third one is answered 1 s after it was created.
        for k in (0..n).step_by(3) {
            let mut tx = table.get_mut(&bye_key(k)).unwrap();
            while tx.poll_transmit().is_some() {}
            tx.on_response(200, t0 + Duration::from_millis(7 * k as u64 + 1000))
                .unwrap();
            assert_eq!(tx.poll_event(), Some(TransactionEvent::Final(200)));
        }
        let reaped = table.reap_terminated();
        // The reliable answered ones end at once (Timer K = 0).
        assert_eq!(reaped, (0..n).step_by(3).filter(|k| k % 2 == 1).count());
        let seen = run(&mut table, t0, Duration::from_secs(100));
        let timeouts: Vec<_> = seen
            .iter()
            .filter(|(_, _, e)| *e == TransactionEvent::Timeout)
            .collect();
        let unanswered = (0..n).filter(|k| k % 3 != 0).count();
        assert_eq!(timeouts.len(), unanswered);
        for (at, key, _) in &timeouts {
            let k: usize = key
                .branch()
                .trim_start_matches("z9hG4bKgw")
                .parse()
                .unwrap();
            assert_ne!(k % 3, 0, "an answered BYE timed out");
            // Timer F: exactly 64·T1 after creation.
            assert_eq!(*at, t0 + Duration::from_millis(7 * k as u64) + secs(32.0));
        }
        assert!(table.is_empty(), "terminated transactions are removed");
        assert_eq!(table.poll_timeout(), None);
        assert!(table.heap.len() <= 1024, "stale entries purged");
    }

    #[test]
    fn remove_and_slot_reuse_invalidate_old_deadlines() {
        let t0 = Instant::now();
        let mut table = Table::new();
        table
            .insert(bye_key(1), bye(t0, Reliability::Reliable))
            .unwrap();
        assert_eq!(table.poll_timeout(), Some(t0 + secs(32.0)));
        assert!(table.remove(&bye_key(1)).is_some());
        assert!(table.remove(&bye_key(1)).is_none());
        assert_eq!(table.poll_timeout(), None);
        // The slot is reused by a later transaction with a later deadline:
        // the old heap entry must not fire it early.
        table
            .insert(bye_key(1), bye(t0, Reliability::Reliable))
            .unwrap();
        table.remove(&bye_key(1));
        let later = t0 + secs(10.0);
        table
            .insert(bye_key(2), bye(later, Reliability::Reliable))
            .unwrap();
        assert_eq!(table.expire(t0 + secs(32.0)), vec![]);
        assert_eq!(table.poll_timeout(), Some(later + secs(32.0)));
        let expired = table.expire(later + secs(32.0));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].key, bye_key(2));
        assert_eq!(expired[0].events, vec![TransactionEvent::Timeout]);
        assert!(expired[0].terminated);
        assert!(table.is_empty());
    }

    #[test]
    fn changed_deadline_through_guard_is_followed() {
        let t0 = Instant::now();
        let mut table = Table::new();
        table
            .insert(bye_key(1), bye(t0, Reliability::Unreliable))
            .unwrap();
        assert_eq!(table.poll_timeout(), Some(t0 + secs(0.5)));
        {
            let mut tx = table.get_mut(&bye_key(1)).unwrap();
            assert_eq!(tx.key(), &bye_key(1));
            tx.on_response(200, t0 + secs(0.1)).unwrap();
        }
        // Timer E and F stopped, Timer K = T4 armed.
        assert_eq!(table.poll_timeout(), Some(t0 + secs(5.1)));
        let expired = table.expire(t0 + secs(5.1));
        assert_eq!(expired.len(), 1);
        assert!(expired[0].terminated);
        assert_eq!(expired[0].events, vec![TransactionEvent::Final(200)]);
        assert!(table.is_empty());
    }

    #[test]
    fn retransmission_timers_fire_repeatedly_for_one_transaction() {
        let t0 = Instant::now();
        let mut table = Table::new();
        let mut tx = bye(t0, Reliability::Unreliable);
        assert_eq!(tx.poll_transmit(), Some(Bytes::from_static(b"BYE")));
        table.insert(bye_key(1), tx).unwrap();
        let mut times = Vec::new();
        while let Some(deadline) = table.poll_timeout() {
            for e in table.expire(deadline) {
                for _ in e.transmits {
                    times.push(deadline.duration_since(t0).as_secs_f64());
                }
            }
        }
        assert_eq!(&times[..4], &[0.5, 1.5, 3.5, 7.5]);
        assert!(table.is_empty());
    }
}

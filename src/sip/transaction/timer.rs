//! A fixed table of deadlines, one slot per timer of a state machine.
//!
//! Each machine names its timers with a small enum; the table is an array
//! indexed by that enum, so setting, stopping and finding the next deadline
//! never allocate.

use std::time::Instant;

/// A timer name usable as an index into a [`TimerTable`].
pub trait TimerId: Copy + Eq + std::fmt::Debug + 'static {
    /// Every timer of the machine, in index order.
    const ALL: &'static [Self];
    /// Position of this timer in [`Self::ALL`].
    fn index(self) -> usize;
}

/// Deadlines of the timers of one state machine.
#[derive(Debug, Clone)]
pub struct TimerTable<T: TimerId, const N: usize> {
    deadlines: [Option<Instant>; N],
    _timer: std::marker::PhantomData<T>,
}

impl<T: TimerId, const N: usize> Default for TimerTable<T, N> {
    fn default() -> Self {
        Self {
            deadlines: [None; N],
            _timer: std::marker::PhantomData,
        }
    }
}

impl<T: TimerId, const N: usize> TimerTable<T, N> {
    /// Arms `timer` to fire at `deadline`, replacing any earlier setting.
    pub fn set(&mut self, timer: T, deadline: Instant) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = Some(deadline);
        }
    }

    /// Arms `timer` to fire `delay` after `now`. A deadline beyond the
    /// clock's range (absurd settings) means "never": the timer is disarmed
    /// rather than panicking.
    pub fn set_after(&mut self, timer: T, now: Instant, delay: std::time::Duration) {
        match now.checked_add(delay) {
            Some(deadline) => self.set(timer, deadline),
            None => self.stop(timer),
        }
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: T) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = None;
        }
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines = [None; N];
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: T) -> Option<Instant> {
        self.deadlines.get(timer.index()).copied().flatten()
    }

    /// Whether `timer` is armed.
    pub fn is_set(&self, timer: T) -> bool {
        self.get(timer).is_some()
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the earliest timer due at `now`, if any. Calling it
    /// in a loop yields expired timers in deadline order.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
        let mut best: Option<(Instant, T)> = None;
        for &timer in T::ALL {
            if let Some(deadline) = self.get(timer) {
                if deadline <= now && best.is_none_or(|(b, _)| deadline < b) {
                    best = Some((deadline, timer));
                }
            }
        }
        let (_, timer) = best?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum T {
        X,
        Y,
    }
    impl TimerId for T {
        const ALL: &'static [Self] = &[T::X, T::Y];
        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn set_stop_next_expire() {
        let t0 = Instant::now();
        let mut table: TimerTable<T, 2> = TimerTable::default();
        assert_eq!(table.next_deadline(), None);
        table.set(T::Y, t0 + Duration::from_secs(2));
        table.set(T::X, t0 + Duration::from_secs(5));
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(1)), None);
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(9)), Some(T::Y));
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(9)), Some(T::X));
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(9)), None);
        table.set(T::X, t0);
        table.stop(T::X);
        assert!(!table.is_set(T::X));
        table.set(T::Y, t0);
        table.stop_all();
        table.set_after(T::X, t0, Duration::from_secs(1));
        assert_eq!(table.get(T::X), Some(t0 + Duration::from_secs(1)));
        table.set_after(T::X, t0, Duration::MAX);
        assert!(!table.is_set(T::X));
        assert_eq!(table.next_deadline(), None);
    }
}

//! The RTP port pool: hands out even RTP ports (RFC 3550 §11: RTP on an
//! even port, RTCP on the next odd one) from the configured range.
//!
//! The pool is plain bookkeeping, no sockets: the shell binds a socket on
//! each allocation and gives the port back with [`RtpPortPool::release`]
//! when the OS refuses it, so a port taken by another process is skipped.
//! Released ports go to the back of the queue so a stray late packet of
//! an ended call does not land in the next call straight away.

use std::collections::{HashSet, VecDeque};

use thiserror::Error;

/// An allocated RTP port; RTCP uses `rtp() + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RtpPort(u16);

impl RtpPort {
    /// The (even) RTP port.
    pub fn rtp(self) -> u16 {
        self.0
    }

    /// The RTCP port next to it (RFC 3550 §11).
    pub fn rtcp(self) -> u16 {
        self.0.saturating_add(1)
    }
}

impl std::fmt::Display for RtpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a port range cannot make a pool.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortPoolError {
    /// The range holds no even port with an odd neighbour inside it.
    #[error("RTP port range {min}-{max} holds no even/odd port pair")]
    EmptyRange {
        /// Lower bound as configured.
        min: u16,
        /// Upper bound as configured.
        max: u16,
    },
}

/// A pool of RTP/RTCP port pairs inside `[min, max]`.
#[derive(Debug)]
pub struct RtpPortPool {
    free: VecDeque<u16>,
    in_use: HashSet<u16>,
    capacity: usize,
}

impl RtpPortPool {
    /// Builds a pool of every even port `p` with `min <= p` and `p + 1 <= max`.
    pub fn new(min: u16, max: u16) -> Result<Self, PortPoolError> {
        let first = if min % 2 == 0 {
            min
        } else {
            min.saturating_add(1)
        };
        let free: VecDeque<u16> = (first..max)
            .step_by(2)
            .filter(|p| p % 2 == 0 && p.checked_add(1).is_some_and(|q| q <= max))
            .collect();
        if free.is_empty() {
            return Err(PortPoolError::EmptyRange { min, max });
        }
        let capacity = free.len();
        Ok(Self {
            free,
            in_use: HashSet::with_capacity(capacity),
            capacity,
        })
    }

    /// Takes the next free pair, or `None` when every pair is in use.
    pub fn allocate(&mut self) -> Option<RtpPort> {
        let port = self.free.pop_front()?;
        self.in_use.insert(port);
        Some(RtpPort(port))
    }

    /// Gives a pair back. Releasing a port twice, or one this pool never
    /// handed out, is ignored, so every call-ending path may release safely.
    pub fn release(&mut self, port: RtpPort) {
        if self.in_use.remove(&port.0) {
            self.free.push_back(port.0);
        }
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of pairs free now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Number of pairs allocated now.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

/// Where the user agent core gets RTP ports. The core sees only port
/// numbers; the shell's implementation also binds the sockets, and the
/// plain [`RtpPortPool`] serves tests of the core.
pub trait PortAllocator: Send {
    /// Takes a free pair, or `None` when none can be had.
    fn allocate(&mut self) -> Option<RtpPort>;
    /// Gives a pair back (idempotent).
    fn release(&mut self, port: RtpPort);
    /// Pairs free now.
    fn available(&self) -> usize;
    /// Pairs in the range.
    fn capacity(&self) -> usize;
}

impl PortAllocator for RtpPortPool {
    fn allocate(&mut self) -> Option<RtpPort> {
        RtpPortPool::allocate(self)
    }
    fn release(&mut self, port: RtpPort) {
        RtpPortPool::release(self, port)
    }
    fn available(&self) -> usize {
        RtpPortPool::available(self)
    }
    fn capacity(&self) -> usize {
        RtpPortPool::capacity(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_ports_with_odd_neighbour_inside_range() {
        let mut pool = RtpPortPool::new(10001, 10010).unwrap();
        // 10002, 10004, 10006, 10008 (10010 has no 10011 inside the range).
        assert_eq!(pool.capacity(), 4);
        let mut got = Vec::new();
        while let Some(p) = pool.allocate() {
            assert_eq!(p.rtp() % 2, 0);
            assert!(p.rtcp() <= 10010);
            got.push(p.rtp());
        }
        assert_eq!(got, vec![10002, 10004, 10006, 10008]);
        assert_eq!(pool.available(), 0);
    }

    #[test]
    fn release_returns_to_back_and_ignores_duplicates() {
        let mut pool = RtpPortPool::new(20000, 20005).unwrap();
        let a = pool.allocate().unwrap();
        pool.release(a);
        pool.release(a);
        pool.release(RtpPort(30000));
        assert_eq!(pool.available(), 3);
        assert_eq!(pool.in_use(), 0);
        let b = pool.allocate().unwrap();
        assert_ne!(a, b, "a released port goes to the back");
    }

    #[test]
    fn empty_ranges_are_refused() {
        assert!(RtpPortPool::new(10001, 10001).is_err());
        assert!(RtpPortPool::new(10000, 10000).is_err());
        assert!(RtpPortPool::new(65534, 65535).is_ok());
        assert!(RtpPortPool::new(65535, 65535).is_err());
        assert!(RtpPortPool::new(20, 10).is_err());
    }

    #[test]
    fn pool_is_full_again_after_many_cycles() {
        let mut pool = RtpPortPool::new(40000, 40099).unwrap();
        for _ in 0..1000 {
            let held: Vec<_> = (0..7).filter_map(|_| pool.allocate()).collect();
            for p in held {
                pool.release(p);
            }
        }
        assert_eq!(pool.available(), pool.capacity());
    }
}

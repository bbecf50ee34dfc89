//! A small log-linear latency histogram: exact below 1024 µs, then 64
//! sub-buckets per power of two (under 1.6 % error). Fixed size, no
//! allocation per sample, mergeable across worker threads.

use std::time::Duration;

const LINEAR: u64 = 1024;
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two above the linear range: 2^10 µs .. 2^40 µs (12 days).
const OCTAVES: usize = 30;
const BUCKETS: usize = LINEAR as usize + OCTAVES * SUB as usize;

/// Latency samples in microseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }

    fn index(us: u64) -> usize {
        if us < LINEAR {
            return us as usize;
        }
        let octave = 63 - us.leading_zeros(); // >= 10
        let shift = octave - SUB_BITS;
        let sub = (us >> shift) & (SUB - 1);
        let i = LINEAR as usize + (octave as usize - 10) * SUB as usize + sub as usize;
        i.min(BUCKETS - 1)
    }

    /// Upper edge of a bucket, in µs.
    fn value_of(index: usize) -> u64 {
        if index < LINEAR as usize {
            return index as u64;
        }
        let rel = index - LINEAR as usize;
        let octave = (rel / SUB as usize) as u32 + 10;
        let sub = (rel % SUB as usize) as u64;
        let shift = octave - SUB_BITS;
        ((SUB + sub) << shift) + (1 << shift) - 1
    }

    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us);
    }

    /// Records one sample given in microseconds.
    pub fn record_us(&mut self, us: u64) {
        if let Some(c) = self.counts.get_mut(Self::index(us)) {
            *c += 1;
        }
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest sample, µs.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The value at quantile `q` (0.0..=1.0), µs; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value_of(i).min(self.max_us);
            }
        }
        self.max_us
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// p50, p99 and max in milliseconds, for reports.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            samples: self.total,
            p50_ms: self.quantile_us(0.5) as f64 / 1000.0,
            p99_ms: self.quantile_us(0.99) as f64 / 1000.0,
            max_ms: self.max_us as f64 / 1000.0,
        }
    }
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_in_linear_range() {
        let mut h = Histogram::new();
        for us in 1..=100 {
            h.record_us(us);
        }
        assert_eq!(h.quantile_us(0.5), 50);
        assert_eq!(h.quantile_us(0.99), 99);
        assert_eq!(h.max_us(), 100);
    }

    #[test]
    fn log_buckets_are_close() {
        for us in [1_500u64, 20_000, 333_333, 9_000_000] {
            let mut h = Histogram::new();
            h.record_us(us);
            h.record_us(us);
            let got = h.quantile_us(0.5);
            let err = got.abs_diff(us) as f64 / us as f64;
            assert!(err < 0.02, "{us} -> {got}");
        }
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut h = Histogram::new();
        h.record_us(u64::MAX);
        h.record(Duration::MAX);
        assert_eq!(h.count(), 2);
        assert_eq!(h.max_us(), u64::MAX);
    }

    #[test]
    fn merge_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record_us(10);
        b.record_us(30);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.max_us(), 30);
        assert_eq!(Histogram::new().quantile_us(0.5), 0);
    }
}

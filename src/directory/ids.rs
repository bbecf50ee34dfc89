//! Unpredictable conference IDs.
//!
//! A reset must hand out an ID nobody can guess from the old one or from
//! other IDs, so production draws from the operating system's CSPRNG (via
//! `rand::rng()`, ChaCha12 reseeded from the OS). Tests may use a seeded
//! ChaCha generator to be reproducible.

use super::{ConferenceId, MAX_ID_LEN, MIN_ID_LEN};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Where random IDs come from.
#[derive(Debug)]
pub enum IdSource {
    /// The thread-local CSPRNG seeded and periodically reseeded from the OS.
    Os,
    /// A seeded ChaCha12 generator: reproducible, for tests only.
    Seeded(Box<StdRng>),
}

impl IdSource {
    /// A reproducible source (tests and benchmarks).
    pub fn seeded(seed: u64) -> Self {
        IdSource::Seeded(Box::new(StdRng::seed_from_u64(seed)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        match self {
            IdSource::Os => rand::rng().next_u64(),
            IdSource::Seeded(rng) => rng.next_u64(),
        }
    }
}

/// Draws uniformly from `0..n` by rejection sampling: raw 64-bit values in
/// the incomplete last block of size `2^64 mod n` are redrawn, so no value
/// is favoured (a plain `% n` would favour small values).
/// Returns 0 when `n` is 0 or 1.
pub fn draw_uniform(source: &mut IdSource, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    // Largest multiple of n that fits in u64 arithmetic: accept x < zone.
    let zone = u64::MAX - (u64::MAX % n + 1) % n;
    loop {
        let x = source.next_u64();
        if x <= zone {
            return x % n;
        }
    }
}

/// Random draws before giving up on rejection sampling and scanning.
const RANDOM_ATTEMPTS: u32 = 10_000;
/// Spaces up to this size are scanned when random draws keep failing.
const SCAN_LIMIT: u64 = 10_000_000;

/// Picks an ID of `len` digits, uniform over the whole space, redrawing
/// while `is_free` says no (active or quarantined IDs). `None` when `len`
/// is unsupported or no free ID was found.
///
/// When the space is so full that [`RANDOM_ATTEMPTS`] draws all fail, small
/// spaces are scanned from a random start so a last free ID is still found.
pub fn generate_free(
    source: &mut IdSource,
    len: usize,
    mut is_free: impl FnMut(ConferenceId) -> bool,
) -> Option<ConferenceId> {
    if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&len) {
        return None;
    }
    let space = 10u64.pow(len as u32);
    for _ in 0..RANDOM_ATTEMPTS {
        let id = ConferenceId::from_value(draw_uniform(source, space), len)?;
        if is_free(id) {
            return Some(id);
        }
    }
    if space > SCAN_LIMIT {
        return None;
    }
    let start = draw_uniform(source, space);
    (0..space)
        .map(|i| (start + i) % space)
        .filter_map(|v| ConferenceId::from_value(v, len))
        .find(|&id| is_free(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn draws_stay_in_range(seed: u64, n in 1u64..u64::MAX) {
            let mut src = IdSource::seeded(seed);
            for _ in 0..16 {
                prop_assert!(draw_uniform(&mut src, n) < n);
            }
        }

        #[test]
        fn generated_ids_respect_length_and_digits(seed: u64, len in MIN_ID_LEN..=MAX_ID_LEN) {
            let mut src = IdSource::seeded(seed);
            for _ in 0..32 {
                let id = generate_free(&mut src, len, |_| true).unwrap();
                prop_assert_eq!(id.len(), len);
                let text = id.to_string();
                prop_assert_eq!(text.len(), len);
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(ConferenceId::parse(&text, len), Ok(id));
            }
        }

        #[test]
        fn never_collides_with_taken_ids(seed: u64, taken_share in 0.0f64..0.99) {
            // A 5-digit space, most of it taken: generation must only return free IDs.
            let mut src = IdSource::seeded(seed);
            let space = 100_000u64;
            let taken: HashSet<u64> = (0..space)
                .filter(|v| ((v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64) < taken_share)
                .collect();
            for _ in 0..64 {
                let id = generate_free(&mut src, 5, |id| !taken.contains(&id.value())).unwrap();
                prop_assert!(!taken.contains(&id.value()));
            }
        }

        #[test]
        fn parse_accepts_exactly_digit_strings(s in "[0-9a-z ]{0,12}", len in MIN_ID_LEN..=MAX_ID_LEN) {
            let ok = s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
            let parsed = ConferenceId::parse(&s, len);
            prop_assert_eq!(parsed.is_ok(), ok);
            if let Ok(id) = parsed {
                prop_assert_eq!(id.to_string(), s);
            }
        }
    }

    #[test]
    fn finds_the_last_free_id() {
        let mut src = IdSource::seeded(7);
        let id = generate_free(&mut src, 5, |id| id.value() == 4242).unwrap();
        assert_eq!(id.value(), 4242);
        assert_eq!(generate_free(&mut src, 5, |_| false), None);
    }

    /// Chi-square sanity check: 50 buckets over a 5-digit space.
    #[test]
    fn generation_is_roughly_uniform() {
        let mut src = IdSource::seeded(0xD1A1);
        let buckets = 50usize;
        let draws = 50_000usize;
        let mut counts = vec![0u64; buckets];
        for _ in 0..draws {
            let id = generate_free(&mut src, 5, |_| true).unwrap();
            counts[(id.value() / 2000) as usize] += 1;
        }
        let expected = (draws / buckets) as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 49 degrees of freedom: the 99.9th percentile is about 85.
        assert!(chi2 < 85.0, "chi-square {chi2} too large: {counts:?}");
    }

    #[test]
    fn rejection_zone_is_exact() {
        // For n = 3 the zone must exclude the top (2^64 mod 3) values.
        let n = 3u64;
        let zone = u64::MAX - (u64::MAX % n + 1) % n;
        assert_eq!((zone as u128 + 1) % n as u128, 0);
        let n = 1u64 << 32;
        let zone = u64::MAX - (u64::MAX % n + 1) % n;
        assert_eq!(zone, u64::MAX);
    }
}

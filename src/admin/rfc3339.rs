//! RFC 3339 timestamps (§5.6 `date-time`) for the admin API, without a
//! calendar crate: the API only ever needs UTC instants with whole seconds
//! out and any valid offset in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("expected an RFC 3339 timestamp such as 2026-11-25T14:30:00Z")]
    Syntax,
    #[error("date or time field out of range")]
    OutOfRange,
}

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 for a proleptic Gregorian date (Hinnant's
/// `days_from_civil`, valid for every year an `i64` holds here).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (inverse of the above).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Seconds relative to the Unix epoch (negative before 1970).
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            // Round towards the past so 1969-12-31T23:59:59.5 prints as :59.
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

/// Broken-down UTC time: (year, month, day, hour, minute, second, weekday 0=Sunday).
pub(crate) fn to_civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = unix_seconds(t);
    let days = secs.div_euclid(SECS_PER_DAY);
    let rem = secs.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday (4).
    let weekday = (days + 4).rem_euclid(7) as u32;
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
        weekday,
    )
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds, truncated).
pub fn format(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = to_civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<u32, TimestampError> {
    let field = b.get(at..at + n).ok_or(TimestampError::Syntax)?;
    field.iter().try_fold(0u32, |acc, &c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + u32::from(c - b'0'))
        } else {
            Err(TimestampError::Syntax)
        }
    })
}

fn expect(b: &[u8], at: usize, what: &[u8]) -> Result<(), TimestampError> {
    match b.get(at) {
        Some(c) if what.contains(c) => Ok(()),
        _ => Err(TimestampError::Syntax),
    }
}

/// Parses an RFC 3339 `date-time` (§5.6): `2026-11-25T14:30:00Z`,
/// `2026-11-25t14:30:00.250+01:00`. A leap second (`:60`) is read as `:59`,
/// since the system clock cannot name it either.
pub fn parse(s: &str) -> Result<SystemTime, TimestampError> {
    let b = s.trim().as_bytes();
    let year = i64::from(digits(b, 0, 4)?);
    expect(b, 4, b"-")?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b"-")?;
    let day = digits(b, 8, 2)?;
    expect(b, 10, b"Tt ")?;
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b":")?;
    let minute = digits(b, 14, 2)?;
    expect(b, 16, b":")?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(TimestampError::OutOfRange);
    }
    let mut at = 19;
    let mut nanos: u32 = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        let mut scale = 100_000_000u32;
        while let Some(c) = b.get(at).filter(|c| c.is_ascii_digit()) {
            nanos += u32::from(c - b'0') * scale;
            scale /= 10;
            at += 1;
        }
        if at == start {
            return Err(TimestampError::Syntax);
        }
    }
    let offset_secs: i64 = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, at + 1, 2)?;
            expect(b, at + 3, b":")?;
            let om = digits(b, at + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err(TimestampError::OutOfRange);
            }
            at += 6;
            let off = i64::from(oh * 3600 + om * 60);
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err(TimestampError::Syntax),
    };
    if at != b.len() {
        return Err(TimestampError::Syntax);
    }
    let second = second.min(59);
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_secs;
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
    };
    t.ok_or(TimestampError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_764_081_000);
        assert_eq!(format(t), "2025-11-25T14:30:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format(leap), "2000-02-29T00:00:00Z");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(format(before), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse("2025-11-25T14:30:00Z").unwrap();
        assert_eq!(z, UNIX_EPOCH + Duration::from_secs(1_764_081_000));
        assert_eq!(parse("2025-11-25T15:30:00+01:00").unwrap(), z);
        assert_eq!(parse("2025-11-25t09:00:00-05:30").unwrap(), z);
        let frac = parse("2025-11-25T14:30:00.25Z").unwrap();
        assert_eq!(frac.duration_since(z).unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse("1969-12-31T23:59:59Z").unwrap(),
            UNIX_EPOCH - Duration::from_secs(1)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2025-11-25",
            "2025-11-25T14:30:00",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-11-25T24:00:00Z",
            "2025-11-25T14:30:00.Z",
            "2025-11-25T14:30:00Zjunk",
            "2025-11-25T14:30:00+0100",
            "２０２５-11-25T14:30:00Z",
            "1764081000",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn round_trips_whole_seconds() {
        for secs in [0u64, 86_399, 951_868_799, 4_102_444_800, 253_402_300_799] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse(&format(t)).unwrap(), t);
        }
    }

    #[test]
    fn weekday_is_right() {
        // 2025-11-25 is a Tuesday.
        let t = UNIX_EPOCH + Duration::from_secs(1_764_081_000);
        assert_eq!(to_civil(t).6, 2);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn round_trips_any_second(secs in 0u64..253_402_300_800) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse(&format(t)).unwrap(), t);
        }

        #[test]
        fn near_misses_never_panic(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?") {
            let _ = parse(&s);
        }
    }
}

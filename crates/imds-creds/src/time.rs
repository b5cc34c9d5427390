//! Wall-clock time as Unix seconds, and EC2's timestamp format.
//!
//! [`Clock`] anchors the wall clock once and then advances with `tokio::time`, so tests that
//! pause tokio's clock (`tokio::time::pause`/`advance`) move credential expiry and rotation
//! deterministically, without sleeping.

/// A wall clock that advances with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin_unix: u64,
    origin: tokio::time::Instant,
}

impl Clock {
    /// Anchored at the system's current time.
    pub fn system() -> Self {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::starting_at(unix)
    }

    /// Anchored at `unix` seconds now (tests).
    pub fn starting_at(unix: u64) -> Self {
        Self { origin_unix: unix, origin: tokio::time::Instant::now() }
    }

    /// The current time, Unix seconds.
    pub fn now(&self) -> u64 {
        self.origin_unix.saturating_add(self.origin.elapsed().as_secs())
    }
}

/// `%Y-%m-%dT%H:%M:%SZ` for Unix seconds `t` (the exact form botocore parses).
pub fn format_rfc3339(t: u64) -> String {
    let days = t / 86_400;
    let rem = t % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses an RFC 3339 timestamp (`2026-01-02T03:04:05Z`, fractional seconds and `±HH:MM`
/// offsets accepted) into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0i64)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        (clock, sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60))
    };
    let clock = clock.split('.').next()?;
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second - offset).ok()
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_632_174_146), "2021-09-20T21:42:26Z");
        assert_eq!(parse_rfc3339("2021-09-20T21:42:26Z"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2021-09-20T21:42:26.123Z"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2021-09-20T23:42:26+02:00"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z").map(format_rfc3339).as_deref(), Some("2024-02-29T00:00:00Z"));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2021-13-01T00:00:00Z"), None);
    }
}

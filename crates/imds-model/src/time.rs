//! Civil time as imds reads and writes it: RFC 3339 timestamps and UTC dates, for Unix seconds.
//!
//! The one place the calendar is handled, on the `time` crate: the record's timestamps, the
//! credential sources' expirations, and the dates and times dialects print. No clock here: the
//! caller passes the time (`imds_creds::Clock` in the daemon, a fixed value in tests).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Month, OffsetDateTime, UtcOffset};

/// The latest time [`format_rfc3339`] and [`format_date`] print (9999-12-31T23:59:59Z); later
/// times print as this one.
const LAST: i64 = 253_402_300_799;

fn utc(unix: u64) -> OffsetDateTime {
    let seconds = i64::try_from(unix).unwrap_or(LAST).min(LAST);
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds `unix`: whole seconds, UTC. The exact form of EC2's
/// `LastUpdated` and `Expiration` (botocore parses it with that `strptime` format).
pub fn format_rfc3339(unix: u64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    utc(unix).format(&format).unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `unix_millis` milliseconds since the Unix epoch: UTC, to the
/// millisecond (audit lines).
pub fn format_rfc3339_millis(unix_millis: u64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let at = utc(unix_millis / 1000) + time::Duration::milliseconds((unix_millis % 1000) as i64);
    at.format(&format).unwrap_or_default()
}

/// The UTC date `YYYY-MM-DD` of Unix seconds `unix` (proleptic Gregorian calendar).
pub fn format_date(unix: u64) -> String {
    utc(unix).format(&format_description!("[year]-[month]-[day]")).unwrap_or_default()
}

/// `21 Jan 2019 09:00:43 GMT` (day of the month without a leading zero) for Unix seconds
/// `unix`: the form of EC2's scheduled-event times (`events/maintenance/*`).
pub fn format_ec2_event(unix: u64) -> String {
    let format = format_description!("[day padding:none] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    utc(unix).format(&format).unwrap_or_default()
}

/// `2018-08-18 12:05:33` for Unix seconds `unix`, at UTC+8 (China Standard Time, no zone
/// written): the form of Tencent's `spot/termination-time`.
pub fn format_utc8(unix: u64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    utc(unix.saturating_add(8 * 3600)).format(&format).unwrap_or_default()
}

/// `Mon, 19 Sep 2016 18:29:47 GMT` for Unix seconds `unix`: RFC 1123, the form of Azure's
/// scheduled-event `NotBefore`.
pub fn format_rfc1123(unix: u64) -> String {
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    utc(unix).format(&format).unwrap_or_default()
}

/// An RFC 3339 timestamp (`2026-01-02T03:04:05Z`; fractional seconds, any offset, and a space
/// or lower-case `t` between date and time accepted) as Unix seconds; `None` when it is not
/// one or lies before 1970. Fractions of a second are dropped.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let parsed = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    u64::try_from(parsed.to_offset(UtcOffset::UTC).unix_timestamp()).ok()
}

/// The number of days of `month` (1 to 12) in `year`, or `None` for a month that does not exist.
pub fn days_in_month(year: i32, month: u8) -> Option<u8> {
    Month::try_from(month).ok().map(|month| month.length(year))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_632_174_146), "2021-09-20T21:42:26Z");
        assert_eq!(format_rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_rfc3339_millis(1_632_174_146_007), "2021-09-20T21:42:26.007Z");
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_rfc3339("2021-09-20T21:42:26Z"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339(" 2021-09-20t21:42:26z\n"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2021-09-20 21:42:26Z"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2021-09-20T21:42:26.123Z"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2021-09-20T23:42:26+02:00"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2021-09-20T19:42:26-02:00"), Some(1_632_174_146));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z").map(format_rfc3339).as_deref(), Some("2024-02-29T00:00:00Z"));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2021-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn event_times_print_in_each_clouds_form() {
        assert_eq!(format_ec2_event(1_548_061_243), "21 Jan 2019 09:00:43 GMT");
        assert_eq!(format_ec2_event(1_546_678_800), "5 Jan 2019 09:00:00 GMT");
        assert_eq!(format_rfc1123(1_474_309_787), "Mon, 19 Sep 2016 18:29:47 GMT");
        assert_eq!(format_rfc1123(1_546_678_800), "Sat, 05 Jan 2019 09:00:00 GMT");
        // China Standard Time crosses into the next day eight hours before UTC does.
        assert_eq!(format_utc8(1_474_309_787), "2016-09-20 02:29:47");
        assert_eq!(format_utc8(1_546_678_800), "2019-01-05 17:00:00");
    }

    #[test]
    fn dates_follow_the_calendar() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(951_782_400), "2000-02-29");
        assert_eq!(format_date(1_709_251_199), "2024-02-29");
        assert_eq!(format_date(1_709_251_200), "2024-03-01");
        assert_eq!(days_in_month(2024, 2), Some(29));
        assert_eq!(days_in_month(1900, 2), Some(28));
        assert_eq!(days_in_month(2000, 2), Some(29));
        assert_eq!(days_in_month(2026, 4), Some(30));
        assert_eq!(days_in_month(2026, 13), None);
        assert_eq!(days_in_month(2026, 0), None);
    }
}

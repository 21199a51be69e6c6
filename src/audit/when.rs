//! Times as officers type and read them: every time argument of the audit and quarantine
//! commands, and every time they print, in one time zone chosen with `--tz`.
//!
//! ```text
//!  --tz NAME ──► zone()  ── "UTC" | "Asia/Shanghai" | "+08:00" | none: the system's zone
//!
//!  "2026-11-30T22:36:00.250+08:00"  RFC 3339, any offset, any fraction ─┐
//!  "2026-11-30T22:36" "2026-11-30 22:36:00"  a wall time in the zone    │
//!  "2026-11-30"                     that day's start in the zone        ├─► parse() ─► ms since
//!  "now" "today" "yesterday"        now, today's / yesterday's start    │   the epoch (UTC)
//!  "-1h" "-30m" "-7d" "-1h30m"      that long before now                │
//!  "1764513360000"                  ms since the epoch                  ┘
//!
//!  ms since the epoch ──► format() ──► "2026-11-30T22:36:00.250+08:00" (the zone's offset)
//!                    └──► day()    ──► "2026-11-30" (the zone's calendar day)
//! ```
//!
//! Zone rules come from the system's tz database (`/usr/share/zoneinfo`, through `jiff`,
//! a maintained date-time crate with no further dependencies); a day is the zone's calendar
//! day, so a day across a daylight-saving change is 23 or 25 hours long.

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, Zoned};
use std::time::Duration;
use thiserror::Error;

/// The forms a time argument may take, for error messages.
pub const FORMS: &str = "RFC 3339 with any offset (2026-11-30T22:36:00+08:00), a wall time in \
the --tz zone (2026-11-30T22:36 or '2026-11-30 22:36:00'), a date (2026-11-30), now, today, \
yesterday, a time before now (-1h, -30m, -7d, -1h30m) or ms since the epoch (13 digits)";

/// The fewest digits a bare number needs to be read as ms since the epoch (12 digits:
/// March 1973 onwards); shorter numbers are refused rather than read as the 1970s.
pub const EPOCH_MS_DIGITS: usize = 12;

/// A time argument or zone name that cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WhenError {
    /// The text is none of the accepted forms ([`FORMS`]).
    #[error("{0:?} is not a time: use {FORMS}")]
    Time(String),
    /// The zone is neither `UTC`, an IANA name known to the system nor a `±HH:MM` offset.
    #[error("unknown time zone {0:?}: use UTC, an IANA name (Asia/Shanghai) or an offset (+08:00)")]
    Zone(String),
    /// A bare number too short to be ms since the epoch (fewer than 12 digits: before
    /// March 1973): a date typed without dashes or an age without its unit.
    #[error(
        "{0:?} is a number too short to be ms since the epoch: write a date as 2026-11-30, a time before now with its unit (-30d, -1h), or ms since the epoch in full (1764513360000)"
    )]
    Number(String),
    /// The time is before 1970 or too far ahead to be represented.
    #[error("{0:?} is outside the range of times the log holds (1970 onwards)")]
    Range(String),
}

/// The zone named by `--tz`: `UTC`/`Z`, an IANA name (`Asia/Shanghai`), a fixed offset
/// (`+08:00`, `-0500`), or `None` for the system's zone (`TZ`, then `/etc/localtime`; UTC
/// when neither tells).
///
/// # Errors
/// [`WhenError::Zone`] for a name the system's tz database does not know.
pub fn zone(name: Option<&str>) -> Result<TimeZone, WhenError> {
    let Some(name) = name.map(str::trim) else {
        return Ok(TimeZone::system());
    };
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(TimeZone::UTC);
    }
    if let Some(offset) = parse_offset(name) {
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(name).map_err(|_| WhenError::Zone(name.to_string()))
}

/// `+08:00`, `+0800`, `-05` as a fixed offset.
fn parse_offset(s: &str) -> Option<Offset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1i32, &s[1..]),
        b'-' => (-1i32, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// Reads a time argument (any of [`FORMS`]) as ms since the Unix epoch; wall times, dates,
/// `today` and `yesterday` are read in `tz`, relative forms count back from `now_ms`.
///
/// # Errors
/// [`WhenError::Time`] for text in no accepted form; [`WhenError::Range`] for a time before
/// 1970.
pub fn parse(s: &str, tz: &TimeZone, now_ms: u64) -> Result<u64, WhenError> {
    let text = s.trim();
    let bad = || WhenError::Time(s.to_string());
    let range = || WhenError::Range(s.to_string());
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // ms since the epoch have 13 digits today; a shorter number is a date typed without
        // dashes (20261130) or an age without a unit (30), never a time of the 1970s.
        if text.len() < EPOCH_MS_DIGITS {
            return Err(WhenError::Number(s.to_string()));
        }
        return text.parse::<u64>().map_err(|_| range());
    }
    let now = Timestamp::from_millisecond(i64::try_from(now_ms).map_err(|_| range())?)
        .map_err(|_| range())?;
    let start_of = |days_back: i64| -> Result<u64, WhenError> {
        let today = now.to_zoned(tz.clone()).date();
        let day = today
            .checked_sub(jiff::Span::new().days(days_back))
            .map_err(|_| range())?;
        to_ms(
            day.to_zoned(tz.clone()).map_err(|_| range())?.timestamp(),
            s,
        )
    };
    match text.to_ascii_lowercase().as_str() {
        "now" => return Ok(now_ms),
        "today" => return start_of(0),
        "yesterday" => return start_of(1),
        _ => {}
    }
    if let Some(ago) = text.strip_prefix('-') {
        let span: Duration = humantime::parse_duration(ago).map_err(|_| bad())?;
        let back = u64::try_from(span.as_millis()).map_err(|_| range())?;
        return now_ms.checked_sub(back).ok_or_else(range);
    }
    // Accept a space between date and time, as people write it.
    let iso = match text.split_once(' ') {
        Some((d, t)) if d.len() == 10 && !t.contains(' ') => format!("{d}T{t}"),
        _ => text.to_string(),
    };
    if let Ok(ts) = iso.parse::<Timestamp>() {
        if offset_hours(&iso).is_some_and(|h| h > MAX_OFFSET_HOURS) {
            return Err(bad());
        }
        return to_ms(ts, s);
    }
    if let Ok(dt) = iso.parse::<DateTime>()
        && iso.contains('T')
    {
        let zoned = dt.to_zoned(tz.clone()).map_err(|_| range())?;
        return to_ms(zoned.timestamp(), s);
    }
    if let Ok(date) = iso.parse::<Date>() {
        let zoned = date.to_zoned(tz.clone()).map_err(|_| range())?;
        return to_ms(zoned.timestamp(), s);
    }
    Err(bad())
}

/// The largest offset from UTC any zone uses, in hours (UTC+14, Line Islands; UTC−12):
/// RFC 3339's grammar allows up to 23, which only a typo gives.
const MAX_OFFSET_HOURS: u32 = 14;

/// The hours of the numeric offset ending an RFC 3339 time (`…T22:36:00+08:00` → 8), if any.
fn offset_hours(iso: &str) -> Option<u32> {
    let (_, time) = iso.split_once(['T', 't'])?;
    let at = time.rfind(['+', '-'])?;
    time.get(at + 1..at + 3)?.parse().ok()
}

fn to_ms(ts: Timestamp, s: &str) -> Result<u64, WhenError> {
    u64::try_from(ts.as_millisecond()).map_err(|_| WhenError::Range(s.to_string()))
}

fn zoned(ms: u64, tz: &TimeZone) -> Zoned {
    let ts = i64::try_from(ms)
        .ok()
        .and_then(|m| Timestamp::from_millisecond(m).ok())
        .unwrap_or(Timestamp::MAX);
    ts.to_zoned(tz.clone())
}

/// `ms` since the epoch as RFC 3339 with milliseconds and `tz`'s offset at that instant:
/// `2026-11-30T22:36:00.250+08:00` (`Z` in UTC).
pub fn format(ms: u64, tz: &TimeZone) -> String {
    let z = zoned(ms, tz);
    if z.offset() == Offset::UTC && tz == &TimeZone::UTC {
        z.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
    }
}

/// The calendar day in `tz` that holds `ms` since the epoch, as `2026-11-30`.
pub fn day(ms: u64, tz: &TimeZone) -> String {
    zoned(ms, tz).strftime("%Y-%m-%d").to_string()
}

/// The instant `days` calendar days before `ms` in `tz` (the same wall time; 7 days across
/// a daylight-saving change are 167 or 169 hours), as ms since the epoch; 0 when that is
/// before 1970.
pub fn days_before(ms: u64, days: i64, tz: &TimeZone) -> u64 {
    zoned(ms, tz)
        .checked_sub(jiff::Span::new().days(days))
        .ok()
        .and_then(|z| u64::try_from(z.timestamp().as_millisecond()).ok())
        .unwrap_or(0)
}

/// The zone's name for headers and reports: its IANA name when known (`Asia/Shanghai`),
/// else its offset now (`+08:00`).
pub fn zone_name(tz: &TimeZone, now_ms: u64) -> String {
    match tz.iana_name() {
        Some(name) => name.to_string(),
        None if tz == &TimeZone::UTC => "UTC".to_string(),
        None => zoned(now_ms, tz).strftime("%:z").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_513_360_000; // 2025-11-30T14:36:00Z = 22:36 in Beijing

    fn shanghai() -> TimeZone {
        zone(Some("Asia/Shanghai")).unwrap()
    }

    #[test]
    fn rfc3339_keeps_every_offset_with_or_without_fraction() {
        let utc = TimeZone::UTC;
        assert_eq!(parse("2025-11-30T22:36:00+08:00", &utc, NOW), Ok(NOW));
        assert_eq!(parse("2025-11-30T22:36:00.000+08:00", &utc, NOW), Ok(NOW));
        assert_eq!(
            parse("2025-11-30T22:36:00.250+08:00", &utc, NOW),
            Ok(NOW + 250)
        );
        assert_eq!(parse("2025-11-30T14:36:00Z", &utc, NOW), Ok(NOW));
        assert_eq!(parse("2025-12-01T04:36:00+14:00", &utc, NOW), Ok(NOW));
        assert_eq!(parse("2025-11-30T02:36:00-12:00", &utc, NOW), Ok(NOW));
        assert_eq!(parse("2025-11-30 09:36:00-05:00", &utc, NOW), Ok(NOW));
        // The zone does not change a time that carries its own offset.
        assert_eq!(
            parse("2025-11-30T22:36:00+08:00", &shanghai(), NOW),
            Ok(NOW)
        );
    }

    #[test]
    fn wall_times_and_dates_are_read_in_the_zone() {
        let sh = shanghai();
        assert_eq!(parse("2025-11-30T22:36", &sh, 0), Ok(NOW));
        assert_eq!(parse("2025-11-30 22:36:00", &sh, 0), Ok(NOW));
        assert_eq!(parse("2025-11-30T14:36", &TimeZone::UTC, 0), Ok(NOW));
        // Midnight in Beijing is 16:00 UTC the day before.
        assert_eq!(
            parse("2025-11-30", &sh, 0),
            parse("2025-11-29T16:00:00Z", &sh, 0)
        );
        assert_eq!(
            parse("2025-11-30", &TimeZone::UTC, 0),
            parse("2025-11-30T00:00:00Z", &sh, 0)
        );
    }

    #[test]
    fn relative_forms_count_back_from_now() {
        let sh = shanghai();
        assert_eq!(parse("now", &sh, NOW), Ok(NOW));
        assert_eq!(parse("-1h", &sh, NOW), Ok(NOW - 3_600_000));
        assert_eq!(parse("-30m", &sh, NOW), Ok(NOW - 1_800_000));
        assert_eq!(parse("-7d", &sh, NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse("-1h30m", &sh, NOW), Ok(NOW - 5_400_000));
        assert_eq!(parse("today", &sh, NOW), parse("2025-11-30", &sh, 0));
        assert_eq!(parse("yesterday", &sh, NOW), parse("2025-11-29", &sh, 0));
        // At 22:36 Beijing time it is still the 30th in Beijing but in UTC too; at 02:00
        // Beijing on 1 December, "today" in Beijing is the 1st while UTC says the 30th.
        let early = parse("2025-12-01T02:00:00+08:00", &sh, 0).unwrap();
        assert_eq!(parse("today", &sh, early), parse("2025-12-01", &sh, 0));
        assert_eq!(
            parse("today", &TimeZone::UTC, early),
            parse("2025-11-30", &TimeZone::UTC, 0)
        );
    }

    #[test]
    fn epoch_ms_still_read() {
        assert_eq!(parse("1764513360000", &TimeZone::UTC, 0), Ok(NOW));
        assert_eq!(
            parse("100000000000", &TimeZone::UTC, 0),
            Ok(100_000_000_000)
        );
        // a date without dashes, an age without its unit: refused, never the 1970s
        for short in ["20261130", "30", "1000", "99999999999"] {
            assert!(
                matches!(parse(short, &TimeZone::UTC, NOW), Err(WhenError::Number(_))),
                "{short}"
            );
        }
    }

    #[test]
    fn bad_forms_say_which_forms_are_good() {
        for bad in [
            "",
            "tomorrow-ish",
            "2025-13-01",
            "-1 fortnight",
            "22:36",
            "1h",
            "2025-11-30T22:36:00+25:00",
            "2025-11-30T22:36:00+15:00",
        ] {
            let e = parse(bad, &TimeZone::UTC, NOW).unwrap_err();
            assert!(matches!(e, WhenError::Time(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("RFC 3339"), "{e}");
        }
        assert!(matches!(
            parse("1969-12-31T23:00:00Z", &TimeZone::UTC, NOW),
            Err(WhenError::Range(_))
        ));
        assert!(matches!(
            parse("-100000d", &TimeZone::UTC, NOW),
            Err(WhenError::Range(_))
        ));
    }

    #[test]
    fn zones_by_name_offset_or_utc() {
        assert_eq!(zone(Some("UTC")).unwrap(), TimeZone::UTC);
        assert_eq!(
            format(NOW, &zone(Some("+08:00")).unwrap()),
            "2025-11-30T22:36:00.000+08:00"
        );
        assert_eq!(
            format(NOW, &zone(Some("-0500")).unwrap()),
            "2025-11-30T09:36:00.000-05:00"
        );
        assert_eq!(
            format(NOW + 7, &shanghai()),
            "2025-11-30T22:36:00.007+08:00"
        );
        assert_eq!(format(NOW, &TimeZone::UTC), "2025-11-30T14:36:00.000Z");
        assert!(matches!(
            zone(Some("Mars/Olympus")),
            Err(WhenError::Zone(_))
        ));
        assert!(matches!(zone(Some("+25:00")), Err(WhenError::Zone(_))));
        assert_eq!(zone_name(&shanghai(), NOW), "Asia/Shanghai");
        assert_eq!(zone_name(&TimeZone::UTC, NOW), "UTC");
    }

    #[test]
    fn calendar_days_before_keep_the_wall_time_across_dst() {
        let berlin = zone(Some("Europe/Berlin")).unwrap();
        // 2025-10-26: clocks go back an hour in Berlin; 7 days before the 30th at 00:00 is
        // the 23rd at 00:00, 7 × 24 + 1 hours earlier
        let end = parse("2025-10-30", &berlin, 0).unwrap();
        let start = days_before(end, 7, &berlin);
        assert_eq!(start, parse("2025-10-23", &berlin, 0).unwrap());
        assert_eq!(end - start, (7 * 24 + 1) * 3_600_000);
        assert_eq!(days_before(end, 7, &TimeZone::UTC), end - 7 * 86_400_000);
        assert_eq!(days_before(1000, 7, &TimeZone::UTC), 0);
    }

    #[test]
    fn days_follow_the_zone() {
        let late = parse("2025-11-30T17:00:00Z", &TimeZone::UTC, 0).unwrap();
        assert_eq!(day(late, &TimeZone::UTC), "2025-11-30");
        assert_eq!(day(late, &shanghai()), "2025-12-01");
    }
}

//! Calendar dates and event times. In JSON they read as `2026-11-29` and RFC 3339
//! (`2026-11-29T09:30:00+08:00`); in the canonical form they are integers, so no
//! two encodings name the same instant.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;
pub const MS_PER_DAY: i64 = 86_400_000;

/// A calendar date as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

impl Date {
    pub fn parse(s: &str) -> Result<Date, String> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let d = time::Date::parse(s, &fmt)
            .map_err(|e| format!("'{s}' is not a date YYYY-MM-DD: {e}"))?;
        Ok(Date(d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
    }

    pub fn to_calendar(self) -> Option<time::Date> {
        time::Date::from_julian_day(self.0.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()
    }

    /// The UTC+8 calendar date of a moment: dates in this ledger are Beijing time.
    pub fn of_ms_beijing(ms: i64) -> Date {
        Date(((ms + 8 * 3_600_000).div_euclid(MS_PER_DAY)) as i32)
    }

    /// Dates the ledger accepts: years 1970 to 9999, which JSON prints and reads back.
    pub fn is_plausible(self) -> bool {
        self.to_calendar()
            .is_some_and(|d| (1970..=9999).contains(&d.year()))
    }

    pub fn plus_days(self, days: u32) -> Date {
        Date(
            self.0
                .saturating_add(i32::try_from(days).unwrap_or(i32::MAX)),
        )
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_calendar() {
            Some(d) => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day()),
            None => write!(f, "day {}", self.0),
        }
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Date::parse(&String::deserialize(d)?).map_err(D::Error::custom)
        } else {
            i32::deserialize(d).map(Date)
        }
    }
}

/// When something happened, with the local offset of where it happened (EPCIS
/// `eventTime` with `eventTimeZoneOffset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime {
    pub unix_ms: i64,
    pub offset_minutes: i16,
}

impl EventTime {
    pub fn parse(s: &str) -> Result<EventTime, String> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("'{s}' is not an RFC 3339 time: {e}"))?;
        Ok(EventTime {
            unix_ms: (t.unix_timestamp_nanos() / 1_000_000) as i64,
            offset_minutes: t.offset().whole_minutes(),
        })
    }

    pub fn to_offset_date_time(self) -> Option<OffsetDateTime> {
        let off = UtcOffset::from_whole_seconds(i32::from(self.offset_minutes) * 60).ok()?;
        Some(
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.unix_ms) * 1_000_000)
                .ok()?
                .to_offset(off),
        )
    }

    /// Offsets in use lie within ±14 h; years 1970 to 9999 (RFC 3339's range).
    pub fn is_plausible(self) -> bool {
        self.offset_minutes.abs() <= 14 * 60
            && self
                .to_offset_date_time()
                .is_some_and(|t| (1970..=9999).contains(&t.year()))
    }
}

impl std::fmt::Display for EventTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self
            .to_offset_date_time()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(s) => f.write_str(&s),
            None => write!(f, "{} ms {:+} min", self.unix_ms, self.offset_minutes),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct EventTimeRaw(i64, i16);

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            EventTimeRaw(self.unix_ms, self.offset_minutes).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            EventTime::parse(&String::deserialize(d)?).map_err(D::Error::custom)
        } else {
            let EventTimeRaw(unix_ms, offset_minutes) = EventTimeRaw::deserialize(d)?;
            Ok(EventTime {
                unix_ms,
                offset_minutes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_read_and_print_alike() {
        let d = Date::parse("2026-11-29").unwrap();
        assert_eq!(d.to_string(), "2026-11-29");
        assert_eq!(Date::parse("1970-01-02").unwrap(), Date(1));
        assert!(Date::parse("2026-02-30").is_err());
        let t = EventTime::parse("2026-11-29T09:30:00+08:00").unwrap();
        assert_eq!(t.offset_minutes, 480);
        assert_eq!(t.to_string(), "2026-11-29T09:30:00+08:00");
        assert_eq!(Date::of_ms_beijing(t.unix_ms), d);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-29T09:30:00+08:00\""
        );
    }
}

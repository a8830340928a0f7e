//! The trading session's close, in the venue's own time zone: when `day` orders expire. Every
//! day has a close (weekends and holidays are the venue's to refuse, not the engine's to know).

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone)]
pub struct SessionClose {
    at: Time,
    zone: TimeZone,
}

impl SessionClose {
    /// `at` as `HH:MM` on the clock of `zone`, an IANA name such as `Asia/Kolkata`.
    pub fn parse(at: &str, zone: &str) -> Result<Self, String> {
        let at: Time = at
            .parse()
            .map_err(|e| format!("the session close {at:?} is no HH:MM time: {e}"))?;
        let zone = TimeZone::get(zone)
            .map_err(|e| format!("the session time zone {zone:?} is unknown: {e}"))?;
        Ok(Self { at, zone })
    }

    /// The first close after `micros` (microseconds since the Unix epoch), in the same unit.
    pub fn next_after(&self, micros: i64) -> Result<i64, String> {
        let now = Timestamp::from_microsecond(micros).map_err(|e| e.to_string())?;
        let today = now.to_zoned(self.zone.clone()).date();
        for days in 0..3_i64 {
            let day = today.checked_add(days.days()).map_err(|e| e.to_string())?;
            // A close that a clock change skips is taken as the wall clock says after it.
            let close = day
                .to_datetime(self.at)
                .to_zoned(self.zone.clone())
                .map_err(|e| e.to_string())?
                .timestamp();
            if close > now {
                let since_epoch = close.duration_since(Timestamp::UNIX_EPOCH);
                return i64::try_from(since_epoch.as_micros()).map_err(|e| e.to_string());
            }
        }
        Err(format!("no session close follows {now}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(at: &str) -> i64 {
        let ts: Timestamp = at.parse().unwrap();
        ts.as_microsecond()
    }

    #[test]
    fn a_day_order_expires_at_the_next_close_in_the_sessions_zone() {
        let india = SessionClose::parse("15:30", "Asia/Kolkata").unwrap();
        // 15:30 in India is 10:00 UTC.
        assert_eq!(
            india.next_after(micros("2026-12-07T09:59:59Z")),
            Ok(micros("2026-12-07T10:00:00Z"))
        );
        assert_eq!(
            india.next_after(micros("2026-12-07T10:00:00Z")),
            Ok(micros("2026-12-08T10:00:00Z")),
            "an order made at the close lives until the next one"
        );
        // New York's clocks go forward on 8 March 2026: the close moves from 21:00 to 20:00 UTC.
        let new_york = SessionClose::parse("16:00", "America/New_York").unwrap();
        assert_eq!(
            new_york.next_after(micros("2026-03-07T22:00:00Z")),
            Ok(micros("2026-03-08T20:00:00Z"))
        );
        assert_eq!(
            new_york.next_after(micros("2026-03-06T20:59:00Z")),
            Ok(micros("2026-03-06T21:00:00Z"))
        );
    }

    #[test]
    fn a_bad_close_or_zone_is_refused() {
        assert!(SessionClose::parse("25:00", "Asia/Kolkata").is_err());
        assert!(SessionClose::parse("15:30", "Mars/Olympus").is_err());
        assert!(SessionClose::parse("15:30", "Asia/Kolkata").is_ok());
    }
}

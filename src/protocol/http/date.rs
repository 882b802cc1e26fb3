//! A cached HTTP `Date` header value (IMF-fixdate), formatted by hand.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate such as `Thu, 26 Nov 2026 15:42:58 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// Latest second representable with a four-digit year (9999-12-31T23:59:59Z).
const MAX_SECS: u64 = 253_402_300_799;

const WEEKDAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The current HTTP date, re-formatted at most once per second.
///
/// Keep one per event loop, call [`DateCache::update`] from the loop's tick
/// (or before each batch), and pass [`DateCache::get`] to the response
/// writers. No allocation happens after construction.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use netloop::protocol::http::DateCache;
/// let mut cache = DateCache::at(UNIX_EPOCH + Duration::from_secs(784_111_777));
/// assert_eq!(cache.get(), b"Sun, 06 Nov 1994 08:49:37 GMT");
/// assert!(!cache.update(UNIX_EPOCH + Duration::from_millis(784_111_777_900)));
/// ```
#[derive(Debug, Clone)]
pub struct DateCache {
    buf: [u8; HTTP_DATE_LEN],
    secs: u64,
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DateCache {
    /// A cache holding the current time.
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A cache holding `now`.
    pub fn at(now: SystemTime) -> Self {
        let secs = unix_secs(now);
        let mut buf = [0u8; HTTP_DATE_LEN];
        format_http_date(secs, &mut buf);
        DateCache { buf, secs }
    }

    /// Refreshes the cached string if `now` is in a different second.
    /// Returns whether it changed.
    pub fn update(&mut self, now: SystemTime) -> bool {
        let secs = unix_secs(now);
        if secs == self.secs {
            return false;
        }
        self.secs = secs;
        format_http_date(secs, &mut self.buf);
        true
    }

    /// The cached date, e.g. `Thu, 26 Nov 2026 15:42:58 GMT`.
    pub fn get(&self) -> &[u8] {
        &self.buf
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS)
}

/// Converts days since 1970-01-01 into a proleptic Gregorian
/// `(year, month 1..=12, day 1..=31)` (the "civil from days" algorithm:
/// shift the epoch to 0000-03-01 so leap days end each 400-year era).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097); // 400-year eras of 146097 days
    let doe = z.rem_euclid(146_097); // day of era [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year
    let mp = (5 * doy + 2) / 153; // month index, March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn put2(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Formats `unix_secs` (clamped to year 9999) as an IMF-fixdate into `out`.
///
/// ```
/// let mut out = [0u8; 29];
/// netloop::protocol::http::format_http_date(0, &mut out);
/// assert_eq!(&out, b"Thu, 01 Jan 1970 00:00:00 GMT");
/// ```
pub fn format_http_date(unix_secs: u64, out: &mut [u8; HTTP_DATE_LEN]) {
    let secs = unix_secs.min(MAX_SECS);
    let days = (secs / 86_400) as i64;
    let sod = (secs % 86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    let weekday = ((days + 4) % 7) as usize; // 1970-01-01 was a Thursday
    out[..3].copy_from_slice(WEEKDAYS[weekday]);
    out[3..5].copy_from_slice(b", ");
    put2(&mut out[5..7], day);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    let y = year as u32;
    put2(&mut out[12..14], y / 100);
    put2(&mut out[14..16], y % 100);
    out[16] = b' ';
    put2(&mut out[17..19], sod / 3600);
    out[19] = b':';
    put2(&mut out[20..22], sod / 60 % 60);
    out[22] = b':';
    put2(&mut out[23..25], sod % 60);
    out[25..].copy_from_slice(b" GMT");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fmt(secs: u64) -> String {
        let mut out = [0u8; HTTP_DATE_LEN];
        format_http_date(secs, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn known_dates() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(951_868_799), "Tue, 29 Feb 2000 23:59:59 GMT");
        assert_eq!(fmt(951_868_800), "Wed, 01 Mar 2000 00:00:00 GMT");
        assert_eq!(fmt(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(fmt(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(fmt(1_795_707_778), "Thu, 26 Nov 2026 15:42:58 GMT");
        assert_eq!(fmt(MAX_SECS), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(fmt(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn civil_matches_day_by_day_walk() {
        // Walk 1970..2400 day by day with an independent month-length table.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..157_000i64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn update_once_per_second() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_795_707_778);
        let mut c = DateCache::at(t0);
        assert!(!c.update(t0 + Duration::from_millis(999)));
        assert!(c.update(t0 + Duration::from_secs(1)));
        assert_eq!(c.get(), b"Thu, 26 Nov 2026 15:42:59 GMT");
        // Before the epoch clamps to it.
        assert!(c.update(UNIX_EPOCH - Duration::from_secs(5)));
        assert_eq!(c.get(), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(DateCache::new().get().len(), HTTP_DATE_LEN);
    }
}

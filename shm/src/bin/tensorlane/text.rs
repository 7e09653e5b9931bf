//! Plain-text output: aligned tables, times, durations.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tensorlane_shm::Clock;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to standard output; if that fails (the reader went away), drops it
/// and remembers, instead of panicking as `println!` does.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    if writeln!(std::io::stdout().lock(), "{line}").is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether a write to standard output has failed.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Prints `rows` under `headers`, columns left-aligned and two spaces apart. A row
/// with fewer cells than headers (an error row) ends with its last cell unpadded.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        if row.len() < headers.len() {
            continue;
        }
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out!("{}", out.trim_end());
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
}

/// Now, in nanoseconds since the Unix epoch (`CLOCK_REALTIME`, as creation times).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD HH:MM:SS.mmm UTC` of a time in ns since the Unix epoch.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = (ns % 1_000_000_000) / 1_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `HH:MM:SS.mmm` (UTC) of a time in ns since the Unix epoch.
pub fn clock(ns: u64) -> String {
    utc(ns)[11..23].to_string()
}

/// A duration in nanoseconds, with a unit that keeps 3 significant digits.
pub fn duration(ns: i128) -> String {
    let (sign, ns) = if ns < 0 { ("-", -ns) } else { ("", ns) };
    let ns = ns as f64;
    let text = if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns < 3600e9 {
        format!("{:.1} s", ns / 1e9)
    } else {
        format!("{:.1} h", ns / 3600e9)
    };
    format!("{sign}{text}")
}

/// How long ago a frame stamped `timestamp_ns` by `clock` was written; `None` for a
/// lane that does not stamp.
pub fn frame_age(clock: Clock, timestamp_ns: u64) -> Option<i128> {
    match clock {
        Clock::None => None,
        _ => Some(i128::from(clock.now_ns()) - i128::from(timestamp_ns)),
    }
}

/// How long ago `then_ns` (ns since the Unix epoch) was.
pub fn age(then_ns: u64) -> i128 {
    i128::from(now_ns()) - i128::from(then_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_827_696_789_000_000), "2000-02-29 12:34:56.789 UTC");
        assert_eq!(
            utc(4_102_444_800_000_000_000),
            "2100-01-01 00:00:00.000 UTC"
        );
        assert_eq!(clock(3_723_004_000_000), "01:02:03.004");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(999), "999 ns");
        assert_eq!(duration(1_500), "1.5 us");
        assert_eq!(duration(-2_500_000), "-2.5 ms");
        assert_eq!(duration(12_000_000_000), "12.0 s");
    }
}

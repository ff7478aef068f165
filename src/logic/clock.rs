//! Counting down against the server's clock.
//!
//! Every response that carries a deadline also carries `server_time`; the browser's clock may be
//! off by minutes, so deadlines are compared with `local now + offset`, where the offset is
//! measured from the latest `server_time` seen.

use chrono::{DateTime, Utc};

use crate::i18n::{t, tn};

/// How far the server's clock is ahead of ours, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockOffset(pub i64);

impl ClockOffset {
    /// The offset measured from a `server_time` received when our clock read `local_ms`.
    pub fn measure(server_time: DateTime<Utc>, local_ms: i64) -> Self {
        Self(server_time.timestamp_millis() - local_ms)
    }

    /// The server's time now, by our clock.
    pub fn server_now_ms(self, local_ms: i64) -> i64 {
        local_ms + self.0
    }
}

/// Milliseconds from `now_ms` (server clock) to `deadline`; never negative.
pub fn remaining_ms(deadline: DateTime<Utc>, server_now_ms: i64) -> i64 {
    (deadline.timestamp_millis() - server_now_ms).max(0)
}

/// Whole seconds shown for `remaining_ms`: rounded up, so "00:01" shows until the very end and
/// "00:00" means time is up.
pub fn display_seconds(remaining_ms: i64) -> u64 {
    (remaining_ms.max(0) as u64).div_ceil(1000)
}

/// `mm:ss` under an hour, `hh:mm:ss` from an hour on.
pub fn format_countdown(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    if h > 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// `m:ss`, minutes unpadded: how a short time to act is read ("join within 1:45").
pub fn format_short(seconds: u64) -> String {
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// The estimated wait as a person reads it, from the milliseconds left to the range's two
/// ends: "Less than a minute" when even the later end is under a minute away, else whole
/// minutes, the earlier end rounded down and the later one up ("About 8–12 minutes"), or one
/// number where both round the same.
pub fn wait_text(earliest_ms: i64, latest_ms: i64) -> String {
    let latest = latest_ms.max(0);
    if latest < 60_000 {
        return t("wait.under_a_minute").to_string();
    }
    let high = (latest as u64).div_ceil(60_000) as i64;
    let low = ((earliest_ms.max(0) as u64) / 60_000).max(1) as i64;
    // A range narrower than a minute is one number, not "9–10" from rounding alone.
    if latest - earliest_ms.max(0) < 60_000 || low >= high {
        tn("wait.minutes", high, &[])
    } else {
        tn("wait.range", high, &[("low", &crate::i18n::number(low))])
    }
}

/// "Updated just now" / "Updated 3 min ago", from the milliseconds since the last update.
pub fn updated_text(since_ms: i64) -> String {
    let minutes = since_ms.max(0) / 60_000;
    if minutes == 0 {
        t("hold.updated_now").to_string()
    } else {
        tn("hold.updated_ago", minutes, &[])
    }
}

/// How long to wait so the next tick lands just after the displayed second changes; ticks on the
/// second boundary mean a shown second never skips or repeats.
pub fn ms_to_next_second(remaining_ms: i64) -> u32 {
    let into = remaining_ms.rem_euclid(1000);
    // A few ms past the boundary so the next reading is already on the new second.
    (if into == 0 { 1000 } else { into }) as u32 + 5
}

/// Whether a countdown crossed `threshold_ms` between two readings (from above it to at or below).
pub fn crossed(previous_ms: Option<i64>, now_ms: i64, threshold_ms: i64) -> bool {
    now_ms <= threshold_ms && previous_ms.is_none_or(|p| p > threshold_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn offset_corrects_a_wrong_local_clock() {
        // Our clock is 90 s behind the server's.
        let server = at("2026-11-23T10:00:00Z");
        let local = server.timestamp_millis() - 90_000;
        let off = ClockOffset::measure(server, local);
        assert_eq!(off, ClockOffset(90_000));
        let deadline = at("2026-11-23T10:05:00Z");
        assert_eq!(remaining_ms(deadline, off.server_now_ms(local)), 300_000);
    }

    #[test]
    fn remaining_never_goes_negative() {
        let deadline = at("2026-11-23T10:00:00Z");
        assert_eq!(
            remaining_ms(deadline, deadline.timestamp_millis() + 5_000),
            0
        );
        assert_eq!(wait_text(-10, -10), "Less than a minute");
    }

    #[test]
    fn countdown_formats() {
        assert_eq!(format_countdown(0), "00:00");
        assert_eq!(format_countdown(59), "00:59");
        assert_eq!(format_countdown(300), "05:00");
        assert_eq!(format_countdown(3599), "59:59");
        assert_eq!(format_countdown(3600), "01:00:00");
        assert_eq!(format_countdown(5400 + 7), "01:30:07");
        assert_eq!(format_short(105), "1:45");
        assert_eq!(format_short(9), "0:09");
        assert_eq!(format_short(180), "3:00");
        assert_eq!(display_seconds(4_001), 5);
        assert_eq!(display_seconds(4_000), 4);
        assert_eq!(display_seconds(1), 1);
        assert_eq!(display_seconds(0), 0);
    }

    #[test]
    fn wait_is_a_range_in_whole_minutes() {
        crate::i18n::set_lang(crate::i18n::Lang::En);
        assert_eq!(wait_text(0, 59_999), "Less than a minute");
        assert_eq!(wait_text(0, 60_000), "About 1 minute");
        assert_eq!(wait_text(30_000, 60_001), "About 2 minutes");
        assert_eq!(wait_text(0, 60_001), "About 1–2 minutes");
        assert_eq!(
            wait_text(9 * 60_000 + 30_000, 9 * 60_000 + 30_000),
            "About 10 minutes"
        );
        assert_eq!(
            wait_text(8 * 60_000 + 5, 12 * 60_000 - 5),
            "About 8–12 minutes"
        );
        assert_eq!(wait_text(9 * 60_000, 9 * 60_000), "About 9 minutes");
        assert_eq!(updated_text(59_000), "Updated just now");
        assert_eq!(updated_text(60_000), "Updated 1 min ago");
        assert_eq!(updated_text(180_500), "Updated 3 min ago");
        crate::i18n::set_lang(crate::i18n::Lang::De);
        assert_eq!(wait_text(8 * 60_000, 12 * 60_000), "Etwa 8–12 Minuten");
        assert_eq!(wait_text(0, 1_000), "Weniger als eine Minute");
        assert_eq!(updated_text(120_000), "Vor 2 Min. aktualisiert");
        crate::i18n::set_lang(crate::i18n::Lang::En);
    }

    #[test]
    fn ticks_land_on_second_boundaries() {
        assert_eq!(ms_to_next_second(4_300), 305);
        assert_eq!(ms_to_next_second(4_000), 1005);
        assert_eq!(ms_to_next_second(999), 1004);
    }

    #[test]
    fn crossing_a_threshold_happens_once() {
        let five = 300_000;
        assert!(crossed(Some(300_500), 299_900, five));
        assert!(!crossed(Some(299_900), 298_900, five), "already below");
        assert!(crossed(None, 120_000, five), "first reading already below");
        assert!(!crossed(Some(400_000), 350_000, five));
    }
}

//! Opening hours: whether a group's queue is open at an instant, and when it opens next, from
//! its weekly schedule and closed dates in its own time zone (daylight-saving changes included).

use callqueue_protocol::admin::{AtClosing, GroupSettings, OpeningSpan};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A group's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    pub open: bool,
    /// When closed: the next opening, if any within a year.
    pub opens_at: Option<DateTime<Utc>>,
}

/// How far ahead the next opening is looked for (closed dates can cover weeks).
const LOOK_AHEAD_DAYS: i64 = 400;

/// Checks settings an admin sent; the message says what is wrong.
pub fn validate(s: &GroupSettings, max_call_seconds: u32) -> Result<(), String> {
    s.time_zone.parse::<Tz>().map_err(|_| {
        format!(
            "unknown time zone {:?} (use an IANA name such as Europe/Berlin)",
            s.time_zone
        )
    })?;
    for span in &s.hours {
        let (opens, closes) = span_times(span)?;
        if span.weekday > 6 {
            return Err(format!("weekday {} (0 is Monday, 6 Sunday)", span.weekday));
        }
        if closes <= opens {
            return Err(format!(
                "{}–{}: closing must come after opening",
                span.opens, span.closes
            ));
        }
    }
    if s.display_name
        .as_deref()
        .is_some_and(|n| !callqueue_protocol::is_display_name(n))
    {
        return Err("a display name has 1 to 80 characters and no control characters".into());
    }
    if let Some(secs) = s.call_seconds
        && !(60..=max_call_seconds).contains(&secs)
    {
        return Err(format!(
            "call length {secs} s: from 60 to {max_call_seconds}"
        ));
    }
    if let Some(secs) = s.join_window_secs
        && !(15..=3600).contains(&secs)
    {
        return Err(format!("join window {secs} s: from 15 to 3600"));
    }
    if s.hours.len() > 70 || s.closed_dates.len() > 1000 {
        return Err("too many opening spans or closed dates".into());
    }
    Ok(())
}

/// Opening and closing as minutes since midnight (`24:00` is 1440).
fn span_times(span: &OpeningSpan) -> Result<(u32, u32), String> {
    Ok((minutes(&span.opens)?, minutes(&span.closes)?))
}

fn minutes(hhmm: &str) -> Result<u32, String> {
    let bad = || format!("{hhmm:?} is not a time of day (HH:MM)");
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(1440),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

/// The instant a local date and minute of the day is in `tz`. A time that does not exist (the
/// hour skipped when clocks go forward) becomes the first instant after the gap; one that
/// happens twice (clocks going back) the first time.
fn instant(tz: Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let midnight = date.and_time(NaiveTime::MIN);
    let local = midnight + Duration::minutes(minute as i64);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => (1..=180).find_map(|m| {
            tz.from_local_datetime(&(local + Duration::minutes(m)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        }),
    }
}

/// Whether a group closes its queue at closing time (`at_closing: close`) and is closed at `now`.
pub fn closes_queue(s: &GroupSettings, now: DateTime<Utc>) -> bool {
    s.at_closing == AtClosing::Close && !opening(s, now).open
}

/// Whether the group is open at `now`, and if not, when it opens next.
pub fn opening(s: &GroupSettings, now: DateTime<Utc>) -> Opening {
    if s.hours.is_empty() && s.closed_dates.is_empty() {
        return Opening {
            open: true,
            opens_at: None,
        };
    }
    let tz: Tz = s.time_zone.parse().unwrap_or(Tz::UTC);
    // Spans of a local date, as instants: (opens, closes).
    let spans = |date: NaiveDate| -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if s.closed_dates.contains(&date) {
            return Vec::new();
        }
        let weekday = date.weekday().num_days_from_monday() as u8;
        if s.hours.is_empty() {
            // Closed dates alone: open all day otherwise.
            return instant(tz, date, 0)
                .zip(instant(tz, date, 1440))
                .into_iter()
                .collect();
        }
        s.hours
            .iter()
            .filter(|span| span.weekday == weekday)
            .filter_map(|span| {
                let (opens, closes) = span_times(span).ok()?;
                Some((instant(tz, date, opens)?, instant(tz, date, closes)?))
            })
            .collect()
    };
    let today = now.with_timezone(&tz).date_naive();
    // Yesterday too: a span's instants are computed from its own date.
    let mut next: Option<DateTime<Utc>> = None;
    for offset in -1..LOOK_AHEAD_DAYS {
        let Some(date) = today.checked_add_signed(Duration::days(offset)) else {
            break;
        };
        for (opens, closes) in spans(date) {
            if opens <= now && now < closes {
                return Opening {
                    open: true,
                    opens_at: None,
                };
            }
            if opens > now && next.is_none_or(|n| opens < n) {
                next = Some(opens);
            }
        }
        if next.is_some() && offset >= 1 {
            break;
        }
    }
    Opening {
        open: false,
        opens_at: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekdays_9_to_17(tz: &str) -> GroupSettings {
        GroupSettings {
            time_zone: tz.into(),
            hours: (0..5)
                .map(|weekday| OpeningSpan {
                    weekday,
                    opens: "09:00".into(),
                    closes: "17:00".into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_minute_of_opening_is_open_and_the_minute_of_closing_is_not() {
        let s = weekdays_9_to_17("Europe/Berlin");
        // Monday 2026-12-07, Berlin is UTC+1 in winter.
        let before = opening(&s, at("2026-12-07T07:59:59Z"));
        assert!(!before.open);
        assert_eq!(before.opens_at, Some(at("2026-12-07T08:00:00Z")));
        assert!(
            opening(&s, at("2026-12-07T08:00:00Z")).open,
            "09:00 local opens"
        );
        assert!(opening(&s, at("2026-12-07T15:59:59Z")).open);
        let closed = opening(&s, at("2026-12-07T16:00:00Z"));
        assert!(!closed.open, "17:00 local is closed");
        assert_eq!(
            closed.opens_at,
            Some(at("2026-12-08T08:00:00Z")),
            "Tuesday 9:00"
        );
    }

    #[test]
    fn the_weekend_waits_for_monday() {
        let s = weekdays_9_to_17("Europe/Berlin");
        // Saturday 2026-12-05 at noon.
        let o = opening(&s, at("2026-12-05T11:00:00Z"));
        assert!(!o.open);
        assert_eq!(o.opens_at, Some(at("2026-12-07T08:00:00Z")));
    }

    #[test]
    fn daylight_saving_changes_keep_local_hours() {
        let s = weekdays_9_to_17("Europe/Berlin");
        // Clocks go forward on Sunday 2027-03-28: on Monday 9:00 is 07:00 UTC, not 08:00.
        let o = opening(&s, at("2027-03-27T12:00:00Z"));
        assert_eq!(o.opens_at, Some(at("2027-03-29T07:00:00Z")));
        assert!(!opening(&s, at("2027-03-29T06:59:00Z")).open);
        assert!(opening(&s, at("2027-03-29T07:00:00Z")).open);
        // A span starting in the skipped hour (02:30 on 2027-03-28) opens when the gap ends.
        let night = GroupSettings {
            time_zone: "Europe/Berlin".into(),
            hours: vec![OpeningSpan {
                weekday: 6,
                opens: "02:30".into(),
                closes: "04:00".into(),
            }],
            ..Default::default()
        };
        let o = opening(&night, at("2027-03-28T00:00:00Z"));
        assert_eq!(o.opens_at, Some(at("2027-03-28T01:00:00Z")), "03:00 CEST");
    }

    #[test]
    fn a_closed_date_skips_its_day() {
        let mut s = weekdays_9_to_17("America/New_York");
        s.closed_dates = vec!["2026-12-24".parse().unwrap(), "2026-12-25".parse().unwrap()];
        // Thursday 2026-12-24 at 10:00 New York (15:00 UTC).
        let o = opening(&s, at("2026-12-24T15:00:00Z"));
        assert!(!o.open);
        // Friday is closed too; the weekend; Monday 28th at 9:00 EST is 14:00 UTC.
        assert_eq!(o.opens_at, Some(at("2026-12-28T14:00:00Z")));
    }

    #[test]
    fn no_hours_is_always_open_and_bad_settings_are_named() {
        assert!(opening(&GroupSettings::default(), at("2026-12-05T03:00:00Z")).open);
        let mut s = weekdays_9_to_17("Mars/Olympus");
        assert!(validate(&s, 3600).unwrap_err().contains("time zone"));
        s.time_zone = "UTC".into();
        s.hours[0].closes = "08:00".into();
        assert!(validate(&s, 3600).unwrap_err().contains("after opening"));
        s.hours[0].closes = "25:00".into();
        assert!(validate(&s, 3600).unwrap_err().contains("time of day"));
        s.hours[0].closes = "24:00".into();
        assert_eq!(validate(&s, 3600), Ok(()));
    }
}

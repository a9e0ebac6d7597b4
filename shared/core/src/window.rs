//! Migration windows: the nights in which A2A may start work, in the schools' time zone.
//!
//! Schools use Moodle in the daytime, so migrations run inside windows such as
//! `Mon-Fri 21:00-06:00 Europe/Madrid`. A window that ends at or before its start time runs
//! past midnight and belongs to the day it opened. Times are local: across a daylight-saving
//! change a night is an hour longer or shorter, as the clock on the wall says.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// One recurring window: on the listed weekdays, from `start` to `end` local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
    tz: Tz,
    text: String,
}

/// One opening of a window: the instants it opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Night {
    /// When it opened.
    pub opens: DateTime<Utc>,
    /// When it closes.
    pub closes: DateTime<Utc>,
}

/// Why a window's text does not parse. The message quotes the text and shows the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "migration window {text:?}: {why}; write it as DAYS HH:MM-HH:MM ZONE, such as \"Mon-Fri 21:00-06:00 Europe/Madrid\""
)]
pub struct WindowError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn day(s: &str) -> Option<Weekday> {
    let s = s.to_ascii_lowercase();
    DAY_NAMES.iter().find(|(n, _)| *n == s).map(|(_, d)| *d)
}

impl Window {
    /// Parses `DAYS HH:MM-HH:MM ZONE`. DAYS is `daily`, a day (`Sat`), a range (`Mon-Fri`,
    /// which may wrap: `Fri-Mon`) or a comma list of those; ZONE is an IANA name.
    pub fn parse(text: &str) -> Result<Self, WindowError> {
        let err = |why: String| WindowError {
            text: text.to_owned(),
            why,
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days_text, times, zone] = parts[..] else {
            return Err(err(format!("expected 3 parts, found {}", parts.len())));
        };
        let mut days = [false; 7];
        if days_text.eq_ignore_ascii_case("daily") {
            days = [true; 7];
        } else {
            for item in days_text.split(',') {
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let (Some(a), Some(b)) = (day(a), day(b)) else {
                    return Err(err(format!(
                        "{item:?} is not a day or a range of days (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"
                    )));
                };
                let mut d = a;
                loop {
                    days[d.num_days_from_monday() as usize] = true;
                    if d == b {
                        break;
                    }
                    d = d.succ();
                }
            }
        }
        let Some((s, e)) = times.split_once('-') else {
            return Err(err(format!("{times:?} is not a time range HH:MM-HH:MM")));
        };
        let time = |t: &str| {
            NaiveTime::parse_from_str(t, "%H:%M")
                .map_err(|_| err(format!("{t:?} is not a time HH:MM")))
        };
        let (start, end) = (time(s)?, time(e)?);
        if start == end {
            return Err(err("start and end are the same time".into()));
        }
        let tz = Tz::from_str(zone).map_err(|_| {
            err(format!(
                "{zone:?} is not a time zone name such as Europe/Madrid"
            ))
        })?;
        Ok(Self {
            days,
            start,
            end,
            tz,
            text: text.to_owned(),
        })
    }

    /// The opening of this window that contains `now`, if any.
    pub fn night_at(&self, now: DateTime<Utc>) -> Option<Night> {
        let today = now.with_timezone(&self.tz).date_naive();
        // An overnight window that contains `now` opened today or yesterday.
        [today.pred_opt()?, today]
            .into_iter()
            .filter_map(|d| self.night_of(d))
            .find(|n| n.opens <= now && now < n.closes)
    }

    /// `t` on the wall clock of this window's zone, such as `Mon 2026-12-07 21:00 CET`.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The first opening that starts after `now`.
    pub fn next_night(&self, now: DateTime<Utc>) -> Option<Night> {
        let today = now.with_timezone(&self.tz).date_naive();
        (0..=8)
            .filter_map(|k| today.checked_add_days(Days::new(k)))
            .filter_map(|d| self.night_of(d))
            .find(|n| n.opens > now)
    }

    /// The opening that starts on local date `d`, if the window runs that weekday.
    fn night_of(&self, d: NaiveDate) -> Option<Night> {
        if !self.days[d.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let end_day = if self.end <= self.start {
            d.succ_opt()?
        } else {
            d
        };
        Some(Night {
            opens: self.instant(d, self.start)?,
            closes: self.instant(end_day, self.end)?,
        })
    }

    /// The instant of local `d t`. A time skipped by a spring-forward change opens at the
    /// first instant after the gap; a time repeated by a fall-back change is its first
    /// occurrence.
    fn instant(&self, d: NaiveDate, t: NaiveTime) -> Option<DateTime<Utc>> {
        let mut local = d.and_time(t);
        for _ in 0..=4 {
            match self.tz.from_local_datetime(&local) {
                LocalResult::Single(x) => return Some(x.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
                // Gaps are whole quarter hours in every zone in use.
                LocalResult::None => local += chrono::Duration::minutes(15),
            }
        }
        None
    }
}

impl FromStr for Window {
    type Err = WindowError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn w(s: &str) -> Window {
        Window::parse(s).unwrap()
    }

    #[test]
    fn weeknights_in_madrid_winter() {
        let win = w("Mon-Fri 21:00-06:00 Europe/Madrid");
        // Tuesday 2026-12-01, 20:59 local (UTC+1) is before; 21:00 is in.
        assert_eq!(win.night_at(utc("2026-12-01T19:59:00Z")), None);
        let n = win.night_at(utc("2026-12-01T20:00:00Z")).unwrap();
        assert_eq!(n.opens, utc("2026-12-01T20:00:00Z"));
        assert_eq!(n.closes, utc("2026-12-02T05:00:00Z"));
        // Wednesday 05:59 local still belongs to Tuesday's night; 06:00 is out.
        assert_eq!(win.night_at(utc("2026-12-02T04:59:00Z")), Some(n));
        assert_eq!(win.night_at(utc("2026-12-02T05:00:00Z")), None);
        // Friday's night runs into Saturday; Saturday evening has no window.
        assert!(win.night_at(utc("2026-12-05T04:00:00Z")).is_some());
        assert_eq!(win.night_at(utc("2026-12-05T21:00:00Z")), None);
        // From Saturday, the next night is Monday's.
        assert_eq!(
            win.next_night(utc("2026-12-05T21:00:00Z")).unwrap().opens,
            utc("2026-12-07T20:00:00Z")
        );
    }

    #[test]
    fn the_autumn_change_makes_one_night_an_hour_longer() {
        // Last Sunday of October 2026 is the 25th: 03:00 CEST becomes 02:00 CET.
        let win = w("Sat-Sun 21:00-06:00 Europe/Madrid");
        let n = win.night_at(utc("2026-10-25T00:30:00Z")).unwrap();
        assert_eq!(n.opens, utc("2026-10-24T19:00:00Z"), "21:00 CEST");
        assert_eq!(n.closes, utc("2026-10-25T05:00:00Z"), "06:00 CET");
        assert_eq!(n.closes - n.opens, chrono::Duration::hours(10));
        // Sunday evening opens at 21:00 CET, an hour later in UTC than the night before.
        let sunday = win.next_night(utc("2026-10-25T12:00:00Z")).unwrap();
        assert_eq!(sunday.opens, utc("2026-10-25T20:00:00Z"));
        assert_eq!(win.night_at(utc("2026-10-25T19:30:00Z")), None, "20:30 CET");
    }

    #[test]
    fn the_spring_change_makes_a_night_shorter_and_skipped_times_open_after_the_gap() {
        // 29 March 2026: 02:00 CET becomes 03:00 CEST.
        let win = w("Sat 21:00-06:00 Europe/Madrid");
        let n = win.night_at(utc("2026-03-29T01:30:00Z")).unwrap();
        assert_eq!(n.closes - n.opens, chrono::Duration::hours(8));
        let gap = w("Sun 02:30-05:00 Europe/Madrid");
        let n = gap.next_night(utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            n.opens,
            utc("2026-03-29T01:00:00Z"),
            "03:00 CEST, after the gap"
        );
    }

    #[test]
    fn day_lists_and_wrapping_ranges() {
        let win = w("Fri-Mon,Wed 22:00-23:00 UTC");
        let days: Vec<bool> = win.days.to_vec();
        assert_eq!(days, vec![true, false, true, false, true, true, true]);
        assert_eq!(w("daily 00:00-05:00 UTC").days, [true; 7]);
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (text, why) in [
            ("Mon-Fri 21:00-06:00", "3 parts"),
            ("Mon-Fry 21:00-06:00 Europe/Madrid", "\"Mon-Fry\""),
            ("Mon 21:00 Europe/Madrid", "time range"),
            ("Mon 25:00-06:00 Europe/Madrid", "\"25:00\""),
            ("Mon 21:00-21:00 Europe/Madrid", "same time"),
            ("Mon 21:00-06:00 Europe/Barcelona", "time zone"),
        ] {
            let e = Window::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(
                e.contains("Mon-Fri 21:00-06:00 Europe/Madrid"),
                "shows the form"
            );
        }
    }
}

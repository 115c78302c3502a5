//! Office hours: whether the team is in now and, if not, when it next opens. Pure, so the
//! hand-off notice can be tested at any clock time.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};

use super::ConsoleSettings;

/// The team's working week in local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours {
    /// Working days, Monday first.
    pub days: [bool; 7],
    pub open: NaiveTime,
    pub close: NaiveTime,
    pub offset: FixedOffset,
    /// Shown to people, e.g. `IST`.
    pub label: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl OfficeHours {
    /// Parses the `[console]` office settings.
    ///
    /// # Errors
    /// The environment variable name of the wrong key and what is wrong with it.
    pub fn from_settings(s: &ConsoleSettings) -> Result<Self, (&'static str, String)> {
        let days = parse_days(&s.office_days).ok_or((
            "INSUREBOT_CONSOLE_OFFICE_DAYS",
            format!(
                "'{}' is not a day range (mon-sat) or list (mon,wed,fri)",
                s.office_days
            ),
        ))?;
        let time = |key: &'static str, v: &str| {
            // 24:00 is the end of the day (for teams that never close).
            if v.trim() == "24:00" {
                return Ok(
                    NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("a valid time")
                );
            }
            NaiveTime::parse_from_str(v.trim(), "%H:%M")
                .map_err(|_| (key, format!("'{v}' is not a time like 09:00")))
        };
        let open = time("INSUREBOT_CONSOLE_OFFICE_OPEN", &s.office_open)?;
        let close = time("INSUREBOT_CONSOLE_OFFICE_CLOSE", &s.office_close)?;
        if close <= open {
            return Err((
                "INSUREBOT_CONSOLE_OFFICE_CLOSE",
                "must be later than office_open".to_owned(),
            ));
        }
        let offset = parse_offset(&s.utc_offset).ok_or((
            "INSUREBOT_CONSOLE_UTC_OFFSET",
            format!("'{}' is not an offset like +05:30", s.utc_offset),
        ))?;
        Ok(Self {
            days,
            open,
            close,
            offset,
            label: s.timezone_label.clone(),
        })
    }

    /// True while the team is working.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.offset);
        let day = local.weekday().num_days_from_monday() as usize;
        let t = local.time();
        self.days[day] && t >= self.open && t < self.close
    }

    /// The next opening time after `now` (local time), or `None` while open.
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<FixedOffset>> {
        if self.is_open(now) {
            return None;
        }
        let local = now.with_timezone(&self.offset);
        for ahead in 0..8 {
            let date = local.date_naive() + Duration::days(ahead);
            let day = date.weekday().num_days_from_monday() as usize;
            if !self.days[day] {
                continue;
            }
            let at = self
                .offset
                .from_local_datetime(&date.and_time(self.open))
                .single()?;
            if at > local {
                return Some(at);
            }
        }
        None
    }

    /// How long the team was working between `from` and `to`. A wait for an agent counts only
    /// these hours: nobody can answer while the office is closed.
    pub fn open_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let (from, to) = (
            from.with_timezone(&self.offset),
            to.with_timezone(&self.offset),
        );
        let mut total = Duration::zero();
        let mut date = from.date_naive();
        while date <= to.date_naive() {
            let day = date.weekday().num_days_from_monday() as usize;
            let at = |t| self.offset.from_local_datetime(&date.and_time(t)).single();
            if self.days[day]
                && let (Some(open), Some(close)) = (at(self.open), at(self.close))
            {
                let (start, end) = (open.max(from), close.min(to));
                if end > start {
                    total += end - start;
                }
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        total
    }

    /// `Mon–Sat 09:00–18:00 IST`, for people.
    pub fn describe(&self) -> String {
        let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let on: Vec<usize> = (0..7).filter(|d| self.days[*d]).collect();
        let contiguous = on.windows(2).all(|w| w[1] == w[0] + 1);
        let days = match (on.first(), on.last()) {
            (Some(a), Some(b)) if contiguous && a != b => format!("{}–{}", names[*a], names[*b]),
            _ => on.iter().map(|d| names[*d]).collect::<Vec<_>>().join(", "),
        };
        format!(
            "{days} {}–{} {}",
            self.open.format("%H:%M"),
            if self.close.hour() == 23 && self.close.minute() == 59 && self.close.second() == 59 {
                "24:00".to_owned()
            } else {
                self.close.format("%H:%M").to_string()
            },
            self.label
        )
    }
}

/// `Mon 09:00` for a local opening time.
pub fn describe_when(at: DateTime<FixedOffset>) -> String {
    let day = match at.weekday() {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    };
    format!("{day} {}", at.format("%d/%m %H:%M"))
}

fn parse_days(s: &str) -> Option<[bool; 7]> {
    let index = |d: &str| DAY_NAMES.iter().position(|n| *n == d.trim().to_lowercase());
    let mut days = [false; 7];
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                if a > b {
                    return None;
                }
                days[a..=b].iter_mut().for_each(|d| *d = true);
            }
            None => days[index(part)?] = true,
        }
    }
    days.iter().any(|d| *d).then_some(days)
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours() -> OfficeHours {
        OfficeHours::from_settings(&ConsoleSettings::default()).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn defaults_are_monday_to_saturday_nine_to_six_in_india() {
        let h = hours();
        assert_eq!(h.describe(), "Mon–Sat 09:00–18:00 IST");
        // Wednesday 10:00 IST = 04:30 UTC.
        assert!(h.is_open(utc("2026-12-02T04:30:00Z")));
        // Wednesday 08:59 IST.
        assert!(!h.is_open(utc("2026-12-02T03:29:00Z")));
    }

    #[test]
    fn open_time_counts_only_working_hours() {
        let h = hours();
        // Friday 22:30 IST to Saturday 13:00 IST: 09:00–13:00 Saturday.
        let waited = h.open_time_between(utc("2026-12-04T17:00:00Z"), utc("2026-12-05T07:30:00Z"));
        assert_eq!(waited, Duration::hours(4));
        // Saturday 17:00 IST to Monday 10:30 IST: 1 h Saturday, Sunday closed, 1.5 h Monday.
        let waited = h.open_time_between(utc("2026-12-05T11:30:00Z"), utc("2026-12-07T05:00:00Z"));
        assert_eq!(waited, Duration::minutes(150));
        // Inside one working day, and backwards.
        let (a, b) = (utc("2026-12-02T04:30:00Z"), utc("2026-12-02T05:00:00Z"));
        assert_eq!(h.open_time_between(a, b), Duration::minutes(30));
        assert_eq!(h.open_time_between(b, a), Duration::zero());
    }

    #[test]
    fn after_hours_the_next_opening_is_the_next_working_morning() {
        let h = hours();
        // Saturday 19:00 IST → Monday 09:00 IST.
        let next = h.next_open(utc("2026-12-05T13:30:00Z")).unwrap();
        assert_eq!(describe_when(next), "Mon 07/12 09:00");
        // Wednesday 07:00 IST → same day 09:00.
        let next = h.next_open(utc("2026-12-02T01:30:00Z")).unwrap();
        assert_eq!(describe_when(next), "Wed 02/12 09:00");
        assert_eq!(h.next_open(utc("2026-12-02T04:30:00Z")), None);
    }

    #[test]
    fn a_team_that_never_closes_is_always_open() {
        let s = ConsoleSettings {
            office_days: "mon-sun".into(),
            office_open: "00:00".into(),
            office_close: "24:00".into(),
            ..ConsoleSettings::default()
        };
        let h = OfficeHours::from_settings(&s).unwrap();
        assert!(h.is_open(utc("2026-12-06T18:29:59Z")));
        assert_eq!(h.describe(), "Mon–Sun 00:00–24:00 IST");
    }

    #[test]
    fn wrong_settings_name_their_key() {
        let mut s = ConsoleSettings {
            office_days: "mon-xyz".into(),
            ..ConsoleSettings::default()
        };
        assert_eq!(
            OfficeHours::from_settings(&s).unwrap_err().0,
            "INSUREBOT_CONSOLE_OFFICE_DAYS"
        );
        s.office_days = "mon,wed".into();
        s.utc_offset = "IST".into();
        assert_eq!(
            OfficeHours::from_settings(&s).unwrap_err().0,
            "INSUREBOT_CONSOLE_UTC_OFFSET"
        );
    }
}

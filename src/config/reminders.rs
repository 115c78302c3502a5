//! `[reminders]` and `[campaigns]` settings. Times of day are `HH:MM` in the scheduler's
//! timezone, a fixed UTC offset (`+05:30` is Asia/Kolkata, the default): India has no daylight
//! saving, and a fixed offset avoids shipping the tz database (`chrono-tz`) for one zone.

use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone, Utc};
use serde::Deserialize;

use crate::config::env::{EnvSection, Var};
use crate::config::{ConfigError, Explicit, MessagingSettings, invalid};

/// `[reminders]`: the premium-due scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemindersSettings {
    /// Run the scheduler in `serve`.
    pub enabled: bool,
    /// Fixed UTC offset of the insurer's calendar, `+05:30` (Asia/Kolkata).
    pub timezone: String,
    /// Local time of the daily run, `HH:MM`; must be outside the quiet hours.
    pub run_at: String,
    /// Quiet hours, local `HH:MM`: nothing is queued, and queued reminders and campaign
    /// messages wait, from `quiet_start` to `quiet_end` (may cross midnight).
    pub quiet_start: String,
    pub quiet_end: String,
    /// Days before the due date a reminder goes (e.g. 15, 7, 3, 1).
    pub offsets_days: Vec<u32>,
    /// Days after the due date, within the grace period, a reminder goes while unpaid.
    pub grace_days: Vec<u32>,
    /// Length of the grace period in days; `grace_days` must fall inside it.
    pub grace_period_days: u32,
    /// A run catches up at most this many missed days (one reminder per premium: the latest).
    pub catch_up_days: u32,
    /// The UTILITY template used outside the 24-hour window.
    pub template: String,
    /// Reminders queued per transaction.
    pub batch_size: u32,
}

impl Default for RemindersSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            timezone: "+05:30".into(),
            run_at: "10:00".into(),
            quiet_start: "21:00".into(),
            quiet_end: "09:00".into(),
            offsets_days: vec![15, 7, 3, 1],
            grace_days: vec![3, 10, 20],
            grace_period_days: 30,
            catch_up_days: 7,
            template: "premium_reminder".into(),
            batch_size: 500,
        }
    }
}

/// `[campaigns]`: broadcasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignSettings {
    /// Rate of a campaign that names none, messages per second; unset, 20 or
    /// `max_rate_per_second` if that is lower.
    pub default_rate_per_second: u32,
    /// Highest rate a campaign may ask for; must stay below `messaging.rate_per_second` so
    /// replies to policyholders always find room in the number's throughput. Unset, it is
    /// three quarters of that rate (at least `default_rate_per_second` when that is set).
    pub max_rate_per_second: u32,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            default_rate_per_second: 20,
            max_rate_per_second: 60,
        }
    }
}

/// Parses `HH:MM`.
pub fn parse_time(value: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M").ok()
}

/// Parses `+05:30`, `-03:00` or `Z`/`UTC`; `Asia/Kolkata` is accepted as its fixed offset.
pub fn parse_offset(value: &str) -> Option<FixedOffset> {
    let v = value.trim();
    match v {
        "Z" | "UTC" | "utc" => return FixedOffset::east_opt(0),
        "Asia/Kolkata" | "Asia/Calcutta" => return FixedOffset::east_opt(330 * 60),
        _ => {}
    }
    let (sign, rest) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

impl RemindersSettings {
    /// Unset values that would contradict set ones follow them: the run time moves to the end
    /// of quiet hours that cover it, and grace days past the grace period drop out.
    pub(crate) fn follow(&mut self, set: &Explicit<'_>) {
        if !set.is_set("reminders", "run_at")
            && let (Some(run_at), Some(_), Some(end)) = (
                parse_time(&self.run_at),
                parse_time(&self.quiet_start),
                parse_time(&self.quiet_end),
            )
            && self.quiet().contains(run_at)
            && !self.quiet().contains(end)
        {
            self.run_at = end.format("%H:%M").to_string();
        }
        if !set.is_set("reminders", "grace_days") {
            let period = self.grace_period_days;
            self.grace_days.retain(|d| *d <= period);
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if parse_offset(&self.timezone).is_none() {
            return Err(invalid(
                "INSUREBOT_REMINDERS_TIMEZONE",
                format!("'{}' is not a UTC offset like +05:30", self.timezone),
            ));
        }
        for (key, value) in [
            ("INSUREBOT_REMINDERS_RUN_AT", &self.run_at),
            ("INSUREBOT_REMINDERS_QUIET_START", &self.quiet_start),
            ("INSUREBOT_REMINDERS_QUIET_END", &self.quiet_end),
        ] {
            if parse_time(value).is_none() {
                return Err(invalid(key, format!("'{value}' is not a time like 10:00")));
            }
        }
        if self.quiet().contains(self.run_time()) {
            return Err(invalid(
                "INSUREBOT_REMINDERS_RUN_AT",
                format!(
                    "({}) falls inside the quiet hours, INSUREBOT_REMINDERS_QUIET_START ({}) to \
                     INSUREBOT_REMINDERS_QUIET_END ({})",
                    self.run_at, self.quiet_start, self.quiet_end
                ),
            ));
        }
        if let Some(d) = self
            .grace_days
            .iter()
            .find(|d| **d > self.grace_period_days)
        {
            return Err(invalid(
                "INSUREBOT_REMINDERS_GRACE_DAYS",
                format!(
                    "{d} is after the grace period, INSUREBOT_REMINDERS_GRACE_PERIOD_DAYS ({} days)",
                    self.grace_period_days
                ),
            ));
        }
        if self.batch_size == 0 {
            return Err(invalid(
                "INSUREBOT_REMINDERS_BATCH_SIZE",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    /// The timezone (validated at load).
    pub fn offset(&self) -> FixedOffset {
        parse_offset(&self.timezone)
            .unwrap_or_else(|| FixedOffset::east_opt(330 * 60).expect("IST"))
    }

    /// The daily run's local time (validated at load).
    pub fn run_time(&self) -> NaiveTime {
        parse_time(&self.run_at).unwrap_or_default()
    }

    /// The quiet hours (validated at load).
    pub fn quiet(&self) -> QuietHours {
        QuietHours {
            start: parse_time(&self.quiet_start).unwrap_or_default(),
            end: parse_time(&self.quiet_end).unwrap_or_default(),
        }
    }

    /// Every offset in days before the due date: the configured ones, then the grace days as
    /// negative numbers.
    pub fn all_offsets(&self) -> Vec<i32> {
        let mut all: Vec<i32> = self
            .offsets_days
            .iter()
            .map(|d| i32::try_from(*d).unwrap_or(i32::MAX))
            .chain(
                self.grace_days
                    .iter()
                    .map(|d| -i32::try_from(*d).unwrap_or(i32::MAX)),
            )
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

impl EnvSection for RemindersSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "ENABLED" => self.enabled = var.parse()?,
            "TIMEZONE" => self.timezone = var.text(),
            "RUN_AT" => self.run_at = var.text(),
            "QUIET_START" => self.quiet_start = var.text(),
            "QUIET_END" => self.quiet_end = var.text(),
            "OFFSETS_DAYS" => self.offsets_days = var.list()?,
            "GRACE_DAYS" => self.grace_days = var.list()?,
            "GRACE_PERIOD_DAYS" => self.grace_period_days = var.parse()?,
            "CATCH_UP_DAYS" => self.catch_up_days = var.parse()?,
            "TEMPLATE" => self.template = var.text(),
            "BATCH_SIZE" => self.batch_size = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl CampaignSettings {
    /// The campaigns' rates follow the number's: an unset maximum is three quarters of
    /// `messaging.rate_per_second` (60 of the default 80), raised to a default rate the
    /// operator set, and always below the number's rate; an unset default rate is 20, or the
    /// maximum if lower. Set values that contradict each other are an error naming both keys.
    pub(crate) fn follow(
        &mut self,
        messaging: &MessagingSettings,
        set: &Explicit<'_>,
    ) -> Result<(), ConfigError> {
        const RATE: &str = "INSUREBOT_MESSAGING_RATE_PER_SECOND";
        const MAX: &str = "INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND";
        const DEFAULT: &str = "INSUREBOT_CAMPAIGNS_DEFAULT_RATE_PER_SECOND";
        let rate = messaging.rate_per_second;
        if rate == 0 {
            return Ok(()); // `validate` names the rate itself.
        }
        let max_set = set.is_set("campaigns", "max_rate_per_second");
        let default_set = set.is_set("campaigns", "default_rate_per_second");
        if max_set && self.max_rate_per_second >= rate {
            return Err(invalid(
                MAX,
                format!(
                    "({}) must be below {RATE} ({rate}), so that replies to policyholders \
                     always find room",
                    self.max_rate_per_second
                ),
            ));
        }
        if default_set && self.default_rate_per_second >= rate {
            return Err(invalid(
                DEFAULT,
                format!(
                    "({}) must be below {RATE} ({rate}), so that replies to policyholders \
                     always find room",
                    self.default_rate_per_second
                ),
            ));
        }
        if !max_set {
            let share = u32::try_from(u64::from(rate) * 3 / 4).unwrap_or(u32::MAX);
            let wanted = if default_set {
                share.max(self.default_rate_per_second)
            } else {
                share
            };
            self.max_rate_per_second = wanted.min(rate - 1).max(1);
        }
        if !default_set {
            self.default_rate_per_second =
                self.default_rate_per_second.min(self.max_rate_per_second);
        } else if self.default_rate_per_second > self.max_rate_per_second {
            return Err(invalid(
                DEFAULT,
                format!(
                    "({}) must not exceed {MAX} ({})",
                    self.default_rate_per_second, self.max_rate_per_second
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_rate_per_second == 0 {
            return Err(invalid(
                "INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND",
                "must be at least 1",
            ));
        }
        if self.default_rate_per_second == 0
            || self.default_rate_per_second > self.max_rate_per_second
        {
            return Err(invalid(
                "INSUREBOT_CAMPAIGNS_DEFAULT_RATE_PER_SECOND",
                "must be between 1 and INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND",
            ));
        }
        Ok(())
    }
}

impl EnvSection for CampaignSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "DEFAULT_RATE_PER_SECOND" => self.default_rate_per_second = var.parse()?,
            "MAX_RATE_PER_SECOND" => self.max_rate_per_second = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Quiet hours in local time; `start > end` crosses midnight (21:00–09:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Whether `t` (local) is quiet. `start == end` means no quiet hours.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// When the quiet hours around `now` end (Unix ms), or `None` when `now` is not quiet.
    pub fn end_after(&self, now: DateTime<Utc>, tz: FixedOffset) -> Option<i64> {
        let local = now.with_timezone(&tz);
        if !self.contains(local.time()) {
            return None;
        }
        let mut day = local.date_naive();
        if local.time() >= self.end {
            day = day.succ_opt()?;
        }
        let end = tz.from_local_datetime(&day.and_time(self.end)).single()?;
        Some(end.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_cross_midnight_and_end_in_the_morning() {
        let q = QuietHours {
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        };
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(q.contains(t(21, 0)) && q.contains(t(23, 59)) && q.contains(t(0, 0)));
        assert!(q.contains(t(8, 59)) && !q.contains(t(9, 0)) && !q.contains(t(20, 59)));
        let ist = FixedOffset::east_opt(19_800).unwrap();
        // 22:00 IST on 1 Jan = 16:30 UTC; quiet until 09:00 IST on 2 Jan = 03:30 UTC.
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 16, 30, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2026, 1, 2, 3, 30, 0).unwrap();
        assert_eq!(q.end_after(now, ist), Some(end.timestamp_millis()));
        // 02:00 IST on 2 Jan: the same morning.
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 20, 30, 0).unwrap();
        assert_eq!(q.end_after(now, ist), Some(end.timestamp_millis()));
        let noon = Utc.with_ymd_and_hms(2026, 1, 2, 6, 30, 0).unwrap();
        assert_eq!(q.end_after(noon, ist), None);
    }

    #[test]
    fn offsets_parse_and_run_at_must_be_outside_quiet_hours() {
        assert_eq!(parse_offset("+05:30"), FixedOffset::east_opt(19_800));
        assert_eq!(parse_offset("-03:00"), FixedOffset::east_opt(-10_800));
        assert_eq!(parse_offset("Asia/Kolkata"), FixedOffset::east_opt(19_800));
        assert!(parse_offset("IST").is_none());
        let mut s = RemindersSettings::default();
        assert!(s.validate().is_ok());
        assert_eq!(s.all_offsets(), vec![-20, -10, -3, 1, 3, 7, 15]);
        s.run_at = "22:30".into();
        assert!(s.validate().unwrap_err().to_string().contains("RUN_AT"));
        s.run_at = "10:00".into();
        s.grace_days = vec![40];
        assert!(s.validate().is_err());
    }
}

//! When a schedule fires: a cron expression (six fields, seconds first, read in the shop's
//! time zone), a fixed interval, or once at a given time; and which tick a moment belongs to.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Intervals shorter than this are refused (they would keep the database busy for nothing).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleSpec {
    Cron(String),
    Every(Duration),
    Once(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("not a cron expression (six fields, seconds first, e.g. \"0 0 22 * * *\"): {0}")]
    Cron(String),
    #[error("the interval must be at least 1 second")]
    Interval,
    #[error("give exactly one of cron, every_seconds and run_at")]
    NotExactlyOne,
}

/// The same parser tokio-cron-scheduler uses, so what validates here runs there.
fn parse_cron(expression: &str) -> Result<Cron, SpecError> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression)
        .map_err(|error| SpecError::Cron(error.to_string()))
}

impl ScheduleSpec {
    pub fn from_columns(
        cron: Option<&str>,
        every_seconds: Option<i64>,
        run_at: Option<DateTime<Utc>>,
    ) -> Result<Self, SpecError> {
        match (cron, every_seconds, run_at) {
            (Some(expression), None, None) => {
                parse_cron(expression)?;
                Ok(Self::Cron(expression.trim().to_string()))
            }
            (None, Some(seconds), None) => {
                let every = u64::try_from(seconds)
                    .map(Duration::from_secs)
                    .map_err(|_| SpecError::Interval)?;
                if every < MIN_INTERVAL {
                    return Err(SpecError::Interval);
                }
                Ok(Self::Every(every))
            }
            (None, None, Some(at)) => Ok(Self::Once(at)),
            _ => Err(SpecError::NotExactlyOne),
        }
    }

    pub fn columns(&self) -> (Option<String>, Option<i64>, Option<DateTime<Utc>>) {
        match self {
            Self::Cron(expression) => (Some(expression.clone()), None, None),
            Self::Every(every) => (
                None,
                Some(i64::try_from(every.as_secs()).unwrap_or(i64::MAX)),
                None,
            ),
            Self::Once(at) => (None, None, Some(*at)),
        }
    }

    /// The first tick strictly after `after` (a cron read in `tz`): what the schedule does next.
    pub fn next_tick_after(
        &self,
        after: DateTime<Utc>,
        created_at: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron(expression) => parse_cron(expression)
                .ok()?
                .find_next_occurrence(&after.with_timezone(&tz), false)
                .ok()
                .map(|tick| tick.with_timezone(&Utc)),
            Self::Every(every) => {
                let every = chrono::Duration::from_std(*every).ok()?;
                let current = self.tick_at_or_before(after, created_at, tz);
                Some(current.map_or(created_at, |tick| tick + every))
            }
            Self::Once(at) => (*at > after).then_some(*at),
        }
    }

    /// The tick `now` belongs to: the latest time at or before `now` the schedule fires at.
    /// Every replica computes the same tick for the same firing, whenever it noticed it.
    pub fn tick_at_or_before(
        &self,
        now: DateTime<Utc>,
        created_at: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron(expression) => {
                let cron = parse_cron(expression).ok()?;
                // Cron fires on whole seconds; croner keeps the fraction of a matching second.
                let now = now.with_nanosecond(0)?;
                cron.find_previous_occurrence(&now.with_timezone(&tz), true)
                    .ok()
                    .map(|tick| tick.with_timezone(&Utc))
            }
            Self::Every(every) => {
                let every_ms = i64::try_from(every.as_millis()).ok()?.max(1);
                let anchor = created_at.timestamp_millis() / 1000 * 1000;
                let elapsed = now.timestamp_millis() - anchor;
                if elapsed < 0 {
                    return None;
                }
                DateTime::from_timestamp_millis(anchor + elapsed / every_ms * every_ms)
            }
            Self::Once(at) => (now >= *at).then_some(*at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_built_in_expressions_parse() {
        for expression in [
            "0 0 22 * * *",
            "0 0 10 1 2 *",
            "0 0 23 L * *",
            "0 */3 * * * *",
        ] {
            assert!(
                ScheduleSpec::from_columns(Some(expression), None, None).is_ok(),
                "{expression}"
            );
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(matches!(
            ScheduleSpec::from_columns(Some("every day"), None, None),
            Err(SpecError::Cron(_))
        ));
        assert!(matches!(
            ScheduleSpec::from_columns(Some("0 22 * * *"), None, None),
            Err(SpecError::Cron(_))
        ));
        assert_eq!(
            ScheduleSpec::from_columns(None, Some(0), None),
            Err(SpecError::Interval)
        );
        assert_eq!(
            ScheduleSpec::from_columns(Some("* * * * * *"), Some(5), None),
            Err(SpecError::NotExactlyOne)
        );
    }

    #[test]
    fn a_cron_tick_is_the_latest_occurrence_in_the_shop_time_zone() {
        let spec = ScheduleSpec::Cron("0 0 22 * * *".into());
        let created = at("2026-01-01T00:00:00Z");
        // 22:00 in Berlin (winter) is 21:00 UTC.
        let tick = spec.tick_at_or_before(
            at("2026-01-05T21:00:00.400Z"),
            created,
            chrono_tz::Europe::Berlin,
        );
        assert_eq!(tick, Some(at("2026-01-05T21:00:00Z")));
        let tick = spec.tick_at_or_before(
            at("2026-01-05T20:59:59Z"),
            created,
            chrono_tz::Europe::Berlin,
        );
        assert_eq!(tick, Some(at("2026-01-04T21:00:00Z")));
    }

    #[test]
    fn the_last_day_of_the_month_is_found() {
        let spec = ScheduleSpec::Cron("0 0 23 L * *".into());
        let tick = spec.tick_at_or_before(
            at("2026-02-28T23:00:01Z"),
            at("2026-01-01T00:00:00Z"),
            chrono_tz::UTC,
        );
        assert_eq!(tick, Some(at("2026-02-28T23:00:00Z")));
    }

    /// The built-in "calendar import": 23:00 on the last day of the month in the shop's zone.
    #[test]
    fn the_monthly_calendar_import_ticks_on_the_last_day_of_february_leap_year_or_not() {
        let spec = ScheduleSpec::Cron("0 0 23 L * *".into());
        let created = at("2026-01-01T00:00:00Z");
        let berlin = chrono_tz::Europe::Berlin;
        let ticks = |from: &str, count: usize| {
            let mut ticks = Vec::new();
            let mut after = at(from);
            for _ in 0..count {
                after = spec
                    .next_tick_after(after, created, berlin)
                    .expect("a tick");
                ticks.push(after);
            }
            ticks
        };
        // 2028 is a leap year; 23:00 in Berlin is 22:00 UTC in winter, 21:00 in summer.
        assert_eq!(
            ticks("2028-01-31T22:00:00Z", 3),
            vec![
                at("2028-02-29T22:00:00Z"),
                at("2028-03-31T21:00:00Z"),
                at("2028-04-30T21:00:00Z"),
            ]
        );
        assert_eq!(
            ticks("2027-02-01T00:00:00Z", 2),
            vec![at("2027-02-28T22:00:00Z"), at("2027-03-31T21:00:00Z")]
        );
        // 2100 is not a leap year (divisible by 100, not by 400).
        assert_eq!(
            ticks("2100-02-27T00:00:00Z", 1),
            vec![at("2100-02-28T22:00:00Z")]
        );
        // The tick a replica computes when it fires then is the same moment.
        assert_eq!(
            spec.tick_at_or_before(at("2028-02-29T22:00:00.300Z"), created, berlin),
            Some(at("2028-02-29T22:00:00Z"))
        );
    }

    #[test]
    fn interval_ticks_line_up_from_the_schedule_creation() {
        let spec = ScheduleSpec::Every(Duration::from_secs(10));
        let created = at("2026-01-01T00:00:00.700Z");
        let tick = spec.tick_at_or_before(at("2026-01-01T00:00:25.100Z"), created, chrono_tz::UTC);
        assert_eq!(tick, Some(at("2026-01-01T00:00:20Z")));
    }

    #[test]
    fn a_one_off_ticks_once_its_time_has_come() {
        let spec = ScheduleSpec::Once(at("2026-03-01T10:00:00Z"));
        let created = at("2026-01-01T00:00:00Z");
        assert_eq!(
            spec.tick_at_or_before(at("2026-03-01T09:59:59Z"), created, chrono_tz::UTC),
            None
        );
        assert_eq!(
            spec.tick_at_or_before(at("2026-03-01T10:00:03Z"), created, chrono_tz::UTC),
            Some(at("2026-03-01T10:00:00Z"))
        );
    }
}

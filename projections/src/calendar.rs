//! The economic calendar's read model: one document per entry, with its revision history, and
//! the query a list page answers.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use eshop_domain::calendar::{CalendarEventEvent, Importance, Revision};

use crate::{step, ProjectionError, RelayedEvent, Step};

/// One revision: when it was recorded and the fields it changed (new values; `null` cleared).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub recorded_at: DateTime<Utc>,
    pub changes: Revision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarRecord {
    pub id: Uuid,
    pub date: NaiveDate,
    pub time: NaiveTime,
    pub time_zone: String,
    pub name: String,
    pub country: String,
    pub importance: Importance,
    pub actual: Option<String>,
    pub forecast: Option<String>,
    pub previous: Option<String>,
    pub source: Option<String>,
    pub deleted: bool,
    /// Oldest first (absent from list pages).
    #[serde(default)]
    pub revisions: Vec<RevisionRecord>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

pub fn apply_calendar_event(
    current: Option<&CalendarRecord>,
    event: &RelayedEvent,
) -> Result<Option<CalendarRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let decoded = event.decode::<CalendarEventEvent>()?;
    let mut row = match (current, decoded) {
        (
            current,
            CalendarEventEvent::CalendarEventScheduled {
                date,
                time,
                time_zone,
                name,
                country,
                importance,
                actual,
                forecast,
                previous,
                source,
            },
        ) => CalendarRecord {
            id: event
                .aggregate_id
                .parse()
                .map_err(|error| event.unreadable(error))?,
            date,
            time,
            time_zone,
            name,
            country,
            importance,
            actual,
            forecast,
            previous,
            source,
            deleted: false,
            // Scheduled again after a deletion: the history goes on.
            revisions: current.map(|row| row.revisions.clone()).unwrap_or_default(),
            created_at: current.map_or(event.recorded_at, |row| row.created_at),
            updated_at: event.recorded_at,
            version: 0,
        },
        (None, _) => return Err(event.unreadable("the entry was never scheduled")),
        (Some(current), CalendarEventEvent::CalendarEventRevised(revision)) => {
            let mut row = current.clone();
            let changes = revision.clone();
            if let Some(name) = revision.name {
                row.name = name;
            }
            if let Some(time_zone) = revision.time_zone {
                row.time_zone = time_zone;
            }
            if let Some(country) = revision.country {
                row.country = country;
            }
            if let Some(importance) = revision.importance {
                row.importance = importance;
            }
            if let Some(actual) = revision.actual {
                row.actual = actual;
            }
            if let Some(forecast) = revision.forecast {
                row.forecast = forecast;
            }
            if let Some(previous) = revision.previous {
                row.previous = previous;
            }
            if let Some(source) = revision.source {
                row.source = source;
            }
            row.revisions.push(RevisionRecord {
                recorded_at: event.recorded_at,
                changes,
            });
            row
        }
        (Some(current), CalendarEventEvent::CalendarEventDeleted) => CalendarRecord {
            deleted: true,
            ..current.clone()
        },
    };
    row.updated_at = event.recorded_at;
    row.version = event.sequence;
    Ok(Some(row))
}

impl crate::ReadModel for CalendarRecord {
    const NAME: &'static str = "calendar_events";
    const AGGREGATE_TYPE: &'static str = "calendar_event";

    fn id(&self) -> Uuid {
        self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply_calendar_event(current, event)
    }
}

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

/// A list page: every filter optional; repeated values of one filter are alternatives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalendarQuery {
    pub countries: Vec<String>,
    pub importances: Vec<Importance>,
    /// Inclusive bounds (`date=` sets both).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub limit: u32,
    /// The id of the last entry of the previous page.
    pub after: Option<Uuid>,
}

impl CalendarQuery {
    /// Names the page in the cache: equal queries, equal keys.
    pub fn cache_key(&self) -> String {
        let mut countries = self.countries.clone();
        countries.sort();
        countries.dedup();
        let mut importances: Vec<&str> = self.importances.iter().map(|i| i.as_str()).collect();
        importances.sort_unstable();
        importances.dedup();
        format!(
            "country={}&importance={}&from={}&to={}&limit={}&after={}",
            countries.join(","),
            importances.join(","),
            self.from.map(|d| d.to_string()).unwrap_or_default(),
            self.to.map(|d| d.to_string()).unwrap_or_default(),
            self.limit,
            self.after.map(|id| id.to_string()).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(sequence: u64, payload: serde_json::Value) -> RelayedEvent {
        RelayedEvent {
            position: sequence as i64,
            aggregate_type: "calendar_event".into(),
            aggregate_id: "0195e9c2-0000-7000-8000-000000000001".into(),
            sequence,
            event_type: payload["type"].as_str().unwrap_or_default().into(),
            event_version: "1".into(),
            recorded_at: Utc::now(),
            metadata: json!({}),
            payload,
        }
    }

    #[test]
    fn revisions_change_the_entry_and_are_kept_in_order() {
        let scheduled = event(
            1,
            json!({"type": "CalendarEventScheduled", "data": {"date": "2026-10-20",
                   "time": "14:30:00", "time_zone": "UTC", "name": "CPI", "country": "US",
                   "importance": "high", "forecast": "3.1%"}}),
        );
        let row = apply_calendar_event(None, &scheduled)
            .expect("applies")
            .expect("new");
        let revised = event(
            2,
            json!({"type": "CalendarEventRevised", "data": {"actual": "3.2%", "forecast": null}}),
        );
        let row = apply_calendar_event(Some(&row), &revised)
            .expect("applies")
            .expect("changed");
        assert_eq!(row.actual.as_deref(), Some("3.2%"));
        assert_eq!(row.forecast, None);
        assert_eq!(row.revisions.len(), 1);
        assert_eq!(
            serde_json::to_value(&row.revisions[0].changes).expect("json"),
            json!({"actual": "3.2%", "forecast": null})
        );
        assert_eq!(
            apply_calendar_event(Some(&row), &revised).expect("seen"),
            None
        );
    }
}

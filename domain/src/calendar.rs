//! The `calendar_event` aggregate: one entry of the economic calendar (a data release, a
//! central bank decision), identified by its date, time of day and name.
//!
//! Its id is derived from that key ([`EventKey::aggregate_id`]), so every import of the same
//! entry lands on the same aggregate, and its first event claims the key (see `claims`) in the
//! appending transaction: two entries with one key can never both exist, however many imports
//! run at once.

use chrono::{NaiveDate, NaiveTime};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::claims::{DeclaresClaims, UniqueClaim};
use crate::values::{bounded_text, InvalidValue};

/// The claim kind of an entry's (date, time, name).
pub const KEY_CLAIM: &str = "calendar_event_key";

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";

/// Ids derived from keys live in their own namespace (v5).
const CALENDAR_NAMESPACE: Uuid = Uuid::from_u128(0x2b7c_91d4_0e6a_4c55_8f13_a9d0_51e7_c3b2);

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    Low,
    Medium,
    High,
}

impl Importance {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(InvalidValue("must be low, medium or high".into())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// An ISO 3166-1 alpha-2 code, upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country(String);

impl Country {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code))
        } else {
            Err(InvalidValue(
                "must be a two-letter ISO 3166-1 country code like US".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name (`Europe/Berlin`), as chrono-tz knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneName(String);

impl ZoneName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map(|tz| Self(tz.name().to_string()))
            .map_err(|_| InvalidValue("must be an IANA time zone like Europe/Berlin".into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A figure as published (`2.1%`, `-0.3`, `215K`): kept as text.
pub fn figure(raw: &str) -> Result<Option<String>, InvalidValue> {
    let text = bounded_text(raw, 0, 50)?;
    Ok((!text.is_empty()).then_some(text))
}

/// Where an entry came from (a feed's name, a URL).
pub fn source(raw: &str) -> Result<Option<String>, InvalidValue> {
    let text = bounded_text(raw, 0, 300)?;
    Ok((!text.is_empty()).then_some(text))
}

/// A time of day: `HH:MM` or `HH:MM:SS`.
pub fn time_of_day(raw: &str) -> Result<NaiveTime, InvalidValue> {
    let raw = raw.trim();
    NaiveTime::parse_from_str(raw, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(raw, "%H:%M"))
        .map_err(|_| InvalidValue("must be a time of day like 14:30".into()))
}

/// What identifies an entry: its date, time of day and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub date: NaiveDate,
    pub time: NaiveTime,
    /// As given (trimmed); compared without regard to case or runs of spaces.
    pub name: String,
}

impl EventKey {
    pub fn new(date: NaiveDate, time: NaiveTime, name: &str) -> Result<Self, InvalidValue> {
        Ok(Self {
            date,
            time,
            name: bounded_text(name, 1, 200)?,
        })
    }

    /// The claimed value: names that differ only in case or spacing are the same entry.
    pub fn claim_value(&self) -> String {
        key_text(self.date, self.time, &self.name)
    }

    /// The aggregate id every writer derives for this key.
    pub fn aggregate_id(&self) -> Uuid {
        Uuid::new_v5(&CALENDAR_NAMESPACE, self.claim_value().as_bytes())
    }
}

fn key_text(date: NaiveDate, time: NaiveTime, name: &str) -> String {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{date}|{}|{}", time.format("%H:%M:%S"), name.to_lowercase())
}

/// Everything about an entry but its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub time_zone: ZoneName,
    pub country: Country,
    pub importance: Importance,
    pub actual: Option<String>,
    pub forecast: Option<String>,
    pub previous: Option<String>,
    pub source: Option<String>,
}

/// A whole entry, as created or imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: EventKey,
    pub details: Details,
}

/// A change to an entry: `None` keeps a field; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub time_zone: Option<ZoneName>,
    pub country: Option<Country>,
    pub importance: Option<Importance>,
    pub actual: Option<Option<String>>,
    pub forecast: Option<Option<String>>,
    pub previous: Option<Option<String>>,
    pub source: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CalendarCommand {
    /// A new entry (an admin's `POST`): refused when the entry exists.
    Schedule(Entry),
    /// Update or create (an import): a new entry is scheduled, an existing one gets one
    /// revision holding only what changed, an unchanged one nothing.
    Import(Entry),
    /// An admin's `PATCH`: one revision with what changed.
    Revise(Changes),
    Delete,
}

/// Deserializes a present field (even `null`) as `Some`, so `Option<Option<_>>` tells an
/// absent field (kept) from a `null` one (cleared).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The fields one revision changed, with their new values; absent fields kept theirs, `null`
/// ones were cleared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Revision {
    /// The name's spelling (case, spaces): a different name is a different entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub actual: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub forecast: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<Option<String>>,
}

impl Revision {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum CalendarEventEvent {
    CalendarEventScheduled {
        date: NaiveDate,
        /// `HH:MM:SS`, in `time_zone`.
        time: NaiveTime,
        time_zone: String,
        name: String,
        country: String,
        importance: Importance,
        #[serde(default)]
        actual: Option<String>,
        #[serde(default)]
        forecast: Option<String>,
        #[serde(default)]
        previous: Option<String>,
        #[serde(default)]
        source: Option<String>,
    },
    CalendarEventRevised(Revision),
    CalendarEventDeleted,
}

impl DomainEvent for CalendarEventEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CalendarEventScheduled { .. } => "CalendarEventScheduled",
            Self::CalendarEventRevised(_) => "CalendarEventRevised",
            Self::CalendarEventDeleted => "CalendarEventDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for CalendarEventEvent {
    /// Scheduling claims the key; a deleted entry keeps it (its id is derived from the key, so
    /// the entry, if imported again, comes back on the same aggregate).
    fn unique_claims(&self) -> Vec<UniqueClaim> {
        match self {
            Self::CalendarEventScheduled {
                date, time, name, ..
            } => vec![UniqueClaim {
                kind: KEY_CLAIM,
                value: key_text(*date, *time, name),
            }],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("the calendar event does not exist")]
    NotFound,
    #[error("a calendar event with this date, time and name already exists")]
    AlreadyExists,
    #[error("this is not the entry the key names")]
    KeyMismatch,
}

/// What the last event did, so an import can tell its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastChange {
    Scheduled,
    Revised,
    Deleted,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub scheduled: bool,
    pub deleted: bool,
    pub date: Option<NaiveDate>,
    pub time: Option<NaiveTime>,
    pub time_zone: String,
    pub name: String,
    pub country: String,
    pub importance: Option<Importance>,
    pub actual: Option<String>,
    pub forecast: Option<String>,
    pub previous: Option<String>,
    pub source: Option<String>,
    pub last_change: Option<LastChange>,
}

impl CalendarEvent {
    pub fn is_listed(&self) -> bool {
        self.scheduled && !self.deleted
    }

    fn scheduled_event(entry: Entry) -> CalendarEventEvent {
        let Entry { key, details } = entry;
        CalendarEventEvent::CalendarEventScheduled {
            date: key.date,
            time: key.time,
            time_zone: details.time_zone.0,
            name: key.name,
            country: details.country.0,
            importance: details.importance,
            actual: details.actual,
            forecast: details.forecast,
            previous: details.previous,
            source: details.source,
        }
    }

    /// The revision `changes` make: only the fields whose value differs.
    fn revision(&self, changes: Changes) -> Revision {
        fn differs<T: PartialEq>(new: Option<T>, current: &T) -> Option<T> {
            new.filter(|value| value != current)
        }
        Revision {
            name: None,
            time_zone: differs(changes.time_zone.map(|z| z.0), &self.time_zone),
            country: differs(changes.country.map(|c| c.0), &self.country),
            importance: changes
                .importance
                .filter(|value| Some(*value) != self.importance),
            actual: differs(changes.actual, &self.actual),
            forecast: differs(changes.forecast, &self.forecast),
            previous: differs(changes.previous, &self.previous),
            source: differs(changes.source, &self.source),
        }
    }

    fn decide(&self, command: CalendarCommand) -> Result<Vec<CalendarEventEvent>, CalendarError> {
        match command {
            CalendarCommand::Schedule(entry) => {
                if self.is_listed() {
                    return Err(CalendarError::AlreadyExists);
                }
                Ok(vec![Self::scheduled_event(entry)])
            }
            CalendarCommand::Import(entry) => {
                if !self.is_listed() {
                    return Ok(vec![Self::scheduled_event(entry)]);
                }
                if self.date != Some(entry.key.date) || self.time != Some(entry.key.time) {
                    return Err(CalendarError::KeyMismatch);
                }
                let Details {
                    time_zone,
                    country,
                    importance,
                    actual,
                    forecast,
                    previous,
                    source,
                } = entry.details;
                // An import names every field: an absent figure clears the stored one.
                let mut revision = self.revision(Changes {
                    time_zone: Some(time_zone),
                    country: Some(country),
                    importance: Some(importance),
                    actual: Some(actual),
                    forecast: Some(forecast),
                    previous: Some(previous),
                    source: Some(source),
                });
                revision.name = Some(entry.key.name).filter(|name| *name != self.name);
                Ok(if revision.is_empty() {
                    Vec::new()
                } else {
                    vec![CalendarEventEvent::CalendarEventRevised(revision)]
                })
            }
            CalendarCommand::Revise(changes) => {
                if !self.is_listed() {
                    return Err(CalendarError::NotFound);
                }
                let revision = self.revision(changes);
                Ok(if revision.is_empty() {
                    Vec::new()
                } else {
                    vec![CalendarEventEvent::CalendarEventRevised(revision)]
                })
            }
            CalendarCommand::Delete => {
                if !self.is_listed() {
                    return Err(CalendarError::NotFound);
                }
                Ok(vec![CalendarEventEvent::CalendarEventDeleted])
            }
        }
    }
}

impl Aggregate for CalendarEvent {
    const TYPE: &'static str = "calendar_event";
    type Command = CalendarCommand;
    type Event = CalendarEventEvent;
    type Error = CalendarError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        crate::emit(self, events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
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
            } => {
                *self = Self {
                    scheduled: true,
                    deleted: false,
                    date: Some(date),
                    time: Some(time),
                    time_zone,
                    name,
                    country,
                    importance: Some(importance),
                    actual,
                    forecast,
                    previous,
                    source,
                    last_change: Some(LastChange::Scheduled),
                };
            }
            CalendarEventEvent::CalendarEventRevised(revision) => {
                if let Some(name) = revision.name {
                    self.name = name;
                }
                if let Some(time_zone) = revision.time_zone {
                    self.time_zone = time_zone;
                }
                if let Some(country) = revision.country {
                    self.country = country;
                }
                if let Some(importance) = revision.importance {
                    self.importance = Some(importance);
                }
                if let Some(actual) = revision.actual {
                    self.actual = actual;
                }
                if let Some(forecast) = revision.forecast {
                    self.forecast = forecast;
                }
                if let Some(previous) = revision.previous {
                    self.previous = previous;
                }
                if let Some(source) = revision.source {
                    self.source = source;
                }
                self.last_change = Some(LastChange::Revised);
            }
            CalendarEventEvent::CalendarEventDeleted => {
                self.deleted = true;
                self.last_change = Some(LastChange::Deleted);
            }
        }
    }
}

#[cfg(test)]
mod tests;

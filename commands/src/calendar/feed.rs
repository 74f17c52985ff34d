//! Reading a calendar feed: a JSON array of objects, or CSV with a header row. Each row becomes
//! an entry or the reason it was skipped, with its line (the CSV line, the header being line 1;
//! the element's number in a JSON array).

use chrono::NaiveDate;
use serde_json::Value;

use eshop_domain::calendar::{
    figure, source, time_of_day, Country, Details, Entry, EventKey, Importance, ZoneName,
};
use eshop_domain::values::InvalidValue;

/// The fields a row may have; any other column is refused (a typo would silently drop data).
pub const FIELDS: [&str; 10] = [
    "date",
    "time",
    "time_zone",
    "name",
    "country",
    "importance",
    "actual",
    "forecast",
    "previous",
    "source",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub entry: Result<Entry, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("not a JSON array of calendar events: {0}")]
    Json(String),
    #[error("the CSV header names an unknown column {0:?} (known: {known})", known = FIELDS.join(", "))]
    UnknownColumn(String),
    #[error("the CSV header lacks the column {0:?}")]
    MissingColumn(&'static str),
    #[error("the feed is empty")]
    Empty,
}

/// Reads `text` (JSON when it starts with `[`, CSV otherwise). A time without a zone is read in
/// `default_zone`.
pub fn parse(text: &str, default_zone: &str) -> Result<Vec<Row>, FeedError> {
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('[') {
        parse_json(text, default_zone)
    } else {
        parse_csv(text, default_zone)
    }
}

fn parse_json(text: &str, default_zone: &str) -> Result<Vec<Row>, FeedError> {
    let items: Vec<Value> =
        serde_json::from_str(text).map_err(|error| FeedError::Json(error.to_string()))?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| Row {
            line: index + 1,
            entry: json_fields(&item).and_then(|fields| entry(&fields, default_zone)),
        })
        .collect())
}

/// An object's fields as text (numbers as written; `null` as absent).
fn json_fields(item: &Value) -> Result<Vec<(String, String)>, String> {
    let Value::Object(object) = item else {
        return Err("not an object".into());
    };
    let mut fields = Vec::new();
    for (name, value) in object {
        if !FIELDS.contains(&name.as_str()) {
            return Err(format!("unknown field {name:?}"));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                return Err(format!("{name}: must be text"))
            }
        };
        fields.push((name.clone(), text));
    }
    Ok(fields)
}

fn parse_csv(text: &str, default_zone: &str) -> Result<Vec<Row>, FeedError> {
    let mut records = csv_records(text).into_iter();
    let (_, header) = records.next().ok_or(FeedError::Empty)?;
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    if let Some(unknown) = header.iter().find(|h| !FIELDS.contains(&h.as_str())) {
        return Err(FeedError::UnknownColumn(unknown.clone()));
    }
    for required in ["date", "time", "name", "country", "importance"] {
        if !header.iter().any(|h| h == required) {
            return Err(FeedError::MissingColumn(required));
        }
    }
    Ok(records
        .filter(|(_, values)| values.iter().any(|value| !value.trim().is_empty()))
        .map(|(line, values)| Row {
            line,
            entry: if values.len() > header.len() {
                Err(format!(
                    "{} values for {} columns",
                    values.len(),
                    header.len()
                ))
            } else {
                let fields = header
                    .iter()
                    .cloned()
                    .zip(values)
                    .filter(|(_, value)| !value.is_empty())
                    .collect::<Vec<_>>();
                entry(&fields, default_zone)
            },
        })
        .collect())
}

/// RFC 4180 records with the line each starts on: `"` quotes a field (`""` inside is one),
/// quoted fields may hold commas and line breaks.
fn csv_records(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let (mut line, mut start_line) = (1, 1);
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if field.is_empty() => quoted = true,
            ',' if !quoted => record.push(std::mem::take(&mut field)),
            '\r' if !quoted => {}
            '\n' if !quoted => {
                record.push(std::mem::take(&mut field));
                records.push((start_line, std::mem::take(&mut record)));
                line += 1;
                start_line = line;
            }
            '\n' => {
                line += 1;
                field.push(c);
            }
            other => field.push(other),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push((start_line, record));
    }
    records
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check<T>(&mut self, name: &str, result: Result<T, InvalidValue>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(InvalidValue(reason)) => {
                self.0.push(format!("{name}: {reason}"));
                None
            }
        }
    }
}

/// One row's entry, or every problem with it in one sentence.
fn entry(fields: &[(String, String)], default_zone: &str) -> Result<Entry, String> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    };
    let mut problems = Problems::default();
    let required = |name: &str| get(name).ok_or_else(|| InvalidValue("is required".into()));
    let date = problems.check(
        "date",
        required("date").and_then(|raw| {
            raw.trim()
                .parse::<NaiveDate>()
                .map_err(|_| InvalidValue("must be a date like 2026-10-20".into()))
        }),
    );
    let time = problems.check("time", required("time").and_then(time_of_day));
    let name = problems.check("name", required("name").map(str::to_string));
    let time_zone = problems.check(
        "time_zone",
        ZoneName::parse(get("time_zone").unwrap_or(default_zone)),
    );
    let country = problems.check("country", required("country").and_then(Country::parse));
    let importance = problems.check(
        "importance",
        required("importance").and_then(Importance::parse),
    );
    let optional = |name: &str, read: fn(&str) -> Result<Option<String>, InvalidValue>| {
        get(name).map(read).transpose().map(Option::flatten)
    };
    let actual = problems.check("actual", optional("actual", figure));
    let forecast = problems.check("forecast", optional("forecast", figure));
    let previous = problems.check("previous", optional("previous", figure));
    let source = problems.check("source", optional("source", source));
    let key = match (date, time, name) {
        (Some(date), Some(time), Some(name)) => {
            problems.check("name", EventKey::new(date, time, &name))
        }
        _ => None,
    };
    match (
        key, time_zone, country, importance, actual, forecast, previous, source,
    ) {
        (
            Some(key),
            Some(time_zone),
            Some(country),
            Some(importance),
            Some(actual),
            Some(forecast),
            Some(previous),
            Some(source),
        ) if problems.0.is_empty() => Ok(Entry {
            key,
            details: Details {
                time_zone,
                country,
                importance,
                actual,
                forecast,
                previous,
                source,
            },
        }),
        _ => Err(problems.0.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_entries_or_reasons_with_their_line() {
        let text = "date,time,name,country,importance,actual,forecast\n\
                    2026-10-20,14:30,GDP Report,us,high,,2.1%\n\
                    \n\
                    2026-10-21,9:00,\"Rates, decision\",XX1,urgent,,\n\
                    2026-10-22,10:00,\"Say \"\"hi\"\"\",DE,low,1,2\n";
        let rows = parse(text, "Europe/Berlin").expect("parses");
        assert_eq!(rows.len(), 3);
        let first = rows[0].entry.as_ref().expect("valid");
        assert_eq!(rows[0].line, 2);
        assert_eq!(first.key.name, "GDP Report");
        assert_eq!(first.details.country.as_str(), "US");
        assert_eq!(first.details.time_zone.as_str(), "Europe/Berlin");
        assert_eq!(first.details.actual, None);
        assert_eq!(first.details.forecast.as_deref(), Some("2.1%"));
        assert_eq!(rows[1].line, 4);
        let reason = rows[1].entry.as_ref().expect_err("invalid");
        assert!(
            reason.contains("country") && reason.contains("importance"),
            "{reason}"
        );
        assert_eq!(
            rows[2].entry.as_ref().expect("valid").key.name,
            "Say \"hi\""
        );
    }

    #[test]
    fn json_arrays_take_numbers_as_written_and_refuse_unknown_fields() {
        let text = r#"[{"date":"2026-10-20","time":"14:30","name":"CPI","country":"US",
                        "importance":"medium","actual":3.2,"time_zone":"UTC"},
                       {"date":"2026-10-20","time":"14:30","name":"CPI","country":"US",
                        "importance":"medium","colour":"red"}]"#;
        let rows = parse(text, "Europe/Berlin").expect("parses");
        let first = rows[0].entry.as_ref().expect("valid");
        assert_eq!(first.details.actual.as_deref(), Some("3.2"));
        assert_eq!(first.details.time_zone.as_str(), "UTC");
        assert_eq!(rows[1].line, 2);
        assert!(rows[1].entry.is_err());
    }

    #[test]
    fn a_feed_that_cannot_be_read_is_refused_whole() {
        assert!(matches!(parse("[1,", "UTC"), Err(FeedError::Json(_))));
        assert_eq!(
            parse("date,time,name,country\n", "UTC"),
            Err(FeedError::MissingColumn("importance"))
        );
        assert!(matches!(
            parse("date,when\n", "UTC"),
            Err(FeedError::UnknownColumn(_))
        ));
        assert_eq!(parse("", "UTC"), Err(FeedError::Empty));
    }
}

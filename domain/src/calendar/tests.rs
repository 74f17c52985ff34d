use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

type CalendarTest = TestFramework<CalendarEvent>;

fn key() -> EventKey {
    EventKey::new(
        "2026-10-20".parse().expect("date"),
        time_of_day("14:30").expect("time"),
        "GDP Report",
    )
    .expect("valid")
}

fn details() -> Details {
    Details {
        time_zone: ZoneName::parse("America/New_York").expect("zone"),
        country: Country::parse("us").expect("country"),
        importance: Importance::High,
        actual: None,
        forecast: Some("2.1%".into()),
        previous: Some("1.9%".into()),
        source: None,
    }
}

fn entry() -> Entry {
    Entry {
        key: key(),
        details: details(),
    }
}

fn scheduled() -> CalendarEventEvent {
    CalendarEventEvent::CalendarEventScheduled {
        date: "2026-10-20".parse().expect("date"),
        time: time_of_day("14:30:00").expect("time"),
        time_zone: "America/New_York".into(),
        name: "GDP Report".into(),
        country: "US".into(),
        importance: Importance::High,
        actual: None,
        forecast: Some("2.1%".into()),
        previous: Some("1.9%".into()),
        source: None,
    }
}

#[test]
fn scheduling_a_new_entry_claims_its_key() {
    CalendarTest::with(())
        .given_no_previous_events()
        .when(CalendarCommand::Schedule(entry()))
        .then_expect_events(vec![scheduled()]);
    assert_eq!(
        scheduled().unique_claims(),
        vec![UniqueClaim {
            kind: KEY_CLAIM,
            value: "2026-10-20|14:30:00|gdp report".into()
        }]
    );
}

#[test]
fn scheduling_an_existing_entry_is_refused() {
    CalendarTest::with(())
        .given(vec![scheduled()])
        .when(CalendarCommand::Schedule(entry()))
        .then_expect_error(CalendarError::AlreadyExists);
}

#[test]
fn importing_a_new_entry_schedules_it() {
    CalendarTest::with(())
        .given_no_previous_events()
        .when(CalendarCommand::Import(entry()))
        .then_expect_events(vec![scheduled()]);
}

#[test]
fn importing_an_unchanged_entry_appends_nothing() {
    CalendarTest::with(())
        .given(vec![scheduled()])
        .when(CalendarCommand::Import(entry()))
        .then_expect_events(vec![]);
}

#[test]
fn importing_a_changed_entry_appends_one_revision_with_only_the_changed_fields() {
    let mut changed = entry();
    changed.details.actual = Some("2.3%".into());
    changed.details.importance = Importance::Medium;
    CalendarTest::with(())
        .given(vec![scheduled()])
        .when(CalendarCommand::Import(changed))
        .then_expect_events(vec![CalendarEventEvent::CalendarEventRevised(Revision {
            importance: Some(Importance::Medium),
            actual: Some(Some("2.3%".into())),
            ..Revision::default()
        })]);
}

#[test]
fn an_import_without_a_figure_clears_it() {
    let mut changed = entry();
    changed.details.forecast = None;
    CalendarTest::with(())
        .given(vec![scheduled()])
        .when(CalendarCommand::Import(changed))
        .then_expect_events(vec![CalendarEventEvent::CalendarEventRevised(Revision {
            forecast: Some(None),
            ..Revision::default()
        })]);
}

#[test]
fn importing_a_deleted_entry_schedules_it_again() {
    CalendarTest::with(())
        .given(vec![scheduled(), CalendarEventEvent::CalendarEventDeleted])
        .when(CalendarCommand::Import(entry()))
        .then_expect_events(vec![scheduled()]);
}

#[test]
fn a_revision_keeps_what_it_does_not_name_and_skips_equal_values() {
    CalendarTest::with(())
        .given(vec![scheduled()])
        .when(CalendarCommand::Revise(Changes {
            previous: Some(Some("1.9%".into())),
            actual: Some(Some("2.0%".into())),
            ..Changes::default()
        }))
        .then_expect_events(vec![CalendarEventEvent::CalendarEventRevised(Revision {
            actual: Some(Some("2.0%".into())),
            ..Revision::default()
        })]);
}

#[test]
fn revising_or_deleting_a_missing_entry_is_refused() {
    CalendarTest::with(())
        .given_no_previous_events()
        .when(CalendarCommand::Revise(Changes::default()))
        .then_expect_error(CalendarError::NotFound);
    CalendarTest::with(())
        .given(vec![scheduled(), CalendarEventEvent::CalendarEventDeleted])
        .when(CalendarCommand::Delete)
        .then_expect_error(CalendarError::NotFound);
}

#[test]
fn keys_ignore_case_and_spacing_and_derive_one_id() {
    let other = EventKey::new(key().date, key().time, "  gdp   REPORT ").expect("valid");
    assert_eq!(other.claim_value(), key().claim_value());
    assert_eq!(other.aggregate_id(), key().aggregate_id());
    let later =
        EventKey::new(key().date, time_of_day("14:31").expect("t"), "GDP Report").expect("valid");
    assert_ne!(later.aggregate_id(), key().aggregate_id());
}

#[test]
fn a_revision_tells_a_cleared_field_from_a_kept_one() {
    let revision = Revision {
        actual: Some(None),
        ..Revision::default()
    };
    let stored = serde_json::to_value(&revision).expect("serializes");
    assert_eq!(stored, json!({"actual": null}));
    let loaded: Revision = serde_json::from_value(stored).expect("loads");
    assert_eq!(loaded, revision);
    let empty: Revision = serde_json::from_value(json!({})).expect("loads");
    assert!(empty.is_empty());
}

#[test]
fn values_are_checked() {
    assert!(Country::parse("usa").is_err());
    assert_eq!(Country::parse(" de ").expect("valid").as_str(), "DE");
    assert!(Importance::parse("urgent").is_err());
    assert!(ZoneName::parse("Mars/Olympus").is_err());
    assert!(time_of_day("25:00").is_err());
    assert!(EventKey::new(key().date, key().time, "  ").is_err());
}

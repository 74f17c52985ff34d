//! The `movies` read model: a movie's details, links, tags, how many ratings of each value it
//! has (the figures the lists filter and sort by follow from those), and the version it
//! reflects. The ratings themselves are rows beside it (`movie_ratings`), written from what each
//! event changed (`PendingRows`), never rewritten whole: a popular movie has hundreds.

use std::collections::BTreeMap;

use eshop_domain::movie::{MovieEvent, Rating};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{step, ProjectionError, RelayedEvent, Step};

pub mod query;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieRecord {
    pub id: Uuid,
    pub movielens_id: Option<i64>,
    pub title: String,
    pub year: Option<i32>,
    pub genres: Vec<String>,
    pub imdb_id: Option<String>,
    pub tmdb_id: Option<i64>,
    /// How many ratings of each value, 0.5 to 5.0. A rating event carries the rating it replaces
    /// or withdraws, so the record needs no rater's rating to keep these counts.
    pub histogram: [i64; 10],
    /// (rater, tag, when as Unix seconds), in the order they were given.
    pub tags: Vec<(String, String, i64)>,
    pub version: u64,
    /// What the events applied since the record was read did to the rows beside it: written
    /// with the record (`Table::upsert`), never stored in it.
    #[serde(skip)]
    pub pending: PendingRows,
}

/// Changes to `movie_ratings` and `movie_tags` not written yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingRows {
    /// rater → the rating now (half stars, when as Unix seconds), or `None`: withdrawn.
    pub ratings: BTreeMap<String, Option<(u8, i64)>>,
    /// (rater, tag, when as Unix seconds) given since.
    pub tags: Vec<(String, String, i64)>,
}

impl MovieRecord {
    pub fn ratings_count(&self) -> i64 {
        self.histogram.iter().sum()
    }

    /// The sum of the ratings in half stars (exact).
    pub fn half_stars_sum(&self) -> i64 {
        (1..)
            .zip(self.histogram)
            .map(|(half, count)| half * count)
            .sum()
    }

    /// The average in stars, rounded to two decimals; `None` without ratings.
    pub fn rating_average(&self) -> Option<f64> {
        average(self.half_stars_sum(), self.ratings_count())
    }

    /// How many ratings of each value, from 0.5 to 5.0.
    pub fn histogram(&self) -> [i64; 10] {
        self.histogram
    }

    fn slot(&mut self, rating: Rating) -> &mut i64 {
        // Ratings are 1 to 10 half stars (`Rating` checks).
        let index = usize::from(rating.half_stars()).saturating_sub(1).min(9);
        &mut self.histogram[index]
    }

    fn count_rating(&mut self, rating: Rating) {
        *self.slot(rating) += 1;
    }

    fn uncount_rating(&mut self, rating: Rating) {
        let slot = self.slot(rating);
        *slot = slot.saturating_sub(1).max(0);
    }

    /// Distinct tags, lower-cased: what the `tag` filter matches.
    pub fn tag_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .tags
            .iter()
            .map(|(_, tag, _)| tag.to_lowercase())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Genres lower-cased: what the genre filters match.
    pub fn genre_keys(&self) -> Vec<String> {
        self.genres
            .iter()
            .map(|genre| genre.to_lowercase())
            .collect()
    }

    /// The `limit` most given tags (case-insensitive, shown as first written), most first,
    /// then alphabetically.
    pub fn top_tags(&self, limit: usize) -> Vec<TagCount> {
        let mut counts: BTreeMap<String, TagCount> = BTreeMap::new();
        for (_, tag, _) in &self.tags {
            counts
                .entry(tag.to_lowercase())
                .or_insert_with(|| TagCount {
                    tag: tag.clone(),
                    count: 0,
                })
                .count += 1;
        }
        let mut top: Vec<TagCount> = counts.into_values().collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.tag.cmp(&b.tag)));
        top.truncate(limit);
        top
    }
}

/// Stars from a sum of half stars, rounded to two decimals.
pub fn average(half_stars_sum: i64, count: i64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    // Hundredths of a star, rounded half up, in integers: sum/2/count*100.
    let hundredths = (half_stars_sum * 100 + count) / (2 * count);
    Some(hundredths as f64 / 100.0)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TagCount {
    pub tag: String,
    pub count: i64,
}

/// The record after `event`, or `None` when the event was already applied.
pub fn apply(
    current: Option<&MovieRecord>,
    event: &RelayedEvent,
) -> Result<Option<MovieRecord>, ProjectionError> {
    let mut record = current.cloned();
    Ok(if evolve(&mut record, event)? {
        record
    } else {
        None
    })
}

/// `apply` in place (a batch of a popular movie's ratings is no copy of it per rating): true
/// when the record changed; on an error it is left as it was.
pub fn evolve(
    record: &mut Option<MovieRecord>,
    event: &RelayedEvent,
) -> Result<bool, ProjectionError> {
    if step(event, record.as_ref().map_or(0, |row| row.version))? == Step::Seen {
        return Ok(false);
    }
    let decoded: MovieEvent = event.decode()?;
    let row = match (record.as_mut(), decoded) {
        (
            None,
            MovieEvent::MovieAdded {
                movielens_id,
                title,
                year,
                genres,
                links,
            },
        ) => record.insert(MovieRecord {
            id: event
                .aggregate_id
                .parse()
                .map_err(|error| event.unreadable(error))?,
            movielens_id,
            title,
            year,
            genres,
            imdb_id: links.imdb_id,
            tmdb_id: links.tmdb_id,
            histogram: [0; 10],
            tags: Vec::new(),
            version: 0,
            pending: PendingRows::default(),
        }),
        (None, _) => return Err(event.unreadable("the first event is not MovieAdded")),
        (Some(_), MovieEvent::MovieAdded { .. }) => {
            return Err(event.unreadable("MovieAdded on an existing movie"))
        }
        (Some(row), decoded) => {
            match decoded {
                MovieEvent::MovieAdded { .. } => {}
                MovieEvent::MovieDetailsChanged {
                    title,
                    year,
                    genres,
                } => {
                    row.title = title;
                    row.year = year;
                    row.genres = genres;
                }
                MovieEvent::MovieLinksChanged(links) => {
                    row.imdb_id = links.imdb_id;
                    row.tmdb_id = links.tmdb_id;
                }
                MovieEvent::MovieRated {
                    rater,
                    rating,
                    rated_at,
                    previous,
                } => {
                    if let Some(previous) = previous {
                        row.uncount_rating(previous);
                    }
                    row.count_rating(rating);
                    row.pending.ratings.insert(
                        rater.to_string(),
                        Some((rating.half_stars(), rated_at.timestamp())),
                    );
                }
                MovieEvent::MovieRatingWithdrawn { rater, rating } => {
                    row.uncount_rating(rating);
                    row.pending.ratings.insert(rater.to_string(), None);
                }
                MovieEvent::MovieTagged {
                    rater,
                    tag,
                    tagged_at,
                } => {
                    let given = (rater.to_string(), tag, tagged_at.timestamp());
                    row.pending.tags.push(given.clone());
                    row.tags.push(given);
                }
            }
            row
        }
    };
    row.version = event.sequence;
    Ok(true)
}

impl crate::ReadModel for MovieRecord {
    const NAME: &'static str = "movies";
    const AGGREGATE_TYPE: &'static str = "movie";

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
        apply(current, event)
    }
    fn evolve(record: &mut Option<Self>, event: &RelayedEvent) -> Result<bool, ProjectionError> {
        evolve(record, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use eshop_domain::movie::{Links, Rater, Rating};
    use serde_json::json;

    fn relayed(sequence: u64, event: MovieEvent) -> RelayedEvent {
        RelayedEvent {
            position: 1,
            aggregate_type: "movie".into(),
            aggregate_id: "0192f0a0-0000-7000-8000-000000000001".into(),
            sequence,
            event_type: "x".into(),
            event_version: "1".into(),
            recorded_at: Utc::now(),
            metadata: json!({}),
            payload: serde_json::to_value(event).expect("serializes"),
        }
    }

    fn rated(rater: i64, stars: f64, previous: Option<f64>) -> MovieEvent {
        MovieEvent::MovieRated {
            rater: Rater::MovieLens(rater),
            rating: Rating::from_stars(stars).expect("valid"),
            rated_at: Utc.timestamp_opt(10, 0).single().expect("time"),
            previous: previous.map(|stars| Rating::from_stars(stars).expect("valid")),
        }
    }

    fn added() -> MovieEvent {
        MovieEvent::MovieAdded {
            movielens_id: Some(1),
            title: "Heat".into(),
            year: Some(1995),
            genres: vec!["Action".into()],
            links: Links::default(),
        }
    }

    #[test]
    fn ratings_give_the_count_the_average_and_the_histogram() {
        let mut row = apply(None, &relayed(1, added()))
            .expect("applies")
            .expect("changed");
        for (sequence, event) in [
            rated(1, 4.0, None),
            rated(2, 3.5, None),
            rated(1, 5.0, Some(4.0)),
        ]
        .into_iter()
        .enumerate()
        {
            row = apply(Some(&row), &relayed(sequence as u64 + 2, event))
                .expect("applies")
                .expect("changed");
        }
        assert_eq!(row.ratings_count(), 2);
        assert_eq!(row.rating_average(), Some(4.25));
        let mut histogram = [0; 10];
        histogram[6] = 1;
        histogram[9] = 1;
        assert_eq!(row.histogram(), histogram);
        assert_eq!(row.version, 4);
        assert_eq!(
            apply(Some(&row), &relayed(4, rated(9, 1.0, None))).expect("skips"),
            None
        );
    }

    #[test]
    fn a_batch_leaves_the_rows_to_write_once_each_and_a_replay_adds_nothing() {
        let events = [
            relayed(1, added()),
            relayed(2, rated(1, 4.0, None)),
            relayed(3, rated(2, 2.0, None)),
            relayed(4, rated(1, 3.0, Some(4.0))),
            relayed(
                5,
                MovieEvent::MovieRatingWithdrawn {
                    rater: Rater::MovieLens(2),
                    rating: Rating::from_stars(2.0).expect("valid"),
                },
            ),
        ];
        let mut record = None;
        for event in &events {
            assert!(evolve(&mut record, event).expect("applies"));
        }
        // Delivered again: every event is seen, nothing counts twice.
        for event in &events {
            assert!(!evolve(&mut record, event).expect("skips"));
        }
        let row = record.expect("added");
        assert_eq!(row.ratings_count(), 1);
        assert_eq!(row.rating_average(), Some(3.0));
        assert_eq!(
            row.pending.ratings,
            BTreeMap::from([
                ("ml:1".to_string(), Some((6, 10))),
                ("ml:2".to_string(), None),
            ])
        );
        // The pending rows are not part of the stored document.
        let stored: MovieRecord =
            serde_json::from_value(serde_json::to_value(&row).expect("serializes"))
                .expect("reads back");
        assert_eq!(stored.pending, PendingRows::default());
        assert_eq!(stored.histogram, row.histogram);
    }

    #[test]
    fn an_event_out_of_turn_leaves_the_record_as_it_was() {
        let mut record = None;
        evolve(&mut record, &relayed(1, added())).expect("applies");
        let before = record.clone();
        assert!(evolve(&mut record, &relayed(3, rated(1, 4.0, None))).is_err());
        assert_eq!(record, before);
    }

    #[test]
    fn averages_round_to_hundredths() {
        assert_eq!(average(7, 3), Some(1.17));
        assert_eq!(average(0, 0), None);
        assert_eq!(average(10, 1), Some(5.0));
    }
}

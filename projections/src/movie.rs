//! The `movies` read model: a movie's details, links, every rater's rating and tags, and the
//! figures the lists filter and sort by (count, average, tags), with the version it reflects.

use std::collections::BTreeMap;

use eshop_domain::movie::MovieEvent;
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
    /// rater → (half stars, when, as Unix seconds): compact, as a popular movie has hundreds.
    pub ratings: BTreeMap<String, (u8, i64)>,
    /// (rater, tag, when as Unix seconds), in the order they were given.
    pub tags: Vec<(String, String, i64)>,
    pub version: u64,
}

impl MovieRecord {
    pub fn ratings_count(&self) -> i64 {
        self.ratings.len() as i64
    }

    /// The sum of the ratings in half stars (exact).
    pub fn half_stars_sum(&self) -> i64 {
        self.ratings
            .values()
            .map(|(half, _)| i64::from(*half))
            .sum()
    }

    /// The average in stars, rounded to two decimals; `None` without ratings.
    pub fn rating_average(&self) -> Option<f64> {
        average(self.half_stars_sum(), self.ratings_count())
    }

    /// How many ratings of each value, from 0.5 to 5.0.
    pub fn histogram(&self) -> [i64; 10] {
        let mut counts = [0_i64; 10];
        for (half, _) in self.ratings.values() {
            if let Some(slot) = counts.get_mut(usize::from(*half).wrapping_sub(1)) {
                *slot += 1;
            }
        }
        counts
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
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let decoded: MovieEvent = event.decode()?;
    let mut row = match (current, decoded) {
        (
            None,
            MovieEvent::MovieAdded {
                movielens_id,
                title,
                year,
                genres,
                links,
            },
        ) => MovieRecord {
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
            ratings: BTreeMap::new(),
            tags: Vec::new(),
            version: 0,
        },
        (None, _) => return Err(event.unreadable("the first event is not MovieAdded")),
        (Some(current), decoded) => {
            let mut row = current.clone();
            match decoded {
                MovieEvent::MovieAdded { .. } => {
                    return Err(event.unreadable("MovieAdded on an existing movie"))
                }
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
                    ..
                } => {
                    row.ratings.insert(
                        rater.to_string(),
                        (rating.half_stars(), rated_at.timestamp()),
                    );
                }
                MovieEvent::MovieRatingWithdrawn { rater, .. } => {
                    row.ratings.remove(&rater.to_string());
                }
                MovieEvent::MovieTagged {
                    rater,
                    tag,
                    tagged_at,
                } => row
                    .tags
                    .push((rater.to_string(), tag, tagged_at.timestamp())),
            }
            row
        }
    };
    row.version = event.sequence;
    Ok(Some(row))
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

    fn rated(rater: i64, stars: f64) -> MovieEvent {
        MovieEvent::MovieRated {
            rater: Rater::MovieLens(rater),
            rating: Rating::from_stars(stars).expect("valid"),
            rated_at: Utc.timestamp_opt(10, 0).single().expect("time"),
            previous: None,
        }
    }

    #[test]
    fn ratings_give_the_count_the_average_and_the_histogram() {
        let added = MovieEvent::MovieAdded {
            movielens_id: Some(1),
            title: "Heat".into(),
            year: Some(1995),
            genres: vec!["Action".into()],
            links: Links::default(),
        };
        let mut row = apply(None, &relayed(1, added))
            .expect("applies")
            .expect("changed");
        for (sequence, (rater, stars)) in [(1, 4.0), (2, 3.5), (1, 5.0)].into_iter().enumerate() {
            row = apply(
                Some(&row),
                &relayed(sequence as u64 + 2, rated(rater, stars)),
            )
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
            apply(Some(&row), &relayed(4, rated(9, 1.0))).expect("skips"),
            None
        );
    }

    #[test]
    fn averages_round_to_hundredths() {
        assert_eq!(average(7, 3), Some(1.17));
        assert_eq!(average(0, 0), None);
        assert_eq!(average(10, 1), Some(5.0));
    }
}

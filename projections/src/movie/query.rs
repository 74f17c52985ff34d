//! The movie list query: composable filters, ordering, keyset cursors, and the views a client
//! reads. Pure; `eshop-infra` turns a query into one SQL statement that finds the page's movies
//! (`CardKey`s), whose cards come from the cache or one more statement.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MovieRecord, TagCount};

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovieSortKey {
    Title,
    Year,
    RatingAverage,
    RatingsCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovieOrdering {
    pub key: MovieSortKey,
    pub descending: bool,
}

impl Default for MovieOrdering {
    fn default() -> Self {
        Self {
            key: MovieSortKey::Title,
            descending: false,
        }
    }
}

impl MovieOrdering {
    /// `title`, `-year`, `rating_average`, `-ratings_count`, … (a leading `-` is descending).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, raw),
        };
        let key = match name {
            "title" => MovieSortKey::Title,
            "year" => MovieSortKey::Year,
            "rating_average" => MovieSortKey::RatingAverage,
            "ratings_count" => MovieSortKey::RatingsCount,
            _ => {
                return Err(
                    "must be one of title, year, rating_average, ratings_count, each optionally prefixed by -"
                        .into(),
                )
            }
        };
        Ok(Self { key, descending })
    }
}

/// Whether a movie must have any or all of the `genre`s asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenreMode {
    #[default]
    Any,
    All,
}

/// Every given field narrows the list (AND); `genres` are OR'd (`Any`) or AND'd (`All`);
/// `exclude_genres` are NOT'd.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MovieFilter {
    /// A part of the title, case-insensitive.
    pub title: Option<String>,
    /// Lower-cased, sorted, distinct.
    pub genres: Vec<String>,
    pub genre_mode: GenreMode,
    pub exclude_genres: Vec<String>,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    /// The average at least this (stars).
    pub min_rating: Option<f64>,
    pub min_ratings: Option<i64>,
    /// A tag some rater gave, case-insensitive.
    pub tag: Option<String>,
}

/// Where the next page starts: after the row with this sort value and id. The value is the
/// sort column as the database compares it (a title, or a number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieCursor {
    pub ordering: MovieOrdering,
    pub value: CursorValue,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    Integer(i64),
    Number(f64),
    Text(String),
}

impl MovieCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// `None` unless this code could have made it: a value of the type its ordering sorts by.
    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let cursor: Self = serde_json::from_slice(&bytes).ok()?;
        let fits = match (&cursor.value, cursor.ordering.key) {
            (CursorValue::Text(text), MovieSortKey::Title) => !text.contains('\0'),
            (CursorValue::Integer(_), MovieSortKey::Year | MovieSortKey::RatingsCount) => true,
            (CursorValue::Number(n), MovieSortKey::RatingAverage) => n.is_finite(),
            (CursorValue::Integer(_), MovieSortKey::RatingAverage) => true,
            _ => false,
        };
        fits.then_some(cursor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MovieQuery {
    pub filter: MovieFilter,
    pub ordering: MovieOrdering,
    pub limit: u32,
    pub after: Option<MovieCursor>,
}

impl MovieQuery {
    /// The query as one canonical string: equal queries cache as one page.
    pub fn cache_key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LinksView {
    pub imdb_id: Option<String>,
    pub tmdb_id: Option<i64>,
    pub imdb_url: Option<String>,
    pub tmdb_url: Option<String>,
}

impl LinksView {
    pub fn new(imdb_id: Option<String>, tmdb_id: Option<i64>) -> Self {
        Self {
            imdb_url: imdb_id
                .as_ref()
                .map(|id| format!("https://www.imdb.com/title/tt{id}/")),
            tmdb_url: tmdb_id.map(|id| format!("https://www.themoviedb.org/movie/{id}")),
            imdb_id,
            tmdb_id,
        }
    }
}

/// A movie as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MovieCard {
    pub id: Uuid,
    pub movielens_id: Option<i64>,
    pub title: String,
    pub year: Option<i32>,
    pub genres: Vec<String>,
    pub rating_average: Option<f64>,
    pub ratings_count: i64,
    pub links: LinksView,
    pub version: u64,
}

impl From<&MovieRecord> for MovieCard {
    fn from(record: &MovieRecord) -> Self {
        Self {
            id: record.id,
            movielens_id: record.movielens_id,
            title: record.title.clone(),
            year: record.year,
            genres: record.genres.clone(),
            rating_average: record.rating_average(),
            ratings_count: record.ratings_count(),
            links: LinksView::new(record.imdb_id.clone(), record.tmdb_id),
            version: record.version,
        }
    }
}

/// A movie on a list page, as the list's statement finds it: its card is named by the movie
/// and the version it shows, so a cached card is never stale, and every filter combination
/// that lists the movie shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CardKey {
    pub id: Uuid,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistogramBar {
    pub rating: f64,
    pub count: i64,
}

/// A movie as its own page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MovieDetail {
    #[serde(flatten)]
    pub card: MovieCard,
    pub rating_histogram: Vec<HistogramBar>,
    pub top_tags: Vec<TagCount>,
}

impl From<&MovieRecord> for MovieDetail {
    fn from(record: &MovieRecord) -> Self {
        Self {
            card: MovieCard::from(record),
            rating_histogram: record
                .histogram()
                .iter()
                .enumerate()
                .map(|(slot, count)| HistogramBar {
                    rating: (slot as f64 + 1.0) / 2.0,
                    count: *count,
                })
                .collect(),
            top_tags: record.top_tags(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MoviePage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GenreCount {
    pub name: String,
    pub movies: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RatingView {
    pub rater: String,
    pub rating: f64,
    pub rated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TagView {
    pub rater: String,
    pub tag: String,
    pub tagged_at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_a_forged_one_is_refused() {
        let cursor = MovieCursor {
            ordering: MovieOrdering::parse("-rating_average").expect("valid"),
            value: CursorValue::Number(3.75),
            id: Uuid::from_u128(1),
        };
        assert_eq!(MovieCursor::decode(&cursor.encode()), Some(cursor));
        let forged = MovieCursor {
            ordering: MovieOrdering::parse("year").expect("valid"),
            value: CursorValue::Text("x".into()),
            id: Uuid::from_u128(1),
        };
        assert_eq!(MovieCursor::decode(&forged.encode()), None);
        assert!(MovieOrdering::parse("price").is_err());
    }
}

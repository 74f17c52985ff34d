//! The `movie` aggregate: a MovieLens-compatible catalog entry (title, year, genres, links)
//! together with its raters' ratings and tags.
//!
//! Ratings and tags are events of the movie rather than aggregates of their own: "one rating
//! per (rater, movie)" is then decided inside one aggregate (the movie knows every rater's
//! current rating), a movie's figures (average, histogram) follow one ordered stream, and an
//! import appends a whole movie's rows as one staged append, many movies per transaction. A
//! per-(rater, movie) aggregate would make a re-import load 100,000 aggregates to find that
//! nothing changed; a per-rater aggregate would spread one movie's figures over hundreds of
//! streams. The cost is a hot stream for a popular movie: concurrent ratings of it conflict
//! and the command bus retries them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::DeclaresClaims;

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";
pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_TAG_CHARS: usize = 200;
pub const MAX_GENRE_CHARS: usize = 50;
/// What MovieLens writes when a movie has no genre.
pub const NO_GENRES: &str = "(no genres listed)";

/// The namespace of the ids derived from MovieLens `movieId`s (a fixed random UUID).
const MOVIELENS_NAMESPACE: Uuid = Uuid::from_u128(0x6d0b_8f0e_3c2a_4e51_9b7d_2f4a_1c8e_5a30);

/// The id of the movie imported from MovieLens `movieId`: the same on every import.
pub fn movielens_movie_id(movielens_id: i64) -> Uuid {
    Uuid::new_v5(
        &MOVIELENS_NAMESPACE,
        format!("movielens:movie:{movielens_id}").as_bytes(),
    )
}

/// Who rated or tagged: an eshop user (its id) or an imported MovieLens user (`ml:<userId>`),
/// who is not an account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rater {
    User(Uuid),
    MovieLens(i64),
}

impl fmt::Display for Rater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "{id}"),
            Self::MovieLens(id) => write!(f, "ml:{id}"),
        }
    }
}

impl FromStr for Rater {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.strip_prefix("ml:") {
            Some(id) => id
                .parse()
                .map(Self::MovieLens)
                .map_err(|_| format!("{raw:?} is not ml:<number>")),
            None => raw
                .parse()
                .map(Self::User)
                .map_err(|_| format!("{raw:?} is neither a user id nor ml:<number>")),
        }
    }
}

impl Serialize for Rater {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rater {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Rater {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rater".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// A rating, 0.5 to 5.0 in steps of 0.5, kept as a count of half stars so that it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rating(u8);

impl Rating {
    pub fn from_half_stars(half_stars: u8) -> Result<Self, MovieError> {
        if (1..=10).contains(&half_stars) {
            Ok(Self(half_stars))
        } else {
            Err(MovieError::InvalidRating)
        }
    }

    /// `3.5` → 7 half stars; anything not a multiple of 0.5 in 0.5..=5.0 is refused.
    pub fn from_stars(stars: f64) -> Result<Self, MovieError> {
        let doubled = stars * 2.0;
        if !doubled.is_finite() || doubled.fract() != 0.0 || !(1.0..=10.0).contains(&doubled) {
            return Err(MovieError::InvalidRating);
        }
        Self::from_half_stars(doubled as u8)
    }

    pub fn half_stars(self) -> u8 {
        self.0
    }

    pub fn stars(self) -> f64 {
        f64::from(self.0) / 2.0
    }
}

impl Serialize for Rating {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.stars())
    }
}

impl<'de> Deserialize<'de> for Rating {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_stars(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Rating {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rating".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        f64::json_schema(generator)
    }
}

/// A movie's details as a client or a `movies.csv` row gives them, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MovieDetails {
    pub title: String,
    pub year: Option<i32>,
    pub genres: BTreeSet<String>,
}

impl MovieDetails {
    /// Checks the title, the year and each genre; `(no genres listed)` is no genre.
    pub fn new(
        title: &str,
        year: Option<i32>,
        genres: impl IntoIterator<Item = String>,
    ) -> Result<Self, MovieError> {
        let title = title.trim();
        if title.is_empty()
            || title.chars().count() > MAX_TITLE_CHARS
            || title.chars().any(char::is_control)
        {
            return Err(MovieError::InvalidTitle);
        }
        if year.is_some_and(|year| !(1800..=2200).contains(&year)) {
            return Err(MovieError::InvalidYear);
        }
        let mut set = BTreeSet::new();
        for genre in genres {
            let genre = genre.trim();
            if genre.is_empty() || genre == NO_GENRES {
                continue;
            }
            if genre.chars().count() > MAX_GENRE_CHARS || genre.chars().any(char::is_control) {
                return Err(MovieError::InvalidGenre);
            }
            set.insert(genre.to_string());
        }
        Ok(Self {
            title: title.to_string(),
            year,
            genres: set,
        })
    }

    /// A MovieLens title, `Toy Story (1995)`: the year is taken from a trailing `(yyyy)`; a
    /// title without one keeps its text and has no year.
    pub fn from_movielens(raw_title: &str, genres: &str) -> Result<Self, MovieError> {
        let trimmed = raw_title.trim();
        let (title, year) = split_year(trimmed);
        Self::new(title, year, genres.split('|').map(str::to_string))
    }
}

/// `"Heat (1995)"` → `("Heat", Some(1995))`; also `"Babylon 5 (1994-1998)"`-less titles pass
/// through whole.
fn split_year(title: &str) -> (&str, Option<i32>) {
    let Some(open) = title.rfind('(') else {
        return (title, None);
    };
    let tail = &title[open..];
    let digits = tail.strip_prefix('(').and_then(|t| t.strip_suffix(')'));
    match digits {
        Some(digits) if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let head = title[..open].trim_end();
            if head.is_empty() {
                (title, None)
            } else {
                (head, digits.parse().ok())
            }
        }
        _ => (title, None),
    }
}

/// IMDb and TMDB ids (`links.csv`): the IMDb one as its digits (`0114709`), TMDB's a number.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Links {
    pub imdb_id: Option<String>,
    pub tmdb_id: Option<i64>,
}

impl Links {
    pub fn new(imdb_id: Option<&str>, tmdb_id: Option<i64>) -> Result<Self, MovieError> {
        let imdb_id = imdb_id
            .map(|raw| raw.trim().trim_start_matches("tt").to_string())
            .filter(|raw| !raw.is_empty());
        if imdb_id
            .as_deref()
            .is_some_and(|id| id.len() > 12 || !id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(MovieError::InvalidLink);
        }
        if tmdb_id.is_some_and(|id| id <= 0) {
            return Err(MovieError::InvalidLink);
        }
        Ok(Self { imdb_id, tmdb_id })
    }
}

/// A tag as a rater wrote it: trimmed, 1 to `MAX_TAG_CHARS` characters.
pub fn valid_tag(raw: &str) -> Result<String, MovieError> {
    let tag = raw.trim();
    if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS || tag.chars().any(char::is_control) {
        Err(MovieError::InvalidTag)
    } else {
        Ok(tag.to_string())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RatingGiven {
    pub rater: Rater,
    pub rating: Rating,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TagGiven {
    pub rater: Rater,
    pub tag: String,
    pub at: DateTime<Utc>,
}

/// What one import knows about a movie. Only what differs from the movie as stored becomes an
/// event, so importing the same rows again appends nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportedMovie {
    pub movielens_id: i64,
    /// From `movies.csv`; `None` when this import holds only other files' rows for a movie
    /// imported before.
    pub details: Option<MovieDetails>,
    pub links: Option<Links>,
    pub ratings: Vec<RatingGiven>,
    pub tags: Vec<TagGiven>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MovieCommand {
    Add {
        details: MovieDetails,
        links: Links,
    },
    /// Changes whichever fields are `Some`; equal values produce no event.
    Update {
        details: Option<MovieDetails>,
        links: Option<Links>,
    },
    Rate(RatingGiven),
    WithdrawRating {
        rater: Rater,
    },
    Tag(TagGiven),
    Import(ImportedMovie),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum MovieEvent {
    MovieAdded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        movielens_id: Option<i64>,
        title: String,
        year: Option<i32>,
        genres: Vec<String>,
        #[serde(default)]
        links: Links,
    },
    /// The details after the change (all of them, so a reader needs no earlier event).
    MovieDetailsChanged {
        title: String,
        year: Option<i32>,
        genres: Vec<String>,
    },
    MovieLinksChanged(Links),
    MovieRated {
        rater: Rater,
        rating: Rating,
        rated_at: DateTime<Utc>,
        /// The rating this one replaced, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<Rating>,
    },
    MovieRatingWithdrawn {
        rater: Rater,
        rating: Rating,
    },
    MovieTagged {
        rater: Rater,
        tag: String,
        tagged_at: DateTime<Utc>,
    },
}

impl DomainEvent for MovieEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MovieAdded { .. } => "MovieAdded",
            Self::MovieDetailsChanged { .. } => "MovieDetailsChanged",
            Self::MovieLinksChanged(_) => "MovieLinksChanged",
            Self::MovieRated { .. } => "MovieRated",
            Self::MovieRatingWithdrawn { .. } => "MovieRatingWithdrawn",
            Self::MovieTagged { .. } => "MovieTagged",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for MovieEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MovieError {
    #[error("the movie does not exist")]
    NotFound,
    #[error("a movie with this id already exists")]
    AlreadyExists,
    #[error("a rating is 0.5 to 5.0 in steps of 0.5")]
    InvalidRating,
    #[error("a title is 1 to {MAX_TITLE_CHARS} characters without control characters")]
    InvalidTitle,
    #[error("a year is 1800 to 2200")]
    InvalidYear,
    #[error("a genre is 1 to {MAX_GENRE_CHARS} characters without control characters")]
    InvalidGenre,
    #[error("a tag is 1 to {MAX_TAG_CHARS} characters without control characters")]
    InvalidTag,
    #[error("an IMDb id is digits (tt optional), a TMDB id a positive number")]
    InvalidLink,
    #[error("this rater has not rated the movie")]
    NotRated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingState {
    pub rating: Rating,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Movie {
    pub added: bool,
    pub movielens_id: Option<i64>,
    pub details: MovieDetails,
    pub links: Links,
    /// Each rater's current rating: one per (rater, movie).
    pub ratings: BTreeMap<Rater, RatingState>,
    /// Each (rater, tag) once.
    pub tags: BTreeSet<(Rater, String)>,
}

impl Serialize for MovieDetails {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.title, self.year, &self.genres).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MovieDetails {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (title, year, genres) = Deserialize::deserialize(deserializer)?;
        Ok(Self {
            title,
            year,
            genres,
        })
    }
}

impl Movie {
    fn require_added(&self) -> Result<(), MovieError> {
        if self.added {
            Ok(())
        } else {
            Err(MovieError::NotFound)
        }
    }

    fn decide(&self, command: MovieCommand) -> Result<Vec<MovieEvent>, MovieError> {
        match command {
            MovieCommand::Add { details, links } => {
                if self.added {
                    return Err(MovieError::AlreadyExists);
                }
                Ok(vec![added(None, details, links)])
            }
            MovieCommand::Update { details, links } => {
                self.require_added()?;
                Ok(self.changes(details, links))
            }
            MovieCommand::Rate(given) => {
                self.require_added()?;
                Ok(self.rated(given).into_iter().collect())
            }
            MovieCommand::WithdrawRating { rater } => {
                self.require_added()?;
                let current = self.ratings.get(&rater).ok_or(MovieError::NotRated)?;
                Ok(vec![MovieEvent::MovieRatingWithdrawn {
                    rater,
                    rating: current.rating,
                }])
            }
            MovieCommand::Tag(given) => {
                self.require_added()?;
                Ok(self.tagged(given).into_iter().collect())
            }
            MovieCommand::Import(imported) => self.import_events(imported),
        }
    }

    fn changes(&self, details: Option<MovieDetails>, links: Option<Links>) -> Vec<MovieEvent> {
        let mut events = Vec::new();
        if let Some(details) = details.filter(|details| *details != self.details) {
            events.push(MovieEvent::MovieDetailsChanged {
                title: details.title,
                year: details.year,
                genres: details.genres.into_iter().collect(),
            });
        }
        if let Some(links) = links.filter(|links| *links != self.links) {
            events.push(MovieEvent::MovieLinksChanged(links));
        }
        events
    }

    /// A rating equal to the current one (same value, same time) changes nothing.
    fn rated(&self, given: RatingGiven) -> Option<MovieEvent> {
        let previous = self.ratings.get(&given.rater);
        if previous.is_some_and(|p| p.rating == given.rating && p.at == given.at) {
            return None;
        }
        Some(MovieEvent::MovieRated {
            previous: previous.map(|p| p.rating),
            rater: given.rater,
            rating: given.rating,
            rated_at: given.at,
        })
    }

    /// A (rater, tag) already there changes nothing.
    fn tagged(&self, given: TagGiven) -> Option<MovieEvent> {
        if self
            .tags
            .contains(&(given.rater.clone(), given.tag.clone()))
        {
            return None;
        }
        Some(MovieEvent::MovieTagged {
            rater: given.rater,
            tag: given.tag,
            tagged_at: given.at,
        })
    }

    /// The events importing `imported` appends: only what differs from the movie now.
    pub fn import_events(&self, imported: ImportedMovie) -> Result<Vec<MovieEvent>, MovieError> {
        let mut events = Vec::new();
        // Decided on a copy, so that two rows of one rater in one import keep only the change
        // the later row makes.
        let mut movie = self.clone();
        if !self.added {
            let details = imported.details.clone().ok_or(MovieError::NotFound)?;
            events.push(added(
                Some(imported.movielens_id),
                details,
                imported.links.clone().unwrap_or_default(),
            ));
        } else {
            events.extend(self.changes(imported.details.clone(), imported.links.clone()));
        }
        for event in &events {
            movie.apply(event.clone());
        }
        for given in imported.ratings {
            if let Some(event) = movie.rated(given) {
                movie.apply(event.clone());
                events.push(event);
            }
        }
        for given in imported.tags {
            if let Some(event) = movie.tagged(given) {
                movie.apply(event.clone());
                events.push(event);
            }
        }
        Ok(events)
    }
}

fn added(movielens_id: Option<i64>, details: MovieDetails, links: Links) -> MovieEvent {
    MovieEvent::MovieAdded {
        movielens_id,
        title: details.title,
        year: details.year,
        genres: details.genres.into_iter().collect(),
        links,
    }
}

impl Aggregate for Movie {
    const TYPE: &'static str = "movie";
    type Command = MovieCommand;
    type Event = MovieEvent;
    type Error = MovieError;
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
            MovieEvent::MovieAdded {
                movielens_id,
                title,
                year,
                genres,
                links,
            } => {
                self.added = true;
                self.movielens_id = movielens_id;
                self.details = MovieDetails {
                    title,
                    year,
                    genres: genres.into_iter().collect(),
                };
                self.links = links;
            }
            MovieEvent::MovieDetailsChanged {
                title,
                year,
                genres,
            } => {
                self.details = MovieDetails {
                    title,
                    year,
                    genres: genres.into_iter().collect(),
                }
            }
            MovieEvent::MovieLinksChanged(links) => self.links = links,
            MovieEvent::MovieRated {
                rater,
                rating,
                rated_at,
                ..
            } => {
                self.ratings.insert(
                    rater,
                    RatingState {
                        rating,
                        at: rated_at,
                    },
                );
            }
            MovieEvent::MovieRatingWithdrawn { rater, .. } => {
                self.ratings.remove(&rater);
            }
            MovieEvent::MovieTagged { rater, tag, .. } => {
                self.tags.insert((rater, tag));
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The `movies` table (with `movie_ratings` and `movie_tags` beside it): written by the movies
//! projection, read by the movies API. Every read records its statement in the request's
//! profile (`crate::profile`), so `Server-Timing` can say how many ran.

use std::collections::HashSet;

use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use eshop_commands::movies::KnownMovies;
use eshop_commands::BoxError;
use eshop_projections::movie::query::{
    CardKey, CursorValue, GenreCount, GenreMode, LinksView, MovieCard, MovieCursor, MoviePage,
    MovieQuery, MovieSortKey, RatingView, TagView,
};
use eshop_projections::movie::MovieRecord;
use eshop_projections::RelayedEvent;

use super::{version_column, Table};
use crate::profile::timed;
use crate::PgEventStore;

impl Table for MovieRecord {
    const TABLES: &'static [&'static str] = &["movies", "movie_ratings", "movie_tags"];
    async fn load(
        connection: &mut PgConnection,
        ids: &[Uuid],
        for_update: bool,
    ) -> Result<Vec<Self>, sqlx::Error> {
        let lock = if for_update { " FOR UPDATE" } else { "" };
        let rows: Vec<(Json<MovieRecord>,)> = sqlx::query_as(&format!(
            "SELECT record FROM movies WHERE id = ANY($1){lock}"
        ))
        .bind(ids)
        .fetch_all(connection)
        .await?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// The movie rows (each only over an older version), then, for the movies whose row
    /// changed, the rating and tag rows their events changed (`PendingRows`): a batch writes
    /// what its events did, whatever the movie held before.
    async fn upsert(connection: &mut PgConnection, records: &[&Self]) -> Result<(), sqlx::Error> {
        if records.is_empty() {
            return Ok(());
        }
        let json_list = |f: &dyn Fn(&MovieRecord) -> Vec<String>| -> Vec<serde_json::Value> {
            records.iter().map(|r| serde_json::json!(f(r))).collect()
        };
        let changed: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO movies (id, version, record, movielens_id, title, year, genres, genre_keys,
                                 tag_keys, imdb_id, tmdb_id, ratings_count, rating_average, updated_at)
             SELECT c.id, c.version, c.record, c.movielens_id, c.title, c.year,
                    ARRAY(SELECT jsonb_array_elements_text(c.genres)),
                    ARRAY(SELECT jsonb_array_elements_text(c.genre_keys)),
                    ARRAY(SELECT jsonb_array_elements_text(c.tag_keys)),
                    c.imdb_id, c.tmdb_id, c.ratings_count, c.rating_average, now()
               FROM UNNEST($1::uuid[], $2::bigint[], $3::jsonb[], $4::bigint[], $5::text[], $6::int[],
                           $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::text[], $11::bigint[],
                           $12::bigint[], $13::float8[])
                 AS c(id, version, record, movielens_id, title, year, genres, genre_keys, tag_keys,
                      imdb_id, tmdb_id, ratings_count, rating_average)
             ON CONFLICT (id) DO UPDATE SET
                 version = EXCLUDED.version, record = EXCLUDED.record,
                 movielens_id = EXCLUDED.movielens_id, title = EXCLUDED.title, year = EXCLUDED.year,
                 genres = EXCLUDED.genres, genre_keys = EXCLUDED.genre_keys,
                 tag_keys = EXCLUDED.tag_keys, imdb_id = EXCLUDED.imdb_id,
                 tmdb_id = EXCLUDED.tmdb_id, ratings_count = EXCLUDED.ratings_count,
                 rating_average = EXCLUDED.rating_average, updated_at = now()
             WHERE movies.version < EXCLUDED.version
             RETURNING id",
        )
        .bind(records.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(records.iter().map(|r| version_column(r.version)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| Json(*r)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.movielens_id).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.title.clone()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.year).collect::<Vec<_>>())
        .bind(json_list(&|r| r.genres.clone()))
        .bind(json_list(&|r| r.genre_keys()))
        .bind(json_list(&|r| r.tag_keys()))
        .bind(records.iter().map(|r| r.imdb_id.clone()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.tmdb_id).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.ratings_count()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.rating_average()).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await?;
        let changed: HashSet<Uuid> = changed.into_iter().collect();
        let written: Vec<&MovieRecord> = records
            .iter()
            .copied()
            .filter(|record| changed.contains(&record.id))
            .collect();
        write_pending_ratings(&mut *connection, &written).await?;
        write_pending_tags(&mut *connection, &written).await?;
        Ok(())
    }

    fn shown_on_movie(&self, events: &[RelayedEvent]) -> Option<(Uuid, bool)> {
        let id = self.id.to_string();
        let genres = events.iter().any(|event| {
            event.aggregate_id == id
                && matches!(
                    event.event_type.as_str(),
                    "MovieAdded" | "MovieDetailsChanged"
                )
        });
        Some((self.id, genres))
    }
}

/// The ratings given (inserted, or replacing the rater's) and withdrawn (deleted) by the events
/// applied to `records`, in one statement: per (movie, rater) only the last change is pending,
/// so no row is both.
async fn write_pending_ratings(
    connection: &mut PgConnection,
    records: &[&MovieRecord],
) -> Result<(), sqlx::Error> {
    let (mut given, mut withdrawn) = (RatingColumns::default(), (Vec::new(), Vec::new()));
    for record in records {
        for (rater, rating) in &record.pending.ratings {
            match rating {
                Some((half_stars, at)) => {
                    given.movies.push(record.id);
                    given.raters.push(rater.clone());
                    given.half_stars.push(i32::from(*half_stars));
                    given.at.push(*at);
                }
                None => {
                    withdrawn.0.push(record.id);
                    withdrawn.1.push(rater.clone());
                }
            }
        }
    }
    if given.movies.is_empty() && withdrawn.0.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH gone AS (
             DELETE FROM movie_ratings r
              USING UNNEST($5::uuid[], $6::text[]) AS w(movie_id, rater)
              WHERE r.movie_id = w.movie_id AND r.rater = w.rater)
         INSERT INTO movie_ratings (movie_id, rater, rating, rated_at)
         SELECT movie_id, rater, (half_stars / 2.0)::numeric(2, 1), to_timestamp(at)
           FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::bigint[])
             AS g(movie_id, rater, half_stars, at)
         ON CONFLICT (movie_id, rater) DO UPDATE
            SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at",
    )
    .bind(&given.movies)
    .bind(&given.raters)
    .bind(&given.half_stars)
    .bind(&given.at)
    .bind(&withdrawn.0)
    .bind(&withdrawn.1)
    .execute(connection)
    .await?;
    Ok(())
}

/// `movie_ratings` columns, one array each (for `UNNEST`).
#[derive(Default)]
struct RatingColumns {
    movies: Vec<Uuid>,
    raters: Vec<String>,
    half_stars: Vec<i32>,
    at: Vec<i64>,
}

/// The tags given by the events applied to `records`, in one statement.
async fn write_pending_tags(
    connection: &mut PgConnection,
    records: &[&MovieRecord],
) -> Result<(), sqlx::Error> {
    let (mut movies, mut raters, mut tags, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for record in records {
        for (rater, tag, when) in &record.pending.tags {
            movies.push(record.id);
            raters.push(rater.clone());
            tags.push(tag.clone());
            at.push(*when);
        }
    }
    if movies.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO movie_tags (movie_id, rater, tag, tagged_at)
         SELECT movie_id, rater, tag, to_timestamp(at)
           FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS t(movie_id, rater, tag, at)
         ON CONFLICT DO NOTHING",
    )
    .bind(&movies)
    .bind(&raters)
    .bind(&tags)
    .bind(&at)
    .execute(connection)
    .await?;
    Ok(())
}

/// The card columns of `movies`.
const CARD_COLUMNS: &str = "id, movielens_id, title, year, genres, rating_average, ratings_count, imdb_id, tmdb_id, version";

#[derive(sqlx::FromRow)]
struct CardRow {
    id: Uuid,
    movielens_id: Option<i64>,
    title: String,
    year: Option<i32>,
    genres: Vec<String>,
    rating_average: Option<f64>,
    ratings_count: i64,
    imdb_id: Option<String>,
    tmdb_id: Option<i64>,
    version: i64,
}

impl From<CardRow> for MovieCard {
    fn from(row: CardRow) -> Self {
        Self {
            id: row.id,
            movielens_id: row.movielens_id,
            title: row.title,
            year: row.year,
            genres: row.genres,
            rating_average: row.rating_average,
            ratings_count: row.ratings_count,
            links: LinksView::new(row.imdb_id, row.tmdb_id),
            version: u64::try_from(row.version).unwrap_or_default(),
        }
    }
}

fn sort_expression(key: MovieSortKey) -> &'static str {
    match key {
        MovieSortKey::Title => "title COLLATE \"C\"",
        MovieSortKey::Year => "coalesce(year, 0)",
        MovieSortKey::RatingAverage => "coalesce(rating_average, 0)",
        MovieSortKey::RatingsCount => "ratings_count",
    }
}

/// The sort value of a row of the list's statement (its `sort_value` column, as
/// `sort_expression` computes it), as the cursor after it carries it.
fn sort_value(key: MovieSortKey, row: &PgRow) -> Result<CursorValue, sqlx::Error> {
    Ok(match key {
        MovieSortKey::Title => CursorValue::Text(row.try_get("sort_value")?),
        MovieSortKey::Year => CursorValue::Integer(i64::from(row.try_get::<i32, _>("sort_value")?)),
        MovieSortKey::RatingAverage => CursorValue::Number(row.try_get("sort_value")?),
        MovieSortKey::RatingsCount => CursorValue::Integer(row.try_get("sort_value")?),
    })
}

/// `%`, `_` and `\` taken literally in an ILIKE pattern.
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The queries of the movies API.
#[derive(Clone)]
pub struct PgMovies {
    pool: PgPool,
}

impl PgMovies {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// One page of movies as one statement over `movies`, whatever the filters and the page:
    /// each movie's id and version (which name its card: `cards`, or the cache) and the cursor
    /// of the next page.
    pub async fn list(&self, query: &MovieQuery) -> Result<MoviePage<CardKey>, sqlx::Error> {
        let filter = &query.filter;
        let key = query.ordering.key;
        let sort = sort_expression(key);
        let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT id, version, {sort} AS sort_value FROM movies WHERE TRUE"
        ));
        if let Some(title) = &filter.title {
            sql.push(" AND title ILIKE ")
                .push_bind(format!("%{}%", like_escaped(title)));
        }
        if !filter.genres.is_empty() {
            let operator = match filter.genre_mode {
                GenreMode::Any => " && ",
                GenreMode::All => " @> ",
            };
            sql.push(" AND genre_keys")
                .push(operator)
                .push_bind(filter.genres.clone());
        }
        if !filter.exclude_genres.is_empty() {
            sql.push(" AND NOT genre_keys && ")
                .push_bind(filter.exclude_genres.clone());
        }
        if let Some(from) = filter.year_from {
            sql.push(" AND year >= ").push_bind(from);
        }
        if let Some(to) = filter.year_to {
            sql.push(" AND year <= ").push_bind(to);
        }
        if let Some(min) = filter.min_rating {
            sql.push(" AND rating_average >= ").push_bind(min);
        }
        if let Some(min) = filter.min_ratings {
            sql.push(" AND ratings_count >= ").push_bind(min);
        }
        if let Some(tag) = &filter.tag {
            sql.push(" AND tag_keys @> ARRAY[")
                .push_bind(tag.to_lowercase())
                .push("]");
        }
        let (comparison, direction) = if query.ordering.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(after) = &query.after {
            sql.push(format!(" AND ({sort}, id) {comparison} ("));
            match &after.value {
                CursorValue::Text(text) => sql.push_bind(text.clone()).push(" COLLATE \"C\""),
                CursorValue::Integer(n) if key == MovieSortKey::RatingAverage => {
                    sql.push_bind(*n as f64)
                }
                CursorValue::Integer(n) => sql.push_bind(*n),
                CursorValue::Number(n) => sql.push_bind(*n),
            };
            sql.push(", ").push_bind(after.id).push(")");
        }
        sql.push(format!(
            " ORDER BY {sort} {direction}, id {direction} LIMIT "
        ))
        .push_bind(i64::from(query.limit) + 1);
        let mut rows: Vec<PgRow> = timed("movies.list", sql.build().fetch_all(&self.pool)).await?;
        let next_cursor = if rows.len() > query.limit as usize {
            rows.truncate(query.limit as usize);
            match rows.last() {
                Some(last) => Some(
                    MovieCursor {
                        ordering: query.ordering,
                        value: sort_value(key, last)?,
                        id: last.try_get("id")?,
                    }
                    .encode(),
                ),
                None => None,
            }
        } else {
            None
        };
        let items = rows
            .iter()
            .map(|row| {
                Ok(CardKey {
                    id: row.try_get("id")?,
                    version: u64::try_from(row.try_get::<i64, _>("version")?).unwrap_or_default(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(MoviePage { items, next_cursor })
    }

    /// The cards of `ids` (those that exist, in no particular order), as one statement.
    pub async fn cards(&self, ids: &[Uuid]) -> Result<Vec<MovieCard>, sqlx::Error> {
        let rows: Vec<CardRow> = timed(
            "movies.cards",
            sqlx::query_as(&format!(
                "SELECT {CARD_COLUMNS} FROM movies WHERE id = ANY($1)"
            ))
            .bind(ids)
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows.into_iter().map(MovieCard::from).collect())
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<MovieRecord>, sqlx::Error> {
        let row: Option<(Json<MovieRecord>,)> = timed(
            "movies.get",
            sqlx::query_as("SELECT record FROM movies WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(|(Json(record),)| record))
    }

    /// A movie's ratings by rater, after `after` (a rater).
    pub async fn ratings(
        &self,
        id: Uuid,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RatingView>, sqlx::Error> {
        let rows: Vec<(String, f64, chrono::DateTime<chrono::Utc>)> = timed(
            "movies.ratings",
            sqlx::query_as(
                "SELECT rater, rating::float8, rated_at FROM movie_ratings
                  WHERE movie_id = $1 AND rater COLLATE \"C\" > $2
                  ORDER BY rater COLLATE \"C\" LIMIT $3",
            )
            .bind(id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(rater, rating, rated_at)| RatingView {
                rater,
                rating,
                rated_at,
            })
            .collect())
    }

    /// A movie's tags by (rater, tag), after `after`.
    pub async fn tags(
        &self,
        id: Uuid,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<TagView>, sqlx::Error> {
        let (rater, tag) = after.unwrap_or(("", ""));
        let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = timed(
            "movies.tags",
            sqlx::query_as(
                "SELECT rater, tag, tagged_at FROM movie_tags
                  WHERE movie_id = $1 AND (rater COLLATE \"C\", tag COLLATE \"C\") > ($2, $3)
                  ORDER BY rater COLLATE \"C\", tag COLLATE \"C\" LIMIT $4",
            )
            .bind(id)
            .bind(rater)
            .bind(tag)
            .bind(limit)
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(rater, tag, tagged_at)| TagView {
                rater,
                tag,
                tagged_at,
            })
            .collect())
    }

    /// Every genre with how many movies have it.
    pub async fn genres(&self) -> Result<Vec<GenreCount>, sqlx::Error> {
        let rows: Vec<(String, i64)> = timed(
            "movies.genres",
            sqlx::query_as(
                "SELECT genre, count(*) FROM movies CROSS JOIN LATERAL unnest(genres) AS genre
                  GROUP BY genre ORDER BY genre",
            )
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, movies)| GenreCount { name, movies })
            .collect())
    }
}

impl KnownMovies for PgEventStore {
    /// Reads the event store (the truth), not the read model, which may lag behind.
    async fn existing(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, BoxError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM events
              WHERE aggregate_type = 'movie' AND sequence = 1 AND aggregate_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        Ok(found.iter().filter_map(|id| id.parse().ok()).collect())
    }
}

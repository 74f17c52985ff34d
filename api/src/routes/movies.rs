//! The movies catalog: lists with composable filters, a movie with its histogram and top tags,
//! its ratings and tags, genres; admins add and change movies; signed-in users rate and tag.
//! Reads come from the `movies` read model (`state.movies`) behind the cache (`movie_cache`).

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use eshop_commands::movies::Movies;
use eshop_domain::movie::{
    valid_tag, Links, Movie, MovieCommand, MovieDetails, Rater, Rating, RatingGiven, TagGiven,
};
use eshop_domain::values::InvalidValue;
use eshop_projections::movie::query::{
    GenreMode, MovieCursor, MovieFilter, MovieOrdering, MovieQuery, DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
};

use crate::auth::{AdminUser, CurrentUser};
use crate::command::{execute, Answer};
use crate::error::{ApiError, FieldError};
use crate::request::{JsonBody, RequestMeta};
use crate::routes::{movie_cache, parse_id, PageParams};
use crate::state::AppState;
use crate::validate::Fields;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/movies", get(list).post(add))
        .route("/api/movies/{id}", get(show).patch(update))
        .route("/api/movies/{id}/ratings", get(ratings))
        .route("/api/movies/{id}/tags", get(tags).post(tag))
        .route("/api/movies/{id}/rating", put(rate).delete(withdraw))
        .route("/api/genres", get(genres))
        .route(
            "/api/admin/imports/movielens",
            post(crate::routes::movie_import::start),
        )
}

/// The query string as (name, value) pairs: `genre` and `exclude_genre` may repeat.
fn pairs(raw: Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|_| ApiError::field("query", "is not a valid query string"))
}

fn text(raw: &str) -> Result<Option<String>, InvalidValue> {
    let value = raw.trim();
    if value.is_empty() {
        Ok(None)
    } else if value.chars().count() > 200 {
        Err(InvalidValue("must be at most 200 characters".into()))
    } else if value.chars().any(char::is_control) {
        Err(InvalidValue("must not contain control characters".into()))
    } else {
        Ok(Some(value.to_string()))
    }
}

fn number<T: std::str::FromStr>(raw: &str, expected: &str) -> Result<T, InvalidValue> {
    raw.trim()
        .parse()
        .map_err(|_| InvalidValue(format!("must be {expected}")))
}

/// The parameters of `GET /api/movies`, for the document: `to_query` reads them (`genre` and
/// `exclude_genre` may repeat).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub(crate) struct ListParams {
    /// Words the title contains.
    title: Option<String>,
    /// Movies with this genre (`genre_mode=all`: with every one given).
    genre: Option<Vec<String>>,
    /// `any` (the default) or `all`.
    #[schemars(extend("enum" = ["any", "all"]))]
    genre_mode: Option<String>,
    /// Movies without this genre.
    exclude_genre: Option<Vec<String>>,
    year_from: Option<i32>,
    year_to: Option<i32>,
    #[schemars(range(min = 0.0, max = 5.0))]
    min_rating: Option<f64>,
    min_ratings: Option<i64>,
    /// Movies someone tagged so.
    tag: Option<String>,
    /// The sort key; `-` first for descending.
    #[schemars(extend("enum" = [
        "title", "-title", "year", "-year", "rating_average", "-rating_average",
        "ratings_count", "-ratings_count"
    ]))]
    ordering: Option<String>,
    #[schemars(range(min = 1, max = 100))]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The list query from the query string, or 422 naming every invalid parameter.
pub fn to_query(raw: Option<String>) -> Result<MovieQuery, ApiError> {
    let mut fields = Fields::default();
    let mut filter = MovieFilter::default();
    let mut ordering = MovieOrdering::default();
    let mut limit = DEFAULT_PAGE_SIZE;
    let mut cursor = None;
    for (name, value) in pairs(raw)? {
        match name.as_str() {
            "title" => filter.title = fields.check("title", text(&value)).flatten(),
            "genre" | "exclude_genre" => {
                if let Some(Some(genre)) = fields.check(&name, text(&value)) {
                    let list = if name == "genre" {
                        &mut filter.genres
                    } else {
                        &mut filter.exclude_genres
                    };
                    list.push(genre.to_lowercase());
                }
            }
            "genre_mode" => match value.as_str() {
                "any" => filter.genre_mode = GenreMode::Any,
                "all" => filter.genre_mode = GenreMode::All,
                _ => fields.add(FieldError::new("genre_mode", "must be any or all")),
            },
            "year_from" => filter.year_from = fields.check(&name, number(&value, "a year")),
            "year_to" => filter.year_to = fields.check(&name, number(&value, "a year")),
            "min_rating" => {
                filter.min_rating = fields.check(
                    &name,
                    number::<f64>(&value, "a number from 0 to 5").and_then(|n| {
                        if (0.0..=5.0).contains(&n) {
                            Ok(n)
                        } else {
                            Err(InvalidValue("must be a number from 0 to 5".into()))
                        }
                    }),
                )
            }
            "min_ratings" => {
                filter.min_ratings = fields.check(&name, number(&value, "a whole number"))
            }
            "tag" => filter.tag = fields.check("tag", text(&value)).flatten(),
            "ordering" => {
                if let Some(parsed) = fields.check(
                    "ordering",
                    MovieOrdering::parse(value.trim()).map_err(InvalidValue),
                ) {
                    ordering = parsed;
                }
            }
            "limit" => match number::<u32>(&value, "a whole number") {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => limit = n,
                _ => fields.add(FieldError::new(
                    "limit",
                    format!("must be 1 to {MAX_PAGE_SIZE}"),
                )),
            },
            "cursor" => cursor = Some(value),
            _ => fields.add(FieldError::new(&name, "is not a parameter of this list")),
        }
    }
    if !fields.is_valid() {
        return Err(fields.into_error());
    }
    filter.genres.sort();
    filter.genres.dedup();
    filter.exclude_genres.sort();
    filter.exclude_genres.dedup();
    let after = match cursor.as_deref().map(MovieCursor::decode) {
        None => None,
        Some(Some(cursor)) if cursor.ordering == ordering => Some(cursor),
        Some(_) => {
            return Err(ApiError::field(
                "cursor",
                "is not a cursor from a previous page of this ordering",
            ))
        }
    };
    Ok(MovieQuery {
        filter,
        ordering,
        limit,
        after,
    })
}

async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = to_query(raw)?;
    movie_cache::list(&state, &query).await
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id, "movie")?;
    movie_cache::detail(&state, id).await
}

async fn genres(State(state): State<AppState>) -> Result<Response, ApiError> {
    movie_cache::genres(&state).await
}

#[derive(Serialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

async fn ratings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    crate::request::ApiQuery(page): crate::request::ApiQuery<PageParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "movie")?;
    let limit = page.limit(50, 500)?;
    let items = state
        .movies
        .ratings(id, page.cursor.as_deref(), limit + 1)
        .await?;
    paged(items, limit, |last| last.rater.clone())
}

async fn tags(
    State(state): State<AppState>,
    Path(id): Path<String>,
    crate::request::ApiQuery(page): crate::request::ApiQuery<PageParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "movie")?;
    let limit = page.limit(50, 500)?;
    // The cursor is the last (rater, tag), as JSON.
    let after: Option<(String, String)> = match page.cursor.as_deref() {
        Some(raw) => Some(
            serde_json::from_str(raw)
                .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?,
        ),
        None => None,
    };
    let items = state
        .movies
        .tags(
            id,
            after.as_ref().map(|(r, t)| (r.as_str(), t.as_str())),
            limit + 1,
        )
        .await?;
    paged(items, limit, |last| {
        serde_json::to_string(&(&last.rater, &last.tag)).unwrap_or_default()
    })
}

fn paged<T: Serialize>(
    mut items: Vec<T>,
    limit: i64,
    cursor: impl Fn(&T) -> String,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    serde_json::to_value(Page { items, next_cursor })
        .map(axum::Json)
        .map_err(ApiError::internal)
}

/// A movie as a command leaves it.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct MovieAnswer {
    id: Uuid,
    movielens_id: Option<i64>,
    title: String,
    year: Option<i32>,
    genres: Vec<String>,
    imdb_id: Option<String>,
    tmdb_id: Option<i64>,
    ratings_count: usize,
    version: u64,
}

impl MovieAnswer {
    fn new(id: Uuid, movie: &Movie, version: u64) -> Self {
        Self {
            id,
            movielens_id: movie.movielens_id,
            title: movie.details.title.clone(),
            year: movie.details.year,
            genres: movie.details.genres.iter().cloned().collect(),
            imdb_id: movie.links.imdb_id.clone(),
            tmdb_id: movie.links.tmdb_id,
            ratings_count: movie.ratings.len(),
            version,
        }
    }
}

async fn run(
    state: &AppState,
    meta: &RequestMeta,
    user: &CurrentUser,
    target: Option<Uuid>,
    body: &serde_json::Value,
    command: MovieCommand,
) -> Result<Response, ApiError> {
    execute(
        state,
        meta,
        &user.id.to_string(),
        user.actor(),
        body,
        |context| async move {
            let id = target.unwrap_or_else(|| context.new_aggregate_id());
            let executed = Movies::new(&state.bus)
                .execute(id, command, &context, meta.expected_version)
                .await?;
            let answer = MovieAnswer::new(id, &executed.aggregate, executed.version);
            if target.is_none() {
                Answer::created(answer)
            } else {
                Answer::ok(answer)
            }
        },
    )
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MovieRequest {
    title: Option<String>,
    year: Option<i32>,
    genres: Option<Vec<String>>,
    imdb_id: Option<String>,
    tmdb_id: Option<i64>,
}

fn details(body: &MovieRequest, fields: &mut Fields) -> Option<MovieDetails> {
    let title = body.title.clone().unwrap_or_default();
    fields.check(
        "title",
        MovieDetails::new(&title, body.year, body.genres.clone().unwrap_or_default())
            .map_err(|error| InvalidValue(error.to_string())),
    )
}

fn links(body: &MovieRequest, fields: &mut Fields) -> Option<Links> {
    fields.check(
        "imdb_id",
        Links::new(body.imdb_id.as_deref(), body.tmdb_id)
            .map_err(|error| InvalidValue(error.to_string())),
    )
}

async fn add(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    JsonBody { value: body, raw }: JsonBody<MovieRequest>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let (Some(details), Some(links)) = (details(&body, &mut fields), links(&body, &mut fields))
    else {
        return Err(fields.into_error());
    };
    let command = MovieCommand::Add { details, links };
    run(&state, &meta, &admin, None, &raw, command).await
}

/// Changes the details when any of title, year, genres is given (the others keep their
/// value), the links when either id is.
async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value: body, raw }: JsonBody<MovieRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "movie")?;
    let current = state.bus.load::<Movie>(&id.to_string()).await?.aggregate;
    if !current.added {
        return Err(ApiError::NotFound("movie"));
    }
    let merged = MovieRequest {
        title: body.title.clone().or(Some(current.details.title.clone())),
        year: body.year.or(current.details.year),
        genres: body
            .genres
            .clone()
            .or_else(|| Some(current.details.genres.iter().cloned().collect())),
        imdb_id: body.imdb_id.clone().or(current.links.imdb_id.clone()),
        tmdb_id: body.tmdb_id.or(current.links.tmdb_id),
    };
    let mut fields = Fields::default();
    let details_given = body.title.is_some() || body.year.is_some() || body.genres.is_some();
    let links_given = body.imdb_id.is_some() || body.tmdb_id.is_some();
    let details = details(&merged, &mut fields);
    let links = links(&merged, &mut fields);
    if !fields.is_valid() {
        return Err(fields.into_error());
    }
    let command = MovieCommand::Update {
        details: details.filter(|_| details_given),
        links: links.filter(|_| links_given),
    };
    run(&state, &meta, &admin, Some(id), &raw, command).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateRequest {
    rating: f64,
}

async fn rate(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value: body, raw }: JsonBody<RateRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "movie")?;
    let rating = Rating::from_stars(body.rating)
        .map_err(|error| ApiError::field("rating", error.to_string()))?;
    let command = MovieCommand::Rate(RatingGiven {
        rater: Rater::User(user.id),
        rating,
        at: chrono::Utc::now(),
    });
    run(&state, &meta, &user, Some(id), &raw, command).await
}

async fn withdraw(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "movie")?;
    let command = MovieCommand::WithdrawRating {
        rater: Rater::User(user.id),
    };
    run(
        &state,
        &meta,
        &user,
        Some(id),
        &serde_json::Value::Null,
        command,
    )
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagRequest {
    tag: String,
}

async fn tag(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value: body, raw }: JsonBody<TagRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "movie")?;
    let tag = valid_tag(&body.tag).map_err(|error| ApiError::field("tag", error.to_string()))?;
    let command = MovieCommand::Tag(TagGiven {
        rater: Rater::User(user.id),
        tag,
        at: chrono::Utc::now(),
    });
    run(&state, &meta, &user, Some(id), &raw, command).await
}

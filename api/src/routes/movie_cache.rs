//! The movies' cached reads: a list page, a movie's detail and the genre counts are cached
//! whole in Redis (as the products are), stamped with generations the movies projection bumps
//! after each commit (`Cache::invalidate_movies`): a movie's change drops its detail and every
//! list page; the genre counts only when a movie was added or its details changed.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use uuid::Uuid;

use eshop_projections::cached::Entry;
use eshop_projections::movie::query::{MovieDetail, MovieQuery};

use crate::error::ApiError;
use crate::state::AppState;

fn json(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn encoded(value: &impl serde::Serialize) -> Result<Option<Bytes>, ApiError> {
    serde_json::to_vec(value)
        .map(|body| Some(Bytes::from(body)))
        .map_err(ApiError::internal)
}

pub async fn list(state: &AppState, query: &MovieQuery) -> Result<Response, ApiError> {
    let movies = &state.movies;
    let page = state
        .cache
        .get_or_load(Entry::MovieList(query.cache_key()), || async {
            encoded(&movies.list(query).await?)
        })
        .await?
        .unwrap_or_default();
    Ok(json(page))
}

pub async fn detail(state: &AppState, id: Uuid) -> Result<Response, ApiError> {
    let movies = &state.movies;
    let body = state
        .cache
        .get_or_load(Entry::Movie(id), || async {
            match movies.get(id).await? {
                Some(record) => encoded(&MovieDetail::from(&record)),
                None => Ok(None),
            }
        })
        .await?
        .ok_or(ApiError::NotFound("movie"))?;
    Ok(json(body))
}

pub async fn genres(state: &AppState) -> Result<Response, ApiError> {
    let movies = &state.movies;
    let body = state
        .cache
        .get_or_load(Entry::Genres, || async { encoded(&movies.genres().await?) })
        .await?
        .unwrap_or_default();
    Ok(json(body))
}

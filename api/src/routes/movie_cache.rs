//! The movies' cached reads: a list page, a movie's detail and the genre counts are cached
//! whole in Redis (as the products are), stamped with generations the movies projection bumps
//! after each commit (`Cache::invalidate_movies`): a movie's change drops its detail and every
//! list page; the genre counts only when a movie was added or its details changed.
//!
//! A list page that is not cached is assembled: one statement finds its movies (ids and
//! versions), their cards come from the cached fragments (one `MGET`; a card names the version
//! it shows, so none is stale), and only the missing cards are read, in one more statement,
//! and cached for the next page that lists them, whatever its filters.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use std::collections::HashMap;
use uuid::Uuid;

use eshop_projections::cached::Entry;
use eshop_projections::movie::query::{CardKey, MovieCard, MovieDetail, MovieQuery};

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
    let page = state
        .cache
        .get_or_load(Entry::MovieList(query.cache_key()), || async {
            assembled(state, query).await.map(Some)
        })
        .await?
        .unwrap_or_default();
    Ok(json(page))
}

/// A list page from its movies' cards: cached ones, and the others read in one statement.
async fn assembled(state: &AppState, query: &MovieQuery) -> Result<Bytes, ApiError> {
    let movies = &state.movies;
    let page = movies.list(query).await?;
    let entries: Vec<Entry> = page.items.iter().copied().map(Entry::MovieCard).collect();
    let items = &page.items;
    let cards = state
        .cache
        .get_or_load_fragments(&entries, |missing| async move {
            let ids: Vec<Uuid> = missing.iter().map(|&at| items[at].id).collect();
            let mut read: HashMap<Uuid, MovieCard> = movies
                .cards(&ids)
                .await?
                .into_iter()
                .map(|card| (card.id, card))
                .collect();
            ids.iter()
                .map(|id| match read.remove(id) {
                    Some(card) => {
                        let key = CardKey {
                            id: card.id,
                            version: card.version,
                        };
                        let bytes = serde_json::to_vec(&card).map_err(ApiError::internal)?;
                        Ok(Some((Entry::MovieCard(key), Bytes::from(bytes))))
                    }
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?;
    // Movies are never removed, so every card is found; one that is not is left out.
    let cards: Vec<Bytes> = cards.into_iter().flatten().collect();
    page_of(&cards, page.next_cursor.as_deref())
}

/// `{"items": [cards], "next_cursor": …}` (a `MoviePage`) from cards already serialized.
fn page_of(cards: &[Bytes], next_cursor: Option<&str>) -> Result<Bytes, ApiError> {
    let cursor = serde_json::to_vec(&next_cursor).map_err(ApiError::internal)?;
    let mut page = Vec::with_capacity(cards.iter().map(Bytes::len).sum::<usize>() + 64);
    page.extend_from_slice(b"{\"items\":[");
    for (at, card) in cards.iter().enumerate() {
        if at > 0 {
            page.push(b',');
        }
        page.extend_from_slice(card);
    }
    page.extend_from_slice(b"],\"next_cursor\":");
    page.extend_from_slice(&cursor);
    page.push(b'}');
    Ok(Bytes::from(page))
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

#[cfg(test)]
mod tests {
    use super::*;
    use eshop_projections::movie::query::{LinksView, MoviePage};

    fn card(title: &str) -> MovieCard {
        MovieCard {
            id: Uuid::from_u128(title.len() as u128),
            movielens_id: Some(7),
            title: title.into(),
            year: Some(1995),
            genres: vec!["Crime".into()],
            rating_average: Some(4.25),
            ratings_count: 2,
            links: LinksView::new(Some("0113277".into()), None),
            version: 3,
        }
    }

    #[test]
    fn an_assembled_page_reads_as_the_page_of_its_cards() {
        for (cards, cursor) in [
            (vec![card("Heat"), card("Se7en")], Some("abc")),
            (vec![card("Heat")], None),
            (Vec::new(), None),
        ] {
            let serialized: Vec<Bytes> = cards
                .iter()
                .map(|card| Bytes::from(serde_json::to_vec(card).expect("serializes")))
                .collect();
            let assembled = page_of(&serialized, cursor).expect("assembles");
            let read: MoviePage<MovieCard> = serde_json::from_slice(&assembled).expect("a page");
            assert_eq!(
                read,
                MoviePage {
                    items: cards,
                    next_cursor: cursor.map(String::from),
                }
            );
        }
    }
}

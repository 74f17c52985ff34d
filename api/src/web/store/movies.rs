//! What else the API offers to read: movies (`GET /movies`, `GET /movies/{id}`) and the
//! economic calendar (`GET /calendar`), as simple lists.

use axum::extract::{Path, Query, State};
use maud::html;
use serde::Deserialize;

use eshop_projections::movie::query::{MovieCard, MovieDetail, MoviePage};

use crate::web::page::{store_page, Html, PageError};
use crate::web::session::Visitor;
use crate::web::store::{chrome, next_page_link, parse_id};
use crate::web::WebState;

/// `?title=&genre=&page=` for movies, `?from=&to=&page=` for the calendar.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    title: String,
    #[serde(default)]
    genre: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: String,
}

/// `path?` with the non-empty pairs, `page` as the API's `cursor`.
fn api_path(path: &str, pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (if *name == "page" { "cursor" } else { *name }, value.trim()))
        .collect();
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

fn rating(average: Option<f64>, count: i64) -> String {
    match average {
        Some(average) => format!("{average:.1}★ ({count})"),
        None => "not rated yet".into(),
    }
}

pub async fn list(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(query): Query<ListQuery>,
) -> Result<Html, PageError> {
    let pairs = [
        ("title", query.title.as_str()),
        ("genre", &query.genre),
        ("page", &query.page),
    ];
    let movies: MoviePage<MovieCard> = web
        .api
        .get(&visitor.caller, &api_path("/api/movies", &pairs))
        .await?;
    let chrome = chrome(&web, &visitor, None).await;
    let body = html! {
        h1 { "Movies" }
        form id="movie-filters" class="filters" method="get" action="/movies" {
            label for="movie-title" { "Title" }
            input id="movie-title" type="search" name="title" value=(query.title);
            label for="movie-genre" { "Genre" }
            input id="movie-genre" name="genre" value=(query.genre);
            button type="submit" { "Filter" }
        }
        @if movies.items.is_empty() { p class="muted" { "No movies." } }
        div class="grid" {
            @for movie in &movies.items {
                article class="movie-card" {
                    h3 { a href={ "/movies/" (movie.id) } { (movie.title) } }
                    p class="muted" {
                        @if let Some(year) = movie.year { (year) " · " }
                        (movie.genres.join(", "))
                    }
                    p class="rating" { (rating(movie.rating_average, movie.ratings_count)) }
                }
            }
        }
        (next_page_link("/movies", &pairs, movies.next_cursor.as_deref()))
    };
    Ok(store_page(&visitor, &chrome, "Movies", body))
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Html, PageError> {
    let id = parse_id(&id)?;
    let movie: MovieDetail = web
        .api
        .get(&visitor.caller, &format!("/api/movies/{id}"))
        .await?;
    let chrome = chrome(&web, &visitor, None).await;
    let card = &movie.card;
    let body = html! {
        article class="movie-card" {
            h1 { (card.title) @if let Some(year) = card.year { " (" (year) ")" } }
            p class="muted" { (card.genres.join(", ")) }
            p class="rating" { (rating(card.rating_average, card.ratings_count)) }
            @if !movie.rating_histogram.is_empty() {
                table id="histogram" {
                    thead { tr { th { "Rating" } th { "Ratings" } } }
                    tbody {
                        @for bar in &movie.rating_histogram {
                            tr { td { (format!("{:.1}", bar.rating)) } td { (bar.count) } }
                        }
                    }
                }
            }
            @if !movie.top_tags.is_empty() {
                p class="tags" {
                    "Tags: "
                    @for tag in &movie.top_tags { span class="tag" { (tag.tag) " (" (tag.count) ")" } " " }
                }
            }
            p {
                @if let Some(url) = &card.links.imdb_url { a href=(url) rel="noopener" { "IMDb" } " " }
                @if let Some(url) = &card.links.tmdb_url { a href=(url) rel="noopener" { "TMDB" } }
            }
        }
    };
    Ok(store_page(&visitor, &chrome, &card.title, body))
}

#[derive(Deserialize)]
struct CalendarEntry {
    date: String,
    time: String,
    time_zone: String,
    name: String,
    country: String,
    importance: String,
    actual: Option<String>,
    forecast: Option<String>,
    previous: Option<String>,
}

#[derive(Deserialize)]
struct CalendarPage {
    items: Vec<CalendarEntry>,
    next_cursor: Option<String>,
}

pub async fn calendar(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(query): Query<ListQuery>,
) -> Result<Html, PageError> {
    let pairs = [
        ("from", query.from.as_str()),
        ("to", &query.to),
        ("page", &query.page),
    ];
    let entries: CalendarPage = web
        .api
        .get(&visitor.caller, &api_path("/api/calendar/events", &pairs))
        .await?;
    let chrome = chrome(&web, &visitor, None).await;
    let body = html! {
        h1 { "Economic calendar" }
        form id="calendar-filters" class="filters" method="get" action="/calendar" {
            label for="calendar-from" { "From" }
            input id="calendar-from" type="date" name="from" value=(query.from);
            label for="calendar-to" { "To" }
            input id="calendar-to" type="date" name="to" value=(query.to);
            button type="submit" { "Show" }
        }
        table id="calendar" {
            thead { tr { th { "Date" } th { "Time" } th { "Country" } th { "Event" } th { "Importance" } th { "Actual" } th { "Forecast" } th { "Previous" } } }
            tbody {
                @for entry in &entries.items {
                    tr class="calendar-entry" {
                        td { (entry.date) }
                        td { (entry.time) " " span class="muted" { (entry.time_zone) } }
                        td { (entry.country) }
                        td { (entry.name) }
                        td { (entry.importance) }
                        td { (entry.actual.as_deref().unwrap_or("")) }
                        td { (entry.forecast.as_deref().unwrap_or("")) }
                        td { (entry.previous.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        (next_page_link("/calendar", &pairs, entries.next_cursor.as_deref()))
    };
    Ok(store_page(&visitor, &chrome, "Calendar", body))
}

//! The movies: `GET /movies` (title and genre filters, pages) and `GET /movies/{id}` (ratings
//! and tags).

use axum::extract::{Path, Query, State};
use maud::html;
use serde::Deserialize;

use eshop_projections::movie::query::{MovieCard, MovieDetail, MoviePage};

use crate::web::page::{store_page, Html, PageError};
use crate::web::session::Visitor;
use crate::web::store::{api_list_path, chrome, next_page_link, parse_id};
use crate::web::WebState;

/// `GET /movies?title=&genre=&page=`.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    title: String,
    #[serde(default)]
    genre: String,
    #[serde(default)]
    page: String,
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
        .get(&visitor.caller, &api_list_path("/api/movies", &pairs))
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

//! The names of cached reads: what the API caches and the projections invalidate.

use uuid::Uuid;

use crate::movie::query::CardKey;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    Product(Uuid),
    /// A list or search page, named by its canonical query.
    ProductList(String),
    /// A movie's detail answer.
    Movie(Uuid),
    /// A movie's card at one version: a fragment list pages are assembled from (never stale,
    /// as it names its version; see `Cache::get_or_load_fragments`).
    MovieCard(CardKey),
    /// A movie list page (the whole answer), named by its canonical query.
    MovieList(String),
    /// Every genre with its count of movies.
    Genres,
    /// A calendar entry with its revision history.
    CalendarEvent(Uuid),
    /// A calendar list page, named by its canonical query.
    CalendarList(String),
    /// Whatever shows the category tree: product views carry breadcrumbs, so a change to any
    /// category drops every cached entry (categories change rarely).
    Categories,
}

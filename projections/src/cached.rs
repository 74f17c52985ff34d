//! The names of cached reads: what the API caches and the projections invalidate.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    Product(Uuid),
    /// A list or search page, named by its canonical query.
    ProductList(String),
    /// A movie's detail answer.
    Movie(Uuid),
    /// A movie's card, the fragment list pages are assembled from.
    MovieCard(Uuid),
    /// A movie list page's ids and cursor, named by its canonical query.
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

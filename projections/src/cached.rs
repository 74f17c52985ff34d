//! The names of cached reads: what the API caches and the projections invalidate.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    Product(Uuid),
    /// A list or search page, named by its canonical query.
    ProductList(String),
    /// A calendar entry with its revision history.
    CalendarEvent(Uuid),
    /// A calendar list page, named by its canonical query.
    CalendarList(String),
}

//! The benches' catalog of books: book `n` (from 1) of a shelf where each title word, each
//! description word and each category is in one book of eight, so two words of different
//! slots match one book in 64. Titles end with the book's number; authors repeat every 5,000.

use chrono::NaiveDate;
use eshop_domain::product::ProductEvent;
use eshop_projections::product::ProductRecord;
use uuid::Uuid;

use crate::search::products::Indexed;

pub struct CatalogBook {
    pub title: String,
    pub author: String,
    pub published_date: NaiveDate,
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
    pub category: String,
}

const FIRST: [&str; 8] = [
    "Silent", "Crimson", "Hidden", "Last", "Northern", "Broken", "Golden", "Winter",
];
const SECOND: [&str; 8] = [
    "River", "Garden", "Empire", "Voyage", "Harbor", "Machine", "Orchard", "Signal",
];
const WHO: [&str; 8] = [
    "dragons",
    "spies",
    "sailors",
    "robots",
    "gardeners",
    "kings",
    "detectives",
    "pilots",
];
const WHAT: [&str; 8] = [
    "storms", "secrets", "maps", "engines", "letters", "islands", "clocks", "ghosts",
];
const CATEGORIES: [&str; 8] = [
    "fiction", "history", "science", "poetry", "travel", "children", "crime", "fantasy",
];

pub fn book(n: usize) -> CatalogBook {
    let first_day = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default();
    CatalogBook {
        title: format!("{} {} {n}", FIRST[n % 8], SECOND[(n / 8) % 8]),
        author: format!("Author {}", n % 5000),
        published_date: first_day + chrono::Duration::days((n % 40000) as i64),
        description: format!(
            "A story of {} and {}",
            WHO[(n / 64) % 8],
            WHAT[(n / 512) % 8]
        ),
        price_cents: 100 + ((n * 37) % 9900) as i64,
        stock: (n % 7) as i64,
        category: CATEGORIES[n % 8].to_string(),
    }
}

/// Book `n` added to the catalog: the event the relay publishes for it.
pub fn added(n: usize) -> ProductEvent {
    let book = book(n);
    ProductEvent::ProductAdded {
        title: book.title,
        author: book.author,
        published_date: book.published_date,
        description: book.description,
        price_cents: book.price_cents,
        stock: book.stock,
        category: book.category,
        category_id: None,
    }
}

/// Book `n` as the search index holds it, under `id`, not yet rated.
pub fn indexed(id: Uuid, n: usize) -> Indexed {
    let book = book(n);
    Indexed {
        record: ProductRecord {
            id,
            title: book.title,
            author: book.author,
            published_date: book.published_date,
            description: book.description,
            price_cents: book.price_cents,
            stock: book.stock,
            category: book.category,
            category_id: None,
            category_slug: None,
            removed: false,
            version: 1,
            created_at: None,
            updated_at: None,
            rating_count: 0,
            rating_average: None,
        },
        rating_sum: 0,
    }
}

/// The words the search benches search for: description words and title words, each in one
/// book of eight.
pub const SEARCH_WORDS: [&str; 8] = [
    "dragons", "spies", "sailors", "robots", "storms", "secrets", "harbor", "winter",
];

/// What the search benches type for suggestions: title prefixes of one word and of two.
pub const SUGGEST_PREFIXES: [&str; 12] = [
    "si",
    "cri",
    "hid",
    "nor",
    "bro",
    "gol",
    "win",
    "las",
    "silent ri",
    "golden or",
    "winter har",
    "broken mach",
];

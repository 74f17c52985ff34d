//! The catalog list query: filters, ordering, keyset cursors. Pure; `eshop-infra` turns it
//! into one SQL statement.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    Title,
    Author,
    PublishedDate,
    PriceCents,
    /// Full-text relevance; only with `search`.
    Relevance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordering {
    pub key: SortKey,
    pub descending: bool,
}

impl Ordering {
    /// `title`, `-published_date`, `price_cents`, `-relevance`, ... (a leading `-` is descending).
    pub fn parse(raw: &str, has_search: bool) -> Result<Self, String> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, raw),
        };
        let key = match name {
            "title" => SortKey::Title,
            "author" => SortKey::Author,
            "published_date" => SortKey::PublishedDate,
            "price_cents" => SortKey::PriceCents,
            "relevance" if has_search => SortKey::Relevance,
            "relevance" => return Err("relevance ordering needs a search".into()),
            _ => {
                return Err(
                    "must be one of title, author, published_date, price_cents, relevance, each optionally prefixed by -"
                        .into(),
                )
            }
        };
        Ok(Self { key, descending })
    }

    /// Most relevant first when searching, by title otherwise.
    pub fn default_for(has_search: bool) -> Self {
        if has_search {
            Self {
                key: SortKey::Relevance,
                descending: true,
            }
        } else {
            Self {
                key: SortKey::Title,
                descending: false,
            }
        }
    }
}

/// The sort value of the last row of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    Integer(i64),
    Rank(f32),
    Text(String),
}

/// Where the next page starts: after the row with this sort value and id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub ordering: Ordering,
    pub value: SortValue,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// `None` unless it is a cursor this code could have made: its value of the type its
    /// ordering sorts by (a text without U+0000, a date, a whole number, a finite rank).
    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let cursor: Self = serde_json::from_slice(&bytes).ok()?;
        cursor.value_fits().then_some(cursor)
    }

    fn value_fits(&self) -> bool {
        match (&self.value, self.ordering.key) {
            (SortValue::Text(text), SortKey::Title | SortKey::Author) => !text.contains('\0'),
            (SortValue::Text(text), SortKey::PublishedDate) => text.parse::<NaiveDate>().is_ok(),
            (SortValue::Integer(_), SortKey::PriceCents) => true,
            (SortValue::Rank(rank), SortKey::Relevance) => rank.is_finite(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProductFilter {
    pub title: Option<String>,
    pub author: Option<String>,
    pub published_date: Option<NaiveDate>,
    pub published_after: Option<NaiveDate>,
    pub published_before: Option<NaiveDate>,
    pub category: Option<String>,
    pub min_price_cents: Option<i64>,
    pub max_price_cents: Option<i64>,
    pub in_stock: Option<bool>,
    pub search: Option<String>,
    /// `category_id=`: a category and its descendants, resolved from the tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_categories: Option<CategoryScope>,
}

/// A category with every descendant (`ids`), and the slugs of those at the top level (which
/// also hold the products stored before the tree, filed by their free-text category).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CategoryScope {
    pub ids: Vec<Uuid>,
    pub top_level_slugs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductQuery {
    pub filter: ProductFilter,
    pub ordering: Ordering,
    pub limit: u32,
    pub after: Option<Cursor>,
    pub with_total: bool,
}

impl ProductQuery {
    /// A canonical text for the query: equal queries give equal keys (for caching).
    pub fn cache_key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "PageWithTotalOf{T}")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_parses_direction_and_key() {
        let ordering = Ordering::parse("-published_date", false).expect("valid");
        assert_eq!(
            (ordering.key, ordering.descending),
            (SortKey::PublishedDate, true)
        );
        assert!(Ordering::parse("relevance", false).is_err());
        assert!(Ordering::parse("password", false).is_err());
        assert_eq!(Ordering::default_for(true).key, SortKey::Relevance);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            ordering: Ordering::default_for(true),
            value: SortValue::Rank(0.0607927),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("not a cursor"), None);
        let odd = |ordering: Ordering, value: SortValue| {
            Cursor::decode(
                &Cursor {
                    ordering,
                    value,
                    id: Uuid::now_v7(),
                }
                .encode(),
            )
        };
        let by = |key| Ordering {
            key,
            descending: false,
        };
        assert_eq!(
            odd(by(SortKey::PriceCents), SortValue::Text("1".into())),
            None
        );
        assert_eq!(odd(by(SortKey::Title), SortValue::Integer(5)), None);
        assert_eq!(odd(by(SortKey::Title), SortValue::Text("a\0".into())), None);
        assert_eq!(
            odd(by(SortKey::PublishedDate), SortValue::Text("soon".into())),
            None
        );
        assert!(odd(
            by(SortKey::PublishedDate),
            SortValue::Text("1965-08-01".into())
        )
        .is_some());
    }
}

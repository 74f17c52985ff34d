//! The `products` read model: every field, the stock, and the version it reflects.

use chrono::NaiveDate;
use eshop_domain::product::ProductEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{step, ProjectionError, RelayedEvent, Step};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    pub id: Uuid,
    pub title: String,
    pub author: String,
    pub published_date: NaiveDate,
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
    pub category: String,
    /// The category tree's node the product is filed under; none for products stored before
    /// the tree existed, which `category_slug` files under a top-level category.
    #[serde(default)]
    pub category_id: Option<Uuid>,
    /// The slug the free-text `category` maps to: the top-level category a product without
    /// `category_id` appears under (the projection rule that spares stored events a rewrite).
    #[serde(default)]
    pub category_slug: Option<String>,
    pub removed: bool,
    pub version: u64,
    /// When it was added and last changed (absent in rows written before they were kept).
    #[serde(default)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// From the reviews; filled by the catalog queries, not by the products projection.
    #[serde(default)]
    pub rating_count: i64,
    #[serde(default)]
    pub rating_average: Option<f64>,
}

impl ProductRecord {
    pub fn display_name(&self) -> String {
        format!("{} by {}", self.title, self.author)
    }
}

/// The top-level category slug a free-text category names (`Science Fiction` →
/// `science-fiction`).
pub fn category_slug(category: &str) -> Option<String> {
    eshop_domain::category::Slug::from_name(category).map(|slug| slug.as_str().to_string())
}

/// The record after `event`, or `None` when the event was already applied.
pub fn apply(
    current: Option<&ProductRecord>,
    event: &RelayedEvent,
) -> Result<Option<ProductRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let decoded: ProductEvent = event.decode()?;
    let mut row = match (current, decoded) {
        (
            None,
            ProductEvent::ProductAdded {
                title,
                author,
                published_date,
                description,
                price_cents,
                stock,
                category,
                category_id,
            },
        ) => {
            let id = event
                .aggregate_id
                .parse()
                .map_err(|error| event.unreadable(error))?;
            ProductRecord {
                id,
                title,
                author,
                published_date,
                description,
                price_cents,
                stock,
                category_slug: category_slug(&category),
                category,
                category_id,
                removed: false,
                version: 0,
                created_at: Some(event.recorded_at),
                updated_at: None,
                rating_count: 0,
                rating_average: None,
            }
        }
        (Some(current), decoded) => {
            let mut row = current.clone();
            match decoded {
                ProductEvent::ProductAdded { .. } => {
                    return Err(event.unreadable("ProductAdded on an existing product"))
                }
                ProductEvent::ProductDetailsUpdated(details) => {
                    if let Some(title) = details.title {
                        row.title = title;
                    }
                    if let Some(author) = details.author {
                        row.author = author;
                    }
                    if let Some(date) = details.published_date {
                        row.published_date = date;
                    }
                    if let Some(description) = details.description {
                        row.description = description;
                    }
                    if let Some(category) = details.category {
                        row.category_slug = category_slug(&category);
                        row.category = category;
                    }
                    if let Some(category_id) = details.category_id {
                        row.category_id = Some(category_id);
                    }
                }
                ProductEvent::ProductPriceChanged { price_cents, .. } => {
                    row.price_cents = price_cents
                }
                ProductEvent::ProductRestocked { stock, .. }
                | ProductEvent::StockReserved { stock, .. }
                | ProductEvent::StockReleased { stock, .. } => row.stock = stock,
                // Reserved units already left the stock; committing changes only the version.
                ProductEvent::ReservationCommitted { .. } => {}
                ProductEvent::ProductRemoved => row.removed = true,
            }
            row
        }
        (None, _) => return Err(event.unreadable("the first event is not ProductAdded")),
    };
    row.updated_at = Some(event.recorded_at);
    row.version = event.sequence;
    Ok(Some(row))
}

impl crate::ReadModel for ProductRecord {
    const NAME: &'static str = "products";
    const AGGREGATE_TYPE: &'static str = "product";

    fn id(&self) -> Uuid {
        self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply(current, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn relayed(sequence: u64, event: ProductEvent) -> RelayedEvent {
        RelayedEvent {
            position: 1,
            aggregate_type: "product".into(),
            aggregate_id: "0192f0a0-0000-7000-8000-000000000001".into(),
            sequence,
            event_type: "x".into(),
            event_version: "1".into(),
            recorded_at: Utc::now(),
            metadata: json!({}),
            payload: serde_json::to_value(event).expect("serializes"),
        }
    }

    fn added() -> ProductEvent {
        ProductEvent::ProductAdded {
            title: "Dune".into(),
            author: "Frank Herbert".into(),
            published_date: "1965-08-01".parse().expect("date"),
            description: "".into(),
            price_cents: 1999,
            stock: 10,
            category: "sf".into(),
            category_id: None,
        }
    }

    #[test]
    fn a_product_without_a_category_id_is_filed_by_its_free_text_category() {
        let mut old = relayed(1, added());
        old.payload = json!({"type": "ProductAdded", "data": {"title": "Dune",
            "author": "Frank Herbert", "published_date": "1965-08-01", "description": "",
            "price_cents": 1999, "stock": 10, "category": "Science Fiction"}});
        let row = apply(None, &old).expect("applies").expect("changed");
        assert_eq!(row.category_id, None);
        assert_eq!(row.category_slug.as_deref(), Some("science-fiction"));
        let shelf = Uuid::from_u128(9);
        let filed = ProductEvent::ProductDetailsUpdated(eshop_domain::product::DetailsChanged {
            category_id: Some(shelf),
            ..Default::default()
        });
        let row = apply(Some(&row), &relayed(2, filed))
            .expect("applies")
            .expect("changed");
        assert_eq!(row.category_id, Some(shelf));
    }

    #[test]
    fn events_build_the_row_and_its_version() {
        let row = apply(None, &relayed(1, added()))
            .expect("applies")
            .expect("changed");
        assert_eq!((row.version, row.stock), (1, 10));
        assert_eq!(row.display_name(), "Dune by Frank Herbert");
        let restocked = ProductEvent::ProductRestocked {
            quantity: 5,
            stock: 15,
        };
        let row = apply(Some(&row), &relayed(2, restocked))
            .expect("applies")
            .expect("changed");
        assert_eq!((row.version, row.stock), (2, 15));
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let row = apply(None, &relayed(1, added()))
            .expect("applies")
            .expect("changed");
        assert_eq!(
            apply(Some(&row), &relayed(1, added())).expect("skips"),
            None
        );
    }

    #[test]
    fn a_gap_is_an_error_not_a_silent_skip() {
        let row = apply(None, &relayed(1, added()))
            .expect("applies")
            .expect("changed");
        let error = apply(Some(&row), &relayed(3, ProductEvent::ProductRemoved)).expect_err("gap");
        assert!(matches!(
            error,
            ProjectionError::Gap {
                expected: 2,
                got: 3,
                ..
            }
        ));
    }

    #[test]
    fn an_unreadable_payload_is_an_error() {
        let mut event = relayed(1, added());
        event.payload = json!({"type": "Nonsense"});
        assert!(matches!(
            apply(None, &event),
            Err(ProjectionError::Unreadable { .. })
        ));
    }
}

//! Read models of what customers keep around: carts, wishlists, reviews.

use chrono::{DateTime, Utc};
use eshop_domain::cart::CartEvent;
use eshop_domain::review::ReviewEvent;
use eshop_domain::wishlist::WishlistEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{step, ProjectionError, RelayedEvent, Step};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CartItem {
    pub product_id: Uuid,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartRecord {
    pub user_id: Uuid,
    pub items: Vec<CartItem>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WishlistRecord {
    pub user_id: Uuid,
    pub items: Vec<Uuid>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub product_id: Uuid,
    pub rating: u8,
    pub comment: String,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

fn id_of(event: &RelayedEvent) -> Result<Uuid, ProjectionError> {
    event
        .aggregate_id
        .parse()
        .map_err(|error| event.unreadable(error))
}

pub fn apply_cart(
    current: Option<&CartRecord>,
    event: &RelayedEvent,
) -> Result<Option<CartRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let mut row = match current {
        Some(row) => row.clone(),
        None => CartRecord {
            user_id: id_of(event)?,
            items: Vec::new(),
            version: 0,
        },
    };
    match event.decode::<CartEvent>()? {
        CartEvent::CartItemSet {
            product_id,
            quantity,
        } => match row
            .items
            .iter_mut()
            .find(|item| item.product_id == product_id)
        {
            Some(item) => item.quantity = quantity,
            None => row.items.push(CartItem {
                product_id,
                quantity,
            }),
        },
        CartEvent::CartItemRemoved { product_id } => {
            row.items.retain(|item| item.product_id != product_id);
        }
        CartEvent::CartCheckedOut { .. } => row.items.clear(),
    }
    row.version = event.sequence;
    Ok(Some(row))
}

pub fn apply_wishlist(
    current: Option<&WishlistRecord>,
    event: &RelayedEvent,
) -> Result<Option<WishlistRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let mut row = match current {
        Some(row) => row.clone(),
        None => WishlistRecord {
            user_id: id_of(event)?,
            items: Vec::new(),
            version: 0,
        },
    };
    match event.decode::<WishlistEvent>()? {
        WishlistEvent::WishlistItemAdded { product_id } => {
            if !row.items.contains(&product_id) {
                row.items.push(product_id);
            }
        }
        WishlistEvent::WishlistItemRemoved { product_id } => {
            row.items.retain(|item| *item != product_id);
        }
    }
    row.version = event.sequence;
    Ok(Some(row))
}

pub fn apply_review(
    current: Option<&ReviewRecord>,
    event: &RelayedEvent,
) -> Result<Option<ReviewRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let ReviewEvent::ReviewWritten {
        user_id,
        product_id,
        rating,
        comment,
        ..
    } = event.decode::<ReviewEvent>()?;
    Ok(Some(ReviewRecord {
        id: id_of(event)?,
        user_id,
        product_id,
        rating,
        comment,
        updated_at: event.recorded_at,
        version: event.sequence,
    }))
}

impl crate::ReadModel for CartRecord {
    const NAME: &'static str = "carts";
    const AGGREGATE_TYPE: &'static str = "cart";

    fn id(&self) -> Uuid {
        self.user_id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply_cart(current, event)
    }
}

impl crate::ReadModel for WishlistRecord {
    const NAME: &'static str = "wishlists";
    const AGGREGATE_TYPE: &'static str = "wishlist";

    fn id(&self) -> Uuid {
        self.user_id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply_wishlist(current, event)
    }
}

impl crate::ReadModel for ReviewRecord {
    const NAME: &'static str = "reviews";
    const AGGREGATE_TYPE: &'static str = "review";

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
        apply_review(current, event)
    }
}

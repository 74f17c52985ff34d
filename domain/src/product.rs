//! The `product` aggregate: a catalog entry (a book first) with its price and stock.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::DeclaresClaims;
use crate::values::{Price, Quantity, Text};

#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    Add(NewProduct),
    /// Changes whichever fields are `Some`; fields equal to the current value produce no event.
    Update(ProductChanges),
    Restock(Quantity),
    Remove,
    /// Takes units out of stock for an order. Once per order: a repeat changes nothing.
    Reserve {
        order_id: Uuid,
        quantity: Quantity,
    },
    /// Puts an order's reserved units back (the order failed or was cancelled).
    Release {
        order_id: Uuid,
    },
    /// The order was confirmed: its reserved units are sold.
    CommitReservation {
        order_id: Uuid,
    },
}

/// Where one order's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationStatus {
    Reserved,
    Committed,
    Released,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub quantity: i64,
    pub status: ReservationStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewProduct {
    pub title: Text,
    pub author: Text,
    pub published_date: NaiveDate,
    pub description: Text,
    pub price: Price,
    pub stock: Quantity,
    pub category: Text,
    /// The node of the category tree the product is filed under (see `category`).
    pub category_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductChanges {
    pub title: Option<Text>,
    pub author: Option<Text>,
    pub published_date: Option<NaiveDate>,
    pub description: Option<Text>,
    pub category: Option<Text>,
    pub category_id: Option<Uuid>,
    pub price: Option<Price>,
}

/// The fields a details update changed; absent fields kept their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DetailsChanged {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The category tree's node (absent from events stored before the tree existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<Uuid>,
}

impl DetailsChanged {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum ProductEvent {
    ProductAdded {
        title: String,
        author: String,
        published_date: NaiveDate,
        description: String,
        price_cents: i64,
        stock: i64,
        category: String,
        /// The category tree's node; absent from events stored before the tree existed, whose
        /// free-text `category` names a top-level category by slug.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category_id: Option<Uuid>,
    },
    ProductDetailsUpdated(DetailsChanged),
    ProductPriceChanged {
        old_price_cents: i64,
        price_cents: i64,
    },
    ProductRestocked {
        quantity: i64,
        stock: i64,
    },
    ProductRemoved,
    StockReserved {
        order_id: Uuid,
        quantity: i64,
        stock: i64,
    },
    StockReleased {
        order_id: Uuid,
        quantity: i64,
        stock: i64,
    },
    ReservationCommitted {
        order_id: Uuid,
        quantity: i64,
    },
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProductAdded { .. } => "ProductAdded",
            Self::ProductDetailsUpdated(_) => "ProductDetailsUpdated",
            Self::ProductPriceChanged { .. } => "ProductPriceChanged",
            Self::ProductRestocked { .. } => "ProductRestocked",
            Self::ProductRemoved => "ProductRemoved",
            Self::StockReserved { .. } => "StockReserved",
            Self::StockReleased { .. } => "StockReleased",
            Self::ReservationCommitted { .. } => "ReservationCommitted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for ProductEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("the product does not exist")]
    NotFound,
    #[error("a product with this id already exists")]
    AlreadyExists,
    #[error("the stock would exceed its limit")]
    StockLimit,
    #[error("only {available} in stock")]
    InsufficientStock { available: i64 },
    #[error("this order holds no reservation to commit")]
    NoReservation,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub added: bool,
    pub removed: bool,
    pub title: String,
    pub author: String,
    pub published_date: Option<NaiveDate>,
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
    pub category: String,
    #[serde(default)]
    pub category_id: Option<Uuid>,
    /// Every order that ever reserved this product, so that each reserves at most once.
    #[serde(default)]
    pub reservations: BTreeMap<Uuid, Reservation>,
}

impl Product {
    /// Added and not removed: what clients may see and change.
    pub fn is_listed(&self) -> bool {
        self.added && !self.removed
    }

    fn require_listed(&self) -> Result<(), ProductError> {
        if self.is_listed() {
            Ok(())
        } else {
            Err(ProductError::NotFound)
        }
    }

    fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        match command {
            ProductCommand::Add(new) => {
                if self.added {
                    return Err(ProductError::AlreadyExists);
                }
                Ok(vec![ProductEvent::ProductAdded {
                    title: new.title.into_inner(),
                    author: new.author.into_inner(),
                    published_date: new.published_date,
                    description: new.description.into_inner(),
                    price_cents: new.price.cents(),
                    stock: new.stock.units(),
                    category: new.category.into_inner(),
                    category_id: new.category_id,
                }])
            }
            ProductCommand::Update(changes) => {
                self.require_listed()?;
                Ok(self.changes_to_events(changes))
            }
            ProductCommand::Restock(quantity) => {
                self.require_listed()?;
                let stock = self
                    .stock
                    .checked_add(quantity.units())
                    .filter(|stock| Quantity::stock(*stock).is_ok())
                    .ok_or(ProductError::StockLimit)?;
                Ok(vec![ProductEvent::ProductRestocked {
                    quantity: quantity.units(),
                    stock,
                }])
            }
            ProductCommand::Remove => {
                self.require_listed()?;
                Ok(vec![ProductEvent::ProductRemoved])
            }
            ProductCommand::Reserve { order_id, quantity } => {
                if self.reservations.contains_key(&order_id) {
                    return Ok(Vec::new());
                }
                self.require_listed()?;
                if quantity.units() > self.stock {
                    return Err(ProductError::InsufficientStock {
                        available: self.stock,
                    });
                }
                Ok(vec![ProductEvent::StockReserved {
                    order_id,
                    quantity: quantity.units(),
                    stock: self.stock - quantity.units(),
                }])
            }
            ProductCommand::Release { order_id } => Ok(match self.reservations.get(&order_id) {
                Some(reservation) if reservation.status == ReservationStatus::Reserved => {
                    vec![ProductEvent::StockReleased {
                        order_id,
                        quantity: reservation.quantity,
                        stock: self.stock.saturating_add(reservation.quantity),
                    }]
                }
                _ => Vec::new(),
            }),
            ProductCommand::CommitReservation { order_id } => {
                match self.reservations.get(&order_id) {
                    Some(reservation) if reservation.status == ReservationStatus::Reserved => {
                        Ok(vec![ProductEvent::ReservationCommitted {
                            order_id,
                            quantity: reservation.quantity,
                        }])
                    }
                    Some(reservation) if reservation.status == ReservationStatus::Committed => {
                        Ok(Vec::new())
                    }
                    _ => Err(ProductError::NoReservation),
                }
            }
        }
    }

    fn changes_to_events(&self, changes: ProductChanges) -> Vec<ProductEvent> {
        fn changed(new: Option<Text>, current: &str) -> Option<String> {
            new.map(Text::into_inner).filter(|value| value != current)
        }
        let details = DetailsChanged {
            title: changed(changes.title, &self.title),
            author: changed(changes.author, &self.author),
            published_date: changes
                .published_date
                .filter(|date| Some(*date) != self.published_date),
            description: changed(changes.description, &self.description),
            category: changed(changes.category, &self.category),
            category_id: changes
                .category_id
                .filter(|id| Some(*id) != self.category_id),
        };
        let mut events = Vec::new();
        if !details.is_empty() {
            events.push(ProductEvent::ProductDetailsUpdated(details));
        }
        if let Some(price) = changes.price.filter(|p| p.cents() != self.price_cents) {
            events.push(ProductEvent::ProductPriceChanged {
                old_price_cents: self.price_cents,
                price_cents: price.cents(),
            });
        }
        events
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        crate::emit(self, events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ProductEvent::ProductAdded {
                title,
                author,
                published_date,
                description,
                price_cents,
                stock,
                category,
                category_id,
            } => {
                self.added = true;
                self.title = title;
                self.author = author;
                self.published_date = Some(published_date);
                self.description = description;
                self.price_cents = price_cents;
                self.stock = stock;
                self.category = category;
                self.category_id = category_id;
            }
            ProductEvent::ProductDetailsUpdated(details) => {
                if let Some(title) = details.title {
                    self.title = title;
                }
                if let Some(author) = details.author {
                    self.author = author;
                }
                if let Some(date) = details.published_date {
                    self.published_date = Some(date);
                }
                if let Some(description) = details.description {
                    self.description = description;
                }
                if let Some(category) = details.category {
                    self.category = category;
                }
                if let Some(category_id) = details.category_id {
                    self.category_id = Some(category_id);
                }
            }
            ProductEvent::ProductPriceChanged { price_cents, .. } => self.price_cents = price_cents,
            ProductEvent::ProductRestocked { stock, .. } => self.stock = stock,
            ProductEvent::ProductRemoved => self.removed = true,
            ProductEvent::StockReserved {
                order_id,
                quantity,
                stock,
            } => {
                self.stock = stock;
                self.reservations.insert(
                    order_id,
                    Reservation {
                        quantity,
                        status: ReservationStatus::Reserved,
                    },
                );
            }
            ProductEvent::StockReleased {
                order_id, stock, ..
            } => {
                self.stock = stock;
                if let Some(reservation) = self.reservations.get_mut(&order_id) {
                    reservation.status = ReservationStatus::Released;
                }
            }
            ProductEvent::ReservationCommitted { order_id, .. } => {
                if let Some(reservation) = self.reservations.get_mut(&order_id) {
                    reservation.status = ReservationStatus::Committed;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

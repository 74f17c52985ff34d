//! Pricing, done once for every way an order is placed: each line priced from the product
//! itself (the event store, never a read model), at today's price.

use uuid::Uuid;

use eshop_domain::order::OrderLine;
use eshop_domain::product::Product;

use super::process::Steps;
use crate::store::{EventStore, StoreError};

/// A line as the buyer asks for it: which product, how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WantedLine {
    pub product_id: Uuid,
    pub quantity: i64,
}

/// Some products asked for are not sold: the indexes of their lines in the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the products of lines {0:?} are not sold")]
pub struct NotSold(pub Vec<usize>);

impl<S: EventStore> Steps<'_, S> {
    /// The lines priced from their products, or which of them cannot be bought.
    pub(super) async fn price(
        &mut self,
        wanted: &[WantedLine],
    ) -> Result<Result<Vec<OrderLine>, NotSold>, StoreError> {
        let mut lines = Vec::with_capacity(wanted.len());
        let mut not_sold = Vec::new();
        for (index, line) in wanted.iter().enumerate() {
            let (listed, unit_price_cents) = self
                .read::<Product, _>(&line.product_id.to_string(), |product, _| {
                    (product.is_listed(), product.price_cents)
                })
                .await?;
            if listed {
                lines.push(OrderLine {
                    product_id: line.product_id,
                    quantity: line.quantity,
                    unit_price_cents,
                });
            } else {
                not_sold.push(index);
            }
        }
        Ok(if not_sold.is_empty() {
            Ok(lines)
        } else {
            Err(NotSold(not_sold))
        })
    }
}

//! The `cart` aggregate, one per user (its id is the user's): what they mean to buy.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::DeclaresClaims;
use crate::order::{MAX_LINES, MAX_QUANTITY_PER_LINE};

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq)]
pub enum CartCommand {
    /// Sets a product's quantity (0 removes it).
    SetItem {
        product_id: Uuid,
        quantity: i64,
    },
    RemoveItem {
        product_id: Uuid,
    },
    /// The cart became this order: it is emptied.
    CheckOut {
        order_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum CartEvent {
    CartItemSet { product_id: Uuid, quantity: i64 },
    CartItemRemoved { product_id: Uuid },
    CartCheckedOut { order_id: Uuid },
}

impl DomainEvent for CartEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CartItemSet { .. } => "CartItemSet",
            Self::CartItemRemoved { .. } => "CartItemRemoved",
            Self::CartCheckedOut { .. } => "CartCheckedOut",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for CartEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("a quantity must be 0 to {MAX_QUANTITY_PER_LINE}")]
    InvalidQuantity,
    #[error("a cart holds at most {MAX_LINES} products")]
    TooManyItems,
    #[error("the cart is empty")]
    Empty,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub items: BTreeMap<Uuid, i64>,
}

impl Cart {
    fn decide(&self, command: CartCommand) -> Result<Vec<CartEvent>, CartError> {
        Ok(match command {
            CartCommand::SetItem {
                product_id,
                quantity: 0,
            }
            | CartCommand::RemoveItem { product_id } => {
                if self.items.contains_key(&product_id) {
                    vec![CartEvent::CartItemRemoved { product_id }]
                } else {
                    Vec::new()
                }
            }
            CartCommand::SetItem {
                product_id,
                quantity,
            } => {
                if !(1..=MAX_QUANTITY_PER_LINE).contains(&quantity) {
                    return Err(CartError::InvalidQuantity);
                }
                if !self.items.contains_key(&product_id) && self.items.len() >= MAX_LINES {
                    return Err(CartError::TooManyItems);
                }
                if self.items.get(&product_id) == Some(&quantity) {
                    Vec::new()
                } else {
                    vec![CartEvent::CartItemSet {
                        product_id,
                        quantity,
                    }]
                }
            }
            CartCommand::CheckOut { order_id } => {
                if self.items.is_empty() {
                    return Err(CartError::Empty);
                }
                vec![CartEvent::CartCheckedOut { order_id }]
            }
        })
    }
}

impl Aggregate for Cart {
    const TYPE: &'static str = "cart";
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;
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
            CartEvent::CartItemSet {
                product_id,
                quantity,
            } => {
                self.items.insert(product_id, quantity);
            }
            CartEvent::CartItemRemoved { product_id } => {
                self.items.remove(&product_id);
            }
            CartEvent::CartCheckedOut { .. } => self.items.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn product(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn set(n: u128, quantity: i64) -> CartEvent {
        CartEvent::CartItemSet {
            product_id: product(n),
            quantity,
        }
    }

    #[test]
    fn items_are_set_changed_and_removed() {
        TestFramework::<Cart>::with(())
            .given_no_previous_events()
            .when(CartCommand::SetItem {
                product_id: product(1),
                quantity: 2,
            })
            .then_expect_events(vec![set(1, 2)]);
        TestFramework::<Cart>::with(())
            .given(vec![set(1, 2)])
            .when(CartCommand::SetItem {
                product_id: product(1),
                quantity: 2,
            })
            .then_expect_events(vec![]);
        TestFramework::<Cart>::with(())
            .given(vec![set(1, 2)])
            .when(CartCommand::SetItem {
                product_id: product(1),
                quantity: 0,
            })
            .then_expect_events(vec![CartEvent::CartItemRemoved {
                product_id: product(1),
            }]);
        TestFramework::<Cart>::with(())
            .given_no_previous_events()
            .when(CartCommand::RemoveItem {
                product_id: product(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn quantities_are_bounded() {
        TestFramework::<Cart>::with(())
            .given_no_previous_events()
            .when(CartCommand::SetItem {
                product_id: product(1),
                quantity: -1,
            })
            .then_expect_error(CartError::InvalidQuantity);
    }

    #[test]
    fn checking_out_empties_the_cart_and_needs_items() {
        let order_id = Uuid::from_u128(99);
        TestFramework::<Cart>::with(())
            .given(vec![set(1, 2), set(2, 1)])
            .when(CartCommand::CheckOut { order_id })
            .then_expect_events(vec![CartEvent::CartCheckedOut { order_id }]);
        TestFramework::<Cart>::with(())
            .given_no_previous_events()
            .when(CartCommand::CheckOut { order_id })
            .then_expect_error(CartError::Empty);
    }
}

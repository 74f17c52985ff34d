//! The `wishlist` aggregate, one per user (its id is the user's).

use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::DeclaresClaims;

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";
pub const MAX_ITEMS: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub enum WishlistCommand {
    Add { product_id: Uuid },
    Remove { product_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum WishlistEvent {
    WishlistItemAdded { product_id: Uuid },
    WishlistItemRemoved { product_id: Uuid },
}

impl DomainEvent for WishlistEvent {
    fn event_type(&self) -> String {
        match self {
            Self::WishlistItemAdded { .. } => "WishlistItemAdded",
            Self::WishlistItemRemoved { .. } => "WishlistItemRemoved",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for WishlistEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WishlistError {
    #[error("a wishlist holds at most {MAX_ITEMS} products")]
    TooManyItems,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wishlist {
    pub items: BTreeSet<Uuid>,
}

impl Wishlist {
    fn decide(&self, command: WishlistCommand) -> Result<Vec<WishlistEvent>, WishlistError> {
        Ok(match command {
            WishlistCommand::Add { product_id } if self.items.contains(&product_id) => Vec::new(),
            WishlistCommand::Add { .. } if self.items.len() >= MAX_ITEMS => {
                return Err(WishlistError::TooManyItems)
            }
            WishlistCommand::Add { product_id } => {
                vec![WishlistEvent::WishlistItemAdded { product_id }]
            }
            WishlistCommand::Remove { product_id } if self.items.contains(&product_id) => {
                vec![WishlistEvent::WishlistItemRemoved { product_id }]
            }
            WishlistCommand::Remove { .. } => Vec::new(),
        })
    }
}

impl Aggregate for Wishlist {
    const TYPE: &'static str = "wishlist";
    type Command = WishlistCommand;
    type Event = WishlistEvent;
    type Error = WishlistError;
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
            WishlistEvent::WishlistItemAdded { product_id } => {
                self.items.insert(product_id);
            }
            WishlistEvent::WishlistItemRemoved { product_id } => {
                self.items.remove(&product_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    #[test]
    fn adding_and_removing_is_idempotent() {
        let product_id = Uuid::from_u128(1);
        let added = WishlistEvent::WishlistItemAdded { product_id };
        TestFramework::<Wishlist>::with(())
            .given_no_previous_events()
            .when(WishlistCommand::Add { product_id })
            .then_expect_events(vec![added.clone()]);
        TestFramework::<Wishlist>::with(())
            .given(vec![added.clone()])
            .when(WishlistCommand::Add { product_id })
            .then_expect_events(vec![]);
        TestFramework::<Wishlist>::with(())
            .given(vec![added])
            .when(WishlistCommand::Remove { product_id })
            .then_expect_events(vec![WishlistEvent::WishlistItemRemoved { product_id }]);
        TestFramework::<Wishlist>::with(())
            .given_no_previous_events()
            .when(WishlistCommand::Remove { product_id })
            .then_expect_events(vec![]);
    }
}

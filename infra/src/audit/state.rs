//! An aggregate's state as of a moment: the domain rebuilds it from its events up to a version
//! or a time, as the command side would have loaded it then. Personal fields are opened with
//! their key; an erased user's stay absent (`null`), whatever the moment. Secrets the store
//! keeps (the password hash) are left out.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use eshop_domain::calendar::CalendarEvent;
use eshop_domain::cart::Cart;
use eshop_domain::category::Category;
use eshop_domain::order::Order;
use eshop_domain::payment::Payment;
use eshop_domain::product::Product;
use eshop_domain::review::Review;
use eshop_domain::upcasting::Upcasters;
use eshop_domain::user::User;
use eshop_domain::wishlist::Wishlist;
use eshop_domain::{personal_fields, unpublished_fields};

use crate::personal_data::PersonalDataKeys;

/// Up to which event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The aggregate at this version (or its last, if it has fewer events).
    Version(u64),
    /// After every event recorded at or before this time.
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AggregateState {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
    /// When the last event included was recorded.
    pub recorded_at: DateTime<Utc>,
    pub state: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{aggregate_type} {aggregate_id} #{sequence} does not load: {reason}")]
    Corrupt {
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
        reason: String,
    },
}

/// The state of the aggregate `aggregate_type`/`aggregate_id` as of `as_of`; `None` when it had
/// no event by then, or the type is unknown.
pub async fn state_as_of(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    as_of: AsOf,
) -> Result<Option<AggregateState>, StateError> {
    let rebuild = Rebuild {
        pool,
        aggregate_id,
        as_of,
    };
    match aggregate_type {
        User::TYPE => rebuild.run::<User>().await,
        Product::TYPE => rebuild.run::<Product>().await,
        Order::TYPE => rebuild.run::<Order>().await,
        Payment::TYPE => rebuild.run::<Payment>().await,
        Cart::TYPE => rebuild.run::<Cart>().await,
        Wishlist::TYPE => rebuild.run::<Wishlist>().await,
        Review::TYPE => rebuild.run::<Review>().await,
        CalendarEvent::TYPE => rebuild.run::<CalendarEvent>().await,
        Category::TYPE => rebuild.run::<Category>().await,
        _ => Ok(None),
    }
}

struct Rebuild<'a> {
    pool: &'a PgPool,
    aggregate_id: &'a str,
    as_of: AsOf,
}

type Row = (i64, String, String, Value, DateTime<Utc>);

impl Rebuild<'_> {
    async fn rows(&self, aggregate_type: &str) -> Result<Vec<Row>, sqlx::Error> {
        // The events up to the last one included: a prefix of the stream, so a time bound
        // never leaves a hole even if recording times were not in sequence order.
        match self.as_of {
            AsOf::Version(version) => {
                sqlx::query_as(
                    "SELECT sequence, event_type, event_version, payload, recorded_at FROM events
                      WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3
                      ORDER BY sequence",
                )
                .bind(aggregate_type)
                .bind(self.aggregate_id)
                .bind(i64::try_from(version).unwrap_or(i64::MAX))
                .fetch_all(self.pool)
                .await
            }
            AsOf::Time(time) => {
                sqlx::query_as(
                    "SELECT sequence, event_type, event_version, payload, recorded_at FROM events
                      WHERE aggregate_type = $1 AND aggregate_id = $2
                        AND sequence <= (SELECT max(sequence) FROM events
                                          WHERE aggregate_type = $1 AND aggregate_id = $2
                                            AND recorded_at <= $3)
                      ORDER BY sequence",
                )
                .bind(aggregate_type)
                .bind(self.aggregate_id)
                .bind(time)
                .fetch_all(self.pool)
                .await
            }
        }
    }

    async fn run<A: Aggregate>(&self) -> Result<Option<AggregateState>, StateError> {
        let mut rows = self.rows(A::TYPE).await?;
        let Some(&(last_sequence, _, _, _, recorded_at)) = rows.last() else {
            return Ok(None);
        };
        let keys = PersonalDataKeys::new(self.pool.clone());
        keys.unseal_all(
            rows.iter_mut()
                .map(|row| (A::TYPE, self.aggregate_id, &mut row.3)),
        )
        .await?;
        let upcasters = Upcasters::shipped();
        let mut aggregate = A::default();
        for (sequence, event_type, event_version, payload, _) in rows {
            let (_, payload) = upcasters.upcast(&event_type, &event_version, payload);
            let event: A::Event =
                serde_json::from_value(payload).map_err(|error| StateError::Corrupt {
                    aggregate_type: A::TYPE.to_string(),
                    aggregate_id: self.aggregate_id.to_string(),
                    sequence,
                    reason: error.to_string(),
                })?;
            aggregate.apply(event);
        }
        let mut state = serde_json::to_value(&aggregate).map_err(|error| StateError::Corrupt {
            aggregate_type: A::TYPE.to_string(),
            aggregate_id: self.aggregate_id.to_string(),
            sequence: last_sequence,
            reason: error.to_string(),
        })?;
        if let Some(fields) = state.as_object_mut() {
            for field in unpublished_fields(A::TYPE) {
                fields.remove(*field);
            }
            let personal = personal_fields(A::TYPE);
            if !personal.is_empty() {
                let erased = keys
                    .keys(&[self.aggregate_id.to_string()])
                    .await?
                    .is_empty();
                if erased {
                    for field in personal {
                        fields.insert((*field).to_string(), Value::Null);
                    }
                }
            }
        }
        Ok(Some(AggregateState {
            aggregate_type: A::TYPE.to_string(),
            aggregate_id: self.aggregate_id.to_string(),
            version: u64::try_from(last_sequence).unwrap_or_default(),
            recorded_at,
            state,
        }))
    }
}

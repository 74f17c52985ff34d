//! Read models in Postgres: the projection side (applying relayed events) and the query side.

pub mod documents;
pub mod orders;
pub mod payments;
pub mod products;
pub mod users;

use std::collections::HashMap;
use std::future::Future;

use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use eshop_projections::{ProjectionError, RelayedEvent};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// A read model fed by the events of one aggregate type.
pub trait ReadModel: Send + Sync + 'static {
    /// Names the projection (and its durable consumer): letters, digits and `_`.
    const NAME: &'static str;
    const AGGREGATE_TYPE: &'static str;

    /// Applies `events` (in stream order) inside the caller's transaction; returns the ids of
    /// the rows that changed. Redelivered events change nothing.
    fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[RelayedEvent],
    ) -> impl Future<Output = Result<Vec<Uuid>, ApplyError>> + Send;

    /// Runs after the transaction committed (cache invalidation).
    fn after_commit(&self, changed: &[Uuid]) -> impl Future<Output = ()> + Send;
}

/// The distinct aggregate ids of `events`, as UUIDs.
fn aggregate_ids(events: &[RelayedEvent]) -> Result<Vec<Uuid>, ProjectionError> {
    let mut ids = Vec::new();
    for event in events {
        let id: Uuid = event
            .aggregate_id
            .parse()
            .map_err(|error| event.unreadable(error))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Applies `events` in order to `records` (keyed by aggregate id) with `apply`, the read
/// model's pure event function; returns the ids of the records that changed.
fn evolve<R>(
    records: &mut HashMap<Uuid, R>,
    events: &[RelayedEvent],
    apply: impl Fn(Option<&R>, &RelayedEvent) -> Result<Option<R>, ProjectionError>,
) -> Result<Vec<Uuid>, ProjectionError> {
    let mut changed = Vec::new();
    for event in events {
        let id: Uuid = event
            .aggregate_id
            .parse()
            .map_err(|error| event.unreadable(error))?;
        if let Some(next) = apply(records.get(&id), event)? {
            records.insert(id, next);
            if !changed.contains(&id) {
                changed.push(id);
            }
        }
    }
    Ok(changed)
}

/// The JSON records (column `record` of `table`) of the aggregates `events` touch, locked for
/// this transaction and keyed by id.
async fn lock_json_records<R>(
    connection: &mut PgConnection,
    table: &str,
    events: &[RelayedEvent],
    id_of: impl Fn(&R) -> Uuid,
) -> Result<HashMap<Uuid, R>, ApplyError>
where
    R: DeserializeOwned + Send + Unpin + 'static,
{
    let ids = aggregate_ids(events)?;
    let rows: Vec<(Json<R>,)> = sqlx::query_as(&format!(
        "SELECT record FROM {table} WHERE id = ANY($1) FOR UPDATE"
    ))
    .bind(&ids)
    .fetch_all(&mut *connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(Json(record),)| (id_of(&record), record))
        .collect())
}

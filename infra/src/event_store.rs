//! The Postgres event store.
//!
//! Reads go through postgres-es. Appends are written here, because one transaction must hold
//! the events, the unique claims they declare and the applied-command record: postgres-es opens
//! its own transaction per append and offers no way to add to it. The columns are the same.

use cqrs_es::persist::{EventUpcaster, PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use eshop_commands::{CommandContext, EventStore, Loaded, StagedAppend, StoreError};
use eshop_domain::DeclaresClaims;

use crate::claims::digest;
use crate::personal_data::{self, PersonalDataKeys};

pub(crate) fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    let database_error = error.as_database_error()?;
    if database_error.code().as_deref() == Some("23505") {
        database_error.constraint()
    } else {
        None
    }
}

#[derive(Default)]
struct EventRows {
    sequences: Vec<i64>,
    types: Vec<String>,
    versions: Vec<String>,
    payloads: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
}

/// The rows of a multi-aggregate append: each event's aggregate beside it.
#[derive(Default)]
struct BatchRows {
    types: Vec<String>,
    ids: Vec<String>,
    rows: EventRows,
}

/// The applied-command records of a multi-aggregate append, one per staged command.
#[derive(Default)]
struct CommandRows {
    ids: Vec<Uuid>,
    types: Vec<String>,
    aggregate_ids: Vec<String>,
    versions: Vec<i64>,
}

/// Which constraint an append broke says what happened.
fn append_error(error: sqlx::Error) -> StoreError {
    match violated_constraint(&error) {
        Some("events_pkey") => StoreError::Conflict,
        Some("applied_commands_pkey") => StoreError::AlreadyApplied,
        _ => unavailable(error),
    }
}

pub struct PgEventStore {
    pool: PgPool,
    reader: PostgresEventRepository,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    keys: PersonalDataKeys,
}

impl PgEventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            reader: PostgresEventRepository::new(pool.clone()),
            keys: PersonalDataKeys::new(pool.clone()),
            pool,
            upcasters: vec![Box::new(eshop_domain::upcasting::Upcasters::shipped())],
        }
    }

    /// Upcasters turn old versions of stored events into the current shape as they are read.
    pub fn with_upcasters(mut self, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        self.upcasters = upcasters;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn personal_data_keys(&self) -> &PersonalDataKeys {
        &self.keys
    }

    /// Personal fields are stored sealed with the aggregate's key (see `personal_data`).
    async fn seal_personal_fields(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        payloads: &mut [serde_json::Value],
    ) -> Result<(), StoreError> {
        let fields = eshop_domain::personal_fields(aggregate_type);
        let carries_personal_data = payloads.iter().any(|payload| {
            fields.iter().any(|field| {
                payload
                    .get("data")
                    .and_then(|data| data.get(*field))
                    .is_some()
            })
        });
        if !carries_personal_data {
            return Ok(());
        }
        let key = self.keys.key_for_writing(aggregate_id).await?;
        for payload in payloads {
            personal_data::seal(aggregate_type, aggregate_id, payload, &key);
        }
        Ok(())
    }

    fn upcast(&self, event: SerializedEvent) -> SerializedEvent {
        self.upcasters.iter().fold(event, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                upcaster.upcast(event)
            } else {
                event
            }
        })
    }

    /// The version the aggregate has reached in the store (0: no event): one read of the
    /// primary key's last entry for it. Reads use it to reflect every write already answered.
    pub async fn current_version(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<u64, StoreError> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT sequence FROM events WHERE aggregate_type = $1 AND aggregate_id = $2
              ORDER BY sequence DESC LIMIT 1",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(version.map_or(0, |version| u64::try_from(version).unwrap_or(0)))
    }

    /// Ids of the aggregates of `aggregate_type` in creation order, after the stream that
    /// started at global position `after_position`. Returns `(position, id)` pairs.
    pub async fn stream_starts(
        &self,
        aggregate_type: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        sqlx::query_as(
            "SELECT position, aggregate_id FROM events
              WHERE aggregate_type = $1 AND sequence = 1 AND position > $2
              ORDER BY position LIMIT $3",
        )
        .bind(aggregate_type)
        .bind(after_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)
    }

    /// The rows of `events` as column arrays, and the version after them.
    fn event_rows<A: Aggregate>(
        aggregate_id: &str,
        expected_version: u64,
        events: &[A::Event],
        context: &CommandContext,
    ) -> Result<(EventRows, u64), StoreError> {
        let mut rows = EventRows::default();
        let mut sequence = expected_version;
        for event in events {
            sequence += 1;
            rows.sequences
                .push(i64::try_from(sequence).map_err(unavailable)?);
            rows.types.push(event.event_type());
            rows.versions.push(event.event_version());
            rows.payloads
                .push(serde_json::to_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            rows.metadata
                .push(context.event_metadata(A::TYPE, aggregate_id, sequence));
        }
        Ok((rows, sequence))
    }

    /// The common case, events without claims: the events and the applied command in one
    /// statement (one round trip, its own transaction).
    async fn append_in_one_statement<A: Aggregate>(
        &self,
        aggregate_id: &str,
        rows: &EventRows,
        version: u64,
        context: &CommandContext,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH appended AS (
                 INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 SELECT $1, $2, * FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                 RETURNING sequence
             )
             INSERT INTO applied_commands (command_id, aggregate_type, aggregate_id, version)
             SELECT $8, $1, $2, $9 FROM appended LIMIT 1",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(&rows.sequences)
        .bind(&rows.types)
        .bind(&rows.versions)
        .bind(&rows.payloads)
        .bind(&rows.metadata)
        .bind(context.command_id)
        .bind(i64::try_from(version).map_err(unavailable)?)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(append_error)
    }

    async fn insert_events<A: Aggregate>(
        tx: &mut Transaction<'_, Postgres>,
        aggregate_id: &str,
        rows: &EventRows,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT $1, $2, * FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(&rows.sequences)
        .bind(&rows.types)
        .bind(&rows.versions)
        .bind(&rows.payloads)
        .bind(&rows.metadata)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(append_error)
    }

    async fn write_claims<A: Aggregate>(
        tx: &mut Transaction<'_, Postgres>,
        aggregate_id: &str,
        events: &[A::Event],
    ) -> Result<(), StoreError>
    where
        A::Event: DeclaresClaims,
    {
        for claim in events.iter().flat_map(DeclaresClaims::unique_claims) {
            sqlx::query(
                "DELETE FROM unique_claims WHERE aggregate_type = $1 AND aggregate_id = $2 AND kind = $3",
            )
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(claim.kind)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
            let claimed = sqlx::query(
                "INSERT INTO unique_claims (kind, value_digest, aggregate_type, aggregate_id)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(claim.kind)
            .bind(digest(claim.kind, &claim.value))
            .bind(A::TYPE)
            .bind(aggregate_id)
            .execute(&mut **tx)
            .await;
            match claimed {
                Ok(_) => {}
                Err(error) if violated_constraint(&error) == Some("unique_claims_pkey") => {
                    return Err(StoreError::ClaimTaken {
                        kind: claim.kind.to_string(),
                    })
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
        Ok(())
    }

    async fn record_command<A: Aggregate>(
        tx: &mut Transaction<'_, Postgres>,
        aggregate_id: &str,
        version: u64,
        context: &CommandContext,
    ) -> Result<(), StoreError> {
        let recorded = sqlx::query(
            "INSERT INTO applied_commands (command_id, aggregate_type, aggregate_id, version)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(context.command_id)
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(i64::try_from(version).map_err(unavailable)?)
        .execute(&mut **tx)
        .await;
        recorded.map(|_| ()).map_err(append_error)
    }
}

impl EventStore for PgEventStore {
    #[tracing::instrument(level = "debug", skip_all, fields(kind))]
    async fn claim_holder(&self, kind: &str, value: &str) -> Result<Option<String>, StoreError> {
        crate::claims::holder(&self.pool, kind, value).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(aggregate_type = A::TYPE))]
    async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError> {
        let empty = Loaded {
            aggregate: A::default(),
            version: 0,
        };
        self.catch_up(aggregate_id, empty).await
    }

    async fn catch_up<A: Aggregate>(
        &self,
        aggregate_id: &str,
        known: Loaded<A>,
    ) -> Result<Loaded<A>, StoreError> {
        let stored = if known.version == 0 {
            self.reader
                .get_events::<A>(aggregate_id)
                .await
                .map_err(unavailable)?
        } else {
            // postgres-es formats the sequence into its SQL; a bound parameter keeps one
            // prepared statement for every catch-up.
            let after = i64::try_from(known.version).map_err(unavailable)?;
            let rows: Vec<(i64, String, String, serde_json::Value, serde_json::Value)> =
                sqlx::query_as(
                    "SELECT sequence, event_type, event_version, payload, metadata FROM events
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
                  ORDER BY sequence",
                )
                .bind(A::TYPE)
                .bind(aggregate_id)
                .bind(after)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            rows.into_iter()
                .map(|(sequence, event_type, event_version, payload, metadata)| {
                    SerializedEvent::new(
                        aggregate_id.to_string(),
                        usize::try_from(sequence).unwrap_or_default(),
                        A::TYPE.to_string(),
                        event_type,
                        event_version,
                        payload,
                        metadata,
                    )
                })
                .collect()
        };
        let mut stored = stored;
        self.keys
            .unseal_all(
                stored
                    .iter_mut()
                    .map(|event| (A::TYPE, aggregate_id, &mut event.payload)),
            )
            .await
            .map_err(unavailable)?;
        let Loaded {
            mut aggregate,
            mut version,
        } = known;
        for serialized in stored {
            let serialized = self.upcast(serialized);
            version = serialized.sequence as u64;
            let event: A::Event = serde_json::from_value(serialized.payload).map_err(|error| {
                StoreError::Corrupt(format!(
                    "{} {} #{}: {error}",
                    A::TYPE,
                    aggregate_id,
                    serialized.sequence
                ))
            })?;
            aggregate.apply(event);
        }
        Ok(Loaded { aggregate, version })
    }

    // Never the events: a registration's carries a password hash.
    #[tracing::instrument(
        level = "debug",
        skip(self, events, context),
        fields(aggregate_type = A::TYPE, events = events.len())
    )]
    async fn append<A>(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        events: &[A::Event],
        context: &CommandContext,
    ) -> Result<u64, StoreError>
    where
        A: Aggregate,
        A::Event: DeclaresClaims,
    {
        // The transaction begins after the aggregate was read, so its xid is newer than any
        // event it read: relaying in (xid, position) order keeps each aggregate in sequence.
        let (mut rows, version) =
            Self::event_rows::<A>(aggregate_id, expected_version, events, context)?;
        self.seal_personal_fields(A::TYPE, aggregate_id, &mut rows.payloads)
            .await?;
        if events.iter().all(|event| event.unique_claims().is_empty()) {
            self.append_in_one_statement::<A>(aggregate_id, &rows, version, context)
                .await?;
            return Ok(version);
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        Self::insert_events::<A>(&mut tx, aggregate_id, &rows).await?;
        Self::write_claims::<A>(&mut tx, aggregate_id, events).await?;
        Self::record_command::<A>(&mut tx, aggregate_id, version, context).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(version)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(appends = appends.len()))]
    async fn append_all(&self, appends: &[StagedAppend]) -> Result<(), StoreError> {
        let mut events = BatchRows::default();
        let mut commands = CommandRows::default();
        for append in appends {
            let mut payloads: Vec<serde_json::Value> = append
                .events
                .iter()
                .map(|event| event.payload.clone())
                .collect();
            self.seal_personal_fields(append.aggregate_type, &append.aggregate_id, &mut payloads)
                .await?;
            let mut sequence = append.expected_version;
            for (event, payload) in append.events.iter().zip(payloads) {
                sequence += 1;
                let stored_sequence = i64::try_from(sequence).map_err(unavailable)?;
                events.types.push(append.aggregate_type.to_string());
                events.ids.push(append.aggregate_id.clone());
                events.rows.sequences.push(stored_sequence);
                events.rows.types.push(event.event_type.clone());
                events.rows.versions.push(event.event_version.clone());
                events.rows.payloads.push(payload);
                events.rows.metadata.push(append.context.event_metadata(
                    append.aggregate_type,
                    &append.aggregate_id,
                    sequence,
                ));
            }
            commands.ids.push(append.context.command_id);
            commands.types.push(append.aggregate_type.to_string());
            commands.aggregate_ids.push(append.aggregate_id.clone());
            commands
                .versions
                .push(i64::try_from(sequence).map_err(unavailable)?);
        }
        // One statement, so one round trip and its own transaction; the events go in the order
        // they were staged.
        sqlx::query(
            "WITH appended AS (
                 INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                 RETURNING 1
             )
             INSERT INTO applied_commands (command_id, aggregate_type, aggregate_id, version)
             SELECT * FROM UNNEST($8::uuid[], $9::text[], $10::text[], $11::bigint[])
              WHERE EXISTS (SELECT FROM appended)",
        )
        .bind(&events.types)
        .bind(&events.ids)
        .bind(&events.rows.sequences)
        .bind(&events.rows.types)
        .bind(&events.rows.versions)
        .bind(&events.rows.payloads)
        .bind(&events.rows.metadata)
        .bind(&commands.ids)
        .bind(&commands.types)
        .bind(&commands.aggregate_ids)
        .bind(&commands.versions)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(append_error)
    }

    async fn applied_to(&self, command_id: Uuid) -> Result<Option<(String, String)>, StoreError> {
        sqlx::query_as(
            "SELECT aggregate_type, aggregate_id FROM applied_commands WHERE command_id = $1",
        )
        .bind(command_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)
    }
}

//! The sent-log (`email_log`), used as an outbox: a mail is first recorded as `pending` under
//! its (source, template) key, which a second attempt to record it finds taken; a dispatcher
//! then claims a batch of due mails (moving their next attempt two minutes ahead, under
//! `FOR UPDATE SKIP LOCKED`, so two replicas never take the same mail), sends them, and marks
//! each outcome.
//!
//! The one window left: a process that dies after the SMTP server accepted a mail and before
//! the outcome is recorded sends that mail again when its claim runs out (at most the mails in
//! flight, once per such crash). SMTP offers no way to ask a server whether it has a message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::templates::{render, Template};
use super::transport::{build_message, MailIdentity, MailTransport, SendError};
use crate::shutdown::Shutdown;

/// Counters for `/metrics` (this process's sends since it started).
#[derive(Debug, Default)]
pub struct MailStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub skipped: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    pub first: Duration,
    pub max: Duration,
    /// Transient failures after which a mail is given up (recorded as failed).
    pub max_attempts: i32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_attempts: 25,
        }
    }
}

impl RetrySettings {
    /// The pause after the `attempts`th failure: doubling from `first`, capped at `max`.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exponent = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        self.first.saturating_mul(1 << exponent).min(self.max)
    }
}

/// A mail to send once.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The event the mail is about (or a value derived from a scheduled run and recipient).
    pub source_id: Uuid,
    pub template: Template,
    pub position: Option<i64>,
    /// The event type or the job kind.
    pub source: String,
    pub user_id: Option<Uuid>,
    /// `None`: nobody to send it to (an erased user): recorded as skipped.
    pub recipient: Option<String>,
    pub context: Value,
}

/// One sent-log row, for `GET /api/admin/emails`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct MailRecord {
    pub source_id: Uuid,
    pub template: String,
    pub position: Option<i64>,
    pub source: String,
    pub user_id: Option<Uuid>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct Outbox {
    pool: PgPool,
    transport: MailTransport,
    from: String,
    retry: RetrySettings,
    stats: Arc<MailStats>,
    wake: Arc<Notify>,
}

type DueRow = (Uuid, String, Option<String>, Value, i32);

/// Mails claimed and sent at once by one dispatcher (their outcomes are recorded in one
/// statement). Sends run side by side: an SMTP relay takes a few connections at a time.
const BATCH: i64 = 128;
/// Mails being sent at once by one dispatcher.
const SENDING: usize = 16;
/// How long a claimed mail is left to its dispatcher: longer than an SMTP exchange may take
/// (lettre times out after 20 s); a dispatcher that died meanwhile leaves it due again after.
const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// One attempt at a mail.
struct Sent {
    source_id: Uuid,
    template_name: String,
    attempts: i32,
    subject: Option<String>,
    sent: Result<(), SendError>,
}

impl Outbox {
    pub fn new(
        pool: PgPool,
        transport: MailTransport,
        from: &str,
        retry: RetrySettings,
        stats: Arc<MailStats>,
    ) -> Self {
        Self {
            pool,
            transport,
            from: from.to_string(),
            retry,
            stats,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn stats(&self) -> Arc<MailStats> {
        self.stats.clone()
    }

    /// Records the mail unless it is recorded already; true when this call recorded it.
    ///
    /// A mail about an erased user keeps neither address nor context (a mailer that read a
    /// read model not yet caught up with the erasure still had them): the user's key row is
    /// read `FOR SHARE`, so an erasure either committed before (and is seen here) or waits for
    /// this insert and then scrubs it.
    #[tracing::instrument(level = "debug", skip_all, fields(source_id = %mail.source_id))]
    pub async fn enqueue(&self, mail: &NewMail) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let erased = match mail.user_id {
            Some(user_id) => sqlx::query_scalar::<_, bool>(
                "SELECT key IS NULL FROM personal_data_keys WHERE subject = $1 FOR SHARE",
            )
            .bind(user_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(false),
            None => false,
        };
        let (recipient, context) = if erased {
            (None, Value::Object(Default::default()))
        } else {
            (mail.recipient.clone(), mail.context.clone())
        };
        let status = if recipient.is_some() {
            "pending"
        } else {
            "skipped"
        };
        let inserted = sqlx::query(
            "INSERT INTO email_log (source_id, template, position, source, user_id, recipient, status, context, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $7 = 'skipped' THEN 'no address for this user' END)
             ON CONFLICT (source_id, template) DO NOTHING",
        )
        .bind(mail.source_id)
        .bind(mail.template.name())
        .bind(mail.position)
        .bind(&mail.source)
        .bind(mail.user_id)
        .bind(&recipient)
        .bind(status)
        .bind(&context)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        if inserted {
            if status == "skipped" {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
            self.wake.notify_one();
        }
        Ok(inserted)
    }

    /// Records the mails not recorded already, in one statement; returns how many it recorded.
    pub async fn enqueue_all(&self, mails: &[NewMail]) -> Result<usize, sqlx::Error> {
        if mails.is_empty() {
            return Ok(0);
        }
        let statuses: Vec<String> = sqlx::query_scalar(
            "INSERT INTO email_log (source_id, template, position, source, user_id, recipient, status, context, last_error)
             SELECT source_id, template, position, source, user_id, recipient,
                    CASE WHEN recipient IS NULL THEN 'skipped' ELSE 'pending' END, context,
                    CASE WHEN recipient IS NULL THEN 'no address for this user' END
               FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::uuid[], $6::text[], $7::jsonb[])
                    AS mail(source_id, template, position, source, user_id, recipient, context)
             ON CONFLICT (source_id, template) DO NOTHING
             RETURNING status",
        )
        .bind(mails.iter().map(|mail| mail.source_id).collect::<Vec<_>>())
        .bind(mails.iter().map(|mail| mail.template.name()).collect::<Vec<_>>())
        .bind(mails.iter().map(|mail| mail.position).collect::<Vec<_>>())
        .bind(mails.iter().map(|mail| mail.source.clone()).collect::<Vec<_>>())
        .bind(mails.iter().map(|mail| mail.user_id).collect::<Vec<_>>())
        .bind(mails.iter().map(|mail| mail.recipient.clone()).collect::<Vec<_>>())
        .bind(mails.iter().map(|mail| mail.context.clone()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        let skipped = statuses
            .iter()
            .filter(|status| *status == "skipped")
            .count();
        self.stats
            .skipped
            .fetch_add(skipped as u64, Ordering::Relaxed);
        if statuses.len() > skipped {
            self.wake.notify_one();
        }
        Ok(statuses.len())
    }

    /// Records a mail that cannot be composed as failed (unless it is recorded already).
    pub async fn record_failed(&self, mail: &NewMail, error: &str) -> Result<(), sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO email_log (source_id, template, position, source, user_id, status, last_error, context)
             VALUES ($1, $2, $3, $4, $5, 'failed', $6, '{}')
             ON CONFLICT (source_id, template) DO NOTHING",
        )
        .bind(mail.source_id)
        .bind(mail.template.name())
        .bind(mail.position)
        .bind(&mail.source)
        .bind(mail.user_id)
        .bind(error)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Sends due mails until none is due; returns how many it tried.
    pub async fn dispatch_due(&self) -> Result<usize, sqlx::Error> {
        let mut tried = 0;
        loop {
            let batch = self.dispatch_batch().await?;
            if batch == 0 {
                return Ok(tried);
            }
            tried += batch;
        }
    }

    /// Claims a batch of due mails (pushing their next attempt past `CLAIM_LEASE`, so no other
    /// dispatcher takes them meanwhile), sends them at once, and records each outcome. No
    /// database connection is held while the SMTP server talks.
    async fn dispatch_batch(&self) -> Result<usize, sqlx::Error> {
        let due: Vec<DueRow> = sqlx::query_as(
            "UPDATE email_log SET next_attempt_at = now() + $2 * interval '1 second'
              WHERE (source_id, template) IN (
                    SELECT source_id, template FROM email_log
                     WHERE status = 'pending' AND next_attempt_at <= now()
                     ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
              RETURNING source_id, template, recipient, context, attempts",
        )
        .bind(BATCH)
        .bind(i64::try_from(CLAIM_LEASE.as_secs()).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let count = due.len();
        let sends: Vec<_> = due.into_iter().map(|row| self.send(row)).collect();
        let outcomes: Vec<Sent> = futures::stream::iter(sends)
            .buffer_unordered(SENDING)
            .collect()
            .await;
        self.record_all(outcomes).await?;
        Ok(count)
    }

    async fn send(&self, row: DueRow) -> Sent {
        let (source_id, template_name, recipient, context, attempts) = row;
        let attempts = attempts + 1;
        let (subject, sent) = match (Template::parse(&template_name), recipient) {
            (Some(template), Some(recipient)) => {
                let rendered = render(template, &context);
                let identity = MailIdentity {
                    source_id,
                    template,
                };
                let sent = match build_message(&self.from, &recipient, identity, &rendered) {
                    Ok(message) => self.transport.send(message).await,
                    Err(error) => Err(error),
                };
                (Some(rendered.subject), sent)
            }
            _ => (
                None,
                Err(SendError::Permanent(format!(
                    "unknown template {template_name} or no recipient"
                ))),
            ),
        };
        Sent {
            source_id,
            template_name,
            attempts,
            subject,
            sent,
        }
    }

    /// What an attempt's outcome makes of its row: (status, error, delay before the next).
    fn outcome(&self, outcome: &Sent) -> (&'static str, Option<String>, Duration) {
        let Sent {
            source_id,
            template_name,
            attempts,
            sent,
            ..
        } = outcome;
        let attempts = *attempts;
        match sent {
            Ok(()) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                ("sent", None, Duration::ZERO)
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(%source_id, template = %template_name, error = %error, "mail refused for good");
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                ("failed", Some(error.clone()), Duration::ZERO)
            }
            Err(SendError::Transient(error)) if attempts >= self.retry.max_attempts => {
                tracing::warn!(%source_id, template = %template_name, error = %error, attempts, "mail given up");
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                (
                    "failed",
                    Some(format!("gave up after {attempts} attempts: {error}")),
                    Duration::ZERO,
                )
            }
            Err(SendError::Transient(error)) => {
                tracing::info!(%source_id, template = %template_name, error = %error, attempts, "mail not sent; will retry");
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                ("pending", Some(error.clone()), self.retry.backoff(attempts))
            }
        }
    }

    /// Records a batch's outcomes in one statement.
    async fn record_all(&self, outcomes: Vec<Sent>) -> Result<(), sqlx::Error> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut statuses = Vec::with_capacity(outcomes.len());
        let mut errors = Vec::with_capacity(outcomes.len());
        let mut delays = Vec::with_capacity(outcomes.len());
        for outcome in &outcomes {
            let (status, error, delay) = self.outcome(outcome);
            statuses.push(status);
            errors.push(error);
            delays.push(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        }
        sqlx::query(
            "UPDATE email_log SET status = outcome.status, attempts = outcome.attempts,
                    last_error = outcome.error,
                    subject = CASE WHEN email_log.recipient IS NULL THEN NULL
                                   ELSE coalesce(outcome.subject, email_log.subject) END,
                    context = CASE WHEN outcome.status = 'pending' THEN email_log.context
                                   ELSE email_log.context - 'link' END,
                    next_attempt_at = now() + outcome.delay_ms * interval '1 millisecond',
                    sent_at = CASE WHEN outcome.status = 'sent' THEN now() END, updated_at = now()
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[])
                    AS outcome(source_id, template, status, attempts, error, subject, delay_ms)
              WHERE email_log.source_id = outcome.source_id AND email_log.template = outcome.template",
        )
        .bind(outcomes.iter().map(|o| o.source_id).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|o| o.template_name.clone()).collect::<Vec<_>>())
        .bind(statuses)
        .bind(outcomes.iter().map(|o| o.attempts).collect::<Vec<_>>())
        .bind(errors)
        .bind(outcomes.iter().map(|o| o.subject.clone()).collect::<Vec<_>>())
        .bind(delays)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sends due mails until shutdown: woken by new mails, and every `poll` for retries.
    pub async fn run(self, mut shutdown: Shutdown, poll: Duration) {
        loop {
            if let Err(error) = self.dispatch_due().await {
                tracing::warn!(error = %error, "mail dispatch failed; retrying");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// The sent-log, newest first, optionally of one status.
    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<MailRecord>, sqlx::Error> {
        list(&self.pool, status, limit, before).await
    }
}

pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    limit: i64,
    before: Option<DateTime<Utc>>,
) -> Result<Vec<MailRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT source_id, template, position, source, user_id, recipient, subject, status, attempts,
                last_error, next_attempt_at, created_at, updated_at, sent_at
           FROM email_log
          WHERE ($1::text IS NULL OR status = $1) AND ($3::timestamptz IS NULL OR created_at < $3)
          ORDER BY created_at DESC, source_id LIMIT $2",
    )
    .bind(status)
    .bind(limit)
    .bind(before)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetrySettings {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
            max_attempts: 5,
        };
        assert_eq!(retry.backoff(1), Duration::from_secs(1));
        assert_eq!(retry.backoff(2), Duration::from_secs(2));
        assert_eq!(retry.backoff(4), Duration::from_secs(8));
        assert_eq!(retry.backoff(5), Duration::from_secs(10));
        assert_eq!(retry.backoff(60), Duration::from_secs(10));
    }
}

//! The mailer: a durable JetStream consumer of the event stream that turns the events people
//! should hear about into mails, and an outbox that sends each of them once.
//!
//! - Exactly-once effect: each mail is recorded under (event id, template) before it is sent
//!   (`outbox`); a redelivered event finds its mails recorded and adds nothing.
//! - Not a projection: rebuilding or resetting projections does not touch its consumer or its
//!   log, so a rebuild sends nothing.
//! - Only recent events mail anyone: an event recorded longer ago than the horizon (24 hours by
//!   default) is acknowledged and ignored, so history relayed again into a fresh stream, or a
//!   new consumer reading the stream from its start, sends nothing.
//! - Every replica shares the one consumer, without a leader: recording a mail is an insert
//!   that only one replica wins, and the outbox locks each row while it sends it.

pub mod outbox;
pub mod recipients;
pub mod templates;
pub mod transport;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use serde_json::{json, Value};
use uuid::Uuid;

use eshop_projections::order::OrderRecord;
use eshop_projections::RelayedEvent;

use crate::consumer::{ConsumerRunner, ConsumerSpec, Handled, Handler, Settle};
use crate::nats::EventSubjects;
use crate::read_models::orders::PgOrders;
use crate::read_models::payments::PgPayments;
use crate::read_models::products::PgProducts;
use crate::shutdown::Shutdown;
use outbox::{NewMail, Outbox};
use recipients::{Lookup, Recipients};
use templates::Template;

use eshop_commands::BoxError;

pub const CONSUMER: &str = "mailer";
/// How long an event waits for the read models the mail needs before it is asked again.
const NOT_YET_DELAY: Duration = Duration::from_secs(1);
/// After this many deliveries an event whose mail still cannot be composed is recorded failed.
const MAX_DELIVERIES: i64 = 120;
/// Events taken at once: the read models their mails need are read, and the mails recorded,
/// with one statement per table for all of them.
const BATCH: usize = 500;

#[derive(Debug, Clone, Copy)]
pub struct MailerSettings {
    /// Events recorded longer ago than this send no mail.
    pub horizon: Duration,
}

impl Default for MailerSettings {
    fn default() -> Self {
        Self {
            horizon: Duration::from_secs(24 * 3600),
        }
    }
}

/// What the order mails of one batch need from the read models, read at once.
#[derive(Default)]
struct Lookups {
    orders: HashMap<Uuid, OrderRecord>,
    titles: HashMap<Uuid, String>,
    recipients: HashMap<Uuid, Lookup>,
}

/// What an event means for the mailer.
#[derive(Debug)]
enum Composed {
    Mail(NewMail),
    /// Nothing to send for this event.
    Nothing,
    /// A read model the mail needs has not caught up yet.
    NotYet(Template, &'static str),
}

pub struct Mailer {
    jetstream: jetstream::Context,
    subjects: EventSubjects,
    outbox: Outbox,
    recipients: Recipients,
    orders: PgOrders,
    payments: PgPayments,
    products: PgProducts,
    settings: MailerSettings,
}

/// The id a mail about this event is recorded under.
fn source_id(event: &RelayedEvent) -> Uuid {
    event
        .metadata
        .get("event_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| {
            Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!(
                    "{}/{}/{}",
                    event.aggregate_type, event.aggregate_id, event.sequence
                )
                .as_bytes(),
            )
        })
}

fn data(event: &RelayedEvent) -> &Value {
    event.payload.get("data").unwrap_or(&Value::Null)
}

impl Mailer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        jetstream: jetstream::Context,
        subjects: EventSubjects,
        outbox: Outbox,
        recipients: Recipients,
        orders: PgOrders,
        payments: PgPayments,
        products: PgProducts,
        settings: MailerSettings,
    ) -> Self {
        Self {
            jetstream,
            subjects,
            outbox,
            recipients,
            orders,
            payments,
            products,
            settings,
        }
    }

    /// The mailer's consumer. NATS 2.9 allows one filter subject: the mailer reads every event
    /// and skips most.
    pub fn runner(&self) -> ConsumerRunner {
        ConsumerRunner::new(
            self.jetstream.clone(),
            ConsumerSpec {
                ack_wait: Duration::from_secs(60),
                max_ack_pending: Some(10_000),
                batch: BATCH,
                first_pause: Duration::from_secs(1),
                ..ConsumerSpec::new(CONSUMER, self.subjects.stream_name(), self.subjects.all())
            },
        )
    }

    /// Consumes until shutdown, restarting after errors. The outbox runs beside it.
    pub async fn run(self, shutdown: Shutdown) {
        let dispatcher = tokio::spawn(
            self.outbox
                .clone()
                .run(shutdown.clone(), Duration::from_millis(500)),
        );
        let runner = self.runner();
        runner.run(Arc::new(self), shutdown).await;
        let _ = dispatcher.await;
    }

    /// Records the mail `event` calls for (if any); an error means "try again later".
    pub async fn mail_for(&self, event: &RelayedEvent, deliveries: i64) -> Result<(), BoxError> {
        self.mail_for_all(&[(event, deliveries)])
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Records the mails `events` call for, each with how many times it was delivered: what
    /// they need from the read models is read at once, the mails recorded in one statement.
    /// One outcome per event, in order; an error means "try that one again later".
    pub async fn mail_for_all(&self, events: &[(&RelayedEvent, i64)]) -> Vec<Result<(), BoxError>> {
        let recent: Vec<&RelayedEvent> = events
            .iter()
            .map(|(event, _)| *event)
            .filter(|event| self.is_recent(event))
            .collect();
        let lookups = match self.lookups(&recent).await {
            Ok(lookups) => lookups,
            Err(error) => {
                let error = error.to_string();
                return events.iter().map(|_| Err(error.clone().into())).collect();
            }
        };
        let mut outcomes: Vec<Result<(), BoxError>> = Vec::with_capacity(events.len());
        let mut mails = Vec::new();
        let mut recorded_by = Vec::new();
        for (index, (event, deliveries)) in events.iter().enumerate() {
            if !self.is_recent(event) {
                outcomes.push(Ok(()));
                continue;
            }
            let outcome = match self.compose(event, &lookups).await {
                Err(error) => Err(error),
                Ok(Composed::Nothing) => Ok(()),
                Ok(Composed::Mail(mail)) => {
                    mails.push(mail);
                    recorded_by.push(index);
                    Ok(())
                }
                Ok(Composed::NotYet(_, what)) if *deliveries < MAX_DELIVERIES => {
                    Err(format!("waiting for the {what} read model").into())
                }
                Ok(Composed::NotYet(template, what)) => self.give_up(event, template, what).await,
            };
            outcomes.push(outcome);
        }
        if let Err(error) = self.outbox.enqueue_all(&mails).await {
            let error = error.to_string();
            for index in recorded_by {
                outcomes[index] = Err(error.clone().into());
            }
        }
        outcomes
    }

    fn is_recent(&self, event: &RelayedEvent) -> bool {
        let age = chrono::Utc::now() - event.recorded_at;
        age.to_std().unwrap_or_default() <= self.settings.horizon
    }

    async fn give_up(
        &self,
        event: &RelayedEvent,
        template: Template,
        what: &str,
    ) -> Result<(), BoxError> {
        tracing::error!(
            position = event.position,
            what,
            "gave up waiting for a read model; the mail is recorded failed"
        );
        let mail = NewMail {
            source_id: source_id(event),
            template,
            position: Some(event.position),
            source: event.event_type.clone(),
            user_id: None,
            recipient: None,
            context: Value::Null,
        };
        let error = format!("the {what} read model never had what this mail needs");
        self.outbox.record_failed(&mail, &error).await?;
        Ok(())
    }

    /// What the order mails of `events` need, read with one query per table.
    async fn lookups(&self, events: &[&RelayedEvent]) -> Result<Lookups, BoxError> {
        let mut order_ids: Vec<Uuid> = events
            .iter()
            .filter(|event| {
                event.aggregate_type == "order"
                    && matches!(
                        event.event_type.as_str(),
                        "OrderConfirmed" | "OrderCancelled"
                    )
            })
            .filter_map(|event| event.aggregate_id.parse().ok())
            .collect();
        let mut lookups = Lookups::default();
        if order_ids.is_empty() {
            return Ok(lookups);
        }
        order_ids.sort_unstable();
        order_ids.dedup();
        lookups.orders = self
            .orders
            .get_many(&order_ids)
            .await?
            .into_iter()
            .map(|order| (order.id, order))
            .collect();
        let mut products: Vec<Uuid> = lookups
            .orders
            .values()
            .flat_map(|order| order.lines.iter().map(|line| line.product_id))
            .collect();
        products.sort_unstable();
        products.dedup();
        lookups.titles = self.products.titles(&products).await?.into_iter().collect();
        let mut customers: Vec<Uuid> = lookups
            .orders
            .values()
            .map(|order| order.customer_id)
            .collect();
        customers.sort_unstable();
        customers.dedup();
        lookups.recipients = self.recipients.of_users(&customers).await?;
        Ok(lookups)
    }

    /// The recipient of a user the lookups may hold.
    async fn recipient(&self, lookups: &Lookups, user_id: Uuid) -> Result<Lookup, BoxError> {
        Ok(match lookups.recipients.get(&user_id) {
            Some(found) => found.clone(),
            None => self.recipients.of_user(user_id).await?,
        })
    }

    fn mail(
        event: &RelayedEvent,
        template: Template,
        user_id: Uuid,
        lookup: Lookup,
        mut context: Value,
    ) -> Composed {
        let recipient = match lookup {
            Lookup::NotYet => return Composed::NotYet(template, "users"),
            Lookup::Gone => None,
            Lookup::Found(recipient) => {
                if let Some(name) = recipient.name {
                    context["name"] = json!(name);
                }
                Some(recipient.address)
            }
        };
        Composed::Mail(NewMail {
            source_id: source_id(event),
            template,
            position: Some(event.position),
            source: event.event_type.clone(),
            user_id: Some(user_id),
            recipient,
            context,
        })
    }

    async fn compose(&self, event: &RelayedEvent, lookups: &Lookups) -> Result<Composed, BoxError> {
        let id: Uuid = match event.aggregate_id.parse() {
            Ok(id) => id,
            Err(_) => return Ok(Composed::Nothing),
        };
        let data = data(event);
        Ok(
            match (event.aggregate_type.as_str(), event.event_type.as_str()) {
                ("user", "UserRegistered") => Self::mail(
                    event,
                    Template::Welcome,
                    id,
                    self.recipients.of_registration(id, data).await?,
                    json!({"username": data.get("username")}),
                ),
                ("order", "OrderConfirmed") => {
                    let Some(order) = lookups.orders.get(&id) else {
                        return Ok(Composed::NotYet(Template::OrderConfirmation, "orders"));
                    };
                    let lines: Vec<Value> = order
                        .lines
                        .iter()
                        .map(|line| {
                            let title = lookups
                                .titles
                                .get(&line.product_id)
                                .cloned()
                                .unwrap_or_else(|| line.product_id.to_string());
                            json!({"title": title, "quantity": line.quantity,
                                   "unit_price_cents": line.unit_price_cents})
                        })
                        .collect();
                    Self::mail(
                        event,
                        Template::OrderConfirmation,
                        order.customer_id,
                        self.recipient(lookups, order.customer_id).await?,
                        json!({"order_id": id, "lines": lines, "total_cents": order.total_cents}),
                    )
                }
                ("order", "OrderCancelled") => {
                    let Some(order) = lookups.orders.get(&id) else {
                        return Ok(Composed::NotYet(Template::OrderCancelled, "orders"));
                    };
                    Self::mail(
                        event,
                        Template::OrderCancelled,
                        order.customer_id,
                        self.recipient(lookups, order.customer_id).await?,
                        json!({"order_id": id, "reason": data.get("reason"),
                           "total_cents": order.total_cents}),
                    )
                }
                ("payment", "PaymentDeclined" | "PaymentRefunded") => {
                    let declined = event.event_type == "PaymentDeclined";
                    let Some(payment) = self.payments.get(id).await? else {
                        let template = if declined {
                            Template::PaymentDeclined
                        } else {
                            Template::PaymentRefunded
                        };
                        return Ok(Composed::NotYet(template, "payments"));
                    };
                    let (template, amount) = if declined {
                        (Template::PaymentDeclined, payment.amount_cents)
                    } else {
                        (
                            Template::PaymentRefunded,
                            data.get("amount_cents")
                                .and_then(Value::as_i64)
                                .unwrap_or(payment.amount_cents),
                        )
                    };
                    Self::mail(
                        event,
                        template,
                        payment.customer_id,
                        self.recipients.of_user(payment.customer_id).await?,
                        json!({"order_id": payment.order_id, "amount_cents": amount,
                           "reason": data.get("reason")}),
                    )
                }
                _ => Composed::Nothing,
            },
        )
    }
}

impl Handler for Mailer {
    async fn handle(&self, batch: Vec<jetstream::Message>) -> Handled {
        let mut settled = vec![Settle::Ack; batch.len()];
        let mut readable = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            match serde_json::from_slice::<RelayedEvent>(&message.payload) {
                Ok(event) => {
                    let deliveries = message.info().map(|info| info.delivered).unwrap_or(1);
                    readable.push((index, event, deliveries));
                }
                Err(_) => {
                    tracing::error!(subject = %message.subject, "an event that cannot be read; no mail");
                    settled[index] = Settle::Term;
                }
            }
        }
        let events: Vec<(&RelayedEvent, i64)> = readable
            .iter()
            .map(|(_, event, deliveries)| (event, *deliveries))
            .collect();
        let outcomes = self.mail_for_all(&events).await;
        for ((index, event, _), outcome) in readable.iter().zip(outcomes) {
            if let Err(error) = outcome {
                tracing::warn!(position = event.position, error = %error, "cannot record the mail now; the event will come back");
                settled[*index] = Settle::Nak(Some(NOT_YET_DELAY));
            }
        }
        Handled::Settled(settled)
    }
}

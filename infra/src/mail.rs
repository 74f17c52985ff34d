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

use std::time::Duration;

use std::sync::Arc;

use async_nats::jetstream;
use serde_json::{json, Value};
use uuid::Uuid;

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

    async fn handle_one(&self, message: &jetstream::Message) -> Settle {
        let Ok(event) = serde_json::from_slice::<RelayedEvent>(&message.payload) else {
            tracing::error!(subject = %message.subject, "an event that cannot be read; no mail");
            return Settle::Term;
        };
        let deliveries = message.info().map(|info| info.delivered).unwrap_or(1);
        match self.mail_for(&event, deliveries).await {
            Ok(()) => Settle::Ack,
            Err(error) => {
                tracing::warn!(position = event.position, error = %error, "cannot record the mail now; the event will come back");
                Settle::Nak(Some(NOT_YET_DELAY))
            }
        }
    }

    /// Records the mail `event` calls for (if any); an error means "try again later".
    pub async fn mail_for(&self, event: &RelayedEvent, deliveries: i64) -> Result<(), BoxError> {
        let age = chrono::Utc::now() - event.recorded_at;
        if age.to_std().unwrap_or_default() > self.settings.horizon {
            return Ok(());
        }
        match self.compose(event).await? {
            Composed::Nothing => Ok(()),
            Composed::Mail(mail) => {
                self.outbox.enqueue(&mail).await?;
                Ok(())
            }
            Composed::NotYet(_, what) if deliveries < MAX_DELIVERIES => {
                Err(format!("waiting for the {what} read model").into())
            }
            Composed::NotYet(template, what) => {
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
        }
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

    async fn compose(&self, event: &RelayedEvent) -> Result<Composed, BoxError> {
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
                    let Some(order) = self.orders.get(id).await? else {
                        return Ok(Composed::NotYet(Template::OrderConfirmation, "orders"));
                    };
                    let mut lines = Vec::with_capacity(order.lines.len());
                    for line in &order.lines {
                        let title = self
                            .products
                            .get(line.product_id)
                            .await?
                            .map_or_else(|| line.product_id.to_string(), |product| product.title);
                        lines.push(json!({"title": title, "quantity": line.quantity,
                                      "unit_price_cents": line.unit_price_cents}));
                    }
                    Self::mail(
                        event,
                        Template::OrderConfirmation,
                        order.customer_id,
                        self.recipients.of_user(order.customer_id).await?,
                        json!({"order_id": id, "lines": lines, "total_cents": order.total_cents}),
                    )
                }
                ("order", "OrderCancelled") => {
                    let Some(order) = self.orders.get(id).await? else {
                        return Ok(Composed::NotYet(Template::OrderCancelled, "orders"));
                    };
                    Self::mail(
                        event,
                        Template::OrderCancelled,
                        order.customer_id,
                        self.recipients.of_user(order.customer_id).await?,
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
        let mut settled = Vec::with_capacity(batch.len());
        for message in &batch {
            settled.push(self.handle_one(message).await);
        }
        Handled::Settled(settled)
    }
}

//! The order process manager against real Postgres: no concurrency oversells stock or
//! overdraws a wallet, every order ends confirmed or failed with its reservations undone, and
//! a crash between steps is repaired by running it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eshop_commands::orders::{
    OrderProcess, PurchaseError, PurchaseRequest, Purchased, INSUFFICIENT_BALANCE, OUT_OF_STOCK,
    PAYMENT_DECLINED,
};
use eshop_commands::payment_gateway::{
    Charge, ChargeOutcome, GatewayUnavailable, InvalidPaymentDetails, PaymentDetails,
    PaymentGateway, Tokenized,
};
use eshop_commands::{Actor, CommandBus, CommandContext, EventStore, RetryPolicy};
use eshop_domain::order::{Order, OrderCommand, OrderLine, OrderStatus, PaymentInstrument};
use eshop_domain::payment::{Payment, PaymentStatus};
use eshop_domain::product::{NewProduct, Product, ProductCommand};
use eshop_domain::user::{Registration, User, UserCommand};
use eshop_domain::values::{
    DepositAmount, EmailAddress, PaymentMethod, Price, Quantity, Text, Username,
};
use eshop_infra::simulated_gateway::{tokenize_card, SimulatedGateway};
use eshop_infra::testing::fresh_database;
use eshop_infra::PgEventStore;
use sqlx::PgPool;
use uuid::Uuid;

type Bus = Arc<CommandBus<PgEventStore>>;

async fn bus() -> (PgPool, Bus) {
    let (_, pool) = fresh_database().await;
    let retry = RetryPolicy {
        max_attempts: 50,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    };
    (
        pool.clone(),
        Arc::new(CommandBus::new(PgEventStore::new(pool), retry)),
    )
}

fn context() -> CommandContext {
    CommandContext::new(Actor::System, "test")
}

async fn buyer(bus: &Bus, name: &str, balance_cents: i64) -> Uuid {
    let id = Uuid::now_v7();
    let registration = Registration {
        email: EmailAddress::parse(&format!("{name}@example.com")).expect("valid"),
        username: Username::parse(name).expect("valid"),
        password_hash: "$argon2id$test".into(),
        first_name: None,
        last_name: None,
    };
    bus.execute::<User>(
        &id.to_string(),
        UserCommand::Register(registration),
        &context(),
        None,
    )
    .await
    .expect("registered");
    if balance_cents > 0 {
        let amount = DepositAmount::parse(balance_cents).expect("valid");
        bus.execute::<User>(
            &id.to_string(),
            UserCommand::Deposit(amount),
            &context(),
            None,
        )
        .await
        .expect("deposited");
    }
    id
}

async fn product(bus: &Bus, price_cents: i64, stock: i64) -> Uuid {
    let id = Uuid::now_v7();
    let new = NewProduct {
        title: Text::title("A book").expect("valid"),
        author: Text::author("An author").expect("valid"),
        published_date: "2001-01-01".parse().expect("date"),
        description: Text::description("").expect("valid"),
        price: Price::parse(price_cents).expect("valid"),
        stock: Quantity::stock(stock).expect("valid"),
        category: Text::category("books").expect("valid"),
        category_id: None,
    };
    bus.execute::<Product>(&id.to_string(), ProductCommand::Add(new), &context(), None)
        .await
        .expect("added");
    id
}

async fn place(
    bus: &Bus,
    customer_id: Uuid,
    lines: Vec<(Uuid, i64, i64)>,
    payment: PaymentInstrument,
) -> Uuid {
    let order_id = Uuid::now_v7();
    let lines = lines
        .into_iter()
        .map(|(product_id, quantity, unit_price_cents)| OrderLine {
            product_id,
            quantity,
            unit_price_cents,
        })
        .collect();
    bus.execute::<Order>(
        &order_id.to_string(),
        OrderCommand::Place {
            customer_id,
            lines,
            payment,
        },
        &context(),
        None,
    )
    .await
    .expect("placed");
    order_id
}

async fn load<A: cqrs_es::Aggregate>(bus: &Bus, id: Uuid) -> A {
    bus.store()
        .load::<A>(&id.to_string())
        .await
        .expect("loads")
        .aggregate
}

type Process = Arc<OrderProcess<PgEventStore, SimulatedGateway>>;

fn process(bus: &Bus) -> Process {
    Arc::new(OrderProcess::new(bus.clone(), SimulatedGateway::default()))
}

/// `count` buyers named `prefix0`, `prefix1`, ..., each with `balance_cents` in the wallet.
async fn buyers(bus: &Bus, prefix: &str, count: usize, balance_cents: i64) -> Vec<Uuid> {
    let mut buyers = Vec::with_capacity(count);
    for n in 0..count {
        buyers.push(buyer(bus, &format!("{prefix}{n}"), balance_cents).await);
    }
    buyers
}

fn card(number: &str) -> PaymentInstrument {
    let (token, last4) = tokenize_card(number).expect("valid card");
    PaymentInstrument {
        method: PaymentMethod::Card,
        token: Some(token),
        card_last4: Some(last4),
        card_brand: None,
    }
}

#[tokio::test]
async fn a_wallet_purchase_reserves_pays_and_confirms() {
    let (_, bus) = bus().await;
    let buyer = buyer(&bus, "ann", 10_000).await;
    let book = product(&bus, 1_500, 5).await;
    let order = place(
        &bus,
        buyer,
        vec![(book, 2, 1_500)],
        PaymentInstrument::balance(),
    )
    .await;

    assert_eq!(
        process(&bus).advance(order).await.expect("advances"),
        OrderStatus::Confirmed
    );
    assert_eq!(load::<Product>(&bus, book).await.stock, 3);
    assert_eq!(load::<User>(&bus, buyer).await.balance_cents, 7_000);
    let payment = load::<Payment>(&bus, eshop_commands::orders::payment_id(order)).await;
    assert_eq!(
        (payment.status, payment.amount_cents),
        (PaymentStatus::Captured, 3_000)
    );
    // Advancing a finished order changes nothing.
    assert_eq!(
        process(&bus).advance(order).await.expect("advances"),
        OrderStatus::Confirmed
    );
    assert_eq!(load::<User>(&bus, buyer).await.balance_cents, 7_000);
}

#[tokio::test]
async fn an_order_that_cannot_get_all_its_stock_releases_what_it_got() {
    let (_, bus) = bus().await;
    let buyer = buyer(&bus, "ben", 10_000).await;
    let plenty = product(&bus, 100, 10).await;
    let scarce = product(&bus, 100, 1).await;
    let order = place(
        &bus,
        buyer,
        vec![(plenty, 3, 100), (scarce, 2, 100)],
        PaymentInstrument::balance(),
    )
    .await;

    assert_eq!(
        process(&bus).advance(order).await.expect("advances"),
        OrderStatus::Failed
    );
    assert_eq!(
        load::<Order>(&bus, order).await.reason.as_deref(),
        Some(OUT_OF_STOCK)
    );
    assert_eq!(load::<Product>(&bus, plenty).await.stock, 10);
    assert_eq!(load::<Product>(&bus, scarce).await.stock, 1);
    assert_eq!(load::<User>(&bus, buyer).await.balance_cents, 10_000);
}

#[tokio::test]
async fn too_little_money_fails_the_order_and_releases_the_stock() {
    let (_, bus) = bus().await;
    let buyer = buyer(&bus, "cat", 500).await;
    let book = product(&bus, 1_000, 4).await;
    let order = place(
        &bus,
        buyer,
        vec![(book, 1, 1_000)],
        PaymentInstrument::balance(),
    )
    .await;

    assert_eq!(
        process(&bus).advance(order).await.expect("advances"),
        OrderStatus::Failed
    );
    assert_eq!(
        load::<Order>(&bus, order).await.reason.as_deref(),
        Some(INSUFFICIENT_BALANCE)
    );
    assert_eq!(load::<Product>(&bus, book).await.stock, 4);
    assert_eq!(load::<User>(&bus, buyer).await.balance_cents, 500);
}

#[tokio::test]
async fn a_declined_card_fails_the_order_and_releases_the_stock() {
    let (_, bus) = bus().await;
    let buyer = buyer(&bus, "dan", 0).await;
    let book = product(&bus, 1_000, 4).await;
    let declined = place(
        &bus,
        buyer,
        vec![(book, 1, 1_000)],
        card("4000 0000 0000 0002"),
    )
    .await;
    assert_eq!(
        process(&bus).advance(declined).await.expect("advances"),
        OrderStatus::Failed
    );
    assert_eq!(
        load::<Order>(&bus, declined).await.reason.as_deref(),
        Some(PAYMENT_DECLINED)
    );
    assert_eq!(load::<Product>(&bus, book).await.stock, 4);
    let payment = load::<Payment>(&bus, eshop_commands::orders::payment_id(declined)).await;
    assert_eq!(payment.status, PaymentStatus::Declined);
    assert_eq!(payment.card_last4.as_deref(), Some("0002"));

    let approved = place(
        &bus,
        buyer,
        vec![(book, 1, 1_000)],
        card("4242 4242 4242 4242"),
    )
    .await;
    assert_eq!(
        process(&bus).advance(approved).await.expect("advances"),
        OrderStatus::Confirmed
    );
    assert_eq!(load::<Product>(&bus, book).await.stock, 3);
}

#[tokio::test]
async fn two_hundred_buyers_for_fifty_books_confirm_exactly_fifty() {
    let (_, bus) = bus().await;
    let book = product(&bus, 700, 50).await;
    let buyers = buyers(&bus, "buyer", 200, 10_000).await;
    let purchases = buyers.into_iter().map(|buyer| {
        let bus = bus.clone();
        tokio::spawn(async move {
            let order = place(
                &bus,
                buyer,
                vec![(book, 1, 700)],
                PaymentInstrument::balance(),
            )
            .await;
            let status = process(&bus).advance(order).await.expect("advances");
            (buyer, status)
        })
    });
    let outcomes: Vec<(Uuid, OrderStatus)> = futures::future::join_all(purchases)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("task"))
        .collect();
    let confirmed: Vec<Uuid> = outcomes
        .iter()
        .filter(|(_, status)| *status == OrderStatus::Confirmed)
        .map(|(buyer, _)| *buyer)
        .collect();
    assert_eq!(confirmed.len(), 50);
    assert_eq!(
        outcomes
            .iter()
            .filter(|(_, s)| *s == OrderStatus::Failed)
            .count(),
        150
    );
    assert_eq!(load::<Product>(&bus, book).await.stock, 0);
    // Conservation: exactly the confirmed buyers paid, once.
    for (buyer, status) in &outcomes {
        let expected = if *status == OrderStatus::Confirmed {
            9_300
        } else {
            10_000
        };
        assert_eq!(load::<User>(&bus, *buyer).await.balance_cents, expected);
    }
}

#[tokio::test]
async fn buyers_who_can_afford_three_get_exactly_three() {
    let (_, bus) = bus().await;
    let book = product(&bus, 1_000, 1_000).await;
    let buyers = [
        buyer(&bus, "eve", 3_500).await,
        buyer(&bus, "fay", 3_000).await,
    ];
    let purchases = buyers.iter().flat_map(|buyer| {
        let buyer = *buyer;
        (0..10).map({
            let bus = bus.clone();
            move |_| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    let order = place(
                        &bus,
                        buyer,
                        vec![(book, 1, 1_000)],
                        PaymentInstrument::balance(),
                    )
                    .await;
                    process(&bus).advance(order).await.expect("advances")
                })
            }
        })
    });
    let statuses: Vec<OrderStatus> = futures::future::join_all(purchases)
        .await
        .into_iter()
        .map(|status| status.expect("task"))
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == OrderStatus::Confirmed)
            .count(),
        6
    );
    assert_eq!(load::<User>(&bus, buyers[0]).await.balance_cents, 500);
    assert_eq!(load::<User>(&bus, buyers[1]).await.balance_cents, 0);
    assert_eq!(load::<Product>(&bus, book).await.stock, 994);
}

/// A gateway that is down until told otherwise.
struct FlakyGateway {
    up: AtomicBool,
}

impl PaymentGateway for FlakyGateway {
    fn tokenize(&self, details: PaymentDetails<'_>) -> Result<Tokenized, InvalidPaymentDetails> {
        SimulatedGateway::default().tokenize(details)
    }

    async fn charge(&self, charge: &Charge) -> Result<ChargeOutcome, GatewayUnavailable> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(GatewayUnavailable("connection refused".into()));
        }
        SimulatedGateway::default().charge(charge).await
    }
}

#[tokio::test]
async fn a_process_cut_short_between_steps_finishes_on_the_next_run() {
    let (_, bus) = bus().await;
    let buyer = buyer(&bus, "gus", 0).await;
    let book = product(&bus, 800, 3).await;
    let order = place(
        &bus,
        buyer,
        vec![(book, 1, 800)],
        card("4242 4242 4242 4242"),
    )
    .await;

    let down = OrderProcess::new(
        bus.clone(),
        FlakyGateway {
            up: AtomicBool::new(false),
        },
    );
    assert!(down.advance(order).await.is_err(), "stops at the payment");
    assert_eq!(
        load::<Order>(&bus, order).await.status,
        OrderStatus::StockReserved
    );
    assert_eq!(load::<Product>(&bus, book).await.stock, 2);

    // "After a restart": a new process manager, with the gateway back, run twice at once.
    let up = Arc::new(OrderProcess::new(
        bus.clone(),
        FlakyGateway {
            up: AtomicBool::new(true),
        },
    ));
    let runs = (0..2).map(|_| {
        let up = up.clone();
        tokio::spawn(async move { up.advance(order).await.expect("advances") })
    });
    for status in futures::future::join_all(runs).await {
        assert_eq!(status.expect("task"), OrderStatus::Confirmed);
    }
    assert_eq!(load::<Product>(&bus, book).await.stock, 2, "reserved once");
    let payment = load::<Payment>(&bus, eshop_commands::orders::payment_id(order)).await;
    assert_eq!(payment.status, PaymentStatus::Captured);
}

#[tokio::test]
async fn a_cancelled_order_gets_its_stock_back() {
    let (_, bus) = bus().await;
    let buyer = buyer(&bus, "hal", 5_000).await;
    let book = product(&bus, 1_000, 2).await;
    let order = place(
        &bus,
        buyer,
        vec![(book, 2, 1_000)],
        PaymentInstrument::balance(),
    )
    .await;
    // The process got as far as reserving stock, then the customer cancelled.
    bus.execute::<Product>(
        &book.to_string(),
        ProductCommand::Reserve {
            order_id: order,
            quantity: Quantity::positive(2).expect("valid"),
        },
        &context(),
        None,
    )
    .await
    .expect("reserved");
    bus.execute::<Order>(
        &order.to_string(),
        OrderCommand::Cancel {
            reason: "changed my mind".into(),
        },
        &context(),
        None,
    )
    .await
    .expect("cancelled");
    assert_eq!(load::<Product>(&bus, book).await.stock, 0);

    assert_eq!(
        process(&bus).advance(order).await.expect("advances"),
        OrderStatus::Cancelled
    );
    assert_eq!(load::<Product>(&bus, book).await.stock, 2);
    assert_eq!(load::<User>(&bus, buyer).await.balance_cents, 5_000);
}

/// A mixed run — wallet and card payments, declines, cancellations, scarce stock, all at once —
/// and then the books must balance.
#[tokio::test]
async fn after_a_mixed_run_stock_and_money_are_conserved() {
    use eshop_domain::product::ReservationStatus;
    use std::collections::HashMap;

    let (_, bus) = bus().await;
    let prices = [300_i64, 500, 700];
    let mut products = Vec::new();
    for price in prices {
        products.push((product(&bus, price, 20).await, price));
    }
    let mut buyers = Vec::new();
    for n in 0..20 {
        let balance = if n % 4 == 0 { 800 } else { 6_000 };
        buyers.push((buyer(&bus, &format!("mixed{n}"), balance).await, balance));
    }
    let runs = (0..100).map(|n| {
        let bus = bus.clone();
        let (customer, _) = buyers[n % buyers.len()];
        let lines: Vec<(Uuid, i64, i64)> = (0..1 + n % 2)
            .map(|k| {
                let (id, price) = products[(n + k) % products.len()];
                (id, 1 + (n as i64 + k as i64) % 3, price)
            })
            .collect();
        let payment = match n % 7 {
            0 => card("4000 0000 0000 0002"),
            1 => card("4242 4242 4242 4242"),
            _ => PaymentInstrument::balance(),
        };
        tokio::spawn(async move {
            let order = place(&bus, customer, lines, payment).await;
            if n % 10 == 3 {
                let _ = bus
                    .execute::<Order>(
                        &order.to_string(),
                        OrderCommand::Cancel {
                            reason: "changed my mind".into(),
                        },
                        &context(),
                        None,
                    )
                    .await;
            }
            process(&bus).advance(order).await.expect("advances");
            order
        })
    });
    let orders: Vec<Uuid> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|order| order.expect("task"))
        .collect();

    let mut sold: HashMap<Uuid, i64> = HashMap::new();
    let mut paid_from_wallet: HashMap<Uuid, i64> = HashMap::new();
    let mut unfinished_reservations = Vec::new();
    for order_id in &orders {
        let order = load::<Order>(&bus, *order_id).await;
        assert!(
            order.status.is_terminal(),
            "{order_id} ended {:?}",
            order.status
        );
        for line in &order.lines {
            let product = load::<Product>(&bus, line.product_id).await;
            let reservation = product.reservations.get(order_id).map(|r| r.status);
            if order.status == OrderStatus::Confirmed {
                assert_eq!(reservation, Some(ReservationStatus::Committed));
                *sold.entry(line.product_id).or_default() += line.quantity;
            } else if reservation.is_some_and(|status| status != ReservationStatus::Released) {
                unfinished_reservations.push((*order_id, line.product_id));
            }
        }
        let by_wallet = order
            .payment
            .as_ref()
            .is_some_and(|p| p.method == PaymentMethod::Balance);
        if order.status == OrderStatus::Confirmed && by_wallet {
            *paid_from_wallet
                .entry(order.customer_id.expect("customer"))
                .or_default() += order.total_cents;
        }
    }
    assert!(
        unfinished_reservations.is_empty(),
        "{unfinished_reservations:?}"
    );
    for (product_id, _) in &products {
        let stock = load::<Product>(&bus, *product_id).await.stock;
        assert!(stock >= 0);
        assert_eq!(
            20 - stock,
            sold.get(product_id).copied().unwrap_or_default(),
            "units sold = stock taken"
        );
    }
    for (buyer_id, initial) in &buyers {
        let user = load::<User>(&bus, *buyer_id).await;
        assert!(user.balance_cents >= 0);
        let debited: i64 = user
            .debits
            .values()
            .filter(|d| !d.refunded)
            .map(|d| d.amount_cents)
            .sum();
        let spent = paid_from_wallet.get(buyer_id).copied().unwrap_or_default();
        assert_eq!(debited, spent, "debits − refunds = confirmed wallet orders");
        assert_eq!(initial - user.balance_cents, spent);
    }
    let statuses: Vec<OrderStatus> = {
        let mut statuses = Vec::new();
        for order_id in &orders {
            statuses.push(load::<Order>(&bus, *order_id).await.status);
        }
        statuses
    };
    assert!(statuses.contains(&OrderStatus::Confirmed));
    assert!(statuses.contains(&OrderStatus::Failed));
    assert!(statuses.contains(&OrderStatus::Cancelled));
}

/// A second bus over the same database: a replica whose in-memory aggregates and local queues
/// the first does not see.
fn second_replica(pool: &PgPool) -> Bus {
    let retry = RetryPolicy {
        max_attempts: 50,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    };
    Arc::new(CommandBus::new(PgEventStore::new(pool.clone()), retry))
}

async fn purchase_on(process: &Process, customer_id: Uuid, product_id: Uuid) -> (Uuid, Purchased) {
    let request = PurchaseRequest {
        order_id: Uuid::now_v7(),
        customer_id,
        product_id,
        quantity: 1,
    };
    let purchased = process
        .purchase(&request, &context())
        .await
        .expect("the purchase ends");
    (request.order_id, purchased)
}

/// Each buyer buys one `book` at the same moment, on the replicas in turn; the outcomes in the
/// buyers' order, with their order ids.
async fn purchase_at_once(
    replicas: &[Process],
    buyers: &[Uuid],
    book: Uuid,
) -> Vec<(Uuid, Purchased)> {
    let purchases = buyers.iter().enumerate().map(|(n, buyer)| {
        let replica = replicas[n % replicas.len()].clone();
        let buyer = *buyer;
        tokio::spawn(async move { purchase_on(&replica, buyer, book).await })
    });
    futures::future::join_all(purchases)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("task"))
        .collect()
}

async fn event_types(pool: &PgPool, aggregate_id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(aggregate_id.to_string())
        .fetch_all(pool)
        .await
        .expect("reads")
}

#[tokio::test]
async fn wallet_purchases_on_two_replicas_sell_exactly_the_stock_to_exactly_the_payers() {
    let (pool, bus) = bus().await;
    // One process per replica, as in eshop: purchases of one product on one replica are
    // committed in groups, and the two replicas' groups conflict with each other.
    let replicas = [process(&bus), process(&second_replica(&pool))];
    let book = product(&bus, 700, 50).await;
    let buyers = buyers(&bus, "payer", 200, 10_000).await;
    let outcomes = purchase_at_once(&replicas, &buyers, book).await;

    let confirmed = outcomes
        .iter()
        .filter(|(_, purchased)| purchased.order.status == OrderStatus::Confirmed)
        .count();
    assert_eq!(confirmed, 50);
    assert_eq!(load::<Product>(&bus, book).await.stock, 0);
    for (buyer, (order_id, purchased)) in buyers.iter().zip(&outcomes) {
        let balance = load::<User>(&bus, *buyer).await.balance_cents;
        let stored = event_types(&pool, *order_id).await;
        if purchased.order.status == OrderStatus::Confirmed {
            assert_eq!((balance, purchased.balance_cents), (9_300, 9_300));
            assert_eq!(
                stored,
                [
                    "OrderPlaced",
                    "OrderStockReserved",
                    "OrderPaid",
                    "OrderConfirmed"
                ]
            );
            assert_eq!(
                event_types(&pool, eshop_commands::orders::payment_id(*order_id)).await,
                ["PaymentRequested", "PaymentCaptured"]
            );
        } else {
            assert_eq!(purchased.order.status, OrderStatus::Failed);
            assert_eq!(purchased.order.reason.as_deref(), Some(OUT_OF_STOCK));
            assert_eq!(balance, 10_000);
            assert_eq!(stored, ["OrderPlaced", "OrderFailed"]);
        }
    }
}

#[tokio::test]
async fn wallet_purchases_on_two_replicas_never_overdraw() {
    let (pool, bus) = bus().await;
    // One process per replica, as in eshop: purchases of one product on one replica are
    // committed in groups, and the two replicas' groups conflict with each other.
    let replicas = [process(&bus), process(&second_replica(&pool))];
    let book = product(&bus, 1_000, 1_000).await;
    let buyers = [
        buyer(&bus, "gil", 3_500).await,
        buyer(&bus, "hal", 3_000).await,
    ];
    let purchases = (0..20).map(|n| {
        let replica = replicas[n % 2].clone();
        let buyer = buyers[n / 10];
        tokio::spawn(async move { purchase_on(&replica, buyer, book).await.1 })
    });
    let outcomes: Vec<Purchased> = futures::future::join_all(purchases)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("task"))
        .collect();
    let confirmed = outcomes
        .iter()
        .filter(|purchased| purchased.order.status == OrderStatus::Confirmed)
        .count();
    assert_eq!(confirmed, 6);
    assert!(outcomes.iter().all(|purchased| {
        purchased.order.status == OrderStatus::Confirmed
            || purchased.order.reason.as_deref() == Some(INSUFFICIENT_BALANCE)
    }));
    assert_eq!(load::<User>(&bus, buyers[0]).await.balance_cents, 500);
    assert_eq!(load::<User>(&bus, buyers[1]).await.balance_cents, 0);
    assert_eq!(load::<Product>(&bus, book).await.stock, 994);
}

#[tokio::test]
async fn a_purchase_of_a_product_not_sold_stores_nothing() {
    let (pool, bus) = bus().await;
    let buyer = buyer(&bus, "ida", 10_000).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("counts");
    let request = PurchaseRequest {
        order_id: Uuid::now_v7(),
        customer_id: buyer,
        product_id: Uuid::now_v7(),
        quantity: 1,
    };
    let refused = process(&bus).purchase(&request, &context()).await;
    assert!(
        matches!(refused, Err(PurchaseError::ProductUnavailable)),
        "{refused:?}"
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("counts");
    assert_eq!(after, before);
}

#[tokio::test]
async fn purchases_of_one_product_commit_in_groups_each_purchase_whole() {
    let (pool, bus) = bus().await;
    let shop = process(&bus);
    let book = product(&bus, 700, 100).await;
    let buyers = buyers(&bus, "grouped", 120, 10_000).await;
    let outcomes = purchase_at_once(&[shop], &buyers, book).await;
    let confirmed = outcomes
        .iter()
        .filter(|(_, purchased)| purchased.order.status == OrderStatus::Confirmed)
        .count();
    assert_eq!(confirmed, 100);
    assert_eq!(load::<Product>(&bus, book).await.stock, 0);

    let orders: Vec<String> = outcomes
        .iter()
        .map(|(order, _)| order.to_string())
        .collect();
    // Every purchase's events (order, payment, product, wallet) share one transaction.
    let split: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT purchase FROM (
                 SELECT CASE aggregate_type WHEN 'order' THEN aggregate_id
                             ELSE metadata ->> 'correlation_id' END AS purchase, xid
                   FROM events) AS tagged
              WHERE purchase = ANY($1)
              GROUP BY purchase HAVING count(DISTINCT xid::text) > 1) AS split",
    )
    .bind(&orders)
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!(split, 0, "a purchase was committed in parts");
    // 120 purchases that arrived together took far fewer transactions.
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xid::text) FROM events
          WHERE aggregate_type = 'order' AND aggregate_id = ANY($1)",
    )
    .bind(&orders)
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert!(
        (1..=60).contains(&transactions),
        "{transactions} transactions for 120 purchases"
    );
    // Each buyer paid exactly what their own answer says, once.
    for ((_, purchased), buyer) in outcomes.iter().zip(&buyers) {
        let balance = load::<User>(&bus, *buyer).await.balance_cents;
        assert_eq!(balance, purchased.balance_cents);
        let expected = if purchased.order.status == OrderStatus::Confirmed {
            9_300
        } else {
            10_000
        };
        assert_eq!(balance, expected);
    }
}

#[tokio::test]
async fn a_repeated_purchase_on_a_replica_that_never_saw_it_answers_the_first_outcome() {
    let (pool, bus) = bus().await;
    let buyer = buyer(&bus, "jon", 10_000).await;
    let book = product(&bus, 700, 5).await;
    let request = PurchaseRequest {
        order_id: Uuid::now_v7(),
        customer_id: buyer,
        product_id: book,
        quantity: 1,
    };
    let repeatable = CommandContext::repeatable(Actor::System, "test", &["jon", "key-1"]);
    let first = process(&bus)
        .purchase(&request, &repeatable)
        .await
        .expect("the purchase ends");
    assert_eq!(first.order.status, OrderStatus::Confirmed);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("counts");

    let elsewhere = process(&second_replica(&pool));
    let again = elsewhere
        .purchase(&request, &repeatable)
        .await
        .expect("the repeat ends");
    assert_eq!(again.order.status, OrderStatus::Confirmed);
    assert_eq!(again.balance_cents, 9_300);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("counts");
    assert_eq!(after, stored, "the repeat appended events");
    assert_eq!(load::<Product>(&bus, book).await.stock, 4);
}

use cqrs_es::test::TestFramework;

use super::*;
use crate::values::MAX_STOCK;

type ProductTest = TestFramework<Product>;

fn date(raw: &str) -> NaiveDate {
    raw.parse().expect("valid date")
}

fn new_book() -> NewProduct {
    NewProduct {
        title: Text::title("Dune").expect("valid"),
        author: Text::author("Frank Herbert").expect("valid"),
        published_date: date("1965-08-01"),
        description: Text::description("Spice.").expect("valid"),
        price: Price::parse(1999).expect("valid"),
        stock: Quantity::stock(10).expect("valid"),
        category: Text::category("science-fiction").expect("valid"),
        category_id: None,
    }
}

fn added() -> ProductEvent {
    ProductEvent::ProductAdded {
        title: "Dune".into(),
        author: "Frank Herbert".into(),
        published_date: date("1965-08-01"),
        description: "Spice.".into(),
        price_cents: 1999,
        stock: 10,
        category: "science-fiction".into(),
        category_id: None,
    }
}

fn restock(units: i64) -> ProductCommand {
    ProductCommand::Restock(Quantity::positive(units).expect("valid"))
}

#[test]
fn add_a_book() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(ProductCommand::Add(new_book()))
        .then_expect_events(vec![added()]);
}

#[test]
fn adding_twice_is_refused() {
    ProductTest::with(())
        .given(vec![added()])
        .when(ProductCommand::Add(new_book()))
        .then_expect_error(ProductError::AlreadyExists);
}

#[test]
fn update_records_changed_details_and_price_separately() {
    ProductTest::with(())
        .given(vec![added()])
        .when(ProductCommand::Update(ProductChanges {
            title: Some(Text::title("Dune Messiah").expect("valid")),
            author: Some(Text::author("Frank Herbert").expect("valid")),
            price: Some(Price::parse(2499).expect("valid")),
            ..ProductChanges::default()
        }))
        .then_expect_events(vec![
            ProductEvent::ProductDetailsUpdated(DetailsChanged {
                title: Some("Dune Messiah".into()),
                ..DetailsChanged::default()
            }),
            ProductEvent::ProductPriceChanged {
                old_price_cents: 1999,
                price_cents: 2499,
            },
        ]);
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    ProductTest::with(())
        .given(vec![added()])
        .when(ProductCommand::Update(ProductChanges {
            price: Some(Price::parse(1999).expect("valid")),
            published_date: Some(date("1965-08-01")),
            ..ProductChanges::default()
        }))
        .then_expect_events(vec![]);
}

#[test]
fn restock_adds_to_stock() {
    ProductTest::with(())
        .given(vec![added()])
        .when(restock(5))
        .then_expect_events(vec![ProductEvent::ProductRestocked {
            quantity: 5,
            stock: 15,
        }]);
}

#[test]
fn restock_cannot_pass_the_stock_limit() {
    ProductTest::with(())
        .given(vec![added()])
        .when(restock(MAX_STOCK))
        .then_expect_error(ProductError::StockLimit);
}

#[test]
fn remove_a_product() {
    ProductTest::with(())
        .given(vec![added()])
        .when(ProductCommand::Remove)
        .then_expect_events(vec![ProductEvent::ProductRemoved]);
}

#[test]
fn a_removed_or_missing_product_refuses_changes() {
    for given in [vec![], vec![added(), ProductEvent::ProductRemoved]] {
        for command in [
            restock(1),
            ProductCommand::Remove,
            ProductCommand::Update(ProductChanges {
                title: Some(Text::title("X").expect("valid")),
                ..ProductChanges::default()
            }),
        ] {
            ProductTest::with(())
                .given(given.clone())
                .when(command)
                .then_expect_error(ProductError::NotFound);
        }
    }
}

fn order(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn reserve(n: u128, units: i64) -> ProductCommand {
    ProductCommand::Reserve {
        order_id: order(n),
        quantity: Quantity::positive(units).expect("valid"),
    }
}

fn reserved(n: u128, quantity: i64, stock: i64) -> ProductEvent {
    ProductEvent::StockReserved {
        order_id: order(n),
        quantity,
        stock,
    }
}

#[test]
fn reserving_takes_units_out_of_stock() {
    ProductTest::with(())
        .given(vec![added()])
        .when(reserve(1, 4))
        .then_expect_events(vec![reserved(1, 4, 6)]);
}

#[test]
fn stock_never_goes_below_zero() {
    ProductTest::with(())
        .given(vec![added(), reserved(1, 8, 2)])
        .when(reserve(2, 3))
        .then_expect_error(ProductError::InsufficientStock { available: 2 });
}

#[test]
fn an_order_reserves_at_most_once() {
    ProductTest::with(())
        .given(vec![added(), reserved(1, 4, 6)])
        .when(reserve(1, 4))
        .then_expect_events(vec![]);
    // Even after its reservation was released.
    ProductTest::with(())
        .given(vec![
            added(),
            reserved(1, 4, 6),
            ProductEvent::StockReleased {
                order_id: order(1),
                quantity: 4,
                stock: 10,
            },
        ])
        .when(reserve(1, 4))
        .then_expect_events(vec![]);
}

#[test]
fn releasing_puts_the_units_back_once() {
    let released = ProductEvent::StockReleased {
        order_id: order(1),
        quantity: 4,
        stock: 10,
    };
    ProductTest::with(())
        .given(vec![added(), reserved(1, 4, 6)])
        .when(ProductCommand::Release { order_id: order(1) })
        .then_expect_events(vec![released.clone()]);
    ProductTest::with(())
        .given(vec![added(), reserved(1, 4, 6), released])
        .when(ProductCommand::Release { order_id: order(1) })
        .then_expect_events(vec![]);
    ProductTest::with(())
        .given(vec![added()])
        .when(ProductCommand::Release { order_id: order(2) })
        .then_expect_events(vec![]);
}

#[test]
fn committing_a_reservation_sells_it_and_it_can_no_longer_be_released() {
    let committed = ProductEvent::ReservationCommitted {
        order_id: order(1),
        quantity: 4,
    };
    ProductTest::with(())
        .given(vec![added(), reserved(1, 4, 6)])
        .when(ProductCommand::CommitReservation { order_id: order(1) })
        .then_expect_events(vec![committed.clone()]);
    ProductTest::with(())
        .given(vec![added(), reserved(1, 4, 6), committed.clone()])
        .when(ProductCommand::Release { order_id: order(1) })
        .then_expect_events(vec![]);
    ProductTest::with(())
        .given(vec![added(), reserved(1, 4, 6), committed])
        .when(ProductCommand::CommitReservation { order_id: order(1) })
        .then_expect_events(vec![]);
    ProductTest::with(())
        .given(vec![added()])
        .when(ProductCommand::CommitReservation { order_id: order(3) })
        .then_expect_error(ProductError::NoReservation);
}

#[test]
fn a_removed_product_cannot_be_reserved() {
    ProductTest::with(())
        .given(vec![added(), ProductEvent::ProductRemoved])
        .when(reserve(1, 1))
        .then_expect_error(ProductError::NotFound);
}

fn added_under(category_id: Option<Uuid>) -> ProductEvent {
    match added() {
        ProductEvent::ProductAdded {
            title,
            author,
            published_date,
            description,
            price_cents,
            stock,
            category,
            ..
        } => ProductEvent::ProductAdded {
            title,
            author,
            published_date,
            description,
            price_cents,
            stock,
            category,
            category_id,
        },
        other => other,
    }
}

#[test]
fn a_product_is_filed_under_a_category_and_moves_to_another() {
    let shelf = Uuid::from_u128(7);
    let other = Uuid::from_u128(8);
    ProductTest::with(())
        .given_no_previous_events()
        .when(ProductCommand::Add(NewProduct {
            category_id: Some(shelf),
            ..new_book()
        }))
        .then_expect_events(vec![added_under(Some(shelf))]);
    ProductTest::with(())
        .given(vec![added_under(Some(shelf))])
        .when(ProductCommand::Update(ProductChanges {
            category_id: Some(other),
            ..ProductChanges::default()
        }))
        .then_expect_events(vec![ProductEvent::ProductDetailsUpdated(DetailsChanged {
            category_id: Some(other),
            ..DetailsChanged::default()
        })]);
    ProductTest::with(())
        .given(vec![added_under(Some(shelf))])
        .when(ProductCommand::Update(ProductChanges {
            category_id: Some(shelf),
            ..ProductChanges::default()
        }))
        .then_expect_events(vec![]);
}

#[test]
fn events_stored_before_the_category_tree_load_without_a_category_id() {
    let stored = serde_json::json!({"type": "ProductAdded", "data": {"title": "Dune",
        "author": "Frank Herbert", "published_date": "1965-08-01", "description": "Spice.",
        "price_cents": 1999, "stock": 10, "category": "science-fiction"}});
    let event: ProductEvent = serde_json::from_value(stored.clone()).expect("loads");
    assert_eq!(event, added_under(None));
    // And it is stored the same way again: no category_id appears.
    assert_eq!(serde_json::to_value(&event).expect("json"), stored);
}

//! The read models a process builds. Adding one: a module with its record (`ReadModel`, in
//! `eshop-projections`) and its table (`Table` or `JsonTable`), and one line in `shop`.

use futures::future::BoxFuture;

use eshop_projections::calendar::CalendarRecord;
use eshop_projections::order::OrderRecord;
use eshop_projections::payment::PaymentRecord;
use eshop_projections::product::ProductRecord;
use eshop_projections::shopping::{CartRecord, ReviewRecord, WishlistRecord};
use eshop_projections::user::UserRecord;

use super::Table;
use crate::projector::{Projector, ProjectorContext};
use crate::shutdown::Shutdown;

/// A registered read model: its name and how to run its builder.
#[derive(Clone, Copy)]
pub struct Registered {
    pub name: &'static str,
    run: fn(ProjectorContext, Shutdown) -> BoxFuture<'static, ()>,
}

impl Registered {
    /// Builds the read model until shutdown (see `Projector::run`).
    pub fn run(&self, context: ProjectorContext, shutdown: Shutdown) -> BoxFuture<'static, ()> {
        (self.run)(context, shutdown)
    }
}

fn run<R: Table>(context: ProjectorContext, shutdown: Shutdown) -> BoxFuture<'static, ()> {
    Box::pin(Projector::<R>::new(context).run(shutdown))
}

/// A list of read models.
#[derive(Clone, Default)]
pub struct ReadModels(Vec<Registered>);

impl ReadModels {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with<R: Table>(mut self) -> Self {
        self.0.push(Registered {
            name: R::NAME,
            run: run::<R>,
        });
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &Registered> {
        self.0.iter()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|registered| registered.name).collect()
    }
}

/// Every read model the shop keeps.
pub fn shop() -> ReadModels {
    ReadModels::new()
        .with::<ProductRecord>()
        .with::<UserRecord>()
        .with::<OrderRecord>()
        .with::<PaymentRecord>()
        .with::<CartRecord>()
        .with::<WishlistRecord>()
        .with::<ReviewRecord>()
        .with::<CalendarRecord>()
}

//! The read models a process builds. Adding one: a module with its record (`ReadModel`, in
//! `eshop-projections`) and its table (`Table` or `JsonTable`), and one line in `shop`.
//!
//! Each entry also says how the read model is rebuilt without downtime: a `Table` gets the
//! shadow-table rebuild (`rebuild::shadow_tables`); a read model kept elsewhere (a search
//! index, say) registers with `with_unit` and its own rebuild (build a new index beside the
//! live one from the store, then switch readers to it).

use futures::future::BoxFuture;
use tokio::sync::watch;

use eshop_projections::calendar::CalendarRecord;
use eshop_projections::category::CategoryRecord;
use eshop_projections::movie::MovieRecord;
use eshop_projections::order::OrderRecord;
use eshop_projections::payment::PaymentRecord;
use eshop_projections::product::ProductRecord;
use eshop_projections::shopping::{CartRecord, ReviewRecord, WishlistRecord};
use eshop_projections::user::UserRecord;

use super::rebuild::{self, RebuildContext, RebuildError, RebuildProgress, Rebuilt};
use super::Table;
use crate::projector::{Projector, ProjectorContext};
use crate::shutdown::Shutdown;

/// Builds a read model until shutdown.
pub type RunFn = fn(ProjectorContext, Shutdown) -> BoxFuture<'static, ()>;
/// Rebuilds a read model from the store beside the live one and swaps it in, telling how far
/// it got on the channel.
pub type RebuildFn = fn(
    RebuildContext,
    watch::Sender<RebuildProgress>,
) -> BoxFuture<'static, Result<Rebuilt, RebuildError>>;

/// A registered read model: its name, how to run its builder and how to rebuild it.
#[derive(Clone, Copy)]
pub struct Registered {
    pub name: &'static str,
    run: RunFn,
    rebuild: RebuildFn,
}

impl Registered {
    /// Builds the read model until shutdown (see `Projector::run`).
    pub fn run(&self, context: ProjectorContext, shutdown: Shutdown) -> BoxFuture<'static, ()> {
        (self.run)(context, shutdown)
    }

    /// Rebuilds it without downtime (see `rebuild`).
    pub fn rebuild(
        &self,
        context: RebuildContext,
        progress: watch::Sender<RebuildProgress>,
    ) -> BoxFuture<'static, Result<Rebuilt, RebuildError>> {
        (self.rebuild)(context, progress)
    }
}

fn run<R: Table>(context: ProjectorContext, shutdown: Shutdown) -> BoxFuture<'static, ()> {
    Box::pin(Projector::<R>::new(context).run(shutdown))
}

fn rebuild_table<R: Table>(
    context: RebuildContext,
    progress: watch::Sender<RebuildProgress>,
) -> BoxFuture<'static, Result<Rebuilt, RebuildError>> {
    Box::pin(rebuild::shadow_tables::<R>(context, progress))
}

/// A list of read models.
#[derive(Clone, Default)]
pub struct ReadModels(Vec<Registered>);

impl ReadModels {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with<R: Table>(self) -> Self {
        self.with_unit(R::NAME, run::<R>, rebuild_table::<R>)
    }

    /// A read model with its own builder and rebuild (one not kept in a `Table`).
    pub fn with_unit(mut self, name: &'static str, run: RunFn, rebuild: RebuildFn) -> Self {
        self.0.push(Registered { name, run, rebuild });
        self
    }

    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.0.iter().find(|registered| registered.name == name)
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
        .with::<MovieRecord>()
        .with::<CalendarRecord>()
        .with::<CategoryRecord>()
}

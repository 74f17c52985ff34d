//! `eshop relay replay`: republishes stored history to a separate subject prefix and stream for
//! a consumer (see `eshop_infra::replay`), with a progress bar when stderr is a terminal.

use std::io::IsTerminal;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use eshop_infra::nats::{self, EventSubjects};
use eshop_infra::replay::{Replay, ReplayRequest, ReplayTarget};
use eshop_infra::{connect, DatabaseSettings};

use crate::server::BoxError;

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The first global position to republish (inclusive).
    #[arg(long, default_value_t = 1)]
    pub from_position: i64,

    /// Only events of this aggregate type (`order`, `user`, …).
    #[arg(long)]
    pub aggregate_type: Option<String>,

    /// Subjects become `<PREFIX>.<aggregate_type>.<aggregate_id>`; must not reach the live
    /// stream's subjects.
    #[arg(long)]
    pub subject_prefix: String,

    /// The stream that keeps the replay (created if missing); default `REPLAY_<PREFIX>`.
    #[arg(long)]
    pub stream: Option<String>,

    /// Events read and in flight at once.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: i64,

    /// The event store.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/eshop"
    )]
    pub database_url: String,

    /// NATS with JetStream.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// The live stream's prefix (`ESHOP_NATS_PREFIX`), so the replay can stay clear of it.
    #[arg(long, env = "ESHOP_NATS_PREFIX", default_value = "")]
    pub nats_prefix: String,
}

pub async fn run(args: ReplayArgs) -> Result<(), BoxError> {
    let live = EventSubjects::new(&args.nats_prefix);
    let target = ReplayTarget::new(&args.subject_prefix, args.stream.as_deref(), &live)?;
    let pool = connect(&DatabaseSettings {
        url: args.database_url.clone(),
        max_connections: 2,
    })
    .await?;
    let jetstream = nats::connect(&args.nats_url).await?;
    let replay = Replay::prepare(
        pool,
        jetstream,
        target.clone(),
        ReplayRequest {
            from_position: args.from_position,
            aggregate_type: args.aggregate_type.clone(),
            batch_size: args.batch_size,
        },
    )
    .await?;
    let total = replay.total().await?;
    let bar = progress_bar(total);
    let summary = replay.run(|published| bar.set_position(published)).await?;
    bar.finish_and_clear();
    println!(
        "replayed {} events (from position {}{}) to stream {} on {}",
        summary.published,
        args.from_position,
        args.aggregate_type
            .as_deref()
            .map(|t| format!(", {t} only"))
            .unwrap_or_default(),
        target.stream_name(),
        target.subjects()
    );
    Ok(())
}

/// A bar on stderr when it is a terminal; nothing otherwise (a log or a pipe gets the final
/// line only).
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {pos}/{len} events ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

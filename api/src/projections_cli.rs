//! `eshop projections rebuild NAME|--all`: rebuilds read models from the event store beside
//! the live ones and swaps them in (see `eshop_infra::read_models::rebuild`), straight against
//! the database while the shop keeps running; a progress bar on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use eshop_infra::cache::Cache;
use eshop_infra::read_models::rebuild::{
    Phase, RebuildContext, RebuildProgress, RebuildSettings, Rebuilt,
};
use eshop_infra::read_models::registry;
use eshop_infra::{connect, DatabaseSettings};

use crate::audit_cli::{BoxError, Database};

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuild a read model (or every one) from the event store and swap it in without
    /// downtime; prints what each took.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The read model (`products`, `users`, `orders`, `payments`, `carts`, `wishlists`,
    /// `reviews`, `movies`, `calendar_events`; `search`: this process's search index in
    /// ESHOP_SEARCH_DIR, deleted and built again from the stream; stop the eshop using it first).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Every read model, one after the other.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub database: Database,
    /// The cache to drop after each swap.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, env = "ESHOP_REDIS_PREFIX", default_value = "eshop:")]
    pub redis_prefix: String,
    /// Events applied per step.
    #[arg(long, default_value_t = RebuildSettings::default().page)]
    pub page: i64,
}

pub async fn run(command: ProjectionsCommand) -> Result<(), BoxError> {
    let ProjectionsCommand::Rebuild(args) = command;
    let result = if args.name.as_deref() == Some("search") {
        rebuild_search().await
    } else {
        rebuild(args).await
    };
    if let Err(error) = &result {
        eprintln!("eshop projections: {error}");
    }
    result
}

/// The search index is this process's own, on local disk: it takes the whole configuration
/// (`ESHOP_SEARCH_DIR`, the stream) from the environment, as `serve` would.
async fn rebuild_search() -> Result<(), BoxError> {
    #[derive(clap::Parser)]
    struct FromEnvironment {
        #[command(flatten)]
        config: crate::config::Config,
    }
    let FromEnvironment { config } = <FromEnvironment as clap::Parser>::try_parse_from(["eshop"])?;
    crate::search_cli::rebuild("search", &config).await
}

async fn rebuild(args: RebuildArgs) -> Result<(), BoxError> {
    let models = registry::shop();
    let names: Vec<&str> = match &args.name {
        Some(name) => vec![
            models
                .get(name)
                .ok_or_else(|| {
                    format!(
                        "no read model is called {name:?} (one of: {})",
                        models.names().join(", ")
                    )
                })?
                .name,
        ],
        None => models.names(),
    };
    let pool = connect(&DatabaseSettings {
        url: args.database.database_url.clone(),
        max_connections: 4,
    })
    .await?;
    let cache = Cache::new(&args.redis_url, &args.redis_prefix, Duration::from_secs(60))?;
    let context = RebuildContext {
        pool,
        cache: Some(Arc::new(cache)),
        settings: RebuildSettings {
            page: args.page.max(1),
            ..RebuildSettings::default()
        },
    };
    let mut done = Vec::new();
    for name in names {
        let Some(model) = models.get(name) else {
            continue;
        };
        let (sender, receiver) = watch::channel(RebuildProgress::START);
        let bar = progress_bar(name);
        let showing = tokio::spawn(show(receiver, bar.clone()));
        let outcome = model.rebuild(context.clone(), sender).await;
        let _ = showing.await;
        bar.finish_and_clear();
        done.push(outcome?);
    }
    print_table(&done);
    Ok(())
}

fn progress_bar(name: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} {msg:9} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} events, {per_sec}, {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn show(mut progress: watch::Receiver<RebuildProgress>, bar: ProgressBar) {
    while progress.changed().await.is_ok() {
        let now = *progress.borrow_and_update();
        bar.set_length(now.events_total);
        bar.set_position(now.events_done);
        bar.set_message(format!("{:?}", now.phase).to_lowercase());
        if matches!(now.phase, Phase::Done | Phase::Failed) {
            break;
        }
    }
}

fn print_table(done: &[Rebuilt]) {
    println!("| read model | events | rows | seconds | events/s | rows ahead at the swap |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for rebuilt in done {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} |",
            rebuilt.name,
            rebuilt.events,
            rebuilt.rows,
            rebuilt.seconds,
            rebuilt.events_per_second,
            rebuilt.rows_ahead
        );
    }
}

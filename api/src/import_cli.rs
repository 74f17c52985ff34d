//! `eshop import calendar FILE|URL`: imports a calendar feed straight into the event store (no
//! server needed; running servers' projections pick the events up from the relay), with a
//! progress bar on a terminal, and prints `{created, revised, unchanged, skipped}` as JSON.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use eshop_commands::calendar::{import, parse};
use eshop_commands::{Actor, CommandBus, RetryPolicy};
use eshop_infra::{connect, DatabaseSettings, PgEventStore};

use crate::audit_cli::{BoxError, Database};
use crate::config::FeedFetchSettings;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// An economic calendar feed (a JSON array, or CSV with a header row): new entries are
    /// created, changed ones revised, unchanged ones left alone.
    Calendar(CalendarArgs),
}

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// A file path, or an http(s) URL.
    pub source: String,
    #[command(flatten)]
    pub database: Database,
    /// The zone of times given without one (an IANA name).
    #[arg(long, env = "ESHOP_TZ", default_value = "UTC")]
    pub tz: String,
    #[command(flatten)]
    pub fetch: FeedFetchSettings,
}

pub async fn run(command: ImportCommand) -> Result<(), BoxError> {
    let ImportCommand::Calendar(args) = command;
    let result = calendar(args).await;
    if let Err(error) = &result {
        eprintln!("eshop import: {error}");
    }
    result
}

async fn calendar(args: CalendarArgs) -> Result<(), BoxError> {
    let zone: chrono_tz::Tz = args
        .tz
        .parse()
        .map_err(|_| format!("--tz {} is not an IANA time zone", args.tz))?;
    let text = args.fetch.reader()?.read(&args.source).await?;
    let rows = parse(&text, zone.name())?;
    let pool = connect(&DatabaseSettings {
        url: args.database.database_url.clone(),
        max_connections: 4,
    })
    .await?;
    let bus = CommandBus::new(PgEventStore::new(pool), RetryPolicy::default());
    let bar = progress_bar(rows.len() as u64);
    let request_id = format!("cli-import-{}", uuid::Uuid::now_v7());
    let report = import(&bus, rows, Actor::System, &request_id, |done, _| {
        bar.set_position(done as u64)
    })
    .await?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} rows, {per_sec}, {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

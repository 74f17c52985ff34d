//! `eshop import movielens DIR`: imports `movies.csv` (required), `ratings.csv`, `tags.csv` and
//! `links.csv` from DIR straight into the event store (no server needed; running servers'
//! projections pick the events up), with a progress bar on a terminal. Prints the report as
//! JSON and the rate on stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use eshop_commands::movies::movielens::{self, MovieLensFiles};
use eshop_commands::movies::{ImportReport, Movies};
use eshop_commands::{Actor, CommandBus, RetryPolicy};
use eshop_infra::{connect, migrate, DatabaseSettings, PgEventStore};

use crate::server::BoxError;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// MovieLens CSV files (the published format) into the movies catalog. Importing the same
    /// files again appends nothing.
    Movielens(MovieLensArgs),
    /// An economic calendar feed (a JSON array, or CSV with a header row) from a file or an
    /// http URL: new entries are created, changed ones revised, unchanged ones left alone.
    Calendar(crate::import_cli::CalendarArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MovieLensArgs {
    /// The folder holding movies.csv and any of ratings.csv, tags.csv, links.csv.
    pub dir: PathBuf,
    /// The event store's Postgres URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/eshop"
    )]
    pub database_url: String,
}

/// The files of `dir`; `movies.csv` must be there.
pub fn read_files(dir: &Path) -> Result<MovieLensFiles, BoxError> {
    let optional = |name: &str| -> Result<Option<String>, BoxError> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(format!("{}: {error}", dir.join(name).display()).into()),
        }
    };
    let movies =
        optional("movies.csv")?.ok_or_else(|| format!("{} has no movies.csv", dir.display()))?;
    Ok(MovieLensFiles {
        movies,
        ratings: optional("ratings.csv")?,
        tags: optional("tags.csv")?,
        links: optional("links.csv")?,
    })
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

/// Imports the files of `dir` through `bus`; returns the report and how long it took.
pub async fn import_dir(
    bus: &CommandBus<PgEventStore>,
    dir: &Path,
    bar: &ProgressBar,
) -> Result<(ImportReport, Duration), BoxError> {
    let files = read_files(dir)?;
    let started = Instant::now();
    let plan = movielens::plan(&files)?;
    bar.set_length(plan.rows);
    let report = Movies::new(bus)
        .import(plan, bus.store(), Actor::System, "cli-import", |progress| {
            bar.set_position(progress.done)
        })
        .await?;
    Ok((report, started.elapsed()))
}

pub async fn run(command: ImportCommand) -> Result<(), BoxError> {
    let args = match command {
        ImportCommand::Movielens(args) => args,
        ImportCommand::Calendar(args) => {
            return crate::import_cli::run(crate::import_cli::ImportCommand::Calendar(args)).await
        }
    };
    let pool = connect(&DatabaseSettings {
        url: args.database_url.clone(),
        max_connections: 4,
    })
    .await?;
    migrate(&pool).await?;
    let bus = CommandBus::new(PgEventStore::new(pool), RetryPolicy::default());
    let bar = progress_bar(0);
    let (report, took) = import_dir(&bus, &args.dir, &bar).await?;
    bar.finish_and_clear();
    let rows = bar.length().unwrap_or_default();
    eprintln!(
        "imported {rows} rows in {:.2}s ({:.0} rows/s, {} events)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64().max(1e-9),
        report.events
    );
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

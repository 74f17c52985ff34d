//! `eshop audit export` and `eshop audit verify`: the auditors' tools on the command line,
//! straight against the event store (no server needed).

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use eshop_infra::audit::export::{self, Export, ExportRange, Until};
use eshop_infra::audit::verify;
use eshop_infra::{connect, DatabaseSettings};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Args)]
pub struct Database {
    /// The event store's Postgres URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/eshop"
    )]
    pub database_url: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write every event as NDJSON (one envelope per line, as on NATS) in commit order, with a
    /// progress bar on a terminal. With `--after` the file is appended to: pass the position
    /// the previous run printed to resume it.
    Export {
        #[command(flatten)]
        database: Database,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// The position of the last event already exported (0: from the start).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Stop after this position (in commit order), or at this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Only events of this aggregate type.
        #[arg(long)]
        aggregate_type: Option<String>,
    },
    /// Recompute the hash chain; print the result as JSON. Exits non-zero naming each altered,
    /// missing or unsealed event.
    Verify {
        #[command(flatten)]
        database: Database,
    },
}

pub async fn run(command: AuditCommand) -> Result<(), BoxError> {
    let result = match command {
        AuditCommand::Export {
            database,
            out,
            after,
            until,
            aggregate_type,
        } => {
            let until = until.as_deref().map(parse_until).transpose()?;
            export_to_file(
                &database,
                out,
                ExportRange {
                    after,
                    until,
                    aggregate_type,
                },
            )
            .await
        }
        AuditCommand::Verify { database } => verify_chain(&database).await,
    };
    if let Err(error) = &result {
        eprintln!("eshop audit: {error}");
    }
    result
}

fn parse_until(raw: &str) -> Result<Until, BoxError> {
    if let Ok(position) = raw.parse::<i64>() {
        return Ok(Until::Position(position));
    }
    Ok(Until::Time(
        chrono::DateTime::parse_from_rfc3339(raw)
            .map_err(|_| "--until must be a position or an RFC 3339 time")?
            .with_timezone(&chrono::Utc),
    ))
}

async fn pool(database: &Database) -> Result<sqlx::PgPool, BoxError> {
    Ok(connect(&DatabaseSettings {
        url: database.database_url.clone(),
        max_connections: 4,
    })
    .await?)
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} events, {per_sec}, {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn export_to_file(
    database: &Database,
    out: PathBuf,
    range: ExportRange,
) -> Result<(), BoxError> {
    let pool = pool(database).await?;
    let resuming = range.after > 0;
    let mut export = Export::start(&pool, range).await?;
    let bar = progress_bar(u64::try_from(export.remaining().await?).unwrap_or_default());
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resuming)
        .truncate(!resuming)
        .open(&out)?;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut lines = Vec::with_capacity(4 << 20);
    let mut exported = 0_u64;
    loop {
        let page = export.next_page().await?;
        if page.is_empty() {
            break;
        }
        lines.clear();
        export::write_lines(&mut lines, &page)?;
        file.write_all(&lines)?;
        exported += page.len() as u64;
        bar.inc(page.len() as u64);
    }
    file.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "exported {exported} events to {}; resume with --after {}",
        out.display(),
        export.last_position()
    );
    Ok(())
}

async fn verify_chain(database: &Database) -> Result<(), BoxError> {
    let pool = pool(database).await?;
    let verification = verify::verify(&pool).await?;
    println!("{}", serde_json::to_string_pretty(&verification)?);
    if verification.ok {
        return Ok(());
    }
    for mismatch in &verification.mismatches {
        eprintln!(
            "position {}: {} ({})",
            mismatch.position,
            serde_json::to_value(mismatch.reason)?
                .as_str()
                .unwrap_or_default(),
            mismatch.detail
        );
    }
    Err(format!(
        "the hash chain does not verify: {} mismatches",
        verification.mismatch_count
    )
    .into())
}

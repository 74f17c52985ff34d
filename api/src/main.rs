use clap::{Parser, Subcommand};

use eshop_api::config::Config;
use eshop_api::{server, telemetry};

/// mimalloc instead of the system allocator: a request makes many small allocations, and
/// glibc's malloc and free took about an eighth of a cached read's time (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "eshop", version, about = "Event-sourced commerce backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and every background worker (`--role` to run one of the two).
    Serve(Config),
    /// Create the database if missing and apply migrations, then exit.
    Migrate(Config),
    /// Print generated documentation.
    Docs {
        #[command(subcommand)]
        document: Document,
    },
    /// Auditors' tools: export the history, verify its hash chain.
    Audit {
        #[command(subcommand)]
        command: eshop_api::audit_cli::AuditCommand,
    },
    /// Work with the read models.
    Projections {
        #[command(subcommand)]
        action: ProjectionsAction,
    },
    /// Work with the relay's output.
    Relay {
        #[command(subcommand)]
        action: RelayAction,
    },
}

#[derive(Subcommand)]
enum ProjectionsAction {
    /// Delete a read model and build it again from the stream (`search`: this process's
    /// search index, in ESHOP_SEARCH_DIR; stop the eshop that uses it first).
    Rebuild {
        name: String,
        #[command(flatten)]
        config: Config,
    },
}

#[derive(Subcommand)]
enum RelayAction {
    /// Republish stored history to a separate subject prefix and stream (never the live one).
    Replay(eshop_api::replay::ReplayArgs),
}

#[derive(Subcommand)]
enum Document {
    /// docs/events.md: the NATS stream and every event type with its JSON Schema.
    Events,
    /// docs/asyncapi.json: the AsyncAPI 3.0 document of the NATS channels.
    Asyncapi,
    /// Writes each event type's payload schema into DIR (docs/schemas), refusing a change that
    /// breaks consumers without a new event version and an upcaster.
    Schemas {
        #[arg(default_value = "docs/schemas")]
        dir: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(config) => {
            telemetry::init(config.log_json);
            server::serve(config).await
        }
        Command::Migrate(config) => {
            telemetry::init(config.log_json);
            server::migrate_only(&config).await
        }
        Command::Docs {
            document: Document::Events,
        } => {
            print!("{}", eshop_api::docs::events_markdown());
            Ok(())
        }
        Command::Docs {
            document: Document::Asyncapi,
        } => {
            print!("{}", eshop_api::docs::asyncapi::document_text(""));
            Ok(())
        }
        Command::Docs {
            document: Document::Schemas { dir },
        } => eshop_api::docs::schemas::write_current(&dir)
            .map(|written| {
                for key in written {
                    eprintln!("wrote {}", dir.join(key.relative_path()).display());
                }
            })
            .map_err(Into::into),
        Command::Relay {
            action: RelayAction::Replay(args),
        } => {
            telemetry::init(false);
            eshop_api::replay::run(args).await
        }
        Command::Projections {
            action: ProjectionsAction::Rebuild { name, config },
        } => {
            telemetry::init(config.log_json);
            eshop_api::search_cli::rebuild(&name, &config).await
        }
        Command::Audit { command } => eshop_api::audit_cli::run(command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error_chain(&*error), "eshop stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! The `keyward` binary: the service, and operator commands over its store.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use keyward_core::ids::OrgId;
use keyward_core::store::{AuditQuery, Store};
use keyward_server::audit::{Format, export, verify};
use keyward_server::config::{Config, ServeArgs};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "keyward", version, about = "API keys for people and machines: issue, roll, lock, verify, audit.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Read, export and verify the audit log, straight from the store.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-walk the hash chain; exit 1 and name the first entry that does not fit.
    Verify {
        #[command(flatten)]
        filter: AuditFilter,
    },
    /// Print matching entries, oldest first, as NDJSON (default) or CSV.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
        /// `ndjson` or `csv`.
        #[arg(long, default_value = "ndjson")]
        format: String,
    },
}

/// Where an operator command finds the store: the server's settings that locate it, and no others.
#[derive(Args)]
struct StoreArgs {
    /// The server's data directory [default: ./keyward-data].
    #[arg(long, env = "KEYWARD_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Store URL: `sqlite://PATH` [default: SQLite in the data dir].
    #[arg(long, env = "KEYWARD_DATABASE_URL")]
    database_url: Option<String>,
    /// The server's TOML configuration file.
    #[arg(long, env = "KEYWARD_CONFIG")]
    config: Option<std::path::PathBuf>,
}

impl From<StoreArgs> for ServeArgs {
    fn from(a: StoreArgs) -> Self {
        ServeArgs { data_dir: a.data_dir, database_url: a.database_url, config: a.config, ..ServeArgs::default() }
    }
}

#[derive(Args)]
struct AuditFilter {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this org.
    #[arg(long)]
    org: Option<String>,
    /// Only this action (e.g. key.roll).
    #[arg(long)]
    action: Option<String>,
    /// Only entries about this target (e.g. a key id).
    #[arg(long)]
    target: Option<String>,
    /// Only entries by this actor (a user id).
    #[arg(long)]
    actor: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries at or before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    to: Option<chrono::DateTime<chrono::Utc>>,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// Logs go to stderr through a writer thread, so no request waits on a write. When
/// stderr falls behind by more than the writer's buffer (128,000 lines), lines are
/// dropped rather than stalling requests. Lines are flushed when the guard drops.
fn init_logging(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

fn load_config(args: ServeArgs) -> Config {
    match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyward: {e}");
            std::process::exit(2);
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            let config = load_config(args);
            let _flush_on_exit = init_logging(config.json_logs);
            keyward_server::serve(config).await
        }
        Command::Audit { command } => audit(command).await,
    };
    if let Err(e) = result {
        eprintln!("keyward: {e:#}");
        std::process::exit(1);
    }
}

async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    let (filter, format) = match command {
        AuditCommand::Verify { filter } => (filter, None),
        AuditCommand::Export { filter, format } => (filter, Some(format)),
    };
    let config = load_config(filter.store.into());
    if !config.data_dir.exists() {
        anyhow::bail!("no data directory at {}", config.data_dir.display());
    }
    let sqlite = keyward_server::open_store(&config).await?;
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let org = filter.org.map(OrgId::from_trusted);
    let outcome = match format {
        None => {
            let report = verify(store.as_ref(), org.as_ref()).await?;
            match report.first_bad_seq {
                None => {
                    println!("ok: {} entries checked, the chain is intact", report.checked);
                    Ok(())
                }
                Some(seq) => {
                    println!("broken: entry {seq} does not fit the chain ({} entries checked)", report.checked);
                    Err(anyhow::anyhow!("the audit chain is broken at entry {seq}"))
                }
            }
        }
        Some(format) => {
            let format = match format.as_str() {
                "csv" => Format::Csv,
                "ndjson" => Format::Ndjson,
                other => anyhow::bail!("--format must be csv or ndjson, not `{other}`"),
            };
            let query = AuditQuery {
                org_id: org,
                action: filter.action,
                target_id: filter.target,
                actor_id: filter.actor,
                from: filter.from,
                to: filter.to,
                ..AuditQuery::default()
            };
            let mut lines = std::pin::pin!(export(store.clone(), query, format));
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = lines.next().await {
                out.write_all(chunk?.as_bytes()).context("cannot write to stdout")?;
            }
            Ok(())
        }
    };
    sqlite.close().await;
    outcome
}

//! The `keyward` binary.

use clap::{Parser, Subcommand};
use keyward_server::config::{Config, ServeArgs};
use std::io::IsTerminal;
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
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match Config::load(args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keyward: {e}");
                    std::process::exit(2);
                }
            };
            init_logging(config.json_logs);
            if let Err(e) = keyward_server::serve(config).await {
                tracing::error!("{e:#}");
                eprintln!("keyward: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

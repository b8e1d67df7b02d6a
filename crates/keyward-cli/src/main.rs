//! The `keyward` binary: the service, API client subcommands (signed with Hawk, never
//! touching the database), and operator commands over the store for when no key is at hand.

mod client;
mod commands;
mod failure;
mod output;
mod profile;

use clap::{Args, CommandFactory, Parser, Subcommand};
use failure::Failure;
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
    /// Check a key against a server and save it as a profile for the other commands.
    Login(LoginArgs),
    /// Keys: list, show, create, import, roll, lock, unlock, edit, delete.
    Keys {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: commands::keys::KeysCommand,
    },
    /// Users: list, show, create, edit, delete, and their keys.
    Users {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: commands::users::UsersCommand,
    },
    /// Roles (by id or name): list, show, create, edit, delete.
    Roles {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: commands::roles::RolesCommand,
    },
    /// Scopes: list and declare.
    Scopes {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: commands::roles::ScopesCommand,
    },
    /// Organizations and their settings: list, show, create, edit.
    Orgs {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: commands::orgs::OrgsCommand,
    },
    /// The audit log through the API; with --data-dir (or --database-url, --config) straight from the store.
    Audit {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: commands::audit::AuditCommand,
    },
    /// Print an access token bought with the profile's key (OAuth 2.0 client credentials).
    Token {
        #[command(flatten)]
        common: Common,
        /// A permission the token should carry (`keyward:keys:read`); repeat for several. Default: all the key's.
        #[arg(long = "scope", value_name = "PERMISSION")]
        scopes: Vec<String>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Operator commands on the store itself, for when no key is at hand.
    Admin {
        #[command(subcommand)]
        command: commands::admin::AdminCommand,
    },
    /// Run the store's migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a consistent copy of the store (safe while the server runs), mode 0600.
    Backup {
        #[command(flatten)]
        store: StoreArgs,
        /// The new file; it must not exist yet.
        #[arg(long)]
        to: std::path::PathBuf,
    },
}

/// Flags every API subcommand takes.
#[derive(Args, Clone)]
pub struct Common {
    /// The saved login to use.
    #[arg(long, global = true, env = "KEYWARD_PROFILE", default_value = profile::DEFAULT_PROFILE, value_name = "NAME", help_heading = "Client options")]
    pub profile: String,
    /// Print the API's JSON answer as it is (pretty-printed).
    #[arg(long, global = true, help_heading = "Client options")]
    pub json: bool,
    /// Do not ask before destructive actions (required when there is no terminal to ask on).
    #[arg(long, short = 'y', global = true, help_heading = "Client options")]
    pub yes: bool,
}

#[derive(Args)]
struct LoginArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The key's id; its secret is read from standard input, or asked for without echo.
    #[arg(long)]
    key_id: String,
    /// The name to save the login under.
    #[arg(long, env = "KEYWARD_PROFILE", default_value = profile::DEFAULT_PROFILE)]
    profile: String,
    /// Print `/v1/me` as JSON.
    #[arg(long)]
    json: bool,
}

/// Where an operator command finds the store: the server's settings that locate it, and no others.
#[derive(Args, Clone, Default)]
pub struct StoreArgs {
    /// The server's data directory [default: ./keyward-data].
    #[arg(long, env = "KEYWARD_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Store: `sqlite://PATH`, a file path, or `postgres://USER@HOST/DB` [default: SQLite in the data dir].
    #[arg(long, env = "KEYWARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The server's TOML configuration file.
    #[arg(long, env = "KEYWARD_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

impl StoreArgs {
    /// Whether anything locates a store (the audit commands then work offline).
    pub fn given(&self) -> bool {
        self.data_dir.is_some() || self.database_url.is_some() || self.config.is_some()
    }
}

impl From<StoreArgs> for ServeArgs {
    fn from(a: StoreArgs) -> Self {
        ServeArgs { data_dir: a.data_dir, database_url: a.database_url, config: a.config, ..ServeArgs::default() }
    }
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

/// The server's configuration for the store flags; a bad one is a usage error.
pub fn load_config(args: ServeArgs) -> Result<Config, Failure> {
    Config::load(args).map_err(|e| Failure::Usage(e.to_string()))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => match load_config(args) {
            Ok(config) => {
                // Dropped at the end of this arm, before any exit: pending log lines are written.
                let _flush_on_exit = init_logging(config.json_logs);
                keyward_server::serve(config).await.map_err(Failure::from)
            }
            Err(e) => Err(e),
        },
        Command::Login(a) => commands::login::login(&a.url, &a.key_id, &a.profile, a.json).await,
        Command::Keys { common, command } => commands::keys::run(&common, command).await,
        Command::Users { common, command } => commands::users::run(&common, command).await,
        Command::Roles { common, command } => commands::roles::run(&common, command).await,
        Command::Scopes { common, command } => commands::roles::run_scopes(&common, command).await,
        Command::Orgs { common, command } => commands::orgs::run(&common, command).await,
        Command::Audit { common, command } => commands::audit::run(&common, command).await,
        Command::Token { common, scopes } => commands::login::token(&common, &scopes).await,
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when it cannot write (e.g. `| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "keyward", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script).map_err(Failure::from)
        }
        Command::Admin { command } => commands::admin::run(command).await,
        Command::Migrate { store } => commands::admin::migrate(store).await,
        Command::Backup { store, to } => commands::admin::backup(store, &to).await,
    };
    if let Err(e) = result {
        eprintln!("{}", e.message());
        std::process::exit(e.exit_code());
    }
}

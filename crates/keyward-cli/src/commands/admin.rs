//! Operator commands on the store itself: `admin create-key`, `migrate`, `backup`.

use crate::failure::Failure;
use crate::output::outln;
use crate::{StoreArgs, output};
use anyhow::Context;
use clap::Subcommand;
use keyward_core::audit::{AuditAction, AuditEvent, Outcome, TargetType};
use keyward_core::clock::{Clock, SystemClock};
use keyward_core::crypto::Keyring;
use keyward_core::ids::{RoleId, UserId};
use keyward_core::key::{KeyLimits, KeySpec};
use keyward_core::model::{ACCOUNT_ADMIN, UserStatus};
use keyward_core::store::Store;
use keyward_server::bootstrap;
use keyward_server::config::{Config, StoreLocation};
use serde_json::json;
use std::path::Path;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a new account-admin key for the first account admin (or --user), printed once.
    CreateKey {
        #[command(flatten)]
        store: StoreArgs,
        /// The account admin who owns the key [default: the oldest active account admin].
        #[arg(long)]
        user: Option<String>,
        /// The key's name.
        #[arg(long, default_value = "admin (keyward admin create-key)")]
        name: String,
        /// Print `{"key_id", "secret", "owner_id"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: AdminCommand) -> Result<(), Failure> {
    match command {
        AdminCommand::CreateKey { store, user, name, json } => create_key(store, user, name, json).await,
    }
}

/// The configuration for the store flags, refusing a data dir that does not exist: an operator
/// command must never start a new, empty deployment by a typo.
fn existing(store: StoreArgs) -> Result<Config, Failure> {
    let config = crate::load_config(store.into())?;
    if !config.data_dir.exists() {
        return Err(Failure::Usage(format!("no data directory at {}", config.data_dir.display())));
    }
    Ok(config)
}

async fn create_key(store: StoreArgs, user: Option<String>, name: String, json: bool) -> Result<(), Failure> {
    let config = existing(store)?;
    let (master, missing) = bootstrap::load_master_key(
        &config.data_dir,
        std::env::var(bootstrap::MASTER_KEY_ENV).ok().filter(|v| !v.is_empty()),
    )?;
    if missing.is_some() {
        return Err(Failure::Usage(format!(
            "no master key in {} and {} is not set: cannot seal a new secret",
            config.data_dir.display(),
            bootstrap::MASTER_KEY_ENV
        )));
    }
    let keyring = Keyring::new(&master);
    // Opening would create an empty store where there is none; there is no admin in it to serve.
    if let StoreLocation::Sqlite(path) = &config.store
        && !path.exists()
    {
        return Err(Failure::Usage(format!("no store at {}", path.display())));
    }
    let opened = keyward_server::open_store(&config).await?;
    let outcome = async {
        let store: &dyn Store = opened.as_ref();
        if store.get_meta("master_key_check").await?.is_none() {
            anyhow::bail!("the store is empty: start the server once, it creates the first admin");
        }
        bootstrap::check_master_key(store, &keyring).await?;
        let admin_role = RoleId::from_trusted(ACCOUNT_ADMIN);
        let mut admins: Vec<_> = store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.status == UserStatus::Active && u.roles.contains(&admin_role))
            .collect();
        admins.sort_by_key(|u| u.created_at);
        let owner = match &user {
            Some(id) => admins
                .into_iter()
                .find(|u| u.id == UserId::from_trusted(id.as_str()))
                .with_context(|| format!("{id} is not an active account admin"))?,
            None => admins.into_iter().next().context("the store has no active account admin")?,
        };
        let org = store.get_org(&owner.org_id).await?.context("the admin's organization is missing")?;
        let now = SystemClock.now();
        let spec = KeySpec {
            description: "Created with `keyward admin create-key`; roll or delete it once you have your own keys."
                .into(),
            ..KeySpec::named(name, vec![admin_role])
        };
        let (key, secret) =
            spec.into_record(&owner, &org.settings, &owner.id, now, |id, secret| keyring.seal(id.as_str(), secret));
        let event = AuditEvent {
            at: now,
            org_id: org.id.to_string(),
            actor_id: "system".into(),
            actor_key_id: None,
            source_ip: None,
            action: AuditAction::KeyCreate.into(),
            target_type: TargetType::Key.into(),
            target_id: key.id.to_string(),
            outcome: Outcome::Success.into(),
            details: json!({"admin_command": "create-key"}),
        };
        // A rescue for when no key is at hand: the owner's key count must not stand in its way.
        let limits = KeyLimits { max_per_user: u32::MAX, role_caps: vec![] };
        store.insert_key(&key, &limits, &event).await?;
        Ok((key.id.to_string(), secret, owner.id.to_string()))
    }
    .await;
    opened.close().await;
    let (key_id, secret, owner_id) = outcome?;
    if json {
        output::json(&json!({"key_id": key_id, "secret": secret.expose(), "owner_id": owner_id}));
    } else {
        outln!("created account-admin key {key_id} for user {owner_id}");
        output::new_secret(&json!(secret.expose()));
        eprintln!("keyward: a running server accepts the key within a minute (its next reconcile with the store)");
    }
    Ok(())
}

pub async fn migrate(store: StoreArgs) -> Result<(), Failure> {
    let config = existing(store)?;
    let store = keyward_server::open_store(&config).await?;
    store.close().await;
    outln!("the store is migrated to the current version");
    Ok(())
}

/// `VACUUM INTO` a new file: one read transaction, so a consistent snapshot even while the
/// server writes; the file is created 0600 first because it holds every sealed secret.
pub async fn backup(store: StoreArgs, to: &Path) -> Result<(), Failure> {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let config = existing(store)?;
    let options = match &config.store {
        StoreLocation::Sqlite(path) => {
            if !path.exists() {
                return Err(Failure::Usage(format!("no store at {}", path.display())));
            }
            SqliteConnectOptions::new().filename(path)
        }
        StoreLocation::SqliteUrl(url) => SqliteConnectOptions::from_str(url).context("bad store URL")?,
        StoreLocation::Postgres(_) => {
            return Err(Failure::Usage(
                "keyward backup copies a SQLite store; back up PostgreSQL with pg_dump or its replication".into(),
            ));
        }
    };
    let mut file_options = std::fs::OpenOptions::new();
    file_options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        file_options.mode(0o600);
    }
    file_options.open(to).map_err(|e| Failure::Usage(format!("cannot create {}: {e}", to.display())))?;
    let target = to.to_str().ok_or_else(|| Failure::Usage("--to must be a UTF-8 path".into()))?.to_owned();
    let copied = async {
        // Read-only: a backup never writes to the live store.
        let mut conn = options.read_only(true).busy_timeout(std::time::Duration::from_secs(10)).connect().await?;
        sqlx::query("VACUUM INTO ?").bind(&target).execute(&mut conn).await?;
        sqlx::Connection::close(conn).await
    }
    .await;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(to);
        return Err(anyhow::anyhow!("backup failed: {e}").into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    outln!("backed up the store to {}", to.display());
    Ok(())
}

//! First start: the master key, and the organization, admin and admin key
//! that a new deployment begins with.

use anyhow::Context;
use keyward_core::audit::{AuditAction, AuditEvent, Outcome, TargetType};
use keyward_core::clock::Timestamp;
use keyward_core::crypto::{Keyring, MasterKey};
use keyward_core::ids::{KeyId, OrgId, RoleId, UserId};
use keyward_core::key::KeySpec;
use keyward_core::model::{ACCOUNT_ADMIN, Org, OrgSettings, User, UserKind, UserStatus};
use keyward_core::password::Password;
use keyward_core::secret::Secret;
use keyward_core::store::{Store, StoredPassword};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable that supplies the master key instead of the key file.
pub const MASTER_KEY_ENV: &str = "KEYWARD_MASTER_KEY";
const MASTER_KEY_FILE: &str = "master.key";
const CHECK_META: &str = "master_key_check";
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.txt";

/// Creates the data dir owner-only, or warns (without changing it) about an existing one that
/// others may read; makes every file in it owner-only.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        return builder.create(dir).with_context(|| format!("cannot create the data directory {}", dir.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("cannot read the data directory {}", dir.display()))?
            .permissions()
            .mode();
        // The operator chose this directory and its mode; say what is wrong, change nothing.
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory is open to other users; consider chmod 700"
            );
        }
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read the data directory {}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot make {} readable by its owner only", path.display()))?;
                tracing::info!(path = %path.display(), "made the file readable by its owner only");
            }
        }
    }
    Ok(())
}

/// Files that only an earlier start leaves in the data dir.
pub fn earlier_life(dir: &Path) -> Vec<PathBuf> {
    [MASTER_KEY_FILE, BOOTSTRAP_FILE].iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect()
}

/// Refuses to bootstrap a new deployment over the remains of an earlier one: an empty store
/// beside its master key or bootstrap file means the database was lost, and a fresh admin
/// would silently replace every key that worked before.
pub async fn refuse_lost_store(store: &dyn Store, remains: &[PathBuf], store_name: &str) -> anyhow::Result<()> {
    if remains.is_empty() || store.get_meta(CHECK_META).await?.is_some() {
        return Ok(());
    }
    let names = remains.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ");
    anyhow::bail!(
        "the store {store_name} is empty, but {names} show that this data directory was used before: \
         the database has probably been lost. Restore it from a backup and start again; or, to begin \
         a new deployment on purpose, move {names} away first"
    )
}

/// Writes `contents` to a new file readable by its owner only.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The master key from the environment, else the data dir's key file, else a
/// new one written there (only when the store holds nothing yet).
pub fn load_master_key(data_dir: &Path, env_value: Option<String>) -> anyhow::Result<(MasterKey, Option<PathBuf>)> {
    if let Some(value) = env_value {
        let key = MasterKey::parse(&value).map_err(|e| anyhow::anyhow!("{MASTER_KEY_ENV}: {e}"))?;
        return Ok((key, None));
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok((key, None))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((MasterKey::generate(), Some(path))),
        Err(e) => Err(anyhow::anyhow!("cannot read the master key {}: {e}", path.display())),
    }
}

/// Records the master key's check value at first start and refuses a different key later.
pub async fn check_master_key(store: &dyn Store, keyring: &Keyring) -> anyhow::Result<()> {
    let stored = store.init_meta(CHECK_META, &keyring.check_value()).await?;
    if !keyring.matches_check_value(&stored) {
        anyhow::bail!(
            "this data was written under another master key: set {MASTER_KEY_ENV} or restore {} to the key it was created with",
            MASTER_KEY_FILE
        );
    }
    Ok(())
}

/// Sets the bootstrap admin's console email (default [`BOOTSTRAP_EMAIL`]).
pub const BOOTSTRAP_EMAIL_ENV: &str = "KEYWARD_BOOTSTRAP_EMAIL";
/// The bootstrap admin's console email unless [`BOOTSTRAP_EMAIL_ENV`] says otherwise.
pub const BOOTSTRAP_EMAIL: &str = "admin@localhost";

/// Credentials printed once at first start.
pub struct BootstrapAdmin {
    pub key_id: KeyId,
    pub secret: Secret,
    /// Signs in to the web console with the one-time password, which must be changed at once.
    pub email: String,
    pub password: Password,
    pub file: PathBuf,
}

/// Creates the first org, its account admin and an admin key if the store is empty.
pub async fn bootstrap(
    store: &dyn Store,
    keyring: &Keyring,
    data_dir: &Path,
    email: &str,
    now: Timestamp,
) -> anyhow::Result<Option<BootstrapAdmin>> {
    if !store.list_orgs().await?.is_empty() {
        return Ok(None);
    }
    let org = Org {
        id: OrgId::generate(),
        name: "Default organization".into(),
        settings: OrgSettings::default(),
        created_at: now,
    };
    let admin = User {
        id: UserId::generate(),
        org_id: org.id.clone(),
        name: "admin".into(),
        email: Some(email.to_owned()),
        kind: UserKind::Human,
        roles: vec![RoleId::from_trusted(ACCOUNT_ADMIN)],
        status: UserStatus::Active,
        created_at: now,
        token_epoch: 0,
    };
    let spec = KeySpec {
        description: "Created at first start; roll or delete it once you have your own keys.".into(),
        ..KeySpec::named("bootstrap admin", admin.roles.clone())
    };
    let (key, secret) =
        spec.into_record(&admin, &org.settings, &admin.id, now, |id, secret| keyring.seal(id.as_str(), secret));
    let key_id = key.id.clone();
    let event = |action: AuditAction, target_type: TargetType, target_id: &str| AuditEvent {
        at: now,
        org_id: org.id.to_string(),
        actor_id: "system".into(),
        actor_key_id: None,
        source_ip: None,
        action: action.into(),
        target_type: target_type.into(),
        target_id: target_id.into(),
        outcome: Outcome::Success.into(),
        details: serde_json::json!({"bootstrap": true}),
    };
    let events = [
        event(AuditAction::OrgCreate, TargetType::Org, org.id.as_str()),
        event(AuditAction::UserCreate, TargetType::User, admin.id.as_str()),
        event(AuditAction::KeyCreate, TargetType::Key, key_id.as_str()),
    ];
    // The file is written before the commit, so a crash in between never loses the only admin secret.
    let file = data_dir.join(BOOTSTRAP_FILE);
    let _ = std::fs::remove_file(&file);
    let password = Password::generate();
    let stored = StoredPassword { hash: keyward_core::password::hash(&password)?, must_change: true };
    let text = format!(
        "# Keyward bootstrap admin API key (account_admin). Keep it safe, then delete this file.\nid={}\nsecret={}\n\
         # Web console sign-in; the one-time password must be changed at first sign-in.\nemail={}\npassword={}\n",
        key_id,
        secret.expose(),
        email,
        password.expose()
    );
    write_private_file(&file, &text)?;
    if !store.bootstrap(&org, &admin, &key, &events).await? {
        let _ = std::fs::remove_file(&file);
        return Ok(None);
    }
    store.set_password(&admin.id, &stored, None).await?;
    Ok(Some(BootstrapAdmin { key_id, secret, email: email.to_owned(), password, file }))
}

//! The embedded SQLite store: WAL, foreign keys on, synchronous commits, one
//! writer connection (SQLite has one writer anyway) beside a pool of readers.

use crate::backend;
use crate::rows::{self, AuditRow, KeyRow, OrgRow, RoleRow, ScopeRow, UserRow, secs};
use async_trait::async_trait;
use keyward_core::Conflict;
use keyward_core::audit::{AuditAction, AuditEntry, AuditEvent, GENESIS_HASH, TargetType, chain_hash};
use keyward_core::ids::{KeyId, OrgId, RoleId, UserId};
use keyward_core::key::KeyLimits;
use keyward_core::model::{KeyRecord, KeyStatus, Org, Role, ScopeDef, User};
use keyward_core::store::{
    AuditQuery, KeyPage, KeyQuery, KeySort, KeyUsage, StatusCounts, Store, StoreError, StoredPassword,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The database file as opened; `None` for in-memory databases.
    file: Option<Arc<FileWatch>>,
}

/// The database file the pools opened, to notice it deleted or replaced under a running server:
/// SQLite keeps writing to an unlinked file without complaint, and every such write is lost.
#[derive(Debug)]
struct FileWatch {
    path: PathBuf,
    /// Device and inode at open.
    identity: (u64, u64),
    /// Set once the file was found gone or replaced; a file put back later does not undo it.
    lost: AtomicBool,
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

const KEY_COLUMNS: &str = "k.id, k.org_id, k.owner_id, k.name, k.description, k.comment, k.scopes, k.expires_at, \
    k.locked, k.network_restrictions, k.reauth_timeout_s, k.created_at, k.created_by, k.updated_at, k.rolled_at, \
    k.last_used_at, k.last_used_ip, k.imported, k.secret_digest, k.secret_ciphertext, k.prev_secret_digest, \
    k.prev_secret_ciphertext, k.prev_valid_until, k.inherits_owner, k.token_epoch, k.version, \
    (SELECT json_group_array(role_id) FROM (SELECT role_id FROM key_roles WHERE key_id = k.id ORDER BY role_id)) AS roles";

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        Self::open_with(options).await
    }

    /// Opens a `sqlite:` URL.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(backend)?.create_if_missing(true);
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let path = options.get_filename().to_owned();
        let on_disk = path.as_os_str() != ":memory:" && !path.as_os_str().is_empty();
        if on_disk {
            restrict_files(&path)?;
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit acknowledged to a client is on disk, even across power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer =
            SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(backend)?;
        MIGRATOR.run(&writer).await.map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let reader =
            SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await.map_err(backend)?;
        let file = if on_disk { file_identity(&path).map(|identity| FileWatch::new(path, identity)) } else { None };
        Ok(Self { writer, reader, file })
    }

    /// Refuses to go on when the database file is no longer the one opened (deleted, replaced).
    fn check_file(&self) -> Result<(), StoreError> {
        let Some(watch) = &self.file else { return Ok(()) };
        if watch.lost.load(Ordering::Relaxed) {
            return Err(watch.lost_error());
        }
        match std::fs::metadata(&watch.path) {
            Ok(m) if file_identity_of(&m) == Some(watch.identity) => Ok(()),
            Ok(_) => Err(watch.mark_lost("replaced")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(watch.mark_lost("deleted")),
            Err(e) => Err(StoreError::Backend(format!("cannot inspect the database file: {e}"))),
        }
    }

    /// The database file still starts as an SQLite database: a cheap probe that catches a file
    /// overwritten in place, where a full integrity check would read the whole store.
    fn check_header(&self) -> Result<(), StoreError> {
        use std::io::Read;
        let Some(watch) = &self.file else { return Ok(()) };
        let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
        std::fs::File::open(&watch.path)
            .and_then(|f| f.take(SQLITE_MAGIC.len() as u64).read_to_end(&mut head))
            .map_err(|e| StoreError::Backend(format!("cannot read the database file: {e}")))?;
        // An empty file is a database whose first pages are still only in the WAL.
        if head.is_empty() || head.as_slice() == SQLITE_MAGIC {
            Ok(())
        } else {
            Err(StoreError::Corrupt("the database file does not start with the SQLite header".into()))
        }
    }

    /// Begins a write transaction, unless the database file is gone (the write would be lost).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'_, Sqlite>, StoreError> {
        self.check_file()?;
        self.writer.begin().await.map_err(backend)
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

impl FileWatch {
    fn new(path: PathBuf, identity: (u64, u64)) -> Arc<Self> {
        Arc::new(Self { path, identity, lost: AtomicBool::new(false) })
    }

    fn lost_error(&self) -> StoreError {
        StoreError::Backend(format!(
            "the database file {} was deleted or replaced while the server ran; writes are refused, restart after restoring it",
            self.path.display()
        ))
    }

    fn mark_lost(&self, how: &str) -> StoreError {
        if !self.lost.swap(true, Ordering::Relaxed) {
            tracing::error!(path = %self.path.display(), "the database file was {how} under the running server; refusing writes");
        }
        self.lost_error()
    }
}

/// Makes the database file and SQLite's companions owner-only, creating the file so before
/// SQLite would create it with the process's default mode.
fn restrict_files(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // The directory may not exist or be writable: SQLite reports that better.
            Err(_) => return Ok(()),
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.is_file()
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                    StoreError::Backend(format!("cannot make {} readable by its owner only: {e}", file.display()))
                })?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().as_ref().and_then(file_identity_of)
}

#[cfg(unix)]
fn file_identity_of(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_identity_of(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Appends an audit entry to its org's hash chain, inside the caller's transaction.
async fn append_audit(tx: &mut SqliteConnection, e: &AuditEvent) -> Result<(), StoreError> {
    let prev: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit WHERE org_id = ? ORDER BY seq DESC LIMIT 1")
            .bind(&e.org_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
    // sqlite_sequence remembers the highest seq ever used, so pruning never makes a seq come back.
    let last_seq: i64 = sqlx::query_scalar(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM audit), 0), \
         COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0))",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(backend)?;
    let seq = last_seq + 1;
    let prev_hash = match prev {
        Some((_, h)) => h,
        None => anchor_hash(tx, &e.org_id).await?,
    };
    let hash = chain_hash(seq, e, &prev_hash);
    sqlx::query(
        "INSERT INTO audit (seq, org_id, at, actor_id, actor_key_id, source_ip, action, target_type, target_id, outcome, details, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(&e.org_id)
    .bind(secs(e.at))
    .bind(&e.actor_id)
    .bind(&e.actor_key_id)
    .bind(&e.source_ip)
    .bind(&e.action)
    .bind(&e.target_type)
    .bind(&e.target_id)
    .bind(&e.outcome)
    .bind(e.details.to_string())
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn insert_org_row(tx: &mut SqliteConnection, org: &Org) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO orgs (id, name, max_keys_per_user, default_expiry_days, allow_direct_secret, audit_retention_days, \
         hawk_require_payload_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
        .bind(org.id.as_str())
        .bind(&org.name)
        .bind(org.settings.max_keys_per_user)
        .bind(org.settings.default_expiry_days)
        .bind(org.settings.allow_direct_secret)
        .bind(org.settings.audit_retention_days)
        .bind(org.settings.hawk_require_payload_hash)
        .bind(secs(org.created_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    Ok(())
}

async fn insert_user_row(tx: &mut SqliteConnection, user: &User) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO users (id, org_id, name, email, kind, status, created_at, token_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(user.id.as_str())
        .bind(user.org_id.as_str())
        .bind(&user.name)
        .bind(&user.email)
        .bind(rows::kind_str(user.kind))
        .bind(rows::user_status_str(user.status))
        .bind(secs(user.created_at))
        .bind(i64::from(user.token_epoch))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    write_user_roles(tx, user).await
}

/// Writes a key's row and its roles: an insert, or a full replacement.
async fn write_key_row(tx: &mut SqliteConnection, k: &KeyRecord, replace: bool) -> Result<(), StoreError> {
    let row = KeyRow::from_record(k);
    let sql = if replace {
        // Last-used columns belong to record_key_usage; the version check refuses an update made
        // from a read that another write has overtaken, so a lock or roll is never silently undone.
        "UPDATE keys SET org_id = ?2, owner_id = ?3, name = ?4, description = ?5, comment = ?6, scopes = ?7, expires_at = ?8, \
         locked = ?9, network_restrictions = ?10, reauth_timeout_s = ?11, created_at = ?12, created_by = ?13, updated_at = ?14, \
         rolled_at = ?15, imported = ?18, secret_digest = ?19, secret_ciphertext = ?20, \
         prev_secret_digest = ?21, prev_secret_ciphertext = ?22, prev_valid_until = ?23, inherits_owner = ?25, \
         token_epoch = ?26, version = version + 1 \
         WHERE id = ?1 AND deleted_at IS NULL AND version = ?24"
    } else {
        "INSERT INTO keys (id, org_id, owner_id, name, description, comment, scopes, expires_at, locked, network_restrictions, \
         reauth_timeout_s, created_at, created_by, updated_at, rolled_at, last_used_at, last_used_ip, imported, secret_digest, \
         secret_ciphertext, prev_secret_digest, prev_secret_ciphertext, prev_valid_until, version, inherits_owner, token_epoch) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
    };
    let done = sqlx::query(sql)
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.owner_id)
        .bind(&row.name)
        .bind(&row.description)
        .bind(&row.comment)
        .bind(&row.scopes)
        .bind(row.expires_at)
        .bind(row.locked)
        .bind(&row.network_restrictions)
        .bind(row.reauth_timeout_s)
        .bind(row.created_at)
        .bind(&row.created_by)
        .bind(row.updated_at)
        .bind(row.rolled_at)
        .bind(row.last_used_at)
        .bind(&row.last_used_ip)
        .bind(row.imported)
        .bind(&row.secret_digest)
        .bind(&row.secret_ciphertext)
        .bind(&row.prev_secret_digest)
        .bind(&row.prev_secret_ciphertext)
        .bind(row.prev_valid_until)
        .bind(row.version)
        .bind(row.inherits_owner)
        .bind(row.token_epoch)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    if done.rows_affected() == 0 {
        let live: Option<i64> = sqlx::query_scalar("SELECT version FROM keys WHERE id = ? AND deleted_at IS NULL")
            .bind(&row.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        return Err(match live {
            Some(_) => StoreError::Conflict(Conflict::ConcurrentUpdate),
            None => StoreError::NotFound { what: "key" },
        });
    }
    sqlx::query("DELETE FROM key_roles WHERE key_id = ?").bind(&row.id).execute(&mut *tx).await.map_err(backend)?;
    for role in &k.roles {
        sqlx::query("INSERT INTO key_roles (key_id, role_id) VALUES (?, ?)")
            .bind(&row.id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Checks the owner's limits as they stand inside the transaction, after the write.
async fn check_limits(tx: &mut SqliteConnection, owner: &str, limits: &KeyLimits) -> Result<(), StoreError> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keys WHERE owner_id = ? AND deleted_at IS NULL")
        .bind(owner)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let mut role_counts = Vec::with_capacity(limits.role_caps.len());
    for cap in &limits.role_caps {
        let role = &cap.role;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM keys k JOIN key_roles kr ON kr.key_id = k.id \
             WHERE k.owner_id = ? AND kr.role_id = ? AND k.deleted_at IS NULL",
        )
        .bind(owner)
        .bind(role.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        role_counts.push((role.clone(), u64::try_from(n).unwrap_or(0)));
    }
    limits.check(u64::try_from(total).unwrap_or(0), &role_counts).map_err(StoreError::Conflict)
}

/// Adds the WHERE clause shared by the key list and its counts.
fn push_key_filter(qb: &mut QueryBuilder<'_, Sqlite>, query: &KeyQuery) {
    qb.push(" WHERE k.deleted_at IS NULL");
    if let Some(org) = &query.org_id {
        qb.push(" AND k.org_id = ").push_bind(org.as_str().to_owned());
    }
    if let Some(owner) = &query.owner_id {
        qb.push(" AND k.owner_id = ").push_bind(owner.as_str().to_owned());
    }
    if let Some(role) = &query.role_id {
        // A key that inherits its owner carries the owner's roles, as its view shows.
        qb.push(" AND (EXISTS (SELECT 1 FROM key_roles kr WHERE kr.key_id = k.id AND kr.role_id = ")
            .push_bind(role.as_str().to_owned())
            .push(") OR (k.inherits_owner = 1 AND EXISTS (SELECT 1 FROM user_roles ur WHERE ur.user_id = k.owner_id AND ur.role_id = ")
            .push_bind(role.as_str().to_owned())
            .push(")))");
    }
    if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
        let pattern = format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        qb.push(" AND (");
        for (i, col) in ["k.id", "k.name", "k.description", "k.comment"].iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push(*col).push(" LIKE ").push_bind(pattern.clone()).push(" ESCAPE '\\'");
        }
        qb.push(")");
    }
}

const STATUS_ACTIVE: i64 = 0;
const STATUS_LOCKED: i64 = 1;
const STATUS_EXPIRED: i64 = 2;

/// The key status rule (`KeyRecord::status`) as SQL over `keys k JOIN users u`:
/// expired, else locked (the key, or its owner disabled), else active.
fn push_status_code(qb: &mut QueryBuilder<'_, Sqlite>, now: i64) {
    qb.push("(CASE WHEN k.expires_at IS NOT NULL AND k.expires_at <= ")
        .push_bind(now)
        .push(" THEN ")
        .push_bind(STATUS_EXPIRED)
        .push(" WHEN k.locked = 1 OR u.status <> 'active' THEN ")
        .push_bind(STATUS_LOCKED)
        .push(" ELSE ")
        .push_bind(STATUS_ACTIVE)
        .push(" END)");
}

fn push_status_filter(qb: &mut QueryBuilder<'_, Sqlite>, status: KeyStatus, now: i64) {
    let code = match status {
        KeyStatus::Active => STATUS_ACTIVE,
        KeyStatus::Locked => STATUS_LOCKED,
        KeyStatus::Expired => STATUS_EXPIRED,
    };
    qb.push(" AND ");
    push_status_code(qb, now);
    qb.push(" = ").push_bind(code);
}

/// Replaces a user's roles.
async fn write_user_roles(tx: &mut SqliteConnection, user: &User) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_roles WHERE user_id = ?")
        .bind(user.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    for role in &user.roles {
        sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES (?, ?)")
            .bind(user.id.as_str())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Deletes a key for good: its row stays (so the id is never reused) with the
/// secret material wiped. Returns false if there was no such live key.
async fn tombstone_key(
    tx: &mut SqliteConnection,
    id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE keys SET deleted_at = ?, secret_digest = NULL, secret_ciphertext = NULL, prev_secret_digest = NULL, \
         prev_secret_ciphertext = NULL, prev_valid_until = NULL WHERE id = ? AND deleted_at IS NULL",
    )
    .bind(secs(at))
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    sqlx::query("DELETE FROM key_roles WHERE key_id = ?").bind(id).execute(&mut *tx).await.map_err(backend)?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the given keys inside a cascade, each with its own audit entry derived from `cause`.
async fn cascade_delete_keys(
    tx: &mut SqliteConnection,
    ids: &[String],
    cause: &AuditEvent,
    reason: &str,
) -> Result<Vec<KeyId>, StoreError> {
    let mut deleted = Vec::with_capacity(ids.len());
    for id in ids {
        tombstone_key(tx, id, cause.at).await?;
        let org: String = sqlx::query_scalar("SELECT org_id FROM keys WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let event = AuditEvent {
            org_id: org,
            action: AuditAction::KeyDelete.into(),
            target_type: TargetType::Key.into(),
            target_id: id.clone(),
            details: serde_json::json!({"reason": reason, "cause": cause.action, "cause_target": cause.target_id}),
            ..cause.clone()
        };
        append_audit(tx, &event).await?;
        deleted.push(KeyId::from_trusted(id.clone()));
    }
    Ok(deleted)
}

/// The hash an org's chain continues from when it has no entries left.
async fn anchor_hash(tx: &mut SqliteConnection, org: &str) -> Result<String, StoreError> {
    let anchor: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_anchors WHERE org_id = ?")
        .bind(org)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
    Ok(anchor.unwrap_or_else(|| GENESIS_HASH.to_owned()))
}

fn push_audit_filter(qb: &mut QueryBuilder<'_, Sqlite>, q: &AuditQuery) {
    qb.push(" WHERE 1 = 1");
    if let Some(org) = &q.org_id {
        qb.push(" AND org_id = ").push_bind(org.as_str().to_owned());
    }
    if let Some(v) = &q.action {
        qb.push(" AND action = ").push_bind(v.clone());
    }
    if let Some(v) = &q.actor_id {
        qb.push(" AND actor_id = ").push_bind(v.clone());
    }
    if let Some(v) = &q.target_id {
        qb.push(" AND target_id = ").push_bind(v.clone());
    }
    if let Some(v) = q.from {
        qb.push(" AND at >= ").push_bind(secs(v));
    }
    if let Some(v) = q.to {
        qb.push(" AND at <= ").push_bind(secs(v));
    }
    if let Some(v) = q.after_seq {
        qb.push(" AND seq > ").push_bind(v);
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.check_file()?;
        self.check_header()?;
        // Reads the schema and its version: a file that is not this store's fails here.
        let version: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.reader)
            .await
            .map_err(backend)?;
        if version < 1 {
            return Err(StoreError::Corrupt("the store's schema is missing".into()));
        }
        Ok(())
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn get_meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)
    }

    async fn init_meta(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let stored: String = sqlx::query_scalar("SELECT value FROM meta WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn swap_meta(&self, name: &str, expected: &str, value: &str) -> Result<bool, StoreError> {
        self.check_file()?;
        let done = sqlx::query("UPDATE meta SET value = ? WHERE name = ? AND value = ?")
            .bind(value)
            .bind(name)
            .bind(expected)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn bootstrap(
        &self,
        org: &Org,
        admin: &User,
        key: &KeyRecord,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(&mut *tx).await.map_err(backend)?;
        if orgs > 0 {
            return Ok(false);
        }
        insert_org_row(&mut tx, org).await?;
        insert_user_row(&mut tx, admin).await?;
        write_key_row(&mut tx, key, false).await?;
        for e in events {
            append_audit(&mut tx, e).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        let rows: Vec<OrgRow> = sqlx::query_as("SELECT * FROM orgs ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.into_iter().map(OrgRow::into_org).collect()
    }

    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>, StoreError> {
        let row: Option<OrgRow> = sqlx::query_as("SELECT * FROM orgs WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.map(OrgRow::into_org).transpose()
    }

    async fn insert_org(&self, org: &Org, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_org_row(&mut tx, org).await?;
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_org(&self, org: &Org, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE orgs SET name = ?, max_keys_per_user = ?, default_expiry_days = ?, allow_direct_secret = ?, \
             audit_retention_days = ?, hawk_require_payload_hash = ? WHERE id = ?",
        )
        .bind(&org.name)
        .bind(org.settings.max_keys_per_user)
        .bind(org.settings.default_expiry_days)
        .bind(org.settings.allow_direct_secret)
        .bind(org.settings.audit_retention_days)
        .bind(org.settings.hawk_require_payload_hash)
        .bind(org.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "organization" });
        }
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT u.*, (SELECT json_group_array(role_id) FROM (SELECT role_id FROM user_roles WHERE user_id = u.id ORDER BY role_id)) AS roles \
             FROM users u WHERE u.deleted_at IS NULL ORDER BY u.created_at, u.id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows: Vec<RoleRow> =
            sqlx::query_as("SELECT * FROM roles ORDER BY name").fetch_all(&self.reader).await.map_err(backend)?;
        rows.into_iter().map(RoleRow::into_role).collect()
    }

    async fn list_scopes(&self) -> Result<Vec<ScopeDef>, StoreError> {
        let rows: Vec<ScopeRow> =
            sqlx::query_as("SELECT * FROM scopes ORDER BY name").fetch_all(&self.reader).await.map_err(backend)?;
        rows.into_iter().map(ScopeRow::into_scope).collect()
    }

    async fn insert_user(&self, user: &User, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_user_row(&mut tx, user).await?;
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_user(&self, user: &User, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET name = ?, email = ?, status = ?, token_epoch = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(&user.name)
        .bind(&user.email)
        .bind(rows::user_status_str(user.status))
        .bind(i64::from(user.token_epoch))
        .bind(user.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user" });
        }
        write_user_roles(&mut tx, user).await?;
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_password(&self, user: &UserId) -> Result<Option<StoredPassword>, StoreError> {
        let row: Option<(Option<String>, i64)> =
            sqlx::query_as("SELECT password_hash, password_must_change FROM users WHERE id = ? AND deleted_at IS NULL")
                .bind(user.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(backend)?;
        Ok(row.and_then(|(hash, must_change)| hash.map(|hash| StoredPassword { hash, must_change: must_change != 0 })))
    }

    async fn set_password(
        &self,
        user: &UserId,
        password: &StoredPassword,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET password_hash = ?, password_must_change = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(&password.hash)
        .bind(i64::from(password.must_change))
        .bind(user.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user" });
        }
        if let Some(event) = event {
            append_audit(&mut tx, event).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn delete_user(&self, id: &UserId, event: &AuditEvent) -> Result<Vec<KeyId>, StoreError> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE users SET deleted_at = ?, status = 'disabled' WHERE id = ? AND deleted_at IS NULL")
                .bind(secs(event.at))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user" });
        }
        sqlx::query("DELETE FROM user_roles WHERE user_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT id FROM keys WHERE owner_id = ? AND deleted_at IS NULL ORDER BY id")
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        append_audit(&mut tx, event).await?;
        let deleted = cascade_delete_keys(&mut tx, &keys, event, "owner deleted").await?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    async fn insert_role(&self, role: &Role, event: &AuditEvent) -> Result<(), StoreError> {
        let Some(org) = &role.org_id else {
            return Err(StoreError::Backend("built-in roles are not stored".into()));
        };
        let perms: Vec<String> = role.permissions.iter().map(ToString::to_string).collect();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO roles (id, org_id, name, description, permissions, max_keys) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(role.id.as_str())
        .bind(org.as_str())
        .bind(&role.name)
        .bind(&role.description)
        .bind(serde_json::to_string(&perms).unwrap_or_else(|_| "[]".into()))
        .bind(role.max_keys)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_role(&self, role: &Role, event: &AuditEvent) -> Result<(), StoreError> {
        let perms: Vec<String> = role.permissions.iter().map(ToString::to_string).collect();
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE roles SET name = ?, description = ?, permissions = ?, max_keys = ? WHERE id = ?")
                .bind(&role.name)
                .bind(&role.description)
                .bind(serde_json::to_string(&perms).unwrap_or_else(|_| "[]".into()))
                .bind(role.max_keys)
                .bind(role.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "role" });
        }
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_role(&self, id: &RoleId, event: &AuditEvent) -> Result<Vec<KeyId>, StoreError> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM roles WHERE id = ?").bind(id.as_str()).execute(&mut *tx).await.map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "role" });
        }
        sqlx::query("DELETE FROM user_roles WHERE role_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT k.id FROM keys k JOIN key_roles kr ON kr.key_id = k.id WHERE kr.role_id = ? AND k.deleted_at IS NULL ORDER BY k.id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        append_audit(&mut tx, event).await?;
        let deleted = cascade_delete_keys(&mut tx, &keys, event, "role deleted").await?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    async fn insert_scope(&self, scope: &ScopeDef, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO scopes (org_id, name, description, resources) VALUES (?, ?, ?, ?)")
            .bind(scope.org_id.as_str())
            .bind(&scope.name)
            .bind(&scope.description)
            .bind(serde_json::to_string(&scope.resources).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys k WHERE k.id = ? AND k.deleted_at IS NULL");
        let row: Option<KeyRow> =
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(&self.reader).await.map_err(backend)?;
        row.map(KeyRow::into_record).transpose()
    }

    async fn key_id_taken(&self, id: &KeyId) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM keys WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        Ok(found.is_some())
    }

    async fn all_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys k WHERE k.deleted_at IS NULL");
        let rows: Vec<KeyRow> = sqlx::query_as(&sql).fetch_all(&self.reader).await.map_err(backend)?;
        rows.into_iter().map(KeyRow::into_record).collect()
    }

    async fn list_keys(&self, query: &KeyQuery) -> Result<KeyPage, StoreError> {
        let now = secs(query.now);
        let soon = secs(query.now + chrono::Duration::days(30));

        let mut counts_q = QueryBuilder::<Sqlite>::new("SELECT ");
        for code in [STATUS_ACTIVE, STATUS_LOCKED, STATUS_EXPIRED] {
            counts_q.push("COALESCE(SUM(CASE WHEN ");
            push_status_code(&mut counts_q, now);
            counts_q.push(" = ").push_bind(code).push(" THEN 1 ELSE 0 END), 0), ");
        }
        counts_q
            .push("COALESCE(SUM(CASE WHEN k.expires_at > ")
            .push_bind(now)
            .push(" AND k.expires_at <= ")
            .push_bind(soon)
            .push(" THEN 1 ELSE 0 END), 0) FROM keys k JOIN users u ON u.id = k.owner_id");
        push_key_filter(&mut counts_q, query);
        let (active, locked, expired, expiring): (i64, i64, i64, i64) =
            counts_q.build_query_as().fetch_one(&self.reader).await.map_err(backend)?;
        let counts = StatusCounts {
            active: u64::try_from(active).unwrap_or(0),
            locked: u64::try_from(locked).unwrap_or(0),
            expired: u64::try_from(expired).unwrap_or(0),
            expiring_30d: u64::try_from(expiring).unwrap_or(0),
        };
        let total = match query.status {
            None => counts.active + counts.locked + counts.expired,
            Some(KeyStatus::Active) => counts.active,
            Some(KeyStatus::Locked) => counts.locked,
            Some(KeyStatus::Expired) => counts.expired,
        };

        let mut qb =
            QueryBuilder::<Sqlite>::new(format!("SELECT {KEY_COLUMNS} FROM keys k JOIN users u ON u.id = k.owner_id"));
        push_key_filter(&mut qb, query);
        if let Some(status) = query.status {
            push_status_filter(&mut qb, status, now);
        }
        let dir = if query.descending { " DESC" } else { " ASC" };
        qb.push(" ORDER BY ");
        match query.sort {
            KeySort::Name => qb.push("k.name COLLATE NOCASE").push(dir),
            KeySort::CreatedAt => qb.push("k.created_at").push(dir),
            // Keys that never expire or were never used sort last either way.
            KeySort::ExpiresAt => qb.push("k.expires_at IS NULL, k.expires_at").push(dir),
            KeySort::LastUsedAt => qb.push("k.last_used_at IS NULL, k.last_used_at").push(dir),
            KeySort::Status => {
                push_status_code(&mut qb, now);
                qb.push(dir)
            }
        };
        qb.push(", k.id").push(dir);
        qb.push(" LIMIT ").push_bind(i64::from(query.per_page));
        qb.push(" OFFSET ").push_bind(i64::from(query.page.saturating_sub(1)) * i64::from(query.per_page));
        let rows: Vec<KeyRow> = qb.build_query_as().fetch_all(&self.reader).await.map_err(backend)?;
        let items = rows.into_iter().map(KeyRow::into_record).collect::<Result<_, _>>()?;
        Ok(KeyPage { items, total, counts })
    }

    async fn insert_key(&self, key: &KeyRecord, limits: &KeyLimits, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        write_key_row(&mut tx, key, false).await?;
        check_limits(&mut tx, key.owner_id.as_str(), limits).await?;
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_key(
        &self,
        key: &KeyRecord,
        limits: Option<&KeyLimits>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        write_key_row(&mut tx, key, true).await?;
        if let Some(limits) = limits {
            check_limits(&mut tx, key.owner_id.as_str(), limits).await?;
        }
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_key(&self, id: &KeyId, event: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !tombstone_key(&mut tx, id.as_str(), event.at).await? {
            return Ok(false);
        }
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for e in events {
            append_audit(&mut tx, e).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM audit");
        push_audit_filter(&mut count, query);
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await.map_err(backend)?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM audit");
        push_audit_filter(&mut qb, query);
        qb.push(if query.newest_first { " ORDER BY seq DESC" } else { " ORDER BY seq ASC" });
        qb.push(" LIMIT ").push_bind(i64::from(query.limit));
        qb.push(" OFFSET ").push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
        let rows: Vec<AuditRow> = qb.build_query_as().fetch_all(&self.reader).await.map_err(backend)?;
        let entries = rows.into_iter().map(AuditRow::into_entry).collect::<Result<_, _>>()?;
        Ok((entries, u64::try_from(total).unwrap_or(0)))
    }

    async fn audit_orgs(&self) -> Result<Vec<OrgId>, StoreError> {
        let orgs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT org_id FROM audit ORDER BY org_id")
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        Ok(orgs.into_iter().map(OrgId::from_trusted).collect())
    }

    async fn audit_anchor(&self, org: &OrgId) -> Result<String, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(backend)?;
        anchor_hash(&mut conn, org.as_str()).await
    }

    async fn prune_audit(&self, org: &OrgId, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        // The newest entry that goes; its hash becomes the anchor the rest continue from.
        let cut: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit WHERE org_id = ? AND at < ? ORDER BY seq DESC LIMIT 1")
                .bind(org.as_str())
                .bind(secs(before))
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some((seq, hash)) = cut else { return Ok(0) };
        let done = sqlx::query("DELETE FROM audit WHERE org_id = ? AND seq <= ?")
            .bind(org.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO audit_anchors (org_id, seq, hash) VALUES (?, ?, ?) \
             ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(org.as_str())
        .bind(seq)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn record_key_usage(&self, batch: &[KeyUsage]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for u in batch {
            sqlx::query(
                "UPDATE keys SET last_used_at = ?, last_used_ip = COALESCE(?, last_used_ip) \
                 WHERE id = ? AND deleted_at IS NULL AND (last_used_at IS NULL OR last_used_at <= ?)",
            )
            .bind(secs(u.at))
            .bind(u.ip.map(|ip| ip.to_string()))
            .bind(u.key_id.as_str())
            .bind(secs(u.at))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_file_deleted_or_replaced_under_the_store_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.ping().await.unwrap();
        store.init_meta("a", "1").await.unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(store.ping().await.is_err(), "a deleted file is not ready");
        assert!(store.init_meta("b", "2").await.is_err(), "a write to a deleted file is refused");
        std::fs::write(&path, b"").unwrap();
        assert!(store.ping().await.is_err(), "a new file in its place is not the store");
        assert!(store.swap_meta("a", "1", "2").await.is_err());
        store.close().await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_and_its_companions_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let store = SqliteStore::open(&path).await.unwrap();
        store.init_meta("a", "1").await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        store.close().await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(mode(&path), 0o600, "an existing file is fixed");
        store.close().await;
    }
}

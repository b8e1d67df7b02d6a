//! The storage interface. Every write that changes state carries the audit
//! event that records it; the store writes both in one transaction.

use crate::audit::{AuditEntry, AuditEvent};
use crate::clock::Timestamp;
use crate::ids::{KeyId, OrgId, RoleId, UserId};
use crate::key::KeyLimits;
use crate::model::{KeyRecord, KeyStatus, Org, Role, ScopeDef, User};
use std::net::IpAddr;

pub use crate::error::StoreError;

/// A sort column of the key list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySort {
    Name,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    Status,
}

impl KeySort {
    /// Parses `name`, `-created_at`, …; returns the column and whether descending.
    #[must_use]
    pub fn parse(s: &str) -> Option<(Self, bool)> {
        let (desc, field) = s.strip_prefix('-').map_or((false, s), |f| (true, f));
        let sort = match field {
            "name" => Self::Name,
            "created_at" => Self::CreatedAt,
            "expires_at" => Self::ExpiresAt,
            "last_used_at" => Self::LastUsedAt,
            "status" => Self::Status,
            _ => return None,
        };
        Some((sort, desc))
    }
}

/// A page request over keys. Counts ignore `status`, so a grid can show all tabs.
#[derive(Debug, Clone)]
pub struct KeyQuery {
    /// `None`: every org (account admins).
    pub org_id: Option<OrgId>,
    pub owner_id: Option<UserId>,
    pub role_id: Option<RoleId>,
    pub q: Option<String>,
    pub status: Option<KeyStatus>,
    pub sort: KeySort,
    pub descending: bool,
    pub page: u32,
    pub per_page: u32,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub active: u64,
    pub locked: u64,
    pub expired: u64,
    pub expiring_30d: u64,
}

#[derive(Debug, Clone)]
pub struct KeyPage {
    pub items: Vec<KeyRecord>,
    pub total: u64,
    pub counts: StatusCounts,
}

/// One batched last-used update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: KeyId,
    pub at: Timestamp,
    /// `None` when the use came without a client address (a gateway's verify without `source_ip`).
    pub ip: Option<IpAddr>,
}

/// A filter over the audit log; `after_seq` pages by key for streaming.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// `None`: every org (account admins).
    pub org_id: Option<OrgId>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub after_seq: Option<i64>,
    /// Newest first (the list) or oldest first (export, verify).
    pub newest_first: bool,
    pub offset: u64,
    pub limit: u32,
}

/// A person's console password as stored: an argon2id PHC string, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPassword {
    pub hash: String,
    /// A one-time password (the bootstrap admin's) must be changed at the next sign-in.
    pub must_change: bool,
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPassword").field("hash", &"***").field("must_change", &self.must_change).finish()
    }
}

/// Persistent state. Implementations: SQLite (embedded default), PostgreSQL.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Lets go of the database (pools closed, SQLite's WAL checkpointed); the store is not used after.
    async fn close(&self) {}

    /// A value of the deployment's metadata (master key check, signing keys, …).
    async fn get_meta(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Sets a metadata value if it is not set yet; returns the value now stored.
    async fn init_meta(&self, name: &str, value: &str) -> Result<String, StoreError>;
    /// Replaces a metadata value if it still is `expected`; returns whether it did.
    async fn swap_meta(&self, name: &str, expected: &str, value: &str) -> Result<bool, StoreError>;

    /// Creates the first org, its admin and the admin's key in one transaction,
    /// unless any org exists; returns whether it did.
    async fn bootstrap(
        &self,
        org: &Org,
        admin: &User,
        key: &KeyRecord,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError>;
    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>, StoreError>;
    async fn insert_org(&self, org: &Org, event: &AuditEvent) -> Result<(), StoreError>;
    async fn update_org(&self, org: &Org, event: &AuditEvent) -> Result<(), StoreError>;

    /// Every user (of all orgs), for the in-memory directory.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// A person's console password, if one is set.
    async fn get_password(&self, user: &UserId) -> Result<Option<StoredPassword>, StoreError>;
    /// Sets a person's console password (with its audit entry, when there is one).
    async fn set_password(
        &self,
        user: &UserId,
        password: &StoredPassword,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError>;
    async fn insert_user(&self, user: &User, event: &AuditEvent) -> Result<(), StoreError>;
    /// Replaces a user's name, email, roles and status.
    async fn update_user(&self, user: &User, event: &AuditEvent) -> Result<(), StoreError>;
    /// Deletes a user and every key they own, one audit entry per key; returns the deleted key ids.
    async fn delete_user(&self, id: &UserId, event: &AuditEvent) -> Result<Vec<KeyId>, StoreError>;

    /// Every custom role (built-in roles are not stored).
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;
    async fn insert_role(&self, role: &Role, event: &AuditEvent) -> Result<(), StoreError>;
    async fn update_role(&self, role: &Role, event: &AuditEvent) -> Result<(), StoreError>;
    /// Deletes a role, takes it from its holders and deletes every key that
    /// carries it, one audit entry per key; returns the deleted key ids.
    async fn delete_role(&self, id: &RoleId, event: &AuditEvent) -> Result<Vec<KeyId>, StoreError>;

    /// Every declared scope.
    async fn list_scopes(&self) -> Result<Vec<ScopeDef>, StoreError>;
    async fn insert_scope(&self, scope: &ScopeDef, event: &AuditEvent) -> Result<(), StoreError>;

    /// A key that is not deleted.
    async fn get_key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
    /// Whether any key, live or deleted, ever had this id (ids are never reused).
    async fn key_id_taken(&self, id: &KeyId) -> Result<bool, StoreError>;
    /// Every key that is not deleted, for the in-memory index.
    async fn all_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    async fn list_keys(&self, query: &KeyQuery) -> Result<KeyPage, StoreError>;
    /// Inserts a key if its id was never used and the owner's limits allow it.
    async fn insert_key(&self, key: &KeyRecord, limits: &KeyLimits, event: &AuditEvent) -> Result<(), StoreError>;
    /// Replaces a key; with `limits`, checks them as they would stand after.
    async fn update_key(
        &self,
        key: &KeyRecord,
        limits: Option<&KeyLimits>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Deletes a key for good (its id stays taken); false if there was none.
    async fn delete_key(&self, id: &KeyId, event: &AuditEvent) -> Result<bool, StoreError>;
    /// Appends entries that accompany no other change (refused uses, tokens issued).
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Entries matching `query`, and how many match in all (ignoring paging).
    async fn list_audit(&self, query: &AuditQuery) -> Result<(Vec<AuditEntry>, u64), StoreError>;
    /// The orgs that have audit entries.
    async fn audit_orgs(&self) -> Result<Vec<OrgId>, StoreError>;
    /// The hash an org's chain continues from: where retention cut it, else genesis.
    async fn audit_anchor(&self, org: &OrgId) -> Result<String, StoreError>;
    /// Deletes an org's entries older than `before`, recording the hash at the cut; returns how many went.
    async fn prune_audit(&self, org: &OrgId, before: Timestamp) -> Result<u64, StoreError>;

    /// Writes a batch of last-used times, keeping the newest per key.
    async fn record_key_usage(&self, batch: &[KeyUsage]) -> Result<(), StoreError>;
}

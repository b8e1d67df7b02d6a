//! Row types shared by the backends and their conversion to and from the domain.

use chrono::DateTime;
use keyward_core::audit::{AuditEntry, AuditEvent};
use keyward_core::clock::Timestamp;
use keyward_core::crypto::{SealedSecret, SecretDigest};
use keyward_core::ids::{KeyId, OrgId, RoleId, UserId};
use keyward_core::model::{
    GraceSecret, KeyRecord, NetworkRestriction, Org, OrgSettings, Role, ScopeDef, ScopeGrant, User, UserKind,
    UserStatus,
};
use keyward_core::permission::Permission;
use keyward_core::store::StoreError;

pub fn secs(t: Timestamp) -> i64 {
    t.timestamp()
}

fn time(s: i64) -> Result<Timestamp, StoreError> {
    DateTime::from_timestamp(s, 0).ok_or_else(|| StoreError::Corrupt(format!("timestamp {s} out of range")))
}

fn opt_time(s: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    s.map(time).transpose()
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn u32_of(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} out of range")))
}

pub fn kind_str(k: UserKind) -> &'static str {
    match k {
        UserKind::Human => "human",
        UserKind::Service => "service",
    }
}

pub fn user_status_str(s: UserStatus) -> &'static str {
    match s {
        UserStatus::Active => "active",
        UserStatus::Disabled => "disabled",
    }
}

#[derive(sqlx::FromRow)]
pub struct OrgRow {
    id: String,
    name: String,
    max_keys_per_user: i64,
    default_expiry_days: Option<i64>,
    allow_direct_secret: bool,
    audit_retention_days: Option<i64>,
    hawk_require_payload_hash: bool,
    created_at: i64,
}

impl OrgRow {
    pub fn into_org(self) -> Result<Org, StoreError> {
        Ok(Org {
            id: OrgId::from_trusted(self.id),
            name: self.name,
            settings: OrgSettings {
                max_keys_per_user: u32_of("max_keys_per_user", self.max_keys_per_user)?,
                default_expiry_days: self.default_expiry_days.map(|d| u32_of("default_expiry_days", d)).transpose()?,
                allow_direct_secret: self.allow_direct_secret,
                audit_retention_days: self
                    .audit_retention_days
                    .map(|d| u32_of("audit_retention_days", d))
                    .transpose()?,
                hawk_require_payload_hash: self.hawk_require_payload_hash,
            },
            created_at: time(self.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct UserRow {
    id: String,
    org_id: String,
    name: String,
    email: Option<String>,
    kind: String,
    status: String,
    created_at: i64,
    token_epoch: i64,
    roles: String,
}

impl UserRow {
    pub fn into_user(self) -> Result<User, StoreError> {
        let roles: Vec<String> = json("user roles", &self.roles)?;
        Ok(User {
            id: UserId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            name: self.name,
            email: self.email,
            kind: if self.kind == "service" { UserKind::Service } else { UserKind::Human },
            roles: roles.into_iter().map(RoleId::from_trusted).collect(),
            status: if self.status == "disabled" { UserStatus::Disabled } else { UserStatus::Active },
            created_at: time(self.created_at)?,
            token_epoch: u32_of("token_epoch", self.token_epoch)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct RoleRow {
    id: String,
    org_id: String,
    name: String,
    description: String,
    permissions: String,
    max_keys: Option<i64>,
}

impl RoleRow {
    pub fn into_role(self) -> Result<Role, StoreError> {
        let perms: Vec<String> = json("role permissions", &self.permissions)?;
        Ok(Role {
            id: RoleId::from_trusted(self.id),
            org_id: Some(OrgId::from_trusted(self.org_id)),
            name: self.name,
            description: self.description,
            permissions: perms
                .iter()
                .map(|p| Permission::parse(p, true).map_err(StoreError::Corrupt))
                .collect::<Result<_, _>>()?,
            max_keys: self.max_keys.map(|m| u32_of("max_keys", m)).transpose()?,
            builtin: false,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct ScopeRow {
    org_id: String,
    name: String,
    description: String,
    resources: String,
}

impl ScopeRow {
    pub fn into_scope(self) -> Result<ScopeDef, StoreError> {
        Ok(ScopeDef {
            org_id: OrgId::from_trusted(self.org_id),
            name: self.name,
            description: self.description,
            resources: json("scope resources", &self.resources)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub org_id: String,
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub comment: String,
    pub scopes: String,
    pub expires_at: Option<i64>,
    pub locked: bool,
    pub network_restrictions: String,
    pub reauth_timeout_s: i64,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub rolled_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<String>,
    pub imported: bool,
    pub secret_digest: Option<Vec<u8>>,
    pub secret_ciphertext: Option<Vec<u8>>,
    pub prev_secret_digest: Option<Vec<u8>>,
    pub prev_secret_ciphertext: Option<Vec<u8>>,
    pub prev_valid_until: Option<i64>,
    pub inherits_owner: bool,
    pub token_epoch: i64,
    pub version: i64,
    #[sqlx(default)]
    pub roles: String,
}

fn digest(bytes: Vec<u8>) -> Result<SecretDigest, StoreError> {
    bytes.try_into().map(SecretDigest).map_err(|_| StoreError::Corrupt("secret digest is not 32 bytes".into()))
}

impl KeyRow {
    pub fn from_record(k: &KeyRecord) -> Self {
        let nets: Vec<String> = k.network_restrictions.iter().map(ToString::to_string).collect();
        Self {
            id: k.id.to_string(),
            org_id: k.org_id.to_string(),
            owner_id: k.owner_id.to_string(),
            name: k.name.clone(),
            description: k.description.clone(),
            comment: k.comment.clone(),
            scopes: serde_json::to_string(&k.scopes).unwrap_or_else(|_| "[]".into()),
            expires_at: k.expires_at.map(secs),
            locked: k.locked,
            network_restrictions: serde_json::to_string(&nets).unwrap_or_else(|_| "[]".into()),
            reauth_timeout_s: i64::from(k.reauth_timeout_s),
            created_at: secs(k.created_at),
            created_by: k.created_by.to_string(),
            updated_at: secs(k.updated_at),
            rolled_at: k.rolled_at.map(secs),
            last_used_at: k.last_used_at.map(secs),
            last_used_ip: k.last_used_ip.map(|ip| ip.to_string()),
            imported: k.imported,
            secret_digest: Some(k.secret.digest.0.to_vec()),
            secret_ciphertext: Some(k.secret.ciphertext.clone()),
            prev_secret_digest: k.previous_secret.as_ref().map(|g| g.sealed.digest.0.to_vec()),
            prev_secret_ciphertext: k.previous_secret.as_ref().map(|g| g.sealed.ciphertext.clone()),
            prev_valid_until: k.previous_secret.as_ref().map(|g| secs(g.valid_until)),
            inherits_owner: k.inherits_owner,
            token_epoch: i64::from(k.token_epoch),
            version: k.version,
            roles: String::new(),
        }
    }

    pub fn into_record(self) -> Result<KeyRecord, StoreError> {
        let roles: Vec<String> = json("key roles", &self.roles)?;
        let nets: Vec<String> = json("network restrictions", &self.network_restrictions)?;
        let scopes: Vec<ScopeGrant> = json("key scopes", &self.scopes)?;
        let (Some(d), Some(ct)) = (self.secret_digest, self.secret_ciphertext) else {
            return Err(StoreError::Corrupt(format!("key {} has no secret", self.id)));
        };
        let previous_secret = match (self.prev_secret_digest, self.prev_secret_ciphertext, self.prev_valid_until) {
            (Some(d), Some(ct), Some(until)) => Some(GraceSecret {
                sealed: SealedSecret { digest: digest(d)?, ciphertext: ct },
                valid_until: time(until)?,
            }),
            _ => None,
        };
        Ok(KeyRecord {
            id: KeyId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            owner_id: UserId::from_trusted(self.owner_id),
            name: self.name,
            description: self.description,
            comment: self.comment,
            roles: roles.into_iter().map(RoleId::from_trusted).collect(),
            scopes,
            expires_at: opt_time(self.expires_at)?,
            locked: self.locked,
            network_restrictions: nets
                .iter()
                .map(|n| n.parse::<NetworkRestriction>().map_err(StoreError::Corrupt))
                .collect::<Result<_, _>>()?,
            reauth_timeout_s: u32_of("reauth_timeout_s", self.reauth_timeout_s)?,
            created_at: time(self.created_at)?,
            created_by: UserId::from_trusted(self.created_by),
            updated_at: time(self.updated_at)?,
            rolled_at: opt_time(self.rolled_at)?,
            last_used_at: opt_time(self.last_used_at)?,
            last_used_ip: self.last_used_ip.and_then(|ip| ip.parse().ok()),
            imported: self.imported,
            secret: SealedSecret { digest: digest(d)?, ciphertext: ct },
            previous_secret,
            inherits_owner: self.inherits_owner,
            token_epoch: u32_of("token_epoch", self.token_epoch)?,
            version: self.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditRow {
    seq: i64,
    org_id: String,
    at: i64,
    actor_id: String,
    actor_key_id: Option<String>,
    source_ip: Option<String>,
    action: String,
    target_type: String,
    target_id: String,
    outcome: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    pub fn into_entry(self) -> Result<AuditEntry, StoreError> {
        Ok(AuditEntry {
            seq: self.seq,
            event: AuditEvent {
                at: time(self.at)?,
                org_id: self.org_id,
                actor_id: self.actor_id,
                actor_key_id: self.actor_key_id,
                source_ip: self.source_ip,
                action: self.action,
                target_type: self.target_type,
                target_id: self.target_id,
                outcome: self.outcome,
                details: json("audit details", &self.details)?,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

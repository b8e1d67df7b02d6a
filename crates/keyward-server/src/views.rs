//! What the API returns: the JSON shapes of API.md, built from domain records.

use crate::index::KeyIndex;
use crate::usage::UsageRecorder;
use keyward_core::clock::{Timestamp, serde_rfc3339};
use keyward_core::model::{KeyRecord, KeyStatus, Org, Role, ScopeGrant, User, UserKind, UserStatus};
use keyward_core::policy::AuthMethod;
use keyward_core::secret::Secret;
use serde::{Serialize, Serializer};

/// An API key; never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub comment: String,
    pub org_id: String,
    pub owner_id: String,
    /// Role ids; a key that inherits its owner shows the owner's roles.
    pub roles: Vec<String>,
    pub scopes: Vec<ScopeGrant>,
    /// Effective permissions: (roles ∪ scopes) ∩ owner's.
    pub permissions: Vec<String>,
    pub status: KeyStatus,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expires_at: Option<Timestamp>,
    pub network_restrictions: Vec<String>,
    pub reauth_timeout_s: u32,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub created_by: String,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub rolled_at: Option<Timestamp>,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_used_at: Option<Timestamp>,
    #[schema(required = true)]
    pub last_used_ip: Option<String>,
    pub imported: bool,
    /// While a rolled key's old secret is in its grace period, when that period ends.
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_expires_at: Option<Timestamp>,
    /// Created with neither roles nor scopes: acts with its owner's permissions as they are now.
    pub inherits_owner: bool,
}

impl KeyView {
    pub fn new(k: &KeyRecord, index: &KeyIndex, usage: &UsageRecorder, now: Timestamp) -> Self {
        let (last_used_at, last_used_ip) = match usage.pending(&k.id) {
            Some((at, ip)) if k.last_used_at.is_none_or(|stored| stored <= at) => (Some(at), ip.or(k.last_used_ip)),
            _ => (k.last_used_at, k.last_used_ip),
        };
        let owner = index.user(&k.owner_id);
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            description: k.description.clone(),
            comment: k.comment.clone(),
            org_id: k.org_id.to_string(),
            owner_id: k.owner_id.to_string(),
            roles: if k.inherits_owner {
                owner.as_ref().map(|o| o.roles.iter().map(ToString::to_string).collect()).unwrap_or_default()
            } else {
                k.roles.iter().map(ToString::to_string).collect()
            },
            scopes: k.scopes.clone(),
            permissions: index.key_permissions(&k.id).to_strings(),
            status: k.status(now, owner.as_ref().is_some_and(|o| o.status == UserStatus::Active)),
            expires_at: k.expires_at,
            network_restrictions: k.network_restrictions.iter().map(ToString::to_string).collect(),
            reauth_timeout_s: k.reauth_timeout_s,
            created_at: k.created_at,
            created_by: k.created_by.to_string(),
            updated_at: k.updated_at,
            rolled_at: k.rolled_at,
            last_used_at,
            last_used_ip: last_used_ip.map(|ip| ip.to_string()),
            imported: k.imported,
            previous_secret_expires_at: k.accepts_previous(now).map(|g| g.valid_until),
            inherits_owner: k.inherits_owner,
        }
    }
}

/// A new or rolled key with its secret: the only response that ever contains one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyWithSecret {
    pub key: KeyView,
    /// Shown once; store it now.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String, format = Password)]
    pub secret: Secret,
}

fn expose_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// An imported key (the secret is never echoed).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportedKey {
    pub key: KeyView,
}

/// Per-status counts over the filtered keys, whatever `status` asks for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyCounts {
    pub active: u64,
    pub locked: u64,
    pub expired: u64,
    /// Keys whose `expires_at` falls within the next 30 days, whatever else holds.
    pub expiring_30d: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub counts: KeyCounts,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    pub id: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResponse {
    pub results: Vec<BulkResult>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub max_keys_per_user: u32,
    #[schema(required = true)]
    pub default_expiry_days: Option<u32>,
    pub allow_direct_secret: bool,
    /// Audit entries older than this many days are pruned; `null` keeps them all.
    #[schema(required = true)]
    pub audit_retention_days: Option<u32>,
    /// Hawk requests must carry a payload hash.
    pub hawk_require_payload_hash: bool,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&Org> for OrgView {
    fn from(o: &Org) -> Self {
        Self {
            id: o.id.to_string(),
            name: o.name.clone(),
            max_keys_per_user: o.settings.max_keys_per_user,
            default_expiry_days: o.settings.default_expiry_days,
            allow_direct_secret: o.settings.allow_direct_secret,
            audit_retention_days: o.settings.audit_retention_days,
            hawk_require_payload_hash: o.settings.hawk_require_payload_hash,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[schema(required = true)]
    pub email: Option<String>,
    pub kind: UserKind,
    pub roles: Vec<String>,
    pub status: UserStatus,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            org_id: u.org_id.to_string(),
            name: u.name.clone(),
            email: u.email.clone(),
            kind: u.kind,
            roles: u.roles.iter().map(ToString::to_string).collect(),
            status: u.status,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u32>,
    pub builtin: bool,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name.clone(),
            description: r.description.clone(),
            permissions: r.permissions.iter().map(ToString::to_string).collect(),
            max_keys: r.max_keys,
            builtin: r.builtin,
        }
    }
}

/// The caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeView {
    pub user: UserView,
    /// The key used, or `null` (a session or token is not a key).
    #[schema(required = true)]
    pub key: Option<KeyView>,
    pub org_id: String,
    pub permissions: Vec<String>,
    pub auth_method: AuthMethod,
}

/// One page of a list: the convention of every list endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

impl<T> Page<T> {
    /// Cuts one page out of a full, ordered list.
    pub fn of(all: Vec<T>, page: u32, per_page: u32) -> Self {
        let total = all.len() as u64;
        let skip = (page.saturating_sub(1) as usize).saturating_mul(per_page as usize);
        Self { items: all.into_iter().skip(skip).take(per_page as usize).collect(), total, page, per_page }
    }
}

/// A scope of the catalog and its resources.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScopeView {
    pub name: String,
    pub description: String,
    pub resources: Vec<String>,
    /// The service's own scope, `keyward`.
    pub builtin: bool,
}

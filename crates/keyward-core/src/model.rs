//! Organizations, users, roles, declared scopes and the stored form of an API key.

use crate::clock::Timestamp;
use crate::crypto::SealedSecret;
use crate::ids::{KeyId, OrgId, RoleId, UserId};
use crate::permission::{Access, Permission};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An organization's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSettings {
    /// 1–100000, default 10.
    pub max_keys_per_user: u32,
    /// Expiry applied to creates that name none; `None` leaves such keys without expiry.
    pub default_expiry_days: Option<u32>,
    /// Whether keys may authenticate with the secret itself (else Hawk and tokens only).
    pub allow_direct_secret: bool,
    /// Audit entries older than this are pruned (the chain stays verifiable); `None` keeps them all.
    pub audit_retention_days: Option<u32>,
    /// Hawk requests must carry a payload `hash` (which is then always checked).
    pub hawk_require_payload_hash: bool,
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            max_keys_per_user: 10,
            default_expiry_days: None,
            allow_direct_secret: true,
            audit_retention_days: None,
            hawk_require_payload_hash: false,
        }
    }
}

pub const MAX_KEYS_PER_USER_RANGE: std::ops::RangeInclusive<u32> = 1..=100_000;
pub const DEFAULT_EXPIRY_DAYS_RANGE: std::ops::RangeInclusive<u32> = 1..=36_500;
pub const AUDIT_RETENTION_DAYS_RANGE: std::ops::RangeInclusive<u32> = 1..=36_500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub settings: OrgSettings,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    Human,
    Service,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    pub name: String,
    pub email: Option<String>,
    pub kind: UserKind,
    pub roles: Vec<RoleId>,
    pub status: UserStatus,
    pub created_at: Timestamp,
    /// Bumped when the user is disabled: access tokens carry the value they were
    /// bought under, so a disable ends them for good, re-enabled or not.
    pub token_epoch: u32,
}

/// A role: a named set of permission patterns, optionally capping keys per holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: RoleId,
    /// `None` for the built-in roles, which every org shares.
    pub org_id: Option<OrgId>,
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub max_keys: Option<u32>,
    pub builtin: bool,
}

pub const ACCOUNT_ADMIN: &str = "account_admin";
pub const ORG_ADMIN: &str = "org_admin";
pub const AUDITOR: &str = "auditor";
pub const SERVICE_REQUESTOR: &str = "service_requestor";

/// The built-in roles, whose ids are their names.
#[must_use]
pub fn builtin_roles() -> Vec<Role> {
    let role = |id: &str, description: &str, permissions: Vec<Permission>| Role {
        id: RoleId::from_trusted(id),
        org_id: None,
        name: id.to_owned(),
        description: description.to_owned(),
        permissions,
        max_keys: None,
        builtin: true,
    };
    vec![
        role(ACCOUNT_ADMIN, "Everything, in every organization.", vec![Permission::new("*", "*", Access::Write)]),
        role(ORG_ADMIN, "Everything in its own organization.", vec![Permission::new("*", "*", Access::Write)]),
        role(
            AUDITOR,
            "Reads everything in its organization, audit included; changes nothing.",
            vec![Permission::new("*", "*", Access::Read)],
        ),
        role(
            SERVICE_REQUESTOR,
            "A machine identity: holds API keys, never signs in to the web UI; holds what its other roles grant.",
            vec![],
        ),
    ]
}

/// A scope an organization declares for its own APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeDef {
    pub org_id: OrgId,
    pub name: String,
    pub description: String,
    pub resources: Vec<String>,
}

/// One scope grant on a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeGrant {
    pub scope: String,
    pub resource: String,
    pub access: Access,
}

impl ScopeGrant {
    #[must_use]
    pub fn permission(&self) -> Permission {
        Permission::new(&self.scope, &self.resource, self.access)
    }
}

/// A network a key may be used from: a single address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkRestriction {
    Addr(IpAddr),
    Net(IpNet),
}

impl NetworkRestriction {
    /// Whether `ip` falls inside; IPv4-mapped IPv6 sources count as their IPv4 address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match self {
            NetworkRestriction::Addr(a) => *a == ip,
            NetworkRestriction::Net(n) => n.contains(&ip),
        }
    }
}

impl FromStr for NetworkRestriction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(NetworkRestriction::Addr(addr));
        }
        let net: IpNet = s.parse().map_err(|_| "must be an IPv4/IPv6 address or CIDR".to_owned())?;
        if net.trunc() != net {
            return Err(format!("`{s}` has host bits set; did you mean `{}`?", net.trunc()));
        }
        Ok(NetworkRestriction::Net(net))
    }
}

impl fmt::Display for NetworkRestriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkRestriction::Addr(a) => a.fmt(f),
            NetworkRestriction::Net(n) => n.fmt(f),
        }
    }
}

/// A key's status as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Locked,
    Expired,
}

impl KeyStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "locked" => Some(Self::Locked),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// A secret that was rolled out but stays valid until its grace period ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraceSecret {
    pub sealed: SealedSecret,
    pub valid_until: Timestamp,
}

impl GraceSecret {
    /// The grace rule, the one place it is written: the old secret works until `valid_until`, exclusive.
    #[must_use]
    pub fn accepts(&self, now: Timestamp) -> bool {
        now < self.valid_until
    }
}

/// An API key as stored. Never serialized to clients as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub org_id: OrgId,
    pub owner_id: UserId,
    pub name: String,
    pub description: String,
    pub comment: String,
    pub roles: Vec<RoleId>,
    pub scopes: Vec<ScopeGrant>,
    pub expires_at: Option<Timestamp>,
    pub locked: bool,
    pub network_restrictions: Vec<NetworkRestriction>,
    pub reauth_timeout_s: u32,
    pub created_at: Timestamp,
    pub created_by: UserId,
    pub updated_at: Timestamp,
    pub rolled_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<IpAddr>,
    pub imported: bool,
    pub secret: SealedSecret,
    pub previous_secret: Option<GraceSecret>,
    /// Created with neither roles nor scopes: acts with its owner's permissions
    /// as they are at each request, and takes no per-role slot.
    pub inherits_owner: bool,
    /// Bumped by every lock: access tokens carry the value they were bought
    /// under, so a lock ends them for good, unlocked or not.
    pub token_epoch: u32,
    /// Bumped by every update; an update made from an older read is refused.
    pub version: i64,
}

/// How far ahead `expiring_30d` looks.
pub const EXPIRING_SOON_DAYS: i64 = 30;

impl KeyRecord {
    /// The status at `now`: expired once `expires_at` has passed, else locked
    /// when the key is locked or its owner disabled, else active.
    #[must_use]
    pub fn status(&self, now: Timestamp, owner_active: bool) -> KeyStatus {
        if self.expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else if self.locked || !owner_active {
            KeyStatus::Locked
        } else {
            KeyStatus::Active
        }
    }

    /// Whether the key expires within the next 30 days (whatever its status).
    #[must_use]
    pub fn expiring_soon(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e > now && e <= now + chrono::Duration::days(EXPIRING_SOON_DAYS))
    }

    /// The previous secret, while its grace period lets it be used at `now`.
    #[must_use]
    pub fn accepts_previous(&self, now: Timestamp) -> Option<&GraceSecret> {
        self.previous_secret.as_ref().filter(|p| p.accepts(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_restrictions_parse_and_match() {
        let net: NetworkRestriction = "203.0.113.0/24".parse().unwrap();
        assert!(net.contains("203.0.113.9".parse().unwrap()));
        assert!(net.contains("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!net.contains("203.0.114.1".parse().unwrap()));
        let v6: NetworkRestriction = "2001:db8::1".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::1");
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db8::2".parse().unwrap()));
        let v6net: NetworkRestriction = "2001:db8::/32".parse().unwrap();
        assert!(v6net.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!("10.0.0.1/24".parse::<NetworkRestriction>().unwrap_err().contains("10.0.0.0/24"));
        assert!("300.1.1.1".parse::<NetworkRestriction>().is_err());
        assert!("example.com".parse::<NetworkRestriction>().is_err());
        assert!("10.0.0.0/33".parse::<NetworkRestriction>().is_err());
    }
}

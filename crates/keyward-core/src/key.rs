//! The rules of API keys: what a create, import or change may contain, how
//! limits apply, and how a presented credential is judged.

use crate::clock::Timestamp;
use crate::conflict::{Conflict, KeyLimit};
use crate::crypto::SealedSecret;
use crate::error::CoreError;
use crate::ids::UserId;
use crate::ids::{KeyId, RoleId};
use crate::input::Problems;
use crate::model::{GraceSecret, KeyRecord, NetworkRestriction, OrgSettings, ScopeGrant, User};
use crate::secret::Secret;
use chrono::{DateTime, Duration};
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;

pub const MAX_NETWORK_RESTRICTIONS: usize = 10;
pub const REAUTH_RANGE: std::ops::RangeInclusive<i64> = 10..=86_400;
pub const DEFAULT_REAUTH_TIMEOUT_S: u32 = 60;
pub const MAX_GRACE_PERIOD_S: i64 = 604_800;
const MAX_TEXT: usize = 1024;
const MAX_EXPIRES_IN_DAYS: i64 = 36_500;

/// Body of `POST /v1/keys` and `POST /v1/keys/import`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1–255 characters; required.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Caller-chosen id, `[A-Za-z0-9_.-]{3,64}`; required on import.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,64}$")]
    pub id: Option<String>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    #[schema(max_length = 1024)]
    pub comment: Option<String>,
    /// Role ids; with neither `roles` nor `scopes` the key carries all of its owner's roles.
    pub roles: Option<Vec<String>>,
    pub scopes: Option<Vec<ScopeGrant>>,
    /// A future RFC 3339 time, or `null` for never (even where the org has a default expiry).
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// 1–36500; instead of `expires_at`.
    #[schema(minimum = 1, maximum = 36500)]
    pub expires_in_days: Option<i64>,
    /// At most 10 IPv4/IPv6 addresses or CIDRs.
    #[schema(max_items = 10)]
    pub network_restrictions: Option<Vec<String>>,
    /// 10–86400, default 60.
    #[schema(minimum = 10, maximum = 86400)]
    pub reauth_timeout_s: Option<i64>,
    /// The user the key is for (admins only); default the caller.
    pub owner_id: Option<String>,
    /// The existing secret; import only, never echoed.
    #[schema(value_type = Option<String>, format = Password)]
    pub secret: Option<ImportedSecret>,
}

/// A secret in a request body; it keeps the value out of `Debug`.
pub struct ImportedSecret(pub Secret);

impl std::fmt::Debug for ImportedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for ImportedSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| ImportedSecret(Secret::from_presented(s)))
    }
}

/// Body of `PATCH /v1/keys/{id}`; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<String>, max_length = 1024)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<String>, max_length = 1024)]
    pub comment: Option<Option<String>>,
    /// Role ids or names; giving roles or scopes ends a key's inheritance of its owner.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub roles: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<Vec<ScopeGrant>>)]
    pub scopes: Option<Option<Vec<ScopeGrant>>>,
    /// A future RFC 3339 time, or `null` for never.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// 1–36500; instead of `expires_at`.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 36500)]
    pub expires_in_days: Option<Option<i64>>,
    /// At most 10 IPv4/IPv6 addresses or CIDRs.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<Vec<String>>, max_items = 10)]
    pub network_restrictions: Option<Option<Vec<String>>>,
    /// 10–86400.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<i64>, minimum = 10, maximum = 86400)]
    pub reauth_timeout_s: Option<Option<i64>>,
}

/// A field sent as `null` where null means nothing: named, never silently ignored.
fn not_null<T>(p: &mut Problems, field: &str, v: Option<Option<T>>) -> Option<T> {
    match v {
        Some(None) => {
            p.add(field, "must not be null");
            None
        }
        Some(Some(v)) => Some(v),
        None => None,
    }
}

/// A validated create or import.
#[derive(Debug)]
pub struct KeySpec {
    pub id: Option<KeyId>,
    pub name: String,
    pub description: String,
    pub comment: String,
    /// `None`: carry the owner's roles.
    pub roles: Option<Vec<RoleId>>,
    pub scopes: Vec<ScopeGrant>,
    pub expires_at: Option<Timestamp>,
    /// The request named an expiry (a date, a number of days, or `null` for never); else the
    /// org default applies.
    pub expiry_given: bool,
    pub network_restrictions: Vec<NetworkRestriction>,
    pub reauth_timeout_s: u32,
    pub secret: Option<Secret>,
}

fn check_name(p: &mut Problems, name: &str) {
    let n = name.chars().count();
    if n == 0 || n > 255 {
        p.add("name", "must be 1 to 255 characters");
    } else if name.trim().is_empty() {
        p.add("name", "must not be blank");
    } else if name.chars().any(char::is_control) {
        p.add("name", "must not contain control characters");
    }
}

fn check_text(p: &mut Problems, field: &str, text: &str) {
    if text.chars().count() > MAX_TEXT {
        p.add(field, format!("must be at most {MAX_TEXT} characters"));
    }
}

fn parse_future_time(p: &mut Problems, field: &str, text: &str, now: Timestamp) -> Option<Timestamp> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => {
            let t = t.to_utc();
            if t <= now {
                p.add(field, "must be in the future");
                None
            } else {
                // The API speaks whole seconds.
                Some(t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos())))
            }
        }
        Err(_) => {
            p.add(field, "must be an RFC 3339 time such as 2030-01-31T12:00:00Z");
            None
        }
    }
}

fn expiry_in_days(p: &mut Problems, days: i64, now: Timestamp) -> Option<Timestamp> {
    if !(1..=MAX_EXPIRES_IN_DAYS).contains(&days) {
        p.add("expires_in_days", format!("must be 1 to {MAX_EXPIRES_IN_DAYS}"));
        return None;
    }
    Some(now + Duration::days(days))
}

fn parse_networks(p: &mut Problems, list: &[String]) -> Vec<NetworkRestriction> {
    if list.len() > MAX_NETWORK_RESTRICTIONS {
        p.add("network_restrictions", format!("at most {MAX_NETWORK_RESTRICTIONS} networks, got {}", list.len()));
        return vec![];
    }
    let mut out: Vec<NetworkRestriction> = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        match s.parse::<NetworkRestriction>() {
            Ok(n) if out.contains(&n) => p.add(format!("network_restrictions[{i}]"), format!("`{n}` is listed twice")),
            Ok(n) => out.push(n),
            Err(e) => p.add(format!("network_restrictions[{i}]"), e),
        }
    }
    out
}

fn parse_reauth(p: &mut Problems, v: i64) -> u32 {
    if REAUTH_RANGE.contains(&v) {
        u32::try_from(v).unwrap_or(DEFAULT_REAUTH_TIMEOUT_S)
    } else {
        p.add("reauth_timeout_s", "must be 10 to 86400 seconds");
        DEFAULT_REAUTH_TIMEOUT_S
    }
}

fn parse_roles(p: &mut Problems, roles: &[String]) -> Vec<RoleId> {
    let mut out: Vec<RoleId> = Vec::new();
    for (i, r) in roles.iter().enumerate() {
        if r.is_empty() || r.len() > 64 {
            p.add(format!("roles[{i}]"), "is not a role id");
        } else {
            let id = RoleId::from_trusted(r.clone());
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

fn normalize_scopes(scopes: &[ScopeGrant]) -> Vec<ScopeGrant> {
    let mut out = scopes.to_vec();
    out.sort();
    out.dedup();
    out
}

impl CreateKeyRequest {
    /// Validates a create (`import == false`) or an import, reporting every bad field.
    pub fn into_spec(self, import: bool, now: Timestamp) -> Result<KeySpec, CoreError> {
        let mut p = Problems::default();
        let name = self.name.unwrap_or_default();
        if name.is_empty() {
            p.add("name", "is required (1 to 255 characters)");
        } else {
            check_name(&mut p, &name);
        }
        let id = match self.id {
            Some(id) => KeyId::parse(&id).map_err(|e| p.add("id", e)).ok(),
            None if import => {
                p.add("id", "is required on import");
                None
            }
            None => None,
        };
        let secret = match (import, self.secret) {
            (true, Some(ImportedSecret(s))) => Secret::parse_import(s.expose()).map_err(|e| p.add("secret", e)).ok(),
            (true, None) => {
                p.add("secret", "is required on import");
                None
            }
            (false, Some(_)) => {
                p.add("secret", "is only accepted by POST /v1/keys/import");
                None
            }
            (false, None) => None,
        };
        let description = self.description.unwrap_or_default();
        check_text(&mut p, "description", &description);
        let comment = self.comment.unwrap_or_default();
        check_text(&mut p, "comment", &comment);
        let expiry_given = self.expires_at.is_some() || self.expires_in_days.is_some();
        let expires_at = match (self.expires_at, self.expires_in_days) {
            (Some(_), Some(_)) => {
                p.add("expires_in_days", "give expires_at or expires_in_days, not both");
                None
            }
            (Some(Some(t)), None) => parse_future_time(&mut p, "expires_at", &t, now),
            (Some(None), None) | (None, None) => None,
            (None, Some(d)) => expiry_in_days(&mut p, d, now),
        };
        let network_restrictions = parse_networks(&mut p, &self.network_restrictions.unwrap_or_default());
        let reauth_timeout_s = self.reauth_timeout_s.map_or(DEFAULT_REAUTH_TIMEOUT_S, |v| parse_reauth(&mut p, v));
        let roles = self.roles.map(|r| parse_roles(&mut p, &r));
        let scopes = normalize_scopes(&self.scopes.unwrap_or_default());
        let spec = KeySpec {
            id,
            name,
            description,
            comment,
            roles: if roles.is_none() && scopes.is_empty() { None } else { Some(roles.unwrap_or_default()) },
            scopes,
            expires_at,
            expiry_given,
            network_restrictions,
            reauth_timeout_s,
            secret,
        };
        p.finish(spec)
    }
}

/// A validated change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct KeyChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub comment: Option<String>,
    pub roles: Option<Vec<RoleId>>,
    pub scopes: Option<Vec<ScopeGrant>>,
    pub expires_at: Option<Option<Timestamp>>,
    pub network_restrictions: Option<Vec<NetworkRestriction>>,
    pub reauth_timeout_s: Option<u32>,
}

impl UpdateKeyRequest {
    pub fn into_change(self, now: Timestamp) -> Result<KeyChange, CoreError> {
        let mut p = Problems::default();
        let name = not_null(&mut p, "name", self.name);
        let description = not_null(&mut p, "description", self.description);
        let comment = not_null(&mut p, "comment", self.comment);
        let roles = not_null(&mut p, "roles", self.roles);
        let scopes = not_null(&mut p, "scopes", self.scopes);
        let expires_in_days = not_null(&mut p, "expires_in_days", self.expires_in_days);
        let network_restrictions = not_null(&mut p, "network_restrictions", self.network_restrictions);
        let reauth_timeout_s = not_null(&mut p, "reauth_timeout_s", self.reauth_timeout_s);
        if let Some(name) = &name {
            check_name(&mut p, name);
        }
        if let Some(d) = &description {
            check_text(&mut p, "description", d);
        }
        if let Some(c) = &comment {
            check_text(&mut p, "comment", c);
        }
        let nothing_named = name.is_none()
            && description.is_none()
            && comment.is_none()
            && roles.is_none()
            && scopes.is_none()
            && self.expires_at.is_none()
            && expires_in_days.is_none()
            && network_restrictions.is_none()
            && reauth_timeout_s.is_none();
        if nothing_named && p.is_empty() {
            p.add("body", "names nothing to change");
        }
        let expires_at = match (self.expires_at, expires_in_days) {
            (Some(_), Some(_)) => {
                p.add("expires_in_days", "give expires_at or expires_in_days, not both");
                None
            }
            (Some(None), None) => Some(None),
            (Some(Some(t)), None) => Some(parse_future_time(&mut p, "expires_at", &t, now)),
            (None, Some(d)) => Some(expiry_in_days(&mut p, d, now)),
            (None, None) => None,
        };
        let change = KeyChange {
            name,
            description,
            comment,
            roles: roles.map(|r| parse_roles(&mut p, &r)),
            scopes: scopes.map(|s| normalize_scopes(&s)),
            expires_at,
            network_restrictions: network_restrictions.map(|n| parse_networks(&mut p, &n)),
            reauth_timeout_s: reauth_timeout_s.map(|v| parse_reauth(&mut p, v)),
        };
        p.finish(change)
    }
}

impl KeyChange {
    /// Applies the change to a stored key and names the fields whose value
    /// changed; a change that changes nothing leaves the key untouched.
    pub fn apply(self, key: &mut KeyRecord, now: Timestamp) -> Vec<&'static str> {
        fn set<T: PartialEq>(changed: &mut Vec<&'static str>, field: &'static str, slot: &mut T, v: Option<T>) {
            if let Some(v) = v
                && *slot != v
            {
                *slot = v;
                changed.push(field);
            }
        }
        let mut changed = Vec::new();
        // Naming roles or scopes ends inheritance, even if the lists are what the key showed.
        if key.inherits_owner && (self.roles.is_some() || self.scopes.is_some()) {
            key.inherits_owner = false;
            changed.push("inherits_owner");
        }
        set(&mut changed, "name", &mut key.name, self.name);
        set(&mut changed, "description", &mut key.description, self.description);
        set(&mut changed, "comment", &mut key.comment, self.comment);
        set(&mut changed, "roles", &mut key.roles, self.roles);
        set(&mut changed, "scopes", &mut key.scopes, self.scopes);
        set(&mut changed, "expires_at", &mut key.expires_at, self.expires_at);
        set(&mut changed, "network_restrictions", &mut key.network_restrictions, self.network_restrictions);
        set(&mut changed, "reauth_timeout_s", &mut key.reauth_timeout_s, self.reauth_timeout_s);
        if !changed.is_empty() {
            key.updated_at = now;
        }
        changed
    }

    /// Whether the change touches what the key may do (roles or scopes).
    #[must_use]
    pub fn changes_grants(&self) -> bool {
        self.roles.is_some() || self.scopes.is_some()
    }
}

impl KeySpec {
    /// A spec with only a name, for keys the service makes itself (bootstrap, admin commands).
    #[must_use]
    pub fn named(name: impl Into<String>, roles: Vec<RoleId>) -> Self {
        Self {
            id: None,
            name: name.into(),
            description: String::new(),
            comment: String::new(),
            roles: Some(roles),
            scopes: vec![],
            expires_at: None,
            expiry_given: true,
            network_restrictions: vec![],
            reauth_timeout_s: DEFAULT_REAUTH_TIMEOUT_S,
            secret: None,
        }
    }

    /// Builds a new key for `owner`: the org's default expiry applies when the
    /// request named none; a key given neither roles nor scopes inherits its
    /// owner; the secret is the imported one or a fresh one, returned beside
    /// the record that holds it sealed.
    pub fn into_record(
        self,
        owner: &User,
        settings: &OrgSettings,
        created_by: &UserId,
        now: Timestamp,
        seal: impl FnOnce(&KeyId, &Secret) -> SealedSecret,
    ) -> (KeyRecord, Secret) {
        let expires_at = if self.expiry_given {
            self.expires_at
        } else {
            settings.default_expiry_days.map(|d| now + Duration::days(i64::from(d)))
        };
        let id = self.id.unwrap_or_else(KeyId::generate);
        let imported = self.secret.is_some();
        let secret = self.secret.unwrap_or_else(Secret::generate);
        let record = KeyRecord {
            secret: seal(&id, &secret),
            id,
            org_id: owner.org_id.clone(),
            owner_id: owner.id.clone(),
            name: self.name,
            description: self.description,
            comment: self.comment,
            inherits_owner: self.roles.is_none(),
            roles: self.roles.unwrap_or_default(),
            scopes: self.scopes,
            expires_at,
            locked: false,
            network_restrictions: self.network_restrictions,
            reauth_timeout_s: self.reauth_timeout_s,
            created_at: now,
            created_by: created_by.clone(),
            updated_at: now,
            rolled_at: None,
            last_used_at: None,
            last_used_ip: None,
            imported,
            previous_secret: None,
            token_epoch: 0,
            version: 0,
        };
        (record, secret)
    }
}

impl KeyRecord {
    /// Replaces the secret; the old one stays accepted for `grace` (none when zero).
    pub fn roll(&mut self, new_secret: SealedSecret, grace: Duration, now: Timestamp) {
        let old = std::mem::replace(&mut self.secret, new_secret);
        self.previous_secret =
            (grace > Duration::zero()).then(|| GraceSecret { sealed: old, valid_until: now + grace });
        self.rolled_at = Some(now);
        self.updated_at = now;
    }

    /// Ends a grace period at once; false when none is running.
    pub fn end_grace(&mut self, now: Timestamp) -> bool {
        let running = self.accepts_previous(now).is_some();
        self.previous_secret = None;
        if running {
            self.updated_at = now;
        }
        running
    }

    /// Locks or unlocks; false when the key already was so. A lock ends every
    /// access token bought before it, for good.
    pub fn set_locked(&mut self, locked: bool, now: Timestamp) -> bool {
        if self.locked == locked {
            return false;
        }
        self.locked = locked;
        if locked {
            self.token_epoch = self.token_epoch.wrapping_add(1);
        }
        self.updated_at = now;
        true
    }
}

/// Validates a roll's grace period (0–604800 s).
pub fn parse_grace_period(v: Option<i64>) -> Result<Duration, CoreError> {
    match v.unwrap_or(0) {
        s @ 0..=MAX_GRACE_PERIOD_S => Ok(Duration::seconds(s)),
        _ => Err(CoreError::field("grace_period_s", "must be 0 to 604800 seconds")),
    }
}

/// Key caps that apply to one owner: the org's per-user limit and each role's per-holder cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLimits {
    pub max_per_user: u32,
    pub role_caps: Vec<RoleCap>,
}

/// A role's cap on keys per holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCap {
    pub role: RoleId,
    /// For messages: people know roles by name, not by generated id.
    pub name: String,
    pub max_keys: u32,
}

impl KeyLimits {
    /// Checks the counts of the owner's keys as they would be after the write.
    pub fn check(&self, total_after: u64, role_counts_after: &[(RoleId, u64)]) -> Result<(), Conflict> {
        if total_after > u64::from(self.max_per_user) {
            return Err(Conflict::KeyLimitReached(KeyLimit::PerUser { max: self.max_per_user }));
        }
        for cap in &self.role_caps {
            let n = role_counts_after.iter().find(|(r, _)| *r == cap.role).map_or(0, |(_, n)| *n);
            if n > u64::from(cap.max_keys) {
                return Err(Conflict::KeyLimitReached(KeyLimit::PerRole { role: cap.name.clone(), max: cap.max_keys }));
            }
        }
        Ok(())
    }
}

/// Why a credential was refused, in the order the checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    InvalidCredentials,
    KeyLocked,
    KeyExpired,
    IpNotAllowed,
    /// Too many failed attempts for this key id or from this address: wait, then try again.
    TooManyAttempts,
}

impl AuthFailure {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::InvalidCredentials => "invalid_credentials",
            AuthFailure::KeyLocked => "key_locked",
            AuthFailure::KeyExpired => "key_expired",
            AuthFailure::IpNotAllowed => "ip_not_allowed",
            AuthFailure::TooManyAttempts => "too_many_attempts",
        }
    }
}

/// What a credential check needs to know of a key, held in memory.
#[derive(Debug, Clone)]
pub struct KeyState {
    /// Locked by an admin, or its owner is disabled.
    pub locked: bool,
    pub expires_at: Option<Timestamp>,
    pub network_restrictions: Vec<NetworkRestriction>,
}

/// Judges a key whose secret already matched: locked, then expired, then source address.
pub fn check_key_state(state: &KeyState, now: Timestamp, source: IpAddr) -> Result<(), AuthFailure> {
    if state.locked {
        return Err(AuthFailure::KeyLocked);
    }
    if state.expires_at.is_some_and(|e| e <= now) {
        return Err(AuthFailure::KeyExpired);
    }
    if !state.network_restrictions.is_empty() && !state.network_restrictions.iter().any(|n| n.contains(source)) {
        return Err(AuthFailure::IpNotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn fields(err: CoreError) -> Vec<String> {
        match err {
            CoreError::Validation(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_create_is_valid_and_carries_the_owners_roles() {
        let spec = CreateKeyRequest { name: Some("ci".into()), ..Default::default() }.into_spec(false, now()).unwrap();
        assert!(spec.roles.is_none());
        assert_eq!(spec.reauth_timeout_s, 60);
        assert!(spec.expires_at.is_none() && !spec.expiry_given);
    }

    #[test]
    fn every_bad_field_is_named() {
        let req = CreateKeyRequest {
            name: Some("x".repeat(256)),
            id: Some("a b".into()),
            expires_at: Some(Some("2020-01-01T00:00:00Z".into())),
            network_restrictions: Some(vec!["10.0.0.0/8".into(), "nope".into()]),
            reauth_timeout_s: Some(9),
            description: Some("d".repeat(1025)),
            ..Default::default()
        };
        let f = fields(req.into_spec(false, now()).unwrap_err());
        for expected in ["name", "id", "expires_at", "network_restrictions[1]", "reauth_timeout_s", "description"] {
            assert!(f.contains(&expected.to_owned()), "{expected} missing from {f:?}");
        }
    }

    #[test]
    fn name_bounds() {
        let mk = |n: &str| CreateKeyRequest { name: Some(n.into()), ..Default::default() }.into_spec(false, now());
        assert!(mk(&"é".repeat(255)).is_ok(), "255 characters, not bytes");
        assert!(mk(&"x".repeat(256)).is_err());
        assert!(mk("").is_err());
        assert!(mk("   ").is_err());
        assert!(CreateKeyRequest::default().into_spec(false, now()).is_err());
    }

    #[test]
    fn at_most_ten_networks() {
        let nets: Vec<String> = (0..11).map(|i| format!("10.0.{i}.0/24")).collect();
        let req = CreateKeyRequest {
            name: Some("n".into()),
            network_restrictions: Some(nets[..10].to_vec()),
            ..Default::default()
        };
        assert_eq!(req.into_spec(false, now()).unwrap().network_restrictions.len(), 10);
        let req = CreateKeyRequest { name: Some("n".into()), network_restrictions: Some(nets), ..Default::default() };
        assert_eq!(fields(req.into_spec(false, now()).unwrap_err()), vec!["network_restrictions"]);
        let dup = CreateKeyRequest {
            name: Some("n".into()),
            network_restrictions: Some(vec!["10.0.0.1".into(), "10.0.0.1".into()]),
            ..Default::default()
        };
        assert!(dup.into_spec(false, now()).is_err());
    }

    #[test]
    fn reauth_bounds() {
        for (v, ok) in [(10, true), (86_400, true), (9, false), (86_401, false), (-1, false)] {
            let req = CreateKeyRequest { name: Some("n".into()), reauth_timeout_s: Some(v), ..Default::default() };
            assert_eq!(req.into_spec(false, now()).is_ok(), ok, "{v}");
        }
    }

    #[test]
    fn expiry_rules() {
        let mk = |at: Option<&str>, days: Option<i64>| {
            CreateKeyRequest {
                name: Some("n".into()),
                expires_at: at.map(|t| Some(t.into())),
                expires_in_days: days,
                ..Default::default()
            }
            .into_spec(false, now())
        };
        assert_eq!(mk(Some("2026-11-22T10:00:01Z"), None).unwrap().expires_at, Some(now() + Duration::seconds(1)));
        assert!(mk(Some("2026-11-22T10:00:00Z"), None).is_err(), "now is not the future");
        assert!(mk(Some("tomorrow"), None).is_err());
        assert_eq!(mk(None, Some(30)).unwrap().expires_at, Some(now() + Duration::days(30)));
        assert!(mk(None, Some(0)).is_err());
        assert!(mk(Some("2030-01-01T00:00:00Z"), Some(3)).is_err());
        assert_eq!(
            mk(Some("2030-01-01T01:00:00+01:00"), None).unwrap().expires_at.unwrap().to_rfc3339(),
            "2030-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn import_needs_id_and_a_valid_secret() {
        let f = fields(
            CreateKeyRequest { name: Some("n".into()), ..Default::default() }.into_spec(true, now()).unwrap_err(),
        );
        assert_eq!(f, vec!["id", "secret"]);
        let req = CreateKeyRequest {
            name: Some("n".into()),
            id: Some("legacy-1".into()),
            secret: Some(ImportedSecret(Secret::from_presented("short"))),
            ..Default::default()
        };
        assert_eq!(fields(req.into_spec(true, now()).unwrap_err()), vec!["secret"]);
        let req = CreateKeyRequest {
            name: Some("n".into()),
            secret: Some(ImportedSecret(Secret::from_presented("x".repeat(30)))),
            ..Default::default()
        };
        assert_eq!(fields(req.into_spec(false, now()).unwrap_err()), vec!["secret"], "create takes no secret");
    }

    #[test]
    fn patch_null_expiry_means_never() {
        let change: UpdateKeyRequest = serde_json::from_str(r#"{"expires_at": null}"#).unwrap();
        assert_eq!(change.into_change(now()).unwrap().expires_at, Some(None));
        let change: UpdateKeyRequest = serde_json::from_str(r#"{"name": "n"}"#).unwrap();
        assert_eq!(change.into_change(now()).unwrap().expires_at, None);
        assert!(serde_json::from_str::<UpdateKeyRequest>(r#"{"expire_at": null}"#).is_err(), "typos are refused");
    }

    #[test]
    fn grace_period_bounds() {
        assert!(parse_grace_period(None).is_ok());
        assert!(parse_grace_period(Some(604_800)).is_ok());
        assert!(parse_grace_period(Some(604_801)).is_err());
        assert!(parse_grace_period(Some(-1)).is_err());
    }

    #[test]
    fn explicit_null_expiry_means_never_and_overrides_the_org_default() {
        let mk = |at: Option<Option<&str>>| {
            CreateKeyRequest { name: Some("n".into()), expires_at: at.map(|t| t.map(Into::into)), ..Default::default() }
                .into_spec(false, now())
                .unwrap()
        };
        let settings = OrgSettings { default_expiry_days: Some(30), ..OrgSettings::default() };
        let owner = test_owner();
        let build = |spec: KeySpec| spec.into_record(&owner, &settings, &owner.id, now(), |_, _| test_sealed()).0;
        assert_eq!(build(mk(Some(None))).expires_at, None, "null: never, whatever the org default");
        assert_eq!(build(mk(None)).expires_at, Some(now() + Duration::days(30)), "absent: the org default");
        assert_eq!(
            build(mk(Some(Some("2030-01-01T00:00:00Z")))).expires_at.map(|t| t.timestamp()),
            Some(1_893_456_000)
        );
    }

    #[test]
    fn a_key_without_roles_or_scopes_inherits_its_owner() {
        let owner = test_owner();
        let settings = OrgSettings::default();
        let spec = CreateKeyRequest { name: Some("n".into()), ..Default::default() }.into_spec(false, now()).unwrap();
        let (key, _) = spec.into_record(&owner, &settings, &owner.id, now(), |_, _| test_sealed());
        assert!(key.inherits_owner);
        assert!(key.roles.is_empty(), "an inheriting key takes no per-role slot");
        let scoped = CreateKeyRequest {
            name: Some("n".into()),
            scopes: Some(vec![ScopeGrant {
                scope: "a".into(),
                resource: "b".into(),
                access: crate::permission::Access::Read,
            }]),
            ..Default::default()
        }
        .into_spec(false, now())
        .unwrap();
        assert!(!scoped.into_record(&owner, &settings, &owner.id, now(), |_, _| test_sealed()).0.inherits_owner);
    }

    #[test]
    fn a_patch_that_names_nothing_or_null_is_refused() {
        let parse = |json: &str| serde_json::from_str::<UpdateKeyRequest>(json).unwrap().into_change(now());
        assert_eq!(fields(parse("{}").unwrap_err()), vec!["body"]);
        assert_eq!(fields(parse(r#"{"expires_in_days": null}"#).unwrap_err()), vec!["expires_in_days"]);
        assert_eq!(fields(parse(r#"{"name": null, "comment": null}"#).unwrap_err()), vec!["name", "comment"]);
        assert!(parse(r#"{"expires_at": null}"#).is_ok(), "null expires_at means never");
        assert!(parse(r#"{"comment": ""}"#).is_ok());
    }

    #[test]
    fn apply_names_only_what_changed() {
        let owner = test_owner();
        let spec = CreateKeyRequest { name: Some("n".into()), ..Default::default() }.into_spec(false, now()).unwrap();
        let (mut key, _) = spec.into_record(&owner, &OrgSettings::default(), &owner.id, now(), |_, _| test_sealed());
        let later = now() + Duration::hours(1);
        let same = KeyChange { name: Some("n".into()), expires_at: Some(None), ..KeyChange::default() };
        assert!(same.apply(&mut key, later).is_empty());
        assert_eq!(key.updated_at, now(), "no change, no new updated_at");
        let rename = KeyChange { name: Some("m".into()), comment: Some(String::new()), ..KeyChange::default() };
        assert_eq!(rename.apply(&mut key, later), vec!["name"]);
        assert_eq!(key.updated_at, later);
        let regrant = KeyChange { roles: Some(vec![]), ..KeyChange::default() };
        assert_eq!(regrant.apply(&mut key, later), vec!["inherits_owner"], "naming roles ends inheritance");
        assert!(!key.inherits_owner);
    }

    #[test]
    fn roll_grace_end_grace_and_lock_epochs() {
        let owner = test_owner();
        let spec = KeySpec::named("n", vec![]);
        let (mut key, _) = spec.into_record(&owner, &OrgSettings::default(), &owner.id, now(), |_, _| test_sealed());
        key.roll(test_sealed(), Duration::seconds(300), now());
        assert_eq!(key.accepts_previous(now()).map(|g| g.valid_until), Some(now() + Duration::seconds(300)));
        assert!(key.accepts_previous(now() + Duration::seconds(300)).is_none(), "the grace ends at valid_until");
        assert!(key.end_grace(now()));
        assert!(!key.end_grace(now()), "no grace running");
        key.roll(test_sealed(), Duration::zero(), now());
        assert!(key.previous_secret.is_none(), "no grace: the old secret stops at once");
        assert!(key.set_locked(true, now()));
        assert!(!key.set_locked(true, now()));
        assert!(key.set_locked(false, now()));
        assert_eq!(key.token_epoch, 1, "a lock ends earlier tokens; the unlock does not bring them back");
    }

    fn test_owner() -> User {
        User {
            id: UserId::from_trusted("usr_o"),
            org_id: crate::ids::OrgId::from_trusted("org_o"),
            name: "o".into(),
            email: None,
            kind: crate::model::UserKind::Human,
            roles: vec![RoleId::from_trusted("org_admin")],
            status: crate::model::UserStatus::Active,
            created_at: now(),
            token_epoch: 0,
        }
    }

    fn test_sealed() -> SealedSecret {
        SealedSecret { digest: crate::crypto::SecretDigest([7; 32]), ciphertext: vec![] }
    }

    #[test]
    fn limits_count_the_owner_and_each_capped_role() {
        let limits = KeyLimits {
            max_per_user: 10,
            role_caps: vec![RoleCap { role: RoleId::from_trusted("deploy"), name: "deploy".into(), max_keys: 2 }],
        };
        assert!(limits.check(10, &[]).is_ok());
        assert_eq!(limits.check(11, &[]), Err(Conflict::KeyLimitReached(KeyLimit::PerUser { max: 10 })));
        assert!(limits.check(3, &[(RoleId::from_trusted("deploy"), 2)]).is_ok());
        assert_eq!(
            limits.check(3, &[(RoleId::from_trusted("deploy"), 3)]),
            Err(Conflict::KeyLimitReached(KeyLimit::PerRole { role: "deploy".into(), max: 2 }))
        );
    }

    #[test]
    fn credential_checks_apply_in_order() {
        let mut state = KeyState {
            locked: true,
            expires_at: Some(now()),
            network_restrictions: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(check_key_state(&state, now(), outside), Err(AuthFailure::KeyLocked));
        state.locked = false;
        assert_eq!(check_key_state(&state, now(), outside), Err(AuthFailure::KeyExpired));
        assert!(
            check_key_state(&state, now() - Duration::seconds(1), outside)
                .is_err_and(|e| e == AuthFailure::IpNotAllowed)
        );
        state.expires_at = None;
        assert_eq!(check_key_state(&state, now(), outside), Err(AuthFailure::IpNotAllowed));
        assert_eq!(check_key_state(&state, now(), "10.1.2.3".parse().unwrap()), Ok(()));
        state.network_restrictions.clear();
        assert_eq!(check_key_state(&state, now(), outside), Ok(()));
    }
}

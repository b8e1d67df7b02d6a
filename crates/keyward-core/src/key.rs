//! The rules of API keys: what a create, import or change may contain, how
//! limits apply, and how a presented credential is judged.

use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::ids::{KeyId, RoleId};
use crate::input::Problems;
use crate::model::{KeyRecord, NetworkRestriction, ScopeGrant};
use crate::secret::Secret;
use crate::store::StoreError;
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
    pub name: Option<String>,
    /// Caller-chosen id, `[A-Za-z0-9_.-]{3,64}`; required on import.
    pub id: Option<String>,
    pub description: Option<String>,
    pub comment: Option<String>,
    /// Role ids; with neither `roles` nor `scopes` the key carries all of its owner's roles.
    pub roles: Option<Vec<String>>,
    pub scopes: Option<Vec<ScopeGrant>>,
    /// A future RFC 3339 time.
    pub expires_at: Option<String>,
    pub expires_in_days: Option<i64>,
    /// At most 10 IPv4/IPv6 addresses or CIDRs.
    pub network_restrictions: Option<Vec<String>>,
    /// 10–86400, default 60.
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
    pub name: Option<String>,
    pub description: Option<String>,
    pub comment: Option<String>,
    pub roles: Option<Vec<String>>,
    pub scopes: Option<Vec<ScopeGrant>>,
    /// A future RFC 3339 time, or `null` for never.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<String>, nullable)]
    pub expires_at: Option<Option<String>>,
    pub expires_in_days: Option<i64>,
    pub network_restrictions: Option<Vec<String>>,
    pub reauth_timeout_s: Option<i64>,
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
    /// The request named an expiry (a date, a number of days); else the org default applies.
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
        let expires_at = match (self.expires_at, self.expires_in_days) {
            (Some(_), Some(_)) => {
                p.add("expires_in_days", "give expires_at or expires_in_days, not both");
                None
            }
            (Some(t), None) => parse_future_time(&mut p, "expires_at", &t, now),
            (None, Some(d)) => expiry_in_days(&mut p, d, now),
            (None, None) => None,
        };
        let expiry_given = expires_at.is_some();
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
        if let Some(name) = &self.name {
            check_name(&mut p, name);
        }
        if let Some(d) = &self.description {
            check_text(&mut p, "description", d);
        }
        if let Some(c) = &self.comment {
            check_text(&mut p, "comment", c);
        }
        let expires_at = match (self.expires_at, self.expires_in_days) {
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
            name: self.name,
            description: self.description,
            comment: self.comment,
            roles: self.roles.map(|r| parse_roles(&mut p, &r)),
            scopes: self.scopes.map(|s| normalize_scopes(&s)),
            expires_at,
            network_restrictions: self.network_restrictions.map(|n| parse_networks(&mut p, &n)),
            reauth_timeout_s: self.reauth_timeout_s.map(|v| parse_reauth(&mut p, v)),
        };
        p.finish(change)
    }
}

impl KeyChange {
    /// Applies the change to a stored key.
    pub fn apply(self, key: &mut KeyRecord, now: Timestamp) {
        if let Some(v) = self.name {
            key.name = v;
        }
        if let Some(v) = self.description {
            key.description = v;
        }
        if let Some(v) = self.comment {
            key.comment = v;
        }
        if let Some(v) = self.roles {
            key.roles = v;
        }
        if let Some(v) = self.scopes {
            key.scopes = v;
        }
        if let Some(v) = self.expires_at {
            key.expires_at = v;
        }
        if let Some(v) = self.network_restrictions {
            key.network_restrictions = v;
        }
        if let Some(v) = self.reauth_timeout_s {
            key.reauth_timeout_s = v;
        }
        key.updated_at = now;
    }

    /// Whether the change touches what the key may do (roles or scopes).
    #[must_use]
    pub fn changes_grants(&self) -> bool {
        self.roles.is_some() || self.scopes.is_some()
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
    pub role_caps: Vec<(RoleId, u32)>,
}

impl KeyLimits {
    /// Checks the counts of the owner's keys as they would be after the write.
    pub fn check(&self, total_after: u64, role_counts_after: &[(RoleId, u64)]) -> Result<(), StoreError> {
        if total_after > u64::from(self.max_per_user) {
            return Err(StoreError::Conflict {
                code: "key_limit_reached",
                detail: format!("the owner already has the maximum of {} keys", self.max_per_user),
            });
        }
        for (role, cap) in &self.role_caps {
            let n = role_counts_after.iter().find(|(r, _)| r == role).map_or(0, |(_, n)| *n);
            if n > u64::from(*cap) {
                return Err(StoreError::Conflict {
                    code: "key_limit_reached",
                    detail: format!("role `{role}` allows at most {cap} keys per holder"),
                });
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
            expires_at: Some("2020-01-01T00:00:00Z".into()),
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
                expires_at: at.map(Into::into),
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
        let change: UpdateKeyRequest = serde_json::from_str(r#"{}"#).unwrap();
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
    fn limits_count_the_owner_and_each_capped_role() {
        let limits = KeyLimits { max_per_user: 10, role_caps: vec![(RoleId::from_trusted("deploy"), 2)] };
        assert!(limits.check(10, &[]).is_ok());
        assert!(limits.check(11, &[]).is_err());
        assert!(limits.check(3, &[(RoleId::from_trusted("deploy"), 2)]).is_ok());
        assert!(limits.check(3, &[(RoleId::from_trusted("deploy"), 3)]).is_err());
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

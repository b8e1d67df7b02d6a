//! The rules for users, roles and declared scopes: what their create and
//! change requests may contain.

use crate::error::CoreError;
use crate::ids::RoleId;
use crate::input::Problems;
use crate::model::{
    AUDIT_RETENTION_DAYS_RANGE, DEFAULT_EXPIRY_DAYS_RANGE, MAX_KEYS_PER_USER_RANGE, Org, UserKind, UserStatus,
};
use crate::permission::{Permission, is_valid_name};
use serde::Deserialize;

/// A display name (user, role, org): 1–255 characters, not blank, no control characters.
pub fn check_display_name(p: &mut Problems, field: &str, name: &str) {
    let n = name.chars().count();
    if n == 0 || n > 255 || name.trim().is_empty() {
        p.add(field, "must be 1 to 255 characters, not blank");
    } else if name.chars().any(char::is_control) {
        p.add(field, "must not contain control characters");
    }
}

fn check_email(p: &mut Problems, email: &str) {
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        p.add("email", "must be an email address such as ops@example.com");
    }
}

fn parse_role_ids(p: &mut Problems, roles: &[String]) -> Vec<RoleId> {
    let mut out: Vec<RoleId> = Vec::new();
    for (i, r) in roles.iter().enumerate() {
        if r.is_empty() || r.len() > 64 {
            p.add(format!("roles[{i}]"), "is not a role id");
        } else if !out.iter().any(|o| o.as_str() == r) {
            out.push(RoleId::from_trusted(r.clone()));
        }
    }
    out
}

/// Body of `POST /v1/users`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1–255 characters; required.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 254)]
    pub email: Option<String>,
    /// `human` (default) or `service` (a Service Requestor: API only).
    pub kind: Option<UserKind>,
    /// Role ids.
    pub roles: Option<Vec<String>>,
    /// Target org; account admins only (default: the caller's org).
    pub org_id: Option<String>,
}

/// A validated new user.
#[derive(Debug)]
pub struct UserSpec {
    pub name: String,
    pub email: Option<String>,
    pub kind: UserKind,
    pub roles: Vec<RoleId>,
}

impl CreateUserRequest {
    pub fn into_spec(self) -> Result<UserSpec, CoreError> {
        let mut p = Problems::default();
        let name = self.name.unwrap_or_default();
        check_display_name(&mut p, "name", &name);
        if let Some(e) = &self.email {
            check_email(&mut p, e);
        }
        let roles = parse_role_ids(&mut p, &self.roles.unwrap_or_default());
        let spec = UserSpec { name, email: self.email, kind: self.kind.unwrap_or(UserKind::Human), roles };
        p.finish(spec)
    }
}

/// Body of `PATCH /v1/users/{id}`; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// An address, or `null` to remove it.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<String>, nullable, max_length = 254)]
    pub email: Option<Option<String>>,
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled`; a disabled user's keys stop working.
    pub status: Option<UserStatus>,
}

/// A validated user change.
#[derive(Debug, Default)]
pub struct UserChange {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub roles: Option<Vec<RoleId>>,
    pub status: Option<UserStatus>,
}

impl UpdateUserRequest {
    pub fn into_change(self) -> Result<UserChange, CoreError> {
        let mut p = Problems::default();
        if let Some(n) = &self.name {
            check_display_name(&mut p, "name", n);
        }
        if let Some(Some(e)) = &self.email {
            check_email(&mut p, e);
        }
        let roles = self.roles.map(|r| parse_role_ids(&mut p, &r));
        let change = UserChange { name: self.name, email: self.email, roles, status: self.status };
        p.finish(change)
    }
}

/// Body of `POST /v1/roles`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// 1–255 characters; required.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// `<scope>:<resource>:read|write`; `*` stands for any scope or resource.
    pub permissions: Option<Vec<String>>,
    /// Keys per holder that carry this role (1–100000); absent for no cap.
    #[schema(minimum = 1, maximum = 100000)]
    pub max_keys: Option<i64>,
}

/// Body of `PATCH /v1/roles/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
    /// A cap, or `null` to remove it.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 100000)]
    pub max_keys: Option<Option<i64>>,
}

/// A validated role definition or change (`None`: unchanged).
#[derive(Debug, Default)]
pub struct RoleChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<Permission>>,
    pub max_keys: Option<Option<u32>>,
}

fn parse_permissions(p: &mut Problems, list: &[String]) -> Vec<Permission> {
    let mut out: Vec<Permission> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match Permission::parse(s, true) {
            Ok(perm) if !out.contains(&perm) => out.push(perm),
            Ok(_) => {}
            Err(e) => p.add(format!("permissions[{i}]"), e),
        }
    }
    out
}

fn parse_max_keys(p: &mut Problems, v: i64) -> Option<u32> {
    match u32::try_from(v).ok().filter(|v| (1..=100_000).contains(v)) {
        Some(v) => Some(v),
        None => {
            p.add("max_keys", "must be 1 to 100000, or absent for no cap");
            None
        }
    }
}

fn check_role_name(p: &mut Problems, name: &str) {
    check_display_name(p, "name", name);
    if crate::model::builtin_roles().iter().any(|r| r.name == name) {
        p.add("name", "is the name of a built-in role");
    }
}

impl CreateRoleRequest {
    pub fn into_change(self) -> Result<RoleChange, CoreError> {
        let mut p = Problems::default();
        let name = self.name.unwrap_or_default();
        check_role_name(&mut p, &name);
        let description = self.description.unwrap_or_default();
        if description.chars().count() > 1024 {
            p.add("description", "must be at most 1024 characters");
        }
        let permissions = parse_permissions(&mut p, &self.permissions.unwrap_or_default());
        let max_keys = self.max_keys.map(|m| parse_max_keys(&mut p, m));
        let change = RoleChange {
            name: Some(name),
            description: Some(description),
            permissions: Some(permissions),
            max_keys: Some(max_keys.flatten()),
        };
        p.finish(change)
    }
}

impl UpdateRoleRequest {
    pub fn into_change(self) -> Result<RoleChange, CoreError> {
        let mut p = Problems::default();
        if let Some(n) = &self.name {
            check_role_name(&mut p, n);
        }
        if self.description.as_ref().is_some_and(|d| d.chars().count() > 1024) {
            p.add("description", "must be at most 1024 characters");
        }
        let permissions = self.permissions.map(|l| parse_permissions(&mut p, &l));
        let max_keys = self.max_keys.map(|m| m.and_then(|v| parse_max_keys(&mut p, v)));
        let change = RoleChange { name: self.name, description: self.description, permissions, max_keys };
        p.finish(change)
    }
}

/// Body of `POST /v1/scopes`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScopeRequest {
    /// Lowercase letters, digits, `_`, `-`, `.`; 1–64 chars; not `keyward`.
    #[schema(value_type = String, required = true, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub name: Option<String>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// 1–100 resource names, same rules as the name.
    #[schema(value_type = Vec<String>, required = true, min_items = 1, max_items = 100)]
    pub resources: Option<Vec<String>>,
}

impl CreateScopeRequest {
    /// Returns (name, description, resources).
    pub fn into_parts(self) -> Result<(String, String, Vec<String>), CoreError> {
        let mut p = Problems::default();
        let name = self.name.unwrap_or_default();
        if !is_valid_name(&name) {
            p.add("name", "must be 1 to 64 lowercase letters, digits, _, - or . (starting with a letter or digit)");
        } else if name == crate::permission::KEYWARD_SCOPE {
            p.add("name", "`keyward` is the service's own scope");
        }
        let description = self.description.unwrap_or_default();
        if description.chars().count() > 1024 {
            p.add("description", "must be at most 1024 characters");
        }
        let resources = self.resources.unwrap_or_default();
        if resources.is_empty() || resources.len() > 100 {
            p.add("resources", "must list 1 to 100 resources");
        }
        let mut seen: Vec<&String> = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            if !is_valid_name(r) {
                p.add(format!("resources[{i}]"), "must be 1 to 64 lowercase letters, digits, _, - or .");
            } else if seen.contains(&r) {
                p.add(format!("resources[{i}]"), format!("`{r}` is listed twice"));
            }
            seen.push(r);
        }
        p.finish((name, description, resources))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: CoreError) -> Vec<String> {
        match e {
            CoreError::Validation(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn user_rules() {
        assert!(CreateUserRequest { name: Some("svc".into()), ..Default::default() }.into_spec().is_ok());
        let bad = CreateUserRequest { name: Some(String::new()), email: Some("nope".into()), ..Default::default() };
        assert_eq!(fields(bad.into_spec().unwrap_err()), vec!["name", "email"]);
        let change: UpdateUserRequest = serde_json::from_str(r#"{"email": null}"#).unwrap();
        assert_eq!(change.into_change().unwrap().email, Some(None));
    }

    #[test]
    fn role_rules() {
        let ok = CreateRoleRequest {
            name: Some("deployer".into()),
            permissions: Some(vec!["keyward:keys:write".into(), "orders:*:read".into()]),
            max_keys: Some(2),
            ..Default::default()
        };
        let change = ok.into_change().unwrap();
        assert_eq!(change.max_keys, Some(Some(2)));
        assert_eq!(change.permissions.unwrap().len(), 2);
        let bad = CreateRoleRequest {
            name: Some("auditor".into()),
            permissions: Some(vec!["keys:write".into()]),
            max_keys: Some(0),
            ..Default::default()
        };
        assert_eq!(fields(bad.into_change().unwrap_err()), vec!["name", "permissions[0]", "max_keys"]);
    }

    #[test]
    fn scope_rules() {
        let ok = CreateScopeRequest {
            name: Some("orders".into()),
            resources: Some(vec!["invoices".into(), "refunds".into()]),
            ..Default::default()
        };
        assert!(ok.into_parts().is_ok());
        for (name, resources, field) in [
            ("keyward", vec!["x"], "name"),
            ("Orders", vec!["x"], "name"),
            ("orders", vec![], "resources"),
            ("orders", vec!["a", "a"], "resources[1]"),
            ("orders", vec!["A b"], "resources[0]"),
        ] {
            let req = CreateScopeRequest {
                name: Some(name.into()),
                resources: Some(resources.into_iter().map(Into::into).collect()),
                ..Default::default()
            };
            assert_eq!(fields(req.into_parts().unwrap_err()), vec![field]);
        }
    }
}

/// Body of `PATCH /v1/orgs/{id}`; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// 1–100000.
    #[schema(minimum = 1, maximum = 100000)]
    pub max_keys_per_user: Option<i64>,
    /// 1–36500, or `null` for keys without expiry.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 36500)]
    pub default_expiry_days: Option<Option<i64>>,
    pub allow_direct_secret: Option<bool>,
    pub hawk_require_payload_hash: Option<bool>,
    /// 1–36500 days, or `null` to keep every audit entry (account admins only).
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 36500)]
    pub audit_retention_days: Option<Option<i64>>,
}

/// An optional number of days in `range`, or `null` for none.
fn days_setting(
    p: &mut Problems,
    field: &str,
    slot: &mut Option<u32>,
    v: Option<Option<i64>>,
    range: std::ops::RangeInclusive<u32>,
) {
    match v {
        None => {}
        Some(None) => *slot = None,
        Some(Some(d)) => match u32::try_from(d).ok().filter(|d| range.contains(d)) {
            Some(d) => *slot = Some(d),
            None => p.add(field, format!("must be {} to {}, or null", range.start(), range.end())),
        },
    }
}

impl UpdateOrgRequest {
    /// Applies the change to `org`, checking every setting's range at once.
    /// Only an account admin changes audit retention: shortening it erases
    /// history, including the trail of whoever shortens it.
    pub fn apply(self, org: &mut Org, by_account_admin: bool) -> Result<(), CoreError> {
        if self.audit_retention_days.is_some() && !by_account_admin {
            return Err(CoreError::forbidden("only an account_admin changes audit retention"));
        }
        let mut p = Problems::default();
        if let Some(name) = self.name {
            check_display_name(&mut p, "name", &name);
            org.name = name;
        }
        if let Some(max) = self.max_keys_per_user {
            match u32::try_from(max).ok().filter(|m| MAX_KEYS_PER_USER_RANGE.contains(m)) {
                Some(m) => org.settings.max_keys_per_user = m,
                None => p.add("max_keys_per_user", "must be 1 to 100000"),
            }
        }
        let settings = &mut org.settings;
        days_setting(
            &mut p,
            "default_expiry_days",
            &mut settings.default_expiry_days,
            self.default_expiry_days,
            DEFAULT_EXPIRY_DAYS_RANGE,
        );
        days_setting(
            &mut p,
            "audit_retention_days",
            &mut settings.audit_retention_days,
            self.audit_retention_days,
            AUDIT_RETENTION_DAYS_RANGE,
        );
        if let Some(require) = self.hawk_require_payload_hash {
            settings.hawk_require_payload_hash = require;
        }
        if let Some(allow) = self.allow_direct_secret {
            settings.allow_direct_secret = allow;
        }
        p.finish(())
    }
}

#[cfg(test)]
mod org_tests {
    use super::*;
    use crate::ids::OrgId;
    use crate::model::OrgSettings;

    fn org() -> Org {
        Org {
            id: OrgId::from_trusted("o"),
            name: "o".into(),
            settings: OrgSettings::default(),
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn apply(json: &str, by_account_admin: bool) -> Result<Org, CoreError> {
        let mut o = org();
        serde_json::from_str::<UpdateOrgRequest>(json).unwrap().apply(&mut o, by_account_admin).map(|()| o)
    }

    #[test]
    fn org_settings_ranges() {
        for (json, ok) in [
            (r#"{"max_keys_per_user": 1}"#, true),
            (r#"{"max_keys_per_user": 100000}"#, true),
            (r#"{"max_keys_per_user": 0}"#, false),
            (r#"{"max_keys_per_user": 100001}"#, false),
            (r#"{"default_expiry_days": 36500}"#, true),
            (r#"{"default_expiry_days": 36501}"#, false),
            (r#"{"default_expiry_days": null}"#, true),
            (r#"{"name": " "}"#, false),
        ] {
            assert_eq!(apply(json, false).is_ok(), ok, "{json}");
        }
        assert_eq!(apply(r#"{"default_expiry_days": 30}"#, false).unwrap().settings.default_expiry_days, Some(30));
    }

    #[test]
    fn only_an_account_admin_changes_retention() {
        assert!(matches!(apply(r#"{"audit_retention_days": 30}"#, false), Err(CoreError::Forbidden { .. })));
        assert_eq!(apply(r#"{"audit_retention_days": 30}"#, true).unwrap().settings.audit_retention_days, Some(30));
        assert!(apply(r#"{"audit_retention_days": 0}"#, true).is_err());
    }
}

//! Who may do what: the directory of orgs, users and roles that permissions
//! are computed from, the calling principal, and the decisions over targets.

use crate::error::{CoreError, FieldError};
use crate::ids::{KeyId, OrgId, RoleId, UserId};
use crate::key::KeyLimits;
use crate::model::ScopeGrant;
use crate::model::{ACCOUNT_ADMIN, KeyRecord, Org, Role, SERVICE_REQUESTOR, ScopeDef, User, UserStatus};
use crate::permission::{Access, Catalog, KEYWARD_SCOPE, Permission, PermissionSet};
use std::collections::HashMap;

/// Everything permissions are computed from, held in memory.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub orgs: HashMap<OrgId, Org>,
    pub users: HashMap<UserId, User>,
    pub roles: HashMap<RoleId, Role>,
    pub catalogs: HashMap<OrgId, Catalog>,
}

impl Directory {
    #[must_use]
    pub fn new(orgs: Vec<Org>, users: Vec<User>, roles: Vec<Role>, scopes: Vec<ScopeDef>) -> Self {
        let catalogs = orgs
            .iter()
            .map(|o| {
                let declared =
                    scopes.iter().filter(|s| s.org_id == o.id).map(|s| (s.name.as_str(), s.resources.as_slice()));
                (o.id.clone(), Catalog::new(declared))
            })
            .collect();
        Self {
            orgs: orgs.into_iter().map(|o| (o.id.clone(), o)).collect(),
            users: users.into_iter().map(|u| (u.id.clone(), u)).collect(),
            roles: roles.into_iter().map(|r| (r.id.clone(), r)).collect(),
            catalogs,
        }
    }

    /// The org's catalog (its scopes plus the service's own).
    #[must_use]
    pub fn catalog(&self, org: &OrgId) -> Catalog {
        self.catalogs.get(org).cloned().unwrap_or_else(|| Catalog::new([]))
    }

    /// A role usable in `org`: a built-in one or one of the org's own.
    #[must_use]
    pub fn role_in(&self, org: &OrgId, id: &RoleId) -> Option<&Role> {
        self.roles.get(id).filter(|r| r.org_id.as_ref().is_none_or(|o| o == org))
    }

    /// Turns roles named by id or by name into role ids (ids win); unknown
    /// entries stay as given, for the grant check to name.
    #[must_use]
    pub fn resolve_roles(&self, org: &OrgId, given: Vec<RoleId>) -> Vec<RoleId> {
        let mut out: Vec<RoleId> = Vec::with_capacity(given.len());
        for r in given {
            let id = if self.role_in(org, &r).is_some() {
                r
            } else {
                self.roles
                    .values()
                    .find(|role| role.name == r.as_str() && role.org_id.as_ref().is_none_or(|o| o == org))
                    .map_or(r, |role| role.id.clone())
            };
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// A role's name for messages (its id when unknown).
    #[must_use]
    pub fn role_name(&self, id: &RoleId) -> String {
        self.roles.get(id).map_or_else(|| id.to_string(), |r| r.name.clone())
    }

    /// What a list of roles grants in `org`.
    #[must_use]
    pub fn roles_permissions(&self, org: &OrgId, roles: &[RoleId]) -> PermissionSet {
        let patterns: Vec<&Permission> =
            roles.iter().filter_map(|r| self.role_in(org, r)).flat_map(|r| r.permissions.iter()).collect();
        PermissionSet::from_patterns(patterns, &self.catalog(org))
    }

    /// What a user holds through their roles; nothing once disabled.
    #[must_use]
    pub fn user_permissions(&self, user: &User) -> PermissionSet {
        if user.status != UserStatus::Active {
            return PermissionSet::default();
        }
        self.roles_permissions(&user.org_id, &user.roles)
    }

    /// What a key's roles and scopes grant, before the owner's cap.
    #[must_use]
    pub fn grants(&self, org: &OrgId, roles: &[RoleId], scopes: &[crate::model::ScopeGrant]) -> PermissionSet {
        let catalog = self.catalog(org);
        let from_scopes =
            PermissionSet::from_patterns(&scopes.iter().map(|s| s.permission()).collect::<Vec<_>>(), &catalog);
        self.roles_permissions(org, roles).union(&from_scopes)
    }

    /// A key's effective permissions: (roles ∪ scopes) ∩ owner's.
    #[must_use]
    pub fn key_permissions(&self, key: &KeyRecord) -> PermissionSet {
        let Some(owner) = self.users.get(&key.owner_id) else { return PermissionSet::default() };
        if key.inherits_owner {
            return self.user_permissions(owner);
        }
        self.grants(&key.org_id, &key.roles, &key.scopes).intersect(&self.user_permissions(owner))
    }

    /// What a key could do: everything its roles and scopes grant, whatever its
    /// owner holds right now (a disabled or demoted owner may get it all back).
    #[must_use]
    pub fn key_potential(&self, key: &KeyRecord) -> (PermissionSet, bool) {
        if key.inherits_owner {
            // Such a key can do whatever its owner's roles grant, now or once re-enabled.
            return match self.users.get(&key.owner_id) {
                Some(owner) => (self.user_role_permissions(owner), Self::user_is_account_admin(owner)),
                None => (PermissionSet::default(), false),
            };
        }
        let permissions = self.grants(&key.org_id, &key.roles, &key.scopes);
        (permissions, key.roles.iter().any(|r| r.as_str() == ACCOUNT_ADMIN))
    }

    /// Whether the key acts across orgs: it carries `account_admin` and its owner holds it.
    #[must_use]
    pub fn key_is_cross_org(&self, key: &KeyRecord) -> bool {
        let admin = RoleId::from_trusted(ACCOUNT_ADMIN);
        (key.inherits_owner || key.roles.contains(&admin))
            && self.users.get(&key.owner_id).is_some_and(|u| user_is_cross_org(u, &admin))
    }

    /// What a user's roles grant, whether or not the user is disabled now
    /// (a disabled admin is still an admin to be protected).
    #[must_use]
    pub fn user_role_permissions(&self, user: &User) -> PermissionSet {
        self.roles_permissions(&user.org_id, &user.roles)
    }

    /// Whether the user holds `account_admin`.
    #[must_use]
    pub fn user_is_account_admin(user: &User) -> bool {
        user.roles.iter().any(|r| r.as_str() == ACCOUNT_ADMIN)
    }

    /// Whether the user acts across orgs (an account admin of the operator's org).
    #[must_use]
    pub fn user_is_cross_org(&self, user: &User) -> bool {
        user_is_cross_org(user, &RoleId::from_trusted(ACCOUNT_ADMIN))
    }

    /// Whether the owner may use the web UI (service requestors never do).
    #[must_use]
    pub fn is_service_requestor(&self, user: &User) -> bool {
        user.kind == crate::model::UserKind::Service || user.roles.iter().any(|r| r.as_str() == SERVICE_REQUESTOR)
    }
}

impl Directory {
    /// Checks a key's roles and scopes against its owner: each role exists in
    /// the org and the owner holds it; each scope exists and the owner holds it.
    pub fn check_key_grants(&self, owner: &User, roles: &[RoleId], scopes: &[ScopeGrant]) -> Result<(), CoreError> {
        let mut problems = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            if self.role_in(&owner.org_id, role).is_none() {
                problems.push(FieldError::new(format!("roles[{i}]"), "no such role in this organization"));
            } else if !owner.roles.contains(role) {
                problems.push(FieldError::new(
                    format!("roles[{i}]"),
                    format!("the key's owner does not hold role `{}`", self.role_name(role)),
                ));
            }
        }
        let catalog = self.catalog(&owner.org_id);
        let held = self.user_permissions(owner);
        for (i, grant) in scopes.iter().enumerate() {
            if !catalog.contains(&grant.scope, &grant.resource) {
                problems.push(FieldError::new(format!("scopes[{i}]"), "no such scope and resource in the catalog"));
            } else if !held.allows_permission(&grant.permission()) {
                problems.push(FieldError::new(
                    format!("scopes[{i}]"),
                    format!("the key's owner does not hold `{}`", grant.permission()),
                ));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(CoreError::Validation(problems)) }
    }

    /// The caps on `owner`'s keys for a key carrying `roles`.
    #[must_use]
    pub fn key_limits(&self, owner: &User, roles: &[RoleId]) -> KeyLimits {
        let max_per_user = self.orgs.get(&owner.org_id).map_or(10, |o| o.settings.max_keys_per_user);
        let role_caps = roles
            .iter()
            .filter_map(|r| self.role_in(&owner.org_id, r))
            .filter_map(|r| {
                r.max_keys.map(|max_keys| crate::key::RoleCap { role: r.id.clone(), name: r.name.clone(), max_keys })
            })
            .collect();
        KeyLimits { max_per_user, role_caps }
    }
}

fn user_is_cross_org(user: &User, admin: &RoleId) -> bool {
    user.status == UserStatus::Active && user.roles.contains(admin)
}

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    Hawk,
    Token,
    Secret,
    Session,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub key_id: Option<KeyId>,
    pub permissions: PermissionSet,
    /// `account_admin`: sees and manages every org.
    pub cross_org: bool,
    pub auth_method: AuthMethod,
}

/// What an endpoint requires before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No credential: health checks, the OpenAPI document, the token endpoint.
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// A permission on one of the service's own resources.
    Keyward(&'static str, Access),
    /// What spans every organization (creating orgs, rotating the token signing
    /// key): an account admin acting as one, never a narrowed token of one.
    AccountAdmin,
}

impl Principal {
    /// Whether the caller holds `keyward:<resource>:<access>`.
    #[must_use]
    pub fn can(&self, resource: &str, access: Access) -> bool {
        self.permissions.allows(KEYWARD_SCOPE, resource, access)
    }

    /// Checks an endpoint's requirement.
    pub fn require(&self, need: Need) -> Result<(), CoreError> {
        match need {
            Need::Public | Need::Authenticated => Ok(()),
            Need::Keyward(resource, access) if self.can(resource, access) => Ok(()),
            Need::Keyward(resource, access) => Err(CoreError::forbidden(format!(
                "this call requires the permission keyward:{resource}:{}",
                access.as_str()
            ))),
            Need::AccountAdmin if self.cross_org => Ok(()),
            Need::AccountAdmin => Err(CoreError::forbidden("only an account_admin may do this")),
        }
    }

    /// Whether anything of `org` is visible to the caller.
    #[must_use]
    pub fn sees_org(&self, org: &OrgId) -> bool {
        self.cross_org || &self.org_id == org
    }

    /// The org a list is limited to: the requested one if the caller sees it
    /// (else not found), otherwise every org for an account admin and the
    /// caller's own for everyone else.
    pub fn org_filter(&self, requested: Option<OrgId>) -> Result<Option<OrgId>, CoreError> {
        match requested {
            Some(org) if self.sees_org(&org) => Ok(Some(org)),
            Some(_) => Err(CoreError::NotFound { what: "organization" }),
            None if self.cross_org => Ok(None),
            None => Ok(Some(self.org_id.clone())),
        }
    }

    /// Decides access to a key owned by `owner` in `org`.
    ///
    /// Keys of another org, or of another user without the right to manage
    /// users, are reported as missing, so their existence does not leak.
    pub fn check_key_access(&self, owner: &UserId, org: &OrgId, access: Access) -> Result<(), CoreError> {
        let not_found = || CoreError::NotFound { what: "key" };
        if !self.sees_org(org) || !self.can("keys", Access::Read) {
            return Err(not_found());
        }
        let own = owner == &self.user_id;
        if !own && !self.can("users", Access::Read) {
            return Err(not_found());
        }
        if access == Access::Write && !(self.can("keys", Access::Write) && (own || self.can("users", Access::Write))) {
            return Err(CoreError::forbidden("you may not change this key"));
        }
        Ok(())
    }

    /// Decides whether the caller may create keys for `owner` in `org`.
    pub fn check_create_key_for(&self, owner: &UserId, org: &OrgId) -> Result<(), CoreError> {
        if owner != &self.user_id && !self.sees_org(org) {
            return Err(CoreError::NotFound { what: "user" });
        }
        self.check_key_access(owner, org, Access::Write).map_err(|e| match e {
            CoreError::NotFound { .. } => CoreError::NotFound { what: "user" },
            other => other,
        })
    }

    /// Checks roles the caller assigns to a user of `org`: each exists there,
    /// only an account admin grants `account_admin`, and nobody grants more
    /// than they hold.
    pub fn check_role_assignment(&self, dir: &Directory, org: &OrgId, roles: &[RoleId]) -> Result<(), CoreError> {
        let mut problems = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            if dir.role_in(org, role).is_none() {
                problems.push(FieldError::new(format!("roles[{i}]"), "no such role in this organization"));
            }
        }
        if !problems.is_empty() {
            return Err(CoreError::Validation(problems));
        }
        if roles.iter().any(|r| r.as_str() == ACCOUNT_ADMIN) && !self.cross_org {
            return Err(CoreError::forbidden("only an account_admin grants account_admin"));
        }
        self.check_within_own(&dir.roles_permissions(org, roles))
    }

    /// Checks a role definition the caller writes: its permissions exist in the
    /// org's catalog and do not exceed the caller's.
    pub fn check_role_definition(
        &self,
        dir: &Directory,
        org: &OrgId,
        permissions: &[Permission],
    ) -> Result<(), CoreError> {
        let catalog = dir.catalog(org);
        let mut problems = Vec::new();
        for (i, p) in permissions.iter().enumerate() {
            let known = (p.scope == "*" || catalog.contains_scope(&p.scope))
                && (p.resource == "*" || p.scope == "*" || catalog.contains(&p.scope, &p.resource));
            if !known {
                problems
                    .push(FieldError::new(format!("permissions[{i}]"), "no such scope and resource in the catalog"));
            }
        }
        if !problems.is_empty() {
            return Err(CoreError::Validation(problems));
        }
        // `*` as the scope would also cover scopes the org declares later, beyond what the caller holds today.
        if !self.cross_org && permissions.iter().any(|p| p.scope == "*") {
            return Err(CoreError::forbidden(
                "only an account_admin defines roles over every scope (`*`); name the scopes",
            ));
        }
        self.check_within_own(&PermissionSet::from_patterns(permissions, &catalog))
    }

    /// Checks what a key the caller creates or changes would carry: roles and
    /// scopes its owner holds, and nothing beyond what the caller may do.
    pub fn check_key_grants(
        &self,
        dir: &Directory,
        owner: &User,
        roles: &[RoleId],
        scopes: &[ScopeGrant],
    ) -> Result<(), CoreError> {
        dir.check_key_grants(owner, roles, scopes)?;
        if roles.iter().any(|r| r.as_str() == ACCOUNT_ADMIN) && !self.cross_org {
            return Err(CoreError::forbidden("only an account_admin puts account_admin on a key"));
        }
        // Judged by what the key could do, not what it does while its owner happens to be disabled.
        self.check_within_own(&dir.grants(&owner.org_id, roles, scopes).intersect(&dir.user_role_permissions(owner)))
    }

    /// Whether the caller may change (or create keys for) something that can do
    /// `target`: a key's effective permissions, or what a user's roles grant.
    /// Nobody manages what can do more than they can, and only an account
    /// admin manages what acts across orgs.
    pub fn check_may_manage(&self, target: &PermissionSet, target_cross_org: bool) -> Result<(), CoreError> {
        if target_cross_org && !self.cross_org {
            return Err(CoreError::forbidden("only an account_admin manages what an account_admin holds"));
        }
        self.check_within_own(target)
            .map_err(|_| CoreError::forbidden("this holds permissions you do not hold, so you may not manage it"))
    }

    /// The owner filter of a key list: without the right to see other users, a
    /// caller lists only their own keys (and another user's reads as missing).
    pub fn key_owner_filter(&self, requested: Option<UserId>) -> Result<Option<UserId>, CoreError> {
        if self.can("users", Access::Read) {
            return Ok(requested);
        }
        match requested {
            Some(other) if other != self.user_id => Err(CoreError::NotFound { what: "user" }),
            _ => Ok(Some(self.user_id.clone())),
        }
    }

    /// Whether the caller may change `user`, or act in their name (create or
    /// change their keys): nobody manages a user whose roles grant more than
    /// the caller holds, disabled or not, and only an account admin manages one.
    pub fn check_may_manage_user(&self, dir: &Directory, user: &User) -> Result<(), CoreError> {
        self.check_may_manage(&dir.user_role_permissions(user), Directory::user_is_account_admin(user))
    }

    /// Whether the caller may change (roll, unlock, widen, delete) `key`: its
    /// owner must be in reach when it is someone else's, and so must everything
    /// the key could do, whatever its owner holds right now.
    pub fn check_may_change_key(&self, dir: &Directory, key: &KeyRecord) -> Result<(), CoreError> {
        if key.owner_id != self.user_id
            && let Some(owner) = dir.users.get(&key.owner_id)
        {
            self.check_may_manage_user(dir, owner)?;
        }
        let (potential, cross_org) = dir.key_potential(key);
        self.check_may_manage(&potential, cross_org)
    }

    /// A key the caller creates or changes may not do more than the caller may.
    pub fn check_within_own(&self, granted: &PermissionSet) -> Result<(), CoreError> {
        if self.cross_org {
            return Ok(());
        }
        let excess = granted.excess_over(&self.permissions);
        if excess.is_empty() {
            Ok(())
        } else {
            Err(CoreError::forbidden(format!("you cannot grant permissions you do not hold: {}", excess.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Org, OrgSettings, UserKind, builtin_roles};
    use chrono::TimeZone;

    fn principal(perms: &[&str], org: &str, user: &str) -> Principal {
        let catalog = Catalog::new([]);
        let ps: Vec<Permission> = perms.iter().map(|p| Permission::parse(p, true).unwrap()).collect();
        Principal {
            user_id: UserId::from_trusted(user),
            org_id: OrgId::from_trusted(org),
            key_id: None,
            permissions: PermissionSet::from_patterns(&ps, &catalog),
            cross_org: false,
            auth_method: AuthMethod::Secret,
        }
    }

    fn person(id: &str, roles: &[&str], status: UserStatus) -> User {
        User {
            id: UserId::from_trusted(id),
            org_id: OrgId::from_trusted("a"),
            name: id.into(),
            email: None,
            kind: UserKind::Human,
            roles: roles.iter().map(|r| RoleId::from_trusted(*r)).collect(),
            status,
            created_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            token_epoch: 0,
        }
    }

    #[test]
    fn who_may_manage_a_user_table() {
        use UserStatus::{Active, Disabled};
        // (caller permissions, caller is account admin, target roles, target status, allowed)
        type Case = (&'static [&'static str], bool, &'static [&'static str], UserStatus, bool);
        let cases: &[Case] = &[
            (&["*:*:write"], false, &["auditor"], Active, true),
            (&["*:*:write"], false, &["org_admin"], Active, true),
            (&["*:*:write"], false, &["account_admin"], Active, false),
            (&["*:*:write"], false, &["account_admin"], Disabled, false),
            (&["*:*:write"], true, &["account_admin"], Active, true),
            (&["keyward:users:write"], false, &["auditor"], Active, false),
            (&["keyward:users:write"], false, &["auditor"], Disabled, false),
            (&["*:*:read", "keyward:users:write"], false, &["auditor"], Active, true),
            (&["*:*:read"], false, &[], Active, true),
        ];
        let users: Vec<User> = cases
            .iter()
            .enumerate()
            .map(|(i, (_, _, roles, status, _))| person(&format!("u{i}"), roles, *status))
            .collect();
        let org = Org {
            id: OrgId::from_trusted("a"),
            name: "a".into(),
            settings: OrgSettings::default(),
            created_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        };
        let dir = Directory::new(vec![org], users.clone(), builtin_roles(), vec![]);
        for (i, (perms, cross_org, _, _, allowed)) in cases.iter().enumerate() {
            let caller = Principal { cross_org: *cross_org, ..principal(perms, "a", "me") };
            let outcome = caller.check_may_manage_user(&dir, &users[i]);
            assert_eq!(outcome.is_ok(), *allowed, "case {i}: {perms:?} managing {:?}", users[i].roles);
        }
    }

    #[test]
    fn a_console_session_holds_only_for_an_active_person_who_is_no_service() {
        let org = Org {
            id: OrgId::from_trusted("a"),
            name: "a".into(),
            settings: OrgSettings::default(),
            created_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        };
        let admin = person("adm", &["account_admin"], UserStatus::Active);
        let auditor = person("aud", &["auditor"], UserStatus::Active);
        let disabled = person("off", &["account_admin"], UserStatus::Disabled);
        let requestor = person("bot", &["service_requestor"], UserStatus::Active);
        let service = User { kind: UserKind::Service, ..person("svc", &["auditor"], UserStatus::Active) };
        let users = vec![admin.clone(), auditor.clone(), disabled.clone(), requestor.clone(), service.clone()];
        let dir = Directory::new(vec![org], users, builtin_roles(), vec![]);
        let p = crate::authn::judge_person(&dir, Some(&admin)).unwrap();
        assert!(p.cross_org && p.key_id.is_none() && p.auth_method == AuthMethod::Session);
        assert!(p.can("keys", Access::Write));
        let p = crate::authn::judge_person(&dir, Some(&auditor)).unwrap();
        assert!(!p.cross_org && p.can("keys", Access::Read) && !p.can("keys", Access::Write));
        for refused in [Some(&disabled), Some(&requestor), Some(&service), None] {
            assert!(crate::authn::judge_person(&dir, refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn key_lists_show_others_keys_only_to_who_sees_users() {
        let me = UserId::from_trusted("me");
        let other = UserId::from_trusted("other");
        let reader = principal(&["keyward:keys:read"], "a", "me");
        assert_eq!(reader.key_owner_filter(None).unwrap(), Some(me.clone()));
        assert_eq!(reader.key_owner_filter(Some(me.clone())).unwrap(), Some(me.clone()));
        assert!(matches!(reader.key_owner_filter(Some(other.clone())), Err(CoreError::NotFound { .. })));
        let admin = principal(&["keyward:keys:read", "keyward:users:read"], "a", "me");
        assert_eq!(admin.key_owner_filter(None).unwrap(), None);
        assert_eq!(admin.key_owner_filter(Some(other.clone())).unwrap(), Some(other));
    }

    #[test]
    fn account_admin_needs_a_full_account_admin() {
        let admin = Principal { cross_org: true, ..principal(&["*:*:write"], "a", "me") };
        assert!(admin.require(Need::AccountAdmin).is_ok());
        let org_admin = principal(&["*:*:write"], "a", "me");
        assert!(org_admin.require(Need::AccountAdmin).is_err());
        assert!(org_admin.require(Need::Keyward("orgs", Access::Write)).is_ok());
    }

    #[test]
    fn key_access_table() {
        let me = UserId::from_trusted("me");
        let other = UserId::from_trusted("other");
        let a = OrgId::from_trusted("a");
        let b = OrgId::from_trusted("b");
        use Access::*;
        // (permissions, owner, org, access, expected: 0 ok, 404, 403)
        let cases: &[(&[&str], &UserId, &OrgId, Access, u16)] = &[
            (&["keyward:keys:write"], &me, &a, Write, 0),
            (&["keyward:keys:read"], &me, &a, Read, 0),
            (&["keyward:keys:read"], &me, &a, Write, 403),
            (&[], &me, &a, Read, 404),
            (&["keyward:keys:write"], &other, &a, Read, 404),
            (&["keyward:keys:write", "keyward:users:read"], &other, &a, Read, 0),
            (&["keyward:keys:write", "keyward:users:read"], &other, &a, Write, 403),
            (&["keyward:*:write"], &other, &a, Write, 0),
            (&["*:*:read"], &other, &a, Read, 0),
            (&["*:*:read"], &other, &a, Write, 403),
            (&["*:*:write"], &other, &b, Read, 404),
            (&["*:*:write"], &me, &b, Write, 404),
        ];
        for (perms, owner, org, access, expected) in cases {
            let p = principal(perms, "a", "me");
            let got = match p.check_key_access(owner, org, *access) {
                Ok(()) => 0,
                Err(CoreError::NotFound { .. }) => 404,
                Err(CoreError::Forbidden { .. }) => 403,
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(got, *expected, "{perms:?} {owner} {org} {access:?}");
        }
        let mut admin = principal(&["*:*:write"], "a", "me");
        admin.cross_org = true;
        assert!(admin.check_key_access(&other, &b, Write).is_ok());
    }

    #[test]
    fn keys_never_exceed_their_owner() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let org =
            Org { id: OrgId::from_trusted("o"), name: "o".into(), settings: OrgSettings::default(), created_at: t };
        let mut auditor = User {
            id: UserId::from_trusted("u"),
            org_id: org.id.clone(),
            name: "u".into(),
            email: None,
            kind: UserKind::Human,
            roles: vec![RoleId::from_trusted("auditor")],
            status: UserStatus::Active,
            created_at: t,
            token_epoch: 0,
        };
        let dir = Directory::new(vec![org.clone()], vec![auditor.clone()], builtin_roles(), vec![]);
        let key = KeyRecord {
            id: KeyId::from_trusted("k"),
            org_id: org.id.clone(),
            owner_id: auditor.id.clone(),
            name: "k".into(),
            description: String::new(),
            comment: String::new(),
            roles: vec![RoleId::from_trusted("org_admin")],
            scopes: vec![],
            expires_at: None,
            locked: false,
            network_restrictions: vec![],
            reauth_timeout_s: 60,
            created_at: t,
            created_by: auditor.id.clone(),
            updated_at: t,
            rolled_at: None,
            last_used_at: None,
            last_used_ip: None,
            imported: false,
            secret: crate::crypto::SealedSecret { digest: crate::crypto::SecretDigest([0; 32]), ciphertext: vec![] },
            previous_secret: None,
            inherits_owner: false,
            token_epoch: 0,
            version: 0,
        };
        let eff = dir.key_permissions(&key);
        assert!(eff.allows("keyward", "keys", Access::Read));
        assert!(!eff.allows("keyward", "keys", Access::Write), "org_admin on an auditor's key gives only reads");
        assert!(!dir.key_is_cross_org(&key));
        auditor.status = UserStatus::Disabled;
        let dir = Directory::new(vec![org.clone()], vec![auditor.clone()], builtin_roles(), vec![]);
        assert!(dir.key_permissions(&key).is_empty(), "a disabled owner's key holds nothing");

        // An inheriting key follows its owner's roles live, whatever it was created with.
        auditor.status = UserStatus::Active;
        let inheriting = KeyRecord { inherits_owner: true, roles: vec![], ..key.clone() };
        let dir = Directory::new(vec![org.clone()], vec![auditor.clone()], builtin_roles(), vec![]);
        assert!(dir.key_permissions(&inheriting).allows("keyward", "keys", Access::Read));
        assert!(!dir.key_permissions(&inheriting).allows("keyward", "keys", Access::Write));
        auditor.roles = vec![RoleId::from_trusted("org_admin")];
        let dir = Directory::new(vec![org.clone()], vec![auditor.clone()], builtin_roles(), vec![]);
        assert!(
            dir.key_permissions(&inheriting).allows("keyward", "keys", Access::Write),
            "a role gained applies at once"
        );
        assert_eq!(dir.key_potential(&inheriting).0, dir.user_role_permissions(&auditor));
    }

    #[test]
    fn roles_are_named_by_id_or_by_name() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let org = OrgId::from_trusted("o");
        let other = OrgId::from_trusted("p");
        let custom = |id: &str, org: &OrgId, name: &str| Role {
            id: RoleId::from_trusted(id),
            org_id: Some(org.clone()),
            name: name.into(),
            description: String::new(),
            permissions: vec![],
            max_keys: Some(1),
            builtin: false,
        };
        let mut roles = builtin_roles();
        roles.push(custom("role_1", &org, "deploy"));
        roles.push(custom("role_2", &other, "billing"));
        let orgs = vec![
            Org { id: org.clone(), name: "o".into(), settings: OrgSettings::default(), created_at: t },
            Org { id: other, name: "p".into(), settings: OrgSettings::default(), created_at: t },
        ];
        let dir = Directory::new(orgs, vec![], roles, vec![]);
        let ids = |given: &[&str]| {
            dir.resolve_roles(&org, given.iter().map(|r| RoleId::from_trusted(*r)).collect())
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&["deploy", "auditor"]), vec!["role_1", "auditor"]);
        assert_eq!(ids(&["role_1", "deploy"]), vec!["role_1"], "the same role twice is one");
        assert_eq!(ids(&["billing"]), vec!["billing"], "another org's role is not found by name");
        assert_eq!(dir.role_name(&RoleId::from_trusted("role_1")), "deploy");
    }
}

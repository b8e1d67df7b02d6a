//! Permissions (`<scope>:<resource>:<access>`), sets of them, and the scope
//! catalog they are checked against. `write` implies `read`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The access a permission grants; `Write` implies `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

impl Access {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            _ => None,
        }
    }
}

/// The service's own scope.
pub const KEYWARD_SCOPE: &str = "keyward";
/// The resources of the service's own scope.
pub const KEYWARD_RESOURCES: [&str; 7] = ["keys", "users", "roles", "orgs", "scopes", "audit", "verify"];

/// Whether `s` is a valid scope or resource name: lowercase letters, digits, `_`, `-`, `.`; 1–64 chars.
#[must_use]
pub fn is_valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// A permission or, in roles, a pattern where scope or resource may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub scope: String,
    pub resource: String,
    pub access: Access,
}

impl Permission {
    #[must_use]
    pub fn new(scope: &str, resource: &str, access: Access) -> Self {
        Self { scope: scope.to_owned(), resource: resource.to_owned(), access }
    }

    /// Parses `scope:resource:access`; `allow_wildcards` admits `*` for scope and resource.
    pub fn parse(s: &str, allow_wildcards: bool) -> Result<Self, String> {
        let mut parts = s.split(':');
        let (Some(scope), Some(resource), Some(access), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("must be of the form <scope>:<resource>:read|write".into());
        };
        let name_ok = |n: &str| is_valid_name(n) || (allow_wildcards && n == "*");
        if !name_ok(scope) || !name_ok(resource) {
            return Err("must name a valid scope and resource".into());
        }
        let access = Access::parse(access).ok_or_else(|| "access must be read or write".to_owned())?;
        Ok(Self::new(scope, resource, access))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.scope, self.resource, self.access.as_str())
    }
}

/// The scopes and resources that exist for one organization.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    scopes: BTreeMap<String, Vec<String>>,
}

impl Catalog {
    /// The service's own scope plus the org's declared scopes.
    #[must_use]
    pub fn new<'a>(declared: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Self {
        let mut scopes = BTreeMap::new();
        scopes.insert(KEYWARD_SCOPE.to_owned(), KEYWARD_RESOURCES.iter().map(|r| (*r).to_owned()).collect());
        for (name, resources) in declared {
            scopes.insert(name.to_owned(), resources.to_vec());
        }
        Self { scopes }
    }

    #[must_use]
    pub fn contains_scope(&self, scope: &str) -> bool {
        self.scopes.contains_key(scope)
    }

    /// The scopes and their resources, the service's own first.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.scopes.iter().map(|(s, r)| (s.as_str(), r.as_slice()))
    }

    #[must_use]
    pub fn contains(&self, scope: &str, resource: &str) -> bool {
        self.scopes.get(scope).is_some_and(|rs| rs.iter().any(|r| r == resource))
    }

    /// Every concrete permission a pattern stands for in this catalog.
    fn expand<'a>(&'a self, pattern: &'a Permission) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.scopes.iter().filter(move |(s, _)| pattern.scope == "*" || pattern.scope == **s).flat_map(
            move |(s, rs)| {
                rs.iter()
                    .filter(move |r| pattern.resource == "*" || pattern.resource == **r)
                    .map(move |r| (s.as_str(), r.as_str()))
            },
        )
    }
}

/// A set of concrete permissions: the highest access held per scope and resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeMap<(String, String), Access>);

impl PermissionSet {
    /// The concrete permissions a list of patterns grants in `catalog`.
    #[must_use]
    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a Permission>, catalog: &Catalog) -> Self {
        let mut set = Self::default();
        for p in patterns {
            for (s, r) in catalog.expand(p) {
                set.grant(s, r, p.access);
            }
        }
        set
    }

    pub fn grant(&mut self, scope: &str, resource: &str, access: Access) {
        let entry = self.0.entry((scope.to_owned(), resource.to_owned())).or_insert(access);
        *entry = (*entry).max(access);
    }

    /// Whether the set allows `access` on `scope:resource` (`write` implies `read`).
    #[must_use]
    pub fn allows(&self, scope: &str, resource: &str, access: Access) -> bool {
        self.0.get(&(scope.to_owned(), resource.to_owned())).is_some_and(|held| *held >= access)
    }

    #[must_use]
    pub fn allows_permission(&self, p: &Permission) -> bool {
        self.allows(&p.scope, &p.resource, p.access)
    }

    #[must_use]
    pub fn union(mut self, other: &Self) -> Self {
        for ((s, r), a) in &other.0 {
            self.grant(s, r, *a);
        }
        self
    }

    /// What both sets allow: per scope and resource, the lower access.
    #[must_use]
    pub fn intersect(&self, other: &Self) -> Self {
        Self(self.0.iter().filter_map(|(k, a)| other.0.get(k).map(|b| (k.clone(), (*a).min(*b)))).collect())
    }

    /// Whether everything in `self` is allowed by `other`.
    #[must_use]
    pub fn is_subset_of(&self, other: &Self) -> bool {
        self.0.iter().all(|((s, r), a)| other.allows(s, r, *a))
    }

    /// The permissions this set holds that `other` does not.
    #[must_use]
    pub fn excess_over(&self, other: &Self) -> Vec<String> {
        self.iter().filter(|p| !other.allows_permission(p)).map(|p| p.to_string()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().map(|((s, r), a)| Permission::new(s, r, *a))
    }

    /// The set as sorted `scope:resource:access` strings.
    #[must_use]
    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(|p| p.to_string()).collect()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let orders = vec!["invoices".to_owned(), "refunds".to_owned()];
        Catalog::new([("orders", orders.as_slice())])
    }

    fn set(perms: &[&str]) -> PermissionSet {
        let ps: Vec<Permission> = perms.iter().map(|p| Permission::parse(p, true).unwrap()).collect();
        PermissionSet::from_patterns(&ps, &catalog())
    }

    #[test]
    fn write_implies_read() {
        let s = set(&["orders:invoices:write"]);
        assert!(s.allows("orders", "invoices", Access::Read));
        assert!(s.allows("orders", "invoices", Access::Write));
        assert!(!s.allows("orders", "refunds", Access::Read));
        let r = set(&["orders:invoices:read"]);
        assert!(!r.allows("orders", "invoices", Access::Write));
    }

    #[test]
    fn wildcards_expand_over_the_catalog_only() {
        let all = set(&["*:*:write"]);
        assert_eq!(all.to_strings().len(), 7 + 2);
        assert!(all.allows("keyward", "audit", Access::Write));
        assert!(!all.allows("unknown", "x", Access::Read));
        let kw = set(&["keyward:*:read"]);
        assert_eq!(kw.to_strings().len(), 7);
        assert!(!kw.allows("keyward", "keys", Access::Write));
    }

    #[test]
    fn intersection_takes_the_lower_access() {
        let key = set(&["orders:invoices:write", "keyward:keys:write"]);
        let owner = set(&["orders:invoices:read", "orders:refunds:write"]);
        let eff = key.intersect(&owner);
        assert_eq!(eff.to_strings(), vec!["orders:invoices:read"]);
        assert!(eff.is_subset_of(&owner));
        assert!(!key.is_subset_of(&owner));
        assert_eq!(key.excess_over(&owner), vec!["keyward:keys:write", "orders:invoices:write"]);
    }

    #[test]
    fn parsing_rejects_malformed_permissions() {
        for bad in ["keyward:keys", "keyward:keys:admin", "a:b:read:x", "Keyward:keys:read", ":keys:read"] {
            assert!(Permission::parse(bad, true).is_err(), "{bad}");
        }
        assert!(Permission::parse("*:*:read", false).is_err());
        assert_eq!(Permission::parse("orders:invoices:write", false).unwrap().to_string(), "orders:invoices:write");
    }
}

//! Who may do what, against the real binary: the authorization matrix of every
//! endpoint × principal × context, and one test per rule of the access model.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // test code, as in keys.rs

mod common;

use common::{Auth, Response, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A running server, the bootstrap admin's user and org, and helpers that act
/// as the bootstrap admin (the account admin).
struct Fixture {
    server: TestServer,
    admin_user: String,
    org_a: String,
    seq: AtomicU32,
}

impl std::ops::Deref for Fixture {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Fixture {
    async fn start() -> Self {
        let server = TestServer::start().await;
        let me = server.get("/v1/me", &server.admin).await.expect(200);
        let admin_user = str_of(&me["user"]["id"]);
        let org_a = str_of(&me["org_id"]);
        Self { server, admin_user, org_a, seq: AtomicU32::new(0) }
    }

    /// A name nobody used yet in this server.
    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// A new organization (as the account admin).
    async fn org(&self, name: &str) -> String {
        let org = self.post("/v1/orgs", &self.admin, json!({"name": name})).await.expect(201);
        str_of(&org["id"])
    }

    /// Changes an org's settings (as the account admin).
    async fn set_org(&self, org: &str, settings: Value) -> Value {
        self.patch(&format!("/v1/orgs/{org}"), &self.admin, settings).await.expect(200)
    }

    /// A human user of `org` holding `roles` (as the account admin).
    async fn user(&self, org: &str, roles: &[&str]) -> String {
        let body = json!({"name": self.unique("user "), "org_id": org, "roles": roles});
        str_of(&self.post("/v1/users", &self.admin, body).await.expect(201)["id"])
    }

    /// A machine identity (Service Requestor) of `org` holding `roles`.
    async fn service_user(&self, org: &str, roles: &[&str]) -> String {
        let body = json!({"name": self.unique("svc "), "kind": "service", "org_id": org, "roles": roles});
        str_of(&self.post("/v1/users", &self.admin, body).await.expect(201)["id"])
    }

    /// A key for `user`, created by the account admin through `/v1/users/{id}/keys`.
    async fn key(&self, user: &str, body: Value) -> (Value, Auth) {
        let created = self.post(&format!("/v1/users/{user}/keys"), &self.admin, body).await.expect(201);
        (created["key"].clone(), auth_of(&created))
    }

    /// A user holding `roles` and a key that carries all of them.
    async fn member(&self, org: &str, roles: &[&str]) -> (String, Auth) {
        let user = self.user(org, roles).await;
        let (_, auth) = self.key(&user, json!({"name": "member key"})).await;
        (user, auth)
    }

    /// A custom role in the caller's org.
    async fn role(&self, caller: &Auth, permissions: &[&str]) -> String {
        self.role_with(caller, json!({"name": self.unique("role "), "permissions": permissions})).await
    }

    async fn role_with(&self, caller: &Auth, body: Value) -> String {
        str_of(&self.post("/v1/roles", caller, body).await.expect(201)["id"])
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| unreachable!("not a string: {v}")).to_owned()
}

/// The credential of a `{"key", "secret"}` response.
fn auth_of(created: &Value) -> Auth {
    Auth::basic(&str_of(&created["key"]["id"]), &str_of(&created["secret"]))
}

/// A key's scope grant.
fn scope(scope: &str, resource: &str, access: &str) -> Value {
    json!({"scope": scope, "resource": resource, "access": access})
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(str_of).collect()
}

/// The ids of a list's items.
fn item_ids(list: &Value) -> BTreeSet<String> {
    list["items"].as_array().unwrap().iter().map(|i| str_of(&i["id"])).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Exchanges a key for an access token (`scope` narrows it).
async fn token(f: &Fixture, key: &Auth, scope: Option<&str>) -> Response {
    let form = match scope {
        Some(scope) => format!("grant_type=client_credentials&scope={}", scope.replace(' ', "+")),
        None => "grant_type=client_credentials".to_owned(),
    };
    f.post_raw("/v1/oauth/token", key, "application/x-www-form-urlencoded", &form).await
}

/// An access token for `key` narrowed to exactly `scope`.
async fn bearer_token(f: &Fixture, key: &Auth, scope: &str) -> Auth {
    let issued = token(f, key, Some(scope)).await.expect(200);
    assert_eq!(issued["scope"], scope);
    Auth::Bearer(str_of(&issued["access_token"]))
}

// ---------------------------------------------------------------------------
// The authorization matrix
// ---------------------------------------------------------------------------

/// The principals, in the order of the table's columns.
const PRINCIPALS: [&str; 5] = ["account_admin", "org_admin", "auditor", "keys_writer", "service_requestor"];

/// Operations endpoints that need no credential and have no row.
const PUBLIC_OPERATIONS: [(&str, &str); 4] =
    [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json"), ("GET", "/metrics")];

/// Endpoints with rows that take no `/v1` credential: the JWKS is public, the
/// token endpoint authenticates its OAuth client itself, and sign-in takes the
/// key's id and secret in its body.
const JWKS: (&str, &str) = ("GET", "/.well-known/jwks.json");
const TOKEN: (&str, &str) = ("POST", "/v1/oauth/token");
const SIGN_IN: (&str, &str) = ("POST", "/v1/sessions");

/// What a cell expects: the status and, for refusals, the problem `code`.
type Expect = (u16, &'static str);

const OK: Expect = (200, "");
const CREATED: Expect = (201, "");
/// 204 No Content, for deletions.
const DELETED: Expect = (204, "");
const DENIED: Expect = (403, "insufficient_permissions");
const HIDDEN: Expect = (404, "not_found");
const SELF: Expect = (409, "cannot_change_self");
const BUILTIN: Expect = (409, "role_builtin");
/// `POST /v1/verify` answers 200 either way; the verdict's `code` is the outcome.
const VALID: Expect = (200, "valid");
const REFUSED: Expect = (200, "invalid_credentials");

/// What `{id}` (or the body) of a row refers to. Every target that a cell
/// could change is created fresh for that cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// A collection; the caller's own org.
    Plain,
    /// A key created for another user of the caller's org (`owner_id`).
    OwnerSameOrg,
    /// A key created for a user of the other org (`owner_id`).
    OwnerOtherOrg,
    /// A user created in the other org (`org_id`).
    InOtherOrg,
    /// A user created holding `account_admin`.
    GrantAdmin,
    /// A fresh key of the caller's own.
    OwnKey,
    /// A fresh key of another user of the caller's org.
    SameOrgKey,
    /// A fresh key of a user of the other org.
    OtherOrgKey,
    OwnOrg,
    OtherOrg,
    /// The caller's own user (a fresh principal of the same kind when the cell changes it).
    Itself,
    /// Disabling the caller's own user (a fresh principal of the same kind).
    ItselfDisable,
    /// A fresh auditor of the caller's org.
    SameOrgUser,
    /// A fresh auditor of the other org.
    OtherOrgUser,
    /// A fresh account admin of the caller's org.
    AccountAdminUser,
    /// The built-in role `auditor`.
    BuiltinRole,
    /// A fresh custom role of the caller's org.
    OwnOrgRole,
    /// A fresh custom role of the other org.
    OtherOrgRole,
    /// A list filtered to the other org (`?org_id=`).
    OtherOrgFilter,
}

impl Ctx {
    fn label(self) -> &'static str {
        match self {
            Ctx::Plain => "own org",
            Ctx::OwnerSameOrg => "owner: another user",
            Ctx::OwnerOtherOrg => "owner: other org's user",
            Ctx::InOtherOrg => "in the other org",
            Ctx::GrantAdmin => "granting account_admin",
            Ctx::OwnKey => "own key",
            Ctx::SameOrgKey => "another user's key",
            Ctx::OtherOrgKey => "other org's key",
            Ctx::OwnOrg => "own org",
            Ctx::OtherOrg => "other org",
            Ctx::Itself => "own user",
            Ctx::ItselfDisable => "disabling own user",
            Ctx::SameOrgUser => "other user",
            Ctx::OtherOrgUser => "other org's user",
            Ctx::AccountAdminUser => "an account_admin user",
            Ctx::BuiltinRole => "built-in role",
            Ctx::OwnOrgRole => "own org's custom role",
            Ctx::OtherOrgRole => "other org's custom role",
            Ctx::OtherOrgFilter => "?org_id=other org",
        }
    }
}

/// One row: an endpoint in one context, and what each principal gets.
struct Row {
    method: &'static str,
    path: &'static str,
    ctx: Ctx,
    expect: [Expect; 5],
}

fn row(method: &'static str, path: &'static str, ctx: Ctx, expect: [Expect; 5]) -> Row {
    Row { method, path, ctx, expect }
}

/// The access model as a table. Columns: account_admin, org_admin, auditor,
/// keys_writer (custom role `keyward:keys:write`), service_requestor.
/// `POST /v1/keys/bulk` answers 200 to anyone holding `keyward:keys:write`; its
/// cells give the outcome for the one key in the request (ok → 200, `not_found`
/// → 404, `insufficient_permissions` → 403). `POST /v1/verify` verifies the
/// secret of the context's key; its cells give the verdict (`VALID`/`REFUSED`).
/// `POST /v1/oauth/token` is called with the principal's key as OAuth client,
/// `POST /v1/sessions` with the principal's key id and secret.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Ctx::*;
    vec![
        //  method    path                             context            acct_adm org_adm  auditor  keys_wr  svc_req
        row("GET",    "/v1/me",                        Plain,            [OK,      OK,      OK,      OK,      OK]),
        row("GET",    "/.well-known/jwks.json",        Plain,            [OK,      OK,      OK,      OK,      OK]),
        row("POST",   "/v1/oauth/token",               Plain,            [OK,      OK,      OK,      OK,      OK]),
        row("POST",   "/v1/sessions",                  Plain,            [CREATED, CREATED, CREATED, CREATED, DENIED]),
        row("DELETE", "/v1/sessions/current",          Plain,            [DELETED, DELETED, DELETED, DELETED, DELETED]),
        row("POST",   "/v1/oauth/signing-keys/rotate", Plain,            [OK,      DENIED,  DENIED,  DENIED,  DENIED]),
        row("POST",   "/v1/verify",                    SameOrgKey,       [VALID,   VALID,   VALID,   DENIED,  DENIED]),
        row("POST",   "/v1/verify",                    OtherOrgKey,      [VALID,   REFUSED, REFUSED, DENIED,  DENIED]),

        row("GET",    "/v1/keys",                      Plain,            [OK,      OK,      OK,      OK,      DENIED]),
        row("POST",   "/v1/keys",                      Plain,            [CREATED, CREATED, DENIED,  CREATED, DENIED]),
        row("POST",   "/v1/keys",                      OwnerSameOrg,     [CREATED, CREATED, DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys",                      OwnerOtherOrg,    [CREATED, HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/import",               Plain,            [CREATED, CREATED, DENIED,  CREATED, DENIED]),
        row("POST",   "/v1/keys/import",               OwnerSameOrg,     [CREATED, CREATED, DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/import",               OwnerOtherOrg,    [CREATED, HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/bulk",                 OwnKey,           [OK,      OK,      DENIED,  OK,      DENIED]),
        row("POST",   "/v1/keys/bulk",                 SameOrgKey,       [OK,      OK,      DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/bulk",                 OtherOrgKey,      [OK,      HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("GET",    "/v1/keys/{id}",                 OwnKey,           [OK,      OK,      OK,      OK,      DENIED]),
        row("GET",    "/v1/keys/{id}",                 SameOrgKey,       [OK,      OK,      OK,      HIDDEN,  DENIED]),
        row("GET",    "/v1/keys/{id}",                 OtherOrgKey,      [OK,      HIDDEN,  HIDDEN,  HIDDEN,  DENIED]),
        row("PATCH",  "/v1/keys/{id}",                 OwnKey,           [OK,      OK,      DENIED,  OK,      DENIED]),
        row("PATCH",  "/v1/keys/{id}",                 SameOrgKey,       [OK,      OK,      DENIED,  HIDDEN,  DENIED]),
        row("PATCH",  "/v1/keys/{id}",                 OtherOrgKey,      [OK,      HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("DELETE", "/v1/keys/{id}",                 OwnKey,           [DELETED, DELETED, DENIED,  DELETED, DENIED]),
        row("DELETE", "/v1/keys/{id}",                 SameOrgKey,       [DELETED, DELETED, DENIED,  HIDDEN,  DENIED]),
        row("DELETE", "/v1/keys/{id}",                 OtherOrgKey,      [DELETED, HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/roll",            OwnKey,           [OK,      OK,      DENIED,  OK,      DENIED]),
        row("POST",   "/v1/keys/{id}/roll",            SameOrgKey,       [OK,      OK,      DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/roll",            OtherOrgKey,      [OK,      HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/lock",            OwnKey,           [OK,      OK,      DENIED,  OK,      DENIED]),
        row("POST",   "/v1/keys/{id}/lock",            SameOrgKey,       [OK,      OK,      DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/lock",            OtherOrgKey,      [OK,      HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/unlock",          OwnKey,           [OK,      OK,      DENIED,  OK,      DENIED]),
        row("POST",   "/v1/keys/{id}/unlock",          SameOrgKey,       [OK,      OK,      DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/unlock",          OtherOrgKey,      [OK,      HIDDEN,  DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/end-grace",       OwnKey,           [OK,      OK,      DENIED,  OK,      DENIED]),
        row("POST",   "/v1/keys/{id}/end-grace",       SameOrgKey,       [OK,      OK,      DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/keys/{id}/end-grace",       OtherOrgKey,      [OK,      HIDDEN,  DENIED,  HIDDEN,  DENIED]),

        row("GET",    "/v1/orgs",                      Plain,            [OK,      OK,      OK,      DENIED,  DENIED]),
        row("POST",   "/v1/orgs",                      Plain,            [CREATED, DENIED,  DENIED,  DENIED,  DENIED]),
        row("GET",    "/v1/orgs/{id}",                 OwnOrg,           [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/orgs/{id}",                 OtherOrg,         [OK,      HIDDEN,  HIDDEN,  DENIED,  DENIED]),
        row("PATCH",  "/v1/orgs/{id}",                 OwnOrg,           [OK,      OK,      DENIED,  DENIED,  DENIED]),
        row("PATCH",  "/v1/orgs/{id}",                 OtherOrg,         [OK,      HIDDEN,  DENIED,  DENIED,  DENIED]),

        row("GET",    "/v1/users",                     Plain,            [OK,      OK,      OK,      DENIED,  DENIED]),
        row("POST",   "/v1/users",                     Plain,            [CREATED, CREATED, DENIED,  DENIED,  DENIED]),
        row("POST",   "/v1/users",                     InOtherOrg,       [CREATED, DENIED,  DENIED,  DENIED,  DENIED]),
        row("POST",   "/v1/users",                     GrantAdmin,       [CREATED, DENIED,  DENIED,  DENIED,  DENIED]),
        row("GET",    "/v1/users/{id}",                Itself,           [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/users/{id}",                SameOrgUser,      [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/users/{id}",                OtherOrgUser,     [OK,      HIDDEN,  HIDDEN,  DENIED,  DENIED]),
        row("PATCH",  "/v1/users/{id}",                Itself,           [OK,      OK,      DENIED,  DENIED,  DENIED]),
        row("PATCH",  "/v1/users/{id}",                ItselfDisable,    [SELF,    SELF,    DENIED,  DENIED,  DENIED]),
        row("PATCH",  "/v1/users/{id}",                SameOrgUser,      [OK,      OK,      DENIED,  DENIED,  DENIED]),
        row("PATCH",  "/v1/users/{id}",                OtherOrgUser,     [OK,      HIDDEN,  DENIED,  DENIED,  DENIED]),
        row("PATCH",  "/v1/users/{id}",                AccountAdminUser, [OK,      DENIED,  DENIED,  DENIED,  DENIED]),
        row("DELETE", "/v1/users/{id}",                Itself,           [SELF,    SELF,    DENIED,  DENIED,  DENIED]),
        row("DELETE", "/v1/users/{id}",                SameOrgUser,      [DELETED, DELETED, DENIED,  DENIED,  DENIED]),
        row("DELETE", "/v1/users/{id}",                OtherOrgUser,     [DELETED, HIDDEN,  DENIED,  DENIED,  DENIED]),
        row("DELETE", "/v1/users/{id}",                AccountAdminUser, [DELETED, DENIED,  DENIED,  DENIED,  DENIED]),
        row("GET",    "/v1/users/{id}/keys",           Itself,           [OK,      OK,      OK,      OK,      DENIED]),
        row("GET",    "/v1/users/{id}/keys",           SameOrgUser,      [OK,      OK,      OK,      HIDDEN,  DENIED]),
        row("GET",    "/v1/users/{id}/keys",           OtherOrgUser,     [OK,      HIDDEN,  HIDDEN,  HIDDEN,  DENIED]),
        row("POST",   "/v1/users/{id}/keys",           Itself,           [CREATED, CREATED, DENIED,  CREATED, DENIED]),
        row("POST",   "/v1/users/{id}/keys",           SameOrgUser,      [CREATED, CREATED, DENIED,  HIDDEN,  DENIED]),
        row("POST",   "/v1/users/{id}/keys",           OtherOrgUser,     [CREATED, HIDDEN,  DENIED,  HIDDEN,  DENIED]),

        row("GET",    "/v1/roles",                     Plain,            [OK,      OK,      OK,      DENIED,  DENIED]),
        row("POST",   "/v1/roles",                     Plain,            [CREATED, CREATED, DENIED,  DENIED,  DENIED]),
        row("GET",    "/v1/roles/{id}",                BuiltinRole,      [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/roles/{id}",                OwnOrgRole,       [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/roles/{id}",                OtherOrgRole,     [OK,      HIDDEN,  HIDDEN,  DENIED,  DENIED]),
        row("PATCH",  "/v1/roles/{id}",                BuiltinRole,      [BUILTIN, BUILTIN, DENIED,  DENIED,  DENIED]),
        row("PATCH",  "/v1/roles/{id}",                OwnOrgRole,       [OK,      OK,      DENIED,  DENIED,  DENIED]),
        row("PATCH",  "/v1/roles/{id}",                OtherOrgRole,     [OK,      HIDDEN,  DENIED,  DENIED,  DENIED]),
        row("DELETE", "/v1/roles/{id}",                BuiltinRole,      [BUILTIN, BUILTIN, DENIED,  DENIED,  DENIED]),
        row("DELETE", "/v1/roles/{id}",                OwnOrgRole,       [DELETED, DELETED, DENIED,  DENIED,  DENIED]),
        row("DELETE", "/v1/roles/{id}",                OtherOrgRole,     [DELETED, HIDDEN,  DENIED,  DENIED,  DENIED]),

        row("GET",    "/v1/scopes",                    Plain,            [OK,      OK,      OK,      DENIED,  DENIED]),
        row("POST",   "/v1/scopes",                    Plain,            [CREATED, CREATED, DENIED,  DENIED,  DENIED]),

        row("GET",    "/v1/audit",                     Plain,            [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/audit",                     OtherOrgFilter,   [OK,      HIDDEN,  HIDDEN,  DENIED,  DENIED]),
        row("GET",    "/v1/audit/export",              Plain,            [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/audit/export",              OtherOrgFilter,   [OK,      HIDDEN,  HIDDEN,  DENIED,  DENIED]),
        row("GET",    "/v1/audit/verify",              Plain,            [OK,      OK,      OK,      DENIED,  DENIED]),
        row("GET",    "/v1/audit/verify",              OtherOrgFilter,   [OK,      HIDDEN,  HIDDEN,  DENIED,  DENIED]),


    ]
}

/// A principal of the matrix: its user and the key it calls with.
#[derive(Clone)]
struct Caller {
    user: String,
    auth: Auth,
}

/// Two orgs, the five principals (in org A), and the users whose keys are
/// "another user's" in each org.
struct World {
    f: Fixture,
    org_b: String,
    keys_writer_role: String,
    callers: Vec<Caller>,
    other_a: String,
    other_b: String,
    /// An org admin of B, who creates B's custom roles.
    admin_b: Auth,
}

/// One request of a cell.
struct Call {
    caller: Auth,
    path: String,
    body: Option<Value>,
    /// A form body instead (the token endpoint).
    form: Option<String>,
}

impl World {
    async fn build() -> Self {
        let f = Fixture::start().await;
        let org_b = f.org("org b").await;
        // Cells create many keys per principal; the per-user limit has its own test.
        for org in [&f.org_a, &org_b] {
            f.set_org(org, json!({"max_keys_per_user": 100_000})).await;
        }
        let keys_writer_role = f.role(&f.admin, &["keyward:keys:write"]).await;
        let other_a = f.user(&f.org_a, &["auditor"]).await;
        let other_b = f.user(&org_b, &["auditor"]).await;
        let (_, admin_b) = f.member(&org_b, &["org_admin"]).await;
        let admin = Caller { user: f.admin_user.clone(), auth: f.admin.clone() };
        let mut world = World { f, org_b, keys_writer_role, callers: vec![admin], other_a, other_b, admin_b };
        for p in 1..PRINCIPALS.len() {
            let caller = world.new_caller(p).await;
            world.callers.push(caller);
        }
        world.check_principals().await;
        world
    }

    /// A fresh user of org A of principal kind `p` (column index), with a key carrying their roles.
    async fn new_caller(&self, p: usize) -> Caller {
        let f = &self.f;
        let user = match PRINCIPALS[p] {
            "service_requestor" => f.service_user(&f.org_a, &["service_requestor"]).await,
            "keys_writer" => f.user(&f.org_a, &[&self.keys_writer_role]).await,
            role => f.user(&f.org_a, &[role]).await,
        };
        let (_, auth) = f.key(&user, json!({"name": "principal"})).await;
        Caller { user, auth }
    }

    /// The principals hold what the table assumes.
    async fn check_principals(&self) {
        let all = |access: &str| -> Vec<String> {
            sorted(
                ["keys", "users", "roles", "orgs", "scopes", "audit", "verify"]
                    .iter()
                    .map(|r| format!("keyward:{r}:{access}"))
                    .collect(),
            )
        };
        let expected = [all("write"), all("write"), all("read"), vec!["keyward:keys:write".to_owned()], vec![]];
        for (p, caller) in self.callers.iter().enumerate() {
            let me = self.f.get("/v1/me", &caller.auth).await.expect(200);
            assert_eq!(str_of(&me["user"]["id"]), caller.user, "{}", PRINCIPALS[p]);
            assert_eq!(str_of(&me["org_id"]), self.f.org_a, "{}", PRINCIPALS[p]);
            let held = sorted(strings(&me["permissions"]));
            assert_eq!(held, expected[p], "the {} principal's permissions", PRINCIPALS[p]);
        }
    }

    /// A new key of `owner`: its id and secret.
    async fn fresh_key(&self, owner: &str) -> (String, String) {
        let created = self
            .f
            .post(&format!("/v1/users/{owner}/keys"), &self.f.admin, json!({"name": self.f.unique("target ")}))
            .await
            .expect(201);
        (str_of(&created["key"]["id"]), str_of(&created["secret"]))
    }

    /// Builds the request of one cell, creating its target.
    async fn prepare(&self, p: usize, row: &Row) -> Call {
        let f = &self.f;
        let changes_self = matches!(row.ctx, Ctx::Itself | Ctx::ItselfDisable) && row.method != "GET";
        let changes_user = row.path == "/v1/users/{id}";
        let caller = if changes_self && changes_user { self.new_caller(p).await } else { self.callers[p].clone() };
        let key = match row.ctx {
            Ctx::OwnKey => Some(self.fresh_key(&caller.user).await),
            Ctx::SameOrgKey => Some(self.fresh_key(&self.other_a).await),
            Ctx::OtherOrgKey => Some(self.fresh_key(&self.other_b).await),
            _ => None,
        };
        let id = match row.ctx {
            Ctx::OwnKey | Ctx::SameOrgKey | Ctx::OtherOrgKey => key.as_ref().map(|(id, _)| id.clone()),
            Ctx::OwnOrg => Some(f.org_a.clone()),
            Ctx::OtherOrg => Some(self.org_b.clone()),
            Ctx::Itself | Ctx::ItselfDisable => Some(caller.user.clone()),
            Ctx::SameOrgUser => Some(f.user(&f.org_a, &["auditor"]).await),
            Ctx::OtherOrgUser => Some(f.user(&self.org_b, &["auditor"]).await),
            Ctx::AccountAdminUser => Some(f.user(&f.org_a, &["account_admin"]).await),
            Ctx::BuiltinRole => Some("auditor".to_owned()),
            Ctx::OwnOrgRole => Some(f.role(&f.admin, &["keyward:keys:read"]).await),
            Ctx::OtherOrgRole => Some(f.role(&self.admin_b, &["keyward:keys:read"]).await),
            Ctx::Plain
            | Ctx::OwnerSameOrg
            | Ctx::OwnerOtherOrg
            | Ctx::InOtherOrg
            | Ctx::GrantAdmin
            | Ctx::OtherOrgFilter => None,
        };
        let path = match (&id, row.ctx) {
            (Some(id), _) => row.path.replace("{id}", id),
            (None, Ctx::OtherOrgFilter) => format!("{}?org_id={}", row.path, self.org_b),
            (None, _) => row.path.to_owned(),
        };
        let owner = match row.ctx {
            Ctx::OwnerSameOrg => Some(self.other_a.clone()),
            Ctx::OwnerOtherOrg => Some(self.other_b.clone()),
            _ => None,
        };
        let mut body = match (row.method, row.path) {
            ("POST", "/v1/keys" | "/v1/users/{id}/keys") => Some(json!({"name": "matrix"})),
            ("POST", "/v1/keys/import") => Some(json!({
                "id": f.unique("imported-"),
                "secret": f.unique("an-imported-secret-"),
                "name": "matrix import",
            })),
            ("POST", "/v1/keys/bulk") => Some(json!({"action": "lock", "ids": [id]})),
            ("POST", "/v1/verify") => Some(json!({"secret": key.as_ref().map(|(_, secret)| secret)})),
            ("POST", "/v1/sessions") => {
                let Auth::Basic(key_id, secret) = &caller.auth else { unreachable!("principals use Basic") };
                Some(json!({"key_id": key_id, "secret": secret}))
            }
            ("POST", "/v1/oauth/signing-keys/rotate") => Some(json!({})),
            ("PATCH", "/v1/keys/{id}") => Some(json!({"comment": "touched by the matrix"})),
            ("POST", _) if row.path.starts_with("/v1/keys/{id}/") => Some(json!({})),
            ("POST", "/v1/orgs") => Some(json!({"name": f.unique("org ")})),
            ("PATCH", "/v1/orgs/{id}") => Some(json!({"allow_direct_secret": true})),
            ("POST", "/v1/users") => {
                let role = if row.ctx == Ctx::GrantAdmin { "account_admin" } else { "auditor" };
                let mut body = json!({"name": f.unique("created "), "roles": [role]});
                if row.ctx == Ctx::InOtherOrg {
                    body["org_id"] = json!(self.org_b);
                }
                Some(body)
            }
            ("PATCH", "/v1/users/{id}") if row.ctx == Ctx::ItselfDisable => Some(json!({"status": "disabled"})),
            ("PATCH", "/v1/users/{id}") => Some(json!({"name": "renamed by the matrix"})),
            ("POST", "/v1/roles") => {
                Some(json!({"name": f.unique("matrix role "), "permissions": ["keyward:keys:read"]}))
            }
            ("PATCH", "/v1/roles/{id}") => Some(json!({"description": "changed by the matrix"})),
            ("POST", "/v1/scopes") => Some(json!({"name": f.unique("matrix-scope-"), "resources": ["things"]})),
            _ => None,
        };
        if let (Some(owner), Some(body)) = (owner, body.as_mut()) {
            body["owner_id"] = json!(owner);
        }
        let form = ((row.method, row.path) == TOKEN).then(|| "grant_type=client_credentials".to_owned());
        let caller = if (row.method, row.path) == SIGN_IN { Auth::None } else { caller.auth };
        Call { caller, path, body, form }
    }
}

/// The (status, code) a cell produced; for bulk, the outcome of its one key.
fn outcome(row: &Row, resp: &Response) -> (u16, String) {
    let status = resp.status.as_u16();
    if row.path == "/v1/verify" && status == 200 {
        return (200, resp.body["code"].as_str().unwrap_or("").to_owned());
    }
    if row.path == "/v1/keys/bulk" && status == 200 {
        let result = &resp.body["results"][0];
        if result["ok"] == true {
            return (200, String::new());
        }
        let code = result["code"].as_str().unwrap_or("").to_owned();
        let status = match code.as_str() {
            "not_found" => 404,
            "insufficient_permissions" => 403,
            _ => 500,
        };
        return (status, code);
    }
    // Problem documents carry `code`; OAuth error bodies carry `error`.
    let code = resp.body["code"].as_str().or(resp.body["error"].as_str()).unwrap_or("");
    (status, if status >= 400 { code.to_owned() } else { String::new() })
}

/// Every (METHOD, path) the server documents in `/openapi.json`.
async fn documented_endpoints(s: &TestServer) -> BTreeSet<(String, String)> {
    let doc = s.get("/openapi.json", &Auth::None).await.expect(200);
    let mut endpoints = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
            if item.get(method).is_some() {
                endpoints.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    endpoints
}

/// Without a valid credential every endpoint of the table answers 401
/// `invalid_credentials` (the token endpoint: 401 `invalid_client`), except
/// the public JWKS. Returns what disagrees.
async fn credential_failures(s: &TestServer, covered: &BTreeSet<(String, String)>) -> Vec<String> {
    let mut failures = Vec::new();
    let wrong = "not-the-secret-not-the-secret";
    let wrong_secret = Auth::basic(&s.admin_id, wrong);
    // Problem documents name the refusal in `code`, OAuth error bodies in `error`.
    let mut check = |what: String, resp: Response, expected: (u16, &str)| {
        let field = if expected.1 == "invalid_client" { "error" } else { "code" };
        let code = resp.body[field].as_str().unwrap_or("");
        if (resp.status.as_u16(), code) != expected {
            failures.push(format!("{what}: expected {} {}, got {} {code}", expected.0, expected.1, resp.status));
        }
    };

    check(format!("GET {} without a credential", JWKS.1), s.get(JWKS.1, &Auth::None).await, (200, ""));
    for auth in [&Auth::None, &wrong_secret] {
        let form = "grant_type=client_credentials";
        let resp = s.post_raw(TOKEN.1, auth, "application/x-www-form-urlencoded", form).await;
        check(format!("POST {} with {auth:?}", TOKEN.1), resp, (401, "invalid_client"));
    }
    let resp = s.post(SIGN_IN.1, &Auth::None, json!({"key_id": s.admin_id, "secret": wrong})).await;
    check(format!("POST {} with a wrong secret", SIGN_IN.1), resp, (401, "invalid_credentials"));

    let public = [JWKS, TOKEN, SIGN_IN].map(|(m, p)| (m.to_owned(), p.to_owned()));
    for (method, path) in covered.iter().filter(|e| !public.contains(e)) {
        let path = path.replace("{id}", "anything");
        for auth in [&Auth::None, &wrong_secret] {
            let body = (method != "GET" && method != "DELETE").then(|| json!({}));
            let resp = s.call(Method::from_bytes(method.as_bytes()).unwrap(), &path, auth, body).await;
            check(format!("{method} {path} with {auth:?}"), resp, (401, "invalid_credentials"));
        }
    }
    failures
}

#[tokio::test]
async fn authorization_matrix_every_endpoint_principal_and_context() {
    let table = table();
    let world = World::build().await;
    let s = &world.f;
    let mut failures = Vec::new();

    // Every endpoint the server serves has a row, and every row names a served endpoint.
    let mut documented = documented_endpoints(s).await;
    for (method, path) in PUBLIC_OPERATIONS {
        assert!(documented.remove(&(method.to_owned(), path.to_owned())), "{method} {path} is not documented");
    }
    let covered: BTreeSet<(String, String)> = table.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    for (method, path) in documented.difference(&covered) {
        failures.push(format!("{method} {path}: served but has no row in the matrix"));
    }
    for (method, path) in covered.difference(&documented) {
        failures.push(format!("{method} {path}: has a row but is not served"));
    }

    // Every cell.
    let mut cells = 0;
    for row in &table {
        for (p, expected) in row.expect.iter().enumerate() {
            cells += 1;
            let call = world.prepare(p, row).await;
            let resp = match &call.form {
                Some(form) => s.post_raw(&call.path, &call.caller, "application/x-www-form-urlencoded", form).await,
                None => {
                    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
                    s.call(method, &call.path, &call.caller, call.body).await
                }
            };
            let (status, code) = outcome(row, &resp);
            if (status, code.as_str()) != *expected {
                let granted = (200..300).contains(&status) && matches!(code.as_str(), "" | "valid");
                let refused = expected.0 >= 400 || expected.1 == REFUSED.1;
                let escalation = if granted && refused { "ESCALATION: " } else { "" };
                failures.push(format!(
                    "{escalation}{} {} [{}] as {}: expected {} {}, got {status} {code} ({})",
                    row.method,
                    row.path,
                    row.ctx.label(),
                    PRINCIPALS[p],
                    expected.0,
                    expected.1,
                    resp.text.chars().take(200).collect::<String>(),
                ));
            }
        }
    }

    failures.extend(credential_failures(s, &covered).await);

    eprintln!("authorization matrix: {} rows, {cells} cells, {} failures", table.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {cells} cells disagree with the access model:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_key_with_a_read_only_scope_can_list_keys_but_gets_403_on_writes() {
    let f = Fixture::start().await;
    let owner = f.user(&f.org_a, &["org_admin"]).await;
    let (key, reader) = f.key(&owner, json!({"name": "reader", "scopes": [scope("keyward", "keys", "read")]})).await;
    assert_eq!(key["roles"], json!([]), "scopes without roles: the key carries no role");
    assert_eq!(key["permissions"], json!(["keyward:keys:read"]));
    let me = f.get("/v1/me", &reader).await.expect(200);
    assert_eq!(me["permissions"], json!(["keyward:keys:read"]));

    f.get("/v1/keys", &reader).await.expect(200);
    f.get(&format!("/v1/keys/{}", str_of(&key["id"])), &reader).await.expect(200);
    f.post("/v1/keys", &reader, json!({"name": "more"})).await.problem(403, "insufficient_permissions");
    f.patch(&format!("/v1/keys/{}", str_of(&key["id"])), &reader, json!({"name": "renamed"}))
        .await
        .problem(403, "insufficient_permissions");
    f.get("/v1/users", &reader).await.problem(403, "insufficient_permissions");
}

#[tokio::test]
async fn an_org_admin_gets_404_for_another_orgs_keys_and_users() {
    let f = Fixture::start().await;
    let (_, admin_a) = f.member(&f.org_a, &["org_admin"]).await;
    let org_b = f.org("org b").await;
    let user_b = f.user(&org_b, &["auditor"]).await;
    let (key_b, _) = f.key(&user_b, json!({"name": "b's key"})).await;
    let key_b = str_of(&key_b["id"]);

    let calls = [
        (Method::GET, format!("/v1/keys/{key_b}"), None),
        (Method::PATCH, format!("/v1/keys/{key_b}"), Some(json!({"name": "stolen"}))),
        (Method::DELETE, format!("/v1/keys/{key_b}"), None),
        (Method::POST, format!("/v1/keys/{key_b}/lock"), Some(json!({}))),
        (Method::POST, format!("/v1/keys/{key_b}/unlock"), Some(json!({}))),
        (Method::POST, format!("/v1/keys/{key_b}/end-grace"), Some(json!({}))),
        (Method::POST, format!("/v1/keys/{key_b}/roll"), Some(json!({}))),
        (Method::GET, format!("/v1/users/{user_b}"), None),
        (Method::PATCH, format!("/v1/users/{user_b}"), Some(json!({"name": "stolen"}))),
        (Method::DELETE, format!("/v1/users/{user_b}"), None),
        (Method::GET, format!("/v1/users/{user_b}/keys"), None),
        (Method::POST, format!("/v1/users/{user_b}/keys"), Some(json!({"name": "planted"}))),
        (Method::GET, format!("/v1/orgs/{org_b}"), None),
        (Method::PATCH, format!("/v1/orgs/{org_b}"), Some(json!({"max_keys_per_user": 1}))),
    ];
    for (method, path, body) in calls {
        let resp = f.call(method.clone(), &path, &admin_a, body).await;
        assert_eq!(resp.status.as_u16(), 404, "{method} {path}: {}", resp.text);
        resp.problem(404, "not_found");
    }
    let bulk = f.post("/v1/keys/bulk", &admin_a, json!({"action": "delete", "ids": [key_b]})).await.expect(200);
    assert_eq!(bulk["results"][0]["ok"], false);
    assert_eq!(bulk["results"][0]["code"], "not_found");
    f.post("/v1/users", &admin_a, json!({"name": "planted", "org_id": org_b}))
        .await
        .problem(403, "insufficient_permissions");

    // Nothing of B shows in A's lists.
    let keys = f.get("/v1/keys?per_page=100", &admin_a).await.expect(200);
    assert!(keys["items"].as_array().unwrap().iter().all(|k| k["org_id"] == f.org_a.as_str()), "{keys}");
    let users = f.get("/v1/users?per_page=100", &admin_a).await.expect(200);
    assert!(users["items"].as_array().unwrap().iter().all(|u| u["org_id"] == f.org_a.as_str()), "{users}");
    assert!(!item_ids(&users).contains(&user_b));

    // And nothing of B changed.
    let key = f.get(&format!("/v1/keys/{key_b}"), &f.admin).await.expect(200);
    assert_eq!((key["name"].clone(), key["status"].clone()), (json!("b's key"), json!("active")));
    let user = f.get(&format!("/v1/users/{user_b}"), &f.admin).await.expect(200);
    assert_eq!(user["status"], "active");
    let listed = f.get(&format!("/v1/users/{user_b}/keys"), &f.admin).await.expect(200);
    assert_eq!(listed["total"], 1);
    assert_eq!(f.get(&format!("/v1/orgs/{org_b}"), &f.admin).await.expect(200)["max_keys_per_user"], 10);
}

#[tokio::test]
async fn deleting_a_role_deletes_every_key_that_carries_it_and_removes_it_from_users() {
    let f = Fixture::start().await;
    let role = f.role(&f.admin, &["keyward:keys:read"]).await;
    let user = f.user(&f.org_a, &[&role, "auditor"]).await;
    let (named, named_auth) = f.key(&user, json!({"name": "names the role", "roles": [role]})).await;
    let (inherited, inherited_auth) = f.key(&user, json!({"name": "inherits the owner"})).await;
    assert!(strings(&inherited["roles"]).contains(&role), "{inherited}");
    assert_eq!(inherited["inherits_owner"], true);
    let (_, unrelated_auth) = f.key(&user, json!({"name": "auditor only", "roles": ["auditor"]})).await;
    for auth in [&named_auth, &inherited_auth, &unrelated_auth] {
        f.get("/v1/me", auth).await.expect(200);
    }

    f.delete(&format!("/v1/roles/{role}"), &f.admin).await.expect(204);

    f.get("/v1/me", &named_auth).await.problem(401, "invalid_credentials");
    f.get(&format!("/v1/keys/{}", str_of(&named["id"])), &f.admin).await.problem(404, "not_found");
    // A key that inherits its owner carries no role of its own: it lives on with what the owner still holds.
    let me = f.get("/v1/me", &inherited_auth).await.expect(200);
    assert!(!strings(&me["key"]["roles"]).contains(&role), "{me}");
    f.get("/v1/me", &unrelated_auth).await.expect(200);
    let listed = f.get(&format!("/v1/users/{user}/keys"), &f.admin).await.expect(200);
    assert_eq!(listed["total"], 2, "{listed}");
    let user = f.get(&format!("/v1/users/{user}"), &f.admin).await.expect(200);
    assert_eq!(user["roles"], json!(["auditor"]));
    f.get(&format!("/v1/roles/{role}"), &f.admin).await.problem(404, "not_found");
}

#[tokio::test]
async fn deleting_a_user_deletes_their_keys() {
    let f = Fixture::start().await;
    let (user, first) = f.member(&f.org_a, &["auditor"]).await;
    let (second_key, second) = f.key(&user, json!({"name": "second"})).await;
    let (_, bystander) = f.member(&f.org_a, &["auditor"]).await;

    f.delete(&format!("/v1/users/{user}"), &f.admin).await.expect(204);

    f.get("/v1/me", &first).await.problem(401, "invalid_credentials");
    f.get("/v1/me", &second).await.problem(401, "invalid_credentials");
    f.get(&format!("/v1/keys/{}", str_of(&second_key["id"])), &f.admin).await.problem(404, "not_found");
    f.get(&format!("/v1/users/{user}"), &f.admin).await.problem(404, "not_found");
    let all = f.get(&format!("/v1/keys?owner_id={user}"), &f.admin).await.expect(200);
    assert_eq!(all["total"], 0, "{all}");
    f.get("/v1/me", &bystander).await.expect(200);
}

#[tokio::test]
async fn disabling_a_user_locks_their_keys_and_re_enabling_restores_them() {
    let f = Fixture::start().await;
    let (user, auth) = f.member(&f.org_a, &["org_admin"]).await;
    let (_, second) = f.key(&user, json!({"name": "second"})).await;
    f.get("/v1/me", &auth).await.expect(200);

    let disabled = f.patch(&format!("/v1/users/{user}"), &f.admin, json!({"status": "disabled"})).await.expect(200);
    assert_eq!(disabled["status"], "disabled");
    for a in [&auth, &second] {
        f.get("/v1/me", a).await.problem(401, "key_locked");
        f.get("/v1/keys", a).await.problem(401, "key_locked");
    }

    let enabled = f.patch(&format!("/v1/users/{user}"), &f.admin, json!({"status": "active"})).await.expect(200);
    assert_eq!(enabled["status"], "active");
    for a in [&auth, &second] {
        f.get("/v1/me", a).await.expect(200);
    }
    f.post("/v1/keys", &auth, json!({"name": "works again"})).await.expect(201);
}

#[tokio::test]
async fn the_orgs_max_keys_per_user_caps_each_users_keys_with_key_limit_reached() {
    let f = Fixture::start().await;
    let org = f.org("limited").await;
    let settings = f.set_org(&org, json!({"max_keys_per_user": 2})).await;
    assert_eq!(settings["max_keys_per_user"], 2);
    let (user, auth) = f.member(&org, &["org_admin"]).await;
    f.post("/v1/keys", &auth, json!({"name": "second"})).await.expect(201);

    f.post("/v1/keys", &auth, json!({"name": "third"})).await.problem(409, "key_limit_reached");
    f.post(
        "/v1/keys/import",
        &auth,
        json!({"name": "third", "id": "imported-third", "secret": "a-legacy-secret-of-20+"}),
    )
    .await
    .problem(409, "key_limit_reached");
    f.post(&format!("/v1/users/{user}/keys"), &f.admin, json!({"name": "third"}))
        .await
        .problem(409, "key_limit_reached");

    // The cap is per user.
    let other = f.user(&org, &["auditor"]).await;
    f.key(&other, json!({"name": "1"})).await;
    f.key(&other, json!({"name": "2"})).await;

    f.set_org(&org, json!({"max_keys_per_user": 3})).await;
    f.post("/v1/keys", &auth, json!({"name": "third"})).await.expect(201);
    f.post("/v1/keys", &auth, json!({"name": "fourth"})).await.problem(409, "key_limit_reached");
}

#[tokio::test]
async fn a_roles_max_keys_caps_the_keys_carrying_it_per_holder() {
    let f = Fixture::start().await;
    let capped =
        f.role_with(&f.admin, json!({"name": "capped", "permissions": ["keyward:keys:read"], "max_keys": 2})).await;
    assert_eq!(f.get(&format!("/v1/roles/{capped}"), &f.admin).await.expect(200)["max_keys"], 2);
    let user = f.user(&f.org_a, &[&capped, "auditor"]).await;
    let path = format!("/v1/users/{user}/keys");
    let create = |body: Value| f.post(&path, &f.admin, body);

    create(json!({"name": "1", "roles": [capped]})).await.expect(201);
    create(json!({"name": "2", "roles": [capped, "auditor"]})).await.expect(201);
    create(json!({"name": "3", "roles": [capped]})).await.problem(409, "key_limit_reached");
    // A key without roles or scopes inherits its owner and takes no per-role slot.
    let inheriting = create(json!({"name": "inherits"})).await.expect(201);
    assert_eq!(inheriting["key"]["inherits_owner"], true);
    let refused = create(json!({"name": "3", "roles": ["capped"]})).await.problem(409, "key_limit_reached");
    assert!(str_of(&refused["detail"]).contains("role `capped` allows at most 2 keys"), "named by name: {refused}");

    // Keys without the role are not capped by it.
    let other = create(json!({"name": "auditor only", "roles": ["auditor"]})).await.expect(201);
    create(json!({"name": "scoped", "scopes": [scope("keyward", "keys", "read")]})).await.expect(201);
    // Nor can one be changed to carry it once the cap is reached.
    let other_id = str_of(&other["key"]["id"]);
    f.patch(&format!("/v1/keys/{other_id}"), &f.admin, json!({"roles": [capped, "auditor"]}))
        .await
        .problem(409, "key_limit_reached");

    // The cap counts per holder.
    let second_holder = f.user(&f.org_a, &[&capped]).await;
    f.key(&second_holder, json!({"name": "1", "roles": [capped]})).await;
    f.key(&second_holder, json!({"name": "2", "roles": [capped]})).await;
}

#[tokio::test]
async fn a_key_never_exceeds_its_owner_after_the_owner_loses_a_role() {
    let f = Fixture::start().await;
    let user = f.user(&f.org_a, &["org_admin"]).await;
    let (key, auth) = f.key(&user, json!({"name": "admin's key"})).await;
    assert_eq!(key["roles"], json!(["org_admin"]));
    f.post("/v1/keys", &auth, json!({"name": "while admin"})).await.expect(201);

    f.patch(&format!("/v1/users/{user}"), &f.admin, json!({"roles": ["auditor"]})).await.expect(200);

    f.post("/v1/keys", &auth, json!({"name": "after"})).await.problem(403, "insufficient_permissions");
    f.post("/v1/users", &auth, json!({"name": "after"})).await.problem(403, "insufficient_permissions");
    f.get("/v1/keys", &auth).await.expect(200);
    let me = f.get("/v1/me", &auth).await.expect(200);
    let held = strings(&me["permissions"]);
    assert!(held.contains(&"keyward:keys:read".to_owned()), "{held:?}");
    assert!(held.iter().all(|p| p.ends_with(":read")), "the key is read-only now: {held:?}");
    let view = f.get(&format!("/v1/keys/{}", str_of(&key["id"])), &f.admin).await.expect(200);
    assert_eq!(view["roles"], json!(["auditor"]), "an inheriting key shows its owner's roles as they are now");
    assert!(strings(&view["permissions"]).iter().all(|p| p.ends_with(":read")), "{view}");
}

#[tokio::test]
async fn only_an_account_admin_grants_changes_or_deletes_an_account_admin() {
    let f = Fixture::start().await;
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let plain = f.user(&f.org_a, &["auditor"]).await;
    let second_admin = f.user(&f.org_a, &["account_admin"]).await;

    f.post("/v1/users", &org_admin, json!({"name": "would-be admin", "roles": ["account_admin"]}))
        .await
        .problem(403, "insufficient_permissions");
    f.patch(&format!("/v1/users/{plain}"), &org_admin, json!({"roles": ["account_admin"]}))
        .await
        .problem(403, "insufficient_permissions");
    for admin in [&f.admin_user, &second_admin] {
        let path = format!("/v1/users/{admin}");
        f.patch(&path, &org_admin, json!({"name": "renamed"})).await.problem(403, "insufficient_permissions");
        f.patch(&path, &org_admin, json!({"roles": ["auditor"]})).await.problem(403, "insufficient_permissions");
        f.patch(&path, &org_admin, json!({"status": "disabled"})).await.problem(403, "insufficient_permissions");
        f.delete(&path, &org_admin).await.problem(403, "insufficient_permissions");
        let user = f.get(&path, &f.admin).await.expect(200);
        assert_eq!((user["roles"].clone(), user["status"].clone()), (json!(["account_admin"]), json!("active")));
    }
    assert_eq!(f.get(&format!("/v1/users/{plain}"), &f.admin).await.expect(200)["roles"], json!(["auditor"]));

    // The account admin may.
    let promoted =
        f.patch(&format!("/v1/users/{plain}"), &f.admin, json!({"roles": ["account_admin"]})).await.expect(200);
    assert_eq!(promoted["roles"], json!(["account_admin"]));
    f.delete(&format!("/v1/users/{second_admin}"), &f.admin).await.expect(204);
}

#[tokio::test]
async fn nobody_assigns_roles_whose_permissions_exceed_their_own() {
    let f = Fixture::start().await;
    let manager_role = f.role(&f.admin, &["keyward:users:write"]).await;
    let viewer_role = f.role(&f.admin, &["keyward:users:read"]).await;
    let (_, manager) = f.member(&f.org_a, &[&manager_role]).await;

    for roles in [json!(["org_admin"]), json!(["auditor"]), json!([viewer_role, "org_admin"])] {
        f.post("/v1/users", &manager, json!({"name": "too much", "roles": roles}))
            .await
            .problem(403, "insufficient_permissions");
    }
    f.post("/v1/users", &manager, json!({"name": "viewer", "roles": [viewer_role]})).await.expect(201);
    f.post("/v1/users", &manager, json!({"name": "peer", "roles": [manager_role]})).await.expect(201);

    let plain = f.user(&f.org_a, &[]).await;
    f.patch(&format!("/v1/users/{plain}"), &manager, json!({"roles": ["org_admin"]}))
        .await
        .problem(403, "insufficient_permissions");
    assert_eq!(f.get(&format!("/v1/users/{plain}"), &f.admin).await.expect(200)["roles"], json!([]));
    f.patch(&format!("/v1/users/{plain}"), &manager, json!({"roles": [viewer_role]})).await.expect(200);
}

#[tokio::test]
async fn a_narrow_key_cannot_mint_a_broader_key_for_its_owner() {
    let f = Fixture::start().await;
    let user = f.user(&f.org_a, &["org_admin"]).await;
    let (narrow_key, narrow) =
        f.key(&user, json!({"name": "narrow", "scopes": [scope("keyward", "keys", "write")]})).await;
    assert_eq!(narrow_key["permissions"], json!(["keyward:keys:write"]));

    let broader = [
        json!({"name": "owner's roles"}),
        json!({"name": "named role", "roles": ["org_admin"]}),
        json!({"name": "wider scope", "scopes": [scope("keyward", "users", "read")]}),
        json!({"name": "plus audit", "scopes": [scope("keyward", "keys", "write"), scope("keyward", "audit", "read")]}),
    ];
    for body in broader {
        f.post("/v1/keys", &narrow, body.clone()).await.problem(403, "insufficient_permissions");
        f.post(&format!("/v1/users/{user}/keys"), &narrow, body.clone()).await.problem(403, "insufficient_permissions");
        let mut import = body;
        import["id"] = json!(f.unique("minted-"));
        import["secret"] = json!("a-legacy-secret-of-20+");
        f.post("/v1/keys/import", &narrow, import).await.problem(403, "insufficient_permissions");
    }
    let narrow_id = str_of(&narrow_key["id"]);
    f.patch(&format!("/v1/keys/{narrow_id}"), &narrow, json!({"roles": ["org_admin"]}))
        .await
        .problem(403, "insufficient_permissions");
    assert_eq!(
        f.get(&format!("/v1/keys/{narrow_id}"), &f.admin).await.expect(200)["permissions"],
        json!(["keyward:keys:write"])
    );

    // As narrow or narrower is fine.
    let ok = f.post("/v1/keys", &narrow, json!({"name": "narrower", "scopes": [scope("keyward", "keys", "read")]}));
    assert_eq!(ok.await.expect(201)["key"]["permissions"], json!(["keyward:keys:read"]));
    let listed = f.get(&format!("/v1/users/{user}/keys"), &f.admin).await.expect(200);
    assert_eq!(listed["total"], 2, "only the narrow key and the narrower one exist: {listed}");
}

#[tokio::test]
async fn another_users_key_is_readable_with_users_read_and_writable_only_with_users_write() {
    let f = Fixture::start().await;
    let reader_role = f.role(&f.admin, &["keyward:keys:write", "keyward:users:read"]).await;
    let manager_role = f.role(&f.admin, &["keyward:keys:write", "keyward:users:write"]).await;
    let writer_role = f.role(&f.admin, &["keyward:keys:write"]).await;
    let victim = f.user(&f.org_a, &[&writer_role]).await;
    let (victim_key, victim_auth) = f.key(&victim, json!({"name": "victim's"})).await;
    let path = format!("/v1/keys/{}", str_of(&victim_key["id"]));

    // keys:write alone: another user's key does not exist.
    let (_, writer) = f.member(&f.org_a, &[&writer_role]).await;
    f.get(&path, &writer).await.problem(404, "not_found");
    f.patch(&path, &writer, json!({"comment": "x"})).await.problem(404, "not_found");

    // users:read: readable, not writable.
    let (reader_user, reader) = f.member(&f.org_a, &[&reader_role]).await;
    f.get(&path, &reader).await.expect(200);
    f.patch(&path, &reader, json!({"comment": "x"})).await.problem(403, "insufficient_permissions");
    for action in ["lock", "unlock", "roll"] {
        f.post(&format!("{path}/{action}"), &reader, json!({})).await.problem(403, "insufficient_permissions");
    }
    f.delete(&path, &reader).await.problem(403, "insufficient_permissions");
    f.post(&format!("/v1/users/{victim}/keys"), &reader, json!({"name": "planted"}))
        .await
        .problem(403, "insufficient_permissions");
    f.get("/v1/me", &victim_auth).await.expect(200);
    // Its own keys need only keys:write.
    let (own, _) = f.key(&reader_user, json!({"name": "own"})).await;
    f.patch(&format!("/v1/keys/{}", str_of(&own["id"])), &reader, json!({"comment": "mine"})).await.expect(200);

    // users:write: writable.
    let (_, manager) = f.member(&f.org_a, &[&manager_role]).await;
    f.patch(&path, &manager, json!({"comment": "managed"})).await.expect(200);
    f.post(&format!("{path}/lock"), &manager, json!({})).await.expect(200);
    f.get("/v1/me", &victim_auth).await.problem(401, "key_locked");
    f.post(&format!("{path}/unlock"), &manager, json!({})).await.expect(200);
    f.get("/v1/me", &victim_auth).await.expect(200);

    // But not a key that can do what the manager cannot: an auditor's key reads the audit log.
    let auditor = f.user(&f.org_a, &["auditor"]).await;
    let (auditor_key, _) = f.key(&auditor, json!({"name": "auditor's"})).await;
    let auditor_path = format!("/v1/keys/{}", str_of(&auditor_key["id"]));
    for action in ["roll", "unlock", "lock"] {
        f.post(&format!("{auditor_path}/{action}"), &manager, json!({})).await.problem(403, "insufficient_permissions");
    }
    f.patch(&auditor_path, &manager, json!({"network_restrictions": []}))
        .await
        .problem(403, "insufficient_permissions");
    f.post(&format!("/v1/users/{auditor}/keys"), &manager, json!({"name": "planted"}))
        .await
        .problem(403, "insufficient_permissions");
}

#[tokio::test]
async fn the_key_list_shows_the_org_to_user_readers_every_org_to_the_account_admin_and_own_keys_to_others() {
    let f = Fixture::start().await;
    let org_b = f.org("org b").await;
    let writer_role = f.role(&f.admin, &["keyward:keys:write"]).await;
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let (_, auditor) = f.member(&f.org_a, &["auditor"]).await;
    let (writer_user, writer) = f.member(&f.org_a, &[&writer_role]).await;
    let (victim, _) = f.member(&f.org_a, &["auditor"]).await;
    f.member(&org_b, &["auditor"]).await;
    f.post("/v1/keys", &writer, json!({"name": "writer's second"})).await.expect(201);

    let everything = f.get("/v1/keys?per_page=100", &f.admin).await.expect(200);
    let orgs: BTreeSet<String> = everything["items"].as_array().unwrap().iter().map(|k| str_of(&k["org_id"])).collect();
    assert_eq!(orgs, BTreeSet::from([f.org_a.clone(), org_b.clone()]), "the account admin sees every org");
    let in_a: BTreeSet<String> = everything["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["org_id"] == f.org_a.as_str())
        .map(|k| str_of(&k["id"]))
        .collect();

    for reader in [&org_admin, &auditor] {
        let list = f.get("/v1/keys?per_page=100", reader).await.expect(200);
        assert_eq!(item_ids(&list), in_a, "users:read sees the org's keys");
        assert_eq!(list["total"], in_a.len());
    }

    let own = f.get("/v1/keys?per_page=100", &writer).await.expect(200);
    assert_eq!(own["total"], 2, "{own}");
    assert!(own["items"].as_array().unwrap().iter().all(|k| k["owner_id"] == writer_user.as_str()), "{own}");
    let filtered = f.get(&format!("/v1/keys?owner_id={victim}"), &writer).await;
    if filtered.status.as_u16() == 200 {
        assert!(filtered.body["items"].as_array().unwrap().is_empty(), "owner_id never reveals others' keys");
    } else {
        filtered.problem(404, "not_found");
    }
}

#[tokio::test]
async fn the_users_keys_endpoint_lists_and_creates_that_users_keys() {
    let f = Fixture::start().await;
    let svc = f.service_user(&f.org_a, &["service_requestor"]).await;
    let (noise, _) = f.member(&f.org_a, &["auditor"]).await;

    let created = f.post(&format!("/v1/users/{svc}/keys"), &f.admin, json!({"name": "deploy bot"})).await.expect(201);
    let key = &created["key"];
    assert_eq!(str_of(&key["owner_id"]), svc);
    assert_eq!(str_of(&key["org_id"]), f.org_a);
    assert_eq!(key["roles"], json!(["service_requestor"]));
    assert_eq!(key["permissions"], json!([]), "service_requestor holds nothing of its own");
    assert!(str_of(&created["secret"]).starts_with("kws_"));
    let me = f.get("/v1/me", &auth_of(&created)).await.expect(200);
    assert_eq!(str_of(&me["user"]["id"]), svc);
    assert_eq!(me["permissions"], json!([]));

    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let second = f.post(&format!("/v1/users/{svc}/keys"), &org_admin, json!({"name": "second"})).await.expect(201);
    assert_eq!(str_of(&second["key"]["owner_id"]), svc);

    let listed = f.get(&format!("/v1/users/{svc}/keys"), &org_admin).await.expect(200);
    assert_eq!(listed["total"], 2);
    assert_eq!(item_ids(&listed), BTreeSet::from([str_of(&key["id"]), str_of(&second["key"]["id"])]));
    assert!(listed["items"].as_array().unwrap().iter().all(|k| k["owner_id"] == svc.as_str()));
    assert_eq!(listed["page"], 1);
    assert!(listed["per_page"].is_u64());
    assert_eq!(f.get(&format!("/v1/users/{noise}/keys"), &f.admin).await.expect(200)["total"], 1);

    f.get("/v1/users/no-such-user/keys", &f.admin).await.problem(404, "not_found");
    f.post("/v1/users/no-such-user/keys", &f.admin, json!({"name": "x"})).await.problem(404, "not_found");
}

#[tokio::test]
async fn a_declared_scope_is_listed_and_grantable_through_a_custom_role_and_a_key_scope() {
    let f = Fixture::start().await;
    let declared = f
        .post(
            "/v1/scopes",
            &f.admin,
            json!({"name": "orders", "description": "Order API", "resources": ["invoices", "refunds"]}),
        )
        .await
        .expect(201);
    assert_eq!(declared["name"], "orders");

    let catalog = f.get("/v1/scopes", &f.admin).await.expect(200);
    let find = |name: &str| catalog["items"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned();
    assert_eq!(find("orders").unwrap()["resources"], json!(["invoices", "refunds"]), "{catalog}");
    assert_eq!(
        find("keyward").unwrap()["resources"],
        json!(["keys", "users", "roles", "orgs", "scopes", "audit", "verify"])
    );

    let role = f.role(&f.admin, &["orders:invoices:write"]).await;
    let user = f.user(&f.org_a, &[&role]).await;
    let (by_role, by_role_auth) = f.key(&user, json!({"name": "by role", "roles": [role]})).await;
    assert_eq!(by_role["permissions"], json!(["orders:invoices:write"]));
    let me = f.get("/v1/me", &by_role_auth).await.expect(200);
    assert_eq!(me["permissions"], json!(["orders:invoices:write"]));
    let (by_scope, _) =
        f.key(&user, json!({"name": "by scope", "scopes": [scope("orders", "invoices", "write")]})).await;
    assert_eq!(by_scope["permissions"], json!(["orders:invoices:write"]));
    assert_eq!(by_scope["scopes"], json!([scope("orders", "invoices", "write")]));
    let (reader, _) = f.key(&user, json!({"name": "reader", "scopes": [scope("orders", "invoices", "read")]})).await;
    assert_eq!(reader["permissions"], json!(["orders:invoices:read"]));
    // Holding orders:invoices:write grants nothing on Keyward itself.
    f.get("/v1/keys", &by_role_auth).await.problem(403, "insufficient_permissions");

    // org_admin's *:*:write covers the org's declared scopes.
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let held = strings(&f.get("/v1/me", &org_admin).await.expect(200)["permissions"]);
    assert!(held.contains(&"orders:refunds:write".to_owned()), "{held:?}");

    // Another org's catalog does not have it.
    let org_b = f.org("org b").await;
    let (_, admin_b) = f.member(&org_b, &["org_admin"]).await;
    let other = f.get("/v1/scopes", &admin_b).await.expect(200);
    assert!(other["items"].as_array().unwrap().iter().all(|s| s["name"] != "orders"), "{other}");
}

#[tokio::test]
async fn nobody_disables_or_deletes_themselves() {
    let f = Fixture::start().await;
    let (org_admin_user, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    for (user, auth) in [(&f.admin_user, &f.admin), (&org_admin_user, &org_admin)] {
        let path = format!("/v1/users/{user}");
        f.patch(&path, auth, json!({"status": "disabled"})).await.problem(409, "cannot_change_self");
        f.delete(&path, auth).await.problem(409, "cannot_change_self");
        assert_eq!(f.get(&path, auth).await.expect(200)["status"], "active");
        f.get("/v1/me", auth).await.expect(200);
    }
}

#[tokio::test]
async fn built_in_roles_are_listed_and_cannot_be_changed_or_deleted() {
    let f = Fixture::start().await;
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let expected = [
        ("account_admin", json!(["*:*:write"])),
        ("org_admin", json!(["*:*:write"])),
        ("auditor", json!(["*:*:read"])),
        ("service_requestor", json!([])),
    ];
    for (id, permissions) in expected {
        let role = f.get(&format!("/v1/roles/{id}"), &f.admin).await.expect(200);
        assert_eq!((role["name"].clone(), role["builtin"].clone()), (json!(id), json!(true)));
        assert_eq!(role["permissions"], permissions, "{id}");
        for caller in [&f.admin, &org_admin] {
            f.patch(&format!("/v1/roles/{id}"), caller, json!({"description": "mine now"}))
                .await
                .problem(409, "role_builtin");
            f.patch(&format!("/v1/roles/{id}"), caller, json!({"permissions": []})).await.problem(409, "role_builtin");
            f.delete(&format!("/v1/roles/{id}"), caller).await.problem(409, "role_builtin");
        }
        assert_eq!(f.get(&format!("/v1/roles/{id}"), &f.admin).await.expect(200)["permissions"], permissions);
    }
}

#[tokio::test]
async fn orgs_are_listed_only_where_visible_and_created_only_by_an_account_admin() {
    let f = Fixture::start().await;
    let created = f.post("/v1/orgs", &f.admin, json!({"name": "org b"})).await.expect(201);
    let org_b = str_of(&created["id"]);
    assert_eq!(
        (created["max_keys_per_user"].clone(), created["allow_direct_secret"].clone()),
        (json!(10), json!(true))
    );
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let (_, auditor) = f.member(&f.org_a, &["auditor"]).await;

    for caller in [&org_admin, &auditor] {
        let list = f.get("/v1/orgs", caller).await.expect(200);
        assert_eq!(item_ids(&list), BTreeSet::from([f.org_a.clone()]));
        assert_eq!(list["total"], 1);
        f.get(&format!("/v1/orgs/{org_b}"), caller).await.problem(404, "not_found");
    }
    f.post("/v1/orgs", &org_admin, json!({"name": "rogue"})).await.problem(403, "insufficient_permissions");
    let all = f.get("/v1/orgs", &f.admin).await.expect(200);
    assert_eq!(item_ids(&all), BTreeSet::from([f.org_a.clone(), org_b.clone()]), "no rogue org was created");
}

#[tokio::test]
async fn a_key_without_roles_or_scopes_carries_all_of_its_owners_roles() {
    let f = Fixture::start().await;
    let role = f.role(&f.admin, &["keyward:keys:write"]).await;
    let user = f.user(&f.org_a, &["auditor", &role]).await;
    let (key, auth) = f.key(&user, json!({"name": "default"})).await;
    assert_eq!(sorted(strings(&key["roles"])), sorted(vec!["auditor".to_owned(), role.clone()]));
    let held = strings(&f.get("/v1/me", &auth).await.expect(200)["permissions"]);
    assert!(held.contains(&"keyward:keys:write".to_owned()), "{held:?}");
    assert!(held.contains(&"keyward:audit:read".to_owned()), "{held:?}");
    assert!(!held.contains(&"keyward:users:write".to_owned()), "{held:?}");
}

#[tokio::test]
async fn every_list_uses_the_paging_envelope() {
    let f = Fixture::start().await;
    let user_keys = format!("/v1/users/{}/keys", f.admin_user);
    for path in ["/v1/keys", "/v1/users", "/v1/roles", "/v1/orgs", "/v1/scopes", "/v1/audit", &user_keys] {
        let list = f.get(path, &f.admin).await.expect(200);
        assert!(list["items"].is_array(), "{path}: {list}");
        assert!(list["total"].is_u64(), "{path}: {list}");
        assert_eq!(list["page"], 1, "{path}: {list}");
        assert!(list["per_page"].as_u64().is_some_and(|n| n > 0), "{path}: {list}");
        assert!(list["total"].as_u64().unwrap() >= 1, "{path}: {list}");
    }
}

#[tokio::test]
async fn the_audit_log_needs_audit_read_and_shows_only_the_callers_org() {
    let f = Fixture::start().await;
    let org_b = f.org("org b").await;
    let user_b = f.user(&org_b, &["auditor"]).await;
    let writer_role = f.role(&f.admin, &["keyward:keys:write"]).await;
    let (_, writer) = f.member(&f.org_a, &[&writer_role]).await;
    let (_, auditor) = f.member(&f.org_a, &["auditor"]).await;

    let seen = f.get("/v1/audit?per_page=100", &auditor).await.expect(200);
    let entries = seen["items"].as_array().unwrap();
    assert!(!entries.is_empty(), "{seen}");
    assert!(entries.iter().all(|e| e["org_id"] == f.org_a.as_str()), "{seen}");
    assert!(entries.iter().all(|e| e["target_id"] != user_b.as_str()), "{seen}");
    let exported = f.get("/v1/audit/export?format=ndjson", &auditor).await;
    assert_eq!(exported.status.as_u16(), 200);
    assert!(!exported.text.contains(&org_b) && !exported.text.contains(&user_b), "the export stays in the org");
    assert_eq!(f.get("/v1/audit/verify", &auditor).await.expect(200)["ok"], true);

    let b_entries = f.get(&format!("/v1/audit?target_id={user_b}"), &f.admin).await.expect(200);
    assert!(b_entries["total"].as_u64().unwrap() >= 1, "the account admin sees every org: {b_entries}");
    f.get(&format!("/v1/audit?target_id={user_b}&org_id={org_b}"), &auditor).await.problem(404, "not_found");

    for path in ["/v1/audit", "/v1/audit/export", "/v1/audit/verify"] {
        f.get(path, &writer).await.problem(403, "insufficient_permissions");
    }
}

#[tokio::test]
async fn an_access_token_never_carries_more_than_its_key() {
    let f = Fixture::start().await;
    let writer_role = f.role(&f.admin, &["keyward:keys:write"]).await;
    let (_, writer) = f.member(&f.org_a, &[&writer_role]).await;

    let full = token(&f, &writer, None).await.expect(200);
    assert_eq!((full["token_type"].clone(), full["scope"].clone()), (json!("Bearer"), json!("keyward:keys:write")));
    let bearer = Auth::Bearer(str_of(&full["access_token"]));
    f.get("/v1/keys", &bearer).await.expect(200);
    f.post("/v1/keys", &bearer, json!({"name": "by token"})).await.expect(201);
    f.get("/v1/users", &bearer).await.problem(403, "insufficient_permissions");

    // A requested scope narrows, and never widens.
    let narrowed = token(&f, &writer, Some("keyward:keys:read keyward:users:write")).await.expect(200);
    assert_eq!(narrowed["scope"], "keyward:keys:read");
    let reader = Auth::Bearer(str_of(&narrowed["access_token"]));
    f.get("/v1/keys", &reader).await.expect(200);
    f.post("/v1/keys", &reader, json!({"name": "x"})).await.problem(403, "insufficient_permissions");
    f.get("/v1/users", &reader).await.problem(403, "insufficient_permissions");
    let none = token(&f, &writer, Some("keyward:users:read")).await;
    assert_eq!((none.status.as_u16(), none.body["error"].clone()), (400, json!("invalid_scope")), "{none:?}");

    // A token follows its owner: after losing a role, it loses what the role gave.
    let (user, admin_key) = f.member(&f.org_a, &["org_admin"]).await;
    let admin_token = Auth::Bearer(str_of(&token(&f, &admin_key, None).await.expect(200)["access_token"]));
    f.post("/v1/keys", &admin_token, json!({"name": "while admin"})).await.expect(201);
    f.patch(&format!("/v1/users/{user}"), &f.admin, json!({"roles": ["auditor"]})).await.expect(200);
    f.post("/v1/keys", &admin_token, json!({"name": "after"})).await.problem(403, "insufficient_permissions");
    let held = strings(&f.get("/v1/me", &admin_token).await.expect(200)["permissions"]);
    assert!(held.iter().all(|p| p.ends_with(":read")), "{held:?}");
}

#[tokio::test]
async fn a_narrowed_access_token_of_the_account_admin_cannot_mint_broader_keys_or_users() {
    let f = Fixture::start().await;
    let keys_only = bearer_token(&f, &f.admin, "keyward:keys:write").await;
    let users_only = bearer_token(&f, &f.admin, "keyward:users:write").await;
    let roles_only = bearer_token(&f, &f.admin, "keyward:roles:write").await;
    let (own_narrow, _) =
        f.key(&f.admin_user, json!({"name": "narrow", "scopes": [scope("keyward", "keys", "read")]})).await;
    let own_narrow = format!("/v1/keys/{}", str_of(&own_narrow["id"]));
    let import = |id: &str| json!({"name": "wide", "id": id, "secret": "a-legacy-secret-of-20+"});
    // Each of these would hold more than the token: all must be refused.
    let attempts = [
        (
            "POST /v1/keys carrying the owner's account_admin",
            f.post("/v1/keys", &keys_only, json!({"name": "wide"})).await,
        ),
        (
            "POST /v1/keys with roles [account_admin]",
            f.post("/v1/keys", &keys_only, json!({"name": "wide", "roles": ["account_admin"]})).await,
        ),
        (
            "POST /v1/keys/import carrying the owner's account_admin",
            f.post("/v1/keys/import", &keys_only, import("imp-1")).await,
        ),
        (
            "POST /v1/users with roles [account_admin]",
            f.post("/v1/users", &users_only, json!({"name": "promoted", "roles": ["account_admin"]})).await,
        ),
        (
            "POST /v1/users with roles [org_admin]",
            f.post("/v1/users", &users_only, json!({"name": "org admin", "roles": ["org_admin"]})).await,
        ),
        (
            "PATCH /v1/keys/{id} of a narrow own key to roles [account_admin]",
            f.patch(&own_narrow, &keys_only, json!({"roles": ["account_admin"]})).await,
        ),
        (
            "POST /v1/roles with *:*:write",
            f.post("/v1/roles", &roles_only, json!({"name": "everything", "permissions": ["*:*:write"]})).await,
        ),
    ];
    let mut escalations = Vec::new();
    for (what, resp) in attempts {
        if resp.status.as_u16() != 403 || resp.body["code"] != "insufficient_permissions" {
            escalations.push(format!("{what}: expected 403 insufficient_permissions, got {}", resp.status));
        }
    }
    assert!(escalations.is_empty(), "a narrowed token granted more than it holds:\n{}", escalations.join("\n"));

    // As narrow is fine.
    let narrow = json!({"name": "narrow", "scopes": [scope("keyward", "keys", "read")]});
    f.post("/v1/keys", &keys_only, narrow).await.expect(201);
}

#[tokio::test]
async fn verify_judges_keys_of_the_callers_org_and_never_reveals_another_orgs() {
    let f = Fixture::start().await;
    let (_, gateway) = f.member(&f.org_a, &["org_admin"]).await;
    let org_b = f.org("org b").await;
    let user_b = f.user(&org_b, &["auditor"]).await;
    let created_b = f.post(&format!("/v1/users/{user_b}/keys"), &f.admin, json!({"name": "b"})).await.expect(201);
    let (key_b, secret_b) = (str_of(&created_b["key"]["id"]), str_of(&created_b["secret"]));
    let user_a = f.user(&f.org_a, &["auditor"]).await;
    let created_a = f.post(&format!("/v1/users/{user_a}/keys"), &f.admin, json!({"name": "a"})).await.expect(201);
    let (key_a, secret_a) = (str_of(&created_a["key"]["id"]), str_of(&created_a["secret"]));

    let verdict = f.post("/v1/verify", &gateway, json!({"secret": secret_a})).await.expect(200);
    assert_eq!((verdict["valid"].clone(), verdict["code"].clone()), (json!(true), json!("valid")));
    assert_eq!(str_of(&verdict["owner_id"]), user_a);
    let needs_write = json!({"secret": secret_a, "required": ["keyward:keys:write"]});
    let verdict = f.post("/v1/verify", &gateway, needs_write).await.expect(200);
    assert_eq!((verdict["valid"].clone(), verdict["code"].clone()), (json!(false), json!("insufficient_permissions")));

    // Another org's key, valid or locked, is unknown to this org's gateway.
    for lock in [false, true] {
        if lock {
            f.post(&format!("/v1/keys/{key_b}/lock"), &f.admin, json!({})).await.expect(200);
            f.post(&format!("/v1/keys/{key_a}/lock"), &f.admin, json!({})).await.expect(200);
        }
        let verdict = f.post("/v1/verify", &gateway, json!({"secret": secret_b})).await.expect(200);
        assert_eq!(verdict, json!({"valid": false, "code": "invalid_credentials"}), "locked: {lock}");
    }
    let own_locked = f.post("/v1/verify", &gateway, json!({"secret": secret_a})).await.expect(200);
    assert_eq!(own_locked["code"], "key_locked");
    let admin_view = f.post("/v1/verify", &f.admin, json!({"secret": secret_b})).await.expect(200);
    assert_eq!(admin_view["code"], "key_locked", "the account admin sees every org");

    let writer_role = f.role(&f.admin, &["keyward:keys:write"]).await;
    let (_, writer) = f.member(&f.org_a, &[&writer_role]).await;
    f.post("/v1/verify", &writer, json!({"secret": secret_a})).await.problem(403, "insufficient_permissions");
}

#[tokio::test]
async fn a_browser_session_acts_with_its_keys_permissions_and_service_requestors_cannot_sign_in() {
    let f = Fixture::start().await;
    let client = reqwest::Client::new();
    let sign_in = |key: Auth| {
        let Auth::Basic(key_id, secret) = key else { unreachable!("members use Basic") };
        f.post("/v1/sessions", &Auth::None, json!({"key_id": key_id, "secret": secret}))
    };
    // Sends a request in the session: its cookie, and the CSRF token when given.
    let send = |method: Method, path: &str, cookie: &str, csrf: Option<&str>| {
        let mut req = client.request(method, format!("{}{path}", f.base)).header("cookie", cookie);
        if let Some(csrf) = csrf {
            req = req.header("x-csrf-token", csrf);
        }
        req.json(&json!({"name": "from the console"})).send()
    };

    let (_, auditor) = f.member(&f.org_a, &["auditor"]).await;
    let resp = sign_in(auditor).await;
    let cookie = resp.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = str_of(&resp.expect(201)["csrf_token"]);
    assert_eq!(send(Method::GET, "/v1/keys", &cookie, None).await.unwrap().status(), 200);
    assert_eq!(send(Method::POST, "/v1/keys", &cookie, Some(&csrf)).await.unwrap().status(), 403);

    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let resp = sign_in(org_admin).await;
    let cookie = resp.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = str_of(&resp.expect(201)["csrf_token"]);
    assert_eq!(send(Method::POST, "/v1/keys", &cookie, None).await.unwrap().status(), 403, "a write needs CSRF");
    assert_eq!(send(Method::POST, "/v1/keys", &cookie, Some(&csrf)).await.unwrap().status(), 201);

    let svc = f.service_user(&f.org_a, &["service_requestor", "auditor"]).await;
    let (_, svc_key) = f.key(&svc, json!({"name": "machine"})).await;
    sign_in(svc_key).await.problem(403, "insufficient_permissions");
}

#[tokio::test]
async fn an_org_admin_cannot_take_over_the_account_admins_keys() {
    let f = Fixture::start().await;
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let admin_key = str_of(&f.get("/v1/me", &f.admin).await.expect(200)["key"]["id"]);
    f.post(&format!("/v1/users/{}/keys", f.admin_user), &org_admin, json!({"name": "takeover"}))
        .await
        .problem(403, "insufficient_permissions");
    for action in ["roll", "lock", "unlock"] {
        f.post(&format!("/v1/keys/{admin_key}/{action}"), &org_admin, json!({}))
            .await
            .problem(403, "insufficient_permissions");
    }
    f.patch(&format!("/v1/keys/{admin_key}"), &org_admin, json!({"comment": "mine now"}))
        .await
        .problem(403, "insufficient_permissions");
    f.delete(&format!("/v1/keys/{admin_key}"), &org_admin).await.problem(403, "insufficient_permissions");
    f.get("/v1/me", &f.admin).await.expect(200);
}

#[tokio::test]
async fn a_narrow_key_cannot_roll_unlock_or_widen_a_broader_sibling() {
    let f = Fixture::start().await;
    let (owner, broad) = f.member(&f.org_a, &["org_admin"]).await;
    let broad_key = str_of(&f.get("/v1/me", &broad).await.expect(200)["key"]["id"]);
    let (narrow_key, narrow) =
        f.key(&owner, json!({"name": "narrow", "scopes": [scope("keyward", "keys", "write")]})).await;
    let sibling = format!("/v1/keys/{broad_key}");
    for action in ["roll", "lock", "unlock"] {
        f.post(&format!("{sibling}/{action}"), &narrow, json!({})).await.problem(403, "insufficient_permissions");
    }
    f.patch(&sibling, &narrow, json!({"network_restrictions": [], "expires_at": null}))
        .await
        .problem(403, "insufficient_permissions");
    f.delete(&sibling, &narrow).await.problem(403, "insufficient_permissions");
    // It still manages itself, and the broad key manages the narrow one.
    let own = format!("/v1/keys/{}", str_of(&narrow_key["id"]));
    f.patch(&own, &narrow, json!({"comment": "self"})).await.expect(200);
    f.post(&format!("{own}/lock"), &broad, json!({})).await.expect(200);
}

#[tokio::test]
async fn a_disabled_admin_stays_out_of_reach_of_lesser_admins() {
    let f = Fixture::start().await;
    let users_writer = f.role(&f.admin, &["keyward:users:write", "keyward:keys:write"]).await;
    let (_, lesser) = f.member(&f.org_a, &[&users_writer]).await;
    let target = f.user(&f.org_a, &["org_admin"]).await;
    let path = format!("/v1/users/{target}");
    f.patch(&path, &lesser, json!({"status": "disabled"})).await.problem(403, "insufficient_permissions");
    f.patch(&path, &f.admin, json!({"status": "disabled"})).await.expect(200);
    f.patch(&path, &lesser, json!({"status": "active"})).await.problem(403, "insufficient_permissions");
    f.delete(&path, &lesser).await.problem(403, "insufficient_permissions");
    f.post(&format!("{path}/keys"), &lesser, json!({"name": "x"})).await.problem(403, "insufficient_permissions");
}

#[tokio::test]
async fn only_an_account_admin_defines_roles_over_every_scope_or_changes_audit_retention() {
    let f = Fixture::start().await;
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    f.post("/v1/roles", &org_admin, json!({"name": "everything", "permissions": ["*:*:write"]}))
        .await
        .problem(403, "insufficient_permissions");
    // Naming the scopes is fine.
    f.post("/v1/roles", &org_admin, json!({"name": "key reader", "permissions": ["keyward:*:read"]})).await.expect(201);
    let org = format!("/v1/orgs/{}", f.org_a);
    f.patch(&org, &org_admin, json!({"audit_retention_days": 1})).await.problem(403, "insufficient_permissions");
    f.patch(&org, &org_admin, json!({"max_keys_per_user": 20})).await.expect(200);
    f.patch(&org, &f.admin, json!({"audit_retention_days": 365})).await.expect(200);
}

#[tokio::test]
async fn an_org_admin_cannot_touch_even_a_narrow_key_of_the_account_admin() {
    let f = Fixture::start().await;
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    // The account admin's narrow key: it can read keys and nothing else, but it acts in the admin's name.
    let narrow = f
        .post("/v1/keys", &f.admin, json!({"name": "ci", "roles": [], "scopes": [scope("keyward", "keys", "read")]}))
        .await
        .expect(201);
    let path = format!("/v1/keys/{}", str_of(&narrow["key"]["id"]));
    f.patch(&path, &org_admin, json!({"comment": "seen"})).await.problem(403, "insufficient_permissions");
    f.patch(&path, &org_admin, json!({"roles": ["account_admin"]})).await.problem(403, "insufficient_permissions");
    f.post(&format!("{path}/roll"), &org_admin, json!({})).await.problem(403, "insufficient_permissions");
    f.get(&path, &org_admin).await.expect(200);
}

#[tokio::test]
async fn a_demoted_admins_keys_keep_what_they_could_do_out_of_reach() {
    let f = Fixture::start().await;
    let (_, org_admin) = f.member(&f.org_a, &["org_admin"]).await;
    let admin3 = f.user(&f.org_a, &["account_admin"]).await;
    let (k, _) = f.key(&admin3, json!({"name": "k", "roles": ["account_admin"]})).await;
    let path = format!("/v1/keys/{}", str_of(&k["id"]));
    f.post(&format!("{path}/roll"), &org_admin, json!({})).await.problem(403, "insufficient_permissions");
    // Demoted to org admin, the key still carries account_admin, dormant until the role returns.
    f.patch(&format!("/v1/users/{admin3}"), &f.admin, json!({"roles": ["org_admin"]})).await.expect(200);
    f.post(&format!("{path}/roll"), &org_admin, json!({})).await.problem(403, "insufficient_permissions");
    f.patch(&path, &org_admin, json!({"network_restrictions": []})).await.problem(403, "insufficient_permissions");
    // The account admin may, of course.
    f.post(&format!("{path}/roll"), &f.admin, json!({})).await.expect(200);
}

#[tokio::test]
async fn a_disabled_admins_keys_stay_out_of_reach_of_lesser_admins() {
    let f = Fixture::start().await;
    let manager = f.role(&f.admin, &["keyward:keys:write", "keyward:users:write"]).await;
    let (_, lesser) = f.member(&f.org_a, &[&manager]).await;
    let (admin2, _) = f.member(&f.org_a, &["account_admin"]).await;
    let (admin2_key, _) = f.key(&admin2, json!({"name": "second admin's"})).await;
    let path = format!("/v1/keys/{}", str_of(&admin2_key["id"]));
    f.post(&format!("{path}/roll"), &lesser, json!({})).await.problem(403, "insufficient_permissions");
    f.patch(&format!("/v1/users/{admin2}"), &f.admin, json!({"status": "disabled"})).await.expect(200);
    for action in ["roll", "unlock", "lock"] {
        f.post(&format!("{path}/{action}"), &lesser, json!({})).await.problem(403, "insufficient_permissions");
    }
    f.patch(&path, &lesser, json!({"network_restrictions": []})).await.problem(403, "insufficient_permissions");
    f.delete(&path, &lesser).await.problem(403, "insufficient_permissions");
}

#[tokio::test]
async fn a_role_is_changed_or_deleted_only_by_who_may_manage_all_its_holders() {
    let f = Fixture::start().await;
    let reports = f.role(&f.admin, &["keyward:audit:read"]).await;
    let deleter = f.role(&f.admin, &["keyward:audit:read", "keyward:roles:write"]).await;
    let (_, small) = f.member(&f.org_a, &[&deleter]).await;
    let (admin2, admin2_auth) = f.member(&f.org_a, &["account_admin", &reports]).await;
    let _ = admin2;
    let path = format!("/v1/roles/{reports}");
    f.patch(&path, &small, json!({"description": "x"})).await.problem(403, "insufficient_permissions");
    f.delete(&path, &small).await.problem(403, "insufficient_permissions");
    f.get("/v1/me", &admin2_auth).await.expect(200);
    // The account admin may.
    f.delete(&path, &f.admin).await.expect(204);
}

//! The key rules of the 2026-11-30 additions, end to end: expiry on create,
//! the status rule and its counts, keys that inherit their owner, PATCHes that
//! change nothing, grace periods that can be seen and ended, roles by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Auth, TestServer};
use serde_json::{Value, json};

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}

async fn org_of(s: &TestServer) -> String {
    str_of(&s.get("/v1/me", &s.admin).await.expect(200)["org_id"])
}

async fn audit_actions_for(s: &TestServer, target: &str) -> Vec<String> {
    let entries = s.get(&format!("/v1/audit?target_id={target}&per_page=100"), &s.admin).await.expect(200);
    entries["items"].as_array().unwrap().iter().map(|e| str_of(&e["action"])).collect()
}

#[tokio::test]
async fn explicit_null_expiry_means_never_even_with_an_org_default() {
    let s = TestServer::start().await;
    let org = org_of(&s).await;
    s.patch(&format!("/v1/orgs/{org}"), &s.admin, json!({"default_expiry_days": 30})).await.expect(200);

    let (never, _) = s.create_key(json!({"name": "never", "expires_at": null})).await;
    assert_eq!(never["expires_at"], Value::Null, "{never}");
    let (defaulted, _) = s.create_key(json!({"name": "default"})).await;
    assert!(defaulted["expires_at"].is_string(), "naming no expiry applies the org default: {defaulted}");
    let imported = s
        .post(
            "/v1/keys/import",
            &s.admin,
            json!({"id": "legacy-never", "secret": "an-imported-secret-value-0001", "name": "legacy", "expires_at": null}),
        )
        .await
        .expect(201);
    assert_eq!(imported["key"]["expires_at"], Value::Null);
}

#[tokio::test]
async fn a_duplicate_import_id_is_key_id_taken_whatever_else_is_wrong() {
    let s = TestServer::start().await;
    let body = json!({"id": "dup-key", "secret": "the-same-secret-value-01", "name": "first"});
    s.post("/v1/keys/import", &s.admin, body.clone()).await.expect(201);
    // The secret is taken too, and that must not be what the answer says.
    s.post("/v1/keys/import", &s.admin, body).await.problem(409, "key_id_taken");
    // A deleted key's id is never reused either.
    s.delete("/v1/keys/dup-key", &s.admin).await.expect(204);
    s.post("/v1/keys/import", &s.admin, json!({"id": "dup-key", "secret": "another-secret-value-02", "name": "again"}))
        .await
        .problem(409, "key_id_taken");
    // A new secret that is in use elsewhere is still secret_in_use.
    s.post("/v1/keys/import", &s.admin, json!({"id": "second", "secret": "another-secret-value-03", "name": "b"}))
        .await
        .expect(201);
    s.post("/v1/keys/import", &s.admin, json!({"id": "third", "secret": "another-secret-value-03", "name": "c"}))
        .await
        .problem(409, "secret_in_use");
}

#[tokio::test]
async fn status_is_expired_then_locked_then_active_and_counts_follow_it() {
    let s = TestServer::start().await;
    let user = s.post("/v1/users", &s.admin, json!({"name": "bob", "roles": ["auditor"]})).await.expect(201);
    let uid = str_of(&user["id"]);
    let bobs_key = s.post(&format!("/v1/users/{uid}/keys"), &s.admin, json!({"name": "bob's"})).await.expect(201);
    let bobs_id = str_of(&bobs_key["key"]["id"]);
    let (locked_soon, _) = s.create_key(json!({"name": "locked soon", "expires_in_days": 5})).await;
    s.post(&format!("/v1/keys/{}/lock", str_of(&locked_soon["id"])), &s.admin, json!({})).await.expect(200);

    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"status": "disabled"})).await.expect(200);
    let bobs = s.get(&format!("/v1/keys/{bobs_id}"), &s.admin).await.expect(200);
    assert_eq!(bobs["status"], "locked", "a disabled owner's key is locked: {bobs}");
    let listed = s.get("/v1/keys?status=locked", &s.admin).await.expect(200);
    let ids: Vec<String> = listed["items"].as_array().unwrap().iter().map(|k| str_of(&k["id"])).collect();
    assert!(ids.contains(&bobs_id) && ids.contains(&str_of(&locked_soon["id"])), "{listed}");
    // The bootstrap key is the one active key; a locked key expiring soon still counts as expiring.
    assert_eq!(listed["counts"], json!({"active": 1, "locked": 2, "expired": 0, "expiring_30d": 1}));
    let by_status = s.get("/v1/keys?sort=status", &s.admin).await.expect(200);
    assert_eq!(by_status["items"][0]["status"], "active");

    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"status": "active"})).await.expect(200);
    assert_eq!(s.get(&format!("/v1/keys/{bobs_id}"), &s.admin).await.expect(200)["status"], "active");
}

#[tokio::test]
async fn a_key_without_roles_or_scopes_inherits_its_owner_live() {
    let s = TestServer::start().await;
    let user = s.post("/v1/users", &s.admin, json!({"name": "carol", "roles": ["auditor"]})).await.expect(201);
    let uid = str_of(&user["id"]);
    let created = s.post(&format!("/v1/users/{uid}/keys"), &s.admin, json!({"name": "carol's"})).await.expect(201);
    assert_eq!(created["key"]["inherits_owner"], true);
    assert_eq!(created["key"]["roles"], json!(["auditor"]));
    let kid = str_of(&created["key"]["id"]);
    let auth = Auth::basic(&kid, &str_of(&created["secret"]));
    s.post("/v1/keys", &auth, json!({"name": "nope"})).await.problem(403, "insufficient_permissions");

    // A role the owner gains later applies to the key at once.
    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"roles": ["org_admin"]})).await.expect(200);
    let me = s.get("/v1/me", &auth).await.expect(200);
    assert!(me["permissions"].as_array().unwrap().contains(&json!("keyward:keys:write")), "{me}");
    s.post("/v1/keys", &auth, json!({"name": "now allowed", "roles": []})).await.expect(201);

    // Giving it roles by PATCH ends the inheritance.
    let patched = s.patch(&format!("/v1/keys/{kid}"), &s.admin, json!({"roles": ["auditor"]})).await;
    // The owner no longer holds auditor: the grant is refused and nothing changes.
    patched.problem(422, "validation_failed");
    let patched = s.patch(&format!("/v1/keys/{kid}"), &s.admin, json!({"roles": ["org_admin"]})).await.expect(200);
    assert_eq!(patched["inherits_owner"], false);
    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"roles": ["org_admin", "auditor"]})).await.expect(200);
    assert_eq!(s.get(&format!("/v1/keys/{kid}"), &s.admin).await.expect(200)["roles"], json!(["org_admin"]));
}

#[tokio::test]
async fn a_patch_that_changes_nothing_is_refused_or_not_audited() {
    let s = TestServer::start().await;
    let (key, _) = s.create_key(json!({"name": "quiet", "comment": "c"})).await;
    let kid = str_of(&key["id"]);
    let path = format!("/v1/keys/{kid}");
    let p = s.patch(&path, &s.admin, json!({})).await.problem(422, "validation_failed");
    assert_eq!(p["field"], "body");
    let p = s.patch(&path, &s.admin, json!({"expires_in_days": null})).await.problem(422, "validation_failed");
    assert_eq!(p["field"], "expires_in_days");
    let p = s.patch(&path, &s.admin, json!({"name": null})).await.problem(422, "validation_failed");
    assert_eq!(p["field"], "name");

    let same = s.patch(&path, &s.admin, json!({"name": "quiet", "comment": "c"})).await.expect(200);
    assert_eq!(same["updated_at"], key["updated_at"]);
    assert!(!audit_actions_for(&s, &kid).await.contains(&"key.update".to_owned()), "no change, no entry");
    s.patch(&path, &s.admin, json!({"comment": "d"})).await.expect(200);
    assert_eq!(audit_actions_for(&s, &kid).await.iter().filter(|a| *a == "key.update").count(), 1);
}

#[tokio::test]
async fn a_grace_period_shows_on_the_key_and_can_be_ended() {
    let s = TestServer::start().await;
    let (key, old) = s.create_key(json!({"name": "rolling"})).await;
    let kid = str_of(&key["id"]);
    assert_eq!(key["previous_secret_expires_at"], Value::Null);
    let rolled = s.post(&format!("/v1/keys/{kid}/roll"), &s.admin, json!({"grace_period_s": 3600})).await.expect(200);
    let until = str_of(&rolled["key"]["previous_secret_expires_at"]);
    let until = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
    let rolled_at = chrono::DateTime::parse_from_rfc3339(&str_of(&rolled["key"]["rolled_at"])).unwrap();
    assert_eq!((until - rolled_at).num_seconds(), 3600);
    s.get("/v1/me", &old).await.expect(200);

    let ended = s.post(&format!("/v1/keys/{kid}/end-grace"), &s.admin, json!({})).await.expect(200);
    assert_eq!(ended["key"]["previous_secret_expires_at"], Value::Null);
    s.get("/v1/me", &old).await.problem(401, "invalid_credentials");
    let new = Auth::basic(&kid, &str_of(&rolled["secret"]));
    s.get("/v1/me", &new).await.expect(200);
    assert!(audit_actions_for(&s, &kid).await.contains(&"key.end_grace".to_owned()));
    // Ending a grace period that is not running is fine and changes nothing.
    s.post(&format!("/v1/keys/{kid}/end-grace"), &s.admin, json!({})).await.expect(200);
    s.post("/v1/keys/kw_nosuchkey/end-grace", &s.admin, json!({})).await.problem(404, "not_found");
}

#[tokio::test]
async fn roles_are_named_by_id_or_name_and_messages_use_names() {
    let s = TestServer::start().await;
    let role = s
        .post("/v1/roles", &s.admin, json!({"name": "deployer", "permissions": ["keyward:keys:read"], "max_keys": 1}))
        .await
        .expect(201);
    let role_id = str_of(&role["id"]);
    let user = s.post("/v1/users", &s.admin, json!({"name": "dan", "roles": ["deployer"]})).await.expect(201);
    assert_eq!(user["roles"], json!([role_id]), "a user body names the role by name");
    let uid = str_of(&user["id"]);
    let path = format!("/v1/users/{uid}/keys");
    let first = s.post(&path, &s.admin, json!({"name": "one", "roles": ["deployer"]})).await.expect(201);
    assert_eq!(first["key"]["roles"], json!([role_id]));
    let refused =
        s.post(&path, &s.admin, json!({"name": "two", "roles": [role_id]})).await.problem(409, "key_limit_reached");
    let detail = str_of(&refused["detail"]);
    assert!(detail.contains("role `deployer` allows at most 1 key per holder"), "{detail}");
    assert!(!detail.contains(&role_id), "{detail}");
    let refused =
        s.post(&path, &s.admin, json!({"name": "x", "roles": ["auditor"]})).await.problem(422, "validation_failed");
    assert!(str_of(&refused["detail"]).contains("does not hold role `auditor`"), "{refused}");
}

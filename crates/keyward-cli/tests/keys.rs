//! The key lifecycle of API.md §Keys against the real server.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests compare with the real clock

mod common;

use common::{Auth, TestServer, file_mode};
use keyward_core::clock::Clock;
use serde_json::{Value, json};

fn secret_of(created: &Value) -> String {
    created["secret"].as_str().unwrap().to_owned()
}

fn id_of(created: &Value) -> String {
    created["key"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn created_key_has_the_documented_shape_and_authenticates_both_ways() {
    let s = TestServer::start().await;
    let resp = s.post("/v1/keys", &s.admin, json!({"name": "ci deploy", "description": "d", "comment": "c"})).await;
    assert_eq!(resp.headers["cache-control"], "no-store", "a response with a secret is never cached");
    let created = resp.expect(201);
    let id = id_of(&created);
    let secret = secret_of(&created);
    assert!(id.starts_with("kw_") && id.len() == 25, "{id}");
    assert!(secret.starts_with("kws_") && secret.len() == 53, "{secret}");
    let key = &created["key"];
    for field in [
        "id",
        "name",
        "description",
        "comment",
        "org_id",
        "owner_id",
        "roles",
        "scopes",
        "permissions",
        "status",
        "expires_at",
        "network_restrictions",
        "reauth_timeout_s",
        "created_at",
        "created_by",
        "updated_at",
        "rolled_at",
        "last_used_at",
        "last_used_ip",
        "imported",
    ] {
        assert!(key.get(field).is_some(), "key lacks {field}: {key}");
    }
    assert_eq!(key["status"], "active");
    assert_eq!(key["reauth_timeout_s"], 60);
    assert_eq!(key["imported"], false);
    assert_eq!(key["expires_at"], Value::Null);
    assert_eq!(key["roles"], json!(["account_admin"]), "no roles or scopes: the owner's roles");
    assert!(key["created_at"].as_str().unwrap().ends_with('Z'));

    let me = s.get("/v1/me", &Auth::basic(&id, &secret)).await.expect(200);
    assert_eq!(me["key"]["id"], id.as_str());
    assert_eq!(me["auth_method"], "secret");
    assert_eq!(me["user"]["roles"], json!(["account_admin"]));
    let me = s.get("/v1/me", &Auth::Bearer(secret.clone())).await.expect(200);
    assert_eq!(me["key"]["id"], id.as_str());

    let fetched = s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200);
    assert!(!fetched.to_string().contains(&secret), "GET never returns the secret");
    assert_eq!(fetched["name"], "ci deploy");
}

#[tokio::test]
async fn refusals_carry_the_documented_codes() {
    let s = TestServer::in_process().await;
    s.get("/v1/me", &Auth::None).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &Auth::basic(&s.admin_id, "wrong-secret-wrong-secret")).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &Auth::basic("kw_doesnotexist0000000000", &s.admin_secret))
        .await
        .problem(401, "invalid_credentials");
    s.get("/v1/me", &Auth::Bearer("kws_notavalidsecret".into())).await.problem(401, "invalid_credentials");
    // A generated-looking secret with a broken checksum.
    let mut typo = s.admin_secret.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    s.get("/v1/me", &Auth::Bearer(typo)).await.problem(401, "invalid_credentials");

    let (key, auth) = s.create_key(json!({"name": "locked"})).await;
    let id = key["id"].as_str().unwrap();
    let locked = s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    assert_eq!(locked["status"], "locked");
    let resp = s.get("/v1/me", &auth).await;
    assert!(resp.headers.get("www-authenticate").is_some());
    resp.problem(401, "key_locked");
    let unlocked = s.post(&format!("/v1/keys/{id}/unlock"), &s.admin, json!({})).await.expect(200);
    assert_eq!(unlocked["status"], "active");
    s.get("/v1/me", &auth).await.expect(200);

    let (_, outside) =
        s.create_key(json!({"name": "net", "network_restrictions": ["203.0.113.0/24", "2001:db8::/32"]})).await;
    s.get("/v1/me", &outside).await.problem(401, "ip_not_allowed");
    let (_, inside) = s.create_key(json!({"name": "lo", "network_restrictions": ["127.0.0.0/8"]})).await;
    s.get("/v1/me", &inside).await.expect(200);

    let soon = (s.clock().now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (_, expiring) = s.create_key(json!({"name": "short", "expires_at": soon})).await;
    s.get("/v1/me", &expiring).await.expect(200);
    s.clock().advance(std::time::Duration::from_secs(1));
    s.get("/v1/me", &expiring).await.expect(200);
    s.clock().advance(std::time::Duration::from_secs(2));
    s.get("/v1/me", &expiring).await.problem(401, "key_expired");
}

#[tokio::test]
async fn checks_apply_in_order_locked_before_expired_before_network() {
    let s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "all", "network_restrictions": ["203.0.113.7"]})).await;
    let id = key["id"].as_str().unwrap();
    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    s.get("/v1/me", &auth).await.problem(401, "key_locked");
    s.post(&format!("/v1/keys/{id}/unlock"), &s.admin, json!({})).await.expect(200);
    s.get("/v1/me", &auth).await.problem(401, "ip_not_allowed");
    let Auth::Basic(_, secret) = &auth else { unreachable!() };
    s.get("/v1/me", &Auth::basic(id, &format!("{secret}x"))).await.problem(401, "invalid_credentials");
}

#[tokio::test]
async fn roll_replaces_the_secret_with_an_optional_grace_period() {
    let s = TestServer::in_process().await;
    let created = s.post("/v1/keys", &s.admin, json!({"name": "rolling"})).await.expect(201);
    let id = id_of(&created);
    let first = secret_of(&created);

    let rolled = s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({"grace_period_s": 60})).await.expect(200);
    let second = secret_of(&rolled);
    assert_ne!(first, second);
    assert!(rolled["key"]["rolled_at"].is_string());
    assert_eq!(rolled["key"]["id"], id.as_str());
    s.get("/v1/me", &Auth::basic(&id, &first)).await.expect(200);
    s.get("/v1/me", &Auth::Bearer(first.clone())).await.expect(200);
    s.get("/v1/me", &Auth::basic(&id, &second)).await.expect(200);

    // Without grace the previous secret stops at once.
    let rolled = s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({})).await.expect(200);
    let third = secret_of(&rolled);
    s.get("/v1/me", &Auth::basic(&id, &second)).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &Auth::basic(&id, &first)).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &Auth::Bearer(third.clone())).await.expect(200);

    // A grace period ends at its last second.
    let rolled = s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({"grace_period_s": 30})).await.expect(200);
    s.get("/v1/me", &Auth::Bearer(third.clone())).await.expect(200);
    s.clock().advance(std::time::Duration::from_secs(29));
    s.get("/v1/me", &Auth::Bearer(third.clone())).await.expect(200);
    s.clock().advance(std::time::Duration::from_secs(2));
    s.get("/v1/me", &Auth::Bearer(third)).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &Auth::Bearer(secret_of(&rolled))).await.expect(200);

    for bad in [json!({"grace_period_s": -1}), json!({"grace_period_s": 604801}), json!({"grace_period_s": "1"})] {
        let p = s.post(&format!("/v1/keys/{id}/roll"), &s.admin, bad).await.problem(422, "validation_failed");
        assert_eq!(p["field"], "grace_period_s");
    }
}

#[tokio::test]
async fn delete_revokes_for_good_and_the_id_is_never_reused() {
    let s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "gone", "id": "svc.billing-1"})).await;
    assert_eq!(key["id"], "svc.billing-1");
    let resp = s.delete("/v1/keys/svc.billing-1", &s.admin).await;
    assert_eq!(resp.status.as_u16(), 204);
    s.get("/v1/me", &auth).await.problem(401, "invalid_credentials");
    s.get("/v1/keys/svc.billing-1", &s.admin).await.problem(404, "not_found");
    s.delete("/v1/keys/svc.billing-1", &s.admin).await.problem(404, "not_found");
    s.post("/v1/keys", &s.admin, json!({"name": "again", "id": "svc.billing-1"})).await.problem(409, "key_id_taken");
}

#[tokio::test]
async fn import_keeps_the_callers_id_and_secret_and_never_echoes_it() {
    let s = TestServer::start().await;
    let secret = "legacy-Secret_with:colons+and/slashes=42";
    let resp = s
        .post(
            "/v1/keys/import",
            &s.admin,
            json!({"id": "legacy-app", "secret": secret, "name": "from old hub", "roles": ["account_admin"]}),
        )
        .await;
    assert!(!resp.text.contains(secret), "import never echoes the secret");
    let body = resp.expect(201);
    assert_eq!(body["key"]["id"], "legacy-app");
    assert_eq!(body["key"]["imported"], true);
    assert!(body.get("secret").is_none());
    s.get("/v1/me", &Auth::basic("legacy-app", secret)).await.expect(200);
    s.get("/v1/me", &Auth::Bearer(secret.into())).await.expect(200);

    s.post("/v1/keys/import", &s.admin, json!({"id": "legacy-app", "secret": "another-secret-of-20+", "name": "x"}))
        .await
        .problem(409, "key_id_taken");
    s.post("/v1/keys/import", &s.admin, json!({"id": "legacy-dup", "secret": secret, "name": "same secret"}))
        .await
        .problem(409, "secret_in_use");
    // A secret still in its grace period after a roll is in use too.
    let rolled = s.post("/v1/keys/legacy-app/roll", &s.admin, json!({"grace_period_s": 60})).await.expect(200);
    assert!(rolled["secret"].is_string());
    s.post("/v1/keys/import", &s.admin, json!({"id": "legacy-grace", "secret": secret, "name": "grace secret"}))
        .await
        .problem(409, "secret_in_use");
    for (body, field) in [
        (json!({"secret": "another-secret-of-20+", "name": "x"}), "id"),
        (json!({"id": "legacy-2", "name": "x"}), "secret"),
        (json!({"id": "legacy-2", "secret": "too-short", "name": "x"}), "secret"),
        (json!({"id": "legacy-2", "secret": "tab\tinside-the-secret-value", "name": "x"}), "secret"),
        (json!({"id": "l", "secret": "another-secret-of-20+", "name": "x"}), "id"),
    ] {
        let p = s.post("/v1/keys/import", &s.admin, body).await.problem(422, "validation_failed");
        assert_eq!(p["field"], field, "{p}");
        assert!(!p.to_string().contains("another-secret-of-20+"), "errors never echo a secret");
    }
    s.post("/v1/keys", &s.admin, json!({"name": "x", "secret": "another-secret-of-20+"}))
        .await
        .problem(422, "validation_failed");
}

#[tokio::test]
async fn validation_names_the_field() {
    let s = TestServer::start().await;
    let cases = [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "ok", "id": "no spaces"}), "id"),
        (json!({"name": "ok", "id": "ab"}), "id"),
        (json!({"name": "ok", "expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"name": "ok", "expires_at": "next tuesday"}), "expires_at"),
        (json!({"name": "ok", "expires_in_days": 0}), "expires_in_days"),
        (json!({"name": "ok", "expires_in_days": 3, "expires_at": "2099-01-01T00:00:00Z"}), "expires_in_days"),
        (json!({"name": "ok", "reauth_timeout_s": 9}), "reauth_timeout_s"),
        (json!({"name": "ok", "reauth_timeout_s": 86401}), "reauth_timeout_s"),
        (json!({"name": "ok", "network_restrictions": ["10.0.0.0/8", "not-an-ip"]}), "network_restrictions[1]"),
        (json!({"name": "ok", "network_restrictions": ["10.0.0.1/8"]}), "network_restrictions[0]"),
        (
            json!({"name": "ok", "network_restrictions": (0..11).map(|i| format!("10.0.{i}.0/24")).collect::<Vec<_>>()}),
            "network_restrictions",
        ),
        (json!({"name": "ok", "roles": ["no_such_role"]}), "roles[0]"),
        (json!({"name": "ok", "scopes": [{"scope": "nope", "resource": "x", "access": "read"}]}), "scopes[0]"),
        (
            json!({"name": "ok", "scopes": [{"scope": "keyward", "resource": "keys", "access": "admin"}]}),
            "scopes[0].access",
        ),
        (json!({"name": "ok", "expire_at": "2099-01-01T00:00:00Z"}), "expire_at"),
    ];
    for (body, field) in cases {
        let p = s.post("/v1/keys", &s.admin, body.clone()).await.problem(422, "validation_failed");
        assert_eq!(p["field"], field, "for {body}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(field.split('[').next().unwrap()), "{p}");
    }
    // Exactly at the limits is fine.
    s.post("/v1/keys", &s.admin, json!({"name": "x".repeat(255), "reauth_timeout_s": 10})).await.expect(201);
    let ten: Vec<String> = (0..10).map(|i| format!("10.0.{i}.0/24")).collect();
    s.post("/v1/keys", &s.admin, json!({"name": "ten", "network_restrictions": ten, "reauth_timeout_s": 86400}))
        .await
        .expect(201);

    s.post_raw("/v1/keys", &s.admin, "application/json", "{\"name\": ").await.problem(400, "invalid_json");
    s.post_raw("/v1/keys", &s.admin, "text/plain", "name=x").await.problem(415, "unsupported_media_type");

    let (key, _) = s.create_key(json!({"name": "patchme"})).await;
    let path = format!("/v1/keys/{}", key["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"reauth_timeout_s": 100000}), "reauth_timeout_s"),
        (json!({"network_restrictions": ["::1/129"]}), "network_restrictions[0]"),
        (json!({"owner_id": "someone"}), "owner_id"),
    ] {
        let p = s.patch(&path, &s.admin, body.clone()).await.problem(422, "validation_failed");
        assert_eq!(p["field"], field, "for {body}: {p}");
    }
}

#[tokio::test]
async fn patch_changes_what_it_names_and_null_expiry_means_never() {
    let s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "before", "expires_in_days": 5})).await;
    let path = format!("/v1/keys/{}", key["id"].as_str().unwrap());
    assert!(key["expires_at"].is_string());
    let changed = s
        .patch(&path, &s.admin, json!({"name": "after", "comment": "rotated by ops", "network_restrictions": ["127.0.0.1", "::1"], "reauth_timeout_s": 300}))
        .await
        .expect(200);
    assert_eq!(changed["name"], "after");
    assert_eq!(changed["comment"], "rotated by ops");
    assert_eq!(changed["description"], "");
    assert_eq!(changed["network_restrictions"], json!(["127.0.0.1", "::1"]));
    assert_eq!(changed["reauth_timeout_s"], 300);
    assert_eq!(changed["expires_at"], key["expires_at"], "unnamed fields stay");
    let never = s.patch(&path, &s.admin, json!({"expires_at": null})).await.expect(200);
    assert_eq!(never["expires_at"], Value::Null);
    s.get("/v1/me", &auth).await.expect(200);
    let at = s.patch(&path, &s.admin, json!({"expires_at": "2099-06-01T12:00:00+02:00"})).await.expect(200);
    assert_eq!(at["expires_at"], "2099-06-01T10:00:00Z");
    s.patch(&path, &s.admin, json!({"network_restrictions": ["192.0.2.0/24"]})).await.expect(200);
    s.get("/v1/me", &auth).await.problem(401, "ip_not_allowed");
    s.patch("/v1/keys/kw_nope", &s.admin, json!({"name": "x"})).await.problem(404, "not_found");
}

#[tokio::test]
async fn the_per_user_key_limit_is_enforced_and_configurable() {
    let s = TestServer::start().await;
    let me = s.get("/v1/me", &s.admin).await.expect(200);
    let org_id = me["org_id"].as_str().unwrap().to_owned();
    let org = s.get(&format!("/v1/orgs/{org_id}"), &s.admin).await.expect(200);
    assert_eq!(org["max_keys_per_user"], 10);
    assert_eq!(org["default_expiry_days"], Value::Null);
    assert_eq!(org["allow_direct_secret"], true);
    // The bootstrap key is one of the admin's ten.
    for i in 0..9 {
        s.post("/v1/keys", &s.admin, json!({"name": format!("limit-{i}")})).await.expect(201);
    }
    s.post("/v1/keys", &s.admin, json!({"name": "eleventh"})).await.problem(409, "key_limit_reached");
    s.post("/v1/keys/import", &s.admin, json!({"name": "imp", "id": "imp-1", "secret": "imported-secret-value-1"}))
        .await
        .problem(409, "key_limit_reached");
    let patched = s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"max_keys_per_user": 11})).await.expect(200);
    assert_eq!(patched["max_keys_per_user"], 11);
    s.post("/v1/keys", &s.admin, json!({"name": "eleventh"})).await.expect(201);
    s.post("/v1/keys", &s.admin, json!({"name": "twelfth"})).await.problem(409, "key_limit_reached");
    // A deleted key frees its place.
    let list = s.get("/v1/keys?q=limit-0", &s.admin).await.expect(200);
    let k0 = list["items"][0]["id"].as_str().unwrap();
    s.delete(&format!("/v1/keys/{k0}"), &s.admin).await;
    s.post("/v1/keys", &s.admin, json!({"name": "twelfth"})).await.expect(201);

    for (body, field) in [
        (json!({"max_keys_per_user": 0}), "max_keys_per_user"),
        (json!({"max_keys_per_user": 100001}), "max_keys_per_user"),
        (json!({"default_expiry_days": 0}), "default_expiry_days"),
        (json!({"allow_direct_secret": "no"}), "allow_direct_secret"),
    ] {
        let p = s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, body).await.problem(422, "validation_failed");
        assert_eq!(p["field"], field);
    }
    s.get("/v1/orgs/org_unknown", &s.admin).await.problem(404, "not_found");
}

#[tokio::test]
async fn org_settings_apply_default_expiry_and_can_forbid_direct_secrets() {
    let s = TestServer::start().await;
    let org_id = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"default_expiry_days": 30})).await.expect(200);
    let (key, _) = s.create_key(json!({"name": "defaulted"})).await;
    let expires = chrono::DateTime::parse_from_rfc3339(key["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.to_utc() - chrono::Utc::now()).num_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "{days} hours");
    let (explicit, _) = s.create_key(json!({"name": "explicit", "expires_in_days": 2})).await;
    assert_ne!(explicit["expires_at"], key["expires_at"]);
    let back = s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"default_expiry_days": null})).await.expect(200);
    assert_eq!(back["default_expiry_days"], Value::Null);

    s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"allow_direct_secret": false})).await.expect(200);
    s.get("/v1/me", &s.admin).await.problem(401, "invalid_credentials");
}

#[tokio::test]
async fn the_list_searches_filters_sorts_pages_and_counts() {
    let s = TestServer::in_process().await;
    let org_id = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"max_keys_per_user": 100})).await.expect(200);
    for i in 0..12 {
        s.post(
            "/v1/keys",
            &s.admin,
            json!({"name": format!("batch-{i:02}"), "comment": if i == 7 { "needle" } else { "" }}),
        )
        .await
        .expect(201);
    }
    let (soon, _) = s.create_key(json!({"name": "expiring soon", "expires_in_days": 10})).await;
    let (later, _) = s.create_key(json!({"name": "expiring later", "expires_in_days": 90})).await;
    let (locked, _) = s.create_key(json!({"name": "locked one"})).await;
    s.post(&format!("/v1/keys/{}/lock", locked["id"].as_str().unwrap()), &s.admin, json!({})).await.expect(200);
    let short = (s.clock().now() + chrono::Duration::seconds(1)).to_rfc3339();
    s.create_key(json!({"name": "about to expire", "expires_at": short})).await;
    s.clock().advance(std::time::Duration::from_secs(2));

    let all = s.get("/v1/keys?per_page=10", &s.admin).await.expect(200);
    assert_eq!(all["total"], 17);
    assert_eq!(all["page"], 1);
    assert_eq!(all["per_page"], 10);
    assert_eq!(all["items"].as_array().unwrap().len(), 10);
    assert_eq!(all["counts"], json!({"active": 15, "locked": 1, "expired": 1, "expiring_30d": 1}));
    let page2 = s.get("/v1/keys?per_page=10&page=2", &s.admin).await.expect(200);
    assert_eq!(page2["items"].as_array().unwrap().len(), 7);
    let page3 = s.get("/v1/keys?per_page=10&page=3", &s.admin).await.expect(200);
    assert_eq!(page3["items"].as_array().unwrap().len(), 0);

    let found = s.get("/v1/keys?q=NEEDLE", &s.admin).await.expect(200);
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["name"], "batch-07");
    let by_id = s.get(&format!("/v1/keys?q={}", &soon["id"].as_str().unwrap()[3..12]), &s.admin).await.expect(200);
    assert_eq!(by_id["items"][0]["id"], soon["id"]);
    let literal = s.get("/v1/keys?q=%25", &s.admin).await.expect(200);
    assert_eq!(literal["total"], 0, "% is matched literally");

    let locked_list = s.get("/v1/keys?status=locked", &s.admin).await.expect(200);
    assert_eq!(locked_list["total"], 1);
    assert_eq!(locked_list["items"][0]["status"], "locked");
    assert_eq!(locked_list["counts"]["active"], 15, "counts ignore the status filter");
    let expired = s.get("/v1/keys?status=expired", &s.admin).await.expect(200);
    assert_eq!(expired["items"][0]["name"], "about to expire");
    assert_eq!(expired["items"][0]["status"], "expired");

    let by_name = s.get("/v1/keys?sort=name&per_page=100", &s.admin).await.expect(200);
    let names: Vec<&str> = by_name["items"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted);
    let desc = s.get("/v1/keys?sort=-name&per_page=100", &s.admin).await.expect(200);
    assert_eq!(desc["items"][0]["name"], *sorted.last().unwrap());
    let by_expiry = s.get("/v1/keys?sort=expires_at&per_page=100", &s.admin).await.expect(200);
    assert_eq!(by_expiry["items"][0]["name"], "about to expire");
    assert_eq!(by_expiry["items"][1]["id"], soon["id"]);
    assert_eq!(by_expiry["items"][2]["id"], later["id"]);
    let by_status = s.get("/v1/keys?sort=-status&per_page=100", &s.admin).await.expect(200);
    assert_eq!(by_status["items"][0]["status"], "expired");
    assert_eq!(by_status["items"][1]["status"], "locked");

    for (query, field) in [
        ("per_page=20", "per_page"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("sort=color", "sort"),
        ("status=sleeping", "status"),
        (&*format!("q={}", "x".repeat(256)), "q"),
    ] {
        let p = s.get(&format!("/v1/keys?{query}"), &s.admin).await.problem(400, "invalid_query");
        assert_eq!(p["field"], field);
    }
    let owner = s.get("/v1/me", &s.admin).await.expect(200)["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(s.get(&format!("/v1/keys?owner_id={owner}"), &s.admin).await.expect(200)["total"], 17);
    assert_eq!(s.get("/v1/keys?owner_id=usr_nobody", &s.admin).await.expect(200)["total"], 0);
    assert_eq!(s.get("/v1/keys?role_id=account_admin", &s.admin).await.expect(200)["total"], 17);
    assert_eq!(s.get("/v1/keys?role_id=auditor", &s.admin).await.expect(200)["total"], 0);
}

#[tokio::test]
async fn bulk_actions_report_each_id() {
    let s = TestServer::start().await;
    let (a, auth_a) = s.create_key(json!({"name": "a"})).await;
    let (b, auth_b) = s.create_key(json!({"name": "b"})).await;
    let ids = json!([a["id"], b["id"], "kw_missing"]);
    let locked = s.post("/v1/keys/bulk", &s.admin, json!({"action": "lock", "ids": ids})).await.expect(200);
    assert_eq!(
        locked["results"],
        json!([{"id": a["id"], "ok": true}, {"id": b["id"], "ok": true}, {"id": "kw_missing", "ok": false, "code": "not_found"}])
    );
    s.get("/v1/me", &auth_a).await.problem(401, "key_locked");
    s.post("/v1/keys/bulk", &s.admin, json!({"action": "unlock", "ids": [a["id"]]})).await.expect(200);
    s.get("/v1/me", &auth_a).await.expect(200);
    s.get("/v1/me", &auth_b).await.problem(401, "key_locked");
    s.post("/v1/keys/bulk", &s.admin, json!({"action": "delete", "ids": [a["id"], b["id"]]})).await.expect(200);
    s.get("/v1/me", &auth_a).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &auth_b).await.problem(401, "invalid_credentials");
    s.post("/v1/keys/bulk", &s.admin, json!({"action": "explode", "ids": ["x"]}))
        .await
        .problem(422, "validation_failed");
    s.post("/v1/keys/bulk", &s.admin, json!({"action": "lock", "ids": []})).await.problem(422, "validation_failed");
}

#[tokio::test]
async fn last_use_is_recorded_in_batches_and_survives_a_restart() {
    let mut s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "used"})).await;
    let path = format!("/v1/keys/{}", key["id"].as_str().unwrap());
    assert_eq!(key["last_used_at"], Value::Null);
    for _ in 0..20 {
        s.get("/v1/me", &auth).await.expect(200);
    }
    let seen = s.get(&path, &s.admin).await.expect(200);
    assert!(seen["last_used_at"].is_string());
    assert_eq!(seen["last_used_ip"], "127.0.0.1");
    s.restart().await;
    let after = s.get(&path, &s.admin).await.expect(200);
    assert_eq!(after["last_used_at"], seen["last_used_at"]);
    assert_eq!(after["last_used_ip"], "127.0.0.1");
}

#[tokio::test]
async fn everything_survives_a_restart_and_a_kill9() {
    let mut s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "durable", "comment": "keep me"})).await;
    let id = key["id"].as_str().unwrap().to_owned();
    let first_output = s.output();
    s.restart().await;
    assert!(!s.output()[first_output.len()..].contains("bootstrap admin API key"), "bootstrap is printed once");
    s.get("/v1/me", &auth).await.expect(200);
    s.get("/v1/me", &s.admin).await.expect(200);
    let (locked, locked_auth) = s.create_key(json!({"name": "will be locked"})).await;
    s.post(&format!("/v1/keys/{}/lock", locked["id"].as_str().unwrap()), &s.admin, json!({})).await.expect(200);
    let (_, after_kill) = s.create_key(json!({"name": "acknowledged before kill"})).await;
    s.start_again_after_kill().await;
    s.get("/v1/me", &after_kill).await.expect(200);
    s.get("/v1/me", &locked_auth).await.problem(401, "key_locked");
    let got = s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200);
    assert_eq!(got["comment"], "keep me");
}

#[tokio::test]
async fn secrets_are_never_logged_stored_in_clear_or_echoed() {
    let mut s = TestServer::start().await;
    let created = s.post("/v1/keys", &s.admin, json!({"name": "watched"})).await.expect(201);
    let secret = secret_of(&created);
    let id = id_of(&created);
    let rolled = s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({"grace_period_s": 30})).await.expect(200);
    let rolled_secret = secret_of(&rolled);
    s.post("/v1/keys/import", &s.admin, json!({"id": "imp-watch", "secret": "imported-and-watched-1234", "name": "i"}))
        .await
        .expect(201);
    s.get("/v1/me", &Auth::Bearer(rolled_secret.clone())).await.expect(200);
    s.get("/v1/me", &Auth::basic(&id, "a-wrong-secret-attempt-xyz")).await.problem(401, "invalid_credentials");
    s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200);
    s.get("/v1/keys", &s.admin).await.expect(200);
    s.restart().await;

    let output = s.output();
    assert!(output.contains("keyward listening"), "logs were captured");
    assert!(output.contains("route=/v1/keys"), "requests are logged by route");
    for needle in [secret.as_str(), rolled_secret.as_str(), "imported-and-watched-1234", "a-wrong-secret-attempt-xyz"] {
        assert!(!output.contains(needle), "a secret reached the output");
    }
    assert_eq!(output.matches(&s.admin_secret).count(), 1, "the bootstrap secret is printed exactly once");

    // The database holds digests and ciphertexts only.
    for entry in std::fs::read_dir(s.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("keyward.db") {
            let bytes = std::fs::read(&path).unwrap();
            for needle in [&secret, &rolled_secret, &s.admin_secret, &"imported-and-watched-1234".to_owned()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{} holds a secret",
                    path.display()
                );
            }
        }
    }
    assert_eq!(file_mode(&s.data_dir().join("bootstrap-admin.txt")), 0o600);
    assert_eq!(file_mode(&s.data_dir().join("master.key")), 0o600);
    let bootstrap = std::fs::read_to_string(s.data_dir().join("bootstrap-admin.txt")).unwrap();
    assert!(bootstrap.contains(&s.admin_id) && bootstrap.contains(&s.admin_secret));
}

#[tokio::test]
async fn the_server_refuses_data_written_under_another_master_key() {
    let mut s = TestServer::start().await;
    s.stop();
    let other = "ab".repeat(32);
    let (status, output) = s.run_and_wait(&[("KEYWARD_MASTER_KEY", &other)]);
    assert!(!status.success());
    assert!(output.contains("another master key"), "{output}");
    std::fs::remove_file(s.data_dir().join("master.key")).unwrap();
    let (status, output) = s.run_and_wait(&[]);
    assert!(!status.success());
    assert!(output.contains("master key file"), "{output}");
    let (status, output) = s.run_and_wait(&[("KEYWARD_MASTER_KEY", "not-a-key")]);
    assert!(!status.success());
    assert!(output.contains("KEYWARD_MASTER_KEY"), "{output}");
}

#[tokio::test]
async fn a_master_key_from_the_environment_is_used_and_never_written() {
    let key = "0f".repeat(32);
    let mut s = TestServer::start_with_env(vec![("KEYWARD_MASTER_KEY", &key)]).await;
    assert!(!s.data_dir().join("master.key").exists());
    s.restart().await;
    s.get("/v1/me", &s.admin).await.expect(200);
    assert!(!s.output().contains(&key));
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/healthz", &Auth::None).await.expect(200)["status"], "ok");
    assert_eq!(s.get("/readyz", &Auth::None).await.expect(200)["status"], "ready");
    let doc = s.get("/openapi.json", &Auth::None).await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/keys/{id}/roll",
        "/v1/keys/bulk",
        "/v1/keys/import",
        "/v1/me",
        "/v1/orgs/{id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    let (_, locked) = s.create_key(json!({"name": "locked for metrics"})).await;
    s.get("/v1/me", &Auth::basic("kw_unknown", "nope-nope-nope-nope")).await.problem(401, "invalid_credentials");
    let metrics = reqwest::get(format!("{}/metrics", s.base)).await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("keyward_http_requests_total{method=\"GET\",route=\"/openapi.json\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("keyward_keys{status=\"active\"} 2"), "{text}");
    let Auth::Basic(_, secret) = locked else { unreachable!() };
    assert!(!text.contains(&secret) && !text.contains(&s.admin_id), "metrics name no key");
    s.get("/v1/nothing-here", &s.admin).await.problem(404, "not_found");
    s.get("/v1/keys/%FF", &s.admin).await.problem(400, "invalid_request");
    s.call(reqwest::Method::PUT, "/v1/keys", &s.admin, None).await.problem(405, "method_not_allowed");
}

#[tokio::test]
async fn a_lock_or_roll_is_never_undone_by_concurrent_edits() {
    let s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "contested"})).await;
    let id = key["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/keys/{id}");
    let client = reqwest::Client::new();
    let (admin_id, admin_secret) = (s.admin_id.clone(), s.admin_secret.clone());
    // Four writers keep editing the key while the admin locks it and then rolls it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, stop) = (client.clone(), format!("{}{path}", s.base), stop.clone());
        let (u, p) = (admin_id.clone(), admin_secret.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 400 {
                let resp = client
                    .patch(&url)
                    .basic_auth(&u, Some(&p))
                    .json(&json!({"comment": format!("writer {w} edit {n}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
                n += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    s.post(&format!("{path}/lock"), &s.admin, json!({})).await.expect(200);
    let rolled = s.post(&format!("{path}/roll"), &s.admin, json!({})).await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let after = s.get(&path, &s.admin).await.expect(200);
    assert_eq!(after["status"], "locked", "the lock stands");
    s.post(&format!("{path}/unlock"), &s.admin, json!({})).await.expect(200);
    s.get("/v1/me", &auth).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &Auth::basic(&id, rolled["secret"].as_str().unwrap())).await.expect(200);
}

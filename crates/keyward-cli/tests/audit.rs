//! The audit log of API.md §Audit: one entry per action, coalesced refused
//! uses, filters, streaming export, hash-chain verification, retention.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use common::{Auth, TestServer};
use serde_json::{Value, json};

async fn entries(s: &TestServer, query: &str) -> Vec<Value> {
    let page = s.get(&format!("/v1/audit?per_page=100&{query}"), &s.admin).await.expect(200);
    page["items"].as_array().unwrap().clone()
}

/// Appends `n` chained entries straight through the store, as if written over time.
async fn append_events(s: &TestServer, org_id: &str, n: usize, action: &str, at: chrono::DateTime<chrono::Utc>) {
    use keyward_core::audit::AuditEvent;
    use keyward_core::store::Store;
    let store = keyward_store::sqlite::SqliteStore::open(&s.data_dir().join("keyward.db")).await.unwrap();
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| AuditEvent {
            at,
            org_id: org_id.to_owned(),
            actor_id: "usr_load".into(),
            actor_key_id: None,
            source_ip: Some("127.0.0.1".into()),
            action: action.into(),
            target_type: "key".into(),
            target_id: format!("kw_load_{i}"),
            outcome: "success".into(),
            details: json!({"padding": "x".repeat(200), "i": i}),
        })
        .collect();
    store.append_audit(&events).await.unwrap();
    store.close().await;
}

fn db_url(s: &TestServer) -> String {
    format!("sqlite://{}", s.data_dir().join("keyward.db").display())
}

#[tokio::test]
async fn each_key_action_writes_exactly_one_entry_naming_actor_key_source_and_outcome() {
    let s = TestServer::start().await;
    let me = s.get("/v1/me", &s.admin).await.expect(200);
    let admin_user = me["user"]["id"].as_str().unwrap().to_owned();
    let (key, _) = s.create_key(json!({"name": "audited"})).await;
    let id = key["id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/keys/{id}"), &s.admin, json!({"comment": "c"})).await.expect(200);
    s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({"grace_period_s": 5})).await.expect(200);
    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    s.post(&format!("/v1/keys/{id}/unlock"), &s.admin, json!({})).await.expect(200);
    s.delete(&format!("/v1/keys/{id}"), &s.admin).await.expect(204);
    s.post("/v1/keys/import", &s.admin, json!({"id": "imp-a", "secret": "imported-audited-secret", "name": "i"}))
        .await
        .expect(201);

    let about_key = entries(&s, &format!("target_id={id}")).await;
    let actions: Vec<&str> = about_key.iter().rev().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["key.create", "key.update", "key.roll", "key.lock", "key.unlock", "key.delete"]);
    for e in &about_key {
        assert_eq!(e["actor_id"], admin_user.as_str());
        assert_eq!(e["actor_key_id"], s.admin_id.as_str());
        assert_eq!(e["source_ip"], "127.0.0.1");
        assert_eq!(e["outcome"], "success");
        assert_eq!(e["target_type"], "key");
        assert_eq!(e["org_id"], me["org_id"]);
        for field in ["seq", "at", "details", "prev_hash", "hash"] {
            assert!(!e[field].is_null(), "{field} missing: {e}");
        }
    }
    assert_eq!(entries(&s, "action=key.import&target_id=imp-a").await.len(), 1);
    assert_eq!(entries(&s, "action=key.roll").await[0]["details"]["grace_period_s"], 5);
    // Filters combine; actor and time range.
    assert_eq!(entries(&s, &format!("actor_id={admin_user}&action=key.lock")).await.len(), 1);
    assert!(entries(&s, "actor_id=usr_nobody").await.is_empty());
    assert!(entries(&s, "from=2099-01-01T00:00:00Z").await.is_empty());
    assert_eq!(entries(&s, "to=2099-01-01T00:00:00Z").await.len(), entries(&s, "").await.len());
    let p = s.get("/v1/audit?from=yesterday", &s.admin).await.problem(400, "invalid_query");
    assert_eq!(p["field"], "from");
    // Paging.
    let page = s.get("/v1/audit?per_page=10&page=1", &s.admin).await.expect(200);
    assert!(page["total"].as_u64().unwrap() >= 10);
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    let first = page["items"][0]["seq"].as_i64().unwrap();
    let second = page["items"][1]["seq"].as_i64().unwrap();
    assert!(first > second, "newest first");
}

#[tokio::test]
async fn changes_to_orgs_users_roles_and_scopes_are_audited_without_secrets() {
    let s = TestServer::start().await;
    let org_id = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"max_keys_per_user": 20})).await.expect(200);
    let user = s
        .post("/v1/users", &s.admin, json!({"name": "svc", "kind": "service", "roles": ["service_requestor"]}))
        .await
        .expect(201);
    let uid = user["id"].as_str().unwrap();
    let created = s.post(&format!("/v1/users/{uid}/keys"), &s.admin, json!({"name": "svc key"})).await.expect(201);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let role = s
        .post("/v1/roles", &s.admin, json!({"name": "deployer", "permissions": ["keyward:keys:write"]}))
        .await
        .expect(201);
    s.post("/v1/scopes", &s.admin, json!({"name": "orders", "resources": ["invoices"]})).await.expect(201);
    s.delete(&format!("/v1/roles/{}", role["id"].as_str().unwrap()), &s.admin).await.expect(204);
    s.delete(&format!("/v1/users/{uid}"), &s.admin).await.expect(204);
    let role_id = role["id"].as_str().unwrap();
    for (action, target) in [
        ("org.update", org_id.as_str()),
        ("user.create", uid),
        ("role.create", role_id),
        ("scope.create", "orders"),
        ("role.delete", role_id),
        ("user.delete", uid),
    ] {
        assert_eq!(entries(&s, &format!("action={action}&target_id={target}")).await.len(), 1, "{action}");
    }
    // The user's key went with the user, audited as its own deletion.
    let key_deleted =
        entries(&s, &format!("action=key.delete&target_id={}", created["key"]["id"].as_str().unwrap())).await;
    assert_eq!(key_deleted.len(), 1);
    assert_eq!(key_deleted[0]["details"]["reason"], "owner deleted");

    let export = reqwest::Client::new()
        .get(format!("{}/v1/audit/export?format=ndjson", s.base))
        .basic_auth(&s.admin_id, Some(&s.admin_secret))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [secret.as_str(), s.admin_secret.as_str()] {
        assert!(!export.contains(needle), "a secret reached the audit log");
    }
}

#[tokio::test]
async fn refused_uses_are_coalesced_per_key_source_and_reason() {
    let mut s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "target"})).await;
    let id = key["id"].as_str().unwrap().to_owned();
    for _ in 0..50 {
        s.get("/v1/me", &Auth::basic(&id, "definitely-not-the-secret")).await.problem(401, "invalid_credentials");
    }
    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    for _ in 0..3 {
        s.get("/v1/me", &auth).await.problem(401, "key_locked");
    }
    // Shutdown closes the open windows.
    s.restart().await;
    let failed = entries(&s, &format!("action=key.use_failed&target_id={id}")).await;
    // Each window's first refusal is written at once, the rest of the window in one more entry
    // (fewer when the later refusals came before the first was written).
    let count = |reason: &str| -> u64 {
        failed
            .iter()
            .filter(|e| e["details"]["reason"] == reason)
            .map(|e| e["details"]["count"].as_u64().unwrap())
            .sum()
    };
    assert!((2..=4).contains(&failed.len()), "{failed:?}");
    assert_eq!((count("invalid_credentials"), count("key_locked")), (50, 3));
    for e in &failed {
        assert_eq!(e["outcome"], "failure");
        assert_eq!(e["source_ip"], "127.0.0.1");
    }
    assert!(!s.get("/v1/audit/export", &s.admin).await.text.contains("definitely-not-the-secret"));
}

/// No restart and no waiting: the window closes on the server's clock and the next
/// round of the background writers writes it.
#[tokio::test]
async fn a_refused_use_reaches_the_audit_log_when_its_window_closes() {
    use keyward_core::clock::Clock;
    let s = TestServer::in_process().await;
    let (key, _) = s.create_key(json!({"name": "target"})).await;
    let id = key["id"].as_str().unwrap().to_owned();
    let start = s.clock().now();
    for _ in 0..5 {
        s.get("/v1/me", &Auth::basic(&id, "definitely-not-the-secret")).await.problem(401, "invalid_credentials");
    }
    s.clock().advance(std::time::Duration::from_secs(60));
    s.flush().await;
    let failed = entries(&s, &format!("action=key.use_failed&target_id={id}")).await;
    assert!(!failed.is_empty(), "no entry once the window closed");
    let count: u64 = failed.iter().map(|e| e["details"]["count"].as_u64().unwrap()).sum();
    assert_eq!(count, 5, "{failed:?}");
    for e in &failed {
        assert_eq!(e["details"]["reason"], "invalid_credentials", "{e}");
        let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
        assert!(at.to_utc() >= start && at.to_utc() <= s.clock().now(), "dated by the server's clock: {e}");
    }
}

#[tokio::test]
async fn verify_finds_an_entry_changed_in_the_database() {
    let s = TestServer::start().await;
    for i in 0..5 {
        s.create_key(json!({"name": format!("k{i}")})).await;
    }
    let ok = s.get("/v1/audit/verify", &s.admin).await.expect(200);
    assert_eq!(ok["ok"], true);
    let checked = ok["checked"].as_u64().unwrap();
    assert!(checked >= 8, "{ok}");
    assert!(ok.get("first_bad_seq").is_none());
    let (status, out, _) = s.run_cli(&["audit", "verify", "--data-dir", s.data_dir().to_str().unwrap()]);
    assert!(status.success(), "{out}");
    assert!(out.contains("ok"), "{out}");

    let target = entries(&s, "action=key.create").await[2]["seq"].as_i64().unwrap();
    let pool = sqlx::SqlitePool::connect(&db_url(&s)).await.unwrap();
    sqlx::query("UPDATE audit SET outcome = 'failure' WHERE seq = ?").bind(target).execute(&pool).await.unwrap();
    pool.close().await;

    let bad = s.get("/v1/audit/verify", &s.admin).await.expect(200);
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["first_bad_seq"], target);
    assert_eq!(bad["checked"], checked);
    let (status, out, err) = s.run_cli(&["audit", "verify", "--data-dir", s.data_dir().to_str().unwrap()]);
    assert!(!status.success());
    assert!(out.contains(&format!("entry {target}")), "{out}{err}");
}

#[tokio::test]
async fn a_deleted_entry_breaks_the_chain() {
    let s = TestServer::start().await;
    for i in 0..3 {
        s.create_key(json!({"name": format!("k{i}")})).await;
    }
    let all = entries(&s, "").await;
    let victim = all[1]["seq"].as_i64().unwrap();
    let pool = sqlx::SqlitePool::connect(&db_url(&s)).await.unwrap();
    sqlx::query("DELETE FROM audit WHERE seq = ?").bind(victim).execute(&pool).await.unwrap();
    pool.close().await;
    let bad = s.get("/v1/audit/verify", &s.admin).await.expect(200);
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["first_bad_seq"], all[0]["seq"], "the entry after the gap no longer links");
}

#[tokio::test]
async fn export_streams_csv_and_ndjson_with_filters() {
    let s = TestServer::start().await;
    let (key, _) = s.create_key(json!({"name": "has, a comma \"and quotes\""})).await;
    let id = key["id"].as_str().unwrap();
    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    let client = reqwest::Client::new();
    let fetch = |q: String| {
        let client = client.clone();
        let url = format!("{}/v1/audit/export?{q}", s.base);
        let (u, p) = (s.admin_id.clone(), s.admin_secret.clone());
        async move { client.get(url).basic_auth(u, Some(p)).send().await.unwrap() }
    };
    let csv = fetch(format!("format=csv&target_id={id}")).await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("seq,at,org_id,actor_id"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].contains(",key.create,") && rows[1].contains(",key.lock,"), "oldest first: {rows:?}");
    assert!(rows[0].contains("\"\"and quotes"), "quotes are doubled inside quoted fields: {}", rows[0]);

    let nd = fetch(format!("format=ndjson&target_id={id}&action=key.lock")).await;
    assert_eq!(nd.headers()["content-type"], "application/x-ndjson");
    let body = nd.text().await.unwrap();
    let parsed: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0]["action"], "key.lock");
    let p = s.get("/v1/audit/export?format=xml", &s.admin).await.problem(400, "invalid_query");
    assert_eq!(p["field"], "format");

    let (status, out, _) = s.run_cli(&[
        "audit",
        "export",
        "--format",
        "csv",
        "--target",
        id,
        "--data-dir",
        s.data_dir().to_str().unwrap(),
    ]);
    assert!(status.success());
    assert_eq!(out.lines().count(), 3);
    let dir = s.data_dir().to_str().unwrap().to_owned();
    let (status, out, _) = s.run_cli(&["audit", "export", "--target", id, "--action", "key.lock", "--data-dir", &dir]);
    assert!(status.success());
    assert_eq!(out.lines().count(), 1, "{out}");
    let (status, out, _) =
        s.run_cli(&["audit", "export", "--target", id, "--from", "2099-01-01T00:00:00Z", "--data-dir", &dir]);
    assert!(status.success());
    assert_eq!(out, "", "nothing after 2099");
    let (status, _, err) = s.run_cli(&["audit", "export", "--from", "tomorrow", "--data-dir", &dir]);
    assert!(!status.success() && err.contains("RFC 3339"), "{err}");
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_export_of_100000_entries_streams_in_bounded_memory() {
    let mut s = TestServer::start().await;
    let org_id = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.stop();
    append_events(&s, &org_id, 100_000, "load.test", chrono::Utc::now()).await;
    s.restart().await;
    let pid = s.pid().unwrap();
    let before = peak_rss_kib(pid);
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/audit/export?format=ndjson&action=load.test", s.base))
        .basic_auth(&s.admin_id, Some(&s.admin_secret))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let (mut bytes, mut lines) = (0usize, 0usize);
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    assert_eq!(lines, 100_000);
    assert!(bytes > 40_000_000, "{bytes} bytes");
    let grown_mib = (peak_rss_kib(pid) - before) / 1024;
    assert!(grown_mib < 24, "the server's peak memory grew by {grown_mib} MiB for a {} MiB export", bytes / 1_048_576);
    let verify = s.get("/v1/audit/verify", &s.admin).await.expect(200);
    assert_eq!(verify["ok"], true);
    assert!(verify["checked"].as_u64().unwrap() > 100_000);
}

#[tokio::test]
async fn retention_prunes_old_entries_and_the_chain_still_verifies() {
    let mut s = TestServer::start().await;
    let org_id = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.stop();
    append_events(&s, &org_id, 5, "old.event", chrono::Utc::now() - chrono::Duration::days(365)).await;
    s.restart().await;
    assert_eq!(entries(&s, "action=old.event").await.len(), 5);
    assert_eq!(s.get("/v1/audit/verify", &s.admin).await.expect(200)["ok"], true);

    s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"audit_retention_days": 30})).await.expect(200);
    assert_eq!(s.get(&format!("/v1/orgs/{org_id}"), &s.admin).await.expect(200)["audit_retention_days"], 30);
    s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"audit_retention_days": 0}))
        .await
        .problem(422, "validation_failed");
    // Retention runs at start and hourly.
    s.restart().await;
    assert!(entries(&s, "action=old.event").await.is_empty(), "entries older than 30 days are gone");
    assert_eq!(entries(&s, "action=org.update").await.len(), 1, "what came after the cut stays");
    s.create_key(json!({"name": "after the cut"})).await;
    let verify = s.get("/v1/audit/verify", &s.admin).await.expect(200);
    assert_eq!(verify["ok"], true, "the chain continues from the recorded cut: {verify}");
    let (status, out, _) = s.run_cli(&["audit", "verify", "--data-dir", s.data_dir().to_str().unwrap()]);
    assert!(status.success(), "{out}");
}

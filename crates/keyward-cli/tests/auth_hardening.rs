#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)] // tests compare with the real clock
//! Client authentication hardening end to end: failed attempts throttled per
//! key id and per source address (429 `too_many_attempts` with `Retry-After`,
//! audited), refused uses in the audit log within 2 s, Hawk replays across a
//! restart, sessions of users made Service Requestors, and `Server-Authorization`
//! on refused Hawk requests (checked with mohawk, as tests/client_auth.rs does).
//!
//! The server trusts 127.0.0.1 as a proxy, so a test speaks from other addresses
//! with `X-Forwarded-For` while the admin keeps 127.0.0.1.

mod common;

use common::{Auth, Response, TestServer, basic_header};
use keyward_core::secret::Secret;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

const FORM: &str = "application/x-www-form-urlencoded";

async fn server() -> TestServer {
    TestServer::start_with_env(vec![("KEYWARD_TRUSTED_PROXIES", "127.0.0.1/32")]).await
}

fn creds(auth: &Auth) -> (String, String) {
    match auth {
        Auth::Basic(id, secret) => (id.clone(), secret.clone()),
        other => unreachable!("not a key credential: {other:?}"),
    }
}

/// A request to `path` from `from` (by `X-Forwarded-For`) with a raw `Authorization`.
async fn get_from(s: &TestServer, from: &str, path: &str, authorization: &str) -> Response {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", s.base))
        .header("x-forwarded-for", from)
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Response { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

/// Asserts 429 `too_many_attempts` with a `Retry-After` of at least a second; returns it.
#[track_caller]
fn assert_throttled(r: Response) -> u64 {
    let retry: u64 =
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    r.problem(429, "too_many_attempts");
    assert!(retry >= 1, "Retry-After");
    retry
}

/// Polls `GET /v1/audit?<query>` until an entry is there; fails after `within`.
async fn audit_entry(s: &TestServer, query: &str, within: Duration) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let page = s.get(&format!("/v1/audit?{query}"), &s.admin).await.expect(200);
        if let Some(first) = page["items"].as_array().and_then(|items| items.first()) {
            return (first.clone(), start.elapsed());
        }
        assert!(start.elapsed() < within, "no audit entry for {query} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `tests/python/<script>` and parses the JSON it prints; any failure to run it fails the test.
fn python(script: &str, args: &[&str]) -> Value {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3").arg(&path).args(args).output().expect("python3 (tests-python-requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python3 {script} failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test]
async fn wrong_secrets_for_one_key_meet_a_lockout_that_the_right_secret_waits_out() {
    let s = server().await;
    let (key, auth) = s.create_key(json!({"name": "guessed"})).await;
    let (id, secret) = creds(&auth);
    let attacker = "198.51.100.7";
    let mut first_429 = None;
    for i in 0..300 {
        // Well-formed secrets: right prefix and checksum, wrong value.
        let guess = Secret::generate();
        let r = get_from(&s, attacker, "/v1/me", &basic_header(&id, guess.expose())).await;
        if r.status == 429 {
            first_429 = Some(i);
            assert_throttled(r);
            break;
        }
        r.problem(401, "invalid_credentials");
    }
    let first_429 = first_429.expect("300 wrong secrets never met a 429");
    assert!(first_429 <= 101, "throttled only after {first_429} failures");

    // The right secret, from an address that did nothing wrong, waits too: the key id is locked out.
    let retry = assert_throttled(s.get("/v1/me", &auth).await);
    assert!(retry <= 10, "the first lockout is short: {retry}");
    assert_throttled(get_from(&s, attacker, "/v1/me", &basic_header(&id, &secret)).await);
    let token = s.post_raw("/v1/oauth/token", &auth, FORM, "grant_type=client_credentials").await;
    assert_eq!(token.status, 429, "{}", token.text);
    assert!(token.headers.get("retry-after").is_some());
    assert_eq!(token.body["code"], "too_many_attempts");
    let sign_in = s.post("/v1/sessions", &Auth::None, json!({"key_id": id, "secret": secret})).await;
    sign_in.problem(429, "too_many_attempts");
    let verdict = s.post("/v1/verify", &s.admin, json!({"secret": secret})).await.expect(200);
    assert_eq!((verdict["valid"].as_bool(), verdict["code"].as_str()), (Some(false), Some("too_many_attempts")));
    assert!(verdict["retry_after_s"].as_u64().is_some_and(|r| r >= 1), "{verdict}");

    // Audited: once per key and window, with a count, and never the secret.
    let (throttled, _) = audit_entry(&s, &format!("action=key.throttled&target_id={id}"), Duration::from_secs(2)).await;
    assert_eq!(throttled["details"]["reason"], "too_many_attempts");
    assert_eq!(throttled["source_ip"], attacker);
    let (address, _) = audit_entry(&s, "action=auth.throttled", Duration::from_secs(2)).await;
    assert_eq!(address["details"]["sources"], json!([attacker]));
    assert!(!s.get("/v1/audit/export", &s.admin).await.text.contains(&secret));

    // After the lockout the right secret is accepted again.
    let deadline = Instant::now() + Duration::from_secs(retry + 3);
    loop {
        let r = s.get("/v1/me", &auth).await;
        if r.status == 200 {
            assert_eq!(r.body["key"]["id"], key["id"]);
            break;
        }
        assert_throttled(r);
        assert!(Instant::now() < deadline, "still locked out after Retry-After");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_spray_of_unknown_bearer_secrets_from_one_address_is_throttled_and_audited() {
    let s = server().await;
    let sprayer = "203.0.113.9";
    let mut throttled = None;
    for i in 0..200 {
        let r = get_from(&s, sprayer, "/v1/me", &format!("Bearer {}", Secret::generate().expose())).await;
        if r.status == 429 {
            throttled = Some(assert_throttled(r));
            assert!(i <= 101, "throttled only after {i} failures");
            break;
        }
        r.problem(401, "invalid_credentials");
    }
    assert!(throttled.is_some(), "200 unknown secrets never met a 429");
    // A good credential from that address waits as well; other addresses are untouched.
    assert_throttled(get_from(&s, sprayer, "/v1/me", &basic_header(&s.admin_id, &s.admin_secret)).await);
    s.get("/v1/me", &s.admin).await.expect(200);
    get_from(&s, "203.0.113.10", "/v1/me", &basic_header(&s.admin_id, &s.admin_secret)).await.expect(200);
    let (entry, _) = audit_entry(&s, "action=auth.throttled", Duration::from_secs(2)).await;
    assert_eq!(entry["target_type"], "address");
    assert_eq!(entry["details"]["reason"], "too_many_attempts");
    assert_eq!(entry["details"]["sources"], json!([sprayer]));
}

#[tokio::test]
async fn a_refused_use_is_in_the_audit_log_within_two_seconds() {
    let s = server().await;
    let (key, _) = s.create_key(json!({"name": "refused"})).await;
    let id = key["id"].as_str().unwrap();
    s.get("/v1/me", &Auth::basic(id, "definitely-not-the-secret")).await.problem(401, "invalid_credentials");
    let (entry, took) = audit_entry(&s, &format!("action=key.use_failed&target_id={id}"), Duration::from_secs(2)).await;
    assert_eq!(entry["outcome"], "failure");
    assert_eq!(entry["details"]["reason"], "invalid_credentials");
    assert_eq!(entry["details"]["count"], 1);
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Later refusals of the window follow in one more entry when it closes (here: at shutdown).
    for _ in 0..4 {
        s.get("/v1/me", &Auth::basic(id, "definitely-not-the-secret")).await.problem(401, "invalid_credentials");
    }
    let mut s = s;
    s.restart().await;
    let all = s.get(&format!("/v1/audit?action=key.use_failed&target_id={id}"), &s.admin).await.expect(200);
    let counts: Vec<u64> =
        all["items"].as_array().unwrap().iter().map(|e| e["details"]["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, vec![4, 1], "newest first: the rest of the window, then its first refusal");
}

#[tokio::test]
async fn a_hawk_request_captured_before_a_restart_is_refused_after_it() {
    let mut s = server().await;
    let (_, auth) = s.create_key(json!({"name": "hawk"})).await;
    let (id, secret) = creds(&auth);
    let sign = || {
        let args =
            ["sign", "--id", &id, "--key", &secret, "--method", "GET", "--url", "https://api.example.com/orders"];
        python("hawk_client.py", &args)["authorization"].as_str().unwrap().to_owned()
    };
    let verify = |authorization: String| json!({"hawk": {"authorization": authorization, "method": "GET", "uri": "/orders", "host": "api.example.com", "port": 443}});
    let captured = sign();
    let first = s.post("/v1/verify", &s.admin, verify(captured.clone())).await.expect(200);
    assert_eq!(first["valid"], true, "{first}");
    let replay = s.post("/v1/verify", &s.admin, verify(captured.clone())).await.expect(200);
    assert_eq!(replay["code"], "invalid_credentials", "a replay before the restart");

    s.restart().await;
    let replay = s.post("/v1/verify", &s.admin, verify(captured)).await.expect(200);
    assert_eq!((replay["valid"].as_bool(), replay["code"].as_str()), (Some(false), Some("invalid_credentials")));
    // A request signed after the start's own second is accepted.
    let into_second = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1_050 - into_second.min(1_000)))).await;
    let fresh = s.post("/v1/verify", &s.admin, verify(sign())).await.expect(200);
    assert_eq!(fresh["valid"], true, "{fresh}");
}

#[tokio::test]
async fn a_hawk_request_replayed_at_v1_after_a_restart_gets_the_stale_timestamp_challenge() {
    let mut s = server().await;
    let (_, auth) = s.create_key(json!({"name": "hawk"})).await;
    let (id, secret) = creds(&auth);
    let args = ["request", "--base", &s.base, "--id", &id, "--key", &secret, "--path", "/v1/me", "--repeat", "2"];
    let report = python("hawk_client.py", &args);
    assert_eq!(report["responses"][0]["status"], 200, "{report}");
    assert_eq!(report["responses"][1]["status"], 401, "a replay before the restart: {report}");
    let captured = report["authorization"].as_str().unwrap().to_owned();

    s.restart_on_same_address().await;
    let r = get_from(&s, "127.0.0.1", "/v1/me", &captured).await;
    let www = r.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    r.problem(401, "invalid_credentials");
    assert!(
        www.starts_with("Hawk ts=\"") && www.contains("tsm=\"") && www.ends_with(r#"error="Stale timestamp""#),
        "{www}"
    );
    let args = ["request", "--base", &s.base, "--id", &id, "--key", &secret, "--path", "/v1/me"];
    let report = python("hawk_client.py", &args);
    assert_eq!(report["responses"][0]["status"], 200, "a fresh request after the restart: {report}");
}

#[tokio::test]
async fn a_session_ends_when_its_user_is_made_a_service_requestor() {
    let s = server().await;
    let user = s
        .post("/v1/users", &s.admin, json!({"name": "person", "kind": "human", "roles": ["auditor"]}))
        .await
        .expect(201);
    let uid = user["id"].as_str().unwrap();
    let created = s.post(&format!("/v1/users/{uid}/keys"), &s.admin, json!({"name": "console"})).await.expect(201);
    let client = reqwest::Client::new();
    let signed_in = client
        .post(format!("{}/v1/sessions", s.base))
        .json(&json!({"key_id": created["key"]["id"], "secret": created["secret"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 201);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let me = || client.get(format!("{}/v1/me", s.base)).header("cookie", &cookie).send();
    assert_eq!(me().await.unwrap().status(), 200);

    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"roles": ["auditor", "service_requestor"]}))
        .await
        .expect(200);
    assert_eq!(me().await.unwrap().status(), 401, "the session ended");
    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"roles": ["auditor"]})).await.expect(200);
    assert_eq!(me().await.unwrap().status(), 401, "for good");
}

#[tokio::test]
async fn a_hawk_request_refused_with_403_still_gets_a_server_authorization_that_mohawk_accepts() {
    let s = server().await;
    let (_, auth) = s
        .create_key(json!({"name": "reader", "scopes": [{"scope": "keyward", "resource": "keys", "access": "read"}]}))
        .await;
    let (id, secret) = creds(&auth);
    let args = ["request", "--base", &s.base, "--id", &id, "--key", &secret, "--method", "GET", "--path", "/v1/users"];
    let report = python("hawk_client.py", &args);
    let r = &report["responses"][0];
    assert_eq!(r["status"], 403, "{report}");
    assert_eq!(r["body"]["code"], "insufficient_permissions");
    assert!(r["server_authorization"].is_string(), "no Server-Authorization on a 403: {report}");
    assert_eq!(r["response_verified"], true, "mohawk accept_response: {report}");
    assert_eq!(r["tampered_response_rejected"], true, "{report}");
}

#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests compare with the real clock
//! Client authentication end to end (API.md §Credentials, §Token endpoint,
//! §Gateway verification; HAWK.md §5) against the real server, with
//! independent clients: mohawk 1.1.0 for Hawk and PyJWT 2.10.1 for tokens
//! (tests/python/), plus a small Rust signer built on `keyward_core::hawk`
//! for the requests no well-behaved client would send.
//!
//! python3 with `tests-python-requirements.txt` installed is required: a
//! missing interpreter or module fails the test, it never skips it.

mod common;

use common::{Auth, Response, TestServer};
use keyward_core::clock::Clock;
use keyward_core::hawk::{self, Algorithm, MacInput, MacKind};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const FORM: &str = "application/x-www-form-urlencoded";
const TOKEN: &str = "/v1/oauth/token";
const CC: &str = "grant_type=client_credentials";

// ---------------------------------------------------------------- helpers

fn creds(auth: &Auth) -> (String, String) {
    match auth {
        Auth::Basic(id, secret) => (id.clone(), secret.clone()),
        other => unreachable!("not a key credential: {other:?}"),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A server whose admin may hold many keys, and the admin's org id.
async fn server() -> (TestServer, String) {
    many_keys(TestServer::start().await).await
}

/// `server()` in this process, with a manual clock.
async fn server_in_process() -> (TestServer, String) {
    many_keys(TestServer::in_process().await).await
}

async fn many_keys(s: TestServer) -> (TestServer, String) {
    let me = s.get("/v1/me", &s.admin).await.expect(200);
    let org = me["org_id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/orgs/{org}"), &s.admin, json!({"max_keys_per_user": 1000})).await.expect(200);
    (s, org)
}

fn grant(resource: &str, access: &str) -> Value {
    json!({"scope": "keyward", "resource": resource, "access": access})
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
}

fn scope_set(scope: &Value) -> BTreeSet<String> {
    scope.as_str().unwrap().split_whitespace().map(str::to_owned).collect()
}

/// Runs `tests/python/<script>` and parses the JSON it prints; any failure to run it fails the test.
fn python(script: &str, args: &[&str]) -> Value {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3").arg(&path).args(args).output();
    assert!(
        out.is_ok(),
        "python3 is required by these tests (with mohawk==1.1.0 and PyJWT[crypto]==2.10.1 from \
         tests-python-requirements.txt) and could not be started: {:?}",
        out.as_ref().err()
    );
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 {script} {args:?} failed ({}); is tests-python-requirements.txt installed?\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let parsed = serde_json::from_str(&stdout);
    assert!(parsed.is_ok(), "python3 {script} printed no JSON: {stdout}");
    parsed.unwrap()
}

/// `hawk_client.py request` for `key`: mohawk signs, urllib sends; returns the whole report.
fn mohawk(s: &TestServer, key: &Auth, method: &str, path: &str, extra: &[&str]) -> Value {
    let (id, secret) = creds(key);
    let mut args =
        vec!["request", "--base", &s.base, "--id", &id, "--key", &secret, "--method", method, "--path", path];
    args.extend_from_slice(extra);
    python("hawk_client.py", &args)
}

/// The first response of a `mohawk` report.
fn first(report: &Value) -> &Value {
    &report["responses"][0]
}

/// `hawk_client.py bewit`: mohawk makes the bewit, urllib sends it.
fn mohawk_bewit(s: &TestServer, key: &Auth, path: &str, extra: &[&str]) -> Value {
    let (id, secret) = creds(key);
    let mut args = vec!["bewit", "--base", &s.base, "--id", &id, "--key", &secret, "--path", path];
    args.extend_from_slice(extra);
    python("hawk_client.py", &args)
}

/// `hawk_client.py sign`: only the Authorization header mohawk makes.
fn mohawk_sign(key: &Auth, method: &str, url: &str, extra: &[&str]) -> String {
    let (id, secret) = creds(key);
    let mut args = vec!["sign", "--id", &id, "--key", &secret, "--method", method, "--url", url];
    args.extend_from_slice(extra);
    python("hawk_client.py", &args)["authorization"].as_str().unwrap().to_owned()
}

/// PyJWT's verdict on a token, with the JWKS fetched from the server.
fn pyjwt(s: &TestServer, token: &str) -> Value {
    python("jwt_verify.py", &["--base", &s.base, "--token", token])
}

/// Asserts a response reported by a Python script is an RFC 9457 problem with this status and code.
#[track_caller]
fn assert_py_problem(r: &Value, status: u16, code: &str) {
    assert_eq!(r["status"], status, "{r}");
    assert_eq!(r["content_type"], "application/problem+json", "{r}");
    assert_eq!(r["body"]["code"], code, "{r}");
    assert_eq!(r["body"]["status"], status, "{r}");
    for field in ["type", "title", "detail"] {
        assert!(r["body"][field].is_string(), "problem lacks {field}: {r}");
    }
}

/// The host and port the server listens on, as a client addresses it.
fn authority(s: &TestServer) -> (String, u16) {
    let hostport = s.base.strip_prefix("http://").unwrap();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

static NONCES: AtomicU64 = AtomicU64::new(0);

fn fresh_nonce() -> String {
    format!("rs{}x{}", NONCES.fetch_add(1, Ordering::Relaxed), std::process::id())
}

/// A Hawk request signed by the Rust test signer (`keyward_core::hawk`), for crafted cases.
#[derive(Clone, Debug)]
struct HawkReq {
    id: String,
    key: String,
    method: String,
    resource: String,
    host: String,
    port: u16,
    ts: String,
    nonce: String,
    hash: Option<String>,
    ext: Option<String>,
    app: Option<String>,
}

impl HawkReq {
    fn new(s: &TestServer, key: &Auth, method: &str, resource: &str) -> Self {
        let (id, secret) = creds(key);
        let (host, port) = authority(s);
        Self {
            id,
            key: secret,
            method: method.to_owned(),
            resource: resource.to_owned(),
            host,
            port,
            ts: now().to_string(),
            nonce: fresh_nonce(),
            hash: None,
            ext: None,
            app: None,
        }
    }

    /// Adds the payload hash of `body` sent as `content_type`.
    fn with_payload(mut self, content_type: &str, body: &str) -> Self {
        self.hash = Some(hawk::payload_hash(Algorithm::Sha256, Some(content_type), body.as_bytes()));
        self
    }

    fn normalized(&self) -> String {
        let input = MacInput {
            ts: &self.ts,
            nonce: &self.nonce,
            method: &self.method,
            resource: &self.resource,
            host: &self.host,
            port: self.port,
            hash: self.hash.as_deref(),
            ext: self.ext.as_deref(),
            app: self.app.as_deref(),
            dlg: None,
        };
        hawk::normalized_string(MacKind::Header, &input)
    }

    fn mac(&self) -> String {
        hawk::mac(Algorithm::Sha256, self.key.as_bytes(), &self.normalized())
    }

    /// `Hawk id, ts, nonce, [hash], [ext], mac, [app]` in the reference's order, with `mac` as given.
    fn header_with_mac(&self, mac: &str) -> String {
        let mut h = format!(r#"Hawk id="{}", ts="{}", nonce="{}""#, self.id, self.ts, self.nonce);
        if let Some(hash) = &self.hash {
            h.push_str(&format!(r#", hash="{hash}""#));
        }
        if let Some(ext) = &self.ext {
            h.push_str(&format!(r#", ext="{ext}""#));
        }
        h.push_str(&format!(r#", mac="{mac}""#));
        if let Some(app) = &self.app {
            h.push_str(&format!(r#", app="{app}""#));
        }
        h
    }

    fn header(&self) -> String {
        self.header_with_mac(&self.mac())
    }
}

/// Sends a request with an explicit Authorization (and optionally Host) header.
async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Response {
    let client = reqwest::Client::new();
    let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", s.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some((content_type, body)) = body {
        req = req.header("content-type", content_type).body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Response { status, headers, body, text }
}

async fn send_hawk(s: &TestServer, req: &HawkReq) -> Response {
    send(s, &req.method.to_uppercase(), &req.resource, &[("authorization", &req.header())], None).await
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Buys a token with HTTP Basic client authentication; returns the 200 body.
async fn token_for(s: &TestServer, key: &Auth, form: &str) -> Value {
    s.post_raw(TOKEN, key, FORM, form).await.expect(200)
}

async fn access_token(s: &TestServer, key: &Auth) -> String {
    token_for(s, key, CC).await["access_token"].as_str().unwrap().to_owned()
}

/// Asserts an RFC 6749 §5.2 error response.
#[track_caller]
fn assert_oauth_error(r: &Response, status: u16, error: &str) {
    assert_eq!(r.status.as_u16(), status, "{r:?}");
    assert_eq!(r.body["error"], error, "{r:?}");
    assert!(header(r, "content-type").starts_with("application/json"), "{r:?}");
    assert_eq!(header(r, "cache-control"), "no-store", "{r:?}");
    assert!(r.body.get("access_token").is_none());
}

async fn verify(s: &TestServer, caller: &Auth, body: Value) -> Value {
    s.post("/v1/verify", caller, body).await.expect(200)
}

fn verify_refused(r: &Response) -> bool {
    r.status.as_u16() == 200 && r.body["valid"] == false
}

/// Checks that a key's token, secret, Hawk and token purchase are all refused now, on an
/// in-process server whose clock has not moved since the change: no time passes, so "within
/// one second" (API.md §Token endpoint) holds however loaded the machine is.
async fn all_refused_at_once(s: &TestServer, key: &Auth, token: &str) -> Vec<Response> {
    let bearer = Auth::Bearer(token.to_owned());
    let mut out = Vec::new();
    let r = s.get("/v1/me", &bearer).await;
    assert_eq!(r.status.as_u16(), 401, "token at /v1/me: {r:?}");
    out.push(r);
    let r = s.post("/v1/verify", &s.admin, json!({"token": token})).await;
    assert!(verify_refused(&r), "token at /v1/verify: {r:?}");
    out.push(r);
    let r = s.get("/v1/me", key).await;
    assert_eq!(r.status.as_u16(), 401, "secret at /v1/me: {r:?}");
    out.push(r);
    let r = send_hawk(s, &HawkReq::new(s, key, "GET", "/v1/me")).await;
    assert_eq!(r.status.as_u16(), 401, "Hawk at /v1/me: {r:?}");
    out.push(r);
    let r = s.post_raw(TOKEN, key, FORM, CC).await;
    assert_eq!(r.status.as_u16(), 401, "token purchase: {r:?}");
    out.push(r);
    out
}

// ---------------------------------------------------------------- the Rust signer itself

#[test]
fn the_rust_test_signer_reproduces_hawk_md_vectors() {
    // HAWK.md §2.2 spec-get and derived-json-post-443, §2.4 payload hashes, §2.5 tsm.
    let spec_get = HawkReq {
        id: "dh37fgj492je".into(),
        key: "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn".into(),
        method: "GET".into(),
        resource: "/resource/1?b=1&a=2".into(),
        host: "example.com".into(),
        port: 8000,
        ts: "1353832234".into(),
        nonce: "j4h3g2".into(),
        hash: None,
        ext: Some("some-app-ext-data".into()),
        app: None,
    };
    assert_eq!(spec_get.mac(), "6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE=");
    let json_post = HawkReq {
        id: "123456".into(),
        method: "post".into(),
        resource: "/v1/keys".into(),
        host: "api.example.com".into(),
        port: 443,
        ext: None,
        ..spec_get.clone()
    }
    .with_payload("Application/JSON; charset=utf-8", r#"{"name":"test-key"}"#);
    assert_eq!(json_post.hash.as_deref(), Some("TKR9hiOYPTgeEwXV0Quk8pnYNFM+D0UPZqOCx03A+DI="));
    assert_eq!(json_post.mac(), "zDrm/7LoaemsduV371hKES1vogOpgp7pDLWTRfhIX3U=");
    assert_eq!(
        hawk::timestamp_mac(Algorithm::Sha256, spec_get.key.as_bytes(), 1_353_832_234),
        "2mw1eh/qXzl0wJZ/E6XvBhRMEJN7L3j8AyMA8eItEb0="
    );
}

// ---------------------------------------------------------------- Hawk with mohawk

#[tokio::test]
async fn mohawk_get_and_post_with_payload_hash_succeed_and_server_authorization_verifies() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "mohawk"})).await;
    let id = key["id"].as_str().unwrap();

    // GET without a hash (requests-hawk always_hash_content=False style).
    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--no-hash"]);
    let r = first(&report);
    assert_eq!(r["status"], 200, "{report}");
    assert_eq!(r["body"]["auth_method"], "hawk");
    assert_eq!(r["body"]["key"]["id"], id);
    let sa = r["server_authorization"].as_str().expect("Server-Authorization on a Hawk response");
    assert!(sa.starts_with("Hawk mac=\"") && sa.contains(", hash=\""), "{sa}");
    assert_eq!(r["response_verified"], true, "mohawk accept_response: {report}");
    assert_eq!(r["tampered_response_rejected"], true, "the response hash covers the body: {report}");

    // GET carrying the hash of the empty body (mohawk's default), with ext and a query string.
    let report = mohawk(&s, &auth, "GET", "/v1/keys?per_page=10&page=1", &["--ext", "some-app-ext-data"]);
    let r = first(&report);
    assert!(
        report["authorization"].as_str().unwrap().contains(r#"hash="B0weSUXsMcb5UhL41FZbrUJCAotzSI3HawE1NPLRUz8=""#),
        "{report}"
    );
    assert_eq!(r["status"], 200, "{report}");
    assert_eq!(r["body"]["per_page"], 10);
    assert_eq!(r["response_verified"], true, "{report}");

    // POST JSON with a payload hash; the charset parameter is not hashed.
    let body = json!({"name": "made over hawk"}).to_string();
    let report =
        mohawk(&s, &auth, "POST", "/v1/keys", &["--body", &body, "--content-type", "application/json; charset=utf-8"]);
    let r = first(&report);
    assert!(report["authorization"].as_str().unwrap().contains("hash=\""), "{report}");
    assert_eq!(r["status"], 201, "{report}");
    assert_eq!(r["body"]["key"]["name"], "made over hawk");
    assert_eq!(r["response_verified"], true, "mohawk accept_response (MAC and payload hash): {report}");
    assert_eq!(r["tampered_response_rejected"], true);
}

#[tokio::test]
async fn mohawk_sha1_credentials_work_for_get_and_post() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "sha1 client"})).await;
    let (_, other_secret) = creds(&s.create_key(json!({"name": "checked"})).await.1);

    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--alg", "sha1"]);
    let r = first(&report);
    let authz = report["authorization"].as_str().unwrap();
    let mac = authz.split("mac=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(mac.len(), 28, "a sha1 MAC: {authz}");
    assert_eq!(r["status"], 200, "{report}");
    assert_eq!(r["body"]["key"]["id"], key["id"]);
    assert_eq!(r["response_verified"], true, "sha1 Server-Authorization verifies: {report}");

    let body = json!({"secret": other_secret}).to_string();
    let report = mohawk(
        &s,
        &auth,
        "POST",
        "/v1/verify",
        &["--alg", "sha1", "--body", &body, "--content-type", "application/json"],
    );
    let r = first(&report);
    assert_eq!(r["status"], 200, "{report}");
    assert_eq!(r["body"]["valid"], true);
    assert_eq!(r["response_verified"], true, "{report}");
}

#[tokio::test]
async fn mohawk_post_json_without_hash_and_lower_case_method_are_accepted() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "hawknet"})).await;
    let (checked, checked_auth) = s.create_key(json!({"name": "checked"})).await;
    let (_, checked_secret) = creds(&checked_auth);

    // HawkNet / ZTPKI: method given in lower case, no hash on a JSON POST, a 28-char base64 nonce.
    let body = json!({"secret": checked_secret}).to_string();
    let nonce = "aB3+dE5/gH7iJ9kL1mN2oP4qR6s=";
    let report = mohawk(
        &s,
        &auth,
        "post",
        "/v1/verify",
        &["--no-hash", "--nonce", nonce, "--body", &body, "--content-type", "application/json"],
    );
    let r = first(&report);
    let authz = report["authorization"].as_str().unwrap();
    assert!(!authz.contains("hash="), "{authz}");
    assert!(authz.contains(nonce), "{authz}");
    assert_eq!(r["status"], 200, "{report}");
    assert_eq!(r["body"]["valid"], true);
    assert_eq!(r["body"]["key_id"], checked["id"]);
    assert_eq!(r["response_verified"], true, "{report}");

    // Lower-case method with a hash too.
    let report = mohawk(&s, &auth, "get", "/v1/me", &[]);
    assert_eq!(first(&report)["status"], 200, "{report}");
}

// ---------------------------------------------------------------- Hawk refusals

#[tokio::test]
async fn hawk_with_a_wrong_key_or_an_unknown_id_is_refused_alike() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "target"})).await;
    let id = key["id"].as_str().unwrap();
    let (_, other_secret) = creds(&s.create_key(json!({"name": "other"})).await.1);
    let (_, secret) = creds(&auth);

    let wrong_key = Auth::basic(id, &other_secret);
    let r = mohawk(&s, &wrong_key, "GET", "/v1/me", &[]);
    assert_py_problem(first(&r), 401, "invalid_credentials");
    assert!(first(&r)["www_authenticate"].as_str().unwrap().contains("Hawk"), "{r}");
    assert!(first(&r)["server_authorization"].is_null(), "no Server-Authorization on a refusal");

    let unknown = Auth::basic("kw_doesnotexist000000000", &secret);
    let r = mohawk(&s, &unknown, "GET", "/v1/me", &[]);
    assert_py_problem(first(&r), 401, "invalid_credentials");
    assert!(first(&r)["www_authenticate"].as_str().unwrap().contains("Hawk"), "{r}");

    // A MAC off by one character.
    let req = HawkReq::new(&s, &auth, "GET", "/v1/me");
    let mut mac = req.mac();
    let c = mac.remove(0);
    mac.insert(0, if c == 'A' { 'B' } else { 'A' });
    send(&s, "GET", "/v1/me", &[("authorization", &req.header_with_mac(&mac))], None)
        .await
        .problem(401, "invalid_credentials");
    // The same request correctly signed passes (a fresh nonce).
    let req = HawkReq { nonce: fresh_nonce(), ..req };
    send_hawk(&s, &req).await.expect(200);
}

#[tokio::test]
async fn hawk_stale_timestamp_gets_a_challenge_whose_tsm_verifies() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "skewed"})).await;
    let (_, secret) = creds(&auth);

    for offset in ["-120", "120"] {
        let report = mohawk(&s, &auth, "GET", "/v1/me", &["--ts-offset", offset]);
        let r = first(&report);
        assert_py_problem(r, 401, "invalid_credentials");
        let www = r["www_authenticate"].as_str().unwrap();
        assert!(www.starts_with("Hawk ts=\"") && www.contains(", tsm=\""), "{www}");
        assert!(www.ends_with(r#"error="Stale timestamp""#), "{www}");
        let stale = &r["stale"];
        assert_eq!(stale["tsm_valid"], true, "mohawk calculate_ts_mac agrees: {report}");
        let drift = stale["ts"].as_i64().unwrap() - stale["local_now"].as_i64().unwrap();
        assert!(drift.abs() <= 2, "the challenge carries the server's time: {report}");
    }

    // sha1 credentials get a sha1 tsm.
    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--alg", "sha1", "--ts-offset", "-120"]);
    assert_eq!(first(&report)["stale"]["tsm_valid"], true, "{report}");

    // Recomputed here: tsm = base64(HMAC-SHA256(secret, "hawk.1.ts\n<ts>\n")).
    let req = HawkReq { ts: (now() - 120).to_string(), ..HawkReq::new(&s, &auth, "GET", "/v1/me") };
    let r = send_hawk(&s, &req).await;
    let www = header(&r, "www-authenticate").to_owned();
    r.problem(401, "invalid_credentials");
    let attr = |name: &str| www.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let ts: i64 = attr("ts").parse().unwrap();
    assert!((ts - now()).abs() <= 2, "{www}");
    assert_eq!(attr("tsm"), hawk::timestamp_mac(Algorithm::Sha256, secret.as_bytes(), ts), "{www}");

    // A stale request with a bad MAC learns no time.
    let (_, other) = creds(&s.create_key(json!({"name": "other"})).await.1);
    let bad = HawkReq { key: other, ..req.clone() };
    let r = send_hawk(&s, &HawkReq { nonce: fresh_nonce(), ..bad }).await;
    assert!(!header(&r, "www-authenticate").contains("tsm"), "{:?}", r.headers);
    r.problem(401, "invalid_credentials");

    // +30 s is inside the 60 s window.
    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--ts-offset", "30"]);
    assert_eq!(first(&report)["status"], 200, "{report}");
    // So is -30 s, but a time before the server started (it started moments ago) gets the
    // challenge (a request signed then may have been seen by the process before), whose ts works.
    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--ts-offset", "-30"]);
    if first(&report)["status"] != 200 {
        assert_eq!(first(&report)["stale"]["tsm_valid"], true, "{report}");
        let server_ts = first(&report)["stale"]["ts"].as_i64().unwrap().to_string();
        let report = mohawk(&s, &auth, "GET", "/v1/me", &["--ts", &server_ts]);
        assert_eq!(first(&report)["status"], 200, "{report}");
    }
}

#[tokio::test]
async fn hawk_replayed_nonce_is_refused_but_the_same_nonce_under_another_key_is_not() {
    let (s, _) = server().await;
    let (_, a) = s.create_key(json!({"name": "a"})).await;
    let (_, b) = s.create_key(json!({"name": "b"})).await;

    let report = mohawk(&s, &a, "GET", "/v1/me", &["--nonce", "once-only", "--repeat", "2"]);
    assert_eq!(report["responses"][0]["status"], 200, "{report}");
    assert_py_problem(&report["responses"][1], 401, "invalid_credentials");

    // A replay with a POST body and hash is refused as well.
    let body = json!({"secret": "x"}).to_string();
    let report = mohawk(
        &s,
        &a,
        "POST",
        "/v1/verify",
        &["--nonce", "post-once", "--repeat", "2", "--body", &body, "--content-type", "application/json"],
    );
    assert_eq!(report["responses"][0]["status"], 200, "{report}");
    assert_py_problem(&report["responses"][1], 401, "invalid_credentials");

    let report = mohawk(&s, &b, "GET", "/v1/me", &["--nonce", "once-only"]);
    assert_eq!(first(&report)["status"], 200, "nonces are per key: {report}");
}

#[tokio::test]
async fn hawk_signed_for_another_host_or_port_is_refused() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "pinned"})).await;
    let (host, port) = authority(&s);

    for other in [
        format!("http://evil.example:{port}"),
        format!("http://{host}:{}", port + 1),
        format!("http://localhost:{port}"),
    ] {
        let report = mohawk(&s, &auth, "GET", "/v1/me", &["--sign-base", &other]);
        assert_py_problem(first(&report), 401, "invalid_credentials");
    }
    // Signed for this server but sent with another Host header.
    let req = HawkReq::new(&s, &auth, "GET", "/v1/me");
    let evil = format!("evil.example:{port}");
    send(&s, "GET", "/v1/me", &[("authorization", &req.header()), ("host", &evil)], None)
        .await
        .problem(401, "invalid_credentials");
    // Control: signed for the Host actually sent.
    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--sign-base", &s.base]);
    assert_eq!(first(&report)["status"], 200, "{report}");
}

/// HAWK.md §4.3 ("Pin the expected host:port in config, or allow-list it") and §5 must-reject 15:
/// a request whose MAC is valid for the Host header it carries, when that host is not this service's.
#[tokio::test]
async fn hawk_for_a_host_that_is_not_this_service_is_refused() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "pinned"})).await;
    let (_, port) = authority(&s);
    let req = HawkReq { host: "evil.example".into(), ..HawkReq::new(&s, &auth, "GET", "/v1/me") };
    let host = format!("evil.example:{port}");
    let r = send(&s, "GET", "/v1/me", &[("authorization", &req.header()), ("host", &host)], None).await;
    assert!(
        matches!(r.status.as_u16(), 400 | 401),
        "a Hawk MAC bound to Host {host} was accepted by the service at {}: {r:?}",
        s.base
    );
}

#[tokio::test]
async fn hawk_header_variants_that_clients_send_are_accepted() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "variants"})).await;
    let variants: [fn(&HawkReq) -> String; 3] = [
        // Lower-case scheme.
        |r| r.header().replacen("Hawk ", "hawk ", 1),
        // Trailing comma and extra spaces.
        |r| format!("{},", r.header().replace(", ", " ,   ")),
        // rust-hawk's order: id, ts, nonce, mac, hash.
        |r| {
            let hash = r.hash.as_deref().unwrap();
            format!(r#"Hawk id="{}", ts="{}", nonce="{}", mac="{}", hash="{hash}""#, r.id, r.ts, r.nonce, r.mac())
        },
    ];
    for (i, variant) in variants.iter().enumerate() {
        let req = HawkReq::new(&s, &auth, "GET", "/v1/me").with_payload("", "");
        let r = send(&s, "GET", "/v1/me", &[("authorization", &variant(&req))], None).await;
        assert_eq!(r.status.as_u16(), 200, "variant {i}: {} -> {r:?}", variant(&req));
    }
}

#[tokio::test]
async fn hawk_payload_tampering_is_refused() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "payload"})).await;
    let signed = json!({"secret": "kws_signed"}).to_string();
    let sent = json!({"secret": "kws_swapped"}).to_string();

    let report = mohawk(
        &s,
        &auth,
        "POST",
        "/v1/verify",
        &["--body", &signed, "--content-type", "application/json", "--send-body", &sent],
    );
    assert_py_problem(first(&report), 401, "invalid_credentials");

    let report = mohawk(
        &s,
        &auth,
        "POST",
        "/v1/verify",
        &["--body", &signed, "--content-type", "application/json", "--send-content-type", "application/vnd.other+json"],
    );
    assert_py_problem(first(&report), 401, "invalid_credentials");

    // A hash on a request whose body is empty must match the empty body.
    let req = HawkReq::new(&s, &auth, "GET", "/v1/me").with_payload("application/json", "{}");
    send_hawk(&s, &req).await.problem(401, "invalid_credentials");

    // Control: the untampered request passes.
    let report = mohawk(&s, &auth, "POST", "/v1/verify", &["--body", &signed, "--content-type", "application/json"]);
    assert_eq!(first(&report)["status"], 200, "{report}");
}

#[tokio::test]
async fn hawk_malformed_headers_are_refused_even_with_a_valid_mac() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "strict"})).await;

    // Duplicate attribute: the MAC is right, the header is not.
    let req = HawkReq::new(&s, &auth, "GET", "/v1/me");
    let dup = req.header().replacen("Hawk ", &format!(r#"Hawk id="{}", "#, req.id), 1);
    send(&s, "GET", "/v1/me", &[("authorization", &dup)], None).await.problem(401, "invalid_credentials");
    let dup_nonce = req.header().replacen(", mac=", r#", nonce="another", mac="#, 1);
    send(&s, "GET", "/v1/me", &[("authorization", &dup_nonce)], None).await.problem(401, "invalid_credentials");

    // ts="abc" with a MAC computed over "abc" (the reference's NaN quirk), by mohawk and by hand.
    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--ts", "abc"]);
    assert!(report["authorization"].as_str().unwrap().contains(r#"ts="abc""#), "{report}");
    assert_py_problem(first(&report), 401, "invalid_credentials");
    for ts in ["abc", "", "1e9", "-5", &format!("{}.5", now()), &format!(" {}", now())] {
        let req = HawkReq { ts: ts.to_owned(), ..HawkReq::new(&s, &auth, "GET", "/v1/me") };
        send_hawk(&s, &req).await.problem(401, "invalid_credentials");
    }

    // A MAC over a lower-case method: the normalized method is always upper case.
    let req = HawkReq::new(&s, &auth, "GET", "/v1/me");
    let lower = req.normalized().replacen("\nGET\n", "\nget\n", 1);
    let mac = hawk::mac(Algorithm::Sha256, req.key.as_bytes(), &lower);
    send(&s, "GET", "/v1/me", &[("authorization", &req.header_with_mac(&mac))], None)
        .await
        .problem(401, "invalid_credentials");

    // Unknown attribute, and Oz app (refused: no delegation in Keyward).
    let req = HawkReq::new(&s, &auth, "GET", "/v1/me");
    let unknown = req.header().replacen(", mac=", r#", x="3", mac="#, 1);
    send(&s, "GET", "/v1/me", &[("authorization", &unknown)], None).await.problem(401, "invalid_credentials");
    let app = HawkReq { app: Some("my-app".into()), ..HawkReq::new(&s, &auth, "GET", "/v1/me") };
    send_hawk(&s, &app).await.problem(401, "invalid_credentials");

    // A header over 4096 characters (here through a long ext the MAC covers).
    let long = HawkReq { ext: Some("x".repeat(4100)), ..HawkReq::new(&s, &auth, "GET", "/v1/me") };
    send_hawk(&s, &long).await.problem(401, "invalid_credentials");

    // Control: the same signer, well-formed, passes; so does an empty ext (old HawkNet).
    let ok = HawkReq { ext: Some(String::new()), ..HawkReq::new(&s, &auth, "GET", "/v1/me") };
    send_hawk(&s, &ok).await.expect(200);
}

#[tokio::test]
async fn org_hawk_require_payload_hash_refuses_hashless_requests() {
    let (s, org) = server().await;
    let (_, auth) = s.create_key(json!({"name": "hashing"})).await;
    let patched =
        s.patch(&format!("/v1/orgs/{org}"), &s.admin, json!({"hawk_require_payload_hash": true})).await.expect(200);
    assert_eq!(patched["hawk_require_payload_hash"], true);

    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--no-hash"]);
    assert_py_problem(first(&report), 401, "invalid_credentials");
    let body = json!({"secret": "x"}).to_string();
    let report =
        mohawk(&s, &auth, "POST", "/v1/verify", &["--no-hash", "--body", &body, "--content-type", "application/json"]);
    assert_py_problem(first(&report), 401, "invalid_credentials");

    // With a hash (of the empty body on GET) the same requests pass.
    let report = mohawk(&s, &auth, "GET", "/v1/me", &[]);
    assert_eq!(first(&report)["status"], 200, "{report}");
    let report = mohawk(&s, &auth, "POST", "/v1/verify", &["--body", &body, "--content-type", "application/json"]);
    assert_eq!(first(&report)["status"], 200, "{report}");

    s.patch(&format!("/v1/orgs/{org}"), &s.admin, json!({"hawk_require_payload_hash": false})).await.expect(200);
    let report = mohawk(&s, &auth, "GET", "/v1/me", &["--no-hash"]);
    assert_eq!(first(&report)["status"], 200, "{report}");
}

#[tokio::test]
async fn hawk_on_a_locked_key_is_key_locked_and_off_network_is_ip_not_allowed() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "to lock"})).await;
    let id = key["id"].as_str().unwrap();
    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    let report = mohawk(&s, &auth, "GET", "/v1/me", &[]);
    assert_py_problem(first(&report), 401, "key_locked");

    let (_, outside) = s.create_key(json!({"name": "net", "network_restrictions": ["203.0.113.0/24"]})).await;
    let report = mohawk(&s, &outside, "GET", "/v1/me", &[]);
    assert_py_problem(first(&report), 401, "ip_not_allowed");

    let (_, inside) = s.create_key(json!({"name": "lo", "network_restrictions": ["127.0.0.0/8"]})).await;
    let report = mohawk(&s, &inside, "GET", "/v1/me", &[]);
    assert_eq!(first(&report)["status"], 200, "{report}");
}

// ---------------------------------------------------------------- bewits

#[tokio::test]
async fn mohawk_bewit_authorizes_a_get_with_or_without_padding() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "bewit"})).await;

    let report = mohawk_bewit(&s, &auth, "/v1/me", &["--ttl", "60"]);
    assert_eq!(report["status"], 200, "{report}");
    assert_eq!(report["body"]["key"]["id"], key["id"]);
    assert_eq!(report["body"]["auth_method"], "hawk");

    let report = mohawk_bewit(&s, &auth, "/v1/me", &["--ttl", "60", "--strip-padding", "--ext", "shared-link"]);
    assert!(!report["bewit"].as_str().unwrap().ends_with('='), "{report}");
    assert_eq!(report["status"], 200, "{report}");

    // With other query parameters (the bewit is appended with &).
    let report = mohawk_bewit(&s, &auth, "/v1/keys?per_page=10", &["--ttl", "60"]);
    assert_eq!(report["status"], 200, "{report}");
    assert_eq!(report["body"]["per_page"], 10);
}

#[tokio::test]
async fn expired_bewit_and_bewit_on_post_are_refused() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "bewit"})).await;

    let report = mohawk_bewit(&s, &auth, "/v1/me", &["--ttl", "-5"]);
    assert_py_problem(&report, 401, "invalid_credentials");

    // Bewits cannot be revoked on their own, so they may run at most seven days ahead.
    let report = mohawk_bewit(&s, &auth, "/v1/me", &["--ttl", &(8 * 86_400).to_string()]);
    assert_py_problem(&report, 401, "invalid_credentials");
    let report = mohawk_bewit(&s, &auth, "/v1/me", &["--ttl", &(6 * 86_400).to_string()]);
    assert_eq!(report["status"], 200, "{report}");

    let body = json!({"secret": "x"}).to_string();
    let report = mohawk_bewit(&s, &auth, "/v1/verify", &["--ttl", "60", "--http-method", "POST", "--body", &body]);
    assert_py_problem(&report, 401, "invalid_credentials");

    // A bewit of a locked key is refused too.
    let id = key["id"].as_str().unwrap();
    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    let report = mohawk_bewit(&s, &auth, "/v1/me", &["--ttl", "60"]);
    assert_py_problem(&report, 401, "key_locked");
}

/// HAWK.md §1.10 step 5 and §4.9: "Refuse them when an Authorization header is also present"
/// (the reference answers 400 "Multiple authentications").
#[tokio::test]
async fn bewit_with_an_authorization_header_too_is_refused() {
    let (s, _) = server().await;
    let (bewit_key, bewit_auth) = s.create_key(json!({"name": "bewit"})).await;
    let (other_id, other_secret) = creds(&s.create_key(json!({"name": "header"})).await.1);
    let basic = common::basic_header(&other_id, &other_secret);
    let report = mohawk_bewit(&s, &bewit_auth, "/v1/me", &["--ttl", "60", "--authorization", &basic]);
    let status = report["status"].as_u64().unwrap();
    assert!(
        status == 400 || status == 401,
        "a request carrying both a bewit (key {}) and an Authorization header must be refused; got {status}, \
         authenticated as {}",
        bewit_key["id"],
        report["body"]["key"]["id"]
    );
}

// ---------------------------------------------------------------- OAuth 2.0 client credentials

#[tokio::test]
async fn token_with_basic_or_body_client_auth_verifies_with_pyjwt_against_jwks() {
    let (s, _) = server().await;
    let (key, auth) = s
        .create_key(json!({"name": "oauth client", "reauth_timeout_s": 300, "scopes": [grant("keys", "read"), grant("verify", "read")]}))
        .await;
    let (id, secret) = creds(&auth);
    let before = now();

    let basic = s.post_raw(TOKEN, &auth, FORM, CC).await;
    assert_eq!(header(&basic, "cache-control"), "no-store", "{basic:?}");
    assert_eq!(header(&basic, "pragma"), "no-cache", "{basic:?}");
    assert!(header(&basic, "content-type").starts_with("application/json"));
    let body_form = format!("{CC}&client_id={id}&client_secret={secret}");
    let in_body = s.post_raw(TOKEN, &Auth::None, FORM, &body_form).await;
    assert_eq!(header(&in_body, "cache-control"), "no-store", "{in_body:?}");
    let mut jtis = BTreeSet::new();
    for resp in [basic, in_body] {
        let body = resp.expect(200);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 300, "the key's reauth_timeout_s");
        assert_eq!(scope_set(&body["scope"]), set(&key["permissions"]), "{body}");
        let token = body["access_token"].as_str().unwrap();

        let v = pyjwt(&s, token);
        assert_eq!(v["valid"], true, "PyJWT verification: {v}");
        assert_eq!(v["header"]["alg"], "EdDSA");
        assert_eq!(v["header"]["typ"], "at+jwt");
        let kid = v["header"]["kid"].as_str().unwrap();
        assert!(!kid.is_empty());
        assert_eq!(v["jwk_kid"], kid);
        let claims = &v["claims"];
        assert_eq!(claims["iss"], s.base.as_str());
        assert_eq!(claims["aud"], s.base.as_str());
        assert_eq!(claims["sub"], key["owner_id"]);
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["scope"], body["scope"]);
        let iat = claims["iat"].as_i64().unwrap();
        assert!(iat >= before - 1 && iat <= now() + 1, "{claims}");
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
        let jti = claims["jti"].as_str().unwrap();
        assert!(!jti.is_empty());
        jtis.insert(jti.to_owned());

        // The verification is real: a token with another signature fails it.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let v = pyjwt(&s, &format!("{signed}.{}", "A".repeat(86)));
        assert_eq!(v["valid"], false, "{v}");
    }
    assert_eq!(jtis.len(), 2, "every token has its own jti");

    let jwks = s.get("/.well-known/jwks.json", &Auth::None).await.expect(200);
    let k = &jwks["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(k.get("d").is_none(), "the JWKS never carries the private key");
}

#[tokio::test]
async fn a_requested_scope_narrows_and_never_widens() {
    let (s, _) = server().await;
    let (_, reader) = s.create_key(json!({"name": "reader", "scopes": [grant("keys", "read")]})).await;

    let narrowed = token_for(&s, &reader, &format!("{CC}&scope=keyward:keys:write")).await;
    assert_eq!(narrowed["scope"], "keyward:keys:read", "write asked, read held: read granted");
    let mixed = token_for(&s, &reader, &format!("{CC}&scope=keyward:keys:read%20keyward:users:write")).await;
    assert_eq!(mixed["scope"], "keyward:keys:read", "never more than the key holds");
    let r = s.post_raw(TOKEN, &reader, FORM, &format!("{CC}&scope=keyward:users:read")).await;
    assert_oauth_error(&r, 400, "invalid_scope");
    let r = s.post_raw(TOKEN, &reader, FORM, &format!("{CC}&scope=not-a-permission")).await;
    assert_oauth_error(&r, 400, "invalid_scope");

    // A broad key asking for less gets less.
    let (_, broad) = s.create_key(json!({"name": "broad"})).await;
    let small = token_for(&s, &broad, &format!("{CC}&scope=keyward:keys:read")).await;
    assert_eq!(small["scope"], "keyward:keys:read");
    let v = pyjwt(&s, small["access_token"].as_str().unwrap());
    assert_eq!(v["claims"]["scope"], "keyward:keys:read", "{v}");
}

#[tokio::test]
async fn a_token_is_a_bearer_credential_limited_to_its_scope() {
    let (s, _) = server().await;
    let (key, reader) = s.create_key(json!({"name": "reader", "scopes": [grant("keys", "read")]})).await;
    let token = Auth::Bearer(access_token(&s, &reader).await);

    let me = s.get("/v1/me", &token).await.expect(200);
    assert_eq!(me["auth_method"], "token");
    assert_eq!(me["key"]["id"], key["id"]);
    assert_eq!(me["permissions"], json!(["keyward:keys:read"]));
    s.get("/v1/keys", &token).await.expect(200);
    s.post("/v1/keys", &token, json!({"name": "nope"})).await.problem(403, "insufficient_permissions");

    // The token holds at most what its key holds now.
    let id = key["id"].as_str().unwrap();
    s.patch(&format!("/v1/keys/{id}"), &s.admin, json!({"scopes": [grant("verify", "read")]})).await.expect(200);
    let me = s.get("/v1/me", &token).await.expect(200);
    assert_eq!(me["permissions"], json!([]), "{me}");
    s.get("/v1/keys", &token).await.problem(403, "insufficient_permissions");

    // A token narrowed below its key cannot do what the key could.
    let (_, broad) = s.create_key(json!({"name": "broad"})).await;
    let small = token_for(&s, &broad, &format!("{CC}&scope=keyward:keys:read")).await;
    let small = Auth::Bearer(small["access_token"].as_str().unwrap().to_owned());
    s.post("/v1/keys", &small, json!({"name": "nope"})).await.problem(403, "insufficient_permissions");
    s.post("/v1/keys", &broad, json!({"name": "yes"})).await.expect(201);

    // A token no longer authenticates once its signature is broken.
    let Auth::Bearer(t) = &token else { unreachable!() };
    let broken = format!("{}x", &t[..t.len() - 1]);
    s.get("/v1/me", &Auth::Bearer(broken)).await.problem(401, "invalid_credentials");
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "client"})).await;
    let (id, secret) = creds(&auth);

    let r = s.post_raw(TOKEN, &auth, FORM, "grant_type=password&username=a&password=b").await;
    assert_oauth_error(&r, 400, "unsupported_grant_type");
    let r = s.post_raw(TOKEN, &auth, FORM, "").await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = s.post_raw(TOKEN, &auth, FORM, "scope=keyward:keys:read").await;
    assert_oauth_error(&r, 400, "invalid_request");

    let bad = Auth::basic(&id, "kws_wrongwrongwrongwrongwrongwrongwrongwrongwrong");
    let r = s.post_raw(TOKEN, &bad, FORM, CC).await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert!(header(&r, "www-authenticate").starts_with("Basic"), "RFC 6749 §5.2: {:?}", r.headers);
    let r =
        s.post_raw(TOKEN, &Auth::None, FORM, &format!("{CC}&client_id={id}&client_secret=wrong-secret-wrong")).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = s
        .post_raw(TOKEN, &Auth::None, FORM, &format!("{CC}&client_id=kw_unknown00000000000000&client_secret={secret}"))
        .await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = s.post_raw(TOKEN, &Auth::None, FORM, CC).await;
    assert_oauth_error(&r, 401, "invalid_client");

    let r = s.post_raw(TOKEN, &auth, FORM, &format!("{CC}&client_id={id}&client_secret={secret}")).await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = s.post_raw(TOKEN, &auth, "application/json", r#"{"grant_type":"client_credentials"}"#).await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = s.post_raw(TOKEN, &auth, FORM, &format!("{CC}&grant_type=client_credentials")).await;
    assert_oauth_error(&r, 400, "invalid_request");

    // Control: the same client, asking properly.
    token_for(&s, &auth, CC).await;
}

#[tokio::test]
async fn a_locked_or_deleted_key_gets_no_token() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "lock me"})).await;
    let id = key["id"].as_str().unwrap();
    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    let r = s.post_raw(TOKEN, &auth, FORM, CC).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let (kid, ksecret) = creds(&auth);
    let r = s.post_raw(TOKEN, &Auth::None, FORM, &format!("{CC}&client_id={kid}&client_secret={ksecret}")).await;
    assert_oauth_error(&r, 401, "invalid_client");
    s.post(&format!("/v1/keys/{id}/unlock"), &s.admin, json!({})).await.expect(200);
    token_for(&s, &auth, CC).await;

    let (key, auth) = s.create_key(json!({"name": "delete me"})).await;
    let id = key["id"].as_str().unwrap();
    s.delete(&format!("/v1/keys/{id}"), &s.admin).await.expect(204);
    let r = s.post_raw(TOKEN, &auth, FORM, CC).await;
    assert_oauth_error(&r, 401, "invalid_client");
}

#[tokio::test]
async fn an_expired_key_gets_no_token_and_its_token_secret_and_hawk_stop() {
    let (s, _) = server_in_process().await;
    let at = (s.clock().now() + chrono::Duration::seconds(3)).to_rfc3339();
    let (key, auth) = s.create_key(json!({"name": "short-lived", "expires_at": at})).await;
    let token = access_token(&s, &auth).await;
    let (_, secret) = creds(&auth);
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);
    s.clock().advance(Duration::from_secs(2));
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);
    s.get("/v1/me", &auth).await.expect(200);

    // Past `expires_at`: a few seconds, so the Hawk signer's real clock stays within the skew.
    s.clock().advance(Duration::from_secs(2));
    let r = s.post_raw(TOKEN, &auth, FORM, CC).await;
    assert_oauth_error(&r, 401, "invalid_client");
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.problem(401, "key_expired");
    s.get("/v1/me", &auth).await.problem(401, "key_expired");
    send_hawk(&s, &HawkReq::new(&s, &auth, "GET", "/v1/me")).await.problem(401, "key_expired");
    for form in [json!({"token": token}), json!({"secret": secret})] {
        let v = verify(&s, &s.admin, form).await;
        assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("key_expired")), "{v}");
        assert_eq!(v["key_id"], key["id"]);
    }
}

/// RFC 6749 §2.3.1: Basic client credentials are form-encoded before base64; an imported
/// secret may hold any printable ASCII (API.md §Credentials) and is the Hawk key as-is.
#[tokio::test]
async fn an_imported_secret_with_special_characters_works_for_basic_body_and_hawk() {
    let (s, _) = server().await;
    let secret = r#"Imp0rted secret: 100% +plus/slash&x=1 "q" ~'"#;
    let created = s
        .post("/v1/keys/import", &s.admin, json!({"name": "imported", "id": "legacy.client-01", "secret": secret}))
        .await
        .expect(201);
    assert!(!created.to_string().contains("Imp0rted"), "an import never echoes the secret");
    let id = "legacy.client-01";
    let raw = Auth::basic(id, secret);

    let encoded = common::basic_header(&form_encode(id), &form_encode(secret));
    let r = send(&s, "POST", TOKEN, &[("authorization", &encoded)], Some((FORM, CC))).await;
    let token = r.expect(200)["access_token"].as_str().unwrap().to_owned();
    s.get("/v1/me", &Auth::Bearer(token)).await.expect(200);
    let form = format!("{CC}&client_id={}&client_secret={}", form_encode(id), form_encode(secret));
    s.post_raw(TOKEN, &Auth::None, FORM, &form).await.expect(200);

    s.get("/v1/me", &raw).await.expect(200);
    let report = mohawk(&s, &raw, "GET", "/v1/me", &[]);
    assert_eq!(first(&report)["status"], 200, "{report}");
    assert_eq!(first(&report)["response_verified"], true, "{report}");
}

/// application/x-www-form-urlencoded, as RFC 6749 Appendix B asks.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => char::from(b).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------- revocation

#[tokio::test]
async fn locking_a_key_stops_its_token_secret_and_hawk_within_one_second() {
    let (s, _) = server_in_process().await;
    let (key, auth) = s.create_key(json!({"name": "lock"})).await;
    let id = key["id"].as_str().unwrap();
    let token = access_token(&s, &auth).await;
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);
    send_hawk(&s, &HawkReq::new(&s, &auth, "GET", "/v1/me")).await.expect(200);

    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    let refusals = all_refused_at_once(&s, &auth, &token).await;
    assert_eq!(refusals[0].body["code"], "key_locked", "{:?}", refusals[0]);
    assert_eq!(refusals[1].body["code"], "key_locked", "{:?}", refusals[1]);
    assert_eq!(refusals[3].body["code"], "key_locked", "{:?}", refusals[3]);

    // A lock ends every token bought before it for good; the key itself works again.
    s.post(&format!("/v1/keys/{id}/unlock"), &s.admin, json!({})).await.expect(200);
    s.get("/v1/me", &Auth::Bearer(token)).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &auth).await.expect(200);
    let fresh = access_token(&s, &auth).await;
    s.get("/v1/me", &Auth::Bearer(fresh)).await.expect(200);
}

#[tokio::test]
async fn disabling_the_owner_ends_their_tokens_for_good() {
    let (s, _) = server().await;
    let user = s.post("/v1/users", &s.admin, json!({"name": "ops", "roles": ["auditor"]})).await.expect(201);
    let uid = user["id"].as_str().unwrap();
    let created = s.post(&format!("/v1/users/{uid}/keys"), &s.admin, json!({"name": "ops key"})).await.expect(201);
    let auth = Auth::basic(created["key"]["id"].as_str().unwrap(), created["secret"].as_str().unwrap());
    let token = access_token(&s, &auth).await;
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);
    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"status": "disabled"})).await.expect(200);
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.problem(401, "key_locked");
    s.patch(&format!("/v1/users/{uid}"), &s.admin, json!({"status": "active"})).await.expect(200);
    s.get("/v1/me", &Auth::Bearer(token)).await.problem(401, "invalid_credentials");
    s.get("/v1/me", &auth).await.expect(200);
}

#[tokio::test]
async fn deleting_a_key_stops_its_token_secret_and_hawk_within_one_second() {
    let (s, _) = server_in_process().await;
    let (key, auth) = s.create_key(json!({"name": "delete"})).await;
    let id = key["id"].as_str().unwrap();
    let token = access_token(&s, &auth).await;
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);

    s.delete(&format!("/v1/keys/{id}"), &s.admin).await.expect(204);
    let refusals = all_refused_at_once(&s, &auth, &token).await;
    assert_eq!(refusals[0].body["code"], "invalid_credentials");
    assert_eq!(refusals[1].body["code"], "invalid_credentials");
}

#[tokio::test]
async fn rolling_with_grace_0_stops_the_old_secret_its_token_and_hawk_within_one_second() {
    let (s, _) = server_in_process().await;
    let (key, auth) = s.create_key(json!({"name": "roll"})).await;
    let id = key["id"].as_str().unwrap();
    let token = access_token(&s, &auth).await;
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);

    let rolled = s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({"grace_period_s": 0})).await.expect(200);
    all_refused_at_once(&s, &auth, &token).await;

    let fresh = Auth::basic(id, rolled["secret"].as_str().unwrap());
    s.get("/v1/me", &fresh).await.expect(200);
    send_hawk(&s, &HawkReq::new(&s, &fresh, "GET", "/v1/me")).await.expect(200);
    let new_token = access_token(&s, &fresh).await;
    s.get("/v1/me", &Auth::Bearer(new_token)).await.expect(200);
}

#[tokio::test]
async fn rolling_with_a_grace_period_keeps_the_old_secret_and_its_token_working_until_it_ends() {
    let (s, _) = server_in_process().await;
    let (key, old) = s.create_key(json!({"name": "graceful"})).await;
    let id = key["id"].as_str().unwrap();
    let old_token = access_token(&s, &old).await;

    let rolled = s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({"grace_period_s": 60})).await.expect(200);
    let fresh = Auth::basic(id, rolled["secret"].as_str().unwrap());
    s.get("/v1/me", &Auth::Bearer(old_token.clone())).await.expect(200);
    s.get("/v1/me", &old).await.expect(200);
    let report = mohawk(&s, &old, "GET", "/v1/me", &[]);
    assert_eq!(first(&report)["status"], 200, "Hawk with the old secret in grace: {report}");
    assert_eq!(first(&report)["response_verified"], true, "signed with the secret the client used: {report}");
    let grace_token = access_token(&s, &old).await;
    s.get("/v1/me", &Auth::Bearer(grace_token.clone())).await.expect(200);
    s.get("/v1/me", &fresh).await.expect(200);
    let v = verify(&s, &s.admin, json!({"token": old_token})).await;
    assert_eq!(v["valid"], true, "{v}");

    // Ending the grace (a roll with grace 0) stops the first secret and its tokens.
    s.post(&format!("/v1/keys/{id}/roll"), &s.admin, json!({"grace_period_s": 0})).await.expect(200);
    all_refused_at_once(&s, &old, &old_token).await;
    let r = s.get("/v1/me", &Auth::Bearer(grace_token)).await;
    assert_eq!(r.status.as_u16(), 401, "grace token: {r:?}");
}

#[tokio::test]
async fn a_token_past_its_exp_is_refused() {
    let (s, _) = server_in_process().await;
    // Bought 30 s in the past, so that its `exp` has passed for PyJWT's real clock too.
    s.clock().set(s.clock().now() - chrono::Duration::seconds(30));
    let (_, auth) = s.create_key(json!({"name": "brief", "reauth_timeout_s": 10})).await;
    let body = token_for(&s, &auth, CC).await;
    assert_eq!(body["expires_in"], 10);
    let token = body["access_token"].as_str().unwrap().to_owned();
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);
    s.clock().advance(Duration::from_secs(9));
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.expect(200);

    s.clock().advance(Duration::from_secs(2));
    s.get("/v1/me", &Auth::Bearer(token.clone())).await.problem(401, "invalid_credentials");
    let v = verify(&s, &s.admin, json!({"token": token})).await;
    assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("invalid_credentials")), "{v}");
    let v = pyjwt(&s, &token);
    assert_eq!((v["valid"].as_bool(), v["error"].as_str()), (Some(false), Some("ExpiredSignatureError")), "{v}");
}

#[tokio::test]
async fn signing_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_kid() {
    let (s, _) = server().await;
    let (_, auth) = s.create_key(json!({"name": "rotating"})).await;
    let old_token = access_token(&s, &auth).await;
    let old = pyjwt(&s, &old_token);
    let old_kid = old["header"]["kid"].as_str().unwrap().to_owned();
    assert_eq!(old["jwks_kids"], json!([old_kid]));

    let (_, reader) = s.create_key(json!({"name": "reader", "scopes": [grant("keys", "read")]})).await;
    s.post("/v1/oauth/signing-keys/rotate", &reader, json!({})).await.problem(403, "insufficient_permissions");

    let rotated = s.post("/v1/oauth/signing-keys/rotate", &s.admin, json!({})).await.expect(200);
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 2, "{rotated}");
    let jwks = s.get("/.well-known/jwks.json", &Auth::None).await.expect(200);
    let kids: BTreeSet<String> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&old_kid));
    let new_kid = kids.iter().find(|k| **k != old_kid).unwrap().clone();

    s.get("/v1/me", &Auth::Bearer(old_token.clone())).await.expect(200);
    let v = pyjwt(&s, &old_token);
    assert_eq!((v["valid"].as_bool(), v["jwk_kid"].as_str()), (Some(true), Some(old_kid.as_str())), "{v}");

    let new_token = access_token(&s, &auth).await;
    let v = pyjwt(&s, &new_token);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["header"]["kid"], new_kid.as_str(), "new tokens carry the new kid");
    s.get("/v1/me", &Auth::Bearer(new_token)).await.expect(200);
}

// ---------------------------------------------------------------- POST /v1/verify

#[tokio::test]
async fn verify_accepts_secret_token_and_hawk_forms_with_the_keys_details() {
    let (s, _) = server().await;
    let role = s
        .post(
            "/v1/roles",
            &s.admin,
            json!({"name": "reader", "description": "reads keys and audit",
                "permissions": ["keyward:keys:read", "keyward:audit:read"]}),
        )
        .await
        .expect(201);
    let role_id = role["id"].as_str().unwrap();
    // The usual owner: a Service Requestor holding the role.
    let user = s
        .post(
            "/v1/users",
            &s.admin,
            json!({"name": "orders service", "email": "orders@example.com", "kind": "service",
                "roles": ["service_requestor", role_id]}),
        )
        .await
        .expect(201);
    let (key, auth) = s
        .create_key(
            json!({"name": "gateway client", "owner_id": user["id"], "roles": [role_id], "expires_in_days": 30}),
        )
        .await;
    assert_eq!(key["owner_id"], user["id"]);
    let (id, secret) = creds(&auth);
    let token = access_token(&s, &auth).await;

    let check = |v: &Value, form: &str| {
        assert_eq!(v["valid"], true, "{form}: {v}");
        assert_eq!(v["code"], "valid", "{form}: {v}");
        assert_eq!(v["key_id"], id.as_str(), "{form}");
        assert_eq!(v["owner_id"], key["owner_id"], "{form}");
        assert_eq!(v["org_id"], key["org_id"], "{form}");
        assert_eq!(v["roles"], json!([role_id]), "{form}");
        assert_eq!(set(&v["permissions"]), set(&key["permissions"]), "{form}: {v}");
        assert!(
            set(&v["permissions"]).contains("keyward:keys:read")
                && set(&v["permissions"]).contains("keyward:audit:read")
        );
        let at = |t: &Value| chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap();
        assert_eq!(at(&v["expires_at"]), at(&key["expires_at"]), "{form}: {v}");
    };
    check(&verify(&s, &s.admin, json!({"secret": secret})).await, "secret");
    check(&verify(&s, &s.admin, json!({"token": token})).await, "token");

    // Hawk requests a gateway received, signed by mohawk.
    let authz = mohawk_sign(&auth, "GET", "https://api.example.com/orders/7?expand=lines", &["--no-hash"]);
    let hawk = json!({"authorization": authz, "method": "GET", "uri": "/orders/7?expand=lines", "host": "api.example.com", "port": 443});
    check(&verify(&s, &s.admin, json!({"hawk": hawk})).await, "hawk");
    let replay = verify(&s, &s.admin, json!({"hawk": hawk})).await;
    assert_eq!(
        (replay["valid"].as_bool(), replay["code"].as_str()),
        (Some(false), Some("invalid_credentials")),
        "replayed nonce"
    );

    let payload = r#"{"order":7,"qty":2}"#;
    let authz = mohawk_sign(
        &auth,
        "POST",
        "http://orders.internal:8080/orders",
        &["--body", payload, "--content-type", "application/json; charset=utf-8"],
    );
    let hawk = |body: &str| {
        json!({"hawk": {"authorization": authz, "method": "POST", "uri": "/orders", "host": "orders.internal", "port": 8080,
            "content_type": "application/json; charset=utf-8", "payload": body}})
    };
    check(&verify(&s, &s.admin, hawk(payload)).await, "hawk with payload");
    let tampered = verify(&s, &s.admin, hawk(r#"{"order":7,"qty":200}"#)).await;
    assert_eq!(
        (tampered["valid"].as_bool(), tampered["code"].as_str()),
        (Some(false), Some("invalid_credentials")),
        "{tampered}"
    );

    // The gateway may pass the method in lower case; the MAC is over the upper-case method.
    let req = HawkReq { host: "api.example.com".into(), port: 443, ..HawkReq::new(&s, &auth, "GET", "/orders/8") };
    let lower = json!({"hawk": {"authorization": req.header(), "method": "get", "uri": "/orders/8", "host": "API.example.com", "port": 443}});
    check(&verify(&s, &s.admin, lower).await, "hawk, lower-case method and upper-case host");
}

#[tokio::test]
async fn verify_reports_insufficient_permissions_locked_and_garbage_with_http_200() {
    let (s, _) = server().await;
    let (key, auth) = s.create_key(json!({"name": "reader", "scopes": [grant("keys", "read")]})).await;
    let id = key["id"].as_str().unwrap();
    let (_, secret) = creds(&auth);
    let token = access_token(&s, &auth).await;

    let v = verify(&s, &s.admin, json!({"secret": secret, "required": ["keyward:keys:write"]})).await;
    assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("insufficient_permissions")), "{v}");
    assert_eq!(v["key_id"], id);
    let v = verify(&s, &s.admin, json!({"token": token, "required": ["keyward:users:read"]})).await;
    assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("insufficient_permissions")), "{v}");
    let v = verify(&s, &s.admin, json!({"secret": secret, "required": ["keyward:keys:read"]})).await;
    assert_eq!(v["valid"], true, "{v}");

    s.post(&format!("/v1/keys/{id}/lock"), &s.admin, json!({})).await.expect(200);
    let hawk_form = || {
        let req = HawkReq { host: "gw.example".into(), port: 443, ..HawkReq::new(&s, &auth, "GET", "/x") };
        json!({"hawk": {"authorization": req.header(), "method": "GET", "uri": "/x", "host": "gw.example", "port": 443}})
    };
    for form in [json!({"secret": secret}), json!({"token": token}), hawk_form()] {
        let v = verify(&s, &s.admin, form).await;
        assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("key_locked")), "{v}");
    }

    for garbage in [
        json!({"secret": "garbage"}),
        json!({"secret": "kws_0000000000000000000000000000000000000000000000000"}),
        json!({"token": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.AAAA"}),
        json!({"token": "not a token"}),
        json!({"hawk": {"authorization": "Hawk nonsense", "method": "GET", "uri": "/", "host": "h", "port": 80}}),
    ] {
        let v = verify(&s, &s.admin, garbage.clone()).await;
        assert_eq!(
            (v["valid"].as_bool(), v["code"].as_str()),
            (Some(false), Some("invalid_credentials")),
            "{garbage}: {v}"
        );
        assert!(v.get("key_id").is_none(), "{v}");
    }
}

#[tokio::test]
async fn verify_needs_keyward_verify_read() {
    let (s, _) = server().await;
    let (_, target) = s.create_key(json!({"name": "target"})).await;
    let (_, target_secret) = creds(&target);
    let (_, no_verify) = s.create_key(json!({"name": "keys only", "scopes": [grant("keys", "read")]})).await;
    s.post("/v1/verify", &no_verify, json!({"secret": target_secret})).await.problem(403, "insufficient_permissions");
    let token = Auth::Bearer(access_token(&s, &no_verify).await);
    s.post("/v1/verify", &token, json!({"secret": target_secret})).await.problem(403, "insufficient_permissions");

    let (_, gateway) = s.create_key(json!({"name": "gateway", "scopes": [grant("verify", "read")]})).await;
    let v = verify(&s, &gateway, json!({"secret": target_secret})).await;
    assert_eq!(v["valid"], true, "{v}");
    s.post("/v1/verify", &Auth::None, json!({"secret": target_secret})).await.problem(401, "invalid_credentials");
}

#[tokio::test]
async fn verify_applies_ipv4_and_ipv6_network_restrictions_and_fails_closed_without_source_ip() {
    let (s, _) = server().await;
    let (_, v4) = s.create_key(json!({"name": "v4", "network_restrictions": ["203.0.113.0/24"]})).await;
    let (_, v6) = s.create_key(json!({"name": "v6", "network_restrictions": ["2001:db8::/32"]})).await;
    let (_, one) = s.create_key(json!({"name": "one", "network_restrictions": ["2001:db8::1"]})).await;
    let (_, open) = s.create_key(json!({"name": "open"})).await;

    let cases: &[(&Auth, Option<&str>, &str)] = &[
        (&v4, Some("203.0.113.9"), "valid"),
        (&v4, Some("198.51.100.1"), "ip_not_allowed"),
        (&v4, Some("2001:db8::1"), "ip_not_allowed"),
        (&v4, None, "ip_not_allowed"),
        (&v6, Some("2001:db8::1"), "valid"),
        (&v6, Some("2001:db8:ffff:1::42"), "valid"),
        (&v6, Some("2001:db9::1"), "ip_not_allowed"),
        (&v6, Some("203.0.113.9"), "ip_not_allowed"),
        (&v6, None, "ip_not_allowed"),
        (&one, Some("2001:DB8:0:0:0:0:0:1"), "valid"),
        (&one, Some("2001:db8::2"), "ip_not_allowed"),
        (&open, None, "valid"),
        (&open, Some("2001:db8::7"), "valid"),
    ];
    for (key, ip, code) in cases {
        let (_, secret) = creds(key);
        let mut body = json!({"secret": secret});
        if let Some(ip) = ip {
            body["source_ip"] = json!(ip);
        }
        let v = verify(&s, &s.admin, body).await;
        assert_eq!(v["code"], *code, "{ip:?}: {v}");
        assert_eq!(v["valid"], *code == "valid", "{ip:?}: {v}");
    }

    // The token and Hawk forms apply the same rule (a key usable from here and from 2001:db8::/32).
    let (_, both) =
        s.create_key(json!({"name": "both", "network_restrictions": ["127.0.0.0/8", "2001:db8::/32"]})).await;
    let token = access_token(&s, &both).await;
    for (ip, code) in [("2001:db8::5", "valid"), ("2001:db9::5", "ip_not_allowed")] {
        let v = verify(&s, &s.admin, json!({"token": token, "source_ip": ip})).await;
        assert_eq!(v["code"], code, "token from {ip}: {v}");
        let req = HawkReq { host: "gw.example".into(), port: 443, ..HawkReq::new(&s, &both, "GET", "/r") };
        let hawk =
            json!({"authorization": req.header(), "method": "GET", "uri": "/r", "host": "gw.example", "port": 443});
        let v = verify(&s, &s.admin, json!({"hawk": hawk, "source_ip": ip})).await;
        assert_eq!(v["code"], code, "hawk from {ip}: {v}");
    }
    let v = verify(&s, &s.admin, json!({"token": token})).await;
    assert_eq!(v["code"], "ip_not_allowed", "no source_ip: fail closed: {v}");

    s.post("/v1/verify", &s.admin, json!({"secret": "x", "source_ip": "not-an-ip"})).await.expect(422);
}

// ---------------------------------------------------------------- usage and network restrictions at /v1

#[tokio::test]
async fn last_used_at_and_ip_reflect_hawk_and_token_use() {
    let (s, _) = server_in_process().await;
    let (key, auth) = s.create_key(json!({"name": "hawk user"})).await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(key["last_used_at"], Value::Null);
    let before = s.clock().now().timestamp();
    let report = mohawk(&s, &auth, "GET", "/v1/me", &[]);
    assert_eq!(first(&report)["status"], 200, "{report}");
    let k = s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200);
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp();
    assert!(at(&k["last_used_at"]) >= before, "{k}");
    assert_eq!(k["last_used_ip"], "127.0.0.1");

    let (key, auth) = s.create_key(json!({"name": "token user"})).await;
    let id = key["id"].as_str().unwrap();
    let token = Auth::Bearer(access_token(&s, &auth).await);
    let bought = at(&s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200)["last_used_at"]);
    s.clock().advance(Duration::from_secs(5));
    s.get("/v1/me", &token).await.expect(200);
    let k = s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200);
    assert_eq!(at(&k["last_used_at"]), bought + 5, "the token's use, not only its purchase, counts: {k}");
    assert_eq!(k["last_used_ip"], "127.0.0.1");

    // A gateway's verification records the client's address it reports.
    let Auth::Bearer(t) = &token else { unreachable!() };
    verify(&s, &s.admin, json!({"token": t, "source_ip": "192.0.2.44"})).await;
    let k = s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200);
    assert_eq!(k["last_used_ip"], "192.0.2.44", "{k}");
}

#[tokio::test]
async fn network_restrictions_apply_to_loopback_requests_by_every_method() {
    let (s, _) = server().await;
    let (_, lo) = s.create_key(json!({"name": "lo", "network_restrictions": ["127.0.0.0/8", "2001:db8::/32"]})).await;
    let (_, exact) = s.create_key(json!({"name": "exact", "network_restrictions": ["127.0.0.1"]})).await;
    for key in [&lo, &exact] {
        s.get("/v1/me", key).await.expect(200);
        send_hawk(&s, &HawkReq::new(&s, key, "GET", "/v1/me")).await.expect(200);
        let token = Auth::Bearer(access_token(&s, key).await);
        s.get("/v1/me", &token).await.expect(200);
    }

    for restriction in ["203.0.113.0/24", "::1/128", "2001:db8::/32"] {
        let (_, far) = s.create_key(json!({"name": "far", "network_restrictions": [restriction]})).await;
        s.get("/v1/me", &far).await.problem(401, "ip_not_allowed");
        send_hawk(&s, &HawkReq::new(&s, &far, "GET", "/v1/me")).await.problem(401, "ip_not_allowed");
        let r = s.post_raw(TOKEN, &far, FORM, CC).await;
        assert_oauth_error(&r, 401, "invalid_client");
    }

    // Narrowing a key's network stops a token it already holds.
    let (key, auth) = s.create_key(json!({"name": "moving"})).await;
    let id = key["id"].as_str().unwrap();
    let token = Auth::Bearer(access_token(&s, &auth).await);
    s.get("/v1/me", &token).await.expect(200);
    s.patch(&format!("/v1/keys/{id}"), &s.admin, json!({"network_restrictions": ["203.0.113.0/24"]})).await.expect(200);
    s.get("/v1/me", &token).await.problem(401, "ip_not_allowed");
}

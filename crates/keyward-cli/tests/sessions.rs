//! Web-console sessions: sign-in with a person's key, CSRF on writes,
//! service users refused, sessions ending with their key.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use common::TestServer;
use serde_json::{Value, json};

struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self { client: reqwest::Client::new(), base: base.to_owned(), cookie: None, csrf: None }
    }

    async fn sign_in(&mut self, key_id: &str, secret: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/v1/sessions", self.base))
            .json(&json!({"key_id": key_id, "secret": secret}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if let Some(set) = resp.headers().get("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        let body: Value = resp.json().await.unwrap();
        self.csrf = body["csrf_token"].as_str().map(str::to_owned);
        (status, body)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>, with_csrf: bool) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let (true, Some(t)) = (with_csrf, &self.csrf) {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_person_signs_in_with_a_key_and_writes_need_the_csrf_token() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s.base);
    let (status, body) = b.sign_in(&s.admin_id, &s.admin_secret).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["name"], "admin");
    assert!(body["expires_at"].is_string());
    assert!(!body.to_string().contains("kwsess_"), "the session token travels in the cookie only");

    let (status, me) = b.send(reqwest::Method::GET, "/v1/me", None, false).await;
    assert_eq!(status, 200);
    assert_eq!(me["auth_method"], "session");
    let (status, problem) = b.send(reqwest::Method::POST, "/v1/keys", Some(json!({"name": "no csrf"})), false).await;
    assert_eq!(status, 403, "{problem}");
    let (status, created) = b.send(reqwest::Method::POST, "/v1/keys", Some(json!({"name": "with csrf"})), true).await;
    assert_eq!(status, 201, "{created}");

    let (status, _) = b.send(reqwest::Method::DELETE, "/v1/sessions/current", None, true).await;
    assert_eq!(status, 204);
    let (status, _) = b.send(reqwest::Method::GET, "/v1/me", None, false).await;
    assert_eq!(status, 401, "signed out");

    let audit = s.get("/v1/audit?action=session.sign_in", &s.admin).await.expect(200);
    assert_eq!(audit["items"][0]["outcome"], "success");
}

#[tokio::test]
async fn service_users_never_sign_in_and_failures_are_audited() {
    let mut s = TestServer::start().await;
    let svc = s
        .post("/v1/users", &s.admin, json!({"name": "ci bot", "kind": "service", "roles": ["service_requestor"]}))
        .await
        .expect(201);
    let created = s
        .post(&format!("/v1/users/{}/keys", svc["id"].as_str().unwrap()), &s.admin, json!({"name": "bot key"}))
        .await
        .expect(201);
    let mut b = Browser::new(&s.base);
    let (status, body) = b.sign_in(created["key"]["id"].as_str().unwrap(), created["secret"].as_str().unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "insufficient_permissions");
    assert!(b.cookie.is_none(), "no session cookie for a service user");
    // A service requestor's key still works on the API.
    s.get("/v1/me", &common::Auth::basic(created["key"]["id"].as_str().unwrap(), created["secret"].as_str().unwrap()))
        .await
        .expect(200);

    let (status, _) = b.sign_in(&s.admin_id, "a-wrong-secret-for-sign-in").await;
    assert_eq!(status, 401);
    s.restart().await;
    let entries = s.get("/v1/audit?action=session.sign_in&per_page=100", &s.admin).await.expect(200);
    let items = entries["items"].as_array().unwrap();
    assert!(items.iter().any(|e| e["outcome"] == "failure" && e["details"]["reason"] == "service_user"), "{items:?}");
    assert!(items.iter().any(|e| e["outcome"] == "failure"
        && e["details"]["reason"] == "invalid_credentials"
        && e["details"]["count"] == 1));
    assert!(!s.output().contains("a-wrong-secret-for-sign-in"));
}

#[tokio::test]
async fn locking_the_key_ends_its_sessions() {
    let s = TestServer::start().await;
    let (key, auth) = s.create_key(json!({"name": "console"})).await;
    let common::Auth::Basic(id, secret) = auth else { unreachable!() };
    let mut b = Browser::new(&s.base);
    assert_eq!(b.sign_in(&id, &secret).await.0, 201);
    assert_eq!(b.send(reqwest::Method::GET, "/v1/me", None, false).await.0, 200);
    s.post(&format!("/v1/keys/{}/lock", key["id"].as_str().unwrap()), &s.admin, json!({})).await.expect(200);
    let (status, body) = b.send(reqwest::Method::GET, "/v1/me", None, false).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("key_locked")));
    s.post(&format!("/v1/keys/{}/unlock", key["id"].as_str().unwrap()), &s.admin, json!({})).await.expect(200);
    assert_eq!(b.send(reqwest::Method::GET, "/v1/me", None, false).await.0, 401, "the session ended for good");
}

#[tokio::test]
async fn rolling_the_key_ends_its_sessions_after_the_grace_period() {
    let s = TestServer::in_process().await;
    let (key, auth) = s.create_key(json!({"name": "console"})).await;
    let common::Auth::Basic(id, secret) = auth else { unreachable!() };
    let path = format!("/v1/keys/{}", key["id"].as_str().unwrap());
    let mut graced = Browser::new(&s.base);
    assert_eq!(graced.sign_in(&id, &secret).await.0, 201);
    let rolled = s.post(&format!("{path}/roll"), &s.admin, json!({"grace_period_s": 60})).await.expect(200);
    assert_eq!(graced.send(reqwest::Method::GET, "/v1/me", None, false).await.0, 200, "within the grace period");
    s.clock().advance(std::time::Duration::from_secs(59));
    assert_eq!(graced.send(reqwest::Method::GET, "/v1/me", None, false).await.0, 200, "its last second");
    s.clock().advance(std::time::Duration::from_secs(2));
    assert_eq!(graced.send(reqwest::Method::GET, "/v1/me", None, false).await.0, 401, "the grace period ended");
    let mut fresh = Browser::new(&s.base);
    assert_eq!(fresh.sign_in(&id, rolled["secret"].as_str().unwrap()).await.0, 201);
    assert_eq!(fresh.send(reqwest::Method::GET, "/v1/me", None, false).await.0, 200);
    s.post(&format!("{path}/roll"), &s.admin, json!({})).await.expect(200);
    assert_eq!(
        fresh.send(reqwest::Method::GET, "/v1/me", None, false).await.0,
        401,
        "without grace its secret is gone"
    );
}

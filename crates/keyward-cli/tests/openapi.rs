//! `/openapi.json` checked by independent tools against the running server
//! (openapi-spec-validator, schemathesis), and the strict query rule: a query
//! parameter that is unknown, repeated or out of range is 400 `invalid_query`.
//!
//! python3 with `tests-python-requirements.txt` installed is required: a
//! missing interpreter or module fails the test, it never skips it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Auth, TestServer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("python")
}

/// Runs `python3 -m <module> …` in `dir` (where the tools leave their caches) and returns its
/// output; an absent interpreter fails the test.
fn python_module(module: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let out = Command::new("python3")
        .arg("-m")
        .arg(module)
        .args(args)
        .envs(env.iter().copied())
        .env("PYTHONPATH", python_dir())
        .current_dir(dir)
        .output();
    assert!(
        out.is_ok(),
        "python3 is required by these tests (with the packages of tests-python-requirements.txt): {:?}",
        out.as_ref().err()
    );
    out.unwrap()
}

async fn document(s: &TestServer) -> Value {
    s.get("/openapi.json", &Auth::None).await.expect(200)
}

#[tokio::test]
async fn the_document_is_valid_openapi_by_openapi_spec_validator() {
    let s = TestServer::start().await;
    let file = s.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&document(&s).await).unwrap()).unwrap();
    let out = python_module("openapi_spec_validator", &[file.to_str().unwrap()], &[], s.dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects /openapi.json (is tests-python-requirements.txt installed?)\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "openapi-spec-validator said: {stdout}\n{stderr}");
}

#[tokio::test]
async fn the_document_declares_query_parameters_security_and_problem_documents() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let list_params = |path: &str| -> Vec<(String, String)> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} declares no parameters"))
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["in"].as_str().unwrap().to_owned()))
            .collect()
    };
    for path in ["/v1/keys", "/v1/users", "/v1/roles", "/v1/audit", "/v1/audit/export", "/v1/audit/verify"] {
        for (name, place) in list_params(path) {
            assert_eq!(place, "query", "{path} declares `{name}` in {place}");
        }
    }
    let for_user = list_params("/v1/users/{id}/keys");
    assert!(for_user.contains(&("id".into(), "path".into())));
    assert!(for_user.contains(&("per_page".into(), "query".into())));
    assert_eq!(for_user.iter().filter(|(_, place)| place == "path").count(), 1);
    let per_page = doc["paths"]["/v1/keys"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "per_page")
        .unwrap()
        .clone();
    assert_eq!(per_page["schema"]["enum"], json!([10, 25, 50, 100]));

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert!(schemes["hawk"]["description"].as_str().unwrap().contains("Hawk"));
    assert_eq!(schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"], "/v1/oauth/token");
    assert_eq!(schemes["session"]["in"], "cookie");
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/v1/oauth/token", "post"),
        ("/v1/sessions", "post"),
    ] {
        assert_eq!(doc["paths"][path][method]["security"], json!([]), "{method} {path} must need no credential");
    }
    assert!(doc["paths"]["/v1/keys"]["post"]["security"].as_array().unwrap().len() >= 5);

    let errors = &doc["paths"]["/v1/keys"]["post"]["responses"];
    for status in ["400", "401", "403", "413", "415", "422"] {
        let content = &errors[status]["content"];
        assert!(content["application/problem+json"].is_object(), "POST /v1/keys {status}: {content}");
        assert!(content["application/json"].is_null(), "POST /v1/keys {status} is not application/json");
    }
    let create = &doc["components"]["schemas"]["CreateKeyRequest"];
    assert_eq!(create["required"], json!(["name"]));
    assert_eq!(create["properties"]["name"]["maxLength"], 255);
    assert_eq!(create["properties"]["reauth_timeout_s"]["minimum"], 10);
    assert_eq!(create["properties"]["reauth_timeout_s"]["maximum"], 86_400);
    assert_eq!(create["properties"]["network_restrictions"]["maxItems"], 10);
    let import = &doc["paths"]["/v1/keys/import"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(import["allOf"][1]["required"], json!(["id", "secret"]), "{import}");
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_declare() {
    let s = TestServer::start().await;
    let me = s.get("/v1/me", &s.admin).await.expect(200);
    let protected = [&me["key"]["id"], &me["user"]["id"], &me["org_id"]].map(|v| v.as_str().unwrap().to_owned());
    let url = format!("{}/openapi.json", s.base);
    let auth = format!("{}:{}", s.admin_id, s.admin_secret);
    let out = python_module(
        "schemathesis.cli",
        &[
            "run",
            &url,
            "--url",
            &s.base,
            "--auth",
            &auth,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "10",
            // The run authenticates with --auth; random Authorization headers and bewits would only be refused.
            "--generation-with-security-parameters",
            "false",
            // One worker: hypothesis parses lambdas with `ast`, which is not thread-safe on Python 3.11.
            "--workers",
            "1",
            "--seed",
            "1",
            "--no-color",
        ],
        &[("SCHEMATHESIS_HOOKS", "schemathesis_hooks"), ("KEYWARD_PROTECTED_IDS", &protected.join(","))],
        s.dir.path(),
    );
    let report = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems (or is not installed):\n{report}");
    // Schemathesis leaves out the operation that serves the document itself.
    let operations: usize = document(&s).await["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| ["get", "post", "patch", "delete", "put"].iter().filter(|m| item[**m].is_object()).count())
        .sum::<usize>()
        - 1;
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "schemathesis did not test all {operations} operations:\n{report}"
    );
    // The run must have stayed authenticated: the shielded credential still works.
    s.get("/v1/me", &s.admin).await.expect(200);
}

/// A user id the admin may see, for `/v1/users/{id}/keys`.
async fn admin_user(s: &TestServer) -> String {
    s.get("/v1/me", &s.admin).await.expect(200)["user"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_unknown_query_parameter_is_400_invalid_query_naming_it_on_every_endpoint_family() {
    let s = TestServer::start().await;
    let user = admin_user(&s).await;
    for path in [
        "/v1/keys?target_type=key".to_owned(),
        "/v1/users?target_type=key".to_owned(),
        "/v1/roles?target_type=key".to_owned(),
        "/v1/audit?target_type=key".to_owned(),
        "/v1/audit/export?target_type=key".to_owned(),
        "/v1/audit/verify?target_type=key".to_owned(),
        format!("/v1/users/{user}/keys?target_type=key"),
        "/v1/me?target_type=key".to_owned(),
        "/v1/orgs?target_type=key".to_owned(),
        "/healthz?target_type=key".to_owned(),
    ] {
        let p = s.get(&path, &s.admin).await.problem(400, "invalid_query");
        assert_eq!(p["field"], "target_type", "{path}");
        assert_eq!(p["errors"][0]["field"], "target_type", "{path}");
    }
    // A parameter of one endpoint is unknown to another: `format` belongs to the export.
    let p = s.get("/v1/audit?format=csv", &s.admin).await.problem(400, "invalid_query");
    assert_eq!(p["field"], "format");
    s.get("/v1/audit/export?format=csv", &s.admin).await.expect(200);
    // Every unknown parameter is named, and a write refuses them too.
    let p = s.get("/v1/keys?colour=red&per_page=10&shape=round", &s.admin).await.problem(400, "invalid_query");
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["colour", "shape"]);
    s.post("/v1/keys?dry_run=1", &s.admin, json!({"name": "x"})).await.problem(400, "invalid_query");
    assert_eq!(s.get("/v1/keys", &s.admin).await.expect(200)["total"], 1, "the refused create wrote nothing");
    // Known parameters still work; a caller without credentials learns nothing about the query.
    s.get("/v1/keys?status=active&per_page=10&page=1&sort=-name", &s.admin).await.expect(200);
    s.get("/v1/keys?target_type=key", &Auth::None).await.problem(401, "invalid_credentials");
}

#[tokio::test]
async fn a_repeated_parameter_is_named_and_a_pasted_secret_is_never_echoed() {
    let s = TestServer::start().await;
    let p = s.get("/v1/keys?status=active&status=locked", &s.admin).await.problem(400, "invalid_query");
    assert_eq!(p["field"], "status");
    assert!(p["detail"].as_str().unwrap().contains("more than once"));
    let secret = s.admin_secret.clone();
    let resp = s.get(&format!("/v1/keys?{secret}"), &s.admin).await;
    assert!(!resp.text.contains(&secret), "the secret is echoed: {}", resp.text);
    let p = resp.problem(400, "invalid_query");
    assert_eq!(p["field"], "query");
}

#[tokio::test]
async fn a_bad_query_value_is_400_invalid_query_naming_it_on_every_endpoint_family() {
    let s = TestServer::start().await;
    let user = admin_user(&s).await;
    for (path, field) in [
        ("/v1/keys?per_page=20".to_owned(), "per_page"),
        ("/v1/keys?status=sleeping".to_owned(), "status"),
        (format!("/v1/users/{user}/keys?sort=colour"), "sort"),
        (format!("/v1/users/{user}/keys?page=0"), "page"),
        ("/v1/users?kind=robot".to_owned(), "kind"),
        ("/v1/users?status=asleep".to_owned(), "status"),
        ("/v1/users?page=-1".to_owned(), "page"),
        ("/v1/roles?per_page=7".to_owned(), "per_page"),
        ("/v1/orgs?per_page=7".to_owned(), "per_page"),
        ("/v1/scopes?page=0".to_owned(), "page"),
        ("/v1/roles?page=x".to_owned(), "page"),
        ("/v1/audit?to=tomorrow".to_owned(), "to"),
        ("/v1/audit?per_page=1000".to_owned(), "per_page"),
        ("/v1/audit/export?format=xml".to_owned(), "format"),
        ("/v1/audit/export?from=2026-13-01T00:00:00Z".to_owned(), "from"),
    ] {
        let p = s.get(&path, &s.admin).await.problem(400, "invalid_query");
        assert_eq!(p["field"], field, "{path}");
        assert_eq!(p["errors"][0]["field"], field, "{path}");
    }
    // Every bad value at once.
    let p = s.get("/v1/users?kind=robot&page=0", &s.admin).await.problem(400, "invalid_query");
    assert_eq!(p["errors"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_list_takes_page_and_per_page() {
    let s = TestServer::start().await;
    for name in ["one", "two"] {
        s.post("/v1/orgs", &s.admin, json!({"name": name})).await.expect(201);
    }
    // Without paging the organizations and scopes come whole, as before.
    let whole = s.get("/v1/orgs", &s.admin).await.expect(200);
    assert_eq!(whole["items"].as_array().unwrap().len(), 3);
    let first = s.get("/v1/orgs?per_page=10", &s.admin).await.expect(200);
    assert_eq!(
        (first["page"].clone(), first["per_page"].clone(), first["total"].clone()),
        (json!(1), json!(10), json!(3))
    );
    let beyond = s.get("/v1/orgs?page=2&per_page=10", &s.admin).await.expect(200);
    assert!(beyond["items"].as_array().unwrap().is_empty());
    assert_eq!(beyond["total"], 3);
    let scopes = s.get("/v1/scopes?page=1&per_page=25", &s.admin).await.expect(200);
    assert_eq!(scopes["per_page"], 25);
    assert_eq!(scopes["items"][0]["name"], "keyward");
}

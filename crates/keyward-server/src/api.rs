//! The endpoint table: every route with the permission it needs, in one
//! place. The router is built from it, and tests walk it.

use crate::auth::authorize;
use crate::extract::undeclared_query_parameters;
use crate::handlers::{audit, keys, me, oauth, ops, orgs, roles, scopes, sessions, users, verify};
use crate::problem::{ApiError, problem_response};
use crate::state::AppState;
use axum::Router;
use axum::http::{Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, delete, get, patch, post};
use keyward_core::permission::Access::{Read, Write};
use keyward_core::policy::Need;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, ContentBuilder, Ref, RefOr};

/// One endpoint: method, path and what the caller must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
}

fn routes() -> Vec<(Endpoint, MethodRouter<AppState>)> {
    let e = |method, path, need| Endpoint { method, path, need };
    vec![
        (e("GET", "/healthz", Need::Public), get(ops::healthz)),
        (e("GET", "/readyz", Need::Public), get(ops::readyz)),
        (e("GET", "/openapi.json", Need::Public), get(ops::openapi)),
        (e("GET", "/metrics", Need::Public), get(ops::metrics)),
        (e("GET", "/.well-known/jwks.json", Need::Public), get(oauth::jwks)),
        (e("POST", "/v1/oauth/token", Need::Public), post(oauth::token)),
        (e("POST", "/v1/oauth/signing-keys/rotate", Need::AccountAdmin), post(oauth::rotate)),
        (e("POST", "/v1/verify", Need::Keyward("verify", Read)), post(verify::verify)),
        (e("POST", "/v1/sessions", Need::Public), post(sessions::sign_in)),
        (e("DELETE", "/v1/sessions/current", Need::Authenticated), delete(sessions::sign_out)),
        (e("GET", "/v1/me", Need::Authenticated), get(me::me)),
        (e("GET", "/v1/keys", Need::Keyward("keys", Read)), get(keys::list)),
        (e("POST", "/v1/keys", Need::Keyward("keys", Write)), post(keys::create)),
        (e("POST", "/v1/keys/import", Need::Keyward("keys", Write)), post(keys::import)),
        (e("POST", "/v1/keys/bulk", Need::Keyward("keys", Write)), post(keys::bulk)),
        (e("GET", "/v1/keys/{id}", Need::Keyward("keys", Read)), get(keys::get)),
        (e("PATCH", "/v1/keys/{id}", Need::Keyward("keys", Write)), patch(keys::patch)),
        (e("DELETE", "/v1/keys/{id}", Need::Keyward("keys", Write)), delete(keys::delete)),
        (e("POST", "/v1/keys/{id}/roll", Need::Keyward("keys", Write)), post(keys::roll)),
        (e("POST", "/v1/keys/{id}/lock", Need::Keyward("keys", Write)), post(keys::lock)),
        (e("POST", "/v1/keys/{id}/unlock", Need::Keyward("keys", Write)), post(keys::unlock)),
        (e("POST", "/v1/keys/{id}/end-grace", Need::Keyward("keys", Write)), post(keys::end_grace)),
        (e("GET", "/v1/orgs", Need::Keyward("orgs", Read)), get(orgs::list)),
        (e("POST", "/v1/orgs", Need::AccountAdmin), post(orgs::create)),
        (e("GET", "/v1/orgs/{id}", Need::Keyward("orgs", Read)), get(orgs::get)),
        (e("PATCH", "/v1/orgs/{id}", Need::Keyward("orgs", Write)), patch(orgs::patch)),
        (e("GET", "/v1/users", Need::Keyward("users", Read)), get(users::list)),
        (e("POST", "/v1/users", Need::Keyward("users", Write)), post(users::create)),
        (e("GET", "/v1/users/{id}", Need::Keyward("users", Read)), get(users::get)),
        (e("PATCH", "/v1/users/{id}", Need::Keyward("users", Write)), patch(users::patch)),
        (e("DELETE", "/v1/users/{id}", Need::Keyward("users", Write)), delete(users::delete)),
        (e("GET", "/v1/users/{id}/keys", Need::Keyward("keys", Read)), get(keys::list_for_user)),
        (e("POST", "/v1/users/{id}/keys", Need::Keyward("keys", Write)), post(keys::create_for_user)),
        (e("GET", "/v1/roles", Need::Keyward("roles", Read)), get(roles::list)),
        (e("POST", "/v1/roles", Need::Keyward("roles", Write)), post(roles::create)),
        (e("GET", "/v1/roles/{id}", Need::Keyward("roles", Read)), get(roles::get)),
        (e("PATCH", "/v1/roles/{id}", Need::Keyward("roles", Write)), patch(roles::patch)),
        (e("DELETE", "/v1/roles/{id}", Need::Keyward("roles", Write)), delete(roles::delete)),
        (e("GET", "/v1/scopes", Need::Keyward("scopes", Read)), get(scopes::list)),
        (e("POST", "/v1/scopes", Need::Keyward("scopes", Write)), post(scopes::create)),
        (e("GET", "/v1/audit", Need::Keyward("audit", Read)), get(audit::list)),
        (e("GET", "/v1/audit/export", Need::Keyward("audit", Read)), get(audit::export_entries)),
        (e("GET", "/v1/audit/verify", Need::Keyward("audit", Read)), get(audit::verify_chain)),
    ]
}

/// Every endpoint and its requirement.
#[must_use]
pub fn endpoints() -> Vec<Endpoint> {
    routes().into_iter().map(|(e, _)| e).collect()
}

/// The application: every route behind its requirement, problem documents for the rest.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (endpoint, handler) in routes() {
        // Layers run outside in: the caller is authenticated before their query is judged.
        let guarded = handler
            .route_layer(axum::middleware::from_fn(strict_query))
            .route_layer(from_fn_with_state((state.clone(), endpoint.need), authorize));
        router = router.route(endpoint.path, guarded);
    }
    // The web console has its own router and route list (console::ROUTES); /v1 stays in the table.
    router
        .merge(crate::console::router(state.clone()))
        .layer(axum::middleware::from_fn(problems_for_rejections))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .fallback(|| async { problem_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint".into(), vec![]) })
        .method_not_allowed_fallback(|method: Method| async move {
            problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here"),
                vec![],
            )
        })
        .with_state(state)
}

/// Turns the plain-text rejections of axum's extractors (a path that is not
/// valid UTF-8, say) into problem documents like every other error.
async fn problems_for_rejections(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(req).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() && plain) {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
    let detail: String = String::from_utf8_lossy(&text).chars().take(200).collect();
    problem_response(status, "invalid_request", detail, vec![])
}

/// Counts every routed request by method, route template and status.
async fn count_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("-", |p| p.as_str()).to_owned();
    let response = next.run(req).await;
    state.metrics.count_request(&method, &route, response.status().as_u16());
    response
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Keyward", description = "API keys for people and machines: issue, roll, lock, verify, audit."),
    paths(
        ops::healthz, ops::readyz, ops::openapi, ops::metrics, me::me, sessions::sign_in, sessions::sign_out, oauth::token, oauth::jwks, oauth::rotate, verify::verify,
        keys::list, keys::create, keys::import, keys::bulk, keys::get, keys::patch, keys::delete, keys::roll, keys::lock, keys::unlock, keys::end_grace,
        orgs::list, orgs::create, orgs::get, orgs::patch,
        users::list, users::create, users::get, users::patch, users::delete, keys::list_for_user, keys::create_for_user,
        roles::list, roles::create, roles::get, roles::patch, roles::delete, scopes::list, scopes::create,
        audit::list, audit::export_entries, audit::verify_chain,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&Conventions),
)]
struct ApiDoc;

/// What holds for every operation and is therefore written once, from the endpoint table and
/// the extractors: who may call it (security), and the problem documents its guards answer.
struct Conventions;

/// Credentials an authenticated operation accepts, in the order `auth.rs` reads them.
const SCHEMES: [&str; 5] = ["basic", "bearer", "hawk", "oauth2", "session"];

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        add_security_schemes(doc.components.get_or_insert_with(Default::default));
        doc.security = Some(SCHEMES.iter().map(|s| SecurityRequirement::new(*s, Vec::<String>::new())).collect());
        let table = endpoints();
        for (path, item) in &mut doc.paths.paths {
            let operations = [
                ("GET", item.get.as_mut()),
                ("POST", item.post.as_mut()),
                ("PATCH", item.patch.as_mut()),
                ("DELETE", item.delete.as_mut()),
                ("PUT", item.put.as_mut()),
            ];
            for (method, op) in operations {
                let Some(op) = op else { continue };
                let need = table.iter().find(|e| e.method == method && e.path == path).map_or(Need::Public, |e| e.need);
                apply_conventions(op, method, path, need);
            }
        }
        // An import is a create body that must also carry `id` and `secret`.
        if let Some(op) = doc.paths.paths.get_mut("/v1/keys/import").and_then(|item| item.post.as_mut())
            && let Some(body) = op.request_body.as_mut().and_then(|b| b.content.get_mut("application/json"))
        {
            let required = utoipa::openapi::ObjectBuilder::new().required("id").required("secret");
            body.schema = Some(
                utoipa::openapi::AllOfBuilder::new()
                    .item(Ref::from_schema_name("CreateKeyRequest"))
                    .item(required)
                    .into(),
            );
        }
    }
}

fn add_security_schemes(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
    };
    let http = |scheme, description: &str| {
        SecurityScheme::Http(HttpBuilder::new().scheme(scheme).description(Some(description)).build())
    };
    components.add_security_scheme(
        "basic",
        http(HttpAuthScheme::Basic, "The key id as user name and the key's secret as password."),
    );
    components.add_security_scheme(
        "bearer",
        http(HttpAuthScheme::Bearer, "A key's secret, or an access token (JWT) from `POST /v1/oauth/token`."),
    );
    components.add_security_scheme(
        "hawk",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "Hawk: `Authorization: Hawk id=\"<key id>\", ts=…, nonce=…, mac=…[, hash=…]`, signed with the key's \
             secret (HMAC-SHA256); responses carry `Server-Authorization`.",
        ))),
    );
    components.add_security_scheme(
        "hawk_bewit",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "bewit",
            "A Hawk bewit: a GET URL pre-signed with a key's secret, valid until its expiry.",
        ))),
    );
    components.add_security_scheme(
        "oauth2",
        SecurityScheme::OAuth2(OAuth2::with_description(
            [Flow::ClientCredentials(ClientCredentials::new("/v1/oauth/token", Scopes::new()))],
            "Client credentials: the key id and secret buy a short-lived access token, sent as `Bearer`.",
        )),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::sessions::COOKIE,
            "A web-console session from `POST /v1/sessions`; writes also need its `X-CSRF-Token` header.",
        ))),
    );
}

/// The id, the security and the guard answers of one operation.
fn apply_conventions(op: &mut Operation, method: &str, path: &str, need: Need) {
    // Handlers in different modules share names (`list`, `get`); the tag makes the id unique.
    if let (Some(tag), Some(id)) = (op.tags.as_ref().and_then(|t| t.first()), op.operation_id.as_mut())
        && !id.starts_with(tag.as_str())
    {
        *id = format!("{tag}_{id}");
    }
    let json_body = op.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    let mut common = vec![("400", "A query parameter that is unknown, repeated or out of range (`invalid_query`)")];
    if json_body {
        common.extend([
            ("400", "malformed JSON (`invalid_json`) or an unreadable body"),
            ("413", "The body is too large (`payload_too_large`)"),
            ("415", "The body is not JSON (`unsupported_media_type`)"),
            ("422", "A field is missing, unknown or invalid (`validation_failed`, naming it)"),
        ]);
    }
    if need == Need::Public {
        // Public operations need no credential: an empty list overrides the document's default.
        op.security = Some(vec![]);
    } else {
        let mut schemes: Vec<&str> = SCHEMES.to_vec();
        if method == "GET" {
            schemes.push("hawk_bewit");
        }
        op.security = Some(schemes.into_iter().map(|s| SecurityRequirement::new(s, Vec::<String>::new())).collect());
        common.push(("401", "The credentials are missing, unknown or wrong, or the key is locked, expired or used from a network it may not be used from"));
        common.push(("429", "Too many failed attempts (`too_many_attempts`); see `Retry-After`"));
        if need != Need::Authenticated || method != "GET" {
            common.push((
                "403",
                "The caller lacks the permission (`insufficient_permissions`), or a session write lacks its CSRF token",
            ));
        }
    }
    if path.contains('{') {
        common.push(("404", "No such resource, or not visible to the caller (`not_found`)"));
    }
    let mut by_status: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (status, description) in common {
        by_status.entry(status).or_default().push(description);
    }
    for (status, descriptions) in by_status {
        let response = op
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(utoipa::openapi::Response::new(descriptions.join("; "))));
        if let RefOr::T(response) = response {
            response.content.entry(PROBLEM_JSON.to_owned()).or_insert_with(problem_content);
        }
    }
    // Answers a handler declares without words get the usual ones.
    for (status, response) in &mut op.responses.responses {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = match status.as_str() {
                "200" | "201" => "Done",
                "204" => "Done; no content",
                "403" => "The caller may not do this (`insufficient_permissions`)",
                "404" => "No such resource, or not visible to the caller (`not_found`)",
                "409" => "A conflict with the current state (see `code`)",
                "422" => "A field is missing, unknown or invalid (`validation_failed`, naming it)",
                _ => "See `code`",
            }
            .to_owned();
        }
    }
    // Errors are served as problem documents, whatever the annotation's default media type.
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(response) = response
            && response.content.get("application/json").is_some_and(is_problem)
            && let Some(content) = response.content.shift_remove("application/json")
        {
            response.content.insert(PROBLEM_JSON.to_owned(), content);
        }
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

fn problem_content() -> Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build()
}

fn is_problem(content: &Content) -> bool {
    matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
}

/// The query parameters each route declares, by method and route template: the only ones it accepts.
static DECLARED_QUERY: LazyLock<HashMap<(String, String), Vec<String>>> = LazyLock::new(|| {
    let doc = openapi();
    let mut declared = HashMap::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
            ("PUT", &item.put),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let names = op
                .parameters
                .iter()
                .flatten()
                .filter(|p| p.parameter_in == ParameterIn::Query)
                .map(|p| p.name.clone())
                .collect();
            declared.insert((method.to_owned(), path.clone()), names);
        }
    }
    declared
});

/// Refuses a query parameter the route does not declare, or one given twice: 400 `invalid_query`
/// naming it, rather than a filter silently ignored.
async fn strict_query(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    if let Some(query) = req.uri().query() {
        let method = if req.method() == Method::HEAD { "GET" } else { req.method().as_str() };
        let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
        let declared: Vec<&str> = route
            .and_then(|r| DECLARED_QUERY.get(&(method.to_owned(), r)))
            .map(|names| names.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let errors = undeclared_query_parameters(query, &declared, method == "GET");
        if !errors.is_empty() {
            return ApiError::InvalidQuery(errors).into_response();
        }
    }
    next.run(req).await
}

/// The OpenAPI 3.1 document, generated from the handlers' annotations.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_lists_exactly_the_routed_endpoints() {
        let doc = openapi();
        let documented: BTreeSet<(String, String)> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PUT", item.put.is_some()),
                ];
                methods
                    .into_iter()
                    .filter(|(_, has)| *has)
                    .map(|(m, _)| (m.to_owned(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let routed: BTreeSet<(String, String)> =
            endpoints().iter().map(|e| (e.method.to_owned(), e.path.to_owned())).collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn the_document_declares_queries_in_query_unique_ids_and_who_may_call() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut ids = BTreeSet::new();
        for e in endpoints() {
            let op = &doc["paths"][e.path][e.method.to_ascii_lowercase()];
            let id = op["operationId"].as_str().unwrap().to_owned();
            assert!(ids.insert(id.clone()), "operation id {id} is used twice");
            let path_params = e.path.matches('{').count();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            assert_eq!(params.iter().filter(|p| p["in"] == "path").count(), path_params, "{} {}", e.method, e.path);
            assert!(params.iter().all(|p| p["in"] == "path" || p["in"] == "query"), "{} {}", e.method, e.path);
            let security = op["security"].as_array().unwrap();
            assert_eq!(security.is_empty(), e.need == Need::Public, "{} {}", e.method, e.path);
            assert_eq!(
                op["responses"]["400"]["content"][PROBLEM_JSON]["schema"]["$ref"],
                "#/components/schemas/Problem"
            );
            if e.need != Need::Public {
                assert!(op["responses"]["401"]["content"][PROBLEM_JSON].is_object(), "{} {}", e.method, e.path);
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') && e.path != "/v1/oauth/token" {
                    assert!(response["content"]["application/json"].is_null(), "{} {} {status}", e.method, e.path);
                }
            }
        }
        for scheme in SCHEMES.iter().chain(&["hawk_bewit"]) {
            assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
        }
    }

    #[test]
    fn a_route_accepts_exactly_the_query_parameters_it_declares() {
        let declared = |method: &str, path: &str| DECLARED_QUERY.get(&(method.into(), path.into())).cloned().unwrap();
        assert_eq!(
            declared("GET", "/v1/audit/export"),
            ["action", "actor_id", "target_id", "from", "to", "org_id", "format"]
        );
        assert!(!declared("GET", "/v1/audit").contains(&"format".to_owned()));
        assert!(declared("GET", "/v1/users/{id}/keys").contains(&"per_page".to_owned()));
        assert!(declared("GET", "/v1/me").is_empty());
    }

    #[test]
    fn every_v1_endpoint_requires_a_credential() {
        for e in endpoints() {
            // The token and sign-in endpoints check the key's secret themselves.
            if e.path.starts_with("/v1/") && !["/v1/oauth/token", "/v1/sessions"].contains(&e.path) {
                assert_ne!(e.need, Need::Public, "{} {} is public", e.method, e.path);
            }
        }
    }
}

//! The endpoint table: every route with the permission it needs, in one
//! place. The router is built from it, and tests walk it.

use crate::auth::authorize;
use crate::handlers::{audit, keys, me, oauth, ops, orgs, roles, scopes, sessions, users, verify};
use crate::problem::problem_response;
use crate::state::AppState;
use axum::Router;
use axum::http::{Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, delete, get, patch, post};
use keyward_core::permission::Access::{Read, Write};
use keyward_core::policy::Need;
use utoipa::OpenApi;

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
        let guarded = handler.route_layer(from_fn_with_state((state.clone(), endpoint.need), authorize));
        router = router.route(endpoint.path, guarded);
    }
    router
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
    modifiers(&Security),
    security(("basic" = []), ("bearer" = []))
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
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
    fn every_v1_endpoint_requires_a_credential() {
        for e in endpoints() {
            // The token and sign-in endpoints check the key's secret themselves.
            if e.path.starts_with("/v1/") && !["/v1/oauth/token", "/v1/sessions"].contains(&e.path) {
                assert_ne!(e.need, Need::Public, "{} {} is public", e.method, e.path);
            }
        }
    }
}

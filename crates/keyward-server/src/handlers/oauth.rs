//! `POST /v1/oauth/token` (RFC 6749 §4.4 client credentials, RFC 9068 JWTs),
//! the JWKS that verifies them, and signing-key rotation.

use crate::auth::Caller;
use crate::extract::ClientIp;
use crate::index::Credential;
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use keyward_core::audit::AuditEvent;
use keyward_core::permission::{Access, Permission, PermissionSet};
use keyward_core::secret::{Secret, random_base62};
use keyward_core::token::AccessClaims;
use serde::Serialize;
use std::collections::HashMap;

/// A successful token response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds: the key's `reauth_timeout_s`.
    pub expires_in: u32,
    /// Space-separated permissions the token carries.
    pub scope: String,
}

/// An RFC 6749 §5.2 error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthError {
    pub error: &'static str,
    pub error_description: String,
    /// Keyward's own code for a refused key (`key_locked`, …), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

fn oauth_error(status: StatusCode, error: &'static str, description: impl Into<String>, basic: bool) -> Response {
    let body = OAuthError { error, error_description: description.into(), code: None };
    oauth_error_body(status, body, basic)
}

fn oauth_error_body(status: StatusCode, body: OAuthError, basic: bool) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    no_store(resp.headers_mut());
    if status == StatusCode::UNAUTHORIZED && basic {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"keyward\""));
    }
    resp
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// RFC 6749 §2.3.1: Basic credentials are form-encoded before base64.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Some(Err(()));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok();
    let text = decoded.and_then(|d| String::from_utf8(d).ok());
    Some(text.and_then(|t| t.split_once(':').map(|(i, s)| (i.to_owned(), s.to_owned()))).ok_or(()))
}

fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// What a requested scope leaves of the key's permissions: each requested
/// permission down to what the key holds of it; never more.
fn narrow(held: &PermissionSet, requested: &[Permission]) -> PermissionSet {
    let mut out = PermissionSet::default();
    for p in requested {
        for access in [Access::Write, Access::Read] {
            if access <= p.access && held.allows(&p.scope, &p.resource, access) {
                out.grant(&p.scope, &p.resource, access);
                break;
            }
        }
    }
    out
}

/// Exchanges a key's id and secret for a short-lived access token.
#[utoipa::path(post, path = "/v1/oauth/token", tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=client_credentials[&scope=…][&client_id=…&client_secret=…]"),
    responses((status = 200, body = TokenResponse), (status = 400, body = OAuthError), (status = 401, body = OAuthError)))]
pub async fn token(State(state): State<AppState>, ClientIp(ip): ClientIp, headers: HeaderMap, body: Bytes) -> Response {
    let form_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the body as application/x-www-form-urlencoded",
            false,
        );
    }
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        if v.is_empty() {
            continue;
        }
        if params.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("`{k}` is given more than once"),
                false,
            );
        }
    }
    let basic = basic_credentials(&headers);
    let body_creds = (params.get("client_id").cloned(), params.get("client_secret").cloned());
    let (mut candidates, used_basic) = match (basic, body_creds) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method, not two",
                false,
            );
        }
        (Some(Err(())), _) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unsupported client authentication", true);
        }
        (Some(Ok((id, secret))), _) => {
            // Clients differ on whether they form-encode before base64; try both readings.
            (vec![(form_decode(&id), form_decode(&secret)), (id, secret)], true)
        }
        (None, (Some(id), Some(secret))) => (vec![(id, secret)], false),
        (None, _) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required", false);
        }
    };
    match params.get("grant_type").map(String::as_str) {
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required", false),
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("`{other}` is not supported; use client_credentials"),
                false,
            );
        }
    }
    candidates.dedup();
    let now = state.now();
    let mut outcome = None;
    for (id, secret) in &candidates {
        let credential = Credential::IdAndSecret(id.clone(), Secret::from_presented(secret.clone()));
        let result = state.index.authenticate(&credential, now, ip, false).map(|p| (p, secret.clone()));
        let done = result.is_ok();
        outcome = Some(result);
        if done {
            break;
        }
    }
    let (principal, secret) = match outcome {
        Some(Ok(p)) => p,
        Some(Err(refusal)) => {
            state.record_refusal(&refusal, ip, now);
            let code = refusal.failure.code();
            let body = OAuthError {
                error: "invalid_client",
                error_description: format!("client authentication failed ({code})"),
                code: Some(code),
            };
            return oauth_error_body(StatusCode::UNAUTHORIZED, body, used_basic);
        }
        None => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed", used_basic);
        }
    };
    let Some(key) = principal.key_id.as_ref().and_then(|k| state.index.key(k)) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed", used_basic);
    };
    let granted = match params.get("scope") {
        None => principal.permissions.clone(),
        Some(scope) => {
            let mut requested = Vec::new();
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                match Permission::parse(s, false) {
                    Ok(p) => requested.push(p),
                    Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", e, false),
                }
            }
            let narrowed = narrow(&principal.permissions, &requested);
            if narrowed.is_empty() {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "the key holds none of the requested scope",
                    false,
                );
            }
            narrowed
        }
    };
    let scope = granted.to_strings().join(" ");
    let lifetime = key.record.reauth_timeout_s;
    let claims = AccessClaims {
        iss: state.issuer.to_string(),
        sub: key.record.owner_id.to_string(),
        aud: state.issuer.to_string(),
        client_id: key.record.id.to_string(),
        iat: now.timestamp(),
        exp: now.timestamp() + i64::from(lifetime),
        jti: random_base62(22),
        scope: scope.clone(),
        org_id: key.record.org_id.to_string(),
        sv: key.record.secret.digest.version(),
        kep: key.record.token_epoch,
        uep: state.index.user(&key.record.owner_id).map_or(0, |u| u.token_epoch),
    };
    // A token bought with the previous secret in its grace period is tied to that secret.
    let claims = match &key.record.previous_secret {
        Some(prev) if state.keyring.digest(&Secret::from_presented(secret)).ct_eq(&prev.sealed.digest) => {
            AccessClaims { sv: prev.sealed.digest.version(), ..claims }
        }
        _ => claims,
    };
    let Some(access_token) = state.tokens.sign(&claims) else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "no signing key", false);
    };
    let event = AuditEvent {
        at: now,
        org_id: claims.org_id.clone(),
        actor_id: claims.sub.clone(),
        actor_key_id: Some(claims.client_id.clone()),
        source_ip: Some(ip.to_string()),
        action: "token.issue".into(),
        target_type: "key".into(),
        target_id: claims.client_id.clone(),
        outcome: "success".into(),
        details: serde_json::json!({"jti": claims.jti, "scope": scope, "exp": claims.exp}),
    };
    if let Err(e) = state.store.append_audit(&[event]).await {
        tracing::error!(error = %e, "could not audit a token; none issued");
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the token could not be recorded",
            false,
        );
    }
    state.usage.touch(&key.record.id, now, Some(ip));
    state.metrics.tokens_issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut resp =
        axum::Json(TokenResponse { access_token, token_type: "Bearer", expires_in: lifetime, scope }).into_response();
    no_store(resp.headers_mut());
    resp
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth", responses((status = 200, description = "a JWK Set of Ed25519 keys")))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let mut resp = axum::Json(state.tokens.jwks(state.now())).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    resp
}

/// Starts a new token signing key; the old one stays published until its tokens have expired (account admins).
#[utoipa::path(post, path = "/v1/oauth/signing-keys/rotate", tag = "oauth", responses((status = 200, description = "the new JWK Set")))]
pub async fn rotate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
) -> ApiResult<impl IntoResponse> {
    let now = state.now();
    let kid = state.tokens.rotate(state.store.as_ref(), now).await?;
    let event = crate::state::audit_event(
        &caller,
        ip,
        now,
        caller.org_id.as_str(),
        "token.signing_key_rotate",
        ("signing_key", &kid),
        serde_json::json!({}),
    );
    state.store.append_audit(&[event]).await?;
    Ok(axum::Json(state.tokens.jwks(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_scope_narrows_and_never_widens() {
        let mut held = PermissionSet::default();
        held.grant("keyward", "keys", Access::Read);
        held.grant("orders", "invoices", Access::Write);
        let ask = |s: &[&str]| {
            narrow(&held, &s.iter().map(|p| Permission::parse(p, false).unwrap()).collect::<Vec<_>>()).to_strings()
        };
        assert_eq!(ask(&["keyward:keys:write"]), vec!["keyward:keys:read"]);
        assert_eq!(ask(&["orders:invoices:read"]), vec!["orders:invoices:read"]);
        assert_eq!(ask(&["keyward:users:read"]), Vec::<String>::new());
        assert_eq!(
            ask(&["keyward:keys:read", "orders:invoices:write"]),
            vec!["keyward:keys:read", "orders:invoices:write"]
        );
    }
}

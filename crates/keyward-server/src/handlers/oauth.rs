//! `POST /v1/oauth/token` (RFC 6749 §4.4 client credentials, RFC 9068 JWTs),
//! the JWKS that verifies them, and signing-key rotation.

use crate::auth::Caller;
use crate::extract::ClientIp;
use crate::index::{Credential, Refusal};
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use keyward_core::audit::{AuditAction, AuditEvent, Outcome, TargetType};
use keyward_core::key::AuthFailure;
use keyward_core::secret::{Secret, random_base62};
use keyward_core::token;
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
#[schema(as = OAuthError)]
pub struct OAuthErrorBody {
    pub error: &'static str,
    pub error_description: String,
    /// Keyward's own code for a refused key (`key_locked`, `too_many_attempts`, …), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

/// Every way the token endpoint says no, each with its RFC 6749 §5.2 answer.
#[derive(Debug)]
pub enum OAuthError {
    /// 400 `invalid_request`.
    InvalidRequest(String),
    /// 401 `invalid_client`; `basic`: the client used HTTP Basic, so the answer challenges it.
    InvalidClient { description: String, code: Option<&'static str>, basic: bool },
    /// 400 `unsupported_grant_type`.
    UnsupportedGrantType(String),
    /// 400 `invalid_scope`.
    InvalidScope(String),
    /// 429 with `Retry-After`: too many failed attempts for the key id or from the address.
    TooManyAttempts { retry_after_s: u64 },
    /// 413 `invalid_request` with code `payload_too_large`: the form is over the body limit.
    PayloadTooLarge,
    /// 500 `server_error`.
    ServerError(&'static str),
}

impl OAuthError {
    /// A refused client authentication (already audited and counted).
    fn refused(refusal: &Refusal, basic: bool) -> Self {
        match refusal.retry_after_s {
            Some(retry_after_s) => OAuthError::TooManyAttempts { retry_after_s },
            None => {
                let code = refusal.failure.code();
                OAuthError::InvalidClient {
                    description: format!("client authentication failed ({code})"),
                    code: Some(code),
                    basic,
                }
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, error, description, code) = match &self {
            OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d.clone(), None),
            OAuthError::InvalidClient { description, code, .. } => {
                (StatusCode::UNAUTHORIZED, "invalid_client", description.clone(), *code)
            }
            OAuthError::UnsupportedGrantType(d) => (StatusCode::BAD_REQUEST, "unsupported_grant_type", d.clone(), None),
            OAuthError::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", d.clone(), None),
            OAuthError::TooManyAttempts { retry_after_s } => (
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!("too many failed attempts; try again in {retry_after_s} s"),
                Some(AuthFailure::TooManyAttempts.code()),
            ),
            OAuthError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is over the size limit".to_owned(),
                Some("payload_too_large"),
            ),
            OAuthError::ServerError(d) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", (*d).to_owned(), None),
        };
        let mut resp =
            (status, axum::Json(OAuthErrorBody { error, error_description: description, code })).into_response();
        no_store(resp.headers_mut());
        match self {
            OAuthError::InvalidClient { basic: true, .. } => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"keyward\""));
            }
            OAuthError::TooManyAttempts { retry_after_s } => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            OAuthError::PayloadTooLarge => {
                // The rest of the body is never read, so the connection cannot carry another request.
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
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

/// A well-formed client credentials request.
struct TokenRequest {
    /// (id, secret) readings of the client's credentials, in the order to try them.
    candidates: Vec<(String, String)>,
    basic: bool,
    scope: Option<String>,
}

/// Reads the form and the client authentication (RFC 6749 §2.3.1, §4.4.2).
fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
    let form_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form_type {
        return Err(OAuthError::InvalidRequest("send the body as application/x-www-form-urlencoded".into()));
    }
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if v.is_empty() {
            continue;
        }
        if params.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::InvalidRequest(format!("`{k}` is given more than once")));
        }
    }
    let body_creds = (params.remove("client_id"), params.remove("client_secret"));
    let (mut candidates, basic) = match (basic_credentials(headers), body_creds) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return Err(OAuthError::InvalidRequest("use one client authentication method, not two".into()));
        }
        (Some(Err(())), _) => {
            return Err(OAuthError::InvalidClient {
                description: "unsupported client authentication".into(),
                code: None,
                basic: true,
            });
        }
        // Clients differ on whether they form-encode before base64; try both readings.
        (Some(Ok((id, secret))), _) => (vec![(form_decode(&id), form_decode(&secret)), (id, secret)], true),
        (None, (Some(id), Some(secret))) => (vec![(id, secret)], false),
        (None, _) => {
            return Err(OAuthError::InvalidClient {
                description: "client authentication is required".into(),
                code: None,
                basic: false,
            });
        }
    };
    match params.get("grant_type").map(String::as_str) {
        None => return Err(OAuthError::InvalidRequest("grant_type is required".into())),
        Some("client_credentials") => {}
        // The value is not echoed: a secret pasted into the wrong field must not come back.
        Some(_) => {
            return Err(OAuthError::UnsupportedGrantType("only client_credentials is supported".into()));
        }
    }
    candidates.dedup();
    Ok(TokenRequest { candidates, basic, scope: params.remove("scope") })
}

/// Exchanges a key's id and secret for a short-lived access token.
#[utoipa::path(post, path = "/v1/oauth/token", tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=client_credentials[&scope=…][&client_id=…&client_secret=…]"),
    responses((status = 200, body = TokenResponse), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody),
        (status = 413, body = OAuthErrorBody), (status = 429, body = OAuthErrorBody)))]
pub async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            OAuthError::PayloadTooLarge
        }
        _ => OAuthError::InvalidRequest("the request body could not be read".into()),
    })?;
    let request = parse_token_request(&headers, &body)?;
    let now = state.now();
    state.throttle_address(Some(ip), now).map_err(|r| OAuthError::refused(&r, request.basic))?;
    // The last reading's verdict stands when none passes.
    let mut verdict = Err(Refusal::anonymous(AuthFailure::InvalidCredentials));
    let mut paid_with = None;
    for (id, secret) in &request.candidates {
        let secret = Secret::from_presented(secret.clone());
        let credential = Credential::IdAndSecret(id.clone(), secret.clone());
        verdict = state.index.authenticate(&credential, now, ip, false);
        if verdict.is_ok() {
            paid_with = Some(state.keyring.digest(&secret));
            break;
        }
    }
    let principal = state
        .judged(verdict, AuditAction::KeyUseFailed, true, Some(ip), ip, now)
        .map_err(|r| OAuthError::refused(&r, request.basic))?;
    let (Some(key), Some(paid_with)) = (principal.key_id.as_ref().and_then(|k| state.index.key(k)), paid_with) else {
        return Err(OAuthError::InvalidClient {
            description: "client authentication failed".into(),
            code: None,
            basic: request.basic,
        });
    };
    let granted = token::grant_scope(&principal.permissions, request.scope.as_deref())
        .map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
    let purchase = token::Purchase {
        key: &key.record,
        paid_with: &paid_with,
        granted: &granted,
        issuer: &state.issuer,
        jti: random_base62(22),
        owner_epoch: state.index.user(&key.record.owner_id).map_or(0, |u| u.token_epoch),
    };
    let claims = token::claims_for(purchase, now);
    let access_token = state.tokens.sign(&claims).ok_or(OAuthError::ServerError("no signing key"))?;
    let event = AuditEvent {
        at: now,
        org_id: claims.org_id.clone(),
        actor_id: claims.sub.clone(),
        actor_key_id: Some(claims.client_id.clone()),
        source_ip: Some(ip.to_string()),
        action: AuditAction::TokenIssue.into(),
        target_type: TargetType::Key.into(),
        target_id: claims.client_id.clone(),
        outcome: Outcome::Success.into(),
        details: serde_json::json!({"jti": claims.jti, "scope": claims.scope, "exp": claims.exp}),
    };
    if let Err(e) = state.store.append_audit(&[event]).await {
        tracing::error!(error = %e, "could not audit a token; none issued");
        return Err(OAuthError::ServerError("the token could not be recorded"));
    }
    state.usage.touch(&key.record.id, now, Some(ip));
    state.metrics.tokens_issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let expires_in = key.record.reauth_timeout_s;
    let mut resp = axum::Json(TokenResponse { access_token, token_type: "Bearer", expires_in, scope: claims.scope })
        .into_response();
    no_store(resp.headers_mut());
    Ok(resp)
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
        AuditAction::TokenSigningKeyRotate,
        (TargetType::SigningKey, &kid),
        serde_json::json!({}),
    );
    state.store.append_audit(&[event]).await?;
    Ok(axum::Json(state.tokens.jwks(now)))
}

//! `/v1/sessions`: web-console sign-in with a person's API key. Service
//! Requestors never sign in.

use crate::auth::{Caller, refusal_error};
use crate::extract::{ApiJson, ClientIp};
use crate::index::Credential;
use crate::problem::ApiResult;
use crate::sessions::{COOKIE, token_from_cookies};
use crate::state::AppState;
use crate::views::UserView;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::CoreError;
use keyward_core::audit::{AuditAction, AuditEvent, Outcome, TargetType};
use keyward_core::clock::{Timestamp, serde_rfc3339};
use keyward_core::secret::Secret;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/sessions`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    key_id: String,
    #[schema(format = Password)]
    secret: String,
}

/// A new session; its token is in the `keyward_session` cookie only.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Send it back as `X-CSRF-Token` on every write.
    pub csrf_token: String,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub user: UserView,
}

fn sign_in_event(
    state: &AppState,
    key: (&str, &str, &str),
    ip: std::net::IpAddr,
    outcome: Outcome,
    reason: &str,
) -> AuditEvent {
    let (key_id, org, owner) = key;
    AuditEvent {
        at: state.now(),
        org_id: org.to_owned(),
        actor_id: owner.to_owned(),
        actor_key_id: Some(key_id.to_owned()),
        source_ip: Some(ip.to_string()),
        action: AuditAction::SessionSignIn.into(),
        target_type: TargetType::User.into(),
        target_id: owner.to_owned(),
        outcome: outcome.into(),
        details: serde_json::json!({"reason": reason}),
    }
}

/// Signs a person in to the web console with one of their API keys.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = SignIn,
    responses((status = 201, body = SessionView), (status = 401, body = crate::problem::Problem), (status = 403, body = crate::problem::Problem),
        (status = 429, body = crate::problem::Problem)))]
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let now = state.now();
    let secret = Secret::from_presented(body.secret);
    let secret_version = state.keyring.digest(&secret).version();
    let credential = Credential::IdAndSecret(body.key_id, secret);
    state.throttle_address(Some(ip), now).map_err(refusal_error)?;
    let verdict = state.index.authenticate(&credential, now, ip, false);
    let principal =
        state.judged(verdict, AuditAction::SessionSignIn, true, Some(ip), ip, now).map_err(refusal_error)?;
    let user = state.index.user(&principal.user_id).ok_or(CoreError::NotFound { what: "user" })?;
    let key_id = principal.key_id.clone().ok_or(CoreError::NotFound { what: "key" })?;
    let who = (key_id.as_str(), user.org_id.as_str(), user.id.as_str());
    if state.index.directory().is_service_requestor(&user) {
        state.store.append_audit(&[sign_in_event(&state, who, ip, Outcome::Failure, "service_user")]).await?;
        return Err(CoreError::forbidden("service users (Service Requestors) cannot sign in to the web console").into());
    }
    state.store.append_audit(&[sign_in_event(&state, who, ip, Outcome::Success, "")]).await?;
    let (token, session) = state.sessions.create(key_id, secret_version, now);
    let secure = if state.issuer.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}");
    let view =
        SessionView { csrf_token: session.csrf.clone(), expires_at: session.expires_at(), user: UserView::from(&user) };
    let mut resp = (StatusCode::CREATED, axum::Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Signs out of the current browser session.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "sessions", responses((status = 204)))]
pub async fn sign_out(State(state): State<AppState>, Caller(_caller): Caller, headers: HeaderMap) -> impl IntoResponse {
    if let Some(token) = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(token_from_cookies) {
        state.sessions.end(token);
    }
    let expired = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&expired) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

//! Authentication of every `/v1` request against the in-memory index, and the
//! per-route permission check that the endpoint table attaches.

use crate::extract::client_ip;
use crate::index::Credential;
use crate::problem::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use keyward_core::key::AuthFailure;
use keyward_core::policy::{Need, Principal};
use keyward_core::secret::Secret;

/// Reads the credential from `Authorization`.
fn credential(headers: &HeaderMap) -> Result<Credential, AuthFailure> {
    let value =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(AuthFailure::InvalidCredentials)?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or(AuthFailure::InvalidCredentials)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| AuthFailure::InvalidCredentials)?;
        let text = String::from_utf8(decoded).map_err(|_| AuthFailure::InvalidCredentials)?;
        let (id, secret) = text.split_once(':').ok_or(AuthFailure::InvalidCredentials)?;
        Ok(Credential::IdAndSecret(id.to_owned(), Secret::from_presented(secret)))
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(Credential::Secret(Secret::from_presented(rest)))
    } else {
        Err(AuthFailure::InvalidCredentials)
    }
}

/// Authenticates the caller, checks the route's requirement and hands the
/// `Principal` to the handler.
pub async fn authorize(
    State((state, need)): State<(AppState, Need)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if need == Need::Public {
        return Ok(next.run(req).await);
    }
    let ip = client_ip(req.headers(), req.extensions(), &state.config.trusted_proxies);
    let now = state.now();
    let principal = match credential(req.headers()) {
        Err(failure) => return Err(ApiError::Unauthorized(failure)),
        Ok(c) => match state.index.authenticate(&c, now, ip) {
            Ok(p) => p,
            Err(refusal) => {
                state.record_refusal(&refusal, ip, now);
                return Err(ApiError::Unauthorized(refusal.failure));
            }
        },
    };
    if let Some(key) = &principal.key_id {
        state.usage.touch(key, now, ip);
    }
    principal.require(need)?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// The authenticated caller, as the handler sees it.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthorized(AuthFailure::InvalidCredentials))
    }
}

//! Authentication of every `/v1` request against the in-memory index (Hawk,
//! bewits, access tokens, and the key itself), the throttle on failed
//! attempts, `Server-Authorization` on Hawk responses, and the per-route
//! permission check from the endpoint table.

use crate::extract::{client_ip, is_trusted_peer};
use crate::index::{Credential, HawkRequest, Refusal};
use crate::problem::{ApiError, BadRequest};
use crate::sessions;
use crate::state::AppState;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use keyward_core::audit::AuditAction;
use keyward_core::authn::{AuthThrottle, FailureOutcome};
use keyward_core::hawk::{self, HawkHeader, RequestInfo, ResponseInfo};
use keyward_core::ids::KeyId;
use keyward_core::key::AuthFailure;
use keyward_core::policy::{Need, Principal};
use keyward_core::secret::Secret;
use keyward_core::token::looks_like_jwt;
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

/// Largest request body read for a Hawk payload hash.
const MAX_HAWK_BODY: usize = 1024 * 1024;
/// Largest response body hashed for `Server-Authorization`; larger or streamed bodies go without a hash.
const MAX_SIGNED_RESPONSE: usize = 8 * 1024 * 1024;

/// The throttle on failed authentication, shared by every request. While
/// nothing is locked out, checking it is one atomic read: no lock, no allocation.
#[derive(Default)]
pub struct ThrottleGate {
    inner: RwLock<AuthThrottle>,
    /// The latest second any lockout lasts until.
    locked_until: AtomicI64,
}

impl ThrottleGate {
    /// Seconds until an attempt naming `key` from `source` is judged again, if locked out.
    pub fn retry_after(&self, key: Option<&KeyId>, source: Option<IpAddr>, now: i64) -> Option<u64> {
        if self.locked_until.load(Ordering::Relaxed) <= now {
            return None;
        }
        self.inner.read().ok()?.retry_after(key, source, now)
    }

    /// Counts a failed guess; returns the lockouts it started.
    pub fn fail(&self, key: Option<&KeyId>, source: Option<IpAddr>, now: i64) -> FailureOutcome {
        let Ok(mut throttle) = self.inner.write() else { return FailureOutcome::default() };
        let outcome = throttle.fail(key, source, now);
        for lockout in [outcome.key_lockout, outcome.address_lockout].into_iter().flatten() {
            self.locked_until.fetch_max(lockout.until, Ordering::Relaxed);
        }
        outcome
    }
}

/// What the `Authorization` header (or a bewit) presents.
enum Presented {
    Key(Credential),
    Token(String),
    Hawk(Box<HawkHeader>),
    Bewit(hawk::Bewit, String),
    Session(String),
}

fn presented(headers: &HeaderMap, resource: &str) -> Result<Presented, AuthFailure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        // A bewit authorizes one GET without a header.
        if let Some((stripped, bewit)) = hawk::strip_bewit(resource) {
            let bewit = hawk::parse_bewit(bewit).map_err(|_| AuthFailure::InvalidCredentials)?;
            return Ok(Presented::Bewit(bewit, stripped));
        }
        let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(sessions::token_from_cookies);
        return cookie.map(|t| Presented::Session(t.to_owned())).ok_or(AuthFailure::InvalidCredentials);
    };
    // A bewit beside a header is ambiguous; refuse rather than pick one (HAWK.md §4.9).
    if hawk::strip_bewit(resource).is_some() {
        return Err(AuthFailure::InvalidCredentials);
    }
    let value = value.to_str().map_err(|_| AuthFailure::InvalidCredentials)?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(AuthFailure::InvalidCredentials)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("hawk") {
        return hawk::parse_header(value)
            .map(|h| Presented::Hawk(Box::new(h)))
            .map_err(|_| AuthFailure::InvalidCredentials);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| AuthFailure::InvalidCredentials)?;
        let text = String::from_utf8(decoded).map_err(|_| AuthFailure::InvalidCredentials)?;
        let (id, secret) = text.split_once(':').ok_or(AuthFailure::InvalidCredentials)?;
        return Ok(Presented::Key(Credential::IdAndSecret(id.to_owned(), Secret::from_presented(secret))));
    }
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(if looks_like_jwt(rest) {
            Presented::Token(rest.to_owned())
        } else {
            Presented::Key(Credential::Secret(Secret::from_presented(rest)))
        });
    }
    Err(AuthFailure::InvalidCredentials)
}

/// The host and port the client addressed: from `Host`, or from a trusted
/// proxy's `X-Forwarded-Host`/`-Port`/`-Proto`, never from an untrusted header.
pub fn request_authority(headers: &HeaderMap, trusted_peer: bool) -> Option<(String, u16)> {
    let text =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.split(',').next().unwrap_or("").trim());
    let (raw, default_port) = match text("x-forwarded-host").filter(|_| trusted_peer) {
        Some(forwarded) => {
            let https = text("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
            let port = text("x-forwarded-port").and_then(|p| p.parse().ok()).unwrap_or(if https { 443 } else { 80 });
            (forwarded, port)
        }
        None => (text("host")?, 80),
    };
    let (host, port) = match raw.strip_prefix('[') {
        Some(v6) => {
            let (addr, rest) = v6.split_once(']')?;
            (addr, rest.strip_prefix(':').map(str::parse).transpose().ok()?)
        }
        None => match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (raw, None),
        },
    };
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some((host.to_ascii_lowercase(), port.unwrap_or(default_port)))
}

/// The host and port a Hawk MAC covers; a request signed for another host
/// (pointed at this server's address) is refused.
fn hawk_target(state: &AppState, headers: &HeaderMap, trusted_peer: bool) -> Result<(String, u16), ApiError> {
    let (host, port) = request_authority(headers, trusted_peer).ok_or(ApiError::BadRequest {
        code: BadRequest::InvalidHost,
        detail: "the Host header is missing or invalid".into(),
    })?;
    if let Some(pinned) = &state.hawk_authority
        && (port != pinned.1 || !pinned.0.contains(&host))
    {
        tracing::debug!(%host, port, "hawk request signed for a host that is not this service");
        return Err(ApiError::Unauthorized(AuthFailure::InvalidCredentials));
    }
    Ok((host, port))
}

/// A Hawk-authenticated request, remembered to sign the response.
struct HawkContext {
    header: Box<HawkHeader>,
    secret: Secret,
    method: String,
    resource: String,
    host: String,
    port: u16,
    content_type: Option<String>,
}

/// The error for a refusal (already audited and counted).
pub fn refusal_error(refusal: Refusal) -> ApiError {
    match (refusal.retry_after_s, refusal.challenge) {
        (Some(retry_after_s), _) => ApiError::TooManyAttempts { retry_after_s },
        (None, Some(challenge)) => ApiError::StaleTimestamp(challenge),
        (None, None) => ApiError::Unauthorized(refusal.failure),
    }
}

/// Authenticates the caller, checks the route's requirement, hands the
/// `Principal` to the handler and signs Hawk responses (errors included).
pub async fn authorize(
    State((state, need)): State<(AppState, Need)>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if need == Need::Public {
        return Ok(next.run(req).await);
    }
    let (mut parts, body) = req.into_parts();
    let ip = client_ip(&parts.headers, &parts.extensions, &state.config.trusted_proxies);
    let trusted_peer = is_trusted_peer(&parts.extensions, &state.config.trusted_proxies);
    let now = state.now();
    let resource = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let mut body = Some(body);
    let mut hawk_context = None;
    let presented = presented(&parts.headers, &resource).map_err(ApiError::Unauthorized)?;
    if !matches!(presented, Presented::Session(_)) {
        state.throttle_address(Some(ip), now).map_err(refusal_error)?;
    }
    // Refusals of guessable credentials count toward throttling; sessions and tokens are
    // not guessed, so a locked-out key id does not end them.
    let judged = |verdict, per_key| state.judged(verdict, AuditAction::KeyUseFailed, per_key, Some(ip), ip, now);
    let principal = match presented {
        Presented::Key(credential) => {
            judged(state.index.authenticate(&credential, now, ip, true), true).map_err(refusal_error)?
        }
        Presented::Session(token) => {
            let session =
                state.sessions.touch(&token, now).ok_or(ApiError::Unauthorized(AuthFailure::InvalidCredentials))?;
            // Cookies travel with cross-site requests; a write must also repeat the CSRF token.
            let safe = matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS");
            let csrf = parts.headers.get(sessions::CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !safe && !csrf.is_some_and(|c| session.csrf_matches(c)) {
                return Err(ApiError::Core(keyward_core::CoreError::forbidden(
                    "a write in a browser session needs its X-CSRF-Token header",
                )));
            }
            state.index.authenticate_session(&session.key_id, &session.secret_version, now, ip).map_err(|r| {
                state.sessions.end(&token);
                state.record_refusal(&r, ip, now);
                refusal_error(r)
            })?
        }
        Presented::Token(jwt) => {
            let verdict = state
                .tokens
                .verify(&jwt, &state.issuer, now)
                .map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))
                .and_then(|claims| state.index.authenticate_token(&claims, now, ip));
            judged(verdict, false).map_err(refusal_error)?
        }
        Presented::Bewit(bewit, stripped) => {
            hawk::check_bewit_method(parts.method.as_str())
                .map_err(|_| ApiError::Unauthorized(AuthFailure::InvalidCredentials))?;
            let (host, port) = hawk_target(&state, &parts.headers, trusted_peer)?;
            judged(state.index.authenticate_bewit(&bewit, &stripped, &host, port, now, ip), true)
                .map_err(refusal_error)?
        }
        Presented::Hawk(header) => {
            let (host, port) = hawk_target(&state, &parts.headers, trusted_peer)?;
            let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            // The body is read only when the MAC covers a hash of it.
            let payload = match (&header.hash, body.take()) {
                // Over the limit, or cut off while reading: either way the MAC cannot be checked.
                (Some(_), Some(b)) => Some(to_bytes(b, MAX_HAWK_BODY).await.map_err(|_| ApiError::PayloadTooLarge)?),
                (None, b) => {
                    body = b;
                    None
                }
                (Some(_), None) => None,
            };
            let method = parts.method.as_str().to_owned();
            let request = HawkRequest {
                header: &header,
                info: RequestInfo {
                    method: &method,
                    resource: &resource,
                    host: &host,
                    port,
                    content_type: content_type.as_deref(),
                    payload: payload.as_deref(),
                },
            };
            let (verdict, secret) = match state.index.authenticate_hawk(&request, now, ip, &state.nonces) {
                Ok((principal, secret)) => (Ok(principal), Some(secret)),
                Err(refusal) => (Err(refusal), None),
            };
            let principal = judged(verdict, true).map_err(refusal_error)?;
            if let Some(bytes) = payload {
                body = Some(Body::from(bytes));
            }
            if let Some(secret) = secret {
                hawk_context = Some(HawkContext { header, secret, method, resource, host, port, content_type });
            }
            principal
        }
    };
    if let Some(key) = &principal.key_id {
        state.usage.touch(key, now, Some(ip));
    }
    // From here the caller is authenticated: every answer to a Hawk request is signed, refusals included.
    let response = match principal.require(need) {
        Ok(()) => {
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, body.unwrap_or_else(Body::empty))).await
        }
        Err(e) => ApiError::from(e).into_response(),
    };
    match hawk_context {
        Some(ctx) => Ok(sign_response(ctx, response).await),
        None => Ok(response),
    }
}

/// Adds `Server-Authorization` with a hash of the body, so the client can trust it.
async fn sign_response(ctx: HawkContext, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let streamed =
        content_type.as_deref().is_some_and(|ct| ct.starts_with("text/csv") || ct.starts_with("application/x-ndjson"));
    let (payload, body) = if streamed {
        (None, body)
    } else {
        match to_bytes(body, MAX_SIGNED_RESPONSE).await {
            Ok(bytes) => (Some(bytes.clone()), Body::from(bytes)),
            Err(_) => return Response::from_parts(parts, Body::empty()),
        }
    };
    let request = RequestInfo {
        method: &ctx.method,
        resource: &ctx.resource,
        host: &ctx.host,
        port: ctx.port,
        content_type: ctx.content_type.as_deref(),
        payload: None,
    };
    let resp = ResponseInfo { content_type: content_type.as_deref(), payload: payload.as_deref(), ext: None };
    if let Ok(value) = hawk::server_authorization_header(&ctx.header, ctx.secret.expose().as_bytes(), &request, &resp)
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        parts.headers.insert("server-authorization", value);
    }
    Response::from_parts(parts, body)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_authority_comes_from_host_unless_a_trusted_proxy_forwards_it() {
        assert_eq!(
            request_authority(&headers(&[("host", "Example.COM:8443")]), false),
            Some(("example.com".into(), 8443))
        );
        assert_eq!(request_authority(&headers(&[("host", "example.com")]), false), Some(("example.com".into(), 80)));
        assert_eq!(request_authority(&headers(&[("host", "[::1]:8080")]), false), Some(("::1".into(), 8080)));
        let forwarded = headers(&[
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(request_authority(&forwarded, true), Some(("api.example.com".into(), 443)));
        assert_eq!(
            request_authority(&forwarded, false),
            Some(("10.0.0.5".into(), 8080)),
            "untrusted peers cannot forward"
        );
        assert_eq!(request_authority(&headers(&[("host", "a/b")]), false), None);
        assert_eq!(request_authority(&headers(&[("host", "a:notaport")]), false), None);
        assert_eq!(request_authority(&HeaderMap::new(), false), None);
    }
}

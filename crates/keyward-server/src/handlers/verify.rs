//! `POST /v1/verify`: gateways ask whether a credential is good and what it may do.

use crate::auth::Caller;
use crate::extract::ApiJson;
use crate::index::{Credential, HawkRequest, Refusal};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use keyward_core::audit::AuditAction;
use keyward_core::authn;
use keyward_core::clock::{Timestamp, serde_rfc3339};
use keyward_core::hawk::{self, RequestInfo};
use keyward_core::key::AuthFailure;
use keyward_core::permission::Permission;
use keyward_core::policy::Principal;
use keyward_core::secret::Secret;
use keyward_core::token;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// A Hawk request as the gateway received it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HawkToVerify {
    /// The `Authorization` header value (`Hawk id="…", …`).
    authorization: String,
    method: String,
    /// Path and query exactly as received.
    uri: String,
    host: String,
    port: u16,
    content_type: Option<String>,
    /// The body, when the request's MAC covers a payload hash.
    payload: Option<String>,
}

/// Body of `POST /v1/verify`: exactly one of `secret`, `token` or `hawk`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[schema(format = Password)]
    secret: Option<String>,
    token: Option<String>,
    hawk: Option<HawkToVerify>,
    /// The client's address; without it, keys with network restrictions are refused.
    source_ip: Option<String>,
    /// Permissions the call needs, `<scope>:<resource>:read|write`.
    required: Option<Vec<String>>,
}

impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest").field("source_ip", &self.source_ip).finish_non_exhaustive()
    }
}

/// The verdict, whatever it is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    /// `valid`, `invalid_credentials`, `key_locked`, `key_expired`, `ip_not_allowed`,
    /// `too_many_attempts` or `insufficient_permissions`.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// With `too_many_attempts`: seconds until the credential is judged again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl VerifyResponse {
    fn refused(code: &'static str) -> Self {
        Self {
            valid: false,
            code,
            key_id: None,
            owner_id: None,
            org_id: None,
            roles: None,
            permissions: None,
            expires_at: None,
            retry_after_s: None,
        }
    }
}

/// Verifies a key secret, an access token or a Hawk request for a gateway.
#[utoipa::path(post, path = "/v1/verify", tag = "verify", request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 422, body = crate::problem::Problem)))]
pub async fn verify(
    axum::extract::State(state): axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> ApiResult<axum::Json<VerifyResponse>> {
    let forms = [body.secret.is_some(), body.token.is_some(), body.hawk.is_some()].iter().filter(|b| **b).count();
    if forms != 1 {
        return Err(ApiError::field("secret", "give exactly one of secret, token or hawk"));
    }
    let client: Option<IpAddr> = body
        .source_ip
        .as_deref()
        .map(|s| s.parse().map_err(|_| ApiError::field("source_ip", "must be an IPv4 or IPv6 address")))
        .transpose()?;
    // Without the client's address only unrestricted keys can pass: 0.0.0.0 is in no real network.
    let source = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut required = Vec::new();
    for (i, r) in body.required.unwrap_or_default().iter().enumerate() {
        required.push(Permission::parse(r, false).map_err(|e| ApiError::field(format!("required[{i}]"), e))?);
    }
    let now = state.now();
    // Throttling counts per key, and per client address only when the gateway names it.
    if let Err(refusal) = state.throttle_address(client, now) {
        return Ok(axum::Json(answer(&state, &caller, Err(refusal), &required)));
    }
    let (verdict, per_key): (Result<Principal, Refusal>, bool) = if let Some(secret) = body.secret {
        (state.index.authenticate(&Credential::Secret(Secret::from_presented(secret)), now, source, true), true)
    } else if let Some(jwt) = body.token {
        let verdict = token::verify(&jwt, |kid| state.tokens.verifying_key(kid, now), &state.issuer, now)
            .map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))
            .and_then(|claims| state.index.authenticate_token(&claims, now, source));
        (verdict, false)
    } else if let Some(h) = body.hawk {
        let Ok(header) = hawk::parse_header(&h.authorization) else {
            return Ok(axum::Json(VerifyResponse::refused(AuthFailure::InvalidCredentials.code())));
        };
        let payload = h.payload.as_ref().map(String::as_bytes).or(header.hash.as_ref().map(|_| &[][..]));
        let request = HawkRequest {
            header: &header,
            info: RequestInfo {
                method: &h.method,
                resource: &h.uri,
                host: &h.host.to_ascii_lowercase(),
                port: h.port,
                content_type: h.content_type.as_deref(),
                payload,
            },
        };
        (state.index.authenticate_hawk(&request, now, source, &state.nonces).map(|(p, _)| p), true)
    } else {
        return Err(ApiError::field("secret", "give exactly one of secret, token or hawk"));
    };
    let verdict = state.judged(verdict, AuditAction::KeyUseFailed, per_key, client, source, now);
    if let Ok(p) = &verdict
        && let Some(k) = &p.key_id
        && caller.sees_org(&p.org_id)
    {
        state.usage.touch(k, now, client);
    }
    Ok(axum::Json(answer(&state, &caller, verdict, &required)))
}

/// The answer, as much as the core's disclosure rule lets the caller see.
fn answer(
    state: &AppState,
    caller: &Principal,
    verdict: Result<Principal, Refusal>,
    required: &[Permission],
) -> VerifyResponse {
    let v = authn::verify_verdict(verdict, |org| caller.sees_org(org), required);
    let mut resp = VerifyResponse::refused(crate::problem::verify_code(v.code));
    resp.valid = v.valid;
    resp.retry_after_s = v.retry_after_s;
    if let Some((key, org, owner)) = v.key {
        resp.key_id = Some(key.to_string());
        resp.org_id = Some(org.to_string());
        resp.owner_id = Some(owner.to_string());
    }
    if let Some(p) = v.principal {
        let key = p.key_id.as_ref().and_then(|k| state.index.key(k));
        resp.key_id = p.key_id.as_ref().map(ToString::to_string);
        resp.owner_id = Some(p.user_id.to_string());
        resp.org_id = Some(p.org_id.to_string());
        resp.roles = key.as_ref().map(|k| k.record.roles.iter().map(ToString::to_string).collect());
        resp.permissions = Some(p.permissions.to_strings());
        resp.expires_at = key.and_then(|k| k.record.expires_at);
    }
    resp
}

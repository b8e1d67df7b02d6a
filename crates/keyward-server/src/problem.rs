//! The one mapping from errors to RFC 9457 problem documents.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::authn::VerifyCode;
use keyward_core::conflict::Conflict;
use keyward_core::key::AuthFailure;
use keyward_core::{CoreError, FieldError};
use serde::Serialize;

/// A problem document as sent to clients.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `key_limit_reached`.
    pub code: String,
    /// The first rejected field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every rejected field, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Why a request was malformed, apart from its fields and query (those name what was wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The query string could not be read at all.
    InvalidQuery,
    InvalidHost,
    InvalidBody,
    InvalidJson,
}

/// Any error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("authentication failed: {}", .0.code())]
    Unauthorized(AuthFailure),
    /// A Hawk request with a valid MAC but a timestamp outside the window; carries the challenge.
    #[error("stale Hawk timestamp")]
    StaleTimestamp(String),
    /// Too many failed attempts for the key id or from the address; carries `Retry-After`.
    #[error("too many failed attempts")]
    TooManyAttempts { retry_after_s: u64 },
    #[error("{detail}")]
    BadRequest { code: BadRequest, detail: String },
    /// Query parameters that are unknown, repeated or out of range, each named like a validation error.
    #[error("invalid query")]
    InvalidQuery(Vec<FieldError>),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request body not received in time")]
    RequestTimeout,
    #[error("{0}")]
    Internal(String),
}

impl From<keyward_core::store::StoreError> for ApiError {
    fn from(e: keyward_core::store::StoreError) -> Self {
        ApiError::Core(e.into())
    }
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Core(CoreError::field(field, message))
    }

    /// The stable machine-readable code of the problem document.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn parts(&self) -> (StatusCode, &'static str, String, Vec<FieldError>) {
        match self {
            ApiError::Core(CoreError::Validation(errors)) => {
                let detail =
                    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail, errors.clone())
            }
            ApiError::Core(CoreError::NotFound { what }) => {
                (StatusCode::NOT_FOUND, "not_found", format!("{what} not found"), vec![])
            }
            ApiError::Core(CoreError::Conflict(c)) => (StatusCode::CONFLICT, conflict_code(c), c.to_string(), vec![]),
            ApiError::Core(CoreError::Forbidden { detail }) => {
                (StatusCode::FORBIDDEN, "insufficient_permissions", detail.clone(), vec![])
            }
            ApiError::Core(CoreError::Store(_) | CoreError::Internal(_)) | ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server could not complete the request; the cause is in its log".into(),
                vec![],
            ),
            ApiError::Unauthorized(f) => (StatusCode::UNAUTHORIZED, f.code(), auth_detail(*f).into(), vec![]),
            ApiError::StaleTimestamp(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the Hawk timestamp is outside the allowed clock skew; see WWW-Authenticate".into(),
                vec![],
            ),
            ApiError::TooManyAttempts { retry_after_s } => (
                StatusCode::TOO_MANY_REQUESTS,
                AuthFailure::TooManyAttempts.code(),
                format!("too many failed attempts to authenticate; try again in {retry_after_s} s"),
                vec![],
            ),
            ApiError::BadRequest { code, detail } => {
                (StatusCode::BAD_REQUEST, bad_request_code(*code), detail.clone(), vec![])
            }
            ApiError::InvalidQuery(errors) => {
                let detail =
                    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                (StatusCode::BAD_REQUEST, "invalid_query", detail, errors.clone())
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json".into(),
                vec![],
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this endpoint accepts".into(),
                vec![],
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time".into(),
                vec![],
            ),
        }
    }
}

/// The API code of each conflict; these strings live only here.
fn conflict_code(c: &Conflict) -> &'static str {
    match c {
        Conflict::KeyIdTaken => "key_id_taken",
        Conflict::SecretInUse => "secret_in_use",
        Conflict::RoleNameTaken => "role_name_taken",
        Conflict::ScopeExists => "scope_exists",
        Conflict::KeyLimitReached(_) => "key_limit_reached",
        Conflict::ConcurrentUpdate => "concurrent_update",
        Conflict::ConcurrentRotation => "concurrent_rotation",
        Conflict::UserDisabled => "user_disabled",
        Conflict::CannotChangeSelf(_) => "cannot_change_self",
        Conflict::RoleBuiltin { .. } => "role_builtin",
    }
}

/// The API code of each malformed request; these strings live only here.
fn bad_request_code(b: BadRequest) -> &'static str {
    match b {
        BadRequest::InvalidQuery => "invalid_query",
        BadRequest::InvalidHost => "invalid_host",
        BadRequest::InvalidBody => "invalid_body",
        BadRequest::InvalidJson => "invalid_json",
    }
}

/// The `code` of a verify answer.
#[must_use]
pub fn verify_code(c: VerifyCode) -> &'static str {
    match c {
        VerifyCode::Valid => "valid",
        VerifyCode::InsufficientPermissions => "insufficient_permissions",
        VerifyCode::Refused(f) => f.code(),
    }
}

fn auth_detail(f: AuthFailure) -> &'static str {
    match f {
        AuthFailure::InvalidCredentials => "the credentials are missing, unknown or wrong",
        AuthFailure::KeyLocked => "this API key is locked",
        AuthFailure::KeyExpired => "this API key has expired",
        AuthFailure::IpNotAllowed => "this API key may not be used from this network address",
        AuthFailure::TooManyAttempts => "too many failed attempts to authenticate; wait and try again",
    }
}

/// Builds a problem response; also used where no `ApiError` exists (fallback routes).
pub fn problem_response(status: StatusCode, code: &str, detail: String, errors: Vec<FieldError>) -> Response {
    let body = Problem {
        type_: format!("urn:keyward:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
        field: errors.first().map(|e| e.field.clone()),
        errors,
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    resp
}

impl ApiError {
    /// The status and the detail a client would see (the console shows it in the page).
    #[must_use]
    pub fn public_detail(&self) -> (StatusCode, String) {
        let (status, _, detail, _) = self.parts();
        (status, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail, errors) = self.parts();
        if status.is_server_error() {
            // The cause goes to the log (inside the request's span), never to the client.
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = problem_response(status, code, detail, errors);
        if let ApiError::StaleTimestamp(challenge) = &self
            && let Ok(value) = HeaderValue::from_str(challenge)
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        } else if let ApiError::TooManyAttempts { retry_after_s } = &self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        } else if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"keyward\", Bearer, Hawk"));
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot carry another request.
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::conflict::{KeyLimit, SelfChange};

    /// The codes are part of the contract: a renamed variant must not change one.
    #[test]
    fn conflicts_answer_409_with_their_stable_codes() {
        let cases = [
            (Conflict::KeyIdTaken, "key_id_taken"),
            (Conflict::SecretInUse, "secret_in_use"),
            (Conflict::RoleNameTaken, "role_name_taken"),
            (Conflict::ScopeExists, "scope_exists"),
            (Conflict::KeyLimitReached(KeyLimit::PerUser { max: 1 }), "key_limit_reached"),
            (Conflict::ConcurrentUpdate, "concurrent_update"),
            (Conflict::ConcurrentRotation, "concurrent_rotation"),
            (Conflict::UserDisabled, "user_disabled"),
            (Conflict::CannotChangeSelf(SelfChange::Delete), "cannot_change_self"),
            (Conflict::RoleBuiltin { role: "auditor".into() }, "role_builtin"),
        ];
        for (conflict, code) in cases {
            let detail = conflict.to_string();
            let (status, got, got_detail, _) = ApiError::Core(CoreError::Conflict(conflict)).parts();
            assert_eq!((status, got, got_detail), (StatusCode::CONFLICT, code, detail));
        }
    }

    #[test]
    fn bad_requests_answer_400_with_their_stable_codes() {
        let cases = [
            (BadRequest::InvalidQuery, "invalid_query"),
            (BadRequest::InvalidHost, "invalid_host"),
            (BadRequest::InvalidBody, "invalid_body"),
            (BadRequest::InvalidJson, "invalid_json"),
        ];
        for (kind, code) in cases {
            let (status, got, _, _) = ApiError::BadRequest { code: kind, detail: String::new() }.parts();
            assert_eq!((status, got), (StatusCode::BAD_REQUEST, code));
        }
    }
}

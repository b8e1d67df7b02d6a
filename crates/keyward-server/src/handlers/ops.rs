//! Operations: liveness, readiness and the OpenAPI document.

use crate::problem::problem_response;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "ready"),
    (status = 503, description = "The store does not answer (`store_unavailable`)", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    // A store that hangs (a PostgreSQL behind a dead link) must not hang the probe.
    let answer = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    match answer {
        Ok(Ok(())) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => not_ready(&e.to_string()),
        Err(_) => not_ready("the store did not answer in time"),
    }
}

/// How long readiness waits for the store.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

fn not_ready(cause: &str) -> Response {
    tracing::error!(error = %cause, "readiness check failed");
    problem_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the store does not answer, or its data is gone or damaged; the cause is in the log".into(),
        vec![],
    )
}

/// Prometheus metrics: request counts, refused credentials, tokens issued, keys by status.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let counts = state.index.status_counts(state.now());
    let body = state.metrics.render(&counts);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "the OpenAPI 3.1 document")))]
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(crate::api::openapi())
}

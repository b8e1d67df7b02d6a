//! `/v1/audit`: read, filter, export and verify the tamper-evident log.

use crate::audit::{AuditView, Format, VerifyReport, export, verify};
use crate::auth::Caller;
use crate::extract::{PageParams, parse_paging};
use crate::handlers::keys::query_error;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::Page;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use keyward_core::clock::Timestamp;
use keyward_core::ids::OrgId;
use keyward_core::policy::Principal;
use keyward_core::store::AuditQuery;
use keyward_core::{CoreError, FieldError};
use serde::Deserialize;

/// Filters of `GET /v1/audit` and its export.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// e.g. `key.create`, `key.roll`, `key.use_failed`.
    action: Option<String>,
    actor_id: Option<String>,
    target_id: Option<String>,
    /// RFC 3339; entries at or after.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339; entries at or before.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Org filter (account admins; default: every org they see).
    org_id: Option<String>,
}

/// The format of `GET /v1/audit/export`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` or `ndjson` (default).
    #[param(value_type = Option<ExportFormat>, inline)]
    format: Option<String>,
}

/// The formats of an export.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only: `Format` is the parsed value
enum ExportFormat {
    Csv,
    Ndjson,
}

fn parse_time(field: &str, v: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let v = v.filter(|s| !s.is_empty())?;
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.to_utc())
        .map_err(|_| errors.push(FieldError::new(field, "must be an RFC 3339 time such as 2026-11-22T10:00:00Z")))
        .ok()
}

fn org_scope(caller: &Principal, org: Option<&str>) -> Result<Option<OrgId>, CoreError> {
    caller.org_filter(org.filter(|s| !s.is_empty()).map(OrgId::from_trusted))
}

fn parse_query(caller: &Principal, p: &AuditParams, errors: &mut Vec<FieldError>) -> Result<AuditQuery, CoreError> {
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let query = AuditQuery {
        org_id: org_scope(caller, p.org_id.as_deref())?,
        action: nonempty(&p.action),
        actor_id: nonempty(&p.actor_id),
        target_id: nonempty(&p.target_id),
        from: parse_time("from", p.from.as_deref(), errors),
        to: parse_time("to", p.to.as_deref(), errors),
        ..AuditQuery::default()
    };
    Ok(query)
}

/// Audit entries, newest first, with filters and paging.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams, PageParams),
    responses((status = 200, body = Page<AuditView>), (status = 404, description = "`org_id` names an organization the caller does not see (`not_found`)", body = crate::problem::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<AuditParams>, QueryRejection>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<axum::Json<Page<AuditView>>> {
    let Query(p) = params.map_err(query_error)?;
    let Query(paging) = paging.map_err(query_error)?;
    let mut errors = Vec::new();
    let (page, per_page) = parse_paging(paging.page.as_deref(), paging.per_page.as_deref(), &mut errors);
    let mut query = parse_query(&caller, &p, &mut errors)?;
    if !errors.is_empty() {
        return Err(ApiError::InvalidQuery(errors));
    }
    query.newest_first = true;
    query.limit = per_page;
    query.offset = u64::from(page - 1) * u64::from(per_page);
    let (entries, total) = state.store.list_audit(&query).await?;
    Ok(axum::Json(Page { items: entries.into_iter().map(AuditView::from).collect(), total, page, per_page }))
}

/// Every matching entry, oldest first, streamed as CSV or NDJSON.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(AuditParams, ExportParams),
    responses((status = 200, description = "Every matching entry, streamed", content(
        (String = "application/x-ndjson"),
        (String = "text/csv"),
    )), (status = 404, description = "`org_id` names an organization the caller does not see (`not_found`)", body = crate::problem::Problem)))]
pub async fn export_entries(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<AuditParams>, QueryRejection>,
    wanted: Result<Query<ExportParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = params.map_err(query_error)?;
    let Query(wanted) = wanted.map_err(query_error)?;
    let mut errors = Vec::new();
    let format = match wanted.format.as_deref() {
        None | Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(_) => {
            errors.push(FieldError::new("format", "must be csv or ndjson"));
            Format::Ndjson
        }
    };
    let query = parse_query(&caller, &p, &mut errors)?;
    if !errors.is_empty() {
        return Err(ApiError::InvalidQuery(errors));
    }
    let (content_type, file) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "keyward-audit.csv"),
        Format::Ndjson => ("application/x-ndjson", "keyward-audit.ndjson"),
    };
    let body = Body::from_stream(export(state.store.clone(), query, format));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        body,
    )
        .into_response())
}

/// Query of `GET /v1/audit/verify`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// Org to verify (account admins; default: every org they see).
    org_id: Option<String>,
}

/// Re-walks the hash chain and names the first entry that does not fit.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyParams), responses((status = 200, body = VerifyReport), (status = 404, description = "`org_id` names an organization the caller does not see (`not_found`)", body = crate::problem::Problem)))]
pub async fn verify_chain(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<VerifyParams>, QueryRejection>,
) -> ApiResult<axum::Json<VerifyReport>> {
    let Query(p) = params.map_err(query_error)?;
    let org = org_scope(&caller, p.org_id.as_deref())?;
    Ok(axum::Json(verify(state.store.as_ref(), org.as_ref()).await?))
}

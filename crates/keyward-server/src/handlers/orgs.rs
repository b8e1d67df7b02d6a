//! `/v1/orgs`: organizations and their settings.

use crate::auth::Caller;
use crate::extract::{ApiJson, ClientIp, PageParams};
use crate::handlers::keys::query_error;
use crate::problem::ApiResult;
use crate::state::{AppState, audit_event};
use crate::views::{OrgView, Page};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::CoreError;
use keyward_core::admin::UpdateOrgRequest;
use keyward_core::admin::check_display_name;
use keyward_core::audit::{AuditAction, TargetType};
use keyward_core::ids::OrgId;
use keyward_core::input::Problems;
use keyward_core::model::{Org, OrgSettings};
use serde::Deserialize;
use serde_json::json;

/// Organizations the caller can see.
#[utoipa::path(get, path = "/v1/orgs", tag = "orgs", params(PageParams), responses((status = 200, body = Page<OrgView>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<axum::Json<Page<OrgView>>> {
    let Query(paging) = params.map_err(query_error)?;
    let orgs = state.store.list_orgs().await?;
    let views: Vec<OrgView> = orgs.iter().filter(|o| caller.sees_org(&o.id)).map(OrgView::from).collect();
    let (page, per_page) = paging.or_whole(views.len())?;
    Ok(axum::Json(Page::of(views, page, per_page)))
}

/// Body of `POST /v1/orgs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// 1–255 characters; required.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 255)]
    name: Option<String>,
}

/// Creates an organization (account admins only).
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = CreateOrgRequest,
    responses((status = 201, body = OrgView), (status = 403, body = crate::problem::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateOrgRequest>,
) -> ApiResult<impl IntoResponse> {
    let name = body.name.unwrap_or_default();
    let mut problems = Problems::default();
    check_display_name(&mut problems, "name", &name);
    problems.finish(())?;
    let org = Org { id: OrgId::generate(), name, settings: OrgSettings::default(), created_at: state.now() };
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        org.id.as_str(),
        AuditAction::OrgCreate,
        (TargetType::Org, org.id.as_str()),
        json!({"name": org.name}),
    );
    state.store.insert_org(&org, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(OrgView::from(&org))))
}

async fn load(state: &AppState, caller: &keyward_core::policy::Principal, id: &str) -> ApiResult<Org> {
    let id = OrgId::from_trusted(id);
    if !caller.sees_org(&id) {
        return Err(CoreError::NotFound { what: "organization" }.into());
    }
    Ok(state.store.get_org(&id).await?.ok_or(CoreError::NotFound { what: "organization" })?)
}

/// One organization and its settings.
#[utoipa::path(get, path = "/v1/orgs/{id}", tag = "orgs", params(("id" = String, Path)),
    responses((status = 200, body = OrgView), (status = 404, body = crate::problem::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrgView>> {
    Ok(axum::Json(OrgView::from(&load(&state, &caller, &id).await?)))
}

/// Changes an organization's name or settings.
#[utoipa::path(patch, path = "/v1/orgs/{id}", tag = "orgs", params(("id" = String, Path)), request_body = UpdateOrgRequest,
    responses((status = 200, body = OrgView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateOrgRequest>,
) -> ApiResult<axum::Json<OrgView>> {
    let mut org = load(&state, &caller, &id).await?;
    body.apply(&mut org, caller.cross_org)?;
    let details = json!({"name": org.name, "max_keys_per_user": org.settings.max_keys_per_user,
        "default_expiry_days": org.settings.default_expiry_days, "allow_direct_secret": org.settings.allow_direct_secret,
        "audit_retention_days": org.settings.audit_retention_days,
        "hawk_require_payload_hash": org.settings.hawk_require_payload_hash});
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        org.id.as_str(),
        AuditAction::OrgUpdate,
        (TargetType::Org, org.id.as_str()),
        details,
    );
    state.store.update_org(&org, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok(axum::Json(OrgView::from(&org)))
}

//! `/v1/scopes`: the catalog of scopes and resources keys can be granted.

use crate::auth::Caller;
use crate::extract::{ApiJson, ClientIp, PageParams};
use crate::handlers::keys::query_error;
use crate::problem::ApiResult;
use crate::state::{AppState, audit_event};
use crate::views::{Page, ScopeView};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::admin::CreateScopeRequest;
use keyward_core::audit::{AuditAction, TargetType};
use keyward_core::model::ScopeDef;
use keyward_core::permission::KEYWARD_SCOPE;
use serde_json::json;

/// The service's own scope and the scopes the caller's org declared.
#[utoipa::path(get, path = "/v1/scopes", tag = "scopes", params(PageParams), responses((status = 200, body = Page<ScopeView>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<axum::Json<Page<ScopeView>>> {
    let Query(paging) = params.map_err(query_error)?;
    let declared = state.store.list_scopes().await?;
    let catalog = state.index.directory().catalog(&caller.org_id);
    let views: Vec<ScopeView> = catalog
        .entries()
        .map(|(name, resources)| ScopeView {
            name: name.to_owned(),
            description: if name == KEYWARD_SCOPE {
                "Keyward itself.".to_owned()
            } else {
                declared
                    .iter()
                    .find(|d| d.org_id == caller.org_id && d.name == name)
                    .map(|d| d.description.clone())
                    .unwrap_or_default()
            },
            resources: resources.to_vec(),
            builtin: name == KEYWARD_SCOPE,
        })
        .collect();
    let (page, per_page) = paging.or_whole(views.len())?;
    Ok(axum::Json(Page::of(views, page, per_page)))
}

/// Declares a scope for the org's own APIs, with its resources.
#[utoipa::path(post, path = "/v1/scopes", tag = "scopes", request_body = CreateScopeRequest,
    responses((status = 201, body = ScopeView), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateScopeRequest>,
) -> ApiResult<impl IntoResponse> {
    let (name, description, resources) = body.into_parts()?;
    let scope = ScopeDef { org_id: caller.org_id.clone(), name, description, resources };
    let details = json!({"resources": scope.resources});
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        caller.org_id.as_str(),
        AuditAction::ScopeCreate,
        (TargetType::Scope, &scope.name),
        details,
    );
    state.store.insert_scope(&scope, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    let view =
        ScopeView { name: scope.name, description: scope.description, resources: scope.resources, builtin: false };
    Ok((StatusCode::CREATED, axum::Json(view)))
}

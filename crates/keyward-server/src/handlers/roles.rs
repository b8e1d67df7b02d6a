//! `/v1/roles`: built-in and custom roles.

use crate::auth::Caller;
use crate::extract::{ApiJson, ClientIp, parse_paging};
use crate::handlers::keys::query_error;
use crate::problem::{ApiError, ApiResult};
use crate::state::{AppState, audit_event};
use crate::views::{Page, RoleView};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::admin::{CreateRoleRequest, UpdateRoleRequest};
use keyward_core::audit::{AuditAction, TargetType};
use keyward_core::ids::{OrgId, RoleId};
use keyward_core::model::Role;
use keyward_core::policy::{Directory, Principal};
use keyward_core::{Conflict, CoreError};
use serde::Deserialize;
use serde_json::json;

/// Query of `GET /v1/roles`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRolesParams {
    /// Org whose custom roles to list (account admins; default: the caller's).
    org_id: Option<String>,
    /// From 1.
    #[param(value_type = Option<u32>, minimum = 1)]
    page: Option<String>,
    /// 10, 25, 50 or 100 (default 25).
    #[param(value_type = Option<crate::extract::PerPage>, inline)]
    per_page: Option<String>,
}

/// The built-in roles and the org's custom roles.
#[utoipa::path(get, path = "/v1/roles", tag = "roles", params(ListRolesParams), responses((status = 200, body = Page<RoleView>), (status = 404, description = "`org_id` names an organization the caller does not see (`not_found`)", body = crate::problem::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<ListRolesParams>, QueryRejection>,
) -> ApiResult<axum::Json<Page<RoleView>>> {
    let Query(p) = params.map_err(query_error)?;
    let mut errors = Vec::new();
    let (page, per_page) = parse_paging(p.page.as_deref(), p.per_page.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::InvalidQuery(errors));
    }
    let org = p.org_id.filter(|s| !s.is_empty()).map_or_else(|| caller.org_id.clone(), OrgId::from_trusted);
    if !caller.sees_org(&org) {
        return Err(CoreError::NotFound { what: "organization" }.into());
    }
    let mut roles: Vec<Role> = state
        .index
        .directory()
        .roles
        .values()
        .filter(|r| r.org_id.as_ref().is_none_or(|o| *o == org))
        .cloned()
        .collect();
    roles.sort_by(|a, b| b.builtin.cmp(&a.builtin).then_with(|| a.name.cmp(&b.name)));
    Ok(axum::Json(Page::of(roles.iter().map(RoleView::from).collect(), page, per_page)))
}

/// Creates a custom role in the caller's org.
#[utoipa::path(post, path = "/v1/roles", tag = "roles", request_body = CreateRoleRequest,
    responses((status = 201, body = RoleView), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateRoleRequest>,
) -> ApiResult<impl IntoResponse> {
    let change = body.into_change()?;
    let permissions = change.permissions.unwrap_or_default();
    caller.check_role_definition(&state.index.directory(), &caller.org_id, &permissions)?;
    let role = Role {
        id: RoleId::generate(),
        org_id: Some(caller.org_id.clone()),
        name: change.name.unwrap_or_default(),
        description: change.description.unwrap_or_default(),
        permissions,
        max_keys: change.max_keys.flatten(),
        builtin: false,
    };
    let view = RoleView::from(&role);
    let details = json!({"name": view.name, "permissions": view.permissions, "max_keys": view.max_keys});
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        caller.org_id.as_str(),
        AuditAction::RoleCreate,
        (TargetType::Role, role.id.as_str()),
        details,
    );
    state.store.insert_role(&role, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

fn load(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Role> {
    let role = state
        .index
        .directory()
        .roles
        .get(&RoleId::from_trusted(id))
        .cloned()
        .ok_or(CoreError::NotFound { what: "role" })?;
    if role.org_id.as_ref().is_some_and(|o| !caller.sees_org(o)) {
        return Err(CoreError::NotFound { what: "role" }.into());
    }
    Ok(role)
}

/// Changing or deleting a role changes (or deletes) its holders' keys: the
/// caller must be able to manage every holder and every key's owner.
fn check_may_manage_holders(state: &AppState, caller: &Principal, role: &Role) -> ApiResult<()> {
    let directory = state.index.directory();
    let mut owners: std::collections::BTreeSet<_> =
        directory.users.values().filter(|u| u.roles.contains(&role.id)).map(|u| u.id.clone()).collect();
    owners.extend(state.index.owners_of_keys_with_role(&role.id));
    for owner in owners.iter().filter_map(|id| directory.users.get(id)) {
        caller.check_may_manage(&directory.user_role_permissions(owner), Directory::user_is_account_admin(owner))?;
    }
    Ok(())
}

fn refuse_builtin(role: &Role) -> ApiResult<()> {
    if role.builtin {
        return Err(CoreError::Conflict(Conflict::RoleBuiltin { role: role.id.to_string() }).into());
    }
    Ok(())
}

/// One role.
#[utoipa::path(get, path = "/v1/roles/{id}", tag = "roles", params(("id" = String, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = crate::problem::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<RoleView>> {
    Ok(axum::Json(RoleView::from(&load(&state, &caller, &id)?)))
}

/// Changes a custom role; keys carrying it follow at once.
#[utoipa::path(patch, path = "/v1/roles/{id}", tag = "roles", params(("id" = String, Path)), request_body = UpdateRoleRequest,
    responses((status = 200, body = RoleView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRoleRequest>,
) -> ApiResult<axum::Json<RoleView>> {
    let mut role = load(&state, &caller, &id)?;
    refuse_builtin(&role)?;
    check_may_manage_holders(&state, &caller, &role)?;
    let org = role.org_id.clone().unwrap_or_else(|| caller.org_id.clone());
    let directory = state.index.directory();
    // Changing a role is granting what it holds: the caller must hold it all, before and after.
    caller.check_role_definition(&directory, &org, &role.permissions)?;
    let change = body.into_change()?;
    if let Some(p) = change.permissions {
        caller.check_role_definition(&directory, &org, &p)?;
        role.permissions = p;
    }
    if let Some(n) = change.name {
        role.name = n;
    }
    if let Some(d) = change.description {
        role.description = d;
    }
    if let Some(m) = change.max_keys {
        role.max_keys = m;
    }
    let view = RoleView::from(&role);
    let details = json!({"name": view.name, "permissions": view.permissions, "max_keys": view.max_keys});
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        org.as_str(),
        AuditAction::RoleUpdate,
        (TargetType::Role, role.id.as_str()),
        details,
    );
    state.store.update_role(&role, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok(axum::Json(view))
}

/// Deletes a custom role: its holders lose it and every key carrying it is deleted.
#[utoipa::path(delete, path = "/v1/roles/{id}", tag = "roles", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let role = load(&state, &caller, &id)?;
    refuse_builtin(&role)?;
    check_may_manage_holders(&state, &caller, &role)?;
    let org = role.org_id.clone().unwrap_or_else(|| caller.org_id.clone());
    caller.check_role_definition(&state.index.directory(), &org, &role.permissions)?;
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        org.as_str(),
        AuditAction::RoleDelete,
        (TargetType::Role, role.id.as_str()),
        json!({"name": role.name}),
    );
    state.store.delete_role(&role.id, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

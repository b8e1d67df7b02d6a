//! `/v1/users`: people and machine identities (Service Requestors).

use crate::auth::Caller;
use crate::extract::{ApiJson, ClientIp, parse_paging};
use crate::handlers::keys::query_error;
use crate::problem::{ApiError, ApiResult};
use crate::state::{AppState, audit_event};
use crate::views::{Page, UserView};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::CoreError;
use keyward_core::admin::{CreateUserRequest, UpdateUserRequest};
use keyward_core::audit::{AuditAction, TargetType};
use keyward_core::conflict::{Conflict, SelfChange};
use keyward_core::ids::{OrgId, RoleId, UserId};
use keyward_core::model::{User, UserKind, UserStatus};
use keyward_core::policy::Principal;
use serde::Deserialize;
use serde_json::json;

/// Query of `GET /v1/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// Substring of id, name or email (case-insensitive).
    q: Option<String>,
    /// `human` or `service`.
    #[param(value_type = Option<UserKind>, inline)]
    kind: Option<String>,
    role_id: Option<String>,
    /// `active` or `disabled`.
    #[param(value_type = Option<UserStatus>, inline)]
    status: Option<String>,
    /// Org filter (account admins; default: every org they see).
    org_id: Option<String>,
    /// From 1.
    #[param(value_type = Option<u32>, minimum = 1)]
    page: Option<String>,
    /// 10, 25, 50 or 100 (default 25).
    #[param(value_type = Option<crate::extract::PerPage>, inline)]
    per_page: Option<String>,
}

/// Users the caller can see, newest first.
#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListUsersParams),
    responses((status = 200, body = Page<UserView>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<ListUsersParams>, QueryRejection>,
) -> ApiResult<axum::Json<Page<UserView>>> {
    let Query(p) = params.map_err(query_error)?;
    let mut errors = Vec::new();
    let (page, per_page) = parse_paging(p.page.as_deref(), p.per_page.as_deref(), &mut errors);
    let kind = match p.kind.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("human") => Some(UserKind::Human),
        Some("service") => Some(UserKind::Service),
        Some(_) => {
            errors.push(keyward_core::FieldError::new("kind", "must be human or service"));
            None
        }
    };
    let status = match p.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("active") => Some(UserStatus::Active),
        Some("disabled") => Some(UserStatus::Disabled),
        Some(_) => {
            errors.push(keyward_core::FieldError::new("status", "must be active or disabled"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidQuery(errors));
    }
    let org = p.org_id.filter(|s| !s.is_empty()).map(OrgId::from_trusted);
    let q = p.q.map(|q| q.to_lowercase()).filter(|q| !q.is_empty());
    let role = p.role_id.filter(|s| !s.is_empty()).map(RoleId::from_trusted);
    let mut users: Vec<User> = state
        .index
        .directory()
        .users
        .values()
        .filter(|u| caller.sees_org(&u.org_id) && org.as_ref().is_none_or(|o| *o == u.org_id))
        .filter(|u| kind.is_none_or(|k| k == u.kind) && status.is_none_or(|s| s == u.status))
        .filter(|u| role.as_ref().is_none_or(|r| u.roles.contains(r)))
        .filter(|u| {
            q.as_ref().is_none_or(|q| {
                u.id.as_str().to_lowercase().contains(q)
                    || u.name.to_lowercase().contains(q)
                    || u.email.as_ref().is_some_and(|e| e.to_lowercase().contains(q))
            })
        })
        .cloned()
        .collect();
    users.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    let views = users.iter().map(UserView::from).collect();
    Ok(axum::Json(Page::of(views, page, per_page)))
}

/// Creates a user in the caller's org, or in `org_id` (account admins).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 403, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = match body.org_id.clone().map(OrgId::from_trusted) {
        None => caller.org_id.clone(),
        Some(org) if org == caller.org_id || caller.cross_org => org,
        Some(_) => {
            return Err(CoreError::forbidden("only an account_admin creates users in another organization").into());
        }
    };
    let mut spec = body.into_spec()?;
    let directory = state.index.directory();
    if !directory.orgs.contains_key(&org_id) {
        return Err(ApiError::field("org_id", "no such organization"));
    }
    spec.roles = directory.resolve_roles(&org_id, spec.roles);
    caller.check_role_assignment(&directory, &org_id, &spec.roles)?;
    let user = User {
        id: UserId::generate(),
        org_id,
        name: spec.name,
        email: spec.email,
        kind: spec.kind,
        roles: spec.roles,
        status: UserStatus::Active,
        created_at: state.now(),
        token_epoch: 0,
    };
    let details = json!({"name": user.name, "kind": user.kind, "roles": user.roles});
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        user.org_id.as_str(),
        AuditAction::UserCreate,
        (TargetType::User, user.id.as_str()),
        details,
    );
    state.store.insert_user(&user, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(UserView::from(&user))))
}

/// A user the caller can see; others read as missing.
fn load(state: &AppState, caller: &Principal, id: &str) -> ApiResult<User> {
    let user = state.index.user(&UserId::from_trusted(id)).ok_or(CoreError::NotFound { what: "user" })?;
    if !caller.sees_org(&user.org_id) {
        return Err(CoreError::NotFound { what: "user" }.into());
    }
    Ok(user)
}

/// Nobody changes a user who holds more than they do (disabled or not), and only an account admin changes an account admin.
fn check_may_change(state: &AppState, caller: &Principal, user: &User) -> ApiResult<()> {
    caller.check_may_manage_user(&state.index.directory(), user)?;
    Ok(())
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = crate::problem::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(UserView::from(&load(&state, &caller, &id)?)))
}

/// Changes a user's name, email, roles or status. Keys follow: a disabled
/// user's keys stop working, and a key never exceeds its owner's new roles.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let mut user = load(&state, &caller, &id)?;
    check_may_change(&state, &caller, &user)?;
    let mut change = body.into_change()?;
    change.roles = change.roles.map(|r| state.index.directory().resolve_roles(&user.org_id, r));
    if change.status == Some(UserStatus::Disabled) && user.id == caller.user_id {
        return Err(CoreError::Conflict(Conflict::CannotChangeSelf(SelfChange::Disable)).into());
    }
    if let Some(roles) = &change.roles {
        caller.check_role_assignment(&state.index.directory(), &user.org_id, roles)?;
    }
    let mut changed = Vec::new();
    if let Some(v) = change.name {
        user.name = v;
        changed.push("name");
    }
    if let Some(v) = change.email {
        user.email = v;
        changed.push("email");
    }
    if let Some(v) = change.roles {
        user.roles = v;
        changed.push("roles");
    }
    if let Some(v) = change.status {
        if v == UserStatus::Disabled && user.status != UserStatus::Disabled {
            // Tokens bought before a disable never work again, re-enabled or not.
            user.token_epoch = user.token_epoch.wrapping_add(1);
        }
        user.status = v;
        changed.push("status");
    }
    let details = json!({"changed": changed, "roles": user.roles, "status": user.status});
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        user.org_id.as_str(),
        AuditAction::UserUpdate,
        (TargetType::User, user.id.as_str()),
        details,
    );
    state.store.update_user(&user, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok(axum::Json(UserView::from(&user)))
}

/// Deletes a user and every key they own.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = load(&state, &caller, &id)?;
    check_may_change(&state, &caller, &user)?;
    if user.id == caller.user_id {
        return Err(CoreError::Conflict(Conflict::CannotChangeSelf(SelfChange::Delete)).into());
    }
    let event = audit_event(
        &caller,
        ip,
        state.now(),
        user.org_id.as_str(),
        AuditAction::UserDelete,
        (TargetType::User, user.id.as_str()),
        json!({"name": user.name}),
    );
    state.store.delete_user(&user.id, &event).await?;
    state.index.reload(state.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

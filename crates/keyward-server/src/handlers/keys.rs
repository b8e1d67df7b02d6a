//! `/v1/keys`: the key lifecycle.

use crate::auth::Caller;
use crate::extract::{ApiJson, ClientIp};
use crate::problem::{ApiError, ApiResult, BadRequest};
use crate::state::{AppState, audit_event};
use crate::views::{BulkResponse, BulkResult, ImportedKey, KeyCounts, KeyList, KeyView, KeyWithSecret};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::audit::{AuditAction, TargetType};
use keyward_core::clock::Timestamp;
use keyward_core::ids::{KeyId, OrgId, RoleId, UserId};
use keyward_core::key::{CreateKeyRequest, KeySpec, UpdateKeyRequest, parse_grace_period};
use keyward_core::model::{KeyRecord, KeyStatus, UserStatus};
use keyward_core::permission::Access;
use keyward_core::policy::Principal;
use keyward_core::secret::Secret;
use keyward_core::store::{KeyQuery, KeySort};
use keyward_core::{Conflict, CoreError};
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;

/// Responses that carry a secret must not be cached anywhere.
const NO_STORE: [(axum::http::HeaderName, &str); 1] = [(axum::http::header::CACHE_CONTROL, "no-store")];

/// Query of `GET /v1/keys`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListKeysParams {
    /// Substring of id, name, description or comment (case-insensitive).
    #[param(max_length = 255)]
    pub(crate) q: Option<String>,
    /// `active`, `locked` or `expired`.
    #[param(value_type = Option<KeyStatus>, inline)]
    pub(crate) status: Option<String>,
    pub(crate) owner_id: Option<String>,
    pub(crate) role_id: Option<String>,
    /// Org filter (account admins).
    pub(crate) org_id: Option<String>,
    /// `name`, `created_at`, `expires_at`, `last_used_at` or `status`; `-` prefix for descending. Default `-created_at`.
    #[param(pattern = "^-?(name|created_at|expires_at|last_used_at|status)$")]
    pub(crate) sort: Option<String>,
    /// From 1.
    #[param(value_type = Option<u32>, minimum = 1)]
    pub(crate) page: Option<String>,
    /// 10, 25, 50 or 100 (default 25).
    #[param(value_type = Option<crate::extract::PerPage>, inline)]
    pub(crate) per_page: Option<String>,
}

pub fn query_error(e: QueryRejection) -> ApiError {
    ApiError::BadRequest { code: BadRequest::InvalidQuery, detail: e.body_text() }
}

fn parse_list(p: ListKeysParams, caller: &Principal, now: Timestamp) -> ApiResult<KeyQuery> {
    let mut errors = Vec::new();
    let status = p.status.as_deref().filter(|s| !s.is_empty()).and_then(|s| {
        KeyStatus::parse(s).or_else(|| {
            errors.push(keyward_core::FieldError::new("status", "must be active, locked or expired"));
            None
        })
    });
    let (sort, descending) = match p.sort.as_deref().filter(|s| !s.is_empty()) {
        None => (KeySort::CreatedAt, true),
        Some(s) => KeySort::parse(s).unwrap_or_else(|| {
            errors.push(keyward_core::FieldError::new(
                "sort",
                "must be name, created_at, expires_at, last_used_at or status, optionally prefixed with -",
            ));
            (KeySort::CreatedAt, true)
        }),
    };
    let (page, per_page) = crate::extract::parse_paging(p.page.as_deref(), p.per_page.as_deref(), &mut errors);
    if p.q.as_ref().is_some_and(|q| q.chars().count() > 255) {
        errors.push(keyward_core::FieldError::new("q", "must be at most 255 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidQuery(errors));
    }
    let owner_id = caller.key_owner_filter(p.owner_id.filter(|s| !s.is_empty()).map(UserId::from_trusted))?;
    let org_id = caller.org_filter(p.org_id.filter(|s| !s.is_empty()).map(OrgId::from_trusted))?;
    Ok(KeyQuery {
        org_id,
        owner_id,
        role_id: p.role_id.filter(|s| !s.is_empty()).map(RoleId::from_trusted),
        q: p.q,
        status,
        sort,
        descending,
        page,
        per_page,
        now,
    })
}

/// List keys with search, filters, sorting, paging and per-status counts.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(ListKeysParams),
    responses((status = 200, body = KeyList), (status = 404, description = "`owner_id` or `org_id` names nobody the caller sees (`not_found`)", body = crate::problem::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<ListKeysParams>, QueryRejection>,
) -> ApiResult<axum::Json<KeyList>> {
    let Query(params) = params.map_err(query_error)?;
    list_keys(&state, &caller, params).await
}

/// The key list the API answers and the console shows.
pub(crate) async fn list_keys(
    state: &AppState,
    caller: &Principal,
    params: ListKeysParams,
) -> ApiResult<axum::Json<KeyList>> {
    let now = state.now();
    let query = parse_list(params, caller, now)?;
    let page = state.store.list_keys(&query).await?;
    Ok(axum::Json(KeyList {
        items: page.items.iter().map(|k| KeyView::new(k, &state.index, &state.usage, now)).collect(),
        total: page.total,
        page: query.page,
        per_page: query.per_page,
        counts: KeyCounts {
            active: page.counts.active,
            locked: page.counts.locked,
            expired: page.counts.expired,
            expiring_30d: page.counts.expiring_30d,
        },
    }))
}

/// Creates a key from a validated spec: the rules of API.md §Keys, then one transaction.
pub(crate) async fn create_key(
    state: &AppState,
    caller: &Principal,
    ip: IpAddr,
    mut spec: KeySpec,
    owner_id: Option<String>,
) -> ApiResult<(KeyRecord, Secret)> {
    let now = state.now();
    let directory = state.index.directory();
    let owner_id = owner_id.map_or_else(|| caller.user_id.clone(), UserId::from_trusted);
    let owner = directory.users.get(&owner_id).cloned().ok_or(CoreError::NotFound { what: "user" })?;
    caller.check_create_key_for(&owner.id, &owner.org_id)?;
    if owner.id != caller.user_id {
        // A key for someone else is as good as acting as them.
        caller.check_may_manage_user(&directory, &owner)?;
    }
    if owner.status != UserStatus::Active {
        return Err(CoreError::Conflict(Conflict::UserDisabled).into());
    }
    // A taken id is the answer whatever else is wrong with the request.
    if let Some(id) = &spec.id
        && state.store.key_id_taken(id).await?
    {
        return Err(CoreError::Conflict(Conflict::KeyIdTaken).into());
    }
    spec.roles = spec.roles.map(|r| directory.resolve_roles(&owner.org_id, r));
    match &spec.roles {
        Some(roles) => caller.check_key_grants(&directory, &owner, roles, &spec.scopes)?,
        // An inheriting key can do what its owner can: the caller must be able to hand that out.
        None => caller.check_key_grants(&directory, &owner, &owner.roles, &[])?,
    }
    let org = directory.orgs.get(&owner.org_id).ok_or(CoreError::NotFound { what: "organization" })?;
    let (record, secret) = spec
        .into_record(&owner, &org.settings, &caller.user_id, now, |id, secret| state.keyring.seal(id.as_str(), secret));
    // The store makes current secrets unique; a secret still in another key's grace period counts too.
    if record.imported && state.index.digest_in_use(&record.secret.digest) {
        return Err(CoreError::Conflict(Conflict::SecretInUse).into());
    }
    let limits = directory.key_limits(&owner, &record.roles);
    let action = if record.imported { AuditAction::KeyImport } else { AuditAction::KeyCreate };
    let details = json!({"name": record.name, "owner_id": record.owner_id, "roles": record.roles, "scopes": record.scopes,
        "inherits_owner": record.inherits_owner,
        "expires_at": record.expires_at.map(|t| keyward_core::clock::rfc3339(&t))});
    let event =
        audit_event(caller, ip, now, record.org_id.as_str(), action, (TargetType::Key, record.id.as_str()), details);
    state.store.insert_key(&record, &limits, &event).await?;
    state.index.refresh_key(state.store.as_ref(), &record.id).await?;
    Ok((record, secret))
}

/// Creates a key for the caller, or for `owner_id` (admins). The secret is in this response only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = KeyWithSecret), (status = 404, description = "No such owner, or not visible to the caller (`not_found`)", body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    let owner = body.owner_id.clone();
    let spec = body.into_spec(false, state.now())?;
    let (record, secret) = create_key(&state, &caller, ip, spec, owner).await?;
    let key = KeyView::new(&record, &state.index, &state.usage, state.now());
    Ok((StatusCode::CREATED, NO_STORE, axum::Json(KeyWithSecret { key, secret })))
}

/// Imports an existing key with its id and secret; the secret is never echoed.
#[utoipa::path(post, path = "/v1/keys/import", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = ImportedKey), (status = 404, description = "No such owner, or not visible to the caller (`not_found`)", body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn import(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    let owner = body.owner_id.clone();
    let spec = body.into_spec(true, state.now())?;
    let (record, _secret) = create_key(&state, &caller, ip, spec, owner).await?;
    let key = KeyView::new(&record, &state.index, &state.usage, state.now());
    Ok((StatusCode::CREATED, NO_STORE, axum::Json(ImportedKey { key })))
}

/// Loads a key the caller may access with `access`; others' keys read as missing.
pub(crate) async fn load(state: &AppState, caller: &Principal, id: &str, access: Access) -> ApiResult<KeyRecord> {
    let key = state.store.get_key(&KeyId::from_trusted(id)).await?.ok_or(CoreError::NotFound { what: "key" })?;
    caller.check_key_access(&key.owner_id, &key.org_id, access)?;
    if access == Access::Write {
        caller.check_may_change_key(&state.index.directory(), &key)?;
    }
    Ok(key)
}

fn view(state: &AppState, key: &KeyRecord) -> axum::Json<KeyView> {
    axum::Json(KeyView::new(key, &state.index, &state.usage, state.now()))
}

/// One key.
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = crate::problem::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    let key = load(&state, &caller, &id, Access::Read).await?;
    Ok(view(&state, &key))
}

/// Writes a changed key with its audit entry and refreshes the index.
async fn save(
    state: &AppState,
    caller: &Principal,
    ip: IpAddr,
    key: &KeyRecord,
    check_limits: bool,
    action: AuditAction,
    details: serde_json::Value,
) -> ApiResult<()> {
    let limits = if check_limits {
        let directory = state.index.directory();
        let owner = directory.users.get(&key.owner_id).ok_or(CoreError::NotFound { what: "user" })?;
        Some(directory.key_limits(owner, &key.roles))
    } else {
        None
    };
    let event =
        audit_event(caller, ip, state.now(), key.org_id.as_str(), action, (TargetType::Key, key.id.as_str()), details);
    state.store.update_key(key, limits.as_ref(), &event).await?;
    state.index.refresh_key(state.store.as_ref(), &key.id).await?;
    Ok(())
}

/// Changes a key's name, description, comment, roles, scopes, expiry, networks or reauthentication timeout.
#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)), request_body = UpdateKeyRequest,
    responses((status = 200, body = KeyView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateKeyRequest>,
) -> ApiResult<axum::Json<KeyView>> {
    let key = update_key(&state, &caller, ip, &id, body).await?;
    Ok(view(&state, &key))
}

/// Applies a key update (API and console): the same validation, grant checks and audit entry.
pub(crate) async fn update_key(
    state: &AppState,
    caller: &Principal,
    ip: IpAddr,
    id: &str,
    body: UpdateKeyRequest,
) -> ApiResult<KeyRecord> {
    let change = body.into_change(state.now())?;
    let change = &change;
    retrying(state, || async move {
        let mut key = load(state, caller, id, Access::Write).await?;
        let directory = state.index.directory();
        let mut change = change.clone();
        change.roles = change.roles.map(|r| directory.resolve_roles(&key.org_id, r));
        let regrants = change.changes_grants();
        let changed = change.apply(&mut key, state.now());
        if changed.is_empty() {
            // Nothing to write, and nothing to audit.
            return Ok(key);
        }
        if regrants {
            let owner = directory.users.get(&key.owner_id).ok_or(CoreError::NotFound { what: "user" })?;
            caller.check_key_grants(&directory, owner, &key.roles, &key.scopes)?;
        }
        let details = json!({"changed": changed, "roles": key.roles, "scopes": key.scopes,
            "expires_at": key.expires_at.map(|t| keyward_core::clock::rfc3339(&t)),
            "network_restrictions": key.network_restrictions.iter().map(ToString::to_string).collect::<Vec<_>>()});
        save(state, caller, ip, &key, regrants, AuditAction::KeyUpdate, details).await?;
        Ok(key)
    })
    .await
}

/// Runs a read-modify-write of a key again when another write overtook its
/// read (the store refuses such a write rather than undo the other one).
async fn retrying<T, F, Fut>(state: &AppState, mut attempt: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let mut tries = 0;
    loop {
        let outcome = {
            let _writing = state.key_writes.lock().await;
            attempt().await
        };
        match outcome {
            Err(ApiError::Core(CoreError::Conflict(Conflict::ConcurrentUpdate))) if tries < 8 => tries += 1,
            other => return other,
        }
    }
}

/// Body of `POST /v1/keys/{id}/roll`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollRequest {
    /// Seconds the old secret stays valid (0–604800, default 0).
    #[schema(minimum = 0, maximum = 604800)]
    grace_period_s: Option<i64>,
}

/// Replaces the secret; the old one stays valid for the grace period.
#[utoipa::path(post, path = "/v1/keys/{id}/roll", tag = "keys", params(("id" = String, Path)), request_body = RollRequest,
    responses((status = 200, body = KeyWithSecret), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn roll(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RollRequest>,
) -> ApiResult<impl IntoResponse> {
    let (key, secret) = roll_key(&state, &caller, ip, &id, body.grace_period_s).await?;
    let key = KeyView::new(&key, &state.index, &state.usage, state.now());
    Ok((NO_STORE, axum::Json(KeyWithSecret { key, secret })))
}

/// Rolls a key's secret, the old one valid for `grace_period_s` (API and console).
pub(crate) async fn roll_key(
    state: &AppState,
    caller: &Principal,
    ip: IpAddr,
    id: &str,
    grace_period_s: Option<i64>,
) -> ApiResult<(KeyRecord, Secret)> {
    let grace = parse_grace_period(grace_period_s)?;
    retrying(state, || async move {
        let mut key = load(state, caller, id, Access::Write).await?;
        let secret = Secret::generate();
        key.roll(state.keyring.seal(key.id.as_str(), &secret), grace, state.now());
        save(state, caller, ip, &key, false, AuditAction::KeyRoll, json!({"grace_period_s": grace.num_seconds()}))
            .await?;
        Ok((key, secret))
    })
    .await
}

/// Ends a rolled key's grace period (API and console).
pub(crate) async fn end_grace_key(state: &AppState, caller: &Principal, ip: IpAddr, id: &str) -> ApiResult<KeyRecord> {
    retrying(state, || async move {
        let mut key = load(state, caller, id, Access::Write).await?;
        // Ending a grace period that is not running changes nothing and is not audited.
        if key.end_grace(state.now()) {
            save(state, caller, ip, &key, false, AuditAction::KeyEndGrace, json!({})).await?;
        }
        Ok(key)
    })
    .await
}

pub(crate) async fn set_locked(
    state: &AppState,
    caller: &Principal,
    ip: IpAddr,
    id: &str,
    locked: bool,
) -> ApiResult<KeyRecord> {
    retrying(state, || async move {
        let mut key = load(state, caller, id, Access::Write).await?;
        if key.set_locked(locked, state.now()) {
            let action = if locked { AuditAction::KeyLock } else { AuditAction::KeyUnlock };
            save(state, caller, ip, &key, false, action, json!({})).await?;
        }
        Ok(key)
    })
    .await
}

/// Disables a key without changing its secret or roles.
#[utoipa::path(post, path = "/v1/keys/{id}/lock", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn lock(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    let key = set_locked(&state, &caller, ip, &id, true).await?;
    Ok(view(&state, &key))
}

/// Ends a rolled key's grace period at once: only the new secret works from now on.
#[utoipa::path(post, path = "/v1/keys/{id}/end-grace", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = ImportedKey), (status = 404, body = crate::problem::Problem)))]
pub async fn end_grace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ImportedKey>> {
    let key = end_grace_key(&state, &caller, ip, &id).await?;
    Ok(axum::Json(ImportedKey { key: KeyView::new(&key, &state.index, &state.usage, state.now()) }))
}

/// Re-enables a locked key.
#[utoipa::path(post, path = "/v1/keys/{id}/unlock", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn unlock(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    let key = set_locked(&state, &caller, ip, &id, false).await?;
    Ok(view(&state, &key))
}

pub(crate) async fn delete_key(state: &AppState, caller: &Principal, ip: IpAddr, id: &str) -> ApiResult<()> {
    let key = load(state, caller, id, Access::Write).await?;
    let event = audit_event(
        caller,
        ip,
        state.now(),
        key.org_id.as_str(),
        AuditAction::KeyDelete,
        (TargetType::Key, key.id.as_str()),
        json!({"name": key.name}),
    );
    if !state.store.delete_key(&key.id, &event).await? {
        return Err(CoreError::NotFound { what: "key" }.into());
    }
    state.index.refresh_key(state.store.as_ref(), &key.id).await?;
    Ok(())
}

/// Revokes a key for good; its id is never reused.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_key(&state, &caller, ip, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/keys/bulk`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `lock`, `unlock` or `delete`.
    #[schema(pattern = "^(lock|unlock|delete)$")]
    action: String,
    /// 1–1000 key ids.
    #[schema(min_items = 1, max_items = 1000)]
    ids: Vec<String>,
}

/// What `POST /v1/keys/bulk` does to each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BulkAction {
    Lock,
    Unlock,
    Delete,
}

impl BulkAction {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "lock" => Some(Self::Lock),
            "unlock" => Some(Self::Unlock),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// Locks, unlocks or deletes many keys; each id succeeds or fails on its own.
#[utoipa::path(post, path = "/v1/keys/bulk", tag = "keys", request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 422, body = crate::problem::Problem)))]
pub async fn bulk(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<BulkRequest>,
) -> ApiResult<axum::Json<BulkResponse>> {
    let action =
        BulkAction::parse(&body.action).ok_or_else(|| ApiError::field("action", "must be lock, unlock or delete"))?;
    if body.ids.is_empty() || body.ids.len() > 1000 {
        return Err(ApiError::field("ids", "must list 1 to 1000 key ids"));
    }
    Ok(axum::Json(BulkResponse { results: bulk_apply(&state, &caller, ip, action, body.ids).await }))
}

/// Applies a bulk action to each id on its own (API and console).
pub(crate) async fn bulk_apply(
    state: &AppState,
    caller: &Principal,
    ip: IpAddr,
    action: BulkAction,
    ids: Vec<String>,
) -> Vec<BulkResult> {
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let outcome = match action {
            BulkAction::Lock => set_locked(state, caller, ip, &id, true).await.map(drop),
            BulkAction::Unlock => set_locked(state, caller, ip, &id, false).await.map(drop),
            BulkAction::Delete => delete_key(state, caller, ip, &id).await,
        };
        let code = match outcome {
            Ok(()) => None,
            Err(e @ ApiError::Core(CoreError::NotFound { .. } | CoreError::Forbidden { .. })) => Some(e.code()),
            Err(e) => {
                tracing::error!(error = %e, "bulk action failed for one key");
                Some(ApiError::Internal(e.to_string()).code())
            }
        }
        .map(str::to_owned);
        results.push(BulkResult { id, ok: code.is_none(), code });
    }
    results
}

/// One user's keys (an admin's view of a Service Requestor, say).
#[utoipa::path(get, path = "/v1/users/{id}/keys", tag = "users", params(("id" = String, Path), ListKeysParams),
    responses((status = 200, body = KeyList), (status = 404, body = crate::problem::Problem)))]
pub async fn list_for_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    params: Result<Query<ListKeysParams>, QueryRejection>,
) -> ApiResult<axum::Json<KeyList>> {
    let Query(mut params) = params.map_err(query_error)?;
    let user = state.index.user(&UserId::from_trusted(id)).ok_or(CoreError::NotFound { what: "user" })?;
    caller.check_key_access(&user.id, &user.org_id, Access::Read).map_err(|_| CoreError::NotFound { what: "user" })?;
    params.owner_id = Some(user.id.to_string());
    params.org_id = Some(user.org_id.to_string());
    list_keys(&state, &caller, params).await
}

/// Creates a key for this user (admins; the usual case is a Service Requestor). The secret is in this response only.
#[utoipa::path(post, path = "/v1/users/{id}/keys", tag = "users", params(("id" = String, Path)), request_body = CreateKeyRequest,
    responses((status = 201, body = KeyWithSecret), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn create_for_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    if body.owner_id.as_ref().is_some_and(|o| *o != id) {
        return Err(ApiError::field("owner_id", "must be absent or equal to the user in the path"));
    }
    let spec = body.into_spec(false, state.now())?;
    let (record, secret) = create_key(&state, &caller, ip, spec, Some(id)).await?;
    let key = KeyView::new(&record, &state.index, &state.usage, state.now());
    Ok((StatusCode::CREATED, NO_STORE, axum::Json(KeyWithSecret { key, secret })))
}

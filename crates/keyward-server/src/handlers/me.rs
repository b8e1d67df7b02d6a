//! `/v1/me`: who is calling.

use crate::auth::Caller;
use crate::problem::ApiResult;
use crate::state::AppState;
use crate::views::{KeyView, MeView, UserView};
use axum::extract::State;
use keyward_core::CoreError;

/// The calling user, the key used (if any), the org and the effective permissions.
#[utoipa::path(get, path = "/v1/me", tag = "me", responses((status = 200, body = MeView), (status = 401, body = crate::problem::Problem)))]
pub async fn me(State(state): State<AppState>, Caller(caller): Caller) -> ApiResult<axum::Json<MeView>> {
    let user = state.index.user(&caller.user_id).ok_or(CoreError::NotFound { what: "user" })?;
    let now = state.now();
    let key = match &caller.key_id {
        // The index holds the record as committed (it is refreshed by every write), and this
        // request's use is pending: no store read. Only if a usage flush ran between the
        // authentication and here is the stored last-used time newer than the index's.
        Some(id) => match (state.index.key(id), state.usage.pending(id)) {
            (Some(indexed), Some(_)) => Some(KeyView::new(&indexed.record, &state.index, &state.usage, now)),
            _ => state.store.get_key(id).await?.map(|k| KeyView::new(&k, &state.index, &state.usage, now)),
        },
        None => None,
    };
    Ok(axum::Json(MeView {
        user: UserView::from(&user),
        key,
        org_id: caller.org_id.to_string(),
        permissions: caller.permissions.to_strings(),
        auth_method: caller.auth_method,
    }))
}

//! API Keys: the grid (search, sort, paging, counters, bulk actions), the new-key
//! form, the page that shows a new secret once, and a key's own page. Every action
//! calls the same functions as the `/v1/keys` handlers.

use super::layout::{Nav, page, when, when_short};
use super::{FormData, Signed, check_csrf};
use crate::extract::ClientIp;
use crate::handlers::keys as api;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::views::KeyView;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::key::{CreateKeyRequest, UpdateKeyRequest};
use keyward_core::model::{KeyRecord, KeyStatus};
use keyward_core::password::{self, Password};
use keyward_core::permission::Access;
use keyward_core::secret::Secret;
use keyward_core::store::AuditQuery;
use maud::{Markup, html};
use std::collections::HashMap;

fn status_badge(status: KeyStatus) -> Markup {
    let (class, word) = match status {
        KeyStatus::Active => ("badge badge-active", "Active"),
        KeyStatus::Locked => ("badge badge-locked", "Locked"),
        KeyStatus::Expired => ("badge badge-expired", "Expired"),
    };
    html! { span class=(class) { (word) } }
}

fn owner_name(state: &AppState, owner: &str) -> String {
    state
        .index
        .user(&keyward_core::ids::UserId::from_trusted(owner))
        .map_or_else(|| owner.to_owned(), |u| u.email.unwrap_or(u.name))
}

fn error_alert(e: &ApiError) -> Markup {
    let (_, detail) = e.public_detail();
    html! { p.alert.alert-error role="alert" { (detail) } }
}

/// The grid's query string (search, filter, sort, paging) with some parameters changed,
/// without the one-off notice of the last action.
fn grid_query(q: &HashMap<String, String>, set: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| {
            !set.iter().any(|(s, _)| s == k) && ["q", "status", "sort", "page", "per_page"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.extend(set.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    pairs.sort();
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// A link to the grid with some parameters changed.
fn link(q: &HashMap<String, String>, set: &[(&str, &str)]) -> String {
    let query = grid_query(q, set);
    if query.is_empty() { "/console/keys".to_owned() } else { format!("/console/keys?{query}") }
}

fn notice_text(q: &HashMap<String, String>) -> Option<String> {
    let n: usize = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let keys = if n == 1 { "1 key".to_owned() } else { format!("{n} keys") };
    let failed: usize = q.get("failed").and_then(|n| n.parse().ok()).unwrap_or(0);
    let tail = if failed > 0 {
        format!(" {failed} could not be changed (not found or not permitted).")
    } else {
        String::new()
    };
    match q.get("notice").map(String::as_str) {
        Some("locked") => Some(format!("Locked {keys}.{tail}")),
        Some("unlocked") => Some(format!("Unlocked {keys}.{tail}")),
        Some("deleted") => Some(format!("Deleted {keys}.{tail}")),
        Some("deleted-one") => Some("The key was deleted.".to_owned()),
        _ => None,
    }
}

/// `GET /console/keys`: the grid.
pub async fn grid(State(state): State<AppState>, signed: Signed, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let params = api::ListKeysParams {
        q: get("q"),
        status: get("status"),
        sort: get("sort"),
        page: get("page"),
        per_page: Some(get("per_page").unwrap_or_else(|| "25".to_owned())),
        ..Default::default()
    };
    let list = api::list_keys(&state, &signed.principal, params).await.map(|j| j.0);
    let sort = get("sort").unwrap_or_else(|| "-created_at".to_owned());
    let th = |label: &str, column: &str| {
        let (current, descending) = match sort.strip_prefix('-') {
            Some(c) => (c == column, true),
            None => (sort == column, false),
        };
        let next = if current && !descending { format!("-{column}") } else { column.to_owned() };
        let aria = if current { if descending { "descending" } else { "ascending" } } else { "none" };
        let arrow = if current { if descending { " ↓" } else { " ↑" } } else { "" };
        html! { th scope="col" aria-sort=(aria) { a href=(link(&q, &[("sort", &next), ("page", "")])) { (label) (arrow) } } }
    };
    let body = html! {
        div.page-head {
            h1 { "API Keys" }
            a.button.primary href="/console/keys/new" { "New API Key" }
        }
        @if let Some(notice) = notice_text(&q) {
            p.alert.alert-success role="status" #notice { (notice) }
        }
        @match &list {
            Err(e) => (error_alert(e)),
            Ok(list) => {
                div.counters {
                    a.counter.counter-expired href=(link(&q, &[("status", "expired"), ("page", "")])) {
                        span.counter-number #count-expired { (list.counts.expired) } " expired"
                    }
                    a.counter.counter-expiring href=(link(&q, &[("status", "active"), ("sort", "expires_at"), ("page", "")])) {
                        span.counter-number #count-expiring { (list.counts.expiring_30d) } " expiring within 30 days"
                    }
                    span.counter.counter-plain { (list.counts.active) " active · " (list.counts.locked) " locked" }
                }
                form.toolbar method="get" action="/console/keys" role="search" {
                    label.visually-hidden for="q" { "Search keys" }
                    input #q type="search" name="q" value=[get("q")] placeholder="Search name, id, description";
                    label.visually-hidden for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any status" }
                        @for (v, l) in [("active", "Active"), ("locked", "Locked"), ("expired", "Expired")] {
                            option value=(v) selected[get("status").as_deref() == Some(v)] { (l) }
                        }
                    }
                    @if let Some(s) = get("sort") { input type="hidden" name="sort" value=(s); }
                    input type="hidden" name="per_page" value=(list.per_page);
                    button.button type="submit" { "Search" }
                    @if get("q").is_some() || get("status").is_some() { a.clear href="/console/keys" { "Clear filters" } }
                }
                form #bulk method="post" action="/console/keys/bulk" {
                    input type="hidden" name="csrf" value=(signed.session.csrf);
                    input type="hidden" name="return" value=(grid_query(&q, &[]));
                    div.bulk-bar {
                        span.selected-count data-selected-count { "Select keys for bulk actions" }
                        button.button type="submit" name="action" value="lock" data-needs-selection { "Lock" }
                        button.button type="submit" name="action" value="unlock" data-needs-selection { "Unlock" }
                        button.button.danger type="submit" name="action" value="delete" data-needs-selection
                            data-confirm="Delete {n}? Deleted keys stop working at once and cannot be restored." data-confirm-label="Delete" { "Delete" }
                    }
                    div.table-wrap {
                        table.grid #keys-table {
                            thead { tr {
                                th.check scope="col" { input type="checkbox" data-select-all aria-label="Select all keys on this page"; }
                                (th("Name", "name"))
                                th scope="col" { "ID" }
                                th scope="col" { "Owner" }
                                (th("Status", "status"))
                                (th("Expires (UTC)", "expires_at"))
                                (th("Last used (UTC)", "last_used_at"))
                                (th("Created (UTC)", "created_at"))
                            } }
                            tbody {
                                @for k in &list.items {
                                    tr {
                                        td.check { input type="checkbox" name="ids" value=(k.id) aria-label={ "Select " (k.name) }; }
                                        td { a href={ "/console/keys/" (k.id) } { (k.name) } }
                                        td.mono { (k.id) }
                                        td { (owner_name(&state, &k.owner_id)) }
                                        td { (status_badge(k.status)) }
                                        td.nowrap { (when_short(k.expires_at, "Never")) }
                                        td.nowrap { (when_short(k.last_used_at, "Never used")) }
                                        td.nowrap { (when_short(Some(k.created_at), "")) }
                                    }
                                }
                                @if list.items.is_empty() {
                                    tr { td.empty colspan="8" { "No keys match." } }
                                }
                            }
                        }
                    }
                }
                (pager(&q, list.total, list.page, list.per_page))
            }
        }
    };
    page(&signed, Nav::Keys, "API Keys", &body).into_response()
}

fn pager(q: &HashMap<String, String>, total: u64, page_no: u32, per_page: u32) -> Markup {
    let first = if total == 0 { 0 } else { u64::from(page_no - 1) * u64::from(per_page) + 1 };
    let last = (u64::from(page_no) * u64::from(per_page)).min(total);
    let has_next = last < total;
    html! {
        div.pager {
            span #range { (first) "–" (last) " of " (total) }
            @if page_no > 1 {
                a.button #prev-page href=(link(q, &[("page", &(page_no - 1).to_string())])) rel="prev" { "Previous" }
            } @else { span.button.disabled aria-disabled="true" { "Previous" } }
            @if has_next {
                a.button #next-page href=(link(q, &[("page", &(page_no + 1).to_string())])) rel="next" { "Next" }
            } @else { span.button.disabled aria-disabled="true" { "Next" } }
            form method="get" action="/console/keys" {
                @for (k, v) in q.iter().filter(|(k, _)| !["per_page", "page", "notice", "n", "failed"].contains(&k.as_str())) {
                    input type="hidden" name=(k) value=(v);
                }
                label for="per_page" { "Rows per page" }
                select #per_page name="per_page" data-autosubmit {
                    @for n in [10u32, 25, 50] { option value=(n) selected[n == per_page] { (n) } }
                }
                noscript { button.button type="submit" { "Apply" } }
            }
        }
    }
}

/// Checks the password again when the session's last proof is older than the window.
/// `Ok(())` when no step-up is needed or it succeeded.
async fn step_up(state: &AppState, signed: &Signed, ip: std::net::IpAddr, form: &FormData) -> Result<(), &'static str> {
    let now = state.now();
    if !signed.session.needs_step_up(now) {
        return Ok(());
    }
    let candidate = form.raw("password");
    if candidate.is_empty() {
        return Err("Enter your password again to confirm: you signed in a while ago.");
    }
    let bucket = keyward_core::ids::KeyId::from_trusted(format!("console-user:{}", signed.user.id));
    if state.throttle.retry_after(Some(&bucket), Some(ip), now.timestamp()).is_some() {
        return Err("Too many wrong passwords. Wait a little and try again.");
    }
    let stored = state.store.get_password(&signed.user.id).await.ok().flatten().map(|p| p.hash);
    let candidate = Password::new(candidate);
    let good = tokio::task::spawn_blocking(move || stored.is_some_and(|h| password::verify(&candidate, &h)))
        .await
        .unwrap_or(false);
    if !good {
        state.throttle.fail(Some(&bucket), Some(ip), now.timestamp());
        return Err("The password is wrong.");
    }
    state.sessions.reauthenticated(&signed.token, now);
    Ok(())
}

fn step_up_field(signed: &Signed, now: keyward_core::clock::Timestamp, id: &str) -> Markup {
    html! {
        @if signed.session.needs_step_up(now) {
            label for=(id) { "Your password (you signed in more than 15 minutes ago)" }
            input id=(id) type="password" name="password" autocomplete="current-password" required;
        }
    }
}

/// `POST /console/keys/bulk`: lock, unlock or delete the selected keys.
pub async fn bulk(State(state): State<AppState>, ClientIp(ip): ClientIp, signed: Signed, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    if let Some(resp) = check_csrf(&signed, &form) {
        return resp;
    }
    let ids = form.all("ids");
    let action = form.get("action").to_owned();
    if ids.is_empty() || ids.len() > 1000 || !["lock", "unlock", "delete"].contains(&action.as_str()) {
        return Redirect::to("/console/keys").into_response();
    }
    if action == "delete" {
        let step = if form.get("confirmed") == "yes" { Some(step_up(&state, &signed, ip, &form).await) } else { None };
        if step != Some(Ok(())) {
            // Without the dialog (or its password), confirm on a page of its own.
            let error = step.and_then(Result::err);
            let n = ids.len();
            let body = html! {
                h1 { "Delete " (n) " " (if n == 1 { "key" } else { "keys" }) "?" }
                @if let Some(e) = error { p.alert.alert-error role="alert" { (e) } }
                p { "Deleted keys stop working at once and cannot be restored. Their ids are never reused." }
                ul.id-list { @for id in &ids { li.mono { (id) } } }
                form.stack method="post" action="/console/keys/bulk" {
                    input type="hidden" name="csrf" value=(signed.session.csrf);
                    input type="hidden" name="action" value="delete";
                    input type="hidden" name="confirmed" value="yes";
                    input type="hidden" name="return" value=(form.get("return"));
                    @for id in &ids { input type="hidden" name="ids" value=(id); }
                    (step_up_field(&signed, state.now(), "bulk-password"))
                    div.actions {
                        button.button.danger type="submit" #confirm-delete { "Delete " (n) " " (if n == 1 { "key" } else { "keys" }) }
                        a.button href="/console/keys" { "Cancel" }
                    }
                }
            };
            return page(&signed, Nav::Keys, "Confirm delete", &body).into_response();
        }
    }
    let n = ids.len();
    let Some(bulk) = api::BulkAction::parse(&action) else {
        return (StatusCode::BAD_REQUEST, "unknown bulk action").into_response();
    };
    let results = api::bulk_apply(&state, &signed.principal, ip, bulk, ids).await;
    let failed = results.iter().filter(|r| !r.ok).count();
    let notice = match action.as_str() {
        "lock" => "locked",
        "unlock" => "unlocked",
        _ => "deleted",
    };
    // Back to the same view of the grid; the query is re-encoded from known names only.
    let back: HashMap<String, String> = form_urlencoded::parse(form.get("return").as_bytes()).into_owned().collect();
    let count = (n - failed).to_string();
    let failed = failed.to_string();
    Redirect::to(&link(&back, &[("notice", notice), ("n", &count), ("failed", &failed)])).into_response()
}

/// What the new-key form was filled with, to show again with an error.
#[derive(Default)]
struct NewKeyInput {
    name: String,
    id: String,
    description: String,
    roles: Vec<String>,
    expiry: String,
    days: String,
    date: String,
    networks: String,
    reauth: String,
}

fn new_key_form(state: &AppState, signed: &Signed, input: &NewKeyInput, error: Option<&Markup>) -> Markup {
    let directory = state.index.directory();
    let roles: Vec<(String, String)> = signed
        .user
        .roles
        .iter()
        .filter_map(|r| directory.role_in(&signed.user.org_id, r))
        .map(|r| (r.id.to_string(), r.name.clone()))
        .collect();
    let expiry = if input.expiry.is_empty() { "default" } else { input.expiry.as_str() };
    let default_days = directory.orgs.get(&signed.user.org_id).and_then(|o| o.settings.default_expiry_days);
    html! {
        h1 { "New API Key" }
        @if let Some(e) = error { (e) }
        form.card.stack #new-key method="post" action="/console/keys/new" {
            input type="hidden" name="csrf" value=(signed.session.csrf);
            div.field-row {
                div { label for="name" { "Name" } input #name name="name" value=(input.name) required maxlength="200"; }
                div {
                    label for="key-id" { "Key id (optional)" }
                    input #key-id name="id" value=(input.id) placeholder="generated when empty" aria-describedby="key-id-hint";
                    p.hint #key-id-hint { "Letters, digits, - and _; never reused once taken." }
                }
            }
            label for="description" { "Description" }
            textarea #description name="description" rows="2" { (input.description) }
            fieldset {
                legend { "Roles" }
                p.hint { "None selected: the key acts with your own permissions, as they are at each request." }
                @for (id, name) in &roles {
                    label.check-label { input type="checkbox" name="roles" value=(id) checked[input.roles.contains(id)]; " " (name) }
                }
            }
            fieldset {
                legend { "Expiry" }
                label.check-label { input type="radio" name="expiry" value="default" checked[expiry == "default"];
                    " Organization default (" (default_days.map_or_else(|| "never".to_owned(), |d| format!("{d} days"))) ")" }
                label.check-label { input type="radio" name="expiry" value="days" checked[expiry == "days"]; " In a number of days" }
                label.visually-hidden for="days" { "Days until expiry" }
                input #days.short type="number" name="days" min="1" max="3650" value=(input.days) placeholder="days";
                label.check-label { input type="radio" name="expiry" value="date" checked[expiry == "date"]; " On a date (end of day, UTC)" }
                label.visually-hidden for="date" { "Expiry date" }
                input #date.short type="date" name="date" value=(input.date);
                label.check-label { input type="radio" name="expiry" value="never" checked[expiry == "never"]; " Never expire" }
            }
            label for="networks" { "Network restrictions (optional)" }
            textarea #networks.mono name="networks" rows="3" placeholder="203.0.113.7\n198.51.100.0/24" aria-describedby="networks-hint" { (input.networks) }
            p.hint #networks-hint { "Up to 10 addresses or CIDR ranges, one per line. Empty: any address." }
            label for="reauth" { "Reauthentication timeout (seconds)" }
            input #reauth.short type="number" name="reauth_timeout_s" min="0" value=(if input.reauth.is_empty() { "60" } else { input.reauth.as_str() });
            div.actions {
                button.button.primary type="submit" { "Create key" }
                a.button href="/console/keys" { "Cancel" }
            }
        }
    }
}

/// `GET /console/keys/new`.
pub async fn new_page(State(state): State<AppState>, signed: Signed) -> Response {
    let body = new_key_form(&state, &signed, &NewKeyInput::default(), None);
    page(&signed, Nav::NewKey, "New API Key", &body).into_response()
}

/// The page that shows a new secret, once: copy buttons, a one-time CSV download, a warning.
fn secret_page(state: &AppState, signed: &Signed, key: &KeyRecord, secret: Secret, heading: &str) -> Response {
    let shown = secret.expose().to_owned();
    let token = state.sessions.stash_download(signed.user.id.clone(), key.id.clone(), secret, state.now());
    let body = html! {
        h1 { (heading) }
        p.alert.alert-warning role="alert" { strong { "Copy the secret now." } " It is shown only on this page and cannot be shown again. If you lose it, roll the key." }
        div.card.secret-card {
            dl.secret-list {
                dt { "Key id" }
                dd { code #new-key-id { (key.id) } button.button.small type="button" data-copy="new-key-id" { "Copy" } }
                dt { "Secret" }
                dd { code #new-secret { (shown) } button.button.small type="button" data-copy="new-secret" { "Copy" } }
            }
            div.actions {
                a.button #download-csv href={ "/console/downloads/" (token) } download={ (key.id) ".csv" } { "Download CSV" }
                a.button.primary href={ "/console/keys/" (key.id) } { "Done" }
            }
            p.hint { "The CSV (id,secret) can be downloaded once, for ten minutes." }
        }
    };
    let mut resp = page(signed, Nav::Keys, heading, &body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `POST /console/keys/new`: the same validation and rules as `POST /v1/keys`.
pub async fn create(State(state): State<AppState>, ClientIp(ip): ClientIp, signed: Signed, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    if let Some(resp) = check_csrf(&signed, &form) {
        return resp;
    }
    let input = NewKeyInput {
        name: form.get("name").to_owned(),
        id: form.get("id").to_owned(),
        description: form.get("description").to_owned(),
        roles: form.all("roles"),
        expiry: form.get("expiry").to_owned(),
        days: form.get("days").to_owned(),
        date: form.get("date").to_owned(),
        networks: form.get("networks").to_owned(),
        reauth: form.get("reauth_timeout_s").to_owned(),
    };
    let refuse = |msg: Markup| {
        let body = new_key_form(&state, &signed, &input, Some(&msg));
        (StatusCode::UNPROCESSABLE_ENTITY, page(&signed, Nav::NewKey, "New API Key", &body)).into_response()
    };
    let number = |field: &str, v: &str| -> Result<Option<i64>, Markup> {
        if v.is_empty() {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|_| html! { p.alert.alert-error role="alert" { (field) " must be a whole number." } })
    };
    let days = match number("Days", &input.days) {
        Ok(d) => d,
        Err(m) => return refuse(m),
    };
    let reauth = match number("Reauthentication timeout", &input.reauth) {
        Ok(r) => r,
        Err(m) => return refuse(m),
    };
    let networks: Vec<String> =
        input.networks.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    let (expires_at, expires_in_days) = match input.expiry.as_str() {
        "never" => (Some(None), None),
        "days" => (None, Some(days.unwrap_or(0))),
        "date" => (Some(Some(format!("{}T23:59:59Z", input.date))), None),
        _ => (None, None),
    };
    let request = CreateKeyRequest {
        name: Some(input.name.clone()),
        id: Some(input.id.clone()).filter(|s| !s.is_empty()),
        description: Some(input.description.clone()).filter(|s| !s.is_empty()),
        roles: Some(input.roles.clone()).filter(|r| !r.is_empty()),
        expires_at,
        expires_in_days,
        network_restrictions: Some(networks).filter(|n| !n.is_empty()),
        reauth_timeout_s: reauth,
        ..Default::default()
    };
    let created = match request.into_spec(false, state.now()) {
        Ok(spec) => api::create_key(&state, &signed.principal, ip, spec, None).await,
        Err(e) => Err(e.into()),
    };
    match created {
        Ok((record, secret)) => secret_page(&state, &signed, &record, secret, "API key created"),
        Err(e) => refuse(error_alert(&e)),
    }
}

/// `GET /console/downloads/{token}`: a new secret as CSV, once.
pub async fn download(State(state): State<AppState>, signed: Signed, Path(token): Path<String>) -> Response {
    let Some((key_id, secret)) = state.sessions.take_download(&token, &signed.user.id, state.now()) else {
        return (StatusCode::GONE, "This download has been used or has expired; secrets are served once.\n")
            .into_response();
    };
    let csv = format!("id,secret\r\n{},{}\r\n", key_id, secret.expose());
    let disposition = format!("attachment; filename=\"{key_id}.csv\"");
    let mut resp = csv.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

async fn key_page(state: &AppState, signed: &Signed, id: &str, flash: Option<Markup>, status: StatusCode) -> Response {
    let record = match api::load(state, &signed.principal, id, Access::Read).await {
        Ok(k) => k,
        Err(e) => {
            let (status, _) = e.public_detail();
            let body = html! { h1 { "Key not available" } (error_alert(&e)) p { a href="/console/keys" { "Back to API Keys" } } };
            return (status, page(signed, Nav::Keys, "Key", &body)).into_response();
        }
    };
    let now = state.now();
    let k = KeyView::new(&record, &state.index, &state.usage, now);
    let history = if signed.principal.can("audit", Access::Read) {
        let query = AuditQuery {
            org_id: Some(record.org_id.clone()),
            target_id: Some(record.id.to_string()),
            newest_first: true,
            limit: 25,
            ..Default::default()
        };
        state.store.list_audit(&query).await.map(|(rows, _)| rows).ok()
    } else {
        None
    };
    let csrf = &signed.session.csrf;
    let body = html! {
        div.page-head {
            div {
                p.breadcrumb { a href="/console/keys" { "API Keys" } " / " }
                h1 { (k.name) " " (status_badge(k.status)) }
            }
        }
        @if let Some(f) = flash { (f) }
        div.columns {
            section.card aria-labelledby="details-h" {
                h2 #details-h { "Details" }
                dl.details {
                    dt { "Key id" } dd.mono #key-id { (k.id) }
                    dt { "Status" } dd { (status_badge(k.status)) }
                    dt { "Owner" } dd { (owner_name(state, &k.owner_id)) }
                    dt { "Created" } dd { (when(Some(k.created_at), "")) " by " (owner_name(state, &k.created_by)) }
                    dt { "Expires" } dd { (when(k.expires_at, "Never")) }
                    dt { "Last used" } dd { (when(k.last_used_at, "Never used")) @if let Some(ip) = &k.last_used_ip { " from " span.mono { (ip) } } }
                    dt { "Last rolled" } dd { (when(k.rolled_at, "Never")) }
                    @if let Some(until) = k.previous_secret_expires_at {
                        dt { "Grace period" } dd { "The previous secret works until " (when(Some(until), "")) }
                    }
                    dt { "Roles" } dd { @if k.inherits_owner { "Inherits the owner's permissions" } @else { (k.roles.join(", ")) } }
                    dt { "Scopes" } dd { @if k.scopes.is_empty() { "None" } @else { @for s in &k.scopes { span.tag { (format!("{s:?}")) } " " } } }
                    dt { "Networks" } dd.mono { @if k.network_restrictions.is_empty() { "Any address" } @else { (k.network_restrictions.join(", ")) } }
                    dt { "Reauthentication" } dd { (k.reauth_timeout_s) " s" }
                    dt { "Description" } dd { (k.description) }
                    dt { "Comment" } dd { (k.comment) }
                    dt { "Imported" } dd { (if k.imported { "Yes" } else { "No" }) }
                }
            }
            section.card.actions-card aria-labelledby="actions-h" {
                h2 #actions-h { "Actions" }
                form.inline method="post" action={ "/console/keys/" (k.id) "/action" } {
                    input type="hidden" name="csrf" value=(csrf);
                    @if k.status == KeyStatus::Locked {
                        button.button #unlock-key type="submit" name="op" value="unlock" { "Unlock" }
                    } @else {
                        button.button #lock-key type="submit" name="op" value="lock" { "Lock" }
                    }
                    @if k.previous_secret_expires_at.is_some() {
                        button.button #end-grace type="submit" name="op" value="end-grace" { "End grace now" }
                    }
                }
                form.stack method="post" action={ "/console/keys/" (k.id) "/action" } {
                    h3 { "Roll the secret" }
                    input type="hidden" name="csrf" value=(csrf);
                    label for="grace" { "Old secret keeps working for" }
                    select #grace name="grace_period_s" {
                        option value="0" { "No grace period" }
                        option value="3600" { "1 hour" }
                        option value="86400" { "24 hours" }
                        option value="604800" { "7 days" }
                    }
                    (step_up_field(signed, now, "roll-password"))
                    button.button #roll-key type="submit" name="op" value="roll" { "Roll secret" }
                }
                form.stack.danger-zone method="post" action={ "/console/keys/" (k.id) "/action" } {
                    h3 { "Delete" }
                    p.hint { "The key stops working at once; this cannot be undone." }
                    input type="hidden" name="csrf" value=(csrf);
                    (step_up_field(signed, now, "delete-password"))
                    button.button.danger #delete-key type="submit" name="op" value="delete"
                        data-confirm={ "Delete the key “" (k.name) "”? It stops working at once and cannot be restored." } data-confirm-label="Delete key" { "Delete key" }
                }
            }
        }
        section.card aria-labelledby="edit-h" {
            h2 #edit-h { "Edit" }
            form.stack #edit-key method="post" action={ "/console/keys/" (k.id) "/action" } {
                input type="hidden" name="csrf" value=(csrf);
                div.field-row {
                    div { label for="edit-name" { "Name" } input #edit-name name="name" value=(k.name) required maxlength="255"; }
                    div {
                        label for="edit-expiry" { "Expiry" }
                        select #edit-expiry name="expiry" {
                            option value="keep" { "Keep: " (when(k.expires_at, "never")) }
                            option value="never" { "Never expire" }
                            option value="days" { "In a number of days" }
                            option value="date" { "On a date (end of day, UTC)" }
                        }
                    }
                }
                div.field-row {
                    div { label for="edit-days" { "Days (when “in a number of days”)" } input #edit-days.short type="number" name="days" min="1" max="36500"; }
                    div { label for="edit-date" { "Date (when “on a date”)" } input #edit-date.short type="date" name="date"; }
                }
                label for="edit-description" { "Description" }
                textarea #edit-description name="description" rows="2" maxlength="1024" { (k.description) }
                label for="edit-comment" { "Comment" }
                textarea #edit-comment name="comment" rows="2" maxlength="1024" { (k.comment) }
                label for="edit-networks" { "Network restrictions (one per line, up to 10; empty: any address)" }
                textarea #edit-networks.mono name="networks" rows="3" { (k.network_restrictions.join("\n")) }
                button.button.primary #save-key type="submit" name="op" value="edit" { "Save changes" }
            }
        }
        @if let Some(rows) = history {
            section.card aria-labelledby="history-h" {
                h2 #history-h { "History" }
                div.table-wrap { table.grid {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Outcome" } th scope="col" { "By" } th scope="col" { "Address" } } }
                    tbody {
                        @for r in &rows {
                            tr {
                                td.nowrap { (when(Some(r.event.at), "")) }
                                td.mono { (r.event.action) }
                                td { (r.event.outcome) }
                                td { (owner_name(state, &r.event.actor_id)) }
                                td.mono { (r.event.source_ip.as_deref().unwrap_or("")) }
                            }
                        }
                        @if rows.is_empty() { tr { td.empty colspan="5" { "Nothing yet." } } }
                    }
                } }
            }
        }
    };
    (status, page(signed, Nav::Keys, &k.name, &body)).into_response()
}

/// `GET /console/keys/{id}`.
pub async fn page_handler(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> Response {
    key_page(&state, &signed, &id, None, StatusCode::OK).await
}

/// `POST /console/keys/{id}/action`: lock, unlock, end grace, roll or delete.
pub async fn action(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = FormData::parse(&body);
    if let Some(resp) = check_csrf(&signed, &form) {
        return resp;
    }
    let op = form.get("op");
    if matches!(op, "roll" | "delete")
        && let Err(msg) = step_up(&state, &signed, ip, &form).await
    {
        let flash = html! { p.alert.alert-error role="alert" #step-up-error { (msg) } };
        return key_page(&state, &signed, &id, Some(flash), StatusCode::UNAUTHORIZED).await;
    }
    let caller = &signed.principal;
    let outcome: Result<Option<&str>, ApiError> = match op {
        "lock" => api::set_locked(&state, caller, ip, &id, true)
            .await
            .map(|_| Some("The key is locked: it is refused until unlocked.")),
        "unlock" => api::set_locked(&state, caller, ip, &id, false).await.map(|_| Some("The key is unlocked.")),
        "edit" => {
            let networks: Vec<String> =
                form.get("networks").lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
            let days = form.get("days").parse::<i64>().ok();
            let (expires_at, expires_in_days) = match form.get("expiry") {
                "never" => (Some(None), None),
                "days" => (None, Some(days)),
                "date" => (Some(Some(format!("{}T23:59:59Z", form.get("date")))), None),
                _ => (None, None),
            };
            let body = UpdateKeyRequest {
                name: Some(Some(form.get("name").to_owned())),
                description: Some(Some(form.get("description").to_owned())),
                comment: Some(Some(form.get("comment").to_owned())),
                network_restrictions: Some(Some(networks)),
                expires_at,
                expires_in_days,
                ..Default::default()
            };
            api::update_key(&state, caller, ip, &id, body).await.map(|_| Some("Saved."))
        }
        "end-grace" => api::end_grace_key(&state, caller, ip, &id)
            .await
            .map(|_| Some("The grace period is over: only the new secret works.")),
        "roll" => {
            let grace = form.get("grace_period_s").parse::<i64>().ok();
            return match api::roll_key(&state, caller, ip, &id, grace).await {
                Ok((record, secret)) => secret_page(&state, &signed, &record, secret, "Secret rolled"),
                Err(e) => key_page(&state, &signed, &id, Some(error_alert(&e)), e.public_detail().0).await,
            };
        }
        "delete" => {
            if form.get("confirmed") != "yes" {
                let flash = html! { p.alert.alert-error role="alert" { "Confirm the delete in the dialog." } };
                return key_page(&state, &signed, &id, Some(flash), StatusCode::UNPROCESSABLE_ENTITY).await;
            }
            return match api::delete_key(&state, caller, ip, &id).await {
                Ok(()) => Redirect::to("/console/keys?notice=deleted-one").into_response(),
                Err(e) => key_page(&state, &signed, &id, Some(error_alert(&e)), e.public_detail().0).await,
            };
        }
        _ => Ok(None),
    };
    match outcome {
        Ok(Some(msg)) => {
            key_page(
                &state,
                &signed,
                &id,
                Some(html! { p.alert.alert-success role="status" #notice { (msg) } }),
                StatusCode::OK,
            )
            .await
        }
        Ok(None) => Redirect::to(&format!("/console/keys/{id}")).into_response(),
        Err(e) => key_page(&state, &signed, &id, Some(error_alert(&e)), e.public_detail().0).await,
    }
}

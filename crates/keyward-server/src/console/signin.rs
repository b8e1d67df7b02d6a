//! Signing in with an email and a password, the forced change of a one-time
//! password, and signing out.

use super::layout::bare;
use super::{FormData, Signed, check_csrf, forbidden_page, session_cookie};
use crate::extract::ClientIp;
use crate::sessions::cookie_value;
use crate::state::{AppState, audit_event};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::audit::{AuditAction, AuditEvent, Refused, TargetType};
use keyward_core::ids::KeyId;
use keyward_core::model::User;
use keyward_core::password::{self, Password};
use keyward_core::secret::random_base62;
use keyward_core::store::StoredPassword;
use maud::{Markup, html};
use serde_json::json;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// The cookie that carries the sign-in form's CSRF token before there is a session.
const PRESIGN_COOKIE: &str = "keyward_presign";

fn sign_in_form(csrf: &str, email: &str, error: Option<&str>) -> Markup {
    html! {
        main.narrow {
            h1 { "Sign in to Keyward" }
            @if let Some(error) = error {
                p.alert.alert-error role="alert" #sign-in-error { (error) }
            }
            form.stack method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button.button.primary type="submit" { "Sign in" }
            }
            p.hint { "Services sign in with API keys, not here. The first administrator's one-time password is printed at first start and saved in the data directory's bootstrap-admin.txt." }
        }
    }
}

/// Renders the sign-in page with a fresh pre-session CSRF token.
fn sign_in_response(state: &AppState, status: StatusCode, email: &str, error: Option<&str>) -> Response {
    let csrf = random_base62(32);
    let secure = if state.issuer.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{PRESIGN_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/console/sign-in{secure}");
    let mut resp = (status, bare("Sign in", &sign_in_form(&csrf, email, error))).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /`: the sign-in page, or the keys grid for someone signed in.
pub async fn page(State(state): State<AppState>, signed: Option<Signed>) -> Response {
    if signed.is_some() {
        return Redirect::to("/console/keys").into_response();
    }
    sign_in_response(&state, StatusCode::OK, "", None)
}

impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Signed as axum::extract::FromRequestParts<AppState>>::from_request_parts(parts, state).await.ok())
    }
}

/// The throttle's name for a person's account (kept apart from key ids by its prefix).
fn account_bucket(user: &User) -> KeyId {
    KeyId::from_trusted(format!("console-user:{}", user.id))
}

/// Counts a refused sign-in for the audit log (coalesced per account, address and reason).
fn audit_refusal(state: &AppState, user: Option<&User>, ip: IpAddr, reason: &str) {
    let org = user.map(|u| u.org_id.clone()).or_else(|| state.index.operator_org());
    let (Some(org), Ok(mut failures)) = (org, state.failures.lock()) else { return };
    let (actor, target) = user.map_or(("anonymous", "*"), |u| (u.id.as_str(), u.id.as_str()));
    let opened = failures.count(
        &Refused {
            action: AuditAction::SessionSignIn,
            org_id: org.as_str(),
            actor_id: actor,
            actor_key_id: None,
            target_type: TargetType::User,
            target_id: target,
            source: &ip.to_string(),
            reason,
        },
        state.now(),
    );
    drop(failures);
    if opened {
        state.failures_due.notify_one();
    }
}

/// Verifies off the async workers: argon2id takes tens of milliseconds by design.
async fn verify(candidate: Password, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        match &stored {
            Some(hash) => password::verify(&candidate, hash),
            None => {
                // An account without a password still pays for a verify, so it looks like a wrong one.
                let _ = password::verify(&candidate, password::decoy_hash());
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

fn too_many(state: &AppState, email: &str, retry_after: u64) -> Response {
    let msg = format!("Too many failed sign-ins. Try again in {retry_after} seconds.");
    let mut resp = sign_in_response(state, StatusCode::TOO_MANY_REQUESTS, email, Some(&msg));
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

/// `POST /console/sign-in`: email and password; throttled per account and per address, audited.
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = FormData::parse(&body);
    let expected =
        headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(|c| cookie_value(c, PRESIGN_COOKIE));
    let csrf_ok =
        expected.is_some_and(|e| !e.is_empty() && bool::from(e.as_bytes().ct_eq(form.raw("csrf").as_bytes())));
    if !csrf_ok {
        return forbidden_page(
            "This sign-in form has expired or did not come from this console. Reload the page and try again.",
        );
    }
    let now = state.now();
    let email = form.get("email");
    if let Err(refusal) = state.throttle_address(Some(ip), now) {
        return too_many(&state, email, refusal.retry_after_s.unwrap_or(1));
    }
    let directory = state.index.directory();
    let user = directory
        .users
        .values()
        .find(|u| u.email.as_deref().is_some_and(|e| !email.is_empty() && e.eq_ignore_ascii_case(email)))
        .cloned();
    let bucket = user.as_ref().map(account_bucket);
    if let Some(retry) = state.throttle.retry_after(bucket.as_ref(), Some(ip), now.timestamp()) {
        audit_refusal(&state, user.as_ref(), ip, "too_many_attempts");
        return too_many(&state, email, retry);
    }
    // Said before the password is checked: a service has no console password to try, and
    // the person at the keyboard learns why instead of guessing. Counted like a failure.
    if let Some(u) = user.as_ref().filter(|u| directory.is_service_requestor(u)) {
        state.throttle.fail(bucket.as_ref(), Some(ip), now.timestamp());
        audit_refusal(&state, Some(u), ip, "service_user");
        let msg = "This account is a Service Requestor: services authenticate with API keys and cannot sign in to the console.";
        return sign_in_response(&state, StatusCode::FORBIDDEN, email, Some(msg));
    }
    let stored = match &user {
        Some(u) => match state.store.get_password(&u.id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a password");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
            }
        },
        None => None,
    };
    let must_change = stored.as_ref().is_some_and(|p| p.must_change);
    let good = verify(Password::new(form.raw("password")), stored.map(|p| p.hash)).await;
    let user = match user {
        Some(user) if good => user,
        other => {
            state.throttle.fail(bucket.as_ref(), Some(ip), now.timestamp());
            audit_refusal(&state, other.as_ref(), ip, "invalid_credentials");
            let msg = "The email or the password is wrong.";
            return sign_in_response(&state, StatusCode::UNAUTHORIZED, email, Some(msg));
        }
    };
    if keyward_core::authn::judge_person(&directory, Some(&user)).is_err() {
        audit_refusal(&state, Some(&user), ip, "user_disabled");
        return sign_in_response(
            &state,
            StatusCode::FORBIDDEN,
            email,
            Some("This account is disabled. Ask an administrator."),
        );
    }
    let event = AuditEvent {
        at: now,
        org_id: user.org_id.to_string(),
        actor_id: user.id.to_string(),
        actor_key_id: None,
        source_ip: Some(ip.to_string()),
        action: "session.sign_in".into(),
        target_type: "user".into(),
        target_id: user.id.to_string(),
        outcome: "success".into(),
        details: json!({"method": "password"}),
    };
    if let Err(e) = state.store.append_audit(&[event]).await {
        tracing::error!(error = %e, "cannot audit a sign-in");
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    }
    let token = state.sessions.create_person(user.id.clone(), must_change, now);
    let next = if must_change { "/console/password" } else { "/console/keys" };
    let mut resp = Redirect::to(next).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &token, None));
    resp
}

/// `POST /console/sign-out`.
pub async fn sign_out(State(state): State<AppState>, signed: Signed, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    if let Some(resp) = check_csrf(&signed, &form) {
        return resp;
    }
    state.sessions.end_person(&signed.token);
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, "", Some(0)));
    resp
}

fn password_form(signed: &Signed, error: Option<&str>) -> Markup {
    html! {
        main.narrow {
            h1 { "Choose a new password" }
            @if signed.session.must_change_password {
                p.alert.alert-info { "You signed in with a one-time password. Choose your own before going on." }
            }
            @if let Some(error) = error {
                p.alert.alert-error role="alert" #password-error { (error) }
            }
            form.stack method="post" action="/console/password" {
                input type="hidden" name="csrf" value=(signed.session.csrf);
                input type="hidden" name="username" value=(signed.user.email.as_deref().unwrap_or("")) autocomplete="username";
                label for="current" { "Current password" }
                input #current type="password" name="current" autocomplete="current-password" required;
                label for="new" { "New password" }
                input #new type="password" name="new" autocomplete="new-password" minlength=(password::MIN_LEN) maxlength=(password::MAX_LEN) required aria-describedby="new-hint";
                p.hint #new-hint { "At least " (password::MIN_LEN) " characters. A passphrase of a few words is good." }
                label for="confirm" { "New password again" }
                input #confirm type="password" name="confirm" autocomplete="new-password" required;
                button.button.primary type="submit" { "Change password" }
            }
        }
    }
}

/// `GET /console/password`.
pub async fn password_page(signed: Signed) -> Response {
    bare("Change password", &password_form(&signed, None)).into_response()
}

/// `POST /console/password`: proves the current password, sets the new one, ends every
/// other session of the person and starts a fresh one here.
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    signed: Signed,
    body: Bytes,
) -> Response {
    let form = FormData::parse(&body);
    if let Some(resp) = check_csrf(&signed, &form) {
        return resp;
    }
    let refuse = |msg: &str| {
        (StatusCode::UNPROCESSABLE_ENTITY, bare("Change password", &password_form(&signed, Some(msg)))).into_response()
    };
    let now = state.now();
    let bucket = account_bucket(&signed.user);
    if state.throttle.retry_after(Some(&bucket), Some(ip), now.timestamp()).is_some() {
        return refuse("Too many wrong passwords. Wait a little and try again.");
    }
    let stored = match state.store.get_password(&signed.user.id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot read a password");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    if !verify(Password::new(form.raw("current")), stored.map(|p| p.hash)).await {
        state.throttle.fail(Some(&bucket), Some(ip), now.timestamp());
        audit_refusal(&state, Some(&signed.user), ip, "invalid_credentials");
        return refuse("The current password is wrong.");
    }
    let new = Password::new(form.raw("new"));
    if form.raw("new") != form.raw("confirm") {
        return refuse("The two new passwords differ.");
    }
    if form.raw("new") == form.raw("current") {
        return refuse("The new password must differ from the current one.");
    }
    if let Err(keyward_core::CoreError::Validation(errors)) = password::check_policy(&new, signed.user.email.as_deref())
    {
        let msg = errors.iter().map(|e| format!("The new password {}.", e.message)).collect::<Vec<_>>().join(" ");
        return refuse(&msg);
    }
    let hash = match tokio::task::spawn_blocking(move || password::hash(&new)).await {
        Ok(Ok(h)) => h,
        _ => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    };
    let event = audit_event(
        &signed.principal,
        ip,
        now,
        signed.user.org_id.as_str(),
        AuditAction::UserPasswordChange,
        (TargetType::User, signed.user.id.as_str()),
        json!({}),
    );
    let stored = StoredPassword { hash, must_change: false };
    if let Err(e) = state.store.set_password(&signed.user.id, &stored, Some(&event)).await {
        tracing::error!(error = %e, "cannot store a password");
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    }
    // A changed password ends every session of the person, this one included; a new one starts here.
    state.sessions.end_user(&signed.user.id);
    let token = state.sessions.create_person(signed.user.id.clone(), false, now);
    let mut resp = Redirect::to("/console/keys").into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &token, None));
    resp
}

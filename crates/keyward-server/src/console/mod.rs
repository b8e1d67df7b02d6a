//! The web console: server-rendered pages (maud) over the same functions as the
//! API handlers, so every action is judged by the same rules and leaves the same
//! audit entry. People sign in with an email and a password; every form that
//! changes something carries the session's CSRF token.
//!
//! The console has its own router beside the `/v1` endpoint table: its routes
//! are listed in [`ROUTES`] with what each needs (a signed-in person, or nobody
//! for the sign-in page and the static files), and the end-to-end tests
//! (`tests/console.rs`) call every listed route without a session to check it.

mod keys;
mod layout;
mod signin;

use crate::sessions::{CONSOLE_COOKIE, PersonSession, cookie_value};
use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keyward_core::model::User;
use keyward_core::policy::Principal;

/// What a console route needs before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleNeed {
    /// The sign-in page, its form and the static files.
    Public,
    /// A signed-in person; writes also need the session's CSRF token in the form.
    Person,
}

/// Every console route and what it needs; the handlers enforce it with the [`Signed`] extractor.
pub const ROUTES: &[(&str, &str, ConsoleNeed)] = &[
    ("GET", "/", ConsoleNeed::Public),
    ("POST", "/console/sign-in", ConsoleNeed::Public),
    ("GET", "/console/assets/console.css", ConsoleNeed::Public),
    ("GET", "/console/assets/console.js", ConsoleNeed::Public),
    ("POST", "/console/sign-out", ConsoleNeed::Person),
    ("GET", "/console/password", ConsoleNeed::Person),
    ("POST", "/console/password", ConsoleNeed::Person),
    ("GET", "/console/keys", ConsoleNeed::Person),
    ("POST", "/console/keys/bulk", ConsoleNeed::Person),
    ("GET", "/console/keys/new", ConsoleNeed::Person),
    ("POST", "/console/keys/new", ConsoleNeed::Person),
    ("GET", "/console/keys/{id}", ConsoleNeed::Person),
    ("POST", "/console/keys/{id}/action", ConsoleNeed::Person),
    ("GET", "/console/downloads/{token}", ConsoleNeed::Person),
];

/// The console's routes, to merge into the application router.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(signin::page))
        .route("/console/sign-in", post(signin::sign_in))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/sign-out", post(signin::sign_out))
        .route("/console/password", get(signin::password_page).post(signin::change_password))
        .route("/console/keys", get(keys::grid))
        .route("/console/keys/bulk", post(keys::bulk))
        .route("/console/keys/new", get(keys::new_page).post(keys::create))
        .route("/console/keys/{id}", get(keys::page_handler))
        .route("/console/keys/{id}/action", post(keys::action))
        .route("/console/downloads/{token}", get(keys::download))
        .layer(axum::middleware::from_fn_with_state(state, security_headers))
}

/// The Content-Security-Policy of every console response: scripts and styles from
/// files of this origin only, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/console.css"))
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("assets/console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// A signed-in person: their live session, who they are, and what they may do.
pub struct Signed {
    pub token: String,
    pub session: PersonSession,
    pub user: User,
    pub principal: Principal,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || Redirect::to("/").into_response();
        let token = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| cookie_value(c, CONSOLE_COOKIE))
            .map(str::to_owned)
            .ok_or_else(to_sign_in)?;
        let now = state.now();
        let session = state.sessions.touch_person(&token, now).ok_or_else(to_sign_in)?;
        let directory = state.index.directory();
        let user = directory.users.get(&session.user_id).cloned();
        // Judged on every request: a person disabled or made a Service Requestor since is out.
        let principal = keyward_core::authn::judge_person(&directory, user.as_ref()).map_err(|_| {
            state.sessions.end_person(&token);
            to_sign_in()
        })?;
        let user = user.ok_or_else(to_sign_in)?;
        if session.must_change_password && parts.uri.path() != "/console/password" {
            return Err(Redirect::to("/console/password").into_response());
        }
        Ok(Signed { token, session, user, principal })
    }
}

/// A submitted form, kept as pairs so that repeated names (`ids`) survive.
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// The first value of `name` as typed (passwords are not trimmed).
    pub fn raw(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// The refusal of a form whose CSRF field is not the session's token; `None` when it is.
pub fn check_csrf(signed: &Signed, form: &FormData) -> Option<Response> {
    if signed.session.csrf_matches(form.raw("csrf")) {
        return None;
    }
    Some(forbidden_page("This form has expired or did not come from this console. Reload the page and try again."))
}

/// The page answered when a form is refused (403).
pub fn forbidden_page(message: &str) -> Response {
    let body = layout::bare(
        "Refused",
        &maud::html! {
            main.narrow {
                h1 { "Request refused" }
                p.alert.alert-error role="alert" { (message) }
                p { a href="/console/keys" { "Back to the console" } }
            }
        },
    );
    (StatusCode::FORBIDDEN, body).into_response()
}

/// `Set-Cookie` for the console session: HttpOnly, SameSite=Strict, and Secure
/// whenever the public URL is https.
pub fn session_cookie(state: &AppState, token: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if state.issuer.starts_with("https://") { "; Secure" } else { "" };
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    HeaderValue::from_str(&format!("{CONSOLE_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}{age}"))
        .unwrap_or_else(|_| HeaderValue::from_static("keyward_console=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_names_and_untrimmed_passwords() {
        let f = FormData::parse(b"ids=a&ids=b&name=+x+&password=+p+");
        assert_eq!(f.all("ids"), ["a", "b"]);
        assert_eq!(f.get("name"), "x");
        assert_eq!(f.raw("password"), " p ");
        assert_eq!(f.get("missing"), "");
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_no_framing() {
        assert!(CSP.contains("script-src 'self';") && CSP.contains("style-src 'self';"));
        assert!(!CSP.contains("unsafe-inline") && CSP.contains("frame-ancestors 'none'"));
        assert!(ROUTES.iter().all(|(_, p, _)| *p == "/" || p.starts_with("/console/")));
    }
}

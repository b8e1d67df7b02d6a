//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by .ci/run) against a real server: sign-in, the
//! forced password change, keys created, found, sorted, paged, locked, rolled and
//! deleted by clicking, step-up, CSRF, Service Requestors and throttling.
//! Full-page screenshots land in target/screenshots/ at 1280 px and phone width.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Auth, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PHONE: u32 = 390;
const DESKTOP: u32 = 1280;

/// chromedriver on a free port and one browser session; both end on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Ends the WebDriver session, which quits Chromium.
    async fn quit(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, Chromium included: a failed test
        // leaves no browser behind.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.driver.id())]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn browser() -> Browser {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()), format!("--window-size={DESKTOP},900")]
        }
    });
    let caps = match caps {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "chromedriver did not answer: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    Browser { client, driver, _profile: profile }
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; the screenshots go beside it.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a full-page screenshot of the current page at `width`.
async fn shot(c: &Client, name: &str, width: u32) {
    c.set_window_size(width, 900).await.unwrap();
    // The page's height plus what the window spends outside the viewport.
    let height = c
        .execute("return document.documentElement.scrollHeight + (window.outerHeight - window.innerHeight);", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(900);
    let height = u32::try_from(height).unwrap_or(900).clamp(600, 8000);
    c.set_window_size(width, height).await.unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}-{width}.png")), png).unwrap();
    c.set_window_size(DESKTOP, 900).await.unwrap();
}

async fn both_shots(c: &Client, name: &str) {
    shot(c, name, DESKTOP).await;
    shot(c, name, PHONE).await;
}

/// The text of the first element matching `css`, waiting for it to appear (and past a
/// page that is replaced while it is read).
async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            return t;
        }
        assert!(Instant::now() < deadline, "no {css} in:\n{}", c.source().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the element's text is `expected` (a submit by script navigates later).
async fn wait_text(c: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{css} shows {now:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.click().await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "cannot click {css} in:\n{}", c.source().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the grid shows exactly these rows.
async fn wait_rows(c: &Client, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = row_names(c).await;
        if now == expected {
            return;
        }
        assert!(Instant::now() < deadline, "rows {now:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the element's text is not empty (a dialog being filled).
async fn filled_text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = text(c, css).await;
        if !t.is_empty() {
            return t;
        }
        assert!(Instant::now() < deadline, "{css} stays empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the browser is at `expected` (navigation after a click may lag behind it).
async fn wait_path(c: &Client, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = c.current_url().await.unwrap().path().to_owned();
        if now == expected {
            return;
        }
        if Instant::now() > deadline {
            let source = c.source().await.unwrap_or_default();
            panic!("at {now}, not {expected}:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The names in the grid's rows, top to bottom.
async fn row_names(c: &Client) -> Vec<String> {
    let mut names = Vec::new();
    for a in c.find_all(Locator::Css("#keys-table tbody td:nth-child(2) a")).await.unwrap_or_default() {
        names.push(a.text().await.unwrap_or_default());
    }
    names
}

/// Ticks the row checkboxes of the keys named.
async fn select_rows(c: &Client, names: &[&str]) {
    for row in c.find_all(Locator::Css("#keys-table tbody tr")).await.unwrap() {
        let name = row.find(Locator::Css("td:nth-child(2)")).await.unwrap().text().await.unwrap();
        if names.contains(&name.as_str()) {
            row.find(Locator::Css("input[name=ids]")).await.unwrap().click().await.unwrap();
        }
    }
}

async fn status_of(s: &TestServer, id: &str) -> String {
    s.get(&format!("/v1/keys/{id}"), &s.admin).await.expect(200)["status"].as_str().unwrap().to_owned()
}

fn one_time_password(s: &TestServer) -> String {
    let text = std::fs::read_to_string(s.data_dir().join("bootstrap-admin.txt")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("password="))
        .expect("a one-time password in bootstrap-admin.txt")
        .to_owned()
}

/// A plain HTTP client that carries the browser's console session cookie.
async fn with_session(c: &Client) -> (reqwest::Client, String) {
    let cookie = c.get_named_cookie("keyward_console").await.unwrap();
    (reqwest::Client::new(), format!("keyward_console={}", cookie.value()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let s = TestServer::in_process().await;
    let org_id = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/orgs/{org_id}"), &s.admin, json!({"max_keys_per_user": 50})).await.expect(200);
    // Keys to page, sort and count: 24 plain ones, one that will have expired, one expiring soon.
    for i in 0..24 {
        s.create_key(json!({"name": format!("batch {i:02}"), "expires_at": null})).await;
    }
    s.create_key(json!({"name": "old expired", "expires_in_days": 1})).await;
    s.clock().advance(Duration::from_secs(2 * 86_400));
    s.create_key(json!({"name": "soon expiring", "expires_in_days": 10})).await;
    let b = browser().await;
    let c = &b.client;

    // Sign-in: a wrong password first, then the one-time password, which must be changed at once.
    c.goto(&format!("{}/", s.base)).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Sign in · Keyward");
    both_shots(c, "01-sign-in").await;
    fill(c, "#email", "admin@localhost").await;
    fill(c, "#password", "not the password").await;
    click(c, "button[type=submit]").await;
    assert_eq!(text(c, "#sign-in-error").await, "The email or the password is wrong.");
    fill(c, "#password", &one_time_password(&s)).await;
    click(c, "button[type=submit]").await;
    wait_path(c, "/console/password").await;
    c.goto(&format!("{}/console/keys", s.base)).await.unwrap();
    wait_path(c, "/console/password").await;
    both_shots(c, "02-change-password").await;
    let new_password = "a calm passphrase 42";
    fill(c, "#current", &one_time_password(&s)).await;
    fill(c, "#new", "admin@localhost").await;
    fill(c, "#confirm", "admin@localhost").await;
    click(c, "button[type=submit]").await;
    assert!(text(c, "#password-error").await.contains("must not be your email address"));
    fill(c, "#current", &one_time_password(&s)).await;
    fill(c, "#new", new_password).await;
    fill(c, "#confirm", new_password).await;
    click(c, "button[type=submit]").await;
    wait_path(c, "/console/keys").await;

    // The grid: counters, the default page of 25, and the total.
    assert_eq!(text(c, "#count-expired").await, "1");
    assert_eq!(text(c, "#count-expiring").await, "1");
    assert_eq!(text(c, "#range").await, "1–25 of 27");
    let expired_badge =
        c.find(Locator::XPath("//tr[td[2]/a='old expired']//span[contains(@class,'badge')]")).await.unwrap();
    assert_eq!(expired_badge.text().await.unwrap(), "Expired", "status as a word, not colour alone");
    both_shots(c, "03-keys-grid").await;
    click(c, ".counter-expired").await;
    wait_rows(c, &["old expired"]).await;
    c.goto(&format!("{}/console/keys", s.base)).await.unwrap();

    // A new key through the form; its secret is read from the page and works against the API.
    click(c, "a.button.primary[href='/console/keys/new']").await;
    both_shots(c, "04-new-key").await;
    fill(c, "#name", "ci deploy").await;
    fill(c, "#description", "Deploys from CI").await;
    click(c, "input[name=expiry][value=never]").await;
    fill(c, "#networks", "not an address").await;
    click(c, "#new-key button[type=submit]").await;
    let refused = text(c, ".alert-error").await;
    assert!(refused.contains("network"), "the server's message is shown: {refused}");
    fill(c, "#networks", "127.0.0.1").await;
    click(c, "#new-key button[type=submit]").await;
    let key_id = text(c, "#new-key-id").await;
    let secret = text(c, "#new-secret").await;
    assert!(secret.starts_with("kws_"), "{secret}");
    assert!(text(c, ".alert-warning").await.contains("cannot be shown again"));
    both_shots(c, "05-secret-shown").await;
    let me = s.get("/v1/me", &Auth::basic(&key_id, &secret)).await.expect(200);
    assert_eq!(me["key"]["id"], key_id.as_str(), "{me}");

    // The CSV: id and secret, served once and not cached.
    let href = c.find(Locator::Css("#download-csv")).await.unwrap().attr("href").await.unwrap().unwrap();
    let (http, cookie) = with_session(c).await;
    let csv = http.get(format!("{}{href}", s.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(csv.headers()["cache-control"], "no-store");
    assert_eq!(csv.text().await.unwrap(), format!("id,secret\r\n{key_id},{secret}\r\n"));
    let again = http.get(format!("{}{href}", s.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(again.status(), 410, "a secret's CSV is served once");

    // Search, sort, rows per page, next and previous.
    c.goto(&format!("{}/console/keys", s.base)).await.unwrap();
    fill(c, "#q", "ci dep").await;
    click(c, ".toolbar button[type=submit]").await;
    wait_rows(c, &["ci deploy"]).await;
    c.goto(&format!("{}/console/keys", s.base)).await.unwrap();
    click(c, "th[aria-sort] a[href*='sort=name']").await;
    text(c, "th[aria-sort=ascending] a[href*='sort=-name']").await;
    let names = row_names(c).await;
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name, ascending");
    assert_eq!(names[0], "batch 00");
    click(c, "th[aria-sort=ascending] a").await;
    text(c, "th[aria-sort=descending] a[href*='sort=name']").await;
    assert_eq!(row_names(c).await[0], "soon expiring", "a second click sorts descending");
    c.find(Locator::Css("#per_page")).await.unwrap().select_by_value("10").await.unwrap();
    wait_text(c, "#range", "1–10 of 28").await;
    click(c, "#next-page").await;
    wait_text(c, "#range", "11–20 of 28").await;
    click(c, "#prev-page").await;
    wait_text(c, "#range", "1–10 of 28").await;

    // Bulk lock and unlock of two keys, then a bulk delete behind a dialog that names the count.
    c.goto(&format!("{}/console/keys?sort=name&per_page=50", s.base)).await.unwrap();
    select_rows(c, &["batch 01", "batch 02"]).await;
    assert_eq!(text(c, "[data-selected-count]").await, "2 keys selected");
    click(c, "button[value=lock]").await;
    wait_text(c, "#notice", "Locked 2 keys.").await;
    let server = &s;
    let id_of = |name: &str| {
        let name = name.to_owned();
        async move {
            let s = server;
            let list = s.get(&format!("/v1/keys?q={}", name.replace(' ', "+")), &s.admin).await.expect(200);
            list["items"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    let (b1, b2, b3) = (id_of("batch 01").await, id_of("batch 02").await, id_of("batch 03").await);
    assert_eq!(status_of(&s, &b1).await, "locked");
    assert_eq!(status_of(&s, &b2).await, "locked");
    select_rows(c, &["batch 01", "batch 02"]).await;
    click(c, "button[value=unlock]").await;
    wait_text(c, "#notice", "Unlocked 2 keys.").await;
    assert_eq!(status_of(&s, &b1).await, "active");
    select_rows(c, &["batch 03"]).await;
    click(c, "button[value=delete]").await;
    let question = filled_text(c, "#confirm-text").await;
    assert!(question.starts_with("Delete 1 key?"), "{question}");
    both_shots(c, "06-bulk-delete-dialog").await;
    click(c, "#confirm-ok").await;
    wait_text(c, "#notice", "Deleted 1 key.").await;
    s.get(&format!("/v1/keys/{b3}"), &s.admin).await.problem(404, "not_found");

    // A key's page: roll with a grace period; the old secret still works, the new one too.
    c.goto(&format!("{}/console/keys/{key_id}", s.base)).await.unwrap();
    assert_eq!(text(c, "#key-id").await, key_id);
    both_shots(c, "07-key-page").await;
    fill(c, "#edit-comment", "Rolled every quarter").await;
    click(c, "#save-key").await;
    wait_text(c, "#notice", "Saved.").await;
    let key = s.get(&format!("/v1/keys/{key_id}"), &s.admin).await.expect(200);
    assert_eq!(key["comment"], "Rolled every quarter");
    assert_eq!(key["network_restrictions"], json!(["127.0.0.1"]), "kept as it was: {key}");
    c.find(Locator::Css("#grace")).await.unwrap().select_by_value("3600").await.unwrap();
    click(c, "#roll-key").await;
    let rolled = text(c, "#new-secret").await;
    assert_ne!(rolled, secret);
    s.get("/v1/me", &Auth::basic(&key_id, &rolled)).await.expect(200);
    s.get("/v1/me", &Auth::basic(&key_id, &secret)).await.expect(200);
    c.goto(&format!("{}/console/keys/{key_id}", s.base)).await.unwrap();
    click(c, "#end-grace").await;
    wait_text(c, "#notice", "The grace period is over: only the new secret works.").await;
    s.get("/v1/me", &Auth::basic(&key_id, &secret)).await.problem(401, "invalid_credentials");

    // Step-up: 16 minutes on, rolling asks for the password again.
    s.clock().advance(Duration::from_secs(16 * 60));
    c.goto(&format!("{}/console/keys/{key_id}", s.base)).await.unwrap();
    fill(c, "#roll-password", "wrong password!").await;
    click(c, "#roll-key").await;
    assert_eq!(text(c, "#step-up-error").await, "The password is wrong.");
    s.get("/v1/me", &Auth::basic(&key_id, &rolled)).await.expect(200);
    fill(c, "#roll-password", new_password).await;
    click(c, "#roll-key").await;
    let third = text(c, "#new-secret").await;
    s.get("/v1/me", &Auth::basic(&key_id, &third)).await.expect(200);

    // Delete from the key's page, behind its dialog.
    c.goto(&format!("{}/console/keys/{key_id}", s.base)).await.unwrap();
    click(c, "#delete-key").await;
    assert!(filled_text(c, "#confirm-text").await.contains("ci deploy"));
    click(c, "#confirm-ok").await;
    wait_text(c, "#notice", "The key was deleted.").await;
    s.get("/v1/me", &Auth::basic(&key_id, &third)).await.problem(401, "invalid_credentials");

    // Forms without the session's CSRF token are refused, whatever the cookie.
    let (http, cookie) = with_session(c).await;
    for body in [format!("action=lock&ids={b1}"), format!("action=lock&ids={b1}&csrf=forged")] {
        let resp = http
            .post(format!("{}/console/keys/bulk", s.base))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
    }
    assert_eq!(status_of(&s, &b1).await, "active");

    // Audit: the console's actions left the API's entries.
    let audit = s.get("/v1/audit?per_page=100", &s.admin).await.expect(200);
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in [
        "key.create",
        "key.lock",
        "key.unlock",
        "key.delete",
        "key.roll",
        "key.end_grace",
        "user.password_change",
        "session.sign_in",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }

    // Sign out; the session cookie no longer opens the console.
    click(c, ".whoami button").await;
    wait_path(c, "/").await;
    let resp = http.get(format!("{}/console/keys", s.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(resp.url().path(), "/", "redirected to sign-in");

    // A Service Requestor is told why it cannot sign in.
    s.post(
        "/v1/users",
        &s.admin,
        json!({"name": "billing bot", "email": "bot@example.com", "kind": "service", "roles": ["service_requestor"]}),
    )
    .await
    .expect(201);
    fill(c, "#email", "bot@example.com").await;
    fill(c, "#password", "whatever it is").await;
    click(c, "button[type=submit]").await;
    assert!(text(c, "#sign-in-error").await.contains("Service Requestor"));
    both_shots(c, "08-service-refused").await;

    // Repeated failures are throttled (429 with Retry-After), even for the right password.
    let wrong = |password: &'static str| {
        let base = s.base.clone();
        async move {
            let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
            let page = http.get(format!("{base}/")).send().await.unwrap();
            let presign = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
            let html = page.text().await.unwrap();
            let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            let body = format!("csrf={csrf}&email=admin%40localhost&password={}", password.replace(' ', "+"));
            http.post(format!("{base}/console/sign-in"))
                .header("cookie", presign)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let mut throttled = None;
    for _ in 0..12 {
        // Ten at a time: argon2id makes each wrong password cost real time, which is the point.
        let batch = futures_util::future::join_all((0..10).map(|_| wrong("not it at all"))).await;
        for resp in batch {
            match resp.status().as_u16() {
                429 => throttled = Some(resp),
                status => assert_eq!(status, 401),
            }
        }
        if throttled.is_some() {
            break;
        }
    }
    let throttled = throttled.expect("sign-in failures are throttled");
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(wrong("a calm passphrase 42").await.status(), 429, "locked out, even with the right password");
    b.quit().await;
}

/// Every console route is in `console::ROUTES`, and without a session every route that
/// needs one sends the browser to sign in, changing nothing; every answer carries the
/// security headers.
#[tokio::test]
async fn every_console_route_needs_what_its_entry_says() {
    use keyward_server::console::{ConsoleNeed, ROUTES};
    let s = TestServer::in_process().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (method, route, need) in ROUTES {
        let url = format!("{}{}", s.base, route.replace("{id}", "kw_nothing").replace("{token}", "nothing"));
        let req = match *method {
            "GET" => http.get(&url),
            _ => http.post(&url).header("content-type", "application/x-www-form-urlencoded").body("csrf=x"),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        match need {
            ConsoleNeed::Person => {
                assert_eq!(status, 303, "{method} {route} without a session");
                assert_eq!(resp.headers()["location"], "/", "{method} {route}");
            }
            // The sign-in form without its pre-session token is refused; the rest answers.
            ConsoleNeed::Public if *method == "POST" => assert_eq!(status, 403, "{method} {route}"),
            ConsoleNeed::Public => assert_eq!(status, 200, "{method} {route}"),
        }
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{route}: {csp}");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff", "{route}");
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer", "{route}");
    }
    // The API keeps its JSON answers: an unknown path under /console is a problem document.
    s.get("/console/nothing-here", &Auth::None).await.problem(404, "not_found");
}

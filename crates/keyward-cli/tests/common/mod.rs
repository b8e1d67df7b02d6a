//! Test harness: starts the real `keyward` binary on an ephemeral port with a
//! temporary data dir, captures everything it prints, and talks HTTP to it; or
//! (`TestServer::in_process`) runs the same service in this process with a manual clock.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support code

pub mod in_process;

use base64::Engine;
use keyward_core::clock::{Clock, ManualClock, SystemClock};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A credential to call the API with.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Auth {
    pub fn basic(id: &str, secret: &str) -> Self {
        Auth::Basic(id.to_owned(), secret.to_owned())
    }
}

/// A running server and everything it printed.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub admin: Auth,
    pub admin_id: String,
    pub admin_secret: String,
    child: Option<Child>,
    output: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    client: reqwest::Client,
    /// Set for an in-process server: the time it sees, moved only by the test.
    clock: Option<Arc<ManualClock>>,
    in_process: Option<in_process::Running>,
    /// The `--listen` address of the next launch.
    listen: String,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

impl Response {
    /// Asserts a status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self.body
    }

    /// Asserts a problem document with this status and code, and returns it.
    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        let ct = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(ct, "application/problem+json", "problem content type");
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        for field in ["type", "title", "status", "detail"] {
            assert!(!self.body[field].is_null(), "problem lacks {field}: {}", self.text);
        }
        assert_eq!(self.body["status"], status);
        self.body
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keyward"))
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_env(vec![]).await
    }

    pub async fn start_with_env(env: Vec<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = env.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let mut server = TestServer {
            dir,
            base: String::new(),
            admin: Auth::None,
            admin_id: String::new(),
            admin_secret: String::new(),
            child: None,
            output: Arc::new(Mutex::new(String::new())),
            env,
            client: reqwest::Client::new(),
            clock: None,
            in_process: None,
            listen: "127.0.0.1:0".into(),
        };
        server.launch().await;
        // The banner goes to stdout and the listening line to stderr; their reader threads race.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.output().contains("secret:") {
            assert!(Instant::now() < deadline, "no bootstrap banner:\n{}", server.output());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let out = server.output();
        server.admin_id = field_after(&out, "id:").expect("bootstrap id printed");
        server.admin_secret = field_after(&out, "secret:").expect("bootstrap secret printed");
        server.admin = Auth::basic(&server.admin_id, &server.admin_secret);
        server
    }

    /// The binary on a data dir that `prepare` filled first (e.g. a restored backup), so no
    /// bootstrap banner is printed or awaited and `admin` is left empty.
    pub async fn start_prepared(prepare: impl FnOnce(&Path)) -> Self {
        let mut server = TestServer {
            dir: tempfile::tempdir().expect("tempdir"),
            base: String::new(),
            admin: Auth::None,
            admin_id: String::new(),
            admin_secret: String::new(),
            child: None,
            output: Arc::new(Mutex::new(String::new())),
            env: Vec::new(),
            client: reqwest::Client::new(),
            clock: None,
            in_process: None,
            listen: "127.0.0.1:0".into(),
        };
        prepare(&server.data_dir());
        server.launch().await;
        server
    }

    /// The service in this process on port 0, with a manual clock that starts at the
    /// real time (so Hawk and JWT clients outside agree with it until a test moves it).
    /// It prints nothing to capture: tests about output, start-up or kill -9 use `start`.
    pub async fn in_process() -> Self {
        let mut server = TestServer {
            dir: tempfile::tempdir().expect("tempdir"),
            base: String::new(),
            admin: Auth::None,
            admin_id: String::new(),
            admin_secret: String::new(),
            child: None,
            output: Arc::new(Mutex::new(String::new())),
            env: Vec::new(),
            client: reqwest::Client::new(),
            clock: Some(Arc::new(ManualClock::new(SystemClock.now()))),
            in_process: None,
            listen: "127.0.0.1:0".into(),
        };
        server.launch().await;
        let (id, secret) = server.in_process.as_mut().and_then(|r| r.admin.take()).expect("bootstrap admin key");
        server.admin = Auth::basic(&id, &secret);
        (server.admin_id, server.admin_secret) = (id, secret);
        server
    }

    /// The in-process server's clock.
    pub fn clock(&self) -> &ManualClock {
        self.clock.as_deref().expect("only an in-process server has a manual clock")
    }

    /// Runs the in-process server's background writers once now, as their next tick would.
    pub async fn flush(&self) {
        self.in_process.as_ref().expect("only an in-process server can be flushed").flush().await;
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Spawns the binary and waits until it listens.
    async fn launch(&mut self) {
        if let Some(clock) = &self.clock {
            let running = in_process::Running::start(self.data_dir(), clock.clone()).await;
            self.base = format!("http://{}", running.addr);
            self.in_process = Some(running);
            return;
        }
        let start_mark = self.output.lock().unwrap().len();
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--listen").arg(&self.listen).arg("--data-dir").arg(self.data_dir());
        cmd.env_remove("KEYWARD_MASTER_KEY").env("KEYWARD_LOG", "info,keyward_server=debug");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn keyward");
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = self.output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.output.lock().unwrap()[start_mark..].to_owned();
            if let Some(addr) = field_after(&out, "addr=") {
                self.base = format!("http://{addr}");
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("keyward exited with {status} before listening:\n{out}");
            }
            assert!(Instant::now() < deadline, "keyward did not start:\n{out}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The server process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `keyward` with arguments (an operator command) and returns its exit status and output.
    pub fn run_cli(&self, args: &[&str]) -> (std::process::ExitStatus, String, String) {
        let out = Command::new(binary()).args(args).env_remove("KEYWARD_MASTER_KEY").output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        // An empty capture would let a test about leaks pass without looking at anything.
        assert!(self.clock.is_none(), "an in-process server prints nothing to capture; use TestServer::start");
        self.output.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until the server has printed `needle`: its output is read by
    /// another thread, so a line logged just now may not be captured yet.
    pub async fn wait_for_output(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut running) = self.in_process.take() {
            running.stop();
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "keyward did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills the server with SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        assert!(self.in_process.is_none(), "an in-process server cannot be killed with SIGKILL; use TestServer::start");
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    /// Restarts on the same address, so requests signed for it (Hawk) can be sent again.
    pub async fn restart_on_same_address(&mut self) {
        self.stop();
        self.listen = self.base.trim_start_matches("http://").to_owned();
        self.launch().await;
        self.listen = "127.0.0.1:0".into();
    }

    pub async fn start_again_after_kill(&mut self) {
        self.kill9();
        self.launch().await;
    }

    /// Runs the binary once more on the same data dir and returns its exit status and output (for start-up failures).
    pub fn run_and_wait(&self, extra_env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(self.data_dir());
        cmd.env_remove("KEYWARD_MASTER_KEY");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status, format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    pub async fn call(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Response {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        req = match auth {
            Auth::None => req,
            Auth::Basic(id, secret) => req.basic_auth(id, Some(secret)),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Response {
        self.call(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> Response {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    pub async fn patch(&self, path: &str, auth: &Auth, body: Value) -> Response {
        self.call(Method::PATCH, path, auth, Some(body)).await
    }

    pub async fn delete(&self, path: &str, auth: &Auth) -> Response {
        self.call(Method::DELETE, path, auth, None).await
    }

    /// Sends a raw body with a content type.
    pub async fn post_raw(&self, path: &str, auth: &Auth, content_type: &str, body: &str) -> Response {
        let mut req = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Auth::Basic(id, secret) = auth {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Response { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    /// Creates a key as the admin and returns (key object, credential).
    pub async fn create_key(&self, body: Value) -> (Value, Auth) {
        let created = self.post("/v1/keys", &self.admin, body).await.expect(201);
        let id = created["key"]["id"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();
        (created["key"].clone(), Auth::Basic(id, secret))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut running) = self.in_process.take() {
            running.stop();
        }
        self.kill9();
    }
}

/// The whitespace-delimited token after `marker` in `text`, if any.
pub fn field_after(text: &str, marker: &str) -> Option<String> {
    let at = text.find(marker)? + marker.len();
    text[at..].split_whitespace().next().map(|s| s.trim_matches('"').to_owned())
}

pub fn basic_header(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

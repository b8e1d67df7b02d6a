//! The server against a hostile network and a broken disk: slow and idle connections, more
//! connections than it serves, malformed and oversized bodies, secrets in the wrong field,
//! file modes, a database deleted under it, and the CLI's own flags.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Auth, TestServer, binary, field_after, file_mode};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Spawns `keyward serve` as `cmd` says and waits until it listens; returns it and its log so far.
async fn spawn_until_listening(mut cmd: Command) -> (std::process::Child, String) {
    let mut child = cmd.env_remove("KEYWARD_MASTER_KEY").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while field_after(&output.lock().unwrap(), "addr=").is_none() {
        assert!(Instant::now() < deadline, "did not start: {}", output.lock().unwrap());
        assert!(child.try_wait().unwrap().is_none(), "exited: {}", output.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let out = output.lock().unwrap().clone();
    (child, out)
}

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection or `limit` passes; returns what arrived and
/// whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response's head: at least its status line.
async fn read_head(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn a_half_sent_header_is_closed_within_the_header_timeout() {
    let s = TestServer::start_with_env(vec![("KEYWARD_HEADER_TIMEOUT", "1")]).await;
    let mut stream = connect(&s).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "a half-sent request was kept open");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(5), "closed after {waited:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = TestServer::start_with_env(vec![("KEYWARD_HEADER_TIMEOUT", "1")]).await;
    let mut stream = connect(&s).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let head = read_head(&mut stream, Duration::from_secs(5)).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection: close"), "the connection is kept alive: {head}");
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "an idle connection was kept open");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn connections_over_the_cap_wait_and_are_served_once_others_close() {
    let s = TestServer::start_with_env(vec![("KEYWARD_MAX_CONNECTIONS", "4"), ("KEYWARD_HEADER_TIMEOUT", "10")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&s).await);
    }
    // The kernel completes the handshake, but the server reads nothing while the cap is reached.
    let mut waiting = connect(&s).await;
    waiting.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    assert!(read_head(&mut waiting, Duration::from_millis(500)).await.is_none(), "the cap was not applied");
    drop(held);
    let head = read_head(&mut waiting, Duration::from_secs(3)).await.expect("served once others closed");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.get("/healthz", &Auth::None).await.expect(200);
    assert!(s.wait_for_output("connection cap reached").await, "the operator is told");
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_then_stops() {
    let mut s = TestServer::start().await;
    let body = br#"{"name": "finished during shutdown"}"#;
    let mut stream = connect(&s).await;
    let head = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        common::basic_header(&s.admin_id, &s.admin_secret),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Command::new("kill").arg("-TERM").arg(s.pid().unwrap().to_string()).status().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&body[10..]).await.unwrap();
    let head = read_head(&mut stream, Duration::from_secs(5)).await.expect("the request in flight is answered");
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    s.stop();
    assert!(s.wait_for_output("keyward stopped").await, "{}", s.output());
    let out = s.output();
    let stopped = out.find("keyward stopped").unwrap();
    assert!(out.find("route=/v1/keys").is_some_and(|at| at < stopped), "{out}");
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Started with a low soft limit, as many service managers and shells do.
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("ulimit -Sn 256 && exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\"");
    cmd.arg(binary()).arg(dir.path().join("data"));
    let (mut child, output) = spawn_until_listening(cmd).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft limit = hard limit: {line}");
    if let Ok(hard) = numbers[1].parse::<u64>() {
        let cap = format!("max_connections={}", (hard - 64).clamp(16, 65_536));
        assert!(output.contains(&cap), "the connection cap follows the limit: {output}");
    }
}

#[tokio::test]
async fn anything_after_the_json_document_is_invalid_json() {
    let s = TestServer::start().await;
    for body in [r#"{"name": "a"}garbage"#, r#"{"name": "a"} {"name": "b"}"#, r#"{"name": "a"}}"#] {
        s.post_raw("/v1/keys", &s.admin, "application/json", body).await.problem(400, "invalid_json");
    }
    let keys = s.get("/v1/keys", &s.admin).await.expect(200);
    assert_eq!(keys["total"], 1, "nothing was created");
    s.post_raw("/v1/keys", &s.admin, "application/json", "{\"name\": \"a\"}\n").await.expect(201);
}

#[tokio::test]
async fn an_oversized_body_is_413_payload_too_large() {
    let s = TestServer::start().await;
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(3 * 1024 * 1024));
    s.post_raw("/v1/keys", &s.admin, "application/json", &big).await.problem(413, "payload_too_large");
    let form = format!("grant_type=client_credentials&scope={}", "a".repeat(3 * 1024 * 1024));
    let r = s.post_raw("/v1/oauth/token", &Auth::None, "application/x-www-form-urlencoded", &form).await;
    assert_eq!(r.status.as_u16(), 413, "{}", r.text);
    // The token endpoint answers in its own RFC 6749 format.
    assert_eq!(
        (r.body["error"].as_str(), r.body["code"].as_str()),
        (Some("invalid_request"), Some("payload_too_large"))
    );
    let r =
        s.post_raw("/v1/oauth/token", &s.admin, "application/x-www-form-urlencoded", "grant_type=kws_notechoed").await;
    assert_eq!(r.body["error"], "unsupported_grant_type");
    assert!(!r.text.contains("kws_notechoed"), "{}", r.text);
}

#[tokio::test]
async fn a_secret_in_the_wrong_field_is_never_echoed() {
    let s = TestServer::start().await;
    let secret = s.admin_secret.clone();
    let bodies = [
        json!({"name": "x", "reauth_timeout_s": secret}),
        json!({"name": "x", "expires_in_days": secret}),
        json!({"name": "x", "expires_at": secret}),
        json!({"name": "x", "roles": [secret]}),
        json!({"name": "x", "scopes": [secret]}),
        json!({"name": "x", "scopes": [{"scope": secret, "resource": "keys", "access": "read"}]}),
        json!({"name": "x", "scopes": [{"scope": "keyward", "resource": "keys", "access": secret}]}),
        json!({"name": "x", "network_restrictions": [secret]}),
        json!({"name": "x", "id": format!("{secret}!")}),
        json!({"name": ["x", secret]}),
    ];
    for body in bodies {
        let r = s.post("/v1/keys", &s.admin, body.clone()).await;
        assert!(r.status.is_client_error(), "{body}: {r:?}");
        assert!(!r.text.contains(&secret), "{body} echoed the secret: {}", r.text);
    }
    let r = s.post("/v1/roles", &s.admin, json!({"name": "r", "permissions": [secret]})).await;
    assert!(r.status.is_client_error() && !r.text.contains(&secret), "{r:?}");
    let r = s.post("/v1/roles", &s.admin, json!({"name": "r", "permissions": [format!("a:b:{secret}")]})).await;
    assert!(r.status.is_client_error() && !r.text.contains(&secret), "{r:?}");
    let r = s.post("/v1/users", &s.admin, json!({"name": "u", "kind": "service", "roles": [secret]})).await;
    assert!(r.status.is_client_error() && !r.text.contains(&secret), "{r:?}");
    // The field is still named.
    let r = s.post("/v1/keys", &s.admin, json!({"name": "x", "reauth_timeout_s": secret})).await;
    assert_eq!(r.problem(422, "validation_failed")["field"], "reauth_timeout_s");
}

#[tokio::test]
async fn every_file_in_the_data_dir_is_its_owners_only() {
    let s = TestServer::start().await;
    s.create_key(json!({"name": "written"})).await;
    assert_eq!(file_mode(&s.data_dir()), 0o700);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(s.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        assert_eq!(file_mode(&path), 0o600, "{}", path.display());
    }
    for expected in ["keyward.db", "keyward.db-wal", "keyward.db-shm", "master.key", "bootstrap-admin.txt"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
    }
}

#[tokio::test]
async fn files_left_readable_by_others_are_fixed_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = TestServer::start().await;
    s.stop();
    for name in ["keyward.db", "master.key"] {
        std::fs::set_permissions(s.data_dir().join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    s.restart().await;
    for name in ["keyward.db", "master.key"] {
        assert_eq!(file_mode(&s.data_dir().join(name)), 0o600, "{name}");
    }
}

#[tokio::test]
async fn an_existing_open_data_dir_is_left_as_it_is_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data);
    let (mut child, out) = spawn_until_listening(cmd).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(file_mode(&data), 0o755, "the operator's directory mode is kept");
    assert!(out.contains("WARN") && out.contains("open to other users") && out.contains("755"), "{out}");
    assert_eq!(file_mode(&data.join("keyward.db")), 0o600);
}

#[tokio::test]
async fn a_database_deleted_under_the_server_is_not_ready_and_takes_no_writes() {
    let s = TestServer::start().await;
    s.get("/readyz", &Auth::None).await.expect(200);
    std::fs::remove_file(s.data_dir().join("keyward.db")).unwrap();
    s.get("/readyz", &Auth::None).await.problem(503, "store_unavailable");
    let r = s.post("/v1/keys", &s.admin, json!({"name": "would be lost"})).await;
    assert!(r.status.is_server_error(), "a write to a deleted database was acknowledged: {r:?}");
    // A file put back in its place is another file: still not ready.
    std::fs::write(s.data_dir().join("keyward.db"), b"").unwrap();
    s.get("/readyz", &Auth::None).await.problem(503, "store_unavailable");
    assert!(s.wait_for_output("refusing writes").await, "the log says why");
}

#[tokio::test]
async fn a_database_overwritten_in_place_is_not_ready() {
    let s = TestServer::start().await;
    let path = s.data_dir().join("keyward.db");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..16].copy_from_slice(b"not a database!!");
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, &bytes[..16]).unwrap();
    s.get("/readyz", &Auth::None).await.problem(503, "store_unavailable");
}

#[tokio::test]
async fn a_lost_store_is_not_silently_replaced_by_a_new_deployment() {
    let mut s = TestServer::start().await;
    s.stop();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(s.data_dir().join(format!("keyward.db{suffix}")));
    }
    let (status, output) = s.run_and_wait(&[]);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("is empty") && output.contains("Restore it from a backup"), "{output}");
    assert!(output.contains("master.key") && output.contains("move"), "{output}");
    assert!(!output.contains("secret:"), "no new admin was made: {output}");
    // Moving the old files away is the way to start over on purpose.
    for name in ["master.key", "bootstrap-admin.txt"] {
        std::fs::rename(s.data_dir().join(name), s.dir.path().join(name)).unwrap();
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(s.data_dir().join(format!("keyward.db{suffix}")));
    }
    s.restart().await;
    assert_eq!(s.output().matches("secret:").count(), 2, "a new deployment began");
}

fn help(args: &[&str]) -> String {
    let out = Command::new(binary()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_subcommand_lists_only_its_own_flags() {
    for args in [&["audit", "export", "--help"][..], &["audit", "verify", "--help"]] {
        let out = help(args);
        assert!(out.contains("--data-dir") && out.contains("--org"), "{out}");
        for server_flag in ["--listen", "--public-url", "--trusted-proxies", "--redis-url", "--header-timeout"] {
            assert!(!out.contains(server_flag), "{args:?} lists {server_flag}:\n{out}");
        }
    }
    let out = help(&["serve", "--help"]);
    assert!(out.contains("--listen") && out.contains("--max-connections") && !out.contains("--org"), "{out}");
}

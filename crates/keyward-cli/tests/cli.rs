//! The `keyward` command line as a user runs it: the binary as a subprocess, against a real
//! server, with its profiles in a temporary XDG_CONFIG_HOME and standard input never a terminal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step is a failed test

mod common;

use common::{Auth, TestServer, binary, file_mode};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One user's command line: a config dir of their own.
struct Kw {
    config: tempfile::TempDir,
}

/// What one run printed, and how it exited.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        &self.stdout
    }

    /// Asserts an API refusal: exit 1, and the problem's code on stderr.
    #[track_caller]
    fn refused(&self, code: &str) {
        assert_eq!(self.code, 1, "{self:?}");
        assert!(self.stderr.contains(code), "stderr lacks {code}: {self:?}");
    }
}

impl Kw {
    fn new() -> Self {
        Self { config: tempfile::tempdir().unwrap() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args);
        self.environment(&mut cmd);
        cmd
    }

    /// This user's environment: their config dir, and no `KEYWARD_*` setting from outside.
    fn environment(&self, cmd: &mut Command) {
        cmd.env("XDG_CONFIG_HOME", self.config.path())
            .env("HOME", self.config.path())
            .env_remove("KEYWARD_PROFILE")
            .env_remove("KEYWARD_DATA_DIR")
            .env_remove("KEYWARD_DATABASE_URL")
            .env_remove("KEYWARD_CONFIG")
            .env_remove("KEYWARD_MASTER_KEY");
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None, &[])
    }

    /// Runs with `input` on standard input (a pipe, not a terminal) and extra environment.
    fn run_with(&self, args: &[&str], input: Option<&str>, env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = input {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn profile_path(&self, name: &str) -> std::path::PathBuf {
        self.config.path().join("keyward").join("profiles").join(format!("{name}.toml"))
    }

    /// Logs in as `id`/`secret` under the default profile.
    fn login(&self, base: &str, id: &str, secret: &str) -> Out {
        self.run_with(&["login", "--url", base, "--key-id", id], Some(&format!("{secret}\n")), &[])
    }

    /// A user logged in as the server's bootstrap admin.
    fn admin(s: &TestServer) -> Self {
        let kw = Self::new();
        kw.login(&s.base, &s.admin_id, &s.admin_secret).ok();
        kw
    }
}

fn id_of(created: &Value) -> String {
    created["key"]["id"].as_str().unwrap().to_owned()
}

fn secret_of(created: &Value) -> String {
    created["secret"].as_str().unwrap().to_owned()
}

/// The value after `secret: ` in table output.
fn printed_secret(stdout: &str) -> String {
    common::field_after(stdout, "secret:").expect("a secret line")
}

// ---------------------------------------------------------------- login and profiles

#[tokio::test]
async fn login_reads_the_secret_from_stdin_and_saves_a_private_profile() {
    let s = TestServer::start().await;
    let kw = Kw::new();
    let out = kw.login(&s.base, &s.admin_id, &s.admin_secret);
    assert!(out.ok().contains("logged in"), "{out:?}");
    assert!(!out.stdout.contains(&s.admin_secret) && !out.stderr.contains(&s.admin_secret), "{out:?}");

    let file = kw.profile_path("default");
    assert_eq!(file_mode(&file), 0o600);
    assert_eq!(file_mode(file.parent().unwrap()), 0o700);
    assert_eq!(file_mode(&kw.config.path().join("keyward")), 0o700);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&s.admin_secret) && text.contains(&s.admin_id) && text.contains(&s.base), "{text}");

    // The profile is what the other commands sign with.
    let me = kw.run(&["keys", "list", "--json"]).json();
    assert_eq!(me["items"][0]["id"], s.admin_id.as_str());

    // --json prints /v1/me as the server answered it: a Hawk-authenticated request.
    let me =
        kw.run_with(&["login", "--url", &s.base, "--key-id", &s.admin_id, "--json"], Some(&s.admin_secret), &[]).json();
    assert_eq!(me["auth_method"], "hawk");
    assert_eq!(me["key"]["id"], s.admin_id.as_str());
}

#[tokio::test]
async fn the_secret_is_never_a_flag_and_a_wrong_one_saves_nothing() {
    let s = TestServer::start().await;
    let kw = Kw::new();
    let help = kw.run(&["login", "--help"]);
    assert!(!help.ok().contains("--secret"), "{help:?}");
    let out =
        kw.run_with(&["login", "--url", &s.base, "--key-id", &s.admin_id, "--secret", &s.admin_secret], Some(""), &[]);
    assert_eq!(out.code, 2, "{out:?}");

    let wrong = "kws_thisIsNotTheSecretAtAllxxxxxxxxxxxxxxxxxxxxxxxxx";
    let out = kw.login(&s.base, &s.admin_id, wrong);
    out.refused("invalid_credentials");
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong), "{out:?}");
    assert!(!kw.profile_path("default").exists(), "a refused login saves no profile");

    let out = kw.run_with(&["login", "--url", &s.base, "--key-id", &s.admin_id], None, &[]);
    assert_eq!(out.code, 2, "no secret on stdin: {out:?}");
}

#[tokio::test]
async fn named_profiles_by_flag_and_by_environment() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let created = kw.run(&["keys", "create", "--name", "reader", "--scope", "keyward:keys:read", "--json"]).json();
    let (id, secret) = (id_of(&created), secret_of(&created));
    kw.run_with(&["login", "--url", &s.base, "--key-id", &id, "--profile", "reader"], Some(&secret), &[]).ok();
    assert_eq!(file_mode(&kw.profile_path("reader")), 0o600);

    // The reader profile is the narrow key: it may list keys but not create users.
    let by_flag = kw.run(&["users", "list", "--profile", "reader"]);
    by_flag.refused("insufficient_permissions");
    let by_env = kw.run_with(&["users", "list"], None, &[("KEYWARD_PROFILE", "reader")]);
    by_env.refused("insufficient_permissions");
    kw.run(&["users", "list"]).ok();

    let missing = kw.run(&["keys", "list", "--profile", "nobody"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("keyward login"), "{missing:?}");
    let bad = kw.run(&["keys", "list", "--profile", "../escape"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

/// Runs `keyward args` on a pseudo-terminal (tests/python/tty_run.py), typing each answer once
/// its prompt shows; returns the exit code and everything the terminal showed.
fn on_terminal(kw: &Kw, args: &[&str], answers: &[(&str, &str)]) -> (i32, String) {
    let script = format!("{}/tests/python/tty_run.py", env!("CARGO_MANIFEST_DIR"));
    let mut argv: Vec<String> = vec![script];
    for (prompt, answer) in answers {
        argv.extend([prompt.to_string(), answer.to_string()]);
    }
    argv.push("--".into());
    argv.push(binary().to_str().unwrap().to_owned());
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut py = Command::new("python3");
    py.args(&argv);
    kw.environment(&mut py);
    let out = py.output().expect("python3 is required by these tests");
    assert!(out.status.success(), "tty_run.py failed: {out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unanswered"], json!([]), "a prompt never showed: {report}");
    (report["code"].as_i64().unwrap() as i32, report["output"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn on_a_terminal_login_prompts_without_echo_and_destructive_commands_ask() {
    let s = TestServer::start().await;
    let kw = Kw::new();
    let (code, shown) = on_terminal(
        &kw,
        &["login", "--url", &s.base, "--key-id", &s.admin_id],
        &[("noecho:Secret for", &s.admin_secret)],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("logged in"), "{shown}");
    assert!(!shown.contains(&s.admin_secret), "the secret is not echoed: {shown}");
    assert_eq!(file_mode(&kw.profile_path("default")), 0o600);

    let id = id_of(&kw.run(&["keys", "create", "--name", "asked", "--json"]).json());
    let (code, shown) = on_terminal(&kw, &["keys", "delete", &id], &[("[y/N]", "n")]);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains(&format!("Delete key {id}")) && shown.contains("nothing was done"), "{shown}");
    kw.run(&["keys", "get", &id]).ok();
    let (code, shown) = on_terminal(&kw, &["keys", "delete", &id], &[("[y/N]", "y")]);
    assert_eq!(code, 0, "{shown}");
    kw.run(&["keys", "get", &id]).refused("not_found");
}

// ---------------------------------------------------------------- keys

#[tokio::test]
async fn keys_create_get_list_edit_lock_unlock_in_both_output_modes() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);

    // Table mode: the key, then its secret once, with the warning on stderr.
    let out =
        kw.run(&["keys", "create", "--name", "ci deploy", "--scope", "keyward:keys:read", "--expires-in-days", "30"]);
    let secret = printed_secret(out.ok());
    assert!(out.stderr.contains("shown once"), "{out:?}");
    let id = common::field_after(&out.stdout, "\nid ").expect("id row");
    s.get("/v1/me", &Auth::basic(&id, &secret)).await.expect(200);

    // JSON mode: the API's answer as it is.
    let created =
        kw.run(&["keys", "create", "--name", "second", "--role", "account_admin", "--never-expires", "--json"]).json();
    let id2 = id_of(&created);
    assert!(created["key"]["expires_at"].is_null() && created["key"]["roles"] == json!(["account_admin"]), "{created}");
    s.get("/v1/me", &Auth::basic(&id2, &secret_of(&created))).await.expect(200);

    let table = kw.run(&["keys", "list", "--q", "deploy"]);
    assert!(table.ok().contains(&id) && !table.stdout.contains(&id2), "{table:?}");
    assert!(table.stdout.starts_with("ID") && table.stdout.contains("active 1"), "{table:?}");
    let page = kw.run(&["keys", "list", "--sort", "-name", "--per-page", "10", "--json"]).json();
    assert_eq!(page["per_page"], 10);
    assert_eq!(page["items"][0]["name"], "second");
    assert!(page["counts"]["active"].as_u64().unwrap() >= 3);
    assert!(!kw.run(&["keys", "list"]).stdout.contains(&secret), "a list never shows a secret");

    let got = kw.run(&["keys", "get", &id, "--json"]).json();
    assert_eq!(got["name"], "ci deploy");
    assert!(kw.run(&["keys", "get", &id]).ok().contains("ci deploy"));

    let edited = kw.run(&["keys", "edit", &id, "--name", "renamed", "--comment", "by cli", "--json"]).json();
    assert_eq!((edited["name"].as_str(), edited["comment"].as_str()), (Some("renamed"), Some("by cli")));
    assert!(kw.run(&["keys", "edit", &id, "--network", "10.0.0.0/8"]).ok().contains("10.0.0.0/8"));
    assert_eq!(kw.run(&["keys", "edit", &id, "--no-networks", "--json"]).json()["network_restrictions"], json!([]));

    assert_eq!(kw.run(&["keys", "lock", &id, "--json"]).json()["status"], "locked");
    s.get("/v1/me", &Auth::basic(&id, &secret)).await.problem(401, "key_locked");
    assert!(kw.run(&["keys", "unlock", &id]).ok().contains("active"));
    s.get("/v1/me", &Auth::basic(&id, &secret)).await.expect(200);

    // Several ids go through the bulk endpoint, each judged on its own.
    let bulk = kw.run(&["keys", "lock", &id, &id2, "--json"]).json();
    assert_eq!(bulk["results"].as_array().unwrap().len(), 2, "{bulk}");
    let partly = kw.run(&["keys", "unlock", &id, "kw_doesnotexist000000000", "--json"]);
    assert_eq!(partly.code, 1, "{partly:?}");
    assert!(partly.stdout.contains("not_found"), "{partly:?}");
    let unlocked = kw.run(&["keys", "unlock", &id2, &id]);
    assert!(unlocked.ok().contains("RESULT"), "{unlocked:?}");
}

#[tokio::test]
async fn destructive_commands_refuse_without_a_terminal_unless_yes() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let created = kw.run(&["keys", "create", "--name", "to roll", "--json"]).json();
    let (id, old) = (id_of(&created), secret_of(&created));

    for args in [&["keys", "roll", &id][..], &["keys", "delete", &id], &["users", "delete", &s.admin_id]] {
        let out = kw.run(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains("--yes"), "{out:?}");
    }
    s.get("/v1/me", &Auth::basic(&id, &old)).await.expect(200);

    // Roll with a grace period, in table mode: the new secret printed once; both work.
    let out = kw.run(&["keys", "roll", &id, "--grace-period", "300", "--yes"]);
    let new = printed_secret(out.ok());
    assert!(out.stderr.contains("shown once"), "{out:?}");
    assert_ne!(new, old);
    s.get("/v1/me", &Auth::basic(&id, &new)).await.expect(200);
    s.get("/v1/me", &Auth::basic(&id, &old)).await.expect(200);

    // end-grace stops the old secret now.
    let ended = kw.run(&["keys", "end-grace", &id, "--json"]).json();
    assert!(ended["key"]["previous_secret_expires_at"].is_null(), "{ended}");
    s.get("/v1/me", &Auth::basic(&id, &old)).await.problem(401, "invalid_credentials");

    let rolled = kw.run(&["keys", "roll", &id, "-y", "--json"]).json();
    assert_eq!(id_of(&rolled), id);
    let newest = secret_of(&rolled);
    assert!(kw.run(&["keys", "end-grace", &id]).ok().contains(&id));

    let second = kw.run(&["keys", "create", "--name", "bulk a", "--json"]).json();
    let third = kw.run(&["keys", "create", "--name", "bulk b", "--json"]).json();
    assert_eq!(kw.run(&["keys", "delete", &id, "--yes", "--json"]).json()["deleted"], true);
    s.get("/v1/me", &Auth::basic(&id, &newest)).await.problem(401, "invalid_credentials");
    kw.run(&["keys", "get", &id]).refused("not_found");
    let bulk = kw.run(&["keys", "delete", &id_of(&second), &id_of(&third), "--yes", "--json"]).json();
    assert!(bulk["results"].as_array().unwrap().iter().all(|r| r["ok"] == true), "{bulk}");
}

#[tokio::test]
async fn import_takes_ndjson_and_csv_and_lists_what_was_refused_without_echoing_secrets() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let dir = tempfile::tempdir().unwrap();
    let secrets =
        ["legacy-secret-0000000000000001", "legacy-secret-0000000000000002", "legacy-secret-0000000000000003"];
    let ndjson = dir.path().join("keys.ndjson");
    std::fs::write(
        &ndjson,
        format!(
            "{}\n\n{{\"id\": \"legacy-b\", \"name\" oops {}\n{}\n",
            json!({"id": "legacy-a", "secret": secrets[0], "name": "a", "scopes": [{"scope": "keyward", "resource": "keys", "access": "read"}]}),
            secrets[1],
            json!({"id": "legacy-a", "secret": secrets[2], "name": "again"}),
        ),
    )
    .unwrap();
    let out = kw.run(&["keys", "import", "--file", ndjson.to_str().unwrap()]);
    assert_eq!(out.code, 1, "a refusal fails the command: {out:?}");
    assert!(out.stdout.contains("imported 1 of 3"), "{out:?}");
    for (line, code) in [("3", "invalid_line"), ("4", "key_id_taken")] {
        assert!(out.stdout.lines().any(|l| l.starts_with(line) && l.contains(code)), "line {line}: {out:?}");
    }
    for secret in secrets {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret), "{out:?}");
    }
    s.get("/v1/me", &Auth::basic("legacy-a", secrets[0])).await.expect(200);

    let csv = dir.path().join("keys.csv");
    std::fs::write(
        &csv,
        format!(
            "id,secret,name,roles,scopes,expires_in_days\nlegacy-c,{},c,,keyward:keys:read keyward:users:read,30\nlegacy-d,short,d,,,\n",
            secrets[2]
        ),
    )
    .unwrap();
    let out = kw.run(&["keys", "import", "--file", csv.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["imported"], json!(["legacy-c"]));
    assert_eq!(report["refused"][0]["line"], 3);
    assert_eq!(report["refused"][0]["id"], "legacy-d");
    assert_eq!(report["refused"][0]["code"], "validation_failed");
    let c = kw.run(&["keys", "get", "legacy-c", "--json"]).json();
    assert_eq!(c["imported"], true);
    assert_eq!(c["scopes"].as_array().unwrap().len(), 2);

    let clean = dir.path().join("clean.ndjson");
    std::fs::write(
        &clean,
        format!("{}\n", json!({"id": "legacy-e", "secret": "legacy-secret-0000000000000005", "name": "e"})),
    )
    .unwrap();
    assert!(kw.run(&["keys", "import", "--file", clean.to_str().unwrap()]).ok().contains("imported 1 of 1"));
}

// ---------------------------------------------------------------- users, roles, scopes

#[tokio::test]
async fn scopes_roles_and_users_in_both_output_modes_with_roles_by_name() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);

    let scope = kw
        .run(&["scopes", "create", "--name", "orders", "--resource", "invoices", "--resource", "refunds", "--json"])
        .json();
    assert_eq!(scope["resources"], json!(["invoices", "refunds"]));
    assert!(kw.run(&["scopes", "list"]).ok().contains("invoices,refunds"));
    assert_eq!(kw.run(&["scopes", "list", "--json"]).json()["items"].as_array().unwrap().len(), 2);
    assert!(kw.run(&["scopes", "list"]).ok().contains("keyward"));
    kw.run(&["scopes", "create", "--name", "orders", "--resource", "x"]).refused("scope_exists");
    assert!(kw.run(&["scopes", "create", "--name", "shipping", "--resource", "labels"]).ok().contains("labels"));

    let role = kw
        .run(&[
            "roles",
            "create",
            "--name",
            "invoicing",
            "--permission",
            "orders:invoices:write",
            "--max-keys",
            "2",
            "--json",
        ])
        .json();
    let role_id = role["id"].as_str().unwrap().to_owned();
    assert!(
        kw.run(&["roles", "create", "--name", "refunds", "--permission", "orders:refunds:read"])
            .ok()
            .contains("refunds")
    );
    assert_eq!(kw.run(&["roles", "get", "invoicing", "--json"]).json()["id"], role_id.as_str());
    assert!(kw.run(&["roles", "get", &role_id]).ok().contains("orders:invoices:write"));
    let edited = kw.run(&["roles", "edit", "invoicing", "--description", "bills", "--no-max-keys", "--json"]).json();
    assert!(edited["description"] == "bills" && edited.get("max_keys").is_none_or(Value::is_null), "{edited}");
    assert!(kw.run(&["roles", "edit", "refunds", "--name", "refunding"]).ok().contains("refunding"));
    assert!(kw.run(&["roles", "list"]).ok().contains("invoicing"));
    assert_eq!(kw.run(&["roles", "list", "--json"]).json()["total"], 6);
    kw.run(&["roles", "edit", "auditor", "--description", "x"]).refused("role_builtin");

    let user = kw
        .run(&["users", "create", "--name", "billing bot", "--kind", "service", "--role", "invoicing", "--json"])
        .json();
    let user_id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user["roles"], json!([role_id]));
    assert!(
        kw.run(&["users", "create", "--name", "ann", "--email", "ann@example.com"]).ok().contains("ann@example.com")
    );
    assert!(kw.run(&["users", "get", &user_id]).ok().contains("billing bot"));
    assert_eq!(kw.run(&["users", "get", &user_id, "--json"]).json()["kind"], "service");
    assert_eq!(kw.run(&["users", "list", "--kind", "service", "--json"]).json()["total"], 1);
    assert!(kw.run(&["users", "list", "--q", "ann"]).ok().contains("ann@example.com"));
    let edited = kw.run(&["users", "edit", &user_id, "--role", "invoicing", "--role", "refunding", "--json"]).json();
    assert_eq!(edited["roles"].as_array().unwrap().len(), 2);
    assert!(kw.run(&["users", "edit", &user_id, "--email", "bot@example.com"]).ok().contains("bot@example.com"));

    let key =
        kw.run(&["keys", "create", "--name", "bot key", "--owner", &user_id, "--role", "invoicing", "--json"]).json();
    assert!(kw.run(&["users", "keys", &user_id]).ok().contains("bot key"));
    // A role filter by name is the role's id in the query.
    assert_eq!(kw.run(&["keys", "list", "--role", "invoicing", "--json"]).json()["total"], 1);
    assert_eq!(kw.run(&["users", "list", "--role", "invoicing", "--json"]).json()["total"], 1);
    assert_eq!(kw.run(&["users", "keys", &user_id, "--json"]).json()["items"][0]["id"], id_of(&key).as_str());

    assert_eq!(kw.run(&["users", "edit", &user_id, "--status", "disabled", "--json"]).json()["status"], "disabled");
    assert_eq!(kw.run(&["roles", "delete", "invoicing", "--yes", "--json"]).json()["deleted"], true);
    kw.run(&["roles", "get", &role_id]).refused("not_found");
    kw.run(&["keys", "get", &id_of(&key)]).refused("not_found");
    assert_eq!(kw.run(&["users", "delete", &user_id, "--yes", "--json"]).json()["deleted"], true);
    kw.run(&["users", "get", &user_id]).refused("not_found");
    let me = s.get("/v1/me", &s.admin).await.expect(200);
    kw.run(&["users", "delete", me["user"]["id"].as_str().unwrap(), "--yes"]).refused("cannot_change_self");
}

#[tokio::test]
async fn orgs_list_get_create_edit_in_both_output_modes() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let org = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    assert!(kw.run(&["orgs", "list"]).ok().contains(&org));
    let created = kw.run(&["orgs", "create", "--name", "subsidiary", "--json"]).json();
    let new = created["id"].as_str().unwrap().to_owned();
    assert_eq!(kw.run(&["orgs", "list", "--json"]).json()["total"], 2);
    assert!(kw.run(&["orgs", "get", &new]).ok().contains("subsidiary"));
    let edited = kw
        .run(&["orgs", "edit", &org, "--default-expiry-days", "90", "--allow-direct-secret", "false", "--json"])
        .json();
    assert_eq!(
        (edited["default_expiry_days"].as_u64(), edited["allow_direct_secret"].as_bool()),
        (Some(90), Some(false))
    );
    // Secrets as Basic are now refused in this org; the CLI signs with Hawk and goes on.
    s.get("/v1/me", &s.admin).await.problem(401, "invalid_credentials");
    let edited =
        kw.run(&["orgs", "edit", &org, "--no-default-expiry", "--allow-direct-secret", "true", "--json"]).json();
    assert!(edited["default_expiry_days"].is_null() && edited["allow_direct_secret"] == true, "{edited}");
    kw.run(&["orgs", "edit", &org, "--max-keys-per-user", "0"]).refused("validation_failed");
}

// ---------------------------------------------------------------- audit, token

#[tokio::test]
async fn audit_list_export_and_verify_through_the_api() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let created = kw.run(&["keys", "create", "--name", "audited", "--json"]).json();
    let id = id_of(&created);
    kw.run(&["keys", "lock", &id]).ok();

    let page = kw.run(&["audit", "list", "--target", &id, "--json"]).json();
    let actions: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["key.lock", "key.create"]);
    // Times travel in the query string the client signs (`:` percent-encoded).
    let since = kw.run(&[
        "audit",
        "list",
        "--target",
        &id,
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2999-01-01T00:00:00+01:00",
        "--json",
    ]);
    assert_eq!(since.json()["total"], 2);
    let table = kw.run(&["audit", "list", "--action", "key.lock", "--per-page", "10"]);
    assert!(table.ok().contains("key.lock") && !table.stdout.contains("key.create"), "{table:?}");

    let ndjson = kw.run(&["audit", "export", "--target", &id]);
    let lines: Vec<Value> = ndjson.ok().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{ndjson:?}");
    assert_eq!(lines[0]["action"], "key.create", "oldest first");
    let csv = kw.run(&["audit", "export", "--format", "csv", "--action", "key.lock"]);
    assert!(csv.ok().starts_with("seq,") && csv.stdout.lines().count() == 2, "{csv:?}");
    assert_eq!(kw.run(&["audit", "export", "--format", "xml"]).code, 2);

    assert!(kw.run(&["audit", "verify"]).ok().starts_with("ok:"));
    let report = kw.run(&["audit", "verify", "--json"]).json();
    assert_eq!(report["ok"], true);
    assert!(report["checked"].as_u64().unwrap() >= 5);

    // With --data-dir the same commands read the store offline (no profile needed).
    let offline = Kw::new().run(&["audit", "verify", "--data-dir", s.data_dir().to_str().unwrap()]);
    assert!(offline.ok().starts_with("ok:"), "{offline:?}");
    assert_eq!(Kw::new().run(&["audit", "list", "--data-dir", s.data_dir().to_str().unwrap()]).code, 2);
}

#[tokio::test]
async fn token_prints_an_access_token_that_the_api_accepts() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let token = kw.run(&["token"]).ok().trim().to_owned();
    assert!(token.starts_with("eyJ") && !token.contains(' '), "{token}");
    s.get("/v1/keys", &Auth::Bearer(token)).await.expect(200);

    let reply = kw.run(&["token", "--scope", "keyward:keys:read", "--json"]).json();
    assert_eq!(reply["scope"], "keyward:keys:read");
    assert_eq!(reply["token_type"], "Bearer");
    let narrow = Auth::Bearer(reply["access_token"].as_str().unwrap().to_owned());
    s.get("/v1/keys", &narrow).await.expect(200);
    s.get("/v1/users", &narrow).await.problem(403, "insufficient_permissions");

    let out = kw.run(&["token", "--scope", "nothing:at:all"]);
    out.refused("invalid_scope");
}

// ---------------------------------------------------------------- failures and signatures

#[tokio::test]
async fn a_refusal_exits_1_with_code_detail_and_field_errors_and_misuse_exits_2() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let out = kw.run(&["keys", "create", "--name", " ", "--reauth-timeout", "5"]);
    out.refused("validation_failed");
    assert!(out.stderr.contains("name:") && out.stderr.contains("reauth_timeout_s:"), "every field error: {out:?}");
    let out = kw.run(&["keys", "get", "kw_nosuchkey0000000000000"]);
    out.refused("not_found");
    assert!(out.stderr.contains("(404)"), "{out:?}");
    let bad_query = kw.run(&["keys", "list", "--status", "gone"]);
    assert!(bad_query.code == 1 && bad_query.stderr.contains("status"), "{bad_query:?}");

    for args in
        [&["keys", "frobnicate"][..], &["keys", "create"], &["keys", "create", "--name", "x", "--scope", "keys"]]
    {
        assert_eq!(kw.run(args).code, 2, "{args:?}");
    }
    let https = Kw::new().login("https://keyward.example", "kw_x", "secret");
    assert!(https.code == 2 && https.stderr.contains("http://"), "{https:?}");
    let down = Kw::new();
    down.login("http://127.0.0.1:9", "kw_x", "secret").refused("cannot reach");
}

/// A one-shot HTTP server that answers every request with `response`, and keeps what it received.
fn fake_server(response: String) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let mut stream = stream.unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (base, rx)
}

fn http_response(extra_header: &str) -> String {
    let body =
        r#"{"user":{"id":"usr_x","name":"mallory"},"org_id":"org_x","key":null,"permissions":[],"auth_method":"hawk"}"#;
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_header}connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn an_answer_whose_signature_fails_or_is_missing_is_not_trusted() {
    let secret = "kws_fakeSecretThatTheFakeServerDoesNotKnow00000000000";
    let forged = "server-authorization: Hawk mac=\"q6mQ8Kr1h2mS2e6cH2Vq9k8T8j3Zl0cY3eEo8gq0b9k=\", hash=\"x\"\r\n";
    for (header, expect) in [(forged, "does not match"), ("", "not signed")] {
        let (base, requests) = fake_server(http_response(header));
        let kw = Kw::new();
        let out = kw.login(&base, "kw_fake", secret);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains(expect), "{out:?}");
        assert!(!out.stdout.contains("mallory"), "nothing of the answer is shown: {out:?}");
        assert!(!kw.profile_path("default").exists(), "an unverified login saves nothing");
        let request = requests.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(request.contains("authorization: Hawk id=\"kw_fake\""), "{request}");
        assert!(!request.contains(secret), "the secret never travels with Hawk: {request}");
    }
}

#[tokio::test]
async fn a_stale_timestamp_challenge_is_answered_by_resyncing() {
    let s = TestServer::in_process().await;
    // The server's clock runs ten minutes ahead of this machine's: the first signature is stale.
    s.clock().advance(Duration::from_secs(600));
    let kw = Kw::new();
    let out = kw.login(&s.base, &s.admin_id, &s.admin_secret);
    assert!(out.ok().contains("logged in"), "{out:?}");
    let page = kw.run(&["keys", "list", "--json"]).json();
    assert_eq!(page["total"], 1);
}

#[tokio::test]
async fn an_org_that_requires_payload_hashes_takes_every_kind_of_request() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let org = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/orgs/{org}"), &s.admin, json!({"hawk_require_payload_hash": true})).await.expect(200);
    let id = id_of(&kw.run(&["keys", "create", "--name", "hashed", "--json"]).json());
    assert_eq!(kw.run(&["keys", "get", &id, "--json"]).json()["id"], id.as_str());
    assert_eq!(kw.run(&["keys", "lock", &id, "--json"]).json()["status"], "locked");
    assert!(kw.run(&["keys", "delete", &id, "--yes"]).ok().contains("deleted"));
    assert!(kw.run(&["audit", "export", "--target", &id]).ok().contains("key.delete"));
}

// ---------------------------------------------------------------- completions

#[test]
fn completions_for_bash_zsh_and_fish() {
    let kw = Kw::new();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef keyward"), ("fish", "complete -c keyward")] {
        let out = kw.run(&["completions", shell]);
        assert!(out.ok().contains(marker), "{shell}: {out:?}");
        for sub in ["keys", "users", "roles", "audit", "end-grace", "create-key"] {
            assert!(out.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
    assert_eq!(kw.run(&["completions", "tcsh"]).code, 2);
}

// ---------------------------------------------------------------- admin commands on the store

#[tokio::test]
async fn admin_create_key_gives_a_working_account_admin_key_audited_as_system() {
    let mut s = TestServer::start().await;
    let kw = Kw::new();
    let dir = s.data_dir();
    let out = kw.run(&["admin", "create-key", "--data-dir", dir.to_str().unwrap()]);
    let secret = printed_secret(out.ok());
    assert!(out.stderr.contains("shown once") && out.stderr.contains("within a minute"), "{out:?}");
    let id = common::field_after(&out.stdout, "account-admin key").unwrap();
    let created = kw.run(&["admin", "create-key", "--data-dir", dir.to_str().unwrap(), "--json"]).json();
    assert_eq!(created["owner_id"], s.get("/v1/me", &s.admin).await.expect(200)["user"]["id"]);

    // The running server's index takes new keys in at its next reconcile; a restart does it now.
    s.restart().await;
    let me = s.get("/v1/me", &Auth::basic(&id, &secret)).await.expect(200);
    assert_eq!(me["key"]["roles"], json!(["account_admin"]));
    let second = created["secret"].as_str().unwrap();
    s.get("/v1/me", &Auth::basic(created["key_id"].as_str().unwrap(), second)).await.expect(200);

    kw.login(&s.base, &id, &secret).ok();
    let entries = kw.run(&["audit", "list", "--target", &id, "--json"]).json();
    assert_eq!(entries["items"][0]["action"], "key.create");
    assert_eq!(entries["items"][0]["actor_id"], "system");
    assert!(!s.output().contains(&secret), "the server never logs the secret");

    assert_eq!(kw.run(&["admin", "create-key", "--data-dir", "/nonexistent/keyward"]).code, 2);
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("master.key"), empty.path().join("master.key")).unwrap();
    assert_eq!(kw.run(&["admin", "create-key", "--data-dir", empty.path().to_str().unwrap()]).code, 2);
    assert!(!empty.path().join("keyward.db").exists(), "no empty store is created");
    let out = kw.run(&["admin", "create-key", "--data-dir", dir.to_str().unwrap(), "--user", "usr_nobody"]);
    assert_eq!(out.code, 1, "{out:?}");
}

#[tokio::test]
async fn migrate_runs_on_an_existing_store_only() {
    let s = TestServer::start().await;
    let kw = Kw::new();
    assert!(kw.run(&["migrate", "--data-dir", s.data_dir().to_str().unwrap()]).ok().contains("migrated"));
    let missing = kw.run(&["migrate", "--data-dir", "/nonexistent/keyward"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(!Path::new("/nonexistent/keyward").exists());
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_into_a_new_data_dir_with_every_key() {
    let s = TestServer::start().await;
    let kw = Kw::admin(&s);
    let mut before = Vec::new();
    for i in 0..5 {
        let created = kw.run(&["keys", "create", "--name", &format!("k{i}"), "--json"]).json();
        before.push((id_of(&created), secret_of(&created)));
    }
    // Room for the write load below: an org allows 10 keys per user by default.
    let org = s.get("/v1/me", &s.admin).await.expect(200)["org_id"].as_str().unwrap().to_owned();
    s.patch(&format!("/v1/orgs/{org}"), &s.admin, json!({"max_keys_per_user": 100000})).await.expect(200);

    // Keys created one after another, each acknowledged (201), while the backup runs.
    let (base, admin_id, admin_secret) = (s.base.clone(), s.admin_id.clone(), s.admin_secret.clone());
    let done = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn({
        let (done, acked) = (done.clone(), acked.clone());
        async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let r = client
                    .post(format!("{base}/v1/keys"))
                    .basic_auth(&admin_id, Some(&admin_secret))
                    .json(&json!({"name": format!("load {}", ids.len())}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let body: Value = r.json().await.unwrap();
                ids.push((body["key"]["id"].as_str().unwrap().to_owned(), Instant::now()));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            ids
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the writer makes no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("keyward-backup.db");
    let backup_started = Instant::now();
    let backup = kw.command(&["backup", "--data-dir", s.data_dir().to_str().unwrap(), "--to", file.to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || {
        let mut backup = backup;
        backup.stdin(Stdio::null()).output().unwrap()
    })
    .await
    .unwrap();
    done.store(true, Ordering::SeqCst);
    let load = writer.await.unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("backed up"), "{out:?}");
    let acked_before: Vec<&str> =
        load.iter().filter(|(_, at)| *at < backup_started).map(|(id, _)| id.as_str()).collect();
    assert!(acked_before.len() >= 3);
    assert_eq!(file_mode(&file), 0o600);
    let again = kw.run(&["backup", "--data-dir", s.data_dir().to_str().unwrap(), "--to", file.to_str().unwrap()]);
    assert_eq!(again.code, 2, "an existing file is never overwritten: {again:?}");
    let after = id_of(&kw.run(&["keys", "create", "--name", "after the backup", "--json"]).json());

    // Restore as documented: the backup as keyward.db beside the same master key.
    let master = s.data_dir().join("master.key");
    let restored = TestServer::start_prepared(|dir| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(&master, dir.join("master.key")).unwrap();
        std::fs::copy(&file, dir.join("keyward.db")).unwrap();
    })
    .await;
    let kw2 = Kw::new();
    kw2.login(&restored.base, &s.admin_id, &s.admin_secret).ok();
    let mut ids: Vec<String> = Vec::new();
    for page in 1.. {
        let got = kw2.run(&["keys", "list", "--per-page", "100", "--page", &page.to_string(), "--json"]).json();
        let items = got["items"].as_array().unwrap();
        ids.extend(items.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        if items.is_empty() || ids.len() as u64 >= got["total"].as_u64().unwrap() {
            break;
        }
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for (id, secret) in &before {
        assert!(ids.contains(&id.as_str()), "{id} lost: {ids:?}");
        restored.get("/v1/me", &Auth::basic(id, secret)).await.expect(200);
    }
    for id in &acked_before {
        assert!(ids.contains(id), "{id}, acknowledged before the backup began, is lost");
    }
    let known: Vec<&str> =
        load.iter().map(|(id, _)| id.as_str()).chain(before.iter().map(|(id, _)| id.as_str())).collect();
    assert!(
        ids.iter().all(|id| known.contains(id) || *id == s.admin_id),
        "the restored store holds only keys made here"
    );
    assert!(!ids.contains(&after.as_str()), "a key created after the backup is not in it");
    assert!(kw2.run(&["audit", "verify"]).ok().starts_with("ok:"));
}

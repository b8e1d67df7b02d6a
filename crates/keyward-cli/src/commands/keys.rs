//! `keyward keys …` and `keyward users keys`: the key endpoints of the API.

use super::{Paging, Query, confirm, parse_time, rfc3339, seg};
use crate::Common;
use crate::client::Client;
use crate::failure::Failure;
use crate::output;
use crate::output::outln;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List keys, newest first.
    List(KeyFilter),
    /// Show one key.
    Get {
        /// The key's id.
        id: String,
    },
    /// Create a key; its secret is printed once.
    Create {
        /// 1 to 255 characters.
        #[arg(long)]
        name: String,
        /// The key's id (`[A-Za-z0-9_.-]{3,64}`); generated when absent.
        #[arg(long)]
        id: Option<String>,
        /// The user the key acts for (default: you).
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        fields: KeyFields,
    },
    /// Import keys from another system, one request per line of a CSV or NDJSON file.
    Import(super::import::ImportArgs),
    /// Give a key a new secret, printed once; the old one works for --grace-period seconds.
    Roll {
        id: String,
        /// Seconds the old secret keeps working (0 to 604800, default 0).
        #[arg(long, value_name = "SECONDS")]
        grace_period: Option<u32>,
    },
    /// Lock keys: they stop working until unlocked; the tokens they bought end for good.
    Lock {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Unlock keys.
    Unlock {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Change a key's fields; lists given replace the key's.
    Edit {
        id: String,
        /// 1 to 255 characters.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: KeyFields,
        /// Take every role off the key.
        #[arg(long, conflicts_with = "roles")]
        no_roles: bool,
        /// Take every scope off the key.
        #[arg(long, conflicts_with = "scopes")]
        no_scopes: bool,
        /// Remove every network restriction.
        #[arg(long, conflicts_with = "networks")]
        no_networks: bool,
    },
    /// Revoke keys for good (their ids stay taken).
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// End a rolled key's grace period now: the old secret stops working.
    EndGrace { id: String },
}

/// Filters of `GET /v1/keys`.
#[derive(Args, Clone, Default)]
pub struct KeyFilter {
    /// Substring of id, name, description or comment.
    #[arg(long)]
    pub q: Option<String>,
    /// `active`, `locked` or `expired`.
    #[arg(long)]
    pub status: Option<String>,
    /// Keys of one user.
    #[arg(long)]
    pub owner: Option<String>,
    /// Keys carrying one role (id or name).
    #[arg(long)]
    pub role: Option<String>,
    /// One organization (account admins).
    #[arg(long)]
    pub org: Option<String>,
    /// `name`, `created_at`, `expires_at`, `last_used_at` or `status`; `-` before it for descending.
    #[arg(long, allow_hyphen_values = true)]
    pub sort: Option<String>,
    #[command(flatten)]
    pub paging: Paging,
}

impl KeyFilter {
    /// The query, with `--role` given by name turned into the role's id.
    async fn query(&self, client: &Client) -> Result<Query, Failure> {
        let role = match &self.role {
            Some(role) => Some(super::roles::resolve(client, role).await?),
            None => None,
        };
        Ok(Query::new()
            .opt("q", self.q.as_ref())
            .opt("status", self.status.as_ref())
            .opt("owner_id", self.owner.as_ref())
            .opt("role_id", role)
            .opt("org_id", self.org.as_ref())
            .opt("sort", self.sort.as_ref())
            .paging(&self.paging))
    }
}

/// Fields shared by create and edit, named after the API's.
#[derive(Args, Clone, Default)]
pub struct KeyFields {
    /// Free text, at most 1024 characters.
    #[arg(long)]
    pub description: Option<String>,
    /// Free text, at most 1024 characters.
    #[arg(long)]
    pub comment: Option<String>,
    /// A role (id or name) the key carries; repeat for several.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// A direct grant `SCOPE:RESOURCE:ACCESS` (e.g. `keyward:keys:read`); repeat for several.
    #[arg(long = "scope", value_name = "SCOPE:RESOURCE:ACCESS", value_parser = parse_scope)]
    pub scopes: Vec<Value>,
    /// Expiry, an RFC 3339 time in the future.
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with_all = ["expires_in_days", "never_expires"])]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Expiry in days from now (1 to 36500).
    #[arg(long, value_name = "DAYS", conflicts_with = "never_expires")]
    pub expires_in_days: Option<u32>,
    /// The key never expires (`"expires_at": null`), whatever the org's default.
    #[arg(long)]
    pub never_expires: bool,
    /// An address or CIDR block the key may be used from; repeat for several.
    #[arg(long = "network", value_name = "CIDR")]
    pub networks: Vec<String>,
    /// Lifetime in seconds of the access tokens the key buys (10 to 86400).
    #[arg(long, value_name = "SECONDS")]
    pub reauth_timeout: Option<u32>,
}

fn parse_scope(s: &str) -> Result<Value, String> {
    match s.split(':').collect::<Vec<_>>()[..] {
        [scope, resource, access] if !scope.is_empty() && !resource.is_empty() && !access.is_empty() => {
            Ok(json!({"scope": scope, "resource": resource, "access": access}))
        }
        _ => Err("expected SCOPE:RESOURCE:ACCESS, e.g. keyward:keys:read".into()),
    }
}

impl KeyFields {
    /// Adds the given fields to a request body; lists only when given (or cleared).
    fn fill(&self, body: &mut Map<String, Value>, clear: [bool; 3]) {
        let [no_roles, no_scopes, no_networks] = clear;
        if let Some(d) = &self.description {
            body.insert("description".into(), json!(d));
        }
        if let Some(c) = &self.comment {
            body.insert("comment".into(), json!(c));
        }
        if !self.roles.is_empty() || no_roles {
            body.insert("roles".into(), json!(self.roles));
        }
        if !self.scopes.is_empty() || no_scopes {
            body.insert("scopes".into(), json!(self.scopes));
        }
        if let Some(t) = &self.expires_at {
            body.insert("expires_at".into(), json!(rfc3339(t)));
        }
        if self.never_expires {
            body.insert("expires_at".into(), Value::Null);
        }
        if let Some(d) = self.expires_in_days {
            body.insert("expires_in_days".into(), json!(d));
        }
        if !self.networks.is_empty() || no_networks {
            body.insert("network_restrictions".into(), json!(self.networks));
        }
        if let Some(r) = self.reauth_timeout {
            body.insert("reauth_timeout_s".into(), json!(r));
        }
    }
}

pub async fn run(common: &Common, command: KeysCommand) -> Result<(), Failure> {
    let client = super::client(common)?;
    match command {
        KeysCommand::List(filter) => list(&client, common, "/v1/keys", &filter).await,
        KeysCommand::Get { id } => {
            let key = client.get(&format!("/v1/keys/{}", seg(&id)), &[]).await?;
            show_key(common, &key);
            Ok(())
        }
        KeysCommand::Create { name, id, owner, fields } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            if let Some(id) = id {
                body.insert("id".into(), json!(id));
            }
            if let Some(owner) = owner {
                body.insert("owner_id".into(), json!(owner));
            }
            fields.fill(&mut body, [false; 3]);
            let created = client.post("/v1/keys", &Value::Object(body)).await?;
            show_with_secret(common, &created);
            Ok(())
        }
        KeysCommand::Import(args) => super::import::import(&client, common, &args).await,
        KeysCommand::Roll { id, grace_period } => {
            confirm(common, &format!("Roll key {id} (its current secret stops working)"))?;
            let body = grace_period.map_or_else(|| json!({}), |g| json!({"grace_period_s": g}));
            let rolled = client.post(&format!("/v1/keys/{}/roll", seg(&id)), &body).await?;
            show_with_secret(common, &rolled);
            Ok(())
        }
        KeysCommand::Lock { ids } => one_or_bulk(&client, common, "lock", &ids).await,
        KeysCommand::Unlock { ids } => one_or_bulk(&client, common, "unlock", &ids).await,
        KeysCommand::Delete { ids } => {
            let what = match &ids[..] {
                [id] => format!("Delete key {id} for good"),
                _ => format!("Delete {} keys for good", ids.len()),
            };
            confirm(common, &what)?;
            one_or_bulk(&client, common, "delete", &ids).await
        }
        KeysCommand::Edit { id, name, fields, no_roles, no_scopes, no_networks } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            fields.fill(&mut body, [no_roles, no_scopes, no_networks]);
            let key = client.patch(&format!("/v1/keys/{}", seg(&id)), &Value::Object(body)).await?;
            show_key(common, &key);
            Ok(())
        }
        KeysCommand::EndGrace { id } => {
            let reply =
                client.call(reqwest::Method::POST, &format!("/v1/keys/{}/end-grace", seg(&id)), &[], None).await?;
            if common.json {
                output::json(&reply);
            } else {
                output::object(&reply["key"]);
            }
            Ok(())
        }
    }
}

/// A list of keys (`path` is `/v1/keys` or a user's keys), with the per-status counts.
pub async fn list(client: &Client, common: &Common, path: &str, filter: &KeyFilter) -> Result<(), Failure> {
    let page = client.get(path, &filter.query(client).await?.0).await?;
    if common.json {
        output::json(&page);
        return Ok(());
    }
    output::list(
        &page["items"],
        &[
            ("ID", "id"),
            ("NAME", "name"),
            ("STATUS", "status"),
            ("OWNER", "owner_id"),
            ("ROLES", "roles"),
            ("SCOPES", "scopes"),
            ("EXPIRES", "expires_at"),
            ("LAST USED", "last_used_at"),
        ],
    );
    output::page_footer(&page);
    let c = &page["counts"];
    if c.is_object() {
        outln!(
            "active {}, locked {}, expired {}, expiring within 30 days {}",
            output::cell(&c["active"]),
            output::cell(&c["locked"]),
            output::cell(&c["expired"]),
            output::cell(&c["expiring_30d"])
        );
    }
    Ok(())
}

fn show_key(common: &Common, key: &Value) {
    if common.json { output::json(key) } else { output::object(key) }
}

/// `{"key", "secret"}` of a create or roll: the secret once, with the warning on stderr.
fn show_with_secret(common: &Common, reply: &Value) {
    if common.json {
        output::json(reply);
        return;
    }
    output::object(&reply["key"]);
    outln!();
    output::new_secret(&reply["secret"]);
}

/// One id: the key's own endpoint; several: `POST /v1/keys/bulk`, each id judged on its own.
async fn one_or_bulk(client: &Client, common: &Common, action: &str, ids: &[String]) -> Result<(), Failure> {
    if let [id] = ids {
        let path = format!("/v1/keys/{}", seg(id));
        if action == "delete" {
            client.delete(&path).await?;
            if common.json {
                output::json(&json!({"id": id, "deleted": true}));
            } else {
                outln!("deleted {id}");
            }
        } else {
            let reply = client.call(reqwest::Method::POST, &format!("{path}/{action}"), &[], None).await?;
            show_key(common, &reply);
        }
        return Ok(());
    }
    let reply = client.post("/v1/keys/bulk", &json!({"action": action, "ids": ids})).await?;
    let results = reply["results"].as_array().cloned().unwrap_or_default();
    if common.json {
        output::json(&reply);
    } else {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                let ok = r["ok"].as_bool().unwrap_or(false);
                vec![output::cell(&r["id"]), if ok { "ok".into() } else { output::cell(&r["code"]) }]
            })
            .collect();
        output::table(&["ID", "RESULT"], &rows);
    }
    let failed = results.iter().filter(|r| r["ok"] != true).count();
    if failed > 0 {
        let done = match action {
            "delete" => "deleted",
            "lock" => "locked",
            _ => "unlocked",
        };
        return Err(Failure::Other(anyhow::anyhow!("{failed} of {} keys could not be {done}", ids.len())));
    }
    Ok(())
}

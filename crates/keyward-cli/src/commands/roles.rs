//! `keyward roles …` (named by id or by name) and `keyward scopes …`.

use super::{Paging, Query, confirm, seg};
use crate::Common;
use crate::client::Client;
use crate::failure::Failure;
use crate::output;
use crate::output::outln;
use clap::Subcommand;
use serde_json::{Map, Value, json};

#[derive(Subcommand)]
pub enum RolesCommand {
    /// List the built-in roles and the org's custom roles.
    List {
        /// One organization (account admins).
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one role, by id or name.
    Get { role: String },
    /// Create a custom role.
    Create {
        /// 1 to 255 characters, unique in the org.
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A permission `SCOPE:RESOURCE:ACCESS` (resource may be `*`); repeat for several.
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// At most this many keys carrying the role per holder (1 to 100000).
        #[arg(long)]
        max_keys: Option<u32>,
    },
    /// Change a custom role (by id or name); permissions given replace the role's.
    Edit {
        role: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// A permission; repeat for several.
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// Remove every permission.
        #[arg(long, conflicts_with = "permissions")]
        no_permissions: bool,
        #[arg(long, conflicts_with = "no_max_keys")]
        max_keys: Option<u32>,
        /// Remove the cap on keys per holder.
        #[arg(long)]
        no_max_keys: bool,
    },
    /// Delete a custom role (by id or name), and the keys that carry it.
    Delete { role: String },
}

#[derive(Subcommand)]
pub enum ScopesCommand {
    /// List the `keyward` scope and the org's declared scopes.
    List,
    /// Declare a scope for the org's own APIs.
    Create {
        /// 1 to 64 lowercase letters, digits, `_`, `-` or `.`.
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A resource of the scope; repeat for several (1 to 100).
        #[arg(long = "resource", value_name = "RESOURCE", required = true)]
        resources: Vec<String>,
    },
}

/// The id of the role named `role` by id or by name: built-in ids are their names, custom ids
/// are generated, so a name is looked up in the list.
pub async fn resolve(client: &Client, role: &str) -> Result<String, Failure> {
    let mut page = 1u32;
    loop {
        let list = client.get("/v1/roles", &Query::new().opt("page", Some(page)).opt("per_page", Some(100)).0).await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if let Some(found) = items.iter().find(|r| r["id"] == role).or_else(|| items.iter().find(|r| r["name"] == role))
        {
            return Ok(found["id"].as_str().unwrap_or(role).to_owned());
        }
        let total = list["total"].as_u64().unwrap_or(0);
        if items.is_empty() || u64::from(page) * 100 >= total {
            // Let the server answer 404 in its own words.
            return Ok(role.to_owned());
        }
        page += 1;
    }
}

pub async fn run(common: &Common, command: RolesCommand) -> Result<(), Failure> {
    let client = super::client(common)?;
    let show = |v: &Value| if common.json { output::json(v) } else { output::object(v) };
    match command {
        RolesCommand::List { org, paging } => {
            let page = client.get("/v1/roles", &Query::new().opt("org_id", org).paging(&paging).0).await?;
            if common.json {
                output::json(&page);
            } else {
                output::list(
                    &page["items"],
                    &[
                        ("ID", "id"),
                        ("NAME", "name"),
                        ("BUILTIN", "builtin"),
                        ("MAX KEYS", "max_keys"),
                        ("PERMISSIONS", "permissions"),
                    ],
                );
                output::page_footer(&page);
            }
        }
        RolesCommand::Get { role } => {
            let id = resolve(&client, &role).await?;
            show(&client.get(&format!("/v1/roles/{}", seg(&id)), &[]).await?);
        }
        RolesCommand::Create { name, description, permissions, max_keys } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("permissions".into(), json!(permissions));
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            if let Some(m) = max_keys {
                body.insert("max_keys".into(), json!(m));
            }
            show(&client.post("/v1/roles", &Value::Object(body)).await?);
        }
        RolesCommand::Edit { role, name, description, permissions, no_permissions, max_keys, no_max_keys } => {
            let id = resolve(&client, &role).await?;
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            if !permissions.is_empty() || no_permissions {
                body.insert("permissions".into(), json!(permissions));
            }
            if let Some(m) = max_keys {
                body.insert("max_keys".into(), json!(m));
            }
            if no_max_keys {
                body.insert("max_keys".into(), Value::Null);
            }
            show(&client.patch(&format!("/v1/roles/{}", seg(&id)), &Value::Object(body)).await?);
        }
        RolesCommand::Delete { role } => {
            let id = resolve(&client, &role).await?;
            confirm(common, &format!("Delete role {role} and every key that carries it"))?;
            client.delete(&format!("/v1/roles/{}", seg(&id))).await?;
            if common.json {
                output::json(&json!({"id": id, "deleted": true}));
            } else {
                outln!("deleted {id}");
            }
        }
    }
    Ok(())
}

pub async fn run_scopes(common: &Common, command: ScopesCommand) -> Result<(), Failure> {
    let client = super::client(common)?;
    match command {
        ScopesCommand::List => {
            let page = client.get("/v1/scopes", &[]).await?;
            if common.json {
                output::json(&page);
            } else {
                output::list(
                    &page["items"],
                    &[
                        ("NAME", "name"),
                        ("BUILTIN", "builtin"),
                        ("RESOURCES", "resources"),
                        ("DESCRIPTION", "description"),
                    ],
                );
            }
        }
        ScopesCommand::Create { name, description, resources } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("resources".into(), json!(resources));
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            let scope = client.post("/v1/scopes", &Value::Object(body)).await?;
            if common.json { output::json(&scope) } else { output::object(&scope) }
        }
    }
    Ok(())
}

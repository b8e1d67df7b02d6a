//! `keyward users …`: the user endpoints of the API.

use super::keys::KeyFilter;
use super::{Paging, Query, confirm, seg};
use crate::Common;
use crate::failure::Failure;
use crate::output;
use crate::output::outln;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List users, newest first.
    List(UserFilter),
    /// Show one user.
    Get { id: String },
    /// Create a user.
    Create {
        /// 1 to 255 characters.
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// `human` (default) or `service` (a machine identity).
        #[arg(long)]
        kind: Option<String>,
        /// A role (id or name) to give; repeat for several.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// The organization (account admins; others create in their own).
        #[arg(long)]
        org: Option<String>,
    },
    /// Change a user; roles given replace the user's.
    Edit {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, conflicts_with = "no_email")]
        email: Option<String>,
        /// Clear the email address.
        #[arg(long)]
        no_email: bool,
        /// A role (id or name); repeat for several.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Take every role away.
        #[arg(long, conflicts_with = "roles")]
        no_roles: bool,
        /// `active` or `disabled`.
        #[arg(long)]
        status: Option<String>,
    },
    /// Delete a user and their keys.
    Delete { id: String },
    /// List one user's keys.
    Keys {
        /// The user's id.
        user: String,
        #[command(flatten)]
        filter: KeyFilter,
    },
}

#[derive(Args)]
pub struct UserFilter {
    /// Substring of id, name or email.
    #[arg(long)]
    q: Option<String>,
    /// `human` or `service`.
    #[arg(long)]
    kind: Option<String>,
    /// Holders of one role (id or name).
    #[arg(long)]
    role: Option<String>,
    /// `active` or `disabled`.
    #[arg(long)]
    status: Option<String>,
    /// One organization (account admins).
    #[arg(long)]
    org: Option<String>,
    #[command(flatten)]
    paging: Paging,
}

pub async fn run(common: &Common, command: UsersCommand) -> Result<(), Failure> {
    let client = super::client(common)?;
    let show = |v: &Value| if common.json { output::json(v) } else { output::object(v) };
    match command {
        UsersCommand::List(f) => {
            let role = match &f.role {
                Some(role) => Some(super::roles::resolve(&client, role).await?),
                None => None,
            };
            let query = Query::new()
                .opt("q", f.q)
                .opt("kind", f.kind)
                .opt("role_id", role)
                .opt("status", f.status)
                .opt("org_id", f.org)
                .paging(&f.paging);
            let page = client.get("/v1/users", &query.0).await?;
            if common.json {
                output::json(&page);
            } else {
                output::list(
                    &page["items"],
                    &[
                        ("ID", "id"),
                        ("NAME", "name"),
                        ("EMAIL", "email"),
                        ("KIND", "kind"),
                        ("ROLES", "roles"),
                        ("STATUS", "status"),
                    ],
                );
                output::page_footer(&page);
            }
        }
        UsersCommand::Get { id } => show(&client.get(&format!("/v1/users/{}", seg(&id)), &[]).await?),
        UsersCommand::Create { name, email, kind, roles, org } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            for (field, value) in [("email", email), ("kind", kind), ("org_id", org)] {
                if let Some(v) = value {
                    body.insert(field.into(), json!(v));
                }
            }
            if !roles.is_empty() {
                body.insert("roles".into(), json!(roles));
            }
            show(&client.post("/v1/users", &Value::Object(body)).await?);
        }
        UsersCommand::Edit { id, name, email, no_email, roles, no_roles, status } => {
            let mut body = Map::new();
            for (field, value) in [("name", name), ("email", email), ("status", status)] {
                if let Some(v) = value {
                    body.insert(field.into(), json!(v));
                }
            }
            if no_email {
                body.insert("email".into(), Value::Null);
            }
            if !roles.is_empty() || no_roles {
                body.insert("roles".into(), json!(roles));
            }
            show(&client.patch(&format!("/v1/users/{}", seg(&id)), &Value::Object(body)).await?);
        }
        UsersCommand::Delete { id } => {
            confirm(common, &format!("Delete user {id} and all their keys"))?;
            client.delete(&format!("/v1/users/{}", seg(&id))).await?;
            if common.json {
                output::json(&json!({"id": id, "deleted": true}));
            } else {
                outln!("deleted {id}");
            }
        }
        UsersCommand::Keys { user, filter } => {
            super::keys::list(&client, common, &format!("/v1/users/{}/keys", seg(&user)), &filter).await?;
        }
    }
    Ok(())
}

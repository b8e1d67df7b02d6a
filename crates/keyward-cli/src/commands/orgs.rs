//! `keyward orgs …`: organizations and their settings.

use super::{Paging, Query, seg};
use crate::Common;
use crate::failure::Failure;
use crate::output;
use clap::Subcommand;
use serde_json::{Map, Value, json};

#[derive(Subcommand)]
pub enum OrgsCommand {
    /// List the organizations you see (every one for account admins).
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one organization and its settings.
    Get { id: String },
    /// Create an organization (account admins).
    Create {
        #[arg(long)]
        name: String,
    },
    /// Change an organization's name or settings.
    Edit {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Keys per user (1 to 100000).
        #[arg(long)]
        max_keys_per_user: Option<u32>,
        /// Expiry in days of keys created without one (1 to 36500).
        #[arg(long, conflicts_with = "no_default_expiry")]
        default_expiry_days: Option<u32>,
        /// Keys created without an expiry never expire.
        #[arg(long)]
        no_default_expiry: bool,
        /// `false`: secrets are refused as Basic/Bearer (Hawk and tokens still work).
        #[arg(long)]
        allow_direct_secret: Option<bool>,
        /// Prune audit entries older than this many days (account admins).
        #[arg(long, conflicts_with = "keep_all_audit")]
        audit_retention_days: Option<u32>,
        /// Keep every audit entry (account admins).
        #[arg(long)]
        keep_all_audit: bool,
        /// `true`: Hawk requests without a payload hash are refused.
        #[arg(long)]
        hawk_require_payload_hash: Option<bool>,
    },
}

pub async fn run(common: &Common, command: OrgsCommand) -> Result<(), Failure> {
    let client = super::client(common)?;
    let show = |v: &Value| if common.json { output::json(v) } else { output::object(v) };
    match command {
        OrgsCommand::List { paging } => {
            let page = client.get("/v1/orgs", &Query::new().paging(&paging).0).await?;
            if common.json {
                output::json(&page);
            } else {
                output::list(
                    &page["items"],
                    &[
                        ("ID", "id"),
                        ("NAME", "name"),
                        ("MAX KEYS/USER", "max_keys_per_user"),
                        ("CREATED", "created_at"),
                    ],
                );
                output::page_footer(&page);
            }
        }
        OrgsCommand::Get { id } => show(&client.get(&format!("/v1/orgs/{}", seg(&id)), &[]).await?),
        OrgsCommand::Create { name } => show(&client.post("/v1/orgs", &json!({"name": name})).await?),
        OrgsCommand::Edit {
            id,
            name,
            max_keys_per_user,
            default_expiry_days,
            no_default_expiry,
            allow_direct_secret,
            audit_retention_days,
            keep_all_audit,
            hawk_require_payload_hash,
        } => {
            let mut body = Map::new();
            let mut put = |field: &str, value: Value| {
                body.insert(field.into(), value);
            };
            if let Some(n) = name {
                put("name", json!(n));
            }
            if let Some(m) = max_keys_per_user {
                put("max_keys_per_user", json!(m));
            }
            if let Some(d) = default_expiry_days {
                put("default_expiry_days", json!(d));
            }
            if no_default_expiry {
                put("default_expiry_days", Value::Null);
            }
            if let Some(a) = allow_direct_secret {
                put("allow_direct_secret", json!(a));
            }
            if let Some(d) = audit_retention_days {
                put("audit_retention_days", json!(d));
            }
            if keep_all_audit {
                put("audit_retention_days", Value::Null);
            }
            if let Some(h) = hawk_require_payload_hash {
                put("hawk_require_payload_hash", json!(h));
            }
            show(&client.patch(&format!("/v1/orgs/{}", seg(&id)), &Value::Object(body)).await?);
        }
    }
    Ok(())
}

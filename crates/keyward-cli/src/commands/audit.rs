//! `keyward audit list|export|verify`: through the API with the profile's key, or, when the
//! store is located (`--data-dir`, `--database-url`, `--config` or their `KEYWARD_*`
//! variables), straight from the store, offline (export and verify).

use super::{Paging, Query, parse_time, rfc3339};
use crate::failure::Failure;
use crate::output::outln;
use crate::{Common, StoreArgs, output};
use anyhow::Context;
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use keyward_core::ids::OrgId;
use keyward_core::store::{AuditQuery, Store};
use keyward_server::audit::{Format, export, verify};
use std::io::Write;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List entries, newest first (through the API).
    List {
        #[command(flatten)]
        filter: AuditFilter,
        #[command(flatten)]
        paging: Paging,
    },
    /// Re-walk the hash chain; exit 1 and name the first entry that does not fit.
    Verify {
        #[command(flatten)]
        filter: AuditFilter,
    },
    /// Print matching entries, oldest first, as NDJSON (default) or CSV.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
        /// `ndjson` or `csv`.
        #[arg(long, default_value = "ndjson")]
        format: String,
    },
}

#[derive(Args)]
pub struct AuditFilter {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this org.
    #[arg(long)]
    org: Option<String>,
    /// Only this action (e.g. key.roll).
    #[arg(long)]
    action: Option<String>,
    /// Only entries about this target (e.g. a key id).
    #[arg(long)]
    target: Option<String>,
    /// Only entries by this actor (a user id).
    #[arg(long)]
    actor: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries at or before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    to: Option<chrono::DateTime<chrono::Utc>>,
}

impl AuditFilter {
    fn query(&self) -> Query {
        Query::new()
            .opt("org_id", self.org.as_ref())
            .opt("action", self.action.as_ref())
            .opt("target_id", self.target.as_ref())
            .opt("actor_id", self.actor.as_ref())
            .opt("from", self.from.as_ref().map(rfc3339))
            .opt("to", self.to.as_ref().map(rfc3339))
    }
}

pub async fn run(common: &Common, command: AuditCommand) -> Result<(), Failure> {
    let (filter, format) = match &command {
        AuditCommand::List { filter, .. } | AuditCommand::Verify { filter } => (filter, None),
        AuditCommand::Export { filter, format } => (filter, Some(format.as_str())),
    };
    if let Some(f) = format
        && !matches!(f, "csv" | "ndjson")
    {
        return Err(Failure::Usage(format!("--format must be csv or ndjson, not `{f}`")));
    }
    if filter.store.given() {
        return match command {
            AuditCommand::List { .. } => {
                Err(Failure::Usage("`audit list` reads the API; offline, use `audit export` with --data-dir".into()))
            }
            AuditCommand::Verify { filter } => offline(filter, None).await,
            AuditCommand::Export { filter, format } => offline(filter, Some(format)).await,
        };
    }
    let client = super::client(common)?;
    match command {
        AuditCommand::List { filter, paging } => {
            let page = client.get("/v1/audit", &filter.query().paging(&paging).0).await?;
            if common.json {
                output::json(&page);
            } else {
                output::list(
                    &page["items"],
                    &[
                        ("SEQ", "seq"),
                        ("AT", "at"),
                        ("ACTION", "action"),
                        ("OUTCOME", "outcome"),
                        ("ACTOR", "actor_id"),
                        ("TARGET", "target_id"),
                        ("SOURCE", "source_ip"),
                    ],
                );
                output::page_footer(&page);
            }
        }
        AuditCommand::Export { filter, format } => {
            let query = filter.query().opt("format", Some(format));
            let mut out = std::io::stdout().lock();
            client.stream("/v1/audit/export", &query.0, &mut out).await?;
            match out.flush() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
        AuditCommand::Verify { filter } => {
            let report = client.get("/v1/audit/verify", &Query::new().opt("org_id", filter.org).0).await?;
            if common.json {
                output::json(&report);
            } else if report["ok"] == true {
                outln!("ok: {} entries checked, the chain is intact", output::cell(&report["checked"]));
            } else {
                outln!(
                    "broken: entry {} does not fit the chain ({} entries checked)",
                    output::cell(&report["first_bad_seq"]),
                    output::cell(&report["checked"])
                );
            }
            if report["ok"] != true {
                return Err(Failure::Other(anyhow::anyhow!(
                    "the audit chain is broken at entry {}",
                    output::cell(&report["first_bad_seq"])
                )));
            }
        }
    }
    Ok(())
}

/// Verify (`format` None) or export straight from the store.
async fn offline(filter: AuditFilter, format: Option<String>) -> Result<(), Failure> {
    let config = crate::load_config(filter.store.into())?;
    if !config.data_dir.exists() {
        return Err(anyhow::anyhow!("no data directory at {}", config.data_dir.display()).into());
    }
    let sqlite = keyward_server::open_store(&config).await?;
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let org = filter.org.map(OrgId::from_trusted);
    let outcome = async {
        match format {
            None => {
                let report = verify(store.as_ref(), org.as_ref()).await?;
                match report.first_bad_seq {
                    None => {
                        outln!("ok: {} entries checked, the chain is intact", report.checked);
                        Ok(())
                    }
                    Some(seq) => {
                        outln!("broken: entry {seq} does not fit the chain ({} entries checked)", report.checked);
                        Err(anyhow::anyhow!("the audit chain is broken at entry {seq}"))
                    }
                }
            }
            Some(format) => {
                let format = if format == "csv" { Format::Csv } else { Format::Ndjson };
                let query = AuditQuery {
                    org_id: org,
                    action: filter.action,
                    target_id: filter.target,
                    actor_id: filter.actor,
                    from: filter.from,
                    to: filter.to,
                    ..AuditQuery::default()
                };
                let mut lines = std::pin::pin!(export(store.clone(), query, format));
                let mut out = std::io::stdout().lock();
                while let Some(chunk) = lines.next().await {
                    out.write_all(chunk?.as_bytes()).context("cannot write to stdout")?;
                }
                Ok(())
            }
        }
    }
    .await;
    sqlite.close().await;
    outcome.map_err(Failure::from)
}

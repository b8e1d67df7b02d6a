//! Reading the audit log: its JSON and CSV forms, streaming export in
//! constant memory, chain verification, and the background writers
//! (coalesced refused uses, retention).

use crate::state::AppState;
use futures_util::Stream;
use keyward_core::audit::{AuditEntry, ChainVerifier};
use keyward_core::clock::{Timestamp, rfc3339, serde_rfc3339};
use keyward_core::ids::OrgId;
use keyward_core::store::{AuditQuery, Store, StoreError};
use serde::Serialize;
use std::sync::Arc;

/// Entries fetched per round trip when streaming or verifying.
const BATCH: u32 = 1000;

/// An audit entry as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub seq: i64,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub org_id: String,
    pub actor_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_key_id: Option<String>,
    pub source_ip: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        let ev = e.event;
        Self {
            seq: e.seq,
            at: ev.at,
            org_id: ev.org_id,
            actor_id: ev.actor_id,
            actor_key_id: ev.actor_key_id,
            source_ip: ev.source_ip,
            action: ev.action,
            target_type: ev.target_type,
            target_id: ev.target_id,
            outcome: ev.outcome,
            details: ev.details,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// The result of re-walking the chain.
#[derive(Debug, Serialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    pub checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
}

/// Re-walks the chain of `org` (or of every org) in batches.
pub async fn verify(store: &dyn Store, org: Option<&OrgId>) -> Result<VerifyReport, StoreError> {
    let orgs = match org {
        Some(o) => vec![o.clone()],
        None => store.audit_orgs().await?,
    };
    let mut report = VerifyReport { ok: true, checked: 0, first_bad_seq: None };
    for org in orgs {
        let mut verifier = ChainVerifier::new(&store.audit_anchor(&org).await?);
        let mut after = 0;
        loop {
            let query =
                AuditQuery { org_id: Some(org.clone()), after_seq: Some(after), limit: BATCH, ..AuditQuery::default() };
            let (batch, _) = store.list_audit(&query).await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            batch.iter().for_each(|e| verifier.feed(e));
        }
        report.checked += verifier.checked;
        if let Some(bad) = verifier.first_bad_seq {
            report.ok = false;
            report.first_bad_seq = Some(report.first_bad_seq.map_or(bad, |b| b.min(bad)));
        }
    }
    Ok(report)
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

pub const CSV_HEADER: &str =
    "seq,at,org_id,actor_id,actor_key_id,source_ip,action,target_type,target_id,outcome,details,prev_hash,hash\n";

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// One entry as a line of the export.
#[must_use]
pub fn format_line(entry: AuditEntry, format: Format) -> String {
    match format {
        Format::Ndjson => {
            let mut line = serde_json::to_string(&AuditView::from(entry)).unwrap_or_default();
            line.push('\n');
            line
        }
        Format::Csv => {
            let e = &entry.event;
            let fields = [
                entry.seq.to_string(),
                rfc3339(&e.at),
                e.org_id.clone(),
                e.actor_id.clone(),
                e.actor_key_id.clone().unwrap_or_default(),
                e.source_ip.clone().unwrap_or_default(),
                e.action.clone(),
                e.target_type.clone(),
                e.target_id.clone(),
                e.outcome.clone(),
                e.details.to_string(),
                entry.prev_hash.clone(),
                entry.hash.clone(),
            ];
            let mut line = String::with_capacity(256);
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                csv_field(&mut line, f);
            }
            line.push('\n');
            line
        }
    }
}

/// The matching entries, oldest first, as export lines; one batch in memory at a time.
pub fn export(
    store: Arc<dyn Store>,
    query: AuditQuery,
    format: Format,
) -> impl Stream<Item = Result<String, StoreError>> {
    let header = (format == Format::Csv).then(|| CSV_HEADER.to_owned());
    futures_util::stream::unfold((store, query, header, false), move |(store, mut query, header, done)| async move {
        if let Some(h) = header {
            return Some((Ok(h), (store, query, None, false)));
        }
        if done {
            return None;
        }
        query.limit = BATCH;
        query.newest_first = false;
        match store.list_audit(&query).await {
            Err(e) => Some((Err(e), (store, query, None, true))),
            Ok((batch, _)) if batch.is_empty() => None,
            Ok((batch, _)) => {
                query.after_seq = batch.last().map(|e| e.seq);
                let chunk: String = batch.into_iter().map(|e| format_line(e, format)).collect();
                Some((Ok(chunk), (store, query, None, false)))
            }
        }
    })
}

/// Writes refused uses whose window closed (all of them with `all`).
pub async fn flush_failures(state: &AppState, all: bool) {
    let events = match state.failures.lock() {
        Ok(mut f) => f.drain(state.now(), all),
        Err(_) => return,
    };
    if let Err(e) = state.store.append_audit(&events).await {
        tracing::warn!(error = %e, lost = events.len(), "could not write refused-use audit entries");
    }
}

/// Prunes each org's entries older than its retention setting.
pub async fn apply_retention(state: &AppState) {
    let now = state.now();
    for org in state.index.directory().orgs.values() {
        let Some(days) = org.settings.audit_retention_days else { continue };
        let before = now - chrono::Duration::days(i64::from(days));
        match state.store.prune_audit(&org.id, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(org = %org.id, pruned = n, "applied audit retention"),
            Err(e) => tracing::warn!(org = %org.id, error = %e, "could not apply audit retention"),
        }
    }
}

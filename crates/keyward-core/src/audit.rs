//! Audit events and the hash chain that makes the log tamper-evident.

use crate::clock::{Timestamp, rfc3339};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// An event to record, written by the store in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub org_id: String,
    pub actor_id: String,
    pub actor_key_id: Option<String>,
    pub source_ip: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub outcome: String,
    /// Free-form detail; never a secret or password.
    pub details: serde_json::Value,
}

/// The chain hash of an entry: SHA-256 over a canonical encoding of the
/// entry, its sequence number and the previous hash (hex).
#[must_use]
pub fn chain_hash(seq: i64, event: &AuditEvent, prev_hash: &str) -> String {
    // serde_json writes struct fields in declaration order and object keys
    // sorted (BTreeMap), so this encoding is stable.
    let canonical = serde_json::json!([
        seq,
        rfc3339(&event.at),
        event.org_id,
        event.actor_id,
        event.actor_key_id,
        event.source_ip,
        event.action,
        event.target_type,
        event.target_id,
        event.outcome,
        event.details,
        prev_hash,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The previous hash of an org's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event() -> AuditEvent {
        AuditEvent {
            at: chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
            org_id: "org_1".into(),
            actor_id: "usr_1".into(),
            actor_key_id: Some("kw_1".into()),
            source_ip: Some("127.0.0.1".into()),
            action: "key.create".into(),
            target_type: "key".into(),
            target_id: "kw_2".into(),
            outcome: "success".into(),
            details: serde_json::json!({"name": "ci"}),
        }
    }

    #[test]
    fn any_change_changes_the_hash() {
        let base = chain_hash(1, &event(), GENESIS_HASH);
        assert_eq!(base, chain_hash(1, &event(), GENESIS_HASH));
        assert_ne!(base, chain_hash(2, &event(), GENESIS_HASH));
        let mut e = event();
        e.target_id = "kw_3".into();
        assert_ne!(base, chain_hash(1, &e, GENESIS_HASH));
        assert_ne!(base, chain_hash(1, &event(), &base));
    }
}

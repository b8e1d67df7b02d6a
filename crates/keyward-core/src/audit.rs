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

/// A stored audit entry: the event, its place in the log and its chain hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// Re-walks one org's chain entry by entry, in constant memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_prev: String,
    pub checked: u64,
    pub first_bad_seq: Option<i64>,
}

impl ChainVerifier {
    /// Starts at `anchor`: the genesis hash, or the hash recorded where retention cut the log.
    #[must_use]
    pub fn new(anchor: &str) -> Self {
        Self { expected_prev: anchor.to_owned(), checked: 0, first_bad_seq: None }
    }

    /// Checks the next entry (in `seq` order): it must link to the previous
    /// one and its hash must match its content.
    pub fn feed(&mut self, entry: &AuditEntry) {
        self.checked += 1;
        if self.first_bad_seq.is_some() {
            return;
        }
        let linked = entry.prev_hash == self.expected_prev;
        let intact = chain_hash(entry.seq, &entry.event, &entry.prev_hash) == entry.hash;
        if !(linked && intact) {
            self.first_bad_seq = Some(entry.seq);
        }
        self.expected_prev = entry.hash.clone();
    }
}

/// Failed key uses, coalesced: one entry per key, source and reason per window.
#[derive(Debug, Default)]
pub struct FailureCoalescer {
    open: std::collections::HashMap<(String, String, String, String), FailureWindow>,
}

#[derive(Debug, Clone)]
struct FailureWindow {
    org_id: String,
    owner_id: String,
    first_at: Timestamp,
    last_at: Timestamp,
    count: u64,
}

/// Open windows before new sources of a key are folded together.
pub const MAX_OPEN_WINDOWS: usize = 10_000;

/// The length of a coalescing window.
pub const FAILURE_WINDOW_SECS: i64 = 60;

impl FailureCoalescer {
    /// Counts one refused use of `key_id` from `source` for `reason`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        action: &str,
        org_id: &str,
        owner_id: &str,
        key_id: &str,
        source: &str,
        reason: &str,
        at: Timestamp,
    ) {
        let mut slot = (action.to_owned(), key_id.to_owned(), source.to_owned(), reason.to_owned());
        // Only known keys are recorded, so sources are the one unbounded dimension:
        // past the cap, new sources of a key share one window marked "many".
        if self.open.len() >= MAX_OPEN_WINDOWS && !self.open.contains_key(&slot) {
            slot.2 = "many".to_owned();
        }
        let w = self.open.entry(slot).or_insert_with(|| FailureWindow {
            org_id: org_id.to_owned(),
            owner_id: owner_id.to_owned(),
            first_at: at,
            last_at: at,
            count: 0,
        });
        w.count += 1;
        w.last_at = at;
    }

    /// Closes the windows that began at least a window ago (all of them with
    /// `flush_all`) and returns their audit events.
    pub fn drain(&mut self, now: Timestamp, flush_all: bool) -> Vec<AuditEvent> {
        let due: Vec<_> = self
            .open
            .iter()
            .filter(|(_, w)| flush_all || (now - w.first_at).num_seconds() >= FAILURE_WINDOW_SECS)
            .map(|(k, _)| k.clone())
            .collect();
        let mut events: Vec<AuditEvent> = due
            .into_iter()
            .filter_map(|k| self.open.remove(&k).map(|w| (k, w)))
            .map(|((action, key_id, source, reason), w)| AuditEvent {
                at: w.last_at,
                org_id: w.org_id,
                actor_id: w.owner_id,
                actor_key_id: Some(key_id.clone()),
                source_ip: Some(source),
                action,
                target_type: "key".into(),
                target_id: key_id,
                outcome: "failure".into(),
                details: serde_json::json!({
                    "reason": reason,
                    "count": w.count,
                    "first_at": rfc3339(&w.first_at),
                    "last_at": rfc3339(&w.last_at),
                }),
            })
            .collect();
        events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.target_id.cmp(&b.target_id)));
        events
    }
}

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

    fn entries(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let hash = chain_hash(seq, &event(), &prev);
                let e = AuditEntry { seq, event: event(), prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn the_verifier_finds_the_first_changed_or_missing_entry() {
        let chain = entries(5);
        let mut v = ChainVerifier::new(GENESIS_HASH);
        chain.iter().for_each(|e| v.feed(e));
        assert_eq!((v.checked, v.first_bad_seq), (5, None));

        let mut edited = chain.clone();
        edited[2].event.outcome = "failure".into();
        let mut v = ChainVerifier::new(GENESIS_HASH);
        edited.iter().for_each(|e| v.feed(e));
        assert_eq!(v.first_bad_seq, Some(3));

        let mut v = ChainVerifier::new(GENESIS_HASH);
        chain.iter().filter(|e| e.seq != 2).for_each(|e| v.feed(e));
        assert_eq!(v.first_bad_seq, Some(3), "a removed entry breaks the link");

        let mut v = ChainVerifier::new(&chain[1].hash);
        chain[2..].iter().for_each(|e| v.feed(e));
        assert_eq!(v.first_bad_seq, None, "a retention cut verifies from its anchor");
    }

    #[test]
    fn failures_coalesce_per_key_source_and_reason_per_window() {
        const U: &str = "key.use_failed";
        let t0 = event().at;
        let mut c = FailureCoalescer::default();
        for i in 0..100 {
            c.record(
                U,
                "org",
                "usr",
                "kw_1",
                "10.0.0.1",
                "invalid_credentials",
                t0 + chrono::Duration::seconds(i % 30),
            );
        }
        c.record(U, "org", "usr", "kw_1", "10.0.0.2", "invalid_credentials", t0);
        c.record(U, "org", "usr", "kw_1", "10.0.0.1", "key_locked", t0);
        c.record("session.sign_in", "org", "usr", "kw_1", "10.0.0.1", "key_locked", t0);
        assert!(c.drain(t0 + chrono::Duration::seconds(59), false).is_empty());
        let events = c.drain(t0 + chrono::Duration::seconds(60), false);
        assert_eq!(events.len(), 4);
        let flood = events.iter().find(|e| e.details["count"] == 100).unwrap();
        assert_eq!(flood.details["reason"], "invalid_credentials");
        assert_eq!(flood.source_ip.as_deref(), Some("10.0.0.1"));
        assert!(c.drain(t0 + chrono::Duration::seconds(600), true).is_empty());

        // A flood from ever new addresses stays bounded.
        for i in 0..(MAX_OPEN_WINDOWS + 5_000) {
            c.record(
                U,
                "org",
                "usr",
                "kw_1",
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                "invalid_credentials",
                t0,
            );
        }
        let events = c.drain(t0 + chrono::Duration::seconds(60), false);
        assert_eq!(events.len(), MAX_OPEN_WINDOWS + 1);
        let many = events.iter().find(|e| e.source_ip.as_deref() == Some("many")).unwrap();
        assert_eq!(many.details["count"], 5_000);
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

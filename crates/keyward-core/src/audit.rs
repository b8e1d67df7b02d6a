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
    /// An [`AuditAction`]'s name; a string, because entries are stored and hashed as written.
    pub action: String,
    /// A [`TargetType`]'s name.
    pub target_type: String,
    pub target_id: String,
    /// An [`Outcome`]'s name.
    pub outcome: String,
    /// Free-form detail; never a secret or password.
    pub details: serde_json::Value,
}

/// What an audit entry records. Entries store and hash [`AuditAction::as_str`],
/// so a name, once written, must never change (the chain of old entries would break).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditAction {
    OrgCreate,
    OrgUpdate,
    UserCreate,
    UserUpdate,
    UserDelete,
    /// A person changed their console password.
    UserPasswordChange,
    RoleCreate,
    RoleUpdate,
    RoleDelete,
    ScopeCreate,
    KeyCreate,
    KeyImport,
    KeyUpdate,
    KeyRoll,
    KeyEndGrace,
    KeyLock,
    KeyUnlock,
    KeyDelete,
    /// A refused use of a key, coalesced per window.
    KeyUseFailed,
    /// A key locked out after failed authentication.
    KeyThrottled,
    /// Source addresses locked out after failed authentication.
    AuthThrottled,
    /// A console sign-in, whether it succeeded or failed.
    SessionSignIn,
    TokenIssue,
    TokenSigningKeyRotate,
}

impl AuditAction {
    /// Every action, for tests and documentation.
    pub const ALL: [AuditAction; 24] = [
        AuditAction::OrgCreate,
        AuditAction::OrgUpdate,
        AuditAction::UserCreate,
        AuditAction::UserUpdate,
        AuditAction::UserDelete,
        AuditAction::UserPasswordChange,
        AuditAction::RoleCreate,
        AuditAction::RoleUpdate,
        AuditAction::RoleDelete,
        AuditAction::ScopeCreate,
        AuditAction::KeyCreate,
        AuditAction::KeyImport,
        AuditAction::KeyUpdate,
        AuditAction::KeyRoll,
        AuditAction::KeyEndGrace,
        AuditAction::KeyLock,
        AuditAction::KeyUnlock,
        AuditAction::KeyDelete,
        AuditAction::KeyUseFailed,
        AuditAction::KeyThrottled,
        AuditAction::AuthThrottled,
        AuditAction::SessionSignIn,
        AuditAction::TokenIssue,
        AuditAction::TokenSigningKeyRotate,
    ];

    /// The name stored in the log: the one place these strings live.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::OrgCreate => "org.create",
            AuditAction::OrgUpdate => "org.update",
            AuditAction::UserCreate => "user.create",
            AuditAction::UserUpdate => "user.update",
            AuditAction::UserDelete => "user.delete",
            AuditAction::UserPasswordChange => "user.password_change",
            AuditAction::RoleCreate => "role.create",
            AuditAction::RoleUpdate => "role.update",
            AuditAction::RoleDelete => "role.delete",
            AuditAction::ScopeCreate => "scope.create",
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyImport => "key.import",
            AuditAction::KeyUpdate => "key.update",
            AuditAction::KeyRoll => "key.roll",
            AuditAction::KeyEndGrace => "key.end_grace",
            AuditAction::KeyLock => "key.lock",
            AuditAction::KeyUnlock => "key.unlock",
            AuditAction::KeyDelete => "key.delete",
            AuditAction::KeyUseFailed => "key.use_failed",
            AuditAction::KeyThrottled => "key.throttled",
            AuditAction::AuthThrottled => "auth.throttled",
            AuditAction::SessionSignIn => "session.sign_in",
            AuditAction::TokenIssue => "token.issue",
            AuditAction::TokenSigningKeyRotate => "token.signing_key_rotate",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<AuditAction> for String {
    fn from(a: AuditAction) -> Self {
        a.as_str().to_owned()
    }
}

/// The kind of thing an audit entry is about; stored as [`TargetType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetType {
    Org,
    User,
    Role,
    Scope,
    Key,
    SigningKey,
    Address,
}

impl TargetType {
    /// Every target type, for tests and documentation.
    pub const ALL: [TargetType; 7] = [
        TargetType::Org,
        TargetType::User,
        TargetType::Role,
        TargetType::Scope,
        TargetType::Key,
        TargetType::SigningKey,
        TargetType::Address,
    ];

    /// The name stored in the log: the one place these strings live.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Org => "org",
            TargetType::User => "user",
            TargetType::Role => "role",
            TargetType::Scope => "scope",
            TargetType::Key => "key",
            TargetType::SigningKey => "signing_key",
            TargetType::Address => "address",
        }
    }
}

impl std::fmt::Display for TargetType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<TargetType> for String {
    fn from(t: TargetType) -> Self {
        t.as_str().to_owned()
    }
}

/// Whether the recorded attempt succeeded; stored as [`Outcome::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// The name stored in the log: the one place these strings live.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

impl From<Outcome> for String {
    fn from(o: Outcome) -> Self {
        o.as_str().to_owned()
    }
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

/// Refused uses, coalesced per org, action, target and reason over a window.
/// The first refusal of a window is written at once (within the writer's next
/// round, well under 2 s); the rest of the window follows as one more entry
/// with their count when the window closes. Source addresses are aggregated
/// into each entry, so a spray from many addresses cannot flood the log.
#[derive(Debug, Default)]
pub struct FailureCoalescer {
    open: std::collections::HashMap<Slot, FailureWindow>,
}

/// (org, action, target type, target id, reason).
type Slot = (String, AuditAction, TargetType, String, String);

#[derive(Debug, Clone)]
struct FailureWindow {
    actor_id: String,
    actor_key_id: Option<String>,
    opened_at: Timestamp,
    /// Refusals not yet written, and when the first and last of them happened.
    pending: u64,
    first_at: Timestamp,
    last_at: Timestamp,
    /// Up to [`MAX_LISTED_SOURCES`] distinct addresses of the pending refusals.
    sources: Vec<String>,
    /// Pending refusals from addresses past that list.
    unlisted: u64,
    /// Whether an entry of this window was written yet.
    written: bool,
}

/// Open windows; past it, new targets of an org share one window per action
/// and reason (target id `many`).
pub const MAX_OPEN_WINDOWS: usize = 10_000;

/// The length of a coalescing window.
pub const FAILURE_WINDOW_SECS: i64 = 60;

/// Distinct source addresses named in one entry; the rest are counted.
pub const MAX_LISTED_SOURCES: usize = 10;

/// One refused attempt, as the coalescer counts it.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    pub action: AuditAction,
    pub org_id: &'a str,
    pub actor_id: &'a str,
    pub actor_key_id: Option<&'a str>,
    pub target_type: TargetType,
    pub target_id: &'a str,
    pub source: &'a str,
    pub reason: &'a str,
}

impl FailureCoalescer {
    /// Counts one refused use of `key_id` (owned by `owner_id`) from `source` for `reason`;
    /// returns whether it opened a window, whose first entry is then due at once.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        action: AuditAction,
        org_id: &str,
        owner_id: &str,
        key_id: &str,
        source: &str,
        reason: &str,
        at: Timestamp,
    ) -> bool {
        self.count(
            &Refused {
                action,
                org_id,
                actor_id: owner_id,
                actor_key_id: Some(key_id),
                target_type: TargetType::Key,
                target_id: key_id,
                source,
                reason,
            },
            at,
        )
    }

    /// Counts one refused attempt; returns whether it opened a window.
    pub fn count(&mut self, r: &Refused<'_>, at: Timestamp) -> bool {
        let mut slot = (r.org_id.to_owned(), r.action, r.target_type, r.target_id.to_owned(), r.reason.to_owned());
        let mut actor_key_id = r.actor_key_id;
        if self.open.len() >= MAX_OPEN_WINDOWS && !self.open.contains_key(&slot) {
            slot.3 = "many".to_owned();
            actor_key_id = None;
        }
        let mut opened = false;
        let w = self.open.entry(slot).or_insert_with(|| {
            opened = true;
            FailureWindow {
                actor_id: r.actor_id.to_owned(),
                actor_key_id: actor_key_id.map(str::to_owned),
                opened_at: at,
                pending: 0,
                first_at: at,
                last_at: at,
                sources: Vec::new(),
                unlisted: 0,
                written: false,
            }
        });
        if w.pending == 0 {
            w.first_at = at;
        }
        w.pending += 1;
        w.last_at = at;
        let listed = w.sources.iter().any(|s| s == r.source);
        if !listed && w.sources.len() < MAX_LISTED_SOURCES {
            w.sources.push(r.source.to_owned());
        } else if !listed {
            w.unlisted += 1;
        }
        opened
    }

    /// The entries due at `now`: each window's first refusal, and the rest of the
    /// windows that closed (of every window with `flush_all`). Closed windows are dropped.
    pub fn drain(&mut self, now: Timestamp, flush_all: bool) -> Vec<AuditEvent> {
        let mut events = Vec::new();
        self.open.retain(|(org_id, action, target_type, target_id, reason), w| {
            let closed = flush_all || (now - w.opened_at).num_seconds() >= FAILURE_WINDOW_SECS;
            if w.pending > 0 && (closed || !w.written) {
                let single = w.sources.len() == 1 && w.unlisted == 0;
                events.push(AuditEvent {
                    at: w.last_at,
                    org_id: org_id.clone(),
                    actor_id: w.actor_id.clone(),
                    actor_key_id: w.actor_key_id.clone(),
                    source_ip: single.then(|| w.sources[0].clone()),
                    action: action.as_str().to_owned(),
                    target_type: target_type.as_str().to_owned(),
                    target_id: target_id.clone(),
                    outcome: Outcome::Failure.into(),
                    details: serde_json::json!({
                        "reason": reason,
                        "count": w.pending,
                        "first_at": rfc3339(&w.first_at),
                        "last_at": rfc3339(&w.last_at),
                        "sources": w.sources,
                        "unlisted_sources_count": w.unlisted,
                    }),
                });
                w.pending = 0;
                w.sources.clear();
                w.unlisted = 0;
                w.written = true;
            }
            !closed
        });
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
            action: AuditAction::KeyCreate.into(),
            target_type: TargetType::Key.into(),
            target_id: "kw_2".into(),
            outcome: Outcome::Success.into(),
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
        edited[2].event.outcome = Outcome::Failure.into();
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
    fn the_first_refusal_is_due_at_once_and_the_rest_when_the_window_closes() {
        const U: AuditAction = AuditAction::KeyUseFailed;
        let t0 = event().at;
        let secs = chrono::Duration::seconds;
        let mut c = FailureCoalescer::default();
        assert!(c.record(U, "org", "usr", "kw_1", "10.0.0.1", "invalid_credentials", t0));
        let first = c.drain(t0, false);
        assert_eq!(first.len(), 1, "due at once");
        assert_eq!((first[0].details["count"].as_u64(), first[0].source_ip.as_deref()), (Some(1), Some("10.0.0.1")));
        for i in 1..100 {
            assert!(!c.record(U, "org", "usr", "kw_1", "10.0.0.1", "invalid_credentials", t0 + secs(i % 30)));
        }
        assert!(c.record(U, "org", "usr", "kw_1", "10.0.0.1", "key_locked", t0));
        assert!(c.record(AuditAction::SessionSignIn, "org", "usr", "kw_1", "10.0.0.1", "key_locked", t0));
        let due = c.drain(t0 + secs(59), false);
        assert_eq!(due.len(), 2, "only the new windows' first entries: {due:?}");
        assert!(c.drain(t0 + secs(59), false).is_empty());
        let rest = c.drain(t0 + secs(60), false);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].details["count"], 99);
        assert_eq!(rest[0].details["reason"], "invalid_credentials");
        assert!(c.drain(t0 + secs(600), true).is_empty());
        // A window with nothing after its first entry closes without a second one.
        assert!(c.record(U, "org", "usr", "kw_2", "10.0.0.1", "key_expired", t0 + secs(600)));
        assert_eq!(c.drain(t0 + secs(600), false).len(), 1);
        assert!(c.drain(t0 + secs(700), false).is_empty());
    }

    #[test]
    fn a_spray_of_addresses_becomes_one_entry_per_key_and_window() {
        const U: AuditAction = AuditAction::KeyUseFailed;
        let t0 = event().at;
        let mut c = FailureCoalescer::default();
        let mut events = Vec::new();
        for i in 0..20_000u32 {
            let [_, a, b, d] = i.to_be_bytes();
            c.record(U, "org", "usr", "kw_1", &format!("10.{a}.{b}.{d}"), "invalid_credentials", t0);
            if i == 0 {
                events.extend(c.drain(t0, false));
            }
        }
        events.extend(c.drain(t0 + chrono::Duration::seconds(60), false));
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[1].details["count"], 19_999);
        assert_eq!(events[1].source_ip, None, "many sources: none singled out");
        assert_eq!(events[1].details["sources"].as_array().unwrap().len(), MAX_LISTED_SOURCES);
        assert_eq!(events[1].details["unlisted_sources_count"], 19_999 - MAX_LISTED_SOURCES as u64);

        // Ever new keys stay bounded too: past the cap they share one window.
        for i in 0..(MAX_OPEN_WINDOWS + 5_000) {
            c.record(U, "org", "usr", &format!("kw_{i}"), "10.0.0.1", "invalid_credentials", t0);
        }
        let events = c.drain(t0, false);
        assert_eq!(events.len(), MAX_OPEN_WINDOWS + 1);
        let many = events.iter().find(|e| e.target_id == "many").unwrap();
        assert_eq!(many.details["count"], 5_000, "past the cap, keys share one window");
    }

    /// Stored entries hash these names: changing one would break every chain that holds it.
    #[test]
    fn action_and_target_names_are_pinned() {
        let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            actions,
            [
                "org.create",
                "org.update",
                "user.create",
                "user.update",
                "user.delete",
                "user.password_change",
                "role.create",
                "role.update",
                "role.delete",
                "scope.create",
                "key.create",
                "key.import",
                "key.update",
                "key.roll",
                "key.end_grace",
                "key.lock",
                "key.unlock",
                "key.delete",
                "key.use_failed",
                "key.throttled",
                "auth.throttled",
                "session.sign_in",
                "token.issue",
                "token.signing_key_rotate",
            ]
        );
        assert_eq!((Outcome::Success.as_str(), Outcome::Failure.as_str()), ("success", "failure"));
        let targets: Vec<&str> = TargetType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(targets, ["org", "user", "role", "scope", "key", "signing_key", "address"]);
    }

    /// Entries already written must verify unchanged: the encoding of an event built
    /// from the enums is the one written before they existed.
    #[test]
    fn the_hash_of_a_known_entry_is_pinned() {
        // Computed independently over the literal strings `"key.create"` and `"key"`.
        assert_eq!(
            chain_hash(1, &event(), GENESIS_HASH),
            "87fa2c058542481a4367cdb7362189db2e337e46ee5e4a85d7e7b4289fbccca5"
        );
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

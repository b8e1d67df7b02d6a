//! Shared application state, handed to every handler.

use crate::config::Config;
use crate::index::Refusal;
use crate::index::{KeyIndex, UsageRecorder};
use crate::metrics::Metrics;
use crate::nonce::NonceCache;
use crate::sessions::SessionStore;
use crate::tokens::TokenKeys;
use keyward_core::audit::{AuditEvent, FailureCoalescer};
use keyward_core::clock::{Clock, Timestamp};
use keyward_core::crypto::Keyring;
use keyward_core::policy::Principal;
use keyward_core::store::Store;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub keyring: Arc<Keyring>,
    pub index: Arc<KeyIndex>,
    pub usage: Arc<UsageRecorder>,
    pub clock: Arc<dyn Clock>,
    /// Refused key uses waiting to be written, coalesced per key, source and reason.
    pub failures: Arc<Mutex<FailureCoalescer>>,
    /// Hawk nonces seen within the timestamp window.
    pub nonces: Arc<NonceCache>,
    /// The access-token signing keys.
    pub tokens: Arc<TokenKeys>,
    /// The service's public URL: the `iss` and `aud` of its tokens.
    pub issuer: Arc<str>,
    /// Browser sessions of the web console.
    pub sessions: Arc<SessionStore>,
    /// The hosts and port Hawk requests must be signed for; `None` when the
    /// server cannot know them (listening on every address without a public URL).
    pub hawk_authority: Option<Arc<(Vec<String>, u16)>>,
    pub metrics: Arc<Metrics>,
    /// Serializes read-modify-writes of keys in this instance, so they rarely
    /// meet the store's version check (which still guards other instances).
    pub key_writes: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Counts a refused use of a known key for the audit log.
    pub fn record_refusal(&self, refusal: &Refusal, ip: IpAddr, now: Timestamp) {
        self.record_failure("key.use_failed", refusal, refusal.failure.code(), ip, now);
    }

    /// Counts a refused action on a known key (coalesced per key, source and reason).
    pub fn record_failure(&self, action: &str, refusal: &Refusal, reason: &str, ip: IpAddr, now: Timestamp) {
        self.metrics.count_refusal(refusal.failure.code());
        if let (Some((key, org, owner)), Ok(mut f)) = (&refusal.key, self.failures.lock()) {
            f.record(action, org.as_str(), owner.as_str(), key.as_str(), &ip.to_string(), reason, now);
        }
    }
}

/// Builds the audit event for an action a principal took.
pub fn audit_event(
    who: &Principal,
    ip: IpAddr,
    at: Timestamp,
    org: &str,
    action: &str,
    target: (&str, &str),
    details: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        at,
        org_id: org.to_owned(),
        actor_id: who.user_id.to_string(),
        actor_key_id: who.key_id.as_ref().map(ToString::to_string),
        source_ip: Some(ip.to_string()),
        action: action.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        outcome: "success".to_owned(),
        details,
    }
}

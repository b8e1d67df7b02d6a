//! Shared application state, handed to every handler.

use crate::auth::ThrottleGate;
use crate::config::Config;
use crate::index::KeyIndex;
use crate::metrics::Metrics;
use crate::nonce::NonceCache;
use crate::sessions::SessionStore;
use crate::tokens::TokenKeys;
use crate::usage::UsageRecorder;
use keyward_core::audit::{AuditAction, AuditEvent, FailureCoalescer, Outcome, Refused, TargetType};
use keyward_core::authn::{FailureOutcome, Refusal, address_bucket};
use keyward_core::clock::{Clock, Timestamp};
use keyward_core::crypto::Keyring;
use keyward_core::key::AuthFailure;
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
    /// Refused key uses waiting to be written, coalesced per key and reason.
    pub failures: Arc<Mutex<FailureCoalescer>>,
    /// Wakes the audit writer when a refusal opens a window, so its first entry is written at once.
    pub failures_due: Arc<tokio::sync::Notify>,
    /// Failed authentication per key id and per source address.
    pub throttle: Arc<ThrottleGate>,
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
        self.record_failure(AuditAction::KeyUseFailed, refusal, refusal.failure.code(), ip, now);
    }

    /// Counts a refused action on a known key (coalesced per key and reason).
    pub fn record_failure(&self, action: AuditAction, refusal: &Refusal, reason: &str, ip: IpAddr, now: Timestamp) {
        self.metrics.count_refusal(refusal.failure.code());
        if let (Some((key, org, owner)), Ok(mut f)) = (&refusal.key, self.failures.lock())
            && f.record(action, org.as_str(), owner.as_str(), key.as_str(), &ip.to_string(), reason, now)
        {
            self.failures_due.notify_one();
        }
    }

    /// Refuses an attempt from an address that is locked out, before judging it.
    pub fn throttle_address(&self, source: Option<IpAddr>, now: Timestamp) -> Result<(), Refusal> {
        match self.throttle.retry_after(None, source, now.timestamp()) {
            None => Ok(()),
            Some(secs) => {
                self.metrics.count_refusal(AuthFailure::TooManyAttempts.code());
                Err(Refusal::throttled(None, secs))
            }
        }
    }

    /// Applies throttling to a judged attempt and audits its refusal under `action`:
    /// a key or `source` that is locked out is refused whatever the verdict; a
    /// refusal that may be a guess is counted against the key (when `per_key`)
    /// and `source`. `ip` is the address written to the audit log.
    pub fn judged(
        &self,
        verdict: Result<Principal, Refusal>,
        action: AuditAction,
        per_key: bool,
        source: Option<IpAddr>,
        ip: IpAddr,
        now: Timestamp,
    ) -> Result<Principal, Refusal> {
        let secs = now.timestamp();
        let named = match &verdict {
            Ok(p) => p.key_id.as_ref(),
            Err(r) => r.key.as_ref().map(|k| &k.0),
        };
        // The fast path of a good credential: one atomic read while nothing is locked out.
        if let Some(retry) = self.throttle.retry_after(named.filter(|_| per_key), source, secs) {
            let key = match &verdict {
                Ok(p) => p.key_id.clone().map(|k| (k, p.org_id.clone(), p.user_id.clone())),
                Err(r) => r.key.clone(),
            };
            let refusal = Refusal::throttled(key, retry);
            self.record_failure(action, &refusal, refusal.failure.code(), ip, now);
            return Err(refusal);
        }
        let refusal = match verdict {
            Ok(principal) => return Ok(principal),
            Err(refusal) => refusal,
        };
        self.record_failure(action, &refusal, refusal.failure.code(), ip, now);
        if refusal.is_guess() {
            let named = refusal.key.as_ref().map(|k| &k.0).filter(|_| per_key);
            let outcome = self.throttle.fail(named, source, secs);
            self.audit_lockouts(outcome, refusal.key.as_ref(), source, now);
        }
        Err(refusal)
    }

    /// Audits lockouts a failure started: per key in the key's org; per address in the
    /// operator's org, all addresses of a window in one entry.
    fn audit_lockouts(
        &self,
        outcome: FailureOutcome,
        key: Option<&(keyward_core::ids::KeyId, keyward_core::ids::OrgId, keyward_core::ids::UserId)>,
        source: Option<IpAddr>,
        now: Timestamp,
    ) {
        let source = source.map(|ip| address_bucket(ip).to_string()).unwrap_or_default();
        let reason = AuthFailure::TooManyAttempts.code();
        let mut opened = false;
        let Ok(mut f) = self.failures.lock() else { return };
        if let (Some(lockout), Some((key, org, owner))) = (outcome.key_lockout, key) {
            tracing::warn!(key = %key, nth = lockout.nth, "key locked out after failed authentication");
            opened |=
                f.record(AuditAction::KeyThrottled, org.as_str(), owner.as_str(), key.as_str(), &source, reason, now);
        }
        if let Some(lockout) = outcome.address_lockout
            && let Some(org) = self.index.operator_org()
        {
            tracing::warn!(address = %source, nth = lockout.nth, "address locked out after failed authentication");
            opened |= f.count(
                &Refused {
                    action: AuditAction::AuthThrottled,
                    org_id: org.as_str(),
                    actor_id: "anonymous",
                    actor_key_id: None,
                    target_type: TargetType::Address,
                    target_id: "*",
                    source: &source,
                    reason,
                },
                now,
            );
        }
        if opened {
            self.failures_due.notify_one();
        }
    }
}

/// Builds the audit event for an action a principal took.
pub fn audit_event(
    who: &Principal,
    ip: IpAddr,
    at: Timestamp,
    org: &str,
    action: AuditAction,
    target: (TargetType, &str),
    details: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        at,
        org_id: org.to_owned(),
        actor_id: who.user_id.to_string(),
        actor_key_id: who.key_id.as_ref().map(ToString::to_string),
        source_ip: Some(ip.to_string()),
        action: action.into(),
        target_type: target.0.into(),
        target_id: target.1.to_owned(),
        outcome: Outcome::Success.into(),
        details,
    }
}

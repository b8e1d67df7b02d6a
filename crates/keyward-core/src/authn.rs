//! Authentication as pure functions: the five credential judges (secret, Hawk,
//! bewit, access token, browser session) over the indexed key a credential
//! names, its inputs, `now` and the source address; and the throttle that
//! slows down guessing. The server's index finds the key and calls these.

use crate::clock::Timestamp;
use crate::crypto::{Keyring, SecretDigest};
use crate::hawk::{self, AuthOptions, Bewit, HawkError, HawkHeader, PayloadCheck, RequestInfo};
use crate::ids::{KeyId, OrgId, UserId};
use crate::key::{AuthFailure, KeyState, check_key_state};
use crate::model::KeyRecord;
use crate::permission::{Permission, PermissionSet};
use crate::policy::{AuthMethod, Principal};
use crate::secret::{Secret, SecretShape, shape};
use crate::token::AccessClaims;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

/// One key as the credential check needs it, computed when the index loads it.
#[derive(Debug)]
pub struct IndexedKey {
    pub record: KeyRecord,
    pub permissions: PermissionSet,
    pub cross_org: bool,
    pub state: KeyState,
    /// The org lets the secret itself be the credential (`allow_direct_secret`).
    pub direct_secret_allowed: bool,
    /// The org refuses Hawk requests without a payload hash.
    pub hawk_require_payload_hash: bool,
    /// The owner may hold a browser session: a human who is not a Service Requestor.
    pub owner_may_sign_in: bool,
    /// The owner's disable epoch: tokens bought under an earlier one are dead.
    pub owner_token_epoch: u32,
}

/// The longest a bewit may run ahead of now: seven days.
pub const MAX_BEWIT_TTL_SECS: i64 = 7 * 86_400;

/// A refused credential, with the key it named when there was one (for the audit log).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub failure: AuthFailure,
    /// (key, org, owner) of the key the credential named or matched.
    pub key: Option<(KeyId, OrgId, UserId)>,
    /// A Hawk `WWW-Authenticate` stale-timestamp challenge (only after a valid MAC).
    pub challenge: Option<String>,
    /// For `too_many_attempts`: whole seconds until another attempt is judged.
    pub retry_after_s: Option<u64>,
}

impl Refusal {
    #[must_use]
    pub fn anonymous(failure: AuthFailure) -> Self {
        Self { failure, key: None, challenge: None, retry_after_s: None }
    }

    #[must_use]
    pub fn about(key: &IndexedKey, failure: AuthFailure) -> Self {
        Self {
            failure,
            key: Some((key.record.id.clone(), key.record.org_id.clone(), key.record.owner_id.clone())),
            challenge: None,
            retry_after_s: None,
        }
    }

    /// A throttled attempt: judged not at all, answered after `retry_after_s`.
    #[must_use]
    pub fn throttled(key: Option<(KeyId, OrgId, UserId)>, retry_after_s: u64) -> Self {
        Self { failure: AuthFailure::TooManyAttempts, key, challenge: None, retry_after_s: Some(retry_after_s) }
    }

    /// Whether this refusal may be a guess at a secret, and so counts toward throttling:
    /// a wrong or unknown credential, not a stale clock, a locked key or a throttled attempt.
    #[must_use]
    pub fn is_guess(&self) -> bool {
        self.failure == AuthFailure::InvalidCredentials && self.challenge.is_none()
    }
}

/// A Hawk request as the MAC covers it.
pub struct HawkRequest<'a> {
    pub header: &'a HawkHeader,
    pub info: RequestInfo<'a>,
}

fn principal_of(key: &IndexedKey, auth_method: AuthMethod) -> Principal {
    Principal {
        user_id: key.record.owner_id.clone(),
        org_id: key.record.org_id.clone(),
        key_id: Some(key.record.id.clone()),
        permissions: key.permissions.clone(),
        cross_org: key.cross_org,
        auth_method,
    }
}

/// The current secret, or the previous one within its grace period (constant-time compares).
fn secret_matches(key: &KeyRecord, digest: &SecretDigest, now: Timestamp) -> bool {
    let current = key.secret.digest.ct_eq(digest);
    let previous = key.accepts_previous(now).is_some_and(|p| p.sealed.digest.ct_eq(digest));
    current | previous
}

/// Whether the secret tagged `version` (which bought a token or a session) is
/// still the key's current one, or its previous one within the grace period.
#[must_use]
pub fn secret_still_accepted(key: &KeyRecord, version: &str, now: Timestamp) -> bool {
    key.secret.digest.version() == version
        || key.accepts_previous(now).is_some_and(|p| p.sealed.digest.version() == version)
}

/// The secrets a key accepts now, opened: the current one, and the previous one in its grace period.
#[must_use]
pub fn live_secrets(keyring: &Keyring, key: &KeyRecord, now: Timestamp) -> Vec<Secret> {
    let mut sealed = vec![&key.secret];
    if let Some(prev) = key.accepts_previous(now) {
        sealed.push(&prev.sealed);
    }
    sealed.into_iter().filter_map(|s| keyring.open(key.id.as_str(), &s.ciphertext).ok()).collect()
}

/// Judges a key's secret (`Basic id:secret`, `Bearer <secret>`, sign-in, token purchase):
/// `invalid_credentials`, `key_locked`, `key_expired`, `ip_not_allowed`, in that order.
/// `key` is the key the id names, or the key holding `digest`; `direct`: the secret is
/// the credential itself (refused where the org forbids it), not buying a token or a session.
pub fn judge_secret(
    key: Option<&IndexedKey>,
    presented: &Secret,
    digest: &SecretDigest,
    now: Timestamp,
    source: IpAddr,
    direct: bool,
) -> Result<Principal, Refusal> {
    let key = key.ok_or(Refusal::anonymous(AuthFailure::InvalidCredentials))?;
    let refuse = |failure| Refusal::about(key, failure);
    if shape(presented.expose()) == SecretShape::BadChecksum || !secret_matches(&key.record, digest, now) {
        return Err(refuse(AuthFailure::InvalidCredentials));
    }
    check_key_state(&key.state, now, source).map_err(refuse)?;
    if direct && !key.direct_secret_allowed {
        return Err(refuse(AuthFailure::InvalidCredentials));
    }
    Ok(principal_of(key, AuthMethod::Secret))
}

/// What the Hawk judge needs beyond the request: the replay cache's verdict on a
/// nonce, and the first second the cache can vouch for.
pub trait ReplayGuard {
    /// Records `(id, nonce)` of a request signed at `ts` (already within the skew of
    /// `now`) and returns whether it is new.
    fn first_use(&self, id: &str, nonce: &str, ts: i64, now: i64) -> bool;
    /// Requests signed at or before this second may have been seen by an earlier
    /// process whose memory is gone: they are answered with a stale-timestamp challenge.
    fn remembers_after(&self) -> i64;
}

/// Judges a Hawk request: MAC (and payload hash, when sent), then timestamp and
/// nonce, then the key's state. Returns the secret that matched, for `Server-Authorization`.
pub fn judge_hawk(
    key: Option<&IndexedKey>,
    keyring: &Keyring,
    req: &HawkRequest<'_>,
    now: Timestamp,
    source: IpAddr,
    replay: &dyn ReplayGuard,
) -> Result<(Principal, Secret), Refusal> {
    let Some(key) = key else {
        // Spend the same work on unknown ids, so timing does not tell which ids exist.
        let _ = hawk::authenticate_request(
            req.header,
            b"keyward-unknown-id",
            &req.info,
            now.timestamp(),
            &AuthOptions::default(),
        );
        return Err(Refusal::anonymous(AuthFailure::InvalidCredentials));
    };
    // Delegation (Oz app/dlg) is not part of Keyward; such requests are refused outright.
    if req.header.app.is_some() {
        return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
    }
    let options = AuthOptions { require_payload_hash: key.hawk_require_payload_hash, ..AuthOptions::default() };
    let mut outcome = Err(HawkError::BadMac);
    let mut matched = None;
    for secret in live_secrets(keyring, &key.record, now) {
        outcome =
            hawk::authenticate_request(req.header, secret.expose().as_bytes(), &req.info, now.timestamp(), &options);
        if !matches!(outcome, Err(HawkError::BadMac)) {
            matched = Some(secret);
            break;
        }
    }
    let authenticated = match outcome {
        Ok(a) => a,
        Err(e) => {
            let mut refusal = Refusal::about(key, AuthFailure::InvalidCredentials);
            refusal.challenge = e.challenge();
            return Err(refusal);
        }
    };
    let secret = matched.ok_or_else(|| Refusal::about(key, AuthFailure::InvalidCredentials))?;
    if authenticated.payload == PayloadCheck::Deferred {
        return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
    }
    // A request signed before this process began may have been accepted by the one before
    // it, whose nonces are forgotten: make the client sign anew, as for a skewed clock.
    if authenticated.ts <= replay.remembers_after() {
        let tsm = hawk::timestamp_mac(authenticated.algorithm, secret.expose().as_bytes(), now.timestamp());
        let mut refusal = Refusal::about(key, AuthFailure::InvalidCredentials);
        refusal.challenge = Some(hawk::stale_timestamp_challenge(now.timestamp(), &tsm));
        return Err(refusal);
    }
    if !replay.first_use(&authenticated.id, &authenticated.nonce, authenticated.ts, now.timestamp()) {
        return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
    }
    check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
    Ok((principal_of(key, AuthMethod::Hawk), secret))
}

/// Where a bewit was presented.
pub struct BewitRequest<'a> {
    pub bewit: &'a Bewit,
    /// The resource without the bewit.
    pub resource: &'a str,
    pub host: &'a str,
    pub port: u16,
}

/// Judges a bewit (a single-URI Hawk authorization in the query string, GET and HEAD only).
/// Bewits carry no nonce: they are reusable until `exp` by design.
pub fn judge_bewit(
    key: Option<&IndexedKey>,
    keyring: &Keyring,
    req: &BewitRequest<'_>,
    now: Timestamp,
    source: IpAddr,
) -> Result<Principal, Refusal> {
    let BewitRequest { bewit, resource, host, port } = *req;
    // A bewit is a bearer URL that cannot be revoked on its own: cap how far ahead it may run.
    if bewit.exp > now.timestamp() + MAX_BEWIT_TTL_SECS {
        return Err(Refusal::anonymous(AuthFailure::InvalidCredentials));
    }
    let Some(key) = key else {
        // Spend the same work on unknown ids, so timing does not tell which ids exist.
        let _ = hawk::authenticate_bewit(bewit, b"keyward-unknown-id", resource, host, port, now.timestamp());
        return Err(Refusal::anonymous(AuthFailure::InvalidCredentials));
    };
    let ok = live_secrets(keyring, &key.record, now)
        .iter()
        .any(|s| hawk::authenticate_bewit(bewit, s.expose().as_bytes(), resource, host, port, now.timestamp()).is_ok());
    if !ok {
        return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
    }
    check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
    Ok(principal_of(key, AuthMethod::Hawk))
}

/// Judges an access token whose signature and expiry were verified: the key
/// that bought it must still exist in the token's org with the secret that
/// bought it, and be usable now; the token holds at most what the key holds now.
pub fn judge_token(
    key: Option<&IndexedKey>,
    claims: &AccessClaims,
    now: Timestamp,
    source: IpAddr,
) -> Result<Principal, Refusal> {
    let key = key
        .filter(|k| k.record.org_id.as_str() == claims.org_id)
        .ok_or(Refusal::anonymous(AuthFailure::InvalidCredentials))?;
    if !secret_still_accepted(&key.record, &claims.sv, now) {
        return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
    }
    check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
    // A lock of the key or a disable of its owner after the purchase ends the token for good:
    // while locked it answers key_locked (above), once unlocked it is simply dead.
    if !claims.epochs_current(key.record.token_epoch, key.owner_token_epoch) {
        return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
    }
    let mut scoped = PermissionSet::default();
    for p in claims.scope.split_whitespace().filter_map(|s| Permission::parse(s, false).ok()) {
        scoped.grant(&p.scope, &p.resource, p.access);
    }
    let mut principal = principal_of(key, AuthMethod::Token);
    principal.permissions = scoped.intersect(&key.permissions);
    // Acting across orgs (and granting freely) is for the full account admin only, never a narrowed token.
    principal.cross_org = key.cross_org && principal.permissions == key.permissions;
    Ok(principal)
}

/// Judges the key behind a browser session: it must still be usable now, with the
/// secret that signed in, and its owner must still be someone who may sign in
/// (not disabled — that locks the key — and not since made a Service Requestor).
pub fn judge_session(
    key: Option<&IndexedKey>,
    secret_version: &str,
    now: Timestamp,
    source: IpAddr,
) -> Result<Principal, Refusal> {
    let key = key.ok_or(Refusal::anonymous(AuthFailure::InvalidCredentials))?;
    if !secret_still_accepted(&key.record, secret_version, now) || !key.owner_may_sign_in {
        return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
    }
    check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
    Ok(principal_of(key, AuthMethod::Session))
}

/// A verify answer's verdict; the server names it (`valid`, `insufficient_permissions`
/// or the refusal's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyCode {
    Valid,
    /// A good credential that lacks a required permission.
    InsufficientPermissions,
    Refused(AuthFailure),
}

/// Judges the person behind a password session of the web console: still there, active,
/// and not (since) a Service Requestor. They act with what their roles grant.
pub fn judge_person(
    dir: &crate::policy::Directory,
    user: Option<&crate::model::User>,
) -> Result<Principal, AuthFailure> {
    let user = user.ok_or(AuthFailure::InvalidCredentials)?;
    if user.status != crate::model::UserStatus::Active || dir.is_service_requestor(user) {
        return Err(AuthFailure::InvalidCredentials);
    }
    Ok(Principal {
        user_id: user.id.clone(),
        org_id: user.org_id.clone(),
        key_id: None,
        permissions: dir.user_permissions(user),
        cross_org: dir.user_is_cross_org(user),
        auth_method: AuthMethod::Session,
    })
}

/// What a verify answer tells a gateway about a credential's verdict.
#[derive(Debug, Clone)]
pub struct VerifyVerdict {
    pub valid: bool,
    pub code: VerifyCode,
    /// The principal, shown in full only when the credential is good and in the caller's reach.
    pub principal: Option<Principal>,
    /// (key, org, owner) of a refused key, shown only when it is in the caller's reach and the
    /// refusal is not `invalid_credentials` (which never says whose secret was wrong).
    pub key: Option<(KeyId, OrgId, UserId)>,
    /// For `too_many_attempts`: when to try again.
    pub retry_after_s: Option<u64>,
}

/// Verify's disclosure rule: a gateway learns a refusal's reason and the key only for keys
/// of orgs it sees (`sees_org`); anything else looks like `invalid_credentials`. A good
/// credential is valid when it holds every `required` permission.
pub fn verify_verdict(
    verdict: Result<Principal, Refusal>,
    sees_org: impl Fn(&OrgId) -> bool,
    required: &[Permission],
) -> VerifyVerdict {
    let refused = |failure, key, retry_after_s| VerifyVerdict {
        valid: false,
        code: VerifyCode::Refused(failure),
        principal: None,
        key,
        retry_after_s,
    };
    match verdict {
        Ok(p) if sees_org(&p.org_id) => {
            let valid = required.iter().all(|r| p.permissions.allows_permission(r));
            VerifyVerdict {
                valid,
                code: if valid { VerifyCode::Valid } else { VerifyCode::InsufficientPermissions },
                principal: Some(p),
                key: None,
                retry_after_s: None,
            }
        }
        Ok(_) => refused(AuthFailure::InvalidCredentials, None, None),
        Err(r) => {
            let in_reach = r.key.as_ref().is_some_and(|(_, org, _)| sees_org(org));
            // An address locked out names no key, so saying so reveals nothing about any key.
            let told = in_reach || (r.key.is_none() && r.failure == AuthFailure::TooManyAttempts);
            if !told {
                return refused(AuthFailure::InvalidCredentials, None, None);
            }
            let key = r.key.filter(|_| r.failure != AuthFailure::InvalidCredentials);
            refused(r.failure, key, r.retry_after_s)
        }
    }
}

// ------------------------------------------------------------------ throttling

/// How one dimension (a key id, a source address) is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures within `window_secs` that start the first lockout.
    pub limit: u32,
    pub window_secs: i64,
    /// The first lockout; each failure after a lockout starts another, twice as long.
    pub first_lockout_secs: i64,
    pub max_lockout_secs: i64,
    /// After this long without a failure, everything is forgotten.
    pub forget_after_secs: i64,
}

/// Per key id: 100 wrong secrets in 5 minutes, then lockouts of 10 s, 20 s, … up to 15 min
/// for each further failure, until 15 minutes pass without one. High enough that a
/// misconfigured client does not lock its key out at once; low enough that guessing stops.
pub const KEY_THROTTLE: ThrottlePolicy = ThrottlePolicy {
    limit: 100,
    window_secs: 300,
    first_lockout_secs: 10,
    max_lockout_secs: 900,
    forget_after_secs: 900,
};

/// Per source address (an IPv6 /64 counts as one): the same numbers.
pub const ADDRESS_THROTTLE: ThrottlePolicy = KEY_THROTTLE;

/// Entries kept per dimension; past it the oldest is forgotten (a spray of
/// addresses cannot grow memory without bound).
pub const MAX_THROTTLE_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    window_start: i64,
    failures: u32,
    lockouts: u32,
    locked_until: i64,
    last_failure: i64,
}

/// A lockout that a failure has just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Unix second when attempts are judged again.
    pub until: i64,
    /// How many lockouts in a row (1 for the first).
    pub nth: u32,
}

/// Failure counts for one dimension, bounded: entries are forgotten oldest first.
#[derive(Debug)]
pub struct Throttle<K> {
    policy: ThrottlePolicy,
    cap: usize,
    entries: HashMap<K, Strikes>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    #[must_use]
    pub fn new(policy: ThrottlePolicy, cap: usize) -> Self {
        Self { policy, cap: cap.max(1), entries: HashMap::new(), order: VecDeque::new() }
    }

    /// Seconds until `k` may try again, when it is locked out at `now`.
    #[must_use]
    pub fn retry_after(&self, k: &K, now: i64) -> Option<u64> {
        let s = self.entries.get(k)?;
        (s.locked_until > now).then(|| u64::try_from(s.locked_until - now).unwrap_or(1))
    }

    /// Counts a failure of `k` at `now`; returns the lockout it starts, if any.
    pub fn fail(&mut self, k: &K, now: i64) -> Option<Lockout> {
        let policy = self.policy;
        if !self.entries.contains_key(k) {
            self.make_room(now);
            self.order.push_back(k.clone());
        }
        let s = self.entries.entry(k.clone()).or_insert(Strikes {
            window_start: now,
            failures: 0,
            lockouts: 0,
            locked_until: 0,
            last_failure: now,
        });
        if now - s.last_failure >= policy.forget_after_secs {
            *s = Strikes { window_start: now, failures: 0, lockouts: 0, locked_until: 0, last_failure: now };
        }
        if now - s.window_start >= policy.window_secs {
            s.window_start = now;
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        s.last_failure = now;
        // Once locked out, every further failure (until forgotten) locks again, for longer.
        if s.failures < policy.limit && s.lockouts == 0 {
            return None;
        }
        s.lockouts = s.lockouts.saturating_add(1);
        let doubled = policy.first_lockout_secs.saturating_mul(1_i64 << (s.lockouts - 1).min(30));
        s.locked_until = now + doubled.min(policy.max_lockout_secs);
        Some(Lockout { until: s.locked_until, nth: s.lockouts })
    }

    /// Forgets the oldest entries while full, and stale ones at the front.
    fn make_room(&mut self, now: i64) {
        while let Some(front) = self.order.front() {
            let stale = self
                .entries
                .get(front)
                .is_none_or(|s| now - s.last_failure >= self.policy.forget_after_secs && s.locked_until <= now);
            if !stale && self.entries.len() < self.cap {
                break;
            }
            if let Some(k) = self.order.pop_front() {
                self.entries.remove(&k);
            }
        }
    }

    /// How many entries are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The bucket a source address is counted in: an IPv4 address (also when mapped
/// into IPv6), or an IPv6 /64, which one client usually holds whole.
#[must_use]
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// What a failure did to the throttle: the lockouts it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    pub key_lockout: Option<Lockout>,
    pub address_lockout: Option<Lockout>,
}

/// Failed authentication per key id and per source address.
#[derive(Debug)]
pub struct AuthThrottle {
    keys: Throttle<KeyId>,
    addresses: Throttle<IpAddr>,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        Self::new(KEY_THROTTLE, ADDRESS_THROTTLE, MAX_THROTTLE_ENTRIES)
    }
}

impl AuthThrottle {
    #[must_use]
    pub fn new(keys: ThrottlePolicy, addresses: ThrottlePolicy, cap: usize) -> Self {
        Self { keys: Throttle::new(keys, cap), addresses: Throttle::new(addresses, cap) }
    }

    /// Seconds until an attempt naming `key` (if known) from `source` (if known) is
    /// judged again; `None` when neither is locked out.
    #[must_use]
    pub fn retry_after(&self, key: Option<&KeyId>, source: Option<IpAddr>, now: i64) -> Option<u64> {
        let by_key = key.and_then(|k| self.keys.retry_after(k, now));
        let by_address = source.and_then(|ip| self.addresses.retry_after(&address_bucket(ip), now));
        by_key.max(by_address)
    }

    /// Counts a guess that failed: against the key it named (when a real key) and its source.
    pub fn fail(&mut self, key: Option<&KeyId>, source: Option<IpAddr>, now: i64) -> FailureOutcome {
        FailureOutcome {
            key_lockout: key.and_then(|k| self.keys.fail(k, now)),
            address_lockout: source.and_then(|ip| self.addresses.fail(&address_bucket(ip), now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::model::GraceSecret;
    use chrono::{Duration, TimeZone};

    fn t0() -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    struct Fixture {
        keyring: Keyring,
        secret: Secret,
        old: Secret,
        key: IndexedKey,
    }

    fn fixture() -> Fixture {
        let keyring = Keyring::new(&MasterKey::generate());
        let secret = Secret::generate();
        let old = Secret::generate();
        let id = KeyId::from_trusted("kw_judged");
        let record = KeyRecord {
            id: id.clone(),
            org_id: OrgId::from_trusted("org_1"),
            owner_id: UserId::from_trusted("usr_1"),
            name: "k".into(),
            description: String::new(),
            comment: String::new(),
            roles: vec![],
            scopes: vec![],
            expires_at: Some(t0() + Duration::days(1)),
            locked: false,
            network_restrictions: vec![],
            reauth_timeout_s: 60,
            created_at: t0(),
            created_by: UserId::from_trusted("usr_1"),
            updated_at: t0(),
            rolled_at: None,
            last_used_at: None,
            last_used_ip: None,
            imported: false,
            secret: keyring.seal(id.as_str(), &secret),
            previous_secret: Some(GraceSecret {
                sealed: keyring.seal(id.as_str(), &old),
                valid_until: t0() + Duration::seconds(60),
            }),
            inherits_owner: false,
            token_epoch: 0,
            version: 1,
        };
        let mut permissions = PermissionSet::default();
        permissions.grant("keyward", "keys", crate::permission::Access::Write);
        let key = IndexedKey {
            state: KeyState { locked: false, expires_at: record.expires_at, network_restrictions: vec![] },
            record,
            permissions,
            cross_org: false,
            direct_secret_allowed: true,
            hawk_require_payload_hash: false,
            owner_may_sign_in: true,
            owner_token_epoch: 0,
        };
        Fixture { keyring, secret, old, key }
    }

    fn code<T>(r: Result<T, Refusal>) -> &'static str {
        match r {
            Ok(_) => "valid",
            Err(e) => e.failure.code(),
        }
    }

    #[test]
    fn the_secret_judge_applies_the_checks_in_order_and_the_grace_rule_once() {
        let f = fixture();
        let judge = |key: &IndexedKey, s: &Secret, at: Timestamp, direct: bool| {
            code(judge_secret(Some(key), s, &f.keyring.digest(s), at, ip("10.0.0.1"), direct))
        };
        let wrong = Secret::from_presented("a-wrong-but-well-formed-secret");
        let cases: [(&Secret, Timestamp, &str); 6] = [
            (&f.secret, t0(), "valid"),
            (&f.old, t0() + Duration::seconds(59), "valid"),
            (&f.old, t0() + Duration::seconds(60), "invalid_credentials"),
            (&wrong, t0(), "invalid_credentials"),
            (&f.secret, t0() + Duration::days(1), "key_expired"),
            (&f.secret, t0() + Duration::days(2), "key_expired"),
        ];
        for (s, at, expected) in cases {
            assert_eq!(judge(&f.key, s, at, true), expected, "at {at}");
        }
        assert_eq!(
            code(judge_secret(None, &f.secret, &f.keyring.digest(&f.secret), t0(), ip("10.0.0.1"), true)),
            "invalid_credentials"
        );
        let mut locked = fixture().key;
        locked.state.locked = true;
        let s = Secret::from_presented(String::new());
        assert_eq!(judge(&locked, &s, t0(), true), "invalid_credentials", "a wrong secret never learns the state");
        let mut no_direct = fixture();
        no_direct.key.direct_secret_allowed = false;
        let d = no_direct.keyring.digest(&no_direct.secret);
        assert_eq!(
            code(judge_secret(Some(&no_direct.key), &no_direct.secret, &d, t0(), ip("10.0.0.1"), true)),
            "invalid_credentials"
        );
        assert_eq!(
            code(judge_secret(Some(&no_direct.key), &no_direct.secret, &d, t0(), ip("10.0.0.1"), false)),
            "valid"
        );
    }

    #[test]
    fn the_session_judge_ends_sessions_of_owners_who_may_no_longer_sign_in() {
        let mut f = fixture();
        let version = f.key.record.secret.digest.version();
        let old_version = f.key.record.previous_secret.as_ref().unwrap().sealed.digest.version();
        assert_eq!(code(judge_session(Some(&f.key), &version, t0(), ip("10.0.0.1"))), "valid");
        assert_eq!(
            code(judge_session(Some(&f.key), &old_version, t0() + Duration::seconds(59), ip("10.0.0.1"))),
            "valid"
        );
        assert_eq!(
            code(judge_session(Some(&f.key), &old_version, t0() + Duration::seconds(60), ip("10.0.0.1"))),
            "invalid_credentials"
        );
        f.key.owner_may_sign_in = false;
        assert_eq!(code(judge_session(Some(&f.key), &version, t0(), ip("10.0.0.1"))), "invalid_credentials");
        f.key.owner_may_sign_in = true;
        f.key.state.locked = true;
        assert_eq!(code(judge_session(Some(&f.key), &version, t0(), ip("10.0.0.1"))), "key_locked");
    }

    #[test]
    fn the_token_judge_needs_the_buying_secret_and_narrows_to_the_key() {
        let f = fixture();
        let claims = |sv: String, org: &str| AccessClaims {
            iss: "i".into(),
            sub: "usr_1".into(),
            aud: "i".into(),
            client_id: "kw_judged".into(),
            iat: t0().timestamp(),
            exp: t0().timestamp() + 60,
            jti: "j".into(),
            scope: "keyward:keys:read keyward:users:write".into(),
            org_id: org.into(),
            sv,
            kep: 0,
            uep: 0,
        };
        let current = f.key.record.secret.digest.version();
        let p = judge_token(Some(&f.key), &claims(current.clone(), "org_1"), t0(), ip("10.0.0.1")).unwrap();
        assert_eq!(p.permissions.to_strings(), vec!["keyward:keys:read"]);
        assert_eq!(
            code(judge_token(Some(&f.key), &claims(current, "org_2"), t0(), ip("10.0.0.1"))),
            "invalid_credentials"
        );
        assert_eq!(
            code(judge_token(Some(&f.key), &claims("other".into(), "org_1"), t0(), ip("10.0.0.1"))),
            "invalid_credentials"
        );
    }

    #[test]
    fn a_lock_or_a_disable_after_the_purchase_ends_a_token_for_good() {
        let f = fixture();
        let current = f.key.record.secret.digest.version();
        let bought = AccessClaims {
            iss: "i".into(),
            sub: "usr_1".into(),
            aud: "i".into(),
            client_id: "kw_judged".into(),
            iat: t0().timestamp(),
            exp: t0().timestamp() + 60,
            jti: "j".into(),
            scope: "keyward:keys:read".into(),
            org_id: "org_1".into(),
            sv: current,
            kep: 0,
            uep: 0,
        };
        let judge = |key: &IndexedKey| code(judge_token(Some(key), &bought, t0(), ip("10.0.0.1")));
        assert_eq!(judge(&f.key), "valid");
        let mut locked = IndexedKey { state: KeyState { locked: true, ..f.key.state.clone() }, ..clone_key(&f.key) };
        locked.record.token_epoch = 1;
        assert_eq!(judge(&locked), "key_locked", "while locked the token says so");
        let unlocked = IndexedKey { state: f.key.state.clone(), ..clone_key(&locked) };
        assert_eq!(judge(&unlocked), "invalid_credentials", "unlocked, the token stays dead");
        let owner_was_disabled = IndexedKey { owner_token_epoch: 1, ..clone_key(&f.key) };
        assert_eq!(judge(&owner_was_disabled), "invalid_credentials");
    }

    fn clone_key(k: &IndexedKey) -> IndexedKey {
        IndexedKey {
            record: k.record.clone(),
            permissions: k.permissions.clone(),
            cross_org: k.cross_org,
            state: k.state.clone(),
            direct_secret_allowed: k.direct_secret_allowed,
            hawk_require_payload_hash: k.hawk_require_payload_hash,
            owner_may_sign_in: k.owner_may_sign_in,
            owner_token_epoch: k.owner_token_epoch,
        }
    }

    struct Memory(std::sync::Mutex<Vec<String>>, i64);

    impl ReplayGuard for Memory {
        fn first_use(&self, id: &str, nonce: &str, _: i64, _: i64) -> bool {
            let mut seen = self.0.lock().unwrap();
            let entry = format!("{id}/{nonce}");
            if seen.contains(&entry) {
                return false;
            }
            seen.push(entry);
            true
        }
        fn remembers_after(&self) -> i64 {
            self.1
        }
    }

    #[test]
    fn hawk_requests_signed_before_the_process_started_get_a_challenge() {
        let f = fixture();
        let now = t0();
        let sign = |ts: i64, nonce: &str| {
            let ts_text = ts.to_string();
            let input = hawk::MacInput {
                ts: &ts_text,
                nonce,
                method: "GET",
                resource: "/v1/me",
                host: "h",
                port: 80,
                ..hawk::MacInput::default()
            };
            let mac = hawk::mac(
                hawk::Algorithm::Sha256,
                f.secret.expose().as_bytes(),
                &hawk::normalized_string(hawk::MacKind::Header, &input),
            );
            hawk::parse_header(&format!("Hawk id=\"kw_judged\", ts=\"{ts}\", nonce=\"{nonce}\", mac=\"{mac}\""))
                .unwrap()
        };
        let info =
            RequestInfo { method: "GET", resource: "/v1/me", host: "h", port: 80, content_type: None, payload: None };
        // The process started within second t0 - 5: that whole second is before its memory.
        let started = now.timestamp() - 5;
        let guard = Memory(std::sync::Mutex::default(), started);
        for (ts, nonce, expected_challenge, expected) in [
            (started - 1, "a", true, "invalid_credentials"),
            (started, "b", true, "invalid_credentials"),
            (started + 1, "c", false, "valid"),
            (started + 1, "c", false, "invalid_credentials"),
            (now.timestamp(), "d", false, "valid"),
        ] {
            let header = sign(ts, nonce);
            let result = judge_hawk(
                Some(&f.key),
                &f.keyring,
                &HawkRequest { header: &header, info },
                now,
                ip("10.0.0.1"),
                &guard,
            );
            if let Err(r) = &result {
                assert_eq!(r.challenge.is_some(), expected_challenge, "ts {ts}");
                assert!(!r.is_guess() || !expected_challenge);
            } else {
                assert!(!expected_challenge);
            }
            assert_eq!(code(result), expected, "ts {ts} nonce {nonce}");
        }
    }

    #[test]
    fn the_bewit_judge_takes_both_live_secrets_and_caps_the_lifetime() {
        let f = fixture();
        let now = t0();
        let bewit = |secret: &Secret, exp: i64| {
            let exp_text = exp.to_string();
            let input = hawk::MacInput {
                ts: &exp_text,
                method: "GET",
                resource: "/v1/me",
                host: "h",
                port: 80,
                ext: Some(""),
                ..hawk::MacInput::default()
            };
            let mac = hawk::mac(
                hawk::Algorithm::Sha256,
                secret.expose().as_bytes(),
                &hawk::normalized_string(hawk::MacKind::Bewit, &input),
            );
            Bewit { id: "kw_judged".into(), exp, mac, ext: String::new() }
        };
        let judge = |b: &Bewit, at: Timestamp| {
            let req = BewitRequest { bewit: b, resource: "/v1/me", host: "h", port: 80 };
            code(judge_bewit(Some(&f.key), &f.keyring, &req, at, ip("10.0.0.1")))
        };
        let soon = now.timestamp() + 30;
        let wrong = Secret::generate();
        let table = [
            (bewit(&f.secret, soon), now, "valid"),
            (bewit(&f.old, soon), now, "valid"),
            (bewit(&f.old, soon + 3_600), now + Duration::seconds(59), "valid"),
            (bewit(&f.old, soon + 3_600), now + Duration::seconds(60), "invalid_credentials"),
            (bewit(&wrong, soon), now, "invalid_credentials"),
            (bewit(&f.secret, soon), now + Duration::seconds(30), "invalid_credentials"),
            (bewit(&f.secret, now.timestamp() + MAX_BEWIT_TTL_SECS + 1), now, "invalid_credentials"),
            (bewit(&f.secret, now.timestamp() + MAX_BEWIT_TTL_SECS), now, "valid"),
        ];
        for (i, (b, at, expected)) in table.iter().enumerate() {
            assert_eq!(judge(b, *at), *expected, "case {i}");
        }
    }

    #[test]
    fn verify_tells_a_refusal_and_the_key_only_within_the_callers_reach() {
        let f = fixture();
        let mine = |o: &OrgId| o.as_str() == "org_1";
        let nobody = |_: &OrgId| false;
        let ok = || judge_session(Some(&f.key), &f.key.record.secret.digest.version(), t0(), ip("10.0.0.1"));
        let write = Permission::parse("keyward:keys:write", false).unwrap();
        let users = Permission::parse("keyward:users:read", false).unwrap();
        let locked = || Err(Refusal::about(&f.key, AuthFailure::KeyLocked));
        let wrong = || Err(Refusal::about(&f.key, AuthFailure::InvalidCredentials));
        let key_throttled = || Err(Refusal::throttled(Refusal::about(&f.key, AuthFailure::InvalidCredentials).key, 7));
        let address_throttled = || Err(Refusal::throttled(None, 9));
        let cases: Vec<(VerifyVerdict, bool, VerifyCode, bool, Option<u64>)> = vec![
            (verify_verdict(ok(), mine, std::slice::from_ref(&write)), true, VerifyCode::Valid, false, None),
            (
                verify_verdict(ok(), mine, std::slice::from_ref(&users)),
                false,
                VerifyCode::InsufficientPermissions,
                false,
                None,
            ),
            (
                verify_verdict(ok(), nobody, &[]),
                false,
                VerifyCode::Refused(AuthFailure::InvalidCredentials),
                false,
                None,
            ),
            (verify_verdict(locked(), mine, &[]), false, VerifyCode::Refused(AuthFailure::KeyLocked), true, None),
            (
                verify_verdict(locked(), nobody, &[]),
                false,
                VerifyCode::Refused(AuthFailure::InvalidCredentials),
                false,
                None,
            ),
            (
                verify_verdict(wrong(), mine, &[]),
                false,
                VerifyCode::Refused(AuthFailure::InvalidCredentials),
                false,
                None,
            ),
            (
                verify_verdict(key_throttled(), mine, &[]),
                false,
                VerifyCode::Refused(AuthFailure::TooManyAttempts),
                true,
                Some(7),
            ),
            (
                verify_verdict(key_throttled(), nobody, &[]),
                false,
                VerifyCode::Refused(AuthFailure::InvalidCredentials),
                false,
                None,
            ),
            (
                verify_verdict(address_throttled(), nobody, &[]),
                false,
                VerifyCode::Refused(AuthFailure::TooManyAttempts),
                false,
                Some(9),
            ),
        ];
        for (i, (v, valid, code, key_shown, retry)) in cases.into_iter().enumerate() {
            assert_eq!(
                (v.valid, v.code, v.key.is_some(), v.retry_after_s),
                (valid, code, key_shown, retry),
                "case {i}"
            );
            assert_eq!(
                v.principal.is_some(),
                matches!(code, VerifyCode::Valid | VerifyCode::InsufficientPermissions),
                "case {i}"
            );
        }
    }

    #[test]
    fn a_key_is_locked_out_after_the_limit_and_each_further_failure_doubles_the_lockout() {
        let policy = ThrottlePolicy {
            limit: 3,
            window_secs: 300,
            first_lockout_secs: 10,
            max_lockout_secs: 40,
            forget_after_secs: 900,
        };
        let mut t = Throttle::new(policy, 100);
        let k = "kw_a";
        // (second, lockout started until, retry_after at that second after the failure)
        let table: [(i64, Option<i64>, Option<u64>); 8] = [
            (0, None, None),
            (1, None, None),
            (2, Some(12), Some(10)),
            (12, Some(32), Some(20)),
            (32, Some(72), Some(40)),
            (72, Some(112), Some(40)),
            (112 + 900, None, None),
            (112 + 901, None, None),
        ];
        for (at, until, retry) in table {
            assert_eq!(t.fail(&k, at).map(|l| l.until), until, "failure at {at}");
            assert_eq!(t.retry_after(&k, at), retry, "at {at}");
        }
        assert_eq!(t.retry_after(&"kw_other", 0), None);
    }

    #[test]
    fn the_window_restarts_the_count_before_any_lockout() {
        let policy = ThrottlePolicy {
            limit: 3,
            window_secs: 300,
            first_lockout_secs: 10,
            max_lockout_secs: 40,
            forget_after_secs: 900,
        };
        let mut t = Throttle::new(policy, 100);
        assert_eq!(t.fail(&"k", 0), None);
        assert_eq!(t.fail(&"k", 1), None);
        assert_eq!(t.fail(&"k", 300), None, "a new window");
        assert_eq!(t.fail(&"k", 301), None);
        assert_eq!(t.fail(&"k", 302).map(|l| l.nth), Some(1));
    }

    #[test]
    fn a_spray_of_addresses_stays_bounded_and_forgets_the_oldest() {
        let policy = ThrottlePolicy { limit: 1, ..KEY_THROTTLE };
        let mut t = Throttle::new(policy, 1_000);
        for i in 0..5_000u32 {
            t.fail(&IpAddr::from(i.to_be_bytes()), 0);
        }
        assert_eq!(t.len(), 1_000);
        assert_eq!(t.retry_after(&IpAddr::from(0u32.to_be_bytes()), 1), None, "the oldest was forgotten");
        assert!(t.retry_after(&IpAddr::from(4_999u32.to_be_bytes()), 1).is_some());
    }

    #[test]
    fn addresses_count_per_ipv4_address_and_per_ipv6_64() {
        assert_eq!(address_bucket(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(address_bucket(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(address_bucket(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        let mut throttle = AuthThrottle::new(KEY_THROTTLE, ThrottlePolicy { limit: 2, ..ADDRESS_THROTTLE }, 100);
        let key = KeyId::from_trusted("kw_a");
        assert_eq!(throttle.fail(Some(&key), Some(ip("2001:db8::1")), 0), FailureOutcome::default());
        let second = throttle.fail(None, Some(ip("2001:db8::2")), 1);
        assert_eq!(second.address_lockout.map(|l| l.until), Some(11));
        assert_eq!(throttle.retry_after(None, Some(ip("2001:db8::ffff")), 1), Some(10));
        assert_eq!(throttle.retry_after(Some(&key), Some(ip("2001:db9::1")), 1), None, "the key is not locked out");
        assert_eq!(throttle.retry_after(Some(&key), None, 1), None);
    }
}

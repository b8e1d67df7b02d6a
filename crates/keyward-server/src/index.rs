//! The in-memory index of keys and the directory their permissions come from,
//! so authenticating a request reads no database row. It is refreshed from the
//! store by the same code path that writes the store.

use crate::nonce::NonceCache;
use keyward_core::clock::Timestamp;
use keyward_core::crypto::{Keyring, SecretDigest};
use keyward_core::hawk::{self, AuthOptions, Bewit, HawkError, HawkHeader, PayloadCheck, RequestInfo};
use keyward_core::ids::{KeyId, OrgId, UserId};
use keyward_core::key::{AuthFailure, KeyState, check_key_state};
use keyward_core::model::{KeyRecord, Org, UserStatus, builtin_roles};
use keyward_core::permission::Permission;
use keyward_core::permission::PermissionSet;
use keyward_core::policy::{AuthMethod, Directory, Principal};
use keyward_core::secret::{Secret, SecretShape, shape};
use keyward_core::store::{KeyUsage, Store, StoreError};
use keyward_core::token::AccessClaims;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

/// One key as the credential check needs it.
#[derive(Debug)]
pub struct IndexedKey {
    pub record: KeyRecord,
    pub permissions: PermissionSet,
    pub cross_org: bool,
    pub state: KeyState,
}

#[derive(Default)]
struct Snapshot {
    directory: Directory,
    keys: HashMap<KeyId, Arc<IndexedKey>>,
    /// Current and in-grace secret digests → key id.
    by_digest: HashMap<[u8; 32], KeyId>,
}

impl Snapshot {
    fn index_key(&self, record: KeyRecord) -> IndexedKey {
        let owner_disabled = self.directory.users.get(&record.owner_id).is_none_or(|u| u.status != UserStatus::Active);
        IndexedKey {
            permissions: self.directory.key_permissions(&record),
            cross_org: self.directory.key_is_cross_org(&record),
            state: KeyState {
                locked: record.locked || owner_disabled,
                expires_at: record.expires_at,
                network_restrictions: record.network_restrictions.clone(),
            },
            record,
        }
    }

    fn insert(&mut self, record: KeyRecord) {
        self.remove(&record.id);
        let id = record.id.clone();
        self.by_digest.insert(record.secret.digest.0, id.clone());
        if let Some(prev) = &record.previous_secret {
            self.by_digest.insert(prev.sealed.digest.0, id.clone());
        }
        let indexed = self.index_key(record);
        self.keys.insert(id, Arc::new(indexed));
    }

    fn remove(&mut self, id: &KeyId) {
        if let Some(old) = self.keys.remove(id) {
            self.by_digest.remove(&old.record.secret.digest.0);
            if let Some(prev) = &old.record.previous_secret {
                self.by_digest.remove(&prev.sealed.digest.0);
            }
        }
    }
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
}

impl Refusal {
    fn anonymous(failure: AuthFailure) -> Self {
        Self { failure, key: None, challenge: None }
    }

    fn about(key: &IndexedKey, failure: AuthFailure) -> Self {
        Self {
            failure,
            key: Some((key.record.id.clone(), key.record.org_id.clone(), key.record.owner_id.clone())),
            challenge: None,
        }
    }
}

/// A Hawk request as the MAC covers it.
pub struct HawkRequest<'a> {
    pub header: &'a HawkHeader,
    pub info: RequestInfo<'a>,
}

/// A presented credential.
pub enum Credential {
    /// `Basic id:secret`.
    IdAndSecret(String, Secret),
    /// `Bearer <secret>`.
    Secret(Secret),
}

/// The index. Reads take a shared lock for microseconds; writes rebuild entries
/// from the store under `refresh`, so the newest committed state always wins.
pub struct KeyIndex {
    snapshot: RwLock<Snapshot>,
    refresh: tokio::sync::Mutex<()>,
    keyring: Arc<Keyring>,
    /// A refresh after a committed write failed: the next background tick reloads everything.
    stale: std::sync::atomic::AtomicBool,
}

fn poisoned() -> StoreError {
    StoreError::Backend("the key index lock was poisoned".into())
}

impl KeyIndex {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self {
            snapshot: RwLock::new(Snapshot::default()),
            refresh: tokio::sync::Mutex::new(()),
            keyring,
            stale: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Reloads everything from the store (start-up, and after org, user or role changes).
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        // A failed reload leaves the index stale; the next background tick tries again.
        self.load_all(store).await.inspect_err(|_| self.stale.store(true, std::sync::atomic::Ordering::SeqCst))
    }

    async fn load_all(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _guard = self.refresh.lock().await;
        let mut roles = builtin_roles();
        roles.extend(store.list_roles().await?);
        let directory =
            Directory::new(store.list_orgs().await?, store.list_users().await?, roles, store.list_scopes().await?);
        let mut fresh = Snapshot { directory, ..Snapshot::default() };
        for key in store.all_keys().await? {
            fresh.insert(key);
        }
        *self.snapshot.write().map_err(|_| poisoned())? = fresh;
        Ok(())
    }

    /// Reloads if a refresh failed since the last reload; returns whether it did.
    pub async fn reload_if_stale(&self, store: &dyn Store) -> Result<bool, StoreError> {
        if !self.stale.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(false);
        }
        self.reload(store).await?;
        Ok(true)
    }

    /// Re-reads one key from the store after a write to it.
    pub async fn refresh_key(&self, store: &dyn Store, id: &KeyId) -> Result<(), StoreError> {
        let _guard = self.refresh.lock().await;
        let record =
            store.get_key(id).await.inspect_err(|_| self.stale.store(true, std::sync::atomic::Ordering::SeqCst))?;
        let mut snap = self.snapshot.write().map_err(|_| poisoned())?;
        match record {
            Some(r) => snap.insert(r),
            None => snap.remove(id),
        }
        Ok(())
    }

    /// Reads the directory (a clone, for decisions that span several lookups).
    pub fn directory(&self) -> Directory {
        self.snapshot.read().map(|s| s.directory.clone()).unwrap_or_default()
    }

    pub fn org(&self, id: &OrgId) -> Option<Org> {
        self.snapshot.read().ok()?.directory.orgs.get(id).cloned()
    }

    pub fn user(&self, id: &UserId) -> Option<keyward_core::model::User> {
        self.snapshot.read().ok()?.directory.users.get(id).cloned()
    }

    pub fn key(&self, id: &KeyId) -> Option<Arc<IndexedKey>> {
        self.snapshot.read().ok()?.keys.get(id).cloned()
    }

    /// The owners of the live keys that carry `role`.
    pub fn owners_of_keys_with_role(&self, role: &keyward_core::ids::RoleId) -> Vec<UserId> {
        self.snapshot
            .read()
            .map(|s| {
                s.keys.values().filter(|k| k.record.roles.contains(role)).map(|k| k.record.owner_id.clone()).collect()
            })
            .unwrap_or_default()
    }

    /// Whether a live key holds this secret, as its current one or in its grace period.
    pub fn digest_in_use(&self, digest: &SecretDigest) -> bool {
        self.snapshot.read().is_ok_and(|s| s.by_digest.contains_key(&digest.0))
    }

    /// How many keys are active, locked and expired at `now`.
    pub fn status_counts(&self, now: Timestamp) -> Vec<(&'static str, u64)> {
        let mut counts = [("active", 0u64), ("locked", 0), ("expired", 0)];
        if let Ok(snap) = self.snapshot.read() {
            for k in snap.keys.values() {
                let owner_active =
                    snap.directory.users.get(&k.record.owner_id).is_some_and(|u| u.status == UserStatus::Active);
                let slot = match k.record.status(now, owner_active) {
                    keyward_core::model::KeyStatus::Active => 0,
                    keyward_core::model::KeyStatus::Locked => 1,
                    keyward_core::model::KeyStatus::Expired => 2,
                };
                counts[slot].1 += 1;
            }
        }
        counts.to_vec()
    }

    /// Effective permissions of a key (empty if it is not indexed).
    pub fn key_permissions(&self, id: &KeyId) -> PermissionSet {
        self.key(id).map(|k| k.permissions.clone()).unwrap_or_default()
    }

    /// Judges a credential: `invalid_credentials`, `key_locked`, `key_expired`,
    /// `ip_not_allowed`, in that order. Touches no database row.
    /// `direct`: the secret is used as the credential itself (refused where the
    /// org forbids it), not to buy a token.
    pub fn authenticate(
        &self,
        credential: &Credential,
        now: Timestamp,
        source: IpAddr,
        direct: bool,
    ) -> Result<Principal, Refusal> {
        let secret = match credential {
            Credential::IdAndSecret(_, s) | Credential::Secret(s) => s,
        };
        // The digest is computed before any lookup, so unknown ids cost the same time.
        let digest = self.keyring.digest(secret);
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let key = match credential {
            Credential::IdAndSecret(id, _) => snap.keys.get(&KeyId::from_trusted(id.clone())),
            Credential::Secret(_) => snap.by_digest.get(&digest.0).and_then(|id| snap.keys.get(id)),
        }
        .ok_or(Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let refuse = |failure| Refusal::about(key, failure);
        if shape(secret.expose()) == SecretShape::BadChecksum || !secret_matches(&key.record, &digest, now) {
            return Err(refuse(AuthFailure::InvalidCredentials));
        }
        check_key_state(&key.state, now, source).map_err(refuse)?;
        let allow_direct = snap.directory.orgs.get(&key.record.org_id).is_some_and(|o| o.settings.allow_direct_secret);
        if direct && !allow_direct {
            return Err(refuse(AuthFailure::InvalidCredentials));
        }
        Ok(Principal {
            user_id: key.record.owner_id.clone(),
            org_id: key.record.org_id.clone(),
            key_id: Some(key.record.id.clone()),
            permissions: key.permissions.clone(),
            cross_org: key.cross_org,
            auth_method: AuthMethod::Secret,
        })
    }
}

impl KeyIndex {
    /// The secrets a key accepts now: the current one, and the previous one in its grace period.
    fn live_secrets(&self, key: &KeyRecord, now: Timestamp) -> Vec<Secret> {
        let mut sealed = vec![&key.secret];
        if let Some(prev) = key.previous_secret.as_ref().filter(|p| now < p.valid_until) {
            sealed.push(&prev.sealed);
        }
        sealed.into_iter().filter_map(|s| self.keyring.open(key.id.as_str(), &s.ciphertext).ok()).collect()
    }

    /// Judges a Hawk request: MAC (and payload hash, when sent), then nonce and
    /// timestamp, then the key's state. Returns the secret that matched, for
    /// `Server-Authorization`.
    pub fn authenticate_hawk(
        &self,
        req: &HawkRequest<'_>,
        now: Timestamp,
        source: IpAddr,
        nonces: &NonceCache,
    ) -> Result<(Principal, Secret), Refusal> {
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let Some(key) = snap.keys.get(&KeyId::from_trusted(req.header.id.clone())) else {
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
        let require_hash =
            snap.directory.orgs.get(&key.record.org_id).is_some_and(|o| o.settings.hawk_require_payload_hash);
        let options = AuthOptions { require_payload_hash: require_hash, ..AuthOptions::default() };
        let mut outcome = Err(HawkError::BadMac);
        let mut matched = None;
        for secret in self.live_secrets(&key.record, now) {
            outcome = hawk::authenticate_request(
                req.header,
                secret.expose().as_bytes(),
                &req.info,
                now.timestamp(),
                &options,
            );
            if !matches!(outcome, Err(HawkError::BadMac)) {
                matched = Some(secret);
                break;
            }
        }
        let authenticated = match outcome {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(reason = e.reason(), key = %key.record.id, "hawk request refused");
                let mut refusal = Refusal::about(key, AuthFailure::InvalidCredentials);
                refusal.challenge = e.challenge();
                return Err(refusal);
            }
        };
        if authenticated.payload == PayloadCheck::Deferred {
            return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
        }
        if !nonces.first_use(&authenticated.id, &authenticated.nonce, now.timestamp()) {
            tracing::debug!(key = %key.record.id, "hawk nonce replayed");
            return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
        }
        check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
        let secret = matched.ok_or_else(|| Refusal::about(key, AuthFailure::InvalidCredentials))?;
        Ok((principal_of(key, AuthMethod::Hawk), secret))
    }

    /// Judges a bewit (a single-URI Hawk authorization in the query string, GET and HEAD only).
    pub fn authenticate_bewit(
        &self,
        bewit: &Bewit,
        resource: &str,
        host: &str,
        port: u16,
        now: Timestamp,
        source: IpAddr,
    ) -> Result<Principal, Refusal> {
        // A bewit is a bearer URL that cannot be revoked on its own: cap how far ahead it may run.
        if bewit.exp > now.timestamp() + MAX_BEWIT_TTL_SECS {
            return Err(Refusal::anonymous(AuthFailure::InvalidCredentials));
        }
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let Some(key) = snap.keys.get(&KeyId::from_trusted(bewit.id.clone())) else {
            // Spend the same work on unknown ids, so timing does not tell which ids exist.
            let _ = hawk::authenticate_bewit(bewit, b"keyward-unknown-id", resource, host, port, now.timestamp());
            return Err(Refusal::anonymous(AuthFailure::InvalidCredentials));
        };
        let ok = self.live_secrets(&key.record, now).iter().any(|s| {
            hawk::authenticate_bewit(bewit, s.expose().as_bytes(), resource, host, port, now.timestamp()).is_ok()
        });
        if !ok {
            return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
        }
        check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
        Ok(principal_of(key, AuthMethod::Hawk))
    }

    /// Judges an access token whose signature and expiry were verified: the key
    /// that bought it must still exist with the secret that bought it, and be
    /// usable now; the token holds at most what the key holds now.
    pub fn authenticate_token(
        &self,
        claims: &AccessClaims,
        now: Timestamp,
        source: IpAddr,
    ) -> Result<Principal, Refusal> {
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let key = snap
            .keys
            .get(&KeyId::from_trusted(claims.client_id.clone()))
            .filter(|k| k.record.org_id.as_str() == claims.org_id)
            .ok_or(Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        if !secret_still_accepted(&key.record, &claims.sv, now) {
            return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
        }
        check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
        // While locked the token answers key_locked; once unlocked it is simply dead.
        let owner_epoch = snap.directory.users.get(&key.record.owner_id).map_or(0, |u| u.token_epoch);
        if !claims.epochs_current(key.record.token_epoch, owner_epoch) {
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
}

impl KeyIndex {
    /// Judges a key that proved itself earlier (a browser session): it must still be usable now.
    pub fn authenticate_session(
        &self,
        id: &KeyId,
        secret_version: &str,
        now: Timestamp,
        source: IpAddr,
    ) -> Result<Principal, Refusal> {
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let key = snap.keys.get(id).ok_or(Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        if !secret_still_accepted(&key.record, secret_version, now) {
            return Err(Refusal::about(key, AuthFailure::InvalidCredentials));
        }
        check_key_state(&key.state, now, source).map_err(|f| Refusal::about(key, f))?;
        Ok(principal_of(key, AuthMethod::Session))
    }
}

/// Whether the secret tagged `version` (which bought a token or a session) is
/// still the key's current one, or its previous one within the grace period.
fn secret_still_accepted(key: &KeyRecord, version: &str, now: Timestamp) -> bool {
    key.secret.digest.version() == version
        || key.previous_secret.as_ref().is_some_and(|p| now < p.valid_until && p.sealed.digest.version() == version)
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
    let previous = key.previous_secret.as_ref().is_some_and(|p| p.sealed.digest.ct_eq(digest) && now < p.valid_until);
    current | previous
}

/// Last-used times waiting to be written: at most one pending entry per key,
/// flushed in one transaction every few seconds.
#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<KeyId, (Timestamp, Option<IpAddr>)>>,
}

impl UsageRecorder {
    pub fn touch(&self, key: &KeyId, at: Timestamp, ip: Option<IpAddr>) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(key.clone(), (at, ip));
        }
    }

    /// A use not yet written, so responses show it before the flush.
    pub fn pending(&self, key: &KeyId) -> Option<(Timestamp, Option<IpAddr>)> {
        self.pending.lock().ok()?.get(key).copied()
    }

    /// Writes what is pending; on failure the batch is put back for the next try.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let batch: Vec<KeyUsage> = match self.pending.lock() {
            Ok(mut p) => p.drain().map(|(key_id, (at, ip))| KeyUsage { key_id, at, ip }).collect(),
            Err(_) => return Err(poisoned()),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.record_key_usage(&batch).await {
            if let Ok(mut p) = self.pending.lock() {
                for u in batch {
                    p.entry(u.key_id).or_insert((u.at, u.ip));
                }
            }
            return Err(e);
        }
        Ok(batch.len())
    }
}

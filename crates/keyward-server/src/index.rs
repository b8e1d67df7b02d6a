//! The in-memory index of keys and the directory their permissions come from,
//! so authenticating a request reads no database row: it keeps the snapshot,
//! finds the key a credential names and hands it to the judges in
//! `keyward_core::authn`. It is refreshed from the store by the same code path
//! that writes the store.

use crate::nonce::NonceCache;
use keyward_core::authn;
pub use keyward_core::authn::{HawkRequest, IndexedKey, MAX_BEWIT_TTL_SECS, Refusal};
use keyward_core::clock::Timestamp;
use keyward_core::crypto::{Keyring, SecretDigest};
use keyward_core::hawk::Bewit;
use keyward_core::ids::{KeyId, OrgId, UserId};
use keyward_core::key::{AuthFailure, KeyState};
use keyward_core::model::{KeyRecord, Org, UserStatus, builtin_roles};
use keyward_core::permission::PermissionSet;
use keyward_core::policy::{Directory, Principal};
use keyward_core::secret::Secret;
use keyward_core::store::{Store, StoreError};
use keyward_core::token::AccessClaims;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

#[derive(Default)]
struct Snapshot {
    /// Shared with callers of [`KeyIndex::directory`]: a reload replaces it, nothing mutates it.
    directory: Arc<Directory>,
    keys: HashMap<KeyId, Arc<IndexedKey>>,
    /// Current and in-grace secret digests → key id.
    by_digest: HashMap<[u8; 32], KeyId>,
}

impl Snapshot {
    fn index_key(&self, record: KeyRecord) -> IndexedKey {
        let owner = self.directory.users.get(&record.owner_id);
        let owner_disabled = owner.is_none_or(|u| u.status != UserStatus::Active);
        let settings = self.directory.orgs.get(&record.org_id).map(|o| &o.settings);
        IndexedKey {
            permissions: self.directory.key_permissions(&record),
            cross_org: self.directory.key_is_cross_org(&record),
            direct_secret_allowed: settings.is_some_and(|s| s.allow_direct_secret),
            hawk_require_payload_hash: settings.is_some_and(|s| s.hawk_require_payload_hash),
            owner_may_sign_in: owner.is_some_and(|u| !self.directory.is_service_requestor(u)),
            owner_token_epoch: owner.map_or(0, |u| u.token_epoch),
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
        let mut fresh = Snapshot { directory: Arc::new(directory), ..Snapshot::default() };
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

    /// Reads the directory, for decisions that span several lookups: the snapshot's
    /// own, shared (a reference count, not a copy of every user and role).
    pub fn directory(&self) -> Arc<Directory> {
        self.snapshot.read().map(|s| Arc::clone(&s.directory)).unwrap_or_default()
    }

    pub fn org(&self, id: &OrgId) -> Option<Org> {
        self.snapshot.read().ok()?.directory.orgs.get(id).cloned()
    }

    pub fn user(&self, id: &UserId) -> Option<keyward_core::model::User> {
        self.snapshot.read().ok()?.directory.users.get(id).cloned()
    }

    /// The operator's org (the first one created, where the bootstrap admin lives):
    /// where events that name no org, such as an address locked out, are audited.
    pub fn operator_org(&self) -> Option<OrgId> {
        let snap = self.snapshot.read().ok()?;
        snap.directory.orgs.values().min_by_key(|o| (o.created_at, o.id.clone())).map(|o| o.id.clone())
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
        };
        authn::judge_secret(key.map(AsRef::as_ref), secret, &digest, now, source, direct)
    }

    /// Judges a Hawk request (see [`authn::judge_hawk`]); returns the secret that
    /// matched, for `Server-Authorization`.
    pub fn authenticate_hawk(
        &self,
        req: &HawkRequest<'_>,
        now: Timestamp,
        source: IpAddr,
        nonces: &NonceCache,
    ) -> Result<(Principal, Secret), Refusal> {
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let key = snap.keys.get(&KeyId::from_trusted(req.header.id.clone()));
        authn::judge_hawk(key.map(AsRef::as_ref), &self.keyring, req, now, source, nonces)
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
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let key = snap.keys.get(&KeyId::from_trusted(bewit.id.clone()));
        let req = authn::BewitRequest { bewit, resource, host, port };
        authn::judge_bewit(key.map(AsRef::as_ref), &self.keyring, &req, now, source)
    }

    /// Judges an access token whose signature and expiry were verified.
    pub fn authenticate_token(
        &self,
        claims: &AccessClaims,
        now: Timestamp,
        source: IpAddr,
    ) -> Result<Principal, Refusal> {
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        let key = snap.keys.get(&KeyId::from_trusted(claims.client_id.clone()));
        authn::judge_token(key.map(AsRef::as_ref), claims, now, source)
    }

    /// Judges a key that proved itself earlier (a browser session): it must still be usable now.
    pub fn authenticate_session(
        &self,
        id: &KeyId,
        secret_version: &str,
        now: Timestamp,
        source: IpAddr,
    ) -> Result<Principal, Refusal> {
        let snap = self.snapshot.read().map_err(|_| Refusal::anonymous(AuthFailure::InvalidCredentials))?;
        authn::judge_session(snap.keys.get(id).map(AsRef::as_ref), secret_version, now, source)
    }
}

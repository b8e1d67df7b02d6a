//! The token signing keys: generated once, kept encrypted under the master
//! key in the store, rotated with the old public key still published until
//! the last token it signed has expired.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keyward_core::Conflict;
use keyward_core::clock::Timestamp;
use keyward_core::crypto::Keyring;
use keyward_core::key::REAUTH_RANGE;
use keyward_core::store::{Store, StoreError};
use keyward_core::token::VerifyingKey;
use keyward_core::token::{TokenSigner, jwk};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

const META: &str = "token_signing_keys";
const AAD: &[u8] = b"token-signing-key";

/// How long a retired key stays published: the longest token lifetime, plus a minute of skew.
fn publish_after_retirement() -> chrono::Duration {
    chrono::Duration::seconds(*REAUTH_RANGE.end() + 60)
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredKey {
    kid: String,
    created_at: i64,
    retired_at: Option<i64>,
    /// The Ed25519 seed, encrypted under the master key.
    seed: String,
}

struct LiveKey {
    signer: TokenSigner,
    retired_at: Option<i64>,
}

/// The signing keys in memory.
pub struct TokenKeys {
    keys: RwLock<Vec<LiveKey>>,
    keyring: Arc<Keyring>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("token signing keys: {what}"))
}

impl TokenKeys {
    /// Loads the keys, creating the first one at first start.
    pub async fn load(store: &dyn Store, keyring: Arc<Keyring>, now: Timestamp) -> Result<Self, StoreError> {
        let first = vec![Self::new_stored(&keyring, now)];
        let text = store.init_meta(META, &serde_json::to_string(&first).unwrap_or_default()).await?;
        let this = Self { keys: RwLock::new(Vec::new()), keyring };
        this.install(&text)?;
        Ok(this)
    }

    fn new_stored(keyring: &Keyring, now: Timestamp) -> StoredKey {
        let signer = TokenSigner::generate();
        StoredKey {
            kid: signer.kid.clone(),
            created_at: now.timestamp(),
            retired_at: None,
            seed: B64.encode(keyring.encrypt(AAD, &signer.seed())),
        }
    }

    fn install(&self, text: &str) -> Result<(), StoreError> {
        let stored: Vec<StoredKey> = serde_json::from_str(text).map_err(|_| corrupt("not valid JSON"))?;
        let mut live = Vec::with_capacity(stored.len());
        for k in stored {
            let sealed = B64.decode(&k.seed).map_err(|_| corrupt("bad encoding"))?;
            let seed: [u8; 32] = self
                .keyring
                .decrypt(AAD, &sealed)
                .map_err(|_| corrupt("cannot decrypt (another master key?)"))?
                .try_into()
                .map_err(|_| corrupt("bad seed length"))?;
            live.push(LiveKey { signer: TokenSigner::from_seed(k.kid, seed), retired_at: k.retired_at });
        }
        if !live.iter().any(|k| k.retired_at.is_none()) {
            return Err(corrupt("no active key"));
        }
        *self.keys.write().map_err(|_| corrupt("lock poisoned"))? = live;
        Ok(())
    }

    /// Signs with the active key.
    pub fn sign(&self, claims: &keyward_core::token::AccessClaims) -> Option<String> {
        let keys = self.keys.read().ok()?;
        keys.iter().rev().find(|k| k.retired_at.is_none()).map(|k| k.signer.sign(claims))
    }

    /// The public key for `kid`, while it is published.
    pub fn verifying_key(&self, kid: &str, now: Timestamp) -> Option<VerifyingKey> {
        let keys = self.keys.read().ok()?;
        keys.iter().find(|k| k.signer.kid == kid && is_published(k.retired_at, now)).map(|k| k.signer.verifying_key())
    }

    /// The JWKS document.
    pub fn jwks(&self, now: Timestamp) -> serde_json::Value {
        let keys = self.keys.read().map(|keys| {
            keys.iter()
                .rev()
                .filter(|k| is_published(k.retired_at, now))
                .map(|k| jwk(&k.signer.kid, &k.signer.verifying_key()))
                .collect::<Vec<_>>()
        });
        serde_json::json!({"keys": keys.unwrap_or_default()})
    }

    /// Retires the active key and starts a new one; returns the new key's id.
    pub async fn rotate(&self, store: &dyn Store, now: Timestamp) -> Result<String, StoreError> {
        let current = store.get_meta(META).await?.ok_or_else(|| corrupt("missing"))?;
        let mut stored: Vec<StoredKey> = serde_json::from_str(&current).map_err(|_| corrupt("not valid JSON"))?;
        for k in &mut stored {
            k.retired_at.get_or_insert(now.timestamp());
        }
        // Keys no longer published are dropped for good.
        stored.retain(|k| is_published(k.retired_at, now));
        let fresh = Self::new_stored(&self.keyring, now);
        let kid = fresh.kid.clone();
        stored.push(fresh);
        let text = serde_json::to_string(&stored).map_err(|_| corrupt("cannot encode"))?;
        if !store.swap_meta(META, &current, &text).await? {
            return Err(StoreError::Conflict(Conflict::ConcurrentRotation));
        }
        self.install(&text)?;
        Ok(kid)
    }
}

fn is_published(retired_at: Option<i64>, now: Timestamp) -> bool {
    retired_at.is_none_or(|r| now.timestamp() < r + publish_after_retirement().num_seconds())
}

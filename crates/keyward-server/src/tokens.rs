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
use keyward_core::token::{AccessClaims, TokenError, TokenSigner, jwk};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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

/// Tokens whose signature was checked, at most this many (about 1 KB each).
pub const VERIFIED_TOKENS: usize = 10_000;

/// The signing keys in memory.
pub struct TokenKeys {
    keys: RwLock<Vec<LiveKey>>,
    keyring: Arc<Keyring>,
    /// SHA-256 of a token whose signature and issuer were checked → its claims. A hit
    /// skips the Ed25519 check only: `exp` is checked on every use, and the key's state
    /// by the caller. A token outlives no key it was signed with: a retired key stays
    /// published for the longest token lifetime.
    verified: RwLock<HashMap<[u8; 32], Arc<AccessClaims>>>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("token signing keys: {what}"))
}

impl TokenKeys {
    /// Loads the keys, creating the first one at first start.
    pub async fn load(store: &dyn Store, keyring: Arc<Keyring>, now: Timestamp) -> Result<Self, StoreError> {
        let first = vec![Self::new_stored(&keyring, now)];
        let text = store.init_meta(META, &serde_json::to_string(&first).unwrap_or_default()).await?;
        let this = Self { keys: RwLock::new(Vec::new()), keyring, verified: RwLock::default() };
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

    /// Verifies an access token (signature, issuer, `exp`), checking each token's
    /// signature once while it is remembered.
    pub fn verify(&self, token: &str, issuer: &str, now: Timestamp) -> Result<Arc<AccessClaims>, TokenError> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.verified.read().ok().and_then(|v| v.get(&hash).cloned());
        let claims = match known {
            Some(claims) if now.timestamp() < claims.exp => return Ok(claims),
            Some(_) => return Err(TokenError::Expired),
            None => Arc::new(keyward_core::token::verify(token, |kid| self.verifying_key(kid, now), issuer, now)?),
        };
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= VERIFIED_TOKENS {
                verified.retain(|_, c| now.timestamp() < c.exp);
            }
            // Still full of live tokens: start afresh rather than track recency on the hot path.
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
            verified.insert(hash, Arc::clone(&claims));
        }
        Ok(claims)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use keyward_core::crypto::MasterKey;

    const ISSUER: &str = "http://keyward.test";

    fn keys() -> TokenKeys {
        let signer = TokenSigner::generate();
        TokenKeys {
            keys: RwLock::new(vec![LiveKey { signer, retired_at: None }]),
            keyring: Arc::new(Keyring::new(&MasterKey::generate())),
            verified: RwLock::default(),
        }
    }

    fn claims(jti: &str, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            sub: "usr_1".into(),
            aud: ISSUER.into(),
            client_id: "kw_1".into(),
            iat: 1_000,
            exp,
            jti: jti.into(),
            scope: "keyward:keys:read".into(),
            org_id: "org_1".into(),
            sv: "abcd".into(),
            kep: 0,
            uep: 0,
        }
    }

    fn at(secs: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn a_token_is_checked_once_and_its_expiry_every_time() {
        let keys = keys();
        let token = keys.sign(&claims("j1", 2_000)).unwrap();
        assert_eq!(keys.verify(&token, ISSUER, at(1_500)).unwrap().jti, "j1");
        assert_eq!(keys.verified.read().unwrap().len(), 1);
        assert_eq!(keys.verify(&token, ISSUER, at(1_999)).unwrap().jti, "j1");
        assert_eq!(keys.verify(&token, ISSUER, at(2_000)), Err(TokenError::Expired));
        // A token differing in one byte of its signature is a different token, checked in full.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(keys.verify(&forged, ISSUER, at(1_500)).is_err());
        // Nor is a token of another issuer remembered as valid.
        let other = keys.sign(&AccessClaims { iss: "http://elsewhere".into(), ..claims("j2", 2_000) }).unwrap();
        assert_eq!(keys.verify(&other, ISSUER, at(1_500)), Err(TokenError::WrongIssuer));
        assert_eq!(keys.verified.read().unwrap().len(), 1);
    }

    #[test]
    fn the_cache_is_bounded_and_drops_expired_tokens_first() {
        let keys = keys();
        let fill = |live: usize, exp_live: i64| {
            let mut v = keys.verified.write().unwrap();
            v.clear();
            for i in 0..VERIFIED_TOKENS {
                let exp = if i < live { exp_live } else { 1_200 };
                let hash: [u8; 32] = Sha256::digest(i.to_string()).into();
                v.insert(hash, Arc::new(claims(&i.to_string(), exp)));
            }
        };
        let token = keys.sign(&claims("new", 9_000)).unwrap();
        // Half expired: they go, the live half stays.
        fill(VERIFIED_TOKENS / 2, 9_000);
        keys.verify(&token, ISSUER, at(1_500)).unwrap();
        assert_eq!(keys.verified.read().unwrap().len(), VERIFIED_TOKENS / 2 + 1);
        // All live: the cache starts afresh rather than grow.
        fill(VERIFIED_TOKENS, 9_000);
        keys.verify(&token, ISSUER, at(1_500)).unwrap();
        assert_eq!(keys.verified.read().unwrap().len(), 1);
    }
}

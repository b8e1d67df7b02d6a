//! Access tokens: RFC 9068 JWTs signed with Ed25519 (`alg: EdDSA`), their
//! claims, and strict verification. Compact JWS is small enough to write
//! here exactly, with one algorithm and no header-driven choices.

use crate::clock::Timestamp;
use crate::crypto::SecretDigest;
use crate::model::KeyRecord;
use crate::permission::{Access, Permission, PermissionSet};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The key's owner.
    pub sub: String,
    pub aud: String,
    /// The key that bought the token.
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Space-separated permissions.
    pub scope: String,
    pub org_id: String,
    /// Which of the key's secrets bought it, so rolling the key revokes it.
    pub sv: String,
    /// The key's lock epoch when it was bought: a lock ends the token for good.
    #[serde(default)]
    pub kep: u32,
    /// The owner's disable epoch when it was bought: a disable ends the token for good.
    #[serde(default)]
    pub uep: u32,
}

impl AccessClaims {
    /// Whether no lock of the key and no disable of its owner came after the purchase.
    #[must_use]
    pub fn epochs_current(&self, key_epoch: u32, owner_epoch: u32) -> bool {
        self.kep == key_epoch && self.uep == owner_epoch
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// An Ed25519 signing key with its id.
pub struct TokenSigner {
    pub kid: String,
    key: SigningKey,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSigner({}, ***)", self.kid)
    }
}

impl TokenSigner {
    /// A new key from the OS CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        Self::from_seed(crate::secret::random_base62(16), crate::secret::random_bytes::<32>())
    }

    #[must_use]
    pub fn from_seed(kid: String, seed: [u8; 32]) -> Self {
        Self { kid, key: SigningKey::from_bytes(&seed) }
    }

    /// The 32-byte seed, to be stored encrypted.
    #[must_use]
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `claims` as a compact JWS with header `{"alg":"EdDSA","typ":"at+jwt","kid":…}`.
    #[must_use]
    pub fn sign(&self, claims: &AccessClaims) -> String {
        let header = Header { alg: "EdDSA".into(), typ: "at+jwt".into(), kid: self.kid.clone() };
        let header = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// The public half of a signing key, as published in the JWKS.
#[must_use]
pub fn jwk(kid: &str, key: &VerifyingKey) -> serde_json::Value {
    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(key.as_bytes()), "kid": kid, "alg": "EdDSA", "use": "sig"})
}

/// Why a requested scope gives no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A requested permission is not `<scope>:<resource>:read|write`.
    #[error("{0}")]
    Malformed(String),
    /// The key holds none of what was asked.
    #[error("the key holds none of the requested scope")]
    NoneHeld,
}

/// What a token may carry: all the key holds, or each requested permission down
/// to what the key holds of it (RFC 6749 §3.3: a scope narrows, never widens).
pub fn grant_scope(held: &PermissionSet, requested: Option<&str>) -> Result<PermissionSet, ScopeError> {
    let Some(scope) = requested else { return Ok(held.clone()) };
    let mut out = PermissionSet::default();
    for text in scope.split(' ').filter(|s| !s.is_empty()) {
        let p = Permission::parse(text, false).map_err(ScopeError::Malformed)?;
        for access in [Access::Write, Access::Read] {
            if access <= p.access && held.allows(&p.scope, &p.resource, access) {
                out.grant(&p.scope, &p.resource, access);
                break;
            }
        }
    }
    if out.is_empty() { Err(ScopeError::NoneHeld) } else { Ok(out) }
}

/// A token purchase that passed client authentication.
#[derive(Debug)]
pub struct Purchase<'a> {
    pub key: &'a KeyRecord,
    /// The digest of the secret that paid: the token lives as long as that secret is accepted.
    pub paid_with: &'a SecretDigest,
    pub granted: &'a PermissionSet,
    /// The service's public URL: `iss` and `aud`.
    pub issuer: &'a str,
    pub jti: String,
    /// The owner's disable epoch now (the key's lock epoch is on the key).
    pub owner_epoch: u32,
}

/// The claims of the token a purchase buys at `now`: it lives the key's
/// `reauth_timeout_s` and is tied to the secret that paid (the previous one in its
/// grace period, or the current one).
#[must_use]
pub fn claims_for(purchase: Purchase<'_>, now: Timestamp) -> AccessClaims {
    let key = purchase.key;
    let paid_with_previous = key
        .accepts_previous(now)
        .filter(|p| p.sealed.digest.ct_eq(purchase.paid_with))
        .map(|p| p.sealed.digest.version());
    AccessClaims {
        iss: purchase.issuer.to_owned(),
        sub: key.owner_id.to_string(),
        aud: purchase.issuer.to_owned(),
        client_id: key.id.to_string(),
        iat: now.timestamp(),
        exp: now.timestamp() + i64::from(key.reauth_timeout_s),
        jti: purchase.jti,
        scope: purchase.granted.to_strings().join(" "),
        org_id: key.org_id.to_string(),
        sv: paid_with_previous.unwrap_or_else(|| key.secret.digest.version()),
        kep: key.token_epoch,
        uep: purchase.owner_epoch,
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("the header is not alg EdDSA, typ at+jwt with a known kid")]
    BadHeader,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is for another issuer or audience")]
    WrongIssuer,
}

/// Whether a bearer value has the shape of a JWT rather than a key secret.
#[must_use]
pub fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|b| *b == b'.').count() == 2
}

/// Verifies a token's header, signature (by `kid`), expiry, issuer and audience.
pub fn verify(
    token: &str,
    key_for: impl Fn(&str) -> Option<VerifyingKey>,
    issuer: &str,
    now: Timestamp,
) -> Result<AccessClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let header: Header = serde_json::from_slice(&B64.decode(h).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    if header.alg != "EdDSA" || header.typ != "at+jwt" {
        return Err(TokenError::BadHeader);
    }
    let key = key_for(&header.kid).ok_or(TokenError::BadHeader)?;
    let sig: [u8; 64] =
        B64.decode(s).map_err(|_| TokenError::Malformed)?.try_into().map_err(|_| TokenError::Malformed)?;
    key.verify(format!("{h}.{p}").as_bytes(), &Signature::from_bytes(&sig)).map_err(|_| TokenError::BadSignature)?;
    let claims: AccessClaims = serde_json::from_slice(&B64.decode(p).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    if claims.iss != issuer || claims.aud != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if now.timestamp() >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://keyward.test".into(),
            sub: "usr_1".into(),
            aud: "http://keyward.test".into(),
            client_id: "kw_1".into(),
            iat: 1_000,
            exp,
            jti: "j".into(),
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
    fn a_signed_token_verifies_until_it_expires() {
        let signer = TokenSigner::generate();
        let vk = signer.verifying_key();
        let token = signer.sign(&claims(1_060));
        assert!(looks_like_jwt(&token));
        let lookup = |kid: &str| (kid == signer.kid).then_some(vk);
        assert_eq!(verify(&token, lookup, "http://keyward.test", at(1_059)).unwrap(), claims(1_060));
        assert_eq!(verify(&token, lookup, "http://keyward.test", at(1_060)), Err(TokenError::Expired));
        assert_eq!(verify(&token, lookup, "http://other", at(1_000)), Err(TokenError::WrongIssuer));
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": signer.kid}));
    }

    #[test]
    fn tampering_and_foreign_keys_are_refused() {
        let signer = TokenSigner::generate();
        let other = TokenSigner::generate();
        let token = signer.sign(&claims(2_000));
        let lookup = |_: &str| Some(other.verifying_key());
        assert_eq!(verify(&token, lookup, "http://keyward.test", at(1_000)), Err(TokenError::BadSignature));
        let own = |_: &str| Some(signer.verifying_key());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims(9_999);
        forged.scope = "keyward:keys:write".into();
        parts[1] = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(verify(&parts.join("."), own, "http://keyward.test", at(1_000)), Err(TokenError::BadSignature));
        let none = B64.encode(br#"{"alg":"none","typ":"at+jwt","kid":"x"}"#);
        parts[0] = none;
        assert_eq!(verify(&parts.join("."), own, "http://keyward.test", at(1_000)), Err(TokenError::BadHeader));
        assert_eq!(verify("a.b", own, "http://keyward.test", at(1_000)), Err(TokenError::Malformed));
    }

    #[test]
    fn a_requested_scope_narrows_and_never_widens() {
        let mut held = PermissionSet::default();
        held.grant("keyward", "keys", Access::Read);
        held.grant("orders", "invoices", Access::Write);
        let ask = |s: &str| grant_scope(&held, Some(s)).map(|p| p.to_strings());
        let table: [(&str, Result<Vec<&str>, ScopeError>); 5] = [
            ("keyward:keys:write", Ok(vec!["keyward:keys:read"])),
            ("orders:invoices:read", Ok(vec!["orders:invoices:read"])),
            ("keyward:users:read", Err(ScopeError::NoneHeld)),
            ("keyward:keys:read  orders:invoices:write", Ok(vec!["keyward:keys:read", "orders:invoices:write"])),
            ("keyward:users:read keyward:keys:read", Ok(vec!["keyward:keys:read"])),
        ];
        for (asked, expected) in table {
            let expected = expected.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(ask(asked), expected, "{asked}");
        }
        assert!(matches!(grant_scope(&held, Some("keys")), Err(ScopeError::Malformed(_))));
        assert_eq!(grant_scope(&held, None).unwrap(), held);
    }

    #[test]
    fn the_jwk_publishes_only_the_public_key() {
        let signer = TokenSigner::generate();
        let jwk = jwk(&signer.kid, &signer.verifying_key());
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(B64.decode(jwk["x"].as_str().unwrap()).unwrap(), signer.verifying_key().as_bytes());
        assert!(!jwk.to_string().contains(&B64.encode(signer.seed())));
        assert!(!format!("{signer:?}").contains(&B64.encode(signer.seed())));
    }
}

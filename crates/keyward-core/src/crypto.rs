//! The master key and what is derived from it: the keyed digest that finds a
//! key by its secret, and the AEAD that keeps secrets recoverable for Hawk.

use crate::secret::{Secret, random_bytes};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The 256-bit master key under which all secrets are kept.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl MasterKey {
    #[must_use]
    pub fn generate() -> Self {
        Self(SecretBox::new(Box::new(random_bytes::<32>())))
    }

    /// Parses 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        use base64::Engine;
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "not hex")?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| "must be 64 hex digits or base64 of 32 bytes")?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| "must be exactly 32 bytes (256 bits)")?;
        Ok(Self(SecretBox::new(Box::new(arr))))
    }

    /// The key as 64 hex digits, for the 0600 key file.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.expose_secret().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(b"keyward/v1"), self.0.expose_secret());
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
        let _ = hk.expand(purpose, &mut out);
        out
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// A keyed SHA-256 digest of a secret: the lookup handle stored instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    /// A short, public tag of which secret this is (64 bits of a keyed digest reveal nothing of the secret).
    #[must_use]
    pub fn version(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Constant-time equality, for comparing a presented secret with the stored one.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(***)")
    }
}

/// What is stored for one secret: its digest and its ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub digest: SecretDigest,
    /// 24-byte nonce followed by the XChaCha20-Poly1305 ciphertext, bound to the key id.
    pub ciphertext: Vec<u8>,
}

/// Subkeys derived from the master key.
pub struct Keyring {
    digest_key: SecretBox<[u8; 32]>,
    aead: XChaCha20Poly1305,
    check: [u8; 32],
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(***)")
    }
}

/// Decryption failed: wrong master key or tampered data.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret could not be decrypted")]
pub struct DecryptError;

impl Keyring {
    #[must_use]
    pub fn new(master: &MasterKey) -> Self {
        let enc = master.derive(b"secret-encryption");
        Self {
            digest_key: SecretBox::new(Box::new(master.derive(b"secret-digest"))),
            aead: XChaCha20Poly1305::new((&enc).into()),
            check: master.derive(b"master-key-check"),
        }
    }

    /// A value stored at first start; a different master key yields a different value.
    #[must_use]
    pub fn check_value(&self) -> String {
        self.check.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `stored` was made by this master key (constant time).
    #[must_use]
    pub fn matches_check_value(&self, stored: &str) -> bool {
        self.check_value().as_bytes().ct_eq(stored.as_bytes()).into()
    }

    /// The keyed digest of a secret, used to find and to check it.
    #[must_use]
    pub fn digest(&self, secret: &Secret) -> SecretDigest {
        // HMAC accepts keys of any length.
        let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(self.digest_key.expose_secret()) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(secret.expose().as_bytes());
        SecretDigest(mac.finalize().into_bytes().into())
    }

    /// Digest and ciphertext of a secret, bound to the id of the key it belongs to.
    #[must_use]
    pub fn seal(&self, key_id: &str, secret: &Secret) -> SealedSecret {
        SealedSecret {
            digest: self.digest(secret),
            ciphertext: self.encrypt(key_id.as_bytes(), secret.expose().as_bytes()),
        }
    }

    /// Encrypts `plain` under the master key, bound to `aad`: a 24-byte nonce, then the ciphertext.
    #[must_use]
    pub fn encrypt(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = random_bytes::<24>();
        // Encryption with a valid key and nonce length only fails on absurd message sizes.
        let ct = self.aead.encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad }).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`Keyring::encrypt`] made with the same `aad`.
    pub fn decrypt(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, DecryptError> {
        if sealed.len() < 24 {
            return Err(DecryptError);
        }
        let (nonce, ct) = sealed.split_at(24);
        self.aead.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| DecryptError)
    }

    /// Recovers a secret (needed to check Hawk MACs).
    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<Secret, DecryptError> {
        let plain = self.decrypt(key_id.as_bytes(), sealed)?;
        String::from_utf8(plain).map(Secret::from_presented).map_err(|_| DecryptError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_bound_to_the_key_id() {
        let ring = Keyring::new(&MasterKey::generate());
        let s = Secret::generate();
        let sealed = ring.seal("kw_a", &s);
        assert_eq!(ring.open("kw_a", &sealed.ciphertext).unwrap().expose(), s.expose());
        assert!(ring.open("kw_b", &sealed.ciphertext).is_err(), "ciphertext moved to another key");
        assert!(!sealed.ciphertext.windows(10).any(|w| w == &s.expose().as_bytes()[4..14]));
    }

    #[test]
    fn digests_depend_on_the_master_key() {
        let s = Secret::generate();
        let a = Keyring::new(&MasterKey::generate());
        let b = Keyring::new(&MasterKey::generate());
        assert!(a.digest(&s).ct_eq(&a.digest(&s)));
        assert!(!a.digest(&s).ct_eq(&b.digest(&s)));
        assert!(!a.matches_check_value(&b.check_value()));
        assert!(a.matches_check_value(&a.check_value()));
    }

    #[test]
    fn master_key_parses_hex_and_base64() {
        let k = MasterKey::generate();
        let hex = k.to_hex();
        let again = MasterKey::parse(&hex).unwrap();
        assert_eq!(Keyring::new(&k).check_value(), Keyring::new(&again).check_value());
        assert!(MasterKey::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_ok());
        assert!(MasterKey::parse("too short").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(***)");
    }
}

//! People's console passwords: the policy a new password must meet, and argon2id
//! hashing with OWASP's current parameters (19 MiB, 2 passes, 1 lane).

use crate::CoreError;
use crate::secret::random_base62;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted (NIST SP 800-63B asks for at least 8; 12 leaves margin).
pub const MIN_LEN: usize = 12;
/// The longest accepted, which bounds the hashing work one request can ask for.
pub const MAX_LEN: usize = 128;
/// Length of a generated one-time password (base62, about 119 bits).
pub const ONE_TIME_LEN: usize = 20;

/// A password as typed: never printed by `Debug`, never serialized.
pub struct Password(String);

impl Password {
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// A random one-time password, shown once to the person it is for.
    #[must_use]
    pub fn generate() -> Self {
        Self(random_base62(ONE_TIME_LEN))
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Checks a new password against the policy: length, and not the email it signs in with.
pub fn check_policy(new: &Password, email: Option<&str>) -> Result<(), CoreError> {
    let len = new.0.chars().count();
    if len < MIN_LEN {
        return Err(CoreError::field("password", format!("must be at least {MIN_LEN} characters")));
    }
    if len > MAX_LEN {
        return Err(CoreError::field("password", format!("must be at most {MAX_LEN} characters")));
    }
    if email.is_some_and(|e| e.eq_ignore_ascii_case(new.0.trim())) {
        return Err(CoreError::field("password", "must not be your email address"));
    }
    Ok(())
}

fn hasher() -> Result<Argon2<'static>, CoreError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The argon2id PHC string of `password`, under a fresh random salt.
pub fn hash(password: &Password) -> Result<String, CoreError> {
    let mut salt = [0u8; 16];
    crate::secret::os_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| CoreError::Internal(e.to_string()))?;
    hasher()?
        .hash_password(password.0.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(e.to_string()))
}

/// Whether `password` matches the stored PHC string (a malformed one matches nothing).
#[must_use]
pub fn verify(password: &Password, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    hasher().is_ok_and(|h| h.verify_password(password.0.as_bytes(), &parsed).is_ok())
}

/// A PHC string that matches no password, verified when the account is unknown so that
/// a wrong email takes as long as a wrong password.
pub fn decoy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$K3qJ0Xa0d1H5h1m9m0mC9b6z0y8T7X1v0i8oS3dYc2E"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_owasp_parameters_and_verifies() {
        let pw = Password::new("correct horse battery");
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&pw, &h));
        assert!(!verify(&Password::new("correct horse batterz"), &h));
        assert!(!verify(&pw, "not a hash"));
        assert!(PasswordHash::new(decoy_hash()).is_ok() && !verify(&pw, decoy_hash()));
        assert_ne!(hash(&pw).unwrap(), h, "fresh salt each time");
    }

    #[test]
    fn the_policy_refuses_short_long_and_email_passwords() {
        assert!(check_policy(&Password::new("short"), None).is_err());
        assert!(check_policy(&Password::new("x".repeat(129)), None).is_err());
        assert!(check_policy(&Password::new("admin@localhost"), Some("Admin@Localhost")).is_err());
        assert!(check_policy(&Password::new("twelve chars"), Some("a@b")).is_ok());
        assert_eq!(format!("{:?}", Password::new("hunter2hunter2")), "Password(***)");
        assert_eq!(Password::generate().expose().len(), ONE_TIME_LEN);
    }
}

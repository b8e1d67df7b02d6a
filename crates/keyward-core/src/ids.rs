//! Identifier newtypes, so a key id can never stand where a user id is meant.

use crate::secret::random_base62;
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random identifier from the OS CSPRNG.
            #[must_use]
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_base62(22)))
            }

            /// Wraps an identifier read back from the store, which only holds valid ones.
            #[must_use]
            pub fn from_trusted(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// An API key's public id: `kw_…` or one the caller chose.
    KeyId, "kw_"
);
id_type!(
    /// A user (person or machine identity).
    UserId, "usr_"
);
id_type!(
    /// An organization.
    OrgId, "org_"
);
id_type!(
    /// A role; built-in roles use their names as ids.
    RoleId, "role_"
);

/// Whether `s` is a valid caller-chosen id: `[A-Za-z0-9_.-]{3,64}`.
#[must_use]
pub fn is_valid_custom_id(s: &str) -> bool {
    (3..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl KeyId {
    /// Parses a caller-chosen key id.
    pub fn parse(s: &str) -> Result<Self, String> {
        if is_valid_custom_id(s) { Ok(Self(s.to_owned())) } else { Err("must match [A-Za-z0-9_.-]{3,64}".to_owned()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_ids_have_prefix_and_22_base62_chars() {
        let id = KeyId::generate();
        let rest = id.as_str().strip_prefix("kw_").unwrap();
        assert_eq!(rest.len(), 22);
        assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(is_valid_custom_id(id.as_str()));
    }

    #[test]
    fn custom_ids_follow_the_pattern() {
        for ok in ["abc", "svc.billing-1_A", &"a".repeat(64)] {
            assert!(KeyId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "", "has space", "colon:no", "é-x", &"a".repeat(65), "slash/x"] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Why a write was refused as conflicting with the stored state, as a type: the
//! server turns each variant into its API code, so no code matches on a string.

use std::fmt;

/// A uniqueness rule, a limit or a concurrent change that refused a write.
/// `Display` is the detail a client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("a key with this id already exists")]
    KeyIdTaken,
    #[error("another key already uses this secret")]
    SecretInUse,
    #[error("a role with this name already exists")]
    RoleNameTaken,
    #[error("a scope with this name already exists")]
    ScopeExists,
    #[error("{0}")]
    KeyLimitReached(KeyLimit),
    /// The key changed between its read and this write; reading again and retrying is safe.
    #[error("the key was changed meanwhile; read it again and retry")]
    ConcurrentUpdate,
    /// Another instance rotated the token signing keys first.
    #[error("the keys were rotated meanwhile")]
    ConcurrentRotation,
    #[error("the owner is disabled")]
    UserDisabled,
    #[error("you cannot {0} yourself")]
    CannotChangeSelf(SelfChange),
    /// Built-in roles cannot be changed or deleted.
    #[error("`{role}` is a built-in role")]
    RoleBuiltin { role: String },
}

/// The key cap an owner reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLimit {
    /// The org's `max_keys_per_user`.
    PerUser { max: u32 },
    /// A role's cap on keys per holder; the role is named by name, as people know it.
    PerRole { role: String, max: u32 },
}

impl fmt::Display for KeyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyLimit::PerUser { max } => write!(f, "the owner already has the maximum of {max} keys"),
            KeyLimit::PerRole { role, max } => {
                let keys = if *max == 1 { "key" } else { "keys" };
                write!(f, "role `{role}` allows at most {max} {keys} per holder")
            }
        }
    }
}

/// A change a user may not make to their own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfChange {
    Disable,
    Delete,
}

impl fmt::Display for SelfChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SelfChange::Disable => "disable",
            SelfChange::Delete => "delete",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_read_as_before() {
        let cases = [
            (Conflict::KeyLimitReached(KeyLimit::PerUser { max: 3 }), "the owner already has the maximum of 3 keys"),
            (
                Conflict::KeyLimitReached(KeyLimit::PerRole { role: "deploy".into(), max: 1 }),
                "role `deploy` allows at most 1 key per holder",
            ),
            (
                Conflict::KeyLimitReached(KeyLimit::PerRole { role: "deploy".into(), max: 2 }),
                "role `deploy` allows at most 2 keys per holder",
            ),
            (Conflict::CannotChangeSelf(SelfChange::Disable), "you cannot disable yourself"),
            (Conflict::CannotChangeSelf(SelfChange::Delete), "you cannot delete yourself"),
            (Conflict::RoleBuiltin { role: "auditor".into() }, "`auditor` is a built-in role"),
        ];
        for (conflict, detail) in cases {
            assert_eq!(conflict.to_string(), detail);
        }
    }
}

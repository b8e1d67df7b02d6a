//! Implementations of `keyward_core::store::Store`, one module per backend.

pub mod sqlite;

use keyward_core::Conflict;
use keyward_core::store::StoreError;

/// Maps a driver error to the store's error, naming the constraint where one was hit.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let msg = db.message();
        let conflict = if msg.contains("keys.id") || db.constraint() == Some("keys_pkey") {
            Some(Conflict::KeyIdTaken)
        } else if msg.contains("keys.secret_digest") || db.constraint() == Some("keys_secret_digest_unique") {
            Some(Conflict::SecretInUse)
        } else if msg.contains("roles.org_id, roles.name") || db.constraint() == Some("roles_name_unique") {
            Some(Conflict::RoleNameTaken)
        } else if msg.contains("scopes.org_id, scopes.name") || db.constraint() == Some("scopes_pkey") {
            Some(Conflict::ScopeExists)
        } else {
            None
        };
        if let Some(conflict) = conflict {
            return StoreError::Conflict(conflict);
        }
    }
    StoreError::Backend(e.to_string())
}

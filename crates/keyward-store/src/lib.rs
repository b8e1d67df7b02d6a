//! Implementations of `keyward_core::store::Store`, one module per backend.

pub mod postgres;
mod rows;
pub mod sqlite;

use keyward_core::Conflict;
use keyward_core::store::StoreError;

/// Maps a driver error to the store's error, naming the constraint where one was hit.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        // SQLite names the columns in its message; PostgreSQL names the constraint.
        let msg = db.message();
        let named = if msg.contains("keys.id") {
            Some("keys_pkey")
        } else if msg.contains("keys.secret_digest") {
            Some("keys_secret_digest_unique")
        } else if msg.contains("roles.org_id, roles.name") {
            Some("roles_name_unique")
        } else if msg.contains("scopes.org_id, scopes.name") {
            Some("scopes_pkey")
        } else {
            db.constraint()
        };
        if let Some(conflict) = named.and_then(constraint_conflict) {
            return conflict;
        }
    }
    StoreError::Backend(e.to_string())
}

/// The conflict a violated constraint stands for, by the constraint's name (the same in both schemas).
pub(crate) fn constraint_conflict(constraint: &str) -> Option<StoreError> {
    let conflict = match constraint {
        "keys_pkey" => Conflict::KeyIdTaken,
        "keys_secret_digest_unique" => Conflict::SecretInUse,
        "roles_name_unique" => Conflict::RoleNameTaken,
        "scopes_pkey" => Conflict::ScopeExists,
        _ => return None,
    };
    Some(StoreError::Conflict(conflict))
}

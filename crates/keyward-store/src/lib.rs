//! Implementations of `keyward_core::store::Store`, one module per backend.

pub mod sqlite;

use keyward_core::store::StoreError;

/// Maps a driver error to the store's error, naming the constraint where one was hit.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let msg = db.message();
        if msg.contains("keys.id") || db.constraint() == Some("keys_pkey") {
            return StoreError::Conflict { code: "key_id_taken", detail: "a key with this id already exists".into() };
        }
        if msg.contains("keys.secret_digest") || db.constraint() == Some("keys_secret_digest_unique") {
            return StoreError::Conflict {
                code: "secret_in_use",
                detail: "another key already uses this secret".into(),
            };
        }
        if msg.contains("roles.org_id, roles.name") || db.constraint() == Some("roles_name_unique") {
            return StoreError::Conflict {
                code: "role_name_taken",
                detail: "a role with this name already exists".into(),
            };
        }
        if msg.contains("scopes.org_id, scopes.name") || db.constraint() == Some("scopes_pkey") {
            return StoreError::Conflict {
                code: "scope_exists",
                detail: "a scope with this name already exists".into(),
            };
        }
    }
    StoreError::Backend(e.to_string())
}

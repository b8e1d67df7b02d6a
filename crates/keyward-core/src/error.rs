//! The domain's error types; the server maps each variant to a problem document. A leaf
//! module (it uses only the conflict kinds), so the store, key rules and input helpers can
//! all use it without depending on each other.

use crate::conflict::Conflict;

/// One rejected input field, named as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule, limit or concurrent change refused the write.
    #[error(transparent)]
    Conflict(Conflict),
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("the store failed: {0}")]
    Backend(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

/// Why a domain operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error(transparent)]
    Conflict(Conflict),
    #[error("{detail}")]
    Forbidden { detail: String },
    #[error(transparent)]
    Store(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden { detail: detail.into() }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(c) => CoreError::Conflict(c),
            StoreError::NotFound { what } => CoreError::NotFound { what },
            other => CoreError::Store(other),
        }
    }
}

impl From<Conflict> for CoreError {
    fn from(c: Conflict) -> Self {
        CoreError::Conflict(c)
    }
}

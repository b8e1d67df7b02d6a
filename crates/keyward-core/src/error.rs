//! The domain's error type; the server maps each variant to a problem document.

use crate::conflict::Conflict;
use crate::store::StoreError;

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

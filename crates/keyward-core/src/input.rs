//! Helpers for turning request input into domain values: collecting every
//! field problem at once, and telling an absent field from an explicit `null`.

use crate::error::{CoreError, FieldError};
use serde::{Deserialize, Deserializer};

/// Every field problem of one request, so the client sees them all at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `value` if nothing was wrong, else a validation error naming every field.
    pub fn finish<T>(self, value: T) -> Result<T, CoreError> {
        if self.0.is_empty() { Ok(value) } else { Err(CoreError::Validation(self.0)) }
    }
}

/// For `#[serde(default, deserialize_with = "double_option")]`: absent is
/// `None`, `null` is `Some(None)`.
pub fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

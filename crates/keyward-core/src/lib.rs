//! Keyward's domain: identifiers, secrets, keys and their rules, permissions,
//! the authorization policy and the storage interface. No I/O happens here;
//! time is always passed in.

pub mod admin;
pub mod audit;
pub mod authn;
pub mod clock;
pub mod conflict;
pub mod crypto;
pub mod error;
pub mod hawk;
pub mod ids;
pub mod input;
pub mod key;
pub mod model;
pub mod password;
pub mod permission;
pub mod policy;
pub mod secret;
pub mod store;
pub mod token;

pub use conflict::Conflict;
pub use error::{CoreError, FieldError};

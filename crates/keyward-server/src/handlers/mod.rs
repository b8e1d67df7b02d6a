//! Request handlers, one module per resource.

pub mod audit;
pub mod keys;
pub mod me;
pub mod oauth;
pub mod ops;
pub mod orgs;
pub mod roles;
pub mod scopes;
pub mod sessions;
pub mod users;
pub mod verify;

//! Request handlers, one module per resource.

pub mod keys;
pub mod me;
pub mod ops;
pub mod orgs;

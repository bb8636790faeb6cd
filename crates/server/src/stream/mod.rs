//! Server-pushed event stream for remote integrations (issue 11): a pure work-sharing core;
//! the HTTP shell is not wired yet.

#[allow(dead_code)]
pub mod core;

//! Server-pushed `.triggered` events for remote integrations (issue 11): a pure work-sharing
//! core (`core`) and its I/O shell (`shell`: one task fed by the bus, connections and acks),
//! served by `api::stream`.

pub mod core;
pub mod shell;

pub use shell::{Connection, StreamHandle};

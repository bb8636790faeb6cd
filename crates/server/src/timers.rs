//! The engine's timers live in the engine and the writer's loop (`writer.rs`); only the clock's
//! old path is left here.

// transitional: removed once the built-ins moved (they import `crate::timers::now_ms`).
pub use crate::clock::now_ms;

//! Transports for committed events beyond the dispatcher: NATS JetStream (`--nats-url`).
pub mod jetstream;

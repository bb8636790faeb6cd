//! Transports for committed events beyond the dispatcher: NATS JetStream (`--nats-url`), out
//! (`jetstream`: publishing from the NATS outbox) and in (`ingest`: integrations' events).
pub mod ingest;
pub mod jetstream;

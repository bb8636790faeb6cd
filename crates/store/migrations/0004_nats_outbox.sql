-- Events waiting to be published to NATS JetStream (only written with `--nats-url`). Separate
-- from the push outbox so push delivery is unchanged; `seq` is the event's commit order, the
-- order the publisher sends them in. A row goes once JetStream acked the publish.
CREATE TABLE nats_outbox (
    event_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
CREATE INDEX nats_outbox_seq ON nats_outbox (seq);

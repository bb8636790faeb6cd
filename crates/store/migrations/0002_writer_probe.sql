-- One row the writer rewrites to learn whether the database takes writes again after a failed
-- commit (a full disk, say), so it recovers and reports ready without waiting for traffic.
CREATE TABLE writer_probe (
    id BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL
);

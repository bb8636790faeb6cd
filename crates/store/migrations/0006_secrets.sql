-- keptn's secret-service secrets. Names and keys are listed by the API, so they are stored
-- plain (`key_names` is a JSON array of strings); the values are one sealed blob (base64 of the
-- server's ChaCha20-Poly1305 sealing of the JSON object of values) that only the server opens.
CREATE TABLE secrets (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    key_names TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);

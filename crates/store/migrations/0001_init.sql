-- Portable between SQLite and PostgreSQL: TEXT, BIGINT, JSON as TEXT, times as BIGINT ms.
-- Statements are split on ';' by the migrator: no ';' inside statements or comments.

CREATE TABLE projects (
    name TEXT PRIMARY KEY,
    shipyard TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    git_credentials TEXT NULL
);

CREATE TABLE services (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (project, name)
);

CREATE TABLE service_stage (
    project TEXT NOT NULL,
    stage TEXT NOT NULL,
    service TEXT NOT NULL,
    deployed_image TEXT NULL,
    PRIMARY KEY (project, stage, service)
);

-- The project view's lastEventTypes: one row per (service in a stage, event type), so that
-- recording an event is a single upsert.
CREATE TABLE last_events (
    project TEXT NOT NULL,
    stage TEXT NOT NULL,
    service TEXT NOT NULL,
    ty TEXT NOT NULL,
    event_id TEXT NOT NULL,
    context TEXT NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (project, stage, service, ty)
);

CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ty TEXT NOT NULL,
    project TEXT NOT NULL,
    stage TEXT NOT NULL,
    service TEXT NOT NULL,
    context TEXT NOT NULL,
    source TEXT NOT NULL,
    triggeredid TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_project_seq ON events (project, seq);
CREATE INDEX events_context_seq ON events (context, seq);
CREATE INDEX events_ty_seq ON events (ty, seq);
CREATE INDEX events_time ON events (time_ms, seq);

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    stage TEXT NOT NULL,
    service TEXT NOT NULL,
    context TEXT NOT NULL,
    sequence TEXT NOT NULL,
    state TEXT NOT NULL,
    triggered_ms BIGINT NOT NULL,
    done BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX executions_open ON executions (done, triggered_ms);
CREATE INDEX executions_project ON executions (project, triggered_ms);
CREATE INDEX executions_context ON executions (project, context, triggered_ms);

CREATE TABLE pause_markers (
    id BIGINT PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE outbox (
    event_id TEXT PRIMARY KEY,
    due_ms BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (due_ms);

CREATE TABLE open_triggered (
    event_id TEXT PRIMARY KEY,
    ty TEXT NOT NULL,
    project TEXT NOT NULL,
    stage TEXT NOT NULL,
    service TEXT NOT NULL,
    due_ms BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX open_triggered_ty_seq ON open_triggered (ty, seq);
CREATE INDEX open_triggered_project ON open_triggered (project);

CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE logs (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX logs_integration_time ON logs (integration_id, time_ms);
CREATE INDEX logs_time ON logs (time_ms);

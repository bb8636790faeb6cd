-- Lighthouse's comparison query (and keptn's datastore by type with a stage and service filter)
-- asks for the newest evaluation.finished of one service: by type, project, stage and service,
-- newest first. Without this index it walked the project's events of the type and read each
-- row to test its stage and service.
CREATE INDEX events_ty_service_time ON events (ty, project, stage, service, time_ms, seq);

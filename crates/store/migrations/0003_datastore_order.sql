-- The datastore lists events newest first (time_ms desc, seq desc) by project, by context or by
-- type and project. Indexes in that order let a page read only its own rows (keyset paging),
-- whatever the history's size.
DROP INDEX events_project_seq;
DROP INDEX events_ty_seq;
CREATE INDEX events_project_time ON events (project, time_ms, seq);
CREATE INDEX events_context_time ON events (context, time_ms, seq);
CREATE INDEX events_ty_project_time ON events (ty, project, time_ms, seq);

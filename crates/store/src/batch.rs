//! One writer batch as plain data, applied with a handful of multi-row statements.
//!
//! The writer collects everything a batch of inputs changes (events, views, executions,
//! outbox, open `.triggered`) here; `Tx::apply` then writes it in one transaction. Keys are
//! coalesced (last write wins), so a row is written once per batch however often it changed.

use crate::sql::Sql;
use crate::{StoreError, Tx, to_json};
use keptn_engine::{Execution, PauseMarker};
use keptn_formats::KeptnEvent;
use std::collections::{BTreeMap, HashSet};

/// Rows per multi-row statement: well inside SQLite's and PostgreSQL's parameter limits.
const CHUNK: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScopeKey {
    pub project: String,
    pub stage: String,
    pub service: String,
}

#[derive(Debug, Clone)]
pub struct OpenRow {
    pub ty: String,
    pub scope: ScopeKey,
    pub due_ms: i64,
    pub seq: i64,
}

#[derive(Debug, Default)]
pub struct WriteBatch {
    /// (seq, event, time_ms); ids must be new (see `Tx::existing_event_ids`).
    pub events: Vec<(i64, KeptnEvent, i64)>,
    /// (scope, event type) → (event id, keptnContext, time)
    pub last_events: BTreeMap<(ScopeKey, String), (String, String, String)>,
    pub deployed_images: BTreeMap<ScopeKey, String>,
    pub executions: BTreeMap<String, Execution>,
    pub pause_markers: Option<Vec<PauseMarker>>,
    /// event id → due time
    pub outbox_add: BTreeMap<String, i64>,
    pub outbox_delete: Vec<String>,
    /// NATS outbox: (event id, seq) of committed events to publish; ids JetStream acked.
    pub nats_add: Vec<(String, i64)>,
    pub nats_delete: Vec<String>,
    /// event id → Some(open) or None (closed)
    pub open: BTreeMap<String, Option<OpenRow>>,
    /// (triggered event id, its type): closed only if the open row has that type, so an answer
    /// naming a sequence's own `.triggered` id cannot close it.
    pub close_typed: Vec<(String, String)>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.last_events.is_empty()
            && self.deployed_images.is_empty()
            && self.executions.is_empty()
            && self.pause_markers.is_none()
            && self.outbox_add.is_empty()
            && self.outbox_delete.is_empty()
            && self.nats_add.is_empty()
            && self.nats_delete.is_empty()
            && self.open.is_empty()
            && self.close_typed.is_empty()
    }
}

/// `rows` in pieces of at most `max`, the last ones of power-of-two sizes (13 = 8 + 4 + 1): a
/// multi-row statement then has only a few distinct texts, which the driver's statement cache
/// keeps prepared (preparing a new text each commit cost a tenth of the server's time).
fn pieces<T>(rows: &[T], max: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = rows;
    while rest.len() >= max {
        let (head, tail) = rest.split_at(max);
        out.push(head);
        rest = tail;
    }
    while !rest.is_empty() {
        let n = 1 << rest.len().ilog2();
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// Builds `INSERT INTO <head> VALUES (..), (..) <tail>` for one chunk of rows.
fn multi_insert<T>(head: &str, tail: &str, rows: &[T], mut bind: impl FnMut(&mut Sql, &T) -> Vec<String>) -> Sql {
    let mut sql = Sql::new(&format!("INSERT INTO {head} VALUES "));
    for (i, row) in rows.iter().enumerate() {
        let ps = bind(&mut sql, row);
        if i > 0 {
            sql.push(", ");
        }
        sql.push(&format!("({})", ps.join(", ")));
    }
    sql.push(" ");
    sql.push(tail);
    sql
}

impl Tx<'_> {
    /// Which of these event ids are already stored.
    pub async fn existing_event_ids(&mut self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        for chunk in pieces(ids, CHUNK * 4) {
            let mut sql = Sql::new("SELECT id FROM events WHERE 1 = 1");
            sql.in_list("id", chunk);
            for row in sql.fetch_all(&mut *self.tx).await? {
                found.insert(sqlx::Row::try_get::<String, _>(&row, 0)?);
            }
        }
        Ok(found)
    }

    pub async fn apply(&mut self, b: &WriteBatch) -> Result<(), StoreError> {
        for rows in pieces(&b.events, CHUNK) {
            let sql = multi_insert(
                "events (seq, id, ty, project, stage, service, context, source, triggeredid, time_ms, body)",
                "ON CONFLICT (id) DO NOTHING",
                rows,
                |s, (seq, ev, time_ms)| {
                    vec![
                        s.int(*seq),
                        s.str(&ev.id),
                        s.str(&ev.ty),
                        s.str(ev.project()),
                        s.str(ev.stage()),
                        s.str(ev.service()),
                        s.str(&ev.shkeptncontext),
                        s.str(&ev.source),
                        s.str(&ev.triggeredid),
                        s.int(*time_ms),
                        s.str(&to_json(ev)),
                    ]
                },
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        let last: Vec<_> = b.last_events.iter().collect();
        for rows in pieces(&last, CHUNK) {
            let sql = multi_insert(
                "last_events (project, stage, service, ty, event_id, context, time)",
                "ON CONFLICT (project, stage, service, ty) DO UPDATE SET event_id = excluded.event_id, \
                 context = excluded.context, time = excluded.time",
                rows,
                |s, ((k, ty), (id, ctx, time))| {
                    vec![
                        s.str(&k.project),
                        s.str(&k.stage),
                        s.str(&k.service),
                        s.str(ty),
                        s.str(id),
                        s.str(ctx),
                        s.str(time),
                    ]
                },
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        let images: Vec<_> = b.deployed_images.iter().collect();
        for rows in pieces(&images, CHUNK) {
            let sql = multi_insert(
                "service_stage (project, stage, service, deployed_image)",
                "ON CONFLICT (project, stage, service) DO UPDATE SET deployed_image = excluded.deployed_image",
                rows,
                |s, (k, image)| vec![s.str(&k.project), s.str(&k.stage), s.str(&k.service), s.str(image)],
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        let execs: Vec<_> = b.executions.values().collect();
        for rows in pieces(&execs, CHUNK) {
            let sql = multi_insert(
                "executions (id, project, stage, service, context, sequence, state, triggered_ms, done, body)",
                "ON CONFLICT (id) DO UPDATE SET project = excluded.project, stage = excluded.stage, \
                 service = excluded.service, context = excluded.context, sequence = excluded.sequence, \
                 state = excluded.state, triggered_ms = excluded.triggered_ms, done = excluded.done, body = excluded.body",
                rows,
                |s, e| {
                    vec![
                        s.str(&e.id),
                        s.str(&e.project),
                        s.str(&e.stage),
                        s.str(&e.service),
                        s.str(&e.context),
                        s.str(&e.sequence),
                        s.str(e.state.as_str()),
                        s.int(e.triggered_at),
                        s.int(i64::from(e.state.is_done())),
                        s.str(&to_json(e)),
                    ]
                },
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        if let Some(markers) = &b.pause_markers {
            self.save_pause_markers(markers).await?;
        }
        let outbox: Vec<_> = b.outbox_add.iter().collect();
        for rows in pieces(&outbox, CHUNK) {
            let sql = multi_insert(
                "outbox (event_id, due_ms)",
                "ON CONFLICT (event_id) DO UPDATE SET due_ms = excluded.due_ms",
                rows,
                |s, (id, due)| vec![s.str(id), s.int(**due)],
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        for ids in pieces(&b.outbox_delete, CHUNK * 4) {
            self.outbox_delete(ids).await?;
        }
        for rows in pieces(&b.nats_add, CHUNK) {
            let sql = multi_insert(
                "nats_outbox (event_id, seq)",
                "ON CONFLICT (event_id) DO NOTHING",
                rows,
                |s, (id, seq)| vec![s.str(id), s.int(*seq)],
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        for ids in pieces(&b.nats_delete, CHUNK * 4) {
            let mut sql = Sql::new("DELETE FROM nats_outbox WHERE 1 = 1");
            sql.in_list("event_id", ids);
            sql.query().execute(&mut *self.tx).await?;
        }
        let opened: Vec<_> = b.open.iter().filter_map(|(id, row)| row.as_ref().map(|r| (id, r))).collect();
        for rows in pieces(&opened, CHUNK) {
            let sql = multi_insert(
                "open_triggered (event_id, ty, project, stage, service, due_ms, seq)",
                "ON CONFLICT (event_id) DO UPDATE SET due_ms = excluded.due_ms",
                rows,
                |s, (id, r)| {
                    vec![
                        s.str(id),
                        s.str(&r.ty),
                        s.str(&r.scope.project),
                        s.str(&r.scope.stage),
                        s.str(&r.scope.service),
                        s.int(r.due_ms),
                        s.int(r.seq),
                    ]
                },
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        let closed: Vec<String> = b.open.iter().filter(|(_, r)| r.is_none()).map(|(id, _)| id.clone()).collect();
        for ids in pieces(&closed, CHUNK * 4) {
            let mut sql = Sql::new("DELETE FROM open_triggered WHERE 1 = 1");
            sql.in_list("event_id", ids);
            sql.query().execute(&mut *self.tx).await?;
        }
        for (id, ty) in &b.close_typed {
            let mut sql = Sql::new("DELETE FROM open_triggered WHERE 1 = 1");
            sql.eq("event_id", Some(id)).eq("ty", Some(ty));
            sql.query().execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_keep_every_row_in_order_with_few_sizes() {
        let rows: Vec<u32> = (0..437).collect();
        let got = pieces(&rows, 200);
        let sizes: Vec<usize> = got.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, [200, 200, 32, 4, 1]);
        assert_eq!(got.concat(), rows, "every row once, in order");
        assert!(pieces::<u32>(&[], 200).is_empty());
        assert_eq!(pieces(&rows[..13], 200).iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 1]);
    }
}

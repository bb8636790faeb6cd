//! The event log (datastore reads), open `.triggered` events (pull API) and the outbox.

use crate::sql::Sql;
use crate::{Store, StoreError, Tx, parse};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An indexed event column an [`EventQuery::any_of`] filter can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventField {
    /// `data.project`
    Project,
    /// `data.stage`
    Stage,
    /// `data.service`
    Service,
    /// `shkeptncontext`
    Context,
    /// `type`
    Type,
    /// `id`
    Id,
    /// `source`
    Source,
    /// `triggeredid`
    TriggeredId,
}

impl EventField {
    fn column(self) -> &'static str {
        match self {
            EventField::Project => "e.project",
            EventField::Stage => "e.stage",
            EventField::Service => "e.service",
            EventField::Context => "e.context",
            EventField::Type => "e.ty",
            EventField::Id => "e.id",
            EventField::Source => "e.source",
            EventField::TriggeredId => "e.triggeredid",
        }
    }
}

/// Filters of the datastore's event query. `None` filters nothing.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub project: Option<String>,
    pub stage: Option<String>,
    pub service: Option<String>,
    pub context: Option<String>,
    pub ty: Option<String>,
    pub event_id: Option<String>,
    pub source: Option<String>,
    /// Only events with `time_ms >` this.
    pub from_ms: Option<i64>,
    /// Only events with `time_ms <` this.
    pub before_ms: Option<i64>,
    /// Only the first event (lowest seq) of each keptnContext.
    pub root: bool,
    /// IN filters, all of which must hold (together with the filters above): the event's field
    /// is one of the values. An empty value list matches nothing.
    pub any_of: Vec<(EventField, Vec<String>)>,
    /// Leaves out events whose non-empty `triggeredid` is the `triggeredid` of an event of this
    /// type in the same project (e.g. `sh.keptn.event.evaluation.invalidated`).
    pub exclude_triggered_by: Option<String>,
    /// Only events after this one in the listing order (keyset paging): older, or as old with a
    /// lower seq. Combines with `offset` (rows skipped after the cursor).
    pub after: Option<EventCursor>,
    pub offset: i64,
    /// ≤ 0: no limit.
    pub limit: i64,
}

/// A position in the datastore's listing order (`time_ms` desc, then seq desc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub time_ms: i64,
    pub seq: i64,
}

/// One page of [`Store::page_events`].
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<Value>,
    /// The last event's position when more events follow, `None` on the last page.
    pub next: Option<EventCursor>,
    /// Matching events from this page's start on, counted up to the cap the caller gave: exact
    /// when below the cap, otherwise at least the cap.
    pub remaining: i64,
}

/// Filters of the pull API (`GET /v1/event/triggered/{type}`).
#[derive(Debug, Clone, Default)]
pub struct OpenTriggeredQuery {
    pub ty: String,
    pub project: Option<String>,
    pub stage: Option<String>,
    pub service: Option<String>,
    pub event_id: Option<String>,
    /// Only events due by now (`due_ms <= now_ms`).
    pub now_ms: i64,
    pub offset: i64,
    /// ≤ 0: no limit.
    pub limit: i64,
}

fn body(r: &AnyRow) -> Result<Value, StoreError> {
    let text: String = r.try_get("body")?;
    parse("event body", &text)
}

impl Store {
    /// The highest event seq, 0 if there are no events.
    pub async fn max_event_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events").fetch_one(&self.pool).await?)
    }

    /// `SELECT … FROM events e WHERE <the query's filters>` (no order, no paging).
    fn event_filter(q: &EventQuery) -> Sql {
        Self::event_filter_of(q, "e.body, e.time_ms, e.seq")
    }

    /// The same with other columns: counts select no body, so an index can answer them.
    fn event_filter_of(q: &EventQuery, columns: &str) -> Sql {
        let mut sql = Sql::new(&format!("SELECT {columns} FROM events e WHERE 1 = 1"));
        sql.eq("e.project", q.project.as_deref())
            .eq("e.stage", q.stage.as_deref())
            .eq("e.service", q.service.as_deref())
            .eq("e.context", q.context.as_deref())
            .eq("e.ty", q.ty.as_deref())
            .eq("e.id", q.event_id.as_deref())
            .eq("e.source", q.source.as_deref())
            .cmp("e.time_ms", ">", q.from_ms)
            .cmp("e.time_ms", "<", q.before_ms);
        for (field, values) in &q.any_of {
            sql.in_list(field.column(), values);
        }
        if let Some(ty) = &q.exclude_triggered_by {
            let p = sql.str(ty);
            sql.push(&format!(
                " AND (e.triggeredid = '' OR NOT EXISTS (SELECT 1 FROM events i WHERE i.ty = {p} \
                 AND i.project = e.project AND i.triggeredid = e.triggeredid))"
            ));
        }
        if q.root {
            sql.push(" AND e.seq = (SELECT MIN(f.seq) FROM events f WHERE f.context = e.context)");
        }
        if let Some(c) = q.after {
            let (t, s) = (sql.int(c.time_ms), sql.int(c.seq));
            // A row comparison both databases answer from the (…, time_ms, seq) indexes.
            sql.push(&format!(" AND (e.time_ms, e.seq) < ({t}, {s})"));
        }
        sql
    }

    /// One page of the matching events, newest first, read with keyset paging from `q.after`:
    /// it costs the page's rows (plus at most `count_cap` index entries for `remaining`), not the
    /// history's size. `q.offset` still skips rows (keptn's numeric page keys).
    pub async fn page_events(&self, q: &EventQuery, count_cap: i64) -> Result<EventPage, StoreError> {
        let limit = q.limit.max(1);
        let mut sql = Self::event_filter(q);
        sql.push(" ORDER BY e.time_ms DESC, e.seq DESC").page(q.offset, limit + 1);
        let mut rows = sql.fetch_all(&self.pool).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = match rows.last() {
            Some(last) if more => Some(EventCursor { time_ms: last.try_get("time_ms")?, seq: last.try_get("seq")? }),
            _ => None,
        };
        let remaining = if !more {
            rows.len() as i64
        } else {
            // Ordered like the page, so the database walks the same index and stops at the cap
            // (unordered, PostgreSQL may bitmap-scan every matching index entry).
            let mut counted = Self::event_filter_of(q, "e.seq");
            counted.push(" ORDER BY e.time_ms DESC, e.seq DESC").page(q.offset, count_cap.max(limit + 1));
            counted.count(&self.pool).await?
        };
        Ok(EventPage { events: rows.iter().map(body).collect::<Result<_, _>>()?, next, remaining })
    }

    /// Matching event bodies, newest first (`time_ms` desc, then seq desc), and the total count.
    pub async fn query_events(&self, q: &EventQuery) -> Result<(Vec<Value>, i64), StoreError> {
        let mut sql = Self::event_filter(q);
        let total = sql.count(&self.pool).await?;
        sql.push(" ORDER BY e.time_ms DESC, e.seq DESC").page(q.offset, q.limit);
        let rows = sql.fetch_all(&self.pool).await?;
        Ok((rows.iter().map(body).collect::<Result<_, _>>()?, total))
    }

    /// The page of [`Store::query_events`] without its total (one query instead of two), each
    /// body parsed straight into an event; bodies that are no event are skipped. For callers
    /// that need no count: the server's own integrations read their datastore through this.
    pub async fn list_events(&self, q: &EventQuery) -> Result<Vec<keptn_formats::KeptnEvent>, StoreError> {
        let mut sql = Self::event_filter(q);
        sql.push(" ORDER BY e.time_ms DESC, e.seq DESC").page(q.offset, q.limit);
        let rows = sql.fetch_all(&self.pool).await?;
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let text: String = r.try_get("body")?;
            if let Ok(event) = serde_json::from_str(&text) {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Hands the matching events to `visit` newest first (the order of [`Store::query_events`])
    /// until it returns `false` or the events run out. Reads `batch` rows at a time (at least 1)
    /// with keyset paging, so memory stays bounded and events stored meanwhile neither repeat nor
    /// shift rows. `q.offset` and `q.limit` are ignored.
    pub async fn scan_events<F>(&self, q: &EventQuery, batch: i64, mut visit: F) -> Result<(), StoreError>
    where
        F: FnMut(Value) -> bool,
    {
        let batch = batch.max(1);
        let mut q = q.clone();
        loop {
            let mut sql = Self::event_filter(&q);
            sql.push(" ORDER BY e.time_ms DESC, e.seq DESC").page(0, batch);
            let rows = sql.fetch_all(&self.pool).await?;
            for r in &rows {
                if !visit(body(r)?) {
                    return Ok(());
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == batch => {
                    q.after = Some(EventCursor { time_ms: last.try_get("time_ms")?, seq: last.try_get("seq")? })
                }
                _ => return Ok(()),
            }
        }
    }

    pub async fn get_event(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT body FROM events WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(body).transpose()
    }

    /// Open `.triggered` events of one type that are due, oldest first, and the total count.
    pub async fn open_triggered(&self, q: &OpenTriggeredQuery) -> Result<(Vec<Value>, i64), StoreError> {
        let mut sql =
            Sql::new("SELECT e.body, o.seq FROM open_triggered o JOIN events e ON e.id = o.event_id WHERE 1 = 1");
        sql.eq("o.ty", Some(&q.ty))
            .cmp("o.due_ms", "<=", Some(q.now_ms))
            .eq("o.project", q.project.as_deref())
            .eq("o.stage", q.stage.as_deref())
            .eq("o.service", q.service.as_deref())
            .eq("o.event_id", q.event_id.as_deref());
        let total = sql.count(&self.pool).await?;
        sql.push(" ORDER BY o.seq ASC").page(q.offset, q.limit);
        let rows = sql.fetch_all(&self.pool).await?;
        Ok((rows.iter().map(body).collect::<Result<_, _>>()?, total))
    }

    /// Events waiting to be published with their due time, by due time then seq.
    /// Not filtered by due time: the caller decides what to send now.
    pub async fn outbox_pending(&self, limit: i64) -> Result<Vec<(Value, i64)>, StoreError> {
        let mut sql = Sql::new(
            "SELECT e.body, o.due_ms FROM outbox o JOIN events e ON e.id = o.event_id ORDER BY o.due_ms, e.seq",
        );
        sql.page(0, limit);
        let rows = sql.fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((body(r)?, r.try_get("due_ms")?))).collect()
    }

    /// Events waiting to be published to NATS, in commit order, with their seq: at most `limit`
    /// after seq `after`.
    pub async fn nats_outbox_pending(&self, after: i64, limit: i64) -> Result<Vec<(i64, Value)>, StoreError> {
        let mut sql =
            Sql::new("SELECT o.seq, e.body FROM nats_outbox o JOIN events e ON e.id = o.event_id WHERE o.seq > ");
        let p = sql.int(after);
        sql.push(&p);
        sql.push(" ORDER BY o.seq");
        sql.page(0, limit);
        let rows = sql.fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("seq")?, body(r)?))).collect()
    }

    pub async fn outbox_delete(&self, event_ids: &[String]) -> Result<(), StoreError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new("DELETE FROM outbox WHERE 1 = 1");
        sql.in_list("event_id", event_ids);
        sql.query().execute(&self.pool).await?;
        Ok(())
    }
}

impl Tx<'_> {
    /// Removes delivered events from the outbox.
    pub(crate) async fn outbox_delete(&mut self, event_ids: &[String]) -> Result<(), StoreError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new("DELETE FROM outbox WHERE 1 = 1");
        sql.in_list("event_id", event_ids);
        sql.query().execute(&mut *self.tx).await?;
        Ok(())
    }
}

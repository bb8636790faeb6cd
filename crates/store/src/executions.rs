//! Engine state: sequence executions and pause markers.

use crate::sql::Sql;
use crate::{Store, StoreError, Tx, parse, to_json};
use keptn_engine::{Execution, PauseMarker};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Filters of the sequence-execution query. `None` filters nothing.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    pub project: String,
    pub stage: Option<String>,
    pub service: Option<String>,
    pub context: Option<String>,
    /// The sequence name.
    pub name: Option<String>,
    /// An `ExecState` string (`triggered`, `started`, ...).
    pub state: Option<String>,
    pub offset: i64,
    /// ≤ 0: no limit.
    pub limit: i64,
}

/// Filters of the keptnContext page of a project (sequence-state listing).
#[derive(Debug, Clone, Default)]
pub struct ContextQuery {
    pub project: String,
    /// The sequence of the context's first execution.
    pub name: Option<String>,
    /// Only contexts whose first execution was triggered after this (`>`).
    pub from_ms: Option<i64>,
    /// Only contexts whose first execution was triggered before this (`<`).
    pub before_ms: Option<i64>,
    /// Only these contexts (empty: all).
    pub contexts: Vec<String>,
    pub offset: i64,
    /// ≤ 0: no limit.
    pub limit: i64,
}

fn execution(r: &AnyRow) -> Result<Execution, StoreError> {
    let text: String = r.try_get("body")?;
    let id: String = r.try_get("id")?;
    parse(format_args!("execution {id}"), &text)
}

fn executions(rows: &[AnyRow]) -> Result<Vec<Execution>, StoreError> {
    rows.iter().map(execution).collect()
}

impl Store {
    /// Executions not finished or timed out, oldest triggered first.
    pub async fn load_open_executions(&self) -> Result<Vec<Execution>, StoreError> {
        let rows = sqlx::query("SELECT id, body FROM executions WHERE done = 0 ORDER BY triggered_ms, id")
            .fetch_all(&self.pool)
            .await?;
        executions(&rows)
    }

    pub async fn load_pause_markers(&self) -> Result<Vec<PauseMarker>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM pause_markers WHERE id = 1").fetch_optional(&self.pool).await?;
        body.map_or(Ok(Vec::new()), |b| parse("pause markers", &b))
    }

    /// Matching executions, newest triggered first, and the total count.
    pub async fn query_executions(&self, q: &ExecutionQuery) -> Result<(Vec<Execution>, i64), StoreError> {
        let mut sql = Sql::new("SELECT id, body, triggered_ms FROM executions WHERE 1 = 1");
        sql.eq("project", Some(&q.project))
            .eq("stage", q.stage.as_deref())
            .eq("service", q.service.as_deref())
            .eq("context", q.context.as_deref())
            .eq("sequence", q.name.as_deref())
            .eq("state", q.state.as_deref());
        let total = sql.count(&self.pool).await?;
        sql.push(" ORDER BY triggered_ms DESC, id DESC").page(q.offset, q.limit);
        Ok((executions(&sql.fetch_all(&self.pool).await?)?, total))
    }

    /// All executions of the given contexts of a project, oldest triggered first.
    pub async fn executions_of_contexts(
        &self,
        project: &str,
        contexts: &[String],
    ) -> Result<Vec<Execution>, StoreError> {
        if contexts.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT id, body FROM executions WHERE 1 = 1");
        sql.eq("project", Some(project)).in_list("context", contexts).push(" ORDER BY triggered_ms, id");
        executions(&sql.fetch_all(&self.pool).await?)
    }

    /// A page of the project's keptnContexts, by their first execution's trigger time (newest
    /// first), and the total count.
    pub async fn contexts_page(&self, q: &ContextQuery) -> Result<(Vec<String>, i64), StoreError> {
        let mut sql = Sql::new("SELECT context, first_ms FROM (SELECT context, sequence, triggered_ms AS first_ms, ");
        sql.push(
            "ROW_NUMBER() OVER (PARTITION BY context ORDER BY triggered_ms, id) AS rn FROM executions WHERE 1 = 1",
        );
        sql.eq("project", Some(&q.project));
        sql.push(") firsts WHERE rn = 1");
        sql.eq("sequence", q.name.as_deref()).cmp("first_ms", ">", q.from_ms).cmp("first_ms", "<", q.before_ms);
        if !q.contexts.is_empty() {
            sql.in_list("context", &q.contexts);
        }
        let total = sql.count(&self.pool).await?;
        sql.push(" ORDER BY first_ms DESC, context DESC").page(q.offset, q.limit);
        let rows = sql.fetch_all(&self.pool).await?;
        Ok((rows.iter().map(|r| r.try_get("context")).collect::<Result<_, _>>()?, total))
    }
}

impl Tx<'_> {
    /// Replaces the set of pause markers.
    pub(crate) async fn save_pause_markers(&mut self, m: &[PauseMarker]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pause_markers (id, body) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        )
        .bind(to_json(&m))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

//! Uniform: registered integrations and their error logs.

use crate::sql::Sql;
use crate::{Store, StoreError, parse, to_json};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

fn body(what: &str, r: &AnyRow) -> Result<Value, StoreError> {
    let text: String = r.try_get("body")?;
    let id: String = r.try_get("id")?;
    parse(format_args!("{what} {id}"), &text)
}

impl Store {
    /// Inserts or replaces an integration.
    pub async fn upsert_integration(
        &self,
        id: &str,
        name: &str,
        last_seen_ms: i64,
        body: &Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO integrations (id, name, last_seen_ms, body) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             last_seen_ms = excluded.last_seen_ms, body = excluded.body",
        )
        .bind(id)
        .bind(name)
        .bind(last_seen_ms)
        .bind(to_json(body))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_integration(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let row =
            sqlx::query("SELECT id, body FROM integrations WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| body("integration", &r)).transpose()
    }

    /// All integrations, sorted by name, then id.
    pub async fn list_integrations(&self) -> Result<Vec<Value>, StoreError> {
        let rows = sqlx::query("SELECT id, body FROM integrations ORDER BY name, id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| body("integration", r)).collect()
    }

    /// `true` if it existed.
    pub async fn delete_integration(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM integrations WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes integrations last seen before `older_than_ms`; returns how many.
    pub async fn expire_integrations(&self, older_than_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM integrations WHERE last_seen_ms < $1")
            .bind(older_than_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Stores log entries `(id, integration_id, time_ms, body)` in one transaction; ids already
    /// stored are skipped.
    pub async fn insert_logs(&self, logs: &[(String, String, i64, Value)]) -> Result<(), StoreError> {
        let mut tx = self.transaction().await?;
        for (id, integration_id, time_ms, body) in logs {
            sqlx::query(
                "INSERT INTO logs (id, integration_id, time_ms, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(integration_id)
            .bind(*time_ms)
            .bind(to_json(body))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Matching log entries, newest first, and the total count. `from_ms` / `before_ms` are
    /// exclusive bounds on the entry's time.
    pub async fn query_logs(
        &self,
        integration_id: Option<&str>,
        from_ms: Option<i64>,
        before_ms: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Value>, i64), StoreError> {
        let mut sql = Sql::new("SELECT id, body, time_ms FROM logs WHERE 1 = 1");
        sql.eq("integration_id", integration_id).cmp("time_ms", ">", from_ms).cmp("time_ms", "<", before_ms);
        let total = sql.count(&self.pool).await?;
        sql.push(" ORDER BY time_ms DESC, id DESC").page(offset, limit);
        let rows = sql.fetch_all(&self.pool).await?;
        Ok((rows.iter().map(|r| body("log", r)).collect::<Result<_, _>>()?, total))
    }

    /// Deletes the logs of one integration, or all logs; returns how many.
    pub async fn delete_logs(&self, integration_id: Option<&str>) -> Result<u64, StoreError> {
        let mut sql = Sql::new("DELETE FROM logs WHERE 1 = 1");
        sql.eq("integration_id", integration_id);
        Ok(sql.query().execute(&self.pool).await?.rows_affected())
    }
}

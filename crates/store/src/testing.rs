//! Isolated PostgreSQL schemas for tests and benchmarks that run beside each other.

use crate::StoreError;
use sqlx::{Connection, Executor, PgConnection};

/// `KEPTN_TEST_POSTGRES_URL`, or the local trust-auth server.
pub fn postgres_admin_url() -> String {
    std::env::var("KEPTN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Creates a fresh schema and returns a database URL whose connections use it.
pub async fn create_schema(admin: &str) -> Result<(String, String), StoreError> {
    let mut conn = PgConnection::connect(admin).await?;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await?;
    conn.close().await?;
    let sep = if admin.contains('?') { '&' } else { '?' };
    Ok((format!("{admin}{sep}options=-c%20search_path%3D{schema}"), schema))
}

pub async fn drop_schema(admin: &str, schema: &str) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect(admin).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).await?;
    conn.close().await?;
    Ok(())
}

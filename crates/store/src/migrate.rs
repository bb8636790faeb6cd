//! A tiny migrator: embedded SQL files applied in order, each in its own transaction,
//! recorded in `schema_migrations`.
//!
//! Each migration's transaction first claims its version with
//! `INSERT ... ON CONFLICT DO NOTHING`; a second process migrating concurrently then blocks on
//! that row (PostgreSQL) or on the write lock (SQLite) and skips the version once it sees it.

use crate::Store;
use sqlx::{AssertSqlSafe, Executor};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_writer_probe.sql")),
    (3, include_str!("../migrations/0003_datastore_order.sql")),
    (4, include_str!("../migrations/0004_nats_outbox.sql")),
    (5, include_str!("../migrations/0005_events_by_service.sql")),
    (6, include_str!("../migrations/0006_secrets.sql")),
];

pub(crate) async fn run(store: &Store) -> Result<(), sqlx::Error> {
    store.pool.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)").await?;
    for (version, script) in MIGRATIONS {
        let mut tx = store.transaction().await?;
        let claimed =
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1) ON CONFLICT (version) DO NOTHING")
                .bind(*version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if claimed == 0 {
            // Already applied. Roll back now: a dropped transaction only rolls back when its
            // connection is next used, and until then it holds a lock on `schema_migrations`
            // (seen: a DROP SCHEMA waiting forever on an idle pooled connection).
            tx.rollback().await?;
            continue;
        }
        for statement in statements(script) {
            tx.execute(AssertSqlSafe(statement)).await?;
        }
        tx.commit().await?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

/// Splits a script on `;` after removing `--` comment lines.
fn statements(script: &str) -> Vec<String> {
    let code: String = script.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

//! keptn's secret-service secrets: one row per (scope, name), its key names plain (the API lists
//! them) and its values as one sealed text the server made. The store never sees a value in
//! clear; sealing and opening are the server's (`crates/server/src/secrets.rs`).

use crate::sql::Sql;
use crate::{Store, StoreError, parse, to_json};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A secret as the API lists it: where it is, what it is called and which keys it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretListing {
    pub scope: String,
    pub name: String,
    pub keys: Vec<String>,
}

/// A stored secret: its listing and its sealed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub listing: SecretListing,
    /// The server's sealing of the values, as text (base64).
    pub sealed: String,
}

fn listing(r: &AnyRow) -> Result<SecretListing, StoreError> {
    let (scope, name): (String, String) = (r.try_get("scope")?, r.try_get("name")?);
    let keys: String = r.try_get("key_names")?;
    let keys = parse(format_args!("secret {name} in scope {scope}"), &keys)?;
    Ok(SecretListing { scope, name, keys })
}

impl Store {
    /// Stores a new secret; `false` (and nothing written) if the scope already has one of that
    /// name.
    pub async fn insert_secret(&self, row: &SecretRow, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO secrets (scope, name, key_names, sealed, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (scope, name) DO NOTHING",
        )
        .bind(&row.listing.scope)
        .bind(&row.listing.name)
        .bind(to_json(&row.listing.keys))
        .bind(&row.sealed)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces the keys and values of an existing secret; `false` if there is none.
    pub async fn update_secret(&self, row: &SecretRow, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE secrets SET key_names = $1, sealed = $2, updated_ms = $3 WHERE scope = $4 AND name = $5",
        )
        .bind(to_json(&row.listing.keys))
        .bind(&row.sealed)
        .bind(now_ms)
        .bind(&row.listing.scope)
        .bind(&row.listing.name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// `true` if it existed.
    pub async fn delete_secret(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM secrets WHERE scope = $1 AND name = $2")
            .bind(scope)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// One secret with its sealed values.
    pub async fn get_secret(&self, scope: &str, name: &str) -> Result<Option<SecretRow>, StoreError> {
        let row = sqlx::query("SELECT scope, name, key_names, sealed FROM secrets WHERE scope = $1 AND name = $2")
            .bind(scope)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(SecretRow { listing: listing(&r)?, sealed: r.try_get("sealed")? })).transpose()
    }

    /// The secrets (without values) of one name and/or scope, or all, by scope then name.
    pub async fn list_secrets(
        &self,
        name: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<SecretListing>, StoreError> {
        let mut sql = Sql::new("SELECT scope, name, key_names FROM secrets WHERE 1 = 1");
        sql.eq("name", name).eq("scope", scope).push(" ORDER BY scope, name");
        sql.fetch_all(&self.pool).await?.iter().map(listing).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{create_schema, drop_schema, postgres_admin_url};

    fn row(scope: &str, name: &str, keys: &[&str], sealed: &str) -> SecretRow {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        SecretRow { listing: SecretListing { scope: scope.into(), name: name.into(), keys }, sealed: sealed.into() }
    }

    async fn crud(store: &Store) {
        let a = row("keptn-default", "api", &["token", "user"], "sealed-1");
        assert!(store.insert_secret(&a, 1).await.unwrap());
        assert!(!store.insert_secret(&row("keptn-default", "api", &["x"], "other"), 2).await.unwrap(), "exists");
        assert_eq!(store.get_secret("keptn-default", "api").await.unwrap(), Some(a.clone()), "first one kept");
        let b = row("keptn-webhook-service", "api", &["url"], "sealed-2");
        assert!(store.insert_secret(&b, 3).await.unwrap(), "same name, other scope");
        assert!(store.insert_secret(&row("keptn-default", "db", &[], "sealed-3"), 4).await.unwrap());

        let names =
            |l: Vec<SecretListing>| l.into_iter().map(|s| format!("{}/{}", s.scope, s.name)).collect::<Vec<_>>();
        assert_eq!(
            names(store.list_secrets(None, None).await.unwrap()),
            ["keptn-default/api", "keptn-default/db", "keptn-webhook-service/api"]
        );
        assert_eq!(
            names(store.list_secrets(Some("api"), None).await.unwrap()),
            ["keptn-default/api", "keptn-webhook-service/api"]
        );
        assert_eq!(names(store.list_secrets(Some("api"), Some("keptn-default")).await.unwrap()), ["keptn-default/api"]);
        assert_eq!(store.list_secrets(None, Some("keptn-default")).await.unwrap()[0].keys, ["token", "user"]);

        let a2 = row("keptn-default", "api", &["token"], "sealed-4");
        assert!(store.update_secret(&a2, 5).await.unwrap());
        assert_eq!(store.get_secret("keptn-default", "api").await.unwrap(), Some(a2));
        assert!(!store.update_secret(&row("keptn-default", "nope", &[], "s"), 6).await.unwrap());

        assert!(store.delete_secret("keptn-default", "api").await.unwrap());
        assert!(!store.delete_secret("keptn-default", "api").await.unwrap());
        assert_eq!(store.get_secret("keptn-default", "api").await.unwrap(), None);
        assert_eq!(store.get_secret("keptn-webhook-service", "api").await.unwrap(), Some(b), "other scope kept");
    }

    #[tokio::test]
    async fn secrets_crud_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())).await.unwrap();
        crud(&store).await;
    }

    #[tokio::test]
    async fn secrets_crud_postgres() {
        let admin = postgres_admin_url();
        let (url, schema) = match create_schema(&admin).await {
            Ok(created) => created,
            Err(e) if std::env::var_os("CI").is_some() => panic!("PostgreSQL at {admin} unreachable (CI is set): {e}"),
            Err(e) => return eprintln!("notice: skipping PostgreSQL test, {admin} unreachable: {e}"),
        };
        let store = Store::connect(&url).await.unwrap();
        crud(&store).await;
        drop(store);
        drop_schema(&admin, &schema).await.unwrap();
    }
}

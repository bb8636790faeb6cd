//! Projects, services and the per-(stage, service) state.

use crate::{Store, StoreError};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    pub name: String,
    pub shipyard: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub project: String,
    pub name: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStageRow {
    pub stage: String,
    pub service: String,
    pub deployed_image: Option<String>,
    /// Event type → `{"eventId", "keptnContext", "time"}` of the latest such event.
    pub last_event_types: Value,
}

fn project_row(r: &AnyRow) -> Result<ProjectRow, sqlx::Error> {
    Ok(ProjectRow {
        name: r.try_get("name")?,
        shipyard: r.try_get("shipyard")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

impl Store {
    /// `Conflict` if the project exists.
    pub async fn create_project(&self, name: &str, shipyard: &str, now_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO projects (name, shipyard, created_ms, updated_ms) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(shipyard)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("project {name} already exists")));
        }
        Ok(())
    }

    /// `NotFound` if the project does not exist.
    pub async fn update_project_shipyard(&self, name: &str, shipyard: &str, now_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE projects SET shipyard = $2, updated_ms = $3 WHERE name = $1")
            .bind(name)
            .bind(shipyard)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("project {name}")));
        }
        Ok(())
    }

    /// Deletes the project with its services, service states, events (and their outbox rows),
    /// executions and open `.triggered` events, in one transaction. `NotFound` if it does not exist.
    pub async fn delete_project(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.transaction().await?;
        for sql in [
            "DELETE FROM outbox WHERE event_id IN (SELECT id FROM events WHERE project = $1)",
            "DELETE FROM nats_outbox WHERE event_id IN (SELECT id FROM events WHERE project = $1)",
            "DELETE FROM open_triggered WHERE project = $1",
            "DELETE FROM events WHERE project = $1",
            "DELETE FROM executions WHERE project = $1",
            "DELETE FROM service_stage WHERE project = $1",
            "DELETE FROM last_events WHERE project = $1",
            "DELETE FROM services WHERE project = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM projects WHERE name = $1").bind(name).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("project {name}")));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_project(&self, name: &str) -> Result<Option<ProjectRow>, StoreError> {
        let row = sqlx::query("SELECT name, shipyard, created_ms, updated_ms FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(project_row).transpose()?)
    }

    /// All projects, sorted by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let rows = sqlx::query("SELECT name, shipyard, created_ms, updated_ms FROM projects ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(project_row).collect::<Result<_, _>>()?)
    }

    /// `Conflict` if the service exists.
    pub async fn create_service(&self, project: &str, name: &str, now_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO services (project, name, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (project, name) DO NOTHING",
        )
        .bind(project)
        .bind(name)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("service {name} already exists in project {project}")));
        }
        Ok(())
    }

    /// Deletes the service and its per-stage state. `NotFound` if it does not exist.
    pub async fn delete_service(&self, project: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.transaction().await?;
        for sql in [
            "DELETE FROM service_stage WHERE project = $1 AND service = $2",
            "DELETE FROM last_events WHERE project = $1 AND service = $2",
        ] {
            sqlx::query(sql).bind(project).bind(name).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM services WHERE project = $1 AND name = $2")
            .bind(project)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("service {name} in project {project}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// The project's services, sorted by name.
    pub async fn list_services(&self, project: &str) -> Result<Vec<ServiceRow>, StoreError> {
        let rows = sqlx::query("SELECT project, name, created_ms FROM services WHERE project = $1 ORDER BY name")
            .bind(project)
            .fetch_all(&self.pool)
            .await?;
        let row = |r: &AnyRow| -> Result<ServiceRow, sqlx::Error> {
            Ok(ServiceRow {
                project: r.try_get("project")?,
                name: r.try_get("name")?,
                created_ms: r.try_get("created_ms")?,
            })
        };
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// The project's (stage, service) states, sorted by stage, then service.
    pub async fn service_stage_states(&self, project: &str) -> Result<Vec<ServiceStageRow>, StoreError> {
        let mut states: BTreeMap<(String, String), ServiceStageRow> = BTreeMap::new();
        let images = sqlx::query("SELECT stage, service, deployed_image FROM service_stage WHERE project = $1")
            .bind(project)
            .fetch_all(&self.pool)
            .await?;
        for r in &images {
            let (stage, service): (String, String) = (r.try_get("stage")?, r.try_get("service")?);
            let row = states.entry((stage.clone(), service.clone())).or_insert_with(|| ServiceStageRow {
                stage,
                service,
                deployed_image: None,
                last_event_types: json!({}),
            });
            row.deployed_image = r.try_get("deployed_image")?;
        }
        let last =
            sqlx::query("SELECT stage, service, ty, event_id, context, time FROM last_events WHERE project = $1")
                .bind(project)
                .fetch_all(&self.pool)
                .await?;
        for r in &last {
            let (stage, service): (String, String) = (r.try_get("stage")?, r.try_get("service")?);
            let row = states.entry((stage.clone(), service.clone())).or_insert_with(|| ServiceStageRow {
                stage,
                service,
                deployed_image: None,
                last_event_types: json!({}),
            });
            let ty: String = r.try_get("ty")?;
            let (id, context, time): (String, String, String) =
                (r.try_get("event_id")?, r.try_get("context")?, r.try_get("time")?);
            row.last_event_types[ty] = json!({ "eventId": id, "keptnContext": context, "time": time });
        }
        Ok(states.into_values().collect())
    }
}

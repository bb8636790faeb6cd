//! One suite, run against SQLite (a temp file) and PostgreSQL (a schema per test).
//!
//! PostgreSQL URL: `KEPTN_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
//! If it is unreachable the PostgreSQL tests print a notice and pass, unless `CI` is set.

use keptn_engine::{ExecState, Execution, PauseMarker};
use keptn_formats::KeptnEvent;
use keptn_store::*;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use std::collections::HashSet;

struct TestDb {
    url: String,
    store: Store,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>, // (admin url, schema)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Runs on success and on panic; async work goes to a thread with its own runtime.
        if let Some((admin, schema)) = self.pg_schema.take() {
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    let mut conn = PgConnection::connect(&admin).await?;
                    conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).await?;
                    conn.close().await
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("warning: could not drop test schema: {dropped:?}");
            }
        }
    }
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("keptn.db").display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut raw(&url).await).await.unwrap();
    assert_eq!(mode, "wal");
    TestDb { url, store, _dir: Some(dir), pg_schema: None }
}

async fn postgres_db() -> Option<TestDb> {
    let admin =
        std::env::var("KEPTN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = match PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("PostgreSQL at {admin} unreachable (CI is set): {e}")
        }
        Err(e) => {
            eprintln!("notice: skipping PostgreSQL test, {admin} unreachable: {e}");
            return None;
        }
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&url).await.unwrap();
    let db = TestDb { url, store, _dir: None, pg_schema: Some((admin, schema.clone())) };
    assert_eq!(db.store.backend(), Backend::Postgres);
    // The search_path option took effect: the tables were created in the test's schema.
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1")
        .bind(&schema)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(tables >= 11, "tables in {schema}: {tables}");
    conn.close().await.unwrap();
    Some(db)
}

/// A connection beside the store's pool (same database / schema).
async fn raw(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url).await.unwrap()
}

/// Runs every listed suite function once per backend: `sqlite::<name>` and `postgres::<name>`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let db = super::sqlite_db().await;
                super::$name(&db).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let Some(db) = super::postgres_db().await else { return };
                super::$name(&db).await;
            })*
        }
    };
}

suite!(
    migrations_are_idempotent,
    projects_and_services,
    events_dedup,
    query_events_filters_pages_orders,
    page_events_keyset,
    query_events_any_of_and_invalidated,
    scan_events_batches_newest_first,
    dropped_tx_rolls_back,
    executions_save_and_load,
    contexts_page,
    pause_markers,
    open_triggered_due_times,
    outbox,
    nats_outbox,
    service_stage_state,
    integrations_and_logs,
    delete_project_cascades,
    concurrent_read_modify_write,
    corrupt_json_is_reported,
    apply_coalesces_and_upserts,
    apply_chunks_large_batches,
);

// ---- helpers

fn event(id: &str, ty: &str, project: &str, stage: &str, service: &str, context: &str) -> KeptnEvent {
    KeptnEvent {
        id: id.into(),
        ty: ty.into(),
        source: "test".into(),
        shkeptncontext: context.into(),
        time: "2024-01-01T00:00:00.000Z".into(),
        data: json!({"project": project, "stage": stage, "service": service}),
        ..KeptnEvent::default()
    }
}

fn execution(id: &str, project: &str, context: &str, sequence: &str, triggered_at: i64, state: ExecState) -> Execution {
    Execution {
        id: id.into(),
        project: project.into(),
        stage: "dev".into(),
        service: "svc".into(),
        context: context.into(),
        sequence: sequence.into(),
        tasks: vec![],
        input: json!({"project": project}),
        gitcommitid: String::new(),
        triggered_at,
        state,
        paused: false,
        held: None,
        previous: vec![],
        current: None,
        result: None,
        status: None,
        message: String::new(),
        finished_at: None,
        last_event: None,
    }
}

fn scope(project: &str, stage: &str, service: &str) -> ScopeKey {
    ScopeKey { project: project.into(), stage: stage.into(), service: service.into() }
}

/// The open `.triggered` row of a stored event.
fn open_row(ev: &KeptnEvent, seq: i64, due_ms: i64) -> Option<OpenRow> {
    Some(OpenRow { ty: ev.ty.clone(), scope: scope(ev.project(), ev.stage(), ev.service()), due_ms, seq })
}

/// Records `(event id, keptnContext, time)` as the latest event of type `ty` in `scope`.
fn touch(b: &mut WriteBatch, scope: ScopeKey, ty: &str, (id, context, time): (&str, &str, &str)) {
    b.last_events.insert((scope, ty.into()), (id.into(), context.into(), time.into()));
}

/// Applies one batch in its own transaction.
async fn apply(store: &Store, b: &WriteBatch) {
    let mut tx = store.begin().await.unwrap();
    tx.apply(b).await.unwrap();
    tx.commit().await.unwrap();
}

fn id_set(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Inserts new events in one transaction: (seq, event, time_ms).
async fn insert_events(store: &Store, events: &[(i64, KeptnEvent, i64)]) {
    let mut tx = store.begin().await.unwrap();
    let ids: Vec<String> = events.iter().map(|(_, ev, _)| ev.id.clone()).collect();
    assert!(tx.existing_event_ids(&ids).await.unwrap().is_empty());
    tx.apply(&WriteBatch { events: events.to_vec(), ..Default::default() }).await.unwrap();
    tx.commit().await.unwrap();
}

fn ids(values: &[Value]) -> Vec<&str> {
    values.iter().map(|v| v["id"].as_str().unwrap()).collect()
}

// ---- the suite

async fn migrations_are_idempotent(db: &TestDb) {
    db.store.create_project("p", "shipyard", 1).await.unwrap();
    let again = Store::connect(&db.url).await.unwrap();
    let again2 = Store::connect(&db.url).await.unwrap();
    assert_eq!(again.list_projects().await.unwrap().len(), 1);
    assert_eq!(again2.get_project("p").await.unwrap().unwrap().shipyard, "shipyard");
}

async fn projects_and_services(db: &TestDb) {
    let s = &db.store;
    assert!(s.list_projects().await.unwrap().is_empty());
    s.create_project("zeta", "y1", 10).await.unwrap();
    s.create_project("alpha", "y2", 20).await.unwrap();
    assert!(matches!(s.create_project("zeta", "other", 30).await, Err(StoreError::Conflict(_))));
    let names: Vec<String> = s.list_projects().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["alpha", "zeta"]);

    s.update_project_shipyard("zeta", "y3", 40).await.unwrap();
    let zeta = s.get_project("zeta").await.unwrap().unwrap();
    assert_eq!(zeta, ProjectRow { name: "zeta".into(), shipyard: "y3".into(), created_ms: 10, updated_ms: 40 });
    assert!(matches!(s.update_project_shipyard("nope", "y", 1).await, Err(StoreError::NotFound(_))));
    assert!(s.get_project("nope").await.unwrap().is_none());

    s.create_service("zeta", "web", 50).await.unwrap();
    s.create_service("zeta", "api", 60).await.unwrap();
    s.create_service("alpha", "web", 70).await.unwrap();
    assert!(matches!(s.create_service("zeta", "web", 80).await, Err(StoreError::Conflict(_))));
    let services = s.list_services("zeta").await.unwrap();
    assert_eq!(services.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["api", "web"]);
    assert_eq!(services[0].project, "zeta");
    assert_eq!(services[0].created_ms, 60);

    s.delete_service("zeta", "web").await.unwrap();
    assert!(matches!(s.delete_service("zeta", "web").await, Err(StoreError::NotFound(_))));
    assert_eq!(s.list_services("zeta").await.unwrap().len(), 1);
    assert_eq!(s.list_services("alpha").await.unwrap().len(), 1);

    assert!(matches!(s.delete_project("nope").await, Err(StoreError::NotFound(_))));
    s.delete_project("alpha").await.unwrap();
    assert!(s.get_project("alpha").await.unwrap().is_none());
    assert!(s.list_services("alpha").await.unwrap().is_empty());
}

async fn events_dedup(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.max_event_seq().await.unwrap(), 0);
    let ev = event("e1", "sh.keptn.event.dev.delivery.triggered", "p", "dev", "svc", "c1");
    // A different body under the same id: a duplicate must not overwrite the stored event.
    let mut dup = ev.clone();
    dup.source = "other".into();
    let probe = ["e1".to_string(), "e2".into()];
    let mut tx = s.begin().await.unwrap();
    assert!(tx.existing_event_ids(&probe).await.unwrap().is_empty());
    tx.apply(&WriteBatch { events: vec![(1, ev.clone(), 100)], ..Default::default() }).await.unwrap();
    assert_eq!(tx.existing_event_ids(&probe).await.unwrap(), id_set(&["e1"]), "visible in the same tx");
    tx.apply(&WriteBatch { events: vec![(2, dup.clone(), 200)], ..Default::default() }).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.existing_event_ids(&probe).await.unwrap(), id_set(&["e1"]), "same id in a later tx");
    tx.apply(&WriteBatch { events: vec![(3, dup, 300)], ..Default::default() }).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(tx.existing_event_ids(&[]).await.unwrap().is_empty());
    tx.rollback().await.unwrap();

    assert_eq!(s.max_event_seq().await.unwrap(), 1);
    let stored = s.get_event("e1").await.unwrap().unwrap();
    assert_eq!(stored, serde_json::to_value(&ev).unwrap());
    assert!(s.get_event("e2").await.unwrap().is_none());
}

/// Keyset pages of [`Store::page_events`]: following `next` visits every matching event once,
/// newest first (ties on time by seq), whatever the page size, while new events arrive; counts
/// are exact below the cap and capped above it.
async fn page_events_keyset(db: &TestDb) {
    let s = &db.store;
    let mut rows = Vec::new();
    for seq in 1..=230i64 {
        let project = if seq % 3 == 0 { "q" } else { "p" };
        let stage = if seq % 2 == 0 { "dev" } else { "prod" };
        let ctx = format!("c{}", seq % 7);
        // Groups of four events share a time, so the order inside them comes from seq.
        let time_ms = 10_000 + (seq / 4) * 10;
        rows.push((seq, event(&format!("e{seq}"), "sh.keptn.event.t.finished", project, stage, "svc", &ctx), time_ms));
    }
    insert_events(s, &rows).await;
    let expected = |keep: &dyn Fn(&(i64, KeptnEvent, i64)) -> bool| {
        let mut m: Vec<_> = rows.iter().filter(|r| keep(r)).collect();
        m.sort_by_key(|r| std::cmp::Reverse((r.2, r.0)));
        m.iter().map(|r| r.1.id.clone()).collect::<Vec<_>>()
    };
    let walk = |q: EventQuery, cap: i64| async move {
        let (mut seen, mut counts, mut q) = (Vec::new(), Vec::new(), q);
        loop {
            let page = s.page_events(&q, cap).await.unwrap();
            assert!(page.events.len() as i64 <= q.limit);
            counts.push(page.remaining);
            seen.extend(ids(&page.events).into_iter().map(str::to_string));
            match page.next {
                Some(c) => q.after = Some(c),
                None => break,
            }
        }
        (seen, counts)
    };
    for limit in [1, 7, 20, 100] {
        let q = EventQuery { project: Some("p".into()), limit, ..Default::default() };
        let (seen, counts) = walk(q, 10_000).await;
        let want = expected(&|r| r.1.project() == "p");
        assert_eq!(seen, want, "page size {limit}: every event once, in order");
        assert_eq!(counts[0], want.len() as i64, "exact count below the cap");
        assert_eq!(*counts.last().unwrap(), (want.len() as i64 - 1) % limit + 1, "the last page counts itself");
    }
    let q = EventQuery {
        project: Some("p".into()),
        stage: Some("dev".into()),
        context: Some("c3".into()),
        limit: 4,
        ..Default::default()
    };
    let (seen, _) = walk(q, 10_000).await;
    let want = expected(&|r| r.1.project() == "p" && r.1.stage() == "dev" && r.1.shkeptncontext == "c3");
    assert!(!want.is_empty());
    assert_eq!(seen, want, "filters combine with keyset paging");
    let q = EventQuery {
        context: Some("c5".into()),
        from_ms: Some(10_200),
        before_ms: Some(10_400),
        limit: 3,
        ..Default::default()
    };
    let (seen, _) = walk(q, 10_000).await;
    assert_eq!(seen, expected(&|r| r.1.shkeptncontext == "c5" && r.2 > 10_200 && r.2 < 10_400));

    // A capped count says "at least the cap"; the listing itself is unaffected.
    let q = EventQuery { project: Some("p".into()), limit: 10, ..Default::default() };
    let (seen, counts) = walk(q, 50).await;
    assert_eq!(seen.len(), expected(&|r| r.1.project() == "p").len());
    assert_eq!(counts[0], 50);

    // Events stored between two pages (newer ones) neither repeat nor shift the next page.
    let q = EventQuery { project: Some("p".into()), limit: 10, ..Default::default() };
    let first = s.page_events(&q, 1000).await.unwrap();
    let newer: Vec<_> = (231..=240i64)
        .map(|seq| (seq, event(&format!("e{seq}"), "sh.keptn.event.t.finished", "p", "dev", "svc", "c0"), 99_999))
        .collect();
    insert_events(s, &newer).await;
    let second = s.page_events(&EventQuery { after: first.next, ..q.clone() }, 1000).await.unwrap();
    let want = expected(&|r| r.1.project() == "p");
    assert_eq!(ids(&second.events), want[10..20].iter().map(String::as_str).collect::<Vec<_>>());
    // keptn's numeric page keys (an offset) still work; offsets do shift with new events.
    let by_offset = s.page_events(&EventQuery { offset: 20, ..q }, 1000).await.unwrap();
    assert_eq!(ids(&by_offset.events), ids(&second.events), "10 newer + the first page precede");
}

async fn query_events_filters_pages_orders(db: &TestDb) {
    let s = &db.store;
    let mut other_source = event("e5", "sh.keptn.event.deployment.started", "p", "prod", "svc", "c2");
    other_source.source = "helm".into();
    insert_events(
        s,
        &[
            (1, event("e1", "sh.keptn.event.dev.delivery.triggered", "p", "dev", "svc", "c1"), 1000),
            (2, event("e2", "sh.keptn.event.deployment.triggered", "p", "dev", "svc", "c1"), 2000),
            (3, event("e3", "sh.keptn.event.prod.delivery.triggered", "p", "prod", "svc", "c2"), 3000),
            // Same time as e3: the higher seq comes first.
            (4, event("e4", "sh.keptn.event.deployment.triggered", "p", "prod", "svc", "c2"), 3000),
            (5, other_source, 4000),
            (6, event("e6", "sh.keptn.event.dev.delivery.triggered", "q", "dev", "api", "c3"), 500),
        ],
    )
    .await;
    assert_eq!(s.max_event_seq().await.unwrap(), 6);

    let all = |q: EventQuery| async move { s.query_events(&q).await.unwrap() };
    let (evs, total) = all(EventQuery::default()).await;
    assert_eq!(total, 6);
    assert_eq!(ids(&evs), ["e5", "e4", "e3", "e2", "e1", "e6"]);

    let (evs, total) = all(EventQuery { project: Some("p".into()), offset: 1, limit: 2, ..Default::default() }).await;
    assert_eq!((ids(&evs), total), (vec!["e4", "e3"], 5));
    let (evs, total) = all(EventQuery { project: Some("p".into()), offset: 4, limit: 2, ..Default::default() }).await;
    assert_eq!((ids(&evs), total), (vec!["e1"], 5));
    let (evs, _) = all(EventQuery { project: Some("p".into()), offset: 9, limit: 2, ..Default::default() }).await;
    assert!(evs.is_empty());
    // The same page without its total, as events.
    let q = EventQuery { project: Some("p".into()), offset: 1, limit: 2, ..Default::default() };
    let listed: Vec<String> = s.list_events(&q).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(listed, ["e4", "e3"]);

    let (evs, _) = all(EventQuery { stage: Some("prod".into()), ..Default::default() }).await;
    assert_eq!(ids(&evs), ["e5", "e4", "e3"]);
    let (evs, _) = all(EventQuery { service: Some("api".into()), ..Default::default() }).await;
    assert_eq!(ids(&evs), ["e6"]);
    let (evs, _) = all(EventQuery { context: Some("c1".into()), ..Default::default() }).await;
    assert_eq!(ids(&evs), ["e2", "e1"]);
    let (evs, _) =
        all(EventQuery { ty: Some("sh.keptn.event.deployment.triggered".into()), ..Default::default() }).await;
    assert_eq!(ids(&evs), ["e4", "e2"]);
    let (evs, total) = all(EventQuery { event_id: Some("e3".into()), ..Default::default() }).await;
    assert_eq!((ids(&evs), total), (vec!["e3"], 1));
    let (evs, _) = all(EventQuery { source: Some("helm".into()), ..Default::default() }).await;
    assert_eq!(ids(&evs), ["e5"]);
    // Exclusive time bounds.
    let (evs, _) = all(EventQuery { from_ms: Some(1000), before_ms: Some(4000), ..Default::default() }).await;
    assert_eq!(ids(&evs), ["e4", "e3", "e2"]);

    // Root events: the lowest seq of each context, combined with other filters.
    let (evs, total) = all(EventQuery { root: true, ..Default::default() }).await;
    assert_eq!((ids(&evs), total), (vec!["e3", "e1", "e6"], 3));
    let (evs, total) = all(EventQuery { root: true, project: Some("p".into()), limit: 1, ..Default::default() }).await;
    assert_eq!((ids(&evs), total), (vec!["e3"], 2));
    let (evs, _) = all(EventQuery {
        root: true,
        stage: Some("dev".into()),
        ty: Some("sh.keptn.event.deployment.triggered".into()),
        ..Default::default()
    })
    .await;
    assert!(evs.is_empty(), "e2 is not the root of c1");
}

fn with_triggeredid(mut ev: KeptnEvent, triggeredid: &str) -> KeptnEvent {
    ev.triggeredid = triggeredid.into();
    ev
}

async fn query_events_any_of_and_invalidated(db: &TestDb) {
    let s = &db.store;
    let fin = "sh.keptn.event.evaluation.finished";
    let inv = "sh.keptn.event.evaluation.invalidated";
    let mut helm = event("e4", fin, "q", "prod", "api", "c3");
    helm.source = "helm".into();
    insert_events(
        s,
        &[
            (1, with_triggeredid(event("e1", fin, "p", "dev", "svc", "c1"), "t1"), 1000),
            (2, with_triggeredid(event("e2", fin, "p", "prod", "svc", "c2"), "t2"), 2000),
            (3, with_triggeredid(event("e3", fin, "q", "dev", "web", "c3"), "t3"), 3000),
            (4, with_triggeredid(helm, "t4"), 4000),
            (5, with_triggeredid(event("e5", fin, "r", "dev", "svc", "c5"), "t5"), 5000),
            // No triggeredid: never excluded, not even by an invalidated event without one.
            (6, event("e6", fin, "p", "dev", "svc", "c6"), 6000),
            // Invalidates t2 in p; t3 is invalidated only in another project, so e3 stays.
            (7, with_triggeredid(event("i1", inv, "p", "prod", "svc", "c2"), "t2"), 7000),
            (8, with_triggeredid(event("i2", inv, "r", "dev", "svc", "c9"), "t3"), 7000),
            (9, event("i3", inv, "p", "dev", "svc", "c6"), 7000),
        ],
    )
    .await;
    let all = |q: EventQuery| async move { s.query_events(&q).await.unwrap() };
    let any =
        |field: EventField, values: &[&str]| (field, values.iter().map(|v| v.to_string()).collect::<Vec<String>>());
    let fin_q =
        |any_of: Vec<(EventField, Vec<String>)>| EventQuery { ty: Some(fin.into()), any_of, ..Default::default() };

    let (evs, total) = all(fin_q(vec![any(EventField::Project, &["p", "q"])])).await;
    assert_eq!((ids(&evs), total), (vec!["e6", "e4", "e3", "e2", "e1"], 5));
    let (evs, _) = all(fin_q(vec![any(EventField::Stage, &["prod"])])).await;
    assert_eq!(ids(&evs), ["e4", "e2"]);
    let (evs, _) = all(fin_q(vec![any(EventField::Service, &["api", "web"])])).await;
    assert_eq!(ids(&evs), ["e4", "e3"]);
    let (evs, _) = all(fin_q(vec![any(EventField::Context, &["c1", "c5", "nope"])])).await;
    assert_eq!(ids(&evs), ["e5", "e1"]);
    let (evs, _) = all(fin_q(vec![any(EventField::Source, &["helm"])])).await;
    assert_eq!(ids(&evs), ["e4"]);
    let (evs, _) = all(fin_q(vec![any(EventField::Id, &["e2", "e3", "i1"])])).await;
    assert_eq!(ids(&evs), ["e3", "e2"], "ty still applies");
    let (evs, _) = all(fin_q(vec![any(EventField::TriggeredId, &["t1", "t5"])])).await;
    assert_eq!(ids(&evs), ["e5", "e1"]);
    let (evs, _) = all(EventQuery { any_of: vec![any(EventField::Type, &[inv])], ..Default::default() }).await;
    assert_eq!(ids(&evs), ["i3", "i2", "i1"]);
    // Clauses are ANDed with each other and with the single-value filters; paging still applies.
    let (evs, total) = all(EventQuery {
        limit: 1,
        offset: 1,
        ..fin_q(vec![any(EventField::Project, &["p", "q", "r"]), any(EventField::Stage, &["dev"])])
    })
    .await;
    assert_eq!((ids(&evs), total), (vec!["e5"], 4));
    let (evs, _) = all(fin_q(vec![any(EventField::Project, &["p", "q"]), any(EventField::Project, &["q", "r"])])).await;
    assert_eq!(ids(&evs), ["e4", "e3"], "two clauses on one field intersect");
    let (evs, _) =
        all(EventQuery { project: Some("q".into()), ..fin_q(vec![any(EventField::Stage, &["dev", "prod"])]) }).await;
    assert_eq!(ids(&evs), ["e4", "e3"]);
    let (evs, total) = all(fin_q(vec![any(EventField::Project, &[])])).await;
    assert_eq!((evs.len(), total), (0, 0), "an empty list matches nothing");

    // exclude_triggered_by: only the same project's invalidations count.
    let (evs, total) = all(EventQuery { exclude_triggered_by: Some(inv.into()), ..fin_q(vec![]) }).await;
    assert_eq!((ids(&evs), total), (vec!["e6", "e5", "e4", "e3", "e1"], 5));
    let (evs, total) = all(EventQuery {
        exclude_triggered_by: Some(inv.into()),
        project: Some("p".into()),
        limit: 1,
        ..fin_q(vec![])
    })
    .await;
    assert_eq!((ids(&evs), total), (vec!["e6"], 2));
}

async fn scan_events_batches_newest_first(db: &TestDb) {
    let s = &db.store;
    let mut events = Vec::new();
    for i in 1..=7i64 {
        // Pairs share a time, so batch boundaries fall between equal times: seq breaks the tie.
        let project = if i == 4 { "other" } else { "p" };
        events.push((i, event(&format!("e{i}"), "sh.keptn.event.test.finished", project, "dev", "svc", "c"), i / 2));
    }
    insert_events(s, &events).await;
    let q = EventQuery { project: Some("p".into()), offset: 3, limit: 1, ..Default::default() };
    let expected = ["e7", "e6", "e5", "e3", "e2", "e1"];
    for batch in [0, 1, 2, 3, 6, 100] {
        let mut seen = Vec::new();
        s.scan_events(&q, batch, |ev| {
            seen.push(ev["id"].as_str().unwrap().to_string());
            true
        })
        .await
        .unwrap();
        assert_eq!(seen, expected, "batch {batch}: every match once, newest first, offset/limit ignored");
    }
    let mut seen = Vec::new();
    s.scan_events(&q, 2, |ev| {
        seen.push(ev["id"].as_str().unwrap().to_string());
        seen.len() < 3
    })
    .await
    .unwrap();
    assert_eq!(seen, ["e7", "e6", "e5"], "stops when visit returns false");
    let mut count = 0;
    s.scan_events(&EventQuery { project: Some("nope".into()), ..Default::default() }, 2, |_| {
        count += 1;
        true
    })
    .await
    .unwrap();
    assert_eq!(count, 0);
}

async fn dropped_tx_rolls_back(db: &TestDb) {
    let s = &db.store;
    let ev = event("e1", "sh.keptn.event.dev.delivery.triggered", "p", "dev", "svc", "c1");
    {
        let mut b = WriteBatch { events: vec![(1, ev.clone(), 1)], ..Default::default() };
        b.executions.insert("x1".into(), execution("x1", "p", "c1", "delivery", 1, ExecState::Started));
        b.outbox_add.insert("e1".into(), 1);
        b.open.insert("e1".into(), open_row(&ev, 1, 1));
        touch(&mut b, scope("p", "dev", "svc"), &ev.ty, ("e1", "c1", "t"));
        b.deployed_images.insert(scope("p", "dev", "svc"), "img".into());
        b.pause_markers = Some(vec![PauseMarker { context: "c1".into(), stage: None }]);
        let mut tx = s.begin().await.unwrap();
        tx.apply(&b).await.unwrap();
        assert_eq!(tx.existing_event_ids(&["e1".into()]).await.unwrap(), id_set(&["e1"]));
        // dropped without commit
    }
    let mut tx = s.begin().await.unwrap();
    assert!(tx.existing_event_ids(&["e1".into()]).await.unwrap().is_empty(), "the id is free again");
    tx.rollback().await.unwrap();

    assert_eq!(s.max_event_seq().await.unwrap(), 0);
    assert!(s.get_event("e1").await.unwrap().is_none());
    assert!(s.load_open_executions().await.unwrap().is_empty());
    assert!(s.outbox_pending(10).await.unwrap().is_empty());
    let q = OpenTriggeredQuery { ty: ev.ty.clone(), now_ms: 10, ..Default::default() };
    assert_eq!(s.open_triggered(&q).await.unwrap().1, 0);
    assert!(s.service_stage_states("p").await.unwrap().is_empty());
    assert!(s.load_pause_markers().await.unwrap().is_empty());
}

async fn executions_save_and_load(db: &TestDb) {
    let s = &db.store;
    let mut a = execution("a", "p", "c1", "delivery", 100, ExecState::Triggered);
    let b = execution("b", "p", "c2", "evaluation", 200, ExecState::Started);
    let mut c = execution("c", "p", "c2", "delivery", 300, ExecState::WaitingForApproval);
    c.stage = "prod".into();
    let other = execution("d", "q", "c9", "delivery", 50, ExecState::Triggered);
    let mut batch = WriteBatch::default();
    for e in [&a, &b, &c, &other] {
        batch.executions.insert(e.id.clone(), e.clone());
    }
    apply(s, &batch).await;

    let open = s.load_open_executions().await.unwrap();
    assert_eq!(open, vec![other.clone(), a.clone(), b.clone(), c.clone()], "oldest first, full round trip");

    // Upsert: a finishes and leaves the open set.
    a.state = ExecState::Finished;
    a.message = "done".into();
    a.finished_at = Some(500);
    let mut batch = WriteBatch::default();
    batch.executions.insert(a.id.clone(), a.clone());
    apply(s, &batch).await;
    let open: Vec<String> = s.load_open_executions().await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(open, ["d", "b", "c"]);

    let q = |f: fn(&mut ExecutionQuery)| {
        let mut q = ExecutionQuery { project: "p".into(), ..Default::default() };
        f(&mut q);
        async move {
            let (list, total) = s.query_executions(&q).await.unwrap();
            (list.into_iter().map(|e| e.id).collect::<Vec<_>>(), total)
        }
    };
    assert_eq!(q(|_| {}).await, (vec!["c".to_string(), "b".into(), "a".into()], 3));
    assert_eq!(q(|q| q.state = Some("finished".into())).await, (vec!["a".to_string()], 1));
    assert_eq!(q(|q| q.name = Some("delivery".into())).await, (vec!["c".to_string(), "a".into()], 2));
    assert_eq!(q(|q| q.stage = Some("prod".into())).await, (vec!["c".to_string()], 1));
    assert_eq!(q(|q| q.context = Some("c2".into())).await, (vec!["c".to_string(), "b".into()], 2));
    assert_eq!(q(|q| q.service = Some("other".into())).await, (vec![], 0));
    assert_eq!(q(|q| (q.offset, q.limit) = (1, 1)).await, (vec!["b".to_string()], 3));
    let (loaded, _) = s
        .query_executions(&ExecutionQuery { project: "p".into(), state: Some("finished".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(loaded, vec![a.clone()]);

    let of = s.executions_of_contexts("p", &["c2".into(), "c9".into()]).await.unwrap();
    assert_eq!(of, vec![b, c]);
    assert!(s.executions_of_contexts("p", &[]).await.unwrap().is_empty());
}

async fn contexts_page(db: &TestDb) {
    let s = &db.store;
    let mut batch = WriteBatch::default();
    for e in [
        execution("a1", "p", "ca", "delivery", 100, ExecState::Finished),
        execution("a2", "p", "ca", "evaluation", 400, ExecState::Triggered),
        execution("b1", "p", "cb", "evaluation", 200, ExecState::Started),
        execution("c1", "p", "cc", "delivery", 300, ExecState::Triggered),
        execution("c2", "p", "cc", "remediation", 50_000, ExecState::Triggered),
        execution("x1", "q", "cx", "delivery", 999, ExecState::Triggered),
    ] {
        batch.executions.insert(e.id.clone(), e);
    }
    apply(s, &batch).await;

    let page = |f: fn(&mut ContextQuery)| {
        let mut q = ContextQuery { project: "p".into(), ..Default::default() };
        f(&mut q);
        async move { s.contexts_page(&q).await.unwrap() }
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(page(|_| {}).await, (strings(&["cc", "cb", "ca"]), 3));
    assert_eq!(page(|q| q.name = Some("delivery".into())).await, (strings(&["cc", "ca"]), 2));
    assert_eq!(page(|q| q.name = Some("remediation".into())).await, (vec![], 0), "not the first execution");
    assert_eq!(page(|q| q.from_ms = Some(100)).await, (strings(&["cc", "cb"]), 2));
    assert_eq!(page(|q| q.before_ms = Some(300)).await, (strings(&["cb", "ca"]), 2));
    assert_eq!(page(|q| q.contexts = vec!["ca".into(), "cb".into(), "cx".into()]).await, (strings(&["cb", "ca"]), 2));
    assert_eq!(page(|q| (q.offset, q.limit) = (1, 1)).await, (strings(&["cb"]), 3));
    assert_eq!(page(|q| (q.offset, q.limit) = (3, 1)).await, (vec![], 3));
}

async fn pause_markers(db: &TestDb) {
    let s = &db.store;
    assert!(s.load_pause_markers().await.unwrap().is_empty());
    let markers = vec![
        PauseMarker { context: "c1".into(), stage: None },
        PauseMarker { context: "c2".into(), stage: Some("prod".into()) },
    ];
    apply(s, &WriteBatch { pause_markers: Some(markers.clone()), ..Default::default() }).await;
    assert_eq!(s.load_pause_markers().await.unwrap(), markers);

    apply(s, &WriteBatch { pause_markers: Some(markers[1..].to_vec()), ..Default::default() }).await;
    assert_eq!(s.load_pause_markers().await.unwrap(), markers[1..]);

    // `None` leaves the stored set alone; `Some(empty)` clears it.
    let batch = WriteBatch {
        executions: [("x".into(), execution("x", "p", "c", "d", 1, ExecState::Started))].into(),
        ..Default::default()
    };
    assert!(!batch.is_empty());
    apply(s, &batch).await;
    assert_eq!(s.load_pause_markers().await.unwrap(), markers[1..]);
    apply(s, &WriteBatch { pause_markers: Some(vec![]), ..Default::default() }).await;
    assert!(s.load_pause_markers().await.unwrap().is_empty());
}

async fn open_triggered_due_times(db: &TestDb) {
    let s = &db.store;
    let deploy = "sh.keptn.event.deployment.triggered";
    let e1 = event("e1", deploy, "p", "dev", "svc", "c1");
    let e2 = event("e2", deploy, "p", "prod", "svc", "c2");
    let e3 = event("e3", deploy, "q", "dev", "api", "c3");
    let e4 = event("e4", "sh.keptn.event.test.triggered", "p", "dev", "svc", "c1");
    let mut batch = WriteBatch::default();
    for (seq, ev, due) in [(1, &e1, 100), (2, &e2, 5000), (3, &e3, 100), (4, &e4, 100)] {
        batch.events.push((seq, ev.clone(), 100));
        batch.open.insert(ev.id.clone(), open_row(ev, seq, due));
    }
    apply(s, &batch).await;

    let q = |now_ms: i64, f: fn(&mut OpenTriggeredQuery)| {
        let mut q = OpenTriggeredQuery { ty: deploy.into(), now_ms, ..Default::default() };
        f(&mut q);
        async move {
            let (evs, total) = s.open_triggered(&q).await.unwrap();
            (ids(&evs).into_iter().map(String::from).collect::<Vec<_>>(), total)
        }
    };
    assert_eq!(q(100, |_| {}).await, (vec!["e1".to_string(), "e3".into()], 2));
    assert_eq!(q(99, |_| {}).await, (vec![], 0));
    assert_eq!(q(5000, |_| {}).await, (vec!["e1".to_string(), "e2".into(), "e3".into()], 3));
    assert_eq!(q(5000, |q| q.project = Some("p".into())).await.1, 2);
    assert_eq!(q(5000, |q| q.stage = Some("prod".into())).await.0, ["e2"]);
    assert_eq!(q(5000, |q| q.service = Some("api".into())).await.0, ["e3"]);
    assert_eq!(q(5000, |q| q.event_id = Some("e2".into())).await.0, ["e2"]);
    assert_eq!(q(5000, |q| (q.offset, q.limit) = (1, 1)).await, (vec!["e2".to_string()], 3));

    let (evs, _) = s
        .open_triggered(&OpenTriggeredQuery { ty: deploy.into(), now_ms: 100, limit: 1, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(evs[0], serde_json::to_value(&e1).unwrap(), "the stored event body");

    apply(s, &WriteBatch { open: [("e1".into(), None), ("unknown".into(), None)].into(), ..Default::default() }).await;
    assert_eq!(q(5000, |_| {}).await.0, ["e2", "e3"]);
}

async fn outbox(db: &TestDb) {
    let s = &db.store;
    let mut batch = WriteBatch::default();
    for (seq, id, due) in [(1, "e1", 300), (2, "e2", 100), (3, "e3", 300), (4, "e4", 200)] {
        batch.events.push((seq, event(id, "sh.keptn.event.a.triggered", "p", "dev", "svc", "c"), 0));
        batch.outbox_add.insert(id.into(), due);
    }
    apply(s, &batch).await;

    let pending = s.outbox_pending(10).await.unwrap();
    let got: Vec<(&str, i64)> = pending.iter().map(|(v, due)| (v["id"].as_str().unwrap(), *due)).collect();
    assert_eq!(got, [("e2", 100), ("e4", 200), ("e1", 300), ("e3", 300)]);
    assert_eq!(s.outbox_pending(2).await.unwrap().len(), 2);

    s.outbox_delete(&["e2".into(), "e1".into(), "nope".into()]).await.unwrap();
    s.outbox_delete(&[]).await.unwrap();
    let left: Vec<String> =
        s.outbox_pending(10).await.unwrap().into_iter().map(|(v, _)| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(left, ["e4", "e3"]);
}

async fn nats_outbox(db: &TestDb) {
    let s = &db.store;
    s.create_project("p", "shipyard", 1).await.unwrap();
    let mut batch = WriteBatch::default();
    for (seq, id) in [(3, "e3"), (1, "e1"), (2, "e2")] {
        batch.events.push((seq, event(id, "sh.keptn.event.a.triggered", "p", "dev", "svc", "c"), 0));
        batch.nats_add.push((id.into(), seq));
    }
    apply(s, &batch).await;
    let ids = |rows: Vec<(i64, serde_json::Value)>| -> Vec<(i64, String)> {
        rows.into_iter().map(|(seq, v)| (seq, v["id"].as_str().unwrap().to_string())).collect()
    };
    // Commit order, resumable after a seq, bounded.
    assert_eq!(
        ids(s.nats_outbox_pending(0, 10).await.unwrap()),
        [(1, "e1".into()), (2, "e2".into()), (3, "e3".into())]
    );
    assert_eq!(ids(s.nats_outbox_pending(1, 1).await.unwrap()), [(2, "e2".to_string())]);
    // Acked rows go in the writer's next batch; the push outbox is untouched.
    apply(s, &WriteBatch { nats_delete: vec!["e1".into(), "nope".into()], ..Default::default() }).await;
    assert_eq!(ids(s.nats_outbox_pending(0, 10).await.unwrap()), [(2, "e2".into()), (3, "e3".into())]);
    assert!(s.outbox_pending(10).await.unwrap().is_empty());
    // A deleted project leaves no orphan rows.
    s.delete_project("p").await.unwrap();
    let mut conn = raw(&db.url).await;
    let orphans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nats_outbox").fetch_one(&mut conn).await.unwrap();
    assert_eq!(orphans, 0);
    assert!(s.nats_outbox_pending(0, 10).await.unwrap().is_empty());
}

async fn service_stage_state(db: &TestDb) {
    let s = &db.store;
    let dev = || scope("p", "dev", "svc");
    let mut batch = WriteBatch::default();
    touch(&mut batch, dev(), "sh.keptn.event.deployment.finished", ("e1", "c1", "t1"));
    touch(&mut batch, dev(), "sh.keptn.event.test.finished", ("e2", "c1", "t2"));
    apply(s, &batch).await;
    let mut batch = WriteBatch::default();
    touch(&mut batch, dev(), "sh.keptn.event.deployment.finished", ("e3", "c2", "t3"));
    batch.deployed_images.insert(dev(), "img:2".into());
    batch.deployed_images.insert(scope("p", "prod", "svc"), "img:1".into());
    batch.deployed_images.insert(scope("q", "dev", "svc"), "other".into());
    apply(s, &batch).await;

    let rows = s.service_stage_states("p").await.unwrap();
    assert_eq!(
        rows,
        vec![
            ServiceStageRow {
                stage: "dev".into(),
                service: "svc".into(),
                deployed_image: Some("img:2".into()),
                last_event_types: json!({
                    "sh.keptn.event.deployment.finished": {"eventId": "e3", "keptnContext": "c2", "time": "t3"},
                    "sh.keptn.event.test.finished": {"eventId": "e2", "keptnContext": "c1", "time": "t2"},
                }),
            },
            ServiceStageRow {
                stage: "prod".into(),
                service: "svc".into(),
                deployed_image: Some("img:1".into()),
                last_event_types: json!({}),
            },
        ]
    );

    let mut batch = WriteBatch::default();
    touch(&mut batch, scope("p", "staging", "svc"), "x", ("e9", "c9", "t9"));
    apply(s, &batch).await;
    let staging = s.service_stage_states("p").await.unwrap().into_iter().find(|r| r.stage == "staging").unwrap();
    assert_eq!(staging.deployed_image, None);
}

async fn integrations_and_logs(db: &TestDb) {
    let s = &db.store;
    let helm = json!({"id": "i1", "name": "helm-service", "metadata": {"hostname": "h"}});
    s.upsert_integration("i1", "helm-service", 100, &helm).await.unwrap();
    s.upsert_integration("i2", "approval-service", 200, &json!({"id": "i2"})).await.unwrap();
    assert_eq!(s.get_integration("i1").await.unwrap(), Some(helm));
    assert_eq!(s.get_integration("nope").await.unwrap(), None);
    let listed = s.list_integrations().await.unwrap();
    assert_eq!(listed.iter().map(|v| v["id"].as_str().unwrap()).collect::<Vec<_>>(), ["i2", "i1"], "by name");

    // Re-registering refreshes last_seen.
    s.upsert_integration("i1", "helm-service", 1000, &json!({"id": "i1", "v": 2})).await.unwrap();
    assert_eq!(s.get_integration("i1").await.unwrap().unwrap()["v"], 2);
    assert_eq!(s.expire_integrations(500).await.unwrap(), 1);
    assert_eq!(s.list_integrations().await.unwrap().len(), 1);
    assert!(s.delete_integration("i1").await.unwrap());
    assert!(!s.delete_integration("i1").await.unwrap());

    let logs: Vec<(String, String, i64, Value)> = (1..=5)
        .map(|n| {
            (
                format!("l{n}"),
                if n % 2 == 0 { "i2" } else { "i1" }.to_string(),
                n * 10,
                json!({"message": format!("m{n}")}),
            )
        })
        .collect();
    s.insert_logs(&logs).await.unwrap();
    s.insert_logs(&logs[..1]).await.unwrap(); // duplicate ids are skipped
    s.insert_logs(&[]).await.unwrap();
    let msgs = |v: &[Value]| v.iter().map(|l| l["message"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (all, total) = s.query_logs(None, None, None, 0, 0).await.unwrap();
    assert_eq!((msgs(&all), total), (vec!["m5".into(), "m4".into(), "m3".into(), "m2".into(), "m1".into()], 5));
    let (page, total) = s.query_logs(Some("i1"), None, None, 1, 1).await.unwrap();
    assert_eq!((msgs(&page), total), (vec!["m3".into()], 3));
    let (window, total) = s.query_logs(None, Some(10), Some(50), 0, 10).await.unwrap();
    assert_eq!((msgs(&window), total), (vec!["m4".into(), "m3".into(), "m2".into()], 3));

    assert_eq!(s.delete_logs(Some("i2")).await.unwrap(), 2);
    assert_eq!(s.delete_logs(None).await.unwrap(), 3);
    assert_eq!(s.query_logs(None, None, None, 0, 10).await.unwrap().1, 0);
}

async fn delete_project_cascades(db: &TestDb) {
    let s = &db.store;
    for p in ["p", "q"] {
        s.create_project(p, "shipyard", 1).await.unwrap();
        s.create_service(p, "svc", 1).await.unwrap();
    }
    let ev_p = event("ep", "sh.keptn.event.deployment.triggered", "p", "dev", "svc", "cp");
    let ev_q = event("eq", "sh.keptn.event.deployment.triggered", "q", "dev", "svc", "cq");
    let mut batch = WriteBatch::default();
    for (seq, ev) in [(1, &ev_p), (2, &ev_q)] {
        let project = ev.project().to_string();
        batch.events.push((seq, ev.clone(), 10));
        batch.outbox_add.insert(ev.id.clone(), 10);
        batch.open.insert(ev.id.clone(), open_row(ev, seq, 10));
        let x = execution(&format!("x{project}"), &project, &ev.shkeptncontext, "delivery", 10, ExecState::Started);
        batch.executions.insert(x.id.clone(), x);
        touch(&mut batch, scope(&project, "dev", "svc"), &ev.ty, (&ev.id, &ev.shkeptncontext, "t"));
    }
    apply(s, &batch).await;

    s.delete_project("p").await.unwrap();

    assert!(s.get_project("p").await.unwrap().is_none());
    assert!(s.list_services("p").await.unwrap().is_empty());
    assert!(s.service_stage_states("p").await.unwrap().is_empty());
    assert!(s.get_event("ep").await.unwrap().is_none());
    assert_eq!(s.query_executions(&ExecutionQuery { project: "p".into(), ..Default::default() }).await.unwrap().1, 0);
    let ot = OpenTriggeredQuery { ty: ev_p.ty.clone(), now_ms: 100, ..Default::default() };
    let (open, _) = s.open_triggered(&ot).await.unwrap();
    assert_eq!(ids(&open), ["eq"]);
    let outbox: Vec<Value> = s.outbox_pending(10).await.unwrap().into_iter().map(|(v, _)| v).collect();
    assert_eq!(ids(&outbox), ["eq"]);

    // The other project is untouched.
    assert!(s.get_project("q").await.unwrap().is_some());
    assert_eq!(s.list_services("q").await.unwrap().len(), 1);
    assert_eq!(s.service_stage_states("q").await.unwrap().len(), 1);
    assert!(s.get_event("eq").await.unwrap().is_some());
    let open_q: Vec<String> = s.load_open_executions().await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(open_q, ["xq"]);
}

async fn concurrent_read_modify_write(db: &TestDb) {
    // Parallel transactions that read before they write: none fails (SQLite: BEGIN IMMEDIATE
    // and busy_timeout) and no write is lost.
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let s = db.store.clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                let ev = event(&format!("e{n}"), &format!("type{n}"), "p", "dev", "svc", "c");
                assert!(tx.existing_event_ids(std::slice::from_ref(&ev.id)).await.unwrap().is_empty());
                tokio::task::yield_now().await;
                let mut batch = WriteBatch::default();
                touch(&mut batch, scope("p", "dev", "svc"), &ev.ty, (&ev.id, "c", "t"));
                batch.events.push((n + 1, ev, n));
                tx.apply(&batch).await.unwrap();
                tokio::task::yield_now().await;
                tx.commit().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rows = db.store.service_stage_states("p").await.unwrap();
    assert_eq!(rows[0].last_event_types.as_object().unwrap().len(), 16);
    assert_eq!(db.store.max_event_seq().await.unwrap(), 16);
}

async fn corrupt_json_is_reported(db: &TestDb) {
    let s = &db.store;
    let x = execution("x", "p", "c", "delivery", 1, ExecState::Started);
    apply(s, &WriteBatch { executions: [(x.id.clone(), x)].into(), ..Default::default() }).await;
    let mut conn = raw(&db.url).await;
    conn.execute("UPDATE executions SET body = '{not json'").await.unwrap();
    conn.execute("INSERT INTO pause_markers (id, body) VALUES (1, '[{}]')").await.unwrap();
    match s.load_open_executions().await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("execution x"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(s.load_pause_markers().await, Err(StoreError::Corrupt(_))));
}

async fn apply_coalesces_and_upserts(db: &TestDb) {
    let s = &db.store;
    assert!(WriteBatch::default().is_empty());
    let deploy = "sh.keptn.event.deployment.triggered";
    let fin = "sh.keptn.event.deployment.finished";
    let e1 = event("e1", deploy, "p", "dev", "svc", "c1");
    let e2 = event("e2", deploy, "p", "dev", "svc", "c2");
    let e3 = event("e3", deploy, "p", "prod", "svc", "c3");
    let dev = || scope("p", "dev", "svc");
    let open_ids = |now_ms: i64| {
        let q = OpenTriggeredQuery { ty: deploy.into(), now_ms, ..Default::default() };
        async move { ids(&s.open_triggered(&q).await.unwrap().0).into_iter().map(String::from).collect::<Vec<_>>() }
    };
    let outbox = || async {
        let pending = s.outbox_pending(10).await.unwrap();
        pending.into_iter().map(|(v, due)| (v["id"].as_str().unwrap().to_string(), due)).collect::<Vec<_>>()
    };
    let dev_row = || async {
        s.service_stage_states("p").await.unwrap().into_iter().find(|r| r.stage == "dev" && r.service == "svc").unwrap()
    };
    let load_x = || async {
        let (list, _) =
            s.query_executions(&ExecutionQuery { project: "p".into(), ..Default::default() }).await.unwrap();
        assert_eq!(list.len(), 1);
        list.into_iter().next().unwrap()
    };

    let mut b = WriteBatch {
        events: vec![(1, e1.clone(), 10), (2, e2.clone(), 10), (3, e3.clone(), 10)],
        ..Default::default()
    };
    // An execution saved twice in one batch: the last version is written.
    let mut x = execution("x", "p", "c1", "delivery", 10, ExecState::Started);
    b.executions.insert(x.id.clone(), x.clone());
    x.state = ExecState::Finished;
    x.finished_at = Some(20);
    b.executions.insert(x.id.clone(), x.clone());
    // Opened, then closed in the same batch: nothing open.
    b.open.insert("e1".into(), open_row(&e1, 1, 10));
    b.open.insert("e1".into(), None);
    b.open.insert("e2".into(), open_row(&e2, 2, 10));
    b.open.insert("e3".into(), open_row(&e3, 3, 10));
    b.outbox_add.insert("e1".into(), 300);
    b.outbox_add.insert("e2".into(), 100);
    b.outbox_add.insert("e3".into(), 200);
    // Deletes apply after adds: added and deleted in one batch leaves nothing.
    b.outbox_delete.push("e3".into());
    touch(&mut b, dev(), fin, ("e0", "c0", "t0"));
    touch(&mut b, dev(), fin, ("e1", "c1", "t1"));
    b.deployed_images.insert(dev(), "img:1".into());
    assert!(!b.is_empty());
    apply(s, &b).await;

    assert_eq!(load_x().await, x);
    assert!(s.load_open_executions().await.unwrap().is_empty(), "finished: the last save won");
    assert_eq!(open_ids(1000).await, ["e2", "e3"]);
    assert_eq!(outbox().await, [("e2".to_string(), 100), ("e1".to_string(), 300)]);
    let row = dev_row().await;
    assert_eq!(row.deployed_image.as_deref(), Some("img:1"));
    assert_eq!(row.last_event_types, json!({fin: {"eventId": "e1", "keptnContext": "c1", "time": "t1"}}));
    let mut tx = s.begin().await.unwrap();
    let probe: Vec<String> = ["e1", "e2", "e3", "e4"].iter().map(|s| s.to_string()).collect();
    assert_eq!(tx.existing_event_ids(&probe).await.unwrap(), id_set(&["e1", "e2", "e3"]));
    tx.rollback().await.unwrap();

    // A later batch: upserts replace, closes and deletes remove.
    let e4 = event("e4", fin, "p", "dev", "svc", "c2");
    let mut b = WriteBatch { events: vec![(4, e4, 20)], ..Default::default() };
    x.message = "again".into();
    b.executions.insert(x.id.clone(), x.clone());
    b.open.insert("e2".into(), None);
    b.open.insert("e3".into(), open_row(&e3, 3, 5000)); // re-opening moves the due time
    b.outbox_add.insert("e1".into(), 50); // re-adding moves the due time
    b.outbox_delete.push("e2".into());
    b.outbox_delete.push("unknown".into());
    touch(&mut b, dev(), fin, ("e4", "c2", "t4"));
    b.deployed_images.insert(dev(), "img:2".into());
    apply(s, &b).await;

    assert_eq!(load_x().await.message, "again");
    assert!(open_ids(4999).await.is_empty());
    assert_eq!(open_ids(5000).await, ["e3"]);
    assert_eq!(outbox().await, [("e1".to_string(), 50)]);
    let row = dev_row().await;
    assert_eq!(row.deployed_image.as_deref(), Some("img:2"));
    assert_eq!(row.last_event_types, json!({fin: {"eventId": "e4", "keptnContext": "c2", "time": "t4"}}), "newest");
    assert_eq!(s.max_event_seq().await.unwrap(), 4);

    // An empty batch writes nothing.
    apply(s, &WriteBatch::default()).await;
    assert_eq!(outbox().await, [("e1".to_string(), 50)]);
}

async fn apply_chunks_large_batches(db: &TestDb) {
    // More rows than one multi-row statement (and one IN list) takes.
    const N: i64 = 850;
    let s = &db.store;
    let ty = "sh.keptn.event.deployment.triggered";
    let mut b = WriteBatch::default();
    for n in 1..=N {
        let ev = event(&format!("e{n}"), ty, "p", "dev", "svc", &format!("c{n}"));
        b.outbox_add.insert(ev.id.clone(), n);
        b.open.insert(ev.id.clone(), open_row(&ev, n, 0));
        let x = execution(&format!("x{n}"), "p", &ev.shkeptncontext, "delivery", n, ExecState::Started);
        b.executions.insert(x.id.clone(), x);
        touch(&mut b, scope("p", "dev", "svc"), &format!("type{n}"), (&ev.id, &ev.shkeptncontext, "t"));
        b.events.push((n, ev, n));
    }
    apply(s, &b).await;

    assert_eq!(s.max_event_seq().await.unwrap(), N);
    let probe: Vec<String> = (1..=1000).map(|n| format!("e{n}")).collect();
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.existing_event_ids(&probe).await.unwrap().len(), N as usize);
    tx.rollback().await.unwrap();
    assert_eq!(s.outbox_pending(2000).await.unwrap().len(), N as usize);
    let q = OpenTriggeredQuery { ty: ty.into(), now_ms: 0, ..Default::default() };
    assert_eq!(s.open_triggered(&q).await.unwrap().1, N);
    assert_eq!(s.load_open_executions().await.unwrap().len(), N as usize);
    let rows = s.service_stage_states("p").await.unwrap();
    assert_eq!(rows[0].last_event_types.as_object().unwrap().len(), N as usize);

    let mut b = WriteBatch::default();
    for n in 1..=N {
        b.outbox_delete.push(format!("e{n}"));
        b.open.insert(format!("e{n}"), None);
    }
    apply(s, &b).await;
    assert!(s.outbox_pending(10).await.unwrap().is_empty());
    assert_eq!(s.open_triggered(&q).await.unwrap().1, 0);
}

//! The integration contract in-process: an integration the server runs itself (registered like
//! a built-in, fed by the bus) answers a task through its context and the delivery finishes;
//! what the in-process context answers (events, resources, listings, writes, logs, refusals) is
//! what the same calls over HTTP answer. SQLite and PostgreSQL.

mod support;

use keptn_formats::KeptnEvent;
use keptn_integration::{
    Context, ContextError, ContextResult, ControlPlane, EventQuery, Integration, LogEntry, ResourceAt, answer,
    common_data,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-p }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
"#;

const NAME: &str = "inprocess-deployer";
const DEPLOY: &str = "sh.keptn.event.deployment.triggered";

/// Answers `deployment.triggered` with started + finished through its context, and keeps the
/// context so the test can call it as the integration would.
#[derive(Default)]
struct Deployer {
    ctx: Mutex<Option<Arc<dyn Context>>>,
    handled: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Integration for Deployer {
    fn name(&self) -> &'static str {
        NAME
    }
    fn subscriptions(&self) -> &'static [&'static str] {
        &[DEPLOY]
    }
    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        self.handled.lock().unwrap().push(event.id.clone());
        *self.ctx.lock().unwrap() = Some(ctx.clone());
        let started = answer(NAME, &event, "sh.keptn.event.deployment.started".into(), "", common_data(&event));
        ctx.send(started).await?;
        let mut data = common_data(&event);
        data["result"] = json!("pass");
        data["status"] = json!("succeeded");
        data["deployment"] = json!({ "deploymentURIsLocal": ["http://svc.local"] });
        ctx.send(answer(NAME, &event, "sh.keptn.event.deployment.finished".into(), "", data)).await
    }
}

fn ids(events: &[KeptnEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

async fn inprocess_context(db: Db) {
    let deployer = Arc::new(Deployer::default());
    let extra = keptn_server::InProcessIntegrations(vec![deployer.clone()]);
    let Some(server) = TestServer::start_tuned(db, move |c| {
        c.integrations = Vec::new();
        c.extra_integrations = extra;
    })
    .await
    else {
        return;
    };
    let client = server.client();
    let http = client.api();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "svc").await;

    // Registered like a built-in, as soon as the server started.
    let (s, regs) = client.get(&format!("/api/controlPlane/v1/uniform/registration?name={NAME}")).await;
    assert_eq!(s, 200, "{regs}");
    let reg = &regs.as_array().expect("registrations")[0];
    assert_eq!(reg["metadata"]["hostname"], "built-in", "{reg}");
    assert_eq!(reg["metadata"]["location"], "control-plane", "{reg}");
    assert_eq!(reg["metadata"]["kubernetesmetadata"]["namespace"], "keptn", "{reg}");
    assert_eq!(reg["subscriptions"][0]["event"], DEPLOY, "{reg}");
    let integration_id = reg["id"].as_str().unwrap().to_string();

    // A delivery finishes on the in-process integration's answers.
    let context = client
        .send(json!({
            "type": "sh.keptn.event.dev.delivery.triggered",
            "source": "test",
            "data": { "project": "p", "stage": "dev", "service": "svc" }
        }))
        .await;
    let finished = client.wait_for(&context, "sh.keptn.event.dev.delivery.finished", Duration::from_secs(30)).await;
    assert_eq!(finished["data"]["result"], "pass", "{finished}");
    assert_eq!(deployer.handled.lock().unwrap().len(), 1, "handled once");
    let ctx = deployer.ctx.lock().unwrap().clone().expect("the integration kept its context");

    // The same answer again is accepted without effect.
    let by_context = EventQuery { keptn_context: Some(context.clone()), ..Default::default() };
    let before = ctx.events(by_context.clone()).await.unwrap();
    let answered = before.iter().find(|e| e.ty == "sh.keptn.event.deployment.finished").expect("answered").clone();
    ctx.send(answered.clone()).await.expect("a repeat is accepted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = ctx.events(by_context.clone()).await.unwrap();
    assert_eq!(ids(&after), ids(&before), "a repeated send stores nothing");

    // Events: as the datastore over HTTP answers them, oldest first by default.
    assert_eq!(after[0].ty, "sh.keptn.event.dev.delivery.triggered", "oldest first");
    assert_eq!(ids(&after), ids(&Context::events(&http, by_context.clone()).await.unwrap()));
    let newest = EventQuery { newest_first: true, offset: 1, limit: 2, ..by_context.clone() };
    let page = ctx.events(newest.clone()).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(ids(&page), ids(&Context::events(&http, newest).await.unwrap()));
    let oldest_page = EventQuery { offset: 1, limit: 2, ..by_context.clone() };
    assert_eq!(ids(&ctx.events(oldest_page.clone()).await.unwrap()), ids(&after[1..3]));
    assert_eq!(
        ids(&ctx.events(oldest_page.clone()).await.unwrap()),
        ids(&Context::events(&http, oldest_page).await.unwrap())
    );
    let by_id = EventQuery { event_id: Some(answered.id.clone()), ..Default::default() };
    assert_eq!(ids(&ctx.events(by_id).await.unwrap()), std::slice::from_ref(&answered.id));
    let valid = EventQuery {
        ty: Some("sh.keptn.event.deployment.finished".into()),
        project: Some("p".into()),
        stage: Some("dev".into()),
        service: Some("svc".into()),
        exclude_invalidated: true,
        ..Default::default()
    };
    let valid_here = ctx.events(valid.clone()).await.unwrap();
    assert_eq!(ids(&valid_here), std::slice::from_ref(&answered.id));
    assert_eq!(ids(&valid_here), ids(&Context::events(&http, valid).await.unwrap()));

    // Resources: at a commit vs at the head, listings, absent ones, as over HTTP.
    let at = ResourceAt {
        project: "p".into(),
        stage: Some("dev".into()),
        service: Some("svc".into()),
        uri: "config/app.yaml".into(),
        gitcommitid: None,
    };
    let level = keptn_client::resource_level("p", Some("dev"), Some("svc"));
    let v1 = http.put_resources(&level, &[("config/app.yaml".into(), b"v: 1".to_vec())], "one").await.unwrap();
    let commit = v1["commitID"].as_str().expect("commitID").to_string();
    ctx.put_resources(&at, vec![("config/app.yaml".into(), b"v: 2".to_vec())], "two").await.unwrap();
    let later = ResourceAt { uri: "later/sli.yaml".into(), ..at.clone() };
    ctx.put_resources(&later, vec![("/later/sli.yaml".into(), b"spec: {}".to_vec())], "three").await.unwrap();
    let pinned = ResourceAt { gitcommitid: Some(commit), ..at.clone() };
    let missing = ResourceAt { uri: "nope.yaml".into(), ..at.clone() };
    let project_level = ResourceAt { stage: None, service: None, uri: "shipyard.yaml".into(), ..at.clone() };
    for place in [&at, &pinned, &missing, &later, &project_level] {
        let here = ctx.resource(place).await.unwrap();
        assert_eq!(here, Context::resource(&http, place).await.unwrap(), "{place:?}");
    }
    assert_eq!(ctx.resource(&at).await.unwrap().as_deref(), Some(&b"v: 2"[..]));
    assert_eq!(ctx.resource(&pinned).await.unwrap().as_deref(), Some(&b"v: 1"[..]));
    assert_eq!(ctx.resource(&missing).await.unwrap(), None);
    let nowhere = ResourceAt { service: Some("ghost".into()), ..at.clone() };
    for place in [&at, &pinned, &nowhere, &project_level] {
        assert_eq!(ctx.resources(place).await.unwrap(), Context::resources(&http, place).await.unwrap(), "{place:?}");
    }
    let head_uris = ctx.resources(&at).await.unwrap().expect("the service exists");
    assert!(head_uris.iter().any(|u| u.trim_start_matches('/') == "later/sli.yaml"), "{head_uris:?}");
    let old_uris = ctx.resources(&pinned).await.unwrap().unwrap();
    assert!(!old_uris.iter().any(|u| u.contains("later/")), "listed at the old commit: {old_uris:?}");
    assert_eq!(ctx.resources(&nowhere).await.unwrap(), None);
    // A project-level shipyard.yaml must stay a shipyard, as over HTTP.
    let bad = ctx.put_resources(&project_level, vec![("shipyard.yaml".into(), b"not: a shipyard".to_vec())], "x").await;
    assert!(matches!(bad, Err(ContextError::Refused { status: 400, .. })), "{bad:?}");

    // Error logs land where `GET /controlPlane/v1/log` reads them.
    let entry = LogEntry {
        integration_id: integration_id.clone(),
        message: "deployment tool unreachable".into(),
        keptn_context: context.clone(),
        triggered_id: "t1".into(),
        task: "deployment".into(),
    };
    ctx.log_error(entry).await.unwrap();
    let (s, logs) = client.get(&format!("/api/controlPlane/v1/log?integrationId={integration_id}")).await;
    assert_eq!(s, 200, "{logs}");
    assert_eq!(logs["logs"][0]["message"], "deployment tool unreachable", "{logs}");
    assert_eq!(logs["logs"][0]["shkeptncontext"], context.as_str(), "{logs}");

    // Refused as the API refuses: bad input is a 4xx that retrying does not fix.
    let mut no_type = answered.clone();
    no_type.id = uuid::Uuid::new_v4().to_string();
    no_type.ty = String::new();
    let err = ctx.send(no_type).await.unwrap_err();
    assert!(matches!(err, ContextError::Refused { status: 400, .. }), "{err:?}");
    assert!(!err.is_transient());
    let mut unknown = answered.clone();
    unknown.id = uuid::Uuid::new_v4().to_string();
    unknown.data["project"] = json!("ghost");
    let err = ctx.send(unknown).await.unwrap_err();
    assert!(matches!(err, ContextError::Refused { status: 404, .. }), "{err:?}");

    server.stop().await;
    // The kept context does not keep the stopped server alive: it is unavailable now.
    let err = ctx.events(by_context).await.unwrap_err();
    assert!(matches!(err, ContextError::Unavailable(_)) && err.is_transient(), "{err:?}");
}

const DELAYED: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-p }
spec:
  stages:
    - name: dev
      sequences:
        - name: later
          tasks:
            - name: deployment
              triggeredAfter: "2s"
"#;

/// The control plane side, and the runner on it: open `.triggered` events include not-yet-due
/// ones (which HTTP pollers do not see yet) and the integration handles a delayed task once,
/// when due; heartbeats return the stored subscriptions (a user's edit shows) and None once the
/// registration is gone.
async fn inprocess_control_plane(db: Db) {
    let deployer = Arc::new(Deployer::default());
    let extra = keptn_server::InProcessIntegrations(vec![deployer.clone()]);
    let Some(server) = TestServer::start_tuned(db, move |c| {
        c.integrations = Vec::new();
        c.extra_integrations = extra;
    })
    .await
    else {
        return;
    };
    let client = server.client();
    let http = client.api();
    let cp = server.control_plane();
    client.create_project("p", DELAYED).await;
    client.create_service("p", "svc").await;
    let started = std::time::Instant::now();
    let context = client
        .send(json!({
            "type": "sh.keptn.event.dev.later.triggered",
            "source": "test",
            "data": { "project": "p", "stage": "dev", "service": "svc" }
        }))
        .await;
    let mut delayed = None;
    while delayed.is_none() && started.elapsed() < Duration::from_millis(1500) {
        let open = cp.open_triggered(DEPLOY).await.unwrap();
        delayed = open.into_iter().find(|e| e.shkeptncontext == context);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delayed = delayed.expect("the delayed task is open in-process before it is due");
    if started.elapsed() < Duration::from_millis(1500) {
        let polled = ControlPlane::open_triggered(&http, DEPLOY).await.unwrap();
        assert!(polled.iter().all(|e| e.shkeptncontext != context), "not due yet for HTTP pollers: {polled:#?}");
        assert!(deployer.handled.lock().unwrap().is_empty(), "not handled before it is due");
    }
    let finished = client.wait_for(&context, "sh.keptn.event.dev.later.finished", Duration::from_secs(30)).await;
    assert_eq!(finished["data"]["result"], "pass", "{finished}");
    assert!(started.elapsed() >= Duration::from_millis(1900), "handled when due: {:?}", started.elapsed());
    assert_eq!(deployer.handled.lock().unwrap().as_slice(), std::slice::from_ref(&delayed.id), "handled once");

    // Registration and heartbeats through the in-process control plane.
    let registration = keptn_integration::runner::registration("cp-test-service", "1", "h", "remote", "ns", &[DEPLOY]);
    let id = cp.register(registration.clone()).await.unwrap();
    assert_eq!(cp.register(registration).await.unwrap(), id, "keptn's upsert: same name, namespace and host");
    let subs = cp.heartbeat(&id).await.unwrap().expect("registered");
    assert_eq!(subs.len(), 1, "{subs:?}");
    let path = format!("/api/controlPlane/v1/uniform/registration/{id}/subscription/{}", subs[0].id);
    let edit = json!({ "event": DEPLOY, "filter": { "projects": ["p"], "stages": [], "services": [] } });
    let (s, b) = client.put(&path, edit).await;
    assert_eq!(s, 201, "{b}");
    let edited = cp.heartbeat(&id).await.unwrap().expect("registered");
    assert_eq!(edited[0].filter.projects, ["p"], "the stored, edited subscriptions: {edited:?}");
    let (s, b) = client.delete(&format!("/api/controlPlane/v1/uniform/registration/{id}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(cp.heartbeat(&id).await.unwrap(), None, "gone");
    server.stop().await;
    assert!(cp.heartbeat(&id).await.unwrap_err().is_transient(), "a stopped server is unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_context_sqlite() {
    inprocess_context(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_context_postgres() {
    inprocess_context(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_control_plane_sqlite() {
    inprocess_control_plane(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_control_plane_postgres() {
    inprocess_control_plane(Db::Postgres).await;
}

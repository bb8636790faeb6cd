//! The integration contract over HTTP against a real server in-process: an event sent twice with
//! one id is stored once, the datastore by context oldest first, resources at a commit and at
//! the head, heartbeats after the registration is gone, and refused vs unavailable errors.

use keptn_client::Client;
use keptn_formats::KeptnEvent;
use keptn_integration::{Context, ContextError, ControlPlane, EventQuery, Registration, ResourceAt};
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "client-test-token-0123";
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

async fn start(dir: &tempfile::TempDir) -> keptn_server::RunningServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = keptn_server::ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        task_start_timeout: Duration::from_secs(600),
        database_url: None,
        api_token: TOKEN.into(),
        max_body_bytes: 64 * 1024,
        integration_ttl: Duration::from_secs(3600),
        secret_key: None,
        upstream_freshness: Duration::from_millis(200),
        quality_gates: keptn_server::QualityGates::default(),
        outbound: keptn_server::OutboundPolicy::allow_loopback(),
        http: keptn_server::HttpLimits::default(),
        nats_url: None,
        integrations: keptn_server::all_integrations(),
        extra_integrations: Default::default(),
        execution: Default::default(),
    };
    keptn_server::start(config).await.expect("server starts")
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn event(id: &str, context: &str, ty: &str) -> KeptnEvent {
    let mut ev = KeptnEvent::new(
        id.into(),
        ty.into(),
        context.into(),
        String::new(),
        json!({ "project": "p", "stage": "dev", "service": "svc" }),
    );
    ev.source = "client-test".into();
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir).await;
    let client = Client::new(format!("http://{}", server.addr), TOKEN);
    client.post("/api/controlPlane/v1/project", &json!({ "name": "p", "shipyard": b64(SHIPYARD) })).await.unwrap();
    client.post("/api/controlPlane/v1/project/p/service", &json!({ "serviceName": "svc" })).await.unwrap();

    // send twice with one id: one stored event.
    let context = uuid::Uuid::new_v4().to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let ev = event(&id, &context, "sh.keptn.event.dev.delivery.triggered");
    client.send(ev.clone()).await.unwrap();
    client.send(ev).await.unwrap();
    let by_id = client.events(EventQuery { event_id: Some(id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(by_id.len(), 1, "{by_id:#?}");
    assert_eq!(by_id[0].id, id);

    // events by context, oldest first: the sequence's trigger before its first task.
    let query = EventQuery { keptn_context: Some(context.clone()), ..Default::default() };
    let mut events = Vec::new();
    for _ in 0..200 {
        events = client.events(query.clone()).await.unwrap();
        if events.iter().any(|e| e.ty == "sh.keptn.event.deployment.triggered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events[0].id, id, "oldest first: {events:#?}");
    assert!(events.iter().any(|e| e.ty == "sh.keptn.event.deployment.triggered"), "{events:#?}");
    assert!(events.iter().all(|e| e.shkeptncontext == context));
    let open = ControlPlane::open_triggered(&client, "sh.keptn.event.deployment.triggered").await.unwrap();
    assert!(open.iter().any(|e| e.shkeptncontext == context), "{open:#?}");

    // resources: at a commit vs at the head; absent is None.
    let at = ResourceAt {
        project: "p".into(),
        stage: Some("dev".into()),
        service: Some("svc".into()),
        uri: "config/app.yaml".into(),
        gitcommitid: None,
    };
    let first = keptn_client::resource_level("p", Some("dev"), Some("svc"));
    let v1 = client.put_resources(&first, &[("config/app.yaml".into(), b"v: 1".to_vec())], "one").await.unwrap();
    let commit = v1["commitID"].as_str().expect("commitID").to_string();
    Context::put_resources(&client, &at, vec![("config/app.yaml".into(), b"v: 2".to_vec())], "two").await.unwrap();
    assert_eq!(Context::resource(&client, &at).await.unwrap().as_deref(), Some(&b"v: 2"[..]));
    let pinned = ResourceAt { gitcommitid: Some(commit), ..at.clone() };
    assert_eq!(Context::resource(&client, &pinned).await.unwrap().as_deref(), Some(&b"v: 1"[..]));
    let missing = ResourceAt { uri: "nope.yaml".into(), ..at.clone() };
    assert_eq!(Context::resource(&client, &missing).await.unwrap(), None);
    // listing: what a commit held, not the head; an unknown service is None.
    let first_uris = Context::resources(&client, &pinned).await.unwrap().expect("the service exists");
    assert!(first_uris.iter().any(|u| u.trim_start_matches('/') == "config/app.yaml"), "{first_uris:?}");
    let later = ResourceAt { uri: "later/sli.yaml".into(), ..at.clone() };
    Context::put_resources(&client, &later, vec![("later/sli.yaml".into(), b"spec: {}".to_vec())], "three")
        .await
        .unwrap();
    let head_uris = Context::resources(&client, &at).await.unwrap().unwrap();
    assert!(head_uris.iter().any(|u| u.trim_start_matches('/') == "later/sli.yaml"), "{head_uris:?}");
    let old_uris = Context::resources(&client, &pinned).await.unwrap().unwrap();
    assert!(!old_uris.iter().any(|u| u.contains("later/")), "listed at the old commit: {old_uris:?}");
    let nowhere = ResourceAt { service: Some("ghost".into()), ..at.clone() };
    assert_eq!(Context::resources(&client, &nowhere).await.unwrap(), None);

    // heartbeat: the stored subscriptions while registered, None once deleted.
    let registration: Registration = serde_json::from_value(json!({
        "name": "client-test-service",
        "metadata": { "hostname": "h", "integrationversion": "1", "distributorversion": "1", "location": "remote" },
        "subscriptions": [{ "event": "sh.keptn.event.deployment.triggered" }]
    }))
    .unwrap();
    let reg = ControlPlane::register(&client, registration).await.unwrap();
    let subs = client.heartbeat(&reg).await.unwrap().expect("registered");
    assert_eq!(subs.len(), 1, "{subs:#?}");
    // Read without a heartbeat: the same stored subscriptions.
    let read = ControlPlane::subscriptions(&client, &reg).await.unwrap().expect("registered");
    assert_eq!(read.iter().map(|s| &s.event).collect::<Vec<_>>(), subs.iter().map(|s| &s.event).collect::<Vec<_>>());
    client.unregister(&reg).await.unwrap();
    assert!(client.heartbeat(&reg).await.unwrap().is_none(), "gone after delete");
    assert!(ControlPlane::subscriptions(&client, &reg).await.unwrap().is_none(), "no subscriptions after delete");

    // refused: bad input is a 4xx that retrying does not fix.
    let bad = event(&uuid::Uuid::new_v4().to_string(), &context, "");
    match client.send(bad).await {
        Err(ContextError::Refused { status, message }) => {
            assert_eq!(status, 400, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    let wrong_token = Client::new(client.endpoint(), "wrong");
    let err = wrong_token.events(query.clone()).await.unwrap_err();
    assert!(matches!(err, ContextError::Refused { status: 401, .. }), "{err:?}");
    assert!(!err.is_transient());

    // unavailable: the server is stopped.
    server.stop().await;
    let err = client.events(query).await.unwrap_err();
    assert!(matches!(err, ContextError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
    let msg = client.get("/api/v1/metadata").await.unwrap_err().to_string();
    assert!(msg.contains(client.endpoint()) && msg.contains("keptn server"), "{msg}");
}

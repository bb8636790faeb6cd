//! The webhook built-in on a real server: a shipyard task answered by a webhook that posts to a
//! local sink (the `.finished` carries the sink's answer), and `keptn create webhook` writing the
//! file and the subscription together. SQLite; the harness allows loopback targets.

mod support;

use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cli::keptn;
use support::*;

const REG: &str = "/api/controlPlane/v1/uniform/registration";
const TASK_TRIGGERED: &str = "sh.keptn.event.notify.triggered";

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: hooks }
spec:
  stages:
    - name: dev
      sequences:
        - name: tell
          tasks:
            - name: notify
"#;

/// What the sink received: path, headers (name: value), body.
type Seen = Arc<Mutex<Vec<(String, Vec<String>, String)>>>;

/// A sink on loopback answering every POST with `{"received": true, "n": <count>}`.
async fn sink() -> (String, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        post(move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let headers = headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or(""))).collect();
                let mut seen = s.lock().unwrap();
                seen.push((uri.path().to_string(), headers, body));
                axum::Json(json!({ "received": true, "n": seen.len() }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn webhook_service_id(client: &Client) -> String {
    let (s, regs) = client.get(&format!("{REG}?name=webhook-service")).await;
    assert_eq!(s, 200, "{regs}");
    regs[0]["id"].as_str().expect("webhook-service registered").to_string()
}

async fn setup() -> Option<(TestServer, Client)> {
    let server = TestServer::start(Db::Sqlite).await?;
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "svc").await;
    Some((server, client))
}

/// Starts the `tell` sequence; returns its context.
async fn tell(client: &Client) -> String {
    client
        .send(json!({ "type": "sh.keptn.event.dev.tell.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": "svc" } }))
        .await
}

/// The webhook-service's `notify.finished` of a context.
async fn webhook_finished(client: &Client, ctx: &str) -> Value {
    eventually(Duration::from_secs(20), "the webhook answers the task", || {
        let client = client.clone();
        let ctx = ctx.to_string();
        async move {
            client
                .events_of(&ctx)
                .await
                .into_iter()
                .find(|e| e["type"] == "sh.keptn.event.notify.finished" && e["source"] == "webhook-service")
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_answered_by_a_webhook_with_the_response_in_finished() {
    let Some((server, client)) = setup().await else { return };
    let (url, seen) = sink().await;
    let id = webhook_service_id(&client).await;
    let (s, b) = client
        .post(&format!("{REG}/{id}/subscription"), json!({ "event": TASK_TRIGGERED, "filter": { "projects": ["p"] } }))
        .await;
    assert_eq!(s, 201, "{b}");
    let sid = b["id"].as_str().unwrap();
    let file = format!(
        r#"apiVersion: webhookconfig.keptn.sh/v1beta1
kind: WebhookConfig
metadata: {{name: webhook-configuration}}
spec:
  webhooks:
    - type: {TASK_TRIGGERED}
      subscriptionID: {sid}
      sendStarted: true
      sendFinished: true
      requests:
        - url: {url}/hook/{{{{.data.project}}}}
          method: POST
          headers: [{{key: Content-Type, value: application/json}}]
          payload: '{{"project": "{{{{.data.project}}}}", "context": "{{{{.shkeptncontext}}}}"}}'
"#
    );
    client
        .api()
        .put_resources(
            &keptn_client::resource_level("p", None, None),
            &[("webhook/webhook.yaml".into(), file.into_bytes())],
            "webhook",
        )
        .await
        .unwrap();

    let ctx = tell(&client).await;
    let finished = webhook_finished(&client, &ctx).await;
    assert_eq!(finished["data"]["status"], "succeeded", "{finished}");
    assert_eq!(finished["data"]["notify"]["responses"], json!([{ "received": true, "n": 1 }]));
    client.wait_for(&ctx, "sh.keptn.event.dev.tell.finished", Duration::from_secs(20)).await;
    let started: Vec<Value> = client
        .events_of(&ctx)
        .await
        .into_iter()
        .filter(|e| e["type"] == "sh.keptn.event.notify.started" && e["source"] == "webhook-service")
        .collect();
    assert_eq!(started.len(), 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/hook/p");
    let body: Value = serde_json::from_str(&seen[0].2).unwrap();
    assert_eq!(body, json!({ "project": "p", "context": ctx }));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_create_webhook_writes_the_file_and_the_subscription() {
    let Some((server, client)) = setup().await else { return };
    let (url, seen) = sink().await;
    let home = tempfile::tempdir().unwrap();
    let o = keptn(home.path(), &["auth", "--endpoint", &server.url, "--api-token", &server.token]).await;
    assert_eq!(o.code, 0, "auth: {o}");
    let hook_url = format!("{url}/cli/{{{{.data.stage}}}}");
    let args = [
        "create",
        "webhook",
        "--project",
        "p",
        "--task",
        "notify",
        "--url",
        &hook_url,
        "--header",
        "x-kind: cli",
        "--payload",
        "{\"id\": \"{{.id}}\"}",
        "--stage",
        "dev",
    ];
    let o = keptn(home.path(), &args).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Webhook for task notify created"), "{o}");

    let id = webhook_service_id(&client).await;
    let (_, subs) = client.get(&format!("{REG}/{id}/subscription")).await;
    let sub = subs.as_array().unwrap().iter().find(|s| s["event"] == TASK_TRIGGERED).expect("subscription").clone();
    assert_eq!(sub["filter"]["projects"], json!(["p"]));
    assert_eq!(sub["filter"]["stages"], json!(["dev"]));
    let level = keptn_client::resource_level("p", Some("dev"), None);
    let file = client.api().resource(&level, "webhook/webhook.yaml", None).await.unwrap().expect("file at stage level");
    let text = String::from_utf8(file).unwrap();
    assert!(text.contains(sub["id"].as_str().unwrap()), "{text}");

    // A second one for the same task merges into the file.
    let o = keptn(
        home.path(),
        &[
            "create",
            "webhook",
            "--project",
            "p",
            "--task",
            "notify",
            "--url",
            &format!("{url}/second"),
            "--stage",
            "dev",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{o}");
    let text =
        String::from_utf8(client.api().resource(&level, "webhook/webhook.yaml", None).await.unwrap().unwrap()).unwrap();
    assert_eq!(text.matches("subscriptionID").count(), 2, "{text}");

    let ctx = tell(&client).await;
    client.wait_for(&ctx, "sh.keptn.event.dev.tell.finished", Duration::from_secs(20)).await;
    let seen = seen.lock().unwrap().clone();
    let mut paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/cli/dev", "/second"], "one call per subscription");
    let cli = seen.iter().find(|s| s.0 == "/cli/dev").unwrap();
    assert!(cli.1.contains(&"x-kind: cli".to_string()), "{:?}", cli.1);
    assert!(cli.2.starts_with("{\"id\": \""), "{}", cli.2);

    let o = keptn(
        home.path(),
        &["create", "webhook", "--project", "p", "--task", "notify", "--url", "x", "--method", "FETCH"],
    )
    .await;
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("method \"FETCH\" must be one of"), "{o}");
    server.stop().await;
}

//! NATS JetStream (`--nats-url`) against a real nats-server of the test's own: a keptn-style
//! integration learns of `deployment.triggered` only from NATS and answers on NATS
//! (`.started`/`.finished` published to their subjects, ingested by the control plane); the
//! nats-server is killed mid-run while events keep arriving over HTTP, then restarted: every
//! sequence finishes and the stream holds every stored event exactly once. SQLite.

mod support;

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use support::nats::Nats;
use support::*;

const WAIT: Duration = Duration::from_secs(60);
const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: nats }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
"#;

/// The keptn-style integration: a durable JetStream consumer on `deployment.triggered` (so it
/// survives the nats-server restart), answering each `.triggered` once on NATS, with an event id
/// as `Nats-Msg-Id` (as keptn's go-sdk does), never through the API.
fn spawn_nats_integration(url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let nats = async_nats::ConnectOptions::new().retry_on_initial_connect().connect(url).await.unwrap();
        let js = async_nats::jetstream::new(nats);
        let mut answered = std::collections::HashSet::new();
        loop {
            let consumer = async {
                let stream = js.get_stream("KEPTN").await.ok()?;
                stream
                    .get_or_create_consumer(
                        "test-deployer",
                        async_nats::jetstream::consumer::pull::Config {
                            durable_name: Some("test-deployer".into()),
                            filter_subject: "sh.keptn.event.deployment.triggered".into(),
                            ack_wait: Duration::from_secs(2),
                            ..Default::default()
                        },
                    )
                    .await
                    .ok()
            }
            .await;
            let Some(consumer) = consumer else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(mut messages) = consumer.messages().await else { continue };
            while let Some(Ok(msg)) = messages.next().await {
                let triggered: Value = serde_json::from_slice(&msg.payload).unwrap();
                if answered.insert(triggered["id"].as_str().unwrap().to_string()) {
                    let (started, finished) = answers("nats-deployer", &triggered, "pass", json!({}));
                    for mut event in [started, finished] {
                        let id = uuid::Uuid::new_v4().to_string();
                        event["id"] = json!(id);
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert("Nats-Msg-Id", id.as_str());
                        let subject = event["type"].as_str().unwrap().to_string();
                        let payload = serde_json::to_vec(&event).unwrap();
                        // Retried until JetStream has it: NATS may be down right now.
                        while js
                            .publish_with_headers(subject.clone(), headers.clone(), payload.clone().into())
                            .await
                            .is_err()
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                let _ = msg.double_ack().await;
            }
        }
    })
}

/// Every message in the stream, by `Nats-Msg-Id`: how many times each id is there.
async fn stream_ids(url: &str) -> HashMap<String, usize> {
    let nats = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let mut stream = js.get_stream("KEPTN").await.unwrap();
    let total = stream.info().await.unwrap().state.messages;
    let mut ids = HashMap::new();
    for seq in 1..=total {
        let msg = stream.get_raw_message(seq).await.unwrap();
        let id = msg.headers.get("Nats-Msg-Id").unwrap().to_string();
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

#[tokio::test]
async fn nats_outage_loses_nothing_and_publishes_once() {
    let mut nats = Nats::start();
    let url = nats.url();
    let server = TestServer::start_tuned(Db::Sqlite, |c| c.nats_url = Some(url.clone())).await.unwrap();
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "svc").await;
    let integration = spawn_nats_integration(url.clone());

    let trigger = |client: Client| async move {
        client
            .send(json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "test",
                          "data": { "project": "p", "stage": "dev", "service": "svc" } }))
            .await
    };
    let mut contexts = Vec::new();
    for _ in 0..3 {
        contexts.push(trigger(client.clone()).await);
    }
    client.wait_for(&contexts[0], "sh.keptn.event.dev.delivery.finished", WAIT).await;

    nats.kill();
    for _ in 0..3 {
        contexts.push(trigger(client.clone()).await); // accepted while NATS is down
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.spawn();

    for context in &contexts {
        client.wait_for(context, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    }
    let store = server.store().await.unwrap();
    let mut stored = Vec::new();
    for context in &contexts {
        stored.extend(client.events_of(context).await.into_iter().map(|e| e["id"].as_str().unwrap().to_string()));
    }
    // The last `.finished` may still be on its way to the stream.
    let ids = eventually(WAIT, "every stored event in the stream", || {
        let (url, stored) = (url.clone(), stored.clone());
        async move {
            let ids = stream_ids(&url).await;
            stored.iter().all(|id| ids.contains_key(id)).then_some(ids)
        }
    })
    .await;
    for id in &stored {
        assert_eq!(ids[id], 1, "event {id} is in the stream {} times", ids[id]);
    }
    // Each sequence's deployment was triggered once, and answered once, from NATS.
    for context in &contexts {
        let events = client.events_of(context).await;
        let count = |ty: &str| events.iter().filter(|e| e["type"] == ty).count();
        assert_eq!(count("sh.keptn.event.deployment.triggered"), 1, "{context}");
        assert_eq!(count("sh.keptn.event.deployment.started"), 1, "{context}");
        assert_eq!(count("sh.keptn.event.deployment.finished"), 1, "{context}");
        let answer = events.iter().find(|e| e["type"] == "sh.keptn.event.deployment.finished").unwrap();
        assert_eq!(answer["source"], "nats-deployer", "{answer}");
    }
    drop(store);
    integration.abort();
    server.stop().await;
}

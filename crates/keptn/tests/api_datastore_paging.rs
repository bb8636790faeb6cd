//! `GET /api/mongodb-datastore/event` pages with keyset keys: following `nextPageKey` returns
//! every matching event once, newest first, filters apply, events arriving meanwhile neither
//! repeat nor shift a page, and keptn's numeric keys still work. SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
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

const DS: &str = "/api/mongodb-datastore/event";
/// The test's events (project creation may store events of its own).
const P: &str = "project=p&type=sh.keptn.event.deployment.finished";

fn ids(body: &Value) -> Vec<String> {
    body["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

async fn send(client: &Client, i: usize, context: &str) {
    let ev = json!({ "type": "sh.keptn.event.deployment.finished", "source": "test", "triggeredid": format!("t{i}"),
                     "shkeptncontext": context, "data": { "project": "p", "stage": "dev", "service": "carts", "n": i } });
    client.send(ev).await;
}

/// Follows `nextPageKey` from the first page; returns the ids and every page's body.
async fn walk(client: &Client, query: &str) -> (Vec<String>, Vec<Value>) {
    let (mut all, mut pages, mut key) = (Vec::new(), Vec::new(), String::new());
    loop {
        let (s, b) = client.get(&format!("{DS}?{query}&nextPageKey={key}")).await;
        assert_eq!(s, 200, "{b}");
        all.extend(ids(&b));
        key = b["nextPageKey"].as_str().expect("nextPageKey is a string, as keptn's").to_string();
        pages.push(b);
        if key == "0" {
            return (all, pages);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datastore_pages_follow_keys_without_gaps_or_repeats() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(server) = TestServer::start(db).await else { continue };
        let client = server.client();
        client.create_project("p", SHIPYARD).await;
        client.create_service("p", "carts").await;
        let (ctx_a, ctx_b) = ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222");
        for i in 0..45 {
            send(&client, i, if i % 3 == 0 { ctx_b } else { ctx_a }).await;
        }
        let (s, everything) = client.get(&format!("{DS}?{P}&pageSize=100")).await;
        assert_eq!(s, 200, "{everything}");
        let everything = ids(&everything);
        // Newest first: the last sent event comes first (project p has only these events).
        let (_, newest) = client.get(&format!("{DS}?{P}&pageSize=1")).await;
        assert_eq!(newest["events"][0]["data"]["n"], 44, "{db:?}");
        assert_eq!(everything.len(), 45);

        for size in [1, 7, 20] {
            let (seen, pages) = walk(&client, &format!("{P}&pageSize={size}")).await;
            assert_eq!(seen, everything, "{db:?} pageSize {size}: every event once, in order");
            assert_eq!(pages[0]["totalCount"], 45, "{db:?}: {}", pages[0]);
            assert!(pages.iter().all(|p| p["pageSize"].as_u64().unwrap() <= size));
            assert!(pages.iter().all(|p| p["totalCount"] == 45), "{db:?}: the count stays the same on every page");
        }
        let (seen, pages) = walk(&client, &format!("keptnContext={ctx_b}&pageSize=4")).await;
        assert_eq!(seen.len(), 15, "{db:?}: the context filter");
        assert_eq!(pages[0]["totalCount"], 15);
        let (s, b) = client.get(&format!("{DS}?{P}&keptnContext={ctx_b}&pageSize=100")).await;
        assert_eq!(s, 200);
        assert_eq!(ids(&b), seen, "{db:?}: paged and unpaged agree");

        // Events that arrive between two pages do not shift the next one.
        let (_, first) = client.get(&format!("{DS}?{P}&pageSize=10")).await;
        let key = first["nextPageKey"].as_str().unwrap().to_string();
        for i in 45..50 {
            send(&client, i, ctx_a).await;
        }
        let (s, second) = client.get(&format!("{DS}?{P}&pageSize=10&nextPageKey={key}")).await;
        assert_eq!(s, 200, "{second}");
        assert_eq!(ids(&second), everything[10..20].to_vec(), "{db:?}");

        // keptn's numeric keys are offsets.
        let (s, by_offset) = client.get(&format!("{DS}?{P}&pageSize=10&nextPageKey=15")).await;
        assert_eq!(s, 200, "{by_offset}");
        assert_eq!(ids(&by_offset), everything[10..20].to_vec(), "{db:?}: 5 newer events, then offset 15");
        for bad in ["abc", "1_2", "-3"] {
            let (s, b) = client.get(&format!("{DS}?{P}&nextPageKey={bad}")).await;
            assert_eq!(s, 400, "{bad}: {b}");
            assert!(b["message"].as_str().unwrap().contains("nextPageKey"), "{b}");
        }
        server.stop().await;
    }
}

//! The webhook built-in against the fake Context and a real HTTP sink on loopback.

use super::*;
use crate::testing::Fake;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Response, StatusCode};
use keptn_outbound::OutboundPolicy;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TRIGGERED: &str = "sh.keptn.event.notify.triggered";

/// What the sink saw: method, path, headers as `name: value` lines, body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<String>,
    body: String,
}

#[derive(Default)]
struct Sink {
    seen: Mutex<Vec<Seen>>,
    flaky: AtomicUsize,
}

impl Sink {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

async fn route(
    sink: Arc<Sink>,
    req: hyper::Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = String::from_utf8_lossy(&body.collect().await.map(|b| b.to_bytes()).unwrap_or_default()).into_owned();
    let headers: Vec<String> =
        parts.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or_default())).collect();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    };
    sink.seen.lock().unwrap().push(seen);
    Ok(match parts.uri.path() {
        "/text" => reply(StatusCode::OK, "plain words".into()),
        "/big" => reply(StatusCode::OK, "x".repeat(700 * 1024)),
        "/echo" => reply(StatusCode::OK, json!({ "headers": headers, "body": body }).to_string()),
        "/missing" => reply(StatusCode::NOT_FOUND, "no such hook".into()),
        "/fail" => reply(StatusCode::INTERNAL_SERVER_ERROR, "".into()),
        // 503 twice, then 200.
        "/flaky" if sink.flaky.fetch_add(1, Ordering::SeqCst) < 2 => reply(StatusCode::SERVICE_UNAVAILABLE, "".into()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            reply(StatusCode::OK, "late".into())
        }
        "/redirect" => {
            let mut response = reply(StatusCode::FOUND, "".into());
            let to = parts.uri.query().unwrap_or_default().to_string();
            response.headers_mut().insert("location", to.parse().unwrap());
            response
        }
        _ => reply(StatusCode::OK, json!({ "ok": true }).to_string()),
    })
}

/// A sink on a free port of `ip`: its base URL and what it saw.
async fn serve_on(ip: &str) -> (String, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared = sink.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sink = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| route(sink.clone(), req));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (base, sink)
}

async fn serve() -> (String, Arc<Sink>) {
    serve_on("127.0.0.1").await
}

fn webhook(policy: OutboundPolicy) -> Webhook {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Webhook::new(Outbound::new(policy, Duration::from_secs(5)).unwrap())
}

fn event(ty: &str, sid: Option<&str>) -> Arc<KeptnEvent> {
    let mut data = json!({ "project": "p", "stage": "dev", "service": "svc", "labels": {"team": "a"} });
    if let Some(sid) = sid {
        data["temporaryData"] = json!({ "distributor": { "subscriptionID": sid } });
    }
    let mut e = KeptnEvent::new("t1".into(), ty.into(), "ctx1".into(), String::new(), data);
    e.source = "shipyard-controller".into();
    Arc::new(e)
}

/// A v1beta1 file with one webhook for `s1`.
fn beta(started: bool, finished: bool, extra: &str, requests: &[String]) -> String {
    let requests: String = requests.iter().map(|r| format!("        - {r}\n")).collect();
    format!(
        "apiVersion: webhookconfig.keptn.sh/v1beta1\nkind: WebhookConfig\nspec:\n  webhooks:\n    - type: {TRIGGERED}\n      subscriptionID: s1\n      sendStarted: {started}\n      sendFinished: {finished}\n{extra}      requests:\n{requests}"
    )
}

fn get(base: &str, path: &str) -> String {
    format!("{{url: '{base}{path}', method: GET}}")
}

fn of_kind(fake: &Fake, kind: &str) -> Vec<KeptnEvent> {
    fake.sent().into_iter().filter(|e| e.ty == format!("sh.keptn.event.notify.{kind}")).collect()
}

async fn run(hook: &Webhook, fake: &Arc<Fake>, event: Arc<KeptnEvent>) -> ContextResult<()> {
    hook.handle(event, fake.clone()).await
}

#[tokio::test]
async fn send_started_and_finished_one_of_each_with_the_responses() {
    let (base, sink) = serve().await;
    let fake = Fake::new();
    fake.file(
        "p",
        Some("dev"),
        Some("svc"),
        config::URI,
        &beta(true, true, "", &[get(&base, "/json"), get(&base, "/text")]),
    );
    let hook = webhook(OutboundPolicy::allow_loopback());
    run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    assert_eq!(sink.seen().len(), 2);
    assert_eq!(of_kind(&fake, "started").len(), 1);
    let finished = of_kind(&fake, "finished");
    assert_eq!(finished.len(), 1);
    let f = &finished[0];
    assert_eq!((f.status(), f.result()), ("succeeded", "pass"));
    assert_eq!(f.data["notify"]["responses"], json!([{ "ok": true }, "plain words"]), "JSON when it parses, else text");
    assert_eq!((f.triggeredid.as_str(), f.source.as_str(), f.project()), ("t1", NAME, "p"));
    assert_eq!(f.data["labels"]["team"], "a");
}

#[tokio::test]
async fn answers_beyond_the_limit_are_left_out_by_size() {
    let (base, _sink) = serve().await;
    let fake = Fake::new();
    fake.file(
        "p",
        None,
        None,
        config::URI,
        &beta(false, true, "", &[get(&base, "/big"), get(&base, "/big"), get(&base, "/json")]),
    );
    run(&webhook(OutboundPolicy::allow_loopback()), &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    let responses = of_kind(&fake, "finished")[0].data["notify"]["responses"].clone();
    assert_eq!(responses[0].as_str().map(str::len), Some(700 * 1024));
    assert_eq!(
        responses[1],
        json!("(an answer of 716800 bytes, left out: the answers in one .finished are kept up to 1048576 bytes)")
    );
    assert_eq!(responses[2], json!({ "ok": true }), "small ones still fit");
}

#[tokio::test]
async fn send_started_without_finished_sends_one_started_per_request_and_no_finished() {
    let (base, _sink) = serve().await;
    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(true, false, "", &[get(&base, "/a"), get(&base, "/b")]));
    run(&webhook(OutboundPolicy::allow_loopback()), &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    let started = of_kind(&fake, "started");
    assert_eq!(started.len(), 2, "the called systems send their .finished themselves");
    assert_ne!(started[0].id, started[1].id);
    assert!(of_kind(&fake, "finished").is_empty());
}

#[tokio::test]
async fn neither_flag_sends_nothing_and_finished_only_sends_one_finished() {
    let (base, sink) = serve().await;
    let fake = Fake::new();
    fake.file("p", Some("dev"), None, config::URI, &beta(false, false, "", &[get(&base, "/a")]));
    let hook = webhook(OutboundPolicy::allow_loopback());
    run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    assert!(fake.sent().is_empty());
    assert_eq!(sink.seen().len(), 1);

    let fake = Fake::new();
    fake.file("p", Some("dev"), None, config::URI, &beta(false, true, "", &[get(&base, "/a")]));
    run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    assert!(of_kind(&fake, "started").is_empty());
    assert_eq!(of_kind(&fake, "finished").len(), 1);
}

#[tokio::test]
async fn the_first_failure_stops_the_rest_and_errored_finished_events_balance_the_started() {
    let (base, sink) = serve().await;
    let hook = webhook(OutboundPolicy::allow_loopback());
    let requests = [get(&base, "/a"), get(&base, "/missing"), get(&base, "/never")];

    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(true, false, "", &requests));
    let err = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap_err();
    assert!(!err.is_transient(), "written to the error log by the runner: {err}");
    assert_eq!(sink.seen().iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["/a", "/missing"]);
    assert_eq!(of_kind(&fake, "started").len(), 3);
    let finished = of_kind(&fake, "finished");
    assert_eq!(finished.len(), 2, "requests 2 and 3 will not be answered by anyone");
    for f in &finished {
        assert_eq!((f.status(), f.result()), ("errored", "fail"));
        assert!(
            f.message().contains("request 2 (GET") && f.message().contains("HTTP 404 Not Found: no such hook"),
            "{}",
            f.message()
        );
    }

    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(true, true, "", &requests));
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    let finished = of_kind(&fake, "finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].status(), "errored");
}

#[tokio::test]
async fn a_missing_config_answers_started_and_errored_finished() {
    let fake = Fake::new();
    fake.file("p", None, None, config::URI, "apiVersion: webhookconfig.keptn.sh/v9\n");
    let _ = run(&webhook(OutboundPolicy::allow_loopback()), &fake, event(TRIGGERED, Some("s1"))).await;
    assert_eq!(of_kind(&fake, "started").len(), 1);
    let finished = of_kind(&fake, "finished");
    assert_eq!(finished.len(), 1);
    let message = finished[0].message();
    assert!(message.starts_with("could not retrieve Webhook config: no valid webhook config found"), "{message}");
    assert!(message.contains("webhook/webhook.yaml of project p: apiVersion"), "says which file is wrong: {message}");
}

#[tokio::test]
async fn the_service_level_file_wins_and_lookup_is_per_subscription() {
    let (base, sink) = serve().await;
    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(false, false, "", &[get(&base, "/project")]));
    let service = beta(false, false, "", &[get(&base, "/service")]).replace("subscriptionID: s1", "subscriptionID: s2");
    fake.file("p", Some("dev"), Some("svc"), config::URI, &service);
    let hook = webhook(OutboundPolicy::allow_loopback());
    run(&hook, &fake, event(TRIGGERED, Some("s2"))).await.unwrap();
    run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    let paths: Vec<String> = sink.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/service", "/project"]);
}

#[tokio::test]
async fn each_subscription_gets_its_own_answers() {
    let (base, _sink) = serve().await;
    let fake = Fake::new();
    let both = format!(
        "{}    - type: {TRIGGERED}\n      subscriptionID: s2\n      sendFinished: true\n      requests: [\"{{url: '{base}/b', method: GET}}\"]\n",
        beta(true, true, "", &[get(&base, "/a")])
    )
    .replace("[\"{url", "[{url")
    .replace("GET}\"]", "GET}]");
    fake.file("p", None, None, config::URI, &both);
    let hook = webhook(OutboundPolicy::allow_loopback());
    run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    run(&hook, &fake, event(TRIGGERED, Some("s2"))).await.unwrap();
    run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    assert_eq!(of_kind(&fake, "finished").len(), 2, "one per subscription; a repeat has the same id");
    assert_eq!(of_kind(&fake, "started").len(), 2);
}

#[tokio::test]
async fn notifications_and_events_without_a_subscription_get_no_answer() {
    let (base, sink) = serve().await;
    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(true, true, "", &[get(&base, "/a")]));
    let hook = webhook(OutboundPolicy::allow_loopback());
    run(&hook, &fake, event("sh.keptn.event.evaluation.finished", Some("s1"))).await.unwrap();
    assert_eq!(sink.seen().len(), 1, "the notification was sent");
    run(&hook, &fake, event(TRIGGERED, None)).await.unwrap();
    assert_eq!(sink.seen().len(), 1, "no subscription id: ignored");
    assert!(fake.sent().is_empty());

    fake.file("p", None, None, config::URI, &beta(true, true, "", &[get(&base, "/missing")]));
    let err = run(&hook, &fake, event("sh.keptn.event.evaluation.finished", Some("s1"))).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "a failed notification is reported to the error log: {err}");
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn a_curl_webhook_renders_the_event_and_the_secret_and_masks_the_secret() {
    let (base, sink) = serve().await;
    let fake = Fake::new();
    fake.put_secret("hook-secret", &[("token", "s3cr3t-value"), ("other", "also-hidden")]);
    let file = format!(
        "apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n    - type: {TRIGGERED}\n      subscriptionID: s1\n      sendFinished: true\n      envFrom: [{{name: token, secretRef: {{name: hook-secret, key: token}}}}]\n      requests:\n        - \"curl -sS -X POST -H 'x-token: {{{{.env.token}}}}' -H 'content-type: application/json' --data '{{\\\"project\\\": \\\"{{{{.data.project}}}}\\\", \\\"id\\\": \\\"{{{{.id}}}}\\\"}}' {base}/echo\"\n"
    );
    fake.file("p", None, None, config::URI, &file);
    run(&webhook(OutboundPolicy::allow_loopback()), &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    let seen = sink.seen();
    assert_eq!(seen[0].method, "POST");
    assert!(seen[0].headers.contains(&"x-token: s3cr3t-value".to_string()), "{:?}", seen[0].headers);
    assert_eq!(seen[0].body, "{\"project\": \"p\", \"id\": \"t1\"}");
    let types: Vec<&String> = seen[0].headers.iter().filter(|h| h.starts_with("content-type:")).collect();
    assert_eq!(types, ["content-type: application/json"], "the given type, not curl's form default");
    let finished = of_kind(&fake, "finished");
    let text = serde_json::to_string(&finished[0]).unwrap();
    assert!(!text.contains("s3cr3t-value"), "the echoed secret is masked: {text}");
    assert!(text.contains("x-token: ***"), "{text}");
}

#[tokio::test]
async fn secret_and_template_problems_are_errors_that_never_show_the_value() {
    let (base, sink) = serve().await;
    let hook = webhook(OutboundPolicy::allow_loopback());
    let env = "      envFrom: [{name: token, secretRef: {name: hook-secret, key: token}}]\n";

    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(true, false, env, &[get(&base, "/a"), get(&base, "/b")]));
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    let finished = of_kind(&fake, "finished");
    assert_eq!(finished.len(), 2, "one errored .finished per .started");
    assert!(
        finished[0].message().contains("secret \"hook-secret\" (envFrom \"token\") does not exist"),
        "{}",
        finished[0].message()
    );

    let fake = Fake::new();
    fake.put_secret("hook-secret", &[("other", "s3cr3t-value")]);
    fake.file("p", None, None, config::URI, &beta(false, true, env, &[get(&base, "/a")]));
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    let message = of_kind(&fake, "finished")[0].message().to_string();
    assert_eq!(message, "secret \"hook-secret\" has no key \"token\" (envFrom \"token\")");

    // The secret in the URL of a request that fails: masked in the message.
    let fake = Fake::new();
    fake.put_secret("hook-secret", &[("token", "s3cr3t-value")]);
    fake.file("p", None, None, config::URI, &beta(false, true, env, &[get(&base, "/missing?t={{.env.token}}")]));
    let err = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap_err();
    let message = of_kind(&fake, "finished")[0].message().to_string();
    assert!(message.contains("t=***") && !message.contains("s3cr3t"), "{message}");
    assert!(!err.to_string().contains("s3cr3t"), "nor in the error log: {err}");

    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(false, true, "", &[get(&base, "/{{.data.nope}}")]));
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    let message = of_kind(&fake, "finished")[0].message().to_string();
    assert!(
        message.starts_with("could not parse request 1: the template uses a key the event does not have"),
        "{message}"
    );
    assert!(sink.seen().iter().all(|s| !s.path.contains("nope")));
}

#[tokio::test]
async fn retries_with_backoff_on_5xx_and_times_out() {
    let (base, sink) = serve().await;
    let hook = webhook(OutboundPolicy::allow_loopback());
    let flaky = format!("{{url: '{base}/flaky', method: POST, payload: 'x', retry: {{attempts: 3, backoff: 20ms}}}}");
    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(false, true, "", &[flaky]));
    run(&hook, &fake, event(TRIGGERED, Some("s1"))).await.unwrap();
    assert_eq!(sink.seen().len(), 3, "two 503s, then the answer");
    assert_eq!(of_kind(&fake, "finished")[0].status(), "succeeded");

    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(false, true, "", &[get(&base, "/fail")]));
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    assert_eq!(sink.seen().len(), 4, "no retry unless asked for");

    let slow = format!("{{url: '{base}/slow', method: GET, timeout: 200ms}}");
    let fake = Fake::new();
    fake.file("p", None, None, config::URI, &beta(false, true, "", &[slow]));
    let started = std::time::Instant::now();
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        of_kind(&fake, "finished")[0].message().ends_with("failed: timed out"),
        "{}",
        of_kind(&fake, "finished")[0].message()
    );
}

#[tokio::test]
async fn loopback_in_any_spelling_is_refused_under_the_default_policy() {
    let (base, sink) = serve().await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let hook = webhook(OutboundPolicy::default());
    for host in ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]"] {
        let fake = Fake::new();
        let url = format!("http://{host}:{port}/a");
        fake.file("p", None, None, config::URI, &beta(false, true, "", &[format!("{{url: '{url}', method: GET}}")]));
        let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
        let finished = of_kind(&fake, "finished");
        assert_eq!(finished[0].status(), "errored", "{host}");
        let message = finished[0].message();
        assert!(
            message.contains("loopback address") && message.contains("outbound policy denies"),
            "{host}: {message}"
        );
    }
    // The same through a curl string.
    let fake = Fake::new();
    let file = format!(
        "apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n    - {{type: {TRIGGERED}, subscriptionID: s1, sendFinished: true, requests: [\"curl http://0x7f000001:{port}/a\"]}}\n"
    );
    fake.file("p", None, None, config::URI, &file);
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    assert!(of_kind(&fake, "finished")[0].message().contains("outbound policy denies"));
    assert!(sink.seen().is_empty(), "nothing reached the loopback sink");
}

#[tokio::test]
async fn a_redirect_to_loopback_is_not_followed() {
    // An allowed sink on 127.0.0.2 that redirects to 127.0.0.1.
    let (allowed, sink) = serve_on("127.0.0.2").await;
    let (target, target_sink) = serve().await;
    let hook = webhook(OutboundPolicy::allowing(&["127.0.0.2"]).unwrap());
    let fake = Fake::new();
    let url = format!("{allowed}/redirect?{target}/a");
    fake.file("p", None, None, config::URI, &beta(false, true, "", &[format!("{{url: '{url}', method: GET}}")]));
    let _ = run(&hook, &fake, event(TRIGGERED, Some("s1"))).await;
    let message = of_kind(&fake, "finished")[0].message().to_string();
    assert!(message.contains("redirect to another host"), "{message}");
    assert_eq!(sink.seen().len(), 1);
    assert!(target_sink.seen().is_empty());
}

#[test]
fn keptn_table_as_data() {
    let flags = |s, f| Flags { send_started: s, send_finished: f, requests: 3 };
    assert_eq!(plan::started("s", flags(true, true)), ["s"]);
    assert_eq!(plan::started("s", flags(true, false)), ["s/0", "s/1", "s/2"]);
    assert!(plan::started("s", flags(false, true)).is_empty());
    let ok = Outcome { executed: 3, responses: vec![], error: None };
    let failed = Outcome { executed: 1, responses: vec![], error: Some("x".into()) };
    assert_eq!(plan::finished("s", flags(true, true), &ok).len(), 1);
    assert!(plan::finished("s", flags(true, false), &ok).is_empty());
    let balanced: Vec<String> =
        plan::finished("s", flags(true, false), &failed).into_iter().map(|f| f.discriminator).collect();
    assert_eq!(balanced, ["s/1", "s/2"]);
    assert_eq!(plan::finished("s", flags(false, false), &failed).len(), 2, "keptn balances even without .started");
    assert!(plan::finished("s", flags(false, true), &failed)[0].errored);
}

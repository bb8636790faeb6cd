//! `keptn bench`: starts a real `keptn server` (this binary, embedded defaults, fresh data dir)
//! in a child process and measures it over HTTP: start time, idle RSS, durable ingestion,
//! task hop latency with a push integration, a 3-stage delivery end to end, sustained
//! sequences per second, quality gates (the lighthouse in the server, then remote: `keptn
//! integration run lighthouse` on the event stream of a second server), a local job's overhead
//! (the built-in job runner running `true`), and the datastore
//! listing over a long history (1 M events bulk-inserted through the store). Prints figures;
//! asserts nothing.

use anyhow::{Context as _, bail};
use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use clap::Args;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Events for the ingestion run.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent HTTP clients for ingestion and sequences.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Sequences for the sustained run (one instantly answered task each).
    #[arg(long, default_value_t = 3_000)]
    sequences: usize,
    /// Services (parallel lanes) for the sustained run.
    #[arg(long, default_value_t = 300)]
    services: usize,
    /// Task hops to time.
    #[arg(long, default_value_t = 1_000)]
    hops: usize,
    /// Evaluation sequences for the quality-gate run (built-in lighthouse, an instant provider).
    #[arg(long, default_value_t = 500)]
    evaluations: usize,
    /// Sequences for the webhook run (one task answered by the built-in webhook posting to an
    /// instant sink); 0 skips it.
    #[arg(long, default_value_t = 1_000)]
    webhooks: usize,
    /// Database URL for the server under test (default: SQLite in a temp dir).
    #[arg(long)]
    database_url: Option<String>,
    /// Events stored for the datastore query run (bulk-inserted through the store into a
    /// fresh database: a new schema on PostgreSQL); 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    datastore_events: usize,
    /// Run only the datastore query run.
    #[arg(long)]
    datastore_only: bool,
    /// Requests per datastore query figure.
    #[arg(long, default_value_t = 300)]
    datastore_queries: usize,
    /// `test` tasks run one after the other as local jobs (`true`) by the built-in job runner.
    #[arg(long, default_value_t = 50)]
    jobs: usize,
}

const TOKEN: &str = "bench-token";

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The bench talks to the server through the one API client.
type Api = keptn_client::Client;

fn bytes_of(v: &Value) -> axum::body::Bytes {
    axum::body::Bytes::from(serde_json::to_vec(v).expect("serialisable"))
}

/// The bench's push integration: answers every task instantly with a lone `.finished`,
/// records hop times and reports sequence `.finished` events.
struct Integration {
    api: Api,
    sent: Mutex<HashMap<String, Instant>>,
    hops: Mutex<Vec<Duration>>,
    finished: mpsc::UnboundedSender<(String, Instant)>,
}

async fn on_event(State(me): State<Arc<Integration>>, Json(ev): Json<Value>) -> &'static str {
    let now = Instant::now();
    let ty = ev["type"].as_str().unwrap_or("");
    let ctx = ev["shkeptncontext"].as_str().unwrap_or("").to_string();
    let parts = ty.split('.').count();
    if parts == 5 && ty.ends_with(".triggered") {
        if let Some(t) = me.sent.lock().unwrap().remove(&ctx) {
            me.hops.lock().unwrap().push(now - t);
        }
        let task = ty.trim_start_matches("sh.keptn.event.").trim_end_matches(".triggered");
        let d = &ev["data"];
        let mut finished = json!({
            "type": format!("sh.keptn.event.{task}.finished"), "source": "bench", "shkeptncontext": ctx,
            "triggeredid": ev["id"],
            "data": { "project": d["project"], "stage": d["stage"], "service": d["service"], "result": "pass", "status": "succeeded" }
        });
        if task == "get-sli" {
            // An instant SLI provider: every asked indicator has a value.
            let g = &d["get-sli"];
            let values: Vec<Value> = g["indicators"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, m)| json!({ "metric": m, "value": 100 + i, "success": true }))
                .collect();
            finished["data"]["get-sli"] = json!({ "start": g["start"], "end": g["end"], "indicatorValues": values });
        }
        let me = me.clone();
        tokio::spawn(async move {
            me.sent.lock().unwrap().insert(ctx, Instant::now());
            if let Err(e) = me.api.post("/api/v1/event", &finished).await {
                eprintln!("bench integration: {e}");
            }
        });
    } else if parts == 6 && ty.ends_with(".finished") {
        let _ = me.finished.send((ctx, now));
    }
    "ok"
}

fn shipyard(stages: &[(&str, usize)]) -> String {
    let mut y =
        String::from("apiVersion: spec.keptn.sh/0.2.3\nkind: Shipyard\nmetadata: { name: bench }\nspec:\n  stages:\n");
    let mut prev: Option<&str> = None;
    for (stage, tasks) in stages {
        y.push_str(&format!("    - name: {stage}\n      sequences:\n        - name: delivery\n"));
        if let Some(p) = prev {
            y.push_str(&format!("          triggeredOn: [ {{ event: {p}.delivery.finished }} ]\n"));
        }
        y.push_str("          tasks:\n");
        for t in 0..*tasks {
            y.push_str(&format!("            - name: task{t}\n"));
        }
        prev = Some(stage);
    }
    y
}

async fn create_project(api: &Api, name: &str, shipyard: &str, services: usize) -> anyhow::Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(shipyard);
    api.post("/api/controlPlane/v1/project", &json!({ "name": name, "shipyard": b64 })).await?;
    for i in 0..services {
        api.post(
            &format!("/api/controlPlane/v1/project/{name}/service"),
            &json!({ "serviceName": format!("svc-{i}") }),
        )
        .await?;
    }
    Ok(())
}

fn trigger(project: &str, stage: &str, service: &str) -> Value {
    json!({ "type": format!("sh.keptn.event.{stage}.delivery.triggered"), "source": "bench",
            "data": { "project": project, "stage": stage, "service": service } })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Starts `keptn server` on a free port with this data dir (and database); returns once
/// `/health` answers, with the time that took.
async fn spawn_server(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    http: &reqwest::Client,
) -> anyhow::Result<(Server, String, Duration)> {
    spawn_server_with(data_dir, database_url, http, &[]).await
}

/// [`spawn_server`] with extra `keptn server` flags.
async fn spawn_server_with(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    http: &reqwest::Client,
    extra: &[&str],
) -> anyhow::Result<(Server, String, Duration)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("KEPTN_API_TOKEN", TOKEN)
        .env("KEPTN_ALLOW_OUTBOUND", "loopback") // the benchmark's push integration listens on loopback
        .env("KEPTN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(db) = database_url {
        cmd.env("KEPTN_DATABASE_URL", db);
    }
    let started = Instant::now();
    let server = Server(cmd.spawn().context("cannot start the server")?);
    loop {
        if http.get(format!("{url}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("server did not start");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((server, url, started.elapsed()))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency * 2).build()?;
    if args.datastore_only {
        return datastore(&args, &http).await;
    }
    let (server, url, start_time) = spawn_server(dir.path(), args.database_url.as_deref(), &http).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(server.0.id());
    println!("keptn bench — server: {} ({})", url, args.database_url.as_deref().unwrap_or("embedded SQLite"));
    println!("start time (spawn → /health 200): {}", ms(start_time));
    match idle_rss {
        Some(kib) => println!("idle RSS: {:.1} MB", kib as f64 / 1024.0),
        None => println!("idle RSS: unavailable (no /proc)"),
    }

    let api = Api::new(url.clone(), TOKEN);
    let (fin_tx, mut fin_rx) = mpsc::unbounded_channel();
    let integration =
        Arc::new(Integration { api: api.clone(), sent: Mutex::default(), hops: Mutex::default(), finished: fin_tx });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let push_url = format!("http://{}/events", listener.local_addr()?);
    let app = axum::Router::new().route("/events", axum::routing::post(on_event)).with_state(integration.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    api.post(
        "/api/controlPlane/v1/uniform/registration",
        &json!({ "name": "bench", "metadata": { "hostname": "bench", "kubernetesmetadata": { "namespace": "keptn" } },
                 "subscriptions": [ { "event": "sh.keptn.event.*.triggered", "filter": { "projects": ["hops", "delivery", "seqs"] } },
                                    { "event": "sh.keptn.event.*.*.finished", "filter": { "projects": ["hops", "delivery", "seqs", "gates", "hooks"] } },
                                    { "event": "sh.keptn.event.get-sli.triggered", "filter": { "projects": ["gates"] } } ],
                 "pushURL": push_url }),
    )
    .await?;

    // 1. Durable ingestion: events that match no task are stored and published. The body is
    // serialised once so that the measuring client spends its CPU on HTTP, not on JSON.
    create_project(&api, "ingest", &shipyard(&[("dev", 1)]), 1).await?;
    let body = bytes_of(
        &json!({ "type": "sh.keptn.event.deployment.finished", "source": "bench", "triggeredid": "none",
        "data": { "project": "ingest", "stage": "dev", "service": "svc-0", "result": "pass", "status": "succeeded" } }),
    );
    let t0 = Instant::now();
    let per_client = args.events / args.concurrency;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (api, body) = (api.clone(), body.clone());
        clients.spawn(async move {
            for _ in 0..per_client {
                api.post_body("/api/v1/event", body.clone()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = clients.join_next().await {
        r??;
    }
    let total = per_client * args.concurrency;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "durable ingestion: {total} events in {secs:.2} s = {:.0} events/s ({} clients)",
        total as f64 / secs,
        args.concurrency
    );

    // 2. Task hop latency: one lane, long sequences, lone `.finished` answers.
    let tasks = 50;
    create_project(&api, "hops", &shipyard(&[("dev", tasks)]), 1).await?;
    let runs = args.hops.div_ceil(tasks);
    for _ in 0..runs {
        api.post("/api/v1/event", &trigger("hops", "dev", "svc-0")).await?;
        fin_rx.recv().await.context("sequence finished")?;
    }
    let mut hops = std::mem::take(&mut *integration.hops.lock().unwrap());
    hops.sort();
    println!(
        "task hop (.finished in → next .triggered out, push): n={} p50 {} p99 {} max {}",
        hops.len(),
        ms(percentile(&hops, 0.5)),
        ms(percentile(&hops, 0.99)),
        ms(percentile(&hops, 1.0))
    );

    // 3. A 3-stage delivery of 12 instant tasks, end to end.
    create_project(&api, "delivery", &shipyard(&[("dev", 4), ("staging", 4), ("production", 4)]), 1).await?;
    let mut deliveries = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let ctx = api.post("/api/v1/event", &trigger("delivery", "dev", "svc-0")).await?["keptnContext"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut stages_done = 0;
        while stages_done < 3 {
            let (c, at) = fin_rx.recv().await.context("stage finished")?;
            if c == ctx {
                stages_done += 1;
                if stages_done == 3 {
                    deliveries.push(at - t);
                }
            }
        }
    }
    deliveries.sort();
    println!(
        "3-stage delivery, 12 instant tasks, end to end: median {} (min {}, max {}, n=10)",
        ms(percentile(&deliveries, 0.5)),
        ms(percentile(&deliveries, 0.0)),
        ms(percentile(&deliveries, 1.0))
    );

    // 4. Sustained sequences/s: many lanes in parallel, one instant task each.
    create_project(&api, "seqs", &shipyard(&[("dev", 1)]), args.services).await?;
    integration.sent.lock().unwrap().clear();
    let t0 = Instant::now();
    let per_client = args.sequences / args.concurrency;
    let n = per_client * args.concurrency;
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..args.concurrency {
        let api = api.clone();
        let services = args.services;
        clients.spawn(async move {
            for i in 0..per_client {
                let svc = format!("svc-{}", (c * per_client + i) % services);
                api.post("/api/v1/event", &trigger("seqs", "dev", &svc)).await?;
            }
            anyhow::Ok(())
        });
    }
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while done < n {
        match tokio::time::timeout_at(deadline.into(), fin_rx.recv()).await {
            Ok(Some(_)) => done += 1,
            _ => bail!("only {done} of {n} sequences finished"),
        }
    }
    while let Some(r) = clients.join_next().await {
        r??;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "sustained: {n} sequences over {} services in {secs:.2} s = {:.0} sequences/s",
        args.services,
        n as f64 / secs
    );
    // 5. Quality gates: evaluation sequences through the built-in lighthouse, 10 objectives each
    // (compared with the 3 previous results), answered by an instant SLI provider.
    let services = args.services.min(50);
    let figure = quality_gates(&api, &mut fin_rx, args.evaluations, args.concurrency, services).await?;
    println!("quality gates: {figure}");
    newest_evaluation(&api).await?;
    // 6. A local job: the built-in job runner answers a `test` task by running `true`.
    println!("local job: {}", local_job(&api, args.jobs).await?);
    // 7. Webhook tasks answered by the built-in webhook calling an instant sink.
    if args.webhooks > 0 {
        let figure = webhook_tasks(&api, &mut fin_rx, args.webhooks, args.concurrency, services).await?;
        println!("webhook tasks: {figure}");
    }
    if let Some(kib) = rss_kib(server.0.id()) {
        println!("RSS after the runs: {:.1} MB", kib as f64 / 1024.0);
    }
    drop(server);
    remote_quality_gates(&args, &http).await?;
    if args.datastore_events > 0 {
        datastore(&args, &http).await?;
    }
    Ok(())
}

/// Run 5 with the lighthouse remote: a second server without it, the bench's push integration
/// as SLI provider again, and a child `keptn integration run lighthouse` on the event stream.
async fn remote_quality_gates(args: &BenchArgs, http: &reqwest::Client) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_server, url, _) =
        spawn_server_with(dir.path(), None, http, &["--integrations", "approval,prometheus,http-sli"]).await?;
    let api = Api::new(url.clone(), TOKEN);
    let (fin_tx, mut fin_rx) = mpsc::unbounded_channel();
    let integration =
        Arc::new(Integration { api: api.clone(), sent: Mutex::default(), hops: Mutex::default(), finished: fin_tx });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let push_url = format!("http://{}/events", listener.local_addr()?);
    let app = axum::Router::new().route("/events", axum::routing::post(on_event)).with_state(integration);
    tokio::spawn(async move { axum::serve(listener, app).await });
    api.post(
        "/api/controlPlane/v1/uniform/registration",
        &json!({ "name": "bench", "metadata": { "hostname": "bench", "kubernetesmetadata": { "namespace": "keptn" } },
                 "subscriptions": [ { "event": "sh.keptn.event.*.*.finished", "filter": { "projects": ["gates"] } },
                                    { "event": "sh.keptn.event.get-sli.triggered", "filter": { "projects": ["gates"] } } ],
                 "pushURL": push_url }),
    )
    .await?;
    let lighthouse = Server(
        Command::new(std::env::current_exe()?)
            .args(["integration", "run", "lighthouse", "--endpoint", &url, "--api-token", TOKEN])
            .env("KEPTN_CONFIG_DIR", dir.path().join("no-credentials"))
            .env("KEPTN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start keptn integration run lighthouse")?,
    );
    // Registered means its stream opens next; what is triggered before that is caught up.
    let t = Instant::now();
    loop {
        let regs = api.get("/api/controlPlane/v1/uniform/registration?name=lighthouse-service").await?;
        if regs.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the remote lighthouse did not register");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let services = args.services.min(50);
    let figure = quality_gates(&api, &mut fin_rx, args.evaluations, args.concurrency, services).await?;
    println!("quality gates (lighthouse remote): {figure}");
    newest_evaluation(&api).await?;
    drop(lighthouse);
    Ok(())
}

/// Evaluation sequences through whatever lighthouse serves the server, 10 objectives each
/// (compared with the 3 previous results), answered by the bench's instant SLI provider;
/// returns the figure's text.
async fn quality_gates(
    api: &Api,
    fin_rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    n: usize,
    concurrency: usize,
    services: usize,
) -> anyhow::Result<String> {
    create_project(api, "gates", &shipyard(&[("dev", 1)]), services).await?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut slo =
        String::from("comparison: { compare_with: several_results, number_of_comparison_results: 3 }\nobjectives:\n");
    for i in 0..10 {
        slo.push_str(&format!("  - sli: m{i}\n    pass: [ {{ criteria: [\"<=+10%\", \"<1000\"] }} ]\n    warning: [ {{ criteria: [\"<=2000\"] }} ]\n"));
    }
    slo.push_str("total_score: { pass: \"90%\", warning: \"75%\" }\n");
    let config = "sli-provider: bench\n";
    api.post(
        "/api/resource-service/v1/project/gates/resource",
        &json!({ "resources": [{ "resourceURI": "lighthouse/config.yaml", "resourceContent": b64(config) }] }),
    )
    .await?;
    for s in 0..services {
        api.post(
            &format!("/api/resource-service/v1/project/gates/stage/dev/service/svc-{s}/resource"),
            &json!({ "resources": [{ "resourceURI": "slo.yaml", "resourceContent": b64(&slo) }] }),
        )
        .await?;
    }
    while fin_rx.try_recv().is_ok() {} // what earlier runs left
    let t0 = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    let workers = concurrency.min(n.max(1));
    for c in 0..workers {
        let api = api.clone();
        clients.spawn(async move {
            let mut contexts = Vec::new();
            for i in (c..n).step_by(workers) {
                let path =
                    format!("/api/controlPlane/v1/project/gates/stage/dev/service/svc-{}/evaluation", i % services);
                let answer = api.post(&path, &json!({ "timeframe": "5m" })).await?;
                contexts.push(answer["keptnContext"].as_str().unwrap_or_default().to_string());
            }
            anyhow::Ok(contexts)
        });
    }
    // Counts only the sequences started here (by context), finished in any order.
    let mut started = std::collections::HashSet::new();
    let mut finished = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while started.len() < n || !started.is_subset(&finished) {
        tokio::select! {
            Some(r) = clients.join_next(), if !clients.is_empty() => started.extend(r??),
            got = tokio::time::timeout_at(deadline.into(), fin_rx.recv()) => match got {
                Ok(Some((ctx, _))) => {
                    finished.insert(ctx);
                }
                _ => bail!("only {} of {n} evaluations finished", started.intersection(&finished).count()),
            },
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(format!(
        "{n} evaluation sequences (10 objectives, 3 compared results) over {services} services in {secs:.2} s = {:.0} evaluations/s",
        n as f64 / secs
    ))
}

/// Run 6: `n` sequences one after the other, each a `test` task the built-in job runner answers
/// by running `true` as a local job. The figure is the job runner's overhead from the task's
/// `.triggered` to its `.finished` (event times as stored): config read at the commit, `.started`,
/// a work directory, the process, `.finished`.
async fn local_job(api: &Api, n: usize) -> anyhow::Result<String> {
    let shipyard = "apiVersion: spec.keptn.sh/0.2.3\nkind: Shipyard\nmetadata: { name: jobs }\nspec:\n  stages:\n    - name: dev\n      sequences:\n        - name: delivery\n          tasks:\n            - name: test\n";
    create_project(api, "jobs", shipyard, 1).await?;
    let config = "apiVersion: v2\nactions:\n  - name: bench\n    events: [{name: test.triggered}]\n    tasks: [{name: nothing, image: alpine, cmd: [\"true\"]}]\n";
    api.post(
        "/api/resource-service/v1/project/jobs/stage/dev/service/svc-0/resource",
        &json!({ "resources": [{ "resourceURI": "job/config.yaml",
                                 "resourceContent": base64::engine::general_purpose::STANDARD.encode(config) }] }),
    )
    .await?;
    let time = |e: &Value| chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap_or("")).ok();
    let mut overheads = Vec::with_capacity(n);
    for _ in 0..n {
        let ctx = api.post("/api/v1/event", &trigger("jobs", "dev", "svc-0")).await?["keptnContext"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (triggered, finished) = loop {
            let events = api.get(&format!("/api/mongodb-datastore/event?keptnContext={ctx}&pageSize=100")).await?;
            let of = |ty: &str| events["events"].as_array().into_iter().flatten().find(|e| e["type"] == ty).cloned();
            if let (Some(t), Some(f)) = (of("sh.keptn.event.test.triggered"), of("sh.keptn.event.test.finished")) {
                break (t, f);
            }
            if Instant::now() > deadline {
                bail!("the local job of {ctx} did not finish (is job-executor among --integrations?)");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if finished["data"]["result"] != "pass" {
            bail!("the local job failed: {}", finished["data"]["message"]);
        }
        if let (Some(t), Some(f)) = (time(&triggered), time(&finished)) {
            overheads.push((f - t).to_std().unwrap_or_default());
        }
    }
    overheads.sort();
    Ok(format!(
        "test.triggered → test.finished with `true` as the command: n={} p50 {} p99 {} max {}",
        overheads.len(),
        ms(percentile(&overheads, 0.5)),
        ms(percentile(&overheads, 0.99)),
        ms(percentile(&overheads, 1.0))
    ))
}

/// Run 7: sequences whose one task the built-in webhook answers (`.started`, a POST to an
/// instant sink on loopback, `.finished` with the response), `concurrency` at a time.
async fn webhook_tasks(
    api: &Api,
    fin_rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    n: usize,
    concurrency: usize,
    services: usize,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "{\"ok\": true}" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    create_project(api, "hooks", &shipyard(&[("dev", 1)]), services).await?;
    let regs = api.registrations_named(keptn_integrations::webhook::NAME).await?;
    let Some(id) = regs.first().and_then(|r| r["id"].as_str()) else { bail!("the webhook built-in is not registered") };
    let sub = json!({ "event": "sh.keptn.event.task0.triggered", "filter": { "projects": ["hooks"] } });
    let sid = api.create_subscription(id, &sub).await?;
    let file = format!(
        "apiVersion: webhookconfig.keptn.sh/v1beta1\nkind: WebhookConfig\nspec:\n  webhooks:\n    - type: sh.keptn.event.task0.triggered\n      subscriptionID: {sid}\n      sendFinished: true\n      requests:\n        - {{url: '{sink}', method: POST, payload: '{{\"p\": \"{{{{.data.project}}}}\"}}'}}\n"
    );
    let level = keptn_client::resource_level("hooks", None, None);
    api.put_resources(&level, &[("webhook/webhook.yaml".into(), file.into_bytes())], "bench webhook").await?;
    while fin_rx.try_recv().is_ok() {} // what earlier runs left
    let t0 = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    let workers = concurrency.min(n.max(1));
    for c in 0..workers {
        let api = api.clone();
        clients.spawn(async move {
            let mut contexts = Vec::new();
            for i in (c..n).step_by(workers) {
                let answer =
                    api.post("/api/v1/event", &trigger("hooks", "dev", &format!("svc-{}", i % services))).await?;
                contexts.push(answer["keptnContext"].as_str().unwrap_or_default().to_string());
            }
            anyhow::Ok(contexts)
        });
    }
    let mut started = std::collections::HashSet::new();
    let mut finished = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while started.len() < n || !started.is_subset(&finished) {
        tokio::select! {
            Some(r) = clients.join_next(), if !clients.is_empty() => started.extend(r??),
            got = tokio::time::timeout_at(deadline.into(), fin_rx.recv()) => match got {
                Ok(Some((ctx, _))) => {
                    finished.insert(ctx);
                }
                _ => bail!("only {} of {n} webhook sequences finished", started.intersection(&finished).count()),
            },
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(format!(
        "{n} sequences, one task answered by the webhook (POST to an instant sink), over {services} services in {secs:.2} s = {:.0} tasks/s",
        n as f64 / secs
    ))
}

/// What was measured really was scoring: the newest evaluation's objectives and baseline.
async fn newest_evaluation(api: &Api) -> anyhow::Result<()> {
    let last = api.get("/api/controlPlane/v1/project/gates/stage/dev/service/svc-0/evaluation?pageSize=1").await?;
    let e = &last["evaluations"][0];
    println!(
        "  newest evaluation of svc-0: result {}, score {}, {} objectives, compared with {} earlier, total {} evaluations stored",
        e["result"].as_str().unwrap_or("?"),
        e["evaluation"]["score"],
        e["evaluation"]["indicatorResults"].as_array().map_or(0, Vec::len),
        e["evaluation"]["comparedEvents"].as_array().map_or(0, Vec::len),
        last["totalCount"]
    );
    Ok(())
}

/// Events per context in the datastore run (a delivery's worth).
const EVENTS_PER_CONTEXT: usize = 10;

/// Run 6, the datastore's event listing with a long history: `n` events of one project (plus one
/// tenth in another) bulk-inserted through the store, then pages of 20 by project (first and
/// deep pages, following nextPageKey) and by context, sequentially and from 20 clients at once.
async fn datastore(args: &BenchArgs, http: &reqwest::Client) -> anyhow::Result<()> {
    let n = args.datastore_events;
    let dir = tempfile::tempdir()?;
    let (url, schema) = match &args.database_url {
        Some(pg) if !pg.starts_with("sqlite:") => {
            let (url, schema) = keptn_store::testing::create_schema(pg).await?;
            (url, Some((pg.clone(), schema)))
        }
        _ => (format!("sqlite://{}?mode=rwc", dir.path().join("keptn.db").display()), None),
    };
    let t0 = Instant::now();
    let (contexts, stored) = seed_events(&url, n).await?;
    let seeded = t0.elapsed().as_secs_f64();
    println!(
        "datastore: {stored} events stored in bulk in {seeded:.1} s ({:.0} events/s), {} contexts of {EVENTS_PER_CONTEXT} in project ds",
        stored as f64 / seeded,
        contexts.len()
    );
    let db_url = schema.as_ref().map(|_| url.as_str());
    let (server, base, _) = spawn_server(dir.path(), db_url, http).await?;
    let api = Api::new(base, TOKEN);
    let rss_before = rss_kib(server.0.id());

    let q = args.datastore_queries.max(1);
    let mut first = Vec::with_capacity(q);
    for _ in 0..q {
        let t = Instant::now();
        let page = api.get("/api/mongodb-datastore/event?project=ds&pageSize=20").await?;
        first.push(t.elapsed());
        anyhow::ensure!(page["events"].as_array().map_or(0, Vec::len) == 20, "a full first page");
    }
    report("by project, first page of 20", &mut first);
    let mut deep = Vec::with_capacity(q);
    let mut key = String::new();
    for _ in 0..q {
        let t = Instant::now();
        let page = api.get(&format!("/api/mongodb-datastore/event?project=ds&pageSize=20&nextPageKey={key}")).await?;
        deep.push(t.elapsed());
        key = page["nextPageKey"].as_str().unwrap_or("0").to_string();
    }
    report(&format!("by project, the next {q} pages of 20 (nextPageKey)"), &mut deep);
    let mut by_context = Vec::with_capacity(q);
    for i in 0..q {
        let ctx = &contexts[(i * 7919) % contexts.len()];
        let t = Instant::now();
        let page = api.get(&format!("/api/mongodb-datastore/event?keptnContext={ctx}&pageSize=20")).await?;
        by_context.push(t.elapsed());
        anyhow::ensure!(page["events"].as_array().map_or(0, Vec::len) == EVENTS_PER_CONTEXT, "a context's events");
    }
    report("by context, one page", &mut by_context);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..20 {
        let api = api.clone();
        let contexts = contexts.clone();
        clients.spawn(async move {
            let mut times = Vec::new();
            for i in 0..q / 4 {
                let path = if i % 2 == 0 {
                    "/api/mongodb-datastore/event?project=ds&pageSize=20".to_string()
                } else {
                    format!(
                        "/api/mongodb-datastore/event?keptnContext={}&pageSize=20",
                        contexts[(c * 131 + i * 7919) % contexts.len()]
                    )
                };
                let t = Instant::now();
                api.get(&path).await?;
                times.push(t.elapsed());
            }
            anyhow::Ok(times)
        });
    }
    let mut concurrent = Vec::new();
    while let Some(r) = clients.join_next().await {
        concurrent.extend(r??);
    }
    report("20 concurrent clients, by project and by context", &mut concurrent);
    if let (Some(before), Some(after)) = (rss_before, rss_kib(server.0.id())) {
        println!(
            "  server RSS: {:.1} MB before the queries, {:.1} MB after",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }
    drop(server);
    if let Some((admin, schema)) = schema {
        keptn_store::testing::drop_schema(&admin, &schema).await?;
    }
    Ok(())
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "  {what}: n={} p50 {} p95 {} max {}",
        times.len(),
        ms(percentile(times, 0.5)),
        ms(percentile(times, 0.95)),
        ms(percentile(times, 1.0))
    );
}

/// Stores about `n` events through the store's batch writer, 10 per context, 90 % in project
/// `ds`; returns the contexts of project `ds` and how many events were stored.
async fn seed_events(url: &str, n: usize) -> anyhow::Result<(Vec<String>, i64)> {
    let store = keptn_store::Store::connect(url).await?;
    let base_ms = chrono::Utc::now().timestamp_millis() - n as i64 * 10;
    let mut contexts = Vec::new();
    let mut seq = 0i64;
    let per_tx = 10_000;
    while (seq as usize) < n {
        let mut batch = keptn_store::WriteBatch::default();
        while batch.events.len() < per_tx && (seq as usize) < n {
            let context = uuid::Uuid::now_v7().to_string();
            let project = if contexts.len() % 10 == 9 { "other" } else { "ds" };
            for i in 0..EVENTS_PER_CONTEXT {
                seq += 1;
                let time_ms = base_ms + seq * 10;
                let ty = if i == 0 {
                    "sh.keptn.event.dev.delivery.triggered".to_string()
                } else {
                    format!("sh.keptn.event.task{i}.finished")
                };
                let event = keptn_formats::KeptnEvent::new(
                    uuid::Uuid::now_v7().to_string(),
                    ty,
                    context.clone(),
                    chrono::DateTime::from_timestamp_millis(time_ms)
                        .unwrap_or_default()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    json!({ "project": project, "stage": "dev", "service": format!("svc-{}", seq % 50), "result": "pass", "status": "succeeded" }),
                );
                batch.events.push((seq, event, time_ms));
            }
            if project == "ds" {
                contexts.push(context);
            } else {
                contexts.push(String::new());
            }
        }
        let mut tx = store.begin().await?;
        tx.apply(&batch).await?;
        tx.commit().await?;
    }
    contexts.retain(|c| !c.is_empty());
    Ok((contexts, seq))
}

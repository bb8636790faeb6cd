//! Throughput and latency of the configuration store on a realistic project, without and with an
//! HTTP upstream. Prints figures only; timings depend on the machine and its load.
//!
//! `cargo run --release -p keptn-configrepo --example bench [-- --seconds N]`

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keptn_configrepo::{ConfigRepo, DEFAULT_FRESHNESS, GitCredentials, HttpsCredentials, Scope};
use keptn_testgit::HttpRemote;

const STAGES: [&str; 3] = ["dev", "staging", "production"];
const SERVICE: &str = "carts";
/// The project every single-project figure uses; the parallel write figure adds three more like it.
const PROJECTS: [&str; 4] = ["sockshop", "sockshop-2", "sockshop-3", "sockshop-4"];
const USER: &str = "keptn";
const TOKEN: &str = "bench-token";

fn main() -> Result<(), Box<dyn Error>> {
    let secs = parse_seconds()?;
    let v = git2::Version::get();
    let (major, minor, patch) = v.libgit2_version();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "keptn-configrepo bench: {secs} s per figure; git2 {} / libgit2 {major}.{minor}.{patch}{}; {cpus} CPUs",
        v.crate_version(),
        if v.vendored() { " (vendored)" } else { "" },
    );
    println!("load average at start: {}", load_average());

    let dir = tempfile::tempdir()?;
    let remotes = dir.path().join("remotes");
    std::fs::create_dir_all(&remotes)?;
    let server = HttpRemote::start(&remotes, Some((USER, TOKEN)));
    let dur = Duration::from_secs(secs);

    let local = ConfigRepo::open(dir.path().join("local"))?;
    let local = bench(&local, dur, None)?;
    // The default window, spelled out: writes pull first only when the last sync is older than this.
    let upstream = ConfigRepo::open(dir.path().join("upstream"))?.with_freshness(DEFAULT_FRESHNESS);
    let upstream = bench(&upstream, dur, Some((&server, &remotes)))?;

    println!();
    println!("{:<40}{:>14}{:>16}", "", "local only", "HTTP upstream");
    let row = |label: &str, a: String, b: String| println!("{label:<40}{a:>14}{b:>16}");
    let rate = |f: f64| format!("{f:.0}");
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    row("writes/s, 1 thread", rate(local.write1.rate), rate(upstream.write1.rate));
    row("writes/s, 4 threads, same project", rate(local.write4_same), rate(upstream.write4_same));
    row("writes/s, 4 threads, 4 projects", rate(local.write4_apart), rate(upstream.write4_apart));
    row("write latency p50 (ms), 1 thread", ms(local.write1.pct(0.50)), ms(upstream.write1.pct(0.50)));
    row("write latency p99 (ms), 1 thread", ms(local.write1.pct(0.99)), ms(upstream.write1.pct(0.99)));
    row("reads/s at head, 1 thread", rate(local.read1), rate(upstream.read1));
    row("reads/s at head, 4 threads", rate(local.read4), rate(upstream.read4));
    row("reads/s at pinned older commit, 1 thread", rate(local.read_pinned), rate(upstream.read_pinned));
    row("remote requests during reads", "-".into(), upstream.remote_reads.unwrap_or(0).to_string());
    row("commits made by timed writes", local.commits.to_string(), upstream.commits.to_string());
    row("  of them on the upstream", "-".into(), upstream.pushed.unwrap_or(0).to_string());
    println!();
    println!("load average at end: {}", load_average());
    Ok(())
}

fn parse_seconds() -> Result<u64, String> {
    let mut args = std::env::args().skip(1);
    let mut secs = 3;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                secs = args.next().and_then(|s| s.parse().ok()).filter(|&n| n > 0).ok_or("--seconds needs N > 0")?
            }
            other => return Err(format!("unknown argument {other:?}; usage: bench [--seconds N]")),
        }
    }
    Ok(secs)
}

struct Figures {
    write1: Measured,
    write4_same: f64,
    write4_apart: f64,
    read1: f64,
    read4: f64,
    read_pinned: f64,
    /// HTTP requests the remote saw during the read figures (reads must not touch it).
    remote_reads: Option<usize>,
    commits: usize,
    /// Commits the timed writes added to the upstream repositories.
    pushed: Option<usize>,
}

/// All figures for one store. With an upstream (the server and the directory it serves), every
/// project gets its own repository there.
fn bench(repo: &ConfigRepo, dur: Duration, upstream: Option<(&HttpRemote, &Path)>) -> Result<Figures, Box<dyn Error>> {
    let server = upstream.map(|(server, _)| server);
    let resources = resources();
    let mut upstream_paths = Vec::new();
    for project in PROJECTS {
        setup(repo, project, &resources)?;
        if let Some((server, root)) = upstream {
            let name = format!("{project}.git");
            upstream_paths.push(keptn_testgit::init_bare(root, &name));
            repo.set_upstream(project, credentials(server.url(&name)))?;
        }
    }
    let history = |paths: &[PathBuf]| paths.iter().map(|p| history_len(p)).sum::<usize>();
    let local_paths: Vec<_> = PROJECTS.iter().map(|p| repo.project_path(p)).collect();
    let (local_before, remote_before) = (history(&local_paths), server.map(|_| history(&upstream_paths)));
    // Reads at this commit later measure looking up history, not the head.
    let pinned = repo.head(PROJECTS[0])?;

    // Every write changes the image tag, so each one is a commit.
    let tag = AtomicU64::new(0);
    let values_body = values_body();
    let write = |project: &str| {
        let n = tag.fetch_add(1, Ordering::Relaxed);
        let content = format!("image:\n  repository: docker.io/keptnexamples/carts\n  tag: 0.13.{n}\n{values_body}");
        let scope = Scope::Service("dev", SERVICE);
        repo.write(project, scope, &[("values.yaml", content.as_bytes())], &format!("Update carts to 0.13.{n}"))
            .expect("write");
    };
    let write1 = run_for(1, dur, |_, _| write(PROJECTS[0]));
    let write4_same = run_for(4, dur, |_, _| write(PROJECTS[0])).rate;
    let write4_apart = run_for(4, dur, |t, _| write(PROJECTS[t])).rate;

    // Reads cycle through all resources, small files and the 5 KB values file alike.
    let read = |i: usize, at: Option<&str>| {
        let (scope, uri, _) = &resources[i % resources.len()];
        repo.read(PROJECTS[0], *scope, uri, at).expect("read");
    };
    let requests_before = server.map(HttpRemote::requests);
    let read1 = run_for(1, dur, |_, i| read(i, None)).rate;
    let read4 = run_for(4, dur, |_, i| read(i, None)).rate;
    let read_pinned = run_for(1, dur, |_, i| read(i, Some(&pinned))).rate;
    let remote_reads = server.zip(requests_before).map(|(s, before)| s.requests() - before);

    Ok(Figures {
        write1,
        write4_same,
        write4_apart,
        read1,
        read4,
        read_pinned,
        remote_reads,
        commits: history(&local_paths) - local_before,
        pushed: remote_before.map(|before| history(&upstream_paths) - before),
    })
}

fn credentials(remote_url: String) -> GitCredentials {
    GitCredentials {
        remote_url,
        user: USER.into(),
        https: Some(HttpsCredentials { token: TOKEN.into(), ..Default::default() }),
        ssh: None,
    }
}

/// Creates the project with its stages and service and adds the resources, one commit per level
/// as keptn's API would.
fn setup(repo: &ConfigRepo, project: &str, resources: &[Resource]) -> keptn_configrepo::Result<()> {
    repo.create_project(project)?;
    for stage in STAGES {
        repo.create_stage(project, stage)?;
        repo.create_service(project, stage, SERVICE)?;
    }
    let scopes = [Scope::Project].into_iter().chain(STAGES.map(|s| Scope::Service(s, SERVICE)));
    for scope in scopes {
        let files: Vec<(&str, &[u8])> =
            resources.iter().filter(|r| r.0 == scope).map(|(_, uri, c)| (*uri, c.as_slice())).collect();
        repo.write(project, scope, &files, "Added resources")?;
    }
    Ok(())
}

/// Commits on master of the bare repository at `path`.
fn history_len(path: &Path) -> usize {
    let repo = git2::Repository::open_bare(path).expect("open repository");
    let mut walk = repo.revwalk().expect("revwalk");
    walk.push_ref("refs/heads/master").expect("master");
    walk.count()
}

struct Measured {
    rate: f64,
    /// Every operation's duration, sorted.
    latencies: Vec<Duration>,
}

impl Measured {
    fn pct(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Runs `op(thread, iteration)` on `threads` threads until `dur` has passed; returns operations
/// per second over all threads and every operation's latency.
fn run_for(threads: usize, dur: Duration, op: impl Fn(usize, usize) + Sync) -> Measured {
    let op = &op;
    let start = Instant::now();
    let per_thread: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut latencies = Vec::new();
                    while start.elapsed() < dur {
                        let t0 = Instant::now();
                        op(t, latencies.len());
                        latencies.push(t0.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("benchmark thread")).collect()
    });
    // Elapsed until the last thread finished: an operation running at the deadline still counts.
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies = per_thread.concat();
    latencies.sort();
    Measured { rate: latencies.len() as f64 / elapsed, latencies }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

type Resource = (Scope<'static>, &'static str, Vec<u8>);

/// 20 resources: 2 at the project level, 6 in each stage's carts service.
fn resources() -> Vec<Resource> {
    let mut out: Vec<Resource> = vec![
        (Scope::Project, "shipyard.yaml", SHIPYARD.into()),
        (Scope::Project, "dynatrace/dynatrace.conf.yaml", DYNATRACE_CONF.into()),
    ];
    for stage in STAGES {
        let scope = Scope::Service(stage, SERVICE);
        let values = format!("image:\n  repository: docker.io/keptnexamples/carts\n  tag: 0.13.1\n{}", values_body());
        out.extend([
            (scope, "slo.yaml", SLO.into()),
            (scope, "prometheus/sli.yaml", SLI.into()),
            (scope, "values.yaml", values.into_bytes()),
            (scope, "jmeter/jmeter.conf.yaml", JMETER_CONF.into()),
            (scope, "jmeter/basic.jmx", BASIC_JMX.into()),
            (scope, "remediation.yaml", REMEDIATION.into()),
        ]);
    }
    out
}

/// Helm values for carts after the image section, padded with environment entries to about 5 KB.
fn values_body() -> String {
    let mut s = String::from(
        "replicaCount: 1\nservice:\n  type: ClusterIP\n  port: 80\nresources:\n  limits:\n    cpu: 1000m\n    \
         memory: 2Gi\n  requests:\n    cpu: 250m\n    memory: 1Gi\nreadinessProbe:\n  httpGet:\n    path: /health\n    \
         port: 8080\n  initialDelaySeconds: 15\nenv:\n",
    );
    let mut i = 0;
    while s.len() < 5 * 1024 - 100 {
        s.push_str(&format!("  - name: CARTS_FEATURE_FLAG_{i:03}\n    value: \"enabled-for-canary-users\"\n"));
        i += 1;
    }
    s
}

const SHIPYARD: &str = r#"apiVersion: "spec.keptn.sh/0.2.3"
kind: "Shipyard"
metadata:
  name: "shipyard-sockshop"
spec:
  stages:
    - name: "dev"
      sequences:
        - name: "delivery"
          tasks:
            - name: "deployment"
              properties:
                deploymentstrategy: "direct"
            - name: "test"
              properties:
                teststrategy: "functional"
            - name: "evaluation"
            - name: "release"
    - name: "staging"
      sequences:
        - name: "delivery"
          triggeredOn:
            - event: "dev.delivery.finished"
          tasks:
            - name: "deployment"
              properties:
                deploymentstrategy: "blue_green_service"
            - name: "test"
              properties:
                teststrategy: "performance"
            - name: "evaluation"
            - name: "release"
    - name: "production"
      sequences:
        - name: "delivery"
          triggeredOn:
            - event: "staging.delivery.finished"
          tasks:
            - name: "deployment"
              properties:
                deploymentstrategy: "blue_green_service"
            - name: "release"
        - name: "remediation"
          triggeredOn:
            - event: "production.remediation.finished"
              selector:
                match:
                  evaluation.result: "fail"
          tasks:
            - name: "get-action"
            - name: "action"
            - name: "evaluation"
"#;

const DYNATRACE_CONF: &str = "spec_version: '0.1.0'\ndtCreds: dynatrace\ndashboard: query\n";

const SLO: &str = r#"---
spec_version: "1.0"
comparison:
  aggregate_function: "avg"
  compare_with: "single_result"
  include_result_with_score: "pass"
  number_of_comparison_results: 1
filter:
objectives:
  - sli: "response_time_p95"
    displayName: "Response time P95"
    key_sli: false
    pass:
      - criteria:
          - "<600"
    warning:
      - criteria:
          - "<=800"
    weight: 1
  - sli: "error_rate"
    pass:
      - criteria:
          - "<5"
total_score:
  pass: "90%"
  warning: "75%"
"#;

const SLI: &str = r#"---
spec_version: '1.0'
indicators:
  response_time_p95: histogram_quantile(0.95, sum by(le) (rate(http_response_time_milliseconds_bucket{job="$SERVICE-$PROJECT-$STAGE"}[$DURATION_SECONDS])))
  error_rate: sum(rate(http_requests_total{job="$SERVICE-$PROJECT-$STAGE",status!~'2..'}[$DURATION_SECONDS]))/sum(rate(http_requests_total{job="$SERVICE-$PROJECT-$STAGE"}[$DURATION_SECONDS]))
  throughput: sum(rate(http_requests_total{job="$SERVICE-$PROJECT-$STAGE"}[$DURATION_SECONDS]))
"#;

const JMETER_CONF: &str = r#"---
spec_version: '0.1.0'
workloads:
  - teststrategy: functional
    vuser: 1
    loopcount: 1
    script: jmeter/basic.jmx
    acceptederrorrate: 0.1
  - teststrategy: performance
    vuser: 10
    loopcount: 500
    script: jmeter/load.jmx
    acceptederrorrate: 0.1
"#;

const BASIC_JMX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<jmeterTestPlan version="1.2" properties="5.0" jmeter="5.4.1">
  <hashTree>
    <TestPlan guiclass="TestPlanGui" testclass="TestPlan" testname="basic" enabled="true">
      <stringProp name="TestPlan.comments">Functional check of the carts service</stringProp>
    </TestPlan>
    <hashTree>
      <ThreadGroup guiclass="ThreadGroupGui" testclass="ThreadGroup" testname="Users" enabled="true">
        <stringProp name="ThreadGroup.num_threads">${__P(VUCount,1)}</stringProp>
        <stringProp name="ThreadGroup.ramp_time">1</stringProp>
      </ThreadGroup>
      <hashTree>
        <HTTPSamplerProxy guiclass="HttpTestSampleGui" testclass="HTTPSamplerProxy" testname="carts health">
          <stringProp name="HTTPSampler.domain">${__P(SERVER_URL,carts)}</stringProp>
          <stringProp name="HTTPSampler.path">/health</stringProp>
          <stringProp name="HTTPSampler.method">GET</stringProp>
        </HTTPSamplerProxy>
      </hashTree>
    </hashTree>
  </hashTree>
</jmeterTestPlan>
"#;

const REMEDIATION: &str = r#"apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
metadata:
  name: carts-remediation
spec:
  remediations:
    - problemType: Response time degradation
      actionsOnOpen:
        - action: scaling
          name: scaling
          description: Scale up
          value: "1"
    - problemType: Failure rate increase
      actionsOnOpen:
        - action: featuretoggle
          name: Toggle feature flag
          description: Toggle feature flag EnablePromotion from ON to OFF
          value:
            EnablePromotion: "off"
"#;

//! A real Prometheus (Debian package `prometheus`) on a free loopback port, scraping a small
//! HTTP endpoint whose gauges the test sets.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
    /// metric line (`name{labels}`) → value, served at the scraped endpoint.
    pub metrics: Arc<Mutex<BTreeMap<String, f64>>>,
    auth: Option<(String, String)>,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Prometheus {
    /// None when the binary is missing outside CI (with CI set, that fails the test).
    pub async fn start() -> Option<Prometheus> {
        Self::start_with_auth(None).await
    }

    /// With `Some((user, password))`, Prometheus asks for HTTP basic auth (its web config).
    pub async fn start_with_auth(auth: Option<(&str, &str)>) -> Option<Prometheus> {
        super::install_crypto();
        let bin = std::env::var("KEPTN_TEST_PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
        if !std::path::Path::new(&bin).exists() {
            assert!(std::env::var_os("CI").is_none(), "{bin} is missing (CI is set); scripts/services.sh installs it");
            eprintln!("notice: skipping the Prometheus test, {bin} is missing");
            return None;
        }
        let metrics: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let served = metrics.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = served.clone();
                async move {
                    let m = m.lock().unwrap();
                    m.iter().map(|(k, v)| format!("{k} {v}\n")).collect::<String>()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             scrape_configs:\n  - job_name: app\n    static_configs: [ {{ targets: ['{target}'] }} ]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let mut cmd = Command::new(&bin);
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            std::fs::write(dir.path().join("web.yml"), format!("basic_auth_users:\n  {user}: '{hash}'\n")).unwrap();
            cmd.arg(format!("--web.config.file={}", dir.path().join("web.yml").display()));
        }
        let child = cmd
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prom = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
            metrics,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        // Ready when it has scraped the endpoint once.
        let http = reqwest::Client::new();
        for _ in 0..300 {
            let up = prom.authed(http.get(format!("{}/api/v1/query?query=up", prom.url))).send().await;
            if let Ok(resp) = up
                && let Ok(v) = resp.json::<serde_json::Value>().await
                && v["data"]["result"][0]["value"][1] == "1"
            {
                return Some(prom);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus at {} did not scrape its target within 30 s", prom.url);
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some((user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        }
    }

    pub fn set(&self, metric: &str, value: f64) {
        self.metrics.lock().unwrap().insert(metric.to_string(), value);
    }

    /// Waits until Prometheus has scraped `metric` with `value`.
    pub async fn wait_for(&self, query: &str, value: f64) {
        let http = reqwest::Client::new();
        for _ in 0..300 {
            let url =
                reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &[("query", query)]).unwrap();
            let resp = self.authed(http.get(url)).send().await;
            if let Ok(resp) = resp
                && let Ok(v) = resp.json::<serde_json::Value>().await
                && v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<f64>().ok()) == Some(value)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus never saw {query} = {value}");
    }
}

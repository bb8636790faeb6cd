//! The HTTP/JSON SLI provider (Argo Rollouts' `web` metric provider): each indicator in
//! `http/sli.yaml` names a URL to call and a JSONPath that picks the value out of the JSON answer.
//!
//! ```yaml
//! indicators:
//!   availability:
//!     url: "http://status.internal/api/$PROJECT/$SERVICE?window=$DURATION_SECONDS"
//!     method: POST                 # GET (default), POST or PUT
//!     headers: { Authorization: "Bearer abc" }
//!     body: '{"service": "$SERVICE"}'
//!     jsonPath: "$.data.availability"
//!     timeout: 10s                 # default 10s
//!   plain: "http://status.internal/$SERVICE/score"   # shorthand for {url: …, jsonPath: "$"}
//! ```
//!
//! Requests go through the server's outbound policy (`keptn_outbound::http`): internal addresses need
//! `--allow-outbound`, redirects are followed only on the same origin, `Host` can't be set, and
//! messages name status, URL and what to check but never quote the answer.

use super::config::SliRequest;
use keptn_outbound::http::{Outbound, redact_url};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value};
use serde_json_path::JsonPath;
use std::fmt::Write as _;
use std::time::Duration;

pub const PROVIDER: &str = "http";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The value of one SLI: the indicator's spec from http/sli.yaml, placeholders filled from `req`.
pub async fn fetch(client: &Outbound, req: &SliRequest, name: &str, spec: &Value) -> Result<f64, String> {
    let value = async {
        let query = Query::from_spec(req, spec)?;
        let doc = query.send(client).await?;
        query.select(&doc)
    };
    value.await.map_err(|e| format!("{name}: {e}"))
}

/// One indicator's request, validated and with placeholders filled.
struct Query {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<String>,
    json_path: JsonPath,
    json_path_source: String,
    timeout: Duration,
}

impl Query {
    /// Everything is checked before the request goes out, so a typo never reaches the server.
    fn from_spec(req: &SliRequest, spec: &Value) -> Result<Query, String> {
        let spec = spec_map(spec)?;
        let url = required(&spec, "url")?;
        let json_path_source = required(&spec, "jsonPath")?;
        let method = method(optional(&spec, "method")?)?;
        let timeout = timeout(optional(&spec, "timeout")?)?;
        let headers = headers(req, spec.get("headers"))?;
        let body = optional(&spec, "body")?.map(|b| req.fill(b));
        let json_path = JsonPath::parse(json_path_source)
            .map_err(|e| format!("jsonPath {json_path_source:?} is not valid JSONPath: {e}"))?;
        let url = parse_url(&url_safe(req).fill(url))?;
        Ok(Query { method, url, headers, body, json_path, json_path_source: json_path_source.into(), timeout })
    }

    /// `GET http://…` for messages, without the URL's userinfo.
    fn target(&self) -> String {
        format!("{} {}", self.method, redact_url(self.url.as_str()))
    }

    /// Sends the request and reads the answer as JSON.
    /// Messages never quote the answer: the URL may point anywhere, and its text would end up
    /// in events.
    async fn send(&self, client: &Outbound) -> Result<Value, String> {
        let request = client.request(self.method.clone(), self.url.clone());
        let request = request.map_err(|denied| format!("{} is not sent: {denied}", self.target()))?;
        let mut request = request.headers(self.headers.clone()).timeout(self.timeout);
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.map_err(|e| self.failure(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{} answered HTTP {}", self.target(), status.as_u16()));
        }
        // The timeout covers reading the body too.
        let bytes = response.bytes().await.map_err(|e| self.failure(e))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{} response is not JSON: {e}", self.target()))
    }

    fn failure(&self, e: reqwest::Error) -> String {
        if e.is_timeout() {
            format!("{} timed out after {:?}", self.target(), self.timeout)
        } else {
            format!("{} failed: {}", self.target(), super::root_cause(&e.without_url()))
        }
    }

    /// The one number `jsonPath` selects from `doc`.
    fn select(&self, doc: &Value) -> Result<f64, String> {
        let path = &self.json_path_source;
        match self.json_path.query(doc).all().as_slice() {
            [] => Err(format!("jsonPath {path} selected nothing")),
            [one] => {
                number(one).ok_or_else(|| format!("jsonPath {path} selected {}, which is not a number", kind(one)))
            }
            many => Err(format!("jsonPath {path} selected {} values; it must select exactly one", many.len())),
        }
    }
}

/// The indicator as a map; a plain string is a URL whose whole answer is the number.
fn spec_map(spec: &Value) -> Result<Map<String, Value>, String> {
    match spec {
        Value::String(url) => {
            Ok(Map::from_iter([("url".into(), url.as_str().into()), ("jsonPath".into(), "$".into())]))
        }
        Value::Object(map) => Ok(map.clone()),
        _ => Err("must be a URL or a map with url and jsonPath in http/sli.yaml".into()),
    }
}

fn required<'a>(spec: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match optional(spec, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(format!("{key} is missing in http/sli.yaml")),
    }
}

fn optional<'a>(spec: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key} must be a string in http/sli.yaml")),
    }
}

fn method(method: Option<&str>) -> Result<Method, String> {
    match method.map(str::to_ascii_uppercase).as_deref() {
        None | Some("GET") => Ok(Method::GET),
        Some("POST") => Ok(Method::POST),
        Some("PUT") => Ok(Method::PUT),
        Some(_) => Err(format!("method {} is not supported; use GET, POST or PUT", method.unwrap_or_default())),
    }
}

fn timeout(timeout: Option<&str>) -> Result<Duration, String> {
    let Some(text) = timeout else { return Ok(DEFAULT_TIMEOUT) };
    match keptn_formats::duration::parse(text) {
        Ok(d) if d.is_zero() => Err(format!("timeout {text:?} must be longer than 0s")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("timeout {text:?} is not a duration like 10s: {e}")),
    }
}

/// The request headers, values templated. Values never go into messages: they may hold tokens.
fn headers(req: &SliRequest, spec: Option<&Value>) -> Result<HeaderMap, String> {
    let map = match spec {
        None | Some(Value::Null) => return Ok(HeaderMap::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err("headers must be a map of header name to value in http/sli.yaml".into()),
    };
    let mut out = HeaderMap::new();
    for (name, value) in map {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => return Err(format!("header {name} must be a string in http/sli.yaml")),
        };
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
        if header == reqwest::header::HOST {
            // It would send the request to another virtual host than the URL names.
            return Err("header Host can't be set in http/sli.yaml; put the host in url".into());
        }
        let mut value = HeaderValue::try_from(req.fill(&value))
            .map_err(|_| format!("the value of header {name} is not a valid HTTP header value"))?;
        value.set_sensitive(true);
        out.append(header, value);
    }
    Ok(out)
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("url {:?} is not a valid URL: {e}", redact_url(text)))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        _ => Err(format!("url {} must start with http:// or https://", redact_url(url.as_str()))),
    }
}

/// `req` with every value percent-encoded, so that a label or filter holding `&`, `#` or `/`
/// stays within its part of the URL. Quotes go first because `fill` strips them from filters.
fn url_safe(req: &SliRequest) -> SliRequest {
    SliRequest {
        project: encode(&req.project),
        stage: encode(&req.stage),
        service: encode(&req.service),
        deployment: encode(&req.deployment),
        filters: req.filters.iter().map(|(k, v)| (k.clone(), encode(&v.replace(['\'', '"'], "")))).collect(),
        labels: req.labels.iter().map(|(k, v)| (k.clone(), encode(v))).collect(),
        ..req.clone()
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A finite number, given as a JSON number or as a string such as `"99.5"`.
fn number(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// What kind of JSON value it is, for messages (the value itself is never quoted).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::header::HeaderMap as Headers;
    use hyper::{Request, Response, StatusCode};
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// What the test server received: method, path and query, headers, body.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Headers,
        body: String,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response
    }

    fn json_reply(body: Value) -> Response<Full<Bytes>> {
        let mut response = reply(StatusCode::OK, &body.to_string());
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        response
    }

    async fn handle(log: Log, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let (parts, body) = req.into_parts();
        let uri = parts.uri.clone();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            path,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        log.lock().unwrap().push(seen);
        Ok(match uri.path() {
            "/plain" => reply(StatusCode::OK, "42"),
            "/html" => reply(StatusCode::OK, "<html>down for maintenance</html>"),
            "/fail" => reply(StatusCode::INTERNAL_SERVER_ERROR, ""),
            "/leak" => json_reply(json!({"token": "leaked-secret-value"})),
            "/leak-text" => reply(StatusCode::OK, "token=leaked-secret-value"),
            // Redirects to the URL given as the query string.
            "/redirect" => {
                let to = uri.query().unwrap_or_default().to_string();
                let mut response = reply(StatusCode::TEMPORARY_REDIRECT, "");
                response.headers_mut().insert("location", to.parse().unwrap());
                response
            }
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                reply(StatusCode::OK, "1")
            }
            _ => json_reply(json!({"data": {
                "availability": 99.5,
                "text": " 97.25 ",
                "word": "abc",
                "nan": "NaN",
                "list": [1, 2, 3],
            }})),
        })
    }

    /// A server on a free port: its base URL and the requests it saw.
    async fn serve() -> (String, Log) {
        let log = Log::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let log = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(log.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        (base, log)
    }

    /// A URL nothing listens on.
    async fn closed_port() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/")
    }

    fn request() -> SliRequest {
        SliRequest {
            project: "sockshop".into(),
            stage: "dev".into(),
            service: "carts".into(),
            start: "2024-01-01T10:00:00Z".into(),
            end: "2024-01-01T10:05:00Z".into(),
            labels: [("build".to_string(), "1.2&x=3".to_string())].into(),
            filters: vec![("team".into(), "'blue'".into())],
            ..SliRequest::default()
        }
    }

    /// reqwest is built with `rustls-no-provider`, so building a client panics until a crypto
    /// provider is installed: `rustls::crypto::ring::default_provider().install_default()`, which
    /// needs `rustls` as a dev-dependency of this crate.
    fn client_with(policy: keptn_outbound::OutboundPolicy) -> Outbound {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Outbound::new(policy, Duration::from_secs(30)).unwrap()
    }

    /// The test servers run on loopback, so loopback is allowed.
    fn client() -> Outbound {
        client_with(keptn_outbound::OutboundPolicy::allow_loopback())
    }

    async fn get(spec: Value) -> Result<f64, String> {
        fetch(&client(), &request(), "availability", &spec).await
    }

    #[tokio::test]
    async fn get_fills_placeholders_into_the_url() {
        let (base, log) = serve().await;
        let url = format!("{base}/api/$PROJECT/$SERVICE?stage=$STAGE&window=$DURATION_SECONDS&b=$LABEL.build&t=$team");
        let value = get(json!({"url": url, "jsonPath": "$.data.availability"})).await;
        assert_eq!(value, Ok(99.5));
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.path, "/api/sockshop/carts?stage=dev&window=300s&b=1.2%26x%3D3&t=blue");
        assert_eq!(seen.body, "");
    }

    #[tokio::test]
    async fn post_sends_the_templated_body_and_headers() {
        let (base, log) = serve().await;
        let spec = json!({
            "url": format!("{base}/api"),
            "method": "POST",
            "headers": {"Authorization": "Bearer abc", "Content-Type": "application/json", "X-Stage": "$STAGE"},
            "body": r#"{"service": "$SERVICE", "team": "$team"}"#,
            "jsonPath": "$.data.availability",
        });
        assert_eq!(get(spec).await, Ok(99.5));
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.body, r#"{"service": "carts", "team": "blue"}"#);
        assert_eq!(seen.headers["authorization"], "Bearer abc");
        assert_eq!(seen.headers["content-type"], "application/json");
        assert_eq!(seen.headers["x-stage"], "dev");
    }

    #[tokio::test]
    async fn put_is_accepted_in_any_case() {
        let (base, log) = serve().await;
        let spec = json!({"url": format!("{base}/api"), "method": "put", "jsonPath": "$.data.availability"});
        assert_eq!(get(spec).await, Ok(99.5));
        assert_eq!(log.lock().unwrap()[0].method, "PUT");
    }

    #[tokio::test]
    async fn a_numeric_string_is_a_value() {
        let (base, _) = serve().await;
        assert_eq!(get(json!({"url": format!("{base}/api"), "jsonPath": "$.data.text"})).await, Ok(97.25));
    }

    #[tokio::test]
    async fn a_plain_string_is_a_url_answering_the_number() {
        let (base, log) = serve().await;
        assert_eq!(get(json!(format!("{base}/plain?s=$SERVICE"))).await, Ok(42.0));
        assert_eq!(log.lock().unwrap()[0].path, "/plain?s=carts");
    }

    #[tokio::test]
    async fn an_invalid_json_path_is_reported_before_any_request() {
        let (base, log) = serve().await;
        let err = get(json!({"url": format!("{base}/api"), "jsonPath": "$.data["})).await.unwrap_err();
        assert!(err.starts_with(r#"availability: jsonPath "$.data[" is not valid JSONPath: "#), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(log.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_json_path_must_select_exactly_one_number() {
        let (base, _) = serve().await;
        let at = |path: &str| json!({"url": format!("{base}/api"), "jsonPath": path});
        let cases = [
            ("$.data.missing", "availability: jsonPath $.data.missing selected nothing"),
            ("$.data.list[*]", "availability: jsonPath $.data.list[*] selected 3 values; it must select exactly one"),
            ("$.data.word", "availability: jsonPath $.data.word selected a string, which is not a number"),
            ("$.data.nan", "availability: jsonPath $.data.nan selected a string, which is not a number"),
            ("$.data.list", "availability: jsonPath $.data.list selected an array, which is not a number"),
        ];
        for (path, message) in cases {
            assert_eq!(get(at(path)).await, Err(message.to_string()));
        }
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_an_error() {
        let (base, _) = serve().await;
        let err = get(json!({"url": format!("{base}/html"), "jsonPath": "$"})).await.unwrap_err();
        assert!(err.starts_with(&format!("availability: GET {base}/html response is not JSON: ")), "{err}");
    }

    #[tokio::test]
    async fn an_http_error_status_is_an_error() {
        let (base, _) = serve().await;
        let err = get(json!({"url": format!("{base}/fail"), "jsonPath": "$"})).await;
        assert_eq!(err, Err(format!("availability: GET {base}/fail answered HTTP 500")));
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_root_cause() {
        let url = closed_port().await;
        let err = get(json!({"url": url, "jsonPath": "$"})).await.unwrap_err();
        assert!(err.starts_with(&format!("availability: GET {url} failed: ")), "{err}");
        assert!(err.to_lowercase().contains("connection refused"), "{err}");
        assert!(!err.contains("error sending request"), "{err}");
    }

    #[tokio::test]
    async fn the_timeout_is_respected() {
        let (base, _) = serve().await;
        let started = Instant::now();
        let err = get(json!({"url": format!("{base}/slow"), "jsonPath": "$", "timeout": "200ms"})).await;
        assert_eq!(err, Err(format!("availability: GET {base}/slow timed out after 200ms")));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn an_unsupported_method_is_an_error() {
        let err = get(json!({"url": "http://localhost/", "method": "DELETE", "jsonPath": "$"})).await;
        assert_eq!(err, Err("availability: method DELETE is not supported; use GET, POST or PUT".into()));
    }

    #[tokio::test]
    async fn url_and_json_path_are_required() {
        let no_url = get(json!({"jsonPath": "$"})).await;
        assert_eq!(no_url, Err("availability: url is missing in http/sli.yaml".into()));
        let no_path = get(json!({"url": "http://localhost/"})).await;
        assert_eq!(no_path, Err("availability: jsonPath is missing in http/sli.yaml".into()));
    }

    #[tokio::test]
    async fn malformed_specs_are_errors() {
        let cases = [
            (json!(42), "availability: must be a URL or a map with url and jsonPath in http/sli.yaml"),
            (
                json!({"url": "ftp://host/x", "jsonPath": "$"}),
                "availability: url ftp://host/x must start with http:// or https://",
            ),
            (
                json!({"url": "http://h/", "jsonPath": "$", "timeout": 5}),
                "availability: timeout must be a string in http/sli.yaml",
            ),
            (
                json!({"url": "http://h/", "jsonPath": "$", "headers": ["a"]}),
                "availability: headers must be a map of header name to value in http/sli.yaml",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(get(spec).await, Err(message.to_string()));
        }
        let err = get(json!({"url": "http://h/", "jsonPath": "$", "timeout": "soon"})).await.unwrap_err();
        assert!(err.starts_with(r#"availability: timeout "soon" is not a duration like 10s: "#), "{err}");
    }

    #[tokio::test]
    async fn secrets_stay_out_of_error_messages() {
        let (base, _) = serve().await;
        let with_user = |url: &str| url.replacen("http://", "http://admin:pw-secret@", 1);
        let headers = json!({"Authorization": "Bearer tok-secret", "X-Api-Key": "key-secret"});
        let closed = closed_port().await;
        let urls =
            [format!("{base}/fail"), format!("{base}/html"), format!("{base}/slow"), format!("{base}/api"), closed];
        for url in urls {
            let spec = json!({"url": with_user(&url), "headers": headers, "jsonPath": "$.nothing", "timeout": "200ms"});
            let err = get(spec).await.unwrap_err();
            for secret in ["pw-secret", "admin", "tok-secret", "key-secret"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
        let bad_value = json!({"url": "http://h/", "headers": {"X-Api-Key": "key-secret\n"}, "jsonPath": "$"});
        let err = get(bad_value).await.unwrap_err();
        assert_eq!(err, "availability: the value of header X-Api-Key is not a valid HTTP header value");
        let bad_url = get(json!({"url": "http://admin:pw-secret@[::1/x", "jsonPath": "$"})).await.unwrap_err();
        assert!(!bad_url.contains("pw-secret") && !bad_url.contains("admin"), "{bad_url}");
    }

    #[tokio::test]
    async fn the_answer_is_never_quoted_in_messages() {
        let (base, _) = serve().await;
        let cases = [("/leak", "$.token"), ("/leak-text", "$"), ("/leak", "$.*")];
        for (path, json_path) in cases {
            let err = get(json!({"url": format!("{base}{path}"), "jsonPath": json_path})).await.unwrap_err();
            assert!(!err.contains("leaked-secret-value"), "{err}");
            assert!(err.starts_with("availability: "), "{err}");
        }
    }

    #[tokio::test]
    async fn redirects_are_followed_on_the_same_host_only() {
        let (base, log) = serve().await;
        let (other, other_log) = serve().await;
        let same = get(json!({"url": format!("{base}/redirect?{base}/api"), "jsonPath": "$.data.availability"})).await;
        assert_eq!(same, Ok(99.5));
        assert_eq!(log.lock().unwrap().len(), 2);
        let url = format!("{base}/redirect?{other}/api");
        let err = get(json!({"url": url, "jsonPath": "$.data.availability"})).await.unwrap_err();
        assert_eq!(
            err,
            format!(
                "availability: GET {url} failed: the server answered with a redirect to another host, port or scheme, which is not followed; use the final URL"
            )
        );
        assert!(other_log.lock().unwrap().is_empty(), "the other port got a request");
    }

    #[tokio::test]
    async fn the_default_policy_refuses_internal_targets_before_sending() {
        let (base, log) = serve().await;
        let port = base.rsplit(':').next().unwrap();
        let strict = client_with(keptn_outbound::OutboundPolicy::default());
        for host in ["127.0.0.1", "0x7f000001", "[::ffff:127.0.0.1]", "2130706433"] {
            let url = format!("http://{host}:{port}/api");
            let err = fetch(&strict, &request(), "availability", &json!({"url": url, "jsonPath": "$"})).await;
            let err = err.unwrap_err();
            assert!(err.contains(" is not sent: "), "{err}");
            assert!(err.contains("loopback address, which the server's outbound policy denies"), "{err}");
            assert!(err.ends_with("--allow-outbound loopback"), "{err}");
        }
        let url = format!("http://localhost:{port}/api");
        let err = fetch(&strict, &request(), "availability", &json!({"url": url, "jsonPath": "$"})).await.unwrap_err();
        assert!(err.starts_with(&format!("availability: GET {url} failed: localhost resolves to ")), "{err}");
        assert!(err.contains("a loopback address, which the server's outbound policy denies"), "{err}");
        assert!(log.lock().unwrap().is_empty(), "a request reached the server");
    }

    #[tokio::test]
    async fn allowed_names_resolve_through_the_policy() {
        let (base, log) = serve().await;
        let url = base.replace("127.0.0.1", "localhost");
        assert_eq!(get(json!({"url": format!("{url}/api"), "jsonPath": "$.data.availability"})).await, Ok(99.5));
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_host_header_cannot_be_set() {
        let (base, log) = serve().await;
        let spec =
            json!({"url": format!("{base}/api"), "headers": {"Host": "metadata.google.internal"}, "jsonPath": "$"});
        assert_eq!(
            get(spec).await,
            Err("availability: header Host can't be set in http/sli.yaml; put the host in url".into())
        );
        assert!(log.lock().unwrap().is_empty());
    }
}

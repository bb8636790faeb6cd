//! Smart-HTTP git remote: a tiny hyper server that runs Debian's `git-http-backend` as a CGI program.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

const GIT_HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// Serves every bare repository under a root directory over HTTP or HTTPS until dropped.
pub struct HttpRemote {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    requests: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpRemote {
    /// Serves every bare repository under `root` over plain HTTP on 127.0.0.1:<free port>. With
    /// `credentials = Some((user, token))` every request needs HTTP Basic auth with exactly that user and token.
    pub fn start(root: &Path, credentials: Option<(&str, &str)>) -> HttpRemote {
        Self::spawn(root, credentials, None)
    }

    /// The same over HTTPS with a freshly generated CA and a server certificate for 127.0.0.1 / localhost.
    pub fn start_tls(root: &Path, credentials: Option<(&str, &str)>) -> HttpRemote {
        let (config, ca_pem) = crate::tls::server_config();
        Self::spawn(root, credentials, Some((TlsAcceptor::from(config), ca_pem)))
    }

    /// e.g. "http://127.0.0.1:40123/<repo>" (or https://…)
    pub fn url(&self, repo: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// PEM of the CA that signed the server certificate (None for plain HTTP).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Number of HTTP requests received so far, including refused ones.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn spawn(root: &Path, credentials: Option<(&str, &str)>, tls: Option<(TlsAcceptor, String)>) -> HttpRemote {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(AtomicUsize::new(0));
        let backend = Arc::new(Backend {
            root: root.canonicalize().unwrap_or_else(|e| panic!("repository root {}: {e}", root.display())),
            credentials: credentials.map(|(user, token)| (user.to_owned(), token.to_owned())),
            requests: requests.clone(),
        });
        let (ca_pem, acceptor) = match tls {
            Some((acceptor, ca_pem)) => (Some(ca_pem), Some(acceptor)),
            None => (None, None),
        };
        let (shutdown, shutdown_rx) = oneshot::channel();
        // An own runtime on an own thread: works whether or not the caller is inside a tokio runtime, and dropping
        // the runtime cancels all connections (and kills their CGI children via kill_on_drop).
        let thread = std::thread::Builder::new()
            .name(format!("testgit-http-{}", addr.port()))
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
                runtime.block_on(serve(listener, backend, acceptor, shutdown_rx));
            })
            .expect("spawn server thread");
        HttpRemote { addr, tls: ca_pem.is_some(), ca_pem, requests, shutdown: Some(shutdown), thread: Some(thread) }
    }
}

impl Drop for HttpRemote {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    backend: Arc<Backend>,
    acceptor: Option<TlsAcceptor>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let backend = backend.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, backend).await;
                    }
                }
                None => serve_connection(stream, backend).await,
            }
        });
    }
}

async fn serve_connection(stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, backend: Arc<Backend>) {
    let service = service_fn(move |request| {
        let backend = backend.clone();
        async move { Ok::<_, Infallible>(backend.handle(request).await) }
    });
    // Errors here are clients hanging up; the test that caused them reports its own failure.
    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

struct Backend {
    root: PathBuf,
    credentials: Option<(String, String)>,
    requests: Arc<AtomicUsize>,
}

impl Backend {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let user = match (&self.credentials, basic_auth(request.headers())) {
            (None, _) => "anonymous".to_owned(),
            (Some(expected), Some(given)) if *expected == given => given.0,
            (Some(_), _) => {
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(WWW_AUTHENTICATE, r#"Basic realm="git""#)
                    .body(Full::new(Bytes::from_static(b"authentication required\n")))
                    .expect("401 response");
            }
        };
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("cannot read request body: {e}")),
        };
        match self.cgi(&parts, body, &user).await {
            Ok(response) => response,
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("git-http-backend: {e}")),
        }
    }

    /// Runs git-http-backend for one request (RFC 3875 CGI).
    async fn cgi(&self, parts: &Parts, body: Bytes, user: &str) -> Result<Response<Full<Bytes>>, String> {
        let mut cmd = Command::new(GIT_HTTP_BACKEND);
        // A clean environment: GIT_* variables of the test process (GIT_DIR, GIT_CONFIG_*) must not reach the backend.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            // git-http-backend only allows receive-pack (push) for authenticated users.
            .env("REMOTE_USER", user)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("REQUEST_METHOD", parts.method.as_str())
            .env("PATH_INFO", parts.uri.path())
            .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
            .env("CONTENT_LENGTH", body.len().to_string());
        for (header, var) in [
            ("content-type", "CONTENT_TYPE"),
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
            ("git-protocol", "GIT_PROTOCOL"),
        ] {
            if let Some(value) = parts.headers.get(header).and_then(|v| v.to_str().ok()) {
                cmd.env(var, value);
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {GIT_HTTP_BACKEND}: {e}"))?;
        // Feed stdin concurrently with reading stdout so that large bodies in both directions cannot deadlock.
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
        let output = child.wait_with_output().await.map_err(|e| e.to_string())?;
        let _ = writer.await;
        if !output.stderr.is_empty() {
            eprintln!("git-http-backend: {}", String::from_utf8_lossy(&output.stderr).trim_end());
        }
        parse_cgi_output(&output.stdout)
    }
}

/// The (user, token) of an `Authorization: Basic …` header.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, token) = decoded.split_once(':')?;
    Some((user.to_owned(), token.to_owned()))
}

/// Turns CGI output (`Status:` and other header lines, a blank line, the body) into a response.
fn parse_cgi_output(out: &[u8]) -> Result<Response<Full<Bytes>>, String> {
    let (head_len, sep_len) = [&b"\r\n\r\n"[..], b"\n\n"]
        .iter()
        .filter_map(|sep| out.windows(sep.len()).position(|w| w == *sep).map(|pos| (pos, sep.len())))
        .min()
        .ok_or_else(|| format!("no end of CGI headers in {:?}", String::from_utf8_lossy(out)))?;
    let head = std::str::from_utf8(&out[..head_len]).map_err(|e| format!("CGI headers: {e}"))?;
    let mut response = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad CGI header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            // "Status: 404 Not Found"
            let code = value.split(' ').next().unwrap_or_default();
            response = response.status(code.parse::<u16>().map_err(|_| format!("bad CGI status {value:?}"))?);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response.body(Full::new(Bytes::copy_from_slice(&out[head_len + sep_len..]))).map_err(|e| e.to_string())
}

fn plain(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    eprintln!("testgit http: {message}");
    Response::builder().status(status).body(Full::new(Bytes::from(message))).expect("plain response")
}

//! Talking to a project's upstream with libgit2: list its branch head, fetch, push, and turn
//! libgit2's errors into ones that say what to fix. Credentials never appear in messages or logs.

use crate::credentials::GitCredentials;
use crate::error::{Error, Result};
use git2::{
    CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions, Oid, ProxyOptions, PushOptions,
    RemoteCallbacks, RemoteRedirect, Repository,
};
use keptn_outbound::{OutboundPolicy, Refused};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Once;

/// Where a fetch leaves the upstream branch.
pub(crate) const TRACKING_REF: &str = "refs/remotes/origin/upstream";
/// The commit being pushed; `master` moves to it only once the upstream accepted it.
pub(crate) const PENDING_REF: &str = "refs/keptn/pending";

/// The upstream's branch for the project and its head (`None`: the repository is empty).
pub(crate) struct RemoteHead {
    pub branch: String,
    pub head: Option<Oid>,
}

/// What a push came to.
pub(crate) enum Pushed {
    Accepted,
    /// The upstream moved on (non-fast-forward): fetch, re-apply, retry.
    Rejected(String),
}

/// libgit2's network timeouts are process-wide; set them once so an unreachable upstream fails in
/// seconds instead of hanging a request (TCP's default connect timeout is minutes).
fn set_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: called once, before any network operation of this process starts.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(10_000);
            let _ = git2::opts::set_server_timeout_in_milliseconds(60_000);
        }
    });
}

/// `https://user:token@host/x` → `https://host/x`: never show userinfo someone put in the URL.
pub(crate) fn display_url(url: &str) -> String {
    keptn_outbound::strip_userinfo(url)
}

/// Host and port a URL connects to; `None` for `file://` (the server's own disk).
fn endpoint(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default = match scheme {
        "file" => return None,
        "https" => 443,
        "ssh" => 22,
        "git" => 9418,
        _ => 80,
    };
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse().unwrap_or(default)),
        _ => (host_port, default),
    };
    Some((host.to_string(), port))
}

/// The outbound policy, before libgit2 touches the network: the upstream's host (or the proxy's,
/// which then resolves the upstream) must resolve to allowed addresses. libgit2 resolves again
/// when it connects; redirects are not followed, so it goes nowhere else.
fn check_outbound(project: &str, policy: &OutboundPolicy, creds: &GitCredentials) -> Result<()> {
    let url = display_url(&creds.remote_url);
    let refused = |detail: String| Error::UpstreamDenied { project: project.into(), url: url.clone(), detail };
    let Some((host, port)) = endpoint(&creds.remote_url) else {
        // file:// reads and writes the server's own disk: a loopback target.
        return match policy.check(std::net::Ipv4Addr::LOCALHOST.into()) {
            Ok(()) => Ok(()),
            Err(_) => Err(refused(
                "a file:// upstream is on the server itself, which the server's outbound policy denies; if this is intended, start the server with --allow-outbound loopback".into(),
            )),
        };
    };
    let proxy = creds.proxy_url().and_then(|p| endpoint(&p));
    let result = match &proxy {
        Some((proxy_host, proxy_port)) => policy.resolve(proxy_host, *proxy_port).map(drop).and_then(|()| {
            // The proxy resolves the upstream's name; a literal is checked here.
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<std::net::IpAddr>() {
                Ok(ip) => policy.check(ip).map_err(|denied| Refused::Denied { host: host.clone(), denied }),
                Err(_) => Ok(()),
            }
        }),
        None => policy.resolve(&host, port).map(drop),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e @ Refused::Denied { .. }) => Err(refused(e.to_string())),
        Err(e @ Refused::Unresolvable { .. }) => {
            Err(Error::UpstreamUnreachable { project: project.into(), url: url.clone(), detail: e.to_string() })
        }
    }
}

/// libgit2 follows redirects of the first request to any host unless told otherwise; `connect`
/// (ls-remote) takes no options, so the repository's configuration says it.
fn no_redirects(repo: &Repository) -> std::result::Result<(), git2::Error> {
    let mut config = repo.config()?;
    if config.get_bool("http.followRedirects").ok() != Some(false) {
        config.set_bool("http.followRedirects", false)?;
    }
    Ok(())
}

/// State the callbacks share with the caller, to tell a rejected credential from a network error.
#[derive(Default)]
struct Attempts {
    offered: Cell<CredentialType>,
    rejected: Cell<bool>,
    tls: RefCell<Option<String>>,
    push_rejection: RefCell<Option<String>>,
}

fn callbacks<'a>(creds: &'a GitCredentials, seen: Rc<Attempts>) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let s = seen.clone();
    cb.credentials(move |_url, user_from_url, allowed| {
        // libgit2 asks again after the server refused what we gave: that is a bad credential,
        // and answering again would loop forever.
        let kind = if allowed.contains(CredentialType::SSH_KEY) {
            CredentialType::SSH_KEY
        } else if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            CredentialType::USER_PASS_PLAINTEXT
        } else {
            CredentialType::USERNAME
        };
        if s.offered.get().contains(kind) {
            s.rejected.set(true);
            return Err(git2::Error::from_str("the upstream rejected the credentials"));
        }
        s.offered.set(s.offered.get() | kind);
        let user = Some(creds.user.as_str()).filter(|u| !u.is_empty()).or(user_from_url).unwrap_or("git");
        match kind {
            CredentialType::SSH_KEY => match &creds.ssh {
                Some(k) => {
                    let pass = Some(k.private_key_pass.as_str()).filter(|p| !p.is_empty());
                    Cred::ssh_key_from_memory(user, None, &k.private_key, pass)
                }
                None => Err(git2::Error::from_str("the upstream asks for an ssh key; set ssh.privateKey")),
            },
            CredentialType::USER_PASS_PLAINTEXT => match &creds.https {
                Some(h) if !h.token.is_empty() => Cred::userpass_plaintext(user, &h.token),
                _ => {
                    s.rejected.set(true);
                    Err(git2::Error::from_str("the upstream asks for credentials; set user and https.token"))
                }
            },
            _ => Cred::username(user),
        }
    });
    let insecure = creds.https.as_ref().is_some_and(|h| h.insecure_skip_tls);
    let ca = creds.https.as_ref().map(|h| h.certificate.clone()).filter(|c| !c.trim().is_empty());
    let s = seen.clone();
    cb.certificate_check(move |cert, host| {
        if cert.as_hostkey().is_some() || insecure {
            // ssh host keys are not checked (as keptn); insecureSkipTLS accepts any certificate.
            return Ok(CertificateCheckStatus::CertificateOk);
        }
        let Some(ca) = &ca else { return Ok(CertificateCheckStatus::CertificatePassthrough) };
        let der = cert.as_x509().map(|c| c.data().to_vec()).unwrap_or_default();
        match verify_with_ca(ca, &der, host) {
            Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
            Err(why) => {
                *s.tls.borrow_mut() = Some(why.clone());
                Err(git2::Error::from_str(&why))
            }
        }
    });
    cb.push_update_reference(move |_refname, status| {
        if let Some(msg) = status {
            *seen.push_rejection.borrow_mut() = Some(msg.to_string());
        }
        Ok(())
    });
    cb
}

/// Checks the server certificate (DER) against the PEM bundle `ca` (any certificate in it is a
/// trust anchor) and the host name.
fn verify_with_ca(ca: &str, der: &[u8], host: &str) -> std::result::Result<(), String> {
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
    use openssl::x509::{X509, X509StoreContext};
    let fail = |e: openssl::error::ErrorStack| format!("https.certificate could not be used: {e}");
    let anchors = X509::stack_from_pem(ca.as_bytes()).map_err(fail)?;
    let leaf = X509::from_der(der).map_err(|e| format!("the server sent an unreadable certificate: {e}"))?;
    let mut store = X509StoreBuilder::new().map_err(fail)?;
    for c in anchors {
        store.add_cert(c).map_err(fail)?;
    }
    let mut param = X509VerifyParam::new().map_err(fail)?;
    param.set_flags(X509VerifyFlags::PARTIAL_CHAIN).map_err(fail)?;
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => param.set_ip(ip).map_err(fail)?,
        Err(_) => param.set_host(host).map_err(fail)?,
    }
    store.set_param(&param).map_err(fail)?;
    let store = store.build();
    let chain = Stack::new().map_err(fail)?;
    let mut ctx = X509StoreContext::new().map_err(fail)?;
    let verdict = ctx
        .init(&store, &leaf, &chain, |c| Ok(c.verify_cert()?.then_some(()).ok_or_else(|| c.error())))
        .map_err(fail)?;
    verdict.map_err(|e| {
        format!(
            "the certificate of {host} does not verify against https.certificate ({e}); give the CA that signed it, or set insecureSkipTLS"
        )
    })
}

fn proxy(creds: &GitCredentials) -> ProxyOptions<'static> {
    let mut p = ProxyOptions::new();
    if let Some(url) = creds.proxy_url() {
        p.url(&url);
    }
    p
}

/// Maps a libgit2 failure to what the user should fix.
fn classify(project: &str, creds: &GitCredentials, seen: &Attempts, e: git2::Error) -> Error {
    let url = display_url(&creds.remote_url);
    let (project, msg) = (project.to_string(), e.message().to_string());
    if let Some(why) = seen.tls.borrow().clone() {
        return Error::UpstreamTls { project, url, detail: why };
    }
    let lower = msg.to_lowercase();
    // libssh2 reports a wrong passphrase or an unreadable key as a generic ssh error.
    let auth = ["authentication", "authenticate", "passphrase", "unable to extract public key"];
    if seen.rejected.get() || e.code() == git2::ErrorCode::Auth || auth.iter().any(|p| lower.contains(p)) {
        return Error::UpstreamAuth { project, url, detail: msg };
    }
    if e.code() == git2::ErrorCode::Certificate || e.class() == git2::ErrorClass::Ssl {
        let detail =
            format!("{msg}; if the server uses a private CA, give it as https.certificate, or set insecureSkipTLS");
        return Error::UpstreamTls { project, url, detail };
    }
    let not_found = [
        "404",
        "not found",
        "does not appear to be a git repository",
        "could not find repository",
        "failed to resolve path",
    ];
    if e.code() == git2::ErrorCode::NotFound || not_found.iter().any(|p| lower.contains(p)) {
        return Error::UpstreamNotFound { project, url, detail: msg };
    }
    let network = matches!(e.class(), git2::ErrorClass::Net | git2::ErrorClass::Os | git2::ErrorClass::Ssh)
        || ["connect", "resolve", "timed out", "refused"].iter().any(|p| lower.contains(p));
    if network {
        return Error::UpstreamUnreachable { project, url, detail: msg };
    }
    Error::Upstream { project, url, detail: msg }
}

/// Asks the upstream for its branch heads (`git ls-remote`). The project's branch is `master`,
/// or the upstream's default branch if it has no `master`.
pub(crate) fn remote_head(
    repo: &Repository,
    project: &str,
    policy: &OutboundPolicy,
    creds: &GitCredentials,
) -> Result<RemoteHead> {
    check_outbound(project, policy, creds)?;
    set_timeouts();
    let seen = Rc::new(Attempts::default());
    let err = |e| classify(project, creds, &seen, e);
    no_redirects(repo).map_err(err)?;
    let mut remote = repo.remote_anonymous(&creds.remote_url).map_err(err)?;
    let conn =
        remote.connect_auth(Direction::Fetch, Some(callbacks(creds, seen.clone())), Some(proxy(creds))).map_err(err)?;
    let heads = conn.list().map_err(err)?;
    let find = |name: &str| heads.iter().find(|h| h.name() == name).map(|h| h.oid());
    if let Some(oid) = find("refs/heads/master") {
        return Ok(RemoteHead { branch: crate::BRANCH.into(), head: Some(oid) });
    }
    let default = heads
        .iter()
        .find(|h| h.name() == "HEAD")
        .and_then(|h| h.symref_target().map(str::to_string))
        .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_string));
    match default {
        Some(branch) => {
            let head = find(&format!("refs/heads/{branch}"));
            Ok(RemoteHead { branch, head })
        }
        None => Ok(RemoteHead { branch: crate::BRANCH.into(), head: None }),
    }
}

/// Fetches the upstream branch into [`TRACKING_REF`] unless `want` is already here.
pub(crate) fn fetch(
    repo: &Repository,
    project: &str,
    policy: &OutboundPolicy,
    creds: &GitCredentials,
    branch: &str,
    want: Oid,
) -> Result<()> {
    if repo.find_commit(want).is_ok() {
        return Ok(());
    }
    check_outbound(project, policy, creds)?;
    set_timeouts();
    let seen = Rc::new(Attempts::default());
    let err = |e| classify(project, creds, &seen, e);
    let mut remote = repo.remote_anonymous(&creds.remote_url).map_err(err)?;
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(creds, seen.clone()))
        .proxy_options(proxy(creds))
        .follow_redirects(RemoteRedirect::None);
    let spec = format!("+refs/heads/{branch}:{TRACKING_REF}");
    remote.fetch(&[spec.as_str()], Some(&mut opts), None).map_err(err)?;
    repo.find_commit(want).map(drop).map_err(|_| Error::Upstream {
        project: project.into(),
        url: display_url(&creds.remote_url),
        detail: format!("the fetch did not bring commit {want}; the upstream changed meanwhile, retry"),
    })
}

/// Pushes commit `commit` to the upstream branch (never forced), which we expect at `expected`.
pub(crate) fn push(
    repo: &Repository,
    project: &str,
    policy: &OutboundPolicy,
    creds: &GitCredentials,
    branch: &str,
    commit: Oid,
    expected: Option<Oid>,
) -> Result<Pushed> {
    check_outbound(project, policy, creds)?;
    set_timeouts();
    let seen = Rc::new(Attempts::default());
    let err = |e| classify(project, creds, &seen, e);
    repo.reference(PENDING_REF, commit, true, "keptn: push").map_err(err)?;
    let mut remote = repo.remote_anonymous(&creds.remote_url).map_err(err)?;
    let mut opts = PushOptions::new();
    opts.remote_callbacks(callbacks(creds, seen.clone()))
        .proxy_options(proxy(creds))
        .follow_redirects(RemoteRedirect::None);
    let target = format!("refs/heads/{branch}");
    // libgit2's local transport checks fast-forward when it connects but then overwrites the ref,
    // so a concurrent writer's commit could vanish. For `file://` upstreams the objects go to a
    // side ref and the branch moves by compare-and-swap here.
    let local = creds.remote_url.strip_prefix("file://");
    let dst = if local.is_some() { "refs/keptn/incoming" } else { target.as_str() };
    let spec = format!("+{PENDING_REF}:{dst}");
    let spec = if local.is_some() { spec } else { spec[1..].to_string() };
    match remote.push(&[spec.as_str()], Some(&mut opts)) {
        Err(e) if e.code() == git2::ErrorCode::NotFastForward => return Ok(Pushed::Rejected(e.message().into())),
        Err(e) => return Err(err(e)),
        Ok(()) => {}
    }
    if let Some(msg) = seen.push_rejection.borrow().clone() {
        return Ok(Pushed::Rejected(msg));
    }
    let Some(path) = local else { return Ok(Pushed::Accepted) };
    let upstream = Repository::open_bare(path).map_err(err)?;
    let moved = match expected {
        Some(old) => upstream.reference_matching(&target, commit, true, old, "keptn: push").map(drop),
        None => upstream.reference(&target, commit, false, "keptn: push").map(drop),
    };
    match moved {
        Ok(()) => Ok(Pushed::Accepted),
        Err(e) if matches!(e.code(), git2::ErrorCode::Modified | git2::ErrorCode::Exists | git2::ErrorCode::Locked) => {
            Ok(Pushed::Rejected(format!("{target} moved meanwhile")))
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_userinfo() {
        assert_eq!(display_url("https://me:tok@example.com/o/r.git"), "https://example.com/o/r.git");
        assert_eq!(display_url("ssh://git@example.com:22/r.git"), "ssh://example.com:22/r.git");
        assert_eq!(display_url("https://example.com"), "https://example.com");
        assert_eq!(display_url("file:///tmp/r.git"), "file:///tmp/r.git");
    }

    #[test]
    fn endpoints_of_remote_urls() {
        let e = |url: &str| endpoint(url).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(e("https://me:t@example.com/o/r.git").as_deref(), Some("example.com 443"));
        assert_eq!(e("http://127.0.0.1:8080/r.git").as_deref(), Some("127.0.0.1 8080"));
        assert_eq!(e("ssh://git@[::1]:2222/r.git").as_deref(), Some("[::1] 2222"));
        assert_eq!(e("ssh://git@[::1]/r.git").as_deref(), Some("[::1] 22"));
        assert_eq!(e("http://proxy:3128").as_deref(), Some("proxy 3128"));
        assert_eq!(e("file:///tmp/r.git"), None);
    }

    #[test]
    fn the_default_policy_refuses_local_upstreams_before_connecting() {
        let creds = |url: &str| GitCredentials { remote_url: url.into(), ..GitCredentials::default() };
        let strict = OutboundPolicy::default();
        for url in ["http://127.0.0.1:1/r.git", "ssh://git@[::1]:1/r.git", "https://localhost:1/r.git", "file:///tmp/r"]
        {
            let err = check_outbound("p", &strict, &creds(url)).unwrap_err();
            assert!(matches!(err, Error::UpstreamDenied { .. }), "{url}: {err}");
            assert!(err.to_string().contains("--allow-outbound loopback"), "{err}");
        }
        let mut via_proxy = creds("https://10.0.0.5/r.git");
        via_proxy.https = Some(crate::HttpsCredentials {
            proxy: Some(crate::Proxy { url: "127.0.0.1:3128".into(), scheme: "http".into(), ..Default::default() }),
            ..Default::default()
        });
        let err = check_outbound("p", &OutboundPolicy::allowing(&["private"]).unwrap(), &via_proxy).unwrap_err();
        assert!(err.to_string().contains("127.0.0.1 is a loopback address"), "the proxy is checked: {err}");
        assert!(check_outbound("p", &OutboundPolicy::allow_loopback(), &creds("file:///tmp/r")).is_ok());
    }
}

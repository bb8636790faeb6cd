//! The one HTTP client for URLs users configure (SLI providers, Prometheus, push integrations),
//! with the outbound policy (`keptn_outbound`) applied to every connection:
//! - names: a DNS resolver that keeps only the allowed addresses, so the check is on the address
//!   actually connected to (no second lookup to rebind);
//! - IP literals (reqwest does not resolve those): checked in [`Outbound::request`];
//! - redirects: followed only to the same scheme, host and port (a cross-host hop could reach any
//!   address, and its literal would not be checked);
//! - no proxy from the environment: a proxy resolves names where the policy can't see them.

use crate::{Denied, OutboundPolicy, Refused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, RequestBuilder, Url, redirect};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed on the same host.
const MAX_REDIRECTS: usize = 5;

/// What a redirect to elsewhere fails with; the target is not quoted (it comes from the answer).
#[derive(Debug)]
pub struct CrossHostRedirect;

impl std::fmt::Display for CrossHostRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the server answered with a redirect to another host, port or scheme, which is not followed; use the final URL",
        )
    }
}

impl std::error::Error for CrossHostRedirect {}

#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl Outbound {
    /// `timeout` bounds each request unless the request sets its own.
    pub fn new(policy: OutboundPolicy, timeout: Duration) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .dns_resolver(Arc::new(Checked(policy.clone())))
            .redirect(redirect::Policy::custom(same_origin))
            .build()?;
        Ok(Outbound { http, policy })
    }

    /// Checks the URL's host if it is an IP literal; names are checked when they resolve.
    pub fn check_url(&self, url: &Url) -> Result<(), Denied> {
        // The URL parser normalised literals (`0x7f000001` is 127.0.0.1); IPv6 ones are bracketed.
        let host = url.host_str().unwrap_or_default();
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.policy.check(ip),
            Err(_) => Ok(()),
        }
    }

    /// A request builder for `url`, or why the policy refuses it.
    pub fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, Denied> {
        self.check_url(&url)?;
        Ok(self.http.request(method, url))
    }
}

pub use crate::redact_url;

/// The innermost cause of a request failure (e.g. "Connection refused", or the policy's
/// refusal), without reqwest's chain.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Whether a request failed because of the policy (then retrying will not help).
pub fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<Refused>() || e.is::<Denied>() || e.is::<CrossHostRedirect>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn same_origin(attempt: redirect::Attempt) -> redirect::Action {
    let first = &attempt.previous()[0];
    let next = attempt.url();
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
    }
    let same = next.scheme() == first.scheme()
        && next.host_str() == first.host_str()
        && next.port_or_known_default() == first.port_or_known_default();
    if same { attempt.follow() } else { attempt.error(CrossHostRedirect) }
}

/// System resolution, then the policy on every address.
struct Checked(Arc<OutboundPolicy>);

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = policy.filter(&host, addrs)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_userinfo_when_shown() {
        assert_eq!(redact_url("http://user:pa@ss@h:8080/x?y=@z"), "http://***@h:8080/x?y=@z");
        assert_eq!(redact_url("https://token@h/"), "https://***@h/");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(redact_url(""), "");
    }
}

//! A project's upstream: keptn's `gitCredentials` (the JSON keptn kept in the Kubernetes secret
//! `git-credentials-<project>`), its validation, and the view without secrets.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where and how to reach a project's upstream repository. Field names are keptn's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCredentials {
    #[serde(rename = "remoteURL", default)]
    pub remote_url: String,
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpsCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshCredentials>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsCredentials {
    #[serde(default)]
    pub token: String,
    /// PEM of a CA (or self-signed server) certificate to trust for this upstream only.
    #[serde(default)]
    pub certificate: String,
    #[serde(rename = "insecureSkipTLS", default)]
    pub insecure_skip_tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxy {
    /// `host:port`, keptn's format (a `scheme://` prefix is accepted too).
    #[serde(default)]
    pub url: String,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshCredentials {
    /// PEM of the private key.
    #[serde(rename = "privateKey", default)]
    pub private_key: String,
    #[serde(rename = "privateKeyPass", default)]
    pub private_key_pass: String,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidCredentials { reason: reason.into() }
}

impl GitCredentials {
    /// keptn's rules: the URL starts with `http://`, `https://` or `ssh://` (and, for local
    /// mirrors, `file://`); https and ssh settings are mutually exclusive; ssh needs an `ssh://`
    /// URL and a key; a proxy needs `host:port` and scheme http or https.
    pub fn validate(&self) -> Result<()> {
        let url = self.remote_url.trim();
        if url.is_empty() {
            return Err(invalid("remoteURL is required, e.g. \"https://github.com/org/repo.git\""));
        }
        let scheme = url.split("://").next().filter(|_| url.contains("://")).unwrap_or("");
        if !matches!(scheme, "http" | "https" | "ssh" | "file") {
            return Err(invalid(format!(
                "remoteURL {url:?} must start with http://, https:// or ssh:// (file:// for a local repository)"
            )));
        }
        if self.https.is_some() && self.ssh.is_some() {
            return Err(invalid("give either https or ssh credentials, not both"));
        }
        if let Some(ssh) = &self.ssh {
            if scheme != "ssh" {
                return Err(invalid(format!("ssh credentials need an ssh:// remoteURL, got {url:?}")));
            }
            if !ssh.private_key.contains("PRIVATE KEY") {
                return Err(invalid("ssh.privateKey must be a PEM private key (-----BEGIN … PRIVATE KEY-----)"));
            }
        }
        if let Some(https) = &self.https {
            if scheme == "ssh" {
                return Err(invalid(format!("https credentials need an http(s):// remoteURL, got {url:?}")));
            }
            if !https.certificate.trim().is_empty() && !https.certificate.contains("BEGIN CERTIFICATE") {
                return Err(invalid("https.certificate must be a PEM certificate (-----BEGIN CERTIFICATE-----)"));
            }
            if let Some(p) = &https.proxy {
                if !p.url.contains(':') {
                    return Err(invalid(format!("https.proxy.url {:?} must be host:port, e.g. \"proxy:3128\"", p.url)));
                }
                if !matches!(p.scheme.as_str(), "http" | "https") {
                    return Err(invalid(format!("https.proxy.scheme {:?} must be \"http\" or \"https\"", p.scheme)));
                }
            }
        }
        Ok(())
    }

    /// What keptn shows of the credentials: URL, user, TLS and proxy settings; never the token,
    /// private key, passphrase, certificate or proxy password.
    pub fn redacted(&self) -> Value {
        let mut v = json!({ "remoteURL": self.remote_url, "user": self.user });
        if let Some(h) = &self.https {
            let proxy = h.proxy.as_ref().map(|p| json!({ "url": p.url, "scheme": p.scheme, "user": p.user }));
            v["https"] = json!({ "insecureSkipTLS": h.insecure_skip_tls, "proxy": proxy });
        }
        v
    }

    /// The remote URL without any userinfo someone put in it, for messages and API answers.
    pub fn display_url(&self) -> String {
        crate::remote::display_url(&self.remote_url)
    }

    /// The proxy URL libgit2 takes (`scheme://user:password@host:port`), if one is set.
    pub(crate) fn proxy_url(&self) -> Option<String> {
        let p = self.https.as_ref()?.proxy.as_ref().filter(|p| !p.url.is_empty())?;
        let host = p.url.split_once("://").map_or(p.url.as_str(), |(_, rest)| rest);
        let scheme = if p.scheme.is_empty() { "http" } else { p.scheme.as_str() };
        let auth = if p.user.is_empty() {
            String::new()
        } else {
            format!("{}:{}@", percent_encode(&p.user), percent_encode(&p.password))
        };
        Some(format!("{scheme}://{auth}{host}"))
    }
}

/// Userinfo encoding for the proxy URL: everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn https(url: &str) -> GitCredentials {
        GitCredentials {
            remote_url: url.into(),
            user: "me".into(),
            https: Some(HttpsCredentials { token: "t0k".into(), ..Default::default() }),
            ssh: None,
        }
    }

    #[test]
    fn keptn_rules() {
        assert!(https("https://example.com/r.git").validate().is_ok());
        assert!(https("git@example.com:r.git").validate().is_err());
        assert!(https("ssh://git@example.com/r.git").validate().is_err());
        let mut both = https("https://example.com/r.git");
        both.ssh =
            Some(SshCredentials { private_key: "-----BEGIN OPENSSH PRIVATE KEY-----".into(), ..Default::default() });
        assert!(both.validate().is_err());
        let ssh = GitCredentials { remote_url: "ssh://git@h/r.git".into(), https: None, ..both.clone() };
        assert!(ssh.validate().is_ok());
        let mut proxy = https("https://example.com/r.git");
        proxy.https.as_mut().unwrap().proxy =
            Some(Proxy { url: "proxy".into(), scheme: "http".into(), ..Default::default() });
        assert!(proxy.validate().unwrap_err().to_string().contains("host:port"));
    }

    #[test]
    fn redacted_view_has_no_secrets() {
        let mut c = https("https://example.com/r.git");
        c.https.as_mut().unwrap().proxy = Some(Proxy {
            url: "proxy:3128".into(),
            scheme: "http".into(),
            user: "pu".into(),
            password: "pp-secret".into(),
        });
        let shown = c.redacted().to_string();
        assert!(!shown.contains("t0k") && !shown.contains("pp-secret"), "{shown}");
        assert!(shown.contains("proxy:3128") && shown.contains("\"user\":\"me\""));
        assert_eq!(c.proxy_url().unwrap(), "http://pu:pp-secret@proxy:3128");
    }
}

use thiserror::Error;

/// Everything the configuration repository can fail with. The messages say what to do; the
/// server maps the variants to keptn's status codes (see [`Error::is_not_found`] and friends).
#[derive(Debug, Error)]
pub enum Error {
    #[error("project \"{project}\" does not exist; create the project first")]
    ProjectNotFound { project: String },
    #[error("project \"{project}\" already exists; delete it first or use another name")]
    ProjectExists { project: String },
    #[error(
        "stage \"{stage}\" does not exist in project \"{project}\"; create the stage first (it is created from the shipyard)"
    )]
    StageNotFound { project: String, stage: String },
    #[error("stage \"{stage}\" already exists in project \"{project}\"")]
    StageExists { project: String, stage: String },
    #[error(
        "service \"{service}\" does not exist in stage \"{stage}\" of project \"{project}\"; create the service first"
    )]
    ServiceNotFound { project: String, stage: String, service: String },
    #[error("service \"{service}\" already exists in stage \"{stage}\" of project \"{project}\"")]
    ServiceExists { project: String, stage: String, service: String },
    #[error("resource \"{uri}\" not found in {scope} of project \"{project}\"{at}")]
    ResourceNotFound {
        project: String,
        scope: String,
        uri: String,
        /// `""` or `" at commit <id>"`.
        at: String,
    },
    #[error(
        "revision \"{revision}\" not found in project \"{project}\"; pass a commit id (gitCommitID) that this project's repository contains"
    )]
    RevisionNotFound { project: String, revision: String },
    #[error("invalid resource URI \"{}\": {reason}", crate::uri::shorten(uri))]
    InvalidUri { uri: String, reason: &'static str },
    #[error("invalid {kind} name \"{name}\": {reason}")]
    InvalidName { kind: &'static str, name: String, reason: &'static str },
    #[error("{reason}")]
    InvalidHelmChart { uri: String, reason: String },
    #[error("invalid gitCredentials: {reason}")]
    InvalidCredentials { reason: String },
    #[error(
        "the upstream {url} of project \"{project}\" rejected the credentials ({detail}); check user and token (https) or the private key and passphrase (ssh)"
    )]
    UpstreamAuth { project: String, url: String, detail: String },
    #[error("TLS with the upstream {url} of project \"{project}\" failed: {detail}")]
    UpstreamTls { project: String, url: String, detail: String },
    #[error(
        "the upstream repository {url} of project \"{project}\" was not found ({detail}); create it first, or check the URL"
    )]
    UpstreamNotFound { project: String, url: String, detail: String },
    #[error(
        "the upstream {url} of project \"{project}\" can't be reached ({detail}); check the URL, the network and the proxy settings"
    )]
    UpstreamUnreachable { project: String, url: String, detail: String },
    #[error("the upstream {url} of project \"{project}\" is refused: {detail}")]
    UpstreamDenied { project: String, url: String, detail: String },
    #[error("the upstream {url} of project \"{project}\" failed: {detail}")]
    Upstream { project: String, url: String, detail: String },
    #[error(
        "the upstream {url} already holds a keptn project or history unrelated to project \"{project}\"; use an empty repository"
    )]
    UpstreamHasHistory { project: String, url: String },
    #[error(
        "the upstream {url} of project \"{project}\" kept changing while we pushed ({attempts} attempts); nothing was written, retry"
    )]
    UpstreamBusy { project: String, url: String, attempts: u32 },
    #[error("the stored gitCredentials of project \"{project}\" can't be read: {reason}")]
    CredentialsUnreadable { project: String, reason: String },
    #[error("git error in project \"{project}\": {source}")]
    Git {
        project: String,
        #[source]
        source: git2::Error,
    },
    #[error("i/o error in project \"{project}\": {source}")]
    Io {
        project: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// keptn answers these with 404.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::ProjectNotFound { .. }
                | Error::StageNotFound { .. }
                | Error::ServiceNotFound { .. }
                | Error::ResourceNotFound { .. }
                | Error::RevisionNotFound { .. }
                | Error::UpstreamNotFound { .. }
        )
    }

    /// keptn answers these with 409.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::ProjectExists { .. }
                | Error::StageExists { .. }
                | Error::ServiceExists { .. }
                | Error::UpstreamHasHistory { .. }
                | Error::UpstreamBusy { .. }
        )
    }

    /// keptn answers bad upstream credentials with 424 (Failed Dependency); TLS failures too.
    pub fn is_bad_credentials(&self) -> bool {
        matches!(self, Error::UpstreamAuth { .. } | Error::UpstreamTls { .. })
    }

    /// The upstream could not be reached or failed in another way: 502.
    pub fn is_upstream_failure(&self) -> bool {
        matches!(self, Error::UpstreamUnreachable { .. } | Error::Upstream { .. })
    }

    /// keptn answers these with 400.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Error::InvalidUri { .. }
                | Error::InvalidName { .. }
                | Error::InvalidCredentials { .. }
                | Error::InvalidHelmChart { .. }
                | Error::UpstreamDenied { .. }
        )
    }
}

pub type Result<T> = std::result::Result<T, Error>;

//! Git-backed configuration repository, keptn's resource-service storage.
//!
//! One bare git repository per project at `<root>/<project>`, keptn's *directory layout* on one
//! branch (`master`):
//!
//! ```text
//! metadata.yaml, shipyard.yaml, …           project files
//! .keptn-stages/<stage>/metadata.yaml, …    stage files
//! .keptn-stages/<stage>/<service>/…         service files (with metadata.yaml)
//! ```
//!
//! Every change is one commit made directly with libgit2 (blobs → tree through an in-memory
//! index → commit → ref update); there is no working tree. Paths are validated before anything
//! is written (`uri::path_problem`: git's forbidden names, 255 bytes a component, 4096 a path),
//! and a commit's objects are built in memory and copied into the repository only once the
//! commit is checked (`staged`), so a failed commit leaves the repository exactly as it was. The
//! API is synchronous; call it from `spawn_blocking`.
//!
//! # Concurrency
//!
//! Writes take a per-project mutex, so different projects are written in parallel. Reads take no
//! lock: they use a pooled `Repository` handle of their own and see either the old or the new
//! head, never a partial commit.
//!
//! # Crash safety
//!
//! libgit2 writes every object (blob, tree, commit; those a tree refers to first) to a temporary
//! file renamed into place, and only then moves `refs/heads/master` by writing `master.lock` and renaming it over the ref. A
//! crash before the rename leaves unreachable objects (harmless, collectable by `git gc`) and the
//! ref at the last complete commit; the rename itself is atomic. A crash between creating and
//! renaming `master.lock` leaves a stale lock file that would block every later write, so the
//! first time a process opens a project it removes stale `*.lock` files under `refs/` (one process
//! owns the root directory; don't point two servers at the same root). Objects and refs are not
//! fsynced: a process crash loses nothing committed, a power loss can lose the last commits.

mod credentials;
mod error;
mod helm;
mod remote;
mod secret;
mod staged;
mod uri;

pub use credentials::{GitCredentials, HttpsCredentials, Proxy, SshCredentials};
pub use error::{Error, Result};
pub use keptn_outbound::OutboundPolicy;
pub use secret::SecretKey;
pub use uri::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES, validate_uri};

use staged::Staged;

use git2::{
    FileMode, Index, IndexEntry, IndexTime, ObjectType, Oid, Repository, RepositoryInitOptions, Signature, Tree,
    TreeWalkMode, TreeWalkResult,
};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The branch that holds everything (keptn's `DEFAULT_REMOTE_GIT_BRANCH`).
pub const BRANCH: &str = "master";
const BRANCH_REF: &str = "refs/heads/master";
/// The directory that holds the stages, hidden from project listings.
pub const STAGES_DIR: &str = ".keptn-stages";
/// The file that marks a project, stage or service.
pub const METADATA: &str = "metadata.yaml";

/// Commit author and committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Default for Author {
    /// keptn's default (`GIT_KEPTN_USER` / `GIT_KEPTN_EMAIL`).
    fn default() -> Self {
        Author { name: "keptn".into(), email: "keptn@keptn.sh".into() }
    }
}

/// The level a resource lives at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Project,
    Stage(&'a str),
    Service(&'a str, &'a str),
}

impl Scope<'_> {
    /// Directory of this scope inside the repository, `""` or ending in `/`.
    fn prefix(&self) -> String {
        match self {
            Scope::Project => String::new(),
            Scope::Stage(s) => format!("{STAGES_DIR}/{s}/"),
            Scope::Service(s, svc) => format!("{STAGES_DIR}/{s}/{svc}/"),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Scope::Project => Ok(()),
            Scope::Stage(s) => validate_name("stage", s),
            Scope::Service(s, svc) => {
                validate_name("stage", s)?;
                validate_name("service", svc)
            }
        }
    }
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Project => f.write_str("the project level"),
            Scope::Stage(s) => write!(f, "stage \"{s}\""),
            Scope::Service(s, svc) => write!(f, "service \"{svc}\" of stage \"{s}\""),
        }
    }
}

/// Project, stage and service names become path components: they must be one plain component.
/// (keptn's stricter naming rules are checked by the API layer, `keptn-formats`.)
fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidName { kind, name: name.to_string(), reason });
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    if name.len() > 200 {
        return bad("must be at most 200 characters");
    }
    if name.chars().any(|c| c == '/' || c == '\\' || c == '~' || c.is_control()) {
        return bad("must not contain '/', '\\', '~' or control characters");
    }
    Ok(())
}

/// Per-project state: the write lock (holding the writer's repository handle), a pool of
/// handles for readers, and the upstream (loaded on first use).
struct Project {
    writer: Mutex<Option<Repository>>,
    readers: Mutex<Vec<Repository>>,
    upstream: Mutex<UpstreamSlot>,
}

impl Project {
    fn new() -> Self {
        Project {
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            upstream: Mutex::new(UpstreamSlot::Unknown),
        }
    }
}

#[derive(Clone)]
enum UpstreamSlot {
    /// Not read from disk yet.
    Unknown,
    None,
    Some(Arc<Upstream>),
}

/// A project's upstream and what we know of it.
struct Upstream {
    creds: GitCredentials,
    /// The upstream's branch for the project (`master`, or its default branch).
    branch: Mutex<String>,
    /// When we last learnt the upstream's head.
    synced: Mutex<Option<Instant>>,
    /// A background refresh is running (single flight).
    refreshing: AtomicBool,
}

impl Upstream {
    fn new(creds: GitCredentials, branch: String) -> Self {
        Upstream {
            creds,
            branch: Mutex::new(branch),
            synced: Mutex::new(Some(Instant::now())),
            refreshing: AtomicBool::new(false),
        }
    }

    fn branch(&self) -> String {
        lock(&self.branch).clone()
    }

    fn touch(&self) {
        *lock(&self.synced) = Some(Instant::now());
    }

    fn is_stale(&self, window: Duration) -> bool {
        lock(&self.synced).is_none_or(|t| t.elapsed() >= window)
    }
}

/// Sealed credentials inside the project's git directory (git ignores unknown files there; the
/// file goes with the repository when the project is deleted).
const UPSTREAM_FILE: &str = "keptn-upstream";
/// Pushes rejected as non-fast-forward are retried on top of the upstream's new head this often.
const MAX_PUSH_ATTEMPTS: u32 = 5;
/// Default freshness window: reads at the head use what was fetched less than this long ago.
pub const DEFAULT_FRESHNESS: Duration = Duration::from_secs(5);

const MAX_POOLED_READERS: usize = 8;

/// The configuration repositories of all projects under one root directory.
pub struct ConfigRepo {
    root: PathBuf,
    author: Author,
    projects: Mutex<HashMap<String, Arc<Project>>>,
    key: OnceLock<SecretKey>,
    freshness: Duration,
    /// Where upstreams may be: checked on the resolved address before every network operation.
    outbound: OutboundPolicy,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock can't leave a half-made commit (the ref moves last), so a
    // poisoned lock is safe to reuse.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConfigRepo {
    /// Opens (creating if needed) the root directory. Commits are authored by keptn.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| Error::Io { project: String::new(), source })?;
        Ok(ConfigRepo {
            root,
            author: Author::default(),
            projects: Mutex::new(HashMap::new()),
            key: OnceLock::new(),
            freshness: DEFAULT_FRESHNESS,
            outbound: OutboundPolicy::default(),
        })
    }

    /// Sets the key that encrypts upstream credentials. Without one, the key is read from (or
    /// created at) `<root>/.secret-key` on first use.
    pub fn with_secret_key(self, key: SecretKey) -> Self {
        let _ = self.key.set(key);
        self
    }

    /// How long what was fetched from an upstream counts as current for reads at the head.
    pub fn with_freshness(mut self, window: Duration) -> Self {
        self.freshness = window;
        self
    }

    /// Which addresses upstreams may resolve to (default: no loopback, link-local, metadata or
    /// private ones; `file://` counts as loopback).
    pub fn with_outbound(mut self, policy: OutboundPolicy) -> Self {
        self.outbound = policy;
        self
    }

    /// The key sealing secrets at rest (upstream credentials; the server's other secrets too).
    pub fn secret_key(&self) -> Result<&SecretKey> {
        if let Some(k) = self.key.get() {
            return Ok(k);
        }
        let k = SecretKey::load_or_create(&self.root.join(".secret-key"))
            .map_err(|source| Error::Io { project: String::new(), source })?;
        Ok(self.key.get_or_init(|| k))
    }

    /// Sets the author and committer of every following commit.
    pub fn with_author(mut self, author: Author) -> Self {
        self.author = author;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a project's (bare) repository.
    pub fn project_path(&self, project: &str) -> PathBuf {
        self.root.join(project)
    }

    fn exists(&self, project: &str) -> bool {
        self.project_path(project).join("HEAD").is_file()
    }

    /// The project's entry; `None` if the project does not exist on disk (no entry is created
    /// for unknown names).
    fn entry(&self, project: &str, create: bool) -> Result<Arc<Project>> {
        validate_name("project", project)?;
        let mut map = lock(&self.projects);
        if let Some(p) = map.get(project) {
            return Ok(p.clone());
        }
        if !create && !self.exists(project) {
            return Err(Error::ProjectNotFound { project: project.into() });
        }
        let p = Arc::new(Project::new());
        map.insert(project.to_string(), p.clone());
        Ok(p)
    }

    fn git(project: &str) -> impl Fn(git2::Error) -> Error + '_ {
        move |source| Error::Git { project: project.to_string(), source }
    }

    fn signature(&self, project: &str) -> Result<Signature<'static>> {
        Signature::now(&self.author.name, &self.author.email).map_err(Self::git(project))
    }

    /// Opens the project's repository after a possible crash: removes stale lock files (see the
    /// crate docs) so writes are not blocked. Called once per project and process, under the
    /// project's write lock.
    fn open_for_write(&self, project: &str) -> Result<Repository> {
        let path = self.project_path(project);
        if !self.exists(project) {
            return Err(Error::ProjectNotFound { project: project.into() });
        }
        remove_stale_locks(&path).map_err(|source| Error::Io { project: project.into(), source })?;
        Repository::open_bare(&path).map_err(Self::git(project))
    }

    /// Runs `f` with the project's write lock held and its repository open.
    fn with_writer<T>(&self, project: &str, f: impl FnOnce(&Repository, &Project) -> Result<T>) -> Result<T> {
        let entry = self.entry(project, false)?;
        let mut guard = lock(&entry.writer);
        if guard.is_none() || !self.exists(project) {
            *guard = Some(self.open_for_write(project)?);
        }
        let repo = guard.as_ref().expect("opened above");
        f(repo, &entry)
    }

    /// Makes one change: `op` builds a commit on top of the head it is given (or returns that
    /// head unchanged), and the branch moves to it. With an upstream, the commit is pushed first
    /// and the branch moves only once the upstream took it; a push the upstream rejects because
    /// it moved on is retried on top of its new head (`op` runs again, so its checks see the
    /// upstream's changes). Returns the new head.
    fn change(
        &self,
        project: &str,
        mut op: impl FnMut(&Repository, &git2::Commit<'_>, &Tree<'_>) -> Result<Oid>,
    ) -> Result<String> {
        self.with_writer(project, |repo, entry| {
            let Some(up) = self.upstream_of(project, entry)? else {
                let (parent, tree) = head(repo, project)?;
                let new = op(repo, &parent, &tree)?;
                move_master(repo, project, parent.id(), new)?;
                return Ok(new.to_string());
            };
            let mut pull_first = up.is_stale(self.freshness);
            for attempt in 0..MAX_PUSH_ATTEMPTS {
                if std::mem::take(&mut pull_first) {
                    self.pull(repo, project, &up)?;
                }
                let (parent, tree) = head(repo, project)?;
                let new = op(repo, &parent, &tree)?;
                if new == parent.id() {
                    return Ok(new.to_string());
                }
                match remote::push(repo, project, &self.outbound, &up.creds, &up.branch(), new, Some(parent.id()))? {
                    remote::Pushed::Accepted => {
                        move_master(repo, project, parent.id(), new)?;
                        up.touch();
                        return Ok(new.to_string());
                    }
                    remote::Pushed::Rejected(why) => {
                        tracing::debug!(project, attempt, why, "upstream moved on; re-applying on its new head");
                        pull_first = true;
                        std::thread::sleep(Duration::from_millis(20 * u64::from(attempt + 1)));
                    }
                }
            }
            Err(Error::UpstreamBusy {
                project: project.into(),
                url: remote::display_url(&up.creds.remote_url),
                attempts: MAX_PUSH_ATTEMPTS,
            })
        })
    }

    /// The project's upstream, read from its sealed file the first time.
    fn upstream_of(&self, project: &str, entry: &Project) -> Result<Option<Arc<Upstream>>> {
        let mut slot = lock(&entry.upstream);
        if let UpstreamSlot::Unknown = *slot {
            *slot = match std::fs::read(self.project_path(project).join(UPSTREAM_FILE)) {
                Ok(sealed) => {
                    let unreadable =
                        |reason: &str| Error::CredentialsUnreadable { project: project.into(), reason: reason.into() };
                    let plain = self.secret_key()?.open(&sealed).ok_or_else(|| {
                        unreadable("they were encrypted with another key; restore the key or set the credentials again")
                    })?;
                    let creds: GitCredentials =
                        serde_json::from_slice(&plain).map_err(|_| unreadable("the decrypted data is not JSON"))?;
                    // Not synced yet in this process: the first use asks the upstream.
                    let up = Upstream::new(creds, BRANCH.into());
                    *lock(&up.synced) = None;
                    UpstreamSlot::Some(Arc::new(up))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => UpstreamSlot::None,
                Err(source) => return Err(Error::Io { project: project.into(), source }),
            };
        }
        Ok(match &*slot {
            UpstreamSlot::Some(up) => Some(up.clone()),
            _ => None,
        })
    }

    /// Learns the upstream's head and takes it over (the caller holds the write lock). Every
    /// local commit reached the upstream before the branch moved to it, so the upstream's head
    /// is never missing local work unless its history was rewritten, which we then follow.
    /// Returns the new head if it changed.
    fn pull(&self, repo: &Repository, project: &str, up: &Upstream) -> Result<Option<Oid>> {
        let remote = remote::remote_head(repo, project, &self.outbound, &up.creds)?;
        *lock(&up.branch) = remote.branch.clone();
        let Some(theirs) = remote.head else {
            up.touch();
            return Ok(None);
        };
        remote::fetch(repo, project, &self.outbound, &up.creds, &remote.branch, theirs)?;
        up.touch();
        let (ours, _) = head(repo, project)?;
        let ours = ours.id();
        let git = Self::git(project);
        if ours == theirs || repo.graph_descendant_of(ours, theirs).map_err(&git)? {
            // Ahead: the next write pushes it.
            return Ok(None);
        }
        move_master(repo, project, ours, theirs)?;
        Ok(Some(theirs))
    }

    /// Runs `f` with a pooled read handle (no lock held while `f` runs).
    fn with_reader<T>(&self, project: &str, f: impl FnOnce(&Repository) -> Result<T>) -> Result<T> {
        let entry = self.entry(project, false)?;
        if !self.exists(project) {
            return Err(Error::ProjectNotFound { project: project.into() });
        }
        let pooled = lock(&entry.readers).pop();
        let repo = match pooled {
            Some(r) => r,
            None => Repository::open_bare(self.project_path(project)).map_err(Self::git(project))?,
        };
        let out = f(&repo);
        let mut pool = lock(&entry.readers);
        if pool.len() < MAX_POOLED_READERS {
            pool.push(repo);
        }
        out
    }

    /// Creates the project's repository with an initial commit holding `metadata.yaml`
    /// (`projectName`, `creationTimestamp`, `isUsingDirectoryStructure: true`). Returns the
    /// commit id.
    pub fn create_project(&self, project: &str) -> Result<String> {
        self.create_project_with(project, &[], &[], &format!("Initialized project {project}"))
    }

    /// Creates the project's repository with everything in one commit: `metadata.yaml`, the
    /// stages (as [`ConfigRepo::create_stage`] makes them) and project-level `files` (as
    /// [`ConfigRepo::write`] writes them). Returns the commit id.
    pub fn create_project_with(
        &self,
        project: &str,
        stages: &[&str],
        files: &[(&str, &[u8])],
        message: &str,
    ) -> Result<String> {
        let entry = self.entry(project, true)?;
        let metadata =
            format!("projectName: {project}\ncreationTimestamp: {}\nisUsingDirectoryStructure: true\n", timestamp());
        let mut changes = vec![(METADATA.to_string(), Some(metadata.into_bytes()))];
        let mut seen = std::collections::HashSet::new();
        for stage in stages {
            validate_name("stage", stage)?;
            if !seen.insert(*stage) {
                return Err(Error::StageExists { project: project.into(), stage: stage.to_string() });
            }
            changes.push(stage_marker(project, stage));
        }
        changes.extend(resource_changes(Scope::Project, files)?);
        let mut guard = lock(&entry.writer);
        let path = self.project_path(project);
        if self.exists(project) {
            return Err(Error::ProjectExists { project: project.into() });
        }
        if path.exists() {
            // Left over from an interrupted create or delete: nothing committed lives there.
            std::fs::remove_dir_all(&path).map_err(|source| Error::Io { project: project.into(), source })?;
        }
        // Initialise in a temporary directory and rename: a crash never leaves a repository
        // without its initial commit.
        let tmp = self.root.join(format!(".creating-{project}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|source| Error::Io { project: project.into(), source })?;
        }
        let mut opts = RepositoryInitOptions::new();
        opts.bare(true).initial_head(BRANCH).mkpath(true);
        let repo = Repository::init_opts(&tmp, &opts).map_err(Self::git(project))?;
        let id = self.commit(&repo, project, None, &changes, message)?;
        repo.reference(BRANCH_REF, id, false, "keptn: initialized").map_err(Self::git(project))?;
        drop(repo);
        std::fs::rename(&tmp, &path).map_err(|source| Error::Io { project: project.into(), source })?;
        *guard = None;
        lock(&entry.readers).clear();
        *lock(&entry.upstream) = UpstreamSlot::Unknown;
        Ok(id.to_string())
    }

    /// Deletes the project's repository (keptn: "deletes the local clone only").
    pub fn delete_project(&self, project: &str) -> Result<()> {
        let entry = self.entry(project, false)?;
        let mut guard = lock(&entry.writer);
        if !self.exists(project) {
            return Err(Error::ProjectNotFound { project: project.into() });
        }
        *guard = None;
        lock(&entry.readers).clear();
        // Rename first so a crash mid-delete never leaves a half-deleted repository that looks
        // like a project.
        let path = self.project_path(project);
        let doomed = self.root.join(format!(".deleting-{project}"));
        let io = |source| Error::Io { project: project.into(), source };
        if doomed.exists() {
            std::fs::remove_dir_all(&doomed).map_err(io)?;
        }
        std::fs::rename(&path, &doomed).map_err(io)?;
        std::fs::remove_dir_all(&doomed).map_err(io)?;
        lock(&self.projects).remove(project);
        Ok(())
    }

    /// Names of the projects in the root directory, sorted.
    pub fn projects(&self) -> Result<Vec<String>> {
        let io = |source| Error::Io { project: String::new(), source };
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.root).map_err(io)? {
            let e = e.map_err(io)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().join("HEAD").is_file() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Creates `.keptn-stages/<stage>/metadata.yaml`. Returns the commit id.
    pub fn create_stage(&self, project: &str, stage: &str) -> Result<String> {
        validate_name("stage", stage)?;
        self.change(project, |repo, parent, tree| {
            let marker = stage_marker(project, stage);
            if tree.get_path(Path::new(&marker.0)).is_ok() {
                return Err(Error::StageExists { project: project.into(), stage: stage.into() });
            }
            self.commit(repo, project, Some((parent, tree)), &[marker], &format!("Added stage: {stage}"))
        })
    }

    /// Creates `.keptn-stages/<stage>/<service>/metadata.yaml`. Returns the commit id.
    pub fn create_service(&self, project: &str, stage: &str, service: &str) -> Result<String> {
        Scope::Service(stage, service).validate()?;
        self.change(project, |repo, parent, tree| {
            check_scope(tree, project, Scope::Stage(stage))?;
            let marker = format!("{STAGES_DIR}/{stage}/{service}/{METADATA}");
            if tree.get_path(Path::new(&marker)).is_ok() {
                return Err(Error::ServiceExists {
                    project: project.into(),
                    stage: stage.into(),
                    service: service.into(),
                });
            }
            let metadata = format!("serviceName: {service}\ncreationTimestamp: {}\n", timestamp());
            self.commit(
                repo,
                project,
                Some((parent, tree)),
                &[(marker.clone(), Some(metadata.into_bytes()))],
                &format!("Added service: {service} to stage: {stage}"),
            )
        })
    }

    /// Removes the service directory with all its files. Returns the commit id.
    pub fn delete_service(&self, project: &str, stage: &str, service: &str) -> Result<String> {
        Scope::Service(stage, service).validate()?;
        self.change(project, |repo, parent, tree| {
            let scope = Scope::Service(stage, service);
            check_scope(tree, project, scope)?;
            let message = format!("Removed service: {service} from stage: {stage}");
            self.commit(repo, project, Some((parent, tree)), &[(scope.prefix(), None)], &message)
        })
    }

    /// Writes (creates or replaces) resources in one commit. Returns the commit id; if nothing
    /// changed no commit is made and the current head is returned.
    pub fn write(&self, project: &str, scope: Scope<'_>, resources: &[(&str, &[u8])], message: &str) -> Result<String> {
        scope.validate()?;
        let changes = resource_changes(scope, resources)?;
        self.change(project, |repo, parent, tree| {
            check_scope(tree, project, scope)?;
            self.commit(repo, project, Some((parent, tree)), &changes, message)
        })
    }

    /// Deletes one resource. Returns the commit id.
    pub fn delete(&self, project: &str, scope: Scope<'_>, uri: &str, message: &str) -> Result<String> {
        scope.validate()?;
        let path = resource_path(scope, uri)?;
        if is_marker(scope, uri) {
            return Err(Error::InvalidUri {
                uri: uri.into(),
                reason: "metadata.yaml marks the project, stage or service; delete that instead",
            });
        }
        self.change(project, |repo, parent, tree| {
            check_scope(tree, project, scope)?;
            match tree.get_path(Path::new(&path)) {
                Ok(e) if e.kind() == Some(ObjectType::Blob) => {}
                _ => {
                    return Err(Error::ResourceNotFound {
                        project: project.into(),
                        scope: scope.to_string(),
                        uri: uri.into(),
                        at: String::new(),
                    });
                }
            }
            self.commit(repo, project, Some((parent, tree)), &[(path.clone(), None)], message)
        })
    }

    /// Reads one resource at the head, or at commit `at` (full or abbreviated id). Returns the
    /// content and the version: the commit id it was read at (keptn's `metadata.version`).
    pub fn read(&self, project: &str, scope: Scope<'_>, uri: &str, at: Option<&str>) -> Result<(Vec<u8>, String)> {
        self.fetching_missing_revision(project, || self.read_local(project, scope, uri, at))
    }

    /// Runs `f`; if it needs a revision we don't have and the project has an upstream, fetches
    /// once (the commit may have been made there) and runs `f` again.
    fn fetching_missing_revision<T>(&self, project: &str, f: impl Fn() -> Result<T>) -> Result<T> {
        match f() {
            Err(Error::RevisionNotFound { .. }) if self.upstream(project).ok().flatten().is_some() => {
                self.refresh(project)?;
                f()
            }
            other => other,
        }
    }

    fn read_local(&self, project: &str, scope: Scope<'_>, uri: &str, at: Option<&str>) -> Result<(Vec<u8>, String)> {
        scope.validate()?;
        let path = resource_path(scope, uri)?;
        self.with_reader(project, |repo| {
            let (commit, tree) = resolve(repo, project, at)?;
            let not_found = || Error::ResourceNotFound {
                project: project.into(),
                scope: scope.to_string(),
                uri: uri.into(),
                at: at.map(|a| format!(" at commit {a}")).unwrap_or_default(),
            };
            match tree.get_path(Path::new(&path)) {
                Ok(e) if e.kind() == Some(ObjectType::Blob) => {
                    let blob = repo.find_blob(e.id()).map_err(Self::git(project))?;
                    Ok((blob.content().to_vec(), commit.to_string()))
                }
                _ => {
                    check_scope(&tree, project, scope)?;
                    Err(not_found())
                }
            }
        })
    }

    /// URIs of the resources of one level at the head or at commit `at`, sorted. The project
    /// listing hides `.keptn-stages`; the stage listing hides its services' directories.
    pub fn list(&self, project: &str, scope: Scope<'_>, at: Option<&str>) -> Result<Vec<String>> {
        self.fetching_missing_revision(project, || self.list_local(project, scope, at))
    }

    fn list_local(&self, project: &str, scope: Scope<'_>, at: Option<&str>) -> Result<Vec<String>> {
        scope.validate()?;
        self.with_reader(project, |repo| {
            let (_, tree) = resolve(repo, project, at)?;
            check_scope(&tree, project, scope)?;
            let prefix = scope.prefix();
            let dir = if prefix.is_empty() {
                tree
            } else {
                let e = tree.get_path(Path::new(prefix.trim_end_matches('/'))).map_err(Self::git(project))?;
                repo.find_tree(e.id()).map_err(Self::git(project))?
            };
            // Top-level directories to hide.
            let mut hidden: Vec<String> = Vec::new();
            match scope {
                Scope::Project => hidden.push(STAGES_DIR.into()),
                Scope::Stage(_) => {
                    for e in dir.iter() {
                        if e.kind() == Some(ObjectType::Tree) {
                            let sub = repo.find_tree(e.id()).map_err(Self::git(project))?;
                            if sub.get_name(METADATA).is_some() {
                                hidden.push(e.name().unwrap_or_default().to_string());
                            }
                        }
                    }
                }
                Scope::Service(..) => {}
            }
            let mut out = Vec::new();
            dir.walk(TreeWalkMode::PreOrder, |root, e| {
                let name = e.name().unwrap_or_default();
                match e.kind() {
                    Some(ObjectType::Tree) if root.is_empty() && hidden.iter().any(|h| h == name) => {
                        TreeWalkResult::Skip
                    }
                    Some(ObjectType::Blob) => {
                        out.push(format!("{root}{name}"));
                        TreeWalkResult::Ok
                    }
                    _ => TreeWalkResult::Ok,
                }
            })
            .map_err(Self::git(project))?;
            out.sort();
            Ok(out)
        })
    }

    /// Commit id of the project's head.
    pub fn head(&self, project: &str) -> Result<String> {
        self.with_reader(project, |repo| {
            let (commit, _) = head(repo, project)?;
            Ok(commit.id().to_string())
        })
    }

    /// Connects the project to an upstream (or moves it to another one) and stores the
    /// credentials encrypted. The upstream must be reachable with them. An empty upstream, or one
    /// that is behind, gets the project's whole history; one that is ahead with the project's
    /// history is taken over; one with unrelated content but no keptn project (a README) is
    /// merged with the project; one holding another keptn project is refused.
    pub fn set_upstream(&self, project: &str, creds: GitCredentials) -> Result<()> {
        creds.validate()?;
        self.with_writer(project, |repo, entry| {
            let git = Self::git(project);
            let remote = remote::remote_head(repo, project, &self.outbound, &creds)?;
            let (ours, our_tree) = head(repo, project)?;
            let ours = ours.id();
            let has_history =
                || Error::UpstreamHasHistory { project: project.into(), url: remote::display_url(&creds.remote_url) };
            let push = |commit: Oid| match remote::push(
                repo,
                project,
                &self.outbound,
                &creds,
                &remote.branch,
                commit,
                remote.head,
            )? {
                remote::Pushed::Accepted => Ok(()),
                remote::Pushed::Rejected(_) => Err(has_history()),
            };
            match remote.head {
                None => push(ours)?,
                Some(theirs) => {
                    remote::fetch(repo, project, &self.outbound, &creds, &remote.branch, theirs)?;
                    if theirs == ours || repo.graph_descendant_of(ours, theirs).map_err(&git)? {
                        push(ours)?;
                    } else if repo.graph_descendant_of(theirs, ours).map_err(&git)? {
                        move_master(repo, project, ours, theirs)?;
                    } else {
                        let their_commit = repo.find_commit(theirs).map_err(&git)?;
                        let their_tree = their_commit.tree().map_err(&git)?;
                        if their_tree.get_name(METADATA).is_some() {
                            return Err(has_history());
                        }
                        let merged = self.overlay(repo, project, &their_commit, &our_tree, ours)?;
                        push(merged)?;
                        move_master(repo, project, ours, merged)?;
                    }
                }
            }
            let plain = serde_json::to_vec(&creds).expect("credentials serialize");
            let sealed = self.secret_key()?.seal(&plain);
            secret::write_private(&self.project_path(project).join(UPSTREAM_FILE), &sealed)
                .map_err(|source| Error::Io { project: project.into(), source })?;
            *lock(&entry.upstream) = UpstreamSlot::Some(Arc::new(Upstream::new(creds.clone(), remote.branch)));
            Ok(())
        })
    }

    /// A merge commit of the upstream's unrelated content and the project: the project's files
    /// win where both have one.
    fn overlay(
        &self,
        repo: &Repository,
        project: &str,
        theirs: &git2::Commit<'_>,
        our_tree: &Tree<'_>,
        ours: Oid,
    ) -> Result<Oid> {
        let git = Self::git(project);
        let staged = Staged::over(repo).map_err(&git)?;
        let mut index = Index::new().map_err(&git)?;
        index.read_tree(&theirs.tree().map_err(&git)?).map_err(&git)?;
        let mut ours_index = Index::new().map_err(&git)?;
        ours_index.read_tree(our_tree).map_err(&git)?;
        for e in ours_index.iter() {
            index.add(&e).map_err(&git)?;
        }
        let tree = index.write_tree_to(staged.repo()).map_err(&git)?;
        let message = format!("Merged project {project} into the upstream's content");
        self.seal(repo, &staged, project, tree, &[theirs.id(), ours], &message)
    }

    /// The project's upstream credentials, if it has one.
    pub fn upstream(&self, project: &str) -> Result<Option<GitCredentials>> {
        let entry = self.entry(project, false)?;
        Ok(self.upstream_of(project, &entry)?.map(|u| u.creds.clone()))
    }

    /// Fetches the upstream now and takes over its head. Returns the new head if it changed
    /// (`None` also without an upstream).
    pub fn refresh(&self, project: &str) -> Result<Option<String>> {
        self.with_writer(project, |repo, entry| match self.upstream_of(project, entry)? {
            Some(up) => Ok(self.pull(repo, project, &up)?.map(|o| o.to_string())),
            None => Ok(None),
        })
    }

    /// Whether reads at the head are older than the freshness window: the caller should then
    /// [`ConfigRepo::refresh_if_stale`] in the background (reads themselves never wait for a
    /// remote).
    pub fn is_stale(&self, project: &str) -> bool {
        let Ok(entry) = self.entry(project, false) else { return false };
        matches!(self.upstream_of(project, &entry), Ok(Some(up)) if up.is_stale(self.freshness) && !up.refreshing.load(Ordering::Relaxed))
    }

    /// [`ConfigRepo::refresh`] if the project's upstream was last asked longer ago than the
    /// freshness window and no other refresh is running.
    pub fn refresh_if_stale(&self, project: &str) -> Result<Option<String>> {
        let entry = self.entry(project, false)?;
        let Some(up) = self.upstream_of(project, &entry)? else { return Ok(None) };
        if !up.is_stale(self.freshness) || up.refreshing.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let out = self.refresh_stale(project);
        up.refreshing.store(false, Ordering::Release);
        out
    }

    /// Fetches the upstream and takes over its head if what we have is older than the freshness
    /// window. Unlike [`ConfigRepo::refresh_if_stale`] it waits for a refresh already running
    /// (and then does not fetch again): for a read that must not answer before the upstream was
    /// asked. Returns the new head if this call moved it.
    pub fn refresh_stale(&self, project: &str) -> Result<Option<String>> {
        self.with_writer(project, |repo, entry| match self.upstream_of(project, entry)? {
            Some(up) if up.is_stale(self.freshness) => Ok(self.pull(repo, project, &up)?.map(|o| o.to_string())),
            _ => Ok(None),
        })
    }

    /// Applies `changes` (path → new content, `None` deletes; a path ending in `/` removes that
    /// directory) on top of `base` and commits. The commit is built in memory and reaches the
    /// repository only once it is sound and holds what was written (see [`staged`]): a failure
    /// leaves the repository as it was. Returns the parent's id unchanged when the tree did not
    /// change.
    fn commit(
        &self,
        repo: &Repository,
        project: &str,
        base: Option<(&git2::Commit<'_>, &Tree<'_>)>,
        changes: &[(String, Option<Vec<u8>>)],
        message: &str,
    ) -> Result<Oid> {
        let git = Self::git(project);
        let staged = Staged::over(repo).map_err(&git)?;
        let mut index = Index::new().map_err(&git)?;
        if let Some((_, tree)) = base {
            index.read_tree(tree).map_err(&git)?;
        }
        // What each written path must hold in the new tree (the last write of a path wins).
        let mut written: HashMap<&str, Oid> = HashMap::new();
        for (path, content) in changes {
            match content {
                Some(bytes) => {
                    let id = staged.repo().blob(bytes).map_err(&git)?;
                    index.add(&blob_entry(path, id, bytes.len())).map_err(&git)?;
                    written.insert(path, id);
                }
                None if path.ends_with('/') => {
                    let dir = path.trim_end_matches('/');
                    match index.remove_dir(Path::new(dir), 0) {
                        Err(e) if e.code() == git2::ErrorCode::NotFound => {}
                        other => other.map_err(&git)?,
                    }
                    written.retain(|p, _| !p.starts_with(path.as_str()));
                }
                None => {
                    index.remove_path(Path::new(path)).map_err(&git)?;
                    written.remove(path.as_str());
                }
            }
        }
        let tree_id = index.write_tree_to(staged.repo()).map_err(&git)?;
        if let Some((p, _)) = base
            && p.tree_id() == tree_id
        {
            return Ok(p.id());
        }
        let tree = staged.repo().find_tree(tree_id).map_err(&git)?;
        for (path, id) in &written {
            if !tree.get_path(Path::new(path)).is_ok_and(|e| e.id() == *id) {
                return Err(Error::Git {
                    project: project.into(),
                    source: git2::Error::from_str(&format!(
                        "the commit was not written: git could not store {:?}",
                        uri::shorten(path)
                    )),
                });
            }
        }
        let parents: Vec<Oid> = base.map(|(c, _)| c.id()).into_iter().collect();
        self.seal(repo, &staged, project, tree_id, &parents, message)
    }

    /// Commits the staged `tree` on `parents` and copies the new objects into `repo`. No ref
    /// moves here: the caller moves the branch once the commit is accepted.
    fn seal(
        &self,
        repo: &Repository,
        staged: &Staged,
        project: &str,
        tree: Oid,
        parents: &[Oid],
        message: &str,
    ) -> Result<Oid> {
        let git = Self::git(project);
        let mem = staged.repo();
        let tree = mem.find_tree(tree).map_err(&git)?;
        let parents =
            parents.iter().map(|p| mem.find_commit(*p)).collect::<std::result::Result<Vec<_>, _>>().map_err(&git)?;
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let sig = self.signature(project)?;
        let id = mem.commit(None, &sig, &sig, message, &tree, &parents).map_err(&git)?;
        staged.publish(repo, id).map_err(&git)?;
        Ok(id)
    }
}

/// Moves `master` from `old` to `new`, failing if someone else moved it meanwhile (compare and
/// swap: lock file + rename, so a crash leaves either the old or the new head).
fn move_master(repo: &Repository, project: &str, old: Oid, new: Oid) -> Result<()> {
    if old == new {
        return Ok(());
    }
    repo.reference_matching(BRANCH_REF, new, true, old, "keptn").map(drop).map_err(ConfigRepo::git(project))
}

fn blob_entry(path: &str, id: Oid, len: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: u32::from(FileMode::Blob),
        uid: 0,
        gid: 0,
        file_size: len as u32,
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// The head commit and its tree.
fn head<'r>(repo: &'r Repository, project: &str) -> Result<(git2::Commit<'r>, Tree<'r>)> {
    let git = ConfigRepo::git(project);
    let commit = repo.find_reference(BRANCH_REF).and_then(|r| r.peel_to_commit()).map_err(&git)?;
    let tree = commit.tree().map_err(&git)?;
    Ok((commit, tree))
}

/// The commit to read at (head when `at` is `None`) and its tree.
fn resolve<'r>(repo: &'r Repository, project: &str, at: Option<&str>) -> Result<(Oid, Tree<'r>)> {
    let Some(rev) = at else {
        let (c, t) = head(repo, project)?;
        return Ok((c.id(), t));
    };
    let not_found = || Error::RevisionNotFound { project: project.into(), revision: rev.into() };
    // Only commit ids: no revision expressions (`HEAD~1`, `master@{…}`) from request input.
    if rev.len() < 4 || rev.len() > 40 || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let commit = repo.find_commit_by_prefix(rev).map_err(|_| not_found())?;
    let tree = commit.tree().map_err(ConfigRepo::git(project))?;
    Ok((commit.id(), tree))
}

/// Checks that the stage / service of `scope` exists in `tree`.
fn check_scope(tree: &Tree<'_>, project: &str, scope: Scope<'_>) -> Result<()> {
    let has = |p: String| tree.get_path(Path::new(&p)).is_ok();
    match scope {
        Scope::Project => Ok(()),
        Scope::Stage(s) | Scope::Service(s, _) if !has(format!("{STAGES_DIR}/{s}/{METADATA}")) => {
            Err(Error::StageNotFound { project: project.into(), stage: s.into() })
        }
        Scope::Service(s, svc) if !has(format!("{STAGES_DIR}/{s}/{svc}/{METADATA}")) => {
            Err(Error::ServiceNotFound { project: project.into(), stage: s.into(), service: svc.into() })
        }
        _ => Ok(()),
    }
}

/// Repository path of `uri` in `scope`, after validation.
fn resource_path(scope: Scope<'_>, uri: &str) -> Result<String> {
    let clean = validate_uri(uri)?;
    if scope == Scope::Project && clean.split('/').next() == Some(STAGES_DIR) {
        return Err(Error::InvalidUri {
            uri: uri.into(),
            reason: "\".keptn-stages\" holds the stages; write stage and service resources through their stage or service",
        });
    }
    Ok(format!("{}{clean}", scope.prefix()))
}

/// The changes that write `resources` at `scope`: each file, and for a helm chart archive its
/// unpacked files beside it (keptn unpacks `helm/carts.tgz` into `helm/carts/…`; the old unpacked
/// chart goes, so files removed from the chart disappear). Every path is validated first.
fn resource_changes(scope: Scope<'_>, resources: &[(&str, &[u8])]) -> Result<Vec<(String, Option<Vec<u8>>)>> {
    let managed = |uri: &str| Error::InvalidUri {
        uri: uri.into(),
        reason: "metadata.yaml marks the project, stage or service and is managed by keptn; it can't be written through the resource API",
    };
    let mut changes = Vec::with_capacity(resources.len());
    for (uri, content) in resources {
        let path = resource_path(scope, uri)?;
        if is_marker(scope, uri) {
            return Err(managed(uri));
        }
        changes.push((path, Some(content.to_vec())));
        let clean = validate_uri(uri)?;
        if helm::is_helm_archive(clean) {
            let files = helm::unpack(clean, content)
                .map_err(|reason| Error::InvalidHelmChart { uri: clean.to_string(), reason })?;
            let dir = clean.strip_suffix(".tgz").unwrap_or(clean);
            changes.push((format!("{}{dir}/", scope.prefix()), None));
            for (path, bytes) in files {
                if is_marker(scope, &path) {
                    return Err(managed(&path));
                }
                changes.push((resource_path(scope, &path)?, Some(bytes)));
            }
        }
    }
    Ok(changes)
}

/// Whether `uri` at `scope` is a `metadata.yaml` that marks the project, a stage or a service
/// (at the stage level, `<dir>/metadata.yaml` would make `<dir>` a service).
fn is_marker(scope: Scope<'_>, uri: &str) -> bool {
    let uri = uri.trim_start_matches('/');
    match scope {
        Scope::Project | Scope::Service(..) => uri == METADATA,
        Scope::Stage(_) => {
            uri == METADATA || uri.split_once('/').is_some_and(|(dir, rest)| !dir.is_empty() && rest == METADATA)
        }
    }
}

/// The change that creates a stage: its `metadata.yaml`.
fn stage_marker(project: &str, stage: &str) -> (String, Option<Vec<u8>>) {
    let metadata = format!("projectName: {project}\nstageName: {stage}\ncreationTimestamp: {}\n", timestamp());
    (format!("{STAGES_DIR}/{stage}/{METADATA}"), Some(metadata.into_bytes()))
}

/// Removes lock files a crashed process may have left (`refs/**.lock`, `HEAD.lock`,
/// `packed-refs.lock`, `config.lock`).
fn remove_stale_locks(repo: &Path) -> std::io::Result<()> {
    for f in ["HEAD.lock", "packed-refs.lock", "config.lock", "index.lock"] {
        let p = repo.join(f);
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    fn walk(dir: &Path) -> std::io::Result<()> {
        if !dir.is_dir() {
            return Ok(());
        }
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p)?;
            } else if p.extension().is_some_and(|x| x == "lock") {
                std::fs::remove_file(&p)?;
            }
        }
        Ok(())
    }
    walk(&repo.join("refs"))
}

/// keptn's metadata timestamp (Go's `time.Now().UTC().String()`).
fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.f +0000 UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
        out.sort();
        out
    }

    /// Past validation (which refuses such names), a commit git can't store fails without a trace:
    /// libgit2 would write a tree with a 65,536-byte name truncated, i.e. corrupt.
    #[test]
    fn a_commit_git_cannot_store_leaves_the_repository_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let r = ConfigRepo::open(dir.path()).unwrap();
        r.create_project("p").unwrap();
        r.create_stage("p", "dev").unwrap();
        let before = files(&dir.path().join("p"));
        let long = format!("{STAGES_DIR}/dev/{}", "a".repeat(65_536));
        let e = r
            .change("p", |repo, parent, tree| {
                self::ConfigRepo::commit(
                    &r,
                    repo,
                    "p",
                    Some((parent, tree)),
                    &[(long.clone(), Some(b"x".to_vec()))],
                    "m",
                )
            })
            .unwrap_err();
        assert!(e.to_string().contains("not written"), "{e}");
        assert_eq!(files(&dir.path().join("p")), before, "not one file changed");
        r.write("p", Scope::Stage("dev"), &[("next.yaml", b"y")], "m").unwrap();
        assert_eq!(r.read("p", Scope::Stage("dev"), "next.yaml", None).unwrap().0, b"y");
        let fsck = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dir.path().join("p"))
            .args(["fsck", "--strict", "--unreachable", "--no-progress"])
            .output()
            .unwrap();
        assert!(fsck.status.success() && fsck.stdout.is_empty(), "{}", String::from_utf8_lossy(&fsck.stdout));
    }
}

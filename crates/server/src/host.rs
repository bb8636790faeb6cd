//! What the server asks of its process at start: private files and enough file descriptors.

use anyhow::Context as _;
use std::path::Path;

/// Files and directories the server, SQLite and libgit2 create are for its user alone (umask
/// 077: the database, git objects, keys). Process-wide, set once at start.
pub fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates the data dir 0700, and makes an existing one 0700 (older versions created it 0755).
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make data dir {} private (mode 0700)", dir.display()))?;
    }
    Ok(())
}

/// Raises the open-files soft limit to the hard limit (often 1024 soft of 524288 hard): every
/// connection, database connection and repository file needs a descriptor. Returns the limit.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                } else {
                    tracing::warn!(soft = lim.rlim_cur, hard = lim.rlim_max, "cannot raise the open-files limit");
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        Some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

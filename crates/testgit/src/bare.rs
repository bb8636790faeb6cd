//! Looking into and committing straight to a bare repository, as another client's push would.

use std::path::Path;

const MASTER: &str = "refs/heads/master";

/// The commit `master` points at, if any.
pub fn head(repo: &Path) -> Option<String> {
    let r = git2::Repository::open_bare(repo).unwrap();
    r.refname_to_id(MASTER).ok().map(|o| o.to_string())
}

/// The content of `path` at `master`, if it exists.
pub fn file(repo: &Path, path: &str) -> Option<String> {
    let r = git2::Repository::open_bare(repo).unwrap();
    let tree = r.find_reference(MASTER).ok()?.peel_to_tree().unwrap();
    let e = tree.get_path(Path::new(path)).ok()?;
    Some(String::from_utf8(r.find_blob(e.id()).unwrap().content().to_vec()).unwrap())
}

/// Commits `path` = `content` on top of `master` and returns the new head; retries when the
/// branch moved or is locked meanwhile, as a git server does for a concurrent push.
pub fn commit_file(repo: &Path, path: &str, content: &str) -> String {
    loop {
        match try_commit(repo, path, content) {
            Ok(id) => return id,
            Err(e) if matches!(e.code(), git2::ErrorCode::Modified | git2::ErrorCode::Locked) => continue,
            Err(e) => panic!("commit to {}: {e}", repo.display()),
        }
    }
}

fn try_commit(repo: &Path, path: &str, content: &str) -> Result<String, git2::Error> {
    let r = git2::Repository::open_bare(repo)?;
    let parent = r.find_reference(MASTER)?.peel_to_commit()?;
    let mut index = git2::Index::new()?;
    index.read_tree(&parent.tree()?)?;
    let mut entry = index.iter().next().expect("the branch holds at least one file");
    entry.id = r.blob(content.as_bytes())?;
    entry.path = path.as_bytes().to_vec();
    entry.file_size = content.len() as u32;
    index.add(&entry)?;
    let tree = r.find_tree(index.write_tree_to(&r)?)?;
    let sig = git2::Signature::now("someone", "someone@example.com")?;
    let id = r.commit(None, &sig, &sig, "direct upstream change", &tree, &[&parent])?;
    r.reference_matching(MASTER, id, true, parent.id(), "test")?;
    Ok(id.to_string())
}

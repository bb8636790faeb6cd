//! Commits are built in memory and reach the repository only once they are known to be sound, so
//! a commit that fails at any step leaves the repository exactly as it was: no corrupt object
//! (libgit2 writes a broken tree for a name it can't store) and no stray ones.

use git2::{FileMode, ObjectType, Odb, Oid, Repository};
use std::collections::HashSet;

/// A repository whose writes go to memory and whose reads see memory, then the real repository.
pub(crate) struct Staged {
    repo: Repository,
}

impl Staged {
    /// Stages on top of `disk`'s objects (which it only reads).
    pub fn over(disk: &Repository) -> Result<Staged, git2::Error> {
        let odb = Odb::new()?;
        // Alternates are never written to: every write lands in the mempack.
        odb.add_new_mempack_backend(1000)?;
        let objects = disk.path().join("objects");
        let objects = objects.to_str().ok_or_else(|| git2::Error::from_str("repository path is not UTF-8"))?;
        odb.add_disk_alternate(objects)?;
        Ok(Staged { repo: Repository::from_odb(odb)? })
    }

    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Checks the objects of `commit` that `disk` lacks (every new tree parses, its entries have
    /// sound names and point at objects that exist with the kind their mode says) and copies them
    /// to `disk`, each object after those it refers to, the commit last. The commit stays
    /// unreferenced: the caller moves the branch.
    pub fn publish(&self, disk: &Repository, commit: Oid) -> Result<(), git2::Error> {
        let (mem, out) = (self.repo.odb()?, disk.odb()?);
        let root = self.repo.find_commit(commit)?.tree_id();
        let (mut blobs, mut trees, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
        // Depth first; a tree is listed once all trees below it are.
        let mut todo = vec![(root, false)];
        while let Some((id, expanded)) = todo.pop() {
            if expanded {
                trees.push(id);
                continue;
            }
            if out.exists(id) || !seen.insert(id) {
                continue;
            }
            todo.push((id, true));
            let tree = self.repo.find_tree(id)?;
            for e in tree.iter() {
                let name = e.name_bytes();
                if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                    return Err(corrupt(id, "an unusable entry name"));
                }
                let want = match e.filemode() {
                    m if m == i32::from(FileMode::Tree) => ObjectType::Tree,
                    m if m == i32::from(FileMode::Commit) => continue, // a submodule: not our object
                    _ => ObjectType::Blob,
                };
                let (_, kind) = mem.read_header(e.id()).map_err(|_| corrupt(id, "an entry without its object"))?;
                if kind != want {
                    return Err(corrupt(id, "an entry whose object has another type"));
                }
                match kind {
                    ObjectType::Tree => todo.push((e.id(), false)),
                    _ if !out.exists(e.id()) && seen.insert(e.id()) => blobs.push(e.id()),
                    _ => {}
                }
            }
        }
        for id in blobs.into_iter().chain(trees).chain([commit]) {
            let o = mem.read(id)?;
            out.write(o.kind(), o.data())?;
        }
        Ok(())
    }
}

fn corrupt(tree: Oid, what: &str) -> git2::Error {
    git2::Error::from_str(&format!("the commit was not written: its tree {tree} has {what}"))
}

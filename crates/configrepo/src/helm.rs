//! Helm chart archives written as resources are also stored unpacked beside the archive, as keptn's
//! resource-service does, so that services can read single chart files straight from the repository.
//! Archives come from API clients, so unpacking is defensive: nothing may land outside the
//! destination directory and a small archive must not expand into unbounded memory.

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::uri::{path_problem, shorten};
use flate2::read::MultiGzDecoder;
use tar::{Archive, EntryType};

/// At most this many tar entries (files, directories, links, ...) are read from one archive.
const MAX_ENTRIES: usize = 10_000;
/// At most this many bytes of file contents are unpacked from one archive (zip bomb guard).
const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;
/// Tar metadata (headers, long-name and pax records, padding) allowed per entry on top of the
/// file contents; bounds the data that skipped entries can make us decompress and throw away.
const METADATA_BYTES_PER_ENTRY: u64 = 4 * 1024;
/// What to do about an archive that isn't a sound chart package.
const REPACK: &str = "re-create it with `helm package <chart-dir>` and upload the resulting .tgz";

/// Whether writing `uri` (a clean relative resource path like "helm/carts.tgz") also unpacks it:
/// the last component ends in ".tgz" and some directory component is exactly "helm".
pub fn is_helm_archive(uri: &str) -> bool {
    let mut components = uri.split('/').rev();
    let name = components.next().unwrap_or_default();
    name.len() > ".tgz".len() && name.ends_with(".tgz") && components.any(|c| c == "helm")
}

/// Unpacks a gzip-compressed tar chart archive stored at `uri` into files beside it: returns
/// (path relative to the same root as `uri`, content) for every regular file. The destination
/// directory is `<dir of uri>/<archive file stem>/`; archive entries whose first component equals the
/// stem have it stripped (carts/Chart.yaml → helm/carts/Chart.yaml), other entries keep their full path
/// under the destination. Directories, symlinks, hard links and device entries are skipped.
/// Rejects, with an Err saying what is wrong and what to do: not gzip / not a tar, entry paths that
/// are absolute or contain `..` (path traversal), more than 10_000 entries, or more than 64 MiB
/// unpacked in total (zip bomb guard). Also rejected, because git couldn't store them: non-UTF-8
/// entry paths, those `uri::path_problem` refuses (as for resource URIs: over-long names, `.git`
/// in its disguises, control characters), and a file that is also another file's directory.
///
/// Files are returned sorted by path; when the archive holds a path twice, the later entry wins,
/// as with `tar -x`.
pub fn unpack(uri: &str, archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    unpack_limited(uri, archive, Limits { entries: MAX_ENTRIES, bytes: MAX_UNPACKED_BYTES })
}

#[derive(Clone, Copy)]
struct Limits {
    entries: usize,
    bytes: u64,
}

/// Why unpacking stopped: a malformed stream (reported with the decoder's error), a rule the
/// archive breaks (reason reported as is), or the size limit.
enum Failure {
    Io(io::Error),
    Rejected(String),
    TooLarge,
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn unpack_limited(uri: &str, archive: &[u8], limits: Limits) -> Result<Vec<(String, Vec<u8>)>, String> {
    let (dest, stem) = destination(uri)?;
    // Checked up front because a gzip decoder's "invalid header" doesn't tell a user much.
    if !archive.starts_with(&[0x1f, 0x8b]) {
        return Err(format!("helm chart archive {uri:?} is not gzip-compressed (.tgz); {REPACK}"));
    }
    let stream_limit = limits.bytes + (limits.entries as u64 + 1) * METADATA_BYTES_PER_ENTRY;
    let mut stream = LimitedReader { inner: MultiGzDecoder::new(archive), remaining: stream_limit, exceeded: false };
    let result = read_files(&mut stream, &dest, stem, limits).and_then(|files| {
        // Reading to the end verifies the gzip checksum, which the tar reader stops short of.
        io::copy(&mut stream, &mut io::sink())?;
        Ok(files)
    });
    let too_large = format!(
        "helm chart archive {uri:?} unpacks to more than {} MiB; remove unneeded files from the chart \
         (e.g. with .helmignore) and package it again",
        limits.bytes / (1024 * 1024)
    );
    match result {
        Ok(files) => Ok(files.into_iter().collect()),
        Err(Failure::TooLarge) => Err(too_large),
        Err(Failure::Io(_)) if stream.exceeded => Err(too_large),
        Err(Failure::Io(e)) => {
            Err(format!("helm chart archive {uri:?} is not a valid gzip-compressed tar archive ({e}); {REPACK}"))
        }
        Err(Failure::Rejected(reason)) => Err(format!("helm chart archive {uri:?} {reason}")),
    }
}

/// Returns the destination directory (without trailing '/') and the archive's file stem.
fn destination(uri: &str) -> Result<(String, &str), String> {
    let (dir, name) = uri.rsplit_once('/').unwrap_or(("", uri));
    match name.strip_suffix(".tgz") {
        Some(stem) if !stem.is_empty() => {
            Ok((if dir.is_empty() { stem.to_string() } else { format!("{dir}/{stem}") }, stem))
        }
        _ => Err(format!(
            "{uri:?} can't be unpacked as a helm chart: the archive's file name must end in \".tgz\", \
             e.g. \"helm/carts.tgz\""
        )),
    }
}

/// Reads every entry and collects the regular files by destination path.
fn read_files<R: Read>(
    stream: &mut R,
    dest: &str,
    stem: &str,
    limits: Limits,
) -> Result<BTreeMap<String, Vec<u8>>, Failure> {
    let mut archive = Archive::new(stream);
    let mut files = BTreeMap::new();
    let mut remaining = limits.bytes;
    for (index, entry) in archive.entries()?.enumerate() {
        let mut entry = entry?;
        if index >= limits.entries {
            return Err(Failure::Rejected(format!(
                "has more than {} entries; remove unneeded files from the chart (e.g. with .helmignore) \
                 and package it again",
                limits.entries
            )));
        }
        let path = entry_path(&entry.path_bytes(), dest)?;
        if !matches!(entry.header().entry_type(), EntryType::Regular | EntryType::Continuous) {
            continue;
        }
        if path.is_empty() {
            return Err(Failure::Rejected(format!("contains a file without a name; {REPACK}")));
        }
        if entry.size() > remaining {
            return Err(Failure::TooLarge);
        }
        // The entry reader stops at the size checked above.
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut content)?;
        remaining -= content.len() as u64;
        let relative = match path.split_once('/') {
            Some((first, rest)) if first == stem => rest,
            _ => path.as_str(),
        };
        let full = format!("{dest}/{relative}");
        if let Some(why) = path_problem(&full) {
            return Err(reject_entry(&full, &format!("can't be stored in git: it {why}")));
        }
        files.insert(full, content);
    }
    // A file and a directory of the same name can't both be stored in git.
    for path in files.keys() {
        let parent = path.match_indices('/').map(|(i, _)| &path[..i]).find(|p| files.contains_key(*p));
        if let Some(parent) = parent {
            return Err(Failure::Rejected(format!(
                "contains both the file {parent:?} and the file {path:?} below it; rename one of them \
                 and package the chart again"
            )));
        }
    }
    Ok(files)
}

/// Checks an entry's path and returns it normalized ('/'-separated, without `.` or empty components;
/// `./`, the root directory entry of `tar -C dir .`, becomes "").
/// Every entry is checked, even skipped ones, since a traversal attempt anywhere marks the archive as
/// hostile. Beyond traversal, names git can't store (or that `validate_uri` forbids for the same reason)
/// are refused here rather than failing later in the commit.
fn entry_path(raw: &[u8], dest: &str) -> Result<String, Failure> {
    let lossy = String::from_utf8_lossy(raw);
    let Ok(path) = std::str::from_utf8(raw) else {
        return Err(reject_entry(&lossy, "is not valid UTF-8"));
    };
    if path.starts_with('/') {
        return Err(reject_entry(path, &format!("has an absolute path and would be unpacked outside {dest}/")));
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if components.contains(&"..") {
        return Err(reject_entry(path, &format!("contains \"..\" and would be unpacked outside {dest}/")));
    }
    let normalized = components.join("/");
    match path_problem(&normalized) {
        Some(why) if !normalized.is_empty() => Err(reject_entry(path, &format!("can't be stored in git: it {why}"))),
        _ => Ok(normalized),
    }
}

fn reject_entry(path: &str, why: &str) -> Failure {
    Failure::Rejected(format!(
        "contains the entry {:?}, which {why}; remove or rename it in the chart and {REPACK}",
        shorten(path)
    ))
}

/// Fails reads once more than `remaining` bytes were produced, remembering that it did so that the
/// caller can report the size limit rather than whatever error the tar reader makes of it.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte beyond the limit so that reaching exactly the limit isn't an error.
        let max = buf.len().min(usize::try_from(self.remaining.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n as u64 > self.remaining {
            self.exceeded = true;
            return Err(io::Error::other("archive exceeds the size limit"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use tar::{Builder, Header};

    fn header(path: &str, kind: EntryType, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_cksum();
        h
    }

    /// Builds a .tgz from (path, content) pairs; paths ending in '/' become directory entries.
    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        for (path, content) in entries {
            let kind = if path.ends_with('/') { EntryType::Directory } else { EntryType::Regular };
            builder.append(&header(path, kind, content.len() as u64), *content).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        io::Write::write_all(&mut encoder, data).unwrap();
        encoder.finish().unwrap()
    }

    /// A chart laid out as `helm package` does it: everything below one top-level directory.
    fn carts_chart() -> Vec<u8> {
        tgz(&[
            ("carts/", b""),
            ("carts/Chart.yaml", b"apiVersion: v2\nname: carts\n"),
            ("carts/values.yaml", b"replicas: 1\n"),
            ("carts/templates/", b""),
            ("carts/templates/deployment.yaml", b"kind: Deployment\n"),
        ])
    }

    fn paths(files: &[(String, Vec<u8>)]) -> Vec<&str> {
        files.iter().map(|(p, _)| p.as_str()).collect()
    }

    #[test]
    fn recognizes_helm_archives() {
        assert!(is_helm_archive("helm/carts.tgz"));
        assert!(is_helm_archive("charts/helm/x.tgz"));
        assert!(is_helm_archive("helm/sub/x.tgz"));
        for uri in ["carts.tgz", "helm/carts.tar", "helmfile/x.tgz", "helm.tgz", "helm/.tgz", "x/helm.tgz", ""] {
            assert!(!is_helm_archive(uri), "{uri}");
        }
    }

    #[test]
    fn unpacks_chart_into_directory_named_after_archive() {
        let files = unpack("helm/carts.tgz", &carts_chart()).unwrap();
        assert_eq!(
            paths(&files),
            ["helm/carts/Chart.yaml", "helm/carts/templates/deployment.yaml", "helm/carts/values.yaml"]
        );
        assert_eq!(files[0].1, b"apiVersion: v2\nname: carts\n");
        assert_eq!(files[1].1, b"kind: Deployment\n");
        assert_eq!(files[2].1, b"replicas: 1\n");
        // Same layout at any depth, and without a directory at all.
        let nested = unpack("charts/helm/carts.tgz", &carts_chart()).unwrap();
        assert_eq!(nested[0].0, "charts/helm/carts/Chart.yaml");
        assert_eq!(unpack("carts.tgz", &carts_chart()).unwrap()[0].0, "carts/Chart.yaml");
    }

    #[test]
    fn keeps_full_path_when_top_dir_differs_from_stem() {
        let archive = tgz(&[("./", b""), ("./Chart.yaml", b"name: x\n"), ("./templates/svc.yaml", b"kind: Service\n")]);
        let files = unpack("helm/carts.tgz", &archive).unwrap();
        assert_eq!(paths(&files), ["helm/carts/Chart.yaml", "helm/carts/templates/svc.yaml"]);
        let other_top = unpack("helm/orders.tgz", &carts_chart()).unwrap();
        assert_eq!(other_top[0].0, "helm/orders/carts/Chart.yaml");
    }

    #[test]
    fn skips_links_and_later_duplicates_win() {
        let mut builder = Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        for kind in [EntryType::Symlink, EntryType::Link] {
            let mut h = header("carts/link", kind, 0);
            h.set_link_name("../../etc/passwd").unwrap();
            h.set_cksum();
            builder.append(&h, io::empty()).unwrap();
        }
        builder.append(&header("carts/a", EntryType::Regular, 3), &b"old"[..]).unwrap();
        builder.append(&header("carts/a", EntryType::Regular, 3), &b"new"[..]).unwrap();
        let archive = builder.into_inner().unwrap().finish().unwrap();
        assert_eq!(unpack("helm/carts.tgz", &archive).unwrap(), [("helm/carts/a".to_string(), b"new".to_vec())]);
    }

    /// Writes a regular-file entry whose name bypasses tar::Builder's path checks.
    fn raw_entry_tgz(name: &[u8]) -> Vec<u8> {
        let mut h = header("placeholder", EntryType::Regular, 4);
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name);
        h.set_cksum();
        let mut builder = Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        builder.append(&h, &b"evil"[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn rejects_path_traversal() {
        for name in [&b"../evil"[..], b"carts/../../evil", b"/etc/passwd", b"carts/.git/config"] {
            let err = unpack("helm/carts.tgz", &raw_entry_tgz(name)).unwrap_err();
            assert!(err.contains("helm/carts.tgz") && err.contains("helm package"), "{err}");
        }
        let err = unpack("helm/carts.tgz", &raw_entry_tgz(b"../evil")).unwrap_err();
        assert!(err.contains("\"../evil\"") && err.contains("outside helm/carts/"), "{err}");
    }

    #[test]
    fn rejects_garbage() {
        let err = unpack("helm/carts.tgz", b"definitely not a chart").unwrap_err();
        assert!(err.contains("not gzip-compressed") && err.contains("helm package"), "{err}");
        let err = unpack("helm/carts.tgz", &gzip(&[b'x'; 2048])).unwrap_err();
        assert!(err.contains("not a valid gzip-compressed tar archive"), "{err}");
        let mut truncated = carts_chart();
        truncated.truncate(truncated.len() / 2);
        let err = unpack("helm/carts.tgz", &truncated).unwrap_err();
        assert!(err.contains("not a valid gzip-compressed tar archive"), "{err}");
        let err = unpack("helm/carts", &carts_chart()).unwrap_err();
        assert!(err.contains("must end in \".tgz\""), "{err}");
    }

    #[test]
    fn rejects_too_many_entries() {
        let limits = Limits { entries: 3, bytes: MAX_UNPACKED_BYTES };
        let archive = tgz(&[("a", b""), ("b", b""), ("c", b"")]);
        assert_eq!(unpack_limited("helm/x.tgz", &archive, limits).unwrap().len(), 3);
        let archive = tgz(&[("a/", b""), ("a/b", b""), ("a/c", b""), ("a/d", b"")]);
        let err = unpack_limited("helm/x.tgz", &archive, limits).unwrap_err();
        assert!(err.contains("more than 3 entries"), "{err}");
    }

    #[test]
    fn rejects_archives_unpacking_beyond_the_size_limit() {
        let limits = Limits { entries: MAX_ENTRIES, bytes: 2 * 1024 * 1024 };
        let mib = vec![0u8; 1024 * 1024];
        let exact = tgz(&[("a", &mib), ("b", &mib)]);
        assert_eq!(unpack_limited("helm/x.tgz", &exact, limits).unwrap().len(), 2);
        let over = tgz(&[("a", &mib), ("b", &mib), ("c", b"!")]);
        let err = unpack_limited("helm/x.tgz", &over, limits).unwrap_err();
        assert!(err.contains("more than 2 MiB"), "{err}");
        // Data hidden in skipped entries is bounded too.
        let mut builder = Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        let big = vec![0u8; 3 * 1024 * 1024];
        builder.append(&header("dir/", EntryType::Directory, big.len() as u64), &big[..]).unwrap();
        let hidden = builder.into_inner().unwrap().finish().unwrap();
        let err = unpack_limited("helm/x.tgz", &hidden, Limits { entries: 10, bytes: 2 * 1024 * 1024 }).unwrap_err();
        assert!(err.contains("more than 2 MiB"), "{err}");
    }

    #[test]
    fn rejects_size_claimed_in_header_before_reading() {
        // Only a header claiming 64 MiB + 1 and a few bytes: rejected without decompressing anything.
        let h = header("carts/huge", EntryType::Regular, MAX_UNPACKED_BYTES + 1);
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&[0; 512]);
        let err = unpack("helm/carts.tgz", &gzip(&tar)).unwrap_err();
        assert!(err.contains("more than 64 MiB"), "{err}");
    }

    #[test]
    fn rejects_file_shadowing_directory() {
        let archive = tgz(&[("carts/a", b"1"), ("carts/a/b", b"2")]);
        let err = unpack("helm/carts.tgz", &archive).unwrap_err();
        assert!(err.contains("\"helm/carts/a\"") && err.contains("\"helm/carts/a/b\""), "{err}");
    }
}

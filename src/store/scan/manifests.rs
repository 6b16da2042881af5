//! Reads and parses every manifest blob that a revision, tag or index names (transitively through
//! index children), in parallel, with the registry's size limit as a cap.

use super::fsio;
use crate::model::digest::{Digest, DigestSet};
use crate::model::inventory::Inventory;
use crate::model::layout;
use crate::model::manifest::{self, GcFailure, Invalid};
use crate::progress::Bar;

/// A manifest blob as read: parsed (or rejected as the registry rejects it), or not readable at
/// all — an I/O error, which says nothing about the manifest.
pub(crate) enum Read {
    Parsed(manifest::Parsed),
    Unreadable(String),
}

/// A manifest whose blob does not exist.
pub(crate) fn no_blob() -> Read {
    Read::Parsed(Err(Invalid {
        reason: "no blob".into(),
        gc: GcFailure::Abort,
    }))
}

/// `blobs` is the open `blobs/` folder, or why it could not be opened.
fn read_one(inv: &Inventory, blobs: &std::io::Result<fsio::DirFd>, d: &Digest) -> Read {
    let Some(blob) = inv.blob(d) else {
        return no_blob();
    };
    if let Some(r) = too_large(inv, d) {
        return r;
    }
    // Relative to the open blobs/ folder, one read of the size the scan saw.
    let rel = layout::blob_data(d);
    let read = match blobs {
        Ok(dir) => dir.read_file_at(
            rel.trim_start_matches("blobs/").as_bytes(),
            blob.size as usize,
            manifest::MAX_MANIFEST_SIZE,
        ),
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    };
    match read {
        Ok(buf) => Read::Parsed(manifest::parse(&buf)),
        Err(e) => Read::Unreadable(e.to_string()),
    }
}

/// The digests a link names when a symbolic link under some `revisions/` leads to it (the
/// registry's revision walk reads it through the symbolic link).
fn through_symlinks(inv: &Inventory) -> Vec<Digest> {
    use crate::model::inventory::SymlinkTarget;
    inv.symlinks
        .iter()
        .filter(|s| s.path.contains("/_manifests/revisions/"))
        .filter_map(|s| match &s.target {
            SymlinkTarget::Inside { path, .. } => inv
                .link_at(path)
                .or_else(|| inv.link_at(&format!("{path}/link")))
                .and_then(|st| st.digest().cloned()),
            _ => None,
        })
        .collect()
}

/// `bar` counts each manifest as it is read: on a cold cache this phase waits on the device as
/// long as the walk did, and a bar that stands still then looks hung.
pub(crate) fn read_all(inv: &mut Inventory, opts: &super::ScanOptions, bar: &dyn Bar) {
    let blobs = fsio::DirFd::open(&inv.v2.join("blobs"));
    read_all_with(inv, &|| opts.cancelled(), &|inv, chunk| {
        super::workers::map(chunk, |d| {
            let read = read_one(inv, &blobs, d);
            bar.inc(1);
            (d.clone(), read)
        })
    });
}

/// A manifest blob that exists but is larger than the registry accepts, or `None` to read it.
pub(crate) fn too_large(inv: &Inventory, d: &Digest) -> Option<Read> {
    let blob = inv.blob(d)?;
    (blob.size > manifest::MAX_MANIFEST_SIZE).then(|| {
        Read::Parsed(Err(Invalid {
            reason: format!(
                "{} bytes, larger than the registry's 4 MiB manifest limit",
                blob.size
            ),
            gc: GcFailure::Abort,
        }))
    })
}

/// Reads one batch of manifest blobs.
pub(crate) type Batch<'a> = dyn Fn(&Inventory, &[Digest]) -> Vec<(Digest, Read)> + Sync + 'a;

/// The manifests every revision, tag and index names, transitively, read in batches by `batch`
/// (the storage's own way: parallel file reads, or many GETs in flight).
pub(crate) fn read_all_with(inv: &mut Inventory, cancelled: &dyn Fn() -> bool, batch: &Batch) {
    let mut wanted: DigestSet = DigestSet::default();
    for r in &inv.repos {
        for l in &r.revisions {
            wanted.insert(l.path_digest.clone());
            if let Some(d) = l.target() {
                wanted.insert(d.clone());
            }
        }
        // The registry's revision walk reads these too.
        for o in &r.odd_revision_links {
            if let Some(d) = o.state.digest() {
                wanted.insert(d.clone());
            }
        }
        for t in &r.tags {
            if let Some(d) = t.current.digest() {
                wanted.insert(d.clone());
            }
            for l in &t.index {
                wanted.insert(l.path_digest.clone());
            }
        }
    }
    wanted.extend(through_symlinks(inv));
    let mut frontier: Vec<Digest> = wanted
        .into_iter()
        .filter(|d| inv.blob(d).is_some())
        .collect();
    let mut unreadable = Vec::new();
    while !frontier.is_empty() && !cancelled() {
        // In the order of the blobs' inodes on a filesystem (`io::by_inode`); every digest here
        // has a blob.
        frontier.sort_by_cached_key(|d| inv.blob(d).map_or(0, |b| b.inode));
        let mut next = Vec::new();
        let mut round = Vec::with_capacity(frontier.len());
        // In chunks, so that parsed manifests wait in small batches, not all at once.
        for chunk in frontier.chunks(4096) {
            if cancelled() {
                return;
            }
            let parsed: Vec<(Digest, Read)> = batch(inv, chunk);
            for (d, p) in parsed {
                let p = match p {
                    Read::Parsed(p) => p,
                    Read::Unreadable(e) => {
                        unreadable.push((d, e));
                        continue;
                    }
                };
                if let Ok(m) = &p {
                    for c in m.children() {
                        if inv.blob(&c.digest).is_some() {
                            next.push(c.digest.clone());
                        }
                    }
                }
                round.push((d, p));
            }
        }
        inv.manifests.extend(round);
        next.sort();
        next.dedup();
        next.retain(|d| !inv.manifests.contains(d));
        frontier = next;
    }
    unreadable.sort();
    unreadable.dedup();
    inv.unreadable_manifests = unreadable;
}

#[cfg(test)]
mod tests {
    use crate::progress::Bar;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Count(AtomicU64);

    impl Bar for Count {
        fn inc(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
        fn finish(&self) {}
    }

    /// The scan's counter moves while manifests are read (one step per manifest), so a cold
    /// scan's bar does not stand still after the walk.
    #[test]
    fn each_manifest_read_moves_the_counter() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/stores/sample");
        let store = super::super::Store {
            v2: root.join("docker/registry/v2"),
            root,
        };
        let opts = super::super::ScanOptions::default();
        let mut inv = super::super::scan_with(&store, &opts, &crate::progress::Silent).unwrap();
        let read = inv.manifests.iter().count() as u64;
        assert!(read >= 6, "the sample has manifests to read");
        inv.manifests = Default::default();
        let bar = Count::default();
        super::read_all(&mut inv, &opts, &bar);
        assert_eq!(bar.0.load(Ordering::Relaxed), read);
        assert_eq!(inv.manifests.iter().count() as u64, read);
    }
}

//! Reads and parses every manifest blob that a revision, tag or index names (transitively through
//! index children), in parallel, with the registry's size limit as a cap.

use super::fsio;
use crate::model::digest::{Digest, DigestSet};
use crate::model::inventory::Inventory;
use crate::model::layout;
use crate::model::manifest::{self, GcFailure, Invalid};
use rayon::prelude::*;

/// `blobs` is the open `blobs/` folder, or why it could not be opened.
fn read_one(inv: &Inventory, blobs: &std::io::Result<fsio::DirFd>, d: &Digest) -> manifest::Parsed {
    let Some(blob) = inv.blob(d) else {
        return Err(Invalid {
            reason: "no blob".into(),
            gc: GcFailure::Abort,
        });
    };
    if blob.size > manifest::MAX_MANIFEST_SIZE {
        return Err(Invalid {
            reason: format!(
                "{} bytes, larger than the registry's 4 MiB manifest limit",
                blob.size
            ),
            gc: GcFailure::Abort,
        });
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
        Ok(buf) => manifest::parse(&buf),
        Err(e) => Err(Invalid {
            reason: format!("cannot read manifest blob: {e}"),
            gc: GcFailure::Abort,
        }),
    }
}

pub(crate) fn read_all(inv: &mut Inventory, opts: &super::ScanOptions) {
    let mut wanted: DigestSet = DigestSet::default();
    for r in &inv.repos {
        for l in &r.revisions {
            wanted.insert(l.path_digest.clone());
            if let Some(d) = l.target() {
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
    let mut frontier: Vec<Digest> = wanted
        .into_iter()
        .filter(|d| inv.blob(d).is_some())
        .collect();
    let blobs = fsio::DirFd::open(&inv.v2.join("blobs"));
    while !frontier.is_empty() && !opts.cancelled() {
        let mut next = Vec::new();
        let mut round = Vec::with_capacity(frontier.len());
        // In chunks, so that parsed manifests wait in small batches, not all at once.
        for chunk in frontier.chunks(4096) {
            if opts.cancelled() {
                return;
            }
            let parsed: Vec<(Digest, manifest::Parsed)> = chunk
                .par_iter()
                .map(|d| (d.clone(), read_one(inv, &blobs, d)))
                .collect();
            for (d, p) in parsed {
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
}

//! Reads and parses every manifest blob that a revision, tag or index names (transitively through
//! index children), in parallel, with the registry's size limit as a cap.

use super::fsio;
use crate::digest::Digest;
use crate::inventory::Inventory;
use crate::layout;
use crate::manifest::{self, GcFailure, Invalid};
use rayon::prelude::*;
use std::collections::HashSet;
use std::io::Read;

fn read_one(inv: &Inventory, d: &Digest) -> manifest::Parsed {
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
    let path = inv.v2.join(layout::blob_data(d));
    let mut buf = Vec::with_capacity(blob.size as usize);
    let read = fsio::open_nofollow(&path).and_then(|f| {
        f.take(manifest::MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut buf)
    });
    match read {
        Ok(_) => manifest::parse(&buf),
        Err(e) => Err(Invalid {
            reason: format!("cannot read manifest blob: {e}"),
            gc: GcFailure::Abort,
        }),
    }
}

pub(crate) fn read_all(inv: &mut Inventory) {
    let mut wanted: HashSet<Digest> = HashSet::new();
    for r in &inv.repos {
        for l in &r.revisions {
            wanted.insert(l.path_digest.clone());
            if let Some(d) = l.state.digest() {
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
    while !frontier.is_empty() {
        let parsed: Vec<(Digest, manifest::Parsed)> = frontier
            .par_iter()
            .map(|d| (d.clone(), read_one(inv, d)))
            .collect();
        let mut next = Vec::new();
        for (d, p) in parsed {
            if let Ok(m) = &p {
                for c in m.children() {
                    if !inv.manifests.contains_key(&c.digest) && inv.blob(&c.digest).is_some() {
                        next.push(c.digest.clone());
                    }
                }
            }
            inv.manifests.insert(d, p);
        }
        next.sort();
        next.dedup();
        next.retain(|d| !inv.manifests.contains_key(d));
        frontier = next;
    }
}

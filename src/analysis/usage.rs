//! Per-repository disk accounting for `regfsck du`: referenced, exclusive, shared and
//! untagged-only bytes, and store totals that reconcile exactly. Pure.

use crate::analysis::checks::CheckOptions;
use crate::analysis::reach::{Reach, RevisionClass};
use crate::model::inventory::{EntryKind, Inventory, StartedAt};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RepoUsage {
    pub repo: String,
    pub tags: u64,
    pub revisions: u64,
    pub tagged_revisions: u64,
    pub untagged_revisions: u64,
    /// Untagged revisions reached through a tagged index (multi-arch children).
    pub child_revisions: u64,
    /// Distinct blobs reachable from all the repository's revisions (manifest blobs included).
    pub referenced_bytes: u64,
    /// Reachable from no other repository: what deleting the repository frees.
    pub exclusive_bytes: u64,
    /// `referenced_bytes - exclusive_bytes`.
    pub shared_bytes: u64,
    /// Reachable only from untagged revisions and from nothing tagged anywhere: what registry
    /// 3's `garbage-collect --delete-untagged` frees here on top of a plain run.
    pub untagged_only_bytes: u64,
    /// What registry 2.8's `garbage-collect --delete-untagged` frees here on top of a plain run:
    /// it keeps only the manifests tags name directly and their direct references, so the
    /// untagged children of a multi-arch index go too, with their configs and layers.
    pub untagged_only_bytes_2_8: u64,
    pub uploads: u64,
    pub upload_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Everything in `blobs/`: well-formed blobs plus data files at malformed paths.
    pub blob_bytes: u64,
    pub blobs: u64,
    /// Distinct blobs referenced by any revision of any repository.
    pub referenced_bytes: u64,
    /// Well-formed blobs referenced by no revision: what a plain GC frees.
    pub orphaned_bytes: u64,
    /// Data files at malformed paths in `blobs/` (not blobs to the registry).
    pub malformed_bytes: u64,
    /// Union over repositories of untagged-only bytes: what registry 3's `--delete-untagged`
    /// frees on top of a plain garbage-collect.
    pub untagged_only_bytes: u64,
    /// The same for registry 2.8's `--delete-untagged` (which also deletes index children).
    pub untagged_only_bytes_2_8: u64,
    pub upload_bytes: u64,
    pub stale_upload_bytes: u64,
    /// Link files the registry never cleans: `_layers` links whose blob is gone (their exact size).
    pub dangling_link_bytes: u64,
    pub dangling_links: u64,
    /// Temp residue and stray files under blobs/ and repositories/ (never cleaned by the registry).
    pub residue_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    pub repositories: Vec<RepoUsage>,
    pub totals: Totals,
}

pub fn compute(inv: &Inventory, reach: &Reach, opts: &CheckOptions) -> Usage {
    let n = inv.blobs.len();
    let size = |i: u32| inv.blobs[i as usize].size;
    // How many repositories reach each blob, and whether anything tagged does.
    let mut holders = vec![0u32; n];
    let mut tagged_anywhere = vec![false; n];
    for rr in &reach.repos {
        for &i in &rr.blobs_all {
            holders[i as usize] += 1;
        }
        for &i in &rr.blobs_tagged {
            tagged_anywhere[i as usize] = true;
        }
    }
    // What 2.8's --delete-untagged still marks: each directly tagged manifest and the blobs it
    // references (one level: an index's child manifests, not their layers).
    let mut kept_2_8 = vec![false; n];
    for (repo, rr) in inv.repos.iter().zip(&reach.repos) {
        for (d, class) in rr.live(repo) {
            if class != RevisionClass::Tagged {
                continue;
            }
            let mut keep = |d: &crate::model::digest::Digest| {
                if let Some(i) = inv.blob_index(d) {
                    kept_2_8[i] = true;
                }
            };
            keep(d);
            if let Some(Ok(m)) = inv.manifest(d) {
                m.refs.iter().for_each(|r| keep(&r.digest));
            }
        }
    }
    let mut untagged_union = vec![false; n];
    let mut untagged_union_2_8 = vec![false; n];
    let mut totals = Totals::default();
    let mut repos = Vec::with_capacity(inv.repos.len());
    for (repo, rr) in inv.repos.iter().zip(&reach.repos) {
        let mut u = RepoUsage {
            repo: repo.name.clone(),
            tags: repo.tags.len() as u64,
            revisions: rr.live(repo).count() as u64,
            ..RepoUsage::default()
        };
        for (_, class) in rr.live(repo) {
            match class {
                RevisionClass::Tagged => u.tagged_revisions += 1,
                RevisionClass::TaggedChild => u.child_revisions += 1,
                RevisionClass::Untagged => u.untagged_revisions += 1,
            }
        }
        for &i in &rr.blobs_all {
            u.referenced_bytes += size(i);
            if holders[i as usize] == 1 {
                u.exclusive_bytes += size(i);
            }
            if !tagged_anywhere[i as usize] {
                u.untagged_only_bytes += size(i);
                untagged_union[i as usize] = true;
            }
            if !kept_2_8[i as usize] {
                u.untagged_only_bytes_2_8 += size(i);
                untagged_union_2_8[i as usize] = true;
            }
        }
        u.shared_bytes = u.referenced_bytes - u.exclusive_bytes;
        for up in &repo.uploads {
            u.uploads += 1;
            u.upload_bytes += up.bytes;
            let started = match up.started_at {
                StartedAt::Ok(t) => t,
                _ => up.mtime,
            };
            if started < opts.now - opts.purge_age {
                totals.stale_upload_bytes += up.bytes;
            }
        }
        totals.upload_bytes += u.upload_bytes;
        for l in &repo.layers {
            if let Some(d) = l.target() {
                if inv.blob(d).is_none() {
                    totals.dangling_links += 1;
                    // A valid link's size is exactly its digest text.
                    totals.dangling_link_bytes += d.to_string().len() as u64;
                }
            }
        }
        repos.push(u);
    }
    for (i, b) in inv.blobs.iter().enumerate() {
        totals.blobs += 1;
        totals.blob_bytes += b.size;
        if holders[i] > 0 {
            totals.referenced_bytes += b.size;
        } else {
            totals.orphaned_bytes += b.size;
        }
        if untagged_union[i] {
            totals.untagged_only_bytes += b.size;
        }
        if untagged_union_2_8[i] {
            totals.untagged_only_bytes_2_8 += b.size;
        }
    }
    totals.residue_bytes = inv.stats.residue_bytes;
    for e in &inv.entries {
        if let EntryKind::BlobPath { size: Some(s), .. } = e.kind {
            totals.malformed_bytes += s;
            totals.blob_bytes += s;
        }
    }
    Usage {
        repositories: repos,
        totals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::checks::testkit::Builder;
    use crate::analysis::reach;
    use crate::model::inventory::{BlobFault, Entry};

    #[test]
    fn numbers_reconcile() {
        let mut b = Builder::new();
        let shared = b.image("a", Some("v1"));
        b.image("a", None); // untagged: its blobs are untagged-only
        b.index("b", "latest");
        b.blob(b"orphan blob");
        // Repository c holds the same manifest as a: shared, not exclusive.
        let link = |d: &crate::model::digest::Digest| {
            crate::model::inventory::Link::new(
                d.clone(),
                crate::model::inventory::LinkState::Ok(d.clone()),
            )
        };
        let man = match b.inv.manifests.get(&shared) {
            Some(Ok(m)) => m.clone(),
            _ => unreachable!(),
        };
        let c = b.repo("c");
        c.revisions.push(link(&shared));
        for r in &man.refs {
            c.layers.push(link(&r.digest));
        }
        b.inv.entries.push(Entry {
            path: "blobs/sha256/zz/bad/data".into(),
            kind: EntryKind::BlobPath {
                fault: BlobFault::BadPath,
                size: Some(7),
            },
        });
        let inv = b.build();
        let r = reach::compute(&inv);
        let u = compute(&inv, &r, &CheckOptions::default());
        let t = &u.totals;
        let exclusive: u64 = u.repositories.iter().map(|r| r.exclusive_bytes).sum();
        // Shared bytes counted once: blobs held by two or more repositories.
        let shared_once: u64 = inv
            .blobs
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                r.repos
                    .iter()
                    .filter(|rr| rr.blobs_all.contains(&(*i as u32)))
                    .count()
                    > 1
            })
            .map(|(_, b)| b.size)
            .sum();
        assert!(shared_once > 0 && exclusive > 0);
        assert_eq!(exclusive + shared_once, t.referenced_bytes);
        assert_eq!(
            t.referenced_bytes + t.orphaned_bytes + t.malformed_bytes,
            t.blob_bytes
        );
        assert_eq!(t.orphaned_bytes, "orphan blob".len() as u64);
        assert_eq!(t.malformed_bytes, 7);
        let a = u.repositories.iter().find(|r| r.repo == "a").unwrap();
        assert_eq!(
            a.shared_bytes,
            u.repositories
                .iter()
                .find(|r| r.repo == "c")
                .unwrap()
                .referenced_bytes
        );
        assert!(a.untagged_only_bytes > 0 && a.untagged_revisions == 1 && a.tagged_revisions == 1);
        let bb = u.repositories.iter().find(|r| r.repo == "b").unwrap();
        assert_eq!((bb.child_revisions, bb.shared_bytes), (2, 0));
        // 3.x keeps the index's children; 2.8 keeps their manifests (named by the index) but
        // frees their configs and layers.
        assert_eq!(bb.untagged_only_bytes, 0);
        let children: u64 = inv
            .repos
            .iter()
            .find(|r| r.name == "b")
            .unwrap()
            .revisions
            .iter()
            .filter(|l| {
                r.repos[1].class(&inv.repos[1], &l.path_digest) == Some(RevisionClass::TaggedChild)
            })
            .filter_map(|l| match inv.manifest(&l.path_digest) {
                Some(Ok(m)) => Some(
                    m.refs
                        .iter()
                        .filter_map(|x| inv.blob(&x.digest))
                        .map(|b| b.size)
                        .sum::<u64>(),
                ),
                _ => None,
            })
            .sum();
        assert!(children > 0);
        assert_eq!(bb.untagged_only_bytes_2_8, children);
        assert!(a.untagged_only_bytes_2_8 >= a.untagged_only_bytes);
        assert_eq!(t.untagged_only_bytes_2_8, t.untagged_only_bytes + children);
    }

    #[test]
    fn uploads_and_dangling_links() {
        let mut b = Builder::new();
        b.image("a", Some("v1"));
        let gone = crate::model::digest::Digest::of_bytes(b"swept");
        let r = b.repo("a");
        r.layers.push(crate::model::inventory::Link::new(
            gone.clone(),
            crate::model::inventory::LinkState::Ok(gone),
        ));
        let up = |uuid: &str, started_at, bytes| crate::model::inventory::Upload {
            uuid: uuid.into(),
            started_at,
            bytes,
            mtime: 0,
        };
        r.uploads.push(up("1", StartedAt::Ok(0), 100));
        r.uploads.push(up("2", StartedAt::Ok(1_000_000), 10));
        r.uploads.push(up("3", StartedAt::Missing, 1));
        let inv = b.build();
        let opts = CheckOptions {
            now: 1_000_000,
            ..CheckOptions::default()
        };
        let u = compute(&inv, &reach::compute(&inv), &opts);
        let a = &u.repositories[0];
        assert_eq!((a.uploads, a.upload_bytes), (3, 111));
        // Upload 1 by startedat, upload 3 by mtime (it has no startedat); 2 is fresh.
        assert_eq!(u.totals.stale_upload_bytes, 101);
        assert_eq!(
            (u.totals.dangling_links, u.totals.dangling_link_bytes),
            (1, 71)
        );
        assert_eq!(a.untagged_only_bytes, 0);
        assert_eq!(a.exclusive_bytes, a.referenced_bytes);
    }
}

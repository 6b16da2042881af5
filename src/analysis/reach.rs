//! Reachability with the registry's *serving* semantics: which manifests each repository's tags
//! reach (through index children), which revisions are untagged, and which blobs each repository
//! references. Pure; GC's own (version-specific) marking lives in `gc`.
//!
//! Serving follows registry 2.8, which resolves a manifest through its revision link and, when
//! that link does not exist, through the `_layers` link of the same digest (a 2.1.0 leftover in
//! `linkedBlobStatter`; registry 3 dropped it). A tag whose revision link is gone but whose
//! `_layers` link is there still pulls on 2.8: its manifests count as reached (and are listed in
//! `RepoReach::fallback`), although no garbage-collect ever marks them.
//!
//! Blobs are kept as indices into `inv.blobs` (sorted `Vec<u32>` per repository, one bitset for the
//! whole store), so that a store of millions of blobs costs bytes per blob, not a `Digest` each.

use crate::model::digest::{Digest, DigestSet};
use crate::model::inventory::{Inventory, Repo};
use crate::model::manifest::Role;

/// How a live revision relates to the repository's tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevisionClass {
    /// Some tag's current link names it.
    Tagged,
    /// No tag names it, but a tagged index reaches it (2.8 `-m` deletes it anyway).
    TaggedChild,
    /// Reachable from no tag.
    Untagged,
}

/// Reachability facts of one repository.
#[derive(Clone, Debug, Default)]
pub struct RepoReach {
    /// Classification of each revision, aligned with `repo.revisions`: `None` unless the link is
    /// live (its content names its own folder). A byte per revision, not a map entry.
    pub classes: Vec<Option<RevisionClass>>,
    /// Indices into `inv.blobs` of existing blobs reachable from any revision, sorted.
    pub blobs_all: Vec<u32>,
    /// Indices of existing blobs reachable from a tag (directly or through an index), sorted.
    pub blobs_tagged: Vec<u32>,
    /// Manifests reached (from any revision or tag) only through registry 2.8's `_layers`
    /// fallback, sorted: their revision links are missing.
    pub fallback: Vec<Digest>,
}

impl RepoReach {
    /// The class of `repo`'s revision `d` (`repo` is the repository this reach was computed for).
    pub fn class(&self, repo: &Repo, d: &Digest) -> Option<RevisionClass> {
        let i = repo
            .revisions
            .binary_search_by(|l| l.path_digest.cmp(d))
            .ok()?;
        self.classes.get(i).copied().flatten()
    }

    /// Live revisions and their classes.
    pub fn live<'r>(&'r self, repo: &'r Repo) -> impl Iterator<Item = (&'r Digest, RevisionClass)> {
        repo.revisions
            .iter()
            .zip(&self.classes)
            .filter_map(|(l, c)| c.map(|c| (&l.path_digest, c)))
    }

    pub fn uses_blob(&self, i: usize) -> bool {
        self.blobs_all.binary_search(&(i as u32)).is_ok()
    }
}

/// A set of indices into `inv.blobs`.
#[derive(Clone, Debug, Default)]
pub struct BlobSet(Vec<u64>);

impl BlobSet {
    pub fn with_len(n: usize) -> BlobSet {
        BlobSet(vec![0; n.div_ceil(64)])
    }

    /// Whether `i` was not in the set before (an index out of range is never inserted).
    pub fn insert(&mut self, i: usize) -> bool {
        match self.0.get_mut(i / 64) {
            Some(w) => {
                let bit = 1 << (i % 64);
                let new = *w & bit == 0;
                *w |= bit;
                new
            }
            None => false,
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// Aligned with `inv.repos`.
    pub repos: Vec<RepoReach>,
    /// Blobs referenced by any revision of any repository, tagged or not (manifests, configs,
    /// layers, children): what a plain GC marks, so everything else is what it frees.
    pub referenced: BlobSet,
}

impl Reach {
    /// Whether any revision of any repository references the blob `inv.blobs[i]`.
    pub fn is_referenced(&self, i: usize) -> bool {
        self.referenced.contains(i)
    }
}

/// Where a revision link leads, as the registry's readers follow it: its content when valid.
/// (GC re-stats by content, so a link naming another digest marks that other manifest.)
fn rev_target(repo: &Repo, d: &Digest) -> Option<Digest> {
    repo.revision(d).and_then(|l| l.target().cloned())
}

/// Whether registry 2.8 serves manifest `d` of `repo` only through its `_layers` fallback: no
/// revision link file (no folder, or a folder without `link`: both read as "not found", the one
/// case where the registry tries `_layers/<d>/link`), a `_layers` link naming `d` itself, the blob
/// present and the manifest readable.
pub fn layers_fallback(inv: &Inventory, repo: &Repo, d: &Digest) -> bool {
    repo.revision(d).is_none_or(|l| l.is_absent())
        && repo.layer(d).is_some_and(|l| l.names_own_folder())
        && inv.blob(d).is_some()
        && matches!(inv.manifest(d), Some(Ok(_)))
}

/// Walk from `start` manifests: every manifest and existing blob reachable, following index
/// children through revision links of the same repository, or 2.8's `_layers` fallback (as a
/// pull does). Returns the manifests visited and the sorted, distinct blob indices reached.
pub fn closure(
    inv: &Inventory,
    repo: &Repo,
    start: impl IntoIterator<Item = Digest>,
) -> (DigestSet, Vec<u32>) {
    let mut manifests = DigestSet::default();
    let mut blobs = Vec::new();
    let push = |d: &Digest, blobs: &mut Vec<u32>| {
        if let Some(i) = inv.blob_index(d) {
            blobs.push(i as u32);
        }
    };
    let mut stack: Vec<Digest> = start.into_iter().collect();
    while let Some(m) = stack.pop() {
        if manifests.contains(&m) {
            continue;
        }
        push(&m, &mut blobs);
        if let Some(Ok(man)) = inv.manifest(&m) {
            for r in &man.refs {
                push(&r.digest, &mut blobs);
                if r.role == Role::Child {
                    if let Some(t) = rev_target(repo, &r.digest) {
                        stack.push(t);
                    } else if layers_fallback(inv, repo, &r.digest) {
                        stack.push(r.digest.clone());
                    }
                }
            }
        }
        manifests.insert(m);
    }
    blobs.sort_unstable();
    blobs.dedup();
    blobs.shrink_to_fit();
    (manifests, blobs)
}

/// Manifest digests named by the repository's valid tag current links.
pub fn tag_targets(repo: &Repo) -> DigestSet {
    repo.tags
        .iter()
        .filter_map(|t| t.current.digest().cloned())
        .collect()
}

pub fn compute(inv: &Inventory) -> Reach {
    let mut reach = Reach {
        repos: Vec::with_capacity(inv.repos.len()),
        referenced: BlobSet::with_len(inv.blobs.len()),
    };
    for repo in &inv.repos {
        // A tag serves only through a live revision: a broken or mismatched revision link is
        // reported as such, and what it leads to is not what the tag means.
        // (2.8 also serves a tag through the `_layers` fallback.)
        let tagged_roots: DigestSet = tag_targets(repo)
            .into_iter()
            .filter(|d| repo.live_revision(d) || layers_fallback(inv, repo, d))
            .collect();
        let (tagged_manifests, blobs_tagged) = closure(inv, repo, tagged_roots.iter().cloned());
        let (all_manifests, blobs_all) = closure(
            inv,
            repo,
            repo.revisions
                .iter()
                .filter_map(|l| l.target().cloned())
                .chain(tagged_roots.iter().cloned()),
        );
        let mut fallback: Vec<Digest> = all_manifests
            .iter()
            .filter(|d| repo.revision(d).is_none_or(|l| l.is_absent()))
            .filter(|d| layers_fallback(inv, repo, d))
            .cloned()
            .collect();
        fallback.sort();
        let classes = repo
            .revisions
            .iter()
            .map(|l| {
                let d = &l.path_digest;
                l.names_own_folder().then(|| {
                    if tagged_roots.contains(d) {
                        RevisionClass::Tagged
                    } else if tagged_manifests.contains(d) {
                        RevisionClass::TaggedChild
                    } else {
                        RevisionClass::Untagged
                    }
                })
            })
            .collect();
        for &i in &blobs_all {
            reach.referenced.insert(i as usize);
        }
        reach.repos.push(RepoReach {
            classes,
            blobs_all,
            blobs_tagged,
            fallback,
        });
    }
    reach
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::checks::testkit::Builder;
    use crate::model::inventory::LinkState;

    fn refs(inv: &Inventory, m: &Digest) -> Vec<u32> {
        let Some(Ok(man)) = inv.manifest(m) else {
            panic!("{m} is not a parsed manifest")
        };
        let mut v: Vec<u32> = std::iter::once(m)
            .chain(man.refs.iter().map(|r| &r.digest))
            .filter_map(|d| inv.blob_index(d).map(|i| i as u32))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn classes_and_blob_sets() {
        let mut b = Builder::new();
        let tagged = b.image("r", Some("v1"));
        let untagged = b.image("r", None);
        let (ix, children) = b.index("r", "multi");
        let orphan = b.blob(b"orphan");
        let inv = b.build();
        let reach = compute(&inv);
        let rr = &reach.repos[0];
        assert_eq!(
            rr.class(&inv.repos[0], &tagged),
            Some(RevisionClass::Tagged)
        );
        assert_eq!(rr.class(&inv.repos[0], &ix), Some(RevisionClass::Tagged));
        assert_eq!(
            rr.class(&inv.repos[0], &untagged),
            Some(RevisionClass::Untagged)
        );
        for c in &children {
            assert_eq!(rr.class(&inv.repos[0], c), Some(RevisionClass::TaggedChild));
        }
        // Tagged: the image, the index and both children with all their blobs; not `untagged`.
        let mut want: Vec<u32> = [&tagged, &ix, &children[0], &children[1]]
            .iter()
            .flat_map(|m| refs(&inv, m))
            .collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(rr.blobs_tagged, want);
        for i in refs(&inv, &untagged) {
            assert!(rr.uses_blob(i as usize) && !rr.blobs_tagged.contains(&i));
            assert!(reach.is_referenced(i as usize));
        }
        let o = inv.blob_index(&orphan).unwrap();
        assert!(!reach.is_referenced(o) && !rr.uses_blob(o));
        assert_eq!(rr.blobs_all.len() + 1, inv.blobs.len());
    }

    #[test]
    fn a_tag_through_a_broken_revision_link_roots_nothing() {
        let mut b = Builder::new();
        let m = b.image("r", Some("v1"));
        let mut inv = b.build();
        let other = Digest::of_bytes(b"elsewhere");
        inv.repos[0].revisions[0].set_state(LinkState::Ok(other));
        let reach = compute(&inv);
        assert!(reach.repos[0].blobs_tagged.is_empty());
        assert_eq!(reach.repos[0].class(&inv.repos[0], &m), None);
        // GC follows the link's content, which names no blob: nothing is referenced.
        assert!((0..inv.blobs.len()).all(|i| !reach.is_referenced(i)));
    }

    #[test]
    fn children_are_followed_only_within_the_repository() {
        let mut b = Builder::new();
        let (_, children) = b.index("r", "multi");
        let mut inv = b.build();
        let r = &mut inv.repos[0];
        r.revisions.retain(|l| l.path_digest != children[0]);
        let reach = compute(&inv);
        // The child's manifest blob is still named by the index, but its config and layers are
        // reachable from nothing: the pull of that platform fails, and GC sweeps them.
        let lost = refs(&inv, &children[0]);
        let child_blob = inv.blob_index(&children[0]).unwrap() as u32;
        for i in lost {
            assert_eq!(reach.is_referenced(i as usize), i == child_blob, "blob {i}");
        }
    }

    #[test]
    fn bitset_bounds() {
        let mut s = BlobSet::with_len(65);
        s.insert(64);
        s.insert(1000); // out of range: ignored, never a panic
        assert!(s.contains(64) && !s.contains(63) && !s.contains(1000));
    }
}

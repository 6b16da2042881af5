//! Reachability with the registry's *serving* semantics: which manifests each repository's tags
//! reach (through index children), which revisions are untagged, and which blobs each repository
//! references. Pure; GC's own (version-specific) marking lives in `gc`.

use crate::digest::Digest;
use crate::inventory::{Inventory, Repo};
use crate::manifest::Role;
use std::collections::{HashMap, HashSet};

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
    /// Classification of each live revision (valid link), keyed by manifest digest.
    pub revisions: HashMap<Digest, RevisionClass>,
    /// Indices into `inv.blobs` of existing blobs reachable from any revision, sorted.
    pub blobs_all: Vec<u32>,
    /// Indices of existing blobs reachable from a tag (directly or through an index), sorted.
    pub blobs_tagged: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// Aligned with `inv.repos`.
    pub repos: Vec<RepoReach>,
    /// Digests referenced by any revision of any repository (manifests, configs, layers,
    /// children), whether or not a blob exists: what a plain GC marks.
    pub referenced: HashSet<Digest>,
}

/// The digest a revision link points at, if the link is valid.
fn rev_target(repo: &Repo, d: &Digest) -> Option<Digest> {
    repo.revision(d).and_then(|l| l.state.digest().cloned())
}

/// Walk from `start` manifests: every manifest blob and reference reachable, following index
/// children only through live revisions of the same repository (as a pull does).
fn closure(
    inv: &Inventory,
    repo: &Repo,
    start: impl IntoIterator<Item = Digest>,
) -> (HashSet<Digest>, HashSet<Digest>) {
    let mut manifests = HashSet::new();
    let mut digests = HashSet::new();
    let mut stack: Vec<Digest> = start.into_iter().collect();
    while let Some(m) = stack.pop() {
        if !manifests.insert(m.clone()) {
            continue;
        }
        digests.insert(m.clone());
        let Some(Ok(man)) = inv.manifest(&m) else {
            continue;
        };
        for r in &man.refs {
            digests.insert(r.digest.clone());
            if r.role == Role::Child {
                if let Some(t) = rev_target(repo, &r.digest) {
                    stack.push(t);
                }
            }
        }
    }
    (manifests, digests)
}

fn indices(inv: &Inventory, digests: &HashSet<Digest>) -> Vec<u32> {
    let mut v: Vec<u32> = digests
        .iter()
        .filter_map(|d| inv.blob_index(d).map(|i| i as u32))
        .collect();
    v.sort_unstable();
    v
}

/// Manifest digests named by the repository's valid tag current links.
pub fn tag_targets(repo: &Repo) -> HashSet<Digest> {
    repo.tags
        .iter()
        .filter_map(|t| t.current.digest().cloned())
        .collect()
}

pub fn compute(inv: &Inventory) -> Reach {
    let mut reach = Reach::default();
    for repo in &inv.repos {
        let tagged_roots: HashSet<Digest> = tag_targets(repo)
            .into_iter()
            .filter_map(|d| rev_target(repo, &d))
            .collect();
        let (tagged_manifests, tagged_digests) = closure(inv, repo, tagged_roots.iter().cloned());
        let live: Vec<Digest> = repo
            .revisions
            .iter()
            .filter_map(|l| l.state.digest().cloned())
            .collect();
        let (_, all_digests) = closure(inv, repo, live.iter().cloned());
        let mut rr = RepoReach::default();
        for d in &live {
            let class = if tagged_roots.contains(d) {
                RevisionClass::Tagged
            } else if tagged_manifests.contains(d) {
                RevisionClass::TaggedChild
            } else {
                RevisionClass::Untagged
            };
            rr.revisions.insert(d.clone(), class);
        }
        rr.blobs_all = indices(inv, &all_digests);
        rr.blobs_tagged = indices(inv, &tagged_digests);
        reach.referenced.extend(all_digests);
        reach.repos.push(rr);
    }
    reach
}

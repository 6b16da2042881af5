//! Which images a finding breaks: the repositories and tags whose pull needs the object it is
//! about, so that the operator knows what to push again. Pure, from the inventory's manifests.
//!
//! A tag needs every digest its pull fetches: the manifest its `current` link names, that
//! manifest's config and layers, and for an index each child manifest with its own config and
//! layers. The walk goes by digest (what a client asks for), not through revision links: a tag
//! whose revision link is broken still names the image that must be re-pushed.

use crate::model::digest::{Digest, DigestSet};
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{Inventory, Repo};
use serde::Serialize;
use std::collections::HashMap;

/// The tags of one repository that a finding affects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Affected {
    pub repo: String,
    pub tags: Vec<String>,
}

/// Findings about a whole repository whose every tag is affected (a GC run loses the
/// repository's blobs, or the registry cannot address it at all).
fn whole_repository(code: Code) -> bool {
    matches!(
        code,
        Code::RepoMissingLayers | Code::RepoMissingTags | Code::RepoNameInvalid
    )
}

/// Findings that by definition concern nothing a tag reaches, or that are not about an image.
fn never_affects(code: Code) -> bool {
    matches!(
        code,
        Code::BlobUnreferenced
            | Code::RevisionUntagged
            | Code::LayerLinkUnused
            | Code::UploadStale
            | Code::UploadNoStartedat
            | Code::UploadRecent
            | Code::DirEmpty
            | Code::RepoEmpty
            | Code::RepoMissingManifests
            | Code::GcWouldAbort
            | Code::GcWouldDeleteTagged
    )
}

/// Whether `path` lies in a tag's history (`_manifests/tags/<tag>/index/…`), which a pull of
/// the tag never reads (it reads `current/link`): a finding there breaks no image, whatever
/// digest it names.
fn in_tag_history(path: &str) -> bool {
    let mut parts = path.split('/').skip_while(|c| *c != "_manifests");
    parts.nth(1) == Some("tags") && parts.nth(1) == Some("index")
}

/// Every digest a pull of `start` in `repo`'s context fetches (manifests, configs, layers,
/// children), as far as the manifests can be read.
fn pull_closure(inv: &Inventory, start: &Digest, out: &mut DigestSet) {
    let mut stack = vec![start.clone()];
    while let Some(d) = stack.pop() {
        if !out.insert(d.clone()) {
            continue;
        }
        if let Some(Ok(m)) = inv.manifest(&d) {
            for r in m.refs.iter() {
                if m.children().any(|c| c.digest == r.digest) {
                    stack.push(r.digest.clone());
                } else {
                    out.insert(r.digest.clone());
                }
            }
        }
    }
}

/// For each finding (same order), the repositories and tags it affects; empty when none.
pub fn compute<'a>(inv: &'a Inventory, findings: &[Finding]) -> Vec<Vec<Affected>> {
    // The digests some finding asks about; the tag walks below record only these.
    let wanted: DigestSet = findings
        .iter()
        .filter(|f| !never_affects(f.code))
        .filter_map(|f| f.digest.clone())
        .collect();
    // digest -> (repository index, tag index) pairs whose pull needs it.
    let mut needed_by: HashMap<Digest, Vec<(usize, usize)>> = HashMap::new();
    if !wanted.is_empty() {
        let mut seen = DigestSet::default();
        for (ri, repo) in inv.repos.iter().enumerate() {
            for (ti, tag) in repo.tags.iter().enumerate() {
                let Some(d) = tag.current.digest() else {
                    continue;
                };
                seen.clear();
                pull_closure(inv, d, &mut seen);
                for x in seen.iter().filter(|x| wanted.contains(*x)) {
                    needed_by.entry(x.clone()).or_default().push((ri, ti));
                }
            }
        }
    }
    findings
        .iter()
        .map(|f| {
            if never_affects(f.code) || f.path.as_deref().is_some_and(in_tag_history) {
                return Vec::new();
            }
            // At or below a symbolic link the registry follows (to something in the store or
            // out of it): whether pulls through it work is not known, so no tag is named broken
            // (the `path-symlink` finding there says so).
            if f.path
                .as_deref()
                .is_some_and(|p| inv.unjudged_symlink_over(p).is_some())
            {
                return Vec::new();
            }
            let repo = f.repo.as_deref().and_then(|r| inv.repo(r));
            let mut by_repo: Vec<(&str, Vec<String>)> = Vec::new();
            let mut add =
                |r: &'a Repo, t: &str| match by_repo.iter_mut().find(|(x, _)| *x == r.name) {
                    Some((_, tags)) => tags.push(t.to_string()),
                    None => by_repo.push((&r.name, vec![t.to_string()])),
                };
            if let Some(d) = &f.digest {
                for &(ri, ti) in needed_by.get(d).map(Vec::as_slice).unwrap_or_default() {
                    let r = &inv.repos[ri];
                    // A finding about one repository's link affects only that repository's tags;
                    // a blob's content affects every repository that pulls it.
                    if repo.is_none_or(|x| x.name == r.name) {
                        add(r, &r.tags[ti].name);
                    }
                }
            }
            // A tag's history (`index/`) is not read by a pull of the tag: a finding there
            // concerns the tag's past, not its image.
            if let (Some(r), Some(t)) = (repo, f.tag.as_deref()) {
                add(r, t);
            }
            if let (Some(r), true) = (repo, whole_repository(f.code)) {
                for t in &r.tags {
                    add(r, &t.name);
                }
            }
            let mut out: Vec<Affected> = by_repo
                .into_iter()
                .map(|(r, mut tags)| {
                    tags.sort();
                    tags.dedup();
                    Affected {
                        repo: r.to_string(),
                        tags,
                    }
                })
                .collect();
            out.sort();
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::checks::testkit::{link, Builder};

    fn layers(inv: &Inventory, m: &Digest) -> Vec<Digest> {
        match inv.manifest(m) {
            Some(Ok(man)) => man.refs.iter().map(|r| r.digest.clone()).collect(),
            _ => panic!("{m} is not a parsed manifest"),
        }
    }

    #[test]
    fn a_blob_names_every_tag_that_pulls_it() {
        let mut b = Builder::new();
        let a = b.image("a", Some("v1"));
        b.image("a", None);
        let (ix, children) = b.index("multi", "latest");
        let inv = b.build();
        let layer = layers(&inv, &a)[0].clone();
        let child_layer = layers(&inv, &children[1])[0].clone();
        let findings = vec![
            Finding::new(Code::BlobDigestMismatch, "blobs/x", "m").digest(&layer),
            Finding::new(Code::BlobDigestMismatch, "blobs/y", "m").digest(&child_layer),
            Finding::new(Code::ManifestInvalid, "r/x", "m")
                .repo("multi")
                .digest(&ix),
            Finding::new(Code::TagDangling, "t", "m")
                .repo("a")
                .tag("gone"),
            Finding::new(Code::BlobUnreferenced, "blobs/z", "m").digest(&layer),
            Finding::new(Code::RepoMissingLayers, "r/a/_layers", "m").repo("a"),
        ];
        let got = compute(&inv, &findings);
        let one = |repo: &str, tags: &[&str]| Affected {
            repo: repo.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        assert_eq!(got[0], vec![one("a", &["v1"])]);
        // Through the index: the child's layer breaks the multi-arch tag.
        assert_eq!(got[1], vec![one("multi", &["latest"])]);
        assert_eq!(got[2], vec![one("multi", &["latest"])]);
        assert_eq!(got[3], vec![one("a", &["gone"])]);
        assert!(got[4].is_empty(), "unreferenced blobs affect no image");
        assert_eq!(got[5], vec![one("a", &["v1"])]);
    }

    #[test]
    fn a_tags_history_affects_no_pull() {
        // Found by the differential fuzzer: a wrong digest in a tag's index link was said to
        // break the tag, which pulls (a pull reads only `current/link`).
        let mut b = Builder::new();
        let a = b.image("a", Some("v1"));
        let inv = b.build();
        let index = format!(
            "{}/index/sha256/{}/link",
            crate::model::layout::tag_dir("a", "v1"),
            a.hex()
        );
        let current = crate::model::layout::tag_current_link("a", "v1");
        let findings = vec![
            Finding::new(Code::LinkMismatch, &index, "m")
                .repo("a")
                .tag("v1")
                .digest(&a),
            Finding::new(Code::LinkMalformed, &current, "m")
                .repo("a")
                .tag("v1"),
        ];
        let got = compute(&inv, &findings);
        assert!(got[0].is_empty(), "{:?}", got[0]);
        assert_eq!(got[1].len(), 1);
    }

    #[test]
    fn a_repository_scoped_finding_stays_in_its_repository() {
        let mut b = Builder::new();
        let a = b.image("a", Some("v1"));
        // Repository c holds the same image under another tag.
        let refs: Vec<Digest> = match b.inv.manifests.get(&a) {
            Some(Ok(m)) => m.refs.iter().map(|r| r.digest.clone()).collect(),
            _ => unreachable!(),
        };
        let c = b.repo("c");
        c.revisions.push(link(&a));
        c.layers.extend(refs.iter().map(link));
        b.tag("c", "prod", &a);
        let inv = b.build();
        let layer = layers(&inv, &a)[0].clone();
        let findings = vec![
            Finding::new(Code::LayerLinkDangling, "l", "m")
                .repo("c")
                .digest(&layer),
            Finding::new(Code::BlobDigestMismatch, "blobs/x", "m").digest(&layer),
        ];
        let got = compute(&inv, &findings);
        assert_eq!(got[0].len(), 1);
        assert_eq!(got[0][0].repo, "c");
        let repos: Vec<&str> = got[1].iter().map(|a| a.repo.as_str()).collect();
        assert_eq!(repos, ["a", "c"]);
    }
}

//! The offline catalog (`regfsck ls`): repositories, their tags as the registry serves them (every
//! entry of `_manifests/tags/`, as `/v2/<name>/tags/list` lists it), each tag's kind, platforms,
//! artifactType, total size and push time, and the untagged revisions. Pure: push times and the
//! display-only manifest facts come from `store::details`.
//!
//! `in_catalog` is what registry 2.8's `/v2/_catalog` says (2.8 is what Debian ships and what the
//! fixtures were written with; its walk marks a repository by `_layers`, so a repository made only
//! by a cross-repository mount is listed and one without `_layers` is not). Registry 3 marks by
//! `_manifests`: `in_catalog_v3` says what it lists.

use crate::analysis::gc::{self, Version};
use crate::analysis::reach::{self, Reach, RevisionClass};
use crate::model::digest::Digest;
use crate::model::inventory::Inventory;
use crate::model::manifest::Kind;
use crate::model::pushed::{ManifestInfo, PushTimes, TimeSource};
use crate::model::timefmt::format_rfc3339;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct TagEntry {
    pub tag: String,
    /// `null` when the tag's `current/link` is missing or unreadable (the registry still lists it).
    pub digest: Option<Digest>,
    /// image, index, artifact, or unknown (manifest missing or unreadable).
    pub kind: &'static str,
    /// The manifest's media type family (`oci-manifest`, `docker-list`, ...), when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Kind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Bytes of every distinct blob the tag references (manifests, configs, layers, children).
    pub size: u64,
    /// Push time (RFC 3339), `null` when unknown.
    pub pushed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_from: Option<TimeSource>,
    /// The image config's `created` as written: shown, never used to delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RepoEntry {
    pub name: String,
    /// Whether registry 2.8's `/v2/_catalog` lists it (`null`: the walk cannot be replayed).
    pub in_catalog: Option<bool>,
    /// Whether registry 3's `/v2/_catalog` lists it.
    pub in_catalog_v3: Option<bool>,
    pub tags: Vec<TagEntry>,
    /// Live revisions reachable from no tag (children of a tagged index are not listed here: they
    /// belong to their index's platforms).
    pub untagged: Vec<Digest>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    pub repositories: Vec<RepoEntry>,
}

fn kind_of(inv: &Inventory, d: &Digest, info: &ManifestInfo) -> (&'static str, Option<Kind>) {
    match inv.manifest(d) {
        Some(Ok(m)) if m.kind.is_index() => ("index", Some(m.kind)),
        Some(Ok(m)) if info.artifact_type.is_some() => ("artifact", Some(m.kind)),
        Some(Ok(m)) => ("image", Some(m.kind)),
        _ => ("unknown", None),
    }
}

/// The listing of every repository `keep` accepts. `info` gives a manifest's display-only facts.
pub fn list(
    inv: &Inventory,
    reach: &Reach,
    times: &PushTimes,
    keep: impl Fn(&str) -> bool,
    info: impl Fn(&Digest) -> ManifestInfo,
) -> Listing {
    let v28 = gc::catalog(inv, Version::V2_8);
    let v3 = gc::catalog(inv, Version::V3);
    let mut repositories = Vec::new();
    for (i, repo) in inv.repos.iter().enumerate() {
        if !keep(&repo.name) {
            continue;
        }
        let rr = &reach.repos[i];
        let tags = repo
            .tags
            .iter()
            .map(|t| {
                let digest = t.current.digest().cloned();
                let pushed = times.tag(&repo.name, &t.name);
                let (kind, manifest, size, facts) = match &digest {
                    Some(d) => {
                        let facts = info(d);
                        let (kind, manifest) = kind_of(inv, d, &facts);
                        let (_, blobs) = reach::closure(inv, repo, std::iter::once(d.clone()));
                        let size = blobs.iter().map(|&b| inv.blobs[b as usize].size).sum();
                        (kind, manifest, size, facts)
                    }
                    None => ("unknown", None, 0, ManifestInfo::default()),
                };
                TagEntry {
                    tag: t.name.clone(),
                    digest,
                    kind,
                    manifest,
                    platforms: facts.platforms,
                    artifact_type: facts.artifact_type,
                    size,
                    pushed: pushed.map(|p| format_rfc3339(p.at)),
                    pushed_from: pushed.map(|p| p.source),
                    created: facts.created,
                }
            })
            .collect();
        let untagged = rr
            .live(repo)
            .filter(|(_, c)| *c == RevisionClass::Untagged)
            .map(|(d, _)| d.clone())
            .collect();
        repositories.push(RepoEntry {
            name: repo.name.clone(),
            in_catalog: v28.as_ref().map(|c| c.contains(&repo.name)),
            in_catalog_v3: v3.as_ref().map(|c| c.contains(&repo.name)),
            tags,
            untagged,
        });
    }
    Listing { repositories }
}

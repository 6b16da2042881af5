//! What could not be read, and which verdicts that blinds. An I/O or permission error is its own
//! finding (`path-unreadable`), never evidence: a blob is not "unreferenced" when a manifest that
//! might reference it could not be read, a tag is not "dangling" when the revisions could not be
//! listed, and no garbage-collect prediction is made over paths regfsck could not read. Pure.

use crate::model::digest::Digest;
use crate::model::inventory::Inventory;
use crate::model::layout;
use std::collections::{BTreeMap, BTreeSet};

/// What is unknown about one repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoBlind {
    /// Part of `_manifests/revisions`, or a manifest it names, could not be read.
    pub revisions: bool,
    /// Part of `_manifests/tags` (but a tag's history) could not be read.
    pub tags: bool,
    /// Part of `_layers` could not be read.
    pub layers: bool,
}

/// The verdicts that unreadable paths blind.
#[derive(Clone, Debug, Default)]
pub struct Blind {
    /// Every unreadable path, sorted.
    pub paths: Vec<String>,
    /// The unreadable paths that may hide references to blobs (a folder of the repository
    /// hierarchy, any part of a repository but its uploads and tag histories, a manifest blob):
    /// while any exists, no blob may be called unreferenced.
    pub refs: Vec<String>,
    /// Unreadable paths the plain garbage-collect reads (and `--delete-untagged` too).
    pub gc_plain: Vec<String>,
    /// Unreadable paths only `--delete-untagged` reads (tags).
    pub gc_untagged: Vec<String>,
    repos: BTreeMap<String, RepoBlind>,
    /// Folders of `blobs/` that could not be listed.
    blob_dirs: BTreeSet<String>,
    /// Symbolic links in `blobs/` (a fan-out or blob folder, a `data` file): regfsck never
    /// follows one, the registry does, so what lies behind is as unknown as an unread folder.
    blob_symlinks: BTreeSet<String>,
}

/// The repository a path lies in: the longest repository name that prefixes it at a `/`
/// boundary (repositories nest), and the rest of the path.
pub fn repo_of<'a>(inv: &'a Inventory, path: &'a str) -> Option<(&'a str, &'a str)> {
    let rel = path.strip_prefix("repositories/")?;
    std::iter::once(rel.len())
        .chain(rel.rmatch_indices('/').map(|(i, _)| i))
        .find_map(|end| {
            inv.repo(&rel[..end])
                .map(|r| (r.name.as_str(), rel[end..].trim_start_matches('/')))
        })
}

impl Blind {
    pub fn of(inv: &Inventory) -> Blind {
        let mut b = Blind {
            paths: inv.unreadable_paths(),
            blob_symlinks: inv
                .symlinks
                .iter()
                .filter(|s| s.path.starts_with("blobs/"))
                .map(|s| s.path.clone())
                .collect(),
            ..Blind::default()
        };
        let unreadable_manifest = |p: &str| matches!(layout::parse_path(p), layout::Parsed::BlobData(d) if inv.manifest_unreadable(&d).is_some());
        for p in b.paths.clone() {
            if p == "blobs" || p.starts_with("blobs/") {
                if unreadable_manifest(&p) {
                    // GC reads manifests; what this one references is unknown.
                    b.refs.push(p.clone());
                    b.gc_plain.push(p.clone());
                    if let layout::Parsed::BlobData(d) = layout::parse_path(&p) {
                        b.blind_manifest_users(inv, &d);
                    }
                } else if !matches!(layout::parse_path(&p), layout::Parsed::BlobData(_)) {
                    // A folder: the blobs below it are unknown (GC's sweep lists it).
                    b.blob_dirs.insert(p.clone());
                    b.gc_plain.push(p.clone());
                }
                // Unreadable layer data: GC only stats it, and the blob exists.
                continue;
            }
            match repo_of(inv, &p).filter(|(_, rest)| rest.starts_with('_')) {
                Some((repo, rest)) => {
                    let blind = b.repos.entry(repo.to_string()).or_default();
                    if rest.starts_with("_uploads") {
                        continue;
                    }
                    let history = rest.starts_with("_manifests/tags/") && rest.contains("/index");
                    if history {
                        continue;
                    }
                    if rest.starts_with("_manifests/tags") {
                        blind.tags = true;
                        b.gc_untagged.push(p.clone());
                    } else if rest.starts_with("_layers") {
                        blind.layers = true;
                        b.gc_plain.push(p.clone());
                    } else {
                        // The repository's _manifests or revisions.
                        blind.revisions = true;
                        b.gc_plain.push(p.clone());
                    }
                    b.refs.push(p.clone());
                }
                None => {
                    // The hierarchy itself (or the top of the store): the repositories below it
                    // are unknown.
                    b.refs.push(p.clone());
                    b.gc_plain.push(p.clone());
                }
            }
        }
        b
    }

    /// Repositories whose revisions or tags name the unreadable manifest `d`: their classes
    /// (tagged, untagged, children) are unknown.
    fn blind_manifest_users(&mut self, inv: &Inventory, d: &Digest) {
        for r in &inv.repos {
            let named = r.revisions.iter().any(|l| l.target() == Some(d))
                || r.tags.iter().any(|t| t.current.digest() == Some(d));
            if named {
                self.repos.entry(r.name.clone()).or_default().revisions = true;
            }
        }
    }

    /// Whether nothing at all is unknown.
    pub fn is_clear(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn repo(&self, name: &str) -> RepoBlind {
        self.repos.get(name).cloned().unwrap_or_default()
    }

    /// Whether the place where blob `d` would be could not be listed, or lies behind a symbolic
    /// link (so "it does not exist" is no verdict).
    pub fn blob_location(&self, d: &Digest) -> bool {
        if self.blob_dirs.is_empty() && self.blob_symlinks.is_empty() {
            return false;
        }
        let dir = layout::blob_dir(d);
        let data = layout::blob_data(d);
        let blind = |p: &str| self.blob_dirs.contains(p) || self.blob_symlinks.contains(p);
        let found = dir
            .match_indices('/')
            .map(|(i, _)| &dir[..i])
            .chain([dir.as_str(), data.as_str()])
            .any(blind);
        found
    }

    /// The unreadable paths a garbage-collect run reads.
    pub fn gc(&self, delete_untagged: bool) -> Vec<String> {
        let mut v = self.gc_plain.clone();
        if delete_untagged {
            v.extend(self.gc_untagged.iter().cloned());
        }
        v.sort();
        v.dedup();
        v
    }
}

/// `a, b, c and N more` for messages.
pub fn list(paths: &[String], max: usize) -> String {
    let mut s = paths
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > max {
        s.push_str(&format!(" and {} more", paths.len() - max));
    }
    s
}

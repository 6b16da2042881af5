//! Push times and the display-only facts of manifests that the cleanup commands need beyond the
//! inventory: values only (the store layer reads them, `store::details`).

use crate::model::digest::Digest;
use crate::model::inventory::Timestamp;
use serde::Serialize;
use std::collections::HashMap;

/// Which file's mtime a push time was read from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// `_manifests/tags/<t>/current/link`: rewritten by every push of the tag.
    CurrentLink,
    /// `_manifests/tags/<t>/index/<alg>/<hex>/link` of the current digest: written when the tag
    /// first pointed at that digest.
    IndexLink,
    /// `_manifests/revisions/<alg>/<hex>/link`: written when the manifest was first pushed to the
    /// repository.
    RevisionLink,
}

/// When something was pushed, and from which file that is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Pushed {
    pub at: Timestamp,
    pub source: TimeSource,
}

/// Push times of a store: per tag, and per revision (the revision link's mtime).
#[derive(Clone, Debug, Default)]
pub struct PushTimes {
    /// (repository, tag) -> when; absent when no link could be statted.
    pub tags: HashMap<(String, String), Pushed>,
    /// (repository, digest) -> the revision link's mtime.
    pub revisions: HashMap<(String, Digest), Timestamp>,
}

impl PushTimes {
    pub fn tag(&self, repo: &str, tag: &str) -> Option<Pushed> {
        self.tags.get(&(repo.to_string(), tag.to_string())).copied()
    }

    pub fn revision(&self, repo: &str, d: &Digest) -> Option<Timestamp> {
        self.revisions.get(&(repo.to_string(), d.clone())).copied()
    }
}

/// What `ls` shows of a manifest besides its kind: never used to decide anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ManifestInfo {
    /// The manifest's `artifactType`, else its config's media type when that is not an image
    /// config (OCI 1.1 artifacts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// `os/architecture[/variant]` of each child of an index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// The image config's `created` text, as written (often 1970 or 1980 in reproducible builds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

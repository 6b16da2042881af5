//! Predicts exactly what the registry's own `garbage-collect [--delete-untagged]` does to a
//! store, for registry 2.8 (registry:2, Debian's docker-registry) and 3.x (registry:3), and turns
//! the dangerous outcomes into `gc-would-abort` / `gc-would-delete-tagged` findings. Pure.
//!
//! Semantics (registry-storage.md §3, verified against the real 2.8.2 binary by the differential
//! tests in `tests/gc_oracle.rs`):
//! - mark walks the repositories the version's catalog walk sees (`walk`), enumerates every file
//!   named `link` under `_manifests/revisions` (an unreadable one aborts; one whose target
//!   revision or blob is missing is skipped), optionally looks up tags (`-m`), marks the manifest
//!   and its references (2.8: one level; 3.x: recursing into child manifests that exist in the
//!   repository), and on 3.x also enumerates `_layers` (missing folder aborts);
//! - 3.x then keeps every queued untagged manifest whose digest is marked anywhere;
//! - sweep enumerates every file named `data` under `blobs/` (`digestFromPath`: a malformed path
//!   aborts, a hex shorter than two characters panics) and deletes what is unmarked.
//!
//! When a run aborts, `eligible_blobs` is empty (the dry-run prints none), and
//! `eligible_manifests` holds what a real run would already have deleted: nothing when the
//! abort happens during mark, the queued manifests when it happens during the blob sweep.

mod walk;

use crate::analysis::reach::BlobSet;
use crate::model::digest::{Digest, DigestSet};
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{BlobFault, EntryKind, Inventory, Link, LinkState, OddLink, Repo};
use crate::model::layout;
use crate::model::manifest::{GcFailure, Kind};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    V2_8,
    V3,
}

impl Version {
    pub const ALL: [Version; 2] = [Version::V2_8, Version::V3];

    pub fn name(self) -> &'static str {
        match self {
            Version::V2_8 => "2.8",
            Version::V3 => "3",
        }
    }

    pub fn parse(s: &str) -> Option<Version> {
        match s {
            "2" | "2.8" | "2.8.x" => Some(Version::V2_8),
            "3" | "3.x" | "3.0" | "3.1" => Some(Version::V3),
            _ => None,
        }
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Abort {
    /// The error text the real GC prints (after `failed to garbage collect: `), or the panic.
    pub reason: String,
    /// Relative to v2, where known.
    pub path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RepoDigest {
    pub repo: String,
    pub digest: Digest,
}

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub registry_version: Version,
    pub delete_untagged: bool,
    pub abort: Option<Abort>,
    /// The real GC would panic (exit status 2) rather than fail cleanly.
    pub panic: bool,
    pub eligible_blobs: Vec<Digest>,
    pub eligible_manifests: Vec<RepoDigest>,
    pub freed_bytes: u64,
    /// 3.x only: `_layers` link files it deletes.
    pub layer_links_deleted: Vec<RepoDigest>,
    /// Repositories with manifests that this version's catalog walk never sees.
    pub invisible_repos: Vec<String>,
}

impl Prediction {
    /// `registry 2.8 garbage-collect --delete-untagged`, for messages.
    pub fn label(&self) -> String {
        format!(
            "registry {} garbage-collect{}",
            self.registry_version.name(),
            if self.delete_untagged {
                " --delete-untagged"
            } else {
                ""
            }
        )
    }

    /// What the real `--dry-run` lists: (blobs, (repo, digest) manifests, aborted).
    pub fn dry_run_view(&self) -> (BTreeSet<String>, BTreeSet<(String, String)>, bool) {
        (
            self.eligible_blobs.iter().map(|d| d.to_string()).collect(),
            self.eligible_manifests
                .iter()
                .map(|m| (m.repo.clone(), m.digest.to_string()))
                .collect(),
            self.abort.is_some(),
        )
    }
}

const MARK: &str = "failed to mark: filesystem: ";

enum Stop {
    Abort(Abort),
    Panic(Abort),
}

fn abort(reason: String, path: Option<String>) -> Stop {
    Stop::Abort(Abort { reason, path })
}

/// The mark set: a bit per existing blob, and a (normally empty) set for marked digests that name
/// no blob, so that a store of millions of blobs costs bits, not a hashed `Digest` each.
struct Marks<'a> {
    inv: &'a Inventory,
    blobs: BlobSet,
    other: DigestSet,
}

impl<'a> Marks<'a> {
    fn new(inv: &'a Inventory) -> Self {
        Marks {
            inv,
            blobs: BlobSet::with_len(inv.blobs.len()),
            other: DigestSet::default(),
        }
    }

    /// Whether `d` was not marked before.
    fn insert(&mut self, d: &Digest) -> bool {
        match self.inv.blob_index(d) {
            Some(i) => self.blobs.insert(i),
            None => self.other.insert(d.clone()),
        }
    }

    fn contains(&self, d: &Digest) -> bool {
        match self.inv.blob_index(d) {
            Some(i) => self.blobs.contains(i),
            None => self.other.contains(d),
        }
    }
}

/// What `Tags.Lookup` finds in one repository: it reads every tag's `current` link (both versions,
/// for every revision, without stopping at a match), so one unreadable tag fails every lookup.
struct TagLookup {
    targets: DigestSet,
    /// The first unreadable tag: its name and the read error.
    error: Option<(String, String)>,
}

impl TagLookup {
    fn of(repo: &Repo) -> TagLookup {
        let mut l = TagLookup {
            targets: DigestSet::default(),
            error: None,
        };
        for t in &repo.tags {
            match &t.current {
                LinkState::Absent => {}
                LinkState::Ok(d) => {
                    l.targets.insert(d.clone());
                }
                other => {
                    if l.error.is_none() {
                        l.error = Some((t.name.clone(), other.read_error().unwrap_or_default()));
                    }
                }
            }
        }
        l
    }
}

struct Marker<'a> {
    inv: &'a Inventory,
    version: Version,
    delete_untagged: bool,
    marked: Marks<'a>,
    /// Of the repository being marked (only with `--delete-untagged`).
    tags: Option<TagLookup>,
    queued: Vec<RepoDigest>,
    layer_links: Vec<RepoDigest>,
}

/// The blob behind a link state, if the link reads and its blob is a regular file.
fn resolves(inv: &Inventory, state: &LinkState) -> Result<Option<Digest>, String> {
    match state {
        LinkState::Ok(d) => Ok(inv.blob(d).map(|_| d.clone())),
        LinkState::Absent | LinkState::NotFile => Ok(None),
        other => Err(other.read_error().unwrap_or_default()),
    }
}

impl Marker<'_> {
    /// `linkedBlobStatter.Stat` for a manifest digest: via the revision link (2.8 also via the
    /// 2.1-era `_layers` link); Ok(None) = unknown (skipped), Err = read error (abort).
    fn manifest_target(&self, repo: &Repo, d: &Digest) -> Result<Option<Digest>, String> {
        let via_revision = match repo.revision(d) {
            Some(l) => resolves(self.inv, &l.state())?,
            None => None,
        };
        let revision_present = repo.revision(d).is_some_and(|l| !l.is_absent());
        if via_revision.is_some() || revision_present || self.version == Version::V3 {
            return Ok(via_revision);
        }
        match repo.layer(d) {
            Some(l) => resolves(self.inv, &l.state()),
            None => Ok(None),
        }
    }

    fn tags_name(&self, repo: &Repo, d: &Digest) -> Result<bool, Stop> {
        let Some(lookup) = &self.tags else {
            return Ok(false);
        };
        match &lookup.error {
            Some((tag, e)) => Err(abort(
                format!("{MARK}filesystem: failed to retrieve tags for digest {d}: {e}"),
                Some(layout::tag_current_link(&repo.name, tag)),
            )),
            None => Ok(lookup.targets.contains(d)),
        }
    }

    fn get(
        &self,
        repo: &Repo,
        d: &Digest,
        target: &Digest,
    ) -> Result<&crate::model::manifest::Manifest, Stop> {
        let path = Some(layout::blob_data(target));
        match self.inv.manifest(target) {
            Some(Ok(m)) if m.kind == Kind::Schema1 && self.version == Version::V3 => Err(abort(
                format!("{MARK}filesystem: failed to retrieve manifest for digest {d}: unrecognized manifest schema version 1"),
                path,
            )),
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) if e.gc == GcFailure::Panic => Err(Stop::Panic(Abort {
                reason: format!(
                    "panic: interface conversion: distribution.Manifest is nil, not *{}",
                    match self.version {
                        Version::V2_8 => "manifestlist.DeserializedManifestList",
                        Version::V3 => "ocischema.DeserializedImageIndex",
                    }
                ),
                path,
            })),
            Some(Err(e)) => Err(abort(
                format!("{MARK}filesystem: failed to retrieve manifest for digest {d}: {}", e.reason),
                path,
            )),
            None => Err(abort(
                format!("{MARK}filesystem: failed to retrieve manifest for digest {d}: unknown blob ({})", repo.name),
                path,
            )),
        }
    }

    /// 3.x `markManifestReferences`: mark new references and recurse into those that exist as
    /// manifests of this repository.
    fn mark_references(&mut self, repo: &Repo, d: &Digest, target: &Digest) -> Result<(), Stop> {
        let refs: Vec<Digest> = self
            .get(repo, d, target)?
            .refs
            .iter()
            .map(|r| r.digest.clone())
            .collect();
        for r in refs {
            if !self.marked.insert(&r) {
                continue;
            }
            if let Ok(Some(t)) = self.manifest_target(repo, &r) {
                self.mark_references(repo, &r, &t)?;
            }
        }
        Ok(())
    }

    fn ingest(&mut self, repo: &Repo, d: &Digest, target: &Digest) -> Result<(), Stop> {
        if self.delete_untagged && !self.tags_name(repo, d)? {
            if !repo.has_tags {
                if self.version == Version::V2_8 {
                    return Err(abort(
                        format!(
                            "{MARK}filesystem: failed to retrieve tags unknown repository name={}",
                            repo.name
                        ),
                        Some(layout::tags_dir(&repo.name)),
                    ));
                }
                // 3.x: "manifest tags path ... does not exist": neither marked nor queued.
                return Ok(());
            }
            self.queued.push(RepoDigest {
                repo: repo.name.clone(),
                digest: d.clone(),
            });
            return Ok(());
        }
        self.marked.insert(d);
        match self.version {
            Version::V2_8 => {
                let refs: Vec<Digest> = self
                    .get(repo, d, target)?
                    .refs
                    .iter()
                    .map(|r| r.digest.clone())
                    .collect();
                for r in &refs {
                    self.marked.insert(r);
                }
                Ok(())
            }
            Version::V3 => self.mark_references(repo, d, target),
        }
    }

    fn mark_repo(&mut self, name: &str) -> Result<(), Stop> {
        if layout::repo_name_problem(name).is_some() {
            return Err(abort(
                format!("{MARK}failed to parse repo name {name}: invalid reference format"),
                Some(layout::repo_dir(name)),
            ));
        }
        let empty = Repo::default();
        let repo = self.inv.repo(name).unwrap_or(&empty);
        self.tags = self.delete_untagged.then(|| TagLookup::of(repo));
        // Every file named `link` under revisions, in path order. Regular links are already in
        // path order (their folders' digest order), so paths are built only to interleave the
        // rare odd links and to name an abort.
        let mut links: Vec<Walked> = repo
            .revisions
            .iter()
            .filter(|l| !l.is_absent())
            .map(Walked::Regular)
            .chain(repo.odd_revision_links.iter().map(Walked::Odd))
            .collect();
        if !repo.odd_revision_links.is_empty() {
            links.sort_by_cached_key(|w| w.path(name, layout::revision_link));
        }
        for w in links {
            let path = || w.path(name, layout::revision_link);
            let Some(d) = walked_link(&w.state(), path)? else {
                continue;
            };
            match self.manifest_target(repo, &d) {
                Ok(Some(target)) => self.ingest(repo, &d, &target)?,
                Ok(None) => {}
                Err(e) => return Err(abort(format!("{MARK}filesystem: {e}"), Some(path()))),
            }
        }
        if self.version == Version::V3 {
            if !repo.has_layers {
                return Err(abort(
                    format!("{MARK}filesystem: Path not found: /docker/registry/v2/repositories/{name}/_layers"),
                    Some(layout::layers_dir(name)),
                ));
            }
            let layer_links = repo
                .layers
                .iter()
                .map(Walked::Regular)
                .chain(repo.odd_layer_links.iter().map(Walked::Odd));
            for w in layer_links {
                let path = || w.path(name, layout::layer_link);
                let Some(d) = walked_link(&w.state(), path)? else {
                    continue;
                };
                // Stat through the layer link of the content digest; a missing blob is skipped.
                let known = match repo.layer(&d) {
                    Some(l) => resolves(self.inv, &l.state())
                        .map_err(|e| abort(format!("{MARK}filesystem: {e}"), Some(path())))?,
                    None => None,
                };
                if known.is_some() && !self.marked.contains(&d) {
                    self.layer_links.push(RepoDigest {
                        repo: name.to_string(),
                        digest: d,
                    });
                }
            }
        }
        Ok(())
    }
}

/// A `link` file a GC walk meets: one in the grammar, or an odd one with its own path.
#[derive(Clone, Copy)]
enum Walked<'a> {
    Regular(&'a Link),
    Odd(&'a OddLink),
}

impl Walked<'_> {
    fn state(&self) -> std::borrow::Cow<'_, LinkState> {
        match self {
            Walked::Regular(l) => l.state(),
            Walked::Odd(o) => std::borrow::Cow::Borrowed(&o.state),
        }
    }

    fn path(&self, repo: &str, regular: fn(&str, &Digest) -> String) -> String {
        match self {
            Walked::Regular(l) => regular(repo, &l.path_digest),
            Walked::Odd(o) => o.path.clone(),
        }
    }
}

/// A `link` file met by a GC walk: its digest, nothing (no file to read), or the abort its
/// unreadable content causes.
fn walked_link(state: &LinkState, path: impl Fn() -> String) -> Result<Option<Digest>, Stop> {
    match state {
        LinkState::Ok(d) => Ok(Some(d.clone())),
        LinkState::Absent | LinkState::NotFile => Ok(None),
        other => Err(abort(
            format!(
                "{MARK}filesystem: {}",
                other.read_error().unwrap_or_default()
            ),
            Some(path()),
        )),
    }
}

/// go's `digestFromPath` on a v2-relative `.../data` path.
fn digest_from_path(path: &str) -> Result<Digest, Stop> {
    let trimmed = path.strip_suffix("/data").unwrap_or(path);
    let parts: Vec<&str> = trimmed.split('/').collect();
    let hex = parts.last().copied().unwrap_or("");
    let next = if parts.len() >= 2 {
        parts[parts.len() - 2]
    } else {
        ""
    };
    let fail = |e: &str| {
        abort(
            format!("error enumerating blobs: filesystem: {e}"),
            Some(path.to_string()),
        )
    };
    if hex.len() < 2 || !hex.is_char_boundary(2) {
        return Err(Stop::Panic(Abort {
            reason: format!(
                "panic: runtime error: slice bounds out of range [:2] with length {}",
                hex.len()
            ),
            path: Some(path.to_string()),
        }));
    }
    let algo = if next == &hex[..2] {
        if parts.len() >= 3 {
            parts[parts.len() - 3]
        } else {
            ""
        }
    } else {
        next
    };
    let text = format!("{algo}:{hex}");
    match Digest::parse(&text) {
        Ok(d) => Ok(d),
        Err(e) => Err(fail(e.registry_message())),
    }
}

fn run(
    inv: &Inventory,
    version: Version,
    delete_untagged: bool,
) -> (Marker<'_>, Option<Stop>, Vec<(Digest, u64)>) {
    let mut m = Marker {
        inv,
        version,
        delete_untagged,
        marked: Marks::new(inv),
        tags: None,
        queued: Vec::new(),
        layer_links: Vec::new(),
    };
    if !inv.has_repositories_dir {
        let stop = abort(
            format!("{MARK}Path not found: /docker/registry/v2/repositories"),
            Some("repositories".into()),
        );
        return (m, Some(stop), Vec::new());
    }
    for name in walk::repositories(inv, version) {
        if let Err(stop) = m.mark_repo(&name) {
            m.queued.clear();
            return (m, Some(stop), Vec::new());
        }
    }
    if version == Version::V3 {
        let marked = &m.marked;
        m.queued.retain(|q| !marked.contains(&q.digest));
    }
    if !inv.has_blobs_dir {
        let stop = abort(
            "error enumerating blobs: filesystem: Path not found: /docker/registry/v2/blobs".into(),
            Some("blobs".into()),
        );
        return (m, Some(stop), Vec::new());
    }
    let mut candidates: Vec<(Digest, u64)> = Vec::new();
    for e in &inv.entries {
        if let EntryKind::BlobPath {
            fault: BlobFault::BadPath,
            size,
        } = &e.kind
        {
            match digest_from_path(&e.path) {
                Ok(d) => candidates.push((d, size.unwrap_or(0))),
                Err(stop) => return (m, Some(stop), Vec::new()),
            }
        }
    }
    // Blobs are looked up by index, not by digest: the sweep touches every blob of the store.
    let mut eligible: Vec<(Digest, u64)> = candidates
        .into_iter()
        .filter(|(d, _)| !m.marked.contains(d))
        .collect();
    eligible.extend(
        inv.blobs
            .iter()
            .enumerate()
            .filter(|(i, _)| !m.marked.blobs.contains(*i))
            .map(|(_, b)| (b.digest.clone(), b.size)),
    );
    // A malformed path can name the digest of a real blob: each digest is deleted (and freed) once.
    eligible.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    eligible.dedup_by(|a, b| a.0 == b.0);
    (m, None, eligible)
}

/// Predict one version and mode.
pub fn predict(inv: &Inventory, version: Version, delete_untagged: bool) -> Prediction {
    let (m, stop, eligible) = run(inv, version, delete_untagged);
    let freed_bytes = eligible.iter().map(|(_, s)| s).sum();
    let eligible_blobs: Vec<Digest> = eligible.into_iter().map(|(d, _)| d).collect();
    let mut eligible_manifests = m.queued.clone();
    eligible_manifests.sort();
    eligible_manifests.dedup();
    let mut layer_links_deleted = if stop.is_none() {
        m.layer_links.clone()
    } else {
        Vec::new()
    };
    layer_links_deleted.sort();
    let visible: std::collections::HashSet<String> =
        walk::repositories(inv, version).into_iter().collect();
    let invisible_repos = inv
        .repos
        .iter()
        .filter(|r| !r.revisions.is_empty() && !visible.contains(&r.name))
        .map(|r| r.name.clone())
        .collect();
    let (abort, panic) = match stop {
        None => (None, false),
        Some(Stop::Abort(a)) => (Some(a), false),
        Some(Stop::Panic(a)) => (Some(a), true),
    };
    Prediction {
        registry_version: version,
        delete_untagged,
        abort,
        panic,
        eligible_blobs,
        eligible_manifests,
        freed_bytes,
        layer_links_deleted,
        invisible_repos,
    }
}

/// All four predictions: 2.8 and 3.x, with and without `--delete-untagged`.
pub fn predict_all(inv: &Inventory) -> Vec<Prediction> {
    predict_each(inv, |p| p)
}

/// The four predictions, made in parallel, each handed to `f` as soon as it is made (so that a
/// caller needing less than the whole prediction does not hold all four at once).
fn predict_each<T: Send>(inv: &Inventory, f: impl Fn(Prediction) -> T + Sync) -> Vec<T> {
    use rayon::prelude::*;
    let runs: Vec<(Version, bool)> = Version::ALL
        .into_iter()
        .flat_map(|v| [(v, false), (v, true)])
        .collect();
    runs.into_par_iter()
        .map(|(v, m)| f(predict(inv, v, m)))
        .collect()
}

/// Why tagged data would go, as far as the inventory tells.
fn reasons(inv: &Inventory, p: &Prediction, hit_repos: &BTreeSet<String>) -> Vec<String> {
    let mut why = Vec::new();
    for r in &p.invisible_repos {
        why.push(format!("repository {r} is invisible to its catalog walk"));
    }
    if p.registry_version == Version::V2_8 {
        for e in &inv.entries {
            if e.kind == EntryKind::StrayUnderscore {
                why.push(format!(
                    "the file {} hides the repositories sorted after it",
                    e.path
                ));
            }
        }
    }
    if p.delete_untagged {
        for name in hit_repos {
            let Some(repo) = inv.repo(name) else { continue };
            if p.registry_version == Version::V2_8
                && repo
                    .tags
                    .iter()
                    .filter_map(|t| t.current.digest())
                    .any(|d| matches!(inv.manifest(d), Some(Ok(m)) if m.kind.is_index()))
            {
                why.push(format!(
                    "{name} holds multi-arch images whose untagged children 2.8 deletes"
                ));
            }
            if p.registry_version == Version::V3 && !repo.has_tags {
                why.push(format!(
                    "{name} has no tags folder, so 3.x sweeps its manifests' blobs"
                ));
            }
        }
    }
    if why.is_empty() {
        why.push("a manifest they belong to is not marked".into());
    }
    why
}

/// `gc-would-abort` and `gc-would-delete-tagged` for every version and mode.
///
/// With `child_trap = false` (what `check` uses), data lost *only* because 2.8's
/// `--delete-untagged` deletes the untagged children of tagged indexes is left to the
/// `revision-untagged-child` warnings, so that a healthy multi-arch store has no error; `regfsck gc`
/// passes `true`, because there the operator asks about running exactly that mode.
pub fn hazards(inv: &Inventory, child_trap: bool) -> Vec<Finding> {
    let reach = crate::analysis::reach::compute(inv);
    hazards_streamed(inv, &reach, child_trap)
}

/// Blobs reachable from index children that no tag names directly.
fn child_reachable(inv: &Inventory, reach: &crate::analysis::reach::Reach) -> BlobSet {
    let mut out = BlobSet::with_len(inv.blobs.len());
    let mut mark = |d: &Digest| {
        if let Some(i) = inv.blob_index(d) {
            out.insert(i);
        }
    };
    for (repo, rr) in inv.repos.iter().zip(&reach.repos) {
        for (d, class) in rr.live(repo) {
            if class != crate::analysis::reach::RevisionClass::TaggedChild {
                continue;
            }
            mark(d);
            if let Some(Ok(m)) = inv.manifest(d) {
                m.refs.iter().for_each(|r| mark(&r.digest));
            }
        }
    }
    out
}

pub fn hazards_with(
    inv: &Inventory,
    reach: &crate::analysis::reach::Reach,
    predictions: &[Prediction],
    child_trap: bool,
) -> Vec<Finding> {
    let children = child_reachable(inv, reach);
    let mut out = Vec::new();
    for p in predictions {
        hazards_of(inv, reach, &children, p, child_trap, &mut out);
    }
    out
}

/// `hazards_with` over all four predictions, each dropped as soon as it is judged: a prediction
/// lists every eligible blob and manifest, and `check` needs only the hazards.
pub fn hazards_streamed(
    inv: &Inventory,
    reach: &crate::analysis::reach::Reach,
    child_trap: bool,
) -> Vec<Finding> {
    let children = child_reachable(inv, reach);
    predict_each(inv, |p| {
        let mut out = Vec::new();
        hazards_of(inv, reach, &children, &p, child_trap, &mut out);
        out
    })
    .into_iter()
    .flatten()
    .collect()
}

fn hazards_of(
    inv: &Inventory,
    reach: &crate::analysis::reach::Reach,
    children: &BlobSet,
    p: &Prediction,
    child_trap: bool,
    out: &mut Vec<Finding>,
) {
    if let Some(a) = &p.abort {
        let what = if p.panic { "panic" } else { "abort" };
        let msg = format!("{} would {what}: {}", p.label(), a.reason);
        out.push(match &a.path {
            Some(path) => Finding::new(Code::GcWouldAbort, path, msg),
            None => Finding::global(Code::GcWouldAbort, msg),
        });
        return;
    }
    // Without the child trap, losses explained by revision-untagged-child do not count.
    let excuse_children = !child_trap && p.registry_version == Version::V2_8 && p.delete_untagged;
    // Only blobs can be reachable from tags, so a bit per blob tells everything.
    let mut eligible = BlobSet::with_len(inv.blobs.len());
    for i in p.eligible_blobs.iter().filter_map(|d| inv.blob_index(d)) {
        if !(excuse_children && children.contains(i)) {
            eligible.insert(i);
        }
    }
    let mut hit_repos = BTreeSet::new();
    let mut hit_blobs = BTreeSet::new();
    for (repo, rr) in inv.repos.iter().zip(&reach.repos) {
        for &i in &rr.blobs_tagged {
            if eligible.contains(i as usize) {
                hit_repos.insert(repo.name.clone());
                hit_blobs.insert(i);
            }
        }
        // Eligible manifests are sorted by repository: this one's are a contiguous run.
        let from = p
            .eligible_manifests
            .partition_point(|q| q.repo.as_str() < repo.name.as_str());
        let run = p.eligible_manifests[from..]
            .iter()
            .take_while(|q| q.repo == repo.name);
        for q in run {
            let class = rr.class(repo, &q.digest);
            let child = class == Some(crate::analysis::reach::RevisionClass::TaggedChild);
            if class.is_some_and(|c| c != crate::analysis::reach::RevisionClass::Untagged)
                && !(child && excuse_children)
            {
                hit_repos.insert(repo.name.clone());
            }
        }
    }
    if hit_repos.is_empty() {
        return;
    }
    let why = reasons(inv, p, &hit_repos);
    let first = hit_repos.iter().next().cloned().unwrap_or_default();
    out.push(
        Finding::new(
            Code::GcWouldDeleteTagged,
            layout::repo_dir(&first),
            format!(
                "{} would delete {} blobs reachable from tags of {}: {}",
                p.label(),
                hit_blobs.len(),
                hit_repos.iter().cloned().collect::<Vec<_>>().join(", "),
                why.join("; ")
            ),
        )
        .repo(first),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_path_like_go() {
        let hex = "ab".repeat(32);
        assert!(digest_from_path(&format!("blobs/sha256/ab/{hex}/data")).is_ok());
        // Missing fan-out: still a valid digest.
        assert!(digest_from_path(&format!("blobs/sha256/{hex}/data")).is_ok());
        match digest_from_path(&format!("blobs/sha256/zz/{hex}/data")) {
            Err(Stop::Abort(a)) => assert!(
                a.reason.ends_with("unsupported digest algorithm"),
                "{}",
                a.reason
            ),
            _ => panic!("wrong fan-out must abort"),
        }
        assert!(matches!(
            digest_from_path("blobs/sha256/ab/x/data"),
            Err(Stop::Panic(_))
        ));
        match digest_from_path("blobs/sha256/ab/nothex/data") {
            Err(Stop::Abort(a)) => assert!(
                a.reason.contains("unsupported digest algorithm"),
                "{}",
                a.reason
            ),
            _ => panic!(),
        }
    }
}

//! Predicts exactly what the registry's own `garbage-collect [--delete-untagged]` does to a
//! store, for registry 2.8 (registry:2, Debian's docker-registry) and 3.x (registry:3), and turns
//! the dangerous outcomes into `gc-would-abort` / `gc-would-delete-tagged` / `gc-cannot-predict`
//! findings. Pure.
//!
//! Semantics (registry-storage.md §3, verified against the real 2.8.2 binary by the differential
//! tests in `tests/gc_oracle.rs`):
//! - mark walks the repositories the version's catalog walk sees (`walk`), enumerates every file
//!   named `link` under `_manifests/revisions` (an unreadable one aborts; one whose target
//!   revision or blob is missing is skipped), optionally looks up tags (`-m`), marks the manifest
//!   and its references (2.8: one level; 3.x: recursing into child manifests that exist in the
//!   repository), and on 3.x also enumerates `_layers` (missing folder aborts) — `mark`;
//! - 3.x then keeps every queued untagged manifest whose digest is marked anywhere;
//! - sweep enumerates every file named `data` under `blobs/` (`digestFromPath`: a malformed path
//!   aborts, a hex shorter than two bytes panics) and deletes what is unmarked — `sweep`.
//!
//! The registry follows symbolic links everywhere; regfsck never does, but the scanner resolved
//! each one without following it, and `fs` reads through them as the registry would. Where that
//! is not enough (a link out of the store, a special file, a path regfsck could not read), the
//! prediction says it cannot predict, with the paths, instead of guessing.
//!
//! When a run aborts, `eligible_blobs` is empty (the dry-run prints none), and
//! `eligible_manifests` holds what a real run would already have deleted: nothing when the
//! abort happens during mark, the queued manifests when it happens during the blob sweep.

mod fs;
mod mark;
mod sweep;
mod walk;

use crate::analysis::reach::BlobSet;
use crate::model::digest::{Digest, DigestSet};
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{EntryKind, Inventory};
use crate::model::layout;
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

/// Why regfsck will not say what a run does: something the run reads could not be read, or a
/// symbolic link leads where regfsck does not follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CannotPredict {
    pub reason: String,
    /// Relative to v2: the paths responsible.
    pub paths: Vec<String>,
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
    /// Set when regfsck cannot predict this run; everything else is then empty.
    pub cannot_predict: Option<CannotPredict>,
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
    Unknown(CannotPredict),
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

/// Unreadable paths this run reads: it cannot be predicted. (Run by the same user, the real GC
/// aborts on the permission error; run by one who can read them, it may delete what regfsck
/// cannot see.)
fn unreadable(inv: &Inventory, delete_untagged: bool) -> Option<CannotPredict> {
    let blind = crate::analysis::unread::Blind::of(inv);
    let paths = blind.gc(delete_untagged);
    (!paths.is_empty()).then(|| CannotPredict {
        reason: format!(
            "regfsck could not read {} (garbage-collect run by a user who cannot read them either aborts on the permission error; run by one who can, it may delete what regfsck could not see)",
            crate::analysis::unread::list(&paths, 5)
        ),
        paths,
    })
}

/// A symbolic link in place of `repositories/` or `blobs/` themselves.
fn top_symlink(inv: &Inventory) -> Option<CannotPredict> {
    ["repositories", "blobs"].into_iter().find_map(|top| {
        inv.symlink(top)
            .filter(|s| s.target != crate::model::inventory::SymlinkTarget::Dangling)
            .map(|s| {
                fs::unknown(
                    format!(
                        "{top} is a symbolic link (to {}) the registry follows",
                        s.text
                    ),
                    &s.path,
                )
            })
    })
}

struct Run<'a> {
    marker: mark::Marker<'a>,
    stop: Option<Stop>,
    eligible: Vec<(Digest, u64)>,
    visits: Vec<walk::Visit>,
}

fn run(inv: &Inventory, version: Version, delete_untagged: bool) -> Run<'_> {
    let mut r = Run {
        marker: mark::Marker {
            inv,
            version,
            delete_untagged,
            marked: Marks::new(inv),
            queued: Vec::new(),
            layer_links: Vec::new(),
        },
        stop: None,
        eligible: Vec::new(),
        visits: Vec::new(),
    };
    if let Some(c) = unreadable(inv, delete_untagged).or_else(|| top_symlink(inv)) {
        r.stop = Some(Stop::Unknown(c));
        return r;
    }
    if !inv.has_repositories_dir {
        r.stop = Some(abort(
            format!("{MARK}Path not found: /docker/registry/v2/repositories"),
            Some("repositories".into()),
        ));
        return r;
    }
    let (visits, walk_stop) = walk::repositories(inv, version);
    for v in &visits {
        if let Err(stop) = r.marker.mark_repo(v) {
            r.marker.queued.clear();
            r.stop = Some(stop);
            r.visits = visits;
            return r;
        }
    }
    r.visits = visits;
    if let Some(stop) = walk_stop {
        r.marker.queued.clear();
        r.stop = Some(stop);
        return r;
    }
    if version == Version::V3 {
        let marked = &r.marker.marked;
        r.marker.queued.retain(|q| !marked.contains(&q.digest));
    }
    if !inv.has_blobs_dir {
        r.stop = Some(abort(
            "error enumerating blobs: filesystem: Path not found: /docker/registry/v2/blobs".into(),
            Some("blobs".into()),
        ));
        return r;
    }
    let fsys = fs::Fs { inv, links: 0 };
    let candidates = match sweep::candidates(inv, &fsys) {
        Ok(c) => c,
        Err(stop) => {
            r.stop = Some(stop);
            return r;
        }
    };
    let m = &r.marker.marked;
    // Blobs are looked up by index, not by digest: the sweep touches every blob of the store.
    let mut eligible: Vec<(Digest, u64)> = candidates
        .into_iter()
        .filter(|(d, _)| !m.contains(d))
        .collect();
    eligible.extend(
        inv.blobs
            .iter()
            .enumerate()
            .filter(|(i, _)| !m.blobs.contains(*i))
            .map(|(_, b)| (b.digest.clone(), b.size)),
    );
    // A malformed path can name the digest of a real blob: each digest is deleted (and freed) once.
    eligible.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    eligible.dedup_by(|a, b| a.0 == b.0);
    r.eligible = eligible;
    r
}

/// Predict one version and mode.
pub fn predict(inv: &Inventory, version: Version, delete_untagged: bool) -> Prediction {
    let r = run(inv, version, delete_untagged);
    let visible: std::collections::HashSet<&str> =
        r.visits.iter().map(|v| v.real.as_str()).collect();
    let walked = !matches!(r.stop, Some(Stop::Unknown(_)));
    let invisible_repos = inv
        .repos
        .iter()
        .filter(|x| walked && !x.revisions.is_empty() && !visible.contains(x.name.as_str()))
        .map(|x| x.name.clone())
        .collect();
    let (mut abort, panic, cannot_predict) = match r.stop {
        None => (None, false, None),
        Some(Stop::Abort(a)) => (Some(a), false, None),
        Some(Stop::Panic(a)) => (Some(a), true, None),
        Some(Stop::Unknown(c)) => (None, false, Some(c)),
    };
    if inv.object_store {
        // The s3 driver names itself in the errors the base driver wraps: `s3aws: …` where the
        // filesystem driver says `filesystem: …` (the emulation models the latter).
        if let Some(a) = &mut abort {
            a.reason = a.reason.replace("filesystem: ", "s3aws: ");
        }
    }
    let known = cannot_predict.is_none();
    let freed_bytes = r.eligible.iter().map(|(_, s)| s).sum();
    let eligible_blobs: Vec<Digest> = r.eligible.into_iter().map(|(d, _)| d).collect();
    let mut eligible_manifests = if known { r.marker.queued } else { Vec::new() };
    eligible_manifests.sort();
    eligible_manifests.dedup();
    let mut layer_links_deleted = if abort.is_none() && known {
        r.marker.layer_links
    } else {
        Vec::new()
    };
    layer_links_deleted.sort();
    Prediction {
        registry_version: version,
        delete_untagged,
        abort,
        panic,
        cannot_predict,
        eligible_blobs,
        eligible_manifests,
        freed_bytes,
        layer_links_deleted,
        invisible_repos,
    }
}

/// The repositories (real folder names below `repositories/`) that this version's catalog walk
/// reaches — what `/v2/_catalog` lists, since the registry's catalog and its GC share the walk
/// (2.8 marks a repository by `_layers`, 3.x by `_manifests`). `None` when the walk cannot be
/// replayed (a symbolic link regfsck does not follow, an unreadable folder).
pub fn catalog(inv: &Inventory, version: Version) -> Option<BTreeSet<String>> {
    let (visits, stop) = walk::repositories(inv, version);
    if matches!(stop, Some(Stop::Unknown(_))) {
        return None;
    }
    Some(visits.into_iter().map(|v| v.real).collect())
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
fn reasons(
    inv: &Inventory,
    reach: &crate::analysis::reach::Reach,
    p: &Prediction,
    hit_repos: &BTreeSet<String>,
) -> Vec<String> {
    let mut why = Vec::new();
    for (repo, rr) in inv.repos.iter().zip(&reach.repos) {
        if hit_repos.contains(&repo.name) && !rr.fallback.is_empty() {
            why.push(format!(
                "{} has manifests without a revision link (served by registry 2.8 through _layers only), which garbage-collect never marks",
                repo.name
            ));
        }
    }
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
    if let Some(c) = &p.cannot_predict {
        let msg = format!("cannot predict {}: {}", p.label(), c.reason);
        out.push(match c.paths.first() {
            Some(path) => Finding::new(Code::GcCannotPredict, path, msg),
            None => Finding::global(Code::GcCannotPredict, msg),
        });
        return;
    }
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
    let why = reasons(inv, reach, p, &hit_repos);
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

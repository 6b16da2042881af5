//! Cleanup plans: `rm`, `prune` and `gc --apply` as plans of `quarantine` actions for the one
//! journalled applier (same journal, same quarantine, same `undo --run ID` as repair). Pure: the
//! selections come from `analysis::retention` and `analysis::protect`; this module turns them into
//! paths, in an order where no action's path lies inside another's (a quarantined folder would
//! otherwise swallow a later action's quarantine copy).
//!
//! What goes, path by path:
//! - a tag: its folder `_manifests/tags/<t>` (current link and history; the revision stays);
//! - a revision: its folder `_manifests/revisions/<alg>/<hex>` and, in the tags that stay, the
//!   history entries `tags/<t>/index/<alg>/<hex>` naming it (as the registry's GC removes them);
//! - a repository: its folder, or only its `_layers`, `_manifests` and `_uploads` when other
//!   repositories are nested below it; a parent folder that then holds nothing goes with it;
//! - a blob (`gc`): its folder `blobs/<alg>/<fan>/<hex>` (as the registry's GC deletes it), and
//!   every `_layers/<alg>/<hex>` link naming a blob that is then gone (as registry 3 does).

use super::{simulate, Action, ActionKind, Plan, PLAN_SCHEMA};
use crate::analysis::protect::{self, Proposal, Protection};
use crate::analysis::reach::{self, RevisionClass};
use crate::analysis::retention::RepoDecision;
use crate::model::digest::Digest;
use crate::model::inventory::{EntryType, Inventory, Repo};
use crate::model::layout;
use crate::model::pushed::PushTimes;
use std::collections::{BTreeMap, BTreeSet};

/// Action codes of the cleanup commands (kebab-case, like finding codes, but not findings).
pub const RM_TAG: &str = "rm-tag";
pub const RM_REVISION: &str = "rm-revision";
pub const RM_REPOSITORY: &str = "rm-repository";
pub const PRUNE_TAG: &str = "prune-tag";
pub const PRUNE_REVISION: &str = "prune-revision";
pub const PRUNE_EMPTY: &str = "prune-empty";
pub const GC_REVISION: &str = "gc-untagged";
pub const GC_BLOB: &str = "gc-blob";
pub const GC_LAYER_LINK: &str = "gc-layer-link";

fn quarantine(path: String, code: &str, reason: String, evidence: Vec<String>) -> Action {
    Action {
        kind: ActionKind::Quarantine { path },
        code: code.to_string(),
        reason,
        lossy: false,
        evidence,
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// `_manifests/revisions/<alg>/<hex>`.
fn revision_dir(repo: &str, d: &Digest) -> String {
    parent(&layout::revision_link(repo, d)).to_string()
}

/// `_manifests/tags/<t>/index/<alg>/<hex>`.
fn tag_index_dir(repo: &str, tag: &str, d: &Digest) -> String {
    parent(&layout::tag_index_link(repo, tag, d)).to_string()
}

/// A plan from actions: one action per path, none inside another's folder, order kept.
pub fn finish(command: &str, actions: Vec<Action>) -> Plan {
    let quarantined: BTreeSet<String> = actions.iter().map(|a| a.kind.path().to_string()).collect();
    let mut seen = BTreeSet::new();
    let actions = actions
        .into_iter()
        .filter(|a| {
            let p = a.kind.path();
            let mut up = parent(p);
            while !up.is_empty() {
                if quarantined.contains(up) {
                    return false;
                }
                up = parent(up);
            }
            seen.insert(p.to_string())
        })
        .collect();
    Plan {
        schema: PLAN_SCHEMA.to_string(),
        command: Some(command.to_string()),
        actions,
    }
}

/// Actions removing `tags` and `revisions` of `repo`, with the given codes and reasons.
fn removals(
    repo: &Repo,
    tags: &BTreeMap<String, String>,
    revisions: &BTreeMap<Digest, String>,
    codes: (&str, &str),
) -> Vec<Action> {
    let mut out = Vec::new();
    let evidence = vec![layout::manifests_dir(&repo.name)];
    for (t, why) in tags {
        out.push(quarantine(
            layout::tag_dir(&repo.name, t),
            codes.0,
            format!("tag {}:{t}: {why}", repo.name),
            Vec::new(),
        ));
    }
    for (d, why) in revisions {
        out.push(quarantine(
            revision_dir(&repo.name, d),
            codes.1,
            format!("revision {}@{d}: {why}", repo.name),
            evidence.clone(),
        ));
        for t in repo.tags.iter().filter(|t| !tags.contains_key(&t.name)) {
            if t.index.iter().any(|l| &l.path_digest == d) {
                out.push(quarantine(
                    tag_index_dir(&repo.name, &t.name, d),
                    codes.1,
                    format!(
                        "history entry of tag {}:{} for the removed revision {d}",
                        repo.name, t.name
                    ),
                    evidence.clone(),
                ));
            }
        }
    }
    out
}

/// Folders (relative to `repositories/`) that removing the repositories `gone` leaves with
/// nothing in them, topmost only; repositories with others nested below them are listed
/// separately (only their `_` folders can go).
fn repo_folders(inv: &Inventory, gone: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let tree: BTreeMap<&str, &Vec<(String, EntryType)>> = inv
        .tree
        .iter()
        .map(|d| (d.path.as_str(), &d.children))
        .collect();
    let join = |dir: &str, name: &str| {
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    };
    let mut whole: BTreeSet<String> = BTreeSet::new();
    let mut nested = Vec::new();
    for r in gone {
        match tree.get(r.as_str()) {
            Some(children) if children.iter().all(|(n, _)| n.starts_with('_')) => {
                whole.insert(r.clone());
            }
            _ => nested.push(r.clone()),
        }
    }
    // Parents left empty, deepest first.
    let mut dirs: Vec<&str> = tree.keys().copied().filter(|p| !p.is_empty()).collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for d in dirs {
        if whole.contains(d) {
            continue;
        }
        let children = tree[d];
        if !children.is_empty()
            && children
                .iter()
                .all(|(n, t)| *t == EntryType::Dir && whole.contains(&join(d, n)))
            && !gone_has_nested_below(&nested, d)
        {
            whole.insert(d.to_string());
        }
    }
    let top: Vec<String> = whole
        .iter()
        .filter(|p| {
            let mut up = parent(p);
            while !up.is_empty() {
                if whole.contains(up) {
                    return false;
                }
                up = parent(up);
            }
            true
        })
        .cloned()
        .collect();
    (top, nested)
}

fn gone_has_nested_below(nested: &[String], d: &str) -> bool {
    nested
        .iter()
        .any(|n| n == d || n.starts_with(&format!("{d}/")))
}

/// Actions removing whole repositories.
fn repo_removals(inv: &Inventory, gone: &BTreeMap<String, String>, code: &str) -> Vec<Action> {
    let names: BTreeSet<String> = gone.keys().cloned().collect();
    let (top, nested) = repo_folders(inv, &names);
    let mut out = Vec::new();
    for dir in top {
        let why = match gone.get(&dir) {
            Some(w) => format!("repository {dir}: {w}"),
            None => format!("folder {dir}: holds nothing once the repositories in it are removed"),
        };
        out.push(quarantine(
            format!("repositories/{dir}"),
            code,
            why,
            vec![format!("repositories/{dir}")],
        ));
    }
    for r in nested {
        let Some(repo) = inv.repo(&r) else { continue };
        let why = &gone[&r];
        for (has, path) in [
            (repo.has_layers, layout::layers_dir(&r)),
            (repo.has_manifests, layout::manifests_dir(&r)),
            (repo.has_uploads, layout::uploads_dir(&r)),
        ] {
            if has {
                out.push(quarantine(
                    path,
                    code,
                    format!("repository {r} (other repositories are nested below it): {why}"),
                    Vec::new(),
                ));
            }
        }
    }
    out
}

/// One `REF` of `regfsck rm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    Repo(String),
    Tag(String, String),
    Digest(String, Digest),
}

impl Ref {
    /// `REPO`, `REPO:TAG` or `REPO@DIGEST`; names are validated against the registry's grammar.
    pub fn parse(text: &str) -> Result<Ref, String> {
        let bad = |why: &str| {
            format!("{text:?} is not a reference ({why}; use REPO, REPO:TAG or REPO@DIGEST)")
        };
        let check_repo = |r: &str| match layout::repo_name_problem(r) {
            Some(p) => Err(bad(p)),
            None => Ok(r.to_string()),
        };
        if let Some((r, d)) = text.split_once('@') {
            let d = Digest::parse(d).map_err(|e| bad(&format!("bad digest: {e}")))?;
            return Ok(Ref::Digest(check_repo(r)?, d));
        }
        // A tag follows the last `:` after the last `/` (a repository name has no `:`).
        let last = text.rsplit('/').next().unwrap_or(text);
        if let Some((_, t)) = last.split_once(':') {
            let r = &text[..text.len() - t.len() - 1];
            if !layout::is_valid_tag(t) {
                return Err(bad("bad tag"));
            }
            return Ok(Ref::Tag(check_repo(r)?, t.to_string()));
        }
        Ok(Ref::Repo(check_repo(text)?))
    }
}

/// The plan of `regfsck rm`. Unknown references and digests a staying index still needs are
/// errors (nothing is planned then).
pub fn rm(inv: &Inventory, times: &PushTimes, refs: &[Ref]) -> Result<Plan, String> {
    let mut whole: BTreeMap<String, String> = BTreeMap::new();
    let mut per_repo: BTreeMap<String, Proposal> = BTreeMap::new();
    for r in refs {
        let name = match r {
            Ref::Repo(n) | Ref::Tag(n, _) | Ref::Digest(n, _) => n,
        };
        let Some(repo) = inv.repo(name) else {
            return Err(format!(
                "no repository {name} in the store (see regfsck ls)"
            ));
        };
        match r {
            Ref::Repo(_) => {
                whole.insert(name.clone(), "removed by rm".into());
            }
            Ref::Tag(_, t) => {
                if repo.tag(t).is_none() {
                    return Err(format!("no tag {name}:{t} in the store (see regfsck ls)"));
                }
                let p = per_repo.entry(name.clone()).or_default();
                p.tags.insert(t.clone());
                p.explicit_tags.insert(t.clone());
            }
            Ref::Digest(_, d) => {
                if !repo.revision(d).is_some_and(|l| l.names_own_folder()) {
                    return Err(format!(
                        "no revision {name}@{d} in the store (see regfsck ls)"
                    ));
                }
                let p = per_repo.entry(name.clone()).or_default();
                p.revisions.insert(d.clone());
                p.explicit_revisions.insert(d.clone());
                for t in repo.tags.iter().filter(|t| t.current.digest() == Some(d)) {
                    p.tags.insert(t.name.clone());
                    p.explicit_tags.insert(t.name.clone());
                }
            }
        }
    }
    let mut actions = Vec::new();
    for (name, mut p) in per_repo {
        if whole.contains_key(&name) {
            continue;
        }
        let repo = inv.repo(&name).expect("checked above");
        let wanted = p.explicit_revisions.clone();
        let settled = protect::settle(inv, repo, times, 0, 0, &mut p);
        for d in &wanted {
            if let Some(why) = settled.revisions.get(d) {
                let hint = match why {
                    Protection::NeededBy(ix) if ix != d => {
                        format!(" (remove the index {name}@{ix} first, or the tags that keep it)")
                    }
                    _ => String::new(),
                };
                return Err(format!(
                    "refusing to remove {name}@{d}: {}{hint}",
                    why.text()
                ));
            }
        }
        let tags = p
            .tags
            .iter()
            .map(|t| {
                let why = if p
                    .explicit_revisions
                    .iter()
                    .any(|d| repo.tag(t).and_then(|x| x.current.digest()) == Some(d))
                {
                    "removed with the revision it names"
                } else {
                    "removed by rm (the revision stays, untagged)"
                };
                (t.clone(), why.to_string())
            })
            .collect();
        let revs = p
            .revisions
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    "removed by rm, with every tag naming it".to_string(),
                )
            })
            .collect();
        actions.extend(removals(repo, &tags, &revs, (RM_TAG, RM_REVISION)));
    }
    actions.extend(repo_removals(inv, &whole, RM_REPOSITORY));
    Ok(finish("rm", actions))
}

/// The plan of `regfsck prune` from settled decisions; with `empty`, repositories the decisions
/// leave without any tag or revision go too (unless an upload is in them).
pub fn prune(inv: &Inventory, decisions: &[RepoDecision], empty: bool) -> Plan {
    let mut actions = Vec::new();
    let mut whole = BTreeMap::new();
    for dec in decisions {
        let Some(repo) = inv.repo(&dec.name) else {
            continue;
        };
        let tags: BTreeMap<String, String> = dec
            .removed_tags()
            .map(|t| (t.tag.clone(), t.rule.clone()))
            .collect();
        let revs: BTreeMap<Digest, String> = dec
            .removed_revisions()
            .map(|r| (r.digest.clone(), r.rule.clone()))
            .collect();
        let left_tags = repo.tags.iter().any(|t| !tags.contains_key(&t.name));
        let left_revs = repo
            .revisions
            .iter()
            .any(|l| l.target().is_some() && !revs.contains_key(&l.path_digest));
        let odd = !repo.odd_tags.is_empty()
            || !repo.odd_layer_links.is_empty()
            || !repo.odd_revision_links.is_empty();
        if empty && !left_tags && !left_revs && !odd && repo.uploads.is_empty() {
            whole.insert(
                repo.name.clone(),
                "holds no tag and no revision once pruned (--empty)".to_string(),
            );
            continue;
        }
        actions.extend(removals(repo, &tags, &revs, (PRUNE_TAG, PRUNE_REVISION)));
    }
    actions.extend(repo_removals(inv, &whole, PRUNE_EMPTY));
    finish("prune", actions)
}

/// Why regfsck will not sweep this store: what the verdict "unreferenced" would rest on that it
/// cannot read or does not follow.
pub fn gc_blockers(inv: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    for (d, why) in &inv.unreadable_manifests {
        out.push(format!(
            "manifest {d} could not be read ({why}): its references are unknown"
        ));
    }
    for repo in &inv.repos {
        for l in &repo.revisions {
            if let Some(t) = l.target() {
                if let Some(Err(e)) = inv.manifest(t) {
                    out.push(format!(
                        "revision {}@{t}: the manifest does not parse ({}): its references are unknown",
                        repo.name, e.reason
                    ));
                }
            }
        }
    }
    for s in &inv.symlinks {
        out.push(format!(
            "{} is a symbolic link (regfsck does not follow them)",
            s.path
        ));
    }
    out
}

/// Untagged revisions `gc --delete-untagged` removes: reachable from no tag, settled (children of
/// kept indexes, referrers of kept subjects and young ones stay).
pub fn gc_revisions(
    inv: &Inventory,
    reach: &reach::Reach,
    times: &PushTimes,
    now: i64,
    grace: i64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for (i, repo) in inv.repos.iter().enumerate() {
        let mut p = Proposal::default();
        for (d, class) in reach.repos[i].live(repo) {
            if class == RevisionClass::Untagged {
                p.revisions.insert(d.clone());
            }
        }
        if p.revisions.is_empty() {
            continue;
        }
        protect::settle(inv, repo, times, now, grace, &mut p);
        let revs: BTreeMap<Digest, String> = p
            .revisions
            .iter()
            .map(|d| (d.clone(), "untagged (--delete-untagged)".to_string()))
            .collect();
        // As the registry's GC: the history entries of every tag go with the revision.
        actions.extend(removals(
            repo,
            &BTreeMap::new(),
            &revs,
            (GC_REVISION, GC_REVISION),
        ));
    }
    actions
}

/// The sweep after `removed` (actions that will run): every blob no revision of any repository
/// references any more, and every `_layers` link naming a blob that is then gone.
pub fn gc_sweep(inv: &Inventory, removed: &[Action]) -> Vec<Action> {
    let mut after = inv.clone();
    let mut blobs_changed = false;
    for a in removed {
        blobs_changed |= simulate::quarantine(&mut after, a.kind.path());
    }
    if blobs_changed {
        after.normalize();
    }
    let r = reach::compute(&after);
    let mut actions = Vec::new();
    let mut gone = crate::model::digest::DigestSet::default();
    for (i, b) in after.blobs.iter().enumerate() {
        if r.is_referenced(i) {
            continue;
        }
        gone.insert(b.digest.clone());
        actions.push(quarantine(
            layout::blob_dir(&b.digest),
            GC_BLOB,
            format!(
                "blob {} ({} bytes): referenced by no revision of any repository",
                b.digest, b.size
            ),
            vec!["repositories".to_string()],
        ));
    }
    for repo in &after.repos {
        for l in &repo.layers {
            if !l.names_own_folder() {
                continue;
            }
            let d = &l.path_digest;
            if after.blob(d).is_none() || gone.contains(d) {
                let path = parent(&layout::layer_link(&repo.name, d)).to_string();
                actions.push(quarantine(
                    path,
                    GC_LAYER_LINK,
                    format!(
                        "layer link of {} to {d}: its blob is gone (a re-push must upload it again)",
                        repo.name
                    ),
                    vec![layout::blob_dir(d)],
                ));
            }
        }
    }
    actions
}

/// The blobs (indices into `inv.blobs`) a plan makes reclaimable: blobs it removes, and blobs
/// referenced before that nothing references after it (a later `gc --apply` frees those).
pub fn reclaimable_blobs(inv: &Inventory, actions: &[Action]) -> Vec<usize> {
    let before = reach::compute(inv);
    let mut after = inv.clone();
    for a in actions {
        simulate::quarantine(&mut after, a.kind.path());
    }
    after.normalize();
    let r = reach::compute(&after);
    inv.blobs
        .iter()
        .enumerate()
        .filter(|(i, b)| match after.blob_index(&b.digest) {
            None => true,
            Some(j) => before.is_referenced(*i) && !r.is_referenced(j),
        })
        .map(|(i, _)| i)
        .collect()
}

/// Bytes and count of `reclaimable_blobs`.
pub fn reclaimable(inv: &Inventory, actions: &[Action]) -> (u64, usize) {
    let set = reclaimable_blobs(inv, actions);
    (set.iter().map(|&i| inv.blobs[i].size).sum(), set.len())
}

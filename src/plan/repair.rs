//! Findings -> actions. Pure: everything it needs (including the content digests of misplaced
//! blob data, which the caller hashes) comes in as values.
//!
//! One run converges: when an action removes something others rest on (a corrupt blob that a
//! revision or a `_layers` link names, a revision that tags name), the planner replays the
//! removals on a copy of the inventory, re-runs the checks and plans the follow-ups in the same
//! plan, until nothing new appears. A second `repair` right after the first plans nothing.

use super::{simulate, Action, ActionKind, Plan};
use crate::analysis::checks::{self, CheckOptions};
use crate::model::digest::{Digest, DigestSet};
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{Inventory, Misplaced, Repo, Verify};
use crate::model::layout::{self, Parsed};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Also drop references that are already broken.
    pub lossy: bool,
    pub now: i64,
    pub purge_age: i64,
    /// Uploads written to within this many seconds are live: never planned.
    pub grace: i64,
    /// Also plan what the plan's own removals leave dangling, until nothing new appears (what
    /// `repair` executes). Off: one pass over the findings given, which is all a caller asking
    /// "what does the planner do about this finding" needs, and far cheaper (no inventory copy,
    /// no re-run of the checks).
    pub follow_ups: bool,
    /// Each data file at a malformed path under blobs/, by v2-relative path: its sha256 and, when
    /// small enough, its content decoded as a manifest.
    pub misplaced_content: HashMap<String, Misplaced>,
}

/// Rounds of follow-ups at most (each round only adds removals, so this is never reached on a
/// store of registry shapes; it bounds the work on adversarial ones).
const MAX_ROUNDS: usize = 8;

fn sound(inv: &Inventory, d: &Digest) -> bool {
    inv.blob(d)
        .is_some_and(|b| b.hashed == crate::model::inventory::Hashed::Ok)
}

/// A blob that stays: present, not empty, not proven corrupt (those are quarantined).
fn usable(inv: &Inventory, d: &Digest) -> bool {
    inv.blob_index(d)
        .is_some_and(|i| !matches!(inv.verify_of(i), Verify::Mismatch(_)) && inv.blobs[i].size > 0)
}

/// A revision the registry can serve: valid link, blob present and staying, manifest readable.
fn live(inv: &Inventory, repo: &Repo, d: &Digest) -> bool {
    repo.live_revision(d) && usable(inv, d) && matches!(inv.manifest(d), Some(Ok(_)))
}

fn parent(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

/// What a verdict about revision `d` of `repo` rests on: its link and its manifest blob.
fn revision_evidence(repo: &str, d: &Digest) -> Vec<String> {
    vec![
        parent(&layout::revision_link(repo, d)),
        layout::blob_data(d),
    ]
}

/// What "no manifest of the repository references it" rests on: every revision and manifest
/// (a manifest blob the scan did not find counts too: its folder may be what was unreadable).
fn manifests_evidence(repo: &Repo) -> Vec<String> {
    let mut ev = vec![layout::revisions_dir(&repo.name)];
    ev.extend(
        repo.revisions
            .iter()
            .filter_map(|l| l.target())
            .map(layout::blob_data),
    );
    ev
}

struct Planner<'a> {
    inv: &'a Inventory,
    opts: &'a PlanOptions,
    out: Vec<Action>,
    /// Blobs this plan brings back to their canonical path.
    restored: &'a DigestSet,
}

/// Whether any manifest revision of the repository references `d`.
fn referenced_by(inv: &Inventory, repo: &Repo, d: &Digest) -> bool {
    repo.revisions.iter().filter_map(|l| l.target()).any(
        |m| matches!(inv.manifest(m), Some(Ok(man)) if man.refs.iter().any(|r| &r.digest == d)),
    )
}

/// Whether the symbolic link at `path` stands where the registry reads an object (a blob, a
/// link, a tag) and leads to something it can read there (a file or folder of the store, or out
/// of it): the registry follows it, so pulls may depend on it. Loops, dangling links and links
/// elsewhere (an alias of a repository, an ancestor) serve nothing a pull needs.
fn serves_through(inv: &Inventory, path: &str) -> bool {
    use crate::model::inventory::{EntryType, SymlinkTarget};
    let leads = inv.symlink(path).is_some_and(|s| match &s.target {
        SymlinkTarget::Inside { kind, .. } => matches!(kind, EntryType::File | EntryType::Dir),
        SymlinkTarget::Unknown(_) => true,
        SymlinkTarget::Loop | SymlinkTarget::Dangling | SymlinkTarget::NotDir => false,
    });
    leads
        && matches!(
            layout::parse_path(path),
            Parsed::BlobDir(_)
                | Parsed::BlobData(_)
                | Parsed::LayerLink { .. }
                | Parsed::RevisionLink { .. }
                | Parsed::TagDir { .. }
                | Parsed::TagCurrent { .. }
                | Parsed::TagIndexLink { .. }
        )
}

impl Planner<'_> {
    fn push(
        &mut self,
        kind: ActionKind,
        code: Code,
        reason: impl Into<String>,
        lossy: bool,
        evidence: Vec<String>,
    ) {
        if lossy && !self.opts.lossy {
            return;
        }
        let mut a = Action::new(kind, code, reason, lossy);
        let own: Vec<String> = a.kind.paths().iter().map(|p| p.to_string()).collect();
        a.evidence = evidence.into_iter().filter(|e| !own.contains(e)).collect();
        a.evidence.sort();
        a.evidence.dedup();
        self.out.push(a);
    }

    fn quarantine(&mut self, path: &str, code: Code, reason: impl Into<String>, ev: Vec<String>) {
        self.push(
            ActionKind::Quarantine {
                path: path.to_string(),
            },
            code,
            reason,
            false,
            ev,
        );
    }

    /// Restore a tag's current link from its index: the only live entry (safe), or with
    /// `--lossy` the newest live entry, else quarantine the whole tag.
    fn restore_tag(&mut self, repo: &Repo, tag: &str, code: Code, safe_allowed: bool) {
        let Some(t) = repo.tag(tag) else { return };
        let mut live_entries: Vec<_> = t
            .index
            .iter()
            .filter(|l| l.names_own_folder() && live(self.inv, repo, &l.path_digest))
            .collect();
        live_entries.sort_by_key(|l| t.index_mtime(&l.path_digest));
        // The verdict rests on the whole tag folder and on every revision it names.
        let mut ev = vec![layout::tag_dir(&repo.name, tag)];
        for d in t
            .index
            .iter()
            .map(|l| &l.path_digest)
            .chain(t.current.digest())
        {
            ev.extend(revision_evidence(&repo.name, d));
        }
        let current = layout::tag_current_link(&repo.name, tag);
        match live_entries.as_slice() {
            [only] if safe_allowed => self.push(
                ActionKind::WriteLink {
                    path: current,
                    digest: only.path_digest.clone(),
                },
                code,
                format!(
                    "the tag index names exactly one live revision, {}",
                    only.path_digest
                ),
                false,
                ev,
            ),
            [.., newest] => self.push(
                ActionKind::WriteLink {
                    path: current,
                    digest: newest.path_digest.clone(),
                },
                code,
                format!(
                    "point tag {tag} at its newest live history entry {}",
                    newest.path_digest
                ),
                true,
                ev,
            ),
            [] => self.push(
                ActionKind::Quarantine {
                    path: layout::tag_dir(&repo.name, tag),
                },
                code,
                format!("tag {tag} names nothing the registry can serve and has no live history"),
                true,
                ev,
            ),
        }
    }

    fn link(&mut self, f: &Finding) {
        let Some(path) = f.path.as_deref() else {
            return;
        };
        match layout::parse_path(path) {
            Parsed::TagIndexLink { repo, tag, digest }
                if self
                    .inv
                    .repo(&repo)
                    .and_then(|r| r.tag(&tag))
                    .is_some_and(|t| t.current.digest() == Some(&digest)) =>
            {
                // The history entry of the tag's current digest: the registry writes it on every
                // tag, whatever the blob's state (as for tag-index-missing-current); a quarantine
                // would only be undone by the next run.
                self.push(
                    ActionKind::WriteLink {
                        path: path.to_string(),
                        digest: digest.clone(),
                    },
                    f.code,
                    "rewrite from its folder's digest, the tag's current one",
                    false,
                    vec![layout::tag_current_link(&repo, &tag)],
                );
            }
            Parsed::LayerLink { digest, .. }
            | Parsed::RevisionLink { digest, .. }
            | Parsed::TagIndexLink { digest, .. } => {
                let ev = vec![layout::blob_dir(&digest)];
                if sound(self.inv, &digest) {
                    self.push(
                        ActionKind::WriteLink { path: path.to_string(), digest: digest.clone() },
                        f.code,
                        format!("rewrite from its folder's digest: blob {digest} exists and hashes correctly"),
                        false,
                        ev,
                    );
                } else {
                    self.quarantine(
                        path,
                        f.code,
                        "its folder's blob is missing or unsound, so it cannot be rebuilt",
                        ev,
                    );
                }
            }
            Parsed::TagCurrent { repo, tag } => {
                let Some(r) = self.inv.repo(&repo) else {
                    return;
                };
                // A symbolic link to another link: the registry reads the digest through it and
                // serves that. Keep serving it, in a real link (restoring the tag's own history
                // instead would re-tag an image that pulls).
                let Some(d) = self.read_through(path).filter(|d| live(self.inv, r, d)) else {
                    self.restore_tag(r, &tag, f.code, true);
                    return;
                };
                let ev = vec![layout::tag_dir(&repo, &tag), layout::blob_data(&d)];
                self.push(
                    ActionKind::WriteLink {
                        path: path.to_string(),
                        digest: d.clone(),
                    },
                    f.code,
                    format!("a symbolic link to a link naming {d}, which the registry serves through it: the same digest in a regular link"),
                    false,
                    ev.clone(),
                );
                // The registry records a tag's current digest in its history when it tags.
                if r.tag(&tag)
                    .is_some_and(|t| t.index.iter().all(|l| l.path_digest != d))
                {
                    self.push(
                        ActionKind::WriteLink {
                            path: layout::tag_index_link(&repo, &tag, &d),
                            digest: d.clone(),
                        },
                        Code::TagIndexMissingCurrent,
                        "record the current digest in the tag's history, as the registry does",
                        false,
                        ev,
                    );
                }
            }
            _ => self.quarantine(
                path,
                f.code,
                "a broken link outside the registry's grammar",
                vec![],
            ),
        }
    }

    /// The digest the registry reads at `path` when it is a symbolic link to a valid link file
    /// in the store (resolved by the scan without following it).
    fn read_through(&self, path: &str) -> Option<Digest> {
        use crate::model::inventory::{EntryType, SymlinkTarget};
        match &self.inv.symlink(path)?.target {
            SymlinkTarget::Inside {
                path: to,
                kind: EntryType::File,
                ..
            } => self.inv.link_at(to)?.digest().cloned(),
            _ => None,
        }
    }

    /// An upload written to within the grace window is live, whatever its startedat says.
    fn upload_is_live(&self, repo: Option<&Repo>, path: &str) -> bool {
        repo.and_then(|r| {
            r.uploads
                .iter()
                .find(|u| layout::upload_dir(&r.name, &u.uuid) == path)
        })
        .is_some_and(|u| u.mtime > self.opts.now - self.opts.grace)
    }

    fn finding(&mut self, f: &Finding) {
        let inv = self.inv;
        let path = f.path.clone().unwrap_or_default();
        let repo = f.repo.as_deref().and_then(|r| inv.repo(r));
        match f.code {
            Code::LinkMalformed | Code::LinkMismatch | Code::LinkNotFile => self.link(f),
            Code::BlobDigestMismatch | Code::BlobEmpty => {
                if let Some(d) = &f.digest {
                    self.quarantine(
                        &layout::blob_dir(d),
                        f.code,
                        "corrupt blob: quarantined so that a re-push can store it again",
                        vec![],
                    );
                }
            }
            Code::BlobSizeMismatch => {
                // Only when hashing proved the content wrong (then blob-digest-mismatch acts).
            }
            Code::BlobPathInvalid => {
                match self.opts.misplaced_content.get(&path).map(|m| &m.digest) {
                    Some(d) if path.ends_with("/data") => {
                        if inv.blob(d).is_some() {
                            self.quarantine(
                                &path,
                                f.code,
                                format!("a copy of blob {d}, which exists at its canonical path"),
                                vec![layout::blob_data(d)],
                            );
                        } else {
                            self.push(
                                ActionKind::MoveBlob {
                                    from: path.clone(),
                                    to: layout::blob_data(d),
                                },
                                f.code,
                                format!(
                                    "its content hashes to {d}: move it where the registry looks"
                                ),
                                false,
                                vec![],
                            );
                        }
                    }
                    _ => self.quarantine(
                        &path,
                        f.code,
                        "malformed path under blobs/ that makes the registry's GC abort",
                        vec![],
                    ),
                }
            }
            Code::LayerLinkDangling => {
                // Keep links a manifest of the repository still needs: the blob is what is
                // missing, and a re-push (or a blob this plan moves home) makes them valid again.
                let Some(r) = repo else { return };
                let Some(d) = f.digest.as_ref() else { return };
                let target = r.layer(d).and_then(|l| l.target()).unwrap_or(d);
                if referenced_by(inv, r, target) || self.restored.contains(target) {
                    return;
                }
                let mut ev = manifests_evidence(r);
                ev.push(layout::blob_dir(target));
                self.quarantine(&path, f.code, "a link to a blob that does not exist and that no manifest of the repository references", ev);
            }
            Code::UploadMultipartIncomplete => {
                // Lossy (`push` drops it without --lossy): an abort deletes the parts for good,
                // the one step undo cannot reverse. Never while the registry's own upload
                // folder was written within the grace window.
                let folder = path.strip_suffix("/data").unwrap_or(&path);
                if self.upload_is_live(repo, folder) {
                    return;
                }
                let stale = self.opts.now - self.opts.purge_age;
                let ids: Vec<String> = inv
                    .multipart_uploads
                    .iter()
                    .filter(|m| m.path == path && m.initiated < stale)
                    .map(|m| m.upload_id.clone())
                    .collect();
                for upload_id in ids {
                    self.push(
                        ActionKind::AbortMultipart {
                            path: path.clone(),
                            upload_id,
                        },
                        f.code,
                        "an incomplete multipart upload older than the purge age: the bucket bills its parts and no listing shows them (an abort cannot be undone)",
                        true,
                        vec![],
                    );
                }
            }
            Code::UploadStale if !self.upload_is_live(repo, &path) => {
                self.quarantine(&path, f.code, f.code.meaning().to_string(), vec![]);
            }
            Code::PathSymlink if serves_through(inv, &path) => {
                // The registry follows it to what a pull reads: quarantining it breaks the
                // pull (a link file is rewritten instead, under link-not-file).
            }
            Code::BlobStrayFile
            | Code::PathTempResidue
            | Code::RepoStrayUnderscore
            | Code::PathSymlink => {
                self.quarantine(&path, f.code, f.code.meaning().to_string(), vec![]);
            }
            Code::UploadNoStartedat => {
                let old = repo
                    .and_then(|r| {
                        r.uploads
                            .iter()
                            .find(|u| layout::upload_dir(&r.name, &u.uuid) == path)
                    })
                    .is_some_and(|u| u.mtime < self.opts.now - self.opts.purge_age);
                if old && !self.upload_is_live(repo, &path) {
                    self.quarantine(
                        &path,
                        f.code,
                        "upload without startedat whose files are older than the purge age",
                        vec![],
                    );
                }
            }
            Code::ManifestRefUnlinked => {
                if let Some(d) = &f.digest {
                    if usable(inv, d) {
                        self.push(
                            ActionKind::WriteLink {
                                path: path.clone(),
                                digest: d.clone(),
                            },
                            f.code,
                            "a manifest of the repository references this blob, which exists",
                            false,
                            vec![layout::blob_data(d)],
                        );
                    }
                }
            }
            Code::RepoMissingLayers | Code::RepoMissingTags => {
                self.push(
                    ActionKind::CreateDir { path: path.clone() },
                    f.code,
                    "create the folder the registry expects",
                    false,
                    vec![parent(&path)],
                );
            }
            Code::RevisionLinkMissing => {
                // Registry 2.8 serves this manifest only through its `_layers` fallback; the
                // revision link is what the registry (and every garbage-collect) needs.
                if let Some(d) = f.digest.as_ref().filter(|d| sound(inv, d)) {
                    if matches!(inv.manifest(d), Some(Ok(_))) {
                        self.push(
                            ActionKind::WriteLink {
                                path: path.clone(),
                                digest: d.clone(),
                            },
                            f.code,
                            "restore the revision link; the manifest blob exists, hashes correctly and parses",
                            false,
                            vec![layout::blob_data(d)],
                        );
                    }
                }
            }
            Code::TagIndexMissingCurrent => {
                if let Some(d) = &f.digest {
                    let tag_current = f
                        .tag
                        .as_deref()
                        .zip(f.repo.as_deref())
                        .map(|(t, r)| layout::tag_current_link(r, t));
                    self.push(
                        ActionKind::WriteLink {
                            path: path.clone(),
                            digest: d.clone(),
                        },
                        f.code,
                        "record the current digest in the tag's history, as the registry does",
                        false,
                        tag_current.into_iter().collect(),
                    );
                }
            }
            Code::TagCurrentMissing | Code::TagDangling => {
                if let (Some(r), Some(t)) = (repo, f.tag.as_deref()) {
                    self.restore_tag(r, t, f.code, f.code == Code::TagCurrentMissing);
                }
            }
            Code::RevisionBlobMissing | Code::ManifestInvalid => {
                let (Some(r), Some(d)) = (repo, f.digest.as_ref()) else {
                    return;
                };
                if self.restored.contains(d) {
                    // This plan moves the manifest blob home: the revision will be served.
                    return;
                }
                for rev in r.revisions.iter().filter(|l| l.target() == Some(d)) {
                    let link = layout::revision_link(&r.name, &rev.path_digest);
                    self.push(
                        ActionKind::Quarantine {
                            path: parent(&link),
                        },
                        f.code,
                        format!("revision {d} cannot be served (re-push the image)"),
                        true,
                        revision_evidence(&r.name, d),
                    );
                }
                for t in r.tags.iter().filter(|t| t.current.digest() == Some(d)) {
                    let mut ev = revision_evidence(&r.name, d);
                    ev.push(layout::tag_current_link(&r.name, &t.name));
                    self.push(
                        ActionKind::Quarantine {
                            path: layout::tag_dir(&r.name, &t.name),
                        },
                        f.code,
                        format!("tag {} names revision {d}, which cannot be served", t.name),
                        true,
                        ev,
                    );
                }
            }
            Code::RepoNameInvalid => {
                self.push(
                    ActionKind::Quarantine { path },
                    f.code,
                    "a repository folder the registry rejects",
                    true,
                    vec![],
                );
            }
            _ => {}
        }
    }
}

/// The actions one pass over these findings asks for, unordered.
fn plan_round(
    inv: &Inventory,
    findings: &[Finding],
    opts: &PlanOptions,
    restored: &DigestSet,
) -> Vec<Action> {
    let mut p = Planner {
        inv,
        opts,
        out: Vec::new(),
        restored,
    };
    for f in findings {
        p.finding(f);
    }
    p.out
}

/// Whether removing `path` can leave something else dangling: blobs (revisions and `_layers`
/// links name them) and revisions (tags name them).
fn removal_has_dependents(path: &str) -> bool {
    path.starts_with("blobs/") || path.contains("/_manifests/revisions")
}

/// What an action does to the store that the next round of checks must see.
enum Effect<'a> {
    Removed(String),
    RevisionWritten(String, Digest),
    BlobHome(String, &'a Misplaced),
}

/// Compute the repair plan for these findings, follow-ups included.
pub fn plan(inv: &Inventory, findings: &[Finding], opts: &PlanOptions) -> Plan {
    let restored: DigestSet = opts
        .misplaced_content
        .values()
        .map(|m| &m.digest)
        .filter(|d| inv.blob(d).is_none())
        .cloned()
        .collect();
    let mut actions = plan_round(inv, findings, opts, &restored);
    // The actions whose effect can call for more: removals (what they leave dangling), rewritten
    // revision links (the revision is served again, and its manifest judged), and blob data moved
    // home (a manifest it holds may be served again through a `_layers` link).
    let triggers = |actions: &[Action], done: &std::collections::HashSet<String>| -> Vec<Effect> {
        actions
            .iter()
            .filter_map(|a| match &a.kind {
                ActionKind::Quarantine { path } if !done.contains(path) => {
                    Some(Effect::Removed(path.clone()))
                }
                ActionKind::WriteLink { path, digest }
                    if !done.contains(path)
                        && matches!(layout::parse_path(path), Parsed::RevisionLink { .. }) =>
                {
                    Some(Effect::RevisionWritten(path.clone(), digest.clone()))
                }
                ActionKind::MoveBlob { from, .. } if !done.contains(from) => opts
                    .misplaced_content
                    .get(from)
                    .map(|m| Effect::BlobHome(from.clone(), m)),
                _ => None,
            })
            .collect()
    };
    let mut simulated = std::collections::HashSet::new();
    let first = triggers(&actions, &simulated);
    if opts.follow_ups
        && first.iter().any(|e| match e {
            Effect::Removed(p) => removal_has_dependents(p),
            Effect::RevisionWritten(..) | Effect::BlobHome(..) => true,
        })
    {
        let check_opts = CheckOptions {
            now: opts.now,
            purge_age: opts.purge_age,
            grace: opts.grace,
        };
        let mut sim = inv.clone();
        for _ in 0..MAX_ROUNDS {
            let effects = triggers(&actions, &simulated);
            if effects.is_empty() {
                break;
            }
            let mut blobs_changed = false;
            for e in effects {
                let path = match e {
                    Effect::Removed(q) => {
                        blobs_changed |= simulate::quarantine(&mut sim, &q);
                        q
                    }
                    Effect::RevisionWritten(q, d) => {
                        simulate::write_revision_link(&mut sim, &q, &d);
                        q
                    }
                    Effect::BlobHome(from, m) => {
                        blobs_changed |= simulate::move_blob_home(&mut sim, &from, m, opts.now);
                        from
                    }
                };
                simulated.insert(path);
            }
            if blobs_changed {
                sim.normalize();
            }
            let more = plan_round(&sim, &checks::run(&sim, &check_opts), opts, &restored);
            // A later round knows more (what the removals take away): it wins on a shared path.
            for a in more {
                match actions.iter().position(|b| b.kind.path() == a.kind.path()) {
                    Some(i) => actions[i] = a,
                    None => actions.push(a),
                }
            }
        }
    }
    finish(actions)
}

/// Order the actions and keep one per path, dropping those inside a folder quarantined anyway.
fn finish(mut actions: Vec<Action>) -> Plan {
    actions.sort_by(|a, b| {
        a.kind
            .rank()
            .cmp(&b.kind.rank())
            .then(a.kind.path().cmp(b.kind.path()))
    });
    let quarantined: Vec<String> = actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Quarantine { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    // A link write displaces whatever is at its path into the quarantine (the applier moves it
    // there first): it answers a quarantine of that very path too, and keeps the link the
    // registry reads (a symbolic link it follows, replaced by the link it should be).
    let written: std::collections::HashSet<String> = actions
        .iter()
        .filter(|a| matches!(a.kind, ActionKind::WriteLink { .. }))
        .map(|a| a.kind.path().to_string())
        .collect();
    let mut seen = std::collections::HashSet::new();
    actions.retain(|a| {
        // Quarantining an upload's folder leaves its multipart upload (no listing shows one):
        // an abort is kept, one per upload id.
        if let ActionKind::AbortMultipart { path, upload_id } = &a.kind {
            return seen.insert(format!("{path}\0{upload_id}"));
        }
        let path = a.kind.path().to_string();
        let inside = quarantined
            .iter()
            .any(|q| path.starts_with(&format!("{q}/")));
        let displaced = matches!(a.kind, ActionKind::Quarantine { .. }) && written.contains(&path);
        !inside && !displaced && seen.insert(path)
    });
    Plan {
        schema: super::PLAN_SCHEMA.to_string(),
        command: None,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::checks::testkit::Builder;
    use crate::model::inventory::Verify;

    fn kinds(p: &Plan) -> Vec<(String, bool)> {
        p.actions
            .iter()
            .map(|a| (a.kind.path().to_string(), a.lossy))
            .collect()
    }

    /// A corrupt manifest blob: the plan quarantines it and, with follow-ups and --lossy, the
    /// revision and the tag it leaves dangling; without follow-ups only what the findings ask.
    #[test]
    fn follow_ups_of_a_quarantined_manifest_blob() {
        let mut b = Builder::new();
        let m = b.image("a/x", Some("v1"));
        let mut inv = b.build();
        let i = inv.blob_index(&m).unwrap();
        inv.set_verify(i, Verify::Mismatch(Box::new(Digest::of_bytes(b"other"))));
        let opts = |lossy, follow_ups| PlanOptions {
            lossy,
            follow_ups,
            now: 1_000_000,
            purge_age: 168 * 3600,
            grace: 600,
            ..PlanOptions::default()
        };
        let findings = checks::run(
            &inv,
            &CheckOptions {
                now: 1_000_000,
                ..CheckOptions::default()
            },
        );
        let blob = (layout::blob_dir(&m), false);
        let rev = (parent(&layout::revision_link("a/x", &m)), true);
        let tag = (layout::tag_dir("a/x", "v1"), true);
        assert_eq!(
            kinds(&plan(&inv, &findings, &opts(true, false))),
            std::slice::from_ref(&blob)
        );
        assert_eq!(
            kinds(&plan(&inv, &findings, &opts(false, true))),
            std::slice::from_ref(&blob)
        );
        let full = plan(&inv, &findings, &opts(true, true));
        assert_eq!(kinds(&full), [blob, rev, tag]);
        // Each follow-up names what its verdict rests on.
        assert!(full.actions[2].evidence.contains(&layout::blob_data(&m)));
    }
}

//! Findings -> actions. Pure: everything it needs (including the content digests of misplaced
//! blob data, which the caller hashes) comes in as values.

use super::{Action, ActionKind, Plan};
use crate::model::digest::Digest;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{Hashed, Inventory, Repo, Verify};
use crate::model::layout::{self, Parsed};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Also drop references that are already broken.
    pub lossy: bool,
    pub now: i64,
    pub purge_age: i64,
    /// sha256 of each data file at a malformed path under blobs/, by v2-relative path.
    pub misplaced_content: HashMap<String, Digest>,
}

fn sound(inv: &Inventory, d: &Digest) -> bool {
    inv.blob(d).is_some_and(|b| b.hashed == Hashed::Ok)
}

/// A revision the registry can serve: valid link, blob present, manifest readable.
fn live(inv: &Inventory, repo: &Repo, d: &Digest) -> bool {
    repo.live_revision(d) && inv.blob(d).is_some() && matches!(inv.manifest(d), Some(Ok(_)))
}

fn parent(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

struct Planner<'a> {
    inv: &'a Inventory,
    opts: &'a PlanOptions,
    out: Vec<Action>,
    /// Blobs this plan brings back to their canonical path.
    restored: crate::model::digest::DigestSet,
}

/// Whether any manifest revision of the repository references `d`.
fn referenced_by(inv: &Inventory, repo: &Repo, d: &Digest) -> bool {
    repo.revisions.iter().filter_map(|l| l.target()).any(
        |m| matches!(inv.manifest(m), Some(Ok(man)) if man.refs.iter().any(|r| &r.digest == d)),
    )
}

impl Planner<'_> {
    fn push(&mut self, kind: ActionKind, code: Code, reason: impl Into<String>, lossy: bool) {
        if lossy && !self.opts.lossy {
            return;
        }
        self.out.push(Action::new(kind, code, reason, lossy));
    }

    fn quarantine(&mut self, path: &str, code: Code, reason: impl Into<String>) {
        self.push(
            ActionKind::Quarantine {
                path: path.to_string(),
            },
            code,
            reason,
            false,
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
            ),
            [] => self.push(
                ActionKind::Quarantine {
                    path: layout::tag_dir(&repo.name, tag),
                },
                code,
                format!("tag {tag} names nothing the registry can serve and has no live history"),
                true,
            ),
        }
    }

    fn link(&mut self, f: &Finding) {
        let Some(path) = f.path.as_deref() else {
            return;
        };
        let rebuild = |p: &Planner, d: &Digest| sound(p.inv, d);
        match layout::parse_path(path) {
            Parsed::LayerLink { digest, .. }
            | Parsed::RevisionLink { digest, .. }
            | Parsed::TagIndexLink { digest, .. } => {
                if rebuild(self, &digest) {
                    self.push(
                        ActionKind::WriteLink { path: path.to_string(), digest: digest.clone() },
                        f.code,
                        format!("rewrite from its folder's digest: blob {digest} exists and hashes correctly"),
                        false,
                    );
                } else {
                    self.quarantine(
                        path,
                        f.code,
                        "its folder's blob is missing or unsound, so it cannot be rebuilt",
                    );
                }
            }
            Parsed::TagCurrent { repo, tag } => {
                if let Some(r) = self.inv.repo(&repo) {
                    self.restore_tag(r, &tag, f.code, true);
                }
            }
            _ => self.quarantine(path, f.code, "a broken link outside the registry's grammar"),
        }
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
                    );
                }
            }
            Code::BlobSizeMismatch => {
                // Only when hashing proved the content wrong (then blob-digest-mismatch acts).
            }
            Code::BlobPathInvalid => match self.opts.misplaced_content.get(&path) {
                Some(d) if path.ends_with("/data") => {
                    if inv.blob(d).is_some() {
                        self.quarantine(
                            &path,
                            f.code,
                            format!("a copy of blob {d}, which exists at its canonical path"),
                        );
                    } else {
                        self.push(
                            ActionKind::MoveBlob {
                                from: path.clone(),
                                to: layout::blob_data(d),
                            },
                            f.code,
                            format!("its content hashes to {d}: move it where the registry looks"),
                            false,
                        );
                    }
                }
                _ => self.quarantine(
                    &path,
                    f.code,
                    "malformed path under blobs/ that makes the registry's GC abort",
                ),
            },
            Code::LayerLinkDangling => {
                // Keep links a manifest of the repository still needs: the blob is what is
                // missing, and a re-push (or a blob this plan moves home) makes them valid again.
                let needed = match (repo, f.digest.as_ref()) {
                    (Some(r), Some(d)) => {
                        let target = r.layer(d).and_then(|l| l.target()).unwrap_or(d);
                        referenced_by(inv, r, target) || self.restored.contains(target)
                    }
                    _ => false,
                };
                if !needed {
                    self.quarantine(&path, f.code, "a link to a blob that does not exist and that no manifest of the repository references");
                }
            }
            Code::BlobStrayFile
            | Code::PathTempResidue
            | Code::RepoStrayUnderscore
            | Code::PathSymlink
            | Code::UploadStale => {
                self.quarantine(&path, f.code, f.code.meaning().to_string());
            }
            Code::UploadNoStartedat => {
                let old = repo
                    .and_then(|r| {
                        r.uploads
                            .iter()
                            .find(|u| layout::upload_dir(&r.name, &u.uuid) == path)
                    })
                    .is_some_and(|u| u.mtime < self.opts.now - self.opts.purge_age);
                if old {
                    self.quarantine(
                        &path,
                        f.code,
                        "upload without startedat whose files are older than the purge age",
                    );
                }
            }
            Code::ManifestRefUnlinked => {
                if let Some(d) = &f.digest {
                    let usable = inv.blob_index(d).is_some_and(|i| {
                        !matches!(inv.verify_of(i), Verify::Mismatch(_)) && inv.blobs[i].size > 0
                    });
                    if usable {
                        self.push(
                            ActionKind::WriteLink {
                                path: path.clone(),
                                digest: d.clone(),
                            },
                            f.code,
                            "a manifest of the repository references this blob, which exists",
                            false,
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
                        );
                    }
                }
            }
            Code::TagIndexMissingCurrent => {
                if let Some(d) = &f.digest {
                    self.push(
                        ActionKind::WriteLink {
                            path: path.clone(),
                            digest: d.clone(),
                        },
                        f.code,
                        "record the current digest in the tag's history, as the registry does",
                        false,
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
                for rev in r.revisions.iter().filter(|l| l.target() == Some(d)) {
                    let link = layout::revision_link(&r.name, &rev.path_digest);
                    self.push(
                        ActionKind::Quarantine {
                            path: parent(&link),
                        },
                        f.code,
                        format!("revision {d} cannot be served (re-push the image)"),
                        true,
                    );
                }
                for t in r.tags.iter().filter(|t| t.current.digest() == Some(d)) {
                    self.push(
                        ActionKind::Quarantine {
                            path: layout::tag_dir(&r.name, &t.name),
                        },
                        f.code,
                        format!("tag {} names revision {d}, which cannot be served", t.name),
                        true,
                    );
                }
            }
            Code::RepoNameInvalid => {
                self.push(
                    ActionKind::Quarantine { path },
                    f.code,
                    "a repository folder the registry rejects",
                    true,
                );
            }
            _ => {}
        }
    }
}

/// Compute the repair plan for these findings.
pub fn plan(inv: &Inventory, findings: &[Finding], opts: &PlanOptions) -> Plan {
    let restored = opts
        .misplaced_content
        .values()
        .filter(|d| inv.blob(d).is_none())
        .cloned()
        .collect();
    let mut p = Planner {
        inv,
        opts,
        out: Vec::new(),
        restored,
    };
    for f in findings {
        p.finding(f);
    }
    let mut actions = p.out;
    actions.sort_by(|a, b| {
        a.kind
            .rank()
            .cmp(&b.kind.rank())
            .then(a.kind.path().cmp(b.kind.path()))
    });
    // One action per path, and nothing inside a folder that is quarantined anyway.
    let mut seen: Vec<String> = Vec::new();
    let quarantined: Vec<String> = actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Quarantine { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    actions.retain(|a| {
        let path = a.kind.path().to_string();
        let inside = quarantined
            .iter()
            .any(|q| path.starts_with(&format!("{q}/")));
        let dup = seen.contains(&path);
        seen.push(path);
        !inside && !dup
    });
    Plan {
        schema: super::PLAN_SCHEMA.to_string(),
        actions,
    }
}

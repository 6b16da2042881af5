//! Advice that is true for this store: what `regfsck repair` would do about each finding (the
//! planner is asked, finding by finding, instead of guessing from codes), the "fix" text that
//! follows from it, the exact `garbage-collect` command line, and which garbage collections the
//! findings make unsafe. Pure: inventory, findings and plan options in, values out.

use crate::analysis::gc::Version;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::Inventory;
use crate::plan::{self, Action, ActionKind, PlanOptions};
use serde::Serialize;
use std::path::Path;

/// What `regfsck repair` plans for one finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RepairHint {
    /// Only `repair --lossy` acts (it drops references that are already broken).
    pub lossy: bool,
    /// The planned actions, in the plan's format (`regfsck.plan/1`); empty when `via` is set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// Repair acts on another finding at the same path, which is this one's cause (a GC abort).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Via {
    pub code: Code,
    pub path: String,
}

/// One action in words, as the plan shows it.
pub fn describe(a: &Action) -> String {
    match &a.kind {
        ActionKind::Quarantine { path } => format!("quarantine {path}"),
        ActionKind::WriteLink { path, digest } => format!("write {path} = {digest}"),
        ActionKind::CreateDir { path } => format!("create folder {path}"),
        ActionKind::MoveBlob { from, to } => format!("move {from} -> {to}"),
        ActionKind::AbortMultipart { path, upload_id } => {
            format!("abort multipart upload {upload_id} of {path} (cannot be undone)")
        }
    }
}

/// Several actions in words: each one when they are few, else counted by kind
/// (`quarantine 12 entries and write 3 links`).
pub fn describe_all<'a>(actions: impl IntoIterator<Item = &'a Action>) -> String {
    let actions: Vec<&Action> = actions.into_iter().collect();
    if actions.len() <= 3 {
        return actions
            .iter()
            .map(|a| describe(a))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let count = |f: fn(&ActionKind) -> bool| actions.iter().filter(|a| f(&a.kind)).count();
    let kinds = [
        (
            count(|k| matches!(k, ActionKind::Quarantine { .. })),
            "quarantine",
            "entry",
            "entries",
        ),
        (
            count(|k| matches!(k, ActionKind::WriteLink { .. })),
            "write",
            "link",
            "links",
        ),
        (
            count(|k| matches!(k, ActionKind::CreateDir { .. })),
            "create",
            "folder",
            "folders",
        ),
        (
            count(|k| matches!(k, ActionKind::MoveBlob { .. })),
            "move",
            "blob",
            "blobs",
        ),
        (
            count(|k| matches!(k, ActionKind::AbortMultipart { .. })),
            "abort (for good)",
            "multipart upload",
            "multipart uploads",
        ),
    ];
    kinds
        .iter()
        .filter(|k| k.0 > 0)
        .map(|&(n, verb, one, many)| format!("{verb} {n} {}", if n == 1 { one } else { many }))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// For each finding (same order), what the repair planner does about it: `None` when it plans
/// nothing, with or without `--lossy`. A GC abort is fixed when the finding at the path where the
/// real GC stops is.
pub fn repair_hints(
    inv: &Inventory,
    findings: &[Finding],
    opts: &PlanOptions,
) -> Vec<Option<RepairHint>> {
    let lossy_opts = PlanOptions {
        lossy: true,
        ..opts.clone()
    };
    let safe_opts = PlanOptions {
        lossy: false,
        ..opts.clone()
    };
    let mut hints: Vec<Option<RepairHint>> = findings
        .iter()
        .map(|f| {
            if is_gc_hazard(f.code) {
                return None;
            }
            let one = std::slice::from_ref(f);
            let safe = plan::repair::plan(inv, one, &safe_opts).actions;
            let (lossy, actions) = if safe.is_empty() {
                (true, plan::repair::plan(inv, one, &lossy_opts).actions)
            } else {
                (false, safe)
            };
            (!actions.is_empty()).then_some(RepairHint {
                lossy,
                actions,
                via: None,
            })
        })
        .collect();
    for (i, f) in findings.iter().enumerate() {
        if !is_gc_hazard(f.code) {
            continue;
        }
        let cause = findings
            .iter()
            .zip(&hints)
            .filter(|(g, _)| !is_gc_hazard(g.code))
            .filter_map(|(g, h)| Some((g, h.as_ref()?)))
            .filter(|(g, _)| causes(g, f))
            .min_by_key(|(_, h)| h.lossy);
        hints[i] = cause.map(|(g, h)| RepairHint {
            lossy: h.lossy,
            actions: Vec::new(),
            via: Some(Via {
                code: g.code,
                path: g.path.clone().unwrap_or_default(),
            }),
        });
    }
    hints
}

/// Whether finding `g` is a cause of the GC hazard `h`: for an abort, the finding at the path
/// where the real GC stops (or the folder holding it); for a loss of tagged data, a repository
/// folder problem that the hazard's message names (a repository its catalog walk cannot see, a
/// file that hides the repositories after it, a missing tags folder).
fn causes(g: &Finding, h: &Finding) -> bool {
    let Some(gp) = g.path.as_deref() else {
        return false;
    };
    match h.code {
        Code::GcWouldAbort => h
            .path
            .as_deref()
            .is_some_and(|p| p == gp || p.starts_with(&format!("{gp}/"))),
        Code::GcWouldDeleteTagged => {
            matches!(
                g.code,
                Code::RepoMissingLayers
                    | Code::RepoMissingTags
                    | Code::RepoStrayUnderscore
                    | Code::RepoNameInvalid
            ) && (h.message.contains(&format!("the file {gp} "))
                || g.repo.as_deref().is_some_and(|r| {
                    h.message.contains(&format!("repository {r} is invisible"))
                        || h.message.contains(&format!("{r} has no tags folder"))
                }))
        }
        _ => false,
    }
}

fn is_gc_hazard(c: Code) -> bool {
    matches!(
        c,
        Code::GcWouldAbort | Code::GcWouldDeleteTagged | Code::GcCannotPredict
    )
}

/// What the operator does when `regfsck repair` plans nothing for a finding. (The catalogue's
/// fix text describes the repair where there is one; this is the way without it.)
pub fn manual(code: Code, inv_has_repositories: bool) -> String {
    let s = match code {
        Code::BlobDigestMismatch | Code::BlobEmpty => {
            "move the blob's folder out of the store by hand (the registry never overwrites an existing blob), then re-push the images that use it"
        }
        Code::BlobSizeMismatch => {
            "re-push the image (when the blob's content is also wrong, blob-digest-mismatch is reported for it and repair quarantines it)"
        }
        Code::BlobPathInvalid | Code::BlobStrayFile | Code::PathTempResidue => {
            "move it out of the store by hand"
        }
        // The registry follows symbolic links: a pull may read through this one, so moving it
        // out could break a tag that works today.
        Code::PathSymlink => {
            "leave it until it is replaced by what it points to: the registry reads through it, so deleting it breaks the pulls that do (in docker/registry/v2, for each PATH listed: `t=$(readlink -f PATH) && rm PATH && cp -a \"$t\" PATH`)"
        }
        Code::LinkMalformed | Code::LinkMismatch | Code::LinkNotFile => {
            "re-push the image or tag the link belongs to (regfsck cannot tell which digest it should name)"
        }
        Code::LayerLinkDangling => {
            "re-push the image: a manifest of the repository needs this blob, so the link is kept for the re-push"
        }
        Code::RevisionBlobMissing | Code::ManifestInvalid | Code::ManifestRefMissing => {
            "re-push the image"
        }
        Code::ManifestRefUnlinked => "re-push the image (the blob it needs is unusable)",
        Code::IndexChildMissing => "re-push the multi-arch image",
        Code::TagCurrentMissing | Code::TagDangling | Code::TagIndexMissingCurrent => {
            "re-push the tag"
        }
        Code::TagIndexDangling => {
            "none needed: the registry skips history entries without a revision"
        }
        Code::RepoNameInvalid => "rename or move the folder out of the store by hand",
        Code::RepoMissingLayers => "create the repository's empty _layers folder by hand",
        Code::RepoMissingTags => "create the repository's empty _manifests/tags folder by hand",
        Code::RepoStrayUnderscore => "move the file out of repositories/ by hand",
        Code::UploadStale => "none: the registry's upload purging deletes it",
        Code::UploadNoStartedat => {
            "nothing yet: its files are younger than the purge age, so a client may still be using it"
        }
        Code::PathUnrecognized => {
            "move it out of the store by hand once you know where it came from (the registry ignores it)"
        }
        Code::GcWouldAbort if !inv_has_repositories => {
            return "if this store really holds no repositories, create the empty folder docker/registry/v2/repositories (garbage-collect then deletes every blob); if repositories/ was lost, restore it from a backup".into();
        }
        Code::GcWouldAbort => {
            "fix by hand what the real garbage-collect stops at (the path in the message), then re-run `regfsck gc`"
        }
        other => other.fix(),
    };
    s.to_string()
}

/// Quote a path for a shell command line when it needs it.
pub fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The fix text of one finding: what `regfsck repair` does about it, or what to do by hand.
///
/// `store` names the store as this run's arguments did (`cli::store_words`: the root on a
/// filesystem, `--config FILE` or `s3://… --endpoint URL` on object storage), so that the
/// printed command reaches the same store.
pub fn fix_text(f: &Finding, hint: Option<&RepairHint>, store: &str, has_repos: bool) -> String {
    group_fix(f.code, &[hint], store, has_repos)
}

/// The fix text of findings of one code, each with what repair plans for it: one sentence per
/// way of fixing them (with how many it concerns when they differ).
pub fn group_fix(
    code: Code,
    hints: &[Option<&RepairHint>],
    store: &str,
    has_repos: bool,
) -> String {
    let root = store;
    let mut apply = Vec::new();
    let mut lossy = Vec::new();
    let mut via: Vec<(&Via, bool)> = Vec::new();
    let mut manual_n = 0;
    for h in hints {
        match h {
            Some(RepairHint {
                via: Some(v),
                lossy,
                ..
            }) => via.push((v, *lossy)),
            Some(h) if !h.lossy => apply.extend(&h.actions),
            Some(h) => lossy.extend(&h.actions),
            None => manual_n += 1,
        }
    }
    let ways = [
        !apply.is_empty(),
        !lossy.is_empty(),
        !via.is_empty(),
        manual_n > 0,
    ]
    .iter()
    .filter(|x| **x)
    .count();
    let of = |n: usize| {
        if ways > 1 {
            format!("for {n} of them: ")
        } else {
            String::new()
        }
    };
    let mut parts = Vec::new();
    if !apply.is_empty() {
        let n = hints
            .iter()
            .filter(|h| h.is_some_and(|h| h.via.is_none() && !h.lossy))
            .count();
        let mut s = format!(
            "{}`regfsck repair {root} --apply` will {}",
            of(n),
            describe_all(apply.iter().copied())
        );
        if needs_repush(code) {
            s.push_str("; then re-push the images that use it");
        }
        parts.push(s);
    }
    if !lossy.is_empty() {
        let n = hints
            .iter()
            .filter(|h| h.is_some_and(|h| h.via.is_none() && h.lossy))
            .count();
        parts.push(format!(
            "{}{}; if that is impossible, `regfsck repair {root} --apply --lossy` will {}",
            of(n),
            manual(code, has_repos),
            describe_all(lossy.iter().copied())
        ));
    }
    if !via.is_empty() {
        let any_lossy = via.iter().any(|(_, l)| *l);
        let mut causes: Vec<String> = via
            .iter()
            .map(|(v, _)| format!("the {} at {}", v.code, v.path))
            .collect();
        causes.dedup();
        parts.push(format!(
            "{}`regfsck repair {root} --apply{}` fixes the cause ({}); then run `regfsck gc {root}` again",
            of(via.len()),
            if any_lossy { " --lossy" } else { "" },
            causes.join(", ")
        ));
    }
    if manual_n > 0 {
        parts.push(format!("{}{}", of(manual_n), manual(code, has_repos)));
    }
    parts.join(". ")
}

/// Codes whose repair removes content that only a push can bring back.
fn needs_repush(c: Code) -> bool {
    matches!(c, Code::BlobDigestMismatch | Code::BlobEmpty)
}

/// One garbage collection the operator can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcRun {
    pub version: Version,
    pub delete_untagged: bool,
}

impl GcRun {
    pub const ALL: [GcRun; 4] = [
        GcRun {
            version: Version::V2_8,
            delete_untagged: false,
        },
        GcRun {
            version: Version::V2_8,
            delete_untagged: true,
        },
        GcRun {
            version: Version::V3,
            delete_untagged: false,
        },
        GcRun {
            version: Version::V3,
            delete_untagged: true,
        },
    ];

    /// `registry 2.8 garbage-collect --delete-untagged`, as the GC emulation words its findings.
    pub fn label(&self) -> String {
        format!(
            "registry {} garbage-collect{}",
            self.version.name(),
            self.flag()
        )
    }

    pub fn flag(&self) -> &'static str {
        if self.delete_untagged {
            " --delete-untagged"
        } else {
            ""
        }
    }

    /// Whether a `gc-would-*` finding is about this run (its message starts with the label).
    pub fn concerns(&self, code: Code, message: &str) -> bool {
        let label = self.label();
        is_gc_hazard(code)
            && (message
                .strip_prefix(&label)
                .is_some_and(|rest| rest.starts_with(" would"))
                || message
                    .strip_prefix("cannot predict ")
                    .and_then(|m| m.strip_prefix(&label))
                    .is_some_and(|rest| rest.starts_with(':')))
    }
}

/// The exact command for a garbage collection of this store, naming both binaries: `registry` in
/// the upstream images, `docker-registry` in Debian's package. Without a config file given, a
/// placeholder that says which configuration is meant.
pub fn gc_command(config: Option<&Path>, root: &Path, delete_untagged: bool) -> String {
    let flag = if delete_untagged {
        " --delete-untagged"
    } else {
        ""
    };
    let cfg = config
        .map(shell_word)
        .unwrap_or_else(|| "CONFIG.yml".into());
    let mut s = format!(
        "`registry garbage-collect{flag} {cfg}` (Debian's package: `docker-registry garbage-collect{flag} {cfg}`)"
    );
    let shown = root.to_string_lossy();
    if config.is_none() && shown.starts_with("s3://") {
        s.push_str(&format!(
            ", where CONFIG.yml is the registry's configuration (storage.s3 for {shown})"
        ));
    } else if config.is_none() {
        s.push_str(&format!(
            ", where CONFIG.yml is the registry's configuration (storage.filesystem.rootdirectory: {})",
            std::path::absolute(root)
                .unwrap_or_else(|_| root.to_path_buf())
                .display()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_commands_name_the_config_or_a_placeholder_for_this_store() {
        let root = Path::new("/srv/reg");
        let with = gc_command(Some(Path::new("/etc/r/config.yml")), root, true);
        assert!(with.contains("`registry garbage-collect --delete-untagged /etc/r/config.yml`"));
        assert!(
            with.contains("`docker-registry garbage-collect --delete-untagged /etc/r/config.yml`")
        );
        assert!(!with.contains("CONFIG.yml"));
        let without = gc_command(None, root, false);
        assert!(without.contains("`docker-registry garbage-collect CONFIG.yml`"));
        assert!(without.contains("rootdirectory: /srv/reg"));
        assert!(!without.contains("/etc/docker"));
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_word(Path::new("/var/lib/registry")),
            "/var/lib/registry"
        );
        assert_eq!(shell_word(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }

    #[test]
    fn runs_recognise_their_findings() {
        let f = Finding::global(
            Code::GcWouldAbort,
            "registry 2.8 garbage-collect --delete-untagged would abort: x",
        );
        let hits: Vec<GcRun> = GcRun::ALL
            .into_iter()
            .filter(|r| r.concerns(f.code, &f.message))
            .collect();
        assert_eq!(
            hits,
            [GcRun {
                version: Version::V2_8,
                delete_untagged: true
            }]
        );
    }
}

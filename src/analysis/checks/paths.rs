//! Findings for the scanner's noteworthy entries: foreign, unreadable, symlinked, non-UTF-8,
//! residue and malformed paths.

use super::Ctx;
use crate::analysis::unread::repo_of;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{BlobFault, EntryKind};

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for e in &ctx.inv.entries {
        // Every push leaves an empty `_uploads/`: the registry's own state, not worth a line.
        if e.kind == EntryKind::EmptyDir && e.path.ends_with("/_uploads") {
            continue;
        }
        let (code, message) = match &e.kind {
            EntryKind::Unrecognized(what) => (Code::PathUnrecognized, what.clone()),
            EntryKind::Unreadable(err) => (Code::PathUnreadable, format!("cannot read: {err}")),
            EntryKind::Symlink => (Code::PathSymlink, "symbolic link (not followed)".to_string()),
            EntryKind::NonUtf8 => (Code::PathNonUtf8, "name is not valid UTF-8; the registry never writes such names".to_string()),
            EntryKind::TempResidue => (Code::PathTempResidue, "temporary file of an interrupted registry write".to_string()),
            EntryKind::Changed(why) => (Code::PathChanged, format!("changed during the scan: {why}")),
            EntryKind::EmptyDir => (Code::DirEmpty, "empty folder left by the registry".to_string()),
            EntryKind::BlobPath { fault, size } => (
                Code::BlobPathInvalid,
                match fault {
                    BlobFault::BadPath => format!(
                        "data{} at a path that is not blobs/<alg>/<hex[0:2]>/<hex>/data: the real GC aborts or panics on it",
                        size.map(|s| format!(" ({s} bytes)")).unwrap_or_default()
                    ),
                    BlobFault::DataNotFile => "data is not a regular file".to_string(),
                },
            ),
            EntryKind::BlobStray => (Code::BlobStrayFile, "file in blobs/ that is not a blob's data".to_string()),
            EntryKind::BlobDataMissing(_) => (Code::BlobDataMissing, "blob folder without data".to_string()),
            EntryKind::StrayUnderscore => (
                Code::RepoStrayUnderscore,
                "file named _* among repositories: registry 2.8 GC skips every later sibling and sweeps their blobs".to_string(),
            ),
            EntryKind::RepoNameInvalid(why) => (
                Code::RepoNameInvalid,
                format!("repository name rejected by the registry ({why}); garbage-collect aborts"),
            ),
            EntryKind::TagNameInvalid => (Code::TagNameInvalid, "tag name outside [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}".to_string()),
            EntryKind::KeyNotAPath => (
                Code::KeyNotAPath,
                "object key with an empty, `.` or `..` segment or a trailing `/`: no filesystem path holds it and the registry never writes one".to_string(),
            ),
        };
        let mut f = Finding::new(code, &e.path, message);
        if let EntryKind::BlobDataMissing(d) = &e.kind {
            f = f.digest(d);
        }
        if let Some((r, _)) = repo_of(ctx.inv, &e.path) {
            f = f.repo(r);
        }
        out.push(f);
    }
}

//! Checks of unfinished uploads against the purge age and the grace window.

use super::Ctx;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::StartedAt;
use crate::model::layout;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let o = ctx.opts;
    // Object storage: multipart uploads nobody completed. Younger ones are uploads in progress
    // (the registry looks live); older than the purge age, abandoned.
    for m in &ctx.inv.multipart_uploads {
        let bytes = m
            .bytes
            .map(|b| format!("{b} bytes"))
            .unwrap_or_else(|| "size unknown".into());
        let mut f = if m.initiated > o.now - o.grace {
            Finding::new(
                Code::UploadRecent,
                &m.path,
                format!(
                    "multipart upload {} started {}s ago ({bytes})",
                    m.upload_id,
                    (o.now - m.initiated).max(0)
                ),
            )
        } else if m.initiated < o.now - o.purge_age {
            Finding::new(
                Code::UploadMultipartIncomplete,
                &m.path,
                format!(
                    "incomplete multipart upload {} started {}h ago ({bytes}), older than the purge age of {}h",
                    m.upload_id,
                    (o.now - m.initiated) / 3600,
                    o.purge_age / 3600
                ),
            )
        } else {
            continue;
        };
        if let Some((r, _)) = crate::analysis::unread::repo_of(ctx.inv, &m.path) {
            f = f.repo(r);
        }
        out.push(f);
    }
    for repo in &ctx.inv.repos {
        let name = repo.name.as_str();
        for u in &repo.uploads {
            let path = layout::upload_dir(name, &u.uuid);
            let started = match &u.started_at {
                StartedAt::Ok(t) => Some(*t),
                StartedAt::Missing | StartedAt::Invalid(_) => None,
            };
            let newest = started.unwrap_or(u.mtime).max(u.mtime);
            // Written to within the grace window: active, whatever startedat says (a client may
            // resume an old upload), so never stale.
            let active = newest > o.now - o.grace;
            if active {
                out.push(
                    Finding::new(
                        Code::UploadRecent,
                        &path,
                        format!(
                            "upload active {}s ago ({} bytes)",
                            (o.now - newest).max(0),
                            u.bytes
                        ),
                    )
                    .repo(name),
                );
            }
            match (&u.started_at, started) {
                (_, Some(t)) if t < o.now - o.purge_age && !active => out.push(
                    Finding::new(
                        Code::UploadStale,
                        &path,
                        format!(
                            "upload started {}h ago ({} bytes), older than the purge age of {}h",
                            (o.now - t) / 3600,
                            u.bytes,
                            o.purge_age / 3600
                        ),
                    )
                    .repo(name),
                ),
                (StartedAt::Missing, _) => out.push(
                    Finding::new(
                        Code::UploadNoStartedat,
                        &path,
                        format!("no startedat file ({} bytes): the registry never purges it", u.bytes),
                    )
                    .repo(name),
                ),
                (StartedAt::Invalid(why), _) => out.push(
                    Finding::new(
                        Code::UploadNoStartedat,
                        &path,
                        format!("startedat is not an RFC 3339 time ({why}): the registry never purges it"),
                    )
                    .repo(name),
                ),
                _ => {}
            }
        }
    }
}

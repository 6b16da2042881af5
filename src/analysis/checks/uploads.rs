//! Checks of unfinished uploads against the purge age and the grace window.

use super::Ctx;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::StartedAt;
use crate::model::layout;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let o = ctx.opts;
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

//! Checks of tags: current link present and resolving to a revision, and the tag index (history).

use super::Ctx;
use crate::model::digest::Digest;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{LinkState, Repo};
use crate::model::layout;

/// A revision folder that holds a link file at all (a broken one is a link finding, not a tag one).
fn has_revision(repo: &Repo, d: &Digest) -> bool {
    repo.revision(d).is_some_and(|l| !l.is_absent())
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for (ri, repo) in ctx.inv.repos.iter().enumerate() {
        let name = repo.name.as_str();
        let blind = ctx.blind.repo(name);
        // Served only through 2.8's `_layers` fallback: `revision-link-missing` says so.
        let fallback = &ctx.reach.repos[ri].fallback;
        let served = |d: &Digest| fallback.binary_search(d).is_ok();
        for tag in &repo.tags {
            let t = tag.name.as_str();
            let current_path = layout::tag_current_link(name, t);
            match &tag.current {
                // A tag folder that could not be listed reads as one without `current`.
                LinkState::Absent if blind.tags => {}
                LinkState::Absent => out.push(
                    Finding::new(
                        Code::TagCurrentMissing,
                        &current_path,
                        format!(
                            "tag {t} has no current/link: listed by the registry but not pullable"
                        ),
                    )
                    .repo(name)
                    .tag(t),
                ),
                LinkState::Ok(c) => {
                    if !has_revision(repo, c) && !served(c) && !blind.revisions {
                        out.push(
                            Finding::new(
                                Code::TagDangling,
                                &current_path,
                                format!("tag {t} -> {c}, which has no revision in {name}"),
                            )
                            .repo(name)
                            .tag(t)
                            .digest(c),
                        );
                    }
                    if !tag.index.iter().any(|l| &l.path_digest == c) && !blind.tags {
                        out.push(
                            Finding::new(
                                Code::TagIndexMissingCurrent,
                                layout::tag_index_link(name, t, c),
                                format!("tag {t}'s current digest {c} is missing from its index"),
                            )
                            .repo(name)
                            .tag(t)
                            .digest(c),
                        );
                    }
                }
                _ => {}
            }
            for l in &tag.index {
                if l.target().is_some()
                    && !has_revision(repo, &l.path_digest)
                    && !served(&l.path_digest)
                    && !blind.revisions
                {
                    out.push(
                        Finding::new(
                            Code::TagIndexDangling,
                            layout::tag_index_link(name, t, &l.path_digest),
                            format!("history entry of tag {t} whose revision no longer exists"),
                        )
                        .repo(name)
                        .tag(t)
                        .digest(&l.path_digest),
                    );
                }
            }
        }
    }
}

//! Checks of repository folders: the `_layers` / `_manifests` / `tags` skeleton and emptiness.

use super::Ctx;
use crate::model::finding::{Code, Finding};
use crate::model::layout;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for repo in &ctx.inv.repos {
        let name = repo.name.as_str();
        if repo.has_manifests && !repo.has_layers {
            out.push(
                Finding::new(
                    Code::RepoMissingLayers,
                    layout::layers_dir(name),
                    "repository has _manifests but no _layers: registry 3 GC aborts, 2.8 GC cannot see it and sweeps its blobs",
                )
                .repo(name),
            );
        }
        if repo.has_layers && !repo.has_manifests {
            out.push(
                Finding::new(
                    Code::RepoMissingManifests,
                    layout::manifests_dir(name),
                    "repository has _layers but no _manifests (registry 3 does not list it)",
                )
                .repo(name),
            );
        }
        let has_revisions = repo.revisions.iter().any(|l| l.target().is_some());
        if has_revisions && !repo.has_tags {
            out.push(
                Finding::new(
                    Code::RepoMissingTags,
                    layout::tags_dir(name),
                    "repository has revisions but no tags folder",
                )
                .repo(name),
            );
        }
        let blind = ctx.blind.repo(name);
        if repo.has_manifests
            && !has_revisions
            && repo.tags.is_empty()
            && !blind.revisions
            && !blind.tags
        {
            out.push(
                Finding::new(
                    Code::RepoEmpty,
                    layout::repo_dir(name),
                    "no tags and no revisions",
                )
                .repo(name),
            );
        }
    }
}

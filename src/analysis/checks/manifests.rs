//! Checks of manifest revisions: the manifest blob exists and is readable, what it references is
//! present and linked, index children resolve, and which revisions are untagged.

use super::Ctx;
use crate::analysis::reach::RevisionClass;
use crate::model::finding::{Code, Finding};
use crate::model::layout;
use crate::model::manifest::{GcFailure, Kind, Role};

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let inv = ctx.inv;
    // One finding per (reference, repository), however many manifests share the reference.
    let mut seen = std::collections::HashSet::new();
    for (ri, repo) in inv.repos.iter().enumerate() {
        let name = repo.name.as_str();
        for rev in &repo.revisions {
            // Only live revisions: a broken or mismatched link is a link finding, and what it
            // happens to name is not this revision's manifest.
            let m = &rev.path_digest;
            if !rev.names_own_folder() {
                continue;
            }
            let rev_path = layout::revision_link(name, m);
            match ctx.reach.repos[ri].class(repo, m) {
                Some(RevisionClass::TaggedChild) => out.push(
                    Finding::new(
                        Code::RevisionUntaggedChild,
                        &rev_path,
                        format!("{m} is named by no tag but is a child of a tagged index: registry 2.8 garbage-collect --delete-untagged deletes it and breaks the image"),
                    )
                    .repo(name)
                    .digest(m),
                ),
                Some(RevisionClass::Untagged) => out.push(
                    Finding::new(
                        Code::RevisionUntagged,
                        &rev_path,
                        format!("{m} is reachable from no tag of {name}"),
                    )
                    .repo(name)
                    .digest(m),
                ),
                _ => {}
            }
            if inv.blob(m).is_none() {
                out.push(
                    Finding::new(
                        Code::RevisionBlobMissing,
                        &rev_path,
                        format!(
                            "revision {m} of {name} has no manifest blob ({} does not exist)",
                            layout::blob_data(m)
                        ),
                    )
                    .repo(name)
                    .digest(m),
                );
                continue;
            }
            let blob_path = layout::blob_data(m);
            let man = match inv.manifest(m) {
                Some(Ok(man)) => man,
                Some(Err(invalid)) => {
                    let effect = match invalid.gc {
                        GcFailure::Abort => "garbage-collect aborts on it",
                        GcFailure::Panic => "garbage-collect panics on it",
                    };
                    out.push(
                        Finding::new(
                            Code::ManifestInvalid,
                            &blob_path,
                            format!(
                                "manifest {m} of {name} is unreadable: {}; {effect}",
                                invalid.reason
                            ),
                        )
                        .repo(name)
                        .digest(m),
                    );
                    continue;
                }
                None => continue,
            };
            if man.kind == Kind::Schema1 {
                out.push(
                    Finding::new(
                        Code::ManifestSchema1,
                        &blob_path,
                        format!("{m} of {name} is a Docker schema1 manifest: registry 3 answers 500 for it and its garbage-collect aborts"),
                    )
                        .repo(name)
                        .digest(m),
                );
            }
            for bad in &man.bad_refs {
                out.push(
                    Finding::new(
                        Code::ManifestInvalid,
                        &blob_path,
                        format!(
                            "manifest {m} references {bad:?}, which is not a valid digest; pulls of it fail"
                        ),
                    )
                    .repo(name)
                    .digest(m),
                );
            }
            for r in &man.refs {
                match r.role {
                    Role::Child => {
                        let why = if !repo.live_revision(&r.digest) {
                            "has no revision in the repository"
                        } else if inv.blob(&r.digest).is_none() {
                            "has no manifest blob"
                        } else {
                            continue;
                        };
                        out.push(
                            Finding::new(
                                Code::IndexChildMissing,
                                layout::revision_link(name, &r.digest),
                                format!("child {} of {} {m} {why}", r.digest, man.kind.name()),
                            )
                            .repo(name)
                            .digest(&r.digest),
                        );
                    }
                    Role::Config | Role::Layer if r.foreign => {}
                    Role::Config | Role::Layer => {
                        let what = if r.role == Role::Config {
                            "config"
                        } else {
                            "layer"
                        };
                        let missing = inv.blob(&r.digest).is_none();
                        // A present but broken link is reported (and rebuilt) as a link finding.
                        let unlinked =
                            !missing && repo.layer(&r.digest).is_none_or(|l| l.is_absent());
                        // Remember only what is reported: the set stays as small as the findings.
                        if !(missing || unlinked) || !seen.insert((r.digest.clone(), ri)) {
                            continue;
                        }
                        if missing {
                            out.push(
                                Finding::new(
                                    Code::ManifestRefMissing,
                                    layout::blob_data(&r.digest),
                                    format!("{what} of manifest {m} has no blob"),
                                )
                                .repo(name)
                                .digest(&r.digest),
                            );
                        } else {
                            out.push(
                                Finding::new(
                                    Code::ManifestRefUnlinked,
                                    layout::layer_link(name, &r.digest),
                                    format!("{what} of manifest {m} exists but {name} has no _layers link to it"),
                                )
                                .repo(name)
                                .digest(&r.digest),
                            );
                        }
                    }
                }
            }
        }
    }
}

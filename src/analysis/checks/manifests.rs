//! Checks of manifest revisions: the manifest blob exists and is readable, what it references is
//! present and linked, index children resolve, and which revisions are untagged.

use super::Ctx;
use crate::analysis::reach::RevisionClass;
use crate::model::finding::{Code, Finding};
use crate::model::layout;
use crate::model::manifest::{GcFailure, Kind, Role};

/// One finding per (reference, repository), however many manifests share the reference.
type Seen = std::collections::HashSet<(crate::model::digest::Digest, usize)>;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let inv = ctx.inv;
    let mut seen = Seen::new();
    for (ri, repo) in inv.repos.iter().enumerate() {
        let name = repo.name.as_str();
        let blind = ctx.blind.repo(name);
        for rev in &repo.revisions {
            // Only live revisions: a broken or mismatched link is a link finding, and what it
            // happens to name is not this revision's manifest.
            let m = &rev.path_digest;
            if !rev.names_own_folder() {
                continue;
            }
            let rev_path = layout::revision_link(name, m);
            // Which tags reach it is no verdict while tags or manifests could not be read.
            let class = if blind.tags || blind.revisions {
                None
            } else {
                ctx.reach.repos[ri].class(repo, m)
            };
            match class {
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
                if !ctx.blind.blob_location(m) {
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
                }
                continue;
            }
            manifest(ctx, ri, m, &mut seen, out);
        }
        // Manifests 2.8 serves only through the `_layers` fallback: their revision link is what
        // is missing, and what they reference is checked like a revision's.
        for m in &ctx.reach.repos[ri].fallback {
            let tags: Vec<&str> = repo
                .tags
                .iter()
                .filter(|t| t.current.digest() == Some(m))
                .map(|t| t.name.as_str())
                .collect();
            let who = if tags.is_empty() {
                "an index".to_string()
            } else {
                format!("tag {}", tags.join(", "))
            };
            let mut f = Finding::new(
                Code::RevisionLinkMissing,
                layout::revision_link(name, m),
                format!(
                    "{who} of {name} names {m}, which has no revision link: registry 2.8 serves it only through the _layers link of the same digest, registry 3 answers MANIFEST_UNKNOWN, and garbage-collect never marks it"
                ),
            )
            .repo(name)
            .digest(m);
            if let Some(t) = tags.first() {
                f = f.tag(*t);
            }
            out.push(f);
            manifest(ctx, ri, m, &mut seen, out);
        }
    }
}

/// The checks of one served manifest `m` of repository `ri`: readable, what it references
/// present and linked, index children served.
fn manifest(
    ctx: &Ctx,
    ri: usize,
    m: &crate::model::digest::Digest,
    seen: &mut Seen,
    out: &mut Vec<Finding>,
) {
    let inv = ctx.inv;
    let repo = &inv.repos[ri];
    let name = repo.name.as_str();
    let blind = ctx.blind.repo(name);
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
            return;
        }
        None => {
            // An I/O error is not a verdict on the manifest (hashing may have said so already).
            let hashed = inv.blob_index(m).is_some_and(|i| {
                matches!(
                    inv.verify_of(i),
                    crate::model::inventory::Verify::Unreadable(_)
                )
            });
            if let (Some(e), false) = (inv.manifest_unreadable(m), hashed) {
                out.push(
                    Finding::new(
                        Code::PathUnreadable,
                        &blob_path,
                        format!("cannot read manifest blob: {e}"),
                    )
                    .repo(name)
                    .digest(m),
                );
            }
            return;
        }
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
        let why = if bad.is_empty() {
            // containers/image reads an empty config digest as "no config" and pulls; docker and
            // containerd parse it with go-digest, which refuses "" (docs/fuzzing.md, item 9).
            format!("manifest {m} references an empty digest (a descriptor whose \"digest\" is missing or empty): docker and containerd refuse it, so their pulls fail (containers/image tools such as skopeo read an empty config digest as no config)")
        } else {
            format!(
                "manifest {m} references {bad:?}, which is not a valid digest; pulls of it fail"
            )
        };
        out.push(
            Finding::new(Code::ManifestInvalid, &blob_path, why)
                .repo(name)
                .digest(m),
        );
    }
    for r in &man.refs {
        match r.role {
            Role::Child => {
                let why = if !repo.live_revision(&r.digest) {
                    if crate::analysis::reach::layers_fallback(inv, repo, &r.digest)
                        || blind.revisions
                    {
                        // revision-link-missing says it; or the revisions could not be read.
                        continue;
                    }
                    "has no revision in the repository"
                } else if inv.blob(&r.digest).is_none() {
                    if ctx.blind.blob_location(&r.digest) {
                        continue;
                    }
                    "has no manifest blob"
                } else {
                    continue;
                };
                let link = layout::revision_link(name, &r.digest);
                let unknown = if inv.unjudged_symlink_over(&link).is_some() {
                    " (its revision link is a symbolic link, which the registry follows and regfsck does not: whether pulls find the child is not known here)"
                } else {
                    ""
                };
                out.push(
                    Finding::new(
                        Code::IndexChildMissing,
                        link,
                        format!(
                            "child {} of {} {m} {why}{unknown}",
                            r.digest,
                            man.kind.name()
                        ),
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
                let missing = inv.blob(&r.digest).is_none() && !ctx.blind.blob_location(&r.digest);
                // A present but broken link is reported (and rebuilt) as a link finding.
                let unlinked = inv.blob(&r.digest).is_some()
                    && !blind.layers
                    && repo.layer(&r.digest).is_none_or(|l| l.is_absent());
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

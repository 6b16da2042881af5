//! Checks of link files: strict syntax, content versus folder, layer links' targets.

use super::Ctx;
use crate::model::digest::Digest;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::{EntryType, Link, LinkState};
use crate::model::layout;

/// Findings for a link file's syntax and type; `path_digest` is the digest its folder names.
pub(super) fn link_state(
    path: &str,
    state: &LinkState,
    path_digest: Option<&Digest>,
    repo: &str,
) -> Option<Finding> {
    let f = match state {
        LinkState::Ok(c) => {
            let p = path_digest?;
            if c == p {
                return None;
            }
            if c.algorithm() != p.algorithm() {
                Finding::new(
                    Code::LinkAlias,
                    path,
                    format!("{} folder links to canonical {c}", p.algorithm().name()),
                )
            } else {
                Finding::new(
                    Code::LinkMismatch,
                    path,
                    format!("link names {c} but sits in the folder of {p}"),
                )
            }
        }
        LinkState::Malformed { error, len } => Finding::new(
            Code::LinkMalformed,
            path,
            if *len == 0 {
                "link is empty (0 bytes): the registry reports \"invalid checksum digest format\""
                    .to_string()
            } else {
                format!(
                    "link content ({len} bytes) is not a digest: the registry reports \"{}\"",
                    error.registry_message()
                )
            },
        ),
        LinkState::TooLarge { len } => Finding::new(
            Code::LinkMalformed,
            path,
            format!("link is {len} bytes, far larger than any digest"),
        ),
        LinkState::NotFile(EntryType::Symlink) => Finding::new(
            Code::LinkNotFile,
            path,
            "link is a symbolic link, which the registry follows and regfsck never does (path-symlink says where it leads: into the store or out of it, whether pulls through it work is not known here); replace it by the link it should be",
        ),
        LinkState::NotFile(kind) => Finding::new(
            Code::LinkNotFile,
            path,
            format!(
                "link is a {}, not a regular file: the registry cannot read it",
                match kind {
                    EntryType::Dir => "directory",
                    _ => "special file",
                }
            ),
        ),
        LinkState::Unreadable(e) => {
            Finding::new(Code::PathUnreadable, path, format!("cannot read link: {e}"))
        }
        LinkState::Absent => return None,
    };
    let f = f.repo(repo);
    Some(match path_digest {
        Some(d) => f.digest(d),
        None => f,
    })
}

fn push_links(
    links: &[Link],
    path_of: impl Fn(&Digest) -> String,
    repo: &str,
    out: &mut Vec<Finding>,
) {
    for l in links {
        if let Some(f) = link_state(
            &path_of(&l.path_digest),
            &l.state(),
            Some(&l.path_digest),
            repo,
        ) {
            out.push(f);
        }
    }
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let inv = ctx.inv;
    for (ri, repo) in inv.repos.iter().enumerate() {
        let name = repo.name.as_str();
        push_links(&repo.layers, |d| layout::layer_link(name, d), name, out);
        push_links(
            &repo.revisions,
            |d| layout::revision_link(name, d),
            name,
            out,
        );
        for tag in &repo.tags {
            let current = layout::tag_current_link(name, &tag.name);
            if let Some(f) = link_state(&current, &tag.current, None, name) {
                out.push(f.tag(&tag.name));
            }
            for l in &tag.index {
                let p = layout::tag_index_link(name, &tag.name, &l.path_digest);
                if let Some(f) = link_state(&p, &l.state(), Some(&l.path_digest), name) {
                    out.push(f.tag(&tag.name));
                }
            }
        }
        for odd in repo.odd_layer_links.iter().chain(&repo.odd_revision_links) {
            if odd.legacy_signature {
                out.push(
                    Finding::new(
                        Code::RevisionLegacySignature,
                        &odd.path,
                        "schema1 signature link of registry 2.4 or older",
                    )
                    .repo(name),
                );
            } else {
                out.push(
                    Finding::new(
                        Code::PathUnrecognized,
                        &odd.path,
                        "a link file outside the <alg>/<hex>/link grammar (the registry's GC still reads it)",
                    )
                    .repo(name),
                );
            }
            if let Some(f) = link_state(&odd.path, &odd.state, None, name) {
                out.push(f);
            }
        }
        // Layer links: target present, and used by some manifest of the repository.
        let used = &ctx.reach.repos[ri];
        let blind = ctx.blind.repo(name);
        for l in &repo.layers {
            let Some(target) = l.target() else {
                continue;
            };
            let path = layout::layer_link(name, &l.path_digest);
            match inv.blob_index(target) {
                None if ctx.blind.blob_location(target) => {}
                Some(_) if blind.revisions || blind.tags => {}
                None => out.push(
                    Finding::new(
                        Code::LayerLinkDangling,
                        &path,
                        format!("links to {target}, which has no blob"),
                    )
                    .repo(name)
                    .digest(&l.path_digest),
                ),
                Some(i) if !used.uses_blob(i) => out.push(
                    Finding::new(
                        Code::LayerLinkUnused,
                        &path,
                        format!("no manifest revision of {name} references {target}"),
                    )
                    .repo(name)
                    .digest(&l.path_digest),
                ),
                Some(_) => {}
            }
        }
    }
}

//! The inventory as the store will look once a path is quarantined, so that the planner can see
//! what a removal leaves dangling (a revision whose manifest blob goes, a `_layers` link whose
//! blob goes) and plan the follow-up in the same run. Pure: edits an inventory value.

use crate::model::digest::Digest;
use crate::model::inventory::{
    Blob, Hashed, Inventory, Link, LinkState, Misplaced, Repo, SymlinkTarget,
};
use crate::model::layout;

/// `p` is `top` or lies inside it.
fn under(p: &str, top: &str) -> bool {
    p == top || (p.len() > top.len() && p.starts_with(top) && p.as_bytes()[top.len()] == b'/')
}

fn digest_of(parts: &[&str]) -> Option<Digest> {
    match parts {
        [alg, hex] => layout::digest_from_components(alg, hex),
        _ => None,
    }
}

/// Remove from `inv` what quarantining the v2-relative `path` takes out of the store, as the
/// next scan would see it. Call `Inventory::normalize` afterwards when blobs changed (returns
/// whether they did).
pub(crate) fn quarantine(inv: &mut Inventory, path: &str) -> bool {
    inv.entries.retain(|e| !under(&e.path, path));
    // Symbolic links inside go with it; those that led into it now lead nowhere (the next scan
    // sees them dangling, and repair quarantines a dangling link).
    inv.symlinks.retain(|s| !under(&s.path, path));
    for s in &mut inv.symlinks {
        if matches!(&s.target, SymlinkTarget::Inside { path: to, .. } if under(to, path)) {
            s.target = SymlinkTarget::Dangling;
        }
    }
    let mut blobs_changed = false;
    if under(path, "blobs") || under("blobs", path) {
        let gone: Vec<Digest> = match layout::parse_path(path) {
            layout::Parsed::BlobDir(d) | layout::Parsed::BlobData(d) => vec![d],
            // A fan-out folder or more: every blob below it.
            _ if path.split('/').count() <= 3 => inv
                .blobs
                .iter()
                .filter(|b| under(&layout::blob_dir(&b.digest), path))
                .map(|b| b.digest.clone())
                .collect(),
            // Anything else (a stray file, data at a malformed path) holds no blob.
            _ => Vec::new(),
        };
        for d in &gone {
            inv.manifests.remove(d);
            inv.verify_failures.remove(d);
        }
        let before = inv.blobs.len();
        let gone: crate::model::digest::DigestSet = gone.into_iter().collect();
        inv.blobs.retain(|b| !gone.contains(&b.digest));
        blobs_changed = inv.blobs.len() != before;
    }
    if under(path, "repositories") || under("repositories", path) {
        // Whole repositories inside the path go; the one the path lies in is edited.
        inv.repos
            .retain(|r| !under(&layout::repo_dir(&r.name), path));
        if let Some(repo) = inv
            .repos
            .iter_mut()
            .filter(|r| under(path, &layout::repo_dir(&r.name)))
            .max_by_key(|r| r.name.len())
        {
            let tail = path[layout::repo_dir(&repo.name).len()..]
                .trim_start_matches('/')
                .to_string();
            edit_repo(repo, &tail);
        }
    }
    blobs_changed
}

/// Set in `inv` what writing `digest` to the revision link at the v2-relative `path` makes of it,
/// as the next scan would see it: the revision is then served, and its manifest judged. (Only
/// revision links: what a revision names decides what is checked next.) Returns whether `path`
/// was a revision link of a known repository.
pub(crate) fn write_revision_link(inv: &mut Inventory, path: &str, digest: &Digest) -> bool {
    let layout::Parsed::RevisionLink { repo, digest: d } = layout::parse_path(path) else {
        return false;
    };
    let Some(r) = inv.repos.iter_mut().find(|r| r.name == repo) else {
        return false;
    };
    // Whatever stood there (a malformed file, a symbolic link, a folder) goes into the quarantine.
    inv.entries.retain(|e| !under(&e.path, path));
    inv.symlinks.retain(|s| !under(&s.path, path));
    r.odd_revision_links.retain(|l| !under(&l.path, path));
    let link = Link::new(d.clone(), LinkState::Ok(digest.clone()));
    match r.revisions.iter_mut().find(|l| l.path_digest == d) {
        Some(l) => *l = link,
        None => r.revisions.push(link),
    }
    true
}

/// Set in `inv` what moving the misplaced data at `from` to its canonical path makes of it: the
/// blob exists (its content was hashed, so it is sound) and, if it decodes as a manifest, that
/// manifest is known. Returns whether the blobs changed (then call `Inventory::normalize`).
pub(crate) fn move_blob_home(inv: &mut Inventory, from: &str, m: &Misplaced, now: i64) -> bool {
    inv.entries.retain(|e| e.path != from);
    if inv.blob(&m.digest).is_some() {
        return false;
    }
    inv.blobs.push(Blob {
        digest: m.digest.clone(),
        size: m.size,
        // Unknown here; "just written" keeps every age-based rule from acting on it.
        mtime: now,
        inode: 0,
        hashed: Hashed::Ok,
    });
    if let Some(p) = &m.manifest {
        inv.manifests.insert(m.digest.clone(), p.clone());
    }
    true
}

/// `<alg>/<hex>` (the link's folder: the link goes) or `<alg>/<hex>/link` (the file goes, the
/// folder stays: the scan then sees an absent link).
fn remove_link(links: &mut Vec<Link>, rest: &[&str]) {
    let (digest, link_only) = match rest {
        [a, h, "link"] => (digest_of(&[a, h]), true),
        [a, h] => (digest_of(&[a, h]), false),
        _ => (None, false),
    };
    let Some(d) = digest else { return };
    if link_only {
        if let Some(l) = links.iter_mut().find(|l| l.path_digest == d) {
            l.set_state(LinkState::Absent);
        }
    } else {
        links.retain(|l| l.path_digest != d);
    }
}

fn edit_repo(repo: &mut Repo, tail: &str) {
    let parts: Vec<&str> = tail.split('/').collect();
    let name = repo.name.clone();
    repo.odd_layer_links
        .retain(|l| !under(&l.path, &format!("{}/{tail}", layout::repo_dir(&name))));
    repo.odd_revision_links
        .retain(|l| !under(&l.path, &format!("{}/{tail}", layout::repo_dir(&name))));
    match parts.as_slice() {
        ["_layers"] => {
            repo.has_layers = false;
            repo.layers.clear();
        }
        ["_layers", rest @ ..] => remove_link(&mut repo.layers, rest),
        ["_manifests"] => {
            repo.has_manifests = false;
            repo.has_revisions = false;
            repo.has_tags = false;
            repo.revisions.clear();
            repo.tags.clear();
        }
        ["_manifests", "revisions"] => {
            repo.has_revisions = false;
            repo.revisions.clear();
        }
        ["_manifests", "revisions", rest @ ..] => remove_link(&mut repo.revisions, rest),
        ["_manifests", "tags"] => {
            repo.has_tags = false;
            repo.tags.clear();
        }
        ["_manifests", "tags", tag] => repo.tags.retain(|t| t.name != *tag),
        ["_manifests", "tags", tag, "current", ..] => {
            if let Some(t) = repo.tags.iter_mut().find(|t| t.name == *tag) {
                t.current = LinkState::Absent;
            }
        }
        ["_manifests", "tags", tag, "index", a, h, ..] => {
            if let (Some(t), Some(d)) = (
                repo.tags.iter_mut().find(|t| t.name == *tag),
                digest_of(&[a, h]),
            ) {
                t.index.retain(|l| l.path_digest != d);
            }
        }
        ["_uploads"] => {
            repo.has_uploads = false;
            repo.uploads.clear();
        }
        ["_uploads", uuid, ..] => repo.uploads.retain(|u| u.uuid != *uuid),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::{Blob, Hashed, Tag};

    fn inv() -> (Inventory, Digest, Digest) {
        let m = Digest::of_bytes(b"manifest");
        let l = Digest::of_bytes(b"layer");
        let mut inv = Inventory::default();
        for d in [&m, &l] {
            inv.blobs.push(Blob {
                digest: d.clone(),
                size: 1,
                mtime: 0,
                inode: 0,
                hashed: Hashed::Ok,
            });
        }
        inv.repos.push(Repo {
            name: "a/b".into(),
            has_layers: true,
            has_manifests: true,
            has_revisions: true,
            has_tags: true,
            layers: vec![Link::new(l.clone(), LinkState::Ok(l.clone()))],
            revisions: vec![Link::new(m.clone(), LinkState::Ok(m.clone()))],
            tags: vec![Tag {
                name: "v1".into(),
                current: LinkState::Ok(m.clone()),
                index: vec![Link::new(m.clone(), LinkState::Ok(m.clone()))],
                index_mtimes: Box::new([]),
            }],
            ..Repo::default()
        });
        inv.normalize();
        (inv, m, l)
    }

    #[test]
    fn removals_follow_the_path_grammar() {
        let (mut i, m, l) = inv();
        assert!(quarantine(&mut i, &layout::blob_dir(&m)));
        i.normalize();
        assert!(i.blob(&m).is_none() && i.blob(&l).is_some());

        let (mut i, m, l) = inv();
        quarantine(&mut i, &layout::layer_link("a/b", &l));
        assert!(i.repos[0].layers[0].is_absent(), "the folder stays");
        quarantine(
            &mut i,
            layout::revision_link("a/b", &m)
                .strip_suffix("/link")
                .unwrap(),
        );
        assert!(i.repos[0].revisions.is_empty());
        quarantine(&mut i, &layout::tag_dir("a/b", "v1"));
        assert!(i.repos[0].tags.is_empty());

        let (mut i, _, _) = inv();
        quarantine(&mut i, "repositories/a");
        assert!(i.repos.is_empty());
        let (mut i, _, _) = inv();
        quarantine(&mut i, "repositories/a/bc");
        assert_eq!(i.repos.len(), 1, "a sibling name is not inside");
        assert_eq!(i.repos[0].tags.len(), 1);
    }
}

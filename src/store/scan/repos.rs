//! Walks `repositories/`: the repository-name hierarchy (iteratively, any depth), then each
//! repository's `_layers`, `_manifests` and `_uploads` in parallel.

use super::fsio::{self, Child};
use super::{io, workers};
use super::{ScanOptions, Sink};
use crate::model::digest::Digest;
use crate::model::inventory::*;
use crate::model::layout;
use crate::progress::Bar;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub(crate) struct Walked {
    pub found: bool,
    pub repos: Vec<Repo>,
    pub tree: Vec<TreeDir>,
    pub sink: Sink,
}

/// What every walk of a repository needs: where the store is, how to look, and the counter of
/// objects found (bumped as links are found, so a cold scan's progress moves).
#[derive(Clone, Copy)]
struct Ctx<'a> {
    v2: &'a Path,
    opts: &'a ScanOptions,
    found: &'a dyn Bar,
}

const MARKERS: [&str; 3] = ["_layers", "_manifests", "_uploads"];

fn join(dir: &str, name: &str) -> String {
    if name.is_empty() {
        dir.to_string()
    } else if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

pub(crate) fn scan(v2: &Path, opts: &ScanOptions, found: &dyn Bar) -> Walked {
    let mut w = Walked {
        found: true,
        repos: Vec::new(),
        tree: Vec::new(),
        sink: Sink::default(),
    };
    let base = v2.join("repositories");
    match std::fs::symlink_metadata(&base) {
        Err(_) => {
            w.found = false;
            return w;
        }
        Ok(m) if !m.is_dir() => {
            w.found = false;
            w.sink.entry(
                "repositories".into(),
                EntryKind::Unrecognized("repositories is not a folder".into()),
            );
            return w;
        }
        Ok(_) => {}
    }
    // The name hierarchy: "" is repositories/ itself. Each folder with its path as shown (lossy
    // below a name that is not UTF-8) and as on disk. Folders below a non-UTF-8 name are walked
    // too, for their names only: the registry's catalog walk descends into them and aborts on the
    // first repository it finds there, so the GC prediction needs the shape of that subtree.
    // Level by level, each level's folders listed in parallel: on a cold cache a registry with
    // thousands of repositories would otherwise wait for each listing in turn.
    let mut level: Vec<(String, std::path::PathBuf, bool)> =
        vec![(String::new(), std::path::PathBuf::new(), true)];
    let mut repo_names = Vec::new();
    while !level.is_empty() && !opts.cancelled() {
        let done: Vec<NameFolder> =
            workers::map_vec(level, |(dir, raw, utf8)| name_folder(&base, dir, raw, utf8));
        level = Vec::new();
        for f in done {
            w.sink.merge(f.sink);
            w.tree.extend(f.tree);
            repo_names.extend(f.repo);
            level.extend(f.next);
        }
    }
    let cx = Ctx { v2, opts, found };
    let parts: Vec<(Repo, Sink)> = workers::map_vec(repo_names, |(name, children)| {
        if opts.cancelled() {
            return None;
        }
        let (r, s) = scan_repo(cx, name, &children);
        // Links were counted as they were found (`alg_links`).
        found.inc((r.tags.len() + s.entries.len()) as u64);
        Some((r, s))
    })
    .into_iter()
    .flatten()
    .collect();
    for (r, s) in parts {
        w.repos.push(r);
        w.sink.merge(s);
    }
    w
}

/// One folder of the repository-name tree, listed: what it holds and where to go next.
struct NameFolder {
    sink: Sink,
    tree: Option<TreeDir>,
    /// A repository: its name and its entries.
    repo: Option<(String, Vec<Child>)>,
    /// Subfolders to walk: path as shown, path on disk, whether every name so far is UTF-8.
    next: Vec<(String, std::path::PathBuf, bool)>,
}

fn name_folder(base: &Path, dir: String, raw: std::path::PathBuf, utf8: bool) -> NameFolder {
    let mut out = NameFolder {
        sink: Sink::default(),
        tree: None,
        repo: None,
        next: Vec::new(),
    };
    let rel = join("repositories", &dir);
    let children = match fsio::list(&base.join(&raw)) {
        Ok(c) => c,
        Err(e) => {
            out.sink.io_error(&rel, e);
            return out;
        }
    };
    let sink = &mut out.sink;
    let mut tree_children = Vec::with_capacity(children.len());
    let mut is_repo = false;
    for c in &children {
        let lossy = c.name.to_string_lossy();
        let name_utf8 = c.name.to_str().is_some();
        tree_children.push((lossy.to_string(), c.kind));
        if !name_utf8 && utf8 {
            sink.non_utf8(&rel, &c.name);
        }
        if !(utf8 && name_utf8) {
            // Only the shape of a subtree below a non-UTF-8 name is kept (see above).
            match c.kind {
                EntryType::Dir if lossy.starts_with('_') => is_repo |= MARKERS.contains(&&*lossy),
                EntryType::Dir => out
                    .next
                    .push((join(&dir, &lossy), raw.join(&c.name), false)),
                EntryType::Symlink if utf8 => sink.entry(join(&rel, &lossy), EntryKind::Symlink),
                _ => {}
            }
            continue;
        }
        let name = &*lossy;
        let path = join(&rel, name);
        match c.kind {
            EntryType::Symlink => sink.entry(path, EntryKind::Symlink),
            EntryType::Dir if name.starts_with('_') => {
                if MARKERS.contains(&name) && !dir.is_empty() {
                    is_repo = true;
                } else {
                    sink.entry(
                        path,
                        EntryKind::Unrecognized("a _ folder the registry never writes here".into()),
                    );
                }
            }
            EntryType::Dir => out.next.push((join(&dir, name), raw.join(name), true)),
            _ if name.starts_with('_') => sink.entry(path, EntryKind::StrayUnderscore),
            _ if layout::is_temp_residue(name) => sink.entry(path, EntryKind::TempResidue),
            _ => sink.entry(
                path,
                EntryKind::Unrecognized("a file among repositories".into()),
            ),
        }
    }
    if is_repo && utf8 {
        if let Some(why) = layout::repo_name_problem(&dir) {
            sink.entry(rel.clone(), EntryKind::RepoNameInvalid(why));
        }
        out.repo = Some((dir.clone(), children));
    } else if children.is_empty() && !dir.is_empty() && utf8 {
        sink.entry(rel.clone(), EntryKind::EmptyDir);
    }
    out.tree = Some(TreeDir {
        path: dir,
        children: tree_children,
    });
    out
}

fn scan_repo(cx: Ctx, name: String, children: &[Child]) -> (Repo, Sink) {
    let mut repo = Repo {
        name,
        ..Repo::default()
    };
    let has = |n: &str| {
        children
            .iter()
            .any(|c| c.name == n && c.kind == EntryType::Dir)
    };
    repo.has_layers = has("_layers");
    repo.has_manifests = has("_manifests");
    repo.has_uploads = has("_uploads");
    // `_layers` and `_manifests` side by side: each is a queue of reads of its own.
    let (layers, mut s) = workers::join(
        || {
            let mut s = Sink::default();
            let found = repo
                .has_layers
                .then(|| link_tree(cx, &layout::layers_dir(&repo.name), Tree::Layers, &mut s));
            (found, s)
        },
        || {
            let mut s = Sink::default();
            let mut m = ManifestsDir::default();
            if repo.has_manifests {
                manifests_dir(cx, &repo.name, &mut m, &mut s);
            }
            (m, s)
        },
    );
    let (found, mut ls) = layers;
    if let Some(found) = found {
        repo.layers = found.links;
        repo.odd_layer_links = found.odd;
        repo.non_utf8_links.extend(found.non_utf8_links);
    }
    ls.merge(std::mem::take(&mut s.1));
    let m = s.0;
    repo.has_revisions = m.has_revisions;
    repo.revisions = m.revisions;
    repo.odd_revision_links = m.odd_revision_links;
    repo.has_tags = m.has_tags;
    repo.tags = m.tags;
    repo.odd_tags = m.odd_tags;
    repo.non_utf8_links.extend(m.non_utf8_links);
    let mut s = ls;
    if repo.has_uploads {
        uploads(cx.v2, &mut repo, &mut s);
    }
    (repo, s)
}

/// Any entry where only folders are expected: report it and say whether to descend.
fn unexpected(path: String, c: &Child, what: &str, s: &mut Sink) {
    match c.kind {
        EntryType::Symlink => s.entry(path, EntryKind::Symlink),
        _ if c.name.to_str().is_some_and(layout::is_temp_residue) => {
            s.entry(path, EntryKind::TempResidue)
        }
        _ => s.entry(path, EntryKind::Unrecognized(what.to_string())),
    }
}

/// Every file named `link` below `rel` (off the grammar): the registry's GC reads them all.
fn odd_links(v2: &Path, rel: String, legacy: bool, odd: &mut Vec<OddLink>, s: &mut Sink) {
    let mut stack = vec![rel];
    while let Some(dir) = stack.pop() {
        let Some(children) = s.list(v2, &dir) else {
            continue;
        };
        if children.is_empty() {
            s.entry(dir.clone(), EntryKind::EmptyDir);
        }
        for c in children {
            let Some(name) = c.name.to_str() else {
                s.non_utf8(&dir, &c.name);
                continue;
            };
            let path = format!("{dir}/{name}");
            match c.kind {
                EntryType::Dir => stack.push(path),
                _ if name == "link" => {
                    if c.kind == EntryType::Symlink {
                        s.entry(path.clone(), EntryKind::Symlink);
                    }
                    let (state, _, vanished) = fsio::read_link(&v2.join(&path));
                    if vanished {
                        s.entry(
                            path.clone(),
                            EntryKind::Changed("vanished during the scan".into()),
                        );
                    }
                    odd.push(OddLink {
                        path,
                        state,
                        legacy_signature: legacy,
                    });
                }
                _ => unexpected(path, &c, "not a link file", s),
            }
        }
    }
}

/// Which link tree is walked: what the fast lane needs from each link and what a missing one means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tree {
    /// `_layers`: content only.
    Layers,
    /// `_manifests/revisions`: a folder without a link is recorded as `Absent` (API-delete
    /// residue), and subfolders (legacy `signatures/`) are read, as the registry's GC does.
    Revisions,
    /// A tag's `index`: content (and, scanned deep, the mtime by which repair picks the newest
    /// entry to restore a lost `current`).
    TagIndex,
}

/// A `<rel>/<alg>/<hex>/link` tree (`_layers`, `_manifests/revisions`, tag `index`).
fn link_tree(cx: Ctx, rel: &str, tree: Tree, s: &mut Sink) -> Found {
    let mut found = Found::default();
    let Some(algs) = s.list(cx.v2, rel) else {
        return found;
    };
    for a in algs {
        let Some(alg) = a.name.to_str() else {
            s.non_utf8(rel, &a.name);
            continue;
        };
        let arel = format!("{rel}/{alg}");
        if a.kind != EntryType::Dir {
            unexpected(arel, &a, "not an algorithm folder", s);
            continue;
        }
        let Some(dir) = s.open(cx.v2, &arel) else {
            continue;
        };
        alg_links(cx, &arel, alg, &dir, tree, &mut found, s);
    }
    // A repository's links are kept for the whole run: no growth slack.
    found.links.shrink_to_fit();
    found
}

/// What a link tree holds.
#[derive(Default)]
struct Found {
    links: Vec<Link>,
    odd: Vec<OddLink>,
    /// Tag index links only, and only when the link was statted (deep scans).
    mtimes: Vec<(Digest, Timestamp)>,
    /// `<alg>/<name>/link` below a digest folder name that is not UTF-8 (lossy).
    non_utf8_links: Vec<String>,
}

impl Found {
    /// A tag's history: its links (without growth slack: most tags have one or two entries, and a
    /// first push reserves four) and their mtimes. A link outside the grammar is reported.
    fn into_tag_history(mut self, s: &mut Sink) -> (Vec<Link>, Box<[(Digest, Timestamp)]>) {
        for o in self.odd {
            s.entry(
                o.path,
                EntryKind::Unrecognized("a link outside the tag index grammar".into()),
            );
        }
        self.links.shrink_to_fit();
        (self.links, self.mtimes.into_boxed_slice())
    }
}

/// The digest folders of one `<alg>` folder, already open as `dir`: listed a batch at a time
/// (`list_batches`: memory stays at one batch however large the repository), each batch in
/// inode order and in parallel chunks (`io::CHUNK`), so that the reads of one repository are
/// many in flight.
fn alg_links(
    cx: Ctx,
    arel: &str,
    alg: &str,
    dir: &fsio::DirFd,
    tree: Tree,
    found: &mut Found,
    s: &mut Sink,
) {
    let listed = dir.list_batches(|hexes| {
        if cx.opts.cancelled() {
            return;
        }
        io::by_inode(hexes);
        if hexes.len() <= io::CHUNK {
            let before = found.links.len();
            digest_folders(cx, arel, alg, dir, hexes, tree, found, s);
            cx.found.inc((found.links.len() - before) as u64);
            return;
        }
        let chunks: Vec<&[Child]> = hexes.chunks(io::CHUNK).collect();
        let parts: Vec<(Found, Sink)> = workers::map(&chunks, |chunk| {
            let (mut f, mut ps) = (Found::default(), Sink::default());
            digest_folders(cx, arel, alg, dir, chunk, tree, &mut f, &mut ps);
            cx.found.inc(f.links.len() as u64);
            (f, ps)
        });
        for (f, ps) in parts {
            found.links.extend(f.links);
            found.odd.extend(f.odd);
            found.non_utf8_links.extend(f.non_utf8_links);
            found.mtimes.extend(f.mtimes);
            s.merge(ps);
        }
    });
    if let Err(e) = listed {
        s.io_error(arel, e);
    }
}

#[allow(clippy::too_many_arguments)]
fn digest_folders(
    cx: Ctx,
    arel: &str,
    alg: &str,
    dir: &fsio::DirFd,
    hexes: &[Child],
    tree: Tree,
    found: &mut Found,
    s: &mut Sink,
) {
    let (v2, opts) = (cx.v2, cx.opts);
    let mut rel = Vec::with_capacity(160);
    for h in hexes {
        // A cold link tree of a large repository takes seconds: Ctrl-C must not wait for it.
        if opts.cancelled() {
            return;
        }
        let Some(hex) = h.name.to_str() else {
            s.non_utf8(arel, &h.name);
            // The registry's walk still reads a `link` in there (and its driver refuses the
            // path): record that one exists, by lstat of the raw name, without reading it.
            let raw = v2.join(arel).join(&h.name).join("link");
            if h.kind == EntryType::Dir && std::fs::symlink_metadata(raw).is_ok() {
                found
                    .non_utf8_links
                    .push(format!("{arel}/{}/link", h.name.to_string_lossy()));
            }
            continue;
        };
        if h.kind != EntryType::Dir {
            unexpected(format!("{arel}/{hex}"), h, "not a digest folder", s);
            continue;
        }
        let Some(digest) = layout::digest_from_components(alg, hex) else {
            let hrel = format!("{arel}/{hex}");
            s.entry(
                hrel.clone(),
                EntryKind::Unrecognized("folder name is not a digest".into()),
            );
            odd_links(v2, hrel, false, &mut found.odd, s);
            continue;
        };
        if !opts.deep {
            // The fast lane: the link file alone, read relative to the open <alg> folder. A
            // revision folder is taken this way only when it provably has no subfolder (a
            // directory's link count is 2 + its subfolders on ext4 and XFS; btrfs says 1).
            let plain = tree != Tree::Revisions
                || dir.stat_at(hex.as_bytes()).is_ok_and(|st| st.st_nlink == 2);
            if plain {
                rel.clear();
                rel.extend_from_slice(hex.as_bytes());
                rel.extend_from_slice(b"/link");
                if let Some(state) = dir.read_link_fast(&rel) {
                    found.links.push(Link::new(digest, state));
                    continue;
                }
            }
        }
        link_dir(v2, format!("{arel}/{hex}"), digest, tree, found, s);
    }
}

fn link_dir(v2: &Path, hrel: String, digest: Digest, tree: Tree, found: &mut Found, s: &mut Sink) {
    let revisions = tree == Tree::Revisions;
    let Some(inner) = s.list(v2, &hrel) else {
        return;
    };
    let mut has_link = false;
    for e in inner {
        let Some(name) = e.name.to_str() else {
            s.non_utf8(&hrel, &e.name);
            continue;
        };
        let p = format!("{hrel}/{name}");
        if name == "link" {
            has_link = true;
            if e.kind == EntryType::Symlink {
                s.entry(p.clone(), EntryKind::Symlink);
            }
            if e.kind == EntryType::Dir {
                // The registry's walks descend into a `link` folder and read any `link` inside.
                odd_links(v2, p.clone(), false, &mut found.odd, s);
            }
            let (state, mtime, vanished) = fsio::read_link(&v2.join(&p));
            if vanished {
                s.entry(p, EntryKind::Changed("vanished during the scan".into()));
            }
            if tree == Tree::TagIndex {
                found.mtimes.push((digest.clone(), mtime));
            }
            found.links.push(Link::new(digest.clone(), state));
        } else if revisions && name == "signatures" && e.kind == EntryType::Dir {
            odd_links(v2, p, true, &mut found.odd, s);
        } else if e.kind == EntryType::Dir {
            s.entry(
                p.clone(),
                EntryKind::Unrecognized("unexpected folder in a link folder".into()),
            );
            odd_links(v2, p, false, &mut found.odd, s);
        } else {
            unexpected(p, &e, "unexpected file in a link folder", s);
        }
    }
    if !has_link {
        s.entry(hrel, EntryKind::EmptyDir);
        if revisions {
            found.links.push(Link::new(digest, LinkState::Absent));
        }
    }
}

/// What `_manifests/` holds.
#[derive(Default)]
struct ManifestsDir {
    has_revisions: bool,
    revisions: Vec<Link>,
    odd_revision_links: Vec<OddLink>,
    has_tags: bool,
    tags: Vec<Tag>,
    odd_tags: Vec<OddTag>,
    /// Revision folders whose names are not UTF-8 (the 2.8 GC's `invalid path`).
    non_utf8_links: Vec<String>,
}

fn manifests_dir(cx: Ctx, repo: &str, m: &mut ManifestsDir, s: &mut Sink) {
    let rel = layout::manifests_dir(repo);
    let Some(children) = s.list(cx.v2, &rel) else {
        return;
    };
    for c in &children {
        let name = c.name.to_str().unwrap_or("");
        let p = format!("{rel}/{}", c.name.to_string_lossy());
        match (name, c.kind) {
            ("revisions", EntryType::Dir) => m.has_revisions = true,
            ("tags", EntryType::Dir) => m.has_tags = true,
            _ if c.name.to_str().is_none() => s.non_utf8(&rel, &c.name),
            _ => unexpected(
                p,
                c,
                "the registry writes only revisions/ and tags/ here",
                s,
            ),
        }
    }
    // Revisions and tags side by side, as `_layers` beside them.
    let ((revisions, rs), (tags, ts)) = workers::join(
        || {
            let mut s = Sink::default();
            let found = m
                .has_revisions
                .then(|| link_tree(cx, &layout::revisions_dir(repo), Tree::Revisions, &mut s));
            (found, s)
        },
        || {
            let mut s = Sink::default();
            let found = m.has_tags.then(|| tags(cx, repo, &mut s));
            (found, s)
        },
    );
    if let Some(found) = revisions {
        m.revisions = found.links;
        m.odd_revision_links = found.odd;
        m.non_utf8_links = found.non_utf8_links;
    }
    if let Some((tags, odd)) = tags {
        m.tags = tags;
        m.odd_tags = odd;
    }
    s.merge(rs);
    s.merge(ts);
}

/// Every tag of a repository, in parallel chunks; with the tags that are not plain folders.
fn tags(cx: Ctx, repo: &str, s: &mut Sink) -> (Vec<Tag>, Vec<OddTag>) {
    let rel = layout::tags_dir(repo);
    let Some(mut children) = s.list(cx.v2, &rel) else {
        return Default::default();
    };
    io::by_inode(&mut children);
    // The fast lane reads `<tag>/current/link` and lists `<tag>/index/sha256/` relative to the
    // open tags folder, without listing the folders in between.
    let dir = if cx.opts.deep {
        None
    } else {
        fsio::DirFd::open(&cx.v2.join(&rel)).ok()
    };
    // A tag is a few reads (its current link, its index folder and links): smaller chunks.
    let chunks: Vec<&[Child]> = children.chunks(io::CHUNK / 4).collect();
    let parts: Vec<(Vec<Tag>, Vec<OddTag>, Sink)> = workers::map(&chunks, |chunk| {
        let (mut tags, mut odd, mut s) = (Vec::new(), Vec::new(), Sink::default());
        for c in *chunk {
            if cx.opts.cancelled() {
                break;
            }
            one_tag(cx, dir.as_ref(), &rel, c, &mut tags, &mut odd, &mut s);
        }
        (tags, odd, s)
    });
    let (mut tags, mut odd) = (Vec::new(), Vec::new());
    for (t, o, ps) in parts {
        tags.extend(t);
        odd.extend(o);
        s.merge(ps);
    }
    // Kept for the whole run: no growth slack.
    tags.shrink_to_fit();
    (tags, odd)
}

/// One entry of a tags folder: a tag (fast lane when `dir` is the open tags folder), or an odd
/// entry that is not a tag folder.
fn one_tag(
    cx: Ctx,
    dir: Option<&fsio::DirFd>,
    rel: &str,
    c: &Child,
    tags: &mut Vec<Tag>,
    odd: &mut Vec<OddTag>,
    s: &mut Sink,
) {
    let Some(name) = c.name.to_str() else {
        s.non_utf8(rel, &c.name);
        odd.push(OddTag {
            name: c.name.to_string_lossy().into_owned(),
            utf8: false,
            kind: c.kind,
            current: None,
        });
        return;
    };
    let trel = format!("{rel}/{name}");
    if c.kind != EntryType::Dir {
        unexpected(trel, c, "not a tag folder", s);
        odd.push(OddTag {
            name: name.to_string(),
            utf8: true,
            kind: c.kind,
            current: None,
        });
        return;
    }
    if !layout::is_valid_tag(name) {
        s.entry(trel.clone(), EntryKind::TagNameInvalid);
    }
    let fast = dir.and_then(|d| tag_fast(cx, d, &trel, name, s));
    let tag = match fast {
        Some(t) => t,
        None => {
            let (t, current) = tag_thorough(cx, &trel, name, s);
            if current.is_some() {
                odd.push(OddTag {
                    name: name.to_string(),
                    utf8: true,
                    kind: EntryType::Dir,
                    current,
                });
            }
            t
        }
    };
    tags.push(tag);
}

/// A tag read the cheap way; `None` when anything is unusual (the caller then lists it).
fn tag_fast(cx: Ctx, tags: &fsio::DirFd, trel: &str, name: &str, s: &mut Sink) -> Option<Tag> {
    let current = tags.read_link_fast(format!("{name}/current/link").as_bytes())?;
    let index = tags
        .open_dir(format!("{name}/index/sha256").as_bytes())
        .ok()?;
    let arel = format!("{trel}/index/sha256");
    let mut found = Found::default();
    alg_links(cx, &arel, "sha256", &index, Tree::TagIndex, &mut found, s);
    let (index, index_mtimes) = found.into_tag_history(s);
    Some(Tag {
        name: name.to_string(),
        current,
        index,
        index_mtimes,
    })
}

/// A tag read by listing every folder of it; with what its `current` is when not a folder.
fn tag_thorough(cx: Ctx, trel: &str, name: &str, s: &mut Sink) -> (Tag, Option<EntryType>) {
    let v2 = cx.v2;
    let mut tag = Tag {
        name: name.to_string(),
        current: LinkState::Absent,
        index: Vec::new(),
        index_mtimes: Box::default(),
    };
    let mut current_kind = None;
    let Some(parts) = s.list(v2, trel) else {
        return (tag, None);
    };
    for p in parts {
        let pname = p.name.to_str().unwrap_or("");
        let prel = format!("{trel}/{}", p.name.to_string_lossy());
        match (pname, p.kind) {
            ("current", EntryType::Dir) => {
                let Some(inner) = s.list(v2, &prel) else {
                    continue;
                };
                for e in inner {
                    let erel = format!("{prel}/{}", e.name.to_string_lossy());
                    if e.name == "link" {
                        if e.kind == EntryType::Symlink {
                            s.entry(erel.clone(), EntryKind::Symlink);
                        }
                        let (state, _, vanished) = fsio::read_link(&v2.join(&erel));
                        if vanished {
                            s.entry(erel, EntryKind::Changed("vanished during the scan".into()));
                        }
                        tag.current = state;
                    } else if e.name.to_str().is_none() {
                        s.non_utf8(&prel, &e.name);
                    } else {
                        unexpected(erel, &e, "unexpected entry beside a tag's current link", s);
                    }
                }
            }
            ("index", EntryType::Dir) => {
                (tag.index, tag.index_mtimes) =
                    link_tree(cx, &prel, Tree::TagIndex, s).into_tag_history(s);
            }
            ("current", kind) => {
                current_kind = Some(kind);
                unexpected(prel, &p, "a tag's current is not a folder", s);
            }
            _ if p.name.to_str().is_none() => s.non_utf8(trel, &p.name),
            _ => unexpected(
                prel,
                &p,
                "the registry writes only current/ and index/ here",
                s,
            ),
        }
    }
    (tag, current_kind)
}

fn uploads(v2: &Path, repo: &mut Repo, s: &mut Sink) {
    let rel = layout::uploads_dir(&repo.name);
    let Some(children) = s.list(v2, &rel) else {
        return;
    };
    for c in children {
        let Some(uuid) = c.name.to_str() else {
            s.non_utf8(&rel, &c.name);
            continue;
        };
        let urel = format!("{rel}/{uuid}");
        if c.kind != EntryType::Dir || !layout::is_upload_uuid(uuid) {
            unexpected(urel, &c, "not an upload folder", s);
            continue;
        }
        let mut up = Upload {
            uuid: uuid.to_string(),
            started_at: StartedAt::Missing,
            bytes: 0,
            mtime: 0,
        };
        // Total size and newest mtime of everything inside, without following links.
        let mut stack = vec![urel.clone()];
        while let Some(dir) = stack.pop() {
            let Some(items) = s.list(v2, &dir) else {
                continue;
            };
            for it in items {
                let p = format!("{dir}/{}", it.name.to_string_lossy());
                if it.name.to_str().is_none() {
                    s.non_utf8(&dir, &it.name);
                }
                match it.kind {
                    EntryType::Dir => stack.push(p),
                    EntryType::Symlink => s.entry(p, EntryKind::Symlink),
                    _ => {
                        if let Ok(m) = std::fs::symlink_metadata(v2.join(&p)) {
                            up.bytes += m.len();
                            up.mtime = up.mtime.max(m.mtime());
                        }
                    }
                }
            }
        }
        let started = v2.join(&urel).join("startedat");
        up.started_at = match fsio::read_small(&started, 64) {
            fsio::Small::Bytes(b, _) => match std::str::from_utf8(&b)
                .ok()
                .and_then(crate::model::timefmt::parse_rfc3339)
            {
                Some(t) => StartedAt::Ok(t),
                None => StartedAt::Invalid(format!("{:?}", String::from_utf8_lossy(&b))),
            },
            fsio::Small::Vanished => StartedAt::Missing,
            fsio::Small::TooLarge(n) => StartedAt::Invalid(format!("{n} bytes")),
            fsio::Small::NotFile(_) => StartedAt::Invalid("not a regular file".into()),
            fsio::Small::Error(e) => StartedAt::Invalid(e),
        };
        repo.uploads.push(up);
    }
}

//! The S3 scanner: one flat listing of `<prefix>/docker/registry/v2/`, split into key ranges
//! listed in parallel, classified key by key into the same `Inventory` the filesystem scanner
//! builds (same entries, same messages), then the link files and manifests the listing cannot
//! vouch for fetched with many requests in flight.
//!
//! What differs from a filesystem, by nature: there are no folders, only keys, so no empty
//! folder ever exists (a folder is seen when a key has its prefix); sizes and mtimes come from
//! the listing; no symbolic links, no non-UTF-8 names. What only object storage has: keys that
//! no filesystem path can hold (`key-not-a-path`) and incomplete multipart uploads
//! (`upload-multipart-incomplete`).
//!
//! A link is verified without a GET when its listing says it holds exactly what its path
//! names: 71 bytes whose ETag is the MD5 of `sha256:<hex>` (one PUT, no KMS; see docs/design.md).

use super::client::{Client, Object};
use super::S3Store;
use crate::model::digest::{Algorithm, Digest, DigestSet};
use crate::model::inventory::*;
use crate::model::layout;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Keys a listing page holds at most (S3's own maximum).
const PAGE: usize = 1000;

/// Where a link's content comes from: the listing's size and ETag, and (after the reads) what
/// the object held.
#[derive(Clone, Debug)]
struct Src {
    size: u64,
    etag: String,
}

#[derive(Default)]
struct TagB {
    current: Option<LinkState>,
    current_src: Option<Src>,
    current_not_folder: bool,
    index: Vec<(Digest, Src)>,
    index_odd: Vec<String>,
    index_seen: DigestSet,
    index_linked: DigestSet,
}

#[derive(Default)]
struct UploadB {
    bytes: u64,
    mtime: i64,
    startedat: Option<Src>,
}

#[derive(Default)]
struct RepoB {
    has_layers: bool,
    has_manifests: bool,
    has_revisions: bool,
    has_tags: bool,
    has_uploads: bool,
    layers: Vec<(Digest, Src)>,
    layer_states: Vec<(Digest, LinkState)>,
    layers_seen: DigestSet,
    layers_linked: DigestSet,
    revisions: Vec<(Digest, Src)>,
    revision_states: Vec<(Digest, LinkState)>,
    revisions_seen: DigestSet,
    revisions_linked: DigestSet,
    odd_layer: Vec<(String, Src, bool)>,
    odd_revision: Vec<(String, Src, bool)>,
    tags: BTreeMap<String, TagB>,
    odd_tags: Vec<OddTag>,
    uploads: BTreeMap<String, UploadB>,
}

/// What the classification of the listing collects.
#[derive(Default)]
pub(super) struct Builder {
    blobs: Vec<Blob>,
    /// ETags of the blobs, by digest (verification asks for exactly this object version).
    pub etags: HashMap<Digest, String, crate::model::digest::DigestBuildHasher>,
    blob_folders: DigestSet,
    blob_data_folder: DigestSet,
    entries: Vec<Entry>,
    reported: HashSet<String>,
    residue: u64,
    repos: BTreeMap<String, RepoB>,
    /// The repository-name hierarchy: folder -> child -> is a folder.
    tree: BTreeMap<String, BTreeMap<String, bool>>,
    pub has_blobs: bool,
    pub has_repositories: bool,
    pub keys: u64,
    /// Whether to keep `link_mtimes` (`ScanOptions::link_times`).
    pub keep_link_times: bool,
    /// LastModified of every `link` key below `_manifests/` (revision, tag current and tag
    /// index links), by v2-relative key: the push times the cleanup commands need, from the
    /// listing itself (no request per link).
    pub link_mtimes: HashMap<String, i64>,
}

fn unexpected_kind(name: &str, what: &str) -> EntryKind {
    if layout::is_temp_residue(name) {
        EntryKind::TempResidue
    } else {
        EntryKind::Unrecognized(what.to_string())
    }
}

/// A key no filesystem path can hold: an empty segment (`//`, a trailing `/`), `.` or `..`.
pub fn not_a_path(rel: &str) -> bool {
    rel.split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
}

impl Builder {
    fn entry(&mut self, path: String, kind: EntryKind) {
        self.entries.push(Entry { path, kind });
    }

    /// An entry for a folder (or a file standing for one) reported once however many keys
    /// lie below it.
    fn once(&mut self, path: String, kind: EntryKind) {
        if self.reported.insert(path.clone()) {
            self.entry(path, kind);
        }
    }

    fn stray(&mut self, path: String, name: &str, size: u64) {
        self.residue += size;
        let kind = if layout::is_temp_residue(name) {
            EntryKind::TempResidue
        } else {
            EntryKind::BlobStray
        };
        self.entry(path, kind);
    }

    /// Classify one listed object; `rel` is its key relative to v2.
    pub fn add(&mut self, o: &Object, rel: &str) {
        self.keys += 1;
        if not_a_path(rel) {
            self.once(rel.to_string(), EntryKind::KeyNotAPath);
            return;
        }
        let comps: Vec<&str> = rel.split('/').collect();
        match comps[0] {
            "blobs" if comps.len() > 1 => {
                self.has_blobs = true;
                self.blob_key(o, rel, &comps[1..]);
            }
            "repositories" if comps.len() > 1 => {
                self.has_repositories = true;
                self.repo_key(o, rel, &comps[1..]);
            }
            top => self.once(
                top.to_string(),
                EntryKind::Unrecognized("not part of a registry store".into()),
            ),
        }
    }

    fn blob_key(&mut self, o: &Object, rel: &str, c: &[&str]) {
        let data_file = |b: &mut Builder| {
            b.entry(
                rel.to_string(),
                EntryKind::BlobPath {
                    fault: BlobFault::BadPath,
                    size: Some(o.size),
                },
            )
        };
        let digest = (c.len() >= 3)
            .then(|| Algorithm::from_name(c[0]))
            .flatten()
            .and_then(|a| Digest::from_hex(a, c[2].as_bytes()).ok())
            .filter(|d| d.fan_out_is(c[1]));
        match (c.len(), digest) {
            (1 | 2, _) => self.stray(rel.to_string(), c[c.len() - 1], o.size),
            (3, _) if c[2] == "data" => data_file(self),
            (3, _) => self.stray(rel.to_string(), c[2], o.size),
            (4, Some(d)) if c[3] == "data" => {
                self.blob_folders.insert(d.clone());
                self.etags.insert(d.clone(), o.etag.clone());
                self.blobs.push(Blob {
                    digest: d,
                    size: o.size,
                    mtime: o.mtime,
                    inode: etag_identity(&o.etag),
                    hashed: Hashed::No,
                });
            }
            (_, Some(d)) => {
                self.blob_folders.insert(d.clone());
                let dir = c[..3].join("/");
                if c[3] == "data" {
                    // Keys below `<hex>/data/`: `data` is a folder.
                    self.blob_data_folder.insert(d);
                    self.once(
                        format!("blobs/{dir}/data"),
                        EntryKind::BlobPath {
                            fault: BlobFault::DataNotFile,
                            size: None,
                        },
                    );
                } else if c.len() == 4 {
                    self.stray(rel.to_string(), c[3], o.size);
                } else {
                    self.foreign(o, rel, c);
                }
            }
            (_, None) => self.foreign(o, rel, c),
        }
    }

    /// A key below a folder of `blobs/` off the grammar.
    fn foreign(&mut self, o: &Object, rel: &str, c: &[&str]) {
        let name = c[c.len() - 1];
        if name == "data" {
            self.entry(
                rel.to_string(),
                EntryKind::BlobPath {
                    fault: BlobFault::BadPath,
                    size: Some(o.size),
                },
            );
        } else {
            self.stray(rel.to_string(), name, o.size);
        }
    }

    fn tree_add(&mut self, dir: &str, name: &str, is_dir: bool) {
        let e = self.tree.entry(dir.to_string()).or_default();
        let v = e.entry(name.to_string()).or_insert(is_dir);
        *v |= is_dir;
    }

    fn repo_key(&mut self, o: &Object, rel: &str, c: &[&str]) {
        let marker = c.iter().position(|x| x.starts_with('_'));
        let upto = marker.unwrap_or(c.len() - 1);
        for i in 0..upto {
            let dir = c[..i].join("/");
            self.tree_add(&dir, c[i], true);
        }
        let dir = c[..upto].join("/");
        let Some(i) = marker else {
            // A file in the name hierarchy.
            let name = c[upto];
            self.tree_add(&dir, name, false);
            self.entry(
                rel.to_string(),
                unexpected_kind(name, "a file among repositories"),
            );
            return;
        };
        let name = c[i];
        let is_dir = i + 1 < c.len();
        self.tree_add(&dir, name, is_dir);
        let path = format!("repositories/{}", c[..=i].join("/"));
        if !is_dir {
            self.entry(path, EntryKind::StrayUnderscore);
            return;
        }
        if i == 0 || !["_layers", "_manifests", "_uploads"].contains(&name) {
            self.once(
                path,
                EntryKind::Unrecognized("a _ folder the registry never writes here".into()),
            );
            return;
        }
        let repo = dir;
        let rest = &c[i + 1..];
        let src = Src {
            size: o.size,
            etag: o.etag.clone(),
        };
        match name {
            "_layers" => {
                self.repos.entry(repo.clone()).or_default().has_layers = true;
                self.link_key(&repo, &path, rest, Tree::Layers, src);
            }
            "_manifests" => {
                self.repos.entry(repo.clone()).or_default().has_manifests = true;
                if self.keep_link_times && c[c.len() - 1] == "link" {
                    self.link_mtimes.insert(rel.to_string(), o.mtime);
                }
                let p = format!("{path}/{}", rest[0]);
                match rest[0] {
                    "revisions" if rest.len() > 1 => {
                        self.repos.entry(repo.clone()).or_default().has_revisions = true;
                        self.link_key(&repo, &p, &rest[1..], Tree::Revisions, src);
                    }
                    "tags" if rest.len() > 1 => {
                        self.repos.entry(repo.clone()).or_default().has_tags = true;
                        self.tag_key(&repo, &p, &rest[1..], src);
                    }
                    n => {
                        let kind = unexpected_kind(
                            n,
                            "the registry writes only revisions/ and tags/ here",
                        );
                        self.once(p, kind);
                    }
                }
            }
            _ => {
                self.repos.entry(repo.clone()).or_default().has_uploads = true;
                let uuid = rest[0];
                let p = format!("{path}/{uuid}");
                if rest.len() == 1 || !layout::is_upload_uuid(uuid) {
                    let kind = unexpected_kind(uuid, "not an upload folder");
                    self.once(p, kind);
                    return;
                }
                let r = self.repos.entry(repo).or_default();
                let u = r.uploads.entry(uuid.to_string()).or_default();
                u.bytes += o.size;
                u.mtime = u.mtime.max(o.mtime);
                if rest.len() == 2 && rest[1] == "startedat" {
                    u.startedat = Some(src);
                }
            }
        }
    }

    /// A key of a `<alg>/<hex>/link` tree whose folder is `base`; `c` is the part below it.
    fn link_key(&mut self, repo: &str, base: &str, c: &[&str], tree: Tree, src: Src) {
        let p = format!("{base}/{}", c.join("/"));
        if c.len() == 1 {
            self.once(p, unexpected_kind(c[0], "not an algorithm folder"));
            return;
        }
        if c.len() == 2 {
            self.once(p, unexpected_kind(c[1], "not a digest folder"));
            return;
        }
        let hdir = format!("{base}/{}/{}", c[0], c[1]);
        let Some(d) = layout::digest_from_components(c[0], c[1]) else {
            self.once(
                hdir,
                EntryKind::Unrecognized("folder name is not a digest".into()),
            );
            self.odd_link(repo, &p, c[c.len() - 1], tree, false, src);
            return;
        };
        let r = self.repos.entry(repo.to_string()).or_default();
        let (seen, linked) = match tree {
            Tree::Layers => (&mut r.layers_seen, &mut r.layers_linked),
            Tree::Revisions => (&mut r.revisions_seen, &mut r.revisions_linked),
        };
        seen.insert(d.clone());
        match (c[2], c.len()) {
            ("link", 3) => {
                linked.insert(d.clone());
                match tree {
                    Tree::Layers => r.layers.push((d, src)),
                    Tree::Revisions => r.revisions.push((d, src)),
                }
            }
            ("link", _) => {
                // `link` is a folder: the registry's walks read any `link` inside it.
                if linked.insert(d.clone()) {
                    let st = (d, LinkState::NotFile(EntryType::Dir));
                    match tree {
                        Tree::Layers => r.layer_states.push(st),
                        Tree::Revisions => r.revision_states.push(st),
                    }
                }
                self.odd_link(repo, &p, c[c.len() - 1], tree, false, src);
            }
            ("signatures", n) if n > 3 && tree == Tree::Revisions => {
                self.odd_link(repo, &p, c[c.len() - 1], tree, true, src);
            }
            (name, 3) => self.entry(p, unexpected_kind(name, "unexpected file in a link folder")),
            (name, _) => {
                self.once(
                    format!("{hdir}/{name}"),
                    EntryKind::Unrecognized("unexpected folder in a link folder".into()),
                );
                self.odd_link(repo, &p, c[c.len() - 1], tree, false, src);
            }
        }
    }

    fn odd_link(&mut self, repo: &str, p: &str, name: &str, tree: Tree, legacy: bool, src: Src) {
        if name != "link" {
            self.entry(p.to_string(), unexpected_kind(name, "not a link file"));
            return;
        }
        let r = self.repos.entry(repo.to_string()).or_default();
        let v = match tree {
            Tree::Layers => &mut r.odd_layer,
            Tree::Revisions => &mut r.odd_revision,
        };
        v.push((p.to_string(), src, legacy));
    }

    fn tag_key(&mut self, repo: &str, tags: &str, c: &[&str], src: Src) {
        let name = c[0];
        let trel = format!("{tags}/{name}");
        if c.len() == 1 {
            let kind = unexpected_kind(name, "not a tag folder");
            self.entry(trel, kind);
            self.repos
                .entry(repo.to_string())
                .or_default()
                .odd_tags
                .push(OddTag {
                    name: name.to_string(),
                    utf8: true,
                    kind: EntryType::File,
                    current: None,
                });
            return;
        }
        if !layout::is_valid_tag(name) {
            self.once(trel.clone(), EntryKind::TagNameInvalid);
        }
        let prel = format!("{trel}/{}", c[1]);
        let r = self.repos.entry(repo.to_string()).or_default();
        let t = r.tags.entry(name.to_string()).or_default();
        match (c[1], c.len()) {
            ("current", 2) => {
                t.current_not_folder = true;
                self.entry(
                    prel,
                    unexpected_kind("current", "a tag's current is not a folder"),
                );
            }
            ("current", 3) if c[2] == "link" => t.current_src = Some(src),
            ("current", _) if c[2] == "link" => {
                // `current/link` is a folder.
                t.current = Some(LinkState::NotFile(EntryType::Dir));
            }
            ("current", _) => {
                let erel = format!("{prel}/{}", c[2]);
                self.once(
                    erel,
                    unexpected_kind(c[2], "unexpected entry beside a tag's current link"),
                );
            }
            ("index", n) if n > 2 => {
                let rest = &c[2..];
                let ip = format!("{prel}/{}", rest.join("/"));
                let d = (rest.len() >= 3)
                    .then(|| layout::digest_from_components(rest[0], rest[1]))
                    .flatten();
                match d {
                    Some(d) => {
                        t.index_seen.insert(d.clone());
                        if rest.len() == 3 && rest[2] == "link" {
                            t.index_linked.insert(d.clone());
                            t.index.push((d, src));
                        } else if rest.len() == 3 {
                            self.entry(
                                ip,
                                unexpected_kind(rest[2], "unexpected file in a link folder"),
                            );
                        } else {
                            t.index_odd.push(ip);
                        }
                    }
                    None if rest.len() == 1 => {
                        let k = unexpected_kind(rest[0], "not an algorithm folder");
                        self.once(ip, k)
                    }
                    None if rest.len() == 2 => {
                        let k = unexpected_kind(rest[1], "not a digest folder");
                        self.once(ip, k)
                    }
                    None => {
                        if rest[rest.len() - 1] == "link" {
                            t.index_odd.push(ip);
                        }
                        self.once(
                            format!("{prel}/{}/{}", rest[0], rest[1]),
                            EntryKind::Unrecognized("folder name is not a digest".into()),
                        );
                    }
                }
            }
            (n, _) => {
                let kind = unexpected_kind(n, "the registry writes only current/ and index/ here");
                self.once(prel, kind);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tree {
    Layers,
    Revisions,
}

/// A blob's identity for the incremental state (the inode on a filesystem): the ETag, hashed.
pub fn etag_identity(etag: &str) -> u64 {
    let d = Digest::of_bytes(etag.as_bytes());
    u64::from_le_bytes(d.bytes()[..8].try_into().unwrap_or_default())
}

/// The MD5 of what a link must hold, as a listing shows it (lower-case hex).
pub fn expected_etag(d: &Digest) -> String {
    use md5::{Digest as _, Md5};
    let text = layout::link_content(d);
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A link the listing vouches for (or not): `Some(Ok)` without a read, `None` when its content
/// must be fetched.
fn by_listing(d: &Digest, src: &Src) -> Option<LinkState> {
    if src.size == 0 {
        return Some(crate::store::scan::fsio::link_state(b""));
    }
    if src.size > crate::store::scan::fsio::LINK_CAP {
        return Some(LinkState::TooLarge { len: src.size });
    }
    let expect = layout::link_content(d);
    (src.size == expect.len() as u64 && src.etag == expected_etag(d))
        .then(|| LinkState::Ok(d.clone()))
}

/// A key range `(after, upto]` below `prefix`, listed page by page.
#[derive(Clone, Debug)]
struct Range {
    prefix: String,
    after: Option<String>,
    upto: Option<String>,
    /// Whether the first page may split the rest of the range (`blobs/`, `repositories/`).
    split: Split,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    No,
    Blobs,
    Repositories,
}

/// How many requests an S3 run keeps in flight unless `--io-depth` says otherwise: latency, not
/// cores, bounds object storage (docs/benchmarks.md, "Object storage", measured the choice).
pub const DEFAULT_IN_FLIGHT: usize = 32;

/// Requests in flight for `--io-depth` `asked` (0: the default).
pub fn in_flight(asked: usize) -> usize {
    if asked == 0 {
        DEFAULT_IN_FLIGHT
    } else {
        asked
    }
}

/// List everything below v2 in parallel ranges, feeding each page to `builder`.
pub(super) fn list_all(
    store: &S3Store,
    depth: usize,
    builder: &Mutex<Builder>,
    cancelled: &(dyn Fn() -> bool + Sync),
    found: &dyn crate::progress::Bar,
) -> Result<(), String> {
    let v2 = store.config.v2_prefix();
    let client = &store.client;
    // The top level, by folder: blobs/, repositories/ and anything else there.
    let mut tasks = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_page(&v2, None, token.as_deref(), true, PAGE)
            .map_err(|e| format!("cannot list s3://{}/{v2}: {e}", client.bucket()))?;
        {
            let mut b = builder.lock().unwrap_or_else(|e| e.into_inner());
            for o in &page.objects {
                let rel = o.key[v2.len()..].to_string();
                b.add(o, &rel);
            }
        }
        for p in page.prefixes {
            let split = match &p[v2.len()..] {
                "blobs/" => Split::Blobs,
                "repositories/" => Split::Repositories,
                _ => Split::No,
            };
            tasks.push(Range {
                prefix: p,
                after: None,
                upto: None,
                split,
            });
        }
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let errors = super::super::pool::run(depth, tasks, |r: Range, spawn| {
        list_range(client, &v2, depth, r, builder, cancelled, found, spawn)
    });
    match errors.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn list_range(
    client: &Client,
    v2: &str,
    depth: usize,
    r: Range,
    builder: &Mutex<Builder>,
    cancelled: &(dyn Fn() -> bool + Sync),
    found: &dyn crate::progress::Bar,
    spawn: &dyn Fn(Range),
) -> Option<String> {
    let mut token: Option<String> = None;
    let mut first = true;
    loop {
        if cancelled() {
            return None;
        }
        let page =
            match client.list_page(&r.prefix, r.after.as_deref(), token.as_deref(), false, PAGE) {
                Ok(p) => p,
                Err(e) => {
                    return Some(format!(
                        "cannot list s3://{}/{}: {e}",
                        client.bucket(),
                        r.prefix
                    ))
                }
            };
        let mut done = page.next.is_none();
        {
            let mut b = builder.lock().unwrap_or_else(|e| e.into_inner());
            for o in &page.objects {
                if r.upto.as_ref().is_some_and(|u| o.key.as_str() > u.as_str()) {
                    done = true;
                    break;
                }
                let rel = o.key[v2.len()..].to_string();
                b.add(o, &rel);
            }
        }
        found.inc(page.objects.len() as u64);
        if first && !done && r.split != Split::No {
            if let Some(last) = page.objects.last() {
                let rest = split_rest(client, v2, depth, &r, &last.key);
                if let Some((upto, more)) = rest {
                    for m in more {
                        spawn(m);
                    }
                    // This task keeps the part up to the first boundary.
                    return list_range(
                        client,
                        v2,
                        depth,
                        Range {
                            prefix: r.prefix.clone(),
                            after: Some(last.key.clone()),
                            upto: Some(upto),
                            split: Split::No,
                        },
                        builder,
                        cancelled,
                        found,
                        spawn,
                    );
                }
            }
        }
        first = false;
        if done {
            return None;
        }
        token = page.next;
    }
}

/// After a first full page ending at `last`, the rest of range `r` cut at folder boundaries:
/// the first boundary (this task lists up to it) and the ranges beyond it. The number of ranges
/// follows from how far the first page got: about one page each, at most `depth`.
fn split_rest(
    client: &Client,
    v2: &str,
    depth: usize,
    r: &Range,
    last: &str,
) -> Option<(String, Vec<Range>)> {
    let (candidates, pages): (Vec<String>, usize) = match r.split {
        Split::Blobs => {
            // Digests spread evenly over the 256 fan-out folders: the first page's share of
            // them says how many pages the rest is.
            let base = format!("{v2}blobs/sha256/");
            let all: Vec<String> = (0..=255u32).map(|i| format!("{base}{i:02x}/")).collect();
            let done = all.iter().filter(|b| b.as_str() <= last).count().max(1);
            let rest: Vec<String> = all.into_iter().filter(|b| b.as_str() > last).collect();
            let pages = (rest.len() * PAGE).div_ceil(done * PAGE).max(1);
            (rest, pages)
        }
        Split::Repositories => {
            // The top-level names below repositories/, by folder (a few pages at most).
            let mut out = Vec::new();
            let mut token = None;
            let mut seen = 0;
            loop {
                let page = client
                    .list_page(&r.prefix, None, token.as_deref(), true, PAGE)
                    .ok()?;
                seen += page.prefixes.len() + page.objects.len();
                out.extend(page.prefixes.into_iter().filter(|p| p.as_str() > last));
                match page.next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            let done = seen.saturating_sub(out.len()).max(1);
            let pages = out.len().div_ceil(done).max(1);
            (out, pages)
        }
        Split::No => return None,
    };
    if candidates.is_empty() {
        return None;
    }
    // Every `step`-th boundary, so that the ranges are about a page each.
    let ranges = pages.clamp(1, depth.max(1));
    let step = candidates.len().div_ceil(ranges).max(1);
    let bounds: Vec<String> = candidates.into_iter().step_by(step).collect();
    let (first, rest) = bounds.split_first()?;
    let mut out = Vec::new();
    for (i, b) in rest.iter().enumerate() {
        let prev = if i == 0 { first } else { &rest[i - 1] };
        out.push(Range {
            prefix: r.prefix.clone(),
            after: Some(prev.clone()),
            upto: Some(b.clone()),
            split: Split::No,
        });
    }
    out.push(Range {
        prefix: r.prefix.clone(),
        after: Some(bounds[bounds.len() - 1].clone()),
        upto: None,
        split: Split::No,
    });
    Some((first.clone(), out))
}

/// What must be read after the listing, and where its answer goes.
enum Want {
    Layer(String, Digest),
    Revision(String, Digest),
    Current(String, String),
    Index(String, String, Digest),
    Odd(String),
    StartedAt(String, String),
}

/// Turn the classified listing into an inventory, fetching what the listing cannot vouch for.
pub(super) fn finish(
    store: &S3Store,
    depth: usize,
    mut b: Builder,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Inventory {
    let mut inv = Inventory {
        root: store.config.display().into(),
        v2: format!("{}/{}", store.config.display(), layout::V2_FROM_ROOT).into(),
        has_blobs_dir: b.has_blobs,
        has_repositories_dir: b.has_repositories,
        v2_text: format!("/{}", layout::V2_FROM_ROOT),
        v2_links: Some(0),
        object_store: true,
        ..Inventory::default()
    };
    // Reads the listing cannot answer.
    let mut wants: Vec<(String, Want, Src)> = Vec::new();
    for (name, r) in &b.repos {
        for (d, src) in &r.layers {
            if by_listing(d, src).is_none() {
                wants.push((
                    layout::layer_link(name, d),
                    Want::Layer(name.clone(), d.clone()),
                    src.clone(),
                ));
            }
        }
        for (d, src) in &r.revisions {
            if by_listing(d, src).is_none() {
                wants.push((
                    layout::revision_link(name, d),
                    Want::Revision(name.clone(), d.clone()),
                    src.clone(),
                ));
            }
        }
        for (p, src, _) in r.odd_layer.iter().chain(&r.odd_revision) {
            wants.push((p.clone(), Want::Odd(p.clone()), src.clone()));
        }
        for (t, tb) in &r.tags {
            if let (Some(src), None) = (&tb.current_src, &tb.current) {
                wants.push((
                    layout::tag_current_link(name, t),
                    Want::Current(name.clone(), t.clone()),
                    src.clone(),
                ));
            }
            for (d, src) in &tb.index {
                if by_listing(d, src).is_none() {
                    wants.push((
                        layout::tag_index_link(name, t, d),
                        Want::Index(name.clone(), t.clone(), d.clone()),
                        src.clone(),
                    ));
                }
            }
        }
        for (u, ub) in &r.uploads {
            if let Some(src) = &ub.startedat {
                wants.push((
                    format!("{}/startedat", layout::upload_dir(name, u)),
                    Want::StartedAt(name.clone(), u.clone()),
                    src.clone(),
                ));
            }
        }
    }
    let v2 = store.config.v2_prefix();
    let got = super::super::pool::run(depth, wants, |(rel, want, src), _| {
        if cancelled() {
            return (want, Err("interrupted".to_string()), false);
        }
        let kind = super::cache::Kind::Link;
        if let Some(bytes) = store.cache.get(kind, &rel, &src.etag, src.size) {
            return (want, Ok(bytes), false);
        }
        let cap = if matches!(want, Want::StartedAt(..)) {
            64
        } else {
            crate::store::scan::fsio::LINK_CAP
        };
        match store.client.get(&format!("{v2}{rel}"), cap) {
            Ok(bytes) => {
                // The same ETag and size next time means the same bytes (kept only when the
                // whole object was read).
                if bytes.len() as u64 == src.size {
                    store
                        .cache
                        .keep(kind, &rel, &src.etag, src.size, bytes.clone());
                }
                (want, Ok(bytes), false)
            }
            Err(e) if e.not_found() => (want, Err(e.to_string()), true),
            Err(e) => (want, Err(e.to_string()), false),
        }
    });
    let link_of = |r: Result<Vec<u8>, String>, vanished: bool| match r {
        Ok(bytes) if bytes.len() as u64 > crate::store::scan::fsio::LINK_CAP => {
            LinkState::TooLarge {
                len: bytes.len() as u64,
            }
        }
        Ok(bytes) => crate::store::scan::fsio::link_state(&bytes),
        Err(_) if vanished => LinkState::Absent,
        Err(e) => LinkState::Unreadable(e),
    };
    let mut fetched_layers: HashMap<(String, Digest), LinkState> = HashMap::new();
    let mut fetched_revisions: HashMap<(String, Digest), LinkState> = HashMap::new();
    let mut fetched_index: HashMap<(String, String, Digest), LinkState> = HashMap::new();
    let mut fetched_odd: HashMap<String, LinkState> = HashMap::new();
    let mut startedat: HashMap<(String, String), StartedAt> = HashMap::new();
    for (want, r, vanished) in got {
        if vanished {
            let path = match &want {
                Want::Layer(n, d) => layout::layer_link(n, d),
                Want::Revision(n, d) => layout::revision_link(n, d),
                Want::Current(n, t) => layout::tag_current_link(n, t),
                Want::Index(n, t, d) => layout::tag_index_link(n, t, d),
                Want::Odd(p) => p.clone(),
                Want::StartedAt(n, u) => format!("{}/startedat", layout::upload_dir(n, u)),
            };
            b.entry(path, EntryKind::Changed("vanished during the scan".into()));
        }
        match want {
            Want::Layer(n, d) => {
                fetched_layers.insert((n, d), link_of(r, vanished));
            }
            Want::Revision(n, d) => {
                fetched_revisions.insert((n, d), link_of(r, vanished));
            }
            Want::Current(n, t) => {
                if let Some(tb) = b.repos.get_mut(&n).and_then(|r| r.tags.get_mut(&t)) {
                    tb.current = Some(link_of(r, vanished));
                }
            }
            Want::Index(n, t, d) => {
                fetched_index.insert((n, t, d), link_of(r, vanished));
            }
            Want::Odd(p) => {
                fetched_odd.insert(p, link_of(r, vanished));
            }
            Want::StartedAt(n, u) => {
                let s = match r {
                    Ok(bytes) if bytes.len() > 64 => {
                        StartedAt::Invalid(format!("{} bytes", bytes.len()))
                    }
                    Ok(bytes) => match std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(crate::model::timefmt::parse_rfc3339)
                    {
                        Some(t) => StartedAt::Ok(t),
                        None => {
                            StartedAt::Invalid(format!("{:?}", String::from_utf8_lossy(&bytes)))
                        }
                    },
                    Err(_) if vanished => StartedAt::Missing,
                    Err(e) => StartedAt::Invalid(e),
                };
                startedat.insert((n, u), s);
            }
        }
    }
    let state = |fetched: &HashMap<(String, Digest), LinkState>, n: &str, d: &Digest, src: &Src| {
        by_listing(d, src).unwrap_or_else(|| {
            fetched
                .get(&(n.to_string(), d.clone()))
                .cloned()
                .unwrap_or(LinkState::Unreadable("not read".into()))
        })
    };
    let repos = std::mem::take(&mut b.repos);
    for (name, r) in repos {
        if let Some(why) = layout::repo_name_problem(&name) {
            b.entry(layout::repo_dir(&name), EntryKind::RepoNameInvalid(why));
        }
        let mut repo = Repo {
            name: name.clone(),
            has_layers: r.has_layers,
            has_manifests: r.has_manifests,
            has_revisions: r.has_revisions,
            has_tags: r.has_tags,
            has_uploads: r.has_uploads,
            ..Repo::default()
        };
        for (d, src) in &r.layers {
            repo.layers
                .push(Link::new(d.clone(), state(&fetched_layers, &name, d, src)));
        }
        for (d, st) in r.layer_states {
            if !r.layers.iter().any(|(x, _)| *x == d) {
                repo.layers.push(Link::new(d, st));
            }
        }
        for d in r.layers_seen.difference(&r.layers_linked) {
            b.entries.push(Entry {
                path: format!(
                    "{}/{}/{}",
                    layout::layers_dir(&name),
                    d.algorithm().name(),
                    d.hex()
                ),
                kind: EntryKind::EmptyDir,
            });
        }
        for (d, src) in &r.revisions {
            repo.revisions.push(Link::new(
                d.clone(),
                state(&fetched_revisions, &name, d, src),
            ));
        }
        for (d, st) in r.revision_states {
            if !r.revisions.iter().any(|(x, _)| *x == d) {
                repo.revisions.push(Link::new(d, st));
            }
        }
        for d in r.revisions_seen.difference(&r.revisions_linked) {
            b.entries.push(Entry {
                path: format!(
                    "{}/{}/{}",
                    layout::revisions_dir(&name),
                    d.algorithm().name(),
                    d.hex()
                ),
                kind: EntryKind::EmptyDir,
            });
            repo.revisions.push(Link::new(d.clone(), LinkState::Absent));
        }
        let odd = |v: Vec<(String, Src, bool)>| -> Vec<OddLink> {
            v.into_iter()
                .map(|(path, _, legacy)| OddLink {
                    state: fetched_odd
                        .get(&path)
                        .cloned()
                        .unwrap_or(LinkState::Unreadable("not read".into())),
                    path,
                    legacy_signature: legacy,
                })
                .collect()
        };
        repo.odd_layer_links = odd(r.odd_layer);
        repo.odd_revision_links = odd(r.odd_revision);
        repo.odd_tags = r.odd_tags;
        for (t, tb) in r.tags {
            if tb.current_not_folder {
                repo.odd_tags.push(OddTag {
                    name: t.clone(),
                    utf8: true,
                    kind: EntryType::Dir,
                    current: Some(EntryType::File),
                });
            }
            let mut index = Vec::new();
            for (d, src) in &tb.index {
                let st = by_listing(d, src).unwrap_or_else(|| {
                    fetched_index
                        .get(&(name.clone(), t.clone(), d.clone()))
                        .cloned()
                        .unwrap_or(LinkState::Unreadable("not read".into()))
                });
                index.push(Link::new(d.clone(), st));
            }
            for d in tb.index_seen.difference(&tb.index_linked) {
                b.entries.push(Entry {
                    path: format!(
                        "{}/index/{}/{}",
                        layout::tag_dir(&name, &t),
                        d.algorithm().name(),
                        d.hex()
                    ),
                    kind: EntryKind::EmptyDir,
                });
            }
            for p in tb.index_odd {
                b.entries.push(Entry {
                    path: p,
                    kind: EntryKind::Unrecognized("a link outside the tag index grammar".into()),
                });
            }
            index.shrink_to_fit();
            repo.tags.push(Tag {
                name: t,
                current: tb.current.unwrap_or(LinkState::Absent),
                index,
                index_mtimes: Box::default(),
            });
        }
        for (uuid, ub) in r.uploads {
            let started_at = startedat
                .remove(&(name.clone(), uuid.clone()))
                .unwrap_or(StartedAt::Missing);
            repo.uploads.push(Upload {
                uuid,
                started_at,
                bytes: ub.bytes,
                mtime: ub.mtime,
            });
        }
        inv.repos.push(repo);
    }
    let have: DigestSet = b.blobs.iter().map(|x| x.digest.clone()).collect();
    for d in b.blob_folders.iter() {
        if have.contains(d) || b.blob_data_folder.contains(d) {
            continue;
        }
        b.entries.push(Entry {
            path: layout::blob_dir(d),
            kind: EntryKind::BlobDataMissing(d.clone()),
        });
    }
    inv.tree = b
        .tree
        .iter()
        .map(|(path, children)| TreeDir {
            path: path.clone(),
            children: children
                .iter()
                .map(|(n, dir)| {
                    (
                        n.clone(),
                        if *dir {
                            EntryType::Dir
                        } else {
                            EntryType::File
                        },
                    )
                })
                .collect(),
        })
        .collect();
    if b.has_repositories && inv.tree.iter().all(|t| !t.path.is_empty()) {
        inv.tree.push(TreeDir {
            path: String::new(),
            children: Vec::new(),
        });
    }
    inv.blobs = std::mem::take(&mut b.blobs);
    inv.entries = std::mem::take(&mut b.entries);
    inv.stats.residue_bytes = b.residue;
    inv.stats.files = b.keys;
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_no_path_can_hold() {
        for k in ["a//b", "a/./b", "a/../b", "a/b/", ".", "/a"] {
            assert!(not_a_path(k), "{k}");
        }
        assert!(!not_a_path("blobs/sha256/ab/x/data"));
        assert!(!not_a_path("a/.b/..c"));
    }

    #[test]
    fn a_link_the_listing_vouches_for() {
        let d = Digest::of_bytes(b"x");
        let good = Src {
            size: 71,
            etag: expected_etag(&d),
        };
        assert_eq!(by_listing(&d, &good), Some(LinkState::Ok(d.clone())));
        let other = Src {
            size: 71,
            etag: "0".repeat(32),
        };
        assert_eq!(by_listing(&d, &other), None);
        let multipart = Src {
            size: 71,
            etag: format!("{}-1", expected_etag(&d)),
        };
        assert_eq!(by_listing(&d, &multipart), None);
        assert_eq!(
            by_listing(
                &d,
                &Src {
                    size: 300,
                    etag: String::new()
                }
            ),
            Some(LinkState::TooLarge { len: 300 })
        );
        assert!(matches!(
            by_listing(
                &d,
                &Src {
                    size: 0,
                    etag: String::new()
                }
            ),
            Some(LinkState::Malformed { .. })
        ));
    }
}

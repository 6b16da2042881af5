//! The inventory: compact, owned facts about one store, as the scanner found them. Plain data with
//! lookup helpers; no I/O and no judgement (that is `checks`).
//!
//! Paths are relative to `<rootdirectory>/docker/registry/v2` and derived from the grammar in
//! `layout` where possible, so that millions of objects do not each carry a `String`.

use crate::model::digest::{Digest, DigestError};
use crate::model::manifest;
use std::path::PathBuf;

/// Unix seconds.
pub type Timestamp = i64;

/// A blob whose path follows the grammar: `blobs/<alg>/<hex[0:2]>/<hex>/data`, a regular file.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub mtime: Timestamp,
    pub inode: u64,
    /// Whether this run hashed the data, in one byte; the details of a failure are in
    /// `Inventory::verify_failures` (read both through `Inventory::verify_of`).
    pub hashed: Hashed,
}

/// Data found at a malformed path below `blobs/`, hashed, and decoded as a manifest when it is
/// small enough to be one: the repair planner moves it home and, in the same plan, judges what
/// that revives (a revision whose manifest it is, reachable through a `_layers` link).
#[derive(Clone, Debug)]
pub struct Misplaced {
    pub digest: Digest,
    pub size: u64,
    /// The content decoded as the registry decodes a manifest; `None` when it is larger than any
    /// manifest the registry accepts (it is then a layer or config, never read whole).
    pub manifest: Option<manifest::Parsed>,
}

impl Misplaced {
    /// From the whole content of an object no larger than a manifest.
    pub fn of_bytes(bytes: &[u8]) -> Misplaced {
        Misplaced {
            digest: Digest::of_bytes(bytes),
            size: bytes.len() as u64,
            manifest: Some(manifest::parse(bytes)),
        }
    }
}

/// The one-byte summary of `Verify` that every `Blob` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hashed {
    No,
    Ok,
    /// A `Verify::Mismatch`, `Unreadable` or `Changed`, kept in `Inventory::verify_failures`.
    Failed,
}

/// The outcome of hashing a blob's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Not hashed in this run (`--no-verify`, a subset, or interrupted).
    NotChecked,
    Ok,
    /// The data hashes to this other digest. (Payloads are boxed: a `Blob` per blob of the store
    /// should not carry room for a rare outcome.)
    Mismatch(Box<Digest>),
    Unreadable(Box<String>),
    /// Size or mtime changed, or the file vanished, while it was hashed.
    Changed(Box<String>),
}

/// The state of one link file (`link` in `_layers`, revisions, tag `current` or tag `index`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Strictly valid content.
    Ok(Digest),
    /// Content that is not a digest; `len` is the file size.
    Malformed {
        error: DigestError,
        len: u64,
    },
    /// Larger than any digest (read capped): `len` is the file size.
    TooLarge {
        len: u64,
    },
    /// `link` is a directory, a symbolic link or a special file (which of them: the registry
    /// fails differently on each, and follows a symbolic link).
    NotFile(EntryType),
    /// The folder exists but holds no `link` (residue of an API delete, or damage).
    Absent,
    Unreadable(String),
}

impl LinkState {
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            LinkState::Ok(d) => Some(d),
            _ => None,
        }
    }

    /// The error the registry reports when it reads this link, or `None` when it reads fine or
    /// finds no file (a missing link is "unknown", not an error, for every reader).
    pub fn read_error(&self) -> Option<String> {
        match self {
            LinkState::Ok(_) | LinkState::Absent => None,
            LinkState::Malformed { error, .. } => Some(error.registry_message().to_string()),
            LinkState::TooLarge { .. } => Some("invalid checksum digest format".to_string()),
            LinkState::NotFile(_) => Some("link is not a regular file".to_string()),
            LinkState::Unreadable(e) => Some(e.clone()),
        }
    }
}

/// A link in a `<alg>/<hex>/link` folder (`_layers`, `_manifests/revisions`, tag `index`).
///
/// Nearly every link names its own folder, so that case stores no second digest: a store of
/// millions of links then costs 56 bytes a link instead of 88.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The digest the folder names.
    pub path_digest: Digest,
    /// `None`: the content is exactly `path_digest`. Otherwise how the file read.
    other: Option<Box<LinkState>>,
}

impl Link {
    pub fn new(path_digest: Digest, state: LinkState) -> Link {
        let mut l = Link {
            path_digest,
            other: None,
        };
        l.set_state(state);
        l
    }

    /// How the link file read.
    pub fn state(&self) -> std::borrow::Cow<'_, LinkState> {
        match &self.other {
            None => std::borrow::Cow::Owned(LinkState::Ok(self.path_digest.clone())),
            Some(s) => std::borrow::Cow::Borrowed(s),
        }
    }

    /// The digest the link names, when its content is a valid digest.
    pub fn target(&self) -> Option<&Digest> {
        match &self.other {
            None => Some(&self.path_digest),
            Some(s) => s.digest(),
        }
    }

    /// Whether the file holds a valid digest naming its own folder (the registry's normal case).
    pub fn names_own_folder(&self) -> bool {
        self.other.is_none()
    }

    pub fn is_absent(&self) -> bool {
        matches!(self.other.as_deref(), Some(LinkState::Absent))
    }

    pub fn set_state(&mut self, state: LinkState) {
        self.other = match state {
            LinkState::Ok(d) if d == self.path_digest => None,
            s => Some(Box::new(s)),
        };
    }
}

/// A file named `link` somewhere the grammar does not expect it inside `_layers` or
/// `_manifests/revisions` (e.g. under a folder that is not a digest, or a legacy schema1
/// `signatures/` link). The registry's GC still reads these.
#[derive(Clone, Debug)]
pub struct OddLink {
    pub path: String,
    pub state: LinkState,
    /// A `revisions/<d>/signatures/<alg>/<hex>/link` of registry <= 2.4.
    pub legacy_signature: bool,
}

#[derive(Clone, Debug)]
pub struct Tag {
    pub name: String,
    /// `current/link`; `Absent` when the tag folder has no current link.
    pub current: LinkState,
    /// `index/<alg>/<hex>/link` entries (tag history).
    pub index: Vec<Link>,
    /// The mtimes of index links, by digest, when the scan statted them (deep scans, which
    /// repair uses to pick the newest entry); empty otherwise. Kept beside the links, not in
    /// every `Link` of the store.
    pub index_mtimes: Box<[(Digest, Timestamp)]>,
}

impl Tag {
    /// When index entry `d` was written, if the scan knows.
    pub fn index_mtime(&self, d: &Digest) -> Option<Timestamp> {
        self.index_mtimes
            .binary_search_by(|(k, _)| k.cmp(d))
            .ok()
            .map(|i| self.index_mtimes[i].1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartedAt {
    Ok(Timestamp),
    Missing,
    Invalid(String),
}

/// An upload folder `_uploads/<uuid>/`.
#[derive(Clone, Debug)]
pub struct Upload {
    pub uuid: String,
    pub started_at: StartedAt,
    /// Total bytes of the files inside the upload folder.
    pub bytes: u64,
    /// Newest mtime of anything inside the upload folder.
    pub mtime: Timestamp,
}

/// An entry of `tags/` that is not a plain tag folder with a `current` folder: a stray file, a
/// symbolic link, a special file, a name that is not UTF-8, or a tag folder whose `current` is not
/// a folder. `garbage-collect --delete-untagged` reads `<entry>/current/link` through every entry
/// of `tags/`, so each of these can stop it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OddTag {
    /// As on disk; non-UTF-8 bytes shown lossily.
    pub name: String,
    pub utf8: bool,
    /// What the entry itself is.
    pub kind: EntryType,
    /// For a folder: what its `current` entry is when that is not a folder.
    pub current: Option<EntryType>,
}

/// One repository: a folder below `repositories/` holding any of `_layers`, `_manifests`, `_uploads`.
#[derive(Clone, Debug, Default)]
pub struct Repo {
    /// Name as on disk (path below `repositories/`).
    pub name: String,
    pub has_layers: bool,
    pub has_manifests: bool,
    pub has_revisions: bool,
    pub has_tags: bool,
    pub has_uploads: bool,
    pub layers: Vec<Link>,
    pub revisions: Vec<Link>,
    pub tags: Vec<Tag>,
    pub uploads: Vec<Upload>,
    pub odd_layer_links: Vec<OddLink>,
    pub odd_revision_links: Vec<OddLink>,
    /// `link` entries in digest folders of `_layers` and `_manifests/revisions` whose names are
    /// not UTF-8 (v2-relative, lossy): the registry's walk reads them and its driver refuses the
    /// path (`invalid path`).
    pub non_utf8_links: Vec<String>,
    /// Entries of `tags/` that are not plain tag folders (usually none).
    pub odd_tags: Vec<OddTag>,
}

impl Repo {
    pub fn revision(&self, d: &Digest) -> Option<&Link> {
        self.revisions
            .binary_search_by(|l| l.path_digest.cmp(d))
            .ok()
            .map(|i| &self.revisions[i])
    }

    pub fn layer(&self, d: &Digest) -> Option<&Link> {
        self.layers
            .binary_search_by(|l| l.path_digest.cmp(d))
            .ok()
            .map(|i| &self.layers[i])
    }

    /// Revisions the registry would serve: a valid link whose content names this folder.
    pub fn live_revision(&self, d: &Digest) -> bool {
        self.revision(d).is_some_and(Link::names_own_folder)
    }

    pub fn tag(&self, name: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.name == name)
    }
}

/// How a child entry of a directory in the repository-name hierarchy looks: what the registry's
/// catalog walk sees there (it lists, sorts by byte order, and stats each entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    Dir,
    File,
    Symlink,
    Other,
}

/// A directory of the repository-name hierarchy (`repositories/` itself and every folder whose
/// name is not `_`-prefixed), with all its children, sorted by name bytes. The GC emulation needs
/// this to reproduce catalog walks (2.8 stops a directory at a `_` file).
#[derive(Clone, Debug)]
pub struct TreeDir {
    /// Relative to `repositories/`; "" for `repositories/` itself.
    pub path: String,
    pub children: Vec<(String, EntryType)>,
}

/// Where a symbolic link inside the store leads, as the scanner resolved it *without following it*:
/// component by component with `lstat` and `readlink` (as the kernel resolves a path), never
/// leaving the store, at most 40 links. The registry follows symbolic links; regfsck never does,
/// but its GC prediction has to know what the registry will meet there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymlinkTarget {
    /// An entry of the store (v2-relative path, what it is), reached through `links` symbolic
    /// links (this one and those its target text passes through).
    Inside {
        path: String,
        kind: EntryType,
        links: u32,
    },
    /// More than 40 links on the way (a loop): the registry gets ELOOP.
    Loop,
    /// Nothing there (ENOENT on the way): the registry treats it as absent.
    Dangling,
    /// A component on the way is not a folder (ENOTDIR).
    NotDir,
    /// Out of the store, a target that is not UTF-8, or a component regfsck could not read: not
    /// resolved (regfsck reads nothing outside the store).
    Unknown(String),
}

/// A symbolic link found by the scan, with its target text and where it leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symlink {
    /// Relative to v2.
    pub path: String,
    /// The link's own text (`readlink`), lossy.
    pub text: String,
    pub target: SymlinkTarget,
}

/// A malformed path below `blobs/`, with the raw path kept so that GC emulation can re-derive
/// what the registry would make of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobFault {
    /// `data` sits in a folder whose names do not form `<alg>/<hex[0:2]>/<hex>` (bad algorithm, bad
    /// hex, wrong or missing fan-out, wrong depth).
    BadPath,
    /// `data` is a directory (or other non-regular file).
    DataNotFile,
}

/// Anything noteworthy that is not a structured object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A file or folder the registry never writes; `what` says where and why.
    Unrecognized(String),
    Unreadable(String),
    Symlink,
    NonUtf8,
    /// `<file>.<uuid>.tmp` PutContent residue.
    TempResidue,
    /// The entry changed or vanished during the scan.
    Changed(String),
    /// An empty registry folder (deleted link or blob residue).
    EmptyDir,
    /// Malformed path in `blobs/`; `size` of the data file when it is a file.
    BlobPath {
        fault: BlobFault,
        size: Option<u64>,
    },
    /// A file in `blobs/` other than a blob's `data` (temp residue, foreign file).
    BlobStray,
    /// A blob folder `blobs/<alg>/<hh>/<hex>/` without `data`.
    BlobDataMissing(Digest),
    /// A *file* whose name starts with `_` in the repository-name hierarchy.
    StrayUnderscore,
    /// A repository folder whose name the registry rejects.
    RepoNameInvalid(&'static str),
    /// A tag folder whose name is outside the tag grammar.
    TagNameInvalid,
    /// An object-storage key that no filesystem path can hold (`//`, a `.` or `..` segment, a
    /// trailing `/`): the registry never writes one.
    KeyNotAPath,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative to v2; non-UTF-8 bytes shown lossily.
    pub path: String,
    pub kind: EntryKind,
}

/// Counters of the scan itself.
#[derive(Clone, Debug, Default)]
pub struct ScanStats {
    pub files: u64,
    pub dirs: u64,
    pub blob_bytes: u64,
    /// Bytes of temp residue and stray files (the registry never cleans them).
    pub residue_bytes: u64,
    pub scan_seconds: f64,
    /// Hashing of this run.
    pub hashed_blobs: u64,
    pub hashed_bytes: u64,
    pub hash_seconds: f64,
    /// True when hashing stopped early (Ctrl-C or --max-duration).
    pub hash_incomplete: bool,
    /// Requests made to object storage (`None` on a filesystem).
    pub requests: Option<u64>,
}

/// An incomplete multipart upload on object storage: parts a plain listing never shows and the
/// bucket still bills (an interrupted blob upload of the registry's s3 driver leaves one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartUpload {
    /// The key it would create, relative to v2.
    pub path: String,
    pub upload_id: String,
    /// When it was started (unix seconds).
    pub initiated: Timestamp,
    /// Bytes of its uploaded parts; `None` when they could not be listed.
    pub bytes: Option<u64>,
}

/// Everything known about one store.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// The registry's rootdirectory.
    pub root: PathBuf,
    /// `<root>/docker/registry/v2`.
    pub v2: PathBuf,
    pub has_blobs_dir: bool,
    pub has_repositories_dir: bool,
    /// Well-formed blobs, sorted by digest.
    pub blobs: Vec<Blob>,
    /// Repositories, sorted by name bytes.
    pub repos: Vec<Repo>,
    /// The repository-name hierarchy, sorted by path.
    pub tree: Vec<TreeDir>,
    pub entries: Vec<Entry>,
    /// Every manifest blob that a revision, tag or index names and that exists, parsed.
    pub manifests: Manifests,
    pub stats: ScanStats,
    /// Open-addressing index into `blobs` (built by `normalize`): lookups are the inner loop of
    /// reachability, the checks and four GC predictions. 4 bytes a slot instead of a map entry.
    pub blob_slots: BlobSlots,
    /// Why a blob with `Hashed::Failed` failed (rare, so kept out of the per-blob record).
    pub verify_failures: crate::model::digest::DigestMap<Verify>,
    /// Every symbolic link the scan met (each also an `EntryKind::Symlink` entry), resolved
    /// without following, sorted by path.
    pub symlinks: Vec<Symlink>,
    /// Files named `data` below a folder of `blobs/` whose name is not UTF-8 (the registry's blob
    /// walk parses their raw path): raw v2-relative path bytes and size.
    pub raw_blob_data: Vec<(Vec<u8>, Option<u64>)>,
    /// Manifest blobs that exist but could not be read (permission or I/O error), with the
    /// error: an I/O error is not a verdict on the manifest.
    pub unreadable_manifests: Vec<(Digest, String)>,
    /// The absolute v2 path as given (what the registry's error texts show).
    pub v2_text: String,
    /// Symbolic links in the path of v2 itself (they count towards the kernel's limit of 40 on
    /// every path the registry resolves); `None` when not known.
    pub v2_links: Option<u32>,
    /// The store is on object storage (the registry's s3 driver): no folders of their own, so
    /// no empty ones; listing order and existence tests are the driver's (see `analysis::gc`).
    pub object_store: bool,
    /// Incomplete multipart uploads (object storage only), sorted by path.
    pub multipart_uploads: Vec<MultipartUpload>,
}

/// Parsed manifests by digest: a sorted vector, not a hash map, because a map's power-of-two table
/// holds up to about twice as many slots as entries, and the table is kept for the whole run.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    entries: Vec<(Digest, manifest::Parsed)>,
}

impl Manifests {
    fn find(&self, d: &Digest) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(d))
    }

    pub fn get(&self, d: &Digest) -> Option<&manifest::Parsed> {
        self.find(d).ok().map(|i| &self.entries[i].1)
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.find(d).is_ok()
    }

    /// Sorted by digest.
    pub fn iter(&self) -> impl Iterator<Item = (&Digest, &manifest::Parsed)> {
        self.entries.iter().map(|(d, p)| (d, p))
    }

    /// Insert or replace one manifest (linear: for edits, not for loading a store).
    pub fn insert(&mut self, d: Digest, p: manifest::Parsed) {
        match self.find(&d) {
            Ok(i) => self.entries[i].1 = p,
            Err(i) => self.entries.insert(i, (d, p)),
        }
    }

    pub fn remove(&mut self, d: &Digest) -> Option<manifest::Parsed> {
        self.find(d).ok().map(|i| self.entries.remove(i).1)
    }

    /// Add a batch of manifests not yet present (a later duplicate is dropped).
    pub fn extend(&mut self, batch: Vec<(Digest, manifest::Parsed)>) {
        self.entries.reserve_exact(batch.len());
        self.entries.extend(batch);
        // Stable: of two entries for one digest, the one already present stays.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.entries.dedup_by(|a, b| a.0 == b.0);
    }
}

/// `u32::MAX` marks an empty slot; `len` is the blob count it was built for, so that a stale
/// index (blobs changed after `normalize`) is never trusted.
#[derive(Clone, Debug, Default)]
pub struct BlobSlots {
    slots: Vec<u32>,
    len: usize,
}

impl BlobSlots {
    fn build(blobs: &[Blob]) -> BlobSlots {
        if blobs.len() >= u32::MAX as usize {
            return BlobSlots::default();
        }
        let cap = (blobs.len() * 2).next_power_of_two().max(16);
        let mut slots = vec![u32::MAX; cap];
        let mask = cap - 1;
        for (i, b) in blobs.iter().enumerate() {
            let mut at = b.digest.hash64() as usize & mask;
            while slots[at] != u32::MAX {
                at = (at + 1) & mask;
            }
            slots[at] = i as u32;
        }
        BlobSlots {
            slots,
            len: blobs.len(),
        }
    }

    /// `Some(index or None)` when the index is current, `None` when it cannot answer.
    fn find(&self, blobs: &[Blob], d: &Digest) -> Option<Option<usize>> {
        if self.slots.is_empty() || self.len != blobs.len() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = d.hash64() as usize & mask;
        loop {
            let i = self.slots[at];
            if i == u32::MAX {
                return Some(None);
            }
            if blobs[i as usize].digest == *d {
                return Some(Some(i as usize));
            }
            at = (at + 1) & mask;
        }
    }
}

impl Inventory {
    pub fn blob(&self, d: &Digest) -> Option<&Blob> {
        self.blob_index(d).map(|i| &self.blobs[i])
    }

    /// The hashing outcome of blob `i`.
    pub fn verify_of(&self, i: usize) -> &Verify {
        static NOT_CHECKED: Verify = Verify::NotChecked;
        static OK: Verify = Verify::Ok;
        let b = &self.blobs[i];
        match b.hashed {
            Hashed::No => &NOT_CHECKED,
            Hashed::Ok => &OK,
            Hashed::Failed => self.verify_failures.get(&b.digest).unwrap_or(&NOT_CHECKED),
        }
    }

    /// Record the hashing outcome of blob `i`.
    pub fn set_verify(&mut self, i: usize, v: Verify) {
        let b = &mut self.blobs[i];
        if b.hashed == Hashed::Failed {
            self.verify_failures.remove(&b.digest);
        }
        b.hashed = match v {
            Verify::NotChecked => Hashed::No,
            Verify::Ok => Hashed::Ok,
            failed => {
                self.verify_failures.insert(b.digest.clone(), failed);
                Hashed::Failed
            }
        };
    }

    pub fn blob_index(&self, d: &Digest) -> Option<usize> {
        match self.blob_slots.find(&self.blobs, d) {
            Some(found) => found,
            None => self.blobs.binary_search_by(|b| b.digest.cmp(d)).ok(),
        }
    }

    pub fn repo(&self, name: &str) -> Option<&Repo> {
        self.repos
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.repos[i])
    }

    pub fn manifest(&self, d: &Digest) -> Option<&manifest::Parsed> {
        self.manifests.get(d)
    }

    /// The symbolic link at `path` (v2-relative), if the scan met one there.
    pub fn symlink(&self, path: &str) -> Option<&Symlink> {
        self.symlinks
            .binary_search_by(|s| s.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.symlinks[i])
    }

    /// The symbolic link at `path` or at a folder above it whose target regfsck cannot judge: one
    /// leading to an entry of the store or out of it, which the registry follows and regfsck
    /// never does. (A dangling link, a loop or a component that is not a folder fails for the
    /// registry too: those are known.)
    pub fn unjudged_symlink_over(&self, path: &str) -> Option<&Symlink> {
        let mut at = path;
        loop {
            if let Some(s) = self.symlink(at) {
                if matches!(
                    s.target,
                    SymlinkTarget::Inside { .. } | SymlinkTarget::Unknown(_)
                ) {
                    return Some(s);
                }
            }
            at = at.rsplit_once('/')?.0;
        }
    }

    /// The symbolic links at or below `dir` (v2-relative), in path order.
    pub fn symlinks_below<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a Symlink> + 'a {
        // Everything from `dir` up to `dir` + '0' (the byte after '/') starts with `dir`; names
        // such as `dir.bak` sort in between and are skipped, not a reason to stop.
        let from = self.symlinks.partition_point(|s| s.path.as_str() < dir);
        let end = format!("{dir}0");
        self.symlinks[from..]
            .iter()
            .take_while(move |s| s.path < end)
            .filter(move |s| {
                s.path == dir
                    || (s.path.starts_with(dir) && s.path.as_bytes().get(dir.len()) == Some(&b'/'))
            })
    }

    /// The state of the link file at `path` (v2-relative), when the inventory knows a link there:
    /// one of a repository's `_layers`, revision, tag `current` or tag index links, or an odd
    /// link. `None` when the inventory holds no link at that path.
    pub fn link_at(&self, path: &str) -> Option<std::borrow::Cow<'_, LinkState>> {
        use crate::model::layout::Parsed;
        use std::borrow::Cow;
        fn odd<'r>(r: &'r Repo, path: &str) -> Option<Cow<'r, LinkState>> {
            r.odd_layer_links
                .iter()
                .chain(&r.odd_revision_links)
                .find(|o| o.path == path)
                .map(|o| Cow::Borrowed(&o.state))
        }
        match crate::model::layout::parse_path(path) {
            Parsed::LayerLink { repo, digest } => {
                let r = self.repo(&repo)?;
                r.layer(&digest).map(Link::state).or_else(|| odd(r, path))
            }
            Parsed::RevisionLink { repo, digest } => {
                let r = self.repo(&repo)?;
                r.revision(&digest)
                    .map(Link::state)
                    .or_else(|| odd(r, path))
            }
            Parsed::TagCurrent { repo, tag } => {
                let t = self.repo(&repo)?.tag(&tag)?;
                Some(Cow::Borrowed(&t.current))
            }
            Parsed::TagIndexLink { repo, tag, digest } => self
                .repo(&repo)?
                .tag(&tag)?
                .index
                .iter()
                .find(|l| l.path_digest == digest)
                .map(Link::state),
            _ => {
                let rel = path.strip_prefix("repositories/")?;
                let pos = rel.find("/_")?;
                odd(self.repo(&rel[..pos])?, path)
            }
        }
    }

    /// Why manifest `d` could not be read, if it could not.
    pub fn manifest_unreadable(&self, d: &Digest) -> Option<&str> {
        self.unreadable_manifests
            .binary_search_by(|(k, _)| k.cmp(d))
            .ok()
            .map(|i| self.unreadable_manifests[i].1.as_str())
    }

    /// Every path (relative to v2) the scan or the hashing could not read, sorted and distinct:
    /// folders it could not list or open, link files, blob data and manifest blobs. No verdict
    /// may rest on what lies there (a repair must not act on it either).
    pub fn unreadable_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Unreadable(_)))
            .map(|e| e.path.clone())
            .collect();
        let unreadable = |s: &LinkState| matches!(s, LinkState::Unreadable(_));
        for r in &self.repos {
            // Paths are built only for the (rare) unreadable links.
            let bad = |l: &&Link| !l.names_own_folder() && unreadable(&l.state());
            for l in r.layers.iter().filter(bad) {
                out.push(crate::model::layout::layer_link(&r.name, &l.path_digest));
            }
            for l in r.revisions.iter().filter(bad) {
                out.push(crate::model::layout::revision_link(&r.name, &l.path_digest));
            }
            for t in &r.tags {
                if unreadable(&t.current) {
                    out.push(crate::model::layout::tag_current_link(&r.name, &t.name));
                }
                for l in &t.index {
                    if !l.names_own_folder() && unreadable(&l.state()) {
                        out.push(crate::model::layout::tag_index_link(
                            &r.name,
                            &t.name,
                            &l.path_digest,
                        ));
                    }
                }
            }
            for o in r.odd_layer_links.iter().chain(&r.odd_revision_links) {
                if unreadable(&o.state) {
                    out.push(o.path.clone());
                }
            }
        }
        for (i, b) in self.blobs.iter().enumerate() {
            if b.hashed == Hashed::Failed && matches!(self.verify_of(i), Verify::Unreadable(_)) {
                out.push(crate::model::layout::blob_data(&b.digest));
            }
        }
        for (d, _) in &self.unreadable_manifests {
            out.push(crate::model::layout::blob_data(d));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Sort everything into the canonical order the lookups rely on.
    pub fn normalize(&mut self) {
        // Unstable sorts: keys are unique (one folder per digest or name) and they need no
        // scratch buffer, which for millions of objects would be a second copy.
        self.blobs.sort_unstable_by(|a, b| a.digest.cmp(&b.digest));
        self.blobs.shrink_to_fit();
        self.blob_slots = BlobSlots::build(&self.blobs);
        self.repos.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for r in &mut self.repos {
            r.layers
                .sort_unstable_by(|a, b| a.path_digest.cmp(&b.path_digest));
            r.revisions
                .sort_unstable_by(|a, b| a.path_digest.cmp(&b.path_digest));
            r.tags.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            for t in &mut r.tags {
                t.index
                    .sort_unstable_by(|a, b| a.path_digest.cmp(&b.path_digest));
                t.index_mtimes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            }
            r.uploads.sort_by(|a, b| a.uuid.cmp(&b.uuid));
            r.odd_layer_links.sort_by(|a, b| a.path.cmp(&b.path));
            r.odd_revision_links.sort_by(|a, b| a.path.cmp(&b.path));
            r.odd_tags.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.symlinks.sort_by(|a, b| a.path.cmp(&b.path));
        self.unreadable_manifests.sort_by(|a, b| a.0.cmp(&b.0));
        self.tree.sort_by(|a, b| a.path.cmp(&b.path));
        for t in &mut self.tree {
            t.children
                .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        }
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
        self.multipart_uploads
            .sort_by(|a, b| (&a.path, &a.upload_id).cmp(&(&b.path, &b.upload_id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-object records a store holds millions of: their size is the memory budget
    /// (docs/benchmarks.md), so growing one must be a decision, not an accident.
    #[test]
    fn per_object_records_stay_compact() {
        assert!(std::mem::size_of::<Blob>() <= 64);
        assert!(std::mem::size_of::<Link>() <= 48);
        assert!(std::mem::size_of::<manifest::Reference>() <= 48);
        assert!(std::mem::size_of::<Digest>() == 33);
        assert!(std::mem::size_of::<manifest::Manifest>() <= 48);
    }

    #[test]
    fn blob_lookup_by_index_and_when_stale() {
        let mut inv = Inventory::default();
        for i in 0..1000u32 {
            inv.blobs.push(Blob {
                digest: Digest::of_bytes(&i.to_le_bytes()),
                size: i as u64,
                mtime: 0,
                inode: 0,
                hashed: Hashed::No,
            });
        }
        inv.normalize();
        for i in 0..1000u32 {
            let d = Digest::of_bytes(&i.to_le_bytes());
            assert_eq!(inv.blob(&d).map(|b| b.size), Some(i as u64));
        }
        assert!(inv.blob(&Digest::of_bytes(b"absent")).is_none());
        // Blobs changed after normalize: the index steps aside for the binary search.
        inv.blobs.truncate(10);
        let kept = inv.blobs[3].digest.clone();
        assert_eq!(inv.blob_index(&kept), Some(3));
    }

    #[test]
    fn symlinks_below_a_folder_skip_siblings_that_sort_between() {
        let mut inv = Inventory::default();
        for p in [
            "blobs",
            "blobs.bak",
            "blobs-x/y",
            "blobs/sha256/ab",
            "blobsz",
            "blobs/z",
        ] {
            inv.symlinks.push(Symlink {
                path: p.into(),
                text: String::new(),
                target: SymlinkTarget::Dangling,
            });
        }
        inv.normalize();
        let got: Vec<&str> = inv
            .symlinks_below("blobs")
            .map(|s| s.path.as_str())
            .collect();
        assert_eq!(got, vec!["blobs", "blobs/sha256/ab", "blobs/z"]);
    }

    #[test]
    fn a_link_stores_its_own_folder_digest_once() {
        let d = Digest::of_bytes(b"a");
        let other = Digest::of_bytes(b"b");
        let mut l = Link::new(d.clone(), LinkState::Ok(d.clone()));
        assert!(l.names_own_folder() && !l.is_absent());
        assert_eq!(l.target(), Some(&d));
        assert_eq!(*l.state(), LinkState::Ok(d.clone()));
        l.set_state(LinkState::Ok(other.clone()));
        assert!(!l.names_own_folder());
        assert_eq!(l.target(), Some(&other));
        l.set_state(LinkState::Absent);
        assert!(l.is_absent() && l.target().is_none());
        assert_eq!(*l.state(), LinkState::Absent);
    }
}

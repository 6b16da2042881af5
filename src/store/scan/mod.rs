//! The filesystem scanner (the filesystem side of `store::Storage`). Finds the store, walks `blobs/` and
//! `repositories/` in parallel without ever following a symlink, reads link files with a size
//! cap, parses the manifest blobs, and returns an `Inventory`. Per-entry problems become entries;
//! the scan goes on.

mod blobs;
pub mod fsio;
pub(crate) mod io;
pub(crate) mod manifests;
mod repos;
pub mod workers;

use crate::model::inventory::{Blob, Entry, EntryKind, Inventory};
use crate::progress::Progress;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A located store.
#[derive(Clone, Debug)]
pub struct Store {
    /// The registry's rootdirectory.
    pub root: PathBuf,
    /// `<root>/docker/registry/v2`.
    pub v2: PathBuf,
}

#[derive(Debug)]
pub struct LocateError(String);

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LocateError {}

fn is_dir_nofollow(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// `path` is the rootdirectory (holding `docker/registry/v2`) or the `v2` folder itself.
pub fn locate(path: &Path) -> Result<Store, LocateError> {
    let meta =
        std::fs::metadata(path).map_err(|e| LocateError(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Err(LocateError(format!(
            "{} is not a registry store: not a directory",
            path.display()
        )));
    }
    let v2 = path.join(crate::model::layout::V2_FROM_ROOT);
    if is_dir_nofollow(&v2) {
        return Ok(Store {
            root: path.to_path_buf(),
            v2,
        });
    }
    // The v2 folder itself: .../docker/registry/v2.
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let names: Vec<&OsStr> = abs.iter().collect();
    if names.len() >= 4
        && names[names.len() - 3..]
            == [
                OsStr::new("docker"),
                OsStr::new("registry"),
                OsStr::new("v2"),
            ]
    {
        let root = abs
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        return Ok(Store { root, v2: abs });
    }
    Err(LocateError(format!(
        "{} is not a registry store: no docker/registry/v2 below it (give the registry's rootdirectory, e.g. /var/lib/registry)",
        path.display()
    )))
}

/// What a walker collects; merged after parallel parts finish.
#[derive(Default)]
pub(crate) struct Sink {
    pub blobs: Vec<Blob>,
    pub entries: Vec<Entry>,
    /// `data` files below non-UTF-8 folders of `blobs/`: raw path, size.
    pub raw_blob_data: Vec<(Vec<u8>, Option<u64>)>,
}

impl Sink {
    pub fn entry(&mut self, path: String, kind: EntryKind) {
        self.entries.push(Entry { path, kind });
    }

    /// A failed listing or stat: vanished entries mean the store changed under us.
    pub fn io_error(&mut self, path: &str, e: std::io::Error) {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            EntryKind::Changed("vanished during the scan".into())
        } else {
            EntryKind::Unreadable(e.to_string())
        };
        self.entry(path.to_string(), kind);
    }

    pub fn non_utf8(&mut self, dir: &str, name: &OsStr) {
        let sep = if dir.is_empty() { "" } else { "/" };
        self.entry(
            format!("{dir}{sep}{}", name.to_string_lossy()),
            EntryKind::NonUtf8,
        );
    }

    /// List `rel` (below v2), reporting a failure as an entry; `None` when it cannot be listed.
    pub fn list(&mut self, v2: &Path, rel: &str) -> Option<Vec<fsio::Child>> {
        let dir = self.open(v2, rel)?;
        self.list_open(&dir, rel)
    }

    /// Open the folder `rel` (below v2) for relative access, reporting a failure as an entry.
    pub fn open(&mut self, v2: &Path, rel: &str) -> Option<fsio::DirFd> {
        self.ok(rel, fsio::DirFd::open(&v2.join(rel)))
    }

    /// List an open folder whose path below v2 is `rel`, reporting a failure as an entry.
    pub fn list_open(&mut self, dir: &fsio::DirFd, rel: &str) -> Option<Vec<fsio::Child>> {
        self.ok(rel, dir.list())
    }

    fn ok<T>(&mut self, rel: &str, r: std::io::Result<T>) -> Option<T> {
        r.map_err(|e| self.io_error(rel, e)).ok()
    }

    pub fn merge(&mut self, other: Sink) {
        // Moving the larger side keeps peak memory at one copy of the blob list.
        if self.blobs.is_empty() {
            self.blobs = other.blobs;
        } else {
            self.blobs.extend(other.blobs);
        }
        self.entries.extend(other.entries);
        self.raw_blob_data.extend(other.raw_blob_data);
    }
}

/// Record the absolute v2 path the registry's messages show, the symbolic links in it, and where
/// every symbolic link found in the store leads (resolved without following; see
/// `fsio::resolve_symlink`).
fn resolve_symlinks(inv: &mut Inventory) {
    let abs = std::path::absolute(&inv.v2).unwrap_or_else(|_| inv.v2.clone());
    inv.v2_text = abs.display().to_string();
    let real = std::fs::canonicalize(&inv.v2).ok();
    // A v2 path without symbolic links is its own canonical form; otherwise their number is not
    // known (resolving the path above the store is not regfsck's business).
    inv.v2_links = match &real {
        Some(r) if *r == abs => Some(0),
        _ => None,
    };
    let Some(real) = real else { return };
    inv.symlinks = inv
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Symlink)
        .map(|e| {
            let at = real.join(&e.path);
            let text = std::fs::read_link(&at)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A path shown lossily cannot be resolved: it names another file.
            let target = if e.path.contains('\u{fffd}') {
                crate::model::inventory::SymlinkTarget::Unknown(
                    "below a folder whose name is not UTF-8".into(),
                )
            } else {
                fsio::resolve_symlink(&real, &at)
            };
            crate::model::inventory::Symlink {
                path: e.path.clone(),
                text,
                target,
            }
        })
        .collect();
}

/// How thoroughly to look.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Also list the inside of every link folder, tag `current/` folder and blob folder, to find
    /// foreign files and temp residue there. The default reads each `link` and stats each
    /// `data` directly, exactly what the registry and its GC read, and lists a folder only when
    /// that read is unusual (missing, empty, too large, not a regular file) — about a third of
    /// the system calls (docs/benchmarks.md).
    pub deep: bool,
    /// Set by Ctrl-C: the walks stop at the next folder and the scan returns `Interrupted`.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Reads in flight (`--io-depth`): the scan runs on this many blocking-I/O workers whatever
    /// the number of cores, because a cold scan waits on the device, not on the CPU. 0: the
    /// default, `io::DEFAULT_DEPTH`.
    pub io_depth: usize,
    /// Keep what push times need where the scan sees it for free: on object storage the
    /// LastModified of every manifest link, from the listing (for `ls` and the cleanup
    /// commands; `Storage::push_times`). A filesystem ignores it: it stats links when asked.
    pub link_times: bool,
}

impl ScanOptions {
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// The scan was stopped by `ScanOptions::cancel`; a partial listing is no basis for any verdict,
/// so nothing of it is returned.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted during the scan: nothing was checked")
    }
}

impl std::error::Error for Interrupted {}

/// Scan a located store into an inventory, the default way.
pub fn scan(store: &Store, progress: &dyn Progress) -> anyhow::Result<Inventory> {
    scan_with(store, &ScanOptions::default(), progress)
}

/// Scan a located store into an inventory.
pub fn scan_with(
    store: &Store,
    opts: &ScanOptions,
    progress: &dyn Progress,
) -> anyhow::Result<Inventory> {
    let started = Instant::now();
    // Every walk below (and the manifest reads) runs on the I/O workers: the `workers::` calls
    // inside `install` use that pool.
    let pool = io::pool(opts.io_depth)?;
    let mut inv = pool.install(|| walk(store, opts, progress))?;
    inv.stats.scan_seconds = started.elapsed().as_secs_f64();
    Ok(inv)
}

fn walk(store: &Store, opts: &ScanOptions, progress: &dyn Progress) -> anyhow::Result<Inventory> {
    let top = fsio::list(&store.v2)
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", store.v2.display()))?;
    // Objects found so far (blobs, links, entries), with a rate: the total is not known.
    let bar = progress.counter("scan");
    let mut inv = Inventory {
        root: store.root.clone(),
        v2: store.v2.clone(),
        ..Inventory::default()
    };
    let mut sink = Sink::default();
    for c in &top {
        match c.name.to_str() {
            Some("blobs") | Some("repositories")
                if c.kind == crate::model::inventory::EntryType::Dir => {}
            Some(n) => sink.entry(
                n.to_string(),
                if c.kind == crate::model::inventory::EntryType::Symlink {
                    EntryKind::Symlink
                } else {
                    EntryKind::Unrecognized("not part of a registry store".into())
                },
            ),
            None => sink.non_utf8("", &c.name),
        }
    }
    let (has_blobs, repos) = workers::join(
        || {
            let mut s = Sink::default();
            let found = blobs::scan(&store.v2, opts, &mut s, bar.as_ref());
            (found, s)
        },
        || repos::scan(&store.v2, opts, bar.as_ref()),
    );
    inv.has_blobs_dir = has_blobs.0;
    sink.merge(has_blobs.1);
    let walked = repos;
    inv.has_repositories_dir = walked.found;
    inv.repos = walked.repos;
    inv.tree = walked.tree;
    sink.merge(walked.sink);
    inv.blobs = sink.blobs;
    inv.entries = sink.entries;
    if opts.cancelled() {
        return Err(Interrupted.into());
    }
    inv.raw_blob_data = std::mem::take(&mut sink.raw_blob_data);
    resolve_symlinks(&mut inv);
    inv.normalize();
    manifests::read_all(&mut inv, opts, bar.as_ref());
    bar.finish();
    if opts.cancelled() {
        return Err(Interrupted.into());
    }
    inv.stats.blob_bytes = inv.blobs.iter().map(|b| b.size).sum();
    inv.stats.residue_bytes = inv
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::TempResidue | EntryKind::BlobStray))
        .filter_map(|e| std::fs::symlink_metadata(store.v2.join(&e.path)).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    Ok(inv)
}

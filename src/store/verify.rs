//! Content verification: sha256 of every selected blob's data in parallel, streamed through a
//! buffer (a large blob wholly in the page cache hashed where it lies, a cold one read directly:
//! `store::direct`), never following symlinks, detecting files that change while they are
//! hashed, stopping cleanly on cancel or deadline.

use crate::model::digest::Digest;
use crate::model::inventory::{Blob, Inventory, Verify};
use crate::model::layout;
use crate::progress::{Progress, Unit};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Files at least this large are hashed from a mapping when all of them is in the page cache, and
/// read directly (or through a buffer) otherwise (`hash_large`); smaller ones are always read (mapping costs a
/// syscall pair and page-table work that small files never repay).
pub const LARGE_FILE: u64 = 4 << 20;
/// The read size of a large blob's reader.
const BUF_SIZE: usize = 1 << 20;

/// Blobs below this size are latency-bound on a cold cache (an inode and a few blocks, hashed in
/// microseconds): they are hashed on the I/O workers, `--io-depth` at a time, through a small
/// buffer each, so memory stays small at any depth. Larger blobs are bandwidth- and CPU-bound:
/// read by `large_readers` threads (the kernel's readahead, or for a cold blob of 4 MiB or more a
/// second direct read, keeps each one's next megabytes in flight while it hashes; asking for more
/// with `POSIX_FADV_WILLNEED` measured no faster).
pub const SMALL_BLOB: u64 = 1 << 20;
const SMALL_BUF: usize = 64 << 10;

pub type Selector = Box<dyn Fn(&Blob) -> bool + Send + Sync>;

#[derive(Default)]
pub struct VerifyOptions {
    /// Set by Ctrl-C: stop at the next blob boundary.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Stop starting new blobs after this instant (`--max-duration`).
    pub deadline: Option<Instant>,
    /// Which blobs to hash (subset, incremental state); all when `None`.
    pub select: Option<Selector>,
    /// Reads in flight for the small blobs (`--io-depth`; 0: the default, see
    /// `scan::ScanOptions::io_depth`).
    pub io_depth: usize,
}

/// Checked between chunks so that Ctrl-C stops even inside a multi-gigabyte blob: 8 MiB is a few
/// milliseconds of hashing at full speed and still well under a second on a slow, shared core.
const CANCEL_CHUNK: usize = 8 << 20;

pub(crate) fn cancelled(cancel: Option<&AtomicBool>) -> bool {
    cancel.is_some_and(|c| c.load(Ordering::Relaxed))
}

fn interrupted() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled")
}

fn hash_reader(
    f: &mut File,
    buf: &mut [u8],
    cancel: Option<&AtomicBool>,
) -> std::io::Result<Digest> {
    let mut h = Sha256::new();
    let mut since_check = 0;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        since_check += n;
        if since_check >= CANCEL_CHUNK {
            since_check = 0;
            if cancelled(cancel) {
                return Err(interrupted());
            }
        }
    }
    Ok(Digest::sha256(h.finalize().into()))
}

/// A hashing job's read buffer, and whether cold large blobs may be read directly.
pub struct Scratch {
    buf: Vec<u8>,
    direct: bool,
}

impl Scratch {
    pub fn new(buf_size: usize) -> Scratch {
        Scratch {
            buf: vec![0u8; buf_size],
            direct: true,
        }
    }

    /// Never read directly (the page cache only).
    #[cfg(test)]
    fn buffered(buf_size: usize) -> Scratch {
        Scratch {
            buf: vec![0u8; buf_size],
            direct: false,
        }
    }
}

thread_local! {
    /// This thread's direct-read buffers, mapped at its first cold large blob (`Some(None)` once
    /// they could not be had): per thread, not per `Scratch`, because rayon makes a `Scratch` per
    /// split of the work, and mapping and checking huge pages costs a millisecond or two.
    static DIRECT_BUFFERS: std::cell::RefCell<Option<Option<crate::store::direct::Buffers>>> =
        const { std::cell::RefCell::new(None) };
}

/// Hash a large blob (`size` bytes, as `hash_file` has just checked) the cheaper way for where
/// it is: wholly in the page cache, where it lies (mapped: no copy, ~10 % faster warm); otherwise
/// with direct reads into huge pages (`store::direct`: large requests, no page-cache work; 1 GiB
/// of cold layers in 0.62-0.69 s against 1.07-1.23 s buffered on the second benchmark VM), or,
/// where those cannot be had, read through the buffer, where the kernel's readahead runs ahead of
/// the reader (docs/benchmarks.md, "Hashing, cold").
fn hash_large(
    f: &mut File,
    size: u64,
    scratch: &mut Scratch,
    cancel: Option<&AtomicBool>,
) -> std::io::Result<Digest> {
    // SAFETY: the map is read-only and dropped before returning; the registry is stopped or
    // read-only while regfsck runs, and a concurrent truncation (which could SIGBUS while a
    // cached file is hashed from the map) is the one risk we accept for large files — the
    // size/mtime check around hashing reports such changes.
    let map = unsafe { memmap2::Mmap::map(&*f) }.ok();
    let mut resident = Vec::new();
    let cached = map.as_ref().filter(|m| {
        (0..m.len())
            .step_by(CANCEL_CHUNK)
            .all(|from| in_cache(m, from, (from + CANCEL_CHUNK).min(m.len()), &mut resident))
    });
    let Some(map) = cached else {
        if scratch.direct {
            use crate::store::direct::{hash, Buffers, Outcome};
            let direct = DIRECT_BUFFERS.with(|cell| {
                let mut slot = cell.borrow_mut();
                let bufs = slot.get_or_insert_with(Buffers::new).as_mut()?;
                Some(hash(f, size, bufs, cancel))
            });
            match direct {
                Some(Ok(Outcome::Hashed(d))) => return Ok(d),
                Some(Err(e)) => return Err(e),
                // Not possible here: read through the page cache.
                Some(Ok(Outcome::Unsupported)) | None => {}
            }
        }
        return hash_reader(f, &mut scratch.buf, cancel);
    };
    let mut h = Sha256::new();
    for (k, chunk) in map.chunks(CANCEL_CHUNK).enumerate() {
        if cancelled(cancel) {
            return Err(interrupted());
        }
        h.update(chunk);
        // SAFETY: the chunk is hashed and never touched again. For a shared read-only file
        // mapping MADV_DONTNEED only unmaps the pages from this process (the page cache keeps
        // them), so RSS stays about one chunk per reader.
        let _ = unsafe {
            map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                k * CANCEL_CHUNK,
                chunk.len(),
            )
        };
    }
    Ok(Digest::sha256(h.finalize().into()))
}

/// Whether every page of `map[from..to]` is in the page cache (`mincore`); `from` is a multiple
/// of the chunk size, so page-aligned.
fn in_cache(map: &memmap2::Mmap, from: usize, to: usize, resident: &mut Vec<u8>) -> bool {
    let page = 4096;
    resident.clear();
    resident.resize((to - from).div_ceil(page), 0);
    // SAFETY: the range lies inside the live mapping, `from` is page-aligned, and `resident` has
    // one byte per page of the range.
    let r = unsafe {
        libc::mincore(
            map.as_ptr().add(from) as *mut libc::c_void,
            to - from,
            resident.as_mut_ptr(),
        )
    };
    r == 0 && resident.iter().all(|b| b & 1 == 1)
}

/// Hash one file; compare identity before and after so that a file changed mid-hash is reported.
pub fn hash_file(
    path: &Path,
    expect_size: u64,
    expect_inode: u64,
    scratch: &mut Scratch,
    cancel: Option<&AtomicBool>,
) -> Result<Digest, Verify> {
    let mut f = match crate::store::scan::fsio::open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Verify::Changed(Box::new("vanished after the scan".into())))
        }
        Err(e) => return Err(Verify::Unreadable(Box::new(e.to_string()))),
    };
    let before = f
        .metadata()
        .map_err(|e| Verify::Unreadable(Box::new(e.to_string())))?;
    if !before.is_file() {
        return Err(Verify::Changed(Box::new("no longer a regular file".into())));
    }
    if before.len() != expect_size || before.ino() != expect_inode {
        return Err(Verify::Changed(Box::new(format!(
            "size or inode changed since the scan ({} -> {} bytes)",
            expect_size,
            before.len()
        ))));
    }
    let result = if before.len() >= LARGE_FILE {
        hash_large(&mut f, before.len(), scratch, cancel)
    } else {
        hash_reader(&mut f, &mut scratch.buf, cancel)
    };
    let d = result.map_err(|e| match e.kind() {
        std::io::ErrorKind::Interrupted => Verify::NotChecked,
        _ => Verify::Unreadable(Box::new(e.to_string())),
    })?;
    match f.metadata() {
        Ok(after)
            if after.len() == before.len()
                && after.mtime() == before.mtime()
                && after.mtime_nsec() == before.mtime_nsec() =>
        {
            Ok(d)
        }
        Ok(_) => Err(Verify::Changed(Box::new(
            "modified while it was hashed".into(),
        ))),
        Err(e) => Err(Verify::Unreadable(Box::new(e.to_string()))),
    }
}

/// One hashing pass: the selected blobs, the progress bar and the counters, shared by the
/// filesystem and object-storage hashers (which differ in how they read and how many at once).
pub(crate) struct Pass<'a> {
    opts: &'a VerifyOptions,
    pub blobs: &'a [Blob],
    bar: Box<dyn crate::progress::Bar>,
    stopped: AtomicBool,
    hashed_bytes: AtomicU64,
}

impl Pass<'_> {
    /// Hash blob `i` with `hash` unless the run is cancelled or out of time.
    pub fn one(
        &self,
        i: usize,
        hash: impl FnOnce(&Blob) -> Result<Digest, Verify>,
    ) -> (usize, Verify) {
        let cancelled = self
            .opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
            || self.opts.deadline.is_some_and(|d| Instant::now() >= d);
        if cancelled {
            self.stopped.store(true, Ordering::Relaxed);
            return (i, Verify::NotChecked);
        }
        let b = &self.blobs[i];
        let v = match hash(b) {
            Ok(d) if d == b.digest => Verify::Ok,
            Ok(d) => Verify::Mismatch(Box::new(d)),
            Err(v) => v,
        };
        if v == Verify::NotChecked {
            self.stopped.store(true, Ordering::Relaxed);
            return (i, v);
        }
        self.hashed_bytes.fetch_add(b.size, Ordering::Relaxed);
        self.bar.inc(b.size);
        (i, v)
    }
}

/// Hash the selected blobs with `each` (which calls `Pass::one` for every index it is given, in
/// any order and parallelism) and record each outcome in the inventory and its stats.
pub(crate) fn verify_with(
    inv: &mut Inventory,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    each: impl FnOnce(&Pass, Vec<usize>) -> Vec<(usize, Verify)>,
) {
    let started = Instant::now();
    let selected: Vec<usize> = inv
        .blobs
        .iter()
        .enumerate()
        .filter(|(_, b)| opts.select.as_ref().is_none_or(|s| s(b)))
        .map(|(i, _)| i)
        .collect();
    let total: u64 = selected.iter().map(|&i| inv.blobs[i].size).sum();
    let pass = Pass {
        opts,
        blobs: &inv.blobs,
        bar: progress.bar("verify", total, Unit::Bytes),
        stopped: AtomicBool::new(false),
        hashed_bytes: AtomicU64::new(0),
    };
    let results = each(&pass, selected);
    pass.bar.finish();
    let stopped = pass.stopped.load(Ordering::Relaxed);
    let bytes = pass.hashed_bytes.load(Ordering::Relaxed);
    let mut hashed = 0;
    for (i, v) in results {
        if v != Verify::NotChecked {
            hashed += 1;
        }
        inv.set_verify(i, v);
    }
    inv.stats.hashed_blobs += hashed;
    inv.stats.hashed_bytes += bytes;
    inv.stats.hash_seconds += started.elapsed().as_secs_f64();
    inv.stats.hash_incomplete |= stopped;
}

/// Hash the selected blobs and record each outcome in `Blob::verify` and `inv.stats`.
pub fn verify(inv: &mut Inventory, opts: &VerifyOptions, progress: &dyn Progress) {
    let v2 = inv.v2.clone();
    verify_with(inv, opts, progress, |pass, selected| {
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = selected
            .into_iter()
            .partition(|&i| pass.blobs[i].size < SMALL_BLOB);
        // Inode order, as the scan reads (`scan::io::by_inode`): the device reads inode tables
        // and, mostly, blocks in order.
        small.sort_unstable_by_key(|&i| pass.blobs[i].inode);
        large.sort_unstable_by_key(|&i| pass.blobs[i].inode);
        let hash = |scratch: &mut Scratch, i: usize| {
            pass.one(i, |b| {
                let path = v2.join(layout::blob_data(&b.digest));
                hash_file(&path, b.size, b.inode, scratch, opts.cancel.as_deref())
            })
        };
        // Large blobs on rayon's few hashing threads (CPU work to balance), small ones on the
        // I/O workers (blocking reads, many at once: `scan::workers`).
        let large_lane = |which: &[usize]| -> Vec<(usize, Verify)> {
            which
                .par_iter()
                .map_init(|| Scratch::new(BUF_SIZE), |scratch, &i| hash(scratch, i))
                .collect()
        };
        let small_lane = |which: &[usize]| -> Vec<(usize, Verify)> {
            crate::store::scan::workers::map_init(
                which,
                || Scratch::new(SMALL_BUF),
                |scratch, &i| hash(scratch, i),
            )
        };
        // Both lanes at once: the small blobs keep the device's queue full (on the I/O workers)
        // while the large ones keep the cores busy (on the hashing threads, `--jobs`). Without
        // an I/O pool (threads refused) the small blobs are read one at a time.
        // No more workers than small blobs (threads that would never read).
        let io = crate::store::scan::io::depth(opts.io_depth);
        let pool = crate::store::scan::io::pool(io.min(small.len()).max(1)).ok();
        let readers = large_readers(
            opts.io_depth,
            rayon::current_num_threads(),
            crate::store::direct::huge_pages_on_request(),
        );
        let large_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(readers)
            .thread_name(|i| format!("regfsck-hash-{i}"))
            .build()
            .ok();
        let (mut results, large_results) = rayon::join(
            || match &pool {
                Some(p) => p.install(|| small_lane(&small)),
                None => small_lane(&small),
            },
            || match &large_pool {
                Some(p) => p.install(|| large_lane(&large)),
                None => large_lane(&large),
            },
        );
        results.extend(large_results);
        results
    });
}

/// Threads hashing blobs of 1 MiB and more: the hashing threads (`--jobs`, the cores by
/// default), or more when `--io-depth` allows, up to a cap that depends on how cold blobs are
/// read (docs/benchmarks.md, "Hashing, cold"). Through the page cache each reader has the
/// kernel's readahead in flight: 8 readers hash a cold store of 64 MiB layers at about the bare
/// reader's speed, 2 leave the device idle part of the time, 16 only add system time. Read
/// directly, each reader has two 2 MiB requests in flight of its own: 4 readers hash 1 GiB of
/// cold layers as fast as 8 (0.59-0.65 s medians either way in interleaved series) with half
/// the buffers (30 MiB resident instead of 45). The hashing takes no more CPU than there is.
fn large_readers(io_depth: usize, jobs: usize, direct: bool) -> usize {
    let cap = if direct {
        MAX_DIRECT_READERS
    } else {
        MAX_LARGE_READERS
    };
    jobs.max(crate::store::scan::io::depth(io_depth).min(cap))
}

/// See `large_readers`: at most this many 1 MiB buffers are held at once.
pub const MAX_LARGE_READERS: usize = 8;
/// See `large_readers`: at most this many pairs of 2 MiB direct buffers.
pub const MAX_DIRECT_READERS: usize = 4;

/// Every data file at a malformed path under blobs/, by v2-relative path: its sha256, and its
/// content decoded as a manifest when it is small enough to be one. What the repair planner needs
/// to move misplaced blobs home. Files that cannot be read are left out.
pub fn misplaced_content(
    inv: &Inventory,
) -> std::collections::HashMap<String, crate::model::inventory::Misplaced> {
    let mut scratch = Scratch::new(BUF_SIZE);
    misplaced_with(
        inv,
        |rel, size| read_small(&inv.v2.join(rel), size),
        |rel, size| {
            let p = inv.v2.join(rel);
            let ino = std::fs::symlink_metadata(&p).map(|m| m.ino()).unwrap_or(0);
            hash_file(&p, size, ino, &mut scratch, None).ok()
        },
    )
}

/// `misplaced_content` over any medium: `read(rel, size)` returns the whole content of an
/// object no larger than a manifest, `hash(rel, size)` the sha256 of a larger one; `None` when it
/// cannot be read (or is no longer that object).
pub fn misplaced_with(
    inv: &Inventory,
    read: impl Fn(&str, u64) -> Option<Vec<u8>>,
    mut hash: impl FnMut(&str, u64) -> Option<Digest>,
) -> std::collections::HashMap<String, crate::model::inventory::Misplaced> {
    use crate::model::inventory::{BlobFault, EntryKind, Misplaced};
    use crate::model::manifest::MAX_MANIFEST_SIZE;
    let mut out = std::collections::HashMap::new();
    for e in &inv.entries {
        let EntryKind::BlobPath {
            fault: BlobFault::BadPath,
            size: Some(size),
        } = e.kind
        else {
            continue;
        };
        let found = if size <= MAX_MANIFEST_SIZE {
            read(&e.path, size).map(|b| Misplaced::of_bytes(&b))
        } else {
            hash(&e.path, size).map(|digest| Misplaced {
                digest,
                size,
                manifest: None,
            })
        };
        if let Some(m) = found {
            out.insert(e.path.clone(), m);
        }
    }
    out
}

/// The whole content of a regular file of `size` bytes (never through a symbolic link); `None`
/// when it cannot be read or is no longer that file.
fn read_small(p: &Path, size: u64) -> Option<Vec<u8>> {
    let f = crate::store::scan::fsio::open_nofollow(p).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::with_capacity(size as usize);
    f.take(size + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 == size).then_some(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn large_blob_readers_follow_the_depth_within_bounds() {
        use super::large_readers;
        // The default depth: 8 buffered readers on 2 cores, 4 direct ones.
        assert_eq!(large_readers(0, 2, false), super::MAX_LARGE_READERS);
        assert_eq!(large_readers(0, 2, true), super::MAX_DIRECT_READERS);
        // A gentle run stays gentle; --jobs is never undercut.
        assert_eq!(large_readers(1, 1, false), 1);
        assert_eq!(large_readers(4, 2, false), 4);
        assert_eq!(large_readers(3, 2, true), 3);
        assert_eq!(large_readers(1, 8, true), 8);
        assert_eq!(large_readers(1024, 32, false), 32);
    }

    /// A large blob hashes to its digest whether its pages are in the page cache (hashed from a
    /// mapping) or not (read through the buffer), and `in_cache` tells the two apart.
    #[test]
    fn a_large_blob_hashes_the_same_cached_or_not() {
        use sha2::Digest as _;
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        // On the disk the tests run from (not a tmpfs, whose pages never leave memory).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("data");
        let bytes: Vec<u8> = (0..(super::LARGE_FILE as usize + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let want = crate::model::digest::Digest::sha256(sha2::Sha256::digest(&bytes).into());
        let f = std::fs::File::open(&path).unwrap();
        f.sync_all().unwrap();
        let meta = f.metadata().unwrap();
        // SAFETY: a read-only map of a file no one changes during the test.
        let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        let mut resident = Vec::new();
        let hash = |mut scratch: super::Scratch| {
            super::hash_file(&path, meta.len(), meta.ino(), &mut scratch, None).unwrap()
        };
        std::fs::read(&path).unwrap();
        assert!(super::in_cache(&map, 0, map.len(), &mut resident));
        assert_eq!(
            hash(super::Scratch::new(1 << 20)),
            want,
            "cached: hashed from the map"
        );
        // Written back above, so the kernel may drop the pages when asked.
        let drop_pages = || {
            // SAFETY: a valid descriptor; the advice only drops clean cached pages.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert!(!super::in_cache(&map, 0, map.len(), &mut Vec::new()));
        };
        drop_pages();
        assert_eq!(
            hash(super::Scratch::new(1 << 20)),
            want,
            "not cached: read directly (or buffered where that cannot be)"
        );
        // Direct reads leave the page cache as it was, which tells the two paths apart.
        let direct = crate::store::direct::Buffers::new().is_some();
        assert_eq!(
            super::in_cache(&map, 0, map.len(), &mut resident),
            !direct,
            "read directly: {direct}"
        );
        drop_pages();
        assert_eq!(
            hash(super::Scratch::buffered(1 << 20)),
            want,
            "not cached: read through the buffer"
        );
        assert!(super::in_cache(&map, 0, map.len(), &mut resident));
    }
}

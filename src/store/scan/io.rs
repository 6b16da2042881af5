//! I/O depth, apart from core count: the pool of blocking-I/O workers the scan and the
//! small-blob hashing run on, and the ordering that helps the device.
//!
//! On a cold page cache every folder lookup, link read and stat waits on the device, and a thread
//! waiting on the device holds one request in flight. The devices stores live on (cloud block
//! volumes, RAID, NVMe, NFS) answer many requests at once, so the reads are issued by
//! `depth` threads whatever the number of cores (docs/design.md, "I/O depth"; measured in
//! docs/benchmarks.md). On a warm cache the same threads simply take turns on the cores.

use super::fsio::Child;

/// Reads in flight by default: measured on the benchmark machine's virtual disk
/// (docs/benchmarks.md, "Cold cache": a cold 20k-blob scan at depth 64, 128 and 256, and the bare
/// reader's sweep); deep enough for NVMe and cloud volumes, and a warm scan pays nothing for it.
pub const DEFAULT_DEPTH: usize = 128;

/// The depth asked for (0: the default), never below one worker.
pub fn depth(asked: usize) -> usize {
    if asked == 0 {
        DEFAULT_DEPTH
    } else {
        asked
    }
}

/// A pool for `depth(asked)` reads in flight (`workers::Pool`: the calling thread and
/// `depth - 1` workers that sleep while idle).
pub fn pool(asked: usize) -> anyhow::Result<super::workers::Pool> {
    super::workers::Pool::new(depth(asked))
        .map_err(|e| anyhow::anyhow!("cannot start the I/O workers: {e}"))
}

/// Put the entries of a listed folder in inode order, in which the filesystem stores their
/// inodes (and, on ext4 and XFS, mostly their blocks): the device then reads inode tables in
/// order, and the filesystem's inode-table readahead serves the next ones. The registry's own
/// order (by name) is restored later: the inventory is sorted (`Inventory::normalize`).
pub fn by_inode(children: &mut [Child]) {
    children.sort_unstable_by_key(|c| c.ino);
}

/// Folders per parallel task in the link and blob walks: small enough that a repository or a
/// shard of a few hundred objects still keeps many reads in flight, large enough that task
/// overhead (microseconds) stays far below the reads themselves on a warm cache.
pub const CHUNK: usize = 16;

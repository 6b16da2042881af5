//! Cold large blobs read with `O_DIRECT` into huge-page buffers, two reads in flight per file:
//! the device gets large requests without the page cache's per-page cost (docs/design.md,
//! "Hashing").
//!
//! Why huge pages: a direct read into ordinary pages is split into requests of at most
//! `max_segments` pages (254 on virtio: under 1 MiB), and measured slower than buffered reads;
//! into a 2 MiB huge page it is one segment per page, and 1 GiB of cold layers read in 0.38 s
//! where buffered reads took 0.52 s, with a tenth of the system time. Without huge pages (THP
//! `never`, none free) or without `O_DIRECT` (some file systems refuse it) the caller reads
//! through the page cache as before.

use crate::model::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

/// One read: a whole huge page, so every request is one contiguous segment.
pub const CHUNK: usize = 2 << 20;
/// Reads in flight per file: one is hashed while the other is read (three were no faster).
const IN_FLIGHT: usize = 2;
const HUGE_PAGE: usize = 2 << 20;

/// `IN_FLIGHT` buffers of `CHUNK` bytes in huge pages, owned by one hashing thread and lent to
/// its readers for each file.
pub struct Buffers {
    base: *mut libc::c_void,
    len: usize,
    start: *mut u8,
}

// SAFETY: the mapping is owned by this value alone; slices of it are handed out only through
// `&mut self`.
unsafe impl Send for Buffers {}

impl Buffers {
    /// Map the buffers on huge pages; `None` when the kernel gives ordinary pages (then direct
    /// reads would be slower than the page cache) or no memory.
    pub fn new() -> Option<Buffers> {
        let want = IN_FLIGHT * CHUNK;
        let len = want + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let offset = (HUGE_PAGE - base as usize % HUGE_PAGE) % HUGE_PAGE;
        // SAFETY: `offset < HUGE_PAGE`, so `start..start + want` lies inside the mapping.
        let start = unsafe { (base as *mut u8).add(offset) };
        let bufs = Buffers { base, len, start };
        // SAFETY: the range is inside the mapping; the advice only changes how it is backed, and
        // the writes touch memory this value owns (faulting the huge pages in now).
        unsafe {
            libc::madvise(start as *mut libc::c_void, want, libc::MADV_HUGEPAGE);
            for page in (0..want).step_by(4096) {
                start.add(page).write_volatile(0);
            }
        }
        huge_backed(start as usize, want).then_some(bufs)
    }

    fn slices(&mut self) -> Vec<&mut [u8]> {
        // SAFETY: `start..start + IN_FLIGHT * CHUNK` is inside the live mapping, borrowed
        // mutably through `self` for the slices' lifetime.
        let all = unsafe { std::slice::from_raw_parts_mut(self.start, IN_FLIGHT * CHUNK) };
        all.chunks_mut(CHUNK).collect()
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, no slice of which outlives `self`.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Whether this kernel hands out transparent huge pages on request (`always` or `madvise`), so
/// cold large blobs will most likely be read directly (`Buffers::new` is the real test, per
/// hashing thread). Used to size the large-blob readers before any is started.
pub fn huge_pages_on_request() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]"))
}

/// Whether `[addr, addr + len)` is backed by transparent huge pages: the `AnonHugePages` of its
/// mapping in /proc/self/smaps (the region is a mapping of its own, between its slack pages).
fn huge_backed(addr: usize, len: usize) -> bool {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return false;
    };
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && addr + len <= b;
                    continue;
                }
            }
        }
        if inside {
            if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                let kb: usize = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                return kb * 1024 >= len;
            }
        }
    }
    false
}

/// Set or clear `O_DIRECT` on an open file (Linux allows both with `F_SETFL`); false when the
/// file system refuses.
fn set_direct(f: &File, on: bool) -> bool {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor `f` owns, with flag arguments only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        libc::fcntl(fd, libc::F_SETFL, flags) == 0
    }
}

/// Fill `buf` from `offset` (short only at the end of the file).
fn read_chunk(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        // A direct read ends short only at the end of the file; the next offset would be
        // unaligned, so stop (a file that grew is reported by the caller's identity check).
        if n == 0 || n % 512 != 0 {
            got += n;
            break;
        }
        got += n;
    }
    Ok(got)
}

/// What a direct hash came to.
pub enum Outcome {
    Hashed(Digest),
    /// Direct reads are not possible for this file: read it through the page cache instead.
    Unsupported,
}

/// Hash `f` (`size` bytes) with direct reads into `bufs`, `IN_FLIGHT` at a time, each read by
/// its own thread while this one hashes in order. Errors other than the file system refusing
/// direct reads (`EINVAL`) are the file's own (unreadable); cancel is checked between chunks.
pub fn hash(
    f: &File,
    size: u64,
    bufs: &mut Buffers,
    cancel: Option<&AtomicBool>,
) -> std::io::Result<Outcome> {
    if !set_direct(f, true) {
        return Ok(Outcome::Unsupported);
    }
    let result = pipeline(f, size, bufs, cancel);
    // Back to buffered for a fallback read (clearing the flag is never refused: only setting it
    // is checked against the file system).
    set_direct(f, false);
    match result {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Outcome::Unsupported),
        Err(e) => Err(e),
        Ok(None) => Ok(Outcome::Unsupported),
        Ok(Some(d)) => Ok(Outcome::Hashed(d)),
    }
}

/// The digest, or `None` when a reader thread could not be started (then the caller reads
/// through the page cache, on its own thread).
fn pipeline(
    f: &File,
    size: u64,
    bufs: &mut Buffers,
    cancel: Option<&AtomicBool>,
) -> std::io::Result<Option<Digest>> {
    let chunks = size.div_ceil(CHUNK as u64) as usize;
    std::thread::scope(|s| {
        let mut to_reader = Vec::new();
        let mut from_reader = Vec::new();
        for (k, buf) in bufs.slices().into_iter().enumerate() {
            let (give, empty) = mpsc::channel::<&mut [u8]>();
            let (done, filled) = mpsc::channel::<std::io::Result<(&mut [u8], usize)>>();
            give.send(buf).expect("the reader is not started yet");
            let reader = std::thread::Builder::new().name("regfsck-direct".into());
            let started = reader.spawn_scoped(s, move || {
                // Reader k reads chunks k, k + IN_FLIGHT, ...: this one's buffer comes back
                // once the hasher is done with the previous of them.
                for i in (k..chunks).step_by(IN_FLIGHT) {
                    let Ok(buf) = empty.recv() else { return };
                    let r = read_chunk(f, buf, (i * CHUNK) as u64).map(|n| (buf, n));
                    let failed = r.is_err();
                    if done.send(r).is_err() || failed {
                        return;
                    }
                }
            });
            if started.is_err() {
                return Ok(None);
            }
            to_reader.push(give);
            from_reader.push(filled);
        }
        let mut h = Sha256::new();
        for i in 0..chunks {
            if super::verify::cancelled(cancel) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "cancelled",
                ));
            }
            let k = i % IN_FLIGHT;
            let (buf, n) = from_reader[k]
                .recv()
                .map_err(|_| std::io::Error::other("a reader stopped"))??;
            h.update(&buf[..n]);
            if n < CHUNK {
                break;
            }
            let _ = to_reader[k].send(buf);
        }
        // Returning drops the channels: readers waiting for a buffer end, and the scope waits
        // for any read still running.
        Ok(Some(Digest::sha256(h.finalize().into())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_the_same_read_directly_at_any_size() {
        // On the disk the tests run from (tmpfs may refuse O_DIRECT).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let Some(mut bufs) = Buffers::new() else {
            eprintln!("no huge pages here: direct reads are not used");
            return;
        };
        for size in [
            0,
            1,
            511,
            4096,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 12_345,
            4 * CHUNK,
        ] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &bytes).unwrap();
            let f = File::open(&path).unwrap();
            let want = Digest::sha256(Sha256::digest(&bytes).into());
            match hash(&f, size as u64, &mut bufs, None).unwrap() {
                Outcome::Hashed(d) => assert_eq!(d, want, "{size} bytes"),
                Outcome::Unsupported => eprintln!("O_DIRECT refused here"),
            }
        }
    }

    #[test]
    fn a_cancelled_hash_stops() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let Some(mut bufs) = Buffers::new() else {
            return;
        };
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 3 * CHUNK]).unwrap();
        let f = File::open(&path).unwrap();
        let stop = AtomicBool::new(true);
        match hash(&f, 3 * CHUNK as u64, &mut bufs, Some(&stop)) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::Interrupted),
            Ok(Outcome::Unsupported) => {}
            Ok(Outcome::Hashed(_)) => panic!("hashed despite the cancel"),
        }
    }
}

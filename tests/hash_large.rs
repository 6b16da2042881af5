//! A large blob pushed through the real registry and then damaged is found whichever way it is
//! hashed: from a mapping when all of it is in the page cache, through reads when it is not
//! (direct reads where huge pages and `O_DIRECT` can be had, as here; `store::verify::hash_large`,
//! `store::direct`; docs/design.md, "Hashing").

mod common;

use common::registry::{registry_available, Registry};
use common::store::{run_json, v2};
use regfsck::model::{digest::Digest, layout};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Above `verify::LARGE_FILE` (4 MiB), not a multiple of the 8 MiB chunk.
const SIZE: usize = (9 << 20) + 4321;

/// Deterministic bytes that do not compress into anything the registry could special-case.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The digests of the `blob-digest-mismatch` findings.
fn mismatches(doc: &serde_json::Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "blob-digest-mismatch")
        .map(|f| f["digest"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether every page of the file is in the page cache.
fn resident(path: &Path) -> bool {
    let f = fs::File::open(path).unwrap();
    // SAFETY: a read-only map of a file nothing changes while it is mapped; only `mincore`
    // looks at it.
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    let mut pages = vec![0u8; map.len().div_ceil(4096)];
    // SAFETY: the range is the whole live mapping, and `pages` has one byte per page.
    let r = unsafe { libc::mincore(map.as_ptr() as *mut _, map.len(), pages.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    pages.iter().all(|p| p & 1 == 1)
}

/// Write the file's pages back and ask the kernel to drop them.
fn drop_from_cache(path: &Path) {
    let f = fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a valid descriptor; the advice only drops clean cached pages.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
}

#[test]
fn a_damaged_large_blob_is_found_in_the_page_cache_and_out_of_it() {
    if !registry_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layer;
    {
        let reg = Registry::start(root);
        layer = reg.put_image("big/img", "v1", &noise(SIZE));
        reg.pull("big/img", "v1").unwrap();
    }
    let root_s = root.to_str().unwrap();
    let data = v2(root).join(layout::blob_data(&Digest::parse(&layer).unwrap()));
    assert_eq!(fs::metadata(&data).unwrap().len(), SIZE as u64);

    // Intact, and out of the page cache: read, and found sound.
    drop_from_cache(&data);
    assert!(!resident(&data), "the kernel kept the pages");
    let (_, doc) = run_json(&["check", root_s]);
    assert!(mismatches(&doc).is_empty(), "{doc:#}");
    assert_eq!(doc["summary"]["fully_verified"], true, "{doc:#}");

    // One byte flipped in the middle, size kept (a bad sector's worth of damage).
    let mut bytes = fs::read(&data).unwrap();
    bytes[SIZE / 2] ^= 0x20;
    fs::write(&data, &bytes).unwrap();

    // In the page cache (just written): hashed from the mapping.
    fs::read(&data).unwrap();
    assert!(resident(&data));
    let (code, doc) = run_json(&["check", root_s]);
    assert_eq!(mismatches(&doc), vec![layer.clone()], "cached: {doc:#}");
    assert_ne!(code, 0);

    // Out of it: read from the disk.
    drop_from_cache(&data);
    assert!(!resident(&data), "the kernel kept the pages");
    let (code, doc) = run_json(&["check", root_s]);
    assert_eq!(mismatches(&doc), vec![layer], "not cached: {doc:#}");
    assert_ne!(code, 0);
}

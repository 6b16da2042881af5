//! Walks `blobs/` in parallel over its fan-out shards and classifies every entry by the strict
//! grammar `blobs/<alg>/<hex[0:2]>/<hex>/data`.

use super::fsio::{self, Child};
use super::{ScanOptions, Sink};
use crate::model::digest::Algorithm;
use crate::model::inventory::{Blob, BlobFault, EntryKind, EntryType, Hashed};
use crate::model::layout;
use crate::progress::Bar;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

fn name_of(c: &Child) -> Option<&str> {
    c.name.to_str()
}

/// Anything below `blobs/` off the grammar: report every `data` file as a malformed blob path
/// (the registry's GC parses those) and every other file as stray. Iterative, so depth is free.
fn foreign_subtree(v2: &Path, rel: String, sink: &mut Sink) {
    let mut stack = vec![rel];
    while let Some(dir) = stack.pop() {
        let Some(children) = sink.list(v2, &dir) else {
            continue;
        };
        if children.is_empty() {
            sink.entry(dir.clone(), EntryKind::EmptyDir);
        }
        for c in children {
            let Some(name) = name_of(&c) else {
                non_utf8_child(v2, Path::new(&dir), &dir, &c, sink);
                continue;
            };
            let path = format!("{dir}/{name}");
            match c.kind {
                EntryType::Dir => stack.push(path),
                EntryType::Symlink => sink.entry(path, EntryKind::Symlink),
                EntryType::File if name == "data" => {
                    let size = std::fs::symlink_metadata(v2.join(&path))
                        .ok()
                        .map(|m| m.len());
                    sink.entry(
                        path,
                        EntryKind::BlobPath {
                            fault: BlobFault::BadPath,
                            size,
                        },
                    );
                }
                _ => stray(path, name, sink),
            }
        }
    }
}

/// Below a folder of `blobs/` whose name is not UTF-8 (`raw` is its v2-relative path on disk):
/// the registry's blob walk descends into it and parses the raw path of every `data` file it
/// finds, so those are kept, raw, for the GC prediction. Nothing else is reported below it (its
/// own `path-non-utf8` is): paths there cannot be shown or acted on faithfully.
fn raw_subtree(v2: &Path, raw: std::path::PathBuf, sink: &mut Sink) {
    use std::os::unix::ffi::OsStrExt;
    let mut stack = vec![raw];
    while let Some(dir) = stack.pop() {
        let children = match fsio::list(&v2.join(&dir)) {
            Ok(c) => c,
            Err(e) => {
                sink.io_error(&dir.to_string_lossy(), e);
                continue;
            }
        };
        for c in children {
            let p = dir.join(&c.name);
            match c.kind {
                EntryType::Dir => stack.push(p),
                EntryType::Symlink => {
                    sink.entry(p.to_string_lossy().into_owned(), EntryKind::Symlink)
                }
                EntryType::File if c.name == "data" => {
                    let size = std::fs::symlink_metadata(v2.join(&p)).ok().map(|m| m.len());
                    sink.raw_blob_data
                        .push((p.as_os_str().as_bytes().to_vec(), size));
                }
                _ => {}
            }
        }
    }
}

/// A non-UTF-8 name below `blobs/`: reported, and walked raw when it is a folder.
fn non_utf8_child(v2: &Path, dir_raw: &std::path::Path, dir: &str, c: &Child, sink: &mut Sink) {
    sink.non_utf8(dir, &c.name);
    if c.kind == EntryType::Dir {
        raw_subtree(v2, dir_raw.join(&c.name), sink);
    }
}

fn stray(path: String, name: &str, sink: &mut Sink) {
    let kind = if layout::is_temp_residue(name) {
        EntryKind::TempResidue
    } else {
        EntryKind::BlobStray
    };
    sink.entry(path, kind);
}

/// One fan-out shard `blobs/<alg>/<fan>/`, listed a batch at a time (memory stays at one batch
/// however many blobs it holds; the shards are many workers' work at once), each batch in inode
/// order and handed to `all` when done.
fn shard(
    v2: &Path,
    alg: Option<Algorithm>,
    alg_name: &str,
    fan: &str,
    opts: &ScanOptions,
    all: &Mutex<Sink>,
    found: &dyn Bar,
) {
    let mut sink = Sink::default();
    let flush = |s: &mut Sink| {
        found.inc((s.blobs.len() + s.entries.len()) as u64);
        all.lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(std::mem::take(s));
    };
    let dir = format!("blobs/{alg_name}/{fan}");
    let Some(fd) = sink.open(v2, &dir) else {
        flush(&mut sink);
        return;
    };
    let mut rel = Vec::with_capacity(160);
    let mut any = false;
    let listed = fd.list_batches(|children| {
        any = true;
        super::io::by_inode(children);
        let batch = Batch {
            v2,
            alg,
            dir: &dir,
            fan,
            fd: &fd,
            opts,
        };
        batch.entries(children, &mut rel, &mut sink);
        flush(&mut sink);
    });
    match listed {
        Err(e) => sink.io_error(&dir, e),
        Ok(()) if !any => sink.entry(dir.clone(), EntryKind::EmptyDir),
        Ok(()) => {}
    }
    flush(&mut sink);
}

/// Where a batch of a shard's entries comes from.
struct Batch<'a> {
    v2: &'a Path,
    alg: Option<Algorithm>,
    dir: &'a str,
    fan: &'a str,
    fd: &'a fsio::DirFd,
    opts: &'a ScanOptions,
}

impl Batch<'_> {
    fn entries(&self, children: &mut Vec<Child>, rel: &mut Vec<u8>, sink: &mut Sink) {
        let Batch {
            v2,
            alg,
            dir,
            fan,
            fd,
            opts,
        } = *self;
        for c in children.drain(..) {
            // A cold fan-out folder of a large store takes seconds: Ctrl-C must not wait for it.
            if opts.cancelled() {
                return;
            }
            let Some(hex) = name_of(&c) else {
                non_utf8_child(v2, Path::new(&dir), dir, &c, sink);
                continue;
            };
            // Built only off the fast lane: the common case needs no path string.
            let path = || format!("{dir}/{hex}");
            match c.kind {
                EntryType::Dir => {}
                EntryType::Symlink => {
                    sink.entry(path(), EntryKind::Symlink);
                    continue;
                }
                EntryType::File if hex == "data" => {
                    // blobs/<alg>/<hex>/data: the fan-out folder is missing.
                    let size = fd.stat_at(hex.as_bytes()).ok().map(|st| st.st_size as u64);
                    sink.entry(
                        path(),
                        EntryKind::BlobPath {
                            fault: BlobFault::BadPath,
                            size,
                        },
                    );
                    continue;
                }
                _ => {
                    stray(path(), hex, sink);
                    continue;
                }
            }
            let digest = alg
                .and_then(|a| crate::model::digest::Digest::from_hex(a, hex.as_bytes()).ok())
                .filter(|d| d.fan_out_is(fan));
            let Some(digest) = digest else {
                foreign_subtree(v2, path(), sink);
                continue;
            };
            if !opts.deep {
                // The fast lane: one stat of `<hex>/data` relative to the open fan-out folder; the
                // folder is listed only when that is not a regular file.
                rel.clear();
                rel.extend_from_slice(hex.as_bytes());
                rel.extend_from_slice(b"/data");
                if let Ok(st) = fd.stat_at(rel) {
                    if fsio::mode_type(st.st_mode) == EntryType::File {
                        sink.blobs.push(Blob {
                            digest,
                            size: st.st_size as u64,
                            mtime: st.st_mtime,
                            inode: st.st_ino,
                            hashed: Hashed::No,
                        });
                        continue;
                    }
                }
            }
            let path = path();
            let Some(inner) = sink.list(v2, &path) else {
                continue;
            };
            let mut has_data = false;
            for e in inner {
                let Some(name) = name_of(&e) else {
                    non_utf8_child(v2, Path::new(&path), &path, &e, sink);
                    continue;
                };
                let p = format!("{path}/{name}");
                match (name, e.kind) {
                    ("data", EntryType::File) => {
                        has_data = true;
                        match std::fs::symlink_metadata(v2.join(&p)) {
                            Ok(m) => sink.blobs.push(Blob {
                                digest: digest.clone(),
                                size: m.len(),
                                mtime: m.mtime(),
                                inode: m.ino(),
                                hashed: Hashed::No,
                            }),
                            Err(err) => sink.io_error(&p, err),
                        }
                    }
                    ("data", EntryType::Symlink) => {
                        has_data = true;
                        sink.entry(p, EntryKind::Symlink);
                    }
                    ("data", _) => {
                        has_data = true;
                        sink.entry(
                            p,
                            EntryKind::BlobPath {
                                fault: BlobFault::DataNotFile,
                                size: None,
                            },
                        );
                    }
                    (_, EntryType::Dir) => foreign_subtree(v2, p, sink),
                    (_, EntryType::Symlink) => sink.entry(p, EntryKind::Symlink),
                    _ => stray(p, name, sink),
                }
            }
            if !has_data {
                sink.entry(path, EntryKind::BlobDataMissing(digest));
            }
        }
    }
}

/// Scan `blobs/`; returns false when it does not exist.
pub fn scan(v2: &Path, opts: &ScanOptions, sink: &mut Sink, found: &dyn Bar) -> bool {
    let top = match fsio::list(&v2.join("blobs")) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(e) => {
            sink.io_error("blobs", e);
            return true;
        }
    };
    let mut shards = Vec::new();
    for a in top {
        let Some(alg_name) = name_of(&a).map(str::to_string) else {
            non_utf8_child(v2, Path::new("blobs"), "blobs", &a, sink);
            continue;
        };
        let rel = format!("blobs/{alg_name}");
        match a.kind {
            EntryType::Dir => {}
            EntryType::Symlink => {
                sink.entry(rel, EntryKind::Symlink);
                continue;
            }
            _ => {
                stray(rel, &alg_name, sink);
                continue;
            }
        }
        let Some(fans) = sink.list(v2, &rel) else {
            continue;
        };
        for f in fans {
            let Some(fan) = name_of(&f) else {
                non_utf8_child(v2, Path::new(&rel), &rel, &f, sink);
                continue;
            };
            let p = format!("{rel}/{fan}");
            match f.kind {
                EntryType::Dir => shards.push((alg_name.clone(), fan.to_string())),
                EntryType::Symlink => sink.entry(p, EntryKind::Symlink),
                _ => stray(p, fan, sink),
            }
        }
    }
    // Each shard's blobs join the one list as soon as the shard is done, so the store's blob
    // list exists once (growing a large Vec is a remap, not a copy) rather than as 256 parts
    // plus their concatenation.
    let all = Mutex::new(std::mem::take(sink));
    super::workers::map(&shards, |(alg_name, fan)| {
        if opts.cancelled() {
            return;
        }
        let alg = Algorithm::from_name(alg_name);
        shard(v2, alg, alg_name, fan, opts, &all, found);
    });
    *sink = all.into_inner().unwrap_or_else(|e| e.into_inner());
    true
}

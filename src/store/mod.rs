//! The store layer: the only code that reads the registry's storage — locating it (the registry's
//! config), scanning it into an inventory, hashing blob data, and the incremental-verification state.
//!
//! The storage seam is `Storage`: everything above it (inventory, checks, gc, usage, plans) is
//! the same for a filesystem store (`scan/`, `verify`: openat2, getdents, no symlink following)
//! and an S3 store (`s3/`: one flat listing, many requests in flight). The seam sits at the level
//! of whole passes — scan into an inventory, hash blobs — because the two media want opposite
//! shapes (a walk of folders relative to open descriptors; a flat, paginated key listing), plus
//! the object operations repair and cleanup need (list, read, stream, write, move into
//! quarantine, delete).

pub mod config;
pub mod details;
pub mod direct;
pub mod pool;
pub mod s3;
pub mod scan;
pub mod state;
pub mod verify;

use crate::model::digest::Digest;
use crate::model::inventory::{Inventory, Misplaced};
use crate::model::pushed::{ManifestInfo, PushTimes};
use crate::progress::Progress;
use std::collections::HashMap;
use std::io::Read;

/// One entry of a listing, relative to `docker/registry/v2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub rel: String,
    /// A folder (a common prefix on object storage).
    pub folder: bool,
    pub size: u64,
    pub mtime: i64,
    /// The object's ETag (object storage only).
    pub etag: Option<String>,
}

/// A registry store on some medium. Paths are relative to `docker/registry/v2`.
pub trait Storage: Send + Sync {
    /// How reports name the store (`/var/lib/registry`, `s3://bucket/prefix`).
    fn location(&self) -> String;
    /// The identity the incremental state file is kept under.
    fn state_root(&self) -> std::path::PathBuf;
    /// Scan into an inventory (links read, manifests parsed).
    fn scan(&self, opts: &scan::ScanOptions, progress: &dyn Progress) -> anyhow::Result<Inventory>;
    /// Hash the selected blobs' data.
    fn verify(&self, inv: &mut Inventory, opts: &verify::VerifyOptions, progress: &dyn Progress);
    /// Each data file at a malformed path below `blobs/`: its sha256, and its content decoded as
    /// a manifest when small enough to be one (for the repair planner).
    fn misplaced_content(&self, inv: &Inventory) -> HashMap<String, Misplaced>;
    /// Push times of the inventory's tags and revisions: the mtimes of their links (statted on
    /// a filesystem; on object storage from the listing of the last scan, which must have been
    /// asked for them with `ScanOptions::link_times`; otherwise every time is unknown).
    fn push_times(&self, inv: &Inventory) -> PushTimes;
    /// `ls`'s display-only facts of manifest `d` (artifactType, platforms, config `created`).
    fn manifest_info(&self, inv: &Inventory, d: &Digest) -> ManifestInfo;
    /// The local filesystem store, for the code that only works there (its applier, the guard
    /// against registry processes).
    fn local(&self) -> Option<&scan::Store> {
        None
    }
    /// The object store, for the applier's object-storage form (repair and undo on S3).
    fn objects(&self) -> Option<&dyn Objects> {
        None
    }

    // Object operations, for repair and cleanup on any medium.

    /// List below `rel`: everything (`by_folder` false) or one level (true).
    fn list(&self, rel: &str, by_folder: bool) -> std::io::Result<Vec<Listed>>;
    /// A small object whole (links, `startedat`); more than `cap` bytes is an error.
    fn read_small(&self, rel: &str, cap: u64) -> std::io::Result<Vec<u8>>;
    /// A blob's data as a stream.
    fn open(&self, rel: &str) -> std::io::Result<Box<dyn Read + Send>>;
    /// Write an object whole, atomically (readers see the old or the new content).
    fn write(&self, rel: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Move an object into `regfsck-quarantine/<run>/<rel>` beside `docker/`.
    fn quarantine(&self, rel: &str, run: &str) -> std::io::Result<()>;
    fn delete(&self, rel: &str) -> std::io::Result<()>;
}

/// An object store's own operations, on keys relative to the store's root directory (so that
/// `regfsck-quarantine/…` sits beside `docker/`): what the applier needs where there are no
/// folders, renames or inodes. Every write is a whole object (atomic for readers); an object is
/// identified by its ETag, size and LastModified.
pub trait Objects: Send + Sync {
    /// The object at `key`, if there is one (its key, size, mtime and ETag).
    fn stat(&self, key: &str) -> std::io::Result<Option<Listed>>;
    /// Every object below `prefix` (flat; `rel` holds the whole root-relative key).
    fn list_keys(&self, prefix: &str) -> std::io::Result<Vec<Listed>>;
    /// Folders one level below `prefix` (names only, without the trailing `/`).
    fn list_folders(&self, prefix: &str) -> std::io::Result<Vec<String>>;
    fn get(&self, key: &str, cap: u64) -> std::io::Result<Vec<u8>>;
    /// An object's content as a stream.
    fn open(&self, key: &str) -> std::io::Result<Box<dyn Read + Send>>;
    fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Server-side copy (the data never leaves the service).
    fn copy(&self, from: &str, to: &str) -> std::io::Result<()>;
    /// Server-side copy of an object as listed (`from.rel` its key): spares the lookup of its
    /// size and ETag where the copy depends on them (S3 copies objects over 5 GiB in parts).
    fn copy_listed(&self, from: &Listed, to: &str) -> std::io::Result<()> {
        self.copy(&from.rel, to)
    }
    /// Delete; nothing there is success.
    fn remove(&self, key: &str) -> std::io::Result<()>;
    /// The incomplete multipart uploads of `key` (their upload ids and when each began).
    fn multipart(&self, key: &str) -> std::io::Result<Vec<(String, i64)>>;
    /// Abort an incomplete multipart upload: its parts are gone for good.
    fn abort_multipart(&self, key: &str, upload_id: &str) -> std::io::Result<()>;
    /// `s3://bucket/<key>`, for messages.
    fn url(&self, key: &str) -> String;
}

/// The filesystem implementation: the scanner and hasher with all their fast lanes.
pub struct FsStorage(pub scan::Store);

impl FsStorage {
    fn path(&self, rel: &str) -> std::io::Result<std::path::PathBuf> {
        if rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("refusing path {rel:?}"),
            ));
        }
        Ok(self.0.v2.join(rel))
    }
}

impl Storage for FsStorage {
    fn location(&self) -> String {
        self.0.root.display().to_string()
    }

    fn state_root(&self) -> std::path::PathBuf {
        self.0.root.clone()
    }

    fn scan(&self, opts: &scan::ScanOptions, progress: &dyn Progress) -> anyhow::Result<Inventory> {
        scan::scan_with(&self.0, opts, progress)
    }

    fn verify(&self, inv: &mut Inventory, opts: &verify::VerifyOptions, progress: &dyn Progress) {
        verify::verify(inv, opts, progress)
    }

    fn misplaced_content(&self, inv: &Inventory) -> HashMap<String, Misplaced> {
        verify::misplaced_content(inv)
    }

    fn push_times(&self, inv: &Inventory) -> PushTimes {
        details::push_times(inv)
    }

    fn manifest_info(&self, inv: &Inventory, d: &Digest) -> ManifestInfo {
        details::manifest_info(inv, d)
    }

    fn local(&self) -> Option<&scan::Store> {
        Some(&self.0)
    }

    fn list(&self, rel: &str, by_folder: bool) -> std::io::Result<Vec<Listed>> {
        use crate::model::inventory::EntryType;
        let mut out = Vec::new();
        let mut stack = vec![rel.trim_end_matches('/').to_string()];
        while let Some(dir) = stack.pop() {
            for c in scan::fsio::list(&self.path(&dir)?)? {
                let name = c.name.to_string_lossy();
                let p = format!("{dir}/{name}");
                let folder = c.kind == EntryType::Dir;
                if folder && !by_folder {
                    stack.push(p);
                    continue;
                }
                let meta = std::fs::symlink_metadata(self.path(&p)?)?;
                out.push(Listed {
                    rel: p,
                    folder,
                    size: if folder { 0 } else { meta.len() },
                    mtime: scan::fsio::mtime(&meta),
                    etag: None,
                });
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    fn read_small(&self, rel: &str, cap: u64) -> std::io::Result<Vec<u8>> {
        match scan::fsio::read_small(&self.path(rel)?, cap) {
            scan::fsio::Small::Bytes(b, _) => Ok(b),
            scan::fsio::Small::Vanished => Err(std::io::ErrorKind::NotFound.into()),
            scan::fsio::Small::TooLarge(n) => Err(std::io::Error::other(format!(
                "{rel}: {n} bytes, larger than {cap}"
            ))),
            scan::fsio::Small::NotFile(_) => {
                Err(std::io::Error::other(format!("{rel}: not a regular file")))
            }
            scan::fsio::Small::Error(e) => Err(std::io::Error::other(e)),
        }
    }

    fn open(&self, rel: &str) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(scan::fsio::open_nofollow(&self.path(rel)?)?))
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let p = self.path(rel)?;
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = p.with_extension("regfsck-new");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &p)
    }

    fn quarantine(&self, rel: &str, run: &str) -> std::io::Result<()> {
        let from = self.path(rel)?;
        let to = self
            .0
            .root
            .join(crate::model::layout::QUARANTINE_DIR)
            .join(run)
            .join(rel);
        if let Some(d) = to.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::rename(from, to)
    }

    fn delete(&self, rel: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(rel)?) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

impl Storage for s3::S3Store {
    fn location(&self) -> String {
        self.config.display()
    }

    fn state_root(&self) -> std::path::PathBuf {
        let ep = self.config.endpoint.as_deref().unwrap_or("aws");
        format!("{}@{ep}", self.config.display()).into()
    }

    fn scan(&self, opts: &scan::ScanOptions, progress: &dyn Progress) -> anyhow::Result<Inventory> {
        s3::S3Store::scan(self, opts, progress)
    }

    fn verify(&self, inv: &mut Inventory, opts: &verify::VerifyOptions, progress: &dyn Progress) {
        s3::S3Store::verify(self, inv, opts, progress)
    }

    fn misplaced_content(&self, inv: &Inventory) -> HashMap<String, Misplaced> {
        s3::S3Store::misplaced_content(self, inv)
    }

    fn push_times(&self, inv: &Inventory) -> PushTimes {
        s3::S3Store::push_times(self, inv)
    }

    fn manifest_info(&self, inv: &Inventory, d: &Digest) -> ManifestInfo {
        s3::S3Store::manifest_info(self, inv, d)
    }

    fn objects(&self) -> Option<&dyn Objects> {
        Some(self)
    }

    fn list(&self, rel: &str, by_folder: bool) -> std::io::Result<Vec<Listed>> {
        let rel = if rel.is_empty() || rel.ends_with('/') {
            rel.to_string()
        } else {
            format!("{rel}/")
        };
        s3::S3Store::list(self, &rel, by_folder)
    }

    fn read_small(&self, rel: &str, cap: u64) -> std::io::Result<Vec<u8>> {
        s3::S3Store::read_small(self, rel, cap)
    }

    fn open(&self, rel: &str) -> std::io::Result<Box<dyn Read + Send>> {
        s3::S3Store::open_object(self, rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
        s3::S3Store::write(self, rel, bytes)
    }

    fn quarantine(&self, rel: &str, run: &str) -> std::io::Result<()> {
        s3::S3Store::quarantine(self, rel, run)
    }

    fn delete(&self, rel: &str) -> std::io::Result<()> {
        s3::S3Store::delete(self, rel)
    }
}

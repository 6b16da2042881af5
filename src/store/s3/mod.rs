//! The registry's `s3` storage driver's store, read through the S3 API: configuration and
//! credentials (`config`), a small signed client (`client`), the flat-listing scanner (`scan`),
//! streamed hashing of blobs, and the object operations of the storage seam.

pub mod cache;
pub mod client;
pub mod config;
pub mod scan;
mod xml;

use crate::model::digest::Digest;
use crate::model::inventory::{Inventory, Verify};
use crate::model::layout;
use crate::progress::Progress;
use crate::store::scan::ScanOptions;
use crate::store::verify::VerifyOptions;
use client::Client;
use config::S3Config;
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

/// A store in a bucket.
pub struct S3Store {
    pub config: S3Config,
    pub client: Client,
    /// Blob ETags of the last scan, by digest: hashing asks for exactly the object listed.
    etags:
        Mutex<std::collections::HashMap<Digest, String, crate::model::digest::DigestBuildHasher>>,
    /// What earlier runs read, by key and ETag (`cache`): none unless `with_cache`.
    pub(crate) cache: cache::Cache,
    /// LastModified of the manifest links of the last scan, by v2-relative key (push times).
    link_mtimes: Mutex<std::collections::HashMap<String, i64>>,
}

impl S3Store {
    /// Connect (lazily: no request yet) with the credential chain of the registry's driver.
    pub fn open(config: S3Config) -> Result<S3Store, String> {
        let creds = config.credentials(&|k| std::env::var(k).ok())?;
        if !config.v4auth {
            eprintln!("regfsck: warning: v4auth is false; regfsck signs with AWS Signature Version 4 only");
        }
        let client = Client::new(&config, creds)?;
        Ok(S3Store {
            config,
            client,
            etags: Mutex::default(),
            cache: cache::Cache::default(),
            link_mtimes: Mutex::default(),
        })
    }

    /// Keep what each run reads in `path` (beside the incremental state), so that a repeat run
    /// reads again only what changed.
    pub fn with_cache(mut self, path: Option<std::path::PathBuf>) -> S3Store {
        self.cache = cache::Cache::load(path);
        self
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.config.v2_prefix())
    }

    /// The key below the store's root directory (beside `docker/`), e.g. the quarantine's.
    fn root_key(&self, rel: &str) -> String {
        let p = self.config.prefix();
        if p.is_empty() {
            rel.to_string()
        } else {
            format!("{p}/{rel}")
        }
    }

    pub fn scan(&self, opts: &ScanOptions, progress: &dyn Progress) -> anyhow::Result<Inventory> {
        let started = Instant::now();
        let bar = progress.counter("scan");
        let mut builder = scan::Builder::default();
        builder.keep_link_times = opts.link_times;
        let builder = Mutex::new(builder);
        let cancelled = || opts.cancelled();
        let depth = scan::in_flight(opts.io_depth);
        scan::list_all(self, depth, &builder, &cancelled, bar.as_ref())
            .map_err(|e| anyhow::anyhow!(e))?;
        if opts.cancelled() {
            return Err(crate::store::scan::Interrupted.into());
        }
        let mut b = builder.into_inner().unwrap_or_else(|e| e.into_inner());
        let etags = std::mem::take(&mut b.etags);
        *self.link_mtimes.lock().unwrap_or_else(|e| e.into_inner()) =
            std::mem::take(&mut b.link_mtimes);
        let mut inv = scan::finish(self, depth, b, &cancelled);
        // Some credentials may list objects but not multipart uploads: that costs the
        // multipart findings only, and says so.
        inv.multipart_uploads = self.multipart_uploads(depth).unwrap_or_else(|e| {
            eprintln!("regfsck: warning: {e:#}; incomplete multipart uploads not checked");
            Vec::new()
        });
        inv.normalize();
        let v2 = self.config.v2_prefix();
        crate::store::scan::manifests::read_all_with(&mut inv, &cancelled, &|inv, chunk| {
            crate::store::pool::run(depth, chunk.to_vec(), |d: Digest, _| {
                use crate::store::scan::manifests::{no_blob, too_large, Read};
                let Some(blob) = inv.blob(&d) else {
                    return (d, no_blob());
                };
                if let Some(r) = too_large(inv, &d) {
                    return (d, r);
                }
                let etag = etags.get(&d).map(String::as_str).unwrap_or("");
                let name = d.to_string();
                let kind = cache::Kind::Manifest;
                if let Some(buf) = self.cache.get(kind, &name, etag, blob.size) {
                    return (d, Read::Parsed(crate::model::manifest::parse(&buf)));
                }
                let key = format!("{v2}{}", layout::blob_data(&d));
                let read = match self.client.get(&key, blob.size) {
                    Ok(buf) => {
                        let parsed = crate::model::manifest::parse(&buf);
                        self.cache.keep(kind, &name, etag, blob.size, buf);
                        Read::Parsed(parsed)
                    }
                    Err(e) => Read::Unreadable(e.to_string()),
                };
                (d, read)
            })
        });
        *self.etags.lock().unwrap_or_else(|e| e.into_inner()) = etags;
        // Only a cache: a file that cannot be written costs the next run its requests.
        let _ = self.cache.save();
        bar.finish();
        if opts.cancelled() {
            return Err(crate::store::scan::Interrupted.into());
        }
        inv.stats.blob_bytes = inv.blobs.iter().map(|b| b.size).sum();
        inv.stats.scan_seconds = started.elapsed().as_secs_f64();
        inv.stats.requests = Some(self.client.requests());
        Ok(inv)
    }

    /// Incomplete multipart uploads below `repositories/` (where the registry's uploads are),
    /// with the bytes their parts hold.
    fn multipart_uploads(
        &self,
        depth: usize,
    ) -> anyhow::Result<Vec<crate::model::inventory::MultipartUpload>> {
        let v2 = self.config.v2_prefix();
        let list = self.client.list_multipart(&v2).map_err(|e| {
            anyhow::anyhow!(
                "cannot list the multipart uploads of s3://{}/{v2}: {e}",
                self.config.bucket
            )
        })?;
        let sized = crate::store::pool::run(depth, list, |m, _| {
            let bytes = self.client.multipart_size(&m).ok();
            crate::model::inventory::MultipartUpload {
                path: m.key.strip_prefix(&v2).unwrap_or(&m.key).to_string(),
                upload_id: m.upload_id,
                initiated: m.initiated,
                bytes,
            }
        });
        Ok(sized)
    }

    /// Hash the selected blobs by streaming GETs, many in flight; each GET asks for the object
    /// version the listing saw (If-Match), so a blob replaced since reads as changed.
    pub fn verify(&self, inv: &mut Inventory, opts: &VerifyOptions, progress: &dyn Progress) {
        let etags = self.etags.lock().unwrap_or_else(|e| e.into_inner()).clone();
        crate::store::verify::verify_with(inv, opts, progress, |pass, selected| {
            crate::store::pool::run(scan::in_flight(opts.io_depth), selected, |i: usize, _| {
                pass.one(i, |b| {
                    let key = self.key(&layout::blob_data(&b.digest));
                    let etag = etags.get(&b.digest).map(String::as_str);
                    self.hash_object(&key, etag, b.size, opts)
                })
            })
        });
        inv.stats.requests = Some(self.client.requests());
    }

    fn hash_object(
        &self,
        key: &str,
        etag: Option<&str>,
        size: u64,
        opts: &VerifyOptions,
    ) -> Result<Digest, Verify> {
        let mut r = match self.client.get_stream(key, etag) {
            Ok(r) => r,
            Err(e) if e.not_found() => {
                return Err(Verify::Changed(Box::new("vanished after the scan".into())))
            }
            Err(e) if e.status == 412 => {
                return Err(Verify::Changed(Box::new(
                    "replaced after the scan (its ETag changed)".into(),
                )))
            }
            Err(e) => return Err(Verify::Unreadable(Box::new(e.to_string()))),
        };
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n_total = 0u64;
        loop {
            if opts
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
            {
                return Err(Verify::NotChecked);
            }
            let n = r
                .read(&mut buf)
                .map_err(|e| Verify::Unreadable(Box::new(e.to_string())))?;
            if n == 0 {
                break;
            }
            n_total += n as u64;
            h.update(&buf[..n]);
        }
        if n_total != size {
            return Err(Verify::Changed(Box::new(format!(
                "size changed since the scan ({size} -> {n_total} bytes)"
            ))));
        }
        Ok(Digest::sha256(h.finalize().into()))
    }

    /// Each data object at a malformed path below blobs/: its sha256, and its content decoded as
    /// a manifest when it is small enough to be one (for the repair planner).
    pub fn misplaced_content(
        &self,
        inv: &Inventory,
    ) -> std::collections::HashMap<String, crate::model::inventory::Misplaced> {
        crate::store::verify::misplaced_with(
            inv,
            |rel, size| {
                self.read_small(rel, size)
                    .ok()
                    .filter(|b| b.len() as u64 == size)
            },
            |rel, size| {
                self.hash_object(&self.key(rel), None, size, &VerifyOptions::default())
                    .ok()
            },
        )
    }

    /// Push times from the last scan's listing: the LastModified of each link key (the
    /// registry's s3 driver writes a link with one PUT, so it is the time of that write).
    pub fn push_times(&self, inv: &Inventory) -> crate::model::pushed::PushTimes {
        let times = self.link_mtimes.lock().unwrap_or_else(|e| e.into_inner());
        crate::store::details::push_times_with(inv, |rel| times.get(rel).copied())
    }

    /// `ls`'s display-only facts of manifest `d`: the manifest from the scan's cache when it
    /// is there with the listed ETag, else a GET, and its config by a GET.
    pub fn manifest_info(&self, inv: &Inventory, d: &Digest) -> crate::model::pushed::ManifestInfo {
        crate::store::details::manifest_info_with(d, |b, cap| {
            let size = inv.blob(b).map(|x| x.size)?;
            if size > cap {
                return None;
            }
            let etag = self
                .etags
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(b)
                .cloned();
            if let Some(etag) = etag {
                let kind = cache::Kind::Manifest;
                if let Some(buf) = self.cache.get(kind, &b.to_string(), &etag, size) {
                    return Some(buf);
                }
            }
            self.read_small(&layout::blob_data(b), cap).ok()
        })
    }

    // The object operations of the storage seam (see `store::Storage`).

    pub fn list(&self, rel: &str, by_folder: bool) -> std::io::Result<Vec<crate::store::Listed>> {
        let prefix = self.key(rel);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_page(&prefix, None, token.as_deref(), by_folder, 1000)
                .map_err(io)?;
            for o in page.objects {
                out.push(crate::store::Listed {
                    rel: o.key[self.config.v2_prefix().len()..].to_string(),
                    folder: false,
                    size: o.size,
                    mtime: o.mtime,
                    etag: Some(o.etag),
                });
            }
            for p in page.prefixes {
                out.push(crate::store::Listed {
                    rel: p[self.config.v2_prefix().len()..]
                        .trim_end_matches('/')
                        .to_string(),
                    folder: true,
                    size: 0,
                    mtime: 0,
                    etag: None,
                });
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(out)
    }

    pub fn read_small(&self, rel: &str, cap: u64) -> std::io::Result<Vec<u8>> {
        let b = self.client.get(&self.key(rel), cap).map_err(io)?;
        if b.len() as u64 > cap {
            return Err(std::io::Error::other(format!(
                "{rel}: larger than {cap} bytes"
            )));
        }
        Ok(b)
    }

    pub fn open_object(&self, rel: &str) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(
            self.client.get_stream(&self.key(rel), None).map_err(io)?,
        ))
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.client.put(&self.key(rel), bytes).map_err(io)
    }

    /// Server-side copy to `regfsck-quarantine/<run>/<rel>` beside `docker/`, then delete.
    pub fn quarantine(&self, rel: &str, run: &str) -> std::io::Result<()> {
        let to = format!("{}/{run}/{rel}", layout::QUARANTINE_DIR);
        let from = format!("{}/{rel}", layout::V2_FROM_ROOT);
        crate::store::Objects::copy(self, &from, &to)?;
        self.client.delete(&self.key(rel)).map_err(io)
    }

    pub fn delete(&self, rel: &str) -> std::io::Result<()> {
        self.client.delete(&self.key(rel)).map_err(io)
    }

    /// Abort an incomplete multipart upload (`path` relative to v2).
    pub fn abort_multipart(&self, path: &str, upload_id: &str) -> std::io::Result<()> {
        self.client
            .abort_multipart(&client::Multipart {
                key: self.key(path),
                upload_id: upload_id.to_string(),
                initiated: 0,
            })
            .map_err(io)
    }
}

fn io(e: client::S3Error) -> std::io::Error {
    if e.not_found() {
        std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string())
    } else {
        std::io::Error::other(e.to_string())
    }
}

impl S3Store {
    /// Every page of a listing below root-relative `prefix`.
    fn list_root(&self, prefix: &str, by_folder: bool) -> std::io::Result<client::Page> {
        let full = self.root_key(prefix);
        let mut all = client::Page::default();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_page(&full, None, token.as_deref(), by_folder, 1000)
                .map_err(io)?;
            all.objects.extend(page.objects);
            all.prefixes.extend(page.prefixes);
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    fn strip_root<'a>(&self, key: &'a str) -> &'a str {
        let p = self.config.prefix();
        if p.is_empty() {
            key
        } else {
            key.strip_prefix(&format!("{p}/")).unwrap_or(key)
        }
    }

    fn listed(&self, o: client::Object) -> crate::store::Listed {
        crate::store::Listed {
            rel: self.strip_root(&o.key).to_string(),
            folder: false,
            size: o.size,
            mtime: o.mtime,
            etag: Some(o.etag),
        }
    }
}

impl crate::store::Objects for S3Store {
    fn stat(&self, key: &str) -> std::io::Result<Option<crate::store::Listed>> {
        // A one-key listing, as the registry's driver tests existence: the key itself sorts
        // first among the keys it prefixes.
        let full = self.root_key(key);
        let page = self
            .client
            .list_page(&full, None, None, false, 1)
            .map_err(io)?;
        Ok(page
            .objects
            .into_iter()
            .find(|o| o.key == full)
            .map(|o| self.listed(o)))
    }

    fn list_keys(&self, prefix: &str) -> std::io::Result<Vec<crate::store::Listed>> {
        let page = self.list_root(prefix, false)?;
        Ok(page.objects.into_iter().map(|o| self.listed(o)).collect())
    }

    fn list_folders(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let page = self.list_root(prefix, true)?;
        let full = self.root_key(prefix);
        Ok(page
            .prefixes
            .iter()
            .filter_map(|p| p.strip_prefix(&full))
            .map(|p| p.trim_end_matches('/').to_string())
            .collect())
    }

    fn get(&self, key: &str, cap: u64) -> std::io::Result<Vec<u8>> {
        let b = self.client.get(&self.root_key(key), cap).map_err(io)?;
        if b.len() as u64 > cap {
            return Err(std::io::Error::other(format!(
                "{key}: larger than {cap} bytes"
            )));
        }
        Ok(b)
    }

    fn open(&self, key: &str) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(
            self.client
                .get_stream(&self.root_key(key), None)
                .map_err(io)?,
        ))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.client.put(&self.root_key(key), bytes).map_err(io)
    }

    fn copy(&self, from: &str, to: &str) -> std::io::Result<()> {
        let l = crate::store::Objects::stat(self, from)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not there", crate::store::Objects::url(self, from)),
            )
        })?;
        self.copy_listed(&l, to)
    }

    fn copy_listed(&self, from: &crate::store::Listed, to: &str) -> std::io::Result<()> {
        self.client
            .copy(
                &self.root_key(&from.rel),
                &self.root_key(to),
                from.size,
                from.etag.as_deref().unwrap_or_default(),
            )
            .map_err(io)
    }

    fn remove(&self, key: &str) -> std::io::Result<()> {
        self.client.delete(&self.root_key(key)).map_err(io)
    }

    fn multipart(&self, key: &str) -> std::io::Result<Vec<(String, i64)>> {
        let full = self.root_key(key);
        Ok(self
            .client
            .list_multipart(&full)
            .map_err(io)?
            .into_iter()
            .filter(|m| m.key == full)
            .map(|m| (m.upload_id, m.initiated))
            .collect())
    }

    fn abort_multipart(&self, key: &str, upload_id: &str) -> std::io::Result<()> {
        self.client
            .abort_multipart(&client::Multipart {
                key: self.root_key(key),
                upload_id: upload_id.to_string(),
                initiated: 0,
            })
            .map_err(io)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.config.bucket, self.root_key(key))
    }
}

//! What a previous run read from the bucket, kept outside the store so that a repeat run does
//! not read it again: link files the listing could not vouch for (tag `current` links, links
//! whose ETag is not the MD5 of what their path names) and manifests, each keyed by its key and
//! the ETag and size the listing showed. An object rewritten since has another ETag and is read
//! again; manifests are content-addressed, so a digest with its ETag and size names one content.
//!
//! Format: a header line `regfsck-s3cache 1\n`, then records (`kind` byte, then key, ETag and
//! content, each a little-endian u32 length and its bytes, and the size as u64), then the
//! sha256 of everything before it. A damaged file is ignored (it is only a cache).

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: &[u8] = b"regfsck-s3cache 1\n";

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    Link = 1,
    Manifest = 2,
}

type Entries = HashMap<(Kind, String), (String, u64, Vec<u8>)>;

#[derive(Default)]
pub struct Cache {
    path: Option<PathBuf>,
    old: Entries,
    /// What this run used (read or reused): the next file holds exactly this.
    new: Mutex<Entries>,
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (x, rest) = b.split_at(n);
    *b = rest;
    Some(x)
}

fn take_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize;
    take(b, n)
}

fn decode(bytes: &[u8]) -> Option<Entries> {
    if bytes.len() < 32 + MAGIC.len() {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut b = body.strip_prefix(MAGIC)?;
    let mut out = Entries::new();
    while !b.is_empty() {
        let kind = match take(&mut b, 1)?[0] {
            1 => Kind::Link,
            2 => Kind::Manifest,
            _ => return None,
        };
        let key = String::from_utf8(take_bytes(&mut b)?.to_vec()).ok()?;
        let etag = String::from_utf8(take_bytes(&mut b)?.to_vec()).ok()?;
        let content = take_bytes(&mut b)?.to_vec();
        let size = u64::from_le_bytes(take(&mut b, 8)?.try_into().ok()?);
        out.insert((kind, key), (etag, size, content));
    }
    Some(out)
}

impl Cache {
    /// The cache at `path` (none when `None`; empty when missing or damaged).
    pub fn load(path: Option<PathBuf>) -> Cache {
        let old = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| decode(&b))
            .unwrap_or_default();
        Cache {
            path,
            old,
            new: Mutex::default(),
        }
    }

    /// The content last read for `key` when its ETag and size are still these.
    pub fn get(&self, kind: Kind, key: &str, etag: &str, size: u64) -> Option<Vec<u8>> {
        if self.path.is_none() || etag.is_empty() {
            return None;
        }
        let (e, s, c) = self.old.get(&(kind, key.to_string()))?;
        if e != etag || *s != size {
            return None;
        }
        self.keep(kind, key, etag, size, c.clone());
        Some(c.clone())
    }

    /// Remember what was read for `key` at this ETag and size.
    pub fn keep(&self, kind: Kind, key: &str, etag: &str, size: u64, content: Vec<u8>) {
        if self.path.is_none() || etag.is_empty() {
            return;
        }
        self.new
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((kind, key.to_string()), (etag.to_string(), size, content));
    }

    /// Write what this run used (atomically: temp file, rename). A cache that cannot be written
    /// costs the next run its requests, nothing else: the error is returned for a warning.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let new = self.new.lock().unwrap_or_else(|e| e.into_inner());
        let mut body = MAGIC.to_vec();
        let mut keys: Vec<_> = new.keys().collect();
        keys.sort_by(|a, b| (a.0 as u8, &a.1).cmp(&(b.0 as u8, &b.1)));
        for k in keys {
            let (etag, size, content) = &new[k];
            body.push(k.0 as u8);
            put_bytes(&mut body, k.1.as_bytes());
            put_bytes(&mut body, etag.as_bytes());
            put_bytes(&mut body, content);
            body.extend_from_slice(&size.to_le_bytes());
        }
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension("s3cache.tmp");
        std::fs::write(&tmp, &body)?;
        std::fs::rename(&tmp, path)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_changed_etag_misses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.s3cache");
        let c = Cache::load(Some(p.clone()));
        c.keep(Kind::Link, "a/link", "e1", 71, b"sha256:x".to_vec());
        c.keep(Kind::Manifest, "sha256:m", "e2", 3, b"{}\n".to_vec());
        c.save().unwrap();
        let c = Cache::load(Some(p.clone()));
        assert_eq!(c.get(Kind::Link, "a/link", "e1", 71).unwrap(), b"sha256:x");
        assert!(c.get(Kind::Link, "a/link", "e9", 71).is_none());
        assert!(c.get(Kind::Link, "a/link", "e1", 72).is_none());
        assert!(c.get(Kind::Manifest, "a/link", "e1", 71).is_none());
        // Only what this run used is kept.
        c.save().unwrap();
        let c = Cache::load(Some(p.clone()));
        assert!(c.get(Kind::Manifest, "sha256:m", "e2", 3).is_none());
        assert!(c.get(Kind::Link, "a/link", "e1", 71).is_some());
        // Damage is detected, not trusted.
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len() / 2;
        b[n] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(Cache::load(Some(p))
            .get(Kind::Link, "a/link", "e1", 71)
            .is_none());
    }
}

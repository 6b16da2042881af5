//! Incremental verification state: which blobs were hashed sound, when, and what they looked like
//! (size, mtime, inode), so `check --reverify-after` hashes only what is new, changed or due.
//! Lives outside the store (XDG state directory); a damaged or foreign file is ignored with a
//! warning and never trusted.
//!
//! Format: a header line `regfsck-state 1 <store path>\n`, then fixed 64-byte records (digest,
//! size, mtime, inode, verified-at; little endian), then the sha256 of everything before it.
//! Fixed records load millions of entries in a fraction of a second, which JSON lines would not.

use crate::model::digest::Digest;
use crate::model::inventory::{Blob, Hashed, Inventory};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &str = "regfsck-state 1";
const RECORD: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    size: u64,
    mtime: i64,
    inode: u64,
    verified_at: i64,
}

#[derive(Clone, Debug, Default)]
pub struct State {
    store: String,
    entries: HashMap<[u8; 32], Entry>,
}

fn key(d: &Digest) -> Option<[u8; 32]> {
    d.sha256_bytes().copied()
}

/// `$XDG_STATE_HOME/regfsck/<store>.<hash>.state` (else `~/.local/state/regfsck/…`): `<store>`
/// is the store's canonical path with `/` as `-` (`var-lib-registry`), so that a listing says
/// which file belongs to which store; the short hash of the exact path keeps look-alike names
/// (`/a-b/c`, `/a/b-c`) apart.
pub fn default_path(store_root: &Path) -> PathBuf {
    let canon = std::fs::canonicalize(store_root).unwrap_or_else(|_| store_root.to_path_buf());
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("regfsck").join(file_name(&canon))
}

/// The state file's name for a canonical store path.
fn file_name(canon: &Path) -> String {
    let id = Digest::of_bytes(canon.as_os_str().as_encoded_bytes()).hex();
    let text = canon.to_string_lossy();
    let mut readable: String = text
        .trim_matches('/')
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' => c,
            _ => '_',
        })
        .collect();
    if readable.is_empty() {
        readable = "root".into();
    }
    // File names stop at 255 bytes: keep the end of a very long path, the part that names it.
    if readable.len() > 120 {
        readable = readable[readable.len() - 120..].to_string();
    }
    format!("{readable}.{}.state", &id[..8])
}

fn store_id(store_root: &Path) -> String {
    std::fs::canonicalize(store_root)
        .unwrap_or_else(|_| store_root.to_path_buf())
        .display()
        .to_string()
}

impl State {
    pub fn new(store_root: &Path) -> State {
        State {
            store: store_id(store_root),
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Load the state of this store; anything unexpected yields an empty state and a warning.
    pub fn load(path: &Path, store_root: &Path) -> (State, Option<String>) {
        let fresh = State::new(store_root);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (fresh, None),
            Err(e) => {
                return (
                    fresh,
                    Some(format!(
                        "cannot read state file {}: {e}; ignoring it",
                        path.display()
                    )),
                )
            }
        };
        match Self::decode(&bytes) {
            Some(s) if s.store == fresh.store => (s, None),
            Some(s) => (
                fresh,
                Some(format!(
                    "state file {} belongs to another store ({}); ignoring it",
                    path.display(),
                    s.store
                )),
            ),
            None => (
                fresh,
                Some(format!(
                    "state file {} is damaged or not a regfsck state; ignoring it",
                    path.display()
                )),
            ),
        }
    }

    fn decode(bytes: &[u8]) -> Option<State> {
        if bytes.len() < 32 {
            return None;
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return None;
        }
        let nl = body.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&body[..nl]).ok()?;
        let store = header.strip_prefix(MAGIC)?.strip_prefix(' ')?.to_string();
        let recs = &body[nl + 1..];
        if recs.len() % RECORD != 0 {
            return None;
        }
        let mut entries = HashMap::with_capacity(recs.len() / RECORD);
        for r in recs.chunks_exact(RECORD) {
            let u = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap_or_default());
            let mut k = [0u8; 32];
            k.copy_from_slice(&r[..32]);
            entries.insert(
                k,
                Entry {
                    size: u(32),
                    mtime: u(40) as i64,
                    inode: u(48),
                    verified_at: u(56) as i64,
                },
            );
        }
        Some(State { store, entries })
    }

    /// Write atomically: temp file, fsync, rename.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut body = format!("{MAGIC} {}\n", self.store).into_bytes();
        body.reserve(self.entries.len() * RECORD + 32);
        for (k, e) in &self.entries {
            body.extend_from_slice(k);
            for v in [e.size, e.mtime as u64, e.inode, e.verified_at as u64] {
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("state.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// Never verified, changed since (size, mtime or inode), or verified before `now - window`.
    pub fn needs_hash(&self, blob: &Blob, now: i64, window: i64) -> bool {
        let Some(k) = key(&blob.digest) else {
            return true;
        };
        match self.entries.get(&k) {
            None => true,
            Some(e) => {
                e.size != blob.size
                    || e.mtime != blob.mtime
                    || e.inode != blob.inode
                    || e.verified_at < now - window
            }
        }
    }

    /// Remember every blob hashed sound in this run; forget those found otherwise.
    pub fn record(&mut self, inv: &Inventory, now: i64) {
        for b in &inv.blobs {
            let Some(k) = key(&b.digest) else { continue };
            match b.hashed {
                Hashed::Ok => {
                    self.entries.insert(
                        k,
                        Entry {
                            size: b.size,
                            mtime: b.mtime,
                            inode: b.inode,
                            verified_at: now,
                        },
                    );
                }
                Hashed::No => {}
                _ => {
                    self.entries.remove(&k);
                }
            }
        }
        // Blobs that no longer exist are dropped so the file does not grow forever.
        let live: std::collections::HashSet<[u8; 32]> =
            inv.blobs.iter().filter_map(|b| key(&b.digest)).collect();
        self.entries.retain(|k, _| live.contains(k));
    }

    /// Blobs and bytes of the inventory verified sound within the window (as recorded).
    pub fn coverage(&self, inv: &Inventory, now: i64, window: i64) -> (u64, u64) {
        let mut out = (0, 0);
        for b in &inv.blobs {
            if !self.needs_hash(b, now, window) {
                out.0 += 1;
                out.1 += b.size;
            }
        }
        out
    }
}

/// Which blobs one run hashes: a deterministic shard (`n/t`) or a random share (`x%`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SubsetSpec {
    Shard { n: u64, t: u64 },
    Percent(f64),
}

impl SubsetSpec {
    pub fn parse(s: &str) -> Result<SubsetSpec, String> {
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("bad percentage {s:?}"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("percentage out of range: {s:?}"));
            }
            return Ok(SubsetSpec::Percent(v));
        }
        let (n, t) = s
            .split_once('/')
            .ok_or_else(|| format!("--verify-subset expects n/t or x%, got {s:?}"))?;
        let (n, t): (u64, u64) = (
            n.trim().parse().map_err(|_| format!("bad shard {s:?}"))?,
            t.trim().parse().map_err(|_| format!("bad shard {s:?}"))?,
        );
        if t == 0 || n == 0 || n > t {
            return Err(format!("shard must be 1/t … t/t, got {s:?}"));
        }
        Ok(SubsetSpec::Shard { n, t })
    }

    /// `seed` varies the random share between runs; shards ignore it.
    pub fn selects(&self, d: &Digest, seed: u64) -> bool {
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.bytes()[..8]);
        let x = u64::from_be_bytes(b);
        match *self {
            SubsetSpec::Shard { n, t } => x % t == n - 1,
            SubsetSpec::Percent(p) => {
                let mut z = x ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                (((z ^ (z >> 29)) % 10_000) as f64) < p * 100.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::Blob;

    fn blob(i: u32) -> Blob {
        Blob {
            digest: Digest::of_bytes(&i.to_le_bytes()),
            size: i as u64,
            mtime: 1000,
            inode: i as u64,
            hashed: Hashed::Ok,
        }
    }

    fn inv(n: u32) -> Inventory {
        let mut inv = Inventory {
            blobs: (0..n).map(blob).collect(),
            ..Inventory::default()
        };
        inv.normalize();
        inv
    }

    #[test]
    fn state_file_names_say_which_store() {
        assert!(file_name(Path::new("/var/lib/registry")).starts_with("var-lib-registry."));
        assert!(file_name(Path::new("/")).starts_with("root."));
        assert_ne!(
            file_name(Path::new("/a-b/c")),
            file_name(Path::new("/a/b-c"))
        );
        let long = format!("/{}", "x/".repeat(200));
        assert!(file_name(Path::new(&long)).len() < 200);
        assert!(file_name(Path::new("/srv/my reg")).starts_with("srv-my_reg."));
    }

    #[test]
    fn round_trip_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let path = dir.path().join("s.state");
        let mut inv = inv(50);
        let mut s = State::new(&store);
        s.record(&inv, 10_000);
        s.save(&path).unwrap();
        let (loaded, warn) = State::load(&path, &store);
        assert!(warn.is_none());
        assert_eq!(loaded.len(), 50);
        assert!(!loaded.needs_hash(&inv.blobs[0], 10_100, 3600));
        assert!(
            loaded.needs_hash(&inv.blobs[0], 20_000, 3600),
            "window expired"
        );
        inv.blobs[1].mtime += 1;
        assert!(
            loaded.needs_hash(&inv.blobs[1], 10_100, 3600),
            "changed blob"
        );
        assert_eq!(loaded.coverage(&inv, 10_100, 3600).0, 49);
    }

    #[test]
    fn damaged_or_foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let path = dir.path().join("s.state");
        let mut s = State::new(&a);
        s.record(&inv(5), 1);
        s.save(&path).unwrap();
        let (other, warn) = State::load(&path, &b);
        assert!(other.is_empty() && warn.unwrap().contains("another store"));
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (dmg, warn) = State::load(&path, &a);
        assert!(dmg.is_empty() && warn.unwrap().contains("damaged"));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(State::load(&path, &a).1.is_some());
    }

    #[test]
    fn shards_partition_and_percent_is_a_share() {
        let inv = inv(1000);
        let t = 5;
        let mut hits = vec![0; inv.blobs.len()];
        for n in 1..=t {
            let spec = SubsetSpec::parse(&format!("{n}/{t}")).unwrap();
            for (i, b) in inv.blobs.iter().enumerate() {
                if spec.selects(&b.digest, 0) {
                    hits[i] += 1;
                }
            }
        }
        assert!(
            hits.iter().all(|&h| h == 1),
            "every blob in exactly one shard"
        );
        let p = SubsetSpec::parse("10%").unwrap();
        let share = inv
            .blobs
            .iter()
            .filter(|b| p.selects(&b.digest, 42))
            .count();
        assert!((50..150).contains(&share), "{share}");
        for bad in ["0/3", "4/3", "x", "150%", "1/0"] {
            assert!(SubsetSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

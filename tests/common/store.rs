//! Fixture stores copied into temporary folders (with their empty folders restored and every
//! mtime pinned), store fingerprints, and running the regfsck binary.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The mtime every fixture file gets (2023-11-14), older than any upload's startedat.
pub const FIXTURE_MTIME: i64 = 1_700_000_000;

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_file() {
            std::fs::copy(e.path(), &dest).unwrap();
            // A checkout's mtimes are "now"; pin them so that age-based findings are reproducible.
            let f = std::fs::File::options().write(true).open(&dest).unwrap();
            f.set_modified(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(FIXTURE_MTIME as u64),
            )
            .unwrap();
        }
    }
}

/// A private copy of `testdata/stores/<name>` with the registry's empty folders restored.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = testdata().join("stores").join(name);
    copy_tree(&src, tmp.path());
    let dirs = std::fs::read_to_string(testdata().join("stores").join(format!("{name}.emptydirs")))
        .unwrap();
    for d in dirs.lines().filter(|l| !l.is_empty()) {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    pin_folders(tmp.path());
    tmp
}

/// Give every folder below `root` the fixture mtime, deepest first (pinning a folder's entries
/// would not touch it, but creating them did): a folder's mtime says when an entry was last
/// added or removed, which repair's grace window reads like any other.
fn pin_folders(root: &Path) {
    let mut dirs = vec![root.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for e in std::fs::read_dir(&dirs[i]).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            }
        }
        i += 1;
    }
    let pinned = std::time::UNIX_EPOCH + std::time::Duration::from_secs(FIXTURE_MTIME as u64);
    for d in dirs.iter().rev() {
        std::fs::File::open(d)
            .unwrap()
            .set_modified(pinned)
            .unwrap();
    }
}

pub fn v2(root: &Path) -> PathBuf {
    root.join("docker/registry/v2")
}

pub fn expected(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(
        testdata()
            .join("stores")
            .join(format!("{name}.expected.json")),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every path below `root` (except the named top-level entries) -> "kind mode size sha256",
/// symlinks read, never followed.
pub fn fingerprint(root: &Path, exclude_top: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if exclude_top
                .iter()
                .any(|x| rel == *x || rel.starts_with(&format!("{x}/")))
            {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let desc = if ft.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.mode())
            } else if ft.is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!(
                    "file {:o} {} {:x}",
                    m.mode(),
                    m.len(),
                    Sha256::digest(&data)
                )
            } else {
                format!("other {:o}", m.mode())
            };
            out.insert(rel, desc);
        }
    }
    out
}

/// "Now" for reproducible reports: a day after the newest upload started (so the fixture's upload
/// is neither recent nor stale), or the fixture mtime for stores without uploads.
pub fn fixture_now(root: &Path) -> i64 {
    let mut newest = FIXTURE_MTIME;
    let mut stack = vec![v2(root).join("repositories")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            } else if e.file_name() == "startedat" {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                if let Some(t) = regfsck::model::timefmt::parse_rfc3339(&text) {
                    newest = newest.max(t);
                }
            }
        }
    }
    newest + 86_400
}

pub fn regfsck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_regfsck"))
}

/// Run `regfsck <args>` and parse its JSON stdout; returns (exit code, document).
pub fn run_json(args: &[&str]) -> (i32, serde_json::Value) {
    let out = regfsck()
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "regfsck {args:?} printed no JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, doc)
}

/// The digest a tag of a fixture store names, from its `.expected.json`.
pub fn tag_digest(store: &str, repo: &str, tag: &str) -> regfsck::model::digest::Digest {
    let exp = expected(store);
    regfsck::model::digest::Digest::parse(exp["repositories"][repo]["tags"][tag].as_str().unwrap())
        .unwrap()
}

/// A manifest blob of the store, parsed as JSON.
pub fn manifest_json(root: &Path, d: &regfsck::model::digest::Digest) -> serde_json::Value {
    let p = v2(root).join(regfsck::model::layout::blob_data(d));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Write a file below v2 with the fixtures' pinned mtime (damage reads as old, not as activity).
pub fn write_v2(root: &Path, rel: &str, data: &[u8]) {
    let p = v2(root).join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    let pinned = std::time::UNIX_EPOCH + std::time::Duration::from_secs(FIXTURE_MTIME as u64);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(pinned)
        .unwrap();
}

/// Remove a file or folder below v2 (never following a symlink).
pub fn rm_v2(root: &Path, rel: &str) {
    let p = v2(root).join(rel);
    if std::fs::symlink_metadata(&p).unwrap().is_dir() {
        std::fs::remove_dir_all(p).unwrap()
    } else {
        std::fs::remove_file(p).unwrap()
    }
}

/// Flip one bit in the middle of a blob's data (mtime pinned): a corrupt blob.
pub fn corrupt_blob(root: &Path, d: &regfsck::model::digest::Digest) {
    let p = regfsck::model::layout::blob_data(d);
    let mut b = std::fs::read(v2(root).join(&p)).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    write_v2(root, &p, &b);
}

/// Move a blob's folder to `blobs/sha256/zz/<hex>`: data at a path the registry does not read.
pub fn misplace_blob(root: &Path, d: &regfsck::model::digest::Digest) {
    std::fs::create_dir_all(v2(root).join("blobs/sha256/zz")).unwrap();
    std::fs::rename(
        v2(root).join(regfsck::model::layout::blob_dir(d)),
        v2(root).join(format!("blobs/sha256/zz/{}", d.hex())),
    )
    .unwrap();
}

/// Whether the tests run as root (who reads everything: permission tests then need another user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A command run as an unprivileged user: as root (here and in CI), `nobody` through `setpriv`;
/// otherwise the current user, for whom a mode-000 file owned by them is unreadable too.
pub fn unprivileged(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            program,
        ]);
        c
    } else {
        Command::new(program)
    }
}

/// Make a test folder (tempdirs are 0700) and everything in it readable by every user, so that
/// an unprivileged user meets exactly the one thing a test then makes unreadable.
pub fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
}

/// (code, path) of every finding of a `check --format json` document.
pub fn code_paths(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The paths of the findings with `code`.
pub fn codes_at(doc: &serde_json::Value, code: &str) -> Vec<String> {
    code_paths(doc)
        .into_iter()
        .filter(|(c, _)| c == code)
        .map(|(_, p)| p)
        .collect()
}

/// The registry's catalog of the `sample` store after `rm library/alpine:3.19
/// beta/app@<its v1> team/proj scratch/doomed` (team/proj/app stays; scratch/ holds nothing).
pub fn sample_catalog_after_rm() -> std::collections::BTreeSet<String> {
    [
        "library/alpine",
        "multi/docker",
        "multi/oci",
        "mounted",
        "team/proj/app",
        "beta/app",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}

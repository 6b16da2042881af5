//! Issue #12.1: no verdict from what could not be read. Run as an unprivileged user (as root,
//! `nobody` through setpriv: root reads everything) on a fixture copy readable by everyone except
//! the one thing each test breaks. The real garbage collector, run as that same user, is the
//! oracle: where it cannot read something either, it aborts, so "safe" is never the answer.

mod common;

use common::registry::{gc_dry_run_as, registry_available};
use common::store::{
    code_paths as codes, fixture, fixture_now, open_to_all, tag_digest, unprivileged, v2,
};
use regfsck::model::layout;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `regfsck <args> --format json` as the unprivileged user: (exit status, document).
fn run(args: &[&str]) -> (i32, Value) {
    let out = unprivileged(env!("CARGO_BIN_EXE_regfsck"))
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

/// A fixture copy with one path unreadable; readable again when dropped (so that a non-root
/// run can delete it).
struct Store {
    tmp: tempfile::TempDir,
    unread: std::path::PathBuf,
}

impl Store {
    fn path(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.unread, fs::Permissions::from_mode(0o755));
    }
}

fn unreadable(tmp: tempfile::TempDir, rel: &str) -> Store {
    let unread = v2(tmp.path()).join(rel);
    fs::set_permissions(&unread, fs::Permissions::from_mode(0o000)).unwrap();
    Store { tmp, unread }
}

/// A readable fixture copy with `rel` (below v2) made unreadable to everyone but root.
fn store_with_unreadable(rel: &str) -> Store {
    let tmp = fixture("sample");
    open_to_all(tmp.path());
    unreadable(tmp, rel)
}

fn check(root: &Path) -> (i32, Value) {
    let now = fixture_now(root).to_string();
    run(&["check", root.to_str().unwrap(), "--now", &now])
}

/// The common verdict of every case: `path-unreadable` at the path, no blob called
/// unreferenced, a `gc-cannot-predict` per run that reads it naming it, and `regfsck gc` exiting
/// non-zero with the path; the real GC run by the same user aborts on it.
fn assert_no_verdict(root: &Path, unread: &str, runs: usize) -> Value {
    let (exit, doc) = check(root);
    let all = codes(&doc);
    assert_eq!(exit & 4, 4, "{doc:#}");
    assert!(
        all.contains(&("path-unreadable".into(), unread.into())),
        "{all:#?}"
    );
    assert!(
        !all.iter().any(|c| c.0 == "blob-unreferenced"),
        "a blob called unreferenced while {unread} is unread: {all:#?}"
    );
    let cannot: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "gc-cannot-predict")
        .collect();
    assert_eq!(cannot.len(), runs, "{cannot:#?}");
    assert!(cannot
        .iter()
        .all(|f| f["path"] == unread && f["message"].as_str().unwrap().contains(unread)));

    let (gc_exit, gc) = run(&["gc", root.to_str().unwrap()]);
    assert_eq!(gc_exit, 4, "{gc:#}");
    let unpredicted = gc["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["cannot_predict"]["paths"][0] == unread)
        .count();
    assert_eq!(unpredicted, runs, "{gc:#}");
    doc
}

#[test]
fn an_unreadable_manifest_blob_is_not_an_invalid_manifest() {
    let d = tag_digest("sample", "team/proj", "v1");
    let unread = layout::blob_data(&d);
    let tmp = store_with_unreadable(&unread);
    let doc = assert_no_verdict(tmp.path(), &unread, 4);
    let all = codes(&doc);
    // Not invalid (a repair would quarantine the healthy tag for it), not dangling.
    assert!(!all.iter().any(|c| c.0 == "manifest-invalid"), "{all:#?}");
    assert!(!all.iter().any(|c| c.0 == "tag-dangling"), "{all:#?}");
    if registry_available() {
        for m in [false, true] {
            let real = gc_dry_run_as(tmp.path(), m, true);
            let why = real.aborted.unwrap_or_default();
            assert!(why.contains("permission denied"), "-m={m}: {why}");
        }
    }
}

#[test]
fn an_unreadable_repository_is_not_a_missing_one() {
    let unread = "repositories/team/proj";
    let tmp = store_with_unreadable(unread);
    let doc = assert_no_verdict(tmp.path(), unread, 4);
    // Its blobs (and its nested repository's) are not garbage: no verdict at all on them.
    let d = tag_digest("sample", "team/proj", "v1");
    assert!(!codes(&doc).iter().any(|c| c.1 == layout::blob_data(&d)));
    if registry_available() {
        for m in [false, true] {
            let real = gc_dry_run_as(tmp.path(), m, true);
            assert_eq!(
                real.aborted.as_deref(),
                Some(
                    format!(
                        "failed to mark: filesystem: open {}/{unread}: permission denied",
                        v2(tmp.path()).display()
                    )
                    .as_str()
                ),
                "-m={m}"
            );
        }
    }
}

#[test]
fn unreadable_tags_blind_only_what_reads_tags() {
    let unread = layout::tags_dir("team/proj");
    let tmp = store_with_unreadable(&unread);
    // Only --delete-untagged reads tags: 2 of the 4 runs.
    let doc = assert_no_verdict(tmp.path(), &unread, 2);
    assert!(
        !codes(&doc)
            .iter()
            .any(|c| c.0 == "revision-untagged" && c.1.starts_with(&layout::repo_dir("team/proj"))),
        "{doc:#}"
    );
    if registry_available() {
        // The plain run does not read tags: regfsck's prediction is the real GC's.
        let inv = {
            let store = regfsck::store::scan::locate(tmp.path()).unwrap();
            regfsck::store::scan::scan(&store, &regfsck::progress::Silent).unwrap()
        };
        let p = regfsck::analysis::gc::predict(&inv, regfsck::analysis::gc::Version::V2_8, false);
        let real = gc_dry_run_as(tmp.path(), false, true);
        assert!(real.aborted.is_none() && p.abort.is_none() && p.cannot_predict.is_none());
        assert_eq!(p.dry_run_view().0, real.eligible_blobs);
        let real_m = gc_dry_run_as(tmp.path(), true, true);
        assert!(real_m
            .aborted
            .unwrap_or_default()
            .contains("permission denied"));
    }
}

/// Layer data the GC only stats: unreadable, it is `path-unreadable` (hashing could not read it),
/// but every prediction stands, and agrees with the real GC run by the same user.
#[test]
fn unreadable_layer_data_changes_no_prediction() {
    let d = tag_digest("sample", "team/proj", "v1");
    let m = common::store::manifest_json(&common::store::testdata().join("stores/sample"), &d);
    let layer =
        regfsck::model::digest::Digest::parse(m["layers"][1]["digest"].as_str().unwrap()).unwrap();
    let unread = layout::blob_data(&layer);
    let tmp = store_with_unreadable(&unread);
    let (_, doc) = check(tmp.path());
    let all = codes(&doc);
    assert!(
        all.contains(&("path-unreadable".into(), unread.clone())),
        "{all:#?}"
    );
    assert!(!all.iter().any(|c| c.0 == "gc-cannot-predict"), "{all:#?}");
    if registry_available() {
        // Without --registry-version: every version and mode is predicted (with it and no
        // -m, only the plain run is).
        let (_, gc) = run(&["gc", tmp.path().to_str().unwrap()]);
        for m in [false, true] {
            let real = gc_dry_run_as(tmp.path(), m, true);
            assert!(real.aborted.is_none(), "{:?}", real.aborted);
            let p = gc["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["delete_untagged"] == m && p["registry_version"] == "2.8")
                .unwrap();
            let ours: std::collections::BTreeSet<String> = p["eligible_blobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap().to_string())
                .collect();
            assert_eq!(ours, real.eligible_blobs, "-m={m}");
        }
    }
}

/// The whole fixture owned by the unprivileged user (when the tests run as root), so that a
/// repair can write; then `rel` made unreadable to that user.
fn writable_store_with_unreadable(rel: &str) -> Store {
    let tmp = fixture("sample");
    open_to_all(tmp.path());
    if common::store::is_root() {
        let id = |flag: &str| -> u32 {
            let out = std::process::Command::new("id")
                .args([flag, "nobody"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let mut stack = vec![tmp.path().to_path_buf()];
        while let Some(p) = stack.pop() {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).unwrap();
            if p.is_dir() {
                stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        // The broken thing stays root's.
        std::os::unix::fs::lchown(v2(tmp.path()).join(rel), Some(0), Some(0)).unwrap();
    }
    unreadable(tmp, rel)
}

/// Issue #12.1: after a repair of what it could read, regfsck must not call a garbage-collect
/// safe while a repository it could not read hides what that run would do.
#[test]
fn no_garbage_collect_is_called_safe_after_a_repair_beside_an_unreadable_repository() {
    let unread = "repositories/team/proj";
    let tmp = writable_store_with_unreadable(unread);
    let root = tmp.path();
    let now = fixture_now(root).to_string();
    let out = unprivileged(env!("CARGO_BIN_EXE_regfsck"))
        .args(["repair", root.to_str().unwrap(), "--apply", "--now", &now])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("is safe now"), "{text}");
    let (code, gc) = run(&["gc", root.to_str().unwrap()]);
    assert_eq!(code, 4, "{gc:#}");
    assert!(gc["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["cannot_predict"]["paths"][0] == unread));
}

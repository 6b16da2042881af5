//! `regfsck repair` / `undo` against the real registry: for each fixable finding (and all of them
//! at once) the tags served before are still served with the same digest, tags broken only by
//! fixable damage are served again, the real GC no longer aborts, no fixable error remains, and
//! undo restores the damaged store byte for byte. Crash safety: SIGKILL at every step, then
//! resume or undo.

mod common;

use common::kill_points;
use common::registry::{gc_dry_run, registry_available, Registry};
use common::store::{expected, fingerprint, fixture, fixture_now, regfsck, v2};
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const Q: &str = "regfsck-quarantine";

fn tag(repo: &str, t: &str) -> Digest {
    common::store::tag_digest("sample", repo, t)
}

fn manifest(root: &Path, d: &Digest) -> serde_json::Value {
    common::store::manifest_json(root, d)
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    common::store::write_v2(root, rel, data)
}

fn rm(root: &Path, rel: &str) {
    common::store::rm_v2(root, rel)
}

fn all_tags() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (repo, r) in expected("sample")["repositories"].as_object().unwrap() {
        for t in r["tags"].as_object().unwrap().keys() {
            out.push((repo.clone(), t.clone()));
        }
    }
    out
}

/// Tags the real registry serves completely, with the digest each tag names.
fn served(root: &Path) -> BTreeMap<(String, String), String> {
    let reg = Registry::start(root);
    let mut out = BTreeMap::new();
    for (repo, t) in all_tags() {
        if reg.pull(&repo, &t).is_ok() {
            let cur = fs::read_to_string(v2(root).join(layout::tag_current_link(&repo, &t)))
                .unwrap_or_default();
            out.insert((repo, t), cur);
        }
    }
    out
}

fn run(root: &Path, args: &[&str]) -> (i32, String, String) {
    let now = fixture_now(root).to_string();
    let out = regfsck()
        .args(args)
        .arg(root)
        .args(["--now", &now, "--grace", "0s", "--quiet"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn error_codes(root: &Path) -> BTreeSet<String> {
    let now = fixture_now(root).to_string();
    let out = regfsck()
        .args([
            "check",
            root.to_str().unwrap(),
            "--format",
            "json",
            "--now",
            &now,
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn run_id(stdout: &str) -> String {
    let i = stdout.find(" as run ").expect("run id printed");
    stdout[i + 8..].split(' ').next().unwrap().to_string()
}

/// Codes repair cannot fix: the content is gone and must be pushed again.
const NEEDS_REPUSH: &[&str] = &["manifest-ref-missing", "index-child-missing"];

type Damage = fn(&Path);

fn cases() -> Vec<(&'static str, bool, Damage)> {
    vec![
        ("link-malformed (revision, empty)", false, |r| {
            write(
                r,
                &layout::revision_link("team/proj", &tag("team/proj", "v1")),
                b"",
            )
        }),
        ("link-malformed (layer, newline)", false, |r| {
            let c = Digest::parse(
                manifest(r, &tag("team/proj/app", "v1"))["config"]["digest"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            write(
                r,
                &layout::layer_link("team/proj/app", &c),
                format!("{c}\n").as_bytes(),
            )
        }),
        ("link-malformed (tag current, truncated)", false, |r| {
            write(
                r,
                &layout::tag_current_link("library/alpine", "3.19"),
                b"sha256:c326",
            )
        }),
        ("link-mismatch", false, |r| {
            let a = tag("team/proj", "v1");
            write(
                r,
                &layout::revision_link("team/proj", &a),
                tag("beta/app", "v1").to_string().as_bytes(),
            )
        }),
        ("link-not-file", false, |r| {
            let p = layout::revision_link("beta/app", &tag("beta/app", "v1"));
            rm(r, &p);
            fs::create_dir(v2(r).join(p)).unwrap();
        }),
        ("manifest-ref-unlinked", false, |r| {
            let l = Digest::parse(
                manifest(r, &tag("team/proj", "v1"))["layers"][1]["digest"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            rm(r, &layout::layer_link("team/proj", &l));
        }),
        ("repo-missing-layers", false, |r| {
            rm(r, "repositories/team/proj/app/_layers")
        }),
        ("repo-missing-tags", false, |r| {
            rm(r, "repositories/team/proj/_manifests/tags")
        }),
        ("tag-index-missing-current", false, |r| {
            let d = tag("library/alpine", "3.19");
            rm(
                r,
                layout::tag_index_link("library/alpine", "3.19", &d)
                    .strip_suffix("/link")
                    .unwrap(),
            )
        }),
        ("tag-current-missing", false, |r| {
            rm(
                r,
                layout::tag_current_link("team/proj", "v1")
                    .strip_suffix("/link")
                    .unwrap(),
            )
        }),
        ("blob-path-invalid (misplaced blob)", false, |r| {
            let l = Digest::parse(
                manifest(r, &tag("team/proj", "v1"))["layers"][1]["digest"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            fs::create_dir_all(v2(r).join("blobs/sha256/zz")).unwrap();
            fs::rename(
                v2(r).join(layout::blob_dir(&l)),
                v2(r).join(format!("blobs/sha256/zz/{}", l.hex())),
            )
            .unwrap();
        }),
        ("blob-digest-mismatch", false, |r| {
            let l = Digest::parse(
                manifest(r, &tag("team/proj", "v1"))["layers"][1]["digest"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            let p = layout::blob_data(&l);
            let mut b = fs::read(v2(r).join(&p)).unwrap();
            b[30] ^= 1;
            write(r, &p, &b);
        }),
        ("blob-empty", false, |r| {
            let l = Digest::parse(
                manifest(r, &tag("team/proj/app", "v1"))["layers"][1]["digest"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            write(r, &layout::blob_data(&l), b"");
        }),
        (
            "strays: _notes, temp residue, stray blob file, symlink, dangling layer link",
            false,
            |r| {
                write(r, "repositories/team/_notes", b"x");
                write(r, "repositories/beta/app/_manifests/tags/v1/current/link.01a2038b-a7e0-7487-8e9f-0123456789ab.tmp", b"x");
                let d = tag("team/proj", "v1");
                write(r, &format!("{}/data.tmp", layout::blob_dir(&d)), b"x");
                std::os::unix::fs::symlink("/etc", v2(r).join("repositories/team/etc")).unwrap();
                let ghost = Digest::of_bytes(b"ghost");
                write(
                    r,
                    &layout::layer_link("library/alpine", &ghost),
                    ghost.to_string().as_bytes(),
                );
            },
        ),
        ("upload-stale", false, |r| {
            let up = layout::upload_dir(
                "library/alpine",
                expected("sample")["upload"]["uuid"].as_str().unwrap(),
            );
            write(r, &format!("{up}/startedat"), b"2020-01-01T00:00:00Z");
        }),
        ("tag-dangling (lossy)", true, |r| {
            rm(
                r,
                layout::revision_link("team/proj", &tag("team/proj", "v1"))
                    .strip_suffix("/link")
                    .unwrap(),
            )
        }),
        ("revision-blob-missing (lossy)", true, |r| {
            rm(r, &layout::blob_dir(&tag("team/proj", "v1")))
        }),
        ("manifest-invalid (lossy)", true, |r| {
            let d = Digest::of_bytes(b"{broken");
            write(r, &layout::blob_data(&d), b"{broken");
            write(
                r,
                &layout::revision_link("team/proj", &d),
                d.to_string().as_bytes(),
            );
            write(
                r,
                &layout::tag_current_link("team/proj", "bad"),
                d.to_string().as_bytes(),
            );
            write(
                r,
                &layout::tag_index_link("team/proj", "bad", &d),
                d.to_string().as_bytes(),
            );
        }),
        ("repo-name-invalid (lossy)", true, |r| {
            fs::rename(
                v2(r).join("repositories/beta/app"),
                v2(r).join("repositories/beta/App"),
            )
            .unwrap()
        }),
    ]
}

/// Damage everything fixable at once (in different repositories where they would collide).
fn all_at_once(r: &Path) {
    for (name, lossy, damage) in cases() {
        let skip = lossy
            || name.starts_with("link-mismatch")
            || name.starts_with("tag-current-missing")
            || name.starts_with("tag-index-missing-current")
            || name.starts_with("repo-missing-tags")
            || name.starts_with("manifest-ref-unlinked")
            || name.starts_with("blob-digest-mismatch")
            || name.starts_with("link-malformed (revision");
        if !skip {
            damage(r);
        }
    }
}

fn verify_repair(damaged: &Path, lossy: bool, what: &str) {
    verify_repair_leaving(damaged, lossy, what, &[]);
}

/// `verify_repair`, where `left` are error codes the run may leave besides those that need a
/// re-push (e.g. what only `--lossy` fixes, in a run without it).
fn verify_repair_leaving(damaged: &Path, lossy: bool, what: &str, left: &[&str]) {
    let before_fp = fingerprint(damaged, &[Q]);
    let before = served(damaged);
    let args: Vec<&str> = if lossy {
        vec!["repair", "--apply", "--lossy", "--yes"]
    } else {
        vec!["repair", "--apply"]
    };
    let (code, out, err) = run(damaged, &args);
    assert!(
        code & 8 == 0 && code & 16 == 0,
        "{what}: exit {code}\n{out}\n{err}"
    );
    let remaining = error_codes(damaged);
    assert!(
        remaining
            .iter()
            .all(|c| NEEDS_REPUSH.contains(&c.as_str()) || left.contains(&c.as_str())),
        "{what}: fixable errors remain: {remaining:?}\n{out}"
    );
    let after = served(damaged);
    for (k, digest) in &before {
        assert_eq!(
            after.get(k),
            Some(digest),
            "{what}: {k:?} was served before the repair and is not now"
        );
    }
    // (Deleting a tags folder deletes its tags: those cannot come back.)
    if remaining.is_empty() && !lossy && !what.starts_with("repo-missing-tags") {
        assert_eq!(
            after.len(),
            all_tags().len(),
            "{what}: every tag is served again ({after:?})"
        );
    }
    for m in [false, true] {
        let g = gc_dry_run(damaged, m);
        assert!(
            g.aborted.is_none(),
            "{what}: the real GC (-m={m}) still aborts: {:?}",
            g.aborted
        );
    }
    // A second repair finds nothing to do.
    let (_, out2, _) = run(damaged, &args);
    assert!(
        out2.contains("Nothing to repair."),
        "{what}: second run planned more:\n{out2}"
    );
    // Undo restores the damaged store exactly.
    let id = run_id(&out);
    let (code, uout, err) = run_undo(damaged, &id);
    assert_eq!(code, 0, "{what}: undo: {uout}{err}");
    assert_eq!(
        fingerprint(damaged, &[Q]),
        before_fp,
        "{what}: undo did not restore the store"
    );
}

fn run_undo(root: &Path, id: &str) -> (i32, String, String) {
    let out = regfsck()
        .args(["undo"])
        .arg(root)
        .args(["--run", id])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn each_fixable_finding_is_repaired_and_undone() {
    if !registry_available() {
        return;
    }
    for (what, lossy, damage) in cases() {
        let tmp = fixture("sample");
        damage(tmp.path());
        verify_repair(tmp.path(), lossy, what);
    }
}

fn digest_at(r: &Path, repo: &str, t: &str, pointer: &str) -> Digest {
    Digest::parse(
        manifest(r, &tag(repo, t))
            .pointer(pointer)
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn corrupt(r: &Path, d: &Digest) {
    common::store::corrupt_blob(r, d)
}

fn misplace(r: &Path, d: &Digest) {
    common::store::misplace_blob(r, d)
}

/// #11.4: damage whose repair removes something others rest on. Each: (name, lossy, error codes
/// the run may leave because only --lossy fixes them, damage).
fn follow_up_cases() -> Vec<(&'static str, bool, &'static [&'static str], Damage)> {
    const LOSSY_FIXES: &[&str] = &["revision-blob-missing", "manifest-invalid", "tag-dangling"];
    vec![
        ("corrupt manifest blob", true, &[], |r| {
            corrupt(r, &tag("team/proj", "v1"))
        }),
        (
            "corrupt manifest blob, without --lossy",
            false,
            LOSSY_FIXES,
            |r| corrupt(r, &tag("team/proj", "v1")),
        ),
        ("empty manifest blob", true, &[], |r| {
            write(r, &layout::blob_data(&tag("team/proj", "v1")), b"")
        }),
        (
            "corrupt layer blob shared by repositories",
            false,
            &[],
            |r| corrupt(r, &digest_at(r, "team/proj", "v1", "/layers/0/digest")),
        ),
        ("corrupt config blob", false, &[], |r| {
            corrupt(r, &digest_at(r, "team/proj", "v1", "/config/digest"))
        }),
        ("corrupt index child", true, &[], |r| {
            corrupt(
                r,
                &digest_at(r, "multi/docker", "latest", "/manifests/0/digest"),
            )
        }),
        ("corrupt index", true, &[], |r| {
            corrupt(r, &tag("multi/docker", "latest"))
        }),
        ("manifest blob at a wrong path", true, &[], |r| {
            misplace(r, &tag("team/proj", "v1"))
        }),
        ("corrupt layer at a wrong path", false, &[], |r| {
            let l = digest_at(r, "team/proj", "v1", "/layers/0/digest");
            corrupt(r, &l);
            misplace(r, &l);
        }),
    ]
}

/// #11.4: one `repair --apply [--lossy]` plans the follow-ups of its own removals: a second
/// repair right after plans nothing, check reports no fixable error, every tag that pulled still
/// pulls (verify_repair), and undo restores the damage exactly.
#[test]
fn repair_converges_in_one_run() {
    if !registry_available() {
        return;
    }
    for (what, lossy, left, damage) in follow_up_cases() {
        let tmp = fixture("sample");
        damage(tmp.path());
        verify_repair_leaving(tmp.path(), lossy, what, left);
    }
    // The move brings the manifest home: the tag is served again, not dropped by --lossy.
    let tmp = fixture("sample");
    misplace(tmp.path(), &tag("team/proj", "v1"));
    let (_, out, _) = run(tmp.path(), &["repair", "--apply", "--lossy", "--yes"]);
    assert!(!out.contains("[lossy]"), "{out}");
    Registry::start(tmp.path()).pull("team/proj", "v1").unwrap();
}

#[test]
fn everything_at_once() {
    if !registry_available() {
        return;
    }
    let tmp = fixture("sample");
    all_at_once(tmp.path());
    verify_repair(tmp.path(), false, "all at once");
}

#[test]
fn plan_only_writes_nothing_and_plan_file_is_json() {
    let tmp = fixture("sample");
    all_at_once(tmp.path());
    let fp = fingerprint(tmp.path(), &[]);
    let plan = tmp.path().join("plan.json");
    let out = regfsck()
        .args([
            "repair",
            tmp.path().to_str().unwrap(),
            "--quiet",
            "--plan",
            plan.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let mut after = fingerprint(tmp.path(), &[]);
    after.remove("plan.json");
    assert_eq!(fp, after, "repair without --apply changed the store");
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&plan).unwrap()).unwrap();
    let actions = doc["actions"].as_array().unwrap();
    assert!(actions.len() >= 8);
    assert!(actions
        .iter()
        .all(|a| a["kind"].is_string() && a["code"].is_string() && a["reason"].is_string()));
}

/// With `--lossy`, a tag whose `current` link is gone is pointed at its newest live history
/// entry, judged by the index links' mtimes (which the deep scan keeps beside the links), not by
/// how the digests happen to sort.
#[test]
fn lossy_restore_picks_the_newest_history_entry() {
    let top = tag("multi/docker", "latest");
    for child_is_newer in [false, true] {
        let tmp = fixture("sample");
        let r = tmp.path();
        let child = Digest::parse(
            manifest(r, &top)["manifests"][0]["digest"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let child_entry = layout::tag_index_link("multi/docker", "latest", &child);
        write(r, &child_entry, child.to_string().as_bytes());
        let now = fixture_now(r);
        let at = |age_days: i64| {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs((now - age_days * 86400) as u64)
        };
        let (child_age, top_age) = if child_is_newer { (10, 20) } else { (20, 10) };
        for (rel, age) in [
            (child_entry.clone(), child_age),
            (
                layout::tag_index_link("multi/docker", "latest", &top),
                top_age,
            ),
        ] {
            fs::File::options()
                .write(true)
                .open(v2(r).join(rel))
                .unwrap()
                .set_modified(at(age))
                .unwrap();
        }
        rm(
            r,
            layout::tag_current_link("multi/docker", "latest")
                .strip_suffix("/link")
                .unwrap(),
        );
        let plan = r.join("plan.json");
        let (code, out, err) = run(r, &["repair", "--lossy", "--plan", plan.to_str().unwrap()]);
        assert_eq!(code & 16, 0, "{out}\n{err}");
        let doc: serde_json::Value = serde_json::from_slice(&fs::read(&plan).unwrap()).unwrap();
        let current = layout::tag_current_link("multi/docker", "latest");
        let written: Vec<&str> = doc["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "write-link" && a["path"] == current.as_str())
            .map(|a| a["digest"].as_str().unwrap())
            .collect();
        let want = if child_is_newer { &child } else { &top };
        assert_eq!(
            written,
            [want.to_string()],
            "child newer: {child_is_newer}\n{out}"
        );
    }
}

#[test]
fn lossy_needs_confirmation_and_live_registries_are_refused() {
    let tmp = fixture("sample");
    rm(tmp.path(), &layout::blob_dir(&tag("team/proj", "v1")));
    let (code, _, err) = run(tmp.path(), &["repair", "--apply", "--lossy"]);
    assert_eq!(code, 16, "{err}");
    assert!(err.contains("--yes"));

    // A fresh upload means the registry is live.
    let tmp = fixture("sample");
    write(tmp.path(), "repositories/team/_notes", b"x");
    let now = fixture_now(tmp.path());
    let up = layout::upload_dir(
        "library/alpine",
        expected("sample")["upload"]["uuid"].as_str().unwrap(),
    );
    write(
        tmp.path(),
        &format!("{up}/startedat"),
        regfsck::model::timefmt::format_rfc3339(now - 5).as_bytes(),
    );
    let at = |extra: &[&str]| {
        let out = regfsck()
            .args([
                "repair",
                "--apply",
                "--quiet",
                "--grace",
                "1m",
                "--now",
                &now.to_string(),
            ])
            .args(extra)
            .arg(tmp.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = at(&[]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("looks live"));
    let (code, err) = at(&["--force"]);
    assert_eq!(code & 1, 1, "{err}");

    // A process working inside the store.
    let tmp = fixture("sample");
    write(tmp.path(), "repositories/team/_notes", b"x");
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .current_dir(v2(tmp.path()))
        .spawn()
        .unwrap();
    let (code, _, err) = run(tmp.path(), &["repair", "--apply"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("sleep"), "{err}");
}

#[test]
fn the_lock_keeps_two_repairs_apart() {
    let tmp = fixture("sample");
    write(tmp.path(), "repositories/team/_notes", b"x");
    let _held = regfsck::plan::apply::Lock::acquire(tmp.path()).unwrap();
    let (code, _, err) = run(tmp.path(), &["repair", "--apply"]);
    assert_eq!(code, 8);
    assert!(err.contains("holds the lock"), "{err}");
}

#[test]
fn sigkill_at_every_step_then_resume_or_undo() {
    // A grace window with one action inside it, so that skip records (which wait in memory until
    // the run's first change) are among the journal lines a crash can cut. "Now" is an hour after
    // the kernel's clock (which stamps the fixture's folders), so only that one file is young.
    let now = kernel_now() + 3600;
    let store = || {
        let s = fixture("sample");
        all_at_once(s.path());
        write(s.path(), "repositories/beta/_fresh", b"x");
        fs::File::options()
            .write(true)
            .open(v2(s.path()).join("repositories/beta/_fresh"))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now as u64 - 60))
            .unwrap();
        s
    };
    let repair = |root: &Path, kill: Option<usize>| {
        let mut c = regfsck();
        c.args([
            "repair",
            "--apply",
            "--quiet",
            "--grace",
            "10m",
            "--now",
            &now.to_string(),
        ])
        .arg(root);
        if let Some(k) = kill {
            c.env("REGFSCK_TEST_KILL_AT", k.to_string());
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let damaged = store();
    let damaged_fp = fingerprint(damaged.path(), &[Q]);
    // The uninterrupted result.
    let clean = store();
    let (code, out) = repair(clean.path(), None);
    assert_eq!(code.map(|c| c & 1), Some(1), "{out}");
    assert!(out.contains("repositories/beta/_fresh: waits"), "{out}");
    let want = fingerprint(clean.path(), &[Q]);
    // Every point when run alone; half of them in each of CI's two passes (common::kill_points).
    let mut killed = 0;
    for k in (1..200).filter(|&k| kill_points::kills(k)) {
        let tmp = store();
        let (code, _) = repair(tmp.path(), Some(k));
        if code.is_some() {
            break; // k is past the last step: the run completed.
        }
        killed += 1;
        let twin = tempfile::tempdir().unwrap();
        copy(tmp.path(), twin.path());
        // (a) re-running repair resumes the journal and ends where an uninterrupted run ends.
        let (code, out) = repair(tmp.path(), None);
        assert!(code.is_some_and(|c| c & 8 == 0), "k={k}: {out}");
        assert_eq!(
            fingerprint(tmp.path(), &[Q]),
            want,
            "k={k}: resume diverged\n{out}"
        );
        // (b) undo of the interrupted run restores the damaged store.
        let id = list_runs(twin.path())
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let (code, out, err) = run_undo(twin.path(), &id);
        assert_eq!(code, 0, "k={k}: {out}{err}");
        assert_eq!(
            fingerprint(twin.path(), &[Q]),
            damaged_fp,
            "k={k}: undo after a crash diverged"
        );
    }
    assert!(
        killed * kill_points::every() > 20,
        "only {killed} kill points exercised"
    );
}

/// Undo killed at every step, then undone again, restores the damaged store; a step whose path
/// was rewritten after the run (a registry write) stays kept through every crash.
#[test]
fn sigkill_during_undo_then_undo_again() {
    let damaged = fixture("sample");
    all_at_once(damaged.path());
    let repaired = fixture("sample");
    all_at_once(repaired.path());
    let (code, out, _) = run(repaired.path(), &["repair", "--apply"]);
    assert_eq!(code & 1, 1, "{out}");
    let id = run_id(&out);
    // A newer write after the run: the tag that repair re-pointed is pushed again.
    let current = layout::tag_current_link("library/alpine", "3.19");
    let newer = tag("team/proj", "v1").to_string();
    fs::write(v2(repaired.path()).join(&current), &newer).unwrap();
    let mut want = fingerprint(damaged.path(), &[Q]);
    let key = format!("docker/registry/v2/{current}");
    want.insert(
        key.clone(),
        fingerprint(repaired.path(), &[Q])[&key].clone(),
    );
    // Every point when run alone; half of them in each of CI's two passes (common::kill_points).
    // The last point (past the end: the undo completes) ends the loop in both.
    let mut killed = 0;
    for k in (1..400).filter(|&k| kill_points::kills(k)) {
        let tmp = tempfile::tempdir().unwrap();
        copy(repaired.path(), tmp.path());
        let out = regfsck()
            .args(["undo"])
            .arg(tmp.path())
            .args(["--run", &id])
            .env("REGFSCK_TEST_KILL_AT", k.to_string())
            .output()
            .unwrap();
        let finished = out.status.code().is_some();
        if !finished {
            killed += 1;
        }
        // (Again, to the end, after a crash; and once more after a complete undo.)
        let (code, out, err) = run_undo(tmp.path(), &id);
        assert_eq!(code, 4, "k={k}: {out}{err}");
        assert!(
            out.contains(&format!("  {current}: changed after the run")),
            "k={k}: {out}"
        );
        assert_eq!(
            fingerprint(tmp.path(), &[Q]),
            want,
            "k={k}: undo diverged\n{out}"
        );
        if finished {
            break;
        }
    }
    assert!(
        killed * kill_points::every() > 20,
        "only {killed} kill points exercised"
    );
}

/// A crash after a run was begun but before its first change, then nothing left to do: resuming
/// leaves no run behind.
#[test]
fn a_run_that_never_changed_anything_leaves_no_trace() {
    let tmp = fixture("sample");
    write(tmp.path(), "repositories/team/_notes", b"x");
    let now = fixture_now(tmp.path()).to_string();
    let out = regfsck()
        .args([
            "repair", "--apply", "--quiet", "--grace", "0s", "--now", &now,
        ])
        .arg(tmp.path())
        .env("REGFSCK_TEST_KILL_AT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "killed after the run began");
    let list = list_runs(tmp.path());
    assert!(list.contains("0 applied"), "{list}");
    rm(tmp.path(), "repositories/team/_notes");
    let (code, out, err) = run(tmp.path(), &["repair", "--apply"]);
    assert_eq!(code & 8, 0, "{out}{err}");
    assert!(
        out.contains("had changed nothing and has nothing left to do: removed it"),
        "{out}"
    );
    let list = list_runs(tmp.path());
    assert!(list.starts_with("No repair runs"), "{list}");
}

/// The kernel's clock (which stamps files), whatever the test process's clock says.
fn kernel_now() -> i64 {
    let f = tempfile::NamedTempFile::new().unwrap();
    let m = f.as_file().metadata().unwrap();
    std::os::unix::fs::MetadataExt::mtime(&m)
}

/// `regfsck undo ROOT --list`, its stdout.
fn list_runs(root: &Path) -> String {
    let out = regfsck()
        .arg("undo")
        .arg(root)
        .arg("--list")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn copy(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        let ft = e.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            fs::copy(e.path(), &dest).unwrap();
            let m = fs::metadata(e.path()).unwrap();
            fs::File::options()
                .write(true)
                .open(&dest)
                .unwrap()
                .set_modified(m.modified().unwrap())
                .unwrap();
        }
    }
}

#[test]
fn objects_younger_than_the_grace_window_are_never_touched() {
    let tmp = fixture("sample");
    // Written a minute before the pinned clock: younger than the default 10-minute grace window.
    // (Both times are pinned: the kernel's clock and the test's may differ, e.g. under faketime.)
    let now = fixture_now(tmp.path());
    let notes = v2(tmp.path()).join("repositories/team/_notes");
    fs::write(&notes, b"fresh").unwrap();
    fs::File::options()
        .write(true)
        .open(&notes)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now as u64 - 60))
        .unwrap();
    let out = regfsck()
        .args(["repair", "--apply", "--quiet"])
        .arg(tmp.path())
        .args(["--now", &now.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It says when the action becomes eligible, and how to override the window.
    let eligible = regfsck::model::timefmt::format_rfc3339(now - 60 + 600);
    assert!(
        stdout.contains(&format!("repositories/team/_notes: waits: modified 1m ago, within the grace window; eligible from {eligible} (or pass --grace 0s)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("[waits] quarantine repositories/team/_notes"),
        "{stdout}"
    );
    assert_eq!(fs::read(&notes).unwrap(), b"fresh");
    // Nothing changed: no run, no restart advice, nothing to undo.
    assert!(
        stdout.contains("Nothing was changed; no run was recorded."),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 applied, 1 skipped, 0 refused, 0 failed"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("Restart") && !stdout.contains(" as run "),
        "{stdout}"
    );
    assert!(!tmp
        .path()
        .join(Q)
        .read_dir()
        .unwrap()
        .any(|e| { regfsck::plan::apply::valid_run_id(e.unwrap().file_name().to_str().unwrap()) }));
    let list = list_runs(tmp.path());
    assert_eq!(
        list,
        format!("No repair runs in {}.\n", tmp.path().display())
    );
    // With the window closed, the same repair goes ahead.
    let (code, _, _) = run(tmp.path(), &["repair", "--apply"]);
    assert_eq!(code & 1, 1);
    assert!(!notes.exists());
}

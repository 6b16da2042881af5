//! Repair and undo never destroy anything, tried the way an operator meets them: an unprivileged
//! user with one object unreadable, a registry serving the store (idle), registry writes between
//! a repair and its undo, writes inside a tree younger than the grace window, and runs that
//! change nothing. Real registry, real pushes and pulls.

mod common;

use common::registry::{registry_available, Registry};
use common::store::{fingerprint, fixture, fixture_now, regfsck, tag_digest, v2, write_v2};
use common::unprivileged::{as_nobody, give_to_nobody, lock_away};
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

const Q: &str = "regfsck-quarantine";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn output(mut c: Command) -> Out {
    let o = c.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).to_string(),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

/// `regfsck <args> ROOT --now <fixture now> --quiet` (plus `extra`).
fn run(root: &Path, args: &[&str], extra: &[&str]) -> Out {
    run_at(root, fixture_now(root), args, extra)
}

fn run_at(root: &Path, now: i64, args: &[&str], extra: &[&str]) -> Out {
    let mut c = regfsck();
    c.args(args)
        .arg(root)
        .args(["--now", &now.to_string(), "--quiet"])
        .args(extra);
    output(c)
}

fn undo(root: &Path, extra: &[&str]) -> Out {
    let mut c = regfsck();
    c.arg("undo").arg(root).args(extra);
    output(c)
}

fn run_id(stdout: &str) -> String {
    let i = stdout.find(" as run ").expect("run id printed");
    stdout[i + 8..].split(' ').next().unwrap().to_string()
}

fn set_mtime(p: &Path, secs: i64) {
    fs::File::open(p)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(secs as u64))
        .unwrap();
}

fn manifest_of(root: &Path, repo: &str, tag: &str) -> serde_json::Value {
    common::store::manifest_json(root, &tag_digest("sample", repo, tag))
}

fn layer(root: &Path, repo: &str, tag: &str, i: usize) -> Digest {
    Digest::parse(
        manifest_of(root, repo, tag)["layers"][i]["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn flip(root: &Path, d: &Digest) {
    common::store::corrupt_blob(root, d)
}

/// #12.1: as an unprivileged user with one manifest blob (or its fan-out folder) unreadable, the
/// healthy tag on it is never quarantined: every action resting on it is refused, and says so;
/// everything else is applied. The tag still pulls once the permissions are fixed.
#[test]
fn actions_resting_on_unreadable_paths_are_refused() {
    if !registry_available() {
        return;
    }
    let Some(_) = as_nobody() else { return };
    let proj = tag_digest("sample", "team/proj", "v1");
    let blob = layout::blob_data(&proj);
    let fan_out = blob.split('/').take(3).collect::<Vec<_>>().join("/");
    for (what, locked, verify) in [
        ("manifest blob", blob.clone(), true),
        ("manifest blob, --no-verify", blob.clone(), false),
        ("fan-out folder", fan_out.clone(), true),
    ] {
        let tmp = fixture("sample");
        let root = tmp.path();
        write_v2(root, "repositories/team/_notes", b"x");
        give_to_nobody(root);
        lock_away(&v2(root).join(&locked));
        let now = fixture_now(root).to_string();
        let mut c = as_nobody().unwrap();
        // --force: nobody cannot read the environment of the root-owned registries that other
        // tests run meanwhile, so it cannot rule out that they serve this store (and says so).
        c.arg(env!("CARGO_BIN_EXE_regfsck"))
            .args([
                "repair", "--apply", "--lossy", "--yes", "--quiet", "--force",
            ])
            .arg(root)
            .args(["--now", &now, "--grace", "0s"]);
        if !verify {
            c.arg("--no-verify");
        }
        let o = output(c);
        assert_eq!(o.code & 8, 0, "{what}: {}{}", o.stdout, o.stderr);
        let tag_dir = v2(root).join(layout::tag_dir("team/proj", "v1"));
        let rev_dir = v2(root)
            .join(layout::revision_link("team/proj", &proj))
            .parent()
            .unwrap()
            .to_path_buf();
        assert!(
            tag_dir.is_dir() && rev_dir.is_dir(),
            "{what}: the tag was quarantined\n{}",
            o.stdout
        );
        // Whatever the analysis made of the unreadable manifest, no action on the tag or its
        // revision may run: each one planned is marked refused and says what it rests on.
        let tag = layout::tag_dir("team/proj", "v1");
        let rev = layout::revision_link("team/proj", &proj);
        let rev = rev.strip_suffix("/link").unwrap();
        let mut refused = 0;
        for line in o.stdout.lines() {
            if line.starts_with("  ") && (line.ends_with(&tag) || line.ends_with(rev)) {
                assert!(line.contains("[refused]"), "{what}: {line}\n{}", o.stdout);
                refused += 1;
            }
        }
        for p in [&tag, rev] {
            if o.stdout.contains(&format!("quarantine {p}")) {
                let why = format!("  {p}: refused: it rests on {blob}");
                assert!(o.stdout.contains(&why), "{what}: {}", o.stdout);
            }
        }
        // The rest of the plan went ahead, and the journal counts what happened.
        assert!(
            !v2(root).join("repositories/team/_notes").exists(),
            "{what}: {}",
            o.stdout
        );
        let counts = format!("1 applied, 0 skipped, {refused} refused, 0 failed");
        assert!(o.stdout.contains(&counts), "{what}: {}", o.stdout);
        let list = undo(root, &["--list"]);
        assert!(
            list.stdout.contains(&format!("{counts}  complete")),
            "{what}: {}",
            list.stdout
        );
        // Healthy after all: once readable, the real registry serves the tag.
        fs::set_permissions(
            v2(root).join(&locked),
            std::os::unix::fs::PermissionsExt::from_mode(if locked == blob {
                0o644
            } else {
                0o755
            }),
        )
        .unwrap();
        let reg = Registry::start(root);
        reg.pull("team/proj", "v1")
            .unwrap_or_else(|e| panic!("{what}: team/proj:v1 no longer pulls: {e}"));
    }
    // "No manifest of the repository references this dangling link" cannot be said while a
    // manifest of the repository cannot be read: the link stays.
    let tmp = fixture("sample");
    let root = tmp.path();
    let l = layer(root, "team/proj", "v1", 1);
    common::store::rm_v2(root, &layout::blob_dir(&l));
    give_to_nobody(root);
    lock_away(&v2(root).join(&fan_out));
    let now = fixture_now(root).to_string();
    let mut c = as_nobody().unwrap();
    c.arg(env!("CARGO_BIN_EXE_regfsck"))
        .args(["repair", "--apply", "--quiet", "--force"])
        .arg(root)
        .args(["--now", &now, "--grace", "0s"]);
    let o = output(c);
    let link = layout::layer_link("team/proj", &l);
    assert!(v2(root).join(&link).is_file(), "{}{}", o.stdout, o.stderr);
    if o.stdout.contains(&format!("quarantine {link}")) {
        assert!(
            o.stdout.contains(&format!(
                "{link}: refused: it rests on {blob}, and {fan_out} could not be read"
            )),
            "{}",
            o.stdout
        );
    }
}

/// #12.2: the registry re-points a tag whose link repair rewrote and re-pushes a blob repair
/// quarantined; undo keeps both newer writes, reverses the rest, lists what it kept and exits
/// non-zero, and a later undo does the same (never "already undone").
#[test]
fn undo_keeps_what_the_registry_wrote_after_the_run() {
    if !registry_available() {
        return;
    }
    let tmp = fixture("sample");
    let root = tmp.path();
    let image = tempfile::tempdir().unwrap();
    {
        let reg = Registry::start(root);
        reg.pull_to("team/proj", "v1", image.path()).unwrap();
    }
    // Damage: a truncated tag link, a corrupt layer, and a stray file (reversed normally).
    let current = layout::tag_current_link("library/alpine", "3.19");
    write_v2(root, &current, b"sha256:c326");
    let corrupt = layer(root, "team/proj", "v1", 1);
    flip(root, &corrupt);
    write_v2(root, "repositories/team/_notes", b"notes");
    let notes_fp = fingerprint(root, &[Q])["docker/registry/v2/repositories/team/_notes"].clone();
    let o = run(root, &["repair", "--apply"], &["--grace", "0s"]);
    assert_eq!(o.code & 8, 0, "{}{}", o.stdout, o.stderr);
    let id = run_id(&o.stdout);
    assert!(!v2(root).join(layout::blob_dir(&corrupt)).exists());
    let ours = fs::read_to_string(v2(root).join(&current)).unwrap();
    assert_eq!(
        ours,
        tag_digest("sample", "library/alpine", "3.19").to_string()
    );

    // Legitimate registry writes after the run.
    let reg = Registry::start(root);
    reg.push(image.path(), "library/alpine", "3.19").unwrap();
    reg.push(image.path(), "team/proj", "v1").unwrap();
    let pushed = fs::read_to_string(v2(root).join(&current)).unwrap();
    assert_ne!(pushed, ours, "the push re-pointed the tag");
    assert!(
        v2(root).join(layout::blob_data(&corrupt)).is_file(),
        "re-pushed"
    );
    // While it serves the store, undo refuses and names it.
    let o = undo(root, &["--run", &id]);
    assert_eq!(o.code, 8, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains(&format!("process {}", reg.pid())),
        "{}",
        o.stderr
    );
    drop(reg);

    let o = undo(root, &["--run", &id]);
    assert_eq!(o.code, 4, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("partly: 1 step reversed, 2 steps NOT reversed"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains(&format!("  {current}: changed after the run")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "  {}: written again after the run: kept the new one",
            layout::blob_dir(&corrupt)
        )),
        "{}",
        o.stdout
    );
    // The newer writes are intact, the stray file is back byte for byte.
    assert_eq!(fs::read_to_string(v2(root).join(&current)).unwrap(), pushed);
    let data = fs::read(v2(root).join(layout::blob_data(&corrupt))).unwrap();
    assert_eq!(
        Digest::of_bytes(&data),
        corrupt,
        "the re-pushed blob is kept"
    );
    assert_eq!(
        fingerprint(root, &[Q])["docker/registry/v2/repositories/team/_notes"],
        notes_fp
    );
    let list = undo(root, &["--list"]);
    assert!(list.stdout.contains(&format!("{id}  3 actions: 3 applied, 0 skipped, 0 refused, 0 failed  partly-undone (2 steps kept)")), "{}", list.stdout);
    // Undo again: still kept, still not "undone".
    let o = undo(root, &["--run", &id, "--format", "json"]);
    assert_eq!(o.code, 4, "{}{}", o.stdout, o.stderr);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(doc["schema"], "regfsck.undo/1");
    assert_eq!(doc["reversed"], 0);
    assert_eq!(doc["kept"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(doc["already_undone"], false);
    // And the registry serves what was pushed.
    let reg = Registry::start(root);
    reg.pull("library/alpine", "3.19").unwrap();
    reg.pull("team/proj", "v1").unwrap();
}

/// #12.3: the grace window reads the newest mtime anywhere in what is moved, and an upload that
/// is stale by startedat but being written to is active: never stale, never planned, not even
/// with --force.
#[test]
fn the_grace_window_covers_every_file_moved() {
    let tmp = fixture("sample");
    let root = tmp.path();
    let now = fixture_now(root);
    let uuid = common::store::expected("sample")["upload"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let up = layout::upload_dir("library/alpine", &uuid);
    write_v2(root, &format!("{up}/startedat"), b"2020-01-01T00:00:00Z");
    // Appended to "0 s ago"; the folder itself stays old.
    let data = v2(root).join(&up).join("data");
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&data)
        .unwrap()
        .write_all(b"more")
        .unwrap();
    set_mtime(&data, now);
    set_mtime(&v2(root).join(&up), common::store::FIXTURE_MTIME);
    let (_, doc) = common::store::run_json(&[
        "check",
        root.to_str().unwrap(),
        "--now",
        &now.to_string(),
        "--no-verify",
    ]);
    let codes: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["path"] == up.as_str())
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["upload-recent"], "{doc}");
    // A corrupt blob whose folder is old but whose data was written 30 s ago.
    let corrupt = layer(root, "team/proj", "v1", 1);
    flip(root, &corrupt);
    set_mtime(&v2(root).join(layout::blob_data(&corrupt)), now - 30);
    set_mtime(
        &v2(root).join(layout::blob_dir(&corrupt)),
        common::store::FIXTURE_MTIME,
    );
    let before = fingerprint(root, &[Q]);
    let o = run_at(root, now, &["repair", "--apply", "--force"], &[]);
    assert!(
        o.stderr.contains("WARNING"),
        "--force is loud: {}",
        o.stderr
    );
    assert!(
        !o.stdout.contains(&up),
        "an active upload is planned: {}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "[waits] quarantine {}",
            layout::blob_dir(&corrupt)
        )),
        "{}",
        o.stdout
    );
    let eligible = regfsck::model::timefmt::format_rfc3339(now - 30 + 600);
    assert!(
        o.stdout.contains(&format!(
            "{}: waits: modified 30s ago, within the grace window; eligible from {eligible} (or pass --grace 0s)",
            layout::blob_dir(&corrupt)
        )),
        "{}",
        o.stdout
    );
    let after = fingerprint(root, &[Q]);
    for p in [
        format!("docker/registry/v2/{}", layout::blob_data(&corrupt)),
        format!("docker/registry/v2/{up}/data"),
    ] {
        assert_eq!(
            before.get(&p),
            after.get(&p),
            "{p} was touched:\n{}",
            o.stdout
        );
    }
    // With a window the blob is older than, it goes; the upload is still active, never planned.
    let o = run_at(
        root,
        now,
        &["repair", "--apply", "--force"],
        &["--grace", "20s"],
    );
    assert!(
        !v2(root).join(layout::blob_dir(&corrupt)).exists(),
        "{}",
        o.stdout
    );
    assert!(data.exists() && !o.stdout.contains(&up), "{}", o.stdout);
}

/// #12.4: the real `docker-registry serve` on the store, idle (no upload, no file open): apply
/// and undo refuse before acting and name the process; --force goes ahead, loudly.
#[test]
fn an_idle_registry_serving_the_store_is_refused() {
    if !registry_available() {
        return;
    }
    let tmp = fixture("sample");
    let root = tmp.path();
    write_v2(root, "repositories/team/_notes", b"x");
    let reg = Registry::start(root);
    let before = fingerprint(root, &[]);
    let o = run(root, &["repair", "--apply"], &["--grace", "0s"]);
    assert_eq!(o.code, 8, "{}{}", o.stdout, o.stderr);
    let named = format!(
        "process {} (docker-registry serve {}) serves this store",
        reg.pid(),
        reg.config().display()
    );
    assert!(o.stderr.contains(&named), "{}", o.stderr);
    assert_eq!(
        fingerprint(root, &[]),
        before,
        "refused, yet something changed"
    );
    let o = run(root, &["repair", "--apply", "--force"], &["--grace", "0s"]);
    assert_eq!(o.code & 1, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("WARNING") && o.stderr.contains(&named),
        "{}",
        o.stderr
    );
    let id = run_id(&o.stdout);
    let u = undo(root, &["--run", &id]);
    assert_eq!(u.code, 8, "{}{}", u.stdout, u.stderr);
    assert!(u.stderr.contains(&named), "{}", u.stderr);
    drop(reg);
    let u = undo(root, &["--run", &id]);
    assert_eq!(u.code, 0, "{}{}", u.stdout, u.stderr);
}

/// #12.5: counts are separate everywhere (output, journal, list, JSON); an undone run says so; no
/// runs says so; the usage line names --run or --list and ROOT as optional.
#[test]
fn records_match_what_happened() {
    let tmp = fixture("sample");
    let root = tmp.path();
    let now = fixture_now(root);
    let o = undo(root, &["--list"]);
    assert_eq!(o.stdout, format!("No repair runs in {}.\n", root.display()));
    let o = undo(root, &["--list", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"schema": "regfsck.runs/1", "runs": []})
    );

    // One action applied, one waiting for the grace window.
    write_v2(root, "repositories/team/_notes", b"x");
    write_v2(root, "repositories/beta/_fresh", b"x");
    set_mtime(&v2(root).join("repositories/beta/_fresh"), now - 60);
    let o = run(root, &["repair", "--apply", "--format", "json"], &[]);
    assert_eq!(o.code & 8, 0, "{}{}", o.stdout, o.stderr);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(doc["schema"], "regfsck.repair/1");
    assert_eq!(doc["applied"], true);
    assert_eq!(
        doc["counts"],
        serde_json::json!({"applied": 1, "skipped": 1, "refused": 0, "failed": 0})
    );
    let id = doc["run"].as_str().unwrap().to_string();
    let statuses: Vec<(&str, &str)> = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["path"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("repositories/beta/_fresh", "skipped"),
            ("repositories/team/_notes", "applied")
        ]
    );
    let waiting = &doc["actions"][0];
    assert_eq!(
        waiting["eligible_at"],
        regfsck::model::timefmt::format_rfc3339(now - 60 + 600)
    );
    // The journal ends with the same counts.
    let journal = fs::read_to_string(root.join(Q).join(&id).join("journal.jsonl")).unwrap();
    let end: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(
        end,
        serde_json::json!({"op": "end", "applied": 1, "skipped": 1, "refused": 0, "failed": 0})
    );
    let o = undo(root, &["--list"]);
    assert_eq!(
        o.stdout,
        format!("{id}  2 actions: 1 applied, 1 skipped, 0 refused, 0 failed  complete  (repair; 1 B in the quarantine)\n")
    );
    let o = undo(root, &["--run", &id]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("1 step reversed"), "{}", o.stdout);
    let o = undo(root, &["--run", &id]);
    assert_eq!(o.code, 0);
    assert_eq!(
        o.stdout,
        format!("Run {id} was already undone; nothing to do.\n")
    );
    let o = undo(root, &["--list", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(doc["runs"][0]["state"], "undone");
    assert_eq!(doc["runs"][0]["applied"], 1);

    // Usage: one of --run or --list; ROOT optional.
    let o = output({
        let mut c = regfsck();
        c.arg("undo");
        c
    });
    assert_eq!(o.code, 16);
    assert!(
        o.stderr
            .contains("Usage: regfsck undo <--run <RUN_ID>|--list> [ROOT]"),
        "{}",
        o.stderr
    );
    let o = undo(root, &["--run", "20990101T000000Z-0000"]);
    assert_eq!(o.code, 16, "{}", o.stderr);
    assert!(
        o.stderr.contains("no run 20990101T000000Z-0000"),
        "{}",
        o.stderr
    );
}

//! The JSON Schemas in docs/schema/ against real outputs: every `--format json` document (check,
//! gc, du), the repair plan and the error object, from the real fixture stores — clean, damaged
//! in many ways at once, unpredictable for the GC — and from failing command lines, validated
//! with a JSON Schema validator (boon). And the schemas are strict: drifted documents fail.
//!
//! When a document gains a field (the repair/undo outputs are still growing), add it to its
//! schema in docs/schema/ and, if it is a new document, a `case` below.

mod common;

use common::contracts::Contracts;
use common::damage::{damaged_sample, unpredictable_sample};
use common::store::{fixture, fixture_now, regfsck, run_json, v2};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// `regfsck <args> --format json` on a store, with the store's pinned `--now` where the command
/// takes one.
fn json(root: &Path, cmd: &str, extra: &[&str]) -> (i32, Value) {
    let now = fixture_now(root).to_string();
    let mut args = vec![cmd, root.to_str().unwrap()];
    if cmd != "gc" {
        args.extend(["--now", &now]);
    }
    args.extend_from_slice(extra);
    run_json(&args)
}

/// `repair --plan FILE` on a store: the plan document.
fn plan(root: &Path, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.json");
    let now = fixture_now(root).to_string();
    let out = regfsck()
        .args(["repair", root.to_str().unwrap(), "--now", &now, "--plan"])
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.code().unwrap() & !4 == 0, "{out:?}");
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

/// Every finding of a document, flattened, for coverage assertions.
fn findings(doc: &Value, key: &str) -> Vec<Value> {
    doc[key].as_array().unwrap().clone()
}

#[test]
fn every_json_output_matches_its_schema() {
    let c = Contracts::load();
    let mut used = BTreeSet::new();
    let mut case = |name: &str, doc: &Value, what: &str| {
        c.assert_valid(name, doc, what);
        used.insert(name.to_string());
    };

    let sample = fixture("sample");
    let minimal = fixture("minimal");
    let damaged = damaged_sample();
    let blind = unpredictable_sample();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("s.state");
    let skip = state_dir.path().join("skip");
    std::fs::write(&skip, "# known\nrepositories/nothing/here/\n").unwrap();

    // check: every optional part of the summary and of a finding shows up somewhere below.
    let mut checks = Vec::new();
    for (root, extra, what) in [
        (sample.path(), vec![], "check sample"),
        (minimal.path(), vec![], "check minimal"),
        (
            sample.path(),
            vec![
                "--reverify-after",
                "30d",
                "--state",
                state.to_str().unwrap(),
            ],
            "check --reverify-after --state",
        ),
        (
            sample.path(),
            vec!["--verify-subset", "1/3"],
            "check --verify-subset 1/3",
        ),
        (
            sample.path(),
            vec!["--verify-subset", "50%"],
            "check --verify-subset 50%",
        ),
        (
            sample.path(),
            vec!["--max-duration", "0s"],
            "check --max-duration 0s",
        ),
        (sample.path(), vec!["--no-verify"], "check --no-verify"),
        (
            damaged.path(),
            vec!["--skip-list", skip.to_str().unwrap()],
            "check damaged",
        ),
        (
            damaged.path(),
            vec!["--severity", "blob-digest-mismatch=warn", "--deep"],
            "check damaged --severity --deep",
        ),
        (blind.path(), vec![], "check unpredictable"),
    ] {
        let (code, doc) = json(root, "check", &extra);
        assert_eq!(doc["exit_code"], code, "{what}");
        case("check", &doc, what);
        checks.push(doc);
    }
    // The cases do cover the optional shapes (a schema is only as good as what it is shown).
    let summaries: Vec<&Value> = checks.iter().map(|d| &d["summary"]).collect();
    assert!(summaries.iter().any(|s| s.get("coverage").is_some()));
    for key in [
        "subset",
        "state_file",
        "stopped",
        "remaining_shards",
        "max_duration_seconds",
        "reverify_after_seconds",
    ] {
        assert!(
            summaries
                .iter()
                .any(|s| s["verification"].get(key).is_some()),
            "verification.{key}"
        );
    }
    let all: Vec<Value> = checks
        .iter()
        .flat_map(|d| findings(d, "findings"))
        .collect();
    let kinds: BTreeSet<&str> = all
        .iter()
        .flat_map(|f| f["repair"]["actions"].as_array().into_iter().flatten())
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["create-dir", "move-blob", "quarantine", "write-link"])
    );
    for key in ["path", "repo", "tag", "digest", "affected"] {
        assert!(all.iter().any(|f| f.get(key).is_some()), "findings[].{key}");
    }
    assert!(all.iter().any(|f| f["repair"].get("via").is_some()));
    assert!(all.iter().any(|f| f["repair"]["lossy"] == true));
    assert!(checks.iter().any(|d| d["exit_code"] == 4));
    assert!(checks
        .iter()
        .any(|d| !d["run_warnings"].as_array().unwrap().is_empty()));

    // gc: safe and unsafe runs, an abort, runs that cannot be predicted, one exact run.
    let mut gcs = Vec::new();
    for (root, extra, what) in [
        (sample.path(), vec![], "gc sample"),
        (minimal.path(), vec![], "gc minimal"),
        (
            sample.path(),
            vec!["--registry-version", "2.8", "-m"],
            "gc 2.8 -m",
        ),
        (damaged.path(), vec![], "gc damaged"),
        (blind.path(), vec![], "gc unpredictable"),
    ] {
        let (code, doc) = json(root, "gc", &extra);
        assert_eq!(doc["exit_code"], code, "{what}");
        case("gc", &doc, what);
        gcs.push(doc);
    }
    let preds: Vec<Value> = gcs
        .iter()
        .flat_map(|d| findings(d, "predictions"))
        .collect();
    assert!(preds.iter().any(|p| !p["abort"].is_null()));
    assert!(preds.iter().any(|p| !p["cannot_predict"].is_null()));
    assert!(preds
        .iter()
        .any(|p| !p["eligible_manifests"].as_array().unwrap().is_empty()));
    assert!(gcs
        .iter()
        .any(|d| !d["hazards"].as_array().unwrap().is_empty()));

    // du: the table's rows, a --repo that matches nothing, a deep scan of damage.
    for (root, extra, what) in [
        (sample.path(), vec![], "du sample"),
        (minimal.path(), vec![], "du minimal"),
        (
            sample.path(),
            vec!["--repo", "nomatch/*", "--deep"],
            "du --repo",
        ),
        (damaged.path(), vec!["--deep"], "du damaged"),
    ] {
        let (code, doc) = json(root, "du", &extra);
        assert_eq!(code, 0, "{what}");
        case("du", &doc, what);
    }

    // The repair plan: every action kind, lossy and not.
    let p = plan(damaged.path(), &["--lossy"]);
    case("plan", &p, "repair --lossy --plan on the damaged store");
    let kinds: BTreeSet<&str> = p["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    case(
        "plan",
        &plan(damaged.path(), &[]),
        "repair --plan on the damaged store",
    );
    case("plan", &plan(sample.path(), &[]), "repair --plan on sample");

    // repair --format json: a preview, then a run that applies, skips (grace) and keeps a step
    // that undo must not reverse; the runs list before and after; undo's outcome.
    let repaired = damaged_sample();
    let root = repaired.path().to_str().unwrap();
    let now = fixture_now(repaired.path()).to_string();
    let (_, runs) = run_json(&["undo", root, "--list"]);
    assert!(runs["runs"].as_array().unwrap().is_empty());
    case("runs", &runs, "undo --list without runs");
    let (_, preview) = run_json(&["repair", root, "--now", &now, "--lossy"]);
    assert_eq!(preview["applied"], false);
    case("repair", &preview, "repair --format json (preview)");
    // A fresh foreign file inside the grace window: its quarantine is skipped, with eligible_at.
    let fresh = v2(repaired.path()).join("repositories/team/_fresh");
    std::fs::write(&fresh, b"x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&fresh)
        .unwrap()
        .set_modified(
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(fixture_now(repaired.path()) as u64 - 60),
        )
        .unwrap();
    let (_, applied) = run_json(&["repair", root, "--now", &now, "--apply", "--yes", "--lossy"]);
    assert_eq!(applied["applied"], true, "{applied:#}");
    let statuses: BTreeSet<&str> = applied["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains("applied") && statuses.contains("skipped"),
        "{statuses:?}"
    );
    case("repair", &applied, "repair --apply --format json");
    let run = applied["run"].as_str().unwrap().to_string();
    // Someone writes after the run: the link the run rewrote changes again.
    let rewritten = applied["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "write-link" && a["status"] == "applied")
        .expect("a link the run rewrote")["path"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(v2(repaired.path()).join(&rewritten), b"sha256:changed").unwrap();
    let (_, runs) = run_json(&["undo", root, "--list"]);
    case("runs", &runs, "undo --list with a run");
    let (code, undo) = run_json(&["undo", root, "--run", &run]);
    assert_eq!(code, 4, "{undo:#}");
    assert!(!undo["kept"].as_array().unwrap().is_empty(), "{undo:#}");
    case("undo", &undo, "undo that keeps a newer write");
    let (_, runs) = run_json(&["undo", root, "--list"]);
    assert_eq!(runs["runs"][0]["state"], "partly-undone", "{runs:#}");
    case("runs", &runs, "undo --list after a partial undo");

    // Cleanup: ls, plans of rm / prune / gc --sweep, applied runs (with and without --purge),
    // purge, and the runs list with a purged run.
    let cleaned = fixture("sample");
    let croot = cleaned.path().to_str().unwrap();
    let cnow = fixture_now(cleaned.path()).to_string();
    let (_, ls) = run_json(&["ls", croot]);
    case("ls", &ls, "ls sample");
    let (_, ls) = run_json(&["ls", minimal.path().to_str().unwrap()]);
    case("ls", &ls, "ls minimal");
    let (_, rm) = run_json(&[
        "rm",
        croot,
        "library/alpine:3.19",
        "scratch/doomed",
        "--now",
        &cnow,
    ]);
    assert_eq!(rm["applied"], false, "{rm:#}");
    case("cleanup", &rm, "rm preview");
    let (_, prune) = run_json(&[
        "prune",
        croot,
        "--untagged",
        "--tags",
        "3\\..*",
        "--empty",
        "--now",
        &cnow,
    ]);
    assert!(
        prune["repositories"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{prune:#}"
    );
    case("cleanup", &prune, "prune preview");
    let (_, sweep) = run_json(&["gc", croot, "--sweep", "-m", "--now", &cnow]);
    case("cleanup", &sweep, "gc --sweep");
    let (_, applied) = run_json(&["prune", croot, "--untagged", "--apply", "--now", &cnow]);
    assert!(applied["run"].is_string(), "{applied:#}");
    case("cleanup", &applied, "prune --apply");
    let (_, applied) = run_json(&["gc", croot, "--apply", "--purge", "--yes", "--now", &cnow]);
    assert!(
        applied["freed_bytes"].is_u64() && applied["removed_bytes"].is_u64(),
        "{applied:#}"
    );
    case("cleanup", &applied, "gc --apply --purge");
    let (_, purged) = run_json(&["purge", croot, "--all", "--yes"]);
    assert_eq!(purged["purged"].as_array().unwrap().len(), 1, "{purged:#}");
    case("purge", &purged, "purge --all");
    let (_, none) = run_json(&["purge", croot, "--all", "--yes"]);
    case("purge", &none, "purge with nothing left");
    let (_, runs) = run_json(&["undo", croot, "--list"]);
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "purged"),
        "{runs:#}"
    );
    case("runs", &runs, "undo --list with purged runs");

    // The error object: operational and usage errors, from clap and from the run.
    let nowhere = sample.path().join("nowhere");
    for (args, kind) in [
        (vec!["check", nowhere.to_str().unwrap()], "operational"),
        (vec!["du", nowhere.to_str().unwrap()], "operational"),
        (vec!["gc", nowhere.to_str().unwrap()], "operational"),
        (vec!["check", "--no-such-flag"], "usage"),
        (
            vec!["check", sample.path().to_str().unwrap(), "--grace", "soon"],
            "usage",
        ),
        (
            vec![
                "gc",
                sample.path().to_str().unwrap(),
                "--registry-version",
                "9",
            ],
            "usage",
        ),
    ] {
        let (code, doc) = run_json(&args);
        assert_eq!(doc["error"]["kind"], kind, "{args:?}");
        assert_eq!(doc["exit_code"], code, "{args:?}");
        case("error", &doc, &format!("{args:?}"));
    }

    // Every shipped schema was shown a real document.
    let shipped: BTreeSet<String> = c.index.keys().filter(|k| *k != "defs").cloned().collect();
    assert_eq!(
        used, shipped,
        "a schema without a test case, or a case without a schema"
    );
}

/// Strictness: a document that drifted (a renamed, added or mistyped key) fails its schema.
#[test]
fn drifted_documents_fail_their_schema() {
    let c = Contracts::load();
    let damaged = damaged_sample();
    let (_, check) = json(damaged.path(), "check", &[]);
    let (_, gc) = json(damaged.path(), "gc", &[]);
    let (_, du) = json(damaged.path(), "du", &[]);
    c.assert_valid("check", &check, "check damaged");
    type Edit = fn(&mut Value);
    let edits: [(&str, &Value, &str, Edit); 14] = [
        ("check", &check, "an unknown top-level key", |d| {
            d["extra"] = 1.into()
        }),
        ("check", &check, "a missing required key", |d| {
            d.as_object_mut().unwrap().remove("next_steps");
        }),
        ("check", &check, "an unknown summary key", |d| {
            d["summary"]["errorz"] = 1.into()
        }),
        ("check", &check, "an unknown finding key", |d| {
            d["findings"][0]["hint"] = "x".into()
        }),
        ("check", &check, "an unknown severity", |d| {
            d["findings"][0]["severity"] = "fatal".into()
        }),
        ("check", &check, "a digest that is not one", |d| {
            let f = d["findings"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|f| f.get("digest").is_some())
                .unwrap();
            f["digest"] = "sha256:XYZ".into()
        }),
        ("check", &check, "a byte count as text", |d| {
            d["summary"]["blob_bytes"] = "10275".into()
        }),
        ("check", &check, "an unknown action kind", |d| {
            let f = d["findings"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|f| f["repair"].get("actions").is_some())
                .unwrap();
            f["repair"]["actions"][0]["kind"] = "delete".into()
        }),
        ("check", &check, "an unknown key in an action", |d| {
            let f = d["findings"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|f| f["repair"].get("actions").is_some())
                .unwrap();
            f["repair"]["actions"][0]["status"] = "applied".into()
        }),
        (
            "check",
            &check,
            "evidence that is not a list of paths",
            |d| {
                let f = d["findings"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|f| f["repair"].get("actions").is_some())
                    .unwrap();
                f["repair"]["actions"][0]["evidence"] = "blobs/".into()
            },
        ),
        ("gc", &gc, "an unknown registry version", |d| {
            d["predictions"][0]["registry_version"] = "2.7".into()
        }),
        ("gc", &gc, "an abort without its reason", |d| {
            let p = d["predictions"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|p| !p["abort"].is_null())
                .unwrap();
            p["abort"].as_object_mut().unwrap().remove("reason");
        }),
        ("du", &du, "a renamed repository column", |d| {
            let r = d["repositories"][0].as_object_mut().unwrap();
            let v = r.remove("exclusive_bytes").unwrap();
            r.insert("exclusive".into(), v);
        }),
        ("du", &du, "a negative total", |d| {
            d["totals"]["blob_bytes"] = (-1).into()
        }),
    ];
    for (name, doc, what, edit) in edits {
        c.assert_valid(name, doc, name);
        let mut bad = doc.clone();
        edit(&mut bad);
        assert!(
            c.check(name, &bad).is_err(),
            "{name}: {what} passes the schema"
        );
    }
    let (_, err) = run_json(&["check", "/nonexistent/store"]);
    c.assert_valid("error", &err, "error");
    let mut bad = err.clone();
    bad["exit_code"] = 16.into();
    assert!(
        c.check("error", &bad).is_err(),
        "an operational error with a usage exit status passes"
    );
}

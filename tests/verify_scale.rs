//! Verification that fits big stores: deterministic shards, random shares, a time limit, and the
//! incremental state file, with the coverage the report states.

mod common;

use common::store::{fixture, regfsck, run_json, v2};
use regfsck::model::layout;
use serde_json::Value;
use std::fs;

fn hashed(doc: &Value) -> u64 {
    doc["summary"]["hashed_blobs"].as_u64().unwrap()
}

#[test]
fn shards_cover_everything_exactly_once() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    // Corrupt one blob: exactly one shard must find it.
    let store = regfsck::store::scan::locate(tmp.path()).unwrap();
    let inv = regfsck::store::scan::scan(&store, &regfsck::progress::Silent).unwrap();
    let victim = inv.blobs[3].digest.clone();
    let p = v2(tmp.path()).join(layout::blob_data(&victim));
    let mut data = fs::read(&p).unwrap();
    data[0] ^= 0xff;
    fs::write(&p, data).unwrap();
    let (mut total, mut found) = (0, 0);
    for n in 1..=3 {
        let (_, doc) = run_json(&["check", root, "--verify-subset", &format!("{n}/3")]);
        total += hashed(&doc);
        assert_eq!(doc["summary"]["fully_verified"], false);
        found += doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "blob-digest-mismatch")
            .count();
    }
    assert_eq!(total, inv.blobs.len() as u64);
    assert_eq!(found, 1);
    let (_, doc) = run_json(&["check", root, "--verify-subset", "100%"]);
    assert_eq!(hashed(&doc), inv.blobs.len() as u64);
    let (_, doc) = run_json(&["check", root, "--verify-subset", "0%"]);
    assert_eq!(hashed(&doc), 0);
    let out = regfsck()
        .args(["check", root, "--verify-subset", "4/3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
}

#[test]
fn max_duration_stops_hashing_and_says_so() {
    let tmp = fixture("sample");
    let (code, doc) = run_json(&[
        "check",
        tmp.path().to_str().unwrap(),
        "--max-duration",
        "0s",
    ]);
    assert_eq!(code, 0);
    assert_eq!(hashed(&doc), 0);
    assert_eq!(doc["summary"]["fully_verified"], false);
    let v = &doc["summary"]["verification"];
    assert_eq!(v["stopped"], "time-limit");
    assert_eq!(v["left_blobs"], doc["summary"]["blobs"]);
    assert_eq!(v["verified_blobs"], 0);
    let next = doc["next_steps"].to_string();
    assert!(
        next.contains("--max-duration limit with 27 blobs"),
        "{next}"
    );
    // It was never given, so the advice must not mention it.
    assert!(!next.contains("--no-verify"), "{next}");
    assert!(next.contains("--reverify-after"), "{next}");
}

/// Advice fits the run: the exact remaining `--verify-subset` commands, nothing once the state
/// file says every shard is done, and `--no-verify` only when it was given.
#[test]
fn verification_advice_fits_the_run() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let (_, doc) = run_json(&["check", root, "--verify-subset", "2/3"]);
    assert_eq!(
        doc["summary"]["verification"]["remaining_shards"],
        serde_json::json!(["1/3", "3/3"])
    );
    let next = doc["next_steps"].to_string();
    assert!(
        next.contains(&format!("`regfsck check {root} --verify-subset 1/3`")),
        "{next}"
    );
    assert!(
        next.contains(&format!("`regfsck check {root} --verify-subset 3/3`")),
        "{next}"
    );
    assert!(
        !next.contains("2/3`") && !next.contains("--no-verify"),
        "{next}"
    );

    // With a state file the shards accumulate; after the last one nothing is left to advise.
    let state = tmp.path().join("shards.state");
    let st = state.to_str().unwrap();
    for (n, left) in [
        ("1/3", vec!["2/3", "3/3"]),
        ("3/3", vec!["2/3"]),
        ("2/3", vec![]),
    ] {
        let (_, doc) = run_json(&["check", root, "--verify-subset", n, "--state", st]);
        let s = &doc["summary"];
        assert_eq!(
            s["verification"]["remaining_shards"]
                .as_array()
                .map(|a| a.len())
                .unwrap_or(0),
            left.len(),
            "{n}: {s:#}"
        );
        for k in &left {
            assert!(
                doc["next_steps"]
                    .to_string()
                    .contains(&format!("--verify-subset {k} --state {st}")),
                "{doc:#}"
            );
        }
        assert_eq!(s["fully_verified"], left.is_empty(), "{n}");
        if left.is_empty() {
            assert_eq!(s["verification"]["verified_blobs"], s["blobs"]);
            assert!(!doc["next_steps"].to_string().contains("verify"), "{doc:#}");
        }
    }
    // --reverify-after with everything verified recently: nothing hashed, coverage complete.
    let (_, doc) = run_json(&["check", root, "--reverify-after", "30d", "--state", st]);
    assert_eq!(hashed(&doc), 0);
    assert_eq!(doc["summary"]["fully_verified"], true, "{doc:#}");
    assert!(!doc["next_steps"].to_string().contains("hash"), "{doc:#}");

    let (_, doc) = run_json(&["check", root, "--no-verify"]);
    assert!(doc["next_steps"].to_string().contains("(--no-verify)"));
    assert_eq!(doc["summary"]["verification"]["no_verify"], true);
}

#[test]
fn state_into_a_missing_folder_is_an_error() {
    let tmp = fixture("minimal");
    let out = regfsck()
        .args([
            "check",
            tmp.path().to_str().unwrap(),
            "--reverify-after",
            "1d",
            "--state",
            tmp.path().join("no/such/dir/x.state").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn incremental_state_hashes_only_what_is_due() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let state = tmp.path().join("verify.state");
    let st = state.to_str().unwrap();
    let args = ["check", root, "--reverify-after", "24h", "--state", st];
    let (_, first) = run_json(&args);
    let n = first["summary"]["blobs"].as_u64().unwrap();
    assert_eq!(hashed(&first), n);
    assert_eq!(first["summary"]["coverage"]["blobs"].as_u64(), Some(n));
    let (_, second) = run_json(&args);
    assert_eq!(hashed(&second), 0, "nothing is due");
    assert_eq!(second["summary"]["coverage"]["blobs"].as_u64(), Some(n));
    // A changed blob is hashed again.
    let store = regfsck::store::scan::locate(tmp.path()).unwrap();
    let inv = regfsck::store::scan::scan(&store, &regfsck::progress::Silent).unwrap();
    let p = v2(tmp.path()).join(layout::blob_data(&inv.blobs[0].digest));
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    let (_, third) = run_json(&args);
    assert_eq!(hashed(&third), 1);
    // A damaged state file is ignored with a warning, and everything is hashed.
    fs::write(&state, b"not a state file").unwrap();
    let out = regfsck()
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hashed(&doc), n);
}

//! Issue #14: `--io-depth` (reads in flight, apart from `--jobs`). Every command that scans takes
//! it and refuses what cannot work with a clear usage error; and the depth changes how many reads
//! wait on the device at once, never what is found: the findings, usage, GC prediction, listing
//! and plans of a damaged store written by the real registry are identical at depth 1 (one read
//! at a time, the order-sensitive extreme) and at the default and the maximum depth.

mod common;

use common::damage::damaged_sample;
use common::store::{fixture, fixture_now, regfsck, run_json};
use serde_json::Value;

/// Each command that scans, with the arguments it needs besides the store.
fn scanning_commands() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("check", vec!["--no-verify"]),
        ("du", vec![]),
        ("gc", vec![]),
        ("repair", vec!["--no-verify"]),
        ("ls", vec![]),
        ("rm", vec!["hello:v1"]),
        ("prune", vec!["--untagged"]),
    ]
}

#[test]
fn io_depth_is_refused_outside_one_to_1024_on_every_scanning_command() {
    let tmp = fixture("minimal");
    let root = tmp.path().to_str().unwrap();
    for (cmd, extra) in scanning_commands() {
        for (bad, says) in [
            ("0", "0 reads in flight would read nothing"),
            ("1025", "more than 1024 reads in flight"),
            ("-3", "not a number of reads in flight"),
            ("many", "not a number of reads in flight"),
        ] {
            let out = regfsck()
                .args([cmd, root])
                .args(&extra)
                .arg(format!("--io-depth={bad}"))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(16), "{cmd} --io-depth {bad}: {err}");
            assert!(
                err.contains("--io-depth") && err.contains(says),
                "{cmd} --io-depth {bad}: {err}"
            );
            assert!(out.stdout.is_empty(), "{cmd} --io-depth {bad}");
        }
        // The refusal is a usage error in JSON too (regfsck.error/1).
        if cmd != "rm" && cmd != "prune" && cmd != "repair" {
            let mut args = vec![cmd, root];
            args.extend(&extra);
            args.extend(["--io-depth", "0"]);
            let (code, doc) = run_json(&args);
            assert_eq!((code, &doc["error"]["kind"]), (16, &Value::from("usage")));
        }
        // The bounds themselves are accepted.
        for good in ["1", "1024"] {
            let out = regfsck()
                .args([cmd, root])
                .args(&extra)
                .args(["--io-depth", good, "--quiet"])
                .output()
                .unwrap();
            assert_ne!(
                out.status.code(),
                Some(16),
                "{cmd} --io-depth {good}: {out:?}"
            );
        }
    }
}

/// Drop what measures the run rather than the store.
fn strip_timings(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.ends_with("_seconds") && k != "run" && k != "run_id");
            m.values_mut().for_each(strip_timings);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_timings),
        _ => {}
    }
}

#[test]
fn findings_are_the_same_at_every_depth() {
    let damaged = damaged_sample();
    let root = damaged.path().to_str().unwrap();
    let now = fixture_now(damaged.path()).to_string();
    let state = tempfile::tempdir().unwrap();
    let runs: Vec<Vec<&str>> = vec![
        // Hashing too: small blobs on the I/O workers, large ones on the hashing threads.
        vec!["check", root, "--now", &now, "--deep"],
        vec!["check", root, "--now", &now],
        vec!["du", root, "--now", &now],
        vec!["gc", root],
        vec!["gc", root, "--sweep", "-m", "--now", &now],
        vec!["ls", root],
        vec!["prune", root, "--untagged", "--now", &now],
        vec!["rm", root, "team/proj:v1", "--now", &now],
        vec!["repair", root, "--now", &now, "--lossy"],
    ];
    for args in runs {
        let at = |depth: &str| {
            let mut a = args.clone();
            a.extend(["--io-depth", depth]);
            let out = regfsck()
                .args(&a)
                .args(["--format", "json"])
                .env("XDG_STATE_HOME", state.path())
                .output()
                .unwrap();
            let mut doc: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{a:?}: no JSON ({e}): {out:?}"));
            assert!(doc.get("error").is_none(), "{a:?}: {doc:#}");
            strip_timings(&mut doc);
            (out.status.code(), doc)
        };
        let one = at("1");
        // Something was found or planned: equality of two empty documents would prove nothing.
        let text = one.1.to_string();
        assert!(
            ["findings", "actions", "predictions", "repositories"]
                .iter()
                .any(|k| text.contains(&format!("\"{k}\":[{{"))),
            "{args:?}: an empty document\n{text}"
        );
        for depth in ["64", "1024"] {
            assert_eq!(one, at(depth), "{args:?}: depth 1 vs {depth}");
        }
    }
}

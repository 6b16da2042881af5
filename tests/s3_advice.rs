//! Repair advice on object storage: each finding's "fix:" line names `regfsck repair` with the
//! run's own store arguments (`--config FILE`, or `s3://bucket/prefix --endpoint URL`), never a
//! bare `s3://…` that would reach AWS instead of the configured endpoint; and each printed
//! command, run as printed, reaches the same bucket and does what the line says (the findings it
//! names are gone, what it removed is in that bucket's quarantine).

mod common;

use common::s3::{self as s3, json, path_of, regfsck_s3, snapshot, Moto};

const ROOT: &str = "/reg";
const V2: &str = "reg/docker/registry/v2";
const CREDS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "regfsck-test"),
    ("AWS_SECRET_ACCESS_KEY", "regfsck-test"),
];

/// Break the pushed sample: a revision link naming another manifest, a stray object among the
/// blobs (each repaired without --lossy); the sample's abandoned upload is there already (its
/// stale multipart upload only `--lossy` aborts).
fn break_store(moto: &Moto, bucket: &str) {
    s3::wrong_revision_link(moto, bucket, V2);
    moto.put(bucket, &format!("{V2}/blobs/sha256/ab/stray.tmp"), b"junk");
}

/// The `regfsck repair …` commands of the fix lines of a human report, each with the codes of
/// the findings its line is about.
fn repair_commands(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut codes: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(fix) = t.strip_prefix("fix: ") {
            for (i, part) in fix.split('`').enumerate() {
                if i % 2 == 1 && part.starts_with("regfsck repair ") {
                    out.push((part.to_string(), codes.clone()));
                }
            }
            codes.clear();
        } else if let Some((code, _)) = t.split_once(": ") {
            if line.starts_with("  ") && !line.starts_with("    ") && !code.contains(' ') {
                codes.push(code.to_string());
            }
        }
    }
    out
}

/// Run a printed command (its words; none here needs quoting), with the pinned clock and, for a
/// `--lossy` one, the `--yes` a terminal would have asked for.
fn run_printed(cmd: &str, now: &str, env: &[(&str, &str)]) -> std::process::Output {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    assert_eq!(words[0], "regfsck", "{cmd}");
    let mut args: Vec<&str> = words[1..].to_vec();
    args.extend(["--now", now]);
    if words.contains(&"--lossy") {
        args.push("--yes");
    }
    regfsck_s3(&args, env)
}

fn codes_of(doc: &serde_json::Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn repair_advice_on_s3_names_the_runs_store_and_works_as_printed() {
    if !s3::available() {
        return;
    }
    let (moto, _, cfg_path, now) = s3::pushed("advice", ROOT);
    let cfg = path_of(&cfg_path);
    break_store(&moto, "advice");
    let multipart = moto.client("advice").list_multipart(V2).unwrap();
    assert_eq!(multipart.len(), 1, "the sample's abandoned upload");
    let url = "s3://advice/reg".to_string();
    let endpoint = moto.endpoint();
    let config_form: Vec<&str> = vec!["--config", cfg];
    let direct_form: Vec<&str> = vec![&url, "--endpoint", &endpoint];
    for (store, env) in [(config_form, &[][..]), (direct_form, &CREDS[..])] {
        let words = store.join(" ");
        let check = |format: &str| {
            let mut a = vec!["check"];
            a.extend(&store);
            a.extend(["--now", &now, "--no-verify", "--format", format]);
            regfsck_s3(&a, env)
        };
        let before = json(&check("json"));
        let text = String::from_utf8(check("human").stdout).unwrap();
        let cmds = repair_commands(&text);
        // Every finding repair acts on has its command, with this run's store words.
        let named: Vec<&str> = cmds
            .iter()
            .flat_map(|(_, codes)| codes.iter().map(String::as_str))
            .collect();
        for code in [
            "link-mismatch",
            "blob-stray-file",
            "upload-multipart-incomplete",
        ] {
            assert!(
                codes_of(&before).iter().any(|c| c == code),
                "{code} found: {:?}",
                codes_of(&before)
            );
            assert!(
                named.contains(&code),
                "{code} has a repair command:\n{text}"
            );
        }
        for (cmd, _) in &cmds {
            assert!(
                cmd.starts_with(&format!("regfsck repair {words} --apply")),
                "{cmd} names the store as the run did ({words})"
            );
        }
        // Never a bare `s3://…` without the endpoint it came with.
        assert!(
            !text.contains("regfsck repair s3://advice/reg --apply"),
            "{text}"
        );
        assert!(cmds.len() >= 3, "{cmds:?}");

        // Each command as printed: the findings of its line are gone afterwards, and what it
        // moved is in this bucket's quarantine.
        let mut runs = Vec::new();
        for (cmd, codes) in &cmds {
            let out = run_printed(cmd, &now, env);
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{cmd}: exit {:?}\n{}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let after = codes_of(&json(&check("json")));
            for code in codes {
                assert!(
                    !after.contains(code),
                    "{cmd} left {code}: {after:?}\n{}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            runs.push(cmd.clone());
        }
        let after = json(&check("json"));
        assert_eq!(after["summary"]["errors"], 0, "{after:#}");
        let quarantine = snapshot(&moto, "advice", "reg/regfsck-quarantine/");
        assert!(
            quarantine
                .keys()
                .any(|k| k.ends_with("/files/docker/registry/v2/blobs/sha256/ab/stray.tmp")),
            "{:#?}",
            quarantine.keys()
        );
        assert!(moto.client("advice").list_multipart(V2).unwrap().is_empty());

        // Back to the broken bucket for the other form: undo every run, newest first (the
        // aborted multipart upload cannot come back: start one at the same key again).
        let list = {
            let mut a = vec!["undo"];
            a.extend(&store);
            a.extend(["--list", "--format", "json"]);
            json(&regfsck_s3(&a, env))
        };
        for r in list["runs"].as_array().unwrap().iter().rev() {
            if r["state"] != "undone" {
                let mut a = vec!["undo"];
                a.extend(&store);
                a.extend(["--run", r["id"].as_str().unwrap()]);
                let out = regfsck_s3(&a, env);
                assert!(
                    matches!(out.status.code(), Some(0)),
                    "{out:?}\n{}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
        let (st, body) = s3::http(
            moto.port,
            "POST",
            &format!("/advice/{}?uploads", multipart[0].key),
            b"",
        );
        assert_eq!(st, 200, "{body}");
        assert_eq!(codes_of(&json(&check("json"))), codes_of(&before));
    }
}

//! `regfsck du` and `regfsck gc` on the real-registry stores: the JSON contracts, the
//! reconciliation of the numbers, and the pre-GC exit status.

mod common;

use common::store::{fixture, regfsck, run_json, v2};
use serde_json::Value;
use std::collections::BTreeSet;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn du_numbers_reconcile() {
    for name in ["sample", "minimal"] {
        let tmp = fixture(name);
        // A malformed data file and a stale upload's worth of bytes must be accounted too.
        std::fs::create_dir_all(v2(tmp.path()).join("blobs/sha256/zz/abcd")).unwrap();
        std::fs::write(v2(tmp.path()).join("blobs/sha256/zz/abcd/data"), b"12345").unwrap();
        let (code, doc) = run_json(&["du", tmp.path().to_str().unwrap()]);
        assert_eq!(code, 0);
        let t = &doc["totals"];
        let repos = doc["repositories"].as_array().unwrap();
        let exclusive: u64 = repos.iter().map(|r| u(&r["exclusive_bytes"])).sum();
        for r in repos {
            assert_eq!(
                u(&r["referenced_bytes"]),
                u(&r["exclusive_bytes"]) + u(&r["shared_bytes"])
            );
        }
        // Shared bytes counted once = referenced total minus every repository's exclusive bytes;
        // it must be non-negative and at most the sum of shared bytes.
        let shared_sum: u64 = repos.iter().map(|r| u(&r["shared_bytes"])).sum();
        let shared_once = u(&t["referenced_bytes"]) - exclusive;
        assert!(shared_once <= shared_sum);
        assert_eq!(
            u(&t["referenced_bytes"]) + u(&t["orphaned_bytes"]) + u(&t["malformed_bytes"]),
            u(&t["blob_bytes"])
        );
        assert_eq!(u(&t["malformed_bytes"]), 5);
        assert_eq!(u(&t["residue_bytes"]), 0);
        // blob_bytes is exactly the bytes of every data file below blobs/.
        let mut on_disk = 0;
        for e in walkdir::WalkDir::new(v2(tmp.path()).join("blobs")) {
            let e = e.unwrap();
            if e.file_type().is_file() && e.file_name() == "data" {
                on_disk += e.metadata().unwrap().len();
            }
        }
        assert_eq!(u(&t["blob_bytes"]), on_disk, "{name}");
    }
}

#[test]
fn du_counts_what_the_registry_never_cleans() {
    let tmp = fixture("sample");
    let v = v2(tmp.path());
    std::fs::write(v.join("repositories/team/proj/_manifests/tags/v1/current/link.01a2038b-a7e0-7487-8e9f-0123456789ab.tmp"), b"123").unwrap();
    let blob_dir = walkdir::WalkDir::new(v.join("blobs"))
        .min_depth(3)
        .max_depth(3)
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
        .into_path();
    std::fs::write(blob_dir.join("data.old"), b"1234567").unwrap();
    let ghost = regfsck::model::digest::Digest::of_bytes(b"ghost");
    let link = v.join(regfsck::model::layout::layer_link("team/proj", &ghost));
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::fs::write(&link, ghost.to_string()).unwrap();
    // Residue beside a link and inside a blob folder: only a deep scan lists those folders.
    let (_, fast) = run_json(&["du", tmp.path().to_str().unwrap()]);
    assert_eq!(u(&fast["totals"]["residue_bytes"]), 0);
    let (_, doc) = run_json(&["du", tmp.path().to_str().unwrap(), "--deep"]);
    assert_eq!(u(&doc["totals"]["residue_bytes"]), 10);
    assert_eq!(u(&doc["totals"]["dangling_links"]), 1);
    assert_eq!(u(&doc["totals"]["dangling_link_bytes"]), 71);
}

#[test]
fn du_shared_layers_and_filters() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let (_, doc) = run_json(&["du", root, "--sort", "name", "--repo", "team/*"]);
    let names: Vec<&str> = doc["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repo"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["team/proj", "team/proj/app"]);
    let (_, doc) = run_json(&["du", root]);
    let repo = |n: &str| {
        doc["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["repo"] == n)
            .unwrap()
            .clone()
    };
    // beta/app and team/proj/app share their layers: both report shared bytes.
    assert!(u(&repo("beta/app")["shared_bytes"]) > 0);
    assert!(u(&repo("team/proj/app")["shared_bytes"]) > 0);
    // The moved tag left an untagged revision whose blobs only --delete-untagged frees.
    assert!(u(&repo("library/alpine")["untagged_only_bytes"]) > 0);
    assert_eq!(u(&repo("library/alpine")["uploads"]), 1);
    let sorted: Vec<u64> = doc["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| u(&r["exclusive_bytes"]))
        .collect();
    assert!(
        sorted.windows(2).all(|w| w[0] >= w[1]),
        "sorted by exclusive bytes by default"
    );
    let out = regfsck()
        .args(["du", root, "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("repo,tags,"));
    assert_eq!(csv.lines().count(), 1 + 8);
}

#[test]
fn gc_json_contract_and_modes() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let (code, doc) = run_json(&["gc", root]);
    assert_eq!(
        code, 4,
        "2.8 --delete-untagged would break the multi-arch images"
    );
    let preds = doc["predictions"].as_array().unwrap();
    let modes: BTreeSet<(String, bool)> = preds
        .iter()
        .map(|p| {
            (
                p["registry_version"].as_str().unwrap().to_string(),
                p["delete_untagged"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(modes.len(), 4);
    for p in preds {
        for key in [
            "registry_version",
            "delete_untagged",
            "abort",
            "eligible_blobs",
            "eligible_manifests",
            "freed_bytes",
        ] {
            assert!(p.get(key).is_some(), "missing {key}");
        }
        assert!(p["abort"].is_null());
        for m in p["eligible_manifests"].as_array().unwrap() {
            assert!(m["repo"].is_string() && m["digest"].as_str().unwrap().starts_with("sha256:"));
        }
    }
    assert_eq!(doc["hazards"][0]["code"], "gc-would-delete-tagged");

    // Each run judged on its own: only 2.8's --delete-untagged is unsafe.
    let runs: Vec<(String, bool, bool)> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["registry_version"].as_str().unwrap().to_string(),
                r["delete_untagged"].as_bool().unwrap(),
                r["safe"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("2.8".to_string(), false, true),
            ("2.8".to_string(), true, false),
            ("3".to_string(), false, true),
            ("3".to_string(), true, true)
        ]
    );

    // With a version named, `regfsck gc` judges exactly the run of that command line, so that
    // `regfsck gc … && docker-registry garbage-collect …` works: plain 2.8 is safe here.
    let (code, doc) = run_json(&["gc", root, "--registry-version", "2.8"]);
    assert_eq!(doc["predictions"].as_array().unwrap().len(), 1);
    assert_eq!(doc["predictions"][0]["delete_untagged"], false);
    assert_eq!(code, 0, "{doc:#}");
    let (code, doc) = run_json(&["gc", root, "--registry-version", "2.8", "-m"]);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(doc["runs"][0]["safe"], false);
    let (code, doc) = run_json(&["gc", root, "--registry-version", "3", "--delete-untagged"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["predictions"].as_array().unwrap().len(), 1);
    // The human verdict concerns the run asked about, and names both binaries.
    let out = regfsck()
        .args(["gc", root, "--registry-version", "2.8"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("registry 2.8 garbage-collect: safe to run now"),
        "{text}"
    );
    assert!(
        text.contains("`docker-registry garbage-collect CONFIG.yml`"),
        "{text}"
    );
    assert!(!text.contains("Do not run"), "{text}");
    let out = regfsck()
        .args(["gc", root, "--registry-version", "2.8", "-m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("registry 2.8 garbage-collect --delete-untagged: NOT safe"),
        "{text}"
    );
    assert!(text.contains("nothing to repair"), "{text}");
    assert!(!text.contains("regfsck repair"), "{text}");
    let out = regfsck()
        .args(["gc", root, "--registry-version", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use 2.8 or 3"));
}

#[test]
fn gc_reports_aborts() {
    let tmp = fixture("minimal");
    let link = walkdir::WalkDir::new(v2(tmp.path()).join("repositories"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .find(|p| p.ends_with("link") && p.to_string_lossy().contains("revisions"))
        .unwrap();
    std::fs::write(&link, b"").unwrap();
    let (code, doc) = run_json(&[
        "gc",
        tmp.path().to_str().unwrap(),
        "--registry-version",
        "2.8",
    ]);
    assert_eq!(code, 4);
    let a = &doc["predictions"][0]["abort"];
    assert_eq!(
        a["reason"],
        "failed to mark: filesystem: filesystem: invalid checksum digest format"
    );
    assert!(a["path"]
        .as_str()
        .unwrap()
        .starts_with("repositories/hello/_manifests/revisions/"));
}

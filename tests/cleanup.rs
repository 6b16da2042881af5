//! Cleanup against the real registry: `ls` lists what `/v2/_catalog` and `tags/list` serve; `rm`
//! leaves exactly the remaining tags served; `gc --apply` leaves what the real non-dry-run
//! `garbage-collect` leaves (except the listed deliberate differences); `prune` selects exactly the
//! expected tags from known push times; every run is undone byte for byte; SIGKILL at every step
//! heals by a re-run or undo; `du` reconciles with the bytes reported; bad input touches nothing.

mod common;

use common::registry::{gc_run, registry_available, Registry};
use common::store::{expected, fingerprint, fixture, fixture_now, regfsck, v2};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const Q: &str = "regfsck-quarantine";

fn run(args: &[&str]) -> (i32, String, String) {
    let out = regfsck().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn run_json(args: &[&str]) -> (i32, Value) {
    let (code, out, err) = run(args);
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}\n{err}"));
    (code, doc)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// v2-relative paths of every file below `v2/<top>` whose path ends with `suffix`.
fn files(root: &Path, top: &str, suffix: &str) -> BTreeSet<String> {
    let base = v2(root);
    let mut out = BTreeSet::new();
    let mut stack = vec![base.join(top)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&base).unwrap().to_string_lossy().to_string();
                if rel.ends_with(suffix) {
                    out.insert(rel);
                }
            }
        }
    }
    out
}

fn blobs(root: &Path) -> BTreeSet<String> {
    files(root, "blobs", "/data")
}

fn links_in(root: &Path, part: &str) -> BTreeSet<String> {
    files(root, "repositories", "/link")
        .into_iter()
        .filter(|p| p.contains(part))
        .collect()
}

/// The store minus regfsck's own folder.
fn print(root: &Path) -> BTreeMap<String, String> {
    fingerprint(root, &[Q])
}

/// "Now" after everything in the store: a day after the newest mtime (real pushes included), so
/// that nothing is inside the grace window whatever the clock says (date-proof).
fn after_everything(root: &Path) -> i64 {
    let mut newest = fixture_now(root);
    let mut stack = vec![v2(root)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            newest = newest.max(m.mtime() + 86_400);
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    newest
}

fn set_mtime(p: &Path, t: i64) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64))
        .unwrap();
}

fn mtime(p: &Path) -> i64 {
    std::fs::symlink_metadata(p).unwrap().mtime()
}

fn undo(root: &Path, run_id: &str) {
    let (code, out, err) = run(&["undo", s(root), "--run", run_id]);
    assert_eq!(code, 0, "undo {run_id}: {out}{err}");
}

/// Pull every tag the registry lists, through skopeo (which verifies every digest).
fn pull_everything(reg: &Registry) -> usize {
    let mut n = 0;
    for repo in reg.catalog() {
        for t in reg.tags(&repo).unwrap_or_default() {
            reg.pull(&repo, &t)
                .unwrap_or_else(|e| panic!("{repo}:{t} does not pull: {e}"));
            n += 1;
        }
    }
    n
}

fn manifest(root: &Path, d: &str) -> Value {
    let hex = d.trim_start_matches("sha256:");
    let p = v2(root).join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn tag_digest(root: &Path, repo: &str, tag: &str) -> String {
    std::fs::read_to_string(v2(root).join(format!(
        "repositories/{repo}/_manifests/tags/{tag}/current/link"
    )))
    .unwrap()
}

// ------------------------------------------------------------------------------------------------

/// `ls` lists exactly the repositories `/v2/_catalog` lists (`in_catalog`: registry 2.8, whose
/// catalog marks a repository by `_layers`) and, per repository, exactly `tags/list`; including a
/// repository the catalog hides (no `_layers`) and repositories without tags (`mounted`, made by a
/// blob mount; `scratch/doomed`, whose only manifest was deleted through the API).
#[test]
fn ls_agrees_with_the_registry() {
    if !registry_available() {
        return;
    }
    let hidden = fixture("sample");
    // A repository whose _layers folder is gone: 2.8's catalog walk does not see it, its tags
    // are still listed by tags/list.
    std::fs::remove_dir_all(v2(hidden.path()).join("repositories/beta/app/_layers")).unwrap();
    let sample = fixture("sample");
    let minimal = fixture("minimal");
    for (root, what) in [
        (sample.path(), "sample"),
        (minimal.path(), "minimal"),
        (hidden.path(), "sample without beta/app/_layers"),
    ] {
        let (code, doc) = run_json(&["ls", s(root), "--format", "json"]);
        assert_eq!(code, 0, "{what}");
        assert_eq!(doc["schema"], "regfsck.ls/1");
        let reg = Registry::start(root);
        let catalog = reg.catalog();
        let listed: BTreeSet<String> = doc["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["in_catalog"] == true)
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, catalog, "{what}: in_catalog vs /v2/_catalog");
        for r in doc["repositories"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            let tags: BTreeSet<String> = r["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["tag"].as_str().unwrap().to_string())
                .collect();
            let served = reg.tags(name).unwrap_or_default();
            assert_eq!(tags, served, "{what}: {name}: tags vs tags/list");
            for t in r["tags"].as_array().unwrap() {
                let d = t["digest"].as_str().unwrap();
                assert!(reg.has_manifest(name, d), "{what}: {name}@{d} not served");
                assert!(t["size"].as_u64().unwrap() > 0 && t["pushed"].is_string());
            }
        }
        drop(reg);
        if root == hidden.path() {
            let beta = doc["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == "beta/app")
                .unwrap();
            assert_eq!(beta["in_catalog"], false, "{beta:#}");
            assert_eq!(beta["tags"][0]["tag"], "v1", "still served by tags/list");
        }
        if root == sample.path() {
            let by: BTreeMap<&str, &Value> = doc["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["name"].as_str().unwrap(), r))
                .collect();
            // Cross-checked against expected.json: kinds, platforms, untagged revisions.
            let multi = &by["multi/oci"]["tags"][0];
            assert_eq!(multi["kind"], "index");
            assert_eq!(multi["platforms"].as_array().unwrap().len(), 2, "{multi:#}");
            let ex = expected("sample");
            assert_eq!(
                by["library/alpine"]["untagged"], ex["untagged"]["library/alpine"],
                "untagged revisions"
            );
            assert!(by["mounted"]["tags"].as_array().unwrap().is_empty());
            assert!(by["scratch/doomed"]["tags"].as_array().unwrap().is_empty());
            assert_eq!(
                by["mounted"]["in_catalog"], true,
                "2.8 lists a mount-only repository"
            );
            assert_eq!(
                by["mounted"]["in_catalog_v3"], false,
                "3.x does not (no _manifests)"
            );
        }
    }
    // CSV: one row per tag and per untagged revision, plus the header.
    let (code, csv, _) = run(&["ls", s(sample.path()), "--format", "csv"]);
    assert_eq!(code, 0);
    assert_eq!(csv.lines().count(), 1 + 7 + 1, "{csv}");
    let (_, only, _) = run(&["ls", s(sample.path()), "--repo", "multi/*"]);
    assert!(
        only.contains("multi/oci") && !only.contains("alpine"),
        "{only}"
    );
}

/// `rm` of a tag, a digest and whole repositories (one with a repository nested below it, one
/// whose parent folder then holds nothing): the registry serves exactly the remaining tags, the
/// catalog no longer lists the removed repositories, every other tag pulls; a digest a kept
/// index needs is refused with the reason; undo restores the store byte for byte, mtimes too.
#[test]
fn rm_then_the_registry_serves_exactly_the_rest() {
    if !registry_available() {
        return;
    }
    let store = fixture("sample");
    let root = store.path();
    let before = print(root);
    let now = fixture_now(root).to_string();
    let ex = expected("sample");
    // A platform child of the tagged multi/oci index: refused, nothing written.
    let ix = ex["repositories"]["multi/oci"]["tags"]["latest"]
        .as_str()
        .unwrap();
    let child = manifest(root, ix)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, err) = run(&[
        "rm",
        s(root),
        &format!("multi/oci@{child}"),
        "--apply",
        "--now",
        &now,
    ]);
    assert_eq!(code, 16, "{out}{err}");
    assert!(err.contains("needed by") && err.contains(ix), "{err}");
    assert_eq!(print(root), before);
    assert!(!root.join(Q).join("lock").exists() || only_runs_empty(root));

    let beta = ex["repositories"]["beta/app"]["tags"]["v1"]
        .as_str()
        .unwrap();
    let alpine_link =
        v2(root).join("repositories/library/alpine/_manifests/tags/latest/current/link");
    let pushed = mtime(&alpine_link);
    let refs = [
        "library/alpine:3.19".to_string(),
        format!("beta/app@{beta}"),
        "team/proj".to_string(),
        "scratch/doomed".to_string(),
    ];
    let mut args = vec!["rm", s(root)];
    args.extend(refs.iter().map(String::as_str));
    args.extend(["--apply", "--now", &now, "--format", "json"]);
    let (code, doc) = run_json(&args);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["counts"]["failed"], 0);
    let paths: BTreeSet<&str> = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    // team/proj holds team/proj/app: only its own folders go. scratch/ holds nothing afterwards.
    assert!(
        paths.contains("repositories/team/proj/_manifests"),
        "{paths:?}"
    );
    assert!(!paths.contains("repositories/team/proj"), "{paths:?}");
    assert!(paths.contains("repositories/scratch"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("blobs/")),
        "rm never touches blobs"
    );
    {
        let reg = Registry::start(root);
        let catalog = reg.catalog();
        let want = common::store::sample_catalog_after_rm();
        assert_eq!(catalog, want, "catalog after rm");
        assert_eq!(
            reg.tags("library/alpine").unwrap(),
            BTreeSet::from(["latest".to_string()])
        );
        assert_eq!(reg.tags("beta/app").unwrap_or_default(), BTreeSet::new());
        assert!(!reg.has_manifest("beta/app", beta), "the revision is gone");
        assert!(reg.tags("team/proj").is_none_or(|t| t.is_empty()));
        assert_eq!(
            pull_everything(&reg),
            4,
            "latest, multi ×2, team/proj/app:v1"
        );
    }
    assert_eq!(
        mtime(&alpine_link),
        pushed,
        "untouched links keep their push time"
    );
    let id = doc["run"].as_str().unwrap().to_string();
    undo(root, &id);
    assert_eq!(print(root), before, "undo restores byte for byte");
    let three = v2(root).join("repositories/library/alpine/_manifests/tags/3.19/current/link");
    assert_eq!(
        mtime(&three),
        common::store::FIXTURE_MTIME,
        "a quarantined tag keeps its push time"
    );
}

fn only_runs_empty(root: &Path) -> bool {
    let (_, doc) = run_json(&["undo", s(root), "--list", "--format", "json"]);
    doc["runs"].as_array().unwrap().is_empty()
}

/// `gc --apply` leaves exactly what the real `garbage-collect` (non-dry-run, on a copy) leaves,
/// except where regfsck deliberately differs:
/// 1. with --delete-untagged, registry 2.8 deletes the untagged children of tagged indexes (and
///    the configs and layers only they reference); regfsck keeps them (the image would break);
/// 2. registry 2.8 leaves `_layers` links naming blobs it deleted (a later push then claims
///    "layer already exists" for a blob that is gone); regfsck removes them, as registry 3 does.
///
/// Every tag pulls afterwards, and undo restores the store byte for byte.
#[test]
fn gc_apply_matches_the_real_gc_except_the_deliberate_differences() {
    if !registry_available() {
        return;
    }
    for (name, m) in [
        ("sample", false),
        ("sample", true),
        ("minimal", false),
        ("minimal", true),
    ] {
        let what = format!("{name}{}", if m { " -m" } else { "" });
        let real = fixture(name);
        gc_run(real.path(), m);
        let ours = fixture(name);
        let root = ours.path();
        let before = print(root);
        let now = fixture_now(root).to_string();
        let mut args = vec!["gc", s(root), "--apply", "--now", &now, "--format", "json"];
        if m {
            args.push("--delete-untagged");
        }
        let (code, doc) = run_json(&args);
        assert_eq!(code, 0, "{what}: {doc:#}");
        assert_eq!(doc["counts"]["failed"], 0, "{what}");
        // Deliberate difference 1: the children of tagged indexes and what only they reference.
        let mut children = BTreeSet::new();
        let mut child_blobs = BTreeSet::new();
        for (repo, r) in expected(name)["repositories"].as_object().unwrap() {
            for (_, d) in r["tags"].as_object().unwrap() {
                let man = manifest(root, d.as_str().unwrap());
                for c in man["manifests"].as_array().into_iter().flatten() {
                    let cd = c["digest"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("sha256:")
                        .to_string();
                    children.insert(format!(
                        "repositories/{repo}/_manifests/revisions/sha256/{cd}/link"
                    ));
                    let cm = manifest(root, &format!("sha256:{cd}"));
                    for b in std::iter::once(&cm["config"]).chain(cm["layers"].as_array().unwrap())
                    {
                        let h = b["digest"]
                            .as_str()
                            .unwrap()
                            .trim_start_matches("sha256:")
                            .to_string();
                        child_blobs.insert(format!("blobs/sha256/{}/{h}/data", &h[..2]));
                    }
                }
            }
        }
        let (rb, ob) = (blobs(real.path()), blobs(root));
        let (rr, or) = (
            links_in(real.path(), "/_manifests/revisions/"),
            links_in(root, "/_manifests/revisions/"),
        );
        if m && name == "sample" {
            assert!(!children.is_empty());
            assert!(
                rr.is_subset(&or),
                "{what}: we keep every revision the real GC keeps"
            );
            let extra: BTreeSet<_> = or.difference(&rr).cloned().collect();
            assert_eq!(
                extra, children,
                "{what}: the only extra revisions are the index children"
            );
            assert!(rb.is_subset(&ob), "{what}");
            let extra: BTreeSet<_> = ob.difference(&rb).cloned().collect();
            assert!(
                !extra.is_empty() && extra.is_subset(&child_blobs),
                "{what}: {extra:?}"
            );
            for b in child_blobs.difference(&extra) {
                assert!(rb.contains(b), "{what}: {b} is shared, both keep it");
            }
        } else {
            assert_eq!(rb, ob, "{what}: blobs");
            assert_eq!(rr, or, "{what}: revisions");
        }
        assert_eq!(
            links_in(real.path(), "/_manifests/tags/"),
            links_in(root, "/_manifests/tags/"),
            "{what}: tag links"
        );
        // Deliberate difference 2: the layer links whose blob the real GC deleted.
        let (rl, ol) = (
            links_in(real.path(), "/_layers/"),
            links_in(root, "/_layers/"),
        );
        assert!(ol.is_subset(&rl), "{what}");
        let dangling: BTreeSet<String> = rl
            .iter()
            .filter(|l| {
                let hex = l.rsplit('/').nth(1).unwrap();
                !v2(real.path())
                    .join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
                    .exists()
            })
            .cloned()
            .collect();
        // (Where regfsck kept a child's blob, difference 1, its layer links stay too.)
        let dangling: BTreeSet<String> = dangling
            .into_iter()
            .filter(|l| {
                let hex = l.rsplit('/').nth(1).unwrap();
                !v2(root)
                    .join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
                    .exists()
            })
            .collect();
        let removed: BTreeSet<String> = rl.difference(&ol).cloned().collect();
        assert_eq!(
            removed, dangling,
            "{what}: exactly the layer links left dangling by the real GC"
        );
        if name == "sample" {
            assert!(!dangling.is_empty(), "{what}: the difference is exercised");
        }
        {
            let reg = Registry::start(root);
            assert!(pull_everything(&reg) > 0, "{what}");
        }
        let Some(id) = doc["run"].as_str() else {
            // Nothing to sweep (minimal): no run, nothing changed.
            assert!(
                doc["actions"].as_array().unwrap().is_empty(),
                "{what}: {doc:#}"
            );
            assert_eq!(print(root), before, "{what}");
            assert_eq!(
                rb,
                blobs(fixture(name).path()),
                "{what}: the real GC deleted nothing either"
            );
            continue;
        };
        undo(root, id);
        assert_eq!(print(root), before, "{what}: undo restores byte for byte");
    }
}

/// A store with multi-arch images, a moved tag, an untagged image, signature-like referrers and a
/// moved multi-arch tag, written by the real registry: `prune --untagged` then `gc --apply`
/// removes exactly the untagged images (the replaced index with its children, the old alpine,
/// the referrer of that old alpine), keeps the referrer of a kept index, every tag still pulls,
/// and `check` reports no error.
#[test]
fn prune_untagged_then_gc_on_a_store_the_registry_wrote() {
    if !registry_available() {
        return;
    }
    let store = fixture("sample");
    let root = store.path();
    let ex = expected("sample");
    let old_alpine = ex["untagged"]["library/alpine"][0]
        .as_str()
        .unwrap()
        .to_string();
    let old_index = ex["repositories"]["multi/oci"]["tags"]["latest"]
        .as_str()
        .unwrap()
        .to_string();
    let docker_index = ex["repositories"]["multi/docker"]["tags"]["latest"]
        .as_str()
        .unwrap()
        .to_string();
    let old_children: Vec<String> = manifest(root, &old_index)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["digest"].as_str().unwrap().to_string())
        .collect();
    let (kept_sig, gone_sig);
    {
        let reg = Registry::start(root);
        // Move multi/oci:latest onto a single-platform image: the index and its children are
        // now untagged.
        let dir = tempfile::tempdir().unwrap();
        reg.pull_to("library/alpine", "3.19", dir.path()).unwrap();
        reg.push(dir.path(), "multi/oci", "latest").unwrap();
        // Referrers (a cosign-like signature: artifactType, subject), pushed by digest.
        let sig = |repo: &str, subject: &str, subject_type: &str, payload: &[u8]| {
            let config = reg.put_blob(repo, b"{}");
            let layer = reg.put_blob(repo, payload);
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer, "size": payload.len()}],
                "subject": {"mediaType": subject_type, "digest": subject, "size": manifest_size(root, subject)}
            });
            let bytes = serde_json::to_vec(&body).unwrap();
            let d = format!(
                "sha256:{:x}",
                <sha2::Sha256 as sha2::Digest>::digest(&bytes)
            );
            reg.put_manifest(
                repo,
                &d,
                "application/vnd.oci.image.manifest.v1+json",
                &bytes,
            )
        };
        kept_sig = sig(
            "multi/docker",
            &docker_index,
            "application/vnd.docker.distribution.manifest.list.v2+json",
            b"signature of a kept index",
        );
        gone_sig = sig(
            "library/alpine",
            &old_alpine,
            "application/vnd.oci.image.manifest.v1+json",
            b"signature of an untagged image",
        );
        assert!(reg.has_manifest("multi/docker", &kept_sig));
    }
    let now = after_everything(root).to_string();
    let (code, doc) = run_json(&[
        "prune",
        s(root),
        "--untagged",
        "--apply",
        "--now",
        &now,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    let mut removed = BTreeSet::new();
    let mut kept = BTreeMap::new();
    for r in doc["repositories"].as_array().unwrap() {
        for rev in r["revisions"].as_array().unwrap() {
            let key = format!(
                "{}@{}",
                r["name"].as_str().unwrap(),
                rev["digest"].as_str().unwrap()
            );
            if rev["remove"] == true {
                removed.insert(key);
            } else {
                kept.insert(key, rev["rule"].as_str().unwrap().to_string());
            }
        }
    }
    let mut want: BTreeSet<String> = [
        format!("library/alpine@{old_alpine}"),
        format!("library/alpine@{gone_sig}"),
        format!("multi/oci@{old_index}"),
    ]
    .into_iter()
    .collect();
    want.extend(old_children.iter().map(|c| format!("multi/oci@{c}")));
    assert_eq!(removed, want, "{doc:#}");
    let why = &kept[&format!("multi/docker@{kept_sig}")];
    assert!(
        why.contains("referrer") && why.contains(&docker_index),
        "{why}"
    );
    let (code, gc) = run_json(&["gc", s(root), "--apply", "--now", &now, "--format", "json"]);
    assert_eq!(code, 0, "{gc:#}");
    assert!(gc["removed_bytes"].as_u64().unwrap() > 0, "{gc:#}");
    {
        let reg = Registry::start(root);
        assert_eq!(pull_everything(&reg), 7, "every tag pulls");
        reg.pull("multi/docker", &kept_sig)
            .expect("the kept signature pulls");
        assert!(!reg.has_manifest("library/alpine", &old_alpine));
        assert!(!reg.has_manifest("library/alpine", &gone_sig));
        assert!(!reg.has_manifest("multi/oci", &old_index));
    }
    let (code, out, err) = run(&["check", s(root), "--now", &now]);
    assert_eq!(code & 4, 0, "check finds an error:\n{out}{err}");
}

fn manifest_size(root: &Path, d: &str) -> u64 {
    let hex = d.trim_start_matches("sha256:");
    std::fs::metadata(v2(root).join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])))
        .unwrap()
        .len()
}

// ------------------------------------------------------------------------------------------------
// Retention.

const DAY: i64 = 86_400;

/// library/alpine with tags pushed through the real registry, each a distinct manifest (an
/// annotation), then their push times set: (tag, days ago). `latest` and `3.19` stay on the
/// sample's image; the sample's old `latest` stays untagged.
const AGES: [(&str, i64); 9] = [
    ("latest", 1),
    ("release-2", 5),
    ("dev-a", 10),
    ("v1.2", 20),
    ("3.19", 40),
    ("v1.1", 60),
    ("dev-b", 90),
    ("v1.0", 100),
    ("release-1", 200),
];

struct Retention {
    store: tempfile::TempDir,
    now: i64,
    cosign: String,
}

fn retention_store() -> Retention {
    let store = fixture("sample");
    let root = store.path();
    let image = tag_digest(root, "library/alpine", "latest");
    let base = manifest(root, &image);
    let cosign = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    {
        let reg = Registry::start(root);
        for (t, _) in AGES.iter().filter(|(t, _)| *t != "latest" && *t != "3.19") {
            let mut m = base.clone();
            m["annotations"] = serde_json::json!({ "tag": t });
            reg.put_manifest(
                "library/alpine",
                t,
                "application/vnd.oci.image.manifest.v1+json",
                &serde_json::to_vec(&m).unwrap(),
            );
        }
        let mut m = base.clone();
        m["annotations"] = serde_json::json!({ "signature-of": image });
        reg.put_manifest(
            "library/alpine",
            &cosign,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&m).unwrap(),
        );
    }
    let now = after_everything(root) + 400 * DAY;
    let tags = v2(root).join("repositories/library/alpine/_manifests/tags");
    for (t, days) in AGES {
        set_mtime(&tags.join(t).join("current/link"), now - days * DAY);
    }
    set_mtime(&tags.join(&cosign).join("current/link"), now - 300 * DAY);
    Retention { store, now, cosign }
}

/// The tags of library/alpine a prune preview removes.
fn removed_tags(r: &Retention, extra: &[&str]) -> BTreeSet<String> {
    let now = r.now.to_string();
    let mut args = vec![
        "prune",
        s(r.store.path()),
        "--repo",
        "library/alpine",
        "--now",
        &now,
        "--format",
        "json",
    ];
    args.extend(extra);
    let (code, doc) = run_json(&args);
    assert_eq!(code, 0, "{extra:?}: {doc:#}");
    assert_eq!(doc["applied"], false);
    let repos = doc["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 1, "--repo selects one repository");
    repos[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["remove"] == true)
        .map(|t| t["tag"].as_str().unwrap().to_string())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn retention_selects_exactly_the_expected_tags() {
    if !registry_available() {
        return;
    }
    let r = retention_store();
    let root = r.store.path();
    let before = print(root);
    assert_eq!(
        removed_tags(&r, &["--keep-last", "3"]),
        set(&["v1.2", "3.19", "v1.1", "dev-b", "v1.0", "release-1"]),
        "--keep-last 3 (the cosign tag of the kept image is protected)"
    );
    assert_eq!(
        removed_tags(&r, &["--older-than", "50d"]),
        set(&["v1.1", "dev-b", "v1.0", "release-1"])
    );
    assert_eq!(
        removed_tags(&r, &["--tags", "dev-.*", "--older-than", "5d"]),
        set(&["dev-a", "dev-b"])
    );
    assert_eq!(
        removed_tags(
            &r,
            &["--keep-tags", "latest|release-.*", "--older-than", "30d"]
        ),
        set(&["3.19", "v1.1", "dev-b", "v1.0"])
    );
    assert_eq!(
        removed_tags(&r, &["--tags", "v1\\..*"]),
        set(&["v1.0", "v1.1", "v1.2"])
    );
    // regfsck's YAML policy: first matching policy wins.
    let dir = tempfile::tempdir().unwrap();
    let yml = dir.path().join("retention.yml");
    std::fs::write(
        &yml,
        "policies:\n  - repositories: library/*\n    keep_last: 2\n    keep_tags: 'release-.*'\n  - repositories: '**'\n    older_than: 1d\n",
    )
    .unwrap();
    assert_eq!(
        removed_tags(&r, &["--policy", s(&yml)]),
        set(&["v1.2", "3.19", "v1.1", "dev-b", "v1.0"])
    );
    // An AWS ECR lifecycle policy, verbatim: images (a revision and its tags), rules by priority,
    // each image expired by at most the first rule whose tagging requirements it matches.
    let ecr = dir.path().join("ecr.json");
    std::fs::write(
        &ecr,
        r#"{"rules": [
  {"rulePriority": 1, "description": "one release", "selection": {"tagStatus": "tagged", "tagPrefixList": ["release"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
  {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["v1.*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 50}, "action": {"type": "expire"}},
  {"rulePriority": 3, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 4}, "action": {"type": "expire"}}
]}"#,
    )
    .unwrap();
    assert_eq!(
        removed_tags(&r, &["--policy", s(&ecr)]),
        set(&["release-1", "v1.0", "v1.1", "dev-b"]),
        "ECR: the image of latest+3.19 is the newest; the cosign tag's subject stays"
    );
    assert_eq!(print(root), before, "previews write nothing");

    // Apply one, then undo: push times (link mtimes) survive the quarantine and its undo.
    let now = r.now.to_string();
    let (code, doc) = run_json(&[
        "prune",
        s(root),
        "--older-than",
        "50d",
        "--apply",
        "--now",
        &now,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    {
        let reg = Registry::start(root);
        let mut want = set(&["latest", "release-2", "dev-a", "v1.2", "3.19"]);
        want.insert(r.cosign.clone());
        assert_eq!(reg.tags("library/alpine").unwrap(), want);
    }
    undo(root, doc["run"].as_str().unwrap());
    assert_eq!(print(root), before);
    let link = v2(root).join("repositories/library/alpine/_manifests/tags/release-1/current/link");
    assert_eq!(
        mtime(&link),
        r.now - 200 * DAY,
        "the push time came back with the tag"
    );

    // The same store copied without mtimes (every link at one instant): age rules refuse.
    let flat = fixture("sample");
    let (code, out, err) = run(&[
        "prune",
        s(flat.path()),
        "--older-than",
        "50d",
        "--now",
        &now,
    ]);
    assert_eq!(code, 8, "{out}{err}");
    assert!(
        err.contains("look destroyed") && err.contains("--force-ages"),
        "{err}"
    );
    let (code, _, err) = run(&["prune", s(flat.path()), "--keep-last", "1", "--now", &now]);
    assert_eq!(code, 8, "{err}");
    let (code, out, err) = run(&[
        "prune",
        s(flat.path()),
        "--older-than",
        "50d",
        "--force-ages",
        "--now",
        &now,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // --untagged does not rest on ages.
    let (code, _, err) = run(&["prune", s(flat.path()), "--untagged", "--now", &now]);
    assert_eq!(code, 0, "{err}");
}

// ------------------------------------------------------------------------------------------------

/// SIGKILL at every mutation point of `prune --apply` and `gc --apply`, then either the same
/// command again (it finishes the interrupted run and plans what is left) or undo of the
/// interrupted run: the store ends exactly as after an uninterrupted run, or as before.
#[test]
fn sigkill_during_prune_and_gc_then_rerun_or_undo_heals() {
    let cmds: [&[&str]; 2] = [
        &["prune", "--untagged", "--empty"],
        &["gc", "--delete-untagged"],
    ];
    for cmd in cmds {
        let clean = fixture("sample");
        let now = fixture_now(clean.path()).to_string();
        let with = |root: &Path| {
            let mut a: Vec<String> = vec![cmd[0].into(), s(root).into()];
            a.extend(cmd[1..].iter().map(|x| x.to_string()));
            a.extend(["--apply".into(), "--now".into(), now.clone()]);
            a
        };
        let original = print(clean.path());
        let done = fixture("sample");
        let (code, out, err) = run(&with(done.path())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>());
        assert_eq!(code, 0, "{out}{err}");
        let finished = print(done.path());
        assert_ne!(finished, original, "{cmd:?} changes something");
        let mut killed = 0;
        for k in 1.. {
            let store = fixture("sample");
            let root = store.path();
            let args = with(root);
            let out = regfsck()
                .args(&args)
                .env("REGFSCK_TEST_KILL_AT", k.to_string())
                .output()
                .unwrap();
            if out.status.code().is_some() {
                assert_eq!(out.status.code(), Some(0), "{cmd:?} k={k}");
                assert_eq!(print(root), finished);
                break;
            }
            killed += 1;
            let runs = {
                let (_, doc) = run_json(&["undo", s(root), "--list", "--format", "json"]);
                doc["runs"].as_array().unwrap().clone()
            };
            if k % 2 == 0 || runs.is_empty() {
                let (code, o, e) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
                assert_eq!(code, 0, "{cmd:?} k={k} re-run: {o}{e}");
                assert_eq!(print(root), finished, "{cmd:?} k={k}: re-run converges");
            } else {
                let id = runs[0]["id"].as_str().unwrap();
                undo(root, id);
                assert_eq!(print(root), original, "{cmd:?} k={k}: undo restores");
            }
        }
        assert!(killed >= 8, "{cmd:?}: only {killed} kill points exercised");
    }
}

/// `du` before and after reconciles with the bytes `gc --apply` reports; `--purge` deletes them
/// for good (and says so), `purge` empties quarantined runs, and undo then refuses truthfully.
#[test]
fn du_reconciles_and_purges_are_final() {
    let store = fixture("sample");
    let root = store.path();
    let now = fixture_now(root).to_string();
    let du = |root: &Path| -> u64 {
        let (_, doc) = run_json(&["du", s(root), "--format", "json"]);
        doc["totals"]["blob_bytes"].as_u64().unwrap()
    };
    let before = du(root);
    let (code, doc) = run_json(&[
        "gc",
        s(root),
        "--apply",
        "--delete-untagged",
        "--now",
        &now,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    let removed = doc["removed_bytes"].as_u64().unwrap();
    assert!(removed > 0);
    assert_eq!(
        doc["reclaimable_bytes"].as_u64().unwrap(),
        removed,
        "the plan said so"
    );
    assert_eq!(
        before - du(root),
        removed,
        "du reconciles with the bytes reported"
    );
    let held = |root: &Path| -> Value {
        let (_, doc) = run_json(&["undo", s(root), "--list", "--format", "json"]);
        doc["runs"][0].clone()
    };
    let run_info = held(root);
    assert!(
        run_info["bytes"].as_u64().unwrap() >= removed,
        "{run_info:#}"
    );
    assert_eq!(run_info["command"], "gc");
    // purge needs --yes without a terminal, then frees the quarantined bytes.
    let id = run_info["id"].as_str().unwrap().to_string();
    let (code, _, err) = run(&["purge", s(root), "--run", &id]);
    assert_eq!(code, 16, "{err}");
    assert!(
        err.contains("can no longer be undone") || err.contains("cannot be undone"),
        "{err}"
    );
    let (code, doc) = run_json(&["purge", s(root), "--all", "--yes", "--format", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["freed_bytes"], run_info["bytes"]);
    let after = held(root);
    assert_eq!(after["state"], "purged");
    assert_eq!(after["bytes"], 0);
    let (code, _, err) = run(&["undo", s(root), "--run", &id]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("was purged"), "{err}");

    // --purge on the run itself: freed at once, journalled, listed as purged.
    let other = fixture("sample");
    let r2 = other.path();
    let before = du(r2);
    let (code, _, err) = run(&["gc", s(r2), "--apply", "--purge", "--now", &now]);
    assert_eq!(code, 16, "--purge needs --yes off a terminal: {err}");
    let (code, doc) = run_json(&[
        "gc",
        s(r2),
        "--apply",
        "--purge",
        "--yes",
        "--now",
        &now,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["purged"], true);
    let removed = doc["removed_bytes"].as_u64().unwrap();
    assert_eq!(
        before - du(r2),
        removed,
        "du reconciles with the blob bytes removed"
    );
    assert!(
        doc["freed_bytes"].as_u64().unwrap() >= removed,
        "and the link files went too"
    );
    assert_eq!(held(r2)["state"], "purged");
    // Older-than selects by the run's start; nothing older than a year here.
    let (code, out, _) = run(&["purge", s(r2), "--older-than", "365d", "--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains("No quarantined run to purge"), "{out}");
}

/// Bad input is a usage error (exit 16) and touches nothing.
#[test]
fn bad_input_is_a_usage_error_and_touches_nothing() {
    let store = fixture("sample");
    let root = store.path();
    let before = fingerprint(root, &[]);
    let dir = tempfile::tempdir().unwrap();
    let unknown_field = dir.path().join("a.yml");
    std::fs::write(
        &unknown_field,
        "policies:\n  - repositories: '**'\n    keep_lsat: 3\n",
    )
    .unwrap();
    let unknown_type = dir.path().join("b.json");
    std::fs::write(&unknown_type, r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":3},"action":{"type":"expire"}}]}"#).unwrap();
    let negative = dir.path().join("c.yml");
    std::fs::write(
        &negative,
        "policies:\n  - repositories: '**'\n    keep_last: -1\n",
    )
    .unwrap();
    let bad_action = dir.path().join("d.json");
    std::fs::write(&bad_action, r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"delete"}}]}"#).unwrap();
    let r = s(root);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["rm", r, "nosuch/repo", "--apply"], "no repository"),
        (vec!["rm", r, "library/alpine:nosuchtag", "--apply"], "no tag"),
        (vec!["rm", r, "library/alpine@sha256:0000000000000000000000000000000000000000000000000000000000000000", "--apply"], "no revision"),
        (vec!["rm", r, "Bad_Name!", "--apply"], "not a reference"),
        (vec!["prune", r, "--tags", "((", "--apply"], "does not compile"),
        (vec!["prune", r, "--keep-tags", "[z-a]", "--older-than", "1d", "--apply"], "does not compile"),
        (vec!["prune", r, "--keep-last", "-1", "--apply"], "negative"),
        (vec!["prune", r, "--older-than", "soon", "--apply"], "--older-than"),
        (vec!["prune", r, "--policy", s(&unknown_field), "--apply"], "unknown field"),
        (vec!["prune", r, "--policy", s(&unknown_type), "--apply"], "records no pulls"),
        (vec!["prune", r, "--policy", s(&negative), "--apply"], "negative"),
        (vec!["prune", r, "--policy", s(&bad_action), "--apply"], "not supported"),
        (vec!["prune", r, "--repo", "", "--untagged", "--apply"], "glob"),
        (vec!["prune", r, "--apply"], ""),
        (vec!["gc", r, "--purge"], ""),
    ];
    for (args, want) in cases {
        let (code, out, err) = run(&args);
        assert_eq!(code, 16, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(fingerprint(root, &[]), before, "{args:?} touched the store");
    }
    // JSON callers get the error document.
    let (code, doc) = run_json(&["rm", r, "nosuch/repo", "--format", "json"]);
    assert_eq!((code, doc["error"]["kind"].as_str()), (16, Some("usage")));
}

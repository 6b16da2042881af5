//! ls and the cleanup commands on object storage: the `sample` store pushed through the real
//! registry's s3 driver into a local S3 server (moto); `ls` against the filesystem fixture and the
//! listing's LastModified; `rm`, `prune` (a policy file) and `gc --apply` executed through the
//! bucket (server-side copy into the quarantine, journal in the bucket), judged by what the real
//! registry serves afterwards (skopeo pulls, manifest GETs) and by the real
//! `garbage-collect --dry-run` on the bucket; undo restores every key byte for byte; one SIGKILL
//! sample during `gc --apply` is healed by a re-run; `purge` deletes a run's quarantined keys; the
//! live guard refuses while uploads are recent.

mod common;

use common::contracts::Contracts;
use common::registry::gc_dry_run_config;
use common::s3::{
    self as s3, eligible, json, listing, ok, path_of, regfsck_s3, runs, serve, snapshot,
};
use common::store::{fixture, run_json};
use std::collections::{BTreeMap, BTreeSet};

const ROOT: &str = "/reg";
const V2: &str = "reg/docker/registry/v2";

/// Key -> (size, ETag) below `docker/`: what the registry and its GC see.
type Objects = BTreeMap<String, (u64, String)>;

fn objects(moto: &s3::Moto, bucket: &str) -> Objects {
    listing(moto, bucket, "reg/docker/")
}

fn undo(cfg: &str, run: &str) {
    ok(&regfsck_s3(&["undo", "--config", cfg, "--run", run], &[]));
}

/// `before` restored: the same keys with the same sizes and content, and the same ETags, except
/// that a blob the registry wrote as a multipart upload (ETag `…-N`) comes back from its
/// server-side copy with the MD5 of its content as its ETag (S3 gives a copied object a
/// single-part ETag; the bytes are the same).
fn assert_restored(moto: &s3::Moto, bucket: &str, before: &Objects, bodies: &Snapshot, what: &str) {
    let now = objects(moto, bucket);
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "{what}: keys"
    );
    let contents = snapshot(moto, bucket, "reg/docker/");
    for (k, (size, etag)) in before {
        let (s, e) = &now[k];
        assert_eq!(s, size, "{what}: size of {k}");
        assert_eq!(contents[k], bodies[k], "{what}: content of {k}");
        if etag != e {
            assert!(etag.contains('-'), "{what}: ETag of {k}: {etag} -> {e}");
            let md5 = format!("\"{:x}\"", <md5::Md5 as md5::Digest>::digest(&contents[k]));
            assert_eq!(
                e.trim_matches('"'),
                md5.trim_matches('"'),
                "{what}: {k} holds its bytes"
            );
        }
    }
}

type Snapshot = BTreeMap<String, Vec<u8>>;

/// A manifest GET the registry answers 404 MANIFEST_UNKNOWN.
fn unknown(reg: &common::registry::Registry, repo: &str, reference: &str) -> bool {
    reg.get_manifest(repo, reference).is_some_and(|a| {
        a.status == 404 && String::from_utf8_lossy(&a.body).contains("MANIFEST_UNKNOWN")
    })
}

/// The listing's LastModified of `key`, as RFC 3339.
fn last_modified(moto: &s3::Moto, bucket: &str, key: &str) -> String {
    let page = moto
        .client(bucket)
        .list_page(key, None, None, false, 1)
        .unwrap();
    let o = page.objects.iter().find(|o| o.key == key).unwrap();
    regfsck::model::timefmt::format_rfc3339(o.mtime)
}

/// ls on the bucket lists what ls lists on the filesystem fixture (the same images), and dates
/// each tag by its `current/link`'s LastModified; then `rm` removes exactly what it names (the
/// registry answers MANIFEST_UNKNOWN for them and serves the rest), the real GC's dry-run agrees
/// with regfsck's prediction on what is left, the advice names the store as the run did, undo
/// restores every key and the tags pull again; `purge` deletes a run's quarantined keys for good.
#[test]
fn ls_rm_undo_and_purge_on_s3() {
    if !s3::available() {
        return;
    }
    let (moto, ex, cfg_path, now) = s3::pushed("rmb", ROOT);
    let cfg = path_of(&cfg_path);
    let contracts = Contracts::load();

    // ls: the filesystem fixture's listing, but for the push times (each medium's own).
    let out = regfsck_s3(&["ls", "--config", cfg, "--format", "json"], &[]);
    let mut on_s3 = json(&out);
    contracts.assert_valid("ls", &on_s3, "ls on S3");
    let fs = fixture("sample");
    let (code, mut on_fs) = run_json(&["ls", path_of(fs.path())]);
    assert_eq!(code, 0);
    let alpine = on_s3["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "library/alpine")
        .unwrap()
        .clone();
    let latest = alpine["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "latest")
        .unwrap();
    assert_eq!(
        latest["pushed"].as_str().unwrap(),
        last_modified(
            &moto,
            "rmb",
            &format!("{V2}/repositories/library/alpine/_manifests/tags/latest/current/link")
        ),
        "a tag's push time is its current link's LastModified: {latest:#}"
    );
    assert_eq!(latest["pushed_from"], "current-link");
    for doc in [&mut on_s3, &mut on_fs] {
        doc.as_object_mut().unwrap().remove("root");
        for r in doc["repositories"].as_array_mut().unwrap() {
            for t in r["tags"].as_array_mut().unwrap() {
                let t = t.as_object_mut().unwrap();
                assert!(t.remove("pushed").is_some(), "every tag has a push time");
                t.remove("pushed_from");
            }
        }
    }
    // What only a filesystem has: scratch/doomed keeps an empty `_manifests/` folder there (its
    // only manifest was deleted through the API), which registry 3's catalog counts; in a
    // bucket that folder went with its last key.
    let doomed = |doc: &mut serde_json::Value| {
        let r = doc["repositories"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["name"] == "scratch/doomed")
            .unwrap();
        r.as_object_mut().unwrap().remove("in_catalog_v3").unwrap()
    };
    assert_eq!(doomed(&mut on_s3), false);
    assert_eq!(doomed(&mut on_fs), true);
    assert_eq!(on_s3, on_fs, "ls on S3 vs the filesystem fixture");
    let platforms = on_fs.to_string();
    assert!(
        platforms.contains("linux/amd64") && platforms.contains("created"),
        "manifest and config fields are read: {platforms}"
    );

    // rm, as the filesystem test does.
    let pristine = objects(&moto, "rmb");
    let pristine_bodies = snapshot(&moto, "rmb", "reg/docker/");
    let beta = ex["repositories"]["beta/app"]["tags"]["v1"]
        .as_str()
        .unwrap()
        .to_string();
    let beta_ref = format!("beta/app@{beta}");
    let refs = [
        "library/alpine:3.19",
        beta_ref.as_str(),
        "team/proj",
        "scratch/doomed",
    ];
    let mut args = vec!["rm", "--config", cfg];
    args.extend(refs);
    args.extend(["--apply", "--now", &now]);
    let text = ok(&regfsck_s3(&args, &[]));
    let listed = runs(cfg);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["command"], "rm");
    let run = listed[0]["id"].as_str().unwrap().to_string();
    for advice in [
        format!("`regfsck undo --config {cfg} --run {run}`"),
        format!("`regfsck purge --config {cfg} --run {run}`"),
        format!("`regfsck gc --config {cfg} --apply`"),
    ] {
        assert!(text.contains(&advice), "{advice} in:\n{text}");
    }
    let after = objects(&moto, "rmb");
    let gone: Vec<&String> = pristine
        .keys()
        .filter(|k| !after.contains_key(*k))
        .collect();
    assert!(!gone.is_empty());
    assert!(
        gone.iter().all(|k| k.contains("/repositories/")),
        "rm never touches blobs: {gone:#?}"
    );
    assert!(
        after.keys().all(|k| pristine.contains_key(k)),
        "rm writes nothing in the store"
    );
    // Each removed key sits in the run's quarantine, with its bytes.
    let q = snapshot(
        &moto,
        "rmb",
        &format!("reg/regfsck-quarantine/{run}/files/"),
    );
    for k in &gone {
        let qk = format!("reg/regfsck-quarantine/{run}/files/{}", &k["reg/".len()..]);
        assert_eq!(q.get(&qk), pristine_bodies.get(*k), "{qk}");
    }
    {
        let reg = serve(&cfg_path);
        let want = common::store::sample_catalog_after_rm();
        assert_eq!(reg.catalog(), want, "catalog after rm");
        assert!(unknown(&reg, "library/alpine", "3.19"));
        assert!(unknown(&reg, "beta/app", "v1"));
        assert!(unknown(&reg, "beta/app", &beta));
        assert!(unknown(&reg, "team/proj", "v1"));
        for (repo, tag) in [
            ("library/alpine", "latest"),
            ("multi/docker", "latest"),
            ("multi/oci", "latest"),
            ("team/proj/app", "v1"),
        ] {
            reg.pull(repo, tag)
                .unwrap_or_else(|e| panic!("{repo}:{tag} after rm: {e}"));
        }
    }
    // What the real GC would now delete is what regfsck predicts on the bucket.
    let out = regfsck_s3(&["gc", "--config", cfg, "--format", "json"], &[]);
    let predicted = json(&out);
    for m in [false, true] {
        let real = gc_dry_run_config(&cfg_path, m);
        assert!(real.aborted.is_none(), "{:?}", real.aborted);
        assert_eq!(
            eligible(&predicted, m),
            (real.eligible_blobs.clone(), real.eligible_manifests.clone()),
            "-m={m}: the real GC on the bucket after rm"
        );
        if !m {
            assert!(!real.eligible_blobs.is_empty(), "rm left blobs to collect");
        }
    }

    // Undo: every key as it was; the removed tags pull again.
    undo(cfg, &run);
    assert_restored(&moto, "rmb", &pristine, &pristine_bodies, "undo of rm");
    assert_eq!(
        pristine,
        objects(&moto, "rmb"),
        "links come back with their ETags"
    );
    {
        let reg = serve(&cfg_path);
        for (repo, tag) in [
            ("library/alpine", "3.19"),
            ("beta/app", "v1"),
            ("team/proj", "v1"),
        ] {
            reg.pull(repo, tag)
                .unwrap_or_else(|e| panic!("{repo}:{tag} after undo: {e}"));
        }
    }

    // purge: a second rm, then its quarantined keys deleted for good (confirmed); its plan and
    // journal stay, undo --list says "purged", undo refuses.
    let doc = json(&regfsck_s3(
        &[
            "rm",
            "--config",
            cfg,
            "team/proj",
            "--apply",
            "--now",
            &now,
            "--format",
            "json",
        ],
        &[],
    ));
    contracts.assert_valid("cleanup", &doc, "rm --apply on S3");
    let second = doc["run"].as_str().unwrap().to_string();
    let files = |run: &str| {
        snapshot(
            &moto,
            "rmb",
            &format!("reg/regfsck-quarantine/{run}/files/"),
        )
    };
    let held = files(&second);
    assert!(!held.is_empty());
    let out = regfsck_s3(&["purge", "--config", cfg, "--run", &second], &[]);
    assert_eq!(out.status.code(), Some(16), "not confirmed off a terminal");
    assert_eq!(files(&second), held, "an unconfirmed purge deletes nothing");
    let out = regfsck_s3(
        &[
            "purge", "--config", cfg, "--run", &second, "--yes", "--format", "json",
        ],
        &[],
    );
    let doc = json(&out);
    contracts.assert_valid("purge", &doc, "purge on S3");
    let bytes: u64 = held.values().map(|b| b.len() as u64).sum();
    assert_eq!(doc["freed_bytes"], bytes, "{doc:#}");
    assert!(
        files(&second).is_empty(),
        "the quarantined keys are deleted"
    );
    assert!(!snapshot(
        &moto,
        "rmb",
        &format!("reg/regfsck-quarantine/{second}/journal/")
    )
    .is_empty());
    let states: BTreeMap<String, String> = runs(cfg)
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states[&run], "undone");
    assert_eq!(states[&second], "purged");
    let out = regfsck_s3(&["undo", "--config", cfg, "--run", &second], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("purged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// prune by a policy file (ages from the listing's LastModified), then `gc --sweep` shows and
/// `gc --apply` removes exactly the blobs the real GC's dry-run names (one SIGKILL sample in
/// between, healed by the re-run); every tag still pulls, the pruned ones answer
/// MANIFEST_UNKNOWN; undo of both runs restores the bucket; and while uploads are recent the
/// apply refuses.
#[test]
fn prune_and_gc_apply_on_s3_agree_with_the_real_gc_and_undo() {
    if !s3::available() {
        return;
    }
    let (moto, ex, cfg_path, now) = s3::pushed("gcb", ROOT);
    let cfg = path_of(&cfg_path);
    let contracts = Contracts::load();
    let pristine = objects(&moto, "gcb");
    let pristine_bodies = snapshot(&moto, "gcb", "reg/docker/");
    let old_alpine = ex["untagged"]["library/alpine"][0]
        .as_str()
        .unwrap()
        .to_string();

    // The live guard: as of the push, the sample's abandoned upload folder is recent. (Its
    // multipart upload cannot show the other half of the guard here: moto reports every
    // upload as initiated 2010-11-10T20:48:33Z; `recent_uploads`' unit test covers it.)
    let push_time = moto.now("gcb").to_string();
    let out = regfsck_s3(
        &[
            "prune",
            "--config",
            cfg,
            "--untagged",
            "--apply",
            "--now",
            &push_time,
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("looks live")
            && err.contains("upload-recent: repositories/library/alpine/_uploads/"),
        "{err}"
    );
    assert_eq!(
        objects(&moto, "gcb"),
        pristine,
        "a refused apply changes nothing"
    );

    // An ECR lifecycle policy, previewed: untagged images pushed more than a day before `now`
    // (the sample's replaced alpine; the untagged children of tagged indexes are protected).
    let dir = tempfile::tempdir().unwrap();
    let ecr = dir.path().join("ecr.json");
    std::fs::write(
        &ecr,
        r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]}"#,
    )
    .unwrap();
    let later = (now.parse::<i64>().unwrap() + 3600).to_string();
    let doc = json(&regfsck_s3(
        &[
            "prune",
            "--config",
            cfg,
            "--policy",
            path_of(&ecr),
            "--force-ages",
            "--now",
            &later,
            "--format",
            "json",
        ],
        &[],
    ));
    let removed = |doc: &serde_json::Value| -> BTreeSet<String> {
        doc["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                let name = r["name"].as_str().unwrap().to_string();
                let tags = r["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| t["remove"] == true)
                    .map(|t| format!("{name}:{}", t["tag"].as_str().unwrap()))
                    .collect::<Vec<_>>();
                let revs = r["revisions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|v| v["remove"] == true)
                    .map(|v| format!("{name}@{}", v["digest"].as_str().unwrap()))
                    .collect::<Vec<_>>();
                tags.into_iter().chain(revs)
            })
            .collect()
    };
    assert_eq!(
        removed(&doc),
        BTreeSet::from([format!("library/alpine@{old_alpine}")]),
        "{doc:#}"
    );
    assert_eq!(objects(&moto, "gcb"), pristine, "a preview changes nothing");

    // regfsck's policy file: in library/*, every tag but `latest` pushed over an hour ago goes,
    // and what no staying tag reaches.
    let policy = dir.path().join("policy.yml");
    std::fs::write(
        &policy,
        "policies:\n  - repositories: [\"library/*\"]\n    keep_tags: latest\n    older_than: 1h\n    untagged: true\n",
    )
    .unwrap();
    let doc = json(&regfsck_s3(
        &[
            "prune",
            "--config",
            cfg,
            "--policy",
            path_of(&policy),
            "--force-ages",
            "--apply",
            "--now",
            &now,
            "--format",
            "json",
        ],
        &[],
    ));
    contracts.assert_valid("cleanup", &doc, "prune --policy --apply on S3");
    assert_eq!(
        removed(&doc),
        BTreeSet::from([
            "library/alpine:3.19".to_string(),
            format!("library/alpine@{old_alpine}"),
        ]),
        "{doc:#}"
    );
    let prune_run = doc["run"].as_str().unwrap().to_string();
    let pruned = objects(&moto, "gcb");
    let pruned_bodies = snapshot(&moto, "gcb", "reg/docker/");

    // gc: the real GC's dry-run on the pruned bucket, regfsck's sweep plan, then the apply
    // (killed once mid-run, then re-run).
    let real = gc_dry_run_config(&cfg_path, false);
    assert!(real.aborted.is_none(), "{:?}", real.aborted);
    assert!(!real.eligible_blobs.is_empty());
    let blob_key = |d: &str| {
        let hex = d.trim_start_matches("sha256:");
        format!("{V2}/blobs/sha256/{}/{hex}/data", &hex[..2])
    };
    let want: BTreeSet<String> = real.eligible_blobs.iter().map(|d| blob_key(d)).collect();
    let sweep = json(&regfsck_s3(
        &[
            "gc", "--config", cfg, "--sweep", "--now", &now, "--format", "json",
        ],
        &[],
    ));
    let swept: BTreeSet<String> = sweep["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["code"] == "gc-blob")
        .map(|a| format!("{V2}/{}/data", a["path"].as_str().unwrap()))
        .collect();
    assert_eq!(swept, want, "gc --sweep plans what the real GC deletes");
    assert_eq!(objects(&moto, "gcb"), pruned, "--sweep changes nothing");
    let apply = ["gc", "--config", cfg, "--apply", "--now", &now];
    let out = regfsck_s3(&apply, &[("REGFSCK_TEST_KILL_AT", "5")]);
    assert_eq!(
        out.status.code(),
        None,
        "killed at its fifth mutation point"
    );
    assert!(runs(cfg).iter().any(|r| r["state"] == "incomplete"));
    let text = ok(&regfsck_s3(&apply, &[]));
    assert!(text.contains("Resumed interrupted run"), "{text}");
    let done = objects(&moto, "gcb");
    let gone: BTreeSet<String> = pruned
        .keys()
        .filter(|k| !done.contains_key(*k))
        .filter(|k| k.contains("/blobs/"))
        .cloned()
        .collect();
    assert_eq!(
        gone, want,
        "gc --apply removes exactly what the real GC deletes"
    );
    assert!(done.keys().all(|k| pruned.contains_key(k)));
    let real_after = gc_dry_run_config(&cfg_path, false);
    assert!(real_after.aborted.is_none(), "{:?}", real_after.aborted);
    assert!(
        real_after.eligible_blobs.is_empty(),
        "nothing left for the real GC: {:?}",
        real_after.eligible_blobs
    );
    {
        let reg = serve(&cfg_path);
        assert!(unknown(&reg, "library/alpine", "3.19"));
        assert!(unknown(&reg, "library/alpine", &old_alpine));
        for (repo, tags) in ex["repositories"].as_object().unwrap() {
            for tag in tags["tags"].as_object().unwrap().keys() {
                if (repo.as_str(), tag.as_str()) != ("library/alpine", "3.19") {
                    reg.pull(repo, tag)
                        .unwrap_or_else(|e| panic!("{repo}:{tag} after gc --apply: {e}"));
                }
            }
        }
    }
    let listed = runs(cfg);
    assert!(
        listed.iter().all(|r| r["state"] == "complete"),
        "{listed:#?}"
    );

    // Undo, newest first: the pruned bucket, then the pristine one; the pruned tag pulls again.
    for r in listed
        .iter()
        .rev()
        .filter(|r| r["id"] != prune_run.as_str())
    {
        undo(cfg, r["id"].as_str().unwrap());
    }
    assert_restored(&moto, "gcb", &pruned, &pruned_bodies, "undo of gc --apply");
    undo(cfg, &prune_run);
    assert_restored(&moto, "gcb", &pristine, &pristine_bodies, "undo of prune");
    {
        let reg = serve(&cfg_path);
        reg.pull("library/alpine", "3.19").unwrap();
        reg.pull("library/alpine", &old_alpine).unwrap();
    }
}

//! Repair and undo on object storage: the `sample` store pushed through the real registry's s3
//! driver into a local S3 server (moto), broken one thing at a time, repaired through the
//! bucket (quarantine = server-side copy then delete, journal in the bucket); the real
//! `garbage-collect --dry-run` on the bucket and pulls through the real registry (skopeo) show
//! the result; undo restores the bucket byte for byte; a SIGKILL at any step is healed by a
//! re-run or an undo; the live guard refuses while uploads are recent.

mod common;

use common::contracts::Contracts;
use common::kill_points;
use common::registry::gc_dry_run_config;
use common::s3::{self as s3, diff, json, ok, path_of, regfsck_s3, runs, serve, snapshot, Moto};
use std::collections::BTreeMap;

const ROOT: &str = "/reg";
const V2: &str = "reg/docker/registry/v2";

type Snapshot = BTreeMap<String, Vec<u8>>;

/// The store's objects (below `docker/`): what the registry and its GC see.
fn store_objects(moto: &Moto, bucket: &str) -> Snapshot {
    snapshot(moto, bucket, "reg/docker/")
}

/// A repair that ran: exit 0 (nothing to correct) or 1 (errors corrected, none left).
fn repaired(out: &std::process::Output) {
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Undo every run that is not undone yet, newest first.
fn undo_all(cfg: &str) {
    for r in runs(cfg).iter().rev() {
        if r["state"] != "undone" {
            let id = r["id"].as_str().unwrap();
            ok(&regfsck_s3(&["undo", "--config", cfg, "--run", id], &[]));
        }
    }
}

/// Break the pushed sample: a revision link naming another manifest (same length: only its
/// content tells), a tag whose `current` link is gone, a stray file among the blobs written as
/// a multipart upload (as the driver writes blob data: its `-1` ETag is not its quarantined
/// copy's, so undo must compare content).
fn break_store(moto: &Moto, bucket: &str) {
    s3::wrong_revision_link(moto, bucket, V2);
    moto.client(bucket)
        .delete(&format!(
            "{V2}/repositories/beta/app/_manifests/tags/v1/current/link"
        ))
        .unwrap();
    let stray = format!("{V2}/blobs/sha256/ab/stray.tmp");
    s3::put_multipart(moto.port, bucket, &stray, b"junk");
    let page = moto
        .client(bucket)
        .list_page(&stray, None, None, false, 1)
        .unwrap();
    assert!(page.objects[0].etag.ends_with("-1"), "{:?}", page.objects);
}

#[test]
fn repair_on_s3_agrees_with_the_real_gc_and_pulls_and_undo_restores_byte_for_byte() {
    if !s3::available() {
        return;
    }
    let (moto, _, cfg_path, now) = s3::pushed("fix", ROOT);
    let cfg = path_of(&cfg_path);
    let pristine = store_objects(&moto, "fix");
    let gc_pristine = [false, true].map(|m| gc_dry_run_config(&cfg_path, m));
    assert!(
        !gc_pristine[0].eligible_blobs.is_empty() && !gc_pristine[1].eligible_manifests.is_empty()
    );
    let mp = |moto: &Moto| moto.client("fix").list_multipart(V2).unwrap().len();
    assert_eq!(mp(&moto), 1, "the sample's abandoned upload");

    break_store(&moto, "fix");
    let broken = store_objects(&moto, "fix");
    {
        let reg = serve(&cfg_path);
        assert!(reg.pull("beta/app", "v1").is_err(), "the tag is gone");
    }

    // Without --lossy the plan says how to abort the stale multipart upload, and does not.
    let out = regfsck_s3(&["repair", "--config", cfg, "--now", &now], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "`regfsck repair --config {cfg} --apply --lossy` aborts it"
        )) && text.contains("undo cannot bring them back"),
        "{text}"
    );
    assert_eq!(
        store_objects(&moto, "fix"),
        broken,
        "a plan changes nothing"
    );

    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("plan.json");
    let out = regfsck_s3(
        &[
            "repair",
            "--config",
            cfg,
            "--now",
            &now,
            "--purge-age",
            "1h",
            "--apply",
            "--lossy",
            "--yes",
            "--format",
            "json",
            "--plan",
            plan_file.to_str().unwrap(),
        ],
        &[],
    );
    let doc = json(&out);
    assert_eq!(doc["errors_after"], 0, "{doc:#}");
    let contracts = Contracts::load();
    contracts.assert_valid("repair", &doc, "repair --apply --lossy on S3");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    contracts.assert_valid("plan", &plan, "repair --lossy --plan on S3");
    let kinds: Vec<(&str, &str)> = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    for want in [
        ("write-link", "applied"),
        ("quarantine", "applied"),
        ("abort-multipart", "applied"),
    ] {
        assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
    }
    let run = doc["run"].as_str().unwrap().to_string();
    assert_eq!(mp(&moto), 0, "the stale multipart upload is aborted");

    // The store as pushed, but for what repair took away (the stale upload's keys); the
    // quarantine and journal sit beside docker/, in the bucket.
    let fixed = store_objects(&moto, "fix");
    let changed = diff(&pristine, &fixed);
    assert!(!changed.is_empty());
    assert!(
        changed
            .iter()
            .all(|k| k.contains("/_uploads/") && !fixed.contains_key(k)),
        "{changed:#?}"
    );
    let quarantine = snapshot(&moto, "fix", &format!("reg/regfsck-quarantine/{run}/"));
    let q = |rel: &str| format!("reg/regfsck-quarantine/{run}/files/docker/registry/v2/{rel}");
    assert_eq!(
        quarantine
            .get(&q("blobs/sha256/ab/stray.tmp"))
            .map(Vec::as_slice),
        Some(&b"junk"[..])
    );
    assert!(quarantine.contains_key(&format!("reg/regfsck-quarantine/{run}/plan.json")));
    assert!(quarantine
        .keys()
        .any(|k| k.starts_with(&format!("reg/regfsck-quarantine/{run}/journal/"))));

    // The real GC on the bucket: what it would delete is what it would have deleted before
    // the store was broken (the stale upload is not its business).
    for (m, before) in [false, true].iter().zip(&gc_pristine) {
        let after = gc_dry_run_config(&cfg_path, *m);
        assert_eq!(after.aborted, before.aborted, "-m={m}");
        assert_eq!(after.eligible_blobs, before.eligible_blobs, "-m={m}");
        assert_eq!(
            after.eligible_manifests, before.eligible_manifests,
            "-m={m}"
        );
    }
    {
        let reg = serve(&cfg_path);
        for (repo, tag) in [("beta/app", "v1"), ("team/proj", "v1")] {
            reg.pull(repo, tag)
                .unwrap_or_else(|e| panic!("{repo}:{tag} after repair: {e}"));
        }
    }

    // Undo: the broken bucket again, byte for byte (the multipart upload is listed as
    // irreversible); the quarantine is empty; a second undo has nothing to do.
    let out = regfsck_s3(
        &["undo", "--config", cfg, "--run", &run, "--format", "json"],
        &[],
    );
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["kept"], serde_json::json!([]));
    assert_eq!(doc["irreversible"].as_array().unwrap().len(), 1, "{doc:#}");
    contracts.assert_valid("undo", &doc, "undo on S3 with an aborted multipart upload");
    let undone = store_objects(&moto, "fix");
    assert_eq!(diff(&broken, &undone), Vec::<String>::new());
    assert!(snapshot(
        &moto,
        "fix",
        &format!("reg/regfsck-quarantine/{run}/files/")
    )
    .is_empty());
    let listed = runs(cfg);
    contracts.assert_valid(
        "runs",
        &serde_json::json!({"schema": "regfsck.runs/1", "runs": listed}),
        "undo --list on S3",
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "undone");
    assert_eq!(listed[0]["bytes"], 0);
    let out = regfsck_s3(&["undo", "--config", cfg, "--run", &run], &[]);
    assert!(ok(&out).contains("already undone"));
}

/// Undo never overwrites what was written after the run: a key written again is kept and
/// listed, the exit code says so, and once it is gone a later undo finishes the rest.
#[test]
fn undo_on_s3_keeps_what_was_written_after_the_run() {
    if !s3::available() {
        return;
    }
    let (moto, _, cfg_path, now) = s3::pushed("newer", ROOT);
    let cfg = path_of(&cfg_path);
    break_store(&moto, "newer");
    let broken = store_objects(&moto, "newer");
    let out = regfsck_s3(
        &[
            "repair", "--config", cfg, "--now", &now, "--apply", "--format", "json",
        ],
        &[],
    );
    let run = json(&out)["run"].as_str().unwrap().to_string();
    // Someone writes the stray key again, and the tag is pushed again (other content than
    // what repair wrote, as a newer push would).
    let stray = format!("{V2}/blobs/sha256/ab/stray.tmp");
    moto.put("newer", &stray, b"newer junk");
    let tag_link = format!("{V2}/repositories/beta/app/_manifests/tags/v1/current/link");
    let other = common::store::tag_digest("sample", "team/proj", "v1");
    moto.put("newer", &tag_link, other.to_string().as_bytes());

    let out = regfsck_s3(
        &["undo", "--config", cfg, "--run", &run, "--format", "json"],
        &[],
    );
    let doc = json(&out);
    assert_ne!(out.status.code(), Some(0), "kept steps: not a clean undo");
    let kept: Vec<&str> = doc["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "repositories/beta/app/_manifests/tags/v1/current/link",
            "blobs/sha256/ab/stray.tmp",
        ],
        "{doc:#}"
    );
    let now_objects = store_objects(&moto, "newer");
    assert_eq!(now_objects[&stray], b"newer junk");
    assert_eq!(now_objects[&tag_link], other.to_string().as_bytes());
    // The revision link was reversed: it names the other manifest again, as before the run.
    let rev = format!(
        "{V2}/repositories/team/proj/_manifests/revisions/sha256/{}/link",
        other.hex()
    );
    assert_eq!(now_objects[&rev], broken[&rev]);
    assert_eq!(runs(cfg)[0]["state"], "partly-undone");

    // The operator removes the newer writes; the next undo reverses the rest.
    moto.client("newer").delete(&stray).unwrap();
    moto.client("newer").delete(&tag_link).unwrap();
    ok(&regfsck_s3(&["undo", "--config", cfg, "--run", &run], &[]));
    assert_eq!(
        diff(&broken, &store_objects(&moto, "newer")),
        Vec::<String>::new()
    );
    assert_eq!(runs(cfg)[0]["state"], "undone");
}

/// SIGKILL at every step of an apply (between a copy and its delete, between a PUT and its
/// journal record, between actions): a re-run of repair finishes the run and the bucket is
/// the repaired one; or an undo (itself killed once) restores the broken bucket byte for byte.
#[test]
fn a_crash_at_any_step_on_s3_is_healed_by_a_rerun_or_an_undo() {
    if !s3::available() {
        return;
    }
    let (moto, _, cfg_path, now) = s3::pushed("crash", ROOT);
    let cfg = path_of(&cfg_path);
    break_store(&moto, "crash");
    let broken = store_objects(&moto, "crash");
    // --purge-age 1h: the sample's upload folder (three keys) is quarantined too.
    let apply = [
        "repair",
        "--config",
        cfg,
        "--now",
        &now,
        "--purge-age",
        "1h",
        "--apply",
    ];
    // The reference: an uninterrupted run, undone.
    repaired(&regfsck_s3(&apply, &[]));
    let fixed = store_objects(&moto, "crash");
    assert_ne!(fixed, broken);
    undo_all(cfg);
    assert_eq!(
        diff(&broken, &store_objects(&moto, "crash")),
        Vec::<String>::new()
    );

    let mut killed = 0;
    // Every mutation point, an odd one healed by a re-run, an even one by an undo. Each point
    // costs five commands against the one-request-at-a-time local S3 server, so .ci/test-all
    // splits them between its two passes (common::kill_points): together they kill every point
    // once. Alone, the test kills all.
    for k in (1..).filter(|&k| kill_points::kills(k)) {
        let kill = k.to_string();
        let out = regfsck_s3(&apply, &[("REGFSCK_TEST_KILL_AT", &kill)]);
        if out.status.code().is_some() {
            // Fewer mutation points than k: the run completed.
            repaired(&out);
            undo_all(cfg);
            break;
        }
        killed += 1;
        if k % 2 == 1 {
            repaired(&regfsck_s3(&apply, &[]));
            assert_eq!(
                diff(&fixed, &store_objects(&moto, "crash")),
                Vec::<String>::new(),
                "k={k}: a re-run finishes the repair"
            );
            assert!(
                runs(cfg)
                    .iter()
                    .all(|r| r["state"] == "complete" || r["state"] == "undone"),
                "k={k}: {:#?}",
                runs(cfg)
            );
        } else if let Some(r) = runs(cfg).iter().rev().find(|r| r["state"] != "undone") {
            let id = r["id"].as_str().unwrap().to_string();
            // The undo itself is killed at its second step, then run again.
            let undo = ["undo", "--config", cfg, "--run", id.as_str()];
            let _ = regfsck_s3(&undo, &[("REGFSCK_TEST_KILL_AT", "2")]);
            ok(&regfsck_s3(&undo, &[]));
        }
        undo_all(cfg);
        assert_eq!(
            diff(&broken, &store_objects(&moto, "crash")),
            Vec::<String>::new(),
            "k={k}: undo restores the broken bucket"
        );
        assert!(
            runs(cfg).iter().all(|r| r["state"] == "undone"),
            "k={k}: {:#?}",
            runs(cfg)
        );
        assert!(
            snapshot(&moto, "crash", "reg/regfsck-quarantine/lock").is_empty(),
            "k={k}: no lock left behind by a finished command"
        );
    }
    let every = kill_points::every();
    assert!(
        killed * every >= 10,
        "only {killed} mutation points (one in {every})"
    );
}

/// The live guard on object storage: recent upload keys (and multipart uploads younger than
/// the grace window, which the same finding reports) refuse --apply, naming them; --force
/// overrides.
#[test]
fn recent_uploads_in_the_bucket_refuse_an_apply() {
    if !s3::available() {
        return;
    }
    let (moto, _, cfg_path, now) = s3::pushed("live", ROOT);
    let cfg = path_of(&cfg_path);
    moto.put("live", &format!("{V2}/blobs/sha256/ab/stray.tmp"), b"junk");
    let before = store_objects(&moto, "live");
    // As of the push (the sample's upload is seconds old): live.
    let push_time = (moto.now("live")).to_string();
    let out = regfsck_s3(
        &["repair", "--config", cfg, "--now", &push_time, "--apply"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("looks live")
            && err.contains("upload-recent: repositories/library/alpine/_uploads/"),
        "{err}"
    );
    assert_eq!(store_objects(&moto, "live"), before);
    // A day later, the upload is stale: the apply runs.
    repaired(&regfsck_s3(
        &["repair", "--config", cfg, "--now", &now, "--apply"],
        &[],
    ));
    assert!(!store_objects(&moto, "live").contains_key(&format!("{V2}/blobs/sha256/ab/stray.tmp")));
}

//! Server-side copies of objects above the single-copy limit (5 GiB on S3) on a local S3 server
//! (moto): with the limit and part size lowered by the test-only `REGFSCK_TEST_S3_COPY_PART_SIZE`
//! (docs/testing.md), a 12 MiB layer pushed through the real registry is moved home in three
//! parts (5 + 5 + 2 MiB) by repair, and a 12 MiB stray is quarantined in parts; the bytes stay
//! the same (sha256; the real registry pulls the image, skopeo verifying every blob), undo
//! restores the broken bucket byte for byte, no multipart upload is left behind, and undo's
//! "written since the run?" test tells a copy with another ETag (`…-3` against a plain MD5) but
//! the same bytes from other bytes.

mod common;

use common::s3::{self as s3, diff, json, path_of, regfsck_s3, snapshot, Moto};
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use std::collections::BTreeMap;

const ROOT: &str = "/reg";
const V2: &str = "reg/docker/registry/v2";
/// S3's smallest part (but the last): the parts of a 12 MiB object are 5, 5 and 2 MiB.
const PART: &str = "5242880";
const SIZE: usize = 12 << 20;

type Snapshot = BTreeMap<String, Vec<u8>>;

/// `n` bytes that no compression or deduplication shortens (a sha256 chain from `seed`).
fn noise(seed: &[u8], n: usize) -> Vec<u8> {
    use sha2::Digest as _;
    let mut out = Vec::with_capacity(n + 32);
    let mut h: [u8; 32] = sha2::Sha256::digest(seed).into();
    while out.len() < n {
        out.extend_from_slice(&h);
        h = sha2::Sha256::digest(h).into();
    }
    out.truncate(n);
    out
}

fn store_objects(moto: &Moto, bucket: &str) -> Snapshot {
    snapshot(moto, bucket, "reg/docker/")
}

fn etag(moto: &Moto, bucket: &str, key: &str) -> String {
    let page = moto
        .client(bucket)
        .list_page(key, None, None, false, 1)
        .unwrap();
    assert_eq!(page.objects[0].key, key);
    page.objects[0].etag.clone()
}

/// UploadPartCopy requests the server has answered (its access log; lines of failed requests
/// are coloured).
fn part_copies(moto: &Moto) -> usize {
    std::fs::read_to_string(&moto.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("PUT /") && l.contains("partNumber="))
        .count()
}

/// Incomplete multipart uploads anywhere in the bucket (the quarantine included).
fn open_uploads(moto: &Moto, bucket: &str) -> usize {
    moto.client(bucket).list_multipart("").unwrap().len()
}

fn with_parts() -> [(&'static str, &'static str); 1] {
    [("REGFSCK_TEST_S3_COPY_PART_SIZE", PART)]
}

fn repair(cfg: &str, now: &str) -> serde_json::Value {
    let out = regfsck_s3(
        &[
            "repair", "--config", cfg, "--now", now, "--apply", "--yes", "--format", "json",
        ],
        &with_parts(),
    );
    let doc = json(&out);
    assert_eq!(doc["errors_after"], 0, "{doc:#}");
    doc
}

fn undo(cfg: &str, run: &str) -> (Option<i32>, serde_json::Value) {
    let out = regfsck_s3(
        &["undo", "--config", cfg, "--run", run, "--format", "json"],
        &with_parts(),
    );
    (out.status.code(), json(&out))
}

/// The bucket is `broken` again, byte for byte, and the run's quarantine is empty.
fn restored(moto: &Moto, broken: &Snapshot, run: &str) {
    assert_eq!(
        diff(broken, &store_objects(moto, "big")),
        Vec::<String>::new()
    );
    let q = format!("reg/regfsck-quarantine/{run}/files/");
    assert!(snapshot(moto, "big", &q).is_empty());
}

fn statuses(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn objects_above_the_copy_limit_are_copied_in_parts_byte_for_byte_and_undo_restores_them() {
    if !s3::available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("big");
    let cfg_path = moto.config("big", ROOT, "");
    let cfg = path_of(&cfg_path);

    // An image with a 12 MiB layer, pushed through the real registry's s3 driver.
    let layer_bytes = noise(b"layer", SIZE);
    let layer;
    {
        let reg = s3::serve(&cfg_path);
        layer = reg.put_image("big/img", "v1", &layer_bytes);
        reg.pull("big/img", "v1").unwrap();
    }
    let now = (moto.now("big") + 86_400).to_string();
    let d = Digest::parse(&layer).unwrap();
    let home = format!("{V2}/{}", layout::blob_data(&d));
    let misplaced = format!("{V2}/blobs/sha256/zz/{}/data", d.hex());
    let stray = format!("{V2}/blobs/sha256/ab/stray.tmp");
    let stray_bytes = noise(b"stray", SIZE);

    // Break: the layer's data sits where the registry does not look (a misplaced blob, which
    // repair moves home), and a 12 MiB stray written as the driver writes blob data (a
    // multipart upload: ETag `…-1`), which repair quarantines.
    let c = moto.client("big");
    moto.put("big", &misplaced, &layer_bytes);
    c.delete(&home).unwrap();
    s3::put_multipart(moto.port, "big", &stray, &stray_bytes);
    assert!(etag(&moto, "big", &stray).ends_with("-1"));
    let broken = store_objects(&moto, "big");
    assert!(s3::serve(&cfg_path).pull("big/img", "v1").is_err());

    // Repair: both objects are copied in parts (3 UploadPartCopy requests each).
    let before = part_copies(&moto);
    let doc = repair(cfg, &now);
    let kinds = statuses(&doc);
    for want in [("move-blob", "applied"), ("quarantine", "applied")] {
        assert!(
            kinds.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {kinds:?}"
        );
    }
    assert_eq!(part_copies(&moto) - before, 6, "two copies of three parts");
    assert_eq!(open_uploads(&moto, "big"), 0, "no parts left billing");
    let run = doc["run"].as_str().unwrap().to_string();
    let fixed = store_objects(&moto, "big");
    assert!(!fixed.contains_key(&misplaced) && !fixed.contains_key(&stray));
    assert_eq!(
        Digest::of_bytes(&fixed[&home]),
        d,
        "the layer moved home byte for byte"
    );
    assert!(
        etag(&moto, "big", &home).ends_with("-3"),
        "a copy in 3 parts"
    );
    let qkey = |run: &str| {
        format!("reg/regfsck-quarantine/{run}/files/docker/registry/v2/blobs/sha256/ab/stray.tmp")
    };
    let q = qkey(&run);
    assert_eq!(snapshot(&moto, "big", &q)[&q], stray_bytes);
    assert!(etag(&moto, "big", &q).ends_with("-3"));
    s3::serve(&cfg_path)
        .pull("big/img", "v1")
        .expect("the image pulls after repair (skopeo verifies the layer's digest)");

    // Undo: copied back in parts; the broken bucket byte for byte, no upload left.
    let before = part_copies(&moto);
    let (code, doc) = undo(cfg, &run);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["kept"], serde_json::json!([]), "{doc:#}");
    assert_eq!(part_copies(&moto) - before, 6);
    restored(&moto, &broken, &run);
    assert_eq!(open_uploads(&moto, "big"), 0);

    // An undo that stopped after restoring the stray but before deleting its quarantined copy
    // (here: the same bytes written back in one PUT, so a plain-MD5 ETag against the copy's
    // `…-3`): the next undo sees the same bytes, drops the copy and keeps nothing.
    let run = repair(cfg, &now)["run"].as_str().unwrap().to_string();
    moto.put("big", &stray, &stray_bytes);
    assert_ne!(etag(&moto, "big", &stray), etag(&moto, "big", &qkey(&run)));
    let (code, doc) = undo(cfg, &run);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["kept"], serde_json::json!([]), "{doc:#}");
    restored(&moto, &broken, &run);

    // Other bytes of the same size written there after the run are kept and listed.
    let run = repair(cfg, &now)["run"].as_str().unwrap().to_string();
    let newer = noise(b"newer", SIZE);
    moto.put("big", &stray, &newer);
    let (code, doc) = undo(cfg, &run);
    assert_ne!(code, Some(0), "{doc:#}");
    let kept: Vec<&str> = doc["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["path"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["blobs/sha256/ab/stray.tmp"], "{doc:#}");
    let now_objects = store_objects(&moto, "big");
    assert_eq!(now_objects[&stray], newer);
    assert_eq!(
        now_objects.get(&misplaced),
        Some(&layer_bytes),
        "the move was reversed"
    );
    assert_eq!(open_uploads(&moto, "big"), 0);
}

/// A multipart copy that fails (its source is gone) aborts its upload: nothing is left billing.
#[test]
fn a_failed_copy_in_parts_aborts_its_upload() {
    if !s3::available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("gone");
    let c = moto.client("gone");
    c.put("a", &noise(b"a", 11 << 20)).unwrap();
    let listed = c.list_page("a", None, None, false, 1).unwrap().objects[0].clone();
    c.delete("a").unwrap();
    std::env::set_var("REGFSCK_TEST_S3_COPY_PART_SIZE", PART);
    let err = c.copy("a", "b", listed.size, &listed.etag).unwrap_err();
    assert!(err.not_found() || err.status >= 400, "{err}");
    assert!(part_copies(&moto) >= 1, "the copy got as far as a part");
    assert_eq!(open_uploads(&moto, "gone"), 0, "aborted");
    assert!(c
        .list_page("b", None, None, false, 1)
        .unwrap()
        .objects
        .is_empty());
}

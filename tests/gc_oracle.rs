//! The real garbage collector as the oracle: on the real-registry stores and on damaged variants,
//! regfsck's 2.8 prediction must equal what `docker-registry garbage-collect --dry-run [-m]`
//! prints — the same eligible blobs, the same eligible manifests, the same abort or no abort.
//! Also the `gc-would-abort` / `gc-would-delete-tagged` codes, and the 3.x expectations from
//! registry-storage.md §3.

mod common;

use common::registry::{gc_dry_run, registry_available};
use common::store::{fixture, run_json, v2};
use regfsck::analysis::gc::{self, Version};
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use std::fs;
use std::path::Path;

fn inventory(root: &Path) -> regfsck::model::inventory::Inventory {
    let store = regfsck::store::scan::locate(root).unwrap();
    regfsck::store::scan::scan(&store, &regfsck::progress::Silent).unwrap()
}

fn tag(repo: &str, t: &str) -> Digest {
    common::store::tag_digest("sample", repo, t)
}

fn manifest(root: &Path, d: &Digest) -> serde_json::Value {
    common::store::manifest_json(root, d)
}

/// Compare prediction and reality for both modes; returns (plain, -m) predictions.
fn agree(root: &Path, what: &str) -> (gc::Prediction, gc::Prediction) {
    let inv = inventory(root);
    let mut out = Vec::new();
    for m in [false, true] {
        let real = gc_dry_run(root, m);
        let p = gc::predict(&inv, Version::V2_8, m);
        let (blobs, manifests, aborted) = p.dry_run_view();
        assert_eq!(
            aborted,
            real.aborted.is_some(),
            "{what} -m={m}: abort predicted {:?}, real {:?}",
            p.abort,
            real.aborted
        );
        if let (Some(a), Some(r)) = (&p.abort, &real.aborted) {
            // A JSON parser's own error text differs between Go and Rust: compare up to it.
            let strip = |t: &str| match t.find("failed to retrieve manifest for digest ") {
                Some(i) => {
                    t[..i + "failed to retrieve manifest for digest ".len() + 71].to_string()
                }
                None => t.to_string(),
            };
            assert_eq!(strip(&a.reason), strip(r), "{what} -m={m}: abort reason");
            assert_eq!(p.panic, real.exit_code == 2, "{what}: panic");
        } else {
            assert_eq!(blobs, real.eligible_blobs, "{what} -m={m}: eligible blobs");
            assert_eq!(
                manifests, real.eligible_manifests,
                "{what} -m={m}: eligible manifests"
            );
        }
        out.push(p);
    }
    let m = out.pop().unwrap();
    (out.pop().unwrap(), m)
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    common::store::write_v2(root, rel, data)
}

#[test]
fn clean_stores_agree_with_the_real_gc() {
    if !registry_available() {
        return;
    }
    for name in ["sample", "minimal"] {
        let tmp = fixture(name);
        let (plain, m) = agree(tmp.path(), name);
        assert!(plain.abort.is_none() && m.abort.is_none());
        if name == "sample" {
            // The multi-arch children: 2.8 -m queues them (the hazard), 3.x keeps them.
            assert_eq!(m.eligible_manifests.len(), 5);
            let v3 = gc::predict(&inventory(tmp.path()), Version::V3, true);
            assert_eq!(
                v3.eligible_manifests.len(),
                1,
                "{:?}",
                v3.eligible_manifests
            );
        }
    }
}

type Break = fn(&Path);

#[test]
fn damaged_variants_agree_with_the_real_gc() {
    if !registry_available() {
        return;
    }
    let variants: Vec<(&str, Break)> = vec![
        ("orphan blob", |r| {
            let d = Digest::of_bytes(b"orphan");
            write(r, &layout::blob_data(&d), b"orphan");
        }),
        ("missing manifest blob", |r| {
            let d = tag("team/proj", "v1");
            fs::remove_dir_all(v2(r).join(layout::blob_dir(&d))).unwrap();
        }),
        ("missing index child", |r| {
            let ix = tag("multi/oci", "latest");
            let child = Digest::parse(manifest(r, &ix)["manifests"][0]["digest"].as_str().unwrap())
                .unwrap();
            let link = layout::revision_link("multi/oci", &child);
            fs::remove_dir_all(v2(r).join(link.strip_suffix("/link").unwrap())).unwrap();
        }),
        ("truncated tag link", |r| {
            write(
                r,
                &layout::tag_current_link("team/proj", "v1"),
                b"sha256:fdb4",
            )
        }),
        // 2.8's tag lookup reads every tag's link, even after one matched: a bad tag sorted
        // after the matching one still aborts `-m`.
        ("bad tag beside a matching tag", |r| {
            write(
                r,
                &layout::tag_current_link("team/proj", "v2"),
                b"sha256:not-a-digest",
            )
        }),
        ("garbage revision link", |r| {
            write(
                r,
                &layout::revision_link("library/alpine", &tag("library/alpine", "latest")),
                b"garbage\n",
            )
        }),
        ("repository without _layers", |r| {
            fs::remove_dir_all(v2(r).join("repositories/team/proj/app/_layers")).unwrap()
        }),
        ("stray _notes file", |r| {
            write(r, "repositories/team/_notes", b"notes")
        }),
        ("manifest that is not JSON", |r| {
            let d = Digest::of_bytes(b"not json");
            write(r, &layout::blob_data(&d), b"not json");
            write(
                r,
                &layout::revision_link("team/proj", &d),
                d.to_string().as_bytes(),
            );
        }),
        ("blob under the wrong fan-out folder", |r| {
            let d = Digest::of_bytes(b"misplaced");
            write(
                r,
                &format!("blobs/sha256/zz/{}/data", d.hex()),
                b"misplaced",
            );
        }),
        ("blob without fan-out folder", |r| {
            let d = Digest::of_bytes(b"flat");
            write(r, &format!("blobs/sha256/{}/data", d.hex()), b"flat");
        }),
        ("manifest that panics the GC", |r| {
            let body = br#"{"schemaVersion":2,"manifests":"x"}"#;
            let d = Digest::of_bytes(body);
            write(r, &layout::blob_data(&d), body);
            write(
                r,
                &layout::revision_link("beta/app", &d),
                d.to_string().as_bytes(),
            );
        }),
        ("invalid repository name", |r| {
            fs::rename(
                v2(r).join("repositories/beta/app"),
                v2(r).join("repositories/beta/App"),
            )
            .unwrap()
        }),
        ("missing tags folder", |r| {
            fs::remove_dir_all(v2(r).join("repositories/team/proj/_manifests/tags")).unwrap()
        }),
        ("link mismatch in revisions", |r| {
            let a = tag("team/proj", "v1");
            let b = tag("team/proj/app", "v1");
            write(
                r,
                &layout::revision_link("team/proj", &a),
                b.to_string().as_bytes(),
            );
        }),
        ("schema1 manifest", |r| {
            let layer = Digest::parse(
                manifest(r, &tag("team/proj", "v1"))["layers"][0]["digest"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            let body = format!(
                r#"{{"schemaVersion":1,"name":"team/proj","tag":"old","architecture":"amd64","fsLayers":[{{"blobSum":"{layer}"}}],"history":[{{"v1Compatibility":"{{}}"}}]}}"#
            );
            let d = Digest::of_bytes(body.as_bytes());
            write(r, &layout::blob_data(&d), body.as_bytes());
            write(
                r,
                &layout::revision_link("team/proj", &d),
                d.to_string().as_bytes(),
            );
        }),
    ];
    for (what, brk) in variants {
        let tmp = fixture("sample");
        brk(tmp.path());
        agree(tmp.path(), what);
    }
}

#[test]
fn v3_semantics_from_the_spec() {
    // repository without _layers: 3.x aborts; without _manifests: invisible and swept.
    let tmp = fixture("sample");
    fs::remove_dir_all(v2(tmp.path()).join("repositories/team/proj/app/_layers")).unwrap();
    let p = gc::predict(&inventory(tmp.path()), Version::V3, false);
    assert!(p
        .abort
        .as_ref()
        .unwrap()
        .reason
        .contains("Path not found: /docker/registry/v2/repositories/team/proj/app/_layers"));

    let tmp = fixture("sample");
    fs::remove_dir_all(v2(tmp.path()).join("repositories/team/proj/_manifests/tags")).unwrap();
    let inv = inventory(tmp.path());
    let p = gc::predict(&inv, Version::V3, true);
    assert!(p.abort.is_none(), "3.x continues without a tags folder");
    let m = manifest(tmp.path(), &tag("team/proj", "v1"));
    let layer = Digest::parse(m["layers"][1]["digest"].as_str().unwrap()).unwrap();
    assert!(
        p.eligible_blobs.contains(&layer),
        "3.x -m sweeps the blobs of a repo without tags/"
    );
    assert!(
        gc::predict(&inv, Version::V2_8, true).abort.is_some(),
        "2.8 -m aborts instead"
    );

    // schema1 aborts 3.x only; a stray _ file is harmless on 3.x.
    let tmp = fixture("sample");
    write(tmp.path(), "repositories/team/_notes", b"x");
    let inv = inventory(tmp.path());
    assert!(gc::predict(&inv, Version::V3, false)
        .invisible_repos
        .is_empty());
    assert_eq!(
        gc::predict(&inv, Version::V2_8, false).invisible_repos,
        vec!["team/proj", "team/proj/app"]
    );

    // 3.x deletes unused layer links (mounted's only link is unused) and keeps index children.
    let tmp = fixture("sample");
    let p = gc::predict(&inventory(tmp.path()), Version::V3, true);
    assert!(p
        .layer_links_deleted
        .iter()
        .any(|l| l.repo == "scratch/doomed"));
    let ix = tag("multi/oci", "latest");
    let child = Digest::parse(
        manifest(tmp.path(), &ix)["manifests"][0]["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(!p.eligible_manifests.iter().any(|m| m.digest == child));
}

#[test]
fn gc_would_abort_code() {
    let tmp = fixture("sample");
    let path = layout::revision_link("library/alpine", &tag("library/alpine", "latest"));
    write(tmp.path(), &path, b"");
    let (code, doc) = run_json(&["check", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 4);
    let hits: Vec<&serde_json::Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "gc-would-abort")
        .collect();
    assert_eq!(hits.len(), 4, "every version and mode aborts: {hits:#?}");
    assert!(hits.iter().all(|f| f["path"] == path.as_str()));
    assert!(hits[0]["message"]
        .as_str()
        .unwrap()
        .contains("invalid checksum digest format"));
}

#[test]
fn gc_would_delete_tagged_code() {
    let tmp = fixture("sample");
    write(tmp.path(), "repositories/team/_notes", b"x");
    let (code, doc) = run_json(&["check", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 4);
    let hits: Vec<&serde_json::Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "gc-would-delete-tagged")
        .collect();
    assert_eq!(hits.len(), 2, "2.8 with and without -m: {hits:#?}");
    assert!(hits.iter().all(|f| f["path"] == "repositories/team/proj"));
    assert!(hits[0]["message"]
        .as_str()
        .unwrap()
        .contains("repositories/team/_notes"));
}

//! Issue #11.2, against the real registry: registry 2.8 resolves a manifest through its revision
//! link and, when that is gone, through the `_layers` link of the same digest. Such a tag pulls;
//! regfsck must say that it works only through the fallback (`revision-link-missing`), warn that
//! garbage-collect deletes its blobs, and repair it by writing the revision link back — never by
//! dropping the tag.

mod common;

use common::registry::{gc_dry_run, registry_available, Registry};
use common::store::{codes_at, fixture, fixture_now, rm_v2, run_json, tag_digest, write_v2};
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use serde_json::Value;
use std::path::Path;

fn check(root: &Path) -> Value {
    let now = fixture_now(root).to_string();
    run_json(&["check", root.to_str().unwrap(), "--now", &now]).1
}

/// Remove `d`'s revision folder in `repo` and give it a `_layers` link instead.
fn break_revision(root: &Path, repo: &str, d: &Digest) {
    rm_v2(
        root,
        layout::revision_link(repo, d)
            .strip_suffix("/link")
            .unwrap(),
    );
    write_v2(root, &layout::layer_link(repo, d), d.to_string().as_bytes());
}

#[test]
fn a_tag_served_through_the_layers_fallback_is_repaired_not_dropped() {
    if !registry_available() {
        return;
    }
    let tmp = fixture("sample");
    let root = tmp.path();
    let d = tag_digest("sample", "team/proj", "v1");
    break_revision(root, "team/proj", &d);
    let rev = layout::revision_link("team/proj", &d);

    // The real registry still serves it.
    {
        let reg = Registry::start(root);
        reg.pull("team/proj", "v1")
            .expect("2.8 serves the tag through _layers");
    }
    // The real GC deletes its manifest blob: data a pullable tag needs.
    assert!(gc_dry_run(root, false)
        .eligible_blobs
        .contains(&d.to_string()));

    let doc = check(root);
    assert_eq!(codes_at(&doc, "revision-link-missing"), vec![rev.clone()]);
    assert!(codes_at(&doc, "tag-dangling").is_empty(), "{doc:#}");
    assert!(codes_at(&doc, "tag-index-dangling").is_empty(), "{doc:#}");
    assert!(
        codes_at(&doc, "gc-would-delete-tagged").contains(&"repositories/team/proj".to_string()),
        "{doc:#}"
    );
    // Its blobs are needed, not garbage.
    assert!(!codes_at(&doc, "blob-unreferenced").contains(&layout::blob_data(&d)));

    // Even a lossy repair restores the revision link and keeps the tag.
    let now = fixture_now(root).to_string();
    let out = common::store::regfsck()
        .args([
            "repair",
            root.to_str().unwrap(),
            "--apply",
            "--lossy",
            "--yes",
            "--now",
            &now,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("write {rev} = {d}")), "{text}");
    assert!(
        !text.contains(&format!(
            "quarantine {}",
            layout::tag_dir("team/proj", "v1")
        )),
        "{text}"
    );
    assert!(common::store::v2(root)
        .join(layout::tag_current_link("team/proj", "v1"))
        .is_file());

    let reg = Registry::start(root);
    reg.pull("team/proj", "v1")
        .expect("still pulls after the repair");
    drop(reg);
    assert!(!gc_dry_run(root, false)
        .eligible_blobs
        .contains(&d.to_string()));
    let doc = check(root);
    assert!(
        codes_at(&doc, "revision-link-missing").is_empty(),
        "{doc:#}"
    );
    assert!(
        !codes_at(&doc, "gc-would-delete-tagged").contains(&"repositories/team/proj".to_string()),
        "{doc:#}"
    );
}

#[test]
fn an_index_child_served_through_the_layers_fallback() {
    if !registry_available() {
        return;
    }
    let tmp = fixture("sample");
    let root = tmp.path();
    let ix = tag_digest("sample", "multi/oci", "latest");
    let child = Digest::parse(
        common::store::manifest_json(root, &ix)["manifests"][0]["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    break_revision(root, "multi/oci", &child);
    Registry::start(root)
        .pull("multi/oci", "latest")
        .expect("every platform pulls on 2.8");

    let doc = check(root);
    let rev = layout::revision_link("multi/oci", &child);
    assert_eq!(codes_at(&doc, "revision-link-missing"), vec![rev.clone()]);
    // Not "that platform cannot be pulled": it can, on 2.8.
    assert!(codes_at(&doc, "index-child-missing").is_empty(), "{doc:#}");

    let now = fixture_now(root).to_string();
    let out = common::store::regfsck()
        .args(["repair", root.to_str().unwrap(), "--apply", "--now", &now])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("write {rev} = {child}")));
    Registry::start(root)
        .pull("multi/oci", "latest")
        .expect("still pulls after the repair");
    assert!(codes_at(&check(root), "revision-link-missing").is_empty());
}

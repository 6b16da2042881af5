//! The real registry as the oracle for "this tag cannot be pulled": for each such error code, the
//! damaged store makes regfsck report the code AND makes a real pull of the tag fail (skopeo
//! verifies every digest); on the clean stores every tag pulls.

mod common;

use common::registry::{registry_available, Registry};
use common::store::{expected, fixture, run_json, v2};
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use std::fs;
use std::path::Path;

fn tag(repo: &str, t: &str) -> Digest {
    common::store::tag_digest("sample", repo, t)
}

fn manifest(root: &Path, d: &Digest) -> serde_json::Value {
    common::store::manifest_json(root, d)
}

fn digest_at(v: &serde_json::Value) -> Digest {
    Digest::parse(v["digest"].as_str().unwrap()).unwrap()
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    common::store::write_v2(root, rel, data)
}

fn rm(root: &Path, rel: &str) {
    common::store::rm_v2(root, rel)
}

#[test]
fn every_tag_of_the_clean_stores_pulls() {
    if !registry_available() {
        return;
    }
    for name in ["sample", "minimal"] {
        let tmp = fixture(name);
        let reg = Registry::start(tmp.path());
        let exp = expected(name);
        for (repo, r) in exp["repositories"].as_object().unwrap() {
            for (t, d) in r["tags"].as_object().unwrap() {
                reg.pull(repo, t)
                    .unwrap_or_else(|e| panic!("{repo}:{t}: {e}"));
                reg.pull(repo, d.as_str().unwrap())
                    .unwrap_or_else(|e| panic!("{repo}@{d}: {e}"));
            }
        }
    }
}

type Damage = fn(&Path);

#[test]
fn unpullable_codes_really_break_pulls() {
    if !registry_available() {
        return;
    }
    let cases: Vec<(&str, &str, &str, Damage)> = vec![
        ("blob-digest-mismatch", "team/proj", "v1", |r| {
            let l = digest_at(&manifest(r, &tag("team/proj", "v1"))["layers"][1]);
            let p = layout::blob_data(&l);
            let mut data = fs::read(v2(r).join(&p)).unwrap();
            data[20] ^= 0x55;
            write(r, &p, &data);
        }),
        ("blob-empty", "team/proj", "v1", |r| {
            let l = digest_at(&manifest(r, &tag("team/proj", "v1"))["layers"][1]);
            write(r, &layout::blob_data(&l), b"");
        }),
        ("blob-size-mismatch", "team/proj/app", "v1", |r| {
            let c = digest_at(&manifest(r, &tag("team/proj/app", "v1"))["config"]);
            let p = layout::blob_data(&c);
            let mut data = fs::read(v2(r).join(&p)).unwrap();
            data.extend_from_slice(b"\n\n");
            write(r, &p, &data);
        }),
        ("link-malformed", "team/proj", "v1", |r| {
            write(r, &layout::tag_current_link("team/proj", "v1"), b"")
        }),
        ("revision-blob-missing", "team/proj", "v1", |r| {
            rm(r, &layout::blob_dir(&tag("team/proj", "v1")))
        }),
        ("manifest-invalid", "team/proj", "broken", |r| {
            let d = Digest::of_bytes(b"{not json");
            write(r, &layout::blob_data(&d), b"{not json");
            write(
                r,
                &layout::revision_link("team/proj", &d),
                d.to_string().as_bytes(),
            );
            write(
                r,
                &layout::tag_current_link("team/proj", "broken"),
                d.to_string().as_bytes(),
            );
            write(
                r,
                &layout::tag_index_link("team/proj", "broken", &d),
                d.to_string().as_bytes(),
            );
        }),
        ("manifest-ref-missing", "team/proj", "v1", |r| {
            let l = digest_at(&manifest(r, &tag("team/proj", "v1"))["layers"][1]);
            rm(r, &layout::blob_dir(&l));
        }),
        ("manifest-ref-unlinked", "team/proj/app", "v1", |r| {
            let c = digest_at(&manifest(r, &tag("team/proj/app", "v1"))["config"]);
            rm(r, &layout::layer_link("team/proj/app", &c));
        }),
        ("index-child-missing", "multi/oci", "latest", |r| {
            let child = digest_at(&manifest(r, &tag("multi/oci", "latest"))["manifests"][1]);
            rm(
                r,
                layout::revision_link("multi/oci", &child)
                    .strip_suffix("/link")
                    .unwrap(),
            );
        }),
        ("tag-current-missing", "library/alpine", "3.19", |r| {
            rm(
                r,
                layout::tag_current_link("library/alpine", "3.19")
                    .strip_suffix("/link")
                    .unwrap(),
            )
        }),
        ("tag-dangling", "team/proj", "v1", |r| {
            rm(
                r,
                layout::revision_link("team/proj", &tag("team/proj", "v1"))
                    .strip_suffix("/link")
                    .unwrap(),
            )
        }),
        ("repo-missing-layers", "team/proj/app", "v1", |r| {
            rm(r, "repositories/team/proj/app/_layers")
        }),
    ];
    for (code, repo, t, damage) in cases {
        let tmp = fixture("sample");
        damage(tmp.path());
        // Hashing reports a grown blob as a digest mismatch; the size check alone needs no hashing.
        let mode = if code == "blob-size-mismatch" {
            "--no-verify"
        } else {
            "--quiet"
        };
        let (exit, doc) = run_json(&["check", tmp.path().to_str().unwrap(), mode]);
        assert_eq!(exit & 4, 4, "{code}: check must fail");
        assert!(
            doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["code"] == code),
            "{code} not reported"
        );
        let reg = Registry::start(tmp.path());
        assert!(
            reg.pull(repo, t).is_err(),
            "{code}: the real registry still serves {repo}:{t}"
        );
        // The damage is local: an unrelated tag still pulls.
        let control = if repo == "library/alpine" {
            ("beta/app", "v1")
        } else {
            ("library/alpine", "latest")
        };
        reg.pull(control.0, control.1)
            .unwrap_or_else(|e| panic!("{code}: {}:{} broke too: {e}", control.0, control.1));
    }
}

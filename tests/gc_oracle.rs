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
        common::registry::assert_agrees(&p, &real, &format!("{what} -m={m}"));
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

/// How a predicted run ends: finishes, aborts, panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Ok,
    Abort,
    Panic,
}

fn end(p: &gc::Prediction) -> End {
    match (&p.abort, p.panic) {
        (None, _) => End::Ok,
        (Some(_), false) => End::Abort,
        (Some(_), true) => End::Panic,
    }
}

fn symlink(root: &Path, target: &str, rel: &str) {
    let p = v2(root).join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

fn mkdir(root: &Path, rel: &str) {
    fs::create_dir_all(v2(root).join(rel)).unwrap();
}

/// A v2-relative path with one raw, non-UTF-8 component appended.
fn raw(root: &Path, rel: &str, name: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    v2(root).join(rel).join(std::ffi::OsStr::from_bytes(name))
}

const TAGS: &str = "repositories/team/proj/_manifests/tags";
const PROJ: &str = "repositories/team/proj";

fn layer_of(root: &Path, d: &Digest, i: usize) -> Digest {
    Digest::parse(manifest(root, d)["layers"][i]["digest"].as_str().unwrap()).unwrap()
}

/// Issue #11.3: what `--delete-untagged` meets in `tags/`, symbolic links (the real GC follows
/// them; regfsck resolved them without following), names that are not UTF-8, links that are
/// folders: each variant against the real garbage collector, both modes, abort texts verbatim
/// (absolute paths, Go's wrapping, errno wording) — and each with the outcome it is meant to
/// produce, so that no variant agrees by doing nothing.
#[test]
fn hostile_entries_agree_with_the_real_gc() {
    if !registry_available() {
        return;
    }
    use End::*;
    let variants: Vec<(&str, Break, End, End)> = vec![
        (
            "README in tags/",
            |r| write(r, &format!("{TAGS}/README"), b"hi"),
            Ok,
            Abort,
        ),
        (
            "temp file in tags/",
            |r| {
                write(
                    r,
                    &format!("{TAGS}/v1.01a2038b-a7e0-7487-8e9f-0123456789ab.tmp"),
                    b"x",
                )
            },
            Ok,
            Abort,
        ),
        (
            "symlink loop in tags/",
            |r| symlink(r, "loop", &format!("{TAGS}/loop")),
            Ok,
            Abort,
        ),
        (
            "dangling symlink in tags/",
            |r| symlink(r, "nowhere", &format!("{TAGS}/gone")),
            Ok,
            Ok,
        ),
        (
            "symlink in tags/ to another repository's tag",
            |r| {
                // library/alpine's untagged revision becomes tagged through the link: kept.
                let untagged = common::store::expected("sample")["untagged"]["library/alpine"][0]
                    .as_str()
                    .unwrap()
                    .to_string();
                write(
                    r,
                    "repositories/beta/app/_manifests/tags/x/current/link",
                    untagged.as_bytes(),
                );
                symlink(
                    r,
                    "../../../../beta/app/_manifests/tags/x",
                    "repositories/library/alpine/_manifests/tags/keep",
                );
            },
            Ok,
            Ok,
        ),
        (
            "non-UTF-8 tag name",
            |r| {
                let d = raw(r, TAGS, b"caf\xe9").join("current");
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join("link"), tag("team/proj", "v1").to_string()).unwrap();
            },
            Ok,
            Abort,
        ),
        (
            "tag name with a space",
            |r| {
                write(
                    r,
                    &format!("{TAGS}/bad tag/current/link"),
                    tag("team/proj", "v1").to_string().as_bytes(),
                )
            },
            Ok,
            Abort,
        ),
        (
            "tag current/link that is a folder",
            |r| {
                let link = layout::tag_current_link("team/proj", "v1");
                common::store::rm_v2(r, &link);
                mkdir(r, &link);
            },
            Ok,
            Abort,
        ),
        (
            "tag current that is a file",
            |r| {
                let link = layout::tag_current_link("team/proj", "v1");
                common::store::rm_v2(r, link.strip_suffix("/link").unwrap());
                write(r, link.strip_suffix("/link").unwrap(), b"x");
            },
            Ok,
            Abort,
        ),
        (
            "non-UTF-8 repository",
            |r| fs::create_dir_all(raw(r, "repositories", b"caf\xe9").join("_layers")).unwrap(),
            Abort,
            Abort,
        ),
        (
            "non-UTF-8 folder without a repository",
            |r| fs::create_dir_all(raw(r, "repositories", b"caf\xe9").join("x")).unwrap(),
            Ok,
            Ok,
        ),
        (
            "symlink to an ancestor in repositories/",
            |r| symlink(r, "..", "repositories/team/up"),
            Abort,
            Abort,
        ),
        (
            "symlink loop in repositories/",
            |r| symlink(r, "rl", "repositories/rl"),
            Abort,
            Abort,
        ),
        (
            "folder symlink cycle in repositories/ (ELOOP at 41 links)",
            |r| {
                mkdir(r, "repositories/zz");
                symlink(r, "../zz", "repositories/zz/a");
            },
            Abort,
            Abort,
        ),
        (
            "dangling symlink in repositories/",
            |r| symlink(r, "nowhere", "repositories/gone"),
            Ok,
            Ok,
        ),
        (
            "repository symlinked under a second name",
            |r| symlink(r, "team/proj/app", "repositories/alias"),
            Ok,
            Ok,
        ),
        (
            "revision folder symlinked to a layer's _layers folder",
            |r| {
                let layer = layer_of(r, &tag("team/proj", "v1"), 1);
                symlink(
                    r,
                    &format!("../../../_layers/sha256/{}", layer.hex()),
                    &format!("{PROJ}/_manifests/revisions/sha256/{}", "ab".repeat(32)),
                );
            },
            Abort,
            Ok,
        ),
        (
            "revision link symlinked to a layer link",
            |r| {
                let d = tag("team/proj", "v1");
                let layer = layer_of(r, &d, 1);
                let link = layout::revision_link("team/proj", &d);
                common::store::rm_v2(r, &link);
                symlink(
                    r,
                    &format!("../../../../_layers/sha256/{}/link", layer.hex()),
                    &link,
                );
            },
            Abort,
            Ok,
        ),
        (
            "symlink loop in revisions/",
            |r| {
                let x = "ab".repeat(32);
                symlink(r, &x, &format!("{PROJ}/_manifests/revisions/sha256/{x}"));
            },
            Abort,
            Abort,
        ),
        (
            "dangling symlink in revisions/",
            |r| {
                let x = "ab".repeat(32);
                symlink(
                    r,
                    "nowhere",
                    &format!("{PROJ}/_manifests/revisions/sha256/{x}"),
                );
            },
            Ok,
            Ok,
        ),
        (
            "revision link that is a folder, read through another revision link",
            |r| {
                let (a, b) = (tag("team/proj", "v1"), tag("team/proj/app", "v1"));
                write(
                    r,
                    &layout::revision_link("team/proj", &a),
                    b.to_string().as_bytes(),
                );
                mkdir(r, &layout::revision_link("team/proj", &b));
            },
            Abort,
            Abort,
        ),
        (
            "_layers link that is a folder, read by the 2.8 fallback",
            |r| {
                let d = tag("team/proj", "v1");
                common::store::rm_v2(
                    r,
                    &format!("{PROJ}/_manifests/revisions/sha256/{}", d.hex()),
                );
                write(
                    r,
                    &layout::revision_link(
                        "team/proj",
                        &Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap(),
                    ),
                    d.to_string().as_bytes(),
                );
                mkdir(r, &layout::layer_link("team/proj", &d));
            },
            Abort,
            Abort,
        ),
        (
            "blob folder symlinked to another blob",
            |r| {
                let d = tag("team/proj", "v1");
                let o = Digest::of_bytes(b"orphan");
                mkdir(r, &format!("blobs/sha256/{}", &o.hex()[..2]));
                symlink(
                    r,
                    &format!("../{}/{}", &d.hex()[..2], d.hex()),
                    &layout::blob_dir(&o),
                );
            },
            Ok,
            Ok,
        ),
        (
            "blob data symlinked to another blob's data",
            |r| {
                let d = tag("team/proj", "v1");
                let o = Digest::of_bytes(b"orphan");
                mkdir(r, &layout::blob_dir(&o));
                symlink(
                    r,
                    &format!("../../{}/{}/data", &d.hex()[..2], d.hex()),
                    &layout::blob_data(&o),
                );
            },
            Ok,
            Ok,
        ),
        (
            "symlink loop in blobs/",
            |r| {
                let o = Digest::of_bytes(b"orphan");
                mkdir(r, &format!("blobs/sha256/{}", &o.hex()[..2]));
                symlink(r, &o.hex(), &layout::blob_dir(&o));
            },
            Abort,
            Abort,
        ),
        (
            "data below a non-UTF-8 blob folder (a one-byte hex)",
            |r| {
                let d = raw(r, "blobs/sha256/ab", b"\xe9");
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join("data"), b"x").unwrap();
            },
            Panic,
            Panic,
        ),
        (
            "non-UTF-8 algorithm folder",
            |r| {
                let h = Digest::of_bytes(b"flat").hex();
                let d = raw(r, "blobs", b"\xe9").join(&h[..2]).join(&h);
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join("data"), b"x").unwrap();
            },
            Abort,
            Abort,
        ),
    ];
    let mut seen = Vec::new();
    for (what, brk, plain, m) in variants {
        let tmp = fixture("sample");
        brk(tmp.path());
        let (p, pm) = agree(tmp.path(), what);
        assert_eq!((end(&p), end(&pm)), (plain, m), "{what}: {p:?} / {pm:?}");
        seen.push(what);
    }
    assert_eq!(seen.len(), 27);
}

/// Where the real GC would follow a symbolic link out of the store (or into a place regfsck does
/// not replay), regfsck says it cannot predict, names the link, and `regfsck gc` exits non-zero —
/// never a confident prediction about what lies behind it.
#[test]
fn symlinks_out_of_the_store_cannot_be_predicted() {
    let x = "ab".repeat(32);
    let cases: Vec<(String, bool)> = vec![
        // (the link, whether the plain run meets it too; tags are read only by -m)
        ("repositories/elsewhere".to_string(), true),
        (format!("{PROJ}/_manifests/revisions/sha256/{x}"), true),
        (format!("{TAGS}/elsewhere"), false),
    ];
    for (link, plain_too) in cases {
        let tmp = fixture("sample");
        symlink(tmp.path(), "/etc", &link);
        let inv = inventory(tmp.path());
        for v in Version::ALL {
            for m in [false, true] {
                let p = gc::predict(&inv, v, m);
                if !m && !plain_too {
                    assert!(p.cannot_predict.is_none(), "{link} {v:?}");
                    continue;
                }
                let c = p
                    .cannot_predict
                    .as_ref()
                    .unwrap_or_else(|| panic!("{link} {v:?} -m={m}: predicted {p:?}"));
                assert_eq!(c.paths, vec![link.clone()], "{link}");
                assert!(p.abort.is_none() && p.eligible_blobs.is_empty());
            }
        }
        let out = common::store::regfsck()
            .args(["gc", tmp.path().to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(4), "{text}");
        assert!(
            text.contains("CANNOT PREDICT") && text.contains(&link),
            "{text}"
        );
    }
}

/// Issue #11.2: a tag whose revision link is gone but whose `_layers` link of the same digest is
/// there still pulls on 2.8 (see tests/layers_fallback.rs); the real GC never marks it. The
/// prediction agrees with the real GC, and the hazard is reported for the tag's blobs.
#[test]
fn layers_fallback_agrees_with_the_real_gc() {
    if !registry_available() {
        return;
    }
    // A tag, and a child of a tagged index.
    let ix = tag("multi/oci", "latest");
    for (repo, which) in [("team/proj", None), ("multi/oci", Some(0))] {
        let tmp = fixture("sample");
        let r = tmp.path();
        let d = match which {
            None => tag(repo, "v1"),
            Some(i) => {
                Digest::parse(manifest(r, &ix)["manifests"][i]["digest"].as_str().unwrap()).unwrap()
            }
        };
        common::store::rm_v2(
            r,
            &format!(
                "repositories/{repo}/_manifests/revisions/sha256/{}",
                d.hex()
            ),
        );
        write(r, &layout::layer_link(repo, &d), d.to_string().as_bytes());
        let (plain, _) = agree(r, repo);
        let inv = inventory(r);
        if which.is_none() {
            // Its manifest blob (and its own layers) go: data a pullable tag needs.
            assert!(plain.eligible_blobs.contains(&d), "{plain:?}");
            let hazards = gc::hazards(&inv, false);
            let h = hazards
                .iter()
                .find(|f| {
                    f.code.as_str() == "gc-would-delete-tagged"
                        && f.message.starts_with("registry 2.8 garbage-collect would")
                })
                .unwrap_or_else(|| panic!("{hazards:#?}"));
            assert!(h.message.contains("_layers"), "{}", h.message);
        }
    }
}

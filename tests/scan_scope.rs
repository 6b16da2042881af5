//! Issue #11.5: what the default scan sees and what only `--deep` adds, for the two findings the
//! fast lanes make mode-dependent beyond residue: `path-symlink` and `path-non-utf8`. A symbolic
//! link and a non-UTF-8 file are planted in every kind of folder of a store at once; the default
//! scan must report exactly those of the folders docs/checks.md lists as always listed, `--deep`
//! all of them. (The table in docs/checks.md is this list.)

mod common;

use common::store::{fixture, fixture_now, run_json, tag_digest, v2};
use regfsck::model::layout;
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;

#[test]
fn what_each_scan_sees() {
    let tmp = fixture("sample");
    let root = tmp.path();
    let m = tag_digest("sample", "team/proj", "v1");
    let layer = regfsck::model::digest::Digest::parse(
        common::store::manifest_json(root, &m)["layers"][1]["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let upload = "repositories/library/alpine/_uploads/4332c8cc-e42e-4510-9f48-d84b20c40079";
    let tag = layout::tag_dir("team/proj", "v1");
    // (folder, whether the default scan lists it)
    let folders: Vec<(String, bool)> = vec![
        (String::new(), true),
        ("blobs".into(), true),
        ("blobs/sha256".into(), true),
        (format!("blobs/sha256/{}", &m.hex()[..2]), true),
        ("repositories".into(), true),
        ("repositories/team".into(), true),
        (layout::layers_dir("team/proj"), true),
        (format!("{}/sha256", layout::layers_dir("team/proj")), true),
        (layout::manifests_dir("team/proj"), true),
        (layout::revisions_dir("team/proj"), true),
        (
            format!("{}/sha256", layout::revisions_dir("team/proj")),
            true,
        ),
        (layout::tags_dir("team/proj"), true),
        (format!("{tag}/index/sha256"), true),
        ("repositories/library/alpine/_uploads".into(), true),
        (upload.into(), true),
        // Folders the fast lanes do not list while what they read there is healthy.
        (layout::blob_dir(&m), false),
        (
            layout::layer_link("team/proj", &layer)
                .strip_suffix("/link")
                .unwrap()
                .into(),
            false,
        ),
        (
            layout::revision_link("team/proj", &m)
                .strip_suffix("/link")
                .unwrap()
                .into(),
            false,
        ),
        (tag.clone(), false),
        (format!("{tag}/current"), false),
        (format!("{tag}/index"), false),
        (
            layout::tag_index_link("team/proj", "v1", &m)
                .strip_suffix("/link")
                .unwrap()
                .into(),
            false,
        ),
    ];
    let mut always = BTreeSet::new();
    let mut deep_only = BTreeSet::new();
    for (dir, default) in &folders {
        let at = v2(root).join(dir);
        std::os::unix::fs::symlink("/nonexistent", at.join("lnk")).unwrap();
        std::fs::write(at.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"x").unwrap();
        let sep = if dir.is_empty() { "" } else { "/" };
        for f in [
            ("path-symlink", format!("{dir}{sep}lnk")),
            ("path-non-utf8", format!("{dir}{sep}caf\u{fffd}")),
        ] {
            if *default {
                always.insert(f);
            } else {
                deep_only.insert(f);
            }
        }
    }
    // The objects themselves as symbolic links: both scans (the direct read fails and the folder
    // is listed).
    let config = regfsck::model::digest::Digest::parse(
        common::store::manifest_json(root, &m)["config"]["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let own_link = layout::layer_link("team/proj", &config);
    std::fs::remove_file(v2(root).join(&own_link)).unwrap();
    std::os::unix::fs::symlink("/nonexistent", v2(root).join(&own_link)).unwrap();
    always.insert(("path-symlink", own_link));

    let now = fixture_now(root).to_string();
    let seen = |deep: bool| -> BTreeSet<(String, String)> {
        let mut args = vec!["check", root.to_str().unwrap(), "--now", &now];
        if deep {
            args.push("--deep");
        }
        run_json(&args).1["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "path-symlink" || f["code"] == "path-non-utf8")
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["path"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let own = |s: &BTreeSet<(&str, String)>| -> BTreeSet<(String, String)> {
        s.iter().map(|(c, p)| (c.to_string(), p.clone())).collect()
    };
    assert_eq!(seen(false), own(&always), "the default scan");
    let all: BTreeSet<(&str, String)> = always.union(&deep_only).cloned().collect();
    assert_eq!(seen(true), own(&all), "--deep");
    assert_eq!(deep_only.len(), 14);
}

//! A copy of the sample store with several kinds of damage at once, so that one report holds
//! every shape of finding: repair actions of each kind, a lossy one, a GC abort tied to its cause
//! (`via`), affected images. For contract tests (JSON Schemas, metrics), not for one code's proof
//! (tests/check_codes.rs breaks one thing at a time).

use super::store::{self, fixture, rm_v2, v2, write_v2};
use regfsck::model::digest::Digest;
use regfsck::model::layout;

fn tag(repo: &str, tag: &str) -> Digest {
    store::tag_digest("sample", repo, tag)
}

/// The sample store, damaged.
pub fn damaged_sample() -> tempfile::TempDir {
    let tmp = fixture("sample");
    let root = tmp.path();
    // link-malformed (a write-link repair) that aborts garbage-collect (a `via` repair hint).
    let alpine = tag("library/alpine", "latest");
    write_v2(
        root,
        &layout::revision_link("library/alpine", &alpine),
        format!("{alpine}\n").as_bytes(),
    );
    // blob-digest-mismatch on a layer of a tagged image (affected images, push again).
    let proj = tag("team/proj", "v1");
    let m = store::manifest_json(root, &proj);
    let layer = Digest::parse(m["layers"][0]["digest"].as_str().unwrap()).unwrap();
    let path = layout::blob_data(&layer);
    let mut data = std::fs::read(v2(root).join(&path)).unwrap();
    data[10] ^= 0xff;
    write_v2(root, &path, &data);
    // blob-path-invalid (a move-blob repair): the deleted manifest's config, moved under `zz`.
    let exp = store::expected("sample");
    let doomed = Digest::parse(exp["deleted_manifest"]["digest"].as_str().unwrap()).unwrap();
    let config = Digest::parse(
        store::manifest_json(root, &doomed)["config"]["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(v2(root).join("blobs/sha256/zz")).unwrap();
    std::fs::rename(
        v2(root).join(layout::blob_dir(&config)),
        v2(root).join(format!("blobs/sha256/zz/{}", config.hex())),
    )
    .unwrap();
    // repo-missing-layers (a create-dir repair).
    rm_v2(root, "repositories/team/proj/app/_layers");
    // tag-dangling (a lossy quarantine).
    let beta = tag("beta/app", "v1");
    rm_v2(
        root,
        layout::revision_link("beta/app", &beta)
            .strip_suffix("/link")
            .unwrap(),
    );
    // repo-stray-underscore (a quarantine).
    write_v2(root, "repositories/team/_notes", b"who owns proj?");
    tmp
}

/// The sample store with a revision folder that is a symbolic link out of the store: no
/// garbage-collect run can be predicted (`cannot_predict`, `gc-cannot-predict`).
pub fn unpredictable_sample() -> tempfile::TempDir {
    let tmp = fixture("sample");
    let at = v2(tmp.path()).join(format!(
        "{}/sha256/{}",
        layout::revisions_dir("team/proj"),
        "ab".repeat(32)
    ));
    std::os::unix::fs::symlink("/etc", at).unwrap();
    tmp
}

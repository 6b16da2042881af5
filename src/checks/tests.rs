//! Break-one-thing tests of the checks on in-memory inventories.

use super::testkit::Builder;
use super::{run, CheckOptions};
use crate::digest::{Digest, DigestError};
use crate::finding::{Code, Finding, Severity};
use crate::inventory::*;
use crate::layout;

const NOW: i64 = 2_000_000_000;

fn opts() -> CheckOptions {
    CheckOptions {
        now: NOW,
        ..CheckOptions::default()
    }
}

fn valid() -> (Builder, Digest, Digest, Vec<Digest>) {
    let mut b = Builder::new();
    let app = b.image("team/app", Some("v1"));
    let (ix, children) = b.index("team/multi", "latest");
    b.image("team/app", Some("v2"));
    (b, app, ix, children)
}

/// Warn/error findings beyond the valid tree's legitimate ones (its index children are untagged).
fn problems(fs: &[Finding]) -> Vec<&Finding> {
    fs.iter()
        .filter(|f| {
            f.code.default_severity() > Severity::Info && f.code != Code::RevisionUntaggedChild
        })
        .collect()
}

/// Exactly one new warn/error finding, with this code at this path.
fn assert_only(inv: &Inventory, code: Code, path: &str) {
    let fs = run(inv, &opts());
    let p = problems(&fs);
    assert!(
        p.iter()
            .any(|f| f.code == code && f.path.as_deref() == Some(path)),
        "expected {code} at {path}, got {p:#?}"
    );
    assert!(
        p.iter().all(|f| f.code == code),
        "unrelated findings: {p:#?}"
    );
}

#[test]
fn valid_inventory_is_clean_but_for_facts() {
    let (b, ..) = valid();
    let inv = b.build();
    let fs = run(&inv, &opts());
    assert!(problems(&fs).is_empty(), "{fs:#?}");
    assert_eq!(
        fs.iter()
            .filter(|f| f.code == Code::RevisionUntaggedChild)
            .count(),
        2
    );
}

#[test]
fn corrupt_and_empty_blobs() {
    let (b, app, ..) = valid();
    let mut inv = b.build();
    let layer = match inv.manifest(&app) {
        Some(Ok(m)) => m.refs[1].digest.clone(),
        _ => unreachable!(),
    };
    let i = inv.blob_index(&layer).unwrap();
    inv.blobs[i].verify = Verify::Mismatch(Digest::empty_sha256());
    assert_only(&inv, Code::BlobDigestMismatch, &layout::blob_data(&layer));
    inv.blobs[i].verify = Verify::Ok;
    inv.blobs[i].size = 0;
    assert_only(&inv, Code::BlobEmpty, &layout::blob_data(&layer));
    inv.blobs[i].size = 999;
    assert_only(&inv, Code::BlobSizeMismatch, &layout::blob_data(&layer));
}

#[test]
fn malformed_and_mismatched_links() {
    let (b, app, ..) = valid();
    let mut inv = b.build();
    let r = inv.repos.iter_mut().find(|r| r.name == "team/app").unwrap();
    let rev = r
        .revisions
        .iter_mut()
        .find(|l| l.path_digest == app)
        .unwrap();
    rev.state = LinkState::Malformed {
        error: DigestError::Format,
        len: 0,
    };
    assert_only(
        &inv,
        Code::LinkMalformed,
        &layout::revision_link("team/app", &app),
    );
}

#[test]
fn missing_manifest_blob_and_refs() {
    let (b, app, ..) = valid();
    let inv0 = b.build();
    let mut inv = inv0.clone();
    inv.blobs.retain(|bl| bl.digest != app);
    inv.manifests.remove(&app);
    let fs = run(&inv, &opts());
    assert!(fs.iter().any(|f| f.code == Code::RevisionBlobMissing
        && f.path.as_deref() == Some(layout::revision_link("team/app", &app).as_str())));

    let mut inv = inv0.clone();
    let cfg = match inv.manifest(&app) {
        Some(Ok(m)) => m.refs[0].digest.clone(),
        _ => unreachable!(),
    };
    inv.blobs.retain(|bl| bl.digest != cfg);
    let fs = run(&inv, &opts());
    assert!(
        fs.iter()
            .any(|f| f.code == Code::ManifestRefMissing && f.digest.as_ref() == Some(&cfg)),
        "{fs:#?}"
    );

    let mut inv = inv0;
    let r = inv.repos.iter_mut().find(|r| r.name == "team/app").unwrap();
    r.layers.retain(|l| l.path_digest != cfg);
    assert_only(
        &inv,
        Code::ManifestRefUnlinked,
        &layout::layer_link("team/app", &cfg),
    );
}

#[test]
fn index_child_and_tags() {
    let (b, app, _ix, children) = valid();
    let inv0 = b.build();
    let mut inv = inv0.clone();
    let r = inv
        .repos
        .iter_mut()
        .find(|r| r.name == "team/multi")
        .unwrap();
    r.revisions.retain(|l| l.path_digest != children[0]);
    let fs = run(&inv, &opts());
    assert!(
        fs.iter()
            .any(|f| f.code == Code::IndexChildMissing && f.digest.as_ref() == Some(&children[0])),
        "{fs:#?}"
    );

    let mut inv = inv0.clone();
    let r = inv.repos.iter_mut().find(|r| r.name == "team/app").unwrap();
    r.tags.iter_mut().find(|t| t.name == "v1").unwrap().current = LinkState::Absent;
    let fs = run(&inv, &opts());
    assert!(fs.iter().any(|f| f.code == Code::TagCurrentMissing));

    let mut inv = inv0;
    let r = inv.repos.iter_mut().find(|r| r.name == "team/app").unwrap();
    r.revisions.retain(|l| l.path_digest != app);
    let fs = run(&inv, &opts());
    assert!(
        fs.iter()
            .any(|f| f.code == Code::TagDangling && f.tag.as_deref() == Some("v1")),
        "{fs:#?}"
    );
    assert!(fs.iter().any(|f| f.code == Code::TagIndexDangling));
}

#[test]
fn uploads_by_age() {
    let (mut b, ..) = valid();
    b.repo("team/app").uploads.push(Upload {
        uuid: "7a7b9f0e-1a2b-4c3d-8e9f-0123456789ab".into(),
        started_at: StartedAt::Ok(NOW - 200 * 3600),
        bytes: 10,
        mtime: NOW - 200 * 3600,
    });
    b.repo("team/app").uploads.push(Upload {
        uuid: "8a7b9f0e-1a2b-4c3d-8e9f-0123456789ab".into(),
        started_at: StartedAt::Ok(NOW - 10),
        bytes: 10,
        mtime: NOW - 10,
    });
    let fs = run(&b.build(), &opts());
    assert_eq!(fs.iter().filter(|f| f.code == Code::UploadStale).count(), 1);
    assert_eq!(
        fs.iter().filter(|f| f.code == Code::UploadRecent).count(),
        1
    );
}

#[test]
fn untagged_and_unreferenced() {
    let (mut b, ..) = valid();
    let old = b.image("team/app", None);
    b.blob(b"orphan");
    let inv = b.build();
    let fs = run(&inv, &opts());
    assert!(fs
        .iter()
        .any(|f| f.code == Code::RevisionUntagged && f.digest.as_ref() == Some(&old)));
    assert_eq!(
        fs.iter()
            .filter(|f| f.code == Code::BlobUnreferenced)
            .count(),
        1
    );
}

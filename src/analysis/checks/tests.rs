//! Break-one-thing tests of the checks on in-memory inventories: every code the checks emit is
//! produced by exactly one mutation of a valid store, at exactly the expected path.

use super::testkit::{link, Builder};
use super::{run, CheckOptions};
use crate::model::digest::{Algorithm, Digest, DigestError};
use crate::model::finding::{Code, Finding, Severity};
use crate::model::inventory::*;
use crate::model::layout;
use crate::model::manifest;
use std::collections::HashSet;

const NOW: i64 = 2_000_000_000;
const UUID: &str = "7a7b9f0e-1a2b-4c3d-8e9f-0123456789ab";

fn opts() -> CheckOptions {
    CheckOptions {
        now: NOW,
        ..CheckOptions::default()
    }
}

/// The valid store: `team/app` with two tagged images, `team/multi` with a tagged index over two
/// untagged children (as every multi-arch push leaves them).
struct Fx {
    b: Builder,
    app: Digest,
    ix: Digest,
    children: Vec<Digest>,
}

fn fx() -> Fx {
    let mut b = Builder::new();
    let app = b.image("team/app", Some("v1"));
    let (ix, children) = b.index("team/multi", "latest");
    b.image("team/app", Some("v2"));
    Fx {
        b,
        app,
        ix,
        children,
    }
}

fn valid() -> (Inventory, Fx) {
    let f = fx();
    let inv = f.b.inv.clone();
    let mut b = Builder::new();
    b.inv = inv;
    (b.build(), f)
}

fn repo<'a>(inv: &'a mut Inventory, name: &str) -> &'a mut Repo {
    inv.repos.iter_mut().find(|r| r.name == name).unwrap()
}

/// Config and first layer of a manifest.
fn config_and_layer(inv: &Inventory, m: &Digest) -> (Digest, Digest) {
    match inv.manifest(m) {
        Some(Ok(man)) => (man.refs[0].digest.clone(), man.refs[1].digest.clone()),
        other => panic!("{m}: {other:?}"),
    }
}

fn key(f: &Finding) -> (Code, Option<String>) {
    (f.code, f.path.clone())
}

/// Findings of `inv` that the valid store does not have.
fn new_findings(inv: &Inventory) -> Vec<Finding> {
    let (base, _) = valid();
    let before: HashSet<_> = run(&base, &opts()).iter().map(key).collect();
    run(inv, &opts())
        .into_iter()
        .filter(|f| !before.contains(&key(f)))
        .collect()
}

/// `code` appears at `path`, and every other new warning or error has a code in `also` (true
/// consequences of the same damage, which a repair needs to see).
fn expect(inv: &Inventory, code: Code, path: &str, also: &[Code]) -> Finding {
    let new = new_findings(inv);
    let hit = new
        .iter()
        .find(|f| f.code == code && f.path.as_deref() == Some(path))
        .unwrap_or_else(|| panic!("expected {code} at {path}, got {new:#?}"))
        .clone();
    for f in &new {
        assert!(
            f.code == code || f.code.default_severity() == Severity::Info || also.contains(&f.code),
            "unrelated finding besides {code}: {f:#?}"
        );
    }
    assert!(!hit.message.is_empty());
    hit
}

#[test]
fn valid_store_has_no_warning_or_error_but_the_multi_arch_trap() {
    let (inv, f) = valid();
    let fs = run(&inv, &opts());
    let bad: Vec<_> = fs
        .iter()
        .filter(|x| x.code.default_severity() > Severity::Info)
        .collect();
    let want: HashSet<String> = f
        .children
        .iter()
        .map(|c| layout::revision_link("team/multi", c))
        .collect();
    assert_eq!(bad.len(), 2, "{bad:#?}");
    for x in bad {
        assert_eq!(x.code, Code::RevisionUntaggedChild);
        assert!(want.contains(x.path.as_deref().unwrap()));
        assert_eq!(x.repo.as_deref(), Some("team/multi"));
    }
}

/// What the registry itself leaves on a store after ordinary use: untagged pushes, API deletes of
/// manifests and blobs, retags, empty `_uploads/`, an upload in flight.
#[test]
fn registry_made_residue_is_at_most_info() {
    let mut f = fx();
    let untagged = f.b.image("team/app", None);
    let deleted = f.b.image("team/app", Some("old"));
    let mut inv = f.b.build();
    let r = repo(&mut inv, "team/app");
    // DELETE /manifests/<deleted>: link file gone (folder stays), tags on it removed, but another
    // tag's history still names it.
    r.revisions
        .iter_mut()
        .find(|l| l.path_digest == deleted)
        .unwrap()
        .set_state(LinkState::Absent);
    r.tags.retain(|t| t.name != "old");
    r.tags[0].index.push(link(&deleted));
    r.uploads.push(Upload {
        uuid: UUID.into(),
        started_at: StartedAt::Ok(NOW - 5),
        bytes: 0,
        mtime: NOW - 5,
    });
    inv.entries.push(Entry {
        path: layout::revision_link("team/app", &deleted).replace("/link", ""),
        kind: EntryKind::EmptyDir,
    });
    inv.entries.push(Entry {
        path: layout::uploads_dir("team/multi"),
        kind: EntryKind::EmptyDir,
    });
    let fs = run(&inv, &opts());
    let codes: HashSet<Code> = fs
        .iter()
        .filter(|x| x.code != Code::RevisionUntaggedChild)
        .map(|x| x.code)
        .collect();
    for c in &codes {
        assert_eq!(c.default_severity(), Severity::Info, "{c}: {fs:#?}");
    }
    for c in [
        Code::RevisionUntagged,
        Code::TagIndexDangling,
        Code::DirEmpty,
        Code::UploadRecent,
        Code::BlobUnreferenced,
        Code::LayerLinkUnused,
    ] {
        assert!(codes.contains(&c), "{c} missing: {fs:#?}");
    }
    assert!(fs.iter().any(|x| x.code == Code::RevisionUntagged
        && x.digest.as_ref() == Some(&untagged)
        && x.path.as_deref() == Some(layout::revision_link("team/app", &untagged).as_str())));
    // An empty `_uploads/` is not even worth an info line.
    assert!(!fs
        .iter()
        .any(|x| x.path.as_deref() == Some(layout::uploads_dir("team/multi").as_str())));
}

#[test]
fn output_is_sorted_by_code_then_path() {
    let (mut inv, f) = valid();
    inv.blobs.retain(|b| b.digest != f.app);
    repo(&mut inv, "team/app").tags[0].current = LinkState::Absent;
    let fs = run(&inv, &opts());
    let keys: Vec<_> = fs.iter().map(key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

// ---- blobs -------------------------------------------------------------------------------------

#[test]
fn blob_digest_mismatch() {
    let (mut inv, f) = valid();
    let (_, layer) = config_and_layer(&inv, &f.app);
    let i = inv.blob_index(&layer).unwrap();
    inv.set_verify(i, Verify::Mismatch(Box::new(Digest::of_bytes(b"other"))));
    let x = expect(
        &inv,
        Code::BlobDigestMismatch,
        &layout::blob_data(&layer),
        &[],
    );
    assert_eq!(x.digest.as_ref(), Some(&layer));
    assert!(x.message.contains(&Digest::of_bytes(b"other").to_string()));
}

#[test]
fn blob_empty_without_hashing() {
    let (mut inv, f) = valid();
    let (_, layer) = config_and_layer(&inv, &f.app);
    let i = inv.blob_index(&layer).unwrap();
    inv.blobs[i].size = 0;
    inv.set_verify(i, Verify::NotChecked);
    expect(&inv, Code::BlobEmpty, &layout::blob_data(&layer), &[]);
    // The one digest that may be empty is not a finding.
    let mut b = Builder::new();
    b.blob(b"");
    let fs = run(&b.build(), &opts());
    assert!(!fs.iter().any(|x| x.code == Code::BlobEmpty), "{fs:#?}");
}

#[test]
fn blob_size_mismatch() {
    let (mut inv, f) = valid();
    let (cfg, _) = config_and_layer(&inv, &f.app);
    let i = inv.blob_index(&cfg).unwrap();
    inv.blobs[i].size += 1;
    let x = expect(&inv, Code::BlobSizeMismatch, &layout::blob_data(&cfg), &[]);
    assert!(x.message.contains(&f.app.to_string()), "{}", x.message);
}

#[test]
fn blob_unreferenced() {
    let mut f = fx();
    let d = f.b.blob(b"left behind by a deleted image");
    let inv = f.b.build();
    expect(&inv, Code::BlobUnreferenced, &layout::blob_data(&d), &[]);
}

#[test]
fn blob_entries() {
    let gone = Digest::of_bytes(b"gone");
    let cases = [
        (
            "blobs/sha256/zz/nothex/data".to_string(),
            EntryKind::BlobPath {
                fault: BlobFault::BadPath,
                size: Some(5),
            },
            Code::BlobPathInvalid,
        ),
        (
            layout::blob_data(&gone),
            EntryKind::BlobPath {
                fault: BlobFault::DataNotFile,
                size: None,
            },
            Code::BlobPathInvalid,
        ),
        (
            format!(
                "{}/data.0190a0b0-1a2b-7c3d-8e9f-0123456789ab.tmp",
                layout::blob_dir(&gone)
            ),
            EntryKind::BlobStray,
            Code::BlobStrayFile,
        ),
        (
            layout::blob_dir(&gone),
            EntryKind::BlobDataMissing(gone.clone()),
            Code::BlobDataMissing,
        ),
    ];
    for (path, kind, code) in cases {
        let (mut inv, _) = valid();
        inv.entries.push(Entry {
            path: path.clone(),
            kind,
        });
        let x = expect(&inv, code, &path, &[]);
        if code == Code::BlobDataMissing {
            assert_eq!(x.digest.as_ref(), Some(&gone));
        }
    }
}

// ---- links -------------------------------------------------------------------------------------

/// Every link kind, with `state` put in place of its valid content.
fn break_each_link(state: LinkState, code: Code, also: &[Code]) {
    let (inv0, f) = valid();
    let (cfg, _) = config_and_layer(&inv0, &f.app);

    let mut inv = inv0.clone();
    let r = repo(&mut inv, "team/app");
    let i = r.layers.iter().position(|l| l.path_digest == cfg).unwrap();
    r.layers[i].set_state(state.clone());
    let x = expect(&inv, code, &layout::layer_link("team/app", &cfg), also);
    assert_eq!(
        (x.repo.as_deref(), x.digest.as_ref()),
        (Some("team/app"), Some(&cfg))
    );

    let mut inv = inv0.clone();
    let r = repo(&mut inv, "team/app");
    let i = r
        .revisions
        .iter()
        .position(|l| l.path_digest == f.app)
        .unwrap();
    r.revisions[i].set_state(state.clone());
    expect(&inv, code, &layout::revision_link("team/app", &f.app), also);

    let mut inv = inv0.clone();
    repo(&mut inv, "team/app").tags[0].current = state.clone();
    let x = expect(
        &inv,
        code,
        &layout::tag_current_link("team/app", "v1"),
        also,
    );
    assert_eq!(x.tag.as_deref(), Some("v1"));

    let mut inv = inv0.clone();
    repo(&mut inv, "team/app").tags[0].index[0].set_state(state.clone());
    let x = expect(
        &inv,
        code,
        &layout::tag_index_link("team/app", "v1", &f.app),
        also,
    );
    assert_eq!(x.tag.as_deref(), Some("v1"));

    let mut inv = inv0;
    let path = format!(
        "{}/signatures/sha256/x/link",
        layout::revision_link("team/app", &f.app).trim_end_matches("/link")
    );
    repo(&mut inv, "team/app").odd_revision_links.push(OddLink {
        path: path.clone(),
        state,
        legacy_signature: false,
    });
    expect(&inv, code, &path, &[Code::PathUnrecognized]);
}

#[test]
fn link_malformed() {
    for (error, len) in [
        (DigestError::Format, 0),
        (DigestError::Length, 72),
        (DigestError::Algorithm, 68),
    ] {
        break_each_link(
            LinkState::Malformed { error, len },
            Code::LinkMalformed,
            &[],
        );
    }
    break_each_link(LinkState::TooLarge { len: 4096 }, Code::LinkMalformed, &[]);
}

#[test]
fn link_not_file() {
    break_each_link(LinkState::NotFile(EntryType::Dir), Code::LinkNotFile, &[]);
}

#[test]
fn link_unreadable() {
    break_each_link(
        LinkState::Unreadable("permission denied".into()),
        Code::PathUnreadable,
        &[],
    );
}

#[test]
fn link_mismatch() {
    let (inv0, f) = valid();
    let (cfg, layer) = config_and_layer(&inv0, &f.app);
    let mut inv = inv0.clone();
    let r = repo(&mut inv, "team/app");
    let i = r.layers.iter().position(|l| l.path_digest == cfg).unwrap();
    r.layers[i].set_state(LinkState::Ok(layer.clone()));
    expect(
        &inv,
        Code::LinkMismatch,
        &layout::layer_link("team/app", &cfg),
        &[],
    );

    // A revision naming another manifest: no cascade into missing blobs or dangling tags.
    let mut inv = inv0;
    let r = repo(&mut inv, "team/app");
    let i = r
        .revisions
        .iter()
        .position(|l| l.path_digest == f.app)
        .unwrap();
    r.revisions[i].set_state(LinkState::Ok(Digest::of_bytes(b"no such manifest")));
    expect(
        &inv,
        Code::LinkMismatch,
        &layout::revision_link("team/app", &f.app),
        &[],
    );
}

#[test]
fn link_alias_is_info() {
    let (mut inv, f) = valid();
    let (cfg, _) = config_and_layer(&inv, &f.app);
    let alias = Digest::from_hex(Algorithm::Sha512, "ab".repeat(64).as_bytes()).unwrap();
    let r = repo(&mut inv, "team/app");
    r.layers.push(Link::new(alias.clone(), LinkState::Ok(cfg)));
    inv.normalize();
    expect(
        &inv,
        Code::LinkAlias,
        &layout::layer_link("team/app", &alias),
        &[],
    );
}

#[test]
fn layer_link_dangling() {
    let (mut inv, _) = valid();
    let gone = Digest::of_bytes(b"swept by GC");
    repo(&mut inv, "team/app").layers.push(link(&gone));
    inv.normalize();
    let x = expect(
        &inv,
        Code::LayerLinkDangling,
        &layout::layer_link("team/app", &gone),
        &[],
    );
    assert!(x.message.contains(&gone.to_string()));
}

#[test]
fn layer_link_unused() {
    let mut f = fx();
    let d = f.b.blob(b"uploaded, never used by a manifest");
    f.b.repo("team/app").layers.push(link(&d));
    let inv = f.b.build();
    expect(
        &inv,
        Code::LayerLinkUnused,
        &layout::layer_link("team/app", &d),
        &[],
    );
}

#[test]
fn odd_links() {
    let (mut inv, f) = valid();
    let base = layout::revision_link("team/app", &f.app).replace("/link", "");
    let legacy = format!("{base}/signatures/sha256/{}/link", "cd".repeat(32));
    let odd = format!("{}/sha256/nothex/link", layout::layers_dir("team/app"));
    let r = repo(&mut inv, "team/app");
    r.odd_revision_links.push(OddLink {
        path: legacy.clone(),
        state: LinkState::Ok(Digest::of_bytes(b"sig")),
        legacy_signature: true,
    });
    r.odd_layer_links.push(OddLink {
        path: odd.clone(),
        state: LinkState::Ok(Digest::of_bytes(b"odd")),
        legacy_signature: false,
    });
    expect(
        &inv,
        Code::RevisionLegacySignature,
        &legacy,
        &[Code::PathUnrecognized],
    );
    expect(&inv, Code::PathUnrecognized, &odd, &[]);
}

// ---- manifests ---------------------------------------------------------------------------------

#[test]
fn revision_blob_missing_does_not_cascade() {
    let (mut inv, f) = valid();
    inv.blobs.retain(|b| b.digest != f.app);
    inv.manifests.remove(&f.app);
    let x = expect(
        &inv,
        Code::RevisionBlobMissing,
        &layout::revision_link("team/app", &f.app),
        &[],
    );
    assert_eq!(x.digest.as_ref(), Some(&f.app));
    // The tag still names a revision that exists: not dangling.
    let new = new_findings(&inv);
    assert!(!new.iter().any(|x| x.code == Code::TagDangling), "{new:#?}");
}

#[test]
fn manifest_invalid() {
    for (bytes, effect) in [
        (&b"not json at all"[..], "aborts"),
        (&br#"{"schemaVersion":2,"manifests":"x"}"#[..], "panics"),
        (
            &br#"{"schemaVersion":2,"mediaType":"text/plain"}"#[..],
            "aborts",
        ),
    ] {
        let (mut inv, f) = valid();
        inv.manifests.insert(f.app.clone(), manifest::parse(bytes));
        let x = expect(&inv, Code::ManifestInvalid, &layout::blob_data(&f.app), &[]);
        assert!(x.message.contains(effect), "{}", x.message);
    }
    // A descriptor whose digest is not a digest.
    let (mut inv, f) = valid();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","size":2,"digest":"sha256:nothex"}},"layers":[]}}"#,
        manifest::MT_DOCKER_V2
    );
    inv.manifests
        .insert(f.app.clone(), manifest::parse(body.as_bytes()));
    let x = expect(&inv, Code::ManifestInvalid, &layout::blob_data(&f.app), &[]);
    assert!(x.message.contains("sha256:nothex"));
}

#[test]
fn manifest_schema1() {
    let mut f = fx();
    let m = f.b.schema1_image("team/app", "old");
    let inv = f.b.build();
    let x = expect(&inv, Code::ManifestSchema1, &layout::blob_data(&m), &[]);
    assert_eq!(x.repo.as_deref(), Some("team/app"));
}

#[test]
fn manifest_ref_missing() {
    let (mut inv, f) = valid();
    let (cfg, _) = config_and_layer(&inv, &f.app);
    inv.blobs.retain(|b| b.digest != cfg);
    // Its _layers link now dangles too: that is the same loss seen from the link.
    let x = expect(
        &inv,
        Code::ManifestRefMissing,
        &layout::blob_data(&cfg),
        &[Code::LayerLinkDangling],
    );
    assert!(x.message.contains(&f.app.to_string()));
}

#[test]
fn foreign_layers_need_no_blob() {
    let mut b = Builder::new();
    let cfg = b.blob(b"cfg");
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":3,"digest":"{cfg}"}},"layers":[{{"mediaType":"{}","size":9,"digest":"{}","urls":["https://example.com/l"]}}]}}"#,
        manifest::MT_DOCKER_V2,
        manifest::MT_DOCKER_FOREIGN,
        Digest::of_bytes(b"windows base layer")
    );
    let m = b.blob(body.as_bytes());
    let r = b.repo("win");
    r.layers.push(link(&cfg));
    r.revisions.push(link(&m));
    r.tags.push(Tag {
        name: "v1".into(),
        current: LinkState::Ok(m.clone()),
        index: vec![link(&m)],
        index_mtimes: Box::default(),
    });
    let fs = run(&b.build(), &opts());
    assert!(
        fs.iter()
            .all(|x| x.code.default_severity() == Severity::Info),
        "{fs:#?}"
    );
}

#[test]
fn manifest_ref_unlinked() {
    let (inv0, f) = valid();
    let (cfg, _) = config_and_layer(&inv0, &f.app);
    let mut inv = inv0.clone();
    repo(&mut inv, "team/app")
        .layers
        .retain(|l| l.path_digest != cfg);
    let x = expect(
        &inv,
        Code::ManifestRefUnlinked,
        &layout::layer_link("team/app", &cfg),
        &[],
    );
    assert_eq!(x.digest.as_ref(), Some(&cfg));
    // A `_layers/<d>/` folder whose link was deleted by the blob DELETE API is no link either.
    let mut inv = inv0;
    let r = repo(&mut inv, "team/app");
    let i = r.layers.iter().position(|l| l.path_digest == cfg).unwrap();
    r.layers[i].set_state(LinkState::Absent);
    expect(
        &inv,
        Code::ManifestRefUnlinked,
        &layout::layer_link("team/app", &cfg),
        &[],
    );
}

#[test]
fn manifest_ref_unlinked_in_a_repository_that_shares_the_blob() {
    // team/copy holds the same manifest and blobs but only the config's link: the layers are
    // unlinked there even though team/app links them.
    let mut f = fx();
    let (cfg, layer) = config_and_layer(&f.b.inv, &f.app);
    let r = f.b.repo("team/copy");
    r.revisions.push(link(&f.app));
    r.layers.push(link(&cfg));
    let inv = f.b.build();
    expect(
        &inv,
        Code::ManifestRefUnlinked,
        &layout::layer_link("team/copy", &layer),
        &[],
    );
}

#[test]
fn index_child_missing() {
    let (inv0, f) = valid();
    let child = &f.children[0];
    let mut inv = inv0.clone();
    repo(&mut inv, "team/multi")
        .revisions
        .retain(|l| l.path_digest != *child);
    let x = expect(
        &inv,
        Code::IndexChildMissing,
        &layout::revision_link("team/multi", child),
        &[],
    );
    assert!(x.message.contains(&f.ix.to_string()));

    // The child's revision exists but its manifest blob is gone: both facts are reported.
    let mut inv = inv0;
    inv.blobs.retain(|b| b.digest != *child);
    inv.manifests.remove(child);
    expect(
        &inv,
        Code::IndexChildMissing,
        &layout::revision_link("team/multi", child),
        &[Code::RevisionBlobMissing],
    );
}

#[test]
fn revision_untagged() {
    let mut f = fx();
    let m = f.b.image("team/app", None);
    let inv = f.b.build();
    expect(
        &inv,
        Code::RevisionUntagged,
        &layout::revision_link("team/app", &m),
        &[],
    );
}

#[test]
fn revision_untagged_child_is_gone_once_the_child_is_tagged() {
    let (mut inv, f) = valid();
    let child = f.children[0].clone();
    repo(&mut inv, "team/multi").tags.push(Tag {
        name: "amd64".into(),
        current: LinkState::Ok(child.clone()),
        index: vec![link(&child)],
        index_mtimes: Box::default(),
    });
    inv.normalize();
    let fs = run(&inv, &opts());
    let children: Vec<_> = fs
        .iter()
        .filter(|x| x.code == Code::RevisionUntaggedChild)
        .collect();
    assert_eq!(children.len(), 1, "{children:#?}");
    assert_eq!(children[0].digest.as_ref(), Some(&f.children[1]));
    // And an untagged index makes its children plainly untagged.
    let (mut inv, f) = valid();
    repo(&mut inv, "team/multi").tags.clear();
    let fs = run(&inv, &opts());
    assert!(!fs.iter().any(|x| x.code == Code::RevisionUntaggedChild));
    for m in f.children.iter().chain([&f.ix]) {
        assert!(fs.iter().any(|x| x.code == Code::RevisionUntagged
            && x.path.as_deref() == Some(layout::revision_link("team/multi", m).as_str())));
    }
}

// ---- tags --------------------------------------------------------------------------------------

#[test]
fn tag_current_missing() {
    let (mut inv, _) = valid();
    repo(&mut inv, "team/app").tags[0].current = LinkState::Absent;
    let x = expect(
        &inv,
        Code::TagCurrentMissing,
        &layout::tag_current_link("team/app", "v1"),
        &[],
    );
    assert_eq!(x.tag.as_deref(), Some("v1"));
}

#[test]
fn tag_dangling() {
    let (mut inv, _) = valid();
    let gone = Digest::of_bytes(b"deleted by hand");
    let t = &mut repo(&mut inv, "team/app").tags[0];
    // As the registry writes a tag: index entry first, then current.
    t.index.push(link(&gone));
    t.current = LinkState::Ok(gone.clone());
    inv.normalize();
    let x = expect(
        &inv,
        Code::TagDangling,
        &layout::tag_current_link("team/app", "v1"),
        &[],
    );
    assert_eq!(
        (x.tag.as_deref(), x.digest.as_ref()),
        (Some("v1"), Some(&gone))
    );
    assert!(x.message.contains("team/app") && x.message.contains(&gone.to_string()));
}

#[test]
fn tag_index_missing_current() {
    let (mut inv, f) = valid();
    repo(&mut inv, "team/app").tags[0].index.clear();
    expect(
        &inv,
        Code::TagIndexMissingCurrent,
        &layout::tag_index_link("team/app", "v1", &f.app),
        &[],
    );
}

#[test]
fn tag_index_dangling() {
    let (mut inv, _) = valid();
    let old = Digest::of_bytes(b"collected long ago");
    repo(&mut inv, "team/app").tags[0].index.push(link(&old));
    inv.normalize();
    expect(
        &inv,
        Code::TagIndexDangling,
        &layout::tag_index_link("team/app", "v1", &old),
        &[],
    );
}

// ---- repositories ------------------------------------------------------------------------------

#[test]
fn repo_missing_layers() {
    let (mut inv, _) = valid();
    let r = repo(&mut inv, "team/app");
    r.has_layers = false;
    r.layers.clear();
    // Every config and layer is then unlinked: those findings are what repair relinks.
    expect(
        &inv,
        Code::RepoMissingLayers,
        &layout::layers_dir("team/app"),
        &[Code::ManifestRefUnlinked],
    );
}

#[test]
fn repo_missing_manifests() {
    let (mut inv, f) = valid();
    let (cfg, _) = config_and_layer(&inv, &f.app);
    inv.repos.push(Repo {
        name: "team/mounted".into(),
        has_layers: true,
        layers: vec![link(&cfg)],
        ..Repo::default()
    });
    inv.normalize();
    expect(
        &inv,
        Code::RepoMissingManifests,
        &layout::manifests_dir("team/mounted"),
        &[],
    );
}

#[test]
fn uploads_only_repository_is_missing_nothing() {
    let (mut inv, _) = valid();
    inv.repos.push(Repo {
        name: "team/new".into(),
        has_uploads: true,
        ..Repo::default()
    });
    inv.normalize();
    assert!(new_findings(&inv).is_empty());
}

#[test]
fn repo_missing_tags() {
    let (mut inv, _) = valid();
    let r = repo(&mut inv, "team/app");
    r.has_tags = false;
    r.tags.clear();
    expect(
        &inv,
        Code::RepoMissingTags,
        &layout::tags_dir("team/app"),
        &[],
    );
}

#[test]
fn repo_empty() {
    let (mut inv, _) = valid();
    inv.repos.push(Repo {
        name: "team/emptied".into(),
        has_layers: true,
        has_manifests: true,
        has_tags: true,
        ..Repo::default()
    });
    inv.normalize();
    expect(
        &inv,
        Code::RepoEmpty,
        &layout::repo_dir("team/emptied"),
        &[],
    );
}

#[test]
fn repo_and_tag_entries() {
    let cases = [
        (
            "repositories/team/_notes".to_string(),
            EntryKind::StrayUnderscore,
            Code::RepoStrayUnderscore,
            None,
        ),
        (
            "repositories/BadName".to_string(),
            EntryKind::RepoNameInvalid("uppercase"),
            Code::RepoNameInvalid,
            None,
        ),
        (
            layout::tag_dir("team/app", ".hidden"),
            EntryKind::TagNameInvalid,
            Code::TagNameInvalid,
            Some("team/app"),
        ),
    ];
    for (path, kind, code, repo_name) in cases {
        let (mut inv, _) = valid();
        inv.entries.push(Entry {
            path: path.clone(),
            kind,
        });
        let x = expect(&inv, code, &path, &[]);
        assert_eq!(x.repo.as_deref(), repo_name);
    }
}

// ---- uploads -----------------------------------------------------------------------------------

fn with_upload(started_at: StartedAt, mtime: i64) -> Inventory {
    let (mut inv, _) = valid();
    repo(&mut inv, "team/app").uploads.push(Upload {
        uuid: UUID.into(),
        started_at,
        bytes: 1234,
        mtime,
    });
    inv
}

#[test]
fn uploads() {
    let path = layout::upload_dir("team/app", UUID);
    let week = 168 * 3600;
    let stale = with_upload(StartedAt::Ok(NOW - week - 60), NOW - week);
    expect(&stale, Code::UploadStale, &path, &[]);
    let missing = with_upload(StartedAt::Missing, NOW - 3600);
    expect(&missing, Code::UploadNoStartedat, &path, &[]);
    let invalid = with_upload(StartedAt::Invalid("yesterday".into()), NOW - 3600);
    let x = expect(&invalid, Code::UploadNoStartedat, &path, &[]);
    assert!(x.message.contains("yesterday"));
    let recent = with_upload(StartedAt::Ok(NOW - 60), NOW - 60);
    expect(&recent, Code::UploadRecent, &path, &[]);
    // An old upload still being written to (mtime recent) is active, not stale: stale by
    // startedat alone must not make it a candidate for removal.
    let resumed = with_upload(StartedAt::Ok(NOW - week - 60), NOW - 10);
    let new = new_findings(&resumed);
    let codes: HashSet<Code> = new.iter().map(|x| x.code).collect();
    assert_eq!(codes, HashSet::from([Code::UploadRecent]), "{new:#?}");
    // An hour-old upload is neither.
    assert!(new_findings(&with_upload(StartedAt::Ok(NOW - 3600), NOW - 3600)).is_empty());
}

// ---- paths -------------------------------------------------------------------------------------

#[test]
fn path_entries() {
    let repo_base = layout::repo_dir("team/app");
    let cases = [
        (
            format!("{repo_base}/notes.txt"),
            EntryKind::Unrecognized("a file in a repository folder".into()),
            Code::PathUnrecognized,
        ),
        (
            layout::revisions_dir("team/app"),
            EntryKind::Unreadable("permission denied".into()),
            Code::PathUnreadable,
        ),
        (
            format!("{repo_base}/_layers/sha256/aa"),
            EntryKind::Symlink,
            Code::PathSymlink,
        ),
        (
            format!("{repo_base}/_manifests/tags/caf\u{fffd}"),
            EntryKind::NonUtf8,
            Code::PathNonUtf8,
        ),
        (
            format!(
                "{}.0190a0b0-1a2b-7c3d-8e9f-0123456789ab.tmp",
                layout::tag_current_link("team/app", "v1")
            ),
            EntryKind::TempResidue,
            Code::PathTempResidue,
        ),
        (
            format!("{repo_base}/_uploads/{UUID}"),
            EntryKind::Changed("vanished".into()),
            Code::PathChanged,
        ),
        (
            format!("{repo_base}/_layers/sha256/{}", "ef".repeat(32)),
            EntryKind::EmptyDir,
            Code::DirEmpty,
        ),
    ];
    for (path, kind, code) in cases {
        let (mut inv, _) = valid();
        inv.entries.push(Entry {
            path: path.clone(),
            kind,
        });
        let x = expect(&inv, code, &path, &[]);
        assert_eq!(x.repo.as_deref(), Some("team/app"), "{code}");
    }
}

#[test]
fn nested_repositories_claim_their_own_entries() {
    let mut f = fx();
    f.b.image("team/app/sub", Some("v1"));
    let mut inv = f.b.build();
    let path = format!("{}/x", layout::repo_dir("team/app/sub"));
    inv.entries.push(Entry {
        path: path.clone(),
        kind: EntryKind::Symlink,
    });
    let x = expect(&inv, Code::PathSymlink, &path, &[]);
    assert_eq!(x.repo.as_deref(), Some("team/app/sub"));
}

#[test]
fn hashing_trouble_is_reported_on_the_blob() {
    let (mut inv, f) = valid();
    let (_, layer) = config_and_layer(&inv, &f.app);
    let i = inv.blob_index(&layer).unwrap();
    inv.set_verify(i, Verify::Unreadable(Box::new("Input/output error".into())));
    expect(&inv, Code::PathUnreadable, &layout::blob_data(&layer), &[]);
    inv.set_verify(i, Verify::Changed(Box::new("size changed".into())));
    expect(&inv, Code::PathChanged, &layout::blob_data(&layer), &[]);
}

// ---- registry 2.8's `_layers` fallback ------------------------------------------------------

/// The revision link of a tagged manifest is gone but its `_layers` link is there: 2.8 serves the
/// tag. That is `revision-link-missing`, not a dangling tag; its blobs are not unreferenced.
#[test]
fn revision_link_missing() {
    let (mut inv, f) = valid();
    let r = repo(&mut inv, "team/app");
    r.revisions.retain(|l| l.path_digest != f.app);
    r.layers.push(link(&f.app));
    inv.normalize();
    let x = expect(
        &inv,
        Code::RevisionLinkMissing,
        &layout::revision_link("team/app", &f.app),
        &[],
    );
    assert_eq!(x.tag.as_deref(), Some("v1"));
    let new = new_findings(&inv);
    assert!(
        !new.iter().any(|x| matches!(
            x.code,
            Code::TagDangling | Code::TagIndexDangling | Code::BlobUnreferenced
        )),
        "{new:#?}"
    );
    // A folder without its link file reads as "not found" too: same fallback.
    let (mut inv, f) = valid();
    let r = repo(&mut inv, "team/app");
    r.revisions
        .iter_mut()
        .find(|l| l.path_digest == f.app)
        .unwrap()
        .set_state(LinkState::Absent);
    r.layers.push(link(&f.app));
    inv.normalize();
    expect(
        &inv,
        Code::RevisionLinkMissing,
        &layout::revision_link("team/app", &f.app),
        &[],
    );
    // Without the `_layers` link the tag dangles, as before.
    let (mut inv, f) = valid();
    repo(&mut inv, "team/app")
        .revisions
        .retain(|l| l.path_digest != f.app);
    expect(
        &inv,
        Code::TagDangling,
        &layout::tag_current_link("team/app", "v1"),
        &[],
    );
}

#[test]
fn index_children_use_the_layers_fallback_too() {
    let (mut inv, f) = valid();
    let c = f.children[0].clone();
    let r = repo(&mut inv, "team/multi");
    r.revisions.retain(|l| l.path_digest != c);
    r.layers.push(link(&c));
    inv.normalize();
    expect(
        &inv,
        Code::RevisionLinkMissing,
        &layout::revision_link("team/multi", &c),
        &[],
    );
    let new = new_findings(&inv);
    assert!(
        !new.iter().any(|x| x.code == Code::IndexChildMissing),
        "{new:#?}"
    );
}

// ---- no verdict from what could not be read ---------------------------------------------------

fn unreadable(inv: &mut Inventory, path: String) {
    inv.entries.push(Entry {
        path,
        kind: EntryKind::Unreadable("Permission denied (os error 13)".into()),
    });
    inv.normalize();
}

/// An orphan blob is `blob-unreferenced` only while every manifest and repository could be
/// read.
#[test]
fn nothing_is_unreferenced_while_a_repository_is_unread() {
    let mut f = fx();
    let orphan = f.b.blob(b"orphan");
    let inv = f.b.build();
    let path = layout::blob_data(&orphan);
    let has = |inv: &Inventory| {
        run(inv, &opts())
            .iter()
            .any(|x| x.code == Code::BlobUnreferenced && x.path.as_deref() == Some(path.as_str()))
    };
    assert!(has(&inv));
    for unread in [
        "repositories/team/other".to_string(),
        layout::revisions_dir("team/app"),
        layout::tags_dir("team/app"),
        layout::layers_dir("team/app"),
    ] {
        let mut blind = inv.clone();
        unreadable(&mut blind, unread.clone());
        assert!(!has(&blind), "{unread}");
    }
    // What the registry never reads for references blinds nothing.
    let mut fine = inv.clone();
    unreadable(
        &mut fine,
        format!("{}/_uploads/{UUID}", layout::repo_dir("team/app")),
    );
    assert!(has(&fine));
}

/// A manifest blob that exists but could not be read is `path-unreadable`, never
/// `manifest-invalid`, and its repository's tag classes and its references are not judged.
#[test]
fn an_unreadable_manifest_is_no_verdict() {
    let (mut inv, f) = valid();
    inv.manifests.remove(&f.ix);
    inv.unreadable_manifests
        .push((f.ix.clone(), "Permission denied (os error 13)".into()));
    inv.normalize();
    let all = run(&inv, &opts());
    let at = |code: Code| all.iter().filter(move |x| x.code == code);
    assert_eq!(
        at(Code::PathUnreadable)
            .map(|x| x.path.clone().unwrap())
            .collect::<Vec<_>>(),
        vec![layout::blob_data(&f.ix)]
    );
    assert_eq!(at(Code::ManifestInvalid).count(), 0, "{all:#?}");
    // The children are no longer known to be children: neither "untagged" nor "child".
    assert_eq!(at(Code::RevisionUntagged).count(), 0, "{all:#?}");
    assert_eq!(at(Code::RevisionUntaggedChild).count(), 0, "{all:#?}");
    assert_eq!(at(Code::BlobUnreferenced).count(), 0, "{all:#?}");
}

/// A tag folder or the revisions that could not be listed do not make tags "missing" or
/// "dangling", nor revisions "untagged"; an unlisted part of blobs/ makes nothing "missing".
#[test]
fn unlisted_folders_are_no_verdicts() {
    // The tags folder: every revision would look untagged.
    let (mut inv, _) = valid();
    repo(&mut inv, "team/app").tags.clear();
    unreadable(&mut inv, layout::tags_dir("team/app"));
    let all = run(&inv, &opts());
    assert!(
        !all.iter().any(|x| x.code == Code::RevisionUntagged),
        "{all:#?}"
    );
    // A tag folder: it would look like one without current/link.
    let (mut inv, _) = valid();
    repo(&mut inv, "team/app").tags[0].current = LinkState::Absent;
    unreadable(&mut inv, layout::tag_dir("team/app", "v1"));
    let all = run(&inv, &opts());
    assert!(
        !all.iter().any(|x| x.code == Code::TagCurrentMissing),
        "{all:#?}"
    );
    // The revisions: every tag would dangle.
    let (mut inv, _) = valid();
    repo(&mut inv, "team/app").revisions.clear();
    unreadable(&mut inv, layout::revisions_dir("team/app"));
    let all = run(&inv, &opts());
    assert!(!all.iter().any(|x| x.code == Code::TagDangling), "{all:#?}");
    // A fan-out folder of blobs/: the manifests in it would be missing.
    let (mut inv, f) = valid();
    inv.blobs.retain(|b| b.digest != f.app);
    inv.manifests.remove(&f.app);
    unreadable(&mut inv, format!("blobs/sha256/{}", &f.app.hex()[..2]));
    let all = run(&inv, &opts());
    assert!(
        !all.iter().any(|x| x.code == Code::RevisionBlobMissing),
        "{all:#?}"
    );
    assert!(all.iter().any(|x| x.code == Code::PathUnreadable));
}

/// Object storage: incomplete multipart uploads by age, keys no path can hold.
#[test]
fn object_storage_uploads_and_keys() {
    use crate::model::inventory::MultipartUpload;
    let (mut inv, _) = valid();
    inv.object_store = true;
    let o = opts();
    let up = |path: &str, initiated: i64, bytes: Option<u64>| MultipartUpload {
        path: path.into(),
        upload_id: format!("id-{initiated}"),
        initiated,
        bytes,
    };
    let dir = "repositories/team/app/_uploads/0b5c5a56-4a5e-4f6e-9a1e-2b3c4d5e6f70/data";
    inv.multipart_uploads = vec![
        up(dir, o.now - o.purge_age - 10, Some(1234)),
        up(dir, o.now - 5, None),
        up(dir, o.now - o.purge_age + 3600, Some(1)),
    ];
    inv.entries.push(Entry {
        path: "repositories/team//app".into(),
        kind: EntryKind::KeyNotAPath,
    });
    inv.normalize();
    let all = run(&inv, &o);
    let old: Vec<&Finding> = all
        .iter()
        .filter(|f| f.code == Code::UploadMultipartIncomplete)
        .collect();
    assert_eq!(old.len(), 1, "{all:#?}");
    assert!(old[0].message.contains("1234 bytes") && old[0].message.contains("id-"));
    assert_eq!(old[0].repo.as_deref(), Some("team/app"));
    let recent: Vec<&Finding> = all
        .iter()
        .filter(|f| f.code == Code::UploadRecent)
        .collect();
    assert_eq!(recent.len(), 1, "{all:#?}");
    assert!(recent[0].message.contains("size unknown"));
    assert!(all.iter().any(
        |f| f.code == Code::KeyNotAPath && f.path.as_deref() == Some("repositories/team//app")
    ));
}

/// Every code but GC's own two is produced by some test above: this list must grow with `Code`.
#[test]
fn every_check_code_is_covered() {
    let gc_only = [
        Code::GcWouldAbort,
        Code::GcWouldDeleteTagged,
        Code::GcCannotPredict,
    ];
    let covered = [
        Code::BlobDigestMismatch,
        Code::BlobSizeMismatch,
        Code::BlobEmpty,
        Code::BlobPathInvalid,
        Code::BlobDataMissing,
        Code::BlobUnreferenced,
        Code::BlobStrayFile,
        Code::LinkMalformed,
        Code::LinkMismatch,
        Code::LinkNotFile,
        Code::LinkAlias,
        Code::LayerLinkDangling,
        Code::LayerLinkUnused,
        Code::RevisionBlobMissing,
        Code::RevisionLegacySignature,
        Code::ManifestInvalid,
        Code::ManifestSchema1,
        Code::ManifestRefMissing,
        Code::ManifestRefUnlinked,
        Code::IndexChildMissing,
        Code::RevisionUntagged,
        Code::RevisionUntaggedChild,
        Code::RevisionLinkMissing,
        Code::TagCurrentMissing,
        Code::TagDangling,
        Code::TagIndexMissingCurrent,
        Code::TagIndexDangling,
        Code::TagNameInvalid,
        Code::RepoNameInvalid,
        Code::RepoMissingLayers,
        Code::RepoMissingManifests,
        Code::RepoMissingTags,
        Code::RepoStrayUnderscore,
        Code::RepoEmpty,
        Code::UploadStale,
        Code::UploadNoStartedat,
        Code::UploadRecent,
        Code::UploadMultipartIncomplete,
        Code::KeyNotAPath,
        Code::PathUnrecognized,
        Code::PathUnreadable,
        Code::PathSymlink,
        Code::PathNonUtf8,
        Code::PathTempResidue,
        Code::PathChanged,
        Code::DirEmpty,
    ];
    let all: HashSet<Code> = Code::ALL.iter().copied().collect();
    let listed: HashSet<Code> = covered.iter().chain(&gc_only).copied().collect();
    assert_eq!(all, listed, "a new code needs a break-one-thing test here");
}

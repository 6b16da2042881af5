//! Every finding code: take the clean store written by the real registry, break exactly one
//! thing, and assert that exact code at that exact path — and no other new warning or error
//! beyond the ones the break necessarily implies.

mod common;

use common::store::{self, fixture, fixture_now, run_json, v2};
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Ctx {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    v2: PathBuf,
    exp: Value,
    now: i64,
}

impl Ctx {
    fn new() -> Ctx {
        let tmp = fixture("sample");
        let root = tmp.path().to_path_buf();
        let now = fixture_now(&root);
        Ctx {
            v2: v2(&root),
            root,
            _tmp: tmp,
            exp: store::expected("sample"),
            now,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.v2.join(rel)
    }

    fn tag(&self, repo: &str, tag: &str) -> Digest {
        Digest::parse(
            self.exp["repositories"][repo]["tags"][tag]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    }

    /// The manifest JSON of a digest, read from the store.
    fn manifest(&self, d: &Digest) -> Value {
        serde_json::from_slice(&fs::read(self.p(&layout::blob_data(d))).unwrap()).unwrap()
    }

    /// The first child of the index that `repo:tag` names.
    fn first_child(&self, repo: &str, tag: &str) -> Digest {
        let ix = self.tag(repo, tag);
        Digest::parse(
            self.manifest(&ix)["manifests"][0]["digest"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    }

    /// The digests of a manifest's layers.
    fn layers(&self, d: &Digest) -> Vec<Digest> {
        self.manifest(d)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| Digest::parse(l["digest"].as_str().unwrap()).unwrap())
            .collect()
    }

    fn config(&self, d: &Digest) -> Digest {
        Digest::parse(self.manifest(d)["config"]["digest"].as_str().unwrap()).unwrap()
    }

    fn write(&self, rel: &str, data: &[u8]) {
        let p = self.p(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    /// Store a new blob with correct content at its canonical path.
    fn add_blob(&self, data: &[u8]) -> Digest {
        let d = Digest::of_bytes(data);
        self.write(&layout::blob_data(&d), data);
        d
    }

    fn rm(&self, rel: &str) {
        let p = self.p(rel);
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            fs::remove_dir_all(p).unwrap();
        } else {
            fs::remove_file(p).unwrap();
        }
    }

    fn check(&self, extra: &[&str]) -> (i32, Value) {
        let now = self.now.to_string();
        let mut args = vec!["check", self.root.to_str().unwrap(), "--now", &now];
        args.extend_from_slice(extra);
        run_json(&args)
    }
}

fn findings(doc: &Value) -> Vec<(String, String, String)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap_or("").to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The clean sample store's warn/error findings (all legitimate: see `clean_store_findings`).
fn baseline() -> BTreeSet<(String, String)> {
    let ctx = Ctx::new();
    let (_, doc) = ctx.check(&[]);
    findings(&doc)
        .into_iter()
        .filter(|f| f.2 != "info")
        .map(|f| (f.0, f.1))
        .collect()
}

/// Break something, then assert `code` at `path` and that every other new warning or error has a
/// code in `allowed`.
fn assert_break(ctx: &Ctx, code: &str, path: &str, allowed: &[&str], args: &[&str]) -> Value {
    let (exit, doc) = ctx.check(args);
    let all = findings(&doc);
    assert!(
        all.iter().any(|f| f.0 == code && f.1 == path),
        "expected {code} at {path}; got:\n{:#?}",
        all
    );
    let base = baseline();
    for f in &all {
        if f.2 == "info" || f.0 == code || base.contains(&(f.0.clone(), f.1.clone())) {
            continue;
        }
        assert!(
            allowed.contains(&f.0.as_str()),
            "unrelated {} at {} after breaking for {code}",
            f.0,
            f.1
        );
    }
    let errors = all.iter().any(|f| f.2 == "error");
    assert_eq!(
        exit & 4 != 0,
        errors,
        "exit status {exit} vs errors {errors}"
    );
    advice_matches_repair(ctx, &doc, args);
    doc
}

/// The actions `regfsck repair` plans for this store, as (code, kind, path).
fn planned(ctx: &Ctx, lossy: bool, no_verify: bool) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.json");
    let now = ctx.now.to_string();
    let mut cmd = store::regfsck();
    cmd.args([
        "repair",
        ctx.root.to_str().unwrap(),
        "--now",
        &now,
        "--plan",
    ])
    .arg(&file);
    if lossy {
        cmd.arg("--lossy");
    }
    if no_verify {
        cmd.arg("--no-verify");
    }
    let out = cmd.output().unwrap();
    let plan: Value = serde_json::from_slice(&fs::read(&file).unwrap_or_else(|e| {
        panic!(
            "repair wrote no plan ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    }))
    .unwrap();
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let path = a["path"].as_str().or(a["from"].as_str()).unwrap();
            (
                a["code"].as_str().unwrap().to_string(),
                a["kind"].as_str().unwrap().to_string(),
                path.to_string(),
            )
        })
        .collect()
}

/// Issue 12 (#8): the advice `check` prints for each finding — its fix text, its `repair` field,
/// the "Next:" lines — is what `regfsck repair` then plans: a finding said to be repaired has its
/// actions in the plan (with `--lossy` exactly when the advice says so), a finding said to need
/// the operator has none, and "Next" sends to `regfsck repair` only when the plan is not empty.
fn advice_matches_repair(ctx: &Ctx, doc: &Value, args: &[&str]) {
    let no_verify = args.contains(&"--no-verify");
    let safe = planned(ctx, false, no_verify);
    let with_lossy = planned(ctx, true, no_verify);
    let root = ctx.root.to_str().unwrap();
    // An action of the plan, or inside a folder the plan quarantines anyway.
    let covered = |plan: &[(String, String, String)], code: &str, kind: &str, path: &str| {
        plan.iter().any(|(c, k, p)| {
            (c == code && k == kind && p == path)
                || (k == "quarantine" && path.starts_with(&format!("{p}/")))
        })
    };
    let findings = doc["findings"].as_array().unwrap();
    let codes_with_hint: BTreeSet<&str> = findings
        .iter()
        .filter(|f| !f["repair"].is_null())
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for f in findings {
        let code = f["code"].as_str().unwrap();
        let fix = f["fix"].as_str().unwrap();
        let hint = &f["repair"];
        let what = format!("{code} at {}: fix {fix:?}, repair {hint}", f["path"]);
        if hint.is_null() {
            assert!(!fix.contains("regfsck repair"), "{what}");
            if !codes_with_hint.contains(code) {
                assert!(
                    !with_lossy.iter().any(|a| a.0 == code),
                    "{what}: yet repair --lossy plans {with_lossy:?}"
                );
            }
            continue;
        }
        let lossy = hint["lossy"].as_bool().unwrap();
        let flag = if lossy {
            "--apply --lossy`"
        } else {
            "--apply`"
        };
        assert!(
            fix.contains(&format!("regfsck repair {root} {flag}")),
            "{what}"
        );
        let plan = if lossy { &with_lossy } else { &safe };
        if let Some(via) = hint.get("via") {
            let (vc, vp) = (via["code"].as_str().unwrap(), via["path"].as_str().unwrap());
            assert!(
                plan.iter().any(|a| a.0 == vc),
                "{what}: {vc} at {vp} not in {plan:?}"
            );
            continue;
        }
        for a in hint["actions"].as_array().unwrap() {
            let path = a["path"].as_str().or(a["from"].as_str()).unwrap();
            let kind = a["kind"].as_str().unwrap();
            assert!(
                covered(plan, code, kind, path),
                "{what}: not in the plan {plan:?}"
            );
            if lossy {
                assert!(
                    !covered(&safe, code, kind, path),
                    "{what}: said to need --lossy, but the plain plan has it"
                );
            }
        }
    }
    let next = doc["next_steps"].to_string();
    let reported: BTreeSet<&str> = findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    let safe_here = safe.iter().any(|a| reported.contains(a.0.as_str()));
    assert_eq!(
        next.contains(&format!("Run `regfsck repair {root}` to review the plan")),
        safe_here,
        "Next: {next}; plan {safe:?}"
    );
    let lossy_only = with_lossy
        .iter()
        .any(|a| reported.contains(a.0.as_str()) && !safe.contains(a));
    assert_eq!(
        next.contains(&format!("`regfsck repair {root} --lossy`")),
        lossy_only,
        "Next: {next}; lossy plan {with_lossy:?}"
    );
}

#[test]
fn clean_store_findings() {
    let ctx = Ctx::new();
    let (exit, doc) = ctx.check(&[]);
    assert_eq!(exit, 0, "{doc:#}");
    let all = findings(&doc);
    let codes: BTreeSet<&str> = all.iter().map(|f| f.0.as_str()).collect();
    // Exactly the legitimate facts of a store the registry wrote: untagged revision (moved tag),
    // index children (2.8 -m trap), blobs only GC frees, layer links 2.8 never cleans, the API
    // delete's empty revision folder and emptied repository, the mount-only repository.
    let want: BTreeSet<&str> = [
        "revision-untagged",
        "revision-untagged-child",
        "blob-unreferenced",
        "layer-link-unused",
        "dir-empty",
        "repo-empty",
        "repo-missing-manifests",
    ]
    .into_iter()
    .collect();
    assert_eq!(codes, want, "{all:#?}");
    assert!(all.iter().all(|f| f.2 != "error"), "{all:#?}");
    let untagged = ctx.exp["untagged"]["library/alpine"][0].as_str().unwrap();
    assert!(doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "revision-untagged" && f["digest"] == untagged));
    assert_eq!(
        all.iter()
            .filter(|f| f.0 == "revision-untagged-child")
            .count(),
        4
    );
    advice_matches_repair(&ctx, &doc, &[]);
}

#[test]
fn minimal_store_is_spotless() {
    let tmp = fixture("minimal");
    let (exit, doc) = run_json(&["check", tmp.path().to_str().unwrap()]);
    assert_eq!(exit, 0);
    assert_eq!(doc["findings"].as_array().unwrap().len(), 0, "{doc:#}");
    assert_eq!(doc["summary"]["fully_verified"], true);
}

#[test]
fn blob_digest_mismatch() {
    let ctx = Ctx::new();
    let layer = ctx.layers(&ctx.tag("team/proj", "v1"))[1].clone();
    let path = layout::blob_data(&layer);
    let mut data = fs::read(ctx.p(&path)).unwrap();
    data[10] ^= 0xff;
    ctx.write(&path, &data);
    assert_break(&ctx, "blob-digest-mismatch", &path, &[], &[]);
    // Structure-only runs cannot see it.
    let (_, doc) = ctx.check(&["--no-verify"]);
    assert!(!findings(&doc).iter().any(|f| f.0 == "blob-digest-mismatch"));
}

#[test]
fn blob_size_mismatch() {
    let ctx = Ctx::new();
    let cfg = ctx.config(&ctx.tag("team/proj", "v1"));
    let path = layout::blob_data(&cfg);
    let mut data = fs::read(ctx.p(&path)).unwrap();
    data.extend_from_slice(b"  ");
    ctx.write(&path, &data);
    assert_break(&ctx, "blob-size-mismatch", &path, &[], &["--no-verify"]);
}

#[test]
fn blob_empty() {
    let ctx = Ctx::new();
    let layer = ctx.layers(&ctx.tag("team/proj", "v1"))[1].clone();
    let path = layout::blob_data(&layer);
    ctx.write(&path, b"");
    assert_break(&ctx, "blob-empty", &path, &[], &[]);
}

/// A blob only the deleted manifest referenced: moving it cannot break any image.
fn orphan(ctx: &Ctx) -> Digest {
    let doomed = Digest::parse(ctx.exp["deleted_manifest"]["digest"].as_str().unwrap()).unwrap();
    ctx.config(&doomed)
}

#[test]
fn blob_path_invalid() {
    let ctx = Ctx::new();
    let d = orphan(&ctx);
    let wrong = format!("blobs/sha256/zz/{}", d.hex());
    fs::create_dir_all(ctx.p("blobs/sha256/zz")).unwrap();
    fs::rename(ctx.p(&layout::blob_dir(&d)), ctx.p(&wrong)).unwrap();
    assert_break(
        &ctx,
        "blob-path-invalid",
        &format!("{wrong}/data"),
        &["gc-would-abort", "layer-link-dangling"],
        &[],
    );
}

#[test]
fn blob_data_missing() {
    let ctx = Ctx::new();
    let d = orphan(&ctx);
    ctx.rm(&layout::blob_data(&d));
    let doc = assert_break(
        &ctx,
        "blob-data-missing",
        &layout::blob_dir(&d),
        &["layer-link-dangling"],
        &[],
    );
    assert_eq!(doc["exit_code"], 0);
}

#[test]
fn blob_unreferenced() {
    let ctx = Ctx::new();
    let d = ctx.add_blob(b"a blob nobody references");
    assert_break(&ctx, "blob-unreferenced", &layout::blob_data(&d), &[], &[]);
}

#[test]
fn blob_stray_file() {
    let ctx = Ctx::new();
    let d = orphan(&ctx);
    let path = format!("{}/notes.txt", layout::blob_dir(&d));
    ctx.write(&path, b"hand-written");
    // Inside a blob folder: the default stats `data` directly, as the registry does; --deep lists.
    assert_break(&ctx, "blob-stray-file", &path, &[], &["--deep"]);
}

#[test]
fn link_malformed() {
    let ctx = Ctx::new();
    let d = ctx.tag("library/alpine", "latest");
    let path = layout::revision_link("library/alpine", &d);
    ctx.write(&path, format!("{d}\n").as_bytes());
    assert_break(&ctx, "link-malformed", &path, &["gc-would-abort"], &[]);
}

#[test]
fn link_mismatch() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj/app", "v1");
    let layers = ctx.layers(&m);
    let path = layout::layer_link("team/proj/app", &layers[0]);
    ctx.write(&path, layers[1].to_string().as_bytes());
    assert_break(&ctx, "link-mismatch", &path, &[], &[]);
}

#[test]
fn link_not_file() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj/app", "v1");
    let path = layout::layer_link("team/proj/app", &ctx.layers(&m)[0]);
    ctx.rm(&path);
    fs::create_dir(ctx.p(&path)).unwrap();
    assert_break(&ctx, "link-not-file", &path, &[], &[]);
}

#[test]
fn link_alias_is_info() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj/app", "v1");
    let layer = ctx.layers(&m)[0].clone();
    let alias = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
    let path = layout::layer_link("team/proj/app", &alias);
    ctx.write(&path, layer.to_string().as_bytes());
    let doc = assert_break(&ctx, "link-alias", &path, &[], &[]);
    assert_eq!(doc["exit_code"], 0);
}

#[test]
fn layer_link_dangling() {
    let ctx = Ctx::new();
    let ghost = Digest::of_bytes(b"never uploaded");
    let path = layout::layer_link("library/alpine", &ghost);
    ctx.write(&path, ghost.to_string().as_bytes());
    assert_break(&ctx, "layer-link-dangling", &path, &[], &[]);
}

#[test]
fn layer_link_unused() {
    let ctx = Ctx::new();
    let d = orphan(&ctx);
    let path = layout::layer_link("library/alpine", &d);
    ctx.write(&path, d.to_string().as_bytes());
    assert_break(&ctx, "layer-link-unused", &path, &[], &[]);
}

#[test]
fn revision_blob_missing() {
    let ctx = Ctx::new();
    let old = Digest::parse(ctx.exp["untagged"]["library/alpine"][0].as_str().unwrap()).unwrap();
    ctx.rm(&layout::blob_dir(&old));
    assert_break(
        &ctx,
        "revision-blob-missing",
        &layout::revision_link("library/alpine", &old),
        &[],
        &[],
    );
}

#[test]
fn revision_legacy_signature() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj", "v1");
    let sig = Digest::of_bytes(b"old jws signature");
    let path = format!(
        "repositories/team/proj/_manifests/revisions/sha256/{}/signatures/sha256/{}/link",
        m.hex(),
        sig.hex()
    );
    ctx.write(&path, sig.to_string().as_bytes());
    assert_break(&ctx, "revision-legacy-signature", &path, &[], &[]);
}

#[test]
fn manifest_invalid() {
    let ctx = Ctx::new();
    let d = ctx.add_blob(b"this is not JSON");
    ctx.write(
        &layout::revision_link("team/proj", &d),
        d.to_string().as_bytes(),
    );
    assert_break(
        &ctx,
        "manifest-invalid",
        &layout::blob_data(&d),
        &["gc-would-abort"],
        &[],
    );
}

#[test]
fn manifest_invalid_that_panics_gc() {
    let ctx = Ctx::new();
    let d = ctx.add_blob(br#"{"schemaVersion":2,"manifests":"x"}"#);
    ctx.write(
        &layout::revision_link("team/proj", &d),
        d.to_string().as_bytes(),
    );
    let doc = assert_break(
        &ctx,
        "manifest-invalid",
        &layout::blob_data(&d),
        &["gc-would-abort"],
        &[],
    );
    let msg = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "manifest-invalid")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("panic"), "{msg}");
}

#[test]
fn manifest_schema1() {
    let ctx = Ctx::new();
    let layer = ctx.layers(&ctx.tag("team/proj", "v1"))[0].clone();
    let body = format!(
        r#"{{"schemaVersion":1,"name":"team/proj","tag":"old","architecture":"amd64","fsLayers":[{{"blobSum":"{layer}"}}],"history":[{{"v1Compatibility":"{{}}"}}]}}"#
    );
    let d = ctx.add_blob(body.as_bytes());
    ctx.write(
        &layout::revision_link("team/proj", &d),
        d.to_string().as_bytes(),
    );
    assert_break(
        &ctx,
        "manifest-schema1",
        &layout::blob_data(&d),
        &["gc-would-abort"],
        &[],
    );
}

#[test]
fn manifest_ref_missing() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj", "v1");
    let layer = ctx.layers(&m)[1].clone();
    ctx.rm(&layout::blob_dir(&layer));
    assert_break(
        &ctx,
        "manifest-ref-missing",
        &layout::blob_data(&layer),
        &["layer-link-dangling"],
        &[],
    );
}

#[test]
fn manifest_ref_unlinked() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj/app", "v1");
    let cfg = ctx.config(&m);
    let path = layout::layer_link("team/proj/app", &cfg);
    ctx.rm(&path);
    assert_break(&ctx, "manifest-ref-unlinked", &path, &[], &[]);
}

#[test]
fn index_child_missing() {
    let ctx = Ctx::new();
    let child = ctx.first_child("multi/oci", "latest");
    let path = layout::revision_link("multi/oci", &child);
    ctx.rm(path.strip_suffix("/link").unwrap());
    assert_break(
        &ctx,
        "index-child-missing",
        &path,
        &["gc-would-delete-tagged"],
        &[],
    );
}

#[test]
fn revision_untagged() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj", "v1");
    ctx.rm(&layout::tag_dir("team/proj", "v1"));
    assert_break(
        &ctx,
        "revision-untagged",
        &layout::revision_link("team/proj", &m),
        &[],
        &[],
    );
}

#[test]
fn revision_untagged_child() {
    let ctx = Ctx::new();
    let ix = ctx.tag("multi/docker", "latest");
    let child = Digest::parse(
        ctx.manifest(&ix)["manifests"][1]["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let (_, doc) = ctx.check(&[]);
    let path = layout::revision_link("multi/docker", &child);
    assert!(findings(&doc)
        .iter()
        .any(|f| f.0 == "revision-untagged-child" && f.1 == path));
    // Tag the child: it is no longer a trap for 2.8's --delete-untagged.
    ctx.write(
        &layout::tag_current_link("multi/docker", "arm"),
        child.to_string().as_bytes(),
    );
    ctx.write(
        &layout::tag_index_link("multi/docker", "arm", &child),
        child.to_string().as_bytes(),
    );
    let (_, doc) = ctx.check(&[]);
    assert!(!findings(&doc)
        .iter()
        .any(|f| f.0 == "revision-untagged-child" && f.1 == path));
}

#[test]
fn tag_current_missing() {
    let ctx = Ctx::new();
    let path = layout::tag_current_link("library/alpine", "3.19");
    ctx.rm(path.strip_suffix("/link").unwrap());
    assert_break(&ctx, "tag-current-missing", &path, &[], &[]);
}

#[test]
fn tag_dangling() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj", "v1");
    ctx.rm(layout::revision_link("team/proj", &m)
        .strip_suffix("/link")
        .unwrap());
    assert_break(
        &ctx,
        "tag-dangling",
        &layout::tag_current_link("team/proj", "v1"),
        &["gc-would-delete-tagged"],
        &[],
    );
}

#[test]
fn revision_link_missing() {
    // Registry 2.8 still serves the tag through the `_layers` link of the same digest
    // (tests/layers_fallback.rs pulls it); GC never marks it.
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj", "v1");
    let rev = layout::revision_link("team/proj", &m);
    ctx.rm(rev.strip_suffix("/link").unwrap());
    ctx.write(
        &layout::layer_link("team/proj", &m),
        m.to_string().as_bytes(),
    );
    let doc = assert_break(
        &ctx,
        "revision-link-missing",
        &rev,
        &["gc-would-delete-tagged"],
        &[],
    );
    assert!(!findings(&doc).iter().any(|f| f.0 == "tag-dangling"));
}

#[test]
fn tag_index_missing_current() {
    let ctx = Ctx::new();
    let m = ctx.tag("library/alpine", "3.19");
    let path = layout::tag_index_link("library/alpine", "3.19", &m);
    ctx.rm(path.strip_suffix("/link").unwrap());
    assert_break(&ctx, "tag-index-missing-current", &path, &[], &[]);
}

#[test]
fn tag_index_dangling() {
    let ctx = Ctx::new();
    let ghost = Digest::of_bytes(b"a manifest long gone");
    let path = layout::tag_index_link("team/proj", "v1", &ghost);
    ctx.write(&path, ghost.to_string().as_bytes());
    assert_break(&ctx, "tag-index-dangling", &path, &[], &[]);
}

#[test]
fn tag_name_invalid() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj", "v1");
    ctx.write(
        &layout::tag_current_link("team/proj", ".hidden"),
        m.to_string().as_bytes(),
    );
    ctx.write(
        &layout::tag_index_link("team/proj", ".hidden", &m),
        m.to_string().as_bytes(),
    );
    assert_break(
        &ctx,
        "tag-name-invalid",
        "repositories/team/proj/_manifests/tags/.hidden",
        &[],
        &[],
    );
}

#[test]
fn repo_name_invalid() {
    let ctx = Ctx::new();
    fs::rename(
        ctx.p("repositories/beta/app"),
        ctx.p("repositories/beta/App"),
    )
    .unwrap();
    assert_break(
        &ctx,
        "repo-name-invalid",
        "repositories/beta/App",
        &["gc-would-abort"],
        &[],
    );
}

#[test]
fn repo_missing_layers() {
    let ctx = Ctx::new();
    ctx.rm("repositories/team/proj/app/_layers");
    assert_break(
        &ctx,
        "repo-missing-layers",
        "repositories/team/proj/app/_layers",
        &[
            "manifest-ref-unlinked",
            "gc-would-abort",
            "gc-would-delete-tagged",
        ],
        &[],
    );
}

#[test]
fn repo_missing_manifests() {
    let ctx = Ctx::new();
    ctx.rm("repositories/scratch/doomed/_manifests");
    let doc = assert_break(
        &ctx,
        "repo-missing-manifests",
        "repositories/scratch/doomed/_manifests",
        &[],
        &[],
    );
    assert_eq!(doc["exit_code"], 0);
}

#[test]
fn repo_missing_tags() {
    let ctx = Ctx::new();
    ctx.rm("repositories/team/proj/_manifests/tags");
    assert_break(
        &ctx,
        "repo-missing-tags",
        "repositories/team/proj/_manifests/tags",
        &["gc-would-abort", "gc-would-delete-tagged"],
        &[],
    );
}

#[test]
fn repo_stray_underscore() {
    let ctx = Ctx::new();
    ctx.write("repositories/team/_notes", b"who owns proj?");
    assert_break(
        &ctx,
        "repo-stray-underscore",
        "repositories/team/_notes",
        &["gc-would-delete-tagged"],
        &[],
    );
}

#[test]
fn repo_empty() {
    let ctx = Ctx::new();
    let (_, doc) = ctx.check(&[]);
    assert!(findings(&doc)
        .iter()
        .any(|f| f.0 == "repo-empty" && f.1 == "repositories/scratch/doomed"));
    ctx.rm("repositories/team/proj/_manifests/tags/v1");
    ctx.rm("repositories/team/proj/_manifests/revisions");
    let (_, doc) = ctx.check(&[]);
    assert!(findings(&doc)
        .iter()
        .any(|f| f.0 == "repo-empty" && f.1 == "repositories/team/proj"));
}

fn upload_path(ctx: &Ctx) -> String {
    layout::upload_dir(
        ctx.exp["upload"]["repo"].as_str().unwrap(),
        ctx.exp["upload"]["uuid"].as_str().unwrap(),
    )
}

#[test]
fn upload_stale() {
    let mut ctx = Ctx::new();
    ctx.now += 200 * 3600;
    assert_break(&ctx, "upload-stale", &upload_path(&ctx), &[], &[]);
    // The config's purge age is honoured (here: a day).
    ctx.now -= 200 * 3600;
    let (_, doc) = ctx.check(&["--purge-age", "12h"]);
    assert!(findings(&doc).iter().any(|f| f.0 == "upload-stale"));
}

#[test]
fn upload_no_startedat() {
    let ctx = Ctx::new();
    ctx.rm(&format!("{}/startedat", upload_path(&ctx)));
    assert_break(&ctx, "upload-no-startedat", &upload_path(&ctx), &[], &[]);
}

#[test]
fn upload_recent() {
    let mut ctx = Ctx::new();
    ctx.now -= 86_400 - 60;
    let doc = assert_break(&ctx, "upload-recent", &upload_path(&ctx), &[], &[]);
    assert!(doc["next_steps"].to_string().contains("looks active"));
}

#[test]
fn path_unrecognized() {
    let ctx = Ctx::new();
    ctx.write("backup.tar", b"not the registry's");
    assert_break(&ctx, "path-unrecognized", "backup.tar", &[], &[]);
}

#[test]
fn path_unreadable() {
    let ctx = Ctx::new();
    let dir = ctx.p("repositories/team/proj/app/_manifests/tags");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything: run the check as nobody, with the rest of the store readable.
    let mut p = ctx.root.clone();
    while p.pop() {
        if p == Path::new("/") || p == std::env::temp_dir() {
            break;
        }
    }
    fs::set_permissions(ctx._tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = store::unprivileged(env!("CARGO_BIN_EXE_regfsck"));
    let out = cmd
        .args([
            "check",
            ctx.root.to_str().unwrap(),
            "--format",
            "json",
            "--now",
            &ctx.now.to_string(),
        ])
        .output()
        .unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        findings(&doc).iter().any(
            |f| f.0 == "path-unreadable" && f.1 == "repositories/team/proj/app/_manifests/tags"
        ),
        "{doc:#}"
    );
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn path_symlink() {
    let ctx = Ctx::new();
    std::os::unix::fs::symlink("/etc", ctx.p("repositories/team/elsewhere")).unwrap();
    // The registry's catalog walk would follow it out of the store: no GC prediction.
    let doc = assert_break(
        &ctx,
        "path-symlink",
        "repositories/team/elsewhere",
        &["gc-cannot-predict"],
        &[],
    );
    assert!(
        !doc.to_string().contains("passwd"),
        "the symlink was followed"
    );
}

#[test]
fn path_non_utf8() {
    let ctx = Ctx::new();
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fs::create_dir_all(ctx.p("repositories").join(name).join("_layers")).unwrap();
    // A repository there: registry 2.8's catalog walk finds it and aborts on its name.
    let doc = assert_break(
        &ctx,
        "path-non-utf8",
        "repositories/caf\u{fffd}",
        &["gc-would-abort"],
        &[],
    );
    assert!(findings(&doc)
        .iter()
        .any(|f| f.0 == "gc-would-abort" && f.1 == "repositories/caf\u{fffd}"));
}

#[test]
fn path_temp_residue() {
    let ctx = Ctx::new();
    let m = ctx.tag("team/proj", "v1");
    let path = format!(
        "{}.01a2038b-a7e0-7487-8e9f-0123456789ab.tmp",
        layout::tag_current_link("team/proj", "v1")
    );
    ctx.write(&path, m.to_string().as_bytes());
    // Beside a tag's current link: found by --deep, which lists inside every link folder.
    assert_break(&ctx, "path-temp-residue", &path, &[], &["--deep"]);
}

#[test]
fn gc_cannot_predict() {
    // The registry's revision walk would follow this link out of the store.
    let ctx = Ctx::new();
    let at = format!(
        "{}/sha256/{}",
        layout::revisions_dir("team/proj"),
        "ab".repeat(32)
    );
    std::os::unix::fs::symlink("/etc", ctx.p(&at)).unwrap();
    let doc = assert_break(&ctx, "gc-cannot-predict", &at, &["path-symlink"], &[]);
    let hits = findings(&doc)
        .into_iter()
        .filter(|f| f.0 == "gc-cannot-predict")
        .count();
    assert_eq!(hits, 4, "every version and mode walks revisions");
}

#[test]
fn dir_empty() {
    let ctx = Ctx::new();
    let doomed = Digest::parse(ctx.exp["deleted_manifest"]["digest"].as_str().unwrap()).unwrap();
    let (_, doc) = ctx.check(&[]);
    let path = layout::revision_link("scratch/doomed", &doomed);
    assert!(findings(&doc)
        .iter()
        .any(|f| f.0 == "dir-empty" && f.1 == path.strip_suffix("/link").unwrap()));
}

#[test]
fn check_never_writes() {
    let ctx = Ctx::new();
    // A damaged store, so that every code path that could "fix" something runs.
    ctx.write(
        &layout::revision_link("team/proj", &ctx.tag("team/proj", "v1")),
        b"",
    );
    ctx.write("repositories/team/_notes", b"x");
    let before = store::fingerprint(&ctx.root, &[]);
    let (exit, _) = ctx.check(&["--all"]);
    assert_eq!(exit, 4);
    assert_eq!(before, store::fingerprint(&ctx.root, &[]));
}

/// The fast lanes (read `link`, stat `data` directly) must see every anomaly of the object itself
/// exactly as the deep scan that lists each folder: they fall back to listing whenever the direct
/// read is unusual. One store with all such anomalies at once; both scans report the same.
#[test]
fn fast_and_deep_scans_agree_on_damaged_objects() {
    use std::os::unix::fs::symlink;
    let ctx = Ctx::new();
    let app = ctx.tag("team/proj/app", "v1");
    let app_layers = ctx.layers(&app);
    let proj = ctx.tag("team/proj", "v1");
    let proj_layers = ctx.layers(&proj);
    // _layers: empty link, link as a folder, link as a symlink, a FIFO, an oversized link,
    // a folder without link, a malformed link, a link naming another digest.
    ctx.write(&layout::layer_link("team/proj/app", &app_layers[0]), b"");
    ctx.rm(&layout::layer_link("team/proj/app", &app_layers[1]));
    fs::create_dir(ctx.p(&layout::layer_link("team/proj/app", &app_layers[1]))).unwrap();
    let cfg = ctx.config(&app);
    ctx.rm(&layout::layer_link("team/proj/app", &cfg));
    symlink(
        "/etc/hostname",
        ctx.p(&layout::layer_link("team/proj/app", &cfg)),
    )
    .unwrap();
    let fifo = ctx.p(&layout::layer_link("team/proj", &proj_layers[0]));
    ctx.rm(&layout::layer_link("team/proj", &proj_layers[0]));
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    ctx.write(
        &layout::layer_link("team/proj", &ctx.config(&proj)),
        &[b'x'; 300],
    );
    let beta = ctx.tag("beta/app", "v1");
    let beta_layers = ctx.layers(&beta);
    ctx.rm(&layout::layer_link("beta/app", &beta_layers[0]));
    ctx.write(
        &layout::layer_link("beta/app", &ctx.config(&beta)),
        format!("{}\n", ctx.config(&beta)).as_bytes(),
    );
    // Revisions: a legacy signature subfolder; tags: a missing current link, a current link that
    // is a folder, an index entry without link.
    let sig = Digest::of_bytes(b"old jws signature");
    ctx.write(
        &format!(
            "repositories/team/proj/_manifests/revisions/sha256/{}/signatures/sha256/{}/link",
            proj.hex(),
            sig.hex()
        ),
        sig.to_string().as_bytes(),
    );
    ctx.rm(&layout::tag_current_link("library/alpine", "3.19"));
    let latest = layout::tag_current_link("library/alpine", "latest");
    ctx.rm(&latest);
    fs::create_dir(ctx.p(&latest)).unwrap();
    ctx.rm(&layout::tag_index_link("beta/app", "v1", &beta));
    ctx.write(
        &layout::tag_index_link("team/proj/app", "v1", &app),
        proj.to_string().as_bytes(),
    );
    // Blobs: data missing, data a folder, data a symlink.
    let o1 = ctx.add_blob(b"orphan one");
    let o2 = ctx.add_blob(b"orphan two");
    let o3 = ctx.add_blob(b"orphan three");
    ctx.rm(&layout::blob_data(&o1));
    ctx.rm(&layout::blob_data(&o2));
    fs::create_dir(ctx.p(&layout::blob_data(&o2))).unwrap();
    ctx.rm(&layout::blob_data(&o3));
    symlink("/etc/hostname", ctx.p(&layout::blob_data(&o3))).unwrap();

    let (fast_exit, fast) = ctx.check(&[]);
    let (deep_exit, deep) = ctx.check(&["--deep"]);
    let (f, d) = (findings(&fast), findings(&deep));
    assert_eq!(f, d, "fast and deep scans differ");
    assert_eq!(fast_exit, deep_exit);
    for code in [
        "link-malformed",
        "link-mismatch",
        "link-not-file",
        "path-symlink",
        "revision-legacy-signature",
        "tag-current-missing",
        "blob-data-missing",
        "blob-path-invalid",
        "dir-empty",
    ] {
        assert!(f.iter().any(|x| x.0 == code), "{code} missing: {f:#?}");
    }
}

/// Findings at or below a symbolic link the registry follows (to a copy out of the store) name
/// no tag as broken: regfsck never follows it, so whether pulls through it work is not known
/// (the fuzzer saw these tags pull). A dangling symbolic link fails for the registry too: the
/// tag it breaks is still named.
#[test]
fn findings_through_a_followed_symlink_name_no_tag() {
    use std::os::unix::fs::symlink;
    let ctx = Ctx::new();
    let outside = tempfile::tempdir().unwrap();
    let child = ctx.first_child("multi/oci", "latest");
    let child_link = layout::revision_link("multi/oci", &child);
    let alpine = layout::tag_current_link("library/alpine", "3.19");
    for (i, rel) in [&child_link, &alpine].into_iter().enumerate() {
        let copy = outside.path().join(format!("link{i}"));
        fs::copy(ctx.p(rel), &copy).unwrap();
        ctx.rm(rel);
        symlink(&copy, ctx.p(rel)).unwrap();
    }
    let dangling = layout::tag_current_link("beta/app", "v1");
    ctx.rm(&dangling);
    symlink("../../nowhere/current/link", ctx.p(&dangling)).unwrap();
    let (_, doc) = ctx.check(&["--no-verify"]);
    let about = |code: &str, path: &str| -> Value {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code && f["path"] == path)
            .unwrap_or_else(|| panic!("no {code} at {path}: {doc:#}"))
            .clone()
    };
    for (code, path) in [
        ("link-not-file", &child_link),
        ("index-child-missing", &child_link),
        ("link-not-file", &alpine),
    ] {
        let f = about(code, path);
        assert!(f.get("affected").is_none(), "{f:#}");
        assert!(
            f["message"].as_str().unwrap().contains("not known here"),
            "{f:#}"
        );
    }
    let f = about("link-not-file", &dangling);
    assert_eq!(
        f["affected"],
        serde_json::json!([{"repo": "beta/app", "tags": ["v1"]}]),
        "{f:#}"
    );
}

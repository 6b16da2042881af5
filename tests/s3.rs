//! Object storage: the `sample` store pushed through the real registry's s3 driver into a local
//! S3 server (moto) must give the findings, usage and GC predictions the filesystem fixture gives
//! (except what only object storage has), the GC prediction must equal the real
//! `garbage-collect --dry-run` on the bucket, each object-storage finding has a break-one test,
//! and no credential ever reaches the output.

mod common;

use common::registry::gc_dry_run_config;
use common::s3::{self as s3, eligible, http, json, path_of, regfsck_s3, Moto};
use common::store::{code_paths, fixture, fixture_now, run_json};
use std::collections::{BTreeMap, BTreeSet};

const ROOT: &str = "/reg";

/// Findings as (code, path) with upload ids replaced (they differ between two pushes).
fn normalized(doc: &serde_json::Value, uuids: &[&str]) -> BTreeSet<(String, String)> {
    code_paths(doc)
        .into_iter()
        .map(|(c, mut p)| {
            for u in uuids {
                p = p.replace(u, "<uuid>");
            }
            (c, p)
        })
        .collect()
}

fn du_rows(doc: &serde_json::Value) -> BTreeMap<String, (u64, u64, u64)> {
    doc["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["repo"].as_str().unwrap().to_string(),
                (
                    n("referenced_bytes"),
                    n("exclusive_bytes"),
                    n("shared_bytes"),
                ),
            )
        })
        .collect()
}

#[test]
fn sample_on_s3_agrees_with_the_filesystem_fixture_and_the_real_gc() {
    if !s3::available() {
        return;
    }
    let (moto, expected, cfg, now) = pushed("sample");
    let cfg = path_of(&cfg);
    let s3_uuid = expected["upload"]["uuid"].as_str().unwrap().to_string();

    let fs = fixture("sample");
    let fs_root = path_of(fs.path());
    let fs_now = fixture_now(fs.path()).to_string();
    let fs_uuid = common::store::expected("sample")["upload"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let uuids = [s3_uuid.as_str(), fs_uuid.as_str()];

    // check: the same findings, but for what only one medium has.
    let (_, fs_doc) = run_json(&["check", fs_root, "--now", &fs_now]);
    let before = moto.requests();
    let out = regfsck_s3(
        &["check", "--config", cfg, "--now", &now, "--format", "json"],
        &[],
    );
    let s3_doc = json(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check_requests = moto.requests() - before;
    let a = normalized(&fs_doc, &uuids);
    let b = normalized(&s3_doc, &uuids);
    let only_fs: BTreeSet<_> = a.difference(&b).cloned().collect();
    let only_s3: BTreeSet<_> = b.difference(&a).cloned().collect();
    let doomed = "repositories/scratch/doomed";
    let rev = format!(
        "{doomed}/_manifests/revisions/sha256/{}",
        expected["deleted_manifest"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    // An API delete leaves an empty revision folder on a filesystem (dir-empty, and a
    // repository with _manifests but nothing in it); on object storage nothing of it remains,
    // so the repository has _layers and no _manifests at all.
    let s = |c: &str, p: &str| (c.to_string(), p.to_string());
    assert_eq!(
        only_fs,
        BTreeSet::from([s("dir-empty", &rev), s("repo-empty", doomed)]),
        "only on the filesystem"
    );
    // The abandoned upload's blob data is an incomplete multipart upload on S3, which a listing
    // never shows. (moto reports every upload as started on 2010-11-10: it is old here.)
    let upload = "repositories/library/alpine/_uploads/<uuid>/data".to_string();
    assert_eq!(
        only_s3,
        BTreeSet::from([
            s("repo-missing-manifests", &format!("{doomed}/_manifests")),
            s("upload-multipart-incomplete", &upload),
        ]),
        "only on object storage"
    );
    let mp = s3_doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "upload-multipart-incomplete")
        .unwrap();
    assert!(mp["message"].as_str().unwrap().contains(" bytes)"), "{mp}");
    // Every blob hashed through streaming GETs, all sound.
    assert_eq!(s3_doc["summary"]["blobs"], fs_doc["summary"]["blobs"]);
    assert_eq!(
        s3_doc["summary"]["verification"]["verified_blobs"],
        fs_doc["summary"]["blobs"]
    );

    // The direct form reads the same store with credentials from the environment.
    let creds = [("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")];
    let endpoint = moto.endpoint();
    let url = format!("s3://sample{ROOT}");
    let out = regfsck_s3(
        &[
            "check",
            &url,
            "--endpoint",
            &endpoint,
            "--now",
            &now,
            "--format",
            "json",
            "--no-verify",
        ],
        &creds,
    );
    assert_eq!(normalized(&json(&out), &uuids), b);
    let out = regfsck_s3(&["check", &url, "--endpoint", &endpoint], &[]);
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no S3 credentials"));

    // du: the same bytes per repository.
    let (_, fs_du) = run_json(&["du", fs_root, "--now", &fs_now]);
    let out = regfsck_s3(
        &["du", "--config", cfg, "--now", &now, "--format", "json"],
        &[],
    );
    assert_eq!(du_rows(&json(&out)), du_rows(&fs_du));

    // gc: the same predictions, and exactly what the real GC's dry-run says on the bucket.
    let (_, fs_gc) = run_json(&["gc", fs_root]);
    let before = moto.requests();
    let out = regfsck_s3(&["gc", "--config", cfg, "--format", "json"], &[]);
    let gc_requests = moto.requests() - before;
    let s3_gc = json(&out);
    for m in [false, true] {
        assert_eq!(
            eligible(&s3_gc, m),
            eligible(&fs_gc, m),
            "-m={m}: s3 vs filesystem"
        );
        let before = moto.requests();
        let real = gc_dry_run_config(std::path::Path::new(cfg), m);
        let real_requests = moto.requests() - before;
        assert!(real.aborted.is_none(), "{:?}", real.aborted);
        assert_eq!(
            eligible(&s3_gc, m),
            (real.eligible_blobs.clone(), real.eligible_manifests.clone()),
            "-m={m}: the real GC on the bucket"
        );
        assert!(!real.eligible_blobs.is_empty());
        eprintln!(
            "requests: regfsck check {check_requests}, regfsck gc {gc_requests}, garbage-collect --dry-run{} {real_requests}",
            if m { " -m" } else { "" }
        );
        assert!(
            gc_requests < real_requests,
            "{gc_requests} vs {real_requests}"
        );
    }
}

#[test]
fn object_storage_findings_break_one_thing_each() {
    if !s3::available() {
        return;
    }
    let (moto, expected, cfg, now) = pushed("breakone");
    let cfg = path_of(&cfg);
    let v2 = "reg/docker/registry/v2";
    let check = || {
        let out = regfsck_s3(
            &["check", "--config", cfg, "--now", &now, "--format", "json"],
            &[],
        );
        json(&out)
    };
    let before = check();

    // An incomplete multipart upload (started, one part sent, never completed).
    let key =
        format!("{v2}/repositories/beta/app/_uploads/0b5c5a56-4a5e-4f6e-9a1e-2b3c4d5e6f70/data");
    let (st, body) = http(moto.port, "POST", &format!("/breakone/{key}?uploads"), b"");
    assert_eq!(st, 200, "{body}");
    let id = body
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let (st, _) = http(
        moto.port,
        "PUT",
        &format!("/breakone/{key}?partNumber=1&uploadId={id}"),
        &[7u8; 1234],
    );
    assert_eq!(st, 200);
    // Keys no filesystem path can hold.
    moto.put("breakone", &format!("{v2}/repositories/beta//app"), b"x");
    moto.put(
        "breakone",
        &format!("{v2}/repositories/library/./alpine/x"),
        b"x",
    );
    moto.put("breakone", &format!("{v2}/blobs/sha256/"), b"x");
    // A layer link that holds another digest (same size: only its ETag tells), and an empty
    // one: the listing's ETag must not vouch for either.
    let tag = common::store::tag_digest("sample", "team/proj", "v1");
    let other = common::store::tag_digest("sample", "beta/app", "v1");
    let link = format!(
        "{v2}/repositories/team/proj/_manifests/revisions/sha256/{}/link",
        tag.hex()
    );
    moto.put("breakone", &link, other.to_string().as_bytes());
    let alpine = expected["untagged"]["library/alpine"][0].as_str().unwrap();
    let empty = format!(
        "{v2}/repositories/library/alpine/_manifests/revisions/sha256/{}/link",
        alpine.trim_start_matches("sha256:")
    );
    moto.put("breakone", &empty, b"");

    let after = check();
    let new: BTreeSet<(String, String)> = code_paths(&after)
        .into_iter()
        .filter(|x| !code_paths(&before).contains(x))
        .collect();
    let rel = |k: &str| k.trim_start_matches(&format!("{v2}/")).to_string();
    let s = |c: &str, p: String| (c.to_string(), p);
    for want in [
        s("upload-multipart-incomplete", rel(&key)),
        s("key-not-a-path", "repositories/beta//app".into()),
        s("key-not-a-path", "repositories/library/./alpine/x".into()),
        s("key-not-a-path", "blobs/sha256/".into()),
        s("link-mismatch", rel(&link)),
        s("link-malformed", rel(&empty)),
    ] {
        assert!(new.contains(&want), "missing {want:?} in {new:#?}");
    }
    let mp = after["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "upload-multipart-incomplete" && f["path"] == rel(&key).as_str())
        .unwrap();
    let msg = mp["message"].as_str().unwrap();
    assert!(msg.contains("1234 bytes") && msg.contains(id), "{msg}");
    assert_eq!(mp["repo"], "beta/app");
}

#[test]
fn credentials_never_reach_the_output() {
    if !s3::available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("creds");
    moto.put(
        "creds",
        "reg/docker/registry/v2/repositories/x/_layers/sha256/00/link",
        b"junk",
    );
    let dir = tempfile::tempdir().unwrap();
    let (key, secret, token) = (
        "AKIALEAKTESTKEY0001",
        "leak-test-secret-0002",
        "leak-test-token-0003",
    );
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  s3:\n    bucket: creds\n    region: us-east-1\n    regionendpoint: {}\n    rootdirectory: /reg\n    secure: false\n    accesskey: {key}\n    secretkey: {secret}\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        format!(
            "version: 0.1\nstorage:\n  s3:\n    bucket: nosuchbucket\n    region: us-east-1\n    regionendpoint: {}\n    secure: false\n    accesskey: {key}\n    secretkey: {secret}\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let env = [("AWS_SESSION_TOKEN", token)];
    let (c, b, st) = (path_of(&cfg), path_of(&bad), path_of(&state));
    let mut seen = String::new();
    for args in [
        vec!["check", "--config", c],
        vec![
            "check",
            "--config",
            c,
            "--format",
            "json",
            "--state",
            st,
            "--reverify-after",
            "1h",
        ],
        vec!["du", "--config", c],
        vec!["gc", "--config", c, "--format", "json"],
        vec!["check", "--config", b],
        vec!["check", "--config", b, "--format", "json"],
        vec!["repair", "--config", c],
        vec!["repair", "--config", c, "--apply", "--force"],
        vec!["undo", "--config", c, "--list"],
        vec!["ls", "--config", c],
        vec!["prune", "--config", c, "--untagged", "--apply", "--force"],
        vec!["purge", "--config", c, "--all", "--yes"],
    ] {
        let out = regfsck_s3(&args, &env);
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // The bad bucket is reported (the run says why it failed), with no secret in the words.
    assert!(seen.contains("nosuchbucket"), "{seen}");
    // Advice names the store as this run did (`--config FILE`), never a bare `s3://bucket/…`,
    // which would send the next command to AWS instead of the configured endpoint.
    assert!(
        seen.contains(&format!("`regfsck gc --config {c}`")),
        "{seen}"
    );
    assert!(!seen.contains("regfsck gc s3://"), "{seen}");
    // ls and the cleanup commands work on object storage (no refusal any more); their
    // output and what they leave in the bucket hold no secret either.
    assert!(!seen.contains("filesystem stores only"), "{seen}");
    assert!(seen.contains("Nothing to remove."), "{seen}");
    seen.push_str(&String::from_utf8_lossy(&std::fs::read(&state).unwrap()));
    // What repair left in the bucket (plan, journal, quarantine) holds no secret either.
    for body in s3::snapshot(&moto, "creds", "").values() {
        seen.push_str(&String::from_utf8_lossy(body));
    }
    assert!(
        seen.contains("regfsck-quarantine") || seen.contains("quarantine"),
        "{seen}"
    );
    for s in [key, secret, token] {
        assert!(!seen.contains(s), "{s} leaked:\n{seen}");
    }
}

#[test]
fn registry_environment_overrides_and_its_refusals() {
    if !s3::available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("envs");
    moto.put(
        "envs",
        "p/docker/registry/v2/repositories/x/_layers/sha256/00/link",
        b"junk",
    );
    let dir = tempfile::tempdir().unwrap();
    let fs_cfg = dir.path().join("fs.yml");
    std::fs::write(
        &fs_cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let f = path_of(&fs_cfg);
    let endpoint = moto.endpoint();
    // REGISTRY_STORAGE=s3 replaces the filesystem section; the parameters come from the
    // environment, their values read as YAML (`false` is a boolean).
    let env = [
        ("REGISTRY_STORAGE", "s3"),
        ("REGISTRY_STORAGE_S3_BUCKET", "envs"),
        ("REGISTRY_STORAGE_S3_REGION", "us-east-1"),
        ("REGISTRY_STORAGE_S3_REGIONENDPOINT", endpoint.as_str()),
        ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/p/"),
        ("REGISTRY_STORAGE_S3_SECURE", "false"),
        ("REGISTRY_STORAGE_S3_ACCESSKEY", "a"),
        ("REGISTRY_STORAGE_S3_SECRETKEY", "b"),
    ];
    let out = regfsck_s3(
        &["check", "--config", f, "--format", "json", "--no-verify"],
        &env,
    );
    let doc = json(&out);
    assert_eq!(doc["root"], "s3://envs/p");
    assert!(code_paths(&doc).contains(&(
        "path-unrecognized".to_string(),
        "repositories/x/_layers/sha256/00".to_string()
    )));
    // A filesystem config plus an s3 variable: the registry refuses to start, in these words.
    let out = regfsck_s3(
        &["check", "--config", f],
        &[("REGISTRY_STORAGE_S3_BUCKET", "envs")],
    );
    assert_eq!(out.status.code(), Some(8));
    let ours = String::from_utf8_lossy(&out.stderr).to_string();
    let real = std::process::Command::new("docker-registry")
        .args(["garbage-collect", "--dry-run", f])
        .env("REGISTRY_STORAGE_S3_BUCKET", "envs")
        .output()
        .unwrap();
    let status = real.status;
    let real =
        String::from_utf8_lossy(&real.stderr).to_string() + &String::from_utf8_lossy(&real.stdout);
    let words = "multiple storage drivers specified in configuration or environment: ";
    // The registry lists the drivers in Go's map order, which is random from run to run
    // (seen both ways); regfsck names them in one of its two orders.
    assert!(ours.contains(&format!("{words}filesystem, s3")), "{ours}");
    assert!(
        ["filesystem, s3", "s3, filesystem"]
            .iter()
            .any(|o| real.contains(&format!("{words}{o}"))),
        "the real registry ({status}): {real}"
    );
}

/// The GC prediction on object storage against the real `garbage-collect --dry-run [-m]` on the
/// same bucket, one damage at a time: the s3 driver's walk has no empty folders, lists a page at
/// a time, tests existence by listing and reads a missing key as "not found" where a filesystem
/// says "not a directory".
#[test]
fn damaged_buckets_agree_with_the_real_gc() {
    use regfsck::analysis::gc::{self, Version};
    if !s3::available() {
        return;
    }
    let moto = Moto::start();
    let expected = s3::push_sample(&moto, "gcvar", ROOT);
    let cfg = moto.config("gcvar", ROOT, "");
    let client = moto.client("gcvar");
    let v2 = "reg/docker/registry/v2";
    let k = |rel: &str| format!("{v2}/{rel}");
    let latest = common::store::tag_digest("sample", "library/alpine", "latest");
    let old = expected["untagged"]["library/alpine"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let team = common::store::tag_digest("sample", "team/proj", "v1");
    let rev = |repo: &str, hex: &str| {
        k(&format!(
            "repositories/{repo}/_manifests/revisions/sha256/{hex}/link"
        ))
    };
    let config_of = |d: &regfsck::model::digest::Digest| {
        let m: serde_json::Value = serde_json::from_slice(
            &client
                .get(&k(&regfsck::model::layout::blob_data(d)), 1 << 20)
                .unwrap(),
        )
        .unwrap();
        m["config"]["digest"].as_str().unwrap().to_string()
    };
    let team_config: regfsck::model::digest::Digest = config_of(&team).parse().unwrap();
    // (what, keys to write, keys to delete)
    type Variant<'a> = (&'a str, Vec<(String, Vec<u8>)>, Vec<String>);
    let variants: Vec<Variant> = vec![
        ("clean", vec![], vec![]),
        (
            "a stray file among the tags",
            vec![(
                k("repositories/library/alpine/_manifests/tags/README"),
                b"x".to_vec(),
            )],
            vec![],
        ),
        (
            "a tag's current is also a file",
            vec![(
                k("repositories/library/alpine/_manifests/tags/latest/current"),
                b"x".to_vec(),
            )],
            vec![],
        ),
        (
            "a _ file among repositories (2.8 skips the rest of the page)",
            vec![(k("repositories/team/_stray"), b"x".to_vec())],
            vec![],
        ),
        (
            "a malformed revision link",
            vec![(rev("library/alpine", &old), b"sha256:nothex".to_vec())],
            vec![],
        ),
        (
            "a revision link that is a folder",
            vec![(
                format!("{}/link", rev("library/alpine", &old)),
                format!("sha256:{old}").into_bytes(),
            )],
            vec![rev("library/alpine", &old)],
        ),
        (
            "a tag name outside the path grammar",
            vec![(
                k("repositories/library/alpine/_manifests/tags/bad tag/current/link"),
                latest.to_string().into_bytes(),
            )],
            vec![],
        ),
        (
            "a repository name the registry rejects",
            vec![(
                k(&format!(
                    "repositories/Bad/_layers/sha256/{}/link",
                    team_config.hex()
                )),
                team_config.to_string().into_bytes(),
            )],
            vec![],
        ),
        (
            "a manifest's config blob is gone",
            vec![],
            vec![k(&regfsck::model::layout::blob_data(&team_config))],
        ),
    ];
    for (what, puts, dels) in variants {
        // Whatever the variant overwrites or deletes comes back afterwards.
        let saved: Vec<(String, Vec<u8>)> = dels
            .iter()
            .chain(puts.iter().map(|(k, _)| k))
            .filter_map(|d| client.get(d, 1 << 20).ok().map(|b| (d.clone(), b)))
            .collect();
        for (key, body) in &puts {
            client.put(key, body).unwrap();
        }
        for d in &dels {
            client.delete(d).unwrap();
        }
        let store = open_store(&moto, "gcvar");
        let inv = store
            .scan(&Default::default(), &regfsck::progress::Silent)
            .unwrap();
        for m in [false, true] {
            let real = gc_dry_run_config(&cfg, m);
            let p = gc::predict(&inv, Version::V2_8, m);
            common::registry::assert_agrees(&p, &real, &format!("{what} -m={m}"));
        }
        for (key, _) in &puts {
            client.delete(key).unwrap();
        }
        for (key, body) in &saved {
            client.put(key, body).unwrap();
        }
    }
}

fn pushed(bucket: &str) -> (Moto, serde_json::Value, std::path::PathBuf, String) {
    s3::pushed(bucket, ROOT)
}

/// The store below `/reg` in `bucket`, read through the library.
fn open_store(moto: &Moto, bucket: &str) -> regfsck::store::s3::S3Store {
    let url = format!("s3://{bucket}{ROOT}");
    let mut c =
        regfsck::store::s3::config::S3Config::from_url(&url, Some(&moto.endpoint()), None).unwrap();
    c.config_credentials = client_creds();
    regfsck::store::s3::S3Store::open(c).unwrap()
}

fn client_creds() -> regfsck::store::s3::config::Credentials {
    use regfsck::store::s3::config::{Credentials, Secret};
    Credentials {
        access_key: Secret::new("regfsck-test"),
        secret_key: Secret::new("regfsck-test"),
        session_token: None,
        source: String::new(),
    }
}

/// A repeat run reads only what changed: links and manifests come from the cache beside the
/// state when the listing shows the same ETag and size, and a rewritten link is read again.
#[test]
fn a_repeat_run_reads_only_what_changed() {
    if !s3::available() {
        return;
    }
    let (moto, expected, cfg, now) = pushed("repeat");
    let cfg = path_of(&cfg);
    let state = tempfile::tempdir().unwrap();
    let xdg = path_of(state.path());
    let run = || {
        let before = moto.requests();
        let out = regfsck_s3(
            &[
                "check",
                "--config",
                cfg,
                "--now",
                &now,
                "--no-verify",
                "--format",
                "json",
            ],
            &[("XDG_STATE_HOME", xdg)],
        );
        (json(&out), moto.requests() - before)
    };
    let (first, r1) = run();
    let (second, r2) = run();
    assert_eq!(code_paths(&first), code_paths(&second));
    assert_eq!(second["summary"]["requests"].as_u64(), Some(r2 as u64));
    // The sample's manifests and tag links are read once; then only listings remain.
    assert!(r2 * 3 < r1, "first run {r1} requests, repeat {r2}");
    // Retag `latest` to the image it held before: same size, another ETag. The repeat run
    // must read the link again, and the old image is tagged now.
    let old = expected["untagged"]["library/alpine"][0].as_str().unwrap();
    let current =
        "reg/docker/registry/v2/repositories/library/alpine/_manifests/tags/latest/current/link";
    moto.put("repeat", current, old.as_bytes());
    let (third, _) = run();
    let untagged = |d: &serde_json::Value| {
        code_paths(d)
            .into_iter()
            .any(|(c, p)| c == "revision-untagged" && p.contains(old.trim_start_matches("sha256:")))
    };
    assert!(untagged(&second) && !untagged(&third), "{third:#}");

    // Incremental hashing keys a blob by its ETag: a repeat `--reverify-after` run hashes
    // nothing, and a blob whose bytes were replaced (another ETag) is hashed again and fails.
    let verify = || {
        let out = regfsck_s3(
            &[
                "check",
                "--config",
                cfg,
                "--now",
                &now,
                "--reverify-after",
                "24h",
                "--format",
                "json",
            ],
            &[("XDG_STATE_HOME", xdg)],
        );
        json(&out)
    };
    let all = verify();
    let blobs = all["summary"]["blobs"].as_u64().unwrap();
    assert_eq!(all["summary"]["hashed_blobs"].as_u64(), Some(blobs));
    let again = verify();
    assert_eq!(again["summary"]["hashed_blobs"].as_u64(), Some(0));
    assert_eq!(again["summary"]["coverage"]["blobs"].as_u64(), Some(blobs));
    let layer = expected["mounted"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let key = format!(
        "reg/docker/registry/v2/{}",
        regfsck::model::layout::blob_data(&layer)
    );
    let mut bytes = moto.client("repeat").get(&key, 1 << 20).unwrap();
    bytes[0] ^= 1;
    moto.put("repeat", &key, &bytes);
    let changed = verify();
    assert_eq!(changed["summary"]["hashed_blobs"].as_u64(), Some(1));
    assert!(code_paths(&changed).contains(&(
        "blob-digest-mismatch".to_string(),
        regfsck::model::layout::blob_data(&layer)
    )));
}

/// The storage seam's object operations (what repair and cleanup will use) behave alike on a
/// filesystem and in a bucket: write, read, list flat and by folder, stream, move into the
/// quarantine beside `docker/`, delete (a missing object is no error), abort a multipart upload.
#[test]
fn the_seams_object_operations_work_on_both_media() {
    use regfsck::store::{FsStorage, Storage};
    use std::io::Read;
    if !s3::available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("seam");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docker/registry/v2")).unwrap();
    let fs = FsStorage(regfsck::store::scan::locate(dir.path()).unwrap());
    let bucket = open_store(&moto, "seam");
    let link = "repositories/x/_layers/sha256/ab/link";
    let other = "repositories/x/_uploads/u/startedat";
    for (name, st) in [
        ("filesystem", &fs as &dyn Storage),
        ("s3", &bucket as &dyn Storage),
    ] {
        st.write(link, b"sha256:ab").unwrap();
        st.write(other, b"2026-01-01T00:00:00Z").unwrap();
        assert_eq!(st.read_small(link, 256).unwrap(), b"sha256:ab", "{name}");
        assert!(st.read_small(link, 3).is_err(), "{name}: the cap holds");
        let flat: Vec<(String, bool, u64)> = st
            .list("repositories", false)
            .unwrap()
            .into_iter()
            .map(|l| (l.rel, l.folder, l.size))
            .collect();
        assert_eq!(
            flat,
            vec![(link.to_string(), false, 9), (other.to_string(), false, 20)],
            "{name}"
        );
        let top: Vec<(String, bool)> = st
            .list("repositories", true)
            .unwrap()
            .into_iter()
            .map(|l| (l.rel, l.folder))
            .collect();
        assert_eq!(top, vec![("repositories/x".to_string(), true)], "{name}");
        let mut streamed = String::new();
        st.open(other)
            .unwrap()
            .read_to_string(&mut streamed)
            .unwrap();
        assert_eq!(streamed, "2026-01-01T00:00:00Z", "{name}");
        st.quarantine(link, "20261201T000000Z-0001").unwrap();
        let gone = st.read_small(link, 256).unwrap_err();
        assert_eq!(gone.kind(), std::io::ErrorKind::NotFound, "{name}: {gone}");
        st.delete(other).unwrap();
        st.delete(other).unwrap();
        assert!(st.list("repositories", false).unwrap().is_empty(), "{name}");
    }
    let q = "regfsck-quarantine/20261201T000000Z-0001/repositories/x/_layers/sha256/ab/link";
    assert_eq!(std::fs::read(dir.path().join(q)).unwrap(), b"sha256:ab");
    let client = moto.client("seam");
    assert_eq!(client.get(&format!("reg/{q}"), 256).unwrap(), b"sha256:ab");
    // An incomplete multipart upload, aborted.
    let key = "reg/docker/registry/v2/repositories/x/_uploads/u/data";
    let (st, body) = http(moto.port, "POST", &format!("/seam/{key}?uploads"), b"");
    assert_eq!(st, 200, "{body}");
    let id = body
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert_eq!(client.list_multipart("reg/").unwrap().len(), 1);
    bucket
        .abort_multipart("repositories/x/_uploads/u/data", id)
        .unwrap();
    assert!(client.list_multipart("reg/").unwrap().is_empty());
}

/// The s3 driver's catalog walk reads a folder 1000 entries at a time and sorts each page alone;
/// 2.8's stop at a `_` file ends only the page it is on. With a `_stray` file sorting first among
/// 1,100 repositories, 2.8's GC skips the 999 repositories on the first page and walks the rest —
/// where on a filesystem it would skip them all. The prediction follows the pages.
#[test]
fn a_stray_file_ends_only_its_listing_page() {
    use regfsck::analysis::gc::{self, Version};
    use regfsck::model::digest::Digest;
    use regfsck::model::layout;
    if !s3::available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("pages");
    let v2 = "reg/docker/registry/v2";
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    let mut blob = |data: Vec<u8>| {
        let d = Digest::of_bytes(&data);
        keys.push((format!("{v2}/{}", layout::blob_data(&d)), data));
        d
    };
    // One image per probe repository, with blobs of its own.
    let mut image = |label: &str| {
        let config = blob(format!("{{\"label\":\"{label}\"}}").into_bytes());
        let layer = blob(format!("layer of {label}").into_bytes());
        let manifest = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":1,\"digest\":\"{config}\"}},\"layers\":[{{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":1,\"digest\":\"{layer}\"}}]}}"
        );
        (blob(manifest.into_bytes()), config, layer)
    };
    let first_page = image("a0001");
    let second_page = image("a1050");
    let filler = blob(b"filler".to_vec());
    for i in 0..1100 {
        let repo = format!("a{i:04}");
        keys.push((
            format!("{v2}/{}", layout::layer_link(&repo, &filler)),
            layout::link_content(&filler).into_bytes(),
        ));
    }
    for (repo, (m, c, l)) in [("a0001", &first_page), ("a1050", &second_page)] {
        for d in [c, l] {
            keys.push((
                format!("{v2}/{}", layout::layer_link(repo, d)),
                layout::link_content(d).into_bytes(),
            ));
        }
        keys.push((
            format!("{v2}/{}", layout::revision_link(repo, m)),
            layout::link_content(m).into_bytes(),
        ));
    }
    keys.push((format!("{v2}/repositories/_stray"), b"x".to_vec()));
    let chunks: Vec<&[(String, Vec<u8>)]> = keys.chunks(keys.len().div_ceil(8)).collect();
    std::thread::scope(|s| {
        for chunk in chunks {
            let client = moto.client("pages");
            s.spawn(move || {
                for (k, body) in chunk {
                    client.put(k, body).unwrap();
                }
            });
        }
    });
    let cfg = moto.config("pages", ROOT, "");
    let inv = open_store(&moto, "pages")
        .scan(&Default::default(), &regfsck::progress::Silent)
        .unwrap();
    let real = gc_dry_run_config(&cfg, false);
    let p = gc::predict(&inv, Version::V2_8, false);
    common::registry::assert_agrees(&p, &real, "a _ file among 1,100 repositories");
    // The first page's image is swept (its repository was skipped), the second page's is kept.
    for d in [&first_page.0, &first_page.1, &first_page.2] {
        assert!(real.eligible_blobs.contains(&d.to_string()), "{d} kept");
    }
    for d in [&second_page.0, &second_page.1, &second_page.2] {
        assert!(!real.eligible_blobs.contains(&d.to_string()), "{d} swept");
    }
}

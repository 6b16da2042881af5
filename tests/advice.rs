//! Advice that names the right thing (issue 12, #6–#11 and the operator papercuts): the
//! garbage-collect command of this store, repair advice only where repair acts, the images to
//! push again, per-version du figures checked against the real GC, JSON errors, Ctrl-C, and
//! documentation that links only to files that exist.

mod common;

use common::registry::{gc_dry_run, registry_available};
use common::store::{fixture, fixture_now, regfsck, run_json, v2, write_v2};
use regfsck::model::layout;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

/// A copy of the sample store with its repositories removed: only `blobs/` is left.
fn blobs_only() -> tempfile::TempDir {
    let tmp = fixture("sample");
    fs::remove_dir_all(v2(tmp.path()).join("repositories")).unwrap();
    tmp
}

/// #8: four `gc-would-abort` findings that `regfsck repair` cannot fix must not send the operator
/// to `regfsck repair`; their fix line says what does work, and the real GC confirms it.
#[test]
fn a_store_with_only_blobs_gets_advice_that_works() {
    let tmp = blobs_only();
    let root = tmp.path().to_str().unwrap();
    let (code, doc) = run_json(&["check", root]);
    assert_eq!(code, 4);
    let aborts: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "gc-would-abort")
        .collect();
    assert_eq!(aborts.len(), 4, "{doc:#}");
    for f in &aborts {
        assert!(f["repair"].is_null());
        let fix = f["fix"].as_str().unwrap();
        assert!(
            fix.contains("create the empty folder docker/registry/v2/repositories"),
            "{fix}"
        );
        assert!(!fix.contains("regfsck repair"), "{fix}");
    }
    let next = doc["next_steps"].to_string();
    assert!(!next.contains("Run `regfsck repair"), "{next}");
    assert!(
        next.contains("has no action for 4 errors (gc-would-abort)"),
        "{next}"
    );
    // Each hazard is recognised as the run it concerns (the GC emulation's wording).
    assert!(
        next.contains("Do not run `registry 2.8 garbage-collect`, `registry 2.8 garbage-collect --delete-untagged`, `registry 3 garbage-collect`, `registry 3 garbage-collect --delete-untagged` on this store yet"),
        "{next}"
    );
    let out = regfsck().args(["repair", root]).output().unwrap();
    assert!(text(&out.stdout).contains("Nothing to repair."));
    // `regfsck gc` agrees: nothing to repair, and it says so instead of naming repair.
    let out = regfsck().args(["gc", root]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let gc = text(&out.stdout);
    assert!(
        gc.contains("`regfsck repair` has no action for what causes it"),
        "{gc}"
    );

    // The fix works: with the empty folder, the real garbage-collect runs (and, as the fix
    // warns, deletes every blob).
    if !registry_available() {
        return;
    }
    let before = gc_dry_run(tmp.path(), false);
    assert!(before.aborted.is_some(), "{}", before.stderr);
    fs::create_dir(v2(tmp.path()).join("repositories")).unwrap();
    let after = gc_dry_run(tmp.path(), false);
    assert_eq!(after.exit_code, 0, "{}", after.stderr);
    let blobs = fs::read_dir(v2(tmp.path()).join("blobs/sha256"))
        .unwrap()
        .flat_map(|fan| fs::read_dir(fan.unwrap().path()).unwrap())
        .count();
    assert_eq!(after.eligible_blobs.len(), blobs);
    let (code, doc) = run_json(&["check", root]);
    assert_eq!(code, 0, "{doc:#}");
}

/// #8: the GC hazards behind a repairable finding point at the repair of that finding.
#[test]
fn a_gc_abort_with_a_repairable_cause_names_it() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let d = common::store::tag_digest("sample", "team/proj", "v1");
    let link = layout::revision_link("team/proj", &d);
    write_v2(tmp.path(), &link, b"");
    let (_, doc) = run_json(&["check", root]);
    let abort = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "gc-would-abort")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(abort["repair"]["via"]["code"], "link-malformed");
    assert_eq!(abort["repair"]["via"]["path"], link.as_str());
    assert!(abort["fix"]
        .as_str()
        .unwrap()
        .contains(&format!("`regfsck repair {root} --apply` fixes the cause")));
    let out = regfsck().args(["gc", root]).output().unwrap();
    let gc = text(&out.stdout);
    assert!(
        gc.contains(&format!(
            "`regfsck repair {root}` plans fixes for the errors behind it (link-malformed)"
        )),
        "{gc}"
    );
}

fn write_config(dir: &Path, root: &Path) -> std::path::PathBuf {
    let p = dir.join("config.yml");
    fs::write(
        &p,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            root.display()
        ),
    )
    .unwrap();
    p
}

/// #6: after a repair, the garbage-collect advice names the config given, or a placeholder that
/// says which store it must point at — never an unrelated default file — and both binaries.
#[test]
fn repair_names_the_config_it_was_given_or_a_placeholder() {
    for with_config in [false, true] {
        let tmp = fixture("sample");
        let root = tmp.path().to_str().unwrap();
        // Nine days after the upload started: it is stale, so the repair has something to do.
        let now = (fixture_now(tmp.path()) + 8 * 86_400).to_string();
        let cfg_dir = tempfile::tempdir().unwrap();
        let cfg = write_config(cfg_dir.path(), tmp.path());
        let mut cmd = regfsck();
        if with_config {
            cmd.args(["repair", "--config", cfg.to_str().unwrap()]);
        } else {
            cmd.args(["repair", root]);
        }
        let out = cmd
            .args(["--apply", "--now", &now, "--quiet"])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        assert!(!stdout.contains("/etc/docker/registry"), "{stdout}");
        let c = if with_config {
            cfg.to_str().unwrap().to_string()
        } else {
            "CONFIG.yml".to_string()
        };
        assert!(
            stdout.contains(&format!("`registry garbage-collect {c}`")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("`docker-registry garbage-collect {c}`")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("rootdirectory: {root}")) != with_config,
            "{stdout}"
        );
        assert!(stdout.contains("Repair plan (1 action)"), "{stdout}");
    }
}

/// #10: du's untagged-only figures, per version, are exactly what the real 2.8 garbage-collect
/// frees on top of a plain run (and what regfsck's own prediction says for 3.x).
#[test]
fn du_untagged_only_per_version() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let (_, du) = run_json(&["du", root]);
    let t = &du["totals"];
    let (u3, u28) = (
        t["untagged_only_bytes"].as_u64().unwrap(),
        t["untagged_only_bytes_2_8"].as_u64().unwrap(),
    );
    assert!(u28 > u3, "2.8 also frees the index children: {u28} vs {u3}");
    let repo = |name: &str, k: &str| {
        du["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["repo"] == name)
            .unwrap()[k]
            .as_u64()
            .unwrap()
    };
    // The multi-arch repositories: nothing for 3.x, their children's blobs for 2.8.
    for name in ["multi/oci", "multi/docker"] {
        assert_eq!(repo(name, "untagged_only_bytes"), 0);
        assert!(repo(name, "untagged_only_bytes_2_8") > 0);
    }
    let (_, gc) = run_json(&["gc", root]);
    let freed: BTreeMap<(String, bool), u64> = gc["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (
                    p["registry_version"].as_str().unwrap().to_string(),
                    p["delete_untagged"].as_bool().unwrap(),
                ),
                p["freed_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let on_top = |v: &str| freed[&(v.to_string(), true)] - freed[&(v.to_string(), false)];
    assert_eq!(u3, on_top("3"));
    assert_eq!(u28, on_top("2.8"));
    // Human and CSV say which figure is which.
    let table = text(&regfsck().args(["du", root]).output().unwrap().stdout);
    assert!(table.contains("untagged-only (3)") && table.contains("untagged-only (2.8)"));
    assert!(table.contains("registry 3's garbage-collect --delete-untagged"));
    let csv = text(
        &regfsck()
            .args(["du", root, "--format", "csv"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",untagged_only_bytes_2_8"));

    if !registry_available() {
        return;
    }
    let size = |d: &str| {
        let d = regfsck::model::digest::Digest::parse(d).unwrap();
        fs::metadata(v2(tmp.path()).join(layout::blob_data(&d)))
            .unwrap()
            .len()
    };
    let plain = gc_dry_run(tmp.path(), false);
    let m = gc_dry_run(tmp.path(), true);
    let freed_plain: u64 = plain.eligible_blobs.iter().map(|d| size(d)).sum();
    let freed_m: u64 = m.eligible_blobs.iter().map(|d| size(d)).sum();
    assert_eq!(
        u28,
        freed_m - freed_plain,
        "the real 2.8 garbage-collect -m"
    );
}

fn json_error(args: &[&str]) -> (i32, Value, String) {
    let out = regfsck().args(args).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: no JSON on stdout ({e}): {}", text(&out.stdout)));
    (out.status.code().unwrap(), doc, text(&out.stderr))
}

/// `--format json` answers operational and usage errors with a JSON error object on stdout.
#[test]
fn json_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing");
    let m = missing.to_str().unwrap();
    for (args, kind, code) in [
        (vec!["check", m, "--format", "json"], "operational", 8),
        (vec!["du", m, "--format=json"], "operational", 8),
        (vec!["gc", m, "--format", "json"], "operational", 8),
        (vec!["check", m, "--format", "json", "--bogus"], "usage", 16),
        (
            vec!["check", m, "--format", "json", "--severity", "nope=warn"],
            "usage",
            16,
        ),
        (
            vec!["gc", m, "--format", "json", "--registry-version", "7"],
            "usage",
            16,
        ),
    ] {
        let (exit, doc, stderr) = json_error(&args);
        assert_eq!(exit, code, "{args:?}");
        assert_eq!(doc["schema"], "regfsck.error/1");
        assert_eq!(doc["error"]["kind"], kind, "{args:?}");
        assert_eq!(doc["exit_code"], code);
        let msg = doc["error"]["message"].as_str().unwrap();
        assert!(
            !msg.is_empty() && stderr.contains(msg.lines().next().unwrap()),
            "{msg} / {stderr}"
        );
    }
    // Without --format json, stdout stays empty.
    let out = regfsck().args(["check", m]).output().unwrap();
    assert!(out.stdout.is_empty());
}

/// With no ROOT, no --config and no store at the default place, the error says where it looked.
#[test]
fn no_store_at_the_default_place() {
    if Path::new("/var/lib/registry").exists() {
        eprintln!("SKIPPED: /var/lib/registry exists on this machine");
        return;
    }
    let out = regfsck()
        .arg("check")
        .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stderr).contains(
        "no store at /var/lib/registry (the default; pass ROOT or --config; Debian's is /var/lib/docker-registry)"
    ), "{}", text(&out.stderr));
}

/// A skip-list line or a `du --repo` pattern that matches nothing is reported.
#[test]
fn selections_that_match_nothing_are_reported() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let skip = tmp.path().join("skip.txt");
    fs::write(
        &skip,
        "# known\nrepositories/scratch/doomed/\nrepositories/no/such/\nsha256:0000000000000000000000000000000000000000000000000000000000000000\n",
    )
    .unwrap();
    let out = regfsck()
        .args(["check", root, "--format", "json", "--skip-list"])
        .arg(&skip)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings: Vec<&str> = doc["run_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            "skip list line 3 (repositories/no/such/) matched no finding",
            "skip list line 4 (sha256:0000000000000000000000000000000000000000000000000000000000000000) matched no finding"
        ]
    );
    assert!(doc["summary"]["skipped"].as_u64().unwrap() > 0);
    assert!(text(&out.stderr).contains("warning: skip list line 3"));

    let out = regfsck()
        .args(["du", root, "--repo", "nope/*", "--format", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["run_warnings"][0],
        "--repo \"nope/*\" matches no repository"
    );
    assert!(text(&out.stderr).contains("matches no repository"));
    let (_, doc) = run_json(&["du", root, "--repo", "team/*"]);
    assert!(doc["run_warnings"].as_array().unwrap().is_empty());
}

/// A corrupt layer names every repository and tag whose image needs it, in JSON and in the
/// human report, and "Next" lists the images to push again.
#[test]
fn findings_name_the_images_to_push_again() {
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    // beta/app:v1 and team/proj/app:v1 share their layers.
    let app = common::store::tag_digest("sample", "team/proj/app", "v1");
    let m = common::store::manifest_json(tmp.path(), &app);
    let layer =
        regfsck::model::digest::Digest::parse(m["layers"][0]["digest"].as_str().unwrap()).unwrap();
    let path = layout::blob_data(&layer);
    let mut data = fs::read(v2(tmp.path()).join(&path)).unwrap();
    data[3] ^= 0xff;
    write_v2(tmp.path(), &path, &data);
    let now = fixture_now(tmp.path()).to_string();
    let (_, doc) = run_json(&["check", root, "--now", &now]);
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "blob-digest-mismatch")
        .unwrap();
    // The oracle: every tag of the fixture whose manifest (or, for an index, a child's) lists
    // the layer, read from the manifests themselves.
    let exp = common::store::expected("sample");
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (repo, r) in exp["repositories"].as_object().unwrap() {
        for (tag, d) in r["tags"].as_object().unwrap() {
            let top = regfsck::model::digest::Digest::parse(d.as_str().unwrap()).unwrap();
            let m = common::store::manifest_json(tmp.path(), &top);
            let mut images = vec![m.clone()];
            for c in m["manifests"].as_array().into_iter().flatten() {
                let cd =
                    regfsck::model::digest::Digest::parse(c["digest"].as_str().unwrap()).unwrap();
                images.push(common::store::manifest_json(tmp.path(), &cd));
            }
            if images.iter().any(|i| {
                i["layers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|l| l["digest"] == layer.to_string())
            }) {
                want.entry(repo.clone()).or_default().push(tag.clone());
            }
        }
    }
    assert!(want.contains_key("beta/app") && want.contains_key("team/proj/app"));
    let got: BTreeMap<String, Vec<String>> = f["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut tags: Vec<String> = a["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            tags.sort();
            (a["repo"].as_str().unwrap().to_string(), tags)
        })
        .collect();
    for v in want.values_mut() {
        v.sort();
    }
    assert_eq!(got, want);
    let first: Vec<String> = want
        .iter()
        .flat_map(|(r, ts)| ts.iter().map(move |t| format!("{r}:{t}")))
        .collect();
    assert!(doc["next_steps"].to_string().contains(&format!(
        "Push these images again (regfsck cannot invent their bytes): {}",
        first[0]
    )));
    let out = regfsck()
        .args(["check", root, "--now", &now])
        .output()
        .unwrap();
    let human = text(&out.stdout);
    assert!(
        human.contains(&format!(
            "    affects {}",
            first[..first.len().min(5)].join(", ")
        )),
        "{human}"
    );
    assert!(
        human.contains("; then re-push the images that use it"),
        "{human}"
    );
}

/// The summary shows the whole run's time; counts are in the singular where they are one.
#[test]
fn summary_time_and_grammar() {
    let tmp = fixture("minimal");
    let root = tmp.path().to_str().unwrap();
    let (_, doc) = run_json(&["check", root]);
    let s = &doc["summary"];
    let wall = s["wall_seconds"].as_f64().unwrap();
    assert!(wall > 0.0 && wall >= s["scan_seconds"].as_f64().unwrap());
    let out = regfsck().args(["check", root]).output().unwrap();
    let human = text(&out.stdout);
    assert!(human.contains("  took "), "{human}");
    assert!(human.contains("1 repository, 1 tag, 1 revision"), "{human}");
    // One stale upload: "1 action", "1 finding".
    let tmp = fixture("sample");
    let root = tmp.path().to_str().unwrap();
    let now = (fixture_now(tmp.path()) + 8 * 86_400).to_string();
    let out = regfsck()
        .args(["check", root, "--now", &now])
        .output()
        .unwrap();
    let human = text(&out.stdout);
    assert!(
        human.contains("(1 action for 1 finding: upload-stale)"),
        "{human}"
    );
    let out = regfsck()
        .args(["repair", root, "--now", &now])
        .output()
        .unwrap();
    let plan = text(&out.stdout);
    assert!(plan.contains("Repair plan (1 action):"), "{plan}");
    for t in [&human, &plan] {
        assert!(
            !t.contains(" 1 actions") && !t.contains(" 1 findings") && !t.contains(" 1 errors"),
            "{t}"
        );
    }
}

/// The scan stops when its cancel flag is set, and says so (exit 32 in the CLI).
#[test]
fn a_cancelled_scan_returns_interrupted() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let tmp = fixture("sample");
    let store = regfsck::store::scan::locate(tmp.path()).unwrap();
    let err = regfsck::store::scan::scan_with(
        &store,
        &regfsck::store::scan::ScanOptions {
            deep: false,
            cancel: Some(Arc::new(AtomicBool::new(true))),
            ..Default::default()
        },
        &regfsck::progress::Silent,
    )
    .unwrap_err();
    assert!(err
        .downcast_ref::<regfsck::store::scan::Interrupted>()
        .is_some());
}

/// A store whose one blob takes many seconds to hash (a sparse file): time enough to press Ctrl-C.
fn slow_store() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = regfsck::model::digest::Digest::of_bytes(b"not what the data hashes to");
    let p = v2(tmp.path()).join(layout::blob_data(&d));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::create_dir_all(v2(tmp.path()).join("repositories")).unwrap();
    let f = fs::File::create(&p).unwrap();
    f.set_len(8 << 30).unwrap();
    tmp
}

fn sigint(child: &std::process::Child) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

/// Start `regfsck check` on a slow store, press Ctrl-C once or twice; returns (time from the
/// first Ctrl-C to exit, output).
fn interrupt(twice: bool) -> (Duration, std::process::Output) {
    let tmp = slow_store();
    let child = regfsck()
        .args(["check", tmp.path().to_str().unwrap(), "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let pressed = Instant::now();
    sigint(&child);
    if twice {
        std::thread::sleep(Duration::from_millis(5));
        sigint(&child);
    }
    let out = child.wait_with_output().unwrap();
    (pressed.elapsed(), out)
}

/// Ctrl-C during hashing: acknowledged on stderr, a report of what was done within a second or
/// so, exit 32.
#[test]
fn ctrl_c_stops_soon_with_a_report() {
    let (took, out) = interrupt(false);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(32), "{stderr}");
    assert!(
        stderr.contains("interrupted: stopping at the next safe point"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["interrupted"], true);
    assert_eq!(doc["summary"]["verification"]["stopped"], "interrupted");
    assert_eq!(doc["summary"]["fully_verified"], false);
    assert_eq!(doc["exit_code"], 32);
}

/// A second Ctrl-C ends the process at once, without a report. (The first one may already have
/// reached its safe point when the second arrives — then there is a report; a few tries make
/// sure the second one is seen.)
#[test]
fn a_second_ctrl_c_exits_at_once() {
    let mut seen = false;
    for _ in 0..5 {
        let (took, out) = interrupt(true);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(32), "{stderr}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        if stderr.contains("interrupted again: exiting now") {
            assert!(out.stdout.is_empty(), "a report after the second Ctrl-C");
            seen = true;
            break;
        }
    }
    assert!(seen, "the second Ctrl-C was never handled");
}

/// Markdown links in the repository's documentation point at files that exist inside it.
#[test]
fn docs_link_only_to_files_in_the_repository() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let canon_repo = repo.canonicalize().unwrap();
    let mut docs = vec![repo.join("README.md"), repo.join("testdata/README.md")];
    for e in fs::read_dir(repo.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut checked = 0;
    for doc in docs {
        let body = fs::read_to_string(&doc).unwrap();
        // Code blocks and spans are not links.
        let mut prose = String::new();
        let mut in_block = false;
        for line in body.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if !in_block {
                prose.push_str(line);
                prose.push('\n');
            }
        }
        for part in prose.split("](").skip(1) {
            let Some(end) = part.find(')') else { continue };
            let target = &part[..end];
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with('#')
            {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let p = doc.parent().unwrap().join(file);
            let canon = p
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: link to {target} ({e})", doc.display()));
            assert!(
                canon.starts_with(&canon_repo),
                "{}: link to {target} leaves the repository",
                doc.display()
            );
            checked += 1;
        }
        // Plain mentions of steering documents outside the repository are links in disguise.
        assert!(
            !prose.contains("../shared/"),
            "{} mentions ../shared/",
            doc.display()
        );
    }
    assert!(
        checked > 5,
        "only {checked} links found: the parser is broken"
    );
}

/// #11: the README's first command shows on a fresh checkout what testdata/README.md says it shows.
/// (The demo's restore is the script's own, not the test harness's: git drops empty folders, and a
/// checkout's mtimes are "now".)
#[test]
fn the_demo_shows_what_the_docs_say() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(repo.join("testdata/demo"))
        .args(["check", "--format", "json"])
        .env("REGFSCK", env!("CARGO_BIN_EXE_regfsck"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &doc["summary"];
    assert_eq!(
        (
            &s["repositories"],
            &s["tags"],
            &s["revisions"],
            &s["blobs"],
            &s["uploads"]
        ),
        (
            &Value::from(8),
            &Value::from(7),
            &Value::from(12),
            &Value::from(27),
            &Value::from(1)
        ),
        "{s:#}"
    );
    assert_eq!(s["errors"], 0);
    let mut by_code: BTreeMap<String, u64> = s["by_code"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    // Time-dependent: stale once the fixture's upload is older than the purge age.
    by_code.remove("upload-stale");
    let want: BTreeMap<String, u64> = [
        ("revision-untagged-child", 4),
        ("blob-unreferenced", 3),
        ("dir-empty", 1),
        ("repo-empty", 1),
        ("layer-link-unused", 4),
        ("repo-missing-manifests", 1),
        ("revision-untagged", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_code, want);
    let doomed: std::collections::BTreeSet<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["repo"] == "scratch/doomed")
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        doomed.into_iter().collect::<Vec<_>>(),
        ["dir-empty", "layer-link-unused", "repo-empty"]
    );
    let docs = fs::read_to_string(repo.join("testdata/README.md")).unwrap();
    for (code, n) in &want {
        assert!(
            docs.contains(&format!("`{code}` ×{n}")),
            "testdata/README.md lacks {code} ×{n}"
        );
    }
    assert!(docs.contains("8 repositories, 7 tags, 12 revisions"));
    // What "Next" says is true for this store: no repair advice unless repair plans something.
    let next = doc["next_steps"].to_string();
    assert!(
        next.contains("Do not run `registry 2.8 garbage-collect --delete-untagged` on this store:")
    );
    assert!(next.contains("3 unreferenced blobs can be reclaimed"));
    let stale = s["by_code"]["upload-stale"].as_u64().unwrap_or(0);
    assert_eq!(next.contains("Run `regfsck repair"), stale > 0, "{next}");
    assert!(
        !next.contains("--no-verify") && !next.contains("/etc/docker"),
        "{next}"
    );
    // And it works: after `repair --apply`, the stale upload is gone (the restored folders carry
    // the pinned mtime, so the grace window does not hold it back).
    if stale > 0 {
        let demo = repo.join("target/demo/sample");
        let out = regfsck()
            .args(["repair", demo.to_str().unwrap(), "--apply", "--quiet"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let (_, after) = run_json(&["check", demo.to_str().unwrap()]);
        assert!(
            after["summary"]["by_code"]["upload-stale"].is_null(),
            "{after:#}"
        );
        assert!(!after["next_steps"]
            .to_string()
            .contains("Run `regfsck repair"));
    }
}

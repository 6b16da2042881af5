//! `--metrics FILE`: the Prometheus text file of check, du and gc, read back with a real parser
//! (openmetrics-parser, strict about escapes, duplicates and family grouping) and by the real
//! consumer (Debian's node_exporter and its textfile collector); its values are the JSON report's;
//! it is written atomically, also when the run fails; its names are the documented, stable ones.

mod common;

use common::damage::{damaged_sample, unpredictable_sample};
use common::store::{fixture, fixture_now, regfsck, run_json, v2};
use regfsck::model::finding::Code;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug)]
struct Family {
    kind: String,
    help: String,
    samples: Vec<(BTreeMap<String, String>, f64)>,
}

/// Parse a text exposition strictly; panics with the parser's message.
fn parse(text: &str) -> BTreeMap<String, Family> {
    use openmetrics_parser::prometheus::parse_prometheus;
    use openmetrics_parser::{PrometheusType, PrometheusValue};
    let exp = parse_prometheus(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut out = BTreeMap::new();
    for (name, f) in exp.families {
        if !matches!(
            f.family_type,
            PrometheusType::Gauge | PrometheusType::Counter | PrometheusType::Unknown
        ) {
            // node_exporter's own summaries (Go GC pauses); ours are all gauges.
            assert!(!name.starts_with("regfsck_"), "{name}: {}", f.family_type);
            continue;
        }
        let samples = f
            .iter_samples()
            .map(|s| {
                let labels = s
                    .get_labelset()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let v = match &s.value {
                    PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                    PrometheusValue::Counter(c) => c.value.as_f64(),
                    other => panic!("{name}: unexpected value {other:?}"),
                };
                (labels, v)
            })
            .collect();
        out.insert(
            name,
            Family {
                kind: f.family_type.to_string(),
                help: f.help.clone(),
                samples,
            },
        );
    }
    out
}

fn read(path: &Path) -> BTreeMap<String, Family> {
    parse(&std::fs::read_to_string(path).unwrap())
}

/// The one sample of `name` whose labels include `labels`.
fn value(m: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let f = m
        .get(name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", m.keys()));
    let hits: Vec<f64> = f
        .samples
        .iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?}: {:?}", f.samples);
    hits[0]
}

fn u(v: &Value) -> f64 {
    v.as_u64().unwrap() as f64
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `regfsck <cmd> ROOT [--now] ARGS --metrics FILE --format json`: (exit, JSON, metrics).
fn run(
    cmd: &str,
    root: &Path,
    extra: &[&str],
    file: &Path,
) -> (i32, Value, BTreeMap<String, Family>) {
    let now = fixture_now(root).to_string();
    let mut args = vec![
        cmd,
        root.to_str().unwrap(),
        "--metrics",
        file.to_str().unwrap(),
    ];
    if cmd != "gc" {
        args.extend(["--now", &now]);
    }
    args.extend_from_slice(extra);
    let before = unix_now();
    let (code, doc) = run_json(&args);
    let after = unix_now();
    let m = read(file);
    let cl = [("command", cmd)];
    assert_eq!(value(&m, "regfsck_run_exit_status", &cl), code as f64);
    let end = value(&m, "regfsck_run_end_timestamp_seconds", &cl);
    assert!(
        before - 1.0 <= end && end <= after + 1.0,
        "{before} {end} {after}"
    );
    let took = value(&m, "regfsck_run_duration_seconds", &cl);
    assert!(took > 0.0 && took <= after - before + 1.0, "{took}");
    assert_eq!(value(&m, "regfsck_run_info", &cl), 1.0);
    for (name, f) in &m {
        assert_eq!(f.kind, "gauge", "{name}");
        assert!(!f.help.is_empty(), "{name}");
        for (labels, _) in &f.samples {
            assert_eq!(
                labels.get("root").map(String::as_str),
                doc["root"].as_str().or(Some(root.to_str().unwrap())),
                "{name}"
            );
        }
    }
    (code, doc, m)
}

#[test]
fn check_metrics_are_the_reports_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.prom");
    let state = dir.path().join("s.state");
    let sample = fixture("sample");
    let damaged = damaged_sample();
    for (root, extra) in [
        (
            sample.path(),
            vec![
                "--reverify-after",
                "30d",
                "--state",
                state.to_str().unwrap(),
            ],
        ),
        (damaged.path(), vec![]),
        (sample.path(), vec!["--verify-subset", "1/3"]),
    ] {
        let (code, doc, m) = run("check", root, &extra, &file);
        let s = &doc["summary"];
        // Findings: every code has a series; counts and severities are the report's.
        let f = &m["regfsck_check_findings"];
        assert_eq!(f.samples.len(), Code::ALL.len());
        for c in Code::ALL {
            let n = s["by_code"].get(c.as_str()).map(u).unwrap_or(0.0);
            let (labels, v) = f
                .samples
                .iter()
                .find(|(l, _)| l["code"] == c.as_str())
                .unwrap();
            assert_eq!(*v, n, "{}", c.as_str());
            if let Some(found) = doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["code"] == c.as_str())
            {
                assert_eq!(found["severity"], labels["severity"].as_str());
            }
        }
        for (sev, key) in [("error", "errors"), ("warn", "warnings"), ("info", "infos")] {
            let sum: f64 = f
                .samples
                .iter()
                .filter(|(l, _)| l["severity"] == sev)
                .map(|x| x.1)
                .sum();
            assert_eq!(sum, u(&s[key]), "{sev}");
        }
        let v = &s["verification"];
        for (name, x) in [
            ("regfsck_check_blobs", &s["blobs"]),
            ("regfsck_check_blob_bytes", &s["blob_bytes"]),
            ("regfsck_check_hashed_blobs", &s["hashed_blobs"]),
            ("regfsck_check_hashed_bytes", &s["hashed_bytes"]),
            ("regfsck_check_verified_blobs", &v["verified_blobs"]),
            ("regfsck_check_verified_bytes", &v["verified_bytes"]),
            ("regfsck_check_repositories", &s["repositories"]),
            ("regfsck_check_findings_skipped", &s["skipped"]),
        ] {
            assert_eq!(value(&m, name, &[]), u(x), "{name}");
        }
        assert_eq!(
            value(&m, "regfsck_check_fully_verified", &[]),
            s["fully_verified"].as_bool().unwrap() as u8 as f64
        );
        match s.get("coverage") {
            Some(c) => {
                assert_eq!(
                    value(&m, "regfsck_check_coverage_bytes", &[]),
                    u(&c["bytes"])
                );
                assert_eq!(
                    value(&m, "regfsck_check_coverage_blobs", &[]),
                    u(&c["blobs"])
                );
                assert_eq!(
                    value(&m, "regfsck_check_coverage_ratio", &[]),
                    u(&c["bytes"]) / u(&s["blob_bytes"])
                );
                assert_eq!(
                    value(&m, "regfsck_check_reverify_after_seconds", &[]),
                    30.0 * 86400.0
                );
            }
            None => assert!(!m.contains_key("regfsck_check_coverage_ratio")),
        }
        if root == damaged.path() {
            assert_eq!(
                code, 4,
                "errors found: exit 4, and the file is written all the same"
            );
            assert!(
                value(
                    &m,
                    "regfsck_check_findings",
                    &[("code", "blob-digest-mismatch")]
                ) >= 1.0
            );
        }
    }
    // A partial verification shows as such.
    let m = read(&file);
    assert_eq!(value(&m, "regfsck_check_fully_verified", &[]), 0.0);
}

#[test]
fn du_metrics_are_the_usage_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("du.prom");
    let sample = fixture("sample");
    let (code, doc, m) = run("du", sample.path(), &[], &file);
    assert_eq!(code, 0);
    let repos = doc["repositories"].as_array().unwrap();
    assert!(repos.len() > 3);
    for r in repos {
        let l = [("repository", r["repo"].as_str().unwrap())];
        for (name, key) in [
            ("regfsck_du_repository_referenced_bytes", "referenced_bytes"),
            ("regfsck_du_repository_exclusive_bytes", "exclusive_bytes"),
            ("regfsck_du_repository_shared_bytes", "shared_bytes"),
            ("regfsck_du_repository_upload_bytes", "upload_bytes"),
            ("regfsck_du_repository_tags", "tags"),
        ] {
            assert_eq!(value(&m, name, &l), u(&r[key]), "{name} {l:?}");
        }
        for (version, key) in [
            ("3", "untagged_only_bytes"),
            ("2.8", "untagged_only_bytes_2_8"),
        ] {
            let mut l = l.to_vec();
            l.push(("version", version));
            assert_eq!(
                value(&m, "regfsck_du_repository_untagged_only_bytes", &l),
                u(&r[key])
            );
        }
    }
    let t = &doc["totals"];
    for (name, key) in [
        ("regfsck_du_blob_bytes", "blob_bytes"),
        ("regfsck_du_referenced_bytes", "referenced_bytes"),
        ("regfsck_du_orphaned_bytes", "orphaned_bytes"),
        ("regfsck_du_upload_bytes", "upload_bytes"),
        ("regfsck_du_dangling_links", "dangling_links"),
    ] {
        assert_eq!(value(&m, name, &[]), u(&t[key]), "{name}");
    }
    assert_eq!(
        value(&m, "regfsck_du_untagged_only_bytes", &[("version", "2.8")]),
        u(&t["untagged_only_bytes_2_8"])
    );
    // --repo narrows the rows, not the totals.
    let (_, _, m) = run("du", sample.path(), &["--repo", "team/*"], &file);
    let shown: BTreeSet<&str> = m["regfsck_du_repository_exclusive_bytes"]
        .samples
        .iter()
        .map(|(l, _)| l["repository"].as_str())
        .collect();
    assert_eq!(shown, BTreeSet::from(["team/proj", "team/proj/app"]));
    assert_eq!(value(&m, "regfsck_du_blob_bytes", &[]), u(&t["blob_bytes"]));
}

#[test]
fn gc_metrics_are_the_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gc.prom");
    let sample = fixture("sample");
    let damaged = damaged_sample();
    let blind = unpredictable_sample();
    let mut seen_abort = false;
    for root in [sample.path(), damaged.path(), blind.path()] {
        let (code, doc, m) = run("gc", root, &[], &file);
        assert_eq!(doc["exit_code"], code);
        let preds = doc["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), 4);
        assert_eq!(m["regfsck_gc_safe"].samples.len(), 4);
        for (p, r) in preds.iter().zip(doc["runs"].as_array().unwrap()) {
            let mode = if p["delete_untagged"] == true {
                "delete-untagged"
            } else {
                "plain"
            };
            let l = [
                ("version", p["registry_version"].as_str().unwrap()),
                ("mode", mode),
            ];
            assert_eq!(
                value(&m, "regfsck_gc_safe", &l),
                r["safe"].as_bool().unwrap() as u8 as f64
            );
            let predictable = p["cannot_predict"].is_null();
            assert_eq!(
                value(&m, "regfsck_gc_predictable", &l),
                predictable as u8 as f64
            );
            if !predictable {
                // Unknown is absent, never a confident 0.
                for name in ["regfsck_gc_would_abort", "regfsck_gc_reclaimable_bytes"] {
                    assert!(m.get(name).is_none_or(|f| !f
                        .samples
                        .iter()
                        .any(|(x, _)| l.iter().all(|(k, v)| x[*k] == *v))));
                }
                continue;
            }
            let aborts = !p["abort"].is_null();
            seen_abort |= aborts;
            assert_eq!(value(&m, "regfsck_gc_would_abort", &l), aborts as u8 as f64);
            assert_eq!(
                value(&m, "regfsck_gc_would_panic", &l),
                p["panic"].as_bool().unwrap() as u8 as f64
            );
            assert_eq!(
                value(&m, "regfsck_gc_reclaimable_bytes", &l),
                u(&p["freed_bytes"])
            );
            assert_eq!(
                value(&m, "regfsck_gc_eligible_blobs", &l),
                p["eligible_blobs"].as_array().unwrap().len() as f64
            );
        }
        if root == blind.path() {
            assert!(!m.contains_key("regfsck_gc_would_abort"));
        }
    }
    assert!(seen_abort, "the damaged store makes some run abort");
}

/// Only `.prom` files a collector reads, no temp residue.
fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn failures_still_write_the_run_and_replace_stale_detail() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.prom");
    let sample = fixture("sample");
    let (_, _, m) = run("check", sample.path(), &[], &file);
    assert!(m.contains_key("regfsck_check_findings"));
    // An operational error: the file is replaced by the run's facts alone.
    let gone = dir.path().join("gone");
    let (code, doc, m) = run("check", &gone, &[], &file);
    assert_eq!(
        (code, doc["error"]["kind"].as_str()),
        (8, Some("operational"))
    );
    assert_eq!(
        m.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(
            [
                "regfsck_run_duration_seconds",
                "regfsck_run_end_timestamp_seconds",
                "regfsck_run_exit_status",
                "regfsck_run_info",
            ]
            .map(String::from)
        )
    );
    // A usage error found after the arguments were read: exit 16, written.
    let (code, _, _) = run("du", sample.path(), &["--purge-age", "soon"], &file);
    assert_eq!(code, 16);
    // Through --config: the config's rootdirectory names the store even when it is missing.
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            gone.display()
        ),
    )
    .unwrap();
    let out = regfsck()
        .args(["gc", "--config"])
        .arg(&cfg)
        .arg("--metrics")
        .arg(&file)
        .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let m = read(&file);
    assert_eq!(
        value(
            &m,
            "regfsck_run_exit_status",
            &[("root", gone.to_str().unwrap()), ("command", "gc")]
        ),
        8.0
    );
    assert_eq!(
        files(dir.path()),
        BTreeSet::from(["check.prom".to_string(), "config.yml".into()])
    );

    // A folder that does not exist: a usage error before any work, nothing written.
    let out = regfsck()
        .args(["check", sample.path().to_str().unwrap(), "--metrics"])
        .arg(dir.path().join("no/such/dir/x.prom"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("does not exist") && !err.contains("cannot write"),
        "{err}"
    );

    // A file that cannot be replaced (a folder is in the way): the report says so and the exit
    // status gains bit 8, since monitoring now shows old data.
    let blocked = dir.path().join("blocked.prom");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"").unwrap();
    let now = fixture_now(sample.path()).to_string();
    let (code, doc) = run_json(&[
        "check",
        sample.path().to_str().unwrap(),
        "--now",
        &now,
        "--metrics",
        blocked.to_str().unwrap(),
    ]);
    assert_eq!(code, 8);
    assert_eq!(doc["exit_code"], 8);
    assert!(doc["run_warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("cannot write metrics"));
    for cmd in ["du", "gc"] {
        let out = regfsck()
            .args([cmd, sample.path().to_str().unwrap(), "--metrics"])
            .arg(&blocked)
            .output()
            .unwrap();
        assert_eq!(out.status.code().unwrap() & 8, 8, "{cmd}");
    }
    assert_eq!(
        files(dir.path()),
        BTreeSet::from([
            "blocked.prom".to_string(),
            "check.prom".into(),
            "config.yml".into()
        ])
    );
}

#[test]
fn labels_survive_any_store_path() {
    let parent = tempfile::tempdir().unwrap();
    let weird = parent
        .path()
        .join("a \"quoted\" \\ back,slash=x}\nnewline é");
    std::fs::create_dir(&weird).unwrap();
    let store = fixture("minimal");
    std::fs::rename(store.path().join("docker"), weird.join("docker")).unwrap();
    let file = parent.path().join("m.prom");
    let (code, doc, m) = run("du", &weird, &[], &file);
    assert_eq!(code, 0);
    assert_eq!(doc["root"], weird.to_str().unwrap());
    // `run` checked every sample's root label against the path, byte for byte.
    assert!(m["regfsck_du_blob_bytes"].samples[0].0["root"].contains('\n'));
}

/// The metric names and their labels, from real runs: check (with a state file, so coverage is
/// present), du, gc and a failed run.
fn names_of_real_runs() -> BTreeMap<String, BTreeSet<String>> {
    let dir = tempfile::tempdir().unwrap();
    let sample = fixture("sample");
    let state = dir.path().join("s.state");
    let mut out = BTreeMap::new();
    let f = dir.path().join("x.prom");
    let runs: [(&str, &Path, Vec<&str>); 4] = [
        (
            "check",
            sample.path(),
            vec![
                "--reverify-after",
                "30d",
                "--state",
                state.to_str().unwrap(),
            ],
        ),
        ("du", sample.path(), vec![]),
        ("gc", sample.path(), vec![]),
        ("check", Path::new("/nonexistent/store"), vec![]),
    ];
    for (cmd, root, extra) in runs {
        let (_, _, m) = run(cmd, root, &extra, &f);
        for (name, fam) in m {
            let labels: BTreeSet<String> = fam
                .samples
                .iter()
                .flat_map(|(l, _)| l.keys().cloned())
                .collect();
            out.insert(name, labels);
        }
    }
    out
}

/// The documented names: rows of docs/metrics.md's tables, `` | `name` | `label`, … | … ``.
fn documented_names() -> BTreeMap<String, BTreeSet<String>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .unwrap();
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("| `regfsck_") else {
            continue;
        };
        let cells: Vec<&str> = rest.split(" | ").collect();
        let name = format!("regfsck_{}", cells[0].trim_end_matches('`'));
        let labels = cells[1]
            .split(", ")
            .map(|l| l.trim_matches('`').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        assert!(out.insert(name.clone(), labels).is_none(), "{name} twice");
    }
    out
}

/// Names are a contract (dashboards and alerts use them): never rename one. This test is the
/// snapshot: docs/metrics.md lists exactly the families real runs write, with their labels.
#[test]
fn metric_names_are_stable_and_documented() {
    let real = names_of_real_runs();
    let documented = documented_names();
    assert_eq!(
        real, documented,
        "metric names or labels drifted from docs/metrics.md: never rename a metric (it breaks \
         dashboards and alerts); document a new one there"
    );
    for name in real.keys() {
        // Prometheus conventions: prefix, snake case, base units, no `_total` on a gauge.
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        assert!(!name.ends_with("_total"), "{name}: a gauge, not a counter");
        for unit in ["_milliseconds", "_kilobytes", "_mb", "_percent", "_ms"] {
            assert!(!name.ends_with(unit), "{name}: use base units");
        }
    }
    assert!(real.len() > 40);
}

fn node_exporter() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("prometheus-node-exporter"))
            .find(|b| b.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("prometheus-node-exporter is required under CI=true: apt-get install --no-install-recommends prometheus-node-exporter");
        }
        eprintln!(
            "SKIPPED: prometheus-node-exporter not installed (bash .ci/test-all installs it)"
        );
    }
    found
}

/// GET /metrics over plain HTTP/1.0.
fn scrape(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let (head, body) = body
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP body"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.to_string()));
    }
    Ok(body.to_string())
}

/// The real consumer: node_exporter's textfile collector reads the files of all three commands
/// on two stores and a failed run side by side (no clashing series, no parse error) and exposes
/// exactly our samples.
#[test]
fn node_exporter_textfile_collector_reads_every_file() {
    let Some(bin) = node_exporter() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("textfile");
    std::fs::create_dir(&tf).unwrap();
    let sample = fixture("sample");
    let damaged = damaged_sample();
    let mut ours = BTreeMap::new();
    let runs: [(&str, &Path, &str); 6] = [
        ("check", sample.path(), "regfsck-check.prom"),
        ("du", sample.path(), "regfsck-du.prom"),
        ("gc", sample.path(), "regfsck-gc.prom"),
        ("check", damaged.path(), "regfsck-check-damaged.prom"),
        ("gc", damaged.path(), "regfsck-gc-damaged.prom"),
        (
            "check",
            Path::new("/nonexistent/store"),
            "regfsck-check-gone.prom",
        ),
    ];
    for (cmd, root, name) in runs {
        let (_, _, m) = run(cmd, root, &[], &tf.join(name));
        for (fam, f) in m {
            for (labels, v) in f.samples {
                assert!(
                    ours.insert((fam.clone(), labels.clone()), v).is_none(),
                    "{fam} {labels:?} written twice across the files"
                );
            }
        }
    }
    assert!(v2(sample.path()).is_dir());
    // node_exporter on loopback, only the textfile collector; retried if the port was taken.
    let mut scraped = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(&bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--collector.disable-defaults", "--collector.textfile"])
            .arg(format!("--collector.textfile.directory={}", tf.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline && scraped.is_none() {
            if let Ok(Some(_)) = child.try_wait() {
                break; // lost the port race
            }
            match scrape(port) {
                Ok(body) => scraped = Some(body),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        if scraped.is_some() {
            break;
        }
    }
    let body = scraped.expect("node_exporter answered");
    let m = parse(&body);
    assert_eq!(value(&m, "node_textfile_scrape_error", &[]), 0.0, "{body}");
    let mtimes = &m["node_textfile_mtime_seconds"].samples;
    assert_eq!(mtimes.len(), 6, "every file read: {mtimes:?}");
    let exposed: BTreeMap<(String, BTreeMap<String, String>), f64> = m
        .into_iter()
        .filter(|(name, _)| name.starts_with("regfsck_"))
        .flat_map(|(name, f)| {
            f.samples
                .into_iter()
                .map(move |(l, v)| ((name.clone(), l), v))
        })
        .collect();
    assert_eq!(exposed.len(), ours.len());
    for (k, v) in &ours {
        let got = exposed
            .get(k)
            .unwrap_or_else(|| panic!("{k:?} not exposed"));
        // node_exporter re-renders floats with Go's shortest form: equal as numbers.
        assert!((got - v).abs() <= v.abs() * 1e-12, "{k:?}: {got} != {v}");
    }
}

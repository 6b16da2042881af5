//! Issue #14: `--io-depth` (reads in flight, apart from `--jobs`). Every command that scans takes
//! it and refuses what cannot work with a clear usage error; and the depth changes how many reads
//! wait on the device at once, never what is found: the findings, usage, GC prediction, listing
//! and plans of a damaged store written by the real registry are identical at depth 1 (one read
//! at a time, the order-sensitive extreme) and at the default and the maximum depth.

mod common;

use common::damage::damaged_sample;
use common::store::{fixture, fixture_now, regfsck, run_json};
use serde_json::Value;

/// Each command that scans, with the arguments it needs besides the store.
fn scanning_commands() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("check", vec!["--no-verify"]),
        ("du", vec![]),
        ("gc", vec![]),
        ("repair", vec!["--no-verify"]),
        ("ls", vec![]),
        ("rm", vec!["hello:v1"]),
        ("prune", vec!["--untagged"]),
    ]
}

#[test]
fn io_depth_is_refused_outside_one_to_1024_on_every_scanning_command() {
    let tmp = fixture("minimal");
    let root = tmp.path().to_str().unwrap();
    for (cmd, extra) in scanning_commands() {
        for (bad, says) in [
            ("0", "0 reads in flight would read nothing"),
            ("1025", "more than 1024 reads in flight"),
            ("-3", "not a number of reads in flight"),
            ("many", "not a number of reads in flight"),
        ] {
            let out = regfsck()
                .args([cmd, root])
                .args(&extra)
                .arg(format!("--io-depth={bad}"))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(16), "{cmd} --io-depth {bad}: {err}");
            assert!(
                err.contains("--io-depth") && err.contains(says),
                "{cmd} --io-depth {bad}: {err}"
            );
            assert!(out.stdout.is_empty(), "{cmd} --io-depth {bad}");
        }
        // The refusal is a usage error in JSON too (regfsck.error/1).
        if cmd != "rm" && cmd != "prune" && cmd != "repair" {
            let mut args = vec![cmd, root];
            args.extend(&extra);
            args.extend(["--io-depth", "0"]);
            let (code, doc) = run_json(&args);
            assert_eq!((code, &doc["error"]["kind"]), (16, &Value::from("usage")));
        }
        // The bounds themselves are accepted.
        for good in ["1", "1024"] {
            let out = regfsck()
                .args([cmd, root])
                .args(&extra)
                .args(["--io-depth", good, "--quiet"])
                .output()
                .unwrap();
            assert_ne!(
                out.status.code(),
                Some(16),
                "{cmd} --io-depth {good}: {out:?}"
            );
        }
    }
}

/// Drop what measures the run rather than the store.
fn strip_timings(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.ends_with("_seconds") && k != "run" && k != "run_id");
            m.values_mut().for_each(strip_timings);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_timings),
        _ => {}
    }
}

#[test]
fn findings_are_the_same_at_every_depth() {
    let damaged = damaged_sample();
    let root = damaged.path().to_str().unwrap();
    let now = fixture_now(damaged.path()).to_string();
    let state = tempfile::tempdir().unwrap();
    let runs: Vec<Vec<&str>> = vec![
        // Hashing too: small blobs on the I/O workers, large ones on the hashing threads.
        vec!["check", root, "--now", &now, "--deep"],
        vec!["check", root, "--now", &now],
        vec!["du", root, "--now", &now],
        vec!["gc", root],
        vec!["gc", root, "--sweep", "-m", "--now", &now],
        vec!["ls", root],
        vec!["prune", root, "--untagged", "--now", &now],
        vec!["rm", root, "team/proj:v1", "--now", &now],
        vec!["repair", root, "--now", &now, "--lossy"],
    ];
    for args in runs {
        let at = |depth: &str| {
            let mut a = args.clone();
            a.extend(["--io-depth", depth]);
            let out = regfsck()
                .args(&a)
                .args(["--format", "json"])
                .env("XDG_STATE_HOME", state.path())
                .output()
                .unwrap();
            let mut doc: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{a:?}: no JSON ({e}): {out:?}"));
            assert!(doc.get("error").is_none(), "{a:?}: {doc:#}");
            strip_timings(&mut doc);
            (out.status.code(), doc)
        };
        let one = at("1");
        // Something was found or planned: equality of two empty documents would prove nothing.
        let text = one.1.to_string();
        assert!(
            ["findings", "actions", "predictions", "repositories"]
                .iter()
                .any(|k| text.contains(&format!("\"{k}\":[{{"))),
            "{args:?}: an empty document\n{text}"
        );
        for depth in ["64", "1024"] {
            assert_eq!(one, at(depth), "{args:?}: depth 1 vs {depth}");
        }
    }
}

/// A TCP relay on 127.0.0.1 in front of `upstream` that tells how many requests were in flight
/// at once. Each connection is timed from its accept to the last answer bytes relayed (moto
/// answers one request per connection and closes it; a kept-alive idle connection ends at its
/// last answer too): the client sees an answer only after the relay has sent it, and opens the
/// next connection after that, so a client that waits for each answer never overlaps two (the
/// end is the time just before the last write; the start is taken after accept returns).
struct Relay {
    port: u16,
    /// (accepted, last answer byte sent, finished) of each connection.
    spans: std::sync::Arc<std::sync::Mutex<Vec<Span>>>,
}

type Span = (std::time::Instant, std::time::Instant, bool);

impl Relay {
    fn start(upstream: u16) -> Relay {
        use std::io::{Read, Write};
        use std::sync::{Arc, Mutex};
        use std::time::Instant;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let all = spans.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let at = Instant::now();
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let i = {
                    let mut v = all.lock().unwrap();
                    v.push((at, at, false));
                    v.len() - 1
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let (mut c, mut s) = (client, server);
                    let _ = std::io::copy(&mut c, &mut s);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                });
                let all = all.clone();
                std::thread::spawn(move || {
                    let (mut s, mut c) = (s2, c2);
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = s.read(&mut buf) {
                        // Timed before the write: the client cannot have these bytes earlier.
                        let t = Instant::now();
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        all.lock().unwrap()[i].1 = t;
                    }
                    all.lock().unwrap()[i].2 = true;
                    let _ = c.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Relay { port, spans }
    }

    /// The most requests in flight at once since the last call (once every connection of the
    /// finished run is closed).
    fn take_most(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.spans.lock().unwrap().iter().any(|s| !s.2)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let spans = std::mem::take(&mut *self.spans.lock().unwrap());
        // Ends sort before starts at the same instant.
        let mut events: Vec<(std::time::Instant, i32)> = spans
            .iter()
            .flat_map(|&(a, b, _)| [(a, 1), (b, -1)])
            .collect();
        events.sort();
        let (mut open, mut most) = (0i32, 0i32);
        for (_, d) in events {
            open += d;
            most = most.max(open);
        }
        most as usize
    }
}

/// On S3, `--io-depth` is the number of HTTP requests in flight: the findings, usage, GC
/// prediction and plan of a damaged bucket (the `sample` pushed through the real registry's s3
/// driver into moto) are the same at depth 1 and 128, and depth 1 never has more than one
/// connection open at once (two while one closes) while 128 has many.
#[test]
fn on_s3_the_depth_is_requests_in_flight_and_findings_are_the_same() {
    use common::s3::{self as s3, json, path_of, regfsck_s3};
    if !s3::available() {
        return;
    }
    let (moto, _, _, now) = s3::pushed("depth", "/reg");
    let v2 = "reg/docker/registry/v2";
    // Damage: a tag's current link gone, a revision link naming another manifest, a stray
    // object among the blobs.
    let c = moto.client("depth");
    c.delete(&format!(
        "{v2}/repositories/beta/app/_manifests/tags/v1/current/link"
    ))
    .unwrap();
    s3::wrong_revision_link(&moto, "depth", v2);
    moto.put("depth", &format!("{v2}/blobs/sha256/ab/stray.tmp"), b"junk");
    // Through the relay, which counts the connections open at once.
    let relay = Relay::start(moto.port);
    let endpoint = format!("http://127.0.0.1:{}", relay.port);
    let cfg = moto.config("depth", "/reg", "");
    let cfg = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&moto.endpoint(), &endpoint);
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("relay.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let cfg = path_of(&cfg_path);
    let runs: Vec<Vec<&str>> = vec![
        vec!["check", "--config", cfg, "--now", &now],
        vec!["du", "--config", cfg, "--now", &now],
        vec!["gc", "--config", cfg, "-m", "--now", &now],
        vec!["repair", "--config", cfg, "--now", &now, "--lossy"],
    ];
    for args in runs {
        let at = |depth: &str| {
            // A fresh state each run: no cache, every request made.
            let state = tempfile::tempdir().unwrap();
            let mut a = args.clone();
            a.extend(["--io-depth", depth, "--format", "json"]);
            let out = regfsck_s3(&a, &[("XDG_STATE_HOME", path_of(state.path()))]);
            let mut doc = json(&out);
            assert!(doc.get("error").is_none(), "{a:?}: {doc:#}");
            strip_timings(&mut doc);
            if let Some(s) = doc.get_mut("stats").and_then(Value::as_object_mut) {
                s.remove("requests");
            }
            (out.status.code(), doc, relay.take_most())
        };
        let (code1, doc1, most1) = at("1");
        let text = doc1.to_string();
        assert!(
            ["findings", "actions", "predictions", "repositories"]
                .iter()
                .any(|k| text.contains(&format!("\"{k}\":[{{"))),
            "{args:?}: an empty document\n{text}"
        );
        let (code128, doc128, most128) = at("128");
        assert_eq!(
            (code1, &doc1),
            (code128, &doc128),
            "{args:?}: depth 1 vs 128"
        );
        assert_eq!(
            most1, 1,
            "{args:?}: depth 1 had {most1} requests in flight at once"
        );
        assert!(
            most128 >= 8,
            "{args:?}: depth 128 had at most {most128} requests in flight at once"
        );
    }
}

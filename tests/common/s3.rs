//! A local S3 server (moto in server mode, which the real registry's s3 driver works with) for
//! the object-storage tests: started on a free 127.0.0.1 port, stopped by PID on drop, its
//! access log kept so tests can count requests. `.ci/test-all` installs it into
//! `target/moto-venv`; under CI=true its absence is a failure, never a skip.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `moto_server`, from $REGFSCK_MOTO_SERVER or the venv `.ci/test-all` makes.
pub fn moto_bin() -> PathBuf {
    std::env::var_os("REGFSCK_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/moto-venv/bin/moto_server"))
}

/// Whether moto, the real registry and skopeo are here (a failure under CI=true).
pub fn available() -> bool {
    let ok = moto_bin().is_file();
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "moto_server is required under CI=true ({}): bash .ci/test-all installs it",
            moto_bin().display()
        );
    }
    if !ok {
        eprintln!("SKIPPED: moto_server not installed (bash .ci/test-all installs it)");
        return false;
    }
    super::registry::registry_available()
}

pub struct Moto {
    pub port: u16,
    child: Child,
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

/// A plain HTTP request to 127.0.0.1:port (moto accepts unsigned requests).
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Generous: a loaded two-core machine (the crash tests beside this one) slows moto a lot.
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

/// Write `key` as a completed multipart upload of one part (unsigned, as moto accepts for a new
/// key): its ETag is `<md5 of the part's md5>-1`, as the registry's s3 driver leaves on blob data.
pub fn put_multipart(port: u16, bucket: &str, key: &str, body: &[u8]) {
    let (st, text) = http(port, "POST", &format!("/{bucket}/{key}?uploads"), b"");
    assert_eq!(st, 200, "{text}");
    let id = text
        .split("<UploadId>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    // The part's ETag is in a response header: read the raw response.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{bucket}/{key}?partNumber=1&uploadId={id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let etag = raw
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("etag:")
                .then(|| l[5..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no ETag: {raw}"));
    let done = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let (st, text) = http(
        port,
        "POST",
        &format!("/{bucket}/{key}?uploadId={id}"),
        done.as_bytes(),
    );
    assert_eq!(st, 200, "{text}");
}

impl Moto {
    /// Start a server on a port it chooses itself (`-p 0`, read back from its log: no port
    /// chosen here can be taken by another test's server first), and wait until it answers a
    /// ListBuckets: the first request loads moto's S3 backend, which takes seconds on a loaded
    /// machine, and must not eat into a test's first request.
    pub fn start() -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        // The real clock for the server, as for the registry (Go reads it without libc):
        // object times and `startedat` must agree under `faketime` too.
        let child = Command::new(moto_bin())
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env_remove("LD_PRELOAD")
            .env_remove("FAKETIME")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start moto_server");
        let mut m = Moto {
            port: 0,
            child,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while m.port == 0 {
            if m.child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                panic!(
                    "moto_server did not start on 127.0.0.1: {}",
                    std::fs::read_to_string(&m.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
            m.port = std::fs::read_to_string(&m.log)
                .unwrap_or_default()
                .split("Running on http://127.0.0.1:")
                .nth(1)
                .and_then(|r| {
                    let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                })
                .unwrap_or(0);
        }
        assert!(
            super::net::listening(m.child.id(), m.port),
            "moto_server (pid {}) does not listen on 127.0.0.1:{}",
            m.child.id(),
            m.port
        );
        let (status, body) = http(m.port, "GET", "/", b"");
        assert_eq!(status, 200, "moto_server's first ListBuckets: {body}");
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket(&self, name: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "create bucket {name}: {body}");
    }

    /// A signed PutObject (moto refuses anonymous writes over objects the registry wrote).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.client(bucket).put(key, body).unwrap();
    }

    pub fn client(&self, bucket: &str) -> regfsck::store::s3::client::Client {
        use regfsck::store::s3::config::{Credentials, S3Config, Secret};
        let cfg =
            S3Config::from_url(&format!("s3://{bucket}"), Some(&self.endpoint()), None).unwrap();
        let creds = Credentials {
            access_key: Secret::new("regfsck-test"),
            secret_key: Secret::new("regfsck-test"),
            session_token: None,
            source: String::new(),
        };
        regfsck::store::s3::client::Client::new(&cfg, creds).unwrap()
    }

    /// Requests the server has answered so far (its access log).
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" HTTP/1.1\""))
            .count()
    }

    /// The registry's configuration for a store in `bucket` below `root`.
    pub fn config(&self, bucket: &str, root: &str, extra: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{bucket}.yml"));
        std::fs::write(
            &p,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  s3:\n    bucket: {bucket}\n    region: us-east-1\n    regionendpoint: {}\n    rootdirectory: {root}\n    secure: false\n    accesskey: regfsck-test\n    secretkey: regfsck-test\n{extra}",
                self.endpoint()
            ),
        )
        .unwrap();
        p
    }

    /// The server's clock: the LastModified of an object written now (outside any store).
    pub fn now(&self, bucket: &str) -> i64 {
        self.put(bucket, "regfsck-clock", b"x");
        let (_, body) = http(
            self.port,
            "GET",
            &format!("/{bucket}?list-type=2&prefix=regfsck-clock"),
            b"",
        );
        let t = body
            .split("<LastModified>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap();
        regfsck::model::timefmt::parse_rfc3339(t).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Push the `sample` fixture's images through the real registry's s3 driver into `bucket`
/// (testdata/generate --s3): the same store as testdata/stores/sample, on object storage.
pub fn push_sample(moto: &Moto, bucket: &str, root: &str) -> serde_json::Value {
    moto.bucket(bucket);
    let out = Command::new("bash")
        .arg(repo_root().join("testdata/generate"))
        .args(["--s3", &moto.endpoint(), bucket, root])
        .env_remove("LD_PRELOAD")
        .env_remove("FAKETIME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "testdata/generate --s3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `sample` store pushed into `bucket` (below `root`) of a fresh server: the server, what
/// the generator knows, the registry's config and a `--now` a day after the push.
pub fn pushed(bucket: &str, root: &str) -> (Moto, serde_json::Value, PathBuf, String) {
    let moto = Moto::start();
    let expected = push_sample(&moto, bucket, root);
    let cfg = moto.config(bucket, root, "");
    let now = (moto.now(bucket) + 86_400).to_string();
    (moto, expected, cfg, now)
}

/// Every object below `prefix` of `bucket`, as the listing gives it (every page, keys in order).
pub fn objects_below(
    moto: &Moto,
    bucket: &str,
    prefix: &str,
) -> Vec<regfsck::store::s3::client::Object> {
    let c = moto.client(bucket);
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_page(prefix, None, token.as_deref(), false, 1000)
            .unwrap();
        out.extend(page.objects);
        match page.next {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

/// Every object below `prefix` of `bucket`, with its content (keys in order).
pub fn snapshot(
    moto: &Moto,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let c = moto.client(bucket);
    objects_below(moto, bucket, prefix)
        .into_iter()
        .map(|o| {
            let body = c.get(&o.key, 1 << 30).unwrap();
            (o.key, body)
        })
        .collect()
}

/// The keys that differ between two snapshots (for messages).
pub fn diff(
    a: &std::collections::BTreeMap<String, Vec<u8>>,
    b: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Damage a pushed `sample` below `v2` (`<root>/docker/registry/v2`): team/proj:v1's revision
/// link names beta/app:v1's manifest instead (same length: only its content tells).
pub fn wrong_revision_link(moto: &Moto, bucket: &str, v2: &str) {
    let tag = super::store::tag_digest("sample", "team/proj", "v1");
    let other = super::store::tag_digest("sample", "beta/app", "v1");
    moto.put(
        bucket,
        &format!(
            "{v2}/repositories/team/proj/_manifests/revisions/sha256/{}/link",
            tag.hex()
        ),
        other.to_string().as_bytes(),
    );
}

/// Run regfsck with S3 credentials only in the environment the test gives.
pub fn regfsck_s3(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = super::store::regfsck();
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        c.env_remove(k);
    }
    c.env("HOME", "/nonexistent");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn path_of(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every object below `prefix` of `bucket`: its size and ETag (what the listing vouches for).
pub fn listing(
    moto: &Moto,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, (u64, String)> {
    objects_below(moto, bucket, prefix)
        .into_iter()
        .map(|o| (o.key, (o.size, o.etag)))
        .collect()
}

/// Serve the bucket with the real registry (a fresh process: no cache from before a change).
pub fn serve(cfg: &Path) -> super::registry::Registry {
    let text = std::fs::read_to_string(cfg).unwrap();
    super::registry::Registry::start_with(|dir, port| {
        let p = dir.join("config.yml");
        std::fs::write(&p, format!("{text}http:\n  addr: 127.0.0.1:{port}\n")).unwrap();
        p
    })
}

/// The eligible blobs and (repository, manifest) pairs of regfsck's registry-2.8 prediction
/// (`gc --format json`) with or without --delete-untagged: what the real dry-run prints.
pub fn eligible(
    doc: &serde_json::Value,
    m: bool,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<(String, String)>,
) {
    let p = doc["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["registry_version"] == "2.8" && p["delete_untagged"] == m)
        .unwrap();
    let blobs = p["eligible_blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    let manifests = p["eligible_manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["repo"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (blobs, manifests)
}

/// The command's stdout, after asserting that it succeeded.
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The runs of the store `--config cfg` names (`undo --list --format json`).
pub fn runs(cfg: &str) -> Vec<serde_json::Value> {
    let out = regfsck_s3(
        &["undo", "--config", cfg, "--list", "--format", "json"],
        &[],
    );
    json(&out)["runs"].as_array().unwrap().clone()
}

//! The real registry (Debian's docker-registry 2.8) as a test oracle: serve a store on 127.0.0.1
//! and pull from it with skopeo (which verifies every digest), and run its garbage collector.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Whether the real registry and skopeo are here. Under CI=true their absence is a failure,
/// never a skip.
pub fn registry_available() -> bool {
    let ok = on_path("docker-registry") && on_path("skopeo");
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("docker-registry and skopeo are required under CI=true: apt-get install -y docker-registry skopeo");
    }
    if !ok {
        eprintln!(
            "SKIPPED: docker-registry or skopeo not installed (bash .ci/test-all installs them)"
        );
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, root: &Path, addr: Option<&str>) -> PathBuf {
    let mut text = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    uploadpurging:\n      enabled: false\n      age: 168h\n      interval: 24h\n      dryrun: false\n",
        root.display()
    );
    if let Some(a) = addr {
        text.push_str(&format!("http:\n  addr: {a}\n"));
    }
    let p = dir.join("config.yml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A running registry on 127.0.0.1, stopped on drop.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(root: &Path) -> Registry {
        Registry::start_with(|dir, port| config(dir, root, Some(&format!("127.0.0.1:{port}"))))
    }

    /// Serve with the config `make(dir, port)` writes (into `dir`, listening on 127.0.0.1:port),
    /// e.g. a bucket's: without AWS_CA_BUNDLE, with which 2.8's s3 driver panics at start.
    pub fn start_with(make: impl Fn(&Path, u16) -> PathBuf) -> Registry {
        // The port is free when chosen but another test may take it before the registry binds;
        // a registry that lost the race exits at once, and another port is tried.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let cfg = make(dir.path(), port);
            if cfg != dir.path().join("config.yml") {
                std::fs::copy(&cfg, dir.path().join("config.yml")).unwrap();
            }
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .env_remove("AWS_CA_BUNDLE")
                .env_remove("LD_PRELOAD")
                .env_remove("FAKETIME")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let mut reg = Registry {
                port,
                child,
                _dir: dir,
            };
            // Up when this registry holds the listening socket: a connect alone may reach
            // another test's server that took the port first (then ours exits, and we retry).
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut up = false;
            while Instant::now() < deadline {
                if reg.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                // (A connect first: /proc/net/tcp lists every socket of the machine, thousands
                // in TIME_WAIT while the S3 tests run, and reading it every 50 ms showed in
                // profiles of the test suite.)
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && super::net::listening(reg.child.id(), port)
                {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return reg;
            }
        }
        panic!("docker-registry did not start on 127.0.0.1");
    }

    /// Pull a tag or digest completely (every platform, every blob verified by skopeo).
    pub fn pull(&self, repo: &str, reference: &str) -> Result<(), String> {
        let sep = if reference.starts_with("sha256:") {
            "@"
        } else {
            ":"
        };
        let dest = tempfile::tempdir().unwrap();
        self.skopeo(
            &format!("docker://127.0.0.1:{}/{repo}{sep}{reference}", self.port),
            &format!("oci:{}:x", dest.path().display()),
        )
    }
}

impl Registry {
    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file it serves with.
    pub fn config(&self) -> PathBuf {
        self._dir.path().join("config.yml")
    }

    /// Copy a tag (every platform) into the OCI layout `dir` (image name `x`).
    pub fn pull_to(&self, repo: &str, tag: &str, dir: &Path) -> Result<(), String> {
        self.skopeo(
            &format!("docker://127.0.0.1:{}/{repo}:{tag}", self.port),
            &format!("oci:{}:x", dir.display()),
        )
    }

    /// Push the image `x` of the OCI layout `dir` as `repo:tag`: a real registry write.
    pub fn push(&self, dir: &Path, repo: &str, tag: &str) -> Result<(), String> {
        self.skopeo(
            &format!("oci:{}:x", dir.display()),
            &format!("docker://127.0.0.1:{}/{repo}:{tag}", self.port),
        )
    }

    fn skopeo(&self, from: &str, to: &str) -> Result<(), String> {
        let out = Command::new("skopeo")
            .args([
                "copy",
                "-q",
                "--all",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--retry-times",
                "0",
                from,
                to,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the real `garbage-collect --dry-run` said.
#[derive(Debug)]
pub struct GcOutcome {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub eligible_blobs: BTreeSet<String>,
    /// (repo, digest); on 2.8 the repo is the last bare repository line printed before it.
    pub eligible_manifests: BTreeSet<(String, String)>,
    pub aborted: Option<String>,
}

/// `docker-registry garbage-collect [--dry-run] [--delete-untagged] <config in dir>`.
fn gc_command(
    dir: &Path,
    root: &Path,
    delete_untagged: bool,
    dry_run: bool,
    unprivileged: bool,
) -> Command {
    let cfg = config(dir, root, None);
    let mut cmd = if unprivileged {
        super::store::open_to_all(dir);
        super::store::unprivileged("docker-registry")
    } else {
        Command::new("docker-registry")
    };
    cmd.arg("garbage-collect");
    if dry_run {
        cmd.arg("--dry-run");
    }
    if delete_untagged {
        cmd.arg("--delete-untagged");
    }
    cmd.arg(cfg);
    cmd
}

pub fn gc_dry_run(root: &Path, delete_untagged: bool) -> GcOutcome {
    gc_dry_run_as(root, delete_untagged, false)
}

/// `gc_dry_run`, run as an unprivileged user when `unprivileged` (see
/// `store::unprivileged`): what the real GC does where that user cannot read something.
pub fn gc_dry_run_as(root: &Path, delete_untagged: bool, unprivileged: bool) -> GcOutcome {
    let dir = tempfile::tempdir().unwrap();
    gc_outcome(gc_command(
        dir.path(),
        root,
        delete_untagged,
        true,
        unprivileged,
    ))
}

/// The real `garbage-collect --dry-run [-m]` with this configuration file (any driver).
pub fn gc_dry_run_config(cfg: &Path, delete_untagged: bool) -> GcOutcome {
    let mut cmd = Command::new("docker-registry");
    cmd.args(["garbage-collect", "--dry-run"]);
    if delete_untagged {
        cmd.arg("--delete-untagged");
    }
    cmd.arg(cfg);
    gc_outcome(cmd)
}

fn gc_outcome(mut cmd: Command) -> GcOutcome {
    let out = cmd.output().expect("run docker-registry garbage-collect");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let mut eligible_blobs = BTreeSet::new();
    let mut eligible_manifests = BTreeSet::new();
    let mut repo = String::new();
    for line in stdout.lines() {
        if let Some(d) = line.strip_prefix("blob eligible for deletion: ") {
            eligible_blobs.insert(d.trim().to_string());
        } else if let Some(d) = line.strip_prefix("manifest eligible for deletion: ") {
            eligible_manifests.insert((repo.clone(), d.trim().to_string()));
        } else if !line.is_empty() && !line.contains(' ') && !line.contains(':') {
            repo = line.to_string();
        }
    }
    let code = out.status.code().unwrap_or(-1);
    let aborted = if code == 0 {
        None
    } else if let Some(i) = stderr.find("failed to garbage collect: ") {
        Some(
            stderr[i + "failed to garbage collect: ".len()..]
                .trim()
                .to_string(),
        )
    } else if let Some(i) = stderr.find("panic: ") {
        Some(stderr[i..].lines().next().unwrap_or("panic").to_string())
    } else {
        Some(format!("exit {code}: {}", stderr.trim()))
    };
    GcOutcome {
        exit_code: code,
        stdout,
        stderr,
        eligible_blobs,
        eligible_manifests,
        aborted,
    }
}

/// Assert that regfsck's prediction of a run is what the real dry-run of that run did: the same
/// abort (its text verbatim up to a JSON parser's own detail) or the same eligible blobs and
/// manifests.
pub fn assert_agrees(p: &regfsck::analysis::gc::Prediction, real: &GcOutcome, what: &str) {
    assert!(
        p.cannot_predict.is_none(),
        "{what}: regfsck cannot predict ({:?}); the real GC said {:?}",
        p.cannot_predict,
        real.aborted
    );
    let (blobs, manifests, aborted) = p.dry_run_view();
    assert_eq!(
        aborted,
        real.aborted.is_some(),
        "{what}: abort predicted {:?}, real {:?}",
        p.abort,
        real.aborted
    );
    if let (Some(a), Some(r)) = (&p.abort, &real.aborted) {
        // A JSON parser's own error text differs between Go and Rust: compare up to it.
        // Everything else (paths, Go's wrapping, errno texts) must be verbatim.
        let strip = |t: &str| match t.find("failed to retrieve manifest for digest ") {
            Some(i) => t[..i + "failed to retrieve manifest for digest ".len() + 71].to_string(),
            None => t.to_string(),
        };
        assert_eq!(strip(&a.reason), strip(r), "{what}: abort reason");
        assert_eq!(p.panic, real.exit_code == 2, "{what}: panic");
    } else {
        assert_eq!(blobs, real.eligible_blobs, "{what}: eligible blobs");
        assert_eq!(
            manifests, real.eligible_manifests,
            "{what}: eligible manifests"
        );
    }
}

/// One HTTP/1.0 exchange with the registry on 127.0.0.1 (no client library: a request line,
/// headers, a body; the registry answers and closes). Returns (status, headers, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    try_http(port, method, path, headers, body).expect("an HTTP answer")
}

/// `http`, with `None` when no answer came (refused, reset, closed without one, timed out): a
/// registry under heavy load is no answer about the store.
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Some((status, head, resp[split + 4..].to_vec()))
}

impl Registry {
    /// GET a JSON document of the API (`/v2/_catalog`, `/v2/<name>/tags/list`): (status, body).
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = http(self.port, "GET", path, &[], b"");
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The repositories `/v2/_catalog` lists.
    pub fn catalog(&self) -> BTreeSet<String> {
        let (status, doc) = self.get_json("/v2/_catalog?n=1000");
        assert_eq!(status, 200, "{doc}");
        doc["repositories"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// The tags `/v2/<name>/tags/list` lists; `None` when the registry answers 404.
    pub fn tags(&self, repo: &str) -> Option<BTreeSet<String>> {
        let (status, doc) = self.get_json(&format!("/v2/{repo}/tags/list"));
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "{repo}: {doc}");
        Some(
            doc["tags"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
        )
    }

    /// Upload a blob (`POST .../blobs/uploads/`, then one `PUT ...?digest=` with the data): a real
    /// registry write.
    pub fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(data));
        let (status, head, _) = http(
            self.port,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        );
        assert_eq!(status, 202, "blob upload to {repo}: {head}");
        let location = head
            .lines()
            .find_map(|l| l.strip_prefix("Location: "))
            .expect("an upload location")
            .trim()
            .to_string();
        let path = location
            .split_once(&format!("127.0.0.1:{}", self.port))
            .map(|(_, p)| p.to_string())
            .unwrap_or(location);
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, head, _) = http(
            self.port,
            "PUT",
            &format!("{path}{sep}digest={d}"),
            &[("Content-Type", "application/octet-stream")],
            data,
        );
        assert_eq!(status, 201, "blob upload to {repo}: {head}");
        d
    }

    /// PUT a manifest by tag or digest; returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let (status, head, resp) = http(
            self.port,
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        );
        assert_eq!(
            status,
            201,
            "manifest {repo}:{reference}: {head} {}",
            String::from_utf8_lossy(&resp)
        );
        format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(body))
    }

    /// Push a one-layer OCI image (an amd64/linux config and `layer` as its only layer) tagged
    /// `tag`, blob by blob through the registry's API; returns the layer's digest.
    pub fn put_image(&self, repo: &str, tag: &str, layer: &[u8]) -> String {
        let layer_digest = self.put_blob(repo, layer);
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = self.put_blob(repo, config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
        });
        self.put_manifest(
            repo,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        );
        layer_digest
    }

    /// Whether `GET /v2/<repo>/manifests/<reference>` answers 200.
    pub fn has_manifest(&self, repo: &str, reference: &str) -> bool {
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
        http(
            self.port,
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", accept)],
            b"",
        )
        .0 == 200
    }
}

/// The real `garbage-collect` (not a dry run): it deletes. Returns its output.
pub fn gc_run(root: &Path, delete_untagged: bool) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let out = gc_command(dir.path(), root, delete_untagged, false, false)
        .output()
        .expect("run docker-registry garbage-collect");
    assert!(
        out.status.success(),
        "garbage-collect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The dry-run's count line, `N blobs marked, N blobs and N manifests eligible for deletion`:
/// (marked, eligible blobs, eligible manifests); `None` when the run stopped before it.
pub fn gc_summary(stdout: &str) -> Option<(usize, usize, usize)> {
    let line = stdout
        .lines()
        .find(|l| l.ends_with(" manifests eligible for deletion"))?;
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums[..] {
        [a, b, c] => Some((a, b, c)),
        _ => None,
    }
}

/// What the registry answered to a manifest GET.
pub struct ManifestAnswer {
    pub status: u16,
    /// The `Docker-Content-Digest` header.
    pub digest: Option<String>,
    pub body: Vec<u8>,
}

impl Registry {
    /// `GET /v2/<repo>/manifests/<reference>` accepting every manifest type, as a client does
    /// before it verifies anything: tells a failure of the registry from one of the client.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<ManifestAnswer> {
        let accept = "application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v1+prettyjws";
        let (status, head, body) = try_http(
            self.port,
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", accept)],
            b"",
        )?;
        let digest = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        });
        Some(ManifestAnswer {
            status,
            digest,
            body,
        })
    }
}

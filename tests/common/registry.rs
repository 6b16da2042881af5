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
        // The port is free when chosen but another test may take it before the registry binds;
        // a registry that lost the race exits at once, so check that ours is the one answering.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let cfg = config(dir.path(), root, Some(&format!("127.0.0.1:{port}")));
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let mut reg = Registry {
                port,
                child,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut up = false;
            while Instant::now() < deadline {
                if reg.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                    up = reg.child.try_wait().ok().flatten().is_none();
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
        let out = Command::new("skopeo")
            .args([
                "copy",
                "-q",
                "--all",
                "--src-tls-verify=false",
                "--retry-times",
                "0",
            ])
            .arg(format!(
                "docker://127.0.0.1:{}/{repo}{sep}{reference}",
                self.port
            ))
            .arg(format!("oci:{}:x", dest.path().display()))
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

pub fn gc_dry_run(root: &Path, delete_untagged: bool) -> GcOutcome {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), root, None);
    let mut cmd = Command::new("docker-registry");
    cmd.args(["garbage-collect", "--dry-run"]);
    if delete_untagged {
        cmd.arg("--delete-untagged");
    }
    let out = cmd
        .arg(&cfg)
        .output()
        .expect("run docker-registry garbage-collect");
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
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let accept = "application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v1+prettyjws";
        write!(
            s,
            "GET /v2/{repo}/manifests/{reference} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n"
        )
        .ok()?;
        let mut all = Vec::new();
        s.read_to_end(&mut all).ok()?;
        let split = all.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&all[..split]).to_string();
        let status = head.get(9..12)?.parse().ok()?;
        let digest = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        });
        Some(ManifestAnswer {
            status,
            digest,
            body: all[split + 4..].to_vec(),
        })
    }
}

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

pub fn gc_dry_run(root: &Path, delete_untagged: bool) -> GcOutcome {
    gc_dry_run_as(root, delete_untagged, false)
}

/// `gc_dry_run`, run as an unprivileged user when `unprivileged` (see
/// `store::unprivileged`): what the real GC does where that user cannot read something.
pub fn gc_dry_run_as(root: &Path, delete_untagged: bool, unprivileged: bool) -> GcOutcome {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), root, None);
    let cmd = if unprivileged {
        super::store::open_to_all(dir.path());
        super::store::unprivileged("docker-registry")
    } else {
        Command::new("docker-registry")
    };
    gc_dry_run_with(cmd, &cfg, delete_untagged)
}

/// The real `garbage-collect --dry-run [-m]` with this configuration file (any driver).
pub fn gc_dry_run_config(cfg: &Path, delete_untagged: bool) -> GcOutcome {
    gc_dry_run_with(Command::new("docker-registry"), cfg, delete_untagged)
}

fn gc_dry_run_with(mut cmd: Command, cfg: &Path, delete_untagged: bool) -> GcOutcome {
    cmd.args(["garbage-collect", "--dry-run"]);
    if delete_untagged {
        cmd.arg("--delete-untagged");
    }
    let out = cmd
        .arg(cfg)
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

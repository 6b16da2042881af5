//! `--metrics FILE` of check, du and gc: the Prometheus text file for node_exporter's textfile
//! collector, replaced atomically (temp file in the same folder, fsync, rename), also when the
//! run fails after its arguments were read (then only the run's end, duration and exit status).

use super::{Command, StoreArgs};
use crate::report::metrics::{self, RunInfo};
use clap::Args;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Also write Prometheus metrics to FILE (for node_exporter's textfile collector, e.g.
    /// /var/lib/prometheus/node-exporter/regfsck-check.prom), replaced atomically; written on
    /// errors too (see docs/metrics.md).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
}

impl MetricsArgs {
    /// The file's folder must exist (a typo should fail at once, not after hours of hashing).
    pub fn validate(&self) -> Result<(), super::Failure> {
        let Some(p) = &self.metrics else {
            return Ok(());
        };
        let dir = folder(p);
        if !dir.is_dir() {
            return Err(super::Failure::Usage(format!(
                "--metrics {}: the folder {} does not exist",
                p.display(),
                dir.display()
            )));
        }
        Ok(())
    }

    /// Render and write the file when one was asked for. Err holds the message (already on
    /// stderr): the caller records it and adds exit bit 8, since monitoring now sees stale data.
    pub fn write(&self, render: impl FnOnce() -> String) -> Result<(), String> {
        let Some(p) = &self.metrics else {
            return Ok(());
        };
        write_atomic(p, render().as_bytes()).map_err(|e| {
            let w = format!("cannot write metrics {}: {e}", p.display());
            eprintln!("regfsck: {w}");
            w
        })
    }
}

/// Seconds since the Unix epoch, now (the real clock: `--now` only moves the age checks).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The run's facts for the file, ending now.
pub fn run_info<'a>(
    command: &'static str,
    root: &'a str,
    started: Instant,
    exit_status: i32,
) -> RunInfo<'a> {
    RunInfo {
        command,
        root,
        end_unix_seconds: unix_now(),
        duration_seconds: started.elapsed().as_secs_f64(),
        exit_status,
    }
}

fn folder(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Write `data` to `path` so that a reader sees the old file or the new one, never a part: a
/// temp file beside it (a dot name not ending in `.prom`, which the textfile collector ignores),
/// fsynced, renamed over the target, and the folder fsynced so the rename survives a crash.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = folder(path);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.regfsck-tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable once the folder is synced; a folder that cannot be opened for that
    // (unusual permissions) still holds the complete new file.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The store's rootdirectory as the report would name it, resolved without failing: the located
/// store, else ROOT as given, else the config's rootdirectory, else the environment or the
/// default; empty when a named config cannot be read.
fn named_root(s: &StoreArgs) -> String {
    if let Ok(l) = s.locate() {
        return l.store.location();
    }
    if let Some(r) = &s.root {
        return r.display().to_string();
    }
    if let Some(c) = &s.config {
        return crate::store::config::load(c)
            .map(|c| match &c.storage {
                crate::store::config::Driver::Filesystem(root) => root.display().to_string(),
                crate::store::config::Driver::S3(s3) => s3.display(),
            })
            .unwrap_or_default();
    }
    std::env::var_os(crate::store::config::ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| PathBuf::from(v).display().to_string())
        .unwrap_or_else(|| crate::store::config::DEFAULT_ROOT.to_string())
}

/// A command that was asked for metrics, remembered before it runs, so that a failure still
/// replaces the file (stale detail must not outlive a failed run).
pub struct Pending {
    command: &'static str,
    args: MetricsArgs,
    store: StoreArgs,
    started: Instant,
}

impl Pending {
    pub fn of(cmd: &Command, started: Instant) -> Option<Pending> {
        let (command, args, store) = match cmd {
            Command::Check(a) => ("check", &a.metrics, &a.store),
            Command::Du(a) => ("du", &a.metrics, &a.store),
            Command::Gc(a) => ("gc", &a.metrics, &a.store),
            _ => return None,
        };
        args.metrics.as_ref()?;
        Some(Pending {
            command,
            args: args.clone(),
            store: store.clone(),
            started,
        })
    }

    /// The run failed before it could report: write the run's end, duration and exit status.
    pub fn failed(&self, exit_status: i32) {
        if self.args.validate().is_err() {
            return; // the usage error already says that the folder is missing
        }
        let root = named_root(&self.store);
        let _ = self
            .args
            .write(|| metrics::run_only(&run_info(self.command, &root, self.started, exit_status)));
    }
}

//! Executes a plan against the store with a journal, a quarantine and a lock; resumes a run
//! interrupted by a crash; undoes a run byte for byte.
//!
//! Every step is idempotent with respect to what its intent record says, so re-executing the
//! last announced step after a crash at any point converges:
//! - quarantine: rename source -> quarantine only while the source exists and the quarantine
//!   copy does not;
//! - write-link: displace the old entry (same rule), create the recorded folders, write
//!   `<path>.regfsck-new`, fsync, rename over the path (atomic), fsync the folder;
//! - create-dir: `create_dir_all`;
//! - move-blob: rename while the source exists and the destination does not.
//!
//! Undo reverses each announced step under the same rules, newest first.

use super::journal::{self, Journal, Record};
use super::{ActionKind, Plan};
use crate::model::layout::QUARANTINE_DIR;
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const V2: &str = "docker/registry/v2";
/// Fault injection for the crash-safety tests: SIGKILL ourselves at the Nth mutation point.
const KILL_ENV: &str = "REGFSCK_TEST_KILL_AT";

#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Objects modified less than this many seconds before `now` are never touched.
    pub grace: i64,
    pub now: i64,
}

#[derive(Clone, Debug, Default)]
pub struct ApplyOutcome {
    pub run_id: String,
    pub applied: usize,
    pub skipped: Vec<(usize, String)>,
}

/// An exclusive lock on the store's quarantine folder, held for a whole apply or undo.
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(root: &Path) -> Result<Lock> {
        let dir = root.join(QUARANTINE_DIR);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            bail!(
                "another regfsck repair or undo holds the lock {}",
                dir.join("lock").display()
            );
        }
        Ok(Lock { _file: file })
    }
}

/// `YYYYMMDDTHHMMSSZ-<hex>`: sortable and safe as a folder name.
fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let t = crate::model::timefmt::format_rfc3339(now.as_secs() as i64).replace(['-', ':'], "");
    format!(
        "{t}-{:04x}{:04x}",
        std::process::id() & 0xffff,
        now.subsec_nanos() & 0xffff
    )
}

/// Run ids name folders: accept only what `new_run_id` makes.
pub fn valid_run_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() >= 21
        && b.len() <= 40
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && &b[15..17] == b"Z-"
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn run_dir(root: &Path, run_id: &str) -> Result<PathBuf> {
    if !valid_run_id(run_id) {
        bail!("{run_id:?} is not a regfsck run id (see `regfsck undo --list`)");
    }
    Ok(root.join(QUARANTINE_DIR).join(run_id))
}

/// Validate an action path: relative, under blobs/ or repositories/, no `.`/`..`/empty parts,
/// and no symlink among its existing ancestors (so nothing outside v2 is ever touched).
fn checked(root: &Path, rel: &str) -> Result<PathBuf> {
    let parts: Vec<&str> = rel.split('/').collect();
    let ok = matches!(parts.first(), Some(&"blobs") | Some(&"repositories"))
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\0'));
    if !ok {
        bail!("refusing unsafe path {rel:?}");
    }
    let mut p = root.join(V2);
    for part in &parts[..parts.len() - 1] {
        p.push(part);
        if let Ok(m) = fs::symlink_metadata(&p) {
            if m.file_type().is_symlink() {
                bail!("refusing {rel:?}: {} is a symlink", p.display());
            }
        }
    }
    Ok(root.join(V2).join(rel))
}

fn fsync_dir(p: &Path) {
    if let Ok(d) = File::open(p) {
        let _ = d.sync_all();
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::rename(from, to).map_err(|e| {
        if e.raw_os_error() == Some(libc::EXDEV) {
            anyhow!(
                "{} and the quarantine are on different filesystems: refusing to copy user data",
                from.display()
            )
        } else {
            anyhow!("cannot move {} to {}: {e}", from.display(), to.display())
        }
    })?;
    for p in [from.parent(), to.parent()].into_iter().flatten() {
        fsync_dir(p);
    }
    Ok(())
}

/// Missing ancestors of `dir` (itself included), outermost first, relative to v2.
fn missing_dirs(root: &Path, rel_dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in rel_dir.split('/') {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        if !exists(&root.join(V2).join(&acc)) {
            out.push(acc.clone());
        }
    }
    out
}

fn parent_rel(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

struct Runner<'a> {
    root: &'a Path,
    dir: PathBuf,
    journal: Journal,
    mutations: usize,
    kill_at: Option<usize>,
}

impl Runner<'_> {
    fn point(&mut self) {
        self.mutations += 1;
        if self.kill_at == Some(self.mutations) {
            // SAFETY: raising a signal on our own process.
            unsafe { libc::raise(libc::SIGKILL) };
        }
    }

    fn record(&mut self, r: &Record) -> Result<()> {
        self.journal.write(r)?;
        self.point();
        Ok(())
    }

    fn qpath(&self, rel: &str) -> PathBuf {
        self.dir.join("files").join(V2).join(rel)
    }

    /// Why action `i` should not run now, if it should not.
    fn precondition(&self, kind: &ActionKind, opts: &ApplyOptions) -> Result<Option<String>> {
        // A zero grace window means "touch anything" (tests, an operator who knows).
        let young = |p: &Path| {
            opts.grace > 0
                && fs::symlink_metadata(p).is_ok_and(|m| m.mtime() > opts.now - opts.grace)
        };
        Ok(match kind {
            ActionKind::Quarantine { path } => {
                let p = checked(self.root, path)?;
                if !exists(&p) {
                    Some("already gone".into())
                } else if young(&p) {
                    Some("modified within the grace window".into())
                } else {
                    None
                }
            }
            ActionKind::WriteLink { path, digest } => {
                let p = checked(self.root, path)?;
                if fs::read(&p).is_ok_and(|b| b == digest.to_string().as_bytes()) {
                    Some("already correct".into())
                } else if young(&p) {
                    Some("modified within the grace window".into())
                } else {
                    None
                }
            }
            ActionKind::CreateDir { path } => {
                let p = checked(self.root, path)?;
                fs::symlink_metadata(&p)
                    .is_ok_and(|m| m.is_dir())
                    .then(|| "already exists".into())
            }
            ActionKind::MoveBlob { from, to } => {
                let (f, t) = (checked(self.root, from)?, checked(self.root, to)?);
                if !exists(&f) {
                    Some("already gone".into())
                } else if exists(&t) {
                    Some("destination exists".into())
                } else if young(&f) {
                    Some("modified within the grace window".into())
                } else {
                    None
                }
            }
        })
    }

    fn intent_for(&self, kind: &ActionKind) -> Result<(Vec<String>, bool)> {
        Ok(match kind {
            ActionKind::Quarantine { .. } => (Vec::new(), false),
            ActionKind::WriteLink { path, .. } => (
                missing_dirs(self.root, parent_rel(path)),
                exists(&checked(self.root, path)?),
            ),
            ActionKind::CreateDir { path } => (missing_dirs(self.root, path), false),
            ActionKind::MoveBlob { to, .. } => (missing_dirs(self.root, parent_rel(to)), false),
        })
    }

    /// Execute (or re-execute after a crash) one announced step.
    fn execute(&mut self, kind: &ActionKind, displaces: bool) -> Result<()> {
        match kind {
            ActionKind::Quarantine { path } => {
                let (src, q) = (checked(self.root, path)?, self.qpath(path));
                if exists(&src) && !exists(&q) {
                    rename(&src, &q)?;
                    self.point();
                }
            }
            ActionKind::WriteLink { path, digest } => {
                let p = checked(self.root, path)?;
                let q = self.qpath(path);
                let content = digest.to_string();
                if fs::read(&p).is_ok_and(|b| b == content.as_bytes()) && (!displaces || exists(&q))
                {
                    return Ok(());
                }
                if displaces && exists(&p) && !exists(&q) {
                    rename(&p, &q)?;
                    self.point();
                }
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)?;
                }
                let tmp = p.with_file_name(format!(
                    "{}.regfsck-new",
                    p.file_name().and_then(|n| n.to_str()).unwrap_or("link")
                ));
                {
                    let mut f = File::create(&tmp)?;
                    f.write_all(content.as_bytes())?;
                    f.sync_all()?;
                }
                self.point();
                fs::rename(&tmp, &p)?;
                if let Some(parent) = p.parent() {
                    fsync_dir(parent);
                }
                self.point();
            }
            ActionKind::CreateDir { path } => {
                let p = checked(self.root, path)?;
                fs::create_dir_all(&p)?;
                if let Some(parent) = p.parent() {
                    fsync_dir(parent);
                }
                self.point();
            }
            ActionKind::MoveBlob { from, to } => {
                let (f, t) = (checked(self.root, from)?, checked(self.root, to)?);
                if exists(&f) && !exists(&t) {
                    rename(&f, &t)?;
                    self.point();
                }
            }
        }
        Ok(())
    }

    fn run(
        &mut self,
        plan: &Plan,
        state: &RunState,
        opts: &ApplyOptions,
        out: &mut ApplyOutcome,
    ) -> Result<()> {
        for (i, a) in plan.actions.iter().enumerate() {
            if state.done.contains(&i) || state.skipped.contains(&i) {
                continue;
            }
            if let Some((creates, displaces)) = state.intents.get(&i) {
                // Announced before a crash: finish it whatever its preconditions say now.
                let _ = creates;
                self.execute(&a.kind, *displaces)?;
                self.record(&Record::Done { i })?;
                out.applied += 1;
                continue;
            }
            if let Some(reason) = self.precondition(&a.kind, opts)? {
                self.record(&Record::Skip {
                    i,
                    reason: reason.clone(),
                })?;
                out.skipped.push((i, reason));
                continue;
            }
            let (creates, displaces) = self.intent_for(&a.kind)?;
            self.record(&Record::Intent {
                i,
                creates,
                displaces,
            })?;
            self.execute(&a.kind, displaces)?;
            self.record(&Record::Done { i })?;
            out.applied += 1;
        }
        self.record(&Record::End)?;
        Ok(())
    }
}

/// What a journal says about a run.
#[derive(Default)]
struct RunState {
    intents: std::collections::BTreeMap<usize, (Vec<String>, bool)>,
    done: std::collections::BTreeSet<usize>,
    skipped: std::collections::BTreeSet<usize>,
    ended: bool,
    undo_started: bool,
    undone_steps: std::collections::BTreeSet<usize>,
    undone: bool,
}

fn state(records: &[Record]) -> RunState {
    let mut s = RunState::default();
    for r in records {
        match r {
            Record::Intent {
                i,
                creates,
                displaces,
            } => {
                s.intents.insert(*i, (creates.clone(), *displaces));
            }
            Record::Done { i } => {
                s.done.insert(*i);
            }
            Record::Skip { i, .. } => {
                s.skipped.insert(*i);
            }
            Record::End => s.ended = true,
            Record::UndoIntent { .. } => s.undo_started = true,
            Record::UndoDone { i } => {
                s.undone_steps.insert(*i);
            }
            Record::Undone => s.undone = true,
            Record::Begin { .. } => {}
        }
    }
    s
}

fn kill_at() -> Option<usize> {
    std::env::var(KILL_ENV).ok().and_then(|v| v.parse().ok())
}

fn runner<'a>(root: &'a Path, run_id: &str) -> Result<Runner<'a>> {
    let dir = run_dir(root, run_id)?;
    let journal = Journal::open(&dir.join("journal.jsonl"))?;
    Ok(Runner {
        root,
        dir,
        journal,
        mutations: 0,
        kill_at: kill_at(),
    })
}

/// Apply a plan as a new run. Takes the lock.
pub fn apply(root: &Path, plan: &Plan, opts: &ApplyOptions) -> Result<ApplyOutcome> {
    let _lock = Lock::acquire(root)?;
    let run_id = new_run_id();
    let dir = run_dir(root, &run_id)?;
    fs::create_dir_all(&dir)?;
    let mut f = File::create(dir.join("plan.json"))?;
    f.write_all(serde_json::to_string_pretty(plan)?.as_bytes())?;
    f.sync_all()?;
    fsync_dir(&dir);
    let mut r = runner(root, &run_id)?;
    r.record(&Record::Begin {
        run: run_id.clone(),
        actions: plan.actions.len(),
    })?;
    let mut out = ApplyOutcome {
        run_id,
        ..ApplyOutcome::default()
    };
    r.run(plan, &RunState::default(), opts, &mut out)?;
    Ok(out)
}

fn load(root: &Path, run_id: &str) -> Result<(Plan, Vec<Record>)> {
    let dir = run_dir(root, run_id)?;
    let plan: Plan =
        serde_json::from_slice(&fs::read(dir.join("plan.json")).context("reading plan.json")?)
            .context("plan.json is damaged")?;
    let records = journal::read(&dir.join("journal.jsonl")).context("reading journal.jsonl")?;
    Ok((plan, records))
}

/// Runs whose apply was interrupted (no end record and no undo), oldest first.
pub fn incomplete_runs(root: &Path) -> Vec<String> {
    runs(root)
        .into_iter()
        .filter(|r| r.state == "incomplete")
        .map(|r| r.id)
        .collect()
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunInfo {
    pub id: String,
    pub actions: usize,
    /// complete, incomplete, undone, undo-incomplete
    pub state: &'static str,
}

pub fn runs(root: &Path) -> Vec<RunInfo> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(root.join(QUARANTINE_DIR)) else {
        return out;
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| valid_run_id(n))
        .collect();
    ids.sort();
    for id in ids {
        let Ok((plan, records)) = load(root, &id) else {
            continue;
        };
        let s = state(&records);
        let st = if s.undone {
            "undone"
        } else if s.undo_started {
            "undo-incomplete"
        } else if s.ended {
            "complete"
        } else {
            "incomplete"
        };
        out.push(RunInfo {
            id,
            actions: plan.actions.len(),
            state: st,
        });
    }
    out
}

/// Finish a run interrupted by a crash, from its journal.
pub fn resume(root: &Path, run_id: &str, opts: &ApplyOptions) -> Result<ApplyOutcome> {
    let _lock = Lock::acquire(root)?;
    let (plan, records) = load(root, run_id)?;
    let s = state(&records);
    let mut out = ApplyOutcome {
        run_id: run_id.to_string(),
        ..ApplyOutcome::default()
    };
    if s.ended || s.undo_started {
        return Ok(out);
    }
    let mut r = runner(root, run_id)?;
    r.run(&plan, &s, opts, &mut out)?;
    Ok(out)
}

#[derive(Clone, Debug, Default)]
pub struct UndoOutcome {
    pub restored: usize,
}

/// Restore the store as it was before the run, byte for byte.
pub fn undo(root: &Path, run_id: &str) -> Result<UndoOutcome> {
    let _lock = Lock::acquire(root)?;
    let (plan, records) = load(root, run_id)?;
    let s = state(&records);
    let mut out = UndoOutcome::default();
    if s.undone {
        return Ok(out);
    }
    let mut r = runner(root, run_id)?;
    for (&i, (creates, displaces)) in s.intents.iter().rev() {
        if s.undone_steps.contains(&i) {
            continue;
        }
        let Some(action) = plan.actions.get(i) else {
            continue;
        };
        r.record(&Record::UndoIntent { i })?;
        match &action.kind {
            ActionKind::Quarantine { path } => {
                let (src, q) = (checked(root, path)?, r.qpath(path));
                if exists(&q) && !exists(&src) {
                    rename(&q, &src)?;
                }
            }
            ActionKind::WriteLink { path, .. } => {
                let p = checked(root, path)?;
                let tmp = p.with_file_name(format!(
                    "{}.regfsck-new",
                    p.file_name().and_then(|n| n.to_str()).unwrap_or("link")
                ));
                let _ = fs::remove_file(&tmp);
                let q = r.qpath(path);
                if *displaces && exists(&q) {
                    if fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                        fs::remove_file(&p)?;
                    }
                    rename(&q, &p)?;
                } else if !*displaces && fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                    fs::remove_file(&p)?;
                }
            }
            ActionKind::MoveBlob { from, to } => {
                let (f, t) = (checked(root, from)?, checked(root, to)?);
                if exists(&t) && !exists(&f) {
                    rename(&t, &f)?;
                }
            }
            ActionKind::CreateDir { .. } => {}
        }
        // Folders the step created, deepest first, only while empty.
        for d in creates.iter().rev() {
            let _ = fs::remove_dir(root.join(V2).join(d));
        }
        r.point();
        r.record(&Record::UndoDone { i })?;
        out.restored += 1;
    }
    r.record(&Record::Undone)?;
    Ok(out)
}

//! The one applier: executes any plan (repair today, the cleanup commands next) against the store
//! with a journal, a quarantine and a lock; resumes a run interrupted by a crash; undoes a run
//! byte for byte without ever overwriting what was written after it.
//!
//! Before each action, right before it runs, the applier decides whether it may run at all:
//! - refused: a path it changes or a path its verdict rests on (`Action::evidence`) is, lies
//!   below or contains a path that could not be read (`ApplyOptions::unreadable`, and probed
//!   again now), or a path is unsafe (outside `blobs/`/`repositories/`, below a symlink);
//! - skipped: nothing left to do, or the newest mtime anywhere in the tree it moves or rewrites
//!   is inside the grace window (the outcome says when it becomes eligible).
//!
//! A run exists (`<root>/regfsck-quarantine/<run>/`) only once an action changes something: a run
//! whose actions were all skipped or refused leaves no trace.
//!
//! Every step is idempotent with respect to what its intent record says, so re-executing the
//! last announced step after a crash at any point converges:
//! - quarantine: rename source -> quarantine only while the source exists and the quarantine
//!   copy does not;
//! - write-link: displace the old entry (same rule), create the recorded folders, write
//!   `<path>.regfsck-new`, fsync, journal what it leaves (`leaves`), rename over the path
//!   (atomic), fsync the folder;
//! - create-dir: `create_dir_all`;
//! - move-blob: journal what it leaves, then rename while the source exists and the destination
//!   does not.
//!
//! Undo reverses each announced step, newest first, only where the store still holds exactly
//! what the run left (same inode, size, mtime and, for links, content); anything else is kept and
//! listed, and the run stays "partly-undone" until a later undo can finish it.

use super::journal::{self, Counts, FileId, Journal, Record};
use super::{Action, ActionKind, Plan};
use crate::model::layout::QUARANTINE_DIR;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const V2: &str = "docker/registry/v2";
/// Fault injection for the crash-safety tests: SIGKILL ourselves at the Nth mutation point.
const KILL_ENV: &str = "REGFSCK_TEST_KILL_AT";

#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Trees with anything modified less than this many seconds before `now` are never touched.
    pub grace: i64,
    pub now: i64,
    /// Paths (v2-relative) the analysis could not read (`path-unreadable`): every action whose
    /// paths or evidence touch one of them is refused.
    pub unreadable: Vec<String>,
}

/// How one action of a plan ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    Applied,
    /// Not executed, nothing changed; `eligible_at` (unix seconds) when only the grace window
    /// holds it back.
    Skipped {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        eligible_at: Option<i64>,
    },
    /// Not executed because acting would rest on something unreadable or unsafe.
    Refused {
        reason: String,
    },
    /// Started and failed; whatever it changed is in the journal and undo reverses it.
    Failed {
        error: String,
    },
}

#[derive(Clone, Debug, Default)]
pub struct ApplyOutcome {
    /// `None` when nothing changed (no run was created).
    pub run_id: Option<String>,
    /// One per action of the plan, in plan order.
    pub statuses: Vec<Status>,
    /// Actions applied by this call (a resumed run counts only what it finished now).
    pub applied_now: usize,
}

pub fn count(statuses: &[Status]) -> Counts {
    let mut c = Counts::default();
    for s in statuses {
        match s {
            Status::Applied => c.applied += 1,
            Status::Skipped { .. } => c.skipped += 1,
            Status::Refused { .. } => c.refused += 1,
            Status::Failed { .. } => c.failed += 1,
        }
    }
    c
}

impl ApplyOutcome {
    pub fn counts(&self) -> Counts {
        count(&self.statuses)
    }
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
pub(super) fn new_run_id() -> String {
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

/// Validate a plan path: relative, under blobs/ or repositories/, no `.`/`..`/empty parts, and no
/// symlink among its existing ancestors (so nothing outside v2 is ever touched or read).
fn checked(root: &Path, rel: &str) -> Result<PathBuf> {
    let parts: Vec<&str> = rel.split('/').collect();
    let ok = matches!(parts.first(), Some(&"blobs") | Some(&"repositories"))
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\0'));
    if !ok {
        bail!("unsafe path {rel:?}");
    }
    let mut p = root.join(V2);
    for part in &parts[..parts.len() - 1] {
        p.push(part);
        if let Ok(m) = fs::symlink_metadata(&p) {
            if m.file_type().is_symlink() {
                bail!("{} is a symlink", p.display());
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

/// `lstat`, with "no such entry" (also below a file) as `None` and every other error kept.
fn lstat(p: &Path) -> std::io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn open_nofollow(p: &Path) -> std::io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(p)
}

/// Whether `p` is a regular file holding exactly `content` (never through a symlink).
fn holds(p: &Path, content: &[u8]) -> bool {
    let Ok(f) = open_nofollow(p) else {
        return false;
    };
    let mut buf = Vec::new();
    f.take(content.len() as u64 + 1)
        .read_to_end(&mut buf)
        .is_ok()
        && buf == content
}

/// What is at `p` now (`None`: nothing).
pub fn file_id(p: &Path) -> std::io::Result<Option<FileId>> {
    let Some(m) = lstat(p)? else {
        return Ok(None);
    };
    let ft = m.file_type();
    let kind = if ft.is_file() {
        "file"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "other"
    };
    let sha256 = if ft.is_file() && m.len() <= journal::HASHED_UP_TO {
        let mut buf = Vec::new();
        open_nofollow(p)?.read_to_end(&mut buf)?;
        Some(format!("{:x}", Sha256::digest(&buf)))
    } else {
        None
    };
    Ok(Some(FileId {
        kind: kind.into(),
        size: m.len(),
        ino: m.ino(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        sha256,
        etag: None,
    }))
}

/// Whether `p` can be read: nothing there is fine (absence is evidence too), a symlink is never
/// followed, a file must open and a folder must list.
fn readable(p: &Path) -> std::io::Result<()> {
    match lstat(p)? {
        None => Ok(()),
        Some(m) if m.is_dir() => fs::read_dir(p).map(|_| ()),
        Some(m) if m.is_file() => open_nofollow(p).map(|_| ()),
        Some(_) => Ok(()),
    }
}

/// The newest mtime of anything in the tree at `p` (folders included: a new entry changes its
/// folder's mtime), without following symlinks. `None` when nothing is there.
pub fn newest_mtime(p: &Path) -> std::io::Result<Option<i64>> {
    let Some(m) = lstat(p)? else {
        return Ok(None);
    };
    let mut newest = m.mtime();
    if m.is_dir() {
        let mut stack = vec![p.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir)? {
                let e = e?;
                let m = fs::symlink_metadata(e.path())?;
                newest = newest.max(m.mtime());
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    Ok(Some(newest))
}

/// `a` and `b` are the same path or one lies inside the other.
fn touches(a: &str, b: &str) -> bool {
    let inside =
        |x: &str, y: &str| x.len() > y.len() && x.starts_with(y) && x.as_bytes()[y.len()] == b'/';
    a == b || inside(a, b) || inside(b, a)
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

fn staged(p: &Path) -> PathBuf {
    p.with_file_name(format!(
        "{}.regfsck-new",
        p.file_name().and_then(|n| n.to_str()).unwrap_or("link")
    ))
}

/// The refusal of an action whose changed or evidence paths touch one the analysis could not
/// read (on any medium).
pub(super) fn unreadable_refusal(a: &Action, opts: &ApplyOptions) -> Option<Status> {
    let own = a.kind.paths();
    for t in a.touched() {
        if let Some(u) = opts.unreadable.iter().find(|u| touches(t, u)) {
            let what = if own.contains(&t) {
                format!("it changes {t}")
            } else {
                format!("it rests on {t}")
            };
            return Some(Status::Refused {
                reason: if u == t {
                    format!("{what}, which could not be read")
                } else {
                    format!("{what}, and {u} could not be read")
                },
            });
        }
    }
    None
}

/// The journal record of an action its preconditions held back (skipped or refused).
pub(super) fn settle_record(i: usize, status: &Status) -> Record {
    match status {
        Status::Skipped {
            reason,
            eligible_at,
        } => Record::Skip {
            i,
            reason: reason.clone(),
            eligible_at: *eligible_at,
        },
        Status::Refused { reason } => Record::Refuse {
            i,
            reason: reason.clone(),
        },
        _ => unreachable!("preconditions only skip or refuse"),
    }
}

/// Why action `a` must not run now, if it must not. Reads the store, changes nothing.
fn precondition(root: &Path, a: &Action, opts: &ApplyOptions) -> Option<Status> {
    let refuse = |reason: String| Some(Status::Refused { reason });
    for t in a.touched() {
        if let Err(e) = checked(root, t) {
            return refuse(format!("{e}"));
        }
    }
    if let Some(s) = unreadable_refusal(a, opts) {
        return Some(s);
    }
    let own = a.kind.paths();
    let what = |t: &str| {
        if own.contains(&t) {
            format!("it changes {t}")
        } else {
            format!("it rests on {t}")
        }
    };
    for t in a.touched() {
        if let Err(e) = readable(&root.join(V2).join(t)) {
            return refuse(format!("{}, which cannot be read now: {e}", what(t)));
        }
    }
    let p = |rel: &str| root.join(V2).join(rel);
    let skip = |reason: &str| {
        Some(Status::Skipped {
            reason: reason.into(),
            eligible_at: None,
        })
    };
    let tree = match &a.kind {
        ActionKind::Quarantine { path } => {
            if !exists(&p(path)) {
                return skip("already gone");
            }
            Some(path)
        }
        ActionKind::WriteLink { path, digest } => {
            if holds(&p(path), digest.to_string().as_bytes()) {
                return skip("already correct");
            }
            Some(path)
        }
        ActionKind::CreateDir { path } => {
            if fs::symlink_metadata(p(path)).is_ok_and(|m| m.is_dir()) {
                return skip("already exists");
            }
            None
        }
        ActionKind::AbortMultipart { .. } => {
            return refuse("multipart uploads exist on object storage only".into())
        }
        ActionKind::MoveBlob { from, to } => {
            if !exists(&p(from)) {
                return skip("already gone");
            }
            if exists(&p(to)) {
                return skip("destination exists");
            }
            Some(from)
        }
    };
    if let Some(rel) = tree {
        match newest_mtime(&p(rel)) {
            Err(e) => return refuse(format!("cannot read {rel} to judge its age: {e}")),
            Ok(Some(m)) if opts.grace > 0 && m > opts.now - opts.grace => {
                return Some(Status::Skipped {
                    reason: format!(
                        "modified {} ago, within the grace window",
                        crate::model::duration::format((opts.now - m).max(0) as u64)
                    ),
                    eligible_at: Some(m + opts.grace),
                })
            }
            Ok(_) => {}
        }
    }
    None
}

/// What would happen to each action if the plan were applied now (`None`: it would run). Reads
/// the store, changes nothing: for showing a plan.
pub fn assess(root: &Path, plan: &Plan, opts: &ApplyOptions) -> Vec<Option<Status>> {
    plan.actions
        .iter()
        .map(|a| precondition(root, a, opts))
        .collect()
}

/// A step's failure: `Fatal` stops the run (the journal cannot be trusted to record more),
/// `Failed` is recorded for the action and the run goes on.
pub(super) enum StepError {
    Fatal(anyhow::Error),
    Failed(String),
}

impl From<std::io::Error> for StepError {
    fn from(e: std::io::Error) -> StepError {
        StepError::Failed(e.to_string())
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> StepError {
        StepError::Failed(format!("{e:#}"))
    }
}

struct Runner<'a> {
    root: &'a Path,
    plan: &'a Plan,
    run_id: String,
    dir: PathBuf,
    /// Open once the run has begun (its first change); until then records wait in `pending`.
    journal: Option<Journal>,
    pending: Vec<Record>,
    points: Points,
}

impl Runner<'_> {
    fn point(&mut self) {
        self.points.hit();
    }

    /// Create the run: its folder, the plan, the journal's `begin` and whatever waited.
    fn begin(&mut self) -> Result<()> {
        if self.journal.is_some() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        let mut f = File::create(self.dir.join("plan.json"))?;
        f.write_all(serde_json::to_string_pretty(self.plan)?.as_bytes())?;
        f.sync_all()?;
        fsync_dir(&self.dir);
        if let Some(parent) = self.dir.parent() {
            fsync_dir(parent);
        }
        self.journal = Some(Journal::open(&self.dir.join("journal.jsonl"))?);
        self.record(&Record::Begin {
            run: self.run_id.clone(),
            actions: self.plan.actions.len(),
        })?;
        for r in std::mem::take(&mut self.pending) {
            self.record(&r)?;
        }
        Ok(())
    }

    fn record(&mut self, r: &Record) -> Result<()> {
        match &mut self.journal {
            Some(j) => {
                j.write(r)?;
                self.point();
            }
            None => self.pending.push(r.clone()),
        }
        Ok(())
    }

    fn qpath(&self, rel: &str) -> PathBuf {
        self.dir.join("files").join(V2).join(rel)
    }

    fn intent_for(&self, kind: &ActionKind) -> Result<(Vec<String>, bool)> {
        Ok(match kind {
            ActionKind::Quarantine { .. } | ActionKind::AbortMultipart { .. } => {
                (Vec::new(), false)
            }
            ActionKind::WriteLink { path, .. } => (
                missing_dirs(self.root, parent_rel(path)),
                exists(&checked(self.root, path)?),
            ),
            ActionKind::CreateDir { path } => (missing_dirs(self.root, path), false),
            ActionKind::MoveBlob { to, .. } => (missing_dirs(self.root, parent_rel(to)), false),
        })
    }

    /// Execute (or re-execute after a crash) one announced step.
    fn execute(&mut self, i: usize, kind: &ActionKind, displaces: bool) -> Result<(), StepError> {
        let fatal = StepError::Fatal;
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
                if holds(&p, content.as_bytes()) && (!displaces || exists(&q)) {
                    return Ok(());
                }
                if displaces && exists(&p) && !exists(&q) {
                    rename(&p, &q)?;
                    self.point();
                }
                if !displaces && exists(&p) {
                    // Announced when nothing was there: someone wrote it since. Not ours to replace.
                    return Err(StepError::Failed(format!(
                        "{path} appeared after the step was announced; left as it is"
                    )));
                }
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)?;
                }
                let tmp = staged(&p);
                {
                    let mut f = File::create(&tmp)?;
                    f.write_all(content.as_bytes())?;
                    f.sync_all()?;
                }
                self.point();
                let id = file_id(&tmp)?.ok_or_else(|| anyhow!("{} vanished", tmp.display()))?;
                self.record(&Record::Leaves {
                    i,
                    path: path.clone(),
                    id,
                })
                .map_err(fatal)?;
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
                    let id = file_id(&f)?.ok_or_else(|| anyhow!("{from} vanished"))?;
                    self.record(&Record::Leaves {
                        i,
                        path: to.clone(),
                        id,
                    })
                    .map_err(fatal)?;
                    rename(&f, &t)?;
                    self.point();
                }
            }
            ActionKind::AbortMultipart { .. } => {
                return Err(StepError::Failed(
                    "multipart uploads exist on object storage only".into(),
                ))
            }
        }
        Ok(())
    }
}

/// One medium's steps, for the run and undo loops every medium shares: the filesystem's
/// `Runner` here, the object store's in `objects`.
pub(super) trait Medium {
    /// Count a mutation point (and die there when the crash tests ask).
    fn point(&mut self);
    /// Whether the run exists (its plan and first record written).
    fn begun(&self) -> bool;
    /// Create the run: its plan, the `begin` record and whatever records waited.
    fn begin(&mut self) -> Result<()>;
    fn record(&mut self, r: &Record) -> Result<()>;
    fn run_id(&self) -> &str;
    /// Why action `a` must not run now, if it must not.
    fn precondition(&self, a: &Action, opts: &ApplyOptions) -> Result<Option<Status>>;
    /// The intent record's `creates` and `displaces` for a step about to run.
    fn intent_for(&self, kind: &ActionKind) -> Result<(Vec<String>, bool)>;
    /// Execute (or re-execute after a crash) one announced step; `left` is its last `leaves`.
    fn execute(
        &mut self,
        i: usize,
        kind: &ActionKind,
        displaces: bool,
        left: Option<&FileId>,
    ) -> Result<(), StepError>;
    /// Reverse step `i`, or say why it is kept.
    fn reverse(&mut self, i: usize, s: &RunState) -> Result<Option<String>>;
}

/// Execute an announced step and record how it ended.
fn finish<M: Medium>(
    m: &mut M,
    i: usize,
    a: &Action,
    s: &RunState,
    displaces: bool,
) -> Result<Status> {
    match m.execute(i, &a.kind, displaces, s.leaves.get(&i)) {
        Ok(()) => {
            m.record(&Record::Done { i })?;
            Ok(Status::Applied)
        }
        Err(StepError::Fatal(e)) => Err(e),
        Err(StepError::Failed(error)) => {
            m.record(&Record::Fail {
                i,
                error: error.clone(),
            })?;
            Ok(Status::Failed { error })
        }
    }
}

/// Run (or resume, from what its journal says) a plan on a medium.
pub(super) fn run_plan<M: Medium>(
    m: &mut M,
    plan: &Plan,
    state: &RunState,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome> {
    let mut out = ApplyOutcome::default();
    for (i, a) in plan.actions.iter().enumerate() {
        if let Some(s) = state.settled.get(&i) {
            out.statuses.push(s.clone());
            continue;
        }
        let status = if let Some((_, displaces)) = state.intents.get(&i) {
            // Announced before a crash: finish it whatever its preconditions say now.
            finish(m, i, a, state, *displaces)?
        } else if let Some(status) = m.precondition(a, opts)? {
            m.record(&settle_record(i, &status))?;
            status
        } else {
            m.begin()?;
            let (creates, displaces) = m.intent_for(&a.kind)?;
            m.record(&Record::Intent {
                i,
                creates,
                displaces,
            })?;
            finish(m, i, a, state, displaces)?
        };
        if status == Status::Applied {
            out.applied_now += 1;
        }
        out.statuses.push(status);
    }
    if m.begun() {
        let counts = out.counts();
        m.record(&Record::End { counts })?;
        out.run_id = Some(m.run_id().to_string());
    }
    Ok(out)
}

/// Undo a run's steps on a medium, newest first, and record how the attempt ended. An aborted
/// multipart upload cannot be reversed: it is listed as irreversible, not as kept.
pub(super) fn undo_steps<M: Medium>(
    m: &mut M,
    plan: &Plan,
    s: &RunState,
    out: &mut UndoOutcome,
) -> Result<()> {
    for &i in s.intents.keys().rev() {
        if i >= plan.actions.len() {
            continue;
        }
        if let ActionKind::AbortMultipart { path, upload_id } = &plan.actions[i].kind {
            out.irreversible.push(Kept {
                action: i,
                path: path.clone(),
                reason: format!(
                    "multipart upload {upload_id} was aborted: the service deleted its parts, which no undo can bring back"
                ),
            });
            if !s.undone_steps.contains(&i) {
                // Nothing to reverse: recorded as settled so the run can end "undone".
                m.record(&Record::UndoIntent { i })?;
                m.record(&Record::UndoDone { i })?;
            }
            continue;
        }
        if s.undone_steps.contains(&i) {
            continue;
        }
        m.record(&Record::UndoIntent { i })?;
        match m.reverse(i, s)? {
            None => {
                m.point();
                m.record(&Record::UndoDone { i })?;
                out.reversed += 1;
            }
            Some(reason) => {
                m.record(&Record::UndoKeep {
                    i,
                    reason: reason.clone(),
                })?;
                out.kept.push(Kept {
                    action: i,
                    path: plan.actions[i].kind.path().to_string(),
                    reason,
                });
            }
        }
    }
    m.record(&if out.kept.is_empty() {
        Record::Undone
    } else {
        Record::UndoPartial {
            kept: out.kept.len(),
        }
    })
}

impl Medium for Runner<'_> {
    fn point(&mut self) {
        Runner::point(self)
    }

    fn begun(&self) -> bool {
        self.journal.is_some()
    }

    fn begin(&mut self) -> Result<()> {
        Runner::begin(self)
    }

    fn record(&mut self, r: &Record) -> Result<()> {
        Runner::record(self, r)
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn precondition(&self, a: &Action, opts: &ApplyOptions) -> Result<Option<Status>> {
        Ok(precondition(self.root, a, opts))
    }

    fn intent_for(&self, kind: &ActionKind) -> Result<(Vec<String>, bool)> {
        Runner::intent_for(self, kind)
    }

    fn execute(
        &mut self,
        i: usize,
        kind: &ActionKind,
        displaces: bool,
        _left: Option<&FileId>,
    ) -> Result<(), StepError> {
        Runner::execute(self, i, kind, displaces)
    }

    fn reverse(&mut self, i: usize, s: &RunState) -> Result<Option<String>> {
        Runner::reverse(self, i, s)
    }
}

/// What a journal says about a run.
#[derive(Default)]
pub(super) struct RunState {
    pub(super) intents: BTreeMap<usize, (Vec<String>, bool)>,
    /// Actions with a final outcome (done, skipped, refused, failed).
    pub(super) settled: BTreeMap<usize, Status>,
    pub(super) done: BTreeSet<usize>,
    /// The last `leaves` record of each action.
    pub(super) leaves: BTreeMap<usize, FileId>,
    pub(super) ended: bool,
    /// Undo: steps an attempt started, steps reversed by any attempt; whether an attempt is
    /// open; how the last one ended.
    pub(super) undo_started: BTreeSet<usize>,
    pub(super) undone_steps: BTreeSet<usize>,
    pub(super) undo_open: bool,
    pub(super) undo_ended: Option<UndoEnd>,
    /// A purge began (`Some(false)`) or finished (`Some(true)`): the quarantined files are
    /// (being) deleted and nothing can be undone.
    pub(super) purged: Option<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum UndoEnd {
    All,
    Partly(usize),
}

impl RunState {
    /// The run's state for `undo --list` (and the steps its last undo kept).
    pub(super) fn name(&self) -> (&'static str, usize) {
        match (self.purged, self.undo_open, self.undo_ended) {
            (Some(true), ..) => ("purged", 0),
            (Some(false), ..) => ("purge-incomplete", 0),
            (None, true, _) => ("undo-incomplete", 0),
            (None, false, Some(UndoEnd::All)) => ("undone", 0),
            (None, false, Some(UndoEnd::Partly(k))) => ("partly-undone", k),
            (None, false, None) if self.ended => ("complete", 0),
            (None, false, None) => ("incomplete", 0),
        }
    }
}

pub(super) fn state(records: &[Record]) -> RunState {
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
            Record::Leaves { i, id, .. } => {
                s.leaves.insert(*i, id.clone());
            }
            Record::Done { i } => {
                s.done.insert(*i);
                s.settled.insert(*i, Status::Applied);
            }
            Record::Skip {
                i,
                reason,
                eligible_at,
            } => {
                s.settled.insert(
                    *i,
                    Status::Skipped {
                        reason: reason.clone(),
                        eligible_at: *eligible_at,
                    },
                );
            }
            Record::Refuse { i, reason } => {
                s.settled.insert(
                    *i,
                    Status::Refused {
                        reason: reason.clone(),
                    },
                );
            }
            Record::Fail { i, error } => {
                s.settled.insert(
                    *i,
                    Status::Failed {
                        error: error.clone(),
                    },
                );
            }
            Record::End { .. } => s.ended = true,
            Record::UndoIntent { i } => {
                s.undo_started.insert(*i);
                s.undo_open = true;
            }
            Record::UndoKeep { .. } => s.undo_open = true,
            Record::UndoDone { i } => {
                s.undone_steps.insert(*i);
                s.undo_open = true;
            }
            Record::Undone => {
                s.undo_open = false;
                s.undo_ended = Some(UndoEnd::All);
            }
            Record::UndoPartial { kept } => {
                s.undo_open = false;
                s.undo_ended = Some(UndoEnd::Partly(*kept));
            }
            Record::Purge { .. } => s.purged = Some(false),
            Record::Purged => s.purged = Some(true),
            Record::Begin { .. } => {}
        }
    }
    s
}

/// The mutation points of an apply or undo, counted so that the crash-safety tests can SIGKILL
/// the process at the Nth (`REGFSCK_TEST_KILL_AT`).
pub(super) struct Points {
    mutations: usize,
    kill_at: Option<usize>,
}

impl Points {
    pub(super) fn from_env() -> Points {
        Points {
            mutations: 0,
            kill_at: std::env::var(KILL_ENV).ok().and_then(|v| v.parse().ok()),
        }
    }

    pub(super) fn hit(&mut self) {
        self.mutations += 1;
        if self.kill_at == Some(self.mutations) {
            // SAFETY: raising a signal on our own process.
            unsafe { libc::raise(libc::SIGKILL) };
        }
    }
}

fn runner<'a>(root: &'a Path, plan: &'a Plan, run_id: &str, existing: bool) -> Result<Runner<'a>> {
    let dir = run_dir(root, run_id)?;
    let journal = if existing {
        Some(Journal::open(&dir.join("journal.jsonl"))?)
    } else {
        None
    };
    Ok(Runner {
        root,
        plan,
        run_id: run_id.to_string(),
        dir,
        journal,
        pending: Vec::new(),
        points: Points::from_env(),
    })
}

/// Apply a plan as a new run. Takes the lock. A run (folder, journal) is created only when an
/// action is about to change something.
pub fn apply(root: &Path, plan: &Plan, opts: &ApplyOptions) -> Result<ApplyOutcome> {
    let _lock = Lock::acquire(root)?;
    let run_id = new_run_id();
    let mut r = runner(root, plan, &run_id, false)?;
    run_plan(&mut r, plan, &RunState::default(), opts)
}

fn load(root: &Path, run_id: &str) -> Result<(Plan, Vec<Record>)> {
    let dir = run_dir(root, run_id)?;
    let plan: Plan =
        serde_json::from_slice(&fs::read(dir.join("plan.json")).context("reading plan.json")?)
            .context("plan.json is damaged")?;
    // No journal yet: the run crashed between writing its plan and its first record.
    let records = match journal::read(&dir.join("journal.jsonl")) {
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        r => r.context("reading journal.jsonl")?,
    };
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

#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub id: String,
    /// Actions in the run's plan.
    pub actions: usize,
    #[serde(flatten)]
    pub counts: Counts,
    /// complete, incomplete, undone, partly-undone, undo-incomplete
    pub state: &'static str,
    /// Steps the last undo attempt left as they were (newer content in the store).
    pub kept: usize,
    /// The command that made the run (`repair` for runs from before cleanup existed).
    pub command: String,
    /// Bytes the run's quarantine holds now (0 once purged).
    pub bytes: u64,
    /// When the run began (unix seconds, from its id).
    pub started: i64,
}

impl RunInfo {
    /// What `undo --list` says of run `id` from its plan and journal (either medium).
    pub(super) fn of(id: String, plan: &Plan, records: &[Record], bytes: u64) -> RunInfo {
        let s = state(records);
        let (st, kept) = s.name();
        let statuses: Vec<Status> = s.settled.values().cloned().collect();
        RunInfo {
            started: started_at(&id),
            id,
            actions: plan.actions.len(),
            counts: count(&statuses),
            state: st,
            kept,
            command: plan.command.clone().unwrap_or_else(|| "repair".into()),
            bytes,
        }
    }
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
        let bytes = tree_bytes(&root.join(QUARANTINE_DIR).join(&id).join("files"));
        out.push(RunInfo::of(id, &plan, &records, bytes));
    }
    out
}

/// Finish a run interrupted by a crash, from its journal. A run that turns out to have changed
/// nothing (it crashed before its first change) is removed.
pub fn resume(root: &Path, run_id: &str, opts: &ApplyOptions) -> Result<ApplyOutcome> {
    let _lock = Lock::acquire(root)?;
    let (plan, records) = load(root, run_id)?;
    let s = state(&records);
    if s.ended || s.undo_open || s.undo_ended.is_some() || s.purged.is_some() {
        return Ok(ApplyOutcome {
            run_id: Some(run_id.to_string()),
            statuses: s.settled.values().cloned().collect(),
            applied_now: 0,
        });
    }
    let mut r = runner(root, &plan, run_id, true)?;
    let out = run_plan(&mut r, &plan, &s, opts)?;
    if s.intents.is_empty()
        && out.applied_now == 0
        && !out
            .statuses
            .iter()
            .any(|st| matches!(st, Status::Failed { .. }))
    {
        drop(r);
        let dir = run_dir(root, run_id)?;
        if !dir.join("files").exists() {
            let _ = fs::remove_file(dir.join("journal.jsonl"));
            let _ = fs::remove_file(dir.join("plan.json"));
            let _ = fs::remove_dir(&dir);
            return Ok(ApplyOutcome {
                run_id: None,
                ..out
            });
        }
    }
    Ok(out)
}

/// A step undo left as it was, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub action: usize,
    pub path: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct UndoOutcome {
    /// Steps reversed by this call.
    pub reversed: usize,
    /// Steps left as they are because the store no longer holds what the run left there.
    pub kept: Vec<Kept>,
    /// The run had been undone completely before.
    pub already_undone: bool,
    /// Steps no undo can reverse (an aborted multipart upload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub irreversible: Vec<Kept>,
}

pub(super) fn describe(id: &Option<FileId>) -> String {
    match id {
        None => "nothing".into(),
        Some(f) => format!("a {} of {} bytes", f.kind, f.size),
    }
}

impl Runner<'_> {
    /// Reverse step `i`, or say why it is kept. Only ever renames regfsck's quarantine copies
    /// back, removes files the journal proves are regfsck's own, and removes empty folders the
    /// step created.
    fn reverse(&mut self, i: usize, s: &RunState) -> Result<Option<String>> {
        let root = self.root;
        let action = &self.plan.actions[i];
        let (creates, displaces) = s.intents[&i].clone();
        let left = s.leaves.get(&i);
        let ours = |p: &Path| -> Result<bool> {
            Ok(match (left, file_id(p)?) {
                (Some(l), Some(now)) => l.same(&now),
                _ => false,
            })
        };
        // A quarantined entry goes back only where its folder still exists: a folder deleted
        // after the run (a repository or tag removed through the API) is not brought back.
        let parent_gone = |p: &Path| p.parent().is_some_and(|d| !exists(d));
        let kept = match &action.kind {
            ActionKind::Quarantine { path } => {
                let (src, q) = (checked(root, path)?, self.qpath(path));
                match (exists(&q), exists(&src)) {
                    (true, false) if parent_gone(&src) => Some(format!(
                        "its folder was removed after the run; the quarantined copy stays at {}",
                        q.display()
                    )),
                    (true, false) => {
                        rename(&q, &src)?;
                        None
                    }
                    (true, true) => Some(format!(
                        "written again after the run: kept the new one (the quarantined copy stays at {})",
                        q.display()
                    )),
                    (false, true) if !s.done.contains(&i) => None,
                    (false, _) => Some(format!(
                        "the quarantined copy {} is missing",
                        q.display()
                    )),
                }
            }
            ActionKind::WriteLink { path, .. } => {
                let p = checked(root, path)?;
                let q = self.qpath(path);
                let tmp = staged(&p);
                let tmp_ours = ours(&tmp)?;
                if exists(&tmp) {
                    fs::remove_file(&tmp)?;
                }
                let now = file_id(&p)?;
                // An earlier undo attempt that stopped inside this step may have removed the link
                // already (before putting a folder back in its place).
                let resumed = s.undo_started.contains(&i);
                if left.is_some() && now.is_some() && ours(&p)? {
                    // The link regfsck wrote: swap the original back in (one atomic rename; a
                    // folder cannot replace a file, so then the file goes first), or remove it
                    // when there was none.
                    if displaces {
                        if !exists(&q) {
                            return Ok(Some(format!(
                                "the displaced original {} is missing",
                                q.display()
                            )));
                        }
                        if fs::symlink_metadata(&q).is_ok_and(|m| m.is_dir()) {
                            fs::remove_file(&p)?;
                            self.point();
                        }
                        rename(&q, &p)?;
                    } else {
                        fs::remove_file(&p)?;
                        if let Some(d) = p.parent() {
                            fsync_dir(d);
                        }
                    }
                    None
                } else if now.is_none() {
                    // Nothing there. Either the step stopped between moving the original aside
                    // and putting its link in place (no link written, or only staged), or the
                    // link was removed after the run (then the original is not brought back).
                    if left.is_none() || tmp_ours || resumed {
                        if displaces && exists(&q) && !parent_gone(&p) {
                            rename(&q, &p)?;
                        }
                        None
                    } else if displaces {
                        Some(format!(
                            "removed after the run: not brought back (the original stays at {})",
                            q.display()
                        ))
                    } else {
                        None
                    }
                } else if left.is_none() && !(displaces && exists(&q)) {
                    // The step never replaced what is there.
                    None
                } else {
                    Some(format!(
                        "changed after the run (now {}): kept it{}",
                        describe(&now),
                        if displaces && exists(&q) {
                            format!(" (the original stays at {})", q.display())
                        } else {
                            String::new()
                        }
                    ))
                }
            }
            ActionKind::MoveBlob { from, to } => {
                let (f, t) = (checked(root, from)?, checked(root, to)?);
                match (exists(&t), exists(&f)) {
                    (true, false) if ours(&t)? && !parent_gone(&f) => {
                        rename(&t, &f)?;
                        None
                    }
                    (true, false) if ours(&t)? => Some(format!(
                        "the folder of {from} was removed after the run; kept the blob at {to}"
                    )),
                    (false, true) => None,
                    (true, _) => Some(format!(
                        "{to} changed after the run (now {}): kept it",
                        describe(&file_id(&t)?)
                    )),
                    (false, false) => Some(format!("{to} was removed after the run")),
                }
            }
            ActionKind::CreateDir { .. } | ActionKind::AbortMultipart { .. } => None,
        };
        if kept.is_some() {
            return Ok(kept);
        }
        // Folders the step created, deepest first, only while empty.
        for d in creates.iter().rev() {
            let p = root.join(V2).join(d);
            match fs::remove_dir(&p) {
                Ok(()) => {
                    if let Some(parent) = p.parent() {
                        fsync_dir(parent);
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => {
                    return Ok(Some(format!(
                    "folder {d}, created by the run, now holds content written after it: kept it"
                )))
                }
            }
        }
        Ok(None)
    }
}

/// Restore the store as it was before the run, byte for byte, wherever it still holds what the
/// run left; everything else is kept and listed.
pub fn undo(root: &Path, run_id: &str) -> Result<UndoOutcome> {
    let _lock = Lock::acquire(root)?;
    let (plan, records) = load(root, run_id)?;
    let s = state(&records);
    let mut out = UndoOutcome::default();
    if s.purged.is_some() {
        bail!(
            "run {run_id} was purged: its quarantined files were deleted, so nothing of it can be undone"
        );
    }
    if s.undo_ended == Some(UndoEnd::All) && !s.undo_open {
        out.already_undone = true;
        return Ok(out);
    }
    let mut r = runner(root, &plan, run_id, true)?;
    undo_steps(&mut r, &plan, &s, &mut out)?;
    Ok(out)
}

/// Total size of the regular files below `p` (never following symbolic links); 0 when absent.
fn tree_bytes(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    total
}

/// When a run began, from its id (`YYYYMMDDTHHMMSSZ-…`); 0 when the id does not parse.
pub fn started_at(run_id: &str) -> i64 {
    if !valid_run_id(run_id) {
        return 0;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &run_id[0..4],
        &run_id[4..6],
        &run_id[6..8],
        &run_id[9..11],
        &run_id[11..13],
        &run_id[13..15]
    );
    crate::model::timefmt::parse_rfc3339(&text).unwrap_or(0)
}

/// What a purge did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PurgeOutcome {
    /// Bytes of quarantined files deleted now.
    pub bytes: u64,
    /// The run had been purged before (an interrupted purge is finished instead).
    pub already_purged: bool,
}

/// Delete a run's quarantined files for good, keeping its plan and journal (so `undo --list`
/// stays truthful: the run is "purged"). Only a run that is settled may be purged: complete,
/// undone or partly undone (never one whose apply or undo was interrupted). The journal records
/// the purge before anything is deleted, so an interrupted purge is finished by the next one and
/// undo refuses from the first byte on.
pub fn purge(root: &Path, run_id: &str) -> Result<PurgeOutcome> {
    let _lock = Lock::acquire(root)?;
    let (plan, records) = load(root, run_id)?;
    let s = state(&records);
    if s.purged == Some(true) {
        return Ok(PurgeOutcome {
            bytes: 0,
            already_purged: true,
        });
    }
    if s.purged.is_none() && (!s.ended || s.undo_open) {
        bail!(
            "run {run_id} is interrupted (apply or undo did not finish): finish it first (re-run the command with --apply, or regfsck undo --run {run_id})"
        );
    }
    let files = run_dir(root, run_id)?.join("files");
    let bytes = tree_bytes(&files);
    let mut r = runner(root, &plan, run_id, true)?;
    if s.purged.is_none() {
        r.record(&Record::Purge { bytes })?;
    }
    match fs::remove_dir_all(&files) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => bail!("cannot delete {}: {e}", files.display()),
    }
    r.point();
    if let Some(parent) = files.parent() {
        fsync_dir(parent);
    }
    r.record(&Record::Purged)?;
    Ok(PurgeOutcome {
        bytes,
        already_purged: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarantine(path: &str, evidence: &[&str]) -> Action {
        let mut a = Action::new(
            ActionKind::Quarantine { path: path.into() },
            crate::model::finding::Code::PathTempResidue,
            "test",
            false,
        );
        a.evidence = evidence.iter().map(|e| e.to_string()).collect();
        a
    }

    /// The applier's own guard, whatever the planner did: an action whose changed or evidence
    /// path touches an unreadable one (itself, an ancestor, something inside) is refused and
    /// changes nothing; the others run; the counts say so. A plan whose actions all end that way
    /// leaves no run.
    #[test]
    fn actions_touching_unreadable_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join(V2);
        for f in [
            "repositories/a/_x",
            "repositories/b/_y",
            "repositories/c/_z/inner",
        ] {
            fs::create_dir_all(v2.join(f).parent().unwrap()).unwrap();
            fs::write(v2.join(f), b"x").unwrap();
        }
        let plan = Plan {
            schema: super::super::PLAN_SCHEMA.into(),
            command: None,
            actions: vec![
                quarantine("repositories/a/_x", &["blobs/sha256/ab/abcd/data"]),
                quarantine("repositories/b/_y", &[]),
                quarantine("repositories/c/_z", &[]),
            ],
        };
        let opts = |unreadable: &[&str]| ApplyOptions {
            grace: 0,
            now: 0,
            unreadable: unreadable.iter().map(|u| u.to_string()).collect(),
        };
        // Everything refused: no run, nothing moved.
        let all = opts(&["blobs/sha256/ab", "repositories"]);
        let out = apply(dir.path(), &plan, &all).unwrap();
        assert_eq!(out.run_id, None);
        assert_eq!(out.counts().refused, 3, "{:?}", out.statuses);
        assert!(runs(dir.path()).is_empty());
        // An ancestor of the evidence, and something inside a moved folder.
        let some = opts(&["blobs/sha256/ab", "repositories/c/_z/inner"]);
        let out = apply(dir.path(), &plan, &some).unwrap();
        assert!(matches!(&out.statuses[0], Status::Refused { reason }
            if reason == "it rests on blobs/sha256/ab/abcd/data, and blobs/sha256/ab could not be read"));
        assert_eq!(out.statuses[1], Status::Applied);
        assert!(matches!(&out.statuses[2], Status::Refused { reason }
            if reason == "it changes repositories/c/_z, and repositories/c/_z/inner could not be read"));
        assert!(
            v2.join("repositories/a/_x").exists() && v2.join("repositories/c/_z/inner").exists()
        );
        assert!(!v2.join("repositories/b/_y").exists());
        let listed = runs(dir.path());
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].counts.applied,
                listed[0].counts.refused,
                listed[0].state
            ),
            (1, 2, "complete")
        );
    }

    #[test]
    fn touching_paths() {
        assert!(touches("blobs/sha256/ab", "blobs/sha256/ab/abc/data"));
        assert!(touches("blobs/sha256/ab/abc/data", "blobs/sha256/ab"));
        assert!(touches("a/b", "a/b"));
        assert!(!touches("blobs/sha256/ab", "blobs/sha256/abc"));
        assert!(!touches("repositories/a", "repositories/ab/x"));
    }

    #[test]
    fn newest_mtime_sees_deep_files_and_folders() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("up");
        fs::create_dir_all(top.join("hashstates/sha256")).unwrap();
        fs::write(top.join("data"), b"x").unwrap();
        fs::write(top.join("hashstates/sha256/0"), b"x").unwrap();
        let at = |p: &Path, t: u64| {
            let f = File::open(p).unwrap();
            f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(t))
                .unwrap();
        };
        for p in [
            top.clone(),
            top.join("hashstates"),
            top.join("hashstates/sha256"),
            top.join("data"),
        ] {
            at(&p, 1000);
        }
        at(&top.join("hashstates/sha256/0"), 5000);
        assert_eq!(newest_mtime(&top).unwrap(), Some(5000));
        at(&top.join("hashstates/sha256/0"), 1000);
        at(&top.join("hashstates/sha256"), 7000);
        assert_eq!(newest_mtime(&top).unwrap(), Some(7000));
        assert_eq!(newest_mtime(&dir.path().join("none")).unwrap(), None);
    }
}

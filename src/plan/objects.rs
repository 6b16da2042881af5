//! The applier on object storage: the same plans, journal records, run states and promises as
//! the filesystem applier (`apply`), through the operations an object store has (`store::Objects`:
//! whole-object PUT, server-side copy, delete, listings) instead of renames, inodes and fsync.
//!
//! Layout, in the bucket beside `docker/` (so that undo works from any machine):
//! `regfsck-quarantine/<run>/plan.json`, `regfsck-quarantine/<run>/journal/<seq>.json` (one
//! object per record, zero-padded so a listing gives their order; a PUT is atomic, so there is
//! no torn record), `regfsck-quarantine/<run>/files/docker/registry/v2/<path>` (the quarantine),
//! and `regfsck-quarantine/lock` while an apply or undo runs.
//!
//! Steps (each announced by an intent record before it runs, and idempotent with respect to it,
//! so re-executing the last announced step after a crash at any point converges):
//! - quarantine: for every key at or below the path: server-side copy into the quarantine, then
//!   delete the original (a crash between the two leaves both: the re-run copies again and
//!   deletes);
//! - write-link: copy an existing link into the quarantine (it is overwritten, never deleted),
//!   PUT the new content, record what it left (ETag, size, LastModified);
//! - move-blob: copy to the canonical key, record what it left, delete the source;
//! - create-dir: nothing (an object store has no folders; a key creates its prefix);
//! - abort-multipart: AbortMultipartUpload. The one step undo cannot reverse: planned only with
//!   `--lossy`, and undo lists it as irreversible.
//!
//! Undo reverses each step, newest first, only where the bucket still holds exactly what the run
//! left (ETag, size and LastModified of the object it wrote; nothing where it removed one): a key
//! written after the run is kept and listed, and the run stays "partly-undone". An object holding
//! the same bytes as its quarantined copy is one an interrupted undo already restored.

use super::apply::{
    self, describe, run_plan, undo_steps, valid_run_id, ApplyOptions, ApplyOutcome, Medium, Points,
    RunInfo, RunState, Status, StepError, UndoEnd, UndoOutcome,
};
use super::journal::{FileId, Record};
use super::{Action, ActionKind, Plan};
use crate::model::layout::QUARANTINE_DIR;
use crate::store::{Listed, Objects};
use anyhow::{bail, Context, Result};

const V2: &str = "docker/registry/v2";
/// A link holds `sha256:<64 hex>`; anything much larger is not one.
const LINK_CAP: u64 = 4096;

fn v2(rel: &str) -> String {
    format!("{V2}/{rel}")
}

fn run_prefix(run_id: &str) -> String {
    format!("{QUARANTINE_DIR}/{run_id}/")
}

fn lock_key() -> String {
    format!("{QUARANTINE_DIR}/lock")
}

/// What an object is, for the journal: kind `object`, no inode, the ETag instead.
fn id_of(l: &Listed) -> FileId {
    FileId {
        kind: "object".into(),
        size: l.size,
        ino: 0,
        mtime: l.mtime,
        mtime_nsec: 0,
        sha256: None,
        etag: l.etag.clone(),
    }
}

/// Whether two objects hold the same bytes: equal size and ETag, or, when only the ETags differ,
/// equal content read through. (A server-side copy of a multipart object gets a plain MD5 ETag, not
/// the original's `-N` one, so ETags alone would call a blob and its quarantined copy different.)
fn same_bytes(o: &dyn Objects, a: &Listed, b: &Listed) -> std::io::Result<bool> {
    if a.size != b.size {
        return Ok(false);
    }
    if a.etag.is_some() && a.etag == b.etag {
        return Ok(true);
    }
    let (mut x, mut y) = (o.open(&a.rel)?, o.open(&b.rel)?);
    let (mut bx, mut by) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_full(&mut x, &mut bx)?;
        let m = read_full(&mut y, &mut by)?;
        if n != m || bx[..n] != by[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Fill `buf` as far as the stream allows; the count read (short only at the end).
fn read_full(r: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A plan path is relative, below `blobs/` or `repositories/`, with no empty, `.` or `..` part.
fn checked(rel: &str) -> Result<()> {
    let parts: Vec<&str> = rel.split('/').collect();
    let ok = matches!(parts.first(), Some(&"blobs") | Some(&"repositories"))
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\0'));
    if !ok {
        bail!("unsafe path {rel:?}");
    }
    Ok(())
}

/// The object at `key` and every object below `key/` (a "folder" on object storage).
fn tree(o: &dyn Objects, key: &str) -> std::io::Result<Vec<Listed>> {
    let below = format!("{key}/");
    Ok(o.list_keys(key)?
        .into_iter()
        .filter(|l| l.rel == key || l.rel.starts_with(&below))
        .collect())
}

/// Whether the object at `key` holds exactly `content`.
fn holds(o: &dyn Objects, key: &str, content: &[u8]) -> std::io::Result<bool> {
    match o.get(key, LINK_CAP) {
        Ok(b) => Ok(b == content),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The repository a path below `repositories/` belongs to (`repositories/<name>/`), if any.
fn repo_prefix(rel: &str) -> Option<String> {
    let rest = rel.strip_prefix("repositories/")?;
    let name: Vec<&str> = rest
        .split('/')
        .take_while(|c| !c.starts_with('_'))
        .collect();
    (!name.is_empty()).then(|| format!("{V2}/repositories/{}/", name.join("/")))
}

/// An exclusive lock on the store's runs: an object holding who took it. Object storage has no
/// advisory locks: a lock left by a regfsck that died on this host is taken over, any other is
/// respected until someone deletes it (the message says which object).
pub struct Lock<'a> {
    o: &'a dyn Objects,
    token: String,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn alive(pid: i64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && pid <= i32::MAX as i64 && {
        let rc = unsafe { libc::kill(pid as i32, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

impl<'a> Lock<'a> {
    pub fn acquire(o: &'a dyn Objects) -> Result<Lock<'a>> {
        let key = lock_key();
        let host = hostname();
        if let Ok(b) = o.get(&key, LINK_CAP) {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            let same_host = v["host"].as_str() == Some(host.as_str());
            let pid = v["pid"].as_i64().unwrap_or(0);
            if !same_host || alive(pid) {
                bail!(
                    "another regfsck repair or undo holds the lock {} (host {}, pid {pid}); if none runs any more, delete that object",
                    o.url(&key),
                    v["host"].as_str().unwrap_or("?")
                );
            }
        }
        let token = apply::new_run_id();
        let body = serde_json::json!({"host": host, "pid": std::process::id(), "token": token});
        o.put(&key, body.to_string().as_bytes())
            .with_context(|| format!("cannot write the lock {}", o.url(&key)))?;
        // Two takers at once: the last PUT wins, the other sees it and stops.
        let b = o.get(&key, LINK_CAP)?;
        if !String::from_utf8_lossy(&b).contains(&token) {
            bail!("another regfsck took the lock {} just now", o.url(&key));
        }
        Ok(Lock { o, token })
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        let key = lock_key();
        if self
            .o
            .get(&key, LINK_CAP)
            .is_ok_and(|b| String::from_utf8_lossy(&b).contains(&self.token))
        {
            let _ = self.o.remove(&key);
        }
    }
}

/// Why action `a` must not run now, if it must not. Reads the bucket, changes nothing.
fn precondition(o: &dyn Objects, a: &Action, opts: &ApplyOptions) -> Result<Option<Status>> {
    let refuse = |reason: String| Ok(Some(Status::Refused { reason }));
    for t in a.touched() {
        if let Err(e) = checked(t) {
            return refuse(format!("{e}"));
        }
    }
    if let Some(s) = apply::unreadable_refusal(a, opts) {
        return Ok(Some(s));
    }
    let own = a.kind.paths();
    for t in a.touched() {
        if let Err(e) = tree(o, &v2(t)) {
            let what = if own.contains(&t) {
                "changes"
            } else {
                "rests on"
            };
            return refuse(format!("it {what} {t}, which cannot be read now: {e}"));
        }
    }
    let skip = |reason: &str| {
        Ok(Some(Status::Skipped {
            reason: reason.into(),
            eligible_at: None,
        }))
    };
    let newest = |keys: &[Listed]| keys.iter().map(|l| l.mtime).max();
    let moved = match &a.kind {
        ActionKind::Quarantine { path } => {
            let keys = tree(o, &v2(path))?;
            if keys.is_empty() {
                return skip("already gone");
            }
            keys
        }
        ActionKind::WriteLink { path, digest } => {
            if holds(o, &v2(path), digest.to_string().as_bytes())? {
                return skip("already correct");
            }
            tree(o, &v2(path))?
        }
        ActionKind::CreateDir { .. } => {
            return skip("object storage has no folders: nothing to create");
        }
        ActionKind::MoveBlob { from, to } => {
            let keys = tree(o, &v2(from))?;
            if keys.is_empty() {
                return skip("already gone");
            }
            if o.stat(&v2(to))?.is_some() {
                return skip("destination exists");
            }
            keys
        }
        ActionKind::AbortMultipart { path, upload_id } => {
            let Some((_, initiated)) = o
                .multipart(&v2(path))?
                .into_iter()
                .find(|(id, _)| id == upload_id)
            else {
                return skip("already gone");
            };
            vec![Listed {
                rel: v2(path),
                folder: false,
                size: 0,
                mtime: initiated,
                etag: None,
            }]
        }
    };
    if let Some(m) = newest(&moved) {
        if opts.grace > 0 && m > opts.now - opts.grace {
            return Ok(Some(Status::Skipped {
                reason: format!(
                    "modified {} ago, within the grace window",
                    crate::model::duration::format((opts.now - m).max(0) as u64)
                ),
                eligible_at: Some(m + opts.grace),
            }));
        }
    }
    Ok(None)
}

/// What would happen to each action if the plan were applied now (`None`: it would run).
pub fn assess(o: &dyn Objects, plan: &Plan, opts: &ApplyOptions) -> Vec<Option<Status>> {
    plan.actions
        .iter()
        .map(|a| {
            precondition(o, a, opts).unwrap_or_else(|e| {
                Some(Status::Refused {
                    reason: format!("cannot read the bucket: {e:#}"),
                })
            })
        })
        .collect()
}

struct Runner<'a> {
    o: &'a dyn Objects,
    plan: &'a Plan,
    run_id: String,
    /// The run exists (plan written, `begin` recorded); until then records wait in `pending`.
    begun: bool,
    /// The number of the next journal record.
    seq: usize,
    pending: Vec<Record>,
    points: Points,
}

impl Runner<'_> {
    fn point(&mut self) {
        self.points.hit();
    }

    fn begin(&mut self) -> Result<()> {
        if self.begun {
            return Ok(());
        }
        let plan = serde_json::to_string_pretty(self.plan)?;
        self.o.put(
            &format!("{}plan.json", run_prefix(&self.run_id)),
            plan.as_bytes(),
        )?;
        self.begun = true;
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
        if !self.begun {
            self.pending.push(r.clone());
            return Ok(());
        }
        let key = format!("{}journal/{:08}.json", run_prefix(&self.run_id), self.seq);
        self.o
            .put(&key, serde_json::to_string(r)?.as_bytes())
            .with_context(|| format!("cannot write the journal record {}", self.o.url(&key)))?;
        self.seq += 1;
        self.point();
        Ok(())
    }

    /// The quarantine key of root-relative `key`.
    fn qkey(&self, key: &str) -> String {
        format!("{}files/{key}", run_prefix(&self.run_id))
    }

    /// Copy an object as listed (its size decides how, on S3).
    fn copy(&mut self, from: &Listed, to: &str) -> std::io::Result<()> {
        self.o.copy_listed(from, to)?;
        self.point();
        Ok(())
    }

    fn remove(&mut self, key: &str) -> std::io::Result<()> {
        self.o.remove(key)?;
        self.point();
        Ok(())
    }

    fn leaves(&mut self, i: usize, path: &str, key: &str) -> Result<(), StepError> {
        let l = self
            .o
            .stat(key)?
            .ok_or_else(|| StepError::Failed(format!("{key} vanished")))?;
        self.record(&Record::Leaves {
            i,
            path: path.to_string(),
            id: id_of(&l),
        })
        .map_err(StepError::Fatal)
    }

    /// Execute (or re-execute after a crash) one announced step.
    fn execute(
        &mut self,
        i: usize,
        kind: &ActionKind,
        displaces: bool,
        left: Option<&FileId>,
    ) -> Result<(), StepError> {
        match kind {
            ActionKind::Quarantine { path } => {
                for l in tree(self.o, &v2(path))? {
                    let q = self.qkey(&l.rel);
                    self.copy(&l, &q)?;
                    self.remove(&l.rel)?;
                }
            }
            ActionKind::WriteLink { path, digest } => {
                let p = v2(path);
                let q = self.qkey(&p);
                let content = digest.to_string();
                if holds(self.o, &p, content.as_bytes())?
                    && (!displaces || self.o.stat(&q)?.is_some())
                {
                    return Ok(());
                }
                let now = self.o.stat(&p)?;
                if let Some(n) = now.as_ref().filter(|_| displaces) {
                    if self.o.stat(&q)?.is_none() {
                        self.copy(n, &q)?;
                    }
                }
                if !displaces && now.is_some() {
                    return Err(StepError::Failed(format!(
                        "{path} appeared after the step was announced; left as it is"
                    )));
                }
                self.o.put(&p, content.as_bytes())?;
                self.point();
                self.leaves(i, path, &p)?;
            }
            ActionKind::CreateDir { .. } => {}
            ActionKind::MoveBlob { from, to } => {
                let (f, t) = (v2(from), v2(to));
                let Some(src) = self.o.stat(&f)? else {
                    return Ok(());
                };
                match self.o.stat(&t)? {
                    None => {
                        self.copy(&src, &t)?;
                        self.leaves(i, to, &t)?;
                    }
                    Some(dst) if left.is_some_and(|l| l.same(&id_of(&dst))) => {}
                    Some(dst) if same_bytes(self.o, &src, &dst)? => self.leaves(i, to, &t)?,
                    Some(_) => {
                        return Err(StepError::Failed(format!(
                            "{to} appeared with other content after the step was announced; left both as they are"
                        )))
                    }
                }
                self.remove(&f)?;
            }
            ActionKind::AbortMultipart { path, upload_id } => {
                match self.o.abort_multipart(&v2(path), upload_id) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    r => r?,
                }
                self.point();
            }
        }
        Ok(())
    }
}

impl Medium for Runner<'_> {
    fn point(&mut self) {
        Runner::point(self)
    }

    fn begun(&self) -> bool {
        self.begun
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
        precondition(self.o, a, opts)
    }

    fn intent_for(&self, kind: &ActionKind) -> Result<(Vec<String>, bool)> {
        // No folders to create; a link write displaces the object at its key.
        let displaces = match kind {
            ActionKind::WriteLink { path, .. } => self.o.stat(&v2(path))?.is_some(),
            _ => false,
        };
        Ok((Vec::new(), displaces))
    }

    fn execute(
        &mut self,
        i: usize,
        kind: &ActionKind,
        displaces: bool,
        left: Option<&FileId>,
    ) -> Result<(), StepError> {
        Runner::execute(self, i, kind, displaces, left)
    }

    fn reverse(&mut self, i: usize, s: &RunState) -> Result<Option<String>> {
        Runner::reverse(self, i, s)
    }
}

fn runner<'a>(
    o: &'a dyn Objects,
    plan: &'a Plan,
    run_id: &str,
    seq: Option<usize>,
) -> Result<Runner<'a>> {
    if !valid_run_id(run_id) {
        bail!("{run_id:?} is not a regfsck run id (see `regfsck undo --list`)");
    }
    Ok(Runner {
        o,
        plan,
        run_id: run_id.to_string(),
        begun: seq.is_some(),
        seq: seq.unwrap_or(0),
        pending: Vec::new(),
        points: Points::from_env(),
    })
}

/// Apply a plan as a new run. Takes the lock. A run (plan, journal) is written only when an
/// action is about to change something.
pub fn apply(o: &dyn Objects, plan: &Plan, opts: &ApplyOptions) -> Result<ApplyOutcome> {
    let _lock = Lock::acquire(o)?;
    let run_id = apply::new_run_id();
    let mut r = runner(o, plan, &run_id, None)?;
    run_plan(&mut r, plan, &RunState::default(), opts)
}

/// Requests in flight while reading runs: each is a small GET or listing whose time is the
/// service's latency, and they add up: every apply keeps a run (a weekly job has hundreds after a
/// few years), with two journal records per action, and every `repair --apply` looks for
/// interrupted runs. One at a time, `undo --list` took a second per ten runs on a local server.
const READS_IN_FLIGHT: usize = 16;

/// A run's plan, its journal records in order, and the number the next record gets.
fn load(o: &dyn Objects, run_id: &str) -> Result<(Plan, Vec<Record>, usize)> {
    load_runs(o, &[run_id.to_string()])
        .pop()
        .expect("one result per run")
}

/// A run's plan and its journal's keys in order, with their record numbers.
fn head(o: &dyn Objects, run_id: &str) -> Result<(Plan, Vec<(usize, String)>)> {
    if !valid_run_id(run_id) {
        bail!("{run_id:?} is not a regfsck run id (see `regfsck undo --list`)");
    }
    let prefix = run_prefix(run_id);
    let plan: Plan = serde_json::from_slice(
        &o.get(&format!("{prefix}plan.json"), 1 << 30)
            .context("reading plan.json")?,
    )
    .context("plan.json is damaged")?;
    let mut keys: Vec<Listed> = o
        .list_keys(&format!("{prefix}journal/"))
        .context("listing the journal")?;
    keys.sort_by(|a, b| a.rel.cmp(&b.rel));
    let numbered = keys
        .into_iter()
        .filter_map(|k| {
            let n: usize = k
                .rel
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|n| n.parse().ok())?;
            Some((n, k.rel))
        })
        .collect();
    Ok((plan, numbered))
}

/// What `load` gives, for several runs (one result per id, in order), read
/// `READS_IN_FLIGHT` requests at a time: first every run's plan and journal listing, then every
/// record of all of them. The records of a run are taken in order up to the first one that does
/// not parse (a torn write), as one at a time.
fn load_runs(o: &dyn Objects, ids: &[String]) -> Vec<Result<(Plan, Vec<Record>, usize)>> {
    use crate::store::pool;
    let mut heads = pool::run(
        READS_IN_FLIGHT,
        ids.iter().enumerate().collect(),
        |(i, id): (usize, &String), _| (i, head(o, id)),
    );
    heads.sort_by_key(|h| h.0);
    let wants: Vec<(usize, usize, &str)> = heads
        .iter()
        .filter_map(|(i, h)| h.as_ref().ok().map(|(_, keys)| (*i, keys)))
        .flat_map(|(i, keys)| {
            keys.iter()
                .enumerate()
                .map(move |(j, (_, k))| (i, j, k.as_str()))
        })
        .collect();
    let mut got = pool::run(READS_IN_FLIGHT, wants, |(i, j, key), _| {
        (i, j, o.get(key, 1 << 20))
    });
    got.sort_by_key(|g| (g.0, g.1));
    let mut got = got.into_iter().peekable();
    heads
        .into_iter()
        .map(|(i, h)| {
            let (plan, keys) = h?;
            let mut bodies = Vec::with_capacity(keys.len());
            while let Some((_, _, b)) = got.next_if(|g| g.0 == i) {
                bodies.push(b);
            }
            let mut records = Vec::new();
            let mut next = 0;
            for ((n, _), b) in keys.iter().zip(bodies) {
                let b = b.context("reading the journal")?;
                match serde_json::from_slice(&b) {
                    Ok(r) => records.push(r),
                    Err(_) => break,
                }
                next = n + 1;
            }
            Ok((plan, records, next))
        })
        .collect()
}

/// Every run in the bucket, oldest first (a run whose plan or journal cannot be read is left
/// out, as the filesystem's list does). Read `READS_IN_FLIGHT` runs at a time, so that memory
/// holds the journals of that many runs, not of every run.
pub fn runs(o: &dyn Objects) -> Result<Vec<RunInfo>> {
    let mut ids: Vec<String> = o
        .list_folders(&format!("{QUARANTINE_DIR}/"))
        .context("listing the runs")?
        .into_iter()
        .filter(|n| valid_run_id(n))
        .collect();
    ids.sort();
    let mut out = Vec::new();
    for chunk in ids.chunks(READS_IN_FLIGHT) {
        let loaded = load_runs(o, chunk);
        let mut bytes = crate::store::pool::run(
            READS_IN_FLIGHT,
            chunk.iter().enumerate().collect(),
            |(i, id): (usize, &String), _| {
                let b: u64 = o
                    .list_keys(&format!("{}files/", run_prefix(id)))
                    .map(|ks| ks.iter().map(|k| k.size).sum())
                    .unwrap_or(0);
                (i, b)
            },
        );
        bytes.sort_by_key(|b| b.0);
        for ((id, l), (_, bytes)) in chunk.iter().zip(loaded).zip(bytes) {
            if let Ok((plan, records, _)) = l {
                out.push(RunInfo::of(id.clone(), &plan, &records, bytes));
            }
        }
    }
    Ok(out)
}

/// Runs whose apply was interrupted (no end record and no undo), oldest first.
pub fn incomplete_runs(o: &dyn Objects) -> Result<Vec<String>> {
    Ok(runs(o)?
        .into_iter()
        .filter(|r| r.state == "incomplete")
        .map(|r| r.id)
        .collect())
}

/// Finish a run interrupted by a crash, from its journal. A run that turns out to have changed
/// nothing (it crashed before its first change) is removed.
pub fn resume(o: &dyn Objects, run_id: &str, opts: &ApplyOptions) -> Result<ApplyOutcome> {
    let _lock = Lock::acquire(o)?;
    let (plan, records, seq) = load(o, run_id)?;
    let s = apply::state(&records);
    if s.ended || s.undo_open || s.undo_ended.is_some() || s.purged.is_some() {
        return Ok(ApplyOutcome {
            run_id: Some(run_id.to_string()),
            statuses: s.settled.values().cloned().collect(),
            applied_now: 0,
        });
    }
    let mut r = runner(o, &plan, run_id, Some(seq))?;
    let out = run_plan(&mut r, &plan, &s, opts)?;
    let failed = out
        .statuses
        .iter()
        .any(|st| matches!(st, Status::Failed { .. }));
    if s.intents.is_empty() && out.applied_now == 0 && !failed {
        let prefix = run_prefix(run_id);
        if o.list_keys(&format!("{prefix}files/"))?.is_empty() {
            for k in o.list_keys(&prefix)? {
                o.remove(&k.rel)?;
            }
            return Ok(ApplyOutcome {
                run_id: None,
                ..out
            });
        }
    }
    Ok(out)
}

fn describe_obj(l: &Option<Listed>) -> String {
    describe(&l.as_ref().map(id_of))
}

impl Runner<'_> {
    /// Reverse step `i`, or say why it is kept. Only ever copies regfsck's quarantined copies
    /// back where nothing newer is, and deletes objects the journal proves are regfsck's own.
    fn reverse(&mut self, i: usize, s: &RunState) -> Result<Option<String>> {
        let o = self.o;
        let action = &self.plan.actions[i];
        let displaces = s.intents[&i].1;
        let left = s.leaves.get(&i);
        // A repository deleted after the run (through the API, or by its owner) is not brought
        // back piecemeal: on object storage its "folder" exists only while a key is in it.
        // Not when the run itself emptied the prefix: a path that is the whole repository (or
        // a folder above it: `rm REPO`), or a repository other parts of which this run still
        // holds in its quarantine (`rm REPO` quarantines each `_` folder; undo restores the
        // newest first, when the prefix is empty by the run's own doing).
        let files = format!("{}files/", run_prefix(&self.run_id));
        let repo_gone = |rel: &str| -> Result<bool> {
            let Some(p) = repo_prefix(rel) else {
                return Ok(false);
            };
            if !rel.split('/').any(|c| c.starts_with('_')) || !o.list_keys(&p)?.is_empty() {
                return Ok(false);
            }
            let own = format!("{files}{}", v2(rel));
            let own_below = format!("{own}/");
            Ok(!o
                .list_keys(&format!("{files}{p}"))?
                .iter()
                .any(|k| k.rel != own && !k.rel.starts_with(&own_below)))
        };
        Ok(match &action.kind {
            ActionKind::Quarantine { path } => {
                let p = v2(path);
                let q = self.qkey(&p);
                let copies = tree(o, &q)?;
                if copies.is_empty() {
                    return Ok(if !s.done.contains(&i) || !tree(o, &p)?.is_empty() {
                        None
                    } else {
                        Some(format!("the quarantined copy {} is missing", o.url(&q)))
                    });
                }
                if repo_gone(path)? {
                    return Ok(Some(format!(
                        "its repository was deleted after the run; the quarantined copy stays at {}",
                        o.url(&q)
                    )));
                }
                let mut kept = Vec::new();
                for c in copies {
                    let orig = c.rel[q.len() - p.len()..].to_string();
                    match o.stat(&orig)? {
                        None => {
                            self.copy(&c, &orig)?;
                            self.remove(&c.rel)?;
                        }
                        // Restored by an undo that stopped before deleting the copy.
                        Some(now) if same_bytes(o, &now, &c)? => self.remove(&c.rel)?,
                        Some(_) => kept.push(orig),
                    }
                }
                (!kept.is_empty()).then(|| {
                    format!(
                        "written again after the run: kept the new {} (the quarantined copies stay below {})",
                        kept.join(", "),
                        o.url(&q)
                    )
                })
            }
            ActionKind::WriteLink { path, digest } => {
                let p = v2(path);
                let q = self.qkey(&p);
                let (now, copy) = (o.stat(&p)?, o.stat(&q)?);
                let ours = match (&now, left) {
                    (Some(n), Some(l)) => l.same(&id_of(n)),
                    // Stopped between the PUT and its record: the content tells.
                    (Some(_), None) => holds(o, &p, digest.to_string().as_bytes())?,
                    (None, _) => false,
                };
                match (&now, &copy) {
                    (Some(n), Some(c)) if displaces && same_bytes(o, n, c)? => {
                        self.remove(&q)?;
                        None
                    }
                    (Some(_), _) if ours => {
                        if displaces {
                            let Some(c) = copy else {
                                return Ok(Some(format!(
                                    "the displaced original {} is missing",
                                    o.url(&q)
                                )));
                            };
                            self.copy(&c, &p)?;
                            self.remove(&q)?;
                        } else {
                            self.remove(&p)?;
                        }
                        None
                    }
                    (None, Some(c)) if displaces => {
                        let resumed = s.undo_started.contains(&i);
                        if left.is_none() || resumed {
                            if repo_gone(path)? {
                                Some(format!(
                                    "its repository was deleted after the run; the original stays at {}",
                                    o.url(&q)
                                ))
                            } else {
                                self.copy(c, &p)?;
                                self.remove(&q)?;
                                None
                            }
                        } else {
                            Some(format!(
                                "removed after the run: not brought back (the original stays at {})",
                                o.url(&q)
                            ))
                        }
                    }
                    (None, _) => None,
                    (Some(_), _) if left.is_none() && !(displaces && copy.is_some()) => None,
                    (Some(_), _) => Some(format!(
                        "changed after the run (now {}): kept it{}",
                        describe_obj(&now),
                        if displaces && copy.is_some() {
                            format!(" (the original stays at {})", o.url(&q))
                        } else {
                            String::new()
                        }
                    )),
                }
            }
            ActionKind::MoveBlob { from, to } => {
                let (f, t) = (v2(from), v2(to));
                let (now_t, now_f) = (o.stat(&t)?, o.stat(&f)?);
                match (&now_t, &now_f) {
                    (Some(a), Some(b)) if same_bytes(o, a, b)? => {
                        self.remove(&t)?;
                        None
                    }
                    (Some(a), None) if left.is_some_and(|l| l.same(&id_of(a))) => {
                        self.copy(a, &f)?;
                        self.remove(&t)?;
                        None
                    }
                    (None, Some(_)) => None,
                    (None, None) => Some(format!("{to} was removed after the run")),
                    (Some(_), Some(_)) => Some(format!(
                        "{from} was written again after the run: kept it, and the blob at {to}"
                    )),
                    (Some(_), None) => Some(format!(
                        "{to} changed after the run (now {}): kept it",
                        describe_obj(&now_t)
                    )),
                }
            }
            ActionKind::CreateDir { .. } | ActionKind::AbortMultipart { .. } => None,
        })
    }
}

/// Restore the bucket as it was before the run, wherever it still holds what the run left;
/// everything else is kept and listed; aborted multipart uploads are listed as irreversible.
pub fn undo(o: &dyn Objects, run_id: &str) -> Result<UndoOutcome> {
    let _lock = Lock::acquire(o)?;
    let (plan, records, seq) = load(o, run_id)?;
    let s = apply::state(&records);
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
    let mut r = runner(o, &plan, run_id, Some(seq))?;
    undo_steps(&mut r, &plan, &s, &mut out)?;
    Ok(out)
}

/// Delete a run's quarantined objects for good, keeping its plan and journal (so `undo --list`
/// stays truthful: the run is "purged"), with the filesystem's rules (`apply::purge`): only a
/// settled run; the journal records the purge before the first delete, so an interrupted purge
/// is finished by the next one and undo refuses from the first deleted object on.
pub fn purge(o: &dyn Objects, run_id: &str) -> Result<apply::PurgeOutcome> {
    let _lock = Lock::acquire(o)?;
    let (plan, records, seq) = load(o, run_id)?;
    let s = apply::state(&records);
    if s.purged == Some(true) {
        return Ok(apply::PurgeOutcome {
            bytes: 0,
            already_purged: true,
        });
    }
    if s.purged.is_none() && (!s.ended || s.undo_open) {
        bail!(
            "run {run_id} is interrupted (apply or undo did not finish): finish it first (re-run the command with --apply, or regfsck undo --run {run_id})"
        );
    }
    let files = o
        .list_keys(&format!("{}files/", run_prefix(run_id)))
        .context("listing the quarantine")?;
    let bytes = files.iter().map(|k| k.size).sum();
    let mut r = runner(o, &plan, run_id, Some(seq))?;
    if s.purged.is_none() {
        r.record(&Record::Purge { bytes })?;
    }
    for k in files {
        r.remove(&k.rel)
            .with_context(|| format!("cannot delete {}", o.url(&k.rel)))?;
    }
    r.record(&Record::Purged)?;
    Ok(apply::PurgeOutcome {
        bytes,
        already_purged: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects in memory: content and ETag by key (enough for `same_bytes`).
    struct Mem(std::collections::HashMap<String, (Vec<u8>, String)>);

    impl Objects for Mem {
        fn stat(&self, key: &str) -> std::io::Result<Option<Listed>> {
            Ok(self.0.get(key).map(|(b, e)| Listed {
                rel: key.into(),
                folder: false,
                size: b.len() as u64,
                mtime: 0,
                etag: Some(e.clone()),
            }))
        }
        fn list_keys(&self, _: &str) -> std::io::Result<Vec<Listed>> {
            unimplemented!()
        }
        fn list_folders(&self, _: &str) -> std::io::Result<Vec<String>> {
            unimplemented!()
        }
        fn get(&self, key: &str, _: u64) -> std::io::Result<Vec<u8>> {
            Ok(self.0[key].0.clone())
        }
        fn open(&self, key: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
            Ok(Box::new(std::io::Cursor::new(self.0[key].0.clone())))
        }
        fn put(&self, _: &str, _: &[u8]) -> std::io::Result<()> {
            unimplemented!()
        }
        fn copy(&self, _: &str, _: &str) -> std::io::Result<()> {
            unimplemented!()
        }
        fn remove(&self, _: &str) -> std::io::Result<()> {
            unimplemented!()
        }
        fn multipart(&self, _: &str) -> std::io::Result<Vec<(String, i64)>> {
            unimplemented!()
        }
        fn abort_multipart(&self, _: &str, _: &str) -> std::io::Result<()> {
            unimplemented!()
        }
        fn url(&self, key: &str) -> String {
            key.into()
        }
    }

    /// A multipart original and its server-side copy differ in ETag (`…-2` against an MD5):
    /// their content decides; a different byte or size never passes.
    #[test]
    fn same_bytes_reads_through_when_only_the_etags_differ() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut other = big.clone();
        other[150_000] ^= 1;
        let o = Mem([
            ("orig", (big.clone(), "abc-2")),
            ("copy", (big.clone(), "d41d8cd9")),
            ("changed", (other, "d41d8cd9")),
            ("short", (big[..1000].to_vec(), "abc-2")),
        ]
        .into_iter()
        .map(|(k, (b, e))| (k.to_string(), (b, e.to_string())))
        .collect());
        let st = |k: &str| o.stat(k).unwrap().unwrap();
        assert!(same_bytes(&o, &st("orig"), &st("copy")).unwrap());
        assert!(!same_bytes(&o, &st("orig"), &st("changed")).unwrap());
        assert!(!same_bytes(&o, &st("orig"), &st("short")).unwrap());
    }

    #[test]
    fn repository_prefixes() {
        assert_eq!(
            repo_prefix("repositories/a/b/_manifests/tags/t").as_deref(),
            Some("docker/registry/v2/repositories/a/b/")
        );
        assert_eq!(repo_prefix("blobs/sha256/ab"), None);
        assert_eq!(repo_prefix("repositories/_x"), None);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in ["../x", "repositories//a", "blobs/./x", "other/x", ""] {
            assert!(checked(bad).is_err(), "{bad}");
        }
        assert!(checked("repositories/a/_uploads/u/data").is_ok());
    }
}

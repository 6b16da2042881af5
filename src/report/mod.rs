//! The check report: one serialisable value built from findings, policy and scan statistics, plus
//! the fsck(8)-style exit status. Renderers (`human`, JSON via serde) only format it.

pub mod advice;
pub mod human;
pub mod metrics;

use crate::analysis::affected::Affected;
use crate::analysis::gc::Version;
use crate::analysis::policy::Policy;
use crate::model::finding::{Code, Finding, Severity};
use crate::model::inventory::Inventory;
use crate::plan::PlanOptions;
use advice::{GcRun, RepairHint};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Version of the JSON document; bumped only on incompatible changes (see docs/report-format.md).
pub const SCHEMA: &str = "regfsck.check/1";

/// fsck(8) exit status bits.
pub mod exit {
    pub const OK: i32 = 0;
    pub const CORRECTED: i32 = 1;
    pub const UNCORRECTED: i32 = 4;
    pub const OPERATIONAL: i32 = 8;
    pub const USAGE: i32 = 16;
    pub const CANCELLED: i32 = 32;
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportFinding {
    pub code: Code,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub message: String,
    /// How to fix this finding: what `regfsck repair` does about it, or what to do by hand.
    pub fix: String,
    /// What `regfsck repair` plans for it; absent when it plans nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<RepairHint>,
    /// The repositories and tags whose images it breaks (what to push again).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<Affected>,
}

impl ReportFinding {
    pub fn new(f: Finding, severity: Severity, fix: String) -> ReportFinding {
        ReportFinding {
            code: f.code,
            severity,
            path: f.path,
            repo: f.repo,
            tag: f.tag,
            digest: f.digest.map(|d| d.to_string()),
            message: f.message,
            fix,
            repair: None,
            affected: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub repositories: u64,
    pub tags: u64,
    pub revisions: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub uploads: u64,
    /// Blobs and bytes hashed in this run.
    pub hashed_blobs: u64,
    pub hashed_bytes: u64,
    pub hash_seconds: f64,
    pub scan_seconds: f64,
    /// Requests made to object storage (absent for a filesystem store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// The whole run, from start to report.
    pub wall_seconds: f64,
    /// Every blob's content was checked: hashed in this run, or (with the state file) recorded
    /// sound within the `--reverify-after` window and unchanged since.
    pub fully_verified: bool,
    pub interrupted: bool,
    pub errors: u64,
    pub warnings: u64,
    pub infos: u64,
    /// Findings suppressed by the skip list.
    pub skipped: u64,
    /// With the state file: blobs and bytes verified sound within the window, this run included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// What this run was asked to hash and how far it got.
    pub verification: Verification,
    pub by_code: BTreeMap<&'static str, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Coverage {
    pub blobs: u64,
    pub bytes: u64,
    /// `--reverify-after` in seconds; absent when every recorded verification counts.
    pub window_seconds: Option<i64>,
}

/// The hashing of one run: what was asked, what was done, what is left.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// `--no-verify` was given.
    pub no_verify: bool,
    /// `--verify-subset` as given (`3/7` or `5%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverify_after_seconds: Option<i64>,
    /// The state file read and written, when one is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
    /// Blobs this run chose to hash.
    pub selected_blobs: u64,
    pub selected_bytes: u64,
    /// Of those, not hashed because the run stopped early.
    pub left_blobs: u64,
    pub left_bytes: u64,
    /// Why hashing stopped early: `time-limit` (`--max-duration`) or `interrupted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<&'static str>,
    /// Blobs whose content is checked: hashed in this run, or recorded sound in the state file.
    pub verified_blobs: u64,
    pub verified_bytes: u64,
    /// With `--verify-subset n/t`: the shards that still hold unverified blobs (all other shards
    /// when no state file records earlier runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remaining_shards: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub regfsck_version: &'static str,
    /// The registry's rootdirectory, as given.
    pub root: String,
    pub summary: Summary,
    pub findings: Vec<ReportFinding>,
    /// What the operator should do next, most important first.
    pub next_steps: Vec<String>,
    /// Problems with the run itself, not the store (a skip-list line that matched nothing, an
    /// ignored state file).
    pub run_warnings: Vec<String>,
    pub exit_code: i32,
    /// Whether the store has its `repositories/` folder (the fix texts depend on it).
    #[serde(skip)]
    pub has_repositories: bool,
    /// `Context::store_words`, for the fix lines of groups of findings.
    #[serde(skip)]
    pub store_words: String,
}

/// Everything besides the findings that the report needs.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub interrupted: bool,
    /// `--config` as given: the garbage-collect command names it.
    pub config: Option<&'a Path>,
    /// What the repair planner is asked with (time settings, misplaced blob contents).
    pub plan: &'a PlanOptions,
    pub verification: Verification,
    /// The command line flags that select what to hash, to be repeated in advice
    /// (`--state FILE`, `--reverify-after D`).
    pub repeat_flags: Vec<String>,
    pub run_warnings: Vec<String>,
    /// The store as this run's own arguments name it (`regfsck::cli::store_words`): the root
    /// on a filesystem; on object storage `--config FILE` or `s3://… --endpoint URL`, so that
    /// a `regfsck …` command in advice reaches the same bucket.
    pub store_words: String,
}

/// Build the report: apply the policy (severity, skip list), ask the repair planner and the
/// reachability what each finding means, count, order, and decide the exit code.
pub fn build(inv: &Inventory, findings: Vec<Finding>, cx: Context) -> Report {
    let policy = cx.policy;
    let mut summary = Summary {
        repositories: inv.repos.len() as u64,
        tags: inv.repos.iter().map(|r| r.tags.len() as u64).sum(),
        revisions: inv.repos.iter().map(|r| r.revisions.len() as u64).sum(),
        blobs: inv.blobs.len() as u64,
        blob_bytes: inv.blobs.iter().map(|b| b.size).sum(),
        uploads: inv.repos.iter().map(|r| r.uploads.len() as u64).sum(),
        hashed_blobs: inv.stats.hashed_blobs,
        hashed_bytes: inv.stats.hashed_bytes,
        hash_seconds: inv.stats.hash_seconds,
        scan_seconds: inv.stats.scan_seconds,
        requests: inv.stats.requests,
        fully_verified: cx.verification.verified_blobs == inv.blobs.len() as u64,
        interrupted: cx.interrupted,
        verification: cx.verification,
        ..Summary::default()
    };
    let mut skip_used = vec![false; policy.skip_entries().len()];
    let mut kept = Vec::with_capacity(findings.len());
    for f in findings {
        if let Some(i) = policy.skip_entry(&f) {
            skip_used[i] = true;
            summary.skipped += 1;
            continue;
        }
        kept.push(f);
    }
    let affected = crate::analysis::affected::compute(inv, &kept);
    let hints = advice::repair_hints(inv, &kept, cx.plan);
    let has_repos = inv.has_repositories_dir;
    let mut out = Vec::with_capacity(kept.len());
    for ((f, affected), repair) in kept.into_iter().zip(affected).zip(hints) {
        let severity = policy.severity(f.code);
        match severity {
            Severity::Error => summary.errors += 1,
            Severity::Warn => summary.warnings += 1,
            Severity::Info => summary.infos += 1,
        }
        *summary.by_code.entry(f.code.as_str()).or_default() += 1;
        let fix = advice::fix_text(&f, repair.as_ref(), &cx.store_words, has_repos);
        let mut rf = ReportFinding::new(f, severity, fix);
        rf.repair = repair;
        rf.affected = affected;
        out.push(rf);
    }
    // Most severe first, then by code and path, so output is stable run to run.
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.code.as_str().cmp(b.code.as_str()))
            .then(a.path.cmp(&b.path))
            .then(a.message.cmp(&b.message))
    });
    let failing = out.iter().any(|f| policy.is_failure(f.severity));
    let mut exit_code = if failing { exit::UNCORRECTED } else { exit::OK };
    if cx.interrupted {
        exit_code |= exit::CANCELLED;
    }
    let mut run_warnings = cx.run_warnings;
    for (entry, used) in policy.skip_entries().iter().zip(skip_used) {
        if !used {
            run_warnings.push(format!(
                "skip list line {} ({}) matched no finding",
                entry.line, entry.text
            ));
        }
    }
    let next_steps = next_steps(
        &out,
        &summary,
        &Where {
            root: &inv.root,
            config: cx.config,
            repeat_flags: &cx.repeat_flags,
            store_words: &cx.store_words,
        },
    );
    Report {
        schema: SCHEMA,
        regfsck_version: env!("CARGO_PKG_VERSION"),
        root: inv.root.display().to_string(),
        summary,
        findings: out,
        next_steps,
        run_warnings,
        exit_code,
        has_repositories: has_repos,
        store_words: cx.store_words,
    }
}

/// Where the store is and how this run was invoked, for commands in advice.
struct Where<'a> {
    root: &'a Path,
    config: Option<&'a Path>,
    repeat_flags: &'a [String],
    store_words: &'a str,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    human::plural(n as u64, one, many)
}

/// Distinct codes of these findings, in order, as `a, b and c`.
fn code_list<'a>(fs: impl Iterator<Item = &'a ReportFinding>) -> String {
    let mut codes: Vec<&str> = fs.map(|f| f.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    codes.join(", ")
}

fn next_steps(findings: &[ReportFinding], s: &Summary, w: &Where) -> Vec<String> {
    let root = w.store_words.to_string();
    let has = |c: Code| findings.iter().any(|f| f.code == c);
    let mut steps = Vec::new();
    // Which garbage collections the findings make unsafe: through a `gc-would-*` finding (the
    // store must be fixed first), or 2.8's --delete-untagged on multi-arch images (the run
    // itself is the problem; nothing to repair).
    let hazardous: Vec<GcRun> = GcRun::ALL
        .into_iter()
        .filter(|r| findings.iter().any(|f| r.concerns(f.code, &f.message)))
        .collect();
    let trapped: Vec<GcRun> = GcRun::ALL
        .into_iter()
        .filter(|r| {
            r.version == Version::V2_8
                && r.delete_untagged
                && has(Code::RevisionUntaggedChild)
                && !hazardous.contains(r)
        })
        .collect();
    let safe_runs: Vec<GcRun> = GcRun::ALL
        .into_iter()
        .filter(|r| !hazardous.contains(r) && !trapped.contains(r))
        .collect();
    let names = |runs: &[GcRun]| {
        runs.iter()
            .map(|r| format!("`{}`", r.label()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !hazardous.is_empty() {
        steps.push(format!(
            "Do not run {} on this store yet: `regfsck gc {root}` shows what it would break.",
            names(&hazardous)
        ));
    }
    if !trapped.is_empty() {
        steps.push(format!(
            "Do not run {} on this store: it deletes the untagged children of its multi-arch images (revision-untagged-child); a plain garbage-collect, or registry 3's --delete-untagged, keeps them.",
            names(&trapped)
        ));
    }
    let (apply, lossy): (Vec<&ReportFinding>, Vec<&ReportFinding>) = findings
        .iter()
        .filter(|f| f.repair.as_ref().is_some_and(|h| h.via.is_none()))
        .partition(|f| f.repair.as_ref().is_some_and(|h| !h.lossy));
    if !apply.is_empty() {
        let n: usize = apply
            .iter()
            .filter_map(|f| f.repair.as_ref())
            .map(|h| h.actions.len())
            .sum();
        steps.push(format!(
            "Run `regfsck repair {root}` to review the plan ({} for {}: {}); `regfsck repair {root} --apply` executes it (everything it removes is quarantined; `regfsck undo` restores it).",
            plural(n, "action", "actions"),
            plural(apply.len(), "finding", "findings"),
            code_list(apply.iter().copied())
        ));
    }
    if !lossy.is_empty() {
        steps.push(format!(
            "`regfsck repair {root} --lossy` also plans to drop what is already broken ({}: {}); use it only for images that cannot be pushed again.",
            plural(lossy.len(), "finding", "findings"),
            code_list(lossy.iter().copied())
        ));
    }
    let manual: Vec<&ReportFinding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error && f.repair.is_none())
        .collect();
    if !manual.is_empty() {
        steps.push(format!(
            "`regfsck repair` has no action for {} ({}): see their fix lines.",
            plural(manual.len(), "error", "errors"),
            code_list(manual.iter().copied())
        ));
    }
    // Images to push again: those whose content is gone or corrupt.
    let mut repush: Vec<String> = findings
        .iter()
        .filter(|f| {
            matches!(
                f.code,
                Code::ManifestRefMissing
                    | Code::IndexChildMissing
                    | Code::RevisionBlobMissing
                    | Code::ManifestInvalid
                    | Code::BlobDigestMismatch
                    | Code::BlobEmpty
            )
        })
        .flat_map(|f| &f.affected)
        .flat_map(|a| a.tags.iter().map(move |t| format!("{}:{t}", a.repo)))
        .collect();
    repush.sort();
    repush.dedup();
    if !repush.is_empty() {
        let shown = repush.len().min(10);
        steps.push(format!(
            "Push these images again (regfsck cannot invent their bytes): {}{}.",
            repush[..shown].join(", "),
            if repush.len() > shown {
                format!(
                    " and {} more (see the findings' affected lists)",
                    repush.len() - shown
                )
            } else {
                String::new()
            }
        ));
    }
    if has(Code::UploadRecent) || has(Code::PathChanged) {
        steps.push("The registry looks active: stop it or set storage.maintenance.readonly before repairing or collecting garbage.".into());
    }
    if has(Code::BlobUnreferenced) {
        let plain: Vec<&GcRun> = safe_runs.iter().filter(|r| !r.delete_untagged).collect();
        let n = findings
            .iter()
            .filter(|f| f.code == Code::BlobUnreferenced)
            .count();
        match plain.as_slice() {
            [] => {}
            runs => {
                let versions: Vec<&str> = runs.iter().map(|r| r.version.name()).collect();
                steps.push(format!(
                    "{} can be reclaimed by a plain garbage collection (safe now with registry {}): stop the registry or make it read-only, then run {}. `regfsck gc {root} --registry-version {}` confirms that exact run.",
                    plural(n, "unreferenced blob", "unreferenced blobs"),
                    versions.join(" and "),
                    advice::gc_command(w.config, w.root, false),
                    versions[0]
                ));
            }
        }
    }
    steps.extend(verification_steps(s, &root, w.repeat_flags));
    if s.interrupted {
        steps.push(
            "The run was interrupted: the report covers only what was checked before the stop."
                .into(),
        );
    }
    steps
}

/// What to run next so that every blob gets hashed, for the way this run was asked to hash.
fn verification_steps(s: &Summary, root: &str, repeat: &[String]) -> Vec<String> {
    let v = &s.verification;
    let mut steps = Vec::new();
    if s.fully_verified || s.blobs == 0 {
        return steps;
    }
    let extra = if repeat.is_empty() {
        String::new()
    } else {
        format!(" {}", repeat.join(" "))
    };
    if v.no_verify {
        steps.push(format!(
            "Blob contents were not hashed (--no-verify): `regfsck check {root}` hashes every blob."
        ));
        return steps;
    }
    match v.stopped {
        Some("time-limit") => {
            let how = if v.state_file.is_some() {
                "run the same command again: it hashes only what is not verified yet"
            } else {
                "to continue across runs, add `--reverify-after 30d` (each run then records what it verified and the next one hashes only the rest; this run's work was not recorded)"
            };
            steps.push(format!(
                "Hashing stopped at the --max-duration limit with {} ({}) of this run's selection left: {how}.",
                plural(v.left_blobs as usize, "blob", "blobs"),
                human::size(v.left_bytes),
            ));
        }
        Some(_) => {} // interrupted: said below
        None => {}
    }
    if let Some(sub) = &v.subset {
        if sub.ends_with('%') {
            steps.push(format!(
                "This run hashed a random {sub} of the blobs: `regfsck check {root}` hashes every blob."
            ));
        } else if !v.remaining_shards.is_empty() {
            let cmds: Vec<String> = v
                .remaining_shards
                .iter()
                .map(|k| format!("`regfsck check {root} --verify-subset {k}{extra}`"))
                .collect();
            let shown = cmds.len().min(8);
            steps.push(format!(
                "{} still hold blobs not verified{}: {}{}.",
                plural(v.remaining_shards.len(), "shard", "shards"),
                if v.state_file.is_some() {
                    " (per the state file)"
                } else {
                    " (no state file records the other shards' runs)"
                },
                cmds[..shown].join(", "),
                if cmds.len() > shown {
                    format!(
                        " and {} more: {}",
                        cmds.len() - shown,
                        v.remaining_shards[shown..].join(", ")
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    steps
}

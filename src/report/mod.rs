//! The check report: one serialisable value built from findings, policy and scan statistics, plus
//! the fsck(8)-style exit status. Renderers (`human`, JSON via serde) only format it.

pub mod human;

use crate::analysis::policy::Policy;
use crate::model::finding::{Code, Finding, Severity};
use crate::model::inventory::Inventory;
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub fix: &'static str,
}

impl ReportFinding {
    pub fn new(f: Finding, severity: Severity) -> ReportFinding {
        ReportFinding {
            code: f.code,
            severity,
            path: f.path,
            repo: f.repo,
            tag: f.tag,
            digest: f.digest.map(|d| d.to_string()),
            message: f.message,
            fix: f.code.fix(),
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
    /// False when hashing was skipped, partial or interrupted.
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
    pub by_code: BTreeMap<&'static str, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Coverage {
    pub blobs: u64,
    pub bytes: u64,
    /// `--reverify-after` in seconds; absent when every recorded verification counts.
    pub window_seconds: Option<i64>,
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
    pub exit_code: i32,
}

/// Build the report: apply the policy (severity, skip list), count, order, and decide the exit code.
pub fn build(
    inv: &Inventory,
    findings: Vec<Finding>,
    policy: &Policy,
    interrupted: bool,
) -> Report {
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
        fully_verified: !inv.stats.hash_incomplete
            && inv.stats.hashed_blobs == inv.blobs.len() as u64,
        interrupted,
        ..Summary::default()
    };
    let mut out = Vec::with_capacity(findings.len());
    for f in findings {
        if policy.skipped(&f) {
            summary.skipped += 1;
            continue;
        }
        let severity = policy.severity(f.code);
        match severity {
            Severity::Error => summary.errors += 1,
            Severity::Warn => summary.warnings += 1,
            Severity::Info => summary.infos += 1,
        }
        *summary.by_code.entry(f.code.as_str()).or_default() += 1;
        out.push(ReportFinding::new(f, severity));
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
    if interrupted {
        exit_code |= exit::CANCELLED;
    }
    let next_steps = next_steps(&out, &summary, &inv.root.display().to_string());
    Report {
        schema: SCHEMA,
        regfsck_version: env!("CARGO_PKG_VERSION"),
        root: inv.root.display().to_string(),
        summary,
        findings: out,
        next_steps,
        exit_code,
    }
}

fn next_steps(findings: &[ReportFinding], s: &Summary, root: &str) -> Vec<String> {
    let has = |c: Code| findings.iter().any(|f| f.code == c);
    let mut steps = Vec::new();
    if has(Code::GcWouldAbort) || has(Code::GcWouldDeleteTagged) || has(Code::GcCannotPredict) {
        steps.push(format!(
            "Do not run `registry garbage-collect` yet: see `regfsck gc {root}` for what it would break."
        ));
    }
    if s.errors > 0 {
        steps.push(format!(
            "Run `regfsck repair {root}` to see the repair plan; `--apply` executes it (everything it removes is quarantined, `regfsck undo` restores it)."
        ));
    }
    if has(Code::ManifestRefMissing)
        || has(Code::IndexChildMissing)
        || has(Code::RevisionBlobMissing)
    {
        steps.push(
            "Images with missing content must be pushed again; regfsck cannot invent their bytes."
                .into(),
        );
    }
    if has(Code::UploadRecent) || has(Code::PathChanged) {
        steps.push("The registry looks active: stop it or set storage.maintenance.readonly before repairing or collecting garbage.".into());
    }
    if has(Code::BlobUnreferenced) && s.errors == 0 {
        steps.push(format!(
            "Unreferenced blobs can be reclaimed with `registry garbage-collect`; `regfsck gc {root}` shows exactly what it deletes."
        ));
    }
    if !s.fully_verified && !s.interrupted && s.blobs > 0 {
        steps.push("Not every blob was hashed in this run: run `regfsck check` without --no-verify for a full content check.".into());
    }
    if s.interrupted {
        steps.push(
            "The run was interrupted: the report covers only what was checked before the stop."
                .into(),
        );
    }
    steps
}

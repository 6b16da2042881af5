//! `regfsck repair` (plan; `--apply` executes it with a journal and a quarantine) and
//! `regfsck undo` (restore a run byte for byte, keeping anything written after it).

use super::check::check_options;
use super::{Failure, Format, StoreArgs};
use crate::analysis::checks::CheckOptions;
use crate::analysis::{checks, gc, reach};
use crate::model::finding::{Code, Finding, Severity};
use crate::model::inventory::Inventory;
use crate::model::timefmt::format_rfc3339;
use crate::plan::apply::{self, ApplyOptions, Status};
use crate::plan::journal::Counts;
use crate::plan::target::Target;
use crate::plan::{self, live, Plan, PlanOptions};
use crate::report::exit;
use crate::report::human::plural;
use crate::store::verify::VerifyOptions;
use crate::store::{scan, Storage};
use clap::{ArgGroup, Args};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Execute the safe actions (default: only print the plan).
    #[arg(long)]
    pub apply: bool,
    /// Also drop references that are already broken (tags and revisions whose manifest is gone).
    #[arg(long)]
    pub lossy: bool,
    /// Confirm lossy actions without a prompt.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Write the plan as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Never touch a tree with anything modified more recently than this; recent uploads mean
    /// "live".
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub grace: String,
    /// Apply even though the registry looks live (a registry process serving the store, a recent
    /// upload, a process with files open in it). The grace window still holds.
    #[arg(long)]
    pub force: bool,
    /// Do not hash blobs (then no link can be proven rebuildable and no corrupt blob is found).
    #[arg(long)]
    pub no_verify: bool,
    /// Upload age after which an unfinished upload is stale (default: the config's
    /// uploadpurging.age, else 168h).
    #[arg(long, value_name = "DURATION")]
    pub purge_age: Option<String>,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Hashing threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub io: super::IoArgs,
    /// Output: human, or json (the plan and each action's status; docs/report-format.md).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Evaluate ages as of this time (unix seconds), for reproducible runs.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["run", "list"])))]
pub struct UndoArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The run to undo (printed by `repair`, `rm`, `prune` and `gc` with --apply; `--list` shows
    /// all).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// List the repair and cleanup runs of this store (with what each holds in the quarantine).
    #[arg(long)]
    pub list: bool,
    /// Undo even though the registry looks live.
    #[arg(long)]
    pub force: bool,
    /// Output: human, or json (docs/report-format.md).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

struct Checked {
    inv: Inventory,
    findings: Vec<Finding>,
}

fn check_store(
    store: &dyn Storage,
    opts: &CheckOptions,
    no_verify: bool,
    quiet: bool,
    io_depth: usize,
) -> Result<Checked, Failure> {
    let progress = super::progress_bar::for_run(quiet);
    // Deep: repair acts on residue inside link and blob folders too, and restores a lost tag
    // from its newest index entry, which needs the link mtimes only a deep scan reads.
    let mut inv = store.scan(
        &scan::ScanOptions {
            deep: true,
            io_depth,
            ..Default::default()
        },
        progress.as_ref(),
    )?;
    if !no_verify {
        let vopts = VerifyOptions {
            io_depth,
            ..Default::default()
        };
        store.verify(&mut inv, &vopts, progress.as_ref());
    }
    let findings = checks::audit(&inv, opts);
    Ok(Checked { inv, findings })
}

fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.code.default_severity() == Severity::Error)
        .collect()
}

/// The paths the analysis could not read: no action may rest on them.
fn unreadable(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.code == Code::PathUnreadable)
        .filter_map(|f| f.path.clone())
        .collect()
}

pub(super) fn describe(kind: &plan::ActionKind) -> String {
    match kind {
        plan::ActionKind::Quarantine { path } => format!("quarantine {path}"),
        plan::ActionKind::WriteLink { path, digest } => format!("write {path} = {digest}"),
        plan::ActionKind::CreateDir { path } => format!("create folder {path}"),
        plan::ActionKind::MoveBlob { from, to } => format!("move {from} -> {to}"),
        plan::ActionKind::AbortMultipart { path, upload_id } => {
            format!("abort multipart upload {upload_id} of {path} (cannot be undone)")
        }
    }
}

/// Why an action did not (or would not) run, in words.
pub(super) fn status_text(s: &Status) -> Option<String> {
    match s {
        Status::Applied => None,
        Status::Skipped {
            reason,
            eligible_at: Some(t),
        } => Some(format!(
            "waits: {reason}; eligible from {} (or pass --grace 0s)",
            format_rfc3339(*t)
        )),
        Status::Skipped { reason, .. } => Some(format!("skipped: {reason}")),
        Status::Refused { reason } => Some(format!("refused: {reason}")),
        Status::Failed { error } => Some(format!("failed: {error}")),
    }
}

pub(super) fn mark(s: Option<&Status>) -> &'static str {
    match s {
        Some(Status::Skipped {
            eligible_at: Some(_),
            ..
        }) => "[waits] ",
        Some(Status::Refused { .. }) => "[refused] ",
        _ => "",
    }
}

/// The plan, each action marked with what the applier would do with it now (and why, unless
/// the outcome of applying it follows).
fn render_plan(plan: &Plan, preview: &[Option<Status>], why: bool) -> String {
    let mut o = String::new();
    if plan.actions.is_empty() {
        let _ = writeln!(o, "Nothing to repair.");
        return o;
    }
    let _ = writeln!(o, "Repair plan ({}):", actions_n(plan.actions.len()));
    for (a, s) in plan.actions.iter().zip(preview) {
        let _ = writeln!(
            o,
            "  {}{}{}\n      {}: {}",
            mark(s.as_ref()),
            if a.lossy { "[lossy] " } else { "" },
            describe(&a.kind),
            a.code,
            a.reason
        );
        if let Some(text) = s.as_ref().filter(|_| why).and_then(status_text) {
            let _ = writeln!(o, "      {text}");
        }
    }
    o
}

pub(super) fn actions_n(n: usize) -> String {
    plural(n as u64, "action", "actions")
}

pub(super) fn counts_text(c: &Counts) -> String {
    format!(
        "{} applied, {} skipped, {} refused, {} failed",
        c.applied, c.skipped, c.refused, c.failed
    )
}

fn confirm_lossy(plan: &Plan, preview: &[Option<Status>], yes: bool) -> Result<(), Failure> {
    let lossy = plan
        .actions
        .iter()
        .zip(preview)
        .filter(|(a, s)| a.lossy && s.is_none())
        .count();
    if lossy == 0 || yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "{} need --yes when not on a terminal",
            plural(lossy as u64, "lossy action", "lossy actions")
        )));
    }
    let aborts = plan
        .actions
        .iter()
        .filter(|a| matches!(a.kind, plan::ActionKind::AbortMultipart { .. }))
        .count();
    eprint!(
        "Apply {} (broken tags and revisions are moved to the quarantine{})? [y/N] ",
        plural(lossy as u64, "lossy action", "lossy actions"),
        if aborts > 0 {
            "; aborted multipart uploads cannot be undone"
        } else {
            ""
        }
    );
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::Usage("not confirmed; nothing was changed".into()))
    }
}

fn gc_advice(inv: &Inventory, config: Option<&PathBuf>) -> String {
    let preds = gc::predict_all(inv);
    let r = reach::compute(inv);
    let mut o = String::new();
    for p in &preds {
        let bad = p.abort.is_some()
            || !gc::hazards_with(inv, &r, std::slice::from_ref(p), true).is_empty();
        let _ = writeln!(
            o,
            "  {}: {}",
            p.label(),
            if bad {
                "NOT safe yet (see regfsck gc)".to_string()
            } else {
                format!(
                    "safe now: {}",
                    crate::report::advice::gc_command(
                        config.map(PathBuf::as_path),
                        &inv.root,
                        p.delete_untagged
                    )
                )
            }
        );
    }
    o
}

/// Refuse to act while something uses the store, unless forced (then say so, loudly).
pub(super) fn live_guard(reasons: &[String], force: bool, what: &str) -> Result<(), Failure> {
    if reasons.is_empty() {
        return Ok(());
    }
    if force {
        eprintln!(
            "regfsck: WARNING: the registry looks live; {what} anyway because of --force:\n  {}",
            reasons.join("\n  ")
        );
        return Ok(());
    }
    Err(Failure::Operational(format!(
        "the registry looks live, refusing to {what} (stop it, or pass --force):\n  {}",
        reasons.join("\n  ")
    )))
}

/// One action in the JSON output: the action and how it ended (or would end now).
#[derive(Serialize)]
pub(super) struct JsonAction<'a> {
    #[serde(flatten)]
    action: &'a plan::Action,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eligible_at: Option<String>,
}

#[derive(Serialize)]
struct JsonRepair<'a> {
    schema: &'static str,
    root: String,
    /// false: a preview (statuses say what would happen now).
    applied: bool,
    resumed: Vec<JsonResumed>,
    actions: Vec<JsonAction<'a>>,
    counts: Counts,
    run: Option<String>,
    errors_before: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors_after: Option<usize>,
}

#[derive(Serialize)]
pub(super) struct JsonResumed {
    pub(super) run: String,
    pub(super) applied_now: usize,
}

pub(super) fn json_actions<'a>(plan: &'a Plan, statuses: &[Option<Status>]) -> Vec<JsonAction<'a>> {
    plan.actions
        .iter()
        .zip(statuses)
        .map(|(action, s)| {
            let (status, why, eligible_at) = match s {
                None => ("planned", None, None),
                Some(Status::Applied) => ("applied", None, None),
                Some(Status::Skipped {
                    reason,
                    eligible_at,
                }) => ("skipped", Some(reason.clone()), *eligible_at),
                Some(Status::Refused { reason }) => ("refused", Some(reason.clone()), None),
                Some(Status::Failed { error }) => ("failed", Some(error.clone()), None),
            };
            JsonAction {
                action,
                status,
                why,
                eligible_at: eligible_at.map(format_rfc3339),
            }
        })
        .collect()
}

/// The applier for the located store.
pub(super) fn target(located: &super::Located) -> Result<Target<'_>, Failure> {
    Target::of(located.store.as_ref()).ok_or_else(|| {
        Failure::Usage(format!(
            "{}: no applier for this store",
            located.store.location()
        ))
    })
}

/// The applier's options from the run's ages (no unreadable paths known yet).
pub(super) fn apply_options(opts: &CheckOptions) -> ApplyOptions {
    ApplyOptions {
        grace: opts.grace,
        now: opts.now,
        unreadable: Vec::new(),
    }
}

/// Refuse while a registry process serves the store (unless forced).
pub(super) fn guard_processes(root: &Path, force: bool, what: &str) -> Result<(), Failure> {
    let procs: Vec<String> = live::processes_using(root)
        .iter()
        .map(ToString::to_string)
        .collect();
    live_guard(&procs, force, what)
}

/// Finish every run an earlier apply left interrupted (a crash, SIGKILL), before planning anew.
pub(super) fn resume_incomplete(
    target: &Target,
    apply_opts: &ApplyOptions,
    out: &mut String,
) -> Result<Vec<JsonResumed>, Failure> {
    let mut resumed = Vec::new();
    for run_id in target.incomplete_runs()? {
        let r = target.resume(&run_id, apply_opts)?;
        if r.run_id.is_none() {
            let _ = writeln!(
                out,
                "Interrupted run {run_id} had changed nothing and has nothing left to do: removed it."
            );
        } else {
            let _ = writeln!(
                out,
                "Resumed interrupted run {run_id}: applied {} more ({}).",
                r.applied_now,
                counts_text(&r.counts())
            );
        }
        resumed.push(JsonResumed {
            run: run_id,
            applied_now: r.applied_now,
        });
    }
    Ok(resumed)
}

pub fn run(args: RepairArgs) -> Result<i32, Failure> {
    let located = super::locate(&args.store)?;
    let store = located.store.as_ref();
    let target = target(&located)?;
    let words = super::store_words(&args.store, &located);
    let opts = check_options(
        args.purge_age.as_deref(),
        &args.grace,
        args.now,
        located.registry.as_ref(),
    )?;
    super::configure_threads(args.jobs);
    let root = store.location();
    let json = args.format == Format::Json;
    let mut apply_opts = apply_options(&opts);
    let mut out = String::new();
    let mut resumed = Vec::new();
    if args.apply {
        // Before anything changes (a resumed run included): no registry may be using the store.
        if let Target::Fs(root) = &target {
            guard_processes(root, args.force, "apply")?;
        }
        resumed = resume_incomplete(&target, &apply_opts, &mut out)?;
    }
    let before = check_store(store, &opts, args.no_verify, args.quiet, args.io.depth())?;
    apply_opts.unreadable = unreadable(&before.findings);
    let plan = plan::repair::plan(
        &before.inv,
        &before.findings,
        &PlanOptions {
            lossy: args.lossy,
            now: opts.now,
            purge_age: opts.purge_age,
            grace: opts.grace,
            follow_ups: true,
            misplaced_content: store.misplaced_content(&before.inv),
        },
    );
    if let Some(path) = &args.plan {
        let text = serde_json::to_string_pretty(&plan).unwrap_or_default();
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::Operational(format!("cannot write {}: {e}", path.display())))?;
    }
    let preview = target.assess(&plan, &apply_opts);
    out.push_str(&render_plan(&plan, &preview, !args.apply));
    let errors_before = errors(&before.findings).len();
    let unfixed = if errors_before > 0 {
        exit::UNCORRECTED
    } else {
        exit::OK
    };
    let json_doc = |statuses: &[Option<Status>],
                    run: Option<String>,
                    applied: bool,
                    errors_after: Option<usize>,
                    resumed: Vec<JsonResumed>| {
        let settled: Vec<Status> = statuses.iter().flatten().cloned().collect();
        JsonRepair {
            schema: "regfsck.repair/1",
            root: root.clone(),
            applied,
            resumed,
            actions: json_actions(&plan, statuses),
            counts: apply::count(&settled),
            run,
            errors_before,
            errors_after,
        }
    };
    if !args.apply {
        if json {
            super::print_json(&json_doc(&preview, None, false, None, resumed));
            return Ok(unfixed);
        }
        if !plan.actions.is_empty() {
            let lossy_hint = if args.lossy {
                ""
            } else {
                " (add --lossy to also drop references that are already broken)"
            };
            let _ = writeln!(
                out,
                "\nNothing was changed. Run with --apply to execute{lossy_hint}."
            );
        }
        let stale_multipart = before
            .findings
            .iter()
            .filter(|f| f.code == Code::UploadMultipartIncomplete)
            .count();
        if stale_multipart > 0 && !args.lossy {
            let _ = writeln!(
                out,
                "{} older than the purge age: `regfsck repair {words} --apply --lossy` aborts {} (an abort deletes the uploaded parts for good; undo cannot bring them back).",
                plural(
                    stale_multipart as u64,
                    "incomplete multipart upload is",
                    "incomplete multipart uploads are"
                ),
                if stale_multipart == 1 { "it" } else { "them" }
            );
        }
        super::print_stdout(&out);
        return Ok(unfixed);
    }
    // Guards: never repair under a live registry unless told to.
    let live_reasons: Vec<String> = before
        .findings
        .iter()
        .filter(|f| matches!(f.code, Code::UploadRecent | Code::PathChanged))
        .map(|f| {
            format!(
                "{}: {}: {}",
                f.code,
                f.path.as_deref().unwrap_or(""),
                f.message
            )
        })
        .collect();
    if let Err(e) = live_guard(&live_reasons, args.force, "apply") {
        if !json {
            super::print_stdout(&out);
        }
        return Err(e);
    }
    confirm_lossy(&plan, &preview, args.yes)?;
    let outcome = if plan.actions.is_empty() {
        apply::ApplyOutcome::default()
    } else {
        target.apply(&plan, &apply_opts)?
    };
    let counts = outcome.counts();
    let changed = outcome.run_id.is_some();
    match &outcome.run_id {
        Some(id) => {
            let _ = writeln!(
                out,
                "\nApplied {} of {} as run {id} (undo: regfsck undo {words} --run {id}).",
                counts.applied,
                actions_n(plan.actions.len()),
            );
        }
        None if !plan.actions.is_empty() => {
            let _ = writeln!(out, "\nNothing was changed; no run was recorded.");
        }
        None => {}
    }
    if !plan.actions.is_empty() {
        let _ = writeln!(out, "  {}", counts_text(&counts));
    }
    for (a, s) in plan.actions.iter().zip(&outcome.statuses) {
        if let Some(text) = status_text(s) {
            let _ = writeln!(out, "  {}: {text}", a.kind.path());
        }
    }
    // Unchanged store: the findings from before still hold.
    let after = if changed {
        check_store(store, &opts, args.no_verify, true, args.io.depth())?
    } else {
        before
    };
    let remaining = errors(&after.findings);
    if json {
        let statuses: Vec<Option<Status>> = outcome.statuses.iter().cloned().map(Some).collect();
        let statuses = if statuses.is_empty() {
            preview
        } else {
            statuses
        };
        super::print_json(&json_doc(
            &statuses,
            outcome.run_id.clone(),
            true,
            Some(remaining.len()),
            resumed,
        ));
    } else {
        if remaining.is_empty() {
            let _ = writeln!(out, "No errors remain.");
        } else {
            let _ = writeln!(
                out,
                "{} remain:",
                plural(remaining.len() as u64, "error", "errors")
            );
            for f in remaining.iter().take(20) {
                let _ = writeln!(
                    out,
                    "  {}: {}: {} — {}",
                    f.code,
                    f.path.as_deref().unwrap_or(""),
                    f.message,
                    f.code.fix()
                );
            }
        }
        if changed {
            let _ = writeln!(
                out,
                "\nRestart the registry now: its blob-descriptor cache still believes in moved blobs.\nGarbage collection:\n{}",
                gc_advice(&after.inv, located.store_config())
            );
        }
        super::print_stdout(&out);
    }
    let mut code = 0;
    if remaining.len() < errors_before {
        code |= exit::CORRECTED;
    }
    if !remaining.is_empty() {
        code |= exit::UNCORRECTED;
    }
    if counts.failed > 0 {
        code |= exit::OPERATIONAL;
    }
    Ok(code)
}

fn list_runs(target: &Target, location: &str, json: bool) -> Result<i32, Failure> {
    let runs = target.runs()?;
    if json {
        #[derive(Serialize)]
        struct Doc {
            schema: &'static str,
            runs: Vec<apply::RunInfo>,
        }
        super::print_json(&Doc {
            schema: "regfsck.runs/1",
            runs,
        });
        return Ok(exit::OK);
    }
    let mut out = String::new();
    if runs.is_empty() {
        let _ = writeln!(out, "No repair runs in {location}.");
    }
    for r in runs {
        let kept = if r.kept > 0 {
            format!(" ({} steps kept)", r.kept)
        } else {
            String::new()
        };
        let held = match r.state {
            "purged" => "purged: can no longer be undone".to_string(),
            _ if r.bytes > 0 => {
                format!("{} in the quarantine", crate::report::human::size(r.bytes))
            }
            _ => "nothing in the quarantine".to_string(),
        };
        let _ = writeln!(
            out,
            "{}  {}: {}  {}{kept}  ({}; {held})",
            r.id,
            actions_n(r.actions),
            counts_text(&r.counts),
            r.state,
            r.command
        );
    }
    super::print_stdout(&out);
    Ok(exit::OK)
}

pub fn run_undo(args: UndoArgs) -> Result<i32, Failure> {
    let located = super::locate(&args.store)?;
    let target = target(&located)?;
    let location = located.store.location();
    let json = args.format == Format::Json;
    if args.list {
        return list_runs(&target, &location, json);
    }
    let run_id = args.run.unwrap_or_default();
    if !apply::valid_run_id(&run_id) {
        return Err(Failure::Usage(format!(
            "{run_id:?} is not a regfsck run id (see regfsck undo --list)"
        )));
    }
    if !target.runs()?.iter().any(|r| r.id == run_id) {
        return Err(Failure::Usage(format!(
            "no run {run_id} in {location} (see regfsck undo --list)"
        )));
    }
    if let Target::Fs(root) = &target {
        guard_processes(root, args.force, "undo")?;
    }
    let o = target.undo(&run_id)?;
    let code = if o.kept.is_empty() {
        exit::OK
    } else {
        exit::UNCORRECTED
    };
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            schema: &'static str,
            run: &'a str,
            #[serde(flatten)]
            outcome: &'a apply::UndoOutcome,
        }
        super::print_json(&Doc {
            schema: "regfsck.undo/1",
            run: &run_id,
            outcome: &o,
        });
        return Ok(code);
    }
    let mut out = String::new();
    if o.already_undone {
        let _ = writeln!(out, "Run {run_id} was already undone; nothing to do.");
    } else if o.kept.is_empty() {
        let _ = writeln!(
            out,
            "Undid run {run_id}: {} reversed. Restart the registry.",
            steps_n(o.reversed)
        );
    } else {
        let _ = writeln!(
            out,
            "Undid run {run_id} partly: {} reversed, {} NOT reversed because the store changed after the run (newer content was kept):",
            steps_n(o.reversed),
            steps_n(o.kept.len())
        );
        for k in &o.kept {
            let _ = writeln!(out, "  {}: {}", k.path, k.reason);
        }
        let _ = writeln!(
            out,
            "Resolve these (the newer content is probably what you want), then run this undo again to reverse the rest."
        );
        if o.reversed > 0 {
            let _ = writeln!(out, "Restart the registry.");
        }
    }
    for k in &o.irreversible {
        let _ = writeln!(out, "  {}: not restorable: {}", k.path, k.reason);
    }
    super::print_stdout(&out);
    Ok(code)
}

fn steps_n(n: usize) -> String {
    plural(n as u64, "step", "steps")
}

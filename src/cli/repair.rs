//! `regfsck repair` (plan; `--apply` executes it with a journal and a quarantine) and
//! `regfsck undo` (restore a run byte for byte).

use super::check::check_options;
use super::{Failure, StoreArgs};
use crate::analysis::checks::CheckOptions;
use crate::analysis::{checks, gc, reach};
use crate::model::finding::{Code, Finding, Severity};
use crate::model::inventory::Inventory;
use crate::plan::apply::{self, ApplyOptions};
use crate::plan::{self, live, Plan, PlanOptions};
use crate::report::human::plural;
use crate::store::verify::VerifyOptions;
use crate::store::{scan, verify};
use clap::Args;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

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
    /// Never touch anything modified more recently than this; recent uploads mean "live".
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub grace: String,
    /// Apply even though the registry looks live.
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
    /// Evaluate ages as of this time (unix seconds), for reproducible runs.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
}

#[derive(Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The run to undo (printed by `repair --apply`; `--list` shows all).
    #[arg(long, value_name = "RUN_ID", required_unless_present = "list")]
    pub run: Option<String>,
    /// List the repair runs of this store.
    #[arg(long)]
    pub list: bool,
}

struct Checked {
    inv: Inventory,
    findings: Vec<Finding>,
}

fn check_store(
    store: &scan::Store,
    opts: &CheckOptions,
    no_verify: bool,
    quiet: bool,
) -> Result<Checked, Failure> {
    let progress = super::progress_bar::for_run(quiet);
    // Deep: repair acts on residue inside link and blob folders too, and restores a lost tag
    // from its newest index entry, which needs the link mtimes only a deep scan reads.
    let mut inv = scan::scan_with(
        store,
        &scan::ScanOptions {
            deep: true,
            ..Default::default()
        },
        progress.as_ref(),
    )?;
    if !no_verify {
        verify::verify(&mut inv, &VerifyOptions::default(), progress.as_ref());
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

fn render_plan(plan: &Plan) -> String {
    let mut o = String::new();
    if plan.actions.is_empty() {
        let _ = writeln!(o, "Nothing to repair.");
        return o;
    }
    let _ = writeln!(
        o,
        "Repair plan ({}):",
        plural(plan.actions.len() as u64, "action", "actions")
    );
    for a in &plan.actions {
        let what = match &a.kind {
            plan::ActionKind::Quarantine { path } => format!("quarantine {path}"),
            plan::ActionKind::WriteLink { path, digest } => format!("write {path} = {digest}"),
            plan::ActionKind::CreateDir { path } => format!("create folder {path}"),
            plan::ActionKind::MoveBlob { from, to } => format!("move {from} -> {to}"),
        };
        let _ = writeln!(
            o,
            "  {}{what}\n      {}: {}",
            if a.lossy { "[lossy] " } else { "" },
            a.code,
            a.reason
        );
    }
    o
}

fn confirm_lossy(plan: &Plan, yes: bool) -> Result<(), Failure> {
    let lossy = plan.actions.iter().filter(|a| a.lossy).count();
    if lossy == 0 || yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "{} need --yes when not on a terminal",
            plural(lossy as u64, "lossy action", "lossy actions")
        )));
    }
    eprint!(
        "Apply {} (broken tags and revisions are moved to the quarantine)? [y/N] ",
        plural(lossy as u64, "lossy action", "lossy actions")
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

/// The filesystem store: repair's applier works on a local filesystem only, for now.
fn local(located: &super::Located) -> Result<scan::Store, Failure> {
    located.store.local().cloned().ok_or_else(|| {
        Failure::Usage(format!(
            "{}: repair and undo work on filesystem stores only for now (check, du and gc read object storage)",
            located.store.location()
        ))
    })
}

pub fn run(args: RepairArgs) -> Result<i32, Failure> {
    let located = super::locate(&args.store)?;
    let store = local(&located)?;
    let opts = check_options(
        args.purge_age.as_deref(),
        &args.grace,
        args.now,
        located.registry.as_ref(),
    )?;
    super::configure_threads(args.jobs);
    let root = store.root.clone();
    let apply_opts = ApplyOptions {
        grace: opts.grace,
        now: opts.now,
    };
    let mut out = String::new();
    if args.apply {
        for run_id in apply::incomplete_runs(&root) {
            let r = apply::resume(&root, &run_id, &apply_opts)?;
            let _ = writeln!(
                out,
                "Resumed interrupted run {run_id}: {} applied.",
                plural(r.applied as u64, "more action", "more actions")
            );
        }
    }
    let before = check_store(&store, &opts, args.no_verify, args.quiet)?;
    let plan = plan::repair::plan(
        &before.inv,
        &before.findings,
        &PlanOptions {
            lossy: args.lossy,
            now: opts.now,
            purge_age: opts.purge_age,
            misplaced_content: verify::misplaced_content(&before.inv),
        },
    );
    if let Some(path) = &args.plan {
        let text = serde_json::to_string_pretty(&plan).unwrap_or_default();
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::Operational(format!("cannot write {}: {e}", path.display())))?;
    }
    out.push_str(&render_plan(&plan));
    let errors_before = errors(&before.findings).len();
    if !args.apply {
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
        super::print_stdout(&out);
        return Ok(if errors_before > 0 {
            crate::report::exit::UNCORRECTED
        } else {
            crate::report::exit::OK
        });
    }
    // Guards: never repair under a live registry unless told to.
    let mut live_reasons: Vec<String> = before
        .findings
        .iter()
        .filter(|f| matches!(f.code, Code::UploadRecent | Code::PathChanged))
        .map(|f| format!("{}: {}", f.code, f.path.as_deref().unwrap_or("")))
        .collect();
    live_reasons.extend(live::processes_using(&root));
    if !live_reasons.is_empty() && !args.force {
        super::print_stdout(&out);
        return Err(Failure::Operational(format!(
            "the registry looks live, refusing to apply (stop it or pass --force):\n  {}",
            live_reasons.join("\n  ")
        )));
    }
    confirm_lossy(&plan, args.yes)?;
    if plan.actions.is_empty() {
        super::print_stdout(&out);
        return Ok(if errors_before > 0 {
            crate::report::exit::UNCORRECTED
        } else {
            crate::report::exit::OK
        });
    }
    let outcome = apply::apply(&root, &plan, &apply_opts)?;
    let _ = writeln!(
        out,
        "\nApplied {} as run {} (undo: regfsck undo {} --run {}).",
        plural(outcome.applied as u64, "action", "actions"),
        outcome.run_id,
        root.display(),
        outcome.run_id
    );
    for (i, why) in &outcome.skipped {
        let _ = writeln!(out, "  skipped {}: {why}", plan.actions[*i].kind.path());
    }
    let after = check_store(&store, &opts, args.no_verify, true)?;
    let remaining = errors(&after.findings);
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
    let _ = writeln!(
        out,
        "\nRestart the registry now: its blob-descriptor cache still believes in moved blobs.\nGarbage collection:\n{}",
        gc_advice(&after.inv, located.store_config())
    );
    super::print_stdout(&out);
    let mut code = 0;
    if remaining.len() < errors_before {
        code |= crate::report::exit::CORRECTED;
    }
    if !remaining.is_empty() {
        code |= crate::report::exit::UNCORRECTED;
    }
    Ok(code)
}

pub fn run_undo(args: UndoArgs) -> Result<i32, Failure> {
    let located = super::locate(&args.store)?;
    let root = local(&located)?.root;
    if args.list {
        let mut out = String::new();
        for r in apply::runs(&root) {
            let _ = writeln!(out, "{}  {:>4} actions  {}", r.id, r.actions, r.state);
        }
        super::print_stdout(&out);
        return Ok(0);
    }
    let run_id = args.run.unwrap_or_default();
    if !apply::valid_run_id(&run_id) {
        return Err(Failure::Usage(format!(
            "{run_id:?} is not a regfsck run id (see regfsck undo --list)"
        )));
    }
    let o = apply::undo(&root, &run_id)?;
    super::print_stdout(&format!(
        "Undid run {run_id}: {} actions reversed. Restart the registry.\n",
        o.restored
    ));
    Ok(0)
}

//! `regfsck gc`: what the registry's own `garbage-collect` would do to this store, per version and
//! mode, where 2.8 and 3.x differ, and whether running it now would abort or lose tagged data.
//! Never writes.

use super::{Failure, Format, StoreArgs};
use crate::analysis::gc::{self, Prediction, Version};
use crate::analysis::{checks, reach};
use crate::model::finding::{Code, Finding};
use crate::report::advice::{self, GcRun};
use crate::report::human::{plural, size};
use crate::report::ReportFinding;
use crate::store::scan;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Judge exactly the run of this version: 2.8 (registry:2, Debian's docker-registry) or 3
    /// (registry:3) — `garbage-collect`, or with -m `garbage-collect --delete-untagged`; the exit
    /// status is 0 when that run is safe. Without it: both versions (and both modes unless -m).
    #[arg(long, value_name = "VERSION")]
    pub registry_version: Option<String>,
    /// The run with `--delete-untagged` (-m), as the registry's own flag.
    #[arg(long, short = 'm')]
    pub delete_untagged: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// List every eligible blob and manifest.
    #[arg(long)]
    pub all: bool,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Threads for the scan and the predictions (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub io: super::IoArgs,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
    /// Sweep: remove unreferenced blobs (and with -m untagged revisions, index-aware) and the
    /// `_layers` links naming them, into the quarantine (regfsck's own GC, not the registry's).
    #[arg(long, conflicts_with_all = ["registry_version", "metrics"])]
    pub apply: bool,
    /// Show the plan of regfsck's own sweep (what --apply would do) instead of predicting the
    /// registry's garbage-collect.
    #[arg(long, conflicts_with_all = ["registry_version", "metrics"])]
    pub sweep: bool,
    /// With --apply: delete instead of quarantining (journalled, but it CANNOT be undone).
    #[arg(long, requires = "apply")]
    pub purge: bool,
    /// Confirm --purge without a prompt.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Apply even though the registry looks live. The grace window still holds.
    #[arg(long)]
    pub force: bool,
    /// With --apply or --sweep: never remove anything modified more recently than this.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub grace: String,
    /// Evaluate ages as of this time (unix seconds), for reproducible runs.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
}

/// One garbage collection judged: safe to run now or not, and the command that runs it.
#[derive(Serialize)]
struct Verdict {
    registry_version: Version,
    delete_untagged: bool,
    safe: bool,
    /// The command line, naming both binaries (`registry`, Debian's `docker-registry`).
    command: String,
}

#[derive(Serialize)]
struct GcReport<'a> {
    schema: &'static str,
    root: String,
    predictions: &'a [Prediction],
    runs: Vec<Verdict>,
    hazards: Vec<ReportFinding>,
    next_steps: Vec<String>,
    exit_code: i32,
}

/// One prediction with what makes it unsafe.
struct Judged {
    run: GcRun,
    hazards: Vec<Finding>,
    /// Unsafe only because 2.8's `--delete-untagged` deletes the untagged children of tagged
    /// indexes (nothing to repair: the run itself is the problem).
    child_trap_only: bool,
}

fn render(
    root: &str,
    preds: &[Prediction],
    judged: &[Judged],
    next: &[String],
    all: bool,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "regfsck gc {root}");
    let limit = if all { usize::MAX } else { 10 };
    for (p, j) in preds.iter().zip(judged) {
        let _ = writeln!(o);
        if let Some(c) = &p.cannot_predict {
            let _ = writeln!(o, "{}: CANNOT PREDICT — {}", p.label(), c.reason);
            for path in &c.paths {
                let _ = writeln!(o, "  {path}");
            }
            continue;
        }
        let verdict = if j.hazards.is_empty() {
            "safe to run now"
        } else {
            "NOT safe to run now"
        };
        match &p.abort {
            Some(a) => {
                let _ = writeln!(
                    o,
                    "{}: {verdict}: it would {} — {}{}",
                    p.label(),
                    if p.panic { "PANIC" } else { "ABORT" },
                    a.reason,
                    a.path
                        .as_ref()
                        .map(|x| format!(" (at {x})"))
                        .unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "{}: {verdict}: it deletes {} ({}) and {}{}",
                    p.label(),
                    plural(p.eligible_blobs.len() as u64, "blob", "blobs"),
                    size(p.freed_bytes),
                    plural(p.eligible_manifests.len() as u64, "manifest", "manifests"),
                    if p.layer_links_deleted.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", and {}",
                            plural(
                                p.layer_links_deleted.len() as u64,
                                "layer link",
                                "layer links"
                            )
                        )
                    }
                );
                for m in p.eligible_manifests.iter().take(limit) {
                    let _ = writeln!(o, "  manifest {} {}", m.repo, m.digest);
                }
                for b in p.eligible_blobs.iter().take(limit) {
                    let _ = writeln!(o, "  blob {b}");
                }
                let hidden = p.eligible_blobs.len().saturating_sub(limit)
                    + p.eligible_manifests.len().saturating_sub(limit);
                if hidden > 0 {
                    let _ = writeln!(o, "  … and {hidden} more (--all lists everything)");
                }
            }
        }
        if !p.invisible_repos.is_empty() {
            let _ = writeln!(
                o,
                "  repositories its catalog walk cannot see: {}",
                p.invisible_repos.join(", ")
            );
        }
        for f in &j.hazards {
            let _ = writeln!(
                o,
                "  {}: {}: {}",
                f.code,
                f.path.as_deref().unwrap_or("(whole store)"),
                f.message
            );
        }
    }
    // Where the versions disagree, mode by mode.
    for m in [false, true] {
        let a = preds
            .iter()
            .find(|p| p.registry_version == Version::V2_8 && p.delete_untagged == m);
        let b = preds
            .iter()
            .find(|p| p.registry_version == Version::V3 && p.delete_untagged == m);
        let (Some(a), Some(b)) = (a, b) else { continue };
        if a.cannot_predict.is_some() || b.cannot_predict.is_some() {
            continue;
        }
        let (ab, am, aa) = a.dry_run_view();
        let (bb, bm, ba) = b.dry_run_view();
        if (ab.clone(), am.clone(), aa) == (bb.clone(), bm.clone(), ba) {
            continue;
        }
        let _ = writeln!(
            o,
            "\n2.8 and 3.x differ{}:",
            if m { " with --delete-untagged" } else { "" }
        );
        if aa != ba {
            let _ = writeln!(o, "  only {} aborts", if aa { "2.8" } else { "3.x" });
        }
        let only = |x: &BTreeSet<String>, y: &BTreeSet<String>| x.difference(y).count();
        let _ = writeln!(
            o,
            "  blobs deleted only by 2.8: {}, only by 3.x: {}",
            only(&ab, &bb),
            only(&bb, &ab)
        );
        let onlym = |x: &BTreeSet<(String, String)>, y: &BTreeSet<(String, String)>| {
            x.difference(y).count()
        };
        let _ = writeln!(
            o,
            "  manifests deleted only by 2.8: {}, only by 3.x: {}",
            onlym(&am, &bm),
            onlym(&bm, &am)
        );
    }
    if !next.is_empty() {
        let _ = writeln!(o, "\nNext:");
        for s in next {
            let _ = writeln!(o, "  - {s}");
        }
    }
    o
}

/// What to do, run by run: the exact command of each safe run; for unsafe ones, whether
/// `regfsck repair` fixes the cause (the planner is asked) or what else to do.
fn next_steps(
    judged: &[Judged],
    repairable: &[(Code, bool)],
    root: &std::path::Path,
    words: &str,
    config: Option<&std::path::Path>,
) -> Vec<String> {
    let r = words;
    let mut steps = Vec::new();
    let safe: Vec<&Judged> = judged.iter().filter(|j| j.hazards.is_empty()).collect();
    let trapped: Vec<&Judged> = judged.iter().filter(|j| j.child_trap_only).collect();
    let broken: Vec<&Judged> = judged
        .iter()
        .filter(|j| !j.hazards.is_empty() && !j.child_trap_only)
        .collect();
    for j in &safe {
        steps.push(format!(
            "{} is safe now: stop the registry (or make it read-only), then run {}.",
            j.run.label(),
            advice::gc_command(config, root, j.run.delete_untagged)
        ));
    }
    if !trapped.is_empty() {
        let v3_m_safe = safe
            .iter()
            .any(|j| j.run.version == Version::V3 && j.run.delete_untagged);
        steps.push(format!(
            "Do not run {}: it deletes the untagged child manifests of multi-arch images (revision-untagged-child) and breaks their tags; there is nothing to repair — run garbage-collect without --delete-untagged{}.",
            trapped.iter().map(|j| j.run.label()).collect::<Vec<_>>().join(", "),
            if v3_m_safe { ", or registry 3's --delete-untagged, which keeps them" } else { "" }
        ));
    }
    if !broken.is_empty() {
        let labels = broken
            .iter()
            .map(|j| j.run.label())
            .collect::<Vec<_>>()
            .join(", ");
        let mut apply: Vec<&str> = repairable
            .iter()
            .filter(|x| !x.1)
            .map(|x| x.0.as_str())
            .collect();
        let mut lossy: Vec<&str> = repairable
            .iter()
            .filter(|x| x.1)
            .map(|x| x.0.as_str())
            .collect();
        apply.dedup();
        lossy.dedup();
        if !apply.is_empty() {
            steps.push(format!(
                "Do not run {labels} yet: `regfsck repair {r}` plans fixes for the errors behind it ({}); review it, run it with --apply, then re-run `regfsck gc {r}`.",
                apply.join(", ")
            ));
        } else if !lossy.is_empty() {
            steps.push(format!(
                "Do not run {labels} yet: only `regfsck repair {r} --lossy` acts on the errors behind it ({}), by dropping broken references; re-push the images if you can, then re-run `regfsck gc {r}`.",
                lossy.join(", ")
            ));
        } else {
            steps.push(format!(
                "Do not run {labels} yet: `regfsck repair` has no action for what causes it; `regfsck check {r}` lists every finding with its fix."
            ));
        }
    }
    steps
}

pub fn run(args: GcArgs) -> Result<i32, Failure> {
    if args.apply || args.sweep {
        let guard = super::cleanup::GuardArgs {
            apply: args.apply,
            purge: args.purge,
            yes: args.yes,
            force: args.force,
            grace: args.grace.clone(),
            format: args.format,
            all: args.all,
            quiet: args.quiet,
            now: args.now,
            io: args.io.clone(),
        };
        return super::cleanup::run_gc(&args.store, args.delete_untagged, &guard);
    }
    let started = std::time::Instant::now();
    args.metrics.validate()?;
    let exact = args.registry_version.is_some();
    let versions: Vec<Version> = match &args.registry_version {
        None => Version::ALL.to_vec(),
        Some(v) => vec![Version::parse(v).ok_or_else(|| {
            Failure::Usage(format!(
                "--registry-version: unknown version {v:?}: use 2.8 or 3"
            ))
        })?],
    };
    // The registry's own flags: with a version named, exactly the run that command line makes.
    let modes: Vec<bool> = match (args.delete_untagged, exact) {
        (true, _) => vec![true],
        (false, true) => vec![false],
        (false, false) => vec![false, true],
    };
    let located = super::locate(&args.store)?;
    super::configure_threads(args.jobs);
    let progress = super::progress_bar::for_run(args.quiet);
    let inv = located
        .store
        .scan(
            &scan::ScanOptions {
                io_depth: args.io.depth(),
                ..Default::default()
            },
            progress.as_ref(),
        )
        .map_err(super::scan_failure)?;
    let mut preds = Vec::new();
    for v in &versions {
        for m in &modes {
            preds.push(gc::predict(&inv, *v, *m));
        }
    }
    let reach = reach::compute(&inv);
    let judged: Vec<Judged> = preds
        .iter()
        .map(|p| {
            let one = std::slice::from_ref(p);
            let hazards = gc::hazards_with(&inv, &reach, one, true);
            let child_trap_only =
                !hazards.is_empty() && gc::hazards_with(&inv, &reach, one, false).is_empty();
            Judged {
                run: GcRun {
                    version: p.registry_version,
                    delete_untagged: p.delete_untagged,
                },
                hazards,
                child_trap_only,
            }
        })
        .collect();
    let unsafe_any = judged.iter().any(|j| !j.hazards.is_empty());
    // What the repair planner would do about the store's errors (only needed when a run is
    // unsafe for a reason other than the 2.8 child trap): asked for the errors and, through
    // them, for the aborts they cause.
    let hazards: Vec<(&Finding, bool)> = judged
        .iter()
        .flat_map(|j| j.hazards.iter().map(move |f| (f, j.child_trap_only)))
        .collect();
    let mut fixes: Vec<String> = hazards
        .iter()
        .map(|(f, trap)| {
            if *trap {
                "run garbage-collect without --delete-untagged (or registry 3's --delete-untagged, which keeps index children): 2.8 deletes the untagged children of multi-arch images".to_string()
            } else {
                advice::manual(f.code, inv.has_repositories_dir)
            }
        })
        .collect();
    let mut repairable: Vec<(Code, bool)> = Vec::new();
    if hazards.iter().any(|(_, trap)| !trap) {
        let opts = super::check::check_options(None, "10m", None, located.registry.as_ref())?;
        let errors: Vec<Finding> = checks::run_with(&inv, &reach, &opts)
            .into_iter()
            .filter(|f| f.code.default_severity() == crate::model::finding::Severity::Error)
            .collect();
        let plan_opts = crate::plan::PlanOptions {
            lossy: false,
            now: opts.now,
            purge_age: opts.purge_age,
            grace: opts.grace,
            follow_ups: false,
            misplaced_content: located.store.misplaced_content(&inv),
        };
        let all: Vec<Finding> = hazards
            .iter()
            .map(|(f, _)| (*f).clone())
            .chain(errors.iter().cloned())
            .collect();
        let hints = advice::repair_hints(&inv, &all, &plan_opts);
        for (i, (f, trap)) in hazards.iter().enumerate() {
            if !trap {
                fixes[i] = advice::fix_text(
                    f,
                    hints[i].as_ref(),
                    &super::store_words(&args.store, &located),
                    inv.has_repositories_dir,
                );
            }
        }
        repairable = hints[hazards.len()..]
            .iter()
            .zip(&errors)
            .filter_map(|(h, f)| h.as_ref().map(|h| (f.code, h.lossy)))
            .collect();
        repairable.sort();
        repairable.dedup();
    }
    let next = next_steps(
        &judged,
        &repairable,
        &inv.root,
        &super::store_words(&args.store, &located),
        located.config_path.as_deref(),
    );
    let mut exit_code = if unsafe_any {
        crate::report::exit::UNCORRECTED
    } else {
        crate::report::exit::OK
    };
    let root = inv.root.display().to_string();
    let info = super::metrics::run_info("gc", &root, started, exit_code);
    let safe: Vec<bool> = judged.iter().map(|j| j.hazards.is_empty()).collect();
    if args
        .metrics
        .write(|| crate::report::metrics::gc(&info, &preds, &safe))
        .is_err()
    {
        exit_code |= crate::report::exit::OPERATIONAL;
    }
    let text = match args.format {
        Format::Json => {
            let doc = GcReport {
                schema: "regfsck.gc/1",
                root,
                predictions: &preds,
                runs: judged
                    .iter()
                    .map(|j| Verdict {
                        registry_version: j.run.version,
                        delete_untagged: j.run.delete_untagged,
                        safe: j.hazards.is_empty(),
                        command: advice::gc_command(
                            located.config_path.as_deref(),
                            &inv.root,
                            j.run.delete_untagged,
                        )
                        .replace('`', ""),
                    })
                    .collect(),
                hazards: hazards
                    .iter()
                    .zip(fixes)
                    .map(|((f, _), fix)| {
                        ReportFinding::new((*f).clone(), f.code.default_severity(), fix)
                    })
                    .collect(),
                next_steps: next,
                exit_code,
            };
            super::print_json(&doc);
            return Ok(exit_code);
        }
        Format::Human => render(&root, &preds, &judged, &next, args.all),
    };
    super::print_stdout(&text);
    Ok(exit_code)
}

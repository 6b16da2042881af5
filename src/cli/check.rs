//! `regfsck check`: scan, verify, run every check and the GC hazard analysis, report. Never writes
//! to the store.

use super::{Failure, Format, StoreArgs};
use crate::analysis::checks;
use crate::analysis::checks::CheckOptions;
use crate::analysis::policy::Policy;
use crate::report::{self, human};
use crate::store::verify::VerifyOptions;
use crate::store::{config, scan};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Structure only: do not hash blob contents.
    #[arg(long)]
    pub no_verify: bool,
    /// Also list the inside of every link and blob folder (foreign files, temp residue there);
    /// by default each `link` is read and each `data` stat'ed directly, as the registry does.
    #[arg(long)]
    pub deep: bool,
    /// Hashing threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub io: super::IoArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Show every finding (default: the first --limit per code).
    #[arg(long)]
    pub all: bool,
    /// Findings shown per code in human output.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: usize,
    /// Override a code's severity: CODE=error|warn|info (repeatable).
    #[arg(long = "severity", value_name = "CODE=LEVEL")]
    pub severity: Vec<String>,
    /// Warnings count as errors for the exit status.
    #[arg(long)]
    pub strict: bool,
    /// File of known paths (relative to docker/registry/v2; trailing / for folders) or digests to skip.
    #[arg(long, value_name = "FILE")]
    pub skip_list: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Upload age after which an unfinished upload is stale (default: the config's
    /// uploadpurging.age, else 168h).
    #[arg(long, value_name = "DURATION")]
    pub purge_age: Option<String>,
    /// Objects younger than this mean the registry looks live.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub grace: String,
    /// Hash only a deterministic shard (`n/t`: runs 1/t … t/t cover everything) or a random share (`x%`).
    #[arg(long, value_name = "n/t|x%")]
    pub verify_subset: Option<String>,
    /// Stop hashing cleanly after this long (e.g. 6h) and report the coverage reached.
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// Hash only blobs never verified, changed since, or verified longer ago than this (uses the state file).
    #[arg(long, value_name = "DURATION")]
    pub reverify_after: Option<String>,
    /// The incremental state file (default: $XDG_STATE_HOME/regfsck/<store>.state).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Evaluate ages as of this time (unix seconds), for reproducible reports.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
}

fn duration(flag: &str, text: &str) -> Result<Duration, Failure> {
    crate::model::duration::parse(text).map_err(|e| Failure::Usage(format!("{flag}: {e}")))
}

/// Options shared by every command that runs the checks.
pub fn check_options(
    purge_age: Option<&str>,
    grace: &str,
    now: Option<i64>,
    registry: Option<&config::RegistryConfig>,
) -> Result<CheckOptions, Failure> {
    let purge = match purge_age {
        Some(t) => duration("--purge-age", t)?,
        None => registry
            .and_then(|c| c.purge_age)
            .unwrap_or(config::DEFAULT_PURGE_AGE),
    };
    let now = now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    Ok(CheckOptions {
        now,
        purge_age: purge.as_secs() as i64,
        grace: duration("--grace", grace)?.as_secs() as i64,
    })
}

pub fn policy(
    severity: &[String],
    strict: bool,
    skip: Option<&PathBuf>,
) -> Result<Policy, Failure> {
    let mut p = Policy::default();
    p.strict = strict;
    for s in severity {
        p.add_override(s).map_err(Failure::Usage)?;
    }
    if let Some(path) = skip {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::Usage(format!("cannot read skip list {}: {e}", path.display()))
        })?;
        p.add_skip_list(&text).map_err(Failure::Usage)?;
    }
    Ok(p)
}

/// The `--state` file: an explicit one must be creatable where it is named.
fn state_file(args: &CheckArgs, root: &std::path::Path) -> Result<PathBuf, Failure> {
    match &args.state {
        None => Ok(crate::store::state::default_path(root)),
        Some(p) => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !dir.is_dir() {
                return Err(Failure::Usage(format!(
                    "--state {}: the folder {} does not exist",
                    p.display(),
                    dir.display()
                )));
            }
            Ok(p.clone())
        }
    }
}

pub fn run(args: CheckArgs) -> Result<i32, Failure> {
    let started = std::time::Instant::now();
    let policy = policy(&args.severity, args.strict, args.skip_list.as_ref())?;
    args.metrics.validate()?;
    let subset = args
        .verify_subset
        .as_deref()
        .map(crate::store::state::SubsetSpec::parse)
        .transpose()
        .map_err(Failure::Usage)?;
    let max_duration = match &args.max_duration {
        Some(t) => Some(duration("--max-duration", t)?),
        None => None,
    };
    let window = match &args.reverify_after {
        Some(t) => Some(duration("--reverify-after", t)?.as_secs() as i64),
        None => None,
    };
    let located = super::locate(&args.store)?;
    let opts = check_options(
        args.purge_age.as_deref(),
        &args.grace,
        args.now,
        located.registry.as_ref(),
    )?;
    let use_state = window.is_some() || args.state.is_some();
    let state_root = located.store.state_root();
    let state_path = state_file(&args, &state_root)?;
    super::configure_threads(args.jobs);
    let interrupt = super::install_interrupt();
    let progress = super::progress_bar::for_run(args.quiet);

    let mut run_warnings = Vec::new();
    let (mut state, warning) = if use_state {
        crate::store::state::State::load(&state_path, &state_root)
    } else {
        (crate::store::state::State::default(), None)
    };
    if let Some(w) = warning {
        eprintln!("regfsck: warning: {w}");
        run_warnings.push(w);
    }

    let mut inv = located
        .store
        .scan(
            &scan::ScanOptions {
                deep: args.deep,
                cancel: Some(interrupt.clone()),
                io_depth: args.io.depth(),
                ..Default::default()
            },
            progress.as_ref(),
        )
        .map_err(super::scan_failure)?;
    let mut verification = report::Verification {
        no_verify: args.no_verify,
        subset: args.verify_subset.clone(),
        max_duration_seconds: max_duration.map(|d| d.as_secs()),
        reverify_after_seconds: window,
        state_file: use_state.then(|| state_path.display().to_string()),
        ..Default::default()
    };
    let mut coverage = None;
    if !args.no_verify {
        let seed = opts.now as u64 ^ std::process::id() as u64;
        let prior = state.clone();
        let now = opts.now;
        // One predicate, asked once to count the selection and once by the hashing itself.
        let select: std::sync::Arc<dyn Fn(&crate::model::inventory::Blob) -> bool + Send + Sync> =
            std::sync::Arc::new(move |b| {
                subset.is_none_or(|s| s.selects(&b.digest, seed))
                    && window.is_none_or(|w| prior.needs_hash(b, now, w))
            });
        let selected: Vec<bool> = inv.blobs.iter().map(|b| select(b)).collect();
        for (b, _) in inv.blobs.iter().zip(&selected).filter(|(_, s)| **s) {
            verification.selected_blobs += 1;
            verification.selected_bytes += b.size;
        }
        let vopts = VerifyOptions {
            cancel: Some(interrupt.clone()),
            deadline: max_duration.map(|d| started + d),
            select: Some(Box::new(move |b| select(b))),
            io_depth: args.io.depth(),
        };
        located.store.verify(&mut inv, &vopts, progress.as_ref());
        for (i, b) in inv.blobs.iter().enumerate() {
            if selected[i] && inv.verify_of(i) == &crate::model::inventory::Verify::NotChecked {
                verification.left_blobs += 1;
                verification.left_bytes += b.size;
            }
        }
        if inv.stats.hash_incomplete {
            verification.stopped = Some(if interrupt.load(std::sync::atomic::Ordering::SeqCst) {
                "interrupted"
            } else {
                "time-limit"
            });
        }
        if use_state {
            state.record(&inv, opts.now);
            if let Err(e) = state.save(&state_path) {
                let w = format!("cannot save state file {}: {e}", state_path.display());
                eprintln!("regfsck: warning: {w}");
                run_warnings.push(w);
            }
            let w = window.unwrap_or(i64::MAX / 4);
            let (blobs, bytes) = state.coverage(&inv, opts.now, w);
            coverage = Some(report::Coverage {
                blobs,
                bytes,
                window_seconds: window,
            });
        }
    }
    let covered = |i: usize, b: &crate::model::inventory::Blob| {
        use crate::model::inventory::Verify;
        matches!(inv.verify_of(i), Verify::Ok | Verify::Mismatch(_))
            || (use_state
                && !args.no_verify
                && !state.needs_hash(b, opts.now, window.unwrap_or(i64::MAX / 4)))
    };
    let mut unverified_shards = std::collections::BTreeSet::new();
    for (i, b) in inv.blobs.iter().enumerate() {
        if covered(i, b) {
            verification.verified_blobs += 1;
            verification.verified_bytes += b.size;
        } else if let Some(crate::store::state::SubsetSpec::Shard { t, .. }) = subset {
            // The shard of a blob: the one of 1..=t that selects it.
            if let Some(k) = (1..=t)
                .find(|&k| crate::store::state::SubsetSpec::Shard { n: k, t }.selects(&b.digest, 0))
            {
                unverified_shards.insert(k);
            }
        }
    }
    if let Some(crate::store::state::SubsetSpec::Shard { n, t }) = subset {
        if !use_state {
            // Nothing records the other shards' runs: all of them remain.
            unverified_shards.extend((1..=t).filter(|&k| k != n));
        }
        verification.remaining_shards = unverified_shards
            .iter()
            .map(|k| format!("{k}/{t}"))
            .collect();
    }
    let interrupted = interrupt.load(std::sync::atomic::Ordering::SeqCst);
    let findings = checks::audit(&inv, &opts);
    let misplaced = located.store.misplaced_content(&inv);
    let plan_opts = crate::plan::PlanOptions {
        lossy: false,
        now: opts.now,
        purge_age: opts.purge_age,
        grace: opts.grace,
        follow_ups: false,
        misplaced_content: misplaced,
    };
    let mut repeat_flags = Vec::new();
    if let Some(p) = &args.state {
        repeat_flags.push(format!("--state {}", report::advice::shell_word(p)));
    }
    if let Some(w) = &args.reverify_after {
        repeat_flags.push(format!("--reverify-after {w}"));
    }
    let mut report = report::build(
        &inv,
        findings,
        report::Context {
            policy: &policy,
            interrupted,
            config: located.config_path.as_deref(),
            plan: &plan_opts,
            verification,
            repeat_flags,
            run_warnings,
            store_words: super::store_words(&args.store, &located),
        },
    );
    report.summary.coverage = coverage;
    for w in &report.run_warnings {
        if w.starts_with("skip list") {
            eprintln!("regfsck: warning: {w}");
        }
    }
    // The inventory is done with: its memory goes back before the output is produced.
    drop(inv);
    report.summary.wall_seconds = started.elapsed().as_secs_f64();
    let info = super::metrics::run_info("check", &report.root, started, report.exit_code);
    if let Err(w) = args
        .metrics
        .write(|| crate::report::metrics::check(&info, &report, &|c| policy.severity(c)))
    {
        report.run_warnings.push(w);
        report.exit_code |= report::exit::OPERATIONAL;
    }
    let text = match args.format {
        Format::Json => {
            super::print_json(&report);
            return Ok(report.exit_code);
        }
        Format::Human => human::render(
            &report,
            &human::HumanOptions {
                per_code: (!args.all).then_some(args.limit),
            },
        ),
    };
    super::print_stdout(&text);
    Ok(report.exit_code)
}

//! `regfsck rm`, `regfsck prune`, `regfsck gc --apply` and `regfsck purge`: cleanup plans shown by
//! default and executed with `--apply` by the same journalled applier as repair (same quarantine,
//! same `undo --run ID`); `--purge` and `regfsck purge` delete quarantined files for good.

use super::check::check_options;
use super::repair::{
    apply_options, counts_text, describe, guard_processes, json_actions, live_guard, mark,
    resume_incomplete, status_text, target, JsonAction, JsonResumed,
};
use super::{Failure, Format, StoreArgs};
use crate::analysis::reach::{self, Reach};
use crate::analysis::retention::{self, Facts, Glob, Policy, RepoDecision, RuleSet};
use crate::model::finding::Code;
use crate::model::inventory::Inventory;
use crate::model::pushed::PushTimes;
use crate::model::timefmt::format_rfc3339;
use crate::plan::apply::{self, ApplyOptions, Status};
use crate::plan::cleanup::{self, Ref};
use crate::plan::journal::Counts;
use crate::plan::target::Target;
use crate::plan::Plan;
use crate::report::exit;
use crate::report::human::{plural, size};
use crate::store::{scan, Storage};
use clap::{ArgGroup, Args};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

/// The flags every cleanup command shares with `repair`.
#[derive(Args, Debug, Clone)]
pub struct GuardArgs {
    /// Execute the plan (default: only print it): everything removed moves into the quarantine,
    /// and `regfsck undo ROOT --run ID` puts it back.
    #[arg(long)]
    pub apply: bool,
    /// Delete instead of quarantining (with --apply): still journalled, but it CANNOT be undone.
    #[arg(long, requires = "apply")]
    pub purge: bool,
    /// Confirm --purge without a prompt.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Apply even though the registry looks live (a registry process serving the store, a recent
    /// upload). The grace window still holds.
    #[arg(long)]
    pub force: bool,
    /// Never remove anything pushed or modified more recently than this (a multi-arch push
    /// uploads its children untagged before the index).
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub grace: String,
    /// Output: human, or json (regfsck.cleanup/1; docs/report-format.md).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// List every action (default: the first 50).
    #[arg(long)]
    pub all: bool,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Evaluate ages as of this time (unix seconds), for reproducible runs.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
    #[command(flatten)]
    pub io: super::IoArgs,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// ROOT then what to remove; with --config the store is the config's and every word is a
    /// REF. ROOT: the registry's rootdirectory (holding docker/registry/v2), the v2 folder
    /// itself, or s3://BUCKET[/ROOTDIRECTORY]. REF: REPO (the whole repository; shared blobs
    /// stay), REPO:TAG (the tag; the revision stays, untagged) or REPO@DIGEST (the revision and
    /// every tag naming it).
    #[arg(required = true, value_name = "ROOT|REF")]
    pub words: Vec<String>,
    /// The registry's config.yml: the store is its storage (filesystem or s3), and every
    /// positional word is a REF.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// For s3://: the S3 endpoint (path-style requests), e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// For s3://: the bucket's region (default us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("rules").multiple(true).required(true)
    .args(["untagged", "older_than", "keep_last", "tags", "policy", "empty"])))]
pub struct PruneArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Remove revisions reachable from no tag (never a child of a kept index, a referrer of a
    /// kept manifest, or anything younger than --grace).
    #[arg(long)]
    pub untagged: bool,
    /// Remove selected tags pushed longer ago than this (e.g. 30d).
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Keep the newest N selected tags of each repository, by push time.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_last: Option<i64>,
    /// Select only tags matching this regex (matched against the whole tag).
    #[arg(long, value_name = "REGEX")]
    pub tags: Option<String>,
    /// Never remove tags matching this regex (matched against the whole tag).
    #[arg(long, value_name = "REGEX")]
    pub keep_tags: Option<String>,
    /// Only repositories matching this glob (`*` within a path component, `**` across).
    #[arg(long, value_name = "GLOB")]
    pub repo: Option<String>,
    /// Also remove repositories left without any tag or revision, and the folders that leaves
    /// empty.
    #[arg(long)]
    pub empty: bool,
    /// Rules per repository glob from this file (regfsck's YAML, or an AWS ECR lifecycle policy
    /// JSON; docs/cleanup.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["untagged", "older_than", "keep_last", "tags", "keep_tags"])]
    pub policy: Option<PathBuf>,
    /// Use push times even though they look destroyed (every tag within a few seconds).
    #[arg(long)]
    pub force_ages: bool,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["run", "all", "older_than"])))]
pub struct PurgeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Purge this run (see `regfsck undo --list`).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Purge every settled run.
    #[arg(long)]
    pub all: bool,
    /// Purge settled runs that began longer ago than this (e.g. 7d).
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Confirm without a prompt.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Output: human, or json (regfsck.purge/1).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Evaluate ages as of this time (unix seconds), for reproducible runs.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
}

/// What a planner hands back: the plan, and the per-repository decisions when it made some.
struct Planned {
    plan: Plan,
    decisions: Vec<RepoDecision>,
}

/// The store as the planners see it.
struct Seen {
    inv: Inventory,
    reach: Reach,
    times: PushTimes,
}

fn see(store: &dyn Storage, quiet: bool, io: &super::IoArgs) -> Result<Seen, Failure> {
    let progress = super::progress_bar::for_run(quiet);
    let opts = scan::ScanOptions {
        io_depth: io.depth(),
        link_times: true,
        ..Default::default()
    };
    let inv = store
        .scan(&opts, progress.as_ref())
        .map_err(super::scan_failure)?;
    let reach = reach::compute(&inv);
    let times = store.push_times(&inv);
    Ok(Seen { inv, reach, times })
}

#[derive(Serialize)]
struct JsonCleanup<'a> {
    schema: &'static str,
    command: &'a str,
    root: String,
    /// false: a preview (statuses say what would happen now).
    applied: bool,
    purged: bool,
    resumed: Vec<JsonResumed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    repositories: Vec<JsonRepo<'a>>,
    actions: Vec<JsonAction<'a>>,
    counts: Counts,
    run: Option<String>,
    /// Bytes of blobs the plan removes or leaves unreferenced.
    reclaimable_bytes: u64,
    reclaimable_blobs: usize,
    /// Bytes of blobs removed by this run (moved into the quarantine, or deleted with --purge).
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_bytes: Option<u64>,
    /// Bytes deleted from disk (with --purge).
    #[serde(skip_serializing_if = "Option::is_none")]
    freed_bytes: Option<u64>,
}

#[derive(Serialize)]
struct JsonRepo<'a> {
    name: &'a str,
    policy: &'a str,
    /// Bytes of the reclaimable blobs this repository referenced.
    reclaimable_bytes: u64,
    tags: Vec<JsonTag<'a>>,
    revisions: Vec<JsonRev<'a>>,
}

#[derive(Serialize)]
struct JsonTag<'a> {
    tag: &'a str,
    digest: Option<String>,
    pushed: Option<String>,
    remove: bool,
    rule: &'a str,
}

#[derive(Serialize)]
struct JsonRev<'a> {
    digest: String,
    pushed: Option<String>,
    remove: bool,
    rule: &'a str,
}

fn json_repos<'a>(
    decisions: &'a [RepoDecision],
    per_repo: &std::collections::BTreeMap<&str, u64>,
) -> Vec<JsonRepo<'a>> {
    decisions
        .iter()
        .map(|d| JsonRepo {
            name: &d.name,
            policy: &d.policy,
            reclaimable_bytes: per_repo.get(d.name.as_str()).copied().unwrap_or(0),
            tags: d
                .tags
                .iter()
                .map(|t| JsonTag {
                    tag: &t.tag,
                    digest: t.digest.as_ref().map(ToString::to_string),
                    pushed: t.pushed.map(|p| format_rfc3339(p.at)),
                    remove: t.remove,
                    rule: &t.rule,
                })
                .collect(),
            revisions: d
                .revisions
                .iter()
                .map(|r| JsonRev {
                    digest: r.digest.to_string(),
                    pushed: r.pushed.map(format_rfc3339),
                    remove: r.remove,
                    rule: &r.rule,
                })
                .collect(),
        })
        .collect()
}

/// The per-repository table of a prune: what stays, what goes, and the rule that decided.
fn render_decisions(
    decisions: &[RepoDecision],
    per_repo: &std::collections::BTreeMap<&str, u64>,
    o: &mut String,
) {
    for d in decisions {
        if d.tags.is_empty() && d.revisions.is_empty() {
            continue;
        }
        let bytes = per_repo.get(d.name.as_str()).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "{} ({}): {} become reclaimable",
            d.name,
            d.policy,
            size(bytes)
        );
        for t in &d.tags {
            let _ = writeln!(
                o,
                "  {:<6} {:<24} {:<20} {}",
                if t.remove { "GOES" } else { "keeps" },
                t.tag,
                t.pushed
                    .map(|p| format_rfc3339(p.at))
                    .unwrap_or_else(|| "push time unknown".into()),
                t.rule
            );
        }
        for r in &d.revisions {
            let _ = writeln!(
                o,
                "  {:<6} @{} {}",
                if r.remove { "GOES" } else { "keeps" },
                r.digest.short(),
                r.rule
            );
        }
    }
}

fn render_actions(plan: &Plan, preview: &[Option<Status>], all: bool, o: &mut String) {
    let limit = if all { usize::MAX } else { 50 };
    for (a, s) in plan.actions.iter().zip(preview).take(limit) {
        let _ = writeln!(
            o,
            "  {}{}\n      {}",
            mark(s.as_ref()),
            describe(&a.kind),
            a.reason
        );
        if let Some(text) = s.as_ref().and_then(status_text) {
            let _ = writeln!(o, "      {text}");
        }
    }
    if plan.actions.len() > limit {
        let _ = writeln!(
            o,
            "  … and {} more (--all lists every action)",
            plan.actions.len() - limit
        );
    }
}

/// Ask before deleting for good (a TTY), or require --yes.
fn confirm_purge(yes: bool, what: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "{what} cannot be undone; pass --yes to confirm when not on a terminal"
        )));
    }
    eprint!("{what} cannot be undone. Continue? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::Usage("not confirmed; nothing was changed".into()))
    }
}

/// Uploads modified within the grace window, and (object storage) multipart uploads begun
/// within it: someone is pushing.
fn recent_uploads(inv: &Inventory, now: i64, grace: i64) -> Vec<String> {
    let folders = inv
        .repos
        .iter()
        .flat_map(|r| r.uploads.iter().map(move |u| (r, u)))
        .filter(|(_, u)| u.mtime > now - grace)
        .map(|(r, u)| {
            format!(
                "{}: {}",
                Code::UploadRecent,
                crate::model::layout::upload_dir(&r.name, &u.uuid)
            )
        });
    let multipart = inv
        .multipart_uploads
        .iter()
        .filter(|m| m.initiated > now - grace)
        .map(|m| {
            format!(
                "{}: {} (multipart upload {})",
                Code::UploadRecent,
                m.path,
                m.upload_id
            )
        });
    folders.chain(multipart).collect()
}

/// Bytes of the blob folders among the applied actions.
fn blob_bytes(inv: &Inventory, plan: &Plan, statuses: &[Status]) -> u64 {
    plan.actions
        .iter()
        .zip(statuses)
        .filter(|(a, s)| a.code == cleanup::GC_BLOB && **s == Status::Applied)
        .filter_map(|(a, _)| {
            let p = a.kind.path();
            match crate::model::layout::parse_path(p) {
                crate::model::layout::Parsed::BlobDir(d) => inv.blob(&d).map(|b| b.size),
                _ => None,
            }
        })
        .sum()
}

/// Plan, show, and with --apply execute one cleanup command, on whatever medium the store is
/// (the filesystem applier, or the journalled object-storage one). `words` names the store in
/// advice as this run's own arguments did.
fn execute(
    command: &'static str,
    located: &super::Located,
    words: &str,
    guard: &GuardArgs,
    planner: impl Fn(&Seen, &ApplyOptions, &Target) -> Result<Planned, Failure>,
) -> Result<i32, Failure> {
    let opts = check_options(None, &guard.grace, guard.now, located.registry.as_ref())?;
    let store = located.store.as_ref();
    let target = target(located)?;
    let root = store.location();
    let json = guard.format == Format::Json;
    let mut apply_opts = apply_options(&opts);
    let mut out = String::new();
    let mut resumed = Vec::new();
    // Plan first: bad input (an unknown reference, a rule that cannot hold) is a usage error
    // whatever else is going on, and nothing is touched.
    let mut seen = see(store, guard.quiet, &guard.io)?;
    apply_opts.unreadable = seen.inv.unreadable_paths();
    let mut planned = planner(&seen, &apply_opts, &target)?;
    if guard.apply {
        // A registry process serving the store is visible on this machine only for a local
        // store; on object storage the recent uploads below are the guard.
        if let Target::Fs(root) = &target {
            guard_processes(root, guard.force, "apply")?;
        }
        resumed = resume_incomplete(&target, &apply_opts, &mut out)?;
        if !resumed.is_empty() {
            // The interrupted runs changed the store: plan again from what is there now.
            seen = see(store, true, &guard.io)?;
            apply_opts.unreadable = seen.inv.unreadable_paths();
            planned = planner(&seen, &apply_opts, &target)?;
        }
    }
    let Planned { plan, decisions } = planned;
    let freed_set = cleanup::reclaimable_blobs(&seen.inv, &plan.actions);
    let reclaimable_bytes: u64 = freed_set.iter().map(|&i| seen.inv.blobs[i].size).sum();
    let reclaimable_blobs = freed_set.len();
    // Per repository: the reclaimable blobs it referenced (a blob shared by two pruned
    // repositories counts in both).
    let per_repo: std::collections::BTreeMap<&str, u64> = decisions
        .iter()
        .filter_map(|d| {
            let i = seen.inv.repos.iter().position(|r| r.name == d.name)?;
            let rr = &seen.reach.repos[i];
            let bytes = freed_set
                .iter()
                .filter(|&&b| rr.uses_blob(b))
                .map(|&b| seen.inv.blobs[b].size)
                .sum();
            Some((d.name.as_str(), bytes))
        })
        .collect();
    let preview = target.assess(&plan, &apply_opts);
    render_decisions(&decisions, &per_repo, &mut out);
    let later = if command == "gc" {
        String::new()
    } else {
        format!(" (freed by a later `regfsck gc {words} --apply`)")
    };
    if plan.actions.is_empty() {
        let _ = writeln!(out, "Nothing to remove.");
    } else {
        let _ = writeln!(
            out,
            "{} plan ({}); {} in {} become reclaimable{later}:",
            command,
            plural(plan.actions.len() as u64, "action", "actions"),
            size(reclaimable_bytes),
            plural(reclaimable_blobs as u64, "blob", "blobs"),
        );
        render_actions(&plan, &preview, guard.all, &mut out);
    }
    let doc = |statuses: &[Option<Status>],
               run: Option<String>,
               applied: bool,
               purged: bool,
               removed: Option<u64>,
               freed: Option<u64>,
               resumed: Vec<JsonResumed>| {
        let settled: Vec<Status> = statuses.iter().flatten().cloned().collect();
        JsonCleanup {
            schema: "regfsck.cleanup/1",
            command,
            root: root.clone(),
            applied,
            purged,
            resumed,
            repositories: json_repos(&decisions, &per_repo),
            actions: json_actions(&plan, statuses),
            counts: apply::count(&settled),
            run,
            reclaimable_bytes,
            reclaimable_blobs,
            removed_bytes: removed,
            freed_bytes: freed,
        }
    };
    if !guard.apply {
        if json {
            super::print_json(&doc(&preview, None, false, false, None, None, resumed));
        } else {
            if !plan.actions.is_empty() {
                let _ = writeln!(
                    out,
                    "\nNothing was changed. Run with --apply to execute (everything removed moves into the quarantine; regfsck undo reverses it)."
                );
            }
            super::print_stdout(&out);
        }
        return Ok(exit::OK);
    }
    let uploads = recent_uploads(&seen.inv, opts.now, opts.grace);
    if let Err(e) = live_guard(&uploads, guard.force, "apply") {
        if !json {
            super::print_stdout(&out);
        }
        return Err(e);
    }
    if guard.purge && !plan.actions.is_empty() {
        confirm_purge(guard.yes, "--purge deletes what the plan removes: this")?;
    }
    let outcome = if plan.actions.is_empty() {
        apply::ApplyOutcome::default()
    } else {
        target.apply(&plan, &apply_opts)?
    };
    let counts = outcome.counts();
    let removed = blob_bytes(&seen.inv, &plan, &outcome.statuses);
    let mut freed = None;
    match &outcome.run_id {
        Some(id) => {
            let _ = writeln!(
                out,
                "\nApplied {} of {} as run {id}.\n  {}",
                counts.applied,
                plural(plan.actions.len() as u64, "action", "actions"),
                counts_text(&counts)
            );
            if guard.purge {
                let p = target.purge(id)?;
                freed = Some(p.bytes);
                let _ = writeln!(
                    out,
                    "Purged: {} deleted for good; run {id} can NOT be undone.",
                    size(p.bytes)
                );
            } else {
                let _ = writeln!(
                    out,
                    "Everything removed is in the quarantine: undo with `regfsck undo {words} --run {id}`; free the space with `regfsck purge {words} --run {id}` once satisfied."
                );
            }
        }
        None if !plan.actions.is_empty() => {
            let _ = writeln!(out, "\nNothing was changed; no run was recorded.");
        }
        None => {}
    }
    for (a, s) in plan.actions.iter().zip(&outcome.statuses) {
        if let Some(text) = status_text(s) {
            let _ = writeln!(out, "  {}: {text}", a.kind.path());
        }
    }
    if command == "gc" && outcome.run_id.is_some() {
        let _ = writeln!(
            out,
            "{}: {}.",
            if guard.purge {
                "Freed"
            } else {
                "Moved into the quarantine (freed once purged)"
            },
            size(removed)
        );
    }
    if outcome.run_id.is_some() {
        let _ = writeln!(
            out,
            "Restart the registry: its blob-descriptor cache may still believe in what was removed."
        );
    }
    if json {
        let statuses: Vec<Option<Status>> = if outcome.statuses.is_empty() {
            preview
        } else {
            outcome.statuses.iter().cloned().map(Some).collect()
        };
        super::print_json(&doc(
            &statuses,
            outcome.run_id.clone(),
            true,
            freed.is_some(),
            Some(removed),
            freed,
            resumed,
        ));
    } else {
        super::print_stdout(&out);
    }
    Ok(if counts.failed > 0 {
        exit::OPERATIONAL
    } else {
        exit::OK
    })
}

pub fn run_rm(args: RmArgs) -> Result<i32, Failure> {
    // With --config every word is a reference; otherwise the first names the store.
    let (root, refs) = match (&args.config, args.words.split_first()) {
        (Some(_), _) => (None, args.words.as_slice()),
        (None, Some((root, refs))) => (Some(PathBuf::from(root)), refs),
        (None, None) => (None, &[][..]),
    };
    if refs.is_empty() {
        return Err(Failure::Usage(
            "nothing to remove: name the store (ROOT, or --config FILE) and at least one REF (REPO, REPO:TAG or REPO@DIGEST)".into(),
        ));
    }
    let refs = refs
        .iter()
        .map(|r| Ref::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::Usage)?;
    let store = StoreArgs {
        root,
        config: args.config.clone(),
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
    };
    let located = super::locate(&store)?;
    let words = super::store_words(&store, &located);
    execute("rm", &located, &words, &args.guard, |seen, _, _| {
        let plan = cleanup::rm(&seen.inv, &seen.times, &refs).map_err(Failure::Usage)?;
        Ok(Planned {
            plan,
            decisions: Vec::new(),
        })
    })
}

pub fn run_prune(args: PruneArgs) -> Result<i32, Failure> {
    let repo_glob = args
        .repo
        .as_deref()
        .map(Glob::new)
        .transpose()
        .map_err(Failure::Usage)?;
    // Rules first: bad input is a usage error before anything is read.
    let policy: Policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::Usage(format!(
                    "cannot read the policy file {}: {e}",
                    path.display()
                ))
            })?;
            retention::parse_policy(&text)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
        }
        None => {
            let rules = retention::rules(
                args.untagged,
                args.older_than.as_deref(),
                args.keep_last,
                args.tags.as_deref(),
                args.keep_tags.as_deref(),
            )
            .map_err(|e| {
                Failure::Usage(
                    e.replace("older_than", "--older-than")
                        .replace("keep_last", "--keep-last"),
                )
            })?;
            if !rules.untagged && !rules.selects_tags() && !args.empty {
                return Err(Failure::Usage(
                    "nothing to prune: pass --untagged, --older-than, --keep-last, --tags, --empty or --policy".into(),
                ));
            }
            Policy {
                policies: vec![(vec![Glob::new("**").expect("valid")], RuleSet::Rules(rules))],
            }
        }
    };
    let from_file = args.policy.is_some();
    let located = super::locate(&args.store)?;
    let words = super::store_words(&args.store, &located);
    let empty = args.empty;
    let force_ages = args.force_ages;
    execute("prune", &located, &words, &args.guard, |seen, opts, _| {
        let rules_for = |name: &str| -> Option<(String, &RuleSet)> {
            if repo_glob.as_ref().is_some_and(|g| !g.matches(name)) {
                return None;
            }
            let (i, set) = policy.for_repo(name)?;
            let label = if from_file {
                format!("policy {}", i + 1)
            } else {
                "command line".to_string()
            };
            Some((label, set))
        };
        let governed: Vec<&crate::model::inventory::Repo> = seen
            .inv
            .repos
            .iter()
            .filter(|r| rules_for(&r.name).is_some_and(|(_, s)| retention::uses_ages(&[s])))
            .collect();
        if !force_ages {
            if let Some(why) = retention::destroyed_push_times(&seen.inv, &seen.times, &governed) {
                return Err(Failure::Operational(format!(
                    "refusing age-based selection: {why}"
                )));
            }
        }
        let facts = Facts {
            inv: &seen.inv,
            reach: &seen.reach,
            times: &seen.times,
            now: opts.now,
            grace: opts.grace,
        };
        let decisions = retention::select(&facts, rules_for);
        let plan = cleanup::prune(&seen.inv, &decisions, empty);
        Ok(Planned { plan, decisions })
    })
}

/// `regfsck gc --apply` (and `--plan`): regfsck's own sweep.
pub fn run_gc(store: &StoreArgs, delete_untagged: bool, guard: &GuardArgs) -> Result<i32, Failure> {
    let located = super::locate(store)?;
    let words = super::store_words(store, &located);
    execute("gc", &located, &words, guard, |seen, opts, target| {
        let blockers = cleanup::gc_blockers(&seen.inv);
        if !blockers.is_empty() {
            return Err(Failure::Operational(format!(
                "refusing to sweep: what is unreferenced cannot be known (see regfsck check {words}):\n  {}",
                blockers.join("\n  ")
            )));
        }
        let revisions = if delete_untagged {
            cleanup::gc_revisions(&seen.inv, &seen.reach, &seen.times, opts.now, opts.grace)
        } else {
            Vec::new()
        };
        // Blobs are swept only behind the revision removals that will run now: one the applier
        // would skip (grace) or refuse keeps its blobs referenced.
        let first = Plan {
            schema: crate::plan::PLAN_SCHEMA.into(),
            command: None,
            actions: revisions.clone(),
        };
        let running: Vec<_> = revisions
            .iter()
            .zip(target.assess(&first, opts))
            .filter(|(_, s)| s.is_none())
            .map(|(a, _)| a.clone())
            .collect();
        let mut actions = revisions;
        actions.extend(cleanup::gc_sweep(&seen.inv, &running));
        Ok(Planned {
            plan: cleanup::finish("gc", actions),
            decisions: Vec::new(),
        })
    })
}

#[derive(Serialize)]
struct JsonPurged {
    run: String,
    command: String,
    bytes: u64,
}

pub fn run_purge(args: PurgeArgs) -> Result<i32, Failure> {
    let located = super::locate(&args.store)?;
    let target = target(&located)?;
    let words = super::store_words(&args.store, &located);
    let root = located.store.location();
    let json = args.format == Format::Json;
    let now = args.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let older = args
        .older_than
        .as_deref()
        .map(|t| {
            crate::model::duration::parse(t)
                .map(|d| d.as_secs() as i64)
                .map_err(|e| Failure::Usage(format!("--older-than: {e}")))
        })
        .transpose()?;
    let runs = target.runs()?;
    if let Some(id) = &args.run {
        if !runs.iter().any(|r| &r.id == id) {
            return Err(Failure::Usage(format!(
                "no run {id} in {root} (see regfsck undo {words} --list)"
            )));
        }
    }
    let settled = |state: &str| {
        matches!(
            state,
            "complete" | "undone" | "partly-undone" | "purge-incomplete"
        )
    };
    let chosen: Vec<&apply::RunInfo> = runs
        .iter()
        .filter(|r| match (&args.run, older) {
            (Some(id), _) => &r.id == id,
            (None, Some(age)) => settled(r.state) && r.started <= now - age,
            (None, None) => settled(r.state),
        })
        .collect();
    let mut out = String::new();
    if let Some(r) = chosen
        .iter()
        .find(|r| !settled(r.state) && r.state != "purged")
    {
        return Err(Failure::Operational(format!(
            "run {} is {}: finish it first (re-run its command with --apply, or regfsck undo {words} --run {})",
            r.id, r.state, r.id
        )));
    }
    let todo: Vec<&&apply::RunInfo> = chosen.iter().filter(|r| r.state != "purged").collect();
    if todo.is_empty() {
        if json {
            super::print_json(&serde_json::json!({
                "schema": "regfsck.purge/1", "root": root,
                "purged": [], "freed_bytes": 0
            }));
        } else {
            let _ = writeln!(out, "No quarantined run to purge.");
            super::print_stdout(&out);
        }
        return Ok(exit::OK);
    }
    let total: u64 = todo.iter().map(|r| r.bytes).sum();
    let mut what = format!(
        "Purging deletes {} quarantined by {} for good; afterwards `regfsck undo` can no longer restore:",
        size(total),
        plural(todo.len() as u64, "run", "runs")
    );
    for r in &todo {
        let _ = write!(
            what,
            "\n  {} ({}, {}, {}): {}",
            r.id,
            r.command,
            r.state,
            size(r.bytes),
            plural(r.counts.applied as u64, "applied action", "applied actions")
        );
    }
    eprintln!("{what}");
    confirm_purge(args.yes, "Purging")?;
    let mut purged = Vec::new();
    let mut freed = 0;
    for r in todo {
        let p = target.purge(&r.id)?;
        freed += p.bytes;
        let _ = writeln!(
            out,
            "Purged run {} ({}): {} freed.",
            r.id,
            r.command,
            size(p.bytes)
        );
        purged.push(JsonPurged {
            run: r.id.clone(),
            command: r.command.clone(),
            bytes: p.bytes,
        });
    }
    let _ = writeln!(
        out,
        "{} freed. These runs stay listed by `regfsck undo --list` as purged; they can no longer be undone.",
        size(freed)
    );
    if json {
        #[derive(Serialize)]
        struct Doc {
            schema: &'static str,
            root: String,
            purged: Vec<JsonPurged>,
            freed_bytes: u64,
        }
        super::print_json(&Doc {
            schema: "regfsck.purge/1",
            root: root.clone(),
            purged,
            freed_bytes: freed,
        });
    } else {
        super::print_stdout(&out);
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::MultipartUpload;

    /// On object storage a multipart upload begun within the grace window is a push in
    /// progress; an older one is not. (moto, the tests' S3 server, dates every multipart upload
    /// 2010-11-10, so this half of the guard is tested here.)
    #[test]
    fn recent_multipart_uploads_look_live() {
        let mp = |id: &str, initiated: i64| MultipartUpload {
            path: format!("repositories/a/_uploads/{id}/data"),
            upload_id: id.into(),
            initiated,
            bytes: Some(1),
        };
        let inv = Inventory {
            multipart_uploads: vec![mp("old", 1_000), mp("new", 9_500)],
            ..Inventory::default()
        };
        assert_eq!(
            recent_uploads(&inv, 10_000, 600),
            ["upload-recent: repositories/a/_uploads/new/data (multipart upload new)"]
        );
        assert!(recent_uploads(&inv, 20_000, 600).is_empty());
    }
}

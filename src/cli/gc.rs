//! `regfsck gc`: what the registry's own `garbage-collect` would do to this store, per version and
//! mode, where 2.8 and 3.x differ, and whether running it now would abort or lose tagged data.
//! Never writes.

use super::{Failure, Format, StoreArgs};
use crate::analysis::gc::{self, Prediction, Version};
use crate::analysis::reach;
use crate::model::finding::Finding;
use crate::report::{human::size, ReportFinding};
use crate::store::scan;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Predict this version only: 2.8 (registry:2, Debian's docker-registry) or 3 (registry:3).
    #[arg(long, value_name = "VERSION")]
    pub registry_version: Option<String>,
    /// Predict `garbage-collect --delete-untagged` only (default: both modes).
    #[arg(long, short = 'm')]
    pub delete_untagged: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// List every eligible blob and manifest.
    #[arg(long)]
    pub all: bool,
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

#[derive(Serialize)]
struct GcReport<'a> {
    schema: &'static str,
    root: String,
    predictions: &'a [Prediction],
    hazards: Vec<ReportFinding>,
    exit_code: i32,
}

fn render(root: &str, preds: &[Prediction], hazards: &[Finding], all: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "regfsck gc {root}");
    let limit = if all { usize::MAX } else { 10 };
    for p in preds {
        let _ = writeln!(o);
        if let Some(c) = &p.cannot_predict {
            let _ = writeln!(o, "{}: CANNOT PREDICT — {}", p.label(), c.reason);
            for path in &c.paths {
                let _ = writeln!(o, "  {path}");
            }
            continue;
        }
        match &p.abort {
            Some(a) => {
                let _ = writeln!(
                    o,
                    "{}: would {} — {}{}",
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
                    "{}: deletes {} blobs ({}) and {} manifests{}",
                    p.label(),
                    p.eligible_blobs.len(),
                    size(p.freed_bytes),
                    p.eligible_manifests.len(),
                    if p.layer_links_deleted.is_empty() {
                        String::new()
                    } else {
                        format!(", and {} layer links", p.layer_links_deleted.len())
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
    if hazards.is_empty() {
        let _ = writeln!(
            o,
            "\nNo hazards: the predicted runs neither abort nor delete data reachable from a tag."
        );
    } else {
        let _ = writeln!(o, "\nHazards:");
        for f in hazards {
            let _ = writeln!(
                o,
                "  {}: {}: {}",
                f.code,
                f.path.as_deref().unwrap_or("(whole store)"),
                f.message
            );
        }
        let _ = writeln!(o, "Do not run these garbage collections until the findings above are fixed (`regfsck check`, `regfsck repair`).");
    }
    o
}

pub fn run(args: GcArgs) -> Result<i32, Failure> {
    let versions: Vec<Version> = match &args.registry_version {
        None => Version::ALL.to_vec(),
        Some(v) => vec![Version::parse(v).ok_or_else(|| {
            Failure::Usage(format!(
                "--registry-version: unknown version {v:?}: use 2.8 or 3"
            ))
        })?],
    };
    let modes: Vec<bool> = if args.delete_untagged {
        vec![true]
    } else {
        vec![false, true]
    };
    let located = args.store.locate().map_err(Failure::Operational)?;
    super::configure_threads(args.jobs);
    let progress = super::progress_bar::for_run(args.quiet);
    let inv = scan::scan(&located.store, progress.as_ref())?;
    let mut preds = Vec::new();
    for v in &versions {
        for m in &modes {
            preds.push(gc::predict(&inv, *v, *m));
        }
    }
    let reach = reach::compute(&inv);
    let hazards = gc::hazards_with(&inv, &reach, &preds, true);
    let exit_code = if hazards.is_empty() {
        crate::report::exit::OK
    } else {
        crate::report::exit::UNCORRECTED
    };
    let root = inv.root.display().to_string();
    let text = match args.format {
        Format::Json => {
            let doc = GcReport {
                schema: "regfsck.gc/1",
                root,
                predictions: &preds,
                hazards: hazards
                    .iter()
                    .cloned()
                    .map(|f| {
                        let sev = f.code.default_severity();
                        ReportFinding::new(f, sev)
                    })
                    .collect(),
                exit_code,
            };
            super::print_json(&doc);
            return Ok(exit_code);
        }
        Format::Human => render(&root, &preds, &hazards, args.all),
    };
    super::print_stdout(&text);
    Ok(exit_code)
}

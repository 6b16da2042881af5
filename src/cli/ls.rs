//! `regfsck ls`: the offline catalog — repositories, tags (digest, kind, platforms, artifactType,
//! size, push time, config `created`) and untagged revisions, as the registry would serve them.

use super::{Failure, StoreArgs};
use crate::analysis::catalog::{self, Listing};
use crate::analysis::reach;
use crate::analysis::retention::Glob;
use crate::report::exit;
use crate::report::human::size;
use crate::store::scan;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LsFormat {
    /// A table per repository.
    Human,
    /// regfsck.ls/1 (docs/report-format.md).
    Json,
    /// One row per tag and per untagged revision.
    Csv,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only repositories matching this glob (`*` within a path component, `**` across).
    #[arg(long, value_name = "GLOB")]
    pub repo: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: LsFormat,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub io: super::IoArgs,
}

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    root: String,
    #[serde(flatten)]
    listing: &'a Listing,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(l: &Listing) -> String {
    let mut o = String::from(
        "repository,in_catalog,tag,digest,kind,platforms,artifact_type,size,pushed,created\n",
    );
    for r in &l.repositories {
        let cat = r.in_catalog.map(|b| b.to_string()).unwrap_or_default();
        for t in &r.tags {
            let _ = writeln!(
                o,
                "{},{cat},{},{},{},{},{},{},{},{}",
                csv_field(&r.name),
                csv_field(&t.tag),
                t.digest
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                t.kind,
                csv_field(&t.platforms.join(" ")),
                csv_field(t.artifact_type.as_deref().unwrap_or("")),
                t.size,
                t.pushed.as_deref().unwrap_or(""),
                csv_field(t.created.as_deref().unwrap_or(""))
            );
        }
        for d in &r.untagged {
            let _ = writeln!(o, "{},{cat},,{d},untagged,,,,,", csv_field(&r.name));
        }
    }
    o
}

fn human(l: &Listing) -> String {
    let mut o = String::new();
    if l.repositories.is_empty() {
        let _ = writeln!(o, "No repositories.");
    }
    for r in &l.repositories {
        let cat = match r.in_catalog {
            Some(true) => "",
            Some(false) => "  (not in the registry's /v2/_catalog: no _layers folder)",
            None => "  (catalog unknown)",
        };
        let _ = writeln!(o, "{}{cat}", r.name);
        if r.tags.is_empty() && r.untagged.is_empty() {
            let _ = writeln!(o, "  (no tags)");
        }
        for t in &r.tags {
            let what = if !t.platforms.is_empty() {
                format!("{} [{}]", t.kind, t.platforms.join(", "))
            } else if let Some(a) = &t.artifact_type {
                format!("{} {a}", t.kind)
            } else {
                t.kind.to_string()
            };
            let _ = writeln!(
                o,
                "  {:<20} {:<19} {:>10}  pushed {:<20} {}{}",
                t.tag,
                t.digest
                    .as_ref()
                    .map(|d| d.short())
                    .unwrap_or_else(|| "(no current link)".into()),
                size(t.size),
                t.pushed.as_deref().unwrap_or("unknown"),
                what,
                t.created
                    .as_deref()
                    .map(|c| format!("  created {c}"))
                    .unwrap_or_default()
            );
        }
        for d in &r.untagged {
            let _ = writeln!(o, "  {:<20} {}", "(untagged)", d);
        }
    }
    o
}

pub fn run(args: LsArgs) -> Result<i32, Failure> {
    let glob = args
        .repo
        .as_deref()
        .map(Glob::new)
        .transpose()
        .map_err(Failure::Usage)?;
    let located = super::locate(&args.store)?;
    let progress = super::progress_bar::for_run(args.quiet);
    let store = located.store.as_ref();
    let opts = scan::ScanOptions {
        io_depth: args.io.depth(),
        link_times: true,
        ..Default::default()
    };
    let inv = store
        .scan(&opts, progress.as_ref())
        .map_err(super::scan_failure)?;
    let r = reach::compute(&inv);
    let times = store.push_times(&inv);
    let listing = catalog::list(
        &inv,
        &r,
        &times,
        |name| glob.as_ref().is_none_or(|g| g.matches(name)),
        |d| store.manifest_info(&inv, d),
    );
    match args.format {
        LsFormat::Json => super::print_json(&Doc {
            schema: "regfsck.ls/1",
            root: store.location(),
            listing: &listing,
        }),
        LsFormat::Csv => super::print_stdout(&csv(&listing)),
        LsFormat::Human => super::print_stdout(&human(&listing)),
    }
    Ok(exit::OK)
}

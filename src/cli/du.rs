//! `regfsck du`: which repository owns the disk — referenced, exclusive and shared bytes per
//! repository, and store totals that reconcile. Never writes.

use super::check::check_options;
use super::{Failure, StoreArgs};
use crate::analysis::reach;
use crate::analysis::usage::{self, RepoUsage, Usage};
use crate::report::human::size;
use crate::store::scan;
use clap::{Args, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DuFormat {
    /// A table for people, with store totals.
    Table,
    /// The versioned JSON document of docs/report-format.md.
    Json,
    /// One line per repository, the JSON keys as column names.
    Csv,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Bytes only this repository references.
    Exclusive,
    /// Bytes this repository references.
    Referenced,
    /// Bytes this repository shares with others.
    Shared,
    /// What registry 3's --delete-untagged frees here.
    Untagged,
    /// What registry 2.8's --delete-untagged frees here.
    #[value(name = "untagged-2.8")]
    Untagged28,
    /// Bytes in unfinished uploads.
    Uploads,
    /// Repository name, ascending.
    Name,
}

#[derive(Args, Debug)]
pub struct DuArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Sort repositories by this column (largest first; name ascending).
    #[arg(long, value_enum, default_value = "exclusive")]
    pub sort: SortKey,
    /// Only repositories matching this pattern (`*` matches any run of characters, e.g. `team/*`).
    #[arg(long, value_name = "PATTERN")]
    pub repo: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: DuFormat,
    /// Upload age after which an unfinished upload is stale (default: config, else 168h).
    #[arg(long, value_name = "DURATION")]
    pub purge_age: Option<String>,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Also list inside every link and blob folder, so that residue there is counted.
    #[arg(long)]
    pub deep: bool,
    /// Scan threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub io: super::IoArgs,
    /// Evaluate ages as of this time (unix seconds), for reproducible reports.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
}

/// `*`-glob match over the whole name.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn sort(rows: &mut [RepoUsage], key: SortKey) {
    rows.sort_by(|a, b| {
        let k = |r: &RepoUsage| match key {
            SortKey::Exclusive => r.exclusive_bytes,
            SortKey::Referenced => r.referenced_bytes,
            SortKey::Shared => r.shared_bytes,
            SortKey::Untagged => r.untagged_only_bytes,
            SortKey::Untagged28 => r.untagged_only_bytes_2_8,
            SortKey::Uploads => r.upload_bytes,
            SortKey::Name => 0,
        };
        k(b).cmp(&k(a)).then(a.repo.cmp(&b.repo))
    });
}

#[derive(Serialize)]
struct DuReport<'a> {
    schema: &'static str,
    root: String,
    #[serde(flatten)]
    usage: &'a Usage,
    /// Problems with the run itself (a --repo pattern that matches nothing).
    run_warnings: Vec<String>,
}

fn csv(u: &Usage) -> String {
    let mut o = String::from("repo,tags,revisions,tagged_revisions,untagged_revisions,child_revisions,referenced_bytes,exclusive_bytes,shared_bytes,untagged_only_bytes,uploads,upload_bytes,untagged_only_bytes_2_8\n");
    for r in &u.repositories {
        // Repository names cannot hold commas or quotes (registry grammar); no quoting needed.
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.repo,
            r.tags,
            r.revisions,
            r.tagged_revisions,
            r.untagged_revisions,
            r.child_revisions,
            r.referenced_bytes,
            r.exclusive_bytes,
            r.shared_bytes,
            r.untagged_only_bytes,
            r.uploads,
            r.upload_bytes,
            r.untagged_only_bytes_2_8
        );
    }
    o
}

fn table(root: &str, u: &Usage) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "repository",
        "tags",
        "revisions (t/u/c)",
        "referenced",
        "exclusive",
        "shared",
        "untagged-only (3)",
        "untagged-only (2.8)",
        "uploads",
    ]);
    for r in &u.repositories {
        t.add_row(vec![
            r.repo.clone(),
            r.tags.to_string(),
            format!(
                "{} ({}/{}/{})",
                r.revisions, r.tagged_revisions, r.untagged_revisions, r.child_revisions
            ),
            size(r.referenced_bytes),
            size(r.exclusive_bytes),
            size(r.shared_bytes),
            size(r.untagged_only_bytes),
            size(r.untagged_only_bytes_2_8),
            size(r.upload_bytes),
        ]);
    }
    for i in 1..9 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let x = &u.totals;
    let mut o = format!("regfsck du {root}\n{t}\n");
    let _ = writeln!(
        o,
        "blobs/            {:>12}  ({} blobs)",
        size(x.blob_bytes),
        x.blobs
    );
    let _ = writeln!(o, "  referenced      {:>12}", size(x.referenced_bytes));
    let _ = writeln!(
        o,
        "  orphaned        {:>12}  freed by a plain garbage-collect",
        size(x.orphaned_bytes)
    );
    let _ = writeln!(
        o,
        "  malformed paths {:>12}  not blobs to the registry (see regfsck check)",
        size(x.malformed_bytes)
    );
    let _ = writeln!(
        o,
        "untagged-only     {:>12}  freed on top by registry 3's garbage-collect --delete-untagged",
        size(x.untagged_only_bytes)
    );
    let _ = writeln!(
        o,
        "                  {:>12}  by registry 2.8's (it also deletes multi-arch images' untagged children)",
        size(x.untagged_only_bytes_2_8)
    );
    let _ = writeln!(
        o,
        "uploads           {:>12}  ({} stale)",
        size(x.upload_bytes),
        size(x.stale_upload_bytes)
    );
    let _ = writeln!(
        o,
        "dangling links    {:>12}  ({} files the registry never cleans)",
        size(x.dangling_link_bytes),
        x.dangling_links
    );
    o
}

pub fn run(args: DuArgs) -> Result<i32, Failure> {
    let started = std::time::Instant::now();
    args.metrics.validate()?;
    let located = super::locate(&args.store)?;
    let opts = check_options(
        args.purge_age.as_deref(),
        "10m",
        args.now,
        located.registry.as_ref(),
    )?;
    super::configure_threads(args.jobs);
    let progress = super::progress_bar::for_run(args.quiet);
    let inv = located
        .store
        .scan(
            &scan::ScanOptions {
                deep: args.deep,
                io_depth: args.io.depth(),
                ..Default::default()
            },
            progress.as_ref(),
        )
        .map_err(super::scan_failure)?;
    let reach = reach::compute(&inv);
    let mut u = usage::compute(&inv, &reach, &opts);
    let mut run_warnings = Vec::new();
    if let Some(p) = &args.repo {
        u.repositories.retain(|r| glob(p, &r.repo));
        if u.repositories.is_empty() {
            let w = format!("--repo {p:?} matches no repository");
            eprintln!("regfsck: warning: {w}");
            run_warnings.push(w);
        }
    }
    sort(&mut u.repositories, args.sort);
    let root = inv.root.display().to_string();
    let mut code = crate::report::exit::OK;
    let info = super::metrics::run_info("du", &root, started, code);
    if let Err(w) = args.metrics.write(|| crate::report::metrics::du(&info, &u)) {
        run_warnings.push(w);
        code |= crate::report::exit::OPERATIONAL;
    }
    let text = match args.format {
        DuFormat::Json => {
            super::print_json(&DuReport {
                schema: "regfsck.du/1",
                root,
                usage: &u,
                run_warnings,
            });
            return Ok(code);
        }
        DuFormat::Csv => csv(&u),
        DuFormat::Table => table(&root, &u),
    };
    super::print_stdout(&text);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("team/*", "team/proj/app"));
        assert!(glob("*app", "beta/app"));
        assert!(glob("*", "x"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(!glob("team", "team/proj"));
        assert!(!glob("ab*ba", "aba"));
    }
}

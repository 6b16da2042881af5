//! Prometheus text-format metrics (for node_exporter's textfile collector), rendered from the very
//! values the JSON documents hold: the check report, the `du` usage and the `gc` predictions.
//! Every value is a gauge about the last run; docs/metrics.md lists the names, a test pins them.

use super::Report;
use crate::analysis::gc::Prediction;
use crate::analysis::usage::{RepoUsage, Usage};
use crate::model::finding::{Code, Severity};
use std::fmt::Write as _;

/// What every metrics file says about the run itself.
pub struct RunInfo<'a> {
    /// `check`, `du` or `gc`.
    pub command: &'static str,
    /// The store's rootdirectory as the report names it (empty when it could not be resolved).
    pub root: &'a str,
    /// When the run ended, in Unix seconds.
    pub end_unix_seconds: f64,
    pub duration_seconds: f64,
    pub exit_status: i32,
}

#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v as u64)
    }
}

/// A text exposition being written: one family at a time, each with its `# HELP` and `# TYPE`.
struct Exposition {
    out: String,
    /// Labels every sample carries (`root`), written first.
    common: Vec<(&'static str, String)>,
}

impl Exposition {
    fn new(root: &str) -> Exposition {
        Exposition {
            out: String::new(),
            common: vec![("root", root.to_string())],
        }
    }

    /// One gauge family; nothing at all when it has no samples.
    fn gauge<I>(&mut self, name: &str, help: &str, samples: I)
    where
        I: IntoIterator<Item = (Vec<(&'static str, String)>, Value)>,
    {
        let mut body = String::new();
        for (labels, value) in samples {
            body.push_str(name);
            body.push('{');
            for (i, (k, v)) in self.common.iter().chain(labels.iter()).enumerate() {
                if i > 0 {
                    body.push(',');
                }
                let _ = write!(body, "{k}=\"{}\"", escape_label(v));
            }
            body.push('}');
            match value {
                Value::Int(v) => {
                    let _ = writeln!(body, " {v}");
                }
                Value::Float(v) => {
                    let _ = writeln!(body, " {}", float(v));
                }
            }
        }
        if body.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} gauge");
        self.out.push_str(&body);
    }

    /// A family with one sample and no labels of its own.
    fn one(&mut self, name: &str, help: &str, value: impl Into<Value>) {
        self.gauge(name, help, [(Vec::new(), value.into())]);
    }
}

/// A float as the text format writes it (Go's `strconv.ParseFloat` reads Rust's shortest
/// round-trip form; non-finite values never occur here, but are spelled as Prometheus does).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A label value: backslash, double quote and line feed escaped, as the format requires.
pub fn escape_label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// A help text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn run_families(x: &mut Exposition, run: &RunInfo) {
    let cmd = || vec![("command", run.command.to_string())];
    x.gauge(
        "regfsck_run_end_timestamp_seconds",
        "When the last run of this command on this store ended (Unix time).",
        [(cmd(), Value::Float(run.end_unix_seconds))],
    );
    x.gauge(
        "regfsck_run_duration_seconds",
        "How long the last run of this command on this store took.",
        [(cmd(), Value::Float(run.duration_seconds))],
    );
    x.gauge(
        "regfsck_run_exit_status",
        "Exit status of the last run (fsck(8) bits: 0 no errors, 4 errors left, 8 operational error, 16 usage error, 32 interrupted).",
        [(cmd(), Value::Int(run.exit_status.max(0) as u64))],
    );
    x.gauge(
        "regfsck_run_info",
        "Always 1; the labels name the regfsck version of the last run.",
        [(
            vec![
                ("command", run.command.to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
            Value::Int(1),
        )],
    )
}

/// The file of a run that could not produce its report (usage or operational error, Ctrl-C
/// during the scan): only the run's end, duration and exit status.
pub fn run_only(run: &RunInfo) -> String {
    let mut x = Exposition::new(run.root);
    run_families(&mut x, run);
    x.out
}

/// `regfsck check`: the run, findings by code and severity, the store's size, the hashing and
/// the incremental verification's coverage. `severity` gives the severity of a code this run did
/// not find (the policy's, after `--severity`), so that every code has a series.
pub fn check(run: &RunInfo, report: &Report, severity: &dyn Fn(Code) -> Severity) -> String {
    let mut x = Exposition::new(run.root);
    run_families(&mut x, run);
    let s = &report.summary;
    let v = &s.verification;
    x.gauge(
        "regfsck_check_findings",
        "Findings of the last check by code and severity, after the skip list (0 for every code not found).",
        Code::ALL.iter().map(|&c| {
            let n = s.by_code.get(c.as_str()).copied().unwrap_or(0);
            let sev = report
                .findings
                .iter()
                .find(|f| f.code == c)
                .map(|f| f.severity)
                .unwrap_or_else(|| severity(c));
            (
                vec![
                    ("code", c.as_str().to_string()),
                    ("severity", sev.to_string()),
                ],
                Value::Int(n),
            )
        }),
    );
    x.one(
        "regfsck_check_findings_skipped",
        "Findings the skip list suppressed.",
        s.skipped,
    );
    x.one(
        "regfsck_check_repositories",
        "Repositories in the store.",
        s.repositories,
    );
    x.one("regfsck_check_tags", "Tags in the store.", s.tags);
    x.one(
        "regfsck_check_revisions",
        "Manifest revisions in the store.",
        s.revisions,
    );
    x.one(
        "regfsck_check_uploads",
        "Unfinished uploads in the store.",
        s.uploads,
    );
    x.one("regfsck_check_blobs", "Blobs in the store.", s.blobs);
    x.one(
        "regfsck_check_blob_bytes",
        "Bytes of all blobs in the store.",
        s.blob_bytes,
    );
    x.one(
        "regfsck_check_hashed_blobs",
        "Blobs hashed in this run.",
        s.hashed_blobs,
    );
    x.one(
        "regfsck_check_hashed_bytes",
        "Bytes hashed in this run.",
        s.hashed_bytes,
    );
    x.one(
        "regfsck_check_verified_blobs",
        "Blobs whose content is verified: hashed in this run, or recorded sound in the state file within the --reverify-after window.",
        v.verified_blobs,
    );
    x.one(
        "regfsck_check_verified_bytes",
        "Bytes of the verified blobs.",
        v.verified_bytes,
    );
    x.one(
        "regfsck_check_fully_verified",
        "1 when every blob's content is verified, else 0.",
        s.fully_verified,
    );
    x.one(
        "regfsck_check_hash_selected_blobs",
        "Blobs this run chose to hash (--verify-subset, --reverify-after).",
        v.selected_blobs,
    );
    x.one(
        "regfsck_check_hash_selected_bytes",
        "Bytes of the blobs this run chose to hash.",
        v.selected_bytes,
    );
    x.one(
        "regfsck_check_hash_left_blobs",
        "Chosen blobs not hashed because the run stopped early (--max-duration, Ctrl-C).",
        v.left_blobs,
    );
    x.one(
        "regfsck_check_hash_left_bytes",
        "Bytes of the chosen blobs not hashed because the run stopped early.",
        v.left_bytes,
    );
    x.one(
        "regfsck_check_scan_seconds",
        "Time spent scanning the store's structure.",
        s.scan_seconds,
    );
    x.one(
        "regfsck_check_hash_seconds",
        "Time spent hashing blob contents.",
        s.hash_seconds,
    );
    if let Some(c) = &s.coverage {
        x.one(
            "regfsck_check_coverage_blobs",
            "With a state file: blobs recorded sound within the --reverify-after window, this run included.",
            c.blobs,
        );
        x.one(
            "regfsck_check_coverage_bytes",
            "With a state file: bytes of the blobs recorded sound within the window.",
            c.bytes,
        );
        let ratio = if s.blob_bytes == 0 {
            1.0
        } else {
            c.bytes as f64 / s.blob_bytes as f64
        };
        x.one(
            "regfsck_check_coverage_ratio",
            "With a state file: the share of blob bytes recorded sound within the window (0 to 1).",
            ratio,
        );
        if let Some(w) = c.window_seconds {
            x.one(
                "regfsck_check_reverify_after_seconds",
                "The --reverify-after window the coverage is measured against.",
                w.max(0) as u64,
            );
        }
    }
    x.out
}

/// One per-repository column of the usage.
type Column = fn(&RepoUsage) -> u64;

/// `regfsck du`: bytes per repository (the rows shown, after `--repo`) and the store's totals.
pub fn du(run: &RunInfo, u: &Usage) -> String {
    let mut x = Exposition::new(run.root);
    run_families(&mut x, run);
    let repo = |r: &RepoUsage| vec![("repository", r.repo.clone())];
    let per_repo: [(&str, &str, Column); 5] = [
        (
            "regfsck_du_repository_referenced_bytes",
            "Bytes of the distinct blobs a repository references.",
            |r| r.referenced_bytes,
        ),
        (
            "regfsck_du_repository_exclusive_bytes",
            "Bytes only this repository references: what deleting it frees.",
            |r| r.exclusive_bytes,
        ),
        (
            "regfsck_du_repository_shared_bytes",
            "Bytes this repository shares with others (referenced minus exclusive).",
            |r| r.shared_bytes,
        ),
        (
            "regfsck_du_repository_upload_bytes",
            "Bytes in the repository's unfinished uploads.",
            |r| r.upload_bytes,
        ),
        (
            "regfsck_du_repository_tags",
            "Tags of the repository.",
            |r| r.tags,
        ),
    ];
    for (name, help, get) in per_repo {
        x.gauge(
            name,
            help,
            u.repositories.iter().map(|r| (repo(r), Value::Int(get(r)))),
        );
    }
    x.gauge(
        "regfsck_du_repository_untagged_only_bytes",
        "Bytes reachable only from the repository's untagged revisions: what garbage-collect --delete-untagged of that registry version frees here on top of a plain run.",
        u.repositories.iter().flat_map(|r| {
            [
                ("2.8", r.untagged_only_bytes_2_8),
                ("3", r.untagged_only_bytes),
            ]
            .map(|(v, b)| {
                let mut l = repo(r);
                l.push(("version", v.to_string()));
                (l, Value::Int(b))
            })
        }),
    );
    let t = &u.totals;
    x.one("regfsck_du_blobs", "Blobs in the store.", t.blobs);
    x.one(
        "regfsck_du_blob_bytes",
        "Everything in blobs/: well-formed blobs and data files at malformed paths.",
        t.blob_bytes,
    );
    x.one(
        "regfsck_du_referenced_bytes",
        "Bytes of the distinct blobs any revision references.",
        t.referenced_bytes,
    );
    x.one(
        "regfsck_du_orphaned_bytes",
        "Bytes of well-formed blobs no revision references: what a plain garbage-collect frees.",
        t.orphaned_bytes,
    );
    x.one(
        "regfsck_du_malformed_bytes",
        "Bytes of data files at malformed paths in blobs/ (not blobs to the registry).",
        t.malformed_bytes,
    );
    x.gauge(
        "regfsck_du_untagged_only_bytes",
        "What garbage-collect --delete-untagged of that registry version frees on top of a plain run (each blob counted once).",
        [
            ("2.8", t.untagged_only_bytes_2_8),
            ("3", t.untagged_only_bytes),
        ]
        .map(|(v, b)| (vec![("version", v.to_string())], Value::Int(b))),
    );
    x.one(
        "regfsck_du_upload_bytes",
        "Bytes in unfinished uploads.",
        t.upload_bytes,
    );
    x.one(
        "regfsck_du_stale_upload_bytes",
        "Bytes in uploads older than the purge age.",
        t.stale_upload_bytes,
    );
    x.one(
        "regfsck_du_dangling_links",
        "_layers link files whose blob is gone (the registry never cleans them).",
        t.dangling_links,
    );
    x.one(
        "regfsck_du_dangling_link_bytes",
        "Bytes of the dangling _layers link files.",
        t.dangling_link_bytes,
    );
    x.one(
        "regfsck_du_residue_bytes",
        "Temp residue and stray files the registry never cleans (complete only with --deep).",
        t.residue_bytes,
    );
    x.out
}

/// `regfsck gc`: per garbage-collect run judged (registry version × mode), whether regfsck can
/// predict it, whether it would abort or panic, what it frees and whether it is safe now.
/// `safe` is aligned with `preds`, as `runs[].safe` is in the JSON.
pub fn gc(run: &RunInfo, preds: &[Prediction], safe: &[bool]) -> String {
    let mut x = Exposition::new(run.root);
    run_families(&mut x, run);
    let key = |p: &Prediction| {
        vec![
            ("version", p.registry_version.name().to_string()),
            (
                "mode",
                if p.delete_untagged {
                    "delete-untagged"
                } else {
                    "plain"
                }
                .to_string(),
            ),
        ]
    };
    let predictable = || preds.iter().filter(|p| p.cannot_predict.is_none());
    x.gauge(
        "regfsck_gc_predictable",
        "1 when regfsck can predict this garbage-collect run; 0 when the run would read what regfsck could not read or replay (only this and regfsck_gc_safe are then written for it).",
        preds
            .iter()
            .map(|p| (key(p), Value::from(p.cannot_predict.is_none()))),
    );
    x.gauge(
        "regfsck_gc_safe",
        "1 when this garbage-collect run is safe to run now (no abort, no tagged data lost, predictable), else 0.",
        preds
            .iter()
            .zip(safe)
            .map(|(p, s)| (key(p), Value::from(*s))),
    );
    x.gauge(
        "regfsck_gc_would_abort",
        "1 when this garbage-collect run would stop with an error or a panic.",
        predictable().map(|p| (key(p), Value::from(p.abort.is_some()))),
    );
    x.gauge(
        "regfsck_gc_would_panic",
        "1 when this garbage-collect run would panic (exit status 2) rather than fail cleanly.",
        predictable().map(|p| (key(p), Value::from(p.panic))),
    );
    x.gauge(
        "regfsck_gc_reclaimable_bytes",
        "Bytes of the blobs this garbage-collect run deletes (0 when it aborts: its dry run deletes none).",
        predictable().map(|p| (key(p), Value::Int(p.freed_bytes))),
    );
    x.gauge(
        "regfsck_gc_eligible_blobs",
        "Blobs this garbage-collect run deletes.",
        predictable().map(|p| (key(p), Value::Int(p.eligible_blobs.len() as u64))),
    );
    x.gauge(
        "regfsck_gc_eligible_manifests",
        "Manifests this garbage-collect run deletes (with --delete-untagged).",
        predictable().map(|p| (key(p), Value::Int(p.eligible_manifests.len() as u64))),
    );
    x.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("a\nb"), "a\\nb");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
        let run = RunInfo {
            command: "du",
            root: "/srv/\"x\"",
            end_unix_seconds: 1.5,
            duration_seconds: 0.25,
            exit_status: 8,
        };
        let text = run_only(&run);
        assert!(
            text.contains("regfsck_run_exit_status{root=\"/srv/\\\"x\\\"\",command=\"du\"} 8\n")
        );
        assert!(text.contains(
            "regfsck_run_end_timestamp_seconds{root=\"/srv/\\\"x\\\"\",command=\"du\"} 1.5\n"
        ));
    }

    #[test]
    fn floats_are_written_as_go_parses_them() {
        assert_eq!(float(1.0), "1");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(1_700_000_000.25), "1700000000.25");
        assert_eq!(float(f64::INFINITY), "+Inf");
    }
}

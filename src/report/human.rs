//! Human rendering of the check report: a summary, findings grouped by code (code first, so it can
//! be copied into `--severity` or a skip list), and what to run next. Formatting only.

use super::{Report, ReportFinding};
use std::fmt::Write as _;

pub struct HumanOptions {
    /// Findings shown per code; `None` shows all (`--all`).
    pub per_code: Option<usize>,
}

/// Binary units, one decimal: `1.5 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn context(f: &ReportFinding) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &f.repo {
        parts.push(format!("repo {r}"));
    }
    if let Some(t) = &f.tag {
        parts.push(format!("tag {t}"));
    }
    if let Some(d) = &f.digest {
        parts.push(d.clone());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" [{}]", parts.join(", "))
    }
}

/// `affects team/app:v1, team/app:v2, beta/app:v1 and 3 more`.
fn affected(f: &ReportFinding) -> Option<String> {
    let all: Vec<String> = f
        .affected
        .iter()
        .flat_map(|a| a.tags.iter().map(move |t| format!("{}:{t}", a.repo)))
        .collect();
    if all.is_empty() {
        return None;
    }
    const SHOWN: usize = 5;
    let mut s = format!("affects {}", all[..all.len().min(SHOWN)].join(", "));
    if all.len() > SHOWN {
        s.push_str(&format!(" and {} more", all.len() - SHOWN));
    }
    Some(s)
}

/// The fix line of one group of findings of the same code (those shown).
fn fix_line(o: &mut String, store: &str, has_repos: bool, group: &[&ReportFinding]) {
    let Some(first) = group.first() else { return };
    let hints: Vec<_> = group.iter().map(|f| f.repair.as_ref()).collect();
    let text = if group.len() == 1 {
        first.fix.clone()
    } else {
        super::advice::group_fix(first.code, &hints, store, has_repos)
    };
    let _ = writeln!(o, "  fix: {text}");
}

pub fn render(r: &Report, opts: &HumanOptions) -> String {
    let s = &r.summary;
    let v = &s.verification;
    let mut o = String::new();
    let _ = writeln!(o, "regfsck check {}", r.root);
    let _ = writeln!(
        o,
        "  {}, {}, {}, {} ({}), {}",
        plural(s.repositories, "repository", "repositories"),
        plural(s.tags, "tag", "tags"),
        plural(s.revisions, "revision", "revisions"),
        plural(s.blobs, "blob", "blobs"),
        size(s.blob_bytes),
        plural(s.uploads, "upload", "uploads"),
    );
    if v.no_verify {
        let _ = writeln!(o, "  content not verified (--no-verify)");
    } else {
        let rate = if s.hash_seconds > 0.0 && s.hashed_bytes > 0 {
            format!(
                ", {}/s",
                size((s.hashed_bytes as f64 / s.hash_seconds) as u64)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  hashed {} ({}) in {:.2}s{rate}{}{}",
            plural(s.hashed_blobs, "blob", "blobs"),
            size(s.hashed_bytes),
            s.hash_seconds,
            match &v.subset {
                Some(sub) => format!(", selected by --verify-subset {sub}"),
                None => String::new(),
            },
            match v.stopped {
                Some("time-limit") => format!(
                    "; stopped at the --max-duration limit, {} left",
                    plural(v.left_blobs, "blob", "blobs")
                ),
                Some(_) => format!(
                    "; interrupted, {} left",
                    plural(v.left_blobs, "blob", "blobs")
                ),
                None => String::new(),
            },
        );
        let _ = writeln!(
            o,
            "  content verified: {} of {} ({} of {}){}",
            v.verified_blobs,
            plural(s.blobs, "blob", "blobs"),
            size(v.verified_bytes),
            size(s.blob_bytes),
            if v.state_file.is_some() && v.verified_blobs > s.hashed_blobs {
                match v.reverify_after_seconds {
                    Some(w) => format!(
                        ", counting earlier runs within the last {}",
                        crate::model::duration::format(w.max(0) as u64)
                    ),
                    None => ", counting earlier runs".into(),
                }
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        o,
        "  {}, {}, {}{}",
        plural(s.errors, "error", "errors"),
        plural(s.warnings, "warning", "warnings"),
        plural(s.infos, "info", "infos"),
        if s.skipped > 0 {
            format!(" ({} skipped by the skip list)", s.skipped)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        o,
        "  took {:.2}s (scan {:.2}s, hashing {:.2}s){}",
        s.wall_seconds,
        s.scan_seconds,
        s.hash_seconds,
        s.requests
            .map(|n| format!(", {}", plural(n, "request", "requests")))
            .unwrap_or_default()
    );
    let mut i = 0;
    while i < r.findings.len() {
        let code = r.findings[i].code;
        let group: Vec<&ReportFinding> = r.findings[i..]
            .iter()
            .take_while(|f| f.code == code)
            .collect();
        i += group.len();
        let first = group[0];
        let _ = writeln!(
            o,
            "\n{}: {} ({}) — {}",
            first.severity,
            code,
            group.len(),
            code.meaning()
        );
        let shown = opts.per_code.unwrap_or(usize::MAX);
        for f in group.iter().take(shown) {
            let path = f.path.as_deref().unwrap_or("(whole store)");
            let _ = writeln!(o, "  {code}: {path}{}: {}", context(f), f.message);
            if let Some(a) = affected(f) {
                let _ = writeln!(o, "    {a}");
            }
        }
        if group.len() > shown {
            let _ = writeln!(
                o,
                "  … and {} more (--all shows every finding)",
                group.len() - shown
            );
        }
        fix_line(
            &mut o,
            &r.store_words,
            r.has_repositories,
            &group[..group.len().min(shown)],
        );
    }
    if !r.next_steps.is_empty() {
        let _ = writeln!(o, "\nNext:");
        for step in &r.next_steps {
            let _ = writeln!(o, "  - {step}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
    }
}

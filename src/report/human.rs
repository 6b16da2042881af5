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

fn plural(n: u64, one: &str, many: &str) -> String {
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

pub fn render(r: &Report, opts: &HumanOptions) -> String {
    let s = &r.summary;
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
    if s.hashed_blobs > 0 || s.fully_verified {
        let rate = if s.hash_seconds > 0.0 {
            format!(
                ", {}/s",
                size((s.hashed_bytes as f64 / s.hash_seconds) as u64)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  verified {} ({}) in {:.2}s{rate}{}",
            plural(s.hashed_blobs, "blob", "blobs"),
            size(s.hashed_bytes),
            s.hash_seconds,
            if s.fully_verified { "" } else { " (partial)" },
        );
    } else {
        let _ = writeln!(o, "  content not verified in this run");
    }
    if let Some(c) = &s.coverage {
        let _ = writeln!(
            o,
            "  coverage: {} of {} blobs ({} of {}) verified sound{}",
            c.blobs,
            s.blobs,
            size(c.bytes),
            size(s.blob_bytes),
            c.window_seconds
                .map(|w| format!(" within the last {}h", w / 3600))
                .unwrap_or_default()
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
        }
        if group.len() > shown {
            let _ = writeln!(
                o,
                "  … and {} more (--all shows every finding)",
                group.len() - shown
            );
        }
        let _ = writeln!(o, "  fix: {}", first.fix);
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

//! Severity policy, git-fsck style: per-code overrides (`--severity CODE=LEVEL`), `--strict`, and a
//! skip list of known paths or digests. Checks never decide severity; this module does.

use crate::model::digest::Digest;
use crate::model::finding::{Code, Finding, Severity};
use std::collections::HashMap;

/// One line of the skip list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkipEntry {
    /// 1-based line number in the skip-list file.
    pub line: usize,
    /// The entry as written (comment and blanks removed).
    pub text: String,
}

#[derive(Clone, Debug, Default)]
pub struct Policy {
    overrides: HashMap<Code, Severity>,
    skips: Vec<SkipEntry>,
    /// Exact paths (relative to v2), or folder prefixes ending in `/`, with their entry index.
    skip_paths: Vec<(String, usize)>,
    skip_digests: HashMap<Digest, usize>,
    /// Warnings count as errors for the exit status.
    pub strict: bool,
}

impl Policy {
    /// Parse `CODE=LEVEL`.
    pub fn add_override(&mut self, spec: &str) -> Result<(), String> {
        let (code, level) = spec
            .split_once('=')
            .ok_or_else(|| format!("--severity expects CODE=LEVEL, got {spec:?}"))?;
        let code = Code::parse(code.trim()).ok_or_else(|| {
            format!(
                "unknown finding code {:?} (see docs/checks.md)",
                code.trim()
            )
        })?;
        let level = Severity::parse(level.trim()).ok_or_else(|| {
            format!(
                "unknown severity {:?}: use error, warn or info",
                level.trim()
            )
        })?;
        self.overrides.insert(code, level);
        Ok(())
    }

    /// Skip-list text: one path (relative to `docker/registry/v2`; a trailing `/` skips a whole
    /// folder) or digest per line; `#` starts a comment.
    pub fn add_skip_list(&mut self, text: &str) -> Result<(), String> {
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let entry = self.skips.len();
            if line.contains(':') && !line.contains('/') {
                let d = Digest::parse(line).map_err(|e| {
                    format!("skip list line {}: {line:?} is not a digest ({e})", n + 1)
                })?;
                self.skip_digests.entry(d).or_insert(entry);
            } else {
                self.skip_paths
                    .push((line.trim_start_matches("./").to_string(), entry));
            }
            self.skips.push(SkipEntry {
                line: n + 1,
                text: line.to_string(),
            });
        }
        Ok(())
    }

    /// The skip list's entries, in file order.
    pub fn skip_entries(&self) -> &[SkipEntry] {
        &self.skips
    }

    pub fn severity(&self, code: Code) -> Severity {
        self.overrides
            .get(&code)
            .copied()
            .unwrap_or_else(|| code.default_severity())
    }

    pub fn skipped(&self, f: &Finding) -> bool {
        self.skip_entry(f).is_some()
    }

    /// The index (into `skip_entries`) of the first entry that skips this finding.
    pub fn skip_entry(&self, f: &Finding) -> Option<usize> {
        if let Some(&i) = f.digest.as_ref().and_then(|d| self.skip_digests.get(d)) {
            return Some(i);
        }
        let path = f.path.as_deref()?;
        self.skip_paths
            .iter()
            .find(|(s, _)| path == s || (s.ends_with('/') && path.starts_with(s.as_str())))
            .map(|(_, i)| *i)
    }

    /// Whether a finding of this severity makes the run fail.
    pub fn is_failure(&self, sev: Severity) -> bool {
        sev == Severity::Error || (self.strict && sev == Severity::Warn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_skips() {
        let mut p = Policy::default();
        assert_eq!(p.severity(Code::TagDangling), Severity::Error);
        p.add_override("tag-dangling=warn").unwrap();
        assert_eq!(p.severity(Code::TagDangling), Severity::Warn);
        assert!(p.add_override("nope=warn").is_err());
        assert!(p.add_override("tag-dangling=fatal").is_err());
        assert!(p.add_override("tag-dangling").is_err());

        let d = Digest::empty_sha256();
        p.add_skip_list(&format!(
            "# known\nrepositories/old/\n{d}  # empty\nblobs/x/data\n"
        ))
        .unwrap();
        let f = Finding::new(Code::PathUnrecognized, "repositories/old/x", "m");
        assert!(p.skipped(&f));
        assert!(!p.skipped(&Finding::new(
            Code::PathUnrecognized,
            "repositories/older",
            "m"
        )));
        assert!(p.skipped(&Finding::new(Code::BlobStrayFile, "blobs/x/data", "m")));
        assert!(p.skipped(&Finding::new(Code::BlobEmpty, "blobs/y", "m").digest(&d)));
        assert!(p.add_skip_list("sha256:nothex\n").is_err());
        let lines: Vec<usize> = p.skip_entries().iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(p.skip_entry(&f), Some(0));
        assert_eq!(
            p.skip_entry(&Finding::new(Code::BlobStrayFile, "blobs/x/data", "m")),
            Some(2)
        );
    }

    #[test]
    fn strict_counts_warnings() {
        let mut p = Policy::default();
        assert!(!p.is_failure(Severity::Warn));
        p.strict = true;
        assert!(p.is_failure(Severity::Warn));
        assert!(!p.is_failure(Severity::Info));
    }
}

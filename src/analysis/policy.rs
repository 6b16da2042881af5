//! Severity policy, git-fsck style: per-code overrides (`--severity CODE=LEVEL`), `--strict`, and a
//! skip list of known paths or digests. Checks never decide severity; this module does.

use crate::model::digest::{Digest, DigestSet};
use crate::model::finding::{Code, Finding, Severity};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Policy {
    overrides: HashMap<Code, Severity>,
    /// Exact paths (relative to v2), or folder prefixes ending in `/`.
    skip_paths: Vec<String>,
    skip_digests: DigestSet,
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
            if line.contains(':') && !line.contains('/') {
                let d = Digest::parse(line).map_err(|e| {
                    format!("skip list line {}: {line:?} is not a digest ({e})", n + 1)
                })?;
                self.skip_digests.insert(d);
            } else {
                self.skip_paths
                    .push(line.trim_start_matches("./").to_string());
            }
        }
        Ok(())
    }

    pub fn severity(&self, code: Code) -> Severity {
        self.overrides
            .get(&code)
            .copied()
            .unwrap_or_else(|| code.default_severity())
    }

    pub fn skipped(&self, f: &Finding) -> bool {
        if f.digest
            .as_ref()
            .is_some_and(|d| self.skip_digests.contains(d))
        {
            return true;
        }
        let Some(path) = f.path.as_deref() else {
            return false;
        };
        self.skip_paths
            .iter()
            .any(|s| path == s || (s.ends_with('/') && path.starts_with(s.as_str())))
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

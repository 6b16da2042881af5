//! Known disagreements, being fixed in other branches: an allow-list keyed by disagreement kind
//! and the family (and optionally label) of a minimised operation — never by seed. The fuzzer
//! still prints every one of them; only these do not fail the run. The lead removes an entry when
//! its fix lands, and the fixed-seed run then proves the fix.

use super::ops::Op;
use super::oracle::Disagreement;

pub struct Known {
    /// Disagreement kind (oracle::KINDS).
    pub kind: &'static str,
    /// Operation family (`gen::FAMILIES`) a minimised case must contain.
    pub family: &'static str,
    /// A substring of that operation's label, when the family alone is too broad.
    pub label: Option<&'static str>,
    /// Who owns the fix: branch and issue point.
    pub owner: &'static str,
    pub why: &'static str,
}

/// Empty: the fixes of #11 (Go's manifest decoding, the `_layers` fallback, the GC walk's
/// aborts and symlinks, one-run repair) have landed, and the fixed-seed and long runs show no
/// disagreement (docs/fuzzing.md, "Long runs"). An entry is for a disagreement whose fix is under
/// way on another branch, and is removed when it lands.
pub const KNOWN: &[Known] = &[];

/// The allow-list entry that covers `d` with its (minimised) operations.
pub fn classify(d: &Disagreement, ops: &[Op]) -> Option<&'static Known> {
    KNOWN.iter().find(|k| {
        k.kind == d.kind
            && (k.family == "*"
                || ops
                    .iter()
                    .any(|o| o.family() == k.family && k.label.is_none_or(|l| o.label.contains(l))))
    })
}

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

const GOJSON: &str = "gojson #11.1";
const GCWALK: &str = "gcwalk #11.3";
const FALLBACK: &str = "gcwalk #11.2";
const SAFETY: &str = "safety #11.4";

const fn k(
    kind: &'static str,
    family: &'static str,
    label: Option<&'static str>,
    owner: &'static str,
    why: &'static str,
) -> Known {
    Known {
        kind,
        family,
        label,
        owner,
        why,
    }
}

const DECODE: &str = "regfsck's manifest decoding is not Go's encoding/json";
const SYMLINK_GC: &str = "the real GC follows symlinks; the prediction ignores them";
const NON_UTF8: &str = "the real GC trips over a non-UTF-8 name; the prediction skips it";
const TAGS_STRAY: &str =
    "--delete-untagged reads tags/<entry>/current/link for every entry of tags/, files too";

/// First match wins: the specific causes come before the manifest decoding entries, because an
/// adversarial manifest is often only the vehicle (the tag) that other damage breaks.
pub const KNOWN: &[Known] = &[
    // #11.2: the `_layers` fallback (gcwalk).
    k(
        "pull-broken-but-works",
        "move",
        Some("revision-to-layers"),
        FALLBACK,
        "2.8 resolves a manifest through its _layers link when the revision link is gone",
    ),
    k(
        "repair-broke-pull",
        "move",
        Some("revision-to-layers"),
        FALLBACK,
        "lossy repair drops a tag that still pulls through the _layers fallback",
    ),
    k(
        "repair-retagged",
        "move",
        Some("revision-to-layers"),
        FALLBACK,
        "lossy repair restores a tag that still pulls through the _layers fallback to an older entry of its history",
    ),
    // #11.3: what the real GC walk trips over (gcwalk).
    k("gc-abort", "symlink", None, GCWALK, SYMLINK_GC),
    k("gc-abort-reason", "symlink", None, GCWALK, SYMLINK_GC),
    k("gc-panic", "symlink", None, GCWALK, SYMLINK_GC),
    k("gc-blobs", "symlink", None, GCWALK, SYMLINK_GC),
    k("gc-manifests", "symlink", None, GCWALK, SYMLINK_GC),
    k(
        "pull-broken-but-works",
        "symlink",
        None,
        GCWALK,
        "the scan reports a symlinked link or blob the registry follows as link-not-file or missing",
    ),
    k("gc-abort", "nonutf8", None, GCWALK, NON_UTF8),
    k("gc-abort-reason", "nonutf8", None, GCWALK, NON_UTF8),
    k("gc-blobs", "nonutf8", None, GCWALK, NON_UTF8),
    k("gc-manifests", "nonutf8", None, GCWALK, NON_UTF8),
    k("gc-abort", "stray", Some("in-tags"), GCWALK, TAGS_STRAY),
    k("gc-abort-reason", "stray", Some("in-tags"), GCWALK, TAGS_STRAY),
    // #11.4: repair converges in one run, and never breaks a tag that pulls (safety).
    k(
        "repair-not-converged",
        "*",
        None,
        SAFETY,
        "a quarantine that leaves a revision, tag or _layers link dangling is not followed up in the same plan",
    ),
    k(
        "repair-broke-pull",
        "symlink",
        None,
        SAFETY,
        "repair quarantines a symlink the registry follows, and the tag through it stops pulling",
    ),
    // #11.1: manifests decoded exactly as Go does (gojson).
    k("gc-abort", "manifest", None, GOJSON, DECODE),
    k("gc-abort-reason", "manifest", None, GOJSON, DECODE),
    k("gc-panic", "manifest", None, GOJSON, DECODE),
    k("gc-blobs", "manifest", None, GOJSON, DECODE),
    k("gc-manifests", "manifest", None, GOJSON, DECODE),
    k("pull-fine-but-fails", "manifest", None, GOJSON, DECODE),
    k("pull-broken-but-works", "manifest", None, GOJSON, DECODE),
    k(
        "repair-broke-pull",
        "manifest",
        None,
        GOJSON,
        "a manifest the registry serves is manifest-invalid, so lossy repair drops its tag",
    ),
    // Not a registry behaviour: the registry serves these manifests; skopeo (containers/image)
    // refuses them (ambiguous keys, a v2s2 descriptor without mediaType). No branch owns it.
    k(
        "pull-client-rejects",
        "manifest",
        None,
        "open: lead to decide",
        "the client refuses a manifest the registry serves; regfsck checks only what the registry reads",
    ),
];

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

//! The GC side of the oracle: regfsck's 2.8 predictions as `regfsck gc --format json` prints
//! them, against the real `garbage-collect --dry-run [-m]`.

use super::oracle::{dis, first_line, Disagreement, Stats};
use crate::common::registry::{gc_dry_run, gc_summary};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A 2.8 prediction from `regfsck gc --format json`.
#[derive(Clone, Debug, Default)]
pub struct Pred {
    pub abort: Option<String>,
    pub panic: bool,
    /// `cannot_predict.reason`: regfsck declines to predict this run (it would follow a
    /// symlink or read what it could not read); nothing else of the prediction is then said.
    pub unknown: Option<String>,
    pub blobs: BTreeSet<String>,
    pub manifests: BTreeSet<(String, String)>,
}

pub(super) fn parse_predictions(doc: &serde_json::Value) -> BTreeMap<bool, Pred> {
    let mut out = BTreeMap::new();
    for p in doc["predictions"].as_array().into_iter().flatten() {
        if p["registry_version"] != "2.8" {
            continue;
        }
        let mode = p["delete_untagged"].as_bool().unwrap_or(false);
        let strs = |v: &serde_json::Value| -> BTreeSet<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        };
        out.insert(
            mode,
            Pred {
                abort: p["abort"]["reason"].as_str().map(String::from),
                panic: p["panic"].as_bool().unwrap_or(false),
                unknown: p["cannot_predict"]["reason"].as_str().map(String::from),
                blobs: strs(&p["eligible_blobs"]),
                manifests: p["eligible_manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        (
                            m["repo"].as_str().unwrap_or("").to_string(),
                            m["digest"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect(),
            },
        );
    }
    out
}

const GO_JSON_ERRORS: &[&str] = &[
    "invalid character",
    "unexpected end of JSON input",
    "json: ",
    "exceeded max depth",
    "cannot unmarshal",
];

/// Abort reasons comparable across Go and Rust: the store's own location becomes `<root>`, and
/// a JSON parser's error text after "failed to retrieve manifest for digest <d>" (Go's
/// encoding/json wording, which regfsck does not reproduce) is cut on both sides when the real
/// text is one.
pub fn comparable_reasons(ours: &str, real: &str, root: &Path) -> (String, String) {
    let r = root.display().to_string();
    let (a, b) = (ours.replace(&r, "<root>"), real.replace(&r, "<root>"));
    const MARK: &str = "failed to retrieve manifest for digest sha256:";
    let cut = |t: &str| {
        t.find(MARK)
            .map(|i| i + MARK.len() + 64)
            .filter(|&e| e <= t.len())
    };
    if let Some(e) = cut(&b) {
        let rest = b[e..].trim_start_matches(": ");
        if GO_JSON_ERRORS.iter().any(|g| rest.starts_with(g)) {
            let a2 = match cut(&a) {
                Some(ea) => a[..ea].to_string(),
                None => a.clone(),
            };
            return (a2, b[..e].to_string());
        }
    }
    (a, b)
}

fn show_set<T: std::fmt::Debug>(only: Vec<&T>) -> String {
    let n = only.len();
    let shown: Vec<String> = only.iter().take(3).map(|x| format!("{x:?}")).collect();
    super::ops::shorten(&format!(
        "{n}{}{}",
        if n > 0 { ": " } else { "" },
        shown.join(", ") + if n > 3 { ", …" } else { "" }
    ))
}

/// What the real run did, in a line.
fn real_summary(root: &Path, real: &crate::common::registry::GcOutcome) -> String {
    match &real.aborted {
        Some(a) => format!(
            "aborts: {}",
            first_line(&a.replace(&root.display().to_string(), "<root>"))
        ),
        None => format!(
            "runs: {} blobs, {} manifests eligible",
            real.eligible_blobs.len(),
            real.eligible_manifests.len()
        ),
    }
}

/// Compare one mode. `symlinked`: the store holds a symlink (the only thing that may make
/// regfsck decline a prediction here: the fuzzer runs as root, so nothing is unreadable).
pub(super) fn compare_gc(
    root: &Path,
    mode: bool,
    symlinked: bool,
    pred: Option<&Pred>,
    out: &mut Vec<Disagreement>,
    stats: &mut Stats,
) {
    let subject = if mode { "-m" } else { "plain" };
    let real = gc_dry_run(root, mode);
    stats.gc_compared += 1;
    if real.aborted.is_some() {
        stats.gc_real_aborts += 1;
    }
    if real.exit_code == 0 {
        let counted = gc_summary(&real.stdout);
        if counted
            != counted
                .map(|(m, _, _)| (m, real.eligible_blobs.len(), real.eligible_manifests.len()))
            || counted.is_none()
        {
            out.push(dis(
                "oracle-parse",
                subject,
                "",
                format!(
                    "summary {counted:?} vs parsed {} blobs, {} manifests",
                    real.eligible_blobs.len(),
                    real.eligible_manifests.len()
                ),
            ));
        }
    }
    let Some(p) = pred else {
        return;
    };
    if let Some(why) = &p.unknown {
        // Declining is honest, not a disagreement; declining without a cause is one.
        stats.gc_unpredicted += 1;
        if !symlinked {
            out.push(dis(
                "gc-cannot-predict",
                subject,
                format!("cannot predict: {}", first_line(why)),
                real_summary(root, &real),
            ));
        }
        return;
    }
    let real_says = |_: &Option<String>| real_summary(root, &real);
    match (&p.abort, &real.aborted) {
        (Some(a), None) => out.push(dis(
            "gc-abort",
            subject,
            format!("aborts: {}", first_line(a)),
            real_says(&real.aborted),
        )),
        (None, Some(_)) => out.push(dis(
            "gc-abort",
            subject,
            format!(
                "runs: {} blobs, {} manifests eligible",
                p.blobs.len(),
                p.manifests.len()
            ),
            real_says(&real.aborted),
        )),
        (Some(a), Some(r)) => {
            let real_panic = real.exit_code == 2;
            if p.panic != real_panic {
                out.push(dis(
                    "gc-panic",
                    subject,
                    format!(
                        "{}: {}",
                        if p.panic { "panics" } else { "fails cleanly" },
                        first_line(a)
                    ),
                    format!("exit {}: {}", real.exit_code, first_line(r)),
                ));
            }
            let (x, y) = comparable_reasons(a, r, root);
            if x != y {
                out.push(dis(
                    "gc-abort-reason",
                    subject,
                    first_line(&x),
                    first_line(&y),
                ));
            }
        }
        (None, None) => {
            if p.blobs != real.eligible_blobs {
                out.push(dis(
                    "gc-blobs",
                    subject,
                    format!(
                        "also eligible: {}",
                        show_set(p.blobs.difference(&real.eligible_blobs).collect())
                    ),
                    format!(
                        "also eligible: {}",
                        show_set(real.eligible_blobs.difference(&p.blobs).collect())
                    ),
                ));
            }
            if p.manifests != real.eligible_manifests {
                out.push(dis(
                    "gc-manifests",
                    subject,
                    format!(
                        "also eligible: {}",
                        show_set(p.manifests.difference(&real.eligible_manifests).collect())
                    ),
                    format!(
                        "also eligible: {}",
                        show_set(real.eligible_manifests.difference(&p.manifests).collect())
                    ),
                ));
            }
        }
    }
}

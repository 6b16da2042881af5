//! One observation of a damaged store: what regfsck says (`check`, `gc --registry-version 2.8`,
//! `repair --apply --lossy` and `undo`) against what the real registry does (`garbage-collect
//! --dry-run [-m]`, pulls with skopeo through `docker-registry serve`), as a list of
//! disagreements. A `Scope` runs only the parts a disagreement needs (the minimiser re-runs
//! cases many times).

use super::gc::{compare_gc, parse_predictions, Pred};
use super::ops::Op;
use super::pulls::{
    all_about_symlinks, all_for_empty_digests, blame, finding_line, footprint, on_chain, pull_all,
    pullable_tags, under, Footprint, Pulled,
};
use super::tree::{Kind, Tree};
use crate::common::registry::Registry;
use crate::common::store::{fingerprint, fixture, fixture_now, regfsck, v2};
use regfsck::model::layout::QUARANTINE_DIR;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A tag as `(repository, tag)`.
pub type TagRef = (String, String);

/// One way regfsck and the real registry (or regfsck's own promises) disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// One of `KINDS`.
    pub kind: &'static str,
    /// The GC mode (`plain`, `-m`) or the tag (`repo:tag`) it is about; empty for the whole store.
    pub subject: String,
    pub regfsck: String,
    pub real: String,
}

/// Every kind of disagreement, with what it means (docs/fuzzing.md lists the same).
pub const KINDS: &[(&str, &str)] = &[
    ("gc-abort", "regfsck predicts an abort and the real GC runs through, or the reverse"),
    ("gc-panic", "both abort, but only one of them is a panic (exit status 2)"),
    ("gc-abort-reason", "both abort, with a different reason text"),
    ("gc-blobs", "neither aborts; the eligible blob sets differ"),
    ("gc-manifests", "neither aborts; the eligible manifest sets differ (-m)"),
    (
        "gc-cannot-predict",
        "regfsck declines to predict a run of a store that holds no symlink (and, as root, nothing unreadable)",
    ),
    ("pull-fine-but-fails", "no error finding on the tag's chain, but the real pull fails"),
    ("pull-broken-but-works", "an error finding on the tag's chain, but the real pull works"),
    ("check-crash", "regfsck check printed no JSON (a panic or a crash)"),
    ("check-error", "regfsck check stopped with an operational error on a damaged store"),
    ("check-wrote", "the store changed during regfsck check"),
    ("gc-crash", "regfsck gc printed no JSON"),
    ("gc-wrote", "the store changed during regfsck gc"),
    ("repair-crash", "regfsck repair --apply panicked"),
    ("repair-error", "regfsck repair --apply stopped with an operational or usage error"),
    ("repair-broke-pull", "a tag that pulled before repair --apply --lossy fails after it"),
    (
        "repair-retagged",
        "a tag that pulled before repair --apply --lossy names another manifest after it",
    ),
    ("repair-not-converged", "a second repair right after the first still plans actions"),
    ("undo-failed", "regfsck undo of the repair run failed"),
    ("undo-not-exact", "after undo the store differs from before the repair"),
    ("oracle-parse", "the real GC's output did not parse consistently (a harness defect)"),
];

fn kind(name: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(k, _)| *k)
        .unwrap_or_else(|| panic!("unknown disagreement kind {name}"))
}

pub(super) fn dis(
    k: &str,
    subject: impl Into<String>,
    regfsck: impl Into<String>,
    real: impl Into<String>,
) -> Disagreement {
    Disagreement {
        kind: kind(k),
        subject: subject.into(),
        regfsck: regfsck.into(),
        real: real.into(),
    }
}

/// Which pulls an observation makes.
#[derive(Clone, Debug)]
pub enum Pulls {
    None,
    All,
    Only(BTreeSet<TagRef>),
}

/// What an observation runs.
#[derive(Clone, Debug)]
pub struct Scope {
    pub check: bool,
    /// GC modes to compare (`false` plain, `true` `--delete-untagged`).
    pub gc_modes: Vec<bool>,
    pub pulls: Pulls,
    pub repair: bool,
}

impl Scope {
    pub fn full() -> Scope {
        Scope {
            check: true,
            gc_modes: vec![false, true],
            pulls: Pulls::All,
            repair: true,
        }
    }

    /// Just what reproducing `d` needs.
    pub fn for_disagreement(d: &Disagreement) -> Scope {
        let tag = || {
            let (r, t) = d.subject.rsplit_once(':').unwrap_or((&d.subject, ""));
            Pulls::Only([(r.to_string(), t.to_string())].into())
        };
        let none = Scope {
            check: false,
            gc_modes: vec![],
            pulls: Pulls::None,
            repair: false,
        };
        match d.kind {
            k if k.starts_with("gc-") && k != "gc-crash" && k != "gc-wrote" => Scope {
                gc_modes: vec![d.subject == "-m"],
                ..none
            },
            "gc-crash" | "gc-wrote" | "oracle-parse" => Scope {
                gc_modes: vec![false, true],
                ..none
            },
            "pull-fine-but-fails" | "pull-broken-but-works" => Scope {
                check: true,
                pulls: tag(),
                ..none
            },
            "repair-broke-pull" | "repair-retagged" => Scope {
                check: true,
                pulls: tag(),
                repair: true,
                ..none
            },
            k if k.starts_with("repair-") || k.starts_with("undo-") => Scope {
                repair: true,
                ..none
            },
            _ => Scope {
                check: true,
                ..none
            },
        }
    }
}

/// regfsck's claims, before they are compared (a self-test tampers with them here).
#[derive(Clone, Debug, Default)]
pub struct Said {
    /// By mode (`false` plain, `true` `-m`).
    pub predictions: BTreeMap<bool, Pred>,
    /// Tags regfsck calls unpullable, with the findings that say so (every other pulled tag it
    /// calls fine).
    pub broken: BTreeMap<TagRef, Vec<String>>,
    /// Tags regfsck makes no claim about either way: no error finding, and its chain passes a
    /// symlink regfsck reported; or every error finding that blames it is about a symlink
    /// itself (regfsck never follows one, so it cannot say what the registry reads through it).
    pub unsure: BTreeSet<TagRef>,
    /// Of `unsure`: tags regfsck calls unpullable by docker and containerd only for an empty
    /// digest, which skopeo (containers/image) reads as "no config" and pulls. The lead's
    /// decision (docs/fuzzing.md, item 9): the verdict stands for the common clients, and
    /// skopeo's leniency is no evidence either way, also after a lossy repair drops the tag.
    pub lenient: BTreeSet<TagRef>,
}

pub type Tamper = dyn Fn(&Path, &mut Said) + Sync;

/// How much each oracle ran (a run that compared nothing must not pass).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub checks: usize,
    pub gc_compared: usize,
    pub gc_real_aborts: usize,
    /// Runs regfsck declined to predict (`cannot_predict`: a symlink it would have to follow).
    pub gc_unpredicted: usize,
    pub pulls: usize,
    /// Pulls skopeo refused although the registry served a manifest hashing to its digest: a
    /// client's rule, about which regfsck (which checks what the registry reads) claims nothing.
    pub client_rejects: usize,
    /// Pulled tags about which regfsck is unsure (`Said::unsure`), and how many of them worked.
    pub unsure: usize,
    pub unsure_pulled: usize,
    pub pulls_failed: usize,
    pub repairs_applied: usize,
    pub undos: usize,
    /// Tags not pulled again after a repair whose actions none of their footprint.
    pub repulls_skipped: usize,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.checks += o.checks;
        self.gc_compared += o.gc_compared;
        self.gc_real_aborts += o.gc_real_aborts;
        self.gc_unpredicted += o.gc_unpredicted;
        self.client_rejects += o.client_rejects;
        self.unsure += o.unsure;
        self.unsure_pulled += o.unsure_pulled;
        self.pulls += o.pulls;
        self.pulls_failed += o.pulls_failed;
        self.repairs_applied += o.repairs_applied;
        self.undos += o.undos;
        self.repulls_skipped += o.repulls_skipped;
    }
}

#[derive(Debug, Default)]
pub struct Observation {
    /// Operations that applied (the minimiser drops some, leaving others without a target;
    /// a case as generated applies every one).
    pub applied: usize,
    pub disagreements: Vec<Disagreement>,
    pub stats: Stats,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn panicked(&self) -> bool {
        self.code == 101 || self.stderr.contains("panicked at")
    }

    fn failure(&self) -> String {
        format!("exit {}: {}", self.code, first_line(&self.stderr))
    }
}

/// `FUZZ_REGFSCK` names another regfsck binary to test (a long run keeps a frozen copy, so that
/// builds in the worktree meanwhile do not change what it tests).
fn run_regfsck(args: &[&str]) -> Run {
    let mut cmd = match std::env::var_os("FUZZ_REGFSCK") {
        Some(bin) => std::process::Command::new(bin),
        None => regfsck(),
    };
    let out = cmd.args(args).output().expect("run regfsck");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(super) fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut l = super::ops::shorten(l);
    if l.len() > 300 {
        let mut cut = 300;
        while !l.is_char_boundary(cut) {
            cut -= 1;
        }
        l.truncate(cut);
        l.push('…');
    }
    l
}

fn fp_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("-{k}")),
            Some(w) if w != v => out.push(format!("~{k}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("+{k}"));
    }
    let n = out.len();
    out.truncate(4);
    format!("{n} paths differ: {}", super::ops::shorten(&out.join(", ")))
}

fn selected(pulls: &Pulls, all: BTreeSet<TagRef>) -> BTreeSet<TagRef> {
    match pulls {
        Pulls::None => BTreeSet::new(),
        Pulls::All => all,
        Pulls::Only(s) => all.intersection(s).cloned().collect(),
    }
}

/// Apply `ops` to a fresh copy of `fixture_name` and compare what `scope` selects.
pub fn observe(
    fixture_name: &str,
    ops: &[Op],
    scope: &Scope,
    tamper: Option<&Tamper>,
) -> Observation {
    let tmp = fixture(fixture_name);
    let root = tmp.path();
    let rs = root.to_str().unwrap();
    let now = fixture_now(root).to_string();
    let mut obs = Observation {
        applied: ops.iter().filter(|o| o.apply(root)).count(),
        ..Default::default()
    };
    let out = &mut obs.disagreements;
    let stats = &mut obs.stats;
    let fp0 = fingerprint(root, &[QUARANTINE_DIR]);
    let tags = selected(&scope.pulls, pullable_tags(root));
    let mut said = Said::default();

    // regfsck's side.
    let mut findings = Vec::new();
    if scope.check || !tags.is_empty() {
        let r = run_regfsck(&["check", rs, "--format", "json", "--quiet", "--now", &now]);
        stats.checks += 1;
        match serde_json::from_str::<serde_json::Value>(&r.stdout) {
            Ok(doc) => findings = doc["findings"].as_array().cloned().unwrap_or_default(),
            Err(_) => out.push(dis("check-crash", "", r.failure(), "")),
        }
        if r.code & 8 != 0 && !r.panicked() {
            out.push(dis("check-error", "", r.failure(), ""));
        }
        let fp1 = fingerprint(root, &[QUARANTINE_DIR]);
        if fp1 != fp0 {
            out.push(dis("check-wrote", "", fp_diff(&fp0, &fp1), ""));
        }
    }
    if !scope.gc_modes.is_empty() {
        let r = run_regfsck(&[
            "gc",
            rs,
            "--registry-version",
            "2.8",
            "--format",
            "json",
            "--quiet",
        ]);
        match serde_json::from_str::<serde_json::Value>(&r.stdout) {
            Ok(doc) => said.predictions = parse_predictions(&doc),
            Err(_) => out.push(dis("gc-crash", "", r.failure(), "")),
        }
        let fp1 = fingerprint(root, &[QUARANTINE_DIR]);
        if fp1 != fp0 {
            out.push(dis("gc-wrote", "", fp_diff(&fp0, &fp1), ""));
        }
    }
    let footprints: BTreeMap<TagRef, Footprint> = tags
        .iter()
        .map(|t| (t.clone(), footprint(root, t)))
        .collect();
    for (t, fp) in &footprints {
        let blamed = blame(&findings, t, fp);
        if all_about_symlinks(&findings, &blamed)
            || (blamed.is_empty() && on_chain(&findings, "path-symlink", fp))
        {
            said.unsure.insert(t.clone());
        } else if all_for_empty_digests(&blamed) {
            said.unsure.insert(t.clone());
            said.lenient.insert(t.clone());
        } else if !blamed.is_empty() {
            said.broken
                .insert(t.clone(), blamed.into_iter().map(finding_line).collect());
        }
    }
    if let Some(f) = tamper {
        f(root, &mut said);
    }

    // The real registry's side.
    let symlinked = !scope.gc_modes.is_empty()
        && Tree::scan(&v2(root))
            .entries
            .iter()
            .any(|e| e.kind == Kind::Symlink);
    for &mode in &scope.gc_modes {
        compare_gc(
            root,
            mode,
            symlinked,
            said.predictions.get(&mode),
            out,
            stats,
        );
    }
    let mut pulled = BTreeSet::new();
    if !tags.is_empty() {
        let reg = Registry::start(root);
        for (t, result) in pull_all(&reg, &tags) {
            let subject = format!("{}:{}", t.0, t.1);
            stats.pulls += 1;
            stats.unsure += usize::from(said.unsure.contains(&t));
            match (&result, said.broken.get(&t)) {
                (Pulled::Ok, None) if said.unsure.contains(&t) => stats.unsure_pulled += 1,
                (Pulled::Ok, Some(why)) => out.push(dis(
                    "pull-broken-but-works",
                    subject,
                    why.join("; "),
                    "pulls",
                )),
                (Pulled::Fails(e), None) if !said.unsure.contains(&t) => out.push(dis(
                    "pull-fine-but-fails",
                    subject,
                    "no error finding on its chain",
                    e.clone(),
                )),
                (Pulled::ClientRejects(_), _) => stats.client_rejects += 1,
                _ => {}
            }
            match result {
                Pulled::Ok => {
                    pulled.insert(t);
                }
                _ => stats.pulls_failed += 1,
            }
        }
    }

    // Repair and undo.
    if scope.repair {
        // A tag skopeo alone pulls (`Said::lenient`) proves nothing about what repair breaks.
        let pulled: BTreeSet<TagRef> = pulled.difference(&said.lenient).cloned().collect();
        repair_and_undo(root, &now, &fp0, &pulled, &footprints, out, stats);
    }
    obs
}

const NO_CURRENT: &str = "(no current link)";

/// What a tag's current link says (for messages: any bytes, lossily).
fn current(root: &Path, (repo, tag): &TagRef) -> String {
    let p = v2(root).join(format!(
        "repositories/{repo}/_manifests/tags/{tag}/current/link"
    ));
    match std::fs::read(p) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => NO_CURRENT.into(),
    }
}

fn repair_and_undo(
    root: &Path,
    now: &str,
    fp0: &BTreeMap<String, String>,
    pulled: &BTreeSet<TagRef>,
    footprint_before: &BTreeMap<TagRef, Footprint>,
    out: &mut Vec<Disagreement>,
    stats: &mut Stats,
) {
    let rs = root.to_str().unwrap();
    // Normally `fp0`; if check or gc wrote (reported already), undo is held to what repair saw.
    let before = fingerprint(root, &[QUARANTINE_DIR]);
    let _ = fp0;
    let current_before: BTreeMap<&TagRef, String> =
        pulled.iter().map(|t| (t, current(root, t))).collect();
    let common = ["--now", now, "--grace", "0s", "--quiet"];
    let plan_dir = tempfile::tempdir().unwrap();
    let plan_file = plan_dir.path().join("plan.json");
    let pf = plan_file.to_str().unwrap();
    // `--force`: this case's registry is stopped, but on a shared machine the live guard also
    // counts other tests' registries whose config is already gone as serving every store (it
    // cannot tell which store they serve), and refuses now and then. The grace window holds.
    let mut args = vec![
        "repair", rs, "--apply", "--lossy", "--yes", "--force", "--plan", pf,
    ];
    args.extend(common);
    let r = run_regfsck(&args);
    if r.panicked() {
        out.push(dis(
            "repair-crash",
            "",
            first_line(&r.stderr[r.stderr.find("panicked at").unwrap_or(0)..]),
            "",
        ));
        return;
    }
    if r.code & (8 | 16) != 0 {
        out.push(dis("repair-error", "", r.failure(), ""));
        return;
    }
    let Some(run_id) = r
        .stdout
        .split(" as run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(String::from)
    else {
        return; // nothing to apply
    };
    stats.repairs_applied += 1;
    for t in pulled {
        let after = current(root, t);
        let was = &current_before[t];
        // A tag that is gone is `repair-broke-pull`'s business (it no longer pulls).
        if &after != was && after != NO_CURRENT {
            out.push(dis(
                "repair-retagged",
                format!("{}:{}", t.0, t.1),
                super::ops::shorten(&format!("now names {after}")),
                super::ops::shorten(&format!("named {was} and pulled")),
            ));
        }
    }
    // Re-pull the tags whose footprint the applied actions touched. A pull reads only its
    // footprint, except through symlinks (the registry follows them): with any symlink in the
    // store, every tag is pulled again.
    let touched: Vec<String> = std::fs::read_to_string(&plan_file)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|p| {
            p["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| ["path", "from", "to"].map(|k| a[k].as_str().map(String::from)))
                .flatten()
                .collect()
        })
        .unwrap_or_default();
    let symlinks = Tree::scan(&v2(root))
        .entries
        .iter()
        .any(|e| e.kind == Kind::Symlink);
    let again: BTreeSet<TagRef> = pulled
        .iter()
        .filter(|t| {
            let fp = footprint_before.get(*t);
            symlinks
                || fp.is_none_or(|fp| {
                    touched.iter().any(|p| {
                        fp.exact.iter().any(|e| under(e, p) || under(p, e))
                            || fp.prefixes.iter().any(|x| under(x, p) || under(p, x))
                    })
                })
        })
        .cloned()
        .collect();
    stats.repulls_skipped += pulled.len() - again.len();
    if !again.is_empty() {
        // A fresh registry, as the repair's own advice says.
        let reg = Registry::start(root);
        for (t, result) in pull_all(&reg, &again) {
            if let Pulled::Fails(e) | Pulled::ClientRejects(e) = result {
                let actions: Vec<&str> = r
                    .stdout
                    .lines()
                    .filter(|l| l.contains(&format!("repositories/{}/", t.0)))
                    .map(str::trim)
                    .take(3)
                    .collect();
                out.push(dis(
                    "repair-broke-pull",
                    format!("{}:{}", t.0, t.1),
                    super::ops::shorten(&format!("applied: {}", actions.join(" | "))),
                    e,
                ));
            }
        }
    }
    let mut args = vec!["repair", rs, "--lossy"];
    args.extend(common);
    let again = run_regfsck(&args);
    if !again.stdout.contains("Nothing to repair.") {
        let planned: Vec<&str> = again
            .stdout
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("      "))
            .map(str::trim)
            .take(3)
            .collect();
        out.push(dis(
            "repair-not-converged",
            "",
            super::ops::shorten(&format!("second run plans: {}", planned.join(" | "))),
            "",
        ));
    }
    let u = run_regfsck(&["undo", rs, "--run", &run_id, "--force"]);
    stats.undos += 1;
    if u.code != 0 {
        out.push(dis("undo-failed", "", u.failure(), ""));
    }
    let after = fingerprint(root, &[QUARANTINE_DIR]);
    if after != before {
        out.push(dis("undo-not-exact", "", fp_diff(&before, &after), ""));
    }
}

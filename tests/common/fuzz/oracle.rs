//! One observation of a damaged store: what regfsck says (`check`, `gc --registry-version 2.8`,
//! `repair --apply --lossy` and `undo`) against what the real registry does (`garbage-collect
//! --dry-run [-m]`, pulls with skopeo through `docker-registry serve`), as a list of
//! disagreements. A `Scope` runs only the parts a disagreement needs (the minimiser re-runs
//! cases many times).

use super::ops::Op;
use super::tree::{repo_of, valid_repo, valid_tag, Kind, Tree};
use crate::common::registry::{gc_dry_run, gc_summary, Registry};
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
    ("pull-fine-but-fails", "no error finding on the tag's chain, but the real pull fails"),
    ("pull-broken-but-works", "an error finding on the tag's chain, but the real pull works"),
    (
        "pull-client-rejects",
        "no error finding; the registry serves the manifest (200, hashing to its digest) but skopeo refuses it",
    ),
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

fn dis(
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
            "pull-fine-but-fails" | "pull-broken-but-works" | "pull-client-rejects" => Scope {
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

/// A 2.8 prediction from `regfsck gc --format json`.
#[derive(Clone, Debug, Default)]
pub struct Pred {
    pub abort: Option<String>,
    pub panic: bool,
    pub blobs: BTreeSet<String>,
    pub manifests: BTreeSet<(String, String)>,
}

/// regfsck's claims, before they are compared (a self-test tampers with them here).
#[derive(Clone, Debug, Default)]
pub struct Said {
    /// By mode (`false` plain, `true` `-m`).
    pub predictions: BTreeMap<bool, Pred>,
    /// Tags regfsck calls unpullable, with the findings that say so (every other pulled tag it
    /// calls fine).
    pub broken: BTreeMap<TagRef, Vec<String>>,
    /// Tags without an error finding whose chain passes a symlink regfsck reported: it does not
    /// follow symlinks, so it makes no claim about them either way.
    pub unsure: BTreeSet<TagRef>,
}

pub type Tamper = dyn Fn(&Path, &mut Said) + Sync;

/// How much each oracle ran (a run that compared nothing must not pass).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub checks: usize,
    pub gc_compared: usize,
    pub gc_real_aborts: usize,
    pub pulls: usize,
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

/// Error codes that mean "a pull of what this finding is about fails" (docs/checks.md).
pub const UNPULLABLE: &[&str] = &[
    "blob-digest-mismatch",
    "blob-size-mismatch",
    "blob-empty",
    "blob-path-invalid",
    "link-malformed",
    "link-mismatch",
    "link-not-file",
    "revision-blob-missing",
    "manifest-invalid",
    "manifest-ref-missing",
    "manifest-ref-unlinked",
    "index-child-missing",
    "tag-current-missing",
    "tag-dangling",
    "repo-missing-layers",
    "repo-name-invalid",
    "path-unreadable",
];

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

fn run_regfsck(args: &[&str]) -> Run {
    let out = regfsck().args(args).output().expect("run regfsck");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn first_line(s: &str) -> String {
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

/// The tags a client can address: real tag folders with valid names in repositories with valid
/// names, none of it below a symlink (regfsck never follows one, so it claims nothing there).
pub fn pullable_tags(root: &Path) -> BTreeSet<TagRef> {
    let tree = Tree::scan(&v2(root));
    tree.tag_dirs()
        .into_iter()
        .filter(|e| e.kind == Kind::Dir)
        .filter_map(|e| {
            let repo = repo_of(&e.path)?;
            let tag = std::str::from_utf8(e.name()).ok()?.to_string();
            (valid_repo(&repo) && valid_tag(&tag)).then_some((repo, tag))
        })
        .collect()
}

/// What a pull of a tag reads, as paths (relative to v2) and digests: the tag's folder and
/// current link, then every manifest and blob its manifest chain names (any `sha256:<hex>` in
/// the manifest bytes: deliberately generous, so that a finding about any of them counts).
#[derive(Default, Debug)]
struct Footprint {
    exact: Vec<String>,
    prefixes: Vec<String>,
    digests: BTreeSet<String>,
}

fn read_regular(p: &Path) -> Option<Vec<u8>> {
    std::fs::symlink_metadata(p)
        .ok()
        .filter(|m| m.is_file())
        .and_then(|_| std::fs::read(p).ok())
}

fn digests_in(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let pat = b"sha256:";
    let mut i = 0;
    while i + pat.len() + 64 <= bytes.len() {
        if &bytes[i..i + pat.len()] == pat {
            let hex = &bytes[i + pat.len()..i + pat.len() + 64];
            if hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                out.push(String::from_utf8_lossy(hex).into_owned());
                i += pat.len() + 64;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn footprint(root: &Path, (repo, tag): &TagRef) -> Footprint {
    let v = v2(root);
    let r = format!("repositories/{repo}");
    let mut fp = Footprint {
        exact: [
            "",
            "/_layers",
            "/_layers/sha256",
            "/_manifests",
            "/_manifests/revisions",
            "/_manifests/revisions/sha256",
            "/_manifests/tags",
        ]
        .iter()
        .map(|s| format!("{r}{s}"))
        .collect(),
        prefixes: vec![format!("{r}/_manifests/tags/{tag}/current")],
        digests: BTreeSet::new(),
    };
    fp.exact.push(format!("{r}/_manifests/tags/{tag}"));
    let cur = read_regular(&v.join(format!("{r}/_manifests/tags/{tag}/current/link")));
    let Some(first) = cur.as_deref().and_then(|c| {
        let s = std::str::from_utf8(c).ok()?.strip_prefix("sha256:")?;
        (digests_in(c).first().map(String::as_str) == Some(s)).then(|| s.to_string())
    }) else {
        return fp;
    };
    let mut queue = vec![(first, 0)];
    while let Some((d, depth)) = queue.pop() {
        if !fp.digests.insert(d.clone()) {
            continue;
        }
        let blob = format!("blobs/sha256/{}/{d}", &d[..2]);
        fp.prefixes.push(blob.clone());
        fp.prefixes
            .push(format!("{r}/_manifests/revisions/sha256/{d}"));
        fp.prefixes.push(format!("{r}/_layers/sha256/{d}"));
        if depth < 3 {
            if let Some(bytes) = read_regular(&v.join(&blob).join("data")) {
                for x in digests_in(&bytes) {
                    queue.push((x, depth + 1));
                }
            }
        }
    }
    fp
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

/// The unpullable-kind error findings that concern this tag.
fn blame(findings: &[serde_json::Value], t: &TagRef, fp: &Footprint) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f["severity"] == "error")
        .filter(|f| UNPULLABLE.contains(&f["code"].as_str().unwrap_or("")))
        .filter(|f| {
            let path = f["path"].as_str().unwrap_or("");
            let repo = f["repo"].as_str();
            let on_path =
                fp.exact.iter().any(|e| e == path) || fp.prefixes.iter().any(|p| under(path, p));
            // Other tags and this tag's history are not read by a pull of it, whatever digest
            // their findings name.
            let on_digest = !path.contains("/_manifests/tags/")
                && f["digest"]
                    .as_str()
                    .and_then(|d| d.strip_prefix("sha256:"))
                    .is_some_and(|d| fp.digests.contains(d))
                && repo.is_none_or(|r| r == t.0);
            on_path || on_digest
        })
        .map(|f| {
            format!(
                "{} at {}",
                f["code"].as_str().unwrap_or(""),
                super::ops::shorten(f["path"].as_str().unwrap_or("(store)"))
            )
        })
        .collect()
}

/// Whether a finding with `code` sits on the tag's footprint.
fn on_chain(findings: &[serde_json::Value], code: &str, fp: &Footprint) -> bool {
    findings.iter().any(|f| {
        let path = f["path"].as_str().unwrap_or("");
        f["code"] == code
            && (fp.exact.iter().any(|e| e == path) || fp.prefixes.iter().any(|p| under(path, p)))
    })
}

fn parse_predictions(doc: &serde_json::Value) -> BTreeMap<bool, Pred> {
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

fn compare_gc(
    root: &Path,
    mode: bool,
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
    let real_says = |r: &Option<String>| match r {
        Some(a) => format!(
            "aborts: {}",
            first_line(&a.replace(&root.display().to_string(), "<root>"))
        ),
        None => format!(
            "runs: {} blobs, {} manifests eligible",
            real.eligible_blobs.len(),
            real.eligible_manifests.len()
        ),
    };
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

/// How a real pull of a tag went.
#[derive(Clone, Debug)]
pub enum Pulled {
    Ok,
    /// The registry or the data failed (what regfsck is about).
    Fails(String),
    /// The registry served a manifest that hashes to its digest, and the client refused it.
    ClientRejects(String),
}

/// The bytes a manifest's digest is computed over: the body itself, or for a signed schema1
/// manifest (2.8 signs an unsigned one on the fly, with a fresh key) the JWS payload the
/// signature's protected header describes, as every client computes it.
fn jws_payload(body: &[u8]) -> Vec<u8> {
    let header = (|| {
        let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
        let protected = doc["signatures"][0]["protected"].as_str()?;
        let h: serde_json::Value = serde_json::from_slice(&base64url(protected)?).ok()?;
        let len = h["formatLength"].as_u64()? as usize;
        let tail = base64url(h["formatTail"].as_str()?)?;
        Some((len, tail))
    })();
    match header {
        Some((len, tail)) if len <= body.len() => [&body[..len], &tail[..]].concat(),
        _ => body.to_vec(),
    }
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// Pull a tag with skopeo (which verifies every blob and child manifest), and check that the
/// manifest served for the tag hashes to the digest the registry names for it (skopeo does not
/// for a tag, but every client pulling by digest does). A failure that looks like the network
/// (not an answer about the tag) is retried once, so that a loaded machine is no disagreement.
fn pull(reg: &Registry, (repo, tag): &TagRef) -> Pulled {
    use sha2::{Digest as _, Sha256};
    let transient = |e: &String| {
        ["connection", "timeout", "EOF", "reset"]
            .iter()
            .any(|w| e.contains(w))
    };
    let skopeo = reg.pull(repo, tag).or_else(|e| {
        if transient(&e) {
            reg.pull(repo, tag)
        } else {
            Err(e)
        }
    });
    let answer = reg.get_manifest(repo, tag);
    let served = match &answer {
        Some(a) if a.status == 200 => {
            let hash = format!("sha256:{:x}", Sha256::digest(jws_payload(&a.body)));
            if a.digest.as_deref() == Some(hash.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "manifest GET 200 but its body hashes to {hash}, not to {:?}: a client pulling by digest rejects it",
                    a.digest
                ))
            }
        }
        Some(a) => Err(format!("manifest GET {}", a.status)),
        None => Err("manifest GET: no answer".to_string()),
    };
    match (skopeo, served) {
        (Ok(()), Ok(())) => Pulled::Ok,
        (Ok(()), Err(e)) => Pulled::Fails(super::ops::shorten(&e)),
        (Err(e), served) => {
            let e = first_line(&e.replace(&format!("127.0.0.1:{}", reg.port), "registry"));
            // "initializing image from source" is where skopeo parses the manifest it was served.
            if served.is_ok() && e.contains("initializing image from source") {
                Pulled::ClientRejects(format!("manifest GET 200; skopeo: {e}"))
            } else {
                let status = served.err().unwrap_or_else(|| "manifest GET 200".into());
                Pulled::Fails(format!("{status}; skopeo: {e}"))
            }
        }
    }
}

/// Pull every tag, a few at a time (each pull is a skopeo process).
fn pull_all(reg: &Registry, tags: &BTreeSet<TagRef>) -> BTreeMap<TagRef, Pulled> {
    let list: Vec<&TagRef> = tags.iter().collect();
    let out = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for chunk in list.chunks(list.len().div_ceil(3).max(1)) {
            let out = &out;
            s.spawn(move || {
                for t in chunk {
                    let r = pull(reg, t);
                    out.lock().unwrap().insert((*t).clone(), r);
                }
            });
        }
    });
    out.into_inner().unwrap()
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
        let why = blame(&findings, t, fp);
        if !why.is_empty() {
            said.broken.insert(t.clone(), why);
        } else if on_chain(&findings, "path-symlink", fp) {
            said.unsure.insert(t.clone());
        }
    }
    if let Some(f) = tamper {
        f(root, &mut said);
    }

    // The real registry's side.
    for &mode in &scope.gc_modes {
        compare_gc(root, mode, said.predictions.get(&mode), out, stats);
    }
    let mut pulled = BTreeSet::new();
    if !tags.is_empty() {
        let reg = Registry::start(root);
        for (t, result) in pull_all(&reg, &tags) {
            let subject = format!("{}:{}", t.0, t.1);
            stats.pulls += 1;
            match (&result, said.broken.get(&t)) {
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
                (Pulled::ClientRejects(e), None) => out.push(dis(
                    "pull-client-rejects",
                    subject,
                    "no error finding on its chain",
                    e.clone(),
                )),
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
    let mut args = vec!["repair", rs, "--apply", "--lossy", "--yes", "--plan", pf];
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
    let u = run_regfsck(&["undo", rs, "--run", &run_id]);
    stats.undos += 1;
    if u.code != 0 {
        out.push(dis("undo-failed", "", u.failure(), ""));
    }
    let after = fingerprint(root, &[QUARANTINE_DIR]);
    if after != before {
        out.push(dis("undo-not-exact", "", fp_diff(&before, &after), ""));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn jws_payload_is_the_signed_prefix_plus_tail() {
        // As docker-registry 2.8 serves an unsigned schema1 manifest: signed on the fly.
        let body = br#"{"a":1,"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjYsImZvcm1hdFRhaWwiOiJmUSJ9"}]}"#;
        assert_eq!(super::jws_payload(body), br#"{"a":1}"#.to_vec());
        assert_eq!(super::jws_payload(b"{}"), b"{}".to_vec());
        assert_eq!(super::base64url("aGk").unwrap(), b"hi".to_vec());
    }
}

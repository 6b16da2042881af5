//! The pull side of the oracle: which tags a client can address, what a pull of a tag reads
//! (its footprint) and which of regfsck's findings therefore call it broken, and a real pull
//! through `docker-registry serve` with skopeo plus a check of the manifest served.

use super::oracle::{first_line, TagRef};
use super::tree::{repo_of, valid_repo, valid_tag, Kind, Tree};
use crate::common::registry::Registry;
use crate::common::store::v2;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
pub(super) struct Footprint {
    pub exact: Vec<String>,
    pub prefixes: Vec<String>,
    pub digests: BTreeSet<String>,
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

pub(super) fn footprint(root: &Path, (repo, tag): &TagRef) -> Footprint {
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
        // First: the tag's `current/` (`blame` reads it).
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

pub(super) fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

/// The unpullable-kind error findings that regfsck says break this tag: those whose `affected`
/// list names it (regfsck's own claim, from the manifests as the registry decodes them), and
/// those on the paths every pull of it reads (the repository's folders, the tag's folder and its
/// `current/`). The footprint's objects are not used here: it names any digest the manifest
/// bytes mention, also under keys the registry ignores, which would blame a tag for a blob its
/// pull never fetches.
pub(super) fn blame<'f>(
    findings: &'f [serde_json::Value],
    t: &TagRef,
    fp: &Footprint,
) -> Vec<&'f serde_json::Value> {
    let current = fp.prefixes.first().map(String::as_str).unwrap_or("");
    findings
        .iter()
        .filter(|f| f["severity"] == "error")
        .filter(|f| UNPULLABLE.contains(&f["code"].as_str().unwrap_or("")))
        .filter(|f| {
            let path = f["path"].as_str().unwrap_or("");
            let own = fp.exact.iter().any(|e| e == path) || under(path, current);
            let affected = f["affected"].as_array().into_iter().flatten().any(|a| {
                a["repo"] == t.0.as_str()
                    && a["tags"]
                        .as_array()
                        .is_some_and(|ts| ts.iter().any(|x| x == t.1.as_str()))
            });
            own || affected
        })
        .collect()
}

/// A finding as a disagreement shows it.
pub(super) fn finding_line(f: &serde_json::Value) -> String {
    format!(
        "{} at {}",
        f["code"].as_str().unwrap_or(""),
        super::ops::shorten(f["path"].as_str().unwrap_or("(store)"))
    )
}

/// Whether every one of `blamed` is about a symbolic link (at or below a `path-symlink`
/// finding's path): regfsck never follows one (docs/checks.md, link-not-file and path-symlink),
/// so what it says there is about the link, not about what the registry reads through it.
pub(super) fn all_about_symlinks(
    findings: &[serde_json::Value],
    blamed: &[&serde_json::Value],
) -> bool {
    let links: Vec<&str> = findings
        .iter()
        .filter(|f| f["code"] == "path-symlink")
        .filter_map(|f| f["path"].as_str())
        .collect();
    !blamed.is_empty()
        && blamed.iter().all(|f| {
            let p = f["path"].as_str().unwrap_or("");
            links.iter().any(|l| under(p, l))
        })
}

/// Whether every one of `blamed` is a `manifest-invalid` for an empty digest: docker and
/// containerd refuse it, skopeo (the harness's client) reads an empty config digest as "no
/// config" and pulls, so a pull here cannot contradict regfsck (docs/fuzzing.md, item 9).
pub(super) fn all_for_empty_digests(blamed: &[&serde_json::Value]) -> bool {
    !blamed.is_empty()
        && blamed.iter().all(|f| {
            f["code"] == "manifest-invalid"
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("references an empty digest"))
        })
}

/// Whether a finding with `code` sits on the tag's footprint.
pub(super) fn on_chain(findings: &[serde_json::Value], code: &str, fp: &Footprint) -> bool {
    findings.iter().any(|f| {
        let path = f["path"].as_str().unwrap_or("");
        f["code"] == code
            && (fp.exact.iter().any(|e| e == path) || fp.prefixes.iter().any(|p| under(path, p)))
    })
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
    // No answer at all (a registry starved by a loaded machine) is asked once more, as above.
    let answer = reg
        .get_manifest(repo, tag)
        .or_else(|| reg.get_manifest(repo, tag));
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
            // "initializing image from source" is where skopeo parses the manifest it was served,
            // "parsing manifest list" the index it was served (e.g. an `artifactType` that is not
            // a string: image-spec has the field, registry 2.8's descriptor does not).
            if served.is_ok()
                && (e.contains("initializing image from source")
                    || e.contains("parsing manifest list"))
            {
                Pulled::ClientRejects(format!("manifest GET 200; skopeo: {e}"))
            } else {
                let status = served.err().unwrap_or_else(|| "manifest GET 200".into());
                Pulled::Fails(format!("{status}; skopeo: {e}"))
            }
        }
    }
}

/// Pull every tag, a few at a time (each pull is a skopeo process).
pub(super) fn pull_all(reg: &Registry, tags: &BTreeSet<TagRef>) -> BTreeMap<TagRef, Pulled> {
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

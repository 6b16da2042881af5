//! The registry's path grammar, both ways: build store paths from validated values and validate
//! names read from disk. No I/O. All paths are relative to `<rootdirectory>/docker/registry/v2`.

use crate::model::digest::{Algorithm, Digest};

/// Path of the `v2` folder below a registry's `rootdirectory`.
pub const V2_FROM_ROOT: &str = "docker/registry/v2";
/// Everything regfsck writes lives under this folder of the rootdirectory; scans skip it.
pub const QUARANTINE_DIR: &str = "regfsck-quarantine";

pub fn blob_dir(d: &Digest) -> String {
    format!("blobs/{}/{}/{}", d.algorithm().name(), d.fan_out(), d.hex())
}

pub fn blob_data(d: &Digest) -> String {
    format!("{}/data", blob_dir(d))
}

pub fn repo_dir(repo: &str) -> String {
    format!("repositories/{repo}")
}

fn alg_hex(d: &Digest) -> String {
    format!("{}/{}", d.algorithm().name(), d.hex())
}

pub fn layers_dir(repo: &str) -> String {
    format!("repositories/{repo}/_layers")
}

pub fn layer_link(repo: &str, d: &Digest) -> String {
    format!("repositories/{repo}/_layers/{}/link", alg_hex(d))
}

pub fn manifests_dir(repo: &str) -> String {
    format!("repositories/{repo}/_manifests")
}

pub fn revisions_dir(repo: &str) -> String {
    format!("repositories/{repo}/_manifests/revisions")
}

pub fn revision_link(repo: &str, d: &Digest) -> String {
    format!(
        "repositories/{repo}/_manifests/revisions/{}/link",
        alg_hex(d)
    )
}

pub fn tags_dir(repo: &str) -> String {
    format!("repositories/{repo}/_manifests/tags")
}

pub fn tag_dir(repo: &str, tag: &str) -> String {
    format!("repositories/{repo}/_manifests/tags/{tag}")
}

pub fn tag_current_link(repo: &str, tag: &str) -> String {
    format!("repositories/{repo}/_manifests/tags/{tag}/current/link")
}

pub fn tag_index_link(repo: &str, tag: &str, d: &Digest) -> String {
    format!(
        "repositories/{repo}/_manifests/tags/{tag}/index/{}/link",
        alg_hex(d)
    )
}

pub fn uploads_dir(repo: &str) -> String {
    format!("repositories/{repo}/_uploads")
}

pub fn upload_dir(repo: &str, uuid: &str) -> String {
    format!("repositories/{repo}/_uploads/{uuid}")
}

/// The link file's exact content as the registry writes it (no newline).
pub fn link_content(d: &Digest) -> String {
    d.to_string()
}

/// One path component of a repository name (§1.4):
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub fn is_valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__`, or one or more `-`.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A domain-name component, allowed (with uppercase) as the first element of a name.
fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    let an = |x: u8| x.is_ascii_alphanumeric();
    !b.is_empty() && an(b[0]) && an(b[b.len() - 1]) && b.iter().all(|&x| an(x) || x == b'-')
}

fn is_domain(first: &str) -> bool {
    // `:port` cannot reach disk (the driver's path regexp forbids `:`), so only dotted names count.
    !first.is_empty() && first.split('.').all(is_domain_component)
}

/// Whether the registry accepts `name` (the path below `repositories/`) as a repository name.
/// Mirrors `reference.WithName` as 2.8 applies it: total length at most 255.
pub fn repo_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty repository name");
    }
    if name.len() > 255 {
        return Some("repository name longer than 255 characters");
    }
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let first_ok = is_valid_path_component(first) || (!rest.is_empty() && is_domain(first));
    if !first_ok || !rest.iter().all(|c| is_valid_path_component(c)) {
        return Some("invalid reference format");
    }
    None
}

/// Tag grammar `[\w][\w.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let w = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && w(b[0])
        && b[1..].iter().all(|&x| w(x) || x == b'.' || x == b'-')
}

/// An upload id: the registry writes 36-character hyphenated UUIDs (v4 on 2.x, v7 on 3.1+).
pub fn is_upload_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `<name>.<uuid>.tmp`: crash residue of the registry's atomic PutContent (3.1+).
pub fn is_temp_residue(file_name: &str) -> bool {
    let Some(stem) = file_name.strip_suffix(".tmp") else {
        return false;
    };
    match stem.rsplit_once('.') {
        Some((base, uuid)) => !base.is_empty() && is_upload_uuid(uuid),
        None => false,
    }
}

/// Parse an `<alg>` folder name and a hex folder name into a digest.
pub fn digest_from_components(alg: &str, hex: &str) -> Option<Digest> {
    let alg = Algorithm::from_name(alg)?;
    Digest::from_hex(alg, hex.as_bytes()).ok()
}

/// What a path relative to v2 names, by the strict grammar (§1.13). Built only from validated
/// components, so a `Parsed` value is safe to turn back into a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    BlobDir(Digest),
    BlobData(Digest),
    LayerLink {
        repo: String,
        digest: Digest,
    },
    RevisionLink {
        repo: String,
        digest: Digest,
    },
    TagDir {
        repo: String,
        tag: String,
    },
    TagCurrent {
        repo: String,
        tag: String,
    },
    TagIndexLink {
        repo: String,
        tag: String,
        digest: Digest,
    },
    UploadDir {
        repo: String,
        uuid: String,
    },
    RepoDir(String),
    Other,
}

fn repo_part(name: &str) -> Option<String> {
    // Any non-empty hierarchy of names without `_` prefixes or dot segments; validity of the
    // name itself is a separate finding, not a reason to refuse the path.
    let ok = !name.is_empty()
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with('_'));
    ok.then(|| name.to_string())
}

/// Classify a v2-relative path.
pub fn parse_path(path: &str) -> Parsed {
    let parts: Vec<&str> = path.split('/').collect();
    if let ["blobs", alg, fan, hex, rest @ ..] = parts.as_slice() {
        if let Some(d) = digest_from_components(alg, hex) {
            if d.fan_out_is(fan) {
                return match rest {
                    [] => Parsed::BlobDir(d),
                    ["data"] => Parsed::BlobData(d),
                    _ => Parsed::Other,
                };
            }
        }
        return Parsed::Other;
    }
    let Some(rel) = path.strip_prefix("repositories/") else {
        return Parsed::Other;
    };
    let Some(pos) = rel.find("/_") else {
        return repo_part(rel).map_or(Parsed::Other, Parsed::RepoDir);
    };
    let Some(repo) = repo_part(&rel[..pos]) else {
        return Parsed::Other;
    };
    let tail: Vec<&str> = rel[pos + 1..].split('/').collect();
    match tail.as_slice() {
        ["_layers", alg, hex, "link"] => match digest_from_components(alg, hex) {
            Some(digest) => Parsed::LayerLink { repo, digest },
            None => Parsed::Other,
        },
        ["_manifests", "revisions", alg, hex, "link"] => match digest_from_components(alg, hex) {
            Some(digest) => Parsed::RevisionLink { repo, digest },
            None => Parsed::Other,
        },
        ["_manifests", "tags", tag] if is_valid_tag(tag) => Parsed::TagDir {
            repo,
            tag: tag.to_string(),
        },
        ["_manifests", "tags", tag, "current", "link"] if is_valid_tag(tag) => Parsed::TagCurrent {
            repo,
            tag: tag.to_string(),
        },
        ["_manifests", "tags", tag, "index", alg, hex, "link"] if is_valid_tag(tag) => {
            match digest_from_components(alg, hex) {
                Some(digest) => Parsed::TagIndexLink {
                    repo,
                    tag: tag.to_string(),
                    digest,
                },
                None => Parsed::Other,
            }
        }
        ["_uploads", uuid] if is_upload_uuid(uuid) => Parsed::UploadDir {
            repo,
            uuid: uuid.to_string(),
        },
        _ => Parsed::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        for ok in [
            "a",
            "library/alpine",
            "team/proj/app",
            "a-b__c.d",
            "a---b",
            "Localhost.X/a",
            "x.io/a/b",
        ] {
            assert_eq!(repo_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "BadName", "a/B", "_a", "a_", "a..b", "a___b", "", "a//b", "-a", "a/.b", "Host",
        ] {
            assert!(repo_name_problem(bad).is_some(), "{bad}");
        }
        assert!(repo_name_problem(&"a".repeat(256)).is_some());
    }

    #[test]
    fn tags_and_uuids() {
        assert!(is_valid_tag("v1.0-rc_1"));
        assert!(is_valid_tag("_x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(is_upload_uuid("7a7b9f0e-1a2b-4c3d-8e9f-0123456789ab"));
        assert!(!is_upload_uuid("7a7b9f0e1a2b4c3d8e9f0123456789ab"));
        assert!(is_temp_residue(
            "link.01a2038b-a7e0-7487-8e9f-0123456789ab.tmp"
        ));
        assert!(!is_temp_residue("link.tmp"));
    }

    #[test]
    fn parses_paths_back() {
        let d = Digest::empty_sha256();
        for (path, want) in [
            (blob_data(&d), Parsed::BlobData(d.clone())),
            (blob_dir(&d), Parsed::BlobDir(d.clone())),
            (
                layer_link("a/b", &d),
                Parsed::LayerLink {
                    repo: "a/b".into(),
                    digest: d.clone(),
                },
            ),
            (
                revision_link("a", &d),
                Parsed::RevisionLink {
                    repo: "a".into(),
                    digest: d.clone(),
                },
            ),
            (
                tag_current_link("a", "v1"),
                Parsed::TagCurrent {
                    repo: "a".into(),
                    tag: "v1".into(),
                },
            ),
            (
                tag_index_link("a", "v1", &d),
                Parsed::TagIndexLink {
                    repo: "a".into(),
                    tag: "v1".into(),
                    digest: d.clone(),
                },
            ),
            (
                tag_dir("a", "v1"),
                Parsed::TagDir {
                    repo: "a".into(),
                    tag: "v1".into(),
                },
            ),
            (
                upload_dir("a", "7a7b9f0e-1a2b-4c3d-8e9f-0123456789ab"),
                Parsed::UploadDir {
                    repo: "a".into(),
                    uuid: "7a7b9f0e-1a2b-4c3d-8e9f-0123456789ab".into(),
                },
            ),
            (repo_dir("x/y"), Parsed::RepoDir("x/y".into())),
        ] {
            assert_eq!(parse_path(&path), want, "{path}");
        }
        for other in [
            "blobs/sha256/00/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/data",
            "repositories/../x/_layers/sha256/ab/link",
            "repositories/a/_manifests/tags/../current/link",
            "repositories/a/_uploads/nope",
            "x",
        ] {
            assert_eq!(parse_path(other), Parsed::Other, "{other}");
        }
    }

    #[test]
    fn builds_paths() {
        let d = Digest::empty_sha256();
        assert_eq!(
            blob_data(&d),
            "blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/data"
        );
        assert_eq!(
            tag_current_link("team/app", "v1"),
            "repositories/team/app/_manifests/tags/v1/current/link"
        );
    }
}

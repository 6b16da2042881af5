//! What the cleanup commands read beyond the scan: the push time of every tag and revision (link
//! mtimes) and, for `ls`, the few manifest and config fields the inventory does not keep. The
//! rules are here once; where the mtimes and bytes come from is the medium's (`store::Storage`:
//! on a filesystem a stat and an open that never follow symbolic links, on object storage the
//! scan's listing and a GET). Reads only; an entry that cannot be statted or read is left out,
//! and whoever uses the result treats "unknown" as "keep".

use crate::model::digest::Digest;
use crate::model::inventory::Inventory;
use crate::model::layout;
use crate::model::manifest::MAX_MANIFEST_SIZE;
use crate::model::pushed::{ManifestInfo, PushTimes, Pushed, TimeSource};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The mtime of a regular file at `rel` (v2-relative), never through a symbolic link.
fn file_mtime(v2: &Path, rel: &str) -> Option<i64> {
    let m = std::fs::symlink_metadata(v2.join(rel)).ok()?;
    m.file_type().is_file().then(|| m.mtime())
}

/// Push times on a filesystem: link mtimes, statted without following symbolic links.
pub fn push_times(inv: &Inventory) -> PushTimes {
    push_times_with(inv, |rel| file_mtime(&inv.v2, rel))
}

/// Push times: a tag's is the mtime of its `current/link` (the registry rewrites it on every
/// push of the tag, even of the same digest), else of its index entry for the current digest,
/// else of that digest's revision link. A revision's is its revision link's mtime. `mtime`
/// gives the mtime of the link at a v2-relative path, when it is a file that could be seen.
pub fn push_times_with(inv: &Inventory, mtime: impl Fn(&str) -> Option<i64>) -> PushTimes {
    let mut out = PushTimes::default();
    for repo in &inv.repos {
        for rev in &repo.revisions {
            let rel = layout::revision_link(&repo.name, &rev.path_digest);
            if let Some(t) = mtime(&rel) {
                out.revisions
                    .insert((repo.name.clone(), rev.path_digest.clone()), t);
            }
        }
        for tag in &repo.tags {
            let current =
                mtime(&layout::tag_current_link(&repo.name, &tag.name)).map(|at| Pushed {
                    at,
                    source: TimeSource::CurrentLink,
                });
            let fallback = || {
                let d = tag.current.digest()?;
                mtime(&layout::tag_index_link(&repo.name, &tag.name, d))
                    .map(|at| Pushed {
                        at,
                        source: TimeSource::IndexLink,
                    })
                    .or_else(|| {
                        mtime(&layout::revision_link(&repo.name, d)).map(|at| Pushed {
                            at,
                            source: TimeSource::RevisionLink,
                        })
                    })
            };
            if let Some(p) = current.or_else(fallback) {
                out.tags.insert((repo.name.clone(), tag.name.clone()), p);
            }
        }
    }
    out
}

/// Read a blob's data, at most `cap` bytes (larger: `None`), never through a symbolic link.
fn read_blob(inv: &Inventory, d: &Digest, cap: u64) -> Option<Vec<u8>> {
    let p = inv.v2.join(layout::blob_data(d));
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(p)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 <= cap).then_some(buf)
}

/// Image config media types: anything else as a config is an artifact.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// `manifest_info_with` on a filesystem: blob data read without following symbolic links.
pub fn manifest_info(inv: &Inventory, d: &Digest) -> ManifestInfo {
    manifest_info_with(d, |b, cap| read_blob(inv, b, cap))
}

/// The display-only facts of manifest `d`: its artifactType, its children's platforms, its
/// config's `created`. `read` gives a blob's data, at most `cap` bytes (else `None`).
/// Unreadable or odd content gives empty fields, never an error.
pub fn manifest_info_with(
    d: &Digest,
    read: impl Fn(&Digest, u64) -> Option<Vec<u8>>,
) -> ManifestInfo {
    let mut info = ManifestInfo::default();
    let Some(bytes) = read(d, MAX_MANIFEST_SIZE) else {
        return info;
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return info;
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let config_type = doc["config"]["mediaType"].as_str().unwrap_or("");
    info.artifact_type = text(&doc["artifactType"]).or_else(|| {
        (!config_type.is_empty() && !IMAGE_CONFIGS.contains(&config_type))
            .then(|| config_type.to_string())
    });
    if let Some(children) = doc["manifests"].as_array() {
        info.platforms = children
            .iter()
            .filter_map(|c| {
                let p = &c["platform"];
                let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
                Some(match p["variant"].as_str() {
                    Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
                    _ => format!("{os}/{arch}"),
                })
            })
            .collect();
    }
    if IMAGE_CONFIGS.contains(&config_type) {
        let config = doc["config"]["digest"]
            .as_str()
            .and_then(|s| Digest::parse(s).ok());
        if let Some(bytes) = config.and_then(|c| read(&c, MAX_MANIFEST_SIZE)) {
            if let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                info.created = text(&cfg["created"]);
            }
        }
    }
    info
}

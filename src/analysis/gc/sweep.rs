//! The sweep's blob enumeration (`blobStore.Enumerate`): every file named `data` under `blobs/`,
//! found by a walk that follows symbolic links, parsed by `digestFromPath` (a malformed path
//! aborts, a hex shorter than two bytes panics). Well-formed blobs need no replay; this module
//! lists what else the walk meets, in walk order.

use super::fs::{unknown, Fs, GoError, ELOOP, ENOTDIR};
use super::{abort, Abort, Stop};
use crate::model::digest::Digest;
use crate::model::inventory::{BlobFault, EntryKind, EntryType, Inventory, SymlinkTarget};
use crate::model::layout;

/// go's `digestFromPath` on a v2-relative `.../data` path, as raw bytes (Go slices bytes).
pub(super) fn digest_from_path(path: &[u8]) -> Result<Digest, Stop> {
    let shown = String::from_utf8_lossy(path).into_owned();
    let trimmed = path.strip_suffix(b"/data").unwrap_or(path);
    let parts: Vec<&[u8]> = trimmed.split(|&b| b == b'/').collect();
    let hex = parts.last().copied().unwrap_or(b"");
    let next: &[u8] = if parts.len() >= 2 {
        parts[parts.len() - 2]
    } else {
        b""
    };
    if hex.len() < 2 {
        return Err(Stop::Panic(Abort {
            reason: format!(
                "panic: runtime error: slice bounds out of range [:2] with length {}",
                hex.len()
            ),
            path: Some(shown),
        }));
    }
    let algo: &[u8] = if next == &hex[..2] {
        if parts.len() >= 3 {
            parts[parts.len() - 3]
        } else {
            b""
        }
    } else {
        next
    };
    let mut text = algo.to_vec();
    text.push(b':');
    text.extend_from_slice(hex);
    Digest::parse_bytes(&text).map_err(|e| {
        abort(
            format!(
                "error enumerating blobs: filesystem: {}",
                e.registry_message()
            ),
            Some(shown),
        )
    })
}

/// What the walk meets besides well-formed blobs: a path to parse (and the bytes it frees), or a
/// stop.
enum Event {
    Data(Vec<u8>, u64),
    Stop(Stop),
}

/// The digests the enumeration yields besides the store's well-formed blobs, with the bytes
/// deleting each frees, or the stop that ends it.
pub(super) fn candidates(inv: &Inventory, fs: &Fs) -> Result<Vec<(Digest, u64)>, Stop> {
    let mut events: Vec<(Vec<u8>, Event)> = Vec::new();
    for e in &inv.entries {
        if let EntryKind::BlobPath {
            fault: BlobFault::BadPath,
            size,
        } = &e.kind
        {
            let p = e.path.as_bytes().to_vec();
            events.push((p.clone(), Event::Data(p, size.unwrap_or(0))));
        }
    }
    for (raw, size) in &inv.raw_blob_data {
        events.push((raw.clone(), Event::Data(raw.clone(), size.unwrap_or(0))));
    }
    for s in inv.symlinks_below("blobs") {
        let key = s.path.as_bytes().to_vec();
        let stat = |e: &str| {
            let text = GoError::plain(format!("stat {}: {e}", fs.abs(&s.path))).walked();
            Event::Stop(abort(
                format!("error enumerating blobs: {}", text.text),
                Some(s.path.clone()),
            ))
        };
        let name = s.path.rsplit('/').next().unwrap_or("");
        let cannot = |why: String| Event::Stop(Stop::Unknown(unknown(why, &s.path)));
        let event = match &s.target {
            SymlinkTarget::Dangling => continue,
            SymlinkTarget::Loop => stat(ELOOP),
            SymlinkTarget::NotDir => stat(ENOTDIR),
            SymlinkTarget::Unknown(why) => cannot(format!(
                "the registry's blob walk follows this symbolic link ({why})"
            )),
            SymlinkTarget::Inside { path, kind, links } => {
                match inv.v2_links.map(|b| b + links <= 40) {
                    None => cannot(
                        "a symbolic link, and the store's own path holds symbolic links".into(),
                    ),
                    Some(false) => stat(ELOOP),
                    // Deleting it removes the link, not what it leads to: frees nothing.
                    Some(true) if *kind != EntryType::Dir && name == "data" => {
                        Event::Data(key.clone(), 0)
                    }
                    Some(true) if *kind != EntryType::Dir => continue,
                    Some(true) => match layout::parse_path(path) {
                        // A blob folder: the walk finds its `data`, named by the link's path.
                        layout::Parsed::BlobDir(t) if inv.blob(&t).is_some() => {
                            let p = format!("{}/data", s.path).into_bytes();
                            Event::Data(p, 0)
                        }
                        layout::Parsed::BlobDir(_) => continue,
                        _ => cannot(format!(
                            "the registry's blob walk descends into {path} through this symbolic link"
                        )),
                    },
                }
            }
        };
        events.push((key, event));
    }
    // Depth-first over sorted listings: component by component.
    events.sort_by(|a, b| a.0.split(|&c| c == b'/').cmp(b.0.split(|&c| c == b'/')));
    let mut out = Vec::new();
    for (_, e) in events {
        match e {
            Event::Data(p, size) => out.push((digest_from_path(&p)?, size)),
            Event::Stop(s) => return Err(s),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_path_like_go() {
        let hex = "ab".repeat(32);
        let p = |s: String| s.into_bytes();
        assert!(digest_from_path(&p(format!("blobs/sha256/ab/{hex}/data"))).is_ok());
        // Missing fan-out: still a valid digest.
        assert!(digest_from_path(&p(format!("blobs/sha256/{hex}/data"))).is_ok());
        match digest_from_path(&p(format!("blobs/sha256/zz/{hex}/data"))) {
            Err(Stop::Abort(a)) => assert!(
                a.reason.ends_with("unsupported digest algorithm"),
                "{}",
                a.reason
            ),
            _ => panic!("wrong fan-out must abort"),
        }
        assert!(matches!(
            digest_from_path(b"blobs/sha256/ab/x/data"),
            Err(Stop::Panic(_))
        ));
        // Go slices bytes: one non-UTF-8 byte is a one-byte hex, which panics.
        assert!(matches!(
            digest_from_path(b"blobs/sha256/ab/\xe9/data"),
            Err(Stop::Panic(_))
        ));
        match digest_from_path(b"blobs/sha256/ab/nothex/data") {
            Err(Stop::Abort(a)) => assert!(
                a.reason.contains("unsupported digest algorithm"),
                "{}",
                a.reason
            ),
            _ => panic!(),
        }
    }
}

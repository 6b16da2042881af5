//! Replays the registry's catalog walk (`registry.Enumerate` over `WalkFallback`) from the
//! inventory's name tree: which repositories each GC version sees, in which order.
//!
//! 2.8 marks a repository by an entry named `_layers`, 3.x by `_manifests`; every other `_` entry
//! is skipped. In 2.8, skipping a *file* stops the iteration of the rest of that directory (the
//! `ErrSkipDir`-on-a-file rule), so later-sorted siblings are never seen.

use super::Version;
use crate::model::inventory::{EntryType, Inventory, TreeDir};

/// Repositories in the order the GC's walk reaches them (paths below `repositories/`).
pub fn repositories(inv: &Inventory, version: Version) -> Vec<String> {
    let marker = match version {
        Version::V2_8 => "_layers",
        Version::V3 => "_manifests",
    };
    let mut out = Vec::new();
    walk(inv, "", marker, version, &mut out);
    out
}

fn find<'a>(inv: &'a Inventory, path: &str) -> Option<&'a TreeDir> {
    inv.tree
        .binary_search_by(|t| t.path.as_str().cmp(path))
        .ok()
        .map(|i| &inv.tree[i])
}

fn walk(inv: &Inventory, dir: &str, marker: &str, version: Version, out: &mut Vec<String>) {
    let Some(node) = find(inv, dir) else {
        return;
    };
    for (name, kind) in &node.children {
        let path = if dir.is_empty() {
            name.clone()
        } else {
            format!("{dir}/{name}")
        };
        if name == marker {
            // The repository is the folder holding the marker; for a marker directly under
            // repositories/ the registry's TrimSuffix leaves the marker's own name.
            out.push(if dir.is_empty() {
                name.clone()
            } else {
                dir.to_string()
            });
            if *kind != EntryType::Dir && version == Version::V2_8 {
                return;
            }
            continue;
        }
        if name.starts_with('_') {
            if *kind != EntryType::Dir && version == Version::V2_8 {
                return;
            }
            continue;
        }
        // Symlinks are never followed by regfsck, so what lies behind one is unknown here.
        if *kind == EntryType::Dir {
            walk(inv, &path, marker, version, out);
        }
    }
}

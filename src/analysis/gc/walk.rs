//! Replays the registry's catalog walk (`registry.Enumerate` over `WalkFallback`) from the
//! inventory's name tree: which repositories each GC version sees, under which names, in which
//! order, and where the walk itself fails.
//!
//! 2.8 marks a repository by an entry named `_layers`, 3.x by `_manifests`; every other `_` entry
//! is skipped. In 2.8, skipping a *file* stops the iteration of the rest of that directory (the
//! `ErrSkipDir`-on-a-file rule), so later-sorted siblings are never seen. The walk `Stat`s every
//! entry, following symbolic links: a folder link is descended under its own name (a link to an
//! ancestor repeats the tree until a name passes 255 characters or a path passes 40 links), a
//! dangling one is skipped, a loop stops the walk with ELOOP. regfsck never follows them; the
//! scanner resolved each without following (`SymlinkTarget`).

use super::fs::{GoError, ELOOP, ENOTDIR};
use super::{abort, CannotPredict, Stop, Version, MARK};
use crate::model::inventory::{EntryType, Inventory, SymlinkTarget, TreeDir};

/// A repository as the walk meets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Visit {
    /// The name the registry gives it (the path it walked).
    pub walked: String,
    /// Where it really is (its folder below `repositories/`).
    pub real: String,
    /// Symbolic links followed to reach it.
    pub links: u32,
    /// The first symbolic link on the way, if any (v2-relative).
    pub via: Option<String>,
}

/// How many entries a replay through symbolic links may visit before regfsck gives up: the real
/// walk repeats the tree once per level of a link cycle (at most 40 levels).
const MAX_STEPS: usize = 2_000_000;

struct Walk<'a> {
    inv: &'a Inventory,
    marker: &'static str,
    version: Version,
    out: Vec<Visit>,
    steps: usize,
}

/// Repositories in the order the GC's walk reaches them, and how the walk ends when it does not
/// finish (an abort or a place regfsck cannot replay).
pub(super) fn repositories(inv: &Inventory, version: Version) -> (Vec<Visit>, Option<Stop>) {
    let marker = match version {
        Version::V2_8 => "_layers",
        Version::V3 => "_manifests",
    };
    let mut w = Walk {
        inv,
        marker,
        version,
        out: Vec::new(),
        steps: 0,
    };
    let stop = w.walk("", "", 0, None).err();
    (w.out, stop)
}

/// A folder's children in the pages the registry's walk meets them. The filesystem driver lists a
/// folder whole and sorts it. The s3 driver's `Walk` lists 1000 keys and common prefixes at a
/// time in the bucket's order (a folder `a/` sorts after a file `a-b`), sorts each page alone,
/// and an `ErrSkipDir` on a file ends only that page (`doWalk` in distribution 2.8).
fn pages<'a>(
    inv: &Inventory,
    children: &'a [(String, EntryType)],
) -> Vec<Vec<&'a (String, EntryType)>> {
    if !inv.object_store {
        return vec![children.iter().collect()];
    }
    let mut keyed: Vec<(Vec<u8>, &(String, EntryType))> = children
        .iter()
        .map(|c| {
            let mut k = c.0.as_bytes().to_vec();
            if c.1 == EntryType::Dir {
                k.push(b'/');
            }
            (k, c)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed
        .chunks(S3_PAGE)
        .map(|chunk| {
            let mut page: Vec<_> = chunk.iter().map(|(_, c)| *c).collect();
            page.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            page
        })
        .collect()
}

/// Keys and common prefixes in one page of the s3 driver's listings (`listMax`).
pub(super) const S3_PAGE: usize = 1000;

fn find<'a>(inv: &'a Inventory, path: &str) -> Option<&'a TreeDir> {
    inv.tree
        .binary_search_by(|t| t.path.as_str().cmp(path))
        .ok()
        .map(|i| &inv.tree[i])
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl Walk<'_> {
    /// `Stat` of `walked` failed; `at` is the symbolic link on disk that caused it.
    fn stat_error(&self, walked: &str, at: &str, e: &str) -> Stop {
        let text = GoError::plain(format!(
            "stat {}/repositories/{walked}: {e}",
            self.inv.v2_text
        ))
        .walked()
        .text;
        abort(
            format!("failed to mark: {text}"),
            Some(format!("repositories/{at}")),
        )
    }

    /// Walk `real` (a folder of the name tree) as the registry sees it at `walked`, having
    /// followed `links` symbolic links.
    fn walk(
        &mut self,
        walked: &str,
        real: &str,
        links: u32,
        via: Option<&str>,
    ) -> Result<(), Stop> {
        let inv = self.inv;
        let Some(node) = find(inv, real) else {
            return Ok(());
        };
        for page in pages(inv, &node.children) {
            self.walk_page(&page, walked, real, links, via)?;
        }
        Ok(())
    }

    /// One listing page of a folder; 2.8's `_`-file rule ends the page (on a filesystem the
    /// folder is one page).
    fn walk_page(
        &mut self,
        page: &[&(String, EntryType)],
        walked: &str,
        real: &str,
        links: u32,
        via: Option<&str>,
    ) -> Result<(), Stop> {
        let inv = self.inv;
        for &(name, kind) in page {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(Stop::Unknown(CannotPredict {
                    reason: "its catalog walk through symbolic links is too long to replay".into(),
                    paths: vec![format!("repositories/{walked}")],
                }));
            }
            let w = join(walked, name);
            let r = join(real, name);
            // `Stat` follows a symbolic link: what is there, where, after how many links.
            let (kind, target, total) = if *kind == EntryType::Symlink {
                let path = format!("repositories/{r}");
                let Some(s) = inv.symlink(&path) else {
                    return Err(Stop::Unknown(super::fs::unknown(
                        "a symbolic link regfsck did not resolve",
                        path,
                    )));
                };
                match &s.target {
                    SymlinkTarget::Dangling => continue, // "ignoring deleted path"
                    SymlinkTarget::Loop => return Err(self.stat_error(&w, &r, ELOOP)),
                    SymlinkTarget::NotDir => return Err(self.stat_error(&w, &r, ENOTDIR)),
                    SymlinkTarget::Unknown(why) => {
                        return Err(Stop::Unknown(super::fs::unknown(
                            format!("the catalog walk follows this symbolic link ({why})"),
                            path,
                        )))
                    }
                    SymlinkTarget::Inside {
                        path: to,
                        kind,
                        links: n,
                    } => {
                        let total = links + n;
                        match inv.v2_links {
                            None => {
                                return Err(Stop::Unknown(super::fs::unknown(
                                    "a symbolic link in the catalog walk, and the store's own path holds symbolic links",
                                    path,
                                )))
                            }
                            Some(base) if base + total > 40 => {
                                return Err(self.stat_error(&w, &r, ELOOP))
                            }
                            Some(_) => {}
                        }
                        (*kind, Some(to.clone()), total)
                    }
                }
            } else {
                (*kind, None, links)
            };
            if name == self.marker {
                // The repository is the folder holding the marker; for a marker directly under
                // repositories/ the registry's TrimSuffix leaves the marker's own name.
                let (walked_repo, real_repo) = if walked.is_empty() {
                    (name.clone(), name.clone())
                } else {
                    (walked.to_string(), real.to_string())
                };
                self.out.push(Visit {
                    walked: walked_repo,
                    real: real_repo,
                    links,
                    via: via.map(str::to_string),
                });
                if kind != EntryType::Dir && self.version == Version::V2_8 {
                    return Ok(());
                }
                continue;
            }
            if name.starts_with('_') {
                if kind != EntryType::Dir && self.version == Version::V2_8 {
                    return Ok(());
                }
                continue;
            }
            if kind != EntryType::Dir {
                continue;
            }
            match target {
                None => self.walk(&w, &r, total, via)?,
                Some(to) => match (to == "repositories")
                    .then_some("")
                    .or_else(|| to.strip_prefix("repositories/"))
                {
                    Some(t) if find(inv, t).is_some() => {
                        let link = format!("repositories/{r}");
                        self.walk(&w, t, total, Some(via.unwrap_or(&link)))?
                    }
                    _ => {
                        return Err(Stop::Unknown(super::fs::unknown(
                            format!(
                                "the catalog walk descends into {to} through this symbolic link"
                            ),
                            format!("repositories/{r}"),
                        )))
                    }
                },
            }
        }
        Ok(())
    }
}

/// The abort of a repository whose walked name the registry rejects (`reference.WithName`).
pub(super) fn name_error(v: &Visit) -> Option<Stop> {
    let walked = v.walked.as_str();
    let why = if walked.len() > 255 {
        "repository name must not be more than 255 characters"
    } else if crate::model::layout::repo_name_problem(walked).is_some() {
        "invalid reference format"
    } else {
        return None;
    };
    let at = v
        .via
        .clone()
        .unwrap_or_else(|| crate::model::layout::repo_dir(&v.real));
    Some(abort(
        format!("{MARK}failed to parse repo name {walked}: {why}"),
        Some(at),
    ))
}

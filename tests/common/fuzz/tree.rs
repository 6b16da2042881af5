//! The fuzzer's own view of a store, listed without following symlinks: where the blobs, links,
//! tags, revisions and repositories are, so that the generator picks real targets and the pull
//! oracle knows which tags exist. Deliberately independent of regfsck's scanner.

use super::ops::os;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Clone, Debug)]
pub struct Entry {
    /// Relative to `docker/registry/v2`.
    pub path: Vec<u8>,
    pub kind: Kind,
    pub size: u64,
}

impl Entry {
    pub fn comps(&self) -> Vec<&[u8]> {
        self.path.split(|&b| b == b'/').collect()
    }

    pub fn name(&self) -> &[u8] {
        self.path.rsplit(|&b| b == b'/').next().unwrap_or(&[])
    }
}

pub struct Tree {
    pub entries: Vec<Entry>,
}

fn is_hex64(b: &[u8]) -> bool {
    b.len() == 64 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl Tree {
    pub fn scan(v2: &Path) -> Tree {
        let mut entries = Vec::new();
        let mut stack = vec![Vec::<u8>::new()];
        while let Some(rel) = stack.pop() {
            let dir = if rel.is_empty() {
                v2.to_path_buf()
            } else {
                v2.join(os(&rel))
            };
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                use std::os::unix::ffi::OsStrExt;
                let mut path = rel.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(e.file_name().as_bytes());
                let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                    continue;
                };
                let ft = m.file_type();
                let kind = if ft.is_symlink() {
                    Kind::Symlink
                } else if ft.is_dir() {
                    stack.push(path.clone());
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File
                } else {
                    Kind::Other
                };
                entries.push(Entry {
                    path,
                    kind,
                    size: m.len(),
                });
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Tree { entries }
    }

    fn filter(&self, kind: Kind, f: impl Fn(&[&[u8]]) -> bool) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.kind == kind && f(&e.comps()))
            .collect()
    }

    pub fn has(&self, path: &[u8]) -> bool {
        self.entries
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .is_ok()
    }

    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn blob_data(&self) -> Vec<&Entry> {
        self.filter(Kind::File, |c| {
            c.len() == 5 && c[0] == b"blobs" && is_hex64(c[3]) && c[4] == b"data"
        })
    }

    pub fn blob_dirs(&self) -> Vec<&Entry> {
        self.filter(Kind::Dir, |c| {
            c.len() == 4 && c[0] == b"blobs" && c[1] == b"sha256" && is_hex64(c[3])
        })
    }

    pub fn links(&self) -> Vec<&Entry> {
        self.filter(Kind::File, |c| {
            c[0] == b"repositories" && c.last() == Some(&&b"link"[..])
        })
    }

    /// Real folders at `.../<parent>/<name>` below repositories, e.g. tag folders
    /// (`tags`, one level) or revision folders.
    fn below(&self, parent: &[&[u8]]) -> Vec<&Entry> {
        self.filter(Kind::Dir, |c| {
            c[0] == b"repositories"
                && c.len() > parent.len() + 1
                && c[c.len() - 1 - parent.len()..c.len() - 1] == *parent
        })
    }

    pub fn tag_dirs(&self) -> Vec<&Entry> {
        self.below(&[b"_manifests", b"tags"])
    }

    /// Revision folders named by a digest (renamed ones are not revisions any more).
    pub fn revision_dirs(&self) -> Vec<&Entry> {
        let mut v = self.below(&[b"_manifests", b"revisions", b"sha256"]);
        v.retain(|e| is_hex64(e.name()));
        v
    }

    pub fn layer_link_dirs(&self) -> Vec<&Entry> {
        let mut v = self.below(&[b"_layers", b"sha256"]);
        v.retain(|e| is_hex64(e.name()));
        v
    }

    /// Real folders named `name` below repositories.
    pub fn named(&self, name: &str) -> Vec<&Entry> {
        self.filter(Kind::Dir, |c| {
            c[0] == b"repositories" && c.last() == Some(&name.as_bytes())
        })
    }

    /// Repository folders: real folders below repositories holding `_manifests` or `_layers`.
    pub fn repos(&self) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| {
                e.kind == Kind::Dir
                    && e.path.starts_with(b"repositories/")
                    && ["_manifests", "_layers"].iter().any(|n| {
                        let mut p = e.path.clone();
                        p.push(b'/');
                        p.extend_from_slice(n.as_bytes());
                        self.get(&p).is_some_and(|x| x.kind == Kind::Dir)
                    })
            })
            .collect()
    }

    /// Real folders between `repositories` and the repositories (namespaces and repositories).
    pub fn repo_parents(&self) -> Vec<&Entry> {
        self.filter(Kind::Dir, |c| {
            c[0] == b"repositories" && c.len() >= 2 && !c.iter().any(|x| x.starts_with(b"_"))
        })
    }
}

/// The registry's repository name grammar (distribution/reference), checked here independently.
pub fn valid_repo(name: &str) -> bool {
    fn component(c: &str) -> bool {
        let b = c.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            // a separator: ".", "_", "__" or a run of "-", between alphanumerics
            let start = i;
            while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
                i += 1;
            }
            let sep = &c[start..i];
            let ok = sep == "."
                || sep == "_"
                || sep == "__"
                || (!sep.is_empty() && sep.bytes().all(|x| x == b'-'));
            if !ok || i == b.len() {
                return false;
            }
        }
        true
    }
    name.len() <= 255 && name.split('/').all(component)
}

/// `[\w][\w.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The repository a path below `repositories/` belongs to: the components before the first one
/// starting with `_`.
pub fn repo_of(path: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(path).ok()?;
    let rest = s.strip_prefix("repositories/")?;
    let comps: Vec<&str> = rest
        .split('/')
        .take_while(|c| !c.starts_with('_'))
        .collect();
    (!comps.is_empty()).then(|| comps.join("/"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        for ok in ["a", "team/proj", "a-b", "a--b", "a__b", "a.b", "a_b/c0"] {
            assert!(super::valid_repo(ok), "{ok}");
        }
        for bad in ["", "A", "a-Old", "a-", "-a", "a..b", "a___b", "a/", "a-.b"] {
            assert!(!super::valid_repo(bad), "{bad}");
        }
        assert!(super::valid_tag("v1.0-rc_1") && !super::valid_tag("-x") && !super::valid_tag(""));
    }
}

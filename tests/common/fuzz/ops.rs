//! Damage operations: each a small value (a label and a few filesystem acts with concrete paths and
//! bytes) so that a case prints as a short list, replays without the generator, and can be
//! minimised by dropping operations. Paths are bytes relative to `docker/registry/v2` (names need
//! not be UTF-8); acts never write through a symlink (an act whose target is below one is skipped).

use super::json::{show, J};
use crate::common::store::{v2, FIXTURE_MTIME};
use sha2::{Digest as _, Sha256};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One filesystem change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Act {
    Truncate {
        path: Vec<u8>,
        len: u64,
    },
    FlipBit {
        path: Vec<u8>,
        offset: u64,
        bit: u8,
    },
    /// Append bytes to a file.
    Append {
        path: Vec<u8>,
        data: Vec<u8>,
    },
    /// Create or overwrite a file (and its folders).
    Write {
        path: Vec<u8>,
        data: Vec<u8>,
    },
    /// Replace a file by an empty folder of the same name.
    FileToDir {
        path: Vec<u8>,
    },
    Remove {
        path: Vec<u8>,
    },
    Move {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Symlink {
        path: Vec<u8>,
        target: Vec<u8>,
    },
    /// Copy a tree of the store to `to`, relative to the rootdirectory (outside `v2`).
    CopyOutside {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    /// A manifest blob with its revision link and a tag on it, as the registry writes a push.
    Manifest {
        repo: String,
        tag: String,
        body: J,
    },
}

/// One logical damage: what it simulates, and the acts that do it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// `family:what`, e.g. `link:trailing-newline`; the family names the kind of damage.
    pub label: String,
    pub acts: Vec<Act>,
}

impl Op {
    pub fn new(label: impl Into<String>, acts: Vec<Act>) -> Op {
        Op {
            label: label.into(),
            acts,
        }
    }

    pub fn family(&self) -> &str {
        self.label.split(':').next().unwrap_or("")
    }

    /// Apply to the store at `root`; false when the first act could not apply (its target is gone,
    /// e.g. after the minimiser dropped the operation that made it). Later acts stop there too.
    pub fn apply(&self, root: &Path) -> bool {
        let mut any = false;
        for a in &self.acts {
            if !a.apply(root) {
                return any;
            }
            any = true;
        }
        any
    }
}

/// `ab12…` for every 64-hex run: digests stay recognisable and the line short.
pub fn shorten(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let n = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if n >= 64 {
            out.push_str(&text[i..i + 8]);
            out.push('…');
            i += n;
        } else if n > 0 {
            out.push_str(&text[i..i + n]);
            i += n;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn sp(p: &[u8]) -> String {
    shorten(&show(p))
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Act::Truncate { path, len } => write!(f, "truncate {} to {len}", sp(path)),
            Act::FlipBit { path, offset, bit } => {
                write!(f, "flip bit {bit} of byte {offset} of {}", sp(path))
            }
            Act::Append { path, data } => write!(f, "append \"{}\" to {}", sp(data), sp(path)),
            Act::Write { path, data } => write!(f, "write {} = \"{}\"", sp(path), sp(data)),
            Act::FileToDir { path } => write!(f, "make {} a folder", sp(path)),
            Act::Remove { path } => write!(f, "remove {}", sp(path)),
            Act::Move { from, to } => write!(f, "move {} -> {}", sp(from), sp(to)),
            Act::Symlink { path, target } => write!(f, "symlink {} -> {}", sp(path), sp(target)),
            Act::CopyOutside { from, to } => write!(f, "copy {} to <root>/{}", sp(from), sp(to)),
            Act::Manifest { repo, tag, body } => {
                write!(f, "push {repo}:{tag} = {}", sp(&body.render()))
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] ", self.label)?;
        for (i, a) in self.acts.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

pub fn os(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

/// `root/docker/registry/v2/<rel>`, if `rel` is a plain relative path and every folder above it
/// that exists is a real folder (so that no act writes through a symlink).
fn inside(root: &Path, rel: &[u8]) -> Option<PathBuf> {
    let base = v2(root);
    under(&base, rel)
}

fn under(base: &Path, rel: &[u8]) -> Option<PathBuf> {
    let relp = os(rel);
    if rel.is_empty()
        || relp.is_absolute()
        || relp
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let mut p = base.to_path_buf();
    let comps: Vec<_> = relp.components().collect();
    for c in &comps[..comps.len() - 1] {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return None,
            Err(_) => break,
        }
    }
    Some(base.join(relp))
}

fn pin(p: &Path) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(FIXTURE_MTIME as u64);
    if let Ok(f) = std::fs::File::options().write(true).open(p) {
        let _ = f.set_modified(t);
    }
}

fn is_file(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn write_file(p: &Path, data: &[u8]) -> bool {
    if let Some(parent) = p.parent() {
        if std::fs::create_dir_all(parent).is_err() {
            return false;
        }
    }
    if exists(p) && !is_file(p) {
        return false;
    }
    if std::fs::write(p, data).is_err() {
        return false;
    }
    pin(p);
    true
}

fn copy_tree(from: &Path, to: &Path) -> bool {
    let Ok(m) = std::fs::symlink_metadata(from) else {
        return false;
    };
    if m.is_file() {
        let ok = std::fs::create_dir_all(to.parent().unwrap()).is_ok()
            && std::fs::copy(from, to).is_ok();
        pin(to);
        return ok;
    }
    if !m.is_dir() || std::fs::create_dir_all(to).is_err() {
        return false;
    }
    for e in std::fs::read_dir(from).into_iter().flatten().flatten() {
        copy_tree(&e.path(), &to.join(e.file_name()));
    }
    true
}

/// The digest a manifest body gets, and the paths a push writes.
pub fn manifest_digest(body: &[u8]) -> String {
    format!("{:x}", Sha256::digest(body))
}

impl Act {
    pub fn apply(&self, root: &Path) -> bool {
        match self {
            Act::Truncate { path, len } => {
                let Some(p) = inside(root, path).filter(|p| is_file(p)) else {
                    return false;
                };
                let ok = std::fs::File::options()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_len(*len))
                    .is_ok();
                pin(&p);
                ok
            }
            Act::FlipBit { path, offset, bit } => {
                let Some(p) = inside(root, path).filter(|p| is_file(p)) else {
                    return false;
                };
                let Ok(mut data) = std::fs::read(&p) else {
                    return false;
                };
                let Some(b) = data.get_mut(*offset as usize) else {
                    return false;
                };
                *b ^= 1 << (bit % 8);
                write_file(&p, &data)
            }
            Act::Append { path, data } => {
                let Some(p) = inside(root, path).filter(|p| is_file(p)) else {
                    return false;
                };
                let Ok(mut old) = std::fs::read(&p) else {
                    return false;
                };
                old.extend_from_slice(data);
                write_file(&p, &old)
            }
            Act::Write { path, data } => match inside(root, path) {
                Some(p) => write_file(&p, data),
                None => false,
            },
            Act::FileToDir { path } => {
                let Some(p) = inside(root, path).filter(|p| is_file(p)) else {
                    return false;
                };
                std::fs::remove_file(&p).is_ok() && std::fs::create_dir(&p).is_ok()
            }
            Act::Remove { path } => {
                let Some(p) = inside(root, path) else {
                    return false;
                };
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).is_ok(),
                    Ok(_) => std::fs::remove_file(&p).is_ok(),
                    Err(_) => false,
                }
            }
            Act::Move { from, to } => {
                let (Some(f), Some(t)) = (inside(root, from), inside(root, to)) else {
                    return false;
                };
                if !exists(&f) || exists(&t) || t.starts_with(&f) {
                    return false;
                }
                std::fs::create_dir_all(t.parent().unwrap()).is_ok()
                    && std::fs::rename(&f, &t).is_ok()
            }
            Act::Symlink { path, target } => {
                let Some(p) = inside(root, path).filter(|p| !exists(p)) else {
                    return false;
                };
                std::fs::create_dir_all(p.parent().unwrap()).is_ok()
                    && std::os::unix::fs::symlink(os(target), &p).is_ok()
            }
            Act::CopyOutside { from, to } => {
                let (Some(f), Some(t)) = (inside(root, from), under(root, to)) else {
                    return false;
                };
                !exists(&t) && copy_tree(&f, &t)
            }
            Act::Manifest { repo, tag, body } => {
                let bytes = body.render();
                let hex = manifest_digest(&bytes);
                let link = format!("sha256:{hex}");
                let r = format!("repositories/{repo}/_manifests");
                let files: [(String, &[u8]); 4] = [
                    (format!("blobs/sha256/{}/{hex}/data", &hex[..2]), &bytes),
                    (format!("{r}/revisions/sha256/{hex}/link"), link.as_bytes()),
                    (format!("{r}/tags/{tag}/current/link"), link.as_bytes()),
                    (
                        format!("{r}/tags/{tag}/index/sha256/{hex}/link"),
                        link.as_bytes(),
                    ),
                ];
                files.iter().all(|(rel, data)| {
                    inside(root, rel.as_bytes()).is_some_and(|p| write_file(&p, data))
                })
            }
        }
    }
}

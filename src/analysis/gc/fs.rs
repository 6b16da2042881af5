//! What the registry's storage driver meets when it reads the store: link files read through
//! symbolic links (the registry follows them; regfsck resolved them without following, see
//! `SymlinkTarget`), blob `data` statted the same way, and Go's own error texts with the wrapping
//! each layer of the registry adds. Pure: everything comes from the inventory.

use super::CannotPredict;
use crate::model::digest::Digest;
use crate::model::inventory::{EntryType, Inventory, LinkState, Symlink, SymlinkTarget};
use crate::model::layout;

/// The kernel's limit of symbolic links in one path lookup.
const MAX_LINKS: u32 = 40;

/// An error as Go prints it (`err.Error()`), and whether the driver's `setDriverName` keeps it as
/// it is (`InvalidPathError`, `PathNotFoundError`) or wraps it once more in `filesystem: ...` at
/// every walk it passes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GoError {
    pub text: String,
    pub typed: bool,
}

impl GoError {
    /// A plain error (go-digest's, `fmt.Errorf`'s, or an `*os.PathError` the driver's own walk
    /// returns unwrapped).
    pub fn plain(text: impl Into<String>) -> GoError {
        GoError {
            text: text.into(),
            typed: false,
        }
    }

    /// An I/O error of the base driver: `filesystem: <op> <absolute path>: <errno text>`.
    pub fn driver(op: &str, abs: &str, errno: &str) -> GoError {
        GoError::plain(format!("filesystem: {op} {abs}: {errno}"))
    }

    /// The base driver's refusal of a path outside `^(/[A-Za-z0-9._-]+)+$`.
    pub fn invalid_path(path: &str) -> GoError {
        GoError {
            text: format!("filesystem: invalid path: {path}"),
            typed: true,
        }
    }

    /// As it comes out of one `driver.Walk`.
    pub fn walked(self) -> GoError {
        if self.typed {
            self
        } else {
            GoError::plain(format!("filesystem: {}", self.text))
        }
    }
}

/// What reading a file gives the registry.
#[derive(Clone, Debug)]
pub(super) enum Got {
    Digest(Digest),
    /// `PathNotFoundError`: readers treat it as "unknown" and move on.
    NotFound,
    Err(GoError),
    /// regfsck cannot tell (a symbolic link out of the store, a special file, an unread path).
    Unknown(CannotPredict),
}

pub(super) const ELOOP: &str = "too many levels of symbolic links";
pub(super) const ENOTDIR: &str = "not a directory";

/// The driver's path regexp for one path component: `[A-Za-z0-9._-]+`.
pub(super) fn valid_component(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

pub(super) fn unknown(reason: impl Into<String>, path: impl Into<String>) -> CannotPredict {
    CannotPredict {
        reason: reason.into(),
        paths: vec![path.into()],
    }
}

/// Reads in one store, for one walk: `links` symbolic links were already followed to get here
/// (a repository reached through a symbolic link in the catalog walk).
#[derive(Clone, Copy)]
pub(super) struct Fs<'a> {
    pub inv: &'a Inventory,
    pub links: u32,
}

impl<'a> Fs<'a> {
    /// The absolute path the registry's messages show for v2-relative `rel`.
    pub fn abs(&self, rel: &str) -> String {
        format!("{}/{rel}", self.inv.v2_text)
    }

    /// Whether `n` more symbolic links still fit in one lookup; `None` when the number of
    /// links in the store's own path is not known.
    fn fits(&self, n: u32) -> Option<bool> {
        self.inv
            .v2_links
            .map(|base| base + self.links + n <= MAX_LINKS)
    }

    /// Read the link file at v2-relative `rel` (as `walked` in messages) the way the base
    /// driver's `GetContent` does, following symbolic links on the way.
    pub fn read_link(&self, rel: &str, walked: &str) -> Got {
        if let Some(s) = self.first_symlink(rel) {
            return self.read_through(s, rel, walked);
        }
        match self.inv.link_at(rel) {
            Some(state) => self.got(&state, rel, walked),
            // Nothing known there: the folder holding it was listed and had no such file.
            None => Got::NotFound,
        }
    }

    /// The first symbolic link on the way to `rel` (itself included), in path order.
    pub fn first_symlink(&self, rel: &str) -> Option<&'a Symlink> {
        let inv: &'a Inventory = self.inv;
        rel.match_indices('/')
            .map(|(i, _)| &rel[..i])
            .chain(std::iter::once(rel))
            .find_map(|p| inv.symlink(p))
    }

    /// A link state as the registry reads it.
    pub fn got(&self, state: &LinkState, rel: &str, walked: &str) -> Got {
        match state {
            LinkState::Ok(d) => Got::Digest(d.clone()),
            LinkState::Absent => Got::NotFound,
            LinkState::Malformed { error, .. } => {
                Got::Err(GoError::plain(error.registry_message()))
            }
            LinkState::TooLarge { .. } => {
                Got::Err(GoError::plain("invalid checksum digest format"))
            }
            // On object storage a `link` "folder" is only keys below it: the GET of the link
            // itself finds no such key.
            LinkState::NotFile(EntryType::Dir) if self.inv.object_store => Got::NotFound,
            LinkState::NotFile(EntryType::Dir) => {
                Got::Err(GoError::driver("read", &self.abs(walked), "is a directory"))
            }
            // A symbolic link is an entry of its own (`symlinks`), read through `read_link`.
            LinkState::NotFile(EntryType::Symlink) => match self.inv.symlink(rel) {
                Some(s) => self.read_through(s, rel, walked),
                None => Got::Unknown(unknown("a symbolic link regfsck did not resolve", rel)),
            },
            LinkState::NotFile(_) => Got::Unknown(unknown(
                "a special file where the registry reads a link (opening a FIFO blocks it)",
                rel,
            )),
            LinkState::Unreadable(e) => {
                Got::Unknown(unknown(format!("regfsck could not read it ({e})"), rel))
            }
        }
    }

    /// Read `rel` whose path passes through the symbolic link `s`.
    fn read_through(&self, s: &Symlink, rel: &str, walked: &str) -> Got {
        let below = rel[s.path.len()..].trim_start_matches('/');
        let open_err = |e: &str| Got::Err(GoError::driver("open", &self.abs(walked), e));
        match &s.target {
            SymlinkTarget::Dangling => Got::NotFound,
            SymlinkTarget::Loop => open_err(ELOOP),
            SymlinkTarget::NotDir => open_err(ENOTDIR),
            SymlinkTarget::Unknown(why) => Got::Unknown(unknown(
                format!("a symbolic link the registry follows ({why})"),
                &s.path,
            )),
            SymlinkTarget::Inside { path, kind, links } => {
                match self.fits(*links) {
                    Some(true) => {}
                    Some(false) => return open_err(ELOOP),
                    None => {
                        return Got::Unknown(unknown(
                            "a symbolic link, and the store's own path holds symbolic links",
                            &s.path,
                        ))
                    }
                }
                if below.is_empty() {
                    return match kind {
                        EntryType::File => match self.inv.link_at(path) {
                            Some(state) => self.got(&state, path, walked),
                            None => Got::Unknown(unknown(
                                format!("a symbolic link to {path}, which is not a link file"),
                                &s.path,
                            )),
                        },
                        EntryType::Dir => {
                            Got::Err(GoError::driver("read", &self.abs(walked), "is a directory"))
                        }
                        _ => Got::Unknown(unknown(
                            format!("a symbolic link to {path}, a special file"),
                            &s.path,
                        )),
                    };
                }
                if *kind != EntryType::Dir {
                    return open_err(ENOTDIR);
                }
                let target = format!("{path}/{below}");
                // Symbolic links within the target count too: read on from there.
                let deeper = Fs {
                    inv: self.inv,
                    links: self.links + links,
                };
                if deeper.first_symlink(&target).is_some() {
                    return deeper.read_link(&target, walked);
                }
                match self.inv.link_at(&target) {
                    Some(state) => deeper.got(&state, &target, walked),
                    None if known_link_folder(self.inv, path) => Got::NotFound,
                    None => Got::Unknown(unknown(
                        format!("a symbolic link to {path}, where regfsck knows no link"),
                        &s.path,
                    )),
                }
            }
        }
    }

    /// `blobStatter.Stat` of blob `d`: whether the registry finds it (a `data` that is a folder is
    /// "unknown"), following symbolic links.
    pub fn blob_exists(&self, d: &Digest) -> Result<bool, Got> {
        if self.inv.symlinks.is_empty() {
            return Ok(self.inv.blob(d).is_some());
        }
        let rel = layout::blob_data(d);
        match self.first_symlink(&rel) {
            None => Ok(self.inv.blob(d).is_some()),
            Some(s) => {
                let stat_err = |e: &str| Got::Err(GoError::driver("stat", &self.abs(&rel), e));
                match &s.target {
                    SymlinkTarget::Dangling => Ok(false),
                    SymlinkTarget::Loop => Err(stat_err(ELOOP)),
                    SymlinkTarget::NotDir => Err(stat_err(ENOTDIR)),
                    SymlinkTarget::Unknown(why) => Err(Got::Unknown(unknown(
                        format!("a symbolic link the registry follows ({why})"),
                        &s.path,
                    ))),
                    SymlinkTarget::Inside { path, kind, .. } => {
                        let below = rel[s.path.len()..].trim_start_matches('/');
                        let target = if below.is_empty() {
                            path.clone()
                        } else if *kind == EntryType::Dir {
                            format!("{path}/{below}")
                        } else {
                            return Err(stat_err(ENOTDIR));
                        };
                        match layout::parse_path(&target) {
                            layout::Parsed::BlobData(t) => Ok(self.inv.blob(&t).is_some()),
                            _ => Err(Got::Unknown(unknown(
                                format!("blob data behind a symbolic link to {target}"),
                                &s.path,
                            ))),
                        }
                    }
                }
            }
        }
    }

    /// The digest whose content the registry reads as blob `d` (itself, or the blob a symbolic
    /// link leads to), when regfsck knows it.
    pub fn blob_content(&self, d: &Digest) -> Option<Digest> {
        if self.inv.symlinks.is_empty() {
            return Some(d.clone());
        }
        let rel = layout::blob_data(d);
        let Some(s) = self.first_symlink(&rel) else {
            return Some(d.clone());
        };
        let SymlinkTarget::Inside { path, kind, .. } = &s.target else {
            return None;
        };
        let below = rel[s.path.len()..].trim_start_matches('/');
        let target = match (below.is_empty(), kind) {
            (true, _) => path.clone(),
            (false, EntryType::Dir) => format!("{path}/{below}"),
            _ => return None,
        };
        match layout::parse_path(&target) {
            layout::Parsed::BlobData(t) => Some(t),
            _ => None,
        }
    }
}

/// Whether `path` is a link folder (`<alg>/<hex>/`) the inventory knows to hold no link, so that
/// "no link there" is a fact and not a gap.
fn known_link_folder(inv: &Inventory, path: &str) -> bool {
    let empty = inv
        .entries
        .binary_search_by(|e| e.path.as_str().cmp(path))
        .is_ok_and(|i| inv.entries[i].kind == crate::model::inventory::EntryKind::EmptyDir);
    empty
        || matches!(
            layout::parse_path(&format!("{path}/link")),
            layout::Parsed::RevisionLink { repo, digest }
                if inv.repo(&repo).is_some_and(|r| r.revision(&digest).is_some_and(|l| l.is_absent()))
        )
}

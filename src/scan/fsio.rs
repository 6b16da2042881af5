//! Low-level, never-following file access for the scanner: directory listings with entry types,
//! capped reads of small files (links, startedat) opened with O_NOFOLLOW|O_NONBLOCK.

use crate::inventory::{EntryType, LinkState, Timestamp};
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest link file regfsck reads: any valid digest text is at most 135 bytes.
pub const LINK_CAP: u64 = 256;

pub struct Child {
    pub name: OsString,
    pub kind: EntryType,
}

pub fn entry_type(ft: std::fs::FileType) -> EntryType {
    if ft.is_symlink() {
        EntryType::Symlink
    } else if ft.is_dir() {
        EntryType::Dir
    } else if ft.is_file() {
        EntryType::File
    } else {
        EntryType::Other
    }
}

/// List a directory without following anything; sorted by name bytes (as the registry's walk).
pub fn list(dir: &Path) -> io::Result<Vec<Child>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let kind = match e.file_type() {
            Ok(ft) => entry_type(ft),
            Err(_) => EntryType::Other,
        };
        out.push(Child {
            name: e.file_name(),
            kind,
        });
    }
    out.sort_by(|a, b| a.name.as_encoded_bytes().cmp(b.name.as_encoded_bytes()));
    Ok(out)
}

pub fn mtime(m: &Metadata) -> Timestamp {
    m.mtime()
}

/// Open a file for reading without following a symlink and without blocking on a FIFO.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Result of reading a small file with a cap.
pub enum Small {
    Bytes(Vec<u8>, Metadata),
    TooLarge(u64),
    NotFile,
    Vanished,
    Error(String),
}

pub fn read_small(path: &Path, cap: u64) -> Small {
    let f = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Small::Vanished,
        // ELOOP: the final component is a symlink.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Small::NotFile,
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Small::NotFile,
        Err(e) => return Small::Error(e.to_string()),
    };
    let meta = match f.metadata() {
        Ok(m) => m,
        Err(e) => return Small::Error(e.to_string()),
    };
    if !meta.is_file() {
        return Small::NotFile;
    }
    if meta.len() > cap {
        return Small::TooLarge(meta.len());
    }
    // Read exactly the size fstat reported: one read() for a link, no extra call to see EOF. A
    // file that grows meanwhile is cut at that size (and then fails strict validation).
    let mut buf = vec![0u8; meta.len() as usize];
    let mut filled = 0;
    let mut f = f;
    while filled < buf.len() {
        match f.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Small::Error(e.to_string()),
        }
    }
    buf.truncate(filled);
    Small::Bytes(buf, meta)
}

/// Read a link file into its state (strict digest validation) and mtime.
pub fn read_link(path: &Path) -> (LinkState, Timestamp, bool) {
    match read_small(path, LINK_CAP) {
        Small::Bytes(b, meta) => {
            let state = match crate::digest::Digest::parse_bytes(&b) {
                Ok(d) => LinkState::Ok(d),
                Err(error) => LinkState::Malformed {
                    error,
                    len: b.len() as u64,
                },
            };
            (state, mtime(&meta), false)
        }
        Small::TooLarge(len) => (LinkState::TooLarge { len }, 0, false),
        Small::NotFile => (LinkState::NotFile, 0, false),
        Small::Vanished => (LinkState::Absent, 0, true),
        Small::Error(e) => (LinkState::Unreadable(e), 0, false),
    }
}

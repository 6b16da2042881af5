//! Low-level, never-following file access for the scanner: directory listings with entry types,
//! capped reads of small files (links, startedat) opened with O_NOFOLLOW|O_NONBLOCK.

use crate::model::inventory::{EntryType, LinkState, SymlinkTarget, Timestamp};
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest link file regfsck reads: any valid digest text is at most 135 bytes.
pub const LINK_CAP: u64 = 256;

/// The most one `getdents64` of `DirFd::list_batches` returns: about 180 entries of a digest
/// folder (88 bytes each).
pub const BATCH_BYTES: usize = 16 * 1024;

pub struct Child {
    pub name: OsString,
    pub kind: EntryType,
    /// The inode number the listing gave (`d_ino`): the scan reads in this order (`io::by_inode`).
    pub ino: u64,
}

/// List a directory without following anything; sorted by name bytes (as the registry's walk).
pub fn list(dir: &Path) -> io::Result<Vec<Child>> {
    DirFd::open(dir)?.list()
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
    /// A folder, a symbolic link or a special file.
    NotFile(EntryType),
    Vanished,
    Error(String),
}

pub fn read_small(path: &Path, cap: u64) -> Small {
    let f = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Small::Vanished,
        // ELOOP: the final component is a symlink.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Small::NotFile(EntryType::Symlink)
        }
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Small::NotFile(EntryType::Dir),
        Err(e) => return Small::Error(e.to_string()),
    };
    let meta = match f.metadata() {
        Ok(m) => m,
        Err(e) => return Small::Error(e.to_string()),
    };
    if !meta.is_file() {
        return Small::NotFile(mode_type(meta.mode()));
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
        Small::Bytes(b, meta) => (link_state(&b), mtime(&meta), false),
        Small::TooLarge(len) => (LinkState::TooLarge { len }, 0, false),
        Small::NotFile(kind) => (LinkState::NotFile(kind), 0, false),
        Small::Vanished => (LinkState::Absent, 0, true),
        Small::Error(e) => (LinkState::Unreadable(e), 0, false),
    }
}

/// An open directory (`O_DIRECTORY|O_NOFOLLOW`): the fast lanes open and stat relative to it, so
/// that the kernel walks one or two components instead of the whole path for each of millions of
/// files.
pub struct DirFd(std::os::fd::OwnedFd);

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
static NO_OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn cstr(rel: &[u8]) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(rel).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Own the descriptor an open call returned, or take its error.
fn owned(fd: libc::c_int) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Open `rel` below `dir`, refusing a symlink in any component (openat2 `RESOLVE_NO_SYMLINKS`);
/// kernels without openat2 get `O_NOFOLLOW` on the last component, and the callers only pass
/// names whose folders they listed as real directories.
fn open_beneath(
    dir: libc::c_int,
    rel: &[u8],
    flags: libc::c_int,
) -> io::Result<std::os::fd::OwnedFd> {
    let c = cstr(rel)?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if !NO_OPENAT2.load(std::sync::atomic::Ordering::Relaxed) {
        let how = OpenHow {
            flags: flags as u64,
            mode: 0,
            resolve: RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH,
        };
        // SAFETY: `c` is NUL-terminated and `how` is a valid open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let e = match owned(fd as libc::c_int) {
            Ok(f) => return Ok(f),
            Err(e) => e,
        };
        match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM)
                if !NO_OPENAT2.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                NO_OPENAT2.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            _ => return Err(e),
        }
    }
    // SAFETY: `c` is NUL-terminated; `dir` is an open descriptor owned by the caller.
    owned(unsafe { libc::openat(dir, c.as_ptr(), flags) })
}

impl DirFd {
    pub fn open(path: &Path) -> io::Result<DirFd> {
        use std::os::unix::ffi::OsStrExt;
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: `c` is NUL-terminated.
        owned(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })
        .map(DirFd)
    }

    fn raw(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    /// A directory below this one (`rel` may have several components, none a symlink).
    pub fn open_dir(&self, rel: &[u8]) -> io::Result<DirFd> {
        open_beneath(self.raw(), rel, libc::O_RDONLY | libc::O_DIRECTORY).map(DirFd)
    }

    /// The entries of this directory with their types, sorted by name bytes, `.` and `..` left
    /// out.
    pub fn list(&self) -> io::Result<Vec<Child>> {
        thread_local! {
            // One getdents buffer per thread: tens of thousands of small folders are listed. Small,
            // since there are `--io-depth` threads; large folders are listed by `list_batches`.
            static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; BATCH_BYTES]);
        }
        BUF.with(|b| self.list_into(&mut b.borrow_mut()))
    }

    fn list_into(&self, buf: &mut [u8]) -> io::Result<Vec<Child>> {
        let mut out = Vec::new();
        while self.getdents(buf, &mut out)? {}
        out.sort_unstable_by(|a, b| a.name.as_encoded_bytes().cmp(b.name.as_encoded_bytes()));
        Ok(out)
    }

    /// The entries of this directory in batches, as the kernel hands them out (one `getdents64`
    /// of at most `BATCH_BYTES` each: a few hundred entries), in no particular order, `.` and
    /// `..` left out. Memory stays at one batch however large the folder: the scan walks large
    /// folders this way on many workers at once.
    pub fn list_batches(&self, mut each: impl FnMut(&mut Vec<Child>)) -> io::Result<()> {
        // Not the thread-local buffer of `list`: `each` may list other folders on this thread.
        let mut buf = vec![0u8; BATCH_BYTES];
        let mut batch = Vec::new();
        loop {
            batch.clear();
            let more = self.getdents(&mut buf, &mut batch)?;
            if !batch.is_empty() {
                each(&mut batch);
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// One `getdents64` call, its entries appended to `out`; false at the end of the folder.
    fn getdents(&self, buf: &mut [u8], out: &mut Vec<Child>) -> io::Result<bool> {
        use std::os::unix::ffi::OsStringExt;
        // SAFETY: `buf` is writable for its length; the kernel writes at most that much.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                self.raw(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(false);
        }
        let mut off = 0usize;
        let n = n as usize;
        // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name NUL-terminated.
        while off + 19 < n {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let ino = u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap_or([0; 8]));
            let dtype = buf[off + 18];
            let name_area = &buf[off + 19..off + reclen];
            let len = name_area
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_area.len());
            let name = &name_area[..len];
            off += reclen;
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match dtype {
                libc::DT_DIR => EntryType::Dir,
                libc::DT_REG => EntryType::File,
                libc::DT_LNK => EntryType::Symlink,
                libc::DT_UNKNOWN => self.type_at(name),
                _ => EntryType::Other,
            };
            out.push(Child {
                name: OsString::from_vec(name.to_vec()),
                kind,
                ino,
            });
        }
        Ok(true)
    }

    /// The type of an entry on filesystems whose listings do not carry it.
    fn type_at(&self, name: &[u8]) -> EntryType {
        match self.stat_at(name) {
            Ok(st) => mode_type(st.st_mode),
            Err(_) => EntryType::Other,
        }
    }

    /// `fstatat(.., AT_SYMLINK_NOFOLLOW)` of `rel` below this directory.
    pub fn stat_at(&self, rel: &[u8]) -> io::Result<libc::stat> {
        let c = cstr(rel)?;
        // SAFETY: zeroed is a valid `stat`; the kernel fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is NUL-terminated and `st` is writable.
        let r =
            unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }

    /// Read `rel` (a link file below this directory) the cheap way: open, one read, close; no
    /// `fstat`, since only repair needs link mtimes and it scans deep. The link's state when it
    /// read like a normal link (1 to `LINK_CAP` bytes), else `None` — missing, empty (a FIFO reads
    /// empty too), too large, a folder, unreadable — and the caller looks at the folder the
    /// thorough way.
    pub fn read_link_fast(&self, rel: &[u8]) -> Option<LinkState> {
        use std::os::fd::AsRawFd;
        let f = open_beneath(self.raw(), rel, libc::O_RDONLY | libc::O_NONBLOCK).ok()?;
        // One byte more than the cap: a file that fills it is larger than any link.
        let mut buf = [0u8; LINK_CAP as usize + 1];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 || n as usize > LINK_CAP as usize {
            return None;
        }
        Some(link_state(&buf[..n as usize]))
    }
}

impl DirFd {
    /// Read a whole file below this directory whose size a stat reported as `expect`, at most
    /// `cap` bytes: one `read` when the size still holds, more only when the file grew.
    pub fn read_file_at(&self, rel: &[u8], expect: usize, cap: u64) -> io::Result<Vec<u8>> {
        let f = File::from(open_beneath(
            self.raw(),
            rel,
            libc::O_RDONLY | libc::O_NONBLOCK,
        )?);
        let mut buf = vec![0u8; expect.min(cap as usize) + 1];
        let mut filled = 0;
        let mut f = f;
        loop {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            // The expected size read in one go: that is the end, unless the file grew.
            if filled == expect && filled < buf.len() {
                break;
            }
            if filled == buf.len() {
                if filled as u64 > cap {
                    break;
                }
                let grown = (buf.len() * 2).min(cap as usize + 1);
                buf.resize(grown, 0);
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

pub fn mode_type(mode: libc::mode_t) -> EntryType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => EntryType::Dir,
        libc::S_IFREG => EntryType::File,
        libc::S_IFLNK => EntryType::Symlink,
        _ => EntryType::Other,
    }
}

/// The state of a link from its fast-read bytes (strict digest validation, as `read_link`).
pub fn link_state(bytes: &[u8]) -> LinkState {
    match crate::model::digest::Digest::parse_bytes(bytes) {
        Ok(d) => LinkState::Ok(d),
        Err(error) => LinkState::Malformed {
            error,
            len: bytes.len() as u64,
        },
    }
}

/// The kernel's limit on symbolic links resolved in one path lookup (MAXSYMLINKS).
pub const MAX_LINKS: u32 = 40;

/// Where the symbolic link `link` (an absolute path below `v2`, whose parent folders are real
/// folders) leads, resolved the way the kernel would but *without following anything*: each
/// component is `lstat`ed and each symbolic link's text read with `readlink`, at most
/// `MAX_LINKS` links. Resolution stops at the store's edge: regfsck reads nothing outside it.
/// `v2` must be the real (canonical) path of the store's v2 folder.
pub fn resolve_symlink(v2: &Path, link: &Path) -> SymlinkTarget {
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Component, PathBuf};
    let unknown = |why: String| SymlinkTarget::Unknown(why);
    let inside = |p: &Path| p.starts_with(v2);
    // Components still to resolve, front first; `at` is the real folder reached so far.
    let mut pending: std::collections::VecDeque<std::ffi::OsString> = Default::default();
    pending.push_back(match link.file_name() {
        Some(n) => n.to_os_string(),
        None => return unknown("not a path".into()),
    });
    let mut at: PathBuf = match link.parent() {
        Some(p) => p.to_path_buf(),
        None => return unknown("not a path".into()),
    };
    let mut links = 0u32;
    while let Some(c) = pending.pop_front() {
        match c.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                at.pop();
                if !inside(&at) {
                    return unknown(format!("leads out of the store, to {}", at.display()));
                }
                continue;
            }
            _ => {}
        }
        let next = at.join(&c);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return SymlinkTarget::Dangling,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return SymlinkTarget::NotDir,
            Err(e) => return unknown(format!("{}: {e}", next.display())),
        };
        let kind = mode_type(meta.mode());
        if kind == EntryType::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return SymlinkTarget::Loop;
            }
            let text = match std::fs::read_link(&next) {
                Ok(t) => t,
                Err(e) => return unknown(format!("{}: {e}", next.display())),
            };
            if text.as_os_str().is_empty() {
                // An empty target names nothing (ENOENT).
                return SymlinkTarget::Dangling;
            }
            let rest = if text.is_absolute() {
                // Only an absolute target that names the store by its real path stays inside.
                match text.strip_prefix(v2) {
                    Ok(rest) => {
                        at = v2.to_path_buf();
                        rest.to_path_buf()
                    }
                    Err(_) => {
                        return unknown(format!("leads out of the store, to {}", text.display()))
                    }
                }
            } else {
                text
            };
            let parts: Vec<std::ffi::OsString> = rest
                .components()
                .filter_map(|p| match p {
                    Component::CurDir => Some(".".into()),
                    Component::ParentDir => Some("..".into()),
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::RootDir | Component::Prefix(_) => None,
                })
                .collect();
            for p in parts.into_iter().rev() {
                pending.push_front(p);
            }
            continue;
        }
        if kind != EntryType::Dir && !pending.is_empty() {
            return SymlinkTarget::NotDir;
        }
        at = next;
        if !inside(&at) {
            return unknown(format!("leads out of the store, to {}", at.display()));
        }
    }
    let kind = match std::fs::symlink_metadata(&at) {
        Ok(m) => mode_type(m.mode()),
        Err(e) => return unknown(format!("{}: {e}", at.display())),
    };
    let rel = match at.strip_prefix(v2) {
        Ok(r) => r,
        Err(_) => return unknown(format!("leads out of the store, to {}", at.display())),
    };
    match rel.to_str() {
        Some(r) if !r.is_empty() => SymlinkTarget::Inside {
            path: r.to_string(),
            kind,
            links,
        },
        Some(_) => unknown("leads to the store's v2 folder itself".into()),
        None => unknown("leads to a name that is not UTF-8".into()),
    }
}

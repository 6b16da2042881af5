//! Running regfsck as an unprivileged user: tests run as root here and in CI, and root reads
//! every file whatever its mode, so permission errors need another user (`nobody`, via setpriv).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// `setpriv` as `nobody:nogroup`, ready for a program and its arguments; `None` when that is not
/// possible here (not root, no setpriv, no such user). Under CI=true that is a failure.
pub fn as_nobody() -> Option<Command> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = Path::new("/usr/bin/setpriv").exists();
    let user = std::fs::read_to_string("/etc/passwd")
        .is_ok_and(|p| p.lines().any(|l| l.starts_with("nobody:")));
    if !(root && setpriv && user) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("unprivileged tests need root, setpriv (util-linux) and the user nobody under CI=true");
        }
        eprintln!("SKIPPED: unprivileged tests need root, setpriv and the user nobody");
        return None;
    }
    let mut c = Command::new("/usr/bin/setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
    Some(c)
}

const NOBODY: u32 = 65534;

/// Give the tree at `root` to nobody (without following symlinks) and let nobody reach it
/// (temporary folders are 0700).
pub fn give_to_nobody(root: &Path) {
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        std::os::unix::fs::lchown(e.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let mut p = root.parent();
    while let Some(d) = p {
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o011)).unwrap();
        }
        p = d.parent();
    }
}

/// Make one path root's and unreadable to anyone else (mode 000).
pub fn lock_away(p: &Path) {
    std::os::unix::fs::lchown(p, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).unwrap();
}

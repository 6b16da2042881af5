//! Is the registry live? Processes with their working directory or an open file inside the store
//! (read from /proc with readlink only: nothing in the store is followed or opened).

use std::path::Path;

/// Human sentences, one per process found using the store.
pub fn processes_using(root: &Path) -> Vec<String> {
    let Ok(root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    // regfsck's own files (the lock, journals) are not the registry's: another regfsck is the
    // lock's business, not a sign of a live registry.
    let ours = root.join(crate::model::layout::QUARANTINE_DIR);
    let in_store = |p: &std::path::Path| p.starts_with(&root) && !p.starts_with(&ours);
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let base = p.path();
        let comm = std::fs::read_to_string(base.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if std::fs::read_link(base.join("cwd")).is_ok_and(|c| in_store(&c)) {
            out.push(format!(
                "process {pid} ({comm}) has its working directory in the store"
            ));
            continue;
        }
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if in_store(&target) {
                    out.push(format!(
                        "process {pid} ({comm}) has {} open",
                        target.display()
                    ));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sees_a_process_working_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        // Poll briefly: on a loaded machine /proc may lag the spawn for a moment.
        let mut found = Vec::new();
        for _ in 0..50 {
            found = super::processes_using(dir.path());
            if found.iter().any(|s| s.contains("sleep")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|s| s.contains("sleep")), "{found:?}");
        assert!(super::processes_using(&dir.path().join("nothing")).is_empty());
    }
}

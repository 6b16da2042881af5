//! Is the registry live? Registry processes whose configuration points at this store (idle or
//! not), and any process with its working directory or an open file inside the store. Read from
//! /proc only (command lines, environments, configs through the process's own root, readlink of
//! cwd and fds): nothing in the store is followed or opened.

use crate::store::config;
use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A process that uses the store, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveProcess {
    pub pid: u32,
    /// Its command line (shortened).
    pub command: String,
    pub why: String,
}

impl fmt::Display for LiveProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} ({}) {}", self.pid, self.command, self.why)
    }
}

/// Registry binaries by name: the upstream image's `registry` and Debian's `docker-registry`.
const REGISTRY_NAMES: [&str; 2] = ["registry", "docker-registry"];
/// Their subcommands that open the store with a config argument.
const STORE_SUBCOMMANDS: [&str; 2] = ["serve", "garbage-collect"];

fn read_nul_list(p: &Path) -> std::io::Result<Vec<String>> {
    let raw = std::fs::read(p)?;
    Ok(raw
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

fn short(argv: &[String]) -> String {
    let mut s = argv.join(" ");
    if s.chars().count() > 160 {
        s = s.chars().take(157).collect::<String>() + "...";
    }
    s
}

/// A registry binary by its name.
fn named_registry(argv: &[String]) -> bool {
    argv.first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| REGISTRY_NAMES.contains(&n))
}

/// The config a registry-like command line runs with, if it is one: `Some(None)` when it is a
/// registry subcommand that takes its config from `REGISTRY_CONFIGURATION_PATH`.
fn config_arg(argv: &[String]) -> Option<Option<String>> {
    let named = named_registry(argv);
    let sub = argv
        .iter()
        .position(|a| STORE_SUBCOMMANDS.contains(&a.as_str()) && (named || a == "serve"))?;
    Some(
        argv[sub + 1..]
            .iter()
            .find(|a| !a.starts_with('-'))
            .cloned(),
    )
}

/// (device, inode) of a folder, following symlinks as the registry does.
fn dir_id(p: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(p).map(|m| (m.dev(), m.ino()))
}

/// Whether the registry process `pid` with this command line serves the store `root_id`:
/// `Ok(Some(why))` when it does, `Ok(None)` when it is not a registry or serves another store,
/// `Err` when it is one and which store it serves cannot be told.
fn serves(pid: &str, argv: &[String], root_id: (u64, u64)) -> Result<Option<String>, String> {
    let Some(arg) = config_arg(argv) else {
        return Ok(None);
    };
    let base = PathBuf::from("/proc").join(pid);
    let environ = read_nul_list(&base.join("environ")).map(|vars| {
        vars.into_iter()
            .filter_map(|v| {
                v.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect::<HashMap<_, _>>()
    });
    let env = |k: &str| environ.as_ref().ok().and_then(|e| e.get(k).cloned());
    let Some(cfg) = arg.or_else(|| env("REGISTRY_CONFIGURATION_PATH")) else {
        // Without a config the registry does not start; an unreadable environment might hold one.
        return match &environ {
            Err(e) => Err(format!("cannot read its environment: {e}")),
            Ok(_) => Ok(None),
        };
    };
    // Relative to its working directory, and inside its own root (a container sees its own
    // filesystem; /proc/<pid>/root shows it to us).
    let cwd = std::fs::read_link(base.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
    let abs = cwd.join(&cfg);
    let in_root = |p: &Path| base.join("root").join(p.strip_prefix("/").unwrap_or(p));
    let text = std::fs::read_to_string(in_root(&abs))
        .or_else(|_| std::fs::read_to_string(&abs))
        .map_err(|e| format!("cannot read its config {}: {e}", abs.display()))?;
    let env_root = env(config::ROOT_ENV);
    let named = named_registry(argv);
    let vars: Vec<(String, String)> = environ
        .as_ref()
        .map(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let (root, parsed) = match config::parse_any_driver(&text, &vars) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(None),
        // `anything serve FILE` where FILE is no registry config is not a registry.
        Err(_) if !named => return Ok(None),
        Err(e) => return Err(format!("cannot tell which store it serves: {e}")),
    };
    let root = &root;
    let id = dir_id(&in_root(root)).or_else(|_| dir_id(root));
    let from = if env_root.is_some() {
        format!("{} from its environment", config::ROOT_ENV)
    } else {
        format!("config {}", abs.display())
    };
    match id {
        Ok(id) if id == root_id => Ok(Some(format!(
            "serves this store (rootdirectory {}, {from}{})",
            root.display(),
            if parsed.readonly { ", read-only" } else { "" }
        ))),
        Ok(_) => {
            if environ.is_err() {
                Err(format!(
                    "cannot read its environment, which may override the rootdirectory {} of config {}",
                    root.display(),
                    abs.display()
                ))
            } else {
                Ok(None)
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot stat its rootdirectory {}: {e}",
            root.display()
        )),
    }
}

/// How a process uses the store through its working directory or an open file, if it does.
fn uses(base: &Path, in_store: &dyn Fn(&Path) -> bool) -> Option<String> {
    if std::fs::read_link(base.join("cwd")).is_ok_and(|c| in_store(&c)) {
        return Some("has its working directory in the store".into());
    }
    std::fs::read_dir(base.join("fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .find(|target| in_store(target))
        .map(|target| format!("has {} open", target.display()))
}

/// Its command line, shortened (`comm` for a process without one).
fn command_of(base: &Path, argv: &[String]) -> String {
    if argv.is_empty() {
        std::fs::read_to_string(base.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string()
    } else {
        short(argv)
    }
}

/// How long a process must keep using the store to count: a process forked by another and not
/// yet exec'd carries its parent's descriptors and working directory for a moment (a parent
/// that had a folder of the store open while another of its threads forked), while anything
/// that really works in the store still does a moment later.
const CONFIRM: std::time::Duration = std::time::Duration::from_millis(500);

/// Every process found using the store: registries configured for it (even idle ones), and
/// processes that keep their working directory or an open file inside it.
pub fn processes_using(root: &Path) -> Vec<LiveProcess> {
    let mut out = Vec::new();
    let (Ok(canon), Ok(root_id)) = (std::fs::canonicalize(root), dir_id(root)) else {
        return out;
    };
    let me = std::process::id();
    // regfsck's own files (the lock, journals) are not the registry's: another regfsck is the
    // lock's business, not a sign of a live registry.
    let ours = canon.join(crate::model::layout::QUARANTINE_DIR);
    let in_store = |p: &Path| p.starts_with(&canon) && !p.starts_with(&ours);
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|p| p.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|&pid| pid != me)
        .collect();
    pids.sort_unstable();
    let mut candidates = Vec::new();
    let mut doubtful = Vec::new();
    for pid in pids {
        let pid_s = pid.to_string();
        let base = PathBuf::from("/proc").join(&pid_s);
        // A process that exits while we look simply drops out.
        let argv = read_nul_list(&base.join("cmdline")).unwrap_or_default();
        let found = |why: String| LiveProcess {
            pid,
            command: command_of(&base, &argv),
            why,
        };
        match serves(&pid_s, &argv, root_id) {
            Ok(Some(why)) => out.push(found(why)),
            // Looked at again after the pause: a registry that exits while we look (a GC
            // dry-run ending, its config already removed by whoever ran it) drops out.
            Err(_) => doubtful.push((pid, argv)),
            Ok(None) if uses(&base, &in_store).is_some() => candidates.push(pid),
            Ok(None) => {}
        }
    }
    if !doubtful.is_empty() || !candidates.is_empty() {
        std::thread::sleep(CONFIRM);
        for (pid, argv) in doubtful {
            if let Some(p) = still_doubtful(pid, &argv, root_id) {
                out.push(p);
            }
        }
        for pid in candidates {
            let base = PathBuf::from("/proc").join(pid.to_string());
            if let Some(why) = uses(&base, &in_store) {
                let argv = read_nul_list(&base.join("cmdline")).unwrap_or_default();
                out.push(LiveProcess {
                    pid,
                    command: command_of(&base, &argv),
                    why,
                });
            }
        }
        out.sort_by_key(|p| p.pid);
    }
    out
}

/// A registry-like process whose store could not be told, looked at again: reported when it is
/// still there with the same command line and still serves this store or still cannot be told;
/// not when it has exited (or become another program) since.
fn still_doubtful(pid: u32, argv: &[String], root_id: (u64, u64)) -> Option<LiveProcess> {
    let pid_s = pid.to_string();
    let base = PathBuf::from("/proc").join(&pid_s);
    let now = read_nul_list(&base.join("cmdline")).ok()?;
    if now != argv {
        return None;
    }
    let why = match serves(&pid_s, argv, root_id) {
        Ok(Some(why)) => why,
        Err(e) => format!("looks like a registry, but {e}"),
        Ok(None) => return None,
    };
    Some(LiveProcess {
        pid,
        command: command_of(&base, argv),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    /// Kills and reaps the child however the test ends.
    struct Reaped(Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `processes_using` until it names `pid` (or 10 s pass): a freshly spawned child shows its
    /// final command line and working directory only once it has exec'd, which on a loaded
    /// machine can lag the spawn.
    fn wait_for(root: &Path, pid: u32) -> Vec<LiveProcess> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = processes_using(root);
            if found.iter().any(|p| p.pid == pid) || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn sees_a_process_working_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let child = Reaped(
            Command::new("sleep")
                .arg("30")
                .current_dir(dir.path())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id();
        let found = wait_for(dir.path(), pid);
        let me = found.iter().find(|p| p.pid == pid).expect("found");
        assert!(me.why.contains("working directory"), "{me}");
        let other = tempfile::tempdir().unwrap();
        assert!(!processes_using(other.path()).iter().any(|p| p.pid == pid));
        assert!(processes_using(&dir.path().join("nothing")).is_empty());
    }

    /// A registry whose config cannot be read counts as live while it runs (which store it
    /// serves cannot be told), and not once it has exited: a GC dry-run that ends while we look,
    /// its config already removed, made a concurrent test's repair refuse.
    #[test]
    fn a_registry_whose_config_is_gone_counts_only_while_it_runs() {
        let store = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap(); // no config.yml in it
        let child = Reaped(
            Command::new("sh")
                .args(["-c", "sleep 30; :", "serve", "config.yml"])
                .current_dir(etc.path())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id();
        let found = wait_for(store.path(), pid);
        let me = found.iter().find(|p| p.pid == pid).expect("found");
        assert!(me.why.contains("cannot read its config"), "{me}");
        let argv = read_nul_list(&PathBuf::from(format!("/proc/{pid}/cmdline"))).unwrap();
        let root_id = dir_id(store.path()).unwrap();
        assert!(still_doubtful(pid, &argv, root_id).is_some());
        drop(child);
        assert!(still_doubtful(pid, &argv, root_id).is_none(), "exited");
    }

    /// A command line `… serve CONFIG` whose config (relative to the process's working
    /// directory) or environment names the store: found while idle, with no file open there.
    #[test]
    fn sees_an_idle_server_configured_for_the_store() {
        let store = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap();
        std::fs::write(
            etc.path().join("config.yml"),
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
                store.path().display()
            ),
        )
        .unwrap();
        // `sh -c SCRIPT NAME ARGS…`: its command line is `sh -c … serve config.yml`; the
        // trailing `:` keeps sh from exec'ing sleep, so the line stays.
        let spawn = |env_root: Option<&Path>| {
            let mut c = Command::new("sh");
            c.args(["-c", "sleep 30; :", "serve", "config.yml"])
                .current_dir(etc.path());
            if let Some(r) = env_root {
                c.env(config::ROOT_ENV, r);
            }
            Reaped(c.spawn().unwrap())
        };
        let child = spawn(None);
        let pid = child.0.id();
        let found = wait_for(store.path(), pid);
        let me = found.iter().find(|p| p.pid == pid).expect("found");
        assert!(me.why.contains("serves this store"), "{me}");
        assert!(me.why.contains("config.yml"), "{me}");
        assert!(me.command.contains("serve config.yml"), "{me}");
        assert!(!processes_using(other.path()).iter().any(|p| p.pid == pid));
        drop(child);

        // The environment overrides the config, as in the registry.
        let child = spawn(Some(other.path()));
        let pid = child.0.id();
        let found = wait_for(other.path(), pid);
        let me = found.iter().find(|p| p.pid == pid).expect("found");
        assert!(me.why.contains(config::ROOT_ENV), "{me}");
        assert!(!processes_using(store.path()).iter().any(|p| p.pid == pid));
    }

    #[test]
    fn registry_command_lines() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            config_arg(&argv(
                "/usr/bin/docker-registry serve /etc/docker/registry/config.yml"
            )),
            Some(Some("/etc/docker/registry/config.yml".into()))
        );
        assert_eq!(
            config_arg(&argv("registry garbage-collect --dry-run -m c.yml")),
            Some(Some("c.yml".into()))
        );
        assert_eq!(config_arg(&argv("registry serve")), Some(None));
        assert_eq!(
            config_arg(&argv("python3 app.py serve x.yml")),
            Some(Some("x.yml".into()))
        );
        assert_eq!(config_arg(&argv("cat garbage-collect x.yml")), None);
        assert_eq!(config_arg(&argv("sleep 30")), None);
    }
}

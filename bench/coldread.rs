//! The bare reader: the floor a cold-cache fsck of a registry store can reach on a device. Std
//! (and libc, for direct reads) only, no checks, no inventory: it makes the fewest reads an fsck must make, with N requests in
//! flight (N threads taking small batches of reads from one queue).
//!
//! cargo run --release --example coldread -- structure ROOT [--threads N] [--order name|inode]
//! cargo run --release --example coldread -- files ROOT [--threads N] [--direct]
//!
//! structure: list `blobs/<alg>/<fan>/` and stat every `<hex>/data`; walk the repository names;
//! per repository list `_layers/sha256/` and read every `<hex>/link`, list
//! `_manifests/revisions/sha256/`, read every link and the manifest blob it names, list
//! `_manifests/tags/`, read each tag's `current/link`, list its `index/sha256/` and read every
//! link there, and list `_uploads/` (and each upload). Prints seconds and the operation count.
//!
//! files: read every `blobs/**/data` whole through a 1 MiB buffer, N files at a time: the device's
//! read bandwidth with parallel readers. Prints seconds, bytes and MB/s. With `--direct`, through
//! a 2 MiB buffer in a huge page with `O_DIRECT` instead (one request per read, no page cache:
//! faster than buffered reads on some devices, see docs/benchmarks.md); the bandwidth of the
//! device is the better of the two.

use std::collections::VecDeque;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirEntryExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// One unit of work: a few reads of one kind.
enum Task {
    /// List a fan-out folder and stat `<hex>/data` for every entry.
    Fan(PathBuf),
    /// Stat these `data` files.
    Stat(Vec<PathBuf>),
    /// Walk a folder of the repository-name tree.
    Names(PathBuf),
    /// List a link tree's `<alg>` folder (`bool`: revisions, whose manifests are read too).
    Links(PathBuf, bool),
    /// Read these link files (and, for revisions, the manifest each names).
    Read(Vec<PathBuf>, bool),
    /// List a tags folder.
    Tags(PathBuf),
    /// One tag: its current link and its index.
    Tag(PathBuf),
    /// List `_uploads/` and every upload in it.
    Uploads(PathBuf),
}

struct Queue {
    state: Mutex<(VecDeque<Task>, usize)>,
    cv: Condvar,
    order_inode: bool,
    v2: PathBuf,
    ops: AtomicU64,
}

const BATCH: usize = 16;

impl Queue {
    fn push(&self, t: Task) {
        let mut s = self.state.lock().unwrap();
        s.0.push_back(t);
        self.cv.notify_one();
    }

    /// Work until the queue is empty and no task is running.
    fn work(&self) {
        loop {
            let task = {
                let mut s = self.state.lock().unwrap();
                loop {
                    if let Some(t) = s.0.pop_front() {
                        s.1 += 1;
                        break Some(t);
                    }
                    if s.1 == 0 {
                        break None;
                    }
                    s = self.cv.wait(s).unwrap();
                }
            };
            let Some(task) = task else {
                self.cv.notify_all();
                return;
            };
            self.run(task);
            let mut s = self.state.lock().unwrap();
            s.1 -= 1;
            if s.1 == 0 && s.0.is_empty() {
                self.cv.notify_all();
            }
        }
    }

    /// The entries of a folder (name, is-folder), in name or inode order.
    fn list(&self, dir: &Path) -> Vec<(std::ffi::OsString, bool)> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<(std::ffi::OsString, bool, u64)> = rd
            .filter_map(Result::ok)
            .map(|e| {
                let dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                (e.file_name(), dir, e.ino())
            })
            .collect();
        if self.order_inode {
            v.sort_by_key(|e| e.2);
        } else {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }
        v.into_iter().map(|(n, d, _)| (n, d)).collect()
    }

    fn batches(&self, paths: Vec<PathBuf>, make: impl Fn(Vec<PathBuf>) -> Task) {
        let mut it = paths.into_iter().peekable();
        while it.peek().is_some() {
            self.push(make(it.by_ref().take(BATCH).collect()));
        }
    }

    fn read_small(&self, p: &Path) -> Option<Vec<u8>> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        fs::read(p).ok()
    }

    fn run(&self, task: Task) {
        match task {
            Task::Fan(dir) => {
                let data = self
                    .list(&dir)
                    .into_iter()
                    .map(|(n, _)| dir.join(n).join("data"))
                    .collect();
                self.batches(data, Task::Stat);
            }
            Task::Stat(paths) => {
                for p in paths {
                    self.ops.fetch_add(1, Ordering::Relaxed);
                    let _ = fs::symlink_metadata(p);
                }
            }
            Task::Names(dir) => {
                let children = self.list(&dir);
                for (n, is_dir) in children {
                    if !is_dir {
                        continue;
                    }
                    let p = dir.join(&n);
                    match n.to_str() {
                        Some("_layers") => self.push(Task::Links(p.join("sha256"), false)),
                        Some("_manifests") => {
                            self.push(Task::Links(p.join("revisions/sha256"), true));
                            self.push(Task::Tags(p.join("tags")));
                        }
                        Some("_uploads") => self.push(Task::Uploads(p)),
                        _ => self.push(Task::Names(p)),
                    }
                }
            }
            Task::Links(dir, revisions) => {
                let links = self
                    .list(&dir)
                    .into_iter()
                    .map(|(n, _)| dir.join(n).join("link"))
                    .collect();
                self.batches(links, |b| Task::Read(b, revisions));
            }
            Task::Read(paths, revisions) => {
                for p in paths {
                    let Some(text) = self.read_small(&p) else {
                        continue;
                    };
                    if revisions {
                        if let Some(hex) = std::str::from_utf8(&text)
                            .ok()
                            .and_then(|t| t.strip_prefix("sha256:"))
                            .filter(|h| h.len() == 64)
                        {
                            let blob = self
                                .v2
                                .join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
                            self.read_small(&blob);
                        }
                    }
                }
            }
            Task::Tags(dir) => {
                for (n, _) in self.list(&dir) {
                    self.push(Task::Tag(dir.join(n)));
                }
            }
            Task::Tag(dir) => {
                self.read_small(&dir.join("current/link"));
                let index = dir.join("index/sha256");
                let links = self
                    .list(&index)
                    .into_iter()
                    .map(|(n, _)| index.join(n).join("link"))
                    .collect();
                self.batches(links, |b| Task::Read(b, false));
            }
            Task::Uploads(dir) => {
                for (n, _) in self.list(&dir) {
                    let up = dir.join(n);
                    for (f, _) in self.list(&up) {
                        self.ops.fetch_add(1, Ordering::Relaxed);
                        let _ = fs::symlink_metadata(up.join(f));
                    }
                }
            }
        }
    }
}

fn structure(root: &Path, threads: usize, order_inode: bool) {
    let v2 = root.join("docker/registry/v2");
    let q = Queue {
        state: Mutex::new((VecDeque::new(), 0)),
        cv: Condvar::new(),
        order_inode,
        v2: v2.clone(),
        ops: AtomicU64::new(0),
    };
    let started = Instant::now();
    for (alg, _) in q.list(&v2.join("blobs")) {
        let a = v2.join("blobs").join(alg);
        for (fan, _) in q.list(&a) {
            q.push(Task::Fan(a.join(fan)));
        }
    }
    q.push(Task::Names(v2.join("repositories")));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| q.work());
        }
    });
    println!(
        "structure threads={threads} order={} seconds={:.3} ops={}",
        if order_inode { "inode" } else { "name" },
        started.elapsed().as_secs_f64(),
        q.ops.load(Ordering::Relaxed)
    );
}

/// A 2 MiB buffer in one huge page (asked for; the kernel may give ordinary pages), leaked: the
/// reader threads live as long as the program.
fn huge_buffer() -> &'static mut [u8] {
    let size = 2 << 20;
    let layout = std::alloc::Layout::from_size_align(size, size).unwrap();
    // SAFETY: a non-zero-sized layout; the memory is advised, zeroed (faulting it in) and then
    // handed out once.
    unsafe {
        let p = std::alloc::alloc(layout);
        assert!(!p.is_null(), "out of memory");
        libc::madvise(p as *mut libc::c_void, size, libc::MADV_HUGEPAGE);
        std::ptr::write_bytes(p, 0, size);
        std::slice::from_raw_parts_mut(p, size)
    }
}

fn files(root: &Path, threads: usize, direct: bool) {
    let mut all = Vec::new();
    let mut stack = vec![root.join("docker/registry/v2/blobs")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() && e.file_name() == "data" => all.push(p),
                _ => {}
            }
        }
    }
    let queue = Mutex::new(all);
    let bytes = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut plain = Vec::new();
                let buf: &mut [u8] = if direct {
                    huge_buffer()
                } else {
                    plain.resize(1 << 20, 0);
                    &mut plain
                };
                loop {
                    let Some(p) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let mut open = fs::OpenOptions::new();
                    open.read(true);
                    if direct {
                        open.custom_flags(libc::O_DIRECT);
                    }
                    let Ok(mut f) = open.open(&p) else {
                        continue;
                    };
                    while let Ok(n) = f.read(buf) {
                        if n == 0 {
                            break;
                        }
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let b = bytes.load(Ordering::Relaxed);
    println!(
        "files threads={threads} direct={direct} seconds={secs:.3} bytes={b} MB/s={:.0}",
        b as f64 / 1e6 / secs
    );
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: coldread structure|files ROOT [--threads N] [--order name|inode] [--direct]";
    let (Some(mode), Some(root)) = (argv.first(), argv.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(16);
    };
    let mut threads = 2;
    let mut order_inode = false;
    let mut direct = false;
    let mut i = 2;
    while i < argv.len() {
        if argv[i] == "--direct" {
            direct = true;
            i += 1;
            continue;
        }
        match (argv[i].as_str(), argv.get(i + 1).map(String::as_str)) {
            ("--threads", Some(n)) => threads = n.parse().expect("--threads N"),
            ("--order", Some("inode")) => order_inode = true,
            ("--order", Some("name")) => order_inode = false,
            _ => {
                eprintln!("{usage}");
                std::process::exit(16);
            }
        }
        i += 2;
    }
    match mode.as_str() {
        "structure" => structure(Path::new(root), threads.max(1), order_inode),
        "files" => files(Path::new(root), threads.max(1), direct),
        _ => {
            eprintln!("{usage}");
            std::process::exit(16);
        }
    }
}

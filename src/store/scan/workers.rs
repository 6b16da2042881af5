//! The blocking-I/O workers: threads that sleep while there is nothing to read, and the three
//! shapes of parallelism the scan uses on them (`join`, `map`, `map_init`).
//!
//! Why not a rayon pool: an idle rayon worker looks for work 32 rounds (a steal attempt at every
//! other worker and a `sched_yield` each round) before it sleeps, so the cost of idling grows
//! with the square of the thread count. At the depth a cold device wants (128) a warm scan of 20k
//! blobs took 0.56-0.60 s against 0.48 s at depth 16, and at `--io-depth 1024` 5.6 s and 9 CPU-s
//! (docs/benchmarks.md, "Idle workers"). Here an idle worker waits on a condition variable, and
//! work is a FIFO queue: the scan's tasks are blocking reads, not CPU work to balance.
//!
//! The parallel calls run sequentially on a thread that is not inside `Pool::install`, so code
//! written for the pool also runs where no pool exists (and a depth of 1 is one read at a time).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// What one thread of a `map_init` mapped: (index, result) pairs, or its panic.
type Part<R> = std::thread::Result<Vec<(usize, R)>>;

/// A task whose borrows the submitter outlives (see `erase`).
type Task = Box<dyn FnOnce() + Send + 'static>;

/// One submitted task: run by whichever thread takes it first, a worker or the submitter itself
/// when it needs the result and no worker has started it.
struct Job {
    task: Mutex<Option<Task>>,
    done: Mutex<bool>,
    finished: Condvar,
}

struct Queue {
    jobs: VecDeque<Arc<Job>>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    /// Worker threads (the caller of `install` is one more participant).
    workers: usize,
}

/// The workers of one scan; stopped and joined when dropped.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

thread_local! {
    /// The pool this thread submits to: set on the workers and inside `Pool::install`.
    static CURRENT: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// A lock that a panic elsewhere cannot poison for good: tasks catch their own panics, so the
/// data behind these locks is never left half-written.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// `depth` reads in flight: `depth - 1` workers beside the thread that calls `install`.
    pub fn new(depth: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                stop: false,
            }),
            work: Condvar::new(),
            workers: depth.saturating_sub(1),
        });
        let mut pool = Pool {
            shared: shared.clone(),
            threads: Vec::with_capacity(shared.workers),
        };
        for i in 0..shared.workers {
            let s = shared.clone();
            // On failure `pool` is dropped, which stops and joins the workers already started.
            let t = std::thread::Builder::new()
                .name(format!("regfsck-io-{i}"))
                .spawn(move || work(s))?;
            pool.threads.push(t);
        }
        Ok(pool)
    }

    /// Run `f` on this thread with the parallel calls inside it spread over the workers.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        let before = CURRENT.with(|c| c.replace(Some(self.shared.clone())));
        // Restored on the way out, panics included.
        struct Restore(Option<Arc<Shared>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = prev);
            }
        }
        let _restore = Restore(before);
        f()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A worker: take the oldest job, run it, sleep when there is none.
fn work(shared: Arc<Shared>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(shared.clone()));
    loop {
        let job = {
            let mut q = lock(&shared.queue);
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.stop {
                    return;
                }
                q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let task = lock(&job.task).take();
        // None: its submitter took it back and ran it.
        if let Some(task) = task {
            task();
            *lock(&job.done) = true;
            job.finished.notify_all();
        }
    }
}

/// Make a task's borrows `'static` for the queue.
///
/// # Safety
/// The caller must `finish` the job made from it before any borrow the task holds ends, on every
/// path (panics included): then the task has run, or been taken back and run, and is dropped.
unsafe fn erase<'a>(task: Box<dyn FnOnce() + Send + 'a>) -> Task {
    // SAFETY: same layout (a fat pointer); the lifetime is upheld by the caller (above).
    unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Task>(task) }
}

fn submit(shared: &Shared, task: Task) -> Arc<Job> {
    let job = Arc::new(Job {
        task: Mutex::new(Some(task)),
        done: Mutex::new(false),
        finished: Condvar::new(),
    });
    lock(&shared.queue).jobs.push_back(job.clone());
    shared.work.notify_one();
    job
}

/// Wait until `job` has run: run it here if no worker has taken it (a nested call never waits
/// for a queue that its own thread would have to drain), else wait for the worker running it.
fn finish(job: &Job) {
    let task = lock(&job.task).take();
    if let Some(task) = task {
        task();
        return;
    }
    let mut done = lock(&job.done);
    while !*done {
        done = job.finished.wait(done).unwrap_or_else(|e| e.into_inner());
    }
}

fn current() -> Option<Arc<Shared>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `a` here and `b` on a worker, both done when this returns (a panic in either is resumed here
/// after both have finished).
pub fn join<RA, RB>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB)
where
    RA: Send,
    RB: Send,
{
    let Some(shared) = current().filter(|s| s.workers > 0) else {
        return (a(), b());
    };
    let mut rb = None;
    let slot = &mut rb;
    let task: Box<dyn FnOnce() + Send + '_> =
        Box::new(move || *slot = Some(catch_unwind(AssertUnwindSafe(b))));
    // SAFETY: `finish` below runs on every path before `rb` (and what `b` borrows) goes away:
    // `a` cannot unwind past it (caught).
    let job = submit(&shared, unsafe { erase(task) });
    let ra = catch_unwind(AssertUnwindSafe(a));
    finish(&job);
    match (ra, rb.expect("a finished job has stored its result")) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(p), _) | (_, Err(p)) => resume_unwind(p),
    }
}

/// `f` over `items` in parallel, results in the items' order.
pub fn map<T, R>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    map_init(items, || (), |_, t| f(t))
}

/// `f` over `items` (taken by value) in parallel, results in the items' order.
pub fn map_vec<T, R>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R>
where
    T: Send,
    R: Send,
{
    let cells: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    map(&cells, |c| {
        f(lock(c).take().expect("each item is handed out once"))
    })
}

/// `f` over `items` in parallel with a state made by `init` once per participating thread (a
/// read buffer, say), results in the items' order. The items are handed out one at a time from a
/// shared counter, in order: the caller keeps them in the order the device likes (by inode).
pub fn map_init<T, S, R>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let n = items.len();
    let shared = current().filter(|s| s.workers > 0 && n > 1);
    let Some(shared) = shared else {
        let mut s = init();
        return items.iter().map(|t| f(&mut s, t)).collect();
    };
    let next = AtomicUsize::new(0);
    let part = || -> Vec<(usize, R)> {
        let mut out = Vec::new();
        let mut state = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return out;
            }
            let s = state.get_or_insert_with(&init);
            out.push((i, f(s, &items[i])));
        }
    };
    let helpers = shared.workers.min(n - 1);
    let mut slots: Vec<Option<Part<R>>> = (0..helpers).map(|_| None).collect();
    let part = &part;
    let jobs: Vec<Arc<Job>> = slots
        .iter_mut()
        .map(|slot| {
            let task: Box<dyn FnOnce() + Send + '_> =
                Box::new(move || *slot = Some(catch_unwind(AssertUnwindSafe(part))));
            // SAFETY: every job is finished below, on every path, before `slots`, `part` and
            // what it borrows go away (the caller's own part cannot unwind: caught).
            submit(&shared, unsafe { erase(task) })
        })
        .collect();
    let mine = catch_unwind(AssertUnwindSafe(part));
    for job in &jobs {
        finish(job);
    }
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let mut panicked = None;
    let parts = slots
        .into_iter()
        .map(|s| s.expect("a finished job has stored its result"));
    for r in std::iter::once(mine).chain(parts) {
        match r {
            Ok(done) => {
                for (i, r) in done {
                    out[i] = Some(r);
                }
            }
            Err(p) => panicked = panicked.or(Some(p)),
        }
    }
    if let Some(p) = panicked {
        resume_unwind(p);
    }
    out.into_iter()
        .map(|r| r.expect("every item was mapped"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn map_keeps_the_order_and_runs_on_several_threads() {
        let pool = Pool::new(8).unwrap();
        let threads = Mutex::new(std::collections::HashSet::new());
        let items: Vec<u64> = (0..200).collect();
        let out = pool.install(|| {
            map(&items, |&i| {
                threads.lock().unwrap().insert(std::thread::current().id());
                // A blocking read's worth of waiting: the others take items meanwhile.
                std::thread::sleep(Duration::from_millis(1));
                i * 2
            })
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(threads.lock().unwrap().len() > 1);
    }

    #[test]
    fn the_depth_is_the_number_of_reads_at_once() {
        for depth in [1, 3, 16] {
            let pool = Pool::new(depth).unwrap();
            let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let items: Vec<usize> = (0..64).collect();
            pool.install(|| {
                // Nested as the scan nests them: repositories, then chunks of folders.
                map(&items[..8], |_| {
                    map(&items[..8], |_| {
                        let k = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(k, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            });
            let most = most.load(Ordering::SeqCst);
            assert!(most <= depth, "depth {depth}: {most} at once");
            assert!(depth == 1 || most > 1, "depth {depth}: never more than one");
        }
    }

    #[test]
    fn join_and_map_vec_run_everything_once() {
        let pool = Pool::new(4).unwrap();
        let names: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
        let (a, b) = pool.install(|| {
            join(
                || map_vec(names.clone(), |s| s.len()),
                || {
                    map_init(&names, Vec::new, |buf: &mut Vec<u8>, s| {
                        buf.clear();
                        buf.extend(s.bytes());
                        buf.len()
                    })
                },
            )
        });
        assert_eq!(a, b);
        assert_eq!(
            a.iter().sum::<usize>(),
            names.iter().map(|s| s.len()).sum::<usize>()
        );
    }

    #[test]
    fn a_panic_is_resumed_after_every_task_has_finished() {
        let pool = Pool::new(4).unwrap();
        let (finished, release) = (
            AtomicUsize::new(0),
            std::sync::atomic::AtomicBool::new(false),
        );
        let items: Vec<usize> = (0..16).collect();
        let caller = std::thread::current().id();
        std::thread::scope(|s| {
            // The workers' items wait for this; a call that returned at the caller's panic
            // would leave them running.
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                release.store(true, Ordering::SeqCst);
            });
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.install(|| {
                    map(&items, |_| {
                        // The calling thread fails at once, while the workers are still busy.
                        assert_ne!(
                            std::thread::current().id(),
                            caller,
                            "the caller's item fails"
                        );
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                })
            }));
            assert!(r.is_err());
            assert!(
                release.load(Ordering::SeqCst),
                "returned before the workers' items ended"
            );
            let seen = finished.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(finished.load(Ordering::SeqCst), seen);
        });
        // And the pool still works.
        assert_eq!(pool.install(|| map(&items, |&i| i)), items);
    }

    #[test]
    fn without_a_pool_everything_runs_here_in_order() {
        let me = std::thread::current().id();
        let order = Mutex::new(Vec::new());
        let items: Vec<usize> = (0..10).collect();
        let (_, out) = join(
            || order.lock().unwrap().push(100),
            || {
                map(&items, |&i| {
                    assert_eq!(std::thread::current().id(), me);
                    order.lock().unwrap().push(i);
                    i
                })
            },
        );
        assert_eq!(out, items);
        let mut want = vec![100];
        want.extend(0..10);
        assert_eq!(*order.lock().unwrap(), want);
    }
}

//! Bounded concurrency for latency-bound work (object-storage requests): a fixed number of
//! threads, independent of the core count, pulling tasks from a shared queue that tasks may
//! extend (a listing that finds more work). Results come back in completion order.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

/// Run `work` over `tasks` (and whatever tasks `work` adds through its `spawn` argument) on
/// `threads` threads. `work` returns one result per task.
pub fn run<T, R, F>(threads: usize, tasks: Vec<T>, work: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T, &dyn Fn(T)) -> R + Sync,
{
    struct Queue<T> {
        items: VecDeque<T>,
        running: usize,
    }
    let queue = Mutex::new(Queue {
        items: tasks.into(),
        running: 0,
    });
    let ready = Condvar::new();
    let results = Mutex::new(Vec::new());
    fn lock<Q>(m: &Mutex<Q>) -> std::sync::MutexGuard<'_, Q> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let task = {
                    let mut q = lock(&queue);
                    loop {
                        if let Some(t) = q.items.pop_front() {
                            q.running += 1;
                            break Some(t);
                        }
                        if q.running == 0 {
                            break None;
                        }
                        q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
                    }
                };
                let Some(task) = task else {
                    ready.notify_all();
                    return;
                };
                let spawn = |t: T| {
                    lock(&queue).items.push_back(t);
                    ready.notify_one();
                };
                let r = work(task, &spawn);
                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                lock(&queue).running -= 1;
                ready.notify_all();
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_task_and_every_spawned_task_runs_once() {
        let mut got = super::run(8, vec![1000u32, 7], |n, spawn| {
            if n > 1 && n % 2 == 0 {
                spawn(n / 2);
            }
            n
        });
        got.sort();
        assert_eq!(got, vec![7, 125, 250, 500, 1000]);
        assert!(super::run(4, Vec::<u8>::new(), |n, _| n).is_empty());
    }
}

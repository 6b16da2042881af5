//! The `regfsck` binary: all logic lives in the library; this only sets up the process and hands
//! over the exit status.

fn main() {
    // One malloc arena: the worker threads' transient allocations (listings, paths) otherwise
    // land in per-thread arenas that glibc keeps mapped, ~15 % of peak RSS on large stores.
    // Threads are few (one per core) and allocate little in their hot loops, so nothing is lost.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    std::process::exit(regfsck::cli::main());
}

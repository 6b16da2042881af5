//! Which mutation points a crash test kills: all of them when run alone; under `.ci/test-all`,
//! which runs every test binary twice (the second time with the clock moved), the odd points in
//! the first pass (`REGFSCK_TEST_KILL_POINTS=odd`) and the even ones in the second (`=even`), so
//! that every point is killed once per CI run. Which step is killed has nothing to do with the
//! date, and each point costs several whole commands.

/// `Some(1)` for odd points only, `Some(0)` for even ones, `None` for every point.
pub fn parity() -> Option<usize> {
    match std::env::var("REGFSCK_TEST_KILL_POINTS").as_deref() {
        Ok("odd") => Some(1),
        Ok("even") => Some(0),
        _ => None,
    }
}

/// Whether this run kills point `k` (1-based).
pub fn kills(k: usize) -> bool {
    parity().is_none_or(|p| k % 2 == p)
}

/// One in how many points this run kills (for "enough points were exercised" checks).
pub fn every() -> usize {
    if parity().is_some() {
        2
    } else {
        1
    }
}

//! Progress reporting as a factory the CLI owns: the library asks for "a bar for this phase" and
//! never decides whether a terminal exists.

/// What a bar counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Items,
}

/// One phase's progress. Implementations must be cheap to call from many threads.
pub trait Bar: Send + Sync {
    fn inc(&self, n: u64);
    fn finish(&self);
}

/// Hands out bars.
pub trait Progress: Send + Sync {
    fn bar(&self, phase: &str, total: u64, unit: Unit) -> Box<dyn Bar>;

    /// A counter of objects found, for a phase whose total is not known in advance (the scan).
    fn counter(&self, phase: &str) -> Box<dyn Bar> {
        self.bar(phase, 0, Unit::Items)
    }
}

/// Draws nothing: for pipes, `--quiet`, tests.
pub struct Silent;

struct NoBar;

impl Bar for NoBar {
    fn inc(&self, _: u64) {}
    fn finish(&self) {}
}

impl Progress for Silent {
    fn bar(&self, _: &str, _: u64, _: Unit) -> Box<dyn Bar> {
        Box::new(NoBar)
    }
}

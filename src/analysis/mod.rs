//! The analysis layer: pure functions over an inventory — checks (findings), reachability, the
//! garbage collector's emulation, per-repository usage, the severity policy, and what unreadable paths leave unknown. No I/O.

pub mod affected;
pub mod checks;
pub mod gc;
pub mod policy;
pub mod reach;
pub mod unread;
pub mod usage;

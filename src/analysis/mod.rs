//! The analysis layer: pure functions over an inventory — checks (findings), reachability, the
//! garbage collector's emulation, per-repository usage, the severity policy, the offline catalog,
//! retention rules and the protections every cleanup keeps, and what unreadable paths leave unknown. No I/O.

pub mod affected;
pub mod catalog;
pub mod checks;
pub mod gc;
pub mod policy;
pub mod protect;
pub mod reach;
pub mod retention;
pub mod unread;
pub mod usage;

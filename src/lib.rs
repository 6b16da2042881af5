//! regfsck library: scan, check, report and repair a distribution registry's filesystem store.
//!
//! Data flow: `scan` (the only module that reads the store) builds an `inventory`; `verify` hashes
//! blob data; `checks` are pure functions from the inventory to `finding`s; `gc` and `usage`
//! predict and account; `report` renders; `repair` plans, applies with a journal, and undoes.

pub mod checks;
pub mod cli;
pub mod config;
pub mod digest;
pub mod duration;
pub mod finding;
pub mod gc;
pub mod inventory;
pub mod layout;
pub mod manifest;
pub mod policy;
pub mod progress;
pub mod reach;
pub mod repair;
pub mod report;
pub mod scan;
pub mod state;
pub mod timefmt;
pub mod usage;
pub mod verify;

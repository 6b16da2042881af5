//! regfsck library: scan, check, report, repair and clean up a distribution registry's store.
//!
//! Layers, each depending only on those above it: `model` (values: digests, the path grammar,
//! manifests, the inventory, findings) -> `store` (the only code that reads the store: scan,
//! hashing, the incremental state) -> `analysis` (pure: checks, reachability, GC emulation, usage,
//! policy) -> `plan` (changes as values, one journalled applier, undo) -> `report` (renderers) ->
//! `cli` (arguments, exit status).

pub mod analysis;
pub mod cli;
pub mod model;
pub mod plan;
pub mod progress;
pub mod report;
pub mod store;

//! The checks: pure functions from an inventory to findings, one module per kind of object. No
//! I/O, no printing, no severity policy. GC hazards (`gc-would-*`) come from `gc`.

mod blobs;
mod links;
mod manifests;
mod paths;
mod repos;
mod tags;
mod uploads;

use crate::analysis::reach::{self, Reach};
use crate::analysis::unread::Blind;
use crate::model::finding::Finding;
use crate::model::inventory::Inventory;

/// Time-dependent settings of the checks.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// "Now", unix seconds (a parameter so that reports are reproducible).
    pub now: i64,
    /// Age after which an unfinished upload is stale (the registry's uploadpurging.age).
    pub purge_age: i64,
    /// Anything younger than this means the registry looks live.
    pub grace: i64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            now: 0,
            purge_age: 168 * 3600,
            grace: 600,
        }
    }
}

/// What every check may look at.
pub(crate) struct Ctx<'a> {
    pub inv: &'a Inventory,
    pub reach: &'a Reach,
    pub opts: &'a CheckOptions,
    /// What could not be read: no verdict may rest on it.
    pub blind: &'a Blind,
}

/// Run every check; findings come back sorted by code and path.
pub fn run(inv: &Inventory, opts: &CheckOptions) -> Vec<Finding> {
    let reach = reach::compute(inv);
    run_with(inv, &reach, opts)
}

/// Everything `regfsck check` reports: every check plus the GC hazards of both versions and modes
/// (without the 2.8 multi-arch trap, which `revision-untagged-child` already covers).
pub fn audit(inv: &Inventory, opts: &CheckOptions) -> Vec<Finding> {
    let reach = reach::compute(inv);
    // The checks and the GC predictions only read the inventory: side by side on the cores.
    let (mut out, hazards) = rayon::join(
        || run_with(inv, &reach, opts),
        || crate::analysis::gc::hazards_streamed(inv, &reach, false),
    );
    out.extend(hazards);
    out
}

pub fn run_with(inv: &Inventory, reach: &Reach, opts: &CheckOptions) -> Vec<Finding> {
    let blind = Blind::of(inv);
    let ctx = Ctx {
        inv,
        reach,
        opts,
        blind: &blind,
    };
    let mut out = Vec::new();
    blobs::check(&ctx, &mut out);
    links::check(&ctx, &mut out);
    manifests::check(&ctx, &mut out);
    tags::check(&ctx, &mut out);
    repos::check(&ctx, &mut out);
    uploads::check(&ctx, &mut out);
    paths::check(&ctx, &mut out);
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

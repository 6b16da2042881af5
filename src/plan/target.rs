//! Where a plan is applied: a filesystem store (`apply`: renames, inodes, fsync) or a bucket
//! (`objects`: server-side copies, ETags), one entry point per operation so that the commands
//! do not care which.

use super::apply::{self, ApplyOptions, ApplyOutcome, PurgeOutcome, RunInfo, Status, UndoOutcome};
use super::{objects, Plan};
use crate::store::{Objects, Storage};
use anyhow::Result;
use std::path::PathBuf;

pub enum Target<'a> {
    Fs(PathBuf),
    Bucket(&'a dyn Objects),
}

impl<'a> Target<'a> {
    /// The applier for this store: its object operations on object storage, else its root.
    pub fn of(store: &'a dyn Storage) -> Option<Target<'a>> {
        if let Some(o) = store.objects() {
            return Some(Target::Bucket(o));
        }
        store.local().map(|s| Target::Fs(s.root.clone()))
    }

    pub fn assess(&self, plan: &Plan, opts: &ApplyOptions) -> Vec<Option<Status>> {
        match self {
            Target::Fs(root) => apply::assess(root, plan, opts),
            Target::Bucket(o) => objects::assess(*o, plan, opts),
        }
    }

    pub fn apply(&self, plan: &Plan, opts: &ApplyOptions) -> Result<ApplyOutcome> {
        match self {
            Target::Fs(root) => apply::apply(root, plan, opts),
            Target::Bucket(o) => objects::apply(*o, plan, opts),
        }
    }

    pub fn incomplete_runs(&self) -> Result<Vec<String>> {
        match self {
            Target::Fs(root) => Ok(apply::incomplete_runs(root)),
            Target::Bucket(o) => objects::incomplete_runs(*o),
        }
    }

    pub fn resume(&self, run_id: &str, opts: &ApplyOptions) -> Result<ApplyOutcome> {
        match self {
            Target::Fs(root) => apply::resume(root, run_id, opts),
            Target::Bucket(o) => objects::resume(*o, run_id, opts),
        }
    }

    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        match self {
            Target::Fs(root) => Ok(apply::runs(root)),
            Target::Bucket(o) => objects::runs(*o),
        }
    }

    pub fn purge(&self, run_id: &str) -> Result<PurgeOutcome> {
        match self {
            Target::Fs(root) => apply::purge(root, run_id),
            Target::Bucket(o) => objects::purge(*o, run_id),
        }
    }

    pub fn undo(&self, run_id: &str) -> Result<UndoOutcome> {
        match self {
            Target::Fs(root) => apply::undo(root, run_id),
            Target::Bucket(o) => objects::undo(*o, run_id),
        }
    }
}

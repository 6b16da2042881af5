//! Plans: changes to the store as values. Repair: a plan (a value, computed purely from the
//! inventory and its findings) of reversible actions; one applier that executes any plan with a
//! journal and a quarantine; undo. Nothing is ever deleted: whatever is removed or overwritten
//! moves to `<root>/regfsck-quarantine/<run>/files/`.

pub mod apply;
pub mod cleanup;
pub mod journal;
pub mod live;
pub mod objects;
pub mod repair;
mod simulate;
pub mod target;

use crate::model::digest::Digest;
use crate::model::finding::Code;
use serde::{Deserialize, Serialize};

pub use repair::PlanOptions;

/// One change to the store. Paths are relative to `<rootdirectory>/docker/registry/v2`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ActionKind {
    /// Move a file or folder into the quarantine.
    Quarantine { path: String },
    /// Create or replace a link file with exactly `digest` (an existing entry is quarantined).
    WriteLink { path: String, digest: Digest },
    /// Create a folder (and missing parents).
    CreateDir { path: String },
    /// Move misplaced blob data to its canonical path.
    MoveBlob { from: String, to: String },
    /// Abort an incomplete multipart upload on object storage. The one action that cannot be
    /// undone (its parts are deleted by the service): planned only with `--lossy`.
    AbortMultipart { path: String, upload_id: String },
}

impl ActionKind {
    /// Every path the action changes (a move changes two).
    pub fn paths(&self) -> Vec<&str> {
        match self {
            ActionKind::MoveBlob { from, to } => vec![from, to],
            other => vec![other.path()],
        }
    }

    /// The path the action changes first (for ordering, dedup and messages).
    pub fn path(&self) -> &str {
        match self {
            ActionKind::Quarantine { path }
            | ActionKind::WriteLink { path, .. }
            | ActionKind::CreateDir { path }
            | ActionKind::AbortMultipart { path, .. } => path,
            ActionKind::MoveBlob { from, .. } => from,
        }
    }

    fn rank(&self) -> u8 {
        // Folders first (links may go inside), then moves, removals, and link writes last so a
        // link is never written before the blob it names is settled.
        match self {
            ActionKind::CreateDir { .. } => 0,
            ActionKind::MoveBlob { .. } => 1,
            ActionKind::Quarantine { .. } | ActionKind::AbortMultipart { .. } => 2,
            ActionKind::WriteLink { .. } => 3,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    #[serde(flatten)]
    pub kind: ActionKind,
    /// The finding code it answers.
    pub code: String,
    pub reason: String,
    /// Drops references that are already broken (needs `--lossy`).
    pub lossy: bool,
    /// The paths (v2-relative) whose content the action's verdict rests on, besides the paths it
    /// changes: the applier refuses the action when any of them, an ancestor or anything inside
    /// could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl Action {
    pub fn new(kind: ActionKind, code: Code, reason: impl Into<String>, lossy: bool) -> Action {
        Action {
            kind,
            code: code.as_str().to_string(),
            reason: reason.into(),
            lossy,
            evidence: Vec::new(),
        }
    }

    /// Every path the applier must be able to read before it acts: the changed paths and the
    /// evidence.
    pub fn touched(&self) -> impl Iterator<Item = &str> {
        self.kind
            .paths()
            .into_iter()
            .chain(self.evidence.iter().map(String::as_str))
    }
}

/// The reviewed unit of work: `regfsck repair --plan FILE` writes it as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub schema: String,
    /// The command that made the plan (`repair`, `rm`, `prune`, `gc`); absent in plans written
    /// before cleanup existed, which were all repairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub actions: Vec<Action>,
}

pub const PLAN_SCHEMA: &str = "regfsck.plan/1";

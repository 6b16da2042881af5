//! The protections no cleanup rule can turn off, in one place: every cleanup planner (`rm`,
//! `prune`, `gc --apply`) proposes what goes and calls `settle`, which gives back whatever must
//! stay after all, and why:
//! - a manifest reachable from anything that stays (the children and grandchildren of a kept
//!   index, whatever the registry version);
//! - a referrer whose `subject` stays (signatures, SBOMs, attestations), and cosign's fallback
//!   tags `sha256-<hex>[.sig|.att|.sbom]` whose subject stays;
//! - anything pushed within the grace window (a multi-arch push uploads its children untagged
//!   before the index that names them).
//!
//! Pure: decisions over an inventory and push times.

use crate::analysis::reach;
use crate::model::digest::{Digest, DigestSet};
use crate::model::inventory::{Inventory, Repo};
use crate::model::pushed::PushTimes;
use std::collections::{BTreeMap, BTreeSet};

/// Why something proposed for removal stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Reachable from a manifest that stays (an index's child or grandchild).
    NeededBy(Digest),
    /// A referrer (`subject`) of a manifest that stays.
    ReferrerOf(Digest),
    /// A cosign fallback tag of a manifest that stays.
    CosignOf(Digest),
    /// Pushed less than the grace window ago.
    Young(i64),
}

impl Protection {
    pub fn text(&self) -> String {
        match self {
            Protection::NeededBy(d) => format!("protected: needed by {d}, which stays"),
            Protection::ReferrerOf(d) => {
                format!("protected: a referrer (signature, SBOM, attestation) of {d}, which stays")
            }
            Protection::CosignOf(d) => {
                format!("protected: cosign's signature/attestation tag of {d}, which stays")
            }
            Protection::Young(ago) => format!(
                "protected: pushed {} ago, within the grace window",
                crate::model::duration::format((*ago).max(0) as u64)
            ),
        }
    }
}

/// What a planner proposes to remove from one repository.
#[derive(Clone, Debug, Default)]
pub struct Proposal {
    /// Tags to remove.
    pub tags: BTreeSet<String>,
    /// Revisions to remove.
    pub revisions: BTreeSet<Digest>,
    /// Named explicitly by the operator (`rm REPO@DIGEST`, `rm REPO:TAG`): only the
    /// "needed by a manifest that stays" protection holds for these, and it makes the request
    /// fail instead of silently keeping them.
    pub explicit_tags: BTreeSet<String>,
    pub explicit_revisions: BTreeSet<Digest>,
}

/// What `settle` rescued.
#[derive(Clone, Debug, Default)]
pub struct Settled {
    pub tags: BTreeMap<String, Protection>,
    pub revisions: BTreeMap<Digest, Protection>,
}

/// The subject digest of a cosign fallback tag (`sha256-<hex>`, `sha256-<hex>.sig|.att|.sbom`).
pub fn cosign_subject(tag: &str) -> Option<Digest> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = [".sig", ".att", ".sbom"]
        .iter()
        .find_map(|s| rest.strip_suffix(s))
        .unwrap_or(rest);
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Remove from `p` whatever must stay, and say why. `now`/`grace` (seconds) drive the young
/// protection (grace 0: none). Iterates to a fixpoint: a rescued index keeps its children, a
/// rescued subject its referrers.
pub fn settle(
    inv: &Inventory,
    repo: &Repo,
    times: &PushTimes,
    now: i64,
    grace: i64,
    p: &mut Proposal,
) -> Settled {
    let mut out = Settled::default();
    if grace > 0 {
        for t in p.tags.clone() {
            if p.explicit_tags.contains(&t) {
                continue;
            }
            if let Some(at) = times.tag(&repo.name, &t).map(|x| x.at) {
                if at > now - grace {
                    p.tags.remove(&t);
                    out.tags.insert(t, Protection::Young(now - at));
                }
            }
        }
        for d in p.revisions.clone() {
            if p.explicit_revisions.contains(&d) {
                continue;
            }
            if let Some(at) = times.revision(&repo.name, &d) {
                if at > now - grace {
                    p.revisions.remove(&d);
                    out.revisions.insert(d, Protection::Young(now - at));
                }
            }
        }
    }
    loop {
        let mut changed = false;
        // Roots: what the staying tags name, and every staying revision.
        let roots: Vec<Digest> = repo
            .tags
            .iter()
            .filter(|t| !p.tags.contains(&t.name))
            .filter_map(|t| t.current.digest().cloned())
            .chain(
                repo.revisions
                    .iter()
                    .filter(|l| !p.revisions.contains(&l.path_digest))
                    .filter_map(|l| l.target().cloned()),
            )
            .collect();
        let (mut kept, _) = reach::closure(inv, repo, roots.iter().cloned());
        // Referrers of what stays, to a fixpoint (a signature of a signature).
        loop {
            let more: Vec<Digest> = repo
                .revisions
                .iter()
                .filter_map(|l| {
                    let d = &l.path_digest;
                    let subject = inv.manifest(d)?.as_ref().ok()?.subject.as_deref()?;
                    (!kept.contains(d) && kept.contains(subject)).then(|| d.clone())
                })
                .collect();
            if more.is_empty() {
                break;
            }
            for d in &more {
                if p.revisions.contains(d) && !p.explicit_revisions.contains(d) {
                    let subject = inv
                        .manifest(d)
                        .and_then(|m| m.as_ref().ok())
                        .and_then(|m| m.subject.as_deref().cloned())
                        .unwrap_or_else(|| d.clone());
                    p.revisions.remove(d);
                    out.revisions
                        .insert(d.clone(), Protection::ReferrerOf(subject));
                    changed = true;
                }
            }
            let (k, _) = reach::closure(inv, repo, kept.iter().cloned().chain(more));
            kept = k;
        }
        // Proposed revisions that something staying still reaches.
        for d in p.revisions.clone() {
            if !kept.contains(&d) {
                continue;
            }
            let by = needed_by(inv, repo, p, &d);
            p.revisions.remove(&d);
            out.revisions.insert(d, Protection::NeededBy(by));
            changed = true;
        }
        // Cosign fallback tags of what stays.
        for t in p.tags.clone() {
            if p.explicit_tags.contains(&t) {
                continue;
            }
            if let Some(s) = cosign_subject(&t).filter(|s| kept.contains(s)) {
                p.tags.remove(&t);
                out.tags.insert(t, Protection::CosignOf(s));
                changed = true;
            }
        }
        if !changed {
            return out;
        }
    }
}

/// A staying manifest whose children name `d` (for the message), else `d` itself (it is a
/// staying tag's target).
fn needed_by(inv: &Inventory, repo: &Repo, p: &Proposal, d: &Digest) -> Digest {
    let staying_tag_target = repo
        .tags
        .iter()
        .filter(|t| !p.tags.contains(&t.name))
        .find(|t| t.current.digest() == Some(d));
    if staying_tag_target.is_some() {
        return d.clone();
    }
    repo.revisions
        .iter()
        .filter(|l| !p.revisions.contains(&l.path_digest) || &l.path_digest == d)
        .map(|l| &l.path_digest)
        .filter(|m| *m != d)
        .find(|m| {
            inv.manifest(m)
                .and_then(|x| x.as_ref().ok())
                .is_some_and(|x| x.children().any(|c| &c.digest == d))
        })
        .cloned()
        .unwrap_or_else(|| d.clone())
}

/// The digests a set of tags of `repo` reaches (children included).
pub fn reached_by_tags<'a>(
    inv: &Inventory,
    repo: &Repo,
    tags: impl Iterator<Item = &'a str>,
) -> DigestSet {
    let wanted: BTreeSet<&str> = tags.collect();
    let roots = repo
        .tags
        .iter()
        .filter(|t| wanted.contains(t.name.as_str()))
        .filter_map(|t| t.current.digest().cloned());
    reach::closure(inv, repo, roots).0
}

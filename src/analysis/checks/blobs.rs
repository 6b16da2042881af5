//! Checks of the global blob store's contents: hashes, sizes, emptiness, references.

use super::Ctx;
use crate::model::digest::Digest;
use crate::model::finding::{Code, Finding};
use crate::model::inventory::Verify;
use crate::model::layout;
use std::collections::HashMap;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let inv = ctx.inv;
    // Descriptor sizes that disagree with the data, by blob index, with the manifest that declares
    // them (the smallest manifest digest, so that the report does not depend on hash order).
    let mut wrong: HashMap<usize, (i64, &Digest)> = HashMap::new();
    for (m, parsed) in inv.manifests.iter() {
        let Ok(man) = parsed else { continue };
        for r in &man.refs {
            let (Some(size), Some(i)) = (r.size(), inv.blob_index(&r.digest)) else {
                continue;
            };
            if size == inv.blobs[i].size as i64 {
                continue;
            }
            let e = wrong.entry(i).or_insert((size, m));
            if m < e.1 {
                *e = (size, m);
            }
        }
    }
    for (i, b) in inv.blobs.iter().enumerate() {
        let path = layout::blob_data(&b.digest);
        let mut damaged = false;
        if b.size == 0 && b.digest != Digest::empty_sha256() {
            damaged = true;
            out.push(
                Finding::new(
                    Code::BlobEmpty,
                    &path,
                    "data is 0 bytes but the digest is not that of empty content",
                )
                .digest(&b.digest),
            );
        }
        match inv.verify_of(i) {
            Verify::Mismatch(actual) if b.size != 0 => {
                damaged = true;
                out.push(
                    Finding::new(
                        Code::BlobDigestMismatch,
                        &path,
                        format!("content hashes to {actual} ({} bytes)", b.size),
                    )
                    .digest(&b.digest),
                );
            }
            Verify::Changed(why) => out.push(
                Finding::new(
                    Code::PathChanged,
                    &path,
                    format!("changed while it was hashed: {why}"),
                )
                .digest(&b.digest),
            ),
            Verify::Unreadable(why) => out.push(
                Finding::new(
                    Code::PathUnreadable,
                    &path,
                    format!("cannot read blob data: {why}"),
                )
                .digest(&b.digest),
            ),
            _ => {}
        }
        if !damaged {
            if let Some(&(size, m)) = wrong.get(&i) {
                out.push(
                    Finding::new(
                        Code::BlobSizeMismatch,
                        &path,
                        format!("data is {} bytes but manifest {m} declares {size}", b.size),
                    )
                    .digest(&b.digest),
                );
            }
        }
        // While a manifest (or a repository) could not be read, nothing is "unreferenced":
        // `gc-cannot-predict` says so, with the paths.
        if !ctx.reach.is_referenced(i) && ctx.blind.refs.is_empty() {
            out.push(
                Finding::new(
                    Code::BlobUnreferenced,
                    &path,
                    format!(
                        "{} bytes referenced by no manifest revision; garbage-collect deletes it",
                        b.size
                    ),
                )
                .digest(&b.digest),
            );
        }
    }
}

//! Checks of the global blob store's contents: hashes, sizes, emptiness, references.

use super::Ctx;
use crate::digest::Digest;
use crate::finding::{Code, Finding};
use crate::inventory::Verify;
use crate::layout;
use std::collections::HashMap;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let inv = ctx.inv;
    // Descriptor sizes by digest, with the manifest that declares them (first seen wins).
    let mut declared: HashMap<&Digest, (i64, &Digest)> = HashMap::new();
    for (m, parsed) in &inv.manifests {
        if let Ok(man) = parsed {
            for r in &man.refs {
                if let Some(size) = r.size {
                    declared.entry(&r.digest).or_insert((size, m));
                }
            }
        }
    }
    for b in &inv.blobs {
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
        match &b.verify {
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
            if let Some(&(size, m)) = declared.get(&b.digest) {
                if size != b.size as i64 {
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
        }
        if !ctx.reach.referenced.contains(&b.digest) {
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

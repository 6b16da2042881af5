//! The case generator: from (seed, iteration) alone, a fixture and a short list of realistic
//! damage operations. Each operation is chosen against the store as the earlier ones left it (a
//! scratch copy is damaged step by step), so later damage can hit what earlier damage made.

use super::manifest;
use super::ops::{os, Act, Op};
use super::rng::Rng;
use super::tree::{repo_of, Entry, Tree};
use crate::common::store::{fixture, v2};
use std::path::Path;

/// A reproducible case: `seed:iter` regenerates exactly these operations.
#[derive(Clone, Debug)]
pub struct Case {
    pub seed: u64,
    pub iter: u64,
    pub fixture: &'static str,
    pub ops: Vec<Op>,
}

impl Case {
    pub fn id(&self) -> String {
        format!("{}:{}", self.seed, self.iter)
    }
}

pub const FAMILIES: &[&str] = &[
    "blob", "link", "delete", "move", "stray", "symlink", "nonutf8", "manifest",
];
const WEIGHTS: &[u64] = &[10, 16, 12, 8, 12, 12, 6, 24];

pub fn generate(seed: u64, iter: u64) -> Case {
    let mut rng = Rng::for_case(seed, iter);
    let fixture_name = if rng.chance(20) { "minimal" } else { "sample" };
    let tmp = fixture(fixture_name);
    let root = tmp.path();
    let n = 1 + rng.weighted(&[40, 30, 20, 10]);
    let mut ops = Vec::new();
    for k in 0..n {
        let tree = Tree::scan(&v2(root));
        // A family without a target in this store (e.g. no blob left) draws again.
        for _ in 0..20 {
            let family = FAMILIES[rng.weighted(WEIGHTS)];
            if let Some(op) = one(&mut rng, family, &tree, root, k) {
                if op.apply(root) {
                    ops.push(op);
                    break;
                }
            }
        }
    }
    Case {
        seed,
        iter,
        fixture: fixture_name,
        ops,
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn join(a: &[u8], rest: &str) -> Vec<u8> {
    let mut p = a.to_vec();
    p.push(b'/');
    p.extend_from_slice(rest.as_bytes());
    p
}

fn parent(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&c| c == b'/') {
        Some(i) => &p[..i],
        None => &[],
    }
}

/// The relative symlink target that leads from the folder holding `link` to `target` (both
/// relative to v2).
fn relative(link: &[u8], target: &[u8]) -> Vec<u8> {
    let depth = parent(link).split(|&c| c == b'/').count();
    let mut out = b"../".repeat(depth);
    out.extend_from_slice(target);
    out
}

/// The relative target from the folder holding `link` to `<root>/<outside>`.
fn to_outside(link: &[u8], outside: &str) -> Vec<u8> {
    let depth = parent(link).split(|&c| c == b'/').count() + 3;
    let mut out = b"../".repeat(depth);
    out.extend_from_slice(outside.as_bytes());
    out
}

fn uuid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(4),
        rng.hex(4),
        rng.hex(12)
    )
}

fn pick<'a>(rng: &mut Rng, xs: &[&'a Entry]) -> Option<&'a Entry> {
    rng.pick(xs).copied()
}

fn one(rng: &mut Rng, family: &str, t: &Tree, root: &Path, k: usize) -> Option<Op> {
    match family {
        "blob" => blob(rng, t),
        "link" => link(rng, t, root),
        "delete" => delete(rng, t),
        "move" => moved(rng, t),
        "stray" => stray(rng, t),
        "symlink" => symlink(rng, t, k),
        "nonutf8" => nonutf8(rng, t),
        "manifest" => manifest::generate(rng, t, root, k),
        _ => None,
    }
}

fn blob(rng: &mut Rng, t: &Tree) -> Option<Op> {
    let targets: Vec<&Entry> = t.blob_data().into_iter().filter(|e| e.size > 0).collect();
    let e = pick(rng, &targets)?;
    let path = e.path.clone();
    Some(match rng.below(5) {
        0 => Op::new("blob:truncate-empty", vec![Act::Truncate { path, len: 0 }]),
        1 => Op::new(
            "blob:truncate-half",
            vec![Act::Truncate {
                path,
                len: e.size / 2,
            }],
        ),
        2 => Op::new(
            "blob:truncate-last-byte",
            vec![Act::Truncate {
                path,
                len: e.size - 1,
            }],
        ),
        3 => Op::new(
            "blob:bit-flip",
            vec![Act::FlipBit {
                path,
                offset: rng.below(e.size as usize) as u64,
                bit: rng.below(8) as u8,
            }],
        ),
        _ => Op::new(
            "blob:grow",
            vec![Act::Append {
                path,
                data: b"\n\n".to_vec(),
            }],
        ),
    })
}

fn link(rng: &mut Rng, t: &Tree, root: &Path) -> Option<Op> {
    let links = t.links();
    let e = pick(rng, &links)?;
    let path = e.path.clone();
    let blobs = t.blob_dirs();
    let other = pick(rng, &blobs)
        .map(|x| String::from_utf8_lossy(x.name()).into_owned())
        .unwrap_or_else(|| rng.hex(64));
    let variants = [
        "empty",
        "truncated",
        "trailing-newline",
        "crlf",
        "leading-space",
        "wrong-digest",
        "absent-digest",
        "garbage",
        "uppercase-hex",
        "dir-instead-of-file",
    ];
    let v = *rng.pick(&variants)?;
    let cur = String::from_utf8_lossy(&std::fs::read(v2(root).join(os(&path))).ok()?).into_owned();
    if cur.len() < 8 || !cur.is_ascii() {
        return None;
    }
    let data: Vec<u8> = match v {
        "empty" => vec![],
        "truncated" => b(&cur[..(7 + rng.below(64)).min(cur.len() - 1)]),
        "trailing-newline" => b(&format!("{cur}\n")),
        "crlf" => b(&format!("{cur}\r\n")),
        "leading-space" => b(&format!(" {cur}")),
        "wrong-digest" => b(&format!("sha256:{other}")),
        "absent-digest" => b(&format!("sha256:{}", rng.hex(64))),
        "garbage" => rng
            .pick(&[
                &b"garbage"[..],
                b"sha256:",
                b"sha256:xyz",
                b"\x00\x01\x02",
                b"md5:d41d8cd98f00b204e9800998ecf8427e",
                b"<html>",
            ])
            .unwrap()
            .to_vec(),
        "uppercase-hex" => b(&cur.to_uppercase().replacen("SHA256", "sha256", 1)),
        _ => {
            return Some(Op::new(
                "link:dir-instead-of-file",
                vec![Act::FileToDir { path }],
            ))
        }
    };
    Some(Op::new(
        format!("link:{v}"),
        vec![Act::Write { path, data }],
    ))
}

fn delete(rng: &mut Rng, t: &Tree) -> Option<Op> {
    let choices: Vec<(&str, Vec<&Entry>)> = vec![
        ("tag", t.tag_dirs()),
        ("tag-current", t.named("current")),
        ("tag-index", t.named("index")),
        ("revision", t.revision_dirs()),
        ("layers", t.named("_layers")),
        ("layer-link", t.layer_link_dirs()),
        ("repo", t.repos()),
        ("blob", t.blob_dirs()),
        ("tags-folder", t.named("tags")),
        ("manifests", t.named("_manifests")),
        ("revisions-folder", t.named("revisions")),
        ("uploads", t.named("_uploads")),
    ];
    let (what, xs) = rng.pick(&choices)?;
    let e = pick(rng, xs)?;
    Some(Op::new(
        format!("delete:{what}"),
        vec![Act::Remove {
            path: e.path.clone(),
        }],
    ))
}

fn moved(rng: &mut Rng, t: &Tree) -> Option<Op> {
    match rng.below(7) {
        0 => {
            let e = pick(rng, &t.tag_dirs())?;
            let to = [&e.path[..], b"-moved"].concat();
            Some(Op::new(
                "move:tag",
                vec![Act::Move {
                    from: e.path.clone(),
                    to,
                }],
            ))
        }
        1 => {
            let e = pick(rng, &t.revision_dirs())?;
            let to = join(parent(&e.path), &rng.hex(64));
            Some(Op::new(
                "move:revision-renamed",
                vec![Act::Move {
                    from: e.path.clone(),
                    to,
                }],
            ))
        }
        2 => {
            let e = pick(rng, &t.blob_dirs())?;
            let name = String::from_utf8_lossy(e.name()).into_owned();
            let to = if rng.chance(50) {
                b(&format!(
                    "blobs/sha256/{}/{name}",
                    rng.pick(&["zz", "00", "ff"]).unwrap()
                ))
            } else {
                b(&format!("blobs/sha256/{name}"))
            };
            Some(Op::new(
                "move:blob-fanout",
                vec![Act::Move {
                    from: e.path.clone(),
                    to,
                }],
            ))
        }
        3 => {
            let e = pick(rng, &t.repos())?;
            let (what, to) = match rng.below(3) {
                0 => ("repo-renamed", [&e.path[..], b"-old"].concat()),
                1 => ("repo-invalid-name", [&e.path[..], b"-Old"].concat()),
                _ => {
                    // Below another repository (a nested repository).
                    let others = t.repos();
                    let o = pick(rng, &others)?;
                    if o.path.starts_with(&e.path) {
                        return None;
                    }
                    ("repo-nested", join(&o.path, "nested"))
                }
            };
            Some(Op::new(
                format!("move:{what}"),
                vec![Act::Move {
                    from: e.path.clone(),
                    to,
                }],
            ))
        }
        4 => {
            let e = pick(rng, &t.named("_layers"))?;
            Some(Op::new(
                "move:layers-aside",
                vec![Act::Move {
                    from: e.path.clone(),
                    to: [&e.path[..], b".old"].concat(),
                }],
            ))
        }
        5 => {
            // A revision's link folder moved into `_layers` (where some clients leave a link to
            // every manifest they push): 2.8 still resolves the manifest through it.
            let e = pick(rng, &t.revision_dirs())?;
            let repo = repo_of(&e.path)?;
            let to = b(&format!(
                "repositories/{repo}/_layers/sha256/{}",
                String::from_utf8_lossy(e.name())
            ));
            if t.has(&to) {
                // The `_layers` link is there already: the revision alone goes.
                return Some(Op::new(
                    "delete:revision-beside-layers-link",
                    vec![Act::Remove {
                        path: e.path.clone(),
                    }],
                ));
            }
            Some(Op::new(
                "move:revision-to-layers",
                vec![Act::Move {
                    from: e.path.clone(),
                    to,
                }],
            ))
        }
        _ => {
            // A revision moved to another repository (pushed there by hand).
            let e = pick(rng, &t.revision_dirs())?;
            let repos = t.repos();
            let o = pick(rng, &repos)?;
            let to = join(
                &o.path,
                &format!(
                    "_manifests/revisions/sha256/{}",
                    String::from_utf8_lossy(e.name())
                ),
            );
            Some(Op::new(
                "move:revision-to-other-repo",
                vec![Act::Move {
                    from: e.path.clone(),
                    to,
                }],
            ))
        }
    }
}

fn stray(rng: &mut Rng, t: &Tree) -> Option<Op> {
    let content = rng
        .pick(&[&b"x"[..], b"", b"sha256:0000", b"notes\n"])
        .unwrap()
        .to_vec();
    let (what, path): (&str, Vec<u8>) = match rng.below(9) {
        0 => {
            let e = pick(rng, &t.links())?;
            (
                "tmp-beside-link",
                join(parent(&e.path), &format!("link.{}.tmp", uuid(rng))),
            )
        }
        1 => {
            let e = pick(rng, &t.blob_dirs())?;
            (
                "tmp-in-blob",
                join(&e.path, &format!("data.{}.tmp", uuid(rng))),
            )
        }
        2 => {
            let dirs: Vec<Vec<u8>> = t
                .repos()
                .iter()
                .map(|e| e.path.clone())
                .chain([b("repositories"), b("blobs"), b("blobs/sha256")])
                .collect();
            ("readme", join(rng.pick(&dirs)?, "README"))
        }
        3 => {
            // `_notes` beside repositories: the 2.8 walk stops at it.
            let parents = t.repo_parents();
            let e = pick(rng, &parents)?;
            ("underscore-file", join(parent(&e.path), "_notes"))
        }
        4 => {
            let e = pick(rng, &t.named("tags"))?;
            let name = rng
                .pick(&["README", "v1.tmp", ".DS_Store", "latest~", "notes.txt"])
                .unwrap();
            ("file-in-tags", join(&e.path, name))
        }
        5 => {
            let e = pick(rng, &t.named("tags"))?;
            return Some(Op::new(
                "stray:dir-in-tags",
                vec![Act::Write {
                    path: join(
                        &e.path,
                        rng.pick(&["-bad/x", "empty/x", ".hidden/x"]).unwrap(),
                    ),
                    data: content,
                }],
            ));
        }
        6 => {
            let e = pick(rng, &[t.named("_layers"), t.named("revisions")].concat())?;
            ("file-in-sha256", join(&e.path, "sha256/README"))
        }
        7 => {
            let e = pick(rng, &t.named("current"))?;
            ("beside-current-link", join(&e.path, "link.bak"))
        }
        _ => {
            let e = pick(rng, &t.repos())?;
            ("file-in-manifests", join(&e.path, "_manifests/README"))
        }
    };
    Some(Op::new(
        format!("stray:{what}"),
        vec![Act::Write {
            path,
            data: content,
        }],
    ))
}

/// `a` replaced by a relative symlink to `o`.
fn replace_by_symlink(a: &Entry, o: &Entry) -> Vec<Act> {
    vec![
        Act::Remove {
            path: a.path.clone(),
        },
        Act::Symlink {
            path: a.path.clone(),
            target: relative(&a.path, &o.path),
        },
    ]
}

/// `path` (a file or folder of the store) copied to `<root>/<outside>`, removed, and replaced by
/// a symbolic link to the copy: moved to another disk and linked back.
pub fn moved_outside(path: &[u8], outside: &str) -> Vec<Act> {
    vec![
        Act::CopyOutside {
            from: path.to_vec(),
            to: outside.as_bytes().to_vec(),
        },
        Act::Remove {
            path: path.to_vec(),
        },
        Act::Symlink {
            path: path.to_vec(),
            target: to_outside(path, outside),
        },
    ]
}

fn symlink(rng: &mut Rng, t: &Tree, k: usize) -> Option<Op> {
    let outside = format!("outside{k}");
    let (what, acts): (&str, Vec<Act>) = match rng.below(10) {
        0 => {
            // A blob's data replaced by a link to another blob's data.
            let data = t.blob_data();
            let a = pick(rng, &data)?;
            let o = pick(rng, &data)?;
            ("blob-data-to-other-blob", replace_by_symlink(a, o))
        }
        1 => {
            // Moved to another disk and linked back: the registry still finds everything.
            let choices = [t.blob_dirs(), t.repos(), t.blob_data(), t.links()].concat();
            let e = pick(rng, &choices)?;
            ("moved-outside-and-linked", moved_outside(&e.path, &outside))
        }
        2 => {
            // A second name for a repository.
            let e = pick(rng, &t.repos())?;
            let alias = [&e.path[..], b"-alias"].concat();
            (
                "repo-alias",
                vec![Act::Symlink {
                    target: relative(&alias, &e.path),
                    path: alias,
                }],
            )
        }
        3 => {
            // A blob folder under a name it does not hash to, pointing at a real blob.
            let e = pick(rng, &t.blob_dirs())?;
            let hex = rng.hex(64);
            let p = b(&format!("blobs/sha256/{}/{hex}", &hex[..2]));
            (
                "blob-dir-alias",
                vec![Act::Symlink {
                    target: relative(&p, &e.path),
                    path: p,
                }],
            )
        }
        4 => {
            // A tag's current link pointing at another tag's.
            let cur: Vec<&Entry> = t
                .links()
                .into_iter()
                .filter(|e| e.path.ends_with(b"/current/link"))
                .collect();
            let a = pick(rng, &cur)?;
            let o = pick(rng, &cur)?;
            ("link-to-other-link", replace_by_symlink(a, o))
        }
        5 => {
            // A revision folder named for a blob that is not a manifest (a config or layer).
            let e = pick(rng, &t.layer_link_dirs())?;
            let repo = repo_of(&e.path)?;
            let p = b(&format!(
                "repositories/{repo}/_manifests/revisions/sha256/{}",
                String::from_utf8_lossy(e.name())
            ));
            if t.has(&p) {
                return None;
            }
            (
                "revision-to-layer-link",
                vec![Act::Symlink {
                    target: relative(&p, &e.path),
                    path: p,
                }],
            )
        }
        6 => {
            // An ancestor: a loop the real walk follows until names grow too long.
            let dirs = [t.repo_parents(), t.named("tags"), t.named("sha256")].concat();
            let e = pick(rng, &dirs)?;
            let target = rng.pick(&[&b".."[..], b"../..", b"."]).unwrap().to_vec();
            (
                "ancestor",
                vec![Act::Symlink {
                    path: join(&e.path, "up"),
                    target,
                }],
            )
        }
        7 => {
            let dirs = [t.repo_parents(), t.named("tags"), t.named("sha256")].concat();
            let e = pick(rng, &dirs)?;
            if rng.chance(50) {
                (
                    "self-loop",
                    vec![Act::Symlink {
                        path: join(&e.path, "loop"),
                        target: b("loop"),
                    }],
                )
            } else {
                (
                    "pair-loop",
                    vec![
                        Act::Symlink {
                            path: join(&e.path, "loopa"),
                            target: b("loopb"),
                        },
                        Act::Symlink {
                            path: join(&e.path, "loopb"),
                            target: b("loopa"),
                        },
                    ],
                )
            }
        }
        8 => {
            let dirs = [
                t.repo_parents(),
                t.named("tags"),
                t.named("sha256"),
                t.blob_dirs(),
            ]
            .concat();
            let e = pick(rng, &dirs)?;
            (
                "dangling-outside",
                vec![Act::Symlink {
                    path: join(&e.path, "gone"),
                    target: b("/nonexistent/regfsck-fuzz"),
                }],
            )
        }
        _ => {
            // A tag folder linked under a second name.
            let e = pick(rng, &t.tag_dirs())?;
            let alias = [&e.path[..], b"-alias"].concat();
            (
                "tag-alias",
                vec![Act::Symlink {
                    target: e.name().to_vec(),
                    path: alias,
                }],
            )
        }
    };
    Some(Op::new(format!("symlink:{what}"), acts))
}

fn nonutf8(rng: &mut Rng, t: &Tree) -> Option<Op> {
    let bad = rng
        .pick(&[&b"\xff"[..], b"\xe9", b"\xc3"])
        .unwrap()
        .to_vec();
    let renamable: Vec<(&str, Vec<&Entry>)> = vec![
        ("repo", t.repos()),
        ("tag", t.tag_dirs()),
        ("revision", t.revision_dirs()),
        ("blob", t.blob_dirs()),
        ("layer-link", t.layer_link_dirs()),
    ];
    if rng.chance(60) {
        let (what, xs) = rng.pick(&renamable)?;
        let e = pick(rng, xs)?;
        let to = [&e.path[..], &bad[..]].concat();
        return Some(Op::new(
            format!("nonutf8:rename-{what}"),
            vec![Act::Move {
                from: e.path.clone(),
                to,
            }],
        ));
    }
    let dirs: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "in-tags",
            t.named("tags").iter().map(|e| e.path.clone()).collect(),
        ),
        ("in-repositories", vec![b("repositories")]),
        ("in-blobs", vec![b("blobs/sha256")]),
        (
            "in-revisions",
            t.named("revisions")
                .iter()
                .map(|e| join(&e.path, "sha256"))
                .collect(),
        ),
    ];
    let (what, xs) = rng.pick(&dirs)?;
    let d = rng.pick(xs)?;
    let mut p = d.clone();
    p.extend_from_slice(b"/caf");
    p.extend_from_slice(&bad);
    // A folder (with a file, so it survives) or a plain file.
    if rng.chance(50) {
        p.extend_from_slice(b"/x");
    }
    Some(Op::new(
        format!("nonutf8:new-{what}"),
        vec![Act::Write {
            path: p,
            data: b("x"),
        }],
    ))
}

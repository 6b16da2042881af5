//! The mark phase, one repository at a time, as `MarkAndSweep` does it: walk every file named
//! `link` under `_manifests/revisions` (following symbolic links), resolve each digest through
//! the revision link (2.8 falls back to the `_layers` link of the same digest), optionally look the
//! digest up among the tags (`-m`), mark the manifest and what it references (2.8: one level;
//! 3.x: recursing into child manifests of the repository), and on 3.x enumerate `_layers`.

use super::fs::{unknown, valid_component, Fs, GoError, Got, ELOOP, ENOTDIR};
use super::walk::Visit;
use super::{abort, Marks, RepoDigest, Stop, Version, MARK};
use crate::model::digest::{Digest, DigestSet};
use crate::model::inventory::{EntryType, Inventory, LinkState, Repo, SymlinkTarget};
use crate::model::layout;
use crate::model::manifest::{GcFailure, Kind, Manifest};

pub(super) struct Marker<'a> {
    pub inv: &'a Inventory,
    pub version: Version,
    pub delete_untagged: bool,
    pub marked: Marks<'a>,
    /// Untagged manifests queued for deletion (`-m`).
    pub queued: Vec<RepoDigest>,
    /// 3.x: `_layers` links queued for deletion.
    pub layer_links: Vec<RepoDigest>,
}

/// One file named `link` that a walk of `revisions/` (or 3.x's of `_layers`) reads: where it is
/// (its path is built only when needed: a store has millions of links), and what reading it gives.
struct Item<'l> {
    at: At<'l>,
    got: Got,
}

enum At<'l> {
    /// A link of the grammar: `path_of(repo, digest)`.
    Link(&'l crate::model::inventory::Link),
    Path(String),
}

impl At<'_> {
    fn path(&self, repo: &str, path_of: fn(&str, &Digest) -> String) -> String {
        match self {
            At::Link(l) => path_of(repo, &l.path_digest),
            At::Path(p) => p.clone(),
        }
    }
}

/// The path `rel` (inside repository `real`) as the walk of `walked` names it.
fn rename(rel: &str, real: &str, walked: &str) -> String {
    let from = layout::repo_dir(real);
    match rel.strip_prefix(&from) {
        Some(rest) => format!("{}{rest}", layout::repo_dir(walked)),
        None => rel.to_string(),
    }
}

/// What `--delete-untagged` finds when it reads the `current/link` of every entry of `tags/`.
enum Lookup {
    Tags(DigestSet),
    /// The first failing entry (in name order; the registry reads them in directory order).
    Error(String, GoError),
    Unknown(super::CannotPredict),
}

impl<'a> Marker<'a> {
    /// Every file named `link` the registry's walk of `dir` (a repository's revisions or
    /// `_layers`) reads, in walk order, with what reading it gives.
    fn walked_links<'r>(
        &self,
        fs: &Fs,
        repo: &'r Repo,
        v: &Visit,
        dir: &str,
        revisions: bool,
    ) -> Vec<Item<'r>> {
        let inv = self.inv;
        let (links, odd, path_of) = if revisions {
            (
                &repo.revisions,
                &repo.odd_revision_links,
                layout::revision_link as fn(&str, &Digest) -> String,
            )
        } else {
            (
                &repo.layers,
                &repo.odd_layer_links,
                layout::layer_link as fn(&str, &Digest) -> String,
            )
        };
        let mut out = Vec::with_capacity(links.len());
        for l in links {
            let state = l.state();
            let got = match &*state {
                LinkState::Ok(d) => Got::Digest(d.clone()),
                // A folder named `link` is descended (what is inside is an odd link); a symbolic
                // link is an entry of its own below.
                LinkState::Absent
                | LinkState::NotFile(EntryType::Dir)
                | LinkState::NotFile(EntryType::Symlink) => continue,
                other => {
                    let path = path_of(&repo.name, &l.path_digest);
                    fs.got(other, &path, &rename(&path, &v.real, &v.walked))
                }
            };
            out.push(Item {
                at: At::Link(l),
                got,
            });
        }
        let mut extra = Vec::new();
        for o in odd {
            if matches!(
                o.state,
                LinkState::NotFile(EntryType::Dir) | LinkState::NotFile(EntryType::Symlink)
            ) {
                continue;
            }
            let walked = rename(&o.path, &v.real, &v.walked);
            extra.push(Item {
                at: At::Path(o.path.clone()),
                got: fs.got(&o.state, &o.path, &walked),
            });
        }
        for s in inv.symlinks_below(dir) {
            let name = s.path.rsplit('/').next().unwrap_or("");
            let walked = rename(&s.path, &v.real, &v.walked);
            let mut push = |path: String, got: Got| {
                extra.push(Item {
                    at: At::Path(path),
                    got,
                })
            };
            // The walk's own `Stat` (the driver's, unwrapped) follows the link.
            let stat = |e: &str| Got::Err(GoError::plain(format!("stat {}: {e}", fs.abs(&walked))));
            match &s.target {
                SymlinkTarget::Dangling => {}
                SymlinkTarget::Loop => push(s.path.clone(), stat(ELOOP)),
                SymlinkTarget::NotDir => push(s.path.clone(), stat(ENOTDIR)),
                SymlinkTarget::Unknown(why) => push(
                    s.path.clone(),
                    Got::Unknown(unknown(
                        format!("the registry's walk follows this symbolic link ({why})"),
                        &s.path,
                    )),
                ),
                SymlinkTarget::Inside { kind, links: n, .. } => {
                    if inv.v2_links.is_none_or(|b| b + fs.links + n > 40) {
                        let got = match inv.v2_links {
                            Some(_) => stat(ELOOP),
                            None => Got::Unknown(unknown(
                                "a symbolic link, and the store's own path holds symbolic links",
                                &s.path,
                            )),
                        };
                        push(s.path.clone(), got);
                        continue;
                    }
                    match kind {
                        EntryType::File if name == "link" => {
                            let got = fs.read_link(&s.path, &walked);
                            push(s.path.clone(), got);
                        }
                        EntryType::File => {}
                        EntryType::Dir if s.path.as_str() != dir => {
                            // Descended: what the walk reads in there is the `link` of a link
                            // folder regfsck knows, or something it cannot replay.
                            let inner = format!("{}/link", s.path);
                            match fs.read_link(&inner, &format!("{walked}/link")) {
                                Got::NotFound => {}
                                got => push(inner, got),
                            }
                        }
                        _ => push(
                            s.path.clone(),
                            Got::Unknown(unknown(
                                "the registry's walk follows this symbolic link",
                                &s.path,
                            )),
                        ),
                    }
                }
            }
        }
        if !extra.is_empty() {
            // Interleave the rare odd entries in walk order; only then are paths built.
            out.extend(extra);
            out.sort_by_cached_key(|i| {
                i.at.path(&repo.name, path_of)
                    .split('/')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            });
        }
        out
    }

    /// Read `repo`'s revision (or `_layers`) link of `d` as the registry does: straight from the
    /// inventory when the store holds no symbolic link (the common case, without a path string),
    /// else along the path.
    fn read_repo_link(&self, fs: &Fs, repo: &Repo, v: &Visit, d: &Digest, revisions: bool) -> Got {
        let path_of = if revisions {
            layout::revision_link
        } else {
            layout::layer_link
        };
        if self.inv.symlinks.is_empty() {
            let link = if revisions {
                repo.revision(d)
            } else {
                repo.layer(d)
            };
            let Some(l) = link else {
                return Got::NotFound;
            };
            let state = l.state();
            return match &*state {
                LinkState::Ok(x) => Got::Digest(x.clone()),
                LinkState::Absent => Got::NotFound,
                other => {
                    let rel = path_of(&v.real, d);
                    fs.got(other, &rel, &rename(&rel, &v.real, &v.walked))
                }
            };
        }
        let rel = path_of(&v.real, d);
        fs.read_link(&rel, &rename(&rel, &v.real, &v.walked))
    }

    /// `linkedBlobStatter.Stat` for manifest `d`: the revision link, on 2.8 then the `_layers`
    /// link (a 2.1-era fallback); `Ok(None)` = unknown to the registry (skipped).
    fn manifest_target(
        &self,
        fs: &Fs,
        repo: &Repo,
        v: &Visit,
        d: &Digest,
    ) -> Result<Option<Digest>, Got> {
        let fallback = self.version == Version::V2_8;
        for revisions in [true, false] {
            if !revisions && !fallback {
                break;
            }
            match self.read_repo_link(fs, repo, v, d, revisions) {
                Got::Digest(x) => {
                    return match fs.blob_exists(&x) {
                        Ok(true) => Ok(Some(x)),
                        Ok(false) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                Got::NotFound => continue,
                other => return Err(other),
            }
        }
        Ok(None)
    }

    fn lookup(&self, fs: &Fs, repo: &Repo, v: &Visit) -> Lookup {
        let mut names: Vec<(&str, bool)> = repo
            .tags
            .iter()
            .map(|t| (t.name.as_str(), true))
            .chain(repo.odd_tags.iter().map(|o| (o.name.as_str(), o.utf8)))
            .collect();
        names.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        names.dedup_by(|a, b| a.0 == b.0);
        let mut tags = DigestSet::default();
        let mut unknown_tag = None;
        for (name, utf8) in names {
            // On object storage a tag's name is a key prefix: a stray key beside the tags has no
            // `current/link` below it, and the lookup reads "not found", never ENOTDIR.
            let odd = if fs.inv.object_store {
                None
            } else {
                repo.odd_tags.iter().find(|o| o.name == name)
            };
            if utf8 && valid_component(name) && odd.is_none() {
                // The common case, without path strings.
                match repo.tag(name).map(|t| &t.current) {
                    Some(LinkState::Ok(d)) => {
                        tags.insert(d.clone());
                        continue;
                    }
                    Some(LinkState::Absent) | None => continue,
                    Some(_) => {}
                }
            }
            let rel = layout::tag_current_link(&v.real, name);
            let walked = layout::tag_current_link(&v.walked, name);
            if !utf8 || !valid_component(name) {
                return Lookup::Error(
                    rel,
                    GoError::invalid_path(&format!("/docker/registry/v2/{walked}")),
                );
            }
            let got = match odd {
                Some(o) if o.kind == EntryType::Symlink => fs.read_link(&rel, &walked),
                Some(o) if o.kind != EntryType::Dir => {
                    Got::Err(GoError::driver("open", &fs.abs(&walked), ENOTDIR))
                }
                Some(o) if o.current == Some(EntryType::Symlink) => fs.read_link(&rel, &walked),
                Some(o) if o.current.is_some() => {
                    Got::Err(GoError::driver("open", &fs.abs(&walked), ENOTDIR))
                }
                _ => match repo.tag(name) {
                    Some(t) => fs.got(&t.current, &rel, &walked),
                    None => Got::NotFound,
                },
            };
            match got {
                Got::Digest(d) => {
                    tags.insert(d);
                }
                Got::NotFound => {}
                Got::Err(e) => return Lookup::Error(rel, e),
                Got::Unknown(c) => {
                    unknown_tag.get_or_insert(c);
                }
            }
        }
        match unknown_tag {
            Some(c) => Lookup::Unknown(c),
            None => Lookup::Tags(tags),
        }
    }

    fn get(&self, fs: &Fs, d: &Digest, target: &Digest) -> Result<&'a Manifest, Stop> {
        let path = Some(layout::blob_data(target));
        let Some(content) = fs.blob_content(target) else {
            return Err(Stop::Unknown(unknown(
                format!("manifest {d} is read through a symbolic link regfsck does not follow"),
                layout::blob_data(target),
            )));
        };
        match self.inv.manifest(&content) {
            Some(Ok(m)) if m.kind == Kind::Schema1 && self.version == Version::V3 => Err(abort(
                format!("{MARK}filesystem: failed to retrieve manifest for digest {d}: unrecognized manifest schema version 1"),
                path,
            )),
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) if e.gc == GcFailure::Panic => Err(Stop::Panic(super::Abort {
                reason: format!(
                    "panic: interface conversion: distribution.Manifest is nil, not *{}",
                    match self.version {
                        Version::V2_8 => "manifestlist.DeserializedManifestList",
                        Version::V3 => "ocischema.DeserializedImageIndex",
                    }
                ),
                path,
            })),
            Some(Err(e)) => Err(abort(
                format!("{MARK}filesystem: failed to retrieve manifest for digest {d}: {}", e.reason),
                path,
            )),
            None => Err(Stop::Unknown(unknown(
                match self.inv.manifest_unreadable(&content) {
                    Some(e) => format!("regfsck could not read manifest {content} ({e})"),
                    None => format!("regfsck did not read manifest {content}, which the registry reads here"),
                },
                layout::blob_data(&content),
            ))),
        }
    }

    /// What manifest `d` (read as blob `target`) references.
    fn refs(&self, fs: &Fs, d: &Digest, target: &Digest) -> Result<Vec<Digest>, Stop> {
        Ok(self
            .get(fs, d, target)?
            .refs
            .iter()
            .map(|r| r.digest.clone())
            .collect())
    }

    /// 3.x `markManifestReferences`: mark new references and recurse into those that exist as
    /// manifests of this repository.
    fn mark_references(
        &mut self,
        fs: &Fs,
        repo: &Repo,
        v: &Visit,
        d: &Digest,
        target: &Digest,
    ) -> Result<(), Stop> {
        for r in self.refs(fs, d, target)? {
            if !self.marked.insert(&r) {
                continue;
            }
            // `Exists` errors are ignored: the reference is simply not descended.
            if let Ok(Some(t)) = self.manifest_target(fs, repo, v, &r) {
                self.mark_references(fs, repo, v, &r, &t)?;
            }
        }
        Ok(())
    }

    fn ingest(
        &mut self,
        fs: &Fs,
        repo: &Repo,
        v: &Visit,
        tags: Option<&Lookup>,
        d: &Digest,
        target: &Digest,
    ) -> Result<(), Stop> {
        if let Some(lookup) = tags {
            let tagged = match lookup {
                Lookup::Tags(t) => t.contains(d),
                Lookup::Error(path, e) => {
                    return Err(abort(
                        format!(
                            "{MARK}filesystem: failed to retrieve tags for digest {d}: {}",
                            e.text
                        ),
                        Some(path.clone()),
                    ))
                }
                Lookup::Unknown(c) => return Err(Stop::Unknown(c.clone())),
            };
            if !tagged {
                let tags_dir = layout::tags_dir(&v.real);
                if !repo.has_tags {
                    match self.inv.symlink(&tags_dir).map(|s| &s.target) {
                        None | Some(SymlinkTarget::Dangling) => {}
                        Some(_) => {
                            return Err(Stop::Unknown(unknown(
                                "the tags folder is a symbolic link the registry follows",
                                tags_dir,
                            )))
                        }
                    }
                    if self.version == Version::V2_8 {
                        return Err(abort(
                            format!(
                                "{MARK}filesystem: failed to retrieve tags unknown repository name={}",
                                v.walked
                            ),
                            Some(tags_dir),
                        ));
                    }
                    // 3.x: "manifest tags path ... does not exist": neither marked nor queued.
                    return Ok(());
                }
                self.queued.push(RepoDigest {
                    repo: v.walked.clone(),
                    digest: d.clone(),
                });
                return Ok(());
            }
        }
        self.marked.insert(d);
        match self.version {
            Version::V2_8 => {
                for r in &self.refs(fs, d, target)? {
                    self.marked.insert(r);
                }
                Ok(())
            }
            Version::V3 => self.mark_references(fs, repo, v, d, target),
        }
    }

    /// A symbolic link at one of `dirs` (folders every walk of the repository passes through).
    fn folder_symlink(&self, dirs: &[String]) -> Option<Stop> {
        dirs.iter().find_map(|d| {
            self.inv.symlink(d).map(|s| {
                Stop::Unknown(unknown(
                    format!(
                        "a folder the registry walks is a symbolic link to {}",
                        s.text
                    ),
                    &s.path,
                ))
            })
        })
    }

    pub fn mark_repo(&mut self, v: &Visit) -> Result<(), Stop> {
        if let Some(stop) = super::walk::name_error(v) {
            return Err(stop);
        }
        let inv = self.inv;
        let empty = Repo::default();
        let repo = inv.repo(&v.real).unwrap_or(&empty);
        let fs = Fs {
            inv,
            links: v.links,
        };
        let revisions = layout::revisions_dir(&v.real);
        if let Some(stop) =
            self.folder_symlink(&[layout::manifests_dir(&v.real), revisions.clone()])
        {
            return Err(stop);
        }
        let lookup = self.delete_untagged.then(|| self.lookup(&fs, repo, v));
        let wrap = |e: GoError| format!("failed to mark: {}", e.walked().walked().text);
        let at = |i: &Item, path_of| Some(i.at.path(&v.real, path_of));
        // What a walked link names; a read error stops the run (inside two walks).
        let named = |item: &Item, path_of| match &item.got {
            Got::Digest(d) => Ok(Some(d.clone())),
            Got::NotFound => Ok(None),
            Got::Err(e) => Err(abort(wrap(e.clone()), at(item, path_of))),
            Got::Unknown(c) => Err(Stop::Unknown(c.clone())),
        };
        for item in self.walked_links(&fs, repo, v, &revisions, true) {
            let Some(d) = named(&item, layout::revision_link)? else {
                continue;
            };
            match self.manifest_target(&fs, repo, v, &d) {
                Ok(Some(target)) => self.ingest(&fs, repo, v, lookup.as_ref(), &d, &target)?,
                Ok(None) => {}
                Err(Got::Err(e)) => return Err(abort(wrap(e), at(&item, layout::revision_link))),
                Err(Got::Unknown(c)) => return Err(Stop::Unknown(c)),
                Err(_) => {}
            }
        }
        if self.version == Version::V3 {
            let layers = layout::layers_dir(&v.real);
            if let Some(stop) = self.folder_symlink(std::slice::from_ref(&layers)) {
                return Err(stop);
            }
            if !repo.has_layers {
                return Err(abort(
                    format!("{MARK}filesystem: Path not found: /docker/registry/v2/repositories/{}/_layers", v.walked),
                    Some(layers),
                ));
            }
            for item in self.walked_links(&fs, repo, v, &layers, false) {
                let Some(d) = named(&item, layout::layer_link)? else {
                    continue;
                };
                // Stat through the layer link of the content digest; a missing blob is skipped.
                let known = match self.read_repo_link(&fs, repo, v, &d, false) {
                    Got::Digest(x) => match fs.blob_exists(&x) {
                        Ok(e) => e,
                        Err(Got::Err(e)) => {
                            return Err(abort(wrap(e), at(&item, layout::layer_link)))
                        }
                        Err(Got::Unknown(c)) => return Err(Stop::Unknown(c)),
                        Err(_) => false,
                    },
                    Got::NotFound => false,
                    Got::Err(e) => return Err(abort(wrap(e), at(&item, layout::layer_link))),
                    Got::Unknown(c) => return Err(Stop::Unknown(c)),
                };
                if known && !self.marked.contains(&d) {
                    self.layer_links.push(RepoDigest {
                        repo: v.walked.clone(),
                        digest: d,
                    });
                }
            }
        }
        Ok(())
    }
}

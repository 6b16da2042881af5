//! Test-only builder of valid in-memory inventories, so each check can be tested by breaking one
//! thing without a disk.

use crate::model::digest::Digest;
use crate::model::inventory::*;
use crate::model::manifest;

pub struct Builder {
    pub inv: Inventory,
    seq: u32,
}

pub fn link(d: &Digest) -> Link {
    Link::new(d.clone(), LinkState::Ok(d.clone()))
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            inv: Inventory {
                has_blobs_dir: true,
                has_repositories_dir: true,
                ..Inventory::default()
            },
            seq: 0,
        }
    }

    pub fn repo(&mut self, name: &str) -> &mut Repo {
        if !self.inv.repos.iter().any(|r| r.name == name) {
            self.inv.repos.push(Repo {
                name: name.to_string(),
                has_layers: true,
                has_manifests: true,
                has_revisions: true,
                has_tags: true,
                has_uploads: true,
                ..Repo::default()
            });
        }
        self.inv.repos.iter_mut().find(|r| r.name == name).unwrap()
    }

    pub fn blob(&mut self, bytes: &[u8]) -> Digest {
        let d = Digest::of_bytes(bytes);
        if !self.inv.blobs.iter().any(|b| b.digest == d) {
            self.inv.blobs.push(Blob {
                digest: d.clone(),
                size: bytes.len() as u64,
                mtime: 0,
                inode: 0,
                hashed: Hashed::Ok,
            });
            if bytes.starts_with(b"{\"schemaVersion\"") {
                self.inv.manifests.insert(d.clone(), manifest::parse(bytes));
            }
        }
        d
    }

    fn unique(&mut self, what: &str) -> Vec<u8> {
        self.seq += 1;
        format!("{what}-{}", self.seq).into_bytes()
    }

    pub fn tag(&mut self, repo: &str, tag: &str, d: &Digest) {
        let r = self.repo(repo);
        r.tags.retain(|t| t.name != tag);
        r.tags.push(Tag {
            name: tag.to_string(),
            current: LinkState::Ok(d.clone()),
            index: vec![link(d)],
            index_mtimes: Box::default(),
        });
    }

    /// A schema2 image (config + 2 layers) pushed to `repo`, tagged when `tag` is given.
    pub fn image(&mut self, repo: &str, tag: Option<&str>) -> Digest {
        let cfg = self.unique("config");
        let l1 = self.unique("layer");
        let l2 = self.unique("layer");
        let (c, a, b) = (self.blob(&cfg), self.blob(&l1), self.blob(&l2));
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{c}"}},"layers":[{{"mediaType":"x","size":{},"digest":"{a}"}},{{"mediaType":"x","size":{},"digest":"{b}"}}]}}"#,
            manifest::MT_DOCKER_V2,
            cfg.len(),
            l1.len(),
            l2.len()
        );
        let m = self.blob(body.as_bytes());
        let r = self.repo(repo);
        for d in [&c, &a, &b] {
            r.layers.push(link(d));
        }
        r.revisions.push(link(&m));
        if let Some(t) = tag {
            self.tag(repo, t, &m);
        }
        m
    }

    /// A Docker schema1 image (as the registry stores it: no signatures) pushed and tagged.
    pub fn schema1_image(&mut self, repo: &str, tag: &str) -> Digest {
        let l = self.unique("layer");
        let d = self.blob(&l);
        let body = format!(
            r#"{{"schemaVersion":1,"name":"{repo}","tag":"{tag}","architecture":"amd64","fsLayers":[{{"blobSum":"{d}"}},{{"blobSum":"{d}"}}],"history":[{{"v1Compatibility":"{{}}"}},{{"v1Compatibility":"{{}}"}}]}}"#
        );
        let m = self.blob(body.as_bytes());
        let r = self.repo(repo);
        r.layers.push(link(&d));
        r.revisions.push(link(&m));
        self.tag(repo, tag, &m);
        m
    }

    /// An OCI index over fresh untagged child images, tagged `tag`.
    pub fn index(&mut self, repo: &str, tag: &str) -> (Digest, Vec<Digest>) {
        let children = vec![self.image(repo, None), self.image(repo, None)];
        let descs: Vec<String> = children
            .iter()
            .map(|c| {
                let size = self.inv.blobs.iter().find(|b| &b.digest == c).unwrap().size;
                format!(r#"{{"mediaType":"{}","size":{size},"digest":"{c}","platform":{{"os":"linux","architecture":"amd64"}}}}"#, manifest::MT_DOCKER_V2)
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            manifest::MT_OCI_INDEX,
            descs.join(",")
        );
        let m = self.blob(body.as_bytes());
        self.repo(repo).revisions.push(link(&m));
        self.tag(repo, tag, &m);
        (m, children)
    }

    pub fn build(mut self) -> Inventory {
        self.inv.tree.push(TreeDir {
            path: String::new(),
            children: Vec::new(),
        });
        self.inv.normalize();
        self.inv
    }
}

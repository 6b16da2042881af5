//! Manifest bytes -> references, dispatched exactly as the registry's `manifestStore.Get` does
//! (schemaVersion first, then mediaType), including the shapes that make its GC abort or panic.
//! No I/O.

use crate::model::digest::Digest;
use serde::Deserialize;
use std::collections::BTreeMap;

pub const MT_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MT_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const MT_DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The registry refuses manifest bodies larger than this on PUT (`maxManifestBodySize`).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Schema1,
    DockerV2,
    DockerList,
    OciManifest,
    OciIndex,
}

impl Kind {
    pub fn is_index(self) -> bool {
        matches!(self, Kind::DockerList | Kind::OciIndex)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Schema1 => "Docker schema1 manifest",
            Kind::DockerV2 => "Docker schema2 manifest",
            Kind::DockerList => "Docker manifest list",
            Kind::OciManifest => "OCI image manifest",
            Kind::OciIndex => "OCI image index",
        }
    }
}

/// What a reference is to its manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Config,
    Layer,
    /// A child manifest of an index / manifest list.
    Child,
}

/// One descriptor that the registry's GC marks (`References()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub digest: Digest,
    pub role: Role,
    /// A foreign / non-distributable layer with URLs: its blob may legitimately be absent.
    pub foreign: bool,
    // An `Option<i64>` would take 16 bytes; a flag beside the value keeps a reference at 48.
    sized: bool,
    size: i64,
}

impl Reference {
    pub fn new(digest: Digest, size: Option<i64>, role: Role, foreign: bool) -> Reference {
        Reference {
            digest,
            role,
            foreign,
            sized: size.is_some(),
            size: size.unwrap_or(0),
        }
    }

    /// Descriptor size; `None` for schema1 blobSums, which carry none.
    pub fn size(&self) -> Option<i64> {
        self.sized.then_some(self.size)
    }
}

/// A manifest the registry can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub kind: Kind,
    // Boxed slices and a boxed subject: one `Manifest` per revision of the store stays at 48
    // bytes, with no growth slack.
    pub refs: Box<[Reference]>,
    /// Descriptor strings that are not valid digests (the registry marks them as text; pulls fail).
    pub bad_refs: Box<[String]>,
    /// The OCI `subject` (neither 2.8 nor 3.x marks it).
    pub subject: Option<Box<Digest>>,
}

impl Manifest {
    pub fn children(&self) -> impl Iterator<Item = &Reference> {
        self.refs.iter().filter(|r| r.role == Role::Child)
    }
}

/// How the registry's GC fails on an unreadable manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcFailure {
    /// `failed to garbage collect: failed to mark: failed to retrieve manifest ...`
    Abort,
    /// Go panic (exit status 2): the unchecked type assertion in manifestStore.Get.
    Panic,
}

/// A manifest blob the registry cannot read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: String,
    pub gc: GcFailure,
}

pub type Parsed = Result<Manifest, Invalid>;

#[derive(Deserialize)]
struct Versioned {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
}

// Go's encoding/json ignores unknown fields and leaves null/absent fields at their zero value;
// type mismatches are errors. Option + default reproduce that.
#[derive(Deserialize, Default)]
struct Platform {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(rename = "os.version", default)]
    _os_version: Option<String>,
    #[serde(rename = "os.features", default)]
    _os_features: Option<Vec<String>>,
    #[serde(default)]
    _variant: Option<String>,
    #[serde(default)]
    _features: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    _annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    _annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Image {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

#[derive(Deserialize)]
struct FsLayer {
    #[serde(rename = "blobSum", default)]
    blob_sum: Option<String>,
}

#[derive(Deserialize)]
struct Schema1 {
    #[serde(rename = "fsLayers", default)]
    fs_layers: Option<Vec<FsLayer>>,
}

fn abort(reason: impl Into<String>) -> Invalid {
    Invalid {
        reason: reason.into(),
        gc: GcFailure::Abort,
    }
}

fn is_foreign(d: &Descriptor) -> bool {
    let has_urls = d.urls.as_ref().is_some_and(|u| !u.is_empty());
    let mt = d.media_type.as_deref().unwrap_or("");
    has_urls && (mt == MT_DOCKER_FOREIGN || mt.contains("nondistributable"))
}

struct Collector {
    refs: Vec<Reference>,
    bad_refs: Vec<String>,
}

impl Collector {
    fn push(&mut self, d: &Descriptor, role: Role) {
        let text = d.digest.as_deref().unwrap_or("");
        match Digest::parse(text) {
            Ok(digest) => self
                .refs
                .push(Reference::new(digest, d.size, role, is_foreign(d))),
            Err(_) => self.bad_refs.push(text.to_string()),
        }
    }

    fn finish(self, kind: Kind, subject: Option<Digest>) -> Manifest {
        Manifest {
            kind,
            refs: self.refs.into_boxed_slice(),
            bad_refs: self.bad_refs.into_boxed_slice(),
            subject: subject.map(Box::new),
        }
    }
}

fn image(bytes: &[u8], kind: Kind) -> Parsed {
    let m: Image = serde_json::from_slice(bytes).map_err(|e| abort(e.to_string()))?;
    let mut c = Collector {
        refs: Vec::new(),
        bad_refs: Vec::new(),
    };
    if let Some(cfg) = &m.config {
        c.push(cfg, Role::Config);
    } else {
        // Go leaves a zero descriptor, whose empty digest is still "referenced".
        c.bad_refs.push(String::new());
    }
    for l in m.layers.iter().flatten() {
        c.push(l, Role::Layer);
    }
    let subject = m
        .subject
        .as_ref()
        .and_then(|s| s.digest.as_deref())
        .and_then(|s| Digest::parse(s).ok());
    Ok(c.finish(kind, subject))
}

fn index(ix: Index, kind: Kind) -> Manifest {
    let mut c = Collector {
        refs: Vec::new(),
        bad_refs: Vec::new(),
    };
    for d in ix.manifests.iter().flatten() {
        c.push(d, Role::Child);
    }
    c.finish(kind, None)
}

/// Platform text of an index child (`linux/arm64`), for messages.
pub fn child_platforms(bytes: &[u8]) -> Vec<(String, String)> {
    let Ok(ix) = serde_json::from_slice::<Index>(bytes) else {
        return Vec::new();
    };
    ix.manifests
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let p = d.platform.unwrap_or_default();
            Some((
                d.digest?,
                format!(
                    "{}/{}",
                    p.os.unwrap_or_default(),
                    p.architecture.unwrap_or_default()
                ),
            ))
        })
        .collect()
}

/// Parse a manifest blob the way the registry reads it back.
pub fn parse(bytes: &[u8]) -> Parsed {
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| abort(e.to_string()))?;
    match v.schema_version {
        1 => {
            let m: Schema1 = serde_json::from_slice(bytes).map_err(|e| abort(e.to_string()))?;
            let mut c = Collector {
                refs: Vec::new(),
                bad_refs: Vec::new(),
            };
            for l in m.fs_layers.iter().flatten() {
                match l.blob_sum.as_deref().map(Digest::parse) {
                    Some(Ok(digest)) => {
                        c.refs
                            .push(Reference::new(digest, None, Role::Layer, false))
                    }
                    other => c.bad_refs.push(match other {
                        Some(_) => l.blob_sum.clone().unwrap_or_default(),
                        None => String::new(),
                    }),
                }
            }
            Ok(c.finish(Kind::Schema1, None))
        }
        2 => match v.media_type.as_deref().unwrap_or("") {
            MT_DOCKER_V2 => image(bytes, Kind::DockerV2),
            MT_OCI_MANIFEST => image(bytes, Kind::OciManifest),
            MT_DOCKER_LIST | MT_OCI_INDEX => {
                let kind = if v.media_type.as_deref() == Some(MT_DOCKER_LIST) {
                    Kind::DockerList
                } else {
                    Kind::OciIndex
                };
                let ix: Index = serde_json::from_slice(bytes).map_err(|e| abort(e.to_string()))?;
                Ok(index(ix, kind))
            }
            "" => {
                // The registry first tries the index shape and asserts the result's type without
                // checking the error: a body that does not fit the index shape panics it.
                match serde_json::from_slice::<Index>(bytes) {
                    Err(e) => Err(Invalid {
                        reason: format!(
                            "no mediaType and not an image index ({e}): the registry's GC panics on it"
                        ),
                        gc: GcFailure::Panic,
                    }),
                    Ok(ix) if ix.manifests.is_some() => Ok(index(ix, Kind::OciIndex)),
                    Ok(_) => image(bytes, Kind::OciManifest),
                }
            }
            other => Err(abort(format!("unrecognized manifest content type {other}"))),
        },
        n => Err(abort(format!("unrecognized manifest schema version {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn docker_v2_and_oci_manifests() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_DOCKER_V2}","config":{{"mediaType":"x","size":3,"digest":"{D1}"}},"layers":[{{"mediaType":"y","size":5,"digest":"{D2}"}}]}}"#
        );
        let m = parse(body.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::DockerV2);
        assert_eq!(m.refs.len(), 2);
        assert_eq!(m.refs[0].role, Role::Config);
        assert_eq!(m.refs[1].size(), Some(5));
        let no_mt =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":1}},"layers":[]}}"#);
        assert_eq!(parse(no_mt.as_bytes()).unwrap().kind, Kind::OciManifest);
    }

    #[test]
    fn indexes() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{D1}","size":9,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
        );
        let m = parse(body.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::OciIndex);
        assert_eq!(m.children().count(), 1);
        assert_eq!(child_platforms(body.as_bytes())[0].1, "linux/arm64");
    }

    #[test]
    fn schema1() {
        let body = format!(
            r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{D1}"}},{{"blobSum":"{D1}"}}]}}"#
        );
        let m = parse(body.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::Schema1);
        assert_eq!(m.refs.len(), 2);
    }

    #[test]
    fn what_the_gc_chokes_on() {
        assert_eq!(parse(b"garbage").unwrap_err().gc, GcFailure::Abort);
        assert_eq!(parse(b"").unwrap_err().gc, GcFailure::Abort);
        assert_eq!(
            parse(br#"{"schemaVersion":2,"manifests":"x"}"#)
                .unwrap_err()
                .gc,
            GcFailure::Panic
        );
        let e = parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#).unwrap_err();
        assert!(e.reason.contains("unrecognized manifest content type"));
        assert!(parse(br#"{"mediaType":"x"}"#)
            .unwrap_err()
            .reason
            .contains("schema version 0"));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn foreign_layers_and_bad_digests() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_DOCKER_V2}","config":{{"digest":"{D1}"}},"layers":[{{"mediaType":"{MT_DOCKER_FOREIGN}","digest":"{D2}","urls":["https://x"]}},{{"digest":"nope"}}]}}"#
        );
        let m = parse(body.as_bytes()).unwrap();
        assert!(m.refs[1].foreign);
        assert_eq!(m.bad_refs.to_vec(), vec!["nope".to_string()]);
    }
}

//! Manifest bytes -> references, dispatched exactly as the registry's `manifestStore.Get` does
//! (schemaVersion first, then mediaType), decoded with Go's `encoding/json` rules into mirrors of
//! the registry's structs, including the shapes that make its GC abort or panic. No I/O.

mod structs;

use crate::model::digest::Digest;
use crate::model::gojson::{self, Validated};
use structs::{Descriptor, ImageManifest, ManifestList, Schema1, Versioned};

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

fn abort(reason: impl Into<String>) -> Invalid {
    Invalid {
        reason: reason.into(),
        gc: GcFailure::Abort,
    }
}

fn is_foreign(d: &Descriptor) -> bool {
    let mt = &*d.media_type;
    !d.urls.is_empty() && (mt == MT_DOCKER_FOREIGN || mt.contains("nondistributable"))
}

#[derive(Default)]
struct Collector {
    refs: Vec<Reference>,
    bad_refs: Vec<String>,
}

impl Collector {
    /// A descriptor the GC marks; a digest that is not valid (empty included) is kept as text.
    fn push(&mut self, d: &Descriptor, role: Role) {
        match Digest::parse(&d.digest) {
            Ok(digest) => self
                .refs
                .push(Reference::new(digest, d.size, role, is_foreign(d))),
            Err(_) => self.bad_refs.push(d.digest.to_string()),
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

/// `schema2.Manifest` / `ocischema.Manifest`: References() is the config, then the layers.
fn image(doc: &Validated<'_>, kind: Kind) -> Parsed {
    let st = if kind == Kind::DockerV2 {
        &structs::SCHEMA2
    } else {
        &structs::OCI_MANIFEST
    };
    let mut m = ImageManifest::default();
    doc.unmarshal(|d| m.decode(d, st)).map_err(abort)?;
    let mut c = Collector::default();
    c.push(&m.config, Role::Config);
    for l in m.layers.as_slice() {
        c.push(l, Role::Layer);
    }
    let subject = m
        .subject
        .and_then(structs::subject_digest)
        .and_then(|d| Digest::parse(&d).ok());
    Ok(c.finish(kind, subject))
}

fn index(list: &ManifestList<'_>, kind: Kind) -> Manifest {
    let mut c = Collector::default();
    for m in list.manifests.as_slice() {
        c.push(&m.desc, Role::Child);
    }
    c.finish(kind, None)
}

/// The signed schema1 path: libtrust first decodes the whole body into `map[string]interface{}`
/// (so any number beyond float64 fails, even in a field nobody reads), then the payload is
/// decoded into `schema1.Manifest`. Re-signing with the registry's key cannot fail on a body that
/// got this far (it is a non-empty object).
fn schema1(doc: &Validated<'_>) -> Parsed {
    if let Some(n) = doc.first_float_overflow() {
        return Err(abort(format!(
            "json: cannot unmarshal number {n} into Go value of type float64"
        )));
    }
    let mut m = Schema1::default();
    doc.unmarshal(|d| m.decode(d)).map_err(abort)?;
    let mut c = Collector::default();
    for sum in m.blob_sums.as_slice() {
        match Digest::parse(sum) {
            Ok(digest) => c
                .refs
                .push(Reference::new(digest, None, Role::Layer, false)),
            Err(_) => c.bad_refs.push(sum.to_string()),
        }
    }
    Ok(c.finish(Kind::Schema1, None))
}

/// Platform text of an index child (`linux/arm64`), for messages.
pub fn child_platforms(bytes: &[u8]) -> Vec<(String, String)> {
    let Ok(doc) = gojson::check_valid(bytes) else {
        return Vec::new();
    };
    let mut list = ManifestList::default();
    if doc.unmarshal(|d| list.decode(d)).is_err() {
        return Vec::new();
    }
    list.manifests
        .as_slice()
        .iter()
        .map(|m| {
            (
                m.desc.digest.to_string(),
                format!("{}/{}", m.platform.os, m.platform.architecture),
            )
        })
        .collect()
}

/// Parse a manifest blob the way the registry's `manifestStore.Get` reads it back: Go's
/// `encoding/json` into `manifest.Versioned`, then by schemaVersion and mediaType into the
/// registry's own structs (see `structs`). Reasons are Go's error texts, as the GC prints them.
pub fn parse(bytes: &[u8]) -> Parsed {
    let doc = gojson::check_valid(bytes).map_err(abort)?;
    let mut v = Versioned::default();
    doc.unmarshal(|d| v.decode(d)).map_err(abort)?;
    match v.schema_version {
        1 => schema1(&doc),
        2 => match &*v.media_type {
            MT_DOCKER_V2 => image(&doc, Kind::DockerV2),
            MT_OCI_MANIFEST => image(&doc, Kind::OciManifest),
            MT_DOCKER_LIST | MT_OCI_INDEX => {
                let kind = if v.media_type == MT_DOCKER_LIST {
                    Kind::DockerList
                } else {
                    Kind::OciIndex
                };
                let mut list = ManifestList::default();
                doc.unmarshal(|d| list.decode(d)).map_err(abort)?;
                Ok(index(&list, kind))
            }
            "" => {
                // The registry first tries the index shape and asserts the result's type without
                // checking the error: a body that does not fit the index shape panics it.
                let mut list = ManifestList::default();
                match doc.unmarshal(|d| list.decode(d)) {
                    Err(e) => Err(Invalid {
                        reason: format!(
                            "no mediaType and not an image index ({e}): the registry's GC panics on it"
                        ),
                        gc: GcFailure::Panic,
                    }),
                    Ok(()) if !list.manifests.is_nil() => Ok(index(&list, Kind::OciIndex)),
                    Ok(()) => image(&doc, Kind::OciManifest),
                }
            }
            other => Err(abort(format!(
                "errors verifying manifest: unrecognized manifest content type {other}"
            ))),
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

    const C: &str = "sha256:df9c2b7757c7463b0ecb614974ef0e470ee57f461794e76ec2b1f7710742547c";

    /// A Docker schema2 manifest with `cfg` as config, `layer` as its one layer, `top` appended.
    fn v2(cfg: &str, layer: &str, top: &str) -> Vec<u8> {
        format!(r#"{{"schemaVersion":2,"mediaType":"{MT_DOCKER_V2}","config":{cfg},"layers":[{layer}]{top}}}"#)
            .into_bytes()
    }

    fn swap(body: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(body)
            .unwrap()
            .replace(from, to)
            .into_bytes()
    }

    fn layer(extra: &str) -> String {
        format!(r#"{{"mediaType":"x","size":5,"digest":"{D2}"{extra}}}"#)
    }

    fn cfg() -> String {
        format!(r#"{{"mediaType":"c","size":3,"digest":"{C}"}}"#)
    }

    fn reason(body: &[u8]) -> String {
        match parse(body) {
            Ok(m) => panic!("accepted: {m:?}"),
            Err(e) => e.reason,
        }
    }

    fn digests(m: &Manifest) -> Vec<String> {
        m.refs
            .iter()
            .map(|r| r.digest.to_string())
            .chain(m.bad_refs.iter().cloned())
            .collect()
    }

    // Every expected text below is what the real 2.8.2 binary printed (GC abort, GET 500 detail);
    // tests/manifest_fidelity.rs keeps checking them against it.

    #[test]
    fn keys_fold_as_go_does() {
        let body = format!(
            r#"{{"SCHEMAVERSION":2,"MediaType":"{MT_DOCKER_V2}","Config":{{"Digest":"{C}","SIZE":3}},"LAYERS":[{{"\u0064igest":"{D2}","ſize":5}}]}}"#
        );
        let m = parse(body.as_bytes()).unwrap();
        assert_eq!(digests(&m), [C, D2]);
        assert_eq!(m.refs[1].size(), Some(5));
        let long_s = swap(
            v2(&cfg(), &layer(""), ""),
            "\"schemaVersion\"",
            "\"ſchemaVerſion\"",
        );
        assert!(parse(&long_s).is_ok());
        // The Kelvin sign folds only to k (no registry field has one); a dotless i to nothing.
        assert!(parse(&v2(
            &format!("{},\"\u{212a}onfig\":[],\"conf\u{131}g\":[]", cfg()),
            &layer(""),
            ""
        ))
        .is_ok());
        assert_eq!(
            reason(&v2(&format!("{},\"CONFIG\":[]", cfg()), &layer(""), "")),
            "json: cannot unmarshal array into Go struct field Manifest.config of type distribution.Descriptor"
        );
        assert_eq!(
            reason(&v2(&cfg(), &layer(",\"ſize\":\"x\""), "")),
            "json: cannot unmarshal string into Go struct field Descriptor.layers.size of type int64"
        );
    }

    #[test]
    fn duplicates_keep_the_last_value_field_by_field() {
        // config {digest}, then config {size}: still that digest.
        let m = parse(&v2(
            &format!(r#"{{"digest":"{C}"}},"config":{{"size":3}}"#),
            &layer(""),
            "",
        ))
        .unwrap();
        assert_eq!(digests(&m), [C, D2]);
        assert_eq!(m.refs[0].size(), Some(3));
        // layers [L1, L2] then [{size}]: one layer, L1's digest.
        let two = format!("{},{}", layer(""), layer("").replace(D2, D1));
        let m = parse(&v2(&cfg(), &two, r#","layers":[{"size":9}]"#)).unwrap();
        assert_eq!(digests(&m), [C, D2]);
        // [L1, L2], [{}], [{}, {}]: the second element comes back from the old backing array.
        let m = parse(&v2(&cfg(), &two, r#","layers":[{}],"layers":[{},{}]"#)).unwrap();
        assert_eq!(digests(&m), [C, D2, D1]);
        // An empty array in between starts afresh: the layer has an empty digest.
        let m = parse(&v2(&cfg(), &two, r#","layers":[],"layers":[{}]"#)).unwrap();
        assert_eq!(digests(&m), [C, ""]);
        // null leaves a digest alone; the last mediaType decides the kind.
        let m = parse(&v2(&cfg(), &layer(r#","digest":null"#), "")).unwrap();
        assert_eq!(digests(&m), [C, D2]);
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_DOCKER_LIST}","mediaType":"{MT_DOCKER_V2}","config":{}}}"#,
            cfg()
        );
        assert_eq!(parse(body.as_bytes()).unwrap().kind, Kind::DockerV2);
        // A wrong type fails even when a later duplicate is right.
        assert_eq!(
            reason(&v2(&cfg(), &layer(r#","size":"x","size":5"#), "")),
            "json: cannot unmarshal string into Go struct field Descriptor.layers.size of type int64"
        );
    }

    #[test]
    fn bad_utf8_and_lone_surrogates_are_not_errors() {
        let mut body = v2(&cfg(), &layer(r#","annotations":{"k":"\ud800"}"#), "");
        let at = body.windows(3).position(|w| w == b"\"x\"").unwrap();
        body[at + 1] = 0xff;
        let m = parse(&body).unwrap();
        assert_eq!(digests(&m), [C, D2]);
        let bad_digest = v2(&cfg(), &layer("").replace(D2, "sha256:\\udc00"), "");
        assert_eq!(
            parse(&bad_digest).unwrap().bad_refs.to_vec(),
            ["sha256:\u{fffd}"]
        );
    }

    #[test]
    fn nesting_limit() {
        let at = |n: usize| {
            v2(
                &cfg(),
                &layer(""),
                &format!(",\"x\":{}{}", "[".repeat(n - 1), "]".repeat(n - 1)),
            )
        };
        assert!(parse(&at(10_000)).is_ok());
        let e = parse(&at(10_001)).unwrap_err();
        assert_eq!(
            (e.reason.as_str(), e.gc),
            ("invalid character '[' exceeded max depth", GcFailure::Abort)
        );
    }

    #[test]
    fn null_is_the_zero_value_everywhere() {
        // config null: a zero descriptor; layers [null]: one zero descriptor. Both empty digests.
        let m = parse(&v2("null", "null", "")).unwrap();
        assert_eq!(digests(&m), ["", ""]);
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_DOCKER_V2}","config":{},"layers":null}}"#,
            cfg()
        );
        assert_eq!(digests(&parse(body.as_bytes()).unwrap()), [C]);
        let nulls = format!(
            r#"{{"mediaType":null,"size":null,"digest":"{D2}","urls":null,"annotations":null,"platform":null}}"#
        );
        assert!(parse(&v2(&cfg(), &nulls, "")).is_ok());
        assert!(parse(&v2(
            &cfg(),
            &layer(r#","urls":[null],"annotations":{"k":null}"#),
            ""
        ))
        .is_ok());
        // A null mediaType is the "" path: no manifests, so an OCI manifest.
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":null,"config":{}}}"#,
            cfg()
        );
        assert_eq!(parse(body.as_bytes()).unwrap().kind, Kind::OciManifest);
        assert_eq!(reason(b"null"), "unrecognized manifest schema version 0");
    }

    #[test]
    fn wrong_types_in_registry_fields_fail() {
        let pre = "json: cannot unmarshal ";
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (v2("[]", &layer(""), ""), "array into Go struct field Manifest.config of type distribution.Descriptor"),
            (v2("\"x\"", &layer(""), ""), "string into Go struct field Manifest.config of type distribution.Descriptor"),
            (v2(&cfg(), "1", ""), "number into Go struct field Manifest.layers of type distribution.Descriptor"),
            (v2(&cfg(), &layer(r#","size":182.0"#), ""), "number 182.0 into Go struct field Descriptor.layers.size of type int64"),
            (v2(&cfg(), &layer(r#","size":1e3"#), ""), "number 1e3 into Go struct field Descriptor.layers.size of type int64"),
            (v2(&cfg(), &layer(r#","size":9223372036854775808"#), ""), "number 9223372036854775808 into Go struct field Descriptor.layers.size of type int64"),
            (v2(&cfg(), &layer(r#","digest":5"#), ""), "number into Go struct field Descriptor.layers.digest of type digest.Digest"),
            (v2(&cfg(), &layer(r#","mediaType":{}"#), ""), "object into Go struct field Descriptor.layers.mediaType of type string"),
            (v2(&cfg(), &layer(r#","urls":"x""#), ""), "string into Go struct field Descriptor.layers.urls of type []string"),
            (v2(&cfg(), &layer(r#","urls":[1]"#), ""), "number into Go struct field Descriptor.layers.urls of type string"),
            (v2(&cfg(), &layer(r#","annotations":{"k":1}"#), ""), "number into Go struct field Descriptor.layers.annotations of type string"),
            (v2(&cfg(), &layer(r#","annotations":[]"#), ""), "array into Go struct field Descriptor.layers.annotations of type map[string]string"),
            (v2(&cfg(), &layer(r#","platform":[]"#), ""), "array into Go struct field Descriptor.layers.platform of type v1.Platform"),
            (v2(&cfg(), &layer(r#","platform":"x""#), ""), "string into Go struct field Descriptor.layers.platform of type v1.Platform"),
            (v2(&cfg(), &layer(r#","platform":{"variant":1}"#), ""), "number into Go struct field Platform.layers.platform.variant of type string"),
            (v2(&cfg(), &layer(r#","platform":{"os.version":1}"#), ""), "number into Go struct field Platform.layers.platform.os.version of type string"),
            (v2(&cfg(), &layer(r#","platform":{"os.features":[1]}"#), ""), "number into Go struct field Platform.layers.platform.os.features of type string"),
            (v2(&format!(r#"{{"digest":"{C}","annotations":{{"k":true}}}}"#), &layer(""), ""), "bool into Go struct field Descriptor.config.annotations of type string"),
            (br#"{"schemaVersion":2.0}"#.to_vec(), "number 2.0 into Go struct field Versioned.schemaVersion of type int"),
            (br#"{"schemaVersion":"2"}"#.to_vec(), "string into Go struct field Versioned.schemaVersion of type int"),
            (br#"{"schemaVersion":true}"#.to_vec(), "bool into Go struct field Versioned.schemaVersion of type int"),
            (br#"{"schemaVersion":2,"mediaType":5}"#.to_vec(), "number into Go struct field Versioned.mediaType of type string"),
            (b"[]".to_vec(), "array into Go value of type manifest.Versioned"),
            (b"1".to_vec(), "number into Go value of type manifest.Versioned"),
        ];
        for (body, want) in cases {
            let e = parse(&body).unwrap_err();
            assert_eq!(
                e.reason,
                format!("{pre}{want}"),
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(e.gc, GcFailure::Abort);
        }
        // OCI manifests have top-level annotations; Docker schema2 manifests do not.
        let oci = swap(
            v2(&cfg(), &layer(""), r#","annotations":{"k":1}"#),
            MT_DOCKER_V2,
            MT_OCI_MANIFEST,
        );
        assert_eq!(
            reason(&oci),
            format!("{pre}number into Go struct field Manifest.annotations of type string")
        );
        assert!(parse(&v2(&cfg(), &layer(""), r#","annotations":{"k":1}"#)).is_ok());
    }

    #[test]
    fn unknown_and_underscore_fields_are_ignored() {
        let junk = r#","_annotations":[1],"_variant":1,"_features":1,"Annotation":5,"subject":7"#;
        let m = parse(&v2(&format!("{},\"x\":{{}}", cfg()), &layer(junk), junk)).unwrap();
        assert_eq!(digests(&m), [C, D2]);
        // image-spec's v1.Platform in this binary has no `features`.
        assert!(parse(&v2(&cfg(), &layer(r#","platform":{"features":1}"#), "")).is_ok());
        // Numbers beyond float64 are fine outside schema1.
        assert!(parse(&v2(&cfg(), &layer(""), r#","x":1e400"#)).is_ok());
    }

    #[test]
    fn index_fields() {
        let ix = |child_extra: &str, top: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_INDEX}","manifests":[{{"digest":"{D1}","size":9,"platform":{{"os":"linux","architecture":"arm64"{child_extra}}}}}]{top}}}"#
            )
        };
        assert!(parse(ix("", r#","annotations":{"k":1}"#).as_bytes()).is_ok());
        assert_eq!(
            reason(ix(r#","features":1"#, "").as_bytes()),
            "json: cannot unmarshal number into Go struct field PlatformSpec.manifests.platform.features of type []string"
        );
        assert_eq!(
            reason(ix(r#","variant":1"#, "").as_bytes()),
            "json: cannot unmarshal number into Go struct field PlatformSpec.manifests.platform.variant of type string"
        );
        let bad_annotation = ix("", "").replace(r#""size":9"#, r#""size":9,"annotations":{"k":1}"#);
        assert_eq!(
            reason(bad_annotation.as_bytes()),
            "json: cannot unmarshal number into Go struct field ManifestDescriptor.manifests.annotations of type string"
        );
        let list =
            format!(r#"{{"schemaVersion":2,"mediaType":"{MT_DOCKER_LIST}","manifests":{{}}}}"#);
        assert_eq!(
            reason(list.as_bytes()),
            "json: cannot unmarshal object into Go struct field ManifestList.manifests of type []manifestlist.ManifestDescriptor"
        );
        let m = parse(ix("", "").as_bytes()).unwrap();
        assert_eq!(m.refs[0].size(), Some(9));
        assert_eq!(
            child_platforms(ix("", "").as_bytes()),
            [(D1.to_string(), "linux/arm64".to_string())]
        );
    }

    #[test]
    fn no_media_type_tries_the_index_shape_first() {
        let e = parse(br#"{"schemaVersion":2,"manifests":{}}"#).unwrap_err();
        assert_eq!(e.gc, GcFailure::Panic);
        assert!(
            e.reason
                .contains("of type []manifestlist.ManifestDescriptor"),
            "{}",
            e.reason
        );
        // manifests null: not an index, so an OCI manifest, whose own errors abort.
        assert_eq!(
            reason(br#"{"schemaVersion":2,"manifests":null,"config":[]}"#),
            "json: cannot unmarshal array into Go struct field Manifest.config of type distribution.Descriptor"
        );
        // manifests []: an index with no children; what else is there is never read.
        let m = parse(br#"{"schemaVersion":2,"manifests":[],"config":[]}"#).unwrap();
        assert_eq!(
            (m.kind, m.refs.len(), m.bad_refs.len()),
            (Kind::OciIndex, 0, 0)
        );
        assert_eq!(
            reason(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#),
            "errors verifying manifest: unrecognized manifest content type text/plain"
        );
    }

    #[test]
    fn schema1_reads_the_whole_body_as_generic_json_first() {
        let s1 = |extra: &str| {
            format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{D1}"}}]{extra}}}"#)
        };
        assert_eq!(
            reason(s1(r#","x":1e400"#).as_bytes()),
            "json: cannot unmarshal number 1e400 into Go value of type float64"
        );
        assert!(parse(s1(r#","x":1e-400,"signatures":5"#).as_bytes()).is_ok());
        assert_eq!(
            reason(s1(r#","name":5"#).as_bytes()),
            "json: cannot unmarshal number into Go struct field Manifest.name of type string"
        );
        assert_eq!(
            reason(s1(r#","history":[1]"#).as_bytes()),
            "json: cannot unmarshal number into Go struct field Manifest.history of type schema1.History"
        );
        assert_eq!(
            reason(s1(r#","FSLAYERS":[{"BlobSum":7}]"#).as_bytes()),
            "json: cannot unmarshal number into Go struct field FSLayer.fsLayers.blobSum of type digest.Digest"
        );
    }

    #[test]
    fn subject_is_read_leniently() {
        let oci = |top: &str| swap(v2(&cfg(), &layer(""), top), MT_DOCKER_V2, MT_OCI_MANIFEST);
        let m = parse(&oci(&format!(
            r#","Subject":{{"digest":"{D1}","size":"x"}}"#
        )))
        .unwrap();
        assert_eq!(
            m.subject.as_deref().map(|d| d.to_string()),
            Some(D1.to_string())
        );
        for junk in [
            r#","subject":5"#,
            r#","subject":{"digest":5}"#,
            r#","subject":{"digest":"nope"}"#,
        ] {
            let m = parse(&oci(junk)).unwrap();
            assert_eq!(
                (m.subject.clone(), digests(&m)),
                (None, vec![C.to_string(), D2.to_string()])
            );
        }
    }

    #[test]
    fn big_hostile_bodies_cost_linear_time() {
        // The registry's 4 MiB limit, filled with empty layers, repeated arrays and deep junk.
        let n = MAX_MANIFEST_SIZE as usize / 3;
        let layers = format!("[{}{{}}]", "{},".repeat(n / 2));
        let body = v2(
            &cfg(),
            "{}",
            &format!(
                r#","layers":{layers},"layers":[{{}}],"x":{}1{}"#,
                "[".repeat(9_000),
                "]".repeat(9_000)
            ),
        );
        let t = std::time::Instant::now();
        let m = parse(&body).unwrap();
        // One layer is left (the old first element: an empty digest).
        assert_eq!(m.bad_refs.to_vec(), [""]);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t.elapsed()
        );
        let deep = "{\"a\":".repeat(2_000_000);
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .reason
            .contains("exceeded max depth"));
    }

    #[test]
    fn struct_tables_are_sound() {
        // The fold rules assume ASCII names; two names that fold together would make the
        // field order matter, which the tables do not model.
        for st in structs::all_structs() {
            let names: Vec<&str> = st.fields.iter().chain(st.extra).copied().collect();
            for (i, a) in names.iter().enumerate() {
                assert!(a.is_ascii(), "{}.{a}", st.name);
                for b in &names[i + 1..] {
                    assert!(
                        !gojson::fold_matches(a, b.as_bytes()),
                        "{}: {a} ~ {b}",
                        st.name
                    );
                }
            }
        }
    }
}

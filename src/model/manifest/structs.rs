//! The registry's manifest structs (distribution 2.8.2 as Debian builds it: manifest.Versioned,
//! schema1, schema2, ocischema, manifestlist, distribution.Descriptor, image-spec's v1.Platform),
//! field for field with their Go JSON names and types, decoded with Go's rules (gojson). Only
//! what regfsck reads is stored; every other field the registry has is type-checked all the same,
//! because a wrong type there fails the registry's decode. Keys no struct has are skipped.

use crate::model::gojson::{Decoder, GoSlice, GoStruct, Step, Validated};
use std::borrow::Cow;

/// `manifest.Versioned`, decoded first from every manifest.
#[derive(Default)]
pub(super) struct Versioned<'a> {
    pub schema_version: i64,
    pub media_type: Cow<'a, str>,
}

const VERSIONED: GoStruct = GoStruct {
    name: "Versioned",
    go_type: "manifest.Versioned",
    fields: &["schemaVersion", "mediaType"],
    extra: &[],
};

impl<'a> Versioned<'a> {
    pub fn decode(&mut self, d: &mut Decoder<'a>) -> Step {
        d.object(&VERSIONED, |d, i| match i {
            0 => d.int(&mut self.schema_version, "int"),
            _ => d.string(&mut self.media_type, "string"),
        })
    }
}

/// `distribution.Descriptor`: mediaType, size, digest, urls, annotations, platform.
#[derive(Default)]
pub(super) struct Descriptor<'a> {
    pub media_type: Cow<'a, str>,
    /// None while no number was decoded: Go's value is then 0, but regfsck checks declared sizes
    /// against the blobs only where a manifest declares one.
    pub size: Option<i64>,
    pub digest: Cow<'a, str>,
    /// Only the length matters (a foreign layer has URLs).
    pub urls: GoSlice<()>,
}

const DESCRIPTOR_FIELDS: &[&str] = &[
    "mediaType",
    "size",
    "digest",
    "urls",
    "annotations",
    "platform",
];

const DESCRIPTOR: GoStruct = GoStruct {
    name: "Descriptor",
    go_type: "distribution.Descriptor",
    fields: DESCRIPTOR_FIELDS,
    extra: &[],
};

impl<'a> Descriptor<'a> {
    /// Field `i` of `DESCRIPTOR_FIELDS` except `platform`, whose type depends on the embedder.
    fn field(&mut self, d: &mut Decoder<'a>, i: usize) -> Step {
        match i {
            0 => d.string(&mut self.media_type, "string"),
            1 => d.opt_int(&mut self.size, "int64"),
            2 => d.string(&mut self.digest, "digest.Digest"),
            3 => d.slice(&mut self.urls, "[]string", |d, _| d.check_string("string")),
            _ => d.check_string_map("map[string]string", "string"),
        }
    }

    pub fn decode(&mut self, d: &mut Decoder<'a>) -> Step {
        d.object(&DESCRIPTOR, |d, i| match i {
            5 => check_v1_platform(d),
            _ => self.field(d, i),
        })
    }
}

/// `*v1.Platform` (image-spec as the binary has it: no `features` field, verified against the
/// registry: a wrong-typed `features` in a layer's platform is ignored).
const V1_PLATFORM: GoStruct = GoStruct {
    name: "Platform",
    go_type: "v1.Platform",
    fields: &["architecture", "os", "os.version", "os.features", "variant"],
    extra: &[],
};

fn check_v1_platform(d: &mut Decoder<'_>) -> Step {
    d.object(&V1_PLATFORM, |d, i| match i {
        3 => d.slice(&mut GoSlice::<()>::default(), "[]string", |d, _| {
            d.check_string("string")
        }),
        _ => d.check_string("string"),
    })
}

/// `manifestlist.PlatformSpec`, which (unlike v1.Platform) has `features`.
#[derive(Default)]
pub(super) struct PlatformSpec<'a> {
    pub architecture: Cow<'a, str>,
    pub os: Cow<'a, str>,
}

const PLATFORM_SPEC: GoStruct = GoStruct {
    name: "PlatformSpec",
    go_type: "manifestlist.PlatformSpec",
    fields: &[
        "architecture",
        "os",
        "os.version",
        "os.features",
        "variant",
        "features",
    ],
    extra: &[],
};

impl<'a> PlatformSpec<'a> {
    fn decode(&mut self, d: &mut Decoder<'a>) -> Step {
        d.object(&PLATFORM_SPEC, |d, i| match i {
            0 => d.string(&mut self.architecture, "string"),
            1 => d.string(&mut self.os, "string"),
            3 | 5 => d.slice(&mut GoSlice::<()>::default(), "[]string", |d, _| {
                d.check_string("string")
            }),
            _ => d.check_string("string"),
        })
    }
}

/// `manifestlist.ManifestDescriptor`: an embedded Descriptor whose `platform` is shadowed by
/// the list's own `PlatformSpec` (Go keeps the shallower field).
#[derive(Default)]
pub(super) struct ManifestDescriptor<'a> {
    pub desc: Descriptor<'a>,
    pub platform: PlatformSpec<'a>,
}

const MANIFEST_DESCRIPTOR: GoStruct = GoStruct {
    name: "ManifestDescriptor",
    go_type: "manifestlist.ManifestDescriptor",
    fields: DESCRIPTOR_FIELDS,
    extra: &[],
};

impl<'a> ManifestDescriptor<'a> {
    fn decode(&mut self, d: &mut Decoder<'a>) -> Step {
        d.object(&MANIFEST_DESCRIPTOR, |d, i| match i {
            5 => self.platform.decode(d),
            _ => self.desc.field(d, i),
        })
    }
}

/// `manifestlist.ManifestList` (Docker manifest list and OCI index alike; 2.8 has no
/// index-level `annotations`).
#[derive(Default)]
pub(super) struct ManifestList<'a> {
    pub manifests: GoSlice<ManifestDescriptor<'a>>,
}

const MANIFEST_LIST: GoStruct = GoStruct {
    name: "ManifestList",
    go_type: "manifestlist.ManifestList",
    fields: &["schemaVersion", "mediaType", "manifests"],
    extra: &[],
};

impl<'a> ManifestList<'a> {
    pub fn decode(&mut self, d: &mut Decoder<'a>) -> Step {
        d.object(&MANIFEST_LIST, |d, i| match i {
            0 => d.int(&mut 0, "int"),
            1 => d.check_string("string"),
            _ => d.slice(
                &mut self.manifests,
                "[]manifestlist.ManifestDescriptor",
                |d, m| m.decode(d),
            ),
        })
    }
}

/// `schema2.Manifest` and `ocischema.Manifest` (the OCI one also has `annotations`; 2.8's has no
/// `subject`, which regfsck reads for itself, leniently).
#[derive(Default)]
pub(super) struct ImageManifest<'a> {
    pub config: Descriptor<'a>,
    pub layers: GoSlice<Descriptor<'a>>,
    pub subject: Option<Validated<'a>>,
}

pub(super) const SCHEMA2: GoStruct = GoStruct {
    name: "Manifest",
    go_type: "schema2.Manifest",
    fields: &["schemaVersion", "mediaType", "config", "layers"],
    extra: &["subject"],
};

pub(super) const OCI_MANIFEST: GoStruct = GoStruct {
    name: "Manifest",
    go_type: "ocischema.Manifest",
    fields: &[
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "annotations",
    ],
    extra: &["subject"],
};

impl<'a> ImageManifest<'a> {
    pub fn decode(&mut self, d: &mut Decoder<'a>, st: &GoStruct) -> Step {
        let extra = st.fields.len();
        d.object(st, |d, i| match i {
            i if i >= extra => {
                self.subject = Some(d.raw_value());
                Ok(())
            }
            0 => d.int(&mut 0, "int"),
            1 => d.check_string("string"),
            2 => d.object(&DESCRIPTOR, |d, i| match i {
                5 => check_v1_platform(d),
                _ => self.config.field(d, i),
            }),
            3 => d.slice(&mut self.layers, "[]distribution.Descriptor", |d, l| {
                l.decode(d)
            }),
            _ => d.check_string_map("map[string]string", "string"),
        })
    }
}

/// `schema1.Manifest` (the payload of a signed schema1 manifest).
#[derive(Default)]
pub(super) struct Schema1<'a> {
    pub blob_sums: GoSlice<Cow<'a, str>>,
}

const SCHEMA1: GoStruct = GoStruct {
    name: "Manifest",
    go_type: "schema1.Manifest",
    fields: &[
        "schemaVersion",
        "mediaType",
        "name",
        "tag",
        "architecture",
        "fsLayers",
        "history",
    ],
    extra: &[],
};

const FS_LAYER: GoStruct = GoStruct {
    name: "FSLayer",
    go_type: "schema1.FSLayer",
    fields: &["blobSum"],
    extra: &[],
};

const HISTORY: GoStruct = GoStruct {
    name: "History",
    go_type: "schema1.History",
    fields: &["v1Compatibility"],
    extra: &[],
};

impl<'a> Schema1<'a> {
    pub fn decode(&mut self, d: &mut Decoder<'a>) -> Step {
        d.object(&SCHEMA1, |d, i| match i {
            0 => d.int(&mut 0, "int"),
            5 => d.slice(&mut self.blob_sums, "[]schema1.FSLayer", |d, sum| {
                d.object(&FS_LAYER, |d, _| d.string(sum, "digest.Digest"))
            }),
            6 => d.slice(
                &mut GoSlice::<()>::default(),
                "[]schema1.History",
                |d, _| d.object(&HISTORY, |d, _| d.check_string("string")),
            ),
            _ => d.check_string("string"),
        })
    }
}

/// The OCI `subject` descriptor's digest (the value of an `extra` key, read leniently: a wrong
/// type there means no subject, never an error).
pub(super) fn subject_digest(value: Validated<'_>) -> Option<Cow<'_, str>> {
    let mut digest = Cow::Borrowed("");
    value
        .unmarshal(|d| d.object(&SUBJECT, |d, _| d.string(&mut digest, "digest.Digest")))
        .ok()?;
    Some(digest)
}

const SUBJECT: GoStruct = GoStruct {
    name: "Descriptor",
    go_type: "distribution.Descriptor",
    fields: &["digest"],
    extra: &[],
};

#[cfg(test)]
pub(super) fn all_structs() -> [&'static GoStruct; 12] {
    [
        &VERSIONED,
        &DESCRIPTOR,
        &V1_PLATFORM,
        &PLATFORM_SPEC,
        &MANIFEST_DESCRIPTOR,
        &MANIFEST_LIST,
        &SCHEMA2,
        &OCI_MANIFEST,
        &SCHEMA1,
        &FS_LAYER,
        &HISTORY,
        &SUBJECT,
    ]
}

//! Adversarial manifests: a real manifest of the fixture (so its blobs and links exist) with one to
//! three mutations of the kinds Go's encoding/json and the registry's structs treat specially, pushed
//! as a new tagged revision of the same repository.

use super::json::J;
use super::ops::{os, Act, Op};
use super::rng::Rng;
use super::tree::{repo_of, Tree};
use crate::common::store::v2;
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    Int,
    Str,
    Obj,
    ArrDesc,
    MapStr,
    ArrStr,
}

/// The fields the registry's 2.8 structs decode, by the kind of object holding them.
const TOP: &[(&str, Ty)] = &[
    ("schemaVersion", Ty::Int),
    ("mediaType", Ty::Str),
    ("config", Ty::Obj),
    ("layers", Ty::ArrDesc),
    ("manifests", Ty::ArrDesc),
    ("annotations", Ty::MapStr),
];
const DESCRIPTOR: &[(&str, Ty)] = &[
    ("mediaType", Ty::Str),
    ("size", Ty::Int),
    ("digest", Ty::Str),
    ("urls", Ty::ArrStr),
    ("annotations", Ty::MapStr),
    ("platform", Ty::Obj),
];
const PLATFORM: &[(&str, Ty)] = &[
    ("architecture", Ty::Str),
    ("os", Ty::Str),
    ("os.version", Ty::Str),
    ("os.features", Ty::ArrStr),
    ("variant", Ty::Str),
    ("features", Ty::ArrStr),
];

fn junk(rng: &mut Rng, ty: Ty) -> J {
    let choices: &[&str] = match ty {
        Ty::Int => &[
            "\"2\"",
            "2.0",
            "2e0",
            "true",
            "[]",
            "{}",
            "1e400",
            "99999999999999999999",
            "-1",
        ],
        Ty::Str => &["1", "true", "[]", "{}", "[\"x\"]", "{\"k\":\"v\"}", "2.5"],
        Ty::Obj => &["1", "\"x\"", "[]", "true", "[{}]"],
        Ty::ArrDesc => &["{}", "1", "\"x\"", "[1]", "[\"x\"]", "[[]]", "true"],
        Ty::MapStr => &[
            "[]",
            "1",
            "\"x\"",
            "{\"k\":1}",
            "{\"k\":true}",
            "{\"k\":[\"x\"]}",
            "{\"k\":{}}",
            "{\"k\":null}",
        ],
        Ty::ArrStr => &["\"x\"", "[1]", "{}", "[[\"x\"]]", "[true]", "1", "[null]"],
    };
    J::raw(rng.pick(choices).unwrap())
}

fn any_junk(rng: &mut Rng) -> J {
    let ty = *rng
        .pick(&[
            Ty::Int,
            Ty::Str,
            Ty::Obj,
            Ty::ArrDesc,
            Ty::MapStr,
            Ty::ArrStr,
        ])
        .unwrap();
    junk(rng, ty)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Top,
    Descriptor,
    Platform,
}

impl Role {
    fn fields(self) -> &'static [(&'static str, Ty)] {
        match self {
            Role::Top => TOP,
            Role::Descriptor => DESCRIPTOR,
            Role::Platform => PLATFORM,
        }
    }
}

fn member(j: &J, key: &str) -> Option<usize> {
    match j {
        J::Obj(m) => m.iter().position(|(k, _)| k == key.as_bytes()),
        _ => None,
    }
}

/// Every object the registry decodes into a struct, with its role.
fn objects(j: &J) -> Vec<(Vec<usize>, Role)> {
    let mut out = vec![(vec![], Role::Top)];
    if let Some(i) = member(j, "config").filter(|&i| matches!(j.child(i), Some(J::Obj(_)))) {
        out.push((vec![i], Role::Descriptor));
    }
    for key in ["layers", "manifests"] {
        let Some(i) = member(j, key) else { continue };
        let Some(J::Arr(items)) = j.child(i) else {
            continue;
        };
        for (n, d) in items.iter().enumerate() {
            if matches!(d, J::Obj(_)) {
                out.push((vec![i, n], Role::Descriptor));
                if let Some(p) =
                    member(d, "platform").filter(|&p| matches!(d.child(p), Some(J::Obj(_))))
                {
                    out.push((vec![i, n, p], Role::Platform));
                }
            }
        }
    }
    out
}

fn members_mut(j: &mut J) -> Option<&mut Vec<(Vec<u8>, J)>> {
    match j {
        J::Obj(m) => Some(m),
        _ => None,
    }
}

fn case_key(rng: &mut Rng, j: &mut J) -> Option<String> {
    let objs = objects(j);
    let (path, _) = rng.pick(&objs)?.clone();
    let m = members_mut(j.at_mut(&path)?)?;
    if m.is_empty() {
        return None;
    }
    let i = rng.below(m.len());
    let key = String::from_utf8(m[i].0.clone()).ok()?;
    let variants = [
        {
            let mut c = key.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        },
        key.to_uppercase(),
        key.to_lowercase(),
    ];
    let v = rng.pick(&variants)?.clone();
    if v == key {
        return None;
    }
    m[i].0 = v.into_bytes();
    Some("case-key".into())
}

fn decoded_type(role: Role, key: &[u8]) -> Option<Ty> {
    role.fields()
        .iter()
        .find(|(k, _)| k.as_bytes() == key)
        .map(|(_, t)| *t)
}

fn dup_key(rng: &mut Rng, j: &mut J) -> Option<String> {
    let objs = objects(j);
    let (path, role) = rng.pick(&objs)?.clone();
    let m = members_mut(j.at_mut(&path)?)?;
    if m.is_empty() {
        return None;
    }
    let i = rng.below(m.len());
    let key = m[i].0.clone();
    let value = match rng.below(3) {
        0 => match decoded_type(role, &key) {
            Some(t) => junk(rng, t),
            None => any_junk(rng),
        },
        1 => J::raw("null"),
        _ => {
            // Another member's value: plausible JSON of the wrong meaning.
            let o = rng.below(m.len());
            m[o].1.clone()
        }
    };
    if rng.chance(50) {
        m.insert(i, (key, value));
        Some("dup-key-first".into())
    } else {
        m.insert(i + 1, (key, value));
        Some("dup-key-last".into())
    }
}

/// Insert raw bytes at the start or end of a string's content (never inside an escape).
fn into_string(rng: &mut Rng, j: &mut J, bytes: &[u8]) -> bool {
    let leaves = j.string_leaves();
    let Some(path) = rng.pick(&leaves).cloned() else {
        return false;
    };
    let Some(J::Raw(s)) = j.at_mut(&path) else {
        return false;
    };
    let at = if rng.chance(50) { 1 } else { s.len() - 1 };
    s.splice(at..at, bytes.iter().copied());
    true
}

fn invalid_utf8(rng: &mut Rng, j: &mut J) -> Option<String> {
    let seq = rng
        .pick(&[&b"\xff"[..], b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"])
        .unwrap()
        .to_vec();
    if rng.chance(20) {
        // In a key: the member then matches no field.
        let objs = objects(j);
        let (path, _) = rng.pick(&objs)?.clone();
        let m = members_mut(j.at_mut(&path)?)?;
        if m.is_empty() {
            return None;
        }
        let i = rng.below(m.len());
        m[i].0.extend_from_slice(&seq);
        return Some("invalid-utf8-key".into());
    }
    into_string(rng, j, &seq).then(|| "invalid-utf8".into())
}

fn lone_surrogate(rng: &mut Rng, j: &mut J) -> Option<String> {
    let esc = rng
        .pick(&["\\ud800", "\\udc00", "\\ud83d", "\\uDFFF"])
        .unwrap();
    into_string(rng, j, esc.as_bytes()).then(|| "lone-surrogate".into())
}

fn deep_nesting(rng: &mut Rng, j: &mut J) -> Option<String> {
    let d = *rng
        .pick(&[64usize, 128, 129, 1000, 9998, 9999, 10000, 10001])
        .unwrap();
    let raw = if rng.chance(60) {
        format!("{}{}", "[".repeat(d), "]".repeat(d))
    } else {
        format!("{}{{}}{}", "{\"a\":".repeat(d - 1), "}".repeat(d - 1))
    };
    let objs = objects(j);
    let (path, role) = if rng.chance(60) {
        (vec![], Role::Top)
    } else {
        rng.pick(&objs)?.clone()
    };
    let key = if rng.chance(75) {
        "x".to_string()
    } else {
        rng.pick(role.fields()).unwrap().0.to_string()
    };
    let m = members_mut(j.at_mut(&path)?)?;
    m.push((key.into_bytes(), J::Raw(raw.into_bytes())));
    Some(format!("deep-nesting-{d}"))
}

fn array_for_object(rng: &mut Rng, j: &mut J) -> Option<String> {
    let paths: Vec<Vec<usize>> = j
        .containers()
        .into_iter()
        .filter(|p| !p.is_empty() && matches!(j.at(p), Some(J::Obj(_))))
        .collect();
    let path = rng.pick(&paths)?.clone();
    let node = j.at_mut(&path)?;
    let J::Obj(m) = node.clone() else {
        return None;
    };
    *node = match rng.below(3) {
        0 => J::Arr(m.into_iter().map(|(_, v)| v).collect()),
        1 => J::Arr(vec![]),
        _ => J::Arr(vec![J::Obj(m)]),
    };
    Some("array-for-object".into())
}

fn wrong_type(rng: &mut Rng, j: &mut J, null: bool) -> Option<String> {
    let objs = objects(j);
    let (path, role) = rng.pick(&objs)?.clone();
    let add = rng.chance(25);
    let (key, ty) = *rng.pick(role.fields())?;
    let value = if null { J::raw("null") } else { junk(rng, ty) };
    let m = members_mut(j.at_mut(&path)?)?;
    let label = if null { "null" } else { "wrong-type" };
    match m.iter().position(|(k, _)| k == key.as_bytes()) {
        Some(i) if !add => {
            m[i].1 = value;
            Some(format!("{label}:{key}"))
        }
        None if add => {
            let at = rng.below(m.len() + 1);
            m.insert(at, (key.as_bytes().to_vec(), value));
            Some(format!("{label}:{key}"))
        }
        _ => None,
    }
}

fn unknown_field(rng: &mut Rng, j: &mut J) -> Option<String> {
    let objs = objects(j);
    let (path, _) = rng.pick(&objs)?.clone();
    let key = *rng
        .pick(&[
            "foo",
            "_annotations",
            "_variant",
            "_features",
            "artifactType",
            "subject",
            "x-extra",
            "annotation",
        ])
        .unwrap();
    let value = any_junk(rng);
    let m = members_mut(j.at_mut(&path)?)?;
    let at = rng.below(m.len() + 1);
    m.insert(at, (key.as_bytes().to_vec(), value));
    Some("unknown-field".into())
}

fn missing_media_type(rng: &mut Rng, j: &mut J) -> Option<String> {
    let objs = objects(j);
    let (path, role) = if rng.chance(70) {
        (vec![], Role::Top)
    } else {
        rng.pick(&objs)?.clone()
    };
    let m = members_mut(j.at_mut(&path)?)?;
    let before = m.len();
    m.retain(|(k, _)| k != b"mediaType");
    (m.len() < before).then(|| {
        if role == Role::Top {
            "missing-mediaType".into()
        } else {
            "missing-descriptor-mediaType".into()
        }
    })
}

/// A Docker schema1 manifest (unsigned, as some old tools pushed them) over the base's layers,
/// top layer first, with the v1 history a client needs to convert it.
fn schema1(repo: &str, tag: &str, base: &J) -> J {
    let mut layers = Vec::new();
    if let Some(J::Arr(items)) = base.get("layers") {
        for d in items.iter().rev() {
            if let Some(dg) = d.get("digest") {
                layers.push(J::Obj(vec![(b"blobSum".to_vec(), dg.clone())]));
            }
        }
    }
    let id = |i: usize| super::ops::manifest_digest(format!("{repo}:{tag}:{i}").as_bytes());
    let history = (0..layers.len())
        .map(|i| {
            let mut v = serde_json::json!({"id": id(i), "created": "2024-01-01T00:00:00Z"});
            if i + 1 < layers.len() {
                v["parent"] = id(i + 1).into();
            }
            if i == 0 {
                v["architecture"] = "amd64".into();
                v["os"] = "linux".into();
            }
            J::Obj(vec![(b"v1Compatibility".to_vec(), J::str(&v.to_string()))])
        })
        .collect();
    J::Obj(vec![
        (b"schemaVersion".to_vec(), J::raw("1")),
        (b"name".to_vec(), J::str(repo)),
        (b"tag".to_vec(), J::str(tag)),
        (b"architecture".to_vec(), J::str("amd64")),
        (b"fsLayers".to_vec(), J::Arr(layers)),
        (b"history".to_vec(), J::Arr(history)),
    ])
}

/// Tagged manifests of the store that parse: (repo, manifest).
fn bases(t: &Tree, root: &Path) -> Vec<(String, J)> {
    let mut out = Vec::new();
    for e in t.tag_dirs() {
        let Some(repo) = repo_of(&e.path) else {
            continue;
        };
        let cur = v2(root).join(os(&e.path)).join("current/link");
        let Ok(link) = std::fs::read_to_string(&cur) else {
            continue;
        };
        let Some(hex) = link.strip_prefix("sha256:").filter(|h| h.len() == 64) else {
            continue;
        };
        let data = v2(root).join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
        if std::fs::symlink_metadata(&data)
            .map(|m| m.is_file())
            .unwrap_or(false)
        {
            if let Some(j) = std::fs::read(&data).ok().and_then(|d| J::parse(&d)) {
                if j.get("schemaVersion").is_some() {
                    out.push((repo, j));
                }
            }
        }
    }
    out
}

pub fn generate(rng: &mut Rng, t: &Tree, root: &Path, k: usize) -> Option<Op> {
    let bases = bases(t, root);
    let (repo, base) = rng.pick(&bases)?.clone();
    let tag = format!("fz{k}");
    let has_layers = matches!(base.get("layers"), Some(J::Arr(l)) if !l.is_empty());
    let (label, body) = if has_layers && rng.chance(7) {
        ("schema1".to_string(), schema1(&repo, &tag, &base))
    } else if rng.chance(4) {
        ("plain-copy".to_string(), base)
    } else {
        let mut j = base;
        let n = 1 + rng.weighted(&[60, 30, 10]);
        let mut labels = Vec::new();
        let mut tries = 0;
        while labels.len() < n && tries < 30 {
            tries += 1;
            let l = match rng.weighted(&[12, 12, 10, 8, 8, 10, 20, 4, 10, 6]) {
                0 => case_key(rng, &mut j),
                1 => dup_key(rng, &mut j),
                2 => invalid_utf8(rng, &mut j),
                3 => lone_surrogate(rng, &mut j),
                4 => deep_nesting(rng, &mut j),
                5 => array_for_object(rng, &mut j),
                6 => wrong_type(rng, &mut j, false),
                7 => wrong_type(rng, &mut j, true),
                8 => unknown_field(rng, &mut j),
                _ => missing_media_type(rng, &mut j),
            };
            labels.extend(l);
        }
        (labels.join("+"), j)
    };
    Some(Op::new(
        format!("manifest:{label}"),
        vec![Act::Manifest { repo, tag, body }],
    ))
}

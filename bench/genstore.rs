//! Generates large registry stores in the exact layout the real registry writes (byte-identical
//! 71-byte link files, `_layers` links for configs and layers, revisions, tags with history, the
//! empty `_uploads/` of every pushed-to repository, abandoned uploads), with valid Docker schema2
//! manifests and OCI indexes, so that the real `garbage-collect` parses every manifest.
//!
//! cargo run --release --example genstore -- --out DIR [--target-blobs N | --repos R --images I]
//!     [--layers L] [--blob-size BYTES] [--shared PCT] [--multiarch PCT] [--untagged PCT]
//!     [--orphans N] [--uploads N] [--seed S]

use rayon::prelude::*;
use regfsck::model::digest::Digest;
use regfsck::model::layout;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

struct Args {
    out: PathBuf,
    repos: usize,
    images: usize,
    layers: usize,
    blob_size: usize,
    shared: u64,
    multiarch: u64,
    untagged: u64,
    orphans: usize,
    uploads: usize,
    seed: u64,
    target_blobs: Option<usize>,
}

fn parse() -> Args {
    let mut a = Args {
        out: PathBuf::new(),
        repos: 10,
        images: 10,
        layers: 3,
        blob_size: 512,
        shared: 20,
        multiarch: 10,
        untagged: 10,
        orphans: 0,
        uploads: 0,
        seed: 1,
        target_blobs: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        let n = || {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--out" => a.out = PathBuf::from(&v),
            "--repos" => a.repos = n() as usize,
            "--images" => a.images = n() as usize,
            "--layers" => a.layers = n() as usize,
            "--blob-size" => a.blob_size = n() as usize,
            "--shared" => a.shared = n(),
            "--multiarch" => a.multiarch = n(),
            "--untagged" => a.untagged = n(),
            "--orphans" => a.orphans = n() as usize,
            "--uploads" => a.uploads = n() as usize,
            "--seed" => a.seed = n(),
            "--target-blobs" => a.target_blobs = Some(n() as usize),
            other => panic!("unknown flag {other}"),
        }
        i += 2;
    }
    assert!(!a.out.as_os_str().is_empty(), "--out DIR is required");
    if let Some(t) = a.target_blobs {
        // Blobs per image: manifest + config + unshared layers (+ children for indexes).
        let unique = a.layers as f64 * (100 - a.shared) as f64 / 100.0;
        let per = (2.0 + unique)
            * (1.0 + 2.0 * a.multiarch as f64 / 100.0)
            * (1.0 + a.untagged as f64 / 100.0);
        a.images = ((t as f64 / per) / a.repos as f64).ceil().max(1.0) as usize;
    }
    a
}

/// splitmix64: deterministic content from (seed, id).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn content(seed: u64, id: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 8);
    let mut s = mix(seed ^ mix(id));
    while out.len() < size {
        s = mix(s);
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(size);
    out
}

struct Store<'a> {
    v2: &'a Path,
    blobs: AtomicU64,
    bytes: AtomicU64,
}

impl Store<'_> {
    fn put_blob(&self, data: &[u8]) -> Digest {
        let d = Digest::of_bytes(data);
        let p = self.v2.join(layout::blob_data(&d));
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).unwrap();
        }
        // Shared layers are written once; a concurrent writer of the same blob just loses.
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(mut f) => {
                f.write_all(data).unwrap();
                self.blobs.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("{}: {e}", p.display()),
        }
        d
    }

    fn put_link(&self, rel: &str, d: &Digest) {
        let p = self.v2.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, layout::link_content(d)).unwrap();
    }
}

struct Image {
    manifest: Digest,
    size: usize,
    blobs: Vec<Digest>,
}

fn image(st: &Store, a: &Args, id: u64, arch: &str) -> Image {
    let mut layers = Vec::new();
    for l in 0..a.layers as u64 {
        let shared = mix(a.seed ^ id.wrapping_mul(31) ^ l) % 100 < a.shared;
        // Shared layers come from a small pool, so they repeat across repositories.
        let lid = if shared {
            1_000_000_000 + mix(id ^ l) % 50
        } else {
            id * 64 + l
        };
        let data = content(a.seed, lid, a.blob_size);
        layers.push((st.put_blob(&data), data.len()));
    }
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Labels":{{"id":"{id}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    let cd = st.put_blob(config.as_bytes());
    let layer_json: Vec<String> = layers
        .iter()
        .map(|(d, s)| format!(r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{s},"digest":"{d}"}}"#))
        .collect();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{cd}"}},"layers":[{}]}}"#,
        config.len(),
        layer_json.join(",")
    );
    let md = st.put_blob(body.as_bytes());
    let mut blobs = vec![cd];
    blobs.extend(layers.into_iter().map(|(d, _)| d));
    Image {
        manifest: md,
        size: body.len(),
        blobs,
    }
}

fn tag(st: &Store, repo: &str, t: &str, history: &[Digest]) {
    for d in history {
        st.put_link(&layout::tag_index_link(repo, t, d), d);
    }
    if let Some(cur) = history.last() {
        st.put_link(&layout::tag_current_link(repo, t), cur);
    }
}

fn repo(st: &Store, a: &Args, r: usize) {
    let name = format!("team{}/app{r}", r % 7);
    fs::create_dir_all(st.v2.join(layout::uploads_dir(&name))).unwrap();
    fs::create_dir_all(st.v2.join(layout::layers_dir(&name))).unwrap();
    fs::create_dir_all(st.v2.join(layout::tags_dir(&name))).unwrap();
    for i in 0..a.images {
        let id = (r * 100_000 + i) as u64 * 8;
        let roll = mix(a.seed ^ id) % 100;
        let mut history = Vec::new();
        if mix(a.seed ^ id ^ 7) % 100 < a.untagged {
            // An older push of the same tag: its revision stays, untagged.
            let old = image(st, a, id + 5, "amd64");
            link_image(st, &name, &old);
            history.push(old.manifest);
        }
        if roll < a.multiarch {
            let kids = [image(st, a, id + 1, "amd64"), image(st, a, id + 2, "arm64")];
            let descs: Vec<String> = kids
                .iter()
                .zip(["amd64", "arm64"])
                .map(|(k, arch)| {
                    format!(r#"{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":{},"digest":"{}","platform":{{"architecture":"{arch}","os":"linux"}}}}"#, k.size, k.manifest)
                })
                .collect();
            for k in &kids {
                link_image(st, &name, k);
            }
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
                descs.join(",")
            );
            let ix = st.put_blob(body.as_bytes());
            st.put_link(&layout::revision_link(&name, &ix), &ix);
            history.push(ix);
        } else {
            let img = image(st, a, id, "amd64");
            link_image(st, &name, &img);
            history.push(img.manifest);
        }
        tag(st, &name, &format!("v{i}"), &history);
    }
}

fn link_image(st: &Store, repo: &str, img: &Image) {
    for b in &img.blobs {
        st.put_link(&layout::layer_link(repo, b), b);
    }
    st.put_link(&layout::revision_link(repo, &img.manifest), &img.manifest);
}

fn main() {
    let a = parse();
    let v2 = a.out.join(layout::V2_FROM_ROOT);
    fs::create_dir_all(v2.join("blobs")).unwrap();
    fs::create_dir_all(v2.join("repositories")).unwrap();
    let st = Store {
        v2: &v2,
        blobs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    (0..a.repos).into_par_iter().for_each(|r| repo(&st, &a, r));
    (0..a.orphans).into_par_iter().for_each(|o| {
        st.put_blob(&content(a.seed ^ 0xdead, o as u64, a.blob_size));
    });
    for u in 0..a.uploads {
        let repo = format!("team{}/app{}", u % 7, u % a.repos.max(1));
        let uuid = format!("{:08x}-0000-4000-8000-{:012x}", mix(u as u64) as u32, u);
        let dir = v2.join(layout::upload_dir(&repo, &uuid));
        fs::create_dir_all(dir.join("hashstates/sha256")).unwrap();
        fs::write(dir.join("data"), content(a.seed, u as u64, a.blob_size / 2)).unwrap();
        fs::write(dir.join("startedat"), "2024-01-01T00:00:00Z").unwrap();
        fs::write(dir.join("hashstates/sha256/0"), [0u8; 108]).unwrap();
    }
    println!(
        "generated {} blobs, {} bytes, {} repositories x {} images in {}",
        st.blobs.load(Ordering::Relaxed),
        st.bytes.load(Ordering::Relaxed),
        a.repos,
        a.images,
        a.out.display()
    );
}

//! The content digest value type: strict parsing of `<alg>:<hex>` and compact storage; no I/O.
//!
//! The registry validates digests with go-digest: algorithm sha256, sha384 or sha512 and exactly
//! 64, 96 or 128 lowercase hex characters, no surrounding whitespace. Anything else is not a digest
//! and must never be turned into a path.

use std::fmt;

/// A digest algorithm the registry accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    pub fn from_name(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Length of the raw digest in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }

    pub fn hex_len(self) -> usize {
        self.byte_len() * 2
    }
}

/// A validated digest in 33 bytes with an alignment of 1, so that the records a store holds
/// millions of (blobs, links, manifest references) pack it without padding.
///
/// sha256 (all the registry ever writes) is stored inline. The rare longer algorithms (link
/// aliases) do not fit: their bytes are interned once per process (`long`), and `bytes` holds the
/// intern id. Interning makes equal digests share one id, so the derived equality and hash are
/// exact; the order is written out so that it follows the digest bytes, as for sha256.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    alg: Algorithm,
    bytes: [u8; 32],
}

/// The process-wide table of sha384/sha512 digest bytes. Append-only: an entry lives as long as
/// the process, which costs a few dozen bytes per distinct long digest ever seen.
mod long {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};

    #[derive(Default)]
    struct Table {
        all: Vec<&'static [u8]>,
        ids: HashMap<&'static [u8], u32>,
    }

    fn table() -> &'static RwLock<Table> {
        static T: OnceLock<RwLock<Table>> = OnceLock::new();
        T.get_or_init(Default::default)
    }

    pub(super) fn intern(bytes: &[u8]) -> u32 {
        if let Some(&id) = table()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ids
            .get(bytes)
        {
            return id;
        }
        let mut t = table().write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = t.ids.get(bytes) {
            return id;
        }
        let id = u32::try_from(t.all.len()).expect("fewer than 2^32 distinct long digests");
        let leaked: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
        t.all.push(leaked);
        t.ids.insert(leaked, id);
        id
    }

    pub(super) fn get(id: u32) -> &'static [u8] {
        table().read().unwrap_or_else(|e| e.into_inner()).all[id as usize]
    }
}

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Digest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.alg, other.alg) {
            (Algorithm::Sha256, Algorithm::Sha256) => self.bytes.cmp(&other.bytes),
            (a, b) if a != b => a.cmp(&b),
            _ => self.bytes().cmp(other.bytes()),
        }
    }
}

/// Hashes digests for the many digest-keyed maps of a run: SipHash costs more than the lookups it
/// serves, and the keys are cryptographic hashes already. Every written word is folded in with a
/// multiply, so that any key type still hashes reasonably.
#[derive(Clone, Copy, Default)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(4) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

pub type DigestBuildHasher = std::hash::BuildHasherDefault<DigestHasher>;
/// A map keyed by digests, with the cheap hasher.
pub type DigestMap<V> = std::collections::HashMap<Digest, V, DigestBuildHasher>;
/// A set of digests, with the cheap hasher.
pub type DigestSet = std::collections::HashSet<Digest, DigestBuildHasher>;

/// Why a text is not a digest. The variants mirror go-digest's errors so that reports can say what
/// the real registry would say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Empty, or no `:` separator (go-digest: "invalid checksum digest format").
    Format,
    /// Algorithm is not sha256/sha384/sha512 ("unsupported digest algorithm").
    Algorithm,
    /// Hex part has the wrong length, e.g. a trailing newline ("invalid checksum digest length").
    Length,
    /// Hex part has a character outside `[a-f0-9]` ("invalid checksum digest format").
    Hex,
}

impl DigestError {
    /// The error text the registry (go-digest) prints for this fault.
    pub fn registry_message(self) -> &'static str {
        match self {
            DigestError::Format | DigestError::Hex => "invalid checksum digest format",
            DigestError::Algorithm => "unsupported digest algorithm",
            DigestError::Length => "invalid checksum digest length",
        }
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.registry_message())
    }
}

impl std::error::Error for DigestError {}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn decode_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

/// go-digest's `DigestRegexp`: `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn looks_like_digest(alg: &[u8], enc: &[u8]) -> bool {
    let an = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let alg_ok = alg
        .split(|b| b".+_-".contains(b))
        .all(|p| !p.is_empty() && p.iter().all(an));
    let enc_ok = enc
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(b));
    alg_ok && enc_ok
}

impl Digest {
    /// Parse `<alg>:<hex>` exactly as the registry does (no trimming, lowercase hex only).
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parse raw link-file bytes. Non-UTF-8 bytes simply fail validation.
    ///
    /// Error order follows go-digest's `Validate`: no separator -> format; unknown algorithm ->
    /// unsupported when the text still looks like a digest, else format; then length; then charset.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Digest, DigestError> {
        let colon = bytes
            .iter()
            .position(|&b| b == b':')
            .ok_or(DigestError::Format)?;
        let (alg, hex) = (&bytes[..colon], &bytes[colon + 1..]);
        if alg.is_empty() || hex.is_empty() {
            return Err(DigestError::Format);
        }
        match std::str::from_utf8(alg).ok().and_then(Algorithm::from_name) {
            Some(a) => Self::from_hex(a, hex),
            None if looks_like_digest(alg, hex) => Err(DigestError::Algorithm),
            None => Err(DigestError::Format),
        }
    }

    /// Build a digest from an algorithm and its hex text (e.g. from a path component).
    pub fn from_hex(alg: Algorithm, hex: &[u8]) -> Result<Digest, DigestError> {
        if hex.len() != alg.hex_len() {
            return Err(DigestError::Length);
        }
        match alg {
            Algorithm::Sha256 => Ok(Digest::sha256(decode_hex(hex).ok_or(DigestError::Hex)?)),
            Algorithm::Sha384 => Ok(Digest::long(
                alg,
                &decode_hex::<48>(hex).ok_or(DigestError::Hex)?,
            )),
            Algorithm::Sha512 => Ok(Digest::long(
                alg,
                &decode_hex::<64>(hex).ok_or(DigestError::Hex)?,
            )),
        }
    }

    pub fn sha256(bytes: [u8; 32]) -> Digest {
        Digest {
            alg: Algorithm::Sha256,
            bytes,
        }
    }

    fn long(alg: Algorithm, raw: &[u8]) -> Digest {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&long::intern(raw).to_le_bytes());
        Digest { alg, bytes }
    }

    /// sha256 of a byte slice.
    pub fn of_bytes(data: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest::sha256(sha2::Sha256::digest(data).into())
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The raw 32 bytes of a sha256 digest; `None` for the longer algorithms.
    pub fn sha256_bytes(&self) -> Option<&[u8; 32]> {
        (self.alg == Algorithm::Sha256).then_some(&self.bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        match self.alg {
            Algorithm::Sha256 => &self.bytes,
            _ => long::get(u32::from_le_bytes([
                self.bytes[0],
                self.bytes[1],
                self.bytes[2],
                self.bytes[3],
            ])),
        }
    }

    /// The lowercase hex encoding (the path component).
    pub fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(self.bytes().len() * 2);
        for b in self.bytes() {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// The two-hex fan-out folder of the global blob store.
    pub fn fan_out(&self) -> String {
        self.hex()[..2].to_string()
    }

    /// Whether `fan` is this digest's fan-out folder name (without building strings).
    pub fn fan_out_is(&self, fan: &str) -> bool {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let b = self.bytes()[0];
        fan.as_bytes() == [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]
    }

    /// 64 well-mixed bits: the digest's own leading bytes (a cryptographic hash is already
    /// uniform), folded with the algorithm so that aliases of other lengths differ.
    pub fn hash64(&self) -> u64 {
        let b = self.bytes();
        let w = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        w ^ (b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The sha256 of zero bytes: the only blob that may legitimately be empty.
    pub fn empty_sha256() -> Digest {
        Digest::sha256([
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ])
    }

    /// Short form for human output: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm().name(), &self.hex()[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm().name(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_round_trip() {
        let d = Digest::parse(E).unwrap();
        assert_eq!(d.to_string(), E);
        assert_eq!(d, Digest::empty_sha256());
        assert_eq!(d, Digest::of_bytes(b""));
        assert_eq!(d.fan_out(), "e3");
    }

    #[test]
    fn rejects_what_go_digest_rejects() {
        assert_eq!(Digest::parse(""), Err(DigestError::Format));
        assert_eq!(Digest::parse("sha256"), Err(DigestError::Format));
        assert_eq!(Digest::parse(&format!("{E}\n")), Err(DigestError::Length));
        assert_eq!(Digest::parse(&E[..40]), Err(DigestError::Length));
        assert_eq!(
            Digest::parse(&E.to_uppercase().replace("SHA256", "sha256")),
            Err(DigestError::Hex)
        );
        assert_eq!(
            Digest::parse(&E.replace("sha256", "md5")),
            Err(DigestError::Algorithm)
        );
        assert_eq!(Digest::parse(&format!(" {E}")), Err(DigestError::Format));
        assert_eq!(Digest::parse("cd:abab"), Err(DigestError::Algorithm));
        assert_eq!(Digest::parse("sha256:xyz"), Err(DigestError::Length));
        assert_eq!(
            Digest::parse("sha256:../../etc/passwd"),
            Err(DigestError::Length)
        );
        assert_eq!(
            Digest::parse(&format!("sha256:{}", "g".repeat(64))),
            Err(DigestError::Hex)
        );
        assert!(Digest::parse_bytes(b"sha256:\xff\xfe").is_err());
    }

    #[test]
    fn longer_algorithms() {
        let hex = "ab".repeat(64);
        let d = Digest::parse(&format!("sha512:{hex}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.hex(), hex);
        assert!(Digest::parse(&format!("sha384:{hex}")).is_err());
    }

    /// Long digests live in the intern table: equality, hashing and order must still follow
    /// their bytes, whatever order they were first seen in.
    #[test]
    fn interned_long_digests_compare_by_their_bytes() {
        use std::collections::HashSet;
        let long = |alg: &str, byte: &str, n: usize| {
            Digest::parse(&format!("{alg}:{}", byte.repeat(n))).unwrap()
        };
        // Seen high first, so intern ids run against the byte order.
        let hi = long("sha384", "f0", 48);
        let lo = long("sha384", "01", 48);
        assert!(lo < hi);
        assert_eq!(hi.cmp(&lo), std::cmp::Ordering::Greater);
        assert_eq!(long("sha384", "f0", 48), hi);
        assert_ne!(hi, lo);
        let set: HashSet<Digest> = [hi.clone(), lo.clone(), long("sha384", "01", 48)].into();
        assert_eq!(set.len(), 2);
        assert_eq!(lo.hex(), "01".repeat(48));
        assert_eq!(lo.bytes().len(), 48);
        // Algorithms order before bytes, as they always did: sha256 < sha384 < sha512.
        let s256 = long("sha256", "ff", 32);
        let s512 = long("sha512", "00", 64);
        let mut v = vec![s512.clone(), hi.clone(), s256.clone(), lo.clone()];
        v.sort();
        assert_eq!(v, [s256, lo, hi, s512]);
        assert_eq!(std::mem::size_of::<Digest>(), 33);
        assert_eq!(std::mem::align_of::<Digest>(), 1);
    }
}

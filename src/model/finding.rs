//! The finding catalogue: stable kebab-case codes, default severities, meanings and fixes, and
//! the `Finding` value that checks produce. No policy (overrides live in `policy`), no printing.

use crate::model::digest::Digest;
use serde::Serialize;
use std::fmt;

/// How bad a finding is. Ordered: `Info < Warn < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warn" | "warning" => Some(Severity::Warn),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $sev:ident, $meaning:literal, $fix:literal; )*) => {
        /// Every finding code. Codes are a public contract: never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable kebab-case code.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            pub fn default_severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// One sentence: what the finding means.
            pub fn meaning(self) -> &'static str {
                match self { $( Code::$variant => $meaning, )* }
            }

            /// One sentence: how to fix it (what `regfsck repair` does, or what the operator must do).
            pub fn fix(self) -> &'static str {
                match self { $( Code::$variant => $fix, )* }
            }

            pub fn parse(s: &str) -> Option<Code> {
                match s { $( $code => Some(Code::$variant), )* _ => None }
            }
        }
    };
}

codes! {
    BlobDigestMismatch = "blob-digest-mismatch", Error,
        "the sha256 of a blob's data differs from the digest its path names; the registry serves it as-is and clients reject it",
        "regfsck repair --apply quarantines the blob; then re-push the images that use it (the registry never overwrites an existing blob)";
    BlobSizeMismatch = "blob-size-mismatch", Error,
        "a blob's data size differs from the size a manifest descriptor gives for it",
        "regfsck repair --apply quarantines the blob when its content does not hash to its digest; then re-push the image";
    BlobEmpty = "blob-empty", Error,
        "a blob's data is 0 bytes but its digest is not the digest of empty content",
        "regfsck repair --apply quarantines the blob; then re-push the images that use it";
    BlobPathInvalid = "blob-path-invalid", Error,
        "a path under blobs/ breaks the blob grammar (bad hex, wrong fan-out folder, unknown algorithm, data that is a directory); the real GC aborts or panics on it",
        "regfsck repair --apply moves the data to the path its content hashes to, or quarantines it";
    BlobDataMissing = "blob-data-missing", Info,
        "a blob folder has no data file (residue of an interrupted delete)",
        "none needed; the registry treats the blob as absent";
    BlobUnreferenced = "blob-unreferenced", Info,
        "no manifest of any repository references this blob; garbage-collect will delete it",
        "none: run the registry's garbage-collect to reclaim the space";
    BlobStrayFile = "blob-stray-file", Warn,
        "a file under blobs/ that is not a blob's data (temp residue or a foreign file)",
        "regfsck repair --apply quarantines it";
    LinkMalformed = "link-malformed", Error,
        "a link file's content is not exactly <alg>:<hex> (empty, trailing newline, truncated, garbage); the registry and its GC fail on it",
        "regfsck repair --apply rewrites it from its path digest when that blob exists and is sound, else quarantines it";
    LinkMismatch = "link-mismatch", Error,
        "a link file names a different digest (same algorithm) than the folder it sits in",
        "regfsck repair --apply rewrites it from its path digest when that blob exists and is sound, else quarantines it";
    LinkNotFile = "link-not-file", Error,
        "a link is a directory or a special file",
        "regfsck repair --apply quarantines it and rebuilds the link from its path digest when possible";
    LinkAlias = "link-alias", Info,
        "a link in a non-sha256 folder names the canonical sha256 digest (an upload made with a sha384/sha512 digest)",
        "none: the registry writes these itself";
    LayerLinkDangling = "layer-link-dangling", Warn,
        "a repository's _layers link names a blob that does not exist (pulls of it answer BLOB_UNKNOWN; GC never removes the link)",
        "regfsck repair --apply quarantines the link unless a manifest of the repository needs it; then re-push that image";
    LayerLinkUnused = "layer-link-unused", Info,
        "a _layers link that no manifest of the repository references (registry 2.8 never cleans these)",
        "none: registry 3 garbage-collect removes them";
    RevisionBlobMissing = "revision-blob-missing", Error,
        "a manifest revision link names a manifest blob that does not exist; pulls answer MANIFEST_UNKNOWN and GC silently sweeps its layers",
        "re-push the image; regfsck repair --apply --lossy quarantines the revision and the tags on it";
    RevisionLegacySignature = "revision-legacy-signature", Info,
        "a schema1 signature link left by registry 2.4 or older; GC sweeps the signature blobs",
        "none";
    ManifestInvalid = "manifest-invalid", Error,
        "a manifest blob the registry cannot read, as its Go JSON decoder judges it (bad syntax, nesting deeper than 10000, a wrong type in a field the registry's structs have, an unknown media type or schema version, a shape that panics GC), GET answering 500 and GC aborting; or a manifest naming a digest that is not one",
        "re-push the image; regfsck repair --apply --lossy quarantines the revision and the tags on it";
    ManifestSchema1 = "manifest-schema1", Warn,
        "a Docker schema1 manifest: registry 3 can neither serve it nor garbage-collect a store holding it",
        "re-push the image in schema2 or OCI format before upgrading to registry 3";
    ManifestRefMissing = "manifest-ref-missing", Error,
        "a config or layer that a manifest references has no blob (foreign layers with urls excepted); pulls of the image fail",
        "re-push the image";
    ManifestRefUnlinked = "manifest-ref-unlinked", Error,
        "a referenced blob exists but the repository has no _layers link to it; pulls answer BLOB_UNKNOWN",
        "regfsck repair --apply creates the missing _layers link";
    IndexChildMissing = "index-child-missing", Error,
        "a child manifest of an image index or manifest list has no revision in the repository or no blob; that platform cannot be pulled",
        "re-push the multi-arch image";
    RevisionUntagged = "revision-untagged", Info,
        "a manifest revision reachable from no tag, directly or through a tagged index",
        "none: garbage-collect --delete-untagged removes it";
    RevisionUntaggedChild = "revision-untagged-child", Warn,
        "an untagged revision that a tagged index references: registry 2.8 garbage-collect --delete-untagged deletes it and breaks the multi-arch image",
        "do not run garbage-collect --delete-untagged with registry 2.8; registry 3 keeps these";
    RevisionLinkMissing = "revision-link-missing", Error,
        "a manifest a tag (or a tagged index) names has no revision link, only a _layers link of the same digest: registry 2.8 still serves it through a 2.1-era fallback, registry 3 answers MANIFEST_UNKNOWN, and garbage-collect never marks it, so it deletes the image's blobs",
        "regfsck repair --apply writes the revision link again (the manifest blob exists and hashes correctly)";
    TagCurrentMissing = "tag-current-missing", Error,
        "a tag folder without current/link: the tag is listed but cannot be pulled",
        "regfsck repair --apply rebuilds current from the tag index when it names exactly one live revision; --lossy uses the newest entry or quarantines the tag";
    TagDangling = "tag-dangling", Error,
        "a tag's current/link names a digest with no revision in the repository; pulls answer MANIFEST_UNKNOWN",
        "re-push the tag; regfsck repair --apply --lossy restores it from the newest live tag-index entry or quarantines the tag";
    TagIndexMissingCurrent = "tag-index-missing-current", Warn,
        "the digest a tag currently names is absent from the tag's index (history); a sign of an interrupted write",
        "regfsck repair --apply adds the index entry";
    TagIndexDangling = "tag-index-dangling", Info,
        "a tag history entry whose revision no longer exists",
        "none needed: the registry skips history entries without a revision";
    TagNameInvalid = "tag-name-invalid", Warn,
        "a tag folder whose name the registry API can never address",
        "quarantine the tag folder by hand once you know where it came from";
    RepoNameInvalid = "repo-name-invalid", Error,
        "a repository folder whose name the registry rejects; garbage-collect aborts on it",
        "rename or quarantine the folder; regfsck repair --apply --lossy quarantines it";
    RepoMissingLayers = "repo-missing-layers", Error,
        "a repository with _manifests but no _layers: registry 3 GC aborts, registry 2.8 GC cannot see it and sweeps its blobs",
        "regfsck repair --apply creates an empty _layers folder (and the links its manifests need)";
    RepoMissingManifests = "repo-missing-manifests", Info,
        "a repository with _layers but no _manifests (for example one made only by a blob mount); registry 3 does not list it",
        "none";
    RepoMissingTags = "repo-missing-tags", Warn,
        "a repository with revisions but no tags folder: registry 3 garbage-collect --delete-untagged sweeps its blobs, 2.8 aborts",
        "regfsck repair --apply creates an empty tags folder";
    RepoStrayUnderscore = "repo-stray-underscore", Error,
        "a file whose name starts with _ under repositories/: registry 2.8 GC then skips the later siblings and deletes their blobs",
        "regfsck repair --apply quarantines the file";
    RepoEmpty = "repo-empty", Info,
        "a repository with no tags and no revisions",
        "none";
    UploadStale = "upload-stale", Warn,
        "an upload older than the purge age (default 168h) that was never completed",
        "regfsck repair --apply quarantines it (the registry's upload purging would delete it)";
    UploadNoStartedat = "upload-no-startedat", Warn,
        "an upload without a parseable startedat file: the registry never purges it",
        "regfsck repair --apply quarantines it once its files are older than the purge age";
    UploadMultipartIncomplete = "upload-multipart-incomplete", Warn,
        "an incomplete multipart upload on object storage, older than the purge age: parts a listing never shows and the bucket still bills",
        "abort it (S3 AbortMultipartUpload, e.g. `aws s3api abort-multipart-upload` with the bucket, key and upload id shown), or let a bucket lifecycle rule (AbortIncompleteMultipartUpload) do it";
    UploadRecent = "upload-recent", Info,
        "an upload younger than the grace window: the registry looks live",
        "stop the registry or make it read-only before repairing or collecting garbage";
    PathUnrecognized = "path-unrecognized", Warn,
        "an entry the registry never writes",
        "move it out of the store by hand once you know where it came from (the registry ignores it)";
    PathUnreadable = "path-unreadable", Error,
        "an entry that could not be read (permission or I/O error)",
        "fix the permissions or the disk, then re-run regfsck";
    PathSymlink = "path-symlink", Warn,
        "a symbolic link inside the store (regfsck never follows it; the real GC aborts on loops)",
        "regfsck repair --apply quarantines the link itself, never its target";
    PathNonUtf8 = "path-non-utf8", Warn,
        "a name that is not valid UTF-8; the registry never writes such names",
        "rename or remove it by hand";
    PathTempResidue = "path-temp-residue", Warn,
        "a <file>.<uuid>.tmp left by an interrupted registry write (registry 3.1+)",
        "regfsck repair --apply quarantines it";
    PathChanged = "path-changed", Warn,
        "an entry changed or vanished while it was being scanned: the registry may be running",
        "stop the registry or make it read-only, then re-run regfsck";
    KeyNotAPath = "key-not-a-path", Warn,
        "an object-storage key that no filesystem path can hold (an empty, `.` or `..` segment, or a trailing `/`): the registry never writes one",
        "delete the key with an S3 tool once you know where it came from";
    DirEmpty = "dir-empty", Info,
        "an empty folder the registry left behind (a deleted link or blob)",
        "none needed";
    GcWouldAbort = "gc-would-abort", Error,
        "the registry's garbage-collect would stop (or panic) on this store",
        "regfsck repair --apply when it fixes the finding at the same path (the report says), else fix that path by hand; then re-run regfsck gc";
    GcWouldDeleteTagged = "gc-would-delete-tagged", Error,
        "the registry's garbage-collect would delete data reachable from a tag",
        "fix the cause named in the message, or do not run that garbage-collect";
    GcCannotPredict = "gc-cannot-predict", Error,
        "regfsck cannot tell what the registry's garbage-collect would do: it would read paths regfsck could not read, or follow a symbolic link where regfsck does not",
        "make the named paths readable to regfsck (or remove the symbolic links), then re-run regfsck gc; do not run garbage-collect until then";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem (or fact) found in the store.
///
/// `path` is relative to `docker/registry/v2` and is `None` only for a finding about the whole store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub code: Code,
    pub path: Option<String>,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
    pub message: String,
}

impl Finding {
    pub fn new(code: Code, path: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            code,
            path: Some(path.into()),
            repo: None,
            tag: None,
            digest: None,
            message: message.into(),
        }
    }

    /// A finding about the store as a whole (no path).
    pub fn global(code: Code, message: impl Into<String>) -> Finding {
        Finding {
            code,
            path: None,
            repo: None,
            tag: None,
            digest: None,
            message: message.into(),
        }
    }

    pub fn repo(mut self, repo: impl Into<String>) -> Finding {
        self.repo = Some(repo.into());
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Finding {
        self.tag = Some(tag.into());
        self
    }

    pub fn digest(mut self, d: &Digest) -> Finding {
        self.digest = Some(d.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{s}"
            );
            assert_eq!(Code::parse(s), Some(c));
            assert!(c.meaning().len() > 20 && c.fix().len() > 3, "{s}");
        }
    }

    /// docs/checks.md documents exactly the codes in `Code::ALL`, with their default severities.
    #[test]
    fn checks_doc_matches_the_code_table() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/checks.md"))
            .unwrap();
        let headings: Vec<&str> = doc.lines().filter_map(|l| l.strip_prefix("## ")).collect();
        let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            headings, codes,
            "docs/checks.md and Code::ALL drifted apart"
        );
        for c in Code::ALL {
            let section = doc.split(&format!("## {}\n", c.as_str())).nth(1).unwrap();
            let sev = format!("- **Severity:** {}", c.default_severity());
            assert!(
                section.lines().any(|l| l == sev),
                "{}: severity differs in docs/checks.md",
                c.as_str()
            );
        }
    }
}

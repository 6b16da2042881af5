//! A small blocking S3 client: AWS Signature Version 4 over one keep-alive HTTP agent (ureq),
//! shared by every worker thread. Only the requests regfsck makes: ListObjectsV2 (flat or by
//! folder, with start-after), GET (whole, capped, or streamed), PUT, server-side copy (in parts
//! above 5 GiB: CreateMultipartUpload, UploadPartCopy, CompleteMultipartUpload), DELETE,
//! ListMultipartUploads and AbortMultipartUpload. Every request is counted (`requests`), so
//! benchmarks and tests can see what a run cost.

use super::config::{Credentials, S3Config};
use super::xml;
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An error of one request: the S3 error code when the server gave one, and a message that
/// never holds credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl S3Error {
    pub fn not_found(&self) -> bool {
        self.status == 404 || self.code == "NoSuchKey"
    }

    fn transport(e: impl std::fmt::Display) -> S3Error {
        S3Error {
            status: 0,
            code: String::new(),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.status, self.code.is_empty()) {
            (0, _) => write!(f, "{}", self.message),
            (s, true) => write!(f, "HTTP {s}: {}", self.message),
            (s, false) => write!(f, "HTTP {s} {}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for S3Error {}

pub type Result<T> = std::result::Result<T, S3Error>;

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    /// Without quotes.
    pub etag: String,
}

/// One page of ListObjectsV2.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub objects: Vec<Object>,
    /// Common prefixes (with their trailing `/`) when listed by folder.
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

/// An incomplete multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    pub key: String,
    pub upload_id: String,
    /// Unix seconds.
    pub initiated: i64,
}

pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host[:port]`.
    origin: String,
    host: String,
    /// `/bucket` in path style, empty in virtual-hosted style.
    bucket_path: String,
    bucket: String,
    region: String,
    creds: Credentials,
    requests: AtomicU64,
}

/// RFC 3986 unreserved characters stay; everything else is %XX (S3's canonical encoding).
/// `keep_slash` for paths.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `YYYYMMDDTHHMMSSZ` of unix seconds.
fn amz_date(t: i64) -> String {
    crate::model::timefmt::format_rfc3339(t).replace(['-', ':'], "")
}

/// The `Authorization` header of Signature Version 4 (and the headers it signs).
#[allow(clippy::too_many_arguments)]
pub fn sign_v4(
    creds: &Credentials,
    region: &str,
    method: &str,
    host: &str,
    path: &str,
    query: &[(String, String)],
    extra: &[(String, String)],
    payload_sha: &str,
    now: i64,
) -> Vec<(String, String)> {
    let date_time = amz_date(now);
    let date = &date_time[..8];
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    q.sort();
    let canon_query = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host.to_string()),
        ("x-amz-content-sha256".into(), payload_sha.to_string()),
        ("x-amz-date".into(), date_time.clone()),
    ];
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.expose().to_string()));
    }
    for (k, v) in extra {
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    headers.sort();
    let canon_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "{method}\n{}\n{canon_query}\n{canon_headers}\n{signed}\n{payload_sha}",
        uri_encode(path, true)
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        hex(&Sha256::digest(request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", creds.secret_key.expose()).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let sig = hex(&hmac(&key, to_sign.as_bytes()));
    headers.retain(|(k, _)| k != "host");
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
            creds.access_key.expose()
        ),
    ));
    headers
}

const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An answer's XML (at most 64 MiB: a listing page is far smaller).
fn body_text(mut resp: ureq::http::Response<ureq::Body>) -> Result<String> {
    resp.body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(S3Error::transport)
}

/// Keys of a listing may be URL-encoded (`encoding-type=url`): decode them.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The largest object one CopyObject copies (S3's limit); larger ones are copied in parts.
pub const COPY_LIMIT: u64 = 5 << 30;
/// The part size of a multipart copy: 1 GiB parts keep S3's 5 TiB maximum within its 10,000
/// parts, and each part well within UploadPartCopy's 5 GiB.
const COPY_PART: u64 = 1 << 30;
/// Parts copied at once (each is a server-side copy of up to `COPY_PART` bytes).
const COPY_PARTS_IN_FLIGHT: usize = 4;
/// Test-only: a byte count that replaces both the single-copy limit and the part size, so that
/// tests copy a small blob in parts (docs/testing.md). S3 refuses parts under 5 MiB but the last.
pub const COPY_PART_ENV: &str = "REGFSCK_TEST_S3_COPY_PART_SIZE";

/// (the largest object copied in one request, the part size above it).
fn copy_sizes() -> (u64, u64) {
    match std::env::var(COPY_PART_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(n) if n > 0 => (n, n),
        _ => (COPY_LIMIT, COPY_PART),
    }
}

/// The body of a request that may fail after its 200 status line (a copy, a completion): S3
/// then puts the error in the body.
fn checked_body(resp: ureq::http::Response<ureq::Body>) -> Result<String> {
    let text = body_text(resp)?;
    if text.contains("<Error>") {
        return Err(S3Error {
            status: 200,
            code: xml::first(&text, "Code").unwrap_or_default(),
            message: xml::first(&text, "Message").unwrap_or_default(),
        });
    }
    Ok(text)
}

impl Client {
    pub fn new(cfg: &S3Config, creds: Credentials) -> std::result::Result<Client, String> {
        let scheme = if cfg.secure { "https" } else { "http" };
        let (origin, bucket_path) = match &cfg.endpoint {
            Some(e) => {
                let e = e.trim_end_matches('/');
                let origin = if e.contains("://") {
                    e.to_string()
                } else {
                    format!("{scheme}://{e}")
                };
                (origin, format!("/{}", cfg.bucket))
            }
            None if cfg.region == "us-east-1" => (
                format!("{scheme}://{}.s3.amazonaws.com", cfg.bucket),
                String::new(),
            ),
            None => (
                format!("{scheme}://{}.s3.{}.amazonaws.com", cfg.bucket, cfg.region),
                String::new(),
            ),
        };
        let host = origin
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(&origin)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .disable_verification(cfg.skipverify)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(256)
            .max_idle_connections(256)
            .tls_config(tls)
            .build()
            .into();
        Ok(Client {
            agent,
            origin,
            host,
            bucket_path,
            bucket: cfg.bucket.clone(),
            region: cfg.region.clone(),
            creds,
            requests: AtomicU64::new(0),
        })
    }

    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Send one signed request; `body` for PUT.
    fn send(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(String, String)],
        extra: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let path = match key {
            Some(k) => format!("{}/{k}", self.bucket_path),
            None if self.bucket_path.is_empty() => "/".to_string(),
            None => self.bucket_path.clone(),
        };
        let payload = match body {
            Some(b) => hex(&Sha256::digest(b)),
            None => EMPTY_SHA.to_string(),
        };
        let headers = sign_v4(
            &self.creds,
            &self.region,
            method,
            &self.host,
            &path,
            query,
            extra,
            &payload,
            Self::now(),
        );
        let mut url = format!("{}{}", self.origin, uri_encode(&path, true));
        if !query.is_empty() {
            url.push('?');
            url.push_str(
                &query
                    .iter()
                    .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let req = req
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(S3Error::transport)?;
        let resp = self.agent.run(req).map_err(S3Error::transport)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) || status == 206 {
            return Ok(resp);
        }
        let mut resp = resp;
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let code = xml::first(&text, "Code").unwrap_or_default();
        let message = xml::first(&text, "Message").unwrap_or_else(|| {
            resp.status()
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
        });
        Err(S3Error {
            status,
            code,
            message,
        })
    }

    /// One page of ListObjectsV2 below `prefix`, after `start_after` (or from a continuation
    /// token), by folder when `delimiter`.
    pub fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
        delimiter: bool,
        max_keys: usize,
    ) -> Result<Page> {
        let mut q = vec![
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), prefix.to_string()),
            ("max-keys".to_string(), max_keys.to_string()),
            ("encoding-type".to_string(), "url".to_string()),
        ];
        if delimiter {
            q.push(("delimiter".into(), "/".into()));
        }
        if let Some(t) = token {
            q.push(("continuation-token".into(), t.to_string()));
        } else if let Some(s) = start_after {
            q.push(("start-after".into(), s.to_string()));
        }
        let text = body_text(self.send("GET", None, &q, &[], None)?)?;
        let encoded = xml::first(&text, "EncodingType").is_some_and(|e| e == "url");
        let dec = |s: String| if encoded { url_decode(&s) } else { s };
        let mut page = Page::default();
        for c in xml::blocks(&text, "Contents") {
            let key = dec(xml::first(c, "Key").unwrap_or_default());
            page.objects.push(Object {
                key,
                size: xml::first(c, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                mtime: xml::first(c, "LastModified")
                    .and_then(|t| crate::model::timefmt::parse_rfc3339(&t))
                    .unwrap_or(0),
                etag: xml::first(c, "ETag")
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
            });
        }
        for c in xml::blocks(&text, "CommonPrefixes") {
            if let Some(p) = xml::first(c, "Prefix") {
                page.prefixes.push(dec(p));
            }
        }
        if xml::first(&text, "IsTruncated").is_some_and(|t| t == "true") {
            page.next = xml::first(&text, "NextContinuationToken");
            if page.next.is_none() {
                return Err(S3Error::transport(
                    "a truncated listing without a continuation token",
                ));
            }
        }
        Ok(page)
    }

    /// GET an object whole, refusing more than `cap` bytes (links, manifests, startedat).
    pub fn get(&self, key: &str, cap: u64) -> Result<Vec<u8>> {
        let mut resp = self.send("GET", Some(key), &[], &[], None)?;
        let mut buf = Vec::new();
        resp.body_mut()
            .with_config()
            .limit(cap + 1)
            .reader()
            .read_to_end(&mut buf)
            .map_err(S3Error::transport)?;
        Ok(buf)
    }

    /// GET an object as a stream, only while its ETag is still `etag` (If-Match: a blob
    /// replaced since the listing answers 412 instead of other bytes).
    pub fn get_stream(&self, key: &str, etag: Option<&str>) -> Result<impl Read + use<>> {
        let extra: Vec<(String, String)> = etag
            .map(|e| vec![("if-match".to_string(), format!("\"{e}\""))])
            .unwrap_or_default();
        let resp = self.send("GET", Some(key), &[], &extra, None)?;
        Ok(resp.into_body().into_reader())
    }

    /// PutObject (one PUT: the ETag is the MD5 of `body` unless KMS encryption applies).
    pub fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        self.send("PUT", Some(key), &[], &[], Some(body)).map(drop)
    }

    /// Server-side copy within the bucket of the object `from` (whose listing gave `size` and
    /// `etag`): one CopyObject up to the single-copy limit (5 GiB), a multipart copy above it.
    pub fn copy(&self, from: &str, to: &str, size: u64, etag: &str) -> Result<()> {
        let (limit, part) = copy_sizes();
        if size > limit {
            return self.copy_multipart(from, to, size, part, etag);
        }
        let resp = self.send(
            "PUT",
            Some(to),
            &[],
            &[("x-amz-copy-source".to_string(), self.copy_source(from))],
            Some(&[]),
        )?;
        checked_body(resp).map(drop)
    }

    /// `x-amz-copy-source` of a key of this bucket.
    fn copy_source(&self, from: &str) -> String {
        format!(
            "/{}/{}",
            self.bucket,
            uri_encode(from, true).trim_start_matches('/')
        )
    }

    /// CreateMultipartUpload, UploadPartCopy of each `part`-byte range (the last one shorter),
    /// CompleteMultipartUpload: the data never leaves the service. Each part is copied only
    /// from the object version listed (`x-amz-copy-source-if-match`), so an object replaced
    /// mid-copy fails the copy instead of splicing two versions. On any failure the upload is
    /// aborted, so that no parts are left billing.
    fn copy_multipart(&self, from: &str, to: &str, size: u64, part: u64, etag: &str) -> Result<()> {
        // The registry's driver creates blob data with this content type.
        let extra = [(
            "content-type".to_string(),
            "application/octet-stream".to_string(),
        )];
        let q = [("uploads".to_string(), String::new())];
        let text = checked_body(self.send("POST", Some(to), &q, &extra, Some(&[]))?)?;
        let upload = Multipart {
            key: to.to_string(),
            upload_id: xml::first(&text, "UploadId")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| S3Error::transport("CreateMultipartUpload gave no UploadId"))?,
            initiated: 0,
        };
        let done = self
            .copy_parts(&upload, from, size, part, etag)
            .and_then(|etags| self.complete_multipart(&upload, &etags));
        match done {
            Ok(()) => Ok(()),
            Err(e) => match self.abort_multipart(&upload) {
                Ok(()) => Err(e),
                Err(a) => Err(S3Error {
                    message: format!(
                        "{}; and the multipart upload {} of {to} could not be aborted ({a}): its parts bill until it is",
                        e.message, upload.upload_id
                    ),
                    ..e
                }),
            },
        }
    }

    /// The ETags of the copied parts, in part order.
    fn copy_parts(
        &self,
        upload: &Multipart,
        from: &str,
        size: u64,
        part: u64,
        etag: &str,
    ) -> Result<Vec<String>> {
        let ranges: Vec<(usize, u64, u64)> = (0..size.div_ceil(part))
            .map(|n| (n as usize + 1, n * part, ((n + 1) * part).min(size) - 1))
            .collect();
        let source = self.copy_source(from);
        let results =
            crate::store::pool::run(COPY_PARTS_IN_FLIGHT, ranges, |(n, first, last), _| {
                let q = [
                    ("partNumber".to_string(), n.to_string()),
                    ("uploadId".to_string(), upload.upload_id.clone()),
                ];
                let mut extra = vec![
                    ("x-amz-copy-source".to_string(), source.clone()),
                    (
                        "x-amz-copy-source-range".to_string(),
                        format!("bytes={first}-{last}"),
                    ),
                ];
                if !etag.is_empty() {
                    extra.push((
                        "x-amz-copy-source-if-match".to_string(),
                        format!("\"{etag}\""),
                    ));
                }
                let text =
                    checked_body(self.send("PUT", Some(&upload.key), &q, &extra, Some(&[]))?)?;
                let tag = xml::first(&text, "ETag")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        S3Error::transport(format!("UploadPartCopy of part {n} gave no ETag"))
                    })?;
                Ok((n, tag))
            });
        let mut parts = results.into_iter().collect::<Result<Vec<_>>>()?;
        parts.sort();
        Ok(parts.into_iter().map(|(_, t)| t).collect())
    }

    /// CompleteMultipartUpload with the parts' ETags (numbered from 1).
    fn complete_multipart(&self, upload: &Multipart, etags: &[String]) -> Result<()> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, t) in etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml::escape(t)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let q = [("uploadId".to_string(), upload.upload_id.clone())];
        checked_body(self.send("POST", Some(&upload.key), &q, &[], Some(body.as_bytes()))?)
            .map(drop)
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        match self.send("DELETE", Some(key), &[], &[], None) {
            Err(e) if e.not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    /// Every incomplete multipart upload below `prefix` (all pages).
    pub fn list_multipart(&self, prefix: &str) -> Result<Vec<Multipart>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut q = vec![
                ("uploads".to_string(), String::new()),
                ("prefix".to_string(), prefix.to_string()),
                ("encoding-type".to_string(), "url".to_string()),
            ];
            if let Some((k, u)) = &markers {
                q.push(("key-marker".into(), k.clone()));
                q.push(("upload-id-marker".into(), u.clone()));
            }
            let text = body_text(self.send("GET", None, &q, &[], None)?)?;
            let encoded = xml::first(&text, "EncodingType").is_some_and(|e| e == "url");
            for u in xml::blocks(&text, "Upload") {
                let key = xml::first(u, "Key").unwrap_or_default();
                out.push(Multipart {
                    key: if encoded { url_decode(&key) } else { key },
                    upload_id: xml::first(u, "UploadId").unwrap_or_default(),
                    initiated: xml::first(u, "Initiated")
                        .and_then(|t| crate::model::timefmt::parse_rfc3339(&t))
                        .unwrap_or(0),
                });
            }
            if xml::first(&text, "IsTruncated").is_some_and(|t| t == "true") {
                let k = xml::first(&text, "NextKeyMarker").unwrap_or_default();
                let u = xml::first(&text, "NextUploadIdMarker").unwrap_or_default();
                if k.is_empty() && u.is_empty() {
                    break;
                }
                markers = Some((if encoded { url_decode(&k) } else { k }, u));
            } else {
                break;
            }
        }
        Ok(out)
    }

    /// The bytes already uploaded to an incomplete multipart upload (ListParts, all pages).
    pub fn multipart_size(&self, m: &Multipart) -> Result<u64> {
        let mut total = 0;
        let mut marker: Option<String> = None;
        loop {
            let mut q = vec![("uploadId".to_string(), m.upload_id.clone())];
            if let Some(p) = &marker {
                q.push(("part-number-marker".into(), p.clone()));
            }
            let text = body_text(self.send("GET", Some(&m.key), &q, &[], None)?)?;
            for p in xml::blocks(&text, "Part") {
                total += xml::first(p, "Size")
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            match xml::first(&text, "IsTruncated").as_deref() {
                Some("true") => marker = xml::first(&text, "NextPartNumberMarker"),
                _ => break,
            }
            if marker.is_none() {
                break;
            }
        }
        Ok(total)
    }

    pub fn abort_multipart(&self, m: &Multipart) -> Result<()> {
        self.send(
            "DELETE",
            Some(&m.key),
            &[("uploadId".to_string(), m.upload_id.clone())],
            &[],
            None,
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::s3::config::Secret;

    /// The example of AWS's Signature Version 4 documentation for S3 ("GET Object" with a
    /// range header), whose signature the documentation gives.
    #[test]
    fn signature_v4_matches_the_aws_example() {
        let creds = Credentials {
            access_key: Secret::new("AKIAIOSFODNN7EXAMPLE"),
            secret_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            source: String::new(),
        };
        let now = crate::model::timefmt::parse_rfc3339("2013-05-24T00:00:00Z").unwrap();
        let h = sign_v4(
            &creds,
            "us-east-1",
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            &[],
            &[("range".into(), "bytes=0-9".into())],
            EMPTY_SHA,
            now,
        );
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(
            auth.ends_with(
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            ),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"));
    }

    #[test]
    fn encodings() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(url_decode("a%2F%2Fb+c"), "a//b c");
        assert_eq!(url_decode("100%"), "100%");
    }
}

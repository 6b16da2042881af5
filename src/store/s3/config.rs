//! The registry's `storage.s3` parameters, read as its s3-aws driver reads them
//! (`FromParameters` in distribution 2.8), the direct `s3://bucket/prefix` form, and the
//! credential chain the driver builds: the config's `accesskey`/`secretkey`, then the
//! environment, then the shared credentials file. (The chain's last link, the EC2 instance role,
//! is not supported: regfsck says so when nothing else gave credentials.)
//!
//! Secrets never leave this module in printable form: `Secret`'s `Debug` and `Display` hide them.

use std::collections::BTreeMap;
use std::fmt;
use yaml_rust2::Yaml;

/// A credential value that is never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Access key, secret key and session token. The access key id is not a secret by AWS's rules,
/// but regfsck keeps it out of its output all the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: Secret,
    pub secret_key: Secret,
    pub session_token: Option<Secret>,
    /// Where they came from (`config`, `environment`, `shared credentials file <path>`): shown
    /// in errors, never the values.
    pub source: String,
}

/// What regfsck needs of a `storage.s3` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// `regionendpoint`: a custom endpoint; forces path-style requests, as in the driver.
    pub endpoint: Option<String>,
    /// `rootdirectory` as configured (the key prefix is `prefix()`).
    pub rootdirectory: String,
    pub secure: bool,
    pub skipverify: bool,
    pub v4auth: bool,
    /// `encrypt` with `keyid`: KMS-encrypted objects' ETags are not the MD5 of their content.
    pub encrypt: bool,
    pub keyid: String,
    /// `accesskey`/`secretkey` from the configuration (empty when absent).
    pub config_credentials: Credentials,
}

/// The driver's boolean parameters: a YAML bool, or a string `strconv.ParseBool` accepts.
fn param_bool(
    p: &BTreeMap<String, Yaml>,
    key: &str,
    default: bool,
    what: &str,
) -> Result<bool, String> {
    match p.get(key) {
        None | Some(Yaml::Null) => Ok(default),
        Some(Yaml::Boolean(b)) => Ok(*b),
        Some(Yaml::String(s)) => match s.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(format!("the {what} parameter should be a boolean")),
        },
        Some(_) => Err(format!("the {what} parameter should be a boolean")),
    }
}

/// `fmt.Sprint` of a YAML scalar, as the driver turns its string parameters into text.
fn sprint(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null | Yaml::BadValue => String::new(),
        // A list or map: what Go would print is not worth imitating; nobody configures that.
        other => format!("{other:?}"),
    }
}

fn param_str(p: &BTreeMap<String, Yaml>, key: &str) -> String {
    p.get(key).map(sprint).unwrap_or_default()
}

impl S3Config {
    /// From the driver's parameter map (keys exactly as the driver looks them up: lower case).
    pub fn from_params(p: &BTreeMap<String, Yaml>) -> Result<S3Config, String> {
        let endpoint = param_str(p, "regionendpoint");
        let region = param_str(p, "region");
        if region.is_empty() {
            return Err("no region parameter provided".into());
        }
        let bucket = param_str(p, "bucket");
        if bucket.is_empty() {
            return Err("no bucket parameter provided".into());
        }
        let c = S3Config {
            bucket,
            region,
            endpoint: (!endpoint.is_empty()).then_some(endpoint),
            rootdirectory: param_str(p, "rootdirectory"),
            encrypt: param_bool(p, "encrypt", false, "encrypt")?,
            secure: param_bool(p, "secure", true, "secure")?,
            skipverify: param_bool(p, "skipverify", false, "skipVerify")?,
            v4auth: param_bool(p, "v4auth", true, "v4auth")?,
            keyid: param_str(p, "keyid"),
            config_credentials: Credentials {
                access_key: Secret::new(param_str(p, "accesskey")),
                secret_key: Secret::new(param_str(p, "secretkey")),
                session_token: None,
                source: "the configuration's accesskey/secretkey".into(),
            },
        };
        if !c.v4auth
            && c.endpoint
                .as_deref()
                .is_none_or(|e| e.contains("s3.amazonaws.com"))
        {
            return Err(
                "on Amazon S3 this storage driver can only be used with v4 authentication".into(),
            );
        }
        Ok(c)
    }

    /// `s3://bucket[/prefix]` with `--endpoint URL` (path style, as `regionendpoint`) and
    /// `--region` (default us-east-1); credentials from the environment or the shared file.
    pub fn from_url(
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> Result<S3Config, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url}: not an s3://bucket/prefix address"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url}: no bucket name"));
        }
        let secure = endpoint.is_none_or(|e| !e.starts_with("http://"));
        Ok(S3Config {
            bucket: bucket.to_string(),
            region: region.unwrap_or("us-east-1").to_string(),
            endpoint: endpoint.map(str::to_string),
            rootdirectory: prefix.to_string(),
            secure,
            skipverify: false,
            v4auth: true,
            encrypt: false,
            keyid: String::new(),
            config_credentials: Credentials::default(),
        })
    }

    /// The key prefix of the store's root (`s3Path("")`): `rootdirectory` without trailing and
    /// leading slashes; empty for a store at the bucket's top.
    pub fn prefix(&self) -> String {
        self.rootdirectory
            .trim_end_matches('/')
            .trim_start_matches('/')
            .to_string()
    }

    /// The key of v2-relative path `rel` (`<prefix>/docker/registry/v2/<rel>`).
    pub fn v2_prefix(&self) -> String {
        let p = self.prefix();
        let v2 = crate::model::layout::V2_FROM_ROOT;
        if p.is_empty() {
            format!("{v2}/")
        } else {
            format!("{p}/{v2}/")
        }
    }

    /// How reports name the store: `s3://bucket/prefix`.
    pub fn display(&self) -> String {
        let p = self.prefix();
        if p.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{p}", self.bucket)
        }
    }

    /// The credential chain of the registry's driver: configuration, environment, shared
    /// credentials file. `env` looks a variable up (the process environment in real use).
    pub fn credentials(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, String> {
        let c = &self.config_credentials;
        if !c.access_key.is_empty() && !c.secret_key.is_empty() {
            return Ok(c.clone());
        }
        let var = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        if let (Some(a), Some(s)) = (
            var(&["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]),
            var(&["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]),
        ) {
            return Ok(Credentials {
                access_key: Secret::new(a),
                secret_key: Secret::new(s),
                session_token: var(&["AWS_SESSION_TOKEN"]).map(Secret::new),
                source: "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".into(),
            });
        }
        let file = var(&["AWS_SHARED_CREDENTIALS_FILE"])
            .or_else(|| env("HOME").map(|h| format!("{h}/.aws/credentials")));
        let profile = var(&["AWS_PROFILE"]).unwrap_or_else(|| "default".into());
        if let Some(path) = file {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Some(c) = shared_file_profile(&text, &profile) {
                    return Ok(Credentials {
                        source: format!("the shared credentials file {path} [{profile}]"),
                        ..c
                    });
                }
            }
        }
        Err(
            "no S3 credentials: give storage.s3.accesskey and secretkey, AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or a shared credentials file (~/.aws/credentials, \
             AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE); the EC2 instance role the registry \
             would try last is not supported"
                .into(),
        )
    }
}

/// One profile of an INI-style shared credentials file.
fn shared_file_profile(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut a, mut s, mut t) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => a = Some(v),
                "aws_secret_access_key" => s = Some(v),
                "aws_session_token" => t = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key: Secret::new(a.filter(|v| !v.is_empty())?),
        secret_key: Secret::new(s.filter(|v| !v.is_empty())?),
        session_token: t.filter(|v| !v.is_empty()).map(Secret::new),
        source: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> BTreeMap<String, Yaml> {
        let doc = yaml_rust2::YamlLoader::load_from_str(text)
            .unwrap()
            .remove(0);
        doc.as_hash()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn parameters_as_the_driver_reads_them() {
        let c = S3Config::from_params(&params(
            "bucket: b\nregion: eu-west-1\nregionendpoint: http://127.0.0.1:9000\nrootdirectory: //reg/x//\nsecure: 'false'\nskipverify: true\n",
        ))
        .unwrap();
        assert_eq!(c.prefix(), "reg/x");
        assert_eq!(c.v2_prefix(), "reg/x/docker/registry/v2/");
        assert!(!c.secure && c.skipverify && c.v4auth);
        assert_eq!(c.display(), "s3://b/reg/x");
        let e = |t: &str| S3Config::from_params(&params(t)).unwrap_err();
        assert_eq!(e("bucket: b\n"), "no region parameter provided");
        assert_eq!(e("region: r\n"), "no bucket parameter provided");
        assert_eq!(
            e("bucket: b\nregion: r\nsecure: maybe\n"),
            "the secure parameter should be a boolean"
        );
        assert!(e("bucket: b\nregion: r\nv4auth: false\n").contains("v4 authentication"));
        // A number is printed as the driver's fmt.Sprint prints it.
        let c = S3Config::from_params(&params("bucket: 123\nregion: r\n")).unwrap();
        assert_eq!(c.bucket, "123");
        assert_eq!(c.prefix(), "");
        assert_eq!(c.v2_prefix(), "docker/registry/v2/");
    }

    #[test]
    fn the_credential_chain_and_secrets_never_print() {
        let c = S3Config::from_url("s3://bkt/pre/fix", Some("http://h:1"), None).unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.prefix().as_str(), c.secure),
            ("bkt", "pre/fix", false)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key = sdefault\n[other]\naws_access_key_id=AKIOTHER\naws_secret_access_key=sother\naws_session_token=tok\n",
        )
        .unwrap();
        let f = file.display().to_string();
        let env = |vars: Vec<(&'static str, String)>| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let got = c
            .credentials(&env(vec![
                ("AWS_SHARED_CREDENTIALS_FILE", f.clone()),
                ("AWS_PROFILE", "other".into()),
            ]))
            .unwrap();
        assert_eq!(got.access_key.expose(), "AKIOTHER");
        assert_eq!(got.session_token.as_ref().unwrap().expose(), "tok");
        let got = c
            .credentials(&env(vec![
                ("AWS_SHARED_CREDENTIALS_FILE", f.clone()),
                ("AWS_ACCESS_KEY_ID", "AKIENV".into()),
                ("AWS_SECRET_ACCESS_KEY", "senv".into()),
            ]))
            .unwrap();
        assert_eq!(got.access_key.expose(), "AKIENV");
        let printed = format!("{got:?} {}", got.secret_key);
        assert!(
            !printed.contains("senv") && !printed.contains("AKIENV"),
            "{printed}"
        );
        assert!(c
            .credentials(&env(vec![]))
            .unwrap_err()
            .contains("no S3 credentials"));
        let mut with = c.clone();
        with.config_credentials.access_key = Secret::new("AKICFG");
        with.config_credentials.secret_key = Secret::new("scfg");
        let got = with
            .credentials(&env(vec![
                ("AWS_ACCESS_KEY_ID", "AKIENV".into()),
                ("AWS_SECRET_ACCESS_KEY", "x".into()),
            ]))
            .unwrap();
        assert_eq!(got.access_key.expose(), "AKICFG");
    }
}

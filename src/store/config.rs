//! The registry's own `config.yml`: which storage driver holds the store (filesystem or s3) and
//! where, and the maintenance settings regfsck must respect. Environment overrides apply as the
//! registry applies them (`configuration/parser.go`): every `REGISTRY_STORAGE…` variable, in name
//! order, its value parsed as YAML — `REGISTRY_STORAGE=s3` replaces the whole storage section,
//! `REGISTRY_STORAGE_<DRIVER>_<KEY>` sets one parameter (creating the driver's section when there
//! is none). The registry's refusals of two drivers keep its own words.

use crate::store::s3::config::S3Config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

pub const DEFAULT_ROOT: &str = "/var/lib/registry";
pub const ROOT_ENV: &str = "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY";
/// Upload purging's default age when the config has no `uploadpurging` section.
pub const DEFAULT_PURGE_AGE: Duration = Duration::from_secs(168 * 3600);

/// Where the store is.
#[derive(Clone, Debug, PartialEq)]
pub enum Driver {
    Filesystem(PathBuf),
    S3(Box<S3Config>),
}

/// What regfsck needs from a registry configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryConfig {
    pub storage: Driver,
    /// Upload purging: `None` when disabled.
    pub purge_age: Option<Duration>,
    pub readonly: bool,
    pub delete_enabled: bool,
    /// A pull-through cache: its scheduler deletes blobs by itself, churn is expected.
    pub proxy: bool,
}

fn truthy(y: &Yaml) -> bool {
    matches!(y, Yaml::Boolean(true))
}

/// Keys of `storage` that configure it rather than name a driver (2.8's list, and 3.x's `tag`).
const NOT_DRIVERS: [&str; 5] = ["maintenance", "cache", "delete", "redirect", "tag"];

fn drivers(storage: &Hash) -> Vec<String> {
    storage
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| !NOT_DRIVERS.contains(k))
        .map(str::to_string)
        .collect()
}

/// An environment value as the registry's YAML decoder reads it (empty: null).
fn yaml_value(text: &str) -> Result<Yaml, String> {
    YamlLoader::load_from_str(text)
        .map(|mut d| {
            if d.is_empty() {
                Yaml::Null
            } else {
                d.remove(0)
            }
        })
        .map_err(|e| format!("not valid YAML: {e}"))
}

/// The key of `map` whose upper case is `upper`, with a non-null value.
fn find_key(map: &Hash, upper: &str) -> Option<Yaml> {
    map.iter()
        .find(|(k, v)| k.as_str().is_some_and(|k| k.to_uppercase() == upper) && !v.is_null())
        .map(|(k, _)| k.clone())
}

/// Set `path` (upper-case components) below `map` to `value`, as the registry's
/// `overwriteMap` does: an existing key is matched case-insensitively; a missing one is created
/// in lower case. Below the driver's own parameters the registry's decoder holds maps whose keys
/// are not strings, and it ignores such variables: so does this.
fn overwrite(map: &mut Hash, path: &[&str], value: Yaml, depth: usize) {
    if path.len() > 1 {
        if let Some(k) = find_key(map, path[0]) {
            if depth > 0 {
                return;
            }
            if let Some(Yaml::Hash(inner)) = map.get_mut(&k) {
                overwrite(inner, &path[1..], value, depth + 1);
            }
            return;
        }
        let mut inner = Hash::new();
        overwrite(&mut inner, &path[1..], value, depth + 1);
        map.insert(Yaml::String(path[0].to_lowercase()), Yaml::Hash(inner));
        return;
    }
    map.insert(Yaml::String(path[0].to_lowercase()), value);
}

/// Parse config text with these environment variables (name, value) applied.
pub fn parse(text: &str, env: &[(String, String)]) -> Result<RegistryConfig, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let doc = docs.first().cloned().unwrap_or(Yaml::Null);
    let mut storage = match &doc["storage"] {
        Yaml::Hash(h) => h.clone(),
        Yaml::String(s) => {
            let mut h = Hash::new();
            h.insert(Yaml::String(s.clone()), Yaml::Hash(Hash::new()));
            h
        }
        _ => Hash::new(),
    };
    let in_file = drivers(&storage);
    if in_file.len() > 1 {
        return Err(format!(
            "must provide exactly one storage type. Provided: [{}]",
            in_file.join(" ")
        ));
    }
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k == "REGISTRY_STORAGE" || k.starts_with("REGISTRY_STORAGE_"))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let path: Vec<&str> = name.split('_').skip(2).collect();
        let v = yaml_value(value).map_err(|e| format!("{name}: {e}"))?;
        if path.is_empty() {
            storage = match v {
                Yaml::String(s) => {
                    let mut h = Hash::new();
                    h.insert(Yaml::String(s), Yaml::Hash(Hash::new()));
                    h
                }
                Yaml::Hash(h) => {
                    let d = drivers(&h);
                    if d.len() > 1 {
                        return Err(format!(
                            "must provide exactly one storage type. Provided: [{}]",
                            d.join(" ")
                        ));
                    }
                    h
                }
                _ => Hash::new(),
            };
            continue;
        }
        overwrite(&mut storage, &path, v, 0);
    }
    let names = drivers(&storage);
    let params = |name: &str| -> BTreeMap<String, Yaml> {
        match storage.get(&Yaml::String(name.to_string())) {
            Some(Yaml::Hash(h)) => h
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let driver = match names.as_slice() {
        [d] if d == "filesystem" => Driver::Filesystem(PathBuf::from(
            params("filesystem")
                .get("rootdirectory")
                .and_then(|v| v.as_str().map(str::to_string))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| DEFAULT_ROOT.to_string()),
        )),
        [d] if d == "s3" || d == "s3aws" => Driver::S3(Box::new(
            S3Config::from_params(&params(d)).map_err(|e| format!("storage.{d}: {e}"))?,
        )),
        [] => {
            return Err(
                "no storage driver configured (storage.filesystem or storage.s3 is required)"
                    .into(),
            )
        }
        [d] => {
            return Err(format!(
                "storage driver is {d:?}; regfsck reads the filesystem and s3 drivers only"
            ))
        }
        many => {
            return Err(format!(
                "multiple storage drivers specified in configuration or environment: {}",
                many.join(", ")
            ))
        }
    };
    let storage = Yaml::Hash(storage);
    let maintenance = &storage["maintenance"];
    let delete = &storage["delete"];
    let purging = &maintenance["uploadpurging"];
    let purge_age = if purging.is_badvalue() || purging.is_null() {
        Some(DEFAULT_PURGE_AGE)
    } else if matches!(purging["enabled"], Yaml::Boolean(false)) {
        None
    } else {
        let age = purging["age"].as_str().ok_or(
            "storage.maintenance.uploadpurging.age is missing (the registry panics at start)",
        )?;
        Some(crate::model::duration::parse(age).map_err(|e| format!("uploadpurging.age: {e}"))?)
    };
    Ok(RegistryConfig {
        storage: driver,
        purge_age,
        readonly: truthy(&maintenance["readonly"]["enabled"]),
        delete_enabled: truthy(&delete["enabled"]),
        proxy: !doc["proxy"].is_badvalue() && !doc["proxy"].is_null(),
    })
}

/// For a config some other registry process runs with (and that process's environment): the
/// filesystem rootdirectory it serves, or `Ok(None)` when it uses another storage driver (so it
/// serves no filesystem store).
pub fn parse_any_driver(
    text: &str,
    env: &[(String, String)],
) -> Result<Option<(PathBuf, RegistryConfig)>, String> {
    let c = parse(text, env)?;
    Ok(match &c.storage {
        Driver::Filesystem(root) => Some((root.clone(), c)),
        Driver::S3(_) => None,
    })
}

/// Read and parse a config file, honouring the environment override.
pub fn load(path: &Path) -> Result<RegistryConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read registry config {}: {e}", path.display()))?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    parse(&text, &env).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n";

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn root(c: &RegistryConfig) -> PathBuf {
        match &c.storage {
            Driver::Filesystem(p) => p.clone(),
            other => panic!("not a filesystem: {other:?}"),
        }
    }

    #[test]
    fn debian_config() {
        let c = parse(DEBIAN, &[]).unwrap();
        assert_eq!(root(&c), PathBuf::from("/var/lib/docker-registry"));
        assert_eq!(c.purge_age, Some(DEFAULT_PURGE_AGE));
        assert!(c.delete_enabled && !c.readonly && !c.proxy);
    }

    #[test]
    fn env_override_and_defaults() {
        assert_eq!(
            root(&parse(DEBIAN, &env(&[(ROOT_ENV, "/srv/reg")])).unwrap()),
            PathBuf::from("/srv/reg")
        );
        let c = parse("storage:\n  filesystem: {}\n", &[]).unwrap();
        assert_eq!(root(&c), PathBuf::from(DEFAULT_ROOT));
        let c = parse("version: 0.1\n", &env(&[(ROOT_ENV, "/x")])).unwrap();
        assert_eq!(root(&c), PathBuf::from("/x"));
    }

    /// The registry's own words (checked against docker-registry 2.8.2, whose Go map order
    /// makes the file case print the two names in either order).
    #[test]
    fn refuses_two_drivers_and_others() {
        let e = parse("storage:\n  filesystem: {}\n  s3:\n    bucket: b\n", &[]).unwrap_err();
        assert_eq!(
            e,
            "must provide exactly one storage type. Provided: [filesystem s3]"
        );
        let e = parse(
            "storage:\n  filesystem: {}\n",
            &env(&[("REGISTRY_STORAGE_S3_BUCKET", "x")]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "multiple storage drivers specified in configuration or environment: filesystem, s3"
        );
        let e = parse("storage:\n  azure: {}\n", &[]).unwrap_err();
        assert!(e.contains("\"azure\""), "{e}");
        assert!(parse("version: 0.1\n", &[]).is_err());
        assert!(parse(": : :\n\t- [", &[]).is_err());
    }

    #[test]
    fn s3_from_the_file_and_the_environment() {
        let text = "storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    rootdirectory: /reg\n  delete:\n    enabled: true\n";
        let c = parse(text, &[]).unwrap();
        let Driver::S3(s) = &c.storage else { panic!() };
        assert_eq!(
            (s.bucket.as_str(), s.prefix().as_str(), s.secure),
            ("b", "reg", true)
        );
        assert!(c.delete_enabled);
        // Values are YAML: `false` is a boolean, a number is printed back as text.
        let c = parse(
            text,
            &env(&[
                ("REGISTRY_STORAGE_S3_SECURE", "false"),
                ("REGISTRY_STORAGE_S3_BUCKET", "42"),
                ("REGISTRY_STORAGE_S3_REGIONENDPOINT", "http://127.0.0.1:1"),
            ]),
        )
        .unwrap();
        let Driver::S3(s) = &c.storage else { panic!() };
        assert_eq!((s.bucket.as_str(), s.secure), ("42", false));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        // REGISTRY_STORAGE=s3 replaces the whole section: the filesystem driver and delete go.
        let fs = "storage:\n  filesystem:\n    rootdirectory: /r\n  delete:\n    enabled: true\n";
        let c = parse(
            fs,
            &env(&[
                ("REGISTRY_STORAGE", "s3"),
                ("REGISTRY_STORAGE_S3_BUCKET", "bk"),
                ("REGISTRY_STORAGE_S3_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        assert!(matches!(&c.storage, Driver::S3(s) if s.bucket == "bk" && s.region == "eu-west-1"));
        assert!(!c.delete_enabled);
        let e = parse(fs, &env(&[("REGISTRY_STORAGE", "s3")])).unwrap_err();
        assert_eq!(e, "storage.s3: no region parameter provided");
    }

    #[test]
    fn another_process_config() {
        assert_eq!(
            parse_any_driver("storage:\n  s3:\n    bucket: b\n    region: r\n", &[]),
            Ok(None)
        );
        let (root, _) = parse_any_driver(
            "storage:\n  filesystem: {}\n",
            &env(&[(ROOT_ENV, "/srv/x")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(root, PathBuf::from("/srv/x"));
        assert!(parse_any_driver(": : :\n\t- [", &[]).is_err());
    }

    #[test]
    fn maintenance() {
        let c = parse("storage:\n  filesystem: {rootdirectory: /r}\n  maintenance:\n    uploadpurging: {enabled: false}\n    readonly: {enabled: true}\n", &[]).unwrap();
        assert_eq!(c.purge_age, None);
        assert!(c.readonly);
        let c = parse("storage:\n  filesystem: {rootdirectory: /r}\n  maintenance:\n    uploadpurging: {enabled: true, age: 24h, interval: 1h, dryrun: false}\n", &[]).unwrap();
        assert_eq!(c.purge_age, Some(Duration::from_secs(86400)));
    }
}

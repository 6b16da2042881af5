//! The registry's own `config.yml`: where its filesystem store lives and the maintenance settings
//! regfsck must respect. Resolution order as the registry applies it: the environment override
//! `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`, then `storage.filesystem.rootdirectory`, then the
//! driver's default `/var/lib/registry`.

use std::path::{Path, PathBuf};
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

pub const DEFAULT_ROOT: &str = "/var/lib/registry";
pub const ROOT_ENV: &str = "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY";
/// Upload purging's default age when the config has no `uploadpurging` section.
pub const DEFAULT_PURGE_AGE: Duration = Duration::from_secs(168 * 3600);

/// What regfsck needs from a registry configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryConfig {
    pub rootdirectory: PathBuf,
    /// Upload purging: `None` when disabled.
    pub purge_age: Option<Duration>,
    pub readonly: bool,
    pub delete_enabled: bool,
    /// A pull-through cache: its scheduler deletes blobs by itself, churn is expected.
    pub proxy: bool,
}

fn keys(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Hash(h) => h
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn truthy(y: &Yaml) -> bool {
    matches!(y, Yaml::Boolean(true))
}

/// Parse config text; `env_root` is the value of `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`.
pub fn parse(text: &str, env_root: Option<&str>) -> Result<RegistryConfig, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let doc = docs.first().cloned().unwrap_or(Yaml::Null);
    let storage = &doc["storage"];
    // Everything under storage besides these keys names a driver; the registry allows exactly one.
    const NOT_DRIVERS: [&str; 5] = ["maintenance", "cache", "delete", "redirect", "tag"];
    let mut drivers: Vec<String> = keys(storage)
        .into_iter()
        .filter(|k| !NOT_DRIVERS.contains(&k.to_lowercase().as_str()))
        .collect();
    if env_root.is_some() && !drivers.iter().any(|d| d == "filesystem") {
        drivers.push("filesystem".into());
    }
    match drivers.as_slice() {
        [d] if d == "filesystem" => {}
        [] => return Err("no storage driver configured (storage.filesystem is required)".into()),
        [d] => {
            return Err(format!(
                "storage driver is {d:?}; regfsck checks only the filesystem driver"
            ))
        }
        many => {
            return Err(format!(
                "multiple storage drivers specified in configuration or environment: {}",
                many.join(", ")
            ))
        }
    }
    let root = match env_root {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => storage["filesystem"]["rootdirectory"]
            .as_str()
            .unwrap_or(DEFAULT_ROOT)
            .to_string(),
    };
    let maintenance = &storage["maintenance"];
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
        rootdirectory: PathBuf::from(root),
        purge_age,
        readonly: truthy(&maintenance["readonly"]["enabled"]),
        delete_enabled: truthy(&storage["delete"]["enabled"]),
        proxy: !doc["proxy"].is_badvalue() && !doc["proxy"].is_null(),
    })
}

/// Like `parse`, for a config some other registry process runs with: `Ok(None)` when it uses
/// another storage driver (so it serves no filesystem store).
pub fn parse_any_driver(
    text: &str,
    env_root: Option<&str>,
) -> Result<Option<RegistryConfig>, String> {
    match parse(text, env_root) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.starts_with("storage driver is") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read and parse a config file, honouring the environment override.
pub fn load(path: &Path) -> Result<RegistryConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read registry config {}: {e}", path.display()))?;
    let env = std::env::var(ROOT_ENV).ok();
    parse(&text, env.as_deref()).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n";

    #[test]
    fn debian_config() {
        let c = parse(DEBIAN, None).unwrap();
        assert_eq!(c.rootdirectory, PathBuf::from("/var/lib/docker-registry"));
        assert_eq!(c.purge_age, Some(DEFAULT_PURGE_AGE));
        assert!(c.delete_enabled && !c.readonly && !c.proxy);
    }

    #[test]
    fn env_override_and_defaults() {
        assert_eq!(
            parse(DEBIAN, Some("/srv/reg")).unwrap().rootdirectory,
            PathBuf::from("/srv/reg")
        );
        let c = parse("storage:\n  filesystem: {}\n", None).unwrap();
        assert_eq!(c.rootdirectory, PathBuf::from(DEFAULT_ROOT));
        let c = parse("version: 0.1\n", Some("/x")).unwrap();
        assert_eq!(c.rootdirectory, PathBuf::from("/x"));
    }

    #[test]
    fn refuses_other_drivers() {
        let e = parse("storage:\n  s3:\n    bucket: b\n", None).unwrap_err();
        assert!(e.contains("\"s3\""), "{e}");
        assert!(parse("storage:\n  s3: {}\n", Some("/x"))
            .unwrap_err()
            .contains("multiple"));
        assert!(parse("version: 0.1\n", None).is_err());
        assert!(parse(": : :\n\t- [", None).is_err());
        assert_eq!(
            parse_any_driver("storage:\n  s3:\n    bucket: b\n", None),
            Ok(None)
        );
        assert!(parse_any_driver(": : :\n\t- [", None).is_err());
    }

    #[test]
    fn maintenance() {
        let c = parse("storage:\n  filesystem: {rootdirectory: /r}\n  maintenance:\n    uploadpurging: {enabled: false}\n    readonly: {enabled: true}\n", None).unwrap();
        assert_eq!(c.purge_age, None);
        assert!(c.readonly);
        let c = parse("storage:\n  filesystem: {rootdirectory: /r}\n  maintenance:\n    uploadpurging: {enabled: true, age: 24h, interval: 1h, dryrun: false}\n", None).unwrap();
        assert_eq!(c.purge_age, Some(Duration::from_secs(86400)));
    }
}

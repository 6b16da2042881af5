//! The JSON Schemas of docs/schema/, compiled (boon), for validating real outputs.

use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

/// The compiled schemas, by document name (`check` for docs/schema/check.schema.json).
pub struct Contracts {
    schemas: boon::Schemas,
    pub index: std::collections::BTreeMap<String, boon::SchemaIndex>,
}

impl Contracts {
    pub fn load() -> Contracts {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let mut index = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(schema_dir()).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let Some(doc) = name.strip_suffix(".schema.json") else {
                panic!("docs/schema/{name}: not a *.schema.json file");
            };
            let i = compiler
                .compile(p.to_str().unwrap(), &mut schemas)
                .unwrap_or_else(|e| panic!("{name} does not compile: {e:#}"));
            index.insert(doc.to_string(), i);
        }
        Contracts { schemas, index }
    }

    pub fn check(&self, doc_name: &str, doc: &Value) -> Result<(), String> {
        self.schemas
            .validate(doc, self.index[doc_name])
            .map_err(|e| format!("{e:#}"))
    }

    pub fn assert_valid(&self, doc_name: &str, doc: &Value, what: &str) {
        if let Err(e) = self.check(doc_name, doc) {
            panic!(
                "{what}: not valid against docs/schema/{doc_name}.schema.json:\n{e}\n{}",
                serde_json::to_string_pretty(doc).unwrap()
            );
        }
    }
}

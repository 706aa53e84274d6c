//! Reading YAML files into JSON values (`value["a"]["b"]` is `Null` when
//! anything on the way is missing, which keeps the checks short).

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Every document of a YAML text (empty documents as `Null`), with merge
/// keys (`<<: *anchor`, as compose files use) applied.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    yaml_serde::Deserializer::from_str(text)
        .map(to_json)
        .collect()
}

fn to_json(doc: yaml_serde::Deserializer) -> Result<Value, String> {
    let mut value = yaml_serde::Value::deserialize(doc).map_err(|err| err.to_string())?;
    value.apply_merge().map_err(|err| err.to_string())?;
    serde_json::to_value(value).map_err(|err| err.to_string())
}

/// The one document of a YAML text.
pub fn parse(text: &str) -> Result<Value, String> {
    to_json(yaml_serde::Deserializer::from_str(text))
}

/// The one document of a YAML file.
pub fn load(path: &Path) -> Result<Value, String> {
    parse(&read(path)?).map_err(|err| format!("{}: {err}", path.display()))
}

/// A file's text, its path in the error.
pub fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))
}

/// The `.yml` and `.yaml` files under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|entry| entry.path()) {
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every YAML file under `deploy/` parses: the summary counts files and
/// documents.
pub fn check_all_parse(root: &Path) -> crate::Outcome {
    let files = files_under(&root.join("deploy"));
    let mut errors = Vec::new();
    let mut docs = 0;
    for path in &files {
        match read(path).and_then(|text| documents(&text)) {
            Ok(found) => docs += found.iter().filter(|d| !d.is_null()).count(),
            Err(err) => errors.push(format!("{}: {err}", rel(root, path))),
        }
    }
    crate::outcome(errors, || {
        format!("{} files, {docs} documents", files.len())
    })
}

/// `path` relative to the repository root, for messages.
pub fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_document_and_reports_bad_yaml() {
        let docs = documents("a: 1\n---\n---\nb: [x]\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_null());
        assert_eq!(docs[2]["b"][0], "x");
        assert!(documents("a: [1\n").is_err());
        let merged = parse("x: &base {a: 1, b: 2}\ny: {<<: *base, b: 3}\n").unwrap();
        assert_eq!(merged["y"], serde_json::json!({"a": 1, "b": 3}));
    }
}

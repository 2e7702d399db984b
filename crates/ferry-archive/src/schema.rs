//! The JSON Schema of manifest documents, `spec/manifest.schema.json`, compiled once and
//! applied to every manifest this crate reads (and, in tests, to every one it writes).

use std::sync::OnceLock;

use crate::error::ArchiveError;

/// The schema text, exactly as published in `spec/`.
pub const MANIFEST_SCHEMA: &str = include_str!("../../../spec/manifest.schema.json");

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(MANIFEST_SCHEMA).expect("spec/manifest.schema.json is JSON");
        jsonschema::validator_for(&schema).expect("spec/manifest.schema.json is a valid schema")
    })
}

/// Validates a manifest document; the error lists the first few violations with their
/// JSON pointers.
pub fn validate(file: &str, value: &serde_json::Value) -> Result<(), ArchiveError> {
    let errors: Vec<String> = validator()
        .iter_errors(value)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ArchiveError::BadManifest {
            file: file.to_owned(),
            reason: format!(
                "does not match spec/manifest.schema.json: {}",
                errors.join("; ")
            ),
        })
    }
}

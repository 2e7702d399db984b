//! The manifest: what an archive holds, described without reference to any engine's API.
//!
//! The same structure serialises both `prelude.json` (written first, before any data, so that a
//! streaming reader can create tables) and `manifest.json` (written last, authoritative, with the
//! data files, their checksums and the row counts). See `spec/FORMAT.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ArchiveError;
use crate::types::LogicalType;

/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "ferry-archive";
/// The format version this crate writes.
pub const FORMAT_VERSION: &str = "1.1.0";
/// The major version this crate reads. A reader refuses any other major version.
/// The newest major version this reader reads; it reads every major from 1 up to it (2.0
/// added signature entries, spec/FORMAT.md §5).
pub const FORMAT_MAJOR: u64 = 2;

/// Which of the two documents a manifest value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `prelude.json`: schema and options, no data files.
    Prelude,
    /// `manifest.json`: complete.
    Complete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: String,
    pub stage: Stage,
    pub created_by: CreatedBy,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub source: Source,
    /// Every option that influenced what was written, including lossy choices.
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    /// Database-level settings (SQLite pragmas, PostgreSQL encoding, ...), engine specific.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
    pub tables: Vec<Table>,
    /// Schema objects other than tables: indexes, views, triggers, sequences, types, ...
    #[serde(default)]
    pub objects: Vec<SchemaObject>,
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// What part of the source the export took (`-t`, `--where`, `--subset`, ...); absent
    /// for a whole-database export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<crate::selection::Selection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedBy {
    pub tool: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `sqlite`, `postgresql`, or another engine's lower-case name.
    pub engine: String,
    pub engine_version: String,
    /// A database name or a file name: never a password or a connection string.
    pub database: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Generated, filesystem-safe identifier (`t00001`); names the table's data directory.
    pub id: String,
    /// Namespace (PostgreSQL schema); absent for engines without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    /// `table`, or an engine-specific kind such as `virtual` or `partitioned`.
    #[serde(default = "default_table_kind")]
    pub kind: String,
    pub columns: Vec<Column>,
    /// Name of the data field that carries the engine's implicit row identifier, if kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rowid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Key>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<Key>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    /// The source engine's own definition (`CREATE TABLE ...`), for same-engine restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// Engine-specific facts (`without_rowid`, `strict`, `autoincrement`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Total rows; absent in the prelude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Digest of the table's canonical content, for `verify --against`; absent in the prelude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    #[serde(default)]
    pub files: Vec<DataFile>,
}

fn default_table_kind() -> String {
    "table".to_owned()
}

impl Table {
    /// A plain table with no constraints, properties or data yet.
    pub fn new(id: impl Into<String>, name: impl Into<String>, columns: Vec<Column>) -> Self {
        Table {
            id: id.into(),
            schema: None,
            name: name.into(),
            kind: default_table_kind(),
            columns,
            rowid: None,
            primary_key: None,
            unique: Vec::new(),
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            definition: None,
            properties: BTreeMap::new(),
            rows: None,
            content_digest: None,
            files: Vec::new(),
        }
    }

    /// A display name: `schema.name` or `name`, each part double-quoted when it needs it.
    pub fn display_name(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", display_ident(s), display_ident(&self.name)),
            None => display_ident(&self.name),
        }
    }

    /// The fields of the data files, in order: the rowid field (if any), then every column
    /// whose values are stored (generated columns are recomputed, not stored).
    pub fn data_fields(&self) -> Vec<(String, LogicalType)> {
        let mut out = Vec::with_capacity(self.columns.len() + 1);
        if let Some(r) = &self.rowid {
            out.push((r.clone(), LogicalType::Int64));
        }
        out.extend(
            self.columns
                .iter()
                .filter(|c| c.is_stored())
                .map(|c| (c.name.clone(), c.logical_type.clone())),
        );
        out
    }
}

fn display_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The logical type, which fixes the Arrow/Parquet representation (`spec/types.md`).
    #[serde(rename = "type")]
    pub logical_type: LogicalType,
    pub nullable: bool,
    /// The type as the source declared it (`VARCHAR(20)`, `numeric(10,2)`, `""` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_type: Option<String>,
    /// A portable hint derived from the declared type for cross-engine import
    /// (`timestamp`, `date`, `boolean`, `varchar(20)`, `numeric(10,2)`, `json`, `uuid`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Default expression in the source engine's dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// Engine-specific facts (identity, hidden, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
}

impl Column {
    pub fn new(name: impl Into<String>, logical_type: LogicalType, nullable: bool) -> Self {
        Column {
            name: name.into(),
            logical_type,
            nullable,
            declared_type: None,
            hint: None,
            default: None,
            generated: None,
            collation: None,
            properties: BTreeMap::new(),
        }
    }

    /// Whether the column's values are carried in the data files.
    pub fn is_stored(&self) -> bool {
        self.generated.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    pub expression: String,
    /// `true` for STORED, `false` for VIRTUAL.
    pub stored: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The expression in the source engine's dialect.
    pub expression: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_schema: Option<String>,
    pub ref_table: String,
    /// Empty means the referenced table's primary key.
    pub ref_columns: Vec<String>,
    #[serde(default = "no_action")]
    pub on_update: String,
    #[serde(default = "no_action")]
    pub on_delete: String,
    #[serde(default)]
    pub deferrable: bool,
    #[serde(default)]
    pub initially_deferred: bool,
}

fn no_action() -> String {
    "NO ACTION".to_owned()
}

/// A schema object other than a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaObject {
    /// `index`, `view`, `trigger`, `sequence`, `virtual_table`, `function`, `type`, ...
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    /// The table (or view) the object belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The source engine's own definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// Portable facts about the object (index columns, uniqueness, predicate, sequence value, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Relative path inside the archive, `/`-separated: `data/<table id>/part-<n>.parquet`.
    pub path: String,
    pub bytes: u64,
    pub rows: u64,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// Stable machine-readable code (`mixed_types`, `invalid_utf8`, ...).
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// A fresh prelude for the given source.
    pub fn new(source: Source) -> Self {
        Manifest {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION.to_owned(),
            stage: Stage::Prelude,
            created_by: CreatedBy {
                tool: "ferry".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            source,
            options: BTreeMap::new(),
            settings: BTreeMap::new(),
            tables: Vec::new(),
            objects: Vec::new(),
            warnings: Vec::new(),
            selection: None,
        }
    }

    /// Parses a manifest document: JSON Schema first, then the version, then the
    /// invariants the schema cannot express (unique ids, safe paths).
    pub fn from_json(file: &str, bytes: &[u8]) -> Result<Manifest, ArchiveError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ArchiveError::BadManifest {
                file: file.to_owned(),
                reason: format!("not valid JSON: {e}"),
            })?;
        check_version(file, &value)?;
        let limit = crate::limits::get().warnings;
        let warnings = value
            .get("warnings")
            .and_then(|w| w.as_array())
            .map_or(0, Vec::len);
        if warnings > limit {
            return Err(ArchiveError::Limit {
                path: file.to_owned(),
                what: format!("{warnings} warnings"),
                limit: format!("{limit} warnings"),
                flag: "--max-warnings",
            });
        }
        crate::schema::validate(file, &value)?;
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| ArchiveError::BadManifest {
                file: file.to_owned(),
                reason: e.to_string(),
            })?;
        manifest.check_invariants(file)?;
        Ok(manifest)
    }

    /// Records a partial export's selection, and what it left out as warnings with code
    /// `selection` (spec/FORMAT.md §4.11). A whole export records nothing.
    pub fn record_selection(&mut self, selection: &crate::selection::Selection, notes: &[String]) {
        if selection.is_empty() {
            return;
        }
        self.selection = Some(selection.clone());
        self.warnings.extend(notes.iter().map(|n| Warning {
            code: "selection".into(),
            table: None,
            column: None,
            message: n.clone(),
            details: Default::default(),
        }));
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        out.push(b'\n');
        out
    }

    pub fn table(&self, id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.id == id)
    }

    fn check_invariants(&self, file: &str) -> Result<(), ArchiveError> {
        let bad = |reason: String| ArchiveError::BadManifest {
            file: file.to_owned(),
            reason,
        };
        let mut ids = std::collections::HashSet::new();
        let mut qualified = std::collections::HashSet::new();
        let mut paths = std::collections::HashSet::new();
        for t in &self.tables {
            if !is_safe_table_id(&t.id) {
                return Err(bad(format!(
                    "table id {:?} is not of the form t<digits>",
                    t.id
                )));
            }
            if !ids.insert(t.id.as_str()) {
                return Err(bad(format!("table id {} appears twice", t.id)));
            }
            if !qualified.insert((t.schema.as_deref(), t.name.as_str())) {
                return Err(bad(format!("table {} appears twice", t.display_name())));
            }
            for c in &t.columns {
                if let LogicalType::Decimal { precision, scale } = c.logical_type
                    && (scale < 0 || scale as u8 > precision)
                {
                    return Err(bad(format!(
                        "table {}, column {}: decimal({precision},{scale}) needs 0 <= scale <= precision",
                        t.display_name(),
                        c.name
                    )));
                }
            }
            let mut names = std::collections::HashSet::new();
            for (name, _) in t.data_fields() {
                if !names.insert(name.clone()) {
                    return Err(bad(format!(
                        "table {}: data field {name:?} appears twice",
                        t.display_name()
                    )));
                }
            }
            for f in &t.files {
                check_entry_path(&f.path).map_err(|reason| bad(format!("{}: {reason}", f.path)))?;
                if table_id_of_path(&f.path) != Some(t.id.as_str()) {
                    return Err(bad(format!(
                        "{}: data file of table {} must lie under data/{}/",
                        f.path, t.id, t.id
                    )));
                }
                if !paths.insert(f.path.as_str()) {
                    return Err(bad(format!("{} is listed twice", f.path)));
                }
            }
            if self.stage == Stage::Complete {
                let sum: u64 = t.files.iter().map(|f| f.rows).sum();
                if t.rows != Some(sum) {
                    return Err(bad(format!(
                        "table {}: rows is {:?} but its files hold {sum}",
                        t.display_name(),
                        t.rows
                    )));
                }
            }
        }
        Ok(())
    }
}

fn check_version(file: &str, value: &serde_json::Value) -> Result<(), ArchiveError> {
    let format = value.get("format").and_then(|v| v.as_str());
    if format != Some(FORMAT_NAME) {
        return Err(ArchiveError::BadManifest {
            file: file.to_owned(),
            reason: format!("format is {format:?}, expected {FORMAT_NAME:?}"),
        });
    }
    let version = value
        .get("format_version")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok());
    match major {
        Some(1..=FORMAT_MAJOR) => Ok(()),
        _ => Err(ArchiveError::UnsupportedVersion {
            file: file.to_owned(),
            found: version.to_owned(),
            supported: FORMAT_MAJOR,
        }),
    }
}

/// `t` followed by one or more ASCII digits.
pub fn is_safe_table_id(id: &str) -> bool {
    id.len() > 1 && id.starts_with('t') && id[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The id of the table a data path belongs to (`data/<id>/<file>`), if the path has that shape.
pub fn table_id_of_path(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("data"), Some(id), Some(file), None)
            if is_safe_table_id(id) && file.ends_with(".parquet") =>
        {
            Some(id)
        }
        _ => None,
    }
}

/// Rejects entry paths a reader must never follow: absolute, `..`, empty or odd components,
/// backslashes (a Windows separator in disguise) and NUL.
pub fn check_entry_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') || path.contains(':') {
        return Err("absolute or non-portable path".into());
    }
    for part in path.split('/') {
        match part {
            "" | "." => return Err("empty or '.' path component".into()),
            ".." => return Err("path escapes the archive ('..')".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert!(check_entry_path("data/t00001/part-000000.parquet").is_ok());
        for bad in [
            "/etc/passwd",
            "../x",
            "data/../../x",
            "data//x",
            "a\\b",
            "c:/x",
            "",
        ] {
            assert!(check_entry_path(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(
            table_id_of_path("data/t00012/part-000000.parquet"),
            Some("t00012")
        );
        assert_eq!(table_id_of_path("data/users/part-000000.parquet"), None);
        assert_eq!(table_id_of_path("data/t1/x/part.parquet"), None);
    }

    #[test]
    fn display_names_quote_when_needed() {
        let mut t = Table::new("t00001", "MixedCase", vec![]);
        t.schema = Some("public".into());
        assert_eq!(t.display_name(), "public.\"MixedCase\"");
        t.schema = None;
        t.name = "users".into();
        assert_eq!(t.display_name(), "users");
    }
}

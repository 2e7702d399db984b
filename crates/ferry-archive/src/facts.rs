//! The typed contract between the adapters.
//!
//! An exporter records engine facts in the manifest's `properties` maps (a column's value
//! profile, a table's rowid alias, a PostgreSQL column's base type), and the *other* engine's
//! importer reads them to choose types and conversions. Those maps stay free-form JSON in the
//! format, so that an engine can add facts without a format change; but each fact that
//! crosses from one adapter to the other is declared here once, as a serde struct, and both
//! sides go through it. Renaming a field therefore breaks the build of both adapters, not a
//! migration at run time.
//!
//! [`Facts::read`] takes the keys it knows from a properties map and ignores the rest; a key
//! that is present with the wrong shape is an error naming the key, never a silent default.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Reading and writing a group of facts in a `properties` map.
pub trait Facts: Serialize + DeserializeOwned + Default {
    /// The facts present in `props`; `Err` names the first key with the wrong shape.
    fn read(props: &BTreeMap<String, Value>) -> Result<Self, String> {
        let known: serde_json::Map<String, Value> = Self::KEYS
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), props.get(*k)?.clone())))
            .collect();
        serde_json::from_value(Value::Object(known)).map_err(|e| e.to_string())
    }

    /// Writes the facts that are set into `props` (absent ones are left alone).
    fn write(&self, props: &mut BTreeMap<String, Value>) {
        if let Ok(Value::Object(m)) = serde_json::to_value(self) {
            props.extend(m);
        }
    }

    /// The property keys this group owns.
    const KEYS: &'static [&'static str];
}

/// What the SQLite exporter records about a table for other engines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqliteTableFacts {
    /// The INTEGER PRIMARY KEY column that aliases the rowid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rowid_alias: Option<String>,
    /// The table's `sqlite_sequence` value (AUTOINCREMENT): an id SQLite will not hand out
    /// again, even if no row holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite_sequence: Option<i64>,
}

impl Facts for SqliteTableFacts {
    const KEYS: &'static [&'static str] = &["rowid_alias", "sqlite_sequence"];
}

/// What the SQLite exporter records about a column for other engines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqliteColumnFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ValueProfile>,
}

impl Facts for SqliteColumnFacts {
    const KEYS: &'static [&'static str] = &["profile"];
}

/// A SQLite column's value profile (spec/types.md, "Value profile"): measured in the export's
/// one scan, so that an importer knows every column's target type before the first row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_max: Option<i64>,
    #[serde(default)]
    pub text_max_chars: u64,
    /// TEXT values holding U+0000.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub text_with_nul: u64,
    #[serde(default)]
    pub decimal_scale: u64,
    #[serde(default)]
    pub decimal_int_digits: u64,
    #[serde(default)]
    pub non_numeric: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_fits: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_misfits: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub misfit_examples: Vec<MisfitExample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_forms: Option<DateForms>,
    /// Storage class counts, as in the warnings' `details`.
    #[serde(default)]
    pub classes: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ValueProfile {
    /// The column holds no value at all (only NULLs, or no rows).
    pub fn no_values(&self) -> bool {
        self.classes.keys().all(|k| k == "null")
    }

    /// The largest magnitude among the INTEGER values (0 without any).
    pub fn integer_magnitude(&self) -> i64 {
        self.integer_max
            .unwrap_or(0)
            .unsigned_abs()
            .max(self.integer_min.unwrap_or(0).unsigned_abs())
            .min(i64::MAX as u64) as i64
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MisfitExample {
    /// The row, by its rowid field, INTEGER PRIMARY KEY or first primary-key column.
    pub row: String,
    /// The value, as a short SQL literal.
    pub value: String,
}

/// How the values of a date or time column are written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DateForms {
    #[serde(default)]
    pub iso_text: u64,
    #[serde(default)]
    pub iso_zoned: u64,
    #[serde(default)]
    pub epoch_integer: u64,
    #[serde(default)]
    pub julian_real: u64,
}

/// What the PostgreSQL exporter records about a column for other engines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PgColumnFacts {
    /// The base type's `typname` after domains (`int4`, `money`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_type: Option<String>,
    /// An enum column's type, as `format_type` prints it.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enum_type: Option<String>,
    /// `always` or `by default`, for identity columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The identity sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// Fraction digits of the source's `lc_monetary`, for `money` columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money_scale: Option<u32>,
    /// (name, `format_type`) of each field, for columns of a composite type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_fields: Option<Vec<(String, String)>>,
}

impl Facts for PgColumnFacts {
    const KEYS: &'static [&'static str] = &[
        "pg_type",
        "enum",
        "identity",
        "sequence",
        "money_scale",
        "composite_fields",
    ];
}

/// What the PostgreSQL exporter records about a table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PgTableFacts {
    /// The parent table, for a partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
}

impl Facts for PgTableFacts {
    const KEYS: &'static [&'static str] = &["partition_of"];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_round_trip_through_properties_and_ignore_other_keys() {
        let mut props = BTreeMap::new();
        props.insert("owner".into(), json!("app"));
        let f = PgColumnFacts {
            pg_type: Some("money".into()),
            money_scale: Some(2),
            composite_fields: Some(vec![("street".into(), "text".into())]),
            ..Default::default()
        };
        f.write(&mut props);
        assert_eq!(props["composite_fields"], json!([["street", "text"]]));
        assert_eq!(PgColumnFacts::read(&props).unwrap(), f);
        assert_eq!(props["owner"], json!("app"));
    }

    #[test]
    fn a_fact_of_the_wrong_shape_is_an_error_not_a_default() {
        let mut props = BTreeMap::new();
        props.insert("money_scale".into(), json!("two"));
        assert!(PgColumnFacts::read(&props).is_err());
        props.insert("profile".into(), json!({"integer_min": "x"}));
        assert!(SqliteColumnFacts::read(&props).is_err());
    }
}

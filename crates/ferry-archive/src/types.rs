//! The logical type system and its one mapping to Arrow (and through arrow-rs, to Parquet).
//!
//! `spec/types.md` mirrors [`LogicalType::arrow_type`] row by row; the tests at the bottom of
//! this file cover each row. Engine adapters map their own types onto these and back; this
//! crate never names an engine's types except inside [`LogicalType::EngineText`], which carries
//! a value in the named engine's own text form.

use std::sync::Arc;

use arrow_schema::extension::Uuid;
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogicalType {
    Boolean,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact decimal with at most 38 digits.
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Exact decimal of any size, as canonical text: `-12.3400`, `NaN`, `Infinity`, `-Infinity`.
    Numeric,
    /// Valid UTF-8 text.
    Text,
    Bytes,
    /// Days since 1970-01-01; `i32::MAX` / `i32::MIN` mean +/- infinity.
    Date,
    /// Microseconds since midnight.
    Time,
    /// Time of day with a UTC offset.
    TimeTz,
    /// Microseconds since 1970-01-01 00:00, no zone; `i64::MAX` / `i64::MIN` mean +/- infinity.
    Timestamp,
    /// Microseconds since 1970-01-01 00:00 UTC; same sentinels as `timestamp`.
    TimestampTz,
    /// Months, days and microseconds, kept apart.
    Interval,
    Uuid,
    /// JSON kept as its exact text (whitespace, key order and duplicate keys survive).
    Json,
    /// One SQLite value of any storage class (see `spec/types.md`, "sqlite_value").
    SqliteValue,
    /// A one-dimensional list of values of one logical type.
    List {
        element: Box<LogicalType>,
    },
    /// A value of an engine type with no exact portable mapping, in that engine's text form.
    EngineText {
        engine: String,
        type_name: String,
    },
}

/// Storage-class codes of the `sqlite_value` struct's `class` field.
pub mod sqlite_class {
    pub const INTEGER: i8 = 1;
    pub const REAL: i8 = 2;
    pub const TEXT: i8 = 3;
    pub const BLOB: i8 = 4;
    /// TEXT whose bytes are not valid UTF-8, carried byte for byte in the `blob` field.
    pub const TEXT_BYTES: i8 = 5;
}

impl LogicalType {
    /// The Arrow type of the data field. This is the one place that fixes the representation.
    pub fn arrow_type(&self) -> DataType {
        match self {
            LogicalType::Boolean => DataType::Boolean,
            LogicalType::Int16 => DataType::Int16,
            LogicalType::Int32 => DataType::Int32,
            LogicalType::Int64 => DataType::Int64,
            LogicalType::Float32 => DataType::Float32,
            LogicalType::Float64 => DataType::Float64,
            LogicalType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            LogicalType::Numeric => DataType::Utf8,
            LogicalType::Text => DataType::Utf8,
            LogicalType::Bytes => DataType::Binary,
            LogicalType::Date => DataType::Date32,
            LogicalType::Time => DataType::Time64(TimeUnit::Microsecond),
            LogicalType::TimeTz => DataType::Struct(Fields::from(vec![
                Field::new("time", DataType::Time64(TimeUnit::Microsecond), false),
                Field::new("offset_seconds", DataType::Int32, false),
            ])),
            LogicalType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            LogicalType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            LogicalType::Interval => DataType::Struct(Fields::from(vec![
                Field::new("months", DataType::Int32, false),
                Field::new("days", DataType::Int32, false),
                Field::new("microseconds", DataType::Int64, false),
            ])),
            LogicalType::Uuid => DataType::FixedSizeBinary(16),
            LogicalType::Json => DataType::Utf8,
            LogicalType::SqliteValue => DataType::Struct(sqlite_value_fields()),
            LogicalType::List { element } => {
                DataType::List(Arc::new(element.arrow_field("element", true)))
            }
            LogicalType::EngineText { .. } => DataType::Utf8,
        }
    }

    /// The Arrow field for a column of this type, with the extension metadata that makes
    /// arrow-rs write the matching Parquet logical type (UUID).
    pub fn arrow_field(&self, name: &str, nullable: bool) -> Field {
        let field = Field::new(name, self.arrow_type(), nullable);
        match self {
            LogicalType::Uuid => field.with_extension_type(Uuid),
            _ => field,
        }
    }

    /// Short human form used by `inspect` and error messages.
    pub fn display(&self) -> String {
        match self {
            LogicalType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            LogicalType::List { element } => format!("list<{}>", element.display()),
            LogicalType::EngineText { engine, type_name } => format!("{engine}:{type_name}"),
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                .unwrap_or_default(),
        }
    }
}

/// The fields of the `sqlite_value` struct: a storage class and one slot per class.
pub fn sqlite_value_fields() -> Fields {
    Fields::from(vec![
        Field::new("class", DataType::Int8, false),
        Field::new("integer", DataType::Int64, true),
        Field::new("real", DataType::Float64, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("blob", DataType::Binary, true),
    ])
}

/// The Arrow schema of a table's data files.
pub fn arrow_schema_for(fields: &[(String, LogicalType, bool)]) -> arrow_schema::Schema {
    arrow_schema::Schema::new(
        fields
            .iter()
            .map(|(name, t, nullable)| t.arrow_field(name, *nullable))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per line of the table in spec/types.md.
    #[test]
    fn every_logical_type_has_its_documented_arrow_type() {
        use DataType as D;
        let us = TimeUnit::Microsecond;
        let rows: Vec<(LogicalType, &str, DataType)> = vec![
            (LogicalType::Boolean, "boolean", D::Boolean),
            (LogicalType::Int16, "int16", D::Int16),
            (LogicalType::Int32, "int32", D::Int32),
            (LogicalType::Int64, "int64", D::Int64),
            (LogicalType::Float32, "float32", D::Float32),
            (LogicalType::Float64, "float64", D::Float64),
            (
                LogicalType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                "decimal(12,2)",
                D::Decimal128(12, 2),
            ),
            (LogicalType::Numeric, "numeric", D::Utf8),
            (LogicalType::Text, "text", D::Utf8),
            (LogicalType::Bytes, "bytes", D::Binary),
            (LogicalType::Date, "date", D::Date32),
            (LogicalType::Time, "time", D::Time64(us)),
            (LogicalType::Timestamp, "timestamp", D::Timestamp(us, None)),
            (
                LogicalType::TimestampTz,
                "timestamp_tz",
                D::Timestamp(us, Some("UTC".into())),
            ),
            (LogicalType::Uuid, "uuid", D::FixedSizeBinary(16)),
            (LogicalType::Json, "json", D::Utf8),
            (
                LogicalType::EngineText {
                    engine: "postgresql".into(),
                    type_name: "inet".into(),
                },
                "postgresql:inet",
                D::Utf8,
            ),
        ];
        for (t, name, arrow) in rows {
            assert_eq!(t.arrow_type(), arrow, "{name}");
            assert_eq!(t.display(), name);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<LogicalType>(&json).unwrap(), t);
        }
    }

    #[test]
    fn struct_types_have_documented_arrow_types() {
        use DataType as D;
        let us = TimeUnit::Microsecond;
        let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
        assert_eq!(
            LogicalType::TimeTz.arrow_type(),
            D::Struct(Fields::from(vec![
                f("time", D::Time64(us), false),
                f("offset_seconds", D::Int32, false)
            ]))
        );
        assert_eq!(
            LogicalType::Interval.arrow_type(),
            D::Struct(Fields::from(vec![
                f("months", D::Int32, false),
                f("days", D::Int32, false),
                f("microseconds", D::Int64, false)
            ]))
        );
        assert_eq!(
            LogicalType::SqliteValue.arrow_type(),
            D::Struct(Fields::from(vec![
                f("class", D::Int8, false),
                f("integer", D::Int64, true),
                f("real", D::Float64, true),
                f("text", D::Utf8, true),
                f("blob", D::Binary, true)
            ]))
        );
    }

    #[test]
    fn struct_types_have_documented_fields() {
        let names = |t: LogicalType| match t.arrow_type() {
            DataType::Struct(f) => f.iter().map(|f| f.name().clone()).collect::<Vec<_>>(),
            other => panic!("not a struct: {other}"),
        };
        assert_eq!(names(LogicalType::TimeTz), ["time", "offset_seconds"]);
        assert_eq!(
            names(LogicalType::Interval),
            ["months", "days", "microseconds"]
        );
        assert_eq!(
            names(LogicalType::SqliteValue),
            ["class", "integer", "real", "text", "blob"]
        );
        let list = LogicalType::List {
            element: Box::new(LogicalType::Int32),
        };
        assert_eq!(list.display(), "list<int32>");
        assert!(
            matches!(list.arrow_type(), DataType::List(f) if f.data_type() == &DataType::Int32)
        );
    }

    #[test]
    fn uuid_fields_carry_the_canonical_extension() {
        let f = LogicalType::Uuid.arrow_field("id", false);
        assert_eq!(
            f.extension_type_name(),
            Some(<Uuid as arrow_schema::extension::ExtensionType>::NAME)
        );
    }
}

//! PostgreSQL's side of the type mapping, in one place (mirrored by `spec/types.md`, section
//! "PostgreSQL ↔ logical types").
//!
//! A column's *wire* form is decided from its type after resolving domains. Types with an
//! exact natural Arrow form travel in PostgreSQL's binary COPY format and are decoded straight
//! into Arrow builders; every other type (arrays, composites, ranges, network and geometric
//! types, bit strings, text search, ...) is selected as `::text` and carried as
//! `engine_text`, which is exact because PostgreSQL's text output reparses to the same value.

use ferry_archive::LogicalType;

/// How a column's values travel through COPY BINARY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, and enum labels: UTF-8 bytes.
    Text,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    /// money: int64 cents (in the database's lc_monetary).
    Money,
    /// oid: uint32.
    Oid,
    /// Anything else: selected as `::text`, restored with a cast.
    AsText,
}

/// What the catalog says about a column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// `format_type(atttypid, atttypmod)`, schema-qualified where needed.
    pub formatted: String,
    /// Schema of the type after resolving domains.
    pub base_schema: String,
    /// `typname` of the type after resolving domains.
    pub base_name: String,
    /// `typtype` after resolving domains: b(ase), c(omposite), e(num), r(ange), m(ultirange), p(seudo).
    pub base_kind: char,
    /// Element type oid != 0 and a variable length: an array.
    pub is_array: bool,
    /// An array's element type, by `typname`, when it is a base type of `pg_catalog`.
    pub element: Option<String>,
    /// typmod after resolving domains.
    pub typmod: i32,
}

/// The wire form of a type. This `match` is the mapping table.
///
/// | PostgreSQL type (after domains)         | wire          | logical type           |
/// |-----------------------------------------|---------------|------------------------|
/// | boolean                                 | Bool          | boolean                |
/// | smallint / integer / bigint             | Int2/4/8      | int16 / int32 / int64  |
/// | real / double precision                 | Float4/8      | float32 / float64      |
/// | numeric(p,s), 1<=p<=38, 0<=s<=p, no NaN | Numeric       | decimal(p,s)           |
/// | numeric otherwise                       | Numeric       | numeric (exact text)   |
/// | text, varchar(n), char(n), name         | Text          | text                   |
/// | enum                                    | Text          | text (label)           |
/// | bytea                                   | Bytea         | bytes                  |
/// | date                                    | Date          | date                   |
/// | time / time with time zone              | Time / TimeTz | time / time_tz         |
/// | timestamp / timestamp with time zone    | Timestamp(Tz) | timestamp / timestamp_tz |
/// | interval                                | Interval      | interval               |
/// | uuid                                    | Uuid          | uuid                   |
/// | json / jsonb                            | Json / Jsonb  | json                   |
/// | money                                   | Money         | int64 (cents)          |
/// | oid                                     | Oid           | int64                  |
/// | array of bool, int2/4/8, float4/8, text, varchar, bpchar, name (1-D, lower bound 1) | AsText | `list<element>` |
/// | anything else (other arrays, composites, ranges, inet, bit, tsvector, point, xml, ...) | AsText | engine_text |
///
/// An array travels as its text literal either way; as a `list` its elements are parsed
/// into Arrow and printed back on import, exactly (see [`list_element`]). Whether every
/// value of an array column is one-dimensional with lower bound 1, which a list needs, is
/// known only from the data: the export checks it (`demote_unrepresentable`) and keeps the
/// literal otherwise.
pub fn wire(t: &TypeInfo) -> Wire {
    if t.is_array || t.base_kind != 'b' && t.base_kind != 'e' {
        return Wire::AsText;
    }
    if t.base_kind == 'e' {
        return Wire::Text;
    }
    if t.base_schema != "pg_catalog" {
        return Wire::AsText;
    }
    match t.base_name.as_str() {
        "bool" => Wire::Bool,
        "int2" => Wire::Int2,
        "int4" => Wire::Int4,
        "int8" => Wire::Int8,
        "float4" => Wire::Float4,
        "float8" => Wire::Float8,
        "numeric" => Wire::Numeric,
        "text" | "varchar" | "bpchar" | "name" => Wire::Text,
        "bytea" => Wire::Bytea,
        "date" => Wire::Date,
        "time" => Wire::Time,
        "timetz" => Wire::TimeTz,
        "timestamp" => Wire::Timestamp,
        "timestamptz" => Wire::TimestampTz,
        "interval" => Wire::Interval,
        "uuid" => Wire::Uuid,
        "json" => Wire::Json,
        "jsonb" => Wire::Jsonb,
        "money" => Wire::Money,
        "oid" => Wire::Oid,
        _ => Wire::AsText,
    }
}

/// Precision and scale of a numeric typmod, when it has one.
pub fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // Since PostgreSQL 15 the scale is an 11-bit signed number.
    let scale = ((t & 0x7ff) ^ 0x400) - 0x400;
    Some((precision, scale))
}

/// The element type of an array column archived as a `list`, or `None` for a literal.
pub fn list_element(t: &TypeInfo) -> Option<LogicalType> {
    // A true array type is named after its element with a leading underscore; int2vector
    // and oidvector also have an element type but print as `1 2`, not as an array literal.
    if !t.is_array || !t.base_name.starts_with('_') {
        return None;
    }
    Some(match t.element.as_deref()? {
        "bool" => LogicalType::Boolean,
        "int2" => LogicalType::Int16,
        "int4" => LogicalType::Int32,
        "int8" => LogicalType::Int64,
        "float4" => LogicalType::Float32,
        "float8" => LogicalType::Float64,
        "text" | "varchar" | "bpchar" | "name" => LogicalType::Text,
        _ => return None,
    })
}

/// The logical type a wire form is archived as. `numeric_nan` says whether a typmod'd
/// numeric column holds NaN (which a decimal cannot).
pub fn logical(wire: Wire, t: &TypeInfo, numeric_nan: bool) -> LogicalType {
    match wire {
        Wire::Bool => LogicalType::Boolean,
        Wire::Int2 => LogicalType::Int16,
        Wire::Int4 => LogicalType::Int32,
        Wire::Int8 | Wire::Money | Wire::Oid => LogicalType::Int64,
        Wire::Float4 => LogicalType::Float32,
        Wire::Float8 => LogicalType::Float64,
        Wire::Numeric => match numeric_typmod(t.typmod) {
            Some((p, s)) if (1..=38).contains(&p) && (0..=p).contains(&s) && !numeric_nan => {
                LogicalType::Decimal {
                    precision: p as u8,
                    scale: s as i8,
                }
            }
            _ => LogicalType::Numeric,
        },
        Wire::Text => LogicalType::Text,
        Wire::Bytea => LogicalType::Bytes,
        Wire::Date => LogicalType::Date,
        Wire::Time => LogicalType::Time,
        Wire::TimeTz => LogicalType::TimeTz,
        Wire::Timestamp => LogicalType::Timestamp,
        Wire::TimestampTz => LogicalType::TimestampTz,
        Wire::Interval => LogicalType::Interval,
        Wire::Uuid => LogicalType::Uuid,
        Wire::Json | Wire::Jsonb => LogicalType::Json,
        Wire::AsText => match list_element(t) {
            Some(element) => LogicalType::List {
                element: Box::new(element),
            },
            None => LogicalType::EngineText {
                engine: crate::ENGINE.into(),
                type_name: t.formatted.clone(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ti(name: &str, kind: char, array: bool, typmod: i32) -> TypeInfo {
        TypeInfo {
            formatted: name.into(),
            base_schema: "pg_catalog".into(),
            base_name: name.into(),
            base_kind: kind,
            is_array: array,
            element: None,
            typmod,
        }
    }

    /// One case per row of the table on `wire`.
    #[test]
    fn mapping_rows() {
        let numeric_10_2 = ((10 << 16) | 2) + 4;
        let cases = [
            (ti("bool", 'b', false, -1), Wire::Bool, LogicalType::Boolean),
            (ti("int2", 'b', false, -1), Wire::Int2, LogicalType::Int16),
            (ti("int4", 'b', false, -1), Wire::Int4, LogicalType::Int32),
            (ti("int8", 'b', false, -1), Wire::Int8, LogicalType::Int64),
            (
                ti("float4", 'b', false, -1),
                Wire::Float4,
                LogicalType::Float32,
            ),
            (
                ti("float8", 'b', false, -1),
                Wire::Float8,
                LogicalType::Float64,
            ),
            (
                ti("numeric", 'b', false, numeric_10_2),
                Wire::Numeric,
                LogicalType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            (
                ti("numeric", 'b', false, -1),
                Wire::Numeric,
                LogicalType::Numeric,
            ),
            (ti("varchar", 'b', false, 24), Wire::Text, LogicalType::Text),
            (ti("bpchar", 'b', false, 9), Wire::Text, LogicalType::Text),
            (ti("mood", 'e', false, -1), Wire::Text, LogicalType::Text),
            (ti("bytea", 'b', false, -1), Wire::Bytea, LogicalType::Bytes),
            (ti("date", 'b', false, -1), Wire::Date, LogicalType::Date),
            (ti("time", 'b', false, -1), Wire::Time, LogicalType::Time),
            (
                ti("timetz", 'b', false, -1),
                Wire::TimeTz,
                LogicalType::TimeTz,
            ),
            (
                ti("timestamp", 'b', false, -1),
                Wire::Timestamp,
                LogicalType::Timestamp,
            ),
            (
                ti("timestamptz", 'b', false, -1),
                Wire::TimestampTz,
                LogicalType::TimestampTz,
            ),
            (
                ti("interval", 'b', false, -1),
                Wire::Interval,
                LogicalType::Interval,
            ),
            (ti("uuid", 'b', false, -1), Wire::Uuid, LogicalType::Uuid),
            (ti("json", 'b', false, -1), Wire::Json, LogicalType::Json),
            (ti("jsonb", 'b', false, -1), Wire::Jsonb, LogicalType::Json),
            (ti("money", 'b', false, -1), Wire::Money, LogicalType::Int64),
            (ti("oid", 'b', false, -1), Wire::Oid, LogicalType::Int64),
        ];
        for (t, w, l) in cases {
            assert_eq!(wire(&t), w, "{}", t.base_name);
            assert_eq!(logical(w, &t, false), l, "{}", t.base_name);
        }
        for t in [
            ti("int4[]", 'b', true, -1),
            ti("inet", 'b', false, -1),
            ti("int4range", 'r', false, -1),
            ti("complex", 'c', false, -1),
            ti("tsvector", 'b', false, -1),
        ] {
            assert_eq!(wire(&t), Wire::AsText, "{}", t.base_name);
            assert!(matches!(
                logical(Wire::AsText, &t, false),
                LogicalType::EngineText { .. }
            ));
        }
        // A NaN in numeric(10,2) forces the exact text form.
        assert_eq!(
            logical(
                Wire::Numeric,
                &ti("numeric", 'b', false, numeric_10_2),
                true
            ),
            LogicalType::Numeric
        );
        assert_eq!(
            numeric_typmod(((5 << 16) | (0x7ff & -3i32)) + 4),
            Some((5, -3))
        );
    }
}

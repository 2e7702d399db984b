//! SQLite's side of the type mapping, in one place (mirrored by `spec/types.md`, section
//! "SQLite ↔ logical types").
//!
//! SQLite stores a storage class per *value*, not per column; the declared type only lends a
//! column an affinity. So the logical type of a column is decided from the classes its values
//! actually have (counted in one scan before any data is written), and the declared type is
//! kept as text plus a portable *hint* for cross-engine imports.

use ferry_archive::LogicalType;

/// Column affinity; it lives in `ferry-sql`, as the PostgreSQL importer reads it too.
pub use ferry_sql::sqlite::Affinity;

/// How many values of each storage class a column holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounts {
    pub null: u64,
    pub integer: u64,
    pub real: u64,
    pub text: u64,
    pub blob: u64,
    /// TEXT values whose bytes are not valid UTF-8 (a subset of `text`).
    pub text_not_utf8: u64,
    /// INTEGER values of magnitude 2^51 or more (see [`choose`]).
    pub integer_large: u64,
    /// REAL values with an integral value of magnitude below 2^63 (see [`choose`]).
    pub real_integral: u64,
}

impl ClassCounts {
    /// Adds another scan's counts.
    pub fn add(&mut self, o: &ClassCounts) {
        self.null += o.null;
        self.integer += o.integer;
        self.real += o.real;
        self.text += o.text;
        self.blob += o.blob;
        self.text_not_utf8 += o.text_not_utf8;
        self.integer_large += o.integer_large;
        self.real_integral += o.real_integral;
    }

    fn classes_present(&self) -> usize {
        [self.integer, self.real, self.text, self.blob]
            .iter()
            .filter(|n| **n > 0)
            .count()
    }

    /// `2 integer, 1 text, 1 NULL`, for messages.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("INTEGER", self.integer),
            ("REAL", self.real),
            ("TEXT", self.text),
            ("BLOB", self.blob),
            ("NULL", self.null),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
        let mut s = parts.join(", ");
        if self.text_not_utf8 > 0 {
            s.push_str(&format!(" ({} TEXT not valid UTF-8)", self.text_not_utf8));
        }
        s
    }

    pub fn as_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("null", self.null),
            ("integer", self.integer),
            ("real", self.real),
            ("text", self.text),
            ("blob", self.blob),
            ("text_not_utf8", self.text_not_utf8),
        ] {
            if v > 0 {
                m.insert(k.into(), v.into());
            }
        }
        m
    }
}

/// Why a column could not use its natural type, for the manifest's warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// Values of several storage classes.
    MixedTypes,
    /// One class, but not the one the declared affinity stores (e.g. text in an INTEGER column).
    TypeMismatch,
    /// TEXT that is not valid UTF-8.
    InvalidUtf8,
}

impl Misfit {
    pub fn code(self) -> &'static str {
        match self {
            Misfit::MixedTypes => "mixed_types",
            Misfit::TypeMismatch => "type_mismatch",
            Misfit::InvalidUtf8 => "invalid_utf8",
        }
    }
}

/// Chooses the logical type of a column from its affinity and the classes of its values.
///
/// | values (besides NULL)                       | logical type     |
/// |---------------------------------------------|------------------|
/// | none                                        | by affinity      |
/// | only INTEGER                                | `int64`          |
/// | only REAL                                   | `float64`        |
/// | only TEXT, all valid UTF-8                  | `text`           |
/// | only BLOB                                   | `bytes`          |
/// | INTEGER and REAL in a NUMERIC-affinity column, integers below 2^51 in magnitude, no integral REAL | `float64` |
/// | anything else                               | `sqlite_value`   |
///
/// The NUMERIC row is exact because NUMERIC affinity turns a small REAL with an integral
/// value back into an INTEGER on re-insert, while a REAL with a fraction stays REAL; the
/// conditions exclude every value for which that would not restore the original class.
///
/// A single class that the affinity would not produce (TEXT in an INTEGER column) is reported
/// as a type mismatch, except TEXT under NUMERIC affinity, which is how applications store
/// dates, times and flags in `DATETIME`, `DATE` or `BOOLEAN` columns.
pub fn choose(affinity: Affinity, c: &ClassCounts) -> (LogicalType, Option<Misfit>) {
    if c.text_not_utf8 > 0 {
        return (LogicalType::SqliteValue, Some(Misfit::InvalidUtf8));
    }
    match c.classes_present() {
        0 => (by_affinity(affinity), None),
        1 => {
            let t = if c.integer > 0 {
                LogicalType::Int64
            } else if c.real > 0 {
                LogicalType::Float64
            } else if c.text > 0 {
                LogicalType::Text
            } else {
                LogicalType::Bytes
            };
            let expected = match affinity {
                Affinity::Integer => c.integer > 0 || c.real > 0,
                Affinity::Real => c.real > 0,
                Affinity::Numeric => c.blob == 0,
                Affinity::Text => c.text > 0,
                Affinity::Blob => true,
            };
            (t, (!expected).then_some(Misfit::TypeMismatch))
        }
        2 if affinity == Affinity::Numeric
            && c.integer > 0
            && c.real > 0
            && c.integer_large == 0
            && c.real_integral == 0 =>
        {
            (LogicalType::Float64, None)
        }
        _ => (LogicalType::SqliteValue, Some(Misfit::MixedTypes)),
    }
}

/// A column declared BOOL or BOOLEAN (hint `boolean`) whose values are all the INTEGERs 0
/// and 1 is archived as `boolean`, which Arrow readers understand, instead of `int64`. It
/// is exact: the import binds false and true as the INTEGERs 0 and 1 again.
pub fn flags(hint: Option<&str>, chosen: &LogicalType, min: Option<i64>, max: Option<i64>) -> bool {
    hint == Some("boolean")
        && *chosen == LogicalType::Int64
        && matches!((min, max), (Some(lo), Some(hi)) if lo >= 0 && hi <= 1)
}

/// A column declared DATETIME or TIMESTAMP (hint `timestamp`) whose values are all TEXT in
/// the exact form SQLite's `datetime()` prints (`2024-05-01 13:45:00`, a fraction without
/// trailing zeros) is archived as `timestamp`; one declared DATE whose values are all
/// `date()`'s `YYYY-MM-DD`, as `date`. Exact: the import prints them back in that form, the
/// same bytes. A column mixing forms, or holding anything else, stays `text`.
pub fn natural_time(
    hint: Option<&str>,
    chosen: &LogicalType,
    text: u64,
    canonical: u64,
) -> Option<LogicalType> {
    if *chosen != LogicalType::Text || text == 0 || canonical != text {
        return None;
    }
    match hint {
        Some("timestamp") => Some(LogicalType::Timestamp),
        Some("date") => Some(LogicalType::Date),
        _ => None,
    }
}

fn by_affinity(affinity: Affinity) -> LogicalType {
    match affinity {
        Affinity::Integer => LogicalType::Int64,
        Affinity::Text => LogicalType::Text,
        Affinity::Blob => LogicalType::Bytes,
        Affinity::Real | Affinity::Numeric => LogicalType::Float64,
    }
}

/// A portable hint for a declared type, for cross-engine imports. `None` when the declared
/// type says nothing beyond its affinity.
///
/// | declared (case-insensitive)                        | hint             |
/// |----------------------------------------------------|------------------|
/// | BOOL, BOOLEAN                                      | `boolean`        |
/// | DATETIME, TIMESTAMP, TIMESTAMP WITHOUT TIME ZONE   | `timestamp`      |
/// | TIMESTAMPTZ, TIMESTAMP WITH TIME ZONE              | `timestamptz`    |
/// | DATE                                               | `date`           |
/// | TIME                                               | `time`           |
/// | VARCHAR(n), CHARACTER VARYING(n), NVARCHAR(n)      | `varchar(n)`     |
/// | CHAR(n), CHARACTER(n), NCHAR(n)                    | `char(n)`        |
/// | NUMERIC(p,s), DECIMAL(p,s), NUMERIC(p), DECIMAL(p) | `numeric(p,s)`   |
/// | NUMERIC, DECIMAL                                   | `numeric`        |
/// | JSON, JSONB                                        | `json`           |
/// | UUID, GUID                                         | `uuid`           |
/// | TINYINT, SMALLINT, INT2                            | `smallint`       |
/// | INT, INTEGER, MEDIUMINT, INT4                      | `integer`        |
/// | BIGINT, INT8                                       | `bigint`         |
/// | REAL, DOUBLE, DOUBLE PRECISION, FLOAT              | `double`         |
/// | TEXT, CLOB                                         | `text`           |
/// | BLOB                                               | `bytes`          |
pub fn hint(declared: &str) -> Option<String> {
    let norm = declared
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let (base, args) = match norm.find('(') {
        Some(i) => (
            norm[..i].trim().to_owned(),
            norm[i + 1..].trim_end_matches(')').replace(' ', ""),
        ),
        None => (norm.clone(), String::new()),
    };
    let nums: Vec<u32> = args.split(',').filter_map(|a| a.parse().ok()).collect();
    let h = match base.as_str() {
        "BOOL" | "BOOLEAN" => "boolean".to_owned(),
        "DATETIME" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => "timestamp".to_owned(),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => "timestamptz".to_owned(),
        "DATE" => "date".to_owned(),
        "TIME" => "time".to_owned(),
        "VARCHAR"
        | "CHARACTER VARYING"
        | "NVARCHAR"
        | "VARYING CHARACTER"
        | "NATIVE CHARACTER VARYING" => match nums.as_slice() {
            [n] => format!("varchar({n})"),
            _ => "text".to_owned(),
        },
        "CHAR" | "CHARACTER" | "NCHAR" | "NATIVE CHARACTER" => match nums.as_slice() {
            [n] => format!("char({n})"),
            _ => "text".to_owned(),
        },
        "NUMERIC" | "DECIMAL" => match nums.as_slice() {
            [p] => format!("numeric({p},0)"),
            [p, s] => format!("numeric({p},{s})"),
            _ => "numeric".to_owned(),
        },
        "JSON" | "JSONB" => "json".to_owned(),
        "UUID" | "GUID" => "uuid".to_owned(),
        "TINYINT" | "SMALLINT" | "INT2" => "smallint".to_owned(),
        "INT" | "INTEGER" | "MEDIUMINT" | "INT4" => "integer".to_owned(),
        "BIGINT" | "INT8" | "UNSIGNED BIG INT" => "bigint".to_owned(),
        "REAL" | "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" => "double".to_owned(),
        "TEXT" | "CLOB" => "text".to_owned(),
        "BLOB" => "bytes".to_owned(),
        _ => return None,
    };
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules_in_order() {
        for (decl, a) in [
            ("INTEGER", Affinity::Integer),
            ("BIGINT", Affinity::Integer),
            ("POINT", Affinity::Integer), // "POINT" contains "INT": rule 1 wins
            ("VARCHAR(20)", Affinity::Text),
            ("CLOB", Affinity::Text),
            ("", Affinity::Blob),
            ("BLOB", Affinity::Blob),
            ("DOUBLE PRECISION", Affinity::Real),
            ("FLOATING POINT", Affinity::Integer),
            ("DECIMAL(10,5)", Affinity::Numeric),
            ("DATETIME", Affinity::Numeric),
            ("BOOLEAN", Affinity::Numeric),
        ] {
            assert_eq!(Affinity::of(decl), a, "{decl}");
        }
    }

    fn counts(integer: u64, real: u64, text: u64, blob: u64) -> ClassCounts {
        ClassCounts {
            integer,
            real,
            text,
            blob,
            ..ClassCounts::default()
        }
    }

    #[test]
    fn uniform_datetime_text_is_a_timestamp() {
        use LogicalType as L;
        assert_eq!(
            natural_time(Some("timestamp"), &L::Text, 3, 3),
            Some(L::Timestamp)
        );
        assert_eq!(natural_time(Some("date"), &L::Text, 3, 3), Some(L::Date));
        assert_eq!(natural_time(Some("timestamp"), &L::Text, 3, 2), None);
        assert_eq!(natural_time(Some("timestamptz"), &L::Text, 3, 3), None);
        assert_eq!(natural_time(Some("timestamp"), &L::Int64, 0, 0), None);
        assert_eq!(natural_time(Some("timestamp"), &L::Text, 0, 0), None);
        assert_eq!(natural_time(None, &L::Text, 3, 3), None);
    }

    #[test]
    fn boolean_columns_of_zeros_and_ones_are_flags() {
        use LogicalType as L;
        assert!(flags(Some("boolean"), &L::Int64, Some(0), Some(1)));
        assert!(flags(Some("boolean"), &L::Int64, Some(1), Some(1)));
        assert!(!flags(Some("boolean"), &L::Int64, Some(0), Some(2)));
        assert!(!flags(Some("boolean"), &L::Int64, Some(-1), Some(1)));
        assert!(!flags(Some("boolean"), &L::Text, None, None));
        assert!(!flags(Some("boolean"), &L::Int64, None, None));
        assert!(!flags(Some("integer"), &L::Int64, Some(0), Some(1)));
    }

    /// One case per row of the table on `choose`.
    #[test]
    fn choose_rows() {
        use Affinity as A;
        use LogicalType as L;
        let cases = [
            (A::Integer, counts(0, 0, 0, 0), L::Int64, None),
            (A::Text, counts(0, 0, 0, 0), L::Text, None),
            (A::Integer, counts(5, 0, 0, 0), L::Int64, None),
            (A::Real, counts(0, 5, 0, 0), L::Float64, None),
            (A::Text, counts(0, 0, 5, 0), L::Text, None),
            (A::Blob, counts(0, 0, 0, 5), L::Bytes, None),
            (
                A::Integer,
                counts(0, 0, 5, 0),
                L::Text,
                Some(Misfit::TypeMismatch),
            ),
            (A::Numeric, counts(3, 4, 0, 0), L::Float64, None),
            (A::Numeric, counts(0, 0, 5, 0), L::Text, None),
            (
                A::Numeric,
                counts(0, 0, 0, 5),
                L::Bytes,
                Some(Misfit::TypeMismatch),
            ),
            (
                A::Integer,
                counts(3, 4, 0, 0),
                L::SqliteValue,
                Some(Misfit::MixedTypes),
            ),
            (
                A::Blob,
                counts(1, 1, 1, 1),
                L::SqliteValue,
                Some(Misfit::MixedTypes),
            ),
        ];
        for (a, c, t, m) in cases {
            assert_eq!(choose(a, &c), (t.clone(), m), "{a:?} {c:?}");
        }
        let mut big = counts(3, 4, 0, 0);
        big.integer_large = 1;
        assert_eq!(choose(A::Numeric, &big).0, L::SqliteValue);
        let mut integral = counts(3, 4, 0, 0);
        integral.real_integral = 1;
        assert_eq!(choose(A::Numeric, &integral).0, L::SqliteValue);
        let mut bad = counts(0, 0, 2, 0);
        bad.text_not_utf8 = 1;
        assert_eq!(
            choose(A::Text, &bad),
            (L::SqliteValue, Some(Misfit::InvalidUtf8))
        );
    }

    /// One case per row of the table on `hint`.
    #[test]
    fn hint_rows() {
        for (decl, h) in [
            ("boolean", Some("boolean")),
            ("DATETIME", Some("timestamp")),
            ("timestamp with time zone", Some("timestamptz")),
            ("DATE", Some("date")),
            ("TIME", Some("time")),
            ("VARCHAR(20)", Some("varchar(20)")),
            ("character varying ( 8 )", Some("varchar(8)")),
            ("NCHAR(3)", Some("char(3)")),
            ("DECIMAL(10,2)", Some("numeric(10,2)")),
            ("NUMERIC(7)", Some("numeric(7,0)")),
            ("NUMERIC", Some("numeric")),
            ("JSON", Some("json")),
            ("uuid", Some("uuid")),
            ("TINYINT", Some("smallint")),
            ("INTEGER", Some("integer")),
            ("BIGINT", Some("bigint")),
            ("DOUBLE PRECISION", Some("double")),
            ("CLOB", Some("text")),
            ("BLOB", Some("bytes")),
            ("", None),
            ("WHATEVER", None),
        ] {
            assert_eq!(hint(decl).as_deref(), h, "{decl}");
        }
    }
}

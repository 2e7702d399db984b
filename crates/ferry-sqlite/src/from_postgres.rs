//! PostgreSQL archives into SQLite: the documented mapping (`spec/types.md`, "PostgreSQL →
//! SQLite"). Values keep their meaning in the forms SQLite applications expect: ISO-8601 text
//! for dates and times, 0/1 for booleans, canonical text for UUIDs, JSON text for JSON,
//! arrays and composites, exact text for numerics. What SQLite cannot hold (functions,
//! PL/pgSQL triggers, exclusion constraints, materialized views, ...) is listed as skipped.
//!
//! Schemas: tables of the archive's only schema, or of `public`, keep their names; tables of
//! other schemas become `<schema>_<table>`. Every rename is reported.

use std::collections::{HashMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use ferry_archive::convert;
use ferry_archive::{LogicalType, Manifest, Table};
use rusqlite::types::Value;
use serde_json::{Value as Json, json};

use ferry_archive::facts::{Facts, PgColumnFacts, PgTableFacts};

use crate::quote;

pub(crate) mod ddl;

/// How one archived value becomes one SQLite value.
#[derive(Debug, Clone, PartialEq)]
pub enum Conv {
    Integer,
    Bool,
    Real,
    /// Exact decimal text (default) or REAL (`--numeric real`).
    Decimal {
        real: bool,
    },
    /// money's integer in the currency's smallest unit, as its amount: exact decimal text
    /// with `scale` fraction digits, or REAL (`--numeric real`).
    Money {
        scale: u32,
        real: bool,
    },
    Text,
    Blob,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    /// A PostgreSQL array literal as JSON, elements typed by the array's element type.
    ArrayJson {
        element: ElementKind,
    },
    /// A list (a one-dimensional array) as the same JSON array its literal would give.
    ListJson,
    /// A composite literal as a JSON object of its fields, each typed by its field's type
    /// (as `to_json()` gives it); a JSON array of the fields' texts when the archive does
    /// not name them.
    CompositeJson {
        fields: Option<Vec<(String, ElementKind)>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    Integer,
    Float,
    Bool,
    Text,
}

/// The PostgreSQL → SQLite mapping: (declared type, conversion). `spec/types.md` mirrors it.
pub fn decide(c: &ferry_archive::Column, numeric_real: bool) -> (String, Conv) {
    let hint = c.hint.as_deref().unwrap_or("");
    // Checked for shape before the import starts (`check_facts`).
    let facts = PgColumnFacts::read(&c.properties).unwrap_or_default();
    let pg_type = facts.pg_type.as_deref().unwrap_or("");
    let (decl, conv) = match &c.logical_type {
        LogicalType::Boolean => ("BOOLEAN".to_owned(), Conv::Bool),
        LogicalType::Int16 => ("SMALLINT".into(), Conv::Integer),
        LogicalType::Int32 => ("INTEGER".into(), Conv::Integer),
        LogicalType::Int64 if pg_type == "money" => {
            match facts.money_scale {
                Some(scale) if numeric_real => ("REAL".into(), Conv::Money { scale, real: true }),
                Some(scale) => ("TEXT".into(), Conv::Money { scale, real: false }),
                // Archives written before the scale was recorded: the raw integer.
                None => ("INTEGER".into(), Conv::Integer),
            }
        }
        LogicalType::Int64 => ("BIGINT".into(), Conv::Integer),
        LogicalType::Float32 | LogicalType::Float64 => ("REAL".into(), Conv::Real),
        LogicalType::Decimal { .. } | LogicalType::Numeric if numeric_real => {
            ("REAL".into(), Conv::Decimal { real: true })
        }
        // NUMERIC affinity would turn '12.50' into the REAL 12.5: exact text needs TEXT.
        LogicalType::Decimal { .. } | LogicalType::Numeric => {
            ("TEXT".into(), Conv::Decimal { real: false })
        }
        LogicalType::Text => match hint {
            // The length only: a hint is archive text, never spliced into DDL as it is.
            h if length_arg(h, "varchar").is_some() => (
                format!("VARCHAR({})", length_arg(h, "varchar").unwrap_or_default()),
                Conv::Text,
            ),
            h if length_arg(h, "char").is_some() => (
                format!("CHAR({})", length_arg(h, "char").unwrap_or_default()),
                Conv::Text,
            ),
            _ => ("TEXT".into(), Conv::Text),
        },
        LogicalType::Bytes => ("BLOB".into(), Conv::Blob),
        LogicalType::Date => ("DATE".into(), Conv::Date),
        LogicalType::Time => ("TIME".into(), Conv::Time),
        LogicalType::TimeTz => ("TIMETZ".into(), Conv::TimeTz),
        LogicalType::Timestamp => ("DATETIME".into(), Conv::Timestamp),
        LogicalType::TimestampTz => ("TIMESTAMPTZ".into(), Conv::TimestampTz),
        LogicalType::Interval => ("DURATION".into(), Conv::Interval),
        LogicalType::Uuid => ("UUID".into(), Conv::Uuid),
        // TEXT, not JSON: JSON would lend NUMERIC affinity, turning a bare `1.50` into 1.5.
        LogicalType::Json => ("TEXT".into(), Conv::Text),
        LogicalType::EngineText { type_name, .. } if type_name.ends_with("[]") => {
            let element = element_kind(type_name.trim_end_matches("[]"));
            ("TEXT".into(), Conv::ArrayJson { element })
        }
        // A domain over an array (`intlist`): its base type (`_int4`) says it is one, so it
        // is a JSON array whether the export carried it as a list or as its literal.
        LogicalType::EngineText { .. } if pg_type.starts_with('_') => {
            let element = element_kind(match &pg_type[1..] {
                "int2" => "smallint",
                "int4" => "integer",
                "int8" => "bigint",
                "float4" => "real",
                "float8" => "double precision",
                "bool" => "boolean",
                other => other,
            });
            ("TEXT".into(), Conv::ArrayJson { element })
        }
        LogicalType::EngineText { .. } if hint == "composite" => {
            let fields = facts.composite_fields.map(|fs| {
                fs.into_iter()
                    .map(|(name, ty)| {
                        let kind = element_kind(&ty);
                        (name, kind)
                    })
                    .collect()
            });
            ("TEXT".into(), Conv::CompositeJson { fields })
        }
        // Ranges, network, geometric, bit strings, text search, xml, ...: their own text,
        // under TEXT affinity so that nothing that looks like a number is converted.
        LogicalType::EngineText { .. } => ("TEXT".into(), Conv::Text),
        LogicalType::List { .. } => ("TEXT".into(), Conv::ListJson),
        LogicalType::SqliteValue => ("".into(), Conv::Text),
    };
    (decl, conv)
}

/// Checks the PostgreSQL exporter's facts in an archive for shape, before anything is
/// created: a damaged fact is an error naming its table and column, never a default.
pub fn check_facts(m: &Manifest) -> Result<(), (String, String)> {
    for t in &m.tables {
        PgTableFacts::read(&t.properties).map_err(|e| (t.display_name(), e))?;
        for c in &t.columns {
            PgColumnFacts::read(&c.properties)
                .map_err(|e| (format!("{}, column {}", t.display_name(), c.name), e))?;
        }
    }
    Ok(())
}

/// `n` of a `<kind>(n)` hint, when n is a number.
fn length_arg(hint: &str, kind: &str) -> Option<u32> {
    hint.strip_prefix(kind)?
        .strip_prefix('(')?
        .strip_suffix(')')?
        .trim()
        .parse()
        .ok()
}

/// How an array element or a composite field of a PostgreSQL type is typed in JSON.
fn element_kind(pg_type: &str) -> ElementKind {
    match pg_type {
        "smallint" | "integer" | "bigint" | "oid" => ElementKind::Integer,
        "real" | "double precision" => ElementKind::Float,
        "boolean" => ElementKind::Bool,
        _ => ElementKind::Text,
    }
}

/// Converts one value. Errors name the value; the caller names table, column and row.
pub fn value(conv: &Conv, lt: &LogicalType, a: &ArrayRef, r: usize) -> Result<Value, String> {
    if a.is_null(r) {
        return Ok(Value::Null);
    }
    let text = |s: String| Ok(Value::Text(s));
    match conv {
        Conv::Integer => Ok(Value::Integer(match lt {
            LogicalType::Int16 => a.as_primitive::<Int16Type>().value(r) as i64,
            LogicalType::Int32 => a.as_primitive::<Int32Type>().value(r) as i64,
            _ => a.as_primitive::<Int64Type>().value(r),
        })),
        Conv::Bool => Ok(Value::Integer(a.as_boolean().value(r) as i64)),
        Conv::Real => {
            let f = match lt {
                LogicalType::Float32 => a.as_primitive::<Float32Type>().value(r) as f64,
                _ => a.as_primitive::<Float64Type>().value(r),
            };
            // SQLite stores NaN as NULL; keep it visible as text instead.
            if f.is_nan() {
                text("NaN".into())
            } else {
                Ok(Value::Real(f))
            }
        }
        Conv::Decimal { real } => {
            let s = match lt {
                LogicalType::Decimal { scale, .. } => ferry_archive::convert::decimal_text(
                    a.as_primitive::<Decimal128Type>().value(r),
                    *scale,
                ),
                _ => a.as_string::<i32>().value(r).to_owned(),
            };
            if *real {
                match s.as_str() {
                    "NaN" => text(s),
                    "Infinity" => Ok(Value::Real(f64::INFINITY)),
                    "-Infinity" => Ok(Value::Real(f64::NEG_INFINITY)),
                    _ => Ok(Value::Real(
                        s.parse().map_err(|_| format!("{s} is not a number"))?,
                    )),
                }
            } else {
                text(s)
            }
        }
        Conv::Money { scale, real } => {
            let units = a.as_primitive::<Int64Type>().value(r);
            let s = ferry_archive::convert::decimal_text(units as i128, *scale as i8);
            if *real {
                Ok(Value::Real(
                    s.parse().map_err(|_| format!("{s} is not a number"))?,
                ))
            } else {
                text(s)
            }
        }
        Conv::Text => text(a.as_string::<i32>().value(r).to_owned()),
        Conv::Blob => Ok(Value::Blob(a.as_binary::<i32>().value(r).to_vec())),
        Conv::Date => {
            let d = a.as_primitive::<Date32Type>().value(r);
            text(match d {
                i32::MAX => "infinity".into(),
                i32::MIN => "-infinity".into(),
                d => convert::format_date(d),
            })
        }
        Conv::Time => text(convert::format_time(
            a.as_primitive::<Time64MicrosecondType>().value(r),
        )),
        Conv::TimeTz => {
            let s = a.as_struct();
            let t = s.column(0).as_primitive::<Time64MicrosecondType>().value(r);
            let off = s.column(1).as_primitive::<Int32Type>().value(r);
            let sign = if off < 0 { '-' } else { '+' };
            let off = off.unsigned_abs();
            let secs = if off % 60 != 0 {
                format!(":{:02}", off % 60)
            } else {
                String::new()
            };
            text(format!(
                "{}{sign}{:02}:{:02}{secs}",
                convert::format_time(t),
                off / 3600,
                off / 60 % 60
            ))
        }
        Conv::Timestamp | Conv::TimestampTz => {
            let v = a.as_primitive::<TimestampMicrosecondType>().value(r);
            text(match v {
                i64::MAX => "infinity".into(),
                i64::MIN => "-infinity".into(),
                v if *conv == Conv::TimestampTz => {
                    format!("{}Z", convert::format_timestamp(v).replacen(' ', "T", 1))
                }
                v => convert::format_timestamp(v),
            })
        }
        Conv::Interval => {
            let s = a.as_struct();
            text(convert::format_duration(
                s.column(0).as_primitive::<Int32Type>().value(r),
                s.column(1).as_primitive::<Int32Type>().value(r),
                s.column(2).as_primitive::<Int64Type>().value(r),
            ))
        }
        Conv::Uuid => text(convert::format_uuid(a.as_fixed_size_binary().value(r))),
        Conv::ArrayJson { element } => {
            let s = a.as_string::<i32>().value(r);
            let j = parse_array(s, *element).ok_or_else(|| {
                format!(
                    "{} is not an array literal",
                    ferry_archive::clip(&format!("{s:?}"))
                )
            })?;
            text(j.to_string())
        }
        Conv::ListJson => text(list_json(a, lt, r)?.to_string()),
        Conv::CompositeJson { fields } => {
            let s = a.as_string::<i32>().value(r);
            let j = parse_composite(s).ok_or_else(|| {
                format!(
                    "{} is not a composite literal",
                    ferry_archive::clip(&format!("{s:?}"))
                )
            })?;
            match (fields, j) {
                (Some(fields), Json::Array(values)) if fields.len() == values.len() => {
                    let object: serde_json::Map<String, Json> = fields
                        .iter()
                        .zip(values)
                        .map(|((name, kind), v)| {
                            let v = match v {
                                Json::String(raw) => typed(&raw, *kind, true),
                                other => other,
                            };
                            (name.clone(), v)
                        })
                        .collect();
                    text(Json::Object(object).to_string())
                }
                (_, j) => text(j.to_string()),
            }
        }
    }
}

/// Reads one element or sub-array of a PostgreSQL array literal.
fn parse_items(s: &[u8], i: &mut usize, element: ElementKind) -> Option<Json> {
    if s.get(*i) != Some(&b'{') {
        return None;
    }
    *i += 1;
    let mut out = Vec::new();
    loop {
        match s.get(*i)? {
            b'}' => {
                *i += 1;
                return Some(Json::Array(out));
            }
            b',' => *i += 1,
            b'{' => out.push(parse_items(s, i, element)?),
            b'"' => {
                *i += 1;
                let mut v = Vec::new();
                while *s.get(*i)? != b'"' {
                    if s[*i] == b'\\' {
                        *i += 1;
                    }
                    v.push(*s.get(*i)?);
                    *i += 1;
                }
                *i += 1;
                out.push(typed(&String::from_utf8_lossy(&v), element, true));
            }
            _ => {
                let start = *i;
                while !matches!(s.get(*i)?, b',' | b'}') {
                    *i += 1;
                }
                let raw = String::from_utf8_lossy(&s[start..*i]).trim().to_owned();
                out.push(typed(&raw, element, false));
            }
        }
    }
}

fn typed(raw: &str, element: ElementKind, quoted: bool) -> Json {
    if !quoted && raw.eq_ignore_ascii_case("NULL") {
        return Json::Null;
    }
    match element {
        ElementKind::Integer => raw
            .parse::<i64>()
            .map(Json::from)
            .unwrap_or_else(|_| json!(raw)),
        ElementKind::Float => match raw.parse::<f64>() {
            Ok(f) if f.is_finite() => json!(f),
            _ => json!(raw),
        },
        ElementKind::Bool => match raw {
            "t" => json!(true),
            "f" => json!(false),
            _ => json!(raw),
        },
        ElementKind::Text => json!(raw),
    }
}

/// List `r` of `a` as JSON, each element as [`typed`] makes it from PostgreSQL's literal:
/// numbers as numbers (a float PostgreSQL prints as NaN or Infinity as that text), booleans
/// as booleans, text as strings.
fn list_json(a: &ArrayRef, lt: &LogicalType, r: usize) -> Result<Json, String> {
    let LogicalType::List { element } = lt else {
        return Err(format!("a {} column is not a list", lt.display()));
    };
    let values = a.as_list::<i32>().value(r);
    let float = |f: f64| {
        if f.is_finite() {
            json!(f)
        } else if f.is_nan() {
            json!("NaN")
        } else if f > 0.0 {
            json!("Infinity")
        } else {
            json!("-Infinity")
        }
    };
    (0..values.len())
        .map(|i| {
            if values.is_null(i) {
                return Ok(Json::Null);
            }
            Ok(match element.as_ref() {
                LogicalType::Boolean => json!(values.as_boolean().value(i)),
                LogicalType::Int16 => json!(values.as_primitive::<Int16Type>().value(i)),
                LogicalType::Int32 => json!(values.as_primitive::<Int32Type>().value(i)),
                LogicalType::Int64 => json!(values.as_primitive::<Int64Type>().value(i)),
                // Through its shortest text, as PostgreSQL prints a real: 1.1, not 1.100000023841858.
                LogicalType::Float32 => {
                    let f = values.as_primitive::<Float32Type>().value(i);
                    float(f.to_string().parse::<f64>().unwrap_or(f as f64))
                }
                LogicalType::Float64 => float(values.as_primitive::<Float64Type>().value(i)),
                LogicalType::Text => json!(values.as_string::<i32>().value(i)),
                other => return Err(format!("a list of {} is not converted", other.display())),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Array)
}

/// True when the array value at `r` carries explicit bounds (`[0:2]={...}`), which only
/// arrays whose lower bound is not 1 do.
pub fn has_lower_bounds(a: &ArrayRef, r: usize) -> bool {
    !a.is_null(r) && a.as_string::<i32>().value(r).starts_with('[')
}

/// `{1,2}`, `{{a,b},{c,NULL}}` and `[0:2]={7,8,9}` (whose lower bound JSON cannot keep) as
/// JSON arrays.
pub fn parse_array(s: &str, element: ElementKind) -> Option<Json> {
    let body = match s.find("={") {
        Some(p) if s.starts_with('[') => &s[p + 1..],
        _ => s,
    };
    let mut i = 0;
    let v = parse_items(body.as_bytes(), &mut i, element)?;
    (i == body.len()).then_some(v)
}

/// `(1.5,-2,"a, b")` as `["1.5","-2","a, b"]`; an empty field is null.
pub fn parse_composite(s: &str) -> Option<Json> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    let b = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        if i >= b.len() || b[i] == b',' {
            out.push(Json::Null);
        } else if b[i] == b'"' {
            i += 1;
            let mut v = Vec::new();
            while i < b.len() {
                match b[i] {
                    b'"' if b.get(i + 1) == Some(&b'"') => {
                        v.push(b'"');
                        i += 2;
                    }
                    b'"' => {
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        v.push(*b.get(i + 1)?);
                        i += 2;
                    }
                    c => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            out.push(json!(String::from_utf8_lossy(&v)));
        } else {
            let start = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            out.push(json!(String::from_utf8_lossy(&b[start..i])));
        }
        if i >= b.len() {
            break;
        }
        i += 1; // the comma
        if i == b.len() {
            out.push(Json::Null);
            break;
        }
    }
    Some(Json::Array(out))
}

/// SQLite names for the archive's tables, by (schema, table).
pub fn table_names(m: &Manifest) -> (HashMap<(String, String), String>, Vec<String>) {
    let schemas: HashSet<&str> = m
        .tables
        .iter()
        .filter_map(|t| t.schema.as_deref())
        .collect();
    let single = schemas.len() <= 1;
    let mut used = HashSet::new();
    let mut names = HashMap::new();
    let mut notes = Vec::new();
    for t in &m.tables {
        let schema = t.schema.clone().unwrap_or_default();
        let mut name = if single || schema == "public" {
            t.name.clone()
        } else {
            format!("{schema}_{}", t.name)
        };
        // SQLite reserves every name that begins with `sqlite_` (pgloader copies SQLite's
        // sqlite_stat1 into PostgreSQL as an ordinary table, so such tables are common).
        if name.to_lowercase().starts_with("sqlite_") {
            name = format!("_{name}");
        }
        let base = name.clone();
        let mut n = 2;
        while !used.insert(name.to_lowercase()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        if name != t.name {
            notes.push(format!("table {schema}.{} is named {name}", t.name));
        }
        names.insert((schema, t.name.clone()), name);
    }
    (names, notes)
}

/// A SQLite table and, per loaded data field: (field index, column name, conversion).
pub type Load = (String, Vec<(usize, String, Conv)>);

/// How each archived table is loaded: into which SQLite table (partitions into the root of
/// their tree), and how each of its stored fields converts.
pub fn loads(
    m: &Manifest,
    names: &HashMap<(String, String), String>,
    numeric_real: bool,
) -> HashMap<String, Load> {
    m.tables
        .iter()
        .filter(|t| t.kind != "partitioned")
        .map(|t| {
            let owner = partition_parent(t, m).unwrap_or(t);
            let target =
                names[&(owner.schema.clone().unwrap_or_default(), owner.name.clone())].clone();
            let fields = t
                .data_fields()
                .iter()
                .enumerate()
                .filter_map(|(i, (name, _))| {
                    let col = t.columns.iter().find(|c| &c.name == name)?;
                    Some((i, name.clone(), decide(col, numeric_real).1))
                })
                .collect();
            (t.id.clone(), (target, fields))
        })
        .collect()
}

/// A table's SQLite name and its parent's, for partitions (whose rows go to the parent).
pub fn partition_parent<'a>(t: &Table, m: &'a Manifest) -> Option<&'a Table> {
    let mut root = direct_parent(t, m)?;
    // Sub-partitions: their rows go to the top of the tree.
    for _ in 0..32 {
        match direct_parent(root, m) {
            Some(up) => root = up,
            None => break,
        }
    }
    Some(root)
}

fn direct_parent<'a>(t: &Table, m: &'a Manifest) -> Option<&'a Table> {
    let facts = PgTableFacts::read(&t.properties).unwrap_or_default();
    let parent = facts.partition_of.as_deref()?;
    m.tables.iter().find(|p| {
        let s = p.schema.as_deref().unwrap_or("");
        parent == format!("{s}.{}", p.name)
            || parent == format!("{}.{}", quote(s), quote(&p.name))
            || parent == format!("{s}.{}", quote(&p.name))
            || parent == format!("{}.{}", quote(s), p.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_composites_become_json() {
        assert_eq!(
            parse_array("{1,NULL,3}", ElementKind::Integer)
                .unwrap()
                .to_string(),
            "[1,null,3]"
        );
        assert_eq!(
            parse_array("{{a,\"b c\"},{\"NULL\",NULL}}", ElementKind::Text)
                .unwrap()
                .to_string(),
            r#"[["a","b c"],["NULL",null]]"#
        );
        assert_eq!(
            parse_array("[0:2]={7,8,9}", ElementKind::Integer)
                .unwrap()
                .to_string(),
            "[7,8,9]"
        );
        assert_eq!(
            parse_array("{t,f}", ElementKind::Bool).unwrap().to_string(),
            "[true,false]"
        );
        assert_eq!(
            parse_array("{}", ElementKind::Text).unwrap().to_string(),
            "[]"
        );
        assert_eq!(
            parse_composite(r#"(1.5,-2,"a, b")"#).unwrap().to_string(),
            r#"["1.5","-2","a, b"]"#
        );
        assert_eq!(
            parse_composite("(,,)").unwrap().to_string(),
            "[null,null,null]"
        );
    }
}

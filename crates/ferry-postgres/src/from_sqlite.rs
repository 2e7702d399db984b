//! SQLite archives into PostgreSQL: the documented mapping (`spec/types.md`, "SQLite →
//! PostgreSQL"), decided per column from the declared type's hint and the value profile the
//! exporter measured, so that the target types are known before the first row arrives.
//!
//! [`decide`] is the mapping table. Every column that cannot take its natural type (a value
//! that does not convert) is widened to a type that holds every value and reported, or, with
//! `--strict`, refused before anything is written, naming rows and values.

use std::collections::HashMap;

use ferry_archive::convert::{self, EpochUnit};
use ferry_archive::facts::{Facts, SqliteColumnFacts, ValueProfile};
use ferry_archive::{Column, LogicalType};
use sha2::Digest;

mod ddl;
pub use ddl::{CrossPlan, Step, plan, target_tables};

/// How one SQLite value becomes one PostgreSQL field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Conv {
    Int2,
    Int4,
    Int8,
    Float8,
    /// Exact decimal from INTEGER, REAL (shortest round-trip form) or decimal TEXT.
    Numeric,
    /// TEXT as is; with `widen`, any class rendered as text.
    Text {
        widen: bool,
    },
    Bytea,
    Bool,
    Timestamp {
        unit: EpochUnit,
        zoned: bool,
    },
    Date {
        unit: EpochUnit,
    },
    Time,
    Jsonb,
    /// json (not jsonb): the text as is.
    Json,
    Float4,
    Uuid,
}

/// A column's target type and conversion, and why, for the report.
#[derive(Debug, Clone)]
pub struct Decision {
    pub pg_type: String,
    pub conv: Conv,
    pub note: Option<String>,
    /// Values that do not convert to the natural type (examples), for --strict.
    pub misfits: Vec<String>,
}

/// The column's value profile, as the SQLite exporter recorded it.
fn profile(c: &Column) -> Result<Option<ValueProfile>, String> {
    SqliteColumnFacts::read(&c.properties).map(|f| f.profile)
}

fn epoch_unit_of(p: Option<&ValueProfile>) -> EpochUnit {
    convert::epoch_unit(p.map_or(0, ValueProfile::integer_magnitude))
}

fn int_type_for(lo: i64, hi: i64) -> (&'static str, Conv) {
    if lo >= i16::MIN as i64 && hi <= i16::MAX as i64 {
        ("smallint", Conv::Int2)
    } else if lo >= i32::MIN as i64 && hi <= i32::MAX as i64 {
        ("integer", Conv::Int4)
    } else {
        ("bigint", Conv::Int8)
    }
}

fn wider(a: (&'static str, Conv), b: (&'static str, Conv)) -> (&'static str, Conv) {
    let rank = |c: Conv| match c {
        Conv::Int2 => 0,
        Conv::Int4 => 1,
        _ => 2,
    };
    if rank(a.1) >= rank(b.1) { a } else { b }
}

/// A decision without a note: the column's type and its conversion.
fn done(t: &str, conv: Conv) -> Decision {
    Decision {
        pg_type: t.to_owned(),
        conv,
        note: None,
        misfits: Vec::new(),
    }
}

/// The SQLite → PostgreSQL type mapping, rows 1 to 5 here (what is special about the column:
/// the rowid, NUL bytes, no values, several storage classes, values that do not fit the hint),
/// rows 6 to 26 in `by_hint`. `spec/types.md` mirrors them.
pub fn decide(c: &Column, rowid_alias: bool, strict: bool) -> Decision {
    let hint = c.hint.as_deref().unwrap_or("");
    let prof = match profile(c) {
        Ok(p) => p,
        Err(e) => {
            // Reported, and the column takes every value: a damaged profile must not guess.
            return Decision {
                pg_type: "text".into(),
                conv: Conv::Text { widen: true },
                note: Some(format!(
                    "its value profile is unreadable ({e}); loaded as text"
                )),
                misfits: if strict {
                    vec![format!("an unreadable value profile ({e})")]
                } else {
                    Vec::new()
                },
            };
        }
    };
    let p = prof.as_ref();
    let misfits = p.and_then(|p| p.hint_misfits).unwrap_or(0);
    let examples: Vec<String> = p
        .map(|p| {
            p.misfit_examples
                .iter()
                .map(|e| format!("{}: {}", e.row, e.value))
                .collect()
        })
        .unwrap_or_default();
    let has_profile = p.is_some();
    let widen = |why: String| Decision {
        pg_type: "text".into(),
        conv: Conv::Text { widen: true },
        note: Some(why),
        misfits: examples.clone(),
    };
    if rowid_alias {
        return done("bigint", Conv::Int8);
    }
    let with_nul = p.map_or(0, |p| p.text_with_nul);
    if with_nul > 0 {
        let mut d = done("bytea", Conv::Bytea);
        d.note = Some(format!(
            "{with_nul} value(s) contain NUL characters, which PostgreSQL text cannot hold; loaded as bytea (UTF-8 bytes)"
        ));
        if strict {
            d.misfits.push("text containing NUL characters".into());
        }
        return d;
    }
    // A column without a single value: its hint alone decides, nothing needs converting.
    let no_values = p.is_some_and(ValueProfile::no_values);
    if no_values {
        let t = match hint.split('(').next().unwrap_or("") {
            "boolean" => "boolean",
            "timestamp" => "timestamp without time zone",
            "timestamptz" => "timestamp with time zone",
            "date" => "date",
            "time" => "time without time zone",
            "json" => "jsonb",
            "uuid" => "uuid",
            _ => "",
        };
        if !t.is_empty() {
            return done(t, Conv::Text { widen: true });
        }
    }
    if c.logical_type == LogicalType::SqliteValue {
        let classes = serde_json::to_value(p.map(|p| &p.classes)).unwrap_or_default();
        let mut d = widen(format!(
            "holds several storage classes ({classes}); loaded as text"
        ));
        if strict {
            d.misfits = examples;
            if d.misfits.is_empty() {
                d.misfits.push(format!("storage classes {classes}"));
            }
        }
        return d;
    }
    if misfits > 0 {
        return widen(format!(
            "{misfits} value(s) do not convert to {hint} (e.g. {}); loaded as text",
            examples.first().map(String::as_str).unwrap_or("?")
        ));
    }
    let base = hint.split('(').next().unwrap_or("");
    by_hint(c, hint, base, p, has_profile, &widen)
}

/// Rows 6 to 26 of the table in spec/types.md ("Types"): with nothing special about the
/// column (rows 1 to 5, above), its hint and archived type decide its PostgreSQL type.
fn by_hint(
    c: &Column,
    hint: &str,
    base: &str,
    p: Option<&ValueProfile>,
    has_profile: bool,
    widen: &dyn Fn(String) -> Decision,
) -> Decision {
    match (base, &c.logical_type) {
        // Integers: wide enough for the declared type and for the data.
        ("smallint" | "integer" | "bigint", LogicalType::Int64) | ("", LogicalType::Int64) => {
            let declared = match base {
                "smallint" => ("smallint", Conv::Int2),
                "integer" => ("integer", Conv::Int4),
                _ => ("bigint", Conv::Int8),
            };
            let data = match (p.and_then(|p| p.integer_min), p.and_then(|p| p.integer_max)) {
                (Some(lo), Some(hi)) => int_type_for(lo, hi),
                _ if has_profile => ("smallint", Conv::Int2),
                _ => ("bigint", Conv::Int8),
            };
            let (t, conv) = wider(declared, data);
            done(t, conv)
        }
        ("double", LogicalType::Int64 | LogicalType::Float64) | ("", LogicalType::Float64) => {
            done("double precision", Conv::Float8)
        }
        ("numeric", _) => {
            let scale = p.map_or(0, |p| p.decimal_scale as i64);
            let int_digits = p.map_or(0, |p| p.decimal_int_digits as i64);
            match parse_ps(hint) {
                Some((p, s)) if has_profile && scale <= s && int_digits <= p - s => {
                    done(&format!("numeric({p},{s})"), Conv::Numeric)
                }
                Some(_) if has_profile => Decision {
                    note: Some(format!(
                        "values need {int_digits} integer and {scale} decimal digits, more than {hint} allows; loaded as numeric without a limit"
                    )),
                    ..done("numeric", Conv::Numeric)
                },
                _ => done("numeric", Conv::Numeric),
            }
        }
        ("boolean", LogicalType::Int64 | LogicalType::Text | LogicalType::Boolean)
            if has_profile =>
        {
            done("boolean", Conv::Bool)
        }
        ("timestamp" | "timestamptz", _) if has_profile => {
            let unit = epoch_unit_of(p);
            let zoned = base == "timestamptz";
            let mut d = done(
                if zoned {
                    "timestamp with time zone"
                } else {
                    "timestamp without time zone"
                },
                Conv::Timestamp { unit, zoned },
            );
            let forms = p.and_then(|p| p.date_forms.clone()).unwrap_or_default();
            if forms.epoch_integer > 0 {
                d.note = Some(format!(
                    "integer dates read as unix epoch {}",
                    if unit == EpochUnit::Millis {
                        "milliseconds"
                    } else {
                        "seconds"
                    }
                ));
            }
            if forms.julian_real > 0 {
                d.note = Some("real dates read as julian day numbers".into());
            }
            if !zoned && forms.iso_zoned > 0 {
                d.note = Some("text with a UTC offset converted to UTC".into());
            }
            d
        }
        ("date", _) if has_profile => done(
            "date",
            Conv::Date {
                unit: epoch_unit_of(p),
            },
        ),
        ("time", LogicalType::Text) if has_profile => done("time without time zone", Conv::Time),
        ("json", LogicalType::Text) if has_profile => done("jsonb", Conv::Jsonb),
        ("uuid", LogicalType::Text | LogicalType::Bytes) if has_profile => done("uuid", Conv::Uuid),
        ("varchar" | "char", LogicalType::Text) => {
            let n = parse_ps(hint).map(|(p, _)| p).unwrap_or(0);
            match p.map(|p| p.text_max_chars as i64) {
                Some(m) if n > 0 && m <= n => done(
                    &format!("character varying({n})"),
                    Conv::Text { widen: false },
                ),
                Some(m) if n > 0 => Decision {
                    note: Some(format!(
                        "longest value has {m} characters, more than {hint}; loaded as text"
                    )),
                    ..done("text", Conv::Text { widen: false })
                },
                _ => done("text", Conv::Text { widen: false }),
            }
        }
        (_, LogicalType::Text) => done("text", Conv::Text { widen: false }),
        (_, LogicalType::Bytes) => done("bytea", Conv::Bytea),
        (_, LogicalType::Int64) => done("bigint", Conv::Int8),
        (_, LogicalType::Boolean) => done("boolean", Conv::Bool),
        (_, LogicalType::Float64) => done("double precision", Conv::Float8),
        (h, other) => widen(format!(
            "no mapping for hint {h:?} with values of type {}; loaded as text",
            other.display()
        )),
    }
}

/// The integer type names are a closed set; map them back to static strings.
fn leak(t: &str) -> &'static str {
    match t {
        "smallint" => "smallint",
        "integer" => "integer",
        _ => "bigint",
    }
}

fn parse_ps(hint: &str) -> Option<(i64, i64)> {
    let inner = hint.split_once('(')?.1.trim_end_matches(')');
    let mut it = inner.split(',').map(|x| x.trim().parse::<i64>().ok());
    let p = it.next()??;
    let s = it.next().flatten().unwrap_or(0);
    Some((p, s))
}

/// For `--data-only`: how a SQLite value goes into an existing column of the given type
/// (after domains). `None` when ferry has no conversion into that type.
pub fn conv_for_existing(base_name: &str, c: &Column) -> Option<Conv> {
    let unit = epoch_unit_of(profile(c).ok().flatten().as_ref());
    Some(match base_name {
        "int2" => Conv::Int2,
        "int4" => Conv::Int4,
        "int8" => Conv::Int8,
        "float4" => Conv::Float4,
        "float8" => Conv::Float8,
        "numeric" => Conv::Numeric,
        "text" | "varchar" | "bpchar" | "citext" | "name" => Conv::Text { widen: true },
        "bytea" => Conv::Bytea,
        "bool" => Conv::Bool,
        "timestamp" => Conv::Timestamp { unit, zoned: false },
        "timestamptz" => Conv::Timestamp { unit, zoned: true },
        "date" => Conv::Date { unit },
        "time" => Conv::Time,
        "json" => Conv::Json,
        "jsonb" => Conv::Jsonb,
        "uuid" => Conv::Uuid,
        _ => return None,
    })
}

/// PostgreSQL identifiers for SQLite names: lower-cased when that creates no clash among
/// siblings (so unquoted SQL keeps working), shortened past 63 bytes with a hash suffix.
pub fn pg_names<'a>(names: impl Iterator<Item = &'a str> + Clone) -> HashMap<String, String> {
    let lowered: Vec<String> = names.clone().map(str::to_lowercase).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for l in &lowered {
        *seen.entry(l.as_str()).or_default() += 1;
    }
    names
        .zip(&lowered)
        .map(|(n, l)| {
            let base = if seen[l.as_str()] == 1 {
                l.clone()
            } else {
                n.to_owned()
            };
            (n.to_owned(), shorten(&base))
        })
        .collect()
}

/// Deterministic, collision-resistant shortening to PostgreSQL's 63-byte limit.
pub fn shorten(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_owned();
    }
    let hash = hex::encode(&sha2::Sha256::digest(name.as_bytes())[..4]);
    let mut cut = 54;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash}", &name[..cut])
}

/// The moments SQLite's spellings of "now" read; each is one value however it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Now {
    Timestamp,
    Local,
    Date,
    Time,
    Epoch,
}

/// Which "now" a SQLite expression is, from its printed form lower-cased without spaces
/// (`DATETIME('NOW')` and `CURRENT_TIMESTAMP` alike), or `None` for anything else.
fn sqlite_now(norm: &str) -> Option<Now> {
    Some(match norm {
        "current_timestamp" | "datetime('now')" => Now::Timestamp,
        "datetime('now','localtime')" => Now::Local,
        "current_date" | "date('now')" => Now::Date,
        "current_time" | "time('now')" => Now::Time,
        "strftime('%s','now')" | "unixepoch()" | "unixepoch('now')" => Now::Epoch,
        _ => return None,
    })
}

/// The expression's printed form and its [`sqlite_now`] key: lower-cased without spaces,
/// except that a `strftime` format keeps its case, since `%S` (seconds) is not `%s` (the
/// epoch) and `%F` (the date) is not `%f` (seconds with milliseconds).
fn read_default(expr: &str) -> Option<(ferry_sql::translate::Default, String)> {
    let d = ferry_sql::translate::default_to_pg(expr, "default").ok()?;
    let spaced = d.printed.replace(' ', "");
    let mut norm = spaced.to_ascii_lowercase();
    if norm.starts_with("strftime('") {
        let at = "strftime('".len();
        if let Some(end) = spaced[at..].find('\'') {
            norm.replace_range(at..at + end, &spaced[at..at + end]);
        }
    }
    Some((d, norm))
}

/// The unit a `strftime` format's finest field has, as `date_trunc` names it: SQLite's
/// string of "now" holds nothing finer, so neither does the timestamp made of it.
fn strftime_unit(format: &str) -> &'static str {
    let has = |fields: &[&str]| fields.iter().any(|f| format.contains(f));
    if has(&["%f", "%J"]) {
        "milliseconds"
    } else if has(&["%S", "%T", "%s"]) {
        "second"
    } else if has(&["%M", "%R"]) {
        "minute"
    } else if has(&["%H", "%I", "%k", "%l"]) {
        "hour"
    } else {
        "day"
    }
}

/// The precision of `strftime(<format>, <now>)`, when the expression is one: its format's
/// finest field, no finer than the "now" it reads. `'now'` has milliseconds;
/// `CURRENT_TIMESTAMP` and `datetime('now')` are text with whole seconds, so GeoPackage's
/// `strftime('%Y-%m-%dT%H:%M:%fZ', CURRENT_TIMESTAMP)` always prints `.000`.
fn strftime_now_unit(norm: &str) -> Option<&'static str> {
    if !norm.starts_with("strftime(") {
        return None;
    }
    let whole_seconds = [",current_timestamp)", ",datetime('now'))"]
        .iter()
        .any(|now| norm.ends_with(now));
    if !whole_seconds && !norm.ends_with(",'now')") {
        return None;
    }
    Some(match strftime_unit(norm) {
        "milliseconds" if whole_seconds => "second",
        unit => unit,
    })
}

/// Whether two SQLite expressions that set a column are the same value: the same text, or
/// the same "now" spelled two ways (`CURRENT_TIMESTAMP` beside `DATETIME('NOW')`, as
/// SQLite's own docs use both). Anything else compares as written, as `'A'` and `'a'` are
/// different values.
pub fn same_sqlite_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (read_default(a), read_default(b)) {
        (Some((_, x)), Some((_, y))) => sqlite_now(&x).is_some_and(|n| sqlite_now(&y) == Some(n)),
        _ => false,
    }
}

/// A SQLite default expression in PostgreSQL, for a column of the given target type and
/// conversion; `None` when it does not parse (the caller reports it; it is never copied as
/// a string). The expression is read on the syntax tree, so `DEFAULT "isbn"` is the string
/// `'isbn'`, as SQLite reads it, and a literal cannot break out of its quotes.
pub fn translate_default(expr: &str, pg_type: &str, conv: Conv) -> Option<String> {
    let (d, norm) = read_default(expr)?;
    let printed = d.printed.clone();
    let is_ts = pg_type.starts_with("timestamp");
    let zoned = pg_type == "timestamp with time zone";
    let now_utc = "(now() AT TIME ZONE 'UTC')";
    // SQLite's "now" in a timestamp keeps whole seconds (datetime() and CURRENT_TIMESTAMP
    // print no fraction, and drop it rather than round); PostgreSQL's has microseconds. A
    // default or touch that stored more than SQLite would differs from the rows already
    // there (`created_at = '2024-01-02 03:04:05'` stops matching new rows), so the value is
    // truncated as SQLite's is. A cast to `timestamp(0)` would round instead.
    let secs = |of: &str| format!("date_trunc('second', {of})");
    // The moment in the column's own type: a zoned column takes the instant itself, as a
    // UTC wall-clock time would be read in the session's zone.
    let moment = if zoned {
        "CURRENT_TIMESTAMP"
    } else {
        "now() AT TIME ZONE 'UTC'"
    };
    let now_text = |fmt: &str| format!("to_char({now_utc}, '{fmt}')");
    // Any other strftime of "now" means "now" in some text format. For a timestamp column
    // the format no longer matters, but its precision does (see [`strftime_now_unit`]).
    if is_ts
        && sqlite_now(&norm).is_none()
        && let Some(unit) = strftime_now_unit(&norm)
    {
        // A zoned column truncates the instant in UTC, as SQLite's UTC text was: in the
        // session's zone a day or an hour starts elsewhere (half-hour zones for hours).
        return Some(if zoned && matches!(unit, "day" | "hour") {
            format!("date_trunc('{unit}', CURRENT_TIMESTAMP, 'UTC')")
        } else {
            format!("date_trunc('{unit}', {moment})")
        });
    }
    let out = match sqlite_now(&norm) {
        Some(Now::Timestamp) => {
            if is_ts {
                secs(moment)
            } else {
                now_text("YYYY-MM-DD HH24:MI:SS")
            }
        }
        Some(Now::Local) => {
            if is_ts {
                secs("LOCALTIMESTAMP")
            } else {
                "to_char(LOCALTIMESTAMP, 'YYYY-MM-DD HH24:MI:SS')".into()
            }
        }
        Some(Now::Date) => {
            if pg_type == "date" {
                format!("({now_utc})::date")
            } else if zoned {
                // Midnight UTC of today: a date cast to timestamptz would be the session's
                // midnight instead.
                "date_trunc('day', CURRENT_TIMESTAMP, 'UTC')".into()
            } else if is_ts {
                // Midnight (UTC) of today, as a UTC wall-clock time.
                format!("(({now_utc})::date)::{pg_type}")
            } else {
                now_text("YYYY-MM-DD")
            }
        }
        Some(Now::Time) => {
            if pg_type.starts_with("time ") {
                format!("({})::time", secs("now() AT TIME ZONE 'UTC'"))
            } else {
                now_text("HH24:MI:SS")
            }
        }
        // An epoch column converted to timestamps takes the moment, as its values did.
        Some(Now::Epoch) if is_ts => secs(moment),
        Some(Now::Epoch) if pg_type == "date" => format!("({now_utc})::date"),
        // unixepoch() drops the fraction; a cast to bigint would round it.
        Some(Now::Epoch) => "(floor(extract(epoch from now())))::bigint".into(),
        None if norm == "null" => "NULL".into(),
        _ => {
            let (number, text) = (d.number, d.text);
            if pg_type == "boolean" {
                let word = number.clone().or(text.clone()).unwrap_or(norm.clone());
                return match word.to_ascii_lowercase().as_str() {
                    "0" | "false" | "f" => Some("false".into()),
                    "1" | "true" | "t" => Some("true".into()),
                    _ => None,
                };
            }
            match (conv, &number) {
                // An epoch default follows its column, which holds timestamps now.
                (Conv::Timestamp { unit, zoned }, Some(n)) => {
                    let secs = match unit {
                        EpochUnit::Seconds => n.clone(),
                        EpochUnit::Millis => format!("({n}) / 1000.0"),
                    };
                    if zoned {
                        format!("to_timestamp({secs})")
                    } else {
                        format!("(to_timestamp({secs}) AT TIME ZONE 'UTC')")
                    }
                }
                (Conv::Date { unit }, Some(n)) => {
                    let secs = match unit {
                        EpochUnit::Seconds => n.clone(),
                        EpochUnit::Millis => format!("({n}) / 1000.0"),
                    };
                    format!("(to_timestamp({secs}) AT TIME ZONE 'UTC')::date")
                }
                (_, Some(n)) => n.clone(),
                // Anything else is printed from the tree; PostgreSQL may still refuse it
                // for the column's type, which the import reports.
                _ => printed,
            }
        }
    };
    Some(out)
}

/// One SQLite value: the archive's own reader's (`ferry_archive::sqlite_value`), so that
/// this importer and the SQLite one read a field the same way.
pub use ferry_archive::sqlite_value::SqliteValue as SqlVal;

/// A table's load plan: target names and one conversion per loaded data field.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The target table, quoted and qualified.
    pub target: String,
    /// Its schema and name, unquoted.
    pub schema: String,
    pub name: String,
    /// (data field index, quoted target column, conversion)
    pub fields: Vec<(usize, String, Conv)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgbinary::as_text;
    use bytes::BytesMut;
    use serde_json::Value;
    use serde_json::json;

    fn col(hint: &str, lt: LogicalType, profile: Value) -> Column {
        let mut c = Column::new("c", lt, true);
        c.hint = (!hint.is_empty()).then(|| hint.to_owned());
        c.properties.insert("profile".into(), profile);
        c
    }

    /// An index may leave its table's ordered builds only under a name no unnamed key can
    /// be given (`t_pkey`, `t_a_key`, `t_pkey1`, ...).
    #[test]
    fn only_indexes_no_key_could_be_named_like_run_apart() {
        for name in ["events_kind", "idx_users_email", "keys", "key_2x"] {
            assert!(ddl::names_itself(name), "{name}");
        }
        for name in [
            "t_pkey",
            "t_pkey1",
            "users_email_key",
            "USERS_EMAIL_KEY12",
            "monkey",
        ] {
            assert!(!ddl::names_itself(name), "{name}");
        }
    }

    /// One case per row of `decide`.
    #[test]
    fn mapping_rows() {
        let ints = json!({"integer_min": -5, "integer_max": 40000, "hint_misfits": 0});
        let cases = [
            (col("integer", LogicalType::Int64, ints.clone()), "integer"),
            (col("smallint", LogicalType::Int64, ints.clone()), "integer"),
            (col("bigint", LogicalType::Int64, ints.clone()), "bigint"),
            (col("", LogicalType::Int64, ints), "bigint"),
            (
                col("double", LogicalType::Float64, json!({})),
                "double precision",
            ),
            (
                col(
                    "numeric(10,2)",
                    LogicalType::Float64,
                    json!({"decimal_scale": 2, "decimal_int_digits": 5}),
                ),
                "numeric(10,2)",
            ),
            (
                col(
                    "numeric(4,1)",
                    LogicalType::Float64,
                    json!({"decimal_scale": 3, "decimal_int_digits": 1}),
                ),
                "numeric",
            ),
            (
                col("boolean", LogicalType::Int64, json!({"hint_misfits": 0})),
                "boolean",
            ),
            (
                col("timestamp", LogicalType::Text, json!({"date_forms": {}})),
                "timestamp without time zone",
            ),
            (col("date", LogicalType::Text, json!({})), "date"),
            (
                col("time", LogicalType::Text, json!({})),
                "time without time zone",
            ),
            (col("json", LogicalType::Text, json!({})), "jsonb"),
            (col("uuid", LogicalType::Text, json!({})), "uuid"),
            (
                col(
                    "varchar(20)",
                    LogicalType::Text,
                    json!({"text_max_chars": 20}),
                ),
                "character varying(20)",
            ),
            (
                col(
                    "varchar(20)",
                    LogicalType::Text,
                    json!({"text_max_chars": 21}),
                ),
                "text",
            ),
            (
                col("char(3)", LogicalType::Text, json!({"text_max_chars": 3})),
                "character varying(3)",
            ),
            (col("text", LogicalType::Text, json!({})), "text"),
            (col("bytes", LogicalType::Bytes, json!({})), "bytea"),
            (
                col(
                    "",
                    LogicalType::SqliteValue,
                    json!({"classes": {"integer": 1, "text": 1}}),
                ),
                "text",
            ),
            (
                col(
                    "integer",
                    LogicalType::Text,
                    json!({"hint_misfits": 2, "misfit_examples": [{"row": "rowid 3", "value": "'abc'"}]}),
                ),
                "text",
            ),
        ];
        for (c, want) in cases {
            assert_eq!(
                decide(&c, false, false).pg_type,
                want,
                "{:?} {:?}",
                c.hint,
                c.logical_type
            );
        }
        let strict = decide(
            &col(
                "integer",
                LogicalType::Text,
                json!({"hint_misfits": 1, "misfit_examples": [{"row": "rowid 3", "value": "'abc'"}]}),
            ),
            false,
            true,
        );
        assert_eq!(strict.misfits, ["rowid 3: 'abc'"]);
    }

    #[test]
    fn defaults_translate_or_are_refused() {
        let ts = "timestamp without time zone";
        const T: Conv = Conv::Timestamp {
            unit: EpochUnit::Seconds,
            zoned: false,
        };
        const X: Conv = Conv::Text { widen: false };
        assert_eq!(
            translate_default("CURRENT_TIMESTAMP", ts, T).as_deref(),
            Some("date_trunc('second', now() AT TIME ZONE 'UTC')")
        );
        assert_eq!(
            translate_default("(datetime('now'))", ts, T).as_deref(),
            Some("date_trunc('second', now() AT TIME ZONE 'UTC')")
        );
        assert_eq!(
            translate_default("datetime('now', 'localtime')", ts, T).as_deref(),
            Some("date_trunc('second', LOCALTIMESTAMP)")
        );
        assert_eq!(
            translate_default("strftime('%Y-%m-%d %H:%M:%S', 'now')", ts, T).as_deref(),
            Some("date_trunc('second', now() AT TIME ZONE 'UTC')")
        );
        assert_eq!(
            translate_default("strftime('%Y-%m-%d %H:%M:%f', 'now')", ts, T).as_deref(),
            Some("date_trunc('milliseconds', now() AT TIME ZONE 'UTC')")
        );
        let tz = "timestamp with time zone";
        const Z: Conv = Conv::Timestamp {
            unit: EpochUnit::Seconds,
            zoned: true,
        };
        assert_eq!(
            translate_default("CURRENT_TIMESTAMP", tz, Z).as_deref(),
            Some("date_trunc('second', CURRENT_TIMESTAMP)")
        );
        assert_eq!(
            translate_default("strftime('%Y-%m-%dT%H:%M:%S', 'now')", tz, Z).as_deref(),
            Some("date_trunc('second', CURRENT_TIMESTAMP)"),
            "an instant, not a UTC wall-clock time read in the session's zone"
        );
        assert_eq!(
            translate_default("unixepoch()", "bigint", Conv::Int8).as_deref(),
            Some("(floor(extract(epoch from now())))::bigint")
        );
        assert_eq!(
            translate_default(
                "CURRENT_DATE",
                "date",
                Conv::Date {
                    unit: EpochUnit::Seconds
                }
            )
            .as_deref(),
            Some("((now() AT TIME ZONE 'UTC'))::date")
        );
        assert_eq!(
            translate_default("0", "boolean", Conv::Bool).as_deref(),
            Some("false")
        );
        assert_eq!(translate_default("'x'", "text", X).as_deref(), Some("'x'"));
        assert_eq!(
            translate_default("1.5", "double precision", Conv::Float8).as_deref(),
            Some("1.5")
        );
        assert_eq!(
            translate_default("random()", "bigint", Conv::Int8).as_deref(),
            Some("random()"),
            "printed from the tree; PostgreSQL decides"
        );
        assert_eq!(
            translate_default("1); DROP TABLE x; --", "bigint", Conv::Int8),
            None
        );
        assert_eq!(
            translate_default("'null'", "text", X).as_deref(),
            Some("'null'")
        );
        // SQLite reads a double-quoted name with no column in scope as a string.
        assert_eq!(
            translate_default("\"isbn\"", "text", X).as_deref(),
            Some("'isbn'")
        );
        assert_eq!(translate_default("\"\"", "text", X).as_deref(), Some("''"));
        assert_eq!(
            translate_default("\"{}\"", "jsonb", Conv::Jsonb).as_deref(),
            Some("'{}'")
        );
        assert_eq!(
            translate_default("current_date", ts, T).as_deref(),
            Some("(((now() AT TIME ZONE 'UTC'))::date)::timestamp without time zone")
        );
        assert_eq!(
            translate_default("0", ts, T).as_deref(),
            Some("(to_timestamp(0) AT TIME ZONE 'UTC')")
        );
    }

    #[test]
    fn a_strftime_format_keeps_its_case_and_its_precision() {
        let ts = "timestamp without time zone";
        const T: Conv = Conv::Timestamp {
            unit: EpochUnit::Seconds,
            zoned: false,
        };
        let now = |unit: &str| format!("date_trunc('{unit}', now() AT TIME ZONE 'UTC')");
        for (format, unit) in [
            ("%Y-%m-%d %H:%M:%S", "second"),
            ("%F %T", "second"),
            ("%Y-%m-%dT%H:%M:%f", "milliseconds"),
            ("%Y-%m-%d %H:%M", "minute"),
            ("%Y-%m-%d", "day"),
        ] {
            assert_eq!(
                translate_default(&format!("strftime('{format}', 'now')"), ts, T),
                Some(now(unit)),
                "{format}"
            );
        }
        // GeoPackage's default: the fraction of CURRENT_TIMESTAMP is always zero.
        for now_arg in ["CURRENT_TIMESTAMP", "datetime('now')"] {
            assert_eq!(
                translate_default(&format!("strftime('%Y-%m-%dT%H:%M:%fZ',{now_arg})"), ts, T),
                Some(now("second")),
                "{now_arg}"
            );
        }
        assert_eq!(
            translate_default("strftime('%Y-%m-%d', CURRENT_TIMESTAMP)", ts, T),
            Some(now("day"))
        );
        // %S is the seconds of the minute, %s the epoch.
        assert!(!same_sqlite_value("strftime('%S', 'now')", "unixepoch()"));
        assert!(same_sqlite_value("STRFTIME('%s', 'NOW')", "unixepoch()"));
        assert_eq!(
            translate_default("strftime('%S', 'now')", "bigint", Conv::Int8).as_deref(),
            Some("strftime('%S', 'now')"),
            "not the epoch: printed, for PostgreSQL to refuse"
        );
        // An epoch column converted to timestamps takes the moment.
        assert_eq!(translate_default("unixepoch()", ts, T), Some(now("second")));
    }

    #[test]
    fn one_now_is_the_same_value_however_it_is_spelled() {
        assert!(same_sqlite_value("CURRENT_TIMESTAMP", "DATETIME('NOW')"));
        assert!(same_sqlite_value("datetime( 'now' )", "current_timestamp"));
        assert!(same_sqlite_value("unixepoch()", "strftime('%s', 'now')"));
        assert!(!same_sqlite_value("CURRENT_TIMESTAMP", "CURRENT_DATE"));
        assert!(!same_sqlite_value(
            "datetime('now')",
            "datetime('now', 'localtime')"
        ));
        // Only "now" is compared by meaning: other values as written.
        assert!(!same_sqlite_value("'A'", "'a'"));
        assert!(same_sqlite_value("'a'", "'a'"));
        assert!(!same_sqlite_value("1); DROP TABLE t; --", "1"));
    }

    #[test]
    fn names_fold_and_shorten_deterministically() {
        let n = pg_names(["Users", "orders", "Order", "ORDER"].into_iter());
        assert_eq!(n["Users"], "users");
        assert_eq!(n["Order"], "Order", "case clash: kept as written");
        assert_eq!(n["ORDER"], "ORDER");
        let long = "x".repeat(80);
        let s = shorten(&long);
        assert!(s.len() <= 63);
        assert_eq!(s, shorten(&long));
        assert_ne!(s, shorten(&format!("{long}y")));
    }

    #[test]
    fn conversions() {
        let mut b = BytesMut::new();
        Conv::Timestamp {
            unit: EpochUnit::Millis,
            zoned: false,
        }
        .put(SqlVal::Integer(1_700_000_000_123), &mut b)
        .unwrap();
        assert_eq!(b.len(), 12);
        assert!(
            Conv::Bool
                .put(SqlVal::Integer(2), &mut BytesMut::new())
                .is_err()
        );
        assert!(
            Conv::Int2
                .put(SqlVal::Integer(70000), &mut BytesMut::new())
                .is_err()
        );
        assert_eq!(as_text(SqlVal::Real(0.1)).as_deref(), Some("0.1"));
        assert_eq!(as_text(SqlVal::Blob(&[1, 255])).as_deref(), Some("\\x01ff"));
    }
}

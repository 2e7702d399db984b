//! spec/types.md against the code, row by row. Each test reads one mapping table from the
//! spec, builds the input its row describes and asks the code what it does with it. A row
//! added to the spec without a case here fails ("no check for row …"), and so does a code
//! change that the spec does not follow.

use ferry_archive::{Column, LogicalType};
use ferry_postgres::from_sqlite::{self, Conv};
use ferry_postgres::types::{TypeInfo, logical, wire};
use serde_json::{Value, json};

const SPEC: &str = include_str!("../../spec/types.md");

/// The rows of the first table after the line `heading`, as trimmed cells.
fn table(heading: &str) -> Vec<Vec<String>> {
    let mut lines = SPEC.lines().skip_while(|l| l.trim() != heading).skip(1);
    let rows: Vec<Vec<String>> = lines
        .by_ref()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(cells)
        .collect();
    assert!(rows.len() > 2, "spec/types.md: no table after {heading:?}");
    rows.into_iter().skip(2).collect() // header and separator
}

/// Splits a table row on `|` outside backticks.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut tick = false;
    for c in line.trim().trim_matches('|').chars() {
        match c {
            '`' => {
                tick = !tick;
                cur.push(c);
            }
            '|' if !tick => out.push(std::mem::take(&mut cur).trim().to_owned()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_owned());
    out
}

/// The backticked items of a cell.
fn ticks(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// A cell without its notes: parenthesised text after a space, outside backticks.
fn without_notes(cell: &str) -> String {
    let mut out = String::new();
    let (mut tick, mut depth) = (false, 0);
    let mut prev = ' ';
    for c in cell.chars() {
        match c {
            '`' if depth == 0 => {
                tick = !tick;
                out.push(c);
            }
            '(' if !tick && (depth > 0 || prev == ' ') => depth += 1,
            ')' if !tick && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
        prev = c;
    }
    out
}

/// The expected value for input `i` of `n`: one expectation per input, or one for all.
fn nth(expected: &[String], i: usize, n: usize, row: &str) -> String {
    match expected.len() {
        1 => expected[0].clone(),
        m if m == n => expected[i].clone(),
        m => panic!("row {row:?}: {n} inputs but {m} expected values"),
    }
}

fn conv_name(c: &Conv) -> String {
    match c {
        Conv::Text { widen: true } => "widened text".into(),
        other => {
            let d = format!("{other:?}");
            d.split([' ', '{']).next().unwrap_or_default().to_owned()
        }
    }
}

#[test]
fn sqlite_declared_type_hints() {
    for row in table("### Declared-type hints") {
        let hints = ticks(&row[1]);
        for decl in ticks(&row[0]) {
            let one_arg = decl.contains("(p)");
            let sub = |s: &str| {
                s.replace("(n)", "(20)")
                    .replace("(p,s)", "(10,2)")
                    .replace("(p,0)", "(10,0)")
                    .replace("(p)", "(10)")
            };
            let want = match hints.as_slice() {
                [one] => sub(one),
                many if one_arg => sub(many
                    .iter()
                    .find(|h| h.contains(",0"))
                    .expect("a (p,0) hint")),
                many => sub(&many[0]),
            };
            assert_eq!(
                ferry_sqlite::types::hint(&sub(&decl)).as_deref(),
                Some(want.as_str()),
                "declared type {decl}"
            );
        }
    }
}

fn pg(name: &str) -> TypeInfo {
    TypeInfo {
        formatted: name.to_owned(),
        base_schema: "pg_catalog".into(),
        base_name: name.to_owned(),
        base_kind: 'b',
        is_array: false,
        element: None,
        typmod: -1,
    }
}

/// An array of `element` (a `pg_catalog` base type).
fn pg_array(element: &str) -> TypeInfo {
    TypeInfo {
        is_array: true,
        element: Some(element.to_owned()),
        ..pg(&format!("_{element}"))
    }
}

#[test]
fn postgresql_mapping() {
    for row in table("### Mapping") {
        let label = row[0].as_str();
        let inputs: Vec<TypeInfo> = match label {
            "boolean" => vec![pg("bool")],
            "smallint / integer / bigint" => vec![pg("int2"), pg("int4"), pg("int8")],
            "real / double precision" => vec![pg("float4"), pg("float8")],
            "numeric(p,s), 1<=p<=38, 0<=s<=p, no NaN" => vec![TypeInfo {
                typmod: ((10 << 16) | 2) + 4,
                ..pg("numeric")
            }],
            "numeric otherwise" => vec![pg("numeric")],
            "text, varchar(n), char(n), name" => {
                vec![pg("text"), pg("varchar"), pg("bpchar"), pg("name")]
            }
            "enum" => vec![TypeInfo {
                base_kind: 'e',
                base_schema: "public".into(),
                ..pg("mood")
            }],
            "bytea" | "date" | "interval" | "uuid" | "money" | "oid" => vec![pg(label)],
            "time / time with time zone" => vec![pg("time"), pg("timetz")],
            "timestamp / timestamp with time zone" => vec![pg("timestamp"), pg("timestamptz")],
            "json / jsonb" => vec![pg("json"), pg("jsonb")],
            l if l.starts_with("array of") => [
                "bool", "int2", "int4", "int8", "float4", "float8", "text", "varchar", "bpchar",
                "name",
            ]
            .map(pg_array)
            .to_vec(),
            l if l.starts_with("anything else") => vec![
                pg_array("numeric"),
                pg_array("date"),
                TypeInfo {
                    is_array: true,
                    element: None,
                    ..pg("_mytype")
                },
                TypeInfo {
                    base_kind: 'c',
                    ..pg("address")
                },
                TypeInfo {
                    base_kind: 'r',
                    ..pg("int4range")
                },
                pg("inet"),
                pg("bit"),
                pg("tsvector"),
                pg("point"),
                pg("xml"),
                TypeInfo {
                    base_schema: "public".into(),
                    ..pg("citext")
                },
            ],
            other => panic!("no check for spec row {other:?}"),
        };
        let expand = |cell: &str| -> Vec<String> {
            let cell = cell.trim();
            if cell == "Timestamp(Tz)" {
                return vec!["Timestamp".into(), "TimestampTz".into()];
            }
            let parts: Vec<&str> = cell.split('/').map(str::trim).collect();
            let first = parts[0];
            let stem = first.trim_end_matches(|c: char| c.is_ascii_digit());
            parts
                .iter()
                .map(|p| {
                    if p.chars().all(|c| c.is_ascii_digit()) {
                        format!("{stem}{p}")
                    } else {
                        p.to_string()
                    }
                })
                .collect()
        };
        let wires = expand(&row[1]);
        let logicals: Vec<String> = row[2]
            .split(" / ")
            .map(|l| {
                l.split(['(', ' '])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .collect();
        let n = inputs.len();
        for (i, t) in inputs.iter().enumerate() {
            let w = wire(t);
            assert_eq!(
                format!("{w:?}"),
                nth(&wires, i, n, label),
                "{label}: {}",
                t.base_name
            );
            let lt = serde_json::to_value(logical(w, t, false)).unwrap();
            if let Some(e) = &t.element
                && lt["kind"] == "list"
            {
                // The element maps as the scalar type does in its own row.
                let scalar = serde_json::to_value(logical(wire(&pg(e)), &pg(e), false)).unwrap();
                assert_eq!(lt["element"], scalar, "{label}: element {e}");
            }
            assert_eq!(
                lt["kind"].as_str().unwrap_or_default(),
                nth(&logicals, i, n, label),
                "{label}: {}",
                t.base_name
            );
        }
    }
}

/// A SQLite column as the exporter describes it: hint, logical type and value profile.
fn sqlite_col(hint: Option<&str>, lt: LogicalType, profile: Option<Value>) -> Column {
    let mut c = Column::new("c", lt, true);
    c.hint = hint.map(str::to_owned);
    if let Some(p) = profile {
        c.properties.insert("profile".into(), p);
    }
    c
}

#[test]
fn sqlite_to_postgresql_types() {
    let ints =
        |lo: i64, hi: i64| json!({"integer_min": lo, "integer_max": hi, "classes": {"integer": 2}});
    let text = |n: i64| json!({"text_max_chars": n, "hint_fits": 1, "classes": {"text": 1}});
    let fits = json!({"hint_fits": 2, "classes": {"integer": 2}});
    let none = json!({"classes": {"null": 3}});
    for row in table("### Types") {
        let label = row[0].as_str();
        // (column, rowid alias, expected type when the row's cell is prose)
        let cases: Vec<(Column, bool, Option<&str>)> = match label {
            "1" => vec![(
                sqlite_col(None, LogicalType::Int64, Some(ints(1, 5))),
                true,
                None,
            )],
            "2" => vec![(
                sqlite_col(
                    Some("text"),
                    LogicalType::Text,
                    Some(json!({"text_with_nul": 1, "classes": {"text": 1}})),
                ),
                false,
                None,
            )],
            "3" => [
                "boolean",
                "timestamp",
                "timestamptz",
                "date",
                "time",
                "json",
                "uuid",
            ]
            .iter()
            .map(|h| {
                (
                    sqlite_col(Some(h), LogicalType::Text, Some(none.clone())),
                    false,
                    None,
                )
            })
            .collect(),
            "4" => vec![(
                sqlite_col(
                    Some("text"),
                    LogicalType::SqliteValue,
                    Some(json!({"classes": {"integer": 1, "text": 1}})),
                ),
                false,
                None,
            )],
            "5" => vec![(
                sqlite_col(
                    Some("integer"),
                    LogicalType::Text,
                    Some(
                        json!({"hint_misfits": 1, "misfit_examples": [{"row": "id 2", "value": "'abc'"}], "classes": {"text": 1}}),
                    ),
                ),
                false,
                None,
            )],
            "6" => vec![
                (
                    sqlite_col(Some("integer"), LogicalType::Int64, Some(ints(-5, 5))),
                    false,
                    Some("integer"),
                ),
                (
                    sqlite_col(None, LogicalType::Int64, Some(ints(-5, 5))),
                    false,
                    Some("bigint"),
                ),
                (
                    sqlite_col(
                        Some("smallint"),
                        LogicalType::Int64,
                        Some(json!({"classes": {"null": 1}})),
                    ),
                    false,
                    Some("smallint"),
                ),
                (
                    sqlite_col(Some("smallint"), LogicalType::Int64, Some(ints(0, 1 << 40))),
                    false,
                    Some("bigint"),
                ),
                (
                    sqlite_col(None, LogicalType::Int64, None),
                    false,
                    Some("bigint"),
                ),
            ],
            "7" => vec![
                (
                    sqlite_col(Some("double"), LogicalType::Int64, Some(ints(1, 2))),
                    false,
                    None,
                ),
                (sqlite_col(None, LogicalType::Float64, None), false, None),
            ],
            "8" => vec![(
                sqlite_col(
                    Some("numeric(10,2)"),
                    LogicalType::Float64,
                    Some(
                        json!({"decimal_scale": 2, "decimal_int_digits": 3, "classes": {"real": 1}}),
                    ),
                ),
                false,
                None,
            )],
            "9" => vec![(
                sqlite_col(
                    Some("numeric(10,2)"),
                    LogicalType::Float64,
                    Some(
                        json!({"decimal_scale": 4, "decimal_int_digits": 3, "classes": {"real": 1}}),
                    ),
                ),
                false,
                None,
            )],
            "10" => vec![(
                sqlite_col(Some("numeric"), LogicalType::Float64, None),
                false,
                None,
            )],
            "11" => [LogicalType::Int64, LogicalType::Text, LogicalType::Boolean]
                .map(|lt| {
                    (
                        sqlite_col(Some("boolean"), lt, Some(fits.clone())),
                        false,
                        None,
                    )
                })
                .to_vec(),
            "12" => vec![(
                sqlite_col(Some("timestamp"), LogicalType::Text, Some(fits.clone())),
                false,
                None,
            )],
            "13" => vec![(
                sqlite_col(Some("timestamptz"), LogicalType::Text, Some(fits.clone())),
                false,
                None,
            )],
            "14" => vec![(
                sqlite_col(Some("date"), LogicalType::Text, Some(fits.clone())),
                false,
                None,
            )],
            "15" => vec![(
                sqlite_col(Some("time"), LogicalType::Text, Some(fits.clone())),
                false,
                None,
            )],
            "16" => vec![(
                sqlite_col(Some("json"), LogicalType::Text, Some(fits.clone())),
                false,
                None,
            )],
            "17" => vec![(
                sqlite_col(Some("uuid"), LogicalType::Text, Some(fits.clone())),
                false,
                None,
            )],
            "18" => vec![(
                sqlite_col(Some("varchar(20)"), LogicalType::Text, Some(text(12))),
                false,
                None,
            )],
            "19" => vec![(
                sqlite_col(Some("char(20)"), LogicalType::Text, Some(text(30))),
                false,
                None,
            )],
            "20" => vec![(
                sqlite_col(Some("varchar(20)"), LogicalType::Text, None),
                false,
                None,
            )],
            "21" => vec![(sqlite_col(None, LogicalType::Text, None), false, None)],
            "22" => vec![(sqlite_col(None, LogicalType::Bytes, None), false, None)],
            "23" => vec![(
                sqlite_col(Some("text"), LogicalType::Int64, None),
                false,
                None,
            )],
            "24" => vec![(
                sqlite_col(Some("text"), LogicalType::Float64, None),
                false,
                None,
            )],
            "25" => vec![(sqlite_col(None, LogicalType::Boolean, None), false, None)],
            "26" => vec![(
                sqlite_col(Some("text"), LogicalType::Date, None),
                false,
                None,
            )],
            other => panic!("no check for spec row {other}"),
        };
        let types: Vec<String> = ticks(&without_notes(&row[4]))
            .iter()
            .map(|t| t.replace("(p,s)", "(10,2)").replace("(n)", "(20)"))
            .collect();
        let convs: Vec<String> = row[5].split(", ").map(str::to_owned).collect();
        let n = cases.len();
        for (i, (c, alias, prose)) in cases.iter().enumerate() {
            let d = from_sqlite::decide(c, *alias, false);
            let want = prose
                .map(str::to_owned)
                .unwrap_or_else(|| nth(&types, i, n, label));
            assert_eq!(d.pg_type, want, "row {label}, case {i}");
            let conv = conv_name(&d.conv);
            assert!(
                convs.contains(&conv),
                "row {label}, case {i}: conversion {conv}, spec says {}",
                row[5]
            );
        }
    }
}

/// The conversion a target type implies, as the plan would decide it.
fn conv_for(pg_type: &str) -> Conv {
    let unit = ferry_archive::convert::EpochUnit::Seconds;
    match pg_type {
        "timestamp with time zone" => Conv::Timestamp { unit, zoned: true },
        "timestamp without time zone" => Conv::Timestamp { unit, zoned: false },
        "date" => Conv::Date { unit },
        "time without time zone" => Conv::Time,
        "boolean" => Conv::Bool,
        "bigint" => Conv::Int8,
        "double precision" => Conv::Float8,
        "text" => Conv::Text { widen: false },
        other => panic!("no conversion for target type {other}"),
    }
}

#[test]
fn sqlite_to_postgresql_defaults() {
    let mut previous: Vec<String> = Vec::new();
    for row in table("### Defaults") {
        let defaults = if row[0] == "the same" {
            previous.clone()
        } else {
            ticks(&row[0])
        };
        previous = defaults.clone();
        let target = ticks(&row[1]).remove(0);
        let expected = ticks(&row[2]);
        let n = defaults.len();
        for (i, d) in defaults.iter().enumerate() {
            let got = from_sqlite::translate_default(d, &target, conv_for(&target));
            if row[2] == "dropped" {
                assert_eq!(got, None, "{d} for {target}");
            } else {
                assert_eq!(
                    got.as_deref(),
                    Some(nth(&expected, i, n, &row[0]).as_str()),
                    "{d} for {target}"
                );
            }
        }
    }
}

#[test]
fn data_only_conversions() {
    let c = sqlite_col(None, LogicalType::Int64, None);
    for row in table("### `--data-only` into existing tables") {
        for base in ticks(&row[0]) {
            let got = from_sqlite::conv_for_existing(&base, &c).map(|c| conv_name(&c));
            if row[1].starts_with("none") {
                assert_eq!(got, None, "{base}");
            } else {
                assert_eq!(got.as_deref(), Some(row[1].as_str()), "{base}");
            }
        }
    }
}

#[test]
fn postgresql_to_sqlite_types() {
    let col = |lt: LogicalType, pg_type: &str, hint: Option<&str>| {
        let mut c = Column::new("c", lt, true);
        c.properties.insert("pg_type".into(), json!(pg_type));
        c.hint = hint.map(str::to_owned);
        c
    };
    let engine = |t: &str| LogicalType::EngineText {
        engine: "postgresql".into(),
        type_name: t.into(),
    };
    for row in table("### Types and values") {
        let label = row[0].as_str();
        let mut money = col(LogicalType::Int64, "money", None);
        money.properties.insert("money_scale".into(), json!(2));
        let (cases, numeric_real): (Vec<Column>, bool) = match label {
            "`boolean`" => (vec![col(LogicalType::Boolean, "bool", None)], false),
            "`int16`, `int32`, `int64` (`smallint`, `integer`, `bigint`, `oid`)" => (
                vec![
                    col(LogicalType::Int16, "int2", None),
                    col(LogicalType::Int32, "int4", None),
                    col(LogicalType::Int64, "int8", None),
                ],
                false,
            ),
            "`int64` (`money`)" => (vec![money], false),
            "`int64` (`money`) with `--numeric real`" => (vec![money], true),
            "`int64` (`money`, in an archive without `money_scale`)" => {
                (vec![col(LogicalType::Int64, "money", None)], false)
            }
            "`float32`, `float64`" => (
                vec![
                    col(LogicalType::Float32, "float4", None),
                    col(LogicalType::Float64, "float8", None),
                ],
                false,
            ),
            "`decimal`, `numeric`" | "`decimal`, `numeric` with `--numeric real`" => (
                vec![
                    col(
                        LogicalType::Decimal {
                            precision: 10,
                            scale: 2,
                        },
                        "numeric",
                        None,
                    ),
                    col(LogicalType::Numeric, "numeric", None),
                ],
                label.contains("real"),
            ),
            "`text` (`varchar(n)` / `char(n)`)" => (
                vec![
                    col(LogicalType::Text, "varchar", Some("varchar(20)")),
                    col(LogicalType::Text, "bpchar", Some("char(20)")),
                ],
                false,
            ),
            "`text` (other, enums)" => (vec![col(LogicalType::Text, "text", Some("text"))], false),
            "`bytes`" => (vec![col(LogicalType::Bytes, "bytea", None)], false),
            "`date`" => (vec![col(LogicalType::Date, "date", None)], false),
            "`time`" => (vec![col(LogicalType::Time, "time", None)], false),
            "`time_tz`" => (vec![col(LogicalType::TimeTz, "timetz", None)], false),
            "`timestamp`" => (vec![col(LogicalType::Timestamp, "timestamp", None)], false),
            "`timestamp_tz`" => (
                vec![col(LogicalType::TimestampTz, "timestamptz", None)],
                false,
            ),
            "`interval`" => (vec![col(LogicalType::Interval, "interval", None)], false),
            "`uuid`" => (vec![col(LogicalType::Uuid, "uuid", None)], false),
            "`json` (`json`, `jsonb`)" => (
                vec![
                    col(LogicalType::Json, "json", None),
                    col(LogicalType::Json, "jsonb", None),
                ],
                false,
            ),
            "`list` (a one-dimensional array)" => (
                vec![col(
                    LogicalType::List {
                        element: Box::new(LogicalType::Int32),
                    },
                    "_int4",
                    Some("array"),
                )],
                false,
            ),
            l if l.starts_with("`engine_text` of an array type") => (
                vec![
                    col(engine("integer[]"), "_int4", Some("array")),
                    col(engine("intlist"), "_int4", None),
                ],
                false,
            ),
            "`engine_text` with hint `composite`" => (
                vec![col(engine("public.address"), "address", Some("composite"))],
                false,
            ),
            l if l.starts_with("other `engine_text`") => (
                vec![
                    col(engine("int4range"), "int4range", Some("range")),
                    col(engine("inet"), "inet", None),
                    col(engine("tsvector"), "tsvector", None),
                ],
                false,
            ),
            other => panic!("no check for spec row {other}"),
        };
        let expected: Vec<String> = ticks(&row[1])
            .iter()
            .map(|t| t.replace("(n)", "(20)"))
            .collect();
        let n = cases.len();
        for (i, c) in cases.iter().enumerate() {
            let (decl, _) = ferry_sqlite::from_postgres::decide(c, numeric_real);
            assert_eq!(decl, nth(&expected, i, n, label), "{label}, case {i}");
        }
    }
}

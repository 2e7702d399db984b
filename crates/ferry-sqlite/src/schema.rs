//! Reading a SQLite schema into the manifest's portable form, keeping every original
//! `CREATE` statement beside it.

use std::collections::BTreeMap;

use ferry_archive::facts::{Facts, SqliteTableFacts};
use ferry_archive::{Check, Column, ForeignKey, Generated, Key, LogicalType, SchemaObject, Table};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::error::{Ctx, SqliteError};
use crate::types::{self, Affinity};

/// Table properties (in `Table::properties`) this adapter writes and reads.
pub mod prop {
    pub const WITHOUT_ROWID: &str = "without_rowid";
    pub const STRICT: &str = "strict";
    pub const AUTOINCREMENT: &str = "autoincrement";
    /// The table's `sqlite_sequence` value.
    pub const SEQUENCE: &str = "sqlite_sequence";
    /// The INTEGER PRIMARY KEY column that aliases the rowid.
    pub const ROWID_ALIAS: &str = "rowid_alias";
    /// `virtual` tables: the module (`fts5`, `rtree`, ...).
    pub const MODULE: &str = "module";
    /// `virtual` tables whose content lives elsewhere (`external`) or nowhere (`contentless`).
    pub const CONTENT: &str = "content";
    /// Column property: the declared affinity.
    pub const AFFINITY: &str = "affinity";
}

/// The engine name written into `source.engine`.
pub const ENGINE: &str = "sqlite";

/// A table's schema as read, plus what the exporter needs to read its rows.
pub struct TableInfo {
    pub table: Table,
    /// Declared affinity of each stored column, in data order (without the rowid).
    pub affinities: Vec<Affinity>,
    /// False when the rows cannot or need not be read (external-content or contentless FTS).
    pub export_rows: bool,
    /// Row count, once the class-counting scan has seen the table.
    pub rows: Option<u64>,
    /// About how many bytes its values hold (text and blob lengths, 8 per number), once
    /// the class-counting scan has seen the table: the data pass takes the largest first.
    pub bytes: Option<u64>,
    /// The rows to read, as a condition on the table's columns (`--where`, a subset).
    pub filter: Option<String>,
}

pub struct SchemaInfo {
    pub tables: Vec<TableInfo>,
    pub objects: Vec<SchemaObject>,
    pub settings: BTreeMap<String, Value>,
    pub warnings: Vec<ferry_archive::Warning>,
}

struct Listed {
    kind: String,
    wr: bool,
    strict: bool,
}

pub fn read_schema(conn: &Connection) -> Result<SchemaInfo, SqliteError> {
    let mut listed: BTreeMap<String, Listed> = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'")
            .ctx(|| "reading the table list".into())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Listed {
                        kind: r.get(1)?,
                        wr: r.get::<_, i64>(2)? != 0,
                        strict: r.get::<_, i64>(3)? != 0,
                    },
                ))
            })
            .ctx(|| "reading the table list".into())?;
        for row in rows {
            let (name, l) = row.ctx(|| "reading the table list".into())?;
            listed.insert(name, l);
        }
    }

    let sequences: BTreeMap<String, i64> = if listed.contains_key("sqlite_sequence") {
        let mut stmt = conn
            .prepare("SELECT name, seq FROM sqlite_sequence")
            .ctx(|| "reading sqlite_sequence".into())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .ctx(|| "reading sqlite_sequence".into())?;
        rows.collect::<Result<_, _>>()
            .ctx(|| "reading sqlite_sequence".into())?
    } else {
        BTreeMap::new()
    };

    let mut entries: Vec<(String, String, String, Option<String>)> = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY rowid")
            .ctx(|| "reading sqlite_schema".into())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .ctx(|| "reading sqlite_schema".into())?;
        for row in rows {
            entries.push(row.ctx(|| "reading sqlite_schema".into())?);
        }
    }

    let mut info = SchemaInfo {
        tables: Vec::new(),
        objects: Vec::new(),
        settings: read_settings(conn)?,
        warnings: Vec::new(),
    };
    for (kind, name, tbl_name, sql) in entries {
        match kind.as_str() {
            "table" => {
                let l = listed.get(&name);
                let kind = l.map(|l| l.kind.as_str()).unwrap_or("table");
                if kind == "shadow" || name.starts_with("sqlite_") {
                    // Shadow tables are rebuilt by their virtual table; sqlite_sequence and the
                    // sqlite_stat tables are carried in properties and settings.
                    continue;
                }
                let id = format!("t{:05}", info.tables.len() + 1);
                let t = read_table(
                    conn,
                    id,
                    &name,
                    kind == "virtual",
                    l.is_some_and(|l| l.wr),
                    l.is_some_and(|l| l.strict),
                    sql.unwrap_or_default(),
                    sequences.get(&name).copied(),
                    &mut info.warnings,
                )?;
                info.tables.push(t);
            }
            "index" | "view" | "trigger" => {
                // Automatic indexes (sql IS NULL) belong to their constraints.
                let Some(sql) = sql else { continue };
                let mut props = BTreeMap::new();
                if kind == "index" {
                    index_properties(conn, &name, &sql, &mut props, &mut info.warnings)?;
                }
                info.objects.push(SchemaObject {
                    kind,
                    schema: None,
                    name,
                    table: Some(tbl_name),
                    definition: Some(sql),
                    properties: props,
                });
            }
            _ => {}
        }
    }
    Ok(info)
}

fn read_settings(conn: &Connection) -> Result<BTreeMap<String, Value>, SqliteError> {
    let mut s = BTreeMap::new();
    for pragma in [
        "encoding",
        "page_size",
        "auto_vacuum",
        "user_version",
        "application_id",
        "journal_mode",
    ] {
        let v: rusqlite::types::Value = conn
            .query_row(&format!("PRAGMA main.{pragma}"), [], |r| r.get(0))
            .ctx(|| format!("reading PRAGMA {pragma}"))?;
        let v = match v {
            rusqlite::types::Value::Integer(i) => json!(i),
            rusqlite::types::Value::Text(t) => json!(t.to_lowercase()),
            other => json!(format!("{other:?}")),
        };
        s.insert(pragma.to_owned(), v);
    }
    for stat in ["sqlite_stat1", "sqlite_stat4"] {
        let exists: bool = conn
            .query_row(
                "SELECT count(*) FROM main.sqlite_schema WHERE type = 'table' AND name = ?1",
                [stat],
                |r| r.get::<_, i64>(0),
            )
            .ctx(|| format!("looking for {stat}"))?
            > 0;
        if !exists {
            continue;
        }
        // The planner's statistics: small, and part of an exact copy. Blobs (stat4 samples)
        // are kept as hex.
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM main.{stat}"))
            .ctx(|| format!("reading {stat}"))?;
        let n = stmt.column_count();
        let mut rows = stmt.query([]).ctx(|| format!("reading {stat}"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx(|| format!("reading {stat}"))? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i).ctx(|| format!("reading {stat}"))? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(i) => json!(i),
                    rusqlite::types::ValueRef::Real(f) => json!(f),
                    rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Blob(b) => json!({ "blob": hex::encode(b) }),
                });
            }
            out.push(Value::Array(row));
        }
        s.insert(stat.to_owned(), Value::Array(out));
    }
    Ok(s)
}

/// A row of `pragma_table_xinfo`: one column, hidden ones included.
struct XInfo {
    name: String,
    decl: String,
    notnull: bool,
    default: Option<String>,
    pk: i64,
    hidden: i64,
}

fn table_xinfo(conn: &Connection, name: &str) -> Result<Vec<XInfo>, SqliteError> {
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1, 'main') ORDER BY cid")
        .ctx(|| format!("table {name}: reading columns"))?;
    let rows = stmt
        .query_map([name], |r| {
            Ok(XInfo {
                name: r.get(0)?,
                decl: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                notnull: r.get::<_, i64>(2)? != 0,
                default: r.get(3)?,
                pk: r.get(4)?,
                hidden: r.get(5)?,
            })
        })
        .ctx(|| format!("table {name}: reading columns"))?;
    let mut xinfo = Vec::new();
    for r in rows {
        xinfo.push(r.ctx(|| format!("table {name}: reading columns"))?);
    }
    Ok(xinfo)
}

/// A table's columns as the manifest describes them, from `pragma_table_xinfo` and the
/// parsed `CREATE TABLE` (collations, generated expressions, column CHECKs).
struct Described {
    columns: Vec<Column>,
    /// The affinity of each stored column, in order.
    affinities: Vec<Affinity>,
    /// Table and column CHECK constraints.
    checks: Vec<Check>,
    autoincrement: bool,
}

fn describe_columns(
    xinfo: &[XInfo],
    parsed: &ferry_sql::sqlite::TableFacts,
    is_virtual: bool,
    strict: bool,
) -> Described {
    let mut columns = Vec::new();
    let mut affinities = Vec::new();
    let mut checks: Vec<Check> = parsed
        .checks
        .iter()
        .map(|(n, e)| Check {
            name: n.clone(),
            expression: e.clone(),
        })
        .collect();
    let mut autoincrement = false;
    for x in xinfo {
        if is_virtual && x.hidden == 1 {
            continue;
        }
        let p = parsed
            .columns
            .get(&x.name.to_lowercase())
            .cloned()
            .unwrap_or_default();
        autoincrement |= p.autoincrement;
        // In a STRICT table, ANY means "no conversion at all", which is BLOB affinity.
        let affinity = if strict && x.decl.eq_ignore_ascii_case("ANY") {
            Affinity::Blob
        } else {
            Affinity::of(&x.decl)
        };
        let mut c = Column::new(&x.name, LogicalType::Bytes, !x.notnull);
        c.declared_type = Some(x.decl.clone());
        c.hint = types::hint(&x.decl);
        c.default = x.default.clone();
        c.collation = p.collation.clone();
        c.properties.insert(
            prop::AFFINITY.into(),
            json!(format!("{affinity:?}").to_uppercase()),
        );
        if x.hidden == 2 || x.hidden == 3 {
            c.generated = Some(Generated {
                expression: p
                    .generated
                    .as_ref()
                    .map(|g| g.0.clone())
                    .unwrap_or_default(),
                stored: x.hidden == 3,
            });
        } else {
            affinities.push(affinity);
        }
        for (n, e) in &p.checks {
            checks.push(Check {
                name: n.clone(),
                expression: e.clone(),
            });
        }
        columns.push(c);
    }
    Described {
        columns,
        affinities,
        checks,
        autoincrement,
    }
}

#[allow(clippy::too_many_arguments)]
fn read_table(
    conn: &Connection,
    id: String,
    name: &str,
    is_virtual: bool,
    without_rowid: bool,
    strict: bool,
    sql: String,
    sequence: Option<i64>,
    warnings: &mut Vec<ferry_archive::Warning>,
) -> Result<TableInfo, SqliteError> {
    let parsed = if is_virtual {
        ferry_sql::sqlite::TableFacts::default()
    } else {
        ferry_sql::sqlite::create_table(&sql, &format!("table {name}")).unwrap_or_else(|e| {
            warnings.push(unparsed(name, &e));
            Default::default()
        })
    };
    let xinfo = table_xinfo(conn, name)?;
    let Described {
        columns,
        affinities,
        checks,
        autoincrement,
    } = describe_columns(&xinfo, &parsed, is_virtual, strict);

    let mut pk: Vec<(i64, String)> = xinfo
        .iter()
        .filter(|x| x.pk > 0)
        .map(|x| (x.pk, x.name.clone()))
        .collect();
    pk.sort();
    let rowid_alias = match pk.as_slice() {
        [(_, col)] if !without_rowid && !is_virtual => rowid_alias(&xinfo, col, &parsed),
        _ => None,
    };

    let mut properties = BTreeMap::new();
    properties.insert(prop::WITHOUT_ROWID.into(), json!(without_rowid));
    properties.insert(prop::STRICT.into(), json!(strict));
    if autoincrement {
        properties.insert(prop::AUTOINCREMENT.into(), json!(true));
    }
    // Facts other engines' importers read: declared in ferry_archive::facts.
    SqliteTableFacts {
        rowid_alias: rowid_alias.clone(),
        sqlite_sequence: sequence,
    }
    .write(&mut properties);

    let export_rows = !is_virtual || virtual_table(name, &sql, &mut properties, warnings);
    // The rowid is data too, unless an INTEGER PRIMARY KEY column already carries it.
    let rowid = if without_rowid || rowid_alias.is_some() {
        None
    } else {
        rowid_name(name, &xinfo, warnings)
    };

    let primary_key = (!pk.is_empty()).then(|| Key {
        name: None,
        columns: pk.into_iter().map(|(_, c)| c).collect(),
        properties: BTreeMap::new(),
    });
    let unique = if is_virtual {
        Vec::new()
    } else {
        unique_constraints(conn, name)?
    };
    let foreign_keys = if is_virtual {
        Vec::new()
    } else {
        foreign_keys(conn, name)?
    };

    Ok(TableInfo {
        table: Table {
            id,
            schema: None,
            name: name.to_owned(),
            kind: if is_virtual { "virtual" } else { "table" }.into(),
            columns,
            rowid,
            primary_key,
            unique,
            checks,
            foreign_keys,
            definition: Some(sql),
            properties,
            rows: None,
            content_digest: None,
            files: Vec::new(),
        },
        affinities,
        export_rows,
        rows: None,
        bytes: None,
        filter: None,
    })
}

/// A single-column INTEGER PRIMARY KEY, ascending, is the table's rowid under another name.
fn rowid_alias(
    xinfo: &[XInfo],
    col: &str,
    parsed: &ferry_sql::sqlite::TableFacts,
) -> Option<String> {
    xinfo
        .iter()
        .find(|x| x.name == col)
        .filter(|x| x.decl.eq_ignore_ascii_case("INTEGER"))
        .filter(|x| {
            !parsed
                .columns
                .get(&x.name.to_lowercase())
                .is_some_and(|p| p.pk_desc)
        })
        .map(|x| x.name.clone())
}

/// A virtual table's module and content into its properties. Returns whether its rows are
/// exported: an external-content or contentless index has none of its own (warned about).
fn virtual_table(
    name: &str,
    sql: &str,
    properties: &mut BTreeMap<String, serde_json::Value>,
    warnings: &mut Vec<ferry_archive::Warning>,
) -> bool {
    let (module, content) = ferry_sql::sqlite::virtual_table(sql, &format!("table {name}"))
        .unwrap_or_else(|e| {
            warnings.push(unparsed(name, &e));
            (String::new(), None)
        });
    properties.insert(prop::MODULE.into(), json!(module));
    let Some(content) = content else {
        return true;
    };
    properties.insert(prop::CONTENT.into(), json!(content));
    let message = if content == "contentless" {
        format!(
            "virtual table {name} is contentless: its index cannot be exported and is recreated empty"
        )
    } else {
        format!(
            "virtual table {name} indexes external content: it is rebuilt from that content on import"
        )
    };
    warnings.push(ferry_archive::Warning {
        code: format!("virtual_table_{content}"),
        table: Some(name.to_owned()),
        column: None,
        message,
        details: Default::default(),
    });
    false
}

/// The name the rowid can be read by: the first of rowid, _rowid_ and oid that no column
/// takes. When all three are taken the rowids are renumbered, and a warning says so.
fn rowid_name(
    name: &str,
    xinfo: &[XInfo],
    warnings: &mut Vec<ferry_archive::Warning>,
) -> Option<String> {
    let taken = |n: &str| xinfo.iter().any(|x| x.name.eq_ignore_ascii_case(n));
    let free = ["rowid", "_rowid_", "oid"].into_iter().find(|n| !taken(n));
    if free.is_none() {
        warnings.push(ferry_archive::Warning {
            code: "rowid_not_preserved".into(),
            table: Some(name.to_owned()),
            column: None,
            message: format!(
                "table {name} has columns named rowid, _rowid_ and oid, so its rowids cannot be read; they are renumbered on import"
            ),
            details: Default::default(),
        });
    }
    free.map(str::to_owned)
}

/// A definition the SQL layer cannot read: it is still carried verbatim for same-engine
/// restores, but what other engines would learn from it (CHECKs, generated columns,
/// collations, `PRIMARY KEY DESC`) is missing, and the manifest says so.
fn unparsed(table: &str, e: &ferry_sql::SqlError) -> ferry_archive::Warning {
    ferry_archive::Warning {
        code: "unparsed_definition".into(),
        table: Some(table.to_owned()),
        column: None,
        message: format!(
            "{e}; what it tells other engines (CHECKs, generated columns, collations, an index's predicate) is not described (a SQLite restore uses the definition as it is)"
        ),
        details: Default::default(),
    }
}

fn index_columns(conn: &Connection, index: &str) -> Result<Vec<Value>, SqliteError> {
    let mut stmt = conn
        .prepare("SELECT name, \"desc\", coll FROM pragma_index_xinfo(?1, 'main') WHERE key = 1 ORDER BY seqno")
        .ctx(|| format!("index {index}: reading columns"))?;
    let rows = stmt
        .query_map([index], |r| {
            Ok(json!({
                "column": r.get::<_, Option<String>>(0)?,
                "descending": r.get::<_, i64>(1)? != 0,
                "collation": r.get::<_, String>(2)?,
            }))
        })
        .ctx(|| format!("index {index}: reading columns"))?;
    rows.collect::<Result<_, _>>()
        .ctx(|| format!("index {index}: reading columns"))
}

fn index_properties(
    conn: &Connection,
    name: &str,
    sql: &str,
    props: &mut BTreeMap<String, Value>,
    warnings: &mut Vec<ferry_archive::Warning>,
) -> Result<(), SqliteError> {
    let (unique, predicate) = ferry_sql::sqlite::create_index(sql, &format!("index {name}"))
        .unwrap_or_else(|e| {
            warnings.push(unparsed(name, &e));
            (false, None)
        });
    props.insert("unique".into(), json!(unique));
    props.insert("columns".into(), Value::Array(index_columns(conn, name)?));
    if let Some(w) = predicate {
        props.insert("where".into(), json!(w));
    }
    Ok(())
}

fn unique_constraints(conn: &Connection, table: &str) -> Result<Vec<Key>, SqliteError> {
    let mut names = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_index_list(?1, 'main') WHERE origin = 'u' ORDER BY seq DESC")
            .ctx(|| format!("table {table}: reading unique constraints"))?;
        let rows = stmt
            .query_map([table], |r| r.get::<_, String>(0))
            .ctx(|| format!("table {table}: reading unique constraints"))?;
        for r in rows {
            names.push(r.ctx(|| format!("table {table}: reading unique constraints"))?);
        }
    }
    let mut out = Vec::new();
    for index in names {
        let cols = index_columns(conn, &index)?;
        out.push(Key {
            name: None,
            columns: cols
                .iter()
                .filter_map(|c| c["column"].as_str().map(str::to_owned))
                .collect(),
            properties: BTreeMap::new(),
        });
    }
    Ok(out)
}

fn foreign_keys(conn: &Connection, table: &str) -> Result<Vec<ForeignKey>, SqliteError> {
    let mut stmt = conn
        .prepare("SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?1, 'main') ORDER BY id, seq")
        .ctx(|| format!("table {table}: reading foreign keys"))?;
    let rows = stmt
        .query_map([table], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .ctx(|| format!("table {table}: reading foreign keys"))?;
    let mut out: Vec<(i64, ForeignKey)> = Vec::new();
    for r in rows {
        let (id, ref_table, from, to, on_update, on_delete) =
            r.ctx(|| format!("table {table}: reading foreign keys"))?;
        if out.last().map(|(i, _)| *i) != Some(id) {
            out.push((
                id,
                ForeignKey {
                    name: None,
                    columns: Vec::new(),
                    ref_schema: None,
                    ref_table,
                    ref_columns: Vec::new(),
                    on_update,
                    on_delete,
                    deferrable: false,
                    initially_deferred: false,
                },
            ));
        }
        let fk = &mut out.last_mut().expect("pushed above").1;
        fk.columns.push(from);
        if let Some(to) = to {
            fk.ref_columns.push(to);
        }
    }
    // The pragma gives names as the REFERENCES clause spelled them (`REFERENCES USERS(ID)`);
    // SQLite matches them without regard to case, so the manifest records the names the
    // tables and columns actually have, which everything downstream compares exactly.
    let actual_table = |name: &str| -> Option<String> {
        conn.query_row(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [name],
            |r| r.get(0),
        )
        .ok()
    };
    let actual_column = |table: &str, name: &str| -> Option<String> {
        conn.query_row(
            "SELECT name FROM pragma_table_xinfo(?1, 'main') WHERE name = ?2 COLLATE NOCASE",
            [table, name],
            |r| r.get(0),
        )
        .ok()
    };
    for (_, fk) in &mut out {
        for c in &mut fk.columns {
            if let Some(a) = actual_column(table, c) {
                *c = a;
            }
        }
        if let Some(t) = actual_table(&fk.ref_table) {
            for c in &mut fk.ref_columns {
                if let Some(a) = actual_column(&t, c) {
                    *c = a;
                }
            }
            fk.ref_table = t;
        }
    }
    // pragma_foreign_key_list lists constraints last-declared first.
    Ok(out.into_iter().rev().map(|(_, fk)| fk).collect())
}

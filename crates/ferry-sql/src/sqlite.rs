//! What a SQLite schema says that its pragmas do not: CHECK expressions, generated-column
//! expressions, column collations, `PRIMARY KEY DESC` (which makes an INTEGER PRIMARY KEY
//! *not* a rowid alias) and `AUTOINCREMENT`; a virtual table's module and content option; an
//! index's `UNIQUE` and predicate. The SQLite exporter reads the catalog's `CREATE`
//! statements through these functions, so the same parser reads SQL on the way out of SQLite
//! as on the way into PostgreSQL. Expressions are printed from the syntax tree.

use std::collections::HashMap;

use sqlparser::ast::{ColumnOption, CreateIndex, CreateTable, GeneratedExpressionMode, Statement};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::SqlError;

/// Column affinity, by the five rules of <https://sqlite.org/datatype3.html> §3.1. The SQLite
/// exporter decides storage from it; the PostgreSQL importer needs it to read comparisons as
/// SQLite does (a TEXT column compared with a number compares text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    pub fn of(declared: &str) -> Affinity {
        let t = declared.to_ascii_uppercase();
        if t.contains("INT") {
            Affinity::Integer
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Affinity::Text
        } else if t.contains("BLOB") || t.trim().is_empty() {
            Affinity::Blob
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }
}

/// A column's facts from its definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnFacts {
    pub collation: Option<String>,
    /// (expression, stored)
    pub generated: Option<(String, bool)>,
    pub pk_desc: bool,
    pub autoincrement: bool,
    /// (constraint name, expression)
    pub checks: Vec<(Option<String>, String)>,
}

/// A table's facts from its `CREATE TABLE`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableFacts {
    /// Keyed by lower-cased column name (SQLite names are case-insensitive).
    pub columns: HashMap<String, ColumnFacts>,
    /// Table-level CHECKs: (constraint name, expression).
    pub checks: Vec<(Option<String>, String)>,
}

fn one(sql: &str, what: &str) -> Result<Statement, SqlError> {
    let mut stmts = Parser::parse_sql(&SQLiteDialect {}, sql).map_err(|e| SqlError::Parse {
        what: what.to_owned(),
        message: e.to_string(),
    })?;
    if stmts.len() != 1 {
        return Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "one statement".into(),
            found: format!("{} statements", stmts.len()),
        });
    }
    Ok(stmts.remove(0))
}

/// Reads a `CREATE TABLE`. SQLite takes any run of words as a column's type name
/// (`BLOB SUB_TYPE TEXT`, `UNSIGNED BIG INT`, `VARYING CHARACTER(255)`), which the parser's
/// SQLite dialect does not: a definition that fails to parse is read again with each such
/// run quoted as one name. The facts read here never include the type name itself (that
/// comes from SQLite's own `table_info`), so quoting it loses nothing.
pub fn create_table(sql: &str, what: &str) -> Result<TableFacts, SqlError> {
    let statement = match one(sql, what) {
        Ok(s) => s,
        Err(e) => match crate::rewrite::quote_sqlite_type_names(sql) {
            Some(quoted) => one(&quoted, what).map_err(|_| e)?,
            None => return Err(e),
        },
    };
    let Statement::CreateTable(CreateTable {
        columns,
        constraints,
        ..
    }) = statement
    else {
        return Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "CREATE TABLE".into(),
            found: "another statement".into(),
        });
    };
    let mut out = TableFacts::default();
    for c in columns {
        let mut f = ColumnFacts::default();
        for o in c.options {
            match o.option {
                // The name itself: `COLLATE "NOCASE"` and `COLLATE [nocase]` are NOCASE.
                ColumnOption::Collation(n) => {
                    f.collation = crate::translate::last_part(&n).or_else(|| Some(n.to_string()))
                }
                ColumnOption::Check(ck) => f
                    .checks
                    .push((o.name.map(|n| n.value), ck.expr.to_string())),
                ColumnOption::Generated {
                    generation_expr: Some(e),
                    generation_expr_mode,
                    ..
                } => {
                    f.generated = Some((
                        e.to_string(),
                        generation_expr_mode == Some(GeneratedExpressionMode::Stored),
                    ))
                }
                ColumnOption::DialectSpecific(tokens) => {
                    for t in tokens {
                        if let Token::Word(w) = t {
                            f.pk_desc |= w.value.eq_ignore_ascii_case("DESC");
                            f.autoincrement |= w.value.eq_ignore_ascii_case("AUTOINCREMENT");
                        }
                    }
                }
                _ => {}
            }
        }
        out.columns.insert(c.name.value.to_lowercase(), f);
    }
    for c in constraints {
        if let sqlparser::ast::TableConstraint::Check(ck) = c {
            out.checks
                .push((ck.name.map(|n| n.value), ck.expr.to_string()));
        }
    }
    Ok(out)
}

/// A `CREATE VIRTUAL TABLE`'s module, and for FTS whether its content is external
/// (`content=table`) or absent (`content=''`).
pub fn virtual_table(sql: &str, what: &str) -> Result<(String, Option<&'static str>), SqlError> {
    // Module arguments are free-form in SQLite's grammar; read them as tokens.
    let tokens: Vec<Token> = Tokenizer::new(&SQLiteDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Parse {
            what: what.to_owned(),
            message: e.to_string(),
        })?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let is = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case(k));
    let module = tokens
        .iter()
        .position(|t| is(t, "USING"))
        .and_then(|i| match tokens.get(i + 1) {
            Some(Token::Word(w)) => Some(w.value.to_lowercase()),
            _ => None,
        })
        .ok_or_else(|| SqlError::Unexpected {
            what: what.to_owned(),
            expected: "USING <module>".into(),
            found: "no module".into(),
        })?;
    let mut content = None;
    for w in tokens.windows(3) {
        if is(&w[0], "content") && w[1] == Token::Eq {
            content = Some(match &w[2] {
                Token::SingleQuotedString(s) if s.is_empty() => "contentless",
                Token::Word(v) if v.value.is_empty() => "contentless",
                _ => "external",
            });
        }
    }
    Ok((module, content))
}

/// The names of the functions a statement calls anywhere, view and trigger bodies included
/// (lower-cased): SQLite's authorizer sees a view's calls only when the view is used.
pub fn called_functions(sql: &str) -> Result<Vec<String>, SqlError> {
    let tokens: Vec<Token> = Tokenizer::new(&SQLiteDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Parse {
            what: "statement".into(),
            message: e.to_string(),
        })?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    Ok(tokens
        .windows(2)
        .filter_map(|w| match w {
            [Token::Word(f), Token::LParen] => Some(f.value.to_lowercase()),
            _ => None,
        })
        .collect())
}

/// A `CREATE INDEX`: whether it is UNIQUE, and its predicate.
pub fn create_index(sql: &str, what: &str) -> Result<(bool, Option<String>), SqlError> {
    match one(sql, what)? {
        Statement::CreateIndex(CreateIndex {
            unique, predicate, ..
        }) => Ok((unique, predicate.map(|p| p.to_string()))),
        _ => Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "CREATE INDEX".into(),
            found: "another statement".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_collation_is_its_name() {
        let p = create_table(
            "CREATE TABLE t (a TEXT COLLATE \"NOCASE\", b TEXT COLLATE [rtrim], c TEXT COLLATE unicase)",
            "t",
        )
        .unwrap();
        let of = |c: &str| p.columns[c].collation.clone();
        assert_eq!(of("a").as_deref(), Some("NOCASE"));
        assert_eq!(of("b").as_deref(), Some("rtrim"));
        assert_eq!(of("c").as_deref(), Some("unicase"));
    }

    #[test]
    fn reads_checks_generated_collations_and_keys() {
        let sql = r#"CREATE TABLE "my ""t""" (
            id INTEGER PRIMARY KEY DESC AUTOINCREMENT,
            [name] TEXT COLLATE NOCASE CONSTRAINT name_len CHECK (length(name) > 0),
            `total` REAL DEFAULT (0.0) NOT NULL,
            doubled REAL GENERATED ALWAYS AS (total * 2) STORED,
            shout TEXT AS (upper(name)), -- a comment, with a comma
            CONSTRAINT pos CHECK (total >= 0 AND ')' <> '('),
            UNIQUE (name)
        ) WITHOUT ROWID"#;
        let p = create_table(sql, "t").unwrap();
        let id = &p.columns["id"];
        assert!(id.pk_desc && id.autoincrement);
        let name = &p.columns["name"];
        assert_eq!(name.collation.as_deref(), Some("NOCASE"));
        assert_eq!(
            name.checks,
            vec![(Some("name_len".into()), "length(name) > 0".into())]
        );
        assert_eq!(p.columns["total"].generated, None);
        assert_eq!(
            p.columns["doubled"].generated,
            Some(("total * 2".into(), true))
        );
        assert_eq!(
            p.columns["shout"].generated,
            Some(("upper(name)".into(), false))
        );
        assert_eq!(
            p.checks,
            vec![(Some("pos".into()), "total >= 0 AND ')' <> '('".into())]
        );
        let plain = create_table("CREATE TABLE t (id INTEGER PRIMARY KEY, v)", "t").unwrap();
        assert!(!plain.columns["id"].pk_desc && !plain.columns["id"].autoincrement);
    }

    #[test]
    fn type_names_of_several_words_do_not_hide_the_checks() {
        // Sakila's film (jOOQ/sakila) and the type names of sqlite.org/datatype3.html.
        let sql = "CREATE TABLE film (
              film_id INTEGER NOT NULL,
              description BLOB SUB_TYPE TEXT DEFAULT NULL,
              n UNSIGNED BIG INT CHECK (n >= 0),
              name VARYING CHARACTER(255) COLLATE NOCASE,
              code NATIVE CHARACTER (70),
              rating VARCHAR(10) DEFAULT 'G',
              CONSTRAINT CHECK_special_rating CHECK(rating in ('G','PG')),
              PRIMARY KEY (film_id)
            )";
        assert!(
            one(sql, "film").is_err(),
            "the parser reads these type names now: the quoting fallback can go"
        );
        let p = create_table(sql, "film").unwrap();
        assert_eq!(
            p.checks,
            vec![(
                Some("CHECK_special_rating".into()),
                "rating IN ('G', 'PG')".into()
            )]
        );
        assert_eq!(p.columns["n"].checks, vec![(None, "n >= 0".into())]);
        assert_eq!(p.columns["name"].collation.as_deref(), Some("NOCASE"));
        assert_eq!(p.columns.len(), 6);
        // A definition that is not SQL at all is still refused.
        assert!(create_table("CREATE TABLE t (a b c", "t").is_err());
    }

    #[test]
    fn virtual_tables_and_indexes() {
        assert_eq!(
            virtual_table("CREATE VIRTUAL TABLE d USING fts5(title, body)", "d").unwrap(),
            ("fts5".into(), None)
        );
        assert_eq!(
            virtual_table(
                "CREATE VIRTUAL TABLE d USING fts5(b, content='docs', content_rowid='id')",
                "d"
            )
            .unwrap(),
            ("fts5".into(), Some("external"))
        );
        assert_eq!(
            virtual_table("CREATE VIRTUAL TABLE d USING fts5(b, content='')", "d").unwrap(),
            ("fts5".into(), Some("contentless"))
        );
        assert_eq!(
            create_index(
                "CREATE UNIQUE INDEX i ON t(a) WHERE b IS NOT NULL AND c <> 'x'",
                "i"
            )
            .unwrap(),
            (true, Some("b IS NOT NULL AND c <> 'x'".into()))
        );
        assert_eq!(
            create_index("CREATE INDEX i ON t(lower(a))", "i").unwrap(),
            (false, None)
        );
    }
}

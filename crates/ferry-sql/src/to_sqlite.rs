//! PostgreSQL SQL in SQLite, on the syntax tree.
//!
//! The text comes from PostgreSQL's own deparsers (`pg_get_expr`, `pg_get_viewdef`,
//! `pg_get_indexdef`), read with `sqlparser`'s PostgreSQL dialect and printed after these
//! rewrites:
//! - casts (`x::text`, `'a'::character varying`) are dropped: SQLite has no such types, and
//!   its affinities decide comparisons;
//! - `x = ANY (ARRAY[...])`, as PostgreSQL prints an `IN` list, becomes `x IN (...)`, and
//!   `x <> ALL (ARRAY[...])` becomes `x NOT IN (...)`;
//! - tables and views are renamed as the importer named them ([`Context::relation`]), and
//!   schema qualifiers are dropped from column references and function names;
//! - columns that hold exact decimals as TEXT compare as numbers (`CAST(x AS NUMERIC)`).
//!
//! Whatever PostgreSQL-only function remains is SQLite's to refuse; the importer reports it.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CreateIndex, Expr, Ident, IndexType, ObjectName, ObjectNamePart, Statement,
    Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::SqlError;

/// What the translation needs to know about the SQLite target.
pub struct Context<'a> {
    /// (schema, name) of a PostgreSQL table or view → its SQLite name, if the importer
    /// renamed it; otherwise the bare name is kept.
    pub relation: &'a dyn Fn(Option<&str>, &str) -> Option<String>,
    /// Columns that hold exact decimals as TEXT.
    pub numeric_text: &'a [String],
}

/// A PostgreSQL expression (CHECK, index predicate, generated column, default) for SQLite.
pub fn expr_to_sqlite(sql: &str, what: &str, ctx: &Context<'_>) -> Result<String, SqlError> {
    let mut e = parse_pg_expr(sql, what)?;
    let _ = e.visit(&mut Rewriter { ctx });
    Ok(e.to_string())
}

/// A PostgreSQL default for SQLite: casts dropped, printed, with the literal it is (if any).
pub fn default_to_sqlite(sql: &str, what: &str) -> Result<crate::translate::Default, SqlError> {
    let no_rename = |_: Option<&str>, _: &str| None;
    let ctx = Context {
        relation: &no_rename,
        numeric_text: &[],
    };
    let mut e = parse_pg_expr(sql, what)?;
    let _ = e.visit(&mut Rewriter { ctx: &ctx });
    // Read the printed form back as SQLite would, for its literal.
    crate::translate::default_to_pg(&e.to_string(), what)
}

/// A view's query (`pg_get_viewdef`) for SQLite.
pub fn query_to_sqlite(sql: &str, what: &str, ctx: &Context<'_>) -> Result<String, SqlError> {
    let mut stmts =
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| parse_error(what, e))?;
    match (stmts.len(), stmts.first_mut()) {
        (1, Some(Statement::Query(q))) => {
            let _ = q.visit(&mut Rewriter { ctx });
            Ok(q.to_string())
        }
        (n, _) => Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "one query".into(),
            found: format!("{n} statement(s)"),
        }),
    }
}

/// A PostgreSQL index (`pg_get_indexdef`), translated for SQLite.
#[derive(Debug, Clone, PartialEq)]
pub struct SqliteIndex {
    pub unique: bool,
    /// The table's schema (if qualified) and name, as PostgreSQL named it.
    pub schema: Option<String>,
    pub table: String,
    /// Each key, printed for SQLite, with its order.
    pub keys: Vec<String>,
    pub predicate: Option<String>,
}

/// Parses a `CREATE INDEX`; refuses methods and options SQLite has no equivalent for.
pub fn index_to_sqlite(sql: &str, what: &str, ctx: &Context<'_>) -> Result<SqliteIndex, SqlError> {
    let mut stmts =
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| parse_error(what, e))?;
    if stmts.len() != 1 {
        return Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "one CREATE INDEX".into(),
            found: format!("{} statements", stmts.len()),
        });
    }
    let Statement::CreateIndex(CreateIndex {
        table_name,
        using,
        columns,
        unique,
        include,
        with,
        predicate,
        ..
    }) = stmts.remove(0)
    else {
        return Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "CREATE INDEX".into(),
            found: "another statement".into(),
        });
    };
    let untranslatable = |message: String| SqlError::Untranslatable {
        what: what.to_owned(),
        message,
    };
    match &using {
        None | Some(IndexType::BTree) => {}
        Some(other) => return Err(untranslatable(format!("SQLite has no {other} indexes"))),
    }
    if !include.is_empty() {
        return Err(untranslatable(
            "SQLite indexes have no INCLUDE columns".into(),
        ));
    }
    if !with.is_empty() {
        return Err(untranslatable(
            "SQLite indexes have no storage parameters".into(),
        ));
    }
    let (schema, table) = schema_and_name(&table_name)
        .ok_or_else(|| untranslatable("the index names no table".into()))?;
    let mut keys = Vec::new();
    for c in columns {
        if c.operator_class.is_some() {
            return Err(untranslatable("SQLite has no operator classes".into()));
        }
        let mut e = c.column.expr;
        let _ = e.visit(&mut Rewriter { ctx });
        keys.push(format!("{e}{}", c.column.options));
    }
    let predicate = predicate.map(|mut p| {
        let _ = p.visit(&mut Rewriter { ctx });
        p.to_string()
    });
    Ok(SqliteIndex {
        unique,
        schema,
        table,
        keys,
        predicate,
    })
}

/// `name` or `schema.name`.
fn schema_and_name(n: &ObjectName) -> Option<(Option<String>, String)> {
    let parts: Vec<String> =
        n.0.iter()
            .filter_map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i.value.clone()),
                _ => None,
            })
            .collect();
    match parts.as_slice() {
        [s, t] => Some((Some(s.clone()), t.clone())),
        [t] => Some((None, t.clone())),
        _ => None,
    }
}

fn parse_pg_expr(sql: &str, what: &str) -> Result<Expr, SqlError> {
    crate::parse_one_expr(&PostgreSqlDialect {}, sql, what)
}

fn parse_error(what: &str, e: impl std::fmt::Display) -> SqlError {
    SqlError::Parse {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

fn as_numeric(e: Expr) -> Expr {
    let dialect = SQLiteDialect {};
    let mut cast = Parser::new(&dialect)
        .try_with_sql("CAST(x AS NUMERIC)")
        .and_then(|mut p| p.parse_expr())
        .expect("a cast parses");
    if let Expr::Cast { expr, .. } = &mut cast {
        **expr = e;
    }
    cast
}

/// The elements of `ARRAY[...]` (possibly parenthesised), if `e` is one.
fn array_elems(e: &Expr) -> Option<Vec<Expr>> {
    match e {
        Expr::Nested(inner) => array_elems(inner),
        Expr::Array(a) => Some(a.elem.clone()),
        _ => None,
    }
}

struct Rewriter<'c, 'a> {
    ctx: &'c Context<'a>,
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
        let Some((schema, table)) = schema_and_name(name) else {
            return ControlFlow::Continue(());
        };
        let renamed = (self.ctx.relation)(schema.as_deref(), &table).unwrap_or(table);
        *name = ObjectName::from(vec![Ident::with_quote('"', renamed)]);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let taken = |e: &mut Expr| std::mem::replace(e, Expr::Value(Value::Null.into()));
        // `x = ANY (ARRAY[...])` is an IN list, `x <> ALL (ARRAY[...])` a NOT IN list.
        let in_list = match e {
            Expr::AnyOp {
                compare_op: BinaryOperator::Eq,
                ..
            } => Some(false),
            Expr::AllOp {
                compare_op: BinaryOperator::NotEq,
                ..
            } => Some(true),
            _ => None,
        };
        if let Some(negated) = in_list
            && let Expr::AnyOp { left, right, .. } | Expr::AllOp { left, right, .. } = e
            && let Some(list) = array_elems(right)
        {
            let left = taken(left);
            *e = Expr::In {
                expr: Box::new(left),
                target: sqlparser::ast::InTarget::List(list),
                negated,
                global: false,
            };
            return ControlFlow::Continue(());
        }
        match e {
            Expr::Cast {
                expr, data_type, ..
            } => {
                let numeric = {
                    let t = data_type.to_string().to_ascii_lowercase();
                    ["int", "numeric", "decimal", "real", "double", "float"]
                        .iter()
                        .any(|k| t.contains(k))
                };
                let inner = taken(expr);
                // '-90'::integer is the number -90, not text.
                *e = match inner {
                    Expr::Value(v)
                        if numeric
                            && matches!(&v.value, Value::SingleQuotedString(t) if t.trim().parse::<f64>().is_ok()) =>
                    {
                        let Value::SingleQuotedString(t) = v.value else {
                            unreachable!("matched above")
                        };
                        Expr::Value(Value::Number(t.trim().to_owned(), false).into())
                    }
                    other => other,
                };
            }
            Expr::CompoundIdentifier(parts) if parts.len() > 2 => {
                let keep = parts.split_off(parts.len() - 2);
                *parts = keep;
            }
            Expr::Identifier(i) if self.ctx.numeric_text.iter().any(|c| c == &i.value) => {
                let inner = taken(e);
                *e = as_numeric(inner);
            }
            Expr::Function(f) => {
                if let Some(ObjectNamePart::Identifier(last)) = f.name.0.last().cloned() {
                    f.name = ObjectName::from(vec![Ident::new(last.value)]);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(schema: Option<&str>, name: &str) -> Option<String> {
        (schema == Some("app")).then(|| format!("app_{name}"))
    }

    fn ctx(numeric: &[String]) -> Context<'_> {
        Context {
            relation: &renamed,
            numeric_text: numeric,
        }
    }

    #[test]
    fn casts_go_and_any_arrays_become_in_lists() {
        let c = ctx(&[]);
        assert_eq!(
            expr_to_sqlite("((x)::text = 'a::b'::text)", "t", &c).unwrap(),
            "((x) = 'a::b')"
        );
        assert_eq!(
            expr_to_sqlite("(status = ANY (ARRAY['new'::text, 'done'::text]))", "t", &c).unwrap(),
            "(status IN ('new', 'done'))"
        );
        assert_eq!(
            expr_to_sqlite("(lat >= ('-90'::integer)::numeric)", "t", &c).unwrap(),
            "(lat >= (-90))"
        );
    }

    #[test]
    fn exact_decimals_compare_as_numbers_but_strings_are_untouched() {
        let lat = vec!["lat".to_string()];
        let c = ctx(&lat);
        assert_eq!(
            expr_to_sqlite("lat <= 90 AND flat > 0 AND label <> 'lat'", "t", &c).unwrap(),
            "CAST(lat AS NUMERIC) <= 90 AND flat > 0 AND label <> 'lat'"
        );
    }

    #[test]
    fn views_are_renamed_and_unqualified() {
        let c = ctx(&[]);
        assert_eq!(
            query_to_sqlite(
                "SELECT u.id, public.group_concat(u.name) AS names FROM app.users u JOIN public.x ON x.id = u.id GROUP BY u.id",
                "v",
                &c
            )
            .unwrap(),
            r#"SELECT u.id, group_concat(u.name) AS names FROM "app_users" u JOIN "x" ON x.id = u.id GROUP BY u.id"#
        );
    }

    #[test]
    fn indexes_translate_or_are_refused() {
        let c = ctx(&[]);
        let i = index_to_sqlite(
            "CREATE UNIQUE INDEX i ON app.t USING btree (lower((a)::text), b DESC) WHERE (b > 0)",
            "i",
            &c,
        )
        .unwrap();
        assert_eq!(i.keys, vec!["lower((a))", "b DESC"]);
        assert_eq!(i.predicate.as_deref(), Some("(b > 0)"));
        assert_eq!((i.schema.as_deref(), i.table.as_str()), (Some("app"), "t"));
        for bad in [
            "CREATE INDEX i ON t USING gist (a)",
            "CREATE INDEX i ON t USING btree (a) INCLUDE (b)",
            "CREATE INDEX i ON t USING btree (a text_pattern_ops)",
            "CREATE INDEX i ON t (a); DROP TABLE x",
        ] {
            assert!(index_to_sqlite(bad, "i", &c).is_err(), "{bad}");
        }
    }
}

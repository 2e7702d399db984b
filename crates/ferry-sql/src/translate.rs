//! SQLite SQL in PostgreSQL, on the syntax tree.
//!
//! Each function parses SQLite text with `sqlparser`'s SQLite dialect, rewrites the tree and
//! prints it. The printed text is the only SQL that reaches PostgreSQL, so whatever the
//! archive held, what runs is one well-formed statement built from parsed parts: a quote
//! break or a stacked statement in an archive field is a parse error here, never SQL there.
//!
//! The rewrites, each on tree nodes rather than text:
//! - identifiers in brackets, backticks or double quotes become PostgreSQL identifiers with
//!   the names the importer gave the tables and columns ([`Context::rename`]);
//! - a double-quoted name that names no column in scope is a string literal, as SQLite reads
//!   it (`DEFAULT "isbn"`, `CHECK (kind <> "x")`);
//! - `x COLLATE NOCASE` becomes `lower(x)`, `COLLATE RTRIM` becomes `rtrim(x)` and
//!   `COLLATE BINARY` is dropped (PostgreSQL compares bytes for equality already);
//! - a join without `ON` or `USING` (`FROM a JOIN b WHERE ...`) gets `ON true`, the condition
//!   SQLite reads into it and PostgreSQL requires;
//! - `flag = 1`, `flag IN (0, 1)` and the like become `true`/`false` for boolean columns.
//! - a TEXT column compared for (in)equality with an integer literal, or with a list of them
//!   (`flag = 0`, `flag IN (0, 1)`), compares with the integer's text (`flag = '0'`), as
//!   SQLite's affinity rule has it; ordering comparisons are left alone, as collations differ;
//! - `x [NOT] LIKE p` becomes `x [NOT] ILIKE p ESCAPE ''` (with its own ESCAPE if it has
//!   one): SQLite's LIKE ignores ASCII case and gives a backslash no meaning;
//! - `date`, `time` or `datetime` of one ISO date or time literal becomes the text SQLite
//!   returns for it (`DATETIME('1997-01-01')` → `'1997-01-01 00:00:00'`), see `fold`.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CreateIndex, Expr, Ident, InTarget, JoinConstraint, JoinOperator, ObjectName,
    ObjectNamePart, Query, SetExpr, Statement, TableFactor, TableWithJoins, Value, VisitMut,
    VisitorMut,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::SqlError;

/// What the translation needs to know about the target.
pub struct Context<'a> {
    /// A SQLite table or column name → its PostgreSQL name (exact match first, then
    /// case-insensitive, else the name lower-cased, as PostgreSQL folds it).
    pub rename: &'a dyn Fn(&str) -> String,
    /// The SQLite columns in scope, when known (a table's CHECK or index). A double-quoted
    /// name that is none of them is a string literal. `Some(&[])` for a DEFAULT.
    pub columns: Option<&'a [String]>,
    /// PostgreSQL names of the boolean columns in scope.
    pub bools: &'a [String],
    /// PostgreSQL names of the columns in scope that have TEXT affinity in SQLite and are
    /// `text` here. SQLite compares such a column with a number as text (`flag = 0` is
    /// `flag = '0'`); PostgreSQL has no `text = integer`.
    pub texts: &'a [String],
}

/// One SQLite expression (CHECK, index predicate, generated column, default), parsed as
/// exactly one expression.
pub fn parse_sqlite_expr(sql: &str, what: &str) -> Result<Expr, SqlError> {
    crate::parse_one_expr(&SQLiteDialect {}, sql, what)
}

/// A SQLite expression, translated and printed for PostgreSQL.
pub fn expr_to_pg(sql: &str, what: &str, ctx: &Context<'_>) -> Result<String, SqlError> {
    expr_to_pg_folding(sql, what, ctx).map(|(expr, _)| expr)
}

/// [`expr_to_pg`], and the `date`/`time`/`datetime` calls on a constant it replaced by
/// their text, as written, for the import's report (see [`View::folded`]).
pub fn expr_to_pg_folding(
    sql: &str,
    what: &str,
    ctx: &Context<'_>,
) -> Result<(String, Vec<String>), SqlError> {
    let mut expr = parse_sqlite_expr(sql, what)?;
    let folded = rewrite(&mut expr, ctx);
    Ok((expr.to_string(), folded))
}

/// A SQLite DEFAULT, read on the tree: its printed PostgreSQL form, and the literal it is
/// when it is one, so the caller can convert literals for the column's type.
#[derive(Debug, Clone, PartialEq)]
pub struct Default {
    pub printed: String,
    /// A numeric literal (with its sign).
    pub number: Option<String>,
    /// A string literal's text (a double-quoted default is one, as SQLite reads it).
    pub text: Option<String>,
}

/// A SQLite expression parsed in the DEFAULT context (double-quoted names are strings).
pub fn default_to_pg(sql: &str, what: &str) -> Result<Default, SqlError> {
    let lower = |s: &str| s.to_lowercase();
    let ctx = Context {
        rename: &lower,
        columns: Some(&[]),
        bools: &[],
        texts: &[],
    };
    let mut expr = parse_sqlite_expr(sql, what)?;
    rewrite(&mut expr, &ctx);
    let e = strip_nested(expr);
    let literal = |e: &Expr| match e {
        Expr::Value(v) => Some(v.value.clone()),
        _ => None,
    };
    let (number, text) = match &e {
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => match literal(expr) {
            Some(Value::Number(n, _)) => (Some(format!("-{n}")), None),
            _ => (None, None),
        },
        e => match literal(e) {
            Some(Value::Number(n, _)) => (Some(n), None),
            Some(Value::SingleQuotedString(t)) => (None, Some(t)),
            _ => (None, None),
        },
    };
    Ok(Default {
        printed: e.to_string(),
        number,
        text,
    })
}

fn strip_nested(e: Expr) -> Expr {
    match e {
        Expr::Nested(inner) => strip_nested(*inner),
        other => other,
    }
}

/// A SQLite `CREATE INDEX`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct PgIndex {
    pub unique: bool,
    /// The SQLite table it is on, as written.
    pub table: String,
    /// Each key, printed for PostgreSQL: a column name, or a parenthesised expression,
    /// with its order.
    pub keys: Vec<String>,
    pub predicate: Option<String>,
    /// The date calls of its keys and predicate replaced by their text (see
    /// [`View::folded`]).
    pub folded: Vec<String>,
}

/// Parses a SQLite `CREATE INDEX` and translates its keys and predicate. `nocase` lists
/// the SQLite columns declared `COLLATE NOCASE`: SQLite's index on such a column compares
/// case-insensitively, so the PostgreSQL key is `lower(column)`.
pub fn index_to_pg(
    sql: &str,
    what: &str,
    ctx: &Context<'_>,
    nocase: &[String],
) -> Result<PgIndex, SqlError> {
    let stmt = one_statement(sql, what)?;
    let Statement::CreateIndex(CreateIndex {
        table_name,
        columns,
        unique,
        predicate,
        ..
    }) = stmt
    else {
        return Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "CREATE INDEX".into(),
            found: first_words(sql),
        });
    };
    let table = last_part(&table_name).ok_or_else(|| SqlError::Untranslatable {
        what: what.to_owned(),
        message: "the index names no table".into(),
    })?;
    let mut keys = Vec::new();
    let mut folded = Vec::new();
    for c in columns {
        let mut e = c.column.expr;
        let plain_nocase = match &e {
            Expr::Identifier(i) => nocase.iter().any(|n| n.eq_ignore_ascii_case(&i.value)),
            _ => false,
        };
        folded.extend(rewrite(&mut e, ctx));
        let e = strip_nested(e);
        let printed = match e {
            Expr::Identifier(_) if plain_nocase => format!("(lower({e}))"),
            Expr::Identifier(_) => e.to_string(),
            other => format!("({other})"),
        };
        keys.push(format!("{printed}{}", c.column.options));
    }
    let predicate = predicate.map(|mut p| {
        folded.extend(rewrite(&mut p, ctx));
        p.to_string()
    });
    Ok(PgIndex {
        unique,
        table,
        keys,
        predicate,
        folded,
    })
}

/// A SQLite `CREATE VIEW` for PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Its own column names, if it lists them.
    pub columns: Vec<String>,
    /// Its query.
    pub query: String,
    /// The `date`/`time`/`datetime` calls on a constant that were replaced by their text
    /// (`DATETIME('1997-01-01')`), for the import's report.
    pub folded: Vec<String>,
}

/// A SQLite `CREATE VIEW`, translated for PostgreSQL.
pub fn view_to_pg(sql: &str, what: &str, ctx: &Context<'_>) -> Result<View, SqlError> {
    match one_statement(sql, what)? {
        Statement::CreateView(v) => {
            let mut query: Box<Query> = v.query;
            let mut rewriter = Rewriter::new(ctx);
            let _ = query.visit(&mut rewriter);
            let columns = v
                .columns
                .iter()
                .map(|c| pg_ident(&(ctx.rename)(&c.name.value)).to_string())
                .collect();
            Ok(View {
                columns,
                query: query.to_string(),
                folded: rewriter.folded,
            })
        }
        _ => Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "CREATE VIEW".into(),
            found: first_words(sql),
        }),
    }
}

/// The relations a SQLite `CREATE VIEW` reads, when each is a plain named relation: `None`
/// when it has a CTE, a subquery or function in FROM, or does not parse. A caller that
/// knows which names are base tables can then tell what a column name in the view means.
pub fn view_base_relations(sql: &str) -> Option<Vec<String>> {
    use sqlparser::ast::{TableFactor, Visit, Visitor};
    struct Plain {
        names: Vec<String>,
        plain: bool,
    }
    impl Visitor for Plain {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            self.plain &= q.with.is_none();
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            match t {
                TableFactor::Table {
                    name, args: None, ..
                } => match last_part(name) {
                    Some(n) => self.names.push(n),
                    None => self.plain = false,
                },
                // Parenthesised joins (`FROM ((a JOIN b) JOIN c)`): their tables are
                // visited in turn.
                TableFactor::NestedJoin { .. } => {}
                _ => self.plain = false,
            }
            ControlFlow::Continue(())
        }
    }
    let Ok(Statement::CreateView(v)) = one_statement(sql, "view") else {
        return None;
    };
    let mut p = Plain {
        names: Vec::new(),
        plain: true,
    };
    let _ = v.query.visit(&mut p);
    p.plain.then_some(p.names)
}

/// SQLite reads a join without `ON` or `USING` (`FROM a JOIN b WHERE ...`, GeoPackage's
/// `st_geometry_columns`) as one with a condition that always holds; PostgreSQL requires the
/// condition, so it is written out: `ON true`. Subqueries are queries of their own, which
/// the visitor reaches in turn.
fn joins_on_true(body: &mut SetExpr) {
    fn tables(t: &mut TableWithJoins) {
        nested(&mut t.relation);
        for j in &mut t.joins {
            nested(&mut j.relation);
            match &mut j.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                    if matches!(c, JoinConstraint::None) =>
                {
                    *c = JoinConstraint::On(Expr::Value(Value::Boolean(true).into()));
                }
                _ => {}
            }
        }
    }
    fn nested(f: &mut TableFactor) {
        if let TableFactor::NestedJoin {
            table_with_joins, ..
        } = f
        {
            tables(table_with_joins);
        }
    }
    match body {
        SetExpr::Select(s) => s.from.iter_mut().for_each(tables),
        SetExpr::SetOperation { left, right, .. } => {
            joins_on_true(left);
            joins_on_true(right);
        }
        _ => {}
    }
}

fn one_statement(sql: &str, what: &str) -> Result<Statement, SqlError> {
    let mut stmts = Parser::parse_sql(&SQLiteDialect {}, sql).map_err(|e| parse_error(what, e))?;
    if stmts.len() != 1 {
        return Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "exactly one statement".into(),
            found: format!("{} statements", stmts.len()),
        });
    }
    Ok(stmts.remove(0))
}

fn first_words(sql: &str) -> String {
    let w: Vec<&str> = sql.split_whitespace().take(3).collect();
    format!("`{}`", w.join(" "))
}

fn parse_error(what: &str, e: impl std::fmt::Display) -> SqlError {
    SqlError::Parse {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

pub(crate) fn last_part(n: &ObjectName) -> Option<String> {
    match n.0.last()? {
        ObjectNamePart::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

fn pg_ident(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// Rewrites in place; returns the date calls it folded to their text.
fn rewrite(e: &mut Expr, ctx: &Context<'_>) -> Vec<String> {
    let mut rewriter = Rewriter::new(ctx);
    let _ = e.visit(&mut rewriter);
    rewriter.folded
}

/// Applies this module's rewrites to an expression tree in place, and returns the
/// `date`/`time`/`datetime` calls on a constant it replaced by their text, as written.
pub fn rewrite_expr(e: &mut Expr, ctx: &Context<'_>) -> Vec<String> {
    rewrite(e, ctx)
}

struct Rewriter<'c, 'a> {
    ctx: &'c Context<'a>,
    /// The date calls folded to constants, as written.
    folded: Vec<String>,
}

impl<'c, 'a> Rewriter<'c, 'a> {
    fn new(ctx: &'c Context<'a>) -> Self {
        Rewriter {
            ctx,
            folded: Vec::new(),
        }
    }

    fn is_column(&self, name: &str) -> bool {
        self.ctx
            .columns
            .is_none_or(|cols| cols.iter().any(|c| c.eq_ignore_ascii_case(name)))
    }

    fn is_bool(&self, e: &Expr) -> bool {
        named_in(e, self.ctx.bools)
    }

    fn is_text(&self, e: &Expr) -> bool {
        named_in(e, self.ctx.texts)
    }
}

/// Whether `e` is a column (bare or qualified) named in `names`.
fn named_in(e: &Expr, names: &[String]) -> bool {
    let ident = match e {
        Expr::Nested(inner) => return named_in(inner, names),
        Expr::Identifier(i) => i,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => i,
            None => return false,
        },
        _ => return false,
    };
    // An unquoted name is the one PostgreSQL folds it to.
    let name = match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    };
    names.contains(&name)
}

/// An integer literal as SQLite's TEXT affinity renders it (`007` → `'7'`, `-5` → `'-5'`);
/// anything else (reals, hex, out of range) is not rewritten.
fn integer_text(e: &Expr) -> Option<Expr> {
    let (negative, v) = match e {
        Expr::Value(v) => (false, v),
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => (true, v),
            _ => return None,
        },
        _ => return None,
    };
    let Value::Number(n, _) = &v.value else {
        return None;
    };
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    let i: i64 = format!("{sign}{n}").parse().ok()?;
    Some(Expr::Value(Value::SingleQuotedString(i.to_string()).into()))
}

fn bool_of(e: &Expr) -> Option<bool> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if n == "0" => Some(false),
            Value::Number(n, _) if n == "1" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

fn bool_lit(b: bool) -> Expr {
    Expr::Value(Value::Boolean(b).into())
}

fn call(name: &str, arg: Expr) -> Expr {
    let mut f = parse_sqlite_expr(&format!("{name}(x)"), name).expect("a one-argument call");
    if let Expr::Function(func) = &mut f
        && let sqlparser::ast::FunctionArguments::List(list) = &mut func.args
        && let Some(sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(a))) =
            list.args.first_mut()
    {
        *a = arg;
    }
    f
}

/// A plain call: its one-part name and its arguments, when each is a bare expression and
/// nothing else is attached (`DISTINCT`, `FILTER`, `OVER`, `WITHIN GROUP`, clauses).
fn plain_call(e: &Expr) -> Option<(String, Vec<&Expr>)> {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Expr::Function(f) = e else { return None };
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() || f.name.0.len() != 1 {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x),
            _ => None,
        })
        .collect::<Option<_>>()?;
    Some((last_part(&f.name)?, args))
}

/// What a SQLite function call becomes, when it has a translation: `like(p, x[, esc])`,
/// which is `x LIKE p [ESCAPE esc]` (PostgreSQL's `like(a, b)` is `a LIKE b`, the other way
/// round), as the `ILIKE` the LIKE operator becomes; a `date`/`time`/`datetime` of one
/// string literal as the text SQLite returns for it, when certain (see `fold`), with
/// `true` for a fold.
fn translated_call(e: &Expr) -> Option<(Expr, bool)> {
    let (name, args) = plain_call(e)?;
    if name.eq_ignore_ascii_case("like") {
        let (pattern, expr, escape) = match args.as_slice() {
            [p, x] => (*p, *x, None),
            [p, x, esc] => (*p, *x, Some(*esc)),
            _ => return None,
        };
        return Some((
            Expr::ILike {
                negated: false,
                any: false,
                expr: Box::new(expr.clone()),
                pattern: Box::new(pattern.clone()),
                escape_char: Some(Box::new(escape.cloned().unwrap_or_else(no_escape))),
            },
            false,
        ));
    }
    match args.as_slice() {
        [Expr::Value(v)] => match &v.value {
            Value::SingleQuotedString(lit) => crate::fold::date_function(&name, lit)
                .map(|text| (Expr::Value(Value::SingleQuotedString(text).into()), true)),
            _ => None,
        },
        _ => None,
    }
}

/// `ESCAPE ''`: no escape character, as in SQLite's LIKE without ESCAPE.
fn no_escape() -> Expr {
    Expr::Value(Value::SingleQuotedString(String::new()).into())
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        joins_on_true(&mut q.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // SQLite's rule: a double-quoted name that resolves to no column is a string.
        if let Expr::Identifier(i) = e
            && i.quote_style == Some('"')
            && !self.is_column(&i.value)
        {
            *e = Expr::Value(Value::SingleQuotedString(i.value.clone()).into());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        match e {
            Expr::Collate { expr, collation } => {
                let coll = last_part(collation)
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let inner = std::mem::replace(expr.as_mut(), Expr::Value(Value::Null.into()));
                *e = match coll.as_str() {
                    "nocase" => call("lower", inner),
                    "rtrim" => call("rtrim", inner),
                    "binary" => inner,
                    _ => {
                        **expr = inner;
                        return ControlFlow::Continue(());
                    }
                };
            }
            Expr::BinaryOp {
                left,
                op:
                    op @ (BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq),
                right,
            } => {
                let equality = matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq);
                if self.is_bool(left)
                    && let Some(b) = bool_of(right)
                {
                    **right = bool_lit(b);
                } else if self.is_bool(right)
                    && let Some(b) = bool_of(left)
                {
                    **left = bool_lit(b);
                } else if equality
                    && self.is_text(left)
                    && let Some(t) = integer_text(right)
                {
                    **right = t;
                } else if equality
                    && self.is_text(right)
                    && let Some(t) = integer_text(left)
                {
                    **left = t;
                }
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                ..
            } if self.is_bool(expr) => {
                for item in list.iter_mut() {
                    if let Some(b) = bool_of(item) {
                        *item = bool_lit(b);
                    }
                }
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                ..
            } if self.is_text(expr) => {
                for item in list.iter_mut() {
                    if let Some(t) = integer_text(item) {
                        *item = t;
                    }
                }
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => {
                // SQLite's LIKE ignores ASCII case, and without ESCAPE a backslash is an
                // ordinary character; PostgreSQL's LIKE is case-sensitive and escapes with
                // a backslash by default.
                *e = Expr::ILike {
                    negated: *negated,
                    any: false,
                    expr: std::mem::replace(expr, Box::new(Expr::Value(Value::Null.into()))),
                    pattern: std::mem::replace(pattern, Box::new(Expr::Value(Value::Null.into()))),
                    escape_char: Some(escape_char.take().unwrap_or_else(|| Box::new(no_escape()))),
                };
            }
            Expr::Function(_) => {
                if let Some((translated, folded)) = translated_call(e) {
                    if folded {
                        self.folded.push(e.to_string());
                    }
                    *e = translated;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_ident(&mut self, ident: &mut Ident) -> ControlFlow<()> {
        let renamed = (self.ctx.rename)(&ident.value);
        // Unquoted names that PostgreSQL folds to the right name stay unquoted, so that
        // function names and keywords print as they were.
        if ident.quote_style.is_some() || renamed != ident.value.to_lowercase() {
            *ident = pg_ident(&renamed);
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(s: &str) -> String {
        s.to_lowercase()
    }

    fn ctx<'a>(cols: Option<&'a [String]>, bools: &'a [String]) -> Context<'a> {
        Context {
            rename: &lower,
            columns: cols,
            bools,
            texts: &[],
        }
    }

    #[test]
    fn identifiers_in_any_quotes_become_postgresql_names() {
        let cols = vec!["Title".to_string(), "n".to_string()];
        let c = ctx(Some(&cols), &[]);
        assert_eq!(
            expr_to_pg("length([Title]) > 0 AND `n` < 3", "t", &c).unwrap(),
            r#"length("title") > 0 AND "n" < 3"#
        );
        assert_eq!(
            expr_to_pg(r#""Title" <> "x""#, "t", &c).unwrap(),
            r#""title" <> 'x'"#
        );
    }

    #[test]
    fn string_literals_are_never_rewritten() {
        let bools = vec!["lat".to_string()];
        let c = ctx(None, &bools);
        assert_eq!(
            expr_to_pg("label <> 'lat' AND lat = 1", "t", &c).unwrap(),
            "label <> 'lat' AND lat = true"
        );
        let bools = vec!["done".to_string()];
        let c = ctx(None, &bools);
        assert_eq!(
            expr_to_pg(
                "t.done = 0 AND x = 1 AND done IN (0, 1) AND '1' = done AND done<>1",
                "t",
                &c
            )
            .unwrap(),
            "t.done = false AND x = 1 AND done IN (false, true) AND '1' = done AND done <> true"
        );
    }

    #[test]
    fn stacked_statements_and_quote_breaks_do_not_parse() {
        let c = ctx(None, &[]);
        for hostile in [
            "length(title) > 0); DROP TABLE other.y; SELECT (1",
            "1; ATTACH DATABASE '/tmp/x' AS y",
            "'a'' ; DROP TABLE t; --",
        ] {
            assert!(expr_to_pg(hostile, "t", &c).is_err(), "{hostile}");
        }
    }

    #[test]
    fn nocase_becomes_lower() {
        let cols = vec!["email".to_string(), "name".to_string()];
        let c = ctx(Some(&cols), &[]);
        let i = index_to_pg(
            "CREATE UNIQUE INDEX [ix] ON [Users] ([email] COLLATE NOCASE, name DESC)",
            "index ix",
            &c,
            &[],
        )
        .unwrap();
        assert_eq!(i.keys, vec![r#"(lower("email"))"#, "name DESC"]);
        assert!(i.unique);
        assert_eq!(i.table, "Users");
        let j = index_to_pg(
            "CREATE INDEX j ON t (name)",
            "index j",
            &c,
            &["NAME".into()],
        )
        .unwrap();
        assert_eq!(j.keys, vec!["(lower(name))"]);
    }

    #[test]
    fn views_keep_their_columns_and_requote() {
        let c = ctx(None, &[]);
        let v = view_to_pg(
            "CREATE VIEW `v` (a, b) AS SELECT [AlbumId], `Title` FROM [Album] WHERE Title <> 'x'",
            "view v",
            &c,
        )
        .unwrap();
        assert_eq!(v.columns, vec![r#""a""#, r#""b""#]);
        assert!(v.folded.is_empty());
        assert_eq!(
            v.query,
            r#"SELECT "albumid", "title" FROM "album" WHERE Title <> 'x'"#
        );
    }

    #[test]
    fn joins_without_a_condition_get_on_true() {
        let c = ctx(None, &[]);
        let v = view_to_pg(
            "CREATE VIEW v AS SELECT g.a, s.b FROM g JOIN s LEFT JOIN t \
             WHERE g.id = s.id AND g.id IN (SELECT x FROM (u JOIN w) INNER JOIN z ON z.x = u.x) \
             UNION SELECT a, b FROM g NATURAL JOIN s CROSS JOIN t JOIN r USING (a)",
            "view v",
            &c,
        )
        .unwrap();
        assert_eq!(
            v.query,
            "SELECT g.a, s.b FROM g JOIN s ON true LEFT JOIN t ON true \
             WHERE g.id = s.id AND g.id IN (SELECT x FROM (u JOIN w ON true) INNER JOIN z ON z.x = u.x) \
             UNION SELECT a, b FROM g NATURAL JOIN s CROSS JOIN t JOIN r USING(a)"
        );
    }

    #[test]
    fn text_columns_compare_with_integers_as_text() {
        let texts = vec!["discontinued".to_string()];
        let c = Context {
            rename: &lower,
            columns: None,
            bools: &[],
            texts: &texts,
        };
        assert_eq!(
            expr_to_pg(
                "(((Products.Discontinued)=0)) AND 1 <> discontinued AND discontinued IN (007, -5, 1.5) \
                 AND discontinued = 1.5 AND discontinued < 1 AND n = 0",
                "view v",
                &c
            )
            .unwrap(),
            "(((Products.Discontinued) = '0')) AND '1' <> discontinued AND discontinued IN ('7', '-5', 1.5) \
             AND discontinued = 1.5 AND discontinued < 1 AND n = 0"
        );
    }

    #[test]
    fn a_view_reads_base_relations_only_without_subqueries_in_from_or_ctes() {
        assert_eq!(
            view_base_relations(
                "CREATE VIEW v AS SELECT a.x FROM [A] a JOIN b ON a.id = b.id \
                 WHERE a.y IN (SELECT y FROM c)"
            ),
            Some(vec!["A".to_string(), "b".into(), "c".into()])
        );
        assert_eq!(
            view_base_relations(
                "CREATE VIEW v AS SELECT 1 FROM ((a JOIN b ON a.x = b.x) JOIN c ON 1)"
            ),
            Some(vec!["a".to_string(), "b".into(), "c".into()])
        );
        for sql in [
            "CREATE VIEW v AS SELECT * FROM (SELECT trim(code) AS code FROM t) WHERE code = 0",
            "CREATE VIEW v AS WITH w AS (SELECT 1 AS code) SELECT * FROM w WHERE code = 0",
            "CREATE VIEW v AS SELECT * FROM json_each('[1]')",
            "not a view",
        ] {
            assert_eq!(view_base_relations(sql), None, "{sql}");
        }
    }

    #[test]
    fn like_ignores_case_and_backslashes_as_in_sqlite() {
        let c = ctx(None, &[]);
        assert_eq!(
            expr_to_pg(
                "a LIKE 'x\\%' AND b NOT LIKE '%Y%' AND c LIKE '!_%' ESCAPE '!' AND d GLOB 'a*'",
                "check",
                &c
            )
            .unwrap(),
            "a ILIKE 'x\\%' ESCAPE '' AND b NOT ILIKE '%Y%' ESCAPE '' AND c ILIKE '!_%' ESCAPE '!' AND d GLOB 'a*'"
        );
        // The function form takes the pattern first.
        assert_eq!(
            expr_to_pg("like('a%', name) AND like('!_%', code, '!')", "check", &c).unwrap(),
            "name ILIKE 'a%' ESCAPE '' AND code ILIKE '!_%' ESCAPE '!'"
        );
    }

    #[test]
    fn date_calls_on_a_literal_become_the_text_sqlite_returns() {
        let c = ctx(None, &[]);
        let v = view_to_pg(
            "CREATE VIEW v AS SELECT OrderID FROM Orders \
             WHERE ShippedDate BETWEEN DATETIME('1997-01-01') And datetime('1997-12-31') \
             AND d > date('now') AND e < date('1997-01-01', '+1 day') AND f = \"date\"('1997-01-01')",
            "view v",
            &c,
        )
        .unwrap();
        assert_eq!(
            v.folded,
            [
                "DATETIME('1997-01-01')",
                "datetime('1997-12-31')",
                "\"date\"('1997-01-01')"
            ]
        );
        assert_eq!(
            v.query,
            "SELECT OrderID FROM Orders WHERE ShippedDate BETWEEN '1997-01-01 00:00:00' \
             AND '1997-12-31 00:00:00' AND d > date('now') AND e < date('1997-01-01', '+1 day') \
             AND f = '1997-01-01'"
        );
        assert_eq!(
            expr_to_pg("d >= time('1997-01-01 08:30')", "check", &c).unwrap(),
            "d >= '08:30:00'"
        );
    }

    #[test]
    fn defaults_read_double_quotes_as_strings() {
        let e = default_to_pg(r#""{}""#, "d").unwrap();
        assert_eq!(e.printed, "'{}'");
        assert_eq!(e.text.as_deref(), Some("{}"));
        let e = default_to_pg(r#"("")"#, "d").unwrap();
        assert_eq!(e.printed, "''");
        let e = default_to_pg("(-5)", "d").unwrap();
        assert_eq!(e.number.as_deref(), Some("-5"));
    }
}

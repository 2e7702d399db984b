//! ferry's one SQL layer.
//!
//! An archive carries SQL text: table and view definitions, CHECK expressions, index
//! predicates, defaults. ferry treats that text as *data*. Nothing in an archive is ever handed
//! to a multi-statement API, and every piece of it is read through the `sqlparser` crate
//! before it is used:
//!
//! - [`check`] decides whether a PostgreSQL definition is what its manifest entry says it is:
//!   one statement, of the entry's kind, naming the entry's object, and calling none of the
//!   server functions that reach outside the database (files, other sessions, settings). The
//!   server's extended protocol then guarantees the "one statement" half (it refuses a second
//!   command in a prepared statement); this module guarantees the "right kind, right name"
//!   half, which no protocol can. SQLite definitions are checked by SQLite itself, through an
//!   authorizer (see `ferry-sqlite`), because only SQLite knows every corner of its grammar.
//! - [`translate`] turns SQLite expressions, indexes and views into PostgreSQL on the syntax
//!   tree and prints them from it: identifiers in brackets, backticks or double quotes,
//!   double-quoted string defaults, `COLLATE NOCASE`, boolean comparisons. There is no string
//!   surgery, so a string literal that looks like a name stays a string literal.
//!   SQLite's `date`, `time` and `datetime` of a constant become the constant text they
//!   return ([`fold`]), checked in tests against the bundled SQLite itself.
//!
//! The crate knows SQL dialects, not engines' connections: both adapters depend on it, and it
//! depends on neither.

pub mod check;
mod fold;
pub mod rewrite;
pub mod sqlite;
pub mod to_sqlite;
pub mod translate;
pub mod trigger;

pub use check::{Expect, check_pg_definition};

/// Parses exactly one expression in `dialect`: trailing text (a second statement, a quote
/// break) is an error, never ignored.
pub(crate) fn parse_one_expr(
    dialect: &dyn sqlparser::dialect::Dialect,
    sql: &str,
    what: &str,
) -> Result<sqlparser::ast::Expr, SqlError> {
    let parse_error = |e: sqlparser::parser::ParserError| SqlError::Parse {
        what: what.to_owned(),
        message: e.to_string(),
    };
    let mut p = sqlparser::parser::Parser::new(dialect)
        .try_with_sql(sql)
        .map_err(parse_error)?;
    let expr = p.parse_expr().map_err(parse_error)?;
    let next = p.peek_token();
    if next.token != sqlparser::tokenizer::Token::EOF {
        return Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "the end of the expression".into(),
            found: format!("`{}`", next.token),
        });
    }
    Ok(expr)
}

/// Why archive SQL was refused or could not be translated. Each names what it was about.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SqlError {
    #[error("{what}: does not parse ({message})")]
    Parse { what: String, message: String },
    #[error("{what}: expected {expected}, found {found}")]
    Unexpected {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what}: calls {function}(), which an archive may not use")]
    Denied { what: String, function: String },
    #[error("{what}: {message}")]
    Untranslatable { what: String, message: String },
}

//! SQLite triggers that applications write, read for PostgreSQL.
//!
//! SQLite trigger bodies are SQL statements; PostgreSQL's are functions. No general
//! translation exists, but three shapes cover what applications write, and each has an
//! exact PL/pgSQL equivalent:
//!
//! - **Touch** (`AFTER UPDATE ... BEGIN UPDATE t SET updated_at = CURRENT_TIMESTAMP WHERE
//!   id = NEW.id; END`, or `AFTER INSERT`, the row named by its key or its rowid): a `BEFORE`
//!   trigger of the same events that sets the columns on `NEW`. Same result, one write
//!   instead of two.
//! - **Audit** (`INSERT INTO log(...) VALUES (NEW.x, OLD.y, ...)` into another table): the
//!   same inserts in a trigger function, at the same timing.
//! - **Guard** (`SELECT RAISE(ABORT, 'msg') [WHERE cond]`, or the trigger's `WHEN`): `RAISE
//!   EXCEPTION` under the same condition; `RAISE(IGNORE)` skips the row (`RETURN NULL`).
//!
//! This module recognises the shapes on the syntax tree and hands back their parts, still as
//! SQLite expressions where the value's meaning depends on the target column's type (the
//! importer owns that mapping); anything else is [`SqlError::Untranslatable`].

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, ConditionalStatements, CreateTrigger, Expr, ObjectName,
    ObjectNamePart, SelectItem, SetExpr, Statement, TableFactor, TableObject, TriggerEvent,
    TriggerPeriod, Value,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::SqlError;
use crate::translate::{Context, rewrite_expr};

/// A recognised SQLite trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub name: String,
    /// The SQLite table it is on.
    pub table: String,
    /// `BEFORE` or `AFTER`, as PostgreSQL will run it.
    pub timing: &'static str,
    /// PostgreSQL events: `INSERT`, `UPDATE`, `UPDATE OF "a", "b"`, `DELETE`.
    pub events: Vec<String>,
    /// The trigger's `WHEN`, translated.
    pub when: Option<String>,
    pub action: Action,
    /// The date calls of its `WHEN` and guard condition replaced by their text (see
    /// [`crate::translate::View::folded`]).
    pub folded: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Set columns of the row being inserted or updated: (SQLite column, SQLite expression).
    Touch(Vec<(String, String)>),
    /// Insert into other tables.
    Audit(Vec<AuditInsert>),
    /// Refuse (or, with `message: None`, silently skip) the row when `condition` holds.
    Guard {
        condition: Option<String>,
        message: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditInsert {
    /// The SQLite table inserted into.
    pub table: String,
    /// Its SQLite columns, if the statement names them.
    pub columns: Option<Vec<String>>,
    /// One SQLite expression per column.
    pub values: Vec<String>,
}

/// What names a table's rows, for recognising a touch of the row that fired the trigger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowKey {
    /// The primary-key columns.
    pub columns: Vec<String>,
    /// The names of the rowid that name the row (lower case): `rowid`, `_rowid_` and `oid`
    /// in a rowid table, less any a column takes; none in a WITHOUT ROWID table.
    pub rowid: Vec<String>,
}

/// Reads a SQLite `CREATE TRIGGER` as one of the three shapes. `key_of` says what names a
/// table's rows, so that a touch is recognised only when it updates the row that fired it.
pub fn sqlite_trigger(
    sql: &str,
    what: &str,
    ctx: &Context<'_>,
    key_of: &dyn Fn(&str) -> RowKey,
) -> Result<Trigger, SqlError> {
    let no = |message: &str| SqlError::Untranslatable {
        what: what.to_owned(),
        message: message.to_owned(),
    };
    let mut stmts = Parser::parse_sql(&SQLiteDialect {}, sql).map_err(|e| SqlError::Parse {
        what: what.to_owned(),
        message: e.to_string(),
    })?;
    if stmts.len() != 1 {
        return Err(no("not one statement"));
    }
    let Statement::CreateTrigger(CreateTrigger {
        name,
        period,
        events,
        table_name,
        condition,
        statements: Some(body),
        ..
    }) = stmts.remove(0)
    else {
        return Err(no("not a CREATE TRIGGER with a body"));
    };
    let name = last(&name).ok_or_else(|| no("no name"))?;
    let table = last(&table_name).ok_or_else(|| no("no table"))?;
    let body = match body {
        ConditionalStatements::BeginEnd(b) => b.statements,
        ConditionalStatements::Sequence { statements } => statements,
    };
    let timing = match period {
        Some(TriggerPeriod::After) => "AFTER",
        Some(TriggerPeriod::Before) | None => "BEFORE",
        _ => return Err(no("INSTEAD OF triggers (on views) do not translate")),
    };
    let mut pg_events = Vec::new();
    for e in &events {
        pg_events.push(match e {
            TriggerEvent::Insert => "INSERT".to_owned(),
            TriggerEvent::Delete => "DELETE".to_owned(),
            TriggerEvent::Update(cols) if cols.is_empty() => "UPDATE".to_owned(),
            TriggerEvent::Update(cols) => format!(
                "UPDATE OF {}",
                cols.iter()
                    .map(|c| quote((ctx.rename)(&c.value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            TriggerEvent::Truncate => return Err(no("TRUNCATE triggers do not exist in SQLite")),
        });
    }
    let mut when_folded = Vec::new();
    let when = condition.map(|mut c| {
        when_folded = rewrite_expr(&mut c, ctx);
        c.to_string()
    });
    // A touch runs after the row is written: before an insert there is no row for SQLite's
    // UPDATE to find, and before an update SQLite leaves the result undefined (the row the
    // statement then writes was read before the touch).
    let touchable = period == Some(TriggerPeriod::After)
        && events
            .iter()
            .all(|e| matches!(e, TriggerEvent::Update(_) | TriggerEvent::Insert));
    let done = |timing: &'static str, action: Action, more: Vec<String>| {
        Ok(Trigger {
            name: name.clone(),
            table: table.clone(),
            timing,
            events: pg_events.clone(),
            when: when.clone(),
            action,
            folded: when_folded.iter().cloned().chain(more).collect(),
        })
    };

    // Touch: one UPDATE of the same table, of the row that fired the trigger.
    if let [Statement::Update(u)] = body.as_slice()
        && touchable
        && u.from.is_none()
        && let TableFactor::Table { name: t, .. } = &u.table.relation
        && last(t).is_some_and(|t| t.eq_ignore_ascii_case(&table))
        && u.selection
            .as_ref()
            .is_some_and(|w| is_same_row(w, &key_of(&table)))
    {
        let mut sets = Vec::new();
        for a in &u.assignments {
            let AssignmentTarget::ColumnName(col) = &a.target else {
                return Err(no("a tuple assignment"));
            };
            let col = last(col).ok_or_else(|| no("an assignment to no column"))?;
            sets.push((col, a.value.to_string()));
        }
        return done("BEFORE", Action::Touch(sets), Vec::new());
    }

    // Audit: INSERTs into other tables, of one row each.
    if !body.is_empty() && body.iter().all(|s| matches!(s, Statement::Insert(_))) {
        let mut inserts = Vec::new();
        for s in &body {
            let Statement::Insert(i) = s else {
                unreachable!("checked above")
            };
            let TableObject::TableName(t) = &i.table else {
                return Err(no("an insert into a table function"));
            };
            let target = last(t).ok_or_else(|| no("an insert into no table"))?;
            if target.eq_ignore_ascii_case(&table) {
                return Err(no("an insert into its own table"));
            }
            let row = match i.source.as_deref().map(|q| q.body.as_ref()) {
                Some(SetExpr::Values(v)) if v.rows.len() == 1 => v.rows[0].content.clone(),
                Some(SetExpr::Select(sel)) if sel.from.is_empty() && sel.selection.is_none() => {
                    sel.projection
                        .iter()
                        .map(|p| match p {
                            SelectItem::UnnamedExpr(e)
                            | SelectItem::ExprWithAlias { expr: e, .. } => Ok(e.clone()),
                            _ => Err(no("a wildcard in an audit insert")),
                        })
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(no("an insert that is not one row of values")),
            };
            let columns = (!i.columns.is_empty())
                .then(|| i.columns.iter().filter_map(last).collect::<Vec<_>>());
            inserts.push(AuditInsert {
                table: target,
                columns,
                values: row.iter().map(ToString::to_string).collect(),
            });
        }
        return done(timing, Action::Audit(inserts), Vec::new());
    }

    // Guard: SELECT RAISE(...) [WHERE cond], or SELECT CASE WHEN cond THEN RAISE(...) END.
    if let [Statement::Query(q)] = body.as_slice()
        && let SetExpr::Select(sel) = q.body.as_ref()
        && sel.from.is_empty()
        && let [SelectItem::UnnamedExpr(e)] = sel.projection.as_slice()
    {
        let (mut condition, raise) = match e {
            Expr::Function(_) => (sel.selection.clone(), e.clone()),
            Expr::Case {
                operand: None,
                conditions,
                else_result: None,
                ..
            } if conditions.len() == 1 && sel.selection.is_none() => (
                Some(conditions[0].condition.clone()),
                conditions[0].result.clone(),
            ),
            _ => return Err(no("a SELECT that is not a RAISE guard")),
        };
        let message =
            raise_message(&raise).ok_or_else(|| no("a SELECT that is not a RAISE guard"))?;
        let folded = match condition.as_mut() {
            Some(c) => rewrite_expr(c, ctx),
            None => Vec::new(),
        };
        return done(
            timing,
            Action::Guard {
                condition: condition.map(|c| c.to_string()),
                message,
            },
            folded,
        );
    }
    Err(no(
        "only the common shapes translate (set columns of the updated row, insert into another table, RAISE guards)",
    ))
}

/// `RAISE(ABORT|FAIL|ROLLBACK, 'msg')` → `Some(Some(msg))`; `RAISE(IGNORE)` → `Some(None)`.
fn raise_message(e: &Expr) -> Option<Option<String>> {
    let Expr::Function(f) = e else { return None };
    if !last(&f.name)?.eq_ignore_ascii_case("RAISE") {
        return None;
    }
    let sqlparser::ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => {
                Some(e)
            }
            _ => None,
        })
        .collect();
    match args.as_slice() {
        [Expr::Identifier(k)] if k.value.eq_ignore_ascii_case("IGNORE") => Some(None),
        [Expr::Identifier(k), Expr::Value(v)]
            if ["ABORT", "FAIL", "ROLLBACK"]
                .iter()
                .any(|x| k.value.eq_ignore_ascii_case(x)) =>
        {
            match &v.value {
                Value::SingleQuotedString(m) => Some(Some(m.clone())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `key = NEW.key` (either way round, ANDed over a composite key).
fn is_same_row(w: &Expr, key: &RowKey) -> bool {
    let mut seen = Vec::new();
    fn walk(e: &Expr, seen: &mut Vec<String>) -> bool {
        match e {
            Expr::Nested(i) => walk(i, seen),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => walk(left, seen) && walk(right, seen),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let pair = match (plain(left), new_ref(right)) {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => plain(right).zip(new_ref(left)),
                };
                match pair {
                    Some((a, b)) if a.eq_ignore_ascii_case(&b) => {
                        seen.push(a.to_lowercase());
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }
    fn plain(e: &Expr) -> Option<String> {
        match e {
            Expr::Identifier(i) => Some(i.value.clone()),
            _ => None,
        }
    }
    fn new_ref(e: &Expr) -> Option<String> {
        match e {
            Expr::CompoundIdentifier(p)
                if p.len() == 2 && p[0].value.eq_ignore_ascii_case("NEW") =>
            {
                Some(p[1].value.clone())
            }
            _ => None,
        }
    }
    if !walk(w, &mut seen) {
        return false;
    }
    let key_columns: Vec<String> = key.columns.iter().map(|k| k.to_lowercase()).collect();
    // Only the row's names: another condition (`AND x = NEW.x`) could match no row in
    // SQLite, where the trigger then changes nothing.
    let names_only = seen
        .iter()
        .all(|s| key_columns.contains(s) || key.rowid.contains(s));
    let by_rowid = seen.iter().any(|s| key.rowid.contains(s));
    let by_key = !key_columns.is_empty() && key_columns.iter().all(|k| seen.contains(k));
    names_only && (by_rowid || by_key)
}

fn last(n: &ObjectName) -> Option<String> {
    match n.0.last()? {
        ObjectNamePart::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

fn quote(s: String) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(s: &str) -> String {
        s.to_lowercase()
    }

    fn read(sql: &str) -> Result<Trigger, SqlError> {
        let ctx = Context {
            rename: &lower,
            columns: None,
            bools: &[],
            texts: &[],
        };
        sqlite_trigger(sql, "trigger", &ctx, &|t| RowKey {
            columns: vec!["id".to_string()],
            // `norowid` stands for a WITHOUT ROWID table, `orders` for one with a column
            // named oid.
            rowid: match t {
                "norowid" => vec![],
                "orders" => vec!["rowid".into(), "_rowid_".into()],
                _ => vec!["rowid".into(), "_rowid_".into(), "oid".into()],
            },
        })
    }

    #[test]
    fn the_three_shapes() {
        let t = read("CREATE TRIGGER touch AFTER UPDATE ON [Doc] BEGIN UPDATE Doc SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END").unwrap();
        assert_eq!(t.timing, "BEFORE");
        assert_eq!(
            t.action,
            Action::Touch(vec![("updated_at".into(), "CURRENT_TIMESTAMP".into())])
        );
        let t = read("CREATE TRIGGER a AFTER DELETE ON doc BEGIN INSERT INTO log(doc_id, what) VALUES (OLD.id, 'deleted'); END").unwrap();
        assert_eq!(t.timing, "AFTER");
        assert_eq!(
            t.action,
            Action::Audit(vec![AuditInsert {
                table: "log".into(),
                columns: Some(vec!["doc_id".into(), "what".into()]),
                values: vec!["OLD.id".into(), "'deleted'".into()],
            }])
        );
        let t = read("CREATE TRIGGER g BEFORE INSERT ON doc BEGIN SELECT RAISE(ABORT, 'size must not be negative') WHERE NEW.size < 0; END").unwrap();
        assert_eq!(
            t.action,
            Action::Guard {
                condition: Some("NEW.size < 0".into()),
                message: Some("size must not be negative".into())
            }
        );
        let t = read("CREATE TRIGGER g2 BEFORE UPDATE OF size ON doc WHEN NEW.size > 10 BEGIN SELECT CASE WHEN OLD.locked THEN RAISE(IGNORE) END; END").unwrap();
        assert_eq!(t.events, vec![r#"UPDATE OF "size""#]);
        assert_eq!(t.when.as_deref(), Some("NEW.size > 10"));
        assert_eq!(
            t.action,
            Action::Guard {
                condition: Some("OLD.locked".into()),
                message: None
            }
        );
    }

    #[test]
    fn a_touch_after_an_insert_or_by_rowid_is_a_touch() {
        // Sakila's shape (jOOQ/sakila, sqlite-sakila-schema.sql).
        for sql in [
            "CREATE TRIGGER t AFTER INSERT ON actor BEGIN UPDATE actor SET last_update = DATETIME('NOW') WHERE rowid = new.rowid; END",
            "CREATE TRIGGER t AFTER UPDATE ON actor BEGIN UPDATE actor SET last_update = DATETIME('NOW') WHERE _rowid_ = NEW._rowid_; END",
            "CREATE TRIGGER t AFTER UPDATE ON orders BEGIN UPDATE orders SET n = 1 WHERE rowid = NEW.rowid; END",
            "CREATE TRIGGER t AFTER INSERT ON actor BEGIN UPDATE actor SET last_update = 1 WHERE id = NEW.id; END",
        ] {
            let t = read(sql).unwrap();
            assert_eq!(t.timing, "BEFORE", "{sql}");
            assert!(matches!(t.action, Action::Touch(_)), "{sql}");
        }
        for sql in [
            // Before the insert there is no row to update.
            "CREATE TRIGGER t BEFORE INSERT ON actor BEGIN UPDATE actor SET n = 1 WHERE rowid = NEW.rowid; END",
            "CREATE TRIGGER t AFTER DELETE ON actor BEGIN UPDATE actor SET n = 1 WHERE rowid = OLD.rowid; END",
            // A rowid that does not name the row, and a rowid compared with another row's.
            "CREATE TRIGGER t AFTER UPDATE ON norowid BEGIN UPDATE norowid SET n = 1 WHERE rowid = NEW.rowid; END",
            "CREATE TRIGGER t AFTER UPDATE ON actor BEGIN UPDATE actor SET n = 1 WHERE rowid = NEW.parent; END",
            // The column named oid, which is not the rowid; an extra condition; before an
            // update, where SQLite leaves the result undefined.
            "CREATE TRIGGER t AFTER UPDATE ON orders BEGIN UPDATE orders SET n = 1 WHERE oid = NEW.oid; END",
            "CREATE TRIGGER t AFTER UPDATE ON actor BEGIN UPDATE actor SET n = 1 WHERE rowid = NEW.rowid AND x = NEW.x; END",
            "CREATE TRIGGER t BEFORE UPDATE ON actor BEGIN UPDATE actor SET n = 1 WHERE id = NEW.id; END",
        ] {
            assert!(
                !matches!(read(sql).map(|t| t.action), Ok(Action::Touch(_))),
                "{sql}"
            );
        }
    }

    #[test]
    fn other_bodies_are_untranslatable() {
        for sql in [
            "CREATE TRIGGER x AFTER UPDATE ON doc BEGIN UPDATE doc SET n = n + 1; END",
            "CREATE TRIGGER x AFTER INSERT ON doc BEGIN DELETE FROM other WHERE id = NEW.id; END",
            "CREATE TRIGGER x INSTEAD OF INSERT ON v BEGIN INSERT INTO doc VALUES (NEW.id); END",
            "CREATE TRIGGER x AFTER INSERT ON doc BEGIN INSERT INTO doc VALUES (1); END",
        ] {
            assert!(read(sql).is_err(), "{sql}");
        }
    }
}

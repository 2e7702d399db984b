//! Just enough of SQLite's SQL to read what the pragmas do not report: CHECK expressions,
//! generated-column expressions, column collations, `PRIMARY KEY DESC` and `AUTOINCREMENT`.
//!
//! The original `CREATE` text is always kept verbatim in the manifest and used for
//! same-engine restores; this parser only feeds the portable form. It never fails: what it
//! cannot make sense of is simply not reported.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok<'a> {
    /// A bare word or a quoted identifier, unquoted.
    Word(String, &'a str),
    /// A string literal, numbers, operators: anything else, verbatim.
    Other(&'a str),
    Open,
    Close,
    Comma,
}

/// Tokens with their byte offsets in the source.
pub fn tokenize(sql: &str) -> Vec<(usize, usize, Tok<'_>)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
            }
            b'(' => {
                i += 1;
                out.push((start, i, Tok::Open));
            }
            b')' => {
                i += 1;
                out.push((start, i, Tok::Close));
            }
            b',' => {
                i += 1;
                out.push((start, i, Tok::Comma));
            }
            b'"' | b'`' | b'[' | b'\'' => {
                let close = if c == b'[' { b']' } else { c };
                i += 1;
                let mut text = Vec::new();
                while i < b.len() {
                    if b[i] == close {
                        if close != b']' && b.get(i + 1) == Some(&close) {
                            text.push(close);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    text.push(b[i]);
                    i += 1;
                }
                let raw = &sql[start..i];
                if c == b'\'' {
                    out.push((start, i, Tok::Other(raw)));
                } else {
                    out.push((
                        start,
                        i,
                        Tok::Word(String::from_utf8_lossy(&text).into(), raw),
                    ));
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 || c == b'$' => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] >= 0x80
                        || b[i] == b'$')
                {
                    i += 1;
                }
                let raw = &sql[start..i];
                out.push((start, i, Tok::Word(raw.to_owned(), raw)));
            }
            _ => {
                i += 1;
                out.push((start, i, Tok::Other(&sql[start..i])));
            }
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedColumn {
    pub collation: Option<String>,
    /// (expression, stored)
    pub generated: Option<(String, bool)>,
    pub pk_desc: bool,
    pub autoincrement: bool,
    pub checks: Vec<(Option<String>, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedTable {
    /// Keyed by lower-cased column name (SQLite names are case-insensitive).
    pub columns: HashMap<String, ParsedColumn>,
    pub checks: Vec<(Option<String>, String)>,
}

fn is_kw(t: &Tok<'_>, kw: &str) -> bool {
    matches!(t, Tok::Word(_, raw) if raw.eq_ignore_ascii_case(kw))
}

/// Parses the body of a `CREATE TABLE` statement.
pub fn parse_create_table(sql: &str) -> ParsedTable {
    let toks = tokenize(sql);
    let mut out = ParsedTable::default();
    let Some(open) = toks.iter().position(|t| t.2 == Tok::Open) else {
        return out;
    };
    // Split the parenthesised body at top-level commas.
    let mut items: Vec<&[(usize, usize, Tok<'_>)]> = Vec::new();
    let mut depth = 0;
    let mut start = open + 1;
    let mut end = toks.len();
    for (i, t) in toks.iter().enumerate().skip(open + 1) {
        match t.2 {
            Tok::Open => depth += 1,
            Tok::Close if depth == 0 => {
                end = i;
                break;
            }
            Tok::Close => depth -= 1,
            Tok::Comma if depth == 0 => {
                items.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&toks[start..end.max(start)]);
    for item in items {
        let Some(first) = item.first() else { continue };
        let table_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|k| is_kw(&first.2, k));
        if table_constraint {
            let mut name = None;
            let mut i = 0;
            while i < item.len() {
                if is_kw(&item[i].2, "CONSTRAINT") {
                    name = word(item.get(i + 1));
                    i += 2;
                    continue;
                }
                if is_kw(&item[i].2, "CHECK")
                    && let Some((expr, next)) = paren_expr(sql, item, i + 1)
                {
                    out.checks.push((name.take(), expr));
                    i = next;
                    continue;
                }
                i += 1;
            }
            continue;
        }
        let Some(col) = word(Some(first)) else {
            continue;
        };
        out.columns
            .insert(col.to_lowercase(), parse_column(sql, &item[1..]));
    }
    out
}

fn word(t: Option<&(usize, usize, Tok<'_>)>) -> Option<String> {
    match t {
        Some((_, _, Tok::Word(w, _))) => Some(w.clone()),
        Some((_, _, Tok::Other(raw))) if raw.starts_with('\'') => {
            Some(raw[1..raw.len() - 1].replace("''", "'"))
        }
        _ => None,
    }
}

/// The verbatim text inside the parentheses that start at `item[at]`, and the index after them.
fn paren_expr(sql: &str, item: &[(usize, usize, Tok<'_>)], at: usize) -> Option<(String, usize)> {
    if item.get(at).map(|t| &t.2) != Some(&Tok::Open) {
        return None;
    }
    let mut depth = 0;
    for (j, t) in item.iter().enumerate().skip(at) {
        match t.2 {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if depth == 0 {
                    let text = sql[item[at].1..t.0].trim().to_owned();
                    return Some((text, j + 1));
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_column(sql: &str, rest: &[(usize, usize, Tok<'_>)]) -> ParsedColumn {
    let mut c = ParsedColumn::default();
    let mut name = None;
    let mut i = 0;
    while i < rest.len() {
        let t = &rest[i].2;
        if is_kw(t, "CONSTRAINT") {
            name = word(rest.get(i + 1));
            i += 2;
            continue;
        }
        if is_kw(t, "PRIMARY") {
            if rest.get(i + 2).is_some_and(|t| is_kw(&t.2, "DESC")) {
                c.pk_desc = true;
            }
        } else if is_kw(t, "AUTOINCREMENT") {
            c.autoincrement = true;
        } else if is_kw(t, "COLLATE") {
            c.collation = word(rest.get(i + 1));
            i += 2;
            continue;
        } else if is_kw(t, "CHECK") {
            if let Some((expr, next)) = paren_expr(sql, rest, i + 1) {
                c.checks.push((name.take(), expr));
                i = next;
                continue;
            }
        } else if is_kw(t, "DEFAULT") {
            // Skip the default's value so that a parenthesised default is not read as `AS (..)`.
            i += 1;
            if rest.get(i).map(|t| &t.2) == Some(&Tok::Open)
                && let Some((_, next)) = paren_expr(sql, rest, i)
            {
                i = next;
                continue;
            }
            i += 1;
            continue;
        } else if is_kw(t, "AS")
            && let Some((expr, next)) = paren_expr(sql, rest, i + 1)
        {
            let stored = rest.get(next).is_some_and(|t| is_kw(&t.2, "STORED"));
            c.generated = Some((expr, stored));
            i = next;
            continue;
        }
        i += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let p = parse_create_table(sql);
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
    }
}

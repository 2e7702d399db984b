//! Name changes in PostgreSQL DDL that must keep everything else byte for byte.
//!
//! A same-engine restore replays PostgreSQL's own DDL, which `sqlparser` cannot always model
//! whole (function bodies, every `CREATE TYPE` form), and which must stay exactly as the
//! server printed it. So these rewrites work on `sqlparser`'s *tokens*, located by their
//! spans in the original text, and splice replacements in at those spans only: a string
//! literal, a comment or a dollar-quoted body is one token, never searched for names.
//!
//! The same token splicing lets the SQLite reader quote a type name of several words, which
//! SQLite allows and the parser does not ([`quote_sqlite_type_names`]).

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

use crate::SqlError;

/// A token with its byte range in the text.
struct Tok {
    token: Token,
    start: usize,
    end: usize,
}

fn tokens(sql: &str, what: &str) -> Result<Vec<Tok>, SqlError> {
    tokens_in(&PostgreSqlDialect {}, sql, what)
}

fn tokens_in(
    dialect: &dyn sqlparser::dialect::Dialect,
    sql: &str,
    what: &str,
) -> Result<Vec<Tok>, SqlError> {
    let raw: Vec<TokenWithSpan> = Tokenizer::new(dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    // Spans are (line, column) in characters; turn them into byte offsets with one table
    // built in one pass (per-token scans would be quadratic on a long line).
    let char_bytes: Vec<usize> = sql
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(sql.len()))
        .collect();
    let mut line_starts = vec![0usize]; // in characters
    for (ci, c) in sql.chars().enumerate() {
        if c == '\n' {
            line_starts.push(ci + 1);
        }
    }
    let offset = |line: u64, column: u64| -> usize {
        let Some(&start) = line_starts.get(line.saturating_sub(1) as usize) else {
            return sql.len();
        };
        char_bytes
            .get(start + column.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(sql.len())
    };
    Ok(raw
        .into_iter()
        .filter(|t| !matches!(t.token, Token::EOF))
        .map(|t| Tok {
            start: offset(t.span.start.line, t.span.start.column),
            end: offset(t.span.end.line, t.span.end.column),
            token: t.token,
        })
        .collect())
}

/// Positions of the tokens that are not white space or comments.
fn significant(toks: &[Tok]) -> Vec<usize> {
    (0..toks.len())
        .filter(|&i| !matches!(toks[i].token, Token::Whitespace(_)))
        .collect()
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The name a word stands for in PostgreSQL: unquoted words fold to lower case.
fn folded(w: &Word) -> String {
    match w.quote_style {
        Some(_) => w.value.clone(),
        // PostgreSQL folds ASCII letters only.
        None => w.value.to_ascii_lowercase(),
    }
}

fn is_keyword(t: &Token, k: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k))
}

fn splice(sql: &str, edits: &mut [(usize, usize, String)]) -> String {
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(sql.len() + 16);
    let mut at = 0;
    for (start, end, with) in edits.iter() {
        out.push_str(&sql[at..*start]);
        out.push_str(with);
        at = *end;
    }
    out.push_str(&sql[at..]);
    out
}

/// A SQLite `CREATE TABLE` with every column type name of two or more words quoted as one
/// identifier (`a BLOB SUB_TYPE TEXT NOT NULL` → `a "BLOB SUB_TYPE TEXT" NOT NULL`), for a
/// parser that takes one word (see `sqlite::create_table`); `None` when there is none or the
/// text does not tokenize.
pub(crate) fn quote_sqlite_type_names(sql: &str) -> Option<String> {
    // Words that end a type name: the column constraints' first words.
    const STOP: &[&str] = &[
        "CONSTRAINT",
        "PRIMARY",
        "NOT",
        "NULL",
        "UNIQUE",
        "CHECK",
        "DEFAULT",
        "COLLATE",
        "REFERENCES",
        "GENERATED",
        "AS",
    ];
    // Words that open a table constraint rather than a column.
    const TABLE_CONSTRAINT: &[&str] = &["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"];
    let toks = tokens_in(&sqlparser::dialect::SQLiteDialect {}, sql, "table").ok()?;
    let sig = significant(&toks);
    let any_keyword = |t: &Token, set: &[&str]| set.iter().any(|k| is_keyword(t, k));
    let mut depth = 0;
    let mut edits = Vec::new();
    let mut k = 0;
    while k < sig.len() {
        let element_start = match toks[sig[k]].token {
            Token::LParen => {
                depth += 1;
                depth == 1
            }
            Token::RParen => {
                depth -= 1;
                false
            }
            Token::Comma => depth == 1,
            _ => false,
        };
        k += 1;
        // A column: its name, then the words of its type.
        if !element_start
            || !sig.get(k).is_some_and(|&i| {
                matches!(toks[i].token, Token::Word(_))
                    && !any_keyword(&toks[i].token, TABLE_CONSTRAINT)
            })
        {
            continue;
        }
        let mut j = k + 1;
        let mut words = Vec::new();
        while let Some(&i) = sig.get(j) {
            match &toks[i].token {
                Token::Word(w) if w.quote_style.is_none() && !any_keyword(&toks[i].token, STOP) => {
                    words.push(w.value.as_str());
                    j += 1;
                }
                _ => break,
            }
        }
        if words.len() >= 2 {
            let (start, end) = (toks[sig[k + 1]].start, toks[sig[j - 1]].end);
            edits.push((start, end, quote_ident(&words.join(" "))));
        }
        k = j;
    }
    (!edits.is_empty()).then(|| splice(sql, &mut edits))
}

/// Replaces the schema `from` with `to` wherever the statement names it: as a qualifier
/// (`from.x`, `"from".x`), after `SCHEMA` (`CREATE SCHEMA IF NOT EXISTS from`, `COMMENT ON
/// SCHEMA from`), and at the start of a string literal that names an object
/// (`'from.seq'::regclass`). Nothing else in a literal is touched.
pub fn remap_schema(sql: &str, from: &str, to: &str, what: &str) -> Result<String, SqlError> {
    let toks = tokens(sql, what)?;
    let significant = significant(&toks);
    let mut edits = Vec::new();
    for (k, &i) in significant.iter().enumerate() {
        let prev = |n: usize| k.checked_sub(n).map(|j| &toks[significant[j]].token);
        let next = significant.get(k + 1).map(|&j| &toks[j].token);
        match &toks[i].token {
            Token::Word(w) if folded(w) == from => {
                let qualifier = next == Some(&Token::Period) && prev(1) != Some(&Token::Period);
                let after_schema = prev(1).is_some_and(|t| is_keyword(t, "SCHEMA"))
                    || (prev(1).is_some_and(|t| is_keyword(t, "EXISTS"))
                        && prev(3).is_some_and(|t| is_keyword(t, "IF"))
                        && prev(4).is_some_and(|t| is_keyword(t, "SCHEMA")));
                if qualifier || after_schema {
                    edits.push((toks[i].start, toks[i].end, quote_ident(to)));
                }
            }
            // A function body is SQL too: names in it follow the schema.
            Token::DollarQuotedString(d) => {
                if let Ok(body) = remap_schema(&d.value, from, to, what)
                    && body != d.value
                {
                    let tag = d.tag.clone().unwrap_or_default();
                    edits.push((toks[i].start, toks[i].end, format!("${tag}${body}${tag}$")));
                }
            }
            Token::SingleQuotedString(s) => {
                let quoted = format!("{}.", quote_ident(from));
                let bare = format!("{from}.");
                let rest = s
                    .strip_prefix(&quoted)
                    .or_else(|| s.strip_prefix(&bare).filter(|_| is_bare(from)));
                if let Some(rest) = rest {
                    let new = format!("{}.{rest}", quote_ident(to));
                    edits.push((
                        toks[i].start,
                        toks[i].end,
                        format!("'{}'", new.replace('\'', "''")),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(splice(sql, &mut edits))
}

/// Whether PostgreSQL would print `s` without quotes (so `s.` in a literal means it).
fn is_bare(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
}

/// Where a qualified name `schema.table` (each part quoted or not) starts at significant
/// token `k`: the byte range it covers.
fn qualified_at(
    toks: &[Tok],
    significant: &[usize],
    k: usize,
    schema: &str,
    table: &str,
) -> Option<(usize, usize)> {
    let t = |n: usize| significant.get(k + n).map(|&j| &toks[j]);
    match (t(0)?, t(1)?, t(2)?) {
        (
            Tok {
                token: Token::Word(s),
                start,
                ..
            },
            Tok {
                token: Token::Period,
                ..
            },
            Tok {
                token: Token::Word(n),
                end,
                ..
            },
        ) if folded(s) == schema && folded(n) == table => Some((*start, *end)),
        _ => None,
    }
}

/// Points a table-local statement at another table (`to`, already quoted): the table named
/// after a leading `ALTER TABLE [ONLY]`, or after the first top-level `ON [ONLY]`, when that
/// is `schema.table`. `None` when the statement is not on that table.
pub fn retarget_table(sql: &str, schema: &str, table: &str, to: &str) -> Option<String> {
    let toks = tokens(sql, "statement").ok()?;
    let sig = significant(&toks);
    let tok = |k: usize| sig.get(k).map(|&j| &toks[j].token);
    let mut at = None;
    if tok(0).is_some_and(|t| is_keyword(t, "ALTER"))
        && tok(1).is_some_and(|t| is_keyword(t, "TABLE"))
    {
        at = Some(if tok(2).is_some_and(|t| is_keyword(t, "ONLY")) {
            3
        } else {
            2
        });
    } else {
        let mut depth = 0i32;
        for k in 0..sig.len() {
            match tok(k)? {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                t if depth == 0 && is_keyword(t, "ON") => {
                    at = Some(if tok(k + 1).is_some_and(|t| is_keyword(t, "ONLY")) {
                        k + 2
                    } else {
                        k + 1
                    });
                    break;
                }
                _ => {}
            }
        }
    }
    let (start, end) = qualified_at(&toks, &sig, at?, schema, table)?;
    Some(splice(sql, &mut [(start, end, to.to_owned())]))
}

/// Moves a `CREATE TABLE schema.table` to another schema (`to`, unquoted): the table's own
/// name, and the sequence an identity column names (`SEQUENCE NAME schema.seq`), which
/// belongs with its table. Nothing else in the statement changes. `None` when the statement
/// does not create that table.
pub fn move_create_table(sql: &str, schema: &str, table: &str, to: &str) -> Option<String> {
    let toks = tokens(sql, "statement").ok()?;
    let sig = significant(&toks);
    let tok = |k: usize| sig.get(k).map(|&j| &toks[j].token);
    let mut k = 0;
    if !tok(k).is_some_and(|t| is_keyword(t, "CREATE")) {
        return None;
    }
    k += 1;
    if tok(k).is_some_and(|t| is_keyword(t, "UNLOGGED")) {
        k += 1;
    }
    if !tok(k).is_some_and(|t| is_keyword(t, "TABLE")) {
        return None;
    }
    let (start, _) = qualified_at(&toks, &sig, k + 1, schema, table)?;
    // The schema part of the table's name, then of each identity sequence's name.
    let mut edits = vec![(start, toks[sig[k + 1]].end, quote_ident(to))];
    for j in 0..sig.len().saturating_sub(2) {
        if is_keyword(&toks[sig[j]].token, "SEQUENCE")
            && is_keyword(&toks[sig[j + 1]].token, "NAME")
            && let Some(Token::Word(w)) = tok(j + 2)
            && folded(w) == schema
            && tok(j + 3) == Some(&Token::Period)
        {
            let s = &toks[sig[j + 2]];
            edits.push((s.start, s.end, quote_ident(to)));
        }
    }
    Some(splice(sql, &mut edits))
}

/// Points a foreign key's `REFERENCES schema.table` at another table (`to`, quoted).
pub fn retarget_references(sql: &str, schema: &str, table: &str, to: &str) -> Option<String> {
    let toks = tokens(sql, "statement").ok()?;
    let sig = significant(&toks);
    let k = (0..sig.len()).find(|&k| is_keyword(&toks[sig[k]].token, "REFERENCES"))?;
    let (start, end) = qualified_at(&toks, &sig, k + 1, schema, table)?;
    Some(splice(sql, &mut [(start, end, to.to_owned())]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_remapping_touches_qualifiers_only() {
        assert_eq!(
            remap_schema(
                "CREATE TABLE \"app\".\"t\" (x int DEFAULT nextval('app.s'::regclass)); SELECT app.f(), myapp.g(), x.app",
                "app",
                "tenant 1",
                "t"
            )
            .unwrap(),
            "CREATE TABLE \"tenant 1\".\"t\" (x int DEFAULT nextval('\"tenant 1\".s'::regclass)); SELECT \"tenant 1\".f(), myapp.g(), x.app"
        );
        assert_eq!(
            remap_schema("CHECK (email LIKE '%app.com') -- app.x", "app", "b", "t").unwrap(),
            "CHECK (email LIKE '%app.com') -- app.x"
        );
        assert_eq!(
            remap_schema("CREATE SCHEMA IF NOT EXISTS \"app\"", "app", "b", "t").unwrap(),
            "CREATE SCHEMA IF NOT EXISTS \"b\""
        );
        assert_eq!(
            remap_schema("COMMENT ON SCHEMA app IS 'app.x'", "app", "b", "t").unwrap(),
            "COMMENT ON SCHEMA \"b\" IS '\"b\".x'"
        );
        assert_eq!(
            remap_schema(
                "CREATE FUNCTION app.f() AS $$ SELECT app.g() $$ LANGUAGE sql",
                "app",
                "b",
                "t"
            )
            .unwrap(),
            "CREATE FUNCTION \"b\".f() AS $$ SELECT \"b\".g() $$ LANGUAGE sql",
            "names in a function body follow the schema"
        );
    }

    #[test]
    fn offsets_are_right_after_multibyte_characters_and_on_long_lines() {
        let sql = format!(
            "/* éé\n ü */ CREATE INDEX i ON app.t USING btree ({}x{})",
            "(".repeat(20_000),
            ")".repeat(20_000)
        );
        let out = retarget_table(&sql, "app", "t", "\"s\".\"t\"").unwrap();
        assert!(out.starts_with("/* éé\n ü */ CREATE INDEX i ON \"s\".\"t\" USING btree ((("));
        assert_eq!(out.len(), sql.len() - "app.t".len() + "\"s\".\"t\"".len());
    }

    #[test]
    fn a_create_table_moves_with_its_identity_sequence_only() {
        assert_eq!(
            move_create_table(
                "CREATE TABLE \"app\".\"t\" (id bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME app.t_id_seq START WITH 1), m app.mood, d text DEFAULT 'app.x')",
                "app",
                "t",
                "ferry_stage_1"
            )
            .as_deref(),
            Some("CREATE TABLE \"ferry_stage_1\".\"t\" (id bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME \"ferry_stage_1\".t_id_seq START WITH 1), m app.mood, d text DEFAULT 'app.x')")
        );
        assert_eq!(
            move_create_table("CREATE TABLE app.u (a int)", "app", "t", "s"),
            None
        );
    }

    #[test]
    fn table_local_statements_are_pointed_at_another_table() {
        let stage = "\"ferry_stage_1\".\"events\"";
        assert_eq!(
            retarget_table(
                "CREATE INDEX events_kind ON public.events USING btree (kind)",
                "public",
                "events",
                stage
            )
            .as_deref(),
            Some("CREATE INDEX events_kind ON \"ferry_stage_1\".\"events\" USING btree (kind)")
        );
        assert_eq!(
            retarget_table(
                "ALTER TABLE ONLY \"public\".\"events\" ADD CONSTRAINT \"p\" PRIMARY KEY (id)",
                "public",
                "events",
                stage
            )
            .as_deref(),
            Some(
                "ALTER TABLE ONLY \"ferry_stage_1\".\"events\" ADD CONSTRAINT \"p\" PRIMARY KEY (id)"
            )
        );
        assert_eq!(
            retarget_table(
                "CREATE INDEX i ON public.events_2024 USING btree (k)",
                "public",
                "events",
                stage
            ),
            None
        );
        assert_eq!(
            retarget_references(
                "ALTER TABLE ONLY x ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES public.events(id)",
                "public",
                "events",
                stage
            )
            .as_deref(),
            Some(
                "ALTER TABLE ONLY x ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES \"ferry_stage_1\".\"events\"(id)"
            )
        );
        assert_eq!(
            retarget_references(
                "ALTER TABLE x ADD FOREIGN KEY (a) REFERENCES public.events_2024(id)",
                "public",
                "events",
                stage
            ),
            None
        );
        assert_eq!(
            retarget_table(
                "CREATE INDEX \"Ix\" ON \"Other Schema\".\"MixedCase\" (a)",
                "Other Schema",
                "MixedCase",
                stage
            )
            .as_deref(),
            Some("CREATE INDEX \"Ix\" ON \"ferry_stage_1\".\"events\" (a)")
        );
    }
}

/// What [`drop_columns`] removed from a `CREATE TABLE`.
#[derive(Debug, Default, PartialEq)]
pub struct Dropped {
    /// Columns removed: the ones asked for, and generated columns computed from them.
    pub columns: Vec<String>,
    /// Table constraints removed because they use a removed column, as written.
    pub constraints: Vec<String>,
}

/// Removes columns from a `CREATE TABLE` statement, with every table constraint that uses
/// them and every generated column computed from them, keeping the rest byte for byte.
///
/// The statement is cut into its top-level elements (column definitions and table
/// constraints, separated by commas outside parentheses) on the tokenizer's spans, so a
/// comma or a name inside a string, a comment or a nested expression is never taken for
/// one. An element *uses* a column when a word token outside its `REFERENCES` clause names
/// it (a `REFERENCES other(c)` names the other table's column). Names compare as the
/// dialect does: SQLite without regard to ASCII case, PostgreSQL after folding unquoted
/// words. `None` when the statement has no column list (`PARTITION OF`, `AS SELECT`).
pub fn drop_columns(
    sql: &str,
    sqlite: bool,
    columns: &[String],
    what: &str,
) -> Result<Option<(String, Dropped)>, SqlError> {
    let dialect: &dyn sqlparser::dialect::Dialect = if sqlite {
        &sqlparser::dialect::SQLiteDialect {}
    } else {
        &PostgreSqlDialect {}
    };
    let toks = tokens_in(dialect, sql, what)?;
    let sig = significant(&toks);
    let name_of = |w: &Word| {
        if sqlite {
            w.value.to_ascii_lowercase()
        } else {
            folded(w)
        }
    };
    let wanted = |n: &str| {
        columns.iter().any(|c| {
            if sqlite {
                c.eq_ignore_ascii_case(n)
            } else {
                c == n
            }
        })
    };
    // The column list: from the first '(' at depth 0 to its match.
    let Some(open) = sig
        .iter()
        .position(|&i| matches!(toks[i].token, Token::LParen))
    else {
        return Ok(None);
    };
    if sig[..open]
        .iter()
        .any(|&i| is_keyword(&toks[i].token, "AS") || is_keyword(&toks[i].token, "OF"))
    {
        return Ok(None);
    }
    // Elements as ranges of `sig` indices, and the commas between them.
    let mut elements: Vec<(usize, usize)> = Vec::new();
    let mut depth = 0i32;
    let mut start = open + 1;
    let mut close = None;
    for (k, &i) in sig.iter().enumerate().skip(open + 1) {
        match toks[i].token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                elements.push((start, k));
                close = Some(k);
                break;
            }
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                elements.push((start, k));
                start = k + 1;
            }
            _ => {}
        }
    }
    if close.is_none() {
        return Err(SqlError::Parse {
            what: what.to_owned(),
            message: "the column list does not end".into(),
        });
    }
    const CONSTRAINT_WORDS: [&str; 7] = [
        "CONSTRAINT",
        "PRIMARY",
        "UNIQUE",
        "CHECK",
        "FOREIGN",
        "EXCLUDE",
        "LIKE",
    ];
    // The words of an element that name its own table's columns: all of them but those
    // in a REFERENCES clause (the referenced table and its columns).
    let uses = |(a, b): (usize, usize), skip_first: bool| -> Vec<String> {
        let mut out = Vec::new();
        let mut k = a + usize::from(skip_first);
        while k < b {
            let t = &toks[sig[k]].token;
            if is_keyword(t, "REFERENCES") {
                // Skip the table name and its column list.
                k += 1;
                while k < b && !matches!(toks[sig[k]].token, Token::LParen) {
                    if let Token::Word(w) = &toks[sig[k]].token
                        && w.quote_style.is_none()
                        && ["ON", "MATCH", "DEFERRABLE", "NOT", "INITIALLY"]
                            .iter()
                            .any(|kw| w.value.eq_ignore_ascii_case(kw))
                    {
                        break;
                    }
                    k += 1;
                }
                if k < b && matches!(toks[sig[k]].token, Token::LParen) {
                    while k < b && !matches!(toks[sig[k]].token, Token::RParen) {
                        k += 1;
                    }
                }
                k += 1;
                continue;
            }
            if let Token::Word(w) = t {
                out.push(name_of(w));
            }
            k += 1;
        }
        out
    };
    let mut drop = vec![false; elements.len()];
    let mut dropped = Dropped::default();
    // To a fixed point: a generated column computed from a dropped one goes too.
    let mut gone: Vec<String> = Vec::new();
    loop {
        let mut changed = false;
        for (e, &(a, b)) in elements.iter().enumerate() {
            if drop[e] || a >= b {
                continue;
            }
            let first = &toks[sig[a]].token;
            let is_constraint = matches!(first, Token::Word(w) if w.quote_style.is_none()
                && CONSTRAINT_WORDS.iter().any(|k| w.value.eq_ignore_ascii_case(k)));
            let hit = if is_constraint {
                uses((a, b), false)
                    .iter()
                    .any(|n| wanted(n) || gone.contains(n))
            } else {
                let Token::Word(w) = first else { continue };
                let name = name_of(w);
                if wanted(&name) {
                    true
                } else if elements_generated(&toks, &sig, (a, b)) {
                    uses((a, b), true)
                        .iter()
                        .any(|n| gone.contains(n) || wanted(n))
                } else {
                    // A kept column whose own CHECK names a removed one would not load:
                    // say so rather than guess which of the two the user meant.
                    if let Some(n) = check_words(&toks, &sig, (a, b), &name_of)
                        .into_iter()
                        .find(|n| gone.contains(n) || wanted(n))
                    {
                        return Err(SqlError::Parse {
                            what: what.to_owned(),
                            message: format!(
                                "column {} has a CHECK that uses {n}; leave it out too, or keep {n}",
                                w.value
                            ),
                        });
                    }
                    false
                }
            };
            if !hit {
                continue;
            }
            drop[e] = true;
            changed = true;
            let text = sql[toks[sig[a]].start..toks[sig[b - 1]].end].to_owned();
            if is_constraint {
                dropped.constraints.push(text);
            } else if let Token::Word(w) = first {
                gone.push(name_of(w));
                dropped.columns.push(w.value.clone());
            }
        }
        if !changed {
            break;
        }
    }
    if drop.iter().all(|d| *d) {
        return Err(SqlError::Parse {
            what: what.to_owned(),
            message: "every column would be removed".into(),
        });
    }
    // Cut an element up to the start of the next one (its comma and what follows it, so a
    // comment on the previous line stays); the elements after the last kept one from that
    // one's end (its trailing comma) instead.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let last_kept = drop.iter().rposition(|d| !d).expect("one is kept");
    for (e, &(a, b)) in elements.iter().enumerate() {
        if !drop[e] {
            continue;
        }
        let (from, to) = if e < last_kept {
            (toks[sig[a]].start, toks[sig[elements[e + 1].0]].start)
        } else {
            (
                toks[sig[elements[last_kept].1 - 1]].end,
                toks[sig[b - 1]].end,
            )
        };
        edits.push((from, to, String::new()));
    }
    // Adjacent cuts overlap or touch: merge them.
    edits.sort_by_key(|e| e.0);
    let mut merged: Vec<(usize, usize, String)> = Vec::new();
    for e in edits {
        match merged.last_mut() {
            Some(last) if e.0 <= last.1 => last.1 = last.1.max(e.1),
            _ => merged.push(e),
        }
    }
    Ok(Some((splice(sql, &mut merged), dropped)))
}

/// The words inside the CHECK (...) clauses of an element.
fn check_words(
    toks: &[Tok],
    sig: &[usize],
    (a, b): (usize, usize),
    name_of: &dyn Fn(&Word) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut k = a;
    while k < b {
        if is_keyword(&toks[sig[k]].token, "CHECK")
            && sig
                .get(k + 1)
                .is_some_and(|&i| matches!(toks[i].token, Token::LParen))
        {
            let mut depth = 0;
            k += 1;
            while k < b {
                match &toks[sig[k]].token {
                    Token::LParen => depth += 1,
                    Token::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Word(w) => out.push(name_of(w)),
                    _ => {}
                }
                k += 1;
            }
        }
        k += 1;
    }
    out
}

/// Whether a column definition is a generated one (`GENERATED ALWAYS AS (...)`, or
/// SQLite's bare `AS (...)`), the only kind whose words name other columns.
fn elements_generated(toks: &[Tok], sig: &[usize], (a, b): (usize, usize)) -> bool {
    (a..b).any(|k| {
        is_keyword(&toks[sig[k]].token, "AS")
            && sig
                .get(k + 1)
                .is_some_and(|&i| matches!(toks[i].token, Token::LParen))
    })
}

#[cfg(test)]
mod drop_tests {
    use super::drop_columns;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_go_with_their_constraints_and_nothing_else_changes() {
        let sql = "CREATE TABLE notes (\n  id INTEGER PRIMARY KEY, -- the key\n  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,\n  body TEXT DEFAULT 'user_id, x',\n  owner INTEGER REFERENCES people(user_id),\n  FOREIGN KEY (user_id) REFERENCES users(id),\n  UNIQUE (body, \"USER_ID\"),\n  CHECK (length(body) > 0)\n)";
        let (out, d) = drop_columns(sql, true, &cols(&["User_Id"]), "t")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "CREATE TABLE notes (\n  id INTEGER PRIMARY KEY, -- the key\n  body TEXT DEFAULT 'user_id, x',\n  owner INTEGER REFERENCES people(user_id),\n  CHECK (length(body) > 0)\n)"
        );
        assert_eq!(d.columns, ["user_id"]);
        assert_eq!(d.constraints.len(), 2);
    }

    #[test]
    fn first_and_generated_columns_and_postgresql_folding() {
        let sql = "CREATE TABLE t (\"UserId\" integer, a integer, b integer GENERATED ALWAYS AS (\"UserId\" * 2) STORED, CONSTRAINT c CHECK (a > 0))";
        let (out, d) = drop_columns(sql, false, &cols(&["UserId"]), "t")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "CREATE TABLE t (a integer, CONSTRAINT c CHECK (a > 0))"
        );
        assert_eq!(d.columns, ["UserId", "b"]);
        // Unquoted PostgreSQL names fold: "userid" is not "UserId".
        let (out, _) = drop_columns(sql, false, &cols(&["userid"]), "t")
            .unwrap()
            .unwrap();
        assert_eq!(out, sql);
        assert!(
            drop_columns(
                "CREATE TABLE p PARTITION OF q FOR VALUES IN (1)",
                false,
                &cols(&["a"]),
                "t"
            )
            .unwrap()
            .is_none()
        );
        assert!(drop_columns("CREATE TABLE t (a int)", false, &cols(&["a"]), "t").is_err());
        // A kept column whose CHECK names a removed one is refused, not left broken.
        let e = drop_columns(
            "CREATE TABLE t (a INT, b INT CHECK (b > a), c DATE)",
            true,
            &cols(&["a"]),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("column b has a CHECK that uses a"), "{e}");
        // A type word is not a use: removing a column named like another column's type.
        let (out, _) = drop_columns(
            "CREATE TABLE t (date TEXT, due DATE)",
            true,
            &cols(&["date"]),
            "t",
        )
        .unwrap()
        .unwrap();
        assert_eq!(out, "CREATE TABLE t (due DATE)");
    }
}

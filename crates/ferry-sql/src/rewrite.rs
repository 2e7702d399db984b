//! Name changes in PostgreSQL DDL that must keep everything else byte for byte.
//!
//! A same-engine restore replays PostgreSQL's own DDL, which `sqlparser` cannot always model
//! whole (function bodies, every `CREATE TYPE` form), and which must stay exactly as the
//! server printed it. So these rewrites work on `sqlparser`'s *tokens*, located by their
//! spans in the original text, and splice replacements in at those spans only: a string
//! literal, a comment or a dollar-quoted body is one token, never searched for names.

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
    let raw: Vec<TokenWithSpan> = Tokenizer::new(&PostgreSqlDialect {}, sql)
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

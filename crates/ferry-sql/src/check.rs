//! Is this PostgreSQL definition what its manifest entry says it is?
//!
//! The check reads the statement's head with `sqlparser`'s tokenizer (so quoting, comments
//! and dollar quotes are read as PostgreSQL reads them) and matches it against the shape its
//! kind must have: `CREATE TABLE <schema>.<name>`, `CREATE INDEX <name> ON <schema>.<table>`,
//! `ALTER TABLE <schema>.<table> ADD CONSTRAINT <name>`, and so on. A definition that creates
//! something else, somewhere else, or calls a function on [`DENIED`] is refused. That a
//! definition holds exactly one statement is left to the server: the importer runs archive
//! text only through the extended protocol, which refuses a second command.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Word};

use crate::SqlError;

/// What a definition must create, from its manifest entry (after any schema remapping).
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The manifest kind: `table`, `index`, `view`, `constraint`, ...
    pub kind: &'a str,
    pub schema: Option<&'a str>,
    pub name: &'a str,
    /// The table an index, constraint, trigger or rule belongs to.
    pub table: Option<&'a str>,
}

/// Server functions that read or write files, signal other sessions, change settings or run
/// SQL held in a string. An archive's definitions may not call them, even where the call
/// would only run later (a default, a CHECK, a view): a restore must not arm them.
pub const DENIED: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_logdir_ls",
    "lo_import",
    "lo_export",
    "lo_from_bytea",
    "lo_put",
    "lo_unlink",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_origin_create",
    "set_config",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "pg_import_system_collations",
];

/// Checks one PostgreSQL definition against its manifest entry.
pub fn check_pg_definition(sql: &str, expect: Expect<'_>) -> Result<(), SqlError> {
    let what = describe(&expect);
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Parse {
            what: what.clone(),
            message: e.to_string(),
        })?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    denied_calls(&tokens, &what)?;
    // The server refuses a second command anyway; refusing it here names the entry. A
    // SQL-standard function body (BEGIN ATOMIC ... END) is one statement with semicolons.
    let body_may_hold_semicolons = matches!(expect.kind, "function" | "procedure");
    if !body_may_hold_semicolons
        && let Some(at) = tokens.iter().position(|t| *t == Token::SemiColon)
        && tokens[at + 1..]
            .iter()
            .any(|t| *t != Token::SemiColon && *t != Token::EOF)
    {
        return Err(SqlError::Unexpected {
            what,
            expected: "exactly one statement".into(),
            found: "a second statement after `;`".into(),
        });
    }
    let mut h = Head {
        t: &tokens,
        i: 0,
        what: &what,
    };
    let qualified = |h: &mut Head<'_>, name: &str| h.qualified(expect.schema, name);
    match expect.kind {
        "schema" => {
            h.words(&["CREATE", "SCHEMA"])?;
            h.optional(&["IF", "NOT", "EXISTS"]);
            h.name(expect.name)?;
            h.end()
        }
        "extension" => {
            h.words(&["CREATE", "EXTENSION"])?;
            h.optional(&["IF", "NOT", "EXISTS"]);
            h.name(expect.name)
        }
        "collation" => {
            h.words(&["CREATE", "COLLATION"])?;
            h.optional(&["IF", "NOT", "EXISTS"]);
            qualified(&mut h, expect.name)
        }
        "type" => {
            h.word("CREATE")?;
            h.one_of(&["TYPE", "DOMAIN"])?;
            qualified(&mut h, expect.name)
        }
        "function" | "procedure" | "aggregate" => {
            h.word("CREATE")?;
            h.optional(&["OR", "REPLACE"]);
            h.word(&expect.kind.to_ascii_uppercase())?;
            qualified(&mut h, expect.name)?;
            h.token(&Token::LParen, "(")
        }
        "sequence" => {
            h.words(&["CREATE", "SEQUENCE"])?;
            h.optional(&["IF", "NOT", "EXISTS"]);
            qualified(&mut h, expect.name)
        }
        "sequence_owned_by" => {
            h.words(&["ALTER", "SEQUENCE"])?;
            qualified(&mut h, expect.name)?;
            h.words(&["OWNED", "BY"])
        }
        "sequence_value" => {
            // SELECT pg_catalog.setval('<sequence>', <n>, true|false) and nothing else.
            h.words(&["SELECT", "pg_catalog"])?;
            h.token(&Token::Period, ".")?;
            h.words(&["setval"])?;
            h.token(&Token::LParen, "(")?;
            h.string()?;
            h.token(&Token::Comma, ",")?;
            h.number()?;
            h.token(&Token::Comma, ",")?;
            h.one_of(&["true", "false"])?;
            h.token(&Token::RParen, ")")?;
            h.end()
        }
        "view" => {
            h.word("CREATE")?;
            h.optional(&["OR", "REPLACE"]);
            h.optional(&["RECURSIVE"]);
            h.word("VIEW")?;
            qualified(&mut h, expect.name)
        }
        "materialized_view" => {
            h.words(&["CREATE", "MATERIALIZED", "VIEW"])?;
            qualified(&mut h, expect.name)
        }
        "refresh" => {
            h.words(&["REFRESH", "MATERIALIZED", "VIEW"])?;
            qualified(&mut h, expect.name)?;
            h.end()
        }
        "constraint" => {
            h.words(&["ALTER", "TABLE"])?;
            h.optional(&["ONLY"]);
            qualified(&mut h, table(&expect)?)?;
            h.words(&["ADD", "CONSTRAINT"])?;
            h.name(expect.name)
        }
        "index" => {
            h.word("CREATE")?;
            h.optional(&["UNIQUE"]);
            h.word("INDEX")?;
            h.name(expect.name)?;
            h.word("ON")?;
            h.optional(&["ONLY"]);
            qualified(&mut h, table(&expect)?)
        }
        "trigger" => {
            h.word("CREATE")?;
            h.optional(&["OR", "REPLACE"]);
            h.optional(&["CONSTRAINT"]);
            h.word("TRIGGER")?;
            h.name(expect.name)?;
            h.skip_to("ON")?;
            qualified(&mut h, table(&expect)?)
        }
        "trigger_state" => {
            h.words(&["ALTER", "TABLE"])?;
            h.optional(&["ONLY"]);
            qualified(&mut h, table(&expect)?)?;
            h.one_of(&["ENABLE", "DISABLE"])?;
            if !h.optional(&["REPLICA"]) {
                h.optional(&["ALWAYS"]);
            }
            h.word("TRIGGER")?;
            h.name(expect.name)?;
            h.end()
        }
        "rule" => {
            h.word("CREATE")?;
            h.optional(&["OR", "REPLACE"]);
            h.word("RULE")?;
            h.name(expect.name)?;
            h.words(&["AS", "ON"])?;
            h.one_of(&["SELECT", "INSERT", "UPDATE", "DELETE"])?;
            h.word("TO")?;
            qualified(&mut h, table(&expect)?)
        }
        "comment" => {
            // COMMENT ON <object> IS '<text>': the last two tokens are IS and a string.
            h.words(&["COMMENT", "ON"])?;
            let n = tokens.len();
            let is_ok = n >= 4
                && matches!(&tokens[n - 2], Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("IS"))
                && matches!(
                    &tokens[n - 1],
                    Token::SingleQuotedString(_) | Token::EscapedStringLiteral(_)
                )
                || matches!(tokens.last(), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("NULL"));
            if is_ok {
                Ok(())
            } else {
                Err(h.unexpected("COMMENT ON <object> IS '<text>'"))
            }
        }
        kind if kind.ends_with("table") => {
            h.word("CREATE")?;
            h.optional(&["UNLOGGED"]);
            h.word("TABLE")?;
            h.optional(&["IF", "NOT", "EXISTS"]);
            qualified(&mut h, expect.name)
        }
        other => Err(SqlError::Unexpected {
            what,
            expected: "an object kind ferry knows".into(),
            found: format!("kind {other:?}"),
        }),
    }
}

fn describe(e: &Expect<'_>) -> String {
    let kind = e.kind.replace('_', " ");
    match (e.schema, e.table) {
        (Some(s), Some(t)) => format!("{kind} {} on {s}.{t}", e.name),
        (Some(s), None) => format!("{kind} {s}.{}", e.name),
        (None, Some(t)) => format!("{kind} {} on {t}", e.name),
        (None, None) => format!("{kind} {}", e.name),
    }
}

fn table<'a>(e: &Expect<'a>) -> Result<&'a str, SqlError> {
    e.table.ok_or_else(|| SqlError::Unexpected {
        what: describe(e),
        expected: "the table it belongs to".into(),
        found: "no table in its manifest entry".into(),
    })
}

fn denied_calls(tokens: &[Token], what: &str) -> Result<(), SqlError> {
    for pair in tokens.windows(2) {
        if let [Token::Word(w), Token::LParen] = pair {
            let name = folded(w);
            if DENIED.contains(&name.as_str()) {
                return Err(SqlError::Denied {
                    what: what.to_owned(),
                    function: name,
                });
            }
        }
    }
    Ok(())
}

/// An identifier as PostgreSQL resolves it: unquoted names fold to lower case.
fn folded(w: &Word) -> String {
    match w.quote_style {
        Some(_) => w.value.clone(),
        None => w.value.to_lowercase(),
    }
}

struct Head<'a> {
    t: &'a [Token],
    i: usize,
    what: &'a str,
}

impl Head<'_> {
    fn peek(&self) -> Option<&Token> {
        self.t.get(self.i)
    }

    fn unexpected(&self, expected: &str) -> SqlError {
        SqlError::Unexpected {
            what: self.what.to_owned(),
            expected: expected.to_owned(),
            found: self
                .peek()
                .map_or_else(|| "the end of the statement".into(), |t| format!("`{t}`")),
        }
    }

    fn is_word(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k))
    }

    fn word(&mut self, k: &str) -> Result<(), SqlError> {
        if self.is_word(k) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(k))
        }
    }

    fn words(&mut self, ks: &[&str]) -> Result<(), SqlError> {
        ks.iter().try_for_each(|k| self.word(k))
    }

    fn one_of(&mut self, ks: &[&str]) -> Result<(), SqlError> {
        match ks.iter().find(|k| self.is_word(k)) {
            Some(_) => {
                self.i += 1;
                Ok(())
            }
            None => Err(self.unexpected(&ks.join(" or "))),
        }
    }

    /// Consumes the words if all of them are next.
    fn optional(&mut self, ks: &[&str]) -> bool {
        let at = self.i;
        if self.words(ks).is_ok() {
            true
        } else {
            self.i = at;
            false
        }
    }

    fn token(&mut self, tok: &Token, shown: &str) -> Result<(), SqlError> {
        if self.peek() == Some(tok) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(shown))
        }
    }

    fn string(&mut self) -> Result<(), SqlError> {
        match self.peek() {
            Some(Token::SingleQuotedString(_)) => {
                self.i += 1;
                Ok(())
            }
            _ => Err(self.unexpected("a string")),
        }
    }

    fn number(&mut self) -> Result<(), SqlError> {
        if self.peek() == Some(&Token::Minus) {
            self.i += 1;
        }
        match self.peek() {
            Some(Token::Number(..)) => {
                self.i += 1;
                Ok(())
            }
            _ => Err(self.unexpected("a number")),
        }
    }

    fn ident(&mut self) -> Option<String> {
        let name = match self.peek() {
            Some(Token::Word(w)) => folded(w),
            _ => return None,
        };
        self.i += 1;
        Some(name)
    }

    fn name(&mut self, expected: &str) -> Result<(), SqlError> {
        let at = self.i;
        match self.ident() {
            Some(n) if n == expected => Ok(()),
            _ => {
                self.i = at;
                Err(self.unexpected(&format!("the name {expected:?}")))
            }
        }
    }

    /// `schema.name`, or a bare `name` when the entry has no schema.
    fn qualified(&mut self, schema: Option<&str>, name: &str) -> Result<(), SqlError> {
        let at = self.i;
        let first = self.ident();
        let second = if self.peek() == Some(&Token::Period) {
            self.i += 1;
            self.ident().map(Some)
        } else {
            Some(None)
        };
        let ok = match (first, second, schema) {
            (Some(s), Some(Some(n)), Some(want)) => s == want && n == name,
            (Some(n), Some(None), None) => n == name,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            self.i = at;
            let shown = match schema {
                Some(s) => format!("{s}.{name}"),
                None => name.to_owned(),
            };
            Err(self.unexpected(&format!("the name {shown:?}")))
        }
    }

    /// Skips to just past the next unquoted keyword `k` outside parentheses.
    fn skip_to(&mut self, k: &str) -> Result<(), SqlError> {
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ if depth == 0 && self.is_word(k) => {
                    self.i += 1;
                    return Ok(());
                }
                _ => {}
            }
            self.i += 1;
        }
        Err(self.unexpected(k))
    }

    fn end(&mut self) -> Result<(), SqlError> {
        if self.peek() == Some(&Token::SemiColon) {
            self.i += 1;
        }
        match self.peek() {
            None | Some(Token::EOF) => Ok(()),
            _ => Err(self.unexpected("the end of the statement")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e<'a>(kind: &'a str, name: &'a str, table: Option<&'a str>) -> Expect<'a> {
        Expect {
            kind,
            schema: Some("public"),
            name,
            table,
        }
    }

    #[test]
    fn real_definitions_pass() {
        let ok = [
            (
                e("table", "customer", None),
                r#"CREATE TABLE "public"."customer" ("id" integer)"#,
            ),
            (
                e("index", "idx_a", Some("actor")),
                "CREATE INDEX idx_a ON public.actor USING btree (last_name)",
            ),
            (
                e("constraint", "actor_pkey", Some("actor")),
                r#"ALTER TABLE ONLY "public"."actor" ADD CONSTRAINT "actor_pkey" PRIMARY KEY (actor_id)"#,
            ),
            (
                e("trigger", "last_updated", Some("actor")),
                "CREATE TRIGGER last_updated BEFORE UPDATE OF a, b ON public.actor FOR EACH ROW EXECUTE FUNCTION public.f()",
            ),
            (
                e("sequence_value", "s", None),
                "SELECT pg_catalog.setval('public.s', 1, false)",
            ),
            (
                e("function", "f", None),
                "CREATE OR REPLACE FUNCTION public.f(a integer)\n RETURNS integer LANGUAGE sql AS $$ select pg_read_file('x') $$",
            ),
            (
                e("rule", "r", Some("t")),
                "CREATE RULE r AS ON INSERT TO public.t DO INSTEAD NOTHING",
            ),
            (
                e("comment", "public", None),
                "COMMENT ON SCHEMA \"public\" IS 'it''s; DROP'",
            ),
        ];
        for (x, sql) in ok {
            check_pg_definition(sql, x).unwrap_or_else(|err| panic!("{sql}: {err}"));
        }
    }

    #[test]
    fn hostile_definitions_are_refused() {
        let bad = [
            (e("table", "a", None), "DROP TABLE other.y"),
            (e("table", "a", None), "CREATE TABLE other.a (x int)"),
            (e("table", "a", None), "CREATE TABLE public.b (x int)"),
            (e("index", "i", Some("t")), "CREATE INDEX i ON other.t (x)"),
            (
                e("trigger", "g", Some("t")),
                "CREATE TRIGGER g AFTER INSERT ON other.t EXECUTE FUNCTION f()",
            ),
            (
                e("sequence_value", "s", None),
                "SELECT pg_catalog.setval('public.s', 1, false), pg_terminate_backend(1)",
            ),
            (
                e("view", "v", None),
                "CREATE VIEW public.v AS SELECT pg_read_file('/etc/passwd')",
            ),
            (
                e("table", "a", None),
                "CREATE TABLE public.a AS SELECT query_to_xml('DROP TABLE x', true, true, '')",
            ),
            (
                e("schema", "s", None),
                "CREATE SCHEMA s CREATE TABLE other.t (x int)",
            ),
            (
                e("refresh", "m", None),
                "REFRESH MATERIALIZED VIEW public.m; DROP TABLE x",
            ),
        ];
        for (x, sql) in bad {
            assert!(check_pg_definition(sql, x).is_err(), "accepted: {sql}");
        }
    }
}

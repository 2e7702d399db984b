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
    /// The schemas the import may touch (the archive's, after any remapping, and those its
    /// extensions live in): a qualified function or relation anywhere else is refused.
    pub schemas: &'a [String],
    /// `--trust-archive`: functions may be SECURITY DEFINER and in any language.
    pub trusted: bool,
    /// The target's other schemas: a name qualified with one of them (a relation in a
    /// `FROM` list, a `USING`, a column) is refused wherever it stands.
    pub foreign: &'a [String],
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

/// Name prefixes of server functions refused like [`DENIED`]: whole families that read or
/// write files or large objects, run SQL from strings, or act on the server.
pub const DENIED_PREFIXES: &[&str] = &[
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_stat_reset",
    "pg_sleep",
    "pg_advisory",
    "pg_try_advisory",
    "pg_create_",
    "pg_drop_",
    "pg_replication_",
    "pg_log_",
    "pg_signal",
    "pg_notify",
    "lo_",
    "dblink",
    "query_to_",
    "cursor_to_",
    "database_to_",
    "schema_to_",
    "table_to_",
    "ts_stat",
    "ts_rewrite",
];

/// Functions refused outside a `sequence_value` entry: they change a sequence now.
const SEQUENCE_SETTERS: &[&str] = &["setval", "lowrite", "loread"];

fn denied_name(name: &str) -> bool {
    DENIED.contains(&name)
        || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
        || SEQUENCE_SETTERS.contains(&name)
}

/// Checks a statement ferry built for PostgreSQL from another engine's archive (a CHECK, a
/// default, an index, a view, a trigger): it may not reach outside `schemas` nor call a
/// denied function. `setval` is allowed: ferry's own identity steps use it, and its string
/// must still name a sequence in `schemas`.
pub fn check_pg_statement(
    sql: &str,
    what: &str,
    schemas: &[String],
    foreign: &[String],
) -> Result<(), SqlError> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Parse {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    no_unicode_escapes(&tokens, what)?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    reaches(
        &tokens,
        what,
        Scope {
            schemas,
            foreign,
            code_strings: false,
        },
        true,
    )
}

/// The first of `names` that `sql` calls (as `name(`, `schema.name(`, or after `=` in an
/// aggregate's `SFUNC = name`), read on PostgreSQL's tokens.
/// `schemas`: a call qualified with one of them (the archive's own, where its functions and
/// its extensions' functions live) counts too, whatever the function's name.
pub fn calls_any(
    sql: &str,
    names: &[&str],
    supplied: &[String],
    schemas: &[String],
) -> Option<String> {
    let tokens: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    // A column DEFAULT is not evaluated by a load that supplies every column (ferry's
    // COPY does), so calls inside one are skipped: from DEFAULT to the end of its column.
    const ENDS_DEFAULT: &[&str] = &[
        "NOT",
        "NULL",
        "CHECK",
        "CONSTRAINT",
        "PRIMARY",
        "UNIQUE",
        "REFERENCES",
        "GENERATED",
        "COLLATE",
    ];
    let is_kw = |t: &Token, ks: &[&str]| matches!(t, Token::Word(w) if w.quote_style.is_none() && ks.iter().any(|k| w.value.eq_ignore_ascii_case(k)));
    let mut depth = 0i32;
    let mut skipping: Option<i32> = None;
    // The column a table's list item defines (its first word), for its DEFAULT.
    let mut column: Option<String> = None;
    let mut item_start = false;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => {
                depth += 1;
                item_start = depth == 1;
            }
            Token::RParen => depth -= 1,
            Token::Comma if depth == 1 => item_start = true,
            Token::Word(w) if item_start => {
                column = Some(folded(w));
                item_start = false;
            }
            _ => item_start = false,
        }
        if let Some(d) = skipping {
            let ended =
                (depth < d) || (depth == d && (*t == Token::Comma || is_kw(t, ENDS_DEFAULT)));
            if ended {
                skipping = None;
            } else {
                continue;
            }
        }
        // Only a column's DEFAULT, and only for a column the load supplies: a domain's
        // DEFAULT, a partition's DEFAULT or an extra column's default would run.
        if is_kw(t, &["DEFAULT"])
            && depth == 1
            && column.as_ref().is_some_and(|c| supplied.contains(c))
        {
            skipping = Some(depth);
            continue;
        }
        // `f(`, or a function named after `=` (`SFUNC = f`, `canonical = s.f`).
        let fn_key = |k: Option<&Token>| {
            k.is_some_and(|k| {
                is_kw(
                    k,
                    &[
                        "SFUNC",
                        "FINALFUNC",
                        "COMBINEFUNC",
                        "SERIALFUNC",
                        "DESERIALFUNC",
                        "MSFUNC",
                        "MINVFUNC",
                        "MFINALFUNC",
                        "CANONICAL",
                        "SUBTYPE_DIFF",
                        "INPUT",
                        "OUTPUT",
                        "RECEIVE",
                        "SEND",
                        "TYPMOD_IN",
                        "TYPMOD_OUT",
                        "ANALYZE",
                        "SUBSCRIPT",
                    ],
                )
            })
        };
        let named_after_eq = (i > 1 && tokens[i - 1] == Token::Eq && fn_key(tokens.get(i - 2)))
            || (i > 3
                && tokens[i - 1] == Token::Period
                && tokens[i - 3] == Token::Eq
                && fn_key(tokens.get(i - 4)));
        // A relation named before its column list (`CREATE TABLE s.t (`, `REFERENCES s.t (`)
        // is not a call.
        let relation = i > 2
            && is_kw(
                &tokens[i - 3],
                &[
                    "TABLE",
                    "REFERENCES",
                    "ON",
                    "ONLY",
                    "INTO",
                    "EXISTS",
                    "OF",
                    "VIEW",
                ],
            );
        let qualified_here = i > 1
            && tokens[i - 1] == Token::Period
            && matches!(&tokens[i - 2], Token::Word(s) if schemas.contains(&folded(s)))
            && !relation;
        if let Token::Word(w) = t
            && (tokens.get(i + 1) == Some(&Token::LParen) || named_after_eq)
            && (names.contains(&folded(w).as_str()) || qualified_here)
        {
            return Some(folded(w));
        }
    }
    None
}

/// The tables a statement names after `PARTITION OF` and `REFERENCES`: (schema, name).
pub fn named_tables(sql: &str) -> Vec<(Option<String>, String)> {
    let tokens: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let kw = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let named =
            kw(t, "REFERENCES") || (kw(t, "OF") && i > 0 && kw(&tokens[i - 1], "PARTITION"));
        if !named {
            continue;
        }
        match (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3)) {
            (Some(Token::Word(s)), Some(Token::Period), Some(Token::Word(n))) => {
                out.push((Some(folded(s)), folded(n)))
            }
            (Some(Token::Word(n)), _, _) => out.push((None, folded(n))),
            _ => {}
        }
    }
    out
}

/// Whether `text` can only be a function's argument list inside `name(…)`: no comment (which
/// could hide a closing parenthesis from a naive reader), no `;`, and no parenthesis that
/// closes the list early.
pub fn is_argument_list(text: &str) -> bool {
    use sqlparser::tokenizer::Whitespace;
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
        return false;
    };
    let mut depth = 0i32;
    for t in &tokens {
        match t {
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_))
            | Token::SemiColon => return false,
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// Checks one PostgreSQL definition against its manifest entry.
pub fn check_pg_definition(sql: &str, expect: Expect<'_>) -> Result<(), SqlError> {
    let what = describe(&expect);
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Parse {
            what: what.clone(),
            message: e.to_string(),
        })?;
    no_unicode_escapes(&tokens, &what)?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let setval_allowed = expect.kind == "sequence_value";
    reaches(
        &tokens,
        &what,
        Scope {
            schemas: expect.schemas,
            foreign: expect.foreign,
            code_strings: false,
        },
        setval_allowed,
    )?;
    if matches!(expect.kind, "function" | "procedure") && !expect.trusted {
        for pair in tokens.windows(2) {
            let kw = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
            if kw(&pair[0], "LANGUAGE")
                && !matches!(&pair[1], Token::Word(w) if ["sql", "plpgsql"].contains(&folded(w).as_str()))
            {
                return Err(SqlError::Unexpected {
                    what,
                    expected: "LANGUAGE sql or plpgsql (pass --trust-archive for others)".into(),
                    found: format!("LANGUAGE {}", pair[1]),
                });
            }
            if kw(&pair[0], "SECURITY") && kw(&pair[1], "DEFINER") {
                return Err(SqlError::Unexpected {
                    what,
                    expected: "a function that runs with its caller's rights (pass --trust-archive for SECURITY DEFINER)".into(),
                    found: "SECURITY DEFINER".into(),
                });
            }
        }
    }
    if expect.kind == "aggregate" {
        // SFUNC = name takes no parentheses: every name in an aggregate is a function.
        for (i, t) in tokens.iter().enumerate() {
            if let Token::Word(w) = t {
                if denied_name(&folded(w)) {
                    return Err(SqlError::Denied {
                        what,
                        function: folded(w),
                    });
                }
                if tokens.get(i + 1) == Some(&Token::Period)
                    && folded(w) != "pg_catalog"
                    && !expect.schemas.contains(&folded(w))
                {
                    return Err(SqlError::Unexpected {
                        what,
                        expected: "functions in the archive's schemas".into(),
                        found: format!("{}.", folded(w)),
                    });
                }
            }
        }
    }
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
            h.name(expect.name)?;
            h.words(&["WITH", "SCHEMA"])?;
            h.one_schema(expect.schemas)?;
            h.end()
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
            // The sequence set must be the entry's own.
            h.names_object(expect.schema, expect.name)?;
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
            qualified(&mut h, expect.name)?;
            // Populated only by its own `refresh` entry, after the data: never while created.
            h.ends_with(&["WITH", "NO", "DATA"])
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
            h.name(expect.name)?;
            // One action: `ADD CONSTRAINT …, INHERIT other.t` is a second one.
            h.no_top_level(&Token::Comma, "one action")
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
            // Unquoted, ALL and USER are keywords: every trigger of the table, foreign-key
            // enforcement included.
            if matches!(h.peek(), Some(Token::Word(w)) if w.quote_style.is_none()
                && (w.value.eq_ignore_ascii_case("ALL") || w.value.eq_ignore_ascii_case("USER")))
            {
                return Err(h.unexpected("a trigger's name"));
            }
            h.name(expect.name)?;
            h.end()
        }
        "rule" => {
            h.word("CREATE")?;
            h.optional(&["OR", "REPLACE"]);
            h.word("RULE")?;
            h.name(expect.name)?;
            h.words(&["AS", "ON"])?;
            // An ON SELECT rule replaces what a view (or a table, which it turns into a
            // view) returns: never the archive's to write; views are views.
            h.one_of(&["INSERT", "UPDATE", "DELETE"])?;
            h.word("TO")?;
            qualified(&mut h, table(&expect)?)
        }
        "comment" => {
            // COMMENT ON <object> IS '<text>': the last two tokens are IS and a string.
            h.words(&["COMMENT", "ON"])?;
            h.comment_target(&expect)?;
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
            qualified(&mut h, expect.name)?;
            h.table_body(expect.schemas)
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

/// Refuses what a definition may not reach: denied server functions (by any spelling the
/// tokenizer sees: bare, quoted or schema-qualified), functions and relations qualified with
/// a schema the import may not touch, in the statement and in the SQL bodies (dollar-quoted)
/// it carries.
fn reaches(
    tokens: &[Token],
    what: &str,
    scope: Scope<'_>,
    setval_allowed: bool,
) -> Result<(), SqlError> {
    let Scope {
        schemas,
        foreign,
        code_strings,
    } = scope;
    let allowed = |s: &str| s == "pg_catalog" || schemas.iter().any(|x| x == s);
    let outside = |schema: &str, name: &str| SqlError::Unexpected {
        what: what.to_owned(),
        expected: format!("objects in the archive's schemas ({})", schemas.join(", ")),
        found: format!("{schema}.{name}"),
    };
    let body = |text: &str| -> Result<(), SqlError> {
        let inner = Tokenizer::new(&PostgreSqlDialect {}, text)
            .tokenize()
            .map_err(|e| SqlError::Parse {
                what: format!("{what} (its body)"),
                message: e.to_string(),
            })?;
        no_unicode_escapes(&inner, what)?;
        let inner: Vec<Token> = inner
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        reaches(
            &inner,
            what,
            Scope {
                code_strings: true,
                ..scope
            },
            false,
        )
    };
    // A string inside a body may be SQL run by EXECUTE: read it when it reads as SQL.
    let nested = |text: &str| -> Result<(), SqlError> {
        let Ok(inner) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
            return Ok(());
        };
        no_unicode_escapes(&inner, what)?;
        let inner: Vec<Token> = inner
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        reaches(&inner, what, scope, false)
    };
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Word(w) if tokens.get(i + 1) == Some(&Token::LParen) => {
                let name = folded(w);
                // nextval('other.s') and the like name a relation in a string: a plain one,
                // which is read here, never one that is built.
                let sequence_fn = ["nextval", "currval", "setval", "pg_get_serial_sequence"]
                    .contains(&name.as_str());
                let plain = matches!(tokens.get(i + 2), Some(Token::SingleQuotedString(_)))
                    && matches!(
                        tokens.get(i + 3),
                        Some(Token::RParen | Token::DoubleColon | Token::Comma)
                    );
                // setval(pg_get_serial_sequence('<table>', '<column>'), …): the sequence
                // of a named table's column, whose names are held to the same rule.
                let serial = tokens[i + 2..]
                    .iter()
                    .take(4)
                    .any(|t| matches!(t, Token::Word(w) if folded(w) == "pg_get_serial_sequence"));
                let plain = plain || (name == "setval" && serial);
                if sequence_fn && !plain {
                    return Err(SqlError::Unexpected {
                        what: what.to_owned(),
                        expected: format!("{name}() of a sequence named by a plain string"),
                        found: "a name that is computed or escaped".into(),
                    });
                }
                if sequence_fn && let Some(Token::SingleQuotedString(lit)) = tokens.get(i + 2) {
                    let inner: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, lit)
                        .tokenize()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|t| !matches!(t, Token::Whitespace(_)))
                        .collect();
                    if let [Token::Word(s), Token::Period, Token::Word(n), ..] = inner.as_slice()
                        && !allowed(&folded(s))
                    {
                        return Err(outside(&folded(s), &folded(n)));
                    }
                }
                let setter_ok = setval_allowed && name == "setval";
                if denied_name(&name) && !setter_ok {
                    return Err(SqlError::Denied {
                        what: what.to_owned(),
                        function: name,
                    });
                }
                if i >= 2
                    && tokens[i - 1] == Token::Period
                    && let Token::Word(s) = &tokens[i - 2]
                    && !allowed(&folded(s))
                {
                    return Err(outside(&folded(s), &name));
                }
            }
            // A relation where a statement reads or writes one.
            Token::Word(k)
                if k.quote_style.is_none()
                    && ["INTO", "UPDATE", "FROM", "JOIN", "REFERENCES", "TABLE"]
                        .iter()
                        .any(|x| k.value.eq_ignore_ascii_case(x)) =>
            {
                let mut j = i + 1;
                if matches!(tokens.get(j), Some(Token::Word(o)) if o.quote_style.is_none() && o.value.eq_ignore_ascii_case("ONLY"))
                {
                    j += 1;
                }
                if let (Some(Token::Word(s)), Some(Token::Period), Some(Token::Word(n))) =
                    (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                    && !allowed(&folded(s))
                {
                    return Err(outside(&folded(s), &folded(n)));
                }
            }
            // `AS '<body>'`, `AS E'<body>'`, `AS $$<body>$$`, and a body continued over
            // several literals: SQL, held to the same rules; one that cannot be read is
            // refused.
            Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::DollarQuotedString(_)
                if i > 0 && is_as(&tokens[i - 1]) =>
            {
                let mut text = String::new();
                for t in &tokens[i..] {
                    match t {
                        Token::SingleQuotedString(x) | Token::EscapedStringLiteral(x) => {
                            text.push_str(x)
                        }
                        Token::DollarQuotedString(d) => text.push_str(&d.value),
                        _ => break,
                    }
                }
                body(&text)?
            }
            Token::DollarQuotedString(d) => body(&d.value)?,
            Token::SingleQuotedString(text) | Token::EscapedStringLiteral(text) if code_strings => {
                nested(text)?
            }
            // A name qualified with one of the target's other schemas, wherever it stands.
            Token::Word(x)
                if tokens.get(i + 1) == Some(&Token::Period) && foreign.contains(&folded(x)) =>
            {
                let y = match tokens.get(i + 2) {
                    Some(Token::Word(y)) => folded(y),
                    _ => String::new(),
                };
                return Err(outside(&folded(x), &y));
            }
            _ => {}
        }
    }
    Ok(())
}

/// What [`reaches`] may touch.
#[derive(Clone, Copy)]
struct Scope<'a> {
    schemas: &'a [String],
    foreign: &'a [String],
    /// Inside a function body: string literals may be SQL (EXECUTE) and are read as such.
    code_strings: bool,
}

fn is_as(t: &Token) -> bool {
    matches!(t, Token::Word(a) if a.quote_style.is_none() && a.value.eq_ignore_ascii_case("AS"))
}

/// `U&"..."` and `U&'...'` spell names in escapes that no token check can read.
fn no_unicode_escapes(tokens: &[Token], what: &str) -> Result<(), SqlError> {
    let escape = tokens.windows(2).any(|p| {
        matches!(p, [Token::Word(w), Token::Ampersand] if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("U"))
    }) || tokens
        .iter()
        .any(|t| matches!(t, Token::UnicodeStringLiteral(_)));
    if escape {
        Err(SqlError::Unexpected {
            what: what.to_owned(),
            expected: "plain identifiers and strings".into(),
            found: "a U& escape".into(),
        })
    } else {
        Ok(())
    }
}

/// An identifier as PostgreSQL resolves it: unquoted names fold to lower case.
fn folded(w: &Word) -> String {
    match w.quote_style {
        Some(_) => w.value.clone(),
        // PostgreSQL folds ASCII letters only: `fÉ` is not `fé`.
        None => w.value.to_ascii_lowercase(),
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

    /// The next word is one of `schemas`.
    fn one_schema(&mut self, schemas: &[String]) -> Result<(), SqlError> {
        let at = self.i;
        match self.ident() {
            Some(s) if schemas.contains(&s) => Ok(()),
            _ => {
                self.i = at;
                Err(self.unexpected(&format!(
                    "one of the archive's schemas ({})",
                    schemas.join(", ")
                )))
            }
        }
    }

    /// A string literal that names exactly `schema.name` (as `regclass` would read it).
    fn names_object(&mut self, schema: Option<&str>, name: &str) -> Result<(), SqlError> {
        let Some(Token::SingleQuotedString(text)) = self.peek().cloned() else {
            return Err(self.unexpected("a string naming the entry's object"));
        };
        let inner: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, &text)
            .tokenize()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        let mut h = Head {
            t: &inner,
            i: 0,
            what: self.what,
        };
        if h.qualified(schema, name).and_then(|()| h.end()).is_err() {
            return Err(self.unexpected(&format!("the name {}.{name}", schema.unwrap_or_default())));
        }
        self.i += 1;
        Ok(())
    }

    /// The statement's last words are `words`.
    fn ends_with(&mut self, words: &[&str]) -> Result<(), SqlError> {
        let end = self
            .t
            .iter()
            .rposition(|t| !matches!(t, Token::SemiColon | Token::EOF))
            .map_or(0, |p| p + 1);
        let tail = &self.t[end.saturating_sub(words.len())..end];
        let ok = tail.len() == words.len()
            && tail.iter().zip(words).all(|(t, w)| {
                matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
            });
        if ok {
            Ok(())
        } else {
            self.i = end.saturating_sub(1);
            Err(self.unexpected(&words.join(" ")))
        }
    }

    /// `tok` does not occur outside parentheses in the rest of the statement.
    fn no_top_level(&mut self, tok: &Token, expected: &str) -> Result<(), SqlError> {
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                t if depth == 0 && t == tok => return Err(self.unexpected(expected)),
                _ => {}
            }
            self.i += 1;
        }
        Ok(())
    }

    /// What may follow `CREATE TABLE <name>`: a column list (no `LIKE`), or `PARTITION OF`
    /// a table in the archive's schemas; then `PARTITION BY`, `FOR VALUES`, `DEFAULT`,
    /// `WITH (…)`. Never `AS` (it would run a query now), `INHERITS`, or `TABLESPACE`.
    fn table_body(&mut self, schemas: &[String]) -> Result<(), SqlError> {
        if self.optional(&["PARTITION", "OF"]) {
            let at = self.i;
            match (self.ident(), self.peek()) {
                (Some(s), Some(Token::Period)) if schemas.contains(&s) => {
                    self.i += 1;
                    self.ident();
                }
                _ => {
                    self.i = at;
                    return Err(self.unexpected("a parent table in the archive's schemas"));
                }
            }
        }
        let mut depth = 0i32;
        let mut item_start = false;
        while let Some(t) = self.peek() {
            match t {
                Token::LParen => {
                    depth += 1;
                    item_start = depth == 1;
                    self.i += 1;
                    continue;
                }
                Token::RParen => depth -= 1,
                Token::Comma if depth == 1 => {
                    item_start = true;
                    self.i += 1;
                    continue;
                }
                Token::Word(w)
                    if w.quote_style.is_none()
                        && ((depth == 0
                            && ["AS", "INHERITS", "TABLESPACE"]
                                .iter()
                                .any(|k| w.value.eq_ignore_ascii_case(k)))
                            || (depth == 1
                                && item_start
                                && w.value.eq_ignore_ascii_case("LIKE"))) =>
                {
                    return Err(self.unexpected("columns, constraints and partitioning only"));
                }
                _ => {}
            }
            item_start = false;
            self.i += 1;
        }
        Ok(())
    }

    /// `COMMENT ON <kind> <name>`: only the kinds of objects an archive creates, and only
    /// the entry's own object (or, for a column, trigger, rule or constraint, its table).
    fn comment_target(&mut self, expect: &Expect<'_>) -> Result<(), SqlError> {
        const KINDS: &[&str] = &[
            "TABLE",
            "COLUMN",
            "VIEW",
            "MATERIALIZED",
            "INDEX",
            "SEQUENCE",
            "TYPE",
            "DOMAIN",
            "FUNCTION",
            "PROCEDURE",
            "AGGREGATE",
            "TRIGGER",
            "RULE",
            "CONSTRAINT",
            "SCHEMA",
            "COLLATION",
        ];
        let kind = match self.peek() {
            Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        };
        if !KINDS.contains(&kind.as_str()) {
            return Err(self.unexpected("a table, column, view, index, sequence, type, function, trigger, rule, constraint, schema or collation"));
        }
        self.i += 1;
        if kind == "MATERIALIZED" {
            self.word("VIEW")?;
        }
        if kind == "SCHEMA" {
            let at = self.i;
            self.name(expect.name)?;
            self.i = at;
            return self.one_schema(expect.schemas);
        }
        if matches!(kind.as_str(), "TRIGGER" | "RULE" | "CONSTRAINT") {
            self.name(expect.name)?;
            self.word("ON")?;
            let table = expect.table.unwrap_or(expect.name);
            return self.qualified(expect.schema, table);
        }
        let object = if kind == "COLUMN" {
            expect.table.unwrap_or(expect.name)
        } else {
            expect.name
        };
        self.qualified(expect.schema, object)
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
        static SCHEMAS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["public".to_string()]);
        static FOREIGN: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["other".to_string()]);
        Expect {
            kind,
            schema: Some("public"),
            name,
            table,
            schemas: &SCHEMAS,
            trusted: false,
            foreign: &FOREIGN,
        }
    }

    #[test]
    fn argument_lists() {
        assert!(is_argument_list(
            "a integer, b text DEFAULT '('::text, OUT c numeric(10,2)"
        ));
        assert!(!is_argument_list(
            "/* ' */ a integer), other.g(integer /* ' */"
        ));
        assert!(!is_argument_list("int), other.f(int"));
        assert!(!is_argument_list("int); DROP TABLE x; --"));
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
                "CREATE OR REPLACE FUNCTION public.f(a integer)\n RETURNS integer LANGUAGE sql AS $$ select a + 1 $$",
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

    #[test]
    fn second_review_findings_are_refused() {
        let bad = [
            (
                e("comment", "victim", None),
                "COMMENT ON TABLE public.t IS 'x'",
            ),
            (
                e("comment", "plpgsql", None),
                "COMMENT ON EXTENSION plpgsql IS 'x'",
            ),
            (
                e("function", "f", None),
                "CREATE FUNCTION public.f() RETURNS bool LANGUAGE sql AS 'select other.f() > 0'",
            ),
            (
                e("function", "f", None),
                "CREATE FUNCTION public.f() RETURNS bool LANGUAGE sql AS 'select pg_read_file(''/etc/hostname'') is not null'",
            ),
            (
                e("function", "f", None),
                r#"CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$ select length(U&"pg\005Fread_file"('/x')) $$"#,
            ),
            (
                e("function", "f", None),
                "CREATE FUNCTION public.f() RETURNS int LANGUAGE plpython3u AS $$ return 1 $$",
            ),
            (
                e("function", "f", None),
                "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ select 1 $$",
            ),
            (
                e("table", "t", None),
                "CREATE TABLE public.t (x int CHECK (pg_catalog.nextval('other.s') > 0))",
            ),
            (
                e("aggregate", "agg", None),
                "CREATE AGGREGATE public.agg(integer) (SFUNC = other.sfn, STYPE = integer)",
            ),
            (
                e("aggregate", "agg", None),
                "CREATE AGGREGATE public.agg(text) (SFUNC = pg_read_file, STYPE = text)",
            ),
            (
                e("trigger_state", "all", Some("t")),
                "ALTER TABLE public.t DISABLE TRIGGER ALL",
            ),
        ];
        for (x, sql) in bad {
            assert!(check_pg_definition(sql, x).is_err(), "accepted: {sql}");
        }
        let ok = [
            (
                e("comment", "t", Some("t")),
                "COMMENT ON TABLE public.t IS 'x'",
            ),
            (
                e("comment", "c", Some("t")),
                "COMMENT ON CONSTRAINT c ON public.t IS 'x'",
            ),
            (
                e("table", "t", None),
                "CREATE TABLE public.t (id int DEFAULT nextval('public.s'::regclass))",
            ),
        ];
        for (x, sql) in ok {
            check_pg_definition(sql, x).unwrap_or_else(|err| panic!("{sql}: {err}"));
        }
    }

    #[test]
    fn third_review_findings_are_refused() {
        let bad = [
            (
                e("table", "t", None),
                "CREATE TABLE public.t (x int CHECK (nextval(E'other.s') > 0))",
            ),
            (
                e("table", "t", None),
                "CREATE TABLE public.t (x int CHECK (nextval('other.' || 's') > 0))",
            ),
            (
                e("materialized_view", "m", None),
                "CREATE MATERIALIZED VIEW public.m AS SELECT t.id, s.s FROM public.t, other.secret s WITH NO DATA",
            ),
            (
                e("function", "f", None),
                "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS E'select pg_read_file(''/x'') is null'",
            ),
            (
                e("function", "f", None),
                "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'select 1 '\n'from other.secret'",
            ),
            (
                e("function", "f", None),
                "CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DELETE FROM other.secret'; END $$",
            ),
        ];
        for (x, sql) in bad {
            assert!(check_pg_definition(sql, x).is_err(), "accepted: {sql}");
        }
        assert_eq!(
            calls_any(
                "CREATE TABLE public.t PARTITION OF public.pp DEFAULT PARTITION BY RANGE ((public.f(x)))",
                &["f"],
                &["x".into()],
                &[]
            )
            .as_deref(),
            Some("f"),
            "a partition's DEFAULT is not a column default"
        );
        assert_eq!(
            calls_any(
                "CREATE TABLE t (id int, z int DEFAULT f(1))",
                &["f"],
                &["id".into()],
                &[]
            )
            .as_deref(),
            Some("f"),
            "a column the load does not supply takes its default"
        );
        assert_eq!(
            named_tables(
                "ALTER TABLE ONLY public.t ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES public.orders(id)"
            ),
            vec![(Some("public".to_string()), "orders".to_string())]
        );
        assert_eq!(
            calls_any(
                "CREATE MATERIALIZED VIEW app.mv AS SELECT * FROM app.crosstab3('select 1') WITH NO DATA",
                &[],
                &[],
                &["app".to_string()]
            )
            .as_deref(),
            Some("crosstab3"),
            "an extension's function in the archive's schema is the archive's code"
        );
        assert_eq!(
            calls_any(
                "CREATE TABLE app.t (\"A\" text, a int DEFAULT app.g())",
                &["g"],
                &["A".into()],
                &[]
            )
            .as_deref(),
            Some("g"),
            "column a is not the supplied column \"A\""
        );
        assert!(check_pg_definition(
            "CREATE OR REPLACE RULE \"_RETURN\" AS ON SELECT TO public.t DO INSTEAD SELECT 1 AS id",
            e("rule", "_RETURN", Some("t"))
        )
        .is_err());
        let ok = e("function", "f", None);
        check_pg_definition(
            "CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'can''t do that: %', 1; END $$",
            ok,
        )
        .unwrap();
    }
}

/// The tables and views a definition names, as (schema, name): from the syntax tree when the
/// definition parses (`FROM`, `JOIN`, `REFERENCES`, ...), else every identifier in it, which
/// can only over-report. Used to drop objects that would dangle when a table is left out of
/// an export; an object wrongly taken for dangling is reported, never silently lost.
pub fn relations(sql: &str, sqlite: bool) -> Vec<(Option<String>, String)> {
    use sqlparser::dialect::{Dialect, SQLiteDialect};
    let dialect: &dyn Dialect = if sqlite {
        &SQLiteDialect {}
    } else {
        &PostgreSqlDialect {}
    };
    let fold = |i: &sqlparser::ast::Ident| match (i.quote_style, sqlite) {
        (None, false) => i.value.to_ascii_lowercase(),
        _ => i.value.clone(),
    };
    if let Ok(statements) = sqlparser::parser::Parser::parse_sql(dialect, sql) {
        let mut out = Vec::new();
        let _ = sqlparser::ast::visit_relations(&statements, |name| {
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|p| p.as_ident().map(fold))
                .collect();
            match parts.as_slice() {
                [.., s, n] => out.push((Some(s.clone()), n.clone())),
                [n] => out.push((None, n.clone())),
                [] => {}
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        out.extend(named_tables(sql));
        return out;
    }
    Tokenizer::new(dialect, sql)
        .tokenize()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some((None, if sqlite { w.value.clone() } else { folded(&w) })),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod relations_tests {
    use super::relations;

    #[test]
    fn names_from_the_tree_or_every_word() {
        let r = relations(
            "CREATE VIEW v AS SELECT * FROM public.users u JOIN \"Orders\" o ON o.uid = u.id",
            false,
        );
        assert!(
            r.contains(&(Some("public".into()), "users".into())),
            "{r:?}"
        );
        assert!(r.contains(&(None, "Orders".into())), "{r:?}");
        assert!(!r.iter().any(|(_, n)| n == "uid"), "{r:?}");
        let r = relations("REFRESH MATERIALIZED VIEW s.mv", false);
        assert!(r.iter().any(|(_, n)| n == "mv"), "{r:?}");
    }
}

/// Whether a definition or expression names `name` as a word (an identifier or keyword
/// token, never inside a string literal or a comment), compared as the dialect compares
/// names. Conservative: a function or alias of the same name counts too.
pub fn mentions(sql: &str, sqlite: bool, name: &str) -> bool {
    use sqlparser::dialect::{Dialect, SQLiteDialect};
    let dialect: &dyn Dialect = if sqlite {
        &SQLiteDialect {}
    } else {
        &PostgreSqlDialect {}
    };
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else {
        // Untokenizable text: fall back to the plain substring, which can only over-report.
        return sql.contains(name);
    };
    tokens.iter().any(|t| match t {
        Token::Word(w) if sqlite => w.value.eq_ignore_ascii_case(name),
        Token::Word(w) => folded(w) == name,
        _ => false,
    })
}

//! Reading a PostgreSQL database's schema: the portable form for the manifest, and the
//! source's own DDL (`pg_get_*def`, or statements assembled from the catalogs with the
//! server quoting names and literals) for a same-engine restore.
//!
//! Objects are emitted in a *phase* (`pre` before the data, `post` after it) and in the order
//! they are listed; the importer retries a failing `pre` statement after the others, so
//! dependencies between views, functions and types resolve without a full dependency sort.

use std::collections::{BTreeMap, HashMap};

use ferry_archive::facts::{Facts, PgColumnFacts, PgTableFacts};
use ferry_archive::{Check, Column, ForeignKey, Generated, Key, SchemaObject, Table, Warning};
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::error::{Ctx, PgError, RowExt};
use crate::types::{self, TypeInfo, Wire};
use crate::{ENGINE, quote_ident, quote_qualified};

pub const PRE: &str = "pre";
pub const POST: &str = "post";

/// One table as exported: its manifest entry and how to read it.
pub struct TableInfo {
    pub table: Table,
    pub oid: u32,
    /// Wire form of each data field, in data order.
    pub wires: Vec<Wire>,
    /// False for partitioned parents, which hold no rows of their own, and for tables
    /// exported without their rows.
    pub has_rows: bool,
    /// The rows to read, as a condition on the table's columns (`--where`, a subset).
    pub filter: Option<String>,
}

pub struct Catalog {
    pub tables: Vec<TableInfo>,
    pub objects: Vec<SchemaObject>,
    pub settings: BTreeMap<String, Value>,
    pub warnings: Vec<Warning>,
    pub version: String,
}

/// The schemas in scope: `SELECT oid, nspname` of user schemas, optionally filtered.
const NS: &str = "SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname !~ '^pg_(toast_)?temp_'
      AND n.nspname !~ '^ferry_stage_[0-9a-f]+_[0-9a-f]+_[0-9]+$'
      AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_namespace'::regclass
                        AND d.objid = n.oid AND d.deptype = 'e')";

#[cfg(test)]
#[test]
fn staging_schemas_are_never_in_scope() {
    assert!(NS.contains(crate::leftover::STAGE_PATTERN));
}

fn not_extension_member(catalog: &str, oid_expr: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.{catalog}'::regclass AND d.objid = {oid_expr} AND d.deptype = 'e')"
    )
}

/// A post-data `COMMENT ON <target> IS '<text>'`.
fn comment(
    schema: Option<&str>,
    name: &str,
    table: Option<&str>,
    target: String,
    text: &str,
) -> SchemaObject {
    object(
        "comment",
        schema,
        name,
        table,
        format!("COMMENT ON {target} IS {}", quote_literal(text)),
        POST,
    )
}

/// How `COMMENT ON` names a routine of `kind` (`function`, `procedure`, `aggregate`):
/// `FUNCTION "s"."f"(integer)`. The selection finds a left-out routine's comment by it.
pub(crate) fn routine_target(kind: &str, schema: &str, name: &str, args: &str) -> String {
    format!(
        "{} {}({args})",
        kind.to_uppercase(),
        quote_qualified(schema, name)
    )
}

/// `COMMENT ON TRIGGER|RULE <name> ON <table>`, when the object has a comment.
fn table_object_comment(
    word: &str,
    schema: &str,
    name: &str,
    table: &str,
    text: Option<String>,
) -> Option<SchemaObject> {
    text.map(|c| {
        comment(
            Some(schema),
            name,
            Some(table),
            format!(
                "{word} {} ON {}",
                quote_ident(name),
                quote_qualified(schema, table)
            ),
            &c,
        )
    })
}

fn object(
    kind: &str,
    schema: Option<&str>,
    name: &str,
    table: Option<&str>,
    sql: String,
    phase: &str,
) -> SchemaObject {
    let mut properties = BTreeMap::new();
    properties.insert("phase".into(), json!(phase));
    SchemaObject {
        kind: kind.into(),
        schema: schema.map(str::to_owned),
        name: name.into(),
        table: table.map(str::to_owned),
        definition: Some(sql),
        properties,
    }
}

/// All types, for resolving domains and arrays in Rust rather than in recursive SQL.
pub async fn type_map(client: &Client) -> Result<HashMap<u32, RawType>, PgError> {
    let rows = client
        .query(
            "SELECT t.oid, n.nspname, t.typname, t.typtype::text, t.typbasetype, t.typtypmod, t.typelem, t.typlen
             FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace",
            &[],
        )
        .await
        .ctx(|| "reading pg_type".into())?;
    rows.iter()
        .map(|r| {
            Ok((
                r.at::<u32>(0)?,
                RawType {
                    schema: r.at(1)?,
                    name: r.at(2)?,
                    kind: r.at::<String>(3)?.chars().next().unwrap_or('b'),
                    base: r.at(4)?,
                    base_typmod: r.at(5)?,
                    elem: r.at(6)?,
                    len: r.at(7)?,
                },
            ))
        })
        .collect()
}

pub struct RawType {
    schema: String,
    name: String,
    kind: char,
    base: u32,
    base_typmod: i32,
    elem: u32,
    len: i16,
}

/// Resolves a column type through its domains.
pub fn type_info(
    types: &HashMap<u32, RawType>,
    oid: u32,
    typmod: i32,
    formatted: String,
) -> TypeInfo {
    let mut oid = oid;
    let mut typmod = typmod;
    for _ in 0..32 {
        match types.get(&oid) {
            Some(t) if t.kind == 'd' => {
                typmod = t.base_typmod;
                oid = t.base;
            }
            _ => break,
        }
    }
    let t = types.get(&oid);
    let is_array = t.is_some_and(|t| t.elem != 0 && t.len == -1);
    let element = t
        .filter(|_| is_array)
        .and_then(|t| types.get(&t.elem))
        .filter(|e| e.schema == "pg_catalog" && e.kind == 'b')
        .map(|e| e.name.clone());
    TypeInfo {
        formatted,
        base_schema: t.map(|t| t.schema.clone()).unwrap_or_default(),
        base_name: t.map(|t| t.name.clone()).unwrap_or_default(),
        base_kind: t.map(|t| t.kind).unwrap_or('b'),
        is_array,
        element,
        typmod,
    }
}

/// A column as the catalog describes it.
pub struct RawColumn {
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
    pub formatted: String,
    pub not_null: bool,
    pub default: Option<String>,
    pub identity: String,
    pub generated: String,
    pub collate: Option<String>,
    pub collation_name: Option<String>,
    pub comment: Option<String>,
    pub identity_sequence: Option<String>,
    pub identity_options: Option<String>,
}

/// Columns of the given relations, by relation oid, in attnum order.
pub async fn columns(
    client: &Client,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<RawColumn>>, PgError> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod,
                    pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                         THEN pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END,
                    co.collname,
                    pg_catalog.col_description(a.attrelid, a.attnum),
                    s.seqrelid::regclass::text,
                    CASE WHEN s.seqrelid IS NOT NULL THEN
                      pg_catalog.format('SEQUENCE NAME %s START WITH %s INCREMENT BY %s MINVALUE %s MAXVALUE %s CACHE %s%s',
                        s.seqrelid::regclass::text, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
                        CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END) END
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
             LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
             LEFT JOIN pg_catalog.pg_depend dep ON a.attidentity <> '' AND dep.refclassid = 'pg_catalog.pg_class'::regclass
                  AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype = 'i'
                  AND dep.classid = 'pg_catalog.pg_class'::regclass
             LEFT JOIN pg_catalog.pg_sequence s ON s.seqrelid = dep.objid
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .ctx(|| "reading columns".into())?;
    let mut out: HashMap<u32, Vec<RawColumn>> = HashMap::new();
    for r in rows {
        out.entry(r.at(0)?).or_default().push(RawColumn {
            name: r.at(1)?,
            type_oid: r.at(2)?,
            typmod: r.at(3)?,
            formatted: r.at(4)?,
            not_null: r.at(5)?,
            default: r.at(6)?,
            identity: r.at(7)?,
            generated: r.at(8)?,
            collate: r.at(9)?,
            collation_name: r.at(10)?,
            comment: r.at(11)?,
            identity_sequence: r.at(12)?,
            identity_options: r.at(13)?,
        });
    }
    Ok(out)
}

/// Reads everything in scope.
pub async fn read(client: &Client, schemas: &[String]) -> Result<Catalog, PgError> {
    let version: String = client
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .ctx(|| "reading the server version".into())?
        .at(0)?;
    let mut settings = BTreeMap::new();
    let db = client
        .query_one(
            "SELECT current_database(), pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype
             FROM pg_catalog.pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .ctx(|| "reading the database".into())?;
    settings.insert("database".into(), json!(db.at::<String>(0)?));
    settings.insert("encoding".into(), json!(db.at::<String>(1)?));
    settings.insert("lc_collate".into(), json!(db.at::<String>(2)?));
    settings.insert("lc_ctype".into(), json!(db.at::<String>(3)?));

    let ns_rows = client
        .query(NS, &[&schemas])
        .await
        .ctx(|| "reading schemas".into())?;
    let ns_names: Vec<String> = ns_rows.iter().map(|r| r.at(1)).collect::<Result<_, _>>()?;
    if let Some(missing) = schemas.iter().find(|s| !ns_names.contains(s)) {
        return Err(PgError::Config(format!(
            "schema {missing:?} does not exist"
        )));
    }
    settings.insert("schemas".into(), json!(ns_names));

    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    let mut schema_comments = Vec::new();
    for s in &ns_names {
        objects.push(object(
            "schema",
            None,
            s,
            None,
            format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s)),
            PRE,
        ));
    }
    for r in client
        .query(
            "SELECT n.nspname, d.description FROM pg_catalog.pg_namespace n
             JOIN pg_catalog.pg_description d ON d.objoid = n.oid
              AND d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objsubid = 0
             WHERE n.nspname = ANY($1::text[])
               -- initdb's own comment on public, which pg_dump leaves out too
               AND NOT (n.nspname = 'public' AND d.description = 'standard public schema')
             ORDER BY n.oid",
            &[&ns_names],
        )
        .await
        .ctx(|| "reading schema comments".into())?
    {
        let (s, text): (String, String) = (r.at(0)?, r.at(1)?);
        schema_comments.push(comment(
            None,
            &s,
            None,
            format!("SCHEMA {}", quote_ident(&s)),
            &text,
        ));
    }
    for r in client
        .query(
            "SELECT e.extname, n.nspname, e.extversion FROM pg_catalog.pg_extension e
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY e.extname",
            &[],
        )
        .await
        .ctx(|| "reading extensions".into())?
    {
        let (name, schema, version): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        let mut o = object(
            "extension",
            Some(&schema),
            &name,
            None,
            format!(
                "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
                quote_ident(&name),
                quote_ident(&schema)
            ),
            PRE,
        );
        o.properties.insert("version".into(), json!(version));
        objects.push(o);
    }
    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, c.collname, pg_catalog.format('CREATE COLLATION %I.%I (%s)', ns.nspname, c.collname,
           CASE c.collprovider WHEN 'i' THEN pg_catalog.format('provider = icu, locale = %L, deterministic = %s', c.colliculocale, CASE WHEN c.collisdeterministic THEN 'true' ELSE 'false' END)
                ELSE pg_catalog.format('provider = libc, lc_collate = %L, lc_ctype = %L, deterministic = %s', c.collcollate, c.collctype, CASE WHEN c.collisdeterministic THEN 'true' ELSE 'false' END) END)
         FROM pg_catalog.pg_collation c JOIN ns ON ns.oid = c.collnamespace
         WHERE {} ORDER BY c.oid",
        not_extension_member("pg_collation", "c.oid")
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading collations".into())?
    {
        objects.push(object(
            "collation",
            Some(r.at(0)?),
            r.at(1)?,
            None,
            r.at(2)?,
            PRE,
        ));
    }
    read_types(client, schemas, &mut objects).await?;

    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, p.proname, p.prokind::text,
                -- pg_get_functiondef raises an error for an aggregate: never call it on one
                CASE WHEN p.prokind <> 'a' THEN pg_catalog.pg_get_functiondef(p.oid) END,
                pg_catalog.pg_get_function_identity_arguments(p.oid), pg_catalog.obj_description(p.oid, 'pg_proc')
         FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace
         WHERE {}
           -- constructors that belong to a range type are made by CREATE TYPE
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                           AND d.objid = p.oid AND d.deptype = 'i')
         ORDER BY p.oid",
        not_extension_member("pg_proc", "p.oid")
    );
    let mut function_comments = Vec::new();
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading functions".into())?
    {
        let (schema, name, kind): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        if kind == "a" {
            continue; // read below, once every function they call exists
        }
        let word = if kind == "p" { "procedure" } else { "function" };
        let args: String = r.at(4)?;
        let mut o = object(word, Some(&schema), &name, None, r.at(3)?, PRE);
        o.properties
            .insert("identity_arguments".into(), json!(args));
        objects.push(o);
        if let Some(c) = r.at::<Option<String>>(5)? {
            function_comments.push(comment(
                Some(&schema),
                &name,
                None,
                routine_target(word, &schema, &name, &args),
                &c,
            ));
        }
    }

    read_aggregates(client, schemas, &mut objects, &mut function_comments).await?;
    let types = type_map(client).await?;
    let (tables, table_posts) =
        read_tables(client, schemas, &types, &mut objects, &mut warnings).await?;
    objects.extend(table_posts);
    // Comments are post-data, after the functions they describe.
    objects.extend(function_comments);
    objects.extend(schema_comments);
    uncarried(client, schemas, &mut warnings).await?;
    Ok(Catalog {
        tables,
        objects,
        settings,
        warnings,
        version,
    })
}

/// User-defined aggregates, rebuilt as `CREATE AGGREGATE` from `pg_aggregate` (PostgreSQL
/// has no `pg_get_aggregatedef`). Every support function is named with its schema, so the
/// statement means the same thing whatever the search path.
async fn read_aggregates(
    client: &Client,
    schemas: &[String],
    objects: &mut Vec<SchemaObject>,
    comments: &mut Vec<SchemaObject>,
) -> Result<(), PgError> {
    let q = format!(
        "WITH ns AS ({NS}),
         fname(oid, f) AS (SELECT p.oid, pg_catalog.format('%I.%I', n.nspname, p.proname)
                           FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace)
         SELECT ns.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
                pg_catalog.format('CREATE AGGREGATE %I.%I(%s) (SFUNC = %s, STYPE = %s', ns.nspname, p.proname,
                    CASE WHEN a.aggkind = 'n' AND p.pronargs = 0 THEN '*' ELSE pg_catalog.pg_get_function_arguments(p.oid) END,
                    (SELECT f FROM fname WHERE oid = a.aggtransfn), pg_catalog.format_type(a.aggtranstype, NULL))
                || CASE WHEN a.aggtransspace <> 0 THEN ', SSPACE = ' || a.aggtransspace ELSE '' END
                || CASE WHEN a.aggfinalfn <> 0 THEN ', FINALFUNC = ' || (SELECT f FROM fname WHERE oid = a.aggfinalfn) ELSE '' END
                || CASE WHEN a.aggfinalextra THEN ', FINALFUNC_EXTRA' ELSE '' END
                || CASE WHEN a.aggfinalfn <> 0 THEN ', FINALFUNC_MODIFY = ' || CASE a.aggfinalmodify WHEN 'r' THEN 'READ_ONLY' WHEN 's' THEN 'SHAREABLE' ELSE 'READ_WRITE' END ELSE '' END
                || CASE WHEN a.aggcombinefn <> 0 THEN ', COMBINEFUNC = ' || (SELECT f FROM fname WHERE oid = a.aggcombinefn) ELSE '' END
                || CASE WHEN a.aggserialfn <> 0 THEN ', SERIALFUNC = ' || (SELECT f FROM fname WHERE oid = a.aggserialfn) ELSE '' END
                || CASE WHEN a.aggdeserialfn <> 0 THEN ', DESERIALFUNC = ' || (SELECT f FROM fname WHERE oid = a.aggdeserialfn) ELSE '' END
                || CASE WHEN a.agginitval IS NOT NULL THEN ', INITCOND = ' || pg_catalog.quote_literal(a.agginitval) ELSE '' END
                || CASE WHEN a.aggmtransfn <> 0 THEN pg_catalog.format(', MSFUNC = %s, MINVFUNC = %s, MSTYPE = %s',
                        (SELECT f FROM fname WHERE oid = a.aggmtransfn), (SELECT f FROM fname WHERE oid = a.aggminvtransfn),
                        pg_catalog.format_type(a.aggmtranstype, NULL)) ELSE '' END
                || CASE WHEN a.aggmfinalfn <> 0 THEN ', MFINALFUNC = ' || (SELECT f FROM fname WHERE oid = a.aggmfinalfn) ELSE '' END
                || CASE WHEN a.aggmfinalextra THEN ', MFINALFUNC_EXTRA' ELSE '' END
                || CASE WHEN a.aggminitval IS NOT NULL THEN ', MINITCOND = ' || pg_catalog.quote_literal(a.aggminitval) ELSE '' END
                || CASE WHEN a.aggsortop <> 0 THEN ', SORTOP = ' || (SELECT pg_catalog.format('OPERATOR(%I.%s)', n.nspname, o.oprname)
                        FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace WHERE o.oid = a.aggsortop) ELSE '' END
                || CASE WHEN a.aggkind = 'h' THEN ', HYPOTHETICAL' ELSE '' END
                || CASE p.proparallel WHEN 's' THEN ', PARALLEL = SAFE' WHEN 'r' THEN ', PARALLEL = RESTRICTED' ELSE '' END
                || ')',
                pg_catalog.obj_description(p.oid, 'pg_proc')
         FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace
         JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid
         WHERE p.prokind = 'a' AND {}
         ORDER BY p.oid",
        not_extension_member("pg_proc", "p.oid")
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading aggregates".into())?
    {
        let (schema, name, args): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        let mut o = object("aggregate", Some(&schema), &name, None, r.at(3)?, PRE);
        o.properties
            .insert("identity_arguments".into(), json!(args));
        objects.push(o);
        if let Some(c) = r.at::<Option<String>>(4)? {
            comments.push(comment(
                Some(&schema),
                &name,
                None,
                routine_target("aggregate", &schema, &name, &args),
                &c,
            ));
        }
    }
    Ok(())
}

async fn read_types(
    client: &Client,
    schemas: &[String],
    objects: &mut Vec<SchemaObject>,
) -> Result<(), PgError> {
    let collate = "CASE WHEN {coll} <> 0 AND {coll} <> (SELECT typcollation FROM pg_catalog.pg_type WHERE oid = {base})
        THEN ' COLLATE ' || (SELECT pg_catalog.quote_ident(n2.nspname) || '.' || pg_catalog.quote_ident(c2.collname)
            FROM pg_catalog.pg_collation c2 JOIN pg_catalog.pg_namespace n2 ON n2.oid = c2.collnamespace WHERE c2.oid = {coll})
        ELSE '' END";
    let domain_collate = collate
        .replace("{coll}", "t.typcollation")
        .replace("{base}", "t.typbasetype");
    let attr_collate = collate
        .replace("{coll}", "a.attcollation")
        .replace("{base}", "a.atttypid");
    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, t.typname, t.typtype::text,
           CASE t.typtype
             WHEN 'e' THEN pg_catalog.format('CREATE TYPE %I.%I AS ENUM (%s)', ns.nspname, t.typname,
               (SELECT coalesce(string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder), '')
                FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid))
             WHEN 'r' THEN (SELECT pg_catalog.format('CREATE TYPE %I.%I AS RANGE (subtype = %s%s, multirange_type_name = %s)',
                 ns.nspname, t.typname, pg_catalog.format_type(r.rngsubtype, NULL),
                 CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> (SELECT typcollation FROM pg_catalog.pg_type WHERE oid = r.rngsubtype)
                      THEN ', collation = ' || r.rngcollation::regcollation::text ELSE '' END,
                 r.rngmultitypid::regtype::text)
               FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid)
             WHEN 'd' THEN pg_catalog.format('CREATE DOMAIN %I.%I AS %s%s%s%s%s', ns.nspname, t.typname,
               pg_catalog.format_type(t.typbasetype, t.typtypmod), {domain_collate},
               CASE WHEN t.typdefault IS NOT NULL THEN ' DEFAULT ' || t.typdefault ELSE '' END,
               CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END,
               (SELECT coalesce(string_agg(pg_catalog.format(' CONSTRAINT %I %s', c.conname, pg_catalog.pg_get_constraintdef(c.oid)), '' ORDER BY c.conname), '')
                FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid))
             WHEN 'c' THEN pg_catalog.format('CREATE TYPE %I.%I AS (%s)', ns.nspname, t.typname,
               (SELECT coalesce(string_agg(pg_catalog.format('%I %s%s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), {attr_collate}), ', ' ORDER BY a.attnum), '')
                FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped))
           END,
           pg_catalog.obj_description(t.oid, 'pg_type'),
           t.oid::regtype::text,
           ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
         FROM pg_catalog.pg_type t JOIN ns ON ns.oid = t.typnamespace
         WHERE t.typtype IN ('e', 'r', 'd', 'c')
           AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')
           AND {}
         ORDER BY CASE t.typtype WHEN 'e' THEN 0 WHEN 'r' THEN 1 WHEN 'd' THEN 2 ELSE 3 END, t.oid",
        not_extension_member("pg_type", "t.oid")
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading types".into())?
    {
        let (schema, name, kind): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        let mut o = object("type", Some(&schema), &name, None, r.at(3)?, PRE);
        let what = match kind.as_str() {
            "e" => "enum",
            "r" => "range",
            "d" => "domain",
            _ => "composite",
        };
        o.properties.insert("type_kind".into(), json!(what));
        o.properties
            .insert("regtype".into(), json!(r.at::<String>(5)?));
        if what == "enum" {
            o.properties
                .insert("labels".into(), json!(r.at::<Vec<String>>(6)?));
        }
        objects.push(o);
        if let Some(c) = r.at::<Option<String>>(4)? {
            let word = if what == "domain" { "DOMAIN" } else { "TYPE" };
            objects.push(comment(
                Some(&schema),
                &name,
                None,
                format!("{word} {}", quote_qualified(&schema, &name)),
                &c,
            ));
        }
    }
    Ok(())
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

struct RawTable {
    oid: u32,
    schema: String,
    name: String,
    kind: String,
    unlogged: bool,
    options: Option<String>,
    partition_key: Option<String>,
    partition_of: Option<String>,
    partition_bound: Option<String>,
    comment: Option<String>,
    owner: String,
    acl: Option<String>,
}

/// The fields of composite types, so that an importer into an engine without them can
/// name each field (PostgreSQL → SQLite writes JSON objects, as to_json() would).
async fn composite_fields(
    client: &Client,
) -> Result<HashMap<(String, String), Vec<(String, String)>>, PgError> {
    let mut fields: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    for r in client
        .query(
            "SELECT n.nspname, t.typname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
             FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             JOIN pg_catalog.pg_class c ON c.oid = t.typrelid AND c.relkind = 'c'
             JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE t.typtype = 'c' ORDER BY t.oid, a.attnum",
            &[],
        )
        .await
        .ctx(|| "reading composite types' fields".into())?
    {
        fields
            .entry((r.at(0)?, r.at(1)?))
            .or_default()
            .push((r.at(2)?, r.at(3)?));
    }
    Ok(fields)
}

/// Sequences that are not identity sequences (their definitions, pre-data), and every
/// sequence's position and comment (post-data).
async fn read_sequences(
    client: &Client,
    schemas: &[String],
    objects: &mut Vec<SchemaObject>,
    post: &mut Vec<SchemaObject>,
) -> Result<(), PgError> {
    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, c.relname, c.oid::regclass::text,
                pg_catalog.format('CREATE SEQUENCE %I.%I AS %s START WITH %s INCREMENT BY %s MINVALUE %s MAXVALUE %s CACHE %s%s',
                  ns.nspname, c.relname, pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
                  s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END),
                pg_catalog.obj_description(c.oid, 'pg_class'),
                EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
                        AND d.objid = c.oid AND d.deptype = 'i')
         FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace
         JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
         WHERE c.relkind = 'S' AND {} ORDER BY c.oid",
        not_extension_member("pg_class", "c.oid")
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading sequences".into())?
    {
        let (schema, name, regclass): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        let identity: bool = r.at(5)?;
        if !identity {
            objects.push(object(
                "sequence",
                Some(&schema),
                &name,
                None,
                r.at(3)?,
                PRE,
            ));
        }
        let v = client
            .query_one(
                &format!(
                    "SELECT last_value::text, is_called FROM {}",
                    quote_qualified(&schema, &name)
                ),
                &[],
            )
            .await
            .ctx(|| format!("sequence {schema}.{name}: reading its value"))?;
        let (last, called): (String, bool) = (v.at(0)?, v.at(1)?);
        let mut o = object(
            "sequence_value",
            Some(&schema),
            &name,
            None,
            format!(
                "SELECT pg_catalog.setval({}, {last}, {called})",
                quote_literal(&regclass)
            ),
            POST,
        );
        o.properties.insert("last_value".into(), json!(last));
        o.properties.insert("is_called".into(), json!(called));
        post.push(o);
        if let Some(c) = r.at::<Option<String>>(4)? {
            post.push(comment(
                Some(&schema),
                &name,
                None,
                format!("SEQUENCE {}", quote_qualified(&schema, &name)),
                &c,
            ));
        }
    }
    Ok(())
}

async fn read_tables(
    client: &Client,
    schemas: &[String],
    types: &HashMap<u32, RawType>,
    objects: &mut Vec<SchemaObject>,
    warnings: &mut Vec<Warning>,
) -> Result<(Vec<TableInfo>, Vec<SchemaObject>), PgError> {
    let mut post: Vec<SchemaObject> = Vec::new();
    let ctx = ColumnContext {
        types,
        money_scale: money_scale(client).await?,
        composite_fields: composite_fields(client).await?,
    };
    read_sequences(client, schemas, objects, &mut post).await?;
    read_sequence_ownership(client, schemas, &mut post).await?;
    let raw = read_raw_tables(client, schemas, warnings).await?;
    let oids: Vec<u32> = raw.iter().map(|t| t.oid).collect();
    let mut cols = columns(client, &oids).await?;
    warn_not_carried(client, &oids, warnings).await?;
    let mut checks = read_checks(client, &oids).await?;
    let mut tables = Vec::new();
    for (i, rt) in raw.iter().enumerate() {
        let rc = cols.remove(&rt.oid).unwrap_or_default();
        let ch = checks.remove(&rt.oid).unwrap_or_default();
        tables.push(table_info(i, rt, &rc, ch, &ctx, &mut post));
    }
    read_constraints(client, &oids, &mut tables, &mut post).await?;
    read_views(client, schemas, objects, &mut post).await?;
    read_indexes_and_triggers(client, schemas, &mut post).await?;
    // Materialized views are filled last, once everything they read is loaded.
    let refresh: Vec<SchemaObject> = post
        .iter()
        .filter(|o| o.kind == "refresh")
        .cloned()
        .collect();
    post.retain(|o| o.kind != "refresh");
    post.extend(refresh);
    Ok((tables, post))
}

/// money is archived as its raw integer in the currency's smallest unit; how many fraction
/// digits that unit has depends on lc_monetary, so each money column records it, and an
/// importer that wants the amount (SQLite) divides exactly.
async fn money_scale(client: &Client) -> Result<i32, PgError> {
    client
        .query_one("SELECT pg_catalog.scale(1::money::numeric)", &[])
        .await
        .ctx(|| "reading the money scale of lc_monetary".into())?
        .at(0)
}

/// What a column's archive facts need beyond the column itself.
struct ColumnContext<'a> {
    types: &'a HashMap<u32, RawType>,
    money_scale: i32,
    composite_fields: HashMap<(String, String), Vec<(String, String)>>,
}

/// Sequences owned by a column, set after the tables exist.
async fn read_sequence_ownership(
    client: &Client,
    schemas: &[String],
    post: &mut Vec<SchemaObject>,
) -> Result<(), PgError> {
    let q = format!(
        "WITH ns AS ({NS})
         SELECT pg_catalog.format('ALTER SEQUENCE %s OWNED BY %s.%I', s.oid::regclass::text, t.oid::regclass::text, a.attname),
                sn.nspname, s.relname
         FROM pg_catalog.pg_depend d
         JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
         JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
           AND d.deptype = 'a' AND s.relnamespace IN (SELECT oid FROM ns)"
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading sequence ownership".into())?
    {
        post.insert(
            0,
            object(
                "sequence_owned_by",
                Some(r.at(1)?),
                r.at(2)?,
                None,
                r.at(0)?,
                POST,
            ),
        );
    }
    Ok(())
}

/// Ordinary and partitioned tables, partitions after their parents. Foreign tables are
/// warned about and left out.
async fn read_raw_tables(
    client: &Client,
    schemas: &[String],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<RawTable>, PgError> {
    let q = format!(
        "WITH ns AS ({NS})
         SELECT c.oid, ns.nspname, c.relname, c.relkind::text, c.relpersistence = 'u',
                array_to_string(c.reloptions, ', '),
                CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
                (SELECT i.inhparent::regclass::text FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition),
                CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
                pg_catalog.obj_description(c.oid, 'pg_class'), pg_catalog.pg_get_userbyid(c.relowner), c.relacl::text
         FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'f') AND {}
         ORDER BY c.relispartition, c.oid",
        not_extension_member("pg_class", "c.oid")
    );
    let mut raw = Vec::new();
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading tables".into())?
    {
        let t = RawTable {
            oid: r.at(0)?,
            schema: r.at(1)?,
            name: r.at(2)?,
            kind: r.at(3)?,
            unlogged: r.at(4)?,
            options: r.at::<Option<String>>(5)?.filter(|s| !s.is_empty()),
            partition_key: r.at(6)?,
            partition_of: r.at(7)?,
            partition_bound: r.at(8)?,
            comment: r.at(9)?,
            owner: r.at(10)?,
            acl: r.at(11)?,
        };
        if t.kind == "f" {
            warnings.push(Warning {
                code: "skipped_foreign_table".into(),
                table: Some(format!("{}.{}", t.schema, t.name)),
                column: None,
                message: format!("foreign table {}.{} is not exported", t.schema, t.name),
                details: Default::default(),
            });
            continue;
        }
        raw.push(t);
    }
    Ok(raw)
}

/// What ferry does not carry is said in the manifest, never dropped silently: row-level
/// security and (non-partition) inheritance.
async fn warn_not_carried(
    client: &Client,
    oids: &[u32],
    warnings: &mut Vec<Warning>,
) -> Result<(), PgError> {
    for r in client
        .query(
            "SELECT c.oid::regclass::text, c.relrowsecurity,
                    (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid),
                    (SELECT string_agg(i.inhparent::regclass::text, ', ') FROM pg_catalog.pg_inherits i
                     WHERE i.inhrelid = c.oid AND NOT c.relispartition)
             FROM pg_catalog.pg_class c WHERE c.oid = ANY($1)",
            &[&oids],
        )
        .await
        .ctx(|| "reading row security and inheritance".into())?
    {
        let (name, rls, policies, parents): (String, bool, i64, Option<String>) =
            (r.at(0)?, r.at(1)?, r.at(2)?, r.at(3)?);
        if rls || policies > 0 {
            warnings.push(Warning {
                code: "row_security_not_carried".into(),
                table: Some(name.clone()),
                column: None,
                message: format!(
                    "table {name}: row-level security ({policies} policies) is not exported; all rows are, and the restored table has no policies"
                ),
                details: Default::default(),
            });
        }
        if let Some(parents) = parents {
            warnings.push(Warning {
                code: "inheritance_not_carried".into(),
                table: Some(name.clone()),
                column: None,
                message: format!(
                    "table {name} INHERITS from {parents}: it is restored as a standalone table (its own rows and local columns and constraints only)"
                ),
                details: Default::default(),
            });
        }
    }
    Ok(())
}

/// A table's own check constraints: (name, definition, validated), by table oid.
type Checks = HashMap<u32, Vec<(String, String, bool)>>;

async fn read_checks(client: &Client, oids: &[u32]) -> Result<Checks, PgError> {
    let mut checks: Checks = HashMap::new();
    for r in client
        .query(
            "SELECT conrelid, conname, pg_catalog.pg_get_constraintdef(oid), convalidated
             FROM pg_catalog.pg_constraint WHERE contype = 'c' AND conislocal AND conrelid = ANY($1) ORDER BY conname",
            &[&oids],
        )
        .await
        .ctx(|| "reading check constraints".into())?
    {
        checks
            .entry(r.at(0)?)
            .or_default()
            .push((r.at(1)?, r.at(2)?, r.at(3)?));
    }
    Ok(checks)
}

/// One table's manifest entry and its CREATE TABLE; comments and the checks that must wait
/// for the data go to `post`.
fn table_info(
    i: usize,
    rt: &RawTable,
    rc: &[RawColumn],
    checks: Vec<(String, String, bool)>,
    ctx: &ColumnContext<'_>,
    post: &mut Vec<SchemaObject>,
) -> TableInfo {
    let qualified = quote_qualified(&rt.schema, &rt.name);
    let mut defs = Vec::new();
    let mut columns = Vec::new();
    let mut wires = Vec::new();
    for c in rc {
        let (col, wire, def) = column_of(c, ctx);
        if let Some(cm) = &c.comment {
            post.push(comment(
                Some(&rt.schema),
                &rt.name,
                Some(&rt.name),
                format!("COLUMN {qualified}.{}", quote_ident(&c.name)),
                cm,
            ));
        }
        if col.is_stored() {
            wires.push(wire);
        }
        defs.push(def);
        columns.push(col);
    }
    let mut table_checks = Vec::new();
    for (name, def, valid) in checks {
        table_checks.push(Check {
            name: Some(name.clone()),
            expression: def.trim_start_matches("CHECK ").to_owned(),
        });
        if valid && rt.partition_of.is_none() {
            defs.push(format!("CONSTRAINT {} {def}", quote_ident(&name)));
        } else {
            // NOT VALID checks, and a partition's own checks (its DDL is PARTITION OF,
            // which takes no column list), are added after the data.
            post.push(object(
                "constraint",
                Some(&rt.schema),
                &name,
                Some(&rt.name),
                format!(
                    "ALTER TABLE {qualified} ADD CONSTRAINT {} {def}",
                    quote_ident(&name)
                ),
                POST,
            ));
        }
    }
    let ddl = create_table(rt, &qualified, &defs);
    if let Some(cm) = &rt.comment {
        post.push(comment(
            Some(&rt.schema),
            &rt.name,
            Some(&rt.name),
            format!("TABLE {qualified}"),
            cm,
        ));
    }
    let mut properties = BTreeMap::new();
    properties.insert("owner".into(), json!(rt.owner));
    if let Some(acl) = &rt.acl {
        properties.insert("acl".into(), json!(acl));
    }
    if rt.unlogged {
        properties.insert("unlogged".into(), json!(true));
    }
    PgTableFacts {
        partition_of: rt.partition_of.clone(),
    }
    .write(&mut properties);
    TableInfo {
        table: Table {
            id: format!("t{:05}", i + 1),
            schema: Some(rt.schema.clone()),
            name: rt.name.clone(),
            kind: if rt.kind == "p" {
                "partitioned"
            } else {
                "table"
            }
            .into(),
            columns,
            rowid: None,
            primary_key: None,
            unique: Vec::new(),
            checks: table_checks,
            foreign_keys: Vec::new(),
            definition: Some(ddl),
            properties,
            rows: None,
            content_digest: None,
            files: Vec::new(),
        },
        oid: rt.oid,
        wires,
        has_rows: rt.kind == "r",
        filter: None,
    }
}

fn create_table(rt: &RawTable, qualified: &str, defs: &[String]) -> String {
    let mut ddl = match (&rt.partition_of, &rt.partition_bound) {
        (Some(parent), Some(bound)) => {
            format!("CREATE TABLE {qualified} PARTITION OF {parent} {bound}")
        }
        _ => format!(
            "CREATE {}TABLE {qualified} (\n    {}\n)",
            if rt.unlogged { "UNLOGGED " } else { "" },
            defs.join(",\n    ")
        ),
    };
    if let Some(k) = &rt.partition_key {
        ddl.push_str(&format!(" PARTITION BY {k}"));
    }
    if let Some(o) = &rt.options {
        ddl.push_str(&format!(" WITH ({o})"));
    }
    ddl
}

/// One column: its manifest entry (with the facts other engines' importers read, declared
/// in ferry_archive::facts), how it travels, and its definition in CREATE TABLE.
fn column_of(c: &RawColumn, ctx: &ColumnContext<'_>) -> (Column, Wire, String) {
    let ti = type_info(ctx.types, c.type_oid, c.typmod, c.formatted.clone());
    let wire = types::wire(&ti);
    let mut col = Column::new(&c.name, types::logical(wire, &ti, false), !c.not_null);
    col.declared_type = Some(c.formatted.clone());
    col.hint = hint(&ti);
    col.collation = c.collation_name.clone().filter(|_| c.collate.is_some());
    let mut facts = PgColumnFacts {
        pg_type: Some(ti.base_name.clone()),
        enum_type: (wire == Wire::Text && ti.base_kind == 'e').then(|| c.formatted.clone()),
        money_scale: (wire == Wire::Money).then_some(ctx.money_scale as u32),
        composite_fields: (ti.base_kind == 'c' && !ti.is_array)
            .then(|| {
                ctx.composite_fields
                    .get(&(ti.base_schema.clone(), ti.base_name.clone()))
                    .cloned()
            })
            .flatten(),
        ..Default::default()
    };
    let mut def = format!("{} {}", quote_ident(&c.name), c.formatted);
    if let Some(coll) = &c.collate {
        def.push_str(&format!(" COLLATE {coll}"));
    }
    if c.generated == "s" {
        let expr = c.default.clone().unwrap_or_default();
        def.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
        col.generated = Some(Generated {
            expression: expr,
            stored: true,
        });
    } else if let Some(d) = &c.default {
        def.push_str(&format!(" DEFAULT {d}"));
        col.default = Some(d.clone());
    }
    if !c.identity.is_empty() {
        let always = c.identity == "a";
        let how = if always { "ALWAYS" } else { "BY DEFAULT" };
        def.push_str(&format!(
            " GENERATED {how} AS IDENTITY ({})",
            c.identity_options.clone().unwrap_or_default()
        ));
        facts.identity = Some(if always { "always" } else { "by default" }.into());
        facts.sequence = c.identity_sequence.clone();
    }
    facts.write(&mut col.properties);
    if c.not_null {
        def.push_str(" NOT NULL");
    }
    (col, wire, def)
}

fn hint(t: &TypeInfo) -> Option<String> {
    if t.is_array {
        return Some("array".into());
    }
    let h = match (t.base_kind, t.base_name.as_str()) {
        ('e', _) => "enum",
        ('c', _) => "composite",
        ('r' | 'm', _) => "range",
        (_, "bool") => "boolean",
        (_, "int2") => "smallint",
        (_, "int4") => "integer",
        (_, "int8") => "bigint",
        (_, "float4") => "real",
        (_, "float8") => "double",
        (_, "numeric") => {
            return Some(match types::numeric_typmod(t.typmod) {
                Some((p, s)) => format!("numeric({p},{s})"),
                None => "numeric".into(),
            });
        }
        (_, "varchar") if t.typmod > 4 => return Some(format!("varchar({})", t.typmod - 4)),
        (_, "bpchar") if t.typmod > 4 => return Some(format!("char({})", t.typmod - 4)),
        (_, "text" | "varchar" | "bpchar" | "name") => "text",
        (_, "bytea") => "bytes",
        (_, "date") => "date",
        (_, "time") => "time",
        (_, "timetz") => "timetz",
        (_, "timestamp") => "timestamp",
        (_, "timestamptz") => "timestamptz",
        (_, "interval") => "interval",
        (_, "uuid") => "uuid",
        (_, "json" | "jsonb") => "json",
        _ => return None,
    };
    Some(h.into())
}

async fn read_constraints(
    client: &Client,
    oids: &[u32],
    tables: &mut [TableInfo],
    post: &mut Vec<SchemaObject>,
) -> Result<(), PgError> {
    let rows = client
        .query(
            "SELECT c.conrelid, c.conname, c.contype::text, pg_catalog.pg_get_constraintdef(c.oid),
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
                    fn.nspname, ft.relname,
                    ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o),
                    c.confupdtype::text, c.confdeltype::text, c.condeferrable, c.condeferred,
                    pg_catalog.obj_description(c.oid, 'pg_constraint')
             FROM pg_catalog.pg_constraint c
             LEFT JOIN pg_catalog.pg_class ft ON ft.oid = c.confrelid
             LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = ft.relnamespace
             WHERE c.contype IN ('p', 'u', 'x', 'f') AND c.conparentid = 0 AND c.conrelid = ANY($1)
             ORDER BY CASE c.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 ELSE 3 END, c.conrelid, c.conname",
            &[&oids],
        )
        .await
        .ctx(|| "reading constraints".into())?;
    let action = |c: &str| {
        match c {
            "r" => "RESTRICT",
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            _ => "NO ACTION",
        }
        .to_owned()
    };
    for r in rows {
        let relid: u32 = r.at(0)?;
        let Some(t) = tables.iter_mut().find(|t| t.oid == relid) else {
            continue;
        };
        let (name, kind, def): (String, String, String) = (r.at(1)?, r.at(2)?, r.at(3)?);
        let cols: Vec<String> = r.at(4)?;
        let schema = t.table.schema.clone().unwrap_or_default();
        // Partitioned parents cannot take ONLY: the constraint recurses to the partitions.
        let only = if t.table.kind == "partitioned" {
            ""
        } else {
            "ONLY "
        };
        post.push(object(
            "constraint",
            Some(&schema),
            &name,
            Some(&t.table.name),
            format!(
                "ALTER TABLE {only}{} ADD CONSTRAINT {} {def}",
                quote_qualified(&schema, &t.table.name),
                quote_ident(&name)
            ),
            POST,
        ));
        if let Some(c) = r.at::<Option<String>>(12)? {
            post.push(comment(
                Some(&schema),
                &name,
                Some(&t.table.name),
                format!(
                    "CONSTRAINT {} ON {}",
                    quote_ident(&name),
                    quote_qualified(&schema, &t.table.name)
                ),
                &c,
            ));
        }
        let key = Key {
            name: Some(name.clone()),
            columns: cols.clone(),
            properties: BTreeMap::new(),
        };
        match kind.as_str() {
            "p" => t.table.primary_key = Some(key),
            "u" => t.table.unique.push(key),
            "f" => t.table.foreign_keys.push(ForeignKey {
                name: Some(name),
                columns: cols,
                ref_schema: r.at(5)?,
                ref_table: r.at::<Option<String>>(6)?.unwrap_or_default(),
                ref_columns: r.at(7)?,
                on_update: action(&r.at::<String>(8)?),
                on_delete: action(&r.at::<String>(9)?),
                deferrable: r.at(10)?,
                initially_deferred: r.at(11)?,
            }),
            _ => {}
        }
    }
    Ok(())
}

async fn read_views(
    client: &Client,
    schemas: &[String],
    objects: &mut Vec<SchemaObject>,
    post: &mut Vec<SchemaObject>,
) -> Result<(), PgError> {
    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, c.relname, c.relkind::text, pg_catalog.pg_get_viewdef(c.oid),
                array_to_string(c.reloptions, ', '), c.relispopulated, pg_catalog.obj_description(c.oid, 'pg_class'),
                ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND pg_catalog.col_description(c.oid, a.attnum) IS NOT NULL ORDER BY a.attnum),
                ARRAY(SELECT pg_catalog.col_description(c.oid, a.attnum) FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND pg_catalog.col_description(c.oid, a.attnum) IS NOT NULL ORDER BY a.attnum)
         FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND {} ORDER BY c.oid",
        not_extension_member("pg_class", "c.oid")
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading views".into())?
    {
        let (schema, name, kind, def): (String, String, String, String) =
            (r.at(0)?, r.at(1)?, r.at(2)?, r.at(3)?);
        let opts = r
            .at::<Option<String>>(4)?
            .filter(|s| !s.is_empty())
            .map(|o| format!(" WITH ({o})"))
            .unwrap_or_default();
        let qualified = quote_qualified(&schema, &name);
        let def = def.trim().trim_end_matches(';');
        if kind == "m" {
            objects.push(object(
                "materialized_view",
                Some(&schema),
                &name,
                None,
                format!("CREATE MATERIALIZED VIEW {qualified}{opts} AS\n{def}\nWITH NO DATA"),
                PRE,
            ));
            if r.at::<bool>(5)? {
                post.push(object(
                    "refresh",
                    Some(&schema),
                    &name,
                    None,
                    format!("REFRESH MATERIALIZED VIEW {qualified}"),
                    POST,
                ));
            }
        } else {
            objects.push(object(
                "view",
                Some(&schema),
                &name,
                None,
                format!("CREATE VIEW {qualified}{opts} AS\n{def}"),
                PRE,
            ));
        }
        if let Some(c) = r.at::<Option<String>>(6)? {
            let word = if kind == "m" {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            post.push(comment(
                Some(&schema),
                &name,
                None,
                format!("{word} {qualified}"),
                &c,
            ));
        }
        // A view's columns carry comments of their own, as a table's do.
        let (columns, texts): (Vec<String>, Vec<String>) = (r.at(7)?, r.at(8)?);
        for (column, text) in columns.iter().zip(&texts) {
            post.push(comment(
                Some(&schema),
                &name,
                Some(&name),
                format!("COLUMN {qualified}.{}", quote_ident(column)),
                text,
            ));
        }
    }
    Ok(())
}

async fn read_indexes_and_triggers(
    client: &Client,
    schemas: &[String],
    post: &mut Vec<SchemaObject>,
) -> Result<(), PgError> {
    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, ic.relname, tc.relname, pg_catalog.pg_get_indexdef(i.indexrelid), tc.relkind::text,
                pg_catalog.obj_description(ic.oid, 'pg_class')
         FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid
         JOIN ns ON ns.oid = tc.relnamespace
         WHERE tc.relkind IN ('r', 'p', 'm')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)
           AND {}
         ORDER BY ic.oid",
        not_extension_member("pg_class", "tc.oid")
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading indexes".into())?
    {
        let (schema, name, table, def, relkind): (String, String, String, String, String) =
            (r.at(0)?, r.at(1)?, r.at(2)?, r.at(3)?, r.at(4)?);
        // An index on a partitioned table is defined `ON ONLY`; without ONLY it also builds
        // and attaches the partitions' indexes, as the original did.
        let def = if relkind == "p" {
            def.replacen(" ON ONLY ", " ON ", 1)
        } else {
            def
        };
        let mut o = object("index", Some(&schema), &name, Some(&table), def, POST);
        o.properties.insert("phase".into(), json!(POST));
        post.push(o);
        if let Some(c) = r.at::<Option<String>>(5)? {
            post.push(comment(
                Some(&schema),
                &name,
                Some(&table),
                format!("INDEX {}", quote_qualified(&schema, &name)),
                &c,
            ));
        }
    }
    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, t.tgname, c.relname, pg_catalog.pg_get_triggerdef(t.oid), pg_catalog.obj_description(t.oid, 'pg_trigger'),
                t.tgenabled::text
         FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
         JOIN ns ON ns.oid = c.relnamespace
         WHERE NOT t.tgisinternal AND t.tgparentid = 0 ORDER BY t.oid"
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading triggers".into())?
    {
        let (schema, name, table): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        post.push(object(
            "trigger",
            Some(&schema),
            &name,
            Some(&table),
            r.at(3)?,
            POST,
        ));
        // A trigger is created enabled; restore a disabled, replica or always state.
        let state = match r.at::<String>(5)?.as_str() {
            "D" => Some("DISABLE TRIGGER"),
            "R" => Some("ENABLE REPLICA TRIGGER"),
            "A" => Some("ENABLE ALWAYS TRIGGER"),
            _ => None,
        };
        if let Some(state) = state {
            post.push(object(
                "trigger_state",
                Some(&schema),
                &name,
                Some(&table),
                format!(
                    "ALTER TABLE {} {state} {}",
                    quote_qualified(&schema, &table),
                    quote_ident(&name)
                ),
                POST,
            ));
        }
        post.extend(table_object_comment(
            "TRIGGER",
            &schema,
            &name,
            &table,
            r.at(4)?,
        ));
    }
    // Rules (other than the _RETURN rule that makes a view) are carried verbatim.
    let q = format!(
        "WITH ns AS ({NS})
         SELECT ns.nspname, r.rulename::text, c.relname, pg_catalog.pg_get_ruledef(r.oid),
                pg_catalog.obj_description(r.oid, 'pg_rewrite')
         FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
         JOIN ns ON ns.oid = c.relnamespace
         WHERE r.rulename <> '_RETURN' AND {} ORDER BY r.oid",
        not_extension_member("pg_class", "c.oid")
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading rules".into())?
    {
        let (schema, name, table): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        post.push(object(
            "rule",
            Some(&schema),
            &name,
            Some(&table),
            r.at(3)?,
            POST,
        ));
        post.extend(table_object_comment(
            "RULE",
            &schema,
            &name,
            &table,
            r.at(4)?,
        ));
    }
    let _ = ENGINE;
    Ok(())
}

/// Objects ferry does not carry, each listed as a warning so that an export never stops on
/// something that does not concern the data (aggregates are reported where functions are
/// read).
pub async fn uncarried(
    client: &Client,
    schemas: &[String],
    warnings: &mut Vec<Warning>,
) -> Result<(), PgError> {
    let q = format!(
        "WITH ns AS ({NS})
         SELECT 'operator', ns.nspname || '.' || o.oprname
           FROM pg_catalog.pg_operator o JOIN ns ON ns.oid = o.oprnamespace
           WHERE {op}
         UNION ALL
         SELECT 'operator class', ns.nspname || '.' || c.opcname
           FROM pg_catalog.pg_opclass c JOIN ns ON ns.oid = c.opcnamespace WHERE {opc}
         UNION ALL
         SELECT 'text search configuration', ns.nspname || '.' || c.cfgname
           FROM pg_catalog.pg_ts_config c JOIN ns ON ns.oid = c.cfgnamespace WHERE {ts}
         UNION ALL
         SELECT 'cast', pg_catalog.format_type(c.castsource, NULL) || ' AS ' || pg_catalog.format_type(c.casttarget, NULL)
           FROM pg_catalog.pg_cast c WHERE c.oid >= 16384 AND {cast}
         UNION ALL
         SELECT 'event trigger', e.evtname::text FROM pg_catalog.pg_event_trigger e WHERE {evt}
         UNION ALL
         SELECT 'publication', p.pubname::text FROM pg_catalog.pg_publication p
         UNION ALL
         SELECT 'foreign server', s.srvname::text FROM pg_catalog.pg_foreign_server s WHERE {srv}
         UNION ALL
         SELECT 'policy', ns.nspname || '.' || c.relname || '.' || p.polname
           FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
           JOIN ns ON ns.oid = c.relnamespace",
        op = not_extension_member("pg_operator", "o.oid"),
        opc = not_extension_member("pg_opclass", "c.oid"),
        ts = not_extension_member("pg_ts_config", "c.oid"),
        cast = not_extension_member("pg_cast", "c.oid"),
        evt = not_extension_member("pg_event_trigger", "e.oid"),
        srv = not_extension_member("pg_foreign_server", "s.oid"),
    );
    for r in client
        .query(&q, &[&schemas])
        .await
        .ctx(|| "reading objects that are not exported".into())?
    {
        let (kind, name): (String, String) = (r.at(0)?, r.at(1)?);
        warnings.push(Warning {
            code: format!("skipped_{}", kind.replace(' ', "_")),
            table: None,
            column: None,
            message: format!("{kind} {name} is not exported (ferry does not carry {kind}s)"),
            details: Default::default(),
        });
    }
    Ok(())
}

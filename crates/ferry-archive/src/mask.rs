//! Masking: replacing secrets while the archive is written, so they never enter it.
//!
//! `--mask TABLE.COLUMN=RULE` names a rule per column: `null`, `const:VALUE`, `hash` or
//! `email`. Masks are applied to every record batch in [`crate::TableWriter::write`], the one
//! place both adapters pass through, so no engine path can skip them and the Parquet
//! statistics are computed from masked values.
//!
//! `hash` and `email` are keyed and deterministic: the same value under the same key always
//! becomes the same output, in every table. That is what keeps joins working, and why a
//! hashed column's rule spreads along the foreign keys it takes part in (both ways: the
//! referenced key and every reference to it), so the archive's keys still match. The
//! outputs keep the column's type and stay unique where the input was:
//!
//! * integers go through a keyed Feistel permutation of their width (cycle-walked so the
//!   sign is kept), so there are no collisions at all and a `CHECK (id > 0)` still holds;
//! * text becomes 32 hex digits of an HMAC-SHA256, a UUID a version-4 UUID made of one,
//!   bytes the whole 32-byte HMAC; `email` becomes `u<16 hex digits>@example.invalid`.
//!
//! The key (`--mask-key-file`, `FERRY_MASK_KEY`) is never written anywhere; the archive
//! records each rule by name only.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, FixedSizeBinaryArray, Int16Array,
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow_schema::DataType;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::manifest::Table;
use crate::selection::Edge;

/// One `--mask` option, as the archive records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskSpec {
    /// `TABLE.COLUMN`, globs allowed (`*.email`).
    pub column: String,
    /// `null`, `const:VALUE`, `hash` or `email`.
    pub rule: String,
}

impl MaskSpec {
    pub fn parse(arg: &str) -> Result<MaskSpec, MaskError> {
        let bad = || MaskError::Syntax(arg.to_owned());
        let (column, rule) = arg.split_once('=').ok_or_else(bad)?;
        if !column.contains('.') || column.starts_with('.') || column.ends_with('.') {
            return Err(bad());
        }
        Rule::parse(rule).map_err(|_| bad())?;
        Ok(MaskSpec {
            column: column.to_owned(),
            rule: rule.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Null,
    Const(String),
    Hash,
    Email,
}

impl Rule {
    fn parse(s: &str) -> Result<Rule, ()> {
        match s {
            "null" => Ok(Rule::Null),
            "hash" => Ok(Rule::Hash),
            "email" => Ok(Rule::Email),
            _ => match s.strip_prefix("const:") {
                Some(v) => Ok(Rule::Const(v.to_owned())),
                None => Err(()),
            },
        }
    }

    fn keyed(&self) -> bool {
        matches!(self, Rule::Hash | Rule::Email)
    }

    fn name(&self) -> &'static str {
        match self {
            Rule::Null => "null",
            Rule::Const(_) => "const",
            Rule::Hash => "hash",
            Rule::Email => "email",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("--mask {0:?}: expected TABLE.COLUMN=RULE, RULE one of null, const:VALUE, hash, email")]
    Syntax(String),
    #[error("--mask {0:?} matches no column")]
    NoMatch(String),
    #[error("--mask: {0}")]
    Refused(String),
    #[error(
        "--mask {0}: the hash and email rules need a key: --mask-key-file FILE or FERRY_MASK_KEY"
    )]
    NoKey(String),
    #[error("table {table}, column {column}: {reason}")]
    Value {
        table: String,
        column: String,
        reason: String,
    },
}

/// The masks of one export, resolved to data fields.
#[derive(Default)]
pub struct Masker {
    key: Vec<u8>,
    /// table id → (data field index, column name, rule).
    fields: BTreeMap<String, Vec<(usize, String, Rule)>>,
    /// (table display name, column, rule name) for reports, including spread rules.
    applied: Vec<(String, String, String)>,
}

impl Masker {
    /// Matches the specs against `tables`, spreads keyed rules along `edges`, and refuses
    /// masks that would break the archive: a `null` on a NOT NULL column, a `null` or
    /// `const` on a key that foreign keys reference, a rule on a column type it cannot keep.
    pub fn resolve(
        specs: &[MaskSpec],
        tables: &[Table],
        edges: &[Edge],
        key: Option<Vec<u8>>,
        case_insensitive: bool,
    ) -> Result<Masker, MaskError> {
        let mut rules: BTreeMap<(usize, String), (Rule, String)> = BTreeMap::new();
        for spec in specs {
            let rule =
                Rule::parse(&spec.rule).map_err(|_| MaskError::Syntax(spec.column.clone()))?;
            let (tp, cp) = spec.column.rsplit_once('.').unwrap_or(("*", &spec.column));
            let glob = |p: &str| {
                globset::GlobBuilder::new(p)
                    .case_insensitive(case_insensitive)
                    .literal_separator(false)
                    .build()
                    .map(|g| g.compile_matcher())
                    .map_err(|e| MaskError::Refused(format!("{}: {}", spec.column, e.kind())))
            };
            let (tg, cg) = (glob(tp)?, glob(cp)?);
            let mut hit = false;
            for (i, t) in tables.iter().enumerate() {
                let qualified = format!("{}.{}", t.schema.as_deref().unwrap_or("main"), t.name);
                if !(tg.is_match(&t.name) || tp.contains('.') && tg.is_match(&qualified)) {
                    continue;
                }
                for c in t
                    .columns
                    .iter()
                    .filter(|c| c.is_stored() && cg.is_match(&c.name))
                {
                    hit = true;
                    rules.insert((i, c.name.clone()), (rule.clone(), spec.rule.clone()));
                }
            }
            if !hit {
                return Err(MaskError::NoMatch(spec.column.clone()));
            }
        }
        // Spread keyed rules over the foreign keys, both ways, to a fixed point.
        loop {
            let mut added = Vec::new();
            for e in edges {
                for (cc, pc) in e.child_columns.iter().zip(&e.parent_columns) {
                    let child = (e.child, cc.clone());
                    let parent = (e.parent, pc.clone());
                    for (from, to) in [(&child, &parent), (&parent, &child)] {
                        if let Some((rule, text)) = rules.get(from) {
                            if !rule.keyed() {
                                if from == &parent {
                                    return Err(MaskError::Refused(format!(
                                        "{}.{} is referenced by foreign key {} of {}: masking it with {} would break that key; use hash",
                                        tables[e.parent].display_name(),
                                        pc,
                                        e.name,
                                        tables[e.child].display_name(),
                                        rule.name()
                                    )));
                                }
                                continue;
                            }
                            match rules.get(to) {
                                Some((r, _)) if r == rule => {}
                                Some((r, _)) => {
                                    return Err(MaskError::Refused(format!(
                                        "foreign key {} joins columns masked with {} and {}; give them the same rule",
                                        e.name,
                                        r.name(),
                                        rule.name()
                                    )));
                                }
                                None => added.push((to.clone(), (rule.clone(), text.clone()))),
                            }
                        }
                    }
                }
            }
            if added.is_empty() {
                break;
            }
            rules.extend(added);
        }
        // A keyed integer permutation depends on the width: both ends of a key must share it.
        for e in edges {
            for (cc, pc) in e.child_columns.iter().zip(&e.parent_columns) {
                let (Some((rc, _)), Some((rp, _))) = (
                    rules.get(&(e.child, cc.clone())),
                    rules.get(&(e.parent, pc.clone())),
                ) else {
                    continue;
                };
                if !rc.keyed() || !rp.keyed() {
                    continue;
                }
                let ty = |t: usize, c: &str| {
                    tables[t]
                        .columns
                        .iter()
                        .find(|x| x.name == c)
                        .map(|x| x.logical_type.display())
                        .unwrap_or_default()
                };
                let (a, b) = (ty(e.child, cc), ty(e.parent, pc));
                if a != b {
                    return Err(MaskError::Refused(format!(
                        "foreign key {} joins columns of different types ({a} and {b}); a hash keeps joins only between columns of one type",
                        e.name
                    )));
                }
            }
        }
        let mut m = Masker {
            key: Vec::new(),
            ..Default::default()
        };
        let mut needs_key = None;
        for ((i, column), (rule, text)) in rules {
            let t = &tables[i];
            let col = t
                .columns
                .iter()
                .find(|c| c.name == column)
                .expect("matched above");
            if rule == Rule::Null && !col.nullable {
                return Err(MaskError::Refused(format!(
                    "{}.{} is NOT NULL: it cannot be masked with null",
                    t.display_name(),
                    column
                )));
            }
            if rule.keyed() {
                needs_key = Some(format!("{}.{}", t.display_name(), column));
            }
            let field = t
                .data_fields()
                .iter()
                .position(|(n, _)| *n == column)
                .expect("stored columns are data fields");
            check_type(&rule, col).map_err(|reason| MaskError::Value {
                table: t.display_name(),
                column: column.clone(),
                reason,
            })?;
            m.applied.push((t.display_name(), column.clone(), text));
            m.fields
                .entry(t.id.clone())
                .or_default()
                .push((field, column, rule));
        }
        if let Some(col) = needs_key {
            m.key = key.filter(|k| !k.is_empty()).ok_or(MaskError::NoKey(col))?;
        }
        Ok(m)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether a table has masked columns (its content digest no longer describes the
    /// archive's rows, and its value profiles could quote secrets).
    pub fn masked_columns(&self, table_id: &str) -> Vec<&str> {
        self.fields
            .get(table_id)
            .map(|v| v.iter().map(|(_, c, _)| c.as_str()).collect())
            .unwrap_or_default()
    }

    /// One line per masked column, including those a rule spread to.
    pub fn describe(&self) -> Vec<String> {
        self.applied
            .iter()
            .map(|(t, c, r)| format!("column {t}.{c} masked ({r})"))
            .collect()
    }

    /// The batch with its masked columns replaced.
    pub fn apply(&self, table_id: &str, batch: &RecordBatch) -> Result<RecordBatch, MaskError> {
        let Some(fields) = self.fields.get(table_id) else {
            return Ok(batch.clone());
        };
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (i, name, rule) in fields {
            columns[*i] =
                self.mask_array(rule, &columns[*i])
                    .map_err(|reason| MaskError::Value {
                        table: table_id.to_owned(),
                        column: name.clone(),
                        reason,
                    })?;
        }
        RecordBatch::try_new(batch.schema(), columns).map_err(|e| MaskError::Value {
            table: table_id.to_owned(),
            column: String::new(),
            reason: e.to_string(),
        })
    }

    fn mac(&self, domain: &[u8], value: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(domain);
        mac.update(&(value.len() as u64).to_le_bytes());
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// A keyed permutation of `bits`-bit unsigned integers: four Feistel rounds.
    fn feistel(&self, bits: u32, x: u64) -> u64 {
        let half = bits / 2;
        let mask = (1u64 << half) - 1;
        let (mut l, mut r) = (x >> half, x & mask);
        for round in 0u8..4 {
            let f = self.mac(&[b'F', bits as u8, round], &r.to_le_bytes());
            let f = u64::from_le_bytes(f[..8].try_into().expect("8 bytes")) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << half) | r
    }

    /// A keyed permutation of the `bits`-bit signed integers that keeps the sign: the
    /// non-negative half is cycle-walked inside itself, the negative half mirrored onto it.
    fn permute(&self, bits: u32, v: i64) -> i64 {
        // 0 stays 0, so that a positive key stays positive (`CHECK (id > 0)`); the positives
        // are permuted among themselves, and so are the negatives (mirrored onto 0..).
        if v == 0 {
            return 0;
        }
        let (neg, mut x) = if v < 0 {
            (true, (-(v + 1)) as u64)
        } else {
            (false, v as u64)
        };
        let limit = 1u64 << (bits - 1);
        let floor = u64::from(!neg);
        loop {
            x = self.feistel(bits, x);
            if (floor..limit).contains(&x) {
                break;
            }
        }
        if neg { -(x as i64) - 1 } else { x as i64 }
    }

    fn mask_array(&self, rule: &Rule, a: &ArrayRef) -> Result<ArrayRef, String> {
        let len = a.len();
        Ok(match rule {
            Rule::Null => new_null_array(a.data_type(), len),
            Rule::Const(v) => match a.data_type() {
                DataType::Utf8 => Arc::new(StringArray::from(
                    (0..len)
                        .map(|i| a.is_valid(i).then_some(v.as_str()))
                        .collect::<Vec<_>>(),
                )),
                DataType::Int64 | DataType::Int32 | DataType::Int16 => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| format!("const:{v} is not an integer"))?;
                    let keep = |i| a.is_valid(i).then_some(n);
                    match a.data_type() {
                        DataType::Int64 => {
                            Arc::new(Int64Array::from((0..len).map(keep).collect::<Vec<_>>()))
                        }
                        DataType::Int32 => Arc::new(Int32Array::from(
                            (0..len)
                                .map(|i| keep(i).map(i32::try_from).transpose())
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(|_| format!("const:{v} does not fit the column"))?,
                        )),
                        _ => Arc::new(Int16Array::from(
                            (0..len)
                                .map(|i| keep(i).map(i16::try_from).transpose())
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(|_| format!("const:{v} does not fit the column"))?,
                        )),
                    }
                }
                // A timestamp or date column (PostgreSQL's, or SQLite DATETIME text carried
                // as one): the constant is written as the column writes its values.
                DataType::Timestamp(_, tz) => {
                    let t = crate::convert::parse_timestamp(v)
                        .ok_or_else(|| format!("const:{v} is not a date and time"))?;
                    Arc::new(
                        TimestampMicrosecondArray::from(
                            (0..len)
                                .map(|i| a.is_valid(i).then_some(t.micros))
                                .collect::<Vec<_>>(),
                        )
                        .with_timezone_opt(tz.clone()),
                    )
                }
                DataType::Date32 => {
                    let d = crate::convert::parse_date(v)
                        .ok_or_else(|| format!("const:{v} is not a date (YYYY-MM-DD)"))?;
                    Arc::new(Date32Array::from(
                        (0..len)
                            .map(|i| a.is_valid(i).then_some(d))
                            .collect::<Vec<_>>(),
                    ))
                }
                DataType::Boolean => {
                    let b = match v.to_ascii_lowercase().as_str() {
                        "true" | "t" | "1" => true,
                        "false" | "f" | "0" => false,
                        _ => return Err(format!("const:{v} is not a boolean")),
                    };
                    Arc::new(BooleanArray::from(
                        (0..len)
                            .map(|i| a.is_valid(i).then_some(b))
                            .collect::<Vec<_>>(),
                    ))
                }
                t => return Err(format!("const does not apply to a {t} column")),
            },
            Rule::Hash | Rule::Email => {
                let email = *rule == Rule::Email;
                match a.data_type() {
                    DataType::Utf8 => {
                        let s = a.as_any().downcast_ref::<StringArray>().ok_or("not text")?;
                        let out: Vec<Option<String>> = s
                            .iter()
                            .map(|v| {
                                v.map(|v| {
                                    let h = hex::encode(self.mac(b"text", v.as_bytes()));
                                    if email {
                                        format!("u{}@example.invalid", &h[..16])
                                    } else {
                                        h[..32].to_owned()
                                    }
                                })
                            })
                            .collect();
                        Arc::new(StringArray::from(out))
                    }
                    DataType::Int64 => {
                        let s = a.as_any().downcast_ref::<Int64Array>().ok_or("not int64")?;
                        Arc::new(
                            s.iter()
                                .map(|v| v.map(|v| self.permute(64, v)))
                                .collect::<Int64Array>(),
                        )
                    }
                    DataType::Int32 => {
                        let s = a.as_any().downcast_ref::<Int32Array>().ok_or("not int32")?;
                        Arc::new(
                            s.iter()
                                .map(|v| v.map(|v| self.permute(32, v.into()) as i32))
                                .collect::<Int32Array>(),
                        )
                    }
                    DataType::Int16 => {
                        let s = a.as_any().downcast_ref::<Int16Array>().ok_or("not int16")?;
                        Arc::new(
                            s.iter()
                                .map(|v| v.map(|v| self.permute(16, v.into()) as i16))
                                .collect::<Int16Array>(),
                        )
                    }
                    DataType::FixedSizeBinary(16) => {
                        let s = a
                            .as_any()
                            .downcast_ref::<FixedSizeBinaryArray>()
                            .ok_or("not a uuid")?;
                        let out: Vec<Option<[u8; 16]>> = s
                            .iter()
                            .map(|v| {
                                v.map(|v| {
                                    let h = self.mac(b"uuid", v);
                                    let mut u: [u8; 16] = h[..16].try_into().expect("16 bytes");
                                    u[6] = (u[6] & 0x0f) | 0x40;
                                    u[8] = (u[8] & 0x3f) | 0x80;
                                    u
                                })
                            })
                            .collect();
                        Arc::new(
                            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                                out.into_iter(),
                                16,
                            )
                            .map_err(|e| e.to_string())?,
                        )
                    }
                    DataType::Binary => {
                        let s = a
                            .as_any()
                            .downcast_ref::<BinaryArray>()
                            .ok_or("not bytes")?;
                        let out: Vec<Option<[u8; 32]>> =
                            s.iter().map(|v| v.map(|v| self.mac(b"bytes", v))).collect();
                        Arc::new(BinaryArray::from_iter(
                            out.iter().map(|v| v.as_ref().map(|b| &b[..])),
                        ))
                    }
                    t => return Err(format!("{} does not apply to a {t} column", rule.name())),
                }
            }
        })
    }
}

/// Resolves an export's masks against its manifest (after selection), and removes the facts
/// that could quote a masked column's values (a SQLite value profile holds minimums,
/// maximums and examples). Without a profile an importer takes the column's safe type.
pub fn prepare(
    manifest: &mut crate::Manifest,
    specs: &[MaskSpec],
    key: Option<Vec<u8>>,
    case_insensitive: bool,
) -> Result<Masker, MaskError> {
    if specs.is_empty() {
        return Ok(Masker::default());
    }
    let (edges, _) = crate::selection::edges(&manifest.tables);
    let masker = Masker::resolve(specs, &manifest.tables, &edges, key, case_insensitive)?;
    for t in &mut manifest.tables {
        let masked: Vec<String> = masker
            .masked_columns(&t.id)
            .into_iter()
            .map(str::to_owned)
            .collect();
        for c in t.columns.iter_mut().filter(|c| masked.contains(&c.name)) {
            for k in <crate::facts::SqliteColumnFacts as crate::Facts>::KEYS {
                c.properties.remove(*k);
            }
        }
    }
    Ok(masker)
}

/// The character limit a declared type sets (`varchar(20)`, `character(10)`), if any.
fn declared_length(declared: Option<&str>) -> Option<usize> {
    let d = declared?.to_ascii_lowercase();
    if !d.contains("char") {
        return None;
    }
    let open = d.find('(')?;
    let close = d[open..].find(')')? + open;
    d[open + 1..close].trim().parse().ok()
}

/// Whether a rule can keep a column's type and fit its declared length; checked before
/// anything is read. Text rules apply to text columns only: a numeric, JSON or
/// engine-specific column is text in Arrow too, but a hash is not a value it can hold.
fn check_type(rule: &Rule, c: &crate::Column) -> Result<(), String> {
    use crate::LogicalType as L;
    let lt = &c.logical_type;
    let integer = matches!(lt, L::Int16 | L::Int32 | L::Int64);
    let (ok, width) = match rule {
        Rule::Null => (true, None),
        Rule::Const(v) => {
            // The constant must be a value of the column's own type, said now, before the
            // source is read.
            let parses = match lt {
                L::Boolean => matches!(
                    v.to_ascii_lowercase().as_str(),
                    "true" | "t" | "1" | "false" | "f" | "0"
                ),
                L::Date => crate::convert::parse_date(v).is_some(),
                // Without a zone: written exactly as given (`YYYY-MM-DD HH:MM:SS`), never
                // shifted or reformatted. With one: any ISO form, kept as the same instant.
                L::Timestamp => crate::convert::canonical_timestamp(v).is_some(),
                L::TimestampTz => crate::convert::parse_timestamp(v).is_some(),
                _ => true,
            };
            if !parses {
                return Err(format!("const:{v} is not a {} value", lt.display()));
            }
            (
                *lt == L::Text
                    || integer
                    || matches!(lt, L::Boolean | L::Date | L::Timestamp | L::TimestampTz),
                (*lt == L::Text).then(|| v.chars().count()),
            )
        }
        Rule::Email => (*lt == L::Text, Some(33)),
        Rule::Hash => (
            integer || matches!(lt, L::Text | L::Uuid | L::Bytes),
            (*lt == L::Text).then_some(32),
        ),
    };
    if !ok {
        return Err(format!(
            "the {} rule does not apply to a {} column; use null",
            rule.name(),
            lt.display()
        ));
    }
    if let (Some(w), Some(limit)) = (width, declared_length(c.declared_type.as_deref()))
        && w > limit
    {
        return Err(format!(
            "the {} rule writes {w} characters, and the column is declared {:?}",
            rule.name(),
            c.declared_type.as_deref().unwrap_or("")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> Masker {
        Masker {
            key: b"k".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn integer_permutations_are_bijective_and_keep_the_sign() {
        let m = masker();
        let mut seen = std::collections::HashSet::new();
        for v in -3000i64..3000 {
            let p = m.permute(16, v);
            assert_eq!(p < 0, v < 0, "{v} -> {p}");
            assert_eq!(p == 0, v == 0, "{v} -> {p}");
            assert!((i16::MIN as i64..=i16::MAX as i64).contains(&p));
            assert!(seen.insert(p), "collision at {v}");
            assert_eq!(p, m.permute(16, v), "deterministic");
        }
        assert_ne!(
            m.permute(64, 42),
            Masker {
                key: b"other".to_vec(),
                ..Default::default()
            }
            .permute(64, 42)
        );
        assert!(m.permute(64, i64::MAX) >= 0 && m.permute(64, i64::MIN) < 0);
    }

    #[test]
    fn specs_parse_or_say_what_is_expected() {
        assert_eq!(MaskSpec::parse("users.email=email").unwrap().rule, "email");
        assert_eq!(
            MaskSpec::parse("*.note=const:x=y").unwrap().rule,
            "const:x=y"
        );
        for bad in [
            "email=hash",
            "users.email",
            "users.email=scramble",
            ".x=null",
        ] {
            assert!(MaskSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

//! One-dimensional PostgreSQL arrays as Arrow lists, through their text literal.
//!
//! An array column whose every value is one-dimensional and counts from 1 is archived as a
//! `list` (see `types::list_element`), which Arrow readers understand, instead of the
//! literal `{a,b}`. It still travels as text (`::text` out, a cast in): the literal is
//! parsed into the list's elements on export and printed back on import. Both directions
//! are exact for the element types a list is used for: text keeps its bytes (quoting and
//! backslash escapes undone and redone), integers and booleans are what they print as, and
//! floats print in PostgreSQL as the shortest text that reads back to the same value, which
//! is what Rust parses and prints too (infinities and NaN by name).

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, make_builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use bytes::{BufMut, BytesMut};
use ferry_archive::LogicalType;

/// The elements of a one-dimensional literal: `None` for an unquoted NULL.
pub(crate) fn parse(s: &str) -> Result<Vec<Option<String>>, String> {
    let bad = |why: &str| {
        format!(
            "{} is not a one-dimensional array literal ({why})",
            ferry_archive::clip(&format!("{s:?}"))
        )
    };
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| bad("no braces"))?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('\\') => v.push(chars.next().ok_or_else(|| bad("a trailing backslash"))?),
                    Some('"') => break,
                    Some(c) => v.push(c),
                    None => return Err(bad("an unterminated quote")),
                }
            }
            out.push(Some(v));
        } else {
            let mut v = String::new();
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '{' | '}' | '"' | '\\' => return Err(bad("nested or escaped")),
                    _ => {
                        v.push(c);
                        chars.next();
                    }
                }
            }
            if v.is_empty() {
                return Err(bad("an empty element"));
            }
            out.push((!v.eq_ignore_ascii_case("NULL")).then_some(v));
        }
        match chars.next() {
            None => return Ok(out),
            Some(',') => {}
            Some(_) => return Err(bad("text after a quoted element")),
        }
    }
}

/// Builds a column of lists from literals.
pub(crate) struct ListDecoder {
    builder: ListBuilder<Box<dyn ArrayBuilder>>,
    element: LogicalType,
}

impl ListDecoder {
    pub fn new(element: &LogicalType) -> ListDecoder {
        let values = make_builder(&element.arrow_type(), 1024);
        ListDecoder {
            builder: ListBuilder::new(values)
                .with_field(Arc::new(element.arrow_field("element", true))),
            element: element.clone(),
        }
    }

    pub fn push_null(&mut self) {
        self.builder.append_null();
    }

    /// Appends the list the literal `s` holds.
    pub fn push(&mut self, s: &str) -> Result<(), String> {
        let items = parse(s)?;
        let values = self.builder.values().as_any_mut();
        macro_rules! put {
            ($b:ty, $parse:expr) => {{
                let b = values
                    .downcast_mut::<$b>()
                    .ok_or("a list builder of the wrong type")?;
                for item in &items {
                    match item {
                        None => b.append_null(),
                        Some(text) => b.append_value($parse(text.as_str())?),
                    }
                }
            }};
        }
        let num = |what: &'static str| move |t: &str| format!("{t:?} is not {what}");
        match self.element {
            LogicalType::Boolean => put!(BooleanBuilder, |t: &str| match t {
                "t" => Ok(true),
                "f" => Ok(false),
                _ => Err(format!("{t:?} is not a boolean")),
            }),
            LogicalType::Int16 => put!(Int16Builder, |t: &str| t.parse::<i16>().map_err(|_| num(
                "a smallint"
            )(
                t
            ))),
            LogicalType::Int32 => put!(Int32Builder, |t: &str| t.parse::<i32>().map_err(|_| num(
                "an integer"
            )(
                t
            ))),
            LogicalType::Int64 => put!(Int64Builder, |t: &str| t.parse::<i64>().map_err(|_| num(
                "a bigint"
            )(
                t
            ))),
            LogicalType::Float32 => put!(Float32Builder, |t: &str| t
                .parse::<f32>()
                .map_err(|_| num("a real")(t))),
            LogicalType::Float64 => put!(Float64Builder, |t: &str| t
                .parse::<f64>()
                .map_err(|_| num("a double")(t))),
            LogicalType::Text => put!(StringBuilder, |t: &str| Ok::<_, String>(t.to_owned())),
            ref other => {
                return Err(format!(
                    "a list of {} is not read from a literal",
                    other.display()
                ));
            }
        }
        self.builder.append(true);
        Ok(())
    }

    pub fn finish(&mut self) -> ArrayRef {
        Arc::new(self.builder.finish())
    }
}

/// Writes the literal of list `r` of `a` as a text COPY field, quoting an element only where
/// `array_out` does (empty, `NULL`, braces, quotes, backslashes, commas, white space), so
/// that the literal is the one PostgreSQL printed and no longer than it.
pub(crate) fn put_literal(
    a: &ArrayRef,
    element: &LogicalType,
    r: usize,
    out: &mut BytesMut,
) -> Result<(), String> {
    let list = a.as_list::<i32>();
    let values = list.value(r);
    let mut s = String::from("{");
    for i in 0..values.len() {
        if i > 0 {
            s.push(',');
        }
        if values.is_null(i) {
            s.push_str("NULL");
            continue;
        }
        let text = match element {
            LogicalType::Boolean => if values.as_boolean().value(i) {
                "t"
            } else {
                "f"
            }
            .to_owned(),
            LogicalType::Int16 => values.as_primitive::<Int16Type>().value(i).to_string(),
            LogicalType::Int32 => values.as_primitive::<Int32Type>().value(i).to_string(),
            LogicalType::Int64 => values.as_primitive::<Int64Type>().value(i).to_string(),
            LogicalType::Float32 => float_text(
                values.as_primitive::<Float32Type>().value(i) as f64,
                values.as_primitive::<Float32Type>().value(i).to_string(),
            ),
            LogicalType::Float64 => float_text(
                values.as_primitive::<Float64Type>().value(i),
                values.as_primitive::<Float64Type>().value(i).to_string(),
            ),
            LogicalType::Text => values.as_string::<i32>().value(i).to_owned(),
            other => {
                return Err(format!(
                    "a list of {} cannot be written as an array",
                    other.display()
                ));
            }
        };
        if !needs_quotes(&text) {
            s.push_str(&text);
            continue;
        }
        s.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
    }
    s.push('}');
    out.put_i32(i32::try_from(s.len()).map_err(|_| "an array literal over 2 GiB".to_owned())?);
    out.put_slice(s.as_bytes());
    Ok(())
}

/// Whether `array_out` would quote this element.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text.eq_ignore_ascii_case("NULL")
        || text.chars().any(|c| {
            matches!(
                c,
                '{' | '}' | '"' | '\\' | ',' | ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}'
            )
        })
}

/// A float as PostgreSQL reads it back exactly: Rust's shortest round-trip digits, and the
/// special values by PostgreSQL's names.
fn float_text(v: f64, shortest: String) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "Infinity".into()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        shortest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parse_into_elements_and_print_back_to_the_same_values() {
        assert_eq!(parse("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(
            parse(r#"{a,"b c",NULL,"NULL","q\"uo\\te",""}"#).unwrap(),
            vec![
                Some("a".into()),
                Some("b c".into()),
                None,
                Some("NULL".into()),
                Some("q\"uo\\te".into()),
                Some(String::new())
            ]
        );
        for bad in ["{{1,2},{3,4}}", "[0:1]={1,2}", "{1,,2}", "{\"a\"b}", "{\"a"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let mut d = ListDecoder::new(&LogicalType::Text);
        d.push(r#"{a,"b c",NULL,"NULL","q\"uo\\te",""}"#).unwrap();
        d.push_null();
        d.push("{}").unwrap();
        let a = d.finish();
        let mut out = BytesMut::new();
        put_literal(&a, &LogicalType::Text, 0, &mut out).unwrap();
        assert_eq!(&out[4..], br#"{a,"b c",NULL,"NULL","q\"uo\\te",""}"#);
        assert_eq!(
            parse(std::str::from_utf8(&out[4..]).unwrap())
                .unwrap()
                .len(),
            6
        );
        out.clear();
        put_literal(&a, &LogicalType::Text, 2, &mut out).unwrap();
        assert_eq!(&out[4..], b"{}");
        assert!(a.is_null(1));

        let mut f = ListDecoder::new(&LogicalType::Float64);
        f.push("{1.5,-0,NaN,Infinity,-Infinity,1e+100,5e-324,NULL}")
            .unwrap();
        let a = f.finish();
        out.clear();
        put_literal(&a, &LogicalType::Float64, 0, &mut out).unwrap();
        let back = parse(std::str::from_utf8(&out[4..]).unwrap()).unwrap();
        let vals: Vec<Option<f64>> = back
            .iter()
            .map(|v| v.as_deref().map(|t| t.parse().unwrap()))
            .collect();
        let orig = a.as_list::<i32>().value(0);
        let orig = orig.as_primitive::<Float64Type>();
        for (i, v) in vals.iter().enumerate() {
            match v {
                None => assert!(orig.is_null(i)),
                Some(v) => assert_eq!(v.to_bits(), orig.value(i).to_bits(), "{i}"),
            }
        }
        let mut b = ListDecoder::new(&LogicalType::Int16);
        assert!(b.push("{1,70000}").unwrap_err().contains("70000"));
    }
}

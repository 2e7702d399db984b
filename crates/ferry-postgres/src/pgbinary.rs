//! PostgreSQL's binary COPY format, both ways, column at a time.
//!
//! Export decodes each field straight into the Arrow builder of its column; import encodes
//! each Arrow value straight into the outgoing COPY buffer. No per-cell trait objects, no
//! intermediate rows. Epoch shifts: PostgreSQL counts from 2000-01-01, Arrow from 1970-01-01;
//! the infinity sentinels (`i32::MIN/MAX` days, `i64::MIN/MAX` microseconds) are the same on
//! both sides and are never shifted.
//!
//! This is the one encoder of binary COPY fields. Its two sources: a PostgreSQL archive's
//! Arrow arrays ([`Encoder`]), and a SQLite archive's values through the conversion
//! `from_sqlite::decide` chose (`Conv::put`); both write through the same field writers
//! (`put_text`, `put_timestamp`, `put_date`, `numeric_from_text`).

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, StructArray};
use arrow_buffer::NullBufferBuilder;
use bytes::{BufMut, BytesMut};
use ferry_archive::convert::{self, EpochUnit};
use ferry_archive::{LogicalType, again};

use crate::from_sqlite::{Conv, SqlVal};
use crate::types::Wire;

pub const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
const DAYS_2000: i32 = 10_957;
const MICROS_2000: i64 = 946_684_800_000_000;

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn need(b: &[u8], n: usize, what: &str) -> Result<(), String> {
    if b.len() == n {
        Ok(())
    } else {
        Err(format!("{what} field of {} bytes, expected {n}", b.len()))
    }
}

/// Decodes one column of a binary COPY stream into an Arrow array.
pub enum Decoder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder, Wire),
    F32(Float32Builder),
    F64(Float64Builder),
    /// The scale, for turning numeric's digits into the decimal's integer.
    Decimal(Decimal128Builder, i8),
    Text(StringBuilder, Wire),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    TimeTz(Time64MicrosecondBuilder, Int32Builder, NullBufferBuilder),
    Ts(TimestampMicrosecondBuilder),
    Interval(Int32Builder, Int32Builder, Int64Builder, NullBufferBuilder),
    Uuid(FixedSizeBinaryBuilder),
    /// An array's text literal, parsed into a list.
    List(crate::array_text::ListDecoder),
}

impl Decoder {
    pub fn new(wire: Wire, logical: &LogicalType) -> Decoder {
        match (wire, logical) {
            (Wire::Bool, _) => Decoder::Bool(BooleanBuilder::new()),
            (Wire::Int2, _) => Decoder::I16(Int16Builder::new()),
            (Wire::Int4, _) => Decoder::I32(Int32Builder::new()),
            (Wire::Int8 | Wire::Money | Wire::Oid, _) => Decoder::I64(Int64Builder::new(), wire),
            (Wire::Float4, _) => Decoder::F32(Float32Builder::new()),
            (Wire::Float8, _) => Decoder::F64(Float64Builder::new()),
            (Wire::Numeric, LogicalType::Decimal { precision, scale }) => Decoder::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(*precision, *scale)
                    .expect("valid decimal"),
                *scale,
            ),
            (Wire::Bytea, _) => Decoder::Bytes(BinaryBuilder::new()),
            (Wire::Date, _) => Decoder::Date(Date32Builder::new()),
            (Wire::Time, _) => Decoder::Time(Time64MicrosecondBuilder::new()),
            (Wire::TimeTz, _) => Decoder::TimeTz(
                Time64MicrosecondBuilder::new(),
                Int32Builder::new(),
                NullBufferBuilder::new(1024),
            ),
            (Wire::Timestamp, _) => Decoder::Ts(TimestampMicrosecondBuilder::new()),
            (Wire::TimestampTz, _) => {
                Decoder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            (Wire::Interval, _) => Decoder::Interval(
                Int32Builder::new(),
                Int32Builder::new(),
                Int64Builder::new(),
                NullBufferBuilder::new(1024),
            ),
            (Wire::Uuid, _) => Decoder::Uuid(FixedSizeBinaryBuilder::new(16)),
            (Wire::AsText, LogicalType::List { element }) => {
                Decoder::List(crate::array_text::ListDecoder::new(element))
            }
            // Numeric as text, text, json, jsonb, and everything selected as ::text.
            _ => Decoder::Text(StringBuilder::new(), wire),
        }
    }

    /// Appends one field (`None` is NULL). Returns the bytes of variable-length data taken.
    pub fn push(&mut self, f: Option<&[u8]>) -> Result<usize, String> {
        let Some(b) = f else {
            self.push_null();
            return Ok(0);
        };
        match self {
            Decoder::Bool(x) => {
                need(b, 1, "boolean")?;
                x.append_value(b[0] != 0);
            }
            Decoder::I16(x) => {
                need(b, 2, "int2")?;
                x.append_value(be_i16(b));
            }
            Decoder::I32(x) => {
                need(b, 4, "int4")?;
                x.append_value(be_i32(b));
            }
            Decoder::I64(x, Wire::Oid) => {
                need(b, 4, "oid")?;
                x.append_value(be_i32(b) as u32 as i64);
            }
            Decoder::I64(x, _) => {
                need(b, 8, "int8")?;
                x.append_value(be_i64(b));
            }
            Decoder::F32(x) => {
                need(b, 4, "float4")?;
                x.append_value(f32::from_bits(be_i32(b) as u32));
            }
            Decoder::F64(x) => {
                need(b, 8, "float8")?;
                x.append_value(f64::from_bits(be_i64(b) as u64));
            }
            Decoder::Decimal(x, scale) => {
                let text = numeric_to_text(b)?;
                x.append_value(decimal_from_text(&text, *scale)?);
            }
            Decoder::Text(x, wire) => {
                let bytes = match wire {
                    Wire::Numeric => {
                        let t = numeric_to_text(b)?;
                        x.append_value(&t);
                        return Ok(t.len());
                    }
                    Wire::Jsonb => match b.split_first() {
                        Some((1, rest)) => rest,
                        _ => return Err("jsonb field with an unknown version byte".into()),
                    },
                    _ => b,
                };
                let s = simdutf8::compat::from_utf8(bytes)
                    .map_err(|e| format!("text is not UTF-8: {e}"))?;
                x.append_value(s);
                return Ok(bytes.len());
            }
            Decoder::Bytes(x) => {
                x.append_value(b);
                return Ok(b.len());
            }
            Decoder::Date(x) => {
                need(b, 4, "date")?;
                let d = be_i32(b);
                x.append_value(if d == i32::MAX || d == i32::MIN {
                    d
                } else {
                    d.checked_add(DAYS_2000)
                        .ok_or("date beyond the Arrow range")?
                });
            }
            Decoder::Time(x) => {
                need(b, 8, "time")?;
                x.append_value(be_i64(b));
            }
            Decoder::TimeTz(t, o, n) => {
                need(b, 12, "timetz")?;
                t.append_value(be_i64(b));
                // PostgreSQL stores seconds *west* of UTC; the archive stores seconds east.
                o.append_value(-be_i32(&b[8..]));
                n.append_non_null();
            }
            Decoder::Ts(x) => {
                need(b, 8, "timestamp")?;
                let v = be_i64(b);
                x.append_value(if v == i64::MAX || v == i64::MIN {
                    v
                } else {
                    v.checked_add(MICROS_2000)
                        .ok_or("timestamp beyond the Arrow range (year 294246)")?
                });
            }
            Decoder::Interval(m, d, us, n) => {
                need(b, 16, "interval")?;
                us.append_value(be_i64(b));
                d.append_value(be_i32(&b[8..]));
                m.append_value(be_i32(&b[12..]));
                n.append_non_null();
            }
            Decoder::Uuid(x) => {
                need(b, 16, "uuid")?;
                x.append_value(b).map_err(|e| e.to_string())?;
            }
            Decoder::List(x) => {
                let s = simdutf8::compat::from_utf8(b)
                    .map_err(|e| format!("text is not UTF-8: {e}"))?;
                x.push(s)?;
                return Ok(b.len());
            }
        }
        Ok(0)
    }

    fn push_null(&mut self) {
        match self {
            Decoder::Bool(x) => x.append_null(),
            Decoder::I16(x) => x.append_null(),
            Decoder::I32(x) => x.append_null(),
            Decoder::I64(x, _) => x.append_null(),
            Decoder::F32(x) => x.append_null(),
            Decoder::F64(x) => x.append_null(),
            Decoder::Decimal(x, ..) => x.append_null(),
            Decoder::Text(x, _) => x.append_null(),
            Decoder::Bytes(x) => x.append_null(),
            Decoder::Date(x) => x.append_null(),
            Decoder::Time(x) => x.append_null(),
            Decoder::TimeTz(t, o, n) => {
                t.append_value(0);
                o.append_value(0);
                n.append_null();
            }
            Decoder::Ts(x) => x.append_null(),
            Decoder::Interval(m, d, us, n) => {
                m.append_value(0);
                d.append_value(0);
                us.append_value(0);
                n.append_null();
            }
            Decoder::Uuid(x) => x.append_null(),
            Decoder::List(x) => x.push_null(),
        }
    }

    /// The batch so far, leaving the common builders sized for the next batch like this one
    /// ([`ferry_archive::again`]).
    pub fn finish(&mut self, batch_bytes: usize) -> ArrayRef {
        match self {
            Decoder::Bool(x) => Arc::new(again::boolean(x)),
            Decoder::I16(x) => Arc::new(again::primitive(x)),
            Decoder::I32(x) => Arc::new(again::primitive(x)),
            Decoder::I64(x, _) => Arc::new(again::primitive(x)),
            Decoder::F32(x) => Arc::new(again::primitive(x)),
            Decoder::F64(x) => Arc::new(again::primitive(x)),
            Decoder::Decimal(x, _) => Arc::new(again::primitive(x)),
            Decoder::Text(x, _) => Arc::new(again::bytes(x, batch_bytes)),
            Decoder::Bytes(x) => Arc::new(again::bytes(x, batch_bytes)),
            Decoder::Date(x) => Arc::new(again::primitive(x)),
            Decoder::Time(x) => Arc::new(again::primitive(x)),
            Decoder::TimeTz(t, o, n) => {
                let fields = match LogicalType::TimeTz.arrow_type() {
                    arrow_schema::DataType::Struct(f) => f,
                    _ => unreachable!("time_tz is a struct"),
                };
                Arc::new(StructArray::new(
                    fields,
                    vec![Arc::new(t.finish()), Arc::new(o.finish())],
                    n.finish(),
                ))
            }
            Decoder::Ts(x) => Arc::new(again::primitive(x)),
            Decoder::Interval(m, d, us, n) => {
                let fields = match LogicalType::Interval.arrow_type() {
                    arrow_schema::DataType::Struct(f) => f,
                    _ => unreachable!("interval is a struct"),
                };
                Arc::new(StructArray::new(
                    fields,
                    vec![
                        Arc::new(m.finish()),
                        Arc::new(d.finish()),
                        Arc::new(us.finish()),
                    ],
                    n.finish(),
                ))
            }
            Decoder::Uuid(x) => Arc::new(x.finish()),
            Decoder::List(x) => x.finish(),
        }
    }
}

/// PostgreSQL's `numeric_out`, from the binary form: exact, with the value's own scale.
pub fn numeric_to_text(b: &[u8]) -> Result<String, String> {
    if b.len() < 8 {
        return Err("numeric field shorter than its header".into());
    }
    let ndigits = be_i16(b) as usize;
    let weight = be_i16(&b[2..]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]) as usize;
    if b.len() != 8 + 2 * ndigits {
        return Err("numeric field length does not match its digit count".into());
    }
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        other => return Err(format!("numeric field with sign {other:#x}")),
    }
    let digit = |idx: i32| -> u16 {
        if idx < 0 || idx as usize >= ndigits {
            0
        } else {
            u16::from_be_bytes([b[8 + 2 * idx as usize], b[9 + 2 * idx as usize]])
        }
    };
    let mut s = String::with_capacity(8 + 4 * ndigits);
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for idx in 0..=weight {
            let d = digit(idx);
            if idx == 0 {
                s.push_str(&d.to_string());
            } else {
                s.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut idx = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(idx)));
            idx += 1;
        }
        frac.truncate(dscale);
        s.push_str(&frac);
    }
    Ok(s)
}

/// Canonical decimal text (`-12.340`, `NaN`, `Infinity`) to PostgreSQL's binary numeric.
/// A field's length word. The server refuses fields over 1 GB anyway; this keeps a larger
/// value from wrapping into a negative length (which the protocol reads as NULL).
fn field_len(n: usize) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| {
        format!("a value of {n} bytes is larger than a PostgreSQL field can be (1 GB)")
    })
}

/// A number's text for an error message, shortened.
fn clip_text(text: &str) -> String {
    ferry_archive::clip(text)
}

pub fn numeric_from_text(text: &str, out: &mut BytesMut) -> Result<(), String> {
    let special = match text {
        "NaN" => Some(0xC000u16),
        "Infinity" => Some(0xD000),
        "-Infinity" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        out.put_i32(8);
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return Ok(());
    }
    let (neg, body) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(format!("{text:?} is not a decimal number"));
    }
    let dscale = frac.len();
    let int = int.trim_start_matches('0');
    // Pad to whole base-10000 groups on both sides of the point.
    let lead = (4 - int.len() % 4) % 4;
    let trail = (4 - frac.len() % 4) % 4;
    let digits_str = format!("{}{int}{frac}{}", "0".repeat(lead), "0".repeat(trail));
    let mut groups: Vec<u16> = digits_str
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |acc, d| acc * 10 + (d - b'0') as u16))
        .collect();
    let zeros = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..zeros);
    // In i64, so that a 100 KB string of digits cannot wrap it.
    let mut weight = ((lead + int.len()) / 4) as i64 - 1 - zeros as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if neg && !groups.is_empty() { 0x4000 } else { 0 };
    // PostgreSQL's own limits: 131072 digits before the point, 16383 after.
    let too_big = || {
        format!(
            "{} has more digits than a PostgreSQL numeric holds",
            clip_text(text)
        )
    };
    let ndigits = i16::try_from(groups.len()).map_err(|_| too_big())?;
    let weight = i16::try_from(weight).map_err(|_| too_big())?;
    let dscale = u16::try_from(dscale)
        .ok()
        .filter(|d| *d <= 0x3FFF)
        .ok_or_else(too_big)?;
    out.put_i32(8 + 2 * i32::from(ndigits));
    out.put_i16(ndigits);
    out.put_i16(weight);
    out.put_u16(sign);
    out.put_u16(dscale);
    for g in groups {
        out.put_u16(g);
    }
    Ok(())
}

/// Exact decimal text to the unscaled integer of a decimal(p, scale).
fn decimal_from_text(text: &str, scale: i8) -> Result<i128, String> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let scale = scale.max(0) as usize;
    if frac.len() > scale && frac[scale..].bytes().any(|c| c != b'0') {
        return Err(format!("{text} has more than {scale} decimals"));
    }
    let mut digits = String::from(int);
    digits.push_str(&frac[..frac.len().min(scale)]);
    digits.push_str(&"0".repeat(scale.saturating_sub(frac.len())));
    let v: i128 = digits
        .parse()
        .map_err(|_| format!("{text} does not fit a 38-digit decimal"))?;
    Ok(if neg { -v } else { v })
}

/// Encodes one column of Arrow values into binary COPY fields of a target wire type.
pub struct Encoder<'a> {
    array: &'a ArrayRef,
    wire: Wire,
    logical: &'a LogicalType,
}

impl<'a> Encoder<'a> {
    /// Checks once per batch that this logical type can be written as this wire type.
    pub fn new(array: &'a ArrayRef, wire: Wire, logical: &'a LogicalType) -> Result<Self, String> {
        use LogicalType as L;
        let ok = matches!(
            (wire, logical),
            (Wire::Bool, L::Boolean)
                | (
                    Wire::Int2 | Wire::Int4 | Wire::Int8 | Wire::Money | Wire::Oid,
                    L::Int16 | L::Int32 | L::Int64
                )
                | (Wire::Float4, L::Float32)
                | (Wire::Float8, L::Float64 | L::Float32)
                | (Wire::Numeric, L::Decimal { .. } | L::Numeric)
                | (
                    Wire::Text | Wire::Json | Wire::Jsonb | Wire::AsText,
                    L::Text | L::Json | L::Numeric | L::EngineText { .. }
                )
                | (Wire::Bytea, L::Bytes)
                | (Wire::Date, L::Date)
                | (Wire::Time, L::Time)
                | (Wire::TimeTz, L::TimeTz)
                | (Wire::Timestamp, L::Timestamp)
                | (Wire::TimestampTz, L::TimestampTz)
                | (Wire::Interval, L::Interval)
                | (Wire::Uuid, L::Uuid)
                // Its literal, as text (`Text` into a text staging table).
                | (Wire::AsText | Wire::Text, L::List { .. })
        );
        if ok {
            Ok(Encoder {
                array,
                wire,
                logical,
            })
        } else {
            Err(format!(
                "archive type {} cannot be written to a column of wire type {:?}",
                logical.display(),
                wire
            ))
        }
    }

    /// Writes field `r` (length prefix and bytes, or -1 for NULL).
    pub fn put(&self, r: usize, out: &mut BytesMut) -> Result<(), String> {
        let a = self.array;
        if a.is_null(r) {
            out.put_i32(-1);
            return Ok(());
        }
        if let (Wire::AsText | Wire::Text, LogicalType::List { element }) =
            (self.wire, self.logical)
        {
            return crate::array_text::put_literal(a, element, r, out);
        }
        let int = || -> i64 {
            match self.logical {
                LogicalType::Int16 => a.as_primitive::<Int16Type>().value(r) as i64,
                LogicalType::Int32 => a.as_primitive::<Int32Type>().value(r) as i64,
                _ => a.as_primitive::<Int64Type>().value(r),
            }
        };
        match self.wire {
            Wire::Bool => {
                out.put_i32(1);
                out.put_u8(a.as_boolean().value(r) as u8);
            }
            Wire::Int2 => {
                let v = int();
                let v = i16::try_from(v).map_err(|_| format!("{v} does not fit smallint"))?;
                out.put_i32(2);
                out.put_i16(v);
            }
            Wire::Int4 => {
                let v = int();
                let v = i32::try_from(v).map_err(|_| format!("{v} does not fit integer"))?;
                out.put_i32(4);
                out.put_i32(v);
            }
            Wire::Oid => {
                let v = int();
                let v = u32::try_from(v).map_err(|_| format!("{v} does not fit oid"))?;
                out.put_i32(4);
                out.put_u32(v);
            }
            Wire::Int8 | Wire::Money => {
                out.put_i32(8);
                out.put_i64(int());
            }
            Wire::Float4 => {
                out.put_i32(4);
                out.put_u32(a.as_primitive::<Float32Type>().value(r).to_bits());
            }
            Wire::Float8 => {
                let v = match self.logical {
                    LogicalType::Float32 => a.as_primitive::<Float32Type>().value(r) as f64,
                    _ => a.as_primitive::<Float64Type>().value(r),
                };
                out.put_i32(8);
                out.put_u64(v.to_bits());
            }
            Wire::Numeric => match self.logical {
                LogicalType::Decimal { scale, .. } => {
                    let v = a.as_primitive::<Decimal128Type>().value(r);
                    numeric_from_text(&ferry_archive::convert::decimal_text(v, *scale), out)?;
                }
                _ => numeric_from_text(a.as_string::<i32>().value(r), out)?,
            },
            Wire::Text | Wire::Json | Wire::AsText => put_text(out, a.as_string::<i32>().value(r))?,
            Wire::Jsonb => {
                let s = a.as_string::<i32>().value(r);
                out.put_i32(field_len(s.len() + 1)?);
                out.put_u8(1);
                out.put_slice(s.as_bytes());
            }
            Wire::Bytea => {
                let b = a.as_binary::<i32>().value(r);
                out.put_i32(field_len(b.len())?);
                out.put_slice(b);
            }
            Wire::Date => put_date(out, a.as_primitive::<Date32Type>().value(r) as i64)?,
            Wire::Time => {
                out.put_i32(8);
                out.put_i64(a.as_primitive::<Time64MicrosecondType>().value(r));
            }
            Wire::TimeTz => {
                let s = a.as_struct();
                out.put_i32(12);
                out.put_i64(s.column(0).as_primitive::<Time64MicrosecondType>().value(r));
                out.put_i32(-s.column(1).as_primitive::<Int32Type>().value(r));
            }
            Wire::Timestamp | Wire::TimestampTz => {
                put_timestamp(out, a.as_primitive::<TimestampMicrosecondType>().value(r))?
            }
            Wire::Interval => {
                let s = a.as_struct();
                out.put_i32(16);
                out.put_i64(s.column(2).as_primitive::<Int64Type>().value(r));
                out.put_i32(s.column(1).as_primitive::<Int32Type>().value(r));
                out.put_i32(s.column(0).as_primitive::<Int32Type>().value(r));
            }
            Wire::Uuid => {
                out.put_i32(16);
                out.put_slice(a.as_fixed_size_binary().value(r));
            }
        }
        Ok(())
    }
}

/// A text field: its UTF-8 bytes with their length.
pub(crate) fn put_text(out: &mut BytesMut, s: &str) -> Result<(), String> {
    out.put_i32(field_len(s.len())?);
    out.put_slice(s.as_bytes());
    Ok(())
}

/// A timestamp field from microseconds since 1970: shifted to PostgreSQL's epoch of 2000,
/// except the infinity sentinels, which are the same on both sides.
pub(crate) fn put_timestamp(out: &mut BytesMut, v: i64) -> Result<(), String> {
    out.put_i32(8);
    out.put_i64(if v == i64::MAX || v == i64::MIN {
        v
    } else {
        v.checked_sub(MICROS_2000)
            .ok_or_else(|| format!("timestamp {v} is before PostgreSQL's range"))?
    });
    Ok(())
}

/// A date field from days since 1970, shifted likewise (`i32::MAX`/`MIN` are infinity).
pub(crate) fn put_date(out: &mut BytesMut, d: i64) -> Result<(), String> {
    let shifted = if d == i32::MAX as i64 || d == i32::MIN as i64 {
        d
    } else {
        d - DAYS_2000 as i64
    };
    let shifted =
        i32::try_from(shifted).map_err(|_| format!("date {d} is beyond PostgreSQL's range"))?;
    out.put_i32(4);
    out.put_i32(shifted);
    Ok(())
}

/// Splits a binary COPY stream into rows, across whatever chunk boundaries it arrives in.
#[derive(Default)]
pub struct RowSplitter {
    buf: BytesMut,
    header_done: bool,
    finished: bool,
}

impl RowSplitter {
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The next complete row as (its raw bytes, field slices), if one is buffered.
    /// `fields` is reused to avoid an allocation per row.
    pub fn next_row(
        &mut self,
        fields: &mut Vec<Option<(usize, usize)>>,
    ) -> Result<Option<bytes::Bytes>, String> {
        if !self.header_done {
            if self.buf.len() < 19 {
                return Ok(None);
            }
            if &self.buf[..11] != COPY_SIGNATURE {
                return Err("not a binary COPY stream".into());
            }
            let ext = be_i32(&self.buf[15..]) as usize;
            if self.buf.len() < 19 + ext {
                return Ok(None);
            }
            let _ = self.buf.split_to(19 + ext);
            self.header_done = true;
        }
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let n = be_i16(&self.buf);
        if n == -1 {
            self.finished = true;
            let _ = self.buf.split_to(2);
            return Ok(None);
        }
        fields.clear();
        let mut pos = 2usize;
        for _ in 0..n {
            if self.buf.len() < pos + 4 {
                return Ok(None);
            }
            let len = be_i32(&self.buf[pos..]);
            pos += 4;
            if len < 0 {
                fields.push(None);
            } else {
                let len = len as usize;
                if self.buf.len() < pos + len {
                    return Ok(None);
                }
                fields.push(Some((pos, len)));
                pos += len;
            }
        }
        Ok(Some(self.buf.split_to(pos).freeze()))
    }
}

/// The header of an outgoing binary COPY stream.
pub fn put_header(out: &mut BytesMut) {
    out.put_slice(COPY_SIGNATURE);
    out.put_i32(0);
    out.put_i32(0);
}

// SQLite values into binary COPY fields: the other source this codec encodes from, through
// the conversion `from_sqlite::decide` chose for the column.

/// Renders any SQLite value as text (the widened form): integers and reals in their exact
/// shortest form, blobs and invalid UTF-8 as `\x` hex.
pub(crate) fn as_text(v: SqlVal<'_>) -> Option<String> {
    Some(match v {
        SqlVal::Null => return None,
        SqlVal::Integer(i) => i.to_string(),
        SqlVal::Real(f) => real_text(f),
        SqlVal::Text(t) => t.to_owned(),
        SqlVal::TextBytes(b) | SqlVal::Blob(b) => format!("\\x{}", hex::encode(b)),
        v @ (SqlVal::Timestamp(_) | SqlVal::Date(_)) => v.printed().unwrap_or_default(),
    })
}

fn real_text(f: f64) -> String {
    if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{f:?}")
    }
}

/// A SQLite value that means a point in time, as microseconds since 1970: ISO text, an epoch
/// integer in `unit`, a julian day, or a timestamp or date the archive carries as such.
fn micros_of(v: SqlVal<'_>, unit: EpochUnit) -> Option<i64> {
    match v {
        SqlVal::Text(t) => convert::parse_timestamp(t).map(|t| t.micros),
        SqlVal::Integer(i) => convert::epoch_to_micros(i, unit),
        SqlVal::Real(f) => convert::julian_to_micros(f),
        SqlVal::Timestamp(us) => Some(us),
        SqlVal::Date(d) => (d as i64).checked_mul(86_400_000_000),
        _ => None,
    }
}

impl Conv {
    /// Writes one field. Errors name the value; the caller adds table, column and row.
    pub fn put(self, v: SqlVal<'_>, out: &mut BytesMut) -> Result<(), String> {
        if let SqlVal::Null = v {
            out.put_i32(-1);
            return Ok(());
        }
        let bad = |what: &str| {
            Err(format!(
                "{} does not convert to {what}",
                ferry_archive::clip(&format!("{v:?}"))
            ))
        };
        match self {
            Conv::Int2 | Conv::Int4 | Conv::Int8 => {
                let SqlVal::Integer(i) = v else {
                    return bad("an integer");
                };
                match self {
                    Conv::Int2 => {
                        let x =
                            i16::try_from(i).map_err(|_| format!("{i} does not fit smallint"))?;
                        out.put_i32(2);
                        out.put_i16(x);
                    }
                    Conv::Int4 => {
                        let x =
                            i32::try_from(i).map_err(|_| format!("{i} does not fit integer"))?;
                        out.put_i32(4);
                        out.put_i32(x);
                    }
                    _ => {
                        out.put_i32(8);
                        out.put_i64(i);
                    }
                }
            }
            Conv::Float8 => {
                let f = match v {
                    SqlVal::Integer(i) => i as f64,
                    SqlVal::Real(f) => f,
                    _ => return bad("double precision"),
                };
                out.put_i32(8);
                out.put_u64(f.to_bits());
            }
            Conv::Numeric => {
                let text = match v {
                    SqlVal::Integer(i) => i.to_string(),
                    SqlVal::Real(f) if f.is_finite() => {
                        convert::canonical_decimal(&format!("{f:?}")).ok_or("bad real")?
                    }
                    SqlVal::Real(f) => real_text(f),
                    SqlVal::Text(t) => convert::canonical_decimal(t)
                        .ok_or_else(|| format!("'{t}' is not a number"))?,
                    _ => return bad("numeric"),
                };
                numeric_from_text(&text, out)?;
            }
            Conv::Text { widen } => match (v, widen) {
                (SqlVal::Text(t), _) => put_text(out, t)?,
                // The text it was.
                (v @ (SqlVal::Timestamp(_) | SqlVal::Date(_)), _) => {
                    put_text(out, &as_text(v).unwrap_or_default())?
                }
                (other, true) => put_text(out, &as_text(other).unwrap_or_default())?,
                _ => return bad("text"),
            },
            Conv::Bytea => {
                let b: &[u8] = match v {
                    SqlVal::Blob(b) | SqlVal::TextBytes(b) => b,
                    SqlVal::Text(t) => t.as_bytes(),
                    _ => return bad("bytea"),
                };
                out.put_i32(b.len() as i32);
                out.put_slice(b);
            }
            Conv::Bool => {
                let b = match v {
                    SqlVal::Integer(0) => false,
                    SqlVal::Integer(1) => true,
                    SqlVal::Text(t) => {
                        convert::bool_word(t).ok_or_else(|| format!("'{t}' is not a boolean"))?
                    }
                    _ => return bad("boolean"),
                };
                out.put_i32(1);
                out.put_u8(b as u8);
            }
            Conv::Timestamp { unit, .. } => {
                let micros = micros_of(v, unit).ok_or_else(|| {
                    format!(
                        "{} is not a date and time",
                        ferry_archive::clip(&format!("{v:?}"))
                    )
                })?;
                put_timestamp(out, micros)?;
            }
            Conv::Date { unit } => {
                let micros = micros_of(v, unit).ok_or_else(|| {
                    format!("{} is not a date", ferry_archive::clip(&format!("{v:?}")))
                })?;
                let days = micros.div_euclid(86_400_000_000);
                if micros.rem_euclid(86_400_000_000) != 0 {
                    return Err(format!(
                        "{v:?} has a time of day; a date column would drop it"
                    ));
                }
                put_date(out, days)?;
            }
            Conv::Time => {
                let SqlVal::Text(t) = v else {
                    return bad("time");
                };
                let us = convert::parse_time(t).ok_or_else(|| format!("'{t}' is not a time"))?;
                out.put_i32(8);
                out.put_i64(us);
            }
            Conv::Json => {
                let SqlVal::Text(t) = v else {
                    return bad("json");
                };
                serde_json::from_str::<serde::de::IgnoredAny>(t)
                    .map_err(|e| format!("'{t}' is not JSON: {e}"))?;
                put_text(out, t)?;
            }
            Conv::Float4 => {
                let f = match v {
                    SqlVal::Integer(i) => i as f64,
                    SqlVal::Real(f) => f,
                    _ => return bad("real"),
                };
                let g = f as f32;
                if g as f64 != f && f.is_finite() {
                    return Err(format!("{f} does not fit real (4 bytes) exactly"));
                }
                out.put_i32(4);
                out.put_u32(g.to_bits());
            }
            Conv::Jsonb => {
                let SqlVal::Text(t) = v else {
                    return bad("jsonb");
                };
                out.put_i32(t.len() as i32 + 1);
                out.put_u8(1);
                out.put_slice(t.as_bytes());
            }
            Conv::Uuid => {
                let u = match v {
                    SqlVal::Text(t) => {
                        convert::parse_uuid(t).ok_or_else(|| format!("'{t}' is not a UUID"))?
                    }
                    SqlVal::Blob(b) if b.len() == 16 => b.try_into().expect("16 bytes"),
                    _ => return bad("uuid"),
                };
                out.put_i32(16);
                out.put_slice(&u);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &str) -> String {
        let mut b = BytesMut::new();
        numeric_from_text(text, &mut b).unwrap();
        numeric_to_text(&b[4..]).unwrap()
    }

    #[test]
    fn numerics_survive_binary() {
        for t in [
            "0",
            "1",
            "-1",
            "10000",
            "12345678901234567890.123456789",
            "0.0001",
            "-0.00012300",
            "100000000",
            "3.14159265358979323846264338327950288419716939937510",
            "NaN",
            "Infinity",
            "-Infinity",
            "0.000",
            "99999999999999999999999999999999999999999",
        ] {
            assert_eq!(round(t), t, "{t}");
        }
        assert_eq!(round("-0.0"), "0.0");
        assert_eq!(decimal_from_text("-12.5", 3).unwrap(), -12500);
        assert_eq!(ferry_archive::convert::decimal_text(-12500, 3), "-12.500");
        assert_eq!(ferry_archive::convert::decimal_text(5, 3), "0.005");
        assert!(decimal_from_text("1.2345", 2).is_err());
    }

    #[test]
    fn numerics_beyond_postgresql_limits_are_errors_not_wrapped_lengths() {
        // Before: the group count and scale were cast with `as`, and wrapped.
        let mut b = BytesMut::new();
        let long_int = "9".repeat(140_000);
        let err = numeric_from_text(&long_int, &mut b).unwrap_err();
        assert!(
            err.contains("more digits than a PostgreSQL numeric holds"),
            "{err}"
        );
        assert!(err.len() < 400, "the value is clipped in the message");
        let long_frac = format!("0.{}", "1".repeat(16_384));
        assert!(numeric_from_text(&long_frac, &mut b).is_err());
        // Many leading zero groups are dropped in one step.
        let zeros = format!("0.{}1", "0".repeat(16_000));
        assert!(numeric_from_text(&zeros, &mut b).is_ok());
        assert_eq!(round(&zeros), zeros);
        assert!(field_len(usize::MAX).is_err());
    }
}

//! Reading back the SQLite values an archive from SQLite holds, for every importer alike.
//!
//! A SQLite archive's data field is one of a few logical types (spec/types.md, "SQLite ↔
//! logical types"), each a way of carrying a SQLite value exactly: `int64`, `float64`,
//! `text`, `bytes`, the `sqlite_value` struct of a storage class and a slot per class, and
//! the natural forms `boolean` (the INTEGERs 0 and 1), `timestamp` and `date` (TEXT as
//! `datetime()` and `date()` print it). This is the one reader of those, next to the format
//! that defines them, so the SQLite importer and the PostgreSQL importer cannot read the
//! same field two ways. It validates instead of guessing: a field of another Arrow type, an
//! unknown storage class or a class whose slot is empty is an error, never a 0, an empty
//! string or a blob that the source never held.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int8Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int8Array, Int64Array,
    StringArray, StructArray, TimestampMicrosecondArray,
};

use crate::LogicalType;
use crate::types::sqlite_class;

/// One SQLite value, borrowed from the archive where it can be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqliteValue<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    /// TEXT whose bytes are not valid UTF-8.
    TextBytes(&'a [u8]),
    Blob(&'a [u8]),
    /// TEXT that was `datetime()`'s form, as microseconds since 1970 (print it with
    /// `convert::format_timestamp` to get the TEXT back).
    Timestamp(i64),
    /// TEXT that was `date()`'s form, as days since 1970 (`convert::format_date`).
    Date(i32),
}

impl SqliteValue<'_> {
    /// The TEXT a timestamp or date was, or `None` for any other value.
    pub fn printed(&self) -> Option<String> {
        match *self {
            SqliteValue::Timestamp(us) => Some(crate::convert::format_timestamp(us)),
            SqliteValue::Date(d) => Some(crate::convert::format_date(d)),
            _ => None,
        }
    }
}

/// A SQLite archive's data field, checked once against its logical type, then read row by
/// row.
pub enum SqliteColumn<'a> {
    Boolean(&'a BooleanArray),
    Integer(&'a Int64Array),
    Real(&'a Float64Array),
    Text(&'a StringArray),
    Blob(&'a BinaryArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Date(&'a Date32Array),
    Value {
        nulls: &'a StructArray,
        class: &'a Int8Array,
        integer: &'a Int64Array,
        real: &'a Float64Array,
        text: &'a StringArray,
        blob: &'a BinaryArray,
    },
}

impl<'a> SqliteColumn<'a> {
    /// The field `array` read as logical type `lt`; an error says what does not fit.
    pub fn new(array: &'a ArrayRef, lt: &LogicalType) -> Result<SqliteColumn<'a>, String> {
        let wrong = || {
            format!(
                "the field is {}, not a {} column",
                array.data_type(),
                lt.display()
            )
        };
        Ok(match lt {
            LogicalType::Boolean => {
                SqliteColumn::Boolean(array.as_boolean_opt().ok_or_else(wrong)?)
            }
            LogicalType::Int64 => {
                SqliteColumn::Integer(array.as_primitive_opt::<Int64Type>().ok_or_else(wrong)?)
            }
            LogicalType::Float64 => {
                SqliteColumn::Real(array.as_primitive_opt::<Float64Type>().ok_or_else(wrong)?)
            }
            LogicalType::Text => {
                SqliteColumn::Text(array.as_string_opt::<i32>().ok_or_else(wrong)?)
            }
            LogicalType::Bytes => {
                SqliteColumn::Blob(array.as_binary_opt::<i32>().ok_or_else(wrong)?)
            }
            LogicalType::Timestamp => SqliteColumn::Timestamp(
                array
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(wrong)?,
            ),
            LogicalType::Date => {
                SqliteColumn::Date(array.as_primitive_opt::<Date32Type>().ok_or_else(wrong)?)
            }
            LogicalType::SqliteValue => {
                let s = array.as_struct_opt().ok_or_else(wrong)?;
                if s.num_columns() != 5 {
                    return Err(wrong());
                }
                SqliteColumn::Value {
                    nulls: s,
                    class: s
                        .column(0)
                        .as_primitive_opt::<Int8Type>()
                        .ok_or_else(wrong)?,
                    integer: s
                        .column(1)
                        .as_primitive_opt::<Int64Type>()
                        .ok_or_else(wrong)?,
                    real: s
                        .column(2)
                        .as_primitive_opt::<Float64Type>()
                        .ok_or_else(wrong)?,
                    text: s.column(3).as_string_opt::<i32>().ok_or_else(wrong)?,
                    blob: s.column(4).as_binary_opt::<i32>().ok_or_else(wrong)?,
                }
            }
            other => {
                return Err(format!(
                    "logical type {} does not hold SQLite values",
                    other.display()
                ));
            }
        })
    }

    /// The value of row `r`.
    pub fn get(&self, r: usize) -> Result<SqliteValue<'a>, String> {
        Ok(match self {
            SqliteColumn::Boolean(a) if a.is_valid(r) => SqliteValue::Integer(a.value(r) as i64),
            SqliteColumn::Integer(a) if a.is_valid(r) => SqliteValue::Integer(a.value(r)),
            SqliteColumn::Real(a) if a.is_valid(r) => SqliteValue::Real(a.value(r)),
            SqliteColumn::Text(a) if a.is_valid(r) => SqliteValue::Text(a.value(r)),
            SqliteColumn::Blob(a) if a.is_valid(r) => SqliteValue::Blob(a.value(r)),
            SqliteColumn::Timestamp(a) if a.is_valid(r) => SqliteValue::Timestamp(a.value(r)),
            SqliteColumn::Date(a) if a.is_valid(r) => SqliteValue::Date(a.value(r)),
            SqliteColumn::Value {
                nulls,
                class,
                integer,
                real,
                text,
                blob,
            } if nulls.is_valid(r) => {
                let c = class.value(r);
                let empty = || format!("invalid sqlite_value: class {c} without its value");
                match c {
                    sqlite_class::INTEGER if integer.is_valid(r) => {
                        SqliteValue::Integer(integer.value(r))
                    }
                    sqlite_class::REAL if real.is_valid(r) => SqliteValue::Real(real.value(r)),
                    sqlite_class::TEXT if text.is_valid(r) => SqliteValue::Text(text.value(r)),
                    sqlite_class::TEXT_BYTES if blob.is_valid(r) => {
                        SqliteValue::TextBytes(blob.value(r))
                    }
                    sqlite_class::BLOB if blob.is_valid(r) => SqliteValue::Blob(blob.value(r)),
                    sqlite_class::INTEGER
                    | sqlite_class::REAL
                    | sqlite_class::TEXT
                    | sqlite_class::TEXT_BYTES
                    | sqlite_class::BLOB => return Err(empty()),
                    c => return Err(format!("invalid sqlite_value: unknown storage class {c}")),
                }
            }
            _ => SqliteValue::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn value_struct(class: i8, integer: Option<i64>, text: Option<&str>) -> ArrayRef {
        let fields = match LogicalType::SqliteValue.arrow_type() {
            arrow_schema::DataType::Struct(f) => f,
            _ => unreachable!("sqlite_value is a struct"),
        };
        Arc::new(StructArray::new(
            fields,
            vec![
                Arc::new(Int8Array::from(vec![class])),
                Arc::new(Int64Array::from(vec![integer])),
                Arc::new(Float64Array::from(vec![None::<f64>])),
                Arc::new(StringArray::from(vec![text])),
                Arc::new(BinaryArray::from(vec![None::<&[u8]>])),
            ],
            None,
        ))
    }

    #[test]
    fn malformed_values_are_errors_not_guesses() {
        let ok = value_struct(sqlite_class::INTEGER, Some(7), None);
        let col = SqliteColumn::new(&ok, &LogicalType::SqliteValue).unwrap();
        assert_eq!(col.get(0).unwrap(), SqliteValue::Integer(7));
        // A class whose slot is empty is not 0.
        let empty = value_struct(sqlite_class::INTEGER, None, None);
        let col = SqliteColumn::new(&empty, &LogicalType::SqliteValue).unwrap();
        assert!(col.get(0).unwrap_err().contains("without its value"));
        // An unknown class is not a blob.
        let unknown = value_struct(9, None, Some("x"));
        let col = SqliteColumn::new(&unknown, &LogicalType::SqliteValue).unwrap();
        assert!(col.get(0).unwrap_err().contains("unknown storage class 9"));
        // A field of another type is refused up front.
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert!(SqliteColumn::new(&ints, &LogicalType::Text).is_err());
        // Natural forms read back as what they were.
        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None]));
        let col = SqliteColumn::new(&flags, &LogicalType::Boolean).unwrap();
        assert_eq!(col.get(0).unwrap(), SqliteValue::Integer(1));
        assert_eq!(col.get(1).unwrap(), SqliteValue::Null);
        let day: ArrayRef = Arc::new(Date32Array::from(vec![19_844]));
        let col = SqliteColumn::new(&day, &LogicalType::Date).unwrap();
        assert_eq!(col.get(0).unwrap().printed().as_deref(), Some("2024-05-01"));
    }
}

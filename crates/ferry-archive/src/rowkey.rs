//! Naming a row in a message by its key: `id = 42`, `tenant = 3, code = x`.
//!
//! An importer that refuses a value says which row it came from. The row number within a
//! part is always known; the key is what a person can look up in the source. Every importer
//! (and every loop that encodes rows) uses this one function, so every value error names
//! its row the same way.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};

use crate::sqlite_value::{SqliteColumn, SqliteValue};
use crate::{LogicalType, Table};

/// The key of row `r` of `batch` (a batch of `table`'s data fields): the rowid, or the
/// primary key's columns, each `name = value`. `None` when the table has neither, or a key
/// value has a type this does not print.
pub fn describe(table: &Table, batch: &RecordBatch, r: usize) -> Option<String> {
    let fields = table.data_fields();
    let key: Vec<String> = match (&table.rowid, &table.primary_key) {
        (Some(rowid), _) => vec![rowid.clone()],
        (None, Some(pk)) => pk.columns.clone(),
        (None, None) => return None,
    };
    let parts = key
        .iter()
        .map(|k| {
            let i = fields.iter().position(|(n, _)| n == k)?;
            let v = value_text(batch.column(i), &fields[i].1, r)?;
            Some(format!("{k} = {}", crate::clip(&v)))
        })
        .collect::<Option<Vec<_>>>()?;
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A reason with the row's key added, when it has one.
pub fn with_key(reason: String, table: &Table, batch: &RecordBatch, r: usize) -> String {
    match describe(table, batch, r) {
        Some(key) => format!("{reason} (row with {key})"),
        None => reason,
    }
}

fn value_text(a: &ArrayRef, lt: &LogicalType, r: usize) -> Option<String> {
    if r >= a.len() {
        return None;
    }
    if a.is_null(r) {
        return Some("NULL".into());
    }
    Some(match lt {
        LogicalType::Boolean => a.as_boolean_opt()?.value(r).to_string(),
        LogicalType::Int16 => a.as_primitive_opt::<Int16Type>()?.value(r).to_string(),
        LogicalType::Int32 => a.as_primitive_opt::<Int32Type>()?.value(r).to_string(),
        LogicalType::Int64 => a.as_primitive_opt::<Int64Type>()?.value(r).to_string(),
        LogicalType::Decimal { scale, .. } => {
            crate::convert::decimal_text(a.as_primitive_opt::<Decimal128Type>()?.value(r), *scale)
        }
        LogicalType::Text
        | LogicalType::Numeric
        | LogicalType::Json
        | LogicalType::EngineText { .. } => a.as_string_opt::<i32>()?.value(r).to_owned(),
        LogicalType::Uuid => crate::convert::format_uuid(a.as_fixed_size_binary_opt()?.value(r)),
        LogicalType::Date => {
            crate::convert::format_date(a.as_primitive_opt::<Date32Type>()?.value(r))
        }
        LogicalType::Timestamp | LogicalType::TimestampTz => crate::convert::format_timestamp(
            a.as_primitive_opt::<TimestampMicrosecondType>()?.value(r),
        ),
        LogicalType::SqliteValue => match SqliteColumn::new(a, lt).ok()?.get(r).ok()? {
            SqliteValue::Null => "NULL".into(),
            SqliteValue::Integer(i) => i.to_string(),
            SqliteValue::Real(f) => f.to_string(),
            SqliteValue::Text(t) => t.to_owned(),
            SqliteValue::TextBytes(b) | SqliteValue::Blob(b) => format!("x'{}'", hex::encode(b)),
            v @ (SqliteValue::Timestamp(_) | SqliteValue::Date(_)) => v.printed()?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, Key};
    use std::sync::Arc;

    #[test]
    fn rows_are_named_by_their_primary_key() {
        let mut t = Table::new(
            "t00001",
            "orders",
            vec![
                Column::new("tenant", LogicalType::Int32, false),
                Column::new("code", LogicalType::Text, false),
                Column::new("note", LogicalType::Text, true),
            ],
        );
        t.primary_key = Some(Key {
            name: None,
            columns: vec!["tenant".into(), "code".into()],
            properties: Default::default(),
        });
        let batch = RecordBatch::try_new(
            Arc::new(crate::types::arrow_schema_for(
                &t.data_fields()
                    .into_iter()
                    .map(|(n, lt)| (n, lt, true))
                    .collect::<Vec<_>>(),
            )),
            vec![
                Arc::new(arrow_array::Int32Array::from(vec![3, 4])),
                Arc::new(arrow_array::StringArray::from(vec!["x", "y"])),
                Arc::new(arrow_array::StringArray::from(vec![None::<&str>, None])),
            ],
        )
        .unwrap();
        assert_eq!(
            describe(&t, &batch, 1).as_deref(),
            Some("tenant = 4, code = y")
        );
        assert_eq!(
            with_key("too long".into(), &t, &batch, 0),
            "too long (row with tenant = 3, code = x)"
        );
        t.primary_key = None;
        assert_eq!(with_key("too long".into(), &t, &batch, 0), "too long");
    }
}

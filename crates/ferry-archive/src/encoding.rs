//! Per-column Parquet encoding choices, made from the data.
//!
//! Parquet writers start every column chunk dictionary-encoded and fall back to plain once
//! the dictionary passes its page limit (1 MiB). For a column whose values are all
//! different (keys, timestamps, measurements) the dictionary never pays: each value is
//! interned (hashed, compared, stored) only to be thrown away at the fallback, or, for a
//! narrow type whose dictionary never reaches the limit within a row group, kept beside
//! indices that are larger than the values. That interning was a tenth of a PostgreSQL
//! export's CPU. So each table's first batch is sampled, and the columns whose sampled
//! values are (nearly) all distinct are written plain. It changes how the files are encoded,
//! never what they hold: every Parquet reader reads both.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

/// Rows of the first batch looked at.
const SAMPLE_ROWS: usize = 8192;
/// Fewer non-null values than this prove nothing; such a column keeps the default.
const MIN_VALUES: usize = 1024;
/// The share of distinct values above which a column is written without a dictionary.
const DISTINCT_SHARE: f64 = 0.99;

/// The top-level columns of `batch` whose sampled values are (nearly) all distinct.
pub(crate) fn high_cardinality_columns(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(_, array)| mostly_distinct(array.as_ref()))
        .map(|(f, _)| f.name().clone())
        .collect()
}

fn mostly_distinct(array: &dyn Array) -> bool {
    let n = array.len().min(SAMPLE_ROWS);
    let valid = (0..n).filter(|&i| array.is_valid(i));
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            judge(valid.map(|i| a.value(i).as_bytes()))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            judge(valid.map(|i| a.value(i).as_bytes()))
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            judge(valid.map(|i| a.value(i)))
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            judge(valid.map(|i| a.value(i)))
        }
        DataType::FixedSizeBinary(_) => {
            let a = array.as_fixed_size_binary();
            judge(valid.map(|i| a.value(i)))
        }
        t if t.is_primitive() => {
            let Some(width) = t.primitive_width() else {
                return false;
            };
            let data = array.to_data();
            let bytes = data.buffers()[0].as_slice();
            let at = data.offset();
            judge(valid.map(|i| &bytes[(at + i) * width..(at + i + 1) * width]))
        }
        // Booleans, nested and dictionary types keep the writer's default.
        _ => false,
    }
}

/// Whether enough values were sampled and nearly all of them differ.
fn judge<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut seen = 0usize;
    let mut distinct: HashSet<&[u8]> = HashSet::with_capacity(SAMPLE_ROWS);
    for v in values {
        seen += 1;
        distinct.insert(v);
    }
    seen >= MIN_VALUES && distinct.len() as f64 >= seen as f64 * DISTINCT_SHARE
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn unique_columns_are_chosen_and_repetitive_ones_are_not() {
        let n = 5000i64;
        let b = batch(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
            ),
            (
                "at",
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| 1_700_000_000_000_000 + i * 7),
                )),
            ),
            (
                "kind",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["a", "b", "c"][i as usize % 3]),
                )),
            ),
            (
                "payload",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("{{\"n\":{i}}}")),
                )),
            ),
            (
                "user_id",
                Arc::new(Int32Array::from_iter_values(
                    (0..n as i32).map(|i| i % 1000),
                )),
            ),
            (
                "score",
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| i as f64 / 3.0),
                )),
            ),
            (
                "flag",
                Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0)))),
            ),
        ]);
        assert_eq!(
            high_cardinality_columns(&b),
            ["id", "at", "payload", "score"]
        );
    }

    #[test]
    fn nulls_and_slices_are_sampled_by_their_values() {
        // Mostly NULL: too few values to judge.
        let sparse = Int64Array::from_iter((0..5000i64).map(|i| (i % 10 == 0).then_some(i)));
        // A slice starts mid-buffer, and its offset must be honoured: the first half of
        // the buffer is one value repeated, the second half (the slice) all distinct.
        let halves: Int64Array = (0..6000i64)
            .map(|i| if i < 3000 { 0 } else { i })
            .collect::<Vec<_>>()
            .into();
        let chosen = |name: &str, a: ArrayRef| high_cardinality_columns(&batch(vec![(name, a)]));
        assert!(chosen("sparse", Arc::new(sparse)).is_empty());
        assert!(chosen("whole", Arc::new(halves.clone())).is_empty());
        assert_eq!(chosen("tail", Arc::new(halves.slice(3000, 3000))), ["tail"]);
    }
}

//! Arrow builders made ready for the next batch, sized like the last one.
//!
//! Arrow's `finish` hands a builder's buffers to the array and leaves it with none, so a
//! reader that reuses its builders grows every buffer again, by doubling, for every batch:
//! each buffer is copied about once more on the way, and a batch sits in up to twice the
//! memory it holds while it waits in a queue and the encoder. Both exporters therefore
//! finish a batch through these helpers, which start the next builder with the room the last
//! batch used, and an eighth more. Variable-length data is capped at the batch's byte
//! budget, so that one huge value does not reserve as much again for every batch after it.

use arrow_array::builder::{BooleanBuilder, GenericByteBuilder, PrimitiveBuilder};
use arrow_array::types::{ArrowPrimitiveType, ByteArrayType};
use arrow_array::{Array, BooleanArray, GenericByteArray, PrimitiveArray};

/// Room for the next batch, given what the last one used: an eighth more, so that a batch a
/// little larger than the last grows nothing, and never none.
pub fn room(used: usize) -> usize {
    used + used / 8 + 1
}

/// Finishes a fixed-width builder and starts it again with room for as many values, and
/// with the finished array's own type (a timestamp's zone, a decimal's precision and scale).
pub fn primitive<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>) -> PrimitiveArray<T> {
    let a = b.finish();
    *b = PrimitiveBuilder::<T>::with_capacity(room(a.len())).with_data_type(a.data_type().clone());
    a
}

/// Finishes a boolean builder and starts it again with room for as many values.
pub fn boolean(b: &mut BooleanBuilder) -> BooleanArray {
    let a = b.finish();
    *b = BooleanBuilder::with_capacity(room(a.len()));
    a
}

/// Finishes a string or binary builder and starts it again with room for as many values and
/// as many bytes, at most `batch_bytes`.
pub fn bytes<T: ByteArrayType>(
    b: &mut GenericByteBuilder<T>,
    batch_bytes: usize,
) -> GenericByteArray<T> {
    let a = b.finish();
    *b = GenericByteBuilder::<T>::with_capacity(
        room(a.len()),
        room(a.value_data().len().min(batch_bytes)),
    );
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder};

    #[test]
    fn the_next_batch_keeps_the_type_and_gets_the_room() {
        let mut ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        ts.append_value(1);
        let first = primitive(&mut ts);
        ts.append_value(2);
        ts.append_null();
        let second = primitive(&mut ts);
        assert_eq!(second.data_type(), first.data_type());
        assert_eq!((second.len(), second.null_count()), (2, 1));

        let mut dec = Decimal128Builder::new()
            .with_precision_and_scale(12, 2)
            .unwrap();
        dec.append_value(12345);
        let first = primitive(&mut dec);
        dec.append_value(1);
        assert_eq!(primitive(&mut dec).data_type(), first.data_type());

        let mut s = StringBuilder::new();
        s.append_value("x".repeat(800));
        s.append_value("y");
        let first = bytes(&mut s, 100);
        assert_eq!(first.value(1), "y");
        s.append_value("z");
        s.append_null();
        let second = bytes(&mut s, 100);
        assert_eq!(second.value(0), "z");
        assert!(second.is_null(1));

        assert_eq!(room(0), 1);
        assert_eq!(room(800), 901);
    }
}

//! The content digest of a PostgreSQL table: an order-independent multiset hash of its rows.
//!
//! PostgreSQL promises no row order without ORDER BY, and sorting a large table just to hash
//! it would cost more than exporting it. So each row's binary COPY bytes are hashed with
//! SHA-256 and the hashes are *added* (four 64-bit lanes, wrapping): the sum does not depend
//! on the order rows arrive in, and a changed, missing or duplicated row changes it. Export
//! computes it from the bytes it streams anyway; `verify --against` recomputes it from the
//! live table with the same `COPY`.

use sha2::{Digest as _, Sha256};

pub const PREFIX: &str = "postgresql-v1:";

#[derive(Default, Clone)]
pub struct RowDigest {
    lanes: [u64; 4],
    rows: u64,
}

impl RowDigest {
    pub fn row(&mut self, bytes: &[u8]) {
        let h = Sha256::digest(bytes);
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let word = u64::from_be_bytes(h[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            *lane = lane.wrapping_add(word);
        }
        self.rows += 1;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(&self) -> String {
        let hex: String = self.lanes.iter().map(|l| format!("{l:016x}")).collect();
        format!("{PREFIX}{}:{hex}", self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_but_content_and_multiplicity_do() {
        let mut a = RowDigest::default();
        let mut b = RowDigest::default();
        for r in [&b"x"[..], b"y", b"z"] {
            a.row(r);
        }
        for r in [&b"z"[..], b"x", b"y"] {
            b.row(r);
        }
        assert_eq!(a.finish(), b.finish());
        let mut c = a.clone();
        c.row(b"x");
        assert_ne!(a.finish(), c.finish());
        let mut d = RowDigest::default();
        for r in [&b"x"[..], b"y", b"w"] {
            d.row(r);
        }
        assert_ne!(a.finish(), d.finish());
    }
}

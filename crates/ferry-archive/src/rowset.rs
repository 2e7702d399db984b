//! An order-independent digest of a set of rows (a multiset hash), for comparing tables whose
//! row order is not fixed (PostgreSQL without ORDER BY, a table rebuilt by another engine).
//!
//! Each row's canonical bytes are hashed with SHA-256 and the hashes are *added* (four 64-bit
//! lanes, wrapping): the sum does not depend on the order rows arrive in, and a changed,
//! missing or duplicated row changes it. What the "canonical bytes" of a row are is up to
//! the caller (PostgreSQL uses its binary COPY tuple); both sides of a comparison must agree.

use sha2::{Digest as _, Sha256};

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

    /// `<prefix><rows>:<64 hex digits>`.
    pub fn finish(&self, prefix: &str) -> String {
        let hex: String = self.lanes.iter().map(|l| format!("{l:016x}")).collect();
        format!("{prefix}{}:{hex}", self.rows)
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
        assert_eq!(a.finish(""), b.finish(""));
        let mut c = a.clone();
        c.row(b"x");
        assert_ne!(a.finish(""), c.finish(""));
        let mut d = RowDigest::default();
        for r in [&b"x"[..], b"y", b"w"] {
            d.row(r);
        }
        assert_ne!(a.finish(""), d.finish(""));
    }
}

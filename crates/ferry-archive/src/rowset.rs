//! An order-independent digest of a set of rows (a multiset hash), for comparing tables whose
//! row order is not fixed (PostgreSQL without ORDER BY, a table rebuilt by another engine).
//!
//! Each row's canonical bytes are hashed and the hashes are *added* lane by lane (64-bit lanes,
//! wrapping): the sum does not depend on the order rows arrive in, and a changed, missing or
//! duplicated row changes it. What the "canonical bytes" of a row are is up to the caller
//! (PostgreSQL uses its binary COPY tuple); both sides of a comparison must agree.
//!
//! The row hash is XXH3-128 by default: it only has to make accidental collisions
//! negligible (the archive's integrity rests on the SHA-256 file checksums, not on this), and
//! it is an order of magnitude cheaper than SHA-256 per row, which mattered: the digest was
//! 12 % of a PostgreSQL export's CPU. SHA-256 stays for digests recorded before (the adapters
//! version their digests by prefix and pick the hash a recorded digest was made with).

use sha2::{Digest as _, Sha256};
use twox_hash::XxHash3_128;

/// The hash each row goes through before it is added in.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowHash {
    /// XXH3-128 (seed 0), summed as two 64-bit lanes, high word first: 32 hex digits.
    #[default]
    Xxh3,
    /// SHA-256, summed as four 64-bit big-endian lanes: 64 hex digits.
    Sha256,
}

#[derive(Default, Clone)]
pub struct RowDigest {
    hash: RowHash,
    lanes: [u64; 4],
    rows: u64,
}

impl RowDigest {
    pub fn new(hash: RowHash) -> Self {
        RowDigest {
            hash,
            ..RowDigest::default()
        }
    }

    pub fn hash(&self) -> RowHash {
        self.hash
    }

    pub fn row(&mut self, bytes: &[u8]) {
        match self.hash {
            RowHash::Xxh3 => {
                let h = XxHash3_128::oneshot(bytes);
                self.lanes[0] = self.lanes[0].wrapping_add((h >> 64) as u64);
                self.lanes[1] = self.lanes[1].wrapping_add(h as u64);
            }
            RowHash::Sha256 => {
                let h = Sha256::digest(bytes);
                for (i, lane) in self.lanes.iter_mut().enumerate() {
                    let word = u64::from_be_bytes(h[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                    *lane = lane.wrapping_add(word);
                }
            }
        }
        self.rows += 1;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// `<prefix><rows>:<hex>`: 32 hex digits for XXH3-128, 64 for SHA-256.
    pub fn finish(&self, prefix: &str) -> String {
        let used = match self.hash {
            RowHash::Xxh3 => 2,
            RowHash::Sha256 => 4,
        };
        let hex: String = self.lanes[..used]
            .iter()
            .map(|l| format!("{l:016x}"))
            .collect();
        format!("{prefix}{}:{hex}", self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_but_content_and_multiplicity_do() {
        for hash in [RowHash::Xxh3, RowHash::Sha256] {
            let mut a = RowDigest::new(hash);
            let mut b = RowDigest::new(hash);
            for r in [&b"x"[..], b"y", b"z"] {
                a.row(r);
            }
            for r in [&b"z"[..], b"x", b"y"] {
                b.row(r);
            }
            assert_eq!(a.finish(""), b.finish(""), "{hash:?}");
            let mut c = a.clone();
            c.row(b"x");
            assert_ne!(a.finish(""), c.finish(""), "{hash:?}");
            let mut d = RowDigest::new(hash);
            for r in [&b"x"[..], b"y", b"w"] {
                d.row(r);
            }
            assert_ne!(a.finish(""), d.finish(""), "{hash:?}");
        }
    }

    /// One row's digest is that row's hash, so the encoding can be checked against the
    /// reference tools (`xxhsum -H2`, `sha256sum`) without ferry.
    #[test]
    fn a_single_row_digest_is_the_reference_hash_of_that_row() {
        let mut x = RowDigest::new(RowHash::Xxh3);
        x.row(b"ferry");
        assert_eq!(x.finish("p:"), "p:1:85ca3a0dfcfe59849331f43fcdbd2eb8");
        let mut s = RowDigest::new(RowHash::Sha256);
        s.row(b"ferry");
        assert_eq!(
            s.finish(""),
            "1:e9087d0b20d80d3e12bc8530d883d7ad9c1eb3ebc5cb61824a2b460816503797"
        );
        assert_eq!(RowDigest::default().hash(), RowHash::Xxh3);
    }
}

//! SHA-256 computed as bytes pass through, so no file is ever read twice just to hash it.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the lower-case hex digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `from` into `to`, returning the hex SHA-256 and the byte count of what was copied.
pub fn copy_hashed(
    from: &mut (impl Read + ?Sized),
    to: &mut impl Write,
) -> std::io::Result<(String, u64)> {
    let mut hw = HashingWriter::new(to);
    std::io::copy(from, &mut hw)?;
    hw.flush()?;
    let (_, sha, n) = hw.finish();
    Ok((sha, n))
}

/// Hex SHA-256 and size of a file's content.
pub fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    copy_hashed(&mut f, &mut std::io::sink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_passes_through() {
        let mut out = Vec::new();
        let (sha, n) = copy_hashed(&mut &b"abc"[..], &mut out).unwrap();
        assert_eq!(n, 3);
        assert_eq!(out, b"abc");
        // FIPS 180-2 test vector.
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

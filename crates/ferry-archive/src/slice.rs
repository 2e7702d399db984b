//! A part's bytes as the Parquet reader sees them: a file of its own, or the stretch of a
//! tar file that holds the entry.
//!
//! Reading a tar file's parts where they lie, instead of copying each to a spool first,
//! saves writing and reading the whole archive once more. Every read is positional
//! (`pread`), so the handles of one tar file that several load workers decode at once never
//! share, or move, a file offset; and a read never leaves its stretch, so a damaged footer
//! cannot make the decoder read the next entry's bytes.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

/// `len` bytes of `file` from `offset` on.
#[derive(Clone)]
pub struct Slice {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl Slice {
    /// A stretch of a file another slice may share.
    pub fn within(file: Arc<File>, offset: u64, len: u64) -> Slice {
        Slice { file, offset, len }
    }

    fn past_end(&self, start: u64, length: u64) -> ParquetError {
        ParquetError::EOF(format!(
            "{length} bytes at {start} are past the part's end ({} bytes)",
            self.len
        ))
    }
}

impl Length for Slice {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Slice {
    type T = std::io::BufReader<SliceReader>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        if start > self.len {
            return Err(self.past_end(start, 0));
        }
        Ok(std::io::BufReader::new(SliceReader {
            file: self.file.clone(),
            pos: self.offset + start,
            end: self.offset + self.len,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let end = start.checked_add(length as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(self.past_end(start, length as u64));
        }
        let mut buf = vec![0; length];
        self.file.read_exact_at(&mut buf, self.offset + start)?;
        Ok(buf.into())
    }
}

/// Reads a slice from a position up to its end.
pub struct SliceReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for SliceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_stay_inside_the_stretch() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        let s = Slice::within(Arc::new(f), 2, 5);
        assert_eq!(s.len(), 5);
        assert_eq!(&s.get_bytes(1, 3).unwrap()[..], b"345");
        assert!(s.get_bytes(3, 3).is_err(), "read past the slice's end");
        let mut rest = Vec::new();
        s.get_read(1).unwrap().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"3456");
        assert!(s.get_read(6).is_err());
    }
}

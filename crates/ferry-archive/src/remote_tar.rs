//! An archive on an object store, read as the tar stream it would have been.
//!
//! The objects under the prefix are listed once and presented to the tar reader in the order
//! an export writes them: the envelope, the prelude and its signature, the data parts, then
//! the manifest's signature and the manifest. So every check the tar reader makes (checksums
//! as the bytes arrive, sizes, rows, signatures, decryption, entries the manifest does not
//! list) applies to an object store unchanged, and each part is fetched as one stream.
//!
//! Two objects are in flight: while the reader consumes one, the next data part is already
//! downloading, into an unnamed temporary file, on a thread of its own, so the visit of one
//! part (a COPY, an insert loop) overlaps the transfer of the next. Memory stays bounded; the
//! disk holds at most that one part besides the reader's own spool. The bytes the reader
//! sees, and so every checksum, are the same either way.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::error::{ArchiveError, Result};
use crate::location::Remote;
use crate::reader::{MANIFEST, PRELUDE};

pub(crate) struct RemoteTar {
    remote: Arc<dyn Remote>,
    /// Entries still to send, in order, with their sizes.
    entries: VecDeque<(String, u64)>,
    /// The next data part, downloading into a temporary file.
    next: Option<Prefetch>,
    /// The header, or the padding and end blocks, waiting to be read.
    pending: Vec<u8>,
    pending_at: usize,
    /// The object being sent, and how many of its bytes remain.
    body: Option<(Box<dyn Read + Send>, u64, u64, String)>,
    ended: bool,
}

/// Where an entry goes in the stream: what a reader must see first comes first.
fn rank(name: &str) -> u8 {
    let bare = name.strip_suffix(crate::seal::SUFFIX).unwrap_or(name);
    let sig = crate::sign::SUFFIX;
    if bare == crate::seal::ENVELOPE {
        0
    } else if name == crate::seal::KEY_ENTRY {
        1
    } else if bare == PRELUDE {
        2
    } else if bare == format!("{PRELUDE}{sig}") {
        3
    } else if bare == format!("{MANIFEST}{sig}") {
        5
    } else if bare == MANIFEST {
        6
    } else {
        4
    }
}

impl RemoteTar {
    /// Lists the archive. One without `manifest.json` is refused here, before any part is
    /// fetched: it is an export that did not finish, or not an archive at all.
    pub(crate) fn open(remote: Arc<dyn Remote>) -> Result<RemoteTar> {
        let url = remote.url().to_owned();
        let mut entries = remote.list().map_err(|e| ArchiveError::io(&url, e))?;
        if entries.is_empty() {
            return Err(ArchiveError::BadEntry {
                path: url,
                reason: "no archive here (no objects under this prefix)".into(),
            });
        }
        if !entries.iter().any(|(n, _)| rank(n) == 6) {
            return Err(ArchiveError::BadEntry {
                path: url,
                reason: "incomplete archive: it has no manifest.json (an export that did not finish; exporting to this prefix again removes it)".into(),
            });
        }
        entries.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
        Ok(RemoteTar {
            remote,
            entries: entries.into(),
            next: None,
            pending: Vec::new(),
            pending_at: 0,
            body: None,
            ended: false,
        })
    }

    /// Queues the next header (and opens its object), or the end of the archive.
    fn next_entry(&mut self) -> std::io::Result<bool> {
        let Some((name, size)) = self.entries.pop_front() else {
            if self.ended {
                return Ok(false);
            }
            self.ended = true;
            self.pending = vec![0; 1024];
            self.pending_at = 0;
            return Ok(true);
        };
        let mut header = tar::Header::new_ustar();
        header.set_path(&name)?;
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        self.pending = header.as_bytes().to_vec();
        self.pending_at = 0;
        let body: Box<dyn Read + Send> = match self.next.take() {
            Some(p) if p.name == name && p.handle.is_some() => Box::new(p.finish()?),
            _ => self.remote.open(&name)?,
        };
        self.body = Some((body, size, size, name));
        if let Some((next, _)) = self.entries.front()
            && rank(next) == 4
        {
            self.next = Some(Prefetch::start(self.remote.clone(), next.clone()));
        }
        Ok(true)
    }
}

/// One object downloading into an unnamed temporary file.
struct Prefetch {
    name: String,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<std::io::Result<File>>>,
}

impl Prefetch {
    fn start(remote: Arc<dyn Remote>, name: String) -> Prefetch {
        let stop = Arc::new(AtomicBool::new(false));
        let (entry, halt) = (name.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("ferry-prefetch".into())
            .spawn(move || {
                let mut body = remote.open(&entry)?;
                let mut file = tempfile::tempfile()?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    if halt.load(Ordering::Relaxed) {
                        return Err(std::io::Error::other("stopped"));
                    }
                    let n = body.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&buf[..n])?;
                }
                file.rewind()?;
                Ok(file)
            })
            .ok();
        Prefetch { name, stop, handle }
    }

    /// The downloaded object, once it is all there.
    fn finish(mut self) -> std::io::Result<File> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other(format!(
                "{}: the download thread panicked",
                self.name
            ))),
            None => Err(std::io::Error::other(format!(
                "{}: no thread for the download",
                self.name
            ))),
        }
    }
}

impl Drop for Prefetch {
    /// A reader that stops early (an error, an interruption) stops the download too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Read for RemoteTar {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pending_at < self.pending.len() {
                let n = (self.pending.len() - self.pending_at).min(buf.len());
                buf[..n].copy_from_slice(&self.pending[self.pending_at..self.pending_at + n]);
                self.pending_at += n;
                return Ok(n);
            }
            if let Some((body, left, _, name)) = &mut self.body {
                if *left > 0 {
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = body.read(&mut buf[..want])?;
                    if n == 0 {
                        // The object is shorter than it was listed: changed while read.
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("{name}: the object ended early; was it changed while read?"),
                        ));
                    }
                    *left -= n as u64;
                    return Ok(n);
                }
                // Pad the entry to a whole block.
                let size = self.body.take().map_or(0, |(_, _, size, _)| size);
                self.pending = vec![0; ((512 - size % 512) % 512) as usize];
                self.pending_at = 0;
                continue;
            }
            if !self.next_entry()? {
                return Ok(0);
            }
        }
    }
}

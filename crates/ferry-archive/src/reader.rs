//! Reading an archive in one pass, from a directory, a tar file or a tar stream.
//!
//! Reading is push-style: [`read`] walks the archive and calls a [`Visitor`] for the prelude,
//! for each data part, and for each problem it finds. The importer's visitor stops at the first
//! problem; `verify`'s visitor collects them all. One traversal therefore serves both, and
//! the checks cannot drift apart.
//!
//! A directory is read largest table first, each table's parts in part order, and each part
//! is checksummed *before* it is visited.
//! A tar stream cannot be rewound and its manifest comes last, so each part is spooled to a
//! temporary file (hashing as it goes), visited, and deleted; the checksums, sizes and row
//! counts are compared once `manifest.json` arrives. An importer must therefore treat the
//! return of [`read`] as the gate before it commits. A tar *file* is read the same way, except
//! that a part is hashed as it passes and then decoded where it lies ([`crate::slice`]), as a
//! directory's parts are; only when a signature is required, or the archive is encrypted, is
//! each part spooled, so that the bytes checked are the bytes decoded. Without that, as for a
//! directory, a file rewritten in place while it is read (not by ferry, which writes to a
//! temporary name and renames) could be decoded from other bytes than were hashed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::error::{ArchiveError, Result};
use crate::hash::copy_hashed;
use crate::location::Location;
use crate::manifest::{DataFile, Manifest, Stage, Table, check_entry_path, table_id_of_path};
use crate::slice::Slice;
use crate::types::arrow_schema_for;

pub const PRELUDE: &str = "prelude.json";
pub const MANIFEST: &str = "manifest.json";

/// What the archive reader reports to its consumer.
pub trait Visitor {
    type Error: From<ArchiveError>;

    /// Called once, before any part, with the prelude (schema, no files). A visitor that
    /// needs only the parts leaves it as is.
    fn prelude(&mut self, _prelude: &Manifest) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Called once per data part, in archive order.
    fn part(&mut self, table: &Table, part: &Part<'_>) -> Result<(), Self::Error>;

    /// A problem with the archive. The default stops the read; `verify` collects instead.
    fn problem(&mut self, problem: ArchiveError) -> Result<(), Self::Error> {
        Err(problem.into())
    }
}

/// One data part, readable as record batches.
pub struct Part<'a> {
    pub path: &'a str,
    /// The bytes that were hashed, opened once: a directory's part by the handle it was
    /// hashed through, a spooled copy, or the entry's stretch of a tar file.
    file: Slice,
    table: &'a Table,
    /// SHA-256 of the part's bytes as read (checked against the manifest before the visit
    /// for a directory, after the stream for a tar): what a resumed import compares with
    /// the part it loaded before.
    sha256: &'a str,
}

/// Anything that yields a part's record batches: a [`Part`] during the visit, or a
/// [`DetachedPart`] handed to another thread.
pub trait PartData {
    /// The part's path inside the archive, for messages.
    fn path(&self) -> &str;
    /// Opens the part for decoding, after checking that its Arrow schema is the one the
    /// manifest's logical types prescribe.
    fn batches(&self, batch_size: usize) -> Result<Batches>;
}

impl Part<'_> {
    /// SHA-256 (hex) of the part's bytes as read.
    pub fn sha256(&self) -> &str {
        self.sha256
    }

    /// The number of rows the file's footer declares.
    pub fn footer_rows(&self) -> Result<u64> {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(self.file.clone()).map_err(|source| {
                ArchiveError::Parquet {
                    path: self.path.to_owned(),
                    source,
                }
            })?;
        Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
    }

    /// Keeps the part readable after the visit returns, so another thread can load it. The
    /// file is opened now: a tar stream's spooled copy is deleted when the visit returns,
    /// and the open handle is what keeps its bytes.
    pub fn detach(&self) -> Result<DetachedPart> {
        Ok(DetachedPart {
            path: self.path.to_owned(),
            file: self.file.clone(),
            table: self.table.clone(),
            sha256: self.sha256.to_owned(),
        })
    }
}

impl PartData for Part<'_> {
    fn path(&self) -> &str {
        self.path
    }

    fn batches(&self, batch_size: usize) -> Result<Batches> {
        open_batches(self.path, self.file.clone(), self.table, batch_size)
    }
}

/// A part that outlives its visit (see [`Part::detach`]).
pub struct DetachedPart {
    path: String,
    file: Slice,
    table: Table,
    sha256: String,
}

impl DetachedPart {
    /// SHA-256 (hex) of the part's bytes as read.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

impl PartData for DetachedPart {
    fn path(&self) -> &str {
        &self.path
    }

    fn batches(&self, batch_size: usize) -> Result<Batches> {
        open_batches(&self.path, self.file.clone(), &self.table, batch_size)
    }
}

fn open_batches(path: &str, file: Slice, table: &Table, batch_size: usize) -> Result<Batches> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| ArchiveError::Parquet {
            path: path.to_owned(),
            source,
        })?;
    check_schema(path, table, builder.schema())?;
    // Rows per batch from the footer's widest row group, so that a batch of wide rows
    // holds about BATCH_BYTES, not batch_size times a large value.
    let widest_row = builder
        .metadata()
        .row_groups()
        .iter()
        .filter(|rg| rg.num_rows() > 0)
        .map(|rg| rg.total_byte_size().max(0) as u64 / rg.num_rows() as u64)
        .max()
        .unwrap_or(0);
    let rows = match widest_row {
        0 => batch_size.max(1),
        w => usize::try_from(crate::limits::BATCH_BYTES / w)
            .unwrap_or(usize::MAX)
            .clamp(1, batch_size.max(1)),
    };
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let inner = builder
        .with_batch_size(rows)
        .build()
        .map_err(|source| ArchiveError::Parquet {
            path: path.to_owned(),
            source,
        })?;
    Ok(Batches {
        inner: Some(inner),
        path: path.to_owned(),
        columns,
        max_value: crate::limits::get().value_bytes,
        rows: 0,
    })
}

/// A part's record batches, checked as they are decoded: the run stops at the next batch
/// once it is interrupted, and a value larger than the limit (`--max-value-mb`) is refused
/// with its column and row, before a consumer copies it again.
pub struct Batches {
    /// `None` once the decoder has failed.
    inner: Option<ParquetRecordBatchReader>,
    path: String,
    columns: Vec<String>,
    max_value: u64,
    /// Rows already returned, for the row number in messages.
    rows: u64,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if let Err(e) = crate::interrupt::check() {
            return Some(Err(e));
        }
        let inner = self.inner.as_mut()?;
        let batch = match quiet_unwind(|| inner.next()) {
            Ok(None) => return None,
            Ok(Some(Ok(b))) => b,
            Ok(Some(Err(source))) => {
                return Some(Err(ArchiveError::Arrow {
                    path: self.path.clone(),
                    source,
                }));
            }
            Err(panic) => {
                // The decoder is in an unknown state: this part is not read any further.
                self.inner = None;
                return Some(Err(ArchiveError::BadEntry {
                    path: self.path.clone(),
                    reason: format!("corrupt Parquet data: the decoder failed ({panic})"),
                }));
            }
        };
        for (i, col) in batch.columns().iter().enumerate() {
            if let Some((row, len)) = widest_value(col.as_ref())
                && len > self.max_value
            {
                return Some(Err(ArchiveError::Limit {
                    path: self.path.clone(),
                    what: format!(
                        "column {}, row {}: a value of {len} bytes",
                        self.columns.get(i).map_or("?", String::as_str),
                        self.rows + row as u64 + 1
                    ),
                    limit: format!("{} MiB", self.max_value / crate::limits::MIB),
                    flag: "--max-value-mb",
                }));
            }
        }
        self.rows += batch.num_rows() as u64;
        Some(Ok(batch))
    }
}

thread_local! {
    /// Set while this thread runs the Parquet decoder under [`quiet_unwind`]; the binary's
    /// panic hook stays silent then (see [`decoding`]).
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside the Parquet decoder, whose panics on corrupt input are
/// caught and reported as one error naming the part. A panic hook calls this to keep such a
/// panic off stderr.
pub fn decoding() -> bool {
    DECODING.with(|d| d.get())
}

/// Runs the Parquet decoder, turning a panic into an error message. The decoder is meant
/// to return errors on corrupt input, but some corruptions (checked only after decoding, in
/// the tar form, where the manifest with the checksums comes last) reach assertions inside
/// arrow; a corrupt archive must give one line, never a crash.
fn quiet_unwind<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    DECODING.with(|d| d.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.with(|d| d.set(false));
    result.map_err(|payload| {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        crate::clip(&text)
    })
}

/// The longest value of a string or binary column: its row and length in bytes.
fn widest_value(col: &dyn arrow_array::Array) -> Option<(usize, u64)> {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;
    fn widest<O: arrow_array::OffsetSizeTrait>(offsets: &[O]) -> Option<(usize, u64)> {
        offsets
            .windows(2)
            .enumerate()
            .map(|(row, w)| (row, (w[1] - w[0]).as_usize() as u64))
            .max_by_key(|&(_, len)| len)
    }
    match col.data_type() {
        DataType::Utf8 => widest(col.as_string::<i32>().value_offsets()),
        DataType::LargeUtf8 => widest(col.as_string::<i64>().value_offsets()),
        DataType::Binary => widest(col.as_binary::<i32>().value_offsets()),
        DataType::LargeBinary => widest(col.as_binary::<i64>().value_offsets()),
        // A list of strings (a PostgreSQL text[]): the bytes of each row's elements together,
        // as the literal it was carried as before.
        DataType::List(f) if f.data_type() == &DataType::Utf8 => {
            let list = col.as_list::<i32>();
            let strings = list.values().as_string::<i32>().value_offsets();
            list.value_offsets()
                .windows(2)
                .enumerate()
                .map(|(row, w)| {
                    let (from, to) = (w[0].max(0) as usize, w[1].max(0) as usize);
                    let bytes = strings
                        .get(to)
                        .zip(strings.get(from))
                        .map_or(0, |(t, f)| t - f);
                    (row, bytes.max(0) as u64)
                })
                .max_by_key(|&(_, len)| len)
        }
        _ => None,
    }
}

fn check_schema(path: &str, table: &Table, actual: &arrow_schema::SchemaRef) -> Result<()> {
    let fields: Vec<_> = table
        .data_fields()
        .into_iter()
        .map(|(n, t)| (n, t, true))
        .collect();
    let expected = arrow_schema_for(&fields);
    let names = |s: &arrow_schema::Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
    };
    if names(&expected) != names(actual) {
        return Err(ArchiveError::BadEntry {
            path: path.to_owned(),
            reason: format!(
                "columns {:?} do not match the manifest's {:?} for table {}",
                names(actual),
                names(&expected),
                table.display_name()
            ),
        });
    }
    Ok(())
}

/// Reads the archive at `location`, reporting to `visitor`. Returns the complete manifest,
/// or `None` when the archive was too damaged to produce one (after reporting why).
pub fn read<V: Visitor>(
    location: &Location,
    visitor: &mut V,
) -> Result<Option<Manifest>, V::Error> {
    match location {
        Location::Dir(root) => read_dir(root, visitor),
        Location::Tar(path) => {
            let file = File::open(path).map_err(|e| ArchiveError::io(path.display(), e))?;
            // The stream reads a duplicate of this handle, which shares its file offset: that
            // is safe only because parts are decoded through this one by position (pread),
            // which neither uses nor moves the offset. A pipe or a device named *.tar cannot
            // be read by position: it is read as a stream, its parts spooled.
            let seekable = file
                .metadata()
                .map_err(|e| ArchiveError::io(path.display(), e))?
                .is_file();
            let stream = file
                .try_clone()
                .map_err(|e| ArchiveError::io(path.display(), e))?;
            read_tar(
                &path.display().to_string(),
                std::io::BufReader::with_capacity(1 << 20, stream),
                seekable.then(|| std::sync::Arc::new(file)).as_ref(),
                visitor,
            )
        }
        Location::Stdio => read_tar("<stdin>", std::io::stdin().lock(), None, visitor),
        Location::Remote(r) => {
            let stream = crate::remote_tar::RemoteTar::open(r.0.clone())?;
            read_tar(r.0.url(), stream, None, visitor)
        }
    }
}

/// Reads and parses the manifest alone (for `inspect`). For a tar this reads the whole
/// stream, since the manifest is its last entry.
pub fn read_manifest(location: &Location) -> Result<Manifest> {
    struct Skip;
    impl Visitor for Skip {
        type Error = ArchiveError;
        fn part(&mut self, _: &Table, _: &Part<'_>) -> Result<()> {
            Ok(())
        }
    }
    if let Location::Dir(root) = location {
        let dir = DirArchive::unlock(root)?;
        let path = root.join(dir.stored(MANIFEST));
        if !path.is_file() {
            return Err(ArchiveError::io(
                path.display(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let bytes = read_document(MANIFEST, dir.open(MANIFEST)?)?;
        check_signature_file(&dir, MANIFEST, &bytes)?;
        return Manifest::from_json(MANIFEST, &bytes);
    }
    read(location, &mut Skip)?.ok_or_else(|| ArchiveError::Truncated {
        path: location.display(),
    })
}

/// Reads a manifest document, refusing one over the size limit before holding it: the bytes
/// are read up to the limit and not one more.
/// Whether `path` is one of the signature entries a 2.x archive may carry.
fn is_signature_entry(path: &str, m: &Manifest) -> bool {
    m.format_version.starts_with("2.")
        && (path == format!("{PRELUDE}{}", crate::sign::SUFFIX)
            || path == format!("{MANIFEST}{}", crate::sign::SUFFIX))
}

/// With a key required (`crate::sign::require`), checks a directory archive's document
/// against its signature file; records who signed the manifest either way.
fn check_signature_file(dir: &DirArchive, name: &str, bytes: &[u8]) -> Result<()> {
    let sig_name = format!("{name}{}", crate::sign::SUFFIX);
    let sig_path = dir.root.join(dir.stored(&sig_name));
    let sig = match std::fs::symlink_metadata(&sig_path) {
        Ok(m) if m.file_type().is_file() => Some(read_document(&sig_name, dir.open(&sig_name)?)?),
        _ => None,
    };
    check_signature(name, bytes, sig.as_deref())
}

/// A directory archive, and its keys when it is encrypted.
struct DirArchive<'a> {
    root: &'a Path,
    keys: Option<crate::seal::Unsealer>,
}

impl<'a> DirArchive<'a> {
    /// Reads the envelope, if there is one, and unlocks the archive with the keys given.
    fn unlock(root: &'a Path) -> Result<DirArchive<'a>> {
        crate::seal::saw_envelope(None);
        let envelope_path = root.join(crate::seal::ENVELOPE);
        if std::fs::symlink_metadata(&envelope_path).is_err() {
            return Ok(DirArchive { root, keys: None });
        }
        let regular = |rel: &str| -> Result<File> {
            open_no_follow(&root.join(rel)).map_err(|e| ArchiveError::io(rel, e))
        };
        let bytes = read_document(crate::seal::ENVELOPE, regular(crate::seal::ENVELOPE)?)?;
        let envelope =
            crate::seal::Envelope::from_json(&bytes).map_err(|reason| ArchiveError::BadEntry {
                path: crate::seal::ENVELOPE.to_owned(),
                reason,
            })?;
        crate::seal::saw_envelope(Some(envelope.clone()));
        let key = match std::fs::symlink_metadata(root.join(crate::seal::KEY_ENTRY)) {
            Ok(_) => Some(read_document(
                crate::seal::KEY_ENTRY,
                regular(crate::seal::KEY_ENTRY)?,
            )?),
            Err(_) => None,
        };
        let name = root.display().to_string();
        let keys = crate::seal::unlock(&name, &envelope, key.as_deref())
            .map_err(ArchiveError::Encryption)?;
        Ok(DirArchive {
            root,
            keys: Some(keys),
        })
    }

    /// The name `rel` is stored under.
    fn stored(&self, rel: &str) -> String {
        match self.keys {
            Some(_) => format!("{rel}{}", crate::seal::SUFFIX),
            None => rel.to_owned(),
        }
    }

    /// Whether the file at `stored` (as found on disk) is the entry an archive may hold,
    /// given that `allowed` says which clear names it may hold.
    fn allows(&self, stored: &str, allowed: impl Fn(&str) -> bool) -> bool {
        match self.keys {
            None => allowed(stored),
            Some(_) => {
                stored == crate::seal::ENVELOPE
                    || stored == crate::seal::KEY_ENTRY
                    || stored
                        .strip_suffix(crate::seal::SUFFIX)
                        .is_some_and(allowed)
            }
        }
    }

    /// The clear bytes of entry `rel`, read without following a link.
    fn open(&self, rel: &str) -> Result<Box<dyn Read>> {
        let file = open_no_follow(&self.root.join(self.stored(rel)))
            .map_err(|e| ArchiveError::io(rel, e))?;
        match &self.keys {
            None => Ok(Box::new(file)),
            Some(k) => Ok(Box::new(
                k.open(rel, std::io::BufReader::with_capacity(1 << 16, file))
                    .map_err(ArchiveError::Encryption)?,
            )),
        }
    }
}

/// The one signature rule for every container: with a key required, the document must
/// come with a valid signature by that key.
fn check_signature(name: &str, bytes: &[u8], sig: Option<&[u8]>) -> Result<()> {
    if name == MANIFEST {
        crate::sign::saw_signer(sig.and_then(crate::sign::signer_of));
    }
    let Some(v) = crate::sign::required() else {
        return Ok(());
    };
    let sig = sig.ok_or_else(|| {
        ArchiveError::Signature(format!(
            "{name} is not signed (no {name}{}); the archive was refused",
            crate::sign::SUFFIX
        ))
    })?;
    v.verify(name, bytes, sig).map_err(ArchiveError::Signature)
}

fn read_document(name: &str, input: impl Read) -> Result<Vec<u8>> {
    let limit = crate::limits::get().document_bytes;
    let mut bytes = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ArchiveError::io(name, e))?;
    if bytes.len() as u64 > limit {
        return Err(ArchiveError::Limit {
            path: name.to_owned(),
            what: format!("more than {limit} bytes"),
            limit: format!("{} MiB", limit / crate::limits::MIB),
            flag: "--max-manifest-mb",
        });
    }
    Ok(bytes)
}

fn parse_doc(name: &str, bytes: &[u8], stage: Stage) -> Result<Manifest> {
    let m = Manifest::from_json(name, bytes)?;
    if m.stage != stage {
        return Err(ArchiveError::BadManifest {
            file: name.to_owned(),
            reason: format!("stage is {:?}, expected {:?}", m.stage, stage),
        });
    }
    Ok(m)
}

/// The prelude must describe exactly the schema the manifest describes.
pub(crate) fn check_prelude_matches(prelude: &Manifest, manifest: &Manifest) -> Result<()> {
    let strip = |m: &Manifest| {
        let mut m = m.clone();
        m.stage = Stage::Complete;
        m.warnings.clear();
        for t in &mut m.tables {
            t.rows = None;
            t.content_digest = None;
            t.files.clear();
        }
        m
    };
    if strip(prelude) != strip(manifest) {
        return Err(ArchiveError::BadManifest {
            file: PRELUDE.to_owned(),
            reason: "prelude.json and manifest.json describe different schemas".into(),
        });
    }
    Ok(())
}

fn read_dir<V: Visitor>(root: &Path, visitor: &mut V) -> Result<Option<Manifest>, V::Error> {
    if !root.is_dir() {
        return Err(ArchiveError::io(
            root.display(),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such archive directory"),
        )
        .into());
    }
    let dir = match DirArchive::unlock(root) {
        Ok(d) => d,
        Err(e) => {
            visitor.problem(e)?;
            return Ok(None);
        }
    };
    let load = |name: &str, stage| -> Result<Manifest> {
        let path = root.join(dir.stored(name));
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(ArchiveError::BadEntry {
                    path: name.to_owned(),
                    reason: "not a regular file".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArchiveError::BadEntry {
                    path: name.to_owned(),
                    reason: "missing: every archive has this file".into(),
                });
            }
            _ => {}
        }
        let bytes = read_document(name, dir.open(name)?)?;
        check_signature_file(&dir, name, &bytes)?;
        parse_doc(name, &bytes, stage)
    };
    let manifest = match load(MANIFEST, Stage::Complete) {
        Ok(m) => m,
        Err(e) => {
            visitor.problem(e)?;
            return Ok(None);
        }
    };
    let prelude = match load(PRELUDE, Stage::Prelude) {
        Ok(p) => {
            if let Err(e) = check_prelude_matches(&p, &manifest) {
                visitor.problem(e)?;
            }
            p
        }
        Err(e) => {
            visitor.problem(e)?;
            manifest.clone()
        }
    };
    visitor.prelude(&prelude)?;

    // Everything on disk must be either a manifest document or a listed file.
    let listed: HashSet<&str> = manifest
        .tables
        .iter()
        .flat_map(|t| t.files.iter().map(|f| f.path.as_str()))
        .collect();
    for (rel, kind) in walk(root).map_err(|e| ArchiveError::io(root.display(), e))? {
        if !kind.is_file() && !kind.is_dir() {
            visitor.problem(ArchiveError::BadEntry {
                path: rel,
                reason: "links and special files are not allowed in an archive".into(),
            })?;
        } else if kind.is_file()
            && !dir.allows(&rel, |r| {
                r == MANIFEST
                    || r == PRELUDE
                    || is_signature_entry(r, &manifest)
                    || listed.contains(r)
            })
        {
            visitor.problem(ArchiveError::Unexpected { path: rel })?;
        }
    }

    // Spooled: an encrypted part (Parquet needs to seek in the clear bytes), and any part
    // when a signature is required.
    let private = match crate::sign::required().is_some() || dir.keys.is_some() {
        true => Some(
            tempfile::Builder::new()
                .prefix(&crate::leftover::spool_prefix())
                .tempdir()
                .map_err(|e| ArchiveError::io("temporary directory", e))?,
        ),
        false => None,
    };
    // The largest tables first (by their files' bytes; the manifest's order among equals): a
    // parallel import starts each table as it is visited, and the one that takes longest to
    // load and index should not be found last, as it is in a manifest in schema order.
    let mut tables: Vec<&Table> = manifest.tables.iter().collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.files.iter().map(|f| f.bytes).sum::<u64>()));
    for table in tables {
        for f in &table.files {
            let stored = dir.stored(&f.path);
            let abs = root.join(&stored);
            if !plain_path(root, &stored) {
                continue; // a link on the way: reported by the walk, never followed
            }
            match std::fs::symlink_metadata(&abs) {
                Err(_) => {
                    visitor.problem(ArchiveError::Missing {
                        path: f.path.clone(),
                    })?;
                    continue;
                }
                Ok(m) if !m.file_type().is_file() => continue, // reported by the walk
                Ok(_) => {}
            }
            // With a signature required, the bytes hashed must be the bytes decoded: each part
            // is copied into a private spool as it is hashed, never opened twice from a
            // directory someone else may change meanwhile (a share, a symlink swap).
            let (file, spooled) = match &private {
                Some(spool) => {
                    let copy = spool.path().join("part.parquet");
                    let mut from = match dir.open(&f.path) {
                        Ok(r) => r,
                        Err(e) => {
                            visitor.problem(e)?;
                            continue;
                        }
                    };
                    let (sha, bytes) = match File::create(&copy)
                        .and_then(|mut out| copy_hashed(&mut from, &mut out))
                    {
                        Ok(done) => done,
                        Err(e) if crate::seal::is_decrypt_error(&e) => {
                            // A sealed part that fails to decrypt part-way: changed or cut.
                            visitor
                                .problem(ArchiveError::Encryption(format!("{}: {e}", f.path)))?;
                            continue;
                        }
                        Err(e) => return Err(ArchiveError::io(&f.path, e).into()),
                    };
                    if !check_file(f, &sha, bytes, visitor)? {
                        continue;
                    }
                    let file = File::open(&copy).map_err(|e| ArchiveError::io(&f.path, e))?;
                    (
                        Slice::within(std::sync::Arc::new(file), 0, bytes),
                        Some(copy),
                    )
                }
                None => {
                    // Hashed through the handle it is then decoded from.
                    let file = File::open(&abs).map_err(|e| ArchiveError::io(&f.path, e))?;
                    let (sha, bytes) = copy_hashed(&mut &file, &mut std::io::sink())
                        .map_err(|e| ArchiveError::io(&f.path, e))?;
                    if !check_file(f, &sha, bytes, visitor)? {
                        continue;
                    }
                    (Slice::within(std::sync::Arc::new(file), 0, bytes), None)
                }
            };
            let part = Part {
                path: &f.path,
                file,
                table,
                // Checked equal to the bytes just hashed.
                sha256: &f.sha256,
            };
            check_footer_rows(&part, f, visitor)?;
            visitor.part(table, &part)?;
            if let Some(copy) = &spooled {
                // A new file for every part: a visitor may hold this one open (detached).
                std::fs::remove_file(copy).map_err(|e| ArchiveError::io(&f.path, e))?;
            }
        }
    }
    Ok(Some(manifest))
}

/// Opens a file without following a final symbolic link.
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// True when no component of `rel` below `root` is a link (or anything but a directory
/// on the way to a file), so that opening it cannot leave the archive.
fn plain_path(root: &Path, rel: &str) -> bool {
    let mut p = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        p.push(part);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if i + 1 < parts.len() && !m.file_type().is_dir() => return false,
            Ok(m) if m.file_type().is_symlink() => return false,
            Ok(_) => {}
            Err(_) => return true, // missing: reported as such
        }
    }
    true
}

/// Compares a file's actual size and digest with its manifest entry; true when they agree.
fn check_file<V: Visitor>(
    f: &DataFile,
    sha: &str,
    bytes: u64,
    visitor: &mut V,
) -> Result<bool, V::Error> {
    if bytes != f.bytes {
        visitor.problem(ArchiveError::Size {
            path: f.path.clone(),
            expected: f.bytes,
            actual: bytes,
        })?;
        return Ok(false);
    }
    if sha != f.sha256 {
        visitor.problem(ArchiveError::Checksum {
            path: f.path.clone(),
            expected: f.sha256.clone(),
            actual: sha.to_owned(),
        })?;
        return Ok(false);
    }
    Ok(true)
}

fn check_footer_rows<V: Visitor>(
    part: &Part<'_>,
    f: &DataFile,
    visitor: &mut V,
) -> Result<(), V::Error> {
    match part.footer_rows() {
        Ok(n) if n != f.rows => visitor.problem(ArchiveError::Rows {
            path: f.path.clone(),
            expected: f.rows,
            actual: n,
        }),
        Ok(_) => Ok(()),
        Err(e) => visitor.problem(e),
    }
}

/// Lists every entry below `root` (not following links), as `/`-separated relative paths.
fn walk(root: &Path) -> std::io::Result<Vec<(String, std::fs::FileType)>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let child = rel.join(entry.file_name());
            let name = child.to_string_lossy().replace('\\', "/");
            if kind.is_dir() {
                stack.push(child);
            }
            out.push((name, kind));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The compression a stream starts with, by its magic bytes.
fn compressed(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 4] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (b"BZh", "bzip2"),
    ];
    MAGIC
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map(|(_, what)| *what)
}

/// What a stream that does not start with a tar header is, when it can tell: importing a
/// README, or the database itself with the arguments swapped, must not end in the tar
/// library's view of its bytes.
fn not_a_tar(head: &[u8]) -> Option<String> {
    if head.starts_with(b"SQLite format 3\0") {
        return Some(
            "it is a SQLite database (the arguments are ARCHIVE then TARGET: ferry import ARCHIVE DATABASE)"
                .into(),
        );
    }
    // Too short to judge (a pipe's first read), or an end-of-archive block: tar decides.
    let header = head.get(..512)?;
    if header.iter().all(|b| *b == 0) {
        return None;
    }
    let recorded = std::str::from_utf8(&header[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let actual: u32 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    if recorded == Some(actual) {
        return None;
    }
    // A tar header pads its fields with NULs; text has none.
    let text = !header.contains(&0) && std::str::from_utf8(header).is_ok();
    Some(if text {
        "it is text, not a tar file".into()
    } else {
        "it is not a tar file (or its first header is damaged)".into()
    })
}

/// What the tar reader remembers of each part until the manifest arrives.
struct Seen {
    sha256: String,
    bytes: u64,
    footer_rows: Option<u64>,
}

/// Reads the tar form from any byte stream; `name` is how messages refer to it.
pub fn read_stream<V: Visitor, R: Read>(
    name: &str,
    input: R,
    visitor: &mut V,
) -> Result<Option<Manifest>, V::Error> {
    read_tar(name, input, None, visitor)
}

/// `in_place`: the tar file `input` reads from its start, when it is one; its parts are
/// then decoded where they lie unless they must be spooled (see the module's essay).
fn read_tar<V: Visitor, R: Read>(
    name: &str,
    input: R,
    in_place: Option<&std::sync::Arc<File>>,
    visitor: &mut V,
) -> Result<Option<Manifest>, V::Error> {
    crate::leftover::sweep(&std::env::temp_dir());
    let spool = tempfile::Builder::new()
        .prefix(&crate::leftover::spool_prefix())
        .tempdir()
        .map_err(|e| ArchiveError::io("temporary directory", e))?;
    // A compressed stream is a common mistake; say so instead of tar's view of its bytes.
    let mut input = std::io::BufReader::with_capacity(1 << 16, input);
    let head = std::io::BufRead::fill_buf(&mut input)
        .map_err(|e| ArchiveError::io(name, e))?
        .to_vec();
    if let Some(what) = compressed(&head) {
        visitor.problem(ArchiveError::BadEntry {
            path: name.to_owned(),
            reason: format!(
                "this is {what}-compressed; decompress it first (an archive is a plain tar, or a directory)"
            ),
        })?;
        return Ok(None);
    }
    if let Some(what) = not_a_tar(&head) {
        visitor.problem(ArchiveError::BadEntry {
            path: name.to_owned(),
            reason: format!("not a ferry archive: {what}"),
        })?;
        return Ok(None);
    }
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(|e| ArchiveError::io(name, e))?;
    let mut prelude: Option<Manifest> = None;
    let mut manifest: Option<Manifest> = None;
    // With a key required, the prelude waits for its signature before anyone acts on it.
    let mut unsigned_prelude: Option<(Manifest, Vec<u8>)> = None;
    let mut manifest_sig: Option<Vec<u8>> = None;
    let prelude_sig_name = format!("{PRELUDE}{}", crate::sign::SUFFIX);
    let manifest_sig_name = format!("{MANIFEST}{}", crate::sign::SUFFIX);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut names: HashSet<String> = HashSet::new();
    // An encrypted archive: its envelope, then (at the first sealed entry) its keys.
    let mut sealed: Option<(crate::seal::Envelope, Option<crate::seal::Unsealer>)> = None;
    let mut first = true;
    crate::seal::saw_envelope(None);
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                visitor.problem(ArchiveError::io(name, e))?;
                return Ok(None);
            }
        };
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = raw_path.strip_prefix("./").unwrap_or(&raw_path).to_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            visitor.problem(ArchiveError::BadEntry {
                path: path.clone(),
                reason: format!("entry type {:?} is not allowed (only regular files)", kind),
            })?;
            continue;
        }
        if let Err(reason) = check_entry_path(&path) {
            visitor.problem(ArchiveError::BadEntry { path, reason })?;
            continue;
        }
        if !names.insert(path.clone()) {
            visitor.problem(ArchiveError::BadEntry {
                path,
                reason: "duplicate entry".into(),
            })?;
            continue;
        }
        if manifest.is_some() {
            visitor.problem(ArchiveError::BadEntry {
                path,
                reason: "entry after manifest.json".into(),
            })?;
            continue;
        }
        let is_first = std::mem::replace(&mut first, false);
        if path == crate::seal::ENVELOPE {
            if !is_first {
                visitor.problem(ArchiveError::BadEntry {
                    path,
                    reason: "not the first entry (an encrypted archive starts with it)".into(),
                })?;
                return Ok(None);
            }
            let envelope = read_document(&path, &mut entry).and_then(|b| {
                crate::seal::Envelope::from_json(&b)
                    .map_err(|reason| ArchiveError::BadEntry { path, reason })
            });
            match envelope {
                Ok(e) => {
                    crate::seal::saw_envelope(Some(e.clone()));
                    sealed = Some((e, None));
                }
                Err(e) => {
                    visitor.problem(e)?;
                    return Ok(None);
                }
            }
            continue;
        }
        let declared = entry.header().size().unwrap_or(0);
        // Where the entry's bytes start in the file (the stream starts at the file's start).
        let data_at = entry.raw_file_position();
        let mut clear_entry;
        let mut sealed_entry;
        let (path, input): (String, &mut dyn Read) = match &mut sealed {
            None if path.ends_with(crate::seal::SUFFIX) => {
                visitor.problem(ArchiveError::BadEntry {
                    path,
                    reason: format!(
                        "an encrypted entry, but the archive does not start with {}",
                        crate::seal::ENVELOPE
                    ),
                })?;
                return Ok(None);
            }
            None => {
                clear_entry = entry;
                (path, &mut clear_entry)
            }
            Some((envelope, keys)) => {
                if path == crate::seal::KEY_ENTRY && keys.is_none() {
                    let unlocked = read_document(&path, &mut entry).and_then(|b| {
                        crate::seal::unlock(name, envelope, Some(&b))
                            .map_err(ArchiveError::Encryption)
                    });
                    match unlocked {
                        Ok(u) => *keys = Some(u),
                        Err(e) => {
                            visitor.problem(e)?;
                            return Ok(None);
                        }
                    }
                    continue;
                }
                if path == crate::seal::KEY_ENTRY {
                    visitor.problem(ArchiveError::BadEntry {
                        path,
                        reason: format!(
                            "not right after {} (where the archive's key must be)",
                            crate::seal::ENVELOPE
                        ),
                    })?;
                    return Ok(None);
                }
                let Some(inner) = path.strip_suffix(crate::seal::SUFFIX) else {
                    visitor.problem(ArchiveError::BadEntry {
                        path,
                        reason: "a clear entry in an encrypted archive".into(),
                    })?;
                    continue;
                };
                if let Err(reason) = check_entry_path(inner) {
                    visitor.problem(ArchiveError::BadEntry { path, reason })?;
                    continue;
                }
                if keys.is_none() {
                    match crate::seal::unlock(name, envelope, None) {
                        Ok(u) => *keys = Some(u),
                        Err(e) => {
                            visitor.problem(ArchiveError::Encryption(e))?;
                            return Ok(None);
                        }
                    }
                }
                let keys = keys.as_ref().expect("unlocked above");
                match keys.open(inner, std::io::BufReader::with_capacity(1 << 16, entry)) {
                    Ok(r) => sealed_entry = r,
                    Err(e) => {
                        visitor.problem(ArchiveError::Encryption(e))?;
                        return Ok(None);
                    }
                }
                (inner.to_owned(), &mut sealed_entry)
            }
        };
        if path == prelude_sig_name || path == manifest_sig_name {
            // Signature entries exist from format 2.0 on; in a 1.x archive they are foreign.
            let version = prelude
                .as_ref()
                .or(unsigned_prelude.as_ref().map(|(p, _)| p))
                .map(|p| p.format_version.as_str());
            if version.is_some_and(|v| v.starts_with("1.")) {
                visitor.problem(ArchiveError::BadEntry {
                    path,
                    reason: "a signature entry in a format 1.x archive".into(),
                })?;
                continue;
            }
            let bytes = match read_document(&path, &mut *input) {
                Ok(b) => b,
                Err(e) => {
                    visitor.problem(e)?;
                    return Ok(None);
                }
            };
            if path == manifest_sig_name {
                manifest_sig = Some(bytes);
                continue;
            }
            let Some((p, doc)) = unsigned_prelude.take() else {
                // Not required, or no prelude before it: a prelude signature means nothing
                // without the document it follows.
                if prelude.is_none() {
                    visitor.problem(ArchiveError::BadEntry {
                        path,
                        reason: "a signature before prelude.json".into(),
                    })?;
                    return Ok(None);
                }
                continue;
            };
            if let Err(e) = check_signature(PRELUDE, &doc, Some(&bytes)) {
                visitor.problem(e)?;
                return Ok(None);
            }
            visitor.prelude(&p)?;
            prelude = Some(p);
            continue;
        }
        if let Some((p, doc)) = unsigned_prelude.take() {
            // The entry after prelude.json is not its signature.
            if let Err(e) = check_signature(PRELUDE, &doc, None) {
                visitor.problem(e)?;
                return Ok(None);
            }
            visitor.prelude(&p)?;
            prelude = Some(p);
        }
        if path == PRELUDE || path == MANIFEST {
            let bytes = match read_document(&path, &mut *input) {
                Ok(b) => b,
                Err(e) => {
                    visitor.problem(e)?;
                    return Ok(None);
                }
            };
            if path == PRELUDE {
                match parse_doc(PRELUDE, &bytes, Stage::Prelude) {
                    Ok(p) if crate::sign::required().is_some() => {
                        unsigned_prelude = Some((p, bytes));
                    }
                    Ok(p) => {
                        visitor.prelude(&p)?;
                        prelude = Some(p);
                    }
                    Err(e) => {
                        visitor.problem(e)?;
                        return Ok(None);
                    }
                }
            } else {
                if let Err(e) = check_signature(MANIFEST, &bytes, manifest_sig.as_deref()) {
                    visitor.problem(e)?;
                    return Ok(None);
                }
                match parse_doc(MANIFEST, &bytes, Stage::Complete) {
                    Ok(m) => manifest = Some(m),
                    Err(e) => {
                        visitor.problem(e)?;
                        return Ok(None);
                    }
                }
            }
            continue;
        }
        let Some(pre) = prelude.as_ref() else {
            visitor.problem(ArchiveError::BadEntry {
                path,
                reason: "data before prelude.json (prelude.json must be the first entry)".into(),
            })?;
            return Ok(None);
        };
        let Some(table) = table_id_of_path(&path).and_then(|id| pre.table(id)) else {
            visitor.problem(ArchiveError::Unexpected { path })?;
            continue;
        };
        let spooled = spool.path().join("part.parquet");
        let in_place = in_place.filter(|_| sealed.is_none() && crate::sign::required().is_none());
        let copied = match in_place {
            Some(_) => copy_hashed(&mut *input, &mut std::io::sink()),
            None => File::create(&spooled).and_then(|mut out| copy_hashed(&mut *input, &mut out)),
        };
        let (sha256, bytes) = match copied {
            Ok(done) => done,
            Err(e) if crate::seal::is_decrypt_error(&e) => {
                visitor.problem(ArchiveError::Encryption(format!("{path}: {e}")))?;
                return Ok(None);
            }
            Err(e) => return Err(ArchiveError::io(&path, e).into()),
        };
        // A sealed entry is shorter in the clear; age itself refuses one cut short.
        if sealed.is_none() && bytes < declared {
            // The stream ended inside this entry: say that, not what its half-file looks like.
            visitor.problem(ArchiveError::Truncated {
                path: name.to_owned(),
            })?;
            return Ok(None);
        }
        let file = match in_place {
            Some(file) => Slice::within(file.clone(), data_at, bytes),
            None => File::open(&spooled)
                .map(|f| Slice::within(std::sync::Arc::new(f), 0, bytes))
                .map_err(|e| ArchiveError::io(&path, e))?,
        };
        let part = Part {
            path: &path,
            file,
            table,
            sha256: &sha256,
        };
        let footer_rows = match part.footer_rows() {
            Ok(n) => Some(n),
            Err(e) => {
                visitor.problem(e)?;
                None
            }
        };
        if footer_rows.is_some() {
            visitor.part(table, &part)?;
        }
        // A new file for every part: a visitor may have detached this one, and its open
        // handle must keep these bytes rather than see the next part written over them.
        if in_place.is_none() {
            std::fs::remove_file(&spooled).map_err(|e| ArchiveError::io(&path, e))?;
        }
        seen.insert(
            path,
            Seen {
                sha256,
                bytes,
                footer_rows,
            },
        );
    }
    let Some(manifest) = manifest else {
        visitor.problem(ArchiveError::Truncated {
            path: name.to_owned(),
        })?;
        return Ok(None);
    };
    match &prelude {
        Some(p) => {
            if let Err(e) = check_prelude_matches(p, &manifest) {
                visitor.problem(e)?;
            }
        }
        None => visitor.problem(ArchiveError::BadEntry {
            path: PRELUDE.to_owned(),
            reason: "missing: every archive has this file".into(),
        })?,
    }
    let mut listed: BTreeMap<&str, &DataFile> = BTreeMap::new();
    for f in manifest.tables.iter().flat_map(|t| t.files.iter()) {
        listed.insert(&f.path, f);
    }
    for (path, f) in &listed {
        match seen.remove(*path) {
            None => visitor.problem(ArchiveError::Missing {
                path: (*path).to_owned(),
            })?,
            Some(s) => {
                if check_file(f, &s.sha256, s.bytes, visitor)?
                    && let Some(n) = s.footer_rows.filter(|n| *n != f.rows)
                {
                    visitor.problem(ArchiveError::Rows {
                        path: f.path.clone(),
                        expected: f.rows,
                        actual: n,
                    })?;
                }
            }
        }
    }
    let mut extra: Vec<_> = seen.into_keys().collect();
    extra.sort();
    for path in extra {
        visitor.problem(ArchiveError::Unexpected { path })?;
    }
    Ok(Some(manifest))
}

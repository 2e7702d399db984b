//! Writing an archive: staged, hashed while written, published in one step.
//!
//! Every Parquet part is first written into a private staging directory beside the target
//! (same filesystem, so publishing is a rename), through a [`HashingWriter`] so the SHA-256 is
//! known the moment the file closes. The directory form renames the whole staging directory
//! into place; the tar forms append each finished part to the tar and delete it, so the disk
//! holds at most the parts in flight (and, in a tar file that leads with its largest table,
//! the other tables' parts until that one is done: [`ArchiveWriter::lead_with`]). Until
//! [`ArchiveWriter::finish`] succeeds nothing exists at the target path; dropping the writer
//! (an error, a panic) removes the staging area, except a resumable export's
//! (`<target>.ferry-resume`, [`ArchiveWriter::create_resumable`]), which stays so that the
//! next run can take over the tables it finished.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{ArchiveError, Result};
use crate::hash::{HashingWriter, hash_file};
use crate::location::Location;
use crate::manifest::{DataFile, Manifest, Stage};
use crate::reader::{MANIFEST, PRELUDE};
use crate::types::arrow_schema_for;

/// Knobs for the Parquet files. The defaults bound the writer's memory to roughly one row
/// group per open table and keep each part small enough to spool when streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    pub zstd_level: i32,
    /// A row group closes at this many rows ...
    pub row_group_rows: usize,
    /// ... or at this many (estimated, encoded) bytes, whichever comes first.
    pub row_group_bytes: usize,
    /// A part file closes at this many rows ...
    pub file_rows: u64,
    /// ... or this many bytes, and the table continues in the next part.
    pub file_bytes: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            zstd_level: 3,
            row_group_rows: 1 << 18,
            // A row group's encoded pages stay in memory until it closes: 16 MiB bounds a
            // table of wide rows (blobs) where 256 Ki rows never come.
            row_group_bytes: 16 << 20,
            file_rows: 10_000_000,
            file_bytes: 256 << 20,
        }
    }
}

impl WriteOptions {
    fn properties(&self) -> Result<WriterProperties> {
        let level = ZstdLevel::try_new(self.zstd_level)
            .map_err(|e| ArchiveError::Aborted(format!("zstd level {}: {e}", self.zstd_level)))?;
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(self.row_group_bytes.max(1)))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by(format!("ferry {}", env!("CARGO_PKG_VERSION")))
            .build())
    }

    /// The options as recorded in the manifest's `options`.
    pub fn record(&self, into: &mut BTreeMap<String, serde_json::Value>) {
        into.insert("zstd_level".into(), self.zstd_level.into());
        into.insert("row_group_rows".into(), self.row_group_rows.into());
        into.insert("row_group_bytes".into(), self.row_group_bytes.into());
        into.insert("file_rows".into(), self.file_rows.into());
        into.insert("file_bytes".into(), self.file_bytes.into());
    }
}

type TarBuilder = tar::Builder<Box<dyn Write + Send>>;

enum Sink {
    /// Parts stay in the staging directory, which becomes the archive.
    Dir { target: PathBuf },
    /// Parts are appended to a tar stream as they finish.
    Tar {
        builder: Option<TarBuilder>,
        /// The temp file behind a `.tar` target, renamed into place at the end.
        temp: Option<tempfile::TempPath>,
        target: Option<PathBuf>,
        mtime: u64,
    },
    /// Parts are uploaded as they finish; `manifest.json`, uploaded last, is the commit.
    Remote(RemoteSink),
}

/// What an export to an object store has uploaded. Dropped before the manifest went up (an
/// error, an interrupt), it deletes every object it put there, so a failed export leaves
/// nothing; a killed one leaves objects without a manifest, which readers refuse as
/// incomplete and the next export to the prefix removes.
///
/// Parts upload in the background while the export goes on writing (at most
/// [`UPLOADS_IN_FLIGHT`] at once); the manifest waits for every one of them.
struct RemoteSink {
    remote: Arc<dyn crate::location::Remote>,
    uploaded: Vec<String>,
    /// Uploads under way: (entry, the thread uploading it and then removing the staged file).
    pending: Vec<(String, std::thread::JoinHandle<std::io::Result<()>>)>,
    committed: bool,
}

/// Parts uploading at once, each with its own multipart pieces in flight.
const UPLOADS_IN_FLIGHT: usize = 2;

impl RemoteSink {
    /// Waits for uploads until at most `left` are under way; the first failure is the error.
    fn settle(&mut self, left: usize) -> Result<()> {
        let mut first = None;
        while self.pending.len() > left {
            let (entry, handle) = self.pending.remove(0);
            let outcome = handle
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the upload thread panicked")));
            if let Err(e) = outcome {
                first.get_or_insert(ArchiveError::io(
                    format!("{}/{entry}", self.remote.url()),
                    e,
                ));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for RemoteSink {
    fn drop(&mut self) {
        // No upload may land after the clean-up below.
        let _ = self.settle(0);
        // Newest first: the manifest (if its upload went through unseen) goes before any part
        // it names, and a clean-up that stops halfway never leaves it behind.
        let newest_first: Vec<String> = self.uploaded.iter().rev().cloned().collect();
        if !self.committed
            && !newest_first.is_empty()
            && let Err(e) = self.remote.delete(&newest_first)
        {
            tracing::warn!(
                "{}: removing the failed export's objects: {e}; the next export there removes them",
                self.remote.url()
            );
        }
    }
}

struct Shared {
    /// Declared before `staging`, so dropped first: background uploads are joined (and a
    /// failed export's objects deleted) while their staged files still exist.
    state: Mutex<State>,
    staging: Staging,
    /// Fixed when the archive starts, so that every entry of it is sealed alike.
    sealer: Option<Arc<crate::seal::Sealer>>,
    options: WriteOptions,
    properties: WriterProperties,
    /// Whether a staged file must reach the disk before it is published. Only a directory
    /// archive keeps its staged files (the staging directory is renamed into place, or kept
    /// for `--resume`); a tar or a store copies each one out and deletes it, and a tar file
    /// is synced once, whole, before its rename. Syncing those staged copies too cost the
    /// `COPY` behind them its wait for the disk: the stream's reader waited for every part.
    sync_staged: bool,
}

struct State {
    sink: Sink,
    /// Files written per table id, in part order.
    files: BTreeMap<String, Vec<DataFile>>,
    failed: bool,
    /// The table whose parts go into a tar file first (see [`ArchiveWriter::lead_with`]),
    /// until it is finished.
    lead: Option<String>,
    /// Other tables' finished parts, staged and waiting for the lead table, in the order
    /// they finished.
    held: Vec<String>,
}

/// Writes one archive. Create it with the prelude (schema, no data), obtain a
/// [`TableWriter`] per table, then [`finish`](ArchiveWriter::finish) with the final manifest.
pub struct ArchiveWriter {
    shared: Arc<Shared>,
    prelude: Manifest,
    masker: Option<Arc<crate::mask::Masker>>,
}

impl ArchiveWriter {
    pub fn create(location: &Location, options: WriteOptions, prelude: Manifest) -> Result<Self> {
        let properties = options.properties()?;
        let mtime = created_mtime(&prelude);
        let (staging, sink) = match location {
            Location::Dir(target) => {
                refuse_existing(target, true)?;
                let staging = Staging::Temp(staging_dir(parent_of(target))?);
                (
                    staging,
                    Sink::Dir {
                        target: target.clone(),
                    },
                )
            }
            Location::Tar(target) => {
                refuse_existing(target, false)?;
                let parent = parent_of(target);
                let staging = Staging::Temp(staging_dir(parent)?);
                let temp = crate::leftover::builder(".tar.partial", false)
                    .tempfile_in(parent)
                    .map_err(|e| ArchiveError::io(parent.display(), e))?;
                let (file, temp) = temp.into_parts();
                let out: Box<dyn Write + Send> = Box::new(BufWriter::with_capacity(1 << 20, file));
                (
                    staging,
                    Sink::Tar {
                        builder: Some(tar_builder(out)),
                        temp: Some(temp),
                        target: Some(target.clone()),
                        mtime,
                    },
                )
            }
            Location::Stdio => {
                let out: Box<dyn Write + Send> =
                    Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout()));
                return Self::create_stream(out, options, prelude);
            }
            Location::Remote(r) => {
                prepare_remote(&*r.0)?;
                let staging = Staging::Temp(staging_dir(&std::env::temp_dir())?);
                (
                    staging,
                    Sink::Remote(RemoteSink {
                        remote: r.0.clone(),
                        uploaded: Vec::new(),
                        pending: Vec::new(),
                        committed: false,
                    }),
                )
            }
        };
        Self::start(staging, sink, options, properties, prelude)
    }

    /// A directory archive whose staging directory is `<target>.ferry-resume` (see
    /// [`resume_dir`]): kept when the export fails, so that a later run can take over the
    /// tables this one finished ([`ArchiveWriter::reuse_table`]). The exporter keeps its own
    /// record there, [`RESUME_JOURNAL`], which is removed before the directory becomes the
    /// archive. Not for encrypted archives: a part is checked again by its clear bytes.
    pub fn create_resumable(
        target: &Path,
        options: WriteOptions,
        prelude: Manifest,
    ) -> Result<Self> {
        if crate::seal::sealer().is_some() {
            return Err(ArchiveError::Aborted(
                "--resume cannot continue an encrypted export".into(),
            ));
        }
        let properties = options.properties()?;
        refuse_existing(target, true)?;
        let dir = resume_dir(target);
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| ArchiveError::io(dir.display(), e))?;
        let sink = Sink::Dir {
            target: target.to_owned(),
        };
        Self::start(Staging::Kept(dir), sink, options, properties, prelude)
    }

    /// Writes the tar form to any byte stream (a pipe, a socket). Nothing can be retracted
    /// from a stream: if the export fails, the stream simply ends without `manifest.json`,
    /// which every reader rejects.
    pub fn create_stream(
        out: Box<dyn Write + Send>,
        options: WriteOptions,
        prelude: Manifest,
    ) -> Result<Self> {
        let properties = options.properties()?;
        let staging = Staging::Temp(staging_dir(&std::env::temp_dir())?);
        let mtime = created_mtime(&prelude);
        let sink = Sink::Tar {
            builder: Some(tar_builder(out)),
            temp: None,
            target: None,
            mtime,
        };
        Self::start(staging, sink, options, properties, prelude)
    }

    fn start(
        staging: Staging,
        sink: Sink,
        options: WriteOptions,
        properties: WriterProperties,
        mut prelude: Manifest,
    ) -> Result<Self> {
        prelude.stage = Stage::Prelude;
        for t in &mut prelude.tables {
            t.rows = None;
            t.content_digest = None;
            t.files.clear();
        }
        options.record(&mut prelude.options);
        let signer = crate::sign::signer();
        if signer.is_some() {
            prelude.format_version = crate::sign::SIGNED_FORMAT_VERSION.to_owned();
        }
        let sealer = crate::seal::sealer();
        let shared = Arc::new(Shared {
            sync_staged: matches!(sink, Sink::Dir { .. }),
            staging,
            sealer,
            options,
            properties,
            state: Mutex::new(State {
                sink,
                files: BTreeMap::new(),
                failed: false,
                lead: None,
                held: Vec::new(),
            }),
        });
        let json = prelude.to_json();
        // Never publish a document a reader would reject.
        Manifest::from_json(PRELUDE, &json)?;
        if let Some(sealer) = &shared.sealer {
            // The one clear entry, first, so a reader knows what it holds before anything.
            shared.write_raw(crate::seal::ENVELOPE, &sealer.envelope().to_json())?;
            if let Some(key) = sealer.wrapped_key() {
                shared.write_raw(crate::seal::KEY_ENTRY, key)?;
            }
        }
        shared.write_entry(PRELUDE, &json)?;
        if let Some(s) = &signer {
            shared.write_signature(s, PRELUDE, &json)?;
        }
        Ok(ArchiveWriter {
            shared,
            prelude,
            masker: None,
        })
    }

    /// Puts `table_id`'s parts first in a tar file: the parts of other tables that finish
    /// before it are held in staging and appended once it is finished, in the order they
    /// finished. A reader of a tar meets the parts in the order they were appended, and a
    /// parallel import starts each table as its first part arrives; an exporter whose
    /// workers take the largest table first but finish the small ones earlier would
    /// otherwise put the table that takes longest to load and index last, and the import
    /// would start it last (`docs/benchmarks.md`, fifteenth session). Only a tar *file* is
    /// held back: a stream's reader works while the export goes on, and is best served
    /// each part as soon as it is done; a directory or a store has no order to give.
    pub fn lead_with(&self, table_id: &str) -> Result<()> {
        self.prelude_table(table_id)?;
        let mut state = self.shared.state.lock().expect("writer state poisoned");
        if let Sink::Tar {
            target: Some(_), ..
        } = &state.sink
            && !state.files.contains_key(table_id)
        {
            state.lead = Some(table_id.to_owned());
        }
        Ok(())
    }

    pub fn prelude(&self) -> &Manifest {
        &self.prelude
    }

    pub fn options(&self) -> &WriteOptions {
        &self.shared.options
    }

    /// Masks every batch written from now on (see [`crate::mask`]).
    pub fn set_masker(&mut self, masker: crate::mask::Masker) {
        self.masker = (!masker.is_empty()).then(|| Arc::new(masker));
    }

    fn prelude_table(&self, table_id: &str) -> Result<&crate::manifest::Table> {
        self.prelude
            .table(table_id)
            .ok_or_else(|| ArchiveError::Table {
                table: table_id.to_owned(),
                reason: "not in the prelude".into(),
            })
    }

    /// A writer for one table's data. Tables may be written concurrently from several threads.
    pub fn table(&self, table_id: &str) -> Result<TableWriter> {
        let table = self.prelude_table(table_id)?;
        // Every data field is nullable: the manifest's `nullable` is a schema fact for the
        // target, and the archive must be able to carry whatever the source actually holds.
        let fields: Vec<_> = table
            .data_fields()
            .into_iter()
            .map(|(name, t)| (name, t, true))
            .collect();
        let dir = self.shared.staging.path().join("data").join(table_id);
        if matches!(self.shared.staging, Staging::Kept(_)) {
            // What an interrupted run left of this table is written again from the start.
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).map_err(|e| ArchiveError::io(dir.display(), e))?;
        Ok(TableWriter {
            shared: self.shared.clone(),
            table_id: table_id.to_owned(),
            table_name: table.display_name(),
            schema: Arc::new(arrow_schema_for(&fields)),
            mask: self.masker.clone(),
            part: None,
            next_part: 0,
            done: Vec::new(),
            properties: None,
        })
    }

    /// Takes over a table that an interrupted run of a resumable export finished: its files,
    /// still in the staging directory, are checked (size and SHA-256) and recorded as if
    /// written now.
    pub fn reuse_table(&self, table_id: &str, files: Vec<DataFile>) -> Result<()> {
        if !matches!(self.shared.staging, Staging::Kept(_)) {
            return Err(ArchiveError::Aborted(
                "only a resumable export takes over tables".into(),
            ));
        }
        let table = self.prelude_table(table_id)?;
        for (n, f) in files.iter().enumerate() {
            let changed = |why: String| ArchiveError::Table {
                table: table.display_name(),
                reason: format!("{}: {why} since the interrupted export wrote it", f.path),
            };
            if f.path != format!("data/{table_id}/part-{n:06}.parquet") {
                return Err(changed("not the name a part of it has".into()));
            }
            let abs = self.shared.staging.path().join(&f.path);
            let (sha, bytes) = hash_file(&abs).map_err(|e| ArchiveError::io(&f.path, e))?;
            if sha != f.sha256 || bytes != f.bytes {
                return Err(changed("changed".into()));
            }
        }
        let mut state = self.shared.state.lock().expect("writer state poisoned");
        if state.files.insert(table_id.to_owned(), files).is_some() {
            return Err(ArchiveError::Table {
                table: table.display_name(),
                reason: "written twice".into(),
            });
        }
        Ok(())
    }

    /// Publishes the archive. `manifest` is the final description; its tables' `files` and
    /// `rows` are filled in from what was actually written.
    pub fn finish(self, mut manifest: Manifest) -> Result<Manifest> {
        crate::interrupt::pause_point("export:commit");
        crate::interrupt::check()?;
        manifest.stage = Stage::Complete;
        manifest.options = self.prelude.options.clone();
        let released;
        {
            let mut state = self.shared.state.lock().expect("writer state poisoned");
            if state.failed {
                return Err(ArchiveError::Aborted(
                    "a table writer failed earlier".to_owned(),
                ));
            }
            for t in &mut manifest.tables {
                let files = state
                    .files
                    .remove(&t.id)
                    .ok_or_else(|| ArchiveError::Table {
                        table: t.display_name(),
                        reason: "no data was written for this table".into(),
                    })?;
                t.rows = Some(files.iter().map(|f| f.rows).sum());
                t.files = files;
            }
            if let Some(extra) = state.files.keys().next() {
                return Err(ArchiveError::Table {
                    table: extra.clone(),
                    reason: "data written for a table the manifest does not list".into(),
                });
            }
            // Every table finished, so the lead did and nothing is held; this only makes
            // sure no part can be left out of the tar whatever the order of events.
            released = self.shared.release_held(&mut state)?;
        }
        for rel in released {
            crate::interrupt::pause_point(&format!("archive:published:{rel}"));
        }
        let signer = crate::sign::signer();
        if signer.is_some() {
            manifest.format_version = crate::sign::SIGNED_FORMAT_VERSION.to_owned();
        }
        crate::reader::check_prelude_matches(&self.prelude, &manifest)?;
        let json = manifest.to_json();
        Manifest::from_json(MANIFEST, &json)?;
        // Checked before manifest.json goes out: once it is in a stream, the archive looks
        // complete to every reader.
        let shared = Arc::try_unwrap(self.shared).map_err(|_| {
            ArchiveError::Aborted("a table writer is still open at finish".to_owned())
        })?;
        // The signature goes first: nothing may follow manifest.json in a stream.
        if let Some(s) = &signer {
            shared.write_signature(s, MANIFEST, &json)?;
        }
        shared.write_entry(MANIFEST, &json)?;
        let state = shared.state.into_inner().expect("writer state poisoned");
        match state.sink {
            Sink::Dir { target } => {
                let staging = shared.staging.keep();
                match std::fs::remove_file(staging.join(RESUME_JOURNAL)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ArchiveError::io(RESUME_JOURNAL, e));
                    }
                    _ => {}
                }
                if let Ok(entries) = std::fs::read_dir(staging.join("data")) {
                    for e in entries.flatten() {
                        sync_dir(&e.path());
                    }
                }
                sync_dir(&staging.join("data"));
                sync_dir(&staging);
                if let Err(e) = std::fs::rename(&staging, &target) {
                    let _ = std::fs::remove_dir_all(&staging);
                    return Err(ArchiveError::io(target.display(), e));
                }
                sync_dir(parent_of(&target));
            }
            Sink::Tar {
                builder,
                temp,
                target,
                ..
            } => {
                let builder = builder.expect("tar builder present until finish");
                let mut out = builder
                    .into_inner()
                    .map_err(|e| ArchiveError::io("tar", e))?;
                out.flush().map_err(|e| ArchiveError::io("tar", e))?;
                drop(out);
                if let (Some(temp), Some(target)) = (temp, target) {
                    File::open(&temp)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| ArchiveError::io(temp.display(), e))?;
                    // Refuse, rather than clobber, a file that appeared while we worked.
                    refuse_existing(&target, false)?;
                    temp.persist_noclobber(&target)
                        .map_err(|e| ArchiveError::io(target.display(), e.error))?;
                    sync_dir(parent_of(&target));
                }
            }
            // Committed when the manifest went up (`publish`).
            Sink::Remote(_) => {}
        }
        Ok(manifest)
    }
}

impl Shared {
    /// Writes and publishes `document`'s signature entry.
    fn write_signature(&self, s: &crate::sign::Signer, document: &str, bytes: &[u8]) -> Result<()> {
        let rel = format!("{document}{}", crate::sign::SUFFIX);
        let sig = s
            .sign(document, bytes)
            .map_err(|e| ArchiveError::Signature(format!("signing {document}: {e}")))?;
        self.write_entry(&rel, &sig)
    }

    /// The name an entry is stored under: `<rel>.age` in an encrypted archive.
    fn stored(&self, rel: &str) -> String {
        match self.sealer {
            Some(_) => format!("{rel}{}", crate::seal::SUFFIX),
            None => rel.to_owned(),
        }
    }

    /// Writes and publishes one document entry, sealed when the archive is encrypted.
    fn write_entry(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        match &self.sealer {
            Some(s) => {
                let sealed = s.seal(bytes).map_err(|e| ArchiveError::io(rel, e))?;
                self.write_raw(&self.stored(rel), &sealed)
            }
            None => self.write_raw(rel, bytes),
        }
    }

    fn write_raw(&self, stored: &str, bytes: &[u8]) -> Result<()> {
        write_staged(&self.staging.path().join(stored), bytes, self.sync_staged)
            .map_err(|e| ArchiveError::io(stored, e))?;
        self.publish(stored)
    }

    /// Hands a finished staging file to the sink. For tar sinks the file is appended and
    /// removed from staging.
    fn publish(&self, rel: &str) -> Result<()> {
        let mut state = self.state.lock().expect("writer state poisoned");
        if let Sink::Remote(r) = &mut state.sink {
            let bare = rel.strip_suffix(crate::seal::SUFFIX).unwrap_or(rel);
            // The commit: only once every other entry is in the store.
            let commit = bare == MANIFEST;
            r.settle(if commit { 0 } else { UPLOADS_IN_FLIGHT - 1 })?;
            // Recorded first, so that a failed upload is cleaned up too.
            r.uploaded.push(rel.to_owned());
            let abs = self.staging.path().join(rel);
            if commit {
                // Under the lock, which nothing else wants now: committed the moment the
                // store has the manifest, whatever happens to the staged copy after.
                r.remote
                    .put_file(rel, &abs)
                    .map_err(|e| ArchiveError::io(format!("{}/{rel}", r.remote.url()), e))?;
                r.committed = true;
                return Ok(());
            }
            let remote = r.remote.clone();
            let entry = rel.to_owned();
            let upload = move || {
                remote.put_file(&entry, &abs)?;
                std::fs::remove_file(&abs)
            };
            let handle = std::thread::Builder::new()
                .name("ferry-upload".into())
                .spawn(upload)
                .map_err(|e| ArchiveError::io(rel, e))?;
            r.pending.push((rel.to_owned(), handle));
            return Ok(());
        }
        if matches!(state.sink, Sink::Tar { .. }) {
            if let Some(lead) = &state.lead
                && part_table(rel).is_some_and(|t| t != lead)
            {
                state.held.push(rel.to_owned());
                return Ok(());
            }
            self.append_to_tar(&mut state, rel)?;
        }
        drop(state);
        // Test hook: lets a test hold the export right after an entry went out.
        crate::interrupt::pause_point(&format!("archive:published:{rel}"));
        Ok(())
    }

    /// Called when `table_id` is finished: if it was the lead table, the parts held back
    /// for it go into the tar now, under the same lock, so that no later part of a held
    /// table can overtake its earlier ones.
    ///
    /// Returns the entries that went out, for the test hook, which must not pause while
    /// the lock is held.
    fn table_finished(&self, state: &mut State, table_id: &str) -> Result<Vec<String>> {
        if state.lead.as_deref() != Some(table_id) {
            return Ok(Vec::new());
        }
        self.release_held(state)
    }

    fn release_held(&self, state: &mut State) -> Result<Vec<String>> {
        state.lead = None;
        let held = std::mem::take(&mut state.held);
        for rel in &held {
            if let Err(e) = self.append_to_tar(state, rel) {
                // The rest of the held parts are out of the list now: the archive must not
                // be finished without them.
                state.failed = true;
                return Err(e);
            }
        }
        Ok(held)
    }

    /// Appends a staged entry to the tar sink and removes it from staging.
    fn append_to_tar(&self, state: &mut State, rel: &str) -> Result<()> {
        if let Sink::Tar { builder, mtime, .. } = &mut state.sink {
            let builder = builder.as_mut().expect("tar builder present until finish");
            let abs = self.staging.path().join(rel);
            let mut file = File::open(&abs).map_err(|e| ArchiveError::io(rel, e))?;
            let len = file.metadata().map_err(|e| ArchiveError::io(rel, e))?.len();
            let mut header = tar::Header::new_ustar();
            header.set_path(rel).map_err(|e| ArchiveError::io(rel, e))?;
            header.set_size(len);
            header.set_mode(0o644);
            header.set_mtime(*mtime);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder
                .append(&header, &mut file)
                .map_err(|e| ArchiveError::io(format!("tar entry {rel}"), e))?;
            // Out now, not when the next entry fills the buffer: a reader of a stream can
            // create the tables as soon as it has the prelude, and load a part only once it
            // has all of it (its footer comes last). Held in the buffer, the prelude waited
            // until the first part was written, and each part until the next one was.
            builder
                .get_mut()
                .flush()
                .map_err(|e| ArchiveError::io(format!("tar entry {rel}"), e))?;
            drop(file);
            std::fs::remove_file(&abs).map_err(|e| ArchiveError::io(rel, e))?;
        }
        Ok(())
    }
}

/// The table id of a part's entry name (`data/<id>/part-<n>.parquet`, sealed or not);
/// `None` for a document.
fn part_table(rel: &str) -> Option<&str> {
    rel.strip_prefix("data/")?.split_once('/').map(|(t, _)| t)
}

/// The tar entries' mtime: the export's time, or 0 in an encrypted archive, whose clear
/// text is only its version and recipients.
fn created_mtime(m: &Manifest) -> u64 {
    if crate::seal::sealer().is_some() {
        return 0;
    }
    chrono::DateTime::parse_from_rfc3339(&m.created_at)
        .map(|t| t.timestamp().max(0) as u64)
        .unwrap_or(0)
}

fn tar_builder(out: Box<dyn Write + Send>) -> TarBuilder {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    b
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Also sweeps `parent` of what killed runs left there: this is where they would have left it.
/// Where a resumable export of the directory archive `target` stages: `<target>.ferry-resume`.
pub fn resume_dir(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".ferry-resume");
    PathBuf::from(name)
}

/// The exporter's record in a resumable staging directory (see
/// [`ArchiveWriter::create_resumable`]).
pub const RESUME_JOURNAL: &str = "export-resume.json";

/// The staging directory: a temporary one, removed unless it becomes the archive, or a
/// resumable export's, which stays.
enum Staging {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Staging {
    fn path(&self) -> &Path {
        match self {
            Staging::Temp(t) => t.path(),
            Staging::Kept(p) => p,
        }
    }

    fn keep(self) -> PathBuf {
        match self {
            Staging::Temp(t) => t.keep(),
            Staging::Kept(p) => p,
        }
    }
}

fn staging_dir(parent: &Path) -> Result<tempfile::TempDir> {
    crate::leftover::sweep(parent);
    crate::leftover::builder(".partial", true)
        .tempdir_in(parent)
        .map_err(|e| ArchiveError::io(parent.display(), e))
}

/// An archive never overwrites anything. An empty directory is allowed for the directory form
/// (users often `mkdir` the destination first).
fn refuse_existing(target: &Path, allow_empty_dir: bool) -> Result<()> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::io(target.display(), e)),
        Ok(meta) if allow_empty_dir && meta.is_dir() => {
            let empty = std::fs::read_dir(target)
                .map_err(|e| ArchiveError::io(target.display(), e))?
                .next()
                .is_none();
            if empty {
                Ok(())
            } else {
                Err(ArchiveError::TargetExists {
                    path: target.to_owned(),
                })
            }
        }
        Ok(_) => Err(ArchiveError::TargetExists {
            path: target.to_owned(),
        }),
    }
}

/// An export to an object store needs a prefix without an archive. Objects an interrupted
/// export left (archive entries, no manifest) are removed; anything else there is refused.
fn prepare_remote(remote: &dyn crate::location::Remote) -> Result<()> {
    let url = remote.url();
    let objects = remote.list().map_err(|e| ArchiveError::io(url, e))?;
    let names: Vec<String> = objects.into_iter().map(|(n, _)| n).collect();
    if names
        .iter()
        .any(|n| n.strip_suffix(crate::seal::SUFFIX).unwrap_or(n) == MANIFEST)
    {
        return Err(ArchiveError::TargetExists { path: url.into() });
    }
    if let Some(other) = names.iter().find(|n| !is_entry_name(n)) {
        return Err(ArchiveError::BadEntry {
            path: url.to_owned(),
            reason: format!(
                "holds {other}, which is not part of an archive; export to an empty prefix"
            ),
        });
    }
    // An export writes its prelude (or, encrypted, its envelope) first: without one, these
    // are not ours to remove, whatever their names.
    let started = names.iter().any(|n| {
        let bare = n.strip_suffix(crate::seal::SUFFIX).unwrap_or(n);
        bare == PRELUDE || n == crate::seal::ENVELOPE
    });
    if !names.is_empty() && !started {
        return Err(ArchiveError::BadEntry {
            path: url.to_owned(),
            reason: format!(
                "holds {}, but no prelude.json: not an interrupted export; export to an empty prefix",
                names[0]
            ),
        });
    }
    if !names.is_empty() {
        tracing::warn!(
            "{url}: removing {} object(s) an interrupted export left (no manifest.json)",
            names.len()
        );
        remote
            .delete(&names)
            .map_err(|e| ArchiveError::io(url, e))?;
    }
    Ok(())
}

/// A data part exactly as [`TableWriter`] names it: `data/<table id>/part-NNNNNN.parquet`.
fn is_part_name(name: &str) -> bool {
    let Some(file) = crate::manifest::table_id_of_path(name).and(name.rsplit('/').next()) else {
        return false;
    };
    file.strip_prefix("part-")
        .and_then(|f| f.strip_suffix(".parquet"))
        .is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is one an export writes: the documents, their signatures, the envelope,
/// and the data parts, each possibly sealed.
fn is_entry_name(name: &str) -> bool {
    let bare = name.strip_suffix(crate::seal::SUFFIX).unwrap_or(name);
    let documents = [
        PRELUDE.to_owned(),
        MANIFEST.to_owned(),
        format!("{PRELUDE}{}", crate::sign::SUFFIX),
        format!("{MANIFEST}{}", crate::sign::SUFFIX),
        crate::seal::ENVELOPE.to_owned(),
        crate::seal::KEY_ENTRY.to_owned(),
    ];
    documents.iter().any(|d| d == name || d == bare) || is_part_name(bare)
}

fn write_staged(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    if sync { f.sync_all() } else { Ok(()) }
}

fn sync_dir(dir: &Path) {
    // Best effort: durability of the rename; not all filesystems allow fsync on directories.
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

struct Part {
    writer: ArrowWriter<HashingWriter<PartOut>>,
    rel: String,
    rows: u64,
}

/// Where a part's Parquet bytes go: to its file, or through age into its file. The hash is
/// taken before this, of the clear bytes, so a decrypted archive verifies as any other.
enum PartOut {
    Clear(BufWriter<File>),
    Sealed(age::stream::StreamWriter<BufWriter<File>>),
}

impl PartOut {
    /// Ends the part: for a sealed one, writes age's last chunk, without which it does not
    /// decrypt.
    fn finish(self) -> std::io::Result<BufWriter<File>> {
        match self {
            PartOut::Clear(w) => Ok(w),
            PartOut::Sealed(w) => w.finish(),
        }
    }
}

impl Write for PartOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            PartOut::Clear(w) => w.write(buf),
            PartOut::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            PartOut::Clear(w) => w.flush(),
            PartOut::Sealed(w) => w.flush(),
        }
    }
}

/// Streams one table's record batches into bounded, zstd-compressed Parquet parts.
pub struct TableWriter {
    shared: Arc<Shared>,
    table_id: String,
    table_name: String,
    schema: SchemaRef,
    mask: Option<Arc<crate::mask::Masker>>,
    part: Option<Part>,
    next_part: u32,
    done: Vec<DataFile>,
    /// The Parquet properties of this table's parts, decided from its first batch (see
    /// [`crate::encoding`]) and kept for every later part.
    properties: Option<WriterProperties>,
}

impl TableWriter {
    /// The Arrow schema every batch must have.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        crate::interrupt::check()?;
        if batch.schema().fields() != self.schema.fields() {
            return Err(self.table_error(format!(
                "batch schema {:?} does not match the manifest's {:?}",
                batch.schema(),
                self.schema
            )));
        }
        let masked;
        let batch = match &self.mask {
            Some(m) => {
                masked = m
                    .apply(&self.table_id, batch)
                    .map_err(|e| self.table_error(e.to_string()))?;
                &masked
            }
            None => batch,
        };
        // A batch larger than the room left in the part is split: `--file-rows` is a bound
        // on every part, also when it is smaller than the batches (`--batch-rows`).
        let total = batch.num_rows();
        let mut offset = 0;
        loop {
            if self.part.is_none() {
                self.open_part(Some(batch))?;
            }
            let file_rows = self.shared.options.file_rows.max(1);
            let part = self.part.as_mut().expect("part opened above");
            let room = file_rows.saturating_sub(part.rows).max(1);
            let n = (total - offset).min(usize::try_from(room).unwrap_or(usize::MAX));
            let slice;
            let piece = if offset == 0 && n == total {
                batch
            } else {
                slice = batch.slice(offset, n);
                &slice
            };
            part.writer
                .write(piece)
                .map_err(|source| ArchiveError::Parquet {
                    path: part.rel.clone(),
                    source,
                })?;
            part.rows += n as u64;
            offset += n;
            let opts = &self.shared.options;
            let size = (part.writer.bytes_written() + part.writer.in_progress_size()) as u64;
            if part.rows >= opts.file_rows || size >= opts.file_bytes {
                self.close_part()?;
            }
            if offset >= total {
                break;
            }
        }
        crate::interrupt::pause_point("export:batch");
        Ok(())
    }

    /// Closes the last part and records the table's files. A table with no rows still gets
    /// one (empty) part, so every table has a file that carries its schema.
    pub fn finish(mut self) -> Result<Vec<DataFile>> {
        if self.part.is_none() && self.done.is_empty() {
            self.open_part(None)?;
        }
        self.close_part()?;
        let files = std::mem::take(&mut self.done);
        let mut state = self.shared.state.lock().expect("writer state poisoned");
        if state
            .files
            .insert(self.table_id.clone(), files.clone())
            .is_some()
        {
            return Err(self.table_error("written twice".into()));
        }
        let released = self.shared.table_finished(&mut state, &self.table_id)?;
        drop(state);
        for rel in released {
            crate::interrupt::pause_point(&format!("archive:published:{rel}"));
        }
        Ok(files)
    }

    fn table_error(&self, reason: String) -> ArchiveError {
        ArchiveError::Table {
            table: self.table_name.clone(),
            reason,
        }
    }

    /// Opens the next part; `first` is the batch it opens for, which the table's first part
    /// samples to choose its encodings.
    fn open_part(&mut self, first: Option<&RecordBatch>) -> Result<()> {
        let properties = self
            .properties
            .get_or_insert_with(|| {
                let plain = first
                    .map(crate::encoding::high_cardinality_columns)
                    .unwrap_or_default();
                plain
                    .into_iter()
                    .fold(self.shared.properties.clone().into_builder(), |b, name| {
                        b.set_column_dictionary_enabled(ColumnPath::new(vec![name]), false)
                    })
                    .build()
            })
            .clone();
        let rel = format!("data/{}/part-{:06}.parquet", self.table_id, self.next_part);
        self.next_part += 1;
        let abs = self.shared.staging.path().join(self.shared.stored(&rel));
        let file = File::create(&abs).map_err(|e| ArchiveError::io(&rel, e))?;
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let out = HashingWriter::new(match &self.shared.sealer {
            Some(s) => PartOut::Sealed(s.wrap(buffered).map_err(|e| ArchiveError::io(&rel, e))?),
            None => PartOut::Clear(buffered),
        });
        let writer =
            ArrowWriter::try_new(out, self.schema.clone(), Some(properties)).map_err(|source| {
                ArchiveError::Parquet {
                    path: rel.clone(),
                    source,
                }
            })?;
        self.part = Some(Part {
            writer,
            rel,
            rows: 0,
        });
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        let Some(part) = self.part.take() else {
            return Ok(());
        };
        let rel = part.rel;
        let hashing = part
            .writer
            .into_inner()
            .map_err(|source| ArchiveError::Parquet {
                path: rel.clone(),
                source,
            })?;
        let (inner, sha256, bytes) = hashing.finish();
        let file = inner
            .finish()
            .map_err(|e| ArchiveError::io(&rel, e))?
            .into_inner()
            .map_err(|e| ArchiveError::io(&rel, e.into_error()))?;
        // Durable before it is published: a renamed directory must not hold torn files.
        if self.shared.sync_staged {
            file.sync_all().map_err(|e| ArchiveError::io(&rel, e))?;
        }
        drop(file);
        self.shared.publish(&self.shared.stored(&rel))?;
        tracing::debug!(part = %rel, rows = part.rows, bytes, "part written");
        self.done.push(DataFile {
            path: rel,
            bytes,
            rows: part.rows,
            sha256,
        });
        Ok(())
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if (std::thread::panicking() || self.part.is_some())
            && let Ok(mut s) = self.shared.state.lock()
        {
            s.failed = true;
        }
    }
}

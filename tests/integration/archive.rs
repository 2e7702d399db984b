//! The archive format on its own: archives written from Arrow batches made here, read back in
//! every container form, and `verify` against each kind of damage.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BinaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use ferry_archive::{
    ArchiveWriter, Column, Location, LogicalType, Manifest, Part, PartData, Source, Table, Visitor,
    WriteOptions,
};

use crate::harness::{TestDir, assert_archive_manifests_valid, assert_same};

fn prelude() -> Manifest {
    let mut m = Manifest::new(Source {
        engine: "test".into(),
        engine_version: "1".into(),
        database: "memory".into(),
    });
    m.tables = vec![
        Table::new(
            "t00001",
            "events",
            vec![
                Column::new("id", LogicalType::Int64, false),
                Column::new("label", LogicalType::Text, true),
                Column::new("score", LogicalType::Float64, true),
                Column::new("payload", LogicalType::Bytes, true),
            ],
        ),
        Table::new(
            "t00002",
            "Empty Table",
            vec![Column::new("x", LogicalType::Text, true)],
        ),
    ];
    m
}

/// Rows `start..start+n` of the events table; every fourth value is NULL.
fn events_batch(schema: &arrow_schema::SchemaRef, start: i64, n: i64) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n).collect();
    let label: StringArray = ids
        .iter()
        .map(|i| (i % 4 != 0).then(|| format!("label-{i}-\u{e9}\0x")))
        .collect();
    let score: Float64Array = ids
        .iter()
        .map(|i| (i % 4 != 1).then_some(*i as f64 / 3.0))
        .collect();
    let payload: BinaryArray = ids
        .iter()
        .map(|i| (i % 4 != 2).then(|| vec![(*i % 256) as u8; (*i % 7) as usize]))
        .collect::<Vec<_>>()
        .iter()
        .map(|v| v.as_deref())
        .collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(label),
        Arc::new(score),
        Arc::new(payload),
    ];
    RecordBatch::try_new(schema.clone(), cols).expect("batch")
}

const BATCHES: i64 = 5;
const PER_BATCH: i64 = 1000;

fn small_parts() -> WriteOptions {
    WriteOptions {
        row_group_rows: 700,
        file_rows: 2000,
        ..WriteOptions::default()
    }
}

fn write_with(writer: ArchiveWriter) -> Manifest {
    let mut m = writer.prelude().clone();
    let mut tw = writer.table("t00001").expect("table writer");
    for b in 0..BATCHES {
        let batch = events_batch(tw.schema(), b * PER_BATCH, PER_BATCH);
        tw.write(&batch).expect("write");
    }
    tw.finish().expect("finish table");
    writer
        .table("t00002")
        .expect("table")
        .finish()
        .expect("empty");
    m.warnings.push(ferry_archive::Warning {
        code: "test_warning".into(),
        table: Some("events".into()),
        column: None,
        message: "recorded during export".into(),
        details: Default::default(),
    });
    writer.finish(m).expect("finish archive")
}

fn write(location: &Location) -> Manifest {
    write_with(ArchiveWriter::create(location, small_parts(), prelude()).expect("create"))
}

/// Collects every row of every table, in part order.
#[derive(Default)]
struct Collect {
    prelude_tables: usize,
    rows: std::collections::BTreeMap<String, Vec<String>>,
    parts: Vec<String>,
}

impl Visitor for Collect {
    type Error = ferry_archive::ArchiveError;
    fn prelude(&mut self, p: &Manifest) -> Result<(), Self::Error> {
        self.prelude_tables = p.tables.len();
        Ok(())
    }
    fn part(&mut self, table: &Table, part: &Part<'_>) -> Result<(), Self::Error> {
        self.parts.push(part.path.to_owned());
        let out = self.rows.entry(table.name.clone()).or_default();
        for batch in part.batches(333)? {
            out.extend(row_strings(&batch.expect("decode")));
        }
        Ok(())
    }
}

fn arrow_cast_display(a: &dyn Array, r: usize) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    match a.data_type() {
        arrow_schema::DataType::Int64 => a.as_primitive::<Int64Type>().value(r).to_string(),
        arrow_schema::DataType::Float64 => a
            .as_primitive::<Float64Type>()
            .value(r)
            .to_bits()
            .to_string(),
        arrow_schema::DataType::Utf8 => format!("{:?}", a.as_string::<i32>().value(r)),
        arrow_schema::DataType::Binary => hex::encode(a.as_binary::<i32>().value(r)),
        other => panic!("unexpected type {other}"),
    }
}

fn expected_rows() -> Vec<String> {
    let fields: Vec<_> = prelude().tables[0]
        .data_fields()
        .into_iter()
        .map(|(n, t)| (n, t, true))
        .collect();
    let schema = Arc::new(ferry_archive::types::arrow_schema_for(&fields));
    row_strings(&events_batch(&schema, 0, BATCHES * PER_BATCH))
}

/// Each row as `cell|cell|...`, floats by bit pattern.
fn row_strings(batch: &RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|r| {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|col| {
                    if col.is_null(r) {
                        "NULL".to_owned()
                    } else {
                        arrow_cast_display(col.as_ref(), r)
                    }
                })
                .collect();
            cells.join("|")
        })
        .collect()
}

fn read_back(location: &Location) -> (Collect, Manifest) {
    let mut c = Collect::default();
    let m = ferry_archive::read(location, &mut c)
        .expect("read")
        .expect("manifest");
    (c, m)
}

fn check_contents(c: &Collect, m: &Manifest) {
    assert_eq!(c.prelude_tables, 2);
    assert_same!(c.rows["events"], expected_rows());
    assert!(!c.rows.contains_key("Empty Table") || c.rows["Empty Table"].is_empty());
    let events = &m.tables[0];
    assert_eq!(events.rows, Some((BATCHES * PER_BATCH) as u64));
    // 5000 rows at 2000 rows per part: three parts, numbered in order.
    let paths: Vec<&str> = events.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "data/t00001/part-000000.parquet",
            "data/t00001/part-000001.parquet",
            "data/t00001/part-000002.parquet"
        ]
    );
    assert_eq!(m.tables[1].rows, Some(0));
    assert_eq!(
        m.tables[1].files.len(),
        1,
        "an empty table still has one part"
    );
    assert_eq!(m.warnings.len(), 1);
}

#[test]
fn directory_archive_round_trips_and_verifies() {
    let dir = TestDir::new();
    let loc = Location::Dir(dir.path("backup"));
    let written = write(&loc);
    assert_archive_manifests_valid(&dir.path("backup"));
    let (c, m) = read_back(&loc);
    assert_eq!(m, written);
    check_contents(&c, &m);
    let report = ferry_archive::verify(&loc).expect("verify");
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.rows_decoded, (BATCHES * PER_BATCH) as u64);
    dir.ferry()
        .args(["verify", "backup"])
        .run()
        .success()
        .says("ok: 4 files, 5000 rows verified");
}

/// `file_rows` bounds every part, also when the batches are larger than it: a batch is
/// split across parts (it once went whole into the part it started, so `--file-rows 2000`
/// with 16384-row batches gave parts of 16384 rows).
#[test]
fn parts_never_exceed_file_rows_when_batches_are_larger() {
    let dir = TestDir::new();
    let loc = Location::Dir(dir.path("backup"));
    let options = WriteOptions {
        file_rows: 1500,
        ..small_parts()
    };
    let m = write_with(ArchiveWriter::create(&loc, options, prelude()).expect("create"));
    let rows: Vec<u64> = m.tables[0].files.iter().map(|f| f.rows).collect();
    assert_eq!(rows, [1500, 1500, 1500, 500]);
    let (c, _) = read_back(&loc);
    assert_same!(c.rows["events"], expected_rows());
    dir.ferry().args(["verify", "backup"]).run().success();
}

/// A directory has no entry order, and the reader takes the largest table first: a parallel
/// import starts the table that takes longest, not the one the schema lists first. The
/// table's own parts stay in part order.
#[test]
fn a_directory_is_read_largest_table_first() {
    let dir = TestDir::new();
    let loc = Location::Dir(dir.path("backup"));
    write(&loc);
    // The empty table first in both documents, as a schema-ordered manifest may have it.
    crate::harness::edit_manifests(&dir.path("backup"), |m| {
        m["tables"].as_array_mut().unwrap().reverse();
    });
    let (c, m) = read_back(&loc);
    assert_eq!(m.tables[0].id, "t00002", "the manifest keeps its order");
    assert_eq!(
        c.parts,
        [
            "data/t00001/part-000000.parquet",
            "data/t00001/part-000001.parquet",
            "data/t00001/part-000002.parquet",
            "data/t00002/part-000000.parquet",
        ]
    );
    assert_same!(c.rows["events"], expected_rows());
}

#[test]
fn tar_archive_round_trips_and_verifies() {
    let dir = TestDir::new();
    let loc = Location::Tar(dir.path("backup.tar"));
    let written = write(&loc);
    assert_eq!(dir.entries(), ["backup.tar"], "no staging files left");
    assert_archive_manifests_valid(&dir.path("backup.tar"));
    let (c, m) = read_back(&loc);
    assert_eq!(m, written);
    check_contents(&c, &m);
    // The entry order is the spec's: prelude first, manifest last.
    let mut ar = tar::Archive::new(std::fs::File::open(dir.path("backup.tar")).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("prelude.json"));
    assert_eq!(names.last().map(String::as_str), Some("manifest.json"));
    assert_eq!(names.len(), 6);
    dir.ferry().args(["verify", "backup.tar"]).run().success();
}

#[test]
fn tar_stream_through_a_pipe_round_trips() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let producer = std::thread::spawn(move || {
        let w = ArchiveWriter::create_stream(Box::new(writer), small_parts(), prelude())
            .expect("stream writer");
        write_with(w)
    });
    let mut c = Collect::default();
    let m = ferry_archive::read_stream("<pipe>", reader, &mut c)
        .expect("read stream")
        .expect("manifest");
    let written = producer.join().expect("producer");
    assert_eq!(m, written);
    check_contents(&c, &m);
}

#[test]
fn a_failed_write_leaves_no_archive_and_no_temp_files() {
    for name in ["backup", "backup.tar"] {
        let dir = TestDir::new();
        let loc = Location::parse(dir.path(name).to_str().unwrap());
        let result = (|| -> Result<(), ferry_archive::ArchiveError> {
            let writer = ArchiveWriter::create(&loc, small_parts(), prelude())?;
            let mut tw = writer.table("t00001")?;
            for b in 0..3 {
                tw.write(&events_batch(tw.schema(), b * PER_BATCH, PER_BATCH))?;
            }
            // The injected error: a batch whose schema is not the table's.
            let wrong = RecordBatch::try_from_iter([(
                "id",
                Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
            )])
            .unwrap();
            tw.write(&wrong)?;
            unreachable!("the wrong batch must be refused");
        })();
        let err = result.expect_err("the write must fail");
        assert!(err.to_string().contains("events"), "{err}");
        assert_eq!(
            dir.entries(),
            Vec::<String>::new(),
            "{name}: nothing left behind"
        );
    }
}

#[test]
fn an_existing_archive_is_never_overwritten() {
    let dir = TestDir::new();
    std::fs::write(dir.path("backup.tar"), b"precious").unwrap();
    let err = ArchiveWriter::create(
        &Location::Tar(dir.path("backup.tar")),
        WriteOptions::default(),
        prelude(),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(dir.path("backup.tar")).unwrap(), b"precious");
    std::fs::create_dir(dir.path("full")).unwrap();
    std::fs::write(dir.path("full/x"), b"x").unwrap();
    assert!(
        ArchiveWriter::create(
            &Location::Dir(dir.path("full")),
            WriteOptions::default(),
            prelude()
        )
        .is_err()
    );
}

/// Writes a fresh directory archive and returns the test dir.
fn damaged(damage: impl FnOnce(&Path)) -> TestDir {
    let dir = TestDir::new();
    write(&Location::Dir(dir.path("a")));
    damage(&dir.path("a"));
    dir
}

fn edit_manifest(root: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = root.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

const PART: &str = "data/t00001/part-000001.parquet";

#[track_caller]
fn verify_fails(dir: &TestDir, target: &str, needles: &[&str]) -> String {
    let run = dir.ferry().args(["verify", target]).run().fails_with(3);
    let out = run.stdout();
    for n in needles {
        assert!(
            out.contains(n),
            "verify output should mention {n:?}:\n{out}"
        );
    }
    out
}

#[test]
fn verify_catches_a_flipped_byte() {
    let dir = damaged(|root| {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(root.join(PART))
            .unwrap();
        f.seek(SeekFrom::Start(100)).unwrap();
        let mut b = [0u8];
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(100)).unwrap();
        f.write_all(&[b[0] ^ 0x01]).unwrap();
    });
    let out = verify_fails(&dir, "a", &[PART, "checksum mismatch"]);
    assert_eq!(out.lines().count(), 1, "one line per problem:\n{out}");
}

#[test]
fn verify_catches_a_truncated_file() {
    let dir = damaged(|root| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join(PART))
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len / 2).unwrap();
    });
    verify_fails(&dir, "a", &[PART, "size mismatch"]);
}

#[test]
fn verify_catches_a_missing_file() {
    let dir = damaged(|root| std::fs::remove_file(root.join(PART)).unwrap());
    verify_fails(&dir, "a", &[PART, "missing"]);
}

#[test]
fn verify_catches_an_extra_file() {
    let dir = damaged(|root| std::fs::write(root.join("data/t00002/notes.txt"), b"hi").unwrap());
    verify_fails(&dir, "a", &["data/t00002/notes.txt", "not listed"]);
}

#[test]
fn verify_catches_an_edited_checksum() {
    let dir = damaged(|root| {
        edit_manifest(root, |v| {
            v["tables"][0]["files"][1]["sha256"] = "0".repeat(64).into();
        })
    });
    verify_fails(&dir, "a", &[PART, "checksum mismatch", &"0".repeat(64)]);
}

#[test]
fn verify_catches_an_edited_row_count() {
    let dir = damaged(|root| {
        edit_manifest(root, |v| {
            v["tables"][0]["files"][1]["rows"] = 1999.into();
            v["tables"][0]["rows"] = 4999.into();
        })
    });
    let out = verify_fails(&dir, "a", &[PART, "row count mismatch"]);
    assert_eq!(out.lines().count(), 1, "reported once:\n{out}");
}

#[test]
fn verify_rejects_an_unknown_major_version() {
    let dir = damaged(|root| edit_manifest(root, |v| v["format_version"] = "3.0.0".into()));
    verify_fails(&dir, "a", &["manifest.json", "3.0.0", "not supported"]);
}

#[test]
fn verify_rejects_paths_that_escape_the_archive() {
    for bad in ["../x", "/etc/passwd", "data/t00001/../../x.parquet"] {
        let dir = damaged(|root| {
            edit_manifest(root, |v| v["tables"][0]["files"][0]["path"] = bad.into())
        });
        verify_fails(&dir, "a", &["manifest.json", bad]);
    }
}

#[test]
fn verify_rejects_a_symlinked_data_directory() {
    let dir = damaged(|root| {
        let real = root.parent().unwrap().join("elsewhere");
        std::fs::rename(root.join("data/t00001"), &real).unwrap();
        std::os::unix::fs::symlink(&real, root.join("data/t00001")).unwrap();
    });
    verify_fails(&dir, "a", &["data/t00001", "links"]);
}

/// Rewrites a tar archive entry by entry, letting `f` add entries before each one.
fn rewrite_tar(from: &Path, to: &Path, mut f: impl FnMut(&str, &mut tar::Builder<std::fs::File>)) {
    let mut out = tar::Builder::new(std::fs::File::create(to).unwrap());
    let mut ar = tar::Archive::new(std::fs::File::open(from).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        f(&path, &mut out);
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let mut h = e.header().clone();
        out.append_data(&mut h, &path, &data[..]).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn verify_rejects_a_tar_with_a_link_entry() {
    let dir = TestDir::new();
    write(&Location::Tar(dir.path("good.tar")));
    rewrite_tar(&dir.path("good.tar"), &dir.path("bad.tar"), |path, out| {
        if path == "manifest.json" {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            out.append_link(&mut h, "data/t00001/evil.parquet", "/etc/passwd")
                .unwrap();
        }
    });
    verify_fails(
        &dir,
        "bad.tar",
        &["data/t00001/evil.parquet", "not allowed"],
    );
}

#[test]
fn verify_rejects_a_tar_with_duplicate_entries() {
    let dir = TestDir::new();
    write(&Location::Tar(dir.path("good.tar")));
    let mut first_part: Option<Vec<u8>> = None;
    let mut ar = tar::Archive::new(std::fs::File::open(dir.path("good.tar")).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == PART {
            let mut d = Vec::new();
            e.read_to_end(&mut d).unwrap();
            first_part = Some(d);
        }
    }
    let data = first_part.unwrap();
    rewrite_tar(&dir.path("good.tar"), &dir.path("dup.tar"), |path, out| {
        if path == "manifest.json" {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            out.append_data(&mut h, PART, &data[..]).unwrap();
        }
    });
    verify_fails(&dir, "dup.tar", &[PART, "duplicate"]);
}

#[test]
fn a_tar_without_its_manifest_is_rejected_as_truncated() {
    let dir = TestDir::new();
    write(&Location::Tar(dir.path("good.tar")));
    let mut out = tar::Builder::new(std::fs::File::create(dir.path("cut.tar")).unwrap());
    let mut ar = tar::Archive::new(std::fs::File::open(dir.path("good.tar")).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path == "manifest.json" {
            break;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.append_data(&mut e.header().clone(), &path, &data[..])
            .unwrap();
    }
    out.finish().unwrap();
    verify_fails(&dir, "cut.tar", &["manifest.json", "truncated"]);
}

#[test]
fn a_tar_cut_inside_a_data_file_is_reported_as_truncated_not_as_corrupt_parquet() {
    let dir = TestDir::new();
    write(&Location::Tar(dir.path("good.tar")));
    let bytes = std::fs::read(dir.path("good.tar")).unwrap();
    // The first data entry's header starts with its name; cut 100 bytes into its content.
    let header = bytes
        .windows(5)
        .position(|w| w == b"data/")
        .expect("a data entry");
    std::fs::write(dir.path("cut.tar"), &bytes[..header + 512 + 100]).unwrap();
    let out = verify_fails(&dir, "cut.tar", &["truncated"]);
    assert!(!out.contains("Corrupt footer"), "{out}");
}

#[test]
fn a_compressed_archive_is_named_as_such() {
    let dir = TestDir::new();
    write(&Location::Tar(dir.path("good.tar")));
    let status = std::process::Command::new("gzip")
        .args(["-k"])
        .arg(dir.path("good.tar"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::rename(dir.path("good.tar.gz"), dir.path("zipped.tar")).unwrap();
    verify_fails(
        &dir,
        "zipped.tar",
        &["gzip-compressed; decompress it first"],
    );
    let run = dir
        .ferry()
        .args(["import", "-", "out.db"])
        .stdin_file(&dir.path("zipped.tar"))
        .run()
        .fails_with(1)
        .says("<stdin>: this is gzip-compressed; decompress it first");
    assert_eq!(run.stderr().lines().count(), 1);
    assert!(!dir.path("out.db").exists());
}

#[test]
fn inspect_reports_tables_types_rows_and_warnings() {
    let dir = TestDir::new();
    write(&Location::Tar(dir.path("a.tar")));
    let out = dir
        .ferry()
        .args(["inspect", "a.tar"])
        .run()
        .success()
        .stdout();
    for needle in [
        "source    test 1, database memory",
        "events: 5000 rows",
        "\"Empty Table\": 0 rows",
        "score    float64",
        "[test_warning] recorded during export",
    ] {
        assert!(
            out.contains(needle),
            "inspect should show {needle:?}:\n{out}"
        );
    }
    let json = dir
        .ferry()
        .args(["inspect", "a.tar", "--json"])
        .run()
        .success()
        .stdout();
    let v = crate::harness::assert_manifest_valid(json.as_bytes());
    assert_eq!(v["tables"][0]["rows"], 5000);
}

/// A reader of `ferry export ... -` gets each entry of the stream as soon as the export has
/// finished it: the prelude while the first part is still being read, each part before the
/// next is written. (Held back in the writer's buffer until the next entry pushed it out,
/// an importer could create nothing until the first part was ready, and could load each part
/// only once the following one was.) The export is paused right after publishing its first
/// part; both entries must then be readable, whole, from the pipe.
#[test]
fn a_stream_delivers_each_entry_as_soon_as_it_is_finished() {
    use std::io::{BufRead, Read};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let dir = TestDir::new();
    let db = dir.path("one.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO items (name) SELECT 'item ' || i FROM n;",
    )
    .unwrap();
    drop(conn);
    let first_part = "data/t00001/part-000000.parquet";
    let resume = dir.path("resume");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir.root())
        .args([
            "export",
            "one.db",
            "-",
            "--file-rows",
            "1000",
            "--batch-rows",
            "500",
        ])
        .env_remove("FERRY_LOG")
        .env("FERRY_PAUSE_AT", format!("archive:published:{first_part}"))
        .env("FERRY_RESUME_FILE", &resume)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry");
    // Each entry's name, once all of its bytes have come through the pipe.
    let (tx, whole) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut tar = tar::Archive::new(stdout);
        for entry in tar.entries().expect("a tar stream") {
            let mut entry = entry.expect("a tar entry");
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("the entry's bytes");
            if tx.send((name, bytes)).is_err() {
                break;
            }
        }
    });
    // stderr is read to its end (a closed pipe would fail the export's summary).
    let (said_tx, said) = std::sync::mpsc::channel();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let errors = std::thread::spawn(move || {
        let mut all = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            let _ = said_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let wanted = format!("ferry: paused at archive:published:{first_part}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut paused = false;
    while !paused {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match said.recv_timeout(left) {
            Ok(line) => paused = line == wanted,
            Err(_) => break,
        }
    }
    if !paused {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the export never paused:\n{}", errors.join().unwrap());
    }
    // While the export waits, the prelude and the first part must arrive whole.
    let mut got = Vec::new();
    while got.len() < 2 {
        match whole.recv_timeout(Duration::from_secs(30)) {
            Ok(entry) => got.push(entry),
            Err(_) => break,
        }
    }
    // Let the export go on before asserting, so that a failed assertion leaves no
    // process waiting behind.
    std::fs::write(&resume, b"").unwrap();
    let status = child.wait().unwrap();
    let names: Vec<&String> = got.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["prelude.json", first_part],
        "what the stream delivered with the export paused after {first_part}"
    );
    assert!(
        got[1].1.starts_with(b"PAR1") && got[1].1.ends_with(b"PAR1"),
        "the first part arrived incomplete ({} bytes)",
        got[1].1.len()
    );
    let rest: Vec<String> = whole.iter().map(|(n, _)| n).collect();
    reader.join().unwrap();
    let said = errors.join().unwrap();
    assert!(
        status.success(),
        "the export failed after resuming:\n{said}"
    );
    assert_eq!(
        rest,
        [
            "data/t00001/part-000001.parquet",
            "data/t00001/part-000002.parquet",
            "manifest.json"
        ],
        "the rest of the stream"
    );
}

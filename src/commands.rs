//! Stage two of argument handling: turn validated words into engine calls, and print what a
//! person (or a script) needs to see. Reports go to stderr so that stdout stays free for the
//! `-` archive stream; `inspect` and `verify` print their results on stdout.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ferry_archive::{Location, Manifest, TableReport, WriteOptions};

use crate::cli::{Cli, Command, ExportArgs, ImportArgs, InspectArgs, VerifyArgs};
use crate::endpoint::Endpoint;
use crate::exit;

pub fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(secs) = cli.connect_timeout {
        ferry_postgres::conn::override_connect_timeout(secs);
    }
    let quiet = cli.quiet;
    let progress = crate::progress::reporter(cli.progress, quiet);
    let report_to = match &cli.command {
        Command::Export(a) => a.report.clone().map(|r| ("export", r)),
        Command::Import(a) => a.report.clone().map(|r| ("import", r)),
        Command::Verify(a) => a.report.clone().map(|r| ("verify", r)),
        _ => None,
    };
    let Some((command, destination)) = report_to else {
        return dispatch(cli.command, quiet, progress.as_ref());
    };
    if destination == "-" && matches!(&cli.command, Command::Export(a) if a.archive == "-") {
        bail!(
            "--report - and an archive on stdout (-) cannot share stdout; write the report to a file"
        );
    }
    crate::report::start(command, &destination);
    let endpoints: Vec<(&str, &str)> = match &cli.command {
        Command::Export(a) => vec![
            ("source", a.source.as_str()),
            ("archive", a.archive.as_str()),
        ],
        Command::Import(a) => vec![
            ("archive", a.archive.as_str()),
            ("target", a.target.as_str()),
        ],
        Command::Verify(a) => {
            let mut v = vec![("archive", a.archive.as_str())];
            v.extend(a.against.as_deref().map(|d| ("against", d)));
            v
        }
        _ => Vec::new(),
    };
    for (role, arg) in endpoints {
        crate::report::endpoint(role, display_endpoint(arg));
    }
    let outcome = dispatch(cli.command, quiet, progress.as_ref());
    // Arguments as given, with any password hidden.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| crate::report::redact(&a))
        .collect();
    crate::report::finish(&outcome, args)?;
    outcome
}

fn dispatch(
    command: Command,
    quiet: bool,
    progress: &dyn ferry_archive::Progress,
) -> Result<ExitCode> {
    match command {
        Command::Export(a) => export(*a, quiet, progress),
        Command::Import(a) => import(a, quiet, progress),
        Command::Verify(a) => verify(a, quiet),
        Command::Inspect(a) => inspect(a),
        Command::Cleanup(a) => cleanup(a, quiet),
        Command::Completions { shell } => {
            print!("{}", completions(shell));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            print!("{}", include_str!(concat!(env!("OUT_DIR"), "/ferry.1")));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The completion scripts `build.rs` generated from this very command line.
fn completions(shell: crate::cli::Shell) -> &'static str {
    use crate::cli::Shell;
    match shell {
        Shell::Bash => include_str!(concat!(env!("OUT_DIR"), "/ferry.bash")),
        Shell::Zsh => include_str!(concat!(env!("OUT_DIR"), "/_ferry")),
        Shell::Fish => include_str!(concat!(env!("OUT_DIR"), "/ferry.fish")),
        Shell::Elvish => include_str!(concat!(env!("OUT_DIR"), "/ferry.elv")),
        Shell::Powershell => include_str!(concat!(env!("OUT_DIR"), "/_ferry.ps1")),
    }
}

/// `ferry cleanup`: what killed runs left behind, removed only when their run is over.
fn cleanup(a: crate::cli::CleanupArgs, quiet: bool) -> Result<ExitCode> {
    let removed: Vec<String> = match Endpoint::parse(&a.target)? {
        Endpoint::Postgres(url) => {
            let swept = ferry_postgres::cleanup(&url).context("cleanup failed")?;
            if !swept.failed.is_empty() {
                bail!(
                    "could not drop {} abandoned staging schema(s): {}",
                    swept.failed.len(),
                    swept.failed.join("; ")
                );
            }
            swept
                .dropped
                .into_iter()
                .map(|s| format!("staging schema {s}"))
                .collect()
        }
        Endpoint::Sqlite(path) => {
            let dir = if path.is_dir() {
                path.as_path()
            } else {
                match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => std::path::Path::new("."),
                }
            };
            if !dir.is_dir() {
                bail!("{}: no such directory", dir.display());
            }
            let mut removed = ferry_archive::leftover::sweep(dir);
            removed.extend(ferry_archive::leftover::sweep(&std::env::temp_dir()));
            removed
                .into_iter()
                .map(|p| p.display().to_string())
                .collect()
        }
    };
    if !quiet {
        for r in &removed {
            eprintln!("removed {}", printable(r));
        }
        eprintln!("cleanup: removed {} leftover(s)", removed.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Part size, in MiB, of archives written to a directory, a tar file or an object store.
const FILE_MB: u64 = 256;
/// Part size, in MiB, of an archive written to a stream (see `--file-mb`).
const STREAM_FILE_MB: u64 = 16;
/// zstd level of the Parquet pages of archives written to a directory, a tar file or an
/// object store.
const ZSTD_LEVEL: i32 = 3;
/// zstd level of an archive written to a stream (see `--zstd-level`): at level 1 the
/// SQLite export of the benchmark took 4.3 CPU-s against 5.1 at level 3 (task-clock, means
/// of 16 runs each; `docs/benchmarks.md`, fourteenth session), for a 3 % larger stream.
const STREAM_ZSTD_LEVEL: i32 = 1;

fn export(a: ExportArgs, quiet: bool, progress: &dyn ferry_archive::Progress) -> Result<ExitCode> {
    let location = archive_for_writing(&a.archive)?;
    // The key is read before the source: a wrong key fails before any work.
    if let Some(key) = &a.sign {
        let password = match &a.sign_password_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("--sign-password-file {}", f.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => std::env::var("FERRY_SIGN_PASSWORD").ok(),
        };
        let signer = ferry_archive::sign::Signer::from_file(key, password)?;
        if !quiet {
            eprintln!("signing with minisign key {}", signer.key_id());
        }
        ferry_archive::sign::signing(Some(signer));
    }
    // Encryption is set up before the source is opened, and fails closed: a recipient that
    // does not parse stops the export before it reads a row.
    if !a.encrypt_to.is_empty() || a.passphrase_file.is_some() {
        let passphrase = a
            .passphrase_file
            .as_deref()
            .map(ferry_archive::seal::read_passphrase)
            .transpose()?;
        let sealer = ferry_archive::seal::Sealer::new(&a.encrypt_to, passphrase)?;
        if !quiet {
            eprintln!("encrypting to {}", sealer.envelope().readers());
        }
        if let Some(r) = &a.report {
            eprintln!(
                "note: the report ({r}) names tables and counts, and is not encrypted; keep it with the same care"
            );
        }
        ferry_archive::seal::sealing(Some(sealer));
    }
    let jobs = jobs_or_cores(a.jobs)?;
    let write = WriteOptions {
        zstd_level: a.write.zstd_level.unwrap_or(match location {
            Location::Stdio => STREAM_ZSTD_LEVEL,
            _ => ZSTD_LEVEL,
        }),
        row_group_rows: a.write.row_group_rows.max(1),
        file_rows: a.write.file_rows.max(1),
        file_bytes: a
            .write
            .file_mb
            .unwrap_or(match location {
                Location::Stdio => STREAM_FILE_MB,
                _ => FILE_MB,
            })
            .max(1)
            << 20,
        ..WriteOptions::default()
    };
    match Endpoint::parse(&a.source)? {
        Endpoint::Sqlite(path) => {
            refuse_flags(
                "a SQLite source",
                &[(
                    !a.schemas.is_empty(),
                    "--schema",
                    "a SQLite file has one schema",
                )],
            )?;
            let options = ferry_sqlite::ExportOptions {
                batch_rows: a.write.batch_rows.max(1),
                jobs,
                selection: selection(&a.select)?,
                strict: a.select.strict,
                dry_run: a.select.dry_run,
                mask_key: mask_key(&a.select)?,
                resume: a.resume,
                ..Default::default()
            };
            let report = {
                let r = ferry_sqlite::export(&path, &location, write, &options, progress);
                progress.finish();
                r
            }
            .with_context(|| format!("export of {} failed", path.display()))?;
            report_export(
                &a,
                &location,
                &report.manifest,
                &report.tables,
                &report.plan,
                &[],
            );
            if a.select.dry_run {
                print_export_plan(&report.manifest, &report.plan, &report.notes);
                return Ok(ExitCode::SUCCESS);
            }
            if !quiet {
                eprint!("{}", printable(&summary_table(&report.tables)));
                for w in &report.manifest.warnings {
                    eprintln!("warning: {}", printable(&w.message));
                }
                for n in report.notes.iter().filter(|n| n.starts_with("--resume")) {
                    eprintln!("note: {}", printable(n));
                }
                eprintln!("exported {} to {}", path.display(), location.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Endpoint::Postgres(url) => {
            if a.resume && !quiet {
                eprintln!(
                    "note: --resume: a PostgreSQL export cannot continue an interrupted one, whose snapshot ended with it; this export starts over"
                );
            }
            let options = ferry_postgres::ExportOptions {
                schemas: a.schemas.clone(),
                batch_rows: a.write.batch_rows.max(1),
                jobs,
                selection: selection(&a.select)?,
                strict: a.select.strict,
                dry_run: a.select.dry_run,
                mask_key: mask_key(&a.select)?,
                ..Default::default()
            };
            let report = {
                let r = ferry_postgres::export(&url, &location, write, &options, progress);
                progress.finish();
                r
            }
            .context("export failed; no archive was written")?;
            report_export(
                &a,
                &location,
                &report.manifest,
                &report.tables,
                &report.plan,
                &report.notes,
            );
            if a.select.dry_run {
                print_export_plan(&report.manifest, &report.plan, &report.notes);
                return Ok(ExitCode::SUCCESS);
            }
            if !quiet {
                eprint!("{}", printable(&summary_table(&report.tables)));
                for w in &report.manifest.warnings {
                    eprintln!("warning: {}", printable(&w.message));
                }
                for n in &report.notes {
                    eprintln!("note: {}", printable(n));
                }
                eprintln!(
                    "exported {} to {}",
                    report.manifest.source.database,
                    location.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `import --data-only` into an existing SQLite database.
fn import_sqlite_data_only(
    a: &ImportArgs,
    location: &Location,
    path: &std::path::Path,
    quiet: bool,
    progress: &dyn ferry_archive::Progress,
) -> Result<ExitCode> {
    refuse_flags(
        "--data-only into SQLite",
        &[
            (
                a.replace,
                "--replace",
                "--data-only loads into the file as it is",
            ),
            (
                a.target_schema.is_some(),
                "--target-schema",
                "a SQLite file has one schema",
            ),
            (
                a.strict,
                "--strict",
                "SQLite takes every value by the column's affinity",
            ),
            (
                a.trust_archive,
                "--trust-archive",
                "--data-only runs no statement from the archive",
            ),
        ],
    )?;
    let options = ferry_sqlite::DataOnlyOptions {
        skip_missing_tables: a.skip_missing_tables,
        backup: !a.no_backup,
        dry_run: a.dry_run,
        numeric_real: a.numeric == crate::cli::NumericAs::Real,
        ..Default::default()
    };
    let report = {
        let r = ferry_sqlite::import_data_only(location, path, &options, progress);
        progress.finish();
        r
    }
    .with_context(|| format!("import into {} failed; it was not changed", path.display()))?;
    {
        use crate::report;
        report_import(location, &path.display().to_string(), &report.tables);
        for n in &report.notes {
            report::event("note", n);
        }
        for s in &report.skipped {
            report::event("skip", s);
        }
        for (name, result) in &report.checks {
            let status = if result == "ok" {
                report::Status::Pass
            } else if result.starts_with("warn:") {
                report::Status::Warn
            } else {
                report::Status::Fail
            };
            report::check(name, status, result);
        }
        if let Some(b) = &report.backup {
            report::event(
                "backup",
                &format!("the previous file is kept as {}", b.display()),
            );
        }
    }
    if !quiet || a.dry_run {
        eprint!("{}", printable(&summary_table(&report.tables)));
        for n in &report.notes {
            eprintln!("note: {}", printable(n));
        }
        for s in &report.skipped {
            eprintln!("skipped: {}", printable(s));
        }
        if let Some(b) = &report.backup {
            eprintln!("the previous {} is kept as {}", path.display(), b.display());
        }
        let checks: Vec<String> = report
            .checks
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if a.dry_run {
            eprintln!(
                "dry run: loaded and checked ({}), then rolled back; {} was not changed",
                checks.join(", "),
                path.display()
            );
        } else {
            eprintln!(
                "imported the rows of {} into {} in {:.1}s ({})",
                location.display(),
                path.display(),
                report.elapsed.as_secs_f64(),
                checks.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The selection options as the archive records them.
fn selection(a: &crate::cli::SelectArgs) -> Result<ferry_archive::selection::Selection> {
    use ferry_archive::selection::{IdSeed, Selection, TableCondition};
    Ok(Selection {
        tables: a.tables.clone(),
        exclude_tables: a.exclude_tables.clone(),
        exclude_table_data: a.exclude_table_data.clone(),
        filters: a
            .filters
            .iter()
            .map(|f| TableCondition::parse("--where", f))
            .collect::<Result<_, _>>()?,
        subset: a
            .subset
            .iter()
            .map(|f| TableCondition::parse("--subset", f))
            .collect::<Result<_, _>>()?,
        subset_ids: a
            .subset_ids
            .iter()
            .map(|f| IdSeed::read(f))
            .collect::<Result<_, _>>()?,
        exclude_columns: a.exclude_columns.clone(),
        masks: a
            .masks
            .iter()
            .map(|m| ferry_archive::mask::MaskSpec::parse(m))
            .collect::<Result<_, _>>()?,
    })
}

/// The masking key: the file's bytes (one trailing newline dropped), or FERRY_MASK_KEY.
fn mask_key(a: &crate::cli::SelectArgs) -> Result<Option<Vec<u8>>> {
    if let Some(path) = &a.mask_key_file {
        let mut key =
            std::fs::read(path).with_context(|| format!("--mask-key-file {}", path.display()))?;
        if key.ends_with(b"\n") {
            key.pop();
        }
        if key.is_empty() {
            bail!("--mask-key-file {}: the file is empty", path.display());
        }
        return Ok(Some(key));
    }
    Ok(std::env::var_os("FERRY_MASK_KEY").map(|k| k.into_encoded_bytes()))
}

/// `import --verify`: the comparison `verify --against` makes, reported as a check.
fn after_import_check(c: ferry_archive::Comparison, target: &str, quiet: bool) -> ExitCode {
    use crate::report;
    for n in c.notes.iter().filter(|_| !quiet) {
        eprintln!("note: {}", printable(n));
    }
    if c.differences.is_empty() {
        report::check(
            "against",
            report::Status::Pass,
            "the target holds exactly the archive's rows (as verify --against compares them)",
        );
        if !quiet {
            eprintln!("verified: {target} matches the archive");
        }
        ExitCode::SUCCESS
    } else {
        report::check("against", report::Status::Fail, &c.differences.join("; "));
        for d in &c.differences {
            eprintln!("{}", printable(d));
        }
        eprintln!(
            "ferry: the import finished, but {target} differs from the archive in {} place(s)",
            c.differences.len()
        );
        ExitCode::from(exit::MISMATCH)
    }
}

/// What every import hands to `--report`: endpoints and per-table counts. An import
/// refuses to commit unless each table loaded exactly the manifest's row count, so a
/// successful one reports them equal.
fn report_import(location: &Location, target: &str, tables: &[TableReport]) {
    use crate::report;
    report::endpoint("archive", location.display().to_string());
    report::endpoint("target", target.to_owned());
    for t in tables {
        report::table(&t.name, None, Some(t.rows), Some(t.rows));
    }
    report::check(
        "row_counts",
        report::Status::Pass,
        "each table loaded the row count its manifest records",
    );
}

/// What an export hands to `--report`.
fn report_export(
    a: &ExportArgs,
    location: &Location,
    m: &Manifest,
    tables: &[TableReport],
    plan: &[ferry_archive::selection::PlanRow],
    notes: &[String],
) {
    use crate::report;
    report::endpoint("source", display_endpoint(&a.source));
    report::endpoint("archive", location.display().to_string());
    if a.select.dry_run {
        for r in plan {
            report::table(&r.table, r.rows, None, None);
            report::event(
                "plan",
                &format!(
                    "{}: {} ({})",
                    r.table,
                    r.action.describe(),
                    r.reasons.join("; ")
                ),
            );
        }
        if plan.is_empty() {
            for t in &m.tables {
                report::table(&t.display_name(), t.rows, None, None);
            }
        }
    } else {
        for t in tables {
            // The rows read are the rows written: the writer counts both.
            report::table(&t.name, Some(t.rows), Some(t.rows), None);
        }
        report::check(
            "manifest_row_counts",
            report::Status::Pass,
            "every table's rows counted as written and recorded with a SHA-256 per file",
        );
    }
    for w in &m.warnings {
        report::event("warning", &w.message);
    }
    for n in notes {
        report::event("note", n);
    }
}

/// `export --dry-run`: one line per table on stdout, what it would hold and why.
fn print_export_plan(m: &Manifest, plan: &[ferry_archive::selection::PlanRow], notes: &[String]) {
    let mut out = String::new();
    if plan.is_empty() {
        // A whole export: every table, all rows.
        let _ = writeln!(out, "{:<32} {:<12} {:>12}", "TABLE", "ACTION", "ROWS");
        for t in &m.tables {
            let rows = t.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<32} {:<12} {rows:>12}",
                t.display_name(),
                "all rows"
            );
        }
    } else {
        let _ = writeln!(out, "{:<32} {:<12} {:>12}  WHY", "TABLE", "ACTION", "ROWS");
        for r in plan {
            let rows = r.rows.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<32} {:<12} {rows:>12}  {}",
                r.table,
                r.action.describe(),
                r.reasons.join("; ")
            );
        }
    }
    if crate::report::on_stdout() {
        eprint!("{}", printable(&out));
    } else {
        print!("{}", printable(&out));
    }
    for n in notes {
        eprintln!("note: {}", printable(n));
    }
    eprintln!("dry run: nothing was written");
}

fn print_plan(plan: &ferry_archive::ImportPlan) {
    let mut out = String::new();
    for s in &plan.statements {
        let _ = writeln!(out, "{};", s.trim_end_matches(';'));
    }
    for n in &plan.notes {
        let _ = writeln!(out, "-- converted: {}", printable(n));
        crate::report::event("conversion", n);
    }
    for s in &plan.skipped {
        let _ = writeln!(out, "-- skipped: {}", printable(s));
        crate::report::event("skip", s);
    }
    // With the report on stdout, the plan moves to stderr.
    if crate::report::on_stdout() {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
}

/// Text for a terminal: control characters (ESC, CR, a stray LF inside a name, ...) are
/// shown escaped, so that a name in an archive can neither forge output lines nor send
/// escape sequences. Line breaks that the output itself puts between lines are kept.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    escaped(s, |c| c.is_control() && c != '\n')
}

/// [`printable`], for text that must stay on one line (an error): line breaks escaped too.
pub fn printable_line(s: &str) -> std::borrow::Cow<'_, str> {
    escaped(s, char::is_control)
}

fn escaped(s: &str, escape: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(&escape) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if escape(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// The archive argument of `import`, `verify` and `inspect`: it must exist, and every
/// command says so in the same words.
fn archive_for_reading(arg: &str) -> Result<Location> {
    // file://PATH is the local PATH, as object store tools write it.
    let arg = arg.strip_prefix("file://").unwrap_or(arg);
    if let Some(location) = object_store_location(arg)? {
        return Ok(location);
    }
    let location = Location::parse_for_reading(arg);
    if let Location::Dir(p) | Location::Tar(p) = &location
        && std::fs::symlink_metadata(p).is_err()
    {
        bail!(
            "{}: no such archive (no file or directory of that name)",
            p.display()
        );
    }
    Ok(location)
}

/// The archive argument of `export`: refuses the mistakes that would otherwise produce
/// something the user did not ask for.
fn archive_for_writing(arg: &str) -> Result<Location> {
    // file://PATH is the local PATH, as object store tools write it.
    let arg = arg.strip_prefix("file://").unwrap_or(arg);
    let lower = arg.to_ascii_lowercase();
    if let Some(ext) = [
        ".tar.gz", ".tgz", ".gz", ".zst", ".tar.zst", ".xz", ".bz2", ".zip",
    ]
    .iter()
    .find(|e| lower.ends_with(*e))
    {
        let tool = match *ext {
            ".tar.gz" | ".tgz" | ".gz" => "gzip",
            ".xz" => "xz",
            ".bz2" => "bzip2",
            _ => "zstd",
        };
        bail!(
            "{arg}: ferry writes an uncompressed tar (*.tar) or a directory, not {ext}; to compress, pipe it: ferry export SOURCE - | {tool} > {arg}"
        );
    }
    if let Some(location) = object_store_location(arg)? {
        return Ok(location);
    }
    let location = Location::parse(arg);
    if location == Location::Stdio && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!(
            "refusing to write a binary archive to a terminal; name a file (ferry export SOURCE app.tar) or redirect stdout (ferry export SOURCE - > app.tar)"
        );
    }
    Ok(location)
}

/// `s3://bucket/prefix`, `az://container/prefix`, `gs://bucket/prefix` (and the other
/// object store URLs, refused by name).
fn object_store_location(arg: &str) -> Result<Option<Location>> {
    if !ferry_store::is_url(arg) {
        return Ok(None);
    }
    Ok(Some(ferry_store::open(arg)?.into_location()))
}

/// Whether two paths name the same file (or directory), links and `./` included.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A flag that does nothing for this source or target is a mistake, not something to ignore.
fn refuse_flags(what: &str, flags: &[(bool, &str, &str)]) -> Result<()> {
    match flags.iter().find(|(set, _, _)| *set) {
        Some((_, flag, hint)) => anyhow::bail!("{flag} does not apply to {what}: {hint}"),
        None => Ok(()),
    }
}

/// Most `--jobs` per core: more only adds connections and threads that wait for each other.
const JOBS_PER_CORE: usize = 8;

/// `--jobs`, by default the number of cores; at most [`JOBS_PER_CORE`] per core.
fn jobs_or_cores(jobs: Option<usize>) -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limit = cores * JOBS_PER_CORE;
    match jobs {
        Some(n) if n > limit => anyhow::bail!(
            "--jobs {n} is more than {JOBS_PER_CORE} per core on this machine's {cores} core(s); use at most {limit}"
        ),
        Some(n) => Ok(n.max(1)),
        None => Ok(cores),
    }
}

fn import(a: ImportArgs, quiet: bool, progress: &dyn ferry_archive::Progress) -> Result<ExitCode> {
    let jobs = jobs_or_cores(a.jobs)?;
    if a.verify && a.archive == "-" {
        bail!("--verify reads the archive a second time; give an archive path, not -");
    }
    if let Some(key) = &a.require_signature {
        ferry_archive::sign::require(Some(ferry_archive::sign::Verifier::parse(key)?));
    }
    use_keys(&a.keys)?;
    let location = archive_for_reading(&a.archive)?;
    if a.data_only
        && let Endpoint::Sqlite(path) = Endpoint::parse(&a.target)?
    {
        return import_sqlite_data_only(&a, &location, &path, quiet, progress);
    }
    if a.dry_run {
        let plan = match Endpoint::parse(&a.target)? {
            Endpoint::Sqlite(_) => ferry_sqlite::dry_run(
                &location,
                &ferry_sqlite::ImportOptions {
                    numeric_real: a.numeric == crate::cli::NumericAs::Real,
                    ..Default::default()
                },
            )?,
            Endpoint::Postgres(url) => ferry_postgres::dry_run(
                &location,
                &url,
                &ferry_postgres::ImportOptions {
                    target_schema: a.target_schema.clone(),
                    strict: a.strict,
                    data_only: a.data_only,
                    skip_missing_tables: a.skip_missing_tables,
                    ..Default::default()
                },
            )?,
        };
        print_plan(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    match Endpoint::parse(&a.target)? {
        Endpoint::Sqlite(path) => {
            if let Location::Dir(p) | Location::Tar(p) = &location
                && same_file(p, &path)
            {
                bail!(
                    "{}: the target is the archive itself; name a new database file (ferry import ARCHIVE DATABASE)",
                    path.display()
                );
            }
            refuse_flags(
                "a SQLite target",
                &[
                    (
                        a.clean,
                        "--clean",
                        "to replace an existing file, use --replace",
                    ),
                    (
                        a.target_schema.is_some(),
                        "--target-schema",
                        "a SQLite file has one schema",
                    ),
                    (
                        a.strict,
                        "--strict",
                        "SQLite takes every value; --strict is for PostgreSQL targets",
                    ),
                    (
                        a.jobs_per_table > 1,
                        "--jobs-per-table",
                        "a SQLite file has one writer",
                    ),
                    (
                        a.trust_archive,
                        "--trust-archive",
                        "SQLite runs no code from an archive; it is for PostgreSQL targets",
                    ),
                ],
            )?;
            let options = ferry_sqlite::ImportOptions {
                replace: a.replace,
                numeric_real: a.numeric == crate::cli::NumericAs::Real,
                resume: a.resume,
                full_check: a.full_check,
                ..Default::default()
            };
            let check = ferry_sqlite::integrity_pragma(&options);
            let report = {
                let r = ferry_sqlite::import(&location, &path, &options, progress);
                progress.finish();
                r
            }
            .with_context(|| {
                format!("import into {} failed; it was not changed", path.display())
            })?;
            {
                use crate::report;
                report_import(&location, &path.display().to_string(), &report.tables);
                for n in &report.notes {
                    report::event("conversion", n);
                }
                for s in &report.skipped {
                    report::event("skip", s);
                }
                report::check(check, report::Status::Pass, "ok");
                let fk = &report.foreign_key_violations;
                report::check(
                    "foreign_key_check",
                    if fk.is_empty() {
                        report::Status::Pass
                    } else {
                        report::Status::Warn
                    },
                    &if fk.is_empty() {
                        "ok".to_owned()
                    } else {
                        format!(
                            "{} violation(s) carried over from the source, which did not enforce them: {}",
                            fk.len(),
                            fk.join("; ")
                        )
                    },
                );
            }
            if !quiet {
                eprint!("{}", printable(&summary_table(&report.tables)));
                for n in &report.notes {
                    eprintln!("converted: {}", printable(n));
                }
                for s in &report.skipped {
                    eprintln!("skipped: {}", printable(s));
                }
                for v in &report.foreign_key_violations {
                    eprintln!(
                        "warning: foreign key violation carried over from the source: {}",
                        printable(v)
                    );
                }
                if let Some(b) = &report.backup {
                    eprintln!("the previous {} is kept as {}", path.display(), b.display());
                }
                eprintln!(
                    "imported {} into {} in {:.1}s ({check} ok)",
                    location.display(),
                    path.display(),
                    report.elapsed.as_secs_f64()
                );
            }
            if a.verify {
                let m = ferry_archive::read_manifest(&location)?;
                let c = ferry_sqlite::compare(&location, &m, &path)
                    .with_context(|| format!("comparing with {}", path.display()))?;
                return Ok(after_import_check(c, &path.display().to_string(), quiet));
            }
            Ok(ExitCode::SUCCESS)
        }
        Endpoint::Postgres(url) => {
            refuse_flags(
                "a PostgreSQL target",
                &[(
                    a.replace,
                    "--replace",
                    "to replace tables that already exist, use --clean",
                )],
            )?;
            // Parallel loading commits staging tables as the parts arrive; a stream's manifest
            // (and so its signature) comes last. With a key required, nothing may be written
            // before it is checked: load in the one transaction instead.
            let jobs = if a.require_signature.is_some() && !matches!(location, Location::Dir(_)) {
                if jobs > 1 && !quiet {
                    eprintln!(
                        "note: --require-signature with a tar or stream archive loads in one transaction (--jobs 1), so nothing is written before the signature is checked"
                    );
                }
                1
            } else {
                jobs
            };
            let options = ferry_postgres::ImportOptions {
                clean: a.clean,
                target_schema: a.target_schema.clone(),
                strict: a.strict,
                data_only: a.data_only,
                skip_missing_tables: a.skip_missing_tables,
                batch_rows: 16_384,
                jobs,
                jobs_per_table: a.jobs_per_table.max(1),
                trust_archive: a.trust_archive,
                resume: a.resume,
            };
            let report = {
                let r = ferry_postgres::import(&location, &url, &options, progress);
                progress.finish();
                r
            }
            .context("import failed; the target database was not changed")?;
            {
                use crate::report;
                report_import(&location, &display_endpoint(&url), &report.tables);
                for n in &report.notes {
                    report::event("conversion", n);
                }
                for s in &report.skipped {
                    report::event("skip", s);
                }
                report::check(
                    "constraints",
                    report::Status::Pass,
                    "every key, foreign key and check was validated by PostgreSQL before the commit",
                );
            }
            if !quiet {
                eprint!("{}", printable(&summary_table(&report.tables)));
                for n in &report.notes {
                    eprintln!("converted: {}", printable(n));
                }
                for s in &report.skipped {
                    eprintln!("skipped: {}", printable(s));
                }
                let how = match report.workers {
                    0 => "one transaction".to_owned(),
                    1 => "loaded on 1 connection, published in one transaction".to_owned(),
                    n => format!("loaded on {n} connections, published in one transaction"),
                };
                eprintln!(
                    "imported {} into {} in {:.1}s ({} DDL statements, {how})",
                    location.display(),
                    display_endpoint(&url),
                    report.elapsed.as_secs_f64(),
                    report.statements
                );
            }
            if a.verify {
                let m = ferry_archive::read_manifest(&location)?;
                let c = ferry_postgres::compare(&location, &m, &url, a.target_schema.as_deref())
                    .context("comparing failed")?;
                return Ok(after_import_check(c, &display_endpoint(&url), quiet));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(a: VerifyArgs, quiet: bool) -> Result<ExitCode> {
    let location = archive_for_reading(&a.archive)?;
    if let Some(key) = &a.key {
        ferry_archive::sign::require(Some(ferry_archive::sign::Verifier::parse(key)?));
    }
    use_keys(&a.keys)?;
    if a.against.is_some() && location == Location::Stdio {
        bail!("--against needs an archive path, not -");
    }
    let report = ferry_archive::verify(&location)?;
    let mut problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    if let (Some(db), Some(m)) = (&a.against, &report.manifest)
        && problems.is_empty()
    {
        let comparison = match Endpoint::parse(db)? {
            Endpoint::Sqlite(path) => ferry_sqlite::compare(&location, m, &path)
                .with_context(|| format!("comparing with {}", path.display()))?,
            Endpoint::Postgres(url) => {
                ferry_postgres::compare(&location, m, &url, a.target_schema.as_deref())
                    .context("comparing failed")?
            }
        };
        for n in comparison.notes.iter().filter(|_| !quiet) {
            eprintln!("note: {}", printable(n));
        }
        if m.selection.is_some() && !quiet {
            eprintln!(
                "note: this archive holds part of its source (see `ferry inspect`): compared with the whole database, the tables it filtered, subset or masked differ by design"
            );
        }
        problems.extend(comparison.differences);
    }
    {
        use crate::report as r;
        r::endpoint("archive", location.display().to_string());
        if let Some(m) = &report.manifest {
            for t in &m.tables {
                r::table(&t.display_name(), None, t.rows, None);
            }
        }
        let integrity = report.problems.is_empty() && report.manifest.is_some();
        r::check(
            "checksums",
            if integrity {
                r::Status::Pass
            } else {
                r::Status::Fail
            },
            &if integrity {
                format!(
                    "{} files match their SHA-256, {} rows decoded",
                    report.files_checked, report.rows_decoded
                )
            } else {
                report
                    .problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        );
        if let Some(db) = &a.against {
            r::endpoint("against", display_endpoint(db));
            if integrity {
                r::check(
                    "against",
                    if problems.is_empty() {
                        r::Status::Pass
                    } else {
                        r::Status::Fail
                    },
                    &if problems.is_empty() {
                        "the database holds exactly the archive's rows (content digests match)"
                            .to_owned()
                    } else {
                        problems.join("; ")
                    },
                );
            }
        }
    }
    // With the report on stdout, the results move to stderr.
    let say = |line: &str| {
        if crate::report::on_stdout() {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    if problems.is_empty() && report.manifest.is_some() {
        let against = a
            .against
            .as_deref()
            .map(|d| format!("; {} matches it", display_endpoint(d)))
            .unwrap_or_default();
        say(&format!(
            "ok: {} files, {} rows verified{against}",
            report.files_checked, report.rows_decoded
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            say(&printable(&p.to_string()));
        }
        eprintln!("ferry: verify found {} problem(s)", problems.len().max(1));
        Ok(ExitCode::from(exit::MISMATCH))
    }
}

/// How messages name a database: a SQLite path, or a PostgreSQL URL without its password.
fn display_endpoint(arg: &str) -> String {
    match Endpoint::parse(arg) {
        Ok(Endpoint::Sqlite(p)) => p.display().to_string(),
        Ok(Endpoint::Postgres(url)) => ferry_postgres::conn::ConnSpec::parse(&url)
            .map(|s| s.display())
            .unwrap_or_else(|_| "the PostgreSQL database".into()),
        Err(_) => arg.to_owned(),
    }
}

/// Reads the keys for encrypted archives (`--identity`, `--passphrase-file`).
fn use_keys(k: &crate::cli::KeyArgs) -> Result<()> {
    if k.identity.is_empty() && k.passphrase_file.is_none() {
        return Ok(());
    }
    let passphrase = k
        .passphrase_file
        .as_deref()
        .map(ferry_archive::seal::read_passphrase)
        .transpose()?;
    ferry_archive::seal::opening(Some(ferry_archive::seal::Opener::new(
        &k.identity,
        passphrase,
    )?));
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<ExitCode> {
    let location = archive_for_reading(&a.archive)?;
    use_keys(&a.keys)?;
    let manifest = match ferry_archive::read_manifest(&location) {
        Ok(m) => m,
        // Without keys, an encrypted archive still says what it is and who can read it.
        Err(err @ ferry_archive::ArchiveError::Encryption(_)) => {
            let (false, None, Some(e)) = (
                a.json,
                ferry_archive::seal::opener(),
                ferry_archive::seal::last_envelope(),
            ) else {
                return Err(err.into());
            };
            print!(
                "archive   {}\nformat    ferry-archive {} (encrypted)\nencrypted age, to {}\ncontents  not shown: give --identity FILE{}\n",
                location.display(),
                e.format_version,
                e.readers(),
                if e.recipients.iter().any(|r| r.kind == "passphrase") {
                    " or --passphrase-file FILE"
                } else {
                    ""
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    if let (true, Location::Remote(r)) = (a.json, &location) {
        // For scripts that read the parts where they lie: each file's own URL beside its path.
        let mut v: serde_json::Value = serde_json::from_slice(&manifest.to_json())?;
        for t in v["tables"].as_array_mut().into_iter().flatten() {
            for f in t["files"].as_array_mut().into_iter().flatten() {
                let path = f["path"].as_str().unwrap_or_default().to_owned();
                f["url"] = format!("{}/{path}", r.0.url()).into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if a.json {
        println!(
            "{}",
            String::from_utf8_lossy(&manifest.to_json()).trim_end()
        );
    } else {
        print!("{}", printable(&describe(&location, &manifest)));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(location: &Location, m: &Manifest) -> String {
    let mut out = String::new();
    let total_rows: u64 = m.tables.iter().filter_map(|t| t.rows).sum();
    let total_bytes: u64 = m
        .tables
        .iter()
        .flat_map(|t| t.files.iter())
        .map(|f| f.bytes)
        .sum();
    let _ = writeln!(out, "archive   {}", location.display());
    let _ = writeln!(
        out,
        "format    {} {}, written by {} {} at {}",
        m.format, m.format_version, m.created_by.tool, m.created_by.version, m.created_at
    );
    let _ = writeln!(
        out,
        "source    {} {}, database {}",
        m.source.engine, m.source.engine_version, m.source.database
    );
    if let Some(e) = ferry_archive::seal::last_envelope() {
        let _ = writeln!(
            out,
            "encrypted age (format {}), to {}",
            e.format_version,
            e.readers()
        );
    }
    match ferry_archive::sign::last_signer() {
        Some(id) => {
            let _ = writeln!(
                out,
                "signed    claims minisign key {id} (not checked here: ferry verify ARCHIVE --key KEY.pub)"
            );
        }
        None => {
            let _ = writeln!(out, "signed    no");
        }
    }
    if !m.options.is_empty() {
        let opts: Vec<String> = m.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "options   {}", opts.join(" "));
    }
    if let Some(s) = &m.selection {
        let mut parts = Vec::new();
        for (flag, list) in [
            ("-t", &s.tables),
            ("-T", &s.exclude_tables),
            ("--exclude-table-data", &s.exclude_table_data),
        ] {
            parts.extend(list.iter().map(|p| format!("{flag} {p}")));
        }
        parts.extend(
            s.filters
                .iter()
                .map(|f| format!("--where {}:{}", f.table, f.condition)),
        );
        parts.extend(
            s.subset
                .iter()
                .map(|f| format!("--subset {}:{}", f.table, f.condition)),
        );
        parts.extend(
            s.subset_ids
                .iter()
                .map(|f| format!("--subset-ids {}={} ({} ids)", f.table, f.file, f.count)),
        );
        parts.extend(
            s.exclude_columns
                .iter()
                .map(|c| format!("--exclude-column {c}")),
        );
        parts.extend(
            s.masks
                .iter()
                .map(|m| format!("--mask {}={}", m.column, m.rule)),
        );
        let _ = writeln!(out, "selection {}", printable_line(&parts.join("  ")));
    }
    let _ = writeln!(
        out,
        "tables    {} ({} rows, {} in {} files)",
        m.tables.len(),
        total_rows,
        human_bytes(total_bytes),
        m.tables.iter().map(|t| t.files.len()).sum::<usize>()
    );
    for t in &m.tables {
        let bytes: u64 = t.files.iter().map(|f| f.bytes).sum();
        let kind = if t.kind == "table" {
            String::new()
        } else {
            format!(" [{}]", t.kind)
        };
        let _ = writeln!(
            out,
            "\n  {}{kind}: {} rows, {} in {} file(s)",
            printable_line(&t.display_name()),
            t.rows.unwrap_or(0),
            human_bytes(bytes),
            t.files.len()
        );
        let width = t.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &t.columns {
            let mut notes = Vec::new();
            if let Some(d) = c.declared_type.as_deref().filter(|d| !d.is_empty()) {
                notes.push(format!("declared {d}"));
            }
            if !c.nullable {
                notes.push("not null".into());
            }
            if t.primary_key
                .as_ref()
                .is_some_and(|k| k.columns.contains(&c.name))
            {
                notes.push("primary key".into());
            }
            if let Some(g) = &c.generated {
                notes.push(format!(
                    "generated {}",
                    if g.stored { "stored" } else { "virtual" }
                ));
            }
            let _ = writeln!(
                out,
                "    {:width$}  {:12}  {}",
                printable_line(&c.name),
                c.logical_type.display(),
                notes.join(", ")
            );
        }
    }
    if !m.objects.is_empty() {
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for o in &m.objects {
            *kinds.entry(o.kind.as_str()).or_default() += 1;
        }
        let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(out, "\nobjects   {}", list.join(", "));
        for o in &m.objects {
            let on = o
                .table
                .as_deref()
                .filter(|t| *t != o.name)
                .map(|t| format!(" on {t}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {} {}{on}", o.kind, o.name);
        }
    }
    let _ = writeln!(out, "\nwarnings  {}", m.warnings.len());
    for w in &m.warnings {
        let details = if w.details.is_empty() {
            String::new()
        } else {
            format!(" {}", serde_json::Value::Object(w.details.clone()))
        };
        let _ = writeln!(out, "  [{}] {}{details}", w.code, w.message);
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The per-table summary printed after export and import.
fn summary_table(rows: &[TableReport]) -> String {
    let width = rows
        .iter()
        .map(|r| printable_line(&r.name).len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:width$}  {:>12}  {:>10}  {:>8}  {:>10}\n",
        "table", "rows", "size", "time", "rows/s"
    );
    for r in rows {
        let size = r.bytes.map(human_bytes).unwrap_or_default();
        let secs = r.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            format!("{:.0}", r.rows as f64 / secs)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:width$}  {:>12}  {size:>10}  {secs:>7.2}s  {rate:>10}",
            printable_line(&r.name),
            r.rows
        );
    }
    out
}

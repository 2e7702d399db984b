//! The command line. Stage one of two: clap validates the words; `commands` turns them into
//! the objects that do the work.

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
ARCHIVE is a directory, a path ending in .tar (one uncompressed tar file), or - for a tar
stream on stdout (export) or stdin (import, verify, inspect).
SOURCE and TARGET are a SQLite file (PATH or sqlite://PATH) or a PostgreSQL URL
(postgres://..., postgresql://...) or key=value conninfo string.

Exit codes: 0 success; 1 failure (nothing was published or committed); 2 bad command line;
3 verify found problems or differences; 130 interrupted (Ctrl-C or SIGTERM; what the run had
done was undone).";

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Move whole databases between SQLite and PostgreSQL through a portable, checksummed archive",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). FERRY_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Progress on stderr: bars on a terminal (auto), plain lines for logs, or none.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// PostgreSQL: seconds to wait for a connection (0: forever) [default: the URL's
    /// connect_timeout, else PGCONNECT_TIMEOUT, else 30].
    #[arg(long, global = true, value_name = "SECS")]
    pub connect_timeout: Option<u64>,
    /// Largest manifest.json or prelude.json an archive may have [default: 16].
    #[arg(long, global = true, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_manifest_mb: Option<u64>,
    /// Most warnings an archive's manifest may list [default: 20000].
    #[arg(long, global = true, value_name = "N")]
    pub max_warnings: Option<usize>,
    /// Largest single value (text or blob) an archive may hold [default: 256].
    #[arg(long, global = true, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_value_mb: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a database into an archive.
    #[command(after_help = "\
Examples:
  ferry export app.db backup/                 # directory archive
  ferry export sqlite://app.db backup.tar     # single tar file
  ferry export postgres://user@host/app app.tar --schema public
  ferry export app.db - | ssh host ferry import - /srv/app.db

The archive appears only when the export succeeded; a failed export leaves nothing behind.")]
    Export(Box<ExportArgs>),
    /// Load an archive into a new SQLite file or an existing PostgreSQL database.
    #[command(after_help = "\
Examples:
  ferry import backup/ restored.db
  ferry import backup.tar restored.db --replace   # keeps restored.db.bak-<time>
  cat backup.tar | ferry import - restored.db
  ferry import app.tar postgresql://user@host/newdb --target-schema tenant_1
  ferry import app.tar postgresql://user@host/app --data-only   # into tables made by migrations
  ferry import app.tar postgresql://user@host/app --dry-run     # print the plan, change nothing

The import is all or nothing: on failure the target is left as it was.")]
    Import(ImportArgs),
    /// Check an archive's integrity, or compare it with a live database.
    #[command(after_help = "\
Examples:
  ferry verify backup/
  ferry verify backup.tar --against app.db

Exit 0 when all is well; 3 with one line per problem otherwise.")]
    Verify(VerifyArgs),
    /// Describe an archive: source, tables, columns, types, row counts, sizes, warnings.
    #[command(after_help = "\
Examples:
  ferry inspect backup/
  ferry inspect backup.tar --json | jq .tables[].name")]
    Inspect(InspectArgs),
    /// Remove what killed runs left behind: staging schemas in a PostgreSQL database, or
    /// partial files beside a SQLite file or an archive. Imports and exports also do this
    /// themselves before they start; this is for a target that will not see another one.
    #[command(after_help = "\
Examples:
  ferry cleanup postgresql://user@host/app
  ferry cleanup /srv/app.db        # partial files in /srv
  ferry cleanup backups/           # partial files in backups/

Only leftovers whose run is no longer going are removed: a staging schema whose server
session has ended, or a file whose process has exited.")]
    Cleanup(CleanupArgs),
    /// Print a shell completion script (generated when ferry was built).
    #[command(after_help = "\
Examples:
  ferry completions bash > ~/.local/share/bash-completion/completions/ferry
  ferry completions zsh > ~/.zfunc/_ferry
  ferry completions fish > ~/.config/fish/completions/ferry.fish")]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page, in roff (generated when ferry was built): ferry man > ferry.1
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl Command {
    /// The last line of a run stopped by SIGINT or SIGTERM.
    pub fn interrupted_message(&self) -> &'static str {
        match self {
            Command::Export(_) => "interrupted; no archive was written",
            Command::Import(a) if a.resume => {
                "interrupted; the target was not changed, and what was loaded so far is kept for `ferry import --resume`"
            }
            Command::Import(_) => "interrupted; nothing was changed",
            _ => "interrupted",
        }
    }
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// A PostgreSQL URL or conninfo string, a SQLite file, or a directory.
    pub target: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The database to read: a SQLite file (PATH, sqlite://PATH) or a PostgreSQL URL or
    /// conninfo string.
    pub source: String,
    /// Where to write the archive: DIR, FILE.tar or - (stdout).
    pub archive: String,
    /// PostgreSQL: export only this schema (repeatable). Default: every user schema.
    #[arg(long = "schema", value_name = "NAME")]
    pub schemas: Vec<String>,
    /// Threads (default: the number of cores). PostgreSQL: tables exported at once, each on
    /// its own connection in one shared snapshot. SQLite: the value profile is read on two
    /// connections in one snapshot, and reading and Parquet encoding overlap.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// SQLite source, directory archive: stage in ARCHIVE.ferry-resume, keep it if the
    /// export fails, and continue from the tables it finished when the source file is
    /// provably unchanged (same file, size, modification time, change counter and WAL);
    /// otherwise start over and say so. A PostgreSQL export cannot continue another run's
    /// snapshot: with --resume it says so and starts over.
    #[arg(long)]
    pub resume: bool,
    /// Write a JSON report of the run to FILE (- for stdout, with everything else on
    /// stderr): counts per table, conversions, skips and warnings, the checks run, and an
    /// overall_status of PASS or FAIL that agrees with the exit code
    /// (spec/report.schema.json).
    #[arg(long, value_name = "FILE")]
    pub report: Option<String>,
    /// Sign the archive with this minisign secret key (Ed25519): `prelude.json.minisig` and
    /// `manifest.json.minisig`, which the standard minisign tool verifies. An encrypted key
    /// takes its password from --sign-password-file or FERRY_SIGN_PASSWORD; ferry never
    /// prompts.
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<std::path::PathBuf>,
    /// The password of the --sign key.
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub sign_password_file: Option<std::path::PathBuf>,
    /// Encrypt every entry of the archive with age to this recipient (repeatable): an age
    /// public key (age1...), an SSH public key (ssh-ed25519 or ssh-rsa ...), or a file of
    /// them, one per line. Only the format version and the recipients' key ids stay in the
    /// clear. This machine needs no secret key, and cannot read the archive back. (A
    /// --report is written in the clear.)
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    /// Encrypt with the passphrase on the first line of FILE (alone, or beside
    /// --encrypt-to).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Which part of the source an export takes. The archive records these (`ferry inspect`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Selecting part of the database")]
pub struct SelectArgs {
    /// Only tables matching this glob (repeatable): `users`, `app_*`, `public.*`; a
    /// double-quoted part is literal, as with pg_dump: `'"My Table"'`, `'public."Tr*"'`.
    #[arg(short = 't', long = "table", value_name = "PATTERN")]
    pub tables: Vec<String>,
    /// Leave out tables matching this glob (repeatable), with the indexes, views and foreign
    /// keys that need them; each removal is reported.
    #[arg(short = 'T', long = "exclude-table", value_name = "PATTERN")]
    pub exclude_tables: Vec<String>,
    /// Keep these tables' schema but not their rows (repeatable).
    #[arg(long = "exclude-table-data", value_name = "PATTERN")]
    pub exclude_table_data: Vec<String>,
    /// Only the rows of TABLE for which CONDITION (the source's SQL) holds (repeatable, one
    /// per table), read in the export's snapshot: 'events:created_at > now() - interval '7 days''.
    #[arg(long = "where", value_name = "TABLE:CONDITION")]
    pub filters: Vec<String>,
    /// Seed rows of a foreign-key-consistent subset (repeatable): the seeds, every row that
    /// references an included row (children, grandchildren, ...) and every row an included
    /// row references (parents, ...); tables no foreign key connects to a seed are copied
    /// whole. --dry-run shows why each table is in.
    #[arg(long = "subset", value_name = "TABLE:CONDITION")]
    pub subset: Vec<String>,
    /// Seeds given as primary-key values, one per line of FILE (repeatable).
    #[arg(long = "subset-ids", value_name = "TABLE=FILE")]
    pub subset_ids: Vec<String>,
    /// Leave a column out (repeatable): TABLE.COLUMN, globs allowed ('*.user_id'), with the
    /// keys, indexes, constraints and views that use it; each removal is reported.
    #[arg(long = "exclude-column", value_name = "TABLE.COLUMN")]
    pub exclude_columns: Vec<String>,
    /// Replace a column's values as they are written, so the secret never enters the archive
    /// (repeatable): TABLE.COLUMN=RULE, globs allowed ('*.email=email'). RULE is null,
    /// const:VALUE, hash (keyed, deterministic, keeps the type and uniqueness, and spreads to
    /// every foreign key the column takes part in, so joins survive) or email (a unique
    /// fake address).
    #[arg(long = "mask", value_name = "TABLE.COLUMN=RULE")]
    pub masks: Vec<String>,
    /// The key of the hash and email masks (else FERRY_MASK_KEY). The same key gives the
    /// same masked values; it is never written anywhere.
    #[arg(long, value_name = "FILE")]
    pub mask_key_file: Option<std::path::PathBuf>,
    /// Refuse, instead of reporting, rows that a --where leaves referencing rows that are
    /// not exported.
    #[arg(long)]
    pub strict: bool,
    /// Print what would be exported, table by table, with row counts from the snapshot;
    /// write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Parquet files")]
pub struct WriteArgs {
    /// zstd compression level for the Parquet pages (1-22). Default 3, or 1 when the
    /// archive is a stream (-): a stream is usually read at once by an import, where the
    /// export's CPU is the pipe's pace and a 3 % larger stream costs nothing.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: Option<i32>,
    /// Rows per Parquet row group (at most). The writer holds one row group per table in
    /// memory; 256 Ki rows kept peak memory a third lower than 1 Mi for a 6 % larger archive.
    #[arg(long, default_value_t = 1 << 18)]
    pub row_group_rows: usize,
    /// Rows per Parquet file before a table continues in the next part (at most).
    #[arg(long, default_value_t = 10_000_000)]
    pub file_rows: u64,
    /// Megabytes per Parquet file before a table continues in the next part (about).
    /// Default 256, or 16 when the archive is a stream (`-`): a reader of the stream can
    /// only load a part once it has all of it, so smaller parts let `ferry import -` load a
    /// table while the export is still writing the rest of it.
    #[arg(long, value_name = "MB")]
    pub file_mb: Option<u64>,
    /// Rows read from the source per batch.
    #[arg(long, default_value_t = 16_384)]
    pub batch_rows: usize,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive to read: DIR, FILE.tar or - (stdin).
    pub archive: String,
    /// The database to load into: a SQLite file (created) or a PostgreSQL URL or conninfo
    /// string (an existing database).
    pub target: String,
    /// SQLite: replace an existing target, keeping the old file as TARGET.bak-<timestamp>.
    #[arg(long)]
    pub replace: bool,
    /// PostgreSQL: drop the archive's tables (and objects) that already exist in the target.
    #[arg(long)]
    pub clean: bool,
    /// PostgreSQL: load a single-schema archive (or a SQLite archive) into this schema.
    #[arg(long, value_name = "NAME")]
    pub target_schema: Option<String>,
    /// Across engines: refuse, before writing anything, values that do not convert to their
    /// column's type, instead of widening the column (to text) and reporting it.
    #[arg(long)]
    pub strict: bool,
    /// Load only the rows, into tables that already exist (made by the application's own
    /// schema or migrations), matched by name; sequences (PostgreSQL) and sqlite_sequence
    /// (SQLite) are advanced past the data. A SQLite target is loaded in one transaction,
    /// checked (foreign_key_check, integrity_check) before the commit, and kept first as
    /// TARGET.bak-<timestamp>.
    #[arg(long, conflicts_with = "clean")]
    pub data_only: bool,
    /// Write a JSON report of the run to FILE (- for stdout, with everything else on
    /// stderr): counts per table, conversions, skips and warnings, the checks run, and an
    /// overall_status of PASS or FAIL that agrees with the exit code
    /// (spec/report.schema.json).
    #[arg(long, value_name = "FILE")]
    pub report: Option<String>,
    /// Refuse, before anything changes, an archive that is not signed by this minisign
    /// public key (a .pub file, or the key in base64).
    #[arg(long, value_name = "PUBKEY")]
    pub require_signature: Option<String>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// After the import, compare the target with the archive as `ferry verify --against`
    /// does (every value, through the mapping across engines), and fail with exit code 3
    /// if they differ. Needs an archive path, not -; not with --data-only.
    #[arg(long, conflicts_with = "data_only")]
    pub verify: bool,
    /// With --data-only into SQLite: do not keep TARGET.bak-<timestamp>.
    #[arg(long, requires = "data_only")]
    pub no_backup: bool,
    /// With --data-only: skip, and report, archive tables the target does not have. Without
    /// it such an archive is refused before anything is loaded.
    #[arg(long, requires = "data_only")]
    pub skip_missing_tables: bool,
    /// Print the statements, conversions and warnings of the import; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// PostgreSQL → SQLite: numeric values as exact TEXT (default) or as REAL (lossy
    /// beyond 15-17 significant digits).
    #[arg(long, value_enum, default_value = "text")]
    pub numeric: NumericAs,
    /// PostgreSQL: connections that load tables at once (default: the number of cores).
    /// Tables load in a staging schema and are published in one transaction; 1 loads
    /// everything in that transaction. SQLite targets have one writer and ignore it.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// SQLite: check the new file with PRAGMA integrity_check, which also looks up every
    /// index entry of every row, instead of PRAGMA quick_check (every page, b-tree, record
    /// and NOT NULL and CHECK constraint, in linear time). SQLite builds the indexes from
    /// the rows in the same transaction, so this re-checks SQLite, at about a third more
    /// time for a table with indexes.
    #[arg(long, conflicts_with = "data_only")]
    pub full_check: bool,
    /// PostgreSQL: connections that may load one table's parts at once. 1 (the default)
    /// loads each table on one connection with COPY FREEZE, which was faster on two
    /// cores; more spreads a large table's parts (see export --file-rows) over several
    /// connections, without FREEZE. At most --jobs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs_per_table: usize,
    /// PostgreSQL: the archive comes from someone whose code you would run. Lets its own
    /// functions run during the import (CHECKs, indexes and materialized views that call
    /// them) and be SECURITY DEFINER or in languages other than sql and plpgsql. Without it
    /// such an archive is refused before anything changes (spec/FORMAT.md §7.1).
    #[arg(long)]
    pub trust_archive: bool,
    /// Continue an import of this archive that was killed or failed, keeping what it had
    /// committed (checked against its record of the parts and their SHA-256s) and loading
    /// the rest; the result is published at once, as always. PostgreSQL: the tables a
    /// parallel import finished in staging (`ferry cleanup` drops them). SQLite: the file
    /// TARGET.ferry-resume, which only a --resume run makes (delete it to start over). If
    /// this run fails too, what it loaded is kept for the next --resume.
    #[arg(long, conflicts_with_all = ["data_only", "dry_run"])]
    pub resume: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, nothing otherwise.
    Auto,
    Bars,
    /// One line per table as it finishes, and every few seconds for long tables.
    Plain,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NumericAs {
    Text,
    Real,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The archive to check.
    pub archive: String,
    /// Also require the archive to be signed by this minisign public key (a .pub file, or
    /// the key in base64). `--require-signature`, as `import` spells it, is the same option.
    #[arg(long, value_name = "PUBKEY", visible_alias = "require-signature")]
    pub key: Option<String>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Write a JSON report of the run to FILE (- for stdout, with everything else on
    /// stderr): counts per table, conversions, skips and warnings, the checks run, and an
    /// overall_status of PASS or FAIL that agrees with the exit code
    /// (spec/report.schema.json).
    #[arg(long, value_name = "FILE")]
    pub report: Option<String>,

    /// Also compare the archive with this live database (SQLite file or PostgreSQL URL),
    /// through the cross-engine mapping when it is the other engine.
    #[arg(long, value_name = "DATABASE")]
    pub against: Option<String>,
    /// With --against PostgreSQL and a SQLite archive: the schema it was imported into.
    #[arg(long, value_name = "NAME", requires = "against")]
    pub target_schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The archive to describe.
    pub archive: String,
    /// Print the manifest as JSON instead of the report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// The keys that open an encrypted archive (`ferry export --encrypt-to`).
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Decrypt with this identity (repeatable): an age identity file (the
    /// AGE-SECRET-KEY-1... lines age-keygen writes) or an unencrypted SSH private key.
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<std::path::PathBuf>,
    /// Decrypt an archive encrypted with a passphrase: the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<std::path::PathBuf>,
}

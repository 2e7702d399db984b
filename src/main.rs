//! The `ferry` binary: argument parsing, dispatch, and turning errors into one clear line and
//! an exit code. Everything that does work lives in the crates under `crates/`.

// Denied, not forbidden: `malloc_tuning` is the one place that needs it.
#![deny(unsafe_code)]

mod cli;
mod commands;
mod endpoint;
mod malloc_tuning;
mod progress;
mod report;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, documented in `ferry --help` and the README.
pub mod exit {
    /// The command failed; nothing was published or committed.
    pub const FAILURE: u8 = 1;
    /// The command line was wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// `verify` ran and found problems or differences.
    pub const MISMATCH: u8 = 3;
    /// SIGINT or SIGTERM stopped the run; what it had done was undone (128 + SIGINT, as
    /// shells report it).
    pub const INTERRUPTED: u8 = 130;
}

fn main() -> ExitCode {
    malloc_tuning::return_freed_memory();
    let cli = cli::Cli::parse();
    init_logging(&cli);
    ferry_archive::limits::set(limits(&cli));
    let interrupted = cli.command.interrupted_message();
    // A panic inside the Parquet decoder on a corrupt part is caught and reported as one
    // error line naming the part; it must not also print a backtrace.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !ferry_archive::decoding() {
            default_hook(info);
        }
    }));
    if let Err(e) = catch_signals() {
        eprintln!("ferry: error: cannot install the signal handlers: {e}");
        return ExitCode::from(exit::FAILURE);
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(_) if ferry_archive::interrupt::requested() => {
            // Whatever failed last (a cancelled query, a closed pipe) is the interruption's
            // doing, not a problem to report.
            eprintln!("ferry: {interrupted}");
            ExitCode::from(exit::INTERRUPTED)
        }
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // One line: the context chain, outermost first.
            let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            // One line, whatever the messages hold.
            let line = dedup_chain(&chain).join(": ");
            eprintln!("ferry: error: {}", commands::printable_line(&line));
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// The resource limits on archives read by this run (`spec/FORMAT.md` §7, resource limits).
fn limits(cli: &cli::Cli) -> ferry_archive::limits::Limits {
    use ferry_archive::limits::{Limits, MIB};
    let d = Limits::default();
    Limits {
        document_bytes: cli
            .max_manifest_mb
            .map_or(d.document_bytes, |m| m.saturating_mul(MIB)),
        warnings: cli.max_warnings.unwrap_or(d.warnings),
        value_bytes: cli
            .max_value_mb
            .map_or(d.value_bytes, |m| m.saturating_mul(MIB)),
    }
}

/// The first SIGINT or SIGTERM asks the run to stop: every batch loop checks the flag and
/// fails, and the failure paths undo the run (rollback, staging schemas dropped, partial
/// files removed). A second one exits at once, for a user who will not wait for that; the
/// next run sweeps what it leaves.
fn catch_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = ferry_archive::interrupt::flag();
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(exit::INTERRUPTED),
            flag.clone(),
        )?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(())
}

/// thiserror messages often repeat their source's text; print each piece once.
fn dedup_chain(chain: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for piece in chain {
        // The driver wraps the server's message as `db error: ERROR: <message>\nDETAIL: ...`
        // (or `FATAL:`); its first line is what the outer message already quotes.
        let core = piece
            .trim_start_matches("db error")
            .trim_start_matches(": ")
            .trim_start_matches("ERROR:")
            .trim_start_matches("FATAL:")
            .lines()
            .next()
            .unwrap_or("")
            .trim();
        if !core.is_empty() && !out.iter().any(|prev| prev.contains(core)) {
            out.push(piece);
        }
    }
    out
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(cli: &cli::Cli) {
    // -v and -vv are about ferry's own steps; the libraries' internals (rustls, the
    // PostgreSQL driver) come in only at -vvv.
    let ours = |level: &str| {
        [
            "ferry",
            "ferry_archive",
            "ferry_sqlite",
            "ferry_postgres",
            "ferry_sql",
        ]
        .map(|c| format!("{c}={level}"))
        .join(",")
    };
    let directives = match (cli.quiet, cli.verbose) {
        (true, _) => "error".to_owned(),
        (false, 0) => "warn".to_owned(),
        (false, 1) => format!("warn,{}", ours("info")),
        (false, 2) => format!("warn,{}", ours("debug")),
        _ => "trace".to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

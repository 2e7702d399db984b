//! `--report FILE.json`: one JSON document per run of `export`, `import` or `verify`, for
//! scripts and auditors (schema: `spec/report.schema.json`).
//!
//! The commands already compute everything a report holds (counts, conversions, checks);
//! they hand it to this module as they print it, through a process-wide collector that
//! exists only when `--report` was given. The document is written once, after the command
//! ends, whether it succeeded or not, and its `overall_status` agrees with the exit code:
//! `PASS` exactly when the exit code is 0. Nothing secret enters it: endpoints are shown as
//! `display_endpoint` shows them (no password), and arguments that are connection strings
//! are replaced by that display.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// The version of `spec/report.schema.json` the documents follow.
pub const REPORT_VERSION: &str = "1.0.0";

struct Collector {
    destination: String,
    command: String,
    started: Instant,
    started_at: String,
    endpoints: serde_json::Map<String, Value>,
    tables: Vec<Value>,
    events: Vec<Value>,
    checks: Vec<Value>,
}

static REPORT: Mutex<Option<Collector>> = Mutex::new(None);

fn with(f: impl FnOnce(&mut Collector)) {
    if let Ok(mut guard) = REPORT.lock()
        && let Some(c) = guard.as_mut()
    {
        f(c);
    }
}

/// Starts collecting for `command`, to be written to `destination` (`-` is stdout).
pub fn start(command: &str, destination: &str) {
    if let Ok(mut guard) = REPORT.lock() {
        *guard = Some(Collector {
            destination: destination.to_owned(),
            command: command.to_owned(),
            started: Instant::now(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            endpoints: serde_json::Map::new(),
            tables: Vec::new(),
            events: Vec::new(),
            checks: Vec::new(),
        });
    }
}

/// Whether the report goes to stdout (so the command's own stdout output moves to stderr).
pub fn on_stdout() -> bool {
    REPORT
        .lock()
        .map(|g| g.as_ref().is_some_and(|c| c.destination == "-"))
        .unwrap_or(false)
}

/// `source`, `target` or `archive`, as shown to the user (never with a password).
pub fn endpoint(role: &str, shown: String) {
    with(|c| {
        c.endpoints.insert(role.to_owned(), json!(redact(&shown)));
    });
}

/// An argument with any password in it replaced by `****`: a URL's `user:password@`, and
/// a conninfo or query `password=...`, wherever they appear in the word (`--against=URL`, a
/// mistyped scheme). It errs on the side of hiding.
pub fn redact(arg: &str) -> String {
    // A secret key given by mistake (an age identity, a private key's text) is hidden whole.
    if ["AGE-SECRET-KEY-", "-----BEGIN"]
        .iter()
        .any(|m| arg.to_ascii_uppercase().contains(m))
    {
        return "****".into();
    }
    let mut out = arg.to_owned();
    if let Some(scheme) = out.find("://") {
        let rest = scheme + 3;
        let end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..end].rfind('@').map(|i| rest + i)
            && let Some(colon) = out[rest..at].find(':').map(|i| rest + i)
        {
            out.replace_range(colon + 1..at, "****");
        }
    }
    let mut from = 0;
    while let Some(i) = out[from..]
        .to_ascii_lowercase()
        .find("password=")
        .map(|i| from + i)
    {
        let start = i + "password=".len();
        let end = out[start..]
            .find(|c: char| c.is_whitespace() || c == '&')
            .map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "****");
        from = start + 4;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden_wherever_they_are() {
        for (arg, shown) in [
            ("postgresql://u:pw@h/db", "postgresql://u:****@h/db"),
            (
                "--against=postgress://u:s3cr:et@h:5/db?x=1",
                "--against=postgress://u:****@h:5/db?x=1",
            ),
            (
                "host=h passfile=x password=hunter2 dbname=d",
                "host=h passfile=x password=**** dbname=d",
            ),
            (
                "postgres://h/db?password=pw&sslmode=require",
                "postgres://h/db?password=****&sslmode=require",
            ),
            (
                "--encrypt-to=AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
                "****",
            ),
            ("app.db", "app.db"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
        ] {
            assert_eq!(redact(arg), shown, "{arg}");
        }
    }
}

/// One table's counts: in the source (export), in the archive, loaded (import).
pub fn table(name: &str, source: Option<u64>, archive: Option<u64>, loaded: Option<u64>) {
    with(|c| {
        let counts: Vec<u64> = [source, archive, loaded].into_iter().flatten().collect();
        c.tables.push(json!({
            "name": name,
            "source_rows": source,
            "archive_rows": archive,
            "loaded_rows": loaded,
            "match": counts.windows(2).all(|w| w[0] == w[1]),
        }));
    });
}

/// A conversion, rename, skip, warning or note, as printed.
pub fn event(kind: &str, message: &str) {
    with(|c| c.events.push(json!({ "kind": kind, "message": message })));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Found something worth reading that does not fail the run (foreign-key violations
    /// carried over from a source that never enforced them).
    Warn,
    Fail,
}

/// A check that ran, with its result.
pub fn check(name: &str, status: Status, detail: &str) {
    with(|c| {
        c.checks.push(json!({
            "name": name,
            "status": match status {
                Status::Pass => "PASS",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            },
            "detail": detail,
        }))
    });
}

/// Writes the report for a finished command; `outcome` is what the command returned. A
/// failure to write the report is itself an error.
pub fn finish(outcome: &Result<ExitCode>, args: Vec<String>) -> Result<()> {
    let Some(c) = REPORT.lock().ok().and_then(|mut g| g.take()) else {
        return Ok(());
    };
    let (status, error) = match outcome {
        Ok(code) if *code == ExitCode::SUCCESS => ("PASS", None),
        Ok(_) => (
            "FAIL",
            Some("the command found problems (see checks)".to_owned()),
        ),
        Err(e) => ("FAIL", Some(format!("{e:#}"))),
    };
    let doc = json!({
        "report_version": REPORT_VERSION,
        "tool": { "name": "ferry", "version": env!("CARGO_PKG_VERSION") },
        "command": c.command,
        "arguments": args,
        "endpoints": c.endpoints,
        "started_at": c.started_at,
        "duration_seconds": c.started.elapsed().as_secs_f64(),
        "tables": c.tables,
        "events": c.events,
        "checks": c.checks,
        "overall_status": status,
        "error": error,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes");
    text.push('\n');
    if c.destination == "-" {
        use std::io::Write;
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the report to stdout")?;
    } else {
        // Written whole beside its destination and renamed, so a reader never sees half.
        let path = std::path::Path::new(&c.destination);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("--report {}: creating it", c.destination))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())
            .with_context(|| format!("--report {}: writing it", c.destination))?;
        tmp.persist(path)
            .with_context(|| format!("--report {}: writing it", c.destination))?;
    }
    Ok(())
}

//! Rendering the adapters' progress reports: indicatif bars on a terminal (one per table
//! being worked on, plus an overall count), plain lines for logs, or nothing.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_archive::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressMode;

pub fn reporter(mode: ProgressMode, quiet: bool) -> Box<dyn Progress> {
    let terminal = std::io::stderr().is_terminal();
    let shown: Box<dyn Progress> = match (mode, quiet) {
        (_, true) | (ProgressMode::None, _) => Box::new(ferry_archive::NoProgress),
        (ProgressMode::Auto, _) if !terminal => Box::new(ferry_archive::NoProgress),
        (ProgressMode::Plain, _) => Box::new(Plain::default()),
        _ => Box::new(Bars::new()),
    };
    Box::new(Logged {
        shown,
        tables: Mutex::new(HashMap::new()),
    })
}

/// Every table's start and end as `info` events (shown with -v), whatever is on screen.
struct Logged {
    shown: Box<dyn Progress>,
    /// Rows and bytes so far, and the start, per table.
    tables: Mutex<HashMap<String, (u64, u64, Instant)>>,
}

impl Progress for Logged {
    fn table_started(&self, table: &str, rows: Option<u64>) {
        tracing::info!(table, expected_rows = rows, "table started");
        if let Ok(mut t) = self.tables.lock() {
            t.insert(table.to_owned(), (0, 0, Instant::now()));
        }
        self.shown.table_started(table, rows);
    }

    fn advance(&self, table: &str, rows: u64, bytes: u64) {
        if let Ok(mut t) = self.tables.lock()
            && let Some(e) = t.get_mut(table)
        {
            e.0 += rows;
            e.1 += bytes;
        }
        self.shown.advance(table, rows, bytes);
    }

    fn table_finished(&self, table: &str) {
        if let Some((rows, bytes, started)) =
            self.tables.lock().ok().and_then(|mut t| t.remove(table))
        {
            tracing::info!(
                table,
                rows,
                bytes,
                seconds = started.elapsed().as_secs_f64(),
                "table finished"
            );
        }
        self.shown.table_finished(table);
    }

    fn finish(&self) {
        self.shown.finish();
    }
}

struct Bars {
    multi: MultiProgress,
    tables: Mutex<HashMap<String, ProgressBar>>,
    overall: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let overall = multi.add(ProgressBar::new_spinner());
        overall.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} tables done, {msg}")
                .expect("template"),
        );
        overall.enable_steady_tick(Duration::from_millis(250));
        Bars {
            multi,
            tables: Mutex::new(HashMap::new()),
            overall,
        }
    }
}

impl Progress for Bars {
    fn table_started(&self, table: &str, rows: Option<u64>) {
        let bar = match rows {
            Some(n) => {
                let b = ProgressBar::new(n);
                b.set_style(
                    ProgressStyle::with_template(
                        "  {prefix:24!} [{bar:30}] {human_pos}/{human_len} rows, eta {eta}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                b
            }
            None => {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("  {prefix:24!} {spinner} {human_pos} rows")
                        .expect("template"),
                );
                b
            }
        };
        let bar = self.multi.add(bar);
        bar.set_prefix(table.to_owned());
        self.overall.set_message(format!("working on {table}"));
        if let Ok(mut t) = self.tables.lock() {
            t.insert(table.to_owned(), bar);
        }
    }

    fn advance(&self, table: &str, rows: u64, _bytes: u64) {
        if let Ok(t) = self.tables.lock()
            && let Some(b) = t.get(table)
        {
            b.inc(rows);
        }
    }

    fn table_finished(&self, table: &str) {
        if let Ok(mut t) = self.tables.lock()
            && let Some(b) = t.remove(table)
        {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        self.overall.inc(1);
    }

    fn finish(&self) {
        if let Ok(mut t) = self.tables.lock() {
            for (_, b) in t.drain() {
                b.finish_and_clear();
            }
        }
        self.overall.finish_and_clear();
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish();
    }
}

#[derive(Default)]
struct Plain {
    state: Mutex<HashMap<String, (Instant, u64, Instant)>>,
}

impl Progress for Plain {
    fn table_started(&self, table: &str, rows: Option<u64>) {
        let total = rows.map(|n| format!(" ({n} rows)")).unwrap_or_default();
        eprintln!(
            "progress: {}: started{total}",
            crate::commands::printable_line(table)
        );
        if let Ok(mut s) = self.state.lock() {
            let now = Instant::now();
            s.insert(table.to_owned(), (now, 0, now));
        }
    }

    fn advance(&self, table: &str, rows: u64, _bytes: u64) {
        if let Ok(mut s) = self.state.lock()
            && let Some((started, done, last)) = s.get_mut(table)
        {
            *done += rows;
            if last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                let rate = *done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                eprintln!(
                    "progress: {}: {done} rows, {rate:.0} rows/s",
                    crate::commands::printable_line(table)
                );
            }
        }
    }

    fn table_finished(&self, table: &str) {
        if let Ok(mut s) = self.state.lock()
            && let Some((started, done, _)) = s.remove(table)
        {
            eprintln!(
                "progress: {}: done, {done} rows in {:.1}s",
                crate::commands::printable_line(table),
                started.elapsed().as_secs_f64()
            );
        }
    }
}

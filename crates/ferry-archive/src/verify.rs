//! `ferry verify`: every check the reader makes, collected instead of stopping at the first,
//! plus a full decode of every part to prove its rows are there.

use std::collections::HashMap;

use crate::error::ArchiveError;
use crate::location::Location;
use crate::manifest::{Manifest, Table};
use crate::reader::{self, Part, PartData, Visitor};

/// The outcome of verifying an archive.
#[derive(Debug, Default)]
pub struct Report {
    pub manifest: Option<Manifest>,
    /// One entry per problem, each naming the file it concerns.
    pub problems: Vec<ArchiveError>,
    pub files_checked: usize,
    pub rows_decoded: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.manifest.is_some()
    }
}

struct Collect {
    problems: Vec<ArchiveError>,
    decoded: HashMap<String, u64>,
}

impl Visitor for Collect {
    type Error = ArchiveError;

    fn part(&mut self, _table: &Table, part: &Part<'_>) -> Result<(), ArchiveError> {
        let mut rows = 0u64;
        let result = part.batches(64 * 1024).and_then(|batches| {
            for batch in batches {
                let batch = batch?;
                rows += batch.num_rows() as u64;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                tracing::info!(part = part.path, rows, "part decoded");
                crate::interrupt::pause_point("verify:part");
                self.decoded.insert(part.path.to_owned(), rows);
            }
            // An interruption is not a problem of the archive: the run stops.
            Err(ArchiveError::Interrupted) => return Err(ArchiveError::Interrupted),
            Err(e) => self.problems.push(e),
        }
        Ok(())
    }

    fn problem(&mut self, problem: ArchiveError) -> Result<(), ArchiveError> {
        if let ArchiveError::Interrupted = problem {
            return Err(problem);
        }
        self.problems.push(problem);
        Ok(())
    }
}

/// Verifies the archive at `location`. Only an I/O failure of the archive as a whole (it
/// cannot be opened) is an `Err`; everything wrong inside it is a problem in the report.
pub fn verify(location: &Location) -> Result<Report, ArchiveError> {
    let mut c = Collect {
        problems: Vec::new(),
        decoded: HashMap::new(),
    };
    let manifest = match reader::read(location, &mut c) {
        Ok(m) => m,
        Err(ArchiveError::Interrupted) => return Err(ArchiveError::Interrupted),
        Err(e) => {
            c.problems.push(e);
            None
        }
    };
    let mut report = Report {
        files_checked: c.decoded.len(),
        rows_decoded: c.decoded.values().sum(),
        ..Report::default()
    };
    if let Some(m) = &manifest {
        for f in m.tables.iter().flat_map(|t| t.files.iter()) {
            if let Some(&n) = c.decoded.get(&f.path) {
                let reported = c
                    .problems
                    .iter()
                    .any(|p| matches!(p, ArchiveError::Rows { path, .. } if path == &f.path));
                if n != f.rows && !reported {
                    c.problems.push(ArchiveError::Rows {
                        path: f.path.clone(),
                        expected: f.rows,
                        actual: n,
                    });
                }
            }
        }
    }
    report.problems = c.problems;
    report.manifest = manifest;
    Ok(report)
}

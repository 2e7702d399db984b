//! Cooperative interruption: the binary turns SIGINT and SIGTERM into a flag, and every
//! batch loop of both directions asks for it with [`check`]. An interrupted run then fails
//! like any other failed run, through the same paths: the import transaction rolls back,
//! staging schemas are dropped, and partial files are removed by their guards. That is why
//! there is no cleanup code specific to signals.
//!
//! Also holds a test hook, [`pause_point`]: the integration tests need to stop a run at a
//! known point to send it a signal or kill it, and timing alone cannot find such a point
//! on a fast machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::ArchiveError;

static REQUESTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// The flag a signal handler sets (`signal_hook::flag::register` takes it as an `Arc`).
pub fn flag() -> Arc<AtomicBool> {
    Arc::clone(&REQUESTED)
}

/// Whether an interruption was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails with [`ArchiveError::Interrupted`] once an interruption was asked for.
pub fn check() -> Result<(), ArchiveError> {
    if requested() {
        Err(ArchiveError::Interrupted)
    } else {
        Ok(())
    }
}

/// Test hook: when the environment variable `FERRY_PAUSE_AT` names this point, writes
/// `ferry: paused at NAME` to stderr and waits there until the run is interrupted (or
/// killed), or until the file named by `FERRY_RESUME_FILE` exists, then returns. Only the
/// first arrival pauses (a point inside a loop lets the run go on once resumed). Unset, it
/// costs one environment lookup per call, and callers call it once per batch or phase,
/// never per row.
pub fn pause_point(name: &str) {
    static PAUSED: AtomicBool = AtomicBool::new(false);
    let Some(wanted) = std::env::var_os("FERRY_PAUSE_AT") else {
        return;
    };
    if wanted != name || PAUSED.swap(true, Ordering::SeqCst) {
        return;
    }
    let resume = std::env::var_os("FERRY_RESUME_FILE").map(std::path::PathBuf::from);
    eprintln!("ferry: paused at {name}");
    while !requested() && !resume.as_ref().is_some_and(|f| f.exists()) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

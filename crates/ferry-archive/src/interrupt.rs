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

/// Asks for an interruption, as a signal would.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
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
/// `ferry: paused at NAME` to stderr and waits there until the run is interrupted (or killed),
/// then returns. Unset, it costs one environment lookup per call, and callers call it once
/// per phase, not per row.
pub fn pause_point(name: &str) {
    let Some(wanted) = std::env::var_os("FERRY_PAUSE_AT") else {
        return;
    };
    if wanted != name {
        return;
    }
    eprintln!("ferry: paused at {name}");
    while !requested() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

//! glibc's malloc, told to give freed memory back.
//!
//! By default glibc raises its mmap threshold each time a large block is freed (up to 32 MiB),
//! after which batch-sized buffers come from the arenas instead of their own mappings, and
//! an arena keeps what is freed inside it. Over a long run the process then holds far more
//! than it uses: a PostgreSQL import of 20 M rows peaked at 112 MB of RSS for 64 MB of live
//! heap (heaptrack), against 70 MB for a tenth of the rows, which is memory growing with
//! the data while the data structures are bounded. Fixing the mmap threshold at 2 MiB
//! and the trim threshold at 1 MiB (which stops the threshold from moving) brought that run
//! to 80 MB. Lower thresholds saved a little more memory for much more system time: at
//! 128 KiB or 1 MiB every batch buffer gets its own mapping and its pages faulted in again,
//! which doubled the system time of an export (`docs/benchmarks.md`).

/// Sets glibc's mmap and trim thresholds; nothing on other C libraries.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn return_freed_memory() {
    // SAFETY: mallopt only sets an allocator parameter; it takes plain integers, is
    // thread-safe, and an unknown or refused parameter is reported by its return value,
    // which is ignored: the default behaviour is correct, only larger.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_freed_memory() {}

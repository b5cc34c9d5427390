//! Gives the heap memory that closed connections freed back to the operating system.
//!
//! A connection costs about 15 KiB of heap while open (hyper's read and write buffers, the
//! task, the socket's bookkeeping). When thousands close at once (a burst of guests, or one
//! source's connections closed by the per-source cap), glibc's allocator keeps the freed
//! memory in its arenas: it is reused by later connections (RSS stops growing; measured in
//! `docs/security.md`), but it is not returned to the system, so RSS stays at the peak. Every
//! [`TRIM_INTERVAL`], [`trim`] asks glibc to release free pages (`malloc_trim(0)`, which walks
//! every arena and `madvise`s the free pages away); elsewhere it does nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often free heap pages are handed back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Hands free heap pages back every [`TRIM_INTERVAL`] until `shutdown`.
pub async fn trim(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TRIM_INTERVAL) => {}
        }
        release_free_pages();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_pages() {
    // SAFETY: malloc_trim takes no pointers and only returns free memory of the allocator's own
    // arenas to the kernel; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}

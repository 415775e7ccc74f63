//! Giving freed memory back. glibc's malloc keeps what a burst freed (hundreds of TLS
//! handshakes at once, a relist of every pod) in its per-thread arenas, so the resident size
//! stays at the burst's peak for as long as the process lives, and a memory limit sized for
//! the live data is hit after the first storm. A trim every few seconds returns free pages to
//! the kernel; it costs a walk of the arenas (well under a millisecond at this service's size).

use std::time::Duration;

/// How often the arenas are trimmed.
pub const TRIM_PERIOD: Duration = Duration::from_secs(10);

/// Starts the trimming thread (glibc only; other allocators return memory themselves).
pub fn spawn_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_PERIOD);
                    // SAFETY: malloc_trim takes no pointers and only releases free memory;
                    // glibc locks each arena while it walks it.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the memory trimming thread; memory freed after bursts stays reserved");
        }
    }
}

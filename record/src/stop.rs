//! Stopping on SIGINT or SIGTERM: the handler only stores to an atomic flag (an
//! async-signal-safe operation); the record and replay loops poll the flag.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Relaxed: the flag carries no data; pollers only need to see it eventually.
    STOP.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM (once per process is enough;
/// installing again is harmless).
pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` has the C signature `signal` expects and does nothing
        // but an atomic store, which is async-signal-safe; replacing the default
        // disposition of these two signals affects only how this process stops.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Whether a stop signal arrived.
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

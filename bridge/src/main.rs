//! `tensorlane-bridge`: export local lanes to Zenoh and import Zenoh keys into local
//! lanes (docs/BRIDGE.md). Runs until SIGINT or SIGTERM, then prints one `stats` line
//! per lane on standard error.

#[cfg(not(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle")))))]
fn main() {
    eprintln!(
        "tensorlane-bridge: built without the shared-memory layer (Linux, no loom or shuttle)"
    );
    std::process::exit(2);
}

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod bridge {
    use clap::Parser;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Set by the signal handler; polled by the main thread.
    static SIGNALLED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: libc::c_int) {
        // Only an atomic store: async-signal-safe.
        SIGNALLED.store(true, Ordering::Relaxed);
    }

    pub fn main() -> std::process::ExitCode {
        let options = tensorlane_bridge::Options::parse();
        if options.export.is_empty() && options.import.is_empty() {
            eprintln!("tensorlane-bridge: nothing to do (give --export and/or --import)");
            return std::process::ExitCode::from(2);
        }
        for signal in [libc::SIGINT, libc::SIGTERM] {
            let handler: extern "C" fn(libc::c_int) = on_signal;
            // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe, and
            // it has the signature `signal` expects.
            unsafe { libc::signal(signal, handler as libc::sighandler_t) };
        }
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !SIGNALLED.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                stop.store(true, Ordering::Relaxed);
            })
        };
        let result = tensorlane_bridge::run(&options, stop);
        drop(watcher);
        match result {
            Ok(_) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tensorlane-bridge: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
fn main() -> std::process::ExitCode {
    bridge::main()
}

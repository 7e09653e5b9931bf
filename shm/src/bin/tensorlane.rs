//! `tensorlane`: list, inspect, watch, unlink and purge the lanes in `/dev/shm`, and
//! run a cross-process demonstration.
//!
//! ```text
//! tensorlane list [--json]
//! tensorlane inspect NAME [--json]
//! tensorlane watch NAME [--interval SECS] [--count N]
//! tensorlane unlink NAME...
//! tensorlane purge [--dry-run]
//! tensorlane demo [--items N] [--consumers K] [--size BYTES]
//! tensorlane conformance write|verify|subscribe|vectors ... (docs/CONFORMANCE.md)
//! tensorlane record LANE... -o FILE | replay FILE    (runs tensorlane-record)
//! tensorlane bridge ...                               (runs tensorlane-bridge)
//! ```
//!
//! Inspection (`list`, `inspect`, `watch`) takes no role and stores nothing to a lane:
//! it reads the header and the core's counters, and asks the kernel whether each role's
//! lock has a live holder. Exit codes: 0 on success, 1 when an operation failed, 2 for
//! a usage error. Errors go to standard error, prefixed with `tensorlane: `.
//!
//! When the workspace is built for a model checker (features `loom`, `shuttle`) the
//! library has no shared-memory layer, and this binary only says so.

/// `println!` that survives a closed standard output (`tensorlane list | head -1`):
/// the line is dropped and [`text::stdout_closed`] turns true.
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
macro_rules! out {
    () => {
        $crate::text::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::text::write_line(format_args!($($arg)*))
    };
}

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
#[path = "tensorlane/cli.rs"]
mod cli;
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
#[path = "tensorlane/commands.rs"]
mod commands;
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
#[path = "tensorlane/conformance.rs"]
mod conformance;
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
#[path = "tensorlane/demo.rs"]
mod demo;
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
#[path = "tensorlane/external.rs"]
mod external;
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
#[path = "tensorlane/probe.rs"]
mod probe;
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
#[path = "tensorlane/text.rs"]
mod text;

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(any(feature = "loom", feature = "shuttle"))]
fn main() -> std::process::ExitCode {
    eprintln!("tensorlane: built for a model checker; the CLI is not available");
    std::process::ExitCode::FAILURE
}

#[cfg(all(
    not(target_os = "linux"),
    not(any(feature = "loom", feature = "shuttle"))
))]
fn main() -> std::process::ExitCode {
    eprintln!("tensorlane: lanes need Linux shared memory; the CLI is not available here");
    std::process::ExitCode::FAILURE
}

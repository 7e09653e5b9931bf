//! Commands served by the project's other programs: `tensorlane record` and
//! `tensorlane replay` run `tensorlane-record`, `tensorlane bridge` runs
//! `tensorlane-bridge`, each with the rest of the command line.
//!
//! The program is looked for next to this executable first (an installation or a
//! cargo target directory puts them side by side), then on `PATH`. It replaces this
//! process (`exec`), so signals, standard streams and the exit status are its own.

use crate::cli::{Failure, Outcome};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// A command of another program.
struct External {
    /// The word after `tensorlane`.
    command: &'static str,
    /// The program that serves it.
    program: &'static str,
    /// Whether the program takes the command word as its own first argument.
    passes_command: bool,
    /// How to build the program from the workspace.
    build: &'static str,
}

const EXTERNAL: &[External] = &[
    External {
        command: "record",
        program: "tensorlane-record",
        passes_command: true,
        build: "cargo build --release -p tensorlane-record",
    },
    External {
        command: "replay",
        program: "tensorlane-record",
        passes_command: true,
        build: "cargo build --release -p tensorlane-record",
    },
    External {
        command: "bridge",
        program: "tensorlane-bridge",
        passes_command: false,
        build: "cargo build --release -p tensorlane-bridge",
    },
];

/// The lines `tensorlane --help` adds about these commands.
pub const HELP: &str = "\
Commands of the project's other programs (run if installed next to tensorlane or on PATH):
  record   Record lanes into an MCAP file (tensorlane-record record --help)
  replay   Replay an MCAP recording into lanes (tensorlane-record replay --help)
  bridge   Carry lanes over Zenoh (tensorlane-bridge --help)";

/// Runs `args` (the command word, then its arguments) with the program that serves
/// it; returns only if that program could not be started.
pub fn run(args: Vec<OsString>) -> Outcome {
    let Some((word, rest)) = args.split_first() else {
        return Err(Failure::Message("no command given".into()));
    };
    let Some(external) = EXTERNAL.iter().find(|e| word == e.command) else {
        return Err(Failure::Usage(format!(
            "unknown command {:?} (see tensorlane --help)",
            word.to_string_lossy()
        )));
    };
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(external.program))
        .filter(|path| path.is_file());
    let program = beside.unwrap_or_else(|| PathBuf::from(external.program));
    let mut command = Command::new(&program);
    if external.passes_command {
        command.arg(word);
    }
    let error = command.args(rest).exec();
    Err(Failure::Message(
        if error.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`tensorlane {}` needs the program {} next to tensorlane or on PATH \
             (build it with `{}`)",
                external.command, external.program, external.build
            )
        } else {
            format!("cannot run {}: {error}", program.display())
        },
    ))
}

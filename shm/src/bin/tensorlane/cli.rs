//! Command-line syntax and dispatch.

use crate::{commands, conformance, demo, external};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

/// Named tensor lanes over POSIX shared memory: inspect and manage the lanes in
/// /dev/shm, or run a cross-process demonstration.
#[derive(Debug, Parser)]
#[command(name = "tensorlane", version, after_help = external::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the lanes in /dev/shm with their tensor, size and role liveness.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a lane's header fields and counters (takes no role).
    Inspect {
        /// Lane name (without the "tensorlane." prefix).
        name: String,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a lane's item rate once per interval (takes no role).
    Watch {
        /// Lane name.
        name: String,
        /// Seconds between two lines.
        #[arg(long, default_value = "1", value_parser = parse_interval)]
        interval: Duration,
        /// Stop after this many lines (default: run until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Remove lanes' names; processes that have them open keep their mappings.
    Unlink {
        /// Lane names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the lanes whose every role (writer, consumer, subscribers) is dead.
    Purge {
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Leave alone lanes created less than this many seconds ago: their creator
        /// may not have claimed its role yet.
        #[arg(long, default_value = "1", value_parser = parse_age)]
        min_age: Duration,
        /// Consider only these lanes (default: every lane).
        names: Vec<String>,
    },
    /// Publish a topic to subscriber processes and check what each one received.
    Demo(demo::DemoArgs),
    /// The reference peer for ports: write, verify and subscribe to the conformance
    /// sequence, die at a chosen step, and write the golden vectors
    /// (docs/CONFORMANCE.md).
    Conformance {
        #[command(subcommand)]
        verb: conformance::Verb,
    },
    /// A process of the demo (started by `demo`).
    #[command(hide = true)]
    DemoRole {
        #[command(subcommand)]
        role: demo::Role,
    },
    /// `record`, `replay`, `bridge`: served by the project's other programs.
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&secs) {
        return Err("the interval must be between 0.001 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_age(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.0..=1e9).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("{text:?} is not a number of seconds")),
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Print this message (prefixed with `tensorlane: `) and exit with status 1.
    Message(String),
    /// The command has printed its errors already; exit with status 1.
    Reported,
    /// A usage error: print this message and exit with status 2.
    Usage(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

/// What a command returns.
pub type Outcome = Result<(), Failure>;

/// Parses the arguments, runs the command, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::List { json } => commands::list(json),
        Command::Inspect { name, json } => commands::inspect(&name, json),
        Command::Watch {
            name,
            interval,
            count,
        } => commands::watch(&name, interval, count),
        Command::Unlink { names } => commands::unlink(&names),
        Command::Purge {
            dry_run,
            min_age,
            names,
        } => commands::purge(dry_run, min_age, &names),
        Command::Demo(args) => demo::run(&args),
        Command::DemoRole { role } => demo::run_role(role),
        Command::Conformance { verb } => conformance::run(verb),
        Command::External(args) => external::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("tensorlane: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Usage(message)) => {
            eprintln!("tensorlane: {message}");
            ExitCode::from(2)
        }
    }
}

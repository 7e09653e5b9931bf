//! `tensorlane-record`: record lanes to an MCAP file, replay a recording
//! (docs/RECORDING.md).
//!
//! When the workspace is built for a model checker (features `loom`, `shuttle`) there
//! are no lanes, and this binary only says so.

#[cfg(any(not(target_os = "linux"), feature = "loom", feature = "shuttle"))]
fn main() {
    eprintln!("tensorlane-record: built without the shared-memory lanes (loom/shuttle build)");
    std::process::exit(1);
}

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod cli {
    use clap::{Parser, Subcommand};
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Duration;
    use tensorlane_record::record::{self, RecordOptions};
    use tensorlane_record::replay::{self, ReplayOptions};

    /// Record tensorlane lanes to MCAP files and replay them.
    #[derive(Debug, Parser)]
    #[command(name = "tensorlane-record", version)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        /// Record lanes until interrupted (SIGINT, SIGTERM), for a duration, or until
        /// every lane's writer is gone. Topics are read by a lossy subscriber and streams
        /// with read_new: the writers are never slowed. A queue is consumed.
        Record {
            /// Lane names.
            #[arg(required = true)]
            lanes: Vec<String>,
            /// The MCAP file to write.
            #[arg(short, long)]
            output: PathBuf,
            /// Stop after this many seconds.
            #[arg(long, value_parser = parse_seconds)]
            duration: Option<Duration>,
            /// Topics: record every frame with a lossless subscriber; the publisher then
            /// waits when the recorder falls a whole ring behind.
            #[arg(long)]
            lossless: bool,
            /// Topics: the lossy subscriber's lag bound (default: the topic's capacity).
            #[arg(long, conflicts_with = "lossless")]
            lag: Option<u64>,
            /// Longest time between two complete chunks in the file, in seconds: what a
            /// killed recorder can lose at most.
            #[arg(long, default_value = "0.1", value_parser = parse_seconds)]
            chunk_interval: Duration,
            /// Also write u8 tensors of shape [h, w] or [h, w, 1|3|4] as
            /// foxglove.RawImage messages on topic "<lane>/image".
            #[arg(long)]
            images: bool,
        },
        /// Create the recorded lanes and write their frames with the recorded timing.
        Replay {
            /// The MCAP file.
            input: PathBuf,
            /// Speed factor: 2 replays twice as fast.
            #[arg(long, default_value = "1", value_parser = parse_rate)]
            rate: f64,
            /// Start again after the last frame, until interrupted.
            #[arg(long = "loop")]
            looped: bool,
            /// Write every frame at once, without the recorded timing.
            #[arg(long, conflicts_with = "rate")]
            as_fast_as_possible: bool,
            /// Prepend this to every lane name.
            #[arg(long, default_value = "")]
            prefix: String,
            /// Before the first frame, wait until every topic has this many subscribers.
            #[arg(long, default_value = "0")]
            wait_subscribers: usize,
            /// Write at this SCHED_FIFO priority (1 to 99; needs CAP_SYS_NICE or an
            /// rtprio limit; refused: a warning, then normal priority).
            #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99))]
            fifo: Option<u8>,
        },
    }

    fn parse_seconds(text: &str) -> Result<Duration, String> {
        let seconds: f64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a number"))?;
        Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
    }

    fn parse_rate(text: &str) -> Result<f64, String> {
        match text.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
            _ => Err(format!("{text:?} is not a positive number")),
        }
    }

    pub fn main() -> ExitCode {
        match Cli::parse().command {
            Command::Record {
                lanes,
                output,
                duration,
                lossless,
                lag,
                chunk_interval,
                images,
            } => {
                let options = RecordOptions {
                    lanes,
                    output,
                    lossless,
                    lag,
                    duration,
                    chunk_interval,
                    images,
                };
                match record::record(&options) {
                    Ok(stats) => {
                        for s in stats {
                            println!(
                                "{}: {} frames, {} missed ({})",
                                s.name, s.frames, s.missed, s.end
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("tensorlane-record: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Replay {
                input,
                rate,
                looped,
                as_fast_as_possible,
                prefix,
                wait_subscribers,
                fifo,
            } => {
                let options = ReplayOptions {
                    input,
                    rate,
                    looped,
                    as_fast_as_possible,
                    prefix,
                    wait_subscribers,
                    fifo_priority: fifo,
                };
                match replay::replay(&options) {
                    Ok(done) => {
                        if let Some(why) = &done.truncated {
                            eprintln!("tensorlane-record: the file ends early ({why}); replayed what precedes");
                        }
                        println!(
                            "replayed {} frames to {}",
                            done.frames,
                            done.lanes.join(", ")
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("tensorlane-record: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}

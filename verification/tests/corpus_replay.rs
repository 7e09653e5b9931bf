//! Replays the committed fuzz corpora and regression inputs in `cargo test`.
//!
//! Every file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` runs
//! through the same library function as the cargo-fuzz target `<target>` (see
//! `fuzz/README.md`): a model mismatch, a violated guarantee or a panic fails the
//! test. The corpora are `cargo fuzz cmin` minimised, so the replay covers what the
//! campaigns reached in a few seconds, without libFuzzer or a nightly toolchain.
#![cfg(not(any(feature = "loom", feature = "shuttle")))]

use std::fs;
use std::path::{Path, PathBuf};
use tensorlane_verification::hostile::{run_header, run_hostile, HostileOutcome, Structure};

/// The fuzz targets, by their names in `fuzz/Cargo.toml`.
const TARGETS: [&str; 6] = [
    "register",
    "spsc",
    "broadcast",
    "header",
    "hostile_control",
    "gpu_handoff",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none if the folder does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable folder entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs one input through the target's library function.
fn run(target: &str, data: &[u8]) -> Result<Option<HostileOutcome>, String> {
    match target {
        "register" => tensorlane_model::run_register_bytes(data)
            .map(|()| None)
            .map_err(|m| m.to_string()),
        "spsc" => tensorlane_model::run_spsc_bytes(data)
            .map(|()| None)
            .map_err(|m| m.to_string()),
        "broadcast" => tensorlane_model::run_broadcast_bytes(data)
            .map(|()| None)
            .map_err(|m| m.to_string()),
        "header" => run_header(data).map(Some).map_err(|v| v.to_string()),
        "hostile_control" => run_hostile(data).map(Some).map_err(|v| v.to_string()),
        "gpu_handoff" => tensorlane_verification::hostile_gpu::run_gpu_handoff(data).map(|_| None),
        other => panic!("no replay for fuzz target {other}: add it to TARGETS and run()"),
    }
}

/// Replays the corpus and the regressions of `target`; fails listing every failing
/// input. Prints what the hostile runs answered (`--nocapture` shows it).
fn replay(target: &str) {
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "no corpus for fuzz target {target} under {}",
        fuzz_dir().display()
    );
    let files: Vec<PathBuf> = corpus
        .into_iter()
        .chain(inputs("regressions", target))
        .collect();
    let mut failures = Vec::new();
    let mut tallies: Vec<HostileOutcome> = Vec::new();
    for path in &files {
        let data = fs::read(path).expect("readable input");
        match run(target, &data) {
            Ok(Some(outcome)) => {
                let key = (outcome.structure, outcome.attached);
                match tallies
                    .iter_mut()
                    .find(|t| (t.structure, t.attached) == key)
                {
                    Some(total) => total.absorb(&outcome),
                    None => tallies.push(outcome),
                }
            }
            Ok(None) => {}
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    tallies.sort_by_key(|t| (t.structure, t.attached));
    for t in &tallies {
        let what = match (t.structure, t.attached) {
            (Structure::HeaderWords, _) => "header words".to_string(),
            (s, true) => format!("{s:?} (attached)"),
            (s, false) => format!("{s:?}"),
        };
        println!(
            "{target}: {what}: {} operations, {} overwrites ({} reported and restored), \
             {} values checked, {} ok",
            t.operations, t.overwrites, t.restores, t.values_checked, t.ok
        );
        for (error, n) in &t.errors {
            println!("    {n:>6}  {error}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of {target} fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn replay_register() {
    replay("register");
}

#[test]
fn replay_spsc() {
    replay("spsc");
}

#[test]
fn replay_broadcast() {
    replay("broadcast");
}

#[test]
fn replay_header() {
    replay("header");
}

#[test]
fn replay_hostile_control() {
    replay("hostile_control");
}

#[test]
fn replay_gpu_handoff() {
    replay("gpu_handoff");
}

/// A new target, corpus or regression folder must be replayed here too.
#[test]
fn every_target_is_replayed() {
    let targets = fs::read_dir(fuzz_dir().join("fuzz_targets")).expect("fuzz/fuzz_targets");
    for entry in targets {
        let path = entry.expect("readable folder entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        assert!(
            TARGETS.contains(&name),
            "fuzz target {name} is not replayed"
        );
    }
    for kind in ["corpus", "regressions"] {
        let Ok(dirs) = fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in dirs {
            let name = entry.expect("readable folder entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                TARGETS.contains(&name.as_ref()),
                "fuzz/{kind}/{name} names no fuzz target"
            );
        }
    }
}

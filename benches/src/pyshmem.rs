//! The pyshmem peer (PyPI `pyshmem` 1.4.0 with numpy), run in a virtual environment
//! that [`ensure_venv`] creates with `python3 -m venv` and `pip install` when asked.
//!
//! The measurements themselves are in `benches/pyshmem_bench.py` (embedded in this
//! binary and written next to the environment before each run): write+read Hz per
//! size in one process, the request/acknowledge ping-pong with `read_after` on
//! notify streams (half round trip), and the one-way wake-up of a reader parked in
//! `read_after` (futex), timed with `CLOCK_MONOTONIC` like tensorlane's.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The measuring script.
pub const SCRIPT: &str = include_str!("../pyshmem_bench.py");
/// The pinned pyshmem release.
pub const PYSHMEM: &str = "pyshmem==1.4.0";

/// The environment's interpreter.
pub fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes sure `venv` holds pyshmem and numpy (creating it with `python3 -m venv`
/// and installing them with pip if needed); returns the pyshmem version.
pub fn ensure_venv(venv: &Path) -> Result<String, String> {
    let check = "import pyshmem, numpy; print(pyshmem.__version__)";
    if python(venv).exists() {
        if let Ok(v) = run(Command::new(python(venv)).args(["-c", check]), "import") {
            return Ok(v.trim().to_string());
        }
    } else {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(python(venv)).args(["-m", "pip", "install", "-q", PYSHMEM, "numpy"]),
        "pip install pyshmem numpy",
    )?;
    run(
        Command::new(python(venv)).args(["-c", check]),
        "import pyshmem",
    )
    .map(|v| v.trim().to_string())
}

/// What one run of the script is asked to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Object name prefix (unique per run).
    pub prefix: String,
    /// Sizes of the write+read Hz measurement, bytes.
    pub sizes: Vec<usize>,
    /// Sizes of the latency measurements, bytes.
    pub latency_sizes: Vec<usize>,
    /// Ping-pong round trips per size.
    pub samples: usize,
    /// Wake-ups per size.
    pub wake_samples: usize,
    /// Pause of the wake-up sender before each write, microseconds.
    pub gap_us: u64,
    /// Length of one Hz batch, milliseconds.
    pub batch_ms: u64,
    /// Hz batches per size.
    pub batches: usize,
}

/// Runs the script once in `venv`; returns its JSON result.
pub fn measure(venv: &Path, plan: &Plan) -> Result<Value, String> {
    let script = venv.join("tensorlane_pyshmem_bench.py");
    std::fs::write(&script, SCRIPT).map_err(|e| format!("writing {}: {e}", script.display()))?;
    let join = |v: &[usize]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let out = run(
        Command::new(python(venv))
            .arg(&script)
            .arg("run")
            .arg(&plan.prefix)
            .arg(join(&plan.sizes))
            .arg(join(&plan.latency_sizes))
            .arg(plan.samples.to_string())
            .arg(plan.wake_samples.to_string())
            .arg(plan.gap_us.to_string())
            .arg(plan.batch_ms.to_string())
            .arg(plan.batches.to_string()),
        "pyshmem measurements",
    )?;
    serde_json::from_str(&out).map_err(|e| format!("pyshmem output: {e}"))
}

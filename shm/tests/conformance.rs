//! The conformance verbs across processes, as a port's test drives them: each verb is
//! a `tensorlane conformance ...` process whose exit status and one-line JSON reports
//! are checked. Write then verify (every kind, every case), a writer that dies
//! mid-sequence and a successor that takes over, subscribers that join and leave or
//! die. The canaries at the end are broken writers (this test process writing the
//! lane with the library, or poking its bytes as the layout describes them) that the
//! ordinary verification must reject.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tensorlane_shm::conformance::{self, Case, CASES};
use tensorlane_shm::*;

fn unique(name: &str) -> String {
    format!("conf-{name}-{}", std::process::id())
}

/// Unlinks every case's lane of a prefix when dropped.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for case in CASES {
            let _ = segment::unlink(&LaneName::new(&format!("{}.{}", self.0, case.name)).unwrap());
        }
    }
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tensorlane"));
    command.arg("conformance").args(args);
    command
}

fn run(args: &[&str]) -> Output {
    let output = command(args).output().expect("run tensorlane");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    output
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Runs a verb that must succeed; returns its report lines, each with `"ok": true`.
fn ok(args: &[&str]) -> Vec<Value> {
    let output = run(args);
    let reports = lines(&output);
    assert!(
        output.status.success(),
        "{args:?} failed: {reports:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(reports.iter().all(|r| r["ok"] == true), "{reports:?}");
    reports
}

/// The ordinary verification: `verify` must pass. Panics with the categories that
/// failed ("verify failed: torn", ...).
fn verify(kind: &str, case: &str, items: u64, prefix: &str) -> Vec<Value> {
    let items = items.to_string();
    let output = run(&[
        "verify",
        "--kind",
        kind,
        "--case",
        case,
        "--items",
        &items,
        "--timeout",
        "3",
        prefix,
    ]);
    let reports = lines(&output);
    let failed: Vec<&str> = ["lost", "duplicated", "misordered", "torn", "error"]
        .into_iter()
        .filter(|k| reports.iter().any(|r| r.get(*k).is_some_and(|v| v != 0)))
        .collect();
    assert!(
        output.status.success() && failed.is_empty(),
        "verify failed: {} {reports:?}",
        failed.join(" ")
    );
    assert_eq!(reports.len(), if case == "all" { CASES.len() } else { 1 });
    reports
}

#[test]
fn write_then_verify_every_kind_and_case() {
    for kind in ["stream", "queue", "topic"] {
        let prefix = unique(&format!("wv-{kind}"));
        let _cleanup = Cleanup(prefix.clone());
        let started = Instant::now();
        let written = ok(&["write", "--kind", kind, &prefix]);
        assert_eq!(written.len(), CASES.len());
        assert!(written
            .iter()
            .all(|r| r["written"] == 16 && r["last"] == 16));
        let reports = verify(kind, "all", 16, &prefix);
        for r in &reports {
            assert_eq!(r["last"], 16, "{r}");
            // A stream's reader sees the latest value; the others every item.
            let received = if kind == "stream" { 1 } else { 16 };
            assert_eq!(r["received"], received, "{r}");
        }
        // Each verb stays well under a second for the default counts.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{kind}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_writer_that_dies_mid_sequence_is_taken_over() {
    for kind in ["stream", "queue", "topic"] {
        let prefix = unique(&format!("die-{kind}"));
        let _cleanup = Cleanup(prefix.clone());
        let output = run(&[
            "write", "--kind", kind, "--case", "uint8", "--items", "10", "--die-at", "6", &prefix,
        ]);
        assert_eq!(output.status.signal(), Some(libc::SIGKILL), "{kind}");
        let dying = lines(&output);
        assert_eq!(
            (dying[0]["written"].as_u64(), dying[0]["died_at"].as_u64()),
            (Some(5), Some(6))
        );
        // The successor continues at item 6: the unfinished item (a queue's half-filled
        // loan) was never published, and its sequence number is reused.
        let successor = ok(&[
            "write",
            "--kind",
            kind,
            "--case",
            "uint8",
            "--items",
            "10",
            "--take-over",
            &prefix,
        ]);
        assert_eq!(
            (
                successor[0]["first"].as_u64(),
                successor[0]["last"].as_u64()
            ),
            (Some(6), Some(10))
        );
        let report = &verify(kind, "uint8", 10, &prefix)[0];
        assert_eq!(report["last"], 10);
    }
}

/// Starts `subscribe` and waits for its "joined" line.
fn join(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = command(&[&["subscribe"], args].concat())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let joined: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(joined["event"], "joined", "{joined}");
    (child, out)
}

fn last_report(
    child: Child,
    mut out: BufReader<std::process::ChildStdout>,
) -> (Value, std::process::ExitStatus) {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let status = child.wait_with_output().unwrap().status;
    (
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")),
        status,
    )
}

#[test]
fn subscribers_join_leave_and_die() {
    let prefix = unique("subs");
    let _cleanup = Cleanup(prefix.clone());
    // A topic of capacity 8 with 40 items: the lossless subscribers hold the
    // publisher back until they leave (or die and are evicted).
    let mut writer = command(&[
        "write",
        "--kind",
        "topic",
        "--case",
        "float32",
        "--items",
        "40",
        "--count",
        "8",
        "--wait-subscribers",
        "3",
        &prefix,
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let lane = format!("{prefix}.float32");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::path::Path::new(&format!("/dev/shm/tensorlane.{lane}")).exists() {
        assert!(
            Instant::now() < deadline,
            "the writer did not create its lane"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let leaver = join(&["--leave-after", "5", &prefix]);
    let dier = join(&["--die-after", "3", &prefix]);
    let reader = join(&["--items", "40", &prefix]);
    let written = writer.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut writer.stdout.take().unwrap(), &mut out).unwrap();
    assert!(written.success(), "{out}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (report["last"].as_u64(), report["evicted"].as_u64()),
        (Some(40), Some(1)),
        "{report}"
    );

    let (left, status) = last_report(leaver.0, leaver.1);
    assert!(status.success());
    assert_eq!(
        (
            left["event"].as_str(),
            left["received"].as_u64(),
            left["last"].as_u64()
        ),
        (Some("left"), Some(5), Some(5)),
        "{left}"
    );
    let (died, status) = last_report(dier.0, dier.1);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(
        (died["event"].as_str(), died["received"].as_u64()),
        (Some("died"), Some(3)),
        "{died}"
    );
    let (all, status) = last_report(reader.0, reader.1);
    assert!(status.success(), "{all}");
    assert_eq!(
        (
            all["received"].as_u64(),
            all["lost"].as_u64(),
            all["torn"].as_u64()
        ),
        (Some(40), Some(0), Some(0)),
        "{all}"
    );
}

#[test]
fn usage_errors_and_missing_lanes_have_their_exit_codes() {
    let missing = run(&[
        "verify",
        "--kind",
        "queue",
        "--case",
        "int8",
        "nothing-here",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(lines(&missing)[0]["code"], "not_found");
    assert_eq!(
        run(&["verify", "--kind", "pipe", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["write", "--kind", "queue", "--case", "nope", "x"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        run(&["write", "--kind", "queue", "--die-at", "3", "x"])
            .status
            .code(),
        Some(1)
    );
}

// ---------------------------------------------------------------------------------
// Canaries: broken writers the ordinary verification must reject.

fn spec(case: &str) -> TensorSpec {
    Case::named(case).unwrap().spec().unwrap()
}

#[test]
#[should_panic(expected = "verify failed: torn")]
fn canary_a_writer_one_item_ahead_is_torn() {
    let prefix = unique("canary-ahead");
    let _cleanup = Cleanup(prefix.clone());
    let spec = spec("int32");
    let options = CreateOptions::new().clock(Clock::None);
    let mut producer =
        QueueProducer::create_with(&format!("{prefix}.int32"), &spec, 16, options).unwrap();
    for item in 1..=8 {
        producer
            .push(&conformance::tensor(&spec, item + 1))
            .unwrap();
    }
    drop(producer);
    verify("queue", "int32", 8, &prefix);
}

#[test]
#[should_panic(expected = "verify failed: torn")]
fn canary_a_stream_writer_with_its_own_frame_ids_is_torn() {
    let prefix = unique("canary-ids");
    let _cleanup = Cleanup(prefix.clone());
    let spec = spec("empty");
    let options = CreateOptions::new().clock(Clock::None);
    let mut writer =
        StreamWriter::create_with(&format!("{prefix}.empty"), &spec, 3, options).unwrap();
    for item in 1..=4 {
        writer
            .write_frame(&conformance::tensor(&spec, item), 100 + item)
            .unwrap();
    }
    drop(writer);
    verify("stream", "empty", 4, &prefix);
}

#[test]
#[should_panic(expected = "verify failed: lost")]
fn canary_a_producer_that_stops_early_lost_items() {
    let prefix = unique("canary-short");
    let _cleanup = Cleanup(prefix.clone());
    let output = run(&[
        "write", "--kind", "queue", "--case", "bool", "--items", "5", &prefix,
    ]);
    assert!(output.status.success());
    verify("queue", "bool", 8, &prefix);
}

#[test]
#[should_panic(expected = "verify failed: misordered")]
fn canary_a_stream_whose_published_word_goes_back_is_misordered() {
    let prefix = unique("canary-back");
    let _cleanup = Cleanup(prefix.clone());
    let lane = format!("{prefix}.float16");
    let spec = spec("float16");
    let options = CreateOptions::new().clock(Clock::None);
    let mut writer = StreamWriter::create_with(&lane, &spec, 3, options).unwrap();
    for item in 1..=5 {
        writer
            .write_frame(&conformance::tensor(&spec, item), item)
            .unwrap();
    }
    // The verifier reads item 5, then waits for item 6 with the data futex's waiting
    // flag set (LAYOUT.md section 6). A broken writer then stores `published` = 3
    // (control block offset 0): item 3 is still complete in slot 0.
    let verifier = command(&[
        "verify",
        "--kind",
        "stream",
        "--case",
        "float16",
        "--items",
        "6",
        "--timeout",
        "5",
        &prefix,
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let object = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/tensorlane.{lane}"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut word = [0u8; 4];
        object.read_exact_at(&mut word, 384).unwrap();
        if u32::from_le_bytes(word) & 1 == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the verifier never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
    object.write_all_at(&3u64.to_le_bytes(), 1024).unwrap();
    let output = verifier.wait_with_output().unwrap();
    drop(writer);
    let reports = lines(&output);
    let failed: Vec<&str> = ["misordered", "lost", "torn"]
        .into_iter()
        .filter(|k| reports[0][*k] != 0)
        .collect();
    assert!(
        output.status.success() && failed.is_empty(),
        "verify failed: {} {reports:?}",
        failed.join(" ")
    );
}

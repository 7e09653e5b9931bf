//! The `tensorlane` binary, run as a user would: the lanes it shows are made by this
//! test process with the library (or by the binary's hidden `demo-role abandon`, which
//! leaves a lane behind as a crashed process would).
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use serde_json::Value;
use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Output};
use std::time::Duration;
use tensorlane_shm::*;

fn unique(name: &str) -> String {
    format!("cli-{name}-{}", std::process::id())
}

/// Unlinks a lane when dropped, so that a failing test leaves nothing behind.
struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&LaneName::new(&self.0).unwrap());
    }
}

fn tensorlane(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_tensorlane"))
        .args(args)
        .output()
        .expect("run tensorlane");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "tensorlane {args:?} panicked:\n{stderr}"
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("valid JSON")
}

fn listed(name: &str) -> Value {
    let list = json(&tensorlane(&["list", "--json"]));
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {list}"))
        .clone()
}

fn exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm/tensorlane.{name}")).exists()
}

#[test]
fn demo_runs_subscriber_processes_and_checks_every_item() {
    let child = Command::new(env!("CARGO_BIN_EXE_tensorlane"))
        .args([
            "demo",
            "--items",
            "200",
            "--size",
            "4096",
            "--consumers",
            "3",
            "--timeout",
            "30",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(
        out.contains("OK: every lossless subscriber received all 200 items in order, no torn data"),
        "{out}"
    );
    // 4096 bytes are a 32x32 float32 image; two lossless rows, one lossy, one stream.
    assert!(out.contains("float32[32, 32]"), "{out}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("subscriber ") || l.starts_with("stream "))
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert_eq!(rows.iter().filter(|r| r.contains(" lossless ")).count(), 2);
    assert!(
        rows[2].contains(" lossy(1) ") && rows[3].contains(" latest "),
        "{out}"
    );
    assert!(
        !exists(&format!("demo-{pid}")),
        "the demo left its topic behind"
    );
    assert!(!exists(&format!("demo-{pid}-latest")));
}

#[test]
fn demo_rejects_a_bad_geometry_and_cleans_up() {
    let output = tensorlane(&["demo", "--items", "1", "--size", "64", "--capacity", "3"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("tensorlane: "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn list_and_inspect_show_lanes_and_their_roles() {
    let (topic, stream, queue) = (unique("topic"), unique("stream"), unique("queue"));
    let _cleanup = [
        Unlink(topic.clone()),
        Unlink(stream.clone()),
        Unlink(queue.clone()),
    ];
    let spec = TensorSpec::new(DType::F32, &[2, 3]).unwrap();
    let mut publisher = TopicPublisher::create(&topic, &spec, 8, 4).unwrap();
    let mut subscriber = TopicSubscriber::open(&topic, SubscribeOptions::lossless()).unwrap();
    let _lossy = TopicSubscriber::open(&topic, SubscribeOptions::lossy(2)).unwrap();
    for i in 0..5 {
        publisher
            .publish_elements_timeout(&[i as f32; 6], Duration::from_secs(1))
            .unwrap();
    }
    let mut out = [0f32; 6];
    subscriber
        .recv_elements_timeout(&mut out, Duration::from_secs(1))
        .unwrap();
    let mut writer = StreamWriter::create(&stream, &spec, 2).unwrap();
    writer.write_elements(&[1.0f32; 6]).unwrap();
    writer.write_elements(&[2.0f32; 6]).unwrap();
    let mut producer = QueueProducer::create(&queue, &TensorSpec::bytes(10).unwrap(), 4).unwrap();
    for _ in 0..3 {
        producer
            .push_timeout(&[7u8; 10], Duration::from_secs(1))
            .unwrap();
    }

    // list
    let table = stdout(&tensorlane(&["list"]));
    let line = table.lines().find(|l| l.starts_with(&topic)).unwrap();
    for word in ["topic", "float32[2, 3]", "alive", "2 subscribed, 2 live"] {
        assert!(line.contains(word), "{line:?} lacks {word:?}");
    }
    let t = listed(&topic);
    assert_eq!(
        (&t["kind"], &t["dtype"], &t["capacity"], &t["writer"]),
        (
            &"topic".into(),
            &"float32".into(),
            &8.into(),
            &"alive".into()
        )
    );
    assert_eq!(t["shape"], serde_json::json!([2, 3]));
    assert_eq!(
        t["subscribers"],
        serde_json::json!({"entries": 4, "active": 2, "live": 2})
    );
    let s = listed(&stream);
    assert_eq!((&s["kind"], &s["slots"]), (&"stream".into(), &2.into()));
    let q = listed(&queue);
    assert_eq!(
        (&q["writer"], &q["consumer"]),
        (&"alive".into(), &"none".into())
    );

    // inspect, topic
    let text = stdout(&tensorlane(&["inspect", &topic]));
    assert!(
        text.lines().any(|l| l.split_whitespace().eq(["tail", "5"])),
        "{text}"
    );
    assert!(text.contains("INDEX  STATE"), "{text}");
    let t = json(&tensorlane(&["inspect", &topic, "--json"]));
    assert_eq!(t["tail"], 5);
    assert_eq!(t["tensor_bytes"], 24);
    assert_eq!(t["slot_bytes"], 24 + 16);
    assert_eq!(t["creator_pid"], std::process::id());
    assert_eq!(t["layout_version"], tensorlane_shm::header::LAYOUT_VERSION);
    assert_eq!(t["latest"]["frame_id"], 5);
    let entries = t["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let lossless = &entries[subscriber.index()];
    assert_eq!(
        (&lossless["mode"], &lossless["head"], &lossless["lag"]),
        (&"lossless".into(), &1.into(), &4.into())
    );
    assert_eq!(lossless["alive"], true);
    assert!(entries
        .iter()
        .any(|e| e["mode"] == "lossy" && e["max_lag"] == 2));

    // inspect, stream and queue
    let s = json(&tensorlane(&["inspect", &stream, "--json"]));
    assert_eq!(
        (&s["published"], &s["latest"]["frame_id"]),
        (&2.into(), &2.into())
    );
    let q = json(&tensorlane(&["inspect", &queue, "--json"]));
    assert_eq!(
        (&q["head"], &q["tail"], &q["occupancy"]),
        (&0.into(), &3.into(), &3.into())
    );
    let _consumer = QueueConsumer::open(&queue).unwrap();
    let q = json(&tensorlane(&["inspect", &queue, "--json"]));
    assert_eq!(q["consumer"], "alive");

    // Inspection took no role and changed nothing.
    assert_eq!(subscriber.missed(), 0);
    publisher
        .publish_elements_timeout(&[9.0f32; 6], Duration::from_secs(1))
        .unwrap();
    let frame = subscriber
        .recv_elements_timeout(&mut out, Duration::from_secs(1))
        .unwrap();
    assert_eq!((frame.seq, out[0]), (2, 1.0));
}

#[test]
fn watch_reports_rates_without_taking_a_role() {
    let name = unique("watch");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::U8, &[64]).unwrap();
    let mut writer = StreamWriter::create(&name, &spec, 2).unwrap();
    writer.write(&[1u8; 64]).unwrap();
    let output = tensorlane(&["watch", &name, "--interval", "0.05", "--count", "2"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains("items/s") || lines[1].contains("/s)"),
        "{text}"
    );
    assert!(lines[1].contains("latest frame age"), "{text}");
    assert!(lines[1].contains("writer alive"), "{text}");
}

#[test]
fn inspect_of_a_corrupt_segment_fails_cleanly() {
    let name = unique("corrupt");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::F32, &[4]).unwrap();
    drop(StreamWriter::create(&name, &spec, 2).unwrap());
    // Overwrite the dtype word of the header (word 3).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/tensorlane.{name}"))
        .unwrap();
    file.seek(SeekFrom::Start(3 * 8)).unwrap();
    file.write_all(&[0xa5; 8]).unwrap();
    drop(file);

    let output = tensorlane(&["inspect", &name]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!(
            "tensorlane: cannot inspect '{name}': invalid header:"
        )),
        "{err}"
    );
    assert!(err.contains("checksum"), "{err}");
    assert_eq!(
        tensorlane(&["inspect", &name, "--json"]).status.code(),
        Some(1)
    );
    assert_eq!(
        tensorlane(&["watch", &name, "--count", "1"]).status.code(),
        Some(1)
    );

    // `list` shows the error in the lane's row and still succeeds.
    let entry = listed(&name);
    assert!(
        entry["error"].as_str().unwrap().contains("checksum"),
        "{entry}"
    );
    // `purge` never removes what it cannot read.
    let output = tensorlane(&["purge", "--dry-run", "--min-age", "0"]);
    assert!(output.status.success());
    assert!(!stdout(&output).contains(&name));
    assert!(exists(&name));
}

#[test]
fn unlink_reports_missing_lanes() {
    let (present, missing) = (unique("unlink"), unique("missing"));
    let _cleanup = Unlink(present.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    drop(QueueProducer::create(&present, &spec, 2).unwrap());

    let output = tensorlane(&["unlink", &missing]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("tensorlane: cannot unlink '{missing}': no such lane\n")
    );
    let output = tensorlane(&["unlink", &present, &missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!exists(&present));
    assert!(tensorlane(&["unlink", "no/slash"]).status.code() == Some(1));
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(tensorlane(&["inspect"]).status.code(), Some(2));
    assert_eq!(tensorlane(&["unlink"]).status.code(), Some(2));
    assert_eq!(tensorlane(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        tensorlane(&["watch", "x", "--interval", "0"]).status.code(),
        Some(2)
    );
}

#[test]
fn purge_dry_run_lists_a_dead_lane_and_keeps_it() {
    let (dead, live) = (unique("dead"), unique("live"));
    let _cleanup = [Unlink(dead.clone()), Unlink(live.clone())];
    // A lane whose publisher and subscriber processes died without cleaning up.
    let output = tensorlane(&["demo-role", "abandon", "--name", &dead]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A lane with a live writer (this process).
    let spec = TensorSpec::bytes(8).unwrap();
    let _writer = StreamWriter::create(&live, &spec, 2).unwrap();

    let entry = listed(&dead);
    assert_eq!(entry["writer"], "dead");
    assert_eq!(
        entry["subscribers"],
        serde_json::json!({"entries": 2, "active": 1, "live": 0})
    );
    let t = json(&tensorlane(&["inspect", &dead, "--json"]));
    assert_eq!(t["entries"][0]["alive"], false);

    let output = tensorlane(&["purge", "--dry-run", "--min-age", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("would remove {dead} "))),
        "{text}"
    );
    assert!(!text.contains(&live), "{text}");
    assert!(exists(&dead) && exists(&live));
    // A lane younger than --min-age is left alone: its creator may still be setting
    // it up.
    let output = tensorlane(&["purge", "--dry-run", "--min-age", "3600"]);
    assert!(!stdout(&output).contains(&dead));
}

#[test]
fn purge_removes_only_dead_lanes() {
    let (dead, live) = (unique("purged"), unique("kept"));
    let _cleanup = [Unlink(dead.clone()), Unlink(live.clone())];
    let output = tensorlane(&["demo-role", "abandon", "--name", &dead]);
    assert!(output.status.success(), "{}", stderr(&output));
    let spec = TensorSpec::bytes(8).unwrap();
    let _publisher = TopicPublisher::create(&live, &spec, 2, 1).unwrap();

    // Named lanes only, so that this test never touches lanes it did not make.
    let output = tensorlane(&["purge", "--min-age", "0", &dead, &live]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with(&format!("removed {dead} ")), "{text}");
    assert!(text.ends_with("removed 1 lane (2176 bytes)\n"), "{text}");
    assert!(!exists(&dead) && exists(&live));
}

/// A directory removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(format!("{}-{tag}", unique("bin")));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        ScratchDir(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the `tensorlane` binary in a fresh directory, with a stand-in for one of
/// the programs it hands commands to: a script that prints its arguments and exits 7.
fn with_stand_in(program: &str) -> (ScratchDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = ScratchDir::new(program);
    let exe = dir.path().join("tensorlane");
    std::fs::copy(env!("CARGO_BIN_EXE_tensorlane"), &exe).unwrap();
    if !program.is_empty() {
        let script = dir.path().join(program);
        std::fs::write(&script, "#!/bin/sh\necho \"$0 $*\"\nexit 7\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, exe)
}

#[test]
fn record_replay_and_bridge_run_the_programs_beside_tensorlane() {
    let cases = [
        (
            "tensorlane-record",
            &["record", "cam", "-o", "run.mcap"][..],
            "record cam -o run.mcap",
        ),
        (
            "tensorlane-record",
            &["replay", "run.mcap", "--loop"][..],
            "replay run.mcap --loop",
        ),
        (
            "tensorlane-bridge",
            &["bridge", "--export", "cam*"][..],
            "--export cam*",
        ),
    ];
    for (program, args, expected) in cases {
        let (dir, exe) = with_stand_in(program);
        let output = Command::new(&exe).args(args).output().unwrap();
        // The program replaced tensorlane: its output and its exit status.
        assert_eq!(
            output.status.code(),
            Some(7),
            "{args:?}: {}",
            stderr(&output)
        );
        let line = stdout(&output);
        let called = dir.path().join(program);
        assert_eq!(
            line.trim(),
            format!("{} {expected}", called.display()),
            "{args:?}"
        );
    }
}

#[test]
fn a_missing_program_is_named_with_the_command_that_builds_it() {
    let (_dir, exe) = with_stand_in("");
    let output = Command::new(&exe)
        .arg("record")
        .arg("cam")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("tensorlane-record") && message.contains("cargo build"),
        "{message}"
    );
    let unknown = Command::new(&exe).arg("frobnicate").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("unknown command"),
        "{}",
        stderr(&unknown)
    );
    let help = stdout(&Command::new(&exe).arg("--help").output().unwrap());
    assert!(help.contains("record") && help.contains("bridge"), "{help}");
}

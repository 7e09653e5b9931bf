//! `list`, `inspect`, `watch`, `unlink`, `purge`.

use crate::cli::{Failure, Outcome};
use crate::probe::{Core, Probe, ProbeError, RoleState};
use crate::text;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tensorlane_core::{entry, SubscriberInfo};
use tensorlane_shm::header::FRAME_BYTES;
use tensorlane_shm::peek::FramePrefix;
use tensorlane_shm::segment::{self, READY_TIMEOUT, SUBSCRIBER_ROLE_BASE};
use tensorlane_shm::{Clock, Kind, LaneError, LaneName, Metadata};

fn lane_name(name: &str) -> Result<LaneName, Failure> {
    LaneName::new(name).map_err(|e| Failure::Message(e.to_string()))
}

/// Why a lane cannot be used, without repeating its name.
pub fn reason(error: &ProbeError) -> String {
    match error {
        ProbeError::Lane(LaneError::NotFound(_)) => "no such lane".into(),
        ProbeError::Lane(LaneError::Header { source, .. }) => {
            format!("invalid header: {source}")
        }
        e => e.to_string(),
    }
}

fn open(name: &str, verb: &str) -> Result<Probe, Failure> {
    let lane = lane_name(name)?;
    Probe::open(&lane).map_err(|e| {
        let hint = match &e {
            ProbeError::Lane(LaneError::Header { .. }) => format!(
                " (the segment is corrupt or was not made by this version of tensorlane; \
                 remove it with 'tensorlane unlink {name}')"
            ),
            _ => String::new(),
        };
        Failure::Message(format!("cannot {verb} '{name}': {}{hint}", reason(&e)))
    })
}

/// What `list` shows of a topic's subscriber table.
struct TableCounts {
    entries: usize,
    active: usize,
    live: usize,
}

/// One line of `list`.
struct Overview {
    writer: RoleState,
    consumer: Option<RoleState>,
    table: Option<TableCounts>,
}

fn overview(probe: &Probe) -> Result<Overview, String> {
    let table = match probe.core()? {
        Core::Topic(ring) => {
            let mut counts = TableCounts {
                entries: probe.info().subscribers,
                active: 0,
                live: 0,
            };
            for index in 0..counts.entries {
                let Some(e) = ring.subscriber(index) else {
                    break;
                };
                if e.state == entry::ACTIVE {
                    counts.active += 1;
                    if subscriber_alive(probe, index)? {
                        counts.live += 1;
                    }
                }
            }
            Some(counts)
        }
        _ => None,
    };
    Ok(Overview {
        writer: probe.writer()?,
        consumer: probe.consumer()?,
        table,
    })
}

fn subscriber_alive(probe: &Probe, index: usize) -> Result<bool, String> {
    probe
        .role_alive(SUBSCRIBER_ROLE_BASE + index as u64)
        .map_err(|e| e.to_string())
}

fn count_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Stream => "slots",
        Kind::Queue | Kind::Topic => "capacity",
    }
}

fn writer_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Stream => "writer",
        Kind::Queue => "producer",
        Kind::Topic => "publisher",
    }
}

/// `tensorlane list`.
pub fn list(json: bool) -> Outcome {
    let names =
        segment::list().map_err(|e| Failure::Message(format!("cannot read /dev/shm: {e}")))?;
    let mut entries = Vec::new();
    let mut rows = Vec::new();
    // One deadline for every lane whose creator has not finished its header yet, so
    // that lanes left half-made (or empty files planted under lane names) cost at
    // most one wait in all.
    let deadline = Instant::now() + READY_TIMEOUT;
    for name in names {
        let probe = match Probe::open_until(&name, deadline) {
            Ok(probe) => probe,
            // Unlinked since the directory was read.
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                entries.push(json!({ "name": name.as_str(), "error": reason(&e) }));
                rows.push(vec![name.to_string(), format!("error: {}", reason(&e))]);
                continue;
            }
        };
        let info = probe.info();
        match overview(&probe) {
            Err(e) => {
                entries.push(json!({ "name": name.as_str(), "error": e }));
                rows.push(vec![name.to_string(), format!("error: {e}")]);
            }
            Ok(o) => {
                let mut value = json!({
                    "name": name.as_str(),
                    "kind": info.kind.name(),
                    "dtype": info.spec.dtype().name(),
                    "shape": info.spec.shape(),
                    "tensor_bytes": info.spec.byte_len(),
                    count_label(info.kind): info.count,
                    "segment_bytes": info.segment_bytes,
                    "clock": info.clock.name(),
                    "metadata": metadata_json(&info.metadata),
                    "writer": o.writer.name(),
                });
                let readers = match (&o.consumer, &o.table) {
                    (Some(consumer), _) => {
                        value["consumer"] = json!(consumer.name());
                        format!("consumer {}", consumer.name())
                    }
                    (None, Some(t)) => {
                        value["subscribers"] = json!({
                            "entries": t.entries,
                            "active": t.active,
                            "live": t.live,
                        });
                        format!(
                            "{} subscribed, {} live (of {})",
                            t.active, t.live, t.entries
                        )
                    }
                    (None, None) => "-".to_string(),
                };
                entries.push(value);
                rows.push(vec![
                    name.to_string(),
                    info.kind.to_string(),
                    info.spec.to_string(),
                    info.count.to_string(),
                    info.segment_bytes.to_string(),
                    o.writer.name().to_string(),
                    readers,
                ]);
            }
        }
    }
    if json {
        out!("{}", Value::Array(entries));
    } else if rows.is_empty() {
        out!("no lanes in /dev/shm");
    } else {
        text::print_table(
            &[
                "NAME", "KIND", "TENSOR", "SLOTS", "BYTES", "WRITER", "READERS",
            ],
            &rows,
        );
    }
    Ok(())
}

/// Frame id and timestamp of an item (its frame prefix only: reading a whole slot
/// would take a buffer sized by the lane, up to a terabyte).
type FrameMeta = FramePrefix;

fn mode_name(e: &SubscriberInfo) -> &'static str {
    match e.mode {
        entry::MODE_LOSSLESS => "lossless",
        entry::MODE_LOSSY => "lossy",
        _ => "?",
    }
}

fn state_name(state: u64) -> &'static str {
    match state {
        entry::FREE => "free",
        entry::JOINING => "joining",
        entry::ACTIVE => "active",
        entry::EVICTED => "evicted",
        _ => "?",
    }
}

fn frame_json(frame: Option<FrameMeta>, clock: Clock) -> Value {
    match frame {
        None => Value::Null,
        Some(f) => json!({
            "seq": f.seq,
            "frame_id": f.frame_id,
            "timestamp_ns": f.timestamp_ns,
            "age_ns": text::frame_age(clock, f.timestamp_ns).map(|a| a as i64),
        }),
    }
}

fn frame_text(frame: Option<FrameMeta>, clock: Clock) -> String {
    match frame {
        None => "none".into(),
        Some(f) => {
            let written = match (clock, text::frame_age(clock, f.timestamp_ns)) {
                (Clock::Realtime, Some(age)) => format!(
                    ", written {} ({} ago)",
                    text::utc(f.timestamp_ns),
                    text::duration(age)
                ),
                (_, Some(age)) => format!(", written {} ago", text::duration(age)),
                (_, None) => ", not stamped".into(),
            };
            format!("seq {}, frame id {}{written}", f.seq, f.frame_id)
        }
    }
}

/// A lane's metadata as a JSON object, in the order written.
fn metadata_json(metadata: &Metadata) -> Value {
    Value::Object(
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// A lane's metadata as text: `key = value` pairs, with control characters and
/// quotes escaped (the strings come from the segment and may hold anything).
fn metadata_text(metadata: &Metadata) -> String {
    if metadata.is_empty() {
        return "none".into();
    }
    metadata
        .iter()
        .map(|(k, v)| format!("{} = {}", k.escape_debug(), v.escape_debug()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the frames' timestamps of a lane stamped by `clock` mean.
fn clock_text(clock: Clock) -> &'static str {
    match clock {
        Clock::Monotonic => "monotonic (CLOCK_MONOTONIC, ns since boot)",
        Clock::Realtime => "realtime (CLOCK_REALTIME, ns since the Unix epoch)",
        Clock::None => "none (frames are not stamped)",
    }
}

/// `tensorlane inspect NAME`.
pub fn inspect(name: &str, json: bool) -> Outcome {
    let probe = open(name, "inspect")?;
    let info = probe.info();
    let writer = probe.writer()?;
    let core = probe.core()?;
    let mut value = json!({
        "name": probe.name().as_str(),
        "kind": info.kind.name(),
        "dtype": info.spec.dtype().name(),
        "shape": info.spec.shape(),
        "tensor_bytes": info.spec.byte_len(),
        "slot_bytes": info.spec.byte_len() + FRAME_BYTES,
        "count": info.count,
        "subscribers": info.subscribers,
        "segment_bytes": info.segment_bytes,
        "creator_pid": info.creator_pid,
        "creator_uid": info.creator_uid,
        "created_ns": info.created_ns,
        "clock": info.clock.name(),
        "metadata": metadata_json(&info.metadata),
        "layout_version": probe.layout_version(),
        "writer": writer.name(),
    });
    let mut lines: Vec<(String, String)> = vec![
        ("lane".into(), probe.name().to_string()),
        ("kind".into(), info.kind.to_string()),
        ("tensor".into(), info.spec.to_string()),
        ("tensor bytes".into(), info.spec.byte_len().to_string()),
        (
            "slot bytes".into(),
            format!(
                "{} (16-byte frame header + tensor)",
                info.spec.byte_len() + FRAME_BYTES
            ),
        ),
        (count_label(info.kind).into(), info.count.to_string()),
        ("segment bytes".into(), info.segment_bytes.to_string()),
        (
            "creator".into(),
            format!("pid {}, uid {}", info.creator_pid, info.creator_uid),
        ),
        (
            "created".into(),
            format!(
                "{} ({} ago)",
                text::utc(info.created_ns),
                text::duration(text::age(info.created_ns))
            ),
        ),
        ("clock".into(), clock_text(info.clock).into()),
        ("layout version".into(), probe.layout_version().to_string()),
        (writer_label(info.kind).into(), writer.name().to_string()),
        ("metadata".into(), metadata_text(&info.metadata)),
    ];
    if info.kind == Kind::Topic {
        lines.insert(
            6,
            (
                "subscriber table".into(),
                format!("{} entries", info.subscribers),
            ),
        );
    }
    let mut table = Vec::new();
    match core {
        Core::Stream(register) => {
            let frame = probe.latest_frame();
            value["published"] = json!(register.published());
            value["latest"] = frame_json(frame, info.clock);
            lines.push(("published".into(), register.published().to_string()));
            lines.push(("latest".into(), frame_text(frame, info.clock)));
        }
        Core::Queue(ring) => {
            let (head, tail) = ring.positions();
            let occupancy = tail.wrapping_sub(head);
            let consumer = probe.consumer()?.unwrap_or(RoleState::None);
            value["head"] = json!(head);
            value["tail"] = json!(tail);
            value["occupancy"] = json!(occupancy);
            value["consumer"] = json!(consumer.name());
            lines.push(("consumer".into(), consumer.name().to_string()));
            lines.push(("head".into(), head.to_string()));
            lines.push(("tail".into(), tail.to_string()));
            let note = if occupancy > info.count as u64 {
                " (impossible: the ring is corrupt)"
            } else {
                ""
            };
            lines.push((
                "occupancy".into(),
                format!("{occupancy} of {}{note}", info.count),
            ));
        }
        Core::Topic(ring) => {
            let tail = ring.tail();
            let frame = probe.latest_frame();
            value["tail"] = json!(tail);
            value["latest"] = frame_json(frame, info.clock);
            lines.push(("tail".into(), tail.to_string()));
            lines.push(("latest".into(), frame_text(frame, info.clock)));
            let mut entries = Vec::new();
            for index in 0..info.subscribers {
                let Some(e) = ring.subscriber(index) else {
                    break;
                };
                if e.state == entry::FREE {
                    continue;
                }
                let alive = subscriber_alive(&probe, index)?;
                let lag = tail.wrapping_sub(e.head) as i64;
                let lossy = e.mode == entry::MODE_LOSSY;
                entries.push(json!({
                    "index": index,
                    "state": state_name(e.state),
                    "generation": e.generation,
                    "mode": mode_name(&e),
                    "head": e.head,
                    "lag": lag,
                    "max_lag": if lossy { json!(e.max_lag) } else { Value::Null },
                    "missed": e.missed,
                    "owner": format!("{:#018x}", e.owner),
                    "alive": alive,
                }));
                table.push(vec![
                    index.to_string(),
                    state_name(e.state).to_string(),
                    mode_name(&e).to_string(),
                    e.head.to_string(),
                    lag.to_string(),
                    if lossy {
                        e.max_lag.to_string()
                    } else {
                        "-".into()
                    },
                    e.missed.to_string(),
                    format!("{:#018x}", e.owner),
                    if alive { "yes" } else { "no" }.to_string(),
                ]);
            }
            lines.push((
                "entries in use".into(),
                format!("{} of {}", entries.len(), info.subscribers),
            ));
            value["entries"] = Value::Array(entries);
        }
    }
    if json {
        out!("{value}");
        return Ok(());
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, val) in &lines {
        out!("{key:<width$}  {val}");
    }
    if !table.is_empty() {
        out!();
        text::print_table(
            &[
                "INDEX", "STATE", "MODE", "HEAD", "LAG", "MAX_LAG", "MISSED", "OWNER", "ALIVE",
            ],
            &table,
        );
    }
    Ok(())
}

/// One reading of a lane's counters for `watch`.
struct Sample {
    at: Instant,
    /// Stream: published sequence; queue and topic: tail.
    counter: u64,
    detail: String,
}

fn sample(probe: &Probe) -> Result<Sample, Failure> {
    let at = Instant::now();
    // The lane may have been truncated since the last round: check before reading.
    probe
        .check_size()
        .map_err(|e| Failure::Message(e.to_string()))?;
    let writer = probe.writer()?;
    let clock = probe.info().clock;
    let age = |frame: Option<FrameMeta>| match frame {
        Some(f) => match text::frame_age(clock, f.timestamp_ns) {
            Some(age) => format!("latest frame age {}", text::duration(age)),
            None => "latest frame not stamped".to_string(),
        },
        None => "no frame yet".to_string(),
    };
    let (counter, detail) = match probe.core()? {
        Core::Stream(register) => {
            let frame = probe.latest_frame();
            let published = register.published();
            (
                published,
                format!("seq {published}  {}  writer {}", age(frame), writer.name()),
            )
        }
        Core::Queue(ring) => {
            let (head, tail) = ring.positions();
            let consumer = probe.consumer()?.unwrap_or(RoleState::None);
            (
                tail,
                format!(
                    "tail {tail}  occupancy {}/{}  producer {}  consumer {}",
                    tail.wrapping_sub(head),
                    probe.info().count,
                    writer.name(),
                    consumer.name()
                ),
            )
        }
        Core::Topic(ring) => {
            let frame = probe.latest_frame();
            let tail = ring.tail();
            let o = overview(probe)?;
            let (active, live) = o.table.map_or((0, 0), |t| (t.active, t.live));
            (
                tail,
                format!(
                    "tail {tail}  {}  publisher {}  subscribers {active} ({live} live)",
                    age(frame),
                    writer.name()
                ),
            )
        }
    };
    Ok(Sample {
        at,
        counter,
        detail,
    })
}

/// `tensorlane watch NAME`.
pub fn watch(name: &str, interval: Duration, count: Option<u64>) -> Outcome {
    let probe = open(name, "watch")?;
    let info = probe.info();
    out!(
        "watching {} '{}' ({}) every {}",
        info.kind,
        probe.name(),
        info.spec,
        text::duration(interval.as_nanos() as i128)
    );
    let mut previous = sample(&probe)?;
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) && !text::stdout_closed() {
        std::thread::sleep(interval.saturating_sub(previous.at.elapsed()));
        let current = sample(&probe)?;
        let seconds = current.at.duration_since(previous.at).as_secs_f64();
        let delta = current.counter.wrapping_sub(previous.counter);
        let unlinked = if probe.name_refers_here() {
            ""
        } else {
            "  (unlinked)"
        };
        out!(
            "{}  +{delta} items ({:.1}/s)  {}{unlinked}",
            text::clock(text::now_ns()),
            delta as f64 / seconds.max(1e-9),
            current.detail
        );
        previous = current;
        printed += 1;
    }
    Ok(())
}

/// `tensorlane unlink NAME...`.
pub fn unlink(names: &[String]) -> Outcome {
    let mut failed = false;
    for name in names {
        let result = LaneName::new(name)
            .map_err(LaneError::from)
            .and_then(|lane| segment::unlink(&lane));
        match result {
            Ok(()) => {}
            Err(LaneError::NotFound(_)) => {
                eprintln!("tensorlane: cannot unlink '{name}': no such lane");
                failed = true;
            }
            Err(e) => {
                eprintln!("tensorlane: cannot unlink '{name}': {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

/// `tensorlane purge [--dry-run]`.
pub fn purge(dry_run: bool, min_age: Duration, only: &[String]) -> Outcome {
    let mut names =
        segment::list().map_err(|e| Failure::Message(format!("cannot read /dev/shm: {e}")))?;
    let mut failed = false;
    if !only.is_empty() {
        for name in only {
            if !names.iter().any(|n| n.as_str() == name) {
                eprintln!("tensorlane: cannot purge '{name}': no such lane");
                failed = true;
            }
        }
        names.retain(|name| only.iter().any(|o| o == name.as_str()));
    }
    let (mut lanes, mut bytes) = (0usize, 0usize);
    // One deadline for all lanes, as in `list`.
    let deadline = Instant::now() + READY_TIMEOUT;
    for name in names {
        let probe = match Probe::open_until(&name, deadline) {
            Ok(probe) => probe,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                eprintln!(
                    "tensorlane: skipping '{name}': {} (remove it with 'tensorlane unlink {name}')",
                    reason(&e)
                );
                continue;
            }
        };
        if text::age(probe.info().created_ns) < min_age.as_nanos() as i128 {
            continue;
        }
        match probe.any_role_alive() {
            Ok(false) => {}
            Ok(true) => continue,
            Err(e) => {
                eprintln!("tensorlane: skipping '{name}': {e}");
                continue;
            }
        }
        let info = probe.info();
        let what = format!(
            "{name} ({} of {}, {} bytes, created by pid {} at {})",
            info.kind,
            info.spec,
            info.segment_bytes,
            info.creator_pid,
            text::utc(info.created_ns)
        );
        if dry_run {
            out!("would remove {what}");
        } else {
            // Hold every role while unlinking, so that no process can take one over
            // between the check above and the unlink.
            match probe.lock_all_roles() {
                Ok(true) if probe.name_refers_here() => {}
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("tensorlane: skipping '{name}': cannot lock its roles: {e}");
                    continue;
                }
            }
            if let Err(e) = segment::unlink(&name) {
                eprintln!("tensorlane: cannot unlink '{name}': {e}");
                failed = true;
                continue;
            }
            out!("removed {what}");
        }
        lanes += 1;
        bytes += info.segment_bytes;
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    match lanes {
        0 => out!("no dead lanes"),
        1 => out!("{verb} 1 lane ({bytes} bytes)"),
        n => out!("{verb} {n} lanes ({bytes} bytes)"),
    }
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

//! A broken exporter: a Zenoh peer in the test process that reads the source lane as
//! the real exporter does and speaks the bridge's encoding (`wire::encode`), with one
//! step wrong. The loopback scenarios run with it in place of the exporting bridge
//! and must fail their checks; the real importer and reader are unchanged.
//!
//! It lives with the bridge's tests, not in `verification/src/canaries.rs`: a peer of
//! the bridge speaks Zenoh, and the verification crate (a default member) does not
//! depend on Zenoh.

use super::LIMIT;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tensorlane_bridge::wire::{self, ItemInfo, LaneDesc};
use tensorlane_shm::{HeaderInfo, LaneError, QueueConsumer, StreamReader};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// The wrong step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Queue: drops the 100th item and numbers the later ones one lower (sequence and
    /// frame id), hiding the loss from the importer.
    RenumberAfterDrop,
    /// Stream: sends each value after the first with the second half of its payload
    /// taken from the value before (a torn copy).
    TearHalf,
}

/// A running broken exporter, stopped and joined when dropped.
pub struct CanaryExporter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn describe(info: &HeaderInfo) -> LaneDesc {
    LaneDesc {
        kind: info.kind,
        spec: info.spec.clone(),
        count: info.count as u32,
        subscribers: info.subscribers as u32,
        clock: info.clock,
        metadata: info.metadata.clone(),
        lossless: false,
    }
}

impl CanaryExporter {
    /// Starts the broken exporter of `lane` on `pair`'s port and key prefix.
    pub fn start(pair: &super::Pair, lane: &str, bug: Bug) -> CanaryExporter {
        let mut config = zenoh::Config::default();
        config
            .insert_json5(
                "listen/endpoints",
                &format!("[\"tcp/127.0.0.1:{}\"]", pair.port),
            )
            .unwrap();
        config
            .insert_json5("scouting/multicast/enabled", "false")
            .unwrap();
        let session = zenoh::open(config).wait().unwrap();
        let key = format!("{}/{lane}", pair.prefix);
        let stop = Arc::new(AtomicBool::new(false));
        let lane = lane.to_string();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let publisher = session
                    .declare_publisher(key)
                    .congestion_control(CongestionControl::Block)
                    .wait()
                    .unwrap();
                let deadline = Instant::now() + LIMIT;
                while !publisher.matching_status().wait().unwrap().matching() {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let put = |bytes: Vec<u8>| publisher.put(bytes).wait().unwrap();
                let poll = Duration::from_millis(100);
                match bug {
                    Bug::RenumberAfterDrop => {
                        let mut consumer = QueueConsumer::open(&lane).unwrap();
                        let desc = describe(consumer.info());
                        let mut buf = vec![0u8; desc.spec.byte_len()];
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let frame = match consumer.pop_timeout(&mut buf, poll) {
                                Ok(frame) => frame,
                                Err(LaneError::Timeout) => continue,
                                Err(e) => panic!("{e}"),
                            };
                            n += 1;
                            if n == 100 {
                                continue;
                            }
                            let shift = u64::from(n > 100);
                            let item = ItemInfo {
                                seq: frame.seq - shift,
                                frame_id: frame.frame_id - shift,
                                timestamp_ns: frame.timestamp_ns,
                                missed: 0,
                            };
                            put(wire::encode(&desc, &item, &buf));
                        }
                    }
                    Bug::TearHalf => {
                        let mut reader = StreamReader::open(&lane).unwrap();
                        let desc = describe(reader.info());
                        let mut buf = vec![0u8; desc.spec.byte_len()];
                        let mut previous: Option<Vec<u8>> = None;
                        while !stop.load(Ordering::Relaxed) {
                            let frame = match reader.read_new_timeout(&mut buf, poll) {
                                Ok(frame) => frame,
                                Err(LaneError::Timeout) => continue,
                                Err(e) => panic!("{e}"),
                            };
                            let mut sent = buf.clone();
                            if let Some(before) = &previous {
                                let half = sent.len() / 2;
                                sent[half..].copy_from_slice(&before[half..]);
                            }
                            previous = Some(buf.clone());
                            let item = ItemInfo {
                                seq: frame.seq,
                                frame_id: frame.frame_id,
                                timestamp_ns: frame.timestamp_ns,
                                missed: frame.missed,
                            };
                            put(wire::encode(&desc, &item, &sent));
                        }
                    }
                }
                drop(publisher);
                let _ = session.close().wait();
            })
        };
        CanaryExporter {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CanaryExporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

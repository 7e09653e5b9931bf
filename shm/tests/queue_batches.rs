//! Queue batches: several items pushed or popped with one store of the ring's
//! counter, each still a frame of its own.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::time::Duration;
use tensorlane_shm::*;

fn unique(name: &str) -> String {
    format!("test-batch-{name}-{}", std::process::id())
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&LaneName::new(&self.0).unwrap());
    }
}

#[test]
fn batch_round_trip_keeps_one_frame_per_item() {
    let name = unique("round");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(64).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 8).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    assert_eq!(producer.try_push(&[9; 64]).unwrap(), 1);
    let tensors: Vec<[u8; 64]> = (1..=4u8).map(|v| [v; 64]).collect();
    let refs: Vec<&[u8]> = tensors.iter().map(|t| &t[..]).collect();
    assert_eq!(producer.try_push_batch(&refs).unwrap(), 4);
    assert_eq!(producer.try_push_batch(&[]).unwrap(), 0);

    let mut out = vec![0u8; 8 * 64];
    let mut frames = [Frame::default(); 8];
    assert_eq!(consumer.try_pop_batch(&mut out, &mut frames).unwrap(), 5);
    for (k, frame) in frames[..5].iter().enumerate() {
        let k = k as u64;
        assert_eq!((frame.seq, frame.frame_id, frame.missed), (k + 1, k + 1, 0));
        assert!(frame.timestamp_ns > 0);
    }
    assert!(frames[1..5]
        .windows(2)
        .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns));
    assert_eq!(out[..64], [9; 64]);
    for v in 1..=4usize {
        assert!(out[v * 64..(v + 1) * 64].iter().all(|&b| b == v as u8));
    }
    assert!(matches!(
        consumer.try_pop_batch(&mut out, &mut frames),
        Err(LaneError::Empty)
    ));
    // Single pushes and pops go on with the numbering.
    assert_eq!(producer.try_push(&[7; 64]).unwrap(), 6);
    let mut one = [0u8; 64];
    assert_eq!(consumer.try_pop(&mut one).unwrap().seq, 6);
}

#[test]
fn batch_stops_when_the_ring_fills_and_pop_takes_what_fits() {
    let name = unique("full");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(64).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 4).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    let tensors: Vec<[u8; 64]> = (1..=6u8).map(|v| [v; 64]).collect();
    let refs: Vec<&[u8]> = tensors.iter().map(|t| &t[..]).collect();
    producer.try_push(&[0; 64]).unwrap();
    // Three free slots: three of six pushed.
    assert_eq!(producer.try_push_batch(&refs).unwrap(), 3);
    assert!(matches!(
        producer.try_push_batch(&refs[3..]),
        Err(LaneError::Full)
    ));
    assert!(matches!(
        producer.push_batch_timeout(&refs[3..], Duration::from_millis(20)),
        Err(LaneError::Timeout)
    ));
    // Two frames asked for: two popped, the rest stays.
    let mut out = [0u8; 128];
    let mut frames = [Frame::default(); 2];
    assert_eq!(consumer.try_pop_batch(&mut out, &mut frames).unwrap(), 2);
    assert_eq!((frames[0].seq, frames[1].seq), (1, 2));
    assert_eq!((out[0], out[64]), (0, 1));
    // Room for the rest of the batch again.
    assert_eq!(producer.try_push_batch(&refs[3..]).unwrap(), 2);
    let mut out = [0u8; 8 * 64];
    let mut frames = [Frame::default(); 8];
    let n = consumer
        .pop_batch_timeout(&mut out, &mut frames, Duration::from_secs(1))
        .unwrap();
    assert_eq!(n, 4);
    let seqs: Vec<u64> = frames[..n].iter().map(|f| f.seq).collect();
    let firsts: Vec<u8> = (0..n).map(|k| out[k * 64]).collect();
    assert_eq!((seqs, firsts), (vec![3, 4, 5, 6], vec![2, 3, 4, 5]));
    assert!(matches!(
        consumer.pop_batch_timeout(&mut out, &mut frames, Duration::from_millis(20)),
        Err(LaneError::Timeout)
    ));
}

#[test]
fn batch_refuses_wrong_sizes_before_touching_the_ring() {
    let name = unique("sizes");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::F32, &[16]).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 4).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    let good = [0u8; 64];
    let bad = [0u8; 60];
    assert!(matches!(
        producer.try_push_batch(&[&good, &bad]),
        Err(LaneError::WrongSize {
            expected: 64,
            found: 60
        })
    ));
    let mut out = [0u8; 64 * 3];
    let mut frames = [Frame::default(); 2];
    // Nothing was pushed: the refusal came first.
    let mut exact = [0u8; 128];
    assert!(matches!(
        consumer.try_pop_batch(&mut exact, &mut frames),
        Err(LaneError::Empty)
    ));
    // `out` must hold exactly one tensor per frame.
    assert!(matches!(
        consumer.try_pop_batch(&mut out, &mut frames),
        Err(LaneError::WrongSize {
            expected: 128,
            found: 192
        })
    ));
    // Typed forms check the dtype and each tensor's count.
    let floats = [1.5f32; 16];
    assert!(matches!(
        producer.try_push_batch_elements(&[&[0f64; 8][..]]),
        Err(LaneError::WrongDType { .. })
    ));
    assert!(matches!(
        producer.try_push_batch_elements(&[&floats[..], &floats[..15]]),
        Err(LaneError::WrongCount {
            expected: 16,
            found: 15
        })
    ));
    assert_eq!(
        producer
            .try_push_batch_elements(&[&floats[..], &floats[..]])
            .unwrap(),
        2
    );
    let mut typed = [0f32; 31];
    assert!(matches!(
        consumer.try_pop_batch_elements(&mut typed, &mut frames),
        Err(LaneError::WrongCount {
            expected: 32,
            found: 31
        })
    ));
    let mut typed = [0f32; 32];
    assert_eq!(
        consumer
            .try_pop_batch_elements(&mut typed, &mut frames)
            .unwrap(),
        2
    );
    assert!(typed.iter().all(|&x| x == 1.5));
}

#[test]
fn corrupt_item_in_a_batch_is_removed_and_reported_as_pop_does() {
    use std::os::unix::fs::FileExt;
    let name = unique("corrupt");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(64).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 4).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    let tensors: Vec<[u8; 64]> = (1..=4u8).map(|v| [v; 64]).collect();
    let refs: Vec<&[u8]> = tensors.iter().map(|t| &t[..]).collect();
    assert_eq!(producer.try_push_batch(&refs).unwrap(), 4);
    // Item 1 gets a length the lane's frames cannot have (LAYOUT.md: the ring's
    // control block after the 1024-byte segment header, then 128-byte slots whose
    // word 1 is the length); item 2 one longer than any slot.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/tensorlane.{name}"))
        .unwrap();
    for (slot, bad) in [(1u64, 40u64), (2, 1 << 40)] {
        file.write_at(&bad.to_le_bytes(), 1024 + 384 + slot * 128 + 8)
            .unwrap();
    }
    let mut out = [0u8; 4 * 64];
    let mut frames = [Frame::default(); 4];
    // The batch stops before the corrupt item ...
    assert_eq!(consumer.try_pop_batch(&mut out, &mut frames).unwrap(), 1);
    assert_eq!((frames[0].seq, out[0]), (1, 1));
    // ... which the next calls remove and report, one each.
    for _ in 0..2 {
        let e = consumer.try_pop_batch(&mut out, &mut frames);
        assert!(matches!(e, Err(LaneError::Corrupt(_))), "{e:?}");
    }
    // The ring moves on.
    assert_eq!(consumer.try_pop_batch(&mut out, &mut frames).unwrap(), 1);
    assert_eq!((frames[0].seq, out[0]), (4, 4));
}

#[test]
fn pop_batch_ends_with_writer_gone_once_drained() {
    let name = unique("gone");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 4).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    assert_eq!(producer.try_push_batch(&[&[1; 8], &[2; 8]]).unwrap(), 2);
    drop(producer);
    let mut out = [0u8; 24];
    let mut frames = [Frame::default(); 3];
    let wait = Duration::from_secs(5);
    assert_eq!(
        consumer
            .pop_batch_timeout(&mut out, &mut frames, wait)
            .unwrap(),
        2
    );
    assert!(matches!(
        consumer.pop_batch_timeout(&mut out, &mut frames, wait),
        Err(LaneError::WriterGone)
    ));
}

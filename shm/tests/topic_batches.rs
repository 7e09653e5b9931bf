//! Draining receives on topics: several items per call, one head store for a
//! lossless subscriber.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use tensorlane_shm::*;

fn unique(name: &str) -> String {
    format!("test-tbatch-{name}-{}", std::process::id())
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&LaneName::new(&self.0).unwrap());
    }
}

/// Gives the item with frame id `frame_id` (of a lane of 8-byte tensors) a length
/// shorter than a frame: finds its slot by the length word (24 = a frame) followed by
/// the frame id in the prefix (stamp, length, then the payload), as a damaged peer
/// would leave it.
fn shorten_item(name: &str, frame_id: u64) {
    use std::os::unix::fs::FileExt;
    let path = format!("/dev/shm/tensorlane.{name}");
    let bytes = std::fs::read(&path).unwrap();
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let at = (1..words.len() - 1)
        .find(|&i| words[i] == 24 && words[i + 1] == frame_id)
        .expect("the item's slot");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_at(&16u64.to_le_bytes(), at as u64 * 8).unwrap();
}

#[test]
fn lossless_batch_receives_in_order_and_frees_the_publisher() {
    let name = unique("round");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let mut publisher = TopicPublisher::create(&name, &spec, 4, 2).unwrap();
    let mut sub = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
    let mut out = [0u8; 3 * 8];
    let mut frames = [Frame::default(); 3];
    assert!(matches!(
        sub.try_recv_batch(&mut out, &mut frames),
        Err(LaneError::Empty)
    ));
    for v in 1..=4u8 {
        publisher.try_publish(&[v; 8]).unwrap();
    }
    assert!(matches!(
        publisher.try_publish(&[0; 8]),
        Err(LaneError::Full)
    ));
    assert_eq!(sub.try_recv_batch(&mut out, &mut frames).unwrap(), 3);
    for k in 0..3 {
        assert_eq!(
            (frames[k].seq, frames[k].frame_id),
            (k as u64 + 1, k as u64 + 1)
        );
        assert_eq!(frames[k].missed, 0);
        assert_eq!(out[k * 8..(k + 1) * 8], [k as u8 + 1; 8]);
    }
    // The one head store freed three slots.
    for v in 5..=7u8 {
        publisher.try_publish(&[v; 8]).unwrap();
    }
    let mut out = [0u8; 8 * 8];
    let mut frames = [Frame::default(); 8];
    assert_eq!(sub.try_recv_batch(&mut out, &mut frames).unwrap(), 4);
    let seqs: Vec<u64> = frames[..4].iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7]);
    assert_eq!((out[0], out[24]), (4, 7));
    // `out` must hold one tensor per frame.
    assert!(matches!(
        sub.try_recv_batch(&mut out[..60], &mut frames),
        Err(LaneError::WrongSize {
            expected: 64,
            found: 60
        })
    ));
}

#[test]
fn lossy_batch_reports_what_it_missed() {
    let name = unique("lossy");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let mut publisher = TopicPublisher::create(&name, &spec, 4, 2).unwrap();
    let mut sub = TopicSubscriber::open(&name, SubscribeOptions::lossy(2)).unwrap();
    for v in 1..=5u8 {
        publisher.try_publish(&[v; 8]).unwrap();
    }
    let mut out = [0u8; 4 * 8];
    let mut frames = [Frame::default(); 4];
    assert_eq!(sub.try_recv_batch(&mut out, &mut frames).unwrap(), 2);
    assert_eq!((frames[0].seq, frames[0].missed, out[0]), (4, 3, 4));
    assert_eq!((frames[1].seq, frames[1].missed, out[8]), (5, 0, 5));
}

#[test]
fn a_short_item_in_a_lossless_batch_is_reported_as_recv_does() {
    let name = unique("short");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let mut publisher = TopicPublisher::create(&name, &spec, 4, 1).unwrap();
    let mut sub = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
    for v in 1..=3u8 {
        publisher.try_publish(&[v; 8]).unwrap();
    }
    shorten_item(&name, 2);
    let mut out = [0u8; 3 * 8];
    let mut frames = [Frame::default(); 3];
    assert_eq!(sub.try_recv_batch(&mut out, &mut frames).unwrap(), 1);
    assert_eq!((frames[0].seq, out[0]), (1, 1));
    let e = sub.try_recv_batch(&mut out, &mut frames);
    assert!(matches!(e, Err(LaneError::Corrupt(_))), "{e:?}");
    assert_eq!(sub.try_recv_batch(&mut out, &mut frames).unwrap(), 1);
    assert_eq!((frames[0].seq, out[0]), (3, 3));
}

#[test]
fn a_short_item_in_a_lossy_batch_is_reported_by_the_next_receive() {
    let name = unique("lossyshort");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let mut publisher = TopicPublisher::create(&name, &spec, 4, 1).unwrap();
    let mut sub = TopicSubscriber::open(&name, SubscribeOptions::lossy(4)).unwrap();
    for v in 1..=3u8 {
        publisher.try_publish(&[v; 8]).unwrap();
    }
    shorten_item(&name, 2);
    let mut out = [0u8; 3 * 8];
    let mut frames = [Frame::default(); 3];
    // The lossy subscriber consumed item 1 to find it bad: the batch stops there and
    // the next receive reports it, before item 3.
    assert_eq!(sub.try_recv_batch(&mut out, &mut frames).unwrap(), 1);
    assert_eq!((frames[0].seq, out[0]), (1, 1));
    let e = sub.try_recv(&mut out[..8]);
    assert!(matches!(e, Err(LaneError::Corrupt(_))), "{e:?}");
    assert_eq!(sub.try_recv_batch(&mut out, &mut frames).unwrap(), 1);
    assert_eq!((frames[0].seq, out[0]), (3, 3));
}

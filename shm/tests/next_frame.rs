//! Frame ids chosen by the writer on queues and topics, and the publisher's count of
//! joined subscribers.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use tensorlane_shm::{
    segment, LaneName, QueueConsumer, QueueProducer, SubscribeOptions, TensorSpec, TopicPublisher,
    TopicSubscriber,
};

fn name(what: &str) -> String {
    format!("next-frame-{}-{what}", std::process::id())
}

#[test]
fn a_topic_publishes_the_frame_id_it_is_given_and_counts_on() {
    let lane = name("topic");
    let spec = TensorSpec::bytes(4).unwrap();
    let mut publisher = TopicPublisher::create(&lane, &spec, 4, 3).unwrap();
    assert_eq!(publisher.active_subscribers(), 0);
    let mut a = TopicSubscriber::open(&lane, SubscribeOptions::lossless()).unwrap();
    let b = TopicSubscriber::open(&lane, SubscribeOptions::lossy(1)).unwrap();
    assert_eq!(publisher.active_subscribers(), 2);
    drop(b);
    assert_eq!(publisher.active_subscribers(), 1);
    let mut out = [0u8; 4];
    publisher.try_publish(&[1; 4]).unwrap();
    publisher.set_next_frame(40);
    publisher.try_publish(&[2; 4]).unwrap();
    publisher.try_publish(&[3; 4]).unwrap();
    let ids: Vec<u64> = (0..3)
        .map(|_| a.try_recv(&mut out).unwrap().frame_id)
        .collect();
    assert_eq!(ids, [1, 40, 41]);
    drop((a, publisher));
    segment::unlink(&LaneName::new(&lane).unwrap()).unwrap();
}

#[test]
fn a_queue_pushes_the_frame_id_it_is_given_and_counts_on() {
    let lane = name("queue");
    let spec = TensorSpec::bytes(4).unwrap();
    let mut producer = QueueProducer::create(&lane, &spec, 4).unwrap();
    let mut consumer = QueueConsumer::open(&lane).unwrap();
    producer.set_next_frame(7);
    producer.try_push(&[1; 4]).unwrap();
    producer.try_push(&[2; 4]).unwrap();
    let mut out = [0u8; 4];
    let ids: Vec<u64> = (0..2)
        .map(|_| consumer.try_pop(&mut out).unwrap().frame_id)
        .collect();
    assert_eq!(ids, [7, 8]);
    drop((consumer, producer));
    segment::unlink(&LaneName::new(&lane).unwrap()).unwrap();
}

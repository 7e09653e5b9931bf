// The loan scenario, shared by the suites that include it after `mod.rs`.

/// A producer pushes `items` items (item `i` holds `i + 1`) through a ring of
/// capacity 2 over an `Exclusive` region (so it wraps); the consumer takes every item
/// through a peek's byte view and releases it. Every item must arrive once, in order,
/// untorn.
#[allow(dead_code)]
pub fn queue_loans<P: QueueProducerRole>(items: u64, producer: fn(&QueueFixture) -> P) {
    let fixture = QueueFixture::new(2, 16);
    let mut p = producer(&fixture);
    let ring = tensorlane_verification::loans::loan_ring(&fixture);
    let consumer = thread::spawn(move || {
        let mut c = ring.consumer(2).expect("consumer role is free");
        let mut next = 0;
        while next < items {
            match c.peek() {
                Ok(peek) => {
                    if peek.position() != next {
                        panic!("lost item: expected {next}, got {}", peek.position());
                    }
                    {
                        // A slice in the real build, a word-backed view under the
                        // checkers: either way, used up before the release.
                        let bytes = peek.bytes();
                        if bytes.len() != 16 {
                            panic!("torn read: item {next} has length {}", bytes.len());
                        }
                        // `[..]`: a view dereferences to the slice, a slice is one.
                        #[allow(clippy::redundant_slicing)]
                        check_words(&bytes[..], next + 1, "item");
                    }
                    peek.release();
                    next += 1;
                }
                Err(tensorlane_core::PopError::Empty) => thread::yield_now(),
                Err(e) => panic!("unexpected pop error: {e}"),
            }
        }
    });
    let mut seq = 0;
    while seq < items {
        match p.push(&stamped_value::<2>(seq + 1)) {
            Ok(()) => seq += 1,
            Err(tensorlane_core::PushError::Full) => thread::yield_now(),
            Err(e) => panic!("unexpected push error: {e}"),
        }
    }
    consumer.join().unwrap();
}

//! A Rust process on the other end of a lane, for the bindings' cross-language tests
//! (python/tests): it writes or reads `COUNT` items whose every element is the
//! item's index (0, 1, ...), as `float64` tensors of shape `[2, 3]`, and exits 0 only
//! if everything it read was what was written.
//!
//! ```text
//! peer stream-write NAME COUNT   create a stream, write COUNT values 1 ms apart
//! peer queue-write NAME COUNT    create a queue (capacity 4), push COUNT items
//! peer queue-read NAME COUNT     open a queue, pop COUNT items, check each
//! peer topic-read NAME COUNT     join a topic (lossless), receive COUNT items, check
//! peer topic-write NAME COUNT    create a topic (capacity: the power of two above
//!                                COUNT, at least 4), publish COUNT items 1 ms apart
//! peer queue-write-skewed NAME COUNT
//!                                a broken producer, for the canaries of the C and
//!                                C++ examples: as queue-write, but every element is
//!                                the index plus one
//! ```
//! What a writer wrote stays in its lane after it exits; `topic-read` prints
//! `joined` once subscribed, for the publisher to wait for.

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
use std::time::Duration;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
use tensorlane_shm::*;

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
const TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
fn tensor(i: u64) -> [f64; 6] {
    [i as f64; 6]
}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
fn check(what: &str, i: u64, frame: &Frame, got: &[f64; 6]) -> Result<(), String> {
    if *got != tensor(i) || frame.seq != i + 1 {
        return Err(format!("{what} item {i}: seq {} holds {got:?}", frame.seq));
    }
    Ok(())
}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
fn run(verb: &str, name: &str, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let spec = TensorSpec::new(DType::F64, &[2, 3])?;
    match verb {
        "stream-write" => {
            let mut writer = StreamWriter::create(name, &spec, 3)?;
            for i in 0..count {
                writer.write_elements(&tensor(i))?;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        "queue-write" | "queue-write-skewed" => {
            let skew = u64::from(verb == "queue-write-skewed");
            let mut producer = QueueProducer::create(name, &spec, 4)?;
            for i in 0..count {
                producer.push_elements_timeout(&tensor(i + skew), TIMEOUT)?;
            }
            // The items stay in the lane after this process exits: the consumer
            // drains them, then gets `WriterGone`.
        }
        "queue-read" => {
            let mut consumer = QueueConsumer::open_expect(name, &spec)?;
            let mut out = [0f64; 6];
            for i in 0..count {
                let frame = consumer.pop_elements_timeout(&mut out, TIMEOUT)?;
                check("queue", i, &frame, &out)?;
            }
        }
        "topic-read" => {
            let mut subscriber =
                TopicSubscriber::open_expect(name, &spec, SubscribeOptions::lossless())?;
            println!("joined");
            let mut out = [0f64; 6];
            for i in 0..count {
                let frame = subscriber.recv_elements_timeout(&mut out, TIMEOUT)?;
                check("topic", i, &frame, &out)?;
            }
        }
        "topic-write" => {
            // Room for every item and one more: a lossless subscriber that joins late
            // with `history = COUNT` still gets them all, whatever the timing (a
            // lossless join gives up the oldest slot of a full ring).
            let capacity = usize::try_from(count)?
                .checked_add(1)
                .ok_or("COUNT too large")?
                .next_power_of_two()
                .max(4);
            let mut publisher = TopicPublisher::create(name, &spec, capacity, 4)?;
            for i in 0..count {
                publisher.publish_elements_timeout(&tensor(i), TIMEOUT)?;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        other => return Err(format!("unknown verb {other:?}").into()),
    }
    println!("ok {count}");
    Ok(())
}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, verb, name, count] = args.as_slice() else {
        eprintln!("usage: peer VERB NAME COUNT");
        std::process::exit(2);
    };
    let Ok(count) = count.parse() else {
        eprintln!("COUNT must be a number");
        std::process::exit(2);
    };
    if let Err(e) = run(verb, name, count) {
        eprintln!("peer {verb} {name}: {e}");
        std::process::exit(1);
    }
}

/// Under the checkers' features the lanes are compiled out.
#[cfg(any(feature = "loom", feature = "shuttle"))]
fn main() {
    eprintln!("peer: the lanes are compiled out under the loom and shuttle features");
    std::process::exit(2);
}

//! iceoryx2 as a [`jitter`](crate::jitter) transport: a publish-subscribe service of
//! 1 KiB samples (history 0, a subscriber buffer of 1 with safe overflow, so a
//! reader gets the newest sample, as from a tensorlane stream) and an event service
//! whose notifier the writer triggers after each send; the blocked reader waits on
//! a listener of it, the polling reader only receives.

use crate::jitter::{LoopReader, LoopWriter, Transport, SAMPLE_BYTES};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use std::mem::MaybeUninit;
use std::time::Duration;

type PubSub =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;
type Event = iceoryx2::service::port_factory::event::PortFactory<ipc::Service>;

/// The transport over services `<name>.data` and `<name>.event`.
pub struct IceJitter {
    name: String,
}

impl IceJitter {
    /// A transport over services named after `name`.
    pub fn new(name: &str) -> Self {
        crate::ice::quiet();
        IceJitter {
            name: name.to_string(),
        }
    }

    fn services(&self) -> (Node<ipc::Service>, PubSub, Event) {
        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .expect("iceoryx2 node");
        let data_name = ServiceName::new(&format!("{}.data", self.name)).expect("name");
        let data = node
            .service_builder(&data_name)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(2)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .enable_safe_overflow(true)
            .open_or_create()
            .expect("iceoryx2 publish-subscribe service");
        let event_name = ServiceName::new(&format!("{}.event", self.name)).expect("name");
        let event = node
            .service_builder(&event_name)
            .event()
            .open_or_create()
            .expect("iceoryx2 event service");
        (node, data, event)
    }
}

/// The writer's end: publisher and notifier.
pub struct IceWriter {
    publisher: Publisher<ipc::Service, [u8], ()>,
    notifier: Notifier<ipc::Service>,
    _services: (PubSub, Event),
    _node: Node<ipc::Service>,
}

impl LoopWriter for IceWriter {
    fn send(&mut self, sample: &[u8]) {
        let mut loan = self
            .publisher
            .loan_slice_uninit(sample.len())
            .expect("iceoryx2 loan");
        let payload = loan.payload_mut();
        for (dst, src) in payload.iter_mut().zip(sample) {
            *dst = MaybeUninit::new(*src);
        }
        // SAFETY: every byte of the payload was written just above.
        let loan = unsafe { loan.assume_init() };
        loan.send().expect("iceoryx2 send");
        self.notifier.notify().expect("iceoryx2 notify");
    }
}

/// A reader's end: a subscriber, and a listener for the blocked reader.
pub struct IceReader {
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    listener: Option<Listener<ipc::Service>>,
    _services: (PubSub, Event),
    _node: Node<ipc::Service>,
}

impl IceReader {
    /// Copies the newest waiting sample into `out`.
    fn receive(&mut self, out: &mut [u8]) -> bool {
        let mut got = false;
        while let Some(sample) = self.subscriber.receive().expect("iceoryx2 receive") {
            let payload = sample.payload();
            let n = payload.len().min(out.len());
            out[..n].copy_from_slice(&payload[..n]);
            got = true;
        }
        got
    }
}

impl LoopReader for IceReader {
    fn wait(&mut self, out: &mut [u8], timeout: Duration) -> bool {
        if self.receive(out) {
            return true;
        }
        let listener = self.listener.as_ref().expect("the blocked reader listens");
        listener.timed_wait(|_| {}, timeout).expect("iceoryx2 wait");
        self.receive(out)
    }
    fn poll(&mut self, out: &mut [u8]) -> bool {
        self.receive(out)
    }
}

impl Transport for IceJitter {
    type Writer = IceWriter;
    type Reader = IceReader;
    fn writer(&self) -> IceWriter {
        let (node, data, event) = self.services();
        let publisher = data
            .publisher_builder()
            .initial_max_slice_len(SAMPLE_BYTES)
            .create()
            .expect("iceoryx2 publisher");
        let notifier = event
            .notifier_builder()
            .create()
            .expect("iceoryx2 notifier");
        IceWriter {
            publisher,
            notifier,
            _services: (data, event),
            _node: node,
        }
    }
    fn reader(&self, blocking: bool) -> IceReader {
        let (node, data, event) = self.services();
        let subscriber = data
            .subscriber_builder()
            .create()
            .expect("iceoryx2 subscriber");
        let listener = blocking.then(|| {
            event
                .listener_builder()
                .create()
                .expect("iceoryx2 listener")
        });
        IceReader {
            subscriber,
            listener,
            _services: (data, event),
            _node: node,
        }
    }
}

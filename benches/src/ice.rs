//! iceoryx2 publish-subscribe (crates.io 0.10, `ipc::Service`) as a ping-pong
//! [`Tx`]/[`Rx`] pair, set up like iceoryx2's own latency benchmark: one service
//! per direction, history 0, a subscriber buffer of 1 with safe overflow, payload
//! `[u8]` of the measured size loaned from the publisher.
//!
//! Two modes: *touched* writes every byte of the loaned sample and reads every byte
//! of the received one (a tensor produced and consumed in place); *untouched*
//! writes and reads only the 8-byte counter, like iceoryx2's benchmark, which
//! sends the loaned memory as it is.

use crate::link::{fill_payload, get_counter, put_counter, read_payload, Rx, Tx};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use std::mem::MaybeUninit;
use std::time::Duration;

/// Quiets iceoryx2's console logger (errors only).
pub fn quiet() {
    set_log_level(LogLevel::Error);
}

fn service_name(name: &str) -> Result<ServiceName, String> {
    ServiceName::new(name).map_err(|e| format!("service name {name}: {e:?}"))
}

fn node() -> Result<Node<ipc::Service>, String> {
    NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e:?}"))
}

type Service =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

fn service(node: &Node<ipc::Service>, name: &str) -> Result<Service, String> {
    node.service_builder(&service_name(name)?)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .enable_safe_overflow(true)
        .open_or_create()
        .map_err(|e| format!("iceoryx2 service {name}: {e:?}"))
}

/// The sending end: a publisher of service `name`.
pub struct IceTx {
    publisher: Publisher<ipc::Service, [u8], ()>,
    size: usize,
    touched: bool,
    _service: Service,
    _node: Node<ipc::Service>,
}

impl IceTx {
    /// Creates (or opens) service `name` and its publisher of `size`-byte samples.
    pub fn create(name: &str, size: usize, touched: bool) -> Result<Self, String> {
        let node = node()?;
        let service = service(&node, name)?;
        let publisher = service
            .publisher_builder()
            .initial_max_slice_len(size)
            .create()
            .map_err(|e| format!("iceoryx2 publisher: {e:?}"))?;
        Ok(IceTx {
            publisher,
            size,
            touched,
            _service: service,
            _node: node,
        })
    }
}

impl Tx for IceTx {
    fn send(&mut self, counter: u64) {
        let mut sample = self
            .publisher
            .loan_slice_uninit(self.size)
            .expect("iceoryx2 loan");
        let payload = sample.payload_mut();
        // SAFETY: MaybeUninit<u8> and u8 have the same layout, and the bytes lie in
        // iceoryx2's shared-memory mapping (memory obtained from the operating system,
        // which is initialised: zero pages or earlier samples). Only the bytes written
        // below are read, by the receiving process.
        let bytes: &mut [u8] = unsafe { &mut *(payload as *mut [MaybeUninit<u8>] as *mut [u8]) };
        if self.touched {
            fill_payload(bytes, counter);
        } else {
            put_counter(bytes, counter);
        }
        // SAFETY: as above, the payload bytes are initialised memory of the mapping.
        let sample = unsafe { sample.assume_init() };
        sample.send().expect("iceoryx2 send");
    }
}

/// The receiving end: a subscriber of service `name`.
pub struct IceRx {
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    touched: bool,
    _service: Service,
    _node: Node<ipc::Service>,
}

impl IceRx {
    /// Opens service `name` (retrying up to `timeout`) and subscribes to it.
    pub fn open(name: &str, touched: bool, timeout: Duration) -> Result<Self, String> {
        crate::lanes::retry(timeout, || {
            let node = node()?;
            let service = node
                .service_builder(&service_name(name)?)
                .publish_subscribe::<[u8]>()
                .open()
                .map_err(|e| format!("iceoryx2 open {name}: {e:?}"))?;
            let subscriber = service
                .subscriber_builder()
                .create()
                .map_err(|e| format!("iceoryx2 subscriber: {e:?}"))?;
            Ok(IceRx {
                subscriber,
                touched,
                _service: service,
                _node: node,
            })
        })
    }
}

impl Rx for IceRx {
    fn try_recv(&mut self) -> Option<u64> {
        let sample = self.subscriber.receive().expect("iceoryx2 receive")?;
        let payload = sample.payload();
        Some(if self.touched {
            read_payload(payload)
        } else {
            get_counter(payload)
        })
    }
}

//! One direction of a ping-pong between two processes.
//!
//! The first 8 bytes of every payload carry a counter (little-endian). The
//! measuring process sends counter `i`, and the echoing process sends back every
//! counter it receives; a round trip ends when the measuring process receives `i`.
//! Half of the round trip is the one-way latency. [`STOP`] ends the echo.

use std::time::{Duration, Instant};

/// The counter that tells the echoing process to stop.
pub const STOP: u64 = u64::MAX;

/// The sending end of one direction.
pub trait Tx {
    /// Sends one payload carrying `counter`; waits (spinning) while the transport is
    /// full.
    fn send(&mut self, counter: u64);
}

/// The receiving end of one direction.
pub trait Rx {
    /// Returns the counter of the next payload if one has arrived; never blocks.
    fn try_recv(&mut self) -> Option<u64>;
}

/// Polls `rx` until it yields `counter`, skipping older counters; `None` after
/// `timeout`.
pub fn recv_exact(rx: &mut dyn Rx, counter: u64, timeout: Duration) -> Option<()> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        match rx.try_recv() {
            Some(c) if c == counter => return Some(()),
            Some(_) => {}
            None => {
                spins = spins.wrapping_add(1);
                if spins & 4095 == 0 && start.elapsed() > timeout {
                    return None;
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// The echoing side: sends back every counter received until [`STOP`].
pub fn echo(rx: &mut dyn Rx, tx: &mut dyn Tx) {
    loop {
        if let Some(c) = rx.try_recv() {
            if c == STOP {
                return;
            }
            tx.send(c);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The measuring side: `warmup` then `samples` round trips; returns the one-way
/// latencies (half round trips) in nanoseconds, or an error if the peer stops
/// answering. The first counter is re-sent until answered (transports whose
/// subscribers connect lazily may drop it).
pub fn ping_pong(
    tx: &mut dyn Tx,
    rx: &mut dyn Rx,
    warmup: usize,
    samples: usize,
) -> Result<Vec<f64>, String> {
    let mut first = false;
    for _ in 0..50 {
        tx.send(0);
        if recv_exact(rx, 0, Duration::from_millis(100)).is_some() {
            first = true;
            break;
        }
    }
    if !first {
        return Err("no answer to the first ping within 5 s".into());
    }
    let mut out = Vec::with_capacity(samples);
    for i in 1..=(warmup + samples) as u64 {
        let start = Instant::now();
        tx.send(i);
        if recv_exact(rx, i, Duration::from_secs(10)).is_none() {
            return Err(format!("no answer to ping {i} within 10 s"));
        }
        let rtt = start.elapsed();
        if i as usize > warmup {
            out.push(rtt.as_nanos() as f64 / 2.0);
        }
    }
    tx.send(STOP);
    Ok(out)
}

/// Writes `counter` into the first 8 bytes of `payload`.
#[inline]
pub fn put_counter(payload: &mut [u8], counter: u64) {
    payload[..8].copy_from_slice(&counter.to_le_bytes());
}

/// Reads the counter from the first 8 bytes of `payload`.
#[inline]
pub fn get_counter(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"))
}

/// Fills every byte of `payload` (a producer writing a whole tensor in place),
/// then writes `counter`.
#[inline]
pub fn fill_payload(payload: &mut [u8], counter: u64) {
    payload.fill(counter as u8);
    put_counter(payload, counter);
}

/// Reads every byte of `payload` (a consumer reading a whole tensor in place) and
/// returns the counter.
#[inline]
pub fn read_payload(payload: &[u8]) -> u64 {
    let mut sum = 0u64;
    for chunk in payload.chunks_exact(8) {
        sum = sum.wrapping_add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    std::hint::black_box(sum);
    get_counter(payload)
}

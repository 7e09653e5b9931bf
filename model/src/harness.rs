//! Differential harness: one operation sequence, run against a real core structure and
//! its model side by side, in one thread.
//!
//! Each `run_*_ops` function builds the core structure on a fresh
//! [`HeapRegion`], claims its roles, and applies every operation to the core handles
//! and to the model. After each operation it compares every result (values, positions,
//! lengths, error kinds, `missed` counts, the subscriber named by
//! `Full`) and the observable state (counters, reader and subscriber state, the whole
//! broadcast subscriber table). The first difference is returned as a [`Mismatch`]
//! naming the operation, the quantity, and both answers.
//!
//! Payloads are derived from a running item number and the operation's length
//! argument ([`payload`]), so every value is distinct and a misplaced or torn value
//! shows. SPSC loans are filled through both `bytes_mut` and `words`, and peeks are
//! read through `bytes`, `words` and `copy_to`, released or dropped.
//!
//! The `run_*_bytes` functions decode a byte string with `ops::decode_*_case` first:
//! they are what fuzz targets call.
//!
//! Not built with the `loom` or `shuttle` features: checker atomics panic outside the
//! checker's runtime, and `bytes`/`bytes_mut` do not exist there.

use crate::broadcast::{BroadcastModel, SubscriberModel};
use crate::ops::{
    decode_broadcast_case, decode_register_case, decode_spsc_case, resolve_len, BroadcastOp,
    LoanAccess, PeekAccess, RegisterOp, SpscOp, REGISTER_READERS, SUBSCRIBER_SLOTS,
};
use crate::register::{RegisterModel, RegisterReaderModel};
use crate::spsc::SpscModel;
use core::fmt;
use tensorlane_core::{
    Broadcast, BroadcastGeometry, BroadcastHeader, BroadcastSubscriber, Exclusive, HeapRegion,
    Mode, PopError, Popped, PushError, Seqlock, SeqlockGeometry, SeqlockHeader, SeqlockReader,
    Spsc, SpscGeometry, SpscHeader, SubscribeOptions,
};

/// The first difference between the core and the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Index of the operation in the sequence; `None` while setting up.
    pub step: Option<usize>,
    /// The operation (`Debug` form).
    pub op: String,
    /// The quantity that differs.
    pub what: String,
    /// What the core said (`Debug` form).
    pub core: String,
    /// What the model said (`Debug` form).
    pub model: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(step) => write!(f, "op #{step} {}: ", self.op)?,
            None => f.write_str("setup: ")?,
        }
        write!(
            f,
            "{}: core said {}, model said {}",
            self.what, self.core, self.model
        )
    }
}

impl std::error::Error for Mismatch {}

/// Where in the sequence a comparison happens.
struct Step<'a> {
    index: Option<usize>,
    op: &'a dyn fmt::Debug,
}

impl Step<'_> {
    fn setup() -> Step<'static> {
        Step {
            index: None,
            op: &"setup",
        }
    }

    fn differ(&self, what: &str, core: &dyn fmt::Debug, model: &dyn fmt::Debug) -> Mismatch {
        Mismatch {
            step: self.index,
            op: format!("{:?}", self.op),
            what: what.to_string(),
            core: format!("{core:?}"),
            model: format!("{model:?}"),
        }
    }

    fn check<T: PartialEq + fmt::Debug>(
        &self,
        what: &str,
        core: T,
        model: T,
    ) -> Result<(), Mismatch> {
        if core == model {
            Ok(())
        } else {
            Err(self.differ(what, &core, &model))
        }
    }
}

/// The payload of item number `item`, `len` bytes long: distinct for distinct items
/// (its first bytes spell the item number), varied inside.
pub fn payload(item: u64, len: usize) -> Vec<u8> {
    let mut state = item.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    let stamp = item.to_le_bytes();
    (0..len)
        .map(|i| {
            if let Some(&b) = stamp.get(i) {
                return b;
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// `buf[..len]`, or all of `buf` if `len` is too long (the comparison then fails on
/// the length).
fn prefix(buf: &[u8], len: usize) -> Vec<u8> {
    buf.get(..len).unwrap_or(buf).to_vec()
}

// ---------------------------------------------------------------------------------
// Register

/// Runs `ops` against a seqlock register of `geometry` (one writer,
/// [`REGISTER_READERS`] readers) and [`RegisterModel`].
pub fn run_register_ops(geometry: SeqlockGeometry, ops: &[RegisterOp]) -> Result<(), Mismatch> {
    let setup = Step::setup();
    let region = HeapRegion::<SeqlockHeader>::new(geometry.body_words());
    let lane = Seqlock::new(&region, geometry)
        .map_err(|e| setup.differ("building the register", &e, &"Ok"))?;
    let mut model = RegisterModel::new(geometry);
    let mut token = 1;
    let mut writer = lane
        .writer(token)
        .map_err(|e| setup.differ("claiming the writer", &e, &"Ok"))?;
    let mut readers: Vec<(
        SeqlockReader<&HeapRegion<SeqlockHeader>>,
        RegisterReaderModel,
    )> = (0..REGISTER_READERS)
        .map(|_| (lane.reader(), model.reader()))
        .collect();
    let slot_bytes = geometry.slot_bytes();
    let mut item = 0u64;

    for (index, op) in ops.iter().enumerate() {
        let step = Step {
            index: Some(index),
            op,
        };
        match *op {
            RegisterOp::Write { len } => {
                let value = payload(item, resolve_len(len, slot_bytes));
                item += 1;
                step.check("write", writer.write(&value), model.write(&value))?;
            }
            RegisterOp::Read {
                reader,
                buf,
                only_new,
            } => {
                let (core_reader, model_reader) =
                    &mut readers[usize::from(reader) % usize::from(REGISTER_READERS)];
                let n = buf.resolve(slot_bytes);
                let mut bytes = vec![0xa5; n];
                let got = if only_new {
                    core_reader.read_new(&mut bytes)
                } else {
                    core_reader.read(&mut bytes)
                }
                .map(|info| (info, prefix(&bytes, info.len)));
                let want = if only_new {
                    model_reader.read_new(&model, n)
                } else {
                    model_reader.read(&model, n)
                }
                .map(|(info, value)| (info, value.to_vec()));
                step.check("read", got, want)?;
                step.check(
                    "reader's last sequence",
                    core_reader.last_seq(),
                    model_reader.last_seq(),
                )?;
            }
            RegisterOp::NewReader { reader } => {
                let i = usize::from(reader) % readers.len();
                readers[i] = (lane.reader(), model.reader());
            }
            RegisterOp::NewWriter => {
                drop(writer);
                token += 1;
                writer = lane
                    .writer(token)
                    .map_err(|e| step.differ("claiming the writer again", &e, &"Ok"))?;
            }
        }
        step.check("published sequence", lane.published(), model.published())?;
        step.check(
            "writer's next sequence",
            writer.next_seq(),
            model.next_seq(),
        )?;
    }
    Ok(())
}

/// Decodes `data` with [`decode_register_case`] and runs it with [`run_register_ops`].
pub fn run_register_bytes(data: &[u8]) -> Result<(), Mismatch> {
    let (geometry, ops) = decode_register_case(data);
    run_register_ops(geometry, &ops)
}

// ---------------------------------------------------------------------------------
// SPSC

/// A sequential SPSC specification, as [`run_spsc_ops_against`] drives it.
/// [`SpscModel`] is the reference; other implementations exist to show that the
/// harness notices a wrong specification.
pub trait SpscSpec {
    /// Pushes `item`: its position, or why not.
    fn push(&mut self, item: &[u8]) -> Result<u64, PushError>;
    /// Lends the next free slot: the position it will get, or why not.
    fn loan(&self) -> Result<u64, PushError>;
    /// Commits a loan whose slot holds `item`.
    fn commit(&mut self, item: &[u8]) -> Result<u64, PushError>;
    /// Pops the oldest item into a buffer of `buf_len` bytes.
    fn pop(&mut self, buf_len: usize) -> Result<(Popped, Vec<u8>), PopError>;
    /// The oldest item and its position, left in place.
    fn peek(&self) -> Result<(u64, &[u8]), PopError>;
    /// Removes the oldest item.
    fn release(&mut self) -> Result<Popped, PopError>;
    /// Position of the oldest waiting item.
    fn head(&self) -> u64;
    /// Position the next item gets.
    fn tail(&self) -> u64;
    /// Items waiting.
    fn waiting(&self) -> usize;
    /// Free slots.
    fn free(&self) -> usize;
}

impl SpscSpec for SpscModel {
    fn push(&mut self, item: &[u8]) -> Result<u64, PushError> {
        SpscModel::push(self, item)
    }
    fn loan(&self) -> Result<u64, PushError> {
        SpscModel::loan(self)
    }
    fn commit(&mut self, item: &[u8]) -> Result<u64, PushError> {
        SpscModel::commit(self, item)
    }
    fn pop(&mut self, buf_len: usize) -> Result<(Popped, Vec<u8>), PopError> {
        SpscModel::pop(self, buf_len)
    }
    fn peek(&self) -> Result<(u64, &[u8]), PopError> {
        SpscModel::peek(self)
    }
    fn release(&mut self) -> Result<Popped, PopError> {
        SpscModel::release(self)
    }
    fn head(&self) -> u64 {
        SpscModel::head(self)
    }
    fn tail(&self) -> u64 {
        SpscModel::tail(self)
    }
    fn waiting(&self) -> usize {
        SpscModel::len(self)
    }
    fn free(&self) -> usize {
        SpscModel::free(self)
    }
}

/// Runs `ops` against an SPSC ring of `geometry` and [`SpscModel`].
pub fn run_spsc_ops(geometry: SpscGeometry, ops: &[SpscOp]) -> Result<(), Mismatch> {
    run_spsc_ops_against(geometry, ops, SpscModel::new(geometry))
}

/// Decodes `data` with [`decode_spsc_case`] and runs it with [`run_spsc_ops`].
pub fn run_spsc_bytes(data: &[u8]) -> Result<(), Mismatch> {
    let (geometry, ops) = decode_spsc_case(data);
    run_spsc_ops(geometry, &ops)
}

/// Runs `ops` against an SPSC ring of `geometry` and the specification `model`,
/// which must start empty.
pub fn run_spsc_ops_against<S: SpscSpec>(
    geometry: SpscGeometry,
    ops: &[SpscOp],
    mut model: S,
) -> Result<(), Mismatch> {
    let setup = Step::setup();
    let region = HeapRegion::<SpscHeader>::new(geometry.body_words());
    // SAFETY: this ring is the only user of `region`, through its handles, on this
    // thread only.
    let region = unsafe { Exclusive::new(&region) };
    let ring =
        Spsc::new(region, geometry).map_err(|e| setup.differ("building the ring", &e, &"Ok"))?;
    let mut token = 1;
    let mut producer = ring
        .producer(token)
        .map_err(|e| setup.differ("claiming the producer", &e, &"Ok"))?;
    let mut consumer = ring
        .consumer(token + 1)
        .map_err(|e| setup.differ("claiming the consumer", &e, &"Ok"))?;
    let slot_bytes = geometry.slot_bytes();
    let mut item = 0u64;

    for (index, op) in ops.iter().enumerate() {
        let step = Step {
            index: Some(index),
            op,
        };
        match *op {
            SpscOp::Push { len } => {
                let value = payload(item, resolve_len(len, slot_bytes));
                item += 1;
                step.check("push", producer.push(&value), model.push(&value))?;
            }
            SpscOp::Pop { buf } => {
                let n = buf.resolve(slot_bytes);
                let mut bytes = vec![0xa5; n];
                let got = consumer
                    .pop(&mut bytes)
                    .map(|popped| (popped, prefix(&bytes, popped.len)));
                step.check("pop", got, model.pop(n))?;
            }
            SpscOp::Loan {
                len,
                access,
                commit,
            } => {
                let position = producer.tail();
                let want = model.loan();
                match producer.loan() {
                    Err(e) => step.check("loan", Err(e), want)?,
                    Ok(mut loan) => {
                        step.check("loan", Ok(position), want)?;
                        step.check("loan slot bytes", loan.slot_bytes(), slot_bytes)?;
                        let len = resolve_len(len, slot_bytes);
                        let value = payload(item, len.max(slot_bytes));
                        item += 1;
                        match access {
                            LoanAccess::Bytes => {
                                loan.bytes_mut().copy_from_slice(&value[..slot_bytes])
                            }
                            LoanAccess::Words => {
                                crate::words::store_le(loan.words(), &value[..slot_bytes])
                            }
                        }
                        // An uncommitted loan is dropped at the end of this arm: it
                        // pushes nothing, and the model is not told about it.
                        if commit {
                            step.check("commit", loan.commit(len), model.commit(&value[..len]))?;
                        }
                    }
                }
            }
            SpscOp::Peek { access, release } => {
                let want = model
                    .peek()
                    .map(|(position, value)| (position, value.to_vec()));
                match consumer.peek() {
                    Err(e) => step.check("peek", Err(e), want)?,
                    Ok(peek) => {
                        let (want_position, want_value) = match want {
                            Ok(found) => found,
                            Err(e) => return Err(step.differ("peek", &"Ok(..)", &Err::<(), _>(e))),
                        };
                        step.check(
                            "peeked position and length",
                            (peek.position(), peek.len(), peek.is_empty()),
                            (want_position, want_value.len(), want_value.is_empty()),
                        )?;
                        let (got, want) = match access {
                            PeekAccess::Bytes => (Ok(peek.bytes().to_vec()), Ok(want_value)),
                            PeekAccess::Words => (
                                Ok(crate::words::load_view(peek.words(), peek.len())),
                                Ok(want_value),
                            ),
                            PeekAccess::CopyTo(buf) => {
                                let n = buf.resolve(slot_bytes);
                                let mut bytes = vec![0xa5; n];
                                let got = peek.copy_to(&mut bytes).map(|len| prefix(&bytes, len));
                                let want = if want_value.len() > n {
                                    Err(PopError::BufferTooSmall {
                                        needed: want_value.len(),
                                    })
                                } else {
                                    Ok(want_value)
                                };
                                (got, want)
                            }
                        };
                        step.check("peeked item", got, want)?;
                        // An unreleased peek is dropped at the end of this arm: the item
                        // stays in the ring.
                        if release {
                            peek.release();
                            step.check(
                                "release",
                                Ok(want_position),
                                model.release().map(|p| p.position),
                            )?;
                        }
                    }
                }
            }
            SpscOp::Free => {
                step.check("free slots", producer.free(), Ok(model.free()))?;
            }
            SpscOp::Available => {
                step.check("items waiting", consumer.available(), Ok(model.waiting()))?;
            }
            SpscOp::NewProducer => {
                drop(producer);
                token += 2;
                producer = ring
                    .producer(token)
                    .map_err(|e| step.differ("claiming the producer again", &e, &"Ok"))?;
            }
            SpscOp::NewConsumer => {
                drop(consumer);
                token += 2;
                consumer = ring
                    .consumer(token)
                    .map_err(|e| step.differ("claiming the consumer again", &e, &"Ok"))?;
            }
        }
        step.check("producer's tail", producer.tail(), model.tail())?;
        step.check("consumer's head", consumer.head(), model.head())?;
        step.check(
            "shared (head, tail)",
            ring.positions(),
            (model.head(), model.tail()),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Broadcast

type CoreSubscriber<'a> = BroadcastSubscriber<&'a HeapRegion<BroadcastHeader>>;

/// What a join tells about the new subscriber.
fn joined(
    index: usize,
    head: u64,
    missed: u64,
    lost_at_join: u64,
    lossless: bool,
) -> (usize, u64, u64, u64, bool) {
    (index, head, missed, lost_at_join, lossless)
}

/// Runs `ops` against a broadcast ring of `geometry` (one producer, up to
/// [`SUBSCRIBER_SLOTS`] subscriber handles, a supervisor) and [`BroadcastModel`].
pub fn run_broadcast_ops(geometry: BroadcastGeometry, ops: &[BroadcastOp]) -> Result<(), Mismatch> {
    let setup = Step::setup();
    let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
    let ring = Broadcast::new(&region, geometry)
        .map_err(|e| setup.differ("building the ring", &e, &"Ok"))?;
    let mut model = BroadcastModel::new(geometry);
    let mut producer_token = 1;
    let mut producer = ring
        .producer(producer_token)
        .map_err(|e| setup.differ("claiming the producer", &e, &"Ok"))?;
    let mut handles: Vec<Option<(CoreSubscriber<'_>, SubscriberModel)>> =
        (0..SUBSCRIBER_SLOTS).map(|_| None).collect();
    let slot_bytes = geometry.slot_bytes();
    let table = geometry.max_subscribers();
    let mut item = 0u64;
    let mut subscriber_token = 100u64;

    for (index, op) in ops.iter().enumerate() {
        let step = Step {
            index: Some(index),
            op,
        };
        match *op {
            BroadcastOp::Publish { len } => {
                let value = payload(item, resolve_len(len, slot_bytes));
                item += 1;
                step.check("publish", producer.publish(&value), model.publish(&value))?;
            }
            BroadcastOp::Join {
                slot,
                lossless,
                history,
                max_lag,
            } => {
                let handle = &mut handles[usize::from(slot) % usize::from(SUBSCRIBER_SLOTS)];
                if let Some((core_sub, model_sub)) = handle.take() {
                    drop(core_sub);
                    model.leave(model_sub);
                }
                let mode = if lossless {
                    Mode::Lossless
                } else {
                    Mode::Lossy { max_lag }
                };
                let options = SubscribeOptions::new(mode).with_history(history);
                subscriber_token += 1;
                let got = ring.subscribe(options, subscriber_token);
                let want = model.subscribe(options, subscriber_token);
                step.check(
                    "subscribe",
                    got.as_ref().map(|s| {
                        joined(
                            s.index(),
                            s.head(),
                            s.missed(),
                            s.lost_at_join(),
                            s.is_lossless(),
                        )
                    }),
                    want.as_ref().map(|s| {
                        joined(
                            s.index(),
                            s.head(),
                            s.missed(),
                            s.lost_at_join(),
                            s.is_lossless(),
                        )
                    }),
                )?;
                if let (Ok(core_sub), Ok(model_sub)) = (got, want) {
                    *handle = Some((core_sub, model_sub));
                }
            }
            BroadcastOp::Leave { slot } => {
                if let Some((core_sub, model_sub)) =
                    handles[usize::from(slot) % usize::from(SUBSCRIBER_SLOTS)].take()
                {
                    drop(core_sub);
                    model.leave(model_sub);
                }
            }
            BroadcastOp::Recv { slot, buf } => {
                if let Some((core_sub, model_sub)) =
                    &mut handles[usize::from(slot) % usize::from(SUBSCRIBER_SLOTS)]
                {
                    let n = buf.resolve(slot_bytes);
                    let mut bytes = vec![0xa5; n];
                    let got = core_sub
                        .recv(&mut bytes)
                        .map(|received| (received, prefix(&bytes, received.len)));
                    let want = model
                        .recv(model_sub, n)
                        .map(|(received, value)| (received, value.to_vec()));
                    step.check("recv", got, want)?;
                    step.check(
                        "subscriber's head and drop count",
                        (core_sub.head(), core_sub.missed()),
                        (model_sub.head(), model_sub.missed()),
                    )?;
                }
            }
            BroadcastOp::Evict { index } => {
                let i = usize::from(index) % (table + 1);
                step.check("evict", ring.evict(i), model.evict(i))?;
            }
            BroadcastOp::Reclaim { index } => {
                let i = usize::from(index) % (table + 1);
                step.check("reclaim", ring.reclaim(i), model.reclaim(i))?;
            }
            BroadcastOp::ReadAt { offset, buf } => {
                let position = model.tail().saturating_add_signed(i64::from(offset));
                let n = buf.resolve(slot_bytes);
                let mut bytes = vec![0xa5; n];
                let got = ring
                    .read_at(position, &mut bytes)
                    .map(|len| prefix(&bytes, len));
                let want = model.read_at(position, n).map(<[u8]>::to_vec);
                step.check("read_at", got, want)?;
            }
            BroadcastOp::History { k } => {
                let range = ring.history(k);
                step.check("history", range.clone(), model.history(k))?;
                for position in range {
                    let mut bytes = vec![0xa5; slot_bytes];
                    let got = ring
                        .read_at(position, &mut bytes)
                        .map(|len| prefix(&bytes, len));
                    let want = model.read_at(position, slot_bytes).map(<[u8]>::to_vec);
                    step.check("read_at in history", got, want)?;
                }
            }
            BroadcastOp::NewProducer => {
                drop(producer);
                producer_token += 1;
                producer = ring
                    .producer(producer_token)
                    .map_err(|e| step.differ("claiming the producer again", &e, &"Ok"))?;
            }
        }
        step.check("shared tail", ring.tail(), model.tail())?;
        step.check("producer's tail", producer.tail(), model.tail())?;
        for i in 0..=table {
            step.check(
                "subscriber table entry",
                ring.subscriber(i),
                model.subscriber(i),
            )?;
        }
    }
    Ok(())
}

/// Decodes `data` with [`decode_broadcast_case`] and runs it with
/// [`run_broadcast_ops`].
pub fn run_broadcast_bytes(data: &[u8]) -> Result<(), Mismatch> {
    let (geometry, ops) = decode_broadcast_case(data);
    run_broadcast_ops(geometry, &ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_distinct_and_sized() {
        assert_eq!(payload(7, 3), vec![7, 0, 0]);
        assert_eq!(payload(7, 20).len(), 20);
        assert_ne!(payload(1, 16), payload(2, 16));
        assert!(payload(0, 0).is_empty());
    }

    #[test]
    fn mismatch_names_the_op() {
        let step = Step {
            index: Some(3),
            op: &RegisterOp::NewWriter,
        };
        let m = step.check("x", 1, 2).unwrap_err();
        assert_eq!(
            m.to_string(),
            "op #3 NewWriter: x: core said 1, model said 2"
        );
    }
}

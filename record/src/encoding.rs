//! The MCAP encoding of a recorded lane (docs/RECORDING.md states the same).
//!
//! One MCAP channel per lane: its topic is the lane name, its schema is
//! [`SCHEMA_NAME`] (encoding [`SCHEMA_ENCODING`], data [`SCHEMA_TEXT`]), its
//! message encoding is [`MESSAGE_ENCODING`], and its metadata map holds the lane's
//! description under the [`key`] names. Each message is one frame: a
//! [`HEADER_BYTES`]-byte little-endian header (`seq`, `frame_id`, `timestamp_ns`,
//! `missed`, each a `u64`) followed by exactly `tensorlane.bytes` bytes of tensor.
//!
//! Invariants: [`encode_header`] and [`decode`] are inverse on every frame; [`decode`]
//! and [`LaneDescription::from_channel`] read untrusted bytes and return typed errors,
//! never panic (checked lengths, checked arithmetic).

use std::collections::BTreeMap;
use std::fmt;
use tensorlane_shm::{Clock, DType, Frame, HeaderInfo, Kind, TensorSpec};

/// The schema name of a recorded lane's channel.
pub const SCHEMA_NAME: &str = "tensorlane.Frame";
/// The schema encoding: the schema data is this text, not a machine-readable schema.
pub const SCHEMA_ENCODING: &str = "tensorlane.frame.v1";
/// The message encoding of a recorded lane's channel.
pub const MESSAGE_ENCODING: &str = "tensorlane.frame.v1";
/// The MCAP header's profile.
pub const PROFILE: &str = "tensorlane";
/// The schema data: a description of the message layout for a reader without this
/// crate.
pub const SCHEMA_TEXT: &str = "tensorlane frame, little-endian: \
u64 seq @0, u64 frame_id @8, u64 timestamp_ns @16, u64 missed @24, \
tensor bytes @32 (length tensorlane.bytes, dtype tensorlane.dtype, \
row-major shape tensorlane.shape; see docs/RECORDING.md)";
/// Bytes before the tensor in a message.
pub const HEADER_BYTES: usize = 32;

/// The channel metadata keys.
pub mod key {
    /// Encoding version: `"1"`.
    pub const VERSION: &str = "tensorlane.version";
    /// Lane kind: `stream`, `queue` or `topic`.
    pub const KIND: &str = "tensorlane.kind";
    /// Element type, numpy name (`uint8`, `float32`, ...).
    pub const DTYPE: &str = "tensorlane.dtype";
    /// Shape, a JSON array of integers (`[]` for a scalar).
    pub const SHAPE: &str = "tensorlane.shape";
    /// Tensor bytes per frame, decimal.
    pub const BYTES: &str = "tensorlane.bytes";
    /// Slots (stream), capacity (queue, topic), decimal.
    pub const COUNT: &str = "tensorlane.count";
    /// Subscriber table entries (topic; 0 otherwise), decimal.
    pub const SUBSCRIBERS: &str = "tensorlane.subscribers";
    /// Clock of `timestamp_ns`: `monotonic`, `realtime` or `none`.
    pub const CLOCK: &str = "tensorlane.clock";
    /// The lane's metadata, a JSON array of `[key, value]` string pairs, in order.
    pub const METADATA: &str = "tensorlane.metadata";
    /// How the recorder read the lane: `stream reader`, `queue consumer`,
    /// `lossless subscriber` or `lossy subscriber (lag N)`.
    pub const READ_AS: &str = "tensorlane.read_as";
}

/// The current encoding version.
pub const VERSION: &str = "1";

/// Why a channel or message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A channel metadata key is absent.
    MissingKey(&'static str),
    /// A channel metadata value does not parse.
    BadValue {
        /// The key.
        key: &'static str,
        /// The value found.
        value: String,
    },
    /// The encoding version is not one this crate reads.
    Version(String),
    /// The shape and dtype do not give `tensorlane.bytes`.
    Inconsistent {
        /// Bytes the dtype and shape give (None: too large).
        computed: Option<usize>,
        /// Bytes the channel states.
        stated: usize,
    },
    /// A message's length is not the header plus one tensor.
    MessageLength {
        /// Expected length.
        expected: usize,
        /// Length found.
        found: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::MissingKey(k) => write!(f, "channel metadata lacks {k:?}"),
            DecodeError::BadValue { key, value } => {
                write!(f, "channel metadata {key:?} = {value:?} does not parse")
            }
            DecodeError::Version(v) => write!(f, "encoding version {v:?} is not {VERSION:?}"),
            DecodeError::Inconsistent { computed, stated } => write!(
                f,
                "dtype and shape give {computed:?} bytes, the channel states {stated}"
            ),
            DecodeError::MessageLength { expected, found } => {
                write!(f, "message of {found} bytes, expected {expected}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// What a recording keeps of a lane: enough to create it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneDescription {
    /// Lane name (the channel's topic).
    pub name: String,
    /// Lane kind.
    pub kind: Kind,
    /// The tensor of every frame.
    pub spec: TensorSpec,
    /// Slots or capacity.
    pub count: usize,
    /// Subscriber table entries (topic).
    pub subscribers: usize,
    /// Clock of the frames' timestamps.
    pub clock: Clock,
    /// The lane's metadata, in order.
    pub metadata: Vec<(String, String)>,
}

fn kind_from_name(name: &str) -> Option<Kind> {
    [Kind::Stream, Kind::Queue, Kind::Topic]
        .into_iter()
        .find(|k| k.name() == name)
}

fn clock_from_name(name: &str) -> Option<Clock> {
    [Clock::Monotonic, Clock::Realtime, Clock::None]
        .into_iter()
        .find(|c| c.name() == name)
}

impl LaneDescription {
    /// The description of lane `name` with validated header `info`.
    pub fn from_info(name: &str, info: &HeaderInfo) -> Self {
        LaneDescription {
            name: name.to_string(),
            kind: info.kind,
            spec: info.spec.clone(),
            count: info.count,
            subscribers: info.subscribers,
            clock: info.clock,
            metadata: info
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The channel metadata map (without [`key::READ_AS`], which the recorder adds).
    pub fn channel_metadata(&self) -> BTreeMap<String, String> {
        let pairs: Vec<[&str; 2]> = self
            .metadata
            .iter()
            .map(|(k, v)| [k.as_str(), v.as_str()])
            .collect();
        let mut map = BTreeMap::new();
        map.insert(key::VERSION.into(), VERSION.into());
        map.insert(key::KIND.into(), self.kind.name().into());
        map.insert(key::DTYPE.into(), self.spec.dtype().name().into());
        map.insert(
            key::SHAPE.into(),
            serde_json::to_string(self.spec.shape()).expect("integers serialize"),
        );
        map.insert(key::BYTES.into(), self.spec.byte_len().to_string());
        map.insert(key::COUNT.into(), self.count.to_string());
        map.insert(key::SUBSCRIBERS.into(), self.subscribers.to_string());
        map.insert(key::CLOCK.into(), self.clock.name().into());
        map.insert(
            key::METADATA.into(),
            serde_json::to_string(&pairs).expect("strings serialize"),
        );
        map
    }

    /// Parses a channel's topic and metadata map (untrusted).
    pub fn from_channel(
        topic: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self, DecodeError> {
        fn get<'a>(
            map: &'a BTreeMap<String, String>,
            key: &'static str,
        ) -> Result<&'a str, DecodeError> {
            map.get(key)
                .map(String::as_str)
                .ok_or(DecodeError::MissingKey(key))
        }
        fn bad(key: &'static str, value: &str) -> DecodeError {
            DecodeError::BadValue {
                key,
                value: value.to_string(),
            }
        }
        fn number(map: &BTreeMap<String, String>, key: &'static str) -> Result<usize, DecodeError> {
            let value = get(map, key)?;
            value.parse().map_err(|_| bad(key, value))
        }
        let version = get(metadata, key::VERSION)?;
        if version != VERSION {
            return Err(DecodeError::Version(version.to_string()));
        }
        let kind_name = get(metadata, key::KIND)?;
        let kind = kind_from_name(kind_name).ok_or_else(|| bad(key::KIND, kind_name))?;
        let dtype_name = get(metadata, key::DTYPE)?;
        let dtype = DType::from_name(dtype_name).ok_or_else(|| bad(key::DTYPE, dtype_name))?;
        let shape_text = get(metadata, key::SHAPE)?;
        let shape: Vec<u64> =
            serde_json::from_str(shape_text).map_err(|_| bad(key::SHAPE, shape_text))?;
        let spec = TensorSpec::new(dtype, &shape).map_err(|_| bad(key::SHAPE, shape_text))?;
        let stated = number(metadata, key::BYTES)?;
        if spec.byte_len() != stated {
            return Err(DecodeError::Inconsistent {
                computed: Some(spec.byte_len()),
                stated,
            });
        }
        let clock_name = get(metadata, key::CLOCK)?;
        let clock = clock_from_name(clock_name).ok_or_else(|| bad(key::CLOCK, clock_name))?;
        let pairs_text = get(metadata, key::METADATA)?;
        let pairs: Vec<(String, String)> =
            serde_json::from_str(pairs_text).map_err(|_| bad(key::METADATA, pairs_text))?;
        Ok(LaneDescription {
            name: topic.to_string(),
            kind,
            spec,
            count: number(metadata, key::COUNT)?,
            subscribers: number(metadata, key::SUBSCRIBERS)?,
            clock,
            metadata: pairs,
        })
    }

    /// The length of every message of this lane.
    pub fn message_len(&self) -> Option<usize> {
        self.spec.byte_len().checked_add(HEADER_BYTES)
    }
}

/// Writes `frame`'s header into the first [`HEADER_BYTES`] of `message`.
///
/// # Panics
/// If `message` is shorter than [`HEADER_BYTES`] (a caller's bug: the recorder
/// sizes its own buffers).
pub fn encode_header(frame: &Frame, message: &mut [u8]) {
    let words = [frame.seq, frame.frame_id, frame.timestamp_ns, frame.missed];
    for (chunk, word) in message[..HEADER_BYTES].chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
}

/// Splits a message of a lane whose tensors are `tensor_bytes` long into its frame
/// and its tensor (untrusted bytes: a wrong length is an error).
pub fn decode(message: &[u8], tensor_bytes: usize) -> Result<(Frame, &[u8]), DecodeError> {
    let expected = tensor_bytes
        .checked_add(HEADER_BYTES)
        .ok_or(DecodeError::Inconsistent {
            computed: None,
            stated: tensor_bytes,
        })?;
    if message.len() != expected {
        return Err(DecodeError::MessageLength {
            expected,
            found: message.len(),
        });
    }
    let (header, tensor) = message.split_at(HEADER_BYTES);
    let mut words = [0u64; 4];
    for (word, chunk) in words.iter_mut().zip(header.chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *word = u64::from_le_bytes(bytes);
    }
    let frame = Frame {
        seq: words[0],
        frame_id: words[1],
        timestamp_ns: words[2],
        missed: words[3],
    };
    Ok((frame, tensor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description() -> LaneDescription {
        LaneDescription {
            name: "camera".into(),
            kind: Kind::Topic,
            spec: TensorSpec::new(DType::F32, &[2, 3]).unwrap(),
            count: 16,
            subscribers: 4,
            clock: Clock::Realtime,
            metadata: vec![("b".into(), "1".into()), ("a".into(), "\"x\"".into())],
        }
    }

    #[test]
    fn channel_metadata_round_trips() {
        let d = description();
        let back = LaneDescription::from_channel("camera", &d.channel_metadata()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn channel_metadata_is_checked() {
        let d = description();
        let mut map = d.channel_metadata();
        map.insert(key::BYTES.into(), "25".into());
        assert_eq!(
            LaneDescription::from_channel("camera", &map),
            Err(DecodeError::Inconsistent {
                computed: Some(24),
                stated: 25
            })
        );
        let mut map = d.channel_metadata();
        map.insert(key::SHAPE.into(), "[18446744073709551615, 9]".into());
        assert!(matches!(
            LaneDescription::from_channel("camera", &map),
            Err(DecodeError::BadValue {
                key: key::SHAPE,
                ..
            })
        ));
        let mut map = d.channel_metadata();
        map.remove(key::CLOCK);
        assert_eq!(
            LaneDescription::from_channel("camera", &map),
            Err(DecodeError::MissingKey(key::CLOCK))
        );
        let mut map = d.channel_metadata();
        map.insert(key::VERSION.into(), "2".into());
        assert_eq!(
            LaneDescription::from_channel("camera", &map),
            Err(DecodeError::Version("2".into()))
        );
    }

    #[test]
    fn messages_round_trip_and_lengths_are_checked() {
        let frame = Frame {
            seq: 7,
            frame_id: u64::MAX,
            timestamp_ns: 0x0102_0304_0506_0708,
            missed: 3,
        };
        let mut message = vec![0u8; HEADER_BYTES + 5];
        encode_header(&frame, &mut message);
        message[HEADER_BYTES..].copy_from_slice(b"hello");
        assert_eq!(message[16], 0x08, "little-endian timestamp at offset 16");
        let (back, tensor) = decode(&message, 5).unwrap();
        assert_eq!((back, tensor), (frame, &b"hello"[..]));
        assert_eq!(
            decode(&message, 4),
            Err(DecodeError::MessageLength {
                expected: 36,
                found: 37
            })
        );
        assert!(decode(&message, usize::MAX).is_err());
    }
}

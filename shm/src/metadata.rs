//! Lane metadata: a small, immutable key-value area written at create.
//!
//! The area (docs/LAYOUT.md, section 5, *Metadata area*) follows the core structure
//! at a multiple of 8 bytes. It is a sequence of entries, each `key_len: u32`,
//! `value_len: u32` (little-endian), then `key_len` bytes of key and `value_len` bytes
//! of value, both UTF-8, with no padding between entries; the area is exactly as long
//! as its entries. Keys are non-empty and unique; the whole area is at most
//! [`MAX_METADATA_BYTES`]. Its length and its FNV-1a-64 checksum are header words
//! covered by the header checksum.

use std::fmt;
use std::ops::Range;

/// Largest metadata area, in bytes (64 KiB).
pub const MAX_METADATA_BYTES: usize = 65536;

/// Bytes of an entry's two length words.
const ENTRY_HEADER_BYTES: usize = 8;

/// Immutable key-value pairs describing a lane (channel names, units, frame of
/// reference, a schema string), written when the lane is created and readable by
/// every opener.
///
/// ```
/// use tensorlane_shm::Metadata;
/// let metadata = Metadata::new([("units", "m/s"), ("frame", "base_link")]).unwrap();
/// assert_eq!(metadata.get("units"), Some("m/s"));
/// assert_eq!(metadata.iter().count(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// The area's bytes, as stored in the segment.
    bytes: Vec<u8>,
    /// Byte ranges of each entry's key and value in `bytes`, in area order.
    entries: Vec<(Range<usize>, Range<usize>)>,
}

/// Why metadata cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    /// A key is the empty string.
    EmptyKey,
    /// A key appears twice.
    DuplicateKey(String),
    /// The area would be (or claims to be) larger than [`MAX_METADATA_BYTES`].
    TooLarge {
        /// Bytes needed or claimed.
        bytes: u64,
    },
    /// An entry's lengths run past the end of the area.
    Truncated {
        /// Offset of the entry in the area.
        at: usize,
    },
    /// A key or value is not UTF-8.
    Utf8 {
        /// Offset of the entry in the area.
        at: usize,
    },
    /// The area's bytes do not match its checksum.
    Checksum {
        /// Stored checksum.
        stored: u64,
        /// Computed checksum.
        computed: u64,
    },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataError::EmptyKey => f.write_str("metadata key is empty"),
            MetadataError::DuplicateKey(key) => write!(f, "metadata key {key:?} appears twice"),
            MetadataError::TooLarge { bytes } => write!(
                f,
                "metadata of {bytes} bytes, more than the {MAX_METADATA_BYTES} allowed"
            ),
            MetadataError::Truncated { at } => {
                write!(
                    f,
                    "metadata entry at byte {at} runs past the end of the area"
                )
            }
            MetadataError::Utf8 { at } => {
                write!(f, "metadata entry at byte {at} is not UTF-8")
            }
            MetadataError::Checksum { stored, computed } => write!(
                f,
                "metadata checksum mismatch (stored {stored:#x}, computed {computed:#x})"
            ),
        }
    }
}

impl std::error::Error for MetadataError {}

/// FNV-1a 64 over `bytes` (the header checksum's function, over bytes).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl Metadata {
    /// Metadata holding `entries`, in that order. Keys must be non-empty and unique
    /// and the encoded area at most [`MAX_METADATA_BYTES`].
    pub fn new<K: AsRef<str>, V: AsRef<str>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Metadata, MetadataError> {
        let mut bytes = Vec::new();
        for (key, value) in entries {
            let (key, value) = (key.as_ref().as_bytes(), value.as_ref().as_bytes());
            let needed = (bytes.len() as u64)
                .saturating_add(ENTRY_HEADER_BYTES as u64)
                .saturating_add(key.len() as u64)
                .saturating_add(value.len() as u64);
            if needed > MAX_METADATA_BYTES as u64 {
                return Err(MetadataError::TooLarge { bytes: needed });
            }
            // Both lengths are below MAX_METADATA_BYTES (checked just above).
            bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(value);
        }
        Self::parse(bytes)
    }

    /// Parses and validates an area read from a segment; `stored` is its checksum
    /// from the header.
    pub fn decode(bytes: &[u8], stored: u64) -> Result<Metadata, MetadataError> {
        if bytes.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge {
                bytes: bytes.len() as u64,
            });
        }
        let computed = checksum(bytes);
        if computed != stored {
            return Err(MetadataError::Checksum { stored, computed });
        }
        Self::parse(bytes.to_vec())
    }

    fn parse(bytes: Vec<u8>) -> Result<Metadata, MetadataError> {
        if bytes.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge {
                bytes: bytes.len() as u64,
            });
        }
        let mut entries: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let word = |offset: usize| -> Option<usize> {
                let start = at.checked_add(offset)?;
                let raw = bytes.get(start..start.checked_add(4)?)?;
                usize::try_from(u32::from_le_bytes(raw.try_into().ok()?)).ok()
            };
            let truncated = MetadataError::Truncated { at };
            let (Some(key_len), Some(value_len)) = (word(0), word(4)) else {
                return Err(truncated);
            };
            let key_start = at + ENTRY_HEADER_BYTES;
            let key = key_start..key_start.checked_add(key_len).ok_or(truncated.clone())?;
            let value = key.end..key.end.checked_add(value_len).ok_or(truncated.clone())?;
            if value.end > bytes.len() {
                return Err(truncated);
            }
            let (Ok(key_text), Ok(_)) = (
                std::str::from_utf8(&bytes[key.clone()]),
                std::str::from_utf8(&bytes[value.clone()]),
            ) else {
                return Err(MetadataError::Utf8 { at });
            };
            if key_text.is_empty() {
                return Err(MetadataError::EmptyKey);
            }
            if entries
                .iter()
                .any(|(k, _)| bytes[k.clone()] == bytes[key.clone()])
            {
                return Err(MetadataError::DuplicateKey(key_text.to_string()));
            }
            at = value.end;
            entries.push((key, value));
        }
        Ok(Metadata { bytes, entries })
    }

    fn text(&self, range: &Range<usize>) -> &str {
        // Every range was checked to be inside `bytes` and UTF-8 by `parse`.
        std::str::from_utf8(&self.bytes[range.clone()]).unwrap_or_default()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The pairs, in the order they were written.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|(k, v)| (self.text(k), self.text(v)))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The area's bytes, as stored in the segment.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The area's checksum (header word `metadata_checksum`).
    pub fn checksum(&self) -> u64 {
        checksum(&self.bytes)
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let m = Metadata::new([("units", "m/s"), ("schema", "")]).unwrap();
        assert_eq!(m.get("units"), Some("m/s"));
        assert_eq!(m.get("schema"), Some(""));
        assert_eq!(m.get("none"), None);
        let again = Metadata::decode(m.as_bytes(), m.checksum()).unwrap();
        assert_eq!(again, m);
        assert_eq!(Metadata::new([("", "x")]), Err(MetadataError::EmptyKey));
        assert_eq!(
            Metadata::new([("a", "1"), ("a", "2")]),
            Err(MetadataError::DuplicateKey("a".into()))
        );
        let big = "x".repeat(MAX_METADATA_BYTES);
        assert!(matches!(
            Metadata::new([("k", big.as_str())]),
            Err(MetadataError::TooLarge { .. })
        ));
        assert!(Metadata::new(std::iter::empty::<(&str, &str)>())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn hostile_areas_are_refused() {
        let m = Metadata::new([("k", "v")]).unwrap();
        let mut bad = m.as_bytes().to_vec();
        bad[0] = 0xff; // key length past the end
        assert!(matches!(
            Metadata::decode(&bad, checksum(&bad)),
            Err(MetadataError::Truncated { at: 0 })
        ));
        assert!(matches!(
            Metadata::decode(m.as_bytes(), m.checksum() ^ 1),
            Err(MetadataError::Checksum { .. })
        ));
        let mut bad = m.as_bytes().to_vec();
        bad[8] = 0xff; // invalid UTF-8 key
        assert!(matches!(
            Metadata::decode(&bad, checksum(&bad)),
            Err(MetadataError::Utf8 { at: 0 })
        ));
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Metadata::decode(&huge, checksum(&huge)),
            Err(MetadataError::Truncated { at: 0 })
        ));
        // Every prefix and every one-byte change either parses or is refused.
        for n in 0..m.as_bytes().len() {
            let cut = &m.as_bytes()[..n];
            let _ = Metadata::decode(cut, checksum(cut));
        }
    }
}

//! Image channels: `u8` tensors of shape `[h, w]` or `[h, w, c]` (c = 1, 3 or 4)
//! written a second time as `foxglove.RawImage` messages (JSON, data in base64) on
//! topic `<lane>/image`, which MCAP viewers display. Replay ignores these channels.
//!
//! Invariant: [`ImageLayout::of`] accepts only shapes whose row stride and size fit
//! in `u32`/`usize`, so encoding never overflows.

use tensorlane_shm::{DType, TensorSpec};

/// The schema name of an image channel.
pub const SCHEMA_NAME: &str = "foxglove.RawImage";
/// The schema encoding.
pub const SCHEMA_ENCODING: &str = "jsonschema";
/// The message encoding.
pub const MESSAGE_ENCODING: &str = "json";
/// The JSON schema of a message.
pub const SCHEMA: &str = r#"{"title":"foxglove.RawImage","type":"object","properties":{"timestamp":{"type":"object","properties":{"sec":{"type":"integer","minimum":0},"nsec":{"type":"integer","minimum":0,"maximum":999999999}}},"frame_id":{"type":"string"},"width":{"type":"integer","minimum":0},"height":{"type":"integer","minimum":0},"encoding":{"type":"string"},"step":{"type":"integer","minimum":0},"data":{"type":"string","contentEncoding":"base64"}}}"#;

/// The image view of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLayout {
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// `mono8`, `rgb8` or `rgba8`.
    pub encoding: &'static str,
    /// Bytes per row.
    pub step: u32,
}

impl ImageLayout {
    /// The image layout of `spec`, if it is a `u8` image.
    pub fn of(spec: &TensorSpec) -> Option<ImageLayout> {
        if spec.dtype() != DType::U8 {
            return None;
        }
        let (height, width, channels) = match *spec.shape() {
            [h, w] => (h, w, 1),
            [h, w, c] => (h, w, c),
            _ => return None,
        };
        let encoding = match channels {
            1 => "mono8",
            3 => "rgb8",
            4 => "rgba8",
            _ => return None,
        };
        Some(ImageLayout {
            height: u32::try_from(height).ok()?,
            width: u32::try_from(width).ok()?,
            encoding,
            step: u32::try_from(width.checked_mul(channels)?).ok()?,
        })
    }

    /// The JSON message of one frame: `pixels` (the tensor) taken at `time_ns`
    /// nanoseconds, in frame `frame_id` (the lane name).
    pub fn message(&self, frame_id: &str, time_ns: u64, pixels: &[u8]) -> Vec<u8> {
        let header = serde_json::json!({
            "timestamp": {"sec": time_ns / 1_000_000_000, "nsec": time_ns % 1_000_000_000},
            "frame_id": frame_id,
            "width": self.width,
            "height": self.height,
            "encoding": self.encoding,
            "step": self.step,
        });
        // The header's closing brace is replaced by the data field: no copy of the
        // pixels through a JSON string value.
        let mut out = serde_json::to_vec(&header).expect("a JSON object serializes");
        out.pop();
        out.extend_from_slice(br#","data":""#);
        base64(pixels, &mut out);
        out.extend_from_slice(b"\"}");
        out
    }
}

/// Appends the standard base64 encoding (with padding) of `bytes` to `out`.
pub fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(bytes.len().div_ceil(3).saturating_mul(4));
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = [
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ];
        let keep = group.len() + 1;
        out.extend_from_slice(&symbols[..keep]);
        out.extend(std::iter::repeat_n(b'=', 4 - keep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_vectors() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xff, 0xfe, 0x00], "//4A"),
        ] {
            let mut out = Vec::new();
            base64(input, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn only_u8_images_have_a_layout() {
        let rgb = TensorSpec::new(DType::U8, &[2, 3, 3]).unwrap();
        assert_eq!(
            ImageLayout::of(&rgb),
            Some(ImageLayout {
                height: 2,
                width: 3,
                encoding: "rgb8",
                step: 9
            })
        );
        assert_eq!(
            ImageLayout::of(&TensorSpec::new(DType::U8, &[4, 5]).unwrap()).map(|l| l.encoding),
            Some("mono8")
        );
        for (dtype, shape) in [
            (DType::U16, &[2u64, 3][..]),
            (DType::U8, &[6]),
            (DType::U8, &[2, 3, 2]),
            (DType::U8, &[1, 2, 3, 1]),
        ] {
            assert_eq!(
                ImageLayout::of(&TensorSpec::new(dtype, shape).unwrap()),
                None
            );
        }
    }

    #[test]
    fn a_message_is_json_with_the_pixels_in_base64() {
        let layout = ImageLayout::of(&TensorSpec::new(DType::U8, &[1, 2]).unwrap()).unwrap();
        let message = layout.message("cam", 1_500_000_000, &[1, 2]);
        let value: serde_json::Value = serde_json::from_slice(&message).unwrap();
        assert_eq!(value["data"], "AQI=");
        assert_eq!(value["timestamp"]["sec"], 1);
        assert_eq!(value["timestamp"]["nsec"], 500_000_000);
        assert_eq!(value["encoding"], "mono8");
        assert_eq!(value["step"], 2);
    }
}

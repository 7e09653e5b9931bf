//! What the GPU-lane process tests share: self-checking tensors and lane clean-up.

use tensorlane_gpu::mirror_name;
use tensorlane_shm::{segment, LaneName};

/// Salt of the self-checking tensors.
pub const SALT: u64 = 0x5eed_f9b0;

/// Fills `out` with write `k`'s tensor: word `j` is `SALT ^ (k << 24) ^ j`.
pub fn fill(k: u64, out: &mut [u8]) {
    for (j, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(SALT ^ (k << 24) ^ j as u64).to_le_bytes());
    }
}

/// Whether `data` is exactly write `k`'s tensor.
pub fn whole(k: u64, data: &[u8]) -> bool {
    data.chunks_exact(8)
        .enumerate()
        .all(|(j, c)| u64::from_le_bytes(c.try_into().unwrap()) == SALT ^ (k << 24) ^ j as u64)
}

/// Unlinks GPU lane `name`'s record lane and mirror.
pub fn unlink(name: &str) {
    for n in [name.to_string(), mirror_name(name)] {
        if let Ok(n) = LaneName::new(&n) {
            let _ = segment::unlink(&n);
        }
    }
}

/// Unlinks a GPU lane when dropped, so that a failing test leaves nothing behind.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        unlink(&self.0);
    }
}

//! Which clock stamps a lane's frames.

use std::fmt;

/// The clock whose reading a lane writes into every frame's `timestamp_ns`, chosen
/// when the lane is created and recorded in its header (docs/LAYOUT.md, section 5), so
/// that every process that opens the lane knows what the timestamps mean.
///
/// Readings come from `clock_gettime`, which Linux answers from the vDSO without a
/// system call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Clock {
    /// `CLOCK_MONOTONIC`: nanoseconds since an unspecified start (on Linux, the boot,
    /// not counting suspend), the same for every process of the machine; never jumps.
    /// The default: latencies and rates measured across processes stay right when
    /// the wall clock is set.
    #[default]
    Monotonic,
    /// `CLOCK_REALTIME`: nanoseconds since the Unix epoch (wall-clock time; jumps when
    /// the system time is set). 0 if the clock is before the epoch.
    Realtime,
    /// No stamping: every frame's timestamp is 0, and writes skip reading a clock.
    None,
}

impl Clock {
    /// The header code (docs/LAYOUT.md, section 5): 1 monotonic, 2 realtime, 3 none.
    pub fn code(self) -> u64 {
        match self {
            Clock::Monotonic => 1,
            Clock::Realtime => 2,
            Clock::None => 3,
        }
    }

    /// The clock of a header code.
    pub fn from_code(code: u64) -> Option<Clock> {
        [Clock::Monotonic, Clock::Realtime, Clock::None]
            .into_iter()
            .find(|c| c.code() == code)
    }

    /// `"monotonic"`, `"realtime"` or `"none"`.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Monotonic => "monotonic",
            Clock::Realtime => "realtime",
            Clock::None => "none",
        }
    }

    /// The clock's reading now, in nanoseconds, as a lane stamps it (0 for
    /// [`Clock::None`], or if the clock cannot be read). Compare it with a frame's
    /// `timestamp_ns` to measure the frame's age.
    pub fn now_ns(self) -> u64 {
        let id = match self {
            Clock::Monotonic => libc::CLOCK_MONOTONIC,
            Clock::Realtime => libc::CLOCK_REALTIME,
            Clock::None => return 0,
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
        // `id` is a clock every Linux kernel supports.
        if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
            return 0;
        }
        let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u64::try_from(ts.tv_nsec)) else {
            return 0;
        };
        secs.checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(nanos))
            .unwrap_or(0)
    }
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

//! Pinning a process to one CPU, so that the two sides of a ping-pong stay on their
//! own cores instead of migrating (iceoryx2's benchmark pins its two sides too).
//! Wake-up measurements run unpinned: a woken process pinned to a busy CPU would
//! wait for that CPU instead of taking an idle one.

/// Pins the calling process (its current thread and the threads it starts later) to
/// CPU `cpu`; `false` if the kernel refused.
pub fn pin(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is a plain bit set for which all-zero is a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET only writes bit `cpu` of `set` (it ignores out-of-range CPUs).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Lets the calling process run on every online CPU again.
pub fn unpin() -> bool {
    // SAFETY: cpu_set_t is a plain bit set for which all-zero is a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    for cpu in 0..cpus {
        // SAFETY: CPU_SET only writes bit `cpu` of `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

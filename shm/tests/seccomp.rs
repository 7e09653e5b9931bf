//! No system call when nobody waits: a child process opens every lane kind, then
//! installs a seccomp filter that lets it make only `write` (its report), `read`,
//! `exit`, `exit_group` and `rt_sigreturn`, and kills the whole process on any other
//! system call; it then runs thousands of stream writes and reads, queue pushes and
//! pops (copies and loans) and topic publishes and receives (lossless and lossy),
//! blocking and timed forms included, and reports through its stdout. The parent
//! fails unless the child reports every round and exits with status 0.
//!
//! Timestamps (`Clock::Monotonic`) and the timed forms' deadlines read
//! `CLOCK_MONOTONIC` through the vDSO, which makes no system call where the clock
//! source allows it (`tsc`, `kvm-clock`, `arch_sys_counter`, ...). Where the clock
//! source forces a system call, the stamped run is skipped loudly and the run with
//! `Clock::None` lanes (no clock read at all) and no timed forms still runs.
//!
//! Canary: a child that makes one `getpid` after the filter is killed (`SIGSYS`), and
//! the same parent-side check fails (`should_panic`).
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::process::Command;
use tensorlane_shm::*;

const ROLE_VAR: &str = "TENSORLANE_SECCOMP_ROLE";
const ROUNDS: u64 = 5000;

/// Clock sources whose `CLOCK_MONOTONIC` the vDSO reads without a system call.
const VDSO_CLOCKSOURCES: &[&str] = &[
    "tsc",
    "kvm-clock",
    "arch_sys_counter",
    "hyperv_clocksource_tsc_page",
    "riscv_clocksource",
];

fn clocksource() -> String {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs the child with `role` and checks it reported all its rounds and exited 0.
fn run_child(role: &str) {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = output.status.signal() {
            panic!(
                "child {role} killed by signal {signal} (SIGSYS = {}: a system call the \
                 filter forbids); stdout: {stdout} stderr: {stderr}",
                libc::SIGSYS
            );
        }
    }
    assert!(
        output.status.success(),
        "child {role} failed: {:?}; stdout: {stdout} stderr: {stderr}",
        output.status
    );
    let expected = format!("done {ROUNDS} rounds");
    assert!(
        stdout.contains(&expected),
        "child {role} did not report {expected:?}: {stdout}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "shm_open, seccomp")]
fn lanes_without_a_clock_make_no_system_call() {
    run_child("clockless");
}

#[test]
#[cfg_attr(miri, ignore = "shm_open, seccomp")]
fn stamped_lanes_and_timed_forms_make_no_system_call() {
    let source = clocksource();
    if !VDSO_CLOCKSOURCES.contains(&source.as_str()) {
        eprintln!(
            "SKIPPED: the clock source {source:?} makes CLOCK_MONOTONIC a system call; \
             only the run without a clock is checked"
        );
        return;
    }
    run_child("stamped");
}

/// The check is not blind: the same child making one `getpid` is killed, and the
/// parent's check fails.
#[test]
#[should_panic(expected = "killed by signal")]
#[cfg_attr(miri, ignore = "shm_open, seccomp")]
fn canary_a_child_making_one_system_call_is_killed() {
    run_child("clockless-getpid");
}

// ---------------------------------------------------------------------------------
// Child side.

/// The child's entry point: without the role variable, an empty test.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let (clock, timed, getpid) = match role.as_str() {
        "clockless" => (Clock::None, false, false),
        "clockless-getpid" => (Clock::None, false, true),
        "stamped" => (Clock::Monotonic, true, false),
        other => panic!("unknown role {other:?}"),
    };
    run_filtered(clock, timed, getpid);
}

/// Writes `bytes` to stdout with the `write` system call only.
fn report(bytes: &[u8]) {
    // SAFETY: `bytes` is valid for reads of its length; fd 1 is the parent's pipe.
    unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
}

/// Formats `n` into `buf` without allocating; returns the digits.
fn digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Ends the process with `exit_group`, making no other system call (no destructors,
/// no atexit handlers).
fn exit_now(code: i32) -> ! {
    // SAFETY: exit_group takes a plain integer and does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, code) };
    unreachable!("exit_group returned")
}

fn run_filtered(clock: Clock, timed: bool, getpid: bool) {
    use std::time::Duration;
    let spec = TensorSpec::new(DType::F32, &[64]).unwrap();
    let pid = std::process::id();
    let names = [
        format!("rt-sec-s-{pid}"),
        format!("rt-sec-q-{pid}"),
        format!("rt-sec-t-{pid}"),
    ];
    let options = CreateOptions::new().clock(clock).prefault(true);
    let open = OpenOptions::new().expect(&spec).prefault(true);
    let mut writer = StreamWriter::create_with(&names[0], &spec, 3, options.clone()).unwrap();
    let mut reader = StreamReader::open_with(&names[0], open.clone()).unwrap();
    let mut producer = QueueProducer::create_with(&names[1], &spec, 4, options.clone()).unwrap();
    let mut consumer = QueueConsumer::open_with(&names[1], open.clone()).unwrap();
    let mut publisher = TopicPublisher::create_with(&names[2], &spec, 4, 4, options).unwrap();
    let mut lossless =
        TopicSubscriber::open_with(&names[2], SubscribeOptions::lossless(), open.clone()).unwrap();
    let mut lossy =
        TopicSubscriber::open_with(&names[2], SubscribeOptions::lossy(1), open).unwrap();
    // The names are no longer needed: the mappings stay.
    for name in &names {
        segment::unlink(&LaneName::new(name).unwrap()).unwrap();
    }
    let input = [0.25f32; 64];
    let mut out = [0f32; 64];
    let mut out_bytes = [0u8; 256];
    let second = Duration::from_secs(1);
    // Ends libtest's "test child_entry ... " line before the filter.
    report(b"\nfiltered\n");
    install_filter();
    if getpid {
        // SAFETY: getpid has no preconditions.
        std::hint::black_box(unsafe { libc::getpid() });
    }
    for round in 0..ROUNDS {
        writer.write_elements(&input).unwrap();
        reader.read_elements(&mut out).unwrap();
        writer
            .write_frame(bytemuck::cast_slice(&input), round)
            .unwrap();
        reader.read_new(&mut out_bytes).unwrap();
        producer.push_elements(&input).unwrap();
        producer.try_push(bytemuck::cast_slice(&input)).unwrap();
        consumer.pop_elements(&mut out).unwrap();
        consumer.try_pop(&mut out_bytes).unwrap();
        // SAFETY: only this process's two handles use the lane; both follow the layout.
        unsafe {
            producer
                .push_with(|slot| slot.copy_from_slice(bytemuck::cast_slice(&input)))
                .unwrap();
            consumer
                .pop_with(|_, tensor| std::hint::black_box(tensor[0]))
                .unwrap();
        }
        publisher.publish_elements(&input).unwrap();
        publisher.try_publish(bytemuck::cast_slice(&input)).unwrap();
        lossless.recv_elements(&mut out).unwrap();
        lossless.try_recv(&mut out_bytes).unwrap();
        lossy.recv(&mut out_bytes).unwrap();
        assert!(matches!(
            lossy.try_recv(&mut out_bytes),
            Err(LaneError::Empty)
        ));
        assert!(matches!(
            consumer.try_pop(&mut out_bytes),
            Err(LaneError::Empty)
        ));
        if timed {
            writer.write_elements(&input).unwrap();
            reader.read_new_timeout(&mut out_bytes, second).unwrap();
            producer
                .push_timeout(bytemuck::cast_slice(&input), second)
                .unwrap();
            consumer.pop_timeout(&mut out_bytes, second).unwrap();
            publisher
                .publish_timeout(bytemuck::cast_slice(&input), second)
                .unwrap();
            lossless.recv_timeout(&mut out_bytes, second).unwrap();
            lossy.recv_timeout(&mut out_bytes, second).unwrap();
        }
        assert_eq!(out, input);
    }
    let mut buf = [0u8; 20];
    report(b"done ");
    report(digits(ROUNDS, &mut buf));
    report(b" rounds\n");
    exit_now(0);
}

/// Installs, for this thread, a filter that allows `read`, `write`, `exit`,
/// `exit_group` and `rt_sigreturn` and kills the process on any other system call
/// (or on a system call of another architecture's numbering).
fn install_filter() {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    // Offsets in `struct seccomp_data`: nr (u32) at 0, arch (u32) at 4.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k, jt, jf| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    let allowed = [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_rt_sigreturn,
    ];
    let kill = libc::SECCOMP_RET_KILL_PROCESS;
    let allow = libc::SECCOMP_RET_ALLOW;
    let mut program = vec![
        stmt(LD_W_ABS, ARCH),
        jeq(AUDIT_ARCH, 1, 0),
        stmt(RET_K, kill),
        stmt(LD_W_ABS, NR),
    ];
    for (i, nr) in allowed.iter().enumerate() {
        // Equal: jump to the final ALLOW, past the remaining tests and the KILL.
        let to_allow = (allowed.len() - i) as u8;
        program.push(jeq(*nr as u32, to_allow, 0));
    }
    program.push(stmt(RET_K, kill));
    program.push(stmt(RET_K, allow));
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers; it is required to install a
    // filter without CAP_SYS_ADMIN and only forbids gaining privileges on exec.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "PR_SET_NO_NEW_PRIVS: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fprog` points to `program`, a valid BPF program that lives across the
    // call (the kernel copies it).
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", std::io::Error::last_os_error());
    // `program` is dropped here, before any checked operation: freeing makes no
    // system call that matters (and one that did would fail the test, not pass it).
    drop(program);
}

//! The hand-off: how a process opening a GPU lane gets the lane table and the slot
//! descriptors from the writer's process.
//!
//! The writer serves the lane on an abstract Unix socket,
//! `@tensorlane-gpu.<writer pid>.<16 hex digits of FNV-1a of the lane name>`,
//! from a thread that lives as long as the writer. To each connection it sends one
//! message: the table's length (u64, little-endian), the table, and the descriptors
//! as one `SCM_RIGHTS` control message. Abstract sockets have no file permissions, so
//! both ends check the other with `SO_PEERCRED`:
//!
//! - the writer serves only processes of its own effective uid;
//! - the opener accepts only a server whose pid is the lane's creator (from the shm
//!   header) and whose uid is its own, so a process squatting on the name cannot hand
//!   it memory.
//!
//! Everything received is bounded ([`MAX_MESSAGE_BYTES`], [`MAX_FDS`]) and then
//! validated by [`crate::table::LaneTable::decode`]. Received descriptors are
//! close-on-exec and owned as soon as the message is parsed, before anything is
//! checked, so none leaks on an error path; a truncated control message
//! (`MSG_CTRUNC`) is an error. Every step is bounded in time: the connection (a full
//! backlog is retried until the timeout), the receive, and the writer's send.
//!
//! Abstract socket names are per network namespace and unprotected: a process (of any
//! user) that binds a lane's name first makes the writer's `create` fail with
//! `Handoff`. That is a denial of service, not a hijack: openers only accept the
//! lane's creator.

use crate::error::GpuError;
use crate::table::{MAX_BLOB_BYTES, MAX_DEVICE_SLOTS, TABLE_WORDS};
use nix::sys::socket::{getsockopt, sendmsg, sockopt::PeerCredentials, ControlMessage, MsgFlags};
use std::io::{IoSlice, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest table message accepted (words and the largest blob).
pub const MAX_MESSAGE_BYTES: usize = TABLE_WORDS * 8 + MAX_BLOB_BYTES;
/// Most descriptors one table carries: one per slot and one more.
pub const MAX_FDS: usize = MAX_DEVICE_SLOTS + 1;

/// The socket address of lane `name` served by process `pid`.
pub fn address(name: &str, pid: u32) -> Result<SocketAddr, GpuError> {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let abstract_name = format!("tensorlane-gpu.{pid}.{hash:016x}");
    Ok(SocketAddr::from_abstract_name(abstract_name.as_bytes())?)
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Serves a lane's table and descriptors until dropped.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving lane `name` from this process.
    pub fn start(name: &str, table: Vec<u8>, fds: Vec<OwnedFd>) -> Result<Server, GpuError> {
        if table.len() > MAX_MESSAGE_BYTES || fds.len() > MAX_FDS {
            return Err(GpuError::Unsupported(format!(
                "a lane table of {} bytes and {} descriptors",
                table.len(),
                fds.len()
            )));
        }
        let listener = UnixListener::bind_addr(&address(name, std::process::id())?)
            .map_err(|e| GpuError::Handoff(format!("cannot serve lane {name}: {e}")))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let mut message = (table.len() as u64).to_le_bytes().to_vec();
        message.extend_from_slice(&table);
        let thread = std::thread::Builder::new()
            .name("tensorlane-gpu-handoff".into())
            .spawn(move || serve(&listener, &message, &fds, &stopping))?;
        Ok(Server {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &UnixListener, message: &[u8], fds: &[OwnedFd], stop: &AtomicBool) {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    while !stop.load(Ordering::Relaxed) {
        let mut poll = [libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `poll` points to one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(poll.as_mut_ptr(), 1, 50) };
        if ready <= 0 {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            // For example out of descriptors: do not spin on a ready listener.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        // A client of another user gets nothing; errors only end this connection.
        let _ = send_to(&stream, message, &raw);
    }
}

fn send_to(stream: &UnixStream, message: &[u8], fds: &[RawFd]) -> Result<(), GpuError> {
    let peer = getsockopt(stream, PeerCredentials).map_err(std::io::Error::from)?;
    if peer.uid() != euid() {
        return Err(GpuError::Handoff(format!("refused uid {}", peer.uid())));
    }
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let mut sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(message)],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(std::io::Error::from)?;
    while sent < message.len() {
        sent +=
            nix::sys::socket::send(stream.as_raw_fd(), &message[sent..], MsgFlags::MSG_NOSIGNAL)
                .map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Fetches the table and descriptors of lane `name` from its writer, process
/// `writer_pid`, waiting at most `timeout` (at least 1 ms) for each step.
pub fn fetch(
    name: &str,
    writer_pid: u32,
    timeout: Duration,
) -> Result<(Vec<u8>, Vec<OwnedFd>), GpuError> {
    let timeout = timeout.max(Duration::from_millis(1));
    let stream = connect(name, writer_pid, timeout)?;
    let peer = getsockopt(&stream, PeerCredentials).map_err(std::io::Error::from)?;
    if u32::try_from(peer.pid()).ok() != Some(writer_pid) || peer.uid() != euid() {
        return Err(GpuError::Handoff(format!(
            "lane {name} is served by pid {} uid {}, expected pid {writer_pid} uid {}",
            peer.pid(),
            peer.uid(),
            euid()
        )));
    }
    stream.set_read_timeout(Some(timeout))?;
    let mut first = vec![0u8; 8 + MAX_MESSAGE_BYTES];
    let (received, fds, truncated) = receive(&stream, &mut first)
        .map_err(|e| GpuError::Handoff(format!("receiving the lane table: {e}")))?;
    if truncated {
        // Whatever was installed is owned by `fds` and closed here.
        return Err(GpuError::Handoff(format!(
            "descriptors were truncated ({} received)",
            fds.len()
        )));
    }
    if received < 8 {
        return Err(GpuError::Handoff(format!(
            "a message of {received} bytes from the writer"
        )));
    }
    let len = u64::from_le_bytes(first[..8].try_into().expect("8 bytes"));
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_MESSAGE_BYTES && l + 8 >= received)
        .ok_or_else(|| GpuError::Handoff(format!("a lane table of {len} bytes")))?;
    let mut stream = stream;
    stream
        .read_exact(&mut first[received..8 + len])
        .map_err(|e| GpuError::Handoff(format!("receiving the lane table: {e}")))?;
    first.truncate(8 + len);
    first.drain(..8);
    Ok((first, fds))
}

/// Connects to lane `name`'s socket, retrying while its backlog is full (a writer that
/// is stopped or not accepting), for at most `timeout`.
fn connect(name: &str, writer_pid: u32, timeout: Duration) -> Result<UnixStream, GpuError> {
    let addr = address(name, writer_pid)?;
    let abstract_name = addr.as_abstract_name().expect("an abstract address");
    let unreachable = |e: std::io::Error| {
        GpuError::Handoff(format!(
            "cannot reach the writer (pid {writer_pid}) of lane {name}: {e}"
        ))
    };
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `raw` is a descriptor this function just created and owns alone.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // Abstract: a NUL byte, then the name (at most 107 bytes; ours is 50).
    for (dst, &src) in sun.sun_path[1..].iter_mut().zip(abstract_name) {
        *dst = src as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + 1 + abstract_name.len();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        // SAFETY: `sun` is a valid sockaddr_un of which `len` bytes are used.
        let rc = unsafe {
            libc::connect(
                socket.as_raw_fd(),
                (&sun as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
                len as libc::socklen_t,
            )
        };
        if rc == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        // A Unix socket whose listener's backlog is full answers EAGAIN.
        if e.raw_os_error() != Some(libc::EAGAIN) || std::time::Instant::now() >= deadline {
            return Err(unreachable(e));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let stream = UnixStream::from(socket);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Receives one message and its descriptors into `buf`: the bytes received, every
/// descriptor the kernel installed (owned at once, so none leaks on any error path), and
/// whether the control data was truncated.
fn receive(stream: &UnixStream, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>, bool)> {
    const FD_BYTES: usize = std::mem::size_of::<RawFd>();
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * FD_BYTES) as u32) } as usize;
    // u64 words: the control buffer must be aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points to one iovec over `buf` and to a control buffer of `space`
    // bytes, all valid for writes for the duration of the call.
    let received = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if received < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let control_end = control.as_ptr() as usize + space;
    let mut fds = Vec::new();
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within
    // `msg_controllen` and return null at the end.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR/NXTHDR lies within the buffer.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: as above; CMSG_DATA and CMSG_LEN are pointer arithmetic.
            let (data, empty) = unsafe { (libc::CMSG_DATA(cmsg), libc::CMSG_LEN(0) as usize) };
            let claimed = (header.cmsg_len as usize).saturating_sub(empty) / FD_BYTES;
            let fits = control_end.saturating_sub(data as usize) / FD_BYTES;
            for i in 0..claimed.min(fits) {
                // SAFETY: entry `i` lies within the control buffer (bounded by `fits`);
                // it may be unaligned, hence read_unaligned.
                let fd = unsafe { std::ptr::read_unaligned(data.cast::<RawFd>().add(i)) };
                if fd >= 0 {
                    // SAFETY: the kernel installed `fd` in this process for this
                    // message; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        // SAFETY: `cmsg` is a header of `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    Ok((received as usize, fds, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors of this process open on `path` (other tests' descriptors do not
    /// count).
    fn open_on(path: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target == path)
            .count()
    }

    /// A writer sending more descriptors than an opener accepts: the opener gets a
    /// typed error and keeps none of them.
    #[test]
    fn truncated_descriptors_are_refused_and_closed() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let before = open_on(&exe);
        let name = format!("handoff-test-{}", std::process::id());
        let listener =
            UnixListener::bind_addr(&address(&name, std::process::id()).unwrap()).unwrap();
        let file = std::fs::File::open(&exe).unwrap();
        let fds: Vec<OwnedFd> = (0..MAX_FDS + 2)
            .map(|_| OwnedFd::from(file.try_clone().unwrap()))
            .collect();
        drop(file);
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
            let message = [8u8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
            sendmsg::<()>(
                stream.as_raw_fd(),
                &[IoSlice::new(&message)],
                &[ControlMessage::ScmRights(&raw)],
                MsgFlags::empty(),
                None,
            )
            .unwrap();
            // Until the opener closes the connection.
            let mut rest = Vec::new();
            let _ = (&stream).read_to_end(&mut rest);
        });
        let result = fetch(&name, std::process::id(), Duration::from_secs(2));
        assert!(
            matches!(result, Err(GpuError::Handoff(ref why)) if why.contains("truncated")),
            "{result:?}"
        );
        server.join().unwrap();
        // The server's descriptors are closed now: one the opener received and kept
        // would still be open on the file.
        assert_eq!(open_on(&exe), before);
    }

    #[test]
    fn nobody_serving_is_a_handoff_error() {
        let result = fetch("handoff-test-nobody", std::process::id(), Duration::ZERO);
        assert!(matches!(result, Err(GpuError::Handoff(_))), "{result:?}");
    }
}

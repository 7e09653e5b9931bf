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
//! validated by [`crate::table::LaneTable::decode`]. A truncated control message
//! (`MSG_CTRUNC`) is an error, and received descriptors are close-on-exec and owned
//! at once, so none leaks on an error path.

use crate::error::GpuError;
use crate::table::{MAX_BLOB_BYTES, MAX_DEVICE_SLOTS, TABLE_WORDS};
use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt::PeerCredentials, ControlMessage, ControlMessageOwned,
    MsgFlags,
};
use std::io::{IoSlice, IoSliceMut, Read};
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
/// `writer_pid`, waiting at most `timeout` for each step.
pub fn fetch(
    name: &str,
    writer_pid: u32,
    timeout: Duration,
) -> Result<(Vec<u8>, Vec<OwnedFd>), GpuError> {
    let stream = UnixStream::connect_addr(&address(name, writer_pid)?).map_err(|e| {
        GpuError::Handoff(format!(
            "cannot reach the writer (pid {writer_pid}) of lane {name}: {e}"
        ))
    })?;
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
    let mut control = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (received, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut first)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| GpuError::Handoff(format!("receiving the lane table: {e}")))?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                for fd in raw {
                    // SAFETY: the kernel installed `fd` in this process for this
                    // message; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        (msg.bytes, fds, msg.flags.contains(MsgFlags::MSG_CTRUNC))
    };
    if truncated {
        return Err(GpuError::Handoff("descriptors were truncated".into()));
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

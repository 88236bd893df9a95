//! Sockets that share one local port (Unix): the relay connection of a side
//! that may go direct, and its direct attempts from that same port, which is
//! what lets two home routers' mappings line up (TCP simultaneous open).
//! Plain connects are made here too, so that the binary holds one connect
//! (async-net's would be some 2 KB more).

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::OwnedFd;

use async_net::{TcpListener, TcpStream};
use rustix::net::{self as rn, sockopt, AddressFamily, SocketType};
use smol::Async;

/// A non-blocking TCP socket; with `shared`, one whose local port other
/// sockets may share (`SO_REUSEADDR` and `SO_REUSEPORT`, set before it is
/// bound).
pub(super) fn socket(family_of: SocketAddr, shared: bool) -> io::Result<OwnedFd> {
    let family = match family_of {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    // Set apart from socket(2): Apple's has no SOCK_NONBLOCK or SOCK_CLOEXEC.
    let socket = rn::socket(family, SocketType::STREAM, Some(rn::ipproto::TCP))?;
    rustix::io::fcntl_setfd(&socket, rustix::io::FdFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&socket, true)?;
    // As async-io's connect does there: a write to a closed peer is an
    // error, never a signal.
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    sockopt::set_socket_nosigpipe(&socket, true)?;
    if shared {
        sockopt::set_socket_reuseaddr(&socket, true)?;
        sockopt::set_socket_reuseport(&socket, true)?;
    }
    Ok(socket)
}

/// Connects to `remote` from a socket that shares its port, bound first to
/// `local` when given, else to a free port the system picks. It is bound
/// before it connects in either case: a port that connect(2) picks by
/// itself may already be shared with other connections of the host (to
/// other places), which would keep a later socket from binding it.
pub async fn connect(local: Option<SocketAddr>, remote: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket(remote, true)?;
    let any = match remote {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    rn::bind(&socket, &local.unwrap_or(any))?;
    connected(socket, remote).await
}

/// Connects to `remote` from a port the system picks, as any connect does.
pub async fn connect_plain(remote: SocketAddr) -> io::Result<TcpStream> {
    connected(socket(remote, false)?, remote).await
}

/// Connects `socket` to `remote`.
async fn connected(socket: OwnedFd, remote: SocketAddr) -> io::Result<TcpStream> {
    match rn::connect(&socket, &remote) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = Async::new_nonblocking(StdStream::from(socket))?;
    // Writable once connected or failed; the socket's error says which.
    stream.writable().await?;
    match stream.get_ref().take_error()? {
        None => Ok(stream.into()),
        Some(e) => Err(e),
    }
}

/// Listens on `local`, sharing the port with the sockets connected from it.
pub fn listen(local: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket(local, true)?;
    rn::bind(&socket, &local)?;
    rn::listen(&socket, 4)?;
    Ok(Async::new_nonblocking(StdListener::from(socket))?.into())
}

#[cfg(test)]
mod tests;

//! The relay's listening socket, with a deep accept queue: std listens with a
//! backlog of 128, which a burst of connections fills before the relay has
//! accepted them, and every connection after that (a real person's too)
//! waits a second or more for its SYN to be sent again.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};

use smol::Async;

use crate::wire::error::Error;

/// How many connections may wait to be accepted; Linux caps it at
/// `net.core.somaxconn` (4096 by default).
pub const BACKLOG: i32 = 4096;

/// Listens on `ip:port`, with address reuse as std sets it.
pub fn listen(ip: IpAddr, port: u16) -> Result<Async<TcpListener>, Error> {
    let addr = SocketAddr::new(ip, port);
    socket(addr)
        .and_then(Async::new)
        .map_err(|error| Error { what: format!("cannot listen on {addr}"), error })
}

#[cfg(unix)]
fn socket(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{self, sockopt, AddressFamily, SocketType};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    // Close-on-exec apart from socket(2): Apple's has no SOCK_CLOEXEC.
    let fd = net::socket(family, SocketType::STREAM, None)?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    net::bind(&fd, &addr)?;
    net::listen(&fd, BACKLOG)?;
    Ok(TcpListener::from(fd))
}

/// Elsewhere std's own listener.
#[cfg(not(unix))]
fn socket(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

//! The network edge: bind, resolve, connect with timeouts, a clean close,
//! and the peer's hang-up seen without reading. A connection is a plain
//! `async_net::TcpStream`, non-blocking all its life.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use async_net::{TcpListener, TcpStream};
use futures_lite::io::AsyncReadExt;
use smol::Async;

use crate::wire::error::{describe, Error};
use crate::wire::{within, HangUp};

#[cfg(unix)]
pub mod shared_port;

/// How long a closing side keeps reading (and discarding) what the peer
/// still sends, so that unread data does not turn the close into a reset.
pub const LINGER: Duration = Duration::from_millis(500);

/// The most a closing side discards before it gives up on a clean close.
const LINGER_BYTES: usize = 1 << 20;

/// How long a side waits for each address to answer a connect by default
/// (`--connect-timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle connection waits before TCP keepalive probes the peer,
/// how far apart the probes are, and how many go unanswered before the
/// connection fails: a vanished peer is noticed within about two minutes.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_PROBES: u32 = 5;

/// A host as typed, without the brackets an IPv6 literal may come in.
pub fn unbracket(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// Formats a host and port the way a user types them: IPv6 in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// File descriptors the reactor takes (epoll, eventfd, timerfd).
const REACTOR_DESCRIPTORS: usize = 3;

/// File descriptors a server needs besides stdio: the reactor, the
/// listening socket and one connection.
pub const SERVER_DESCRIPTORS: usize = REACTOR_DESCRIPTORS + 2;

/// File descriptors a client needs besides stdio: the reactor and its socket.
pub const CLIENT_DESCRIPTORS: usize = REACTOR_DESCRIPTORS + 1;

/// Checks that `count` more file descriptors can be opened, so that a limit
/// too low says so in one line before anything starts: the reactor cannot
/// report its own failure other than by a panic, and a listener that can
/// never accept would fail at every attempt.
#[cfg(unix)]
pub fn check_descriptors(count: usize) -> Result<(), Error> {
    use std::os::fd::AsFd;
    let stderr = io::stderr();
    let mut opened = Vec::with_capacity(count);
    for _ in 0..count {
        match stderr.as_fd().try_clone_to_owned() {
            Ok(fd) => opened.push(fd),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) => {
                let what = format!("cannot start (it needs {count} free file descriptors)");
                return Err(Error { what, error: e });
            }
            // Stderr itself is unusable: the limit cannot be probed this way.
            Err(_) => break,
        }
    }
    Ok(())
}

/// Windows has no small limit on handles.
#[cfg(not(unix))]
pub fn check_descriptors(_count: usize) -> Result<(), Error> {
    Ok(())
}

/// How many connections may wait for a chat server to accept them: std's
/// own number.
const BACKLOG: i32 = 128;

/// Binds a chat server's listening socket on `ip:port`.
pub async fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, Error> {
    Ok(listen(ip, port, BACKLOG)?.into())
}

/// Listens on `ip:port`, `backlog` connections deep, with address reuse as
/// std sets it. A port in use says what to do next, for a chat server and a
/// relay alike.
pub fn listen(ip: IpAddr, port: u16, backlog: i32) -> Result<Async<std::net::TcpListener>, Error> {
    let addr = SocketAddr::new(ip, port);
    let hint = "try another port, or 0 for any free one";
    listening_socket(addr, backlog).and_then(Async::new).map_err(|error| Error {
        what: format!("cannot listen on {addr}"),
        error: hinted(error, io::ErrorKind::AddrInUse, hint),
    })
}

/// std's listener with a backlog of our choosing: what it does, in rustix,
/// on the socket the shared port's are made as (close-on-exec, no
/// SIGPIPE), not shared.
#[cfg(unix)]
fn listening_socket(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    use rustix::net::{self, sockopt};
    let fd = shared_port::socket(addr, false)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    net::bind(&fd, &addr)?;
    net::listen(&fd, backlog)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Elsewhere std's own listener.
#[cfg(not(unix))]
fn listening_socket(addr: SocketAddr, _backlog: i32) -> io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr)
}

/// `error` with the next step after its words when it is of `kind`, as in
/// `connection refused (is the server running?)`; its kind stays.
fn hinted(error: io::Error, kind: io::ErrorKind, hint: &str) -> io::Error {
    match error.kind() == kind {
        true => io::Error::new(kind, format!("{} ({hint})", describe(&error))),
        false => error,
    }
}

/// Takes the next connection, ready for a chat (see [`ready`]), with the
/// peer's address as it reads: an IPv4 client of a `::` listener as itself,
/// not `::ffff:a.b.c.d`.
pub async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, addr) = listener.accept().await?;
    ready(&stream)?;
    Ok((stream, canonical(addr)))
}

/// `addr` as people read it: an IPv4 peer of a dual-stack listener as
/// IPv4 (`::ffff:a.b.c.d` is the same host).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Resolves `host` (a name, an IP literal, or a bracketed IPv6 literal),
/// giving up after `timeout`.
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Error> {
    let what = || format!("cannot resolve {host}");
    let resolved = within(Instant::now() + timeout, async_net::resolve((unbracket(host), port)));
    let addrs = resolved
        .await
        .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
        .map_err(|error| Error { what: what(), error })?;
    if addrs.is_empty() {
        let error = io::Error::new(io::ErrorKind::NotFound, "no address found");
        return Err(Error { what: what(), error });
    }
    Ok(addrs)
}

/// Connects to each address in turn, each with its own `timeout`, so that
/// one black-holed address cannot spend the whole budget; the error is the
/// last address's. The connection is [`ready`] for a chat.
pub async fn connect(
    host: &str,
    port: u16,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, Error> {
    let refused = io::ErrorKind::ConnectionRefused;
    connect_from(host, port, addrs, timeout, false)
        .await
        .map_err(|e| Error { error: hinted(e.error, refused, "is the server running?"), ..e })
}

/// As [`connect`]; with `shared`, from a socket whose local port later
/// sockets may share (`shared_port`, Unix), for the direct path.
pub async fn connect_from(
    host: &str,
    port: u16,
    addrs: &[SocketAddr],
    timeout: Duration,
    shared: bool,
) -> Result<TcpStream, Error> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for &addr in addrs {
        let dialled = within(Instant::now() + timeout, dial(addr, shared)).await;
        match dialled.unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into())) {
            Ok(stream) => match ready(&stream) {
                Ok(()) => return Ok(stream),
                Err(e) => last = e,
            },
            Err(e) => last = e,
        }
    }
    Err(Error {
        what: format!("cannot connect to {}", host_port(unbracket(host), port)),
        error: last,
    })
}

/// One connect to `addr`, from a shared port when asked and possible: on
/// Unix both kinds are `shared_port`'s, elsewhere async-net's.
#[cfg_attr(not(unix), allow(unused_variables))]
async fn dial(addr: SocketAddr, shared: bool) -> io::Result<TcpStream> {
    #[cfg(unix)]
    return match shared {
        true => shared_port::connect(None, addr).await,
        false => shared_port::connect_plain(addr).await,
    };
    #[cfg(not(unix))]
    return TcpStream::connect(addr).await;
}

/// Readies a connected stream for a chat: small messages go out at once
/// instead of waiting for an ACK (Nagle), and TCP keepalive fails a peer
/// that vanished (power, cable, NAT) instead of holding it for ever.
pub fn ready(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    keepalive(stream)
}

/// Turns TCP keepalive on.
#[cfg(unix)]
pub fn keepalive(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(socket, true)?;
    sockopt::set_tcp_keepidle(socket, KEEPALIVE_IDLE)?;
    sockopt::set_tcp_keepintvl(socket, KEEPALIVE_INTERVAL)?;
    sockopt::set_tcp_keepcnt(socket, KEEPALIVE_PROBES)?;
    Ok(())
}

/// std has no keepalive option and only Unix has rustix here: the send
/// bound and the idle timeout still hold a vanished peer to account.
#[cfg(not(unix))]
pub fn keepalive<S>(_: &S) -> io::Result<()> {
    Ok(())
}

/// Ends a connection cleanly: sends FIN, then reads and discards what the
/// peer still sends until it closes too, for at most [`LINGER`]. Closing with
/// unread data would send a reset instead, which the peer reports as an error.
pub async fn close(stream: &TcpStream) {
    // The peer may be gone already; a close has nothing left to report.
    let _ = stream.shutdown(Shutdown::Write);
    let mut reader = stream.clone();
    let mut scratch = vec![0u8; 4 * 1024];
    let drain = async {
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match reader.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    within(Instant::now() + LINGER, drain).await;
}

impl HangUp for TcpStream {
    /// One `poll(2)` that waits for nothing and reads nothing away, so that
    /// a reset stays for the read that reports it: `POLLHUP` or an error is
    /// a reset or another failure; Linux's `POLLRDHUP` is the peer's FIN,
    /// also behind unread data. Elsewhere a FIN with nothing before it is
    /// a peek that finds the end, and one behind data is found by the next
    /// read.
    #[cfg(unix)]
    fn hung_up(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let (linux, fin) = (true, PollFlags::RDHUP);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let (linux, fin) = (false, PollFlags::empty());
        let mut fds = [PollFd::new(self, PollFlags::IN | fin)];
        if poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })).is_err() {
            // The next read tells.
            return false;
        }
        let revents = fds[0].revents();
        revents.intersects(fin | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
            || (!linux && revents.contains(PollFlags::IN) && peeks_the_end(self))
    }

    /// Windows: a peek; a FIN behind data is found by the next read.
    #[cfg(not(unix))]
    fn hung_up(&self) -> bool {
        peeks_the_end(self)
    }
}

/// Whether a peek finds the end of the stream (0 bytes): the peer's FIN with
/// nothing before it. The socket is non-blocking, so the peek never waits;
/// an error is left for the read that reports it.
fn peeks_the_end(stream: &TcpStream) -> bool {
    let socket: std::sync::Arc<smol::Async<std::net::TcpStream>> = stream.clone().into();
    matches!(socket.get_ref().peek(&mut [0u8; 1]), Ok(0))
}

#[cfg(test)]
mod tests;

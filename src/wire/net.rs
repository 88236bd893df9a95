//! The network edge: bind, resolve, connect with timeouts, a clean close,
//! and the words that turn an I/O error into something a person reads.

use std::cell::Cell;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_net::{TcpListener, TcpStream};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use futures_lite::FutureExt;
use smol::Async;

use crate::turn::{send_timed_out, PeerSocket};
use crate::wire::error::{describe, Error};

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
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        match stderr.as_fd().try_clone_to_owned() {
            Ok(fd) => held.push(fd),
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

/// Binds a listening socket on `ip:port`.
pub async fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, Error> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr).await.map_err(|error| Error {
        what: format!("cannot listen on {addr}"),
        error: hinted(error, io::ErrorKind::AddrInUse, "try another port, or 0 for any free one"),
    })
}

/// `error` with the next step after its words when it is of `kind`, as in
/// `connection refused (is the server running?)`; its kind stays.
fn hinted(error: io::Error, kind: io::ErrorKind, hint: &str) -> io::Error {
    match error.kind() == kind {
        true => io::Error::new(kind, format!("{} ({hint})", describe(&error))),
        false => error,
    }
}

/// Resolves `host` (a name, an IP literal, or a bracketed IPv6 literal),
/// giving up after `timeout`.
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Error> {
    let bare = unbracket(host);
    let what = || format!("cannot resolve {host}");
    let addrs = async_net::resolve((bare, port))
        .or(timed_out(timeout))
        .await
        .map_err(|error| Error { what: what(), error })?;
    if addrs.is_empty() {
        let error = io::Error::new(io::ErrorKind::NotFound, "no address found");
        return Err(Error { what: what(), error });
    }
    Ok(addrs)
}

/// Connects to each address in turn, each with its own `timeout`, so that
/// one black-holed address cannot spend the whole budget; the error is the
/// last address's.
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
        match dial(addr, shared).or(timed_out(timeout)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(Error {
        what: format!("cannot connect to {}", host_port(unbracket(host), port)),
        error: last,
    })
}

/// One connect to `addr`, from a shared port when asked and possible.
async fn dial(addr: SocketAddr, shared: bool) -> io::Result<TcpStream> {
    #[cfg(unix)]
    if shared {
        return shared_port::connect(None, addr).await;
    }
    let _ = shared;
    TcpStream::connect(addr).await
}

/// A future that fails with "timed out" after `after`.
pub async fn timed_out<T>(after: Duration) -> io::Result<T> {
    smol::Timer::after(after).await;
    Err(io::ErrorKind::TimedOut.into())
}

/// Ends a connection cleanly: sends FIN, then reads and discards what the
/// peer still sends until it closes too, for at most [`LINGER`]. Closing with
/// unread data would send a reset instead, which the peer reports as an error.
pub async fn close(wire: &Connection) {
    // The peer may be gone already; a close has nothing left to report.
    let _ = wire.socket.get_ref().shutdown(Shutdown::Write);
    if wire.allow_blocking(false).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut scratch = vec![0u8; 4 * 1024];
    let mut discarded = 0;
    let mut reader = wire.clone();
    let drain = async {
        while discarded < LINGER_BYTES {
            match reader.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    drain
        .or(async {
            smol::Timer::at(deadline).await;
        })
        .await;
}

/// How long an idle connection waits before TCP keepalive probes the peer,
/// how far apart the probes are, and how many go unanswered before the
/// connection fails: a vanished peer is noticed within about two minutes.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_PROBES: u32 = 5;

/// A connected socket, as the turn loop reads and writes it.
///
/// Every wait in the reactor costs more system calls than the whole round
/// trip of a blocking chat (docs/footprint.md). So while the peer is
/// the only thing to wait for, the socket is put in blocking mode and read
/// plainly; it goes back to non-blocking before any race. The mode is
/// switched only when it changes. A send in blocking mode is bounded by the
/// socket's send timeout (`SO_SNDTIMEO`), so that a peer that does not read
/// cannot hold the thread, at no cost per message.
#[derive(Debug, Clone)]
pub struct Connection {
    socket: Arc<Async<std::net::TcpStream>>,
    /// Whether the socket is in blocking mode now; shared by the clones.
    blocking: Rc<Cell<bool>>,
    /// How long a send may make no progress.
    send_timeout: Duration,
}

impl Connection {
    /// Wraps a connected stream, in non-blocking mode as async-net left it;
    /// a send that makes no progress for `send_timeout` fails with "timed out".
    pub fn new(stream: TcpStream, send_timeout: Duration) -> io::Result<Connection> {
        let socket: Arc<Async<std::net::TcpStream>> = stream.into();
        let std = socket.get_ref();
        // Small messages go out at once instead of waiting for an ACK (Nagle).
        std.set_nodelay(true)?;
        std.set_write_timeout(Some(send_timeout.max(Duration::from_millis(1))))?;
        keepalive(std)?;
        Ok(Connection { socket, blocking: Rc::new(Cell::new(false)), send_timeout })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get_ref().peer_addr()
    }

    /// This side's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get_ref().local_addr()
    }

    /// How long a send may make no progress.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }
}

/// Turns TCP keepalive on, so that a peer that vanished (power, cable, NAT)
/// fails the connection instead of holding it for ever.
#[cfg(unix)]
pub fn keepalive(socket: &std::net::TcpStream) -> io::Result<()> {
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
pub fn keepalive(_: &std::net::TcpStream) -> io::Result<()> {
    Ok(())
}

impl PeerSocket for Connection {
    fn allow_blocking(&self, allow: bool) -> io::Result<()> {
        if self.blocking.get() != allow {
            self.socket.get_ref().set_nonblocking(!allow)?;
            self.blocking.set(allow);
        }
        Ok(())
    }

    #[cfg(unix)]
    fn hung_up(&self) -> bool {
        hung_up(self.socket.get_ref())
    }

    /// Windows: a peek in non-blocking mode; 0 is a FIN with nothing before
    /// it, and an error is left for the read that reports it.
    #[cfg(not(unix))]
    fn hung_up(&self) -> bool {
        if self.allow_blocking(false).is_err() {
            return true;
        }
        matches!(self.socket.get_ref().peek(&mut [0u8; 1]), Ok(0))
    }
}

/// Whether the peer has sent its FIN or reset the connection, also behind
/// unread data, in one `poll(2)` that waits for nothing and reads nothing
/// away, so that a reset stays for the read that reports it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn hung_up(socket: &std::net::TcpStream) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(socket, PollFlags::IN | PollFlags::RDHUP)];
    match poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })) {
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
        // The next read tells.
        Err(_) => false,
    }
}

/// Other Unix systems have no `POLLRDHUP` everywhere: `POLLHUP` or an error
/// is a hang-up, and when data is ready, a peek tells a FIN with nothing
/// before it (0 bytes). A FIN behind unread data is found by the next read.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn hung_up(socket: &std::net::TcpStream) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    match poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })) {
        Ok(_) => {
            let revents = fds[0].revents();
            if revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                return true;
            }
            // Ready to read, so the peek cannot block.
            revents.contains(PollFlags::IN) && matches!(socket.peek(&mut [0u8; 1]), Ok(0))
        }
        // The next read tells.
        Err(_) => false,
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.blocking.get() {
            // The send timeout ends a write that made no progress: Unix
            // says "would block", Windows "timed out". Left to async-io, the
            // first would wait for the socket in the reactor with no bound.
            return Poll::Ready(match (&mut self.socket.get_ref()).write(buf) {
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    Err(send_timed_out(self.send_timeout))
                }
                r => r,
            });
        }
        Pin::new(&mut &*self.socket).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.socket).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.socket).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbracket_takes_off_ipv6_brackets_only() {
        assert_eq!(unbracket("[::1]"), "::1");
        assert_eq!(unbracket("::1"), "::1");
        assert_eq!(unbracket("[half"), "[half");
    }

    #[test]
    fn host_port_brackets_ipv6() {
        assert_eq!(host_port("::1", 2000), "[::1]:2000");
        assert_eq!(host_port("example.org", 2000), "example.org:2000");
    }

    #[cfg(unix)]
    /// A connected pair on loopback: ours as a `Connection`, and the peer's
    /// plain socket.
    fn pair(send_timeout: Duration) -> (Connection, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = smol::block_on(TcpStream::connect(addr)).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (Connection::new(stream, send_timeout).unwrap(), peer)
    }

    #[cfg(unix)]
    /// Waits until the peer's data and FIN or reset have arrived.
    fn readable(wire: &Connection) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !hung_up(wire.socket.get_ref()) {
            assert!(Instant::now() < deadline, "the hang-up never arrived");
            std::thread::yield_now();
        }
    }

    #[test]
    #[cfg(unix)]
    fn a_fin_behind_unread_data_is_a_hang_up() {
        let (wire, mut peer) = pair(Duration::from_secs(5));
        std::io::Write::write_all(&mut peer, b"unread\n").unwrap();
        assert!(!wire.hung_up(), "data alone is no hang-up");
        peer.shutdown(Shutdown::Write).unwrap();
        readable(&wire);
        // Nothing was read away: the data, then the end.
        let mut buf = [0u8; 16];
        let mut reader = wire.clone();
        assert_eq!(smol::block_on(reader.read(&mut buf)).unwrap(), 7);
        assert_eq!(smol::block_on(reader.read(&mut buf)).unwrap(), 0);
    }

    #[test]
    #[cfg(unix)]
    fn a_reset_after_data_stays_an_error_for_the_read() {
        let (wire, mut peer) = pair(Duration::from_secs(5));
        std::io::Write::write_all(&mut peer, b"unread\n").unwrap();
        rustix::net::sockopt::set_socket_linger(&peer, Some(Duration::ZERO)).unwrap();
        drop(peer);
        readable(&wire);
        assert!(wire.hung_up(), "the check took the reset away");
        let mut buf = [0u8; 16];
        let mut reader = wire.clone();
        assert_eq!(smol::block_on(reader.read(&mut buf)).unwrap(), 7);
        let err = smol::block_on(reader.read(&mut buf)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    #[cfg(unix)]
    fn a_blocking_send_that_makes_no_progress_times_out() {
        // A blocked write cannot be raced in the reactor: it runs on a
        // thread of its own, and the test waits for it with a deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (wire, peer) = pair(Duration::from_millis(200));
            wire.allow_blocking(true).unwrap();
            // Far more than the socket buffers hold; the peer never reads.
            let big = vec![b'x'; 64 << 20];
            let mut writer = wire.clone();
            let sent =
                smol::block_on(futures_lite::io::AsyncWriteExt::write_all(&mut writer, &big));
            let _ = tx.send(sent);
            drop(peer);
        });
        let sent = rx.recv_timeout(Duration::from_secs(20)).expect("the send never ended");
        let err = sent.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "timed out, the peer read nothing for 0.2 s");
    }

    #[test]
    fn refused_connect_names_the_address() {
        // Bind then drop a listener, so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addrs = [SocketAddr::from(([127, 0, 0, 1], port))];
        let err =
            smol::block_on(connect("127.0.0.1", port, &addrs, Duration::from_secs(5))).unwrap_err();
        // The next step is said, and the kind kept for code that asks it.
        assert_eq!(err.error.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(
            err.to_string(),
            format!(
                "cannot connect to 127.0.0.1:{port}: connection refused (is the server running?)"
            )
        );
    }
}

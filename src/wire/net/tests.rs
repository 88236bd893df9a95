//! The network edge on loopback: names, the hang-up check, a refused connect.

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

/// A connected pair on loopback: ours, ready for a chat, and the peer's
/// plain socket.
#[cfg(unix)]
fn pair() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = smol::block_on(TcpStream::connect(addr)).unwrap();
    ready(&stream).unwrap();
    let (peer, _) = listener.accept().unwrap();
    (stream, peer)
}

/// Waits until the peer's data and FIN or reset have arrived.
#[cfg(unix)]
fn wait_for_hang_up(stream: &TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stream.hung_up() {
        assert!(Instant::now() < deadline, "the hang-up never arrived");
        std::thread::yield_now();
    }
}

#[test]
#[cfg(any(target_os = "linux", target_os = "android"))]
fn a_fin_behind_unread_data_is_a_hang_up() {
    let (stream, mut peer) = pair();
    std::io::Write::write_all(&mut peer, b"unread\n").unwrap();
    assert!(!stream.hung_up(), "data alone is no hang-up");
    peer.shutdown(Shutdown::Write).unwrap();
    wait_for_hang_up(&stream);
    // Nothing was read away: the data, then the end.
    let mut buf = [0u8; 16];
    let mut reader = stream.clone();
    assert_eq!(smol::block_on(reader.read(&mut buf)).unwrap(), 7);
    assert_eq!(smol::block_on(reader.read(&mut buf)).unwrap(), 0);
}

#[test]
#[cfg(unix)]
fn a_reset_after_data_stays_an_error_for_the_read() {
    let (stream, mut peer) = pair();
    std::io::Write::write_all(&mut peer, b"unread\n").unwrap();
    rustix::net::sockopt::set_socket_linger(&peer, Some(Duration::ZERO)).unwrap();
    drop(peer);
    wait_for_hang_up(&stream);
    assert!(stream.hung_up(), "the check took the reset away");
    let mut buf = [0u8; 16];
    let mut reader = stream.clone();
    assert_eq!(smol::block_on(reader.read(&mut buf)).unwrap(), 7);
    let err = smol::block_on(reader.read(&mut buf)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
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
        format!("cannot connect to 127.0.0.1:{port}: connection refused (is the server running?)")
    );
}

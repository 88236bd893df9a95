//! Shared ports on loopback: one local port that listens and connects at
//! once, and a refused connect.

use super::*;
use futures_lite::future::block_on;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn a_port_in_use_by_a_connection_takes_a_listener_and_another_connection() {
    block_on(async {
        let far = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let far_addr = far.local_addr().unwrap();
        let first = connect(None, far_addr).await.unwrap();
        let local = first.local_addr().unwrap();
        // The same local port listens and connects elsewhere at once.
        let listener = listen(local).unwrap();
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second = connect(Some(local), other.local_addr().unwrap()).await.unwrap();
        assert_eq!(second.local_addr().unwrap(), local);
        let (mut theirs, _) = other.accept().await.unwrap();
        let mut inbound = TcpStream::connect(local).await.unwrap();
        let (mut accepted, from) = listener.accept().await.unwrap();
        assert_eq!(from, inbound.local_addr().unwrap());
        inbound.write_all(b"in").await.unwrap();
        let mut buf = [0u8; 2];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"in");
        let mut second = second;
        second.write_all(b"ok").await.unwrap();
        theirs.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");
        drop(first);
    });
}

#[test]
fn a_refused_connect_is_an_error() {
    block_on(async {
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let e = connect(None, gone).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    });
}

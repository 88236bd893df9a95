//! The direct path's pieces on loopback: the proof, the reach from a
//! shared port, and the sealed agreement.

use super::*;
use async_net::TcpListener;
use futures_lite::future::{self, block_on};

/// Two ends of a loopback connection.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = future::zip(TcpStream::connect(addr), listener.accept()).await;
    (a.unwrap(), b.unwrap().0)
}

#[test]
fn a_tag_is_hkdf_expand_of_the_key_the_role_and_both_nonces() {
    let own: Vec<u8> = (0..16).collect();
    let other: Vec<u8> = (16..32).collect();
    let server = tag(&[7u8; 32], "server", &own, &other);
    // HMAC-SHA256(key, "smolchat-direct/1 server " ‖ own ‖ other ‖ 0x01),
    // computed apart from this code (Python's hmac).
    let want = "94256130584c826ae489c2e1296a52e866987c7827c0f8ac3a366ab2f770f967";
    let got: String = server.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, want);
    // Each input counts; none falls back to the same bytes.
    assert_ne!(tag(&[8u8; 32], "server", &own, &other), server);
    assert_ne!(tag(&[7u8; 32], "client", &own, &other), server);
    assert_ne!(tag(&[7u8; 32], "server", &other, &own), server);
}

#[test]
fn the_same_key_proves_both_ways() {
    block_on(async {
        let (mut s, mut c) = pair().await;
        let key = [7u8; 32];
        let (a, b) =
            future::zip(prove(&mut s, &key, Role::Server), prove(&mut c, &key, Role::Client)).await;
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    });
}

#[test]
fn another_key_fails_on_both_sides_and_the_client_shows_no_tag() {
    block_on(async {
        let (mut s, c) = pair().await;
        let tap = async {
            // The client side, by hand: what does a client send to a
            // server that does not hold the key?
            let mut c = c;
            let client = prove(&mut c, &[1u8; 32], Role::Client).await;
            assert!(client.is_err());
            drop(c);
        };
        let server = async { prove(&mut s, &[2u8; 32], Role::Server).await };
        let (_, server) = future::zip(tap, server).await;
        assert!(server.is_err());
    });
}

#[test]
fn a_client_that_meets_the_wrong_server_sends_only_its_hello() {
    block_on(async {
        let (mut impostor, mut c) = pair().await;
        let impostor = async {
            let mut hello = [0u8; 32];
            impostor.read_exact(&mut hello).await.unwrap();
            assert_eq!(&hello[..16], HELLO);
            // A hello back, and a tag made without the key.
            impostor.write_all(&hello).await.unwrap();
            impostor.write_all(&[0u8; TAG]).await.unwrap();
            let mut rest = Vec::new();
            let _ = impostor.read_to_end(&mut rest).await;
            rest
        };
        let client = async {
            let result = prove(&mut c, &[3u8; 32], Role::Client).await;
            drop(c);
            result
        };
        let (rest, result) = future::zip(impostor, client).await;
        assert!(result.is_err());
        assert!(rest.is_empty(), "the client sent {} bytes after its hello", rest.len());
    });
}

#[test]
fn a_server_that_meets_an_impostor_fails_its_proof() {
    block_on(async {
        let (mut s, mut impostor) = pair().await;
        let impostor = async {
            let mut hello = [0u8; 32];
            impostor.read_exact(&mut hello).await.unwrap();
            // Its own hello, then a tag made without the key.
            impostor.write_all(&hello).await.unwrap();
            impostor.write_all(&[0u8; TAG]).await.unwrap();
            impostor
        };
        let (_impostor, server) =
            future::zip(impostor, prove(&mut s, &[11u8; 32], Role::Server)).await;
        assert_eq!(server.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
    });
}

#[test]
fn junk_on_the_link_fails_the_proof() {
    block_on(async {
        let (mut junk, mut s) = pair().await;
        junk.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n....").await.unwrap();
        assert!(prove(&mut s, &[4u8; 32], Role::Server).await.is_err());
    });
}

/// A connection whose local port the direct path may share.
#[cfg(unix)]
async fn relay_leg(relay: &TcpListener) -> TcpStream {
    let addr = relay.local_addr().unwrap();
    let (leg, _) =
        future::zip(crate::wire::net::shared_port::connect(None, addr), relay.accept()).await;
    leg.unwrap()
}

#[cfg(unix)]
#[test]
fn both_sides_reach_each_other_from_their_relay_ports() {
    block_on(async {
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = relay_leg(&relay).await;
        let b = relay_leg(&relay).await;
        let (la, lb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let deadline = Instant::now() + ATTEMPT;
        let (x, y) = future::zip(
            reach(la, lb, Role::Server, deadline),
            reach(lb, la, Role::Client, deadline),
        )
        .await;
        let (x, y) = (x.expect("a reached b"), y.expect("b reached a"));
        assert_eq!((x.local_addr().unwrap(), x.peer_addr().unwrap()), (la, lb));
        assert_eq!((y.local_addr().unwrap(), y.peer_addr().unwrap()), (lb, la));
    });
}

#[cfg(unix)]
#[test]
fn nobody_there_gives_no_link_by_the_deadline() {
    block_on(async {
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = relay_leg(&relay).await;
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        for role in [Role::Server, Role::Client] {
            assert!(reach(a.local_addr().unwrap(), gone, role, deadline).await.is_none());
        }
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}

/// One side of a sealed channel over a loopback connection.
struct Side {
    wire: TcpStream,
    seal: Sealer,
    open: Opener,
    held: Vec<u8>,
}

impl Side {
    async fn negotiate(
        &mut self,
        offer: Option<Offer>,
        key: &[u8; 32],
        role: Role,
    ) -> io::Result<Option<(TcpStream, SocketAddr)>> {
        let mut reader = self.wire.clone();
        let mut writer = self.wire.clone();
        let sealed = Sealed {
            reader: &mut reader,
            writer: &mut writer,
            seal: &mut self.seal,
            open: &mut self.open,
            held: &mut self.held,
        };
        negotiate(sealed, offer, key, role).await
    }
}

/// The two sides of a chat, sealed to each other through `wire`s.
async fn sides() -> (Side, Side) {
    let (s, c) = pair().await;
    let (up, down) = ([5u8; 32], [6u8; 32]);
    let server =
        Side { wire: s, seal: Sealer::new(&down), open: Opener::new(&up), held: Vec::new() };
    let client =
        Side { wire: c, seal: Sealer::new(&up), open: Opener::new(&down), held: Vec::new() };
    (server, client)
}

#[test]
fn without_two_offers_nobody_goes_direct() {
    block_on(async {
        let (mut server, mut client) = sides().await;
        let key = [8u8; 32];
        let offer =
            Offer { local: "127.0.0.1:9".parse().unwrap(), seen: "127.0.0.1:9".parse().unwrap() };
        let (a, b) = future::zip(
            server.negotiate(Some(offer), &key, Role::Server),
            client.negotiate(None, &key, Role::Client),
        )
        .await;
        assert!(a.unwrap().is_none() && b.unwrap().is_none());
    });
}

#[cfg(unix)]
#[test]
fn two_offers_on_loopback_move_both_to_one_proven_link() {
    block_on(async {
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (sl, cl) = (relay_leg(&relay).await, relay_leg(&relay).await);
        let (sl, cl) = (sl.local_addr().unwrap(), cl.local_addr().unwrap());
        let (mut server, mut client) = sides().await;
        let key = [9u8; 32];
        let (a, b) = future::zip(
            server.negotiate(Some(Offer { local: sl, seen: sl }), &key, Role::Server),
            client.negotiate(Some(Offer { local: cl, seen: cl }), &key, Role::Client),
        )
        .await;
        let ((mut a, a_peer), (mut b, b_peer)) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert_eq!((a_peer, b_peer), (cl, sl));
        a.write_all(b"over the direct link").await.unwrap();
        let mut got = [0u8; 20];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"over the direct link");
    });
}

#[cfg(unix)]
#[test]
fn a_forged_address_keeps_both_on_the_relay() {
    block_on(async {
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (sl, cl) = (relay_leg(&relay).await, relay_leg(&relay).await);
        let (sl, cl) = (sl.local_addr().unwrap(), cl.local_addr().unwrap());
        // The client is told the server is at a junk port that answers.
        let junk = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let junk_addr = junk.local_addr().unwrap();
        let answer = async {
            let (mut stream, _) = junk.accept().await.unwrap();
            let _ = stream.write_all(b"junk junk junk junk junk junk junk junk").await;
            let mut seen = Vec::new();
            let _ = stream.read_to_end(&mut seen).await;
            seen
        }
        .or(async {
            smol::Timer::after(Duration::from_secs(10)).await;
            panic!("nobody came to the forged address within 10 s");
        });
        let (mut server, mut client) = sides().await;
        let key = [10u8; 32];
        let talk = future::zip(
            server.negotiate(Some(Offer { local: sl, seen: junk_addr }), &key, Role::Server),
            client.negotiate(Some(Offer { local: cl, seen: cl }), &key, Role::Client),
        );
        let (seen, (a, b)) = future::zip(answer, talk).await;
        assert!(a.unwrap().is_none() && b.unwrap().is_none());
        // The junk port got the client's hello and nothing else.
        assert_eq!(seen.len(), HELLO.len() + NONCE, "{seen:?}");
        assert_eq!(&seen[..HELLO.len()], HELLO);
    });
}

#[test]
fn a_chat_record_in_place_of_an_offer_is_refused() {
    block_on(async {
        let (mut server, mut client) = sides().await;
        let mut out = Vec::new();
        client.seal.seal(super::super::record::MESSAGE, b"offer", &mut out).unwrap();
        client.wire.write_all(&out).await.unwrap();
        let e = server.negotiate(None, &[0u8; 32], Role::Server).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    });
}

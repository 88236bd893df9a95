//! The direct path's pieces on loopback: the kinds of address a side may
//! dial, the tag, the proof against strangers, the dials from a shared
//! port, and the sealed agreement.

use super::*;
use async_net::TcpListener;
use futures_lite::future::{self, block_on};
use futures_lite::io::AsyncWriteExt;

/// Two ends of a loopback connection.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = future::zip(TcpStream::connect(addr), listener.accept()).await;
    (a.unwrap(), b.unwrap().0)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn at(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn every_address_has_its_kind() {
    let table = [
        ("203.0.113.100", Kind::Public),
        ("192.0.2.2", Kind::Public),
        ("198.51.100.1", Kind::Public),
        ("8.8.8.8", Kind::Public),
        ("172.32.0.1", Kind::Public),
        ("2001:db8::7", Kind::Public),
        ("2606:4700::1111", Kind::Public),
        ("0.0.0.0", Kind::Unspecified),
        ("0.1.2.3", Kind::Unspecified),
        ("::", Kind::Unspecified),
        ("127.0.0.1", Kind::Loopback),
        ("127.255.0.9", Kind::Loopback),
        ("::1", Kind::Loopback),
        ("::ffff:127.0.0.1", Kind::Loopback),
        ("64:ff9b::127.0.0.1", Kind::Loopback),
        ("10.0.0.1", Kind::Private),
        ("172.16.0.1", Kind::Private),
        ("172.31.255.254", Kind::Private),
        ("192.168.1.1", Kind::Private),
        ("::ffff:192.168.1.1", Kind::Private),
        ("64:ff9b::10.1.2.3", Kind::Private),
        ("fd12:3456::1", Kind::Private),
        ("fc00::1", Kind::Private),
        ("fec0::1", Kind::Private),
        ("100.64.0.1", Kind::Shared),
        ("100.127.255.254", Kind::Shared),
        ("169.254.1.1", Kind::LinkLocal),
        ("fe80::1", Kind::LinkLocal),
        ("224.0.0.1", Kind::Multicast),
        ("239.255.255.250", Kind::Multicast),
        ("ff02::1", Kind::Multicast),
        ("255.255.255.255", Kind::Broadcast),
        ("240.0.0.1", Kind::Reserved),
        ("::127.0.0.1", Kind::Reserved),
        ("::ffff:203.0.113.9", Kind::Public),
        ("64:ff9b::203.0.113.9", Kind::Public),
    ];
    for (text, kind) in table {
        assert_eq!(Kind::of(ip(text)), kind, "{text}");
    }
}

#[test]
fn a_side_dials_only_an_address_of_its_relays_kind() {
    // The NAT lab's relay and homes: public, so they go direct.
    assert!(may_dial(at("203.0.113.100:7000"), at("203.0.113.2:40002")));
    assert!(may_dial(at("[2001:db8::1]:7000"), at("203.0.113.2:40002")));
    // A relay on loopback (the tests) may send a side to loopback.
    assert!(may_dial(at("127.0.0.1:7000"), at("127.0.0.1:40000")));
    assert!(may_dial(at("[::1]:7000"), at("127.0.0.1:40000")));
    // A relay in a home may send a side to that home.
    assert!(may_dial(at("192.168.1.10:7000"), at("192.168.1.20:40000")));
    // A relay on the internet cannot aim a side at its own machine, its
    // network, its link, a group or nowhere.
    for target in [
        "127.0.0.1:22",
        "[::1]:22",
        "[::ffff:127.0.0.1]:22",
        "[64:ff9b::7f00:1]:22",
        "10.0.0.1:80",
        "172.16.5.4:80",
        "192.168.1.1:80",
        "[fd00::1]:80",
        "100.100.100.100:80",
        "169.254.169.254:80",
        "[fe80::1]:80",
        "224.0.0.251:5353",
        "[ff02::1]:80",
        "255.255.255.255:80",
        "0.0.0.0:80",
        "[::]:80",
        "240.0.0.1:80",
    ] {
        assert!(!may_dial(at("203.0.113.100:7000"), at(target)), "{target}");
    }
    // Nor can a relay elsewhere send a side out of its own kind.
    assert!(!may_dial(at("127.0.0.1:7000"), at("203.0.113.2:40002")));
    assert!(!may_dial(at("192.168.1.10:7000"), at("127.0.0.1:40000")));
    assert!(!may_dial(at("10.0.0.1:7000"), at("203.0.113.2:40002")));
    // Nor at a port nobody can listen on.
    assert!(!may_dial(at("127.0.0.1:7000"), at("127.0.0.1:0")));
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

/// The proofs of a server and a client that made offers with these nonces.
fn proofs(key: &[u8; 32]) -> (Proof<'_>, Proof<'_>) {
    let (s, c) = ([0x51u8; NONCE], [0xc1u8; NONCE]);
    (
        Proof { key, role: Role::Server, mine: s, theirs: c },
        Proof { key, role: Role::Client, mine: c, theirs: s },
    )
}

#[test]
fn the_same_key_proves_both_ways() {
    block_on(async {
        let (mut s, mut c) = pair().await;
        let key = [7u8; 32];
        let (server, client) = proofs(&key);
        let (a, b) = future::zip(prove(&mut s, &server), prove(&mut c, &client)).await;
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    });
}

#[test]
fn another_key_fails_on_both_sides_and_the_client_shows_no_tag() {
    block_on(async {
        let (mut s, mut c) = pair().await;
        let (server_key, client_key) = ([2u8; 32], [1u8; 32]);
        let (server, _) = proofs(&server_key);
        let (_, client) = proofs(&client_key);
        let client = async {
            let result = prove(&mut c, &client).await;
            drop(c);
            result
        };
        let (a, b) = future::zip(prove(&mut s, &server), client).await;
        assert_eq!(b.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert!(a.is_err());
        // Everything the client sent the server: its hello alone.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "{rest:?}");
    });
}

/// What a side sent to a stranger at the address it dialled, who sends
/// `answer` and then reads to the end, once the side's proof is over.
async fn sent_to_a_stranger(proof: &Proof<'_>, answer: Vec<u8>, close_at_once: bool) -> Vec<u8> {
    let (mut stranger, mut side) = pair().await;
    let stranger = async {
        if close_at_once {
            drop(stranger);
            return Vec::new();
        }
        let _ = stranger.write_all(&answer).await;
        let mut got = Vec::new();
        let _ = stranger.read_to_end(&mut got).await;
        got
    };
    let side = async {
        let result = prove(&mut side, proof).await;
        drop(side);
        result
    };
    let (got, result) = future::zip(stranger, side).await;
    assert!(result.is_err(), "a stranger passed the proof");
    got
}

#[test]
fn a_stranger_gets_the_hello_alone_from_either_side() {
    block_on(async {
        let key = [3u8; 32];
        let (server, client) = proofs(&key);
        for proof in [&server, &client] {
            let own = hello(&proof.mine).to_vec();
            // A hello with a nonce of its own and a tag made without the key.
            let mut impostor = hello(&[9u8; NONCE]).to_vec();
            impostor.extend_from_slice(&[0u8; TAG]);
            // The side's own hello back, as an echo would.
            let mut echo = own.clone();
            echo.extend_from_slice(&tag(&[0u8; 32], "server", &proof.mine, &proof.mine));
            let junk = b"HTTP/1.1 400 Bad Request\r\n\r\nnot here, not here, not here".to_vec();
            for (answer, close) in [(impostor, false), (echo, false), (junk, false), (vec![], true)]
            {
                let got = sent_to_a_stranger(proof, answer.clone(), close).await;
                if !close {
                    assert_eq!(got, own, "{:?} answered {answer:?}", proof.role);
                }
            }
        }
    });
}

#[test]
fn a_stranger_who_learned_the_nonces_fails_without_the_key() {
    block_on(async {
        let key = [11u8; 32];
        let (server, client) = proofs(&key);
        for proof in [&server, &client] {
            // The peer's hello, as seen on the wire, and a tag that is the
            // right one but for its last byte (which the key would give).
            let them = if proof.role == Role::Server { "client" } else { "server" };
            let mut almost = tag(&key, them, &proof.theirs, &proof.mine);
            almost[TAG - 1] ^= 1;
            let mut answer = hello(&proof.theirs).to_vec();
            answer.extend_from_slice(&almost);
            let (mut side, mut impostor) = pair().await;
            let impostor = async {
                impostor.write_all(&answer).await.unwrap();
                impostor
            };
            let (_impostor, result) = future::zip(impostor, prove(&mut side, proof)).await;
            assert_eq!(
                result.unwrap_err().kind(),
                io::ErrorKind::PermissionDenied,
                "{:?}",
                proof.role
            );
        }
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
fn both_sides_dial_each_other_from_their_relay_ports() {
    block_on(async {
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = relay_leg(&relay).await;
        let b = relay_leg(&relay).await;
        let (la, lb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (x, y) = future::zip(dial(la, lb, Role::Server), dial(lb, la, Role::Client)).await;
        let (x, y) = (x.expect("a reached b"), y.expect("b reached a"));
        assert_eq!((x.local_addr().unwrap(), x.peer_addr().unwrap()), (la, lb));
        assert_eq!((y.local_addr().unwrap(), y.peer_addr().unwrap()), (lb, la));
    });
}

#[cfg(unix)]
#[test]
fn a_client_stops_dialling_a_closed_port_and_a_server_only_listens_on() {
    block_on(async {
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = relay_leg(&relay).await;
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let local = a.local_addr().unwrap();
        // Its dials are spent within a second: it gives up by itself.
        let soon = Instant::now() + Duration::from_secs(2);
        assert_eq!(
            within(soon, dial(local, gone, Role::Client)).await.map(|d| d.is_some()),
            Some(false)
        );
        // The server's one refused dial leaves it waiting for the peer.
        let soon = Instant::now() + Duration::from_millis(300);
        assert!(within(soon, dial(local, gone, Role::Server)).await.is_none());
    });
}

/// One side of a sealed channel over a loopback connection.
struct Side {
    wire: TcpStream,
    seal: Sealer,
    open: Opener,
    held: Vec<u8>,
}

/// Short times for the unit tests: what the agreement does at the end of
/// the attempt, without waiting 3 s.
const QUICK: Times =
    Times { attempt: Duration::from_millis(400), agreement: Duration::from_secs(5) };

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
        agree(sealed, offer, key, role, QUICK).await
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
fn without_two_offers_nobody_goes_direct_and_nobody_waits() {
    block_on(async {
        let (mut server, mut client) = sides().await;
        let key = [8u8; 32];
        let local = at("127.0.0.1:9");
        let offer = Offer { local, seen: local, relay: local };
        let started = Instant::now();
        let (a, b) = future::zip(
            server.negotiate(Some(offer), &key, Role::Server),
            client.negotiate(None, &key, Role::Client),
        )
        .await;
        assert!(a.unwrap().is_none() && b.unwrap().is_none());
        assert!(started.elapsed() < QUICK.attempt, "{:?}", started.elapsed());
    });
}

#[cfg(unix)]
#[test]
fn two_offers_on_loopback_move_both_to_one_proven_link() {
    block_on(async {
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_at = relay.local_addr().unwrap();
        let (sl, cl) = (relay_leg(&relay).await, relay_leg(&relay).await);
        let (sl, cl) = (sl.local_addr().unwrap(), cl.local_addr().unwrap());
        let (mut server, mut client) = sides().await;
        let key = [9u8; 32];
        let (a, b) = future::zip(
            server.negotiate(
                Some(Offer { local: sl, seen: sl, relay: relay_at }),
                &key,
                Role::Server,
            ),
            client.negotiate(
                Some(Offer { local: cl, seen: cl, relay: relay_at }),
                &key,
                Role::Client,
            ),
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

/// The two sides negotiate; the client is told the server is at a forged
/// address on loopback, and its own relay is at `client_relay` (the
/// loopback relay's address when `None`). With `answer`, a stranger there
/// answers the first connection so and returns what it got; without, its
/// listener must not have been dialled.
#[cfg(unix)]
async fn forged_negotiation(
    answer: Option<&'static [u8]>,
    client_relay: Option<SocketAddr>,
) -> Vec<u8> {
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_at = relay.local_addr().unwrap();
    let (sl, cl) = (relay_leg(&relay).await, relay_leg(&relay).await);
    let (sl, cl) = (sl.local_addr().unwrap(), cl.local_addr().unwrap());
    let forged = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (mut server, mut client) = sides().await;
    let key = [10u8; 32];
    let server_offer = Offer { local: sl, seen: forged.local_addr().unwrap(), relay: relay_at };
    let client_offer = Offer { local: cl, seen: cl, relay: client_relay.unwrap_or(relay_at) };
    let over = async {
        let (a, b) = future::zip(
            server.negotiate(Some(server_offer), &key, Role::Server),
            client.negotiate(Some(client_offer), &key, Role::Client),
        )
        .await;
        assert!(a.unwrap().is_none() && b.unwrap().is_none());
    };
    let Some(answer) = answer else {
        over.await;
        // A dial would have been taken in before the client decided.
        let dialled = future::poll_once(forged.accept()).await;
        assert!(dialled.is_none(), "the forged address was dialled");
        return Vec::new();
    };
    let answered = async {
        let (mut stream, _) = forged.accept().await.unwrap();
        let _ = stream.write_all(answer).await;
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got).await;
        got
    };
    let both = future::zip(over, answered);
    let ((), got) = within(Instant::now() + QUICK.agreement, both).await.expect("in time");
    got
}

#[cfg(unix)]
#[test]
fn a_forged_address_keeps_both_on_the_relay_and_gets_the_hello_alone() {
    block_on(async {
        let got = forged_negotiation(Some(b"junk junk junk junk junk junk"), None).await;
        assert_eq!(got.len(), HELLO.len() + NONCE, "{got:?}");
        assert_eq!(&got[..HELLO.len()], HELLO);
    });
}

#[cfg(unix)]
#[test]
fn an_address_of_another_kind_than_the_relay_is_never_dialled() {
    block_on(async {
        // The client's relay is on the internet; the forged address is on
        // loopback.
        forged_negotiation(None, Some(at("203.0.113.100:7000"))).await;
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

#[test]
fn an_offer_is_read_whole_or_refused() {
    let nonce = "000102030405060708090a0b0c0d0e0f";
    let (addr, got) = parse_offer(&format!("offer 203.0.113.2:40002 {nonce}")).unwrap().unwrap();
    assert_eq!(addr, at("203.0.113.2:40002"));
    assert_eq!(got.to_vec(), (0..16).collect::<Vec<u8>>());
    assert!(parse_offer("offer").unwrap().is_none());
    for bad in [
        "offer 203.0.113.2:40002",
        "offer 203.0.113.2 000102030405060708090a0b0c0d0e0f",
        "offer 203.0.113.2:40002 0001020304",
        "offer 203.0.113.2:40002 zz0102030405060708090a0b0c0d0e0f",
        "offer 203.0.113.2:40002 +00102030405060708090a0b0c0d0e0f",
        "offer  203.0.113.2:40002 000102030405060708090a0b0c0d0e0f",
        "offer 203.0.113.2:40002 000102030405060708090a0b0c0d0e0f x",
        "offers",
        "",
    ] {
        assert_eq!(parse_offer(bad).unwrap_err().kind(), io::ErrorKind::InvalidData, "{bad}");
    }
}

//! Private chats in memory: the handshake both ways over pipes, its
//! failures, and a session that meets a forged record.

use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use super::handshake::{self, Failure, Keys, PLAIN_REPLY};
use super::record::{Opener, RecordReader, Sealer, CLOSE, MESSAGE};
use crate::turn::{Ending, Role, Screen, Session, Settings};
use crate::wire::framer::{Frame, Framer};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// A client and a server with these codes, over pipes so small that every
/// line crosses in pieces.
fn both(client_code: &str, server_code: &str) -> (Result<Keys, Failure>, Result<Keys, Failure>) {
    let (mut s_in, mut c_out) = piper::pipe(7);
    let (mut c_in, mut s_out) = piper::pipe(7);
    smol::block_on(future::zip(
        async {
            let keys =
                handshake::client(&mut c_in, &mut c_out, client_code, soon(), Vec::new()).await;
            drop(c_out);
            keys
        },
        async {
            let keys =
                handshake::server(&mut s_in, &mut s_out, server_code, soon(), Vec::new()).await;
            drop(s_out);
            keys
        },
    ))
}

/// Seals one line with `sealer` and opens it with `opener`.
fn crosses(sealer: &mut Sealer, opener: Opener) -> Vec<u8> {
    let mut wire = Vec::new();
    sealer.seal(MESSAGE, b"secret\n", &mut wire).unwrap();
    let mut lines = Framer::new(RecordReader::new(&wire[..], opener, 100, &[]), 100);
    assert_eq!(smol::block_on(lines.next()).unwrap(), Frame::Line);
    lines.line().to_vec()
}

#[test]
fn the_same_code_gives_keys_for_both_directions() {
    let (client, server) = both("7-purple-sausages", "7-purple-sausages");
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert!(client.early.is_empty() && server.early.is_empty());
    assert_eq!(crosses(&mut client.seal, server.open), b"secret");
    assert_eq!(crosses(&mut server.seal, client.open), b"secret");
}

#[test]
fn keys_are_per_direction_and_per_session() {
    // A record the client sealed does not open as the server's, nor in
    // another session with the same code.
    let (client, server) = both("1-a-b", "1-a-b");
    let (mut client, server) = (client.unwrap(), server.unwrap());
    let mut wire = Vec::new();
    client.seal.seal(MESSAGE, b"x\n", &mut wire).unwrap();
    let mut own = RecordReader::new(&wire[..], client.open, 100, &[]);
    assert!(smol::block_on(own.read(&mut [0; 8])).is_err());
    let (_, other) = both("1-a-b", "1-a-b");
    let mut other = RecordReader::new(&wire[..], other.unwrap().open, 100, &[]);
    assert!(smol::block_on(other.read(&mut [0; 8])).is_err());
    drop(server);
}

#[test]
fn a_wrong_code_fails_on_both_sides() {
    let (client, server) = both("7-purple-sausages", "8-purple-sausages");
    assert!(matches!(client, Err(Failure::WrongCode)), "{:?}", client.err());
    assert!(matches!(server, Err(Failure::WrongCode)), "{:?}", server.err());
}

#[test]
fn the_server_refuses_a_client_that_fakes_its_confirmation() {
    let (mut s_in, mut c_out) = piper::pipe(1024);
    let (mut c_in, mut s_out) = piper::pipe(1024);
    let server = async {
        let keys = handshake::server(&mut s_in, &mut s_out, "1-a-b", soon(), Vec::new()).await;
        drop(s_out);
        keys
    };
    let liar = async {
        // A real hello, then whatever confirmation, without the code.
        let (_, a) = spake2::Spake2::<spake2::Ed25519Group>::start_a(
            &spake2::Password::new(b"2-a-b"),
            &spake2::Identity::new(handshake::ID_CLIENT),
            &spake2::Identity::new(handshake::ID_SERVER),
        );
        let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
        c_out.write_all(format!("smolchat-private/1 {hex}\n").as_bytes()).await.unwrap();
        let mut reply = [0u8; 200];
        let _ = c_in.read(&mut reply).await.unwrap();
        let confirm = "00".repeat(32);
        c_out.write_all(format!("smolchat-private/1 ok {confirm}\n").as_bytes()).await.unwrap();
        drop(c_out);
    };
    let (server, ()) = smol::block_on(future::zip(server, liar));
    assert!(matches!(server, Err(Failure::WrongCode)));
}

#[test]
fn a_client_that_leaves_after_the_reply_has_made_a_guess() {
    let (mut s_in, mut c_out) = piper::pipe(1024);
    let (mut c_in, mut s_out) = piper::pipe(1024);
    let server = handshake::server(&mut s_in, &mut s_out, "1-a-b", soon(), Vec::new());
    let quitter = async {
        let (_, a) = spake2::Spake2::<spake2::Ed25519Group>::start_a(
            &spake2::Password::new(b"1-a-b"),
            &spake2::Identity::new(handshake::ID_CLIENT),
            &spake2::Identity::new(handshake::ID_SERVER),
        );
        let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
        c_out.write_all(format!("smolchat-private/1 {hex}\n").as_bytes()).await.unwrap();
        let _ = c_in.read(&mut [0u8; 200]).await.unwrap();
        drop(c_out);
    };
    let (server, ()) = smol::block_on(future::zip(server, quitter));
    assert!(matches!(server, Err(Failure::WrongCode)));
}

#[test]
fn a_plain_client_is_told_and_is_not_a_guess() {
    for first in [&b"hello\n"[..], b"smolchat-private/2 abcd\n", &[b'x'; 300]] {
        let (mut s_in, mut c_out) = piper::pipe(1024);
        let (mut c_in, mut s_out) = piper::pipe(1024);
        smol::block_on(async {
            c_out.write_all(first).await.unwrap();
            let server =
                handshake::server(&mut s_in, &mut s_out, "1-a-b", soon(), Vec::new()).await;
            assert!(matches!(server, Err(Failure::NotPrivate)), "{:?}", server.err());
            drop(s_out);
            let mut told = String::new();
            c_in.read_to_string(&mut told).await.unwrap();
            assert_eq!(told, PLAIN_REPLY);
        });
    }
}

#[test]
fn the_server_says_nothing_before_the_hello() {
    let (mut s_in, _c_out) = piper::pipe(1024);
    let (mut c_in, mut s_out) = piper::pipe(1024);
    let deadline = Instant::now() + Duration::from_millis(50);
    let server =
        smol::block_on(handshake::server(&mut s_in, &mut s_out, "1-a-b", deadline, Vec::new()));
    assert!(matches!(server, Err(Failure::TimedOut)));
    drop(s_out);
    let mut said = Vec::new();
    smol::block_on(c_in.read_to_end(&mut said)).unwrap();
    assert!(said.is_empty());
}

#[test]
fn a_client_meeting_a_plain_server_says_so() {
    // A plain server answers the hello with a chat line, or hangs up.
    for answer in [Some(&b"hi there\n"[..]), None] {
        let (mut s_in, mut c_out) = piper::pipe(1024);
        let (mut c_in, mut s_out) = piper::pipe(1024);
        let client = handshake::client(&mut c_in, &mut c_out, "1-a-b", soon(), Vec::new());
        let plain = async {
            let mut hello = [0u8; 19];
            s_in.read_exact(&mut hello).await.unwrap();
            assert_eq!(&hello, b"smolchat-private/1 ");
            if let Some(answer) = answer {
                s_out.write_all(answer).await.unwrap();
            }
            drop(s_out);
        };
        let (client, ()) = smol::block_on(future::zip(client, plain));
        match answer {
            Some(_) => assert!(matches!(client, Err(Failure::NotPrivate))),
            None => assert!(matches!(client, Err(Failure::Closed))),
        }
    }
    // And a silent one runs into the deadline.
    let (_s_in, mut c_out) = piper::pipe(1024);
    let (mut c_in, _s_out) = piper::pipe(1024);
    let deadline = Instant::now() + Duration::from_millis(50);
    let client =
        smol::block_on(handshake::client(&mut c_in, &mut c_out, "1-a-b", deadline, Vec::new()));
    assert!(matches!(client, Err(Failure::TimedOut)));
}

/// What a session showed.
#[derive(Default)]
struct Shown(Vec<String>);

impl Screen for Shown {
    fn message(&mut self, text: &[u8], _: Option<&[u8]>) -> std::io::Result<()> {
        self.0.push(String::from_utf8_lossy(text).into_owned());
        Ok(())
    }
    fn status(&mut self, _: &str) {}
    fn prompt(&mut self) {}
}

/// A server session whose peer sends `stream`; its keyboard answers `ok`.
fn session(stream: Vec<u8>) -> (Vec<String>, Result<Ending, crate::turn::Failure>) {
    let key = [3u8; 32];
    let (peer_in, mut peer_out) = piper::pipe(16);
    let (keys_in, mut keys_out) = piper::pipe(1024);
    let mut screen = Shown::default();
    let ending = smol::block_on(async {
        keys_out.write_all(b"ok\nok\nok\n").await.unwrap();
        let reader = RecordReader::new(peer_in, Opener::new(&key), 100, &[]);
        let mut peer = Framer::new(Box::new(reader) as Box<dyn crate::turn::PeerStream>, 100);
        let mut keyboard = crate::terminal::keyboard::Keyboard::plain(keys_in, 100);
        let mut sink = Vec::new();
        let mut session = Session { peer: &mut peer, to_peer: &mut sink, keyboard: &mut keyboard };
        let run = session.run(Role::Server, Settings::default(), &mut screen);
        let feed = async move {
            peer_out.write_all(&stream).await.unwrap();
        };
        future::zip(run, feed).await.0
    });
    (screen.0, ending)
}

#[test]
fn a_session_ends_at_a_forged_record_and_shows_nothing_of_it() {
    let mut sealer = Sealer::new(&[3u8; 32]);
    let mut stream = Vec::new();
    sealer.seal(MESSAGE, b"first\n", &mut stream).unwrap();
    let second = stream.len();
    sealer.seal(MESSAGE, b"second\n", &mut stream).unwrap();
    let mut clean = stream.clone();
    sealer.seal(CLOSE, &[], &mut clean).unwrap();

    let (shown, ending) = session(clean);
    assert_eq!(shown, ["first", "second"]);
    assert_eq!(ending.unwrap(), Ending::PeerLeft);

    stream[second + 6] ^= 0x20;
    let (shown, ending) = session(stream);
    assert_eq!(shown, ["first"]);
    assert!(matches!(ending, Err(crate::turn::Failure::Peer(_))));
}

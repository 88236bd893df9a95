//! Private chats in memory: the handshake both ways over pipes, its
//! failures, and a session that meets a forged record.

use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::handshake::{self, Awaited, Failure, Secrets, BUSY, HELLO, PLAIN_REPLY, READY};
use super::record::{Opener, RecordReader, Sealer, CLOSE, MESSAGE};
use crate::turn::{Ending, Role, Screen, Session, Settings};
use crate::wire::framer::{Frame, Framer};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

const STEP: Duration = Duration::from_secs(5);

/// The client's whole handshake: the hello, then the code.
async fn client<R, W>(reader: R, writer: &mut W, code: &str) -> Result<Secrets, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = Framer::new(reader, handshake::MAX_LINE);
    handshake::hello(&mut lines, writer, soon()).await?;
    handshake::client(lines, writer, code, STEP, false).await
}

/// The server's whole handshake: the hello answered, then the code.
async fn server<R, W>(reader: R, writer: &mut W, code: &str) -> Result<Secrets, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = Framer::new(reader, handshake::MAX_LINE);
    handshake::greet(&mut lines, writer, soon()).await?;
    handshake::server(lines, writer, code, soon(), STEP).await
}

/// A client and a server with these codes, over pipes so small that every
/// line crosses in pieces.
fn both(
    client_code: &str,
    server_code: &str,
) -> (Result<Secrets, Failure>, Result<Secrets, Failure>) {
    let (s_in, mut c_out) = piper::pipe(7);
    let (c_in, mut s_out) = piper::pipe(7);
    smol::block_on(future::zip(
        async {
            let keys = client(c_in, &mut c_out, client_code).await;
            drop(c_out);
            keys
        },
        async {
            let keys = server(s_in, &mut s_out, server_code).await;
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

/// The client's SPAKE2 line for `code`, as a client that is not smolchat
/// would make it.
fn spake_line(code: &str) -> String {
    let (_, a) = spake2::Spake2::<spake2::Ed25519Group>::start_a(
        &spake2::Password::new(code.as_bytes()),
        &spake2::Identity::new(handshake::ID_CLIENT),
        &spake2::Identity::new(handshake::ID_SERVER),
    );
    let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
    format!("smolchat-private/2 {hex}\n")
}

/// Reads one line from `from`, a byte at a time.
async fn line_of(from: &mut piper::Reader) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while from.read(&mut byte).await.unwrap() == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(line).unwrap()
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
fn the_server_answers_the_hello_at_once_and_then_waits_for_the_code() {
    let (s_in, mut c_out) = piper::pipe(1024);
    let (mut c_in, mut s_out) = piper::pipe(1024);
    smol::block_on(async {
        c_out.write_all(HELLO.as_bytes()).await.unwrap();
        let mut lines = Framer::new(s_in, handshake::MAX_LINE);
        handshake::greet(&mut lines, &mut s_out, soon()).await.unwrap();
        assert_eq!(line_of(&mut c_in).await, READY);
        // Nothing more comes: the server waits for the code, then gives up
        // without counting a guess.
        let by = Instant::now() + Duration::from_millis(50);
        let server = handshake::server(lines, &mut s_out, "1-a-b", by, STEP).await;
        assert!(matches!(server, Err(Failure::Late(Awaited::Code))), "{:?}", server.err());
    });
}

#[test]
fn a_busy_server_says_so_to_a_hello_and_tells_a_plain_client_what_it_met() {
    for (first, told) in [(HELLO, BUSY), ("hello\n", PLAIN_REPLY)] {
        let (s_in, mut c_out) = piper::pipe(1024);
        let (mut c_in, mut s_out) = piper::pipe(1024);
        smol::block_on(async {
            c_out.write_all(first.as_bytes()).await.unwrap();
            let mut lines = Framer::new(s_in, handshake::MAX_LINE);
            let _ = handshake::turn_away(&mut lines, &mut s_out, soon()).await;
            drop(s_out);
            let mut said = String::new();
            c_in.read_to_string(&mut said).await.unwrap();
            assert_eq!(said, told);
        });
    }
    // The client reads `busy` as such, before any code is asked.
    let (_s_in, mut c_out) = piper::pipe(1024);
    let (c_in, mut s_out) = piper::pipe(1024);
    smol::block_on(async {
        s_out.write_all(BUSY.as_bytes()).await.unwrap();
        let mut lines = Framer::new(c_in, handshake::MAX_LINE);
        let client = handshake::hello(&mut lines, &mut c_out, soon()).await;
        assert!(matches!(client, Err(Failure::Busy)), "{:?}", client.err());
    });
}

#[test]
fn the_server_refuses_a_client_that_fakes_its_confirmation() {
    let (s_in, mut c_out) = piper::pipe(1024);
    let (mut c_in, mut s_out) = piper::pipe(1024);
    let server = async {
        let keys = server(s_in, &mut s_out, "1-a-b").await;
        drop(s_out);
        keys
    };
    let liar = async {
        // A real hello, then whatever confirmation, without the code.
        c_out.write_all(HELLO.as_bytes()).await.unwrap();
        assert_eq!(line_of(&mut c_in).await, READY);
        c_out.write_all(spake_line("2-a-b").as_bytes()).await.unwrap();
        line_of(&mut c_in).await;
        let confirm = "00".repeat(32);
        c_out.write_all(format!("smolchat-private/2 ok {confirm}\n").as_bytes()).await.unwrap();
        drop(c_out);
    };
    let (server, ()) = smol::block_on(future::zip(server, liar));
    assert!(matches!(server, Err(Failure::WrongCode)));
}

#[test]
fn a_client_that_leaves_or_goes_silent_after_the_reply_has_made_a_guess() {
    for leaves in [true, false] {
        let (s_in, mut c_out) = piper::pipe(1024);
        let (mut c_in, mut s_out) = piper::pipe(1024);
        let server = async {
            let mut lines = Framer::new(s_in, handshake::MAX_LINE);
            handshake::greet(&mut lines, &mut s_out, soon()).await.unwrap();
            // A short step: the silent one is waited out.
            let step = Duration::from_millis(100);
            handshake::server(lines, &mut s_out, "1-a-b", soon(), step).await
        };
        let quitter = async {
            c_out.write_all(HELLO.as_bytes()).await.unwrap();
            line_of(&mut c_in).await;
            c_out.write_all(spake_line("1-a-b").as_bytes()).await.unwrap();
            // It has the reply: it can tell offline whether its code was right.
            line_of(&mut c_in).await;
            if leaves {
                drop(c_out);
            } else {
                future::pending::<()>().await;
            }
        };
        let server = smol::block_on(future::or(server, async {
            quitter.await;
            future::pending().await
        }));
        assert!(matches!(server, Err(Failure::WrongCode)), "{leaves}: {:?}", server.err());
    }
}

#[test]
fn a_plain_client_is_told_and_is_not_a_guess() {
    let v1 = format!("smolchat-private/1 {}\n", "41".repeat(33));
    for first in
        [&b"hello\n"[..], b"smolchat-private/2 abcd\n", v1.as_bytes(), &[b'x'; 300], b"\xff\n"]
    {
        let (s_in, mut c_out) = piper::pipe(1024);
        let (mut c_in, mut s_out) = piper::pipe(1024);
        smol::block_on(async {
            c_out.write_all(first).await.unwrap();
            let mut lines = Framer::new(s_in, handshake::MAX_LINE);
            let server = handshake::greet(&mut lines, &mut s_out, soon()).await;
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
    let (s_in, _c_out) = piper::pipe(1024);
    let (mut c_in, mut s_out) = piper::pipe(1024);
    let deadline = Instant::now() + Duration::from_millis(50);
    let mut lines = Framer::new(s_in, handshake::MAX_LINE);
    let server = smol::block_on(handshake::greet(&mut lines, &mut s_out, deadline));
    assert!(matches!(server, Err(Failure::Late(Awaited::Hello))), "{:?}", server.err());
    drop(s_out);
    let mut said = Vec::new();
    smol::block_on(c_in.read_to_end(&mut said)).unwrap();
    assert!(said.is_empty());
}

#[test]
fn a_client_meeting_a_plain_server_says_so_before_any_code() {
    // A plain server answers the hello with a chat line, or hangs up.
    for answer in [Some(&b"hi there\n"[..]), None] {
        let (mut s_in, mut c_out) = piper::pipe(1024);
        let (c_in, mut s_out) = piper::pipe(1024);
        let client = async {
            let mut lines = Framer::new(c_in, handshake::MAX_LINE);
            handshake::hello(&mut lines, &mut c_out, soon()).await
        };
        let plain = async {
            assert_eq!(line_of(&mut s_in).await, HELLO);
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
    let (c_in, _s_out) = piper::pipe(1024);
    let deadline = Instant::now() + Duration::from_millis(50);
    let mut lines = Framer::new(c_in, handshake::MAX_LINE);
    let client = smol::block_on(handshake::hello(&mut lines, &mut c_out, deadline));
    assert!(matches!(client, Err(Failure::Late(Awaited::Answer))), "{:?}", client.err());
}

#[test]
fn through_a_relay_the_hello_and_the_code_go_at_once_and_early_bytes_are_kept() {
    let (s_in, mut c_out) = piper::pipe(1024);
    let (mut c_in, mut s_out) = piper::pipe(1024);
    smol::block_on(async {
        let joiner = async {
            let lines = Framer::new(&mut c_in, handshake::MAX_LINE);
            handshake::client(lines, &mut c_out, "1-a-b", STEP, true).await
        };
        let host = async {
            // Both lines are there before the server answers either.
            let mut first = [0u8; 200];
            let mut got = Vec::new();
            let mut s_in = s_in;
            while got.iter().filter(|&&b| b == b'\n').count() < 2 {
                let n = s_in.read(&mut first).await.unwrap();
                got.extend_from_slice(&first[..n]);
            }
            assert!(got.starts_with(HELLO.as_bytes()));
            let mut lines = Framer::resume(s_in, handshake::MAX_LINE, got);
            handshake::greet(&mut lines, &mut s_out, soon()).await.unwrap();
            handshake::server(lines, &mut s_out, "1-a-b", soon(), STEP).await
        };
        let (client, server) = future::zip(joiner, host).await;
        assert!(client.is_ok(), "{:?}", client.err());
        assert!(server.is_ok(), "{:?}", server.err());
    });
}

#[test]
fn bytes_after_the_confirmation_are_handed_to_the_records() {
    let (s_in, mut to_server) = piper::pipe(1024);
    let (mut from_client, mut c_out) = piper::pipe(1024);
    let (c_in, mut s_out) = piper::pipe(1024);
    let host = server(s_in, &mut s_out, "1-a-b");
    let guest = async {
        let keys = client(c_in, &mut c_out, "1-a-b").await;
        drop(c_out);
        keys
    };
    // Passes the client's lines on; its confirmation comes with the first
    // bytes of a record, in one write, as a fast client's may.
    let forward = async {
        for n in 1.. {
            let line = line_of(&mut from_client).await;
            if line.is_empty() {
                break;
            }
            let bytes = if n == 3 { format!("{line}early bytes") } else { line };
            to_server.write_all(bytes.as_bytes()).await.unwrap();
        }
    };
    let ((server, client), ()) = smol::block_on(future::zip(future::zip(host, guest), forward));
    assert!(client.is_ok(), "{:?}", client.err());
    assert_eq!(server.unwrap().early, b"early bytes");
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

//! The direct path of a relayed chat on loopback, with the real binary:
//! both sides move to a proven direct link and the relay can go; with
//! `--relay-only` nothing is asked or told; and a forged `seen` address,
//! whatever answers there, keeps the chat on the relay and learns nothing.

#![cfg(all(feature = "private", unix))]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::relayed::{client, next_code, relay, server};
use crate::session::{raw_accept, raw_listener};
use crate::util::Proc;

/// Turns both ways, each line checked as it arrives (after the status
/// lines were read).
fn chat(server: &mut Proc, client: &mut Proc, turns: usize, tag: &str) {
    for turn in 0..turns {
        client.send(format!("{tag} question {turn}: ünïcode\tand tabs\n").as_bytes());
        assert_eq!(server.stdout_line(), format!("{tag} question {turn}: ünïcode\tand tabs\n"));
        server.send(format!("{tag} answer {turn}\n").as_bytes());
        assert_eq!(client.stdout_line(), format!("{tag} answer {turn}\n"));
    }
}

/// The address a status line ends with.
fn address_in(line: &str) -> String {
    line.trim_end().rsplit(' ').next().unwrap().to_string()
}

/// The relay's byte counts of the pair that ended, from its status line.
fn relayed_bytes(relay: &mut Proc) -> u64 {
    let line = relay.stderr_line_containing("pair ended after ");
    let (_, counts) = line.split_once(", ").expect("byte counts");
    let words: Vec<&str> = counts.split(' ').collect();
    words[0].parse::<u64>().unwrap() + words[2].parse::<u64>().unwrap()
}

#[test]
fn both_sides_go_direct_and_the_chat_outlives_the_relay() {
    let (mut relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &[]);
    let code = next_code(&mut server);
    let mut client = client(&at, &code, &[]);
    let to_server = client.stderr_line_containing("smolchat: direct connection to ");
    let to_client = server.stderr_line_containing("smolchat: direct connection to ");
    // Each names the other's end of the one link.
    assert!(address_in(&to_server).starts_with("127.0.0.1:"), "{to_server}");
    assert_ne!(address_in(&to_server), address_in(&to_client));
    // The relay closes its pair as both leave it, having carried only the
    // handshake and the sealed agreement.
    let carried = relayed_bytes(&mut relay);
    assert!(carried < 1024, "the relay carried {carried} bytes");
    relay.signal("KILL");
    relay.wait();
    chat(&mut server, &mut client, 30, "direct");
    client.send(b"EXIT\n");
    let (status, out, err) = client.finish();
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(out.lines().count(), 30);
    assert!(!err.contains("chatting through the relay"), "{err}");
    server.stderr_line_containing("the client left");
}

/// What a tap saw: (up to the relay, down from it).
type Seen = Arc<Mutex<(Vec<u8>, Vec<u8>)>>;

/// A tap between a side and the relay that keeps what the side sends and
/// gets, and may put another address in the relay's `seen` line.
fn tap(relay_port: u16, forged_seen: Option<String>) -> (u16, Seen) {
    let (listener, port) = raw_listener();
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let log = seen.clone();
    thread::spawn(move || {
        // A side first asks whether the relay is one (its probe): passed
        // on untapped.
        let probe = raw_accept(&listener);
        let relay = TcpStream::connect(("127.0.0.1", relay_port)).expect("tap to the relay");
        let up = crate::util::forward(probe.try_clone().unwrap(), relay.try_clone().unwrap());
        crate::util::forward(relay, probe).join().unwrap();
        up.join().unwrap();
        let side = raw_accept(&listener);
        let relay = TcpStream::connect(("127.0.0.1", relay_port)).expect("tap to the relay");
        let up_log = log.clone();
        let (mut from_side, mut to_relay) = (side.try_clone().unwrap(), relay.try_clone().unwrap());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from_side.read(&mut buf) {
                if n == 0 || to_relay.write_all(&buf[..n]).is_err() {
                    break;
                }
                up_log.lock().unwrap().0.extend_from_slice(&buf[..n]);
            }
            let _ = to_relay.shutdown(Shutdown::Write);
        });
        let (mut from_relay, mut to_side) = (relay, side);
        let mut buf = [0u8; 4096];
        let mut rewritten = forged_seen.is_none();
        while let Ok(n) = from_relay.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut bytes = buf[..n].to_vec();
            if !rewritten {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if let Some(at) = text.find("seen ") {
                    let end = at + text[at..].find('\n').expect("one read holds the line");
                    let forged = format!("seen {}", forged_seen.as_deref().unwrap());
                    bytes = format!("{}{forged}{}", &text[..at], &text[end..]).into_bytes();
                    rewritten = true;
                }
            }
            if to_side.write_all(&bytes).is_err() {
                break;
            }
            log.lock().unwrap().1.extend_from_slice(&bytes);
        }
        let _ = to_side.shutdown(Shutdown::Write);
    });
    (port, seen)
}

#[test]
fn relay_only_asks_for_nothing_tells_nothing_and_stays() {
    for (server_flags, client_flags) in [
        (&["--relay-only"][..], &["--relay-only"][..]),
        (&[], &["--relay-only"]),
        (&["--relay-only"], &[]),
    ] {
        let (_relay, port) = relay(&[]);
        let (server_port, server_bytes) = tap(port, None);
        let (client_port, client_bytes) = tap(port, None);
        let mut server = server(&format!("127.0.0.1:{server_port}"), None, server_flags);
        let code = next_code(&mut server);
        let mut client = client(&format!("127.0.0.1:{client_port}"), &code, client_flags);
        client.stderr_line_containing("smolchat: chatting through the relay");
        server.stderr_line_containing("smolchat: chatting through the relay");
        chat(&mut server, &mut client, 3, "relayed");
        client.send(b"EXIT\n");
        assert_eq!(client.finish().0, Some(0));
        server.stderr_line_containing("the client left");
        for (flags, bytes, request) in
            [(server_flags, &server_bytes, "open"), (client_flags, &client_bytes, "join")]
        {
            let (up, down) = bytes.lock().unwrap().clone();
            let first =
                String::from_utf8_lossy(&up[..up.iter().position(|&b| b == b'\n').unwrap()])
                    .into_owned();
            assert!(first.contains(request), "{first}");
            let down = String::from_utf8_lossy(&down).into_owned();
            if flags.is_empty() {
                assert!(first.ends_with(" direct"), "{first}");
                assert!(down.contains("paired\nseen 127.0.0.1:"), "{down:?}");
            } else {
                assert!(!first.contains("direct"), "{first}");
                assert!(!down.contains("seen"), "{down:?}");
            }
        }
    }
}

/// What a forged address's listener got, once its connection ended.
fn forged_listener(answer: &'static [u8]) -> (String, thread::JoinHandle<Vec<u8>>) {
    let (listener, port) = raw_listener();
    let handle = thread::spawn(move || {
        let mut link = raw_accept(&listener);
        link.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = link.write_all(answer);
        let mut got = Vec::new();
        let _ = link.read_to_end(&mut got);
        got
    });
    (format!("127.0.0.1:{port}"), handle)
}

#[test]
fn a_forged_seen_address_keeps_the_chat_on_the_relay_and_learns_nothing() {
    // A port that answers with junk, and one that answers as the direct
    // protocol does but without the key (its own hello and a made-up tag).
    let impostor: &'static [u8] =
        b"smolchat-direct1\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    for answer in [&b"HTTP/1.1 400 Bad Request\r\n\r\nnot here\r\n"[..], impostor] {
        let (_relay, port) = relay(&[]);
        let (forged, got) = forged_listener(answer);
        // The relay "sees" the server at the forged address: the client is
        // told to reach for it.
        let (server_port, _) = tap(port, Some(forged));
        let at = format!("127.0.0.1:{port}");
        let mut server = server(&format!("127.0.0.1:{server_port}"), None, &[]);
        let code = next_code(&mut server);
        let mut client = client(&at, &code, &[]);
        client.stderr_line_containing("smolchat: chatting through the relay");
        server.stderr_line_containing("smolchat: chatting through the relay");
        chat(&mut server, &mut client, 5, "secret");
        client.send(b"EXIT\n");
        let (status, out, err) = client.finish();
        assert_eq!(status, Some(0), "{err}");
        assert!(!out.contains("HTTP") && !out.contains("smolchat-direct"), "{out}");
        assert!(!err.contains("direct connection"), "{err}");
        // The link that failed its proof was closed, and nothing of the
        // chat crossed it: only the client's hello and nonce.
        let got = got.join().unwrap();
        assert_eq!(got.len(), 32, "{:?}", String::from_utf8_lossy(&got));
        assert!(got.starts_with(b"smolchat-direct1"));
        server.stderr_line_containing("the client left");
    }
}
